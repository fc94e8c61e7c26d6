/* The gateway's loop side: per sandbox, the relay, the resolver and the
 * denials read from NFLOG, and the record entries they make. */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <linux/rtnetlink.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <sys/epoll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/tenant.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/log.h"
#include "core/map.h"
#include "core/xalloc.h"
#include "egress/egress.h"
#include "egress/internal.h"
#include "obs/metrics.h"

#define DNS_CACHE_MAX 4096
#define DNS_TTL_FALLBACK_S 60
#define DNS_TTL_NEGATIVE_S 30
#define DNS_LOOKUPS_MAX 16          /* a sandbox's questions to the host's resolver at once */
#define NAMES_MAX 1024              /* addresses a box remembers the names of */
#define DENIAL_LINES_MAX 100        /* denial log lines per call (the rest are counted) */
/* Bytes queued in the server towards one side before the other is no
 * longer read (plus the one read that passed it, 64 KiB at most): the
 * kernel's socket buffers hold the rest, and 256 connections of one
 * instance hold at most 96 MiB here. */
#define RELAY_HIGH_WATER (128u << 10)
/* How often the relay looks at its spliced connections: the queue limit's
 * view of what each socket's TCP took, and directions handed back. */
#define SPLICE_TICK_MS 2

/* ---- the gateway ---------------------------------------------------------- */

typedef struct dns_entry {
    egress_addr_t addrs[EGRESS_HOSTS_MAX_ADDRS];
    size_t n;
    bool nxdomain;
    uint64_t expires_ns;
} dns_entry_t;

struct egress {
    uv_loop_t *loop;
    egress_config_t cfg;
    egress__own_t *own;
    size_t n_own;
    bool ipv6;
    map_t cache;                     /* name → dns_entry_t */
    egress__splice_t *splice;        /* NULL: every byte through the relay */
    uv_poll_t *splice_events;
    struct conn **by_pair;           /* the connection of each spliced pair */
    metrics_family_t *m_conns, *m_bytes, *m_dns, *m_spliced, *m_splice;
};

static bool host_has_ipv6(void)
{
    int s = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return false;
    close(s);
    return true;
}

static void on_splice_events(uv_poll_t *h, int status, int events);

static void free_handle(uv_handle_t *h)
{
    free(h);
}

egress_t *egress_new(uv_loop_t *loop, const egress_config_t *cfg)
{
    egress_t *g = xcalloc(1, sizeof *g);
    g->loop = loop;
    g->cfg = *cfg;
    if (g->cfg.max_connections == 0)
        g->cfg.max_connections = 256;
    g->ipv6 = host_has_ipv6();
    g->cache = (map_t)MAP_INIT;
    if (cfg->no_splice) {
        log_info("egress", "connections are relayed in user space (--egress-splice off)");
    } else {
        char why[160];
        g->splice = egress__splice_new(why, sizeof why);
        if (g->splice) {
            log_info("egress", "connections are spliced in the kernel after their first "
                               "exchange (BPF sockmap)");
            g->by_pair = xcalloc(EGRESS__SPLICE_PAIRS, sizeof *g->by_pair);
            g->splice_events = xmalloc(sizeof *g->splice_events);
            uv_poll_init(loop, g->splice_events, egress__splice_events_fd(g->splice));
            g->splice_events->data = g;
            uv_poll_start(g->splice_events, UV_READABLE, on_splice_events);
            uv_unref((uv_handle_t *)g->splice_events);
        }
        else
            log_warn("egress", "connections are relayed in user space: the kernel refused "
                               "the sockmap (%s)", why);
    }
    g->m_conns = metrics_family_new(METRICS_COUNTER, "mayfly_egress_connections_total",
                                    "Outbound connections functions made, by whether the "
                                    "policy allowed them.",
                                    (const char *[]){"function", "allowed", NULL}, NULL, 0);
    g->m_bytes = metrics_family_new(METRICS_COUNTER, "mayfly_egress_bytes_total",
                                    "Bytes relayed for functions' outbound connections.",
                                    (const char *[]){"function", "direction", NULL}, NULL, 0);
    g->m_dns = metrics_family_new(METRICS_COUNTER, "mayfly_egress_dns_queries_total",
                                  "Names functions asked the gateway's resolver, by answer.",
                                  (const char *[]){"function", "answer", NULL}, NULL, 0);
    g->m_spliced = metrics_family_new(METRICS_COUNTER, "mayfly_egress_spliced_bytes_total",
                                      "Of mayfly_egress_bytes_total, the bytes the kernel "
                                      "handed between the relay's sockets without the server.",
                                      (const char *[]){"function", "direction", NULL}, NULL, 0);
    g->m_splice = metrics_family_new(METRICS_COUNTER, "mayfly_egress_splice_events_total",
                                     "Directions of spliced connections the kernel gave back "
                                     "to the relay: at their end (ended) or at the queue "
                                     "limit (limit).",
                                     (const char *[]){"event", NULL}, NULL, 0);
    return g;
}

static void own_add(egress_t *g, int family, const void *addr, uint16_t port)
{
    g->own = xrealloc(g->own, (g->n_own + 1) * sizeof *g->own);
    egress__own_t *o = &g->own[g->n_own++];
    memset(o, 0, sizeof *o);
    o->family = family;
    memcpy(o->addr, addr, family == AF_INET ? 4 : 16);
    o->port = port;
}

void egress_add_own_address(egress_t *g, const struct sockaddr *sa)
{
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    uint16_t port;
    if (sa->sa_family == AF_INET) {
        port = ntohs(in->sin_port);
        if (in->sin_addr.s_addr != htonl(INADDR_ANY)) {
            own_add(g, AF_INET, &in->sin_addr, port);
            return;
        }
    } else if (sa->sa_family == AF_INET6) {
        port = ntohs(in6->sin6_port);
        if (!IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr)) {
            own_add(g, AF_INET6, &in6->sin6_addr, port);
            return;
        }
    } else {
        return;
    }
    /* A wildcard: every address the host has now. */
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) < 0)
        return;
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr)
            continue;
        if (i->ifa_addr->sa_family == AF_INET)
            own_add(g, AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, port);
        else if (i->ifa_addr->sa_family == AF_INET6 && sa->sa_family == AF_INET6)
            own_add(g, AF_INET6, &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, port);
    }
    freeifaddrs(ifs);
}

void egress_free(egress_t *g)
{
    if (!g)
        return;
    const char *k;
    void *v;
    size_t it = 0;
    while (map_next(&g->cache, &it, &k, &v))
        free(v);
    map_release(&g->cache);
    if (g->splice_events)
        uv_close((uv_handle_t *)g->splice_events, free_handle);
    free(g->by_pair);
    egress__splice_free(g->splice);
    free(g->own);
    free(g);
}

/* ---- a box ---------------------------------------------------------------- */

typedef struct entry {
    char host[EGRESS_NAME_MAX + 1];
    char ip[INET6_ADDRSTRLEN];
    uint16_t port;
    int64_t start_ms;
    uint64_t start_ns;
    double duration_ms;
    uint64_t bytes_out, bytes_in;
    bool allowed;
    bool reused;
    bool open;                 /* still open when its call ended */
    char error[96];
    char method[16];
    char path[256];
    int status;
    char sni[EGRESS_NAME_MAX + 1];
} entry_t;

typedef struct conn conn_t;

typedef struct name_entry {
    int family;
    uint8_t addr[16];
    char name[EGRESS_NAME_MAX + 1];
} name_entry_t;

struct egress_box {
    egress_t *g;
    char function[TENANT_QNAME_MAX + 1];
    egress_policy_t policy;
    egress_log_cb log;
    void *log_ud;
    struct mnl_socket *nft;
    uv_tcp_t relay[2];         /* v4, v6 */
    bool relay_open[2];
    uv_udp_t dns;
    uv_poll_t nflog;
    int nflog_fd;
    int handles;               /* open handles, conns and lookups: freed at 0 */
    unsigned lookups;          /* of which lookups on a worker thread */
    bool closing;
    conn_t *conns;
    unsigned n_open;
    name_entry_t *names;       /* a ring of the addresses answered */
    size_t n_names, names_next, names_cap; /* grows to NAMES_MAX, then a ring */
    /* The current call. */
    bool in_call;
    entry_t **entries;
    size_t n_entries;
    unsigned dropped;
    /* Bytes of connections with no entry in the current call (past the
     * entries kept, or moved while no call used them), since the last
     * call's end: with the entries', every byte in one call's count. */
    uint64_t unlisted_bytes;
    unsigned denial_lines;
    map_t denied_names;        /* logged this call */
    int64_t call_start_ms;
    uint64_t call_start_ns;
    uv_timer_t splice_timer;   /* runs while a connection is spliced or draining */
    bool splice_ticking;
};

