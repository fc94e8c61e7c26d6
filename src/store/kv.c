/* kv.db: the key-value stores' tables and statements (see store/kv.h). */
#include "store/kv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cleanup.h"
#include "core/codec.h"
#include "core/xalloc.h"
#include "store/sqlite_internal.h"

static const char *const kv__migrations[] = {
    /* 1: keys and values, what each store holds, the version counter. */
    /* A rowid table with a unique index rather than WITHOUT ROWID: values
     * may be large, and SQLite keeps WITHOUT ROWID rows small. The value
     * is the last column, so reading the others (listings, conditions)
     * never touches its overflow pages. */
    "CREATE TABLE kv ("
    "  id           INTEGER PRIMARY KEY,"
    "  store        TEXT NOT NULL,"
    "  key          BLOB NOT NULL,"
    "  version      INTEGER NOT NULL,"
    "  size         INTEGER NOT NULL,"
    "  expires_ms   INTEGER,"
    "  content_type TEXT NOT NULL,"
    "  value        BLOB NOT NULL"
    ");"
    "CREATE UNIQUE INDEX kv_key ON kv (store, key);"
    "CREATE INDEX kv_expires ON kv (expires_ms) WHERE expires_ms IS NOT NULL;"
    /* Kept in the same transactions as kv: a store's keys and bytes are
     * exact at every commit, and the bounds are checked against them. */
    "CREATE TABLE stores ("
    "  name  TEXT PRIMARY KEY,"
    "  keys  INTEGER NOT NULL,"
    "  bytes INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    /* One counter for the whole file: a version is never given twice. */
    "CREATE TABLE meta ("
    "  id      INTEGER PRIMARY KEY CHECK (id = 1),"
    "  version INTEGER NOT NULL"
    ");"
    "INSERT INTO meta (id, version) VALUES (1, 0);",
};

enum {
    K_GET,
    K_LOOKUP,
    K_UPSERT,
    K_DELETE,
    K_STORE_ADD,
    K_STORE_GC,
    K_STORE_GET,
    K_STORES,
    K_VERSION_NEXT,
    K_LIST,
    K_LIST_PREFIX,
    K_SWEEP,
    K_DROP_KEYS,
    K_DROP_STORE,
    K_BEGIN,
    K_BEGIN_READ,
    K_COMMIT,
    K_SAVEPOINT,
    K_RELEASE,
    K_ROLLBACK_TO,
    K_BATCH_SAVEPOINT,
    K_BATCH_RELEASE,
    K_BATCH_ROLLBACK_TO,
    K_COUNT
};

#define LIVE "(expires_ms IS NULL OR expires_ms > ?3)"

static const char *const kv__sql[K_COUNT] = {
    [K_GET] = "SELECT version, size, expires_ms, content_type, value FROM kv"
              " WHERE store = ?1 AND key = ?2 AND " LIVE,
    [K_LOOKUP] = "SELECT version, size, expires_ms, content_type, value FROM kv"
                 " WHERE store = ?1 AND key = ?2",
    [K_UPSERT] = "INSERT INTO kv (store, key, version, size, expires_ms, content_type, value)"
                 " VALUES (?1,?2,?3,?4,?5,?6,?7) ON CONFLICT (store, key) DO UPDATE SET"
                 " version = excluded.version, size = excluded.size,"
                 " expires_ms = excluded.expires_ms, content_type = excluded.content_type,"
                 " value = excluded.value",
    [K_DELETE] = "DELETE FROM kv WHERE store = ?1 AND key = ?2",
    [K_STORE_ADD] = "INSERT INTO stores (name, keys, bytes) VALUES (?1, ?2, ?3)"
                    " ON CONFLICT (name) DO UPDATE SET keys = keys + excluded.keys,"
                    " bytes = bytes + excluded.bytes",
    [K_STORE_GC] = "DELETE FROM stores WHERE name = ?1 AND keys <= 0",
    [K_STORE_GET] = "SELECT keys, bytes FROM stores WHERE name = ?1",
    [K_STORES] = "SELECT name, keys, bytes FROM stores ORDER BY name",
    /* In the file, not in memory: another connection (a second server on
     * the same data, by mistake) cannot hand out the same number. A
     * write rolled back gives its number back, but no one saw it. */
    [K_VERSION_NEXT] = "UPDATE meta SET version = version + 1 WHERE id = 1 RETURNING version",
    /* One lower bound (>=, the greater of the cursor and the prefix; the
     * cursor's own key is skipped in C) and, with a prefix, an upper one,
     * so the index is walked from the first row that can match to the last. */
    [K_LIST] = "SELECT key, version, size, expires_ms FROM kv WHERE store = ?1 AND key >= ?2"
               " AND " LIVE " ORDER BY key LIMIT ?4",
    [K_LIST_PREFIX] = "SELECT key, version, size, expires_ms FROM kv WHERE store = ?1"
                      " AND key >= ?2 AND key < ?5 AND " LIVE " ORDER BY key LIMIT ?4",
    [K_SWEEP] = "DELETE FROM kv WHERE id IN (SELECT id FROM kv WHERE expires_ms <= ?1 LIMIT ?2)"
                " RETURNING store, length(key) + size",
    [K_DROP_KEYS] = "DELETE FROM kv WHERE store = ?1",
    [K_DROP_STORE] = "DELETE FROM stores WHERE name = ?1",
    [K_BEGIN] = "BEGIN IMMEDIATE",
    [K_BEGIN_READ] = "BEGIN",
    [K_COMMIT] = "COMMIT",
    [K_SAVEPOINT] = "SAVEPOINT job",
    [K_RELEASE] = "RELEASE job",
    [K_ROLLBACK_TO] = "ROLLBACK TO job",
    /* A batch's own, inside a writer job's. */
    [K_BATCH_SAVEPOINT] = "SAVEPOINT batch",
    [K_BATCH_RELEASE] = "RELEASE batch",
    [K_BATCH_ROLLBACK_TO] = "ROLLBACK TO batch",
};

