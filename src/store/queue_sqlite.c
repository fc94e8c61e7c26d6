/* queue.db: the async queue's tables and statements on SQLite (store/queue.h's
 * calls, in queue_backend.h's table; durable_sqlite.c, schedules_sqlite.c
 * and topics_sqlite.c hold the other headers' on the same connection). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cleanup.h"
#include "core/xalloc.h"
#include "store/queue_backend.h"
#include "store/queue_internal.h"
#include "store/queue_rows.h"
#include "store/sqlite_internal.h"

#define P STORE__SQLITE_P

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

    /* 10: the node holding each event, and the nodes (store/nodes.h): one
     * at a time here, but the same calls as on PostgreSQL. */
    "ALTER TABLE events ADD COLUMN owner TEXT;"
    "CREATE INDEX events_owner ON events (owner);"
    STORE__NODES_TABLE("TEXT", "INTEGER"),

    /* 11: the tenant id of an event's call (Lambda's tenant isolation
     * mode), kept by its dead letter too, and the one a schedule's or a
     * subscription's calls run for; "" for none. */
    "ALTER TABLE events ADD COLUMN tenant_id TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE dead_letters ADD COLUMN tenant_id TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE schedules ADD COLUMN tenant_id TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE subscriptions ADD COLUMN tenant_id TEXT NOT NULL DEFAULT '';",
};

enum {
    Q_EV_INSERT,
    Q_EV_UPDATE,
    Q_EV_DELETE,
    Q_EV_BODY,
    Q_EV_LIST,
    Q_EV_TAKE,
    Q_AT_PUT,
    Q_AT_LIST,
    Q_DL_PUT,
    Q_DL_PUT_FROM_EVENT,
    Q_DL_GET,
    Q_DL_DELETE,
    Q_DL_LIST,
    Q_DL_COUNTS,
    Q_IDEM_PUT,
    Q_IDEM_GET,
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

static const char *const queue__sql[Q_COUNT] = {
    [Q_EV_INSERT] = STORE_QEVENT_INSERT(P),
    [Q_EV_UPDATE] = STORE_QEVENT_UPDATE(P),
    [Q_EV_DELETE] = STORE_QEVENT_DELETE(P),
    [Q_EV_BODY] = STORE_QEVENT_BODY(P),
    [Q_EV_LIST] = STORE_QEVENT_LIST,
    /* One writer at a time holds the file, so no other take can choose an
     * event between this statement's choice and its update. */
    [Q_EV_TAKE] = STORE_QEVENT_TAKE_SET(P) " WHERE seq IN (" STORE_QEVENT_POOL(P) ")"
                  STORE_QEVENT_TAKEN,
    [Q_AT_PUT] = "INSERT OR REPLACE INTO attempts (" STORE_ATTEMPT_COLUMNS ") VALUES ("
                 STORE_ATTEMPT_VALUES(P) ")",
    [Q_AT_LIST] = STORE_ATTEMPT_LIST(P),
    [Q_DL_PUT] = STORE_DL_PUT(P),
    [Q_DL_PUT_FROM_EVENT] = STORE_DL_PUT_FROM_EVENT(P),
    [Q_DL_GET] = STORE_DL_GET(P),
    [Q_DL_DELETE] = STORE_DL_DELETE(P),
    [Q_DL_LIST] = STORE_DL_LIST(P),
    [Q_DL_COUNTS] = STORE_DL_COUNTS,
    [Q_IDEM_PUT] = STORE_IDEM_PUT(P),
    [Q_IDEM_GET] = STORE_IDEM_GET(P),
    [Q_IDEM_LIST] = STORE_IDEM_LIST(P),
    [Q_IDEM_PRUNE] = STORE_IDEM_PRUNE(P),
    [Q_FORGET_EVENTS] = STORE_FORGET_EVENTS(P),
    [Q_FORGET_DL] = STORE_FORGET_DL(P),
    [Q_FORGET_IDEM] = STORE_FORGET_IDEM(P),
    /* Prepared too: the writer runs them for every job of every batch. */
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_SAVEPOINT] = "SAVEPOINT job",
    [Q_RELEASE] = "RELEASE job",
    [Q_ROLLBACK_TO] = "ROLLBACK TO job",
};

