/* The function URLs' table (migration 8): each function's URL settings.
 * They change rarely and are read once at start, so the statements are
 * prepared per call rather than kept. */
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>

#include "core/xalloc.h"
#include "store/sqlite_internal.h"
#include "store/store.h"

int store__sqlite_url_put(store_t *s, const store_url_t *u, mf_error_t *err)
{
    sqlite3 *db = store__handle(s);
    sqlite3_stmt *st = NULL;
    /* Only for a function that exists, checked in the same statement: a
     * delete of the function cannot slip in between. */
    int r = store__sqlite_prepare(
        db,
        "INSERT INTO function_urls (function, config_json, created_ms, updated_ms)"
        " SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM functions WHERE name = ?1)"
        " ON CONFLICT (function) DO UPDATE SET config_json = excluded.config_json,"
        " created_ms = excluded.created_ms, updated_ms = excluded.updated_ms",
        &st, err);
    if (r < 0)
        return r;
    if (sqlite3_bind_text(st, 1, u->function, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, u->config_json, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(st, 3, u->created_ms) != SQLITE_OK ||
        sqlite3_bind_int64(st, 4, u->updated_ms) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE)
        r = store__sqlite_fail(db, err, "put a function URL");
    else if (sqlite3_changes(db) == 0)
        r = mf_error_plain(err, ENOENT, "no function named %s", u->function);
    sqlite3_finalize(st);
    return r;
}

int store__sqlite_url_delete(store_t *s, const char *function, mf_error_t *err)
{
    int r = store__run_keyed(store__handle(s), "DELETE FROM function_urls WHERE function = ?1",
                             function, "delete a function URL", err);
    if (r == -ENOENT)
        return mf_error_plain(err, ENOENT, "function %s has no URL", function);
    return r;
}

static void row_to_url(sqlite3_stmt *st, void *item)
{
    store_url_t *u = item;
    store__copy_text(u->function, sizeof u->function, st, 0);
    u->config_json = store__dup_column(st, 1);
    if (!u->config_json)
        u->config_json = xstrdup("{}");
    u->created_ms = sqlite3_column_int64(st, 2);
    u->updated_ms = sqlite3_column_int64(st, 3);
}

int store__sqlite_url_list(store_t *s, store_url_t **out, size_t *count, mf_error_t *err)
{
    sqlite3 *db = store__handle(s);
    sqlite3_stmt *st = NULL;
    *out = NULL;
    *count = 0;
    int r = store__sqlite_prepare(db,
                                  "SELECT function, config_json, created_ms, updated_ms"
                                  " FROM function_urls ORDER BY function",
                                  &st, err);
    if (r < 0)
        return r;
    void *list = NULL;
    r = store__collect(db, st, sizeof **out, row_to_url, &list, count, "list function URLs", err);
    sqlite3_finalize(st);
    *out = list;
    if (r < 0) {
        store_url_list_free(*out, *count);
        *out = NULL;
        *count = 0;
    }
    return r;
}
