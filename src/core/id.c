#include "core/id.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/clock.h"

void id_random_bytes(void *out, unsigned len)
{
    unsigned char *p = out;
    while (len) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("mayfly: getrandom");
            abort();
        }
        p += n;
        len -= (unsigned)n;
    }
}

/* Request ids are made on every call: drawing the kernel's randomness a
 * page at a time keeps a syscall off the invoke path. Per thread, so no
 * lock. */
static __thread unsigned char pool[4096];
static __thread unsigned pool_left;

void id_random_pooled(void *out, unsigned len)
{
    if (pool_left < len) {
        id_random_bytes(pool, sizeof pool);
        pool_left = sizeof pool;
    }
    pool_left -= len;
    memcpy(out, pool + pool_left, len);
    /* Used bytes are not left behind for a later reader of the pool. */
    memset(pool + pool_left, 0, len);
}

/* 16 random bytes from the pool. */
static void pool_bytes(unsigned char r[16])
{
    id_random_pooled(r, 16);
}

static void format_uuid(const unsigned char r[16], char out[ID_UUID_LEN + 1])
{
    /* 8-4-4-4-12 lower-case hex digits (without printf: every call makes
     * one). */
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[r[i] >> 4];
        *o++ = hex[r[i] & 15];
    }
    *o = '\0';
}

void id_uuid4(char out[ID_UUID_LEN + 1])
{
    unsigned char r[16];
    pool_bytes(r);
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    format_uuid(r, out);
}

void id_uuid7(char out[ID_UUID_LEN + 1])
{
    unsigned char r[16];
    pool_bytes(r);
    uint64_t ms = (uint64_t)clock_wall_ms();
    for (int i = 0; i < 6; i++)
        r[i] = (unsigned char)(ms >> (40 - 8 * i));
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x70);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    format_uuid(r, out);
}
