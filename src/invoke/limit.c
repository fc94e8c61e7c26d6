/* See limit.h. */
#include "invoke/limit.h"

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
