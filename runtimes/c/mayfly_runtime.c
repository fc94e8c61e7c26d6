/*
 * mayfly_runtime.c - the Lambda Runtime API client behind mayfly_runtime.h.
 *
 * Self-contained on purpose: a function's author copies two files, or
 * compiles them from the repository, and needs nothing but libc.  That is
 * also why it carries its own small buffer type and JSON escaping instead of
 * the server's: it must build without the rest of mayfly.
 *
 * The HTTP/1.1 client does exactly what the Runtime API needs and no more:
 * one connection, one request at a time, responses framed by Content-Length,
 * chunked transfer coding, or the end of the connection.  Everything the
 * server sends is bounded (a 64 KiB header block, MAYFLY_MAX_BODY_BYTES of
 * body) and validated before use, so a confused server makes the runtime exit
 * with a message instead of misbehaving.
 *
 * Addresses are parsed with inet_pton(), never resolved: the Runtime API is
 * always an IP literal, and avoiding getaddrinfo() keeps the library usable
 * in a statically linked bootstrap and inside a sandbox without NSS files.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem, MSG_NOSIGNAL, SOCK_CLOEXEC, fopencookie */
#endif

#include "mayfly_runtime.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define API_PREFIX "/2018-06-01/runtime"
#define MAX_HEAD_BYTES (64u * 1024u)
#define READ_CHUNK (64u * 1024u)
#define MAX_ERROR_TYPE 128

/* --- Buffers ------------------------------------------------------------ */

/* A growable byte buffer, always NUL-terminated once it has storage. */
typedef struct buf {
    char *data;
    size_t len;
    size_t cap;
} buf_t;

static void die_oom(void)
{
    fputs("mayfly runtime: out of memory\n", stderr);
    abort();
}

static void buf_reserve(buf_t *b, size_t extra)
{
    size_t need;
    if (__builtin_add_overflow(b->len, extra, &need) || __builtin_add_overflow(need, 1, &need))
        die_oom();
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (__builtin_mul_overflow(cap, 2, &cap)) {
            cap = need;
            break;
        }
    }
    char *data = realloc(b->data, cap);
    if (!data)
        die_oom();
    b->data = data;
    b->cap = cap;
}

