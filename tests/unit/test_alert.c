/* Alert rules' pure half (watch/alert.h): the body's parse and its
 * errors, the windows' arithmetic (rates, counts, quantiles, what falls
 * out), the state machine with the time passed in, and the Alertmanager
 * document with its fingerprint. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "watch/alert.h"

static alert_rule_t parsed(const char *json)
{
    alert_rule_t r;
    mf_error_t err = MF_ERROR_INIT;
    if (alert_rule_parse(json, strlen(json), "rule", "team", &r, &err) < 0)
        fail_msg("%s: %s", json, err.msg);
    return r;
}

static void refused(const char *json, const char *field)
{
    alert_rule_t r;
    mf_error_t err = MF_ERROR_INIT;
    if (alert_rule_parse(json, strlen(json), "rule", "team", &r, &err) != -EINVAL)
        fail_msg("%s: accepted", json);
    if (strncmp(err.msg, field, strlen(field)))
        fail_msg("%s: `%s` does not start with %s", json, err.msg, field);
}

static void test_a_body_parses_with_its_defaults(void **state)
{
    alert_rule_t r = parsed("{\"function\":\"f\",\"metric\":\"error_rate\",\"op\":\">\","
                            "\"threshold\":0.05}");
    assert_string_equal(r.tenant, "team");
    assert_string_equal(r.function, "f");
    assert_int_equal(r.metric, ALERT_ERROR_RATE);
    assert_int_equal(r.op, '>');
    assert_true(r.threshold == 0.05);
    assert_int_equal(r.window_s, 300);
    assert_int_equal(r.for_s, 0);
    assert_string_equal(r.severity, "warning");
    assert_int_equal(r.notify.n, 0);
    r = parsed(
        "{\"tenant\":\"other\",\"budget\":\"cap\",\"metric\":\"budget_used\",\"op\":\">\","
        "\"threshold\":0.9,\"window_s\":10,\"for_s\":5,\"severity\":\"critical\","
        "\"notify\":[{\"webhook\":\"https://h/x\"},{\"function\":\"f\"},{\"topic\":\"t\"}]}");
    assert_string_equal(r.tenant, "other");
    assert_string_equal(r.budget, "cap");
    assert_int_equal(r.notify.n, 3);
    assert_int_equal(r.notify.t[0].kind, NOTIFY_WEBHOOK);
    assert_string_equal(r.notify.t[2].to, "t");
    /* absent takes no op: it breaches at no success. */
    r = parsed("{\"function\":\"*\",\"metric\":\"absent\"}");
    assert_true(alert_breaches(&r, 0));
    assert_false(alert_breaches(&r, 1));
    /* The JSON reads back as the same rule. */
    alert_rule_t a = parsed("{\"function\":\"f\",\"metric\":\"p99_duration_ms\",\"op\":\"<\","
                            "\"threshold\":250,\"notify\":[{\"topic\":\"t\"}]}");
    json_t *doc = alert_rule_json(&a);
    char *text = json_dumps(doc, 0);
    alert_rule_t b = parsed(text);
    assert_true(alert_rule_same(&a, &b));
    b.threshold = 251;
    assert_false(alert_rule_same(&a, &b));
    free(text);
    json_decref(doc);
}

static void test_bad_bodies_are_refused_naming_the_field(void **state)
{
    refused("[]", "body");
    refused("{", "body");
    refused("{\"metric\":\"error_rate\",\"op\":\">\",\"threshold\":0.1}", "function");
    refused("{\"function\":\"f\",\"op\":\">\",\"threshold\":0.1}", "metric");
    refused("{\"function\":\"f\",\"metric\":\"nope\",\"op\":\">\",\"threshold\":0.1}", "metric");
    refused("{\"function\":\"f\",\"metric\":\"error_rate\",\"op\":\"=\",\"threshold\":0.1}", "op");
    refused("{\"function\":\"f\",\"metric\":\"error_rate\",\"threshold\":0.1}", "op");
    refused("{\"function\":\"f\",\"metric\":\"error_rate\",\"op\":\">\"}", "threshold");
    refused("{\"function\":\"f\",\"metric\":\"error_rate\",\"op\":\">\",\"threshold\":1.5}",
            "threshold");
    refused("{\"function\":\"f\",\"metric\":\"invocations\",\"op\":\">\",\"threshold\":1,"
            "\"window_s\":3601}",
            "window_s");
    refused("{\"function\":\"f\",\"metric\":\"invocations\",\"op\":\">\",\"threshold\":1,"
            "\"for_s\":1.5}",
            "for_s");
    refused("{\"function\":\"f\",\"metric\":\"invocations\",\"op\":\">\",\"threshold\":1,"
            "\"notify\":{}}",
            "notify");
    refused("{\"function\":\"f\",\"metric\":\"invocations\",\"op\":\">\",\"threshold\":1,"
            "\"notify\":[{\"webhook\":\"http://\"}]}",
            "notify[0].webhook");
    refused("{\"function\":\"f\",\"metric\":\"invocations\",\"op\":\">\",\"threshold\":1,"
            "\"notify\":[{\"function\":\"a b\"}]}",
            "notify[0].function");
    refused("{\"function\":\"f\",\"metric\":\"budget_used\",\"op\":\">\",\"threshold\":1}",
            "function");
    refused("{\"budget\":\"b\",\"metric\":\"error_rate\",\"op\":\">\",\"threshold\":1}", "budget");
    refused("{\"function\":\"f\",\"metric\":\"absent\",\"threshold\":1}", "threshold");
    refused("{\"function\":\"f\",\"metric\":\"invocations\",\"op\":\">\",\"threshold\":1,"
            "\"name\":\"other\"}",
            "name");
    refused("{\"function\":\"f\",\"metric\":\"invocations\",\"op\":\">\",\"threshold\":1,"
            "\"x\":1}",
            "x");
}

