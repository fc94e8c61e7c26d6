/* /v1/functions: create or update, list, get, delete, invoke. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "exec/exec.h"
#include "durable/durable.h"
#include "invoke/async.h"
#include "obs/logs.h"
#include "obs/records.h"
#include "trigger/topics.h"
#include "trigger/url.h"

/* Every handler below takes the function's name from the path. */
static const char *fn_name(const http_request_t *req)
{
    return req->params[0];
}

/* A create or update: the body is parsed and its package unpacked on
 * libuv's thread pool (up to 50 MiB of zip and 250 MiB unpacked would
 * otherwise stop every call for as long), planned on the loop thread, its
 * row written by the records' writer (off the loop: on a shared database
 * a round trip), and taken in on the loop (registry.h). */
typedef struct put_job {
    uv_work_t work;
    http_request_t *req;
    api_ctx_t *ctx;
    char name[TENANT_QNAME_MAX + 1];
    buf_t body;
    api_put_mode_t mode;
    api_translate_fn translate;
    int translate_rc;
    mf_error_t translate_err;
    api_put_done_fn done;
    registry_upload_t up;
    registry_plan_t *plan;
    int tries;                   /* plans that met a newer version */
    char tenant[TENANT_MAX + 1]; /* the caller's (api__who) */
    struct put_job *prev, *next; /* in ctx->puts while its row is on its way */
} put_job_t;

static void put_work(uv_work_t *w)
{
    put_job_t *job = w->data;
    if (job->translate &&
        (job->translate_rc = job->translate(&job->body, job->name, &job->translate_err)) < 0)
        return;
    /* A name the body gave (Lambda's CreateFunction) is the caller's
     * tenant's. */
    if (!strchr(job->name, TENANT_SEP)) {
        char local[TENANT_QNAME_MAX + 1];
        snprintf(local, sizeof local, "%s", job->name);
        tenant_qualify(job->tenant, local, job->name, sizeof job->name);
    }
    registry_prepare_upload(job->ctx->registry, job->body.data, job->body.len, &job->up);
}

bool api__puts_mount(const api_ctx_t *ctx, const char *volume)
{
    for (const put_job_t *j = ctx->puts; j; j = j->next) {
        const json_t *list = j->up.body ? json_object_get(j->up.body, "volumes") : NULL;
        size_t i;
        json_t *m;
        json_array_foreach(list, i, m)
        {
            const char *name = json_string_value(json_object_get(m, "name"));
            char q[TENANT_QNAME_MAX + 1];
            if (name && tenant_resolve(j->name, name, q, sizeof q) && !strcmp(q, volume))
                return true;
        }
    }
    return false;
}

/* A delete whose row is on its way (ctx->deletes). */
typedef struct delete_job {
    http_request_t *req;
    api_ctx_t *ctx;
    char name[TENANT_QNAME_MAX + 1];
    api_delete_done_fn done;
    struct delete_job *prev, *next;
} delete_job_t;

/* Whether a put (puts true) or a delete of name is in flight; -EBUSY
 * with err saying so when one is. */
static int changing(const api_ctx_t *ctx, const char *name, bool puts, mf_error_t *err)
{
    bool busy = false;
    for (const put_job_t *j = puts ? ctx->puts : NULL; j && !busy; j = j->next)
        busy = !strcmp(j->name, name);
    for (const delete_job_t *j = ctx->deletes; j && !busy; j = j->next)
        busy = !strcmp(j->name, name);
    if (!busy)
        return 0;
    return mf_error_plain(err, EBUSY,
                          "function `%s` is being changed by another request: try again when "
                          "it is done",
                          tenant_local(name));
}

/* Answers the put (r, and fn when r is 0) and frees it; changed: fn is a
 * new version that the server takes in. */
