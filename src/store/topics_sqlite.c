/* queue.db's topic tables and statements on SQLite (store/topics.h's
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

const char store__topics_migration[] =
    "CREATE TABLE topics ("
    "  name       TEXT PRIMARY KEY,"
    "  created_ms INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE subscriptions ("
    "  id         TEXT PRIMARY KEY,"
    "  topic      TEXT NOT NULL,"
    "  function   TEXT NOT NULL,"
    "  filter     TEXT,"
    "  created_ms INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX subscriptions_topic ON subscriptions (topic);"
    "CREATE INDEX subscriptions_function ON subscriptions (function);"
    /* The record of what was published; the deliveries themselves are
     * events in the events table. */
    "CREATE TABLE topic_messages ("
    "  message_id TEXT PRIMARY KEY,"
    "  topic      TEXT NOT NULL,"
    "  subject    TEXT,"
    "  message    BLOB NOT NULL,"
    "  attributes TEXT,"
    "  time_ms    INTEGER NOT NULL,"
    "  deliveries INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX topic_messages_time ON topic_messages (time_ms);"
    "CREATE INDEX topic_messages_topic ON topic_messages (topic);";

enum {
    T_TOPIC_PUT,
    T_TOPIC_DELETE,
    T_TOPIC_DELETE_SUBS,
    T_TOPIC_LIST,
    T_SUB_PUT,
    T_SUB_DELETE,
    T_SUB_LIST,
    T_SUB_FORGET,
    T_MSG_PUT,
    T_MSG_PRUNE,
    T_MSG_COUNT,
    T_COUNT
};

static const char *const topics__sql[T_COUNT] = {
    [T_TOPIC_PUT] = "INSERT OR IGNORE INTO topics (name, created_ms) VALUES (?1, ?2)",
    [T_TOPIC_DELETE] = STORE_TOPIC_DELETE(P),
    [T_TOPIC_DELETE_SUBS] = STORE_TOPIC_DELETE_SUBS(P),
    [T_TOPIC_LIST] = STORE_TOPIC_LIST,
    [T_SUB_PUT] = STORE_SUB_PUT(P),
    [T_SUB_DELETE] = STORE_SUB_DELETE(P),
    [T_SUB_LIST] = STORE_SUB_LIST,
    [T_SUB_FORGET] = STORE_SUB_FORGET(P),
    [T_MSG_PUT] = STORE_MSG_PUT(P),
    [T_MSG_PRUNE] = STORE_MSG_PRUNE(P),
    [T_MSG_COUNT] = STORE_MSG_COUNT(P),
};

_Static_assert(T_COUNT <= STORE_QUEUE_MORE_STMTS, "more statement slots needed");

static int topics__stmt(store_queue_t *q, int which, sqlite3_stmt **st, mf_error_t *err)
{
    return store__queue_stmt(q, which, topics__sql[which], st, err);
}

/* Runs statement which with one text parameter; *changes (may be NULL)
 * gets the rows it changed. */
static int topics__run_text(store_queue_t *q, int which, const char *text, const char *what,
                            int64_t *changes, mf_error_t *err)
{
    sqlite3_stmt *st;
    int r = topics__stmt(q, which, &st, err);
    if (r < 0)
        return r;
    sqlite3 *db = store__queue_db(q);
    r = store__step_done(db, st, sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC) == SQLITE_OK,
                         what, err);
    if (r == 0 && changes)
        *changes = sqlite3_changes64(db);
    return r;
}

static int topics__topic_put(store_queue_t *q, const char *name, int64_t created_ms,
                             mf_error_t *err)
{
    sqlite3_stmt *st;
    int r = topics__stmt(q, T_TOPIC_PUT, &st, err);
    if (r < 0)
        return r;
    int ok = sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_int64(st, 2, created_ms) == SQLITE_OK;
    return store__step_done(store__queue_db(q), st, ok, "create a topic", err);
}

static int topics__topic_delete(store_queue_t *q, const char *name, mf_error_t *err)
{
    int64_t n = 0;
    int r = topics__run_text(q, T_TOPIC_DELETE, name, "delete a topic", &n, err);
    if (r == 0 && n == 0)
        return store__no_topic(err, name);
    if (r == 0)
        r = topics__run_text(q, T_TOPIC_DELETE_SUBS, name, "delete a topic's subscriptions", NULL,
                             err);
    return r;
}

/* Collects the rows of statement which into *out (count of them, read by
 * fill), freeing them with free_list on failure. */
