/* Streamed answers (Lambda's RESPONSE_STREAM): the call's side of a
 * response its runtime posts as a stream. The bytes go to the caller's
 * sink as they arrive, or are gathered for a caller that takes the answer
 * whole; either way the stream is bounded, and its end (or its failure)
 * completes the call like any answer. Also the reader of Lambda's
 * HTTP-integration prelude, which callers that speak HTTP use. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "exec/exec_internal.h"

/* Lambda's bound on a streamed response. */
#define STREAM_MAX_DEFAULT ((size_t)200 << 20)

static size_t stream_bound(const exec_t *ex)
{
    return ex->cfg.max_stream_bytes ? ex->cfg.max_stream_bytes : STREAM_MAX_DEFAULT;
}

void exec__stream_begin(exec_lane_t *lane, const char *content_type)
{
    invocation_t *inv = lane->inv;
    inv->streamed = true;
    free(inv->content_type);
    inv->content_type = xstrdup(content_type);
    buf_reset(&inv->result);
    if (inv->sink && inv->sink->on_head)
        inv->sink->on_head(inv, inv->ud, content_type);
}

int exec__stream_data(exec_lane_t *lane, const char *data, size_t len)
{
    invocation_t *inv = lane->inv;
    exec_instance_t *inst = lane->inst;
    exec_t *ex = inst->pool->ex;
    /* A caller that takes the answer whole gets no more than any result
     * may hold, as Lambda's buffered Invoke of a streaming function. */
    size_t bound = inv->sink ? stream_bound(ex) : ex->cfg.max_result_bytes;
    if (inv->stream_bytes + len > bound) {
        char msg[192];
        snprintf(msg, sizeof msg,
                 "Response payload size exceeded maximum allowed payload size (%zu bytes).", bound);
        buf_t doc = BUF_INIT;
        exec__error_doc(&doc, "Function.ResponseSizeTooLarge", msg);
        log_debug("exec", "%s: call %s streamed past %zu bytes", inv->function, inv->request_id,
                  bound);
        exec__complete(lane, INV_ERROR, &doc, "Function.ResponseSizeTooLarge", msg);
        /* The handler is still writing: only a new instance can serve the
         * next call, as after a timeout. An instance serving others goes
         * on: its runtime's stream was refused, and it polls again. */
        if (inst->n_lanes == 1)
            exec__instance_stop(inst);
        else
            exec__instance_lane_free(inst);
        return -EFBIG;
    }
    inv->stream_bytes += len;
    if (!inv->sink) {
        buf_add(&inv->result, data, len);
        return 0;
    }
    /* What the record keeps of the stream: its first bytes (one more than
     * it keeps, so that it knows it was cut). */
    size_t keep = inv->payloads == 'o' ? 0 : inv->payload_max + 1;
    if (keep > ex->cfg.max_result_bytes)
        keep = ex->cfg.max_result_bytes;
    if (inv->result.len < keep)
        buf_add(&inv->result, data, len < keep - inv->result.len ? len : keep - inv->result.len);
    if (inv->sink->on_data)
        inv->sink->on_data(inv, inv->ud, data, len);
    return 0;
}

void exec__stream_end(exec_lane_t *lane, const char *error_type, const char *error_message,
                      buf_t *doc)
{
    invocation_t *inv = lane->inv;
    if (!error_type) {
        buf_t result = inv->result;
        buf_init(&inv->result, 0);
        exec__complete(lane, INV_SUCCESS, &result, NULL, NULL);
        return;
    }
    /* The record and a caller that takes the answer whole get the error
     * document, as for any function error. */
    buf_t result = BUF_INIT;
    if (doc && doc->len) {
        result = *doc;
        buf_init(doc, 0);
    } else {
        exec__error_doc(&result, error_type, error_message);
    }
    exec__complete(lane, INV_ERROR, &result, error_type, error_message);
}

void exec_stream_pause(invocation_t *inv, bool paused)
{
    exec_lane_t *lane = inv->lane;
    if (lane && lane->inv == inv && lane->stream_req)
        http_request_pause_body(lane->stream_req, paused);
}

