/* Schedules: functions started by the clock, with EventBridge Scheduler's
 * semantics (docs/triggers.md).
 *
 * A schedule is an expression (rate(), cron() or at(), trigger/
 * schedule_expr.h) read on a time zone's clock (trigger/due.h), a
 * function, and the event it gets: the user's input, or EventBridge's
 * "Scheduled Event". Each due time is one event on the durable async queue
 * (invoke/async.h), so retries, dead letters and destinations apply; the
 * event and the due time's row in the fire log are written in one
 * transaction, so a due time fires once across crashes and restarts.
 * Due times missed while the server was down, or while the loop could not
 * keep up, fire once: the latest of them, never a burst. A flexible window
 * of N minutes delays each fire by an offset within it, the same for a
 * given schedule and due time (so a restart does not draw it again).
 *
 * A fire whose function does not exist (deleted after the schedule was
 * made), or whose event is too large, queues nothing: it is logged, kept
 * in the fire log with its error and counted in
 * mayfly_schedule_fires_total{outcome="failed"}, as EventBridge counts a
 * target it could not invoke; the schedule goes on.
 *
 * One libuv timer waits for the earliest fire of all schedules. The
 * schedules' clock is the wall clock, or for tests a clock shifted by an
 * offset, or one that stands still and moves only when told
 * (schedules_clock_set). Everything here runs on the loop thread. */
#ifndef MAYFLY_TRIGGER_SCHEDULES_H
#define MAYFLY_TRIGGER_SCHEDULES_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/error.h"
#include "invoke/async.h"
#include "registry/registry.h"

#define SCHEDULE_NAME_MAX 64
#define SCHEDULE_INPUT_MAX (256 << 10) /* EventBridge's limit on an input */
#define SCHEDULE_WINDOW_MAX_MIN 1440   /* EventBridge's longest flexible window */
#define SCHEDULE_NEXT_FIRES 5          /* how many next times a schedule shows */

typedef struct schedules schedules_t;

typedef struct schedules_config {
    const char *zoneinfo_dir;    /* the zone files (NULL: TZ_DIR_DEFAULT) */
    const char *region;          /* in the ARNs of scheduled events */
    /* The test clocks: with test_clock the clock stands at test_clock_ms
     * and moves only by schedules_clock_set; else clock_offset_ms is
     * added to the wall clock (0 for the real one). */
    bool test_clock;
    int64_t test_clock_ms;
    int64_t clock_offset_ms;
} schedules_config_t;

/* Loads the schedules kept in queue.db (through async's connections) and
 * fires, once each, those that came due while the server was down. */
int schedules_open(uv_loop_t *loop, async_t *async, registry_t *registry,
                   const schedules_config_t *cfg, schedules_t **out, mf_error_t *err);
/* No more fires (the server is stopping); what is on its way is written. */
void schedules_stop(schedules_t *s);
/* After async_close (the fires' callbacks have run): frees everything. */
void schedules_close(schedules_t *s);

/* True when name is a qualified name (core/tenant.h) whose name within
 * its tenant matches [A-Za-z0-9_.-]{1,64} (EventBridge's names). */
bool schedules_valid_name(const char *name);

/* r is 0, or the failure; created tells a new schedule from a replaced one. */
typedef void (*schedules_done_cb)(void *ud, int r, bool created, const mf_error_t *err);

/* Creates or replaces the schedule name from a JSON body {"expression",
 * "timezone" ("UTC"), "function", "input" (any JSON; null or absent: the
 * scheduled event), "enabled" (true), "flexible_window_min" (0)}. Checks
 * it at once: -EINVAL naming the field that is wrong (the function must
 * exist); else cb once it is on disk. A rate() counts from now when the
 * schedule is new, or its expression or zone changed, or it is enabled
 * again (times missed while it was disabled do not fire). */
int schedules_put(schedules_t *s, const char *name, const void *body, size_t len,
                  schedules_done_cb cb, void *ud, mf_error_t *err);
/* Deletes it with its fire log: -ENOENT at once, or cb once on disk. */
int schedules_delete(schedules_t *s, const char *name, schedules_done_cb cb, void *ud,
                     mf_error_t *err);

/* The schedule as the API shows it (a new reference): its settings, the
 * next SCHEDULE_NEXT_FIRES due times as RFC 3339 on its zone's clock
 * ("next_fires") and its last fire. */
int schedules_get_json(schedules_t *s, const char *name, json_t **out, mf_error_t *err);
/* Its logged fires as the API shows them ("fires", a new array), newest
 * first, read on q: a connection of the async queue's, used on the thread
 * that owns it (a job of async_write's, so that the loop waits for no
 * database). */
int schedules_fires_json(schedules_t *s, store_queue_t *q, const char *name, json_t **out,
                         mf_error_t *err);
/* {"schedules": [...]}, by name, without history. */
json_t *schedules_list_json(schedules_t *s, const char *tenant);

/* Calls cb(ud) once every fire and change handed to the queue's writer so
 * far is written, and its outcome is in what the calls above show. */
void schedules_sync(schedules_t *s, void (*cb)(void *ud), void *ud);

/* Takes the schedules as a shared store holds them now (another server
 * changed one; read off the loop with the queue's writer, after every
 * change this server handed it, so nothing of this server's own is
 * older than what was read) in place of those in memory: one whose times
 * differ takes the stored settings and is planned again, one not in list
 * goes. last[i] (may be NULL) is list[i]'s latest logged fire, for one new
 * here ("" schedule: none). The inputs are taken over. On the loop. */
struct store_schedule;
struct store_schedule_fire;
void schedules_replace(schedules_t *s, struct store_schedule *list, size_t n,
                       const struct store_schedule_fire *last);

/* The schedules' clock, in milliseconds since the epoch. */
int64_t schedules_now_ms(schedules_t *s);
/* Whether the clock is a test clock that stands still. */
bool schedules_test_clock(schedules_t *s);
/* Moves a standing test clock to now_ms (never back: -EINVAL) and fires
 * what came due: -EPERM when the clock is not a test clock. */
int schedules_clock_set(schedules_t *s, int64_t now_ms, mf_error_t *err);

#endif
