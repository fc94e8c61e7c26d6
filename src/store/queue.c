/* queue.db: the async queue's tables and statements (see store/queue.h). */
#include "store/queue.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cleanup.h"
#include "core/fs.h"
#include "core/xalloc.h"
#include "store/sqlite_internal.h"
#include "store/queue_internal.h"

static const char *const queue__migrations[] = {
    /* 1: events, attempts, dead letters, idempotency keys. */
    "CREATE TABLE events ("
    /* AUTOINCREMENT: a number is never given twice, so one the loop still
     * holds for a deleted event cannot come to mean another event. */
    "  seq         INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  request_id  TEXT NOT NULL UNIQUE,"
    "  function    TEXT NOT NULL,"
    "  event       BLOB NOT NULL,"
    "  enqueued_ms INTEGER NOT NULL,"
    "  next_ms     INTEGER NOT NULL,"
    "  attempts    INTEGER NOT NULL,"
    "  fn_errors   INTEGER NOT NULL,"
    "  running     INTEGER NOT NULL"
    ");"
    "CREATE INDEX events_function ON events (function);"
    "CREATE TABLE attempts ("
    "  request_id    TEXT NOT NULL,"
    "  attempt       INTEGER NOT NULL,"
    "  start_ms      INTEGER NOT NULL,"
    "  duration_ms   REAL NOT NULL,"
    "  status        TEXT NOT NULL,"
    "  error_type    TEXT,"
    "  error_message TEXT,"
    "  PRIMARY KEY (request_id, attempt)"
    ") WITHOUT ROWID;"
    "CREATE TABLE dead_letters ("
    "  id            INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  function      TEXT NOT NULL,"
    "  request_id    TEXT NOT NULL,"
    "  attempts      INTEGER NOT NULL,"
    "  condition     TEXT NOT NULL,"
    "  error_type    TEXT,"
    "  error_message TEXT,"
    "  event         BLOB NOT NULL,"
    "  time_ms       INTEGER NOT NULL"
    ");"
    "CREATE INDEX dead_letters_function ON dead_letters (function, id);"
    "CREATE TABLE idempotency_keys ("
    "  function   TEXT NOT NULL,"
    "  key        TEXT NOT NULL,"
    "  request_id TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (function, key)"
    ") WITHOUT ROWID;"
    "CREATE INDEX idempotency_keys_created ON idempotency_keys (created_ms);",

    /* 2: the record an event replays (NULL: not a replay). */
    "ALTER TABLE events ADD COLUMN replay_of TEXT;",

    /* 3: the W3C traceparent the event was accepted with (NULL: none). */
    "ALTER TABLE events ADD COLUMN traceparent TEXT;",

    /* 4: the call whose function queued the event from inside (NULL: none). */
    "ALTER TABLE events ADD COLUMN caller_request_id TEXT;"
    "ALTER TABLE events ADD COLUMN call_depth INTEGER NOT NULL DEFAULT 0;",

    /* 5: the traceparent a dead letter's event was accepted with. */
    "ALTER TABLE dead_letters ADD COLUMN traceparent TEXT;",

    /* 6: why the event was queued (store_qevent_t.trigger; NULL: invoke). */
    "ALTER TABLE events ADD COLUMN trigger TEXT;"
    "ALTER TABLE dead_letters ADD COLUMN trigger TEXT;",

    /* 7: schedules and their fire log (store/schedules.h). */
    STORE__SCHEDULES_MIGRATION,

    /* 8: topics, their subscriptions and published messages (store/topics.c). */
    store__topics_migration,

    /* 9: durable executions and their operation logs (store/durable.c). */
    store__durable_migration,
};

enum {
    Q_EV_INSERT,
    Q_EV_UPDATE,
    Q_EV_DELETE,
    Q_EV_BODY,
    Q_EV_LIST,
    Q_AT_PUT,
    Q_AT_LIST,
    Q_DL_PUT,
    Q_DL_PUT_FROM_EVENT,
    Q_DL_GET,
    Q_DL_DELETE,
    Q_DL_LIST,
    Q_DL_COUNTS,
    Q_IDEM_PUT,
    Q_IDEM_LIST,
    Q_IDEM_PRUNE,
    Q_FORGET_EVENTS,
    Q_FORGET_DL,
    Q_FORGET_IDEM,
    Q_BEGIN,
    Q_COMMIT,
    Q_SAVEPOINT,
    Q_RELEASE,
    Q_ROLLBACK_TO,
    Q_COUNT
};

