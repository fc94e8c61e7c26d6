/* The async queue's own concurrency limit (src/invoke/limit.h): where it
 * starts, how it climbs for attempts held up by nothing, how it falls for
 * attempts that waited for a CPU or for a saturated loop, and its bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <cmocka.h>

#include "invoke/limit.h"

/* An attempt of ms that waited wait_ms for a CPU, the loop at demand. */
static void feed(async_limit_t *l, int n, double ms, double wait_ms, double demand, bool held,
                 int max)
{
    async_limit_sample_t s = { .duration_ms = ms, .cpu_wait_ms = wait_ms,
                               .loop_demand = demand, .held_back = held };
    for (int i = 0; i < n; i++)
        async_limit_sample(l, &s, max);
}

static void test_starts_at_start_within_max(void **state)
{
    (void)state;
    async_limit_t l;
    async_limit_init(&l);
    assert_int_equal(async_limit_get(&l, 64), ASYNC_LIMIT_START);
    assert_int_equal(async_limit_get(&l, 3), 3);
    assert_int_equal(async_limit_get(&l, 1), 1);
    /* Paused: nothing runs. */
    assert_int_equal(async_limit_get(&l, 0), 0);
}

static void test_unhindered_attempts_double_it_each_round_up_to_max(void **state)
{
    (void)state;
    async_limit_t l;
    async_limit_init(&l);
    /* A round: as many attempts as the limit, each adding one. */
    feed(&l, 4, 300, 0.1, 0.2, true, 64);
    assert_int_equal(async_limit_get(&l, 64), 8);
    feed(&l, 8, 300, 0.1, 0.2, true, 64);
    assert_int_equal(async_limit_get(&l, 64), 16);
    feed(&l, 200, 300, 0.1, 0.2, true, 64);
    assert_int_equal(async_limit_get(&l, 64), 64);
    /* A smaller max_concurrency bounds it at once. */
    assert_int_equal(async_limit_get(&l, 10), 10);
}

static void test_it_does_not_climb_when_nothing_waits_on_it(void **state)
{
    (void)state;
    async_limit_t l;
    async_limit_init(&l);
    feed(&l, 100, 300, 0, 0.2, false, 64);
    assert_int_equal(async_limit_get(&l, 64), ASYNC_LIMIT_START);
}

static void test_waiting_for_a_cpu_makes_it_fall_to_the_floor(void **state)
{
    (void)state;
    async_limit_t l;
    async_limit_init(&l);
    feed(&l, 200, 300, 0.1, 0.2, true, 64);
    assert_int_equal(async_limit_get(&l, 64), 64);
    /* Three quarters of each attempt runnable but not running. */
    feed(&l, 10, 800, 600, 0.2, true, 64);
    int after10 = async_limit_get(&l, 64);
    assert_true(after10 < 64 && after10 > ASYNC_LIMIT_FLOOR);
    feed(&l, 500, 800, 600, 0.2, true, 64);
    assert_int_equal(async_limit_get(&l, 64), ASYNC_LIMIT_FLOOR);
    /* The floor is never above max_concurrency. */
    assert_int_equal(async_limit_get(&l, 1), 1);
}

static void test_after_a_fall_it_climbs_by_one_a_round(void **state)
{
    (void)state;
    async_limit_t l;
    async_limit_init(&l);
    feed(&l, 100, 800, 600, 0.2, true, 64);
    assert_int_equal(async_limit_get(&l, 64), ASYNC_LIMIT_FLOOR);
    /* The smoothed share first drops below ASYNC_LIMIT_LOW (nothing held
     * back meanwhile, so no growth). */
    feed(&l, 30, 300, 0, 0.2, false, 64);
    int from = async_limit_get(&l, 64);
    assert_int_equal(from, ASYNC_LIMIT_FLOOR);
    /* Rounds of as many attempts as the limit: one more each. */
    for (int round = 0; round < 5; round++)
        feed(&l, async_limit_get(&l, 64), 300, 0, 0.2, true, 64);
    int to = async_limit_get(&l, 64);
    assert_true(to >= from + 4 && to <= from + 6);
}

static void test_a_saturated_loop_makes_slowed_attempts_count(void **state)
{
    (void)state;
    async_limit_t l;
    async_limit_init(&l);
    /* A fast function learns its fastest attempt (1 ms)... */
    feed(&l, 60, 1, 0, 0.2, true, 64);
    assert_int_equal(async_limit_get(&l, 64), 64);
    /* ...then its answers wait for a saturated loop: 20 ms each. */
    feed(&l, 300, 20, 0, 0.97, true, 64);
    assert_int_equal(async_limit_get(&l, 64), ASYNC_LIMIT_FLOOR);
}

