/* The keyset cursor of record listings, as clients carry it (store.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/codec.h"
#include "store/store.h"

/* The longest cursor: base64 of two 19-digit numbers and a dot. */
#define CURSOR_MAX 64

void store_record_cursor_format(buf_t *out, const store_record_cursor_t *c)
{
    char raw[48];
    int n = snprintf(raw, sizeof raw, "%" PRId64 ".%" PRId64, c->start_ms, c->rowid);
    cleanup_buf buf_t b64 = BUF_INIT;
    codec_base64_encode(&b64, raw, (size_t)n);
    for (size_t i = 0; i < b64.len && b64.data[i] != '='; i++)
        buf_addch(out, b64.data[i] == '+' ? '-' : b64.data[i] == '/' ? '_' : b64.data[i]);
}

/* 1 to 18 decimal digits, exactly len of them. */
static int digits(const char *s, size_t len, int64_t *out)
{
    if (len < 1 || len > 18)
        return -EINVAL;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int store_record_cursor_parse(const char *s, size_t len, store_record_cursor_t *c)
{
    if (len < 1 || len > CURSOR_MAX || len % 4 == 1)
        return -EINVAL;
    char std[CURSOR_MAX + 1];
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch == '-')
            ch = '+';
        else if (ch == '_')
            ch = '/';
        else if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                   (ch >= '0' && ch <= '9')))
            return -EINVAL;
        std[i] = ch;
    }
    cleanup_buf buf_t raw = BUF_INIT;
    if (codec_base64_decode(&raw, std, len, 48) < 0 || raw.len == 0)
        return -EINVAL;
    const char *dot = memchr(raw.data, '.', raw.len);
    if (!dot)
        return -EINVAL;
    size_t head = (size_t)(dot - raw.data);
    store_record_cursor_t v;
    if (digits(raw.data, head, &v.start_ms) < 0 ||
        digits(dot + 1, raw.len - head - 1, &v.rowid) < 0 || v.rowid < 1)
        return -EINVAL;
    *c = v;
    return 0;
}
