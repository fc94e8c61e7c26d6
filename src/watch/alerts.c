/* The server's alert rules (watch/alerts.h): the live set, evaluation,
 * and delivery of the outbox. Everything here runs on the loop's thread
 * but the webhook requests (the thread pool, libcurl) and the store jobs
 * (the writer's thread). */
#include "watch/alerts.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/log.h"
#include "core/map.h"
#include "core/xalloc.h"
#include "invoke/async.h"
#include "meter/budget.h"
#include "obs/metrics.h"
#include "registry/registry.h"
#include "store/alerts.h"
#include "store/budgets.h"
#include "trigger/topics.h"

#define DELIVER_TICK_MS 250
#define CLAIM_LIMIT 8
/* Notifications on their way at once: a webhook holds one of libuv's
 * thread pool's threads (4 by default, shared with name resolution and
 * file work) for up to ALERTS_WEBHOOK_TIMEOUT_MS, so never more than half. */
#define INFLIGHT_MAX 2
#define KEEP_DONE_MS (7LL * 24 * 3600 * 1000)
/* A shared store: rules other servers put or deleted are read this often. */
#define REFRESH_MS 5000

typedef struct series {
    struct series *next;
    char function[TENANT_QNAME_MAX + 1]; /* qualified; "" for a budget's */
    alert_series_t st;
} series_t;

typedef struct rule_live {
    struct rule_live *next;
    alert_rule_t cfg;
    char key[TENANT_QNAME_MAX + 1];
    series_t *series;
    json_t *history; /* newest first */
    int64_t created_ms, updated_ms;
} rule_live_t;

struct alerts {
    uv_loop_t *loop;
    store_writer_t *writer;
    registry_t *registry;
    async_t *async;
    topics_t *topics;
    budgets_t *budgets;
    alerts_config_t cfg;
    char node[128];
    char url[300];
    rule_live_t *head;
    map_t windows; /* qualified function name → alert_window_t */
    uv_timer_t *eval, *deliver;
    int64_t next_due_ms; /* INT64_MAX: nothing known to be due */
    int64_t last_sweep_ms;
    bool claiming;
    bool refreshing;
    int64_t last_refresh_ms;
    uint64_t changes; /* puts and deletes made here: a read asked for before one is stale */
    int inflight;     /* notifications on their way (webhooks, events, publishes) */
    int work;         /* webhooks on the thread pool */
    bool stopping, closing;
    atomic_bool abort_work;
};

static metrics_family_t *m_alerts, *m_notes;

/* ---- small pieces -------------------------------------------------------- */

static void note_due(alerts_t *a, int64_t at)
{
    if (at < a->next_due_ms)
        a->next_due_ms = at;
}

static rule_live_t *find(alerts_t *a, const char *key)
{
    for (rule_live_t *l = a->head; l; l = l->next)
        if (!strcmp(l->key, key))
            return l;
    return NULL;
}

static void rule_key(const alert_rule_t *r, char *out, size_t size)
{
    if (!tenant_qualify(r->tenant, r->name, out, size))
        snprintf(out, size, "%s", r->name);
}

static void series_free(series_t *s)
{
    while (s) {
        series_t *n = s->next;
        free(s);
        s = n;
    }
}

static void live_free(rule_live_t *l)
{
    series_free(l->series);
    json_decref(l->history);
    free(l);
}

static series_t *series_get(rule_live_t *l, const char *function, bool make)
{
    for (series_t *s = l->series; s; s = s->next)
        if (!strcmp(s->function, function))
            return s;
    if (!make)
        return NULL;
    series_t *s = xcalloc(1, sizeof *s);
    snprintf(s->function, sizeof s->function, "%s", function);
    s->next = l->series;
    l->series = s;
    return s;
}

static bool covers(const alert_rule_t *r, const char *qname)
{
    if (r->metric == ALERT_BUDGET_USED || !tenant_owns(r->tenant, qname))
        return false;
    return !strcmp(r->function, "*") || !strcmp(tenant_local(qname), r->function);
}

static json_t *json_time(int64_t ms)
{
    if (ms <= 0)
        return json_null();
    char t[40];
    clock_format_iso8601(ms, t, sizeof t);
    return json_string(t);
}

/* ---- the state, as the store keeps it ------------------------------------ */

static char *state_dump(const rule_live_t *l)
{
    json_t *series = json_array();
    for (series_t *s = l->series; s; s = s->next)
        json_array_append_new(
            series, json_pack("{ss ss sI sI sI sI sb sf}", "function", s->function, "state",
                              alert_state_name(s->st.state), "since", (json_int_t)s->st.since_ms,
                              "active", (json_int_t)s->st.active_ms, "fired",
                              (json_int_t)s->st.fired_ms, "resolved", (json_int_t)s->st.resolved_ms,
                              "has_value", s->st.has_value, "value", s->st.value));
    json_t *doc = json_pack("{so sO}", "series", series, "history", l->history);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}

