/* The nftables ruleset inside a sandbox's network namespace, sent as one
 * netlink batch through libnftnl, and the NFLOG socket its denials are read
 * from.
 *
 * table inet mayfly
 *   chain decide  (filter, output, priority -150: before NAT)
 *     established/related → accept
 *     the Runtime API, the resolver and the relay on 127.0.0.1 → accept
 *     allowed by a rule with a port (resolved names: set np4/np6 of
 *       address . port; CIDR rules inline) → jump allowed
 *     the server's own listeners → jump deny
 *     allowed by a portless rule (names: set na4/na6) → jump allowed
 *     the sandbox's own addresses (127/8, ::1, 10.255.255.2, fd00:6d66::2)
 *       → accept: its loopback stays its own
 *     internal ranges → jump deny (only when a "*" rule follows)
 *     "*" rules → jump allowed
 *     → jump deny
 *   chain allowed: past max_conns open → log "limit", reset; else mark, accept
 *   chain deny: log "deny"; TCP gets a reset (ECONNREFUSED at connect()),
 *     the rest ICMP port-unreachable
 *   chain nat (nat, output, -100): marked TCP → redirect to the relay's port
 *
 * Only the first packet of a connection meets the rules; conntrack carries
 * the verdict and the redirect for the rest. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/xalloc.h"
#include "egress/internal.h"
#include "sandbox/sandbox.h"

#define TABLE "mayfly"
#define BATCH_BYTES (256 * 1024)

/* ---- one batch ------------------------------------------------------------ */

typedef struct batch {
    char *buf;
    struct mnl_nlmsg_batch *b;
    uint32_t seq, first_seq;
    unsigned acks;             /* messages that will be answered */
} batch_t;

static void batch_start(batch_t *bt)
{
    bt->buf = xmalloc(BATCH_BYTES);
    bt->b = mnl_nlmsg_batch_start(bt->buf, BATCH_BYTES);
    bt->seq = (uint32_t)time(NULL);
    bt->first_seq = bt->seq;
    bt->acks = 0;
    nftnl_batch_begin(mnl_nlmsg_batch_current(bt->b), bt->seq++);
    mnl_nlmsg_batch_next(bt->b);
}

static struct nlmsghdr *batch_msg(batch_t *bt, uint16_t type)
{
    bt->acks++;
    return nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(bt->b), type, NFPROTO_INET,
                                 NLM_F_CREATE | NLM_F_ACK |
                                     (type == NFT_MSG_NEWRULE ? NLM_F_APPEND : 0),
                                 bt->seq++);
}

/* Sends the batch and reads one answer per message: 0 or the first error. */
static int batch_send(struct mnl_socket *nl, batch_t *bt)
{
    nftnl_batch_end(mnl_nlmsg_batch_current(bt->b), bt->seq++);
    mnl_nlmsg_batch_next(bt->b);
    int rc = 0;
    if (mnl_socket_sendto(nl, mnl_nlmsg_batch_head(bt->b), mnl_nlmsg_batch_size(bt->b)) < 0)
        rc = -errno;
    char rbuf[8192];
    while (rc == 0 && bt->acks > 0) {
        ssize_t n = mnl_socket_recvfrom(nl, rbuf, sizeof rbuf);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        const struct nlmsghdr *nh = (const struct nlmsghdr *)rbuf;
        size_t left = (size_t)n;
        while (mnl_nlmsg_ok(nh, (int)left)) {
            if (nh->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = mnl_nlmsg_get_payload(nh);
                if (bt->acks > 0)
                    bt->acks--;
                if (e->error != 0 && rc == 0)
                    rc = e->error;
            }
            int l = (int)left;
            nh = mnl_nlmsg_next(nh, &l);
            left = (size_t)l;
        }
    }
    mnl_nlmsg_batch_stop(bt->b);
    free(bt->buf);
    bt->buf = NULL;
    return rc;
}

/* ---- expressions ------------------------------------------------------------ */

static void add(struct nftnl_rule *r, struct nftnl_expr *e)
{
    nftnl_rule_add_expr(r, e);
}

static struct nftnl_expr *expr(const char *name)
{
    struct nftnl_expr *e = nftnl_expr_alloc(name);
    if (!e)
        abort();
    return e;
}

static void meta_load(struct nftnl_rule *r, uint32_t key, uint32_t dreg)
{
    struct nftnl_expr *e = expr("meta");
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, dreg);
    add(r, e);
}

