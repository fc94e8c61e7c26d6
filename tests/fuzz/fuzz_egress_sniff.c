/* libFuzzer target: what the egress relay reads of a connection's first
 * bytes. The input goes through the HTTP request-line, status-line and
 * TLS SNI sniffers, with outputs of useful and of tiny sizes; whatever
 * they copy out must be a NUL-terminated run of printable ASCII within
 * its buffer (and nothing is written when nothing is found), and a status
 * 0 or 100–999.
 * Build with `make fuzz`; `make test` replays the checked-in corpus. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egress/internal.h"

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_egress_sniff: %s\n", what);
        abort();
    }
}

#define GUARD 8

/* A buffer of n bytes followed by guard bytes that must stay as they are. */
static char *guarded(size_t n)
{
    char *p = malloc(n + GUARD);
    memset(p, 0x5a, n + GUARD);
    return p;
}

/* out[0..n) holds a printable string, non-empty when found (and n > 1),
 * and nothing after it was written. Not found, nothing was written at all:
 * the gateway tries the next read while the method is still empty. */
static void check_text(const char *out, size_t n, int found, const char *what)
{
    for (size_t i = 0; i < n + GUARD; i++)
        if (!found || i >= n)
            check(out[i] == 0x5a, what);
    if (!found || n == 0)
        return;
    const char *end = memchr(out, '\0', n);
    check(end != NULL, what);
    check(n == 1 || end > out, what);
    for (const char *c = out; c < end; c++)
        check(*c > 0x20 && *c < 0x7f, what);
}

static void sniff(const uint8_t *data, size_t size, size_t mlen, size_t plen, size_t slen)
{
    char *m = guarded(mlen), *p = guarded(plen), *s = guarded(slen);
    int r = egress__sniff_http_request(data, size, m, mlen, p, plen);
    check(r == 0 || r == 1, "request: unexpected return");
    check_text(m, mlen, r, "request: method not a printable string in its buffer");
    check_text(p, plen, r, "request: path not a printable string in its buffer");

    int st = egress__sniff_http_status(data, size);
    check(st == 0 || (st >= 100 && st <= 999), "status out of range");

    r = egress__sniff_tls_sni(data, size, s, slen);
    check(r == 0 || r == 1, "sni: unexpected return");
    check_text(s, slen, r, "sni: name not a printable string in its buffer");
    free(m);
    free(p);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The sizes the gateway uses, then tiny ones. */
    sniff(data, size, 16, 256, EGRESS_NAME_MAX + 1);
    sniff(data, size, 1, 2, 3);
    sniff(data, size, 0, 0, 0);
    return 0;
}
