#include "core/json.h"

#include <stdio.h>

#include "core/utf8.h"

static int dump_cb(const char *data, size_t size, void *ud)
{
    buf_add(ud, data, size);
    return 0;
}

void json_dump_buf(buf_t *out, const json_t *v)
{
    json_dump_callback(v, dump_cb, out, JSON_COMPACT | JSON_ENCODE_ANY);
}

void json_quote(buf_t *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    buf_grow(out, len + 2);
    buf_addch(out, '"');
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[7];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c < 0x20 || c == 0x7f) {
                u[0] = '\\'; u[1] = 'u'; u[2] = '0'; u[3] = '0';
                u[4] = hex[c >> 4]; u[5] = hex[c & 15]; u[6] = 0;
                esc = u;
            }
        }
        if (esc) {
            buf_add(out, s + i - run, run);
            run = 0;
            buf_adds(out, esc);
        } else {
            run++;
        }
    }
    buf_add(out, s + len - run, run);
    buf_addch(out, '"');
}

void json_quote_text(buf_t *out, const char *s, size_t len)
{
    if (utf8_valid(s, len)) {
        json_quote(out, s, len);
        return;
    }
    buf_t fixed = BUF_INIT;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t n = p[i] < 0x80 ? 1 : utf8_seq(p + i, len - i);
        if (n) {
            buf_add(&fixed, p + i, n);
            i += n;
        } else {
            buf_adds(&fixed, "\xEF\xBF\xBD");
            i++;
        }
    }
    json_quote(out, fixed.data, fixed.len);
    buf_release(&fixed);
}
