/* What other servers sharing the store changed (cluster/cluster.h), brought
 * into this server's memory: functions into the registry, with their
 * instances draining as after an update made here; function URLs, topics
 * and schedules into their tables; other servers' log lines to the
 * followers here.
 *
 * Each kind has at most one read on its way (on a writer's thread: the
 * loop never waits for the database); what changes meanwhile waits for
 * the next, so a burst of changes is a few reads. A read of functions,
 * URLs or topics that this server changed itself while the read was on
 * its way may be older than what is in memory: it is dropped and made
 * again (those changes are made in memory at once, and each module counts
 * them). Schedules need no such care: this server changes its own in
 * memory only once the queue's writer, which the read follows, has
 * written them.
 *
 * A node hears its own changes too: a function whose row is what the
 * registry has already is left alone (its instances are not drained for
 * nothing), and a table read back equal is equal. A read that fails (the
 * database away) is made again at the next change heard, or when the
 * listener, which loses its connection too, is back and asks for all. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "cluster/cluster.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "invoke/async.h"
#include "obs/logs.h"
#include "store/schedules.h"
#include "store/topics.h"
#include "trigger/schedules.h"
#include "trigger/topics.h"
#include "trigger/url.h"

typedef struct kind_state {
    map_t names; /* what changed, to read next (values unused) */
    bool all;    /* everything of the kind */
    bool busy;   /* a read is on its way */
} kind_state_t;

struct api_cluster {
    api_ctx_t *ctx;
    bool stopping;
    kind_state_t kinds[CLUSTER_KINDS];
};

static const char *const kind_what[CLUSTER_KINDS] = {
    [CLUSTER_FUNCTION] = "functions",
    [CLUSTER_URL] = "function URLs",
    [CLUSTER_TOPIC] = "topics",
    [CLUSTER_SCHEDULE] = "schedules",
};

static void pump(api_cluster_t *c, cluster_kind_t k);

/* One read of a kind: what it asked for, and what it found. */
typedef struct job {
    api_cluster_t *c;
    cluster_kind_t kind;
    uint64_t changes; /* the module's count of its own changes, when asked */
    bool all;
    char (*names)[CLUSTER_NAME_MAX + 1];
    size_t nnames;
    /* Functions: a row per name (found[i] false: gone), or every row. */
    store_function_t *fns;
    bool *found;
    size_t nfns;
    bool *differs;  /* per row: not what the registry has */
    uv_work_t work; /* unpacks what the rows' packages need */
    /* URLs */
    store_url_t *urls;
    size_t nurls;
    /* Topics */
    store_topic_t *topics;
    size_t ntopics;
    store_subscription_t *subs;
    size_t nsubs;
    /* Schedules, each with its latest logged fire ("" schedule: none) */
    store_schedule_t *scheds;
    store_schedule_fire_t *fires;
    size_t nscheds;
} job_t;

static void job_free(job_t *j)
{
    free(j->names);
    if (j->fns)
        store_function_list_free(j->fns, j->nfns);
    free(j->found);
    free(j->differs);
    store_url_list_free(j->urls, j->nurls);
    free(j->topics);
    store_subscription_list_free(j->subs, j->nsubs);
    store_schedule_list_free(j->scheds, j->nscheds);
    for (size_t i = 0; j->fires && i < j->nscheds; i++)
        free(j->fires[i].error);
    free(j->fires);
    free(j);
}

/* The module's count of changes made here, which a read must not cross. */
static uint64_t local_changes(api_cluster_t *c, cluster_kind_t k)
{
    api_ctx_t *ctx = c->ctx;
    switch (k) {
    case CLUSTER_FUNCTION: return registry_changes(ctx->registry);
    case CLUSTER_URL: return url_table_changes(ctx->urls);
    case CLUSTER_TOPIC: return ctx->topics ? topics_changes(ctx->topics) : 0;
    default: return 0;
    }
}

/* What j asked for is asked again, with whatever came since. */
static void requeue(job_t *j)
{
    kind_state_t *ks = &j->c->kinds[j->kind];
    ks->all |= j->all;
    for (size_t i = 0; i < j->nnames; i++)
        map_put(&ks->names, j->names[i], (void *)1);
}

/* A read came back: false (j is done with) when it is not to be applied:
 * the server stops, the read failed, or this server changed the kind
 * meanwhile (it is made again). */
static bool job_usable(job_t *j, int r, const mf_error_t *err)
{
    api_cluster_t *c = j->c;
    if (c->stopping) {
        job_free(j);
        return false;
    }
    bool stale = r == 0 && local_changes(c, j->kind) != j->changes;
    if (r < 0)
        log_warn("cluster",
                 "reading the %s another node changed: %s (read again at the next "
                 "change)",
                 kind_what[j->kind], err->msg);
    if (r < 0 || stale) {
        requeue(j);
        c->kinds[j->kind].busy = false;
        if (stale)
            pump(c, j->kind);
        job_free(j);
        return false;
    }
    return true;
}

static void job_finished(job_t *j)
{
    api_cluster_t *c = j->c;
    cluster_kind_t k = j->kind;
    job_free(j);
    c->kinds[k].busy = false;
    pump(c, k);
}