struct conn {
    egress_box_t *box;
    conn_t *prev, *next;
    uv_tcp_t client, upstream;
    uv_connect_t connect;
    int handles;
    bool up_init;              /* upstream is an initialised handle */
    bool up_connected;
    bool client_eof, up_eof;
    bool shut_client, shut_up;
    bool closing;
    char host[EGRESS_NAME_MAX + 1];
    char ip[INET6_ADDRSTRLEN];
    uint16_t port;
    uint64_t total_out, total_in;     /* to the world, from it */
    uint64_t metered_out, metered_in; /* already counted in the metrics */
    entry_t *entry;            /* in the running call's record, or NULL */
    uint64_t base_out, base_in;/* totals when entry began */
    bool used_before;          /* a previous call had it */
    bool want_status;          /* a request was seen: the next answer's status */
    bool first_up, first_client;
    char sni[EGRESS_NAME_MAX + 1];
    size_t queued[2];          /* bytes queued towards client (0) and upstream (1) */
    /* Splicing (splice.c); a direction is named by the side it comes from. */
    int pair;                  /* in the kernel's map, or -1 */
    enum { DIR_RELAY, DIR_ARMED, DIR_SPLICED, DIR_DRAINING } mode[2];
    bool no_splice;            /* an end was seen: the relay keeps both directions */
    bool calibrated;
    uint64_t wrote[2];         /* bytes the relay handed side i's socket */
    uint64_t offset[2];        /* side i's taken count less wrote, measured once */
    uint64_t redir_acct[2];    /* redirected when the kernel's queue was last seen empty */
    ssize_t held_nread[2];     /* read while the kernel's queue was not: 0 none, or */
    char *held[2];             /* its bytes, replayed once it is */
    int dupfd[2];              /* watched for the end while spliced */
    uv_poll_t watch[2];
    bool watch_init[2];
    uint64_t mark_out, mark_in;/* totals at the last settle */
    uint64_t metered_spliced[2];
};

static void box_unref(egress_box_t *b);

static void box_line(egress_box_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void box_line(egress_box_t *b, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (b->log && !b->closing)
        b->log(b->log_ud, line);
}

static void addr_text(int family, const void *addr, char *out, size_t outlen)
{
    if (!inet_ntop(family, addr, out, (socklen_t)outlen))
        snprintf(out, outlen, "?");
}

static const char *name_of(const egress_box_t *b, int family, const uint8_t *addr)
{
    size_t alen = family == AF_INET ? 4 : 16;
    /* Newest first: the name a function resolved last for an address. */
    for (size_t k = 0; k < b->n_names; k++) {
        size_t i = (b->names_next + b->n_names - 1 - k) % b->n_names;
        if (b->names[i].family == family && memcmp(b->names[i].addr, addr, alen) == 0)
            return b->names[i].name;
    }
    return NULL;
}

static void names_add(egress_box_t *b, const egress_addr_t *a, const char *name)
{
    const char *known = name_of(b, a->family, a->addr);
    if (known && strcmp(known, name) == 0)
        return; /* asked again: nothing new */
    if (b->n_names == b->names_cap && b->names_cap < NAMES_MAX) {
        /* Most functions resolve a handful of names: grow on demand. */
        b->names_cap = b->names_cap ? b->names_cap * 2 : 8;
        b->names = xrealloc(b->names, b->names_cap * sizeof *b->names);
    }
    if (b->n_names < b->names_cap)
        b->names_next = b->n_names;
    name_entry_t *n = &b->names[b->names_next];
    n->family = a->family;
    memcpy(n->addr, a->addr, 16);
    snprintf(n->name, sizeof n->name, "%s", name);
    if (b->n_names < b->names_cap)
        b->n_names++;
    b->names_next = (b->names_next + 1) % b->n_names;
}

static entry_t *entry_new(egress_box_t *b)
{
    if (!b->in_call)
        return NULL;
    if (b->n_entries >= EGRESS_RECORD_MAX) {
        b->dropped++;
        return NULL;
    }
    entry_t *e = xcalloc(1, sizeof *e);
    e->start_ms = clock_wall_ms();
    e->start_ns = clock_mono_ns();
    b->entries = xrealloc(b->entries, (b->n_entries + 1) * sizeof *b->entries);
    b->entries[b->n_entries++] = e;
    return e;
}

/* A denial: its log line (bounded per call) and its entry. */
static void denied(egress_box_t *b, const char *host, const char *ip, uint16_t port,
                   const char *proto, const char *error)
{
    const char *labels[] = {b->function, "false"};
    metrics_inc(b->g->m_conns, labels, 1);
    if (b->denial_lines < DENIAL_LINES_MAX) {
        if (port)
            box_line(b, "mayfly: egress to %s:%u%s denied by the function's policy", host, port,
                     proto);
        else
            box_line(b, "mayfly: egress to %s denied by the function's policy", host);
    } else if (b->denial_lines == DENIAL_LINES_MAX) {
        box_line(b, "mayfly: more egress denials in this call are not logged");
    }
    b->denial_lines++;
    entry_t *e = entry_new(b);
    if (!e)
        return;
    snprintf(e->host, sizeof e->host, "%.*s", (int)sizeof e->host - 1, host);
    snprintf(e->ip, sizeof e->ip, "%s", ip ? ip : "");
    e->port = port;
    e->allowed = false;
    snprintf(e->error, sizeof e->error, "%s", error);
}

/* ---- the relay ------------------------------------------------------------ */

static egress__splice_state_t *sst(const conn_t *c, int side)
{
    return egress__splice_state(c->box->g->splice, c->pair, side);
}

#define LOAD(x) atomic_load_explicit((_Atomic uint64_t *)&(x), memory_order_acquire)
#define STORE(x, v) atomic_store_explicit((_Atomic uint64_t *)&(x), (v), memory_order_release)

/* Bytes to the world and from it: what the relay copied and what the
 * kernel handed over. */
static void totals(const conn_t *c, uint64_t *out, uint64_t *in)
{
    *out = c->total_out;
    *in = c->total_in;
    if (c->pair >= 0) {
        *out += LOAD(sst(c, 0)->redirected);
        *in += LOAD(sst(c, 1)->redirected);
    }
}

static void meter(conn_t *c)
{
    egress_box_t *b = c->box;
    uint64_t out, in;
    totals(c, &out, &in);
    if (out > c->metered_out)
        metrics_inc(b->g->m_bytes, (const char *[]){b->function, "out"},
                    (double)(out - c->metered_out));
    if (in > c->metered_in)
        metrics_inc(b->g->m_bytes, (const char *[]){b->function, "in"},
                    (double)(in - c->metered_in));
    c->metered_out = out;
    c->metered_in = in;
    for (int i = 0; c->pair >= 0 && i < 2; i++) {
        uint64_t red = LOAD(sst(c, i)->redirected);
        if (red > c->metered_spliced[i])
            metrics_inc(b->g->m_spliced, (const char *[]){b->function, i ? "in" : "out"},
                        (double)(red - c->metered_spliced[i]));
        c->metered_spliced[i] = red;
    }
}

static void entry_settle(conn_t *c, bool still_open)
{
    entry_t *e = c->entry;
    if (!e)
        return;
    uint64_t out, in;
    totals(c, &out, &in);
    e->bytes_out = out - c->base_out;
    e->bytes_in = in - c->base_in;
    c->mark_out = out;
    c->mark_in = in;
    e->duration_ms = (double)(clock_mono_ns() - e->start_ns) / 1e6;
    e->open = still_open;
    c->entry = NULL;
}

/* The connection does something during a call with no entry for it yet
 * (one kept open from an earlier call): it gets one, marked reused. */
static void conn_touch(conn_t *c)
{
    if (c->entry || !c->box->in_call)
        return;
    entry_t *e = entry_new(c->box);
    if (!e)
        return;
    snprintf(e->host, sizeof e->host, "%s", c->host);
    snprintf(e->ip, sizeof e->ip, "%s", c->ip);
    e->port = c->port;
    e->allowed = true;
    e->reused = c->used_before;
    snprintf(e->sni, sizeof e->sni, "%s", c->sni);
    c->entry = e;
    /* From where the last call's entry ended: bytes moved between calls
     * belong to the call that uses the connection next. */
    c->base_out = c->mark_out;
    c->base_in = c->mark_in;
}

static void conn_handle_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    if (--c->handles > 0)
        return;
    egress_box_t *b = c->box;
    for (int i = 0; i < 2; i++) {
        if (c->dupfd[i] >= 0)
            close(c->dupfd[i]);
        free(c->held[i]);
    }
    free(c);
    box_unref(b);
}

