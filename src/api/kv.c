/* The key-value stores over HTTP (docs/state.md): /v1/kv/… outside, and
 * the same per-store routes inside a function at /mayfly/v1/kv/… with the
 * permission kv:STORE. Reads are answered once the KV service has read
 * (at once on SQLite, from a reader thread on PostgreSQL); writes once
 * the KV writer has them on disk. Either way the answer may come after
 * the client has gone: the HTTP server then drops it. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/cleanup.h"
#include "core/clock.h"
#include "core/codec.h"
#include "core/json.h"
#include "core/xalloc.h"
#include "exec/exec.h"
#include "state/kv.h"

/* Bodies of incr: {"by": N, "ttl": S}. */
#define INCR_BODY_MAX 4096
/* A batch body above this is parsed on the thread pool, not the loop. */
#define BATCH_PARSE_INLINE_MAX (64u << 10)

/* Answers a failure of the KV service with the status its errno means
 * (store/kv.h). */
static void kv_fail(http_request_t *req, int r, const mf_error_t *err)
{
    const char *msg = err && err->msg[0] ? err->msg : "unknown error";
    switch (r) {
    case -ECANCELED: http_respond_error(req, 412, "precondition_failed", "%s", msg); return;
    case -EDOM:
    case -ERANGE: http_respond_error(req, 409, "conflict", "%s", msg); return;
    case -ENOSPC: http_respond_error(req, 507, "insufficient_storage", "%s", msg); return;
    default: api_respond_failure(req, r, err); return;
    }
}

/* A call from inside a function counts on its record (kv_ops). */
static void kv_count_op(http_request_t *req)
{
    exec_caller_t caller;
    if (api__inside(req, &caller) && caller.kv_ops)
        (*caller.kv_ops)++;
}

/* The store of the path, checked; false when the request was answered. */
static bool kv_store_param(http_request_t *req)
{
    mf_error_t err = MF_ERROR_INIT;
    if (state_kv_check_store("store", req->params[0], &err) < 0) {
        kv_fail(req, -EINVAL, &err);
        return false;
    }
    return true;
}

/* The store and key of the path, checked. */
static bool kv_key_params(http_request_t *req)
{
    if (!kv_store_param(req))
        return false;
    mf_error_t err = MF_ERROR_INIT;
    if (state_kv_check_key("key", req->params[1], strlen(req->params[1]), &err) < 0) {
        kv_fail(req, -EINVAL, &err);
        return false;
    }
    return true;
}

static void kv_add_version_header(http_request_t *req, int64_t version)
{
    http_header_add(req, "ETag", "\"%" PRId64 "\"", version);
}

/* If-Match: "N" (or N): the version a write asks for; 0 when absent. */
static int kv_if_match(http_request_t *req, int64_t *version, mf_error_t *err)
{
    *version = 0;
    const char *v = http_request_header(req, "If-Match");
    if (!v)
        return 0;
    size_t len = strlen(v);
    if (len >= 2 && v[0] == '"' && v[len - 1] == '"') {
        v++;
        len -= 2;
    }
    int64_t n = 0;
    bool ok = len >= 1 && len <= 18;
    for (size_t i = 0; ok && i < len; i++) {
        ok = v[i] >= '0' && v[i] <= '9';
        n = n * 10 + (v[i] - '0');
    }
    if (!ok || n < 1)
        return mf_error_plain(err, EINVAL,
                              "If-Match: must be a version as the ETag gives it, e.g. \"12\"");
    *version = n;
    return 0;
}

/* If-None-Match: * (create only). */
static int kv_if_none_match(http_request_t *req, bool *absent, mf_error_t *err)
{
    *absent = false;
    const char *v = http_request_header(req, "If-None-Match");
    if (!v)
        return 0;
    if (strcmp(v, "*"))
        return mf_error_plain(err, EINVAL,
                              "If-None-Match: only * is understood (write only if the key "
                              "does not exist)");
    *absent = true;
    return 0;
}