static void buf_add(buf_t *b, const void *data, size_t len)
{
    buf_reserve(b, len);
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

static void buf_addstr(buf_t *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

static void buf_reset(buf_t *b)
{
    buf_reserve(b, 0);
    b->len = 0;
    b->data[0] = '\0';
}

static void buf_release(buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static int buf_vprintf(buf_t *b, const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0)
        return -EINVAL;
    buf_reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

static int buf_printf(buf_t *b, const char *fmt, ...) MAYFLY__PRINTF(2, 3);
static int buf_printf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

/* --- JSON text ---------------------------------------------------------- */

/* The length of the valid UTF-8 sequence at s[0..len), or 0 if it is not
 * one (overlong forms, surrogates and code points past U+10FFFF included). */
static size_t utf8_sequence(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (len < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

/* Append s[0..len) as a JSON string literal.  Invalid UTF-8 becomes U+FFFD
 * so that a strict parser on the other side never rejects the document. */
static void json_quote(buf_t *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;

    buf_add(b, "\"", 1);
    while (i < len) {
        unsigned char c = p[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        size_t seq = c >= 0x80 ? utf8_sequence(p + i, len - i) : 0;
        if (seq) {
            i += seq;
            continue;
        }
        buf_add(b, s + run, i - run);
        switch (c) {
        case '"': buf_add(b, "\\\"", 2); break;
        case '\\': buf_add(b, "\\\\", 2); break;
        case '\n': buf_add(b, "\\n", 2); break;
        case '\r': buf_add(b, "\\r", 2); break;
        case '\t': buf_add(b, "\\t", 2); break;
        case '\b': buf_add(b, "\\b", 2); break;
        case '\f': buf_add(b, "\\f", 2); break;
        default:
            if (c < 0x20) {
                char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                buf_add(b, esc, sizeof esc);
            } else {
                buf_add(b, "\xef\xbf\xbd", 3);
            }
        }
        i++;
        run = i;
    }
    buf_add(b, s + run, i - run);
    buf_add(b, "\"", 1);
}

/* --- Reading JSON: just enough to pick one member out of an object ------ */

typedef struct json_in {
    const char *p;
    const char *end;
} json_in_t;

static void json_ws(json_in_t *in)
{
    while (in->p < in->end && (*in->p == ' ' || *in->p == '\t' || *in->p == '\n' || *in->p == '\r'))
        in->p++;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Emit one code point as UTF-8 into out[0..size) at *len, counting bytes
 * even past the end so the caller learns the length it would need. */
static void put_utf8(char *out, size_t size, size_t *len, unsigned cp)
{
    char tmp[4];
    size_t n;
    if (cp < 0x80) {
        tmp[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        tmp[0] = (char)(0xc0 | (cp >> 6));
        tmp[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        tmp[0] = (char)(0xe0 | (cp >> 12));
        tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        tmp[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        tmp[0] = (char)(0xf0 | (cp >> 18));
        tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        tmp[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    for (size_t i = 0; i < n; i++, (*len)++)
        if (out && *len < size)
            out[*len] = tmp[i];
}

/* Parse the string literal at in->p, decoding it into out[0..size) when out
 * is not NULL.  Returns its decoded length, or -EINVAL. */
static long json_string(json_in_t *in, char *out, size_t size)
{
    size_t len = 0;
    if (in->p >= in->end || *in->p != '"')
        return -EINVAL;
    in->p++;
    while (in->p < in->end) {
        unsigned char c = (unsigned char)*in->p++;
        if (c == '"')
            return len > (size_t)0x7fffffff ? -EINVAL : (long)len;
        if (c < 0x20)
            return -EINVAL;
        if (c != '\\') {
            if (out && len < size)
                out[len] = (char)c;
            len++;
            continue;
        }
        if (in->p >= in->end)
            return -EINVAL;
        char e = *in->p++;
        unsigned cp;
        switch (e) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (in->end - in->p < 4 || hex4(in->p, &cp) < 0)
                return -EINVAL;
            in->p += 4;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                unsigned lo;
                if (in->end - in->p >= 6 && in->p[0] == '\\' && in->p[1] == 'u' &&
                    hex4(in->p + 2, &lo) == 0 && lo >= 0xdc00 && lo <= 0xdfff) {
                    in->p += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                } else {
                    cp = 0xfffd; /* a lone high surrogate */
                }
            } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                cp = 0xfffd; /* a lone low surrogate */
            }
            break;
        default: return -EINVAL;
        }
        put_utf8(out, size, &len, cp);
    }
    return -EINVAL;
}

/* Skip one value of any kind.  Nesting is tracked with an explicit stack, so
 * hostile input cannot exhaust the C stack. */
static int json_skip(json_in_t *in)
{
    char stack[256];
    size_t depth = 0;
    bool expect_value = true;

    for (;;) {
        json_ws(in);
        if (in->p >= in->end)
            return -EINVAL;
        char c = *in->p;
        if (expect_value) {
            if (c == '{' || c == '[') {
                if (depth == sizeof stack)
                    return -EINVAL;
                stack[depth++] = c == '{' ? '}' : ']';
                in->p++;
                json_ws(in);
                if (in->p < in->end && *in->p == stack[depth - 1]) {
                    in->p++;
                    depth--;
                    expect_value = false;
                    if (depth == 0)
                        return 0;
                    continue;
                }
                if (stack[depth - 1] == '}') {
                    if (json_string(in, NULL, 0) < 0)
                        return -EINVAL;
                    json_ws(in);
                    if (in->p >= in->end || *in->p++ != ':')
                        return -EINVAL;
                }
                continue;
            }
            if (c == '"') {
                if (json_string(in, NULL, 0) < 0)
                    return -EINVAL;
            } else {
                /* A number or a literal: its characters, validated loosely. */
                const char *start = in->p;
                while (in->p < in->end &&
                       ((*in->p >= '0' && *in->p <= '9') || (*in->p >= 'a' && *in->p <= 'z') ||
                        *in->p == '-' || *in->p == '+' || *in->p == '.' || *in->p == 'E'))
                    in->p++;
                if (in->p == start)
                    return -EINVAL;
            }
            expect_value = false;
            if (depth == 0)
                return 0;
            continue;
        }
        /* After a value inside a container: a comma or the closer. */
        if (c == ',') {
            in->p++;
            if (stack[depth - 1] == '}') {
                json_ws(in);
                if (json_string(in, NULL, 0) < 0)
                    return -EINVAL;
                json_ws(in);
                if (in->p >= in->end || *in->p++ != ':')
                    return -EINVAL;
            }
            expect_value = true;
        } else if (c == stack[depth - 1]) {
            in->p++;
            if (--depth == 0)
                return 0;
        } else {
            return -EINVAL;
        }
    }
}

/* Finds the member `key` of the JSON object in json[0..len) (top level
 * only) and leaves *in at its value: 0, -ENOENT (no such member, or not an
 * object) or -EINVAL (not JSON as far as it was read). */
static int json_member(const char *json, size_t len, const char *key, json_in_t *in)
{
    char name[256];
    size_t key_len = strlen(key);
    *in = (json_in_t){json, json + len};

    if (!json || key_len >= sizeof name)
        return -EINVAL;
    json_ws(in);
    if (in->p >= in->end || *in->p != '{')
        return in->p >= in->end ? -EINVAL : -ENOENT;
    in->p++;
    json_ws(in);
    if (in->p < in->end && *in->p == '}')
        return -ENOENT;
    for (;;) {
        json_ws(in);
        long n = json_string(in, name, sizeof name - 1);
        if (n < 0)
            return -EINVAL;
        json_ws(in);
        if (in->p >= in->end || *in->p++ != ':')
            return -EINVAL;
        json_ws(in);
        if ((size_t)n == key_len && memcmp(name, key, key_len) == 0)
            return 0;
        if (json_skip(in) < 0)
            return -EINVAL;
        json_ws(in);
        if (in->p >= in->end)
            return -EINVAL;
        if (*in->p == '}')
            return -ENOENT;
        if (*in->p++ != ',')
            return -EINVAL;
    }
}

int mayfly_json_get_string(const char *json, size_t len, const char *key, char *out,
                           size_t out_size)
{
    json_in_t in;
    int rc = json_member(json, len, key, &in);
    if (rc < 0)
        return rc;
    if (in.p >= in.end || *in.p != '"')
        return -EINVAL;
    long v = json_string(&in, out, out_size);
    if (v < 0)
        return -EINVAL;
    if ((size_t)v >= out_size)
        return -ENOSPC;
    out[v] = '\0';
    return v > 0x7fffffff ? -ENOSPC : (int)v;
}

/* The integer member `key`: 0, -ENOENT, or -EINVAL (not an integer that
 * fits int64_t). */
static int json_get_int64(const char *json, size_t len, const char *key, int64_t *out)
{
    json_in_t in;
    int rc = json_member(json, len, key, &in);
    if (rc < 0)
        return rc;
    bool neg = in.p < in.end && *in.p == '-';
    if (neg)
        in.p++;
    if (in.p >= in.end || *in.p < '0' || *in.p > '9')
        return -EINVAL;
    uint64_t v = 0;
    for (; in.p < in.end && *in.p >= '0' && *in.p <= '9'; in.p++) {
        if (v > (UINT64_MAX - 9) / 10)
            return -EINVAL;
        v = v * 10 + (uint64_t)(*in.p - '0');
    }
    if (in.p < in.end && (*in.p == '.' || *in.p == 'e' || *in.p == 'E'))
        return -EINVAL;
    if (v > (uint64_t)INT64_MAX + (neg ? 1 : 0))
        return -EINVAL;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

/* --- The connection to the Runtime API ---------------------------------- */

/* The response headers the runtime needs, pointing into conn.head. */
typedef struct resp_headers {
    const char *request_id;
    const char *deadline_ms;
    const char *function_arn;
    const char *trace_id;
    const char *client_context;
    const char *cognito_identity;
    const char *content_length;
    const char *transfer_encoding;
    const char *connection;
    const char *etag;
    const char *function_error; /* X-Mayfly-Function-Error */
} resp_headers_t;

typedef struct conn {
    int fd;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char host[256]; /* the Host header: AWS_LAMBDA_RUNTIME_API as given */
    buf_t in;       /* bytes received, unconsumed from in_off on */
    size_t in_off;
    buf_t head; /* the current response's header block */
    buf_t body; /* the current response's body */
    buf_t req;  /* the request head being sent */
    int status;
    resp_headers_t hdr;
    bool more_expected; /* a pipelined response follows the current one */
} conn_t;

static void conn_close(conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->in.len = 0;
    c->in_off = 0;
}

static void conn_release(conn_t *c)
{
    conn_close(c);
    buf_release(&c->in);
    buf_release(&c->head);
    buf_release(&c->body);
    buf_release(&c->req);
}

/* Parse "HOST:PORT" ("[V6]:PORT" for IPv6).  "localhost" is accepted as the
 * loopback address; other names are refused rather than resolved. */
static int conn_init(conn_t *c, const char *api)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    if (!api || !*api)
        api = "127.0.0.1:9001";
    size_t len = strlen(api);
    const char *colon = strrchr(api, ':');
    if (len >= sizeof c->host || !colon || colon[1] == '\0')
        return -EINVAL;
    for (const char *p = api; *p; p++)
        if (*p <= ' ' || *p >= 0x7f)
            return -EINVAL;
    unsigned long port = 0;
    for (const char *p = colon + 1; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        port = port * 10 + (unsigned long)(*p - '0');
        if (port > 65535)
            return -EINVAL;
    }
    if (port == 0)
        return -EINVAL;

    char host[sizeof c->host];
    size_t host_len = (size_t)(colon - api);
    const char *h = api;
    if (host_len >= 2 && api[0] == '[' && api[host_len - 1] == ']') {
        h++;
        host_len -= 2;
    }
    memcpy(host, h, host_len);
    host[host_len] = '\0';
    if (host_len == 0 || strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");

    struct sockaddr_in *v4 = (struct sockaddr_in *)&c->addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&c->addr;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        c->addr_len = sizeof *v4;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        c->addr_len = sizeof *v6;
    } else {
        return -EINVAL;
    }
    memcpy(c->host, api, len + 1);
    return 0;
}

static int conn_connect(conn_t *c)
{
    int fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* Requests are written whole; Nagle would only delay the last segment. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&c->addr, c->addr_len) < 0) {
        int err = errno;
        if (err == EINTR) {
            /* The connection goes on in the background; wait for it. */
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            socklen_t elen = sizeof err;
            while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
                ;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
                err = errno;
        }
        if (err) {
            close(fd);
            return -err;
        }
    }
    c->fd = fd;
    c->in.len = 0;
    c->in_off = 0;
    return 0;
}

static int send_all(int fd, struct iovec *iov, int iovcnt)
{
    while (iovcnt > 0 && iov->iov_len == 0) {
        iov++;
        iovcnt--;
    }
    while (iovcnt > 0) {
        /* MSG_NOSIGNAL: a closed connection is an error to handle, not a
         * SIGPIPE that kills the function. */
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
        ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        size_t left = (size_t)n;
        while (iovcnt > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

/* Receive more bytes into c->in.  Returns how many, 0 at the end of the
 * connection, or a negative errno value. */
static ssize_t conn_fill(conn_t *c)
{
    if (c->in_off == c->in.len) {
        c->in.len = c->in_off = 0;
    } else if (c->in_off > 0 && c->in.cap - c->in.len < READ_CHUNK / 2) {
        memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
        c->in.len -= c->in_off;
        c->in_off = 0;
    }
    buf_reserve(&c->in, READ_CHUNK);
    for (;;) {
        ssize_t n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len - 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == ECONNRESET ? 0 : -errno;
        c->in.len += (size_t)n;
        c->in.data[c->in.len] = '\0';
        return n;
    }
}

static size_t conn_avail(const conn_t *c)
{
    return c->in.len - c->in_off;
}

static bool token_eq(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

/* Does a comma-separated header value contain `token`?  Used for Connection:
 * close and for the last transfer coding. */
static bool header_has_token(const char *value, const char *token)
{
    size_t tlen = strlen(token);
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        const char *end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if ((size_t)(end - start) == tlen && strncasecmp(start, token, tlen) == 0)
            return true;
    }
    return false;
}

static bool ends_with_chunked(const char *value)
{
    const char *last = strrchr(value, ',');
    last = last ? last + 1 : value;
    while (*last == ' ' || *last == '\t')
        last++;
    size_t n = strlen(last);
    while (n > 0 && (last[n - 1] == ' ' || last[n - 1] == '\t'))
        n--;
    return n == 7 && strncasecmp(last, "chunked", 7) == 0;
}

/* Split the header block in c->head in place and pick out the headers we use.
 * Returns 0 or -EPROTO. */
static int parse_head(conn_t *c, bool *http10)
{
    char *p = c->head.data;
    char *eol = strstr(p, "\r\n");
    char *line_end = eol ? eol : p + c->head.len;

    /* Status line: HTTP/1.x SP 3DIGIT [SP reason] */
    if (line_end - p < 12 || strncmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') ||
        p[8] != ' ' || p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' ||
        p[11] > '9' || (line_end - p > 12 && p[12] != ' '))
        return -EPROTO;
    *http10 = p[7] == '0';
    c->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    memset(&c->hdr, 0, sizeof c->hdr);

    while (eol) {
        char *line = eol + 2;
        eol = strstr(line, "\r\n");
        char *end = eol ? eol : c->head.data + c->head.len;
        *end = '\0';
        if (line == end)
            continue;
        if (*line == ' ' || *line == '\t')
            return -EPROTO; /* obsolete line folding */
        char *colon = memchr(line, ':', (size_t)(end - line));
        if (!colon || colon == line)
            return -EPROTO;
        for (char *q = line; q < colon; q++)
            if (*q <= ' ' || *q >= 0x7f)
                return -EPROTO;
        *colon = '\0';
        char *value = colon + 1;
        while (*value == ' ' || *value == '\t')
            value++;
        char *vend = end;
        while (vend > value && (vend[-1] == ' ' || vend[-1] == '\t'))
            *--vend = '\0';
        for (char *q = value; q < vend; q++)
            if ((unsigned char)*q < ' ' && *q != '\t')
                return -EPROTO;

        if (token_eq(line, "Lambda-Runtime-Aws-Request-Id"))
            c->hdr.request_id = value;
        else if (token_eq(line, "Lambda-Runtime-Deadline-Ms"))
            c->hdr.deadline_ms = value;
        else if (token_eq(line, "Lambda-Runtime-Invoked-Function-Arn"))
            c->hdr.function_arn = value;
        else if (token_eq(line, "Lambda-Runtime-Trace-Id"))
            c->hdr.trace_id = value;
        else if (token_eq(line, "Lambda-Runtime-Client-Context"))
            c->hdr.client_context = value;
        else if (token_eq(line, "Lambda-Runtime-Cognito-Identity"))
            c->hdr.cognito_identity = value;
        else if (token_eq(line, "Content-Length")) {
            if (c->hdr.content_length && strcmp(c->hdr.content_length, value) != 0)
                return -EPROTO; /* conflicting lengths: request smuggling shape */
            c->hdr.content_length = value;
        } else if (token_eq(line, "Transfer-Encoding"))
            c->hdr.transfer_encoding = value;
        else if (token_eq(line, "Connection"))
            c->hdr.connection = value;
        else if (token_eq(line, "ETag"))
            c->hdr.etag = value;
        else if (token_eq(line, "X-Mayfly-Function-Error"))
            c->hdr.function_error = value;
    }
    return 0;
}

/* Make sure at least `need` unconsumed bytes are in c->in. */
static int conn_want(conn_t *c, size_t need)
{
    while (conn_avail(c) < need) {
        ssize_t n = conn_fill(c);
        if (n == 0)
            return -ECONNRESET;
        if (n < 0)
            return (int)n;
    }
    return 0;
}

/* The next CRLF-terminated line in c->in, NUL-terminated in place; at most
 * `limit` bytes long.  Consumes it. */
static int conn_line(conn_t *c, size_t limit, char **line)
{
    for (;;) {
        char *start = c->in.data + c->in_off;
        char *eol = conn_avail(c) ? memmem(start, conn_avail(c), "\r\n", 2) : NULL;
        if (eol) {
            *eol = '\0';
            c->in_off += (size_t)(eol - start) + 2;
            *line = start;
            return 0;
        }
        if (conn_avail(c) > limit)
            return -EPROTO;
        ssize_t n = conn_fill(c);
        if (n == 0)
            return -ECONNRESET;
        if (n < 0)
            return (int)n;
    }
}

static int read_chunked(conn_t *c)
{
    for (;;) {
        char *line;
        int rc = conn_line(c, 1024, &line);
        if (rc < 0)
            return rc;
        char *semi = strchr(line, ';');
        if (semi)
            *semi = '\0';
        size_t size = 0, digits = 0;
        char *p = line;
        for (;; p++, digits++) {
            int v;
            if (*p >= '0' && *p <= '9')
                v = *p - '0';
            else if (*p >= 'a' && *p <= 'f')
                v = *p - 'a' + 10;
            else if (*p >= 'A' && *p <= 'F')
                v = *p - 'A' + 10;
            else
                break;
            if (size > MAYFLY_MAX_BODY_BYTES)
                return -EMSGSIZE;
            size = size * 16 + (size_t)v;
        }
        while (*p == ' ' || *p == '\t')
            p++;
        if (digits == 0 || *p != '\0')
            return -EPROTO;
        if (size > MAYFLY_MAX_BODY_BYTES - c->body.len)
            return -EMSGSIZE;
        if (size == 0) {
            /* Trailers, if any, end with an empty line. */
            for (size_t n = 0;; n++) {
                if (n > 64)
                    return -EPROTO;
                rc = conn_line(c, MAX_HEAD_BYTES, &line);
                if (rc < 0)
                    return rc;
                if (*line == '\0')
                    return 0;
            }
        }
        while (size > 0) {
            if (conn_avail(c) == 0 && (rc = conn_want(c, 1)) < 0)
                return rc;
            size_t take = conn_avail(c) < size ? conn_avail(c) : size;
            buf_add(&c->body, c->in.data + c->in_off, take);
            c->in_off += take;
            size -= take;
        }
        if ((rc = conn_want(c, 2)) < 0)
            return rc;
        if (memcmp(c->in.data + c->in_off, "\r\n", 2) != 0)
            return -EPROTO;
        c->in_off += 2;
    }
}

static int read_length(conn_t *c, size_t length)
{
    buf_reserve(&c->body, length);
    size_t take = conn_avail(c) < length ? conn_avail(c) : length;
    buf_add(&c->body, c->in.data + c->in_off, take);
    c->in_off += take;
    /* The rest goes straight from the socket into the body: a 6 MiB event is
     * copied once, not twice. */
    while (c->body.len < length) {
        ssize_t n = recv(c->fd, c->body.data + c->body.len, length - c->body.len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return -ECONNRESET;
        if (n < 0)
            return -errno;
        c->body.len += (size_t)n;
    }
    c->body.data[c->body.len] = '\0';
    return 0;
}

static int read_to_close(conn_t *c)
{
    buf_add(&c->body, c->in.data + c->in_off, conn_avail(c));
    c->in_off = c->in.len;
    for (;;) {
        if (c->body.len > MAYFLY_MAX_BODY_BYTES)
            return -EMSGSIZE;
        buf_reserve(&c->body, READ_CHUNK);
        ssize_t n = recv(c->fd, c->body.data + c->body.len, c->body.cap - c->body.len - 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        c->body.len += (size_t)n;
    }
    c->body.data[c->body.len] = '\0';
    return c->body.len > MAYFLY_MAX_BODY_BYTES ? -EMSGSIZE : 0;
}

/* Read one response into c->status, c->hdr and c->body.  *got_any tells the
 * caller whether the server sent anything at all, which decides whether the
 * request may be retried. */
static int conn_read_response(conn_t *c, bool *got_any)
{
    bool http10;
    buf_reserve(&c->in, 0); /* c->in.data + c->in_off needs storage behind it */
    for (;;) {
        char *start, *end;
        for (;;) {
            start = c->in.data + c->in_off;
            end = conn_avail(c) >= 4 ? memmem(start, conn_avail(c), "\r\n\r\n", 4) : NULL;
            if (end)
                break;
            if (conn_avail(c) > MAX_HEAD_BYTES)
                return -EMSGSIZE;
            ssize_t n = conn_fill(c);
            if (n == 0)
                return -ECONNRESET;
            if (n < 0)
                return (int)n;
            *got_any = true;
        }
        *got_any = true;
        size_t head_len = (size_t)(end - start);
        if (head_len > MAX_HEAD_BYTES)
            return -EMSGSIZE;
        buf_reset(&c->head);
        buf_add(&c->head, start, head_len);
        c->in_off += head_len + 4;
        int rc = parse_head(c, &http10);
        if (rc < 0)
            return rc;
        if (c->status >= 200)
            break;
        /* An interim response (100 Continue); the real one follows. */
    }

    bool keep = !http10 && !(c->hdr.connection && header_has_token(c->hdr.connection, "close"));
    int rc;
    buf_reset(&c->body);
    if (c->hdr.transfer_encoding && !token_eq(c->hdr.transfer_encoding, "identity")) {
        if (!ends_with_chunked(c->hdr.transfer_encoding))
            return -EPROTO;
        rc = read_chunked(c);
    } else if (c->hdr.content_length) {
        size_t length = 0;
        const char *p = c->hdr.content_length;
        if (!*p)
            return -EPROTO;
        for (; *p; p++) {
            if (*p < '0' || *p > '9')
                return -EPROTO;
            length = length * 10 + (size_t)(*p - '0');
            if (length > MAYFLY_MAX_BODY_BYTES)
                return -EMSGSIZE;
        }
        rc = read_length(c, length);
    } else if (c->status == 204 || c->status == 304) {
        rc = 0;
    } else {
        keep = false;
        rc = read_to_close(c);
    }
    if (rc < 0)
        return rc;
    /* Bytes past the response were never asked for; the connection's state
     * is unknowable, so start the next request on a fresh one. */
    if (!keep || (conn_avail(c) > 0 && !c->more_expected))
        conn_close(c);
    return 0;
}

/* Send one request and read its response.  A reused connection that the
 * server closed while it sat idle fails before any byte of the response; the
 * request was not processed, so it is sent again once on a new connection. */
static int conn_request_typed(conn_t *c, const char *method, const char *path,
                              const char *extra_headers, const char *content_type,
                              const void *body, size_t body_len, bool has_body)
{
    buf_reset(&c->req);
    buf_printf(&c->req, "%s %s HTTP/1.1\r\nHost: %s\r\n%s", method, path, c->host,
               extra_headers ? extra_headers : "");
    if (has_body)
        buf_printf(&c->req, "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n",
                   content_type ? content_type : "application/json", body_len);
    else
        buf_addstr(&c->req, "\r\n");

    for (int attempt = 0;; attempt++) {
        bool reused = c->fd >= 0;
        bool got_any = false;
        int rc;
        if (!reused && (rc = conn_connect(c)) < 0)
            return rc;
        struct iovec iov[2] = {
            {.iov_base = c->req.data, .iov_len = c->req.len},
            {.iov_base = (void *)body, .iov_len = has_body ? body_len : 0},
        };
        rc = send_all(c->fd, iov, 2);
        if (rc == 0)
            rc = conn_read_response(c, &got_any);
        if (rc == 0)
            return 0;
        conn_close(c);
        if (attempt == 0 && reused && !got_any &&
            (rc == -EPIPE || rc == -ECONNRESET || rc == -ENOTCONN))
            continue;
        return rc;
    }
}

static int conn_request(conn_t *c, const char *method, const char *path, const char *extra_headers,
                        const void *body, size_t body_len, bool has_body)
{
    return conn_request_typed(c, method, path, extra_headers, NULL, body, body_len, has_body);
}

static const char *describe(int rc)
{
    switch (rc) {
    case -EPROTO: return "malformed HTTP response";
    case -EMSGSIZE: return "response too large";
    case -ECONNRESET: return "connection closed by the Runtime API";
    default: return strerror(-rc);
    }
}

/* --- Building requests -------------------------------------------------- */

/* Request ids go into a URL path: anything but unreserved characters is
 * percent-encoded. */
static void add_path_segment(buf_t *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            buf_add(b, p, 1);
        } else {
            char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            buf_add(b, esc, 3);
        }
    }
}

/* The error type also travels as a header value: printable ASCII only. */
static void add_error_type_header(buf_t *b, const char *type)
{
    buf_addstr(b, "Lambda-Runtime-Function-Error-Type: ");
    size_t n = 0;
    for (const char *p = type; *p && n < MAX_ERROR_TYPE; p++, n++)
        buf_add(b, (*p > ' ' && *p < 0x7f) ? p : "_", 1);
    if (n == 0)
        buf_addstr(b, "Unknown");
    buf_addstr(b, "\r\n");
}

static void error_json(buf_t *b, const char *type, const char *message)
{
    buf_reset(b);
    buf_addstr(b, "{\"errorMessage\":");
    json_quote(b, message, strlen(message));
    buf_addstr(b, ",\"errorType\":");
    json_quote(b, type, strlen(type));
    buf_addstr(b, ",\"stackTrace\":[]}");
}

/* Log an error the way the other mayfly runtimes do, then POST it. */
static int post_error(conn_t *c, const char *path, const char *type, const char *message)
{
    buf_t json = {0}, headers = {0};
    fflush(stdout);
    fprintf(stderr, "[ERROR] %s: %s\n", type, message);
    fflush(stderr);
    error_json(&json, type, message);
    add_error_type_header(&headers, type);
    int rc = conn_request(c, "POST", path, headers.data, json.data, json.len, true);
    buf_release(&json);
    buf_release(&headers);
    return rc;
}

static void base64_encode(buf_t *b, const void *data, size_t len)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < len ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < len ? p[i + 2] : 0);
        char out[4] = { tbl[v >> 18 & 63], tbl[v >> 12 & 63],
                        i + 1 < len ? tbl[v >> 6 & 63] : '=', i + 2 < len ? tbl[v & 63] : '=' };
        buf_add(b, out, 4);
    }
}

/* --- Responses ---------------------------------------------------------- */

struct mayfly_response {
    buf_t body;
    bool written;
    bool is_error;
    buf_t error_type;
    buf_t error_message;
    /* A streamed answer: its own connection to the Runtime API (the
     * address of `api`), and where it goes. */
    const conn_t *api;
    const char *path;             /* .../invocation/ID/response */
    conn_t stream;
    bool streaming;
    int stream_error;             /* a failed write's errno value (negative) */
};

static void response_reset(mayfly_response_t *res)
{
    buf_reset(&res->body);
    buf_reset(&res->error_type);
    buf_reset(&res->error_message);
    res->written = false;
    res->is_error = false;
    res->streaming = false;
    res->stream_error = 0;
}

/* --- Streamed answers ------------------------------------------------------
 *
 * POST .../response with Lambda-Runtime-Function-Response-Mode: streaming
 * and a chunked body, on a connection of its own; each write is a chunk,
 * sent before the write returns (a slow reader of the answer blocks the
 * writes, through TCP). The end is the handler's return: the last chunk,
 * with Lambda's error trailers when the handler failed. */

static int stream_open(mayfly_response_t *res, const char *content_type, const char *prelude,
                       size_t prelude_len)
{
    if (res->streaming)
        return -EALREADY;
    conn_t *s = &res->stream;
    s->fd = -1;
    s->addr = res->api->addr;
    s->addr_len = res->api->addr_len;
    memcpy(s->host, res->api->host, sizeof s->host);
    int rc = conn_connect(s);
    if (rc < 0)
        return rc;
    res->streaming = true;
    buf_reset(&s->req);
    buf_printf(&s->req,
               "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\n"
               "Lambda-Runtime-Function-Response-Mode: streaming\r\n"
               "Transfer-Encoding: chunked\r\n"
               "Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body"
               "\r\n\r\n",
               res->path, s->host, content_type);
    struct iovec iov = {.iov_base = s->req.data, .iov_len = s->req.len};
    rc = send_all(s->fd, &iov, 1);
    if (rc == 0 && prelude_len)
        rc = mayfly_stream_write(res, prelude, prelude_len);
    if (rc < 0)
        res->stream_error = rc;
    return rc;
}

int mayfly_stream_begin(mayfly_response_t *res, const char *content_type)
{
    return stream_open(res, content_type && *content_type ? content_type
                                                          : "application/octet-stream",
                       NULL, 0);
}

int mayfly_stream_begin_http(mayfly_response_t *res, int status_code,
                             const char *const *headers)
{
    buf_t p = {0};
    int cookies = 0;
    buf_printf(&p, "{\"statusCode\":%d,\"headers\":{", status_code);
    int n = 0;
    for (size_t i = 0; headers && headers[i] && headers[i + 1]; i += 2) {
        if (!strcasecmp(headers[i], "Set-Cookie"))
            continue;
        buf_addstr(&p, n++ ? "," : "");
        json_quote(&p, headers[i], strlen(headers[i]));
        buf_addstr(&p, ":");
        json_quote(&p, headers[i + 1], strlen(headers[i + 1]));
    }
    buf_addstr(&p, "},\"cookies\":[");
    for (size_t i = 0; headers && headers[i] && headers[i + 1]; i += 2) {
        if (strcasecmp(headers[i], "Set-Cookie"))
            continue;
        buf_addstr(&p, cookies++ ? "," : "");
        json_quote(&p, headers[i + 1], strlen(headers[i + 1]));
    }
    buf_addstr(&p, "]}");
    buf_add(&p, "\0\0\0\0\0\0\0\0", 8);
    int rc = stream_open(res, "application/vnd.awslambda.http-integration-response", p.data,
                         p.len);
    buf_release(&p);
    return rc;
}

int mayfly_stream_write(mayfly_response_t *res, const void *data, size_t len)
{
    if (!res->streaming) {
        int rc = mayfly_stream_begin(res, NULL);
        if (rc < 0)
            return rc;
    }
    if (res->stream_error)
        return res->stream_error;
    if (!len)
        return 0;
    char size[24];
    int n = snprintf(size, sizeof size, "%zx\r\n", len);
    struct iovec iov[3] = {
        {.iov_base = size, .iov_len = (size_t)n},
        {.iov_base = (void *)data, .iov_len = len},
        {.iov_base = "\r\n", .iov_len = 2},
    };
    int rc = send_all(res->stream.fd, iov, 3);
    if (rc < 0)
        res->stream_error = rc;
    return rc;
}

/* Ends a streamed answer: a success, or the handler's error in the
 * trailers. Returns the Runtime API's status, or a negative errno value. */
static int stream_end(mayfly_response_t *res, bool failed)
{
    conn_t *s = &res->stream;
    int rc = res->stream_error;
    if (rc == 0) {
        buf_t tail = {0};
        buf_addstr(&tail, "0\r\n");
        if (failed) {
            buf_t json = {0};
            error_json(&json, res->error_type.data, res->error_message.data);
            add_error_type_header(&tail, res->error_type.data);
            buf_addstr(&tail, "Lambda-Runtime-Function-Error-Body: ");
            base64_encode(&tail, json.data, json.len);
            buf_addstr(&tail, "\r\n");
            buf_release(&json);
        }
        buf_addstr(&tail, "\r\n");
        struct iovec iov = {.iov_base = tail.data, .iov_len = tail.len};
        rc = send_all(s->fd, &iov, 1);
        buf_release(&tail);
        bool got_any = false;
        if (rc == 0)
            rc = conn_read_response(s, &got_any);
    }
    int status = rc < 0 ? rc : s->status;
    conn_release(s);
    memset(s, 0, sizeof *s);
    s->fd = -1;
    res->streaming = false;
    return status;
}

int mayfly_response_set(mayfly_response_t *res, const void *data, size_t len)
{
    buf_reset(&res->body);
    buf_add(&res->body, data, len);
    res->written = true;
    return 0;
}

int mayfly_response_append(mayfly_response_t *res, const void *data, size_t len)
{
    buf_add(&res->body, data, len);
    res->written = true;
    return 0;
}

int mayfly_response_printf(mayfly_response_t *res, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = buf_vprintf(&res->body, fmt, ap);
    va_end(ap);
    res->written = true;
    return rc;
}

int mayfly_response_append_json_string(mayfly_response_t *res, const char *s, size_t len)
{
    json_quote(&res->body, s, len);
    res->written = true;
    return 0;
}

int mayfly_response_error(mayfly_response_t *res, const char *error_type, const char *fmt, ...)
{
    va_list ap;
    buf_reset(&res->error_type);
    buf_addstr(&res->error_type, error_type && *error_type ? error_type : "HandlerError");
    buf_reset(&res->error_message);
    va_start(ap, fmt);
    if (buf_vprintf(&res->error_message, fmt, ap) < 0)
        buf_addstr(&res->error_message, fmt);
    va_end(ap);
    res->is_error = true;
    return -1;
}

int64_t mayfly_event_remaining_ms(const mayfly_event_t *event)
{
    if (event->deadline_ms <= 0)
        return -1;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    return event->deadline_ms > now_ms ? event->deadline_ms - now_ms : 0;
}

/* --- The loop ------------------------------------------------------------ */

static int64_t parse_ms(const char *s)
{
    int64_t v = 0;
    if (!s || !*s)
        return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (INT64_MAX - 9) / 10)
            return 0;
        v = v * 10 + (*s - '0');
    }
    return v;
}

/* Posts a result and asks for the next event in one write: the runtime
 * API answers both in order, and the server, seeing the two together, can
 * send the acknowledgement and the next event in one write as well. That
 * is one wake-up per invocation on each side instead of two. On success
 * the next event's response is in c. Returns -EAGAIN when the pipelined
 * path cannot be used (the caller then posts and polls one at a time). */
static int post_and_next(conn_t *c, const char *path, const void *body, size_t body_len,
                         int *post_status)
{
    if (c->fd < 0)
        return -EAGAIN;
    buf_reset(&c->req);
    buf_printf(&c->req,
               "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
               "Content-Length: %zu\r\n\r\n",
               path, c->host, body_len);
    size_t head_len = c->req.len;
    buf_printf(&c->req, "GET " API_PREFIX "/invocation/next HTTP/1.1\r\nHost: %s\r\n\r\n",
               c->host);
    struct iovec iov[3] = {
        {.iov_base = c->req.data, .iov_len = head_len},
        {.iov_base = (void *)body, .iov_len = body_len},
        {.iov_base = c->req.data + head_len, .iov_len = c->req.len - head_len},
    };
    bool got_any = false;
    int rc = send_all(c->fd, iov, 3);
    if (rc < 0) {
        /* Nothing was answered: the server closed an idle connection. */
        conn_close(c);
        return -EAGAIN;
    }
    c->more_expected = true;
    rc = conn_read_response(c, &got_any);
    c->more_expected = false;
    if (rc < 0) {
        conn_close(c);
        return got_any ? rc : -EAGAIN;
    }
    *post_status = c->status;
    if (c->fd < 0)
        return -ECONNRESET; /* the server closed after the first answer */
    rc = conn_read_response(c, &got_any);
    if (rc < 0)
        conn_close(c);
    return rc;
}

/* --- Many calls at once (AWS_LAMBDA_MAX_CONCURRENCY) ----------------------
 *
 * With N > 1 the platform hands the instance up to N calls at once: N
 * threads each run the loop below on a connection of their own. The
 * instance's stdout and stderr are shared by the calls, and the platform
 * files a line under the call whose request id it carries; so each thread
 * knows its call's id (call_id), and stdout and stderr become streams that
 * gather each thread's bytes into lines of its own and write every line in
 * one write(2), tagged "TIMESTAMP\tREQUEST_ID\tLEVEL\t" when the thread
 * serves a call. A thread the handler started has no call: its lines go out
 * as they are. */

static int concurrency = 1;
static _Thread_local const char *call_id;

/* AWS_LAMBDA_MAX_CONCURRENCY: 1 when absent or not a number from 1 on. */
static int max_concurrency(void)
{
    const char *s = getenv("AWS_LAMBDA_MAX_CONCURRENCY");
    long n = 0;
    if (!s || !*s)
        return 1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return 1;
        n = n * 10 + (*s - '0');
        if (n > 100000)
            return 1;
    }
    return n >= 1 ? (int)n : 1;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* "2024-05-01T12:00:00.123Z", as Lambda's runtimes stamp their lines. */
static void add_timestamp(buf_t *b)
{
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    buf_printf(b, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
               tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);
}

/* One record in Lambda's text format, its own line breaks kept inside it as
 * "\r" (the platform reads the log a line at a time), in one write. */
static void write_record(int fd, const char *level, const char *msg, size_t len)
{
    buf_t line = {0};
    add_timestamp(&line);
    buf_printf(&line, "\t%s\t%s\t", call_id ? call_id : "", level);
    size_t at = line.len;
    buf_add(&line, msg, len);
    for (char *p = line.data + at; p < line.data + line.len; p++)
        if (*p == '\n')
            *p = '\r';
    buf_add(&line, "\n", 1);
    write_all(fd, line.data, line.len);
    buf_release(&line);
}

void mayfly_log(const char *fmt, ...)
{
    buf_t msg = {0};
    va_list ap;
    va_start(ap, fmt);
    if (buf_vprintf(&msg, fmt, ap) < 0)
        buf_addstr(&msg, fmt);
    va_end(ap);
    size_t len = msg.len;
    if (len && msg.data[len - 1] == '\n')
        len--;
    fflush(stdout); /* what was printf'd before goes out before */
    write_record(STDOUT_FILENO, "INFO", msg.data, len);
    buf_release(&msg);
}

const char *mayfly_request_id(void)
{
    return call_id;
}

/* stdout and stderr with N > 1 (see above): fopencookie streams, unbuffered
 * so that each printf reaches log_stream_write in the thread that made it. */
typedef struct log_stream {
    int fd;
    const char *level;
    int index;
} log_stream_t;

static log_stream_t log_streams[2] = {
    {.fd = STDOUT_FILENO, .level = "INFO", .index = 0},
    {.fd = STDERR_FILENO, .level = "ERROR", .index = 1},
};
static _Thread_local buf_t log_partial[2]; /* this thread's unfinished lines */

static void log_stream_line(const log_stream_t *s, const char *line, size_t len)
{
    if (call_id) {
        write_record(s->fd, s->level, line, len);
    } else {
        buf_t b = {0};
        buf_add(&b, line, len);
        buf_add(&b, "\n", 1);
        write_all(s->fd, b.data, b.len);
        buf_release(&b);
    }
}

static ssize_t log_stream_write(void *cookie, const char *data, size_t len)
{
    const log_stream_t *s = cookie;
    buf_t *part = &log_partial[s->index];
    const char *p = data, *end = data + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) {
            buf_add(part, p, (size_t)(end - p));
            break;
        }
        if (part->len) {
            buf_add(part, p, (size_t)(nl - p));
            log_stream_line(s, part->data, part->len);
            part->len = 0;
        } else {
            log_stream_line(s, p, (size_t)(nl - p));
        }
        p = nl + 1;
    }
    return (ssize_t)len;
}

/* A call's unfinished last line is its own: ended at the call's end. */
static void log_streams_end_call(void)
{
    fflush(stdout);
    fflush(stderr);
    for (int i = 0; i < 2; i++) {
        if (log_partial[i].len) {
            log_stream_line(&log_streams[i], log_partial[i].data, log_partial[i].len);
            log_partial[i].len = 0;
        }
    }
}

static void log_streams_install(void)
{
    cookie_io_functions_t io = {.write = log_stream_write};
    fflush(stdout);
    fflush(stderr);
    FILE *out = fopencookie(&log_streams[0], "w", io);
    FILE *err = fopencookie(&log_streams[1], "w", io);
    if (!out || !err)
        die_oom();
    setvbuf(out, NULL, _IONBF, 0);
    setvbuf(err, NULL, _IONBF, 0);
    stdout = out;
    stderr = err;
}

/* --- Serving calls ----------------------------------------------------- */

/* One loop's state: with N > 1 each thread has its own. */
typedef struct worker {
    mayfly_handler_fn handler;
    conn_t c;
    mayfly_response_t res;
    buf_t path, request_id, stream_path;
} worker_t;

/* An answer the platform refused with a 4xx after the call's deadline: with
 * N > 1 the platform failed the call at its deadline and goes on with the
 * instance, so the late answer is expected and nothing to report. */
static bool late_answer(int status, const mayfly_event_t *ev)
{
    return concurrency > 1 && status >= 400 && status < 500 && ev->deadline_ms > 0 &&
           mayfly_event_remaining_ms(ev) == 0;
}

/* Serves calls until the Runtime API fails or answers nonsense. */
static void worker_run(worker_t *w)
{
    conn_t *c = &w->c;
    mayfly_response_t *res = &w->res;
    bool have_next = false;
    for (;;) {
        int rc = have_next ? 0
                           : conn_request(c, "GET", API_PREFIX "/invocation/next", NULL, NULL, 0,
                                          false);
        have_next = false;
        if (rc < 0) {
            fprintf(stderr, "mayfly runtime: waiting for the next event failed: %s\n",
                    describe(rc));
            break;
        }
        if (c->status != 200) {
            fprintf(stderr, "mayfly runtime: next event: HTTP %d: %.200s\n", c->status,
                    c->body.data);
            break;
        }
        if (!c->hdr.request_id || !*c->hdr.request_id) {
            fprintf(stderr, "mayfly runtime: the next event carries no request id\n");
            break;
        }

        mayfly_event_t ev = {
            .body = c->body.data,
            .body_len = c->body.len,
            .request_id = c->hdr.request_id,
            .invoked_function_arn = c->hdr.function_arn ? c->hdr.function_arn : "",
            .trace_id = c->hdr.trace_id ? c->hdr.trace_id : "",
            .client_context = c->hdr.client_context,
            .cognito_identity = c->hdr.cognito_identity,
            .deadline_ms = parse_ms(c->hdr.deadline_ms),
        };
        /* The environment is the process's: with calls side by side it
         * cannot name each one's trace, which is in ev.trace_id. */
        if (concurrency == 1) {
            if (*ev.trace_id)
                setenv("_X_AMZN_TRACE_ID", ev.trace_id, 1);
            else
                unsetenv("_X_AMZN_TRACE_ID");
        }
        buf_reset(&w->request_id);
        buf_addstr(&w->request_id, ev.request_id);
        buf_reset(&w->path);
        buf_addstr(&w->path, API_PREFIX "/invocation/");
        add_path_segment(&w->path, ev.request_id);

        response_reset(res);
        buf_reset(&w->stream_path);
        buf_addstr(&w->stream_path, w->path.data);
        buf_addstr(&w->stream_path, "/response");
        res->api = c;
        res->path = w->stream_path.data;
        call_id = w->request_id.data;
        int hrc = w->handler(&ev, res);

        /* What the handler printed belongs to this invocation: out before
         * the result is. */
        if (concurrency > 1) {
            log_streams_end_call();
        } else {
            fflush(stdout);
            fflush(stderr);
        }
        if (res->streaming) {
            bool failed = hrc != 0 || res->is_error;
            if (failed && !res->is_error)
                mayfly_response_error(res, "HandlerError", "handler returned %d", hrc);
            if (failed)
                fprintf(stderr, "[ERROR] %s: %s\n", res->error_type.data,
                        res->error_message.data);
            int st = stream_end(res, failed);
            if ((st < 0 || st >= 300) && !late_answer(st, &ev))
                fprintf(stderr, "mayfly runtime: the streamed response of %s: %s\n",
                        w->request_id.data, st < 0 ? describe(st) : "refused");
            call_id = NULL;
            continue;
        }
        if (hrc == 0 && !res->is_error) {
            buf_addstr(&w->path, "/response");
            if (!res->written)
                buf_addstr(&res->body, "null");
            int post_status = 0;
            rc = post_and_next(c, w->path.data, res->body.data, res->body.len, &post_status);
            if (rc == 0) {
                have_next = true;
                if (post_status >= 300 && !late_answer(post_status, &ev))
                    fprintf(stderr, "mayfly runtime: %s answered HTTP %d\n", w->path.data,
                            post_status);
                call_id = NULL;
                continue;
            }
            if (rc == -ECONNRESET) {
                call_id = NULL;
                continue; /* posted; the poll for more goes on a new connection */
            }
            if (rc == -EAGAIN)
                rc = conn_request(c, "POST", w->path.data, NULL, res->body.data, res->body.len,
                                  true);
        } else {
            buf_addstr(&w->path, "/error");
            if (!res->is_error)
                mayfly_response_error(res, "HandlerError", "handler returned %d", hrc);
            rc = post_error(c, w->path.data, res->error_type.data, res->error_message.data);
        }
        if (rc < 0) {
            fprintf(stderr, "mayfly runtime: reporting %s failed: %s\n", w->request_id.data,
                    describe(rc));
            break;
        }
        if (c->status >= 300 && !late_answer(c->status, &ev))
            fprintf(stderr, "mayfly runtime: %s answered HTTP %d: %.200s\n", w->path.data,
                    c->status, c->body.data);
        call_id = NULL;
    }
    call_id = NULL;
}

static void worker_release(worker_t *w)
{
    conn_release(&w->c);
    buf_release(&w->res.body);
    buf_release(&w->res.error_type);
    buf_release(&w->res.error_message);
    buf_release(&w->path);
    buf_release(&w->stream_path);
    buf_release(&w->request_id);
}

/* With N > 1: the first loop to end ends the process, as one loop's end
 * does with N = 1 (the platform starts another). */
static sem_t workers_done;

static void *worker_thread(void *arg)
{
    worker_run(arg);
    sem_post(&workers_done);
    return NULL;
}

static int run_concurrent(mayfly_handler_fn handler, const conn_t *proto, int n)
{
    log_streams_install();
    sem_init(&workers_done, 0, 0);
    for (int i = 0; i < n; i++) {
        worker_t *w = calloc(1, sizeof *w);
        if (!w)
            die_oom();
        w->handler = handler;
        w->c = *proto; /* the parsed address; each opens its own connection */
        w->res.stream.fd = -1;
        pthread_t t;
        int rc = pthread_create(&t, NULL, worker_thread, w);
        if (rc) {
            fprintf(stderr, "mayfly runtime: cannot start call thread %d of %d: %s\n", i + 1, n,
                    strerror(rc));
            if (i == 0)
                return 1;
            break; /* fewer threads serve fewer calls at once */
        }
        pthread_detach(t);
    }
    while (sem_wait(&workers_done) < 0 && errno == EINTR)
        ;
    fflush(stdout);
    fflush(stderr);
    return 1;
}

int mayfly_runtime_run(mayfly_handler_fn handler)
{
    worker_t w = {.handler = handler};
    w.res.stream.fd = -1;
    int rc = conn_init(&w.c, getenv("AWS_LAMBDA_RUNTIME_API"));
    if (rc < 0) {
        fprintf(stderr, "mayfly runtime: bad AWS_LAMBDA_RUNTIME_API\n");
        return 1;
    }
    concurrency = max_concurrency();
    if (concurrency > 1)
        return run_concurrent(handler, &w.c, concurrency);
    /* A pipe makes stdout fully buffered; the function's log lines should
     * appear as they are printed, not when the buffer fills. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    worker_run(&w);
    worker_release(&w);
    return 1;
}

int mayfly_runtime_init_error(const char *error_type, const char *fmt, ...)
{
    conn_t c;
    buf_t message = {0};
    va_list ap;
    va_start(ap, fmt);
    if (buf_vprintf(&message, fmt, ap) < 0)
        buf_addstr(&message, fmt);
    va_end(ap);
    if (!error_type || !*error_type)
        error_type = "Runtime.InitError";

    int rc = conn_init(&c, getenv("AWS_LAMBDA_RUNTIME_API"));
    if (rc == 0)
        rc = post_error(&c, API_PREFIX "/init/error", error_type, message.data);
    else
        fprintf(stderr, "[ERROR] %s: %s\n", error_type, message.data);
    if (rc < 0)
        fprintf(stderr, "mayfly runtime: cannot report the init error: %s\n", describe(rc));
    if (rc == 0 && c.status >= 300)
        fprintf(stderr, "mayfly runtime: init/error answered HTTP %d\n", c.status);
    conn_release(&c);
    buf_release(&message);
    return rc;
}

/* --- The platform's API (MAYFLY_API) ------------------------------------ */

/* Each thread has its own connection (and storage for answers): with N > 1
 * calls side by side each reaches the API by itself. */
static _Thread_local struct {
    bool ready;
    conn_t conn;
    buf_t prefix; /* the URL's path: "/mayfly/v1" */
    buf_t path;   /* the request being built */
    buf_t headers;
    buf_t error;  /* the last error answer's message */
    int status;
} api;

/* MAYFLY_API is http://HOST:PORT/PATH. */
static int api_open(void)
{
    if (api.ready)
        return 0;
    const char *url = getenv("MAYFLY_API");
    if (!url || strncmp(url, "http://", 7) != 0)
        return -EINVAL;
    const char *hostport = url + 7, *slash = strchr(hostport, '/');
    size_t n = slash ? (size_t)(slash - hostport) : strlen(hostport);
    char hp[256];
    if (n == 0 || n >= sizeof hp)
        return -EINVAL;
    memcpy(hp, hostport, n);
    hp[n] = '\0';
    int rc = conn_init(&api.conn, hp);
    if (rc < 0)
        return rc;
    buf_reset(&api.prefix);
    buf_addstr(&api.prefix, slash ? slash : "");
    while (api.prefix.len && api.prefix.data[api.prefix.len - 1] == '/')
        api.prefix.data[--api.prefix.len] = '\0';
    api.ready = true;
    return 0;
}

/* Sends the request in api.path (with api.headers) and maps the answer's
 * status: ok is the one success status. */
static int api_call(const char *method, const char *content_type, const void *body, size_t len,
                    bool has_body, int ok)
{
    buf_reset(&api.error);
    api.status = 0;
    /* The call making it: the server attributes the request to it on an
     * instance serving many calls at once (docs/concurrency.md). */
    size_t mark = api.headers.len;
    if (call_id)
        buf_printf(&api.headers, "Lambda-Runtime-Aws-Request-Id: %s\r\n", call_id);
    int rc = conn_request_typed(&api.conn, method, api.path.data, api.headers.data, content_type,
                                body, len, has_body);
    if (api.headers.data) {
        api.headers.len = mark;
        api.headers.data[mark] = '\0';
    }
    if (rc < 0) {
        buf_addstr(&api.error, describe(rc));
        return rc;
    }
    api.status = api.conn.status;
    if (api.status == ok)
        return 0;
    char msg[512];
    if (mayfly_json_get_string(api.conn.body.data, api.conn.body.len, "message", msg,
                               sizeof msg) < 0) {
        /* The message is inside "error": look there. */
        json_in_t in;
        if (json_member(api.conn.body.data, api.conn.body.len, "error", &in) == 0 &&
            mayfly_json_get_string(in.p, (size_t)(in.end - in.p), "message", msg, sizeof msg) >= 0)
            buf_addstr(&api.error, msg);
        else
            buf_printf(&api.error, "HTTP %d", api.status);
    } else {
        buf_addstr(&api.error, msg);
    }
    switch (api.status) {
    case 404: return -ENOENT;
    case 403: return -EACCES;
    case 412: return -ECANCELED;
    case 413: return -EFBIG;
    case 507: return -ENOSPC;
    default: return -EIO;
    }
}

/* Starts api.path as PREFIX/kv/STORE/KEY. */
static int api_kv_path(const char *store, const char *key)
{
    int rc = api_open();
    if (rc < 0)
        return rc;
    if (!store || !*store || !key || !*key)
        return -EINVAL;
    buf_reset(&api.path);
    buf_reset(&api.headers);
    buf_addstr(&api.headers, "");
    buf_addstr(&api.path, api.prefix.data ? api.prefix.data : "");
    buf_addstr(&api.path, "/kv/");
    add_path_segment(&api.path, store);
    buf_addstr(&api.path, "/");
    add_path_segment(&api.path, key);
    return 0;
}

static uint64_t etag_version(const char *etag)
{
    uint64_t v = 0;
    for (const char *p = etag ? etag : ""; *p; p++)
        if (*p >= '0' && *p <= '9')
            v = v * 10 + (uint64_t)(*p - '0');
    return v;
}

int mayfly_kv_get(const char *store, const char *key, const char **value, size_t *len,
                  uint64_t *version)
{
    int rc = api_kv_path(store, key);
    if (rc < 0 || (rc = api_call("GET", NULL, NULL, 0, false, 200)) < 0)
        return rc;
    if (value)
        *value = api.conn.body.data ? api.conn.body.data : "";
    if (len)
        *len = api.conn.body.len;
    if (version)
        *version = etag_version(api.conn.hdr.etag);
    return 0;
}

int mayfly_kv_put(const char *store, const char *key, const void *value, size_t len,
                  const mayfly_kv_put_opts_t *opts, uint64_t *version)
{
    int rc = api_kv_path(store, key);
    if (rc < 0)
        return rc;
    if (opts && opts->ttl_s > 0)
        buf_printf(&api.headers, "X-Mayfly-TTL: %lld\r\n", (long long)opts->ttl_s);
    if (opts && opts->if_version)
        buf_printf(&api.headers, "If-Match: \"%llu\"\r\n", (unsigned long long)opts->if_version);
    if (opts && opts->if_absent)
        buf_addstr(&api.headers, "If-None-Match: *\r\n");
    const char *ctype = opts && opts->content_type ? opts->content_type
                                                   : "application/octet-stream";
    for (const char *p = ctype; *p; p++)
        if (*p < ' ' || *p >= 0x7f)
            return -EINVAL;
    if ((rc = api_call("PUT", ctype, value, len, true, 200)) < 0)
        return rc;
    int64_t v = 0;
    if (json_get_int64(api.conn.body.data, api.conn.body.len, "version", &v) < 0)
        return -EPROTO;
    if (version)
        *version = (uint64_t)v;
    return 0;
}

int mayfly_kv_incr(const char *store, const char *key, int64_t by, int64_t *value)
{
    int rc = api_kv_path(store, key);
    if (rc < 0)
        return rc;
    buf_addstr(&api.path, "/incr");
    char body[48];
    int n = snprintf(body, sizeof body, "{\"by\":%lld}", (long long)by);
    if ((rc = api_call("POST", NULL, body, (size_t)n, true, 200)) < 0)
        return rc;
    int64_t v;
    if (json_get_int64(api.conn.body.data, api.conn.body.len, "value", &v) < 0)
        return -EPROTO;
    if (value)
        *value = v;
    return 0;
}

int mayfly_kv_delete(const char *store, const char *key, uint64_t if_version)
{
    int rc = api_kv_path(store, key);
    if (rc < 0)
        return rc;
    if (if_version)
        buf_printf(&api.headers, "If-Match: \"%llu\"\r\n", (unsigned long long)if_version);
    return api_call("DELETE", NULL, NULL, 0, false, 204);
}

int mayfly_invoke(const char *function, const void *event, size_t len, int asynchronous,
                  const char **result, size_t *result_len)
{
    int rc = api_open();
    if (rc < 0)
        return rc;
    if (!function || !*function)
        return -EINVAL;
    buf_reset(&api.path);
    buf_reset(&api.headers);
    buf_addstr(&api.headers, asynchronous ? "X-Mayfly-Invocation-Type: Event\r\n" : "");
    buf_addstr(&api.path, api.prefix.data ? api.prefix.data : "");
    buf_addstr(&api.path, "/functions/");
    add_path_segment(&api.path, function);
    buf_addstr(&api.path, "/invoke");
    if (!event) {
        event = "null";
        len = 4;
    }
    if ((rc = api_call("POST", NULL, event, len, true, asynchronous ? 202 : 200)) < 0)
        return rc;
    if (result)
        *result = api.conn.body.data ? api.conn.body.data : "";
    if (result_len)
        *result_len = api.conn.body.len;
    if (!asynchronous && api.conn.hdr.function_error) {
        buf_addstr(&api.error, "the function failed: ");
        buf_add(&api.error, api.conn.body.data ? api.conn.body.data : "", api.conn.body.len);
        return -EREMOTEIO;
    }
    return 0;
}

int mayfly_publish(const char *topic, const char *message, size_t len, const char *subject,
                   const char *attributes_json, const char **message_id)
{
    static char id[64];
    int rc = api_open();
    if (rc < 0)
        return rc;
    if (!topic || !*topic || (!message && len))
        return -EINVAL;
    buf_reset(&api.path);
    buf_reset(&api.headers);
    buf_addstr(&api.headers, "");
    buf_addstr(&api.path, api.prefix.data ? api.prefix.data : "");
    buf_addstr(&api.path, "/topics/");
    add_path_segment(&api.path, topic);
    buf_addstr(&api.path, "/publish");
    buf_t body = {0};
    buf_addstr(&body, "{\"message\":");
    json_quote(&body, message ? message : "", len);
    if (subject) {
        buf_addstr(&body, ",\"subject\":");
        json_quote(&body, subject, strlen(subject));
    }
    if (attributes_json && *attributes_json) {
        buf_addstr(&body, ",\"attributes\":");
        buf_addstr(&body, attributes_json);
    }
    buf_addstr(&body, "}");
    rc = api_call("POST", "application/json", body.data, body.len, true, 202);
    buf_release(&body);
    if (rc < 0)
        return rc;
    if (mayfly_json_get_string(api.conn.body.data, api.conn.body.len, "message_id", id,
                               sizeof id) < 0)
        return -EPROTO;
    if (message_id)
        *message_id = id;
    return 0;
}

const char *mayfly_api_error(void)
{
    return api.error.data ? api.error.data : "";
}

int mayfly_api_status(void)
{
    return api.status;
}
