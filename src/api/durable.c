/* Durable executions over HTTP (docs/durable.md): Lambda's 2025-12-01
 * actions (SigV4 outside; inside a sandbox, on the instance's own
 * listener, where the listener is the caller's identity), /v1's views,
 * and the start of an execution when a durable function is invoked. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "store/durable.h"
#include "core/cleanup.h"
#include "core/json.h"
#include "core/xalloc.h"
#include "durable/durable.h"
#include "exec/exec.h"

#define DURABLE_BODY_MAX (6u << 20)
#define DURABLE_SYNC_INPUT_MAX ((size_t)6 << 20)
#define DURABLE_ASYNC_INPUT_MAX ((size_t)256 << 10)

/* A route's handler and the door it was registered at. */
typedef struct durable_route {
    api_ctx_t *ctx;
    api_handler_fn fn;
    bool inside;
} durable_route_t;

/* Who asks: the function whose instance the request came through (inside),
 * or NULL from outside once the request's signature checks out. false
 * once it has answered. */
static bool lambda_caller(http_request_t *req, api_ctx_t *ctx, char caller[TENANT_QNAME_MAX + 1],
                          bool *inside)
{
    exec_caller_t c;
    *inside = false;
    caller[0] = '\0';
    if (exec_caller(req, &c) == 0) {
        *inside = true;
        snprintf(caller, TENANT_QNAME_MAX + 1, "%s", c.fn->name);
        return true;
    }
    return api__lambda_authorized(req, ctx);
}

static void answer(void *ud, const durable_answer_t *a)
{
    http_request_t *req = ud;
    if (a->status >= 400) {
        api__lambda_error(req, a->status, a->error_type ? a->error_type : "ServiceException", "%s",
                          a->message ? a->message : "");
        return;
    }
    if (a->body)
        http_respond_json(req, a->status, a->body);
    else
        http_respond(req, a->status, "application/json", "{}", 2);
}

/* The execution ARN of the path, its function qualified with the
 * caller's tenant (core/tenant.h); another account's answers 404, as an
 * execution that is not there. */
static bool path_arn(http_request_t *req, api_ctx_t *ctx, durable_arn_t *arn)
{
    if (req->nparams < 1 || durable_arn_parse(req->params[0], arn) < 0) {
        api__lambda_error(req, 400, "InvalidParameterValueException",
                          "DurableExecutionArn: not an execution ARN "
                          "(arn:aws:lambda:REGION:ACCOUNT:function:NAME:$LATEST/"
                          "durable-execution/NAME/ID)");
        return false;
    }
    api_who_t who;
    char account[13], local[TENANT_QNAME_MAX + 1];
    if (!api__who(req, ctx, &who))
        snprintf(who.tenant, sizeof who.tenant, "%s", TENANT_DEFAULT);
    tenant_account(who.tenant, account);
    snprintf(local, sizeof local, "%s", arn->function);
    if (strcmp(account, arn->account) ||
        !tenant_qualify(who.tenant, local, arn->function, sizeof arn->function)) {
        api__lambda_error(req, 404, "ResourceNotFoundException", "Execution not found: %s",
                          req->params[0]);
        return false;
    }
    return true;
}

static void handle_checkpoint(http_request_t *req, api_ctx_t *ctx)
{
    char caller[TENANT_QNAME_MAX + 1];
    bool inside;
    durable_arn_t arn;
    if (!lambda_caller(req, ctx, caller, &inside) || !path_arn(req, ctx, &arn))
        return;
    durable_checkpoint(ctx->durable, inside ? caller : NULL, &arn, req->body.data, req->body.len,
                       answer, req);
}

static int query_int(http_request_t *req, const char *name, int def)
{
    cleanup_buf buf_t v = BUF_INIT;
    if (!http_request_query(req, name, &v) || !v.len)
        return def;
    return atoi(v.data);
}

static void handle_state(http_request_t *req, api_ctx_t *ctx)
{
    char caller[TENANT_QNAME_MAX + 1];
    bool inside;
    durable_arn_t arn;
    if (!lambda_caller(req, ctx, caller, &inside) || !path_arn(req, ctx, &arn))
        return;
    cleanup_buf buf_t token = BUF_INIT, marker = BUF_INIT;
    http_request_query(req, "CheckpointToken", &token);
    http_request_query(req, "Marker", &marker);
    durable_state(ctx->durable, inside ? caller : NULL, &arn, token.data ? token.data : "",
                  marker.data ? marker.data : "", query_int(req, "MaxItems", 0), answer, req);
}

