#include "http/request.h"

#include "core/codec.h"
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/clock.h"
#include "core/xalloc.h"

const char *http_request_header(const http_request_t *req, const char *name)
{
    /* Trailers come after the body and say something else (a chunked
     * stream's outcome): they never stand in for a header. */
    size_t n = req->head_ns ? req->nheaders_head : req->nheaders;
    for (size_t i = 0; i < n; i++) {
        if (!strcasecmp(req->headers[i].name, name))
            return req->headers[i].value;
    }
    return NULL;
}

const char *http_request_trailer(const http_request_t *req, const char *name)
{
    if (!req->head_ns)
        return NULL;
    for (size_t i = req->nheaders_head; i < req->nheaders; i++) {
        if (!strcasecmp(req->headers[i].name, name))
            return req->headers[i].value;
    }
    return NULL;
}

bool http_tchar(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

bool http_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!http_tchar((unsigned char)*s))
            return false;
    return true;
}

bool http_etag_matches(const char *if_none_match, const char *etag)
{
    if (!if_none_match || !etag)
        return false;
    size_t elen = strlen(etag);
    const char *p = if_none_match;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            return false;
        if (*p == '*')
            return true;
        if (p[0] == 'W' && p[1] == '/')
            p += 2;
        const char *end;
        if (*p == '"') {
            const char *close = strchr(p + 1, '"');
            if (!close)
                return false;
            end = close + 1;
        } else {
            end = p + strcspn(p, ",");
        }
        size_t n = (size_t)(end - p);
        if (n == elen && !memcmp(p, etag, n))
            return true;
        p = end;
    }
}

int http_percent_decode(buf_t *out, const char *s, size_t len, bool plus_is_space)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= len)
                return -EINVAL;
            int hi = codec_hex_digit(s[i + 1]), lo = codec_hex_digit(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -EINVAL;
            c = (char)(hi << 4 | lo);
            if (c == '\0')
                return -EINVAL;
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        buf_addch(out, c);
    }
    return 0;
}

bool http_request_query(const http_request_t *req, const char *name, buf_t *out)
{
    size_t nlen = strlen(name);
    const char *p = req->query;
    while (p && *p) {
        const char *end = strchr(p, '&');
        size_t plen = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', plen);
        size_t klen = eq ? (size_t)(eq - p) : plen;
        if (klen == nlen && !memcmp(p, name, nlen)) {
            buf_reset(out);
            if (!eq)
                return true;
            return http_percent_decode(out, eq + 1, plen - klen - 1, true) == 0;
        }
        p = end ? end + 1 : NULL;
    }
    return false;
}

void http_request_free(http_request_t *req)
{
    if (!req)
        return;
    if (req->unhandled_cb) {
        void (*cb)(http_request_t *) = req->unhandled_cb;
        req->unhandled_cb = NULL;
        cb(req);
    }
    free(req->url);
    free(req->path);
    for (size_t i = 0; i < req->nheaders; i++) {
        free(req->headers[i].name);
        free(req->headers[i].value);
    }
    free(req->headers);
    for (size_t i = 0; i < req->nparams; i++)
        free(req->params[i]);
    buf_release(&req->body);
    buf_release(&req->resp_headers);
    free(req);
}

static http_reader_t *reader_of(http_parser *p)
{
    return (http_reader_t *)p->data;
}

static int fail(http_reader_t *r, int status, const char *message)
{
    r->error_status = status;
    r->error_message = message;
    return -1;
}

/* Counts bytes of the request head, which is bounded as a whole. */
static int count_head(http_reader_t *r, size_t len)
{
    r->head_bytes += len;
    if (r->head_bytes > HTTP_MAX_HEADER_BYTES)
        return fail(r, 431, r->cur->head_ns ? "the trailers are over 16 KiB"
                                            : "the request line and headers are over 16 KiB");
    return 0;
}

static int on_message_begin(http_parser *p)
{
    http_reader_t *r = reader_of(p);
    r->cur = xcalloc(1, sizeof *r->cur);
    buf_init(&r->cur->body, 0);
    buf_init(&r->cur->resp_headers, 0);
    r->cur->url = xstrdup("");
    r->head_bytes = 0;
    r->in_value = false;
    return 0;
}