static void state_load(rule_live_t *l, const char *text)
{
    json_t *doc = text ? json_loads(text, 0, NULL) : NULL;
    json_t *hist = json_object_get(doc, "history");
    if (json_is_array(hist)) {
        json_decref(l->history);
        l->history = json_incref(hist);
    }
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(doc, "series"), i, v)
    {
        const char *fn = json_string_value(json_object_get(v, "function"));
        int st = alert_state_of(json_string_value(json_object_get(v, "state")));
        if (!fn || st < 0)
            continue;
        series_t *s = series_get(l, fn, true);
        s->st.state = st;
        s->st.since_ms = json_integer_value(json_object_get(v, "since"));
        s->st.active_ms = json_integer_value(json_object_get(v, "active"));
        s->st.fired_ms = json_integer_value(json_object_get(v, "fired"));
        s->st.resolved_ms = json_integer_value(json_object_get(v, "resolved"));
        s->st.has_value = json_is_true(json_object_get(v, "has_value"));
        s->st.value = json_number_value(json_object_get(v, "value"));
    }
    json_decref(doc);
}

/* ---- notifications ------------------------------------------------------ */

typedef struct notes {
    store_alert_note_t *list;
    size_t n;
} notes_t;

static void notes_add(notes_t *ns, const char *tenant, const notify_list_t *to, const json_t *doc,
                      int64_t now)
{
    if (!to->n)
        return;
    char *body = json_dumps(doc, JSON_COMPACT);
    ns->list = xrealloc(ns->list, (ns->n + to->n) * sizeof *ns->list);
    for (size_t i = 0; i < to->n; i++) {
        store_alert_note_t *n = &ns->list[ns->n++];
        memset(n, 0, sizeof *n);
        n->created_ms = now;
        snprintf(n->tenant, sizeof n->tenant, "%s", tenant);
        snprintf(n->kind, sizeof n->kind, "%s", notify_kind_name(to->t[i].kind));
        n->target = xstrdup(to->t[i].to);
        n->body = xstrdup(body);
    }
    free(body);
}

static int notes_write(void *db, notes_t *ns, mf_error_t *err)
{
    for (size_t i = 0; i < ns->n; i++) {
        int r = store_alert_note_add(db, &ns->list[i], err);
        if (r < 0)
            return r;
    }
    return 0;
}

static void value_text(bool has, double v, char *out, size_t size)
{
    if (!has)
        snprintf(out, size, "no data");
    else
        snprintf(out, size, "%.6g", v);
}

/* The document of a series' firing or resolving. */
static json_t *rule_document(alerts_t *a, const rule_live_t *l, const series_t *s)
{
    const alert_rule_t *r = &l->cfg;
    bool firing = s->st.state == ALERT_FIRING;
    json_t *labels = json_pack("{ss ss ss ss}", "alertname", r->name, "tenant", r->tenant, "metric",
                               alert_metric_name(r->metric), "severity", r->severity);
    const char *subject;
    if (r->metric == ALERT_BUDGET_USED) {
        json_object_set_new(labels, "budget", json_string(r->budget));
        subject = r->budget;
    } else {
        subject = tenant_local(s->function);
        json_object_set_new(labels, "function", json_string(subject));
    }
    char value[40], summary[300], description[600];
    value_text(s->st.has_value, s->st.value, value, sizeof value);
    if (r->metric == ALERT_ABSENT) {
        snprintf(summary, sizeof summary, "%s: %s %s", r->name, subject,
                 firing ? "had no successful call" : "succeeds again");
        snprintf(description, sizeof description,
                 "%s had %s successful call(s) in the last %u s (fires at none, for %u s)", subject,
                 value, r->window_s, r->for_s);
    } else {
        snprintf(summary, sizeof summary, "%s: %s of %s is %s (%s %g)", r->name,
                 alert_metric_name(r->metric), subject, value, firing ? "breaching" : "resolved,",
                 r->threshold);
        snprintf(description, sizeof description,
                 "%s of %s over the last %u s is %s; the rule fires when it is %c %g for %u s",
                 alert_metric_name(r->metric), subject, r->window_s, value, r->op, r->threshold,
                 r->for_s);
    }
    char gen[512];
    snprintf(gen, sizeof gen, "%s/v1/alerts/%s?tenant=%s", a->url, r->name, r->tenant);
    alert_notice_t n = {.status = firing ? "firing" : "resolved",
                        .labels = labels,
                        .summary = summary,
                        .description = description,
                        .starts_ms = s->st.fired_ms,
                        .ends_ms = firing ? 0 : s->st.resolved_ms,
                        .generator_url = gen};
    return alert_document(&n, "mayfly", a->url);
}

/* ---- transitions reach the store ---------------------------------------- */

typedef struct state_job {
    alerts_t *a;
    char key[TENANT_QNAME_MAX + 1];
    char *state;
    notes_t notes;
} state_job_t;

static int state_apply(void *db, void *arg, mf_error_t *err)
{
    state_job_t *j = arg;
    int r = store_alert_state_put(db, j->key, j->state, err);
    if (r == -ENOENT)
        return 0; /* deleted meanwhile: nothing to tell */
    return r < 0 ? r : notes_write(db, &j->notes, err);
}

static void state_done(void *arg, int r, const mf_error_t *err)
{
    state_job_t *j = arg;
    if (r < 0)
        log_error("alerts", "keeping the state of the rule %s: %s", tenant_local(j->key), err->msg);
    else if (j->notes.n)
        note_due(j->a, 0);
    free(j->state);
    for (size_t i = 0; i < j->notes.n; i++) {
        free(j->notes.list[i].target);
        free(j->notes.list[i].body);
    }
    free(j->notes.list);
    free(j);
}