/* An execution a caller may see: its own function's inside, any outside. */
static bool visible(http_request_t *req, const durable_arn_t *arn, bool inside, const char *caller)
{
    if (inside && strcmp(caller, arn->function)) {
        api__lambda_error(req, 403, "AccessDeniedException",
                          "a function sees its own executions only");
        return false;
    }
    return true;
}

/* The execution ARN in the path, from a caller that may see it (outside,
 * or the execution's own function inside); else answered. */
static bool visible_arn(http_request_t *req, api_ctx_t *ctx, durable_arn_t *arn)
{
    char caller[TENANT_QNAME_MAX + 1];
    bool inside;
    return lambda_caller(req, ctx, caller, &inside) && path_arn(req, ctx, arn) &&
           visible(req, arn, inside, caller);
}

static void respond_read(http_request_t *req, int r, json_t *out, const mf_error_t *err)
{
    if (r < 0) {
        if (r == -ENOENT)
            api__lambda_error(req, 404, "ResourceNotFoundException", "%s", err->msg);
        else if (r == -EINVAL)
            api__lambda_error(req, 400, "InvalidParameterValueException", "%s", err->msg);
        else
            api__lambda_failure(req, r, err);
        return;
    }
    http_respond_json(req, 200, out);
    json_decref(out);
}

/* An execution named by its id, looked at before a request about it goes
 * on: it must be of the function the ARN names (want), or, with want "",
 * of a function of the caller's tenant. Another's is answered as absent
 * (core/tenant.h): an id alone never reaches across tenants. */
typedef void (*owned_fn)(http_request_t *req, api_ctx_t *ctx, const char *id);
typedef struct owner_read {
    char id[37];
    char want[TENANT_QNAME_MAX + 1];
    char function[TENANT_QNAME_MAX + 1];
    bool lambda;
    owned_fn then;
} owner_read_t;

static int owner_read(void *db, void *arg, mf_error_t *err)
{
    owner_read_t *o = arg;
    store_durable_exec_t ex = { 0 };
    int r = store_durable_exec_get(db, o->id, &ex, err);
    if (r == 0)
        snprintf(o->function, sizeof o->function, "%s", ex.function);
    store_durable_exec_clear(&ex);
    return r;
}

static void owner_answer(http_request_t *req, api_ctx_t *ctx, void *arg, int r,
                         const mf_error_t *err)
{
    owner_read_t *o = arg;
    api_who_t who;
    bool mine = r == 0 && (o->want[0] ? !strcmp(o->function, o->want)
                                      : api__who(req, ctx, &who) && api__sees(&who, o->function));
    if (r < 0 && r != -ENOENT) {
        if (o->lambda)
            api__lambda_failure(req, r, err);
        else
            api_respond_failure(req, r, err);
    } else if (!mine) {
        if (o->lambda)
            api__lambda_error(req, 404, "ResourceNotFoundException", "Execution not found: %s",
                              o->id);
        else
            http_respond_error(req, 404, "not_found", "no durable execution %s", o->id);
    } else {
        o->then(req, ctx, o->id);
    }
    free(o);
}

static void owned(http_request_t *req, api_ctx_t *ctx, const char *id, const char *want,
                  bool lambda, owned_fn then)
{
    owner_read_t *o = xcalloc(1, sizeof *o);
    snprintf(o->id, sizeof o->id, "%s", id);
    snprintf(o->want, sizeof o->want, "%s", want ? want : "");
    o->lambda = lambda;
    o->then = then;
    api__read_queue(req, ctx, owner_read, owner_answer, o);
}

/* A view of executions, read by a job of the queue's writer (off the loop):
 * what it asks for, then the JSON it gives. */
typedef enum { VIEW_GET, VIEW_HISTORY, VIEW_LIST } view_kind_t;

typedef struct view_read {
    durable_t *d;
    view_kind_t kind;
    char view;                 /* 'l': answered as the Lambda API answers; 'v': /v1 */
    bool with_ops;             /* GET */
    char *id;                  /* GET, HISTORY */
    char *function;            /* LIST: NULL for every function's */
    buf_t status, marker;      /* LIST's statuses, HISTORY's marker ("" for none) */
    int limit;                 /* HISTORY's MaxItems, LIST's limit */
    const char *wrap;          /* LIST: the member its array goes under */
    json_t *out;
} view_read_t;

