/* The shared volumes' table (migration 7): a volume's name, size and
 * creation time. Volumes change rarely, so the statements are prepared
 * per call rather than kept. */
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>

#include "core/xalloc.h"
#include "store/sqlite_internal.h"
#include "store/store.h"

static void row_to_volume(sqlite3_stmt *st, void *item)
{
    store_volume_t *v = item;
    store__copy_text(v->name, sizeof v->name, st, 0);
    v->size_mb = sqlite3_column_int64(st, 1);
    v->created_ms = sqlite3_column_int64(st, 2);
}

int store__sqlite_volume_add(store_t *s, const store_volume_t *v, mf_error_t *err)
{
    sqlite3 *db = store__handle(s);
    sqlite3_stmt *st = NULL;
    int r = store__sqlite_prepare(db,
                                  "INSERT INTO volumes (name, size_mb, created_ms)"
                                  " VALUES (?1, ?2, ?3)",
                                  &st, err);
    if (r < 0)
        return r;
    if (sqlite3_bind_text(st, 1, v->name, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(st, 2, v->size_mb) != SQLITE_OK ||
        sqlite3_bind_int64(st, 3, v->created_ms) != SQLITE_OK) {
        r = store__sqlite_fail(db, err, "add a volume");
    } else {
        int rc = sqlite3_step(st);
        if ((rc & 0xff) == SQLITE_CONSTRAINT)
            r = mf_error_plain(err, EEXIST, "volume `%s` exists", v->name);
        else if (rc != SQLITE_DONE)
            r = store__sqlite_fail(db, err, "add a volume");
    }
    sqlite3_finalize(st);
    return r;
}

int store__sqlite_volume_get(store_t *s, const char *name, store_volume_t *out, mf_error_t *err)
{
    sqlite3 *db = store__handle(s);
    sqlite3_stmt *st = NULL;
    int r = store__sqlite_prepare(
        db, "SELECT name, size_mb, created_ms FROM volumes WHERE name = ?1", &st, err);
    if (r < 0)
        return r;
    if (sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK) {
        r = store__sqlite_fail(db, err, "get a volume");
    } else {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            row_to_volume(st, out);
        else if (rc == SQLITE_DONE)
            r = mf_error_plain(err, ENOENT, "no volume named %s", name);
        else
            r = store__sqlite_fail(db, err, "get a volume");
    }
    sqlite3_finalize(st);
    return r;
}

int store__sqlite_volume_list(store_t *s, store_volume_t **out, size_t *count, mf_error_t *err)
{
    sqlite3 *db = store__handle(s);
    sqlite3_stmt *st = NULL;
    *out = NULL;
    *count = 0;
    int r = store__sqlite_prepare(db, "SELECT name, size_mb, created_ms FROM volumes ORDER BY name",
                                  &st, err);
    if (r < 0)
        return r;
    void *list = NULL;
    r = store__collect(db, st, sizeof **out, row_to_volume, &list, count, "list volumes", err);
    sqlite3_finalize(st);
    *out = list;
    if (r < 0) {
        free(*out);
        *out = NULL;
        *count = 0;
    }
    return r;
}

int store__sqlite_volume_delete(store_t *s, const char *name, mf_error_t *err)
{
    int r = store__run_keyed(store__handle(s), "DELETE FROM volumes WHERE name = ?1", name,
                             "delete a volume", err);
    if (r == -ENOENT)
        return mf_error_plain(err, ENOENT, "no volume named %s", name);
    return r;
}
