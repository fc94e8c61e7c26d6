/* queue.db's nodes (store/nodes.h's calls, in queue_backend.h's table).
 * One server holds the data directory at a time, so the only other nodes
 * are the runs before it, gone. Statements are prepared per call: a node
 * beats every few seconds. */
#include <stdbool.h>

#include "store/queue_backend.h"
#include "store/queue_internal.h"
#include "store/queue_rows.h"
#include "store/sqlite_internal.h"

#define P STORE__SQLITE_P

static void finalize(sqlite3_stmt **st)
{
    sqlite3_finalize(*st);
}
#define cleanup_stmt __attribute__((cleanup(finalize)))

/* Runs sql with id as ?1 (unless NULL) and the integers after it, for
 * the one integer its first row answers (*one may be NULL; 0 without a
 * row). */
static int nodes__run(store_queue_t *q, const char *sql, const char *id, int64_t i1, int64_t i2,
                      int64_t *one, const char *what, mf_error_t *err)
{
    sqlite3 *db = store__queue_db(q);
    cleanup_stmt sqlite3_stmt *st = NULL;
    int r = store__sqlite_prepare(db, sql, &st, err);
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

static int nodes__beat(store_queue_t *q, const store_node_t *n, int64_t lease_ms, int *alive,
                       bool *was_lost, mf_error_t *err)
{
    sqlite3 *db = store__queue_db(q);
    int64_t left = 0, count = 0;
    {
        cleanup_stmt sqlite3_stmt *st = NULL;
        int r = store__sqlite_prepare(db, STORE_NODE_BEAT(P), &st, err);
        if (r < 0)
            return r;
        store__binder_t b = store__sqlite_binder(st);
        if (store__bind_node(&b, n) || sqlite3_step(st) != SQLITE_ROW)
            return store__sqlite_fail(db, err, "write this node's beat");
        left = sqlite3_column_int64(st, 0);
        if (sqlite3_step(st) != SQLITE_DONE)
            return store__sqlite_fail(db, err, "write this node's beat");
    }
    int64_t since = n->heartbeat_ms - lease_ms;
    int r = 0;
    if (left)
        r = nodes__run(q, STORE_NODE_BACK(P), n->id, 0, 0, NULL, "mark this node back", err);
    if (r == 0)
        r = nodes__run(q, STORE_NODE_EXPIRE(P), n->id, since, n->heartbeat_ms, NULL,
                       "find nodes gone", err);
    if (r == 0)
        r = nodes__run(q, STORE_NODE_RELEASE_GONE, NULL, 0, 0, NULL,
                       "put the events of nodes gone back in the pool", err);
    if (r == 0)
        r = nodes__run(q, STORE_NODE_ALIVE(P), NULL, since, 0, &count, "count nodes", err);
    if (r == 0) {
        *alive = (int)count;
        *was_lost = left != 0;
    }
    return r;
}

static int nodes__leave(store_queue_t *q, const char *id, int64_t now_ms, mf_error_t *err)
{
    int r = nodes__run(q, STORE_NODE_RELEASE(P), id, 0, 0, NULL,
                       "put this node's events back in the pool", err);
    if (r == 0)
        r = nodes__run(q, STORE_NODE_LEAVE(P), id, now_ms, 0, NULL, "mark this node stopped", err);
    return r;
}

static int nodes__list(store_queue_t *q, store_node_t **out, size_t *count, mf_error_t *err)
{
    void *list = NULL;
    int r = store__sqlite_query(store__queue_db(q), STORE_NODE_LIST, NULL, sizeof **out,
                                store__fill_node, &list, count, "list nodes", err);
    *out = list;
    return r;
}

static int nodes__prune(store_queue_t *q, int64_t before_ms, mf_error_t *err)
{
    return nodes__run(q, STORE_NODE_PRUNE(P), NULL, before_ms, 0, NULL, "forget nodes that left",
                      err);
}

const store__node_ops_t store__sqlite_node_ops = {
    .beat = nodes__beat,
    .leave = nodes__leave,
    .list = nodes__list,
    .prune = nodes__prune,
};