/* What a connection without an entry moved since it was last counted,
 * into the box's unlisted bytes. */
static void count_unlisted(conn_t *c)
{
    if (c->entry)
        return;
    uint64_t out, in;
    totals(c, &out, &in);
    c->box->unlisted_bytes += (out - c->mark_out) + (in - c->mark_in);
    c->mark_out = out;
    c->mark_in = in;
}

static void conn_close(conn_t *c, bool reset)
{
    if (c->closing)
        return;
    c->closing = true;
    egress_box_t *b = c->box;
    count_unlisted(c);
    entry_settle(c, false);
    meter(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        b->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    b->n_open--;
    for (int i = 0; i < 2; i++)
        if (c->watch_init[i])
            uv_close((uv_handle_t *)&c->watch[i], conn_handle_closed);
    if (c->pair >= 0) {
        /* Out of the map before the sockets close: a reset loses what the
         * kernel still held for them, as it would in the relay's queues. */
        b->g->by_pair[c->pair] = NULL;
        egress__splice_remove(b->g->splice, c->pair);
        c->pair = -1;
    }
    if (reset && !uv_is_closing((uv_handle_t *)&c->client))
        uv_tcp_close_reset(&c->client, conn_handle_closed);
    else if (!uv_is_closing((uv_handle_t *)&c->client))
        uv_close((uv_handle_t *)&c->client, conn_handle_closed);
    if (c->up_init && !uv_is_closing((uv_handle_t *)&c->upstream)) {
        if (reset && c->up_connected)
            uv_tcp_close_reset(&c->upstream, conn_handle_closed);
        else
            uv_close((uv_handle_t *)&c->upstream, conn_handle_closed);
    }
}

typedef struct wreq {
    uv_write_t w;
    conn_t *c;
    int to;                    /* 0 client, 1 upstream */
    size_t len;
    char data[];
} wreq_t;

static void on_relay_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_relay_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b);

static uv_stream_t *side(conn_t *c, int i)
{
    return i == 0 ? (uv_stream_t *)&c->client : (uv_stream_t *)&c->upstream;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    conn_t *c = req->data;
    free(req);
    if (c->client_eof && c->up_eof && c->queued[0] == 0 && c->queued[1] == 0)
        conn_close(c, false);
}

static void maybe_shutdown(conn_t *c, int to)
{
    /* The other side ended and everything for `to` is written: pass the
     * end on (a half-close, as the two ends of a TCP connection may). */
    bool *done = to == 0 ? &c->shut_client : &c->shut_up;
    bool src_eof = to == 0 ? c->up_eof : c->client_eof;
    if (*done || !src_eof || c->queued[to] > 0 || c->closing)
        return;
    *done = true;
    uv_shutdown_t *req = xmalloc(sizeof *req);
    req->data = c;
    if (uv_shutdown(req, side(c, to), on_shutdown) < 0) {
        free(req);
        conn_close(c, false);
    }
}

/* ---- splicing (splice.c) --------------------------------------------------
 * A direction (named by the side it comes from) is
 *   relayed:  every byte through the relay;
 *   armed:    the program hands bytes over once the relay has written on
 *             all it gave it; the relay still reads the source, which
 *             gives it only what the program passes (at its queue limit)
 *             and the end;
 *   spliced:  as armed, on a kernel that wakes readers for bytes it
 *             redirected: the relay stops reading, watches for the end;
 *   draining: handed back; the relay waits until the kernel's queue to the
 *             other side is empty before it writes anything on, so that
 *             bytes stay in order. */

static void wrote(conn_t *c, int to, size_t n)
{
    c->wrote[to] += n;
    if (c->pair >= 0)
        STORE(sst(c, 1 - to)->consumed, c->wrote[to]);
}

static int sock_fd(conn_t *c, int i)
{
    uv_os_fd_t fd = -1;
    uv_fileno((uv_handle_t *)side(c, i), &fd);
    return fd;
}

static void splice_tick(uv_timer_t *t);

static void ticking(egress_box_t *b)
{
    if (!b->splice_ticking) {
        b->splice_ticking = true;
        uv_timer_start(&b->splice_timer, splice_tick, SPLICE_TICK_MS, SPLICE_TICK_MS);
    }
}

static void go_spliced(conn_t *c, int from);

/* The first exchange is read (the record has its HTTP line or TLS name):
 * ask the program to take the directions the relay still has. */
static void maybe_splice(conn_t *c)
{
    if (c->pair < 0 || c->no_splice || c->closing || c->client_eof || c->up_eof ||
        !c->up_connected || !c->first_client || !c->first_up || c->want_status)
        return;
    if (!c->calibrated) {
        /* Once, with nothing of the relay's in flight: what each socket's
         * TCP counts beyond the bytes written to it. */
        if (c->queued[0] || c->queued[1])
            return;
        for (int i = 0; i < 2; i++) {
            uint64_t taken;
            bool closed;
            if (egress__splice_taken(sock_fd(c, i), &taken, &closed) < 0 || closed ||
                taken < c->wrote[i]) {
                c->no_splice = true;
                return;
            }
            c->offset[i] = taken - c->wrote[i];
        }
        c->calibrated = true;
    }
    for (int from = 0; from < 2; from++) {
        if (c->mode[from] == DIR_RELAY) {
            c->mode[from] = DIR_ARMED;
            STORE(sst(c, from)->want, 1);
        }
    }
    /* Caught up (everything the program gave the relay is written on):
     * the relay stops reading. A segment the program passes from here on
     * it reports as an event; one it passed before is counted in passed,
     * which is read after want was set (a full fence between: the
     * program reads want before it counts passed). */
    atomic_thread_fence(memory_order_seq_cst);
    for (int from = 0; from < 2; from++)
        if (c->mode[from] == DIR_ARMED && LOAD(sst(c, from)->passed) == c->wrote[1 - from])
            go_spliced(c, from);
}

static void on_watch(uv_poll_t *h, int status, int events);

/* Woken with nothing to read while the program redirects (a kernel that
 * wakes readers for redirected bytes): caught up, so the relay can stop
 * reading. */
static void check_spliced(conn_t *c, int from)
{
    if (c->pair < 0 || c->mode[from] != DIR_ARMED || c->closing)
        return;
    egress__splice_state_t *st = sst(c, from);
    if (LOAD(st->want) && LOAD(st->redirecting))
        go_spliced(c, from);
}

/* The relay stops reading the source and only watches it for the end;
 * bytes the program passes it from now on come with an event. */
static void go_spliced(conn_t *c, int from)
{
    if (c->closing)
        return;
    if (!c->watch_init[from]) {
        c->dupfd[from] = fcntl(sock_fd(c, from), F_DUPFD_CLOEXEC, 0);
        if (c->dupfd[from] < 0 || uv_poll_init(c->box->g->loop, &c->watch[from],
                                               c->dupfd[from]) < 0) {
            if (c->dupfd[from] >= 0)
                close(c->dupfd[from]);
            c->dupfd[from] = -1;
            return; /* stays armed */
        }
        c->watch[from].data = c;
        c->watch_init[from] = true;
        c->handles++;
    }
    uv_read_stop(side(c, from));
    /* libuv leaves a stopped socket in its epoll set until an event comes
     * for it, and the kernel wakes the set for every segment it redirects
     * (only to find nothing to read): out of the set, unless a write of
     * the other direction still waits there. */
    uv_stream_t *src = side(c, from);
    if (src->io_watcher.pevents == 0)
        epoll_ctl(uv_backend_fd(c->box->g->loop), EPOLL_CTL_DEL, sock_fd(c, from), NULL);
    uv_poll_start(&c->watch[from], UV_DISCONNECT, on_watch);
    c->mode[from] = DIR_SPLICED;
}

