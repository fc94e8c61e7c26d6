/* AWS's event-stream framing (application/vnd.amazon.eventstream), the
 * wire format of the Lambda API's InvokeWithResponseStream: a stream of
 * messages, each
 *
 *   total length (4 bytes) | headers length (4) | CRC-32 of those 8 (4)
 *   | headers | payload | CRC-32 of everything before it (4)
 *
 * big-endian, a header being name length (1), name, value type (1; 7 is a
 * string), value length (2) and value. mayfly only writes it. */
#ifndef MAYFLY_CORE_EVENTSTREAM_H
#define MAYFLY_CORE_EVENTSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* The largest header name (255) and string value (32767) the format
 * carries; longer ones are cut. */
#define EVENTSTREAM_NAME_MAX 255
#define EVENTSTREAM_VALUE_MAX 32767

typedef struct eventstream_header {
    const char *name;
    const char *value; /* a string header */
} eventstream_header_t;

/* CRC-32 (ISO-HDLC, zlib's) of len bytes, continuing from crc (0 to start). */
uint32_t eventstream_crc32(uint32_t crc, const void *data, size_t len);

/* Appends one message with string headers and a payload to out. */
void eventstream_message(buf_t *out, const eventstream_header_t *headers, size_t nheaders,
                         const void *payload, size_t len);

/* An event message: the headers :message-type event, :event-type type and
 * :content-type content_type, then the payload. */
void eventstream_event(buf_t *out, const char *type, const char *content_type, const void *payload,
                       size_t len);

#endif
