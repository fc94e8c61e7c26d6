/* Metrics in the Prometheus text format: counters, gauges and histograms
 * with labels. Families are created once at start; a series (one set of
 * label values) is created on first use. Safe to update from any thread. */
#ifndef MAYFLY_OBS_METRICS_H
#define MAYFLY_OBS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

typedef struct metrics_family metrics_family_t;

typedef enum { METRICS_COUNTER, METRICS_GAUGE, METRICS_HISTOGRAM } metrics_type_t;

/* label_names is a NULL-terminated list of string literals. For a
 * histogram, buckets are the upper bounds in increasing order (+Inf is
 * added); NULL means the default latency buckets. */
metrics_family_t *metrics_family_new(metrics_type_t type, const char *name, const char *help,
                                     const char *const *label_names, const double *buckets,
                                     size_t nbuckets);
/* label_values: one per label name, in order. */
void metrics_inc(metrics_family_t *f, const char *const *label_values, double v);
void metrics_set(metrics_family_t *f, const char *const *label_values, double v);
void metrics_observe(metrics_family_t *f, const char *const *label_values, double v);
/* Sets a histogram's series to counts kept elsewhere: bucket_counts has
 * one count per bucket bound plus one for +Inf, each not cumulative; sum
 * is the sum of the observations. For a collector that mirrors a histogram
 * a hot path keeps without taking the lock. */
void metrics_set_histogram(metrics_family_t *f, const char *const *label_values,
                           const uint64_t *bucket_counts, double sum);
/* Drops one series (e.g. a deleted function's gauges). */
void metrics_remove(metrics_family_t *f, const char *const *label_values);

/* Calls fn(ud) before each render, so gauges that mirror state kept
 * elsewhere (a pool's size, say) are read when someone asks. */
void metrics_add_collector(void (*fn)(void *ud), void *ud);

/* Appends every family in registration order. */
void metrics_render(buf_t *out);
/* Frees every family (at exit, so leak checkers stay quiet). */
void metrics_free_all(void);

#endif
