/* store/series.h's calls, handed to the backend (series_backend.h), and
 * the rows both read alike. */
#include "store/series.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/backend.h"
#include "store/series_backend.h"

static int run(store_t *s, store__series_kind_t kind, const store_series_window_t *w, int pct,
               size_t size, store__fill_fn fill, void **out, size_t *count, mf_error_t *err)
{
    *out = NULL;
    *count = 0;
    if (!s->be->series)
        return mf_error_plain(err, ENOTSUP, "store: %s keeps no series", store_backend_name(s));
    int r = s->be->series->query(s, kind, w, pct, size, fill, out, count, err);
    if (r < 0) {
        free(*out);
        *out = NULL;
        *count = 0;
    }
    return r;
}

int store_series_sums(store_t *s, const store_series_window_t *w, store_series_sums_t **out,
                      size_t *count, mf_error_t *err)
{
    return run(s, STORE_SERIES_SUMS, w, 0, sizeof **out, store__fill_series_sums, (void **)out,
               count, err);
}

int store_series_percentile(store_t *s, const store_series_window_t *w, int pct,
                            store_series_value_t **out, size_t *count, mf_error_t *err)
{
    if (pct < 1 || pct > 100)
        return mf_error_plain(err, EINVAL, "store: percentile %d is not 1-100", pct);
    return run(s, STORE_SERIES_PERCENTILE, w, pct, sizeof **out, store__fill_series_value,
               (void **)out, count, err);
}

int store_series_spans(store_t *s, const store_series_window_t *w, store_series_value_t **out,
                       size_t *count, mf_error_t *err)
{
    return run(s, STORE_SERIES_SPANS, w, 0, sizeof **out, store__fill_series_value, (void **)out,
               count, err);
}

void store__fill_series_sums(const store__row_t *row, void *item)
{
    store_series_sums_t *x = item;
    void *c = row->ctx;
    memset(x, 0, sizeof *x);
    x->step = row->int64(c, 0);
    x->invocations = row->int64(c, 1);
    x->errors = row->int64(c, 2);
    x->throttles = row->int64(c, 3);
    x->cold_starts = row->int64(c, 4);
    x->duration_ms = row->real(c, 5);
    x->billed_ms = row->int64(c, 6);
    x->mb_ms = row->int64(c, 7);
    x->cpu_ms = row->int64(c, 8);
    x->egress_bytes = row->int64(c, 9);
    x->kv_ops = row->int64(c, 10);
}

void store__fill_series_value(const store__row_t *row, void *item)
{
    store_series_value_t *x = item;
    x->key = row->int64(row->ctx, 0);
    x->value = row->real(row->ctx, 1);
}
