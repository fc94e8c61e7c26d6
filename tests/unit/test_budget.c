/* Budgets' arithmetic (meter/budget.h): the body's parse and its errors,
 * which calls a budget covers, its period, the forecast, the counters'
 * reads and roll-overs, thresholds crossed once, and the block decision.
 * Costs here are whole numbers and halves, so every comparison is exact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/clock.h"
#include "meter/budget.h"

static int64_t at(const char *rfc3339)
{
    int64_t ms;
    assert_int_equal(clock_parse_rfc3339(rfc3339, &ms), 0);
    return ms;
}

static budget_t parsed(const char *json)
{
    budget_t b;
    mf_error_t err = MF_ERROR_INIT;
    if (budget_parse(json, strlen(json), "cap", &b, &err) < 0)
        fail_msg("%s: %s", json, err.msg);
    return b;
}

static void test_a_body_parses_with_its_defaults(void **state)
{
    (void)state;
    budget_t b = parsed("{\"tenant\":\"team-b\",\"period\":\"day\",\"amount\":12.5}");
    assert_string_equal(b.name, "cap");
    assert_string_equal(b.tenant, "team-b");
    assert_string_equal(b.function, "");
    assert_int_equal(b.period, METER_DAY);
    assert_true(b.amount == 12.5);
    assert_int_equal(b.action, BUDGET_ALERT);
    assert_int_equal(b.n_alerts, 3);
    assert_true(b.alert_at[0] == 0.5 && b.alert_at[1] == 0.8 && b.alert_at[2] == 1.0);

    b = parsed("{\"tenant\":\"default\",\"function\":\"resize\",\"period\":\"month\","
               "\"amount\":3,\"alert_at\":[1.5,0.25],\"action\":\"block\",\"name\":\"cap\"}");
    assert_string_equal(b.function, "resize");
    assert_int_equal(b.period, METER_MONTH);
    assert_int_equal(b.action, BUDGET_BLOCK);
    assert_int_equal(b.n_alerts, 2);
    assert_true(b.alert_at[0] == 0.25 && b.alert_at[1] == 1.5); /* in order */

    /* What budget_json gives parses to the same budget. */
    json_t *doc = budget_json(&b);
    char *text = json_dumps(doc, JSON_COMPACT);
    budget_t again = parsed(text);
    assert_memory_equal(&again, &b, sizeof b);
    free(text);
    json_decref(doc);
}

static void expect_refused(const char *json, const char *name, const char *field)
{
    budget_t b;
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(budget_parse(json, strlen(json), name, &b, &err), -EINVAL);
    if (strncmp(err.msg, field, strlen(field)))
        fail_msg("%s: the error `%s` does not start with %s", json, err.msg, field);
}

static void test_bad_bodies_are_refused_naming_the_field(void **state)
{
    (void)state;
    expect_refused("{\"period\":\"day\",\"amount\":1}", "cap", "tenant");
    expect_refused("{\"tenant\":\"Team\",\"period\":\"day\",\"amount\":1}", "cap", "tenant");
    expect_refused("{\"tenant\":\"t\",\"amount\":1}", "cap", "period");
    expect_refused("{\"tenant\":\"t\",\"period\":\"year\",\"amount\":1}", "cap", "period");
    expect_refused("{\"tenant\":\"t\",\"period\":\"day\"}", "cap", "amount");
    expect_refused("{\"tenant\":\"t\",\"period\":\"day\",\"amount\":-1}", "cap", "amount");
    expect_refused("{\"tenant\":\"t\",\"period\":\"day\",\"amount\":true}", "cap", "amount");
    expect_refused("{\"tenant\":\"t\",\"period\":\"day\",\"amount\":1,\"alert_at\":[]}", "cap",
                   "alert_at");
    expect_refused("{\"tenant\":\"t\",\"period\":\"day\",\"amount\":1,\"alert_at\":[11]}", "cap",
                   "alert_at");
    expect_refused("{\"tenant\":\"t\",\"period\":\"day\",\"amount\":1,\"alert_at\":[1,1]}", "cap",
                   "alert_at");
    expect_refused("{\"tenant\":\"t\",\"period\":\"day\",\"amount\":1,\"action\":\"warn\"}", "cap",
                   "action");
    expect_refused("{\"tenant\":\"t\",\"period\":\"day\",\"amount\":1,\"function\":\"a~b\"}", "cap",
                   "function");
    expect_refused("{\"tenant\":\"t\",\"period\":\"day\",\"amount\":1,\"size\":1}", "cap", "size");
    expect_refused("{\"tenant\":\"t\",\"period\":\"day\",\"amount\":1,\"name\":\"x\"}", "cap",
                   "name");
    expect_refused("[]", "cap", "body");
    expect_refused("{", "cap", "body");
    expect_refused("{\"tenant\":\"t\",\"period\":\"day\",\"amount\":1}", "a/b", "name");
}

