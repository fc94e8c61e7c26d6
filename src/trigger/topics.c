/* Topics: subscriptions in memory, changes through the queue's writer,
 * and publishing as one batch of queued events (see topics.h). */
#include "trigger/topics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/log.h"
#include "core/map.h"
#include "core/xalloc.h"
#include "obs/metrics.h"
#include "store/topics.h"

typedef struct topic {
    char name[TENANT_QNAME_MAX + 1];
    int64_t created_ms;
    topic_subscription_t *subs;
    size_t n, cap;
} topic_t;

struct topics {
    uv_loop_t *loop;
    async_t *async;
    registry_t *registry;
    topics_config_t cfg;
    char region[33];
    map_t topics; /* name → topic_t */
    uint64_t changes; /* made here (topics_changes) */
    uv_timer_t *prune_timer;
    metrics_family_t *m_messages, *m_deliveries;
};

/* ---- memory ------------------------------------------------------------- */

static void sub_clear(topic_subscription_t *s)
{
    free(s->filter);
    filter_policy_free(s->policy);
    s->filter = NULL;
    s->policy = NULL;
}

static void topic_free(topic_t *tp)
{
    for (size_t i = 0; i < tp->n; i++)
        sub_clear(&tp->subs[i]);
    free(tp->subs);
    free(tp);
}

static topic_t *topic_new(topics_t *t, const char *name, int64_t created_ms)
{
    topic_t *tp = xcalloc(1, sizeof *tp);
    snprintf(tp->name, sizeof tp->name, "%s", name);
    tp->created_ms = created_ms;
    map_put(&t->topics, name, tp);
    return tp;
}

/* Adds s (taking its filter and policy). */
static void topic_add_sub(topic_t *tp, topic_subscription_t *s)
{
    if (tp->n == tp->cap) {
        tp->cap = tp->cap ? tp->cap * 2 : 4;
        tp->subs = xrealloc(tp->subs, tp->cap * sizeof *tp->subs);
    }
    tp->subs[tp->n++] = *s;
}

static void topic_remove_sub_at(topic_t *tp, size_t i)
{
    sub_clear(&tp->subs[i]);
    memmove(&tp->subs[i], &tp->subs[i + 1], (tp->n - i - 1) * sizeof *tp->subs);
    tp->n--;
}

static topic_subscription_t *topic_find_sub(topic_t *tp, const char *id, size_t *at)
{
    for (size_t i = 0; i < tp->n; i++)
        if (!strcmp(tp->subs[i].id, id)) {
            if (at)
                *at = i;
            return &tp->subs[i];
        }
    return NULL;
}

bool topics_valid_name(const char *name)
{
    return registry_valid_name(name); /* a qualified name (core/tenant.h) */
}

void topics_arn(const topics_t *t, const char *name, char *out, size_t size)
{
    tenant_arn("sns", t->region, "", name, out, size);
}

static int topics__check_name(const char *name, mf_error_t *err)
{
    if (!topics_valid_name(name))
        return mf_error_plain(err, EINVAL, "topic: a name must match [A-Za-z0-9_-]{1,64}");
    return 0;
}

static int topics__find(topics_t *t, const char *name, topic_t **out, mf_error_t *err)
{
    int r = topics__check_name(name, err);
    if (r < 0)
        return r;
    *out = map_get(&t->topics, name);
    if (!*out)
        return mf_error_plain(err, ENOENT, "no topic `%s`", name);
    return 0;
}

static void topics__view(const topic_t *tp, topic_view_t *out)
{
    *out = (topic_view_t){tp->name, tp->created_ms, tp->subs, tp->n};
}

int topics_get(topics_t *t, const char *name, topic_view_t *out, mf_error_t *err)
{
    topic_t *tp;
    int r = topics__find(t, name, &tp, err);
    if (r == 0)
        topics__view(tp, out);
    return r;
}

static int topics__by_name(const void *a, const void *b)
{
    return strcmp((*(topic_t *const *)a)->name, (*(topic_t *const *)b)->name);
}

