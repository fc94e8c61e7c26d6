/* What only the queue on PostgreSQL does: several connections (nodes) on
 * one table of events. Two nodes taking from the pool never take the same
 * event, a take passes over the events another holds rather than waiting, seq
 * numbers follow each connection's inserts, and a writer whose connection
 * dies in the middle of a batch leaves nothing of it behind. Each test
 * has a database of its own on the server MAYFLY_TEST_PG names
 * (store_backends.h). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "store_backends.h"

#include "store/queue_pg_internal.h"

static int64_t insert(store_queue_t *q, const char *request_id, int64_t next_ms)
{
    store_qevent_t ev = {.enqueued_ms = 1, .next_ms = next_ms, .event = "{}", .event_len = 2};
    snprintf(ev.request_id, sizeof ev.request_id, "%s", request_id);
    snprintf(ev.function, sizeof ev.function, "fn");
    mf_error_t err = MF_ERROR_INIT;
    if (store_qevent_insert(q, &ev, &err) < 0)
        fail_msg("store_qevent_insert: %s", err.msg);
    return ev.seq;
}

/* The request ids a take from the pool got, "e-0 e-1", in its order. */
static void claim(store_queue_t *q, int limit, char *out, size_t size)
{
    store_qevent_t *list = NULL;
    size_t n = 0;
    mf_error_t err = MF_ERROR_INIT;
    if (store_qevent_take(q, "node", limit, &list, &n, &err) < 0)
        fail_msg("store_qevent_take: %s", err.msg);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(out);
        snprintf(out + len, size - len, "%s%s", i ? " " : "", list[i].request_id);
    }
    store_qevent_list_free(list, n);
}

/* ---- two claimers at once ------------------------------------------------- */

enum { EVENTS = 600, BATCH = 4 };

typedef struct claimer {
    const char *where;
    const char *node;
    pthread_barrier_t *start;
    int64_t *seqs; /* what it took, EVENTS at most */
    size_t n;
    int rounds;
    int r;
    mf_error_t err;
} claimer_t;

/* Claims on a connection of its own until nothing is left. No cmocka
 * asserts here: this is not the test's thread. */
static void *claim_all(void *arg)
{
    claimer_t *c = arg;
    store_queue_t *q = NULL;
    c->r = store_queue_open(c->where, &q, &c->err);
    pthread_barrier_wait(c->start);
    while (c->r == 0) {
        store_qevent_t *list = NULL;
        size_t n = 0;
        c->r = store_qevent_take(q, c->node, BATCH, &list, &n, &c->err);
        for (size_t i = 0; i < n && c->n < EVENTS; i++)
            c->seqs[c->n++] = list[i].seq;
        store_qevent_list_free(list, n);
        c->rounds++;
        if (n == 0)
            break;
    }
    store_queue_close(q);
    return NULL;
}

/* Two connections take from one pool at once, as two nodes would: each
 * event is taken by one of them, once, and together they take them all.
 * Had a take not locked what it chose, both could have chosen and updated
 * the same rows, and such an event would be taken twice (and held by the
 * one that wrote last). */
static void test_two_claimers_never_take_the_same_event(void **state)
{
    backend_t *b = *state;
    store_queue_t *q = open_queue(b);
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(store_queue_begin(q, false, &err), 0);
    int64_t first = 0;
    for (int i = 0; i < EVENTS; i++) {
        char rid[37];
        snprintf(rid, sizeof rid, "e-%d", i);
        int64_t seq = insert(q, rid, i % 7);
        if (i == 0)
            first = seq;
        assert_int_equal(seq, first + i); /* one connection: in insertion order */
    }
    assert_int_equal(store_queue_commit(q, &err), 0);

    pthread_barrier_t start;
    assert_int_equal(pthread_barrier_init(&start, NULL, 2), 0);
    claimer_t c[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        c[i] = (claimer_t){.where = b->where, .node = i ? "node-b" : "node-a", .start = &start};
        c[i].seqs = xcalloc(EVENTS, sizeof *c[i].seqs);
        assert_int_equal(pthread_create(&t[i], NULL, claim_all, &c[i]), 0);
    }
    cleanup_free unsigned char *taken = xcalloc(EVENTS, 1);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        if (c[i].r < 0)
            fail_msg("claimer %d: %s", i, c[i].err.msg);
        for (size_t k = 0; k < c[i].n; k++) {
            int64_t at = c[i].seqs[k] - first;
            assert_true(at >= 0 && at < EVENTS);
            if (taken[at]++)
                fail_msg("event %lld was taken twice", (long long)c[i].seqs[k]);
        }
        free(c[i].seqs);
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(c[0].n + c[1].n, EVENTS);
    assert_int_equal(queue_int(b, "SELECT count(*) FROM events WHERE owner = 'node-a'"), c[0].n);
    assert_int_equal(queue_int(b, "SELECT count(*) FROM events WHERE owner = 'node-b'"), c[1].n);
    store_queue_close(q);
}

