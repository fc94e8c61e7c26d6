/* The right-sizing advisor's and the power tuner's arithmetic
 * (watch/advisor.h, watch/tune.h): verdicts from chosen peaks, the
 * CPU-bound test against the share memory buys, recommended sizes and
 * their predicted cost, the cautious answer on few calls, the tune
 * request's parse and its errors, and the table's recommendation by
 * strategy. Prices are chosen so costs are easy to check by hand. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "watch/advisor.h"
#include "watch/tune.h"

/* 1 per million requests, 1 per GB-second, nothing for CPU. */
static meter_prices_t prices(void)
{
    meter_prices_t p;
    meter_prices_default(&p);
    p.request_per_million = 1;
    p.gb_second = 1;
    p.cpu_second = 0;
    return p;
}

/* n warm successes at memory_mb, each duration_ms long, using cpu_ms, with
 * a memory peak of peak_mb. */
static watch_call_t *calls(size_t n, int memory_mb, double duration_ms, int64_t cpu_ms,
                           double peak_mb)
{
    watch_call_t *c = calloc(n, sizeof *c);
    for (size_t i = 0; i < n; i++)
        c[i] = (watch_call_t){.start_ms = 1000 + (int64_t)i,
                              .duration_ms = duration_ms,
                              .memory_mb = memory_mb,
                              .max_rss_kb = (int64_t)(peak_mb * 1024),
                              .cpu_ms = cpu_ms,
                              .status = WATCH_CALL_SUCCESS};
    return c;
}

static json_t *advise(const watch_call_t *c, size_t n, int memory_mb, unsigned cores)
{
    meter_prices_t p = prices();
    watch_advice_input_t in = {.function = "f",
                               .memory_mb = memory_mb,
                               .cores = cores,
                               .prices = &p,
                               .calls = c,
                               .n = n,
                               .from_ms = 0,
                               .to_ms = 7 * 86400000LL};
    return watch_advise(&in);
}

static const char *path_str(const json_t *o, const char *a, const char *b)
{
    return json_string_value(json_object_get(b ? json_object_get(o, a) : o, b ? b : a));
}

static json_int_t path_int(const json_t *o, const char *a, const char *b)
{
    return json_integer_value(json_object_get(json_object_get(o, a), b));
}

static double path_num(const json_t *o, const char *a, const char *b)
{
    return json_number_value(json_object_get(json_object_get(o, a), b));
}

static void test_shares_and_costs(void **state)
{
    (void)state;
    assert_true(fabs(watch_cpu_share(1769, 4) - 1.0) < 1e-12);
    assert_true(fabs(watch_cpu_share(128, 4) - 128.0 / 1769) < 1e-12);
    assert_true(watch_cpu_share(10240, 2) == 2.0); /* never more than the cores */
    meter_prices_t p = prices();
    /* 1024 MB for 1000 ms: one GB-second per call, a million of them. */
    assert_true(fabs(watch_cost_per_million(&p, 1024, 1000, 0) - (1 + 1e6)) < 1e-6);
    /* The duration is billed rounded up to the ms, at least 1. */
    assert_true(fabs(watch_cost_per_million(&p, 1024, 0.2, 0) - (1 + 1e3)) < 1e-6);
    assert_true(fabs(watch_cost_per_million(&p, 1024, 1.2, 0) - (1 + 2e3)) < 1e-6);
    p.cpu_second = 1;
    assert_true(fabs(watch_cost_per_million(&p, 1024, 1000, 500) - (1 + 1e6 + 5e5)) < 1e-6);
    assert_int_equal(watch_call_status("oom"), WATCH_CALL_OOM);
    assert_int_equal(watch_call_status("timeout"), WATCH_CALL_TIMEOUT);
    assert_int_equal(watch_call_status("throttled"), WATCH_CALL_OTHER);
}

