/* The HTTP API: the /v1 routes, health and metrics. Handlers turn the
 * errors of the layers below into the JSON error shape of DESIGN.md. */
#ifndef MAYFLY_API_API_H
#define MAYFLY_API_API_H

#include "core/tenant.h"
#include "auth/auth.h"
#include "core/id.h"
#include "http/router.h"
#include "http/server.h"
#include "registry/registry.h"

struct exec;
struct async;
struct obs_records;
struct obs_logs;
struct state_kv;
struct volumes;
struct schedules;
struct topics;
struct durable;

typedef struct api_ctx {
    uv_loop_t *loop;
    registry_t *registry;
    store_t *store;
    struct exec *exec;
    struct async *async;
    struct obs_records *records;
    struct obs_logs *logs;
    struct state_kv *kv;         /* the key-value stores; NULL: no /v1/kv routes */
    store_writer_t *obs_writer;  /* writes records and logs (and purges them) */
    code_limits_t code_limits;
    const auth_keys_t *keys;
    const char *region;          /* in the ARNs the Lambda API shows */
    /* The second door: the routes functions reach from inside their
     * sandbox, /mayfly/v1/… on each instance's listener
     * (exec_inside_router); NULL: none. */
    http_router_t *inside;
    struct volumes *volumes;     /* shared volumes (state/volume.h), or NULL: none */
    struct schedules *schedules; /* trigger/schedules.h, or NULL: no /v1/schedules routes */
    struct topics *topics;       /* topics (trigger/topics.h), or NULL: no /v1/topics routes */
    /* Function URLs (trigger/url.h), or NULL: none. They are served at
     * /url/NAME/… and, with url_domain (--url-domain D, may carry a
     * port), at http://NAME.D/…; listen_addr ("HOST:PORT", set once the
     * server listens) makes the URLs shown without it. */
    struct url_table *urls;
    const char *url_domain;
    const char *listen_addr;
    struct durable *durable;     /* durable executions (durable/durable.h), or NULL: none */
    /* This server's id among the nodes sharing a store (cluster_node_id). */
    const char *node_id;
    struct put_job *puts;        /* creates and updates in flight (api/functions.c) */
    struct delete_job *deletes;  /* deletes in flight (api/functions.c) */
    const struct meter_prices *prices; /* unit prices of usage reports (--prices) */
    struct alerts *alerts;       /* watch/alerts.h's live set, or NULL: no /v1/alerts routes */
    struct budgets *budgets;     /* meter/budget.h's live set, or NULL: no /v1/budgets routes */
} api_ctx_t;

/* Adds every route to router; ctx must outlive it. */
void api_register(http_router_t *router, api_ctx_t *ctx);
void api_release(void);

/* What other servers sharing the store change (api/cluster.c): functions,
 * function URLs, topics and schedules read again off the loop and taken
 * into this server's memory (a function changed as if updated here, one
 * deleted as if deleted here), other servers' log lines streamed to the
 * followers here. */
struct cluster_batch;
typedef struct api_cluster api_cluster_t;
api_cluster_t *api_cluster_new(api_ctx_t *ctx);
/* A cluster_changes_cb (cluster/cluster.h); ud is the api_cluster_t. */
void api_cluster_changed(void *ud, struct cluster_batch *b);
/* Takes nothing more in (the server stops): reads on their way are
 * dropped when they come back. */
void api_cluster_stop(api_cluster_t *c);
/* Once the writers it reads with have stopped and the loop has run its
 * last callbacks. NULL is fine. */
void api_cluster_free(api_cluster_t *c);

/* Answers a request with the error a lower layer returned (r < 0):
 * -EINVAL 400, -EDQUOT 402 (budget_exceeded), -ENOENT 404, -EEXIST/-EBUSY
 * 409, -EFBIG 413, -ESHUTDOWN 503, else 500. */
void api_respond_failure(http_request_t *req, int r, const mf_error_t *err);

/* http_respond_error with a message that may name a tenant's objects:
 * their tenant taken out (core/tenant.h), as every answer names them. */
void api__respond_error(http_request_t *req, int status, const char *code, const char *msg);

