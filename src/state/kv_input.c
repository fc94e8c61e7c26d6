/* What the key-value API accepts from outside: store names, keys, content
 * types, TTLs, and the body of a _batch request. Pure functions of their
 * input, so the batch parser can be fuzzed (tests/fuzz/fuzz_kv_batch.c). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/codec.h"
#include "core/json.h"
#include "core/utf8.h"
#include "core/xalloc.h"
#include "registry/registry.h"
#include "state/kv.h"

int state_kv_check_store(const char *what, const char *name, mf_error_t *err)
{
    if (!registry_valid_state_name(name))
        return mf_error_plain(err, EINVAL, "%s: must match [A-Za-z0-9_-]{1,64}", what);
    return 0;
}

int state_kv_check_key(const char *what, const void *key, size_t len, mf_error_t *err)
{
    const unsigned char *p = key;
    if (len == 0 || len > STORE_KV_KEY_MAX)
        return mf_error_plain(err, EINVAL, "%s: must be 1 to %d bytes, not %zu", what,
                              STORE_KV_KEY_MAX, len);
    for (size_t i = 0; i < len;) {
        if (!p[i])
            return mf_error_plain(err, EINVAL, "%s: must not hold a NUL byte", what);
        size_t n = utf8_seq(p + i, len - i);
        if (!n)
            return mf_error_plain(err, EINVAL, "%s: must be valid UTF-8 (byte %zu is not)", what,
                                  i);
        i += n;
    }
    if ((len == 6 && !memcmp(key, "_stats", 6)) || (len == 6 && !memcmp(key, "_batch", 6)))
        return mf_error_plain(err, EINVAL, "%s: `%.6s` is reserved (it names an operation)", what,
                              (const char *)key);
    return 0;
}

int state_kv_check_content_type(const char *what, const char *type, size_t len, mf_error_t *err)
{
    if (len == 0 || len > STORE_KV_CONTENT_TYPE_MAX)
        return mf_error_plain(err, EINVAL, "%s: must be 1 to %d characters", what,
                              STORE_KV_CONTENT_TYPE_MAX);
    for (size_t i = 0; i < len; i++)
        if (type[i] < 0x20 || type[i] > 0x7e)
            return mf_error_plain(
                err, EINVAL, "%s: must be printable ASCII (it is sent back as a header)", what);
    return 0;
}

int state_kv_parse_ttl(const char *what, const char *s, int64_t *ttl_s, mf_error_t *err)
{
    size_t len = strlen(s);
    int64_t v = 0;
    bool ok = len >= 1 && len <= 9 && strspn(s, "0123456789") == len;
    for (size_t i = 0; ok && i < len; i++)
        v = v * 10 + (s[i] - '0');
    if (!ok || v < 1 || v > STATE_KV_TTL_MAX)
        return mf_error_plain(err, EINVAL, "%s: must be whole seconds from 1 to %d", what,
                              STATE_KV_TTL_MAX);
    *ttl_s = v;
    return 0;
}

/* ---- the batch body ------------------------------------------------------ */

void state_kv_ops_free(store_kv_op_t *ops, size_t n)
{
    for (size_t i = 0; ops && i < n; i++) {
        free(ops[i].key);
        free(ops[i].value);
        free(ops[i].content_type);
    }
    free(ops);
}

void state_kv_batch_clear(state_kv_batch_t *b)
{
    for (size_t i = 0; b->keys && i < b->nkeys; i++)
        free((void *)b->keys[i].base);
    free(b->keys);
    state_kv_ops_free(b->ops, b->nops);
    memset(b, 0, sizeof *b);
}

/* A JSON string's bytes, copied (NUL-terminated). */
static char *batch__dup(const json_t *s, size_t *len)
{
    *len = json_string_length(s);
    char *out = xmalloc(*len + 1);
    memcpy(out, json_string_value(s), *len);
    out[*len] = '\0';
    return out;
}

