/* A function's metrics over time (watch/series.h): the query's parser,
 * and the points made of the store's aggregates. */
#include "watch/series.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "store/series.h"

static const char *const names[WATCH_SERIES_METRICS] = {
    [WATCH_SERIES_INVOCATIONS] = "invocations",   [WATCH_SERIES_ERRORS] = "errors",
    [WATCH_SERIES_THROTTLES] = "throttles",       [WATCH_SERIES_COLD_STARTS] = "cold_starts",
    [WATCH_SERIES_DURATION_P50] = "duration_p50", [WATCH_SERIES_DURATION_P99] = "duration_p99",
    [WATCH_SERIES_DURATION_AVG] = "duration_avg", [WATCH_SERIES_CONCURRENCY] = "concurrency",
    [WATCH_SERIES_COST] = "cost",                 [WATCH_SERIES_GB_SECONDS] = "gb_seconds",
};

#define STEP_MAX_S (366LL * 86400)
#define DEFAULT_STEP_S 60

const char *watch_series_metric_name(watch_series_metric_t m)
{
    return m < WATCH_SERIES_METRICS ? names[m] : "";
}

const char *watch_series_unit(watch_series_metric_t m, const meter_prices_t *prices)
{
    switch (m) {
    case WATCH_SERIES_DURATION_P50:
    case WATCH_SERIES_DURATION_P99:
    case WATCH_SERIES_DURATION_AVG: return "ms";
    case WATCH_SERIES_CONCURRENCY: return "calls";
    case WATCH_SERIES_COST: return prices && prices->currency[0] ? prices->currency : "USD";
    case WATCH_SERIES_GB_SECONDS: return "GB-s";
    default: return "count";
    }
}

static bool all_digits(const char *s, size_t max)
{
    size_t n = strlen(s);
    return n >= 1 && n <= max && strspn(s, "0123456789") == n;
}

/* A time: milliseconds since the epoch, or RFC 3339. */
static int parse_time(const char *name, const char *v, int64_t *ms, mf_error_t *err)
{
    if (all_digits(v, 15)) {
        *ms = strtoll(v, NULL, 10);
        return 0;
    }
    if (clock_parse_rfc3339(v, ms) == 0)
        return 0;
    return mf_error_plain(err, EINVAL,
                          "%s: must be an RFC 3339 time (2026-12-05T10:00:00Z) or milliseconds "
                          "since the epoch",
                          name);
}

static int64_t floor_to(int64_t t, int64_t step)
{
    int64_t r = t % step;
    return r < 0 ? t - r - step : t - r;
}

static size_t count_points(int64_t from, int64_t to, int64_t step)
{
    return (size_t)((to - from + step - 1) / step);
}

int watch_series_parse(const char *metric, const char *from, const char *to, const char *step,
                       int64_t now_ms, watch_series_query_t *q, mf_error_t *err)
{
    memset(q, 0, sizeof *q);
    if (!metric || !*metric)
        return mf_error_plain(err, EINVAL,
                              "metric: required, one of invocations, errors, throttles, "
                              "cold_starts, duration_p50, duration_p99, duration_avg, "
                              "concurrency, cost, gb_seconds");
    q->metric = WATCH_SERIES_METRICS;
    for (int m = 0; m < WATCH_SERIES_METRICS; m++)
        if (!strcmp(metric, names[m]))
            q->metric = (watch_series_metric_t)m;
    if (q->metric == WATCH_SERIES_METRICS)
        return mf_error_plain(err, EINVAL,
                              "metric: `%.40s` is none of invocations, errors, throttles, "
                              "cold_starts, duration_p50, duration_p99, duration_avg, "
                              "concurrency, cost, gb_seconds",
                              metric);
    int64_t t_to = now_ms, t_from;
    if (to && *to && parse_time("to", to, &t_to, err) < 0)
        return -EINVAL;
    t_from = t_to - WATCH_SERIES_DEFAULT_MS;
    if (from && *from && parse_time("from", from, &t_from, err) < 0)
        return -EINVAL;
    if (t_from >= t_to)
        return mf_error_plain(err, EINVAL, "from: must be before to");
    int64_t span = t_to - t_from;
    int64_t step_s;
    if (step && *step) {
        if (!all_digits(step, 9) || (step_s = strtoll(step, NULL, 10)) < 1 || step_s > STEP_MAX_S)
            return mf_error_plain(err, EINVAL, "step: must be whole seconds, 1 to %lld",
                                  (long long)STEP_MAX_S);
        int64_t f = floor_to(t_from, step_s * 1000);
        size_t n = count_points(f, t_to, step_s * 1000);
        if (n > WATCH_SERIES_MAX_POINTS) {
            /* The smallest step that fits, for the message. */
            int64_t fit = (span + 1000LL * WATCH_SERIES_MAX_POINTS - 1) /
                          (1000LL * WATCH_SERIES_MAX_POINTS);
            while (count_points(floor_to(t_from, fit * 1000), t_to, fit * 1000) >
                   WATCH_SERIES_MAX_POINTS)
                fit++;
            return mf_error_plain(err, EINVAL,
                                  "step: %lld s makes %zu points from `from` to `to`, over the "
                                  "%d an answer holds: a step of at least %lld s, or a shorter "
                                  "window",
                                  (long long)step_s, n, WATCH_SERIES_MAX_POINTS, (long long)fit);
        }
    } else {
        step_s = DEFAULT_STEP_S;
        while (count_points(floor_to(t_from, step_s * 1000), t_to, step_s * 1000) >
               WATCH_SERIES_MAX_POINTS)
            step_s += DEFAULT_STEP_S;
    }
    q->step_ms = step_s * 1000;
    q->from_ms = floor_to(t_from, q->step_ms);
    q->to_ms = t_to;
    q->points = count_points(q->from_ms, q->to_ms, q->step_ms);
    return 0;
}