/* Route handlers, by file. */
typedef void (*api_handler_fn)(http_request_t *req, api_ctx_t *ctx);
void api__functions_register(http_router_t *router, api_ctx_t *ctx);
void api__system_register(http_router_t *router, api_ctx_t *ctx);
void api__invoke_register(http_router_t *router, api_ctx_t *ctx);
void api__invocations_register(http_router_t *router, api_ctx_t *ctx);
void api__logs_register(http_router_t *router, api_ctx_t *ctx);
void api__async_register(http_router_t *router, api_ctx_t *ctx);
void api__lambda_register(http_router_t *router, api_ctx_t *ctx);
void api__kv_register(http_router_t *router, api_ctx_t *ctx);
void api__volumes_register(http_router_t *router, api_ctx_t *ctx);
void api__usage_register(http_router_t *router, api_ctx_t *ctx);
void api__tenants_register(http_router_t *router, api_ctx_t *ctx);
/* /v1/budgets (api/budgets.c). */
void api__budgets_register(http_router_t *router, api_ctx_t *ctx);
/* Objects a tenant keeps by name (api/owned.c: budgets, alert rules;
 * kind names them in a refusal). api__owned_scope: the tenant wanted
 * (NULL: the key's own) into out, or false having answered 403 when the
 * key may not reach it. api__owned_tenant: the same for the tenant the
 * request names (?tenant= or X-Mayfly-Tenant), 400 for a bad one; *every
 * (when every is not NULL) says whether an admin named none, for lists
 * of every tenant's. api__owned_default: the key's own tenant. */
bool api__owned_scope(http_request_t *req, api_ctx_t *ctx, const char *kind, const char *wanted,
                      char out[TENANT_MAX + 1]);
bool api__owned_tenant(http_request_t *req, api_ctx_t *ctx, const char *kind,
                       char out[TENANT_MAX + 1], bool *every);
const char *api__owned_default(http_request_t *req, api_ctx_t *ctx);
/* /v1/alerts (api/alerts.c). */
void api__alerts_register(http_router_t *router, api_ctx_t *ctx);
/* GET /v1/functions/{name}/series (api/series.c, watch/series.h). */
void api__series_register(http_router_t *router, api_ctx_t *ctx);
/* GET /v1/functions/{name}/code and …/code/files (api/code.c): the
 * package as a zip, and its entries a page at a time. */
void api__code_register(http_router_t *router, api_ctx_t *ctx);
void api__schedules_register(http_router_t *router, api_ctx_t *ctx);
void api__topics_register(http_router_t *router, api_ctx_t *ctx);
/* Durable executions (api/durable.c): Lambda's 2025-12-01 actions, on both
 * doors, and /v1/durable-executions. */
void api__durable_register(http_router_t *router, api_ctx_t *ctx);
/* GET /v1/functions/{name}/advice and POST /v1/functions/{name}/tune
 * (api/advice.c, watch/advisor.h and watch/tune.h). */
void api__advice_register(http_router_t *router, api_ctx_t *ctx);
/* GET /v1/cluster/nodes (cluster_nodes.c). */
void api__cluster_nodes_register(http_router_t *router, api_ctx_t *ctx);
void api__durable_release(void);
/* When function is durable, starts an execution for the call req asks
 * (Lambda's shape or /v1's; async: answered once it is on disk) and
 * answers; false, having done nothing, when it is not. */
bool api__durable_invoke(http_request_t *req, api_ctx_t *ctx, const char *function, bool lambda,
                         bool async);
/* The Lambda API's head check (SigV4 from the head), for its other files. */
int api__lambda_head_check(http_request_t *req, api_ctx_t *ctx, buf_t *refusal);
/* /v1/functions/{name}/url and the URLs themselves (api/urls.c). */
void api__urls_register(http_router_t *router, api_ctx_t *ctx);
/* The URL a function's URL is served at ("http://…/"), into out. */
void api__url_address(const api_ctx_t *ctx, const char *name, buf_t *out);
/* Lambda's function URL actions (api/lambda_urls.c), and what they share
 * with the rest of the Lambda API (api/lambda.c). */
