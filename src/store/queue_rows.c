/* The queue tables' columns, mapped to and from the structs of
 * store/queue.h, durable.h, schedules.h and topics.h once for both
 * backends (store/queue_rows.h). */
#include "store/queue_rows.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* "" stands for no value in the structs' fixed strings: bound as NULL. */
static const char *or_null(const char *s)
{
    return s[0] ? s : NULL;
}

/* ---- rows into structs ---------------------------------------------------- */

static int by_seq(const void *a, const void *b)
{
    int64_t x = ((const store_qevent_t *)a)->seq, y = ((const store_qevent_t *)b)->seq;
    return (x > y) - (x < y);
}

void store__sort_qevents(store_qevent_t *list, size_t count)
{
    if (count > 1)
        qsort(list, count, sizeof *list, by_seq);
}

int store__no_dead_letter(mf_error_t *err, const char *function, int64_t id)
{
    return mf_error_plain(err, ENOENT, "%s has no dead letter %lld", function, (long long)id);
}

void store__fill_qevent(const store__row_t *row, void *item)
{
    store_qevent_t *ev = item;
    void *c = row->ctx;
    ev->seq = row->int64(c, 0);
    row->copy_text(c, 1, ev->request_id, sizeof ev->request_id);
    row->copy_text(c, 2, ev->function, sizeof ev->function);
    ev->enqueued_ms = row->int64(c, 3);
    ev->next_ms = row->int64(c, 4);
    ev->attempts = (int)row->int64(c, 5);
    ev->fn_errors = (int)row->int64(c, 6);
    ev->running = (int)row->int64(c, 7);
    row->copy_text(c, 8, ev->replay_of, sizeof ev->replay_of);
    row->copy_text(c, 9, ev->traceparent, sizeof ev->traceparent);
    row->copy_text(c, 10, ev->caller_request_id, sizeof ev->caller_request_id);
    ev->call_depth = (int)row->int64(c, 11);
    row->copy_text(c, 12, ev->trigger, sizeof ev->trigger);
    row->copy_text(c, 13, ev->tenant_id, sizeof ev->tenant_id);
}

void store__fill_qevent_body(const store__row_t *row, void *item)
{
    store_qevent_t *ev = item;
    store__fill_qevent(row, ev);
    ev->event = row->dup_blob(row->ctx, 14, &ev->event_len);
}

void store__fill_node(const store__row_t *row, void *item)
{
    store_node_t *n = item;
    void *c = row->ctx;
    row->copy_text(c, 0, n->id, sizeof n->id);
    row->copy_text(c, 1, n->address, sizeof n->address);
    n->started_ms = row->int64(c, 2);
    n->heartbeat_ms = row->int64(c, 3);
    n->left_ms = row->int64(c, 4);
    n->lost = row->int64(c, 5) != 0;
    n->instances = row->int64(c, 6);
}

int store__bind_node(const store__binder_t *b, const store_node_t *n)
{
    void *c = b->ctx;
    return b->text(c, 1, n->id) | b->text(c, 2, n->address) | b->int64(c, 3, n->started_ms) |
           b->int64(c, 4, n->heartbeat_ms) | b->int64(c, 5, n->instances);
}

void store__fill_attempt(const store__row_t *row, void *item)
{
    store_attempt_t *a = item;
    void *c = row->ctx;
    row->copy_text(c, 0, a->request_id, sizeof a->request_id);
    a->attempt = (int)row->int64(c, 1);
    a->start_ms = row->int64(c, 2);
    a->duration_ms = row->real(c, 3);
    row->copy_text(c, 4, a->status, sizeof a->status);
    a->error_type = row->dup_text(c, 5);
    a->error_message = row->dup_text(c, 6);
}

