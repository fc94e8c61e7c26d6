/* When PostgreSQL goes away: a writer runs again what a lost connection
 * cut short, exactly once (a COMMIT cut off is asked about, not run
 * blindly again), fails at once what a client waits for while the store
 * is away and holds what the server owes until it is back; the loop's
 * connections come back on their own. Against the real server
 * MAYFLY_TEST_PG names, a database of its own per test
 * (store_backends.h), through a relay (pg_proxy.h) where a test needs an
 * outage on cue. */
#include <errno.h>
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

#include "pg_proxy.h"
#include "store_backends.h"

#include "store/health.h"

/* ---- jobs that write log lines, and count how often they ran ------------- */

typedef struct ljob {
    const char *tag; /* the function its lines are of */
    int lines;
    PGconn *killer; /* set: ends every other connection first, once */
    atomic_int applied;
    bool done;
    int r;
    char msg[512];
} ljob_t;

static int ljob_apply(void *db, void *arg, mf_error_t *err)
{
    ljob_t *j = arg;
    atomic_fetch_add(&j->applied, 1);
    if (j->killer) {
        /* No cmocka asserts here: this is the writer's thread. */
        PGconn *k = j->killer;
        j->killer = NULL;
        pg_kill_connections(k);
    }
    store_log_t *lines = xcalloc((size_t)j->lines, sizeof *lines);
    for (int i = 0; i < j->lines; i++) {
        lines[i].time_ms = 1000 + i;
        snprintf(lines[i].function, sizeof lines[i].function, "%s", j->tag);
        lines[i].stream = 1;
        lines[i].message = (char *)"a line";
        lines[i].len = 6;
    }
    int r = store_logs_write(db, lines, (size_t)j->lines, err);
    free(lines);
    return r;
}

static void ljob_done(void *arg, int r, const mf_error_t *err)
{
    ljob_t *j = arg;
    j->done = true;
    j->r = r;
    snprintf(j->msg, sizeof j->msg, "%s", r < 0 ? err->msg : "");
}

static long long lines_of(const backend_t *b, const char *tag)
{
    cleanup_free char *sql = xasprintf("SELECT count(*) FROM logs WHERE function = '%s'", tag);
    return pg_db_int(b, sql);
}

/* ---- a loop, and a writer on it ------------------------------------------ */

typedef struct rig {
    uv_loop_t loop;
    uv_timer_t tick; /* keeps the loop turning while a test waits */
    store_t *s;
    store_writer_t *w;
} rig_t;

static void on_tick(uv_timer_t *t)
{
}

static void rig_start(rig_t *g, const char *where)
{
    assert_int_equal(uv_loop_init(&g->loop), 0);
    uv_timer_init(&g->loop, &g->tick);
    uv_timer_start(&g->tick, on_tick, 5, 5);
    mf_error_t err = MF_ERROR_INIT;
    if (store_open(where, &g->s, &err) < 0)
        fail_msg("store_open: %s", err.msg);
    store_writer_db_t db;
    if (store_writer_db(g->s, &db, &err) < 0)
        fail_msg("store_writer_db: %s", err.msg);
    assert_int_equal(store_writer_start(&g->loop, &db, NULL, NULL, &g->w, &err), 0);
}

static void rig_stop(rig_t *g)
{
    store_writer_stop(g->w);
    uv_close((uv_handle_t *)&g->tick, NULL);
    uv_run(&g->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&g->loop), 0);
    store_close(g->s);
}

/* Turns the loop until *flag is set: a deadline only for a writer that
 * hangs, far past what any load makes of a wait that should end. */
static void rig_until(rig_t *g, const bool *flag)
{
    uint64_t deadline = uv_hrtime() + 120 * (uint64_t)1000000000;
    while (!*flag) {
        if (uv_hrtime() > deadline)
            fail_msg("a writer's job was not done within 120 s");
        uv_run(&g->loop, UV_RUN_ONCE);
    }
}

static void reached(void *ud)
{
    *(bool *)ud = true;
}

/* Waits for the store's health to say it is up (a test that takes it down
 * leaves it up for the next). */
static void until_store_up(void)
{
    for (int i = 0; store_down_since_ms() && i < 12000; i++)
        usleep(10000);
    assert_int_equal(store_down_since_ms(), 0);
}

/* ---- a terminated backend ------------------------------------------------ */