/* The TTL of ?ttl= or X-Mayfly-TTL (0: none). */
static int kv_ttl(http_request_t *req, int64_t *ttl_s, mf_error_t *err)
{
    *ttl_s = 0;
    buf_t q = BUF_INIT;
    bool in_query = http_request_query(req, "ttl", &q);
    const char *header = http_request_header(req, "X-Mayfly-TTL");
    int r = 0;
    int64_t a = 0, b = 0;
    if (in_query)
        r = state_kv_parse_ttl("ttl", q.data, &a, err);
    if (r == 0 && header)
        r = state_kv_parse_ttl("X-Mayfly-TTL", header, &b, err);
    if (r == 0 && in_query && header && a != b)
        r = mf_error_plain(err, EINVAL, "ttl: ?ttl= and X-Mayfly-TTL disagree; give one");
    buf_release(&q);
    if (r == 0)
        *ttl_s = in_query ? a : b;
    return r;
}

/* ---- one key ------------------------------------------------------------ */

static void on_put_done(void *ud, int r, const state_kv_result_t *res, const mf_error_t *err)
{
    http_request_t *req = ud;
    if (r < 0) {
        kv_fail(req, r, err);
        return;
    }
    kv_add_version_header(req, res->versions[0]);
    cleanup_json json_t *out = json_pack("{sI}", "version", (json_int_t)res->versions[0]);
    http_respond_json(req, 200, out);
}

static void handle_put(http_request_t *req, api_ctx_t *ctx)
{
    kv_count_op(req);
    if (!kv_key_params(req))
        return;
    mf_error_t err = MF_ERROR_INIT;
    int64_t ttl_s = 0, if_version = 0;
    bool if_absent = false;
    const char *ctype = http_request_header(req, "Content-Type");
    int r = kv_ttl(req, &ttl_s, &err);
    if (r == 0)
        r = kv_if_match(req, &if_version, &err);
    if (r == 0)
        r = kv_if_none_match(req, &if_absent, &err);
    if (r == 0 && if_version && if_absent)
        r = mf_error_plain(&err, EINVAL, "If-Match and If-None-Match contradict each other");
    if (r == 0 && ctype)
        r = state_kv_check_content_type("Content-Type", ctype, strlen(ctype), &err);
    size_t max = state_kv_config(ctx->kv)->max_value_bytes;
    if (r == 0 && req->body.len > max)
        r = mf_error_plain(&err, EFBIG,
                           "the value is %zu bytes, over the most a value may be (%zu)",
                           req->body.len, max);
    if (r < 0) {
        kv_fail(req, r, &err);
        return;
    }
    store_kv_op_t *op = xcalloc(1, sizeof *op);
    op->kind = STORE_KV_PUT;
    op->key = xstrdup(req->params[1]);
    op->key_len = strlen(op->key);
    op->value = buf_detach(&req->body, &op->value_len);
    op->content_type = ctype ? xstrdup(ctype) : NULL;
    op->ttl_ms = ttl_s * 1000;
    op->if_version = if_version;
    op->if_absent = if_absent;
    if ((r = state_kv_write(ctx->kv, req->params[0], op, 1, on_put_done, req, &err)) < 0)
        kv_fail(req, r, &err);
}

static void on_get(void *ud, int r, state_kv_answer_t *a, const mf_error_t *err)
{
    http_request_t *req = ud;
    if (r < 0) {
        kv_fail(req, r, err);
        return;
    }
    store_kv_item_t *it = &a->item;
    kv_add_version_header(req, it->version);
    if (it->expires_ms) {
        char when[40];
        clock_format_iso8601(it->expires_ms, when, sizeof when);
        http_header_add(req, "X-Mayfly-Expires", "%s", when);
    }
    /* The value's memory goes out as it is, without a copy. */
    buf_t body = {it->value, it->value_len, it->value_len + 1};
    it->value = NULL;
    http_respond_buf(req, 200, it->content_type, &body);
}

static void handle_get(http_request_t *req, api_ctx_t *ctx)
{
    kv_count_op(req);
    if (!kv_key_params(req))
        return;
    state_kv_read(ctx->kv,
                  &(state_kv_query_t){.kind = STATE_KV_READ_GET,
                                      .store = req->params[0],
                                      .key = req->params[1],
                                      .key_len = strlen(req->params[1])},
                  on_get, req);
}

