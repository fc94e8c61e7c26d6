/* The running totals of what calls metered (meter/meter.h), in /metrics.
 * A call adds to its function's sums in a map (one lookup); the metric
 * series are set from the sums when /metrics is read, not on each call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/map.h"
#include "core/xalloc.h"
#include "meter/budget.h"
#include "meter/meter.h"
#include "obs/metrics.h"

/* One tenant's function: what its calls metered, and what that cost. */
typedef struct meter_sums {
    store_usage_t u;
    double cost;
} meter_sums_t;

struct meter {
    meter_prices_t prices;
    map_t sums; /* "TENANT FUNCTION" → meter_sums_t * */
    budgets_t *budgets; /* or NULL */
    metrics_family_t *requests, *gb_seconds, *cpu_seconds, *egress_bytes, *kv_ops, *log_bytes,
        *cost;
};

static void meter_collect(void *ud)
{
    meter_t *m = ud;
    const char *key;
    void *value;
    for (size_t it = 0; map_next(&m->sums, &it, &key, &value);) {
        const meter_sums_t *s = value;
        const char *labels[] = { s->u.tenant, s->u.function };
        metrics_set(m->requests, labels, (double)s->u.requests);
        metrics_set(m->gb_seconds, labels, store_usage_gb_seconds(&s->u));
        metrics_set(m->cpu_seconds, labels, (double)s->u.cpu_ms / 1000.0);
        metrics_set(m->egress_bytes, labels, (double)s->u.egress_bytes);
        metrics_set(m->kv_ops, labels, (double)s->u.kv_ops);
        metrics_set(m->log_bytes, labels, (double)s->u.log_bytes);
        metrics_set(m->cost, labels, s->cost);
    }
}

meter_t *meter_new(const meter_prices_t *prices)
{
    static const char *const labels[] = { "tenant", "function", NULL };
    meter_t *m = xcalloc(1, sizeof *m);
    m->prices = *prices;
    m->sums = (map_t)MAP_INIT;
    m->requests = metrics_family_new(METRICS_COUNTER, "mayfly_usage_requests_total",
                                     "Calls that ran (docs/metering.md), every attempt.", labels,
                                     NULL, 0);
    m->gb_seconds = metrics_family_new(METRICS_COUNTER, "mayfly_usage_gb_seconds_total",
                                       "Memory (GB) times billed duration (s) of the calls.",
                                       labels, NULL, 0);
    m->cpu_seconds = metrics_family_new(METRICS_COUNTER, "mayfly_usage_cpu_seconds_total",
                                        "CPU time of the calls.", labels, NULL, 0);
    m->egress_bytes = metrics_family_new(METRICS_COUNTER, "mayfly_usage_egress_bytes_total",
                                         "Bytes both ways over the calls' outbound connections.",
                                         labels, NULL, 0);
    m->kv_ops = metrics_family_new(METRICS_COUNTER, "mayfly_usage_kv_ops_total",
                                   "Key-value operations of the calls.", labels, NULL, 0);
    m->log_bytes = metrics_family_new(METRICS_COUNTER, "mayfly_usage_log_bytes_total",
                                      "Bytes of log lines the calls printed.", labels, NULL, 0);
    m->cost = metrics_family_new(METRICS_COUNTER, "mayfly_usage_cost_total",
                                 "What the calls cost at the server's prices (--prices), in its "
                                 "currency.",
                                 labels, NULL, 0);
    metrics_add_collector(meter_collect, m);
    return m;
}

void meter_free(meter_t *m)
{
    if (!m)
        return;
    const char *key;
    void *value;
    for (size_t it = 0; map_next(&m->sums, &it, &key, &value);)
        free(value);
    map_release(&m->sums);
    free(m);
}

void meter_observe(void *ud, const store_record_t *rec)
{
    meter_t *m = ud;
    store_usage_t u;
    store_usage_of(rec, &u);
    if (!m || !u.requests)
        return; /* did not run */
    char key[sizeof u.tenant + sizeof u.function];
    snprintf(key, sizeof key, "%s %s", u.tenant, u.function);
    meter_sums_t *s = map_get(&m->sums, key);
    if (!s) {
        s = xcalloc(1, sizeof *s);
        snprintf(s->u.tenant, sizeof s->u.tenant, "%s", u.tenant);
        snprintf(s->u.function, sizeof s->u.function, "%s", u.function);
        map_put(&m->sums, key, s);
    }
    store_usage_add(&s->u, &u, 1);
    double cost = meter_usage_cost(&m->prices, &u);
    s->cost += cost;
    budgets_observe(m->budgets, &u, cost);
}

void meter_set_budgets(meter_t *m, budgets_t *b)
{
    m->budgets = b;
}
