/* store/series.h on PostgreSQL: the statements of series_backend.h,
 * prepared on each of the store's connections (store__pg_series_stmts). */
#include "store/postgres_internal.h"
#include "store/series_backend.h"

#define P STORE__PG_P

const store_pg_stmt_t store__pg_series_stmts[] = {
    [STORE_SERIES_SUMS] = { "series_sums", STORE_SERIES_SUMS_SQL(P), "tiii" },
    [STORE_SERIES_PERCENTILE] = { "series_percentile", STORE_SERIES_PERCENTILE_SQL(P), "tiiii" },
    [STORE_SERIES_SPANS] = { "series_spans", STORE_SERIES_SPANS_SQL(P), "tii" },
};
const size_t store__pg_series_stmt_count =
    sizeof store__pg_series_stmts / sizeof store__pg_series_stmts[0];

static int pg_query(store_t *s, store__series_kind_t kind, const store_series_window_t *w,
                    int pct, size_t size, store__fill_fn fill, void **out, size_t *count,
                    mf_error_t *err)
{
    store_pg_params_t p = { 0 };
    store__binder_t b = store__pg_binder(&p);
    b.text(b.ctx, 1, w->function);
    b.int64(b.ctx, 2, w->from_ms);
    b.int64(b.ctx, 3, w->to_ms);
    if (kind != STORE_SERIES_SPANS)
        b.int64(b.ctx, 4, w->step_ms);
    if (kind == STORE_SERIES_PERCENTILE)
        b.int64(b.ctx, 5, pct);
    PGresult *res;
    int r = store__pg_run(store__pg_conn(s), store__pg_series_stmts[kind].name, &p, &res,
                          "read a function's series", err);
    if (r < 0)
        return r;
    store__pg_rows(res, size, fill, out, count);
    PQclear(res);
    return 0;
}

const store__series_ops_t store__pg_series_ops = { .query = pg_query };
