/* queue.db's nodes (store/nodes.h's calls, in queue_backend.h's table;
 * queue.c runs them through these). One server holds the data directory
 * at a time, so the only other nodes are the runs before it, gone.
 * Statements are prepared per call: a node beats every few seconds. */
#include <stdbool.h>

#include "store/queue_backend.h"
#include "store/queue_internal.h"
#include "store/queue_rows.h"
#include "store/sqlite_internal.h"

#define P STORE__SQLITE_P

static const char *const nodes__sql[STORE__NODE_STMTS] = {
    [STORE__NODE_BACK] = STORE_NODE_BACK(P),
    [STORE__NODE_EXPIRE] = STORE_NODE_EXPIRE(P),
    [STORE__NODE_RELEASE_GONE] = STORE_NODE_RELEASE_GONE,
    [STORE__NODE_ALIVE] = STORE_NODE_ALIVE(P),
    [STORE__NODE_RELEASE] = STORE_NODE_RELEASE(P),
    [STORE__NODE_LEAVE] = STORE_NODE_LEAVE(P),
    [STORE__NODE_PRUNE] = STORE_NODE_PRUNE(P),
};

static void finalize(sqlite3_stmt **st)
{
    sqlite3_finalize(*st);
}
#define cleanup_stmt __attribute__((cleanup(finalize)))

static int nodes__run(store_queue_t *q, store__node_stmt_t s, const char *id, int64_t i1,
                      int64_t i2, int64_t *one, const char *what, mf_error_t *err)
{
    sqlite3 *db = store__queue_db(q);
    cleanup_stmt sqlite3_stmt *st = NULL;
    int r = store__sqlite_prepare(db, nodes__sql[s], &st, err);
    if (r < 0)
        return r;
    int n = sqlite3_bind_parameter_count(st), at = 1;
    if (id && sqlite3_bind_text(st, at++, id, -1, SQLITE_STATIC) != SQLITE_OK)
        return store__sqlite_fail(db, err, what);
    const int64_t ints[2] = {i1, i2};
    for (int i = 0; at <= n && i < 2; i++)
        if (sqlite3_bind_int64(st, at++, ints[i]) != SQLITE_OK)
            return store__sqlite_fail(db, err, what);
    int64_t first = 0;
    bool any = false;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (!any)
            first = sqlite3_column_int64(st, 0);
        any = true;
    }
    if (rc != SQLITE_DONE)
        return store__sqlite_fail(db, err, what);
    if (one)
        *one = first;
    return 0;
}

static int nodes__upsert(store_queue_t *q, const store_node_t *n, int64_t *left, mf_error_t *err)
{
    sqlite3 *db = store__queue_db(q);
    cleanup_stmt sqlite3_stmt *st = NULL;
    int r = store__sqlite_prepare(db, STORE_NODE_BEAT(P), &st, err);
    if (r < 0)
        return r;
    store__binder_t b = store__sqlite_binder(st);
    if (store__bind_node(&b, n) || sqlite3_step(st) != SQLITE_ROW)
        return store__sqlite_fail(db, err, "write this node's beat");
    *left = sqlite3_column_int64(st, 0);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store__sqlite_fail(db, err, "write this node's beat");
    return 0;
}

static int nodes__list(store_queue_t *q, store_node_t **out, size_t *count, mf_error_t *err)
{
    void *list = NULL;
    int r = store__sqlite_query(store__queue_db(q), STORE_NODE_LIST, NULL, sizeof **out,
                                store__fill_node, &list, count, "list nodes", err);
    *out = list;
    return r;
}

const store__node_ops_t store__sqlite_node_ops = {
    .upsert = nodes__upsert,
    .run = nodes__run,
    .list = nodes__list,
};
