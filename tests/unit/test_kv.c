/* The key-value stores (store/kv.h), the same on both backends: each test
 * runs against a real kv.db in a fresh directory and against a fresh
 * PostgreSQL database (store_backends.h): conditions, versions, TTLs,
 * incr, batches, counts, bounds, listings, and writes through the writer
 * thread. What only PostgreSQL does (several connections writing at once)
 * is in test_kv_pg.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <uv.h>

#include "store_backends.h"
#include "kv_ops.h"

#include "core/buf.h"
#include "core/cleanup.h"
#include "core/xalloc.h"
#include "store/kv.h"
#include "store/writer.h"

/* ---- helpers -------------------------------------------------------------- */

static store_kv_op_t delete_op(const char *key, int64_t if_version)
{
    return (store_kv_op_t){.kind = STORE_KV_DELETE,
                           .key = (char *)key,
                           .key_len = strlen(key),
                           .if_version = if_version};
}

/* Writes op and returns its r; *version (may be NULL) gets the version. */
static int write_op(store_kv_t *kv, const char *store, store_kv_op_t op, int64_t now,
                    int64_t *version, mf_error_t *err)
{
    int64_t v = 0;
    int r = store_kv_write(kv, store, &op, now, &v, err);
    if (version)
        *version = v;
    return r;
}

static int64_t put(store_kv_t *kv, const char *store, const char *key, const char *value,
                   int64_t now)
{
    mf_error_t err = MF_ERROR_INIT;
    int64_t v;
    if (write_op(kv, store, put_op(key, value), now, &v, &err) < 0)
        fail_msg("put %s/%s: %s", store, key, err.msg);
    assert_true(v > 0);
    return v;
}

/* The value of key at now, or NULL (caller frees). */
static char *get(store_kv_t *kv, const char *store, const char *key, int64_t now, int64_t *version)
{
    mf_error_t err = MF_ERROR_INIT;
    store_kv_item_t it;
    int r = store_kv_get(kv, store, key, strlen(key), now, &it, &err);
    if (r == -ENOENT)
        return NULL;
    if (r < 0)
        fail_msg("get %s/%s: %s", store, key, err.msg);
    char *v = steal_pointer(&it.value);
    if (version)
        *version = it.version;
    store_kv_item_clear(&it);
    return v;
}

static store_kv_store_stats_t stats(store_kv_t *kv, const char *store)
{
    mf_error_t err = MF_ERROR_INIT;
    store_kv_store_stats_t s;
    if (store_kv_store_stats(kv, store, &s, &err) < 0)
        fail_msg("stats %s: %s", store, err.msg);
    return s;
}

static void assert_value(store_kv_t *kv, const char *store, const char *key, const char *want,
                         int64_t now)
{
    cleanup_free char *v = get(kv, store, key, now, NULL);
    if (!want) {
        if (v)
            fail_msg("%s/%s: expected no key, found `%s`", store, key, v);
        return;
    }
    if (!v)
        fail_msg("%s/%s: expected `%s`, found no key", store, key, want);
    assert_string_equal(v, want);
}

/* ---- opening, reading, writing -------------------------------------------- */

static void test_open_creates_the_file(void **state)
{
    const backend_t *b = *state;
    store_kv_t *kv = open_kv(b, 0, 0, 0);
    if (!b->pg) {
        cleanup_free char *path = xasprintf("%s/kv.db", b->dir);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_true(S_ISREG(st.st_mode));
    }
    put(kv, "s", "k", "v", T0);
    store_kv_close(kv);
    /* Opening again migrates nothing and keeps what is there. */
    kv = open_kv(b, 0, 0, 0);
    assert_value(kv, "s", "k", "v", T0);
    store_kv_close(kv);
}

