/* /v1/budgets (docs/metering.md, "Budgets"): PUT, GET and DELETE
 * /v1/budgets/{name}, GET /v1/budgets. A budget is its tenant's: a key
 * manages (developer) and reads (viewer) its own tenant's, and only an
 * admin names another tenant (the body's "tenant"; on the others
 * ?tenant=, or the header X-Mayfly-Tenant as on the rest of /v1). An
 * admin's requests naming none are about its own tenant's, and its list
 * shows every tenant's. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "auth/auth.h"
#include "core/json.h"
#include "core/xalloc.h"
#include "meter/budget.h"

/* The bodies a PUT may send: a budget's settings are small, and
 * budget_parse names the bound it holds them to. */
#define KIND "budgets"
#define BUDGET_BODY_LIMIT (64 * 1024)

static bool valid_name(http_request_t *req)
{
    if (budget_valid_name(req->params[0]))
        return true;
    http_respond_error(req, 400, "bad_request", "name: must match [A-Za-z0-9_-]{1,%d}",
                       BUDGET_NAME_MAX);
    return false;
}

static void handle_list(http_request_t *req, api_ctx_t *ctx)
{
    char tenant[TENANT_MAX + 1];
    bool every;
    if (!api__owned_tenant(req, ctx, KIND, tenant, &every))
        return;
    cleanup_json json_t *out =
        json_pack("{so}", "budgets", budgets_list(ctx->budgets, every ? NULL : tenant));
    http_respond_json(req, 200, out);
}

typedef struct show {
    http_request_t *req;
    json_t *doc;
} show_t;

static void shown(void *ud, int r, json_t *crossings, const mf_error_t *err)
{
    show_t *s = ud;
    if (r < 0) {
        api_respond_failure(s->req, r, err);
    } else {
        json_object_set(s->doc, "crossings", crossings);
        http_respond_json(s->req, 200, s->doc);
    }
    json_decref(s->doc);
    free(s);
}

static void handle_get(http_request_t *req, api_ctx_t *ctx)
{
    char tenant[TENANT_MAX + 1];
    if (!valid_name(req) || !api__owned_tenant(req, ctx, KIND, tenant, NULL))
        return;
    json_t *doc = budgets_show(ctx->budgets, tenant, req->params[0]);
    if (!doc) {
        http_respond_error(req, 404, "not_found", "the tenant %s has no budget named %s", tenant,
                           req->params[0]);
        return;
    }
    show_t *s = xcalloc(1, sizeof *s);
    s->req = req;
    s->doc = doc;
    budgets_crossings(ctx->budgets, tenant, req->params[0], shown, s);
}

typedef struct put {
    http_request_t *req;
    api_ctx_t *ctx;
    char tenant[TENANT_MAX + 1];
    char name[BUDGET_NAME_MAX + 1];
} put_t;

static void put_done(void *ud, int r, bool created, const mf_error_t *err)
{
    put_t *p = ud;
    if (r < 0) {
        api_respond_failure(p->req, r, err);
    } else {
        cleanup_json json_t *doc = budgets_show(p->ctx->budgets, p->tenant, p->name);
        if (doc)
            http_respond_json(p->req, created ? 201 : 200, doc);
        else /* deleted again meanwhile */
            http_respond(p->req, created ? 201 : 200, NULL, NULL, 0);
    }
    free(p);
}

static void handle_put(http_request_t *req, api_ctx_t *ctx)
{
    if (!valid_name(req))
        return;
    budget_t b;
    mf_error_t err = MF_ERROR_INIT;
    if (budget_parse(req->body.data ? req->body.data : "", req->body.len, req->params[0], &b,
                     &err) < 0) {
        http_respond_error(req, 400, "bad_request", "%s", err.msg);
        return;
    }
    put_t *p = xcalloc(1, sizeof *p);
    if (!api__owned_scope(req, ctx, KIND, b.tenant, p->tenant)) {
        free(p);
        return;
    }
    p->req = req;
    p->ctx = ctx;
    snprintf(p->name, sizeof p->name, "%s", b.name);
    budgets_put(ctx->budgets, &b, put_done, p);
}

static void deleted(void *ud, int r, bool created, const mf_error_t *err)
{
    http_request_t *req = ud;
    if (r < 0)
        api_respond_failure(req, r, err);
    else
        http_respond(req, 204, NULL, NULL, 0);
}

static void handle_delete(http_request_t *req, api_ctx_t *ctx)
{
    char tenant[TENANT_MAX + 1];
    if (!valid_name(req) || !api__owned_tenant(req, ctx, KIND, tenant, NULL))
        return;
    budgets_delete(ctx->budgets, tenant, req->params[0], deleted, req);
}

void api__budgets_register(http_router_t *router, api_ctx_t *ctx)
{
    if (!ctx->budgets)
        return;
    api__route(router, ctx, HTTP_GET, "/v1/budgets", handle_list, 0, false);
    /* {budget}, not {name}: the budget's tenant is the request's to say
     * (the body's, ?tenant=), never taken for the key's own. */
    api__route(router, ctx, HTTP_GET, "/v1/budgets/{budget}", handle_get, 0, false);
    api__route(router, ctx, HTTP_PUT, "/v1/budgets/{budget}", handle_put, BUDGET_BODY_LIMIT,
               false);
    api__route(router, ctx, HTTP_DELETE, "/v1/budgets/{budget}", handle_delete, 0, false);
}
