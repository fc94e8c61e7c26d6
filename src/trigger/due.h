/* When a schedule is due: its expression (trigger/schedule_expr.h) read on
 * its time zone's wall clock (trigger/tz.h), as instants.
 *
 * cron() and at() name wall-clock times. As EventBridge Scheduler does on
 * daylight-saving changes, a wall-clock time the clock skips (spring) is
 * not due that day, and one the clock passes twice (autumn) is due once,
 * the first time. rate() counts real elapsed time from the schedule's
 * start, whatever the zone: rate(1 day) is every 24 hours, so across a
 * change its wall-clock time moves by the hour.
 *
 * Times are instants in seconds since the epoch. */
#ifndef MAYFLY_TRIGGER_DUE_H
#define MAYFLY_TRIGGER_DUE_H

#include <stdint.h>

#include "trigger/schedule_expr.h"
#include "trigger/tz.h"

/* The first instant strictly after after_s at which the schedule is due:
 * 0 and *next, or -ENOENT when it never is again. start_s is where a
 * rate() counts from (its first due time). */
int sched_due_next(const sched_expr_t *e, const tz_t *zone, int64_t start_s, int64_t after_s,
                   int64_t *next);

/* The latest instant in (after_s, now_s] at which the schedule is due: 0
 * and *due, or -ENOENT when there is none. It looks back as far as it must
 * without stepping through every due time in between, so a minutely
 * schedule that missed a year costs no more than one that missed an
 * hour. */
int sched_due_latest(const sched_expr_t *e, const tz_t *zone, int64_t start_s, int64_t after_s,
                     int64_t now_s, int64_t *due);

#endif
