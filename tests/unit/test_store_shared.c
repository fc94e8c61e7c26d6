/* The store's behaviour, the same on both backends: every shared test
 * runs once against SQLite (a fresh directory) and once against
 * PostgreSQL (a fresh database on the server MAYFLY_TEST_PG names; `make
 * unit` starts a throwaway one with tests/pg.sh). Then the tests only
 * PostgreSQL has: migrations racing between servers, and libpq's
 * failures as errors. */
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "tmpdir.h"

#include "core/buf.h"
#include "core/cleanup.h"
#include "core/xalloc.h"
#include "store/postgres_internal.h"
#include "store/store.h"
#include "store/writer.h"

/* ---- the two backends ---------------------------------------------------- */

typedef struct backend {
    bool pg;
    char *where;  /* what store_open takes */
    char *dir;    /* SQLite: the data directory */
    char *dbname; /* PostgreSQL: the test's own database */
} backend_t;

/* The server's URL (its maintenance database), when there is one. */
static const char *pg_admin_url;

static void quiet(void *arg, const char *msg)
{
}

static PGconn *pg_connect(const char *url)
{
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connect to %s: %s", url, PQerrorMessage(c));
    PQsetNoticeProcessor(c, quiet, NULL);
    return c;
}

static void pg_exec(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(res);
}

