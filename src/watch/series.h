/* A function's metrics over time, for the console's charts
 * (GET /v1/functions/{name}/series, docs/console.md): one metric, between
 * two times, one point a step. The store aggregates the records
 * (store/series.h); this parses the query (watch_series_parse, fuzzed by
 * tests/fuzz/fuzz_series_query.c) and turns the store's rows into points,
 * one a step and none missing. */
#ifndef MAYFLY_WATCH_SERIES_H
#define MAYFLY_WATCH_SERIES_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "meter/meter.h"
#include "store/store.h"

/* The most points one answer holds: a step that would make more is
 * refused, naming the smallest step the window allows. */
#define WATCH_SERIES_MAX_POINTS 1000
/* The window when the query names none: the last hour. */
#define WATCH_SERIES_DEFAULT_MS (3600 * 1000)
/* The longest a call can run (timeout_s at most 900): concurrency looks
 * this far before the window for calls still running in it. */
#define WATCH_SERIES_LONGEST_CALL_MS (900 * 1000)

typedef enum {
    WATCH_SERIES_INVOCATIONS,  /* calls that ran (not throttled, queued, running) */
    WATCH_SERIES_ERRORS,       /* of them: error, timeout, oom */
    WATCH_SERIES_THROTTLES,    /* calls refused with 429 */
    WATCH_SERIES_COLD_STARTS,  /* calls that ran on a new instance */
    WATCH_SERIES_DURATION_P50, /* ms, nearest rank; null for a step without calls */
    WATCH_SERIES_DURATION_P99,
    WATCH_SERIES_DURATION_AVG,
    WATCH_SERIES_CONCURRENCY,  /* the most calls in flight at once during the step */
    WATCH_SERIES_COST,         /* the metering's price of the calls that started in it */
    WATCH_SERIES_GB_SECONDS,   /* memory × billed time of those calls */
    WATCH_SERIES_METRICS
} watch_series_metric_t;

typedef struct watch_series_query {
    watch_series_metric_t metric;
    int64_t from_ms; /* the first step's start: a multiple of step_ms */
    int64_t to_ms;   /* exclusive */
    int64_t step_ms;
    size_t points;   /* ceil((to_ms - from_ms) / step_ms), 1 to WATCH_SERIES_MAX_POINTS */
} watch_series_query_t;

/* The query from the request's parameters (each NULL when not given):
 * metric (required, one of the names above in lower case: invocations,
 * errors, throttles, cold_starts, duration_p50, duration_p99,
 * duration_avg, concurrency, cost, gb_seconds); from and to (RFC 3339 or
 * milliseconds since the epoch; default the hour up to now_ms); step
 * (whole seconds, 1 to a year; default the smallest of 60 s and its
 * multiples that keeps the points within the bound). from is moved back
 * to a multiple of the step, so a chart's steps stay where they were as
 * time goes by. 0, or -EINVAL with a message that starts with the
 * parameter's name. */
int watch_series_parse(const char *metric, const char *from, const char *to, const char *step,
                       int64_t now_ms, watch_series_query_t *q, mf_error_t *err);

const char *watch_series_metric_name(watch_series_metric_t m);
/* "count", "ms", "calls", "GB-s", or the prices' currency for cost. */
const char *watch_series_unit(watch_series_metric_t m, const meter_prices_t *prices);

/* The points of function's (qualified) metric: values[i] for the step
 * that starts at from_ms + i × step_ms, NAN where a step has no value (a
 * duration of a step without calls). values has q->points entries. Reads
 * the store: run it off the loop. */
int watch_series_read(store_t *s, const char *function, const watch_series_query_t *q,
                      const meter_prices_t *prices, double *values, mf_error_t *err);

/* {"metric","unit","from","to","step","points":[[t_ms, value|null], …]}:
 * from and to in milliseconds since the epoch, step in seconds. */
json_t *watch_series_json(const watch_series_query_t *q, const meter_prices_t *prices,
                          const double *values);

#endif