/* Fails on a member of o not named in allowed (NULL-terminated). */
static int batch__only(const json_t *o, const char *what, const char *const *allowed,
                       mf_error_t *err)
{
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)o, name, v)
    {
        size_t i = 0;
        while (allowed[i] && strcmp(allowed[i], name))
            i++;
        if (!allowed[i]) {
            char shown[80];
            return mf_error_plain(err, EINVAL, "%s%s: unknown field", what,
                                  mf_error_show(name, 40, shown, sizeof shown));
        }
    }
    return 0;
}

/* An optional member: NULL when absent or JSON null. */
static json_t *batch__opt(const json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    return json_is_null(v) ? NULL : v;
}

static int batch__key(const json_t *v, const char *what, char **key, size_t *len, mf_error_t *err)
{
    if (!json_is_string(v))
        return mf_error_plain(err, EINVAL, "%s: must be a string", what);
    *key = batch__dup(v, len);
    int r = state_kv_check_key(what, *key, *len, err);
    if (r < 0) {
        free(*key);
        *key = NULL;
    }
    return r;
}

static int batch__get(const json_t *list, state_kv_batch_t *out, mf_error_t *err)
{
    if (!json_is_array(list))
        return mf_error_plain(err, EINVAL, "get: must be a list of keys");
    size_t n = json_array_size(list);
    if (n > STATE_KV_BATCH_MAX)
        return mf_error_plain(err, EINVAL, "get: at most %d keys at once, not %zu",
                              STATE_KV_BATCH_MAX, n);
    out->is_get = true;
    out->keys = xcalloc(n ? n : 1, sizeof *out->keys);
    for (size_t i = 0; i < n; i++) {
        char what[32];
        snprintf(what, sizeof what, "get[%zu]", i);
        char *key;
        size_t len;
        int r = batch__key(json_array_get(list, i), what, &key, &len, err);
        if (r < 0)
            return r;
        out->keys[i] = (slice_t){key, len};
        out->nkeys = i + 1;
    }
    return 0;
}

static int batch__int(const json_t *v, const char *what, const char *field, int64_t min,
                      int64_t max, int64_t *out, mf_error_t *err)
{
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return mf_error_plain(err, EINVAL, "%s.%s: must be a whole number from %lld to %lld", what,
                              field, (long long)min, (long long)max);
    *out = json_integer_value(v);
    return 0;
}

