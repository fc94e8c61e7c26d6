/* The right-sizing advisor (docs/sizing.md, "Advisor"): from a function's
 * recent calls, its memory peak against its memory_mb, whether it is
 * CPU-bound, and the memory_mb it should have, with the duration and the
 * cost per million calls predicted there and at its current size.
 *
 * Pure: everything comes in as numbers (the calls' summaries, the
 * function's size, the prices, the machine's cores), so each rule can be
 * tested with figures chosen for it. watch_advice_read (advice_read.c)
 * gathers the summaries from the store. */
#ifndef MAYFLY_WATCH_ADVISOR_H
#define MAYFLY_WATCH_ADVISOR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "meter/meter.h"
#include "store/store.h"

/* A function's CPU share follows its memory as on Lambda: this many MB
 * buy one vCPU (sandbox/cgroup.c's rule), never more than the cores. */
#define WATCH_MB_PER_CPU 1769
/* Memory sizes the advisor and the tuner accept and recommend. */
#define WATCH_MEMORY_MIN 128
#define WATCH_MEMORY_MAX 10240
/* A recommended size is a multiple of this (Lambda takes any MB; steps
 * keep the advice from moving with every few calls). */
#define WATCH_MEMORY_STEP 64

/* Below this many calls the answer is cautious (confidence "low"): it
 * still says to grow a function at risk, never to shrink one. */
#define WATCH_ADVICE_MIN_CALLS 20
/* From this many, confidence is "high" (between: "medium"). */
#define WATCH_ADVICE_HIGH_CALLS 100
/* The window and the most records the advice reads. */
#define WATCH_ADVICE_WINDOW_MS (7 * 24 * 3600 * 1000LL)
#define WATCH_ADVICE_MAX_CALLS 1000

/* The memory verdict's thresholds: the p99 peak over this share of
 * memory_mb (or any OOM) is a risk, under WATCH_WASTE_RATIO a waste. A
 * recommended size puts the p99 peak at WATCH_TARGET_RATIO of it. */
#define WATCH_RISK_RATIO 0.8
#define WATCH_WASTE_RATIO 0.3
#define WATCH_TARGET_RATIO 0.6
/* CPU-bound: the calls used at least this share of the CPU their size
 * gives them. */
#define WATCH_CPU_BOUND_RATIO 0.7

typedef enum {
    WATCH_CALL_SUCCESS,
    WATCH_CALL_ERROR, /* the function's own error */
    WATCH_CALL_TIMEOUT,
    WATCH_CALL_OOM,
    WATCH_CALL_OTHER, /* throttled, queued, running: did not run to an end */
} watch_call_status_t;

/* What the advisor reads of one call's record. */
typedef struct watch_call {
    int64_t start_ms;
    double duration_ms;
    int memory_mb;      /* the size it ran at */
    int64_t max_rss_kb; /* its instance's memory high-water mark */
    int64_t cpu_ms;
    bool cold_start;
    watch_call_status_t status;
} watch_call_t;

/* The record's status ("success", "oom", …) as the advisor counts it. */
watch_call_status_t watch_call_status(const char *status);

/* The CPU share (in cores) memory_mb buys on a machine of cores. */
double watch_cpu_share(int memory_mb, unsigned cores);

/* What one call at memory_mb lasting duration_ms and using cpu_ms of CPU
 * costs, per million such calls, at prices (meter_usage_cost's formula:
 * requests, GB-seconds of the billed duration, CPU seconds). */
double watch_cost_per_million(const meter_prices_t *prices, int memory_mb, double duration_ms,
                              double cpu_ms);

typedef struct watch_advice_input {
    const char *function; /* as the answer names it (the name within its tenant) */
    int memory_mb;        /* its current size */
    unsigned cores;       /* the machine's (at least 1) */
    const meter_prices_t *prices;
    const watch_call_t *calls; /* newest first or in any order */
    size_t n;
    int64_t from_ms, to_ms; /* the window read */
    bool truncated;         /* more calls were in the window than were read */
} watch_advice_input_t;

/* The advice, as GET /v1/functions/{name}/advice answers it:
 * {"function", "memory_mb", "confidence": "none"|"low"|"medium"|"high",
 *  "message", "memory": {"peak_p99_mb", "peak_max_mb", "used_ratio",
 *  "verdict": "oom_risk"|"waste"|"ok"}, "cpu": {"share", "cpu_ms_per_call",
 *  "duration_ms_per_call", "used_ratio", "cpu_bound", "parallelism"},
 *  "current": {"memory_mb", "duration_ms", "cost_per_million"},
 *  "recommended": {"memory_mb", "duration_ms", "cost_per_million",
 *  "change": "increase"|"decrease"|"none"}, "currency", "evidence":
 *  {"records", "from", "to", "successes", "errors", "ooms", "timeouts",
 *  "truncated"}}. Without a call that ran: only function, memory_mb,
 * confidence "none", message and evidence. */
json_t *watch_advise(const watch_advice_input_t *in);

/* Reads off the loop (db a store_t: a job of the records' writer or a
 * reader) the calls of function that started at since_ms or later,
 * newest first, at most max of them, into *out (*n of them; the
 * caller frees it); *truncated says whether more were there. Records
 * are read a page at a time and only their summaries kept, so the
 * memory it takes is bounded whatever their payloads. */
int watch_advice_read(store_t *db, const char *function, int64_t since_ms, size_t max,
                      watch_call_t **out, size_t *n, bool *truncated, mf_error_t *err);

#endif