#define DL_COLUMNS                                                                                 \
    "id, function, request_id, attempts, condition, error_type, error_message, event, time_ms,"    \
    " traceparent, trigger"

static const char *const queue__sql[Q_COUNT] = {
    [Q_EV_INSERT] = "INSERT INTO events (request_id, function, event, enqueued_ms, next_ms,"
                    " attempts, fn_errors, running, replay_of, traceparent, caller_request_id,"
                    " call_depth, trigger) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)",
    [Q_EV_UPDATE] = "UPDATE events SET next_ms = ?2, attempts = ?3, fn_errors = ?4, running = ?5"
                    " WHERE seq = ?1",
    [Q_EV_DELETE] = "DELETE FROM events WHERE seq = ?1",
    [Q_EV_BODY] = "SELECT event FROM events WHERE seq = ?1",
    [Q_EV_LIST] = "SELECT seq, request_id, function, enqueued_ms, next_ms, attempts, fn_errors,"
                  " running, replay_of, traceparent, caller_request_id, call_depth, trigger"
                  " FROM events"
                  " ORDER BY seq",
    [Q_AT_PUT] = "INSERT OR REPLACE INTO attempts (request_id, attempt, start_ms, duration_ms,"
                 " status, error_type, error_message) VALUES (?1,?2,?3,?4,?5,?6,?7)",
    [Q_AT_LIST] = "SELECT request_id, attempt, start_ms, duration_ms, status, error_type,"
                  " error_message FROM attempts WHERE request_id = ?1 ORDER BY attempt",
    [Q_DL_PUT] = "INSERT INTO dead_letters (function, request_id, attempts, condition, error_type,"
                 " error_message, event, time_ms, traceparent, trigger)"
                 " VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
    [Q_DL_PUT_FROM_EVENT] = "INSERT INTO dead_letters (function, request_id, attempts, condition,"
                            " error_type, error_message, event, time_ms, traceparent, trigger)"
                            " SELECT ?1,?2,?3,?4,?5,?6,event,?8,traceparent,trigger FROM events"
                            " WHERE seq = ?7",
    [Q_DL_GET] = "SELECT " DL_COLUMNS " FROM dead_letters WHERE function = ?1 AND id = ?2",
    [Q_DL_DELETE] = "DELETE FROM dead_letters WHERE id = ?1",
    [Q_DL_LIST] = "SELECT " DL_COLUMNS " FROM dead_letters WHERE function = ?1"
                  " ORDER BY id DESC LIMIT ?2",
    [Q_DL_COUNTS] = "SELECT function, count(*) FROM dead_letters GROUP BY function",
    [Q_IDEM_PUT] = "INSERT OR REPLACE INTO idempotency_keys (function, key, request_id,"
                   " created_ms) VALUES (?1,?2,?3,?4)",
    [Q_IDEM_LIST] = "SELECT function, key, request_id, created_ms FROM idempotency_keys"
                    " WHERE created_ms >= ?1",
    [Q_IDEM_PRUNE] = "DELETE FROM idempotency_keys WHERE created_ms < ?1",
    [Q_FORGET_EVENTS] = "DELETE FROM events WHERE function = ?1",
    [Q_FORGET_DL] = "DELETE FROM dead_letters WHERE function = ?1",
    [Q_FORGET_IDEM] = "DELETE FROM idempotency_keys WHERE function = ?1",
    /* Prepared too: the writer runs them for every job of every batch. */
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_SAVEPOINT] = "SAVEPOINT job",
    [Q_RELEASE] = "RELEASE job",
    [Q_ROLLBACK_TO] = "ROLLBACK TO job",
};

