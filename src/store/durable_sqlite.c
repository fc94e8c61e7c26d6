/* queue.db's tables of durable executions on SQLite (store/durable.h's
 * calls, in queue_backend.h's table). */
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

const char store__durable_migration[] =
    "CREATE TABLE durable_executions ("
    "  id                TEXT PRIMARY KEY,"
    "  function          TEXT NOT NULL,"
    "  name              TEXT NOT NULL,"
    "  status            TEXT NOT NULL,"
    "  input             TEXT NOT NULL,"
    "  result            TEXT,"
    "  error             TEXT,"
    "  token             TEXT NOT NULL,"
    "  seq               INTEGER NOT NULL,"
    "  token_seq         INTEGER NOT NULL,"
    "  in_flight         INTEGER NOT NULL,"
    "  next_wake_ms      INTEGER NOT NULL,"
    "  start_ms          INTEGER NOT NULL,"
    "  end_ms            INTEGER NOT NULL,"
    "  deadline_ms       INTEGER NOT NULL,"
    "  retention_days    INTEGER NOT NULL,"
    "  invocations       INTEGER NOT NULL,"
    "  failures          INTEGER NOT NULL,"
    "  last_client_token TEXT NOT NULL,"
    "  last_token_in     TEXT NOT NULL,"
    "  last_response     TEXT,"
    "  parent_id         TEXT NOT NULL,"
    "  parent_op         TEXT NOT NULL,"
    "  UNIQUE (function, name)"
    ") WITHOUT ROWID;"
    "CREATE INDEX durable_executions_status ON durable_executions (status, start_ms);"
    "CREATE TABLE durable_operations ("
    "  exec_id     TEXT NOT NULL,"
    "  ord         INTEGER NOT NULL,"
    "  op_id       TEXT NOT NULL,"
    "  type        TEXT NOT NULL,"
    "  status      TEXT NOT NULL,"
    "  callback_id TEXT,"
    "  op          TEXT NOT NULL,"
    "  PRIMARY KEY (exec_id, ord)"
    ") WITHOUT ROWID;"
    "CREATE INDEX durable_operations_callback ON durable_operations (callback_id)"
    "  WHERE callback_id IS NOT NULL;";

static int durable__prepare(store_queue_t *q, const char *sql, sqlite3_stmt **st, mf_error_t *err)
{
    return store__sqlite_prepare(store__queue_db(q), sql, st, err);
}

static int durable__exec_put(store_queue_t *q, const store_durable_exec_t *e, mf_error_t *err)
{
    sqlite3_stmt *st;
    int r = durable__prepare(q,
                             "INSERT OR REPLACE INTO durable_executions (" STORE_EXEC_COLUMNS
                             ") VALUES (" STORE_EXEC_VALUES(P) ")",
                             &st, err);
    if (r < 0)
        return r;
    store__binder_t b = store__sqlite_binder(st);
    int ok = store__bind_exec(&b, e) == 0;
    r = store__step_done(store__queue_db(q), st, ok, "write a durable execution", err);
    sqlite3_finalize(st);
    return r;
}

/* Runs st (bound) and collects its rows; finalizes st. */
static int durable__collect(store_queue_t *q, sqlite3_stmt *st, int ok, store_durable_exec_t **out,
                            size_t *count, mf_error_t *err)
{
    *out = NULL;
    *count = 0;
    int r;
    if (!ok) {
        r = store__sqlite_fail(store__queue_db(q), err, "bind a durable execution query");
        sqlite3_finalize(st);
        return r;
    }
    void *list = NULL;
    r = store__sqlite_rows(store__queue_db(q), st, sizeof **out, store__fill_exec, &list, count,
                           "read durable executions", err);
    sqlite3_finalize(st);
    *out = list;
    if (r < 0) {
        store_durable_exec_list_free(*out, *count);
        *out = NULL;
        *count = 0;
    }
    return r;
}

static int durable__one(store_queue_t *q, sqlite3_stmt *st, int ok, store_durable_exec_t *out,
                        const char *what, mf_error_t *err)
{
    store_durable_exec_t *list;
    size_t n;
    int r = durable__collect(q, st, ok, &list, &n, err);
    if (r < 0)
        return r;
    return store__take_one_exec(list, n, out, what, err);
}

static int durable__exec_get(store_queue_t *q, const char *id, store_durable_exec_t *out,
                             mf_error_t *err)
{
    sqlite3_stmt *st;
    int r = durable__prepare(q, STORE_EXEC_GET(P), &st, err);
    if (r < 0)
        return r;
    int ok = sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC) == SQLITE_OK;
    char what[64];
    snprintf(what, sizeof what, "`%.40s`", id);
    return durable__one(q, st, ok, out, what, err);
}

static int durable__exec_by_name(store_queue_t *q, const char *function, const char *name,
                                 store_durable_exec_t *out, mf_error_t *err)
{
    sqlite3_stmt *st;
    int r = durable__prepare(q, STORE_EXEC_BY_NAME(P), &st, err);
    if (r < 0)
        return r;
    int ok = sqlite3_bind_text(st, 1, function, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC) == SQLITE_OK;
    char what[160];
    snprintf(what, sizeof what, "named `%.64s`", name);
    return durable__one(q, st, ok, out, what, err);
}

static int durable__exec_list(store_queue_t *q, const char *function, const char *status,
                              int limit, store_durable_exec_t **out, size_t *count,
                              mf_error_t *err)
{
    sqlite3_stmt *st;
    int r = durable__prepare(q, STORE_EXEC_LIST(P), &st, err);
    if (r < 0)
        return r;
    int ok = store__bind_text_or_null(st, 1, function) == SQLITE_OK &&
             store__bind_text_or_null(st, 2, status) == SQLITE_OK &&
             sqlite3_bind_int(st, 3, limit) == SQLITE_OK;
    return durable__collect(q, st, ok, out, count, err);
}

