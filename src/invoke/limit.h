/* The async queue's own limit on a function's running attempts, below its
 * max_concurrency: more attempts at once help only while each still gets
 * what it waits for. An attempt that ends counts as held up when
 *   - its runtime spent most of it runnable but waiting for a CPU (the
 *     kernel's schedstat), or
 *   - the server's event loop is saturated (busy, or starved of a CPU by
 *     what shares it: obs/loop.h) and the attempt took several times the
 *     function's fastest recent attempt (its answer waited for the loop,
 *     which more attempts would only load further).
 * While most recent attempts were held up the limit falls
 * (multiplicatively, to a floor); while few were and the limit holds
 * events back it rises: by one an attempt until it first falls (so it
 * doubles each round of attempts), then by one a round. A
 * function that waits on the network or a timer climbs to its
 * max_concurrency; a CPU-bound one on a busy machine keeps a few instances
 * instead of starting as many as it may, all queueing for the same cores
 * and the same loop. Pure arithmetic: async.c feeds it. */
#ifndef MAYFLY_INVOKE_LIMIT_H
#define MAYFLY_INVOKE_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

/* The share of recent attempts held up above which the limit falls, and
 * below which it may rise (smoothed over attempts). */
#define ASYNC_LIMIT_HIGH 0.5
#define ASYNC_LIMIT_LOW 0.25
/* An attempt waited for a CPU for more than this share of its time. */
#define ASYNC_LIMIT_CPU_WAIT 0.5
/* The loop is saturated above this demand, and an attempt is slow at
 * this many times the function's fastest recent one. */
#define ASYNC_LIMIT_LOOP_DEMAND 0.9
#define ASYNC_LIMIT_SLOWDOWN 4.0
/* The limit never falls below ASYNC_LIMIT_FLOOR (nor rises above
 * max_concurrency); a function's queue starts at ASYNC_LIMIT_START. */
#define ASYNC_LIMIT_FLOOR 2
#define ASYNC_LIMIT_START 4
/* The fastest recent attempt is the fastest of the last one or two
 * windows of this many attempts. */
#define ASYNC_LIMIT_WINDOW 256

typedef struct async_limit {
    double cap;                  /* attempts that may run at once */
    double held_share;           /* smoothed; < 0 until the first sample */
    double fastest_ms, fastest_prev_ms; /* this window's, the last one's (0: none) */
    unsigned window_n;
    bool fell;                   /* it has fallen once: growth is linear */
} async_limit_t;

/* One ended attempt, as the limit sees it. */
typedef struct async_limit_sample {
    double duration_ms;          /* hand-over to answer */
    double cpu_wait_ms;          /* of which runnable, waiting for a CPU (< 0: unknown) */
    double loop_demand;          /* the event loop's (obs_loop_demand) */
    bool held_back;              /* ready events were waiting on the limit */
} async_limit_sample_t;

void async_limit_init(async_limit_t *l);
/* max is the function's max_concurrency now. */
void async_limit_sample(async_limit_t *l, const async_limit_sample_t *s, int max);
/* How many attempts may run now: between min(ASYNC_LIMIT_FLOOR, max) and
 * max. */
int async_limit_get(const async_limit_t *l, int max);

/* ---- The foreground ----------------------------------------------------------
 * While events are being accepted (at least ASYNC_FG_ACCEPTS in the last
 * one or two windows of ASYNC_FG_WINDOW_MS) and the event loop is
 * saturated (its demand at least the server's --accept-first share, 0.9
 * by default: obs/loop.h), accepting goes first:
 * all functions together run at most ASYNC_FG_ATTEMPTS attempts, taking
 * turns in the order they came to wait, so that what the accepted events
 * cost to run does not slow the accepting in proportion to the work each
 * brings (a topic's three deliveries a publish against an enqueue's one).
 * Once the accepting stops or the loop has room, every waiting function
 * runs its backlog at its own limit again. The line is intrusive: a
 * function's queue state holds its async_fg_node_t. */
#define ASYNC_FG_WINDOW_MS 100
#define ASYNC_FG_ACCEPTS 16
/* As many as one function's floor: a topic's subscribers together get what
 * one function's enqueued events do. */
#define ASYNC_FG_ATTEMPTS ASYNC_LIMIT_FLOOR

typedef struct async_fg_node {
    struct async_fg_node *next;
    bool waiting;
} async_fg_node_t;

typedef struct async_fg {
    uint64_t window_start_ms;
    unsigned accepts_now, accepts_last;
    async_fg_node_t *head, *tail;    /* waiting for a turn, first come first */
} async_fg_t;

void async_fg_init(async_fg_t *f);
/* An event was accepted at now_ms (a monotonic clock). */
void async_fg_accepted(async_fg_t *f, uint64_t now_ms);
/* Whether the foreground holds attempts at now_ms, the loop at demand and
 * saturated from at_least on (over 1: never). */
bool async_fg_on(async_fg_t *f, uint64_t now_ms, double loop_demand, double at_least);
/* Empties the line, calling release for each node in it, first to last. */
void async_fg_release(async_fg_t *f, void (*release)(async_fg_node_t *n, void *ud), void *ud);
/* A function's dispatch begins: true when it was first in line, which is
 * its turn (it leaves the line). */
bool async_fg_take_turn(async_fg_t *f, async_fg_node_t *n);
/* Whether the function of n must wait (and is now in line, at its end
 * unless already there) before starting another attempt, running of them
 * running in all, while the foreground is on: when they are all taken, or
 * others wait before it and this is not its turn. A start uses up the
 * turn (*turn becomes false). */
bool async_fg_wait(async_fg_t *f, async_fg_node_t *n, uint64_t running, bool on, bool *turn);
/* The node whose turn is next when running attempts leave room (NULL:
 * none, or no room). */
async_fg_node_t *async_fg_next(const async_fg_t *f, uint64_t running);

#endif
