/* Budgets and their crossings on SQLite (store/budgets.h; mayfly.db's
 * migration 11). They change at an operator's pace and a crossing at most
 * a few times a period, so statements are prepared per call. */
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>

#include "store/budgets_backend.h"
#include "store/sqlite_internal.h"

#define P STORE__SQLITE_P

static int count_named(sqlite3 *db, const char *name, int64_t *n, mf_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int r = store__sqlite_prepare(db, STORE_BUDGET_COUNT(P), &st, err);
    if (r < 0)
        return r;
    if (sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW)
        r = store__sqlite_fail(db, err, "look for a budget");
    else
        *n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return r;
}

static int budget_bind(const store__binder_t *b, const void *item)
{
    return store__bind_budget(b, item);
}

static int crossing_bind(const store__binder_t *b, const void *item)
{
    return store__bind_crossing(b, item);
}

static int sq_put(store_t *s, const store_budget_t *b, bool *created, mf_error_t *err)
{
    sqlite3 *db = store__handle(s);
    int64_t n = 0, changed = 0;
    int r = count_named(db, b->name, &n, err);
    if (r == 0)
        r = store__sqlite_write(db, STORE_BUDGET_PUT(P), budget_bind, b, &changed, "write a budget",
                                err);
    if (r == 0)
        *created = n == 0;
    return r;
}

static int sq_delete(store_t *s, const char *name, mf_error_t *err)
{
    sqlite3 *db = store__handle(s);
    int r = store__run_keyed(db, STORE_BUDGET_DELETE_CROSSINGS(P), name,
                             "delete a budget's crossings", err);
    if (r < 0 && r != -ENOENT)
        return r;
    r = store__run_keyed(db, STORE_BUDGET_DELETE(P), name, "delete a budget", err);
    return r == -ENOENT ? store__no_budget(err, name) : r;
}

static int sq_list(store_t *s, store_budget_t **out, size_t *count, mf_error_t *err)
{
    void *list = NULL;
    int r = store__sqlite_query(store__handle(s), STORE_BUDGET_LIST, NULL, sizeof **out,
                                store__fill_budget, &list, count, "list budgets", err);
    if (r < 0) {
        store_budget_list_free(list, *count);
        list = NULL;
        *count = 0;
    }
    *out = list;
    return r;
}

static int sq_crossing_add(store_t *s, const store_budget_crossing_t *c, bool *added,
                           mf_error_t *err)
{
    int64_t changed = 0;
    int r = store__sqlite_write(store__handle(s), STORE_CROSSING_ADD(P), crossing_bind, c, &changed,
                                "record a budget's crossing", err);
    if (r == 0)
        *added = changed > 0;
    return r;
}

static int sq_crossing_list(store_t *s, const char *budget, int64_t period_ms,
                            store_budget_crossing_t **out, size_t *count, mf_error_t *err)
{
    sqlite3 *db = store__handle(s);
    sqlite3_stmt *st = NULL;
    int r = store__sqlite_prepare(db, STORE_CROSSING_LIST(P), &st, err);
    if (r < 0)
        return r;
    void *list = NULL;
    if (sqlite3_bind_text(st, 1, budget, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(st, 2, period_ms) != SQLITE_OK)
        r = store__sqlite_fail(db, err, "read a budget's crossings");
    else
        r = store__sqlite_rows(db, st, sizeof **out, store__fill_crossing, &list, count,
                               "read a budget's crossings", err);
    sqlite3_finalize(st);
    if (r < 0) {
        free(list);
        list = NULL;
        *count = 0;
    }
    *out = list;
    return r;
}

const store__budget_ops_t store__sqlite_budget_ops = {
    .put = sq_put,
    .del = sq_delete,
    .list = sq_list,
    .crossing_add = sq_crossing_add,
    .crossing_list = sq_crossing_list,
};