/* The second job of a batch ends the writer's backend (from another
 * connection, as an administrator or a failover does) before it writes:
 * the batch is lost before its COMMIT, so nothing of it was applied; the
 * writer connects again and runs the whole batch once more, and each
 * job's lines are there exactly once. A durable job in the batch (one a
 * client waits for) is run again with it, the store being reachable. */
static void test_a_batch_cut_by_a_terminated_backend_is_applied_once(void **state)
{
    backend_t *b = *state;
    rig_t g;
    rig_start(&g, b->where);
    PGconn *admin = pg_connect(b->where);
    ljob_t jobs[3] = {{.tag = "one", .lines = 5},
                      {.tag = "two", .lines = 7, .killer = admin},
                      {.tag = "three", .lines = 3}};
    /* One batch: the writer takes what was submitted before it wakes. */
    store_writer_submit(g.w, false, ljob_apply, ljob_done, &jobs[0]);
    store_writer_submit(g.w, false, ljob_apply, ljob_done, &jobs[1]);
    store_writer_submit(g.w, true, ljob_apply, ljob_done, &jobs[2]);
    bool all = false;
    store_writer_barrier(g.w, reached, &all);
    rig_until(&g, &all);
    for (int i = 0; i < 3; i++) {
        assert_true(jobs[i].done);
        if (jobs[i].r != 0)
            fail_msg("job %d: %s", i, jobs[i].msg);
        /* The jobs up to the lost connection ran twice; the one after it
         * never got to run the first time. */
        int runs = i < 2 ? 2 : 1;
        if (atomic_load(&jobs[i].applied) != runs)
            fail_msg("job %d ran %d times, not %d", i, atomic_load(&jobs[i].applied), runs);
        assert_int_equal(lines_of(b, jobs[i].tag), jobs[i].lines);
    }
    assert_int_equal(store_down_since_ms(), 0);
    rig_stop(&g);
    PQfinish(admin);
}

/* A read counts what it found into its job as it goes. */
typedef struct rjob {
    atomic_int applied;
    long long rows; /* lines it read, summed over its runs */
    bool done;
    int r;
    char msg[512];
} rjob_t;

static int rjob_apply(void *db, void *arg, mf_error_t *err)
{
    rjob_t *j = arg;
    atomic_fetch_add(&j->applied, 1);
    store_log_t *lines = NULL;
    size_t n = 0;
    int r = store_logs_list(db, "one", NULL, 0, 0, 100, &lines, &n, err);
    j->rows += (long long)n;
    store_log_list_free(lines, n);
    return r;
}

static void rjob_done(void *arg, int r, const mf_error_t *err)
{
    rjob_t *j = arg;
    j->done = true;
    j->r = r;
    snprintf(j->msg, sizeof j->msg, "%s", r < 0 ? err->msg : "");
}

/* A read in a batch whose connection is cut is not run again with the
 * batch's writes (its answer would be filled twice): it fails as it would
 * with the store away, once, and the writes are applied once. */
static void test_a_read_in_a_cut_batch_runs_once_and_fails(void **state)
{
    backend_t *b = *state;
    rig_t g;
    rig_start(&g, b->where);
    PGconn *admin = pg_connect(b->where);
    ljob_t before = {.tag = "one", .lines = 4};
    rjob_t read = {0};
    ljob_t killer = {.tag = "two", .lines = 2, .killer = admin};
    store_writer_submit(g.w, false, ljob_apply, ljob_done, &before);
    store_writer_submit_read(g.w, rjob_apply, rjob_done, &read);
    store_writer_submit(g.w, false, ljob_apply, ljob_done, &killer);
    bool all = false;
    store_writer_barrier(g.w, reached, &all);
    rig_until(&g, &all);
    assert_true(read.done);
    assert_int_equal(read.r, -ECONNRESET);
    assert_non_null(strstr(read.msg, "cannot be reached"));
    assert_int_equal(atomic_load(&read.applied), 1);
    assert_int_equal(read.rows, 4);
    assert_int_equal(before.r, 0);
    assert_int_equal(killer.r, 0);
    assert_int_equal(lines_of(b, "one"), 4);
    assert_int_equal(lines_of(b, "two"), 2);
    until_store_up();
    rig_stop(&g);
    PQfinish(admin);
}

/* ---- a COMMIT cut off ---------------------------------------------------- */

/* The COMMIT reaches the server, which applies it, but its answer is lost
 * with the connection: the writer cannot know from what it saw. It asks
 * the server on a new connection (by the transaction's id) and, told it
 * was applied, does not run the batch again: its lines are there once,
 * each job ran once, and all of them, the durable one too, succeed. */
