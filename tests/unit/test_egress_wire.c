/* The egress gateway's wire parsers, on bytes built here as a function, a
 * server and the kernel would send them: DNS queries and the resolver's
 * answers, HTTP request and status lines and a TLS ClientHello's server
 * name as the relay sniffs them, and NFLOG datagrams the denials are read
 * from. Every parser is also fed each truncation of its input, in an
 * exact-size allocation, so a read past the end shows under ASan. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "egress/internal.h"

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* A copy of the first n bytes of data in an allocation of exactly n bytes. */
static uint8_t *exact(const void *data, size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    memcpy(p, data, n);
    return p;
}

/* ---- DNS ------------------------------------------------------------------------ */

#define F_RD 0x0100

/* A query as a stub resolver sends it: the header, one question for name
 * (dotted, labels copied byte for byte, so any case), and, with edns, an
 * OPT pseudo-record in the additional section. */
static size_t dns_query(uint8_t *m, uint16_t id, uint16_t flags, const char *name, uint16_t qtype,
                        bool edns)
{
    memset(m, 0, 12);
    wr16(m, id);
    wr16(m + 2, flags);
    wr16(m + 4, 1);
    wr16(m + 10, edns ? 1 : 0);
    size_t off = 12;
    const char *s = name;
    while (*s) {
        const char *dot = strchr(s, '.');
        size_t l = dot ? (size_t)(dot - s) : strlen(s);
        m[off++] = (uint8_t)l;
        memcpy(m + off, s, l);
        off += l;
        s += l;
        if (*s == '.')
            s++;
    }
    m[off++] = 0; /* the root */
    wr16(m + off, qtype);
    wr16(m + off + 2, 1);
    off += 4;
    if (edns) {
        /* root name, type OPT (41), UDP size 1232, ext-rcode/version/flags
         * 0 (DO clear), no options. */
        static const uint8_t opt[] = {0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0};
        memcpy(m + off, opt, sizeof opt);
        off += sizeof opt;
    }
    return off;
}

static int parse(const uint8_t *m, size_t len, egress__dns_query_t *q)
{
    uint8_t *copy = exact(m, len);
    int r = egress__dns_parse_query(copy, len, q);
    free(copy);
    return r;
}

static void test_dns_parse_queries(void **state)
{
    uint8_t m[600] = {0};
    egress__dns_query_t q;

    /* A, as glibc asks: RD set, no EDNS. */
    size_t n = dns_query(m, 0x1234, F_RD, "api.example.com", 1, false);
    assert_int_equal(parse(m, n, &q), 0);
    assert_int_equal(q.id, 0x1234);
    assert_int_equal(q.flags, F_RD);
    assert_string_equal(q.name, "api.example.com");
    assert_int_equal(q.qtype, 1);
    assert_int_equal(q.qclass, 1);
    /* 3api7example3com0 and qtype, qclass. */
    assert_int_equal(q.question_len, 17 + 4);
    assert_int_equal(q.question_len, n - 12);

    /* AAAA with an EDNS OPT record, as resolvers with EDNS send it: the
     * additional section is allowed and not part of the question. */
    n = dns_query(m, 0xbeef, F_RD, "api.example.com", 28, true);
    assert_int_equal(parse(m, n, &q), 0);
    assert_int_equal(q.id, 0xbeef);
    assert_string_equal(q.name, "api.example.com");
    assert_int_equal(q.qtype, 28);
    assert_int_equal(q.question_len, 21);
    assert_int_equal(q.question_len, n - 12 - 11);

    /* Upper case (0x20 randomisation) is folded; the root label ends the
     * name without leaving a trailing dot. */
    n = dns_query(m, 7, 0, "API.ExAmPlE.COM", 1, true);
    assert_int_equal(parse(m, n, &q), 0);
    assert_string_equal(q.name, "api.example.com");
    assert_int_equal(q.flags, 0);

    /* Digits, '-' and '_' (as in _dmarc, SRV names) belong to host names. */
    n = dns_query(m, 7, F_RD, "_svc-1.x9.example", 1, false);
    assert_int_equal(parse(m, n, &q), 0);
    assert_string_equal(q.name, "_svc-1.x9.example");

    /* A name of exactly 253 characters: 3 labels of 63 and one of 61. */
    char name[300];
    memset(name, 'a', 63);
    name[63] = '.';
    memset(name + 64, 'b', 63);
    name[127] = '.';
    memset(name + 128, 'c', 63);
    name[191] = '.';
    memset(name + 192, 'd', 61);
    name[253] = '\0';
    n = dns_query(m, 9, F_RD, name, 1, false);
    assert_int_equal(parse(m, n, &q), 0);
    assert_int_equal(strlen(q.name), 253);
    assert_string_equal(q.name, name);

    /* The biggest message allowed, padded out in the additional record. */
    n = dns_query(m, 9, F_RD, "api.example.com", 1, false);
    assert_int_equal(parse(m, EGRESS__DNS_MAX, &q), 0);
    assert_string_equal(q.name, "api.example.com");
}