void store__fill_dead_letter(const store__row_t *row, void *item)
{
    store_dead_letter_t *dl = item;
    void *c = row->ctx;
    dl->id = row->int64(c, 0);
    row->copy_text(c, 1, dl->function, sizeof dl->function);
    row->copy_text(c, 2, dl->request_id, sizeof dl->request_id);
    dl->attempts = (int)row->int64(c, 3);
    row->copy_text(c, 4, dl->condition, sizeof dl->condition);
    dl->error_type = row->dup_text(c, 5);
    dl->error_message = row->dup_text(c, 6);
    dl->event = row->dup_blob(c, 7, &dl->event_len);
    dl->time_ms = row->int64(c, 8);
    row->copy_text(c, 9, dl->traceparent, sizeof dl->traceparent);
    row->copy_text(c, 10, dl->trigger, sizeof dl->trigger);
    row->copy_text(c, 11, dl->tenant_id, sizeof dl->tenant_id);
}

void store__fill_exec(const store__row_t *row, void *item)
{
    store_durable_exec_t *e = item;
    void *c = row->ctx;
    row->copy_text(c, 0, e->id, sizeof e->id);
    row->copy_text(c, 1, e->function, sizeof e->function);
    row->copy_text(c, 2, e->name, sizeof e->name);
    row->copy_text(c, 3, e->status, sizeof e->status);
    e->input = row->dup_text(c, 4);
    e->result = row->dup_text(c, 5);
    e->error = row->dup_text(c, 6);
    row->copy_text(c, 7, e->token, sizeof e->token);
    e->seq = row->int64(c, 8);
    e->token_seq = row->int64(c, 9);
    e->in_flight = row->int64(c, 10) != 0;
    e->next_wake_ms = row->int64(c, 11);
    e->start_ms = row->int64(c, 12);
    e->end_ms = row->int64(c, 13);
    e->deadline_ms = row->int64(c, 14);
    e->retention_days = (int)row->int64(c, 15);
    e->invocations = (int)row->int64(c, 16);
    e->failures = (int)row->int64(c, 17);
    row->copy_text(c, 18, e->last_client_token, sizeof e->last_client_token);
    row->copy_text(c, 19, e->last_token_in, sizeof e->last_token_in);
    e->last_response = row->dup_text(c, 20);
    row->copy_text(c, 21, e->parent_id, sizeof e->parent_id);
    row->copy_text(c, 22, e->parent_op, sizeof e->parent_op);
}

void store__fill_schedule(const store__row_t *row, void *item)
{
    store_schedule_t *s = item;
    void *c = row->ctx;
    row->copy_text(c, 0, s->name, sizeof s->name);
    row->copy_text(c, 1, s->expression, sizeof s->expression);
    row->copy_text(c, 2, s->timezone, sizeof s->timezone);
    row->copy_text(c, 3, s->function, sizeof s->function);
    s->input = row->dup_text(c, 4);
    s->enabled = row->int64(c, 5) != 0;
    s->flexible_window_min = (int)row->int64(c, 6);
    s->start_ms = row->int64(c, 7);
    s->created_ms = row->int64(c, 8);
    s->updated_ms = row->int64(c, 9);
    row->copy_text(c, 10, s->tenant_id, sizeof s->tenant_id);
}

void store__fill_fire(const store__row_t *row, void *item)
{
    store_schedule_fire_t *f = item;
    void *c = row->ctx;
    f->due_ms = row->int64(c, 0);
    f->fired_ms = row->int64(c, 1);
    row->copy_text(c, 2, f->request_id, sizeof f->request_id);
    f->error = row->dup_text(c, 3);
    row->copy_text(c, 4, f->schedule, sizeof f->schedule);
}

void store__fill_topic(const store__row_t *row, void *item)
{
    store_topic_t *t = item;
    row->copy_text(row->ctx, 0, t->name, sizeof t->name);
    t->created_ms = row->int64(row->ctx, 1);
}

void store__fill_subscription(const store__row_t *row, void *item)
{
    store_subscription_t *s = item;
    void *c = row->ctx;
    row->copy_text(c, 0, s->id, sizeof s->id);
    row->copy_text(c, 1, s->topic, sizeof s->topic);
    row->copy_text(c, 2, s->function, sizeof s->function);
    s->filter = row->dup_text(c, 3);
    s->created_ms = row->int64(c, 4);
    row->copy_text(c, 5, s->tenant_id, sizeof s->tenant_id);
}

