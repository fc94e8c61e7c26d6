/* The async queue's public calls (store/queue.h, durable.h, schedules.h,
 * topics.h), handed to the backend that holds the data
 * (store/queue_backend.h), and what is the same whichever holds it: a
 * writer's view of a connection, and freeing what the calls return. */
#include "store/queue.h"

#include <stdlib.h>
#include <string.h>

#include "store/backend.h"
#include "store/queue_backend.h"
#include "store/queue_pg_internal.h"

int store_queue_open(const char *where, store_queue_t **out, mf_error_t *err)
{
    *out = NULL;
    if (store__is_url(where))
        return store__pg_queue_open(where, out, err);
    return store__sqlite_queue_open(where, out, err);
}

void store_queue_close(store_queue_t *q)
{
    if (q)
        q->be->queue->close(q);
}

/* ---- transactions ------------------------------------------------------- */

int store_queue_begin(store_queue_t *q, bool durable, mf_error_t *err)
{
    return q->be->queue->begin(q, durable, err);
}

int store_queue_commit(store_queue_t *q, mf_error_t *err)
{
    return q->be->queue->commit(q, err);
}

void store_queue_rollback(store_queue_t *q)
{
    q->be->queue->rollback(q);
}

int store_queue_savepoint(store_queue_t *q, mf_error_t *err)
{
    return q->be->queue->savepoint(q, err);
}

void store_queue_release(store_queue_t *q, bool keep)
{
    q->be->queue->release(q, keep);
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

int store_queue_writer_db(const char *where, store_writer_db_t *out, mf_error_t *err)
{
    store_queue_t *q;
    int r = store_queue_open(where, &q, err);
    if (r < 0)
        return r;
    *out = (store_writer_db_t){.db = q,
                               .begin = queue__w_begin,
                               .savepoint = queue__w_savepoint,
                               .release = queue__w_release,
                               .commit = queue__w_commit,
                               .close = queue__w_close};
    /* PostgreSQL's connection can go away: the writer makes it again. */
    if (store__is_url(where))
        store__pg_writer_link(store__pg_queue_conn(q), out);
    return 0;
}

/* ---- store/queue.h ------------------------------------------------------ */

int store_qevent_insert(store_queue_t *q, store_qevent_t *ev, mf_error_t *err)
{
    return q->be->queue->qevent_insert(q, ev, err);
}

int store_qevent_update(store_queue_t *q, const store_qevent_t *ev, mf_error_t *err)
{
    return q->be->queue->qevent_update(q, ev, err);
}

int store_qevent_delete(store_queue_t *q, int64_t seq, mf_error_t *err)
{
    return q->be->queue->qevent_delete(q, seq, err);
}

int store_qevent_body(store_queue_t *q, int64_t seq, buf_t *out, mf_error_t *err)
{
    return q->be->queue->qevent_body(q, seq, out, err);
}

int store_qevent_list(store_queue_t *q, store_qevent_t **out, size_t *count, mf_error_t *err)
{
    return q->be->queue->qevent_list(q, out, count, err);
}

bool store_queue_shared(const store_queue_t *q)
{
    return q->be->shared;
}

int store_qevent_take(store_queue_t *q, const char *node, int limit, store_qevent_t **out,
                      size_t *count, mf_error_t *err)
{
    return q->be->queue->qevent_take(q, node, limit, out, count, err);
}

void store_qevent_list_free(store_qevent_t *list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(list[i].event);
    free(list);
}

int store_attempt_put(store_queue_t *q, const store_attempt_t *a, mf_error_t *err)
{
    return q->be->queue->attempt_put(q, a, err);
}

int store_attempt_list(store_queue_t *q, const char *request_id, store_attempt_t **out,
                       size_t *count, mf_error_t *err)
{
    return q->be->queue->attempt_list(q, request_id, out, count, err);
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
    return q->be->queue->dead_letter_put(q, dl, from_seq, err);
}

int store_dead_letter_get(store_queue_t *q, const char *function, int64_t id,
                          store_dead_letter_t *out, mf_error_t *err)
{
    return q->be->queue->dead_letter_get(q, function, id, out, err);
}

int store_dead_letter_delete(store_queue_t *q, int64_t id, mf_error_t *err)
{
    return q->be->queue->dead_letter_delete(q, id, err);
}

int store_dead_letter_list(store_queue_t *q, const char *function, int limit,
                           store_dead_letter_t **out, size_t *count, mf_error_t *err)
{
    return q->be->queue->dead_letter_list(q, function, limit, out, count, err);
}

int store_dead_letter_counts(store_queue_t *q,
                             void (*cb)(const char *function, int64_t n, void *ud), void *ud,
                             mf_error_t *err)
{
    return q->be->queue->dead_letter_counts(q, cb, ud, err);
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
                   int64_t created_ms, int64_t live_since_ms, char existing[37], mf_error_t *err)
{
    return q->be->queue->idem_put(q, function, key, request_id, created_ms, live_since_ms,
                                  existing, err);
}

int store_idem_list(store_queue_t *q, int64_t since_ms,
                    void (*cb)(const char *function, const char *key, const char *request_id,
                               int64_t created_ms, void *ud),
                    void *ud, mf_error_t *err)
{
    return q->be->queue->idem_list(q, since_ms, cb, ud, err);
}

int store_idem_prune(store_queue_t *q, int64_t before_ms, mf_error_t *err)
{
    return q->be->queue->idem_prune(q, before_ms, err);
}

int store_queue_prune(store_queue_t *q, int64_t attempts_before_ms, int64_t dead_before_ms,
                      int64_t *attempts, int64_t *dead, mf_error_t *err)
{
    *attempts = *dead = 0;
    return q->be->queue->prune(q, attempts_before_ms, dead_before_ms, attempts, dead, err);
}

int store_queue_forget_function(store_queue_t *q, const char *function, mf_error_t *err)
{
    return q->be->queue->forget_function(q, function, err);
}

/* ---- store/durable.h ---------------------------------------------------- */

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
    return q->be->durable->exec_put(q, e, err);
}

