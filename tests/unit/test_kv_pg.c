/* What only the KV stores on PostgreSQL do: several connections (several
 * servers) writing to one store at once, each write taking its turn, and
 * a writer whose connection is lost in the middle of a batch. Each test
 * has a database of its own on the server MAYFLY_TEST_PG names
 * (store_backends.h). */
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
#include "kv_ops.h"

static void begin(store_kv_t *kv)
{
    mf_error_t err = MF_ERROR_INIT;
    if (store_kv_begin(kv, true, &err) < 0)
        fail_msg("begin: %s", err.msg);
}

static void commit(store_kv_t *kv)
{
    mf_error_t err = MF_ERROR_INIT;
    if (store_kv_commit(kv, &err) < 0)
        fail_msg("commit: %s", err.msg);
}

/* ---- two connections incrementing one key ------------------------------- */

enum { ADDS = 1000 };

typedef struct adder {
    store_kv_t *kv; /* its own connection, opened (and closed) on the test's thread */
    int batch; /* increments per transaction; 1: each its own */
    pthread_barrier_t *start;
    int64_t values[ADDS], versions[ADDS];
    int r;
    mf_error_t err;
} adder_t;

/* ADDS increments of the counter: one by one, each committing on its own,
 * or in transactions of batch jobs with a savepoint each, as a writer
 * runs them (its locks then held until the batch commits). */
static void *add_in_thread(void *arg)
{
    adder_t *a = arg;
    store_kv_t *kv = a->kv;
    pthread_barrier_wait(a->start);
    for (int i = 0; i < ADDS && a->r == 0; i++) {
        bool batched = a->batch > 1;
        if (batched && i % a->batch == 0)
            a->r = store_kv_begin(kv, false, &a->err);
        if (a->r == 0 && batched)
            a->r = store_kv_savepoint(kv, &a->err);
        if (a->r == 0)
            a->r = store_kv_incr(kv, "counters", "hits", 4, 1, 0, T0, &a->values[i],
                                 &a->versions[i], &a->err);
        if (batched)
            store_kv_release(kv, a->r == 0);
        if (a->r == 0 && batched && (i + 1) % a->batch == 0)
            a->r = store_kv_commit(kv, &a->err);
    }
    return NULL;
}

static int cmp_int64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return a < b ? -1 : a > b;
}

/* Two servers add 1 to the same key 1,000 times each, at once: no
 * increment is lost, none counted twice, and the key's versions follow its
 * values up (the write that made 7 has a lower version than the one that
 * made 8). */
static void test_two_connections_increment_one_key_exactly(void **state)
{
    backend_t *b = *state;
    pthread_barrier_t start;
    assert_int_equal(pthread_barrier_init(&start, NULL, 2), 0);
    adder_t *a = xcalloc(2, sizeof *a);
    a[0] = (adder_t){ .kv = open_kv(b, 0, 0, 0), .batch = 1, .start = &start };
    a[1] = (adder_t){ .kv = open_kv(b, 0, 0, 0), .batch = 10, .start = &start };
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, add_in_thread, &a[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        store_kv_close(a[i].kv);
        if (a[i].r < 0)
            fail_msg("adder %d: %s", i, a[i].err.msg);
    }
    pthread_barrier_destroy(&start);

    /* Every value from 1 to 2,000 was given once, to one of them. */
    int64_t *version_of = xcalloc(2 * ADDS + 1, sizeof *version_of);
    for (int i = 0; i < 2; i++) {
        for (int k = 0; k < ADDS; k++) {
            int64_t v = a[i].values[k];
            assert_true(v >= 1 && v <= 2 * ADDS);
            assert_int_equal(version_of[v], 0);
            version_of[v] = a[i].versions[k];
            if (k)
                assert_true(v > a[i].values[k - 1]);
        }
    }
    for (int v = 2; v <= 2 * ADDS; v++)
        assert_true(version_of[v] > version_of[v - 1]);
    /* And no version was given twice. */
    qsort(version_of + 1, 2 * ADDS, sizeof *version_of, cmp_int64);
    for (int v = 2; v <= 2 * ADDS; v++)
        assert_true(version_of[v] != version_of[v - 1]);
    free(version_of);
    free(a);

    store_kv_t *kv = open_kv(b, 0, 0, 0);
    mf_error_t err = MF_ERROR_INIT;
    store_kv_item_t it;
    assert_int_equal(store_kv_get(kv, "counters", "hits", 4, T0, &it, &err), 0);
    assert_int_equal(it.value_len, 4);
    assert_memory_equal(it.value, "2000", 4);
    store_kv_item_clear(&it);
    store_kv_store_stats_t s;
    assert_int_equal(store_kv_store_stats(kv, "counters", &s, &err), 0);
    assert_int_equal(s.keys, 1);
    assert_int_equal(s.bytes, 4 + 4);
    store_kv_close(kv);
}

