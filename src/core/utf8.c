#include "core/utf8.h"

#include <stdbool.h>

static bool is_cont(unsigned char c)
{
    return (c & 0xc0) == 0x80;
}

size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    if (c < 0xc2)
        return 0;
    if (c < 0xe0)
        return n >= 2 && is_cont(p[1]) ? 2 : 0;
    if (c < 0xf0) {
        if (n < 3 || !is_cont(p[1]) || !is_cont(p[2]))
            return 0;
        if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0))
            return 0;
        return 3;
    }
    if (c < 0xf5) {
        if (n < 4 || !is_cont(p[1]) || !is_cont(p[2]) || !is_cont(p[3]))
            return 0;
        if ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90))
            return 0;
        return 4;
    }
    return 0;
}

bool utf8_valid(const void *s, size_t n)
{
    const unsigned char *p = s;
    for (size_t i = 0; i < n;) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = utf8_seq(p + i, n - i);
        if (!k)
            return false;
        i += k;
    }
    return true;
}
