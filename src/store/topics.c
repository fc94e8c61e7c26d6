/* queue.db's topic tables and statements (see store/topics.h). */
#include "store/topics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "store/queue_internal.h"
#include "store/sqlite_internal.h"

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
    [T_TOPIC_DELETE] = "DELETE FROM topics WHERE name = ?1",
    [T_TOPIC_DELETE_SUBS] = "DELETE FROM subscriptions WHERE topic = ?1",
    [T_TOPIC_LIST] = "SELECT name, created_ms FROM topics ORDER BY name",
    [T_SUB_PUT] = "INSERT INTO subscriptions (id, topic, function, filter, created_ms)"
                  " VALUES (?1, ?2, ?3, ?4, ?5)",
    [T_SUB_DELETE] = "DELETE FROM subscriptions WHERE id = ?1",
    [T_SUB_LIST] = "SELECT id, topic, function, filter, created_ms FROM subscriptions"
                   " ORDER BY created_ms, id",
    [T_SUB_FORGET] = "DELETE FROM subscriptions WHERE function = ?1",
    [T_MSG_PUT] = "INSERT INTO topic_messages (message_id, topic, subject, message, attributes,"
                  " time_ms, deliveries) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [T_MSG_PRUNE] = "DELETE FROM topic_messages WHERE message_id IN (SELECT message_id FROM"
                    " topic_messages WHERE time_ms < ?1 ORDER BY time_ms LIMIT 1000)",
    [T_MSG_COUNT] = "SELECT count(*) FROM topic_messages WHERE topic = ?1",
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

int store_topic_put(store_queue_t *q, const char *name, int64_t created_ms, mf_error_t *err)
{
    sqlite3_stmt *st;
    int r = topics__stmt(q, T_TOPIC_PUT, &st, err);
    if (r < 0)
        return r;
    int ok = sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_int64(st, 2, created_ms) == SQLITE_OK;
    return store__step_done(store__queue_db(q), st, ok, "create a topic", err);
}

int store_topic_delete(store_queue_t *q, const char *name, mf_error_t *err)
{
    int64_t n = 0;
    int r = topics__run_text(q, T_TOPIC_DELETE, name, "delete a topic", &n, err);
    if (r == 0 && n == 0)
        return mf_error_plain(err, ENOENT, "no topic `%s`", name);
    if (r == 0)
        r = topics__run_text(q, T_TOPIC_DELETE_SUBS, name, "delete a topic's subscriptions", NULL,
                             err);
    return r;
}

static void topics__row(sqlite3_stmt *st, void *item)
{
    store_topic_t *t = item;
    store__copy_text(t->name, sizeof t->name, st, 0);
    t->created_ms = sqlite3_column_int64(st, 1);
}

int store_topic_list(store_queue_t *q, store_topic_t **out, size_t *count, mf_error_t *err)
{
    *out = NULL;
    *count = 0;
    sqlite3_stmt *st;
    int r = topics__stmt(q, T_TOPIC_LIST, &st, err);
    if (r < 0)
        return r;
    void *list = NULL;
    r = store__collect(store__queue_db(q), st, sizeof **out, topics__row, &list, count,
                       "list topics", err);
    *out = list;
    if (r < 0) {
        free(*out);
        *out = NULL;
        *count = 0;
    }
    return r;
}

int store_subscription_put(store_queue_t *q, const store_subscription_t *s, mf_error_t *err)
{
    sqlite3_stmt *st;
    int r = topics__stmt(q, T_SUB_PUT, &st, err);
    if (r < 0)
        return r;
    int ok = sqlite3_bind_text(st, 1, s->id, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_text(st, 2, s->topic, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_text(st, 3, s->function, -1, SQLITE_STATIC) == SQLITE_OK &&
             store__bind_text_or_null(st, 4, s->filter) == SQLITE_OK &&
             sqlite3_bind_int64(st, 5, s->created_ms) == SQLITE_OK;
    return store__step_done(store__queue_db(q), st, ok, "write a subscription", err);
}

int store_subscription_delete(store_queue_t *q, const char *id, mf_error_t *err)
{
    int64_t n = 0;
    int r = topics__run_text(q, T_SUB_DELETE, id, "delete a subscription", &n, err);
    if (r == 0 && n == 0)
        return mf_error_plain(err, ENOENT, "no subscription `%s`", id);
    return r;
}

static void topics__subscription_row(sqlite3_stmt *st, void *item)
{
    store_subscription_t *s = item;
    store__copy_text(s->id, sizeof s->id, st, 0);
    store__copy_text(s->topic, sizeof s->topic, st, 1);
    store__copy_text(s->function, sizeof s->function, st, 2);
    s->filter = store__dup_column(st, 3);
    s->created_ms = sqlite3_column_int64(st, 4);
}

int store_subscription_list(store_queue_t *q, store_subscription_t **out, size_t *count,
                            mf_error_t *err)
{
    *out = NULL;
    *count = 0;
    sqlite3_stmt *st;
    int r = topics__stmt(q, T_SUB_LIST, &st, err);
    if (r < 0)
        return r;
    void *list = NULL;
    r = store__collect(store__queue_db(q), st, sizeof **out, topics__subscription_row, &list,
                       count, "list subscriptions", err);
    *out = list;
    if (r < 0) {
        store_subscription_list_free(*out, *count);
        *out = NULL;
        *count = 0;
    }
    return r;
}

void store_subscription_list_free(store_subscription_t *list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(list[i].filter);
    free(list);
}

int store_subscriptions_forget_function(store_queue_t *q, const char *function, mf_error_t *err)
{
    return topics__run_text(q, T_SUB_FORGET, function, "forget a function's subscriptions", NULL,
                            err);
}

int store_topic_message_put(store_queue_t *q, const store_topic_message_t *m, mf_error_t *err)
{
    sqlite3_stmt *st;
    int r = topics__stmt(q, T_MSG_PUT, &st, err);
    if (r < 0)
        return r;
    int ok = sqlite3_bind_text(st, 1, m->message_id, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_text(st, 2, m->topic, -1, SQLITE_STATIC) == SQLITE_OK &&
             store__bind_text_or_null(st, 3, m->subject) == SQLITE_OK &&
             sqlite3_bind_blob64(st, 4, m->message ? m->message : "", m->message_len,
                                 SQLITE_STATIC) == SQLITE_OK &&
             store__bind_text_or_null(st, 5, m->attributes) == SQLITE_OK &&
             sqlite3_bind_int64(st, 6, m->time_ms) == SQLITE_OK &&
             sqlite3_bind_int(st, 7, m->deliveries) == SQLITE_OK;
    return store__step_done(store__queue_db(q), st, ok, "write a published message", err);
}

int store_topic_messages_prune(store_queue_t *q, int64_t before_ms, int64_t *n, mf_error_t *err)
{
    *n = 0;
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

int store_topic_message_count(store_queue_t *q, const char *topic, int64_t *n, mf_error_t *err)
{
    sqlite3_stmt *st;
    int r = topics__stmt(q, T_MSG_COUNT, &st, err);
    if (r < 0)
        return r;
    *n = 0;
    if (sqlite3_bind_text(st, 1, topic, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW)
        r = store__sqlite_fail(store__queue_db(q), err, "count published messages");
    else
        *n = sqlite3_column_int64(st, 0);
    store__stmt_done(st);
    return r;
}