static void test_put_get_round_trip_with_content_type(void **state)
{
    store_kv_t *kv = open_kv(*state, 0, 0, 0);
    mf_error_t err = MF_ERROR_INIT;
    /* Bytes, NUL included, and a type of the caller's. */
    static const char bin[] = {'a', 0, 'b', (char)0xff};
    store_kv_op_t op = {.kind = STORE_KV_PUT,
                        .key = "bin",
                        .key_len = 3,
                        .value = (void *)bin,
                        .value_len = sizeof bin,
                        .content_type = "image/x-test"};
    int64_t v;
    assert_int_equal(store_kv_write(kv, "s", &op, T0, &v, &err), 0);
    store_kv_item_t it;
    assert_int_equal(store_kv_get(kv, "s", "bin", 3, T0, &it, &err), 0);
    assert_int_equal(it.value_len, sizeof bin);
    assert_memory_equal(it.value, bin, sizeof bin);
    assert_string_equal(it.content_type, "image/x-test");
    assert_int_equal(it.version, v);
    assert_int_equal(it.expires_ms, 0);
    assert_int_equal(it.size, sizeof bin);
    store_kv_item_clear(&it);

    /* No type: the default. An empty value is a value. */
    put(kv, "s", "empty", "", T0);
    assert_int_equal(store_kv_get(kv, "s", "empty", 5, T0, &it, &err), 0);
    assert_int_equal(it.value_len, 0);
    assert_string_equal(it.content_type, STORE_KV_DEFAULT_CONTENT_TYPE);
    store_kv_item_clear(&it);

    /* Stores are separate. */
    assert_int_equal(store_kv_get(kv, "other", "bin", 3, T0, &it, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "bin"));
    store_kv_close(kv);
}

static void test_versions_increase_and_are_never_reused(void **state)
{
    const backend_t *b = *state;
    store_kv_t *kv = open_kv(b, 0, 0, 0);
    mf_error_t err = MF_ERROR_INIT;
    int64_t v1 = put(kv, "a", "k", "1", T0);
    int64_t v2 = put(kv, "b", "k", "1", T0);
    int64_t v3 = put(kv, "a", "k", "2", T0);
    assert_true(v1 < v2 && v2 < v3);
    /* Deleted and made again: a new version, above every earlier one. */
    assert_int_equal(write_op(kv, "a", delete_op("k", 0), T0, NULL, &err), 0);
    int64_t v4 = put(kv, "a", "k", "1", T0);
    assert_true(v4 > v3);
    /* A failed write takes no version anyone sees, and the next is still
     * above every version given. */
    store_kv_op_t bad = put_op("k", "x");
    bad.if_version = 1;
    assert_int_equal(store_kv_write(kv, "a", &bad, T0, NULL, &err), -ECANCELED);
    store_kv_close(kv);

    /* The counter is in the file: a new connection goes on from it, even
     * after the key with the highest version is gone. */
    kv = open_kv(b, 0, 0, 0);
    assert_int_equal(write_op(kv, "a", delete_op("k", 0), T0, NULL, &err), 0);
    store_kv_close(kv);
    kv = open_kv(b, 0, 0, 0);
    int64_t v5 = put(kv, "a", "k", "again", T0);
    assert_true(v5 > v4);
    store_kv_close(kv);
}

static void test_conditions(void **state)
{
    store_kv_t *kv = open_kv(*state, 0, 0, 0);
    mf_error_t err = MF_ERROR_INIT;

    /* Create only: once. */
    store_kv_op_t create = put_op("k", "first");
    create.if_absent = true;
    int64_t v;
    assert_int_equal(store_kv_write(kv, "s", &create, T0, &v, &err), 0);
    create.value = "second";
    create.value_len = 6;
    assert_int_equal(store_kv_write(kv, "s", &create, T0, NULL, &err), -ECANCELED);
    assert_non_null(strstr(err.msg, "exists"));
    assert_value(kv, "s", "k", "first", T0);

    /* If-Match: the right version wins once; the same version again loses. */
    store_kv_op_t cas = put_op("k", "cas");
    cas.if_version = v;
    int64_t v2;
    assert_int_equal(store_kv_write(kv, "s", &cas, T0, &v2, &err), 0);
    assert_true(v2 > v);
    cas.value = "late";
    cas.value_len = 4;
    assert_int_equal(store_kv_write(kv, "s", &cas, T0, NULL, &err), -ECANCELED);
    assert_value(kv, "s", "k", "cas", T0);

    /* If-Match on a missing key fails. */
    store_kv_op_t missing = put_op("nope", "x");
    missing.if_version = v2;
    assert_int_equal(store_kv_write(kv, "s", &missing, T0, NULL, &err), -ECANCELED);
    assert_value(kv, "s", "nope", NULL, T0);

    /* Deletes: a wrong version keeps the key, the right one removes it,
     * and then it is not there (404 before the version is looked at). */
    assert_int_equal(write_op(kv, "s", delete_op("k", v), T0, NULL, &err), -ECANCELED);
    assert_value(kv, "s", "k", "cas", T0);
    assert_int_equal(write_op(kv, "s", delete_op("k", v2), T0, NULL, &err), 0);
    assert_value(kv, "s", "k", NULL, T0);
    assert_int_equal(write_op(kv, "s", delete_op("k", 0), T0, NULL, &err), -ENOENT);
    assert_int_equal(write_op(kv, "s", delete_op("k", v2), T0, NULL, &err), -ENOENT);
    store_kv_close(kv);
}

