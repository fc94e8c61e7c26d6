/* Durable executions and their operation logs on PostgreSQL
 * (store/durable.h's calls, in queue_backend.h's table), on the queue's
 * connection (queue_pg.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/queue_backend.h"
#include "store/queue_pg_internal.h"
#include "store/queue_rows.h"

#define P STORE__PG_P

enum {
    D_EXEC_PUT,
    D_EXEC_GET,
    D_EXEC_BY_NAME,
    D_EXEC_LIST,
    D_OPS_GET,
    D_OP_PUT,
    D_CALLBACK_FIND,
    D_COUNTS,
    D_WAITING,
    D_PRUNE,
    D_FORGET_OPS,
    D_FORGET_EXECS,
    D_COUNT
};

const store_pg_stmt_t store__pg_durable_stmts[D_COUNT] = {
    /* As SQLite's INSERT OR REPLACE: the execution of that id is replaced,
     * and another of the same function and name goes (its operations
     * stay, as they do there). The namesake's deletion runs to its end
     * before the row to insert is made (the count reads all of it), and a
     * row this statement deleted is no conflict for the unique (function,
     * name). */
    [D_EXEC_PUT] = {"d_exec_put",
                    "WITH namesake AS (DELETE FROM durable_executions WHERE function = $2"
                    " AND name = $3 AND id <> $1 RETURNING id)"
                    " INSERT INTO durable_executions (" STORE_EXEC_COLUMNS ") SELECT "
                    STORE_EXEC_VALUES(P) " FROM (SELECT count(*) FROM namesake) AS gone"
                    " ON CONFLICT (id) DO UPDATE SET function = excluded.function,"
                    " name = excluded.name, status = excluded.status, input = excluded.input,"
                    " result = excluded.result, error = excluded.error, token = excluded.token,"
                    " seq = excluded.seq, token_seq = excluded.token_seq,"
                    " in_flight = excluded.in_flight, next_wake_ms = excluded.next_wake_ms,"
                    " start_ms = excluded.start_ms, end_ms = excluded.end_ms,"
                    " deadline_ms = excluded.deadline_ms,"
                    " retention_days = excluded.retention_days,"
                    " invocations = excluded.invocations, failures = excluded.failures,"
                    " last_client_token = excluded.last_client_token,"
                    " last_token_in = excluded.last_token_in,"
                    " last_response = excluded.last_response, parent_id = excluded.parent_id,"
                    " parent_op = excluded.parent_op",
                    "tttttttt" "iiiiiiiiii" "ttttt"},
    [D_EXEC_GET] = {"d_exec_get", STORE_EXEC_GET(P), "t"},
    [D_EXEC_BY_NAME] = {"d_exec_by_name", STORE_EXEC_BY_NAME(P), "tt"},
    [D_EXEC_LIST] = {"d_exec_list", STORE_EXEC_LIST(P), "tti"},
    [D_OPS_GET] = {"d_ops_get", STORE_OPS_GET(P), "t"},
    [D_OP_PUT] = {"d_op_put",
                  "INSERT INTO durable_operations (" STORE_OP_COLUMNS ") VALUES ("
                  STORE_OP_VALUES(P) ") ON CONFLICT (exec_id, ord) DO UPDATE SET"
                  " op_id = excluded.op_id, type = excluded.type, status = excluded.status,"
                  " callback_id = excluded.callback_id, op = excluded.op",
                  "tittttt"},
    [D_CALLBACK_FIND] = {"d_callback_find", STORE_CALLBACK_FIND(P), "t"},
    [D_COUNTS] = {"d_counts", STORE_DURABLE_COUNTS, ""},
    [D_WAITING] = {"d_waiting", STORE_DURABLE_WAITING, ""},
    /* One statement: the expired executions are chosen once (a CTE read
     * twice is computed once), and their operations go with them. */
    [D_PRUNE] = {"d_prune",
                 "WITH gone AS (" STORE_DURABLE_EXPIRED(P) "), ops AS (DELETE FROM"
                 " durable_operations WHERE exec_id IN (SELECT id FROM gone))"
                 " DELETE FROM durable_executions WHERE id IN (SELECT id FROM gone)",
                 "i"},
    [D_FORGET_OPS] = {"d_forget_ops", STORE_DURABLE_FORGET_OPS(P), "t"},
    [D_FORGET_EXECS] = {"d_forget_execs", STORE_DURABLE_FORGET_EXECS(P), "t"},
};

const size_t store__pg_durable_nstmts = D_COUNT;

static const char *stmt(int id)
{
    return store__pg_durable_stmts[id].name;
}

static int pg_durable__exec_put(store_queue_t *q, const store_durable_exec_t *e, mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    store__bind_exec(&b, e);
    return store__pg_q_write(q, stmt(D_EXEC_PUT), &p, NULL, "write a durable execution", err);
}

static int pg_durable__list(store_queue_t *q, int id, const store_pg_params_t *p,
                            store_durable_exec_t **out, size_t *count, mf_error_t *err)
{
    void *list;
    int r = store__pg_q_rows(q, stmt(id), p, sizeof **out, store__fill_exec, &list, count,
                             "read durable executions", err);
    *out = list;
    return r;
}

