/* What only the PostgreSQL store does: migrations racing between servers
 * that start at once, and libpq's failures (a bad URL, no server, a lost
 * connection) as clear errors. Each test has a database of its own on
 * the server MAYFLY_TEST_PG names (store_backends.h). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "store_backends.h"
#include "store_jobs.h"

#include "store/health.h"
#include "store/postgres_internal.h"

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
    while (pg_lock_waiters(c) < 2)
        assert_false(atomic_load(&o[0].done) || atomic_load(&o[1].done));
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

static void test_a_lost_connection_is_reported_as_such(void **state)
{
    backend_t *b = *state;
    store_t *s = open_store(b);
    PGconn *c = pg_connect(b->where);
    pg_kill_connections(c);

    mf_error_t err = MF_ERROR_INIT;
    store_function_t f;
    assert_int_equal(store_function_get(s, "fn", &f, &err), -ECONNRESET);
    assert_non_null(strstr(err.msg, "get a function"));
    assert_non_null(strstr(err.msg, "lost the connection to PostgreSQL"));
    /* Then it is made again in the background (test_store_outage.c),
     * calls failing at once meanwhile. */
    err = (mf_error_t)MF_ERROR_INIT;
    int r;
    for (int i = 0; (r = store_function_list(s, &(store_function_t *){ NULL }, &(size_t){ 0 },
                                             &err)) == -ENOTCONN && i < 12000;
         i++)
        usleep(10000);
    assert_int_equal(r, 0);
    store_close(s);

    /* A writer whose connection goes: it connects again and runs the job
     * it owes. */
    s = open_store(b);
    uv_loop_t loop;
    store_writer_t *w = start_writer(s, &loop);
    pg_kill_connections(c);
    store_record_t rec = { .request_id = "r", .function = "fn", .status = "success" };
    job_t j = { .recs = &rec, .n_recs = 1, .r = 1 };
    store_writer_submit(w, false, job_apply, job_done, &j);
    store_writer_wait(w);
    store_writer_stop(w);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(j.r, 0);
    store_record_t got;
    /* s's own connection went too: it comes back on its own. */
    for (int i = 0; store_unavailable(r = store_record_get(s, "r", &got, &err)) && i < 12000; i++)
        usleep(10000);
    assert_int_equal(r, 0);
    store_record_clear(&got);
    store_close(s);
    PQfinish(c);
}

/* Code packages are kept by their digest, bytes as they are (NUL bytes
 * too); keeping one twice changes nothing; one is dropped only once no
 * function refers to it, whichever connection (server) wrote that. */
static void test_code_packages_are_kept_until_no_function_uses_them(void **state)
{
    backend_t *b = *state;
    store_t *s = open_store(b);
    mf_error_t err = MF_ERROR_INIT;
    assert_true(store_keeps_code(s));
    static const char zip[] = "PK\3\4\0\0zip bytes\0\xff";
    const char *sha = "ab12";
    assert_int_equal(store_code_put(s, sha, zip, sizeof zip, &err), 0);
    assert_int_equal(store_code_put(s, sha, "other", 5, &err), 0);
    buf_t got = BUF_INIT;
    assert_int_equal(store_code_get(s, sha, &got, &err), 0);
    assert_int_equal(got.len, sizeof zip);
    assert_memory_equal(got.data, zip, sizeof zip);
    assert_int_equal(store_code_get(s, "cd34", &got, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "cd34"));

    /* A function another server wrote keeps the package. */
    store_t *other = NULL;
    assert_int_equal(store_reopen(s, &other, &err), 0);
    store_function_t f = { .name = "f", .version = 1, .config_json = (char *)"{}" };
    snprintf(f.code_sha256, sizeof f.code_sha256, "%s", sha);
    assert_int_equal(store_function_put(other, &f, &err), 0);
    assert_int_equal(store_code_forget(s, sha, &err), 0);
    assert_int_equal(pg_kept_packages(b, sha), 1);

    assert_int_equal(store_function_delete(other, "f", &err), 0);
    assert_int_equal(store_code_forget(s, sha, &err), 0);
    assert_int_equal(pg_kept_packages(b, sha), 0);
    assert_int_equal(store_code_forget(s, sha, &err), 0);
    buf_release(&got);
    store_close(other);
    store_close(s);
}

/* Records and log lines go many to a statement (arrays of their columns,
 * in chunks): more than one chunk's worth arrive whole and in order, a
 * bad record among them fails the write with PostgreSQL's words and none
 * of it is kept, and the connection then serves the next write. */
