/* See limit.h. */
#include "invoke/limit.h"

#include <stddef.h>

/* Weight of the newest attempt in the smoothed share. */
#define SMOOTHING 0.1
/* The limit's cut for an attempt while most are held up. */
#define DECREASE 0.95

static double clampd(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static double floor_for(int max)
{
    return max < ASYNC_LIMIT_FLOOR ? (max > 0 ? max : 0) : ASYNC_LIMIT_FLOOR;
}

void async_limit_init(async_limit_t *l)
{
    *l = (async_limit_t){ .cap = ASYNC_LIMIT_START, .held_share = -1 };
}

/* The fastest attempt of the last one or two windows (0: none yet). */
static double fastest(const async_limit_t *l)
{
    if (!l->fastest_prev_ms)
        return l->fastest_ms;
    if (!l->fastest_ms)
        return l->fastest_prev_ms;
    return l->fastest_ms < l->fastest_prev_ms ? l->fastest_ms : l->fastest_prev_ms;
}

static void note_duration(async_limit_t *l, double ms)
{
    if (!l->fastest_ms || ms < l->fastest_ms)
        l->fastest_ms = ms;
    if (++l->window_n >= ASYNC_LIMIT_WINDOW) {
        l->fastest_prev_ms = l->fastest_ms;
        l->fastest_ms = 0;
        l->window_n = 0;
    }
}

static bool held_up(const async_limit_t *l, const async_limit_sample_t *s)
{
    if (s->cpu_wait_ms > 0 && s->duration_ms > 0 &&
        s->cpu_wait_ms > ASYNC_LIMIT_CPU_WAIT * s->duration_ms)
        return true;
    double base = fastest(l);
    return s->loop_demand > ASYNC_LIMIT_LOOP_DEMAND && base > 0 &&
           s->duration_ms > ASYNC_LIMIT_SLOWDOWN * base;
}

void async_limit_sample(async_limit_t *l, const async_limit_sample_t *s, int max)
{
    if (max <= 0 || s->duration_ms < 0)
        return;
    double held = held_up(l, s) ? 1 : 0;
    note_duration(l, s->duration_ms);
    l->held_share = l->held_share < 0 ? held
                                      : (1 - SMOOTHING) * l->held_share + SMOOTHING * held;
    if (l->held_share > ASYNC_LIMIT_HIGH) {
        l->cap *= DECREASE;
        l->fell = true;
    } else if (l->held_share < ASYNC_LIMIT_LOW && s->held_back)
        l->cap += l->fell ? 1 / l->cap : 1;
    l->cap = clampd(l->cap, floor_for(max), max);
}

int async_limit_get(const async_limit_t *l, int max)
{
    if (max <= 0)
        return 0;
    int n = (int)l->cap;
    int lo = (int)floor_for(max);
    return n < lo ? lo : n > max ? max : n;
}

/* ---- the foreground ---------------------------------------------------------- */

void async_fg_init(async_fg_t *f)
{
    *f = (async_fg_t){ 0 };
}

/* The windows moved on to now_ms. */
static void fg_roll(async_fg_t *f, uint64_t now_ms)
{
    if (now_ms < f->window_start_ms || now_ms - f->window_start_ms >= 2 * ASYNC_FG_WINDOW_MS) {
        f->accepts_now = f->accepts_last = 0;
        f->window_start_ms = now_ms;
    } else if (now_ms - f->window_start_ms >= ASYNC_FG_WINDOW_MS) {
        f->accepts_last = f->accepts_now;
        f->accepts_now = 0;
        f->window_start_ms += ASYNC_FG_WINDOW_MS;
    }
}

void async_fg_accepted(async_fg_t *f, uint64_t now_ms)
{
    fg_roll(f, now_ms);
    f->accepts_now++;
}

bool async_fg_on(async_fg_t *f, uint64_t now_ms, double loop_demand, double at_least)
{
    fg_roll(f, now_ms);
    return f->accepts_now + f->accepts_last >= ASYNC_FG_ACCEPTS && loop_demand >= at_least;
}

void async_fg_release(async_fg_t *f, void (*release)(async_fg_node_t *n, void *ud), void *ud)
{
    async_fg_node_t *n = f->head;
    f->head = f->tail = NULL;
    while (n) {
        async_fg_node_t *next = n->next;
        n->next = NULL;
        n->waiting = false;
        release(n, ud);
        n = next;
    }
}

bool async_fg_take_turn(async_fg_t *f, async_fg_node_t *n)
{
    if (f->head != n)
        return false;
    f->head = n->next;
    if (!f->head)
        f->tail = NULL;
    n->next = NULL;
    n->waiting = false;
    return true;
}

bool async_fg_wait(async_fg_t *f, async_fg_node_t *n, uint64_t running, bool on, bool *turn)
{
    if (!on || (running < ASYNC_FG_ATTEMPTS && (!f->head || *turn))) {
        *turn = false;
        return false;
    }
    if (!n->waiting) {
        n->waiting = true;
        n->next = NULL;
        if (f->tail)
            f->tail->next = n;
        else
            f->head = n;
        f->tail = n;
    }
    return true;
}

async_fg_node_t *async_fg_next(const async_fg_t *f, uint64_t running)
{
    return running < ASYNC_FG_ATTEMPTS ? f->head : NULL;
}
