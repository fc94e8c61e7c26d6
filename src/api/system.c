/* Liveness and metrics. */
#include "api/api.h"
#include "core/clock.h"
#include "obs/metrics.h"
#include "store/health.h"

/* Alive, whatever the store: a server whose database is away still
 * serves warm synchronous calls, so a load balancer keeps sending them.
 * The body says whether the store can be reached, and since when not. */
static void handle_healthz(http_request_t *req, api_ctx_t *ctx)
{
    int64_t down = store_down_since_ms();
    buf_t out = BUF_INIT;
    if (!down) {
        buf_adds(&out, "{\"status\":\"ok\",\"store\":\"up\"}\n");
    } else {
        char since[40];
        clock_format_iso8601(down, since, sizeof since);
        buf_addf(&out,
                 "{\"status\":\"ok\",\"store\":\"unreachable\",\"store_down_since\":\"%s\"}\n",
                 since);
    }
    http_respond_buf(req, 200, "application/json", &out);
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
