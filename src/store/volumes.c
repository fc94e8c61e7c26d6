/* The shared volumes' table on SQLite (migration 7): a volume's name, size
 * and creation time, in the statements both backends share (store/rows.h).
 * Volumes change rarely, so the statements are prepared per call rather
 * than kept. */
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>

#include "store/sqlite_internal.h"
#include "store/store.h"

#define P STORE__SQLITE_P

int store__sqlite_volume_add(store_t *s, const store_volume_t *v, mf_error_t *err)
{
    int64_t changed = 0;
    int r = store__sqlite_write(store__handle(s), STORE_VOLUME_ADD(P), store__bind_volume, v,
                                &changed, "add a volume", err);
    return r == 0 && changed == 0 ? store__volume_exists(err, v->name) : r;
}

int store__sqlite_volume_get(store_t *s, const char *name, store_volume_t *out, mf_error_t *err)
{
    void *list = NULL;
    size_t n = 0;
    int r = store__sqlite_query(store__handle(s), STORE_VOLUME_GET(P), name, sizeof *out,
                                store__fill_volume, &list, &n, "get a volume", err);
    if (r == 0 && n == 0)
        r = store__no_volume(err, name);
    else if (r == 0)
        *out = *(store_volume_t *)list;
    free(list);
    return r;
}

int store__sqlite_volume_list(store_t *s, store_volume_t **out, size_t *count, mf_error_t *err)
{
    void *list = NULL;
    int r = store__sqlite_query(store__handle(s), STORE_VOLUME_LIST, NULL, sizeof **out,
                                store__fill_volume, &list, count, "list volumes", err);
    if (r < 0) {
        free(list);
        list = NULL;
        *count = 0;
    }
    *out = list;
    return r;
}

/* Usage (migration 10) is read here too: a report is as rare as a
 * volume's change. */
int store__sqlite_usage_list(store_t *s, int64_t from_ms, int64_t to_ms, store_usage_t **out,
                             size_t *count, mf_error_t *err)
{
    sqlite3 *db = store__handle(s);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, STORE_USAGE_LIST(P), -1, &st, NULL) != SQLITE_OK)
        return store__sqlite_fail(db, err, "read usage");
    sqlite3_bind_int64(st, 1, from_ms);
    sqlite3_bind_int64(st, 2, to_ms);
    void *list = NULL;
    int r = store__sqlite_rows(db, st, sizeof **out, store__fill_usage, &list, count,
                               "read usage", err);
    sqlite3_finalize(st);
    if (r < 0) {
        free(list);
        list = NULL;
        *count = 0;
    }
    *out = list;
    return r;
}

/* Runs sql once, its parameters bound by bind from item. */
static int storage_run(store_t *s, const char *sql,
                       int (*bind)(const store__binder_t *b, const void *item), const void *item,
                       const char *what, mf_error_t *err)
{
    sqlite3 *db = store__handle(s);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return store__sqlite_fail(db, err, what);
    store__binder_t b = store__sqlite_binder(st);
    int r = store__step_done(db, st, !bind(&b, item), what, err);
    sqlite3_finalize(st);
    return r;
}

int store__sqlite_storage_claim(store_t *s, int64_t at_ms, bool prune, int *claimed,
                                mf_error_t *err)
{
    int r = storage_run(s, prune ? STORE_STORAGE_PRUNE(P) : STORE_STORAGE_CLAIM(P),
                        store__bind_at, &at_ms, "claim a storage sample", err);
    if (r == 0 && claimed)
        *claimed = sqlite3_changes(store__handle(s)) > 0;
    return r;
}

int store__sqlite_storage_add(store_t *s, const char *tenant, const char *name, int64_t hour_ms,
                              int64_t kv_byte_ms, int64_t volume_byte_ms, mf_error_t *err)
{
    store__storage_row_t row = { tenant, name, hour_ms, kv_byte_ms, volume_byte_ms };
    return storage_run(s, STORE_STORAGE_ADD(P), store__bind_storage, &row,
                       "add storage to usage", err);
}

int store__sqlite_usage_put(store_t *s, const store_usage_t *u, mf_error_t *err)
{
    return storage_run(s, STORE_USAGE_PUT(P), store__bind_usage, u, "add a call to usage", err);
}

int store__sqlite_volume_delete(store_t *s, const char *name, mf_error_t *err)
{
    int r = store__run_keyed(store__handle(s), STORE_VOLUME_DELETE(P), name, "delete a volume",
                             err);
    return r == -ENOENT ? store__no_volume(err, name) : r;
}