struct store_kv {
    sqlite3 *db;
    sqlite3_stmt *st[K_COUNT];
    bool durable; /* the open transaction's */
    store_kv_limits_t limits;
};

/* ---- small helpers ------------------------------------------------------ */

/* Never a NULL pointer: SQLite binds a NULL blob as SQL NULL. */
static int kv__bind_bytes(sqlite3_stmt *st, int col, const void *p, size_t len)
{
    return sqlite3_bind_blob64(st, col, len ? p : "", len, SQLITE_STATIC);
}

/* A key fit for a message: control bytes shown as '?', long ones cut. */
static const char *kv__show(const void *key, size_t len, char *out, size_t size)
{
    char tmp[160];
    size_t n = len < sizeof tmp - 1 ? len : sizeof tmp - 1;
    memcpy(tmp, key, n);
    tmp[n] = '\0';
    return mf_error_show(tmp, 64, out, size);
}

static int64_t kv__op_bytes(size_t key_len, int64_t value_len)
{
    return (int64_t)key_len + value_len;
}

void store_kv_set_limits(store_kv_t *kv, const store_kv_limits_t *limits)
{
    kv->limits = *limits;
}

/* ---- opening ------------------------------------------------------------ */

void store_kv_close(store_kv_t *kv)
{
    if (!kv)
        return;
    for (int i = 0; i < K_COUNT; i++)
        sqlite3_finalize(kv->st[i]);
    if (kv->db)
        sqlite3_close(kv->db);
    free(kv);
}

int store_kv_open(const char *data_dir, store_kv_t **out, mf_error_t *err)
{
    cleanup_free char *path = xasprintf("%s/kv.db", data_dir);
    store_kv_t *kv = xcalloc(1, sizeof *kv);
    kv->durable = true; /* store__sqlite_open leaves it at FULL */
    int version = 0;
    int r = store__sqlite_open(path, &kv->db, err);
    if (r == 0)
        r = store__sqlite_migrate(kv->db, kv__migrations,
                                  (int)(sizeof kv__migrations / sizeof kv__migrations[0]), &version,
                                  err);
    for (int i = 0; i < K_COUNT && r == 0; i++)
        r = store__sqlite_prepare(kv->db, kv__sql[i], &kv->st[i], err);
    if (r < 0) {
        mf_error_wrap(err, "kv `%s`", path);
        store_kv_close(kv);
        return r;
    }
    *out = kv;
    return 0;
}

/* ---- transactions ------------------------------------------------------- */

int store_kv_begin(store_kv_t *kv, bool durable, mf_error_t *err)
{
    return store__txn_begin(kv->db, &kv->durable, durable, kv->st[K_BEGIN], err);
}

int store_kv_commit(store_kv_t *kv, mf_error_t *err)
{
    return store__txn_commit(kv->db, kv->st[K_COMMIT], err);
}

void store_kv_rollback(store_kv_t *kv)
{
    store__txn_rollback(kv->db);
}

int store_kv_savepoint(store_kv_t *kv, mf_error_t *err)
{
    return store__step_done(kv->db, kv->st[K_SAVEPOINT], 1, "open a savepoint", err);
}

void store_kv_release(store_kv_t *kv, bool keep)
{
    store__txn_release(kv->db, kv->st[K_ROLLBACK_TO], kv->st[K_RELEASE], keep);
}

static int kv__w_begin(void *db, bool durable, mf_error_t *err)
{
    return store_kv_begin(db, durable, err);
}

static int kv__w_savepoint(void *db, mf_error_t *err)
{
    return store_kv_savepoint(db, err);
}

static void kv__w_release(void *db, bool keep)
{
    store_kv_release(db, keep);
}

static int kv__w_commit(void *db, mf_error_t *err)
{
    return store_kv_commit(db, err);
}

static void kv__w_close(void *db)
{
    store_kv_close(db);
}

