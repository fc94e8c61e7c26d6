/* The store's behaviour, the same on both backends: every test here runs
 * once against SQLite (a fresh directory) and once against PostgreSQL (a
 * fresh database; store_backends.h). What only one backend does is in
 * test_store.c (SQLite) and test_store_pg.c (PostgreSQL). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store_backends.h"
#include "store_jobs.h"

#include "core/buf.h"
#include "obs/records.h"

/* ---- functions ----------------------------------------------------------- */

static void make_fn(store_function_t *f, const char *name, int64_t version, const char *sha,
                    const char *config)
{
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    f->version = version;
    snprintf(f->code_sha256, sizeof f->code_sha256, "%s", sha);
    f->code_size = 1234;
    f->config_json = (char *)config;
    f->created_ms = 1700000000000;
    f->updated_ms = 1700000000500;
}

static void test_migrations_fresh_then_reopen(void **state)
{
    backend_t *b = *state;
    mf_error_t err = MF_ERROR_INIT;
    store_t *s = open_store(b);
    int version = store_schema_version(s);
    assert_true(version >= 1);
    store_function_t f;
    make_fn(&f, "keep", 7, "dd", "{\"memory_mb\":256}");
    assert_int_equal(store_function_put(s, &f, &err), 0);
    store_close(s);

    /* Reopening runs no migration twice and finds what was written. */
    s = open_store(b);
    assert_int_equal(store_schema_version(s), version);
    store_function_t got;
    assert_int_equal(store_function_get(s, "keep", &got, &err), 0);
    assert_int_equal(got.version, 7);
    assert_string_equal(got.config_json, "{\"memory_mb\":256}");
    store_function_clear(&got);
    store_close(s);
}

static void test_a_newer_schema_is_refused_naming_both_versions(void **state)
{
    backend_t *b = *state;
    store_t *s = open_store(b);
    int known = store_schema_version(s);
    store_close(s);
    set_schema_version(b, known + 5);

    mf_error_t err = MF_ERROR_INIT;
    s = NULL;
    assert_int_equal(store_open(b->where, &s, &err), -EPROTO);
    assert_null(s);
    char have[64], know[32];
    snprintf(have, sizeof have, "schema version %d", known + 5);
    snprintf(know, sizeof know, "(%d)", known);
    assert_non_null(strstr(err.msg, have));
    assert_non_null(strstr(err.msg, know));
    assert_non_null(strstr(err.msg, "newer"));
}

static void test_put_get_list_delete(void **state)
{
    store_t *s = open_store(*state);
    mf_error_t err = MF_ERROR_INIT;
    store_function_t f;
    /* Names sort byte by byte, whatever a database's locale would say:
     * '-' < digits < upper case < '_' < lower case. */
    static const struct {
        const char *name, *sha, *config;
        int64_t version;
    } fns[] = {
        { "zeta", "aa", "{\"runtime\":\"python3\"}", 1 },
        { "alpha", "bb", "{\"runtime\":\"nodejs\"}", 3 },
        { "mid", "aa", "{}", 1 },
        { "Zed", "cc", "{}", 1 },
        { "_under", "cc", "{}", 1 },
        { "-dash", "cc", "{}", 1 },
    };
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        make_fn(&f, fns[i].name, fns[i].version, fns[i].sha, fns[i].config);
        assert_int_equal(store_function_put(s, &f, &err), 0);
    }

    store_function_t got;
    assert_int_equal(store_function_get(s, "alpha", &got, &err), 0);
    assert_string_equal(got.name, "alpha");
    assert_int_equal(got.version, 3);
    assert_string_equal(got.code_sha256, "bb");
    assert_int_equal(got.code_size, 1234);
    assert_string_equal(got.config_json, "{\"runtime\":\"nodejs\"}");
    assert_int_equal(got.created_ms, 1700000000000);
    assert_int_equal(got.updated_ms, 1700000000500);
    store_function_clear(&got);

    /* A put on an existing name replaces it. */
    make_fn(&f, "alpha", 4, "cc", "{\"runtime\":\"provided\"}");
    f.updated_ms = 1800000000000;
    assert_int_equal(store_function_put(s, &f, &err), 0);
    assert_int_equal(store_function_get(s, "alpha", &got, &err), 0);
    assert_int_equal(got.version, 4);
    assert_string_equal(got.code_sha256, "cc");
    assert_string_equal(got.config_json, "{\"runtime\":\"provided\"}");
    assert_int_equal(got.updated_ms, 1800000000000);
    store_function_clear(&got);

    /* It replaces only an older version: one as new or newer is another
     * server's put, made meanwhile (-ESTALE), and stays. */
    make_fn(&f, "alpha", 4, "dd", "{}");
    assert_int_equal(store_function_put(s, &f, &err), -ESTALE);
    assert_non_null(strstr(err.msg, "`alpha` was changed meanwhile"));
    make_fn(&f, "alpha", 2, "dd", "{}");
    assert_int_equal(store_function_put(s, &f, &err), -ESTALE);
    assert_int_equal(store_function_get(s, "alpha", &got, &err), 0);
    assert_int_equal(got.version, 4);
    assert_string_equal(got.code_sha256, "cc");
    store_function_clear(&got);

    store_function_t *list = NULL;
    size_t n = 0;
    assert_int_equal(store_function_list(s, &list, &n, &err), 0);
    const char *order[] = { "-dash", "Zed", "_under", "alpha", "mid", "zeta" };
    assert_int_equal(n, 6);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(list[i].name, order[i]);
    assert_int_equal(list[3].version, 4);
    store_function_list_free(list, n);

    int64_t refs = -1;
    assert_int_equal(store_code_refs(s, "aa", &refs, &err), 0);
    assert_int_equal(refs, 2);
    assert_int_equal(store_code_refs(s, "cc", &refs, &err), 0);
    assert_int_equal(refs, 4);
    assert_int_equal(store_code_refs(s, "bb", &refs, &err), 0);
    assert_int_equal(refs, 0);

    assert_int_equal(store_function_delete(s, "zeta", &err), 0);
    assert_int_equal(store_code_refs(s, "aa", &refs, &err), 0);
    assert_int_equal(refs, 1);
    assert_int_equal(store_function_list(s, &list, &n, &err), 0);
    assert_int_equal(n, 5);
    store_function_list_free(list, n);
    store_close(s);
}