static int pg_durable__one(store_queue_t *q, int id, const store_pg_params_t *p,
                           store_durable_exec_t *out, const char *what, mf_error_t *err)
{
    store_durable_exec_t *list;
    size_t n;
    int r = pg_durable__list(q, id, p, &list, &n, err);
    if (r < 0)
        return r;
    return store__take_one_exec(list, n, out, what, err);
}

static int pg_durable__exec_get(store_queue_t *q, const char *id, store_durable_exec_t *out,
                                mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    b.text(b.ctx, 1, id);
    char what[64];
    snprintf(what, sizeof what, "`%.40s`", id);
    return pg_durable__one(q, D_EXEC_GET, &p, out, what, err);
}

static int pg_durable__exec_by_name(store_queue_t *q, const char *function, const char *name,
                                    store_durable_exec_t *out, mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    b.text(b.ctx, 1, function);
    b.text(b.ctx, 2, name);
    char what[160];
    snprintf(what, sizeof what, "named `%.64s`", name);
    return pg_durable__one(q, D_EXEC_BY_NAME, &p, out, what, err);
}

static int pg_durable__exec_list(store_queue_t *q, const char *function, const char *status,
                                 int limit, store_durable_exec_t **out, size_t *count,
                                 mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    b.text(b.ctx, 1, function);
    b.text(b.ctx, 2, status);
    store__pg_bind_limit(&b, 3, limit);
    return pg_durable__list(q, D_EXEC_LIST, &p, out, count, err);
}

static int pg_durable__ops_get(store_queue_t *q, const char *exec_id, json_t **out,
                               mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    b.text(b.ctx, 1, exec_id);
    PGresult *res;
    int r = store__pg_q_run(q, stmt(D_OPS_GET), &p, &res, "read an operation log", err);
    if (r < 0)
        return r;
    json_t *arr = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        store__append_op(arr, PQgetisnull(res, i, 0) ? NULL : PQgetvalue(res, i, 0));
    PQclear(res);
    *out = arr;
    return 0;
}

static int pg_durable__op_put(store_queue_t *q, const char *exec_id, int64_t ord,
                              const json_t *op, mf_error_t *err)
{
    char *text = store__op_text(op);
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    store__bind_op(&b, exec_id, ord, op, text);
    int r = store__pg_q_write(q, stmt(D_OP_PUT), &p, NULL, "write an operation", err);
    free(text);
    return r;
}

static int pg_durable__callback_find(store_queue_t *q, const char *callback_id,
                                     char exec_id[37], mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    b.text(b.ctx, 1, callback_id);
    PGresult *res;
    int r = store__pg_q_run(q, stmt(D_CALLBACK_FIND), &p, &res, "find a callback", err);
    if (r < 0)
        return r;
    if (PQntuples(res) == 0)
        r = store__no_callback(err, callback_id);
    else
        snprintf(exec_id, 37, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return r;
}

static int pg_durable__counts(store_queue_t *q, int64_t counts[5], int64_t *timers,
                              int64_t *callbacks, mf_error_t *err)
{
    PGresult *res;
    int r = store__pg_q_run(q, stmt(D_COUNTS), NULL, &res, "count durable executions", err);
    if (r < 0)
        return r;
    for (int i = 0; i < PQntuples(res); i++)
        store__count_status(counts, PQgetvalue(res, i, 0), store__pg_int(res, i, 1));
    PQclear(res);
    r = store__pg_q_run(q, stmt(D_WAITING), NULL, &res, "count waiting operations", err);
    if (r < 0)
        return r;
    for (int i = 0; i < PQntuples(res); i++)
        store__count_waiting(timers, callbacks, PQgetvalue(res, i, 0), store__pg_int(res, i, 1));
    PQclear(res);
    return 0;
}

static int pg_durable__prune(store_queue_t *q, int64_t now_ms, int64_t *n, mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    b.int64(b.ctx, 1, now_ms);
    return store__pg_q_write(q, stmt(D_PRUNE), &p, n, "prune durable executions", err);
}

static int pg_durable__forget_function(store_queue_t *q, const char *function, mf_error_t *err)
{
    int r = store__pg_q_keyed(q, stmt(D_FORGET_OPS), function, NULL,
                              "forget a function's operations", err);
    if (r == 0)
        r = store__pg_q_keyed(q, stmt(D_FORGET_EXECS), function, NULL,
                              "forget a function's executions", err);
    return r;
}

const store__durable_ops_t store__pg_durable_ops = {
    .exec_put = pg_durable__exec_put,
    .exec_get = pg_durable__exec_get,
    .exec_by_name = pg_durable__exec_by_name,
    .exec_list = pg_durable__exec_list,
    .ops_get = pg_durable__ops_get,
    .op_put = pg_durable__op_put,
    .callback_find = pg_durable__callback_find,
    .counts = pg_durable__counts,
    .prune = pg_durable__prune,
    .forget_function = pg_durable__forget_function,
};
