/* The nodes on PostgreSQL (store/nodes.h's calls, in queue_backend.h's
 * table; queue.c runs them through these), on the queue's connections
 * (queue_pg.c), with every statement prepared. */
#include <stdbool.h>

#include "store/queue_backend.h"
#include "store/queue_pg_internal.h"
#include "store/queue_rows.h"

#define P STORE__PG_P

/* store__node_stmt_t's, then the beat's own and the list. */
enum { N_BEAT = STORE__NODE_STMTS, N_LIST, N_COUNT };

const store_pg_stmt_t store__pg_node_stmts[N_COUNT] = {
    [STORE__NODE_BACK] = {"n_back", STORE_NODE_BACK(P), "t"},
    [STORE__NODE_EXPIRE] = {"n_expire", STORE_NODE_EXPIRE(P), "tii"},
    [STORE__NODE_RELEASE_GONE] = {"n_release_gone", STORE_NODE_RELEASE_GONE, ""},
    [STORE__NODE_ALIVE] = {"n_alive", STORE_NODE_ALIVE(P), "i"},
    [STORE__NODE_RELEASE] = {"n_release", STORE_NODE_RELEASE(P), "t"},
    [STORE__NODE_LEAVE] = {"n_leave", STORE_NODE_LEAVE(P), "ti"},
    [STORE__NODE_PRUNE] = {"n_prune", STORE_NODE_PRUNE(P), "i"},
    [N_BEAT] = {"n_beat", STORE_NODE_BEAT(P), "ttiii"},
    [N_LIST] = {"n_list", STORE_NODE_LIST, ""},
};

const size_t store__pg_node_nstmts = N_COUNT;

/* The first column of res's first row, 0 without a row; res is cleared. */
static int64_t pg_nodes__first(PGresult *res)
{
    int64_t v = PQntuples(res) > 0 ? store__pg_int(res, 0, 0) : 0;
    PQclear(res);
    return v;
}

static int pg_nodes__run(store_queue_t *q, store__node_stmt_t s, const char *id, int64_t i1,
                         int64_t i2, int64_t *one, const char *what, mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    const char *types = store__pg_node_stmts[s].types;
    int at = 1;
    if (id)
        b.text(b.ctx, at++, id);
    const int64_t ints[2] = {i1, i2};
    for (int i = 0; types[at - 1] && i < 2; i++)
        b.int64(b.ctx, at++, ints[i]);
    PGresult *res;
    int r = store__pg_q_run(q, store__pg_node_stmts[s].name, &p, &res, what, err);
    if (r < 0)
        return r;
    int64_t v = pg_nodes__first(res);
    if (one)
        *one = v;
    return 0;
}

static int pg_nodes__upsert(store_queue_t *q, const store_node_t *n, int64_t *left,
                            mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    store__bind_node(&b, n);
    PGresult *res;
    int r = store__pg_q_run(q, store__pg_node_stmts[N_BEAT].name, &p, &res,
                            "write this node's beat", err);
    if (r == 0)
        *left = pg_nodes__first(res);
    return r;
}

static int pg_nodes__list(store_queue_t *q, store_node_t **out, size_t *count, mf_error_t *err)
{
    void *list;
    int r = store__pg_q_rows(q, store__pg_node_stmts[N_LIST].name, NULL, sizeof **out,
                             store__fill_node, &list, count, "list nodes", err);
    *out = list;
    return r;
}

const store__node_ops_t store__pg_node_ops = {
    .upsert = pg_nodes__upsert,
    .run = pg_nodes__run,
    .list = pg_nodes__list,
};
