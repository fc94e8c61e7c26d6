/* queue.db's tables of durable executions (see store/durable.h). */
#include "store/durable.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "store/queue_internal.h"
#include "store/sqlite_internal.h"

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

#define EXEC_COLUMNS                                                                               \
    "id, function, name, status, input, result, error, token, seq, token_seq, in_flight,"          \
    " next_wake_ms, start_ms, end_ms, deadline_ms, retention_days, invocations, failures,"         \
    " last_client_token, last_token_in, last_response, parent_id, parent_op"

static int durable__prepare(store_queue_t *q, const char *sql, sqlite3_stmt **st, mf_error_t *err)
{
    return store__sqlite_prepare(store__queue_db(q), sql, st, err);
}

void store_durable_exec_clear(store_durable_exec_t *e)
{
    if (!e)
        return;
    free(e->input);
    free(e->result);
    free(e->error);
    free(e->last_response);
    memset(e, 0, sizeof *e);
}

void store_durable_exec_list_free(store_durable_exec_t *list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        store_durable_exec_clear(&list[i]);
    free(list);
}

int store_durable_exec_put(store_queue_t *q, const store_durable_exec_t *e, mf_error_t *err)
{
    sqlite3_stmt *st;
    int r = durable__prepare(q,
                             "INSERT OR REPLACE INTO durable_executions (" EXEC_COLUMNS
                             ") VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,"
                             "?17,?18,?19,?20,?21,?22,?23)",
                             &st, err);
    if (r < 0)
        return r;
    int ok = sqlite3_bind_text(st, 1, e->id, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_text(st, 2, e->function, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_text(st, 3, e->name, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_text(st, 4, e->status, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_text(st, 5, e->input ? e->input : "{}", -1, SQLITE_STATIC) == SQLITE_OK &&
             store__bind_text_or_null(st, 6, e->result) == SQLITE_OK &&
             store__bind_text_or_null(st, 7, e->error) == SQLITE_OK &&
             sqlite3_bind_text(st, 8, e->token, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_int64(st, 9, e->seq) == SQLITE_OK &&
             sqlite3_bind_int64(st, 10, e->token_seq) == SQLITE_OK &&
             sqlite3_bind_int(st, 11, e->in_flight) == SQLITE_OK &&
             sqlite3_bind_int64(st, 12, e->next_wake_ms) == SQLITE_OK &&
             sqlite3_bind_int64(st, 13, e->start_ms) == SQLITE_OK &&
             sqlite3_bind_int64(st, 14, e->end_ms) == SQLITE_OK &&
             sqlite3_bind_int64(st, 15, e->deadline_ms) == SQLITE_OK &&
             sqlite3_bind_int(st, 16, e->retention_days) == SQLITE_OK &&
             sqlite3_bind_int(st, 17, e->invocations) == SQLITE_OK &&
             sqlite3_bind_int(st, 18, e->failures) == SQLITE_OK &&
             sqlite3_bind_text(st, 19, e->last_client_token, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_text(st, 20, e->last_token_in, -1, SQLITE_STATIC) == SQLITE_OK &&
             store__bind_text_or_null(st, 21, e->last_response) == SQLITE_OK &&
             sqlite3_bind_text(st, 22, e->parent_id, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_text(st, 23, e->parent_op, -1, SQLITE_STATIC) == SQLITE_OK;
    r = store__step_done(store__queue_db(q), st, ok, "write a durable execution", err);
    sqlite3_finalize(st);
    return r;
}

static void durable__row(sqlite3_stmt *st, void *item)
{
    store_durable_exec_t *e = item;
    store__copy_text(e->id, sizeof e->id, st, 0);
    store__copy_text(e->function, sizeof e->function, st, 1);
    store__copy_text(e->name, sizeof e->name, st, 2);
    store__copy_text(e->status, sizeof e->status, st, 3);
    e->input = store__dup_column(st, 4);
    e->result = store__dup_column(st, 5);
    e->error = store__dup_column(st, 6);
    store__copy_text(e->token, sizeof e->token, st, 7);
    e->seq = sqlite3_column_int64(st, 8);
    e->token_seq = sqlite3_column_int64(st, 9);
    e->in_flight = sqlite3_column_int(st, 10) != 0;
    e->next_wake_ms = sqlite3_column_int64(st, 11);
    e->start_ms = sqlite3_column_int64(st, 12);
    e->end_ms = sqlite3_column_int64(st, 13);
    e->deadline_ms = sqlite3_column_int64(st, 14);
    e->retention_days = sqlite3_column_int(st, 15);
    e->invocations = sqlite3_column_int(st, 16);
    e->failures = sqlite3_column_int(st, 17);
    store__copy_text(e->last_client_token, sizeof e->last_client_token, st, 18);
    store__copy_text(e->last_token_in, sizeof e->last_token_in, st, 19);
    e->last_response = store__dup_column(st, 20);
    store__copy_text(e->parent_id, sizeof e->parent_id, st, 21);
    store__copy_text(e->parent_op, sizeof e->parent_op, st, 22);
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
    r = store__collect(store__queue_db(q), st, sizeof **out, durable__row, &list, count,
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
    if (n == 0) {
        free(list);
        return mf_error_plain(err, ENOENT, "no durable execution %s", what);
    }
    *out = list[0];
    for (size_t i = 1; i < n; i++)
        store_durable_exec_clear(&list[i]);
    free(list);
    return 0;
}

int store_durable_exec_get(store_queue_t *q, const char *id, store_durable_exec_t *out,
                           mf_error_t *err)
{
    sqlite3_stmt *st;
    int r = durable__prepare(q, "SELECT " EXEC_COLUMNS " FROM durable_executions WHERE id = ?1",
                             &st, err);
    if (r < 0)
        return r;
    int ok = sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC) == SQLITE_OK;
    char what[64];
    snprintf(what, sizeof what, "`%.40s`", id);
    return durable__one(q, st, ok, out, what, err);
}

int store_durable_exec_by_name(store_queue_t *q, const char *function, const char *name,
                               store_durable_exec_t *out, mf_error_t *err)
{
    sqlite3_stmt *st;
    int r = durable__prepare(q,
                             "SELECT " EXEC_COLUMNS " FROM durable_executions"
                             " WHERE function = ?1 AND name = ?2",
                             &st, err);
    if (r < 0)
        return r;
    int ok = sqlite3_bind_text(st, 1, function, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC) == SQLITE_OK;
    char what[160];
    snprintf(what, sizeof what, "named `%.64s`", name);
    return durable__one(q, st, ok, out, what, err);
}

int store_durable_exec_list(store_queue_t *q, const char *function, const char *status, int limit,
                            store_durable_exec_t **out, size_t *count, mf_error_t *err)
{
    sqlite3_stmt *st;
    int r = durable__prepare(q,
                             "SELECT " EXEC_COLUMNS " FROM durable_executions"
                             " WHERE (?1 IS NULL OR function = ?1) AND (?2 IS NULL OR status = ?2)"
                             " ORDER BY start_ms DESC, id DESC LIMIT ?3",
                             &st, err);
    if (r < 0)
        return r;
    int ok = store__bind_text_or_null(st, 1, function) == SQLITE_OK &&
             store__bind_text_or_null(st, 2, status) == SQLITE_OK &&
             sqlite3_bind_int(st, 3, limit) == SQLITE_OK;
    return durable__collect(q, st, ok, out, count, err);
}

int store_durable_exec_running(store_queue_t *q, store_durable_exec_t **out, size_t *count,
                               mf_error_t *err)
{
    return store_durable_exec_list(q, NULL, "RUNNING", -1, out, count, err);
}

int store_durable_ops_get(store_queue_t *q, const char *exec_id, json_t **out, mf_error_t *err)
{
    *out = NULL;
    sqlite3_stmt *st;
    int r = durable__prepare(q, "SELECT op FROM durable_operations WHERE exec_id = ?1 ORDER BY ord",
                             &st, err);
    if (r < 0)
        return r;
    if (sqlite3_bind_text(st, 1, exec_id, -1, SQLITE_STATIC) != SQLITE_OK) {
        r = store__sqlite_fail(store__queue_db(q), err, "read an operation log");
        sqlite3_finalize(st);
        return r;
    }
    json_t *arr = json_array();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(st, 0);
        json_t *op = text ? json_loads(text, 0, NULL) : NULL;
        if (!json_is_object(op)) {
            json_decref(op);
            op = json_object(); /* kept in place: positions are the order */
        }
        json_array_append_new(arr, op);
    }
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

int store_durable_op_put(store_queue_t *q, const char *exec_id, int64_t ord, const json_t *op,
                         mf_error_t *err)
{
    sqlite3_stmt *st;
    int r = durable__prepare(q,
                             "INSERT OR REPLACE INTO durable_operations (exec_id, ord, op_id, type,"
                             " status, callback_id, op) VALUES (?1,?2,?3,?4,?5,?6,?7)",
                             &st, err);
    if (r < 0)
        return r;
    char *text = json_dumps(op, JSON_COMPACT | JSON_REAL_PRECISION(15));
    const json_t *cb = json_object_get(json_object_get(op, "CallbackDetails"), "CallbackId");
    int ok = sqlite3_bind_text(st, 1, exec_id, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_int64(st, 2, ord) == SQLITE_OK &&
             sqlite3_bind_text(st, 3, json_string_value(json_object_get(op, "Id")) ?: "", -1,
                               SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_text(st, 4, json_string_value(json_object_get(op, "Type")) ?: "", -1,
                               SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_text(st, 5, json_string_value(json_object_get(op, "Status")) ?: "", -1,
                               SQLITE_STATIC) == SQLITE_OK &&
             store__bind_text_or_null(st, 6, json_string_value(cb)) == SQLITE_OK &&
             sqlite3_bind_text(st, 7, text ? text : "{}", -1, SQLITE_STATIC) == SQLITE_OK;
    r = store__step_done(store__queue_db(q), st, ok, "write an operation", err);
    sqlite3_finalize(st);
    free(text);
    return r;
}

int store_durable_callback_find(store_queue_t *q, const char *callback_id, char exec_id[37],
                                mf_error_t *err)
{
    sqlite3_stmt *st;
    int r = durable__prepare(q, "SELECT exec_id FROM durable_operations WHERE callback_id = ?1",
                             &st, err);
    if (r < 0)
        return r;
    sqlite3_bind_text(st, 1, callback_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        store__copy_text(exec_id, 37, st, 0);
        r = 0;
    } else if (rc == SQLITE_DONE) {
        r = mf_error_plain(err, ENOENT, "no callback `%.64s`", callback_id);
    } else {
        r = store__sqlite_fail(store__queue_db(q), err, "find a callback");
    }
    sqlite3_finalize(st);
    return r;
}

int store_durable_counts(store_queue_t *q, int64_t counts[5], int64_t *timers, int64_t *callbacks,
                         mf_error_t *err)
{
    static const char *const names[5] = {"RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"};
    memset(counts, 0, 5 * sizeof counts[0]);
    *timers = *callbacks = 0;
    sqlite3_stmt *st;
    int r = durable__prepare(q, "SELECT status, count(*) FROM durable_executions GROUP BY status",
                             &st, err);
    if (r < 0)
        return r;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *s = (const char *)sqlite3_column_text(st, 0);
        for (int i = 0; i < 5; i++)
            if (s && !strcmp(s, names[i]))
                counts[i] = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    r = durable__prepare(q,
                         "SELECT o.type, count(*) FROM durable_operations o JOIN durable_executions"
                         " e ON e.id = o.exec_id WHERE e.status = 'RUNNING' AND"
                         " ((o.type IN ('WAIT', 'CALLBACK') AND o.status = 'STARTED') OR"
                         " (o.type = 'STEP' AND o.status = 'PENDING')) GROUP BY o.type",
                         &st, err);
    if (r < 0)
        return r;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        if (t && !strcmp(t, "CALLBACK"))
            *callbacks += sqlite3_column_int64(st, 1);
        else
            *timers += sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return 0;
}

int store_durable_prune(store_queue_t *q, int64_t now_ms, int64_t *n, mf_error_t *err)
{
    *n = 0;
    int r = store__sqlite_exec(store__queue_db(q),
                               "CREATE TEMP TABLE IF NOT EXISTS durable_gone (id TEXT PRIMARY KEY);"
                               "DELETE FROM durable_gone;",
                               err);
    if (r < 0)
        return r;
    sqlite3_stmt *st;
    r = durable__prepare(q,
                         "INSERT INTO durable_gone SELECT id FROM durable_executions"
                         " WHERE status <> 'RUNNING' AND end_ms + retention_days * 86400000 < ?1"
                         " LIMIT 1000",
                         &st, err);
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

int store_durable_forget_function(store_queue_t *q, const char *function, mf_error_t *err)
{
    int r = store__run_keyed(store__queue_db(q),
                             "DELETE FROM durable_operations WHERE exec_id IN"
                             " (SELECT id FROM durable_executions WHERE function = ?1)",
                             function, "forget a function's operations", err);
    if (r < 0 && r != -ENOENT)
        return r;
    r = store__run_keyed(store__queue_db(q), "DELETE FROM durable_executions WHERE function = ?1",
                         function, "forget a function's executions", err);
    return r == -ENOENT ? 0 : r;
}
