/* UTF-8 as RFC 3629 has it. */
#ifndef MAYFLY_CORE_UTF8_H
#define MAYFLY_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* The length of the well-formed UTF-8 sequence at p (left > 0 bytes
 * available), or 0: no overlong forms, no surrogates, nothing past
 * U+10FFFF. */
size_t utf8_seq(const unsigned char *p, size_t left);
/* True when the n bytes at p are all well-formed UTF-8. */
bool utf8_valid(const void *p, size_t n);

#endif
