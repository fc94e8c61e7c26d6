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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