static void on_delete_done(void *ud, int r, const state_kv_result_t *res, const mf_error_t *err)
{
    http_request_t *req = ud;
    if (r < 0)
        kv_fail(req, r, err);
    else
        http_respond(req, 204, NULL, NULL, 0);
}

static void handle_delete(http_request_t *req, api_ctx_t *ctx)
{
    kv_count_op(req);
    if (!kv_key_params(req))
        return;
    mf_error_t err = MF_ERROR_INIT;
    int64_t if_version = 0;
    int r = kv_if_match(req, &if_version, &err);
    if (r < 0) {
        kv_fail(req, r, &err);
        return;
    }
    store_kv_op_t *op = xcalloc(1, sizeof *op);
    op->kind = STORE_KV_DELETE;
    op->key = xstrdup(req->params[1]);
    op->key_len = strlen(op->key);
    op->if_version = if_version;
    if ((r = state_kv_write(ctx->kv, req->params[0], op, 1, on_delete_done, req, &err)) < 0)
        kv_fail(req, r, &err);
}

static void on_incr_done(void *ud, int r, const state_kv_result_t *res, const mf_error_t *err)
{
    http_request_t *req = ud;
    if (r < 0) {
        kv_fail(req, r, err);
        return;
    }
    kv_add_version_header(req, res->version);
    cleanup_json json_t *out =
        json_pack("{sIsI}", "value", (json_int_t)res->value, "version", (json_int_t)res->version);
    http_respond_json(req, 200, out);
}

/* {"by": N, "ttl": S}, both optional; an empty body is {}. */
static int parse_incr(const buf_t *body, int64_t *by, int64_t *ttl_s, mf_error_t *err)
{
    *by = 1;
    *ttl_s = 0;
    if (!body->len)
        return 0;
    json_error_t jerr;
    cleanup_json json_t *doc = json_loadb(body->data, body->len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc)
        return mf_error_plain(err, EINVAL, "the body is not JSON: %s", jerr.text);
    if (!json_is_object(doc))
        return mf_error_plain(err, EINVAL, "the body must be a JSON object like {\"by\": 1}");
    const char *name;
    json_t *v;
    json_object_foreach(doc, name, v)
    {
        if (!strcmp(name, "by")) {
            if (!json_is_integer(v))
                return mf_error_plain(err, EINVAL, "by: must be a whole number (int64)");
            *by = json_integer_value(v);
        } else if (!strcmp(name, "ttl")) {
            if (json_is_null(v))
                continue;
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > STATE_KV_TTL_MAX)
                return mf_error_plain(err, EINVAL, "ttl: must be whole seconds from 1 to %d",
                                      STATE_KV_TTL_MAX);
            *ttl_s = json_integer_value(v);
        } else {
            char shown[80];
            return mf_error_plain(err, EINVAL, "%s: unknown field (incr takes by and ttl)",
                                  mf_error_show(name, 40, shown, sizeof shown));
        }
    }
    return 0;
}

static void handle_incr(http_request_t *req, api_ctx_t *ctx)
{
    kv_count_op(req);
    if (!kv_key_params(req))
        return;
    mf_error_t err = MF_ERROR_INIT;
    int64_t by = 1, ttl_s = 0;
    int r = parse_incr(&req->body, &by, &ttl_s, &err);
    if (r == 0)
        r = state_kv_incr(ctx->kv, req->params[0], req->params[1], strlen(req->params[1]), by,
                          ttl_s, on_incr_done, req, &err);
    if (r < 0)
        kv_fail(req, r, &err);
}

/* ---- a store -------------------------------------------------------------- */

static json_t *kv_time_or_null(int64_t ms)
{
    if (!ms)
        return json_null();
    char when[40];
    clock_format_iso8601(ms, when, sizeof when);
    return json_string(when);
}