static void put_finish(put_job_t *job, int r, fn_t *fn, bool created, const mf_error_t *err,
                       bool changed)
{
    api_ctx_t *ctx = job->ctx;
    http_request_t *req = job->req;
    mf_error_t e = *err; /* err may be the job's, freed below */
    if (job->prev)
        job->prev->next = job->next;
    else if (ctx->puts == job)
        ctx->puts = job->next;
    if (job->next)
        job->next->prev = job->prev;
    /* A dry run's package serves nothing: it goes as a failed put's does. */
    registry_upload_end(ctx->registry, &job->up, changed ? r : -ECANCELED);
    registry_upload_release(&job->up);
    buf_release(&job->body);
    api_put_done_fn done = job->done;
    free(job);
    if (r == 0 && changed)
        api__function_changed(ctx, fn);
    done(req, ctx, r, r == 0 ? fn : NULL, created, &e);
    if (r == 0)
        fn_clear(fn);
}

/* The Lambda API's create and update: the function must be absent, or
 * there. Checked on the loop, before each plan. */
static int put_mode_check(put_job_t *job, mf_error_t *err)
{
    if (job->mode == API_PUT_ANY)
        return 0;
    fn_t cur;
    int g = registry_get(job->ctx->registry, job->name, &cur, err);
    if (g == 0)
        fn_clear(&cur);
    if (job->mode == API_PUT_CREATE && g == 0)
        return mf_error_plain(err, EEXIST, "Function already exist: %s", job->name);
    if (job->mode == API_PUT_UPDATE && g < 0)
        return g;
    *err = (mf_error_t)MF_ERROR_INIT;
    return 0;
}

static int put_write(void *db, void *arg, mf_error_t *err)
{
    put_job_t *job = arg;
    return registry_plan_write(job->plan, db, err);
}

static void put_attempt(put_job_t *job);

static void put_written(void *arg, int r, const mf_error_t *err)
{
    put_job_t *job = arg;
    fn_t fn = { 0 };
    registry_sync_t what;
    mf_error_t e = MF_ERROR_INIT;
    r = registry_put_commit(job->ctx->registry, job->plan, r, err, &fn, &what, &e);
    job->plan = NULL;
    if (r == -ESTALE) {
        /* Another server put a newer version meanwhile, which the registry
         * has now: this server follows it, and the body goes on top. */
        api__function_synced(job->ctx, job->name, what, &fn);
        if (++job->tries < REGISTRY_PUT_TRIES) {
            put_attempt(job);
            return;
        }
    }
    put_finish(job, r, &fn, what == REGISTRY_CREATED, &e, true);
}

static void put_attempt(put_job_t *job)
{
    mf_error_t err = MF_ERROR_INIT;
    int r = put_mode_check(job, &err);
    if (r == 0)
        r = registry_put_plan(job->ctx->registry, job->name, &job->up, &job->plan, &err);
    if (r < 0) {
        put_finish(job, r, NULL, false, &err, true);
        return;
    }
    store_writer_submit(job->ctx->obs_writer, true, put_write, put_written, job);
}

static void put_done(uv_work_t *w, int status)
{
    put_job_t *job = w->data;
    api_ctx_t *ctx = job->ctx;
    fn_t fn = { 0 };
    mf_error_t err = MF_ERROR_INIT;
    int r = job->translate_rc;
    if (r < 0) {
        put_finish(job, r, NULL, false, &job->translate_err, true);
        return;
    }
    if (r == API_TRANSLATE_DRY_RUN) {
        /* Checked, not applied: the package's own failure, else what is. */
        r = job->up.rc;
        if (r < 0)
            err = job->up.err;
        else
            r = registry_get(ctx->registry, job->name, &fn, &err);
        put_finish(job, r, &fn, false, &err, false);
        return;
    }
    r = changing(ctx, job->name, false, &err);
    if (r == 0)
        r = put_mode_check(job, &err);
    /* On the loop, and the put counted in flight from here: a volume
     * cannot go in between (api__puts_mount), nor a delete of it. */
    if (r == 0 && job->up.body)
        r = api__volumes_check(ctx, job->name, job->up.body, &err);
    if (r < 0) {
        put_finish(job, r, NULL, false, &err, true);
        return;
    }
    job->next = ctx->puts;
    if (ctx->puts)
        ctx->puts->prev = job;
    ctx->puts = job;
    put_attempt(job);
}

