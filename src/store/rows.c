/* The columns of functions, records, log lines, volumes and function
 * URLs, mapped to and from store.h's structs once for both backends
 * (store/rows.h). */
#include "store/rows.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/xalloc.h"

void store__fill_function(const store__row_t *row, void *item)
{
    store_function_t *f = item;
    void *c = row->ctx;
    memset(f, 0, sizeof *f);
    row->copy_text(c, 0, f->name, sizeof f->name);
    f->version = row->int64(c, 1);
    row->copy_text(c, 2, f->code_sha256, sizeof f->code_sha256);
    f->code_size = row->int64(c, 3);
    f->config_json = row->dup_text(c, 4);
    if (!f->config_json)
        f->config_json = xstrdup("{}");
    f->created_ms = row->int64(c, 5);
    f->updated_ms = row->int64(c, 6);
}

void store__fill_record(const store__row_t *row, void *item)
{
    store_record_t *rec = item;
    void *c = row->ctx;
    memset(rec, 0, sizeof *rec);
    row->copy_text(c, 0, rec->request_id, sizeof rec->request_id);
    row->copy_text(c, 1, rec->function, sizeof rec->function);
    rec->version = row->int64(c, 2);
    row->copy_text(c, 3, rec->status, sizeof rec->status);
    rec->start_ms = row->int64(c, 4);
    rec->duration_ms = row->real(c, 5);
    rec->billed_ms = row->int64(c, 6);
    rec->memory_mb = (int)row->int64(c, 7);
    rec->max_rss_kb = row->int64(c, 8);
    rec->cpu_ms = row->int64(c, 9);
    rec->cold_start = (int)row->int64(c, 10);
    rec->init_ms = row->real(c, 11);
    rec->error_type = row->dup_text(c, 12);
    rec->error_message = row->dup_text(c, 13);
    rec->attempts = (int)row->int64(c, 14);
    rec->egress_json = row->dup_text(c, 15);
    row->copy_text(c, 16, rec->replay_of, sizeof rec->replay_of);
    row->copy_text(c, 17, rec->caller_request_id, sizeof rec->caller_request_id);
    rec->kv_ops = row->int64(c, 18);
    row->copy_text(c, 19, rec->trigger, sizeof rec->trigger);
    rec->egress_bytes = row->int64(c, 20);
    rec->log_bytes = row->int64(c, 21);
    rec->event = row->dup_blob(c, 22, &rec->event_len);
    rec->event_bytes = row->int64(c, 23);
    rec->event_flags = (int)row->int64(c, 24);
    rec->result = row->dup_blob(c, 25, &rec->result_len);
    rec->result_bytes = row->int64(c, 26);
    rec->result_flags = (int)row->int64(c, 27);
    row->copy_text(c, 28, rec->tenant_id, sizeof rec->tenant_id);
    row->copy_text(c, 29, rec->key_id, sizeof rec->key_id);
    rec->prewarmed = (int)row->int64(c, 30);
    rec->queue_ms = row->real(c, 31);
    rec->sandbox_ms = row->real(c, 32);
}

void store__fill_log(const store__row_t *row, void *item)
{
    store_log_t *l = item;
    void *c = row->ctx;
    memset(l, 0, sizeof *l);
    l->id = row->int64(c, 0);
    l->time_ms = row->int64(c, 1);
    row->copy_text(c, 2, l->function, sizeof l->function);
    row->copy_text(c, 3, l->request_id, sizeof l->request_id);
    l->stream = (int)row->int64(c, 4);
    l->message = row->dup_blob(c, 5, &l->len);
    if (!l->message)
        l->message = xstrdup("");
}

void store_usage_of(const store_record_t *rec, store_usage_t *out)
{
    bool ran = strcmp(rec->status, "throttled") && strcmp(rec->status, "queued") &&
               strcmp(rec->status, "running");
    int64_t hour = rec->start_ms % 3600000;
    *out = (store_usage_t){ .hour_ms = rec->start_ms - (hour < 0 ? hour + 3600000 : hour) };
    tenant_of(rec->function, out->tenant);
    snprintf(out->function, sizeof out->function, "%s", tenant_local(rec->function));
    snprintf(out->tenant_id, sizeof out->tenant_id, "%s", rec->tenant_id);
    out->requests = ran;
    out->billed_ms = rec->billed_ms;
    out->mb_ms = (int64_t)rec->memory_mb * rec->billed_ms;
    out->cpu_ms = rec->cpu_ms;
    out->max_rss_kb = rec->max_rss_kb;
    out->egress_bytes = rec->egress_bytes;
    out->kv_ops = rec->kv_ops;
    out->log_bytes = rec->log_bytes;
}

void store_usage_add(store_usage_t *to, const store_usage_t *u, int sign)
{
    to->requests += sign * u->requests;
    to->billed_ms += sign * u->billed_ms;
    to->mb_ms += sign * u->mb_ms;
    to->cpu_ms += sign * u->cpu_ms;
    to->max_rss_kb += sign * u->max_rss_kb;
    to->egress_bytes += sign * u->egress_bytes;
    to->kv_ops += sign * u->kv_ops;
    to->log_bytes += sign * u->log_bytes;
    to->kv_byte_ms += sign * u->kv_byte_ms;
    to->volume_byte_ms += sign * u->volume_byte_ms;
}