/* ---- points ---------------------------------------------------------------- */

typedef struct edge {
    int64_t t;
    int d; /* +1 a call starts, -1 one ends */
} edge_t;

static int by_time(const void *a, const void *b)
{
    const edge_t *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    /* A call that ends when another starts did not run beside it. */
    return x->d - y->d;
}

/* The most calls in flight in each step: a sweep over the calls' starts
 * and ends, in time order. */
static int concurrency(store_t *s, const char *function, const watch_series_query_t *q,
                       double *values, mf_error_t *err)
{
    store_series_window_t w = { function, q->from_ms - WATCH_SERIES_LONGEST_CALL_MS, q->to_ms,
                                q->step_ms };
    store_series_value_t *spans;
    size_t n;
    int r = store_series_spans(s, &w, &spans, &n, err);
    if (r < 0)
        return r;
    edge_t *e = malloc((2 * n + 1) * sizeof *e);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t start = spans[i].key;
        int64_t end = start + (int64_t)ceil(spans[i].value);
        if (end <= start)
            end = start + 1; /* a call ran, however short */
        if (end <= q->from_ms)
            continue;
        e[m++] = (edge_t){ start, +1 };
        e[m++] = (edge_t){ end, -1 };
    }
    free(spans);
    qsort(e, m, sizeof *e, by_time);
    size_t j = 0;
    int64_t cur = 0;
    for (size_t i = 0; i < q->points; i++) {
        int64_t b = q->from_ms + (int64_t)i * q->step_ms, end = b + q->step_ms;
        while (j < m && e[j].t < b)
            cur += e[j++].d;
        int64_t most = cur;
        while (j < m && e[j].t < end) {
            cur += e[j++].d;
            if (cur > most)
                most = cur;
        }
        values[i] = (double)most;
    }
    free(e);
    return 0;
}

int watch_series_read(store_t *s, const char *function, const watch_series_query_t *q,
                      const meter_prices_t *prices, double *values, mf_error_t *err)
{
    store_series_window_t w = { function, q->from_ms, q->to_ms, q->step_ms };
    watch_series_metric_t m = q->metric;
    if (m == WATCH_SERIES_CONCURRENCY)
        return concurrency(s, function, q, values, err);
    bool durations = m == WATCH_SERIES_DURATION_P50 || m == WATCH_SERIES_DURATION_P99 ||
                     m == WATCH_SERIES_DURATION_AVG;
    for (size_t i = 0; i < q->points; i++)
        values[i] = durations ? NAN : 0;
    if (m == WATCH_SERIES_DURATION_P50 || m == WATCH_SERIES_DURATION_P99) {
        store_series_value_t *v;
        size_t n;
        int r = store_series_percentile(s, &w, m == WATCH_SERIES_DURATION_P50 ? 50 : 99, &v, &n,
                                        err);
        if (r < 0)
            return r;
        for (size_t i = 0; i < n; i++)
            if (v[i].key >= 0 && (size_t)v[i].key < q->points)
                values[v[i].key] = v[i].value;
        free(v);
        return 0;
    }
    store_series_sums_t *rows;
    size_t n;
    int r = store_series_sums(s, &w, &rows, &n, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        const store_series_sums_t *x = &rows[i];
        if (x->step < 0 || (size_t)x->step >= q->points)
            continue;
        store_usage_t u = { .requests = x->invocations, .billed_ms = x->billed_ms,
                            .mb_ms = x->mb_ms, .cpu_ms = x->cpu_ms,
                            .egress_bytes = x->egress_bytes, .kv_ops = x->kv_ops };
        double *v = &values[x->step];
        switch (m) {
        case WATCH_SERIES_INVOCATIONS: *v = (double)x->invocations; break;
        case WATCH_SERIES_ERRORS: *v = (double)x->errors; break;
        case WATCH_SERIES_THROTTLES: *v = (double)x->throttles; break;
        case WATCH_SERIES_COLD_STARTS: *v = (double)x->cold_starts; break;
        case WATCH_SERIES_DURATION_AVG:
            *v = x->invocations ? x->duration_ms / (double)x->invocations : NAN;
            break;
        case WATCH_SERIES_COST: *v = meter_usage_cost(prices, &u); break;
        case WATCH_SERIES_GB_SECONDS: *v = store_usage_gb_seconds(&u); break;
        default: break;
        }
    }
    free(rows);
    return 0;
}

json_t *watch_series_json(const watch_series_query_t *q, const meter_prices_t *prices,
                          const double *values)
{
    watch_series_metric_t m = q->metric;
    bool counts = m == WATCH_SERIES_INVOCATIONS || m == WATCH_SERIES_ERRORS ||
                  m == WATCH_SERIES_THROTTLES || m == WATCH_SERIES_COLD_STARTS ||
                  m == WATCH_SERIES_CONCURRENCY;
    json_t *points = json_array();
    for (size_t i = 0; i < q->points; i++) {
        json_int_t t = (json_int_t)(q->from_ms + (int64_t)i * q->step_ms);
        json_t *v = isnan(values[i]) ? json_null()
                    : counts      ? json_integer((json_int_t)values[i])
                                  : json_real(values[i]);
        json_array_append_new(points, json_pack("[I o]", t, v));
    }
    return json_pack("{ss ss sI sI sI so}", "metric", watch_series_metric_name(q->metric), "unit",
                     watch_series_unit(q->metric, prices), "from", (json_int_t)q->from_ms, "to",
                     (json_int_t)q->to_ms, "step", (json_int_t)(q->step_ms / 1000), "points",
                     points);
}