int store_durable_exec_get(store_queue_t *q, const char *id, store_durable_exec_t *out,
                           mf_error_t *err)
{
    return q->be->durable->exec_get(q, id, out, err);
}

int store_durable_exec_by_name(store_queue_t *q, const char *function, const char *name,
                               store_durable_exec_t *out, mf_error_t *err)
{
    return q->be->durable->exec_by_name(q, function, name, out, err);
}

int store_durable_exec_list(store_queue_t *q, const char *function, const char *status, int limit,
                            store_durable_exec_t **out, size_t *count, mf_error_t *err)
{
    return q->be->durable->exec_list(q, function, status, limit, out, count, err);
}

int store_durable_exec_running(store_queue_t *q, store_durable_exec_t **out, size_t *count,
                               mf_error_t *err)
{
    return store_durable_exec_list(q, NULL, "RUNNING", -1, out, count, err);
}

int store_durable_ops_get(store_queue_t *q, const char *exec_id, json_t **out, mf_error_t *err)
{
    *out = NULL;
    return q->be->durable->ops_get(q, exec_id, out, err);
}

int store_durable_op_put(store_queue_t *q, const char *exec_id, int64_t ord, const json_t *op,
                         mf_error_t *err)
{
    return q->be->durable->op_put(q, exec_id, ord, op, err);
}

int store_durable_callback_find(store_queue_t *q, const char *callback_id, char exec_id[37],
                                mf_error_t *err)
{
    return q->be->durable->callback_find(q, callback_id, exec_id, err);
}

int store_durable_counts(store_queue_t *q, int64_t counts[5], int64_t *timers, int64_t *callbacks,
                         mf_error_t *err)
{
    memset(counts, 0, 5 * sizeof counts[0]);
    *timers = *callbacks = 0;
    return q->be->durable->counts(q, counts, timers, callbacks, err);
}

int store_durable_prune(store_queue_t *q, int64_t now_ms, int64_t *n, mf_error_t *err)
{
    *n = 0;
    return q->be->durable->prune(q, now_ms, n, err);
}

int store_durable_forget_function(store_queue_t *q, const char *function, mf_error_t *err)
{
    return q->be->durable->forget_function(q, function, err);
}

/* ---- store/schedules.h -------------------------------------------------- */

int store_schedule_put(store_queue_t *q, const store_schedule_t *s, mf_error_t *err)
{
    return q->be->schedules->put(q, s, err);
}

int store_schedule_delete(store_queue_t *q, const char *name, mf_error_t *err)
{
    return q->be->schedules->del(q, name, err);
}

int store_schedule_list(store_queue_t *q, store_schedule_t **out, size_t *count, mf_error_t *err)
{
    return q->be->schedules->list(q, out, count, err);
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
    return q->be->schedules->fire_put(q, f, err);
}

int store_schedule_fire_list(store_queue_t *q, const char *name, int limit,
                             store_schedule_fire_t **out, size_t *count, mf_error_t *err)
{
    return q->be->schedules->fire_list(q, name, limit, out, count, err);
}

