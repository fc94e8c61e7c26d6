/* A schedule's due times as instants (see due.h). */
#include "trigger/due.h"

#include <errno.h>

/* The wall-clock reading of a cron() or at() that comes first after
 * instant after_s, as the instant it is due at.
 *
 * A civil time c is due at the first instant the clock reads it. Every
 * civil time not after the clock's reading at after_s was first read at or
 * before after_s (walking back from after_s the clock passes every earlier
 * reading, the skipped ones excepted), so the search starts at that
 * reading, and passes over times that are skipped or whose first reading
 * is already behind (the second pass of a repeated hour). */
static int next_civil(const sched_expr_t *e, const tz_t *zone, int64_t after_s, int64_t *next)
{
    int64_t civil = after_s + tz_offset_at(zone, after_s);
    /* Each step moves past one candidate; a day and a bit of skipped or
     * repeated minutes is the most there can be in a row. */
    for (int guard = 0; guard < 3 * 1440; guard++) {
        int64_t c;
        int r = sched_expr_next(e, 0, civil, &c);
        if (r < 0)
            return r;
        int64_t first, second;
        tz_civil_kind_t k = tz_civil_to_instant(zone, c, &first, &second);
        if (k != TZ_CIVIL_SKIPPED && first > after_s) {
            *next = first;
            return 0;
        }
        civil = c;
    }
    return -ENOENT;
}

int sched_due_next(const sched_expr_t *e, const tz_t *zone, int64_t start_s, int64_t after_s,
                   int64_t *next)
{
    if (e->kind == SCHED_RATE)
        return sched_expr_next(e, start_s, after_s, next);
    return next_civil(e, zone, after_s, next);
}

int sched_due_latest(const sched_expr_t *e, const tz_t *zone, int64_t start_s, int64_t after_s,
                     int64_t now_s, int64_t *due)
{
    if (now_s <= after_s)
        return -ENOENT;
    /* Look back an hour, a day, a month, a year, ten and then all the way:
     * the first window holding a due time holds the latest one, and is
     * walked through from its start. */
    static const int64_t back[] = {3600, 86400, 32 * 86400, 366 * 86400, 3660LL * 86400};
    for (size_t i = 0; i <= sizeof back / sizeof back[0]; i++) {
        int64_t from = i < sizeof back / sizeof back[0] ? now_s - back[i] : after_s;
        if (from < after_s)
            from = after_s;
        int64_t t, found = 0;
        int r = sched_due_next(e, zone, start_s, from, &t);
        if (r < 0 || t > now_s) {
            if (from == after_s)
                return -ENOENT;
            continue;
        }
        while (t <= now_s) {
            found = t;
            if (sched_due_next(e, zone, start_s, t, &t) < 0)
                break;
        }
        *due = found;
        return 0;
    }
    return -ENOENT;
}
