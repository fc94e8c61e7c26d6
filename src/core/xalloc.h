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
/* Formats into a newly allocated string. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