/* ---- a write that waits for another's commit ----------------------------- */

typedef struct writer_thread {
    store_kv_t *kv;
    store_kv_op_t op;
    int64_t now;
    int r;
    mf_error_t err;
    atomic_bool done;
} writer_thread_t;

static void *write_in_thread(void *arg)
{
    writer_thread_t *w = arg;
    w->r = store_kv_write(w->kv, "s", &w->op, w->now, NULL, &w->err);
    atomic_store(&w->done, true);
    return NULL;
}

/* first writes op in a transaction it keeps open; w's write, on another
 * thread, waits for it (it must not get past the store's lock), and once
 * first commits, fails with want, its message holding why. */
static void second_waits_then_fails(PGconn *admin, store_kv_t *first, store_kv_op_t op,
                                    int64_t *version, writer_thread_t *w, int want,
                                    const char *why)
{
    mf_error_t err = MF_ERROR_INIT;
    begin(first);
    assert_int_equal(store_kv_write(first, "s", &op, T0, version, &err), 0);
    pthread_t t;
    atomic_store(&w->done, false);
    assert_int_equal(pthread_create(&t, NULL, write_in_thread, w), 0);
    while (pg_lock_waiters(admin) < 1)
        assert_false(atomic_load(&w->done));
    commit(first);
    pthread_join(t, NULL);
    assert_int_equal(w->r, want);
    assert_non_null(strstr(w->err.msg, why));
}

/* A condition is checked against what the writes before it committed:
 * of two create-only puts of one key, or two puts at the same version,
 * on two connections at once, the second waits for the first, then
 * finds its condition gone. */
static void test_a_condition_waits_for_the_write_before_it(void **state)
{
    backend_t *b = *state;
    PGconn *admin = pg_connect(b->where);
    store_kv_t *first = open_kv(b, 0, 0, 0);
    writer_thread_t w = { .kv = open_kv(b, 0, 0, 0), .now = T0 };
    mf_error_t err = MF_ERROR_INIT;

    store_kv_op_t create = put_op("k", "first");
    create.if_absent = true;
    int64_t v1;
    w.op = put_op("k", "second");
    w.op.if_absent = true;
    second_waits_then_fails(admin, first, create, &v1, &w, -ECANCELED, "exists");

    /* If-Match: the same version on both; one wins. */
    store_kv_op_t cas = put_op("k", "cas");
    cas.if_version = v1;
    w.op = put_op("k", "late");
    w.op.if_version = v1;
    second_waits_then_fails(admin, first, cas, NULL, &w, -ECANCELED, "not");

    store_kv_item_t it;
    assert_int_equal(store_kv_get(first, "s", "k", 1, T0, &it, &err), 0);
    assert_memory_equal(it.value, "cas", 3);
    store_kv_item_clear(&it);
    store_kv_close(w.kv);
    store_kv_close(first);
    PQfinish(admin);
}

