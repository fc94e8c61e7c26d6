/* Budgets and their crossings on PostgreSQL (store/budgets.h; the
 * database's migration 14), shared by every server on it: a crossing's
 * row is unique, so the first server to see it records it, and only that
 * one logs it. The statements are prepared on each of the store's
 * connections (store__pg_budget_stmts). */
#include <errno.h>
#include <stdlib.h>

#include "store/budgets_backend.h"
#include "store/postgres_internal.h"

#define P STORE__PG_P

enum { B_COUNT, B_PUT, B_DELETE_CROSSINGS, B_DELETE, B_LIST, C_ADD, C_LIST, B_STMTS };

const store_pg_stmt_t store__pg_budget_stmts[] = {
    [B_COUNT] = {"budget_count", STORE_BUDGET_COUNT(P), "t"},
    [B_PUT] = {"budget_put", STORE_BUDGET_PUT(P), "ttii"},
    [B_DELETE_CROSSINGS] = {"budget_delete_crossings", STORE_BUDGET_DELETE_CROSSINGS(P), "t"},
    [B_DELETE] = {"budget_delete", STORE_BUDGET_DELETE(P), "t"},
    [B_LIST] = {"budget_list", STORE_BUDGET_LIST, ""},
    [C_ADD] = {"budget_crossing_add", STORE_CROSSING_ADD(P), "tidddi"},
    [C_LIST] = {"budget_crossing_list", STORE_CROSSING_LIST(P), "ti"},
};
const size_t store__pg_budget_stmt_count = B_STMTS;

static int pg_put(store_t *s, const store_budget_t *b, bool *created, mf_error_t *err)
{
    PGconn *c = store__pg_conn(s);
    store_pg_params_t p = {0};
    store__binder_t bd = store__pg_binder(&p);
    bd.text(bd.ctx, 1, b->name);
    PGresult *res;
    int r =
        store__pg_run(c, store__pg_budget_stmts[B_COUNT].name, &p, &res, "look for a budget", err);
    if (r < 0)
        return r;
    bool had = store__pg_int(res, 0, 0) > 0;
    PQclear(res);
    store_pg_params_t q = {0};
    store__binder_t bq = store__pg_binder(&q);
    store__bind_budget(&bq, b);
    r = store__pg_run(c, store__pg_budget_stmts[B_PUT].name, &q, &res, "write a budget", err);
    if (r < 0)
        return r;
    PQclear(res);
    *created = !had;
    return 0;
}

static int pg_delete(store_t *s, const char *name, mf_error_t *err)
{
    PGconn *c = store__pg_conn(s);
    int r = store__pg_run_keyed(c, store__pg_budget_stmts[B_DELETE_CROSSINGS].name, name, NULL,
                                "delete a budget's crossings", err);
    if (r < 0)
        return r;
    int64_t n = 0;
    r = store__pg_run_keyed(c, store__pg_budget_stmts[B_DELETE].name, name, &n, "delete a budget",
                            err);
    if (r == 0 && n == 0)
        return store__no_budget(err, name);
    return r;
}

static int pg_list(store_t *s, store_budget_t **out, size_t *count, mf_error_t *err)
{
    PGresult *res;
    int r = store__pg_run(store__pg_conn(s), store__pg_budget_stmts[B_LIST].name, NULL, &res,
                          "list budgets", err);
    if (r < 0)
        return r;
    void *list = NULL;
    store__pg_rows(res, sizeof **out, store__fill_budget, &list, count);
    PQclear(res);
    *out = list;
    return 0;
}

static int pg_crossing_add(store_t *s, const store_budget_crossing_t *x, bool *added,
                           mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    store__bind_crossing(&b, x);
    PGresult *res;
    int r = store__pg_run(store__pg_conn(s), store__pg_budget_stmts[C_ADD].name, &p, &res,
                          "record a budget's crossing", err);
    if (r < 0)
        return r;
    *added = strtoll(PQcmdTuples(res), NULL, 10) > 0;
    PQclear(res);
    return 0;
}

static int pg_crossing_list(store_t *s, const char *budget, int64_t period_ms,
                            store_budget_crossing_t **out, size_t *count, mf_error_t *err)
{
    store_pg_params_t p = {0};
    store__binder_t b = store__pg_binder(&p);
    b.text(b.ctx, 1, budget);
    b.int64(b.ctx, 2, period_ms);
    PGresult *res;
    int r = store__pg_run(store__pg_conn(s), store__pg_budget_stmts[C_LIST].name, &p, &res,
                          "read a budget's crossings", err);
    if (r < 0)
        return r;
    void *list = NULL;
    store__pg_rows(res, sizeof **out, store__fill_crossing, &list, count);
    PQclear(res);
    *out = list;
    return 0;
}

const store__budget_ops_t store__pg_budget_ops = {
    .put = pg_put,
    .del = pg_delete,
    .list = pg_list,
    .crossing_add = pg_crossing_add,
    .crossing_list = pg_crossing_list,
};