/* A claim holds what it took until its transaction ends: another claim
 * meanwhile takes the others without waiting for it, and what the first
 * gives back (a rollback: its node died, say) is ready again. */
static void test_a_claim_passes_over_events_another_holds(void **state)
{
    backend_t *b = *state;
    store_queue_t *a = open_queue(b);
    for (int i = 0; i < 5; i++) {
        char rid[37];
        snprintf(rid, sizeof rid, "e-%d", i);
        insert(a, rid, i);
    }
    /* Were b's claim to wait on a's rows, it would fail here rather than
     * hang: a claim never waits, so no correct run comes near this. */
    setenv("PGOPTIONS", "-c lock_timeout=60000", 1);
    store_queue_t *other = open_queue(b);
    unsetenv("PGOPTIONS");

    mf_error_t err = MF_ERROR_INIT;
    char got[128];
    assert_int_equal(store_queue_begin(a, true, &err), 0);
    claim(a, 2, got, sizeof got);
    assert_string_equal(got, "e-0 e-1");
    claim(other, 10, got, sizeof got);
    assert_string_equal(got, "e-2 e-3 e-4");
    claim(other, 10, got, sizeof got);
    assert_string_equal(got, "");
    store_queue_rollback(a);
    claim(other, 10, got, sizeof got);
    assert_string_equal(got, "e-0 e-1");
    assert_int_equal(queue_int(b, "SELECT count(*) FROM events WHERE owner IS NULL"), 0);
    store_queue_close(other);
    store_queue_close(a);
}

/* Within a connection seq follows the inserts; across connections it is
 * the order the inserts ran, not the order they committed: a reader sees
 * the later number first until the earlier insert's transaction commits,
 * and then lists both in seq order. */
static void test_seq_order_within_and_across_connections(void **state)
{
    backend_t *b = *state;
    store_queue_t *a = open_queue(b), *other = open_queue(b), *reader = open_queue(b);
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(store_queue_begin(a, true, &err), 0);
    int64_t early = insert(a, "early", 0);
    int64_t late = insert(other, "late", 0);
    assert_true(late > early);
    store_qevent_t *list = NULL;
    size_t n = 0;
    assert_int_equal(store_qevent_list(reader, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].request_id, "late");
    store_qevent_list_free(list, n);
    assert_int_equal(store_queue_commit(a, &err), 0);
    assert_int_equal(store_qevent_list(reader, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].request_id, "early");
    assert_string_equal(list[1].request_id, "late");
    store_qevent_list_free(list, n);
    for (int i = 0; i < 3; i++)
        assert_true(insert(a, (const char *[]){"a1", "a2", "a3"}[i], 0) > late + i);
    store_queue_close(reader);
    store_queue_close(other);
    store_queue_close(a);
}

/* ---- a writer whose connection dies mid-batch ---------------------------- */

/* Two semaphores of a job that holds a writer's thread: it posts
 * started, then waits on gate. */
typedef struct held {
    uv_sem_t started, gate;
} held_t;

/* Runs args (args[0] the job that holds the thread, its started and gate
 * h's) through a new writer on b's queue as two batches: args[0], then all
 * the others at once, queued while it held the thread. */