static int batch__op(const json_t *o, const char *what, size_t max_value, store_kv_op_t *op,
                     mf_error_t *err)
{
    static const char *const put_fields[] = {"op",           "key",          "value",
                                             "value_base64", "content_type", "ttl",
                                             "if_version",   "if_absent",    NULL};
    static const char *const delete_fields[] = {"op", "key", "if_version", NULL};
    char field[64];
    if (!json_is_object(o))
        return mf_error_plain(err, EINVAL, "%s: must be an object", what);
    const char *kind = json_string_value(json_object_get(o, "op"));
    if (!kind || (strcmp(kind, "put") && strcmp(kind, "delete")))
        return mf_error_plain(err, EINVAL, "%s.op: must be \"put\" or \"delete\"", what);
    bool put = !strcmp(kind, "put");
    snprintf(field, sizeof field, "%s.", what);
    int r = batch__only(o, field, put ? put_fields : delete_fields, err);
    if (r < 0)
        return r;
    op->kind = put ? STORE_KV_PUT : STORE_KV_DELETE;
    snprintf(field, sizeof field, "%s.key", what);
    if ((r = batch__key(json_object_get(o, "key"), field, &op->key, &op->key_len, err)) < 0)
        return r;
    json_t *v;
    if ((v = batch__opt(o, "if_version")) &&
        (r = batch__int(v, what, "if_version", 1, INT64_MAX, &op->if_version, err)) < 0)
        return r;
    if (!put)
        return 0;

    if ((v = batch__opt(o, "if_absent"))) {
        if (!json_is_boolean(v))
            return mf_error_plain(err, EINVAL, "%s.if_absent: must be true or false", what);
        op->if_absent = json_is_true(v);
    }
    if (op->if_absent && op->if_version)
        return mf_error_plain(err, EINVAL,
                              "%s: if_version and if_absent contradict each other (one asks "
                              "for the key, the other for its absence)",
                              what);
    int64_t ttl = 0;
    if ((v = batch__opt(o, "ttl")) &&
        (r = batch__int(v, what, "ttl", 1, STATE_KV_TTL_MAX, &ttl, err)) < 0)
        return r;
    op->ttl_ms = ttl * 1000;
    if ((v = batch__opt(o, "content_type"))) {
        snprintf(field, sizeof field, "%s.content_type", what);
        if (!json_is_string(v))
            return mf_error_plain(err, EINVAL, "%s: must be a string", field);
        size_t len;
        op->content_type = batch__dup(v, &len);
        if ((r = state_kv_check_content_type(field, op->content_type, len, err)) < 0)
            return r;
    }
    json_t *text = batch__opt(o, "value"), *b64 = batch__opt(o, "value_base64");
    if (!text == !b64)
        return mf_error_plain(err, EINVAL,
                              "%s: give the value as one of value (UTF-8 text) or "
                              "value_base64",
                              what);
    if (text) {
        if (!json_is_string(text))
            return mf_error_plain(err, EINVAL,
                                  "%s.value: must be a string (UTF-8 text; bytes "
                                  "go in value_base64)",
                                  what);
        op->value = batch__dup(text, &op->value_len);
    } else {
        if (!json_is_string(b64))
            return mf_error_plain(err, EINVAL, "%s.value_base64: must be a base64 string", what);
        buf_t bytes = BUF_INIT;
        r = codec_base64_decode(&bytes, json_string_value(b64), json_string_length(b64), max_value);
        if (r == -EFBIG) {
            buf_release(&bytes);
            return mf_error_plain(err, EFBIG,
                                  "%s.value_base64: the value is over %zu bytes, the "
                                  "most a value may be",
                                  what, max_value);
        }
        if (r < 0) {
            buf_release(&bytes);
            return mf_error_plain(err, EINVAL, "%s.value_base64: not base64", what);
        }
        op->value = buf_detach(&bytes, &op->value_len);
    }
    if (op->value_len > max_value)
        return mf_error_plain(err, EFBIG, "%s.value: %zu bytes, over the most a value may be (%zu)",
                              what, op->value_len, max_value);
    return 0;
}

static int batch__ops(const json_t *list, size_t max_value, state_kv_batch_t *out, mf_error_t *err)
{
    if (!json_is_array(list))
        return mf_error_plain(err, EINVAL, "ops: must be a list of operations");
    size_t n = json_array_size(list);
    if (n > STATE_KV_BATCH_MAX)
        return mf_error_plain(err, EINVAL, "ops: at most %d operations at once, not %zu",
                              STATE_KV_BATCH_MAX, n);
    out->ops = xcalloc(n ? n : 1, sizeof *out->ops);
    for (size_t i = 0; i < n; i++) {
        char what[32];
        snprintf(what, sizeof what, "ops[%zu]", i);
        /* Counted before it is filled, so a failure frees what it holds. */
        out->nops = i + 1;
        int r = batch__op(json_array_get(list, i), what, max_value, &out->ops[i], err);
        if (r < 0)
            return r;
    }
    return 0;
}

int state_kv_batch_parse(const void *body, size_t len, size_t max_value_bytes,
                         state_kv_batch_t *out, mf_error_t *err)
{
    static const char *const top[] = {"get", "ops", NULL};
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!doc)
        return mf_error_plain(err, EINVAL, "the body is not JSON: %s (line %d, column %d)",
                              jerr.text, jerr.line, jerr.column);
    int r;
    json_t *get = json_object_get(doc, "get"), *ops = json_object_get(doc, "ops");
    if (!json_is_object(doc))
        r = mf_error_plain(err, EINVAL, "the body must be a JSON object with \"get\" or \"ops\"");
    else if ((r = batch__only(doc, "", top, err)) < 0)
        ;
    else if (!get == !ops)
        r = mf_error_plain(err, EINVAL,
                           "the body must have one of \"get\" (keys to read) or \"ops\" (writes)");
    else
        r = get ? batch__get(get, out, err) : batch__ops(ops, max_value_bytes, out, err);
    json_decref(doc);
    if (r < 0)
        state_kv_batch_clear(out);
    return r;
}
