/* A function's result → the HTTP answer behind its URL, as Lambda maps
 * it. Only a result that starts as an object is parsed: any other JSON is
 * the body as it is, which is also the cheap path. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/codec.h"
#include "core/json.h"
#include "core/xalloc.h"
#include "http/request.h"
#include "trigger/url.h"

void url_response_release(url_response_t *r)
{
    free(r->content_type);
    r->content_type = NULL;
    buf_release(&r->headers);
    buf_release(&r->body);
}

/* A field value may hold tabs and any byte but the other controls: a CR
 * or LF would end the header line and let a value write headers of its
 * own. */
static bool value_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

/* A header value as text: strings as they are, numbers and booleans
 * written out (Lambda's clients send {"Content-Length": 12} too). */
static bool scalar_text(const json_t *v, buf_t *out)
{
    switch (json_typeof(v)) {
    case JSON_STRING: buf_add(out, json_string_value(v), json_string_length(v)); return true;
    case JSON_INTEGER: buf_addf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); return true;
    case JSON_REAL: json_dump_buf(out, v); return true;
    case JSON_TRUE: buf_adds(out, "true"); return true;
    case JSON_FALSE: buf_adds(out, "false"); return true;
    default: return false;
    }
}

/* One header line of the answer, checked; the server's own framing
 * headers and, with drop_cors, Access-Control-* are left out. */
static int add_header(url_response_t *out, const char *field, const char *name, const json_t *v,
                      bool drop_cors, mf_error_t *err)
{
    if (json_is_null(v))
        return 0;
    buf_t text = BUF_INIT;
    if (!scalar_text(v, &text)) {
        buf_release(&text);
        return mf_error_plain(err, EINVAL, "%s.%.64s: must be a string, a number or a boolean",
                              field, name);
    }
    int r = 0;
    if (!http_token(name))
        r = mf_error_plain(err, EINVAL, "%s: `%.64s` is not a header name", field, name);
    else if (!value_ok(text.data, text.len))
        r = mf_error_plain(err, EINVAL, "%s.%.64s: a header value may not hold control characters",
                           field, name);
    if (r < 0) {
        buf_release(&text);
        return r;
    }
    if (!strcasecmp(name, "content-length") || !strcasecmp(name, "transfer-encoding") ||
        !strcasecmp(name, "connection") || !strcasecmp(name, "keep-alive") ||
        (drop_cors && !strncasecmp(name, "access-control-", 15))) {
        /* Framing is the server's, and CORS the URL's settings'. */
    } else if (!strcasecmp(name, "content-type") && !out->content_type) {
        out->content_type = buf_detach(&text, NULL);
    } else {
        buf_addf(&out->headers, "%s: %s\r\n", name, text.data);
    }
    buf_release(&text);
    return 0;
}

static int map_object(json_t *doc, bool drop_cors, url_response_t *out, mf_error_t *err)
{
    json_t *sc = json_object_get(doc, "statusCode");
    if (!json_is_integer(sc) || json_integer_value(sc) < 200 || json_integer_value(sc) > 599)
        return mf_error_plain(err, EINVAL, "statusCode: must be an integer from 200 to 599");
    out->status = (int)json_integer_value(sc);

    const char *name;
    json_t *v;
    json_t *headers = json_object_get(doc, "headers");
    if (headers && !json_is_null(headers)) {
        if (!json_is_object(headers))
            return mf_error_plain(err, EINVAL, "headers: must be an object");
        json_object_foreach(headers, name, v)
        {
            int r = add_header(out, "headers", name, v, drop_cors, err);
            if (r < 0)
                return r;
        }
    }
    json_t *multi = json_object_get(doc, "multiValueHeaders");
    if (multi && !json_is_null(multi)) {
        if (!json_is_object(multi))
            return mf_error_plain(err, EINVAL, "multiValueHeaders: must be an object");
        json_object_foreach(multi, name, v)
        {
            if (!json_is_array(v))
                return mf_error_plain(err, EINVAL, "multiValueHeaders.%.64s: must be an array",
                                      name);
            size_t i;
            json_t *item;
            json_array_foreach(v, i, item)
            {
                int r = add_header(out, "multiValueHeaders", name, item, drop_cors, err);
                if (r < 0)
                    return r;
            }
        }
    }
    json_t *cookies = json_object_get(doc, "cookies");
    if (cookies && !json_is_null(cookies)) {
        if (!json_is_array(cookies))
            return mf_error_plain(err, EINVAL, "cookies: must be an array of strings");
        size_t i;
        json_array_foreach(cookies, i, v)
        {
            if (!json_is_string(v))
                return mf_error_plain(err, EINVAL, "cookies[%zu]: must be a string", i);
            if (!value_ok(json_string_value(v), json_string_length(v)))
                return mf_error_plain(err, EINVAL,
                                      "cookies[%zu]: a cookie may not hold control characters", i);
            buf_addf(&out->headers, "Set-Cookie: %s\r\n", json_string_value(v));
        }
    }
    json_t *body = json_object_get(doc, "body");
    if (json_is_string(body)) {
        if (json_is_true(json_object_get(doc, "isBase64Encoded"))) {
            if (codec_base64_decode(&out->body, json_string_value(body), json_string_length(body),
                                    json_string_length(body)) < 0)
                return mf_error_plain(err, EINVAL,
                                      "body: isBase64Encoded is true but the body is not base64");
        } else {
            buf_add(&out->body, json_string_value(body), json_string_length(body));
        }
    } else if (body && !json_is_null(body)) {
        json_dump_buf(&out->body, body);
    }
    return 0;
}

int url_response_map(buf_t *result, bool drop_cors, url_response_t *out, mf_error_t *err)
{
    memset(out, 0, sizeof *out);
    buf_init(&out->headers, 0);
    buf_init(&out->body, 0);
    size_t i = 0;
    while (i < result->len && strchr(" \t\r\n", result->data[i]))
        i++;
    json_t *doc = NULL;
    if (i < result->len && result->data[i] == '{') {
        json_error_t jerr;
        doc = json_loadb(result->data, result->len, JSON_ALLOW_NUL, &jerr);
        if (!doc)
            return mf_error_plain(err, EINVAL, "the function's result is not JSON: %s (at %d)",
                                  jerr.text, jerr.position);
        if (json_object_get(doc, "statusCode")) {
            int r = map_object(doc, drop_cors, out, err);
            json_decref(doc);
            if (r < 0)
                url_response_release(out);
            return r;
        }
        json_decref(doc);
    }
    /* Any other result is the body, as JSON. */
    out->status = 200;
    out->content_type = xstrdup("application/json");
    out->body = *result;
    buf_init(result, 0);
    return 0;
}