static view_read_t *view_new(api_ctx_t *ctx, view_kind_t kind, char view)
{
    view_read_t *v = xcalloc(1, sizeof *v);
    v->d = ctx->durable;
    v->kind = kind;
    v->view = view;
    buf_init(&v->status, 0);
    buf_init(&v->marker, 0);
    return v;
}

static int view_read(void *db, void *arg, mf_error_t *err)
{
    view_read_t *v = arg;
    json_t *list;
    int r;
    switch (v->kind) {
    case VIEW_GET: return durable_get(v->d, db, v->id, v->view, v->with_ops, &v->out, err);
    case VIEW_HISTORY:
        return durable_history(v->d, db, v->id, v->marker.len ? v->marker.data : "", v->limit,
                               &v->out, err);
    case VIEW_LIST:
        r = durable_list(v->d, db, v->function,
                         v->status.len ? v->status.data : NULL, v->limit, v->view, &list, err);
        if (r == 0)
            v->out = json_pack("{s:o}", v->wrap, list);
        return r;
    }
    return -EINVAL;
}

/* Whether the execution j (as either view shows it) is of a function
 * who sees: its ARN's account is the tenant's (core/tenant.h). */
static bool sees_exec(const api_who_t *who, const json_t *j)
{
    if (who->all)
        return true;
    const char *arn = json_string_value(json_object_get(j, "arn"));
    if (!arn)
        arn = json_string_value(json_object_get(j, "DurableExecutionArn"));
    char account[13], want[13];
    tenant_account(who->tenant, want);
    /* arn:aws:lambda:REGION:ACCOUNT:… */
    const char *p = arn;
    for (int colons = 0; p && *p && colons < 4; p++)
        colons += *p == ':';
    if (!p || strlen(p) < 12)
        return false;
    snprintf(account, sizeof account, "%.12s", p);
    return !strcmp(account, want);
}

/* Another tenant's executions: left out of a list, absent when asked for. */
static int view_own(http_request_t *req, api_ctx_t *ctx, view_read_t *v, mf_error_t *err)
{
    api_who_t who;
    if (!api__who(req, ctx, &who))
        snprintf(who.tenant, sizeof who.tenant, "%s", TENANT_DEFAULT);
    if (v->kind == VIEW_GET && !sees_exec(&who, v->out)) {
        json_decref(v->out);
        v->out = NULL;
        return mf_error_plain(err, ENOENT, "no durable execution %s", v->id);
    }
    json_t *list = v->kind == VIEW_LIST ? json_object_get(v->out, v->wrap) : NULL;
    for (size_t i = json_array_size(list); i-- > 0;)
        if (!sees_exec(&who, json_array_get(list, i)))
            json_array_remove(list, i);
    return 0;
}

static void view_answer(http_request_t *req, api_ctx_t *ctx, void *arg, int r,
                        const mf_error_t *e)
{
    view_read_t *v = arg;
    mf_error_t own = MF_ERROR_INIT;
    const mf_error_t *err = e;
    if (r == 0 && (r = view_own(req, ctx, v, &own)) < 0)
        err = &own;
    if (v->view == 'l') {
        respond_read(req, r, v->out, err);
    } else if (r < 0) {
        api_respond_failure(req, r, err);
    } else {
        http_respond_json(req, 200, v->out);
        json_decref(v->out);
    }
    buf_release(&v->status);
    buf_release(&v->marker);
    free(v->id);
    free(v->function);
    free(v);
}

/* Another tenant's execution is left out by the view's own check
 * (view_own): no read before it. */
static void handle_get(http_request_t *req, api_ctx_t *ctx)
{
    durable_arn_t arn;
    if (!visible_arn(req, ctx, &arn))
        return;
    view_read_t *v = view_new(ctx, VIEW_GET, 'l');
    v->id = xstrdup(arn.id);
    api__read_queue(req, ctx, view_read, view_answer, v);
}

static void history_owned(http_request_t *req, api_ctx_t *ctx, const char *id)
{
    view_read_t *v = view_new(ctx, VIEW_HISTORY, 'l');
    v->id = xstrdup(id);
    http_request_query(req, "Marker", &v->marker);
    v->limit = query_int(req, "MaxItems", 0);
    api__read_queue(req, ctx, view_read, view_answer, v);
}

static void handle_history(http_request_t *req, api_ctx_t *ctx)
{
    durable_arn_t arn;
    if (visible_arn(req, ctx, &arn))
        owned(req, ctx, arn.id, arn.function, true, history_owned);
}

