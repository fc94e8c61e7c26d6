/* The adaptive keep-alive's policy (watch/keepalive.h): histograms of idle
 * times passed in, and the windows they give. Bins of one minute, the
 * longest window 10 minutes, as a server with --keep-alive-bin-s 60
 * --keep-alive-max-s 600. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "watch/keepalive.h"

#define MIN_MS (60 * 1000ull)

static const keepalive_config_t cfg = {.bin_ms = MIN_MS, .max_keep_alive_ms = 10 * MIN_MS};

static keepalive_window_t decide(const keepalive_hist_t *h)
{
    keepalive_window_t w;
    keepalive_decide(h, &cfg, &w);
    return w;
}

static void add_n(keepalive_hist_t *h, int n, uint64_t idle_ms)
{
    for (int i = 0; i < n; i++)
        keepalive_hist_add(h, &cfg, idle_ms);
}

static void test_a_function_called_once_gets_one_bin(void **state)
{
    (void)state;
    keepalive_hist_t h = {0};
    keepalive_window_t w = decide(&h);
    assert_int_equal(w.basis, KEEPALIVE_FALLBACK);
    assert_int_equal(w.prewarm_ms, 0);
    assert_int_equal(w.keep_alive_ms, MIN_MS);
    assert_true(w.keep_alive_ms < cfg.max_keep_alive_ms);
}

static void test_one_bin_never_passes_the_longest_window(void **state)
{
    (void)state;
    keepalive_hist_t h = {0};
    keepalive_config_t small = {.bin_ms = MIN_MS, .max_keep_alive_ms = 20000};
    keepalive_window_t w;
    keepalive_decide(&h, &small, &w);
    assert_int_equal(w.keep_alive_ms, 20000);
}

static void test_little_history_is_expected_again(void **state)
{
    (void)state;
    keepalive_hist_t h = {0};
    /* One idle time of 2.5 minutes: no rhythm yet, one bin. */
    add_n(&h, 1, 2 * MIN_MS + 30000);
    keepalive_window_t w = decide(&h);
    assert_int_equal(w.basis, KEEPALIVE_FALLBACK);
    assert_int_equal(w.prewarm_ms, 0);
    assert_int_equal(w.keep_alive_ms, MIN_MS);
    /* A second of 3.2 minutes (the next bin): they agree, and the next
     * is expected like them, pre-warmed from the shorter one's bin start
     * less 10 % to the longer one's end plus 10 %. */
    add_n(&h, 1, 3 * MIN_MS + 12000);
    w = decide(&h);
    assert_int_equal(w.basis, KEEPALIVE_FALLBACK);
    assert_int_equal(w.prewarm_ms, (uint64_t)(2 * MIN_MS * 0.9));
    assert_int_equal(w.keep_alive_ms, (uint64_t)(4 * MIN_MS * 1.1) - w.prewarm_ms);
    assert_int_equal(h.recent_ms[0], 3 * MIN_MS + 12000);
    assert_int_equal(h.recent_ms[1], 2 * MIN_MS + 30000);
    /* Two that disagree (a rare function's 20 and 200 minutes): one bin,
     * not hours of an instance spanning them. */
    keepalive_hist_t rare = {0};
    add_n(&rare, 1, 20 * MIN_MS);
    add_n(&rare, 1, 200 * MIN_MS);
    w = decide(&rare);
    assert_int_equal(w.prewarm_ms, 0);
    assert_int_equal(w.keep_alive_ms, MIN_MS);
    /* Within the margin of the longer: 100 and 108 minutes agree. */
    keepalive_hist_t hourly = {0};
    add_n(&hourly, 1, 100 * MIN_MS);
    add_n(&hourly, 1, 108 * MIN_MS);
    w = decide(&hourly);
    assert_int_equal(w.prewarm_ms, (uint64_t)(100 * MIN_MS * 0.9));
}

static void test_little_history_out_of_range_gets_one_bin(void **state)
{
    (void)state;
    keepalive_hist_t h = {0};
    add_n(&h, 2, 5 * 60 * MIN_MS); /* 5 hours: past the range */
    keepalive_window_t w = decide(&h);
    assert_int_equal(w.basis, KEEPALIVE_FALLBACK);
    assert_int_equal(w.prewarm_ms, 0);
    assert_int_equal(w.keep_alive_ms, MIN_MS);
    /* Calls that overlap (idle times of 0): warm a bin and a tenth. */
    keepalive_hist_t busy = {0};
    add_n(&busy, 2, 0);
    w = decide(&busy);
    assert_int_equal(w.prewarm_ms, 0);
    assert_int_equal(w.keep_alive_ms, (uint64_t)(MIN_MS * 1.1));
}