static void cmp(struct nftnl_rule *r, uint32_t sreg, uint32_t op, const void *data, uint32_t len)
{
    struct nftnl_expr *e = expr("cmp");
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, sreg);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
    nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
    add(r, e);
}

static void payload(struct nftnl_rule *r, uint32_t base, uint32_t off, uint32_t len,
                    uint32_t dreg)
{
    struct nftnl_expr *e = expr("payload");
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg);
    add(r, e);
}

static void bitwise_and(struct nftnl_rule *r, uint32_t reg, const void *mask, uint32_t len)
{
    static const uint8_t zero[16];
    struct nftnl_expr *e = expr("bitwise");
    nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, reg);
    nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, reg);
    nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
    nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, len);
    nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, zero, len);
    add(r, e);
}

static void lookup(struct nftnl_rule *r, uint32_t sreg, const char *set, uint32_t set_id)
{
    struct nftnl_expr *e = expr("lookup");
    nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, sreg);
    nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set);
    nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, set_id);
    add(r, e);
}

static void verdict(struct nftnl_rule *r, int v, const char *chain)
{
    struct nftnl_expr *e = expr("immediate");
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)v);
    if (chain)
        nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain);
    add(r, e);
}

static void immediate(struct nftnl_rule *r, uint32_t dreg, const void *data, uint32_t len)
{
    struct nftnl_expr *e = expr("immediate");
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, dreg);
    nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, data, len);
    add(r, e);
}

static void log_group(struct nftnl_rule *r, const char *prefix)
{
    struct nftnl_expr *e = expr("log");
    nftnl_expr_set_str(e, NFTNL_EXPR_LOG_PREFIX, prefix);
    nftnl_expr_set_u16(e, NFTNL_EXPR_LOG_GROUP, EGRESS__NFLOG_GROUP);
    /* The headers are enough: the destination and its port. */
    nftnl_expr_set_u32(e, NFTNL_EXPR_LOG_SNAPLEN, 64);
    nftnl_expr_set_u16(e, NFTNL_EXPR_LOG_QTHRESHOLD, 1);
    add(r, e);
}

static void reject(struct nftnl_rule *r, uint32_t type, uint8_t code)
{
    struct nftnl_expr *e = expr("reject");
    nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, type);
    nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE, code);
    add(r, e);
}

/* ---- the rules ---------------------------------------------------------- */

typedef struct plan {
    batch_t bt;
    uint32_t set_id[4];        /* np4, np6, na4, na6 */
} plan_t;

static struct nftnl_rule *rule_new(const char *chain)
{
    struct nftnl_rule *r = nftnl_rule_alloc();
    if (!r)
        abort();
    nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
    nftnl_rule_set_str(r, NFTNL_RULE_TABLE, TABLE);
    nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
    return r;
}

static void rule_emit(plan_t *pl, struct nftnl_rule *r)
{
    struct nlmsghdr *nh = batch_msg(&pl->bt, NFT_MSG_NEWRULE);
    nftnl_rule_nlmsg_build_payload(nh, r);
    mnl_nlmsg_batch_next(pl->bt.b);
    nftnl_rule_free(r);
}

static void match_family(struct nftnl_rule *r, int family)
{
    uint8_t proto = family == AF_INET ? NFPROTO_IPV4 : NFPROTO_IPV6;
    meta_load(r, NFT_META_NFPROTO, NFT_REG_1);
    cmp(r, NFT_REG_1, NFT_CMP_EQ, &proto, 1);
}

static void match_tcp(struct nftnl_rule *r)
{
    uint8_t tcp = IPPROTO_TCP;
    meta_load(r, NFT_META_L4PROTO, NFT_REG_1);
    cmp(r, NFT_REG_1, NFT_CMP_EQ, &tcp, 1);
}

static uint32_t addr_len(int family)
{
    return family == AF_INET ? 4 : 16;
}

/* Loads the destination address into reg 1 (it spans 32-bit registers
 * 0–0 or 0–3, so a port may follow at 32-bit register 1 or 4). */
static void load_daddr(struct nftnl_rule *r, int family)
{
    payload(r, NFT_PAYLOAD_NETWORK_HEADER, family == AF_INET ? 16 : 24, addr_len(family),
            NFT_REG_1);
}

