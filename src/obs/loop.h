/* The event loop's own measure of itself, for /metrics: how long each loop
 * iteration was busy (running callbacks rather than waiting in epoll), the
 * loop thread's CPU time and the whole process's. A wall-clock latency seen
 * by a client grows whenever the machine is busy; these do not, so tests
 * and operators can tell "the loop was blocked" from "the machine was
 * loaded":
 *
 *   mayfly_event_loop_busy_seconds        histogram, one sample per iteration
 *   mayfly_event_loop_cpu_seconds_total   the loop thread's CPU time
 *   process_cpu_seconds_total             every thread's CPU time (user+sys)
 *
 * Work handed to libuv's thread pool (unpacking a package, say) counts in
 * the process's CPU time and not in the loop thread's. */
#ifndef MAYFLY_OBS_LOOP_H
#define MAYFLY_OBS_LOOP_H

#include <uv.h>

#include "core/error.h"

typedef struct obs_loop obs_loop_t;

/* Starts measuring loop: turns on libuv's idle-time accounting for it,
 * starts a prepare handle (unreferenced: it never keeps the loop alive)
 * that takes one histogram sample per iteration, and registers the
 * metrics. Must be called on the thread that runs loop, before it runs.
 * Costs two clock reads (vDSO, no system call) per iteration. One loop per
 * process is measured: a second start fails with -EBUSY. */
int obs_loop_start(uv_loop_t *loop, obs_loop_t **out, mf_error_t *err);

/* The loop thread's demand for a CPU over the last 100 ms window (or
 * longer, when an iteration ran past it): the share of it the thread ran
 * or was runnable but waiting for a CPU (the kernel's schedstat), 0 to 1.
 * Near 1 the loop is saturated: busy, or starved by what shares its CPUs.
 * 0 when no loop is measured or the kernel keeps no schedstats. */
double obs_loop_demand(void);

/* Stops measuring: closes the prepare handle, so the loop must run once
 * more for its close callback (as it does at exit for every other
 * handle). The metrics stay registered until metrics_free_all, after
 * which obs_loop_start may be called again. NULL is a no-op. */
void obs_loop_close(obs_loop_t *l);

#endif