/* A store's bound on keys holds across servers: with room for one key,
 * two servers each making a new key at once leave one key and one
 * refusal. */
static void test_a_bound_holds_across_connections(void **state)
{
    backend_t *b = *state;
    PGconn *admin = pg_connect(b->where);
    store_kv_t *first = open_kv(b, 1, 0, 0);
    writer_thread_t w = { .kv = open_kv(b, 1, 0, 0), .now = T0, .op = put_op("y", "2") };
    mf_error_t err = MF_ERROR_INIT;
    second_waits_then_fails(admin, first, put_op("x", "1"), NULL, &w, -ENOSPC,
                            "store s is full");
    store_kv_store_stats_t s;
    assert_int_equal(store_kv_store_stats(first, "s", &s, &err), 0);
    assert_int_equal(s.keys, 1);
    store_kv_close(w.kv);
    store_kv_close(first);
    PQfinish(admin);
}

typedef struct sweeper {
    store_kv_t *kv;
    int r;
    mf_error_t err;
    int64_t removed;
    store_kv_store_stats_t *changed;
    size_t n;
    atomic_bool done;
} sweeper_t;

static void *sweep_in_thread(void *arg)
{
    sweeper_t *s = arg;
    s->r = store_kv_sweep(s->kv, T0 + 10, 100, &s->removed, &s->changed, &s->n, &s->err);
    atomic_store(&s->done, true);
    return NULL;
}

/* Sweeps on another thread, which must never wait for a lock, and
 * expects the three expired keys of store to go, keys left there. */
static void sweep_without_waiting(PGconn *admin, sweeper_t *s, const char *store, int64_t keys)
{
    pthread_t t;
    atomic_store(&s->done, false);
    assert_int_equal(pthread_create(&t, NULL, sweep_in_thread, s), 0);
    while (!atomic_load(&s->done))
        if (pg_lock_waiters(admin) > 0)
            fail_msg("the sweep waits for a lock");
    pthread_join(t, NULL);
    if (s->r < 0)
        fail_msg("sweep: %s", s->err.msg);
    assert_int_equal(s->removed, 3);
    assert_int_equal(s->n, 1);
    assert_string_equal(s->changed[0].name, store);
    assert_int_equal(s->changed[0].keys, keys);
    free(s->changed);
}

/* The sweep does not wait for a store another server is writing to: it
 * takes the other stores' expired keys, and that store's the next time. */
static void test_the_sweep_passes_a_store_being_written(void **state)
{
    backend_t *b = *state;
    PGconn *admin = pg_connect(b->where);
    store_kv_t *writing = open_kv(b, 0, 0, 0);
    sweeper_t sw = { .kv = open_kv(b, 0, 0, 0) };
    mf_error_t err = MF_ERROR_INIT;
    const char *stores[] = { "a", "b" };
    for (int i = 0; i < 2; i++) {
        for (int k = 0; k < 3; k++) {
            char key[16];
            snprintf(key, sizeof key, "k%d", k);
            store_kv_op_t op = put_op(key, "v");
            op.ttl_ms = 10;
            assert_int_equal(store_kv_write(writing, stores[i], &op, T0, NULL, &err), 0);
        }
    }
    begin(writing);
    store_kv_op_t live = put_op("live", "v");
    assert_int_equal(store_kv_write(writing, "a", &live, T0 + 10, NULL, &err), 0);

    sweep_without_waiting(admin, &sw, "b", 0);
    commit(writing);
    sweep_without_waiting(admin, &sw, "a", 1);
    store_kv_close(writing);
    store_kv_close(sw.kv);
    PQfinish(admin);
}

/* ---- a lost connection in the middle of a writer's batch ----------------- */

typedef struct put_job {
    const char *key;
    PGconn *killer; /* set: ends the writer's connection first */
    int r;
    char msg[512];
} put_job_t;