double store_usage_gb_seconds(const store_usage_t *u)
{
    return (double)u->mb_ms / 1024.0 / 1000.0;
}

void store__fill_usage(const store__row_t *row, void *item)
{
    store_usage_t *u = item;
    void *c = row->ctx;
    memset(u, 0, sizeof *u);
    row->copy_text(c, 0, u->tenant, sizeof u->tenant);
    row->copy_text(c, 1, u->function, sizeof u->function);
    u->hour_ms = row->int64(c, 2);
    int64_t *q[] = { &u->requests, &u->billed_ms, &u->mb_ms,  &u->cpu_ms,
                     &u->max_rss_kb, &u->egress_bytes, &u->kv_ops, &u->log_bytes };
    for (int i = 0; i < 8; i++)
        *q[i] = row->int64(c, 3 + i);
    row->copy_text(c, 11, u->tenant_id, sizeof u->tenant_id);
    u->kv_byte_ms = row->int64(c, 12);
    u->volume_byte_ms = row->int64(c, 13);
}

void store__fill_volume(const store__row_t *row, void *item)
{
    store_volume_t *v = item;
    void *c = row->ctx;
    memset(v, 0, sizeof *v);
    row->copy_text(c, 0, v->name, sizeof v->name);
    v->size_mb = row->int64(c, 1);
    v->created_ms = row->int64(c, 2);
}

void store__fill_url(const store__row_t *row, void *item)
{
    store_url_t *u = item;
    void *c = row->ctx;
    memset(u, 0, sizeof *u);
    row->copy_text(c, 0, u->function, sizeof u->function);
    u->config_json = row->dup_text(c, 1);
    if (!u->config_json)
        u->config_json = xstrdup("{}");
    u->created_ms = row->int64(c, 2);
    u->updated_ms = row->int64(c, 3);
}

int store__no_function(mf_error_t *err, const char *name)
{
    return mf_error_plain(err, ENOENT, "function `%s` does not exist", name);
}

int store__function_moved_on(mf_error_t *err, const store_function_t *f)
{
    return mf_error_plain(err, ESTALE,
                          "function `%s` was changed meanwhile: the store has version %lld or "
                          "newer",
                          f->name, (long long)f->version);
}

int store__no_record(mf_error_t *err, const char *request_id)
{
    return mf_error_plain(err, ENOENT, "invocation `%s` does not exist", request_id);
}

int store__no_volume(mf_error_t *err, const char *name)
{
    return mf_error_plain(err, ENOENT, "no volume named %s", name);
}

int store__volume_exists(mf_error_t *err, const char *name)
{
    return mf_error_plain(err, EEXIST, "volume `%s` exists", name);
}

int store__no_url(mf_error_t *err, const char *function)
{
    return mf_error_plain(err, ENOENT, "function %s has no URL", function);
}

int store__url_without_function(mf_error_t *err, const char *function)
{
    return mf_error_plain(err, ENOENT, "no function named %s", function);
}

/* "" is "none" in the struct's fixed-size strings, NULL in the table. */
static const char *or_null(const char *s)
{
    return s[0] ? s : NULL;
}

int store__bind_function(const store__binder_t *b, const store_function_t *f)
{
    void *c = b->ctx;
    return b->text(c, 1, f->name) || b->int64(c, 2, f->version) ||
           b->text(c, 3, f->code_sha256) || b->int64(c, 4, f->code_size) ||
           b->text(c, 5, f->config_json ? f->config_json : "{}") ||
           b->int64(c, 6, f->created_ms) || b->int64(c, 7, f->updated_ms);
}

/* A time that may not be known (< 0): NULL then. */
static int bind_known(const store__binder_t *b, int i, double ms)
{
    return ms < 0 ? b->text(b->ctx, i, NULL) : b->real(b->ctx, i, ms);
}

int store__bind_record(const store__binder_t *b, const store_record_t *rec)
{
    void *c = b->ctx;
    return b->text(c, 1, rec->request_id) || b->text(c, 2, rec->function) ||
           b->int64(c, 3, rec->version) || b->text(c, 4, rec->status) ||
           b->int64(c, 5, rec->start_ms) || b->real(c, 6, rec->duration_ms) ||
           b->int64(c, 7, rec->billed_ms) || b->int64(c, 8, rec->memory_mb) ||
           b->int64(c, 9, rec->max_rss_kb) || b->int64(c, 10, rec->cpu_ms) ||
           b->int64(c, 11, rec->cold_start) || b->real(c, 12, rec->init_ms) ||
           b->text(c, 13, rec->error_type) || b->text(c, 14, rec->error_message) ||
           b->int64(c, 15, rec->attempts) || b->text(c, 16, rec->egress_json) ||
           b->text(c, 17, or_null(rec->replay_of)) ||
           b->text(c, 18, or_null(rec->caller_request_id)) || b->int64(c, 19, rec->kv_ops) ||
           b->text(c, 20, or_null(rec->trigger)) || b->int64(c, 21, rec->egress_bytes) ||
           b->int64(c, 22, rec->log_bytes) || b->blob(c, 23, rec->event, rec->event_len) ||
           b->int64(c, 24, rec->event_bytes) || b->int64(c, 25, rec->event_flags) ||
           b->blob(c, 26, rec->result, rec->result_len) || b->int64(c, 27, rec->result_bytes) ||
           b->int64(c, 28, rec->result_flags) || b->text(c, 29, rec->tenant_id) ||
           b->text(c, 30, rec->key_id[0] ? rec->key_id : NULL) ||
           b->int64(c, 31, rec->prewarmed) || bind_known(b, 32, rec->queue_ms) ||
           bind_known(b, 33, rec->sandbox_ms);
}

