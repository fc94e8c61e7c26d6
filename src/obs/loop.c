#include "obs/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/fs.h"
#include "obs/metrics.h"

/* Upper bounds of an iteration's busy time. A healthy iteration takes
 * microseconds; the buckets reach far enough up to show a stall of
 * seconds for what it is. */
static const double busy_bounds[] = { 0.00001, 0.000025, 0.00005, 0.0001, 0.00025,
                                      0.0005,  0.001,    0.0025,  0.005,  0.01,
                                      0.025,   0.05,     0.1,     0.25,   0.5,
                                      1,       2.5,      5,       10 };
#define NBOUNDS (sizeof busy_bounds / sizeof busy_bounds[0])

struct obs_loop {
    uv_loop_t *loop;
    uv_prepare_t prepare;
    bool active;
    clockid_t thread_clock;      /* the loop thread's CPU clock */
    uint64_t bounds_ns[NBOUNDS]; /* busy_bounds in nanoseconds: integer compares per sample */
    uint64_t last_ns;            /* at the previous iteration's prepare, 0 before the first */
    uint64_t last_idle_ns;
    /* Written by the loop thread alone and read by the collector, which
     * may run on any thread: relaxed atomics, so the hot path takes no
     * lock and a reader never sees a torn value. */
    uint64_t counts[NBOUNDS + 1];
    uint64_t busy_ns;
    /* The loop thread's demand for a CPU over the last whole window:
     * (running + runnable but waiting) / wall, from its schedstat. */
    int schedstat_fd;
    uint64_t window_start_ns, window_demand_ns;
    double recent_share;
    metrics_family_t *m_busy, *m_loop_cpu, *m_proc_cpu;
};

/* One measured loop per process: the collector outlives a close (the
 * metrics registry has no way to unregister it), so its state is static. */
static obs_loop_t the_loop;

static inline void add_relaxed(uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

/* The window obs_loop_busy_share looks back over. */
#define BUSY_WINDOW_NS (100u * 1000 * 1000)

/* The loop thread's time running and waiting to run so far (0 where the
 * kernel keeps no schedstats). */
static uint64_t thread_demand_ns(obs_loop_t *l)
{
    uint64_t run, wait;
    if (l->schedstat_fd < 0 || fs_read_schedstat(l->schedstat_fd, &run, &wait) < 0)
        return 0;
    return run + wait;
}

/* Runs once per iteration, right before the loop waits in epoll: the time
 * since the previous prepare, less what libuv spent idle in epoll in
 * between, is how long the loop ran callbacks (timers, I/O, closes). */
static void on_prepare(uv_prepare_t *h)
{
    obs_loop_t *l = h->data;
    uint64_t now = uv_hrtime();
    uint64_t idle = uv_metrics_idle_time(l->loop);
    if (l->last_ns) {
        uint64_t span = now - l->last_ns, idled = idle - l->last_idle_ns;
        uint64_t busy = span > idled ? span - idled : 0;
        size_t b = 0;
        while (b < NBOUNDS && busy > l->bounds_ns[b])
            b++;
        add_relaxed(&l->counts[b], 1);
        add_relaxed(&l->busy_ns, busy);
    }
    if (now - l->window_start_ns >= BUSY_WINDOW_NS) {
        uint64_t demand = thread_demand_ns(l);
        if (l->window_start_ns && demand >= l->window_demand_ns) {
            double share = (double)(demand - l->window_demand_ns) /
                           (double)(now - l->window_start_ns);
            l->recent_share = share > 1 ? 1 : share;
        }
        l->window_start_ns = now;
        l->window_demand_ns = demand;
    }
    l->last_ns = now;
    l->last_idle_ns = idle;
}

double obs_loop_demand(void)
{
    return the_loop.active ? the_loop.recent_share : 0;
}

static double cpu_seconds(clockid_t clock)
{
    struct timespec ts;
    if (clock_gettime(clock, &ts) < 0)
        return 0;
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Called before each /metrics render. CPU clocks are read here, not kept
 * up to date: reading one is a clock_gettime, too dear per iteration. */
static void collect(void *ud)
{
    obs_loop_t *l = ud;
    uint64_t counts[NBOUNDS + 1];
    for (size_t i = 0; i <= NBOUNDS; i++)
        counts[i] = __atomic_load_n(&l->counts[i], __ATOMIC_RELAXED);
    double busy = (double)__atomic_load_n(&l->busy_ns, __ATOMIC_RELAXED) / 1e9;
    metrics_set_histogram(l->m_busy, NULL, counts, busy);
    metrics_set(l->m_loop_cpu, NULL, cpu_seconds(l->thread_clock));
    metrics_set(l->m_proc_cpu, NULL, cpu_seconds(CLOCK_PROCESS_CPUTIME_ID));
}

int obs_loop_start(uv_loop_t *loop, obs_loop_t **out, mf_error_t *err)
{
    obs_loop_t *l = &the_loop;
    if (l->active)
        return mf_error_plain(err, EBUSY, "an event loop is measured already");
    memset(l, 0, sizeof *l);
    l->schedstat_fd = -1;
    int r = uv_loop_configure(loop, UV_METRICS_IDLE_TIME);
    if (r < 0)
        return mf_error_set(err, -r, "measuring the event loop's idle time");
    /* This thread's clock: the caller runs the loop here. */
    r = pthread_getcpuclockid(pthread_self(), &l->thread_clock);
    if (r != 0)
        return mf_error_set(err, r, "the event loop thread's CPU clock");
    for (size_t i = 0; i < NBOUNDS; i++)
        l->bounds_ns[i] = (uint64_t)(busy_bounds[i] * 1e9 + 0.5);

    l->m_busy = metrics_family_new(
        METRICS_HISTOGRAM, "mayfly_event_loop_busy_seconds",
        "How long each event loop iteration ran callbacks instead of waiting for I/O "
        "(wall time, so it includes time the thread was preempted).",
        NULL, busy_bounds, NBOUNDS);
    l->m_loop_cpu = metrics_family_new(
        METRICS_COUNTER, "mayfly_event_loop_cpu_seconds_total",
        "CPU time (user and system) of the event loop thread.", NULL, NULL, 0);
    l->m_proc_cpu = metrics_family_new(METRICS_COUNTER, "process_cpu_seconds_total",
                                       "Total user and system CPU time spent in seconds.",
                                       NULL, NULL, 0);
    metrics_add_collector(collect, l);

    /* This thread's own file, read again from the start each window. */
    l->schedstat_fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    l->loop = loop;
    uv_prepare_init(loop, &l->prepare);
    l->prepare.data = l;
    uv_prepare_start(&l->prepare, on_prepare);
    /* A measure must not keep the loop alive at shutdown. */
    uv_unref((uv_handle_t *)&l->prepare);
    l->active = true;
    *out = l;
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    obs_loop_t *l = h->data;
    l->active = false;
    if (l->schedstat_fd >= 0)
        close(l->schedstat_fd);
    l->schedstat_fd = -1;
}

void obs_loop_close(obs_loop_t *l)
{
    if (!l || !l->active || uv_is_closing((uv_handle_t *)&l->prepare))
        return;
    uv_prepare_stop(&l->prepare);
    uv_close((uv_handle_t *)&l->prepare, on_closed);
}