static void draining(conn_t *c, int from, const char *why)
{
    if (why)
        metrics_inc(c->box->g->m_splice, (const char *[]){why}, 1);
    STORE(sst(c, from)->want, 0);
    if (c->mode[from] == DIR_SPLICED)
        uv_poll_stop(&c->watch[from]);
    else
        uv_read_stop(side(c, from));
    c->mode[from] = DIR_DRAINING;
    ticking(c->box);
}

static void drain_check(conn_t *c, int from);

/* Bytes (or the end) the relay read after the program had handed some
 * over since the relay last saw the kernel's queue empty: they wait until
 * it is, or they would overtake what it holds. */
static void hold(conn_t *c, int from, ssize_t nread, const uv_buf_t *buf)
{
    c->held_nread[from] = nread;
    if (nread > 0) {
        c->held[from] = xmalloc((size_t)nread);
        memcpy(c->held[from], buf->base, (size_t)nread);
    }
    /* The program passes bytes after redirecting only at its queue limit. */
    draining(c, from, nread > 0 ? "limit" : "ended");
    drain_check(c, from);
}

/* The kernel's queue is empty: the relay has the direction again, and
 * first what it read meanwhile. */
static void relay_again(conn_t *c, int from, uint64_t redirected)
{
    c->mode[from] = DIR_RELAY;
    c->redir_acct[from] = redirected;
    STORE(sst(c, from)->taken, redirected);
    uv_read_start(side(c, from), on_relay_alloc, on_relay_read);
    ssize_t nread = c->held_nread[from];
    if (nread) {
        char *data = c->held[from];
        c->held[from] = NULL;
        c->held_nread[from] = 0;
        uv_buf_t b = uv_buf_init(data, nread > 0 ? (unsigned)nread : 0);
        on_relay_read(side(c, from), nread, &b);
        free(data);
    }
    maybe_splice(c);
}

/* An end, a reset or an error on a spliced direction's source: the relay
 * takes it back and meets it as it would have. */
static void on_watch(uv_poll_t *h, int status, int events)
{
    conn_t *c = h->data;
    int from = h == &c->watch[0] ? 0 : 1;
    c->no_splice = true;
    if (c->mode[from] == DIR_SPLICED)
        draining(c, from, "ended");
}

/* What the kernel still holds of the direction's redirected bytes. */
static int backlog(conn_t *c, int from, uint64_t *out)
{
    int to = 1 - from;
    uint64_t taken;
    bool closed;
    if (egress__splice_taken(sock_fd(c, to), &taken, &closed) < 0 || closed)
        return -1;
    uint64_t sent = taken - c->offset[to];
    uint64_t handed = c->wrote[to] + LOAD(sst(c, from)->redirected);
    *out = handed > sent ? handed - sent : 0;
    return 0;
}

/* A direction is handed back only when the program cannot be handing it
 * anything more: it cleared want itself (at its limit), or the source has
 * ended (its last segments were handed over before the end was read). So
 * once the kernel's queue is empty, it stays so. */
static void drain_check(conn_t *c, int from)
{
    uint64_t left = 0;
    uint64_t red = LOAD(sst(c, from)->redirected);
    if (backlog(c, from, &left) < 0 || left == 0)
        relay_again(c, from, red);
}

/* Every SPLICE_TICK_MS while a direction drains: handed back to the relay
 * once the kernel's queue is empty. Nothing else ticks: a spliced
 * direction costs the server nothing until its source ends (the watch) or
 * the program passes bytes while asked to redirect them (an event), and
 * each meets the queue limit EGRESS__SPLICE_BACKLOG_MAX bytes after the
 * relay last saw its queue empty, drains, and goes on. */
static void splice_tick(uv_timer_t *t)
{
    egress_box_t *b = t->data;
    bool busy = false;
    for (conn_t *c = b->conns; c; c = c->next) {
        for (int from = 0; c->pair >= 0 && from < 2 && !c->closing; from++) {
            if (c->mode[from] == DIR_DRAINING) {
                busy = true;
                drain_check(c, from);
            }
        }
    }
    if (!busy) {
        uv_timer_stop(t);
        b->splice_ticking = false;
    }
}

/* The program passed bytes of a spliced direction (it was not caught up
 * when the relay stopped reading, or met its queue limit): the relay
 * takes the direction back. */
static void on_splice_events(uv_poll_t *h, int status, int events)
{
    egress_t *g = h->data;
    uint32_t slot;
    while (egress__splice_next_event(g->splice, &slot)) {
        if (slot / 2 >= EGRESS__SPLICE_PAIRS)
            continue;
        conn_t *c = g->by_pair[slot / 2];
        int from = (int)(slot & 1);
        if (!c || c->closing || c->mode[from] != DIR_SPLICED)
            continue;
        draining(c, from, LOAD(sst(c, from)->want) ? NULL : "limit");
        drain_check(c, from);
    }
}

static void on_write(uv_write_t *w, int status)
{
    wreq_t *r = (wreq_t *)w;
    conn_t *c = r->c;
    int to = r->to;
    size_t len = r->len;
    c->queued[to] -= len;
    free(r);
    if (c->closing)
        return;
    if (status < 0) {
        log_debug("egress", "%s:%u: writing to the %s: %s", c->host, c->port,
                  to ? "upstream" : "function", uv_err_name(status));
        conn_close(c, true);
        return;
    }
    wrote(c, to, len);
    if (c->queued[to] < RELAY_HIGH_WATER / 2) {
        uv_stream_t *src = side(c, 1 - to);
        bool src_eof = to == 0 ? c->up_eof : c->client_eof;
        if (!src_eof && (c->mode[1 - to] == DIR_RELAY || c->mode[1 - to] == DIR_ARMED))
            uv_read_start(src, on_relay_alloc, on_relay_read);
    }
    maybe_shutdown(c, to);
    maybe_splice(c);
}

static char relay_buf[64 * 1024];

static void on_relay_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    *b = uv_buf_init(relay_buf, sizeof relay_buf);
}

static void sniff(conn_t *c, int from, const uint8_t *data, size_t len)
{
    entry_t *e = c->entry;
    if (from == 0) {
        if (!c->first_client) {
            c->first_client = true;
            if (egress__sniff_tls_sni(data, len, c->sni, sizeof c->sni) && e)
                snprintf(e->sni, sizeof e->sni, "%s", c->sni);
        }
        if (e && !e->method[0] &&
            egress__sniff_http_request(data, len, e->method, sizeof e->method, e->path,
                                       sizeof e->path))
            c->want_status = true;
    } else {
        c->first_up = true;
    }
    if (from == 1 && c->want_status && e && !e->status) {
        e->status = egress__sniff_http_status(data, len);
        c->want_status = false;
    }
}

static void on_relay_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = s->data;
    int from = s == (uv_stream_t *)&c->client ? 0 : 1;
    int to = 1 - from;
    if (nread == 0) {
        check_spliced(c, from);
        return;
    }
    if (c->pair >= 0 && (nread > 0 || nread == UV_EOF) &&
        LOAD(sst(c, from)->redirected) != c->redir_acct[from]) {
        /* The program handed bytes over since the relay last knew the
         * kernel's queue empty (and then gave it these): they wait until
         * that queue is, or they would overtake it. */
        hold(c, from, nread, buf);
        return;
    }
    if (nread < 0) {
        c->no_splice = true;
        if (nread != UV_EOF) {
            log_debug("egress", "%s:%u: reading from the %s: %s", c->host, c->port,
                      from ? "upstream" : "function", uv_err_name((int)nread));
            conn_close(c, true);
            return;
        }
        uv_read_stop(s);
        if (from == 0)
            c->client_eof = true;
        else
            c->up_eof = true;
        if (c->client_eof && c->up_eof && c->queued[0] == 0 && c->queued[1] == 0) {
            conn_close(c, false);
            return;
        }
        maybe_shutdown(c, to);
        return;
    }
    conn_touch(c);
    size_t n = (size_t)nread;
    if (from == 0)
        c->total_out += n;
    else
        c->total_in += n;
    sniff(c, from, (const uint8_t *)buf->base, n);
    size_t done = 0;
    if (c->queued[to] == 0) {
        uv_buf_t b = uv_buf_init(buf->base, (unsigned)n);
        int w = uv_try_write(side(c, to), &b, 1);
        if (w > 0)
            done = (size_t)w;
        else if (w < 0 && w != UV_EAGAIN) {
            log_debug("egress", "%s:%u: writing to the %s: %s", c->host, c->port,
                      to ? "upstream" : "function", uv_err_name(w));
            conn_close(c, true);
            return;
        }
        wrote(c, to, done);
    }
    if (done == n) {
        maybe_splice(c);
        check_spliced(c, from);
        return;
    }
    wreq_t *r = xmalloc(sizeof *r + (n - done));
    r->c = c;
    r->to = to;
    r->len = n - done;
    memcpy(r->data, buf->base + done, n - done);
    uv_buf_t b = uv_buf_init(r->data, (unsigned)r->len);
    c->queued[to] += r->len;
    if (uv_write(&r->w, side(c, to), &b, 1, on_write) < 0) {
        c->queued[to] -= r->len;
        free(r);
        conn_close(c, true);
        return;
    }
    if (c->queued[to] >= RELAY_HIGH_WATER)
        uv_read_stop(s);
}