static void test_a_periodic_function_is_prewarmed(void **state)
{
    (void)state;
    /* Every 90 s: every idle time in bin 1 (1 to 2 minutes). */
    keepalive_hist_t h = {0};
    add_n(&h, KEEPALIVE_MIN_SAMPLES, 90000);
    keepalive_window_t w = decide(&h);
    assert_int_equal(w.basis, KEEPALIVE_HISTOGRAM);
    /* The head's bin starts at 60 s, less 10 %; the tail's ends at 120 s,
     * plus 10 %. */
    assert_int_equal(w.prewarm_ms, 54000);
    assert_int_equal(w.keep_alive_ms, 132000 - 54000);
    /* The call at 90 s falls inside the warm window. */
    assert_true(w.prewarm_ms < 90000 && 90000 < w.prewarm_ms + w.keep_alive_ms);
}

static void test_one_sample_short_of_enough_is_still_fallback(void **state)
{
    (void)state;
    keepalive_hist_t h = {0};
    add_n(&h, KEEPALIVE_MIN_SAMPLES - 1, 90000);
    assert_int_equal(decide(&h).basis, KEEPALIVE_FALLBACK);
    add_n(&h, 1, 90000);
    assert_int_equal(decide(&h).basis, KEEPALIVE_HISTOGRAM);
}

static void test_a_frequent_function_stays_warm_without_prewarm(void **state)
{
    (void)state;
    keepalive_hist_t h = {0};
    add_n(&h, 50, 5000); /* every few seconds: bin 0 */
    keepalive_window_t w = decide(&h);
    assert_int_equal(w.basis, KEEPALIVE_HISTOGRAM);
    assert_int_equal(w.prewarm_ms, 0);
    assert_int_equal(w.keep_alive_ms, (uint64_t)(MIN_MS * 1.1));
}

static void test_the_tail_sets_the_end_of_the_window(void **state)
{
    (void)state;
    keepalive_hist_t h = {0};
    /* 100 idle times: 5 % at 2 minutes, the rest at 5, and one at 40: the
     * 99th percentile is the 99th idle time, at 5 minutes (bin 5), and
     * waiting 35 minutes more for the one at 40 costs more than its cold
     * start. */
    add_n(&h, 5, 2 * MIN_MS + 1000);
    add_n(&h, 94, 5 * MIN_MS + 1000);
    add_n(&h, 1, 40 * MIN_MS + 1000);
    keepalive_window_t w = decide(&h);
    assert_int_equal(w.basis, KEEPALIVE_HISTOGRAM);
    assert_int_equal(w.prewarm_ms, (uint64_t)(2 * MIN_MS * 0.9));
    assert_int_equal(w.keep_alive_ms, (uint64_t)(6 * MIN_MS * 1.1) - w.prewarm_ms);
    /* Two more at 7 minutes move the 99th percentile there. */
    add_n(&h, 2, 7 * MIN_MS + 1000);
    w = decide(&h);
    assert_int_equal(w.keep_alive_ms, (uint64_t)(8 * MIN_MS * 1.1) - w.prewarm_ms);
}

static void test_the_window_reaches_past_the_tail_when_it_is_cheap(void **state)
{
    (void)state;
    /* Called every few seconds, with 1 % of its idle times at 3 minutes:
     * the 99th percentile is in bin 0, and a window that ends there
     * makes each of those a cold start, where 3 minutes more of the
     * instance cost less than the 10 bins a cold start is priced at. */
    keepalive_hist_t h = {0};
    add_n(&h, 990, 5000);
    add_n(&h, 10, 3 * MIN_MS + 1000);
    keepalive_window_t w = decide(&h);
    assert_int_equal(w.basis, KEEPALIVE_HISTOGRAM);
    assert_int_equal(w.prewarm_ms, 0);
    assert_int_equal(w.keep_alive_ms, (uint64_t)(4 * MIN_MS * 1.1));
    /* At 20 minutes the same idle times are cheaper as cold starts. */
    keepalive_hist_t far = {0};
    add_n(&far, 990, 5000);
    add_n(&far, 10, 20 * MIN_MS + 1000);
    w = decide(&far);
    assert_int_equal(w.keep_alive_ms, (uint64_t)(MIN_MS * 1.1));
}

static void test_the_keep_alive_window_is_capped_by_the_longest_one(void **state)
{
    (void)state;
    keepalive_hist_t h = {0};
    add_n(&h, 20, 30 * MIN_MS); /* every half hour: bin 30 */
    keepalive_window_t w = decide(&h);
    assert_int_equal(w.basis, KEEPALIVE_HISTOGRAM);
    assert_int_equal(w.prewarm_ms, (uint64_t)(30 * MIN_MS * 0.9));
    /* 31 × 1.1 − 27 = 7.1 minutes: under 10. */
    assert_int_equal(w.keep_alive_ms, (uint64_t)(31 * MIN_MS * 1.1) - w.prewarm_ms);
    keepalive_config_t tight = {.bin_ms = MIN_MS, .max_keep_alive_ms = 5 * MIN_MS};
    keepalive_decide(&h, &tight, &w);
    assert_int_equal(w.keep_alive_ms, 5 * MIN_MS);
}

