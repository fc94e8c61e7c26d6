/* Whether the store can be reached (store/health.h). */
#include "store/health.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <uv.h>

#include "core/clock.h"
#include "core/log.h"

static uv_once_t health_once = UV_ONCE_INIT;
static uv_mutex_t health_lock;
/* Written under health_lock, read without it. */
static _Atomic int64_t down_since_ms;
static _Atomic uint64_t outages;
/* Under health_lock. */
static uint64_t down_since_ns;
static char down_why[400];
static store__health_watch_t *watchers;

static void health_init(void)
{
    uv_mutex_init(&health_lock);
}

static void health_enter(void)
{
    uv_once(&health_once, health_init);
    uv_mutex_lock(&health_lock);
}

int64_t store_down_since_ms(void)
{
    return atomic_load_explicit(&down_since_ms, memory_order_relaxed);
}

int store_check_up(mf_error_t *err)
{
    if (!store_down_since_ms())
        return 0;
    char why[sizeof down_why];
    health_enter();
    snprintf(why, sizeof why, "%s", down_why);
    uv_mutex_unlock(&health_lock);
    return mf_error_plain(err, ENOTCONN,
                          "the store (PostgreSQL) cannot be reached: %s; retry later",
                          why[0] ? why : "it went away");
}

bool store_unavailable(int r)
{
    return r == -ECONNRESET || r == -ENOTCONN;
}

bool store__health_lost(const char *why)
{
    bool went = false;
    health_enter();
    if (!store_down_since_ms()) {
        went = true;
        down_since_ns = clock_mono_ns();
        snprintf(down_why, sizeof down_why, "%s", why && *why ? why : "no reason given");
        atomic_fetch_add(&outages, 1);
        int64_t now = clock_wall_ms();
        atomic_store(&down_since_ms, now > 0 ? now : 1);
        log_warn("store", "lost PostgreSQL (%s); retrying", down_why);
    } else if (why && *why) {
        /* Still down: clients are told the latest reason (a server that
         * was shutting down is now not there, or starting up). */
        snprintf(down_why, sizeof down_why, "%s", why);
    }
    uv_mutex_unlock(&health_lock);
    return went;
}

void store__health_back(void)
{
    if (!store_down_since_ms())
        return;
    health_enter();
    if (store_down_since_ms()) {
        double s = (double)(clock_mono_ns() - down_since_ns) / 1e9;
        atomic_store(&down_since_ms, 0);
        down_why[0] = '\0';
        log_info("store", "PostgreSQL is back after %.1f s", s);
        for (store__health_watch_t *w = watchers; w; w = w->next)
            w->wake(w->ud);
    }
    uv_mutex_unlock(&health_lock);
}

uint64_t store__health_outages(void)
{
    return atomic_load(&outages);
}

void store__health_watch(store__health_watch_t *w)
{
    health_enter();
    if (!w->on) {
        w->on = true;
        w->prev = NULL;
        w->next = watchers;
        if (watchers)
            watchers->prev = w;
        watchers = w;
    }
    uv_mutex_unlock(&health_lock);
}

void store__health_unwatch(store__health_watch_t *w)
{
    health_enter();
    if (w->on) {
        if (w->prev)
            w->prev->next = w->next;
        else
            watchers = w->next;
        if (w->next)
            w->next->prev = w->prev;
        w->on = false;
        w->prev = w->next = NULL;
    }
    uv_mutex_unlock(&health_lock);
}