static void match_net(struct nftnl_rule *r, int family, const uint8_t *net, unsigned prefix)
{
    uint32_t len = addr_len(family);
    load_daddr(r, family);
    if (prefix < len * 8) {
        uint8_t mask[16] = {0};
        for (unsigned i = 0; i < prefix; i++)
            mask[i / 8] |= (uint8_t)(0x80 >> (i % 8));
        bitwise_and(r, NFT_REG_1, mask, len);
    }
    cmp(r, NFT_REG_1, NFT_CMP_EQ, net, len);
}

static void match_dport(struct nftnl_rule *r, uint16_t port)
{
    uint16_t be = htons(port);
    payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG_1);
    cmp(r, NFT_REG_1, NFT_CMP_EQ, &be, 2);
}

static void add_set(plan_t *pl, const char *name, uint32_t id, uint32_t key_len,
                    uint32_t key_type)
{
    struct nftnl_set *s = nftnl_set_alloc();
    if (!s)
        abort();
    nftnl_set_set_str(s, NFTNL_SET_TABLE, TABLE);
    nftnl_set_set_str(s, NFTNL_SET_NAME, name);
    nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
    nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, key_len);
    nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, key_type);
    nftnl_set_set_u32(s, NFTNL_SET_ID, id);
    struct nlmsghdr *nh = batch_msg(&pl->bt, NFT_MSG_NEWSET);
    nftnl_set_nlmsg_build_payload(nh, s);
    mnl_nlmsg_batch_next(pl->bt.b);
    nftnl_set_free(s);
}

static void add_chain(plan_t *pl, const char *name, const char *type, int prio)
{
    struct nftnl_chain *c = nftnl_chain_alloc();
    if (!c)
        abort();
    nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, TABLE);
    nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
    if (type) {
        nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, NF_INET_LOCAL_OUT);
        nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, prio);
        nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, type);
        nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
    }
    struct nlmsghdr *nh = batch_msg(&pl->bt, NFT_MSG_NEWCHAIN);
    nftnl_chain_nlmsg_build_payload(nh, c);
    mnl_nlmsg_batch_next(pl->bt.b);
    nftnl_chain_free(c);
}

/* nft's datatype numbers, for the sets' key types (what `nft list` shows). */
#define TYPE_IPADDR 7
#define TYPE_IP6ADDR 8
#define TYPE_INET_SERVICE 13
#define TYPE_BITS 6

static const char *const set_names[4] = {"np4", "np6", "na4", "na6"};

/* Resolved names with a port: address . port, in one lookup over the
 * address in reg 1 and the port right after it. */
static void rule_name_ports(plan_t *pl, int family)
{
    struct nftnl_rule *r = rule_new("decide");
    match_family(r, family);
    match_tcp(r);
    load_daddr(r, family);
    payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2,
            family == AF_INET ? NFT_REG32_01 : NFT_REG32_04);
    int i = family == AF_INET ? 0 : 1;
    lookup(r, NFT_REG_1, set_names[i], pl->set_id[i]);
    verdict(r, NFT_JUMP, "allowed");
    rule_emit(pl, r);
}

static void rule_name_any(plan_t *pl, int family)
{
    struct nftnl_rule *r = rule_new("decide");
    match_family(r, family);
    match_tcp(r);
    load_daddr(r, family);
    int i = family == AF_INET ? 2 : 3;
    lookup(r, NFT_REG_1, set_names[i], pl->set_id[i]);
    verdict(r, NFT_JUMP, "allowed");
    rule_emit(pl, r);
}

static void rule_cidr(plan_t *pl, const egress_rule_t *rule)
{
    struct nftnl_rule *r = rule_new("decide");
    match_family(r, rule->family);
    match_tcp(r);
    match_net(r, rule->family, rule->addr, rule->prefix);
    if (rule->port)
        match_dport(r, rule->port);
    verdict(r, NFT_JUMP, "allowed");
    rule_emit(pl, r);
}

static void rule_jump_net(plan_t *pl, int family, const uint8_t *net, unsigned prefix,
                          int v, const char *chain)
{
    struct nftnl_rule *r = rule_new("decide");
    match_family(r, family);
    match_net(r, family, net, prefix);
    verdict(r, v, chain);
    rule_emit(pl, r);
}