int store_kv_writer_db(const char *data_dir, const store_kv_limits_t *limits,
                       store_writer_db_t *out, mf_error_t *err)
{
    store_kv_t *kv;
    int r = store_kv_open(data_dir, &kv, err);
    if (r < 0)
        return r;
    kv->limits = *limits;
    /* Large values make large transactions: the writer keeps the WAL cut
     * back, off the loop. */
    store__wal_bounded(kv->db);
    *out = (store_writer_db_t){.db = kv,
                               .begin = kv__w_begin,
                               .savepoint = kv__w_savepoint,
                               .release = kv__w_release,
                               .commit = kv__w_commit,
                               .close = kv__w_close};
    return 0;
}

/* ---- reads -------------------------------------------------------------- */

void store_kv_item_clear(store_kv_item_t *item)
{
    if (!item)
        return;
    free(item->key);
    free(item->value);
    free(item->content_type);
    memset(item, 0, sizeof *item);
}

void store_kv_items_free(store_kv_item_t *items, size_t n)
{
    for (size_t i = 0; items && i < n; i++)
        store_kv_item_clear(&items[i]);
    free(items);
}

/* Fills item from a K_GET or K_LOOKUP row (the value included). */
static void kv__row_full(sqlite3_stmt *st, store_kv_item_t *item)
{
    item->found = true;
    item->version = sqlite3_column_int64(st, 0);
    item->size = sqlite3_column_int64(st, 1);
    item->expires_ms = sqlite3_column_int64(st, 2);
    item->content_type = store__dup_column(st, 3);
    item->value = store__dup_blob(st, 4, &item->value_len);
}

static int kv__get(store_kv_t *kv, const char *store, const void *key, size_t key_len,
                   int64_t now_ms, store_kv_item_t *out, mf_error_t *err)
{
    sqlite3_stmt *st = kv->st[K_GET];
    int r = 0;
    if (sqlite3_bind_text(st, 1, store, -1, SQLITE_STATIC) != SQLITE_OK ||
        kv__bind_bytes(st, 2, key, key_len) != SQLITE_OK ||
        sqlite3_bind_int64(st, 3, now_ms) != SQLITE_OK) {
        r = store__sqlite_fail(kv->db, err, "read a key");
    } else {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            kv__row_full(st, out);
        } else if (rc == SQLITE_DONE) {
            char shown[256];
            r = mf_error_plain(err, ENOENT, "store %s has no key `%s`", store,
                               kv__show(key, key_len, shown, sizeof shown));
        } else {
            r = store__sqlite_fail(kv->db, err, "read a key");
        }
    }
    store__stmt_done(st);
    return r;
}

int store_kv_get(store_kv_t *kv, const char *store, const void *key, size_t key_len, int64_t now_ms,
                 store_kv_item_t *out, mf_error_t *err)
{
    memset(out, 0, sizeof *out);
    int r = kv__get(kv, store, key, key_len, now_ms, out, err);
    if (r == 0) {
        out->key = xmalloc(key_len + 1);
        memcpy(out->key, key, key_len);
        ((char *)out->key)[key_len] = '\0';
        out->key_len = key_len;
    }
    return r;
}

int store_kv_get_many(store_kv_t *kv, const char *store, const slice_t *keys, size_t n,
                      int64_t now_ms, int64_t max_total_bytes, store_kv_item_t *items,
                      mf_error_t *err)
{
    /* One read transaction: every key is read at the same snapshot. */
    int r = store__step_done(kv->db, kv->st[K_BEGIN_READ], 1, "begin a read", err);
    if (r < 0)
        return r;
    int64_t total = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        store_kv_item_t *it = &items[i];
        r = kv__get(kv, store, keys[i].base, keys[i].len, now_ms, it, err);
        if (r == -ENOENT)
            r = 0; /* found stays false */
        it->key = xmalloc(keys[i].len + 1);
        memcpy(it->key, keys[i].base, keys[i].len);
        ((char *)it->key)[keys[i].len] = '\0';
        it->key_len = keys[i].len;
        total += it->size;
        if (r == 0 && max_total_bytes > 0 && total > max_total_bytes)
            r = mf_error_plain(err, EFBIG,
                               "the values of these keys come to more than %" PRId64
                               " bytes: read fewer keys at once",
                               max_total_bytes);
    }
    mf_error_t ignored = MF_ERROR_INIT;
    store__step_done(kv->db, kv->st[K_COMMIT], 1, "end a read", &ignored);
    if (r < 0) {
        for (size_t i = 0; i < n; i++)
            store_kv_item_clear(&items[i]);
    }
    return r;
}

/* The smallest byte string greater than every string that starts with
 * prefix: prefix with its last byte below 0xff raised by one and the rest
 * cut. false when there is none (prefix is all 0xff bytes). */
static bool kv__prefix_end(const void *prefix, size_t len, buf_t *out)
{
    const unsigned char *p = prefix;
    while (len > 0 && p[len - 1] == 0xff)
        len--;
    if (len == 0)
        return false;
    buf_reset(out);
    buf_add(out, p, len);
    out->data[len - 1] = (char)(p[len - 1] + 1);
    return true;
}

