/* libFuzzer target: the sandbox resolver's wire format. The input is a
 * query as a function would send it. What parses must name a host the
 * policy could match (lower case, 253 bytes at most, labels of letters,
 * digits, '-' and '_'); its answer, built with IPv4 and IPv6 addresses into
 * a full buffer and into one of a size the input picks, must answer the
 * same id, echo the question byte for byte, hold only whole records of the
 * asked family, and parse back (as a query) to the same question. What
 * does not parse but has a header gets a bare FORMERR.
 * Build with `make fuzz`; `make test` replays the checked-in corpus. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "egress/internal.h"

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_egress_dns: %s\n", what);
        abort();
    }
}

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static const egress_addr_t addrs[] = {
    {AF_INET, {192, 0, 2, 10}},
    {AF_INET6, {0x20, 0x01, 0x0d, 0xb8, [15] = 7}},
    {AF_INET, {198, 51, 100, 200}},
};
#define N_ADDRS (sizeof addrs / sizeof *addrs)

static void check_name(const char *name)
{
    size_t n = strlen(name);
    check(n <= EGRESS_NAME_MAX, "name too long");
    check(n == 0 || (name[0] != '.' && name[n - 1] != '.'), "name has an edge dot");
    check(strstr(name, "..") == NULL, "name has an empty label");
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (c == '.') {
            label = 0;
            continue;
        }
        check((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_',
              "name has a byte no host name has");
        check(++label <= 63, "label too long");
    }
}

/* Checks an answer of len bytes (built with cap) to q, asked in msg. */
static void check_answer(const uint8_t *msg, const egress__dns_query_t *q, int rcode,
                         const uint8_t *out, size_t len, size_t cap)
{
    check(len <= cap, "answer longer than its buffer");
    if (cap < 12) {
        check(len == 0, "answer without room for a header");
        return;
    }
    check(len >= 12, "answer shorter than a header");
    check(rd16(out) == q->id, "answer of another id");
    uint16_t flags = rd16(out + 2);
    check((flags & 0x8000) && (flags & 0x7800) == 0, "answer not a QUERY response");
    check((flags & 0x0100) == (q->flags & 0x0100), "RD not echoed");
    check((flags & 0xf) == rcode, "another rcode");
    uint16_t qd = rd16(out + 4), an = rd16(out + 6);
    check(rd16(out + 8) == 0 && rd16(out + 10) == 0, "authority or additional records");
    if (qd == 0) {
        check(12 + q->question_len > cap && an == 0 && len == 12, "question dropped with room");
        return;
    }
    check(qd == 1, "more than one question");
    size_t qend = 12 + q->question_len;
    check(qend <= len, "question cut");
    check(memcmp(out + 12, msg + 12, q->question_len) == 0, "question not echoed");
    size_t alen = q->qtype == 1 ? 4 : q->qtype == 28 ? 16 : 0;
    int family = q->qtype == 1 ? AF_INET : AF_INET6;
    size_t want = 0;
    for (size_t i = 0; rcode == 0 && alen && i < N_ADDRS; i++)
        want += addrs[i].family == family;
    size_t room = alen ? (cap - qend) / (12 + alen) : 0;
    check(an == (want < room ? want : room), "records dropped with room, or made up");
    check(len == qend + an * (12 + alen), "answer length not its records'");
    size_t off = qend, k = 0;
    for (size_t r = 0; r < an; r++, k++) {
        while (addrs[k].family != family)
            k++;
        const uint8_t *rr = out + off;
        check(rd16(rr) == 0xc00c, "record not named by a pointer to the question");
        check(rd16(rr + 2) == q->qtype && rd16(rr + 4) == 1, "record of another type or class");
        check(rd16(rr + 10) == alen, "rdata length");
        check(memcmp(rr + 12, addrs[k].addr, alen) == 0, "rdata not the address");
        off += 12 + alen;
    }

    /* The echoed question, as a query again, is the same question. */
    uint8_t again[EGRESS__DNS_MAX];
    memcpy(again, out, qend);
    again[2] &= 0x7f;        /* QR off */
    again[3] = 0;            /* RA and rcode off */
    memset(again + 6, 0, 6); /* no records */
    egress__dns_query_t q2;
    check(egress__dns_parse_query(again, qend, &q2) == 0, "echoed question does not parse");
    check(q2.id == q->id && q2.qtype == q->qtype && q2.qclass == q->qclass &&
              q2.question_len == q->question_len && strcmp(q2.name, q->name) == 0,
          "echoed question parses differently");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    egress__dns_query_t q;
    int r = egress__dns_parse_query(data, size, &q);
    check(r == 0 || r == -EINVAL || r == -EPROTO, "unexpected return");
    check(r != -EINVAL || size < 12 || size > EGRESS__DNS_MAX, "-EINVAL for a header in bounds");
    if (r == -EPROTO) {
        uint8_t out[64];
        size_t len = egress__dns_answer(data, NULL, 1, NULL, 0, 0, out, sizeof out);
        check(len == 12 && rd16(out) == rd16(data) && (rd16(out + 2) & 0x800f) == 0x8001 &&
                  rd16(out + 4) == 0 && rd16(out + 6) == 0,
              "FORMERR not a bare header with the id");
    }
    if (r != 0)
        return 0;
    check_name(q.name);
    check(q.question_len >= 5 && 12 + q.question_len <= size, "question length out of the message");

    uint8_t out[EGRESS__DNS_MAX];
    int rcode = size % 7 == 3 ? 3 : 0; /* some NXDOMAIN */
    size_t len = egress__dns_answer(data, &q, rcode, addrs, N_ADDRS, 60, out, sizeof out);
    check_answer(data, &q, rcode, out, len, sizeof out);

    /* A cap the input picks (through the id, noise to the parser), in an
     * exact-size buffer: from none to room for two AAAA records. */
    size_t cap = q.id % (12 + q.question_len + 2 * 28 + 1);
    uint8_t *small = malloc(cap ? cap : 1);
    len = egress__dns_answer(data, &q, 0, addrs, N_ADDRS, 60, small, cap);
    check_answer(data, &q, 0, small, len, cap);
    free(small);
    return 0;
}