/* ---- evaluation ---------------------------------------------------------- */

static alert_window_t *window_of(alerts_t *a, const char *function, bool make, int64_t now)
{
    alert_window_t *w = map_get(&a->windows, function);
    if (!w && make) {
        w = xmalloc(sizeof *w);
        alert_window_init(w, now);
        map_put(&a->windows, function, w);
    }
    return w;
}

static bool series_value(alerts_t *a, const rule_live_t *l, const series_t *s, int64_t now,
                         double *out)
{
    const alert_rule_t *r = &l->cfg;
    if (r->metric == ALERT_BUDGET_USED)
        return a->budgets && budgets_used(a->budgets, r->tenant, r->budget, out);
    if (!alert_metric_windowed(r->metric)) {
        if (!a->async)
            return false;
        async_fn_stats_t st;
        async_function_stats(a->async, s->function, &st);
        *out = r->metric == ALERT_ASYNC_QUEUE_DEPTH    ? (double)st.depth
               : r->metric == ALERT_ASYNC_OLDEST_AGE_S ? st.oldest_age_s
                                                       : (double)st.dead_letters;
        return true;
    }
    alert_window_t *w = window_of(a, s->function, true, now);
    alert_counts_t c;
    alert_window_sum(w, now, r->window_s, &c);
    return alert_windowed_value(r->metric, &c, out);
}

static void history_add(rule_live_t *l, const series_t *s, int from, int64_t now)
{
    json_t *e = json_pack("{so so ss ss so}", "time", json_time(now), "function",
                          s->function[0] ? json_string(tenant_local(s->function)) : json_null(),
                          "from", alert_state_name(from), "to", alert_state_name(s->st.state),
                          "value", s->st.has_value ? json_real(s->st.value) : json_null());
    json_array_insert_new(l->history, 0, e);
    while (json_array_size(l->history) > ALERTS_HISTORY_MAX)
        json_array_remove(l->history, json_array_size(l->history) - 1);
}

static void evaluate(alerts_t *a, rule_live_t *l, int64_t now, fn_t *fns, size_t nfns)
{
    const alert_rule_t *r = &l->cfg;
    if (r->metric == ALERT_BUDGET_USED) {
        series_get(l, "", true);
    } else if (!strcmp(r->function, "*")) {
        for (size_t i = 0; i < nfns; i++)
            if (tenant_owns(r->tenant, fns[i].name))
                series_get(l, fns[i].name, true);
    } else {
        char q[TENANT_QNAME_MAX + 1];
        if (tenant_qualify(r->tenant, r->function, q, sizeof q))
            series_get(l, q, true);
    }
    notes_t notes = {0};
    bool changed = false;
    for (series_t *s = l->series; s; s = s->next) {
        double v = 0;
        bool has = series_value(a, l, s, now, &v);
        int from = s->st.state, to;
        while ((to = alert_series_step(&s->st, r, has, v, now)) >= 0) {
            changed = true;
            history_add(l, s, from, now);
            log_info("alerts", "rule %s of tenant %s%s%s: %s → %s", r->name, r->tenant,
                     s->function[0] ? ", function " : "",
                     s->function[0] ? tenant_local(s->function) : "", alert_state_name(from),
                     alert_state_name(to));
            if (to == ALERT_FIRING || to == ALERT_RESOLVED) {
                json_t *doc = rule_document(a, l, s);
                notes_add(&notes, r->tenant, &r->notify, doc, now);
                json_decref(doc);
            }
            from = to;
        }
    }
    if (!changed)
        return;
    state_job_t *j = xcalloc(1, sizeof *j);
    j->a = a;
    snprintf(j->key, sizeof j->key, "%s", l->key);
    j->state = state_dump(l);
    j->notes = notes;
    store_writer_submit(a->writer, true, state_apply, state_done, j);
}

/* The windows of functions no rule covers any longer (a rule deleted or
 * changed, a function gone) go. */
static void drop_windows(alerts_t *a)
{
    size_t n = 0, k = 0;
    const char *key;
    void *value;
    for (size_t it = 0; map_next(&a->windows, &it, &key, &value);)
        n++;
    char **gone = xcalloc(n + 1, sizeof *gone);
    for (size_t it = 0; map_next(&a->windows, &it, &key, &value);) {
        bool wanted = false;
        for (rule_live_t *l = a->head; l && !wanted; l = l->next)
            wanted = alert_metric_windowed(l->cfg.metric) && covers(&l->cfg, key);
        if (!wanted)
            gone[k++] = xstrdup(key);
    }
    for (size_t i = 0; i < k; i++) {
        free(map_remove(&a->windows, gone[i]));
        free(gone[i]);
    }
    free(gone);
}

