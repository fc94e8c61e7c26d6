/* The running totals of what calls metered (meter/meter.h), in /metrics. */
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "meter/meter.h"
#include "obs/metrics.h"

struct meter {
    meter_prices_t prices;
    metrics_family_t *requests, *gb_seconds, *cpu_seconds, *egress_bytes, *kv_ops, *log_bytes,
        *cost;
};

meter_t *meter_new(const meter_prices_t *prices)
{
    static const char *const labels[] = { "tenant", "function", NULL };
    meter_t *m = xcalloc(1, sizeof *m);
    m->prices = *prices;
    m->requests = metrics_family_new(METRICS_COUNTER, "mayfly_usage_requests_total",
                                     "Calls that ran (docs/metering.md), every attempt.", labels,
                                     NULL, 0);
    m->gb_seconds = metrics_family_new(METRICS_COUNTER, "mayfly_usage_gb_seconds_total",
                                       "Memory (GB) times billed duration (s) of the calls.",
                                       labels, NULL, 0);
    m->cpu_seconds = metrics_family_new(METRICS_COUNTER, "mayfly_usage_cpu_seconds_total",
                                        "CPU time of the calls.", labels, NULL, 0);
    m->egress_bytes = metrics_family_new(METRICS_COUNTER, "mayfly_usage_egress_bytes_total",
                                         "Bytes both ways over the calls' outbound connections "
                                         "(as their records list them).",
                                         labels, NULL, 0);
    m->kv_ops = metrics_family_new(METRICS_COUNTER, "mayfly_usage_kv_ops_total",
                                   "Key-value operations of the calls.", labels, NULL, 0);
    m->log_bytes = metrics_family_new(METRICS_COUNTER, "mayfly_usage_log_bytes_total",
                                      "Bytes of log lines the calls printed.", labels, NULL, 0);
    m->cost = metrics_family_new(METRICS_COUNTER, "mayfly_usage_cost_total",
                                 "What the calls cost at the server's prices (--prices), in its "
                                 "currency.",
                                 labels, NULL, 0);
    return m;
}

void meter_free(meter_t *m)
{
    free(m);
}

void meter_observe(void *ud, const store_record_t *rec)
{
    meter_t *m = ud;
    store_usage_t u;
    store_usage_of(rec, &u);
    if (!m || !u.requests)
        return; /* did not run */
    const char *labels[] = { u.tenant, u.function };
    metrics_inc(m->requests, labels, 1);
    metrics_inc(m->gb_seconds, labels, (double)u.mb_ms / 1024.0 / 1000.0);
    metrics_inc(m->cpu_seconds, labels, (double)u.cpu_ms / 1000.0);
    metrics_inc(m->egress_bytes, labels, (double)u.egress_bytes);
    metrics_inc(m->kv_ops, labels, (double)u.kv_ops);
    metrics_inc(m->log_bytes, labels, (double)u.log_bytes);
    metrics_inc(m->cost, labels, meter_usage_cost(&m->prices, &u));
}