static void test_dns_rejects(void **state)
{
    uint8_t m[600];
    egress__dns_query_t q;
    size_t n = dns_query(m, 0x4242, F_RD, "api.example.com", 1, false);

    /* Shorter than a header: nothing to answer to. */
    for (size_t len = 0; len < 12; len++)
        assert_int_equal(parse(m, len, &q), -EINVAL);
    /* Over 512 bytes: not a query over UDP. */
    memset(m + n, 0, sizeof m - n);
    assert_int_equal(parse(m, EGRESS__DNS_MAX + 1, &q), -EINVAL);

    /* Every cut through the question: the header parsed, so -EPROTO (which
     * the resolver answers FORMERR), never a read past the end. */
    for (size_t len = 12; len < n; len++) {
        assert_int_equal(parse(m, len, &q), -EPROTO);
        assert_int_equal(q.id, 0x4242);
    }

    uint8_t b[600];
    /* A response (QR set). */
    memcpy(b, m, n);
    b[2] |= 0x80;
    assert_int_equal(parse(b, n, &q), -EPROTO);
    assert_int_equal(q.id, 0x4242);
    /* Opcodes other than QUERY: IQUERY 1, STATUS 2, NOTIFY 4, UPDATE 5. */
    for (unsigned op = 1; op < 16; op++) {
        memcpy(b, m, n);
        b[2] = (uint8_t)(b[2] | op << 3);
        assert_int_equal(parse(b, n, &q), -EPROTO);
    }
    /* No question, two questions. */
    memcpy(b, m, n);
    wr16(b + 4, 0);
    assert_int_equal(parse(b, n, &q), -EPROTO);
    wr16(b + 4, 2);
    assert_int_equal(parse(b, n, &q), -EPROTO);
    /* An answer or an authority record in a query. */
    memcpy(b, m, n);
    wr16(b + 6, 1);
    assert_int_equal(parse(b, n, &q), -EPROTO);
    memcpy(b, m, n);
    wr16(b + 8, 1);
    assert_int_equal(parse(b, n, &q), -EPROTO);

    /* A label of 64 bytes (the length byte's top bits 01: reserved). */
    char name[300];
    memset(name, 'a', 64);
    strcpy(name + 64, ".com");
    size_t bn = dns_query(b, 1, F_RD, name, 1, false);
    assert_int_equal(parse(b, bn, &q), -EPROTO);
    /* 63 is fine. */
    name[63] = '.';
    bn = dns_query(b, 1, F_RD, name, 1, false);
    assert_int_equal(parse(b, bn, &q), 0);

    /* A compression pointer in the question, to the name of an earlier
     * (here: the same) question: 3api then c0 0c. */
    static const uint8_t ptr[] = {0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
                                  0x00, 0x03, 'a',  'p',  'i',  0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01};
    assert_int_equal(parse(ptr, sizeof ptr, &q), -EPROTO);
    /* A pointer as the whole name. */
    static const uint8_t ptr0[] = {0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0x00, 0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01};
    assert_int_equal(parse(ptr0, sizeof ptr0, &q), -EPROTO);

    /* 254 characters: one more than a name may have. */
    memset(name, 'a', 63);
    name[63] = '.';
    memset(name + 64, 'b', 63);
    name[127] = '.';
    memset(name + 128, 'c', 63);
    name[191] = '.';
    memset(name + 192, 'd', 62);
    name[254] = '\0';
    bn = dns_query(b, 1, F_RD, name, 1, false);
    assert_int_equal(parse(b, bn, &q), -EPROTO);

    /* Bytes no host name has, whatever their case. */
    static const char *const bad[] = {"a*b", "a b", "a/b", "caf\xc3\xa9", "a\x01",
                                      "a@b", "a+b", "a~b", "a\x7f"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "%s.example.com", bad[i]);
        bn = dns_query(b, 1, F_RD, nm, 1, false);
        if (parse(b, bn, &q) != -EPROTO)
            fail_msg("`%s` parsed as `%s`", nm, q.name);
    }
    /* A NUL inside a label (a classic for cutting a name short in C). */
    bn = dns_query(b, 1, F_RD, "abc.example.com", 1, false);
    b[13] = 0;
    assert_int_equal(parse(b, bn, &q), -EPROTO);
    /* A '.' inside a label would make two labels of one. */
    bn = dns_query(b, 1, F_RD, "abc.example.com", 1, false);
    b[14] = '.';
    assert_int_equal(parse(b, bn, &q), -EPROTO);

    /* The name ends but qtype and qclass are missing or cut. */
    bn = dns_query(b, 1, F_RD, "api.example.com", 1, false);
    for (size_t len = bn - 4; len < bn; len++)
        assert_int_equal(parse(b, len, &q), -EPROTO);
    assert_int_equal(parse(b, bn, &q), 0);
}

/* Checks the answer record at rr: a pointer to the question's name, type,
 * class IN, ttl, and rdata addr of alen bytes. */
static void check_rr(const uint8_t *rr, uint16_t type, uint32_t ttl, const uint8_t *addr,
                     size_t alen)
{
    assert_int_equal(rd16(rr), 0xc00c);
    assert_int_equal(rd16(rr + 2), type);
    assert_int_equal(rd16(rr + 4), 1);
    assert_int_equal(rd32(rr + 6), ttl);
    assert_int_equal(rd16(rr + 10), alen);
    assert_memory_equal(rr + 12, addr, alen);
}

static egress_addr_t addr_of(const char *s)
{
    egress_addr_t a = {.family = strchr(s, ':') ? AF_INET6 : AF_INET};
    assert_int_equal(inet_pton(a.family, s, a.addr), 1);
    return a;
}

static void test_dns_answers(void **state)
{
    uint8_t m[EGRESS__DNS_MAX], out[EGRESS__DNS_MAX];
    egress__dns_query_t q;
    size_t n = dns_query(m, 0xabcd, F_RD, "API.example.com", 1, true);
    assert_int_equal(parse(m, n, &q), 0);
    size_t qend = 12 + q.question_len;

    /* NXDOMAIN: the header answers the query, the question comes back as
     * asked (case included), no records. */
    memset(out, 0xee, sizeof out);
    size_t len = egress__dns_answer(m, &q, 3, NULL, 0, 60, out, sizeof out);
    assert_int_equal(len, qend);
    assert_int_equal(rd16(out), 0xabcd);
    assert_int_equal(rd16(out + 2), 0x8000 | F_RD | 0x0080 | 3); /* QR, RD, RA, rcode 3 */
    assert_int_equal(rd16(out + 4), 1);
    assert_int_equal(rd16(out + 6), 0);
    assert_int_equal(rd16(out + 8), 0);
    assert_int_equal(rd16(out + 10), 0);
    assert_memory_equal(out + 12, m + 12, q.question_len);

    /* RD clear in the query: clear in the answer. */
    n = dns_query(m, 0x0102, 0, "api.example.com", 1, false);
    assert_int_equal(parse(m, n, &q), 0);
    len = egress__dns_answer(m, &q, 3, NULL, 0, 60, out, sizeof out);
    assert_int_equal(len, 12 + q.question_len);
    assert_int_equal(rd16(out), 0x0102);
    assert_int_equal(rd16(out + 2), 0x8000 | 0x0080 | 3);

    /* Two A records, from a list that also holds an IPv6 address. */
    n = dns_query(m, 0x5151, F_RD, "api.example.com", 1, true);
    assert_int_equal(parse(m, n, &q), 0);
    qend = 12 + q.question_len;
    egress_addr_t addrs[] = {addr_of("192.0.2.10"), addr_of("2001:db8::7"),
                             addr_of("198.51.100.200")};
    len = egress__dns_answer(m, &q, 0, addrs, 3, 300, out, sizeof out);
    assert_int_equal(len, qend + 2 * 16);
    assert_int_equal(rd16(out), 0x5151);
    assert_int_equal(rd16(out + 2), 0x8000 | F_RD | 0x0080);
    assert_int_equal(rd16(out + 4), 1);
    assert_int_equal(rd16(out + 6), 2);
    assert_int_equal(rd16(out + 8), 0);
    assert_int_equal(rd16(out + 10), 0); /* the OPT record is not echoed */
    assert_memory_equal(out + 12, m + 12, q.question_len);
    check_rr(out + qend, 1, 300, addrs[0].addr, 4);
    check_rr(out + qend + 16, 1, 300, addrs[2].addr, 4);

    /* AAAA: only the IPv6 addresses, in order. */
    n = dns_query(m, 0x6666, F_RD, "api.example.com", 28, false);
    assert_int_equal(parse(m, n, &q), 0);
    egress_addr_t mixed[] = {addr_of("192.0.2.10"), addr_of("2001:db8::7"),
                             addr_of("198.51.100.200"), addr_of("2001:db8:ffff::1")};
    len = egress__dns_answer(m, &q, 0, mixed, 4, 0xfffffffe, out, sizeof out);
    assert_int_equal(len, qend + 2 * 28);
    assert_int_equal(rd16(out + 6), 2);
    check_rr(out + qend, 28, 0xfffffffe, mixed[1].addr, 16);
    check_rr(out + qend + 28, 28, 0xfffffffe, mixed[3].addr, 16);

    /* An A query when only IPv6 is known: no error, no records (NODATA). */
    n = dns_query(m, 0x6767, F_RD, "api.example.com", 1, false);
    assert_int_equal(parse(m, n, &q), 0);
    len = egress__dns_answer(m, &q, 0, mixed + 1, 1, 60, out, sizeof out);
    assert_int_equal(len, qend);
    assert_int_equal(rd16(out + 2) & 0xf, 0);
    assert_int_equal(rd16(out + 6), 0);

    /* Another type (MX): no addresses fit it. */
    n = dns_query(m, 0x6868, F_RD, "api.example.com", 15, false);
    assert_int_equal(parse(m, n, &q), 0);
    len = egress__dns_answer(m, &q, 0, mixed, 4, 60, out, sizeof out);
    assert_int_equal(len, qend);
    assert_int_equal(rd16(out + 6), 0);

    /* SERVFAIL with addresses at hand: an error carries no records. */
    n = dns_query(m, 0x6969, F_RD, "api.example.com", 1, false);
    assert_int_equal(parse(m, n, &q), 0);
    len = egress__dns_answer(m, &q, 2, addrs, 3, 60, out, sizeof out);
    assert_int_equal(len, qend);
    assert_int_equal(rd16(out + 2) & 0xf, 2);
    assert_int_equal(rd16(out + 6), 0);
}