static void stop_owned(http_request_t *req, api_ctx_t *ctx, const char *id)
{
    cleanup_json json_t *error =
        req->body.len ? json_loadb(req->body.data, req->body.len, 0, NULL) : NULL;
    durable_stop_execution(ctx->durable, id, error, answer, req);
}

static void handle_stop(http_request_t *req, api_ctx_t *ctx)
{
    durable_arn_t arn;
    if (!visible_arn(req, ctx, &arn))
        return;
    cleanup_json json_t *error =
        req->body.len ? json_loadb(req->body.data, req->body.len, 0, NULL) : NULL;
    if (req->body.len && !json_is_object(error)) {
        api__lambda_error(req, 400, "InvalidParameterValueException",
                          "the body must be an ErrorObject or empty");
        return;
    }
    owned(req, ctx, arn.id, arn.function, true, stop_owned);
}

static void handle_list_by_function(http_request_t *req, api_ctx_t *ctx)
{
    char caller[TENANT_QNAME_MAX + 1];
    bool inside;
    if (!lambda_caller(req, ctx, caller, &inside))
        return;
    char name[TENANT_QNAME_MAX + 1];
    if (!api__lambda_path_name(req, ctx, name))
        return;
    if (inside && strcmp(caller, name)) {
        api__lambda_error(req, 403, "AccessDeniedException",
                          "a function sees its own executions only");
        return;
    }
    view_read_t *v = view_new(ctx, VIEW_LIST, 'l');
    v->function = xstrdup(name);
    http_request_query(req, "Statuses", &v->status);
    v->limit = query_int(req, "MaxItems", 0);
    v->wrap = "DurableExecutions";
    api__read_queue(req, ctx, view_read, view_answer, v);
}

static void handle_callback(http_request_t *req, api_ctx_t *ctx, const char *kind)
{
    char caller[TENANT_QNAME_MAX + 1];
    bool inside;
    if (!lambda_caller(req, ctx, caller, &inside))
        return;
    /* A callback id is the capability: whoever holds it, a function
     * inside or a client outside, may complete it. */
    durable_callback(ctx->durable, req->params[0], kind, req->body.data, req->body.len, answer,
                     req);
}

static void handle_succeed(http_request_t *req, api_ctx_t *ctx)
{
    handle_callback(req, ctx, "succeed");
}

static void handle_fail(http_request_t *req, api_ctx_t *ctx)
{
    handle_callback(req, ctx, "fail");
}

static void handle_heartbeat(http_request_t *req, api_ctx_t *ctx)
{
    handle_callback(req, ctx, "heartbeat");
}

/* ---- /v1 ---------------------------------------------------------------- */

static void v1_answer(void *ud, const durable_answer_t *a)
{
    http_request_t *req = ud;
    if (a->status >= 400) {
        const char *code = a->status == 404   ? "not_found"
                           : a->status == 409 ? "conflict"
                           : a->status == 413 ? "too_large"
                           : a->status == 503 ? "unavailable"
                           : a->status >= 500 ? "internal"
                                              : "bad_request";
        api__respond_error(req, a->status, code, a->message);
        return;
    }
    if (a->body)
        http_respond_json(req, 200, a->body);
    else
        http_respond(req, 200, "application/json", "{}", 2);
}

static void v1_list(http_request_t *req, api_ctx_t *ctx)
{
    cleanup_buf buf_t function = BUF_INIT;
    char q[TENANT_QNAME_MAX + 1] = "";
    if (http_request_query(req, "function", &function) && function.len) {
        api_who_t who;
        if (!api__who(req, ctx, &who))
            snprintf(who.tenant, sizeof who.tenant, "%s", TENANT_DEFAULT);
        if (!registry_valid_local(function.data) ||
            !tenant_qualify(who.tenant, function.data, q, sizeof q)) {
            http_respond_error(req, 400, "bad_request",
                               "function: must match [A-Za-z0-9_-]{1,%d}", FN_NAME_MAX);
            return;
        }
    }
    view_read_t *v = view_new(ctx, VIEW_LIST, 'v');
    v->function = q[0] ? xstrdup(q) : NULL;
    http_request_query(req, "status", &v->status);
    for (size_t i = 0; i < v->status.len; i++)
        if (v->status.data[i] >= 'a' && v->status.data[i] <= 'z')
            v->status.data[i] = (char)(v->status.data[i] - 'a' + 'A');
    v->limit = query_int(req, "limit", 100);
    v->wrap = "executions";
    api__read_queue(req, ctx, view_read, view_answer, v);
}