static void on_list(void *ud, int r, state_kv_answer_t *a, const mf_error_t *err)
{
    http_request_t *req = ud;
    if (r < 0) {
        kv_fail(req, r, err);
        return;
    }
    const store_kv_item_t *items = a->items;
    size_t n = a->count;
    json_t *keys = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(keys,
                              json_pack("{s:s%, s:I, s:I, s:o}", "key", (const char *)items[i].key,
                                        items[i].key_len, "version", (json_int_t)items[i].version,
                                        "size", (json_int_t)items[i].size, "expires",
                                        kv_time_or_null(items[i].expires_ms)));
    json_t *next = json_null();
    if (a->more && n) {
        buf_t c = BUF_INIT;
        store_kv_cursor_format(&c, items[n - 1].key, items[n - 1].key_len);
        json_decref(next);
        next = json_stringn(c.data, c.len);
        buf_release(&c);
    }
    cleanup_json json_t *out = json_pack("{s:o, s:o}", "keys", keys, "next", next);
    http_respond_json(req, 200, out);
}

static void handle_list(http_request_t *req, api_ctx_t *ctx)
{
    kv_count_op(req);
    if (!kv_store_param(req))
        return;
    mf_error_t err = MF_ERROR_INIT;
    cleanup_buf buf_t prefix = BUF_INIT, v = BUF_INIT, after = BUF_INIT;
    int limit = STATE_KV_LIST_DEFAULT;
    int r = 0;
    if (http_request_query(req, "prefix", &prefix) && prefix.len > STORE_KV_KEY_MAX)
        r = mf_error_plain(&err, EINVAL, "prefix: at most %d bytes", STORE_KV_KEY_MAX);
    if (r == 0 && http_request_query(req, "limit", &v)) {
        char *end;
        long n = strtol(v.data, &end, 10);
        if (!v.len || *end || v.data[0] == ' ' || v.data[0] == '+' || n < 1 ||
            n > STATE_KV_LIST_MAX)
            r = mf_error_plain(&err, EINVAL, "limit: must be a number from 1 to %d",
                               STATE_KV_LIST_MAX);
        limit = (int)n;
    }
    buf_reset(&v);
    if (r == 0 && http_request_query(req, "cursor", &v) && v.len &&
        store_kv_cursor_parse(v.data, v.len, &after) < 0)
        r = mf_error_plain(&err, EINVAL,
                           "cursor: not a cursor this server gave (pass \"next\" as it came)");
    if (r < 0) {
        kv_fail(req, r, &err);
        return;
    }
    state_kv_read(ctx->kv,
                  &(state_kv_query_t){.kind = STATE_KV_READ_LIST,
                                      .store = req->params[0],
                                      .prefix = prefix.data,
                                      .prefix_len = prefix.len,
                                      .after = after.data,
                                      .after_len = after.len,
                                      .limit = limit},
                  on_list, req);
}

static void on_stats(void *ud, int r, state_kv_answer_t *a, const mf_error_t *err)
{
    http_request_t *req = ud;
    if (r < 0) {
        kv_fail(req, r, err);
        return;
    }
    const state_kv_stats_t *s = &a->stats;
    cleanup_json json_t *out = json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "store", tenant_local(req->params[0]), "keys",
        (json_int_t)s->keys, "bytes", (json_int_t)s->bytes, "reads", (json_int_t)s->reads,
        "writes", (json_int_t)s->writes, "max_bytes", (json_int_t)s->max_bytes, "max_keys",
        (json_int_t)s->max_keys);
    http_respond_json(req, 200, out);
}

static void handle_stats(http_request_t *req, api_ctx_t *ctx)
{
    kv_count_op(req);
    if (!kv_store_param(req))
        return;
    state_kv_read(ctx->kv,
                  &(state_kv_query_t){.kind = STATE_KV_READ_STATS, .store = req->params[0]},
                  on_stats, req);
}

typedef struct stores_wait {
    http_request_t *req;
    api_ctx_t *ctx;
} stores_wait_t;

