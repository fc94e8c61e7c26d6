/* Liveness and metrics. */
#include "api/api.h"
#include "obs/metrics.h"

static void handle_healthz(http_request_t *req, api_ctx_t *ctx)
{
    static const char body[] = "{\"status\":\"ok\"}\n";
    http_respond(req, 200, "application/json", body, sizeof body - 1);
}

static void handle_metrics(http_request_t *req, api_ctx_t *ctx)
{
    buf_t out = BUF_INIT;
    metrics_render(&out);
    http_respond_buf(req, 200, "text/plain; version=0.0.4; charset=utf-8", &out);
}

void api__system_register(http_router_t *router, api_ctx_t *ctx)
{
    api__route(router, ctx, HTTP_GET, "/healthz", handle_healthz, 0, true);
    api__route(router, ctx, HTTP_GET, "/metrics", handle_metrics, 0, false);
}