typedef struct sqlite_queue {
    store_queue_t base;
    sqlite3 *db;
    sqlite3_stmt *st[Q_COUNT];
    bool durable; /* the open transaction's */
    /* Statements of the other tables in queue.db, prepared on first use
     * (store__queue_stmt). */
    sqlite3_stmt *more[STORE_QUEUE_MORE_STMTS];
} sqlite_queue_t;

static const store__queue_backend_t sqlite_queue__backend;

static sqlite_queue_t *sq(store_queue_t *q)
{
    return (sqlite_queue_t *)q;
}

static void queue__close(store_queue_t *base)
{
    sqlite_queue_t *q = sq(base);
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(q->st[i]);
    for (int i = 0; i < STORE_QUEUE_MORE_STMTS; i++)
        sqlite3_finalize(q->more[i]);
    if (q->db)
        sqlite3_close(q->db);
    free(q);
}

int store__sqlite_queue_open(const char *data_dir, store_queue_t **out, mf_error_t *err)
{
    cleanup_free char *path = xasprintf("%s/queue.db", data_dir);
    sqlite_queue_t *q = xcalloc(1, sizeof *q);
    q->base.be = &sqlite_queue__backend;
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
        queue__close(&q->base);
        return r;
    }
    *out = &q->base;
    return 0;
}

sqlite3 *store__queue_db(store_queue_t *q)
{
    return sq(q)->db;
}

int store__queue_stmt(store_queue_t *base, int slot, const char *sql, sqlite3_stmt **out,
                      mf_error_t *err)
{
    sqlite_queue_t *q = sq(base);
    if (!q->more[slot]) {
        int r = store__sqlite_prepare(q->db, sql, &q->more[slot], err);
        if (r < 0)
            return r;
    }
    *out = q->more[slot];
    return 0;
}

/* ---- transactions ------------------------------------------------------- */

static int queue__begin(store_queue_t *base, bool durable, mf_error_t *err)
{
    sqlite_queue_t *q = sq(base);
    return store__txn_begin(q->db, &q->durable, durable, q->st[Q_BEGIN], err);
}

static int queue__commit(store_queue_t *base, mf_error_t *err)
{
    sqlite_queue_t *q = sq(base);
    return store__txn_commit(q->db, q->st[Q_COMMIT], err);
}

static void queue__rollback(store_queue_t *base)
{
    store__txn_rollback(sq(base)->db);
}

static int queue__savepoint(store_queue_t *base, mf_error_t *err)
{
    sqlite_queue_t *q = sq(base);
    return store__step_done(q->db, q->st[Q_SAVEPOINT], 1, "open a savepoint", err);
}

static void queue__release(store_queue_t *base, bool keep)
{
    sqlite_queue_t *q = sq(base);
    store__txn_release(q->db, q->st[Q_ROLLBACK_TO], q->st[Q_RELEASE], keep);
}

/* ---- statements --------------------------------------------------------- */

/* Runs statement which, its parameters bound (bind_failed: not all of
 * them took), to its end. */
static int queue__write(sqlite_queue_t *q, int which, int bind_failed, const char *what,
                        mf_error_t *err)
{
    return store__step_done(q->db, q->st[which], !bind_failed, what, err);
}

static store__binder_t queue__binder(sqlite_queue_t *q, int which)
{
    return store__sqlite_binder(q->st[which]);
}

static int queue__qevent_insert(store_queue_t *base, store_qevent_t *ev, mf_error_t *err)
{
    sqlite_queue_t *q = sq(base);
    store__binder_t b = queue__binder(q, Q_EV_INSERT);
    int r = queue__write(q, Q_EV_INSERT, store__bind_qevent(&b, ev), "queue an event", err);
    if (r == 0)
        ev->seq = sqlite3_last_insert_rowid(q->db);
    return r;
}

