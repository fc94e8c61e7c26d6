/* The SQLite store against a real database file in a fresh directory. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tmpdir.h"

#include "core/cleanup.h"
#include "core/fs.h"
#include "core/xalloc.h"
#include "store/store.h"
#include "store/writer.h"


static store_t *open_store(const char *dir)
{
    mf_error_t err = MF_ERROR_INIT;
    store_t *s = NULL;
    int r = store_open(dir, &s, &err);
    if (r < 0)
        fail_msg("store_open: %s", err.msg);
    return s;
}

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

static void test_open_creates_schema(void **state)
{
    const char *dir = *state;
    store_t *s = open_store(dir);
    assert_true(store_schema_version(s) >= 1);

    cleanup_free char *db = xasprintf("%s/mayfly.db", dir);
    struct stat st;
    assert_int_equal(stat(db, &st), 0);
    /* The lock file holds our pid, for the message a second server gets. */
    cleanup_free char *lock = xasprintf("%s/lock", dir);
    buf_t pid = BUF_INIT;
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(fs_read_file(lock, &pid, 64, &err), 0);
    assert_int_equal(atol(pid.data), (long)getpid());
    buf_release(&pid);
    store_close(s);
}

static void test_put_get_list_delete(void **state)
{
    store_t *s = open_store(*state);
    mf_error_t err = MF_ERROR_INIT;
    store_function_t f;

    make_fn(&f, "zeta", 1, "aa", "{\"runtime\":\"python3\"}");
    assert_int_equal(store_function_put(s, &f, &err), 0);
    make_fn(&f, "alpha", 3, "bb", "{\"runtime\":\"nodejs\"}");
    assert_int_equal(store_function_put(s, &f, &err), 0);
    make_fn(&f, "mid", 1, "aa", "{}");
    assert_int_equal(store_function_put(s, &f, &err), 0);

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
    assert_int_equal(n, 3);
    assert_string_equal(list[0].name, "alpha");
    assert_string_equal(list[1].name, "mid");
    assert_string_equal(list[2].name, "zeta");
    store_function_list_free(list, n);

    int64_t refs = -1;
    assert_int_equal(store_code_refs(s, "aa", &refs, &err), 0);
    assert_int_equal(refs, 2);
    assert_int_equal(store_code_refs(s, "bb", &refs, &err), 0);
    assert_int_equal(refs, 0);

    assert_int_equal(store_function_delete(s, "zeta", &err), 0);
    assert_int_equal(store_code_refs(s, "aa", &refs, &err), 0);
    assert_int_equal(refs, 1);
    assert_int_equal(store_function_list(s, &list, &n, &err), 0);
    assert_int_equal(n, 2);
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
    assert_int_equal(store_function_delete(s, "nope", &err), -ENOENT);

    store_function_t *list = NULL;
    size_t n = 99;
    assert_int_equal(store_function_list(s, &list, &n, &err), 0);
    assert_int_equal(n, 0);
    store_function_list_free(list, n);
    store_close(s);
}

static void test_reopen_keeps_data(void **state)
{
    mf_error_t err = MF_ERROR_INIT;
    store_t *s = open_store(*state);
    store_function_t f;
    make_fn(&f, "keep", 7, "dd", "{\"memory_mb\":256}");
    assert_int_equal(store_function_put(s, &f, &err), 0);
    int version = store_schema_version(s);
    store_close(s);

    /* Reopening runs no migration twice and finds what was written. */
    s = open_store(*state);
    assert_int_equal(store_schema_version(s), version);
    store_function_t got;
    assert_int_equal(store_function_get(s, "keep", &got, &err), 0);
    assert_int_equal(got.version, 7);
    assert_string_equal(got.config_json, "{\"memory_mb\":256}");
    store_function_clear(&got);
    store_close(s);
}

static void test_second_open_is_ebusy(void **state)
{
    store_t *s = open_store(*state);
    mf_error_t err = MF_ERROR_INIT;
    store_t *second = NULL;
    assert_int_equal(store_open(*state, &second, &err), -EBUSY);
    assert_null(second);
    assert_non_null(strstr(err.msg, "in use"));
    assert_non_null(strstr(err.msg, (const char *)*state));
    char pid[32];
    snprintf(pid, sizeof pid, "pid %ld", (long)getpid());
    assert_non_null(strstr(err.msg, pid));

    /* Once the first server is gone the directory is free again. */
    store_close(s);
    s = open_store(*state);
    store_close(s);
}

