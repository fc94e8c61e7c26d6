/* How store/series.h's calls reach a backend (store__backend_t's series),
 * and their statements, the same text on both backends. Not for other
 * modules. */
#ifndef MAYFLY_STORE_SERIES_BACKEND_H
#define MAYFLY_STORE_SERIES_BACKEND_H

#include "store/rows.h"
#include "store/series.h"

typedef enum { STORE_SERIES_SUMS, STORE_SERIES_PERCENTILE, STORE_SERIES_SPANS } store__series_kind_t;

typedef struct store__series_ops {
    /* Runs kind's statement with w (and pct for the percentile): rows of
     * fill's struct into *out. */
    int (*query)(store_t *s, store__series_kind_t kind, const store_series_window_t *w, int pct,
                 size_t size, store__fill_fn fill, void **out, size_t *count, mf_error_t *err);
} store__series_ops_t;

extern const store__series_ops_t store__sqlite_series_ops;
extern const store__series_ops_t store__pg_series_ops;

/* Parameters: P(1) function, P(2) from_ms, P(3) to_ms, P(4) step_ms, P(5)
 * the percentile. Every number is cast where PostgreSQL would answer a
 * type the binary reader does not take (sum(bigint) is numeric). */
#define STORE_SERIES_RAN "status IN ('success', 'error', 'timeout', 'oom')"
#define STORE_SERIES_WHERE(P)                                                                      \
    " FROM invocations WHERE function = " P(1) " AND start_ms >= " P(2) " AND start_ms < " P(3)
#define STORE_SERIES_STEP(P) "(start_ms - " P(2) ") / " P(4)
#define STORE_SERIES_SUM(X) "CAST(sum(" X ") AS bigint)"
#define STORE_SERIES_SUMS_SQL(P)                                                                   \
    "SELECT CAST(" STORE_SERIES_STEP(P) " AS bigint),"                                             \
    STORE_SERIES_SUM("CASE WHEN " STORE_SERIES_RAN " THEN 1 ELSE 0 END") ","                      \
    STORE_SERIES_SUM("CASE WHEN status IN ('error', 'timeout', 'oom') THEN 1 ELSE 0 END") ","     \
    STORE_SERIES_SUM("CASE WHEN status = 'throttled' THEN 1 ELSE 0 END") ","                      \
    STORE_SERIES_SUM("CASE WHEN " STORE_SERIES_RAN " AND cold_start <> 0 THEN 1 ELSE 0 END") ","  \
    " CAST(sum(CASE WHEN " STORE_SERIES_RAN " THEN duration_ms ELSE 0 END) AS double precision)," \
    STORE_SERIES_SUM("billed_ms") "," STORE_SERIES_SUM("memory_mb * billed_ms") ","               \
    STORE_SERIES_SUM("cpu_ms") "," STORE_SERIES_SUM("egress_bytes") ","                           \
    STORE_SERIES_SUM("kv_ops") STORE_SERIES_WHERE(P) " GROUP BY 1 ORDER BY 1"
/* The nearest rank: the ceil(n × pct / 100)-th shortest of a step's n. */
#define STORE_SERIES_PERCENTILE_SQL(P)                                                             \
    "SELECT CAST(b AS bigint), CAST(duration_ms AS double precision) FROM (SELECT "              \
    STORE_SERIES_STEP(P) " AS b, duration_ms, row_number() OVER (PARTITION BY "                   \
    STORE_SERIES_STEP(P) " ORDER BY duration_ms) AS rn, count(*) OVER (PARTITION BY "             \
    STORE_SERIES_STEP(P) ") AS n" STORE_SERIES_WHERE(P) " AND " STORE_SERIES_RAN ") t"            \
    " WHERE rn = (n * " P(5) " + 99) / 100 ORDER BY b"
#define STORE_SERIES_SPANS_SQL(P)                                                                  \
    "SELECT CAST(start_ms AS bigint), CAST(duration_ms AS double precision)"                      \
    STORE_SERIES_WHERE(P) " AND " STORE_SERIES_RAN " ORDER BY start_ms"

/* Rows of the statements above into store_series_sums_t and
 * store_series_value_t. */
void store__fill_series_sums(const store__row_t *row, void *item);
void store__fill_series_value(const store__row_t *row, void *item);

#endif
