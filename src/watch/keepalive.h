/* Keep-alive that learns (docs/keep-alive.md): how long a function's idle
 * instance stays warm, and when to start one again ahead of its next
 * call, from the time between its calls, as the hybrid histogram policy
 * of Shahrad et al., "Serverless in the Wild" (USENIX ATC '20).
 *
 * Two halves. The first is pure: a function's histogram of idle times
 * (from the end of a call to the arrival of the next) and the decision
 * it gives, with every time passed in. The second is the server's live
 * set (keepalive_set_t): a histogram per function, in memory only (the
 * history starts again with the server), which exec asks after each
 * call through exec_set_keep_warm. */
#ifndef MAYFLY_WATCH_KEEPALIVE_H
#define MAYFLY_WATCH_KEEPALIVE_H

#include <stdbool.h>
#include <stdint.h>

/* The histogram's range: this many bins of bin_ms each (4 hours at the
 * default minute). An idle time past it counts as out of range. */
#define KEEPALIVE_BINS 240
/* Fewer idle times than this are too little history for the histogram:
 * three that agree are a rhythm (a timer's), and a function called every
 * half hour has three within two hours. */
#define KEEPALIVE_MIN_SAMPLES 3
/* The windows are taken at these percentiles of the idle times... */
#define KEEPALIVE_HEAD_PERCENTILE 5.0
#define KEEPALIVE_TAIL_PERCENTILE 99.0
/* ...with this margin: the pre-warm window shrinks by it, the end of the
 * keep-alive window grows by it. */
#define KEEPALIVE_MARGIN 0.10
/* Past the tail percentile, the keep-alive window reaches further while
 * the idle time it adds costs less than the cold starts it spares, a cold
 * start priced at this many bins of one idle instance (the fixed policy's
 * default: ten minutes held to spare one). A function called often has
 * few idle times past its 99th percentile, and a longer window costs it
 * next to nothing: cut at the percentile, each of those is a cold start. */
#define KEEPALIVE_COLD_COST_BINS 10.0
/* A histogram whose bin counts vary less than this (their coefficient of
 * variation) says nothing about when the next call comes. */
#define KEEPALIVE_MIN_CV 2.0
/* More than this share of idle times out of range: the function is
 * called more rarely than the histogram can tell. */
#define KEEPALIVE_MAX_OUT_OF_RANGE 0.5
/* Past this many idle times every count is halved, so that the histogram
 * follows a function whose rhythm changes. */
#define KEEPALIVE_DECAY_AT 10000

typedef struct keepalive_config {
    uint64_t bin_ms; /* --keep-alive-bin-s, in ms (> 0) */
    /* The longest keep-alive window (--keep-alive-max-s; by default the
     * histogram's range, as in the paper), which is also the window of a
     * function whose history shows no rhythm. */
    uint64_t max_keep_alive_ms;
} keepalive_config_t;

typedef struct keepalive_hist {
    uint32_t bins[KEEPALIVE_BINS];
    uint32_t out_of_range; /* idle times of KEEPALIVE_BINS bins or more */
    uint32_t n;            /* all idle times counted (in and out of range) */
    /* The last idle times, most recent first: too few for the histogram,
     * they still say when the next call may come. */
    uint64_t recent_ms[KEEPALIVE_MIN_SAMPLES - 1];
} keepalive_hist_t;

typedef enum {
    KEEPALIVE_HISTOGRAM, /* the windows come from the histogram */
    KEEPALIVE_FALLBACK,  /* too little history, or one that predicts nothing */
} keepalive_basis_t;

typedef struct keepalive_window {
    /* How long an instance waits idle: after a call when prewarm_ms is 0,
     * else after it was started again ahead of the next call. At most
     * max_keep_alive_ms, never 0. */
    uint64_t keep_alive_ms;
    /* 0: the instance stays warm after a call. Otherwise it stops after
     * the call, and a new one is started this long after the call ended. */
    uint64_t prewarm_ms;
    keepalive_basis_t basis;
} keepalive_window_t;

/* Counts one idle time. */
void keepalive_hist_add(keepalive_hist_t *h, const keepalive_config_t *cfg, uint64_t idle_ms);

/* The windows h gives:
 * - no idle time yet (a function called once): a short keep-alive, one
 *   bin;
 * - fewer than KEEPALIVE_MIN_SAMPLES: one bin, unless there are two, in
 *   range, that agree (bins at most one apart, or apart by at most the
 *   margin of the longer): then the next is expected like them, so
 *   pre-warm at the start of the shorter one's bin less the margin, warm
 *   until the end of the longer one's plus the margin;
 * - mostly out of range: one bin (the next call is unlikely to be soon);
 * - bin counts too even (CV below KEEPALIVE_MIN_CV): the longest window,
 *   max_keep_alive_ms (the paper's standard keep-alive over the range);
 * - otherwise the histogram: pre-warm at the head percentile's bin start
 *   less the margin, warm until the end of the tail percentile's bin, or
 *   of a later bin when that is cheaper (KEEPALIVE_COLD_COST_BINS), plus
 *   the margin.
 * Every fallback is basis KEEPALIVE_FALLBACK, and every keep-alive window
 * is at most cfg->max_keep_alive_ms. */
void keepalive_decide(const keepalive_hist_t *h, const keepalive_config_t *cfg,
                      keepalive_window_t *out);

/* The coefficient of variation of h's bin counts (0 when it has none). */
double keepalive_hist_cv(const keepalive_hist_t *h);

/* "histogram" or "fallback". */
const char *keepalive_basis_name(keepalive_basis_t b);

/* ---- the live set ---------------------------------------------------------- */

typedef struct keepalive_set keepalive_set_t;

keepalive_set_t *keepalive_set_new(const keepalive_config_t *cfg);
void keepalive_set_free(keepalive_set_t *s);
/* A call of function arrived idle_ms after the end of its previous one. */
void keepalive_set_observe(keepalive_set_t *s, const char *function, uint64_t idle_ms);
/* The windows for function now, and how many idle times they stand on. */
void keepalive_set_decide(keepalive_set_t *s, const char *function, keepalive_window_t *out,
                          uint32_t *samples);
/* The function is gone: its history too. */
void keepalive_set_forget(keepalive_set_t *s, const char *function);

/* Makes s the policy exec asks (exec_set_keep_warm); s outlives ex's calls. */
struct exec;
void keepalive_set_attach(keepalive_set_t *s, struct exec *ex);

#endif
