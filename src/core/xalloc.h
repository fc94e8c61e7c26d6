/* Allocation that never returns NULL: running out of memory aborts with a
 * message in this one place, so callers need no checks (redis zmalloc). */
#ifndef MAYFLY_CORE_XALLOC_H
#define MAYFLY_CORE_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* A copy of len bytes at p with a NUL after them (bytes that may hold
 * NULs, kept printable as a string when they are text); NULL for NULL. */
void *xmemdup0(const void *p, size_t len);
/* Formats into a newly allocated string. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
