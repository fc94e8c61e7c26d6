/* GET /v1/cluster/nodes: the servers sharing this one's database, as their
 * beats left them (store/nodes.h), read off the loop on the queue's
 * writer. Each says what it was at its last beat, and a state judged here
 * against the lease: "alive" (its lease holds), "silent" (its lease ran
 * out and no node has found it gone yet), "lost" (found gone: its events
 * went to others) or "stopped". On SQLite the list holds this server and
 * the runs before it. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/clock.h"
#include "core/xalloc.h"
#include "invoke/async.h"
#include "store/nodes.h"

typedef struct nodes_read {
    store_node_t *list;
    size_t n;
} nodes_read_t;

static int nodes_read(void *db, void *arg, mf_error_t *err)
{
    nodes_read_t *nr = arg;
    return store_node_list(db, &nr->list, &nr->n, err);
}

static const char *node_state(const store_node_t *n, int64_t now, unsigned lease_ms)
{
    if (n->left_ms)
        return n->lost ? "lost" : "stopped";
    return now - n->heartbeat_ms <= (int64_t)lease_ms ? "alive" : "silent";
}

static json_t *node_time(int64_t ms)
{
    if (!ms)
        return json_null();
    char t[40];
    clock_format_iso8601(ms, t, sizeof t);
    return json_string(t);
}

static void nodes_answer(http_request_t *req, api_ctx_t *ctx, void *arg, int r,
                         const mf_error_t *err)
{
    nodes_read_t *nr = arg;
    if (r < 0) {
        api_respond_failure(req, r, err);
    } else {
        int64_t now = clock_wall_ms();
        unsigned lease = async_lease_ms(ctx->async);
        json_t *arr = json_array();
        for (size_t i = 0; i < nr->n; i++) {
            const store_node_t *n = &nr->list[i];
            json_array_append_new(
                arr, json_pack("{ss ss ss so so so sI sb}", "id", n->id, "address", n->address,
                               "state", node_state(n, now, lease), "started",
                               node_time(n->started_ms), "last_heartbeat",
                               node_time(n->heartbeat_ms), "left", node_time(n->left_ms),
                               "instances", (json_int_t)n->instances, "self",
                               !strcmp(n->id, async_node(ctx->async))));
        }
        json_t *out = json_pack("{ss si so}", "self", async_node(ctx->async), "lease_s",
                                (int)(lease / 1000), "nodes", arr);
        http_respond_json(req, 200, out);
        json_decref(out);
    }
    free(nr->list);
    free(nr);
}

static void handle_nodes(http_request_t *req, api_ctx_t *ctx)
{
    api__read_queue(req, ctx, nodes_read, nodes_answer, xcalloc(1, sizeof(nodes_read_t)));
}

void api__cluster_nodes_register(http_router_t *router, api_ctx_t *ctx)
{
    api__route(router, ctx, HTTP_GET, "/v1/cluster/nodes", handle_nodes, 0, false);
}
