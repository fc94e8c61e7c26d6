/* Retention: the records and log lines past their age or over the size
 * bound, deleted oldest first in small batches (store.h). */
#include <errno.h>
#include <sqlite3.h>

#include "store/sqlite_internal.h"
#include "store/store.h"

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
static int64_t bytes_in_use(sqlite3 *db)
{
    int64_t pages = pragma_int(db, "PRAGMA page_count");
    int64_t free_pages = pragma_int(db, "PRAGMA freelist_count");
    int64_t size = pragma_int(db, "PRAGMA page_size");
    return pages < 0 || free_pages < 0 || size < 0 ? 0 : (pages - free_pages) * size;
}

/* Runs one DELETE with (?1 before_ms, ?2 batch); the rows it deleted. */
static int delete_batch(sqlite3 *db, const char *sql, int64_t before_ms, int batch,
                        int64_t *deleted, mf_error_t *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_int64(st, 1, before_ms) != SQLITE_OK ||
        sqlite3_bind_int(st, 2, batch) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE) {
        sqlite3_finalize(st);
        return store__sqlite_fail(db, err, "prune old records");
    }
    sqlite3_finalize(st);
    *deleted += sqlite3_changes64(db);
    return 0;
}

/* Oldest first, by the indexes the tables have: records by start_ms, log
 * lines by id (their order of writing, and of time_ms). */
#define DEL_RECORDS                                                                                \
    "DELETE FROM invocations WHERE rowid IN (SELECT rowid FROM invocations"                       \
    " WHERE start_ms <= ?1 ORDER BY start_ms LIMIT ?2)"
#define DEL_LINES                                                                                  \
    "DELETE FROM logs WHERE id IN (SELECT id FROM logs WHERE time_ms <= ?1 ORDER BY id LIMIT ?2)"

/* The time of the batch-th oldest row of a kind, or INT64_MAX when there
 * are fewer. */
static int64_t nth_oldest(sqlite3 *db, const char *sql, int batch)
{
    sqlite3_stmt *st = NULL;
    int64_t t = INT64_MAX;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_bind_int(st, 1, batch - 1) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        t = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return t;
}

int store__sqlite_prune_write(store_t *s, int64_t before_ms, int64_t max_bytes, int batch,
                      store_prune_t *out, mf_error_t *err)
{
    sqlite3 *db = store__handle(s);
    *out = (store_prune_t){0};
    int r = delete_batch(db, DEL_RECORDS, before_ms - 1, batch, &out->records, err);
    if (r == 0)
        r = delete_batch(db, DEL_LINES, before_ms - 1, batch, &out->lines, err);
    if (r < 0)
        return r;
    out->more = out->records == batch || out->lines == batch;
    /* Over the bound: the oldest, whatever their age, records and lines of
     * the same age together, a few batches a job (a job stays short; the
     * next comes soon). */
    for (int round = 0; round < 8 && max_bytes > 0 && bytes_in_use(db) > max_bytes; round++) {
        int64_t t_lines = nth_oldest(db, "SELECT time_ms FROM logs ORDER BY id LIMIT 1 OFFSET ?1",
                                     batch);
        int64_t t_recs = nth_oldest(
            db, "SELECT start_ms FROM invocations ORDER BY start_ms LIMIT 1 OFFSET ?1", batch);
        int64_t until = t_lines < t_recs ? t_lines : t_recs;
        int64_t recs = 0, lines = 0;
        if ((r = delete_batch(db, DEL_RECORDS, until, batch, &recs, err)) < 0 ||
            (r = delete_batch(db, DEL_LINES, until, batch, &lines, err)) < 0)
            return r;
        out->records += recs;
        out->lines += lines;
        out->more = recs > 0 || lines > 0;
        if (!out->more)
            break;
    }
    /* Freed pages are used again by the next writes; the file gives back
     * what stays free beyond a quarter of the bound, a step at a time. */
    int64_t page = pragma_int(db, "PRAGMA page_size");
    int64_t free_bytes = pragma_int(db, "PRAGMA freelist_count") * page;
    if (page > 0 && free_bytes > (max_bytes > 0 ? max_bytes / 4 : 64 << 20))
        r = store__sqlite_exec(db, "PRAGMA incremental_vacuum(4096)", err);
    out->bytes = bytes_in_use(db);
    return r;
}