/* ---- functions ---------------------------------------------------------------- */

static int fn_read(void *db, void *arg, mf_error_t *err)
{
    job_t *j = arg;
    if (j->all)
        return store_function_list(db, &j->fns, &j->nfns, err);
    j->fns = xcalloc(j->nnames ? j->nnames : 1, sizeof *j->fns);
    j->found = xcalloc(j->nnames ? j->nnames : 1, sizeof *j->found);
    j->nfns = j->nnames;
    for (size_t i = 0; i < j->nnames; i++) {
        mf_error_t e = MF_ERROR_INIT;
        int r = store_function_get(db, j->names[i], &j->fns[i], &e);
        if (r == -ENOENT) {
            snprintf(j->fns[i].name, sizeof j->fns[i].name, "%s", j->names[i]);
            continue;
        }
        if (r < 0) {
            *err = e;
            return r;
        }
        j->found[i] = true;
    }
    return 0;
}

/* On libuv's thread pool: the packages of the rows that changed, from the
 * store into this server's code directory. */
static void fn_fetch(uv_work_t *w)
{
    job_t *j = w->data;
    for (size_t i = 0; i < j->nfns; i++) {
        if (!j->differs[i] || (j->found && !j->found[i]))
            continue;
        mf_error_t err = MF_ERROR_INIT;
        if (registry_fetch_code(j->c->ctx->registry, j->fns[i].code_sha256, &err) < 0)
            log_warn("cluster", "function %s cannot run here until its package is: %s",
                     j->fns[i].name, err.msg);
    }
}

static void fn_apply_one(api_cluster_t *c, const char *name, const store_function_t *row)
{
    api_ctx_t *ctx = c->ctx;
    fn_t fn;
    registry_sync_t what;
    mf_error_t err = MF_ERROR_INIT;
    if (registry_apply_stored(ctx->registry, name, row, &fn, &what, &err) < 0) {
        log_error("cluster", "function %s as another node left it: %s", name, err.msg);
        return;
    }
    api__function_synced(ctx, name, what, &fn);
}

static void fn_fetched(uv_work_t *w, int status)
{
    job_t *j = w->data;
    api_cluster_t *c = j->c;
    registry_t *reg = c->ctx->registry;
    if (c->stopping || registry_changes(reg) != j->changes) {
        bool stopping = c->stopping;
        registry_fetch_end(reg);
        if (!stopping) {
            requeue(j);
            c->kinds[CLUSTER_FUNCTION].busy = false;
            pump(c, CLUSTER_FUNCTION);
        }
        job_free(j);
        return;
    }
    for (size_t i = 0; i < j->nfns; i++)
        if (j->differs[i])
            fn_apply_one(c, j->fns[i].name, !j->found || j->found[i] ? &j->fns[i] : NULL);
    if (j->all) {
        /* Those the store no longer has. */
        map_t stored = MAP_INIT;
        for (size_t i = 0; i < j->nfns; i++)
            map_put(&stored, j->fns[i].name, (void *)1);
        fn_t *list = NULL;
        size_t n = 0;
        mf_error_t err = MF_ERROR_INIT;
        if (registry_list(reg, &list, &n, &err) == 0) {
            for (size_t i = 0; i < n; i++)
                if (!map_get(&stored, list[i].name))
                    fn_apply_one(c, list[i].name, NULL);
            fn_list_free(list, n);
        }
        map_release(&stored);
    }
    registry_fetch_end(reg);
    job_finished(j);
}

static void fn_read_done(void *arg, int r, const mf_error_t *err)
{
    job_t *j = arg;
    if (!job_usable(j, r, err))
        return;
    registry_t *reg = j->c->ctx->registry;
    j->differs = xcalloc(j->nfns ? j->nfns : 1, sizeof *j->differs);
    bool any = j->all; /* a listing may show what it lacks */
    for (size_t i = 0; i < j->nfns; i++) {
        const store_function_t *row = !j->found || j->found[i] ? &j->fns[i] : NULL;
        j->differs[i] = registry_differs(reg, j->fns[i].name, row);
        any |= j->differs[i];
    }
    if (!any) {
        job_finished(j);
        return;
    }
    /* No package goes from the code directory until this is applied (one
     * it fetches is no one's yet). */
    registry_fetch_begin(reg);
    j->work.data = j;
    if (uv_queue_work(j->c->ctx->loop, &j->work, fn_fetch, fn_fetched) < 0) {
        fn_fetch(&j->work);
        fn_fetched(&j->work, 0);
    }
}

/* ---- function URLs, topics, schedules ---------------------------------------- */

static int url_read(void *db, void *arg, mf_error_t *err)
{
    job_t *j = arg;
    return store_url_list(db, &j->urls, &j->nurls, err);
}

static void url_read_done(void *arg, int r, const mf_error_t *err)
{
    job_t *j = arg;
    if (!job_usable(j, r, err))
        return;
    url_table_replace(j->c->ctx->urls, j->urls, j->nurls);
    job_finished(j);
}