static void test_a_budget_covers_its_tenants_calls(void **state)
{
    (void)state;
    budget_t every = parsed("{\"tenant\":\"default\",\"period\":\"day\",\"amount\":1}");
    assert_true(budget_covers(&every, "resize"));
    assert_false(budget_covers(&every, "team-b~resize"));
    budget_t one = parsed("{\"tenant\":\"team-b\",\"function\":\"resize\",\"period\":\"day\","
                          "\"amount\":1}");
    assert_true(budget_covers(&one, "team-b~resize"));
    assert_false(budget_covers(&one, "team-b~thumbnail"));
    assert_false(budget_covers(&one, "resize"));
    /* Usage names a function qualified, or within the tenant it names. */
    store_usage_t u = { .tenant = "team-b", .function = "resize" };
    assert_true(budget_covers_usage(&one, &u));
    assert_false(budget_covers_usage(&every, &u));
    store_usage_t q = { .tenant = "default", .function = "team-b~resize" };
    assert_true(budget_covers_usage(&one, &q));
    assert_false(budget_covers_usage(&every, &q));
    store_usage_t d = { .tenant = "default", .function = "thumbnail" };
    assert_true(budget_covers_usage(&every, &d));
    assert_false(budget_covers_usage(&one, &d));
    char key[TENANT_QNAME_MAX + 1];
    budget_key(&one, key, sizeof key);
    assert_string_equal(key, "team-b~cap");
    budget_key(&every, key, sizeof key);
    assert_string_equal(key, "cap");
}

static void test_periods_and_the_forecast(void **state)
{
    (void)state;
    budget_t day = parsed("{\"tenant\":\"t\",\"period\":\"day\",\"amount\":100}");
    budget_t month = parsed("{\"tenant\":\"t\",\"period\":\"month\",\"amount\":100}");
    int64_t d = at("2026-12-06T00:00:00Z");
    assert_int_equal(budget_period_end(&day, d), at("2026-12-07T00:00:00Z"));
    assert_int_equal(budget_period_end(&month, at("2026-12-01T00:00:00Z")),
                     at("2027-01-01T00:00:00Z"));
    assert_int_equal(budget_period_end(&month, at("2027-02-01T00:00:00Z")),
                     at("2027-03-01T00:00:00Z"));
    /* A quarter of the day gone with 10 spent: 40 by its end. */
    assert_true(budget_forecast(&day, 10, d, at("2026-12-06T06:00:00Z")) == 40);
    assert_true(budget_forecast(&day, 10, d, d) == 10);
    /* A quarter of February 2027 (7 of 28 days) with 7 spent: 28. */
    assert_true(
        budget_forecast(&month, 7, at("2027-02-01T00:00:00Z"), at("2027-02-08T00:00:00Z")) == 28);
}