static long long pg_int(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    long long v = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

/* The admin URL with another database: postgresql://AUTH/DB?QUERY. */
static char *url_with_db(const char *url, const char *db)
{
    const char *auth = strstr(url, "://");
    assert_non_null(auth);
    auth += 3;
    size_t head = (size_t)(auth - url) + strcspn(auth, "/?");
    const char *query = strchr(url + head, '?');
    return xasprintf("%.*s/%s%s", (int)head, url, db, query ? query : "");
}

static int setup_sqlite(void **state)
{
    void *dir = NULL;
    if (setup_dir(&dir) < 0)
        return -1;
    backend_t *b = xcalloc(1, sizeof *b);
    b->dir = dir;
    b->where = xstrdup(dir);
    *state = b;
    return 0;
}

/* A database of its own for each test, so that no test sees another's
 * rows or schema; its locale sorts text as people do (ICU's English), so
 * that the store's byte order is seen to hold whatever the database's. */
static int setup_pg(void **state)
{
    static int n;
    backend_t *b = xcalloc(1, sizeof *b);
    b->pg = true;
    b->dbname = xasprintf("mayfly_test_%ld_%d", (long)getpid(), ++n);
    PGconn *c = pg_connect(pg_admin_url);
    cleanup_free char *sql = xasprintf(
        "CREATE DATABASE %s TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en'", b->dbname);
    pg_exec(c, sql);
    PQfinish(c);
    b->where = url_with_db(pg_admin_url, b->dbname);
    *state = b;
    return 0;
}

static int teardown(void **state)
{
    backend_t *b = *state;
    if (b->pg) {
        PGconn *c = pg_connect(pg_admin_url);
        cleanup_free char *sql = xasprintf("DROP DATABASE %s WITH (FORCE)", b->dbname);
        pg_exec(c, sql);
        PQfinish(c);
    } else {
        void *dir = b->dir;
        teardown_dir(&dir);
    }
    free(b->where);
    free(b->dbname);
    free(b);
    return 0;
}

static store_t *open_store(const backend_t *b)
{
    mf_error_t err = MF_ERROR_INIT;
    store_t *s = NULL;
    if (store_open(b->where, &s, &err) < 0)
        fail_msg("store_open: %s", err.msg);
    assert_string_equal(store_backend_name(s), b->pg ? "PostgreSQL" : "SQLite");
    return s;
}

/* Sets the database's schema version behind the store's back. */
static void set_schema_version(const backend_t *b, int version)
{
    char sql[64];
    if (b->pg) {
        PGconn *c = pg_connect(b->where);
        snprintf(sql, sizeof sql, "UPDATE mayfly_schema SET version = %d", version);
        pg_exec(c, sql);
        PQfinish(c);
        return;
    }
    cleanup_free char *path = xasprintf("%s/mayfly.db", b->dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", version);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* ---- writing through a writer thread, as the server does ---------------- */

typedef struct job {
    const store_record_t *recs;
    size_t n_recs;
    const store_log_t *lines;
    size_t n_lines;
    const char *purge;           /* a function to purge, or NULL */
    int64_t purged_records, purged_lines;
    int fail_with;               /* the job fails after writing, when set */
    int r;                       /* what its done callback saw */
    char msg[512];
} job_t;

static int job_apply(void *db, void *arg, mf_error_t *err)
{
    job_t *j = arg;
    int r = 0;
    if (j->n_recs)
        r = store_records_write(db, j->recs, j->n_recs, err);
    if (r == 0 && j->n_lines)
        r = store_logs_write(db, j->lines, j->n_lines, err);
    if (r == 0 && j->purge)
        r = store_function_purge_write(db, j->purge, &j->purged_records, &j->purged_lines, err);
    if (r == 0 && j->fail_with)
        r = mf_error_plain(err, j->fail_with, "this job fails");
    return r;
}

static void job_done(void *arg, int r, const mf_error_t *err)
{
    job_t *j = arg;
    j->r = r;
    snprintf(j->msg, sizeof j->msg, "%s", r < 0 ? err->msg : "");
}

static void barrier_reached(void *ud)
{
    ++*(int *)ud;
}

static void on_guard(uv_timer_t *t)
{
    fail_msg("the writer's barrier was not reached within 60 s");
}

/* Submits the jobs to a writer on s's database (one batch, in order) and
 * runs a loop until they are done. */
static void run_jobs(store_t *s, job_t **jobs, size_t n)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    mf_error_t err = MF_ERROR_INIT;
    store_writer_db_t db;
    store_writer_t *w = NULL;
    if (store_writer_db(s, &db, &err) < 0)
        fail_msg("store_writer_db: %s", err.msg);
    assert_int_equal(store_writer_start(&loop, &db, NULL, NULL, &w, &err), 0);
    int reached = 0;
    /* A writer does not keep a loop alive by itself: a guard timer does. */
    uv_timer_t guard;
    uv_timer_init(&loop, &guard);
    uv_timer_start(&guard, on_guard, 60000, 0);
    for (size_t i = 0; i < n; i++)
        store_writer_submit(w, false, job_apply, job_done, jobs[i]);
    store_writer_barrier(w, barrier_reached, &reached);
    while (!reached)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    store_writer_stop(w);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void write_records(store_t *s, const store_record_t *recs, size_t n)
{
    job_t j = { .recs = recs, .n_recs = n };
    job_t *jobs[] = { &j };
    run_jobs(s, jobs, 1);
    if (j.r < 0)
        fail_msg("writing records: %s", j.msg);
}

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
    r->init_ms = 101.5;
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
#define RECORD_INTS(r)                                                                             \
    { r->version, r->start_ms,   r->billed_ms,   r->memory_mb,    r->max_rss_kb,  r->cpu_ms,       \
      r->cold_start, r->attempts, r->kv_ops, r->event_bytes, r->result_bytes, r->event_flags,     \
      r->result_flags }
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
    store_record_t bare = { .request_id = "bare-1", .function = "fn", .status = "success" };
    bare.event = (char *)"";
    write_records(s, &bare, 1);
    assert_int_equal(store_record_get(s, "bare-1", &out, &err), 0);
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
    store_record_list_free(list, n);
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

/* ---- PostgreSQL only --------------------------------------------------------- */

typedef struct opener {
    const char *url;
    int r;
    int version;
    mf_error_t err;
    atomic_bool done;
} opener_t;

static void *open_in_thread(void *arg)
{
    opener_t *o = arg;
    store_t *s = NULL;
    o->r = store_open(o->url, &s, &o->err);
    if (o->r == 0)
        o->version = store_schema_version(s);
    store_close(s);
    atomic_store(&o->done, true);
    return NULL;
}

/* Two servers starting at once on a new database: both wait on the
 * migrations' lock (held here first, so that they surely race), then one
 * migrates and the other finds nothing to do. Had both migrated, the
 * second's CREATE TABLE would have failed. */
static void test_two_openers_migrate_once(void **state)
{
    backend_t *b = *state;
    PGconn *c = pg_connect(b->where);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT pg_advisory_lock(%lld)", (long long)STORE_PG_MIGRATION_LOCK);
    pg_exec(c, sql);
    opener_t o[2] = { { .url = b->where }, { .url = b->where } };
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, open_in_thread, &o[i]), 0);
    /* Until both wait on the lock (neither may get past it). */
    for (;;) {
        assert_false(atomic_load(&o[0].done) || atomic_load(&o[1].done));
        if (pg_int(c, "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
                      " WHERE l.locktype = 'advisory' AND NOT l.granted"
                      " AND d.datname = current_database()") == 2)
            break;
        usleep(10000);
    }
    assert_int_equal(pg_int(c, "SELECT count(*) FROM pg_tables WHERE tablename = 'mayfly_schema'"),
                     0);
    snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock(%lld)",
             (long long)STORE_PG_MIGRATION_LOCK);
    pg_exec(c, sql);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        if (o[i].r < 0)
            fail_msg("opener %d: %s", i, o[i].err.msg);
        assert_int_equal(o[i].version, store__pg_schema_latest());
    }
    assert_int_equal(pg_int(c, "SELECT version FROM mayfly_schema"), store__pg_schema_latest());
    PQfinish(c);
}

