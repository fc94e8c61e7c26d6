#include "obs/otlp.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/clock.h"
#include "core/codec.h"
#include "core/id.h"
#include "core/json.h"
#include "core/log.h"
#include "core/utf8.h"
#include "core/xalloc.h"
#include "obs/metrics.h"

#define DEFAULT_PORT "4318"
#define DEFAULT_PATH "/v1/traces"
#define WARN_EVERY_NS (60 * 1000000000ull) /* a failing collector: one warning a minute */
#define RESP_KEEP 65536 /* response bytes kept: the status line and headers are all we need */
#define URL_SHOW 200    /* characters of a URL an error message quotes */

/* A queued span: the caller's description, its pointers redirected into
 * mem, one allocation holding the attributes and every string. */
typedef struct queued {
    obs_span_t span;
    void *mem;
} queued_t;

/* One export request: a batch already encoded, the connection carrying
 * it. Separate from the exporter because its handle and its name
 * resolution may outlive the request's outcome (a resolution running on
 * the thread pool cannot be taken back). */
typedef struct otlp_req {
    obs_otlp_t *o;
    uv_getaddrinfo_t gai;
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    buf_t head, body; /* what is sent */
    buf_t in;         /* the first RESP_KEEP bytes of the answer */
    size_t in_total;  /* every byte of the answer */
    size_t nspans;
    bool resolving; /* gai has not called back yet */
    bool tcp_open;  /* tcp has not been closed yet */
    bool finished;  /* the outcome is counted */
    char rbuf[4096];
} otlp_req_t;

struct obs_otlp {
    uv_loop_t *loop;
    char *url, *host, *hostport, *path, *service;
    char port[8];
    struct sockaddr_storage addr;
    bool have_addr;  /* addr holds where to connect */
    bool numeric;    /* host is an address: never resolved */
    queued_t *queue; /* a ring: qn spans from qhead */
    size_t qhead, qn, qcap;
    uv_timer_t tick, timeout;
    unsigned timeout_ms;
    otlp_req_t *inflight;
    size_t live_reqs; /* requests not yet freed, inflight or done */
    int open_handles; /* tick and timeout, until their close callbacks */
    bool stopped;
    uint64_t exported, dropped;
    uint64_t dropped_unwarned; /* failed-request drops since the last warning */
    uint64_t last_warn_ns;
    bool warned;
};

static metrics_family_t *m_spans;

static void export_start(obs_otlp_t *o);

/* ---- Encoding ---------------------------------------------------------- */

/* Appends s (NULL as "") as a JSON string. JSON must be UTF-8 and a
 * collector refuses the whole request over one bad string, so bytes that
 * are not are replaced by U+FFFD rather than passed on. */
static void add_string(buf_t *out, const char *s)
{
    json_quote_text(out, s ? s : "", s ? strlen(s) : 0);
}

static void add_hex(buf_t *out, const uint8_t *p, size_t n)
{
    char hex[2 * 16 + 1];
    codec_hex(hex, p, n);
    buf_add(out, hex, 2 * n);
}

/* A double as JSON: the shortest of %.15g and %.17g that reads back the
 * same, and proto3's "NaN" and "Infinity" strings for what JSON lacks. */