void api__function_put(http_request_t *req, api_ctx_t *ctx, const char *name, buf_t *body,
                       api_put_mode_t mode, api_translate_fn translate, api_put_done_fn done)
{
    put_job_t *job = xcalloc(1, sizeof *job);
    job->req = req;
    job->ctx = ctx;
    snprintf(job->name, sizeof job->name, "%s", name);
    api_who_t who;
    if (!api__who(req, ctx, &who))
        snprintf(who.tenant, sizeof who.tenant, "%s", TENANT_DEFAULT);
    snprintf(job->tenant, sizeof job->tenant, "%s", who.tenant);
    job->body = *body;
    buf_init(body, 0);
    job->mode = mode;
    job->translate = translate;
    job->translate_err = (mf_error_t)MF_ERROR_INIT;
    job->done = done;
    job->work.data = job;
    registry_upload_begin(ctx->registry);
    int r = uv_queue_work(ctx->loop, &job->work, put_work, put_done);
    if (r < 0) {
        /* Cannot happen with a valid loop; do it here rather than fail. */
        put_work(&job->work);
        put_done(&job->work, 0);
    }
}

/* The function as /v1 shows it: its settings, and how its starts go. */
static json_t *function_json(api_ctx_t *ctx, const fn_t *fn)
{
    json_t *out = fn_to_json(fn);
    /* The keep-alive's windows now (docs/keep-alive.md); "setting" is
     * the function's own keep_warm, null for the server's default. */
    exec_keep_warm_t kw;
    exec_keep_warm(ctx->exec, fn, &kw);
    json_object_set_new(out, "keep_warm",
                        json_pack("{ss sf sf sI ss s:s?}", "policy", kw.policy, "keep_alive_s",
                                  (double)kw.keep_alive_ms / 1000.0, "prewarm_s",
                                  (double)kw.prewarm_ms / 1000.0, "samples",
                                  (json_int_t)kw.samples, "basis", kw.basis, "setting",
                                  fn->keep_warm[0] ? fn->keep_warm : NULL));
    /* Its function URL's address, null without one (GET …/url has its
     * settings): a client learns whether there is one without a 404. */
    if (url_table_get(ctx->urls, fn->name)) {
        buf_t addr = BUF_INIT;
        api__url_address(ctx, fn->name, &addr);
        json_object_set_new(out, "url", json_string(addr.data));
        buf_release(&addr);
    } else {
        json_object_set_new(out, "url", json_null());
    }
    exec_start_health_t h;
    exec_start_health(ctx->exec, fn->name, &h);
    if (!h.consecutive_failures) {
        json_object_set_new(out, "start_failures", json_null());
        return out;
    }
    char retry[32], at[32];
    clock_format_iso8601(h.retry_after_ms, retry, sizeof retry);
    clock_format_iso8601(h.failed_at_ms, at, sizeof at);
    json_object_set_new(out, "start_failures",
                        json_pack("{sI ss ss s{ss ss}}", "consecutive",
                                  (json_int_t)h.consecutive_failures, "retry_after", retry,
                                  "time", at, "last_error", "errorType", h.error_type,
                                  "errorMessage", h.error_reason));
    return out;
}

static void put_answered(http_request_t *req, api_ctx_t *ctx, int r, const fn_t *fn, bool created,
                         const mf_error_t *err)
{
    if (r < 0) {
        api_respond_failure(req, r, err);
        return;
    }
    cleanup_json json_t *out = function_json(ctx, fn);
    http_respond_json(req, created ? 201 : 200, out);
}

static void handle_put(http_request_t *req, api_ctx_t *ctx)
{
    if (!registry_valid_name(fn_name(req))) {
        http_respond_error(req, 400, "bad_request", "name: must match [A-Za-z0-9_-]{1,64}");
        return;
    }
    /* The request stays alive until it is answered. */
    api__function_put(req, ctx, fn_name(req), &req->body, API_PUT_ANY, NULL, put_answered);
}