static void v1_get(http_request_t *req, api_ctx_t *ctx)
{
    view_read_t *v = view_new(ctx, VIEW_GET, 'v');
    v->with_ops = true;
    v->id = xstrdup(req->params[0]);
    api__read_queue(req, ctx, view_read, view_answer, v);
}

static void v1_stop_owned(http_request_t *req, api_ctx_t *ctx, const char *id)
{
    durable_stop_execution(ctx->durable, id, NULL, v1_answer, req);
}

static void v1_stop(http_request_t *req, api_ctx_t *ctx)
{
    owned(req, ctx, req->params[0], NULL, false, v1_stop_owned);
}

static void v1_callback(http_request_t *req, api_ctx_t *ctx)
{
    const char *kind = req->params[1];
    if (strcmp(kind, "succeed") && strcmp(kind, "fail") && strcmp(kind, "heartbeat")) {
        http_respond_error(req, 404, "not_found", "a callback is sent succeed, fail or heartbeat");
        return;
    }
    durable_callback(ctx->durable, req->params[0], kind, req->body.data, req->body.len, v1_answer,
                     req);
}

/* ---- starting executions ---------------------------------------------------- */

typedef struct start_call {
    http_request_t *req;
    bool lambda;
    bool wait;
} start_call_t;

static void error_document(const char *error_json, buf_t *out)
{
    cleanup_json json_t *e = error_json ? json_loads(error_json, 0, NULL) : NULL;
    const char *type = json_string_value(json_object_get(e, "ErrorType"));
    const char *msg = json_string_value(json_object_get(e, "ErrorMessage"));
    cleanup_json json_t *doc =
        json_pack("{s:s, s:s}", "errorType", type ? type : "Error", "errorMessage", msg ? msg : "");
    json_dump_buf(out, doc);
}

static void started(void *ud, const durable_outcome_t *o)
{
    start_call_t *c = ud;
    http_request_t *req = c->req;
    bool wait = c->wait, lambda = c->lambda;
    free(c);
    if (o->r < 0) {
        if (lambda) {
            if (o->r == -EEXIST)
                api__lambda_error(req, 409, "DurableExecutionAlreadyStartedException", "%s",
                                  o->err->msg);
            else
                api__lambda_failure(req, o->r, o->err);
        } else {
            api_respond_failure(req, o->r, o->err);
        }
        return;
    }
    http_header_add(req, lambda ? "X-Amz-Durable-Execution-Arn" : "X-Mayfly-Durable-Execution-Arn",
                    "%s", o->arn);
    if (!wait) {
        if (lambda) {
            http_header_add(req, "x-amzn-RequestId", "%s", o->id);
            http_respond(req, 202, NULL, NULL, 0);
        } else {
            cleanup_json json_t *out =
                json_pack("{s:s, s:s, s:s}", "request_id", o->id, "execution_id", o->id,
                          "durable_execution_arn", o->arn);
            http_respond_json(req, 202, out);
        }
        return;
    }
    if (lambda)
        http_header_add(req, "X-Amz-Executed-Version", "$LATEST");
    cleanup_buf buf_t body = BUF_INIT;
    if (!strcmp(o->status, "SUCCEEDED")) {
        buf_adds(&body, o->result ? o->result : "null");
    } else {
        http_header_add(req, lambda ? "X-Amz-Function-Error" : "X-Mayfly-Function-Error",
                        "Unhandled");
        error_document(o->error, &body);
    }
    http_respond_buf(req, 200, "application/json", &body);
}