static int topic_read(void *db, void *arg, mf_error_t *err)
{
    job_t *j = arg;
    int r = store_topic_list(db, &j->topics, &j->ntopics, err);
    return r < 0 ? r : store_subscription_list(db, &j->subs, &j->nsubs, err);
}

static void topic_read_done(void *arg, int r, const mf_error_t *err)
{
    job_t *j = arg;
    if (!job_usable(j, r, err))
        return;
    topics_replace(j->c->ctx->topics, j->topics, j->ntopics, j->subs, j->nsubs);
    job_finished(j);
}

static int schedule_read(void *db, void *arg, mf_error_t *err)
{
    job_t *j = arg;
    int r = store_schedule_list(db, &j->scheds, &j->nscheds, err);
    if (r < 0)
        return r;
    j->fires = xcalloc(j->nscheds ? j->nscheds : 1, sizeof *j->fires);
    for (size_t i = 0; i < j->nscheds; i++) {
        store_schedule_fire_t *fires = NULL;
        size_t n = 0;
        if ((r = store_schedule_fire_list(db, j->scheds[i].name, 1, &fires, &n, err)) < 0)
            return r;
        if (n) {
            j->fires[i] = fires[0];
            fires[0].error = NULL;
        }
        store_schedule_fire_list_free(fires, n);
    }
    return 0;
}

static void schedule_read_done(void *arg, int r, const mf_error_t *err)
{
    job_t *j = arg;
    if (!job_usable(j, r, err))
        return;
    schedules_replace(j->c->ctx->schedules, j->scheds, j->nscheds, j->fires);
    job_finished(j);
}

/* ---- the kinds --------------------------------------------------------------- */

/* Starts the next read of kind k, unless one is on its way or nothing
 * waits for one. */
static void pump(api_cluster_t *c, cluster_kind_t k)
{
    kind_state_t *ks = &c->kinds[k];
    api_ctx_t *ctx = c->ctx;
    if (c->stopping || ks->busy || (!ks->all && !ks->names.len))
        return;
    job_t *j = xcalloc(1, sizeof *j);
    j->c = c;
    j->kind = k;
    j->changes = local_changes(c, k);
    /* URLs, topics and schedules are read whole: there are few, and a
     * topic's subscriptions come with it. */
    j->all = ks->all || k != CLUSTER_FUNCTION;
    if (!j->all) {
        j->names = xcalloc(ks->names.len, sizeof *j->names);
        const char *key;
        void *v;
        for (size_t it = 0; map_next(&ks->names, &it, &key, &v);)
            snprintf(j->names[j->nnames++], sizeof j->names[0], "%s", key);
    }
    ks->all = false;
    map_clear(&ks->names);
    ks->busy = true;
    switch (k) {
    case CLUSTER_FUNCTION:
        store_writer_submit_read(ctx->obs_writer, fn_read, fn_read_done, j);
        break;
    case CLUSTER_URL: store_writer_submit_read(ctx->obs_writer, url_read, url_read_done, j); break;
    case CLUSTER_TOPIC:
        store_writer_submit_read(async_writer(ctx->async), topic_read, topic_read_done, j);
        break;
    case CLUSTER_SCHEDULE:
        store_writer_submit_read(async_writer(ctx->async), schedule_read, schedule_read_done, j);
        break;
    default: break;
    }
}

api_cluster_t *api_cluster_new(api_ctx_t *ctx)
{
    api_cluster_t *c = xcalloc(1, sizeof *c);
    c->ctx = ctx;
    return c;
}

void api_cluster_changed(void *ud, struct cluster_batch *b)
{
    api_cluster_t *c = ud;
    api_ctx_t *ctx = c->ctx;
    if (c->stopping)
        return;
    /* What this server does not keep is not read. */
    bool kept[CLUSTER_KINDS] = {
        [CLUSTER_FUNCTION] = true,
        [CLUSTER_URL] = ctx->urls != NULL,
        [CLUSTER_TOPIC] = ctx->topics != NULL,
        [CLUSTER_SCHEDULE] = ctx->schedules != NULL,
    };
    for (int k = 0; k < CLUSTER_KINDS; k++) {
        if (!kept[k])
            continue;
        kind_state_t *ks = &c->kinds[k];
        ks->all |= b->all;
        const char *key;
        void *v;
        for (size_t it = 0; map_next(&b->names[k], &it, &key, &v);)
            map_put(&ks->names, key, v);
        pump(c, (cluster_kind_t)k);
    }
    for (size_t i = 0; i < b->nlines; i++)
        obs_logs_remote(ctx->logs, b->lines[i].function, b->lines[i].node, b->lines[i].first_id,
                        b->lines[i].last_id);
    if (b->all)
        obs_logs_remote_resync(ctx->logs);
}

void api_cluster_stop(api_cluster_t *c)
{
    if (c)
        c->stopping = true;
}

void api_cluster_free(api_cluster_t *c)
{
    if (!c)
        return;
    for (int k = 0; k < CLUSTER_KINDS; k++)
        map_release(&c->kinds[k].names);
    free(c);
}