void topics_list(topics_t *t, void (*cb)(const topic_view_t *v, void *ud), void *ud)
{
    topic_t **all = xcalloc(t->topics.len + 1, sizeof *all);
    size_t n = 0;
    const char *key;
    void *value;
    for (size_t it = 0; map_next(&t->topics, &it, &key, &value);)
        all[n++] = value;
    qsort(all, n, sizeof *all, topics__by_name);
    for (size_t i = 0; i < n; i++) {
        topic_view_t v;
        topics__view(all[i], &v);
        cb(&v, ud);
    }
    free(all);
}

/* ---- changes ------------------------------------------------------------- */

/* One change, written by the queue's writer. */
typedef enum { OP_CREATE, OP_DELETE, OP_SUBSCRIBE, OP_UNSUBSCRIBE, OP_FORGET, OP_BARRIER } op_t;

typedef struct change {
    topics_t *t;
    op_t op;
    char topic[TENANT_QNAME_MAX + 1];
    char function[TENANT_QNAME_MAX + 1];
    char id[ID_UUID_LEN + 1];
    char *filter;
    char tenant_id[FN_TENANT_ID_MAX + 1];
    int64_t created_ms;
    bool created;
    topics_done_cb cb;
    void *ud;
} change_t;

static int topics__change_apply(void *db, void *arg, mf_error_t *err)
{
    store_queue_t *q = db;
    change_t *c = arg;
    switch (c->op) {
    case OP_CREATE: return store_topic_put(q, c->topic, c->created_ms, err);
    case OP_DELETE: return store_topic_delete(q, c->topic, err);
    case OP_SUBSCRIBE: {
        store_subscription_t s = {.filter = c->filter, .created_ms = c->created_ms};
        snprintf(s.id, sizeof s.id, "%s", c->id);
        snprintf(s.topic, sizeof s.topic, "%s", c->topic);
        snprintf(s.function, sizeof s.function, "%s", c->function);
        snprintf(s.tenant_id, sizeof s.tenant_id, "%s", c->tenant_id);
        return store_subscription_put(q, &s, err);
    }
    case OP_UNSUBSCRIBE: return store_subscription_delete(q, c->id, err);
    case OP_FORGET: return store_subscriptions_forget_function(q, c->function, err);
    case OP_BARRIER: return 0;
    }
    return 0;
}

/* A change that did not reach the disk is taken back from memory, so
 * that memory keeps saying what the file holds. */
static void topics__undo(change_t *c)
{
    topic_t *tp = map_get(&c->t->topics, c->topic);
    size_t at;
    if (c->op == OP_CREATE && tp && tp->created_ms == c->created_ms) {
        map_remove(&c->t->topics, c->topic);
        topic_free(tp);
    } else if (c->op == OP_SUBSCRIBE && tp && topic_find_sub(tp, c->id, &at)) {
        topic_remove_sub_at(tp, at);
    }
    /* A deletion that failed stays done in memory: the topic or
     * subscription comes back at the next start, and deleting it again
     * then works. */
}

static void topics__change_done(void *arg, int r, const mf_error_t *err)
{
    change_t *c = arg;
    if (r < 0) {
        log_error("topics", "writing a change of topic %s: %s", c->topic, err->msg);
        topics__undo(c);
        c->t->changes++;
    }
    if (c->cb)
        c->cb(c->ud, r, c->created, err);
    free(c->filter);
    free(c);
}

static change_t *topics__change(topics_t *t, op_t op, const char *topic, topics_done_cb cb,
                                void *ud)
{
    change_t *c = xcalloc(1, sizeof *c);
    c->t = t;
    c->op = op;
    snprintf(c->topic, sizeof c->topic, "%s", topic);
    c->cb = cb;
    c->ud = ud;
    return c;
}

static int topics__submit(topics_t *t, change_t *c, mf_error_t *err)
{
    /* What a client is answered about is fsync'd; a barrier writes
     * nothing, and forgetting a deleted function's subscriptions can wait
     * for the next durable commit (a start forgets them again). */
    bool durable = c->op != OP_BARRIER && c->op != OP_FORGET;
    int r = async_write(t->async, durable, c->op == OP_BARRIER ? NULL : topics__change_apply,
                        topics__change_done, c, err);
    if (r < 0) {
        free(c->filter);
        free(c);
    }
    return r;
}