static void test_a_peak_at_90_percent_gets_more_memory(void **state)
{
    (void)state;
    watch_call_t *c = calls(50, 256, 100, 1, 230.4); /* 90 % of 256 */
    json_t *a = advise(c, 50, 256, 2);
    assert_string_equal(path_str(a, "memory", "verdict"), "oom_risk");
    assert_string_equal(path_str(a, "confidence", NULL), "medium");
    /* The peak at 60 % of the new size (384 MB), on a 64 MB step. */
    assert_int_equal(path_int(a, "recommended", "memory_mb"), 384);
    assert_string_equal(path_str(a, "recommended", "change"), "increase");
    assert_false(json_is_true(json_object_get(json_object_get(a, "cpu"), "cpu_bound")));
    /* Not CPU-bound: only its CPU part (1 ms of CPU at 256/1769 of a
     * core) speeds up; the cost grows with the size. */
    double f = 1 / (100 * 256.0 / 1769);
    double want = round(100 * (1 - f + f * 256.0 / 384) * 100) / 100;
    assert_true(fabs(path_num(a, "recommended", "duration_ms") - want) < 1e-9);
    assert_true(fabs(path_num(a, "current", "cost_per_million") - (1 + 0.25 * 0.1 * 1e6)) < 1e-6);
    assert_true(fabs(path_num(a, "recommended", "cost_per_million") -
                     (1 + 384.0 / 1024 * ceil(want) / 1000 * 1e6)) < 1e-6);
    assert_int_equal(path_int(a, "evidence", "records"), 50);
    assert_int_equal(path_int(a, "evidence", "successes"), 50);
    json_decref(a);

    /* 80 % is the edge: just above it is a risk, 70 % is fine and kept. */
    for (size_t i = 0; i < 50; i++)
        c[i].max_rss_kb = (int64_t)(0.81 * 256 * 1024);
    a = advise(c, 50, 256, 2);
    assert_string_equal(path_str(a, "memory", "verdict"), "oom_risk");
    json_decref(a);
    for (size_t i = 0; i < 50; i++)
        c[i].max_rss_kb = (int64_t)(0.7 * 256 * 1024);
    a = advise(c, 50, 256, 2);
    assert_string_equal(path_str(a, "memory", "verdict"), "ok");
    assert_int_equal(path_int(a, "recommended", "memory_mb"), 256);
    assert_string_equal(path_str(a, "recommended", "change"), "none");
    json_decref(a);
    free(c);
}

static void test_the_p99_not_the_mean_decides(void **state)
{
    (void)state;
    /* 99 calls at 10 %, two at 95 %: the p99 of 101 is the 100th value. */
    watch_call_t *c = calls(101, 1000, 50, 1, 100);
    c[7].max_rss_kb = c[40].max_rss_kb = 950 * 1024;
    json_t *a = advise(c, 101, 1000, 2);
    assert_string_equal(path_str(a, "memory", "verdict"), "oom_risk");
    assert_string_equal(path_str(a, "confidence", NULL), "high");
    json_decref(a);
    /* One outlier alone is above the p99 and is not: waste. */
    c[40].max_rss_kb = 100 * 1024;
    a = advise(c, 101, 1000, 2);
    assert_string_equal(path_str(a, "memory", "verdict"), "waste");
    assert_true(path_num(a, "memory", "peak_max_mb") == 950);
    json_decref(a);
    free(c);
}

static void test_a_peak_at_10_percent_gets_less(void **state)
{
    (void)state;
    watch_call_t *c = calls(30, 1024, 20, 1, 102.4);
    json_t *a = advise(c, 30, 1024, 2);
    assert_string_equal(path_str(a, "memory", "verdict"), "waste");
    /* 102.4 / 0.6 = 170.7 → 192. */
    assert_int_equal(path_int(a, "recommended", "memory_mb"), 192);
    assert_string_equal(path_str(a, "recommended", "change"), "decrease");
    assert_true(path_num(a, "recommended", "cost_per_million") <
                path_num(a, "current", "cost_per_million"));
    json_decref(a);
    free(c);
}