int store_kv_list(store_kv_t *kv, const char *store, const void *prefix, size_t prefix_len,
                  const void *after, size_t after_len, int limit, int64_t now_ms,
                  store_kv_item_t **out, size_t *count, bool *more, mf_error_t *err)
{
    *out = NULL;
    *count = 0;
    *more = false;
    if (limit < 1)
        return mf_error_plain(err, EINVAL, "limit: must be at least 1");
    /* The lower bound: the greater of the cursor and the prefix. */
    const void *from = prefix;
    size_t from_len = prefix_len;
    bool skip_from = false;
    if (after_len) {
        size_t m = after_len < prefix_len ? after_len : prefix_len;
        int c = memcmp(after, prefix, m);
        if (c > 0 || (c == 0 && after_len >= prefix_len)) {
            from = after;
            from_len = after_len;
            skip_from = true;
        }
    }
    cleanup_buf buf_t end = BUF_INIT;
    bool bounded = prefix_len && kv__prefix_end(prefix, prefix_len, &end);
    sqlite3_stmt *st = kv->st[bounded ? K_LIST_PREFIX : K_LIST];
    /* One more than asked says whether there are more; one more again
     * for the cursor's own key, skipped. */
    int want = limit + 1 + (skip_from ? 1 : 0);
    if (sqlite3_bind_text(st, 1, store, -1, SQLITE_STATIC) != SQLITE_OK ||
        kv__bind_bytes(st, 2, from, from_len) != SQLITE_OK ||
        sqlite3_bind_int64(st, 3, now_ms) != SQLITE_OK ||
        sqlite3_bind_int(st, 4, want) != SQLITE_OK ||
        (bounded && kv__bind_bytes(st, 5, end.data, end.len) != SQLITE_OK)) {
        store__stmt_done(st);
        return store__sqlite_fail(kv->db, err, "list keys");
    }
    store_kv_item_t *items = xcalloc((size_t)limit, sizeof *items);
    size_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const void *k = sqlite3_column_blob(st, 0);
        size_t klen = (size_t)sqlite3_column_bytes(st, 0);
        if (skip_from && klen == from_len && !memcmp(k, from, klen))
            continue;
        if (n == (size_t)limit) {
            *more = true;
            break;
        }
        store_kv_item_t *it = &items[n++];
        it->found = true;
        it->key = store__dup_blob(st, 0, &it->key_len);
        it->version = sqlite3_column_int64(st, 1);
        it->size = sqlite3_column_int64(st, 2);
        it->expires_ms = sqlite3_column_int64(st, 3);
    }
    int r =
        rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : store__sqlite_fail(kv->db, err, "list keys");
    store__stmt_done(st);
    if (r < 0) {
        store_kv_items_free(items, n);
        *more = false;
        return r;
    }
    *out = items;
    *count = n;
    return 0;
}

int store_kv_store_stats(store_kv_t *kv, const char *store, store_kv_store_stats_t *out,
                         mf_error_t *err)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", store);
    sqlite3_stmt *st = kv->st[K_STORE_GET];
    int r = 0;
    if (sqlite3_bind_text(st, 1, store, -1, SQLITE_STATIC) != SQLITE_OK) {
        r = store__sqlite_fail(kv->db, err, "read a store's size");
    } else {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            out->keys = sqlite3_column_int64(st, 0);
            out->bytes = sqlite3_column_int64(st, 1);
        } else if (rc != SQLITE_DONE) {
            r = store__sqlite_fail(kv->db, err, "read a store's size");
        }
    }
    store__stmt_done(st);
    return r;
}

int store_kv_stores(store_kv_t *kv, store_kv_store_stats_t **out, size_t *count, mf_error_t *err)
{
    sqlite3_stmt *st = kv->st[K_STORES];
    store_kv_store_stats_t *list = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            list = xrealloc(list, cap * sizeof *list);
        }
        store_kv_store_stats_t *s = &list[n++];
        memset(s, 0, sizeof *s);
        store__copy_text(s->name, sizeof s->name, st, 0);
        s->keys = sqlite3_column_int64(st, 1);
        s->bytes = sqlite3_column_int64(st, 2);
    }
    int r = rc == SQLITE_DONE ? 0 : store__sqlite_fail(kv->db, err, "list stores");
    store__stmt_done(st);
    if (r < 0) {
        free(list);
        list = NULL;
        n = 0;
    }
    *out = list;
    *count = n;
    return r;
}

/* ---- writes ------------------------------------------------------------- */

/* What a write finds of its key: the row (even expired), and whether it
 * is live. */
typedef struct kv_found {
    bool row; /* a row is there, live or expired */
    bool live;
    int64_t version;
    int64_t size;
    int64_t expires_ms;
    char *content_type; /* with_value only: owned */
    void *value;
    size_t value_len;
} kv_found_t;

