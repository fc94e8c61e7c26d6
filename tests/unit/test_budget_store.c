/* Budgets in the store (store/budgets.h), the same on both backends: a
 * budget's settings round trip and survive reopening, a put tells a new
 * budget from a replaced one, a crossing is recorded once (and not for a
 * budget that is gone), and a delete takes its crossings with it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store_backends.h"

#include "store/budgets.h"

static store_budget_t budget(const char *name, const char *config, int64_t ms)
{
    store_budget_t b = {.config_json = (char *)config, .created_ms = ms, .updated_ms = ms};
    snprintf(b.name, sizeof b.name, "%s", name);
    return b;
}

static store_budget_crossing_t crossing(const char *name, int64_t period, double threshold,
                                        double amount)
{
    store_budget_crossing_t c = {.period_ms = period,
                                 .threshold = threshold,
                                 .amount = amount,
                                 .spend = threshold * amount + 0.5,
                                 .time_ms = period + 1000};
    snprintf(c.budget, sizeof c.budget, "%s", name);
    return c;
}

/* A call's result, with the store's message when it is not the one
 * wanted. */
#define expect(call, want)                                                                         \
    do {                                                                                           \
        int r_ = (call);                                                                           \
        if (r_ != (want))                                                                          \
            fail_msg("%s: %d, not %d: %s", #call, r_, (want), err.msg);                            \
    } while (0)

static void test_budgets_round_trip_and_survive_reopening(void **state)
{
    backend_t *b = *state;
    mf_error_t err = MF_ERROR_INIT;
    store_t *s = open_store(b);
    bool created = false;
    store_budget_t cap = budget("team-b~cap", "{\"amount\":3}", 1000);
    expect(store_budget_put(s, &cap, &created, &err), 0);
    assert_true(created);
    store_budget_t other = budget("cap", "{\"amount\":9}", 1500);
    expect(store_budget_put(s, &other, &created, &err), 0);
    assert_true(created);
    /* Replaced: new settings, the first creation time kept. */
    cap = budget("team-b~cap", "{\"amount\":4}", 2000);
    expect(store_budget_put(s, &cap, &created, &err), 0);
    assert_false(created);
    store_close(s);

    s = open_store(b);
    store_budget_t *list = NULL;
    size_t n = 0;
    expect(store_budget_list(s, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "cap");
    assert_string_equal(list[0].config_json, "{\"amount\":9}");
    assert_string_equal(list[1].name, "team-b~cap");
    assert_string_equal(list[1].config_json, "{\"amount\":4}");
    assert_int_equal(list[1].created_ms, 1000);
    assert_int_equal(list[1].updated_ms, 2000);
    store_budget_list_free(list, n);
    store_close(s);
}

static void test_a_crossing_is_recorded_once(void **state)
{
    backend_t *b = *state;
    mf_error_t err = MF_ERROR_INIT;
    store_t *s = open_store(b);
    bool created, added;
    store_budget_t cap = budget("cap", "{}", 1);
    expect(store_budget_put(s, &cap, &created, &err), 0);
    int64_t day = 1764979200000; /* 2025-12-06 */
    store_budget_crossing_t half = crossing("cap", day, 0.5, 4);
    expect(store_budget_crossing_add(s, &half, &added, &err), 0);
    assert_true(added);
    half.spend = 3.5; /* seen again, later: still the first */
    expect(store_budget_crossing_add(s, &half, &added, &err), 0);
    assert_false(added);
    /* The same threshold at another amount, or in another period, is
     * another crossing; so is another threshold. */
    store_budget_crossing_t raised = crossing("cap", day, 0.5, 8);
    store_budget_crossing_t whole = crossing("cap", day, 1, 4);
    store_budget_crossing_t next = crossing("cap", day + 86400000, 0.5, 4);
    expect(store_budget_crossing_add(s, &raised, &added, &err), 0);
    assert_true(added);
    expect(store_budget_crossing_add(s, &whole, &added, &err), 0);
    assert_true(added);
    expect(store_budget_crossing_add(s, &next, &added, &err), 0);
    assert_true(added);
    /* A budget that does not exist records nothing. */
    store_budget_crossing_t gone = crossing("gone", day, 0.5, 4);
    expect(store_budget_crossing_add(s, &gone, &added, &err), 0);
    assert_false(added);

    store_budget_crossing_t *list = NULL;
    size_t n = 0;
    expect(store_budget_crossing_list(s, "cap", day, &list, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_true(list[0].threshold == 0.5 && list[0].amount == 4 && list[0].spend == 2.5);
    assert_int_equal(list[0].time_ms, day + 1000);
    assert_int_equal(list[0].period_ms, day);
    assert_string_equal(list[0].budget, "cap");
    assert_true(list[1].threshold == 0.5 && list[1].amount == 8);
    assert_true(list[2].threshold == 1 && list[2].amount == 4);
    free(list);
    expect(store_budget_crossing_list(s, "gone", day, &list, &n, &err), 0);
    assert_int_equal(n, 0);
    free(list);
    store_close(s);
}

static void test_a_delete_takes_the_crossings(void **state)
{
    backend_t *b = *state;
    mf_error_t err = MF_ERROR_INIT;
    store_t *s = open_store(b);
    bool created, added;
    store_budget_t cap = budget("cap", "{}", 1);
    expect(store_budget_put(s, &cap, &created, &err), 0);
    store_budget_crossing_t half = crossing("cap", 0, 0.5, 4);
    expect(store_budget_crossing_add(s, &half, &added, &err), 0);
    expect(store_budget_delete(s, "cap", &err), 0);
    expect(store_budget_delete(s, "cap", &err), -ENOENT);
    assert_non_null(strstr(err.msg, "cap"));
    /* Made again, it starts with no crossings. */
    expect(store_budget_put(s, &cap, &created, &err), 0);
    assert_true(created);
    store_budget_crossing_t *list = NULL;
    size_t n = 0;
    expect(store_budget_crossing_list(s, "cap", 0, &list, &n, &err), 0);
    assert_int_equal(n, 0);
    free(list);
    expect(store_budget_crossing_add(s, &half, &added, &err), 0);
    assert_true(added);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_budgets_round_trip_and_survive_reopening,
                                        setup_backend, teardown),
        cmocka_unit_test_setup_teardown(test_a_crossing_is_recorded_once, setup_backend, teardown),
        cmocka_unit_test_setup_teardown(test_a_delete_takes_the_crossings, setup_backend, teardown),
    };
    return run_on_both_backends("budgets in the store", tests);
}
