#include "core/eventstream.h"

#include <string.h>

static uint32_t crc_table[256];

static void crc_table_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t eventstream_crc32(uint32_t crc, const void *data, size_t len)
{
    /* Filled on first use, on the loop thread; the table is the same
     * whoever fills it, so a second filling is harmless. */
    if (!crc_table[1])
        crc_table_init();
    const unsigned char *p = data;
    crc = ~crc;
    for (size_t i = 0; i < len; i++)
        crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static void put_be32(buf_t *b, uint32_t v)
{
    unsigned char x[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    buf_add(b, x, 4);
}

void eventstream_message(buf_t *out, const eventstream_header_t *headers, size_t nheaders,
                         const void *payload, size_t len)
{
    buf_t h = BUF_INIT;
    for (size_t i = 0; i < nheaders; i++) {
        size_t nl = strlen(headers[i].name), vl = strlen(headers[i].value);
        if (nl > EVENTSTREAM_NAME_MAX)
            nl = EVENTSTREAM_NAME_MAX;
        if (vl > EVENTSTREAM_VALUE_MAX)
            vl = EVENTSTREAM_VALUE_MAX;
        unsigned char c = (unsigned char)nl;
        buf_add(&h, &c, 1);
        buf_add(&h, headers[i].name, nl);
        unsigned char t[3] = {7, (unsigned char)(vl >> 8), (unsigned char)vl};
        buf_add(&h, t, 3);
        buf_add(&h, headers[i].value, vl);
    }
    size_t start = out->len;
    uint32_t total = (uint32_t)(12 + h.len + len + 4);
    put_be32(out, total);
    put_be32(out, (uint32_t)h.len);
    put_be32(out, eventstream_crc32(0, out->data + start, 8));
    if (h.len)
        buf_add(out, h.data, h.len);
    if (len)
        buf_add(out, payload, len);
    put_be32(out, eventstream_crc32(0, out->data + start, out->len - start));
    buf_release(&h);
}

void eventstream_event(buf_t *out, const char *type, const char *content_type, const void *payload,
                       size_t len)
{
    const eventstream_header_t h[] = {
        {":event-type", type},
        {":content-type", content_type},
        {":message-type", "event"},
    };
    eventstream_message(out, h, 3, payload, len);
}