static void test_five_calls_are_not_enough_to_shrink(void **state)
{
    (void)state;
    watch_call_t *c = calls(5, 1024, 20, 1, 102.4);
    json_t *a = advise(c, 5, 1024, 2);
    assert_string_equal(path_str(a, "confidence", NULL), "low");
    assert_string_equal(path_str(a, "memory", "verdict"), "waste");
    assert_int_equal(path_int(a, "recommended", "memory_mb"), 1024);
    assert_string_equal(path_str(a, "recommended", "change"), "none");
    assert_non_null(strstr(path_str(a, "message", NULL), "unsure: only 5 calls"));
    json_decref(a);
    /* At risk, a few calls are still enough to grow. */
    free(c);
    c = calls(5, 256, 20, 1, 240);
    a = advise(c, 5, 256, 2);
    assert_string_equal(path_str(a, "confidence", NULL), "low");
    assert_string_equal(path_str(a, "recommended", "change"), "increase");
    json_decref(a);
    free(c);
}

static void test_no_calls_say_so(void **state)
{
    (void)state;
    json_t *a = advise(NULL, 0, 512, 2);
    assert_string_equal(path_str(a, "confidence", NULL), "none");
    assert_non_null(strstr(path_str(a, "message", NULL), "no calls of f"));
    assert_null(json_object_get(a, "recommended"));
    assert_int_equal(path_int(a, "evidence", "records"), 0);
    json_decref(a);
    /* Throttled calls did not run: still nothing to advise from. */
    watch_call_t *c = calls(3, 512, 0, 0, 0);
    for (int i = 0; i < 3; i++)
        c[i].status = WATCH_CALL_OTHER;
    a = advise(c, 3, 512, 2);
    assert_string_equal(path_str(a, "confidence", NULL), "none");
    json_decref(a);
    free(c);
}

static void test_an_oom_doubles_the_size_at_least(void **state)
{
    (void)state;
    watch_call_t *c = calls(40, 512, 100, 1, 50);
    c[3].status = WATCH_CALL_OOM;
    c[3].max_rss_kb = 512 * 1024;
    c[9].status = WATCH_CALL_TIMEOUT;
    json_t *a = advise(c, 40, 512, 2);
    assert_string_equal(path_str(a, "memory", "verdict"), "oom_risk");
    assert_int_equal(path_int(a, "recommended", "memory_mb"), 1024);
    assert_int_equal(path_int(a, "evidence", "ooms"), 1);
    assert_int_equal(path_int(a, "evidence", "timeouts"), 1);
    assert_int_equal(path_int(a, "evidence", "successes"), 38);
    assert_non_null(strstr(path_str(a, "message", NULL), "ran out of memory"));
    json_decref(a);
    free(c);
}

static void test_cpu_bound_code_is_told_more_memory_is_faster(void **state)
{
    (void)state;
    /* At 256 MB (0.1447 cores), 1000 ms calls using 140 ms of CPU: bound. */
    watch_call_t *c = calls(40, 256, 1000, 140, 20);
    json_t *a = advise(c, 40, 256, 2);
    const json_t *cpu = json_object_get(a, "cpu");
    assert_true(json_is_true(json_object_get(cpu, "cpu_bound")));
    /* Single-threaded: the share stops helping at one core (1769 → 1792). */
    assert_int_equal(path_int(a, "recommended", "memory_mb"), 1792);
    double d = path_num(a, "recommended", "duration_ms");
    double want =
        1000 * (1 - 140 / (1000 * 256.0 / 1769) + 140 / (1000 * 256.0 / 1769) * (256.0 / 1769));
    assert_true(fabs(d - round(want * 100) / 100) < 0.01);
    assert_true(d < 200);
    json_decref(a);

    /* The same size, mostly waiting (10 ms of CPU a second): not bound,
     * and the memory is kept. */
    for (int i = 0; i < 40; i++)
        c[i].cpu_ms = 10, c[i].max_rss_kb = 128 * 1024;
    a = advise(c, 40, 256, 2);
    assert_false(json_is_true(json_object_get(json_object_get(a, "cpu"), "cpu_bound")));
    assert_int_equal(path_int(a, "recommended", "memory_mb"), 256);
    json_decref(a);
    free(c);
}

