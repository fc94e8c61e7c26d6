/* Retention: the records and log lines past their age or over the size
 * bound, deleted oldest first in small batches (store.h's
 * store_prune_write), said once over a few calls of each backend's
 * (store/backend.h); SQLite's are here, PostgreSQL's in postgres.c. */
#include <errno.h>
#include <sqlite3.h>

#include "store/backend.h"
#include "store/sqlite_internal.h"
#include "store/store.h"

/* Over the bound: the oldest, whatever their age, records and lines of the
 * same age together, a few batches a job (a job stays short; the next
 * comes soon). */
#define SIZE_ROUNDS 8

int store__prune(store_t *s, const store__prune_ops_t *ops, int64_t before_ms, int64_t max_bytes,
                 int batch, store_prune_t *out, mf_error_t *err)
{
    *out = (store_prune_t){ 0 };
    int r = ops->delete_older(s, false, before_ms - 1, batch, &out->records, err);
    if (r == 0)
        r = ops->delete_older(s, true, before_ms - 1, batch, &out->lines, err);
    if (r < 0)
        return r;
    out->more = out->records == batch || out->lines == batch;
    int rounds = ops->bytes_lag ? 1 : SIZE_ROUNDS;
    for (int round = 0; round < rounds && max_bytes > 0; round++) {
        int64_t bytes;
        if ((r = ops->bytes(s, &bytes, err)) < 0)
            return r;
        if (bytes <= max_bytes)
            break;
        int64_t t_lines = ops->oldest(s, true, batch), t_recs = ops->oldest(s, false, batch);
        int64_t until = t_lines < t_recs ? t_lines : t_recs;
        int64_t recs = 0, lines = 0;
        if ((r = ops->delete_older(s, false, until, batch, &recs, err)) < 0 ||
            (r = ops->delete_older(s, true, until, batch, &lines, err)) < 0)
            return r;
        out->records += recs;
        out->lines += lines;
        if (!ops->bytes_lag)
            out->more = recs > 0 || lines > 0;
        if (recs == 0 && lines == 0)
            break;
    }
    if (ops->tidy && (r = ops->tidy(s, max_bytes, err)) < 0)
        return r;
    return ops->bytes(s, &out->bytes, err);
}

/* ---- SQLite ------------------------------------------------------------- */

#define P STORE__SQLITE_P

static int64_t pragma_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Pages in use, in bytes (free pages not counted: they go back below). */
static int sqlite_bytes(store_t *s, int64_t *out, mf_error_t *err)
{
    sqlite3 *db = store__handle(s);
    int64_t pages = pragma_int(db, "PRAGMA page_count");
    int64_t free_pages = pragma_int(db, "PRAGMA freelist_count");
    int64_t size = pragma_int(db, "PRAGMA page_size");
    *out = pages < 0 || free_pages < 0 || size < 0 ? 0 : (pages - free_pages) * size;
    return 0;
}

static int sqlite_delete_older(store_t *s, bool lines, int64_t until_ms, int batch,
                               int64_t *deleted, mf_error_t *err)
{
    sqlite3 *db = store__handle(s);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, lines ? STORE_PRUNE_LINES(P) : STORE_PRUNE_RECORDS(P), -1, &st,
                           NULL) != SQLITE_OK ||
        sqlite3_bind_int64(st, 1, until_ms) != SQLITE_OK ||
        sqlite3_bind_int(st, 2, batch) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE) {
        sqlite3_finalize(st);
        return store__sqlite_fail(db, err, "prune old records");
    }
    sqlite3_finalize(st);
    *deleted = sqlite3_changes64(db);
    return 0;
}

static int64_t sqlite_oldest(store_t *s, bool lines, int skip)
{
    sqlite3_stmt *st = NULL;
    int64_t t = INT64_MAX;
    if (sqlite3_prepare_v2(store__handle(s), lines ? STORE_OLDEST_LINE(P) : STORE_OLDEST_RECORD(P),
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_bind_int(st, 1, skip) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        t = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return t;
}

/* Freed pages are used again by the next writes; the file gives back what
 * stays free beyond a quarter of the bound, a step at a time. */
static int sqlite_tidy(store_t *s, int64_t max_bytes, mf_error_t *err)
{
    sqlite3 *db = store__handle(s);
    int64_t page = pragma_int(db, "PRAGMA page_size");
    int64_t free_bytes = pragma_int(db, "PRAGMA freelist_count") * page;
    if (page > 0 && free_bytes > (max_bytes > 0 ? max_bytes / 4 : 64 << 20))
        return store__sqlite_exec(db, "PRAGMA incremental_vacuum(4096)", err);
    return 0;
}

static const store__prune_ops_t sqlite_prune = {
    .delete_older = sqlite_delete_older,
    .oldest = sqlite_oldest,
    .bytes = sqlite_bytes,
    .tidy = sqlite_tidy,
};

int store__sqlite_prune_write(store_t *s, int64_t before_ms, int64_t max_bytes, int batch,
                              store_prune_t *out, mf_error_t *err)
{
    return store__prune(s, &sqlite_prune, before_ms, max_bytes, batch, out, err);
}