static void on_upstream_connected(uv_connect_t *req, int status)
{
    conn_t *c = req->data;
    if (c->closing)
        return;
    if (status < 0) {
        if (c->entry)
            snprintf(c->entry->error, sizeof c->entry->error, "%s", uv_err_name(status));
        box_line(c->box, "mayfly: egress to %s:%u failed: %s", c->host, c->port,
                 uv_strerror(status));
        conn_close(c, true);
        return;
    }
    c->up_connected = true;
    uv_tcp_nodelay(&c->upstream, 1);
    if (c->box->g->splice)
        c->pair = egress__splice_add(c->box->g->splice, sock_fd(c, 0), sock_fd(c, 1));
    if (c->pair < 0)
        c->pair = -1;
    else
        c->box->g->by_pair[c->pair] = c;
    uv_read_start((uv_stream_t *)&c->client, on_relay_alloc, on_relay_read);
    uv_read_start((uv_stream_t *)&c->upstream, on_relay_alloc, on_relay_read);
}

/* The policy's own check of a destination the kernel let through: a
 * second line, and the name the record shows. */
static bool policy_allows(const egress_box_t *b, int family, const uint8_t *addr, uint16_t port,
                          const char *name)
{
    for (size_t k = 0; k < b->g->n_own; k++) {
        const egress__own_t *o = &b->g->own[k];
        if (o->family == family && o->port == port &&
            memcmp(o->addr, addr, family == AF_INET ? 4 : 16) == 0) {
            /* Only a rule naming both may reach the server itself. */
            for (size_t i = 0; i < b->policy.n; i++) {
                const egress_rule_t *r = &b->policy.rules[i];
                if (r->port == port && r->kind == EGRESS_RULE_CIDR &&
                    egress_rule_matches_addr(r, family, addr))
                    return true;
            }
            return false;
        }
    }
    for (size_t i = 0; i < b->policy.n; i++) {
        const egress_rule_t *r = &b->policy.rules[i];
        if (r->port && r->port != port)
            continue;
        if ((r->kind == EGRESS_RULE_CIDR || r->kind == EGRESS_RULE_ANY) &&
            egress_rule_matches_addr(r, family, addr))
            return true;
        if (name && egress_rule_matches_name(r, name))
            return true;
    }
    return false;
}

static void on_relay_connection(uv_stream_t *server, int status)
{
    egress_box_t *b = server->data;
    if (status < 0 || b->closing)
        return;
    conn_t *c = xcalloc(1, sizeof *c);
    c->box = b;
    c->pair = -1;
    c->dupfd[0] = c->dupfd[1] = -1;
    uv_tcp_init(b->g->loop, &c->client);
    c->client.data = c;
    c->handles = 1;
    b->handles++;
    if (uv_accept(server, (uv_stream_t *)&c->client) < 0) {
        c->closing = true;
        uv_close((uv_handle_t *)&c->client, conn_handle_closed);
        return;
    }
    uv_os_fd_t fd;
    uv_fileno((uv_handle_t *)&c->client, &fd);
    struct sockaddr_storage dst;
    socklen_t dlen = sizeof dst;
    bool v6 = server == (uv_stream_t *)&b->relay[1];
    int gr = v6 ? getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &dst, &dlen)
                : getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &dlen);
    int family = v6 ? AF_INET6 : AF_INET;
    uint8_t addr[16] = {0};
    if (gr == 0 && dst.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&dst;
        memcpy(addr, &in->sin_addr, 4);
        c->port = ntohs(in->sin_port);
        family = AF_INET;
    } else if (gr == 0 && dst.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&dst;
        memcpy(addr, &in6->sin6_addr, 16);
        c->port = ntohs(in6->sin6_port);
        family = AF_INET6;
    }
    addr_text(family, addr, c->ip, sizeof c->ip);
    const char *name = name_of(b, family, addr);
    snprintf(c->host, sizeof c->host, "%s", name ? name : c->ip);

    /* Linked in first: conn_close unlinks. */
    c->next = b->conns;
    if (b->conns)
        b->conns->prev = c;
    b->conns = c;
    b->n_open++;

    if (gr != 0 || c->port == EGRESS__RELAY_PORT ||
        !policy_allows(b, family, addr, c->port, name)) {
        /* A connection to the relay itself, or one the kernel's rules let
         * by that the policy does not: refused all the same. */
        denied(b, c->host, c->ip, c->port, "", "denied by the function's policy");
        conn_close(c, true);
        return;
    }
    if (b->n_open > b->g->cfg.max_connections) {
        box_line(b, "mayfly: egress to %s:%u refused: the instance has %u connections open "
                    "(--egress-max-connections)",
                 c->host, c->port, b->g->cfg.max_connections);
        conn_close(c, true);
        return;
    }
    metrics_inc(b->g->m_conns, (const char *[]){b->function, "true"}, 1);
    /* Opened outside a call (during init, or between calls): the call that
     * uses it later records it as reused. */
    c->used_before = !b->in_call;
    entry_t *e = entry_new(b);
    if (e) {
        snprintf(e->host, sizeof e->host, "%s", c->host);
        snprintf(e->ip, sizeof e->ip, "%s", c->ip);
        e->port = c->port;
        e->allowed = true;
        c->entry = e;
    }
    uv_tcp_nodelay(&c->client, 1);
    uv_tcp_init(b->g->loop, &c->upstream);
    c->upstream.data = c;
    c->up_init = true;
    c->handles++;
    struct sockaddr_storage up;
    memset(&up, 0, sizeof up);
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&up;
        in->sin_family = AF_INET;
        memcpy(&in->sin_addr, addr, 4);
        in->sin_port = htons(c->port);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&up;
        in6->sin6_family = AF_INET6;
        memcpy(&in6->sin6_addr, addr, 16);
        in6->sin6_port = htons(c->port);
    }
    c->connect.data = c;
    int r = uv_tcp_connect(&c->connect, &c->upstream, (struct sockaddr *)&up,
                           on_upstream_connected);
    if (r < 0) {
        if (c->entry)
            snprintf(c->entry->error, sizeof c->entry->error, "%s", uv_err_name(r));
        box_line(b, "mayfly: egress to %s:%u failed: %s", c->host, c->port, uv_strerror(r));
        conn_close(c, true);
    }
}

/* ---- denials from the kernel ------------------------------------------------ */

static void nflog_drain(egress_box_t *b)
{
    /* Read as netlink headers: aligned for them. */
    _Alignas(struct nlmsghdr) uint8_t buf[8192];
    for (;;) {
        ssize_t n = recv(b->nflog_fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0)
            return;
        size_t off = 0;
        egress__denial_t d;
        while (egress__nflog_parse(buf, (size_t)n, &off, &d) == 1) {
            if (strcmp(d.prefix, "closed") == 0) {
                /* The refused destination is the reset's source. */
                memcpy(d.addr, d.saddr, sizeof d.addr);
                d.port = d.sport;
            }
            char ip[INET6_ADDRSTRLEN];
            addr_text(d.family, d.addr, ip, sizeof ip);
            const char *name = name_of(b, d.family, d.addr);
            char host[EGRESS_NAME_MAX + 3 + INET6_ADDRSTRLEN];
            if (name)
                snprintf(host, sizeof host, "%s", name);
            else if (d.family == AF_INET6)
                snprintf(host, sizeof host, "[%s]", ip);
            else
                snprintf(host, sizeof host, "%s", ip);
            if (strcmp(d.prefix, "limit") == 0) {
                box_line(b, "mayfly: egress to %s:%u refused: the instance already has %u "
                            "connections open (--egress-max-connections)",
                         host, d.port, b->g->cfg.max_connections);
                entry_t *e = entry_new(b);
                if (e) {
                    snprintf(e->host, sizeof e->host, "%.*s", (int)sizeof e->host - 1, host);
                    snprintf(e->ip, sizeof e->ip, "%s", ip);
                    e->port = d.port;
                    e->allowed = true;
                    snprintf(e->error, sizeof e->error, "too many connections open");
                }
                continue;
            }
            const char *proto = d.proto == IPPROTO_TCP   ? ""
                                : d.proto == IPPROTO_UDP ? "/udp"
                                                         : "/other";
            denied(b, host, ip, d.port, proto, "denied by the function's policy");
        }
    }
}