static void test_dns_answer_cap(void **state)
{
    uint8_t m[EGRESS__DNS_MAX];
    egress__dns_query_t q;
    size_t n = dns_query(m, 0x7777, F_RD, "api.example.com", 1, false);
    assert_int_equal(parse(m, n, &q), 0);
    size_t qend = 12 + q.question_len;
    egress_addr_t addrs[EGRESS_HOSTS_MAX_ADDRS];
    for (size_t i = 0; i < EGRESS_HOSTS_MAX_ADDRS; i++) {
        addrs[i].family = AF_INET;
        uint8_t a[4] = {203, 0, 113, (uint8_t)(i + 1)};
        memcpy(addrs[i].addr, a, 4);
    }
    /* Every cap from nothing to room for all: the answer is as long as
     * whole records fit, the count says how many, nothing is written past
     * cap (the buffer is exactly cap bytes, under ASan). */
    for (size_t cap = 0; cap <= qend + 16 * EGRESS_HOSTS_MAX_ADDRS + 20; cap++) {
        uint8_t *out = malloc(cap ? cap : 1);
        size_t len = egress__dns_answer(m, &q, 0, addrs, EGRESS_HOSTS_MAX_ADDRS, 60, out, cap);
        assert_true(len <= cap);
        if (cap < 12) {
            assert_int_equal(len, 0);
        } else if (cap < qend) {
            /* No room for the question: a bare header, no records. */
            assert_int_equal(len, 12);
            assert_int_equal(rd16(out), 0x7777);
            assert_int_equal(rd16(out + 4), 0);
            assert_int_equal(rd16(out + 6), 0);
        } else {
            size_t fit = (cap - qend) / 16;
            if (fit > EGRESS_HOSTS_MAX_ADDRS)
                fit = EGRESS_HOSTS_MAX_ADDRS;
            assert_int_equal(len, qend + 16 * fit);
            assert_int_equal(rd16(out + 4), 1);
            assert_int_equal(rd16(out + 6), fit);
            for (size_t i = 0; i < fit; i++)
                check_rr(out + qend + 16 * i, 1, 60, addrs[i].addr, 4);
        }
        free(out);
    }
}

static void test_dns_formerr(void **state)
{
    /* What the resolver sends back to a message it could not parse: the id,
     * FORMERR, no question. */
    uint8_t m[EGRESS__DNS_MAX];
    size_t n = dns_query(m, 0x9a9b, F_RD, "api.example.com", 1, false);
    m[2] |= 0x80; /* a response: refused by the parser */
    egress__dns_query_t q;
    assert_int_equal(parse(m, n, &q), -EPROTO);
    uint8_t out[64];
    memset(out, 0xee, sizeof out);
    size_t len = egress__dns_answer(m, NULL, 1, NULL, 0, 0, out, sizeof out);
    assert_int_equal(len, 12);
    assert_int_equal(rd16(out), 0x9a9b);
    assert_int_equal(rd16(out + 2), 0x8000 | 0x0080 | 1);
    assert_int_equal(rd16(out + 4), 0);
    assert_int_equal(rd16(out + 6), 0);
    assert_int_equal(rd16(out + 8), 0);
    assert_int_equal(rd16(out + 10), 0);
    assert_int_equal(out[12], 0xee);
    /* Only the header of the message is read: a bare 12-byte header will do. */
    uint8_t *hdr = exact(m, 12);
    len = egress__dns_answer(hdr, NULL, 1, NULL, 0, 0, out, sizeof out);
    assert_int_equal(len, 12);
    assert_int_equal(rd16(out), 0x9a9b);
    free(hdr);
}

/* ---- sniffing ------------------------------------------------------------------- */

static int sniff_req(const char *s, size_t len, char *method, size_t mlen, char *path, size_t plen)
{
    uint8_t *copy = exact(s, len);
    int r = egress__sniff_http_request(copy, len, method, mlen, path, plen);
    free(copy);
    return r;
}

static void request_is(const char *s, const char *method, const char *path)
{
    char m[16], p[128];
    if (sniff_req(s, strlen(s), m, sizeof m, p, sizeof p) != 1)
        fail_msg("not sniffed: `%s`", s);
    assert_string_equal(m, method);
    assert_string_equal(p, path);
}

/* The bytes of a string literal, NULs inside included, without its end. */
#define LIT(s) (s), sizeof(s) - 1

static void not_request(const char *s, size_t len)
{
    char m[16] = "untouched", p[128] = "untouched";
    if (sniff_req(s, len, m, sizeof m, p, sizeof p) != 0)
        fail_msg("sniffed `%.*s` as %s %s", (int)len, s, m, p);
}

