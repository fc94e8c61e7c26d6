/* queue.db's schedules and fire log on SQLite (store/schedules.h's calls,
 * in queue_backend.h's table). The tables are created by queue.db's
 * migrations (STORE__SCHEDULES_MIGRATION). Statements are prepared per
 * call: schedules change and fire at most every few seconds, so keeping
 * them prepared would save nothing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "store/queue_backend.h"
#include "store/queue_internal.h"
#include "store/queue_rows.h"
#include "store/sqlite_internal.h"

#define P STORE__SQLITE_P

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

static int schedules__put(store_queue_t *q, const store_schedule_t *s, mf_error_t *err)
{
    cleanup_stmt sqlite3_stmt *st = NULL;
    int r = prepare(q,
                    "INSERT OR REPLACE INTO schedules (" STORE_SCHEDULE_COLUMNS ") VALUES ("
                    STORE_SCHEDULE_VALUES(P) ")",
                    &st, err);
    if (r < 0)
        return r;
    store__binder_t b = store__sqlite_binder(st);
    int ok = store__bind_schedule(&b, s) == 0;
    return store__step_done(store__queue_db(q), st, ok, "write a schedule", err);
}

static int schedules__delete(store_queue_t *q, const char *name, mf_error_t *err)
{
    sqlite3 *db = store__queue_db(q);
    static const char *const sql[] = {STORE_SCHEDULE_DELETE_FIRES(P), STORE_SCHEDULE_DELETE(P)};
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
        return store__no_schedule(err, name);
    return 0;
}

static int schedules__list(store_queue_t *q, store_schedule_t **out, size_t *count,
                           mf_error_t *err)
{
    *out = NULL;
    *count = 0;
    cleanup_stmt sqlite3_stmt *st = NULL;
    int r = prepare(q, STORE_SCHEDULE_LIST, &st, err);
    if (r < 0)
        return r;
    void *list = NULL;
    r = store__sqlite_rows(store__queue_db(q), st, sizeof **out, store__fill_schedule, &list, count,
                           "list schedules", err);
    *out = list;
    if (r < 0) {
        store_schedule_list_free(*out, *count);
        *out = NULL;
        *count = 0;
    }
    return r;
}

static int schedules__fire_put(store_queue_t *q, const store_schedule_fire_t *f, mf_error_t *err)
{
    sqlite3 *db = store__queue_db(q);
    /* OR IGNORE: an earlier fire of the due time is told by changes()
     * below rather than by a constraint error. */
    cleanup_stmt sqlite3_stmt *st = NULL;
    int r = prepare(q,
                    "INSERT OR IGNORE INTO schedule_fires (" STORE_FIRE_INSERT_COLUMNS ")"
                    STORE_FIRE_SELECT(P),
                    &st, err);
    if (r < 0)
        return r;
    store__binder_t b = store__sqlite_binder(st);
    int ok = store__bind_fire(&b, f) == 0;
    if ((r = store__step_done(db, st, ok, "log a schedule's fire", err)) < 0)
        return r;
    if (sqlite3_changes(db) == 0) {
        cleanup_stmt sqlite3_stmt *ex = NULL;
        if ((r = prepare(q, STORE_SCHEDULE_EXISTS(P), &ex, err)) < 0)
            return r;
        sqlite3_bind_text(ex, 1, f->schedule, -1, SQLITE_STATIC);
        return store__fire_refused(err, f, sqlite3_step(ex) == SQLITE_ROW);
    }
    cleanup_stmt sqlite3_stmt *prune = NULL;
    if ((r = prepare(q, STORE_FIRES_PRUNE(P), &prune, err)) < 0)
        return r;
    ok = sqlite3_bind_text(prune, 1, f->schedule, -1, SQLITE_STATIC) == SQLITE_OK &&
         sqlite3_bind_int(prune, 2, STORE_SCHEDULE_FIRES_KEPT - 1) == SQLITE_OK;
    return store__step_done(db, prune, ok, "prune a schedule's fire log", err);
}

static int schedules__fire_list(store_queue_t *q, const char *name, int limit,
                                store_schedule_fire_t **out, size_t *count, mf_error_t *err)
{
    *out = NULL;
    *count = 0;
    cleanup_stmt sqlite3_stmt *st = NULL;
    int r = prepare(q, STORE_FIRE_LIST(P), &st, err);
    if (r < 0)
        return r;
    if (sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_bind_int(st, 2, limit) != SQLITE_OK)
        return store__sqlite_fail(store__queue_db(q), err, "list a schedule's fires");
    void *list = NULL;
    r = store__sqlite_rows(store__queue_db(q), st, sizeof **out, store__fill_fire, &list, count,
                           "list a schedule's fires", err);
    *out = list;
    if (r < 0) {
        store_schedule_fire_list_free(*out, *count);
        *out = NULL;
        *count = 0;
    }
    return r;
}

const store__schedule_ops_t store__sqlite_schedule_ops = {
    .put = schedules__put,
    .del = schedules__delete,
    .list = schedules__list,
    .fire_put = schedules__fire_put,
    .fire_list = schedules__fire_list,
};