static void on_nflog(uv_poll_t *h, int status, int events)
{
    nflog_drain(h->data);
}

/* ---- the resolver ------------------------------------------------------------ */

typedef struct lookup {
    uv_work_t work;
    egress_box_t *box;
    uint8_t query[EGRESS__DNS_MAX];
    size_t query_len;
    egress__dns_query_t q;
    struct sockaddr_storage from;
    /* Filled by the worker. */
    dns_entry_t result;
    uint32_t ttl;
} lookup_t;

static void parse_answers(const uint8_t *ans, int len, int want, dns_entry_t *out,
                          uint32_t *ttl)
{
    ns_msg msg;
    if (ns_initparse(ans, len, &msg) < 0)
        return;
    int count = ns_msg_count(msg, ns_s_an);
    for (int i = 0; i < count && out->n < EGRESS_HOSTS_MAX_ADDRS; i++) {
        ns_rr rr;
        if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
            break;
        int type = ns_rr_type(rr);
        if ((type == ns_t_a && want == AF_INET && ns_rr_rdlen(rr) == 4) ||
            (type == ns_t_aaaa && want == AF_INET6 && ns_rr_rdlen(rr) == 16)) {
            egress_addr_t *a = &out->addrs[out->n++];
            memset(a, 0, sizeof *a);
            a->family = want;
            memcpy(a->addr, ns_rr_rdata(rr), ns_rr_rdlen(rr));
            if (ns_rr_ttl(rr) < *ttl)
                *ttl = ns_rr_ttl(rr);
        }
    }
}

/* On a worker thread: the host's resolver, with the answer's TTL; names it
 * does not know go to getaddrinfo (the host's /etc/hosts and NSS). */
static void lookup_work(uv_work_t *w)
{
    lookup_t *l = w->data;
    dns_entry_t *out = &l->result;
    uint32_t ttl = UINT32_MAX;
    struct __res_state st;
    memset(&st, 0, sizeof st);
    bool nx = false, answered = false;
    if (res_ninit(&st) == 0) {
        uint8_t ans[4096];
        for (int k = 0; k < 2; k++) {
            int n = res_nquery(&st, l->q.name, ns_c_in, k == 0 ? ns_t_a : ns_t_aaaa, ans,
                               sizeof ans);
            if (n > 0) {
                answered = true;
                parse_answers(ans, n, k == 0 ? AF_INET : AF_INET6, out, &ttl);
            } else if (st.res_h_errno == HOST_NOT_FOUND) {
                nx = true;
            } else if (st.res_h_errno == NO_DATA) {
                answered = true;
            }
        }
        res_nclose(&st);
    }
    if (out->n == 0) {
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        struct addrinfo *ai = NULL;
        if (getaddrinfo(l->q.name, NULL, &hints, &ai) == 0) {
            for (struct addrinfo *p = ai; p && out->n < EGRESS_HOSTS_MAX_ADDRS; p = p->ai_next) {
                egress_addr_t *a = &out->addrs[out->n];
                memset(a, 0, sizeof *a);
                if (p->ai_family == AF_INET) {
                    a->family = AF_INET;
                    memcpy(a->addr, &((struct sockaddr_in *)p->ai_addr)->sin_addr, 4);
                } else if (p->ai_family == AF_INET6) {
                    a->family = AF_INET6;
                    memcpy(a->addr, &((struct sockaddr_in6 *)p->ai_addr)->sin6_addr, 16);
                } else {
                    continue;
                }
                bool dup = false;
                for (size_t j = 0; j < out->n; j++)
                    dup = dup || memcmp(&out->addrs[j], a, sizeof *a) == 0;
                if (!dup)
                    out->n++;
            }
            freeaddrinfo(ai);
            ttl = DNS_TTL_FALLBACK_S;
        }
    }
    if (out->n == 0) {
        out->nxdomain = nx || !answered;
        ttl = DNS_TTL_NEGATIVE_S;
    }
    l->ttl = ttl == UINT32_MAX ? DNS_TTL_FALLBACK_S : ttl;
}

/* Sends the answer for l->q from entry, opening the addresses in the
 * kernel first, so the function's connect() finds them allowed. */
static void answer(egress_box_t *b, const uint8_t *query, const egress__dns_query_t *q,
                   const struct sockaddr *from, const dns_entry_t *ent, bool from_hosts,
                   uint32_t ttl)
{
    egress_addr_t ok[EGRESS_HOSTS_MAX_ADDRS];
    size_t n = 0;
    for (size_t i = 0; ent && i < ent->n; i++) {
        const egress_addr_t *a = &ent->addrs[i];
        if (a->family == AF_INET6 && !b->g->ipv6)
            continue;
        /* DNS rebinding: a public name answering an internal address gets
         * it only where the owner named the address, through --egress-hosts
         * or a CIDR rule. */
        bool internal = egress_addr_internal(a->family, a->addr);
        if (internal && !from_hosts) {
            bool named = false;
            for (size_t k = 0; k < b->policy.n && !named; k++)
                named = b->policy.rules[k].kind == EGRESS_RULE_CIDR &&
                        egress_rule_matches_addr(&b->policy.rules[k], a->family, a->addr);
            if (!named)
                continue;
        }
        ok[n++] = *a;
    }
    /* The ports of the rules that match this name. */
    uint16_t ports[EGRESS_MAX_RULES];
    size_t n_ports = 0;
    bool any_port = false;
    for (size_t k = 0; k < b->policy.n; k++) {
        const egress_rule_t *r = &b->policy.rules[k];
        if (!egress_rule_matches_name(r, q->name))
            continue;
        if (r->port == 0)
            any_port = true;
        else
            ports[n_ports++] = r->port;
    }
    for (size_t i = 0; i < n; i++) {
        int r = egress__nft_allow(b->nft, ok[i].family, ok[i].addr, ports, n_ports, any_port);
        if (r < 0)
            log_warn("egress", "open %s in a sandbox's rules: %s", q->name, strerror(-r));
        names_add(b, &ok[i], q->name);
    }
    uint8_t out[EGRESS__DNS_MAX];
    int rcode = ent && ent->nxdomain ? 3 : 0;
    size_t len = egress__dns_answer(query, q, rcode, ok, n, ttl ? ttl : 1, out, sizeof out);
    uv_buf_t buf = uv_buf_init((char *)out, (unsigned)len);
    uv_udp_try_send(&b->dns, &buf, 1, from);
    metrics_inc(b->g->m_dns, (const char *[]){b->function, rcode ? "nxdomain" : "answer"}, 1);
}

static void cache_put(egress_t *g, const char *name, const dns_entry_t *ent, uint32_t ttl)
{
    if (map_get(&g->cache, name) == NULL && g->cache.len >= DNS_CACHE_MAX) {
        /* Full: the expired go, or failing that everything (a bound, not a
         * policy: entries are cheap to fetch again). */
        uint64_t now = clock_mono_ns();
        size_t it = 0;
        const char *k;
        void *v;
        bool any = false;
        while (map_next(&g->cache, &it, &k, &v)) {
            /* Removing leaves a tombstone: the walk goes on where it is. */
            if (((dns_entry_t *)v)->expires_ns <= now) {
                free(map_remove(&g->cache, k));
                any = true;
            }
        }
        if (!any) {
            it = 0;
            while (map_next(&g->cache, &it, &k, &v))
                free(v);
            map_clear(&g->cache);
        }
    }
    dns_entry_t *copy = xmalloc(sizeof *copy);
    *copy = *ent;
    copy->expires_ns = clock_mono_ns() + (uint64_t)ttl * 1000000000ull;
    free(map_put(&g->cache, name, copy));
}