void store__append_op(json_t *arr, const char *text)
{
    json_t *op = text ? json_loads(text, 0, NULL) : NULL;
    if (!json_is_object(op)) {
        json_decref(op);
        op = json_object(); /* kept in place: positions are the order */
    }
    json_array_append_new(arr, op);
}

char *store__op_text(const json_t *op)
{
    return json_dumps(op, JSON_COMPACT | JSON_REAL_PRECISION(15));
}

int store__take_one_exec(store_durable_exec_t *list, size_t n, store_durable_exec_t *out,
                         const char *what, mf_error_t *err)
{
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

void store__count_status(int64_t counts[5], const char *status, int64_t n)
{
    static const char *const names[5] = {"RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"};
    for (int i = 0; i < 5; i++)
        if (status && !strcmp(status, names[i]))
            counts[i] = n;
}

void store__count_waiting(int64_t *timers, int64_t *callbacks, const char *type, int64_t n)
{
    if (type && !strcmp(type, "CALLBACK"))
        *callbacks += n;
    else
        *timers += n;
}

int store__no_callback(mf_error_t *err, const char *callback_id)
{
    return mf_error_plain(err, ENOENT, "no callback `%.64s`", callback_id);
}

int store__no_topic(mf_error_t *err, const char *name)
{
    return mf_error_plain(err, ENOENT, "no topic `%s`", name);
}

int store__no_subscription(mf_error_t *err, const char *id)
{
    return mf_error_plain(err, ENOENT, "no subscription `%s`", id);
}

int store__no_schedule(mf_error_t *err, const char *name)
{
    return mf_error_plain(err, ENOENT, "no schedule named %s", name);
}

int store__fire_refused(mf_error_t *err, const store_schedule_fire_t *f, bool exists)
{
    if (exists)
        return mf_error_plain(err, EEXIST, "schedule %s fired its due time %lld before",
                              f->schedule, (long long)f->due_ms);
    return store__no_schedule(err, f->schedule);
}

/* ---- structs into parameters ---------------------------------------------- */

int store__bind_qevent(const store__binder_t *b, const store_qevent_t *ev)
{
    void *c = b->ctx;
    return b->text(c, 1, ev->request_id) | b->text(c, 2, ev->function) |
           b->blob(c, 3, ev->event ? ev->event : "", ev->event_len) |
           b->int64(c, 4, ev->enqueued_ms) | b->int64(c, 5, ev->next_ms) |
           b->int64(c, 6, ev->attempts) | b->int64(c, 7, ev->fn_errors) |
           b->int64(c, 8, ev->running) | b->text(c, 9, or_null(ev->replay_of)) |
           b->text(c, 10, or_null(ev->traceparent)) |
           b->text(c, 11, or_null(ev->caller_request_id)) | b->int64(c, 12, ev->call_depth) |
           b->text(c, 13, or_null(ev->trigger)) | b->text(c, 14, or_null(ev->owner)) |
           b->text(c, 15, ev->tenant_id);
}

int store__bind_qevent_update(const store__binder_t *b, const store_qevent_t *ev)
{
    void *c = b->ctx;
    return b->int64(c, 1, ev->seq) | b->int64(c, 2, ev->next_ms) |
           b->int64(c, 3, ev->attempts) | b->int64(c, 4, ev->fn_errors) |
           b->int64(c, 5, ev->running);
}

int store__bind_attempt(const store__binder_t *b, const store_attempt_t *a)
{
    void *c = b->ctx;
    return b->text(c, 1, a->request_id) | b->int64(c, 2, a->attempt) |
           b->int64(c, 3, a->start_ms) | b->real(c, 4, a->duration_ms) |
           b->text(c, 5, a->status) | b->text(c, 6, a->error_type) |
           b->text(c, 7, a->error_message);
}

int store__bind_dead_letter(const store__binder_t *b, const store_dead_letter_t *dl,
                            int64_t from_seq)
{
    void *c = b->ctx;
    int r = b->text(c, 1, dl->function) | b->text(c, 2, dl->request_id) |
            b->int64(c, 3, dl->attempts) | b->text(c, 4, dl->condition) |
            b->text(c, 5, dl->error_type) | b->text(c, 6, dl->error_message) |
            b->int64(c, 8, dl->time_ms);
    if (from_seq)
        return r | b->int64(c, 7, from_seq);
    return r | b->blob(c, 7, dl->event ? dl->event : "", dl->event_len) |
           b->text(c, 9, or_null(dl->traceparent)) | b->text(c, 10, or_null(dl->trigger)) |
           b->text(c, 11, dl->tenant_id);
}

int store__bind_exec(const store__binder_t *b, const store_durable_exec_t *e)
{
    void *c = b->ctx;
    return b->text(c, 1, e->id) | b->text(c, 2, e->function) | b->text(c, 3, e->name) |
           b->text(c, 4, e->status) | b->text(c, 5, e->input ? e->input : "{}") |
           b->text(c, 6, e->result) | b->text(c, 7, e->error) | b->text(c, 8, e->token) |
           b->int64(c, 9, e->seq) | b->int64(c, 10, e->token_seq) |
           b->int64(c, 11, e->in_flight) | b->int64(c, 12, e->next_wake_ms) |
           b->int64(c, 13, e->start_ms) | b->int64(c, 14, e->end_ms) |
           b->int64(c, 15, e->deadline_ms) | b->int64(c, 16, e->retention_days) |
           b->int64(c, 17, e->invocations) | b->int64(c, 18, e->failures) |
           b->text(c, 19, e->last_client_token) | b->text(c, 20, e->last_token_in) |
           b->text(c, 21, e->last_response) | b->text(c, 22, e->parent_id) |
           b->text(c, 23, e->parent_op);
}

int store__bind_op(const store__binder_t *b, const char *exec_id, int64_t ord, const json_t *op,
                   const char *text)
{
    void *c = b->ctx;
    const json_t *cb = json_object_get(json_object_get(op, "CallbackDetails"), "CallbackId");
    return b->text(c, 1, exec_id) | b->int64(c, 2, ord) |
           b->text(c, 3, json_string_value(json_object_get(op, "Id")) ?: "") |
           b->text(c, 4, json_string_value(json_object_get(op, "Type")) ?: "") |
           b->text(c, 5, json_string_value(json_object_get(op, "Status")) ?: "") |
           b->text(c, 6, json_string_value(cb)) | b->text(c, 7, text ? text : "{}");
}

int store__bind_schedule(const store__binder_t *b, const store_schedule_t *s)
{
    void *c = b->ctx;
    return b->text(c, 1, s->name) | b->text(c, 2, s->expression) | b->text(c, 3, s->timezone) |
           b->text(c, 4, s->function) | b->text(c, 5, s->input) | b->int64(c, 6, s->enabled) |
           b->int64(c, 7, s->flexible_window_min) | b->int64(c, 8, s->start_ms) |
           b->int64(c, 9, s->created_ms) | b->int64(c, 10, s->updated_ms) |
           b->text(c, 11, s->tenant_id);
}

int store__bind_fire(const store__binder_t *b, const store_schedule_fire_t *f)
{
    void *c = b->ctx;
    return b->text(c, 1, f->schedule) | b->int64(c, 2, f->due_ms) | b->int64(c, 3, f->fired_ms) |
           b->text(c, 4, or_null(f->request_id)) | b->text(c, 5, f->error);
}

int store__bind_subscription(const store__binder_t *b, const store_subscription_t *s)
{
    void *c = b->ctx;
    return b->text(c, 1, s->id) | b->text(c, 2, s->topic) | b->text(c, 3, s->function) |
           b->text(c, 4, s->filter) | b->int64(c, 5, s->created_ms) | b->text(c, 6, s->tenant_id);
}

int store__bind_topic_message(const store__binder_t *b, const store_topic_message_t *m)
{
    void *c = b->ctx;
    return b->text(c, 1, m->message_id) | b->text(c, 2, m->topic) | b->text(c, 3, m->subject) |
           b->blob(c, 4, m->message ? m->message : "", m->message_len) |
           b->text(c, 5, m->attributes) | b->int64(c, 6, m->time_ms) |
           b->int64(c, 7, m->deliveries);
}
