/* What only the SQLite store does, against a real database file in a fresh
 * directory: its file and the lock that keeps a second server out. What
 * both stores do is in test_store_shared.c. */
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
#include <pthread.h>
#include <sqlite3.h>

#include "tmpdir.h"

#include "core/cleanup.h"
#include "core/fs.h"
#include "core/pace.h"
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

/* Another connection reads what the first wrote, and takes no lock (the
 * first holds the directory's). The SQLite store keeps no code packages:
 * the data directory's unpacked ones are the only copy. */
static void test_reopen_shares_the_file_and_keeps_no_code(void **state)
{
    store_t *s = open_store(*state);
    mf_error_t err = MF_ERROR_INIT;
    store_function_t f = { .name = "f", .version = 1, .code_sha256 = "aa",
                           .config_json = (char *)"{}" };
    assert_int_equal(store_function_put(s, &f, &err), 0);
    store_t *again = NULL;
    assert_int_equal(store_reopen(s, &again, &err), 0);
    store_function_t got;
    assert_int_equal(store_function_get(again, "f", &got, &err), 0);
    assert_string_equal(got.code_sha256, "aa");
    store_function_clear(&got);
    assert_int_equal(store_schema_version(again), store_schema_version(s));

    assert_false(store_keeps_code(s));
    assert_int_equal(store_code_put(s, "aa", "zip", 3, &err), -ENOTSUP);
    assert_non_null(strstr(err.msg, "store_code_put"));
    store_close(again);
    store_close(s);
}

/* A batch of 2,000 records with 1 KiB events each, in one transaction:
 * many statements, and a commit of many pages. Their ids start with
 * prefix. */
static void put_many_records(store_t *s, const char *prefix)
{
    enum { N = 2000 };
    static char event[1024];
    memset(event, 'e', sizeof event);
    store_record_t *recs = xcalloc(N, sizeof *recs);
    for (int i = 0; i < N; i++) {
        snprintf(recs[i].request_id, sizeof recs[i].request_id, "%s-%d", prefix, i);
        snprintf(recs[i].function, sizeof recs[i].function, "f");
        snprintf(recs[i].status, sizeof recs[i].status, "success");
        recs[i].start_ms = 1700000000000 + i;
        recs[i].first = true;
        recs[i].event = event;
        recs[i].event_len = sizeof event;
        recs[i].event_bytes = sizeof event;
    }
    mf_error_t err = MF_ERROR_INIT;
    if (store_records_put(s, recs, N, &err) < 0)
        fail_msg("store_records_put: %s", err.msg);
    free(recs);
}

static void *write_in_background(void *arg)
{
    pace_background();
    put_many_records(arg, "background");
    return (void *)(uintptr_t)pace_yields();
}

/* A background thread's long write gives way now and then (core/pace.h):
 * in its statements (SQLite's progress handler) and in its commit's page
 * writes (the unix VFS's pwrite, replaced once a store is open). The
 * loop's own thread never does. */
static void test_background_writes_give_way(void **state)
{
    store_t *s = open_store(*state);
    sqlite3_vfs *vfs = sqlite3_vfs_find(NULL);
    assert_non_null(vfs);
    sqlite3_syscall_ptr pw = vfs->xGetSystemCall(vfs, "pwrite64");
    sqlite3_syscall_ptr pw32 = vfs->xGetSystemCall(vfs, "pwrite");
    assert_true(pw != NULL || pw32 != NULL);
    if (pw)
        assert_ptr_not_equal(pw, (sqlite3_syscall_ptr)pwrite64);
    if (pw32)
        assert_ptr_not_equal(pw32, (sqlite3_syscall_ptr)pwrite);

    put_many_records(s, "loop");
    assert_int_equal(pace_yields(), 0);

    pthread_t t;
    void *yields = NULL;
    assert_int_equal(pthread_create(&t, NULL, write_in_background, s), 0);
    assert_int_equal(pthread_join(t, &yields), 0);
    assert_true((uintptr_t)yields > 0);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reopen_shares_the_file_and_keeps_no_code, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_open_creates_schema, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_second_open_is_ebusy, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_uncreatable_dir, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_background_writes_give_way, setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
