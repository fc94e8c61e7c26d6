#include "api/api.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cleanup.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "exec/exec.h"
#include "invoke/async.h"
#include "obs/logs.h"
#include "obs/otlp.h"
#include "obs/records.h"

typedef struct api_route {
    struct api_route *next;
    api_handler_fn fn;
    api_ctx_t *ctx;
    api_head_check_fn check; /* NULL: open to all */
    auth_action_t action;    /* what a bearer-checked route does, for the key's role */
    /* Inside routes: the permission they need, and their pattern (owned). */
    const char *perm_kind;
    size_t perm_param;
    char *pattern;
    /* Which path parameters name an object of the caller's tenant (bit i:
     * params[i]): qualified (core/tenant.h) before the handler runs. */
    unsigned names;
} api_route_t;

#define INSIDE_PREFIX "/mayfly"

static api_route_t *routes;

bool api__who(const http_request_t *req, const api_ctx_t *ctx, api_who_t *out)
{
    memset(out, 0, sizeof *out);
    /* Through an instance's own listener, whatever the route (the second
     * door's /mayfly/v1, the Lambda SDKs' durable API): the function. */
    exec_caller_t c;
    if (exec_caller(req, &c) == 0) {
        out->inside = true;
        tenant_of(c.fn->name, out->tenant);
        return true;
    }
    /* The key the route's check found (bearer_check, the Lambda API's
     * signature check), or the development key without keys. */
    out->key = req->principal ? req->principal
               : !ctx->keys || !ctx->keys->count ? auth_bearer_key(ctx->keys, NULL)
                                                : NULL;
    if (!out->key)
        return false;
    snprintf(out->tenant, sizeof out->tenant, "%s", out->key->tenant);
    if (out->key->role != AUTH_ADMIN || ctx->keys->count == 0)
        return true;
    /* An admin works in its own tenant, or in the one it names; lists
     * show every tenant's objects unless it names one. */
    const char *t = http_request_header(req, "X-Mayfly-Tenant");
    if (t && tenant_valid(t, strlen(t)))
        snprintf(out->tenant, sizeof out->tenant, "%s", t);
    else
        out->all = true;
    return true;
}

const char *api__key_id(const http_request_t *req, const api_ctx_t *ctx)
{
    api_who_t who;
    return api__who(req, ctx, &who) && who.key && who.key->id[0] ? who.key->id : NULL;
}

bool api__sees(const api_who_t *who, const char *qname)
{
    return who->all || tenant_owns(who->tenant, qname);
}

const char *api__scope(const http_request_t *req, const api_ctx_t *ctx, char buf[TENANT_MAX + 1])
{
    api_who_t who;
    if (!api__who(req, ctx, &who))
        snprintf(who.tenant, sizeof who.tenant, "%s", TENANT_DEFAULT);
    else if (who.all)
        return NULL;
    memcpy(buf, who.tenant, sizeof who.tenant);
    return buf;
}

static void trampoline(http_request_t *req, void *ud)
{
    api_route_t *rt = ud;
    if (rt->names) {
        api_who_t who;
        if (!api__who(req, rt->ctx, &who)) {
            http_respond_error(req, 401, "unauthorized", "the request's access key is gone");
            return;
        }
        for (size_t i = 0; i < req->nparams; i++) {
            if (!(rt->names & (1u << i)))
                continue;
            /* No name a user gives holds the separator: one that does
             * would reach into another tenant. */
            if (strchr(req->params[i], TENANT_SEP)) {
                http_respond_error(req, 400, "bad_request", "`%.64s` is not a name: a name "
                                   "is made of [A-Za-z0-9_.-]", req->params[i]);
                return;
            }
            char q[TENANT_QNAME_MAX + 1];
            if (!tenant_qualify(who.tenant, req->params[i], q, sizeof q)) {
                http_respond_error(req, 400, "bad_request", "`%.64s`: a name is at most %d "
                                   "characters", req->params[i], TENANT_LOCAL_MAX);
                return;
            }
            free(req->params[i]);
            req->params[i] = xstrdup(q);
        }
    }
    rt->fn(req, rt->ctx);
}

/* Which parameters of pattern name a tenant's objects: {name} and
 * {store}, but a tenant's own name under /v1/tenants. */
static unsigned name_params(const char *pattern)
{
    if (strstr(pattern, "/v1/tenants"))
        return 0;
    unsigned names = 0, i = 0;
    for (const char *p = strchr(pattern, '{'); p; p = strchr(p + 1, '{'), i++)
        if (!strncmp(p, "{name}", 6) || !strncmp(p, "{store}", 7))
            names |= 1u << i;
    return names;
}