void store_record_filter_tenant(store_record_filter_t *f, const char *tenant)
{
    f->tenant_like[0] = f->tenant_unlike[0] = '\0';
    if (!tenant)
        return;
    /* A tenant is [a-z0-9-]: nothing in it is a LIKE wildcard. */
    if (!strcmp(tenant, TENANT_DEFAULT))
        snprintf(f->tenant_unlike, sizeof f->tenant_unlike, "%%%c%%", TENANT_SEP);
    else
        snprintf(f->tenant_like, sizeof f->tenant_like, "%.*s%c%%", TENANT_MAX, tenant,
                 TENANT_SEP);
}

int store__bind_find(const store__binder_t *b, const store_record_filter_t *f)
{
    void *c = b->ctx;
    int64_t upper = f->until_ms;
    if (f->after_set && f->after.start_ms < upper)
        upper = f->after.start_ms;
    /* A NULL is a NULL whatever the parameter's type. */
    int r = b->text(c, 1, f->function) || b->text(c, 2, f->status) ||
            b->text(c, 3, f->error_type) ||
            (f->cold >= 0 ? b->int64(c, 4, f->cold ? 1 : 0) : b->text(c, 4, NULL)) ||
            b->real(c, 5, f->min_duration_ms) || b->int64(c, 6, f->since_ms) ||
            b->int64(c, 7, upper);
    if (r)
        return r;
    if (f->after_set)
        r = b->int64(c, 8, f->after.start_ms) || b->int64(c, 9, f->after.rowid);
    else
        r = b->text(c, 8, NULL) || b->text(c, 9, NULL);
    return r || b->int64(c, 10, (int64_t)f->limit + 1) || b->text(c, 11, f->trigger) ||
           b->text(c, 12, f->tenant_like[0] ? f->tenant_like : NULL) ||
           b->text(c, 13, f->tenant_unlike[0] ? f->tenant_unlike : NULL) ||
           b->text(c, 14, f->tenant_id);
}

int store__bind_log(const store__binder_t *b, const store_log_t *l)
{
    void *c = b->ctx;
    /* A line's bytes are never NULL, even when there are none. */
    return b->int64(c, 1, l->time_ms) || b->text(c, 2, l->function) ||
           b->text(c, 3, l->request_id) || b->int64(c, 4, l->stream) ||
           b->blob(c, 5, l->message ? l->message : "", l->len);
}

int store__bind_volume(const store__binder_t *b, const void *item)
{
    const store_volume_t *v = item;
    void *c = b->ctx;
    return b->text(c, 1, v->name) || b->int64(c, 2, v->size_mb) || b->int64(c, 3, v->created_ms);
}

int store__bind_storage(const store__binder_t *b, const void *item)
{
    const store__storage_row_t *r = item;
    void *c = b->ctx;
    return b->text(c, 1, r->tenant) || b->text(c, 2, r->name) || b->int64(c, 3, r->hour_ms) ||
           b->int64(c, 4, r->kv_byte_ms) || b->int64(c, 5, r->volume_byte_ms);
}

int store__bind_usage(const store__binder_t *b, const void *item)
{
    const store_usage_t *u = item;
    void *c = b->ctx;
    return b->text(c, 1, u->tenant) || b->text(c, 2, u->function) || b->text(c, 3, u->tenant_id) ||
           b->int64(c, 4, u->hour_ms) || b->int64(c, 5, u->requests) ||
           b->int64(c, 6, u->billed_ms) || b->int64(c, 7, u->mb_ms) || b->int64(c, 8, u->cpu_ms) ||
           b->int64(c, 9, u->max_rss_kb) || b->int64(c, 10, u->egress_bytes) ||
           b->int64(c, 11, u->kv_ops) || b->int64(c, 12, u->log_bytes);
}

int store__bind_at(const store__binder_t *b, const void *item)
{
    return b->int64(b->ctx, 1, *(const int64_t *)item);
}

int store__bind_url(const store__binder_t *b, const void *item)
{
    const store_url_t *u = item;
    void *c = b->ctx;
    return b->text(c, 1, u->function) || b->text(c, 2, u->config_json) ||
           b->int64(c, 3, u->created_ms) || b->int64(c, 4, u->updated_ms);
}