static void test_idle_times_out_of_range_give_a_short_keep_alive(void **state)
{
    (void)state;
    keepalive_hist_t h = {0};
    add_n(&h, 6, 5 * 60 * MIN_MS); /* every 5 hours: past the 4-hour range */
    add_n(&h, 4, 2 * MIN_MS);
    assert_int_equal(h.out_of_range, 6);
    keepalive_window_t w = decide(&h);
    assert_int_equal(w.basis, KEEPALIVE_FALLBACK);
    assert_int_equal(w.keep_alive_ms, MIN_MS);
    assert_int_equal(w.prewarm_ms, 0);
    /* At most half out of range: the histogram again, and its tail out
     * of range keeps the longest window. */
    add_n(&h, 2, 2 * MIN_MS);
    w = decide(&h);
    assert_int_equal(w.basis, KEEPALIVE_HISTOGRAM);
    assert_int_equal(w.prewarm_ms, (uint64_t)(2 * MIN_MS * 0.9));
    assert_int_equal(w.keep_alive_ms, cfg.max_keep_alive_ms);
}

static void test_an_even_histogram_falls_back_to_the_longest_window(void **state)
{
    (void)state;
    /* Idle times spread over every bin: no rhythm to learn. */
    keepalive_hist_t h = {0};
    for (int i = 0; i < KEEPALIVE_BINS; i++)
        add_n(&h, 3, (uint64_t)i * MIN_MS + 1000);
    assert_true(keepalive_hist_cv(&h) < KEEPALIVE_MIN_CV);
    keepalive_window_t w = decide(&h);
    assert_int_equal(w.basis, KEEPALIVE_FALLBACK);
    assert_int_equal(w.prewarm_ms, 0);
    assert_int_equal(w.keep_alive_ms, cfg.max_keep_alive_ms);
}

static void test_the_cv_of_one_full_bin(void **state)
{
    (void)state;
    keepalive_hist_t h = {0};
    assert_true(keepalive_hist_cv(&h) == 0);
    add_n(&h, 10, 3 * MIN_MS);
    /* One bin of 240 holds everything: sqrt(239). */
    double cv = keepalive_hist_cv(&h);
    assert_true(cv > 15.45 && cv < 15.47);
}

static void test_the_histogram_halves_past_its_bound(void **state)
{
    (void)state;
    keepalive_hist_t h = {0};
    add_n(&h, KEEPALIVE_DECAY_AT, 90000);
    assert_int_equal(h.n, KEEPALIVE_DECAY_AT);
    add_n(&h, 1, 3 * MIN_MS);
    assert_int_equal(h.n, KEEPALIVE_DECAY_AT / 2 + 1);
    assert_int_equal(h.bins[1], KEEPALIVE_DECAY_AT / 2);
    assert_int_equal(h.bins[3], 1);
}

static void test_the_set_keeps_a_history_per_function(void **state)
{
    (void)state;
    keepalive_set_t *s = keepalive_set_new(&cfg);
    for (int i = 0; i < KEEPALIVE_MIN_SAMPLES; i++)
        keepalive_set_observe(s, "periodic", 90000);
    keepalive_window_t w;
    uint32_t samples;
    keepalive_set_decide(s, "periodic", &w, &samples);
    assert_int_equal(samples, KEEPALIVE_MIN_SAMPLES);
    assert_int_equal(w.basis, KEEPALIVE_HISTOGRAM);
    assert_int_equal(w.prewarm_ms, 54000);
    keepalive_set_decide(s, "other", &w, &samples);
    assert_int_equal(samples, 0);
    assert_int_equal(w.basis, KEEPALIVE_FALLBACK);
    keepalive_set_forget(s, "periodic");
    keepalive_set_decide(s, "periodic", &w, &samples);
    assert_int_equal(samples, 0);
    assert_string_equal(keepalive_basis_name(w.basis), "fallback");
    keepalive_set_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_function_called_once_gets_one_bin),
        cmocka_unit_test(test_one_bin_never_passes_the_longest_window),
        cmocka_unit_test(test_little_history_is_expected_again),
        cmocka_unit_test(test_little_history_out_of_range_gets_one_bin),
        cmocka_unit_test(test_a_periodic_function_is_prewarmed),
        cmocka_unit_test(test_one_sample_short_of_enough_is_still_fallback),
        cmocka_unit_test(test_a_frequent_function_stays_warm_without_prewarm),
        cmocka_unit_test(test_the_tail_sets_the_end_of_the_window),
        cmocka_unit_test(test_the_window_reaches_past_the_tail_when_it_is_cheap),
        cmocka_unit_test(test_the_keep_alive_window_is_capped_by_the_longest_one),
        cmocka_unit_test(test_idle_times_out_of_range_give_a_short_keep_alive),
        cmocka_unit_test(test_an_even_histogram_falls_back_to_the_longest_window),
        cmocka_unit_test(test_the_cv_of_one_full_bin),
        cmocka_unit_test(test_the_histogram_halves_past_its_bound),
        cmocka_unit_test(test_the_set_keeps_a_history_per_function),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