#define T0 1700000000000LL /* a whole second */

static void test_windows_count_what_is_in_them(void **state)
{
    alert_window_t *w = malloc(sizeof *w);
    alert_window_init(w, T0);
    alert_counts_t c;
    double v;
    /* Nothing yet: rates have no data; a count is not whole yet. */
    alert_window_sum(w, T0 + 500, 5, &c);
    assert_false(alert_windowed_value(ALERT_ERROR_RATE, &c, &v));
    assert_false(alert_windowed_value(ALERT_INVOCATIONS, &c, &v));
    assert_false(alert_windowed_value(ALERT_ABSENT, &c, &v));
    alert_window_add(w, T0 + 100, "success", 10, true);
    alert_window_add(w, T0 + 1100, "error", 100, false);
    alert_window_add(w, T0 + 2100, "timeout", 1000, false);
    alert_window_add(w, T0 + 2200, "throttled", 0, false);
    alert_window_add(w, T0 + 2300, "queued", 0, false); /* not finished: left out */
    alert_window_sum(w, T0 + 2999, 3, &c);
    assert_int_equal(c.calls, 4);
    assert_int_equal(c.ran, 3);
    assert_true(alert_windowed_value(ALERT_ERROR_RATE, &c, &v) && v == 2.0 / 3);
    assert_true(alert_windowed_value(ALERT_TIMEOUT_RATE, &c, &v) && v == 1.0 / 3);
    assert_true(alert_windowed_value(ALERT_THROTTLE_RATE, &c, &v) && v == 0.25);
    assert_true(alert_windowed_value(ALERT_COLD_START_RATE, &c, &v) && v == 1.0 / 3);
    assert_true(alert_windowed_value(ALERT_INVOCATIONS, &c, &v) && v == 3);
    assert_true(alert_windowed_value(ALERT_ABSENT, &c, &v) && v == 1);
    /* p50 is the 100 ms call's bin, p99 the 1000 ms one's: upper bounds
     * at most a bin (26 %) above. */
    assert_true(alert_windowed_value(ALERT_P50_DURATION_MS, &c, &v));
    assert_true(v >= 100 && v <= 126);
    assert_true(alert_windowed_value(ALERT_P99_DURATION_MS, &c, &v));
    assert_true(v >= 1000 && v <= 1260);
    /* Two seconds on, the first two calls fell out of a 2 s window. */
    alert_window_sum(w, T0 + 3500, 2, &c);
    assert_int_equal(c.calls, 2);
    assert_int_equal(c.successes, 0);
    assert_true(alert_windowed_value(ALERT_ABSENT, &c, &v) && v == 0);
    /* A ring slot is not counted once its second has passed. */
    alert_window_sum(w, T0 + (ALERT_FINE_N + 1) * 1000LL + 100, 3, &c);
    assert_int_equal(c.calls, 0);
    /* Longer windows count whole minutes, this one included. */
    alert_window_sum(w, T0 + 300000, 600, &c);
    assert_int_equal(c.calls, 4);
    alert_window_sum(w, T0 + 20 * 60000LL, 600, &c);
    assert_int_equal(c.calls, 0);
    free(w);
}

static void test_histogram_bins(void **state)
{
    assert_int_equal(alert_hist_bin(0), 0);
    assert_int_equal(alert_hist_bin(0.5), 0);
    for (double ms = 1; ms < 1e6; ms *= 1.7) {
        int b = alert_hist_bin(ms);
        assert_true(ms < alert_hist_upper(b));
        assert_true(b == 0 || ms >= alert_hist_upper(b - 1));
    }
    assert_int_equal(alert_hist_bin(1e12), ALERT_HIST_BINS - 1);
}