static void test_a_commit_cut_off_after_it_was_applied_is_not_run_again(void **state)
{
    backend_t *b = *state;
    pg_proxy_t *px = pg_proxy_start(b->where);
    cleanup_free char *url = pg_proxy_url(px, b->where);
    rig_t g;
    rig_start(&g, url);
    ljob_t jobs[2] = {{.tag = "kept", .lines = 11}, {.tag = "waited", .lines = 2}};
    pg_proxy_cut_commit(px);
    store_writer_submit(g.w, false, ljob_apply, ljob_done, &jobs[0]);
    store_writer_submit(g.w, true, ljob_apply, ljob_done, &jobs[1]);
    bool all = false;
    store_writer_barrier(g.w, reached, &all);
    rig_until(&g, &all);
    assert_int_equal(pg_proxy_cuts(px), 1);
    for (int i = 0; i < 2; i++) {
        if (jobs[i].r != 0)
            fail_msg("job %d: %s", i, jobs[i].msg);
        assert_int_equal(atomic_load(&jobs[i].applied), 1);
        assert_int_equal(lines_of(b, jobs[i].tag), jobs[i].lines);
    }
    rig_stop(&g);
    pg_proxy_stop(px);
}

/* The connection goes with the COMMIT on its way, before the server saw
 * it: the server rolls the transaction back. Asked, it says so, and the
 * writer runs the batch again: its lines are there once. */
static void test_a_commit_that_never_arrived_is_run_again(void **state)
{
    backend_t *b = *state;
    pg_proxy_t *px = pg_proxy_start(b->where);
    cleanup_free char *url = pg_proxy_url(px, b->where);
    rig_t g;
    rig_start(&g, url);
    ljob_t job = {.tag = "again", .lines = 9};
    pg_proxy_drop_commit(px);
    store_writer_submit(g.w, false, ljob_apply, ljob_done, &job);
    bool all = false;
    store_writer_barrier(g.w, reached, &all);
    rig_until(&g, &all);
    assert_int_equal(pg_proxy_cuts(px), 1);
    if (job.r != 0)
        fail_msg("%s", job.msg);
    assert_int_equal(atomic_load(&job.applied), 2);
    assert_int_equal(lines_of(b, "again"), 9);
    rig_stop(&g);
    pg_proxy_stop(px);
}

/* ---- the store away ------------------------------------------------------ */

/* While the server cannot be reached, a job a client waits for fails at
 * once (a 503 for its request) with a message that says so; what the
 * server owes waits, in order, with a barrier after it, and is written
 * once the server is back, with no restart; past the writer's bound a
 * newer owed job is refused. The store's health says down, then up. */
static void test_while_the_store_is_away_waiters_fail_and_owed_writes_wait(void **state)
{
    backend_t *b = *state;
    pg_proxy_t *px = pg_proxy_start(b->where);
    cleanup_free char *url = pg_proxy_url(px, b->where);
    rig_t g;
    rig_start(&g, url);
    ljob_t first = {.tag = "first", .lines = 4};
    store_writer_submit(g.w, false, ljob_apply, ljob_done, &first);
    rig_until(&g, &first.done);
    assert_int_equal(first.r, 0);

    pg_proxy_down(px);
    ljob_t owed = {.tag = "owed", .lines = 6};
    store_writer_submit(g.w, false, ljob_apply, ljob_done, &owed);
    bool after_owed = false;
    store_writer_barrier(g.w, reached, &after_owed);
    ljob_t waiter = {.tag = "waiter", .lines = 1};
    store_writer_submit(g.w, true, ljob_apply, ljob_done, &waiter);
    rig_until(&g, &waiter.done);
    assert_true(store_unavailable(waiter.r));
    assert_non_null(strstr(waiter.msg, "the store (PostgreSQL) cannot be reached"));
    assert_non_null(strstr(waiter.msg, "retry later"));
    assert_true(store_down_since_ms() > 0);
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(store_check_up(&err), -ENOTCONN);
    assert_non_null(strstr(err.msg, "cannot be reached"));
    /* Another waiter, now that the writer knows: at once, -ENOTCONN. */
    ljob_t later = {.tag = "later", .lines = 1};
    store_writer_submit(g.w, true, ljob_apply, ljob_done, &later);
    rig_until(&g, &later.done);
    assert_int_equal(later.r, -ENOTCONN);
    /* Past the bound: refused, and the ones before it still held. */
    ljob_t big = {.tag = "big", .lines = 1};
    store_writer_submit_sized(g.w, false, WRITER_HELD_MAX_BYTES, ljob_apply, ljob_done, &big);
    rig_until(&g, &big.done);
    assert_int_equal(big.r, -ENOBUFS);
    /* A server's last writes do not wait for an outage. */
    store_writer_wait(g.w);
    assert_false(owed.done);
    assert_false(after_owed);

    pg_proxy_up(px);
    rig_until(&g, &after_owed);
    assert_true(owed.done);
    assert_int_equal(owed.r, 0);
    assert_int_equal(lines_of(b, "owed"), 6);
    assert_int_equal(lines_of(b, "waiter"), 0);
    assert_int_equal(lines_of(b, "later"), 0);
    assert_int_equal(lines_of(b, "big"), 0);
    until_store_up();
    /* And it serves waiters again. */
    ljob_t again = {.tag = "again", .lines = 2};
    store_writer_submit(g.w, true, ljob_apply, ljob_done, &again);
    rig_until(&g, &again.done);
    assert_int_equal(again.r, 0);
    rig_stop(&g);
    pg_proxy_stop(px);
}