static void test_many_rows_are_written_at_once_and_a_bad_one_fails_them_all(void **state)
{
    backend_t *b = *state;
    store_t *s = open_store(b);
    mf_error_t err = MF_ERROR_INIT;
    enum { N = 1100 };
    static char ids[N][40];
    static store_record_t recs[N];
    static store_log_t lines[N];
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "req-%04d", i);
        recs[i] = (store_record_t){ .function = "fn", .status = "success", .start_ms = 1000 + i };
        snprintf(recs[i].request_id, sizeof recs[i].request_id, "%s", ids[i]);
        lines[i] = (store_log_t){ .time_ms = 1000 + i, .stream = 1, .message = ids[i],
                                  .len = strlen(ids[i]) };
        snprintf(lines[i].function, sizeof lines[i].function, "fn");
        snprintf(lines[i].request_id, sizeof lines[i].request_id, "%s", ids[i]);
    }
    /* One bad row past the first chunk: text PostgreSQL refuses. */
    snprintf(recs[400].function, sizeof recs[400].function, "bad\xff\xfe");
    assert_int_equal(store_records_put(s, recs, N, &err), -EIO);
    assert_non_null(strstr(err.msg, "write invocation records"));
    assert_non_null(strstr(err.msg, "UTF8"));
    store_record_t got;
    assert_int_equal(store_record_get(s, ids[0], &got, &err), -ENOENT);

    snprintf(recs[400].function, sizeof recs[400].function, "fn");
    assert_int_equal(store_records_put(s, recs, N, &err), 0);
    for (int i = 0; i < N; i += 99) {
        assert_int_equal(store_record_get(s, ids[i], &got, &err), 0);
        assert_int_equal(got.start_ms, 1000 + i);
        store_record_clear(&got);
    }
    assert_int_equal(pg_db_int(b, "SELECT count(*) FROM invocations"), N);

    /* A record's columns arrive as they were, whatever COPY's text makes
     * of them: tabs, newlines, carriage returns, backslashes, quotes,
     * braces and commas in text, NULL apart from "", "NULL" and "\\N",
     * payload bytes with NUL, backslashes and bytes that are not UTF-8, a
     * double to its last digit, and numbers at their limits. */
    static const char payload[] = "{\"a\": \"b,c\"}\0\xff\\";
    store_record_t odd = { .function = "f\"n{,}", .status = "error", .start_ms = INT64_MAX,
                           .duration_ms = 0.1 + 0.2, .init_ms = 1e-300, .billed_ms = -1,
                           .error_type = (char *)"NULL", .error_message = (char *)"",
                           .egress_bytes = 7, .trigger = "\\N",
                           .egress_json = NULL, .event = (char *)payload,
                           .event_len = sizeof payload, .result = NULL, .attempts = 2,
                           .kv_ops = INT64_MIN };
    snprintf(odd.request_id, sizeof odd.request_id, "odd \"one\"");
    snprintf(odd.replay_of, sizeof odd.replay_of, "a\\\"b");
    snprintf(odd.caller_request_id, sizeof odd.caller_request_id, "t\tn\nr\r\\N\\");
    assert_int_equal(store_records_put(s, &odd, 1, &err), 0);
    assert_int_equal(store_record_get(s, odd.request_id, &got, &err), 0);
    assert_string_equal(got.function, odd.function);
    assert_int_equal(got.start_ms, INT64_MAX);
    assert_true(got.duration_ms == 0.1 + 0.2);
    assert_true(got.init_ms == 1e-300);
    assert_int_equal(got.billed_ms, -1);
    assert_string_equal(got.error_type, "NULL");
    assert_string_equal(got.error_message, "");
    assert_null(got.egress_json);
    assert_string_equal(got.replay_of, "a\\\"b");
    assert_string_equal(got.caller_request_id, "t\tn\nr\r\\N\\");
    assert_string_equal(got.trigger, "\\N");
    assert_int_equal(got.egress_bytes, 7);
    assert_int_equal(got.event_len, sizeof payload);
    assert_memory_equal(got.event, payload, sizeof payload);
    assert_null(got.result);
    assert_int_equal(got.kv_ops, INT64_MIN);
    store_record_clear(&got);

    /* Lines go as COPY's text: bytes that mean something there or in an
     * array's (tabs, newlines, carriage returns, backslashes, \\N, quotes,
     * braces, commas, NUL, bytes that are not UTF-8) and an empty line
     * arrive as they were. */
    static const char tricky[] = "a\"b\\c{d},e NULL\0f\xff\n\t\r\\N";
    for (int i = 0; i < N; i += 7) {
        lines[i].message = (char *)(i % 2 ? tricky : "");
        lines[i].len = i % 2 ? sizeof tricky : 0;
    }
    snprintf(lines[1].request_id, sizeof lines[1].request_id, "q\"uo\\te{,}\t\n\\N");
    assert_int_equal(store_logs_put(s, lines, N, &err), 0);
    store_log_t *out = NULL;
    size_t n = 0;
    assert_int_equal(store_logs_list(s, "fn", NULL, 0, 0, N + 1, &out, &n, &err), 0);
    assert_int_equal(n, N);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(out[i].len, lines[i].len);
        if (lines[i].len)
            assert_memory_equal(out[i].message, lines[i].message, lines[i].len);
        assert_string_equal(out[i].request_id, lines[i].request_id);
        assert_int_equal(out[i].time_ms, lines[i].time_ms);
        if (i)
            assert_true(out[i].id > out[i - 1].id);
    }
    store_log_list_free(out, n);
    store_close(s);
}