static void test_sniff_http_request(void **state)
{
    request_is("GET / HTTP/1.1\r\nHost: api.test\r\n\r\n", "GET", "/");
    request_is("POST /v1/items?x=1&y=%20z HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "POST",
               "/v1/items?x=1&y=%20z");
    request_is("GET /a HTTP/1.0\r\n", "GET", "/a");
    /* Methods are tokens, not a fixed list. */
    request_is("PROPFIND /dav/ HTTP/1.1\r\n", "PROPFIND", "/dav/");
    request_is("M-SEARCH * HTTP/1.1\r\n", "M-SEARCH", "*");
    request_is("CONNECT api.test:443 HTTP/1.1\r\n", "CONNECT", "api.test:443");
    /* Enough is the request line up to "HTTP/1.x": the rest may come later. */
    request_is("GET /x HTTP/1.1", "GET", "/x");

    const char *full = "GET /x HTTP/1.1\r\n";
    for (size_t len = 0; len < strlen("GET /x HTTP/1.1"); len++)
        not_request(full, len);

    /* Not HTTP/1.x. */
    not_request(LIT("GET / HTTP/2.0\r\n"));
    not_request(LIT("GET / http/1.1\r\n"));
    not_request(LIT("GET /\r\n"));
    not_request(LIT("GET / \r\n\r\n"));
    /* A path with a space, a CR or an LF in it. */
    not_request(LIT("GET /a b HTTP/1.1\r\n"));
    not_request(LIT("GET /a\rb HTTP/1.1\r\n"));
    not_request(LIT("GET /a\nb HTTP/1.1\r\n"));
    /* No method, no path, a method of non-token bytes, two spaces. */
    not_request(LIT(" / HTTP/1.1\r\n"));
    not_request(LIT("GET  HTTP/1.1\r\n"));
    not_request(LIT("GE(T / HTTP/1.1\r\n"));
    not_request(LIT("GET  / HTTP/1.1\r\n"));
    not_request(LIT("\x16\x03\x01\x00\x10 / HTTP/1.1\r\n"));
    /* A method longer than any (32 token bytes at most). */
    not_request(LIT("GETGETGETGETGETGETGETGETGETGETGETG / HTTP/1.1\r\n"));

    /* Control and non-ASCII bytes in the path are copied as '?'. */
    static const char ctl[] = "GET /a\x01\tb\x7f\xff/\x1b[2J HTTP/1.1\r\n";
    char m[16], p[64];
    assert_int_equal(sniff_req(ctl, sizeof ctl - 1, m, sizeof m, p, sizeof p), 1);
    assert_string_equal(p, "/a??b??"
                           "/?[2J"); /* split: no trigraph */
    /* A NUL too: the copy stays one C string of the whole path. */
    static const char nul[] = "GET /a\0b HTTP/1.1\r\n";
    assert_int_equal(sniff_req(nul, sizeof nul - 1, m, sizeof m, p, sizeof p), 1);
    assert_string_equal(p, "/a?b");

    /* Outputs smaller than what was sent: cut, NUL-terminated, and not a
     * byte written past them (the guard bytes after each stay). */
    struct {
        char m[4];
        char mg[4];
        char p[8];
        char pg[4];
    } small;
    memset(&small, 'Z', sizeof small);
    const char *long_req = "OPTIONS /a/very/long/path?with=query HTTP/1.1\r\n";
    assert_int_equal(
        sniff_req(long_req, strlen(long_req), small.m, sizeof small.m, small.p, sizeof small.p), 1);
    assert_string_equal(small.m, "OPT");
    assert_string_equal(small.p, "/a/very");
    assert_memory_equal(small.mg, "ZZZZ", 4);
    assert_memory_equal(small.pg, "ZZZZ", 4);
    /* A method or path of size 1 holds just the NUL; of size 0, nothing. */
    char one = 'Z', none = 'Z';
    assert_int_equal(sniff_req(long_req, strlen(long_req), &one, 1, &none, 0), 1);
    assert_int_equal(one, '\0');
    assert_int_equal(none, 'Z');
}

static int status_of(const char *s, size_t len)
{
    uint8_t *copy = exact(s, len);
    int r = egress__sniff_http_status(copy, len);
    free(copy);
    return r;
}

static void test_sniff_http_status(void **state)
{
    assert_int_equal(status_of(LIT("HTTP/1.1 200 OK\r\n")), 200);
    assert_int_equal(status_of(LIT("HTTP/1.1 204 No Content\r\n\r\n")), 204);
    assert_int_equal(status_of(LIT("HTTP/1.0 404")), 404);
    assert_int_equal(status_of(LIT("HTTP/1.1 503 \r\n")), 503);
    assert_int_equal(status_of(LIT("HTTP/1.1 100 Continue\r\n")), 100);
    assert_int_equal(status_of(LIT("HTTP/1.1 999 Odd\r\n")), 999);

    /* Every cut short of the three digits. */
    for (size_t len = 0; len < 12; len++)
        assert_int_equal(status_of("HTTP/1.1 200 OK\r\n", len), 0);
    /* Not digits, fewer than three, below 100. */
    assert_int_equal(status_of(LIT("HTTP/1.1 2x0 OK\r\n")), 0);
    assert_int_equal(status_of(LIT("HTTP/1.1 -20 OK\r\n")), 0);
    assert_int_equal(status_of(LIT("HTTP/1.1 20 OK\r\n")), 0);
    assert_int_equal(status_of(LIT("HTTP/1.1 099 Low\r\n")), 0);
    assert_int_equal(status_of(LIT("HTTP/1.1 000\r\n")), 0);
    /* Not an HTTP/1.x status line. */
    assert_int_equal(status_of(LIT("HTTP/2 200 OK\r\n")), 0);
    assert_int_equal(status_of(LIT("http/1.1 200 OK\r\n")), 0);
    assert_int_equal(status_of(LIT("HTTP/1.1  200 OK\r\n")), 0);
    assert_int_equal(status_of(LIT("SSH-2.0-OpenSSH_9.6\r\n")), 0);
    assert_int_equal(status_of(LIT("\x16\x03\x03\x00\x7a\x02\x00\x00\x76\x03\x03\x00")), 0);
}

/* A ClientHello as `openssl s_client -servername api.test` (OpenSSL 3.0)
 * sent it to a local listener: TLS 1.3 with 1.2 fallback, server_name the
 * first extension (at bytes 144–160). */