int topics_create(topics_t *t, const char *name, topics_done_cb cb, void *ud, mf_error_t *err)
{
    int r = topics__check_name(name, err);
    if (r < 0)
        return r;
    if (map_get(&t->topics, name)) {
        /* Answered once what made it is on disk. */
        return topics__submit(t, topics__change(t, OP_BARRIER, name, cb, ud), err);
    }
    int64_t now = clock_wall_ms();
    change_t *c = topics__change(t, OP_CREATE, name, cb, ud);
    c->created_ms = now;
    c->created = true;
    if ((r = topics__submit(t, c, err)) == 0) {
        topic_new(t, name, now);
        t->changes++;
    }
    return r;
}

int topics_delete(topics_t *t, const char *name, topics_done_cb cb, void *ud, mf_error_t *err)
{
    topic_t *tp;
    int r = topics__find(t, name, &tp, err);
    if (r < 0)
        return r;
    if ((r = topics__submit(t, topics__change(t, OP_DELETE, name, cb, ud), err)) == 0) {
        map_remove(&t->topics, name);
        topic_free(tp);
        t->changes++;
    }
    return r;
}

int topics_subscribe(topics_t *t, const char *topic, const char *local, const json_t *filter,
                     const char *tenant_id, char id[ID_UUID_LEN + 1], topics_done_cb cb,
                     void *ud, mf_error_t *err)
{
    topic_t *tp;
    int r = topics__find(t, topic, &tp, err);
    if (r < 0)
        return r;
    if (!registry_valid_local(local))
        return mf_error_plain(err, EINVAL, "function: must match [A-Za-z0-9_-]{1,64}");
    /* The function is the topic's tenant's (core/tenant.h). */
    char function[TENANT_QNAME_MAX + 1];
    tenant_resolve(topic, local, function, sizeof function);
    fn_t f;
    if ((r = registry_get(t->registry, function, &f, err)) < 0)
        return r;
    r = fn_tenant_id_for(f.name, &f.tenancy, "tenant_id", tenant_id, err);
    fn_clear(&f);
    if (r < 0)
        return r;
    if (!tenant_id)
        tenant_id = "";
    filter_policy_t *policy = NULL;
    char *text = NULL;
    if (filter && !json_is_null(filter)) {
        if ((r = filter_policy_parse(filter, "filter", &policy, err)) < 0)
            return r;
        text = json_dumps(filter, JSON_COMPACT | JSON_SORT_KEYS);
    }
    for (size_t i = 0; i < tp->n; i++) {
        topic_subscription_t *s = &tp->subs[i];
        if (strcmp(s->function, function))
            continue;
        bool same = ((!s->filter && !text) || (s->filter && text && !strcmp(s->filter, text))) &&
                    !strcmp(s->tenant_id, tenant_id);
        free(text);
        filter_policy_free(policy);
        if (!same)
            return mf_error_plain(err, EEXIST,
                                  "%s is subscribed to %s already, with another filter or "
                                  "tenant id: unsubscribe %s first",
                                  function, topic, s->id);
        snprintf(id, ID_UUID_LEN + 1, "%s", s->id);
        return topics__submit(t, topics__change(t, OP_BARRIER, topic, cb, ud), err);
    }
    if (tp->n >= TOPIC_SUBSCRIPTIONS_MAX) {
        free(text);
        filter_policy_free(policy);
        return mf_error_plain(err, EINVAL, "topic %s has %d subscriptions, the most it may have",
                              topic, TOPIC_SUBSCRIPTIONS_MAX);
    }
    change_t *c = topics__change(t, OP_SUBSCRIBE, topic, cb, ud);
    id_uuid4(c->id);
    snprintf(c->function, sizeof c->function, "%s", function);
    c->filter = text ? xstrdup(text) : NULL;
    snprintf(c->tenant_id, sizeof c->tenant_id, "%s", tenant_id);
    c->created_ms = clock_wall_ms();
    c->created = true;
    topic_subscription_t s = {.filter = text, .policy = policy, .created_ms = c->created_ms};
    snprintf(s.tenant_id, sizeof s.tenant_id, "%s", tenant_id);
    snprintf(s.id, sizeof s.id, "%s", c->id);
    snprintf(s.function, sizeof s.function, "%s", function);
    snprintf(id, ID_UUID_LEN + 1, "%s", c->id);
    if ((r = topics__submit(t, c, err)) < 0) {
        sub_clear(&s);
        return r;
    }
    topic_add_sub(tp, &s);
    t->changes++;
    return 0;
}

