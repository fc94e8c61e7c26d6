/* Power tuning (docs/sizing.md, "Power tuning"): a function's event run
 * against temporary copies of it at several memory sizes, as the AWS
 * Lambda Power Tuning tool does, and a table of what each size gave, with
 * the size a strategy recommends.
 *
 * The request's parse and the table's arithmetic are pure (tune.c); the
 * runs themselves go through exec on the loop (tune_run.c): each size is
 * a settings copy of the function (exec_copy_define) in instances of its
 * own, called runs times one after the other (the first call cold, the
 * rest warm), then removed. The live function, its records and its
 * metrics never see the runs; what they use is metered under the function
 * with the trigger "tune". */
#ifndef MAYFLY_WATCH_TUNE_H
#define MAYFLY_WATCH_TUNE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/error.h"
#include "meter/meter.h"
#include "registry/registry.h"
#include "watch/advisor.h"

#define WATCH_TUNE_SIZES_MAX 16
#define WATCH_TUNE_RUNS_MAX 100
#define WATCH_TUNE_RUNS_DEFAULT 10

typedef enum { WATCH_TUNE_BALANCED, WATCH_TUNE_COST, WATCH_TUNE_SPEED } watch_tune_strategy_t;

typedef struct watch_tune_request {
    char *event; /* the event as compact JSON ("{}" when left out) */
    size_t event_len;
    int sizes[WATCH_TUNE_SIZES_MAX]; /* ascending, no two alike */
    size_t n_sizes;
    int runs;
    watch_tune_strategy_t strategy;
} watch_tune_request_t;

/* Parses POST /v1/functions/{name}/tune's body: {"event": any JSON,
 * "memory_mb": [1 to 16 integers in 128–10240, no two alike] (128, 256,
 * 512, 1024, 2048), "runs": 1–100 (10), "strategy": "cost" | "speed" |
 * "balanced" (balanced)}. An empty body takes every default. -EINVAL with
 * a message that starts with the field's name otherwise (an unknown
 * field is named too). */
int watch_tune_parse(const char *body, size_t len, watch_tune_request_t *out, mf_error_t *err);
void watch_tune_request_release(watch_tune_request_t *rq);
const char *watch_tune_strategy_name(watch_tune_strategy_t s);

/* One run's outcome. */
typedef struct watch_tune_run {
    watch_call_status_t status;
    char error_type[64]; /* the function's errorType for an error, else "" */
    bool cold_start;
    double init_ms; /* its instance's start, when cold */
    double duration_ms;
    int64_t cpu_ms;
    int64_t max_rss_kb;
} watch_tune_run_t;

/* The table: {"strategy", "runs", "currency", "sizes": [{"memory_mb",
 * "runs", "successes", "errors", "error_types": [...], "cold_ms",
 * "cold_init_ms", "p50_ms", "p90_ms", "cost_per_million", "max_rss_mb"}…],
 * "recommended": {"memory_mb", "p50_ms", "cost_per_million"} | null,
 * "message"}. runs holds rq->runs outcomes per size, size after size
 * (done[i] of them for size i: fewer when it was cut short). A size with
 * an error is never recommended. */
json_t *watch_tune_table(const watch_tune_request_t *rq, const watch_tune_run_t *runs,
                         const int *done, const meter_prices_t *prices);

/* ---- the runs (tune_run.c) ---------------------------------------------- */

struct exec;
/* Called once when a tune ends: r 0 with its table (the callee's), or a
 * negative errno with err (-EDQUOT: a budget refused the calls;
 * -ESHUTDOWN: the server stops). */
typedef void (*watch_tune_done_fn)(void *ud, int r, json_t *table, const mf_error_t *err);

/* Starts tuning fn (its settings as they are now; copied) with rq (taken
 * over, also on failure). Returns -EBUSY when fn is being tuned already
 * (one tune of a function at a time), else 0 and done is called later,
 * on the loop, never before this returns. */
int watch_tune_start(uv_loop_t *loop, struct exec *ex, const fn_t *fn, watch_tune_request_t *rq,
                     const meter_prices_t *prices, watch_tune_done_fn done, void *ud,
                     mf_error_t *err);

#endif