static void test_uncreatable_dir(void **state)
{
    /* A data dir below a regular file can never be created, even as root. */
    cleanup_free char *file = xasprintf("%s/file", (const char *)*state);
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(fs_write_file_atomic(file, "x", 1, 0644, &err), 0);
    cleanup_free char *dir = xasprintf("%s/data", file);
    store_t *s = NULL;
    int r = store_open(dir, &s, &err);
    assert_true(r < 0);
    assert_null(s);
    assert_non_null(strstr(err.msg, dir));
    assert_non_null(strstr(err.msg, strerror(ENOTDIR)));
}

/* ---- records and logs through a writer thread ----------------------------- */

typedef struct writes {
    store_record_t recs[2];
    store_log_t lines[3];
    int fail_with;               /* the job fails after writing, when set */
} writes_t;

static int writes_apply(void *db, void *arg, mf_error_t *err)
{
    writes_t *w = arg;
    int r = store_records_write(db, w->recs, 2, err);
    if (r == 0)
        r = store_logs_write(db, w->lines, 3, err);
    if (r == 0 && w->fail_with)
        r = mf_error_plain(err, w->fail_with, "this job fails");
    return r;
}

static void writes_done(void *arg, int r, const mf_error_t *err)
{
    writes_t *w = arg;
    w->fail_with = r; /* what the job's callback saw */
}

static void barrier_reached(void *ud)
{
    ++*(int *)ud;
}

static void on_guard(uv_timer_t *t)
{
    fail_msg("the writer's barrier was not reached within 60 s");
}

static void make_writes(writes_t *w, const char *prefix)
{
    memset(w, 0, sizeof *w);
    for (int i = 0; i < 2; i++) {
        snprintf(w->recs[i].request_id, sizeof w->recs[i].request_id, "%s-rec-%d", prefix, i);
        snprintf(w->recs[i].function, sizeof w->recs[i].function, "fn");
        snprintf(w->recs[i].status, sizeof w->recs[i].status, "success");
        w->recs[i].start_ms = 1700000000000 + i;
    }
    for (int i = 0; i < 3; i++) {
        snprintf(w->lines[i].function, sizeof w->lines[i].function, "fn");
        snprintf(w->lines[i].request_id, sizeof w->lines[i].request_id, "%s-rec-0", prefix);
        w->lines[i].stream = 1;
        w->lines[i].message = (char *)"a line";
        w->lines[i].len = 6;
    }
}

static void test_writer_writes_records_and_logs_off_the_loop(void **state)
{
    store_t *s = open_store(*state);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    mf_error_t err = MF_ERROR_INIT;
    store_writer_db_t db;
    store_writer_t *w = NULL;
    assert_int_equal(store_writer_db(s, &db, &err), 0);
    assert_int_equal(store_writer_start(&loop, &db, NULL, NULL, &w, &err), 0);

    writes_t ok, bad;
    make_writes(&ok, "ok");
    make_writes(&bad, "bad");
    bad.fail_with = EIO;
    int reached = 0;
    /* A writer does not keep a loop alive by itself: a guard timer does. */
    uv_timer_t guard;
    uv_timer_init(&loop, &guard);
    uv_timer_start(&guard, on_guard, 60000, 0);
    store_writer_submit(w, false, writes_apply, writes_done, &ok);
    store_writer_submit(w, false, writes_apply, writes_done, &bad);
    store_writer_barrier(w, barrier_reached, &reached);
    while (!reached)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    assert_int_equal(ok.fail_with, 0);
    assert_int_equal(bad.fail_with, -EIO);

    /* The loop's own connection sees what the writer committed; the failed
     * job's writes were undone, and nothing else of its batch. */
    store_record_t rec;
    assert_int_equal(store_record_get(s, "ok-rec-1", &rec, &err), 0);
    store_record_clear(&rec);
    assert_int_equal(store_record_get(s, "bad-rec-0", &rec, &err), -ENOENT);
    store_log_t *lines = NULL;
    size_t n = 0;
    assert_int_equal(store_logs_list(s, "fn", NULL, 0, 0, 100, &lines, &n, &err), 0);
    assert_int_equal(n, 3);
    store_log_list_free(lines, n);

    /* store_writer_wait blocks until the commit, without the loop. */
    writes_t more;
    make_writes(&more, "more");
    store_writer_submit(w, false, writes_apply, NULL, &more);
    store_writer_wait(w);
    assert_int_equal(store_record_get(s, "more-rec-0", &rec, &err), 0);
    store_record_clear(&rec);

    store_writer_stop(w);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_creates_schema, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_put_get_list_delete, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_missing_is_enoent, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_second_open_is_ebusy, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_uncreatable_dir, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_writer_writes_records_and_logs_off_the_loop,
                                        setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