/* ---- the loop's connections ---------------------------------------------- */

static int list_functions(store_t *s, mf_error_t *err)
{
    store_function_t *list = NULL;
    size_t n = 0;
    int r = store_function_list(s, &list, &n, err);
    store_function_list_free(list, n);
    return r;
}

/* A connection of the loop's whose backend is ended: the call that finds
 * it lost says so; the connection is made again by a thread of its own,
 * calls meanwhile failing at once, and then calls work again without
 * reopening. With the store away, calls fail at once, never waiting for
 * the server; it is back on its own once the server is. */
static void test_a_loop_connection_comes_back_on_its_own(void **state)
{
    backend_t *b = *state;
    pg_proxy_t *px = pg_proxy_start(b->where);
    cleanup_free char *url = pg_proxy_url(px, b->where);
    mf_error_t err = MF_ERROR_INIT;
    store_t *s = NULL;
    if (store_open(url, &s, &err) < 0)
        fail_msg("store_open: %s", err.msg);
    PGconn *admin = pg_connect(b->where);
    pg_kill_connections(admin);
    store_function_t f;
    assert_int_equal(store_function_get(s, "fn", &f, &err), -ECONNRESET);
    assert_non_null(strstr(err.msg, "lost the connection to PostgreSQL"));
    assert_non_null(strstr(err.msg, "the store (PostgreSQL) cannot be reached"));
    int r;
    for (int i = 0; (r = list_functions(s, &err)) == -ENOTCONN && i < 12000; i++)
        usleep(10000);
    if (r != 0)
        fail_msg("after a reconnect: %s", err.msg);

    pg_proxy_down(px);
    r = list_functions(s, &err);
    assert_true(store_unavailable(r));
    /* The store is down once a try to reconnect failed: then at once. */
    for (int i = 0; !store_down_since_ms() && i < 12000; i++)
        usleep(10000);
    assert_true(store_down_since_ms() > 0);
    /* -ENOTCONN: refused before any statement went to the network. */
    assert_int_equal(list_functions(s, &err), -ENOTCONN);
    assert_non_null(strstr(err.msg, "cannot be reached"));

    pg_proxy_up(px);
    for (int i = 0; (r = list_functions(s, &err)) != 0 && i < 12000; i++)
        usleep(10000);
    if (r != 0)
        fail_msg("after the store came back: %s", err.msg);
    until_store_up();
    store_close(s);
    PQfinish(admin);
    pg_proxy_stop(px);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_read_in_a_cut_batch_runs_once_and_fails, setup_pg,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_batch_cut_by_a_terminated_backend_is_applied_once,
                                        setup_pg, teardown),
        cmocka_unit_test_setup_teardown(test_a_commit_cut_off_after_it_was_applied_is_not_run_again,
                                        setup_pg, teardown),
        cmocka_unit_test_setup_teardown(test_a_commit_that_never_arrived_is_run_again, setup_pg,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_while_the_store_is_away_waiters_fail_and_owed_writes_wait, setup_pg, teardown),
        cmocka_unit_test_setup_teardown(test_a_loop_connection_comes_back_on_its_own, setup_pg,
                                        teardown),
    };
    if (!pg_available())
        return 0;
    return cmocka_run_group_tests_name("the store when PostgreSQL goes away", tests, NULL, NULL);
}