static void kv__found_clear(kv_found_t *f)
{
    free(f->content_type);
    free(f->value);
    memset(f, 0, sizeof *f);
}

static int kv__lookup(store_kv_t *kv, const char *store, const void *key, size_t key_len,
                      int64_t now_ms, bool with_value, kv_found_t *out, mf_error_t *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = kv->st[K_LOOKUP];
    int r = 0;
    if (sqlite3_bind_text(st, 1, store, -1, SQLITE_STATIC) != SQLITE_OK ||
        kv__bind_bytes(st, 2, key, key_len) != SQLITE_OK) {
        r = store__sqlite_fail(kv->db, err, "look a key up");
    } else {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            out->row = true;
            out->version = sqlite3_column_int64(st, 0);
            out->size = sqlite3_column_int64(st, 1);
            out->expires_ms = sqlite3_column_int64(st, 2);
            out->live = out->expires_ms == 0 || out->expires_ms > now_ms;
            if (with_value && out->live) {
                out->content_type = store__dup_column(st, 3);
                out->value = store__dup_blob(st, 4, &out->value_len);
            }
        } else if (rc != SQLITE_DONE) {
            r = store__sqlite_fail(kv->db, err, "look a key up");
        }
    }
    store__stmt_done(st);
    return r;
}

static int kv__store_add(store_kv_t *kv, const char *store, int64_t dkeys, int64_t dbytes,
                         mf_error_t *err)
{
    if (!dkeys && !dbytes)
        return 0;
    sqlite3_stmt *st = kv->st[K_STORE_ADD];
    int r = store__step_done(kv->db, st,
                             sqlite3_bind_text(st, 1, store, -1, SQLITE_STATIC) == SQLITE_OK &&
                                 sqlite3_bind_int64(st, 2, dkeys) == SQLITE_OK &&
                                 sqlite3_bind_int64(st, 3, dbytes) == SQLITE_OK,
                             "count a store's keys", err);
    if (r == 0 && dkeys < 0) {
        /* A store with no keys left is no longer listed. */
        st = kv->st[K_STORE_GC];
        r = store__step_done(kv->db, st,
                             sqlite3_bind_text(st, 1, store, -1, SQLITE_STATIC) == SQLITE_OK,
                             "count a store's keys", err);
    }
    return r;
}

static int kv__next_version(store_kv_t *kv, int64_t *out, mf_error_t *err)
{
    sqlite3_stmt *st = kv->st[K_VERSION_NEXT];
    int r = 0;
    if (sqlite3_step(st) == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else
        r = store__sqlite_fail(kv->db, err, "advance the version counter");
    /* Stepped to its end, so the UPDATE is complete before the reset. */
    if (r == 0 && sqlite3_step(st) != SQLITE_DONE)
        r = store__sqlite_fail(kv->db, err, "advance the version counter");
    store__stmt_done(st);
    return r;
}

/* Removes expired keys, up to limit, adjusting their stores' counts. */
static int kv__sweep(store_kv_t *kv, int64_t now_ms, int limit, int64_t *removed,
                     store_kv_store_stats_t **changed, size_t *nchanged, mf_error_t *err)
{
    *removed = 0;
    sqlite3_stmt *st = kv->st[K_SWEEP];
    if (sqlite3_bind_int64(st, 1, now_ms) != SQLITE_OK ||
        sqlite3_bind_int(st, 2, limit) != SQLITE_OK) {
        store__stmt_done(st);
        return store__sqlite_fail(kv->db, err, "remove expired keys");
    }
    /* Per store: keys gone (in .keys) and their bytes. */
    store_kv_store_stats_t *gone = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *store = (const char *)sqlite3_column_text(st, 0);
        int64_t bytes = sqlite3_column_int64(st, 1);
        size_t i = 0;
        while (i < n && strcmp(gone[i].name, store ? store : ""))
            i++;
        if (i == n) {
            if (n == cap) {
                cap = cap ? cap * 2 : 8;
                gone = xrealloc(gone, cap * sizeof *gone);
            }
            memset(&gone[n], 0, sizeof gone[n]);
            snprintf(gone[n].name, sizeof gone[n].name, "%s", store ? store : "");
            n++;
        }
        gone[i].keys++;
        gone[i].bytes += bytes;
        ++*removed;
    }
    int r = rc == SQLITE_DONE ? 0 : store__sqlite_fail(kv->db, err, "remove expired keys");
    store__stmt_done(st);
    for (size_t i = 0; i < n && r == 0; i++) {
        r = kv__store_add(kv, gone[i].name, -gone[i].keys, -gone[i].bytes, err);
        if (r == 0 && changed) {
            char name[sizeof gone[i].name];
            memcpy(name, gone[i].name, sizeof name);
            r = store_kv_store_stats(kv, name, &gone[i], err);
        }
    }
    if (r == 0 && changed) {
        *changed = gone;
        *nchanged = n;
    } else {
        free(gone);
        if (changed) {
            *changed = NULL;
            *nchanged = 0;
        }
    }
    return r;
}

