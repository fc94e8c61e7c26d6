/* Sizing a function (docs/sizing.md): GET /v1/functions/{name}/advice, the
 * advisor's answer from the function's recent records, and POST
 * /v1/functions/{name}/tune, power tuning against temporary copies of it.
 * {name} comes qualified with the caller's tenant, as on every
 * /v1/functions route. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/clock.h"
#include "core/cpus.h"
#include "core/json.h"
#include "core/xalloc.h"
#include "exec/exec.h"
#include "meter/meter.h"
#include "watch/advisor.h"
#include "watch/tune.h"

/* The tune's body holds an event: as large as a synchronous call's. */
#define TUNE_BODY_LIMIT ((6u << 20) + 64 * 1024)

static bool valid_name(http_request_t *req)
{
    if (registry_valid_name(req->params[0]))
        return true;
    http_respond_error(req, 400, "bad_request", "name: must match [A-Za-z0-9_-]{1,64}");
    return false;
}

/* ---- advice ------------------------------------------------------------- */

typedef struct advice_read {
    char function[TENANT_QNAME_MAX + 1];
    int memory_mb;
    int64_t from_ms, to_ms;
    watch_call_t *calls;
    size_t n;
    bool truncated;
} advice_read_t;

static int advice_read(void *db, void *arg, mf_error_t *err)
{
    advice_read_t *a = arg;
    return watch_advice_read(db, a->function, a->from_ms, WATCH_ADVICE_MAX_CALLS, &a->calls, &a->n,
                             &a->truncated, err);
}

static void advice_answer(http_request_t *req, api_ctx_t *ctx, void *arg, int r,
                          const mf_error_t *err)
{
    advice_read_t *a = arg;
    if (r < 0) {
        api_respond_failure(req, r, err);
    } else {
        meter_prices_t defaults;
        if (!ctx->prices)
            meter_prices_default(&defaults);
        watch_advice_input_t in = {
            .function = tenant_local(a->function),
            .memory_mb = a->memory_mb,
            .cores = cpus_usable(), /* the cores the sandboxes share */
            .prices = ctx->prices ? ctx->prices : &defaults,
            .calls = a->calls,
            .n = a->n,
            .from_ms = a->from_ms,
            .to_ms = a->to_ms,
            .truncated = a->truncated,
        };
        cleanup_json json_t *out = watch_advise(&in);
        http_respond_json(req, 200, out);
    }
    free(a->calls);
    free(a);
}

static void handle_advice(http_request_t *req, api_ctx_t *ctx)
{
    if (!valid_name(req))
        return;
    fn_t fn;
    mf_error_t err = MF_ERROR_INIT;
    int r = registry_get(ctx->registry, req->params[0], &fn, &err);
    if (r < 0) {
        api_respond_failure(req, r, &err);
        return;
    }
    advice_read_t *a = xcalloc(1, sizeof *a);
    snprintf(a->function, sizeof a->function, "%s", req->params[0]);
    a->memory_mb = fn.memory_mb;
    a->to_ms = clock_wall_ms();
    a->from_ms = a->to_ms - WATCH_ADVICE_WINDOW_MS;
    fn_clear(&fn);
    api__read_records(req, ctx, advice_read, advice_answer, a);
}

/* ---- tune --------------------------------------------------------------- */

typedef struct tune_req {
    http_request_t *req;
    char function[TENANT_QNAME_MAX + 1];
} tune_req_t;

static void tune_done(void *ud, int r, json_t *table, const mf_error_t *err)
{
    tune_req_t *t = ud;
    if (r < 0) {
        api_respond_failure(t->req, r, err);
    } else {
        json_object_set_new(table, "function", json_string(tenant_local(t->function)));
        http_respond_json(t->req, 200, table);
        json_decref(table);
    }
    free(t);
}

static void handle_tune(http_request_t *req, api_ctx_t *ctx)
{
    if (!valid_name(req))
        return;
    watch_tune_request_t rq;
    mf_error_t err = MF_ERROR_INIT;
    int r = watch_tune_parse(req->body.data ? req->body.data : "", req->body.len, &rq, &err);
    if (r < 0) {
        api_respond_failure(req, r, &err);
        return;
    }
    fn_t fn;
    if ((r = registry_get(ctx->registry, req->params[0], &fn, &err)) < 0) {
        watch_tune_request_release(&rq);
        api_respond_failure(req, r, &err);
        return;
    }
    meter_prices_t defaults;
    if (!ctx->prices)
        meter_prices_default(&defaults);
    tune_req_t *t = xcalloc(1, sizeof *t);
    t->req = req;
    snprintf(t->function, sizeof t->function, "%s", req->params[0]);
    r = watch_tune_start(ctx->loop, ctx->exec, &fn, &rq, ctx->prices ? ctx->prices : &defaults,
                         tune_done, t, &err);
    fn_clear(&fn);
    if (r < 0) {
        free(t);
        api_respond_failure(req, r, &err);
    }
}

void api__advice_register(http_router_t *router, api_ctx_t *ctx)
{
    api__route(router, ctx, HTTP_GET, "/v1/functions/{name}/advice", handle_advice, 0, false);
    api__route(router, ctx, HTTP_POST, "/v1/functions/{name}/tune", handle_tune, TUNE_BODY_LIMIT,
               false);
}