static void add_double(buf_t *out, double d)
{
    if (isnan(d)) {
        buf_adds(out, "\"NaN\"");
        return;
    }
    if (isinf(d)) {
        buf_adds(out, d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
        return;
    }
    char tmp[40];
    snprintf(tmp, sizeof tmp, "%.15g", d);
    if (strtod(tmp, NULL) != d)
        snprintf(tmp, sizeof tmp, "%.17g", d);
    buf_adds(out, tmp);
}

static void add_attr(buf_t *out, const obs_attr_t *a, bool *first)
{
    if (!a->key || (a->type == OBS_ATTR_STRING && !a->s))
        return;
    if (a->type != OBS_ATTR_STRING && a->type != OBS_ATTR_INT && a->type != OBS_ATTR_BOOL &&
        a->type != OBS_ATTR_DOUBLE)
        return;
    if (!*first)
        buf_addch(out, ',');
    *first = false;
    buf_adds(out, "{\"key\":");
    add_string(out, a->key);
    buf_adds(out, ",\"value\":{");
    switch (a->type) {
    case OBS_ATTR_STRING:
        buf_adds(out, "\"stringValue\":");
        add_string(out, a->s);
        break;
    case OBS_ATTR_INT:
        /* int64 is a string in proto3 JSON: a double cannot hold it. */
        buf_addf(out, "\"intValue\":\"%" PRId64 "\"", a->i);
        break;
    case OBS_ATTR_BOOL: buf_adds(out, a->b ? "\"boolValue\":true" : "\"boolValue\":false"); break;
    case OBS_ATTR_DOUBLE:
        buf_adds(out, "\"doubleValue\":");
        add_double(out, a->d);
        break;
    }
    buf_adds(out, "}}");
}

static void encode_span(buf_t *out, const obs_span_t *s)
{
    buf_adds(out, "{\"traceId\":\"");
    add_hex(out, s->trace_id, sizeof s->trace_id);
    buf_adds(out, "\",\"spanId\":\"");
    add_hex(out, s->span_id, sizeof s->span_id);
    buf_addch(out, '"');
    if (s->has_parent) {
        buf_adds(out, ",\"parentSpanId\":\"");
        add_hex(out, s->parent_id, sizeof s->parent_id);
        buf_addch(out, '"');
    }
    buf_adds(out, ",\"name\":");
    add_string(out, s->name);
    int kind = s->kind >= 0 && s->kind <= OBS_SPAN_CONSUMER ? s->kind : 0;
    /* The times are fixed64: a time before the epoch cannot be sent. */
    buf_addf(out,
             ",\"kind\":%d,\"startTimeUnixNano\":\"%" PRId64 "\",\"endTimeUnixNano\":\"%" PRId64
             "\",\"attributes\":[",
             kind, s->start_ns > 0 ? s->start_ns : 0, s->end_ns > 0 ? s->end_ns : 0);
    bool first = true;
    for (size_t i = 0; s->attrs && i < s->n_attrs; i++)
        add_attr(out, &s->attrs[i], &first);
    int code = s->status >= 0 && s->status <= OBS_STATUS_ERROR ? s->status : 0;
    buf_addf(out, "],\"status\":{\"code\":%d", code);
    if (s->status_message) {
        buf_adds(out, ",\"message\":");
        add_string(out, s->status_message);
    }
    buf_adds(out, "}}");
}

static void encode_begin(buf_t *out, const char *service)
{
    buf_adds(out, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
                  "\"value\":{\"stringValue\":");
    add_string(out, service);
    buf_adds(out, "}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"mayfly\"},\"spans\":[");
}

static void encode_end(buf_t *out)
{
    buf_adds(out, "]}]}]}");
}

void obs_otlp_encode(const char *service, const obs_span_t *spans, size_t n, buf_t *out)
{
    encode_begin(out, service);
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_addch(out, ',');
        encode_span(out, &spans[i]);
    }
    encode_end(out);
}

/* ---- Trace context ----------------------------------------------------- */

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