static store_record_t rec(const char *id, const char *status, int attempts)
{
    store_record_t r = { .attempts = attempts, .start_ms = 5 };
    snprintf(r.request_id, sizeof r.request_id, "%s", id);
    snprintf(r.function, sizeof r.function, "fn");
    snprintf(r.status, sizeof r.status, "%s", status);
    return r;
}

static void assert_record(store_t *s, const char *id, const char *status, int attempts)
{
    store_record_t got;
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(store_record_get(s, id, &got, &err), 0);
    assert_string_equal(got.status, status);
    assert_int_equal(got.attempts, attempts);
    store_record_clear(&got);
}

/* A request's several records in one write (an event queued, run and
 * ended within one batch) end as written one after the other would: a
 * later attempt wins, and how an attempt ended is never replaced by that
 * attempt still under way, whichever order they come in and whatever the
 * table held before; usage counts what was kept. */
static void test_a_requests_records_in_one_write_end_as_written_in_turn(void **state)
{
    backend_t *b = *state;
    store_t *s = open_store(b);
    mf_error_t err = MF_ERROR_INIT;
    store_record_t before[] = { rec("late", "success", 1), rec("old", "running", 3) };
    assert_int_equal(store_records_put(s, before, 2, &err), 0);
    store_record_t recs[] = {
        rec("run", "queued", 1),   rec("late", "running", 1), rec("retry", "running", 1),
        rec("run", "running", 1),  rec("ended", "success", 1), rec("retry", "error", 1),
        rec("old", "success", 2),  rec("run", "success", 1),  rec("retry", "queued", 2),
        rec("ended", "running", 1), rec("retry", "running", 2), rec("old", "error", 2),
    };
    assert_int_equal(store_records_put(s, recs, sizeof recs / sizeof recs[0], &err), 0);
    assert_record(s, "run", "success", 1);
    assert_record(s, "late", "success", 1);
    assert_record(s, "retry", "running", 2);
    assert_record(s, "ended", "success", 1);
    assert_record(s, "old", "running", 3);
    assert_int_equal(pg_db_int(b, "SELECT count(*) FROM invocations"), 5);
    /* Usage follows what was kept, not what was sent: three calls ran
     * ("run", "late", "ended"); the writes the upsert did not take
     * ("late" running again, "old" of earlier attempts) changed nothing. */
    assert_int_equal(pg_db_int(b, "SELECT sum(requests) FROM usage"), 3);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_two_openers_migrate_once, setup_pg, teardown),
        cmocka_unit_test_setup_teardown(
            test_many_rows_are_written_at_once_and_a_bad_one_fails_them_all, setup_pg, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_requests_records_in_one_write_end_as_written_in_turn, setup_pg, teardown),
        cmocka_unit_test_setup_teardown(test_a_bad_url_or_no_server_is_a_clear_error, setup_pg,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_lost_connection_is_reported_as_such, setup_pg,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_code_packages_are_kept_until_no_function_uses_them,
                                        setup_pg, teardown),
    };
    if (!pg_available())
        return 0;
    return cmocka_run_group_tests_name("the PostgreSQL store", tests, NULL, NULL);
}