static void test_missing_is_enoent(void **state)
{
    store_t *s = open_store(*state);
    mf_error_t err = MF_ERROR_INIT;
    store_function_t got;
    assert_int_equal(store_function_get(s, "nope", &got, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "nope"));
    err = (mf_error_t)MF_ERROR_INIT;
    assert_int_equal(store_function_delete(s, "nope", &err), -ENOENT);
    assert_non_null(strstr(err.msg, "nope"));
    store_record_t rec;
    assert_int_equal(store_record_get(s, "no-such-id", &rec, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "no-such-id"));

    store_function_t *list = NULL;
    size_t n = 99;
    assert_int_equal(store_function_list(s, &list, &n, &err), 0);
    assert_int_equal(n, 0);
    store_function_list_free(list, n);
    store_close(s);
}

/* ---- records and logs through a writer thread --------------------------- */

static void make_writes(store_record_t recs[2], store_log_t lines[3], const char *prefix)
{
    memset(recs, 0, 2 * sizeof *recs);
    memset(lines, 0, 3 * sizeof *lines);
    for (int i = 0; i < 2; i++) {
        snprintf(recs[i].request_id, sizeof recs[i].request_id, "%s-rec-%d", prefix, i);
        snprintf(recs[i].function, sizeof recs[i].function, "fn");
        snprintf(recs[i].status, sizeof recs[i].status, "success");
        recs[i].start_ms = 1700000000000 + i;
    }
    for (int i = 0; i < 3; i++) {
        snprintf(lines[i].function, sizeof lines[i].function, "fn");
        snprintf(lines[i].request_id, sizeof lines[i].request_id, "%s-rec-0", prefix);
        lines[i].stream = 1;
        lines[i].message = (char *)"a line";
        lines[i].len = 6;
    }
}

