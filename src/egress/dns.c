/* The DNS wire format, as far as the sandbox's resolver needs it: one
 * question in, its answer out (RFC 1035 §4). Queries come from functions,
 * so every length is checked; nothing is decompressed but the question's
 * own labels, which a query never compresses. */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "egress/internal.h"

#define DNS_HDR 12
#define QTYPE_A 1
#define QTYPE_AAAA 28

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

int egress__dns_parse_query(const uint8_t *msg, size_t len, egress__dns_query_t *q)
{
    memset(q, 0, sizeof *q);
    if (len < DNS_HDR || len > EGRESS__DNS_MAX)
        return -EINVAL;
    q->id = rd16(msg);
    q->flags = rd16(msg + 2);
    /* A response, or an opcode other than QUERY: not ours to answer. */
    if ((q->flags & 0x8000) || ((q->flags >> 11) & 0xf) != 0)
        return -EPROTO;
    if (rd16(msg + 4) != 1 || rd16(msg + 6) != 0 || rd16(msg + 8) != 0)
        return -EPROTO; /* one question, no answers; additional (EDNS) is allowed */
    size_t off = DNS_HDR, n = 0;
    for (;;) {
        if (off >= len)
            return -EPROTO;
        uint8_t l = msg[off++];
        if (l == 0)
            break;
        if (l > 63 || l > len - off)
            return -EPROTO; /* compression pointers have no place in a question */
        if (n + (n ? 1 : 0) + l > EGRESS_NAME_MAX)
            return -EPROTO;
        if (n)
            q->name[n++] = '.';
        for (uint8_t i = 0; i < l; i++) {
            uint8_t c = msg[off + i];
            if (c >= 'A' && c <= 'Z')
                c = (uint8_t)(c - 'A' + 'a');
            /* Names with bytes no host name has cannot match a rule. */
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
                return -EPROTO;
            q->name[n++] = (char)c;
        }
        off += l;
    }
    q->name[n] = '\0';
    if (len - off < 4)
        return -EPROTO;
    q->qtype = rd16(msg + off);
    q->qclass = rd16(msg + off + 2);
    q->question_len = off + 4 - DNS_HDR;
    return 0;
}

size_t egress__dns_answer(const uint8_t *msg, const egress__dns_query_t *q, int rcode,
                          const egress_addr_t *addrs, size_t n, uint32_t ttl, uint8_t *out,
                          size_t cap)
{
    if (cap < DNS_HDR)
        return 0;
    size_t qlen = q ? q->question_len : 0;
    if (qlen > cap - DNS_HDR)
        qlen = 0;
    memset(out, 0, DNS_HDR);
    wr16(out, q ? q->id : rd16(msg));
    /* QR, the opcode 0, RD echoed, RA: we recurse on the function's behalf. */
    uint16_t flags = (uint16_t)(0x8000 | ((q ? q->flags : 0) & 0x0100) | 0x0080 | (rcode & 0xf));
    wr16(out + 2, flags);
    wr16(out + 4, qlen ? 1 : 0);
    memcpy(out + DNS_HDR, msg + DNS_HDR, qlen);
    size_t off = DNS_HDR + qlen;
    uint16_t count = 0;
    int want = q && q->qtype == QTYPE_A ? AF_INET : q && q->qtype == QTYPE_AAAA ? AF_INET6 : 0;
    for (size_t i = 0; rcode == 0 && qlen && i < n; i++) {
        if (addrs[i].family != want)
            continue;
        uint16_t alen = want == AF_INET ? 4 : 16;
        if (cap - off < (size_t)12 + alen)
            break;
        wr16(out + off, 0xc000 | DNS_HDR); /* the name: a pointer to the question's */
        wr16(out + off + 2, q->qtype);
        wr16(out + off + 4, 1);            /* IN */
        out[off + 6] = (uint8_t)(ttl >> 24);
        out[off + 7] = (uint8_t)(ttl >> 16);
        out[off + 8] = (uint8_t)(ttl >> 8);
        out[off + 9] = (uint8_t)ttl;
        wr16(out + off + 10, alen);
        memcpy(out + off + 12, addrs[i].addr, alen);
        off += 12 + (size_t)alen;
        count++;
    }
    wr16(out + 6, count);
    return off;
}
