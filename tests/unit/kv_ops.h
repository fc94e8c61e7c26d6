/* What the KV stores' tests (test_kv.c, test_kv_pg.c) share: opening the
 * stores of a backend_t with bounds, and writing ops. Included after
 * store_backends.h. */
#ifndef MAYFLY_TESTS_KV_OPS_H
#define MAYFLY_TESTS_KV_OPS_H

#include <stdlib.h>
#include <string.h>

#include "store_backends.h"

#include "store/kv.h"

#define T0 1700000000000LL /* a wall time in ms, the tests' "now" */

/* The stores at b, with these bounds (0: none). */
static inline store_kv_t *open_kv(const backend_t *b, int64_t max_keys, int64_t max_bytes,
                                  int64_t max_value)
{
    mf_error_t err = MF_ERROR_INIT;
    store_kv_t *kv = NULL;
    if (store_kv_open(b->where, &kv, &err) < 0)
        fail_msg("store_kv_open: %s", err.msg);
    assert_string_equal(store_kv_backend_name(kv), b->pg ? "PostgreSQL" : "SQLite");
    store_kv_limits_t l = {
        .max_value_bytes = max_value, .max_store_bytes = max_bytes, .max_keys = max_keys};
    store_kv_set_limits(kv, &l);
    return kv;
}

static inline store_kv_op_t put_op(const char *key, const char *value)
{
    return (store_kv_op_t){.kind = STORE_KV_PUT,
                           .key = (char *)key,
                           .key_len = strlen(key),
                           .value = (void *)value,
                           .value_len = strlen(value)};
}

/* No store holds a key. */
static inline void assert_no_stores(store_kv_t *kv)
{
    mf_error_t err = MF_ERROR_INIT;
    store_kv_store_stats_t *list;
    size_t n;
    assert_int_equal(store_kv_stores(kv, &list, &n, &err), 0);
    assert_int_equal(n, 0);
    free(list);
}

#endif