static void test_writer_writes_records_and_logs_off_the_loop(void **state)
{
    store_t *s = open_store(*state);
    mf_error_t err = MF_ERROR_INIT;
    store_record_t ok_recs[2], bad_recs[2];
    store_log_t ok_lines[3], bad_lines[3];
    make_writes(ok_recs, ok_lines, "ok");
    make_writes(bad_recs, bad_lines, "bad");
    job_t ok = { .recs = ok_recs, .n_recs = 2, .lines = ok_lines, .n_lines = 3 };
    job_t bad = { .recs = bad_recs, .n_recs = 2, .lines = bad_lines, .n_lines = 3,
                  .fail_with = EIO };
    job_t *jobs[] = { &ok, &bad };
    run_jobs(s, jobs, 2);
    assert_int_equal(ok.r, 0);
    assert_int_equal(bad.r, -EIO);

    /* The loop's own connection sees what the writer committed; the failed
     * job's writes were undone, and nothing else of its batch. */
    store_record_t rec;
    assert_int_equal(store_record_get(s, "ok-rec-1", &rec, &err), 0);
    assert_string_equal(rec.status, "success");
    assert_int_equal(rec.start_ms, 1700000000001);
    store_record_clear(&rec);
    assert_int_equal(store_record_get(s, "bad-rec-0", &rec, &err), -ENOENT);
    store_log_t *lines = NULL;
    size_t n = 0;
    assert_int_equal(store_logs_list(s, "fn", NULL, 0, 0, 100, &lines, &n, &err), 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(lines[i].request_id, "ok-rec-0");
    store_log_list_free(lines, n);
    store_close(s);
}

/* obs_records_after: its callback waits for the records' own flush (not
 * hurried: a record set again meanwhile is written once, in its last
 * state) and runs once they are committed; with nothing pending, after
 * what the writer has already. */
typedef struct after_seen {
    store_t *s;
    int calls;
    char status[16];
} after_seen_t;

static void after_cb(void *ud)
{
    after_seen_t *a = ud;
    mf_error_t err = MF_ERROR_INIT;
    store_record_t rec;
    a->calls++;
    if (store_record_get(a->s, "after-1", &rec, &err) == 0) {
        snprintf(a->status, sizeof a->status, "%s", rec.status);
        store_record_clear(&rec);
    }
}

static void test_records_after_waits_for_their_flush(void **state)
{
    store_t *s = open_store(*state);
    uv_loop_t loop;
    store_writer_t *w = start_writer(s, &loop);
    obs_records_t *records = obs_records_new(&loop, w);

    after_seen_t early = { .s = s }, seen = { .s = s };
    obs_records_after(records, after_cb, &early); /* nothing pending */
    store_record_t rec = { 0 };
    snprintf(rec.request_id, sizeof rec.request_id, "after-1");
    snprintf(rec.function, sizeof rec.function, "fn");
    snprintf(rec.status, sizeof rec.status, "queued");
    rec.start_ms = 1700000000000;
    /* The records' batch timer (50 ms) counts from the loop's time, which
     * opening the store left behind: brought up to date, the run below
     * finds it not yet due, unless this thread stalled past it (then the
     * batch went out with "queued", and the waiter follows that batch). */
    uv_update_time(&loop);
    uint64_t set_ns = uv_hrtime();
    obs_records_set(records, &rec);
    obs_records_after(records, after_cb, &seen);
    uv_run(&loop, UV_RUN_NOWAIT);
    bool stalled = uv_hrtime() - set_ns >= 50 * 1000000ull;
    assert_int_equal(seen.calls, 0);
    snprintf(rec.status, sizeof rec.status, "success");
    obs_records_set(records, &rec);
    /* A writer does not keep a loop alive by itself: a guard timer does. */
    uv_timer_t guard;
    uv_timer_init(&loop, &guard);
    uv_timer_start(&guard, on_guard, 60000, 0);
    while (!seen.calls || !early.calls)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    assert_int_equal(seen.calls, 1);
    /* Written by then, and once, as it last was before its batch left. */
    if (!stalled || strcmp(seen.status, "queued"))
        assert_string_equal(seen.status, "success");
    assert_int_equal(early.calls, 1);

    obs_records_free(records);
    store_writer_stop(w);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    store_close(s);
}

/* A record with every field set, and its payloads binary: every byte
 * value, NULs among them. */
static void make_full_record(store_record_t *r, char *event, size_t event_len, char *result,
                             size_t result_len)
{
    memset(r, 0, sizeof *r);
    snprintf(r->request_id, sizeof r->request_id, "full-1");
    snprintf(r->function, sizeof r->function, "fn");
    r->version = 12;
    snprintf(r->status, sizeof r->status, "error");
    r->start_ms = 1700000000123;
    r->duration_ms = 12.375;
    r->billed_ms = 13;
    r->memory_mb = 256;
    r->max_rss_kb = 40960;
    r->cpu_ms = 9;
    r->cold_start = 1;
    r->prewarmed = 1;
    r->init_ms = 101.5;
    r->queue_ms = 187.25;
    r->sandbox_ms = 12.125;
    r->error_type = (char *)"Runtime.Error";
    r->error_message = (char *)"it broke: \"quoted\" and ünïcode";
    r->attempts = 3;
    r->egress_json = (char *)"[{\"host\":\"example.com\",\"port\":443}]";
    r->event = event;
    r->event_len = event_len;
    r->event_bytes = 5000;
    r->event_flags = STORE_PAYLOAD_TRUNCATED | STORE_PAYLOAD_BINARY;
    r->result = result;
    r->result_len = result_len;
    r->result_bytes = (int64_t)result_len;
    r->result_flags = STORE_PAYLOAD_BINARY;
    snprintf(r->replay_of, sizeof r->replay_of, "orig-1");
    snprintf(r->caller_request_id, sizeof r->caller_request_id, "caller-1");
    r->kv_ops = 42;
    snprintf(r->trigger, sizeof r->trigger, "schedule:nightly");
}

static void assert_text_equal(const char *want, const char *got)
{
    if (want)
        assert_string_equal(got, want);
    else
        assert_null(got);
}

static void assert_bytes_equal(const char *want, size_t want_len, const char *got,
                               size_t got_len)
{
    assert_int_equal(got_len, want_len);
    if (!want)
        assert_null(got);
    else
        assert_memory_equal(got, want, want_len);
}

/* Every field a record keeps, read back as written. */
static void assert_record_equal(const store_record_t *want, const store_record_t *got)
{
    assert_string_equal(got->request_id, want->request_id);
    assert_string_equal(got->function, want->function);
    assert_string_equal(got->status, want->status);
    assert_true(got->duration_ms == want->duration_ms);
    assert_true(got->init_ms == want->init_ms);
    assert_true(got->queue_ms == want->queue_ms);
    assert_true(got->sandbox_ms == want->sandbox_ms);
#define RECORD_INTS(r)                                                                             \
    { r->version, r->start_ms,   r->billed_ms,   r->memory_mb,    r->max_rss_kb,  r->cpu_ms,       \
      r->cold_start, r->attempts, r->kv_ops, r->event_bytes, r->result_bytes, r->event_flags,     \
      r->result_flags, r->prewarmed }
    int64_t want_ints[] = RECORD_INTS(want), got_ints[] = RECORD_INTS(got);
#undef RECORD_INTS
    assert_memory_equal(got_ints, want_ints, sizeof want_ints);
    assert_text_equal(want->error_type, got->error_type);
    assert_text_equal(want->error_message, got->error_message);
    assert_text_equal(want->egress_json, got->egress_json);
    assert_bytes_equal(want->event, want->event_len, got->event, got->event_len);
    assert_bytes_equal(want->result, want->result_len, got->result, got->result_len);
    assert_string_equal(got->replay_of, want->replay_of);
    assert_string_equal(got->caller_request_id, want->caller_request_id);
    assert_string_equal(got->trigger, want->trigger);
}

static void test_a_record_and_its_binary_payloads_round_trip(void **state)
{
    store_t *s = open_store(*state);
    mf_error_t err = MF_ERROR_INIT;
    char event[256], result[3] = { 'a', '\0', 'b' };
    for (int i = 0; i < 256; i++)
        event[i] = (char)i;
    store_record_t in;
    make_full_record(&in, event, sizeof event, result, sizeof result);
    write_records(s, &in, 1);

    store_record_t out;
    assert_int_equal(store_record_get(s, "full-1", &out, &err), 0);
    assert_record_equal(&in, &out);
    store_record_clear(&out);

    /* An empty payload is kept (not NULL); none at all stays none; and a
     * record without the optional fields reads back without them. */
    store_record_t bare = { .request_id = "bare-1", .function = "fn", .status = "success",
                            .queue_ms = -1, .sandbox_ms = -1 };
    bare.event = (char *)"";
    write_records(s, &bare, 1);
    assert_int_equal(store_record_get(s, "bare-1", &out, &err), 0);
    /* Times not known are kept as not known (NULL), not as 0 ms. */
    assert_true(out.queue_ms == -1);
    assert_true(out.sandbox_ms == -1);
    assert_non_null(out.event);
    assert_int_equal(out.event_len, 0);
    assert_null(out.result);
    assert_null(out.error_type);
    assert_null(out.egress_json);
    assert_string_equal(out.replay_of, "");
    assert_string_equal(out.trigger, "");
    store_record_clear(&out);

    /* Listings leave the payloads out. */
    store_record_t *list = NULL;
    size_t n = 0;
    assert_int_equal(store_records_list(s, "fn", NULL, 10, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].request_id, "full-1");
    assert_null(list[0].event);
    assert_null(list[0].result);
    assert_string_equal(list[0].error_message, in.error_message);
    assert_string_equal(list[1].request_id, "bare-1");
    /* The breakdown is in listings too; a warm call's sandbox not known. */
    assert_true(list[0].queue_ms == in.queue_ms && list[0].sandbox_ms == in.sandbox_ms);
    assert_true(list[1].queue_ms == -1 && list[1].sandbox_ms == -1);
    store_record_list_free(list, n);

    /* A record written again (a call that moved on) takes the new times;
     * a 0 ms wait is a known one. */
    bare.queue_ms = 0;
    bare.sandbox_ms = 3.5;
    write_records(s, &bare, 1);
    assert_int_equal(store_record_get(s, "bare-1", &out, &err), 0);
    assert_true(out.queue_ms == 0);
    assert_true(out.sandbox_ms == 3.5);
    store_record_clear(&out);
    store_close(s);
}

/* ---- finding records: filters and keyset pages --------------------------- */

typedef struct rec_spec {
    const char *id, *function;
    int64_t start_ms;
    const char *status, *error_type;
    int cold;
    double duration_ms;
    const char *trigger;
} rec_spec_t;

/* Written in this order, so that among the records of one start_ms a later
 * one comes first in a listing. */
static const rec_spec_t find_specs[] = {
    { "a1", "a", 1000, "success", NULL, 1, 5.0, "invoke" },
    { "a2", "a", 2000, "error", "Boom", 0, 50.0, "schedule:nightly" },
    { "a3", "a", 2000, "success", NULL, 0, 10.0, "schedule:hourly" },
    { "a4", "a", 3000, "timeout", "Timeout", 0, 100.0, "schedulex:odd" },
    { "b1", "b", 1500, "success", NULL, 1, 1.0, "topic:t1" },
    { "b2", "b", 2000, "error", "Boom", 0, 20.0, NULL },
    { "a5", "a", 2000, "success", NULL, 0, 15.0, "url" },
};
#define N_FIND (sizeof find_specs / sizeof find_specs[0])

static void make_spec_record(store_record_t *r, const rec_spec_t *sp)
{
    memset(r, 0, sizeof *r);
    snprintf(r->request_id, sizeof r->request_id, "%s", sp->id);
    snprintf(r->function, sizeof r->function, "%s", sp->function);
    snprintf(r->status, sizeof r->status, "%s", sp->status);
    r->start_ms = sp->start_ms;
    r->error_type = (char *)sp->error_type;
    r->cold_start = sp->cold;
    r->duration_ms = sp->duration_ms;
    snprintf(r->trigger, sizeof r->trigger, "%s", sp->trigger ? sp->trigger : "");
}

static store_t *open_with_find_records(const backend_t *b)
{
    store_t *s = open_store(b);
    store_record_t recs[N_FIND];
    for (size_t i = 0; i < N_FIND; i++)
        make_spec_record(&recs[i], &find_specs[i]);
    write_records(s, recs, N_FIND);
    return s;
}

/* Asserts that f finds exactly the ids (a space-separated list, in
 * order), in one page. */
static void expect_find(store_t *s, const store_record_filter_t *f, const char *ids)
{
    mf_error_t err = MF_ERROR_INIT;
    store_record_t *list = NULL;
    size_t n = 0;
    bool more = true;
    if (store_records_find(s, f, &list, &n, &more, NULL, &err) < 0)
        fail_msg("store_records_find: %s", err.msg);
    buf_t got = BUF_INIT;
    for (size_t i = 0; i < n; i++)
        buf_addf(&got, "%s%s", i ? " " : "", list[i].request_id);
    assert_string_equal(got.data ? got.data : "", ids);
    assert_false(more);
    buf_release(&got);
    store_record_list_free(list, n);
}

/* One filter of find_specs' records: what differs from "every record",
 * and the ids it finds, in order. */
typedef struct find_case {
    const char *function, *status, *error_type, *trigger;
    int cold;                /* 0 any, 1 warm starts only, 2 cold starts only */
    double min_duration_ms;
    int64_t since_ms, until_ms; /* 0: no bound */
    const char *ids;
} find_case_t;

static const find_case_t find_cases[] = {
    { .ids = "a4 a5 b2 a3 a2 b1 a1" },
    { .function = "a", .ids = "a4 a5 a3 a2 a1" },
    { .function = "a", .status = "success", .ids = "a5 a3 a1" },
    { .status = "error", .ids = "b2 a2" },
    { .error_type = "Boom", .ids = "b2 a2" },
    { .cold = 2, .ids = "b1 a1" },
    { .cold = 1, .ids = "a4 a5 b2 a3 a2" },
    { .min_duration_ms = 20, .ids = "a4 b2 a2" },
    { .since_ms = 1500, .until_ms = 2000, .ids = "a5 b2 a3 a2 b1" },
    /* A whole trigger, or a kind alone (not a kind that merely starts
     * with the same letters). */
    { .trigger = "schedule:nightly", .ids = "a2" },
    { .trigger = "schedule", .ids = "a3 a2" },
    { .trigger = "url", .ids = "a5" },
    { .function = "nobody", .ids = "" },
};

static void test_find_filters_as_documented(void **state)
{
    store_t *s = open_with_find_records(*state);
    for (size_t i = 0; i < sizeof find_cases / sizeof find_cases[0]; i++) {
        const find_case_t *c = &find_cases[i];
        store_record_filter_t f = STORE_RECORD_FILTER_INIT;
        f.function = c->function;
        f.status = c->status;
        f.error_type = c->error_type;
        f.trigger = c->trigger;
        f.cold = c->cold - 1;
        f.min_duration_ms = c->min_duration_ms;
        if (c->since_ms)
            f.since_ms = c->since_ms;
        if (c->until_ms)
            f.until_ms = c->until_ms;
        expect_find(s, &f, c->ids);
    }
    store_close(s);
}

/* Pages of f, limit at a time, through the cursor as a client carries it
 * (formatted and parsed back); the ids of all pages, and how many pages. */
static char *page_through(store_t *s, store_record_filter_t f, int limit, int *pages)
{
    mf_error_t err = MF_ERROR_INIT;
    buf_t ids = BUF_INIT;
    f.limit = limit;
    *pages = 0;
    for (;;) {
        store_record_t *list = NULL;
        size_t n = 0;
        bool more = false;
        store_record_cursor_t next;
        if (store_records_find(s, &f, &list, &n, &more, &next, &err) < 0)
            fail_msg("store_records_find: %s", err.msg);
        ++*pages;
        assert_true(n <= (size_t)limit);
        for (size_t i = 0; i < n; i++)
            buf_addf(&ids, "%s%s", ids.len ? " " : "", list[i].request_id);
        store_record_list_free(list, n);
        if (!more)
            break;
        assert_int_equal(n, limit);
        buf_t token = BUF_INIT;
        store_record_cursor_format(&token, &next);
        assert_int_equal(store_record_cursor_parse(token.data, token.len, &f.after), 0);
        f.after_set = true;
        buf_release(&token);
    }
    return buf_detach(&ids, NULL);
}

static void test_find_pages_with_a_cursor(void **state)
{
    store_t *s = open_with_find_records(*state);
    store_record_filter_t f = STORE_RECORD_FILTER_INIT;
    int pages;
    for (int limit = 1; limit <= 8; limit++) {
        cleanup_free char *ids = page_through(s, f, limit, &pages);
        assert_string_equal(ids, "a4 a5 b2 a3 a2 b1 a1");
        /* A page that ends exactly at the last record says there is no
         * more: no empty page after it. */
        assert_int_equal(pages, (int)((N_FIND + (size_t)limit - 1) / (size_t)limit));
    }
    f.function = "a";
    cleanup_free char *a_ids = page_through(s, f, 2, &pages);
    assert_string_equal(a_ids, "a4 a5 a3 a2 a1");
    assert_int_equal(pages, 3);

    /* A record written between two pages, newer than all (keyset paging:
     * the next page does not shift), or rewritten (a record replaced moves
     * to the front of its start_ms). */
    mf_error_t err = MF_ERROR_INIT;
    store_record_filter_t g = STORE_RECORD_FILTER_INIT;
    g.limit = 3;
    store_record_t *list = NULL;
    size_t n = 0;
    bool more = false;
    store_record_cursor_t next;
    assert_int_equal(store_records_find(s, &g, &list, &n, &more, &next, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(list[2].request_id, "b2");
    store_record_list_free(list, n);
    store_record_t late;
    make_spec_record(&late, &(rec_spec_t){ "late", "a", 9000, "success", NULL, 0, 1, NULL });
    write_records(s, &late, 1);
    g.after = next;
    g.after_set = true;
    g.limit = 10;
    expect_find(s, &g, "a3 a2 b1 a1");

    store_record_t again;
    make_spec_record(&again, &find_specs[1]); /* a2, its status now changed */
    snprintf(again.status, sizeof again.status, "success");
    write_records(s, &again, 1);
    g = (store_record_filter_t)STORE_RECORD_FILTER_INIT;
    expect_find(s, &g, "late a4 a2 a5 b2 a3 b1 a1");
    g.status = "error";
    expect_find(s, &g, "b2");
    store_close(s);
}

/* ---- logs ---------------------------------------------------------------- */

static void test_logs_list_in_order_with_their_bytes(void **state)
{
    store_t *s = open_store(*state);
    mf_error_t err = MF_ERROR_INIT;
    static const char nul_line[] = { 'x', '\0', 'y', '\n' };
    store_log_t lines[] = {
        { .time_ms = 100, .function = "f", .request_id = "r1", .stream = 1,
          .message = (char *)"first", .len = 5 },
        { .time_ms = 200, .function = "f", .request_id = "r2", .stream = 2,
          .message = (char *)nul_line, .len = sizeof nul_line },
        { .time_ms = 300, .function = "f", .request_id = "r1", .stream = 1,
          .message = (char *)"", .len = 0 },
        { .time_ms = 150, .function = "g", .request_id = "", .stream = 1,
          .message = (char *)"other", .len = 5 },
    };
    job_t j = { .lines = lines, .n_lines = 4 };
    job_t *jobs[] = { &j };
    run_jobs(s, jobs, 1);
    assert_int_equal(j.r, 0);

    store_log_t *got = NULL;
    size_t n = 0;
    assert_int_equal(store_logs_list(s, "f", NULL, 0, 0, 100, &got, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_true(got[0].id < got[1].id && got[1].id < got[2].id);
    assert_int_equal(got[0].time_ms, 100);
    assert_string_equal(got[0].message, "first");
    assert_string_equal(got[1].request_id, "r2");
    assert_int_equal(got[1].stream, 2);
    assert_int_equal(got[1].len, sizeof nul_line);
    assert_memory_equal(got[1].message, nul_line, sizeof nul_line);
    assert_int_equal(got[2].len, 0);
    assert_string_equal(got[2].message, "");
    int64_t first_id = got[0].id;
    store_log_list_free(got, n);

    assert_int_equal(store_logs_list(s, "f", "r1", 0, 0, 100, &got, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(got[1].time_ms, 300);
    store_log_list_free(got, n);
    assert_int_equal(store_logs_list(s, "f", NULL, 200, 0, 100, &got, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(got[0].time_ms, 200);
    store_log_list_free(got, n);
    assert_int_equal(store_logs_list(s, "f", NULL, 0, first_id, 1, &got, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(got[0].request_id, "r2");
    store_log_list_free(got, n);
    assert_int_equal(store_logs_list(s, "g", NULL, 0, 0, 100, &got, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(got[0].request_id, "");
    store_log_list_free(got, n);

    /* store_logs_put and store_records_put write on the store's own
     * connection, in a transaction of their own. */
    store_log_t more = { .time_ms = 400, .function = "g", .request_id = "r9", .stream = 1,
                         .message = (char *)"put", .len = 3 };
    assert_int_equal(store_logs_put(s, &more, 1, &err), 0);
    store_record_t rec = { .request_id = "r9", .function = "g", .status = "running" };
    assert_int_equal(store_records_put(s, &rec, 1, &err), 0);
    assert_int_equal(store_logs_list(s, "g", "r9", 0, 0, 100, &got, &n, &err), 0);
    assert_int_equal(n, 1);
    store_log_list_free(got, n);
    assert_int_equal(store_record_get(s, "r9", &rec, &err), 0);
    assert_string_equal(rec.status, "running");
    store_record_clear(&rec);
    store_close(s);
}

static void test_purge_deletes_one_functions_records_and_logs(void **state)
{
    store_t *s = open_with_find_records(*state);
    mf_error_t err = MF_ERROR_INIT;
    store_log_t lines[] = {
        { .time_ms = 1, .function = "a", .request_id = "a1", .stream = 1, .message = (char *)"x",
          .len = 1 },
        { .time_ms = 2, .function = "b", .request_id = "b1", .stream = 1, .message = (char *)"y",
          .len = 1 },
    };
    job_t write = { .lines = lines, .n_lines = 2 };
    job_t purge = { .purge = "a" };
    job_t *jobs[] = { &write, &purge };
    run_jobs(s, jobs, 2);
    assert_int_equal(purge.r, 0);
    assert_int_equal(purge.purged_records, 5);
    assert_int_equal(purge.purged_lines, 1);

    store_record_filter_t f = STORE_RECORD_FILTER_INIT;
    expect_find(s, &f, "b2 b1");
    store_log_t *got = NULL;
    size_t n = 0;
    assert_int_equal(store_logs_list(s, "a", NULL, 0, 0, 10, &got, &n, &err), 0);
    assert_int_equal(n, 0);
    store_log_list_free(got, n);
    store_close(s);
}

/* ---- usage ----------------------------------------------------------------- */

#define HOUR 3600000

/* What the usage of hours [from, to) adds up to for the tenant's function
 * (every hour of it). */
static store_usage_t usage_in(store_t *s, const char *tenant, const char *function, int64_t from,
                              int64_t to)
{
    store_usage_t *list = NULL, sum = { 0 };
    size_t n = 0;
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(store_usage_list(s, from, to, &list, &n, &err), 0);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i].function, function) || strcmp(list[i].tenant, tenant))
            continue;
        sum.requests += list[i].requests;
        sum.billed_ms += list[i].billed_ms;
        sum.mb_ms += list[i].mb_ms;
        sum.cpu_ms += list[i].cpu_ms;
        sum.max_rss_kb += list[i].max_rss_kb;
        sum.egress_bytes += list[i].egress_bytes;
        sum.kv_ops += list[i].kv_ops;
        sum.log_bytes += list[i].log_bytes;
    }
    free(list);
    return sum;
}

static store_usage_t usage_of(store_t *s, const char *function, int64_t from, int64_t to)
{
    return usage_in(s, "default", function, from, to);
}

static store_record_t metered(const char *id, const char *status, int64_t start_ms, int attempts,
                              int64_t billed_ms)
{
    store_record_t r = { .status = "", .start_ms = start_ms, .billed_ms = billed_ms,
                         .memory_mb = 1024, .cpu_ms = billed_ms / 2, .max_rss_kb = 1000,
                         .attempts = attempts, .egress_bytes = 7, .kv_ops = 3,
                         .log_bytes = 11 };
    snprintf(r.request_id, sizeof r.request_id, "%s", id);
    snprintf(r.function, sizeof r.function, "meter");
    snprintf(r.status, sizeof r.status, "%s", status);
    return r;
}

/* Usage follows the records as they are written: a call counts once it
 * ran, a record replaced (queued, then running in another hour, then how
 * it ended, then run again) leaves only its latest quantities, in its
 * latest hour, and deleting records leaves usage as it was. */
static void test_usage_sums_what_the_records_hold(void **state)
{
    store_t *s = open_with_find_records(*state);
    mf_error_t err = MF_ERROR_INIT;
    int64_t h0 = 100 * (int64_t)HOUR, h1 = h0 + HOUR;
    store_record_t a[] = {
        metered("q1", "queued", h0 + 10, 0, 0),
        metered("s1", "success", h0 + 20, 1, 1500),
        metered("t1", "throttled", h0 + 30, 0, 0),
    };
    assert_int_equal(store_records_put(s, a, 3, &err), 0);
    store_usage_t u = usage_of(s, "meter", h0, h1 + HOUR);
    assert_int_equal(u.requests, 1); /* only s1 ran */
    assert_int_equal(u.billed_ms, 1500);
    assert_int_equal(u.mb_ms, 1024 * 1500);
    /* q1 runs in the next hour and fails, then runs again and succeeds. */
    store_record_t b[] = {
        metered("q1", "running", h1 + 5, 1, 0),
        metered("q1", "error", h1 + 5, 1, 200),
    };
    assert_int_equal(store_records_put(s, b, 2, &err), 0);
    store_record_t c = metered("q1", "success", h1 + 900, 2, 300);
    assert_int_equal(store_records_put(s, &c, 1, &err), 0);
    u = usage_of(s, "meter", h0, h0 + HOUR);
    assert_int_equal(u.requests, 1);
    assert_int_equal(u.billed_ms, 1500);
    u = usage_of(s, "meter", h1, h1 + HOUR);
    assert_int_equal(u.requests, 1);
    assert_int_equal(u.billed_ms, 300);
    assert_int_equal(u.mb_ms, 1024 * 300);
    assert_int_equal(u.cpu_ms, 150);
    assert_int_equal(u.max_rss_kb, 1000);
    assert_int_equal(u.egress_bytes, 7);
    assert_int_equal(u.kv_ops, 3);
    assert_int_equal(u.log_bytes, 11);
    /* Every quantity of the two hours, against the records themselves. */
    u = usage_of(s, "meter", h0, h1 + HOUR);
    store_record_t got;
    int64_t billed = 0, requests = 0;
    const char *ids[] = { "q1", "s1", "t1" };
    for (int i = 0; i < 3; i++) {
        assert_int_equal(store_record_get(s, ids[i], &got, &err), 0);
        bool ran = strcmp(got.status, "throttled") && strcmp(got.status, "queued") &&
                   strcmp(got.status, "running");
        requests += ran;
        billed += got.billed_ms;
        store_record_clear(&got);
    }
    assert_int_equal(u.requests, requests);
    assert_int_equal(u.billed_ms, billed);
    assert_int_equal(u.log_bytes, 3 * 11);

    /* Records deleted: what they metered stays. */
    job_t purge = { .purge = "meter" };
    job_t *jobs[] = { &purge };
    run_jobs(s, jobs, 1);
    assert_int_equal(purge.r, 0);
    store_usage_t after = usage_of(s, "meter", h0, h1 + HOUR);
    assert_memory_equal(&after, &u, sizeof u);
    store_close(s);
}

/* Two tenants' functions of one name (core/tenant.h): each tenant's
 * records found apart, and usage kept apart under the name within the
 * tenant, as records come and as they are replaced. */
static void test_tenants_records_and_usage_stay_apart(void **state)
{
    store_t *s = open_with_find_records(*state);
    mf_error_t err = MF_ERROR_INIT;
    int64_t h0 = 200 * (int64_t)HOUR;
    store_record_t a[] = {
        metered("d1", "success", h0 + 10, 1, 100),
        metered("t1", "success", h0 + 20, 1, 250),
        metered("t2", "queued", h0 + 30, 0, 0),
        metered("u1", "success", h0 + 40, 1, 400),
    };
    snprintf(a[1].function, sizeof a[1].function, "team-a~meter");
    snprintf(a[2].function, sizeof a[2].function, "team-a~meter");
    snprintf(a[3].function, sizeof a[3].function, "team-b~meter");
    assert_int_equal(store_records_put(s, a, 4, &err), 0);
    store_record_t b = metered("t2", "success", h0 + 50, 1, 1000);
    snprintf(b.function, sizeof b.function, "team-a~meter");
    assert_int_equal(store_records_put(s, &b, 1, &err), 0);

    store_usage_t d = usage_in(s, "default", "meter", h0, h0 + HOUR);
    store_usage_t ta = usage_in(s, "team-a", "meter", h0, h0 + HOUR);
    store_usage_t tb = usage_in(s, "team-b", "meter", h0, h0 + HOUR);
    assert_int_equal(d.requests, 1);
    assert_int_equal(d.billed_ms, 100);
    assert_int_equal(ta.requests, 2);
    assert_int_equal(ta.billed_ms, 1250);
    assert_int_equal(tb.requests, 1);
    assert_int_equal(tb.billed_ms, 400);
    /* No row names a qualified function. */
    assert_int_equal(usage_in(s, "default", "team-a~meter", h0, h0 + HOUR).requests, 0);

    store_record_filter_t f = STORE_RECORD_FILTER_INIT;
    f.since_ms = h0;
    store_record_filter_tenant(&f, "team-a");
    expect_find(s, &f, "t2 t1");
    store_record_filter_tenant(&f, "default");
    expect_find(s, &f, "d1");
    store_record_filter_tenant(&f, "team-b");
    expect_find(s, &f, "u1");
    store_record_filter_tenant(&f, NULL);
    expect_find(s, &f, "t2 u1 t1 d1");
    /* With a function too: the tenant's own. */
    f.function = "team-a~meter";
    store_record_filter_tenant(&f, "team-a");
    expect_find(s, &f, "t2 t1");
    store_record_filter_tenant(&f, "team-b");
    expect_find(s, &f, "");
    store_close(s);
}

/* The access key that made a call stays with its record when the record
 * is replaced by one without (an async event's attempts), whether the two
 * come in one write or in two. */
static void test_a_records_key_stays_when_replaced(void **state)
{
    store_t *s = open_with_find_records(*state);
    mf_error_t err = MF_ERROR_INIT;
    int64_t h0 = 300 * (int64_t)HOUR;
    store_record_t a[] = {
        metered("k1", "queued", h0 + 10, 0, 0),
        metered("k2", "queued", h0 + 20, 0, 0),
        metered("k2", "success", h0 + 30, 1, 100),
    };
    snprintf(a[0].key_id, sizeof a[0].key_id, "AKIAONE");
    snprintf(a[1].key_id, sizeof a[1].key_id, "AKIATWO");
    assert_int_equal(store_records_put(s, a, 3, &err), 0);
    store_record_t b = metered("k1", "success", h0 + 40, 1, 100);
    assert_int_equal(store_records_put(s, &b, 1, &err), 0);
    const char *ids[] = { "k1", "k2" }, *keys[] = { "AKIAONE", "AKIATWO" };
    for (int i = 0; i < 2; i++) {
        store_record_t got;
        assert_int_equal(store_record_get(s, ids[i], &got, &err), 0);
        assert_string_equal(got.status, "success");
        assert_string_equal(got.key_id, keys[i]);
        store_record_clear(&got);
    }
    store_close(s);
}

/* ---- retention ------------------------------------------------------------ */

enum { AGED = 30, PAYLOAD = 1024 };

/* AGED records a second apart (start_ms 1000, 2000, …; ids p01, p02, …),
 * each with an event of PAYLOAD bytes that do not compress, and a log line
 * of as many bytes at the same time. */
static void write_aged(store_t *s)
{
    static char payload[PAYLOAD];
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < sizeof payload; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        payload[i] = (char)x;
    }
    store_record_t recs[AGED];
    store_log_t lines[AGED];
    memset(recs, 0, sizeof recs);
    memset(lines, 0, sizeof lines);
    for (int i = 0; i < AGED; i++) {
        store_record_t *r = &recs[i];
        snprintf(r->request_id, sizeof r->request_id, "p%02d", i + 1);
        snprintf(r->function, sizeof r->function, "fn");
        snprintf(r->status, sizeof r->status, "success");
        r->start_ms = (i + 1) * 1000;
        r->event = payload;
        r->event_len = r->event_bytes = PAYLOAD;
        r->event_flags = STORE_PAYLOAD_BINARY;
        lines[i] = (store_log_t){ .time_ms = r->start_ms, .stream = 1, .message = payload,
                                  .len = PAYLOAD };
        snprintf(lines[i].function, sizeof lines[i].function, "fn");
        snprintf(lines[i].request_id, sizeof lines[i].request_id, "%s", r->request_id);
    }
    job_t j = { .recs = recs, .n_recs = AGED, .lines = lines, .n_lines = AGED };
    job_t *jobs[] = { &j };
    run_jobs(s, jobs, 1);
    if (j.r < 0)
        fail_msg("writing records: %s", j.msg);
}

/* store_prune_write in a writer's job, as the server runs it. */
static store_prune_t prune(store_t *s, int64_t before_ms, int64_t max_bytes, int batch)
{
    job_t j = { .prune = true,
                .prune_before_ms = before_ms,
                .prune_max_bytes = max_bytes,
                .prune_batch = batch };
    job_t *jobs[] = { &j };
    run_jobs(s, jobs, 1);
    if (j.r < 0)
        fail_msg("prune: %s", j.msg);
    return j.pruned;
}

/* What is left is the newest records and lines of write_aged: so many of
 * each, the oldest of them where it should be. */
static void expect_newest(store_t *s, int records, int lines)
{
    mf_error_t err = MF_ERROR_INIT;
    store_record_filter_t f = STORE_RECORD_FILTER_INIT;
    f.limit = 100;
    store_record_t *recs = NULL;
    size_t n = 0;
    bool more;
    assert_int_equal(store_records_find(s, &f, &recs, &n, &more, NULL, &err), 0);
    assert_int_equal(n, records);
    if (n) {
        char oldest[8];
        snprintf(oldest, sizeof oldest, "p%02d", AGED - records + 1);
        assert_string_equal(recs[n - 1].request_id, oldest);
    }
    store_record_list_free(recs, n);
    store_log_t *got = NULL;
    assert_int_equal(store_logs_list(s, "fn", NULL, 0, 0, 100, &got, &n, &err), 0);
    assert_int_equal(n, lines);
    if (n)
        assert_int_equal(got[0].time_ms, (AGED - lines + 1) * 1000);
    store_log_list_free(got, n);
}

static void test_prune_by_age_in_batches(void **state)
{
    store_t *s = open_store(*state);
    write_aged(s);
    /* Older than 15.5 s: 15 of each, in batches of 10; a full batch says
     * there may be more. */
    store_prune_t p = prune(s, 15500, 0, 10);
    assert_int_equal(p.records, 10);
    assert_int_equal(p.lines, 10);
    assert_true(p.more);
    assert_true(p.bytes > 0);
    expect_newest(s, 20, 20);
    p = prune(s, 15500, 0, 10);
    assert_int_equal(p.records, 5);
    assert_int_equal(p.lines, 5);
    assert_false(p.more);
    expect_newest(s, 15, 15);
    /* The bound is strict: what is exactly as old stays. */
    p = prune(s, 16000, 0, 10);
    assert_int_equal(p.records + p.lines, 0);
    assert_false(p.more);
    expect_newest(s, 15, 15);
    store_close(s);
}

static void test_prune_over_the_size_bound_takes_the_oldest(void **state)
{
    backend_t *b = *state;
    store_t *s = open_store(b);
    write_aged(s);
    settle_statistics(b);
    /* Within the bound (and no age bound): nothing goes, and the bytes
     * counted hold at least the payloads and lines. */
    store_prune_t p = prune(s, 0, (int64_t)1 << 40, 10);
    assert_int_equal(p.records + p.lines, 0);
    assert_false(p.more);
    assert_true(p.bytes >= 2 * AGED * PAYLOAD);
    /* Over it, whatever their age: the oldest batch at least, records and
     * lines of the same age together. */
    p = prune(s, 0, 1, 10);
    assert_true(p.records >= 10);
    assert_int_equal(p.lines, p.records);
    expect_newest(s, AGED - (int)p.records, AGED - (int)p.lines);
    store_close(s);
}

#define SHARED_TESTS(setup)                                                                        \
    cmocka_unit_test_setup_teardown(test_migrations_fresh_then_reopen, setup, teardown),           \
    cmocka_unit_test_setup_teardown(test_a_newer_schema_is_refused_naming_both_versions, setup,    \
                                    teardown),                                                     \
    cmocka_unit_test_setup_teardown(test_put_get_list_delete, setup, teardown),                    \
    cmocka_unit_test_setup_teardown(test_missing_is_enoent, setup, teardown),                      \
    cmocka_unit_test_setup_teardown(test_writer_writes_records_and_logs_off_the_loop, setup,       \
                                    teardown),                                                     \
    cmocka_unit_test_setup_teardown(test_records_after_waits_for_their_flush, setup, teardown),    \
    cmocka_unit_test_setup_teardown(test_a_record_and_its_binary_payloads_round_trip, setup,       \
                                    teardown),                                                     \
    cmocka_unit_test_setup_teardown(test_find_filters_as_documented, setup, teardown),             \
    cmocka_unit_test_setup_teardown(test_find_pages_with_a_cursor, setup, teardown),               \
    cmocka_unit_test_setup_teardown(test_logs_list_in_order_with_their_bytes, setup, teardown),    \
    cmocka_unit_test_setup_teardown(test_purge_deletes_one_functions_records_and_logs, setup,      \
                                    teardown),                                                     \
    cmocka_unit_test_setup_teardown(test_usage_sums_what_the_records_hold, setup, teardown),       \
    cmocka_unit_test_setup_teardown(test_tenants_records_and_usage_stay_apart, setup, teardown),   \
    cmocka_unit_test_setup_teardown(test_a_records_key_stays_when_replaced, setup, teardown),      \
    cmocka_unit_test_setup_teardown(test_prune_by_age_in_batches, setup, teardown),                \
    cmocka_unit_test_setup_teardown(test_prune_over_the_size_bound_takes_the_oldest, setup,        \
                                    teardown)

int main(void)
{
    const struct CMUnitTest on_sqlite[] = { SHARED_TESTS(setup_sqlite) };
    const struct CMUnitTest on_postgresql[] = { SHARED_TESTS(setup_pg) };
    printf("== the store on SQLite\n");
    int failed = cmocka_run_group_tests_name("store on SQLite", on_sqlite, NULL, NULL);
    if (!pg_available())
        return failed;
    printf("== the store on PostgreSQL\n");
    return failed | cmocka_run_group_tests_name("store on PostgreSQL", on_postgresql, NULL, NULL);
}