int store_kv_sweep(store_kv_t *kv, int64_t now_ms, int limit, int64_t *removed,
                   store_kv_store_stats_t **changed, size_t *nchanged, mf_error_t *err)
{
    if (limit < 1)
        return mf_error_plain(err, EINVAL, "sweep: limit must be at least 1");
    return kv__sweep(kv, now_ms, limit, removed, changed, nchanged, err);
}

/* Whether the store has room for dkeys more keys and dbytes more bytes. */
static int kv__room(store_kv_t *kv, const char *store, int64_t dkeys, int64_t dbytes, bool *fits,
                    store_kv_store_stats_t *s, mf_error_t *err)
{
    *fits = true;
    const store_kv_limits_t *l = &kv->limits;
    if ((dkeys <= 0 || !l->max_keys) && (dbytes <= 0 || !l->max_store_bytes))
        return 0;
    int r = store_kv_store_stats(kv, store, s, err);
    if (r < 0)
        return r;
    if ((dkeys > 0 && l->max_keys && s->keys + dkeys > l->max_keys) ||
        (dbytes > 0 && l->max_store_bytes && s->bytes + dbytes > l->max_store_bytes))
        *fits = false;
    return 0;
}

static int kv__full(store_kv_t *kv, const char *store, const store_kv_store_stats_t *s,
                    mf_error_t *err)
{
    const store_kv_limits_t *l = &kv->limits;
    return mf_error_plain(err, ENOSPC,
                          "store %s is full: it holds %" PRId64 " keys (at most %" PRId64
                          ") and %" PRId64 " bytes (at most %" PRId64 ")",
                          store, s->keys, l->max_keys, s->bytes, l->max_store_bytes);
}

/* Writes key = value with a new version, the store's counts adjusted for
 * what was there (f), once the bounds allow it. A store at its bound
 * first has its expired keys swept, and f looked up again. */
static int kv__put_row(store_kv_t *kv, const char *store, const void *key, size_t key_len,
                       const void *value, size_t value_len, const char *content_type,
                       int64_t expires_ms, kv_found_t *f, int64_t now_ms, int64_t *version,
                       mf_error_t *err)
{
    if (kv->limits.max_value_bytes && (int64_t)value_len > kv->limits.max_value_bytes)
        return mf_error_plain(
            err, EFBIG, "the value is %zu bytes, over the most a value may be (%" PRId64 " bytes)",
            value_len, kv->limits.max_value_bytes);
    int64_t dkeys = 0, dbytes = 0;
    for (int attempt = 0;; attempt++) {
        dkeys = f->row ? 0 : 1;
        dbytes = kv__op_bytes(key_len, (int64_t)value_len) -
                 (f->row ? kv__op_bytes(key_len, f->size) : 0);
        bool fits;
        store_kv_store_stats_t s;
        int r = kv__room(kv, store, dkeys, dbytes, &fits, &s, err);
        if (r < 0)
            return r;
        if (fits)
            break;
        if (attempt == 1)
            return kv__full(kv, store, &s, err);
        int64_t removed;
        r = kv__sweep(kv, now_ms, 1000, &removed, NULL, NULL, err);
        if (r < 0)
            return r;
        if (removed == 0)
            return kv__full(kv, store, &s, err);
        /* The sweep may have taken this very key (expired). */
        kv_found_t again;
        r = kv__lookup(kv, store, key, key_len, now_ms, false, &again, err);
        if (r < 0)
            return r;
        f->row = again.row;
        f->size = again.size;
    }
    int64_t v = 0;
    int r = kv__next_version(kv, &v, err);
    if (r < 0)
        return r;
    sqlite3_stmt *st = kv->st[K_UPSERT];
    int ok = sqlite3_bind_text(st, 1, store, -1, SQLITE_STATIC) == SQLITE_OK &&
             kv__bind_bytes(st, 2, key, key_len) == SQLITE_OK &&
             sqlite3_bind_int64(st, 3, v) == SQLITE_OK &&
             sqlite3_bind_int64(st, 4, (int64_t)value_len) == SQLITE_OK &&
             (expires_ms ? sqlite3_bind_int64(st, 5, expires_ms) : sqlite3_bind_null(st, 5)) ==
                 SQLITE_OK &&
             sqlite3_bind_text(st, 6, content_type, -1, SQLITE_STATIC) == SQLITE_OK &&
             kv__bind_bytes(st, 7, value, value_len) == SQLITE_OK;
    r = store__step_done(kv->db, st, ok, "write a key", err);
    if (r == 0)
        r = kv__store_add(kv, store, dkeys, dbytes, err);
    if (r == 0 && version)
        *version = v;
    return r;
}

