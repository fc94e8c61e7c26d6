/* A function's metrics over time (watch/series.h over store/series.h), the
 * same on both backends: records written, then each metric read back by
 * step and compared with what the records say by hand; and the query's
 * parser, its defaults and its refusals. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store_backends.h"

#include "watch/series.h"

#define FROM 600000
#define STEP 60000

static store_record_t rec(const char *id, const char *fn, const char *status, int64_t start,
                          double duration, int cold)
{
    store_record_t r = { .start_ms = start, .duration_ms = duration,
                         .billed_ms = (int64_t)ceil(duration), .memory_mb = 128,
                         .cold_start = cold, .attempts = 1, .version = 1 };
    snprintf(r.request_id, sizeof r.request_id, "%s", id);
    snprintf(r.function, sizeof r.function, "%s", fn);
    snprintf(r.status, sizeof r.status, "%s", status);
    return r;
}

static void put_records(store_t *s)
{
    store_record_t recs[] = {
        rec("r1", "fn", "success", FROM + 1000, 10, 1),
        rec("r2", "fn", "error", FROM + 2000, 30, 0),
        rec("r3", "fn", "success", FROM + 5000, 20, 0),
        rec("r4", "fn", "timeout", FROM + STEP, 1000, 1),
        rec("r5", "fn", "throttled", FROM + STEP + 500, 0, 0),
        rec("r6", "other", "success", FROM + 1000, 5, 1),
        rec("r7", "fn", "queued", FROM + 3000, 0, 0),
        rec("r8", "fn", "success", FROM + STEP + 100, 100, 0),
        /* Started before the window and still running in its first step. */
        rec("r9", "fn", "success", FROM - 10000, 20000, 0),
    };
    mf_error_t err = MF_ERROR_INIT;
    if (store_records_put(s, recs, sizeof recs / sizeof recs[0], &err) < 0)
        fail_msg("store_records_put: %s", err.msg);
}

static void read_metric(store_t *s, const char *metric, double out[3])
{
    watch_series_query_t q;
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(watch_series_parse(metric, "600000", "780000", "60", 0, &q, &err), 0);
    assert_int_equal(q.points, 3);
    meter_prices_t prices;
    meter_prices_default(&prices);
    if (watch_series_read(s, "fn", &q, &prices, out, &err) < 0)
        fail_msg("watch_series_read %s: %s", metric, err.msg);
}

static void expect3(store_t *s, const char *metric, double a, double b, double c)
{
    double v[3];
    read_metric(s, metric, v);
    double want[3] = { a, b, c };
    for (int i = 0; i < 3; i++) {
        if (isnan(want[i]) ? !isnan(v[i]) : fabs(v[i] - want[i]) > 1e-9)
            fail_msg("%s step %d: %g, not %g", metric, i, v[i], want[i]);
    }
}

static void test_each_metric_by_step(void **state)
{
    backend_t *b = *state;
    store_t *s = open_store(b);
    put_records(s);
    expect3(s, "invocations", 3, 2, 0);
    expect3(s, "errors", 1, 1, 0);
    expect3(s, "throttles", 0, 1, 0);
    expect3(s, "cold_starts", 1, 1, 0);
    /* Nearest rank: of 10, 20, 30 the 2nd and the 3rd; of 100, 1000 the
     * 1st and the 2nd. */
    expect3(s, "duration_p50", 20, 100, NAN);
    expect3(s, "duration_p99", 30, 1000, NAN);
    expect3(s, "duration_avg", 20, 550, NAN);
    /* r9 ran beside r1 and r2; r4 beside r8. */
    expect3(s, "concurrency", 2, 2, 0);
    expect3(s, "gb_seconds", 128.0 * 60 / 1024 / 1000, 128.0 * 1100 / 1024 / 1000, 0);
    double cost[3];
    read_metric(s, "cost", cost);
    meter_prices_t p;
    meter_prices_default(&p);
    store_usage_t u = { .requests = 3, .mb_ms = 128 * 60 };
    assert_true(fabs(cost[0] - meter_usage_cost(&p, &u)) < 1e-15);
    assert_true(cost[0] > 0 && cost[2] == 0);
    store_close(s);
}

static void parse_fails(const char *m, const char *from, const char *to, const char *step,
                        const char *names)
{
    watch_series_query_t q;
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(watch_series_parse(m, from, to, step, 7200000, &q, &err), -EINVAL);
    if (strncmp(err.msg, names, strlen(names)))
        fail_msg("`%s` does not start with %s", err.msg, names);
}

static void test_parse_defaults_and_refusals(void **state)
{
    watch_series_query_t q;
    mf_error_t err = MF_ERROR_INIT;
    /* The last hour, by minute, from moved back to a minute. */
    assert_int_equal(watch_series_parse("errors", NULL, NULL, NULL, 7230000, &q, &err), 0);
    assert_int_equal(q.metric, WATCH_SERIES_ERRORS);
    assert_int_equal(q.to_ms, 7230000);
    assert_int_equal(q.step_ms, 60000);
    assert_int_equal(q.from_ms, 3600000);
    assert_int_equal(q.points, 61);
    /* A day by default: 1,440 minutes would be too many, 2 minutes fit. */
    assert_int_equal(watch_series_parse("cost", "0", "86400000", "", 0, &q, &err), 0);
    assert_int_equal(q.step_ms, 120000);
    assert_int_equal(q.points, 720);
    assert_int_equal(watch_series_parse("cost", "1970-01-01T00:00:01Z", "1970-01-01T00:00:10Z",
                                        "1", 0, &q, &err),
                     0);
    assert_int_equal(q.from_ms, 1000);
    assert_int_equal(q.points, 9);
    parse_fails(NULL, NULL, NULL, NULL, "metric:");
    parse_fails("p95", NULL, NULL, NULL, "metric:");
    parse_fails("errors", "soon", NULL, NULL, "from:");
    parse_fails("errors", NULL, "2026-13-01T00:00:00Z", NULL, "to:");
    parse_fails("errors", "5000", "5000", NULL, "from:");
    parse_fails("errors", NULL, NULL, "0", "step:");
    parse_fails("errors", NULL, NULL, "60s", "step:");
    parse_fails("errors", NULL, NULL, "99999999999", "step:");
    parse_fails("errors", NULL, NULL, "3", "step:");
    parse_fails("errors", "0", "86400000", "86", "step:");
    assert_int_equal(watch_series_parse("errors", "0", "86400000", "87", 0, &q, &err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_each_metric_by_step, setup_backend, teardown),
        cmocka_unit_test(test_parse_defaults_and_refusals),
    };
    return run_on_both_backends("series of records", tests);
}