static int topics__rows(store_queue_t *q, int which, size_t size, store__fill_fn fill,
                        void (*free_list)(void *list, size_t count), void **out, size_t *count,
                        const char *what, mf_error_t *err)
{
    *out = NULL;
    *count = 0;
    sqlite3_stmt *st;
    int r = topics__stmt(q, which, &st, err);
    if (r < 0)
        return r;
    r = store__sqlite_rows(store__queue_db(q), st, size, fill, out, count, what, err);
    if (r < 0) {
        free_list(*out, *count);
        *out = NULL;
        *count = 0;
    }
    return r;
}

static void free_topics(void *list, size_t count)
{
    free(list);
}

static int topics__topic_list(store_queue_t *q, store_topic_t **out, size_t *count,
                              mf_error_t *err)
{
    void *list;
    int r = topics__rows(q, T_TOPIC_LIST, sizeof **out, store__fill_topic, free_topics, &list,
                         count, "list topics", err);
    *out = list;
    return r;
}

static int topics__subscription_put(store_queue_t *q, const store_subscription_t *s,
                                    mf_error_t *err)
{
    sqlite3_stmt *st;
    int r = topics__stmt(q, T_SUB_PUT, &st, err);
    if (r < 0)
        return r;
    store__binder_t b = store__sqlite_binder(st);
    int ok = store__bind_subscription(&b, s) == 0;
    return store__step_done(store__queue_db(q), st, ok, "write a subscription", err);
}

static int topics__subscription_delete(store_queue_t *q, const char *id, mf_error_t *err)
{
    int64_t n = 0;
    int r = topics__run_text(q, T_SUB_DELETE, id, "delete a subscription", &n, err);
    if (r == 0 && n == 0)
        return store__no_subscription(err, id);
    return r;
}

static void free_subscriptions(void *list, size_t count)
{
    store_subscription_list_free(list, count);
}

static int topics__subscription_list(store_queue_t *q, store_subscription_t **out, size_t *count,
                                     mf_error_t *err)
{
    void *list;
    int r = topics__rows(q, T_SUB_LIST, sizeof **out, store__fill_subscription,
                         free_subscriptions, &list, count, "list subscriptions", err);
    *out = list;
    return r;
}

static int topics__subscriptions_forget_function(store_queue_t *q, const char *function,
                                                 mf_error_t *err)
{
    return topics__run_text(q, T_SUB_FORGET, function, "forget a function's subscriptions", NULL,
                            err);
}

static int topics__message_put(store_queue_t *q, const store_topic_message_t *m, mf_error_t *err)
{
    sqlite3_stmt *st;
    int r = topics__stmt(q, T_MSG_PUT, &st, err);
    if (r < 0)
        return r;
    store__binder_t b = store__sqlite_binder(st);
    int ok = store__bind_topic_message(&b, m) == 0;
    return store__step_done(store__queue_db(q), st, ok, "write a published message", err);
}

static int topics__messages_prune(store_queue_t *q, int64_t before_ms, int64_t *n,
                                  mf_error_t *err)
{
    sqlite3_stmt *st;
    int r = topics__stmt(q, T_MSG_PRUNE, &st, err);
    if (r < 0)
        return r;
    sqlite3 *db = store__queue_db(q);
    for (;;) {
        r = store__step_done(db, st, sqlite3_bind_int64(st, 1, before_ms) == SQLITE_OK,
                             "prune published messages", err);
        if (r < 0)
            return r;
        int64_t k = sqlite3_changes64(db);
        *n += k;
        if (k < 1000)
            return 0;
    }
}

static int topics__message_count(store_queue_t *q, const char *topic, int64_t *n,
                                 mf_error_t *err)
{
    sqlite3_stmt *st;
    int r = topics__stmt(q, T_MSG_COUNT, &st, err);
    if (r < 0)
        return r;
    if (sqlite3_bind_text(st, 1, topic, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW)
        r = store__sqlite_fail(store__queue_db(q), err, "count published messages");
    else
        *n = sqlite3_column_int64(st, 0);
    store__stmt_done(st);
    return r;
}

const store__topic_ops_t store__sqlite_topic_ops = {
    .topic_put = topics__topic_put,
    .topic_delete = topics__topic_delete,
    .topic_list = topics__topic_list,
    .subscription_put = topics__subscription_put,
    .subscription_delete = topics__subscription_delete,
    .subscription_list = topics__subscription_list,
    .subscriptions_forget_function = topics__subscriptions_forget_function,
    .message_put = topics__message_put,
    .messages_prune = topics__messages_prune,
    .message_count = topics__message_count,
};