bool api__durable_invoke(http_request_t *req, api_ctx_t *ctx, const char *function, bool lambda,
                         bool async)
{
    if (!durable_is_durable(ctx->durable, function))
        return false;
    /* The input is bounded as the call's event is: 6 MiB, 256 KiB queued. */
    size_t max = async ? DURABLE_ASYNC_INPUT_MAX : DURABLE_SYNC_INPUT_MAX;
    if (req->body.len > max) {
        if (lambda)
            api__lambda_error(req, 413, "RequestEntityTooLargeException",
                              "Request must be smaller than %zu bytes for the InvokeFunction "
                              "operation",
                              max);
        else
            http_respond_error(req, 413, "too_large",
                               "a durable execution's input is at most %zu "
                               "bytes (%s)",
                               max, async ? "queued" : "synchronous");
        return true;
    }
    const char *name = http_request_header(req, lambda ? "X-Amz-Durable-Execution-Name"
                                                       : "X-Mayfly-Durable-Execution-Name");
    start_call_t *c = xcalloc(1, sizeof *c);
    c->req = req;
    c->lambda = lambda;
    c->wait = !async;
    mf_error_t err = MF_ERROR_INIT;
    durable_start_opts_t opts = {.name = name, .wait = !async};
    int r = durable_start(ctx->durable, function, &req->body, &opts, started, c, &err);
    if (r < 0) {
        free(c);
        if (lambda)
            api__lambda_error(req,
                              r == -EINVAL   ? 400
                              : r == -ENOENT ? 404
                                             : 503,
                              r == -EINVAL   ? "InvalidParameterValueException"
                              : r == -ENOENT ? "ResourceNotFoundException"
                                             : "ServiceException",
                              "%s", err.msg);
        else
            api_respond_failure(req, r, &err);
    }
    return true;
}

/* ---- routes ------------------------------------------------------------------ */

static const struct {
    enum http_method method;
    const char *pattern;
    api_handler_fn fn;
} durable_routes[] = {
    {HTTP_POST, "/2025-12-01/durable-executions/{arn*}/checkpoint", handle_checkpoint},
    {HTTP_GET, "/2025-12-01/durable-executions/{arn*}/state", handle_state},
    {HTTP_GET, "/2025-12-01/durable-executions/{arn*}", handle_get},
    {HTTP_GET, "/2025-12-01/durable-executions/{arn*}/history", handle_history},
    {HTTP_POST, "/2025-12-01/durable-executions/{arn*}/stop", handle_stop},
    {HTTP_GET, "/2025-12-01/functions/{name}/durable-executions", handle_list_by_function},
    {HTTP_POST, "/2025-12-01/durable-execution-callbacks/{id}/succeed", handle_succeed},
    {HTTP_POST, "/2025-12-01/durable-execution-callbacks/{id}/fail", handle_fail},
    {HTTP_POST, "/2025-12-01/durable-execution-callbacks/{id}/heartbeat", handle_heartbeat},
};

static void inside_trampoline(http_request_t *req, void *ud)
{
    durable_route_t *rt = ud;
    rt->fn(req, rt->ctx);
}

/* Inside, the listener is the identity: a request must come through an
 * instance's own listener, which it cannot do from anywhere else. */
static int inside_check(http_request_t *req, void *ud, buf_t *refusal)
{
    exec_caller_t c;
    if (exec_caller(req, &c) == 0)
        return 0;
    buf_adds(refusal, "{\"Type\":\"AccessDeniedException\",\"message\":\"not a function's "
                      "listener\"}");
    return 403;
}

static durable_route_t *inside_routes[sizeof durable_routes / sizeof durable_routes[0]];

void api__durable_register(http_router_t *router, api_ctx_t *ctx)
{
    if (!ctx->durable)
        return;
    for (size_t i = 0; i < sizeof durable_routes / sizeof durable_routes[0]; i++) {
        api__route_checked(router, ctx, durable_routes[i].method, durable_routes[i].pattern,
                           durable_routes[i].fn, DURABLE_BODY_MAX, api__lambda_head_check);
        if (!ctx->inside)
            continue;
        durable_route_t *rt = xcalloc(1, sizeof *rt);
        rt->ctx = ctx;
        rt->fn = durable_routes[i].fn;
        rt->inside = true;
        inside_routes[i] = rt;
        http_router_add_checked(ctx->inside, durable_routes[i].method, durable_routes[i].pattern,
                                inside_trampoline, inside_check, rt, DURABLE_BODY_MAX);
    }
    api__route(router, ctx, HTTP_GET, "/v1/durable-executions", v1_list, 0, false);
    api__route(router, ctx, HTTP_GET, "/v1/durable-executions/{id}", v1_get, 0, false);
    api__route(router, ctx, HTTP_POST, "/v1/durable-executions/{id}/stop", v1_stop, 4096, false);
    api__route(router, ctx, HTTP_POST, "/v1/durable-execution-callbacks/{id}/{action}", v1_callback,
               DURABLE_MAX_PAYLOAD + 1024, false);
}

void api__durable_release(void)
{
    for (size_t i = 0; i < sizeof inside_routes / sizeof inside_routes[0]; i++) {
        free(inside_routes[i]);
        inside_routes[i] = NULL;
    }
}
