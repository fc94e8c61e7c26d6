/* The server's budgets (meter/budget.h's live set) over a real store, on
 * both backends: a budget's spend starts from the usage the records left,
 * grows with each call observed, and refuses calls (and holds events)
 * once a block budget is spent, by a look at memory; raising it lets them
 * through and says so; each threshold crossed is recorded once. Every
 * call costs 1 at these prices, so the spend is a count. */
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
#include "store_jobs.h"

#include "core/clock.h"
#include "meter/budget.h"
#include "obs/records.h"
#include "store/budgets.h"

static const meter_prices_t prices = {.currency = "EUR", .request_per_million = 1e6};

static store_record_t ran(const char *id, const char *function, int64_t start)
{
    store_record_t r = {.start_ms = start, .billed_ms = 100, .memory_mb = 128, .attempts = 1};
    snprintf(r.request_id, sizeof r.request_id, "%s", id);
    snprintf(r.function, sizeof r.function, "%s", function);
    snprintf(r.status, sizeof r.status, "success");
    r.first = true;
    return r;
}

static void stored_budget(store_t *s, const char *json, const char *name)
{
    budget_t b;
    mf_error_t err = MF_ERROR_INIT;
    if (budget_parse(json, strlen(json), name, &b, &err) < 0)
        fail_msg("%s", err.msg);
    json_t *doc = budget_json(&b);
    store_budget_t row = {
        .config_json = json_dumps(doc, JSON_COMPACT), .created_ms = 1, .updated_ms = 1};
    json_decref(doc);
    budget_key(&b, row.name, sizeof row.name);
    bool created;
    if (store_budget_put(s, &row, &created, &err) < 0)
        fail_msg("%s", err.msg);
    free(row.config_json);
}

static double spend_of(budgets_t *b, const char *tenant, const char *name)
{
    json_t *doc = budgets_show(b, tenant, name);
    assert_non_null(doc);
    double spend = json_real_value(json_object_get(doc, "spend"));
    json_decref(doc);
    return spend;
}

typedef struct waiter {
    bool done;
    int r;
    bool created;
    json_t *crossings;
} waiter_t;

static void put_done(void *ud, int r, bool created, const mf_error_t *err)
{
    waiter_t *w = ud;
    w->done = true;
    w->r = r;
    w->created = created;
}

static void crossings_done(void *ud, int r, json_t *crossings, const mf_error_t *err)
{
    waiter_t *w = ud;
    w->done = true;
    w->r = r;
    w->crossings = json_incref(crossings);
}

static void released(void *ud)
{
    ++*(int *)ud;
}

/* Runs the loop until *done; a writer does not keep a loop alive by
 * itself, a guard timer does. */
static void run_until(uv_loop_t *loop, const bool *done)
{
    uv_timer_t guard;
    uv_timer_init(loop, &guard);
    uv_timer_start(&guard, on_guard, 60000, 0);
    while (!*done)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

static void observe(budgets_t *b, const char *function, int64_t now)
{
    store_record_t rec = ran("x", function, now);
    store_usage_t u;
    store_usage_of(&rec, &u);
    budgets_observe(b, &u, meter_usage_cost(&prices, &u));
}

static void test_spend_starts_from_usage_and_a_block_refuses_until_raised(void **state)
{
    backend_t *be = *state;
    store_t *s = open_store(be);
    int64_t now = clock_wall_ms();
    store_record_t recs[] = {ran("r1", "fn", now), ran("r2", "fn", now), ran("r3", "other", now),
                             ran("r4", "team-b~fn", now)};
    write_records(s, recs, 4);
    stored_budget(s,
                  "{\"tenant\":\"default\",\"function\":\"fn\",\"period\":\"day\","
                  "\"amount\":3,\"alert_at\":[0.5,1],\"action\":\"block\"}",
                  "fn-cap");
    stored_budget(s, "{\"tenant\":\"default\",\"period\":\"month\",\"amount\":100}", "all");

    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    mf_error_t err = MF_ERROR_INIT;
    store_writer_db_t db;
    store_writer_t *w = NULL;
    assert_int_equal(store_writer_db(s, &db, &err), 0);
    assert_int_equal(store_writer_start(&loop, &db, NULL, NULL, &w, &err), 0);
    obs_records_t *records = obs_records_new(&loop, w);
    budgets_t *b = NULL;
    if (budgets_open(&loop, s, w, records, &prices, &(budgets_config_t){0}, &b, &err) < 0)
        fail_msg("budgets_open: %s", err.msg);
    int releases = 0;
    budgets_set_released(b, released, &releases);

    /* From the usage: fn's two calls, and the tenant's three. */
    assert_true(spend_of(b, "default", "fn-cap") == 2);
    assert_true(spend_of(b, "default", "all") == 3);
    assert_null(budgets_show(b, "team-b", "fn-cap"));
    assert_int_equal(budgets_admit(b, "fn", &err), 0);

    /* The third call spends it: fn is refused, naming the budget; the
     * rest of the tenant, and another tenant's fn, are not. */
    observe(b, "fn", now);
    observe(b, "team-b~fn", now);
    assert_true(spend_of(b, "default", "fn-cap") == 3);
    assert_true(spend_of(b, "default", "all") == 4);
    assert_int_equal(budgets_admit(b, "fn", &err), -EDQUOT);
    assert_non_null(strstr(err.msg, "fn-cap"));
    assert_int_equal(budgets_admit(b, "other", &err), 0);
    assert_int_equal(budgets_admit(b, "team-b~fn", &err), 0);
    char why[320];
    assert_true(budgets_held(b, "fn", why, sizeof why));
    assert_non_null(strstr(why, "fn-cap"));
    assert_false(budgets_held(b, "other", why, sizeof why));

    /* Raised: its spend read again from the store (the two stored calls;
     * the ones observed here were never written), and calls go through. */
    budget_t raised;
    const char *json = "{\"tenant\":\"default\",\"function\":\"fn\",\"period\":\"day\","
                       "\"amount\":10,\"alert_at\":[0.5,1],\"action\":\"block\"}";
    assert_int_equal(budget_parse(json, strlen(json), "fn-cap", &raised, &err), 0);
    waiter_t put = {0};
    budgets_put(b, &raised, put_done, &put);
    run_until(&loop, &put.done);
    assert_int_equal(put.r, 0);
    assert_false(put.created);
    assert_int_equal(budgets_admit(b, "fn", &err), 0);
    assert_int_equal(releases, 1);
    assert_true(spend_of(b, "default", "fn-cap") == 2);

    /* The crossings the first amount saw, each once. */
    waiter_t got = {0};
    budgets_crossings(b, "default", "fn-cap", crossings_done, &got);
    run_until(&loop, &got.done);
    assert_int_equal(got.r, 0);
    assert_int_equal(json_array_size(got.crossings), 2);
    assert_true(json_real_value(json_object_get(json_array_get(got.crossings, 0), "threshold")) ==
                0.5);
    assert_true(json_real_value(json_object_get(json_array_get(got.crossings, 1), "spend")) == 3);
    json_decref(got.crossings);

    budgets_stop(b);
    obs_records_free(records);
    store_writer_stop(w);
    budgets_close(b);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_spend_starts_from_usage_and_a_block_refuses_until_raised, setup_backend, teardown),
    };
    return run_on_both_backends("the live budgets", tests);
}