static void on_eval(uv_timer_t *t)
{
    alerts_t *a = t->data;
    if (a->stopping)
        return;
    drop_windows(a);
    if (!a->head)
        return;
    int64_t now = clock_wall_ms();
    fn_t *fns = NULL;
    size_t nfns = 0;
    bool every = false;
    for (rule_live_t *l = a->head; l && !every; l = l->next)
        every = !strcmp(l->cfg.function, "*");
    mf_error_t err = MF_ERROR_INIT;
    if (every && a->registry && registry_list(a->registry, &fns, &nfns, &err) < 0)
        log_warn("alerts", "listing the functions: %s", err.msg);
    for (rule_live_t *l = a->head; l; l = l->next)
        evaluate(a, l, now, fns, nfns);
    fn_list_free(fns, nfns);
}

void alerts_observe(alerts_t *a, const store_record_t *rec)
{
    if (!a || !a->head)
        return;
    int64_t now = clock_wall_ms();
    alert_window_t *w = map_get(&a->windows, rec->function);
    if (!w) {
        bool wanted = false;
        for (rule_live_t *l = a->head; l && !wanted; l = l->next)
            wanted = alert_metric_windowed(l->cfg.metric) && covers(&l->cfg, rec->function);
        if (!wanted)
            return;
        w = window_of(a, rec->function, true, now);
    }
    alert_window_add(w, now, rec->status, rec->duration_ms, rec->cold_start != 0);
}

/* ---- delivery ------------------------------------------------------------ */

typedef struct delivery {
    alerts_t *a;
    store_alert_note_t note;
    int status;      /* a webhook's HTTP status, 0 when none came */
    char error[600]; /* why it failed, "" when it did not */
    bool ok;
    char qname[TENANT_QNAME_MAX + 1];
} delivery_t;

typedef struct outcome_job {
    alerts_t *a;
    int64_t id;
    bool ok, give_up;
    int attempts;
    int64_t next_ms;
    char error[600];
} outcome_job_t;

static int outcome_apply(void *db, void *arg, mf_error_t *err)
{
    outcome_job_t *j = arg;
    int64_t now = clock_wall_ms();
    if (j->ok || j->give_up)
        return store_alert_note_finish(db, j->id, j->ok, now, j->ok ? NULL : j->error, err);
    return store_alert_note_retry(db, j->id, j->attempts, j->next_ms, j->error, err);
}

static void outcome_done(void *arg, int r, const mf_error_t *err)
{
    outcome_job_t *j = arg;
    if (r < 0)
        log_error("alerts", "recording a notification's outcome: %s", err->msg);
    else if (!j->ok && !j->give_up)
        note_due(j->a, j->next_ms);
    free(j);
}

static void delivery_end(delivery_t *d)
{
    alerts_t *a = d->a;
    a->inflight--;
    const char *labels[] = {d->note.kind, d->ok ? "delivered"
                                          : d->note.attempts + 1 >= ALERTS_ATTEMPTS_MAX
                                              ? "failed"
                                              : "retried"};
    if (!a->stopping) {
        metrics_inc(m_notes, labels, 1);
        outcome_job_t *j = xcalloc(1, sizeof *j);
        j->a = a;
        j->id = d->note.id;
        j->ok = d->ok;
        j->attempts = d->note.attempts + 1;
        j->give_up = !d->ok && j->attempts >= ALERTS_ATTEMPTS_MAX;
        double delay = (double)a->cfg.retry_base_ms * pow(2.0, d->note.attempts);
        j->next_ms = clock_wall_ms() + (int64_t)fmin(delay, 24.0 * 3600 * 1000);
        snprintf(j->error, sizeof j->error, "%s", d->error);
        if (!d->ok)
            log_warn("alerts", "notification %lld to the %s %s: %s%s", (long long)d->note.id,
                     d->note.kind, d->note.target, d->error,
                     j->give_up ? " (given up)" : " (tried again later)");
        store_writer_submit(a->writer, false, outcome_apply, outcome_done, j);
    }
    free(d->note.target);
    free(d->note.body);
    free(d);
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    return size * n;
}

static int progress(void *ud, curl_off_t a1, curl_off_t a2, curl_off_t a3, curl_off_t a4)
{
    alerts_t *a = ud;
    return atomic_load(&a->abort_work) ? 1 : 0;
}

static void webhook_work(uv_work_t *w)
{
    delivery_t *d = w->data;
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(d->error, sizeof d->error, "no HTTP client");
        return;
    }
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, "User-Agent: mayfly-alerts");
    curl_easy_setopt(c, CURLOPT_URL, d->note.target);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, d->note.body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(d->note.body));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)ALERTS_WEBHOOK_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)ALERTS_WEBHOOK_TIMEOUT_MS / 2);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, d->a);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    d->status = (int)status;
    if (rc != CURLE_OK)
        snprintf(d->error, sizeof d->error, "%s", curl_easy_strerror(rc));
    else if (status < 200 || status > 299)
        snprintf(d->error, sizeof d->error, "the receiver answered %ld", status);
    else
        d->ok = true;
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

static void alerts_free(alerts_t *a);

static void webhook_done(uv_work_t *w, int status)
{
    delivery_t *d = w->data;
    alerts_t *a = d->a;
    free(w);
    a->work--;
    delivery_end(d);
    if (a->closing && !a->work)
        alerts_free(a);
}

static void event_accepted(void *ud, int r, const char *request_id, bool replay,
                           const mf_error_t *err)
{
    delivery_t *d = ud;
    d->ok = r == 0;
    if (r < 0)
        snprintf(d->error, sizeof d->error, "%s", err->msg);
    delivery_end(d);
}