static watch_tune_request_t parsed(const char *body)
{
    watch_tune_request_t rq;
    mf_error_t err = MF_ERROR_INIT;
    if (watch_tune_parse(body, strlen(body), &rq, &err) < 0)
        fail_msg("%s: %s", body, err.msg);
    return rq;
}

static void refused(const char *body, const char *field)
{
    watch_tune_request_t rq;
    mf_error_t err = MF_ERROR_INIT;
    if (watch_tune_parse(body, strlen(body), &rq, &err) == 0)
        fail_msg("%s was accepted", body);
    if (strncmp(err.msg, field, strlen(field)))
        fail_msg("%s: the message `%s` does not start with %s", body, err.msg, field);
}

static void test_tune_requests_parse_with_defaults(void **state)
{
    (void)state;
    watch_tune_request_t rq = parsed("");
    assert_int_equal(rq.n_sizes, 5);
    assert_int_equal(rq.sizes[0], 128);
    assert_int_equal(rq.sizes[4], 2048);
    assert_int_equal(rq.runs, 10);
    assert_int_equal(rq.strategy, WATCH_TUNE_BALANCED);
    assert_string_equal(rq.event, "{}");
    watch_tune_request_release(&rq);

    rq = parsed("{\"event\": [1, {\"a\": \"b\"}], \"memory_mb\": [1024, 128], \"runs\": 3,"
                "\"strategy\": \"speed\"}");
    assert_int_equal(rq.n_sizes, 2);
    assert_int_equal(rq.sizes[0], 128); /* ascending */
    assert_int_equal(rq.sizes[1], 1024);
    assert_int_equal(rq.runs, 3);
    assert_int_equal(rq.strategy, WATCH_TUNE_SPEED);
    assert_string_equal(rq.event, "[1,{\"a\":\"b\"}]");
    watch_tune_request_release(&rq);
    rq = parsed("{\"event\": \"text\", \"strategy\": \"cost\"}");
    assert_string_equal(rq.event, "\"text\"");
    assert_int_equal(rq.strategy, WATCH_TUNE_COST);
    watch_tune_request_release(&rq);
}

static void test_bad_tune_requests_name_the_field(void **state)
{
    (void)state;
    refused("{\"runs\": 0}", "runs");
    refused("{\"runs\": 101}", "runs");
    refused("{\"runs\": \"3\"}", "runs");
    refused("{\"memory_mb\": []}", "memory_mb");
    refused("{\"memory_mb\": [64]}", "memory_mb");
    refused("{\"memory_mb\": [10241]}", "memory_mb");
    refused("{\"memory_mb\": [256, 256]}", "memory_mb");
    refused("{\"memory_mb\": 256}", "memory_mb");
    refused("{\"memory_mb\": [128.5]}", "memory_mb");
    refused("{\"memory_mb\": [128,256,384,512,640,768,896,1024,1152,1280,1408,1536,1664,1792,"
            "1920,2048,2176]}",
            "memory_mb");
    refused("{\"strategy\": \"fast\"}", "strategy");
    refused("{\"strategy\": 1}", "strategy");
    refused("{\"evnt\": {}}", "evnt");
    refused("{\"event\": ", "body");
    refused("[1]", "body");
    refused("{\"runs\": 1, \"runs\": 2}", "body");
}

static watch_tune_run_t ok_run(bool cold, double ms)
{
    return (watch_tune_run_t){.status = WATCH_CALL_SUCCESS,
                              .cold_start = cold,
                              .init_ms = cold ? 100 : 0,
                              .duration_ms = ms};
}