static void append(char **dst, const char *at, size_t len)
{
    size_t old = *dst ? strlen(*dst) : 0;
    *dst = xrealloc(*dst, old + len + 1);
    memcpy(*dst + old, at, len);
    (*dst)[old + len] = '\0';
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    http_reader_t *r = reader_of(p);
    if (count_head(r, len) < 0)
        return -1;
    if (memchr(at, '\0', len))
        return fail(r, 400, "the request line holds a NUL byte");
    append(&r->cur->url, at, len);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    http_reader_t *r = reader_of(p);
    http_request_t *req = r->cur;
    if (count_head(r, len + 4) < 0)
        return -1;
    if (r->in_value || req->nheaders == 0) {
        if (req->nheaders == HTTP_MAX_HEADERS)
            return fail(r, 431, "the request has over 100 headers");
        req->headers = xrealloc(req->headers, (req->nheaders + 1) * sizeof *req->headers);
        req->headers[req->nheaders].name = NULL;
        req->headers[req->nheaders].value = xstrdup("");
        req->nheaders++;
        r->in_value = false;
    }
    append(&req->headers[req->nheaders - 1].name, at, len);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    http_reader_t *r = reader_of(p);
    http_request_t *req = r->cur;
    if (count_head(r, len) < 0)
        return -1;
    if (memchr(at, '\0', len))
        return fail(r, 400, "a header holds a NUL byte");
    if (req->nheaders == 0)
        return fail(r, 400, "a header value without a name");
    append(&req->headers[req->nheaders - 1].value, at, len);
    r->in_value = true;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    http_reader_t *r = reader_of(p);
    http_request_t *req = r->cur;

    req->method = (enum http_method)p->method;
    /* A connection asking for a protocol upgrade is answered, then closed:
     * what follows on it is not HTTP/1.1. */
    req->keep_alive = http_should_keep_alive(p) && !p->upgrade;
    char *q = strchr(req->url, '?');
    req->path = q ? xstrndup(req->url, (size_t)(q - req->url)) : xstrdup(req->url);
    req->query = q ? q + 1 : "";
    if (req->path[0] != '/')
        return fail(r, 400, "the request target must be an absolute path");

    const char *expect = http_request_header(req, "Expect");
    if (expect && !strcasecmp(expect, "100-continue"))
        req->expect_continue = true;
    req->body_chunked = (p->flags & F_CHUNKED) != 0;
    req->content_length =
        !req->body_chunked && p->content_length != ULLONG_MAX ? p->content_length : 0;
    req->head_ns = clock_mono_ns();
    req->nheaders_head = req->nheaders;

    /* Routing and the route's own checks (credentials, say) come first:
     * a client that may not send this request learns so before it learns
     * anything about sizes, and no byte of its body is read. */
    r->body_limit = 0;
    int status = r->on_head ? r->on_head(r->ud, req, &r->body_limit) : 0;
    if (status)
        return fail(r, status, "the request was refused before its body was read");
    /* Trailers, if any, have a bound of their own. */
    r->head_bytes = 0;
    if (req->body_streamed) {
        /* Its handler takes the body as it comes and bounds it itself. */
        r->body_limit = SIZE_MAX;
    } else {
        if (req->content_length > r->body_limit)
            return fail(r, 413, "the request body is over this route's limit");
        /* The body's whole size is known and allowed: one allocation holds it. */
        if (req->content_length)
            buf_grow(&req->body, (size_t)req->content_length);
    }
    if (req->expect_continue && r->on_continue)
        r->on_continue(r->ud, req);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    http_reader_t *r = reader_of(p);
    if (!r->cur->body_streamed && r->cur->body.len + len > r->body_limit)
        return fail(r, 413, "the request body is over this route's limit");
    buf_add(&r->cur->body, at, len);
    r->cur->body_received += len;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    http_reader_t *r = reader_of(p);
    r->cur->body_done = true;
    r->ready = r->cur;
    r->cur = NULL;
    /* One request at a time: the caller answers it before reading on. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings reader_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void http_reader_init(http_reader_t *r, int (*on_head)(void *, http_request_t *, size_t *),
                      void (*on_continue)(void *, http_request_t *), void *ud)
{
    memset(r, 0, sizeof *r);
    http_parser_init(&r->parser, HTTP_REQUEST);
    r->parser.data = r;
    r->on_head = on_head;
    r->on_continue = on_continue;
    r->ud = ud;
}

void http_reader_release(http_reader_t *r)
{
    http_request_free(r->cur);
    http_request_free(r->ready);
    r->cur = r->ready = NULL;
}

http_reader_result_t http_reader_feed(http_reader_t *r, const char *data, size_t len,
                                      size_t *consumed)
{
    *consumed = 0;
    if (r->error_status)
        return HTTP_READER_ERROR;
    if (r->ready)
        return HTTP_READER_REQUEST;
    size_t n = http_parser_execute(&r->parser, &reader_settings, data, len);
    *consumed = n;
    enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);
    if (e == HPE_PAUSED && r->ready)
        return HTTP_READER_REQUEST;
    if (e != HPE_OK) {
        if (!r->error_status) {
            r->error_status = 400;
            r->error_message = http_errno_description(e);
        }
        return HTTP_READER_ERROR;
    }
    return HTTP_READER_MORE;
}

http_request_t *http_reader_take(http_reader_t *r)
{
    http_request_t *req = r->ready;
    r->ready = NULL;
    if (HTTP_PARSER_ERRNO(&r->parser) == HPE_PAUSED)
        http_parser_pause(&r->parser, 0);
    return req;
}

bool http_reader_busy(const http_reader_t *r)
{
    return r->cur != NULL;
}