static void run_held_batch(backend_t *b, held_t *h, store_job_apply_fn apply,
                           store_job_done_fn done, void **args, int n)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    mf_error_t err = MF_ERROR_INIT;
    store_writer_db_t db;
    store_writer_t *w = NULL;
    assert_int_equal(store_queue_writer_db(b->where, &db, &err), 0);
    assert_int_equal(store_writer_start(&loop, &db, NULL, NULL, &w, &err), 0);
    assert_int_equal(uv_sem_init(&h->started, 0), 0);
    assert_int_equal(uv_sem_init(&h->gate, 0), 0);
    store_writer_submit(w, true, apply, done, args[0]);
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_sem_wait(&h->started);
    for (int i = 1; i < n; i++)
        store_writer_submit(w, true, apply, done, args[i]);
    uv_sem_post(&h->gate);
    store_writer_wait(w);
    store_writer_stop(w);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    uv_sem_destroy(&h->started);
    uv_sem_destroy(&h->gate);
}

typedef struct kjob {
    const char *request_id;
    const char *admin_url; /* set: kill this job's own connection first */
    uv_sem_t *started, *gate;
    int r;
    char msg[512];
    bool called;
} kjob_t;

static int kjob_apply(void *db, void *arg, mf_error_t *err)
{
    kjob_t *j = arg;
    if (j->started)
        uv_sem_post(j->started);
    if (j->gate)
        uv_sem_wait(j->gate);
    if (j->admin_url) {
        /* No cmocka asserts here: this is the writer's thread. Once: the
         * batch runs again on a new connection. */
        PGconn *c = PQconnectdb(j->admin_url);
        j->admin_url = NULL;
        char sql[96];
        snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)",
                 PQbackendPID(store__pg_queue_conn(db)));
        PQclear(PQexec(c, sql));
        snprintf(sql, sizeof sql, "SELECT 1 FROM pg_stat_activity WHERE pid = %d",
                 PQbackendPID(store__pg_queue_conn(db)));
        for (;;) {
            PGresult *res = PQexec(c, sql);
            bool gone = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 0;
            PQclear(res);
            if (gone || PQstatus(c) != CONNECTION_OK)
                break;
            usleep(10000);
        }
        PQfinish(c);
    }
    store_qevent_t ev = {.enqueued_ms = 1, .next_ms = 1, .event = "{}", .event_len = 2};
    snprintf(ev.request_id, sizeof ev.request_id, "%s", j->request_id);
    snprintf(ev.function, sizeof ev.function, "fn");
    return store_qevent_insert(db, &ev, err);
}

static void kjob_done(void *arg, int r, const mf_error_t *err)
{
    kjob_t *j = arg;
    j->called = true;
    j->r = r;
    snprintf(j->msg, sizeof j->msg, "%s", r < 0 ? err->msg : "");
}

/* Three jobs in one batch; the second's connection is killed before it
 * writes. Nothing of the batch was committed, and the writer runs it
 * again, whole, on a new connection: every job succeeds, and each event
 * is in the queue once (test_store_outage.c has the rest). */
static void test_a_lost_connection_runs_the_whole_batch_again(void **state)
{
    backend_t *b = *state;
    held_t h;
    kjob_t jobs[4] = {
        {.request_id = "before", .started = &h.started, .gate = &h.gate},
        {.request_id = "first"},
        {.request_id = "killed", .admin_url = b->where},
        {.request_id = "after"},
    };
    void *args[4] = {&jobs[0], &jobs[1], &jobs[2], &jobs[3]};
    run_held_batch(b, &h, kjob_apply, kjob_done, args, 4);

    for (int i = 0; i < 4; i++) {
        assert_true(jobs[i].called);
        assert_int_equal(jobs[i].r, 0);
    }
    assert_int_equal(queue_int(b, "SELECT count(*) FROM events"), 4);
    assert_int_equal(queue_int(b, "SELECT count(DISTINCT request_id) FROM events"), 4);
}

/* ---- writes sent without waiting for their answers ----------------------- */

typedef struct djob {
    const char *request_id;
    const char *function;
    bool list;             /* lists the queue instead of queueing */
    uv_sem_t *started, *gate;
    store_qevent_t ev;     /* what it queued: its seq once committed */
    size_t listed;
    int r;
    char msg[512];
} djob_t;