static void published(void *ud, int r, const char *message_id, const topic_delivery_t *deliveries,
                      size_t n, const mf_error_t *err)
{
    event_accepted(ud, r, message_id, false, err);
}

static void deliver(alerts_t *a, store_alert_note_t *n)
{
    delivery_t *d = xcalloc(1, sizeof *d);
    d->a = a;
    d->note = *n;
    n->target = n->body = NULL; /* taken */
    a->inflight++;
    mf_error_t err = MF_ERROR_INIT;
    int kind = notify_kind_of(d->note.kind);
    if (kind == NOTIFY_WEBHOOK) {
        uv_work_t *w = xcalloc(1, sizeof *w);
        w->data = d;
        a->work++;
        uv_queue_work(a->loop, w, webhook_work, webhook_done);
        return;
    }
    if (!tenant_qualify(d->note.tenant, d->note.target, d->qname, sizeof d->qname)) {
        snprintf(d->error, sizeof d->error, "%s: not a name", d->note.target);
        delivery_end(d);
        return;
    }
    int r;
    if (kind == NOTIFY_FUNCTION) {
        buf_t body = BUF_INIT;
        buf_adds(&body, d->note.body);
        r = a->async ? async_enqueue(a->async, d->qname, &body, NULL, event_accepted, d, &err)
                     : mf_error_plain(&err, ENOTSUP, "no async queue");
        buf_release(&body);
    } else if (kind == NOTIFY_TOPIC) {
        topic_message_t m = {.message = d->note.body,
                             .message_len = strlen(d->note.body),
                             .subject = "mayfly alert"};
        r = a->topics ? topics_publish(a->topics, d->qname, &m, published, d, &err)
                      : mf_error_plain(&err, ENOTSUP, "no topics");
    } else {
        r = mf_error_plain(&err, EINVAL, "unknown target kind %s", d->note.kind);
    }
    if (r < 0) {
        snprintf(d->error, sizeof d->error, "%s", err.msg);
        tenant_strip(d->error);
        delivery_end(d);
    }
}

typedef struct claim_job {
    alerts_t *a;
    int64_t now;
    int limit;
    store_alert_note_t *list;
    size_t n;
} claim_job_t;

static int claim_apply(void *db, void *arg, mf_error_t *err)
{
    claim_job_t *j = arg;
    return store_alert_note_claim(db, j->a->node, j->now, j->now - ALERTS_CLAIM_STALE_MS, j->limit,
                                  &j->list, &j->n, err);
}

static void claim_done(void *arg, int r, const mf_error_t *err)
{
    claim_job_t *j = arg;
    alerts_t *a = j->a;
    a->claiming = false;
    if (r < 0) {
        log_warn("alerts", "claiming notifications: %s", err->msg);
        note_due(a, j->now + 1000);
    } else if ((int)j->n == j->limit) {
        note_due(a, 0); /* there may be more */
    }
    for (size_t i = 0; i < j->n; i++) {
        if (a->stopping)
            break;
        deliver(a, &j->list[i]);
    }
    store_alert_note_list_free(j->list, j->n);
    free(j);
}

static void refresh(alerts_t *a, int64_t now);

static void on_deliver(uv_timer_t *t)
{
    alerts_t *a = t->data;
    if (a->stopping)
        return;
    int64_t now = clock_wall_ms();
    if (a->cfg.shared && !a->refreshing && now - a->last_refresh_ms >= REFRESH_MS)
        refresh(a, now);
    if (a->claiming || a->inflight >= INFLIGHT_MAX)
        return;
    /* Another server's claims that went stale, and (shared) notifications
     * other servers queued: looked for now and then. */
    if (now - a->last_sweep_ms >= ALERTS_CLAIM_STALE_MS / 2) {
        a->last_sweep_ms = now;
        note_due(a, 0);
    }
    if (a->next_due_ms > now)
        return;
    a->next_due_ms = INT64_MAX;
    a->claiming = true;
    claim_job_t *j = xcalloc(1, sizeof *j);
    j->a = a;
    j->now = now;
    j->limit = INFLIGHT_MAX - a->inflight;
    store_writer_submit(a->writer, false, claim_apply, claim_done, j);
}

void alerts_kick(void *ud)
{
    alerts_t *a = ud;
    if (a)
        note_due(a, 0);
}

/* ---- budgets' crossings -------------------------------------------------- */

