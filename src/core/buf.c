#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"

char buf__empty[1];

void buf_init(buf_t *b, size_t hint)
{
    b->data = buf__empty;
    b->len = 0;
    b->cap = 0;
    if (hint)
        buf_grow(b, hint);
}

void buf_release(buf_t *b)
{
    if (b->cap)
        free(b->data);
    buf_init(b, 0);
}

void buf_grow(buf_t *b, size_t extra)
{
    size_t need;
    if (__builtin_add_overflow(b->len, extra, &need) || __builtin_add_overflow(need, 1, &need)) {
        fprintf(stderr, "mayfly: buffer size overflow\n");
        abort();
    }
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap < ((size_t)1 << 62) ? cap * 2 : need;
    if (b->cap) {
        b->data = xrealloc(b->data, cap);
    } else {
        b->data = xmalloc(cap);
        b->data[0] = '\0';
    }
    b->cap = cap;
}

void buf_add(buf_t *b, const void *data, size_t len)
{
    if (!len)
        return;
    buf_grow(b, len);
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void buf_adds(buf_t *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

void buf_addch(buf_t *b, char c)
{
    buf_add(b, &c, 1);
}

void buf_add_uint(buf_t *b, unsigned long long v)
{
    char tmp[24];
    char *p = tmp + sizeof tmp;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    buf_add(b, p, (size_t)(tmp + sizeof tmp - p));
}

void buf_add_int(buf_t *b, long long v)
{
    if (v < 0) {
        buf_addch(b, '-');
        /* -(v + 1) + 1: LLONG_MIN's magnitude has no long long. */
        buf_add_uint(b, (unsigned long long)(-(v + 1)) + 1);
        return;
    }
    buf_add_uint(b, (unsigned long long)v);
}

void buf_vaddf(buf_t *b, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof tmp, fmt, cp);
    va_end(cp);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        buf_add(b, tmp, (size_t)n);
        return;
    }
    buf_grow(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void buf_addf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_vaddf(b, fmt, ap);
    va_end(ap);
}

void buf_reset(buf_t *b)
{
    b->len = 0;
    if (b->cap)
        b->data[0] = '\0';
}

void buf_consume(buf_t *b, size_t n)
{
    if (n >= b->len) {
        buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

char *buf_detach(buf_t *b, size_t *len)
{
    char *p = b->cap ? b->data : xstrdup("");
    if (len)
        *len = b->len;
    buf_init(b, 0);
    return p;
}