struct store_queue {
    sqlite3 *db;
    sqlite3_stmt *st[Q_COUNT];
    bool durable; /* the open transaction's */
    /* Statements of the other tables in queue.db, prepared on first use
     * (store__queue_stmt). */
    sqlite3_stmt *more[STORE_QUEUE_MORE_STMTS];
};

int store_queue_open(const char *data_dir, store_queue_t **out, mf_error_t *err)
{
    cleanup_free char *path = xasprintf("%s/queue.db", data_dir);
    store_queue_t *q = xcalloc(1, sizeof *q);
    q->durable = true; /* store__sqlite_open leaves it at FULL */
    int version = 0;
    int r = store__sqlite_open(path, &q->db, err);
    if (r == 0)
        r = store__sqlite_migrate(q->db, queue__migrations,
                                  (int)(sizeof queue__migrations / sizeof queue__migrations[0]),
                                  &version, err);
    for (int i = 0; i < Q_COUNT && r == 0; i++)
        r = store__sqlite_prepare(q->db, queue__sql[i], &q->st[i], err);
    if (r < 0) {
        mf_error_wrap(err, "queue `%s`", path);
        store_queue_close(q);
        return r;
    }
    *out = q;
    return 0;
}

void store_queue_close(store_queue_t *q)
{
    if (!q)
        return;
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(q->st[i]);
    for (int i = 0; i < STORE_QUEUE_MORE_STMTS; i++)
        sqlite3_finalize(q->more[i]);
    if (q->db)
        sqlite3_close(q->db);
    free(q);
}

sqlite3 *store__queue_db(store_queue_t *q)
{
    return q->db;
}

int store__queue_stmt(store_queue_t *q, int slot, const char *sql, sqlite3_stmt **out,
                      mf_error_t *err)
{
    if (!q->more[slot]) {
        int r = store__sqlite_prepare(q->db, sql, &q->more[slot], err);
        if (r < 0)
            return r;
    }
    *out = q->more[slot];
    return 0;
}

/* ---- transactions ------------------------------------------------------- */

int store_queue_begin(store_queue_t *q, bool durable, mf_error_t *err)
{
    return store__txn_begin(q->db, &q->durable, durable, q->st[Q_BEGIN], err);
}

int store_queue_commit(store_queue_t *q, mf_error_t *err)
{
    return store__txn_commit(q->db, q->st[Q_COMMIT], err);
}

void store_queue_rollback(store_queue_t *q)
{
    store__txn_rollback(q->db);
}

int store_queue_savepoint(store_queue_t *q, mf_error_t *err)
{
    return store__step_done(q->db, q->st[Q_SAVEPOINT], 1, "open a savepoint", err);
}

void store_queue_release(store_queue_t *q, bool keep)
{
    store__txn_release(q->db, q->st[Q_ROLLBACK_TO], q->st[Q_RELEASE], keep);
}

/* The writer's view of a queue connection. */
static int queue__w_begin(void *db, bool durable, mf_error_t *err)
{
    return store_queue_begin(db, durable, err);
}

static int queue__w_savepoint(void *db, mf_error_t *err)
{
    return store_queue_savepoint(db, err);
}

static void queue__w_release(void *db, bool keep)
{
    store_queue_release(db, keep);
}

static int queue__w_commit(void *db, mf_error_t *err)
{
    return store_queue_commit(db, err);
}

static void queue__w_close(void *db)
{
    store_queue_close(db);
}

int store_queue_writer_db(const char *data_dir, store_writer_db_t *out, mf_error_t *err)
{
    store_queue_t *q;
    int r = store_queue_open(data_dir, &q, err);
    if (r < 0)
        return r;
    *out = (store_writer_db_t){.db = q,
                               .begin = queue__w_begin,
                               .savepoint = queue__w_savepoint,
                               .release = queue__w_release,
                               .commit = queue__w_commit,
                               .close = queue__w_close};
    return 0;
}

/* ---- statements --------------------------------------------------------- */

