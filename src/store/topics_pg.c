/* Topics, their subscriptions and published messages on PostgreSQL
 * (store/topics.h's calls, in queue_backend.h's table), on the queue's
 * connection (queue_pg.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "store/queue_backend.h"
#include "store/queue_pg_internal.h"
#include "store/queue_rows.h"

#define P STORE__PG_P

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

const store_pg_stmt_t store__pg_topic_stmts[T_COUNT] = {
    [T_TOPIC_PUT] = {"t_topic_put",
                     "INSERT INTO topics (name, created_ms) VALUES ($1, $2)"
                     " ON CONFLICT (name) DO NOTHING",
                     "ti"},
    [T_TOPIC_DELETE] = {"t_topic_delete", STORE_TOPIC_DELETE(P), "t"},
    [T_TOPIC_DELETE_SUBS] = {"t_topic_delete_subs", STORE_TOPIC_DELETE_SUBS(P), "t"},
    [T_TOPIC_LIST] = {"t_topic_list", STORE_TOPIC_LIST, ""},
    [T_SUB_PUT] = {"t_sub_put", STORE_SUB_PUT(P), "ttttit"},
    [T_SUB_DELETE] = {"t_sub_delete", STORE_SUB_DELETE(P), "t"},
    [T_SUB_LIST] = {"t_sub_list", STORE_SUB_LIST, ""},
    [T_SUB_FORGET] = {"t_sub_forget", STORE_SUB_FORGET(P), "t"},
    [T_MSG_PUT] = {"t_msg_put", STORE_MSG_PUT(P), "tttbtii"},
    [T_MSG_PRUNE] = {"t_msg_prune", STORE_MSG_PRUNE(P), "i"},
    [T_MSG_COUNT] = {"t_msg_count", STORE_MSG_COUNT(P), "t"},
};

const size_t store__pg_topic_nstmts = T_COUNT;

static const char *stmt(int id)
{
    return store__pg_topic_stmts[id].name;
}

static int pg_topics__topic_put(store_queue_t *q, const char *name, int64_t created_ms,
                                mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    b.text(b.ctx, 1, name);
    b.int64(b.ctx, 2, created_ms);
    return store__pg_q_write(q, stmt(T_TOPIC_PUT), &p, NULL, "create a topic", err);
}

static int pg_topics__topic_delete(store_queue_t *q, const char *name, mf_error_t *err)
{
    int64_t n = 0;
    int r = store__pg_q_keyed(q, stmt(T_TOPIC_DELETE), name, &n, "delete a topic", err);
    if (r == 0 && n == 0)
        return store__no_topic(err, name);
    if (r == 0)
        r = store__pg_q_keyed(q, stmt(T_TOPIC_DELETE_SUBS), name, NULL,
                              "delete a topic's subscriptions", err);
    return r;
}

static int pg_topics__topic_list(store_queue_t *q, store_topic_t **out, size_t *count,
                                 mf_error_t *err)
{
    void *list;
    int r = store__pg_q_rows(q, stmt(T_TOPIC_LIST), NULL, sizeof **out, store__fill_topic, &list,
                             count, "list topics", err);
    *out = list;
    return r;
}

static int pg_topics__subscription_put(store_queue_t *q, const store_subscription_t *s,
                                       mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    store__bind_subscription(&b, s);
    return store__pg_q_write(q, stmt(T_SUB_PUT), &p, NULL, "write a subscription", err);
}

static int pg_topics__subscription_delete(store_queue_t *q, const char *id, mf_error_t *err)
{
    int64_t n = 0;
    int r = store__pg_q_keyed(q, stmt(T_SUB_DELETE), id, &n, "delete a subscription", err);
    if (r == 0 && n == 0)
        return store__no_subscription(err, id);
    return r;
}

static int pg_topics__subscription_list(store_queue_t *q, store_subscription_t **out,
                                        size_t *count, mf_error_t *err)
{
    void *list;
    int r = store__pg_q_rows(q, stmt(T_SUB_LIST), NULL, sizeof **out, store__fill_subscription,
                             &list, count, "list subscriptions", err);
    *out = list;
    return r;
}

static int pg_topics__subscriptions_forget_function(store_queue_t *q, const char *function,
                                                    mf_error_t *err)
{
    return store__pg_q_keyed(q, stmt(T_SUB_FORGET), function, NULL,
                             "forget a function's subscriptions", err);
}

static int pg_topics__message_put(store_queue_t *q, const store_topic_message_t *m,
                                  mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    store__bind_topic_message(&b, m);
    return store__pg_q_write(q, stmt(T_MSG_PUT), &p, NULL, "write a published message", err);
}

static int pg_topics__messages_prune(store_queue_t *q, int64_t before_ms, int64_t *n,
                                     mf_error_t *err)
{
    for (;;) {
        store_pg_params_t p = {0};
        store__binder_t b = store__pg_binder(&p);
        b.int64(b.ctx, 1, before_ms);
        int64_t k = 0;
        int r = store__pg_q_write(q, stmt(T_MSG_PRUNE), &p, &k, "prune published messages", err);
        if (r < 0)
            return r;
        *n += k;
        if (k < 1000)
            return 0;
    }
}

static int pg_topics__message_count(store_queue_t *q, const char *topic, int64_t *n,
                                    mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    b.text(b.ctx, 1, topic);
    PGresult *res;
    int r = store__pg_q_run(q, stmt(T_MSG_COUNT), &p, &res, "count published messages", err);
    if (r == 0)
        *n = store__pg_int(res, 0, 0);
    PQclear(res);
    return r;
}

const store__topic_ops_t store__pg_topic_ops = {
    .topic_put = pg_topics__topic_put,
    .topic_delete = pg_topics__topic_delete,
    .topic_list = pg_topics__topic_list,
    .subscription_put = pg_topics__subscription_put,
    .subscription_delete = pg_topics__subscription_delete,
    .subscription_list = pg_topics__subscription_list,
    .subscriptions_forget_function = pg_topics__subscriptions_forget_function,
    .message_put = pg_topics__message_put,
    .messages_prune = pg_topics__messages_prune,
    .message_count = pg_topics__message_count,
};
