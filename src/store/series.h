/* Aggregates of a function's invocation records over time, computed by
 * the database (watch/series.h makes the console's chart series of them):
 * the records between from_ms and to_ms are grouped in steps of step_ms
 * by their start, and each step's sums, or one percentile of its
 * durations, come back as a row a step; the calls themselves never leave
 * the database, but for concurrency's start and duration pairs.
 *
 * Calls take a store_t used from one thread at a time (a writer's
 * read job, off the loop) and return 0 or a negative errno filling *err. */
#ifndef MAYFLY_STORE_SERIES_H
#define MAYFLY_STORE_SERIES_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "store/store.h"

typedef struct store_series_window {
    const char *function; /* qualified (core/tenant.h) */
    int64_t from_ms;      /* inclusive */
    int64_t to_ms;        /* exclusive */
    int64_t step_ms;      /* >= 1 */
} store_series_window_t;

/* A step's sums. "Ran": a call whose status is success, error, timeout or
 * oom (not queued, running or throttled), as usage counts requests. */
typedef struct store_series_sums {
    int64_t step;          /* (start_ms - from_ms) / step_ms */
    int64_t invocations;   /* calls that ran */
    int64_t errors;        /* of them: error, timeout or oom */
    int64_t throttles;     /* status throttled */
    int64_t cold_starts;   /* calls that ran on a new instance */
    double duration_ms;    /* the sum of the durations of the calls that ran */
    /* As usage meters them (store_usage_of), summed over the step's records. */
    int64_t billed_ms, mb_ms, cpu_ms, egress_bytes, kv_ops;
} store_series_sums_t;

/* One number of a step: a percentile of its durations, or one call's
 * (start_ms, duration_ms) for store_series_spans. */
typedef struct store_series_value {
    int64_t key;
    double value;
} store_series_value_t;

/* The sums of the steps that hold records, by step; free *out. */
int store_series_sums(store_t *s, const store_series_window_t *w, store_series_sums_t **out,
                      size_t *count, mf_error_t *err);
/* The nearest-rank percentile pct (1-100) of the durations of the calls
 * that ran in each step that holds one, by step (key); free *out. */
int store_series_percentile(store_t *s, const store_series_window_t *w, int pct,
                            store_series_value_t **out, size_t *count, mf_error_t *err);
/* Every call that ran and started in [from_ms, to_ms) (w's step unused),
 * as (start_ms, duration_ms), by start; free *out. */
int store_series_spans(store_t *s, const store_series_window_t *w, store_series_value_t **out,
                       size_t *count, mf_error_t *err);

#endif