int alerts_budget_crossed(void *ud, void *db, const budget_t *b, const store_budget_crossing_t *c,
                          mf_error_t *err)
{
    alerts_t *a = ud;
    if (!b->notify.n)
        return 0;
    char threshold[32], spend[64], summary[300], description[400], gen[512];
    snprintf(threshold, sizeof threshold, "%g", c->threshold);
    snprintf(spend, sizeof spend, "%.6f of %.6f", c->spend, c->amount);
    snprintf(summary, sizeof summary, "budget %s of tenant %s crossed %g%% of its amount", b->name,
             b->tenant, c->threshold * 100);
    snprintf(description, sizeof description,
             "%s spent in the %s that started %lld ms after the epoch", spend,
             b->period == METER_DAY ? "day" : "month", (long long)c->period_ms);
    snprintf(gen, sizeof gen, "%s/v1/budgets/%s?tenant=%s", a->url, b->name, b->tenant);
    json_t *labels =
        json_pack("{ss ss ss ss ss}", "alertname", "budget", "budget", b->name, "tenant", b->tenant,
                  "threshold", threshold, "severity", c->threshold >= 1 ? "critical" : "warning");
    if (b->function[0])
        json_object_set_new(labels, "function", json_string(b->function));
    alert_notice_t n = {.status = "firing",
                        .labels = labels,
                        .summary = summary,
                        .description = description,
                        .starts_ms = c->time_ms,
                        .ends_ms = 0,
                        .generator_url = gen};
    json_t *doc = alert_document(&n, "mayfly", a->url);
    notes_t ns = {0};
    notes_add(&ns, b->tenant, &b->notify, doc, c->time_ms);
    json_decref(doc);
    int r = notes_write(db, &ns, err);
    for (size_t i = 0; i < ns.n; i++) {
        free(ns.list[i].target);
        free(ns.list[i].body);
    }
    free(ns.list);
    return r;
}

/* ---- metrics ------------------------------------------------------------- */

static void collect(void *ud)
{
    alerts_t *a = ud;
    double n[4] = {0};
    for (rule_live_t *l = a->head; l; l = l->next)
        for (series_t *s = l->series; s; s = s->next)
            n[s->st.state]++;
    for (int i = 0; i < 4; i++) {
        const char *labels[] = {alert_state_name(i)};
        metrics_set(m_alerts, labels, n[i]);
    }
}

/* ---- opening and closing ------------------------------------------------- */

static rule_live_t *live_new(alerts_t *a, const alert_rule_t *cfg)
{
    rule_live_t *l = xcalloc(1, sizeof *l);
    l->cfg = *cfg;
    rule_key(cfg, l->key, sizeof l->key);
    l->history = json_array();
    l->next = a->head;
    a->head = l;
    return l;
}

static int parse_stored(const store_alert_rule_t *s, alert_rule_t *out, mf_error_t *err)
{
    char tenant[TENANT_MAX + 1];
    tenant_of(s->name, tenant);
    int r = alert_rule_parse(s->config_json, strlen(s->config_json), tenant_local(s->name), tenant,
                             out, err);
    if (r == 0 && strcmp(out->tenant, tenant))
        r = mf_error_plain(err, EINVAL, "its tenant is not its name's");
    return r;
}

int alerts_open(uv_loop_t *loop, store_t *s, store_writer_t *writer, registry_t *registry,
                const alerts_config_t *cfg, alerts_t **out, mf_error_t *err)
{
    /* A server before this one on the same data died with claims: taken
     * up again (on a shared store, stale claims are taken by age). */
    int r = store_alert_note_recover(s, cfg->shared ? cfg->node : NULL,
                                     clock_wall_ms() - KEEP_DONE_MS, err);
    store_alert_rule_t *stored = NULL;
    size_t n = 0;
    if (r == 0)
        r = store_alert_rule_list(s, &stored, &n, err);
    if (r < 0)
        return r;
    static bool curl_ready;
    if (!curl_ready) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        curl_ready = true;
    }
    if (!m_alerts) {
        static const char *const state_label[] = {"state", NULL};
        static const char *const note_labels[] = {"target_kind", "outcome", NULL};
        m_alerts =
            metrics_family_new(METRICS_GAUGE, "mayfly_alerts",
                               "Alert series by state (docs/alerts.md).", state_label, NULL, 0);
        m_notes = metrics_family_new(METRICS_COUNTER, "mayfly_alert_notifications_total",
                                     "Notification attempts by target kind and outcome "
                                     "(delivered, retried, failed).",
                                     note_labels, NULL, 0);
    }
    alerts_t *a = xcalloc(1, sizeof *a);
    a->loop = loop;
    a->writer = writer;
    a->registry = registry;
    a->cfg = *cfg;
    if (!a->cfg.interval_s)
        a->cfg.interval_s = 10;
    if (!a->cfg.retry_base_ms)
        a->cfg.retry_base_ms = 60000;
    snprintf(a->node, sizeof a->node, "%s", cfg->node ? cfg->node : "local");
    snprintf(a->url, sizeof a->url, "http://127.0.0.1");
    a->next_due_ms = 0; /* what a server before left */
    a->last_sweep_ms = a->last_refresh_ms = clock_wall_ms();
    for (size_t i = 0; i < n; i++) {
        alert_rule_t c;
        mf_error_t e = MF_ERROR_INIT;
        if (parse_stored(&stored[i], &c, &e) < 0) {
            log_error("alerts", "the stored rule %s is left out: %s", stored[i].name, e.msg);
            continue;
        }
        rule_live_t *l = live_new(a, &c);
        l->created_ms = stored[i].created_ms;
        l->updated_ms = stored[i].updated_ms;
        state_load(l, stored[i].state_json);
    }
    store_alert_rule_list_free(stored, n);
    a->eval = xmalloc(sizeof *a->eval);
    uv_timer_init(loop, a->eval);
    a->eval->data = a;
    uv_timer_start(a->eval, on_eval, a->cfg.interval_s * 1000ULL, a->cfg.interval_s * 1000ULL);
    uv_unref((uv_handle_t *)a->eval);
    a->deliver = xmalloc(sizeof *a->deliver);
    uv_timer_init(loop, a->deliver);
    a->deliver->data = a;
    uv_timer_start(a->deliver, on_deliver, DELIVER_TICK_MS, DELIVER_TICK_MS);
    uv_unref((uv_handle_t *)a->deliver);
    metrics_add_collector(collect, a);
    *out = a;
    return 0;
}

