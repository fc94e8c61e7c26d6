/* The store's public calls (store.h), handed to the backend that holds the
 * data (store/backend.h), and what is the same whichever holds it: freeing
 * what the calls return. */
#include "store/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/backend.h"
#include "store/listen.h"

bool store__is_url(const char *where)
{
    return !strncmp(where, "postgresql://", 13) || !strncmp(where, "postgres://", 11);
}

int store_open(const char *where, store_t **out, mf_error_t *err)
{
    *out = NULL;
    if (store__is_url(where))
        return store__pg_open(where, out, err);
    return store__sqlite_store_open(where, out, err);
}

void store_close(store_t *s)
{
    if (s)
        s->be->close(s);
}

int store_schema_version(store_t *s)
{
    return s->schema_version;
}

const char *store_backend_name(store_t *s)
{
    return s->be->name;
}

int store__newer_schema(mf_error_t *err, int have, int know)
{
    return mf_error_plain(err, EPROTO,
                          "store: the database has schema version %d, newer than this mayfly "
                          "knows (%d); use a newer mayfly",
                          have, know);
}

/* A call the backend has no code for yet: said plainly, never a crash. */
static int store__unsupported(store_t *s, const char *call, mf_error_t *err)
{
    return mf_error_plain(err, ENOTSUP, "store: %s is not available on %s yet", call,
                          s->be->name);
}