static void lookup_done(uv_work_t *w, int status)
{
    lookup_t *l = w->data;
    egress_box_t *b = l->box;
    if (status == 0)
        cache_put(b->g, l->q.name, &l->result, l->ttl);
    if (!b->closing)
        answer(b, l->query, &l->q, (struct sockaddr *)&l->from, &l->result, false, l->ttl);
    free(l);
    b->lookups--;
    box_unref(b);
}

static void on_dns_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char dns_buf[EGRESS__DNS_MAX];
    *buf = uv_buf_init(dns_buf, sizeof dns_buf);
}

static void on_dns(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from,
                   unsigned flags)
{
    egress_box_t *b = h->data;
    if (nread <= 0 || !from || b->closing || (flags & UV_UDP_PARTIAL))
        return;
    const uint8_t *msg = (const uint8_t *)buf->base;
    size_t len = (size_t)nread;
    egress__dns_query_t q;
    int r = egress__dns_parse_query(msg, len, &q);
    if (r < 0) {
        /* FORMERR for a malformed query; nothing for an answer (QR set),
         * which no one should be sending here. */
        if (len >= 12 && !(msg[2] & 0x80)) {
            uint8_t out[64];
            size_t n = egress__dns_answer(msg, NULL, 1, NULL, 0, 0, out, sizeof out);
            uv_buf_t ob = uv_buf_init((char *)out, (unsigned)n);
            uv_udp_try_send(h, &ob, 1, from);
        }
        return;
    }
    if (!egress_policy_allows_name(&b->policy, q.name)) {
        if (!map_get(&b->denied_names, q.name)) {
            if (b->in_call)
                map_put(&b->denied_names, q.name, (void *)1);
            denied(b, q.name, NULL, 0, "", "NXDOMAIN: no rule names this host");
        }
        dns_entry_t nx = {.nxdomain = true};
        answer(b, msg, &q, from, &nx, false, DNS_TTL_NEGATIVE_S);
        return;
    }
    if (q.qclass != 1 || (q.qtype != 1 && q.qtype != 28)) {
        /* Allowed, but not a question about addresses: no data. */
        answer(b, msg, &q, from, NULL, false, 0);
        return;
    }
    dns_entry_t ent;
    memset(&ent, 0, sizeof ent);
    if (b->g->cfg.hosts) {
        ent.n = egress_hosts_lookup(b->g->cfg.hosts, q.name, ent.addrs, EGRESS_HOSTS_MAX_ADDRS);
        if (ent.n) {
            answer(b, msg, &q, from, &ent, true, DNS_TTL_FALLBACK_S);
            return;
        }
    }
    dns_entry_t *cached = map_get(&b->g->cache, q.name);
    uint64_t now = clock_mono_ns();
    if (cached && cached->expires_ns > now) {
        uint32_t ttl = (uint32_t)((cached->expires_ns - now) / 1000000000ull);
        answer(b, msg, &q, from, cached, false, ttl ? ttl : 1);
        return;
    }
    if (b->lookups >= DNS_LOOKUPS_MAX) {
        /* A function asking for name after name (random names under a
         * wildcard rule) gets SERVFAIL rather than a queue of worker
         * threads' time; its resolver asks again. */
        uint8_t out[EGRESS__DNS_MAX];
        size_t n = egress__dns_answer(msg, &q, 2, NULL, 0, 0, out, sizeof out);
        uv_buf_t ob = uv_buf_init((char *)out, (unsigned)n);
        uv_udp_try_send(h, &ob, 1, from);
        metrics_inc(b->g->m_dns, (const char *[]){b->function, "servfail"}, 1);
        return;
    }
    lookup_t *l = xcalloc(1, sizeof *l);
    l->box = b;
    memcpy(l->query, msg, len);
    l->query_len = len;
    l->q = q;
    memcpy(&l->from, from, from->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                         : sizeof(struct sockaddr_in));
    l->work.data = l;
    b->handles++;
    b->lookups++;
    if (uv_queue_work(b->g->loop, &l->work, lookup_work, lookup_done) < 0) {
        free(l);
        b->lookups--;
        box_unref(b);
    }
}

/* ---- set-up inside the namespace --------------------------------------------- */

typedef struct setup {
    egress_box_t *b;
    int relay_fd[2];
    int dns_fd;
    int nflog_fd;
    const char *step;
} setup_t;

/* RTM_NEWROUTE: default dev lo src ADDR, for one family. */
static int add_default_route(int nl, int family, const void *src, int ifindex)
{
    struct {
        struct nlmsghdr nh;
        struct rtmsg rt;
        char attrs[64];
    } req;
    memset(&req, 0, sizeof req);
    req.nh.nlmsg_type = RTM_NEWROUTE;
    req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    req.nh.nlmsg_seq = 1;
    req.rt.rtm_family = (unsigned char)family;
    req.rt.rtm_table = RT_TABLE_MAIN;
    req.rt.rtm_protocol = RTPROT_STATIC;
    req.rt.rtm_scope = RT_SCOPE_LINK;
    req.rt.rtm_type = RTN_UNICAST;
    size_t alen = family == AF_INET ? 4 : 16;
    size_t off = 0;
    struct rtattr *a = (struct rtattr *)req.attrs;
    a->rta_type = RTA_OIF;
    a->rta_len = RTA_LENGTH(sizeof(int));
    memcpy(RTA_DATA(a), &ifindex, sizeof(int));
    off += RTA_SPACE(sizeof(int));
    a = (struct rtattr *)(req.attrs + off);
    a->rta_type = RTA_PREFSRC;
    a->rta_len = (unsigned short)RTA_LENGTH(alen);
    memcpy(RTA_DATA(a), src, alen);
    off += RTA_SPACE(alen);
    req.nh.nlmsg_len = (uint32_t)(NLMSG_LENGTH(sizeof req.rt) + off);
    return egress__netlink_request(nl, &req, req.nh.nlmsg_len);
}

static int listen_on(int family, int type, uint16_t port)
{
    int s = socket(family, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0)
        return -errno;
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *in;
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        in6->sin6_addr = in6addr_loopback;
        setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        len = sizeof *in6;
    }
    if (bind(s, (struct sockaddr *)&ss, len) < 0 || (type == SOCK_STREAM && listen(s, 1024) < 0)) {
        int e = -errno;
        close(s);
        return e;
    }
    return s;
}

static int setup_inside(void *ud)
{
    setup_t *s = ud;
    egress_box_t *b = s->b;
    bool v6 = b->g->ipv6;
    int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (nl < 0)
        return -errno;
    struct in_addr a4;
    struct in6_addr a6;
    inet_pton(AF_INET, "10.255.255.2", &a4);
    inet_pton(AF_INET6, "fd00:6d66::2", &a6);
    int lo = 1; /* lo is always the first interface of a namespace */
    s->step = "add the default route";
    int r = add_default_route(nl, AF_INET, &a4, lo);
    if (r == 0 && v6) {
        s->step = "add the IPv6 default route";
        r = add_default_route(nl, AF_INET6, &a6, lo);
    }
    close(nl);
    if (r < 0)
        return r;
    s->step = "open the relay's listener";
    s->relay_fd[0] = listen_on(AF_INET, SOCK_STREAM, EGRESS__RELAY_PORT);
    if (s->relay_fd[0] < 0)
        return s->relay_fd[0];
    if (v6) {
        s->relay_fd[1] = listen_on(AF_INET6, SOCK_STREAM, EGRESS__RELAY_PORT);
        if (s->relay_fd[1] < 0)
            return s->relay_fd[1];
    }
    s->step = "open the resolver's socket";
    s->dns_fd = listen_on(AF_INET, SOCK_DGRAM, EGRESS__DNS_PORT);
    if (s->dns_fd < 0)
        return s->dns_fd;
    s->step = "open the NFLOG socket";
    s->nflog_fd = egress__nflog_open();
    if (s->nflog_fd < 0)
        return s->nflog_fd;
    s->step = "open the nftables socket";
    b->nft = egress__nft_open();
    if (!b->nft)
        return -errno;
    s->step = "install the nftables rules";
    return egress__nft_install(b->nft, &b->policy, b->g->own, b->g->n_own,
                               b->g->cfg.max_connections, v6);
}

static void box_handle_closed(uv_handle_t *h)
{
    box_unref(h->data);
}

static void box_unref(egress_box_t *b)
{
    if (--b->handles > 0)
        return;
    for (size_t i = 0; i < b->n_entries; i++)
        free(b->entries[i]);
    free(b->entries);
    map_release(&b->denied_names);
    if (b->nflog_fd >= 0)
        close(b->nflog_fd);
    egress_policy_free(&b->policy);
    free(b->names);
    free(b);
}