static const uint8_t hello_sni[] = {
    0x16, 0x03, 0x01, 0x01, 0x35, 0x01, 0x00, 0x01, 0x31, 0x03, 0x03, 0x34, 0xb0, 0x7b, 0x39, 0x5e,
    0x4a, 0xb9, 0x60, 0xf6, 0xad, 0x6d, 0x1a, 0x27, 0xaa, 0x3d, 0x62, 0x38, 0xbd, 0x3d, 0xfa, 0x00,
    0x8b, 0xd4, 0xcf, 0x0b, 0x60, 0x30, 0xff, 0x7c, 0x50, 0x2e, 0xec, 0x20, 0xec, 0xf4, 0x03, 0x73,
    0xdd, 0x68, 0x37, 0x7f, 0xe9, 0xfd, 0x6f, 0x3c, 0x1e, 0xb4, 0x31, 0xec, 0x52, 0x53, 0xa2, 0xc7,
    0x5f, 0x57, 0x04, 0xdf, 0x2d, 0x13, 0xe9, 0x91, 0x7a, 0x71, 0xbe, 0x58, 0x00, 0x3e, 0x13, 0x02,
    0x13, 0x03, 0x13, 0x01, 0xc0, 0x2c, 0xc0, 0x30, 0x00, 0x9f, 0xcc, 0xa9, 0xcc, 0xa8, 0xcc, 0xaa,
    0xc0, 0x2b, 0xc0, 0x2f, 0x00, 0x9e, 0xc0, 0x24, 0xc0, 0x28, 0x00, 0x6b, 0xc0, 0x23, 0xc0, 0x27,
    0x00, 0x67, 0xc0, 0x0a, 0xc0, 0x14, 0x00, 0x39, 0xc0, 0x09, 0xc0, 0x13, 0x00, 0x33, 0x00, 0x9d,
    0x00, 0x9c, 0x00, 0x3d, 0x00, 0x3c, 0x00, 0x35, 0x00, 0x2f, 0x00, 0xff, 0x01, 0x00, 0x00, 0xaa,
    0x00, 0x00, 0x00, 0x0d, 0x00, 0x0b, 0x00, 0x00, 0x08, 0x61, 0x70, 0x69, 0x2e, 0x74, 0x65, 0x73,
    0x74, 0x00, 0x0b, 0x00, 0x04, 0x03, 0x00, 0x01, 0x02, 0x00, 0x0a, 0x00, 0x16, 0x00, 0x14, 0x00,
    0x1d, 0x00, 0x17, 0x00, 0x1e, 0x00, 0x19, 0x00, 0x18, 0x01, 0x00, 0x01, 0x01, 0x01, 0x02, 0x01,
    0x03, 0x01, 0x04, 0x00, 0x23, 0x00, 0x00, 0x00, 0x16, 0x00, 0x00, 0x00, 0x17, 0x00, 0x00, 0x00,
    0x0d, 0x00, 0x2a, 0x00, 0x28, 0x04, 0x03, 0x05, 0x03, 0x06, 0x03, 0x08, 0x07, 0x08, 0x08, 0x08,
    0x09, 0x08, 0x0a, 0x08, 0x0b, 0x08, 0x04, 0x08, 0x05, 0x08, 0x06, 0x04, 0x01, 0x05, 0x01, 0x06,
    0x01, 0x03, 0x03, 0x03, 0x01, 0x03, 0x02, 0x04, 0x02, 0x05, 0x02, 0x06, 0x02, 0x00, 0x2b, 0x00,
    0x09, 0x08, 0x03, 0x04, 0x03, 0x03, 0x03, 0x02, 0x03, 0x01, 0x00, 0x2d, 0x00, 0x02, 0x01, 0x01,
    0x00, 0x33, 0x00, 0x26, 0x00, 0x24, 0x00, 0x1d, 0x00, 0x20, 0x2a, 0x69, 0xaa, 0x38, 0x4a, 0x6e,
    0x70, 0x5f, 0x42, 0x09, 0x2a, 0x3f, 0xad, 0xe5, 0x52, 0x77, 0x77, 0xac, 0x2f, 0x7c, 0x16, 0xe3,
    0x9f, 0x5c, 0xcb, 0x4a, 0x1b, 0x62, 0xc9, 0x81, 0x95, 0x62,
};
#define HELLO_SNI_END 161

/* The same client with -noservername: every other extension, no SNI. */
static const uint8_t hello_no_sni[] = {
    0x16, 0x03, 0x01, 0x01, 0x24, 0x01, 0x00, 0x01, 0x20, 0x03, 0x03, 0x7d, 0x2a, 0xf0, 0x20, 0x72,
    0xe3, 0x22, 0x9e, 0xa9, 0x6a, 0x04, 0x52, 0x8f, 0x24, 0xc0, 0xf3, 0xc6, 0x54, 0x16, 0x58, 0xab,
    0xb7, 0xd1, 0x65, 0x30, 0x5b, 0xcb, 0x21, 0x11, 0xb8, 0x84, 0xf8, 0x20, 0xee, 0xff, 0x64, 0xa9,
    0xea, 0x34, 0xd7, 0x6d, 0x7c, 0xea, 0xb3, 0x5e, 0xbd, 0xe5, 0x62, 0xb4, 0xd0, 0xef, 0x55, 0xa5,
    0xc0, 0x47, 0x69, 0x3e, 0xee, 0xd6, 0xb9, 0xac, 0x2c, 0x5c, 0x79, 0x75, 0x00, 0x3e, 0x13, 0x02,
    0x13, 0x03, 0x13, 0x01, 0xc0, 0x2c, 0xc0, 0x30, 0x00, 0x9f, 0xcc, 0xa9, 0xcc, 0xa8, 0xcc, 0xaa,
    0xc0, 0x2b, 0xc0, 0x2f, 0x00, 0x9e, 0xc0, 0x24, 0xc0, 0x28, 0x00, 0x6b, 0xc0, 0x23, 0xc0, 0x27,
    0x00, 0x67, 0xc0, 0x0a, 0xc0, 0x14, 0x00, 0x39, 0xc0, 0x09, 0xc0, 0x13, 0x00, 0x33, 0x00, 0x9d,
    0x00, 0x9c, 0x00, 0x3d, 0x00, 0x3c, 0x00, 0x35, 0x00, 0x2f, 0x00, 0xff, 0x01, 0x00, 0x00, 0x99,
    0x00, 0x0b, 0x00, 0x04, 0x03, 0x00, 0x01, 0x02, 0x00, 0x0a, 0x00, 0x16, 0x00, 0x14, 0x00, 0x1d,
    0x00, 0x17, 0x00, 0x1e, 0x00, 0x19, 0x00, 0x18, 0x01, 0x00, 0x01, 0x01, 0x01, 0x02, 0x01, 0x03,
    0x01, 0x04, 0x00, 0x23, 0x00, 0x00, 0x00, 0x16, 0x00, 0x00, 0x00, 0x17, 0x00, 0x00, 0x00, 0x0d,
    0x00, 0x2a, 0x00, 0x28, 0x04, 0x03, 0x05, 0x03, 0x06, 0x03, 0x08, 0x07, 0x08, 0x08, 0x08, 0x09,
    0x08, 0x0a, 0x08, 0x0b, 0x08, 0x04, 0x08, 0x05, 0x08, 0x06, 0x04, 0x01, 0x05, 0x01, 0x06, 0x01,
    0x03, 0x03, 0x03, 0x01, 0x03, 0x02, 0x04, 0x02, 0x05, 0x02, 0x06, 0x02, 0x00, 0x2b, 0x00, 0x09,
    0x08, 0x03, 0x04, 0x03, 0x03, 0x03, 0x02, 0x03, 0x01, 0x00, 0x2d, 0x00, 0x02, 0x01, 0x01, 0x00,
    0x33, 0x00, 0x26, 0x00, 0x24, 0x00, 0x1d, 0x00, 0x20, 0x4c, 0xfa, 0x12, 0x15, 0x93, 0x45, 0xdf,
    0x3e, 0xb2, 0xc9, 0x8d, 0x83, 0x5f, 0x6c, 0x57, 0x47, 0x96, 0x4c, 0x56, 0x3a, 0x0c, 0xb3, 0xa0,
    0x94, 0xc6, 0xba, 0x30, 0xa3, 0x8d, 0x35, 0xea, 0x73,
};