int topics_unsubscribe(topics_t *t, const char *topic, const char *id, topics_done_cb cb, void *ud,
                       mf_error_t *err)
{
    topic_t *tp;
    int r = topics__find(t, topic, &tp, err);
    if (r < 0)
        return r;
    size_t at;
    if (!topic_find_sub(tp, id, &at)) {
        char shown[48];
        return mf_error_plain(err, ENOENT, "topic %s has no subscription `%s`", topic,
                              mf_error_show(id, 40, shown, sizeof shown));
    }
    change_t *c = topics__change(t, OP_UNSUBSCRIBE, topic, cb, ud);
    snprintf(c->id, sizeof c->id, "%s", id);
    if ((r = topics__submit(t, c, err)) == 0) {
        topic_remove_sub_at(tp, at);
        t->changes++;
    }
    return r;
}

void topics_function_removed(topics_t *t, const char *function, bool stored)
{
    size_t removed = 0;
    const char *key;
    void *value;
    for (size_t it = 0; map_next(&t->topics, &it, &key, &value);) {
        topic_t *tp = value;
        for (size_t i = tp->n; i-- > 0;)
            if (!strcmp(tp->subs[i].function, function)) {
                topic_remove_sub_at(tp, i);
                removed++;
            }
    }
    if (!removed || !stored)
        return;
    t->changes++;
    change_t *c = topics__change(t, OP_FORGET, "", NULL, NULL);
    snprintf(c->function, sizeof c->function, "%s", function);
    mf_error_t err = MF_ERROR_INIT;
    if (topics__submit(t, c, &err) < 0)
        log_warn("topics", "the subscriptions of %s go at the next start: %s", function, err.msg);
}

/* ---- publishing ----------------------------------------------------------- */

typedef struct publish {
    topics_t *t;
    char topic[TENANT_QNAME_MAX + 1];
    store_topic_message_t row; /* its strings point into the fields below */
    char *subject;
    char *message;
    char *attributes;
    topic_delivery_t *deliveries;
    size_t n;
    topics_published_cb cb;
    void *ud;
} publish_t;

static int topics__publish_apply(void *db, void *arg, mf_error_t *err)
{
    publish_t *p = arg;
    return store_topic_message_put(db, &p->row, err);
}

static void topics__published(void *ud, int r, const mf_error_t *err)
{
    publish_t *p = ud;
    if (r == 0) {
        metrics_inc(p->t->m_messages, (const char *[]){p->topic}, 1);
        metrics_inc(p->t->m_deliveries, (const char *[]){p->topic}, (double)p->n);
    }
    p->cb(p->ud, r, p->row.message_id, p->deliveries, p->n, err);
    free(p->subject);
    free(p->message);
    free(p->attributes);
    free(p->deliveries);
    free(p);
}

/* SNS's rules for a subject: printable ASCII, no line breaks, under 100
 * characters, beginning with a letter, digit or punctuation. */
static int topics__check_subject(const char *s, mf_error_t *err)
{
    size_t n = strlen(s);
    if (n == 0 || n > TOPIC_SUBJECT_MAX || s[0] == ' ')
        return mf_error_plain(err, EINVAL,
                              "subject: 1 to %d printable ASCII characters, not beginning with "
                              "a blank",
                              TOPIC_SUBJECT_MAX);
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e)
            return mf_error_plain(err, EINVAL,
                                  "subject: only printable ASCII characters (no line breaks)");
    return 0;
}

/* The event a subscription gets: the Sns part is the same for all, and is
 * serialised once. */