void obs_trace_random(uint8_t *out, size_t len)
{
    if (!len)
        return;
    do
        id_random_pooled(out, (unsigned)len);
    while (all_zero(out, len));
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Reads 2n lowercase hex digits from s into out. */
static bool parse_hex(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

int obs_traceparent_parse(const char *s, uint8_t trace_id[16], uint8_t parent_id[8], uint8_t *flags)
{
    uint8_t t[16], p[8], f;
    if (!s || strnlen(s, 56) != 55 || s[0] != '0' || s[1] != '0' || s[2] != '-' || s[35] != '-' ||
        s[52] != '-')
        return -EINVAL;
    if (!parse_hex(s + 3, t, 16) || !parse_hex(s + 36, p, 8) || !parse_hex(s + 53, &f, 1))
        return -EINVAL;
    if (all_zero(t, 16) || all_zero(p, 8))
        return -EINVAL;
    memcpy(trace_id, t, 16);
    memcpy(parent_id, p, 8);
    if (flags)
        *flags = f;
    return 0;
}

int obs_xray_parse(const char *s, uint8_t trace_id[16], uint8_t parent_id[8])
{
    uint8_t t[16], p[8];
    bool root = false, parent = false;
    if (!s || strnlen(s, 257) > 256)
        return -EINVAL;
    while (*s) {
        while (*s == ' ' || *s == ';')
            s++;
        size_t n = strcspn(s, ";");
        while (n && s[n - 1] == ' ')
            n--;
        if (n == 40 && !strncmp(s, "Root=1-", 7) && s[15] == '-') {
            if (root || !parse_hex(s + 7, t, 4) || !parse_hex(s + 16, t + 4, 12))
                return -EINVAL;
            root = true;
        } else if (n == 23 && !strncmp(s, "Parent=", 7)) {
            if (parent || !parse_hex(s + 7, p, 8))
                return -EINVAL;
            parent = true;
        } else if ((n >= 5 && !strncmp(s, "Root=", 5)) || (n >= 7 && !strncmp(s, "Parent=", 7))) {
            return -EINVAL;
        }
        s += strcspn(s, ";");
    }
    if (!root || !parent || all_zero(t, 16) || all_zero(p, 8))
        return -EINVAL;
    memcpy(trace_id, t, 16);
    memcpy(parent_id, p, 8);
    return 0;
}

/* Writes n bytes as 2n lowercase hex digits at p; returns the end. */
void obs_traceparent_format(const uint8_t trace_id[16], const uint8_t span_id[8], char *out,
                            size_t outlen)
{
    if (outlen < 56) {
        if (outlen)
            out[0] = 0;
        return;
    }
    memcpy(out, "00-", 3);
    codec_hex(out + 3, trace_id, 16);
    out[35] = '-';
    codec_hex(out + 36, span_id, 8);
    memcpy(out + 52, "-01", 4);
}

/* ---- Queue and counts -------------------------------------------------- */

static void count(obs_otlp_t *o, bool exported, size_t n)
{
    if (!n)
        return;
    if (exported)
        o->exported += n;
    else
        o->dropped += n;
    metrics_inc(m_spans, (const char *[]){exported ? "exported" : "dropped"}, (double)n);
}

static size_t str_size(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

/* Copies s to *pp and advances it; NULL stays NULL. */
static const char *str_copy(char **pp, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = memcpy(*pp, s, n);
    *pp += n;
    return d;
}

static void queue_push(obs_otlp_t *o, const obs_span_t *span)
{
    if (o->qn == o->qcap) {
        size_t cap = o->qcap ? 2 * o->qcap : 64;
        if (cap > OBS_OTLP_QUEUE_MAX)
            cap = OBS_OTLP_QUEUE_MAX;
        queued_t *q = xmalloc(cap * sizeof *q);
        for (size_t i = 0; i < o->qn; i++)
            q[i] = o->queue[(o->qhead + i) % o->qcap];
        free(o->queue);
        o->queue = q;
        o->qcap = cap;
        o->qhead = 0;
    }
    size_t nattrs = span->attrs ? span->n_attrs : 0;
    size_t size =
        nattrs * sizeof(obs_attr_t) + str_size(span->name) + str_size(span->status_message);
    for (size_t i = 0; i < nattrs; i++)
        size += str_size(span->attrs[i].key) + str_size(span->attrs[i].s);
    char *mem = xmalloc(size ? size : 1);
    obs_attr_t *attrs = (obs_attr_t *)mem;
    char *p = mem + nattrs * sizeof(obs_attr_t);
    queued_t *q = &o->queue[(o->qhead + o->qn) % o->qcap];
    q->mem = mem;
    q->span = *span;
    q->span.attrs = nattrs ? attrs : NULL;
    q->span.n_attrs = nattrs;
    q->span.name = str_copy(&p, span->name);
    q->span.status_message = str_copy(&p, span->status_message);
    for (size_t i = 0; i < nattrs; i++) {
        attrs[i] = span->attrs[i];
        attrs[i].key = str_copy(&p, span->attrs[i].key);
        attrs[i].s = str_copy(&p, span->attrs[i].s);
    }
    o->qn++;
}

/* Takes the oldest span off the queue (its mem is the caller's to free). */
static queued_t *queue_pop(obs_otlp_t *o)
{
    queued_t *q = &o->queue[o->qhead];
    o->qhead = (o->qhead + 1) % o->qcap;
    o->qn--;
    return q;
}

/* ---- The HTTP request -------------------------------------------------- */

static void exporter_maybe_free(obs_otlp_t *o)
{
    if (!o->stopped || o->live_reqs || o->open_handles)
        return;
    free(o->queue);
    free(o->url);
    free(o->host);
    free(o->hostport);
    free(o->path);
    free(o->service);
    free(o);
}

static void req_maybe_free(otlp_req_t *r)
{
    if (!r->finished || r->resolving || r->tcp_open)
        return;
    obs_otlp_t *o = r->o;
    buf_release(&r->head);
    buf_release(&r->body);
    buf_release(&r->in);
    free(r);
    o->live_reqs--;
    exporter_maybe_free(o);
}

static void on_tcp_closed(uv_handle_t *h)
{
    otlp_req_t *r = h->data;
    r->tcp_open = false;
    req_maybe_free(r);
}

/* A failure is worth a warning, but a collector down for an hour must not
 * write one per batch: the first, then at most one a minute, each saying
 * how many spans were lost since the one before. */
static void warn_failure(obs_otlp_t *o, size_t nspans, const char *reason)
{
    o->dropped_unwarned += nspans;
    uint64_t now = clock_mono_ns();
    if (o->warned && now - o->last_warn_ns < WARN_EVERY_NS)
        return;
    log_warn("otlp",
             "exporting spans to %s failed: %s; %" PRIu64 " spans dropped since the last "
             "warning (failures are reported at most once a minute)",
             o->url, reason, o->dropped_unwarned);
    o->warned = true;
    o->last_warn_ns = now;
    o->dropped_unwarned = 0;
}

/* Settles r's outcome once: counts its spans, closes what it holds, and
 * after a success sends the next full batch straight away. After a
 * failure the next batch waits for the tick, so a dead collector costs one
 * attempt a second, never a tight loop. */
static void req_finish(otlp_req_t *r, bool ok, const char *reason)
{
    if (r->finished)
        return;
    r->finished = true;
    obs_otlp_t *o = r->o;
    o->inflight = NULL;
    uv_timer_stop(&o->timeout);
    count(o, ok, r->nspans);
    if (!ok) {
        /* The collector may have moved: a name is looked up again. */
        o->have_addr = o->numeric;
        if (!o->stopped)
            warn_failure(o, r->nspans, reason);
    }
    if (r->resolving)
        uv_cancel((uv_req_t *)&r->gai);
    if (r->tcp_open)
        uv_close((uv_handle_t *)&r->tcp, on_tcp_closed);
    bool next = ok && !o->stopped && o->qn >= OBS_OTLP_BATCH_MAX;
    req_maybe_free(r);
    if (next)
        export_start(o);
}

static void req_fail(otlp_req_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void req_fail(otlp_req_t *r, const char *fmt, ...)
{
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    req_finish(r, false, reason);
}

/* Finds "\r\n\r\n" in p[0..n): the offset just past it, or 0. */
static size_t head_end(const char *p, size_t n)
{
    const char *e = memmem(p, n, "\r\n\r\n", 4);
    return e ? (size_t)(e - p) + 4 : 0;
}

/* The value of header name (with its colon) in the head p[0..n), or NULL;
 * *vlen is its length. */
static const char *header_value(const char *p, size_t n, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *end = p + n;
    for (const char *line = p; line < end;) {
        const char *eol = memmem(line, (size_t)(end - line), "\r\n", 2);
        if (!eol)
            break;
        if ((size_t)(eol - line) > nl && !strncasecmp(line, name, nl)) {
            const char *v = line + nl;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            *vlen = (size_t)(eol - v);
            return v;
        }
        line = eol + 2;
    }
    return NULL;
}

enum { RESP_BAD = OBS_OTLP_ANSWER_BAD, RESP_MORE = OBS_OTLP_ANSWER_MORE,
       RESP_DONE = OBS_OTLP_ANSWER_DONE };

int obs_otlp__answer(const char *p, size_t n, uint64_t total, bool eof, int *status,
                     const char **why)
{
    if (n == 0) {
        if (eof)
            *why = "the connection closed without an answer";
        return eof ? RESP_BAD : RESP_MORE;
    }
    size_t off = 0;
    for (;;) {
        size_t left = n - off, cmp = left < 5 ? left : 5;
        if (memcmp(p + off, "HTTP/", cmp)) {
            *why = "the answer is not HTTP";
            return RESP_BAD;
        }
        size_t he = head_end(p + off, left);
        if (!he) {
            if (n >= RESP_KEEP) {
                *why = "the answer's head is too long";
                return RESP_BAD;
            }
            if (eof) {
                *why = n ? "the connection closed in the middle of the answer"
                         : "the connection closed without an answer";
                return RESP_BAD;
            }
            return RESP_MORE;
        }
        const char *h = p + off;
        /* "HTTP/1.x NNN" then a space or the line's end. */
        if (he < 16 || memcmp(h, "HTTP/1.", 7) || h[7] < '0' || h[7] > '9' || h[8] != ' ' ||
            h[9] < '1' || h[9] > '5' || h[10] < '0' || h[10] > '9' || h[11] < '0' || h[11] > '9' ||
            (h[12] != ' ' && h[12] != '\r')) {
            *why = "the answer's status line is malformed";
            return RESP_BAD;
        }
        *status = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
        if (*status < 200) {
            /* An interim answer (100 Continue): the real one follows. */
            off += he;
            if (off == n)
                return eof ? (*why = "the connection closed after an interim answer", RESP_BAD)
                           : RESP_MORE;
            continue;
        }
        if (eof || *status == 204 || *status == 304)
            return RESP_DONE;
        size_t body_have = total - (off + he), vlen;
        const char *v = header_value(h, he, "content-length:", &vlen);
        if (v) {
            uint64_t cl = 0;
            for (size_t i = 0; i < vlen; i++) {
                if (v[i] < '0' || v[i] > '9' || __builtin_mul_overflow(cl, 10, &cl) ||
                    __builtin_add_overflow(cl, (uint64_t)(v[i] - '0'), &cl)) {
                    *why = "the answer's Content-Length is malformed";
                    return RESP_BAD;
                }
            }
            return body_have >= cl ? RESP_DONE : RESP_MORE;
        }
        v = header_value(h, he, "transfer-encoding:", &vlen);
        if (v && vlen >= 7 && !strncasecmp(v + vlen - 7, "chunked", 7) && total == n) {
            /* The last chunk, "0\r\n\r\n", ends the body (trailers aside). */
            const char *b = h + he;
            if ((body_have == 5 ||
                 (body_have >= 7 && b[body_have - 7] == '\r' && b[body_have - 6] == '\n')) &&
                !memcmp(b + body_have - 5, "0\r\n\r\n", 5))
                return RESP_DONE;
        }
        /* No length: the answer ends when the collector closes. */
        return RESP_MORE;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    otlp_req_t *r = h->data;
    *buf = uv_buf_init(r->rbuf, sizeof r->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    otlp_req_t *r = s->data;
    if (r->finished || nread == 0)
        return;
    if (nread < 0 && nread != UV_EOF) {
        req_fail(r, "reading the answer: %s", uv_strerror((int)nread));
        return;
    }
    if (nread > 0) {
        size_t n = (size_t)nread, keep = RESP_KEEP - r->in.len;
        buf_add(&r->in, buf->base, n < keep ? n : keep);
        r->in_total += n;
    }
    int status = 0;
    const char *why = NULL;
    switch (obs_otlp__answer(r->in.data, r->in.len, r->in_total, nread == UV_EOF, &status,
                             &why)) {
    case RESP_MORE: return;
    case RESP_BAD: req_fail(r, "%s", why); return;
    case RESP_DONE: break;
    }
    if (status >= 200 && status < 300) {
        req_finish(r, true, NULL);
        return;
    }
    /* A collector says why in its body (an OTLP Status as JSON, say). */
    size_t he = head_end(r->in.data, r->in.len);
    char shown[160] = "";
    if (he && he < r->in.len) {
        char body[160];
        size_t bl = r->in.len - he < sizeof body - 1 ? r->in.len - he : sizeof body - 1;
        memcpy(body, r->in.data + he, bl);
        body[bl] = 0;
        mf_error_show(body, 120, shown, sizeof shown);
    }
    req_fail(r, "the collector answered %d%s%s", status, *shown ? ": " : "", shown);
}

static void on_write(uv_write_t *w, int status)
{
    otlp_req_t *r = w->data;
    if (r->finished || status >= 0)
        return;
    req_fail(r, "sending the request: %s", uv_strerror(status));
}

static void on_connect(uv_connect_t *c, int status)
{
    otlp_req_t *r = c->data;
    if (r->finished)
        return;
    if (status < 0) {
        req_fail(r, "connecting: %s", uv_strerror(status));
        return;
    }
    uv_buf_t bufs[2] = {uv_buf_init(r->head.data, (unsigned)r->head.len),
                        uv_buf_init(r->body.data, (unsigned)r->body.len)};
    r->write.data = r;
    int rc = uv_write(&r->write, (uv_stream_t *)&r->tcp, bufs, 2, on_write);
    if (rc < 0) {
        req_fail(r, "sending the request: %s", uv_strerror(rc));
        return;
    }
    /* Reading at once: a collector may answer (or close) before it has
     * read everything. */
    rc = uv_read_start((uv_stream_t *)&r->tcp, on_alloc, on_read);
    if (rc < 0)
        req_fail(r, "reading the answer: %s", uv_strerror(rc));
}

static void req_connect(otlp_req_t *r)
{
    obs_otlp_t *o = r->o;
    int rc = uv_tcp_init(o->loop, &r->tcp);
    if (rc < 0) {
        req_fail(r, "connecting: %s", uv_strerror(rc));
        return;
    }
    r->tcp_open = true;
    r->tcp.data = r;
    r->connect.data = r;
    rc = uv_tcp_connect(&r->connect, &r->tcp, (const struct sockaddr *)&o->addr, on_connect);
    if (rc < 0)
        req_fail(r, "connecting: %s", uv_strerror(rc));
}

static void on_resolved(uv_getaddrinfo_t *gai, int status, struct addrinfo *res)
{
    otlp_req_t *r = gai->data;
    obs_otlp_t *o = r->o;
    r->resolving = false;
    if (r->finished) {
        uv_freeaddrinfo(res);
        req_maybe_free(r);
        return;
    }
    if (status < 0 || !res) {
        uv_freeaddrinfo(res);
        req_fail(r, "resolving %s: %s", o->host, status < 0 ? uv_strerror(status) : "no address");
        return;
    }
    memcpy(&o->addr, res->ai_addr, res->ai_addrlen);
    o->have_addr = true;
    uv_freeaddrinfo(res);
    req_connect(r);
}

static void on_timeout(uv_timer_t *t)
{
    obs_otlp_t *o = t->data;
    if (o->inflight)
        req_fail(o->inflight, "no answer within %u ms", o->timeout_ms);
}

/* Sends the oldest spans, a batch at most, encoded now so that the queue
 * frees their room at once. */
static void export_start(obs_otlp_t *o)
{
    size_t n = o->qn < OBS_OTLP_BATCH_MAX ? o->qn : OBS_OTLP_BATCH_MAX;
    otlp_req_t *r = xcalloc(1, sizeof *r);
    r->o = o;
    r->head = (buf_t)BUF_INIT;
    r->body = (buf_t)BUF_INIT;
    r->in = (buf_t)BUF_INIT;
    r->nspans = n;
    o->live_reqs++;
    o->inflight = r;

    buf_init(&r->body, n * 400 + 256);
    encode_begin(&r->body, o->service);
    for (size_t i = 0; i < n; i++) {
        queued_t *q = queue_pop(o);
        if (i)
            buf_addch(&r->body, ',');
        encode_span(&r->body, &q->span);
        free(q->mem);
    }
    encode_end(&r->body);
    buf_addf(&r->head,
             "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: mayfly\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n",
             o->path, o->hostport, r->body.len);

    uv_timer_start(&o->timeout, on_timeout, o->timeout_ms, 0);
    if (o->have_addr) {
        req_connect(r);
        return;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    r->gai.data = r;
    int rc = uv_getaddrinfo(o->loop, &r->gai, on_resolved, o->host, o->port, &hints);
    if (rc < 0) {
        req_fail(r, "resolving %s: %s", o->host, uv_strerror(rc));
        return;
    }
    r->resolving = true;
}

static void on_tick(uv_timer_t *t)
{
    obs_otlp_t *o = t->data;
    if (!o->inflight && o->qn)
        export_start(o);
}

/* ---- The exporter ------------------------------------------------------ */

static bool host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
}

/* Fills o's host, port, path, hostport and url from url. */
static int parse_url(obs_otlp_t *o, const char *url, mf_error_t *err)
{
    if (!url || !*url)
        return mf_error_plain(err, EINVAL,
                              "no OTLP endpoint given (want http://HOST[:PORT][/PATH])");
    char show[URL_SHOW + 8];
    mf_error_show(url, URL_SHOW, show, sizeof show);
    for (const char *c = url; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f)
            return mf_error_plain(err, EINVAL,
                                  "OTLP endpoint `%s`: spaces and control characters are not "
                                  "allowed",
                                  show);
    if (!strncasecmp(url, "https://", 8))
        return mf_error_plain(err, EINVAL,
                              "OTLP endpoint `%s`: https is not supported (mayfly speaks plain "
                              "HTTP to the collector; use http://, with a local collector or "
                              "agent forwarding over TLS if need be)",
                              show);
    if (strncasecmp(url, "http://", 7))
        return mf_error_plain(err, EINVAL,
                              "OTLP endpoint `%s`: not an http:// URL (want "
                              "http://HOST[:PORT][/PATH])",
                              show);
    if (strchr(url, '#') || strchr(url, '@'))
        return mf_error_plain(
            err, EINVAL, "OTLP endpoint `%s`: credentials and fragments are not supported", show);
    const char *auth = url + 7;
    size_t alen = strcspn(auth, "/?");
    if (auth[alen] == '?')
        return mf_error_plain(err, EINVAL, "OTLP endpoint `%s`: a query needs a path before it",
                              show);
    const char *host = auth, *hend, *port = NULL;
    bool v6 = false;
    if (*auth == '[') {
        host = auth + 1;
        hend = memchr(host, ']', alen - 1);
        if (!hend || hend == host)
            return mf_error_plain(err, EINVAL, "OTLP endpoint `%s`: bad IPv6 address", show);
        for (const char *c = host; c < hend; c++)
            if (hex_digit((char)(*c | 0x20)) < 0 && *c != ':' && *c != '.')
                return mf_error_plain(err, EINVAL, "OTLP endpoint `%s`: bad IPv6 address", show);
        v6 = true;
        if (hend + 1 < auth + alen) {
            if (hend[1] != ':')
                return mf_error_plain(err, EINVAL, "OTLP endpoint `%s`: bad IPv6 address", show);
            port = hend + 2;
        }
    } else {
        hend = memchr(auth, ':', alen);
        if (hend)
            port = hend + 1;
        else
            hend = auth + alen;
        if (hend == host)
            return mf_error_plain(err, EINVAL, "OTLP endpoint `%s`: no host", show);
        for (const char *c = host; c < hend; c++)
            if (!host_char(*c))
                return mf_error_plain(err, EINVAL, "OTLP endpoint `%s`: bad host name", show);
    }
    if (port) {
        size_t plen = (size_t)(auth + alen - port);
        unsigned v = 0;
        for (size_t i = 0; i < plen; i++) {
            if (port[i] < '0' || port[i] > '9' || plen > 5) {
                v = 0;
                break;
            }
            v = v * 10 + (unsigned)(port[i] - '0');
        }
        if (!v || v > 65535)
            return mf_error_plain(err, EINVAL, "OTLP endpoint `%s`: bad port (want 1-65535)", show);
        snprintf(o->port, sizeof o->port, "%u", v);
    } else {
        snprintf(o->port, sizeof o->port, "%s", DEFAULT_PORT);
    }
    const char *path = auth + alen;
    o->host = xstrndup(host, (size_t)(hend - host));
    o->hostport = xasprintf(v6 ? "[%s]:%s" : "%s:%s", o->host, o->port);
    o->path = xstrdup(*path && strcmp(path, "/") ? path : DEFAULT_PATH);
    o->url = xasprintf("http://%s%s", o->hostport, o->path);
    return 0;
}

static void on_handle_closed(uv_handle_t *h)
{
    obs_otlp_t *o = h->data;
    o->open_handles--;
    exporter_maybe_free(o);
}

int obs_otlp_new(uv_loop_t *loop, const char *url, const char *service, obs_otlp_t **out,
                 mf_error_t *err)
{
    *out = NULL;
    obs_otlp_t *o = xcalloc(1, sizeof *o);
    int rc = parse_url(o, url, err);
    if (rc < 0) {
        free(o->host);
        free(o->hostport);
        free(o->path);
        free(o->url);
        free(o);
        return rc;
    }
    o->loop = loop;
    o->service = xstrdup(service && *service ? service : "mayfly");
    o->timeout_ms = OBS_OTLP_TIMEOUT_MS;
    /* An address needs no lookup, now or after a failure. */
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    int port = atoi(o->port);
    if (!uv_ip4_addr(o->host, port, &sin)) {
        memcpy(&o->addr, &sin, sizeof sin);
        o->numeric = o->have_addr = true;
    } else if (!uv_ip6_addr(o->host, port, &sin6)) {
        memcpy(&o->addr, &sin6, sizeof sin6);
        o->numeric = o->have_addr = true;
    }
    if (!m_spans) {
        m_spans = metrics_family_new(METRICS_COUNTER, "mayfly_otlp_spans_total",
                                     "Trace spans sent to the OTLP collector (exported) or lost "
                                     "on the way: queue full, collector failing, shut down "
                                     "(dropped).",
                                     (const char *[]){"outcome", NULL}, NULL, 0);
        metrics_inc(m_spans, (const char *[]){"exported"}, 0);
        metrics_inc(m_spans, (const char *[]){"dropped"}, 0);
    }
    uv_timer_init(loop, &o->tick);
    uv_timer_init(loop, &o->timeout);
    o->tick.data = o;
    o->timeout.data = o;
    /* The exporter must never be why the loop keeps running. */
    uv_unref((uv_handle_t *)&o->tick);
    uv_timer_start(&o->tick, on_tick, OBS_OTLP_INTERVAL_MS, OBS_OTLP_INTERVAL_MS);
    *out = o;
    return 0;
}

void obs_otlp_add(obs_otlp_t *o, const obs_span_t *span)
{
    if (!o || o->stopped || !span)
        return;
    if (o->qn >= OBS_OTLP_QUEUE_MAX) {
        count(o, false, 1);
        return;
    }
    queue_push(o, span);
    if (o->qn >= OBS_OTLP_BATCH_MAX && !o->inflight)
        export_start(o);
}

void obs_otlp_free(obs_otlp_t *o)
{
    if (!o || o->stopped)
        return;
    o->stopped = true;
    count(o, false, o->qn);
    while (o->qn)
        free(queue_pop(o)->mem);
    if (o->inflight)
        req_finish(o->inflight, false, "the exporter stopped");
    o->open_handles = 2;
    uv_close((uv_handle_t *)&o->tick, on_handle_closed);
    uv_close((uv_handle_t *)&o->timeout, on_handle_closed);
}

void obs_otlp_counts(const obs_otlp_t *o, uint64_t *exported, uint64_t *dropped)
{
    if (exported)
        *exported = o->exported;
    if (dropped)
        *dropped = o->dropped;
}

void obs_otlp_set_timeout_ms(obs_otlp_t *o, unsigned ms)
{
    o->timeout_ms = ms;
}