static int sni_of(const uint8_t *buf, size_t len, char *out, size_t outlen)
{
    uint8_t *copy = exact(buf, len);
    int r = egress__sniff_tls_sni(copy, len, out, outlen);
    free(copy);
    return r;
}

/* A ClientHello built by hand: no session id, one suite, null compression,
 * then exts (raw extension blocks). Returns its length. */
static size_t hello(uint8_t *b, const uint8_t *exts, size_t elen)
{
    size_t hs = 4 + 2 + 32 + 1 + 2 + 2 + 1 + 1 + 2 + elen;
    size_t n = 0;
    b[n++] = 22;
    b[n++] = 3;
    b[n++] = 1;
    wr16(b + n, (uint16_t)hs);
    n += 2;
    b[n++] = 1; /* ClientHello */
    b[n++] = 0;
    wr16(b + n, (uint16_t)(hs - 4));
    n += 2;
    b[n++] = 3;
    b[n++] = 3;
    memset(b + n, 0x5a, 32);
    n += 32;
    b[n++] = 0; /* session id */
    wr16(b + n, 2);
    wr16(b + n + 2, 0x1301);
    n += 4;
    b[n++] = 1; /* compression: null */
    b[n++] = 0;
    wr16(b + n, (uint16_t)elen);
    n += 2;
    memcpy(b + n, exts, elen);
    return n + elen;
}

static void test_sniff_tls_sni(void **state)
{
    char out[256];
    assert_int_equal(sni_of(hello_sni, sizeof hello_sni, out, sizeof out), 1);
    assert_string_equal(out, "api.test");

    /* Every cut: the name once its extension is whole, 0 before, and never
     * a read past the end. */
    for (size_t len = 0; len <= sizeof hello_sni; len++) {
        memset(out, 0, sizeof out);
        int r = sni_of(hello_sni, len, out, sizeof out);
        if (len >= HELLO_SNI_END) {
            assert_int_equal(r, 1);
            assert_string_equal(out, "api.test");
        } else if (r != 0) {
            fail_msg("cut at %zu: found `%s`", len, out);
        }
    }

    /* No SNI: 0, at any length. */
    for (size_t len = 0; len <= sizeof hello_no_sni; len++)
        assert_int_equal(sni_of(hello_no_sni, len, out, sizeof out), 0);

    /* Not a handshake record: application data, an alert, change cipher
     * spec, SSLv2-style, plain HTTP. */
    static const uint8_t types[] = {23, 21, 20, 0x80, 'G'};
    uint8_t b[sizeof hello_sni];
    for (size_t i = 0; i < sizeof types; i++) {
        memcpy(b, hello_sni, sizeof b);
        b[0] = types[i];
        assert_int_equal(sni_of(b, sizeof b, out, sizeof out), 0);
    }
    /* A handshake record that is not a ClientHello (a ServerHello). */
    memcpy(b, hello_sni, sizeof b);
    b[5] = 2;
    assert_int_equal(sni_of(b, sizeof b, out, sizeof out), 0);
    /* The record's length is believed over the bytes after it: a record cut
     * before the extension hides it even if more bytes follow. */
    memcpy(b, hello_sni, sizeof b);
    wr16(b + 3, HELLO_SNI_END - 5 - 1);
    assert_int_equal(sni_of(b, sizeof b, out, sizeof out), 0);
    wr16(b + 3, HELLO_SNI_END - 5);
    assert_int_equal(sni_of(b, sizeof b, out, sizeof out), 1);

    /* server_name after other extensions, its list starting with an entry
     * of another kind, and the name cut to the output, printable. */
    static const uint8_t exts[] = {
        0x00, 0x0b, 0x00, 0x02, 0x01, 0x00,                           /* ec_point_formats */
        0x00, 0x17, 0x00, 0x00,                                       /* extended_master_secret */
        0x00, 0x00, 0x00, 0x12, 0x00, 0x10,                           /* server_name, list of 16 */
        0x07, 0x00, 0x02, 'x',  'y',                                  /* kind 7: skipped */
        0x00, 0x00, 0x08, 'w',  'w',  'w',  '.', 'a', 0x01, ' ', 'b', /* host_name */
    };
    uint8_t h[256];
    size_t hn = hello(h, exts, sizeof exts);
    assert_int_equal(sni_of(h, hn, out, sizeof out), 1);
    assert_string_equal(out, "www.a??b");
    struct {
        char o[5];
        char guard[4];
    } small;
    memset(&small, 'Z', sizeof small);
    assert_int_equal(sni_of(h, hn, small.o, sizeof small.o), 1);
    assert_string_equal(small.o, "www.");
    assert_memory_equal(small.guard, "ZZZZ", 4);
    for (size_t len = 0; len < hn; len++)
        assert_int_equal(sni_of(h, len, out, sizeof out), 0);

    /* An extension claiming more bytes than there are, before SNI. */
    static const uint8_t lying[] = {0x00, 0x0b, 0x00, 0x40, 0x01, 0x00, 0x00, 0x00, 0x00,
                                    0x07, 0x00, 0x05, 0x00, 0x00, 0x02, 'a',  'b'};
    hn = hello(h, lying, sizeof lying);
    assert_int_equal(sni_of(h, hn, out, sizeof out), 0);
    /* A host_name longer than its list. */
    static const uint8_t longname[] = {0x00, 0x00, 0x00, 0x07, 0x00, 0x05,
                                       0x00, 0x00, 0x09, 'a',  'b'};
    hn = hello(h, longname, sizeof longname);
    assert_int_equal(sni_of(h, hn, out, sizeof out), 0);
    /* An empty host_name is no name. */
    static const uint8_t empty[] = {0x00, 0x00, 0x00, 0x05, 0x00, 0x03, 0x00, 0x00, 0x00};
    hn = hello(h, empty, sizeof empty);
    assert_int_equal(sni_of(h, hn, out, sizeof out), 0);
}

/* ---- NFLOG ---------------------------------------------------------------------- */

/* A datagram as the kernel's nfnetlink_log sends it, built message by
 * message: nlmsghdr, nfgenmsg, then attributes padded to 4 bytes. */
typedef struct {
    _Alignas(4) uint8_t b[2048];
    size_t len;
    size_t msg; /* where the open message starts */
} dgram_t;