static void topics__event(buf_t *out, const char *sub_arn, const char *sns)
{
    buf_adds(out, "{\"Records\":[{\"EventSource\":\"aws:sns\",\"EventVersion\":\"1.0\","
                  "\"EventSubscriptionArn\":");
    json_quote(out, sub_arn, strlen(sub_arn));
    buf_adds(out, ",\"Sns\":");
    buf_adds(out, sns);
    buf_adds(out, "}]}");
}

int topics_publish(topics_t *t, const char *topic, const topic_message_t *m, topics_published_cb cb,
                   void *ud, mf_error_t *err)
{
    topic_t *tp;
    int r = topics__find(t, topic, &tp, err);
    if (r < 0)
        return r;
    if (m->message_len == 0)
        return mf_error_plain(err, EINVAL, "message: must not be empty");
    if (m->subject && (r = topics__check_subject(m->subject, err)) < 0)
        return r;
    filter_attrs_t *attrs = NULL;
    if ((r = filter_attrs_parse(m->attributes, m->short_attributes, "attributes", &attrs, err)) < 0)
        return r;
    size_t total =
        m->message_len + (m->subject ? strlen(m->subject) : 0) + filter_attrs_bytes(attrs);
    if (total > t->cfg.max_message_bytes) {
        filter_attrs_free(attrs);
        return mf_error_plain(err, EFBIG,
                              "the message is %zu bytes with its subject and attributes; a "
                              "message may be %zu at most",
                              total, t->cfg.max_message_bytes);
    }

    publish_t *p = xcalloc(1, sizeof *p);
    p->t = t;
    snprintf(p->topic, sizeof p->topic, "%s", topic);
    p->cb = cb;
    p->ud = ud;
    /* Time-ordered, as events' ids are: each message's row lands at the
     * end of the table, beside the last one, not on a random page (one
     * page written per message). */
    id_uuid7(p->row.message_id);
    p->row.topic = p->topic;
    p->row.time_ms = clock_wall_ms();
    p->message = xmalloc(m->message_len + 1);
    memcpy(p->message, m->message, m->message_len);
    p->message[m->message_len] = '\0';
    p->row.message = p->message;
    p->row.message_len = m->message_len;
    p->subject = m->subject ? xstrdup(m->subject) : NULL;
    p->row.subject = p->subject;
    json_t *sns_attrs = filter_attrs_sns(attrs);
    if (json_object_size(sns_attrs)) {
        p->attributes = json_dumps(sns_attrs, JSON_COMPACT);
        p->row.attributes = p->attributes;
    }
    json_decref(sns_attrs);

    char arn[160], when[40];
    topics_arn(t, topic, arn, sizeof arn);
    clock_format_iso8601(p->row.time_ms, when, sizeof when);
    /* Lambda sees what SNS sends it; mayfly does not sign messages (they
     * never leave the server), so the signature fields are empty. Written
     * out directly: every publish makes one, and a tree of JSON values to
     * serialise costs more than the rest of accepting it. */
    buf_t sns_text;
    buf_init(&sns_text, m->message_len + 512);
    buf_adds(&sns_text, "{\"Type\":\"Notification\",\"MessageId\":\"");
    buf_adds(&sns_text, p->row.message_id);
    buf_adds(&sns_text, "\",\"TopicArn\":");
    json_quote(&sns_text, arn, strlen(arn));
    buf_adds(&sns_text, ",\"Subject\":");
    if (p->subject)
        json_quote(&sns_text, p->subject, strlen(p->subject));
    else
        buf_adds(&sns_text, "null");
    buf_adds(&sns_text, ",\"Message\":");
    json_quote(&sns_text, p->message, m->message_len);
    buf_adds(&sns_text, ",\"Timestamp\":\"");
    buf_adds(&sns_text, when);
    buf_adds(&sns_text, "\",\"SignatureVersion\":\"1\",\"Signature\":\"\",\"SigningCertUrl\":\"\","
                        "\"UnsubscribeUrl\":\"\",\"MessageAttributes\":");
    buf_adds(&sns_text, p->attributes ? p->attributes : "{}");
    buf_addch(&sns_text, '}');

    async_batch_event_t *events = xcalloc(tp->n ? tp->n : 1, sizeof *events);
    const topic_subscription_t **matched = xcalloc(tp->n ? tp->n : 1, sizeof *matched);
    size_t n = 0;
    for (size_t i = 0; i < tp->n; i++) {
        const topic_subscription_t *s = &tp->subs[i];
        if (s->policy && !filter_policy_matches(s->policy, attrs))
            continue;
        char sub_arn[240];
        snprintf(sub_arn, sizeof sub_arn, "%s:%s", arn, s->id);
        events[n].function = s->function;
        events[n].tenant_id = s->tenant_id[0] ? s->tenant_id : NULL;
        buf_init(&events[n].event, sns_text.len + 256);
        topics__event(&events[n].event, sub_arn, sns_text.data);
        matched[n++] = s;
    }
    buf_release(&sns_text);
    filter_attrs_free(attrs);
    p->row.deliveries = (int)n;
    p->deliveries = xcalloc(n ? n : 1, sizeof *p->deliveries);

    char trigger[STORE_TRIGGER_MAX];
    snprintf(trigger, sizeof trigger, "topic:%s", tenant_local(topic));
    async_enqueue_opts_t opts = {.traceparent = m->traceparent,
                                 .caller_request_id = m->caller_request_id,
                                 .call_depth = m->call_depth,
                                 .trigger = trigger};
    r = async_enqueue_batch(t->async, events, n, &opts, topics__publish_apply, p, topics__published,
                            p, err);
    /* The events' ids are set now; their commit is still to come, and the
     * answer waits for it. */
    for (size_t i = 0; r == 0 && i < n; i++) {
        if (!events[i].request_id[0])
            continue; /* its function is gone */
        topic_delivery_t *d = &p->deliveries[p->n++];
        snprintf(d->subscription, sizeof d->subscription, "%s", matched[i]->id);
        snprintf(d->function, sizeof d->function, "%s", matched[i]->function);
        snprintf(d->request_id, sizeof d->request_id, "%s", events[i].request_id);
    }
    free(matched);
    for (size_t i = 0; i < n; i++)
        buf_release(&events[i].event);
    free(events);
    if (r < 0) {
        free(p->subject);
        free(p->message);
        free(p->attributes);
        free(p->deliveries);
        free(p);
    }
    return r;
}

