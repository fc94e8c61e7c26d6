/* Opening and migrating a SQLite file, and the statement helpers both of
 * the store's databases use. */
#include "store/sqlite_internal.h"

#include "store/backend.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/pace.h"
#include "core/xalloc.h"

int store__sqlite_fail(sqlite3 *db, mf_error_t *err, const char *what)
{
    return mf_error_plain(err, EIO, "store: %s: %s", what, sqlite3_errmsg(db));
}

int store__sqlite_exec(sqlite3 *db, const char *sql, mf_error_t *err)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int r = mf_error_plain(err, EIO, "store: %s", msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return r;
    }
    return 0;
}

int store__sqlite_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out, mf_error_t *err)
{
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL) != SQLITE_OK)
        return store__sqlite_fail(db, err, "prepare a statement");
    return 0;
}

/* Every few thousand of a statement's steps: a background thread's long
 * statement gives way now and then (core/pace.h). Never interrupts. */
static int sqlite__progress(void *ud)
{
    (void)ud;
    pace_point();
    return 0;
}

/* A commit writes every page its transaction touched, a checkpoint copies
 * pages back into the database: runs of hundreds of writes inside one of
 * SQLite's steps, which its progress handler does not see. The unix VFS
 * lets its system calls be replaced: its page writes pass a pace point
 * too. */
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
static pwrite_fn real_pwrite, real_pwrite64;

static ssize_t paced_pwrite(int fd, const void *buf, size_t n, off_t at)
{
    pace_point();
    return real_pwrite(fd, buf, n, at);
}

static ssize_t paced_pwrite64(int fd, const void *buf, size_t n, off_t at)
{
    pace_point();
    return real_pwrite64(fd, buf, n, at);
}

static void sqlite__pace_writes(void)
{
    sqlite3_vfs *vfs = sqlite3_vfs_find(NULL);
    if (!vfs || vfs->iVersion < 3 || !vfs->xGetSystemCall || !vfs->xSetSystemCall)
        return;
    real_pwrite = (pwrite_fn)vfs->xGetSystemCall(vfs, "pwrite");
    if (real_pwrite)
        vfs->xSetSystemCall(vfs, "pwrite", (sqlite3_syscall_ptr)paced_pwrite);
    real_pwrite64 = (pwrite_fn)vfs->xGetSystemCall(vfs, "pwrite64");
    if (real_pwrite64)
        vfs->xSetSystemCall(vfs, "pwrite64", (sqlite3_syscall_ptr)paced_pwrite64);
}

static pthread_once_t pace_once = PTHREAD_ONCE_INIT;

int store__sqlite_open(const char *path, sqlite3 **out, mf_error_t *err)
{
    pthread_once(&pace_once, sqlite__pace_writes);
    sqlite3 *db = NULL;
    /* NOMUTEX: a connection is used from one thread at a time, so SQLite's
     * own per-connection mutex would be pure overhead. */
    int rc = sqlite3_open_v2(
        path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        int r = mf_error_plain(err, EIO, "store: open `%s`: %s", path,
                               db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return r;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, STORE_BUSY_TIMEOUT_MS);
    sqlite3_progress_handler(db, 2000, sqlite__progress, NULL);

    /* journal_mode answers with the mode it ended up in; a file system that
     * cannot do WAL (no shared memory) would silently stay in DELETE mode. */
    sqlite3_stmt *st = NULL;
    int r = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &st, NULL) != SQLITE_OK) {
        r = store__sqlite_fail(db, err, "set WAL mode");
        goto out;
    }
    rc = sqlite3_step(st);
    int wal = rc == SQLITE_ROW && !sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) {
        r = store__sqlite_fail(db, err, "set WAL mode");
        goto out;
    }
    if (!wal) {
        r = mf_error_plain(err, EIO, "store: `%s` cannot be put in WAL mode", path);
        goto out;
    }
    /* FULL, not NORMAL: in WAL mode NORMAL may lose the last commits on a
     * power cut, and a client told 201 or 202 must find its function or
     * its queued event after a reboot. Writes are grouped into few
     * transactions, so the fsync per commit is affordable. */
    /* The WAL is cut back to 4 MiB after a checkpoint: a burst of writes
     * does not leave a large file behind. A writer runs each job of a batch
     * in a savepoint, whose journal of undo pages SQLite spills to a
     * temporary file past 64 KiB: kept in memory, a batch costs no writes
     * but its WAL frames. */
    r = store__sqlite_exec(db,
                           "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
                           " PRAGMA journal_size_limit = 4194304; PRAGMA temp_store = MEMORY;"
                           " PRAGMA cache_size = -16384; PRAGMA wal_autocheckpoint = 4096;",
                           err);
out:
    if (r < 0) {
        sqlite3_close(db);
        return r;
    }
    *out = db;
    return 0;
}

static int store__user_version(sqlite3 *db, int *out, mf_error_t *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return store__sqlite_fail(db, err, "read the schema version");
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return store__sqlite_fail(db, err, "read the schema version");
    return 0;
}

