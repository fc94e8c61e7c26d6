/* store/series.h on SQLite: the statements of series_backend.h, prepared
 * per call (a chart's read is rare next to the records' writes). */
#include <sqlite3.h>

#include "store/series_backend.h"
#include "store/sqlite_internal.h"

#define P STORE__SQLITE_P

static int sq_query(store_t *s, store__series_kind_t kind, const store_series_window_t *w,
                    int pct, size_t size, store__fill_fn fill, void **out, size_t *count,
                    mf_error_t *err)
{
    static const char *const sql[] = {
        [STORE_SERIES_SUMS] = STORE_SERIES_SUMS_SQL(P),
        [STORE_SERIES_PERCENTILE] = STORE_SERIES_PERCENTILE_SQL(P),
        [STORE_SERIES_SPANS] = STORE_SERIES_SPANS_SQL(P),
    };
    sqlite3 *db = store__handle(s);
    sqlite3_stmt *st = NULL;
    int r = store__sqlite_prepare(db, sql[kind], &st, err);
    if (r < 0)
        return r;
    /* Each statement takes the parameters it names (SQLite counts them
     * up to the highest used). */
    int n = sqlite3_bind_parameter_count(st);
    int64_t nums[] = { w->from_ms, w->to_ms, w->step_ms, pct };
    bool ok = sqlite3_bind_text(st, 1, w->function, -1, SQLITE_STATIC) == SQLITE_OK;
    for (int i = 2; ok && i <= n; i++)
        ok = sqlite3_bind_int64(st, i, nums[i - 2]) == SQLITE_OK;
    if (!ok)
        r = store__sqlite_fail(db, err, "read a function's series");
    else
        r = store__sqlite_rows(db, st, size, fill, out, count, "read a function's series", err);
    sqlite3_finalize(st);
    return r;
}

const store__series_ops_t store__sqlite_series_ops = { .query = sq_query };