static void test_a_saturated_loop_spares_attempts_at_their_usual_speed(void **state)
{
    (void)state;
    async_limit_t l;
    async_limit_init(&l);
    /* Sleeps of 300 ms, some 1 s (never 4x the fastest of 300): an I/O-bound
     * function is not held back by the loop's load. */
    for (int i = 0; i < 200; i++)
        feed(&l, 1, i % 3 ? 300 : 1000, 0, 0.97, true, 64);
    assert_int_equal(async_limit_get(&l, 64), 64);
}

static void test_the_fastest_attempt_is_forgotten_after_two_windows(void **state)
{
    (void)state;
    async_limit_t l;
    async_limit_init(&l);
    feed(&l, 1, 1, 0, 0.2, false, 64);
    /* Two whole windows at 20 ms: 20 ms is now the fastest, so 20 ms
     * attempts on a saturated loop are no longer slow. */
    feed(&l, 2 * ASYNC_LIMIT_WINDOW, 20, 0, 0.2, false, 64);
    feed(&l, 100, 20, 0, 0.97, true, 64);
    assert_true(async_limit_get(&l, 64) > ASYNC_LIMIT_START);
}

static void test_unmeasured_waits_count_as_none(void **state)
{
    (void)state;
    async_limit_t l;
    async_limit_init(&l);
    feed(&l, 4, 300, -1, 0, true, 64);
    assert_int_equal(async_limit_get(&l, 64), 8);
    /* A negative duration (no attempt ran) is ignored. */
    feed(&l, 10, -1, 5, 1, true, 64);
    assert_int_equal(async_limit_get(&l, 64), 8);
}

/* ---- the foreground ---- */

static void accept_n(async_fg_t *f, int n, uint64_t now_ms)
{
    for (int i = 0; i < n; i++)
        async_fg_accepted(f, now_ms);
}

static void test_the_foreground_needs_accepts_and_a_saturated_loop(void **state)
{
    (void)state;
    async_fg_t f;
    async_fg_init(&f);
    const double busy = 0.95, at_least = 0.9;
    accept_n(&f, ASYNC_FG_ACCEPTS - 1, 1000);
    assert_false(async_fg_on(&f, 1000, busy, at_least));
    async_fg_accepted(&f, 1050);
    assert_true(async_fg_on(&f, 1050, busy, at_least));
    /* Not with a loop that has room; from the share asked for on. */
    assert_false(async_fg_on(&f, 1050, 0.89, at_least));
    assert_true(async_fg_on(&f, 1050, 0.9, at_least));
    /* Asked for at 0, whatever the loop; over 1, never. */
    assert_true(async_fg_on(&f, 1050, 0, 0));
    assert_false(async_fg_on(&f, 1050, 1, 1.01));
    /* The accepts count through the next window, not past it. */
    assert_true(async_fg_on(&f, 1000 + ASYNC_FG_WINDOW_MS + 50, busy, at_least));
    assert_false(async_fg_on(&f, 1000 + 2 * ASYNC_FG_WINDOW_MS + 10, busy, at_least));
    /* Spread over two windows they count together. */
    accept_n(&f, ASYNC_FG_ACCEPTS / 2, 5000);
    accept_n(&f, ASYNC_FG_ACCEPTS / 2, 5000 + ASYNC_FG_WINDOW_MS + 10);
    assert_true(async_fg_on(&f, 5000 + ASYNC_FG_WINDOW_MS + 20, busy, at_least));
    /* Nor when nothing looked in between. */
    accept_n(&f, ASYNC_FG_ACCEPTS, 7000);
    assert_false(async_fg_on(&f, 7000 + 2 * ASYNC_FG_WINDOW_MS + 10, busy, at_least));
    /* A clock that went back starts the count again. */
    assert_false(async_fg_on(&f, 10, busy, at_least));
}

typedef struct fn_sim {
    async_fg_node_t node;
    int started;
} fn_sim_t;

/* fn tries to start n attempts in one dispatch (its turn if it was first in
 * line); returns how many it started. */
static int dispatch(async_fg_t *f, fn_sim_t *fn, int n, uint64_t *running, bool on)
{
    bool turn = async_fg_take_turn(f, &fn->node);
    int k = 0;
    while (k < n && !async_fg_wait(f, &fn->node, *running, on, &turn)) {
        (*running)++;
        k++;
    }
    fn->started += k;
    return k;
}