static void msg_begin(dgram_t *d, uint16_t type, uint8_t family)
{
    d->msg = d->len;
    struct nlmsghdr nh = {.nlmsg_type = type, .nlmsg_seq = 0, .nlmsg_pid = 0};
    memcpy(d->b + d->len, &nh, sizeof nh);
    d->len += NLMSG_HDRLEN;
    struct nfgenmsg g = {
        .nfgen_family = family, .version = NFNETLINK_V0, .res_id = htons(EGRESS__NFLOG_GROUP)};
    memcpy(d->b + d->len, &g, sizeof g);
    d->len += NLMSG_ALIGN(sizeof g);
}

static void attr_put(dgram_t *d, uint16_t type, const void *data, size_t n)
{
    struct nlattr at = {.nla_len = (uint16_t)(NLA_HDRLEN + n), .nla_type = type};
    memcpy(d->b + d->len, &at, sizeof at);
    memcpy(d->b + d->len + NLA_HDRLEN, data, n);
    memset(d->b + d->len + NLA_HDRLEN + n, 0, NLA_ALIGN(n) - n);
    d->len += NLA_HDRLEN + NLA_ALIGN(n);
}

static void msg_end(dgram_t *d)
{
    uint32_t l = (uint32_t)(d->len - d->msg);
    memcpy(d->b + d->msg, &l, sizeof l);
}

#define NFLOG_PACKET ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET)

/* The first 40 bytes of a TCP SYN from saddr:sport to daddr:dport. */
static size_t ipv4_tcp(uint8_t *p, const char *saddr, uint16_t sport, const char *daddr,
                       uint16_t dport)
{
    memset(p, 0, 40);
    p[0] = 0x45;
    wr16(p + 2, 60);
    p[8] = 64;
    p[9] = IPPROTO_TCP;
    assert_int_equal(inet_pton(AF_INET, saddr, p + 12), 1);
    assert_int_equal(inet_pton(AF_INET, daddr, p + 16), 1);
    wr16(p + 20, sport);
    wr16(p + 22, dport);
    p[32] = 0xa0; /* data offset 10 */
    p[33] = 0x02; /* SYN */
    return 40;
}

/* An IPv6 UDP datagram's headers (48 bytes). */
static size_t ipv6_udp(uint8_t *p, const char *saddr, uint16_t sport, const char *daddr,
                       uint16_t dport)
{
    memset(p, 0, 48);
    p[0] = 0x60;
    wr16(p + 4, 8 + 4);
    p[6] = IPPROTO_UDP;
    p[7] = 64;
    assert_int_equal(inet_pton(AF_INET6, saddr, p + 8), 1);
    assert_int_equal(inet_pton(AF_INET6, daddr, p + 24), 1);
    wr16(p + 40, sport);
    wr16(p + 42, dport);
    wr16(p + 44, 12);
    return 48;
}

/* One logged packet: the packet header, the prefix (NUL included, as the
 * kernel sends it), then the payload. */
static void logged(dgram_t *d, uint8_t family, const char *prefix, const uint8_t *pkt, size_t n)
{
    msg_begin(d, NFLOG_PACKET, family);
    struct nfulnl_msg_packet_hdr ph = {.hw_protocol = htons(family == AF_INET ? 0x0800 : 0x86dd),
                                       .hook = 3};
    attr_put(d, NFULA_PACKET_HDR, &ph, sizeof ph);
    uint32_t mark = htonl(EGRESS__MARK);
    attr_put(d, NFULA_MARK, &mark, sizeof mark);
    attr_put(d, NFULA_PREFIX, prefix, strlen(prefix) + 1);
    attr_put(d, NFULA_PAYLOAD, pkt, n);
    msg_end(d);
}

static void check_ip(int family, const uint8_t *got, const char *want)
{
    uint8_t a[16] = {0};
    assert_int_equal(inet_pton(family, want, a), 1);
    assert_memory_equal(got, a, 16);
}

static void test_nflog_packets(void **state)
{
    dgram_t d = {.len = 0};
    uint8_t pkt[64];

    /* A denied TCP connection over IPv4. */
    size_t n = ipv4_tcp(pkt, "10.255.255.2", 40000, "203.0.113.9", 443);
    logged(&d, AF_INET, "deny", pkt, n);
    size_t end1 = d.len;
    /* Something else in between: an NLMSG_DONE. */
    msg_begin(&d, NLMSG_DONE, AF_UNSPEC);
    msg_end(&d);
    /* A UDP datagram over IPv6, past the limit. */
    n = ipv6_udp(pkt, "fd00:6d66::2", 5353, "2001:db8::53", 53);
    logged(&d, AF_INET6, "limit", pkt, n);
    size_t end2 = d.len;

    uint8_t *buf = exact(d.b, d.len);
    size_t off = 0;
    egress__denial_t den;
    assert_int_equal(egress__nflog_parse(buf, d.len, &off, &den), 1);
    assert_int_equal(off, end1);
    assert_string_equal(den.prefix, "deny");
    assert_int_equal(den.family, AF_INET);
    assert_int_equal(den.proto, IPPROTO_TCP);
    assert_memory_equal(den.addr, "\xcb\x00\x71\x09", 4);
    assert_memory_equal(den.saddr, "\x0a\xff\xff\x02", 4);
    assert_int_equal(den.port, 443);
    assert_int_equal(den.sport, 40000);

    assert_int_equal(egress__nflog_parse(buf, d.len, &off, &den), 1);
    assert_int_equal(off, end2);
    assert_string_equal(den.prefix, "limit");
    assert_int_equal(den.family, AF_INET6);
    assert_int_equal(den.proto, IPPROTO_UDP);
    check_ip(AF_INET6, den.addr, "2001:db8::53");
    check_ip(AF_INET6, den.saddr, "fd00:6d66::2");
    assert_int_equal(den.port, 53);
    assert_int_equal(den.sport, 5353);

    assert_int_equal(egress__nflog_parse(buf, d.len, &off, &den), 0);
    assert_int_equal(off, d.len);
    free(buf);

    /* A prefix longer than the field is cut, still a C string; a packet
     * too short for ports has none; ICMP has none. */
    dgram_t e = {.len = 0};
    n = ipv4_tcp(pkt, "10.255.255.2", 1, "192.0.2.1", 80);
    logged(&e, AF_INET, "a-prefix-of-twenty-two", pkt, 22);
    pkt[9] = IPPROTO_ICMP;
    logged(&e, AF_INET, "closed", pkt, n);
    buf = exact(e.b, e.len);
    off = 0;
    assert_int_equal(egress__nflog_parse(buf, e.len, &off, &den), 1);
    assert_string_equal(den.prefix, "a-prefix-of-twe");
    assert_int_equal(den.proto, IPPROTO_TCP);
    assert_int_equal(den.port, 0);
    assert_int_equal(den.sport, 0);
    assert_memory_equal(den.addr, "\xc0\x00\x02\x01", 4);
    assert_int_equal(egress__nflog_parse(buf, e.len, &off, &den), 1);
    assert_string_equal(den.prefix, "closed");
    assert_int_equal(den.proto, IPPROTO_ICMP);
    assert_int_equal(den.port, 0);
    assert_int_equal(egress__nflog_parse(buf, e.len, &off, &den), 0);
    free(buf);

    /* At the field's edge: 15 characters fit with their NUL, 16 do not. */
    dgram_t f = {.len = 0};
    n = ipv4_tcp(pkt, "10.255.255.2", 1, "192.0.2.1", 80);
    logged(&f, AF_INET, "fifteen-chars-a", pkt, n);
    logged(&f, AF_INET, "sixteen-chars-ab", pkt, n);
    buf = exact(f.b, f.len);
    off = 0;
    assert_int_equal(egress__nflog_parse(buf, f.len, &off, &den), 1);
    assert_string_equal(den.prefix, "fifteen-chars-a");
    assert_int_equal(egress__nflog_parse(buf, f.len, &off, &den), 1);
    assert_string_equal(den.prefix, "sixteen-chars-a");
    free(buf);
}

