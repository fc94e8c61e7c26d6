/* libFuzzer target: NFLOG datagrams as the gateway reads them from the
 * kernel, parsed message after message until none is left. The offset must
 * only move forward, never past the datagram, and each packet found must
 * carry a NUL-terminated prefix and an IPv4 or IPv6 family.
 * Build with `make fuzz`; `make test` replays the checked-in corpus. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "egress/internal.h"

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_egress_nflog: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Netlink messages are read in place: the datagram is 4-aligned, as a
     * receive buffer is. malloc's alignment covers it. */
    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    size_t off = 0;
    egress__denial_t d;
    for (unsigned n = 0;; n++) {
        size_t last = off;
        int r = egress__nflog_parse(buf, size, &off, &d);
        check(r == 0 || r == 1, "unexpected return");
        check(off >= last, "offset went back");
        check(off <= size, "offset past the datagram");
        if (r == 0)
            break;
        check(off > last, "a packet found without moving on");
        check(memchr(d.prefix, '\0', sizeof d.prefix) != NULL, "prefix not terminated");
        check(d.family == AF_INET || d.family == AF_INET6, "family neither IPv4 nor IPv6");
        check(n < size / 16, "more packets than messages fit");
    }
    free(buf);
    return 0;
}