void alerts_set_sources(alerts_t *a, async_t *async, topics_t *topics, budgets_t *budgets)
{
    a->async = async;
    a->topics = topics;
    a->budgets = budgets;
}

void alerts_set_url(alerts_t *a, const char *url)
{
    snprintf(a->url, sizeof a->url, "%s", url);
}

void alerts_stop(alerts_t *a)
{
    if (!a)
        return;
    a->stopping = true;
    atomic_store(&a->abort_work, true);
    uv_timer_stop(a->eval);
    uv_timer_stop(a->deliver);
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static void alerts_free(alerts_t *a)
{
    while (a->head) {
        rule_live_t *l = a->head;
        a->head = l->next;
        live_free(l);
    }
    const char *key;
    void *value;
    for (size_t it = 0; map_next(&a->windows, &it, &key, &value);)
        free(value);
    map_release(&a->windows);
    free(a);
}

void alerts_close(alerts_t *a)
{
    if (!a)
        return;
    uv_close((uv_handle_t *)a->eval, free_handle);
    uv_close((uv_handle_t *)a->deliver, free_handle);
    a->closing = true;
    if (!a->work)
        alerts_free(a);
}

/* ---- a shared store: what other servers changed ------------------------- */

typedef struct refresh_job {
    alerts_t *a;
    uint64_t changes;
    store_alert_rule_t *list;
    size_t n;
} refresh_job_t;

static int refresh_apply(void *db, void *arg, mf_error_t *err)
{
    refresh_job_t *j = arg;
    return store_alert_rule_list(db, &j->list, &j->n, err);
}

static void unlink_rule(alerts_t *a, rule_live_t *gone)
{
    for (rule_live_t **pp = &a->head; *pp; pp = &(*pp)->next)
        if (*pp == gone) {
            *pp = gone->next;
            break;
        }
    live_free(gone);
}

static void refresh_done(void *arg, int r, const mf_error_t *err)
{
    refresh_job_t *j = arg;
    alerts_t *a = j->a;
    a->refreshing = false;
    if (r < 0) {
        log_warn("alerts", "reading the rules again: %s", err->msg);
    } else if (j->changes == a->changes && !a->stopping) {
        /* Deleted elsewhere: gone here too. */
        for (rule_live_t *l = a->head, *next; l; l = next) {
            next = l->next;
            bool kept = false;
            for (size_t i = 0; i < j->n && !kept; i++)
                kept = !strcmp(j->list[i].name, l->key);
            if (!kept)
                unlink_rule(a, l);
        }
        /* Made or changed elsewhere: as the store keeps it. A rule with
         * the same settings keeps this server's own state. */
        for (size_t i = 0; i < j->n; i++) {
            alert_rule_t c;
            mf_error_t e = MF_ERROR_INIT;
            if (parse_stored(&j->list[i], &c, &e) < 0)
                continue;
            rule_live_t *l = find(a, j->list[i].name);
            if (l && alert_rule_same(&l->cfg, &c))
                continue;
            if (l)
                unlink_rule(a, l);
            l = live_new(a, &c);
            l->created_ms = j->list[i].created_ms;
            l->updated_ms = j->list[i].updated_ms;
            state_load(l, j->list[i].state_json);
        }
    }
    store_alert_rule_list_free(j->list, j->n);
    free(j);
}

static void refresh(alerts_t *a, int64_t now)
{
    refresh_job_t *j = xcalloc(1, sizeof *j);
    j->a = a;
    j->changes = a->changes;
    a->refreshing = true;
    a->last_refresh_ms = now;
    store_writer_submit_read(a->writer, refresh_apply, refresh_done, j);
}

/* ---- put, delete, show --------------------------------------------------- */

typedef struct put_job {
    alerts_t *a;
    alert_rule_t cfg;
    store_alert_rule_t row;
    bool created;
    alerts_done_cb done;
    void *ud;
} put_job_t;

static int put_apply(void *db, void *arg, mf_error_t *err)
{
    put_job_t *j = arg;
    return store_alert_rule_put(db, &j->row, &j->created, err);
}

static void put_done(void *arg, int r, const mf_error_t *err)
{
    put_job_t *j = arg;
    alerts_t *a = j->a;
    if (r == 0) {
        rule_live_t *old = find(a, j->row.name);
        if (old && alert_rule_same(&old->cfg, &j->cfg)) {
            old->updated_ms = j->row.updated_ms;
        } else {
            int64_t created = old ? old->created_ms : j->row.created_ms;
            if (old) {
                for (rule_live_t **pp = &a->head; *pp; pp = &(*pp)->next)
                    if (*pp == old) {
                        *pp = old->next;
                        break;
                    }
                live_free(old);
            }
            rule_live_t *l = live_new(a, &j->cfg);
            l->created_ms = created;
            l->updated_ms = j->row.updated_ms;
        }
    }
    a->changes++;
    j->done(j->ud, r, j->created, err);
    free(j->row.config_json);
    free(j);
}

void alerts_put(alerts_t *a, const alert_rule_t *rule, alerts_done_cb done, void *ud)
{
    put_job_t *j = xcalloc(1, sizeof *j);
    j->a = a;
    j->cfg = *rule;
    j->done = done;
    j->ud = ud;
    rule_key(rule, j->row.name, sizeof j->row.name);
    json_t *doc = alert_rule_json(rule);
    j->row.config_json = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    j->row.created_ms = j->row.updated_ms = clock_wall_ms();
    store_writer_submit(a->writer, true, put_apply, put_done, j);
}

typedef struct delete_job {
    alerts_t *a;
    char key[TENANT_QNAME_MAX + 1];
    alerts_done_cb done;
    void *ud;
} delete_job_t;

static int delete_apply(void *db, void *arg, mf_error_t *err)
{
    delete_job_t *j = arg;
    return store_alert_rule_delete(db, j->key, err);
}

static void delete_done(void *arg, int r, const mf_error_t *err)
{
    delete_job_t *j = arg;
    rule_live_t *l = find(j->a, j->key);
    if (l && (r == 0 || r == -ENOENT)) {
        for (rule_live_t **pp = &j->a->head; *pp; pp = &(*pp)->next)
            if (*pp == l) {
                *pp = l->next;
                break;
            }
        live_free(l);
    }
    j->a->changes++;
    j->done(j->ud, r, false, err);
    free(j);
}

void alerts_delete(alerts_t *a, const char *tenant, const char *name, alerts_done_cb done, void *ud)
{
    delete_job_t *j = xcalloc(1, sizeof *j);
    j->a = a;
    j->done = done;
    j->ud = ud;
    tenant_qualify(tenant, name, j->key, sizeof j->key);
    store_writer_submit(a->writer, true, delete_apply, delete_done, j);
}

static const int rank[] = {
    [ALERT_OK] = 0, [ALERT_RESOLVED] = 1, [ALERT_PENDING] = 2, [ALERT_FIRING] = 3};

static json_t *live_json(const rule_live_t *l, bool history)
{
    json_t *doc = alert_rule_json(&l->cfg);
    json_t *series = json_array();
    int worst = ALERT_OK;
    bool any = false;
    json_t *value = json_null();
    for (const series_t *s = l->series; s; s = s->next) {
        if (!any || rank[s->st.state] > rank[worst])
            worst = s->st.state;
        any = true;
        json_t *v = s->st.has_value ? json_real(s->st.value) : json_null();
        json_decref(value);
        value = json_incref(v);
        json_array_append_new(
            series,
            json_pack("{so ss so so so so so}", "function",
                      s->function[0] ? json_string(tenant_local(s->function)) : json_null(),
                      "state", alert_state_name(s->st.state), "value", v, "since",
                      json_time(s->st.since_ms), "pending_since",
                      s->st.state == ALERT_PENDING ? json_time(s->st.active_ms) : json_null(),
                      "fired_at", json_time(s->st.fired_ms), "resolved_at",
                      json_time(s->st.resolved_ms)));
    }
    json_object_set_new(doc, "state", json_string(alert_state_name(worst)));
    /* One series (a function, a budget): its value; several: see series. */
    if (json_array_size(series) == 1)
        json_object_set(doc, "value", value);
    else
        json_object_set_new(doc, "value", json_null());
    json_decref(value);
    json_object_set_new(doc, "series", series);
    json_object_set_new(doc, "created", json_time(l->created_ms));
    json_object_set_new(doc, "updated", json_time(l->updated_ms));
    if (history)
        json_object_set(doc, "history", l->history);
    return doc;
}

json_t *alerts_show(alerts_t *a, const char *tenant, const char *name, bool history)
{
    char key[TENANT_QNAME_MAX + 1];
    if (!tenant_qualify(tenant, name, key, sizeof key))
        return NULL;
    rule_live_t *l = find(a, key);
    return l ? live_json(l, history) : NULL;
}

static int by_tenant_name(const void *x, const void *y)
{
    const json_t *a = *(json_t *const *)x, *c = *(json_t *const *)y;
    int d = strcmp(json_string_value(json_object_get(a, "tenant")),
                   json_string_value(json_object_get(c, "tenant")));
    return d ? d
             : strcmp(json_string_value(json_object_get(a, "name")),
                      json_string_value(json_object_get(c, "name")));
}

json_t *alerts_list(alerts_t *a, const char *tenant)
{
    size_t n = 0;
    for (rule_live_t *l = a->head; l; l = l->next)
        n++;
    json_t **docs = xcalloc(n + 1, sizeof *docs);
    size_t k = 0;
    for (rule_live_t *l = a->head; l; l = l->next)
        if (!tenant || !strcmp(l->cfg.tenant, tenant))
            docs[k++] = live_json(l, false);
    if (k)
        qsort(docs, k, sizeof *docs, by_tenant_name);
    json_t *list = json_array();
    for (size_t i = 0; i < k; i++)
        json_array_append_new(list, docs[i]);
    free(docs);
    return list;
}