static void on_stores(void *ud, int r, state_kv_answer_t *a, const mf_error_t *err)
{
    stores_wait_t w = *(stores_wait_t *)ud;
    http_request_t *req = w.req;
    free(ud);
    if (r < 0) {
        kv_fail(req, r, err);
        return;
    }
    api_who_t who;
    api__who(req, w.ctx, &who);
    json_t *stores = json_array();
    for (size_t i = 0; i < a->nstores; i++) {
        if (!api__sees(&who, a->stores[i].name))
            continue;
        char tenant[TENANT_MAX + 1];
        tenant_of(a->stores[i].name, tenant);
        json_array_append_new(stores, json_pack("{s:s, s:s, s:I, s:I}", "name",
                                                tenant_local(a->stores[i].name), "tenant", tenant,
                                                "keys", (json_int_t)a->stores[i].keys, "bytes",
                                                (json_int_t)a->stores[i].bytes));
    }
    cleanup_json json_t *out = json_pack("{s:o}", "stores", stores);
    http_respond_json(req, 200, out);
}

static void handle_stores(http_request_t *req, api_ctx_t *ctx)
{
    stores_wait_t *w = xmalloc(sizeof *w);
    *w = (stores_wait_t){ req, ctx };
    state_kv_read(ctx->kv, &(state_kv_query_t){.kind = STATE_KV_READ_STORES}, on_stores, w);
}

static void handle_drop(http_request_t *req, api_ctx_t *ctx)
{
    if (!kv_store_param(req))
        return;
    mf_error_t err = MF_ERROR_INIT;
    int r = state_kv_drop(ctx->kv, req->params[0], on_delete_done, req, &err);
    if (r < 0)
        kv_fail(req, r, &err);
}

/* ---- batches -------------------------------------------------------------- */

typedef struct batch_job {
    uv_work_t work;
    http_request_t *req;
    api_ctx_t *ctx;
    buf_t body;
    size_t max_value;
    state_kv_batch_t batch;
    int r;
    mf_error_t err;
} batch_job_t;

static void on_batch_written(void *ud, int r, const state_kv_result_t *res, const mf_error_t *err)
{
    http_request_t *req = ud;
    if (r < 0) {
        kv_fail(req, r, err);
        return;
    }
    json_t *versions = json_array();
    for (size_t i = 0; i < res->n; i++)
        json_array_append_new(versions,
                              res->versions[i] ? json_integer(res->versions[i]) : json_null());
    cleanup_json json_t *out = json_pack("{s:o}", "versions", versions);
    http_respond_json(req, 200, out);
}

static void on_batch_get(void *ud, int r, state_kv_answer_t *a, const mf_error_t *err)
{
    http_request_t *req = ud;
    if (r < 0) {
        kv_fail(req, r, err);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < a->count; i++) {
        store_kv_item_t *it = &a->items[i];
        json_t *o =
            json_pack("{s:s%, s:b}", "key", (const char *)it->key, it->key_len, "found", it->found);
        if (it->found) {
            buf_t enc = BUF_INIT;
            codec_base64_encode(&enc, it->value, it->value_len);
            json_object_set_new(o, "value_base64", json_stringn(enc.data, enc.len));
            json_object_set_new(o, "content_type", json_string(it->content_type));
            json_object_set_new(o, "version", json_integer(it->version));
            buf_release(&enc);
        } else {
            json_object_set_new(o, "value_base64", json_null());
            json_object_set_new(o, "content_type", json_null());
            json_object_set_new(o, "version", json_null());
        }
        json_array_append_new(list, o);
    }
    cleanup_json json_t *out = json_pack("{s:o}", "items", list);
    http_respond_json(req, 200, out);
}

static void batch_get(http_request_t *req, api_ctx_t *ctx, state_kv_batch_t *b)
{
    state_kv_read(ctx->kv,
                  &(state_kv_query_t){.kind = STATE_KV_READ_GET_MANY,
                                      .store = req->params[0],
                                      .keys = b->keys,
                                      .nkeys = b->nkeys},
                  on_batch_get, req);
}

