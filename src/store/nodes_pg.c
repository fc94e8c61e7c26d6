/* The nodes on PostgreSQL (store/nodes.h's calls, in queue_backend.h's
 * table), on the queue's connections (queue_pg.c). Several nodes beat at
 * once: finding a node gone is one UPDATE of its row whose WHERE asks that
 * it has not left yet, so of two nodes that find it gone together one
 * marks it (the other's UPDATE waits for that row, reads it again and
 * passes over it); putting its events back in the pool is an UPDATE of
 * every event of a node that left, which any later beat repeats should
 * this one fail between the two. */
#include <stdbool.h>

#include "store/queue_backend.h"
#include "store/queue_pg_internal.h"
#include "store/queue_rows.h"

#define P STORE__PG_P

enum { N_BEAT, N_BACK, N_EXPIRE, N_RELEASE_GONE, N_ALIVE, N_RELEASE, N_LEAVE, N_LIST, N_PRUNE, N_COUNT };

const store_pg_stmt_t store__pg_node_stmts[N_COUNT] = {
    [N_BEAT] = {"n_beat", STORE_NODE_BEAT(P), "ttiii"},
    [N_BACK] = {"n_back", STORE_NODE_BACK(P), "t"},
    [N_EXPIRE] = {"n_expire", STORE_NODE_EXPIRE(P), "tii"},
    [N_RELEASE_GONE] = {"n_release_gone", STORE_NODE_RELEASE_GONE, ""},
    [N_ALIVE] = {"n_alive", STORE_NODE_ALIVE(P), "i"},
    [N_RELEASE] = {"n_release", STORE_NODE_RELEASE(P), "t"},
    [N_LEAVE] = {"n_leave", STORE_NODE_LEAVE(P), "ti"},
    [N_LIST] = {"n_list", STORE_NODE_LIST, ""},
    [N_PRUNE] = {"n_prune", STORE_NODE_PRUNE(P), "i"},
};

const size_t store__pg_node_nstmts = N_COUNT;

/* Runs statement id with id_text as $1 (unless NULL) and the integers
 * after it, for the one integer its first row answers (*one may be NULL;
 * 0 without a row). */
static int pg_nodes__run(store_queue_t *q, int id, const char *id_text, int64_t i1, int64_t i2,
                         int64_t *one, const char *what, mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    const char *types = store__pg_node_stmts[id].types;
    int at = 1;
    if (id_text)
        b.text(b.ctx, at++, id_text);
    const int64_t ints[2] = {i1, i2};
    for (int i = 0; types[at - 1] && i < 2; i++)
        b.int64(b.ctx, at++, ints[i]);
    PGresult *res;
    int r = store__pg_q_run(q, store__pg_node_stmts[id].name, &p, &res, what, err);
    if (r < 0)
        return r;
    if (one)
        *one = PQntuples(res) > 0 ? store__pg_int(res, 0, 0) : 0;
    PQclear(res);
    return 0;
}

static int pg_nodes__beat(store_queue_t *q, const store_node_t *n, int64_t lease_ms, int *alive,
                          bool *was_lost, mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    store__bind_node(&b, n);
    PGresult *res;
    int r = store__pg_q_run(q, store__pg_node_stmts[N_BEAT].name, &p, &res,
                            "write this node's beat", err);
    if (r < 0)
        return r;
    int64_t left = PQntuples(res) > 0 ? store__pg_int(res, 0, 0) : 0;
    PQclear(res);
    int64_t since = n->heartbeat_ms - lease_ms, count = 0;
    if (left)
        r = pg_nodes__run(q, N_BACK, n->id, 0, 0, NULL, "mark this node back", err);
    if (r == 0)
        r = pg_nodes__run(q, N_EXPIRE, n->id, since, n->heartbeat_ms, NULL, "find nodes gone",
                          err);
    if (r == 0)
        r = pg_nodes__run(q, N_RELEASE_GONE, NULL, 0, 0, NULL,
                          "put the events of nodes gone back in the pool", err);
    if (r == 0)
        r = pg_nodes__run(q, N_ALIVE, NULL, since, 0, &count, "count nodes", err);
    if (r == 0) {
        *alive = (int)count;
        *was_lost = left != 0;
    }
    return r;
}

static int pg_nodes__leave(store_queue_t *q, const char *id, int64_t now_ms, mf_error_t *err)
{
    int r = pg_nodes__run(q, N_RELEASE, id, 0, 0, NULL, "put this node's events back in the pool",
                          err);
    if (r == 0)
        r = pg_nodes__run(q, N_LEAVE, id, now_ms, 0, NULL, "mark this node stopped", err);
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

static int pg_nodes__prune(store_queue_t *q, int64_t before_ms, mf_error_t *err)
{
    return pg_nodes__run(q, N_PRUNE, NULL, before_ms, 0, NULL, "forget nodes that left", err);
}

const store__node_ops_t store__pg_node_ops = {
    .beat = pg_nodes__beat,
    .leave = pg_nodes__leave,
    .list = pg_nodes__list,
    .prune = pg_nodes__prune,
};