static void test_the_state_machine(void **state)
{
    alert_rule_t r = parsed("{\"function\":\"f\",\"metric\":\"error_rate\",\"op\":\">\","
                            "\"threshold\":0.5,\"for_s\":10}");
    alert_series_t s = {0};
    assert_int_equal(alert_series_step(&s, &r, true, 0.1, T0), -1);
    assert_int_equal(alert_series_step(&s, &r, true, 0.9, T0 + 1000), ALERT_PENDING);
    assert_int_equal(alert_series_step(&s, &r, true, 0.9, T0 + 1000), -1);
    /* No data never moves it. */
    assert_int_equal(alert_series_step(&s, &r, false, 0, T0 + 5000), -1);
    assert_false(s.has_value);
    assert_int_equal(alert_series_step(&s, &r, true, 0.9, T0 + 10999), -1);
    assert_int_equal(alert_series_step(&s, &r, true, 0.9, T0 + 11000), ALERT_FIRING);
    assert_int_equal(s.fired_ms, T0 + 11000);
    assert_int_equal(alert_series_step(&s, &r, false, 0, T0 + 20000), -1);
    assert_int_equal(s.state, ALERT_FIRING);
    assert_int_equal(alert_series_step(&s, &r, true, 0.5, T0 + 21000), ALERT_RESOLVED);
    assert_int_equal(s.resolved_ms, T0 + 21000);
    assert_int_equal(alert_series_step(&s, &r, true, 0.2, T0 + 22000), -1);
    /* Again: pending, and back to ok when it stops before for_s. */
    assert_int_equal(alert_series_step(&s, &r, true, 0.7, T0 + 23000), ALERT_PENDING);
    assert_int_equal(alert_series_step(&s, &r, true, 0.2, T0 + 24000), ALERT_OK);
    /* for_s 0: ok → pending → firing at one evaluation. */
    r.for_s = 0;
    alert_series_t z = {0};
    assert_int_equal(alert_series_step(&z, &r, true, 0.9, T0), ALERT_PENDING);
    assert_int_equal(alert_series_step(&z, &r, true, 0.9, T0), ALERT_FIRING);
    assert_int_equal(alert_series_step(&z, &r, true, 0.9, T0), -1);
}

static void test_the_alertmanager_document(void **state)
{
    json_t *labels = json_pack("{ss ss}", "alertname", "errors", "function", "f");
    char fp[17];
    alert_fingerprint(labels, fp);
    assert_int_equal(strlen(fp), 16);
    /* Prometheus's: FNV-1a over the sorted names and values, 0xff between. */
    assert_string_equal(fp, "e07085ebe70458ad");
    json_t *same = json_pack("{ss ss}", "function", "f", "alertname", "errors");
    char fp2[17];
    alert_fingerprint(same, fp2);
    assert_string_equal(fp, fp2);
    json_decref(same);
    alert_notice_t n = {.status = "firing",
                        .labels = labels,
                        .summary = "s",
                        .description = "d",
                        .starts_ms = T0,
                        .ends_ms = 0,
                        .generator_url = "http://h/v1/alerts/errors"};
    json_t *doc = alert_document(&n, "mayfly", "http://h");
    assert_string_equal(json_string_value(json_object_get(doc, "version")), "4");
    assert_string_equal(json_string_value(json_object_get(doc, "status")), "firing");
    assert_string_equal(json_string_value(json_object_get(doc, "groupKey")),
                        "{}:{alertname=\"errors\"}");
    assert_int_equal(json_integer_value(json_object_get(doc, "truncatedAlerts")), 0);
    json_t *a = json_array_get(json_object_get(doc, "alerts"), 0);
    assert_string_equal(json_string_value(json_object_get(a, "startsAt")),
                        "2023-11-14T22:13:20.000Z");
    assert_string_equal(json_string_value(json_object_get(a, "endsAt")), "0001-01-01T00:00:00Z");
    assert_string_equal(json_string_value(json_object_get(a, "fingerprint")), fp);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(a, "annotations"), "summary")), "s");
    assert_true(json_equal(json_object_get(a, "labels"), json_object_get(doc, "commonLabels")));
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_body_parses_with_its_defaults),
        cmocka_unit_test(test_bad_bodies_are_refused_naming_the_field),
        cmocka_unit_test(test_windows_count_what_is_in_them),
        cmocka_unit_test(test_histogram_bins),
        cmocka_unit_test(test_the_state_machine),
        cmocka_unit_test(test_the_alertmanager_document),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
