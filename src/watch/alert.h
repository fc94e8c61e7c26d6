/* Alert rules (docs/alerts.md): a condition on a function's calls, its
 * async queue or a budget, watched over a sliding window, that goes
 * ok → pending → firing → resolved and notifies on firing and on
 * resolving.
 *
 * This header is the pure half: a rule's settings as PUT
 * /v1/alerts/{name} takes them, the window a function's calls are
 * counted in, the state machine of one alert series, and the Prometheus
 * Alertmanager webhook document a notification carries. Every function
 * here is a function of what it is given, the time included. The live
 * set on the server's loop is watch/alerts.h. */
#ifndef MAYFLY_WATCH_ALERT_H
#define MAYFLY_WATCH_ALERT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/notify.h"
#include "core/tenant.h"

#define ALERT_NAME_MAX 64     /* [A-Za-z0-9_-]{1,64} */
#define ALERT_SEVERITY_MAX 32 /* [A-Za-z0-9_-]{1,32}, default "warning" */
#define ALERT_WINDOW_MAX_S 3600
#define ALERT_FOR_MAX_S 86400
#define ALERT_BODY_MAX 16384

typedef enum {
    ALERT_ERROR_RATE,
    ALERT_TIMEOUT_RATE,
    ALERT_THROTTLE_RATE,
    ALERT_P50_DURATION_MS,
    ALERT_P99_DURATION_MS,
    ALERT_COLD_START_RATE,
    ALERT_INVOCATIONS,
    ALERT_ASYNC_QUEUE_DEPTH,
    ALERT_ASYNC_OLDEST_AGE_S,
    ALERT_DEAD_LETTERS,
    ALERT_BUDGET_USED,
    ALERT_ABSENT,
    ALERT_METRICS
} alert_metric_t;

typedef struct alert_rule {
    char name[ALERT_NAME_MAX + 1];
    char tenant[TENANT_MAX + 1];
    /* The function's name within the tenant, or "*" for each of its
     * functions; "" for a budget_used rule, which names budget instead. */
    char function[TENANT_LOCAL_MAX + 1];
    char budget[TENANT_LOCAL_MAX + 1];
    alert_metric_t metric;
    char op; /* '>' or '<' (absent: '<' 1, successes in the window) */
    double threshold;
    unsigned window_s; /* 1 to ALERT_WINDOW_MAX_S */
    unsigned for_s;    /* 0 to ALERT_FOR_MAX_S: how long it breaches before it fires */
    char severity[ALERT_SEVERITY_MAX + 1];
    notify_list_t notify;
} alert_rule_t;

bool alert_valid_name(const char *s);
const char *alert_metric_name(alert_metric_t m);
/* The metric named s, or -1. */
int alert_metric_of(const char *s);
/* Whether the metric is read from the function's window of calls (the
 * others: the async queue's counters, a budget). */
bool alert_metric_windowed(alert_metric_t m);
/* Parses PUT /v1/alerts/{name}'s body for name: {"tenant" (optional: the
 * caller's), "function": NAME | "*" (or "budget": NAME for budget_used),
 * "metric", "op": ">" | "<", "threshold", "window_s" (default 300),
 * "for_s" (default 0), "severity" (default "warning"), "notify": [...]}.
 * default_tenant fills a missing tenant. -EINVAL naming the field, for a
 * field it does not know too. */
int alert_rule_parse(const char *text, size_t len, const char *name, const char *default_tenant,
                     alert_rule_t *out, mf_error_t *err);
/* The settings as alert_rule_parse takes them (and as the store keeps
 * them). */
json_t *alert_rule_json(const alert_rule_t *r);
/* Whether two rules have the same settings (a put of the same keeps the
 * state; another starts it fresh). */
bool alert_rule_same(const alert_rule_t *a, const alert_rule_t *b);
/* Whether value breaches the rule. */
bool alert_breaches(const alert_rule_t *r, double value);

/* ---- a function's window of calls ------------------------------------- */

/* Durations are counted in a log-scale histogram: ALERT_HIST_PER_DOUBLING
 * bins per doubling from 1 ms; a quantile is the upper bound of its bin
 * (at most 26 % above the true value). */