static int djob_apply(void *db, void *arg, mf_error_t *err)
{
    djob_t *j = arg;
    if (j->started)
        uv_sem_post(j->started);
    if (j->gate)
        uv_sem_wait(j->gate);
    if (j->list) {
        store_qevent_t *list = NULL;
        int r = store_qevent_list(db, &list, &j->listed, err);
        store_qevent_list_free(list, j->listed);
        return r;
    }
    j->ev = (store_qevent_t){.enqueued_ms = 1, .next_ms = 1, .event = "{}", .event_len = 2};
    snprintf(j->ev.request_id, sizeof j->ev.request_id, "%s", j->request_id);
    snprintf(j->ev.function, sizeof j->ev.function, "%s", j->function);
    return store_qevent_insert(db, &j->ev, err);
}

static void djob_done(void *arg, int r, const mf_error_t *err)
{
    djob_t *j = arg;
    j->r = r;
    snprintf(j->msg, sizeof j->msg, "%s", r < 0 ? err->msg : "");
}

/* Runs jobs as one batch of a new writer on b's queue (behind a job of
 * its own that holds the thread until they are all queued). */
static void run_one_batch(backend_t *b, djob_t *jobs, int n)
{
    held_t h;
    djob_t hold = {.list = true, .started = &h.started, .gate = &h.gate};
    void *args[8] = {&hold};
    assert_true(n < 8);
    for (int i = 0; i < n; i++)
        args[i + 1] = &jobs[i];
    run_held_batch(b, &h, djob_apply, djob_done, args, n + 1);
    assert_int_equal(hold.r, 0);
}

/* Each queued event's number is the one PostgreSQL gave it. */
static void assert_seqs(backend_t *b, const djob_t *jobs, int n)
{
    for (int i = 0; i < n; i++) {
        if (jobs[i].list || jobs[i].r < 0)
            continue;
        char sql[96];
        snprintf(sql, sizeof sql, "SELECT seq FROM events WHERE request_id = '%s'",
                 jobs[i].request_id);
        assert_true(jobs[i].ev.seq > 0);
        assert_int_equal(queue_int(b, sql), jobs[i].ev.seq);
    }
}

/* In a batch run without savepoints the queue's writes go out without
 * waiting for each answer. A statement that needs an answer reads theirs
 * first (the list sees the events queued before it in the batch); each
 * event's number is known by the time its job is done; and a write that
 * PostgreSQL refuses (text that is not UTF-8) fails its own job alone,
 * with PostgreSQL's words, once the batch is run again with savepoints. */
static void test_deferred_writes_answer_before_the_commit_and_fail_alone(void **state)
{
    backend_t *b = *state;
    djob_t good[] = {
        {.request_id = "a", .function = "fn"},
        {.request_id = "b", .function = "fn"},
        {.list = true},
        {.request_id = "c", .function = "fn"},
    };
    run_one_batch(b, good, 4);
    for (int i = 0; i < 4; i++)
        if (good[i].r < 0)
            fail_msg("job %d: %s", i, good[i].msg);
    assert_int_equal(good[2].listed, 2);
    assert_seqs(b, good, 4);

    djob_t mixed[] = {
        {.request_id = "d", .function = "fn"},
        {.request_id = "bad", .function = "fn\xff\xfe"},
        {.list = true},
        {.request_id = "e", .function = "fn"},
    };
    run_one_batch(b, mixed, 4);
    assert_int_equal(mixed[0].r, 0);
    assert_int_equal(mixed[1].r, -EIO);
    assert_non_null(strstr(mixed[1].msg, "queue an event"));
    assert_non_null(strstr(mixed[1].msg, "UTF8"));
    assert_int_equal(mixed[2].r, 0);
    assert_int_equal(mixed[2].listed, 4);
    assert_int_equal(mixed[3].r, 0);
    assert_seqs(b, mixed, 4);
    assert_int_equal(queue_int(b, "SELECT count(*) FROM events"), 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_two_claimers_never_take_the_same_event, setup_pg,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_claim_passes_over_events_another_holds, setup_pg,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_seq_order_within_and_across_connections, setup_pg,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_lost_connection_runs_the_whole_batch_again, setup_pg,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_deferred_writes_answer_before_the_commit_and_fail_alone, setup_pg, teardown),
    };
    if (!pg_available())
        return 0;
    return cmocka_run_group_tests_name("the queue on PostgreSQL", tests, NULL, NULL);
}