/* ---- Lambda's HTTP-integration prelude ------------------------------------ */

void exec_prelude_init(exec_prelude_t *p)
{
    memset(p, 0, sizeof *p);
    buf_init(&p->text, 0);
    buf_init(&p->header_lines, 0);
    p->status = 200;
}

void exec_prelude_release(exec_prelude_t *p)
{
    buf_release(&p->text);
    buf_release(&p->header_lines);
}

/* A header value may hold no CR, LF or NUL: it would end the header (or
 * the head) early and let the function write headers of its choosing. */
static bool clean_value(const json_t *v)
{
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    return strlen(s) == n && !strpbrk(s, "\r\n");
}

static int prelude_parse(exec_prelude_t *p, mf_error_t *err)
{
    json_error_t jerr;
    json_t *doc = json_loadb(p->text.data ? p->text.data : "", p->text.len, 0, &jerr);
    if (!doc)
        return mf_error_plain(err, EINVAL, "the prelude is not JSON: %s", jerr.text);
    int r = 0;
    if (!json_is_object(doc)) {
        r = mf_error_plain(err, EINVAL, "the prelude must be a JSON object");
        goto out;
    }
    json_t *v = json_object_get(doc, "statusCode");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 100 || json_integer_value(v) > 599) {
            r = mf_error_plain(err, EINVAL, "statusCode: must be an integer from 100 to 599");
            goto out;
        }
        p->status = (int)json_integer_value(v);
    }
    json_t *headers = json_object_get(doc, "headers");
    if (headers && !json_is_null(headers)) {
        if (!json_is_object(headers)) {
            r = mf_error_plain(err, EINVAL, "headers: must be an object of strings");
            goto out;
        }
        const char *name;
        json_t *value;
        json_object_foreach(headers, name, value)
        {
            if (!http_token(name)) {
                r = mf_error_plain(err, EINVAL, "headers: `%.64s` is not a header name", name);
                goto out;
            }
            if (!json_is_string(value) || !clean_value(value)) {
                r = mf_error_plain(err, EINVAL,
                                   "headers.%.64s: must be a string without CR, LF or NUL", name);
                goto out;
            }
            buf_addf(&p->header_lines, "%s: %s\r\n", name, json_string_value(value));
        }
    }
    json_t *cookies = json_object_get(doc, "cookies");
    if (cookies && !json_is_null(cookies)) {
        if (!json_is_array(cookies)) {
            r = mf_error_plain(err, EINVAL, "cookies: must be an array of strings");
            goto out;
        }
        size_t i;
        json_t *c;
        json_array_foreach(cookies, i, c)
        {
            if (!json_is_string(c) || !clean_value(c)) {
                r = mf_error_plain(err, EINVAL,
                                   "cookies[%zu]: must be a string without CR, LF or NUL", i);
                goto out;
            }
            buf_addf(&p->header_lines, "Set-Cookie: %s\r\n", json_string_value(c));
        }
    }
    p->done = true;
out:
    json_decref(doc);
    return r;
}

long exec_prelude_feed(exec_prelude_t *p, const char *data, size_t len, mf_error_t *err)
{
    size_t i = 0;
    while (i < len && !p->done) {
        if (p->nuls == 0) {
            /* JSON text holds no NUL: the first one ends it. */
            const char *nul = memchr(data + i, '\0', len - i);
            size_t n = nul ? (size_t)(nul - (data + i)) : len - i;
            if (p->text.len + n > EXEC_PRELUDE_MAX)
                return mf_error_plain(err, EFBIG, "the prelude is over %d bytes", EXEC_PRELUDE_MAX);
            buf_add(&p->text, data + i, n);
            i += n;
            if (!nul)
                break;
        }
        if (data[i] != '\0')
            return mf_error_plain(err, EINVAL, "the prelude must end with eight NUL bytes, not %u",
                                  p->nuls);
        p->nuls++;
        i++;
        if (p->nuls == 8) {
            int r = prelude_parse(p, err);
            if (r < 0)
                return r;
        }
    }
    return (long)i;
}
