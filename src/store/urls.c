/* The function URLs' table on SQLite (migration 9): each function's URL
 * settings, in the statements both backends share (store/rows.h). They
 * change rarely and are read once at start, so the statements are
 * prepared per call rather than kept. */
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>

#include "store/sqlite_internal.h"
#include "store/store.h"

#define P STORE__SQLITE_P

int store__sqlite_url_put(store_t *s, const store_url_t *u, mf_error_t *err)
{
    int64_t changed = 0;
    int r = store__sqlite_write(store__handle(s), STORE_URL_PUT(P), store__bind_url, u, &changed,
                                "put a function URL", err);
    return r == 0 && changed == 0 ? store__url_without_function(err, u->function) : r;
}

int store__sqlite_url_delete(store_t *s, const char *function, mf_error_t *err)
{
    int r = store__run_keyed(store__handle(s), STORE_URL_DELETE(P), function,
                             "delete a function URL", err);
    return r == -ENOENT ? store__no_url(err, function) : r;
}

int store__sqlite_url_list(store_t *s, store_url_t **out, size_t *count, mf_error_t *err)
{
    void *list = NULL;
    int r = store__sqlite_query(store__handle(s), STORE_URL_LIST, NULL, sizeof **out,
                                store__fill_url, &list, count, "list function URLs", err);
    if (r < 0) {
        store_url_list_free(list, *count);
        list = NULL;
        *count = 0;
    }
    *out = list;
    return r;
}
