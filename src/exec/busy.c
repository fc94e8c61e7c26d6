/* CPU-aware scale-out: a call that finds no instance free waits a moment
 * for a busy one, rather than starting another, while every CPU is busy.
 *
 * A new instance is another process on CPUs that are already full: it
 * adds no CPU, only a start's work and more context switches among more
 * processes (each warming its caches and JIT on fewer calls), so a burst
 * of short calls on a busy machine ran slower the more instances it made.
 * Busy is the server's own measure: the CPU time the server and every
 * sandbox used (their cgroups' accounting), sampled every BUSY_SAMPLE_MS
 * while any instance runs a call, against the CPUs the server may use;
 * averaged, from BUSY_FULL_PERCENT of them on they are all busy (interrupts and
 * the kernel's own work are not in the cgroups' time). Sandboxes held back by
 * their CPU quota use no CPU, so a function whose instances sit at their
 * quota while the CPUs idle still scales out. CPUs that other processes
 * keep busy are not seen: there mayfly scales out as if eager.
 *
 * A call waits only for a function whose calls are short (their average
 * under the bound: the time one of its starts takes, on average;
 * BUSY_HOLD_DEFAULT_MS before the first), only while its function has
 * instances busy or starting that will take it, and only while they get
 * through calls (one ended within the bound) or the call has waited less
 * than the bound: busy instances that stop answering, or calls that turn
 * long, start instances again. A queue longer than the server's
 * --max-queue starts instances too. */
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/cpus.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "exec/exec_internal.h"

#define BUSY_SAMPLE_MS 2
/* Each sample's weight in the average: about the last 8 samples (16 ms). */
#define BUSY_ALPHA 0.125
/* A sampling paused longer than this (no call ran) starts afresh. */
#define BUSY_STALE_MS 1000
/* The share of the CPUs in use from which they count as all busy, in
 * percent, unless the server is told another (--busy-cpu-percent). */
#define BUSY_FULL_PERCENT 80
#define BUSY_HOLD_DEFAULT_MS 10.0
#define BUSY_HOLD_MIN_MS 1.0
#define BUSY_HOLD_MAX_MS 100.0
/* A function's average call duration and start time: recent ones count
 * most (about the last 8). */
#define BUSY_FN_ALPHA 0.125

static void busy_sample(exec_t *ex)
{
    uint64_t cpu_ns, now = clock_mono_ns();
    if (sandbox_system_cpu_ns(ex->sandboxes, &cpu_ns) < 0)
        return;
    if (ex->busy_at_ns && now > ex->busy_at_ns && cpu_ns >= ex->busy_cpu_ns) {
        double used = (double)(cpu_ns - ex->busy_cpu_ns) /
                      ((double)(now - ex->busy_at_ns) * ex->busy_cpus);
        if (ex->busy_share < 0)
            ex->busy_share = used; /* the first sample after a pause */
        else
            ex->busy_share += (used - ex->busy_share) * BUSY_ALPHA;
    }
    ex->busy_cpu_ns = cpu_ns;
    ex->busy_at_ns = now;
}

/* A pool that held calls gets another look: they may have waited their
 * bound by now, or the CPUs may have room again. */
static bool take_held(exec_pool_t *p)
{
    if (!p->held)
        return false;
    exec__busy_unhold(p);
    return true;
}

static void on_busy_tick(uv_timer_t *t)
{
    exec_t *ex = t->data;
    busy_sample(ex);
    if (ex->n_held)
        exec__pump_pools(ex, ex->n_held, take_held);
    if (!ex->n_busy_all && !ex->n_held)
        uv_timer_stop(t);
}

