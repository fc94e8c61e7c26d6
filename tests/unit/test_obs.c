/* The metrics registry's mirrored histograms and the event loop's measure
 * of itself: busy iterations, the loop thread's CPU time and the
 * process's. Every check is on CPU time or on a lower bound of wall time,
 * so a busy machine cannot fail it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <uv.h>

#include "core/buf.h"
#include "obs/loop.h"
#include "obs/metrics.h"

/* The value of the sample line that starts with `prefix ` in text. */
static double sample(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (!strncmp(p, prefix, n) && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    fail_msg("no sample `%s` in:\n%s", prefix, text);
    return 0;
}

static char *render(void)
{
    buf_t out = BUF_INIT;
    metrics_render(&out);
    return buf_detach(&out, NULL);
}

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Burns at least s seconds of this thread's CPU (however long that takes
 * on a loaded machine). */
static void burn_cpu(double s)
{
    double until = thread_cpu_s() + s;
    while (thread_cpu_s() < until)
        ;
}

static void test_a_mirrored_histogram_renders_cumulative_buckets(void **state)
{
    static const double bounds[] = { 1, 2 };
    metrics_family_t *f = metrics_family_new(METRICS_HISTOGRAM, "t_hist", "A test.", NULL,
                                             bounds, 2);
    metrics_family_t *c = metrics_family_new(METRICS_COUNTER, "t_count", "A test.", NULL,
                                             NULL, 0);
    metrics_set_histogram(f, NULL, (const uint64_t[]){ 3, 0, 2 }, 7.5);
    /* Not a histogram: ignored rather than crashing. */
    metrics_set_histogram(c, NULL, (const uint64_t[]){ 1, 1, 1 }, 1);
    char *text = render();
    assert_true(sample(text, "t_hist_bucket{le=\"1\"}") == 3);
    assert_true(sample(text, "t_hist_bucket{le=\"2\"}") == 3);
    assert_true(sample(text, "t_hist_bucket{le=\"+Inf\"}") == 5);
    assert_true(sample(text, "t_hist_count") == 5);
    assert_true(sample(text, "t_hist_sum") == 7.5);
    assert_null(strstr(text, "\nt_count "));
    free(text);
    /* Set, not added: a second snapshot replaces the first. */
    metrics_set_histogram(f, NULL, (const uint64_t[]){ 4, 1, 2 }, 9);
    text = render();
    assert_true(sample(text, "t_hist_bucket{le=\"2\"}") == 5);
    assert_true(sample(text, "t_hist_count") == 7);
    free(text);
    metrics_free_all();
}

static void on_busy_timer(uv_timer_t *t)
{
    burn_cpu(0.06);
}

/* Starts the busy timer from the loop's first iteration, so it fires in a
 * later one: the first iteration has no earlier one to measure from. */
static void on_first_timer(uv_timer_t *t)
{
    uv_timer_start(t->data, on_busy_timer, 5, 0);
}

static void test_the_loop_measures_a_busy_iteration_and_its_cpu(void **state)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    obs_loop_t *l = NULL;
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(obs_loop_start(&loop, &l, &err), 0);
    obs_loop_t *again = NULL;
    assert_int_equal(obs_loop_start(&loop, &again, &err), -EBUSY);

    double cpu0 = thread_cpu_s();
    uv_timer_t first, busy;
    uv_timer_init(&loop, &first);
    uv_timer_init(&loop, &busy);
    first.data = &busy;
    uv_timer_start(&first, on_first_timer, 0, 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);

    char *text = render();
    double cpu = sample(text, "mayfly_event_loop_cpu_seconds_total");
    /* The clock is this thread's: the burn is in it, as is all it did. */
    assert_true(cpu >= 0.06);
    assert_true(cpu >= cpu0 + 0.06);
    assert_true(sample(text, "process_cpu_seconds_total") >= cpu);
    /* The burning iteration took 60 ms or more of wall time: it is above the
     * 50 ms bucket. */
    double n = sample(text, "mayfly_event_loop_busy_seconds_count");
    assert_true(n >= 1);
    assert_true(sample(text, "mayfly_event_loop_busy_seconds_bucket{le=\"0.05\"}") <= n - 1);
    assert_true(sample(text, "mayfly_event_loop_busy_seconds_sum") >= 0.06);
    free(text);

    uv_close((uv_handle_t *)&first, NULL);
    uv_close((uv_handle_t *)&busy, NULL);
    obs_loop_close(l);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    metrics_free_all();
}

static void burn_work(uv_work_t *w)
{
    burn_cpu(0.08);
}

static void burn_done(uv_work_t *w, int status)
{
}

static void test_work_on_the_thread_pool_is_not_the_loops_cpu(void **state)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    obs_loop_t *l = NULL;
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(obs_loop_start(&loop, &l, &err), 0);

    char *text = render();
    double loop0 = sample(text, "mayfly_event_loop_cpu_seconds_total");
    double proc0 = sample(text, "process_cpu_seconds_total");
    free(text);
    uv_work_t work;
    assert_int_equal(uv_queue_work(&loop, &work, burn_work, burn_done), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    text = render();
    double loop_cpu = sample(text, "mayfly_event_loop_cpu_seconds_total") - loop0;
    double proc_cpu = sample(text, "process_cpu_seconds_total") - proc0;
    free(text);
    assert_true(proc_cpu >= 0.08);
    /* The loop only waited: a small part of the process's CPU. */
    assert_true(loop_cpu < proc_cpu / 4);

    obs_loop_close(l);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    metrics_free_all();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_mirrored_histogram_renders_cumulative_buckets),
        cmocka_unit_test(test_the_loop_measures_a_busy_iteration_and_its_cpu),
        cmocka_unit_test(test_work_on_the_thread_pool_is_not_the_loops_cpu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