/* Runs the parsed batch and frees the job. */
static void batch_run(batch_job_t *j)
{
    http_request_t *req = j->req;
    if (j->r < 0) {
        kv_fail(req, j->r, &j->err);
    } else if (j->batch.is_get) {
        batch_get(req, j->ctx, &j->batch);
    } else {
        mf_error_t err = MF_ERROR_INIT;
        store_kv_op_t *ops = steal_pointer(&j->batch.ops);
        int r = state_kv_write(j->ctx->kv, req->params[0], ops, j->batch.nops, on_batch_written,
                               req, &err);
        j->batch.nops = 0;
        if (r < 0)
            kv_fail(req, r, &err);
    }
    state_kv_batch_clear(&j->batch);
    buf_release(&j->body);
    free(j);
}

static void batch_parse(uv_work_t *w)
{
    batch_job_t *j = w->data;
    j->r = state_kv_batch_parse(j->body.data, j->body.len, j->max_value, &j->batch, &j->err);
}

static void batch_parsed(uv_work_t *w, int status)
{
    batch_job_t *j = w->data;
    if (status < 0 && j->r == 0)
        j->r = mf_error_plain(&j->err, EIO, "the batch was not parsed: %s", uv_strerror(status));
    batch_run(j);
}

static void handle_batch(http_request_t *req, api_ctx_t *ctx)
{
    kv_count_op(req);
    if (!kv_store_param(req))
        return;
    batch_job_t *j = xcalloc(1, sizeof *j);
    j->req = req;
    j->ctx = ctx;
    j->max_value = state_kv_config(ctx->kv)->max_value_bytes;
    j->body = req->body;
    buf_init(&req->body, 0);
    if (j->body.len <= BATCH_PARSE_INLINE_MAX) {
        batch_parse(&(uv_work_t){.data = j});
        batch_run(j);
        return;
    }
    /* Up to megabytes of JSON with base64 in it: parsed off the loop. */
    j->work.data = j;
    int r = uv_queue_work(ctx->loop, &j->work, batch_parse, batch_parsed);
    if (r < 0) {
        j->r = mf_error_plain(&j->err, -r, "the batch cannot be parsed now: %s", uv_strerror(r));
        batch_run(j);
    }
}

void api__kv_register(http_router_t *router, api_ctx_t *ctx)
{
    if (!ctx->kv)
        return;
    size_t max_value = state_kv_config(ctx->kv)->max_value_bytes;
    /* A batch carries up to 100 values, base64 (4/3) or escaped text: room
     * for two of the largest, and at least 8 MiB. */
    size_t batch_max = 2 * max_value + (64u << 10);
    if (batch_max < (8u << 20))
        batch_max = 8u << 20;
    /* The literal segments (_stats, _batch) before {key*}, which would
     * match them too: the router takes the first route that matches. */
    api__route_both(router, ctx, HTTP_GET, "/v1/kv/{store}/_stats", handle_stats, 0, FN_PERM_KV, 0);
    api__route_both(router, ctx, HTTP_POST, "/v1/kv/{store}/_batch", handle_batch, batch_max,
                    FN_PERM_KV, 0);
    api__route_both(router, ctx, HTTP_GET, "/v1/kv/{store}", handle_list, 0, FN_PERM_KV, 0);
    api__route_both(router, ctx, HTTP_PUT, "/v1/kv/{store}/{key*}", handle_put, max_value,
                    FN_PERM_KV, 0);
    api__route_both(router, ctx, HTTP_GET, "/v1/kv/{store}/{key*}", handle_get, 0, FN_PERM_KV, 0);
    api__route_both(router, ctx, HTTP_DELETE, "/v1/kv/{store}/{key*}", handle_delete, 0, FN_PERM_KV,
                    0);
    api__route_both(router, ctx, HTTP_POST, "/v1/kv/{store}/{key*}/incr", handle_incr,
                    INCR_BODY_MAX, FN_PERM_KV, 0);
    /* Across stores: outside only. */
    api__route(router, ctx, HTTP_GET, "/v1/kv", handle_stores, 0, false);
    api__route(router, ctx, HTTP_DELETE, "/v1/kv/{store}", handle_drop, 0, false);
}