int egress__nft_install(struct mnl_socket *nl, const egress_policy_t *policy,
                        const egress__own_t *own, size_t n_own, unsigned max_conns, bool ipv6)
{
    plan_t pl;
    memset(&pl, 0, sizeof pl);
    batch_start(&pl.bt);
    for (int i = 0; i < 4; i++)
        pl.set_id[i] = (uint32_t)i + 1;

    struct nftnl_table *t = nftnl_table_alloc();
    nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
    nftnl_table_set_str(t, NFTNL_TABLE_NAME, TABLE);
    struct nlmsghdr *nh = batch_msg(&pl.bt, NFT_MSG_NEWTABLE);
    nftnl_table_nlmsg_build_payload(nh, t);
    mnl_nlmsg_batch_next(pl.bt.b);
    nftnl_table_free(t);

    add_set(&pl, "np4", 1, 8, (TYPE_IPADDR << TYPE_BITS) | TYPE_INET_SERVICE);
    add_set(&pl, "np6", 2, 20, (TYPE_IP6ADDR << TYPE_BITS) | TYPE_INET_SERVICE);
    add_set(&pl, "na4", 3, 4, TYPE_IPADDR);
    add_set(&pl, "na6", 4, 16, TYPE_IP6ADDR);
    add_chain(&pl, "allowed", NULL, 0);
    add_chain(&pl, "deny", NULL, 0);
    add_chain(&pl, "decide", "filter", -150);
    add_chain(&pl, "nat", "nat", -100);

    /* allowed: the bound first, then the mark the nat chain looks for. */
    struct nftnl_rule *r = rule_new("allowed");
    match_tcp(r);
    struct nftnl_expr *e = expr("connlimit");
    nftnl_expr_set_u32(e, NFTNL_EXPR_CONNLIMIT_COUNT, max_conns);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CONNLIMIT_FLAGS, NFT_CONNLIMIT_F_INV);
    add(r, e);
    log_group(r, "limit");
    reject(r, NFT_REJECT_TCP_RST, 0);
    rule_emit(&pl, r);
    r = rule_new("allowed");
    uint32_t mark = EGRESS__MARK;
    immediate(r, NFT_REG_1, &mark, 4);
    e = expr("meta");
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, NFT_META_MARK);
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_SREG, NFT_REG_1);
    add(r, e);
    verdict(r, NF_ACCEPT, NULL);
    rule_emit(&pl, r);

    /* deny: logged, then refused at once. */
    r = rule_new("deny");
    match_tcp(r);
    log_group(r, "deny");
    reject(r, NFT_REJECT_TCP_RST, 0);
    rule_emit(&pl, r);
    r = rule_new("deny");
    log_group(r, "deny");
    reject(r, NFT_REJECT_ICMPX_UNREACH, NFT_REJECT_ICMPX_PORT_UNREACH);
    rule_emit(&pl, r);

    /* decide: first, the sandbox's loopback answering a connection with a
     * reset because nothing listens there (RST|ACK, sequence 0: the answer
     * to a SYN, not an abort). The loopback stays the sandbox's own unless
     * a rule names it, so a connection there that the rules did not take
     * out and nothing inside took is, for the function, egress refused:
     * logged as "closed" with the refused destination as its source. */
    for (int fam = 0; fam < (ipv6 ? 2 : 1); fam++) {
        int family = fam == 0 ? AF_INET : AF_INET6;
        uint8_t rst_ack = 0x14;
        uint32_t seq0 = 0;
        r = rule_new("decide");
        match_family(r, family);
        match_tcp(r);
        payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 13, 1, NFT_REG_1);
        cmp(r, NFT_REG_1, NFT_CMP_EQ, &rst_ack, 1);
        payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 4, 4, NFT_REG_1);
        cmp(r, NFT_REG_1, NFT_CMP_EQ, &seq0, 4);
        payload(r, NFT_PAYLOAD_NETWORK_HEADER, family == AF_INET ? 12 : 8, addr_len(family),
                NFT_REG_1);
        if (family == AF_INET) {
            uint8_t mask[4] = {255, 0, 0, 0}, net[4] = {127, 0, 0, 0};
            bitwise_and(r, NFT_REG_1, mask, 4);
            cmp(r, NFT_REG_1, NFT_CMP_EQ, net, 4);
        } else {
            cmp(r, NFT_REG_1, NFT_CMP_EQ, &in6addr_loopback, 16);
        }
        log_group(r, "closed");
        verdict(r, NF_ACCEPT, NULL);
        rule_emit(&pl, r);
    }

    r = rule_new("decide");
    uint32_t est = NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED);
    uint32_t zero = 0;
    e = expr("ct");
    nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
    add(r, e);
    bitwise_and(r, NFT_REG_1, &est, 4);
    cmp(r, NFT_REG_1, NFT_CMP_NEQ, &zero, 4);
    verdict(r, NF_ACCEPT, NULL);
    rule_emit(&pl, r);

    /* The platform's own doors inside stay inside whatever the rules say:
     * the Runtime API and the resolver, on the sandbox's 127.0.0.1. */
    static const struct {
        uint8_t proto;
        uint16_t port;
    } doors[] = {{IPPROTO_TCP, SANDBOX_API_PORT}, {IPPROTO_UDP, EGRESS__DNS_PORT},
                 {IPPROTO_TCP, EGRESS__RELAY_PORT}};
    for (size_t i = 0; i < sizeof doors / sizeof doors[0]; i++) {
        uint8_t lo[4] = {127, 0, 0, 1};
        r = rule_new("decide");
        match_family(r, AF_INET);
        load_daddr(r, AF_INET);
        cmp(r, NFT_REG_1, NFT_CMP_EQ, lo, 4);
        meta_load(r, NFT_META_L4PROTO, NFT_REG_1);
        cmp(r, NFT_REG_1, NFT_CMP_EQ, &doors[i].proto, 1);
        match_dport(r, doors[i].port);
        verdict(r, NF_ACCEPT, NULL);
        rule_emit(&pl, r);
    }

    bool any_rule = false, names_port = false, names_any = false;
    for (size_t i = 0; i < policy->n; i++) {
        const egress_rule_t *ru = &policy->rules[i];
        if (ru->kind == EGRESS_RULE_ANY)
            any_rule = true;
        else if (ru->kind == EGRESS_RULE_HOST || ru->kind == EGRESS_RULE_WILDCARD) {
            if (ru->port)
                names_port = true;
            else
                names_any = true;
        }
    }
    if (names_port) {
        rule_name_ports(&pl, AF_INET);
        if (ipv6)
            rule_name_ports(&pl, AF_INET6);
    }
    for (size_t i = 0; i < policy->n; i++) {
        const egress_rule_t *ru = &policy->rules[i];
        if (ru->kind == EGRESS_RULE_CIDR && ru->port && (ipv6 || ru->family == AF_INET))
            rule_cidr(&pl, ru);
    }
    for (size_t i = 0; i < n_own; i++) {
        if (own[i].family == AF_INET6 && !ipv6)
            continue;
        r = rule_new("decide");
        match_family(r, own[i].family);
        match_tcp(r);
        load_daddr(r, own[i].family);
        cmp(r, NFT_REG_1, NFT_CMP_EQ, own[i].addr, addr_len(own[i].family));
        match_dport(r, own[i].port);
        verdict(r, NFT_JUMP, "deny");
        rule_emit(&pl, r);
    }
    if (names_any) {
        rule_name_any(&pl, AF_INET);
        if (ipv6)
            rule_name_any(&pl, AF_INET6);
    }
    for (size_t i = 0; i < policy->n; i++) {
        const egress_rule_t *ru = &policy->rules[i];
        if (ru->kind == EGRESS_RULE_CIDR && !ru->port && (ipv6 || ru->family == AF_INET))
            rule_cidr(&pl, ru);
    }
    /* The sandbox's own addresses. */
    static const struct {
        int family;
        uint8_t addr[16];
        unsigned prefix;
    } own_nets[] = {
        {AF_INET, {127}, 8},
        {AF_INET, {10, 255, 255, 2}, 32},
        {AF_INET6, {[15] = 1}, 128},
        {AF_INET6, {0xfd, 0x00, 0x6d, 0x66, [15] = 2}, 128},
    };
    for (size_t i = 0; i < sizeof own_nets / sizeof own_nets[0]; i++)
        if (own_nets[i].family == AF_INET || ipv6)
            rule_jump_net(&pl, own_nets[i].family, own_nets[i].addr, own_nets[i].prefix,
                          NF_ACCEPT, NULL);
    if (any_rule) {
        /* What "*" never reaches: the policy's own table of internal
         * ranges, the one the relay checks too. */
        egress_net_t nets[64];
        size_t n = egress_internal_networks(nets, sizeof nets / sizeof nets[0]);
        for (size_t i = 0; i < n && i < sizeof nets / sizeof nets[0]; i++)
            if (nets[i].family == AF_INET || ipv6)
                rule_jump_net(&pl, nets[i].family, nets[i].addr, nets[i].prefix, NFT_JUMP,
                              "deny");
        for (size_t i = 0; i < policy->n; i++) {
            const egress_rule_t *ru = &policy->rules[i];
            if (ru->kind != EGRESS_RULE_ANY)
                continue;
            r = rule_new("decide");
            match_tcp(r);
            if (ru->port)
                match_dport(r, ru->port);
            verdict(r, NFT_JUMP, "allowed");
            rule_emit(&pl, r);
        }
    }
    r = rule_new("decide");
    verdict(r, NFT_JUMP, "deny");
    rule_emit(&pl, r);

    /* nat: the marked go to the relay. */
    r = rule_new("nat");
    meta_load(r, NFT_META_MARK, NFT_REG_1);
    cmp(r, NFT_REG_1, NFT_CMP_EQ, &mark, 4);
    match_tcp(r);
    uint16_t relay = htons(EGRESS__RELAY_PORT);
    immediate(r, NFT_REG_1, &relay, 2);
    e = expr("redir");
    nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MIN, NFT_REG_1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED);
    add(r, e);
    rule_emit(&pl, r);

    return batch_send(nl, &pl.bt);
}