static void handle_get(http_request_t *req, api_ctx_t *ctx)
{
    fn_t fn;
    mf_error_t err = MF_ERROR_INIT;
    int r = registry_get(ctx->registry, fn_name(req), &fn, &err);
    if (r < 0) {
        api_respond_failure(req, r, &err);
        return;
    }
    cleanup_json json_t *out = function_json(ctx, &fn);
    fn_clear(&fn);
    async_fn_stats_t st;
    async_function_stats(ctx->async, fn_name(req), &st);
    json_object_set_new(out, "async_queue",
                        json_pack("{sI sI sI sf sI sI sI sI}", "depth", (json_int_t)st.depth,
                                  "running", (json_int_t)st.running, "limit",
                                  (json_int_t)st.limit, "oldest_age_s",
                                  st.oldest_age_s, "dead_letters", (json_int_t)st.dead_letters,
                                  "enqueued", (json_int_t)st.enqueued, "attempts",
                                  (json_int_t)st.attempts, "retries", (json_int_t)st.retries));
    http_respond_json(req, 200, out);
}

static void handle_list(http_request_t *req, api_ctx_t *ctx)
{
    fn_t *list = NULL;
    size_t n = 0;
    mf_error_t err = MF_ERROR_INIT;
    int r = registry_list(ctx->registry, &list, &n, &err);
    if (r < 0) {
        api_respond_failure(req, r, &err);
        return;
    }
    api_who_t who;
    api__who(req, ctx, &who);
    cleanup_json json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        if (api__sees(&who, list[i].name))
            json_array_append_new(arr, function_json(ctx, &list[i]));
    fn_list_free(list, n);
    cleanup_json json_t *out = json_pack("{sO}", "functions", arr);
    http_respond_json(req, 200, out);
}

/* ?purge=1 also deletes the function's invocation records and log lines,
 * after every one already handed to the writer (so none written before the
 * delete survives it). */
typedef struct purge_job {
    http_request_t *req;
    char name[TENANT_QNAME_MAX + 1];
    int64_t records, lines;
} purge_job_t;

static int purge_apply(void *db, void *arg, mf_error_t *err)
{
    purge_job_t *j = arg;
    return store_function_purge_write(db, j->name, &j->records, &j->lines, err);
}

static void purge_done(void *arg, int r, const mf_error_t *err)
{
    purge_job_t *j = arg;
    if (r < 0)
        api_respond_failure(j->req, r, err);
    else
        http_respond(j->req, 204, NULL, NULL, 0);
    free(j);
}

/* ?purge: false when it is there but neither 1, 0, true nor false. */
static bool purge_wanted(http_request_t *req, bool *purge)
{
    buf_t v = BUF_INIT;
    *purge = false;
    bool ok = true;
    if (http_request_query(req, "purge", &v)) {
        *purge = !strcmp(v.data, "1") || !strcmp(v.data, "true");
        ok = *purge || !strcmp(v.data, "0") || !strcmp(v.data, "false");
    }
    buf_release(&v);
    return ok;
}

static int delete_write(void *db, void *arg, mf_error_t *err)
{
    delete_job_t *j = arg;
    return registry_delete_write(db, j->name, err);
}

static void delete_written(void *arg, int r, const mf_error_t *err)
{
    delete_job_t *j = arg;
    api_ctx_t *ctx = j->ctx;
    mf_error_t e = MF_ERROR_INIT;
    r = registry_delete_commit(ctx->registry, j->name, r, err, &e);
    if (j->prev)
        j->prev->next = j->next;
    else
        ctx->deletes = j->next;
    if (j->next)
        j->next->prev = j->prev;
    if (r == 0)
        api__function_removed(ctx, j->name, true);
    j->done(j->req, ctx, j->name, r, &e);
    free(j);
}