static void test_the_table_and_its_strategies(void **state)
{
    (void)state;
    meter_prices_t p = prices();
    watch_tune_request_t rq = parsed("{\"memory_mb\": [128, 1024, 2048], \"runs\": 3}");
    /* 128 runs out of memory every time; 1024 takes 100 ms, 2048 60 ms. */
    watch_tune_run_t runs[9] = {
        {.status = WATCH_CALL_OOM, .cold_start = true},
        {.status = WATCH_CALL_OOM, .cold_start = true},
        {.status = WATCH_CALL_ERROR, .error_type = "Boom"},
        ok_run(true, 150),
        ok_run(false, 100),
        ok_run(false, 110),
        ok_run(true, 80),
        ok_run(false, 60),
        ok_run(false, 60),
    };
    int done[3] = {3, 3, 3};
    json_t *t = watch_tune_table(&rq, runs, done, &p);
    const json_t *sizes = json_object_get(t, "sizes");
    const json_t *s128 = json_array_get(sizes, 0), *s1024 = json_array_get(sizes, 1);
    assert_int_equal(json_integer_value(json_object_get(s128, "errors")), 3);
    const json_t *types = json_object_get(s128, "error_types");
    assert_int_equal(json_array_size(types), 2);
    assert_string_equal(json_string_value(json_array_get(types, 0)), "oom");
    assert_string_equal(json_string_value(json_array_get(types, 1)), "Boom");
    assert_true(json_is_null(json_object_get(s128, "p50_ms")));
    assert_true(json_number_value(json_object_get(s1024, "cold_ms")) == 250);
    assert_true(json_number_value(json_object_get(s1024, "p50_ms")) == 100);
    assert_true(json_number_value(json_object_get(s1024, "p90_ms")) == 110);
    /* 1 + 1 GB × 0.1 s × 10^6. */
    assert_true(fabs(json_number_value(json_object_get(s1024, "cost_per_million")) - 100001) <
                1e-6);
    /* balanced: 1024 scores 0.5 × 100001/120001 + 0.5 × 1, 2048 0.5 + 0.5 × 0.6. */
    assert_int_equal(path_int(t, "recommended", "memory_mb"), 2048);
    assert_string_equal(path_str(t, "strategy", NULL), "balanced");
    json_decref(t);

    rq.strategy = WATCH_TUNE_COST;
    t = watch_tune_table(&rq, runs, done, &p);
    assert_int_equal(path_int(t, "recommended", "memory_mb"), 1024);
    json_decref(t);
    rq.strategy = WATCH_TUNE_SPEED;
    t = watch_tune_table(&rq, runs, done, &p);
    assert_int_equal(path_int(t, "recommended", "memory_mb"), 2048);
    json_decref(t);

    /* One error at a size rules it out; none left: no recommendation. */
    runs[8].status = WATCH_CALL_TIMEOUT;
    t = watch_tune_table(&rq, runs, done, &p);
    assert_int_equal(path_int(t, "recommended", "memory_mb"), 1024);
    json_decref(t);
    runs[4].status = WATCH_CALL_ERROR;
    t = watch_tune_table(&rq, runs, done, &p);
    assert_true(json_is_null(json_object_get(t, "recommended")));
    json_decref(t);
    watch_tune_request_release(&rq);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shares_and_costs),
        cmocka_unit_test(test_a_peak_at_90_percent_gets_more_memory),
        cmocka_unit_test(test_the_p99_not_the_mean_decides),
        cmocka_unit_test(test_a_peak_at_10_percent_gets_less),
        cmocka_unit_test(test_five_calls_are_not_enough_to_shrink),
        cmocka_unit_test(test_no_calls_say_so),
        cmocka_unit_test(test_an_oom_doubles_the_size_at_least),
        cmocka_unit_test(test_cpu_bound_code_is_told_more_memory_is_faster),
        cmocka_unit_test(test_tune_requests_parse_with_defaults),
        cmocka_unit_test(test_bad_tune_requests_name_the_field),
        cmocka_unit_test(test_the_table_and_its_strategies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