int egress__nft_allow(struct mnl_socket *nl, int family, const uint8_t *addr,
                      const uint16_t *ports, size_t n_ports, bool any_port)
{
    batch_t bt;
    batch_start(&bt);
    uint32_t alen = addr_len(family);
    for (int pass = 0; pass < 2; pass++) {
        bool with_ports = pass == 0;
        if (with_ports ? n_ports == 0 : !any_port)
            continue;
        struct nftnl_set *s = nftnl_set_alloc();
        nftnl_set_set_str(s, NFTNL_SET_TABLE, TABLE);
        nftnl_set_set_str(s, NFTNL_SET_NAME,
                          set_names[(with_ports ? 0 : 2) + (family == AF_INET ? 0 : 1)]);
        nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
        size_t count = with_ports ? n_ports : 1;
        for (size_t i = 0; i < count; i++) {
            uint8_t key[20] = {0};
            memcpy(key, addr, alen);
            uint32_t klen = alen;
            if (with_ports) {
                uint16_t be = htons(ports[i]);
                memcpy(key + alen, &be, 2);
                klen = alen + 4;
            }
            struct nftnl_set_elem *el = nftnl_set_elem_alloc();
            nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY, key, klen);
            nftnl_set_elem_add(s, el);
        }
        struct nlmsghdr *nh = batch_msg(&bt, NFT_MSG_NEWSETELEM);
        nftnl_set_elems_nlmsg_build_payload(nh, s);
        mnl_nlmsg_batch_next(bt.b);
        nftnl_set_free(s);
    }
    return batch_send(nl, &bt);
}