void exec__busy_init(exec_t *ex)
{
    ex->busy_cpus = cpus_usable();
    if (ex->cfg.scale_out_eager) {
        log_info("exec", "scale-out: eager (a call that finds no instance free starts one)");
        return;
    }
    uint64_t ns;
    int r = sandbox_system_cpu_ns(ex->sandboxes, &ns);
    if (r < 0) {
        log_warn("exec", "scale-out: eager, as the cgroups do not give the sandboxes' CPU time (%s)",
                 strerror(-r));
        return;
    }
    ex->busy_timer = xmalloc(sizeof *ex->busy_timer);
    uv_timer_init(ex->loop, ex->busy_timer);
    ex->busy_timer->data = ex;
    uv_unref((uv_handle_t *)ex->busy_timer);
    log_info("exec",
             "scale-out: CPU-aware (a short call waits for a busy instance while the server and "
             "its sandboxes use %u%% of the %u CPUs it may use)",
             ex->cfg.busy_cpu_percent ? ex->cfg.busy_cpu_percent : BUSY_FULL_PERCENT,
             ex->busy_cpus);
}

void exec__busy_kick(exec_t *ex)
{
    if (!ex->busy_timer || uv_is_active((uv_handle_t *)ex->busy_timer))
        return;
    /* Paused since the last call ended: after a short pause (a client
     * between two bursts) the average goes on from the machine now, after
     * a long one it starts again from the first sample. */
    if (!ex->busy_at_ns || clock_mono_ns() - ex->busy_at_ns > BUSY_STALE_MS * 1000000ull) {
        ex->busy_at_ns = 0;
        ex->busy_share = -1;
    }
    busy_sample(ex);
    uv_timer_start(ex->busy_timer, on_busy_tick, BUSY_SAMPLE_MS, BUSY_SAMPLE_MS);
}

/* Whether every CPU is busy, by the latest samples. */
static bool busy_saturated(const exec_t *ex)
{
    unsigned pc = ex->cfg.busy_cpu_percent ? ex->cfg.busy_cpu_percent : BUSY_FULL_PERCENT;
    return ex->busy_timer && ex->busy_share * 100 >= pc;
}

static double hold_bound_ms(const exec_pool_t *p)
{
    double b = p->start_ms_avg > 0 ? p->start_ms_avg : BUSY_HOLD_DEFAULT_MS;
    return b < BUSY_HOLD_MIN_MS ? BUSY_HOLD_MIN_MS : b > BUSY_HOLD_MAX_MS ? BUSY_HOLD_MAX_MS : b;
}

bool exec__busy_hold(exec_pool_t *p, invocation_t *inv)
{
    exec_t *ex = p->ex;
    if (!ex->busy_timer || p->fn.tenancy.per_tenant || !(p->n_busy + p->n_starting) ||
        p->n_queued > ex->cfg.max_queue)
        return false;
    double bound = hold_bound_ms(p);
    if (p->call_ms_avg <= 0 || p->call_ms_avg > bound)
        return false;
    /* Its instances are getting through calls (one ended within the
     * bound), or the call has not yet waited as long as a start takes. */
    uint64_t now = clock_mono_ns(), bound_ns = (uint64_t)(bound * 1e6);
    bool progress = p->last_end_ns && now - p->last_end_ns < bound_ns;
    if (!progress && now - inv->queued_ns >= bound_ns)
        return false;
    if (!busy_saturated(ex))
        return false;
    if (!p->held) {
        p->held = true;
        ex->n_held++;
    }
    if (!inv->held) {
        inv->held = true;
        if (!p->copy) {
            const char *labels[] = { p->name };
            metrics_inc(ex->m_held, labels, 1);
        }
    }
    exec__busy_kick(ex);
    return true;
}

void exec__busy_unhold(exec_pool_t *p)
{
    if (p->held) {
        p->held = false;
        p->ex->n_held--;
    }
}

static void average(double *avg, double x)
{
    *avg = *avg > 0 ? *avg + (x - *avg) * BUSY_FN_ALPHA : x;
}

void exec__busy_call_ended(exec_pool_t *p, double duration_ms)
{
    average(&p->call_ms_avg, duration_ms > 0.001 ? duration_ms : 0.001);
}

void exec__busy_started(exec_pool_t *p, double init_ms)
{
    average(&p->start_ms_avg, init_ms > 0.001 ? init_ms : 0.001);
}

static void close_free(uv_handle_t *h)
{
    free(h);
}

void exec__busy_free(exec_t *ex)
{
    if (ex->busy_timer) {
        uv_timer_stop(ex->busy_timer);
        uv_close((uv_handle_t *)ex->busy_timer, close_free);
        ex->busy_timer = NULL;
    }
}
