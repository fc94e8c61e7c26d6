/* Open connections counted by client address, for the server's cap on
 * connections per client (http/server.c). Internal to http/.
 *
 * A hash table with open addressing: the server asks it once per accepted
 * and once per closed connection, so the cost must not grow with the number
 * of connections. The hash is keyed with a random seed taken at start, so a
 * client choosing its source addresses (an IPv6 /64 holds plenty) cannot
 * aim them all at one bucket. */
#ifndef MAYFLY_HTTP_PEERS_H
#define MAYFLY_HTTP_PEERS_H

#include <stddef.h>
#include <stdint.h>

struct sockaddr;

/* A client address without its port: IPv4 (IPv4-mapped IPv6 included) in
 * 4 bytes, IPv6 in 16. len 0 means unknown. */
typedef struct http__peer_addr {
    uint8_t bytes[16];
    uint8_t len;
} http__peer_addr_t;

typedef struct http__peer_slot {
    http__peer_addr_t addr;
    unsigned count;          /* 0: an empty slot */
} http__peer_slot_t;

typedef struct http__peers {
    http__peer_slot_t *slots;
    size_t cap;              /* a power of two, or 0 before the first add */
    size_t used;
    uint64_t seed;
} http__peers_t;

void http__peers_init(http__peers_t *p);
void http__peers_release(http__peers_t *p);
/* Fills a from a socket address; returns -EAFNOSUPPORT for anything but
 * IPv4 or IPv6. */
int http__peer_addr_from(http__peer_addr_t *a, const struct sockaddr *sa);
/* Writes a as text ("127.0.0.1", "::1") into out. */
void http__peer_addr_format(const http__peer_addr_t *a, char *out, size_t outlen);
/* Counts one more connection from a; returns how many are open now. */
unsigned http__peers_add(http__peers_t *p, const http__peer_addr_t *a);
/* Counts one connection from a fewer (one http__peers_add made earlier). */
void http__peers_remove(http__peers_t *p, const http__peer_addr_t *a);

#endif
