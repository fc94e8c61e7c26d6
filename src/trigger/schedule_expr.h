/* Schedule expressions, as EventBridge Scheduler writes them:
 *
 *   rate(VALUE UNIT)   VALUE a positive integer, UNIT minute|minutes,
 *                      hour|hours, day|days (singular for 1, plural else)
 *   cron(MIN HOUR DOM MONTH DOW YEAR)
 *                      AWS's six fields: minutes 0-59, hours 0-23,
 *                      day of month 1-31 (also L, L-N, NW, LW), month 1-12
 *                      or JAN-DEC, day of week 1-7 or SUN-SAT (1 is
 *                      Sunday; also NL, N#K), year 1970-2199; `*`, lists
 *                      `a,b`, ranges `a-b`, steps `x/n`; exactly one of the
 *                      day fields is `?`
 *   at(YYYY-MM-DDTHH:MM:SS)
 *                      once
 *
 * Times here are civil ("wall clock") seconds since 1970-01-01T00:00:00 of
 * the schedule's own calendar, with no time zone: the caller maps them to
 * and from instants. A parsed expression is plain data (no allocation). */
#ifndef MAYFLY_TRIGGER_SCHEDULE_EXPR_H
#define MAYFLY_TRIGGER_SCHEDULE_EXPR_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"

#define SCHED_EXPR_MAX 256 /* the longest expression accepted */

typedef enum { SCHED_RATE, SCHED_CRON, SCHED_AT } sched_kind_t;

typedef struct sched_expr {
    sched_kind_t kind;
    int64_t rate_s; /* rate: the period */
    int64_t at_s;   /* at: the civil time */
    /* cron: one bit per allowed value. */
    uint64_t minutes;           /* bits 0-59 */
    uint32_t hours;             /* bits 0-23 */
    uint32_t mdays;             /* bits 1-31 */
    uint16_t months;            /* bits 1-12 */
    uint8_t wdays;              /* bits 1-7, 1 = Sunday */
    uint8_t years[29];          /* bits for 1970-2199 (230 years) */
    bool mday_any, wday_any;    /* the field was `?` (or `*`) */
    bool mday_last;             /* L: the month's last day */
    int mday_last_offset;       /* L-N: N days before it */
    int mday_weekday;           /* NW: the weekday nearest N (0: none) */
    bool mday_last_weekday;     /* LW */
    int wday_last;              /* NL: the month's last weekday N (0: none) */
    int wday_nth_day, wday_nth; /* N#K: the Kth weekday N (0: none) */
} sched_expr_t;

/* Parses text into *out: 0, or -EINVAL with a message naming the problem
 * ("cron: field 3 (day of month): `32` is past 31"). */
int sched_expr_parse(const char *text, sched_expr_t *out, mf_error_t *err);

/* The first civil time strictly after after_s that e fires at, a whole
 * minute for cron: 0 and *next, or -ENOENT when it never fires again (an
 * `at` in the past, a cron whose years have run out). For rate, the
 * schedule's times are start_s + k * rate_s. */
int sched_expr_next(const sched_expr_t *e, int64_t start_s, int64_t after_s, int64_t *next);

/* Civil seconds ↔ date and time (proleptic Gregorian). */
int64_t sched_civil_seconds(int year, int month, int day, int hour, int minute, int second);
void sched_civil_split(int64_t s, int *year, int *month, int *day, int *hour, int *minute,
                       int *second, int *wday /* 1 = Sunday */);

#endif