static void copy_policy(egress_policy_t *dst, const egress_policy_t *src)
{
    dst->n = src->n;
    dst->rules = src->n ? xmalloc(src->n * sizeof *src->rules) : NULL;
    if (src->n)
        memcpy(dst->rules, src->rules, src->n * sizeof *src->rules);
}

int egress_box_open(egress_t *g, const sandbox_t *sb, const char *function,
                    const egress_policy_t *policy, egress_log_cb log, void *ud,
                    egress_box_t **out, mf_error_t *err)
{
    egress_box_t *b = xcalloc(1, sizeof *b);
    b->g = g;
    snprintf(b->function, sizeof b->function, "%s", function);
    copy_policy(&b->policy, policy);
    b->log = log;
    b->log_ud = ud;
    b->denied_names = (map_t)MAP_INIT;
    b->nflog_fd = -1;
    setup_t s = {.b = b, .relay_fd = {-1, -1}, .dns_fd = -1, .nflog_fd = -1, .step = "set up"};
    mf_error_t e2 = MF_ERROR_INIT;
    uint64_t t0 = clock_mono_ns();
    int r = sandbox_enter_net(sb, setup_inside, &s, &e2);
    log_debug("egress", "%s: the gateway's set-up took %.3f ms", function,
              (double)(clock_mono_ns() - t0) / 1e6);
    if (r < 0) {
        mf_error_set(err, -r, "egress: %s in the sandbox", s.step);
        for (int i = 0; i < 2; i++)
            if (s.relay_fd[i] >= 0)
                close(s.relay_fd[i]);
        if (s.dns_fd >= 0)
            close(s.dns_fd);
        if (s.nflog_fd >= 0)
            close(s.nflog_fd);
        if (b->nft)
            mnl_socket_close(b->nft);
        b->handles = 1;
        box_unref(b);
        return r;
    }
    b->handles = 1; /* the box's own reference, dropped by egress_box_close */
    for (int i = 0; i < 2; i++) {
        if (s.relay_fd[i] < 0)
            continue;
        uv_tcp_init(g->loop, &b->relay[i]);
        b->relay[i].data = b;
        uv_tcp_open(&b->relay[i], s.relay_fd[i]);
        uv_listen((uv_stream_t *)&b->relay[i], 1024, on_relay_connection);
        b->relay_open[i] = true;
        b->handles++;
    }
    uv_udp_init(g->loop, &b->dns);
    b->dns.data = b;
    uv_udp_open(&b->dns, s.dns_fd);
    uv_udp_recv_start(&b->dns, on_dns_alloc, on_dns);
    b->handles++;
    b->nflog_fd = s.nflog_fd;
    uv_poll_init(g->loop, &b->nflog, b->nflog_fd);
    b->nflog.data = b;
    uv_poll_start(&b->nflog, UV_READABLE, on_nflog);
    b->handles++;
    uv_timer_init(g->loop, &b->splice_timer);
    b->splice_timer.data = b;
    b->handles++;
    *out = b;
    return 0;
}

void egress_box_call_begin(egress_box_t *b)
{
    b->in_call = true;
    b->n_entries = 0;
    b->dropped = 0;
    b->denial_lines = 0;
    b->call_start_ms = clock_wall_ms();
    b->call_start_ns = clock_mono_ns();
    /* A spliced connection's first segments of the call each way: the
     * program copies their heads, for the entry's HTTP line. */
    for (conn_t *c = b->conns; c; c = c->next) {
        for (int i = 0; c->pair >= 0 && i < 2; i++) {
            egress__splice_state_t *st = sst(c, i);
            STORE(st->head_len, 0);
            STORE(st->capture, 1);
        }
    }
}

/* A spliced connection the call used without the relay seeing it: its
 * entry, with the HTTP line from the heads the program copied. */
static void spliced_entry(conn_t *c)
{
    if (c->pair < 0)
        return;
    uint64_t out, in;
    totals(c, &out, &in);
    if (!c->entry && (out != c->mark_out || in != c->mark_in)) {
        conn_touch(c);
        if (c->entry) {
            c->entry->start_ms = c->box->call_start_ms;
            c->entry->start_ns = c->box->call_start_ns;
        }
    }
    entry_t *e = c->entry;
    const egress__splice_state_t *req = sst(c, 0), *resp = sst(c, 1);
    if (!e || e->method[0] || LOAD(req->capture) || !LOAD(req->head_len))
        return;
    if (egress__sniff_http_request(req->head, LOAD(req->head_len), e->method, sizeof e->method,
                                   e->path, sizeof e->path) &&
        !LOAD(resp->capture) && LOAD(resp->head_len))
        e->status = egress__sniff_http_status(resp->head, LOAD(resp->head_len));
}

static void entry_json(buf_t *out, const entry_t *e)
{
    buf_adds(out, "{\"host\":");
    json_quote(out, e->host, strlen(e->host));
    buf_adds(out, ",\"ip\":");
    json_quote(out, e->ip, strlen(e->ip));
    char start[40];
    clock_format_iso8601(e->start_ms, start, sizeof start);
    buf_addf(out, ",\"port\":%u,\"start\":\"%s\",\"duration_ms\":%.3f,\"bytes_out\":%llu,"
                  "\"bytes_in\":%llu,\"allowed\":%s",
             e->port, start, e->duration_ms, (unsigned long long)e->bytes_out,
             (unsigned long long)e->bytes_in, e->allowed ? "true" : "false");
    buf_adds(out, ",\"error\":");
    if (e->error[0])
        json_quote(out, e->error, strlen(e->error));
    else
        buf_adds(out, "null");
    if (e->method[0]) {
        buf_adds(out, ",\"http\":{\"method\":");
        json_quote(out, e->method, strlen(e->method));
        buf_adds(out, ",\"path\":");
        json_quote(out, e->path, strlen(e->path));
        if (e->status)
            buf_addf(out, ",\"status\":%d}", e->status);
        else
            buf_adds(out, ",\"status\":null}");
    }
    if (e->sni[0]) {
        buf_adds(out, ",\"tls\":{\"sni\":");
        json_quote(out, e->sni, strlen(e->sni));
        buf_adds(out, "}");
    }
    if (e->reused)
        buf_adds(out, ",\"reused\":true");
    if (e->open)
        buf_adds(out, ",\"open\":true");
    buf_adds(out, "}");
}

char *egress_box_call_end(egress_box_t *b, uint64_t *bytes)
{
    /* The kernel queued a denial's message before the refused connect()
     * returned: whatever the call was refused is read now, into its record. */
    nflog_drain(b);
    for (conn_t *c = b->conns; c; c = c->next) {
        spliced_entry(c);
        count_unlisted(c);
        if (c->entry) {
            entry_settle(c, true);
            c->used_before = true;
        }
        meter(c);
    }
    b->in_call = false;
    map_clear(&b->denied_names);
    *bytes = b->unlisted_bytes;
    b->unlisted_bytes = 0;
    for (size_t i = 0; i < b->n_entries; i++)
        *bytes += b->entries[i]->bytes_out + b->entries[i]->bytes_in;
    if (b->n_entries == 0) {
        return NULL;
    }
    buf_t out;
    buf_init(&out, 256 * b->n_entries);
    buf_addch(&out, '[');
    for (size_t i = 0; i < b->n_entries; i++) {
        if (i)
            buf_addch(&out, ',');
        entry_json(&out, b->entries[i]);
        free(b->entries[i]);
    }
    if (b->dropped)
        buf_addf(&out, ",{\"more\":%u}", b->dropped);
    buf_addch(&out, ']');
    b->n_entries = 0;
    b->dropped = 0;
    return buf_detach(&out, NULL);
}

void egress_box_close(egress_box_t *b)
{
    if (!b || b->closing)
        return;
    b->closing = true;
    while (b->conns)
        conn_close(b->conns, true);
    for (int i = 0; i < 2; i++)
        if (b->relay_open[i])
            uv_close((uv_handle_t *)&b->relay[i], box_handle_closed);
    uv_close((uv_handle_t *)&b->dns, box_handle_closed);
    uv_close((uv_handle_t *)&b->nflog, box_handle_closed);
    uv_close((uv_handle_t *)&b->splice_timer, box_handle_closed);
    if (b->nft)
        mnl_socket_close(b->nft);
    b->nft = NULL;
    box_unref(b);
}