static int durable__ops_get(store_queue_t *q, const char *exec_id, json_t **out, mf_error_t *err)
{
    sqlite3_stmt *st;
    int r = durable__prepare(q, STORE_OPS_GET(P), &st, err);
    if (r < 0)
        return r;
    if (sqlite3_bind_text(st, 1, exec_id, -1, SQLITE_STATIC) != SQLITE_OK) {
        r = store__sqlite_fail(store__queue_db(q), err, "read an operation log");
        sqlite3_finalize(st);
        return r;
    }
    json_t *arr = json_array();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        store__append_op(arr, (const char *)sqlite3_column_text(st, 0));
    if (rc != SQLITE_DONE) {
        r = store__sqlite_fail(store__queue_db(q), err, "read an operation log");
        json_decref(arr);
        sqlite3_finalize(st);
        return r;
    }
    sqlite3_finalize(st);
    *out = arr;
    return 0;
}

static int durable__op_put(store_queue_t *q, const char *exec_id, int64_t ord, const json_t *op,
                           mf_error_t *err)
{
    sqlite3_stmt *st;
    int r = durable__prepare(q,
                             "INSERT OR REPLACE INTO durable_operations (" STORE_OP_COLUMNS
                             ") VALUES (" STORE_OP_VALUES(P) ")",
                             &st, err);
    if (r < 0)
        return r;
    char *text = store__op_text(op);
    store__binder_t b = store__sqlite_binder(st);
    int ok = store__bind_op(&b, exec_id, ord, op, text) == 0;
    r = store__step_done(store__queue_db(q), st, ok, "write an operation", err);
    sqlite3_finalize(st);
    free(text);
    return r;
}

static int durable__callback_find(store_queue_t *q, const char *callback_id, char exec_id[37],
                                  mf_error_t *err)
{
    sqlite3_stmt *st;
    int r = durable__prepare(q, STORE_CALLBACK_FIND(P), &st, err);
    if (r < 0)
        return r;
    sqlite3_bind_text(st, 1, callback_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        store__copy_text(exec_id, 37, st, 0);
        r = 0;
    } else if (rc == SQLITE_DONE) {
        r = store__no_callback(err, callback_id);
    } else {
        r = store__sqlite_fail(store__queue_db(q), err, "find a callback");
    }
    sqlite3_finalize(st);
    return r;
}

static int durable__counts(store_queue_t *q, int64_t counts[5], int64_t *timers,
                           int64_t *callbacks, mf_error_t *err)
{
    sqlite3_stmt *st;
    int r = durable__prepare(q, STORE_DURABLE_COUNTS, &st, err);
    if (r < 0)
        return r;
    while (sqlite3_step(st) == SQLITE_ROW)
        store__count_status(counts, (const char *)sqlite3_column_text(st, 0),
                            sqlite3_column_int64(st, 1));
    sqlite3_finalize(st);
    r = durable__prepare(q, STORE_DURABLE_WAITING, &st, err);
    if (r < 0)
        return r;
    while (sqlite3_step(st) == SQLITE_ROW)
        store__count_waiting(timers, callbacks, (const char *)sqlite3_column_text(st, 0),
                             sqlite3_column_int64(st, 1));
    sqlite3_finalize(st);
    return 0;
}

static int durable__prune(store_queue_t *q, int64_t now_ms, int64_t *n, mf_error_t *err)
{
    int r = store__sqlite_exec(store__queue_db(q),
                               "CREATE TEMP TABLE IF NOT EXISTS durable_gone (id TEXT PRIMARY KEY);"
                               "DELETE FROM durable_gone;",
                               err);
    if (r < 0)
        return r;
    sqlite3_stmt *st;
    r = durable__prepare(q, "INSERT INTO durable_gone " STORE_DURABLE_EXPIRED(P), &st, err);
    if (r < 0)
        return r;
    int ok = sqlite3_bind_int64(st, 1, now_ms) == SQLITE_OK;
    r = store__step_done(store__queue_db(q), st, ok, "choose expired executions", err);
    sqlite3_finalize(st);
    if (r < 0)
        return r;
    *n = sqlite3_changes64(store__queue_db(q));
    return store__sqlite_exec(store__queue_db(q),
                              "DELETE FROM durable_operations WHERE exec_id IN"
                              " (SELECT id FROM durable_gone);"
                              "DELETE FROM durable_executions WHERE id IN"
                              " (SELECT id FROM durable_gone);",
                              err);
}

static int durable__forget_function(store_queue_t *q, const char *function, mf_error_t *err)
{
    int r = store__run_keyed(store__queue_db(q), STORE_DURABLE_FORGET_OPS(P), function,
                             "forget a function's operations", err);
    if (r < 0 && r != -ENOENT)
        return r;
    r = store__run_keyed(store__queue_db(q), STORE_DURABLE_FORGET_EXECS(P), function,
                         "forget a function's executions", err);
    return r == -ENOENT ? 0 : r;
}

const store__durable_ops_t store__sqlite_durable_ops = {
    .exec_put = durable__exec_put,
    .exec_get = durable__exec_get,
    .exec_by_name = durable__exec_by_name,
    .exec_list = durable__exec_list,
    .ops_get = durable__ops_get,
    .op_put = durable__op_put,
    .callback_find = durable__callback_find,
    .counts = durable__counts,
    .prune = durable__prune,
    .forget_function = durable__forget_function,
};
