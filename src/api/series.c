/* GET /v1/functions/{name}/series?metric=&from=&to=&step=: one metric of
 * a function over time, a point a step (watch/series.h), for the
 * console's charts. The store aggregates the records off the loop, as
 * other record reads do. */
#include <math.h>
#include <stdlib.h>

#include "api/api.h"
#include "core/cleanup.h"
#include "core/json.h"
#include "core/clock.h"
#include "core/xalloc.h"
#include "watch/series.h"

typedef struct series_read {
    char function[TENANT_QNAME_MAX + 1];
    watch_series_query_t q;
    const meter_prices_t *prices;
    double *values;
} series_read_t;

static int series_read(void *db, void *arg, mf_error_t *err)
{
    series_read_t *s = arg;
    return watch_series_read(db, s->function, &s->q, s->prices, s->values, err);
}

static void series_answer(http_request_t *req, api_ctx_t *ctx, void *arg, int r,
                          const mf_error_t *err)
{
    series_read_t *s = arg;
    if (r < 0) {
        api_respond_failure(req, r, err);
    } else {
        cleanup_json json_t *out = watch_series_json(&s->q, ctx->prices, s->values);
        http_respond_json(req, 200, out);
    }
    free(s->values);
    free(s);
}

static char *query_param(http_request_t *req, const char *name)
{
    buf_t v = BUF_INIT;
    if (!http_request_query(req, name, &v)) {
        buf_release(&v);
        return NULL;
    }
    return buf_detach(&v, NULL);
}

static void handle_series(http_request_t *req, api_ctx_t *ctx)
{
    if (!registry_valid_name(req->params[0])) {
        http_respond_error(req, 400, "bad_request", "name: must match [A-Za-z0-9_-]{1,64}");
        return;
    }
    mf_error_t err = MF_ERROR_INIT;
    int r = registry_check(ctx->registry, req->params[0], &err);
    if (r < 0) {
        api_respond_failure(req, r, &err);
        return;
    }
    char *metric = query_param(req, "metric"), *from = query_param(req, "from"),
         *to = query_param(req, "to"), *step = query_param(req, "step");
    watch_series_query_t q;
    r = watch_series_parse(metric, from, to, step, clock_wall_ms(), &q, &err);
    free(metric);
    free(from);
    free(to);
    free(step);
    if (r < 0) {
        http_respond_error(req, 400, "bad_request", "%s", err.msg);
        return;
    }
    series_read_t *s = xcalloc(1, sizeof *s);
    snprintf(s->function, sizeof s->function, "%s", req->params[0]);
    s->q = q;
    s->prices = ctx->prices;
    s->values = xcalloc(q.points, sizeof *s->values);
    api__read_records(req, ctx, series_read, series_answer, s);
}

void api__series_register(http_router_t *router, api_ctx_t *ctx)
{
    api__route(router, ctx, HTTP_GET, "/v1/functions/{name}/series", handle_series, 0, false);
}