/* BEGIN IMMEDIATE takes the write lock before user_version is read, so the
 * check and the change cannot interleave with another writer's. */
int store__sqlite_migrate(sqlite3 *db, const char *const *migrations, int count, int *version,
                          mf_error_t *err)
{
    int r = store__sqlite_exec(db, "BEGIN IMMEDIATE", err);
    if (r < 0)
        return r;
    int have = 0;
    r = store__user_version(db, &have, err);
    if (r < 0)
        goto rollback;
    if (have > count) {
        r = store__newer_schema(err, have, count);
        goto rollback;
    }
    for (int i = have; i < count; i++) {
        r = store__sqlite_exec(db, migrations[i], err);
        if (r < 0) {
            mf_error_wrap(err, "store: migration %d", i + 1);
            goto rollback;
        }
    }
    if (have < count) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", count);
        r = store__sqlite_exec(db, sql, err);
        if (r < 0)
            goto rollback;
    }
    r = store__sqlite_exec(db, "COMMIT", err);
    if (r < 0)
        goto rollback;
    *version = count;
    return 0;

rollback:
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return r;
}

void store__stmt_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

int store__step_done(sqlite3 *db, sqlite3_stmt *st, int bind_ok, const char *what, mf_error_t *err)
{
    int r = 0;
    if (!bind_ok || sqlite3_step(st) != SQLITE_DONE)
        r = store__sqlite_fail(db, err, what);
    store__stmt_done(st);
    return r;
}

int store__txn_begin(sqlite3 *db, bool *synchronous_full, bool durable, sqlite3_stmt *begin,
                     mf_error_t *err)
{
    if (durable != *synchronous_full) {
        int r = store__sqlite_exec(
            db, durable ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL", err);
        if (r < 0)
            return r;
        *synchronous_full = durable;
    }
    return store__step_done(db, begin, 1, "begin a transaction", err);
}

int store__txn_commit(sqlite3 *db, sqlite3_stmt *commit, mf_error_t *err)
{
    int r = store__step_done(db, commit, 1, "commit", err);
    if (r < 0)
        store__txn_rollback(db);
    return r;
}

void store__txn_rollback(sqlite3 *db)
{
    if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

void store__txn_release(sqlite3 *db, sqlite3_stmt *rollback_to, sqlite3_stmt *release, bool keep)
{
    mf_error_t err = MF_ERROR_INIT;
    if (!keep)
        store__step_done(db, rollback_to, 1, "roll back a savepoint", &err);
    store__step_done(db, release, 1, "release a savepoint", &err);
}

void store__copy_text(char *dst, size_t size, sqlite3_stmt *st, int col)
{
    const char *v = (const char *)sqlite3_column_text(st, col);
    snprintf(dst, size, "%s", v ? v : "");
}

char *store__dup_column(sqlite3_stmt *st, int col)
{
    const char *v = (const char *)sqlite3_column_text(st, col);
    return v ? xstrdup(v) : NULL;
}

void *store__dup_blob(sqlite3_stmt *st, int col, size_t *len)
{
    const void *blob = sqlite3_column_blob(st, col);
    int n = sqlite3_column_bytes(st, col);
    char *out = xmalloc((size_t)n + 1);
    if (n > 0)
        memcpy(out, blob, (size_t)n);
    out[n] = '\0';
    *len = (size_t)n;
    return out;
}

int store__bind_text_or_null(sqlite3_stmt *st, int col, const char *v)
{
    return v ? sqlite3_bind_text(st, col, v, -1, SQLITE_STATIC) : sqlite3_bind_null(st, col);
}

int store__bind_blob_or_null(sqlite3_stmt *st, int col, const void *v, size_t len)
{
    return v ? sqlite3_bind_blob64(st, col, v, len, SQLITE_STATIC) : sqlite3_bind_null(st, col);
}

void *store__dup_blob_or_null(sqlite3_stmt *st, int col, size_t *len)
{
    *len = 0;
    return sqlite3_column_type(st, col) == SQLITE_NULL ? NULL : store__dup_blob(st, col, len);
}

int store__incremental_vacuum_on(sqlite3 *db, mf_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int mode = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA auto_vacuum", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        mode = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (mode == 2)
        return 0;
    /* On a new database the pragmas alone take; an existing one is
     * rebuilt once (VACUUM), which a later open then finds done. Pages of
     * 16 KiB hold several records with their payloads each, where 4 KiB
     * pages would hold one and write a page per record. */
    /* (A database's page size changes only outside WAL mode.) */
    return store__sqlite_exec(db,
                              "PRAGMA journal_mode = DELETE; PRAGMA page_size = 16384;"
                              " PRAGMA auto_vacuum = INCREMENTAL; VACUUM;"
                              " PRAGMA journal_mode = WAL;",
                              err);
}

/* Frames of the records' database's 16 KiB pages: 4 MiB, 16 MiB. */
#define WAL_PASSIVE_FRAMES 256
#define WAL_TRUNCATE_FRAMES 1024

static int store__wal_hook(void *ud, sqlite3 *db, const char *name, int frames)
{
    (void)ud;
    if (frames >= WAL_TRUNCATE_FRAMES)
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    else if (frames >= WAL_PASSIVE_FRAMES)
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return SQLITE_OK;
}

void store__wal_bounded(sqlite3 *db)
{
    sqlite3_wal_hook(db, store__wal_hook, NULL);
}

/* store__collect's loop, filling each item with row (sqlite3_stmt) or
 * fill (store__row_t), whichever is given. */
static int collect(sqlite3 *db, sqlite3_stmt *st, size_t size,
                   void (*row)(sqlite3_stmt *st, void *item), store__fill_fn fill, void **out,
                   size_t *count, const char *what, mf_error_t *err)
{
    char *list = NULL;
    size_t n = 0, cap = 0;
    store__row_t reader = store__sqlite_row(st);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            list = xrealloc(list, cap * size);
        }
        void *item = list + n * size;
        memset(item, 0, size);
        if (row)
            row(st, item);
        else
            fill(&reader, item);
        n++;
    }
    int r = rc == SQLITE_DONE ? 0 : store__sqlite_fail(db, err, what);
    store__stmt_done(st);
    *out = list;
    *count = n;
    return r;
}

