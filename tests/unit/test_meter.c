/* Usage reports and prices (meter/meter.h): periods in UTC, grouping,
 * the cost formula, the window widened to whole hours, and a prices file's
 * refusals. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/clock.h"
#include "meter/meter.h"

#define HOUR 3600000LL

static int64_t at(const char *rfc3339)
{
    int64_t ms;
    assert_int_equal(clock_parse_rfc3339(rfc3339, &ms), 0);
    return ms;
}

static store_usage_t row(const char *tenant, const char *function, const char *hour,
                         int64_t requests, int64_t mb_ms)
{
    store_usage_t u = { .hour_ms = at(hour), .requests = requests, .mb_ms = mb_ms,
                        .billed_ms = mb_ms / 1024, .cpu_ms = 1000, .kv_ops = 2000000,
                        .egress_bytes = 500000000, .log_bytes = 7 };
    snprintf(u.tenant, sizeof u.tenant, "%s", tenant);
    snprintf(u.function, sizeof u.function, "%s", function);
    return u;
}

static const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void test_months_days_and_groups(void **state)
{
    (void)state;
    store_usage_t rows[] = {
        row("default", "b", "2026-12-31T23:00:00Z", 1, 1024 * 1000),
        row("default", "a", "2026-12-31T23:00:00Z", 2, 0),
        row("team-b", "a", "2027-01-01T00:00:00Z", 3, 2048 * 500),
        row("default", "a", "2027-01-15T10:00:00Z", 4, 0),
    };
    meter_prices_t p;
    meter_prices_default(&p);
    meter_query_t q = { .from_ms = at("2026-12-31T23:30:00Z"), .to_ms = at("2027-01-15T10:00:01Z"),
                        .granularity = METER_MONTH, .group_by = METER_BY_FUNCTION };
    json_t *doc = meter_report(&q, rows, 4, &p);
    /* The window, widened to whole hours. */
    assert_string_equal(str(doc, "from"), "2026-12-31T23:00:00.000Z");
    assert_string_equal(str(doc, "to"), "2027-01-15T11:00:00.000Z");
    const json_t *list = json_object_get(doc, "rows");
    /* Dec a, Dec b, Jan a of each tenant: two tenants' functions of one
     * name are two rows, each with its tenant. */
    assert_int_equal(json_array_size(list), 4);
    assert_string_equal(str(json_array_get(list, 0), "period"), "2026-12-01T00:00:00.000Z");
    assert_string_equal(str(json_array_get(list, 0), "function"), "a");
    assert_string_equal(str(json_array_get(list, 1), "function"), "b");
    assert_string_equal(str(json_array_get(list, 2), "period"), "2027-01-01T00:00:00.000Z");
    assert_string_equal(str(json_array_get(list, 2), "tenant"), "default");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 2), "requests")), 4);
    assert_string_equal(str(json_array_get(list, 3), "function"), "a");
    assert_string_equal(str(json_array_get(list, 3), "tenant"), "team-b");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 3), "requests")), 3);
    const json_t *totals = json_object_get(doc, "totals");
    assert_int_equal(json_integer_value(json_object_get(totals, "requests")), 10);
    /* 1 GB for 1 s, and 2 GB for 0.5 s. */
    assert_true(fabs(json_real_value(json_object_get(totals, "gb_seconds")) - 2.0) < 1e-12);
    double cost = 10 / 1e6 * 0.20 + 2.0 * 0.0000166667;
    assert_true(fabs(json_real_value(json_object_get(totals, "cost")) - cost) < 1e-15);
    json_decref(doc);

    q.granularity = METER_DAY;
    q.group_by = METER_BY_TENANT;
    doc = meter_report(&q, rows, 4, &p);
    list = json_object_get(doc, "rows");
    assert_int_equal(json_array_size(list), 3); /* Dec 31 default, Jan 1 team-b, Jan 15 default */
    assert_string_equal(str(json_array_get(list, 0), "tenant"), "default");
    assert_string_equal(str(json_array_get(list, 1), "period"), "2027-01-01T00:00:00.000Z");
    assert_string_equal(str(json_array_get(list, 1), "tenant"), "team-b");
    assert_null(json_object_get(json_array_get(list, 0), "function"));
    json_decref(doc);

    /* Nothing to report: an empty list and zero totals. */
    doc = meter_report(&q, NULL, 0, &p);
    assert_int_equal(json_array_size(json_object_get(doc, "rows")), 0);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "totals"),
                                                        "requests")),
                     0);
    json_decref(doc);
}

static void test_every_price_counts(void **state)
{
    (void)state;
    const char text[] = "{\"currency\": \"EUR\", \"request_per_million\": 1, \"gb_second\": 2,"
                        " \"cpu_second\": 3, \"egress_gb\": 4, \"kv_ops_per_million\": 5,"
                        " \"kv_gb_month\": 6, \"volume_gb_month\": 7}";
    meter_prices_t p;
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(meter_prices_parse(text, sizeof text - 1, "p.json", &p, &err), 0);
    store_usage_t u = row("default", "f", "2026-12-01T00:00:00Z", 1000000, 1024 * 1000);
    /* 1 + 2×1 GB-s + 3×1 CPU-s + 4×0.5 GB + 5×2 million ops */
    assert_true(fabs(meter_usage_cost(&p, &u) - (1 + 2 + 3 + 2 + 10)) < 1e-9);
    assert_string_equal(p.currency, "EUR");
    /* Storage: one GB-month of KV values and half of one of volumes. */
    store_usage_t held = { .kv_byte_ms = (int64_t)METER_BYTE_MS_PER_GB_MONTH,
                           .volume_byte_ms = (int64_t)METER_BYTE_MS_PER_GB_MONTH / 2 };
    assert_true(meter_usage_cost(&p, &held) == 6 + 3.5);
}

static void test_bad_prices_and_words_are_named(void **state)
{
    (void)state;
    static const struct {
        const char *text, *mention;
    } bad[] = {
        { "{\"gb_second\": -1}", "gb_second" },
        { "{\"gb_second\": \"1\"}", "gb_second" },
        { "{\"cheap\": 1}", "cheap" },
        { "{\"currency\": \"\"}", "currency" },
        { "{\"currency\": \"US$\"}", "currency" },
        { "[]", "object" },
        { "{", "not JSON" },
        { "{\"gb_second\": 1, \"gb_second\": 2}", "not JSON" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        meter_prices_t p;
        mf_error_t err = MF_ERROR_INIT;
        assert_int_not_equal(
            meter_prices_parse(bad[i].text, strlen(bad[i].text), "p.json", &p, &err), 0);
        if (!strstr(err.msg, bad[i].mention) || !strstr(err.msg, "p.json"))
            fail_msg("%s: `%s` does not mention `%s`", bad[i].text, err.msg, bad[i].mention);
    }
    meter_granularity_t g;
    meter_group_t k;
    mf_error_t err = MF_ERROR_INIT;
    assert_int_not_equal(meter_parse_granularity("week", &g, &err), 0);
    assert_non_null(strstr(err.msg, "granularity"));
    assert_int_not_equal(meter_parse_group("color", &k, &err), 0);
    assert_non_null(strstr(err.msg, "group_by"));
    assert_int_equal(meter_parse_granularity("month", &g, &err), 0);
    assert_int_equal(g, METER_MONTH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_months_days_and_groups),
        cmocka_unit_test(test_every_price_counts),
        cmocka_unit_test(test_bad_prices_and_words_are_named),
    };
    return cmocka_run_group_tests_name("usage reports and prices", tests, NULL, NULL);
}
