/* queue.db's schedules and fire log (see store/schedules.h). The tables
 * are created by queue.db's migrations (STORE__SCHEDULES_MIGRATION).
 * Statements are prepared per call: schedules change and fire at most
 * every few seconds, so keeping them prepared would save nothing. */
#include "store/schedules.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "store/queue_internal.h"
#include "store/sqlite_internal.h"

/* A prepared statement that finalizes itself. */
static void finalize(sqlite3_stmt **st)
{
    sqlite3_finalize(*st);
}
#define cleanup_stmt __attribute__((cleanup(finalize)))

static int prepare(store_queue_t *q, const char *sql, sqlite3_stmt **st, mf_error_t *err)
{
    return store__sqlite_prepare(store__queue_db(q), sql, st, err);
}

int store_schedule_put(store_queue_t *q, const store_schedule_t *s, mf_error_t *err)
{
    cleanup_stmt sqlite3_stmt *st = NULL;
    int r = prepare(q,
                    "INSERT OR REPLACE INTO schedules (name, expression, timezone, function, input,"
                    " enabled, flexible_window_min, start_ms, created_ms, updated_ms)"
                    " VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
                    &st, err);
    if (r < 0)
        return r;
    int ok = sqlite3_bind_text(st, 1, s->name, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_text(st, 2, s->expression, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_text(st, 3, s->timezone, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_text(st, 4, s->function, -1, SQLITE_STATIC) == SQLITE_OK &&
             store__bind_text_or_null(st, 5, s->input) == SQLITE_OK &&
             sqlite3_bind_int(st, 6, s->enabled) == SQLITE_OK &&
             sqlite3_bind_int(st, 7, s->flexible_window_min) == SQLITE_OK &&
             sqlite3_bind_int64(st, 8, s->start_ms) == SQLITE_OK &&
             sqlite3_bind_int64(st, 9, s->created_ms) == SQLITE_OK &&
             sqlite3_bind_int64(st, 10, s->updated_ms) == SQLITE_OK;
    return store__step_done(store__queue_db(q), st, ok, "write a schedule", err);
}

int store_schedule_delete(store_queue_t *q, const char *name, mf_error_t *err)
{
    sqlite3 *db = store__queue_db(q);
    static const char *const sql[] = {"DELETE FROM schedule_fires WHERE schedule = ?1",
                                      "DELETE FROM schedules WHERE name = ?1"};
    for (size_t i = 0; i < 2; i++) {
        cleanup_stmt sqlite3_stmt *st = NULL;
        int r = prepare(q, sql[i], &st, err);
        if (r < 0)
            return r;
        r = store__step_done(db, st, sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) == SQLITE_OK,
                             "delete a schedule", err);
        if (r < 0)
            return r;
    }
    if (sqlite3_changes(db) == 0)
        return mf_error_plain(err, ENOENT, "no schedule named %s", name);
    return 0;
}

static void schedules__row(sqlite3_stmt *st, void *item)
{
    store_schedule_t *s = item;
    store__copy_text(s->name, sizeof s->name, st, 0);
    store__copy_text(s->expression, sizeof s->expression, st, 1);
    store__copy_text(s->timezone, sizeof s->timezone, st, 2);
    store__copy_text(s->function, sizeof s->function, st, 3);
    s->input = store__dup_column(st, 4);
    s->enabled = sqlite3_column_int(st, 5) != 0;
    s->flexible_window_min = sqlite3_column_int(st, 6);
    s->start_ms = sqlite3_column_int64(st, 7);
    s->created_ms = sqlite3_column_int64(st, 8);
    s->updated_ms = sqlite3_column_int64(st, 9);
}

int store_schedule_list(store_queue_t *q, store_schedule_t **out, size_t *count, mf_error_t *err)
{
    *out = NULL;
    *count = 0;
    cleanup_stmt sqlite3_stmt *st = NULL;
    int r = prepare(q,
                    "SELECT name, expression, timezone, function, input, enabled,"
                    " flexible_window_min, start_ms, created_ms, updated_ms FROM schedules"
                    " ORDER BY name",
                    &st, err);
    if (r < 0)
        return r;
    void *list = NULL;
    r = store__collect(store__queue_db(q), st, sizeof **out, schedules__row, &list, count,
                       "list schedules", err);
    *out = list;
    if (r < 0) {
        store_schedule_list_free(*out, *count);
        *out = NULL;
        *count = 0;
    }
    return r;
}

void store_schedule_clear(store_schedule_t *s)
{
    if (!s)
        return;
    free(s->input);
    s->input = NULL;
}

void store_schedule_list_free(store_schedule_t *list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        store_schedule_clear(&list[i]);
    free(list);
}

int store_schedule_fire_put(store_queue_t *q, const store_schedule_fire_t *f, mf_error_t *err)
{
    sqlite3 *db = store__queue_db(q);
    /* Only for a schedule that still exists: one deleted while its fire
     * was on the way leaves no row behind (and, through with_event, no
     * event). OR IGNORE: an earlier fire of the due time is told by
     * changes() below rather than by a constraint error. */
    cleanup_stmt sqlite3_stmt *st = NULL;
    int r = prepare(q,
                    "INSERT OR IGNORE INTO schedule_fires (schedule, due_ms, fired_ms, request_id,"
                    " error) SELECT ?1,?2,?3,?4,?5 WHERE EXISTS (SELECT 1 FROM schedules"
                    " WHERE name = ?1)",
                    &st, err);
    if (r < 0)
        return r;
    int ok = sqlite3_bind_text(st, 1, f->schedule, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_int64(st, 2, f->due_ms) == SQLITE_OK &&
             sqlite3_bind_int64(st, 3, f->fired_ms) == SQLITE_OK &&
             store__bind_text_or_null(st, 4, f->request_id[0] ? f->request_id : NULL) ==
                 SQLITE_OK &&
             store__bind_text_or_null(st, 5, f->error) == SQLITE_OK;
    if ((r = store__step_done(db, st, ok, "log a schedule's fire", err)) < 0)
        return r;
    if (sqlite3_changes(db) == 0) {
        cleanup_stmt sqlite3_stmt *ex = NULL;
        if ((r = prepare(q, "SELECT 1 FROM schedules WHERE name = ?1", &ex, err)) < 0)
            return r;
        sqlite3_bind_text(ex, 1, f->schedule, -1, SQLITE_STATIC);
        if (sqlite3_step(ex) == SQLITE_ROW)
            return mf_error_plain(err, EEXIST, "schedule %s fired its due time %lld before",
                                  f->schedule, (long long)f->due_ms);
        return mf_error_plain(err, ENOENT, "no schedule named %s", f->schedule);
    }
    cleanup_stmt sqlite3_stmt *prune = NULL;
    if ((r = prepare(q,
                     "DELETE FROM schedule_fires WHERE schedule = ?1 AND due_ms < (SELECT due_ms"
                     " FROM schedule_fires WHERE schedule = ?1 ORDER BY due_ms DESC LIMIT 1"
                     " OFFSET ?2)",
                     &prune, err)) < 0)
        return r;
    ok = sqlite3_bind_text(prune, 1, f->schedule, -1, SQLITE_STATIC) == SQLITE_OK &&
         sqlite3_bind_int(prune, 2, STORE_SCHEDULE_FIRES_KEPT - 1) == SQLITE_OK;
    return store__step_done(db, prune, ok, "prune a schedule's fire log", err);
}

static void schedules__fire_row(sqlite3_stmt *st, void *item)
{
    store_schedule_fire_t *f = item;
    f->due_ms = sqlite3_column_int64(st, 0);
    f->fired_ms = sqlite3_column_int64(st, 1);
    store__copy_text(f->request_id, sizeof f->request_id, st, 2);
    f->error = store__dup_column(st, 3);
    store__copy_text(f->schedule, sizeof f->schedule, st, 4);
}

int store_schedule_fire_list(store_queue_t *q, const char *name, int limit,
                             store_schedule_fire_t **out, size_t *count, mf_error_t *err)
{
    *out = NULL;
    *count = 0;
    cleanup_stmt sqlite3_stmt *st = NULL;
    int r = prepare(q,
                    "SELECT due_ms, fired_ms, request_id, error, schedule FROM schedule_fires"
                    " WHERE schedule = ?1 ORDER BY due_ms DESC LIMIT ?2",
                    &st, err);
    if (r < 0)
        return r;
    if (sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_bind_int(st, 2, limit) != SQLITE_OK)
        return store__sqlite_fail(store__queue_db(q), err, "list a schedule's fires");
    void *list = NULL;
    r = store__collect(store__queue_db(q), st, sizeof **out, schedules__fire_row, &list, count,
                       "list a schedule's fires", err);
    *out = list;
    if (r < 0) {
        store_schedule_fire_list_free(*out, *count);
        *out = NULL;
        *count = 0;
    }
    return r;
}

void store_schedule_fire_list_free(store_schedule_fire_t *list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(list[i].error);
    free(list);
}