static void test_functions_take_turns_within_the_foreground_s_attempts(void **state)
{
    (void)state;
    async_fg_t f;
    async_fg_init(&f);
    fn_sim_t fns[3] = { 0 };
    uint64_t running = 0;
    /* The first takes every attempt there is; the others wait in line, in
     * the order they came, and once each. */
    assert_int_equal(dispatch(&f, &fns[0], 10, &running, true), ASYNC_FG_ATTEMPTS);
    assert_int_equal(dispatch(&f, &fns[1], 10, &running, true), 0);
    assert_int_equal(dispatch(&f, &fns[2], 10, &running, true), 0);
    assert_int_equal(dispatch(&f, &fns[1], 10, &running, true), 0);
    assert_ptr_equal(f.head, &fns[0].node);
    assert_ptr_equal(f.head->next, &fns[1].node);
    assert_ptr_equal(f.head->next->next, &fns[2].node);
    assert_null(f.tail->next);
    /* No room: nobody's turn. */
    assert_null(async_fg_next(&f, running));
    /* From now on every attempt that ends lets the next in line start one,
     * and that one goes back to the end of the line. */
    int order[12];
    for (int i = 0; i < 12; i++) {
        running--;
        async_fg_node_t *next = async_fg_next(&f, running);
        assert_non_null(next);
        fn_sim_t *fn = (fn_sim_t *)next;
        /* Another function's dispatch in between is not its turn. */
        fn_sim_t *other = &fns[(fn - fns + 1) % 3];
        assert_int_equal(dispatch(&f, other, 10, &running, true), 0);
        assert_int_equal(dispatch(&f, fn, 10, &running, true), 1);
        assert_int_equal(running, ASYNC_FG_ATTEMPTS);
        order[i] = (int)(fn - fns);
    }
    for (int i = 0; i < 12; i++)
        assert_int_equal(order[i], i % 3);
    assert_int_equal(fns[0].started, ASYNC_FG_ATTEMPTS + 4);
    assert_int_equal(fns[1].started, 4);
    assert_int_equal(fns[2].started, 4);
}

static void released(async_fg_node_t *n, void *ud)
{
    int *count = ud;
    assert_false(n->waiting);
    assert_null(n->next);
    ((fn_sim_t *)n)->started = 100 + (*count)++;
}

static void test_without_the_foreground_nothing_waits_and_the_line_empties(void **state)
{
    (void)state;
    async_fg_t f;
    async_fg_init(&f);
    fn_sim_t fns[3] = { 0 };
    uint64_t running = 0;
    dispatch(&f, &fns[0], ASYNC_FG_ATTEMPTS, &running, true);
    dispatch(&f, &fns[1], 1, &running, true);
    dispatch(&f, &fns[2], 1, &running, true);
    /* Off: a function starts whatever the line and the attempts running. */
    assert_int_equal(dispatch(&f, &fns[2], 5, &running, false), 5);
    int count = 0;
    async_fg_release(&f, released, &count);
    assert_int_equal(count, 2);
    assert_int_equal(fns[1].started, 100);
    assert_int_equal(fns[2].started, 101);
    assert_null(f.head);
    assert_null(f.tail);
    assert_null(async_fg_next(&f, 0));
    /* And the line works again afterwards. */
    assert_int_equal(dispatch(&f, &fns[1], 1, &running, true), 0);
    assert_ptr_equal(f.head, &fns[1].node);
    assert_ptr_equal(f.tail, &fns[1].node);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_starts_at_start_within_max),
        cmocka_unit_test(test_unhindered_attempts_double_it_each_round_up_to_max),
        cmocka_unit_test(test_it_does_not_climb_when_nothing_waits_on_it),
        cmocka_unit_test(test_waiting_for_a_cpu_makes_it_fall_to_the_floor),
        cmocka_unit_test(test_after_a_fall_it_climbs_by_one_a_round),
        cmocka_unit_test(test_a_saturated_loop_makes_slowed_attempts_count),
        cmocka_unit_test(test_a_saturated_loop_spares_attempts_at_their_usual_speed),
        cmocka_unit_test(test_the_fastest_attempt_is_forgotten_after_two_windows),
        cmocka_unit_test(test_unmeasured_waits_count_as_none),
        cmocka_unit_test(test_the_foreground_needs_accepts_and_a_saturated_loop),
        cmocka_unit_test(test_functions_take_turns_within_the_foreground_s_attempts),
        cmocka_unit_test(test_without_the_foreground_nothing_waits_and_the_line_empties),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