void api__function_delete(http_request_t *req, api_ctx_t *ctx, const char *name,
                          api_delete_done_fn done)
{
    mf_error_t err = MF_ERROR_INIT;
    int r = registry_delete_plan(ctx->registry, name, &err);
    if (r == 0)
        r = changing(ctx, name, true, &err);
    if (r < 0) {
        done(req, ctx, name, r, &err);
        return;
    }
    delete_job_t *j = xcalloc(1, sizeof *j);
    j->req = req;
    j->ctx = ctx;
    snprintf(j->name, sizeof j->name, "%s", name);
    j->done = done;
    j->next = ctx->deletes;
    if (ctx->deletes)
        ctx->deletes->prev = j;
    ctx->deletes = j;
    store_writer_submit(ctx->obs_writer, true, delete_write, delete_written, j);
}

static void delete_answered(http_request_t *req, api_ctx_t *ctx, const char *name, int r,
                            const mf_error_t *err)
{
    if (r < 0) {
        api_respond_failure(req, r, err);
        return;
    }
    bool purge = false; /* ?purge was checked before the delete was made */
    purge_wanted(req, &purge);
    if (!purge) {
        http_respond(req, 204, NULL, NULL, 0);
        return;
    }
    purge_job_t *j = xcalloc(1, sizeof *j);
    j->req = req;
    snprintf(j->name, sizeof j->name, "%s", name);
    obs_records_flush(ctx->records);
    obs_logs_flush(ctx->logs);
    store_writer_submit(ctx->obs_writer, false, purge_apply, purge_done, j);
}

static void handle_delete(http_request_t *req, api_ctx_t *ctx)
{
    bool purge;
    if (!purge_wanted(req, &purge)) {
        http_respond_error(req, 400, "bad_request", "purge: must be 1, 0, true or false");
        return;
    }
    api__function_delete(req, ctx, fn_name(req), delete_answered);
}

void api__function_changed(api_ctx_t *ctx, const fn_t *fn)
{
    /* Running instances of the old version drain; new calls get this one. */
    exec_function_changed(ctx->exec, fn);
    async_function_changed(ctx->async, fn);
    if (ctx->durable)
        durable_function_changed(ctx->durable, fn);
}

void api__function_synced(api_ctx_t *ctx, const char *name, registry_sync_t what, fn_t *fn)
{
    switch (what) {
    case REGISTRY_SAME: break;
    case REGISTRY_REMOVED:
        log_debug("api", "function %s was deleted on another node", name);
        /* The node that deleted it deleted its events, executions and
         * subscriptions: doing it again here could take those of the
         * function made again since. */
        api__function_removed(ctx, name, false);
        break;
    case REGISTRY_CREATED:
    case REGISTRY_CHANGED:
        log_debug("api", "function %s is at version %lld from another node", name,
                  (long long)fn->version);
        api__function_changed(ctx, fn);
        fn_clear(fn);
        break;
    }
}

void api__function_removed(api_ctx_t *ctx, const char *name, bool stored)
{
    exec_function_removed(ctx->exec, name);
    async_function_removed(ctx->async, name, stored);
    if (ctx->durable)
        durable_function_removed(ctx->durable, name, stored);
    if (ctx->topics)
        topics_function_removed(ctx->topics, name, stored); /* its subscriptions go too */
    url_table_forget(ctx->urls, name); /* the store deleted its row with the function's */
}

void api__functions_register(http_router_t *router, api_ctx_t *ctx)
{
    /* A create or update carries the zip base64-encoded inside JSON: 4/3 of
     * the zip limit plus room for the settings. */
    size_t put_max = (size_t)(ctx->code_limits.max_zip_bytes / 3 + 1) * 4 + 64 * 1024;
    api__route(router, ctx, HTTP_GET, "/v1/functions", handle_list, 0, false);
    api__route(router, ctx, HTTP_PUT, "/v1/functions/{name}", handle_put, put_max, false);
    api__route(router, ctx, HTTP_GET, "/v1/functions/{name}", handle_get, 0, false);
    api__route(router, ctx, HTTP_DELETE, "/v1/functions/{name}", handle_delete, 0, false);
}