int store_qevent_insert(store_queue_t *q, store_qevent_t *ev, mf_error_t *err)
{
    sqlite3_stmt *st = q->st[Q_EV_INSERT];
    int ok =
        sqlite3_bind_text(st, 1, ev->request_id, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_bind_text(st, 2, ev->function, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_bind_blob64(st, 3, ev->event ? ev->event : "", ev->event_len, SQLITE_STATIC) ==
            SQLITE_OK &&
        sqlite3_bind_int64(st, 4, ev->enqueued_ms) == SQLITE_OK &&
        sqlite3_bind_int64(st, 5, ev->next_ms) == SQLITE_OK &&
        sqlite3_bind_int(st, 6, ev->attempts) == SQLITE_OK &&
        sqlite3_bind_int(st, 7, ev->fn_errors) == SQLITE_OK &&
        sqlite3_bind_int(st, 8, ev->running) == SQLITE_OK &&
        store__bind_text_or_null(st, 9, ev->replay_of[0] ? ev->replay_of : NULL) == SQLITE_OK &&
        store__bind_text_or_null(st, 10, ev->traceparent[0] ? ev->traceparent : NULL) ==
            SQLITE_OK &&
        store__bind_text_or_null(st, 11, ev->caller_request_id[0] ? ev->caller_request_id : NULL) ==
            SQLITE_OK &&
        sqlite3_bind_int(st, 12, ev->call_depth) == SQLITE_OK &&
        store__bind_text_or_null(st, 13, ev->trigger[0] ? ev->trigger : NULL) == SQLITE_OK;
    int r = store__step_done(q->db, st, ok, "queue an event", err);
    if (r == 0)
        ev->seq = sqlite3_last_insert_rowid(q->db);
    return r;
}

int store_qevent_update(store_queue_t *q, const store_qevent_t *ev, mf_error_t *err)
{
    sqlite3_stmt *st = q->st[Q_EV_UPDATE];
    int ok = sqlite3_bind_int64(st, 1, ev->seq) == SQLITE_OK &&
             sqlite3_bind_int64(st, 2, ev->next_ms) == SQLITE_OK &&
             sqlite3_bind_int(st, 3, ev->attempts) == SQLITE_OK &&
             sqlite3_bind_int(st, 4, ev->fn_errors) == SQLITE_OK &&
             sqlite3_bind_int(st, 5, ev->running) == SQLITE_OK;
    return store__step_done(q->db, st, ok, "update a queued event", err);
}

static int queue__delete_by_id(store_queue_t *q, int which, int64_t id, const char *what,
                               mf_error_t *err)
{
    sqlite3_stmt *st = q->st[which];
    return store__step_done(q->db, st, sqlite3_bind_int64(st, 1, id) == SQLITE_OK, what, err);
}

int store_qevent_delete(store_queue_t *q, int64_t seq, mf_error_t *err)
{
    return queue__delete_by_id(q, Q_EV_DELETE, seq, "delete a queued event", err);
}

int store_qevent_body(store_queue_t *q, int64_t seq, buf_t *out, mf_error_t *err)
{
    sqlite3_stmt *st = q->st[Q_EV_BODY];
    int r = 0;
    if (sqlite3_bind_int64(st, 1, seq) != SQLITE_OK) {
        r = store__sqlite_fail(q->db, err, "read a queued event");
    } else {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            buf_reset(out);
            buf_add(out, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
        } else if (rc == SQLITE_DONE) {
            r = mf_error_plain(err, ENOENT, "queued event %lld is gone", (long long)seq);
        } else {
            r = store__sqlite_fail(q->db, err, "read a queued event");
        }
    }
    store__stmt_done(st);
    return r;
}

/* Steps st to its end, calling row(st, item) on a new zeroed item of size
 * size for each row; the items form a malloc'd array. */

static void queue__row_event(sqlite3_stmt *st, void *item)
{
    store_qevent_t *ev = item;
    ev->seq = sqlite3_column_int64(st, 0);
    store__copy_text(ev->request_id, sizeof ev->request_id, st, 1);
    store__copy_text(ev->function, sizeof ev->function, st, 2);
    ev->enqueued_ms = sqlite3_column_int64(st, 3);
    ev->next_ms = sqlite3_column_int64(st, 4);
    ev->attempts = sqlite3_column_int(st, 5);
    ev->fn_errors = sqlite3_column_int(st, 6);
    ev->running = sqlite3_column_int(st, 7);
    store__copy_text(ev->replay_of, sizeof ev->replay_of, st, 8);
    store__copy_text(ev->traceparent, sizeof ev->traceparent, st, 9);
    store__copy_text(ev->caller_request_id, sizeof ev->caller_request_id, st, 10);
    ev->call_depth = sqlite3_column_int(st, 11);
    store__copy_text(ev->trigger, sizeof ev->trigger, st, 12);
}

int store_qevent_list(store_queue_t *q, store_qevent_t **out, size_t *count, mf_error_t *err)
{
    void *list;
    int r = store__collect(q->db, q->st[Q_EV_LIST], sizeof **out, queue__row_event, &list, count,
                           "list queued events", err);
    *out = list;
    if (r < 0) {
        store_qevent_list_free(*out, *count);
        *out = NULL;
        *count = 0;
    }
    return r;
}

void store_qevent_list_free(store_qevent_t *list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(list[i].event);
    free(list);
}

int store_attempt_put(store_queue_t *q, const store_attempt_t *a, mf_error_t *err)
{
    sqlite3_stmt *st = q->st[Q_AT_PUT];
    int ok = sqlite3_bind_text(st, 1, a->request_id, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_int(st, 2, a->attempt) == SQLITE_OK &&
             sqlite3_bind_int64(st, 3, a->start_ms) == SQLITE_OK &&
             sqlite3_bind_double(st, 4, a->duration_ms) == SQLITE_OK &&
             sqlite3_bind_text(st, 5, a->status, -1, SQLITE_STATIC) == SQLITE_OK &&
             store__bind_text_or_null(st, 6, a->error_type) == SQLITE_OK &&
             store__bind_text_or_null(st, 7, a->error_message) == SQLITE_OK;
    return store__step_done(q->db, st, ok, "write an attempt", err);
}

static void queue__row_attempt(sqlite3_stmt *st, void *item)
{
    store_attempt_t *a = item;
    store__copy_text(a->request_id, sizeof a->request_id, st, 0);
    a->attempt = sqlite3_column_int(st, 1);
    a->start_ms = sqlite3_column_int64(st, 2);
    a->duration_ms = sqlite3_column_double(st, 3);
    store__copy_text(a->status, sizeof a->status, st, 4);
    a->error_type = store__dup_column(st, 5);
    a->error_message = store__dup_column(st, 6);
}

int store_attempt_list(store_queue_t *q, const char *request_id, store_attempt_t **out,
                       size_t *count, mf_error_t *err)
{
    sqlite3_stmt *st = q->st[Q_AT_LIST];
    *out = NULL;
    *count = 0;
    if (sqlite3_bind_text(st, 1, request_id, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
        store__stmt_done(st);
        return store__sqlite_fail(q->db, err, "list attempts");
    }
    void *list;
    int r =
        store__collect(q->db, st, sizeof **out, queue__row_attempt, &list, count, "list attempts", err);
    *out = list;
    if (r < 0) {
        store_attempt_list_free(*out, *count);
        *out = NULL;
        *count = 0;
    }
    return r;
}

void store_attempt_list_free(store_attempt_t *list, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(list[i].error_type);
        free(list[i].error_message);
    }
    free(list);
}

int store_dead_letter_put(store_queue_t *q, store_dead_letter_t *dl, int64_t from_seq,
                          mf_error_t *err)
{
    sqlite3_stmt *st = q->st[from_seq ? Q_DL_PUT_FROM_EVENT : Q_DL_PUT];
    int ok = sqlite3_bind_text(st, 1, dl->function, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_text(st, 2, dl->request_id, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_int(st, 3, dl->attempts) == SQLITE_OK &&
             sqlite3_bind_text(st, 4, dl->condition, -1, SQLITE_STATIC) == SQLITE_OK &&
             store__bind_text_or_null(st, 5, dl->error_type) == SQLITE_OK &&
             store__bind_text_or_null(st, 6, dl->error_message) == SQLITE_OK &&
             (from_seq ? sqlite3_bind_int64(st, 7, from_seq)
                       : sqlite3_bind_blob64(st, 7, dl->event ? dl->event : "", dl->event_len,
                                             SQLITE_STATIC)) == SQLITE_OK &&
             sqlite3_bind_int64(st, 8, dl->time_ms) == SQLITE_OK &&
             (from_seq ||
              (store__bind_text_or_null(st, 9, dl->traceparent[0] ? dl->traceparent : NULL) ==
                   SQLITE_OK &&
               store__bind_text_or_null(st, 10, dl->trigger[0] ? dl->trigger : NULL) ==
                   SQLITE_OK));
    int r = store__step_done(q->db, st, ok, "write a dead letter", err);
    if (r == 0 && sqlite3_changes(q->db) == 0)
        r = mf_error_plain(err, ENOENT, "queued event %lld is gone", (long long)from_seq);
    if (r == 0)
        dl->id = sqlite3_last_insert_rowid(q->db);
    return r;
}

static void queue__row_dead_letter(sqlite3_stmt *st, void *item)
{
    store_dead_letter_t *dl = item;
    dl->id = sqlite3_column_int64(st, 0);
    store__copy_text(dl->function, sizeof dl->function, st, 1);
    store__copy_text(dl->request_id, sizeof dl->request_id, st, 2);
    dl->attempts = sqlite3_column_int(st, 3);
    store__copy_text(dl->condition, sizeof dl->condition, st, 4);
    dl->error_type = store__dup_column(st, 5);
    dl->error_message = store__dup_column(st, 6);
    dl->event = store__dup_blob(st, 7, &dl->event_len);
    dl->time_ms = sqlite3_column_int64(st, 8);
    store__copy_text(dl->traceparent, sizeof dl->traceparent, st, 9);
    store__copy_text(dl->trigger, sizeof dl->trigger, st, 10);
}

int store_dead_letter_get(store_queue_t *q, const char *function, int64_t id,
                          store_dead_letter_t *out, mf_error_t *err)
{
    sqlite3_stmt *st = q->st[Q_DL_GET];
    int r = 0;
    if (sqlite3_bind_text(st, 1, function, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_bind_int64(st, 2, id) != SQLITE_OK) {
        r = store__sqlite_fail(q->db, err, "read a dead letter");
    } else {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            memset(out, 0, sizeof *out);
            queue__row_dead_letter(st, out);
        } else if (rc == SQLITE_DONE) {
            r = mf_error_plain(err, ENOENT, "%s has no dead letter %lld", function, (long long)id);
        } else {
            r = store__sqlite_fail(q->db, err, "read a dead letter");
        }
    }
    store__stmt_done(st);
    return r;
}

int store_dead_letter_delete(store_queue_t *q, int64_t id, mf_error_t *err)
{
    int r = queue__delete_by_id(q, Q_DL_DELETE, id, "delete a dead letter", err);
    if (r == 0 && sqlite3_changes(q->db) == 0)
        r = mf_error_plain(err, ENOENT, "dead letter %lld is gone", (long long)id);
    return r;
}

int store_dead_letter_list(store_queue_t *q, const char *function, int limit,
                           store_dead_letter_t **out, size_t *count, mf_error_t *err)
{
    sqlite3_stmt *st = q->st[Q_DL_LIST];
    *out = NULL;
    *count = 0;
    if (sqlite3_bind_text(st, 1, function, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_bind_int(st, 2, limit) != SQLITE_OK) {
        store__stmt_done(st);
        return store__sqlite_fail(q->db, err, "list dead letters");
    }
    void *list;
    int r = store__collect(q->db, st, sizeof **out, queue__row_dead_letter, &list, count,
                           "list dead letters", err);
    *out = list;
    if (r < 0) {
        store_dead_letter_list_free(*out, *count);
        *out = NULL;
        *count = 0;
    }
    return r;
}

int store_dead_letter_counts(store_queue_t *q,
                             void (*cb)(const char *function, int64_t n, void *ud), void *ud,
                             mf_error_t *err)
{
    sqlite3_stmt *st = q->st[Q_DL_COUNTS];
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        cb((const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1), ud);
    int r = rc == SQLITE_DONE ? 0 : store__sqlite_fail(q->db, err, "count dead letters");
    store__stmt_done(st);
    return r;
}

void store_dead_letter_clear(store_dead_letter_t *dl)
{
    if (!dl)
        return;
    free(dl->error_type);
    free(dl->error_message);
    free(dl->event);
    dl->error_type = dl->error_message = NULL;
    dl->event = NULL;
}

void store_dead_letter_list_free(store_dead_letter_t *list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        store_dead_letter_clear(&list[i]);
    free(list);
}

int store_idem_put(store_queue_t *q, const char *function, const char *key, const char *request_id,
                   int64_t created_ms, mf_error_t *err)
{
    sqlite3_stmt *st = q->st[Q_IDEM_PUT];
    int ok = sqlite3_bind_text(st, 1, function, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_text(st, 3, request_id, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_int64(st, 4, created_ms) == SQLITE_OK;
    return store__step_done(q->db, st, ok, "write an idempotency key", err);
}

int store_idem_list(store_queue_t *q, int64_t since_ms,
                    void (*cb)(const char *function, const char *key, const char *request_id,
                               int64_t created_ms, void *ud),
                    void *ud, mf_error_t *err)
{
    sqlite3_stmt *st = q->st[Q_IDEM_LIST];
    int rc = SQLITE_ERROR;
    if (sqlite3_bind_int64(st, 1, since_ms) == SQLITE_OK)
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            cb((const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
               (const char *)sqlite3_column_text(st, 2), sqlite3_column_int64(st, 3), ud);
    int r = rc == SQLITE_DONE ? 0 : store__sqlite_fail(q->db, err, "list idempotency keys");
    store__stmt_done(st);
    return r;
}

int store_idem_prune(store_queue_t *q, int64_t before_ms, mf_error_t *err)
{
    return queue__delete_by_id(q, Q_IDEM_PRUNE, before_ms, "prune idempotency keys", err);
}

/* One batched DELETE ... WHERE time < ?1 LIMIT ?2, again until a batch is
 * not full. */
static int queue__prune_kind(store_queue_t *q, const char *sql, int64_t before_ms, int64_t *n,
                             mf_error_t *err)
{
    enum { BATCH = 1000 };
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK)
        return store__sqlite_fail(q->db, err, "prune the queue's history");
    int r = 0;
    for (;;) {
        if (sqlite3_bind_int64(st, 1, before_ms) != SQLITE_OK ||
            sqlite3_bind_int(st, 2, BATCH) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE) {
            r = store__sqlite_fail(q->db, err, "prune the queue's history");
            break;
        }
        int64_t k = sqlite3_changes64(q->db);
        *n += k;
        sqlite3_reset(st);
        if (k < BATCH)
            break;
    }
    sqlite3_finalize(st);
    return r;
}

int store_queue_prune(store_queue_t *q, int64_t attempts_before_ms, int64_t dead_before_ms,
                      int64_t *attempts, int64_t *dead, mf_error_t *err)
{
    *attempts = *dead = 0;
    int r = queue__prune_kind(q,
                              "DELETE FROM attempts WHERE (request_id, attempt) IN (SELECT"
                              " request_id, attempt FROM attempts WHERE start_ms < ?1 LIMIT ?2)",
                              attempts_before_ms, attempts, err);
    if (r == 0)
        r = queue__prune_kind(q,
                              "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters"
                              " WHERE time_ms < ?1 ORDER BY id LIMIT ?2)",
                              dead_before_ms, dead, err);
    return r;
}

int store_queue_forget_function(store_queue_t *q, const char *function, mf_error_t *err)
{
    static const int which[] = {Q_FORGET_EVENTS, Q_FORGET_DL, Q_FORGET_IDEM};
    for (size_t i = 0; i < sizeof which / sizeof which[0]; i++) {
        sqlite3_stmt *st = q->st[which[i]];
        int r = store__step_done(q->db, st,
                                 sqlite3_bind_text(st, 1, function, -1, SQLITE_STATIC) == SQLITE_OK,
                                 "forget a function's queue", err);
        if (r < 0)
            return r;
    }
    return 0;
}
