/* The advisor's input, read from the store (watch/advisor.h). */
#include <stdlib.h>

#include "core/xalloc.h"
#include "watch/advisor.h"

/* Records read at a time: each holds its payloads until summarised. */
#define PAGE 100

int watch_advice_read(store_t *db, const char *function, int64_t since_ms, size_t max,
                      watch_call_t **out, size_t *n, bool *truncated, mf_error_t *err)
{
    store_record_filter_t f = STORE_RECORD_FILTER_INIT;
    f.function = function;
    f.since_ms = since_ms;
    watch_call_t *calls = xcalloc(max ? max : 1, sizeof *calls);
    size_t got = 0;
    bool more = true;
    *truncated = false;
    while (more && got < max) {
        store_record_t *list = NULL;
        size_t count = 0;
        store_record_cursor_t next;
        f.limit = (int)(max - got < PAGE ? max - got : PAGE);
        int r = store_records_find(db, &f, &list, &count, &more, &next, err);
        if (r < 0) {
            free(calls);
            return r;
        }
        for (size_t i = 0; i < count; i++) {
            const store_record_t *rec = &list[i];
            calls[got++] = (watch_call_t){
                .start_ms = rec->start_ms,
                .duration_ms = rec->duration_ms,
                .memory_mb = rec->memory_mb,
                .max_rss_kb = rec->max_rss_kb,
                .cpu_ms = rec->cpu_ms,
                .cold_start = rec->cold_start,
                .status = watch_call_status(rec->status),
            };
        }
        store_record_list_free(list, count);
        f.after_set = true;
        f.after = next;
    }
    *truncated = more;
    *out = calls;
    *n = got;
    return 0;
}
