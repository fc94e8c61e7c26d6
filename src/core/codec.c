#include "core/codec.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void codec_base64_encode(buf_t *out, const void *data, size_t len)
{
    const unsigned char *p = data;
    buf_grow(out, (len + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        char q[4] = { b64[v >> 18], b64[(v >> 12) & 63], b64[(v >> 6) & 63], b64[v & 63] };
        buf_add(out, q, 4);
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        char q[4] = { b64[v >> 18], b64[(v >> 12) & 63], '=', '=' };
        buf_add(out, q, 4);
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        char q[4] = { b64[v >> 18], b64[(v >> 12) & 63], b64[(v >> 6) & 63], '=' };
        buf_add(out, q, 4);
    }
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int codec_base64_decode(buf_t *out, const char *s, size_t len, size_t max_len)
{
    /* Padding is only allowed at the very end. */
    size_t pad = 0;
    while (len > 0 && s[len - 1] == '=' && pad < 2) {
        len--;
        pad++;
    }
    if (pad && (len + pad) % 4)
        return -EINVAL;
    if (len % 4 == 1)
        return -EINVAL;
    size_t decoded = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    if (decoded > max_len)
        return -EFBIG;
    buf_grow(out, decoded);
    uint32_t acc = 0;
    int bits = 0;
    size_t start = out->len;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value((unsigned char)s[i]);
        if (v < 0) {
            out->len = start;
            out->data[start] = '\0';
            return -EINVAL;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out->data[out->len++] = (char)((acc >> bits) & 0xff);
        }
    }
    out->data[out->len] = '\0';
    return 0;
}

void codec_hex(char *out, const uint8_t *data, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = hex[data[i] >> 4];
        out[2 * i + 1] = hex[data[i] & 15];
    }
    out[2 * len] = '\0';
}

void codec_sha256(uint8_t out[CODEC_SHA256_LEN], const void *data, size_t len)
{
    SHA256(data, len, out);
}

void codec_sha256_hex(char out[CODEC_SHA256_HEX_LEN + 1], const void *data, size_t len)
{
    uint8_t d[CODEC_SHA256_LEN];
    codec_sha256(d, data, len);
    codec_hex(out, d, sizeof d);
}

void codec_hmac_sha256(uint8_t out[CODEC_SHA256_LEN], const void *key, size_t keylen,
                       const void *data, size_t len)
{
    unsigned int outlen = CODEC_SHA256_LEN;
    HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &outlen);
}

int codec_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
