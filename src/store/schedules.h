/* The durable state of schedules, in the async queue's database
 * (queue.db, or the PostgreSQL database; store/queue.h): each schedule's
 * settings, and its fire log, one row per due time that was fired. A due
 * time's row and the event it queued are written in one transaction
 * (invoke/async.h's with_event), and the row is unique per schedule and
 * due time, so a due time is fired once, across restarts (and, on
 * PostgreSQL, across the nodes that share the database).
 *
 * Calls take a queue connection (store/queue.h), used from one thread
 * at a time: the loop's for reading, the queue writer's for writing.
 * They return 0 or a negative errno and fill *err; -ENOENT when the
 * schedule does not exist. */
#ifndef MAYFLY_STORE_SCHEDULES_H
#define MAYFLY_STORE_SCHEDULES_H

#include "core/tenant.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "store/queue.h"

/* How many fires of a schedule the log keeps (the latest). */
#define STORE_SCHEDULE_FIRES_KEPT 20

typedef struct store_schedule {
    char name[TENANT_QNAME_MAX + 1];
    char expression[257];
    char timezone[129];
    char function[TENANT_QNAME_MAX + 1];
    char *input;              /* JSON text, owned; NULL: none */
    bool enabled;
    int flexible_window_min;
    int64_t start_ms;         /* where a rate() counts from */
    int64_t created_ms, updated_ms;
    /* The tenant id its fires' calls run for (tenant isolation), or "". */
    char tenant_id[STORE_TENANT_ID_MAX + 1];
} store_schedule_t;

typedef struct store_schedule_fire {
    char schedule[TENANT_QNAME_MAX + 1];
    int64_t due_ms;           /* the due time it was for */
    int64_t fired_ms;         /* when it was written */
    char request_id[37];      /* the event it queued, or "" */
    char *error;              /* why it queued none, owned; NULL: it did */
} store_schedule_fire_t;

/* Creates or replaces s. */
int store_schedule_put(store_queue_t *q, const store_schedule_t *s, mf_error_t *err);
/* Deletes the schedule and its fire log. */
int store_schedule_delete(store_queue_t *q, const char *name, mf_error_t *err);
/* Every schedule, by name. */
int store_schedule_list(store_queue_t *q, store_schedule_t **out, size_t *count, mf_error_t *err);
void store_schedule_clear(store_schedule_t *s);
void store_schedule_list_free(store_schedule_t *list, size_t count);

/* Logs a fire and forgets all but the latest STORE_SCHEDULE_FIRES_KEPT of
 * the schedule's: -EEXIST when its due time was fired before, -ENOENT
 * when the schedule is gone (deleted while the fire was on its way). */
int store_schedule_fire_put(store_queue_t *q, const store_schedule_fire_t *f, mf_error_t *err);
/* The schedule's logged fires, newest first, at most limit. */
int store_schedule_fire_list(store_queue_t *q, const char *name, int limit,
                             store_schedule_fire_t **out, size_t *count, mf_error_t *err);
void store_schedule_fire_list_free(store_schedule_fire_t *list, size_t count);

#endif