static int queue__qevent_update(store_queue_t *base, const store_qevent_t *ev, mf_error_t *err)
{
    sqlite_queue_t *q = sq(base);
    store__binder_t b = queue__binder(q, Q_EV_UPDATE);
    return queue__write(q, Q_EV_UPDATE, store__bind_qevent_update(&b, ev),
                        "update a queued event", err);
}

static int queue__delete_by_id(sqlite_queue_t *q, int which, int64_t id, const char *what,
                               mf_error_t *err)
{
    sqlite3_stmt *st = q->st[which];
    return store__step_done(q->db, st, sqlite3_bind_int64(st, 1, id) == SQLITE_OK, what, err);
}

static int queue__qevent_delete(store_queue_t *base, int64_t seq, mf_error_t *err)
{
    return queue__delete_by_id(sq(base), Q_EV_DELETE, seq, "delete a queued event", err);
}

static int queue__qevent_body(store_queue_t *base, int64_t seq, buf_t *out, mf_error_t *err)
{
    sqlite_queue_t *q = sq(base);
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

/* Collects the rows of statement which (bound) into a malloc'd array of
 * items read by fill; on failure frees what was read with free_list. */
static int queue__rows(sqlite_queue_t *q, int which, size_t size, store__fill_fn fill,
                       void (*free_list)(void *list, size_t count), void **out, size_t *count,
                       const char *what, mf_error_t *err)
{
    int r = store__sqlite_rows(q->db, q->st[which], size, fill, out, count, what, err);
    if (r < 0) {
        free_list(*out, *count);
        *out = NULL;
        *count = 0;
    }
    return r;
}

static void free_qevents(void *list, size_t count)
{
    store_qevent_list_free(list, count);
}

static int queue__qevent_list(store_queue_t *base, store_qevent_t **out, size_t *count,
                              mf_error_t *err)
{
    void *list;
    int r = queue__rows(sq(base), Q_EV_LIST, sizeof **out, store__fill_qevent, free_qevents,
                        &list, count, "list queued events", err);
    *out = list;
    return r;
}

static int queue__qevent_take(store_queue_t *base, const char *node, int limit,
                              store_qevent_t **out, size_t *count, mf_error_t *err)
{
    sqlite_queue_t *q = sq(base);
    store__binder_t b = queue__binder(q, Q_EV_TAKE);
    *out = NULL;
    *count = 0;
    if (b.text(b.ctx, 1, node) | b.int64(b.ctx, 2, limit)) {
        store__stmt_done(q->st[Q_EV_TAKE]);
        return store__sqlite_fail(q->db, err, "take queued events");
    }
    void *list;
    int r = queue__rows(q, Q_EV_TAKE, sizeof **out, store__fill_qevent, free_qevents, &list, count,
                        "take queued events", err);
    *out = list;
    if (r == 0)
        store__sort_qevents(*out, *count);
    return r;
}

static int queue__attempt_put(store_queue_t *base, const store_attempt_t *a, mf_error_t *err)
{
    sqlite_queue_t *q = sq(base);
    store__binder_t b = queue__binder(q, Q_AT_PUT);
    return queue__write(q, Q_AT_PUT, store__bind_attempt(&b, a), "write an attempt", err);
}

static void free_attempts(void *list, size_t count)
{
    store_attempt_list_free(list, count);
}

static int queue__attempt_list(store_queue_t *base, const char *request_id, store_attempt_t **out,
                               size_t *count, mf_error_t *err)
{
    sqlite_queue_t *q = sq(base);
    sqlite3_stmt *st = q->st[Q_AT_LIST];
    *out = NULL;
    *count = 0;
    if (sqlite3_bind_text(st, 1, request_id, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
        store__stmt_done(st);
        return store__sqlite_fail(q->db, err, "list attempts");
    }
    void *list;
    int r = queue__rows(q, Q_AT_LIST, sizeof **out, store__fill_attempt, free_attempts, &list,
                        count, "list attempts", err);
    *out = list;
    return r;
}

static int queue__dead_letter_put(store_queue_t *base, store_dead_letter_t *dl, int64_t from_seq,
                                  mf_error_t *err)
{
    sqlite_queue_t *q = sq(base);
    int which = from_seq ? Q_DL_PUT_FROM_EVENT : Q_DL_PUT;
    store__binder_t b = queue__binder(q, which);
    int r = queue__write(q, which, store__bind_dead_letter(&b, dl, from_seq),
                         "write a dead letter", err);
    if (r == 0 && sqlite3_changes(q->db) == 0)
        r = mf_error_plain(err, ENOENT, "queued event %lld is gone", (long long)from_seq);
    if (r == 0)
        dl->id = sqlite3_last_insert_rowid(q->db);
    return r;
}

static int queue__dead_letter_get(store_queue_t *base, const char *function, int64_t id,
                                  store_dead_letter_t *out, mf_error_t *err)
{
    sqlite_queue_t *q = sq(base);
    sqlite3_stmt *st = q->st[Q_DL_GET];
    int r = 0;
    if (sqlite3_bind_text(st, 1, function, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_bind_int64(st, 2, id) != SQLITE_OK) {
        r = store__sqlite_fail(q->db, err, "read a dead letter");
    } else {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            memset(out, 0, sizeof *out);
            store__row_t row = store__sqlite_row(st);
            store__fill_dead_letter(&row, out);
        } else if (rc == SQLITE_DONE) {
            r = store__no_dead_letter(err, function, id);
        } else {
            r = store__sqlite_fail(q->db, err, "read a dead letter");
        }
    }
    store__stmt_done(st);
    return r;
}

static int queue__dead_letter_delete(store_queue_t *base, int64_t id, mf_error_t *err)
{
    sqlite_queue_t *q = sq(base);
    int r = queue__delete_by_id(q, Q_DL_DELETE, id, "delete a dead letter", err);
    if (r == 0 && sqlite3_changes(q->db) == 0)
        r = mf_error_plain(err, ENOENT, "dead letter %lld is gone", (long long)id);
    return r;
}

static void free_dead_letters(void *list, size_t count)
{
    store_dead_letter_list_free(list, count);
}

static int queue__dead_letter_list(store_queue_t *base, const char *function, int limit,
                                   store_dead_letter_t **out, size_t *count, mf_error_t *err)
{
    sqlite_queue_t *q = sq(base);
    sqlite3_stmt *st = q->st[Q_DL_LIST];
    *out = NULL;
    *count = 0;
    if (sqlite3_bind_text(st, 1, function, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_bind_int(st, 2, limit) != SQLITE_OK) {
        store__stmt_done(st);
        return store__sqlite_fail(q->db, err, "list dead letters");
    }
    void *list;
    int r = queue__rows(q, Q_DL_LIST, sizeof **out, store__fill_dead_letter, free_dead_letters,
                        &list, count, "list dead letters", err);
    *out = list;
    return r;
}

static int queue__dead_letter_counts(store_queue_t *base,
                                     void (*cb)(const char *function, int64_t n, void *ud),
                                     void *ud, mf_error_t *err)
{
    sqlite_queue_t *q = sq(base);
    sqlite3_stmt *st = q->st[Q_DL_COUNTS];
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        cb((const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1), ud);
    int r = rc == SQLITE_DONE ? 0 : store__sqlite_fail(q->db, err, "count dead letters");
    store__stmt_done(st);
    return r;
}

static int queue__idem_put(store_queue_t *base, const char *function, const char *key,
                           const char *request_id, int64_t created_ms, int64_t live_since_ms,
                           char existing[37], mf_error_t *err)
{
    sqlite_queue_t *q = sq(base);
    sqlite3_stmt *st = q->st[Q_IDEM_PUT];
    int ok = sqlite3_bind_text(st, 1, function, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_text(st, 3, request_id, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_int64(st, 4, created_ms) == SQLITE_OK &&
             sqlite3_bind_int64(st, 5, live_since_ms) == SQLITE_OK;
    int r = store__step_done(q->db, st, ok, "write an idempotency key", err);
    if (r < 0 || sqlite3_changes(q->db) > 0)
        return r;
    st = q->st[Q_IDEM_GET];
    if (sqlite3_bind_text(st, 1, function, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        store__stmt_done(st);
        return store__sqlite_fail(q->db, err, "read an idempotency key");
    }
    const char *rid = (const char *)sqlite3_column_text(st, 0);
    char got[37];
    snprintf(got, sizeof got, "%s", rid ? rid : "");
    store__stmt_done(st);
    if (existing)
        memcpy(existing, got, sizeof got);
    return mf_error_plain(err, EEXIST, "idempotency key taken by request %s", got);
}

static int queue__idem_list(store_queue_t *base, int64_t since_ms,
                            void (*cb)(const char *function, const char *key,
                                       const char *request_id, int64_t created_ms, void *ud),
                            void *ud, mf_error_t *err)
{
    sqlite_queue_t *q = sq(base);
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

static int queue__idem_prune(store_queue_t *base, int64_t before_ms, mf_error_t *err)
{
    return queue__delete_by_id(sq(base), Q_IDEM_PRUNE, before_ms, "prune idempotency keys", err);
}

/* One batch (STORE_PRUNE_ATTEMPTS, STORE_PRUNE_DEAD), again until a batch
 * deletes nothing. */
static int queue__prune_kind(sqlite_queue_t *q, const char *sql, int64_t before_ms, int64_t *n,
                             mf_error_t *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK)
        return store__sqlite_fail(q->db, err, "prune the queue's history");
    int r = 0;
    for (;;) {
        if (sqlite3_bind_int64(st, 1, before_ms) != SQLITE_OK ||
            sqlite3_bind_int(st, 2, STORE_QUEUE_PRUNE_BATCH) != SQLITE_OK ||
            sqlite3_step(st) != SQLITE_DONE) {
            r = store__sqlite_fail(q->db, err, "prune the queue's history");
            break;
        }
        int64_t k = sqlite3_changes64(q->db);
        *n += k;
        sqlite3_reset(st);
        if (k == 0)
            break;
    }
    sqlite3_finalize(st);
    return r;
}

static int queue__prune(store_queue_t *base, int64_t attempts_before_ms, int64_t dead_before_ms,
                        int64_t *attempts, int64_t *dead, mf_error_t *err)
{
    sqlite_queue_t *q = sq(base);
    int r = queue__prune_kind(q, STORE_PRUNE_ATTEMPTS(P), attempts_before_ms, attempts, err);
    if (r == 0)
        r = queue__prune_kind(q, STORE_PRUNE_DEAD(P), dead_before_ms, dead, err);
    return r;
}

static int queue__forget_function(store_queue_t *base, const char *function, mf_error_t *err)
{
    sqlite_queue_t *q = sq(base);
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

static const store__queue_ops_t sqlite_queue__ops = {
    .close = queue__close,
    .begin = queue__begin,
    .commit = queue__commit,
    .rollback = queue__rollback,
    .savepoint = queue__savepoint,
    .release = queue__release,
    .qevent_insert = queue__qevent_insert,
    .qevent_update = queue__qevent_update,
    .qevent_delete = queue__qevent_delete,
    .qevent_body = queue__qevent_body,
    .qevent_list = queue__qevent_list,
    .qevent_take = queue__qevent_take,
    .attempt_put = queue__attempt_put,
    .attempt_list = queue__attempt_list,
    .dead_letter_put = queue__dead_letter_put,
    .dead_letter_get = queue__dead_letter_get,
    .dead_letter_delete = queue__dead_letter_delete,
    .dead_letter_list = queue__dead_letter_list,
    .dead_letter_counts = queue__dead_letter_counts,
    .idem_put = queue__idem_put,
    .idem_list = queue__idem_list,
    .idem_prune = queue__idem_prune,
    .prune = queue__prune,
    .forget_function = queue__forget_function,
};

static const store__queue_backend_t sqlite_queue__backend = {
    .name = "SQLite",
    .queue = &sqlite_queue__ops,
    .durable = &store__sqlite_durable_ops,
    .schedules = &store__sqlite_schedule_ops,
    .topics = &store__sqlite_topic_ops,
    .nodes = &store__sqlite_node_ops,
};