#define ALERT_HIST_BINS 64
#define ALERT_HIST_PER_DOUBLING 3
/* Seconds are counted one by one for the last ALERT_FINE_N seconds, and
 * by the minute for the last ALERT_COARSE_N minutes: a window of up to
 * ALERT_FINE_N seconds is exact to the second, a longer one is counted in
 * whole minutes (the current one included). */
#define ALERT_FINE_N 120
#define ALERT_COARSE_N 61

typedef struct alert_bucket {
    int64_t t; /* its second (or minute) since the epoch; another: empty */
    uint32_t calls, successes, errors, timeouts, throttles, colds, ran;
    uint32_t hist[ALERT_HIST_BINS];
} alert_bucket_t;

typedef struct alert_window {
    alert_bucket_t fine[ALERT_FINE_N];
    alert_bucket_t coarse[ALERT_COARSE_N];
    int64_t since_ms; /* watched from */
} alert_window_t;

/* What a window says over its last window_s seconds. */
typedef struct alert_counts {
    uint64_t calls; /* every finished call, throttled ones too */
    uint64_t ran;   /* calls that ran (not throttled) */
    uint64_t successes, errors, timeouts, throttles, colds;
    uint32_t hist[ALERT_HIST_BINS];
    bool full; /* watched for the whole window */
} alert_counts_t;

void alert_window_init(alert_window_t *w, int64_t now_ms);
/* A finished call: status one of success|error|timeout|oom|throttled. */
void alert_window_add(alert_window_t *w, int64_t at_ms, const char *status, double duration_ms,
                      bool cold);
void alert_window_sum(const alert_window_t *w, int64_t now_ms, unsigned window_s,
                      alert_counts_t *out);
/* The histogram's bin of a duration, and the upper bound of a bin. */
int alert_hist_bin(double duration_ms);
double alert_hist_upper(int bin);
/* The q-quantile (0 < q < 1) of the durations counted; false when none. */
bool alert_quantile(const alert_counts_t *c, double q, double *out);
/* A windowed metric's value from the counts; false when there is no
 * data (a rate or a quantile without calls, absent before the window was
 * watched whole). */
bool alert_windowed_value(alert_metric_t m, const alert_counts_t *c, double *out);

/* ---- the state machine of one series ---------------------------------- */

typedef enum { ALERT_OK, ALERT_PENDING, ALERT_FIRING, ALERT_RESOLVED } alert_state_t;

const char *alert_state_name(alert_state_t s);
int alert_state_of(const char *s);

typedef struct alert_series {
    alert_state_t state;
    int64_t since_ms;    /* entered state */
    int64_t active_ms;   /* pending from (the breach's start) */
    int64_t fired_ms;    /* the last firing's start (startsAt) */
    int64_t resolved_ms; /* the last resolving (endsAt) */
    bool has_value;
    double value;
} alert_series_t;

/* One step at now with the value (has_value false: no data): the state it
 * moved to, or -1 when it stayed. Call again until it stays (with for_s 0
 * a breach moves ok → pending → firing at once). No data never moves it:
 * a firing alert stays firing until the value says otherwise. */
int alert_series_step(alert_series_t *s, const alert_rule_t *r, bool has_value, double value,
                      int64_t now_ms);

/* ---- the notification document ---------------------------------------- */

/* One alert of a notification. labels: an object of strings (taken). */
typedef struct alert_notice {
    const char *status; /* "firing" or "resolved" */
    json_t *labels;
    const char *summary, *description;
    int64_t starts_ms;
    int64_t ends_ms; /* 0 while firing: "0001-01-01T00:00:00Z" */
    const char *generator_url;
} alert_notice_t;

/* Prometheus's fingerprint of a label set (FNV-1a 64 over the sorted
 * names and values), 16 hex digits. */
void alert_fingerprint(const json_t *labels, char out[17]);
/* RFC 3339 as Alertmanager writes it; ms 0 is Go's zero time. */
void alert_time(int64_t ms, char *out, size_t size);
/* The Alertmanager webhook document (version "4") for one alert: receiver
 * and externalURL as given. */
json_t *alert_document(const alert_notice_t *n, const char *receiver, const char *external_url);

#endif
