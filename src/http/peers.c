#include "http/peers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/id.h"
#include "core/xalloc.h"

#define MIN_SLOTS 16

void http__peers_init(http__peers_t *p)
{
    memset(p, 0, sizeof *p);
    id_random_bytes(&p->seed, sizeof p->seed);
}

void http__peers_release(http__peers_t *p)
{
    free(p->slots);
    p->slots = NULL;
    p->cap = p->used = 0;
}

int http__peer_addr_from(http__peer_addr_t *a, const struct sockaddr *sa)
{
    memset(a, 0, sizeof *a);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        memcpy(a->bytes, &in->sin_addr, 4);
        a->len = 4;
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        /* A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d: the
         * same client either way. */
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            memcpy(a->bytes, in6->sin6_addr.s6_addr + 12, 4);
            a->len = 4;
        } else {
            memcpy(a->bytes, &in6->sin6_addr, 16);
            a->len = 16;
        }
        return 0;
    }
    return -EAFNOSUPPORT;
}

void http__peer_addr_format(const http__peer_addr_t *a, char *out, size_t outlen)
{
    if (!a->len || !inet_ntop(a->len == 4 ? AF_INET : AF_INET6, a->bytes, out, (socklen_t)outlen))
        snprintf(out, outlen, "?");
}

static uint64_t mix(uint64_t h)
{
    /* The finaliser of MurmurHash3: every input bit moves every output bit. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static size_t slot_of(const http__peers_t *p, const http__peer_addr_t *a)
{
    uint64_t w[2] = { 0, 0 };
    memcpy(w, a->bytes, sizeof a->bytes);
    uint64_t h = mix(p->seed ^ w[0] ^ a->len);
    h = mix(h ^ w[1]);
    return (size_t)h & (p->cap - 1);
}

static bool same(const http__peer_addr_t *a, const http__peer_addr_t *b)
{
    return a->len == b->len && !memcmp(a->bytes, b->bytes, a->len);
}

/* Linear probing: the slot holding a, or the empty slot where it belongs. */
static size_t find(const http__peers_t *p, const http__peer_addr_t *a)
{
    size_t i = slot_of(p, a);
    while (p->slots[i].count && !same(&p->slots[i].addr, a))
        i = (i + 1) & (p->cap - 1);
    return i;
}

static void grow(http__peers_t *p)
{
    http__peer_slot_t *old = p->slots;
    size_t oldcap = p->cap;
    p->cap = oldcap ? oldcap * 2 : MIN_SLOTS;
    p->slots = xcalloc(p->cap, sizeof *p->slots);
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i].count)
            p->slots[find(p, &old[i].addr)] = old[i];
    }
    free(old);
}

unsigned http__peers_add(http__peers_t *p, const http__peer_addr_t *a)
{
    /* At most half full, so probes stay short. */
    if ((p->used + 1) * 2 > p->cap)
        grow(p);
    size_t i = find(p, a);
    if (!p->slots[i].count) {
        p->slots[i].addr = *a;
        p->used++;
    }
    return ++p->slots[i].count;
}

void http__peers_remove(http__peers_t *p, const http__peer_addr_t *a)
{
    if (!p->cap)
        return;
    size_t i = find(p, a);
    if (!p->slots[i].count || --p->slots[i].count)
        return;
    p->used--;
    /* Backward-shift deletion: later members of the probe run move up into
     * the hole, so lookups never need tombstones. */
    size_t mask = p->cap - 1;
    for (size_t j = (i + 1) & mask; p->slots[j].count; j = (j + 1) & mask) {
        size_t home = slot_of(p, &p->slots[j].addr);
        /* j's entry may move to i only if its home is not in (i, j]. */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays)
            continue;
        p->slots[i] = p->slots[j];
        p->slots[j].count = 0;
        i = j;
    }
    p->slots[i].count = 0;
}