/* ---- start, pruning, stop ---------------------------------------------------- */

static int topics__prune_apply(void *db, void *arg, mf_error_t *err)
{
    int64_t *before = arg;
    int64_t n = 0;
    int r = store_topic_messages_prune(db, *before, &n, err);
    *before = n;
    return r;
}

static void topics__prune_done(void *arg, int r, const mf_error_t *err)
{
    int64_t *n = arg;
    if (r < 0)
        log_warn("topics", "pruning published messages: %s", err->msg);
    else if (*n)
        log_info("topics", "%lld published messages older than the retention removed",
                 (long long)*n);
    free(n);
}

static void topics__on_prune(uv_timer_t *timer)
{
    topics_t *t = timer->data;
    int64_t *before = xmalloc(sizeof *before);
    *before = clock_wall_ms() - (int64_t)t->cfg.retention_days * 86400 * 1000;
    mf_error_t err = MF_ERROR_INIT;
    if (async_write(t->async, false, topics__prune_apply, topics__prune_done, before, &err) < 0)
        free(before);
}

/* Takes topics and subscriptions as the store has them into memory (the
 * subscriptions' filters taken over). With gone, a subscription of a
 * function the registry does not have is left out and its function put
 * in gone; without, it is kept (another server's function this one may
 * hear of next). */