/* Runs before the body is read: a client without credentials learns so
 * at once, and the server holds none of what it was about to upload. */
static int bearer_check(http_request_t *req, const api_route_t *rt, buf_t *refusal);

static int head_check(http_request_t *req, void *ud, buf_t *refusal)
{
    api_route_t *rt = ud;
    if (!rt->check)
        return bearer_check(req, rt, refusal);
    return rt->check(req, rt->ctx, refusal);
}

static int inside_refuse(buf_t *refusal, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int inside_refuse(buf_t *refusal, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cleanup_json json_t *doc =
        json_pack("{s:{s:s, s:s}}", "error", "code", "forbidden", "message", msg);
    json_dump_buf(refusal, doc);
    return 403;
}

/* The second door's check: the calling function's permissions. */
static int inside_check(http_request_t *req, void *ud, buf_t *refusal)
{
    api_route_t *rt = ud;
    exec_caller_t c;
    if (exec_caller(req, &c) < 0)
        return inside_refuse(refusal, "this API answers functions on their own listener only");
    const char *name = rt->perm_param < req->nparams ? req->params[rt->perm_param] : "";
    if (!fn_permits(c.fn, rt->perm_kind, name))
        return inside_refuse(refusal,
                             "%s lacks the permission `%s:%.64s`: add it to the function's "
                             "permissions",
                             c.fn->name, rt->perm_kind, name);
    return 0;
}

bool api__inside(const http_request_t *req, exec_caller_t *caller)
{
    const http_route_t *route = req->route;
    if (!route || strncmp(route->pattern, INSIDE_PREFIX "/", sizeof INSIDE_PREFIX))
        return false;
    exec_caller_t c;
    if (exec_caller(req, caller ? caller : &c) < 0)
        return false;
    return true;
}

auth_action_t api__action(enum http_method method, const char *pattern)
{
    static const char *const invoking[] = { "/v1/functions/{name}/invoke",
                                            "/v1/topics/{name}/publish",
                                            "/v1/invocations/{id}/replay" };
    if (!strcmp(pattern, "/v1/whoami"))
        return AUTH_ANY;
    if (!strncmp(pattern, "/v1/tenants", 11))
        return AUTH_ADMINISTER;
    if (method == HTTP_GET || method == HTTP_HEAD)
        return !strncmp(pattern, "/v1/invocations/{id}", 20) ? AUTH_READ_CALL : AUTH_READ;
    for (size_t i = 0; i < sizeof invoking / sizeof invoking[0]; i++)
        if (method == HTTP_POST && !strcmp(pattern, invoking[i]))
            return AUTH_INVOKE;
    return AUTH_DEPLOY;
}

void api__role_refusal(const auth_key_t *key, auth_action_t action, const char *what, char *msg,
                       size_t len)
{
    snprintf(msg, len, "the role %s may not %s (%s): it takes the role %s or above",
             auth_role_name(key->role), auth_action_name(action), what,
             auth_role_name(auth_action_role(action)));
}

static int refuse_role(const auth_key_t *key, auth_action_t action, const char *what,
                       buf_t *refusal)
{
    char msg[320];
    api__role_refusal(key, action, what, msg, sizeof msg);
    cleanup_json json_t *doc =
        json_pack("{s{ss ss}}", "error", "code", "forbidden", "message", msg);
    json_dump_buf(refusal, doc);
    buf_addch(refusal, '\n');
    return 403;
}

/* /v1's credentials: the bearer token `ID:SECRET` of an access key, whose
 * role must allow what the route does. */
static int bearer_check(http_request_t *req, const api_route_t *rt, buf_t *refusal)
{
    const auth_key_t *key =
        auth_bearer_key(rt->ctx->keys, http_request_header(req, "Authorization"));
    if (!key) {
        http_header_add(req, "WWW-Authenticate", "Bearer realm=\"mayfly\"");
        buf_adds(refusal,
                 "{\"error\":{\"code\":\"unauthorized\",\"message\":"
                 "\"missing or wrong credentials: send `Authorization: Bearer ID:SECRET`\"}}\n");
        return 401;
    }
    req->principal = key;
    if (auth_role_allows(key->role, rt->action))
        return 0;
    char what[160];
    snprintf(what, sizeof what, "%s %s", http_method_str(req->method),
             req->route ? req->route->pattern : req->path);
    return refuse_role(key, rt->action, what, refusal);
}

/* check NULL with checked: the bearer check, for the action the route's
 * method and pattern say (api__action, worked out once here). */
static void add_route(http_router_t *router, api_ctx_t *ctx, enum http_method method,
                      const char *pattern, api_handler_fn fn, size_t max_body,
                      api_head_check_fn check, bool checked)
{
    api_route_t *rt = xcalloc(1, sizeof *rt);
    rt->fn = fn;
    rt->ctx = ctx;
    rt->check = check;
    rt->action = api__action(method, pattern);
    rt->names = !strncmp(pattern, "/v1/", 4) ? name_params(pattern) : 0;
    rt->next = routes;
    routes = rt;
    http_router_add_checked(router, method, pattern, trampoline, checked ? head_check : NULL, rt,
                            max_body);
}

void api__route_checked(http_router_t *router, api_ctx_t *ctx, enum http_method method,
                        const char *pattern, api_handler_fn fn, size_t max_body,
                        api_head_check_fn check)
{
    add_route(router, ctx, method, pattern, fn, max_body, check, check != NULL);
}

void api__route(http_router_t *router, api_ctx_t *ctx, enum http_method method, const char *pattern,
                api_handler_fn fn, size_t max_body, bool open)
{
    add_route(router, ctx, method, pattern, fn, max_body, NULL, !open);
}

void api__route_both(http_router_t *router, api_ctx_t *ctx, enum http_method method,
                     const char *pattern, api_handler_fn fn, size_t max_body, const char *perm_kind,
                     size_t perm_param)
{
    api__route(router, ctx, method, pattern, fn, max_body, false);
    if (!ctx->inside)
        return;
    api_route_t *rt = xcalloc(1, sizeof *rt);
    rt->fn = fn;
    rt->ctx = ctx;
    rt->perm_kind = perm_kind;
    rt->perm_param = perm_param;
    rt->pattern = xasprintf(INSIDE_PREFIX "%s", pattern);
    rt->names = name_params(pattern);
    rt->next = routes;
    routes = rt;
    http_router_add_checked(ctx->inside, method, rt->pattern, trampoline, inside_check, rt,
                            max_body);
}

void api_register(http_router_t *router, api_ctx_t *ctx)
{
    api__system_register(router, ctx);
    api__functions_register(router, ctx);
    api__invoke_register(router, ctx);
    api__invocations_register(router, ctx);
    api__replay_register(router, ctx);
    api__logs_register(router, ctx);
    api__async_register(router, ctx);
    api__lambda_register(router, ctx);
    api__kv_register(router, ctx);
    api__volumes_register(router, ctx);
    api__schedules_register(router, ctx);
    api__topics_register(router, ctx);
    api__urls_register(router, ctx);
    api__durable_register(router, ctx);
    api__cluster_nodes_register(router, ctx);
    api__usage_register(router, ctx);
    api__tenants_register(router, ctx);
    api__budgets_register(router, ctx);
    api__advice_register(router, ctx);
    api__alerts_register(router, ctx);
    api__series_register(router, ctx);
    api__code_register(router, ctx);
}

void api_release(void)
{
    api__durable_release();
    while (routes) {
        api_route_t *rt = routes;
        routes = rt->next;
        free(rt->pattern);
        free(rt);
    }
}

typedef struct api_read {
    http_request_t *req;
    api_ctx_t *ctx;
    api_read_fn read;
    api_read_done_fn done;
    void *arg;
} api_read_t;

static int api__read_apply(void *db, void *arg, mf_error_t *err)
{
    api_read_t *a = arg;
    return a->read(db, a->arg, err);
}

static void api__read_answer(void *arg, int r, const mf_error_t *err)
{
    api_read_t *a = arg;
    a->done(a->req, a->ctx, a->arg, r, err);
    free(a);
}

bool api__query_time(http_request_t *req, const char *name, int64_t *ms)
{
    buf_t v = BUF_INIT;
    bool ok = !http_request_query(req, name, &v) || !v.len;
    size_t len = v.len;
    if (!ok)
        ok = (len >= 1 && len <= 18 && strspn(v.data, "0123456789") == len &&
              (*ms = strtoll(v.data, NULL, 10), true)) ||
             clock_parse_rfc3339(v.data, ms) == 0;
    buf_release(&v);
    if (!ok)
        http_respond_error(req, 400, "bad_request",
                           "%s: must be an RFC 3339 time (2026-12-05T10:00:00Z, a fraction and an "
                           "offset allowed) or milliseconds since the epoch",
                           name);
    return ok;
}

api_pending_t *api__pending(http_request_t *req, api_ctx_t *ctx, const char *name, bool create)
{
    api_pending_t *p = xcalloc(1, sizeof *p);
    p->req = req;
    p->ctx = ctx;
    snprintf(p->name, sizeof p->name, "%s", name);
    p->create = create;
    return p;
}

void api__read(http_request_t *req, api_ctx_t *ctx, store_writer_t *writer, api_read_fn read,
               api_read_done_fn done, void *arg)
{
    api_read_t *a = xmalloc(sizeof *a);
    *a = (api_read_t){ req, ctx, read, done, arg };
    store_writer_submit_read(writer, api__read_apply, api__read_answer, a);
}

void api__read_records(http_request_t *req, api_ctx_t *ctx, api_read_fn read,
                       api_read_done_fn done, void *arg)
{
    /* Records and logs share one writer (see cmd_server). */
    obs_logs_flush(ctx->logs);
    obs_records_flush(ctx->records);
    api__read(req, ctx, ctx->obs_writer, read, done, arg);
}

void api__read_queue(http_request_t *req, api_ctx_t *ctx, api_read_fn read,
                     api_read_done_fn done, void *arg)
{
    api__read(req, ctx, async_writer(ctx->async), read, done, arg);
}

const char *api__trace_context(http_request_t *req, char out[56])
{
    uint8_t t[16], p[8];
    const char *tp = http_request_header(req, "traceparent");
    if (tp && obs_traceparent_parse(tp, t, p, NULL) == 0)
        return tp;
    const char *xray = http_request_header(req, "X-Amzn-Trace-Id");
    if (xray && obs_xray_parse(xray, t, p) == 0) {
        obs_traceparent_format(t, p, out, 56);
        return out;
    }
    return NULL;
}

bool api__call_origin(http_request_t *req, api_call_origin_t *o)
{
    memset(o, 0, sizeof *o);
    exec_caller_t caller;
    snprintf(o->trigger, sizeof o->trigger, "invoke");
    if (!api__inside(req, &caller) || !caller.request_id) {
        o->traceparent = api__trace_context(req, o->tp);
        return true;
    }
    snprintf(o->trigger, sizeof o->trigger, "function:%s", tenant_local(caller.fn->name));
    snprintf(o->tp, sizeof o->tp, "%s", caller.traceparent);
    snprintf(o->caller, sizeof o->caller, "%s", caller.request_id);
    o->traceparent = o->tp;
    o->caller_request_id = o->caller;
    o->call_depth = caller.call_depth + 1;
    if (o->call_depth <= EXEC_MAX_CALL_DEPTH)
        return true;
    http_respond_error(req, 508, "loop_detected",
                       "this call would be the %dth in a chain of calls between functions "
                       "(at most %d): a function calling itself, or functions calling each "
                       "other, without end? The chain is stopped here",
                       o->call_depth, EXEC_MAX_CALL_DEPTH);
    return false;
}

void api__respond_error(http_request_t *req, int status, const char *code, const char *msg)
{
    char shown[1024];
    snprintf(shown, sizeof shown, "%s", msg ? msg : "");
    tenant_strip(shown);
    http_respond_error(req, status, code, "%s", shown);
}

void api_respond_failure(http_request_t *req, int r, const mf_error_t *err)
{
    char shown[sizeof err->msg];
    snprintf(shown, sizeof shown, "%s", err && err->msg[0] ? err->msg : "unknown error");
    tenant_strip(shown);
    const char *msg = shown;
    switch (r) {
    case -EINVAL: http_respond_error(req, 400, "bad_request", "%s", msg); return;
    case -ENOENT: http_respond_error(req, 404, "not_found", "%s", msg); return;
    case -EEXIST:
    case -EBUSY:
    case -ESTALE: http_respond_error(req, 409, "conflict", "%s", msg); return;
    case -EFBIG: http_respond_error(req, 413, "payload_too_large", "%s", msg); return;
    /* A spent budget refuses the call (meter/budget.h): DESIGN.md's 402. */
    case -EDQUOT: http_respond_error(req, 402, "budget_exceeded", "%s", msg); return;
    case -ESHUTDOWN: http_respond_error(req, 503, "unavailable", "%s", msg); return;
    /* The store is out of reach (store/health.h): its message says so and
     * asks the client to retry; nothing was acknowledged. */
    case -ECONNRESET:
    case -ENOTCONN:
        http_header_add(req, "Retry-After", "1");
        http_respond_error(req, 503, "unavailable", "%s", msg);
        return;
    default:
        log_error("api", "%s %s: %s", http_method_str(req->method), req->path, msg);
        http_respond_error(req, 500, "internal", "internal error: %s", msg);
        return;
    }
}