#define STORE__CALL(s, op, err, ...)                                                               \
    ((s)->be->op ? (s)->be->op((s), __VA_ARGS__) : store__unsupported((s), "store_" #op, (err)))

void store_set_node(store_t *s, const char *node)
{
    if (s->be->set_node)
        s->be->set_node(s, node);
}

int store_listen_open(store_t *s, const char *channel, const char *application_name,
                      store_listener_t **out, mf_error_t *err)
{
    *out = NULL;
    return STORE__CALL(s, listen_open, err, channel, application_name, out, err);
}

int store_writer_db(store_t *s, store_writer_db_t *out, mf_error_t *err)
{
    return STORE__CALL(s, writer_db, err, out, err);
}

int store_reopen(store_t *s, store_t **out, mf_error_t *err)
{
    *out = NULL;
    return STORE__CALL(s, reopen, err, out, err);
}

int store_function_get(store_t *s, const char *name, store_function_t *out, mf_error_t *err)
{
    return STORE__CALL(s, function_get, err, name, out, err);
}

int store_function_put(store_t *s, const store_function_t *f, mf_error_t *err)
{
    return STORE__CALL(s, function_put, err, f, err);
}

int store_function_delete(store_t *s, const char *name, mf_error_t *err)
{
    return STORE__CALL(s, function_delete, err, name, err);
}

int store_function_list(store_t *s, store_function_t **out, size_t *count, mf_error_t *err)
{
    return STORE__CALL(s, function_list, err, out, count, err);
}

int store_code_refs(store_t *s, const char *code_sha256, int64_t *count, mf_error_t *err)
{
    return STORE__CALL(s, code_refs, err, code_sha256, count, err);
}

bool store_keeps_code(store_t *s)
{
    return s->be->code_put != NULL;
}

int store_code_put(store_t *s, const char *sha256, const void *zip, size_t len,
                   mf_error_t *err)
{
    return STORE__CALL(s, code_put, err, sha256, zip, len, err);
}

int store_code_get(store_t *s, const char *sha256, buf_t *out, mf_error_t *err)
{
    return STORE__CALL(s, code_get, err, sha256, out, err);
}

int store_code_forget(store_t *s, const char *sha256, mf_error_t *err)
{
    return STORE__CALL(s, code_forget, err, sha256, err);
}

int store_records_put(store_t *s, const store_record_t *recs, size_t count, mf_error_t *err)
{
    return STORE__CALL(s, records_put, err, recs, count, err);
}

int store_records_write(store_t *s, const store_record_t *recs, size_t count, mf_error_t *err)
{
    return STORE__CALL(s, records_write, err, recs, count, err);
}

int store_record_get(store_t *s, const char *request_id, store_record_t *out, mf_error_t *err)
{
    return STORE__CALL(s, record_get, err, request_id, out, err);
}

int store_records_find(store_t *s, const store_record_filter_t *f, store_record_t **out,
                       size_t *count, bool *more, store_record_cursor_t *next, mf_error_t *err)
{
    return STORE__CALL(s, records_find, err, f, out, count, more, next, err);
}

int store_records_list(store_t *s, const char *function, const char *status, int limit,
                       store_record_t **out, size_t *count, mf_error_t *err)
{
    store_record_filter_t f = STORE_RECORD_FILTER_INIT;
    f.function = function;
    f.status = status;
    f.limit = limit;
    bool more;
    return store_records_find(s, &f, out, count, &more, NULL, err);
}

int store_function_purge_write(store_t *s, const char *function, int64_t *records,
                               int64_t *lines, mf_error_t *err)
{
    return STORE__CALL(s, function_purge_write, err, function, records, lines, err);
}

int store_prune_write(store_t *s, int64_t before_ms, int64_t max_bytes, int batch,
                      store_prune_t *out, mf_error_t *err)
{
    return STORE__CALL(s, prune_write, err, before_ms, max_bytes, batch, out, err);
}

int store_logs_put(store_t *s, const store_log_t *lines, size_t count, mf_error_t *err)
{
    return STORE__CALL(s, logs_put, err, lines, count, err);
}

int store_logs_write(store_t *s, const store_log_t *lines, size_t count, mf_error_t *err)
{
    return STORE__CALL(s, logs_write, err, lines, count, err);
}

int store_logs_list(store_t *s, const char *function, const char *request_id, int64_t since_ms,
                    int64_t after_id, int limit, store_log_t **out, size_t *count,
                    mf_error_t *err)
{
    return STORE__CALL(s, logs_list, err, function, request_id, since_ms, after_id, limit, out,
                       count, err);
}

int store_volume_add(store_t *s, const store_volume_t *v, mf_error_t *err)
{
    return STORE__CALL(s, volume_add, err, v, err);
}

int store_volume_get(store_t *s, const char *name, store_volume_t *out, mf_error_t *err)
{
    return STORE__CALL(s, volume_get, err, name, out, err);
}

int store_volume_list(store_t *s, store_volume_t **out, size_t *count, mf_error_t *err)
{
    return STORE__CALL(s, volume_list, err, out, count, err);
}

int store_usage_storage(store_t *s, int64_t at_ms, int64_t interval_ms,
                        const store_storage_t *kv, size_t nkv, const store_storage_t *volumes,
                        size_t nvolumes, mf_error_t *err)
{
    int64_t hour = (at_ms - 1) - (at_ms - 1) % 3600000;
    int claimed = 0;
    /* Samples older than a day cannot come again: they go. */
    int r = STORE__CALL(s, storage_claim, err, at_ms - 86400000, true, NULL, err);
    if (r == 0 && nkv)
        r = STORE__CALL(s, storage_claim, err, at_ms, false, &claimed, err);
    for (size_t i = 0; r == 0 && claimed && i < nkv; i++)
        r = STORE__CALL(s, storage_add, err, kv[i].tenant, kv[i].name, hour,
                        kv[i].bytes * interval_ms, (int64_t)0, err);
    for (size_t i = 0; r == 0 && i < nvolumes; i++)
        r = STORE__CALL(s, storage_add, err, volumes[i].tenant, volumes[i].name, hour, (int64_t)0,
                        volumes[i].bytes * interval_ms, err);
    return r;
}

int store_usage_put(store_t *s, const store_usage_t *u, mf_error_t *err)
{
    return STORE__CALL(s, usage_put, err, u, err);
}

int store_usage_list(store_t *s, int64_t from_ms, int64_t to_ms, store_usage_t **out,
                     size_t *count, mf_error_t *err)
{
    *out = NULL;
    *count = 0;
    return STORE__CALL(s, usage_list, err, from_ms, to_ms, out, count, err);
}

int store_volume_delete(store_t *s, const char *name, mf_error_t *err)
{
    return STORE__CALL(s, volume_delete, err, name, err);
}

int store_url_put(store_t *s, const store_url_t *u, mf_error_t *err)
{
    return STORE__CALL(s, url_put, err, u, err);
}

int store_url_delete(store_t *s, const char *function, mf_error_t *err)
{
    return STORE__CALL(s, url_delete, err, function, err);
}

int store_url_list(store_t *s, store_url_t **out, size_t *count, mf_error_t *err)
{
    return STORE__CALL(s, url_list, err, out, count, err);
}

/* ---- what the calls return ---------------------------------------------- */

void store_function_clear(store_function_t *f)
{
    if (!f)
        return;
    free(f->config_json);
    memset(f, 0, sizeof *f);
}

void store_function_list_free(store_function_t *list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        store_function_clear(&list[i]);
    free(list);
}

void store_record_clear(store_record_t *r)
{
    if (!r)
        return;
    free(r->error_type);
    free(r->error_message);
    free(r->egress_json);
    free(r->event);
    free(r->result);
    free(r->redact);
    r->error_type = r->error_message = r->egress_json = NULL;
    r->event = r->result = r->redact = NULL;
}

void store_record_list_free(store_record_t *list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        store_record_clear(&list[i]);
    free(list);
}

int store_logs_list_remote(store_t *s, const char *function, const char *node, int64_t after_id,
                           int64_t last_id, int limit, store_log_t **out, size_t *count,
                           mf_error_t *err)
{
    *out = NULL;
    *count = 0;
    return STORE__CALL(s, logs_list_remote, err, function, node, after_id, last_id, limit, out,
                       count, err);
}

int store_logs_last_id(store_t *s, int64_t *out, mf_error_t *err)
{
    *out = 0;
    return STORE__CALL(s, logs_last_id, err, out, err);
}

void store_log_list_free(store_log_t *list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(list[i].message);
    free(list);
}

void store_url_list_free(store_url_t *list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(list[i].config_json);
    free(list);
}