int store__collect(sqlite3 *db, sqlite3_stmt *st, size_t size,
                   void (*row)(sqlite3_stmt *st, void *item), void **out, size_t *count,
                   const char *what, mf_error_t *err)
{
    return collect(db, st, size, row, NULL, out, count, what, err);
}

int store__sqlite_rows(sqlite3 *db, sqlite3_stmt *st, size_t size, store__fill_fn fill,
                       void **out, size_t *count, const char *what, mf_error_t *err)
{
    return collect(db, st, size, NULL, fill, out, count, what, err);
}

/* ---- store/rows.h's reader and binder on a statement ------------------- */

static int64_t row_int64(void *st, int col)
{
    return sqlite3_column_int64(st, col);
}

static double row_real(void *st, int col)
{
    return sqlite3_column_double(st, col);
}

static void row_copy_text(void *st, int col, char *dst, size_t size)
{
    store__copy_text(dst, size, st, col);
}

static char *row_dup_text(void *st, int col)
{
    return store__dup_column(st, col);
}

static void *row_dup_blob(void *st, int col, size_t *len)
{
    return store__dup_blob_or_null(st, col, len);
}

store__row_t store__sqlite_row(sqlite3_stmt *st)
{
    return (store__row_t){ .ctx = st,
                           .int64 = row_int64,
                           .real = row_real,
                           .copy_text = row_copy_text,
                           .dup_text = row_dup_text,
                           .dup_blob = row_dup_blob };
}

static int bind_int64(void *st, int i, int64_t v)
{
    return sqlite3_bind_int64(st, i, v) != SQLITE_OK;
}

static int bind_real(void *st, int i, double v)
{
    return sqlite3_bind_double(st, i, v) != SQLITE_OK;
}

static int bind_text(void *st, int i, const char *v)
{
    return store__bind_text_or_null(st, i, v) != SQLITE_OK;
}

static int bind_blob(void *st, int i, const void *v, size_t len)
{
    return store__bind_blob_or_null(st, i, v, len) != SQLITE_OK;
}

store__binder_t store__sqlite_binder(sqlite3_stmt *st)
{
    return (store__binder_t){ .ctx = st,
                              .int64 = bind_int64,
                              .real = bind_real,
                              .text = bind_text,
                              .blob = bind_blob };
}

int store__run_keyed(sqlite3 *db, const char *sql, const char *key, const char *what,
                     mf_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int r = store__sqlite_prepare(db, sql, &st, err);
    if (r < 0)
        return r;
    if (sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_DONE)
        r = store__sqlite_fail(db, err, what);
    else if (sqlite3_changes(db) == 0)
        r = -ENOENT;
    sqlite3_finalize(st);
    return r;
}

int store__sqlite_write(sqlite3 *db, const char *sql,
                        int (*bind)(const store__binder_t *b, const void *item), const void *item,
                        int64_t *changed, const char *what, mf_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int r = store__sqlite_prepare(db, sql, &st, err);
    if (r < 0)
        return r;
    store__binder_t b = store__sqlite_binder(st);
    if (bind(&b, item) || sqlite3_step(st) != SQLITE_DONE)
        r = store__sqlite_fail(db, err, what);
    else
        *changed = sqlite3_changes64(db);
    sqlite3_finalize(st);
    return r;
}

int store__sqlite_query(sqlite3 *db, const char *sql, const char *key, size_t size,
                        store__fill_fn fill, void **out, size_t *count, const char *what,
                        mf_error_t *err)
{
    sqlite3_stmt *st = NULL;
    *out = NULL;
    *count = 0;
    int r = store__sqlite_prepare(db, sql, &st, err);
    if (r < 0)
        return r;
    if (key && sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC) != SQLITE_OK)
        r = store__sqlite_fail(db, err, what);
    else
        r = store__sqlite_rows(db, st, size, fill, out, count, what, err);
    sqlite3_finalize(st);
    return r;
}