void api__lambda_url_create(http_request_t *req, api_ctx_t *ctx);
void api__lambda_url_get(http_request_t *req, api_ctx_t *ctx);
void api__lambda_url_update(http_request_t *req, api_ctx_t *ctx);
void api__lambda_url_delete(http_request_t *req, api_ctx_t *ctx);
void api__lambda_url_list(http_request_t *req, api_ctx_t *ctx);
void api__lambda_error(http_request_t *req, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void api__lambda_failure(http_request_t *req, int r, const mf_error_t *err);
/* The first check of every Lambda handler: false once it has answered. */
bool api__lambda_authorized(http_request_t *req, api_ctx_t *ctx);
/* The function name of the path ({name}, an ARN, NAME:$LATEST),
 * qualified with the caller's tenant (core/tenant.h), or an answer and
 * false (404 for another account's ARN). */
bool api__lambda_path_name(http_request_t *req, const api_ctx_t *ctx,
                           char name[TENANT_QNAME_MAX + 1]);
void api__lambda_arn(const api_ctx_t *ctx, const char *name, char *out, size_t len);
void api__lambda_time(int64_t ms, char *out, size_t len);
/* A function body's "volumes" name only volumes of the function's tenant
 * that exist (-EINVAL naming the first that does not; the registry checks
 * the rest of its shape). */
int api__volumes_check(api_ctx_t *ctx, const char *function, const json_t *body,
                       mf_error_t *err);
/* POST …/invoke with X-Mayfly-Invocation-Type: Event (api/async.c). */
void api__invoke_event(http_request_t *req, api_ctx_t *ctx);
/* The caller's trace context as a W3C traceparent: its traceparent
 * header, else its X-Ray X-Amzn-Trace-Id (what AWS SDKs send) written into
 * out; NULL when it sent neither, or nothing that parses (a new trace
 * starts, as W3C asks). */
const char *api__trace_context(http_request_t *req, char out[56]);
/* A synchronous call of function with event (taken over), answered as
 * POST /v1/functions/{name}/invoke answers; replay_of may be NULL, and
 * tenant_id (X-Amz-Tenant-Id, or a replayed record's) too. */
void api__call(http_request_t *req, api_ctx_t *ctx, const char *function, buf_t *event,
               const char *replay_of, const char *tenant_id);
/* The answer to a synchronous call, as POST /v1/functions/{name}/invoke
 * gives it; frees inv. */
struct invocation;
void api__call_answer(http_request_t *req, struct invocation *inv);
/* Whether the client of POST …/invoke asks for the answer as the function
 * streams it (Accept: application/vnd.mayfly.stream, api/invoke_stream.c). */
bool api__wants_stream(const http_request_t *req);
/* A synchronous call whose answer streams to the client when the function
 * streams it (chunked, its outcome in trailers), and is answered as
 * api__call answers otherwise. */
void api__call_stream(http_request_t *req, api_ctx_t *ctx, const char *function, buf_t *event);
/* An asynchronous call, answered 202 once the event is on disk. */
void api__enqueue(http_request_t *req, api_ctx_t *ctx, const char *function, buf_t *event,
                  const char *replay_of, const char *tenant_id);
void api__replay_register(http_router_t *router, api_ctx_t *ctx);
/* A function create or update (api/functions.c), shared by /v1 and the
 * Lambda API: body (whose memory it takes) is translated into /v1's shape
 * by translate, if given, then parsed and unpacked on the thread pool;
 * done answers. name may be "" when translate finds it in the body. With API_PUT_CREATE an existing function is -EEXIST, with
 * API_PUT_UPDATE a missing one -ENOENT. fn is NULL on failure. */
typedef enum { API_PUT_ANY, API_PUT_CREATE, API_PUT_UPDATE } api_put_mode_t;
/* Runs on the thread pool. name is the path's; a translate_fn for a body
 * that carries the name instead (Lambda's CreateFunction) fills it. */
typedef int (*api_translate_fn)(buf_t *body, char name[TENANT_QNAME_MAX + 1], mf_error_t *err);
/* A translate_fn's answer for a request that only checks: the package is
 * unpacked and validated, nothing changes, and done gets the function as
 * it is. */
#define API_TRANSLATE_DRY_RUN 1
typedef void (*api_put_done_fn)(http_request_t *req, api_ctx_t *ctx, int r, const fn_t *fn,
                                bool created, const mf_error_t *err);
void api__function_put(http_request_t *req, api_ctx_t *ctx, const char *name, buf_t *body,
                       api_put_mode_t mode, api_translate_fn translate, api_put_done_fn done);
/* A function was created or updated (here, or by another server sharing
 * the store): running instances of an older version drain, and new calls
 * get this one. */
void api__function_changed(api_ctx_t *ctx, const fn_t *fn);
/* A change another server sharing the store made, as the registry took
 * it in (registry_apply_stored's what, and fn, cleared here, when created
 * or changed): this server's instances, queue and triggers follow it. */
void api__function_synced(api_ctx_t *ctx, const char *name, registry_sync_t what, fn_t *fn);
/* Whether a create or update in flight (its row not yet written) mounts
 * the volume name. */
bool api__puts_mount(const api_ctx_t *ctx, const char *volume);
/* Reads ?NAME=: an RFC 3339 time or milliseconds since the epoch into
 * *ms, left alone when absent; answers 400 itself and returns false when
 * it is bad. */
bool api__query_time(http_request_t *req, const char *name, int64_t *ms);

/* A request waiting for a change of the store to be written off the loop
 * (a URL's, a volume's): what its answer needs. api__pending allocates one;
 * the callback that answers frees it. */
typedef struct api_pending {
    http_request_t *req;
    api_ctx_t *ctx;
    char name[TENANT_QNAME_MAX + 1];
    bool create;
} api_pending_t;
api_pending_t *api__pending(http_request_t *req, api_ctx_t *ctx, const char *name, bool create);

/* A function delete, shared by /v1 and the Lambda API: checked on the
 * loop, its row deleted by the records' writer (off the loop), then taken
 * out of the registry, and its instances, queue and triggers go
 * (api__function_removed) before done answers. While a create, update or
 * delete of the same name is in flight on this server, it is -EBUSY (409),
 * as a create or update is while a delete is. */
typedef void (*api_delete_done_fn)(http_request_t *req, api_ctx_t *ctx, const char *name, int r,
                                   const mf_error_t *err);
void api__function_delete(http_request_t *req, api_ctx_t *ctx, const char *name,
                          api_delete_done_fn done);
/* A deleted function's instances and queue go; what the store holds of
 * them too when stored (false: another server sharing the store deleted
 * the function, and that already). */
void api__function_removed(api_ctx_t *ctx, const char *name, bool stored);

/* A read of the store for an answer, made off the loop (on a shared
 * database each read is a round trip that would hold up every call):
 * read(db, arg, err) runs as a job of writer, on its thread with its
 * connection as db, in order after the writes handed to it before; then
 * done(req, ctx, arg, r, err) answers on the loop, whether or not the
 * client is still there, and frees arg. read touches nothing of the
 * loop's. */
typedef int (*api_read_fn)(void *db, void *arg, mf_error_t *err);
typedef void (*api_read_done_fn)(http_request_t *req, api_ctx_t *ctx, void *arg, int r,
                                 const mf_error_t *err);
void api__read(http_request_t *req, api_ctx_t *ctx, store_writer_t *writer, api_read_fn read,
               api_read_done_fn done, void *arg);
/* api__read on the writer of invocation records and log lines (db is a
 * store_t), once every record and line added so far is handed to it: the
 * read sees every call that has answered. */
void api__read_records(http_request_t *req, api_ctx_t *ctx, api_read_fn read,
                       api_read_done_fn done, void *arg);
/* api__read on the async queue's writer (db is a store_queue_t). */
void api__read_queue(http_request_t *req, api_ctx_t *ctx, api_read_fn read,
                     api_read_done_fn done, void *arg);

/* Who a request is from and whose objects its names are: its key (the
 * development key when the server has none), and the key's tenant, or
 * an admin's X-Mayfly-Tenant (all: an admin naming none, whose lists show
 * every tenant's objects), or, through the second door, the calling
 * function's tenant (key NULL). false when no key signs it. The /v1
 * routes' {name} and {store} parameters come to handlers qualified with
 * this tenant (core/tenant.h); lists show what api__sees. */
typedef struct api_who {
    const auth_key_t *key;
    char tenant[TENANT_MAX + 1];
    bool all;
    bool inside;
} api_who_t;
bool api__who(const http_request_t *req, const api_ctx_t *ctx, api_who_t *out);
/* The tenant whose objects a list for req shows (in buf), or NULL for
 * every tenant's (an admin naming none). */
const char *api__scope(const http_request_t *req, const api_ctx_t *ctx, char buf[TENANT_MAX + 1]);
/* The id of the access key a request is from, for its call's record (NULL
 * in development mode and through the second door). */
const char *api__key_id(const http_request_t *req, const api_ctx_t *ctx);
/* Whether who may see the object qname. */
bool api__sees(const api_who_t *who, const char *qname);

/* What a request to the route pattern does, for its key's role: reads,
 * invokes, deploys (every other change) or administers. */
auth_action_t api__action(enum http_method method, const char *pattern);
/* Why a key whose role may not do action is refused (what: the request,
 * "PUT /v1/functions/{name}"), into msg. */
void api__role_refusal(const auth_key_t *key, auth_action_t action, const char *what, char *msg,
                       size_t len);

/* Registers a handler behind the access-key check (unless open is true):
 * the bearer token is checked from the request's head, and a request
 * without a valid one is refused with 401 before its body is read. */
void api__route(http_router_t *router, api_ctx_t *ctx, enum http_method method,
                const char *pattern, api_handler_fn fn, size_t max_body, bool open);
/* Checks a request from its head, before its body is read (see
 * http_head_check_fn in http/router.h): 0 lets it go on, or a status
 * refuses it with the body written into refusal. */
typedef int (*api_head_check_fn)(http_request_t *req, api_ctx_t *ctx, buf_t *refusal);

/* Registers a handler at pattern ("/v1/…") behind the access-key check,
 * and the same handler at "/mayfly" pattern on ctx->inside: one API, two
 * doors (DESIGN.md §3). Inside, the caller is the function whose
 * instance sent the request, and it may go on only when the function's
 * permissions grant perm_kind:NAME, NAME being the path parameter at
 * perm_param (403 naming the missing permission otherwise). */
void api__route_both(http_router_t *router, api_ctx_t *ctx, enum http_method method,
                     const char *pattern, api_handler_fn fn, size_t max_body,
                     const char *perm_kind, size_t perm_param);

/* True when req came through the second door; *caller (may be NULL) is
 * then who sent it (exec_caller), valid during this callback only. */
struct exec_caller;
bool api__inside(const http_request_t *req, struct exec_caller *caller);
/* Where a call comes from: the trace it joins and, when a function makes
 * it from inside, the call it is made from and the chain's length. */
typedef struct api_call_origin {
    const char *traceparent;       /* or NULL: a trace of its own */
    const char *caller_request_id; /* or NULL: not made by a function */
    int call_depth;
    char tp[56], caller[ID_UUID_LEN + 1]; /* the storage behind them */
    char trigger[STORE_TRIGGER_MAX]; /* "invoke", or "function:CALLER" from inside */
} api_call_origin_t;
/* Fills *o for a call req asks for: a function's call is a child of the
 * calling call's span, else the request's own trace context
 * (api__trace_context). Returns false, having answered 508, when the call
 * would make the chain of calls between functions longer than
 * EXEC_MAX_CALL_DEPTH. */
bool api__call_origin(http_request_t *req, api_call_origin_t *o);
/* Registers a handler whose requests pass check instead of the access-key
 * check (the Lambda API's SigV4, say). */
void api__route_checked(http_router_t *router, api_ctx_t *ctx, enum http_method method,
                        const char *pattern, api_handler_fn fn, size_t max_body,
                        api_head_check_fn check);

#endif
