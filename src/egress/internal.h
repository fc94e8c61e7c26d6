/* What the egress room's files share. Not for other modules. */
#ifndef MAYFLY_EGRESS_INTERNAL_H
#define MAYFLY_EGRESS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "egress/policy.h"

/* Inside a sandbox's namespace: the relay's listeners and the resolver.
 * Both ports are privileged, so a function (never root in its namespace)
 * cannot take them first. */
#define EGRESS__RELAY_PORT 1001
#define EGRESS__DNS_PORT 53
/* The packet mark the decision chain gives allowed connections, which the
 * nat chain redirects to the relay. */
#define EGRESS__MARK 0x6d66
#define EGRESS__NFLOG_GROUP 1

/* One address and port the relay must never reach (the server's own
 * listeners). */
typedef struct egress__own {
    int family;
    uint8_t addr[16];
    uint16_t port;
} egress__own_t;

/* ---- nft.c: the ruleset inside a sandbox's namespace ------------------- */

struct mnl_socket;

/* Opens a netfilter netlink socket in the current thread's namespace. */
struct mnl_socket *egress__nft_open(void);
/* Installs the table "mayfly" for policy: decisions at the output hook
 * (allowed TCP is marked and redirected to the relay, anything else logged
 * to NFLOG group EGRESS__NFLOG_GROUP with prefix "deny" and rejected, a
 * connection past max_conns logged "limit" and rejected, the sandbox's
 * loopback refusing a connection logged "closed"). Returns 0 or -errno. */
int egress__nft_install(struct mnl_socket *nl, const egress_policy_t *policy,
                        const egress__own_t *own, size_t n_own, unsigned max_conns, bool ipv6);
/* Opens addr to the ports of the name rules that matched its name: ports
 * lists the rules' explicit ports, any_port says a portless rule matched. */
int egress__nft_allow(struct mnl_socket *nl, int family, const uint8_t *addr,
                      const uint16_t *ports, size_t n_ports, bool any_port);
/* Sends one netlink request that asks for an acknowledgement on fd and
 * waits for it: 0 or the kernel's -errno. */
int egress__netlink_request(int fd, const void *msg, size_t len);
/* Opens a NFLOG socket bound to EGRESS__NFLOG_GROUP (non-blocking). */
int egress__nflog_open(void);
/* Parses one datagram read from it: the first logged packet's prefix,
 * destination and protocol. Returns 1 when one was found, 0 if none. */
typedef struct egress__denial {
    char prefix[16];
    int family;
    uint8_t addr[16];
    uint16_t port;
    uint8_t saddr[16];         /* the source: for "closed", the refused destination */
    uint16_t sport;
    int proto;                 /* IPPROTO_TCP, IPPROTO_UDP, … */
} egress__denial_t;
int egress__nflog_parse(const uint8_t *buf, size_t len, size_t *off, egress__denial_t *out);

/* ---- dns.c: the wire format of the sandbox's resolver ------------------ */

#define EGRESS__DNS_MAX 512

typedef struct egress__dns_query {
    uint16_t id;
    uint16_t flags;            /* as asked (RD is echoed) */
    char name[EGRESS_NAME_MAX + 1]; /* lower case, no trailing dot */
    uint16_t qtype, qclass;
    size_t question_len;       /* bytes of the question section */
} egress__dns_query_t;

/* Parses a query of one question: -EINVAL when it is not a DNS message at
 * all (too short or too long), -EPROTO for a message that is not a query
 * of one question (the caller may answer FORMERR, unless it is itself an
 * answer: QR set). */
int egress__dns_parse_query(const uint8_t *msg, size_t len, egress__dns_query_t *q);
/* Builds the answer to q from msg's question: rcode (0, 2 SERVFAIL, 3
 * NXDOMAIN, 4 NOTIMP, 1 FORMERR), and the addresses of q->qtype's family
 * with ttl. Returns its length, at most cap. */
size_t egress__dns_answer(const uint8_t *msg, const egress__dns_query_t *q, int rcode,
                          const egress_addr_t *addrs, size_t n, uint32_t ttl, uint8_t *out,
                          size_t cap);

/* ---- sniff.c: what the relay can tell of a connection's first bytes ---- */

/* A plain-HTTP request's method and path from the start of a stream:
 * 1 found, 0 not HTTP (or not enough bytes). */
int egress__sniff_http_request(const uint8_t *buf, size_t len, char *method, size_t mlen,
                               char *path, size_t plen);
/* An HTTP/1.x status line: the status, or 0. */
int egress__sniff_http_status(const uint8_t *buf, size_t len);
/* The server name of a TLS ClientHello: 1 found, 0 not. */
int egress__sniff_tls_sni(const uint8_t *buf, size_t len, char *out, size_t outlen);

/* ---- splice.c: splicing a relayed connection in the kernel -------------- */

#define EGRESS__SPLICE_PAIRS 4096          /* connections spliced at once, server-wide */
#define EGRESS__SPLICE_HEAD 128            /* bytes of a segment's head captured */
/* Bytes the program may have handed a socket beyond what its TCP took:
 * the kernel's queue between them, which no socket buffer bounds. */
#define EGRESS__SPLICE_BACKLOG_MAX (4u << 20)

/* One socket of a pair, shared with the program (mmap'd): for the bytes
 * arriving on it, on their way to the other socket. */
typedef struct egress__splice_state {
    uint64_t want;             /* relay: redirect when caught up (program clears at the limit) */
    uint64_t redirecting;      /* program: the last segment was redirected */
    uint64_t passed;           /* program: bytes given to the relay */
    uint64_t consumed;         /* relay: of those, bytes written on to the other socket */
    uint64_t redirected;       /* program: bytes handed to the other socket */
    uint64_t taken;            /* relay: of those, bytes the other socket's TCP took */
    uint64_t capture;          /* relay: copy the next redirected segment's head */
    uint64_t head_len;         /* program */
    uint8_t head[EGRESS__SPLICE_HEAD];
} egress__splice_state_t;

typedef struct egress__splice egress__splice_t;

/* The maps and the program: NULL when the kernel refuses (why says). */
egress__splice_t *egress__splice_new(char *why, size_t whylen);
void egress__splice_free(egress__splice_t *s);
/* Puts a connected pair in the map, both states zeroed (want 0: every
 * byte goes to the relay, counted as passed). Returns the pair, or -errno
 * (-EAGAIN when every pair is taken). */
int egress__splice_add(egress__splice_t *s, int fd_client, int fd_upstream);
/* side 0: the client's socket, 1: the upstream's. */
egress__splice_state_t *egress__splice_state(egress__splice_t *s, int pair, int side);
void egress__splice_remove(egress__splice_t *s, int pair);
/* The program's events (a BPF ring): readable when it passed bytes of a
 * socket to the relay while asked to redirect them (not caught up, or at
 * the queue limit), which a relay that is not reading must hear of. */
int egress__splice_events_fd(const egress__splice_t *s);
/* The next event's slot (2 * pair + side): 1, or 0 when there is none. */
int egress__splice_next_event(egress__splice_t *s, uint32_t *slot);
/* Every byte fd's TCP has taken so far (acknowledged or queued), plus a
 * constant; closed when the connection is gone. 0 or -errno. */
int egress__splice_taken(int fd, uint64_t *out, bool *closed);

#endif