static void test_the_counters_add_read_and_roll_over(void **state)
{
    (void)state;
    budget_t b = parsed("{\"tenant\":\"t\",\"period\":\"day\",\"amount\":10}");
    budget_state_t st;
    int64_t now = at("2026-12-06T10:30:00Z");
    budget_state_init(&st, &b, now);
    assert_int_equal(st.period_start, at("2026-12-06T00:00:00Z"));
    assert_int_equal(st.period_end, at("2026-12-07T00:00:00Z"));
    /* A call whose hour is the day before counts not: usage puts it there. */
    budget_state_add(&st, at("2026-12-05T23:00:00Z"), 4);
    budget_state_add(&st, at("2026-12-06T10:00:00Z"), 2);
    assert_true(budget_state_spend(&st) == 2);
    /* A read asked for now (snap 2) answers 5 (other servers' 3 too);
     * meanwhile 1.5 more was observed here: 6.5, nothing twice. */
    double snap = st.observed;
    uint64_t gen = st.gen;
    budget_state_add(&st, at("2026-12-06T10:00:00Z"), 1.5);
    budget_state_synced(&st, gen, snap, 5);
    assert_true(budget_state_spend(&st) == 6.5);
    /* The day ends: 0 again, and a read asked for before is dropped. */
    assert_false(budget_state_roll(&st, &b, at("2026-12-06T23:59:59Z")));
    assert_true(budget_state_roll(&st, &b, at("2026-12-07T00:00:00Z")));
    assert_int_equal(st.period_start, at("2026-12-07T00:00:00Z"));
    assert_true(budget_state_spend(&st) == 0);
    budget_state_synced(&st, gen, snap, 9);
    assert_true(budget_state_spend(&st) == 0);
}

static void test_thresholds_are_crossed_once_a_period(void **state)
{
    (void)state;
    budget_t b = parsed("{\"tenant\":\"t\",\"period\":\"day\",\"amount\":4,"
                        "\"alert_at\":[0.5,1]}");
    budget_state_t st;
    int64_t now = at("2026-12-06T10:30:00Z");
    int64_t hour = at("2026-12-06T10:00:00Z");
    budget_state_init(&st, &b, now);
    budget_state_add(&st, hour, 1);
    assert_int_equal(budget_state_cross(&st, &b), 0);
    budget_state_add(&st, hour, 1); /* 2: half */
    assert_int_equal(budget_state_cross(&st, &b), 1);
    assert_int_equal(budget_state_cross(&st, &b), 0);
    budget_state_add(&st, hour, 3); /* 5: past the whole */
    assert_int_equal(budget_state_cross(&st, &b), 2);
    assert_int_equal(budget_state_cross(&st, &b), 0);
    /* Both at once, in a new period. */
    budget_state_roll(&st, &b, at("2026-12-07T00:00:01Z"));
    budget_state_add(&st, at("2026-12-07T00:00:00Z"), 4);
    assert_int_equal(budget_state_cross(&st, &b), 3);
}

static void test_only_a_spent_block_budget_blocks(void **state)
{
    (void)state;
    budget_t block = parsed("{\"tenant\":\"t\",\"period\":\"day\",\"amount\":3,"
                            "\"action\":\"block\"}");
    budget_t alert = parsed("{\"tenant\":\"t\",\"period\":\"day\",\"amount\":3}");
    assert_false(budget_blocks(&block, 2.5));
    assert_true(budget_blocks(&block, 3));
    assert_true(budget_blocks(&block, 7));
    assert_false(budget_blocks(&alert, 7));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_body_parses_with_its_defaults),
        cmocka_unit_test(test_bad_bodies_are_refused_naming_the_field),
        cmocka_unit_test(test_a_budget_covers_its_tenants_calls),
        cmocka_unit_test(test_periods_and_the_forecast),
        cmocka_unit_test(test_the_counters_add_read_and_roll_over),
        cmocka_unit_test(test_thresholds_are_crossed_once_a_period),
        cmocka_unit_test(test_only_a_spent_block_budget_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