static int kv__expires(int64_t now_ms, int64_t ttl_ms, int64_t *out, mf_error_t *err)
{
    *out = 0;
    if (!ttl_ms)
        return 0;
    if (ttl_ms < 0 || __builtin_add_overflow(now_ms, ttl_ms, out)) {
        *out = 0;
        return mf_error_plain(err, EINVAL, "ttl: out of range");
    }
    return 0;
}

static int kv__check_key(const void *key, size_t key_len, mf_error_t *err)
{
    if (!key_len || key_len > STORE_KV_KEY_MAX)
        return mf_error_plain(err, EINVAL, "key: must be 1 to %d bytes", STORE_KV_KEY_MAX);
    return 0;
}

int store_kv_write(store_kv_t *kv, const char *store, const store_kv_op_t *op, int64_t now_ms,
                   int64_t *version, mf_error_t *err)
{
    if (version)
        *version = 0;
    int r = kv__check_key(op->key, op->key_len, err);
    if (r < 0)
        return r;
    kv_found_t f;
    r = kv__lookup(kv, store, op->key, op->key_len, now_ms, false, &f, err);
    if (r < 0)
        return r;
    char shown[256];
    if (op->kind == STORE_KV_DELETE) {
        if (!f.live)
            return mf_error_plain(err, ENOENT, "store %s has no key `%s`", store,
                                  kv__show(op->key, op->key_len, shown, sizeof shown));
        if (op->if_version && f.version != op->if_version)
            return mf_error_plain(
                err, ECANCELED, "key `%s` is at version %" PRId64 ", not %" PRId64,
                kv__show(op->key, op->key_len, shown, sizeof shown), f.version, op->if_version);
        sqlite3_stmt *st = kv->st[K_DELETE];
        r = store__step_done(kv->db, st,
                             sqlite3_bind_text(st, 1, store, -1, SQLITE_STATIC) == SQLITE_OK &&
                                 kv__bind_bytes(st, 2, op->key, op->key_len) == SQLITE_OK,
                             "delete a key", err);
        if (r == 0)
            r = kv__store_add(kv, store, -1, -kv__op_bytes(op->key_len, f.size), err);
        return r;
    }
    if (op->if_absent && f.live)
        return mf_error_plain(err, ECANCELED, "key `%s` exists (at version %" PRId64 ")",
                              kv__show(op->key, op->key_len, shown, sizeof shown), f.version);
    if (op->if_version && !f.live)
        return mf_error_plain(err, ECANCELED,
                              "key `%s` does not exist, so it is not at version %" PRId64,
                              kv__show(op->key, op->key_len, shown, sizeof shown), op->if_version);
    if (op->if_version && f.version != op->if_version)
        return mf_error_plain(err, ECANCELED, "key `%s` is at version %" PRId64 ", not %" PRId64,
                              kv__show(op->key, op->key_len, shown, sizeof shown), f.version,
                              op->if_version);
    int64_t expires;
    if ((r = kv__expires(now_ms, op->ttl_ms, &expires, err)) < 0)
        return r;
    return kv__put_row(kv, store, op->key, op->key_len, op->value, op->value_len,
                       op->content_type ? op->content_type : STORE_KV_DEFAULT_CONTENT_TYPE, expires,
                       &f, now_ms, version, err);
}

int store_kv_write_all(store_kv_t *kv, const char *store, const store_kv_op_t *ops, size_t n,
                       int64_t now_ms, int64_t *versions, size_t *failed, mf_error_t *err)
{
    *failed = 0;
    int r = store__step_done(kv->db, kv->st[K_BATCH_SAVEPOINT], 1, "open a savepoint", err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        r = store_kv_write(kv, store, &ops[i], now_ms, &versions[i], err);
        if (r == -ENOENT && ops[i].kind == STORE_KV_DELETE) {
            /* In a batch, deleting what is not there is done already;
             * unless the op asked for a version, which it cannot have. */
            char shown[256];
            r = ops[i].if_version
                    ? mf_error_plain(err, ECANCELED,
                                     "key `%s` does not exist, so it is not at version %" PRId64,
                                     kv__show(ops[i].key, ops[i].key_len, shown, sizeof shown),
                                     ops[i].if_version)
                    : 0;
        }
        if (r < 0) {
            *failed = i;
            mf_error_wrap(err, "ops[%zu]", i);
            break;
        }
    }
    mf_error_t ignored = MF_ERROR_INIT;
    if (r < 0) {
        store__step_done(kv->db, kv->st[K_BATCH_ROLLBACK_TO], 1, "roll back a batch", &ignored);
        memset(versions, 0, n * sizeof *versions);
    }
    int rr = store__step_done(kv->db, kv->st[K_BATCH_RELEASE], 1, "release a batch",
                              r < 0 ? &ignored : err);
    return r < 0 ? r : rr;
}

/* A whole decimal int64: an optional '-' and 1 to 19 digits. */
static int kv__parse_int64(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < len && s[i] == '-') {
        neg = true;
        i++;
    }
    if (i == len)
        return -EDOM;
    int64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EDOM;
        int d = s[i] - '0';
        if (__builtin_mul_overflow(v, 10, &v) ||
            (neg ? __builtin_sub_overflow(v, d, &v) : __builtin_add_overflow(v, d, &v)))
            return -ERANGE;
    }
    *out = v;
    return 0;
}

