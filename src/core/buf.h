/* The project's one growable byte buffer (git's strbuf): always
 * NUL-terminated so it can be used as a C string, and safe to use after
 * BUF_INIT without further setup. */
#ifndef MAYFLY_CORE_BUF_H
#define MAYFLY_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct buf {
    char *data;  /* never NULL: points at a shared "" until first growth */
    size_t len;
    size_t cap;  /* 0 while data is the shared empty string */
} buf_t;

/* A read-only view of bytes owned elsewhere (libuv's uv_buf_t). */
typedef struct slice {
    const char *base;
    size_t len;
} slice_t;

extern char buf__empty[1];
#define BUF_INIT { buf__empty, 0, 0 }

void buf_init(buf_t *b, size_t hint);
void buf_release(buf_t *b);
/* Makes room for at least extra more bytes (plus the NUL). */
void buf_grow(buf_t *b, size_t extra);
void buf_add(buf_t *b, const void *data, size_t len);
void buf_adds(buf_t *b, const char *s);
void buf_addch(buf_t *b, char c);
/* v in decimal, as printf's %lld and %llu write it, without printf. */
void buf_add_int(buf_t *b, long long v);
void buf_add_uint(buf_t *b, unsigned long long v);
void buf_addf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vaddf(buf_t *b, const char *fmt, va_list ap);
void buf_reset(buf_t *b);
/* Drops the first n bytes, moving the rest to the front. */
void buf_consume(buf_t *b, size_t n);
/* Hands the bytes to the caller (free() them) and resets the buffer. */
char *buf_detach(buf_t *b, size_t *len);

static inline slice_t buf_slice(const buf_t *b)
{
    return (slice_t){ b->data, b->len };
}

static inline void buf_cleanup(buf_t *b)
{
    buf_release(b);
}
#define cleanup_buf __attribute__((cleanup(buf_cleanup)))

#endif