struct mnl_socket *egress__nft_open(void)
{
    struct mnl_socket *nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
    if (!nl)
        return NULL;
    if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
        int e = errno;
        mnl_socket_close(nl);
        errno = e;
        return NULL;
    }
    return nl;
}

/* ---- NFLOG ------------------------------------------------------------------ */

static int nflog_config(int fd, uint8_t pf, uint16_t group, const void *attr, uint16_t atype,
                        uint16_t alen)
{
    char buf[256];
    struct nlmsghdr *nh = mnl_nlmsg_put_header(buf);
    nh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
    nh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    nh->nlmsg_seq = 1;
    struct nfgenmsg *g = mnl_nlmsg_put_extra_header(nh, sizeof *g);
    g->nfgen_family = pf;
    g->version = NFNETLINK_V0;
    g->res_id = htons(group);
    mnl_attr_put(nh, atype, alen, attr);
    return egress__netlink_request(fd, buf, nh->nlmsg_len);
}

int egress__netlink_request(int fd, const void *msg, size_t len)
{
    struct sockaddr_nl k = {.nl_family = AF_NETLINK};
    if (sendto(fd, msg, len, 0, (struct sockaddr *)&k, sizeof k) < 0)
        return -errno;
    char rbuf[512];
    for (;;) {
        ssize_t n = recv(fd, rbuf, sizeof rbuf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        const struct nlmsghdr *rh = (const struct nlmsghdr *)rbuf;
        if (n >= (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)) && rh->nlmsg_type == NLMSG_ERROR)
            return ((const struct nlmsgerr *)NLMSG_DATA(rh))->error;
    }
}