/* Parses all of buf[0..len) (exactly allocated), checking that off only
 * moves forward and never past len. Returns how many packets were found. */
static unsigned parse_all(const uint8_t *data, size_t len)
{
    uint8_t *buf = exact(data, len);
    size_t off = 0, last = 0;
    unsigned found = 0;
    egress__denial_t den;
    for (;;) {
        int r = egress__nflog_parse(buf, len, &off, &den);
        if (off < last || off > len)
            fail_msg("len %zu: offset went from %zu to %zu", len, last, off);
        if (r == 0)
            break;
        assert_int_equal(r, 1);
        assert_true(off > last);
        assert_non_null(memchr(den.prefix, '\0', sizeof den.prefix));
        last = off;
        found++;
    }
    free(buf);
    return found;
}

static void test_nflog_garbage(void **state)
{
    dgram_t d = {.len = 0};
    uint8_t pkt[64];
    size_t n = ipv4_tcp(pkt, "10.255.255.2", 40000, "203.0.113.9", 443);
    logged(&d, AF_INET, "deny", pkt, n);
    size_t end1 = d.len;
    n = ipv6_udp(pkt, "fd00:6d66::2", 5353, "2001:db8::53", 53);
    logged(&d, AF_INET6, "deny", pkt, n);

    /* Every cut of the datagram: a message is read whole or not at all. */
    for (size_t len = 0; len <= d.len; len++) {
        unsigned want = len == d.len ? 2 : len >= end1 ? 1 : 0;
        assert_int_equal(parse_all(d.b, len), want);
    }

    /* Every cut of the second message's length field: its attributes end
     * early, so what remains is read within the message only. */
    for (uint32_t l = 0; l <= d.len - end1; l++) {
        dgram_t g = d;
        memcpy(g.b + end1, &l, sizeof l);
        (void)parse_all(g.b, d.len);
        (void)parse_all(g.b, end1 + l);
    }

    /* Every attribute length from 0 to 0xffff at each attribute of the
     * first message, and the message's own length. */
    size_t at[4];
    size_t a = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg));
    for (int i = 0; i < 4; i++) {
        at[i] = a;
        uint16_t al;
        memcpy(&al, d.b + a, sizeof al);
        a += NLA_ALIGN(al);
    }
    for (int i = 0; i < 4; i++) {
        for (uint32_t v = 0; v <= 0xffff; v += v < 256 ? 1 : 251) {
            dgram_t g = d;
            uint16_t al = (uint16_t)v;
            memcpy(g.b + at[i], &al, sizeof al);
            (void)parse_all(g.b, d.len);
        }
    }

    /* A payload too short for an IP header, and one of an unknown version:
     * no packet, and the next message is still found. */
    dgram_t s = {.len = 0};
    logged(&s, AF_INET, "deny", pkt, 19);
    pkt[0] = 0x50;
    logged(&s, AF_INET, "deny", pkt, 48);
    pkt[0] = 0x60;
    logged(&s, AF_INET6, "deny", pkt, 39); /* IPv6, short of its header */
    n = ipv4_tcp(pkt, "10.255.255.2", 40000, "203.0.113.9", 443);
    logged(&s, AF_INET, "deny", pkt, n);
    assert_int_equal(parse_all(s.b, s.len), 1);

    /* An IPv4 header length that points past the payload: no ports. */
    dgram_t h = {.len = 0};
    pkt[0] = 0x4f;
    logged(&h, AF_INET, "deny", pkt, 40);
    uint8_t *buf = exact(h.b, h.len);
    size_t off = 0;
    egress__denial_t den;
    assert_int_equal(egress__nflog_parse(buf, h.len, &off, &den), 1);
    assert_int_equal(den.port, 0);
    free(buf);

    /* A message shorter than its own header, one claiming more than the
     * datagram: nothing more is read. */
    dgram_t t = d;
    uint32_t l = 8;
    memcpy(t.b, &l, sizeof l);
    assert_int_equal(parse_all(t.b, t.len), 0);
    l = (uint32_t)t.len + 4;
    memcpy(t.b, &l, sizeof l);
    assert_int_equal(parse_all(t.b, t.len), 0);
}

/* A last message whose length is not a multiple of 4 (netlink pads between
 * messages, not after the last): the offset stops at the datagram's end,
 * as a caller computing what is left (len - off) relies on. */
static void test_nflog_unpadded_end(void **state)
{
    dgram_t d = {.len = 0};
    uint8_t pkt[64];
    size_t n = ipv4_tcp(pkt, "10.255.255.2", 40000, "203.0.113.9", 443);
    logged(&d, AF_INET, "deny", pkt, n);
    /* A last attribute of 1 byte: the message ends 3 bytes before its pad. */
    msg_begin(&d, NFLOG_PACKET, AF_INET);
    attr_put(&d, NFULA_PREFIX, "", 1);
    d.len -= 3;
    msg_end(&d);
    assert_int_not_equal(d.len % 4, 0);

    uint8_t *buf = exact(d.b, d.len);
    size_t off = 0;
    egress__denial_t den;
    assert_int_equal(egress__nflog_parse(buf, d.len, &off, &den), 1);
    assert_int_equal(egress__nflog_parse(buf, d.len, &off, &den), 0);
    assert_int_equal(off, d.len);
    free(buf);
    assert_int_equal(parse_all(d.b, d.len), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dns_parse_queries),  cmocka_unit_test(test_dns_rejects),
        cmocka_unit_test(test_dns_answers),        cmocka_unit_test(test_dns_answer_cap),
        cmocka_unit_test(test_dns_formerr),        cmocka_unit_test(test_sniff_http_request),
        cmocka_unit_test(test_sniff_http_status),  cmocka_unit_test(test_sniff_tls_sni),
        cmocka_unit_test(test_nflog_packets),      cmocka_unit_test(test_nflog_garbage),
        cmocka_unit_test(test_nflog_unpadded_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