static void topics__take(topics_t *t, const store_topic_t *list, size_t n,
                         store_subscription_t *subs, size_t ns, map_t *gone)
{
    for (size_t i = 0; i < n; i++)
        topic_new(t, list[i].name, list[i].created_ms);
    for (size_t i = 0; i < ns; i++) {
        store_subscription_t *s = &subs[i];
        topic_t *tp = map_get(&t->topics, s->topic);
        mf_error_t e = MF_ERROR_INIT;
        if (!tp)
            continue;
        if (gone && registry_check(t->registry, s->function, &e) < 0) {
            /* Deleted while the server went down before forgetting it. */
            map_put(gone, s->function, (void *)1);
            continue;
        }
        filter_policy_t *policy = NULL;
        if (s->filter) {
            json_t *doc = json_loads(s->filter, 0, NULL);
            if (!doc || filter_policy_parse(doc, "filter", &policy, &e) < 0) {
                log_warn("topics",
                         "subscription %s of %s to %s has a filter this version "
                         "cannot read; it gets no messages: %s",
                         s->id, s->function, s->topic, e.msg);
                json_decref(doc);
                continue;
            }
            json_decref(doc);
        }
        topic_subscription_t sub = {
            .filter = s->filter, .policy = policy, .created_ms = s->created_ms};
        s->filter = NULL;
        snprintf(sub.id, sizeof sub.id, "%s", s->id);
        snprintf(sub.function, sizeof sub.function, "%s", s->function);
        snprintf(sub.tenant_id, sizeof sub.tenant_id, "%s", s->tenant_id);
        topic_add_sub(tp, &sub);
    }
}

static int topics__load(topics_t *t, mf_error_t *err)
{
    store_queue_t *q = async_store(t->async);
    store_topic_t *list = NULL;
    size_t n = 0;
    int r = store_topic_list(q, &list, &n, err);
    if (r < 0)
        return r;
    store_subscription_t *subs = NULL;
    size_t ns = 0;
    if ((r = store_subscription_list(q, &subs, &ns, err)) < 0) {
        free(list);
        return r;
    }
    map_t gone = MAP_INIT;
    topics__take(t, list, n, subs, ns, &gone);
    free(list);
    store_subscription_list_free(subs, ns);
    const char *key;
    void *value;
    for (size_t it = 0; map_next(&gone, &it, &key, &value);) {
        change_t *c = topics__change(t, OP_FORGET, "", NULL, NULL);
        snprintf(c->function, sizeof c->function, "%s", key);
        mf_error_t e = MF_ERROR_INIT;
        topics__submit(t, c, &e);
    }
    map_release(&gone);
    return 0;
}

uint64_t topics_changes(const topics_t *t)
{
    return t->changes;
}

void topics_replace(topics_t *t, const store_topic_t *list, size_t n,
                    store_subscription_t *subs, size_t ns)
{
    const char *key;
    void *value;
    for (size_t it = 0; map_next(&t->topics, &it, &key, &value);)
        topic_free(value);
    map_clear(&t->topics);
    topics__take(t, list, n, subs, ns, NULL);
}

int topics_open(uv_loop_t *loop, async_t *async, registry_t *registry, const topics_config_t *cfg,
                topics_t **out, mf_error_t *err)
{
    topics_t *t = xcalloc(1, sizeof *t);
    t->loop = loop;
    t->async = async;
    t->registry = registry;
    t->cfg = *cfg;
    snprintf(t->region, sizeof t->region, "%s", cfg->region ? cfg->region : "us-east-1");
    int r = topics__load(t, err);
    if (r < 0) {
        mf_error_wrap(err, "topics");
        t->prune_timer = NULL;
        topics_close(t);
        return r;
    }
    t->m_messages = metrics_family_new(METRICS_COUNTER, "mayfly_topic_messages_total",
                                       "Messages published to a topic",
                                       (const char *[]){"topic", NULL}, NULL, 0);
    t->m_deliveries = metrics_family_new(METRICS_COUNTER, "mayfly_topic_deliveries_total",
                                         "Events queued for a topic's subscribers",
                                         (const char *[]){"topic", NULL}, NULL, 0);
    t->prune_timer = xmalloc(sizeof *t->prune_timer);
    uv_timer_init(loop, t->prune_timer);
    t->prune_timer->data = t;
    uv_timer_start(t->prune_timer, topics__on_prune, 3000, 3600 * 1000);
    *out = t;
    return 0;
}

static void topics__free_handle(uv_handle_t *h)
{
    free(h);
}

void topics_close(topics_t *t)
{
    if (!t)
        return;
    if (t->prune_timer)
        uv_close((uv_handle_t *)t->prune_timer, topics__free_handle);
    const char *key;
    void *value;
    for (size_t it = 0; map_next(&t->topics, &it, &key, &value);)
        topic_free(value);
    map_release(&t->topics);
    free(t);
}