void store_schedule_fire_list_free(store_schedule_fire_t *list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(list[i].error);
    free(list);
}

/* ---- store/topics.h ----------------------------------------------------- */

int store_topic_put(store_queue_t *q, const char *name, int64_t created_ms, mf_error_t *err)
{
    return q->be->topics->topic_put(q, name, created_ms, err);
}

int store_topic_delete(store_queue_t *q, const char *name, mf_error_t *err)
{
    return q->be->topics->topic_delete(q, name, err);
}

int store_topic_list(store_queue_t *q, store_topic_t **out, size_t *count, mf_error_t *err)
{
    return q->be->topics->topic_list(q, out, count, err);
}

int store_subscription_put(store_queue_t *q, const store_subscription_t *s, mf_error_t *err)
{
    return q->be->topics->subscription_put(q, s, err);
}

int store_subscription_delete(store_queue_t *q, const char *id, mf_error_t *err)
{
    return q->be->topics->subscription_delete(q, id, err);
}

int store_subscription_list(store_queue_t *q, store_subscription_t **out, size_t *count,
                            mf_error_t *err)
{
    return q->be->topics->subscription_list(q, out, count, err);
}

void store_subscription_list_free(store_subscription_t *list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(list[i].filter);
    free(list);
}

int store_subscriptions_forget_function(store_queue_t *q, const char *function, mf_error_t *err)
{
    return q->be->topics->subscriptions_forget_function(q, function, err);
}

int store_topic_message_put(store_queue_t *q, const store_topic_message_t *m, mf_error_t *err)
{
    return q->be->topics->message_put(q, m, err);
}

int store_topic_messages_prune(store_queue_t *q, int64_t before_ms, int64_t *n, mf_error_t *err)
{
    *n = 0;
    return q->be->topics->messages_prune(q, before_ms, n, err);
}

int store_topic_message_count(store_queue_t *q, const char *topic, int64_t *n, mf_error_t *err)
{
    *n = 0;
    return q->be->topics->message_count(q, topic, n, err);
}

/* ---- nodes ---------------------------------------------------------------- */

static int node_run(store_queue_t *q, store__node_stmt_t st, const char *id, int64_t i1,
                    int64_t i2, int64_t *one, const char *what, mf_error_t *err)
{
    return q->be->nodes->run(q, st, id, i1, i2, one, what, err);
}

/* One statement after another, each safe to run again: of two nodes that
 * find a third gone at once, one marks it (the other's UPDATE waits for
 * the row, reads it again and passes over it), and a beat that fails
 * between marking a node and putting its events back has the next beat,
 * of any node, put back the events of every node that left. */
int store_node_beat(store_queue_t *q, const store_node_t *n, int64_t lease_ms, int *alive,
                    bool *was_lost, mf_error_t *err)
{
    int64_t left = 0, count = 0, since = n->heartbeat_ms - lease_ms;
    int r = q->be->nodes->upsert(q, n, &left, err);
    if (r == 0 && left)
        r = node_run(q, STORE__NODE_BACK, n->id, 0, 0, NULL, "mark this node back", err);
    if (r == 0)
        r = node_run(q, STORE__NODE_EXPIRE, n->id, since, n->heartbeat_ms, NULL,
                     "find nodes gone", err);
    if (r == 0)
        r = node_run(q, STORE__NODE_RELEASE_GONE, NULL, 0, 0, NULL,
                     "put the events of nodes gone back in the pool", err);
    if (r == 0)
        r = node_run(q, STORE__NODE_ALIVE, NULL, since, 0, &count, "count nodes", err);
    if (r < 0)
        return r;
    if (alive)
        *alive = (int)count;
    if (was_lost)
        *was_lost = left != 0;
    return 0;
}

int store_node_leave(store_queue_t *q, const char *id, int64_t now_ms, mf_error_t *err)
{
    int r = node_run(q, STORE__NODE_RELEASE, id, 0, 0, NULL,
                     "put this node's events back in the pool", err);
    if (r == 0)
        r = node_run(q, STORE__NODE_LEAVE, id, now_ms, 0, NULL, "mark this node stopped", err);
    return r;
}

int store_node_list(store_queue_t *q, store_node_t **out, size_t *count, mf_error_t *err)
{
    return q->be->nodes->list(q, out, count, err);
}

int store_node_prune(store_queue_t *q, int64_t before_ms, mf_error_t *err)
{
    return node_run(q, STORE__NODE_PRUNE, NULL, before_ms, 0, NULL, "forget nodes that left",
                    err);
}