static void test_ttl_expiry_and_sweep(void **state)
{
    store_kv_t *kv = open_kv(*state, 0, 0, 0);
    mf_error_t err = MF_ERROR_INIT;
    store_kv_op_t op = put_op("t", "soon gone");
    op.ttl_ms = 1000;
    assert_int_equal(store_kv_write(kv, "s", &op, T0, NULL, &err), 0);
    put(kv, "s", "keep", "stays", T0);

    store_kv_item_t it;
    assert_int_equal(store_kv_get(kv, "s", "t", 1, T0 + 999, &it, &err), 0);
    assert_int_equal(it.expires_ms, T0 + 1000);
    store_kv_item_clear(&it);
    /* Expired: never returned, though its row is still there. */
    assert_int_equal(store_kv_get(kv, "s", "t", 1, T0 + 1000, &it, &err), -ENOENT);
    store_kv_item_t *list;
    size_t n;
    bool more;
    assert_int_equal(store_kv_list(kv, "s", "", 0, "", 0, 10, T0 + 1000, &list, &n, &more, &err),
                     0);
    assert_int_equal(n, 1);
    assert_memory_equal(list[0].key, "keep", 4);
    store_kv_items_free(list, n);
    assert_int_equal(stats(kv, "s").keys, 2);

    /* An expired key is absent to conditions: create-only succeeds... */
    store_kv_op_t create = put_op("t2", "x");
    create.ttl_ms = 10;
    assert_int_equal(store_kv_write(kv, "s", &create, T0, NULL, &err), 0);
    create.if_absent = true;
    create.ttl_ms = 0;
    assert_int_equal(store_kv_write(kv, "s", &create, T0 + 10, NULL, &err), 0);
    /* ...a delete finds nothing. */
    assert_int_equal(write_op(kv, "s", delete_op("t", 0), T0 + 1000, NULL, &err), -ENOENT);

    /* The sweep removes what expired, and the counts follow. */
    int64_t removed;
    store_kv_store_stats_t *changed;
    size_t nchanged;
    assert_int_equal(store_kv_sweep(kv, T0 + 999, 100, &removed, &changed, &nchanged, &err), 0);
    assert_int_equal(removed, 0);
    free(changed);
    assert_int_equal(store_kv_sweep(kv, T0 + 1000, 100, &removed, &changed, &nchanged, &err), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(nchanged, 1);
    assert_string_equal(changed[0].name, "s");
    assert_int_equal(changed[0].keys, 2);
    free(changed);
    store_kv_store_stats_t s = stats(kv, "s");
    assert_int_equal(s.keys, 2);
    assert_int_equal(s.bytes, (4 + 5) + (2 + 1));
    store_kv_close(kv);
}

static void test_sweep_goes_in_batches(void **state)
{
    store_kv_t *kv = open_kv(*state, 0, 0, 0);
    mf_error_t err = MF_ERROR_INIT;
    for (int i = 0; i < 25; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%02d", i);
        store_kv_op_t op = put_op(key, "v");
        op.ttl_ms = 5;
        assert_int_equal(store_kv_write(kv, i % 2 ? "odd" : "even", &op, T0, NULL, &err), 0);
    }
    int64_t removed, total = 0;
    int rounds = 0;
    do {
        assert_int_equal(store_kv_sweep(kv, T0 + 5, 10, &removed, NULL, NULL, &err), 0);
        assert_true(removed <= 10);
        total += removed;
        rounds++;
    } while (removed == 10);
    assert_int_equal(total, 25);
    assert_int_equal(rounds, 3);
    assert_int_equal(stats(kv, "odd").keys, 0);
    assert_int_equal(stats(kv, "even").keys, 0);
    assert_no_stores(kv);
    store_kv_close(kv);
}

static void test_incr(void **state)
{
    store_kv_t *kv = open_kv(*state, 0, 0, 0);
    mf_error_t err = MF_ERROR_INIT;
    int64_t value, version, last = 0;
    /* A missing key starts at 0. */
    assert_int_equal(store_kv_incr(kv, "c", "n", 1, 5, 0, T0, &value, &version, &err), 0);
    assert_int_equal(value, 5);
    last = version;
    assert_int_equal(store_kv_incr(kv, "c", "n", 1, -7, 0, T0, &value, &version, &err), 0);
    assert_int_equal(value, -2);
    assert_true(version > last);
    assert_value(kv, "c", "n", "-2", T0);
    store_kv_item_t it;
    assert_int_equal(store_kv_get(kv, "c", "n", 1, T0, &it, &err), 0);
    assert_string_equal(it.content_type, "application/json");
    store_kv_item_clear(&it);

    /* A value written as text counts if it is a decimal int64. */
    put(kv, "c", "text", "41", T0);
    assert_int_equal(store_kv_incr(kv, "c", "text", 4, 1, 0, T0, &value, &version, &err), 0);
    assert_int_equal(value, 42);

    /* Not a number, or past the range: refused, the value kept. */
    put(kv, "c", "word", "forty", T0);
    assert_int_equal(store_kv_incr(kv, "c", "word", 4, 1, 0, T0, &value, &version, &err), -EDOM);
    assert_non_null(strstr(err.msg, "not a decimal integer"));
    assert_value(kv, "c", "word", "forty", T0);
    put(kv, "c", "float", "1.5", T0);
    assert_int_equal(store_kv_incr(kv, "c", "float", 5, 1, 0, T0, &value, &version, &err), -EDOM);
    put(kv, "c", "big", "9223372036854775807", T0);
    assert_int_equal(store_kv_incr(kv, "c", "big", 3, 1, 0, T0, &value, &version, &err), -ERANGE);
    assert_non_null(strstr(err.msg, "overflows"));
    assert_value(kv, "c", "big", "9223372036854775807", T0);
    put(kv, "c", "huge", "99999999999999999999", T0);
    assert_int_equal(store_kv_incr(kv, "c", "huge", 4, 1, 0, T0, &value, &version, &err), -ERANGE);
    put(kv, "c", "small", "-9223372036854775808", T0);
    assert_int_equal(store_kv_incr(kv, "c", "small", 5, -1, 0, T0, &value, &version, &err),
                     -ERANGE);
    assert_int_equal(store_kv_incr(kv, "c", "small", 5, 1, 0, T0, &value, &version, &err), 0);
    assert_int_equal(value, INT64_MIN + 1);

    /* A TTL: set by the incr that gives one, kept by those that do not;
     * once expired, the count starts again from 0. */
    assert_int_equal(store_kv_incr(kv, "c", "w", 1, 1, 1000, T0, &value, &version, &err), 0);
    assert_int_equal(store_kv_incr(kv, "c", "w", 1, 1, 0, T0 + 500, &value, &version, &err), 0);
    assert_int_equal(value, 2);
    assert_int_equal(store_kv_get(kv, "c", "w", 1, T0 + 500, &it, &err), 0);
    assert_int_equal(it.expires_ms, T0 + 1000);
    store_kv_item_clear(&it);
    assert_int_equal(store_kv_incr(kv, "c", "w", 1, 1, 0, T0 + 1000, &value, &version, &err), 0);
    assert_int_equal(value, 1);
    assert_int_equal(store_kv_get(kv, "c", "w", 1, T0 + 5000, &it, &err), 0);
    assert_int_equal(it.expires_ms, 0);
    store_kv_item_clear(&it);
    store_kv_close(kv);
}

static void test_batch_is_all_or_nothing(void **state)
{
    store_kv_t *kv = open_kv(*state, 0, 0, 0);
    mf_error_t err = MF_ERROR_INIT;
    int64_t v0 = put(kv, "s", "a", "old", T0);
    store_kv_store_stats_t before = stats(kv, "s");

    store_kv_op_t ops[4] = {put_op("a", "new"), put_op("b", "B"), delete_op("a", 0),
                            put_op("c", "C")};
    ops[3].if_version = 999999;
    int64_t versions[4];
    size_t failed = 99;
    assert_int_equal(store_kv_write_all(kv, "s", ops, 4, T0, versions, &failed, &err), -ECANCELED);
    assert_int_equal(failed, 3);
    assert_memory_equal(err.msg, "ops[3]: ", 8);
    for (int i = 0; i < 4; i++)
        assert_int_equal(versions[i], 0);
    /* Nothing of it happened. */
    int64_t v;
    cleanup_free char *a = get(kv, "s", "a", T0, &v);
    assert_string_equal(a, "old");
    assert_int_equal(v, v0);
    assert_value(kv, "s", "b", NULL, T0);
    store_kv_store_stats_t after = stats(kv, "s");
    assert_int_equal(after.keys, before.keys);
    assert_int_equal(after.bytes, before.bytes);

    /* The same without the failing condition: all of it, in order. */
    ops[3].if_version = 0;
    assert_int_equal(store_kv_write_all(kv, "s", ops, 4, T0, versions, &failed, &err), 0);
    assert_true(versions[0] > v0 && versions[1] > versions[0]);
    assert_int_equal(versions[2], 0);
    assert_true(versions[3] > versions[1]);
    assert_value(kv, "s", "a", NULL, T0);
    assert_value(kv, "s", "b", "B", T0);
    assert_value(kv, "s", "c", "C", T0);
    assert_int_equal(stats(kv, "s").keys, 2);

    /* In a batch, deleting a missing key is a no-op; with a version it is
     * a failed condition. */
    store_kv_op_t del[2] = {delete_op("gone", 0), put_op("d", "D")};
    assert_int_equal(store_kv_write_all(kv, "s", del, 2, T0, versions, &failed, &err), 0);
    assert_value(kv, "s", "d", "D", T0);
    del[0].if_version = 3;
    assert_int_equal(store_kv_write_all(kv, "s", del, 2, T0, versions, &failed, &err), -ECANCELED);
    assert_int_equal(failed, 0);
    store_kv_close(kv);
}

static void test_counts_are_exact(void **state)
{
    store_kv_t *kv = open_kv(*state, 0, 0, 0);
    mf_error_t err = MF_ERROR_INIT;
    store_kv_store_stats_t s = stats(kv, "s");
    assert_int_equal(s.keys, 0);
    assert_int_equal(s.bytes, 0);
    put(kv, "s", "ab", "12345", T0);
    put(kv, "s", "c", "", T0);
    s = stats(kv, "s");
    assert_int_equal(s.keys, 2);
    assert_int_equal(s.bytes, 2 + 5 + 1);
    /* Overwrite: the same key, other bytes. */
    put(kv, "s", "ab", "1", T0);
    s = stats(kv, "s");
    assert_int_equal(s.keys, 2);
    assert_int_equal(s.bytes, 2 + 1 + 1);
    put(kv, "t", "x", "yz", T0);
    assert_int_equal(write_op(kv, "s", delete_op("c", 0), T0, NULL, &err), 0);
    s = stats(kv, "s");
    assert_int_equal(s.keys, 1);
    assert_int_equal(s.bytes, 3);

    store_kv_store_stats_t *list;
    size_t n;
    assert_int_equal(store_kv_stores(kv, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "s");
    assert_int_equal(list[0].keys, 1);
    assert_string_equal(list[1].name, "t");
    assert_int_equal(list[1].bytes, 3);
    free(list);

    /* A whole store goes at once; then it is not there to drop. */
    assert_int_equal(store_kv_drop(kv, "s", &err), 0);
    assert_value(kv, "s", "ab", NULL, T0);
    assert_int_equal(stats(kv, "s").keys, 0);
    assert_int_equal(store_kv_drop(kv, "s", &err), -ENOENT);
    assert_value(kv, "t", "x", "yz", T0);
    store_kv_close(kv);
}

static void test_bounds(void **state)
{
    store_kv_t *kv = open_kv(*state, 2, 100, 10);
    mf_error_t err = MF_ERROR_INIT;
    put(kv, "s", "a", "1", T0);
    put(kv, "s", "b", "2", T0);
    /* A third key is one too many; replacing one is not. */
    assert_int_equal(write_op(kv, "s", put_op("c", "3"), T0, NULL, &err), -ENOSPC);
    assert_memory_equal(err.msg, "store s is full", 15);
    put(kv, "s", "a", "0123456789", T0);
    /* Another store has its own bound. */
    put(kv, "t", "c", "3", T0);
    /* A value over the bound on one value. */
    assert_int_equal(write_op(kv, "s", put_op("a", "0123456789x"), T0, NULL, &err), -EFBIG);
    int64_t value, version;
    /* incr counts too: a new key in a full store. */
    assert_int_equal(store_kv_incr(kv, "s", "n", 1, 1, 0, T0, &value, &version, &err), -ENOSPC);

    /* An expired key makes room once swept, which a full store does first. */
    assert_int_equal(write_op(kv, "s", delete_op("b", 0), T0, NULL, &err), 0);
    store_kv_op_t op = put_op("b", "2");
    op.ttl_ms = 10;
    assert_int_equal(store_kv_write(kv, "s", &op, T0, NULL, &err), 0);
    assert_int_equal(write_op(kv, "s", put_op("c", "3"), T0 + 5, NULL, &err), -ENOSPC);
    assert_int_equal(write_op(kv, "s", put_op("c", "3"), T0 + 10, NULL, &err), 0);
    assert_int_equal(stats(kv, "s").keys, 2);
    store_kv_close(kv);

    /* Bytes: keys and values together. */
    kv = open_kv(*state, 0, 13, 0);
    assert_int_equal(write_op(kv, "bytes", put_op("k", "0123456789"), T0, NULL, &err), 0);
    assert_int_equal(write_op(kv, "bytes", put_op("j", "x"), T0, NULL, &err), 0);
    assert_int_equal(stats(kv, "bytes").bytes, 13);
    assert_int_equal(write_op(kv, "bytes", put_op("i", "x"), T0, NULL, &err), -ENOSPC);
    assert_int_equal(write_op(kv, "bytes", put_op("j", "xy"), T0, NULL, &err), -ENOSPC);
    assert_int_equal(stats(kv, "bytes").bytes, 13);
    /* Shrinking always goes, and makes room. */
    assert_int_equal(write_op(kv, "bytes", put_op("k", "0"), T0, NULL, &err), 0);
    assert_int_equal(stats(kv, "bytes").bytes, 4);
    assert_int_equal(write_op(kv, "bytes", put_op("i", "x"), T0, NULL, &err), 0);
    store_kv_close(kv);
}

/* The keys of one page, joined with commas. */
static void page_keys(store_kv_item_t *items, size_t n, buf_t *out)
{
    buf_reset(out);
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_addch(out, ',');
        buf_add(out, items[i].key, items[i].key_len);
    }
}

static void test_list_pages_in_byte_order(void **state)
{
    store_kv_t *kv = open_kv(*state, 0, 0, 0);
    mf_error_t err = MF_ERROR_INIT;
    for (int i = 24; i >= 0; i--) {
        char key[16];
        snprintf(key, sizeof key, "k%02d", i);
        put(kv, "s", key, "v", T0);
    }
    put(kv, "s", "a", "v", T0);
    put(kv, "s", "\xc3\xa9", "v", T0); /* é: after every ASCII key */
    put(kv, "other", "k00", "v", T0);

    /* Pages of 10 under the prefix "k", the cursor between them. */
    cleanup_buf buf_t after = BUF_INIT, cursor = BUF_INIT, got = BUF_INIT;
    size_t total = 0, pages = 0;
    for (;;) {
        store_kv_item_t *items;
        size_t n;
        bool more;
        assert_int_equal(
            store_kv_list(kv, "s", "k", 1, after.data, after.len, 10, T0, &items, &n, &more, &err),
            0);
        for (size_t i = 0; i < n; i++) {
            char want[16];
            snprintf(want, sizeof want, "k%02zu", total + i);
            assert_int_equal(items[i].key_len, 3);
            assert_memory_equal(items[i].key, want, 3);
            assert_int_equal(items[i].size, 1);
            assert_null(items[i].value);
        }
        total += n;
        pages++;
        if (!more) {
            store_kv_items_free(items, n);
            break;
        }
        buf_reset(&cursor);
        store_kv_cursor_format(&cursor, items[n - 1].key, items[n - 1].key_len);
        store_kv_items_free(items, n);
        assert_int_equal(store_kv_cursor_parse(cursor.data, cursor.len, &after), 0);
    }
    assert_int_equal(total, 25);
    assert_int_equal(pages, 3);

    /* No prefix: everything, in byte order. */
    store_kv_item_t *items;
    size_t n;
    bool more;
    assert_int_equal(store_kv_list(kv, "s", "", 0, "", 0, 1000, T0, &items, &n, &more, &err), 0);
    assert_int_equal(n, 27);
    assert_false(more);
    page_keys(items, n, &got);
    assert_memory_equal(got.data, "a,k00,", 6);
    assert_memory_equal(items[26].key, "\xc3\xa9", 2);
    store_kv_items_free(items, n);

    /* A cursor past the prefix's keys: nothing more. A cursor before the
     * prefix: from the prefix's first key. */
    assert_int_equal(store_kv_list(kv, "s", "k1", 2, "k2", 2, 10, T0, &items, &n, &more, &err), 0);
    assert_int_equal(n, 0);
    store_kv_items_free(items, n);
    assert_int_equal(store_kv_list(kv, "s", "k1", 2, "a", 1, 3, T0, &items, &n, &more, &err), 0);
    page_keys(items, n, &got);
    assert_string_equal(got.data, "k10,k11,k12");
    assert_true(more);
    store_kv_items_free(items, n);
    /* A prefix whose last byte is 0xff still bounds its range. */
    put(kv, "s", "k\xff", "v", T0);
    put(kv, "s", "l", "v", T0);
    assert_int_equal(store_kv_list(kv, "s", "k\xff", 2, "", 0, 10, T0, &items, &n, &more, &err), 0);
    assert_int_equal(n, 1);
    store_kv_items_free(items, n);
    store_kv_close(kv);
}

static void test_cursor_parse(void **state)
{
    (void)state;
    cleanup_buf buf_t out = BUF_INIT, c = BUF_INIT;
    /* Round trips, bytes of every kind (and lengths 1, 2, 3 mod 3). */
    const char *keys[] = {"a", "ab", "abc", "\xc3\xa9/x?&=+", "\xff\xfe"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        buf_reset(&c);
        store_kv_cursor_format(&c, keys[i], strlen(keys[i]));
        assert_null(strpbrk(c.data, "+/=&?%"));
        assert_int_equal(store_kv_cursor_parse(c.data, c.len, &out), 0);
        assert_int_equal(out.len, strlen(keys[i]));
        assert_memory_equal(out.data, keys[i], out.len);
    }
    /* Anything else is refused. */
    const char *bad[] = {"", "k1.", "abc", "k1.YQ==", "k1.Y", "k1.YR", "k2.YQ", "k1.Y Q", "k1.+/"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(store_kv_cursor_parse(bad[i], strlen(bad[i]), &out), -EINVAL);
    /* Too long for a key. */
    buf_t big = BUF_INIT;
    char key[STORE_KV_KEY_MAX + 1];
    memset(key, 'x', sizeof key);
    store_kv_cursor_format(&big, key, sizeof key);
    assert_int_equal(store_kv_cursor_parse(big.data, big.len, &out), -EINVAL);
    buf_release(&big);
}

static void test_get_many(void **state)
{
    store_kv_t *kv = open_kv(*state, 0, 0, 0);
    mf_error_t err = MF_ERROR_INIT;
    int64_t va = put(kv, "s", "a", "AAAA", T0);
    put(kv, "s", "b", "BBBB", T0);
    slice_t keys[3] = {{"a", 1}, {"missing", 7}, {"b", 1}};
    store_kv_item_t items[3] = {0};
    assert_int_equal(store_kv_get_many(kv, "s", keys, 3, T0, 0, items, &err), 0);
    assert_true(items[0].found);
    assert_int_equal(items[0].version, va);
    assert_memory_equal(items[0].value, "AAAA", 4);
    assert_false(items[1].found);
    assert_memory_equal(items[1].key, "missing", 7);
    assert_true(items[2].found);
    for (int i = 0; i < 3; i++)
        store_kv_item_clear(&items[i]);
    /* Past the bound on the bytes read at once. */
    assert_int_equal(store_kv_get_many(kv, "s", keys, 3, T0, 7, items, &err), -EFBIG);
    for (int i = 0; i < 3; i++)
        assert_null(items[i].key);
    store_kv_close(kv);
}

/* ---- through the writer thread ------------------------------------------- */

typedef struct incr_job {
    int64_t value, version;
    int r;
    int *done;
} incr_job_t;

static int incr_apply(void *db, void *arg, mf_error_t *err)
{
    incr_job_t *j = arg;
    return store_kv_incr(db, "c", "n", 1, 1, 0, T0, &j->value, &j->version, err);
}

static void incr_done(void *arg, int r, const mf_error_t *err)
{
    incr_job_t *j = arg;
    j->r = r;
    ++*j->done;
}

static void test_writer_increments_exactly(void **state)
{
    const backend_t *b = *state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    mf_error_t err = MF_ERROR_INIT;
    store_kv_limits_t limits = {0};
    store_writer_db_t db;
    assert_int_equal(store_kv_writer_db(b->where, &limits, &db, &err), 0);
    store_writer_t *w;
    assert_int_equal(store_writer_start(&loop, &db, NULL, NULL, &w, &err), 0);
    enum { N = 200 };
    incr_job_t *jobs = xcalloc(N, sizeof *jobs);
    int done = 0;
    for (int i = 0; i < N; i++) {
        jobs[i].done = &done;
        store_writer_submit(w, true, incr_apply, incr_done, &jobs[i]);
    }
    /* The writer's own wake-up does not keep a loop alive: this does, so
     * each run waits for the writer's answers instead of returning. */
    uv_async_t keep;
    assert_int_equal(uv_async_init(&loop, &keep, NULL), 0);
    while (done < N)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&keep, NULL);
    /* Every one applied once, in order, each with its own version. */
    for (int i = 0; i < N; i++) {
        assert_int_equal(jobs[i].r, 0);
        assert_int_equal(jobs[i].value, i + 1);
        if (i)
            assert_true(jobs[i].version > jobs[i - 1].version);
    }
    free(jobs);
    store_writer_stop(w);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);

    /* Committed: another connection reads it. */
    store_kv_t *kv = open_kv(b, 0, 0, 0);
    assert_value(kv, "c", "n", "200", T0);
    store_kv_close(kv);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup_backend, teardown)
    const struct CMUnitTest alone[] = { cmocka_unit_test(test_cursor_parse) };
    const struct CMUnitTest tests[] = {
        T(test_open_creates_the_file),
        T(test_put_get_round_trip_with_content_type),
        T(test_versions_increase_and_are_never_reused),
        T(test_conditions),
        T(test_ttl_expiry_and_sweep),
        T(test_sweep_goes_in_batches),
        T(test_incr),
        T(test_batch_is_all_or_nothing),
        T(test_counts_are_exact),
        T(test_bounds),
        T(test_list_pages_in_byte_order),
        T(test_get_many),
        T(test_writer_increments_exactly),
    };
    int failed = cmocka_run_group_tests_name("the KV listing cursor", alone, NULL, NULL);
    return failed | run_on_both_backends("the KV stores", tests);
}