int egress__nflog_open(void)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
    if (fd < 0)
        return -errno;
    struct sockaddr_nl local = {.nl_family = AF_NETLINK};
    if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    struct nfulnl_msg_config_cmd bind_cmd = {.command = NFULNL_CFG_CMD_BIND};
    struct nfulnl_msg_config_mode mode = {.copy_range = htonl(64), .copy_mode = NFULNL_COPY_PACKET};
    int r = nflog_config(fd, AF_UNSPEC, EGRESS__NFLOG_GROUP, &bind_cmd, NFULA_CFG_CMD,
                         sizeof bind_cmd);
    if (r == 0)
        r = nflog_config(fd, AF_UNSPEC, EGRESS__NFLOG_GROUP, &mode, NFULA_CFG_MODE, sizeof mode);
    /* Each denial at once: by default the kernel gathers up to 100 of them
     * or a second's worth, and the log line would trail the call. */
    uint32_t one = htonl(1);
    if (r == 0)
        r = nflog_config(fd, AF_UNSPEC, EGRESS__NFLOG_GROUP, &one, NFULA_CFG_QTHRESH, sizeof one);
    if (r < 0) {
        close(fd);
        return r;
    }
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    return fd;
}

int egress__nflog_parse(const uint8_t *buf, size_t len, size_t *off, egress__denial_t *out)
{
    while (*off + sizeof(struct nlmsghdr) <= len) {
        const struct nlmsghdr *nh = (const struct nlmsghdr *)(buf + *off);
        if (nh->nlmsg_len < sizeof *nh || nh->nlmsg_len > len - *off)
            return 0;
        /* Netlink pads between messages, not after the last: stop at len. */
        size_t next = *off + NLMSG_ALIGN(nh->nlmsg_len);
        *off = next < len ? next : len;
        if (nh->nlmsg_type != ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET))
            continue;
        size_t hdr = NLMSG_LENGTH(sizeof(struct nfgenmsg));
        if (nh->nlmsg_len < hdr)
            continue;
        memset(out, 0, sizeof *out);
        const uint8_t *pkt = NULL;
        size_t pkt_len = 0;
        size_t a = NLMSG_ALIGN(hdr);
        while (a + sizeof(struct nlattr) <= nh->nlmsg_len) {
            const struct nlattr *at = (const struct nlattr *)((const uint8_t *)nh + a);
            if (at->nla_len < sizeof *at || at->nla_len > nh->nlmsg_len - a)
                break;
            const uint8_t *data = (const uint8_t *)at + NLA_HDRLEN;
            size_t dlen = at->nla_len - NLA_HDRLEN;
            switch (at->nla_type & NLA_TYPE_MASK) {
            case NFULA_PREFIX: {
                size_t n = strnlen((const char *)data, dlen);
                if (n >= sizeof out->prefix)
                    n = sizeof out->prefix - 1;
                memcpy(out->prefix, data, n);
                break;
            }
            case NFULA_PAYLOAD:
                pkt = data;
                pkt_len = dlen;
                break;
            }
            a += NLA_ALIGN(at->nla_len);
        }
        if (!pkt || pkt_len < 20)
            continue;
        size_t l4;
        if ((pkt[0] >> 4) == 4) {
            out->family = AF_INET;
            memcpy(out->addr, pkt + 16, 4);
            memcpy(out->saddr, pkt + 12, 4);
            out->proto = pkt[9];
            l4 = (size_t)(pkt[0] & 0xf) * 4;
        } else if ((pkt[0] >> 4) == 6 && pkt_len >= 40) {
            out->family = AF_INET6;
            memcpy(out->addr, pkt + 24, 16);
            memcpy(out->saddr, pkt + 8, 16);
            out->proto = pkt[6];
            l4 = 40;
        } else {
            continue;
        }
        if ((out->proto == IPPROTO_TCP || out->proto == IPPROTO_UDP) && pkt_len >= l4 + 4) {
            out->sport = (uint16_t)((pkt[l4] << 8) | pkt[l4 + 1]);
            out->port = (uint16_t)((pkt[l4 + 2] << 8) | pkt[l4 + 3]);
        }
        return 1;
    }
    return 0;
}