int store_kv_incr(store_kv_t *kv, const char *store, const void *key, size_t key_len, int64_t by,
                  int64_t ttl_ms, int64_t now_ms, int64_t *value, int64_t *version, mf_error_t *err)
{
    int r = kv__check_key(key, key_len, err);
    if (r < 0)
        return r;
    kv_found_t f;
    r = kv__lookup(kv, store, key, key_len, now_ms, true, &f, err);
    if (r < 0)
        return r;
    char shown[256];
    int64_t old = 0, expires = f.live ? f.expires_ms : 0;
    if (f.live) {
        r = kv__parse_int64(f.value, f.value_len, &old);
        if (r < 0) {
            kv__found_clear(&f);
            return mf_error_plain(err, r == -ERANGE ? ERANGE : EDOM,
                                  "the value of key `%s` is not a decimal integer in the int64 "
                                  "range, so it cannot be incremented",
                                  kv__show(key, key_len, shown, sizeof shown));
        }
    }
    int64_t sum;
    if (__builtin_add_overflow(old, by, &sum)) {
        kv__found_clear(&f);
        return mf_error_plain(err, ERANGE,
                              "key `%s`: %" PRId64 " + %" PRId64 " overflows the int64 range",
                              kv__show(key, key_len, shown, sizeof shown), old, by);
    }
    if (ttl_ms && (r = kv__expires(now_ms, ttl_ms, &expires, err)) < 0) {
        kv__found_clear(&f);
        return r;
    }
    char text[24];
    int len = snprintf(text, sizeof text, "%" PRId64, sum);
    cleanup_free char *ctype =
        f.content_type ? xstrdup(f.content_type) : xstrdup("application/json");
    r = kv__put_row(kv, store, key, key_len, text, (size_t)len, ctype, expires, &f, now_ms, version,
                    err);
    kv__found_clear(&f);
    if (r == 0)
        *value = sum;
    return r;
}

int store_kv_drop(store_kv_t *kv, const char *store, mf_error_t *err)
{
    store_kv_store_stats_t s;
    int r = store_kv_store_stats(kv, store, &s, err);
    if (r < 0)
        return r;
    if (s.keys == 0)
        return mf_error_plain(err, ENOENT, "store %s holds no keys", store);
    sqlite3_stmt *st = kv->st[K_DROP_KEYS];
    r = store__step_done(kv->db, st,
                         sqlite3_bind_text(st, 1, store, -1, SQLITE_STATIC) == SQLITE_OK,
                         "delete a store", err);
    if (r == 0) {
        st = kv->st[K_DROP_STORE];
        r = store__step_done(kv->db, st,
                             sqlite3_bind_text(st, 1, store, -1, SQLITE_STATIC) == SQLITE_OK,
                             "delete a store", err);
    }
    return r;
}

/* ---- the listing cursor ------------------------------------------------- */

#define CURSOR_TAG "k1."

void store_kv_cursor_format(buf_t *out, const void *key, size_t key_len)
{
    /* base64url without padding: safe in a query as it is. */
    buf_t b = BUF_INIT;
    codec_base64_encode(&b, key, key_len);
    buf_adds(out, CURSOR_TAG);
    for (size_t i = 0; i < b.len && b.data[i] != '='; i++)
        buf_addch(out, b.data[i] == '+' ? '-' : b.data[i] == '/' ? '_' : b.data[i]);
    buf_release(&b);
}

int store_kv_cursor_parse(const char *s, size_t len, buf_t *out)
{
    size_t tag = sizeof CURSOR_TAG - 1;
    if (len <= tag || memcmp(s, CURSOR_TAG, tag) || len - tag > 4 * ((STORE_KV_KEY_MAX + 2) / 3))
        return -EINVAL;
    buf_t std = BUF_INIT;
    for (size_t i = tag; i < len; i++) {
        char c = s[i];
        if (c == '+' || c == '/' || c == '=') {
            buf_release(&std);
            return -EINVAL;
        }
        buf_addch(&std, c == '-' ? '+' : c == '_' ? '/' : c);
    }
    buf_reset(out);
    int r = codec_base64_decode(out, std.data, std.len, STORE_KV_KEY_MAX);
    buf_release(&std);
    if (r == 0 && out->len == 0)
        r = -EINVAL;
    if (r == 0) {
        /* Only the one spelling this server writes (no stray low bits in
         * the last character): a cursor is not to be edited. */
        buf_t again = BUF_INIT;
        store_kv_cursor_format(&again, out->data, out->len);
        if (again.len != len || memcmp(again.data, s, len))
            r = -EINVAL;
        buf_release(&again);
    }
    if (r < 0) {
        buf_reset(out);
        return -EINVAL;
    }
    return 0;
}