static void test_a_bad_url_or_no_server_is_a_clear_error(void **state)
{
    mf_error_t err = MF_ERROR_INIT;
    store_t *s = NULL;
    assert_int_equal(store_open("postgresql://mayfly:sekrit@[::1/db", &s, &err), -EINVAL);
    assert_null(s);
    assert_non_null(strstr(err.msg, "not a PostgreSQL URL"));
    assert_non_null(strstr(err.msg, "mayfly:***@"));
    assert_null(strstr(err.msg, "sekrit"));

    /* A server that is not running: its socket directory, with no socket. */
    void *dir = NULL;
    assert_int_equal(setup_dir(&dir), 0);
    cleanup_free char *url = xasprintf("postgresql://mayfly:sekrit@/db?host=%s", (char *)dir);
    assert_int_equal(store_open(url, &s, &err), -ECONNREFUSED);
    assert_null(s);
    assert_non_null(strstr(err.msg, "cannot connect to PostgreSQL"));
    assert_non_null(strstr(err.msg, (char *)dir));
    assert_null(strstr(err.msg, "sekrit"));
    teardown_dir(&dir);

    /* A database that does not exist: the server's own words. */
    cleanup_free char *missing = url_with_db(pg_admin_url, "mayfly_no_such_db");
    assert_int_equal(store_open(missing, &s, &err), -ECONNREFUSED);
    assert_non_null(strstr(err.msg, "mayfly_no_such_db"));
    assert_non_null(strstr(err.msg, "does not exist"));
}

/* Ends every other connection to the test's database, and waits until
 * they are gone. */
static void kill_connections(PGconn *c)
{
    pg_exec(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
               " WHERE datname = current_database() AND pid <> pg_backend_pid()");
    while (pg_int(c, "SELECT count(*) FROM pg_stat_activity"
                     " WHERE datname = current_database() AND pid <> pg_backend_pid()") > 0)
        usleep(10000);
}

