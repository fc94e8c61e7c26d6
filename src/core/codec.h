/* Encodings and digests: base64 (RFC 4648, standard alphabet), lowercase
 * hex, SHA-256 and HMAC-SHA-256 (OpenSSL libcrypto). */
#ifndef MAYFLY_CORE_CODEC_H
#define MAYFLY_CORE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define CODEC_SHA256_LEN 32
#define CODEC_SHA256_HEX_LEN 64

void codec_base64_encode(buf_t *out, const void *data, size_t len);
/* Decodes base64 (padding optional, whitespace not allowed) and appends the
 * bytes to out. Returns 0, or -EINVAL on a character or length that is not
 * base64. Stops with -EFBIG, having appended nothing more, once the decoded
 * size would pass max_len. */
int codec_base64_decode(buf_t *out, const char *s, size_t len, size_t max_len);
void codec_hex(char *out, const uint8_t *data, size_t len);
/* The value of one hex digit (either case), or -1. */
int codec_hex_digit(char c);
void codec_sha256(uint8_t out[CODEC_SHA256_LEN], const void *data, size_t len);
void codec_sha256_hex(char out[CODEC_SHA256_HEX_LEN + 1], const void *data, size_t len);
void codec_hmac_sha256(uint8_t out[CODEC_SHA256_LEN], const void *key, size_t keylen,
                       const void *data, size_t len);

#endif
