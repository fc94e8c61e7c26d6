/* Background threads giving way to the event loop and the sandboxes.
 *
 * A writer's batch (a few hundred records and log lines in one
 * transaction) or a reader's scan is a run of a few milliseconds of CPU on
 * the CPUs the event loop and the sandboxes share. When the loop or a
 * sandbox becomes ready meanwhile, the kernel's scheduler commonly lets the
 * running thread finish its time slice first (EEVDF's run to parity, CFS's
 * wake-up granularity), and it looks again at its next tick (4 ms at
 * 250 Hz): a call that had finished waits that long to be answered. A
 * thread marked as background therefore gives way (sched_yield) at the
 * points it passes, once every PACE_STEP_NS of work, and carries on at
 * once when nothing else is ready. A yield reorders the threads of the
 * yielding one's own cgroup (the event loop's, the server's): the loop,
 * if ready, runs next. A sandbox, in a cgroup of its own, runs next only
 * when the scheduler's fairness between cgroups picks it. A yield changes
 * the order, not the weights: the thread's share of the CPU over time is
 * what it was. */
#ifndef MAYFLY_CORE_PACE_H
#define MAYFLY_CORE_PACE_H

#include <stdint.h>

/* Work between two yields, at most (give or take one step). */
#define PACE_STEP_NS 100000u

/* Marks the calling thread as a background one (for its life). */
void pace_background(void);

/* A point between two small steps of work: gives way if the calling thread
 * is a background one that has worked PACE_STEP_NS since it last did (or
 * since it was marked). Costs a clock read on a background thread, and
 * nothing on any other. */
void pace_point(void);

/* How many times the calling thread gave way (for tests). */
uint64_t pace_yields(void);

#endif