static void test_a_lost_connection_is_reported_as_such(void **state)
{
    backend_t *b = *state;
    store_t *s = open_store(b);
    PGconn *c = pg_connect(b->where);
    kill_connections(c);

    mf_error_t err = MF_ERROR_INIT;
    store_function_t f;
    assert_int_equal(store_function_get(s, "fn", &f, &err), -ECONNRESET);
    assert_non_null(strstr(err.msg, "get a function"));
    assert_non_null(strstr(err.msg, "lost the connection to PostgreSQL"));
    /* And stays lost (a later phase reconnects), saying so each time. */
    err = (mf_error_t)MF_ERROR_INIT;
    assert_int_equal(store_function_list(s, &(store_function_t *){ NULL }, &(size_t){ 0 }, &err),
                     -ECONNRESET);
    assert_non_null(strstr(err.msg, "lost the connection"));
    store_close(s);

    /* A writer whose connection goes: its jobs fail with the same. */
    s = open_store(b);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    store_writer_db_t db;
    store_writer_t *w = NULL;
    assert_int_equal(store_writer_db(s, &db, &err), 0);
    assert_int_equal(store_writer_start(&loop, &db, NULL, NULL, &w, &err), 0);
    kill_connections(c);
    store_record_t rec = { .request_id = "r", .function = "fn", .status = "success" };
    job_t j = { .recs = &rec, .n_recs = 1, .r = 1 };
    store_writer_submit(w, false, job_apply, job_done, &j);
    store_writer_wait(w);
    store_writer_stop(w);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(j.r, -ECONNRESET);
    assert_non_null(strstr(j.msg, "lost the connection to PostgreSQL"));
    store_close(s);
    PQfinish(c);
}

/* What PostgreSQL cannot do yet fails plainly, naming the call. */
static void test_a_call_not_yet_on_postgresql_says_so(void **state)
{
    store_t *s = open_store(*state);
    mf_error_t err = MF_ERROR_INIT;
    store_prune_t pruned;
    assert_int_equal(store_prune_write(s, 0, 0, 100, &pruned, &err), -ENOTSUP);
    assert_non_null(strstr(err.msg, "store_prune_write"));
    assert_non_null(strstr(err.msg, "PostgreSQL"));
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
    cmocka_unit_test_setup_teardown(test_a_record_and_its_binary_payloads_round_trip, setup,       \
                                    teardown),                                                     \
    cmocka_unit_test_setup_teardown(test_find_filters_as_documented, setup, teardown),             \
    cmocka_unit_test_setup_teardown(test_find_pages_with_a_cursor, setup, teardown),               \
    cmocka_unit_test_setup_teardown(test_logs_list_in_order_with_their_bytes, setup, teardown),    \
    cmocka_unit_test_setup_teardown(test_purge_deletes_one_functions_records_and_logs, setup,      \
                                    teardown)

int main(void)
{
    const struct CMUnitTest on_sqlite[] = { SHARED_TESTS(setup_sqlite) };
    const struct CMUnitTest on_postgresql[] = {
        SHARED_TESTS(setup_pg),
        cmocka_unit_test_setup_teardown(test_two_openers_migrate_once, setup_pg, teardown),
        cmocka_unit_test_setup_teardown(test_a_bad_url_or_no_server_is_a_clear_error, setup_pg,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_lost_connection_is_reported_as_such, setup_pg,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_call_not_yet_on_postgresql_says_so, setup_pg,
                                        teardown),
    };
    printf("== the store on SQLite\n");
    int failed = cmocka_run_group_tests_name("store on SQLite", on_sqlite, NULL, NULL);
    pg_admin_url = getenv("MAYFLY_TEST_PG");
    if (!pg_admin_url || !*pg_admin_url) {
        /* `make unit` always sets it; a bare run of this binary says what
         * it left out rather than passing in silence. */
        printf("[  SKIPPED ] store on PostgreSQL: MAYFLY_TEST_PG is not set "
               "(a postgresql:// URL; tests/pg.sh start DIR prints one)\n");
        return failed;
    }
    printf("== the store on PostgreSQL\n");
    return failed | cmocka_run_group_tests_name("store on PostgreSQL", on_postgresql, NULL, NULL);
}