static int put_apply(void *db, void *arg, mf_error_t *err)
{
    put_job_t *j = arg;
    if (j->killer) {
        PGconn *k = j->killer;
        j->killer = NULL; /* once */
        pg_kill_connections(k);
    }
    store_kv_op_t op = put_op(j->key, "value");
    return store_kv_write(db, "s", &op, T0, NULL, err);
}

static void put_done(void *arg, int r, const mf_error_t *err)
{
    put_job_t *j = arg;
    j->r = r;
    snprintf(j->msg, sizeof j->msg, "%s", r < 0 ? err->msg : "");
}

static void reached(void *ud)
{
    *(bool *)ud = true;
}

/* The first job of a batch writes, the second loses the connection: the
 * batch was not committed, and the writer runs it again, whole, on a new
 * connection (test_store_outage.c has the rest): each key is there. */
static void test_a_lost_connection_runs_the_whole_batch_again(void **state)
{
    backend_t *b = *state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    mf_error_t err = MF_ERROR_INIT;
    store_kv_limits_t limits = { 0 };
    store_writer_db_t db;
    assert_int_equal(store_kv_writer_db(b->where, &limits, &db, &err), 0);
    store_writer_t *w;
    assert_int_equal(store_writer_start(&loop, &db, NULL, NULL, &w, &err), 0);
    PGconn *admin = pg_connect(b->where);
    put_job_t jobs[3] = { { .key = "k1" }, { .key = "k2", .killer = admin }, { .key = "k3" } };
    /* One batch: the writer takes what was submitted before it wakes. */
    for (int i = 0; i < 3; i++)
        store_writer_submit(w, true, put_apply, put_done, &jobs[i]);
    bool done = false;
    store_writer_barrier(w, reached, &done);
    uv_async_t keep;
    assert_int_equal(uv_async_init(&loop, &keep, NULL), 0);
    while (!done)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&keep, NULL);
    store_writer_stop(w);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(jobs[i].r, 0);
    PQfinish(admin);

    store_kv_t *kv = open_kv(b, 0, 0, 0);
    for (int i = 0; i < 3; i++) {
        store_kv_item_t it;
        assert_int_equal(store_kv_get(kv, "s", jobs[i].key, 2, T0, &it, &err), 0);
        assert_true(it.found);
        store_kv_item_clear(&it);
    }
    store_kv_close(kv);
}

/* A connection lost before a call: the call says so, and the connection
 * is made again in the background, calls failing at once meanwhile. */
static void test_a_lost_connection_is_reported_as_such(void **state)
{
    backend_t *b = *state;
    store_kv_t *kv = open_kv(b, 0, 0, 0);
    PGconn *admin = pg_connect(b->where);
    pg_kill_connections(admin);
    mf_error_t err = MF_ERROR_INIT;
    int64_t value, version;
    assert_int_equal(store_kv_incr(kv, "s", "n", 1, 1, 0, T0, &value, &version, &err),
                     -ECONNRESET);
    assert_non_null(strstr(err.msg, "lost the connection to PostgreSQL"));
    store_kv_item_t it;
    int r;
    for (int i = 0; (r = store_kv_get(kv, "s", "n", 1, T0, &it, &err)) == -ENOTCONN && i < 12000;
         i++)
        usleep(10000);
    assert_int_equal(r, -ENOENT);
    store_kv_close(kv);
    PQfinish(admin);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_two_connections_increment_one_key_exactly, setup_pg,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_condition_waits_for_the_write_before_it, setup_pg,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_bound_holds_across_connections, setup_pg,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_the_sweep_passes_a_store_being_written, setup_pg,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_lost_connection_runs_the_whole_batch_again, setup_pg,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_lost_connection_is_reported_as_such, setup_pg,
                                        teardown),
    };
    if (!pg_available())
        return 0;
    return cmocka_run_group_tests_name("the KV stores on PostgreSQL", tests, NULL, NULL);
}
