/* The KV stores on one machine: SQLite's file DATA/kv.db, one of kv.c's
 * backends (store/kv_backend.h). */
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>

#include "core/cleanup.h"
#include "core/xalloc.h"
#include "store/kv_backend.h"
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

#define P STORE__SQLITE_P

static const char *const kv__sql[STORE__KV_STMT_COUNT] = {
    [STORE__KV_GET] = STORE_KV_GET_SQL(P),
    [STORE__KV_LOOKUP] = STORE_KV_LOOKUP_SQL(P),
    [STORE__KV_UPSERT] = STORE_KV_UPSERT_SQL(P),
    [STORE__KV_DELETE] = STORE_KV_DELETE_SQL(P),
    [STORE__KV_STORE_ADD] = STORE_KV_STORE_ADD_SQL(P),
    [STORE__KV_STORE_GC] = STORE_KV_STORE_GC_SQL(P),
    [STORE__KV_STORE_GET] = STORE_KV_STORE_GET_SQL(P),
    [STORE__KV_STORES] = STORE_KV_STORES_SQL,
    /* In the file, not in memory: another connection (a second server on
     * the same data, by mistake) cannot hand out the same number. A
     * write rolled back gives its number back, but no one saw it. */
    [STORE__KV_VERSION_NEXT] = "UPDATE meta SET version = version + 1 WHERE id = 1"
                              " RETURNING version",
    [STORE__KV_LIST] = STORE_KV_LIST_ALL_SQL(P),
    [STORE__KV_LIST_PREFIX] = STORE_KV_LIST_PREFIX_SQL(P),
    [STORE__KV_SWEEP_DUE] = STORE_KV_SWEEP_DUE_SQL(P),
    [STORE__KV_SWEEP] = STORE_KV_SWEEP_SQL(P),
    [STORE__KV_DROP_KEYS] = STORE_KV_DROP_KEYS_SQL(P),
    [STORE__KV_DROP_STORE] = STORE_KV_DROP_STORE_SQL(P),
    /* No store locks: one writer has the file (BEGIN IMMEDIATE). */
    [STORE__KV_BEGIN] = "BEGIN IMMEDIATE",
    [STORE__KV_BEGIN_READ] = "BEGIN",
    [STORE__KV_COMMIT] = "COMMIT",
    [STORE__KV_SAVEPOINT] = STORE_KV_SAVEPOINT_SQL,
    [STORE__KV_RELEASE] = STORE_KV_RELEASE_SQL,
    [STORE__KV_ROLLBACK_TO] = STORE_KV_ROLLBACK_TO_SQL,
    [STORE__KV_BATCH_SAVEPOINT] = STORE_KV_BATCH_SAVEPOINT_SQL,
    [STORE__KV_BATCH_RELEASE] = STORE_KV_BATCH_RELEASE_SQL,
    [STORE__KV_BATCH_ROLLBACK_TO] = STORE_KV_BATCH_ROLLBACK_TO_SQL,
};

typedef struct kv_sqlite {
    store_kv_t base;
    sqlite3 *db;
    sqlite3_stmt *st[STORE__KV_STMT_COUNT];
    bool durable; /* the open transaction's */
} kv_sqlite_t;

static const store__kv_backend_t kvsq__backend;

static kv_sqlite_t *sq(store_kv_t *kv)
{
    return (kv_sqlite_t *)kv;
}

static void kvsq__close(store_kv_t *base)
{
    kv_sqlite_t *kv = sq(base);
    for (int i = 0; i < STORE__KV_STMT_COUNT; i++)
        sqlite3_finalize(kv->st[i]);
    if (kv->db)
        sqlite3_close(kv->db);
    free(kv);
}

int store__kv_sqlite_open(const char *data_dir, bool writer, store_kv_t **out, mf_error_t *err)
{
    cleanup_free char *path = xasprintf("%s/kv.db", data_dir);
    kv_sqlite_t *kv = xcalloc(1, sizeof *kv);
    kv->base.be = &kvsq__backend;
    kv->durable = true; /* store__sqlite_open leaves it at FULL */
    int version = 0;
    int r = store__sqlite_open(path, &kv->db, err);
    if (r == 0)
        r = store__sqlite_migrate(kv->db, kv__migrations,
                                  (int)(sizeof kv__migrations / sizeof kv__migrations[0]), &version,
                                  err);
    for (int i = 0; i < STORE__KV_STMT_COUNT && r == 0; i++)
        if (kv__sql[i])
            r = store__sqlite_prepare(kv->db, kv__sql[i], &kv->st[i], err);
    if (r < 0) {
        mf_error_wrap(err, "kv `%s`", path);
        kvsq__close(&kv->base);
        return r;
    }
    /* Large values make large transactions: the writer keeps the WAL cut
     * back, off the loop. */
    if (writer)
        store__wal_bounded(kv->db);
    *out = &kv->base;
    return 0;
}

static int kvsq__run(store_kv_t *base, int stmt, const store__kv_arg_t *args, size_t n,
                     store__fill_fn row, void *ud, const char *what, mf_error_t *err)
{
    kv_sqlite_t *kv = sq(base);
    sqlite3_stmt *st = kv->st[stmt];
    if (!st)
        return 0;
    store__binder_t b = store__sqlite_binder(st);
    if (store__kv_bind(&b, args, n)) {
        store__stmt_done(st);
        return store__sqlite_fail(kv->db, err, what);
    }
    store__row_t reader = store__sqlite_row(st);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if (row)
            row(&reader, ud);
    /* Stepped to its end, so that a write is complete before the reset. */
    int r = rc == SQLITE_DONE ? 0 : store__sqlite_fail(kv->db, err, what);
    store__stmt_done(st);
    return r;
}

static int kvsq__begin(store_kv_t *base, bool durable, mf_error_t *err)
{
    kv_sqlite_t *kv = sq(base);
    return store__txn_begin(kv->db, &kv->durable, durable, kv->st[STORE__KV_BEGIN], err);
}

static int kvsq__commit(store_kv_t *base, mf_error_t *err)
{
    kv_sqlite_t *kv = sq(base);
    return store__txn_commit(kv->db, kv->st[STORE__KV_COMMIT], err);
}

static void kvsq__rollback(store_kv_t *base)
{
    store__txn_rollback(sq(base)->db);
}

static bool kvsq__in_transaction(store_kv_t *base)
{
    return !sqlite3_get_autocommit(sq(base)->db);
}

static const store__kv_backend_t kvsq__backend = {
    .name = "SQLite",
    .close = kvsq__close,
    .run = kvsq__run,
    .begin = kvsq__begin,
    .commit = kvsq__commit,
    .rollback = kvsq__rollback,
    .in_transaction = kvsq__in_transaction,
};
