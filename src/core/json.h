/* Small JSON helpers around jansson, which the control plane uses for
 * parsing and building documents. Payloads on the invoke path are never
 * parsed. */
#ifndef MAYFLY_CORE_JSON_H
#define MAYFLY_CORE_JSON_H

#include <jansson.h>
#include <stddef.h>

#include "core/buf.h"

/* Appends s (len bytes, may hold NULs) as a quoted, escaped JSON string. */
void json_quote(buf_t *out, const char *s, size_t len);
/* The same for text that should be UTF-8 but may not be (a header, a
 * path, a log line): a byte that is not part of well-formed UTF-8 becomes
 * U+FFFD, as decoders do, so that the JSON stays valid. */
void json_quote_text(buf_t *out, const char *s, size_t len);
/* Appends the compact serialisation of v. */
void json_dump_buf(buf_t *out, const json_t *v);

/* jansson provides json_decrefp (NULL-safe). */
#define cleanup_json __attribute__((cleanup(json_decrefp)))

#endif
