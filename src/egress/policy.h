/* A function's egress policy: the rules naming where its sandbox may
 * connect (DESIGN.md, docs/egress.md), parsed and matched. Pure: no I/O
 * but egress_hosts_load's read of its file.
 *
 * A rule is one of
 *   HOST, HOST:PORT        a DNS name ("api.example.com") or a wildcard
 *                          ("*.example.com": any name below example.com,
 *                          not example.com itself)
 *   CIDR, CIDR:PORT        "203.0.113.0/24", "203.0.113.7" (a /32),
 *                          "203.0.113.0/24:443", "2001:db8::/32",
 *                          "[2001:db8::/32]:443", "[2001:db8::1]:443"
 *   *, *:PORT              any public address
 * Ports are TCP, 1–65535, decimal; no port means any. Names are matched
 * without regard to case and a trailing dot.
 *
 * The grammar, strictly (a rule is a security boundary, so what it accepts
 * has one meaning):
 * - A name has labels of letters, digits, '-' (not first or last) and '_',
 *   1–63 characters each, at most 253 in all; it is kept lower case
 *   without its trailing dot. A name whose last label is a number
 *   ("1.2.3", "127.1", "0x7f000001") is refused: resolvers read those as
 *   IPv4 addresses. '*' stands only alone or as a whole first label.
 * - IPv4 is four decimal numbers 0–255 without leading zeros. A network
 *   with host bits set ("10.1.2.3/8") is an error that suggests the
 *   network ("did you mean 10.0.0.0/8?"), not silently normalised: it is
 *   as likely a typo for a single address. A whole-length prefix is the
 *   address alone ("10.0.0.1/32" is "10.0.0.1").
 * - Bare IPv6 ("2001:db8::/32", "::1") has no port; with a port it goes in
 *   brackets ("[::1]:8443"). IPv6 is shown as inet_ntop writes it.
 * - A CIDR rule matches every address inside it, internal ones included:
 *   naming 10.0.0.0/8 is how a function reaches a private network. An
 *   IPv4-mapped IPv6 address (::ffff:a.b.c.d) matches as its IPv4 address.
 * - A rule is exactly its text: no white space, no control characters.
 *   Lists (egress_policy_from_list) trim white space around each rule.
 * - A policy holds each rule once: two spellings of one rule ("API.x.com."
 *   and "api.x.com") keep the first place either had. */
#ifndef MAYFLY_EGRESS_POLICY_H
#define MAYFLY_EGRESS_POLICY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define EGRESS_MAX_RULES 64
#define EGRESS_NAME_MAX 253
/* Room for any rule's canonical text, with its NUL. */
#define EGRESS_RULE_TEXT_MAX 272

typedef enum {
    EGRESS_RULE_HOST = 1,    /* host: the name, lower case, no trailing dot */
    EGRESS_RULE_WILDCARD,    /* host: the suffix after "*.", e.g. "example.com" */
    EGRESS_RULE_CIDR,        /* family, addr (network, host bits zero), prefix */
    EGRESS_RULE_ANY,         /* "*": public addresses only */
} egress_rule_kind_t;

typedef struct egress_rule {
    egress_rule_kind_t kind;
    char host[EGRESS_NAME_MAX + 1];
    int family;              /* AF_INET or AF_INET6, for CIDR */
    uint8_t addr[16];        /* 4 bytes used for AF_INET */
    unsigned prefix;         /* 0–32 or 0–128 */
    uint16_t port;           /* 0: any port */
} egress_rule_t;

typedef struct egress_policy {
    egress_rule_t *rules;    /* owned; NULL when n is 0 */
    size_t n;
} egress_policy_t;

/* Parses one rule. On failure returns -EINVAL with err naming the rule
 * and what is wrong: `bad egress rule "x:99999": port must be 1-65535`. */
int egress_rule_parse(const char *text, egress_rule_t *out, mf_error_t *err);
/* The rule's canonical text (what the API shows back), e.g. "*.example.com:443",
 * "203.0.113.0/24", "[2001:db8::/32]:443", "*". Parsing it gives the same
 * rule back. EGRESS_RULE_TEXT_MAX bytes always suffice. */
void egress_rule_format(const egress_rule_t *rule, char *out, size_t outlen);

/* From a JSON array of strings (at most EGRESS_MAX_RULES). Errors are
 * -EINVAL naming the bad element, counted from 0:
 * "egress: must be an array of at most 64 rules",
 * "egress: element 2 is not a string",
 * "egress[1]: bad egress rule \"x:0\": port must be 1-65535". */
int egress_policy_from_json(const json_t *rules, egress_policy_t *out, mf_error_t *err);
/* From a comma-separated list ("api.example.com:443, 10.0.0.0/8"), white
 * space around each rule trimmed; "" (or only white space) is the empty
 * policy, and an empty element ("a,,b", "a,") is an error. Errors as
 * egress_policy_from_json. */
int egress_policy_from_list(const char *list, egress_policy_t *out, mf_error_t *err);
/* A JSON array of the rules' canonical texts (a new reference). */
json_t *egress_policy_to_json(const egress_policy_t *p);
void egress_policy_free(egress_policy_t *p);

/* Whether a rule's name part matches name (any case, trailing dot ignored).
 * False for CIDR and ANY rules. */
bool egress_rule_matches_name(const egress_rule_t *rule, const char *name);
/* Whether family/addr lies in the rule's network. False for name rules;
 * for ANY, whether the address is public (!egress_addr_internal). */
bool egress_rule_matches_addr(const egress_rule_t *rule, int family, const void *addr);
/* Whether some rule allows resolving name: a HOST or WILDCARD rule matches it. */
bool egress_policy_allows_name(const egress_policy_t *p, const char *name);

/* Addresses `*` never matches: unspecified, loopback, link-local (with
 * 169.254.169.254), RFC 1918, shared (100.64/10), benchmark (198.18/15),
 * multicast, reserved (240/4, broadcast), IPv6 ULA (fc00::/7), link-local
 * (fe80::/10), multicast (ff00::/8), and IPv4-mapped/compatible IPv6
 * forms of any internal IPv4 address. */
bool egress_addr_internal(int family, const void *addr);

/* The same ranges as networks, for rules that can only match a prefix
 * (the kernel's): a range that embeds an IPv4 address (::ffff:0:0/96,
 * ::/96, 64:ff9b::/96, 2002::/16) is given whole, so matching these is
 * stricter than egress_addr_internal. Fills at most max; returns how many
 * there are. */
typedef struct egress_net {
    int family;
    uint8_t addr[16];
    unsigned prefix;
} egress_net_t;

size_t egress_internal_networks(egress_net_t *out, size_t max);
/* Which of those ranges holds the address, for a message: "loopback
 * (127.0.0.0/8)", "link-local, cloud metadata (169.254.0.0/16)"; an
 * IPv6 form of an IPv4 address is named by its IPv4 range. NULL for a
 * public address. */
const char *egress_addr_internal_range(int family, const void *addr);

/* Extra name → address entries (--egress-hosts FILE), in /etc/hosts
 * syntax: "ADDRESS NAME [NAME…]" per line, '#' starts a comment. */
typedef struct egress_hosts egress_hosts_t;

#define EGRESS_HOSTS_MAX_ADDRS 16

typedef struct egress_addr {
    int family;              /* AF_INET or AF_INET6 */
    uint8_t addr[16];
} egress_addr_t;

/* Errors name the file and line: "hosts.txt:3: not an address: x". Names
 * are checked as in rules (no wildcards); an address may be given for a
 * name on several lines, up to EGRESS_HOSTS_MAX_ADDRS. The file may be at
 * most 1 MiB. */
int egress_hosts_load(const char *path, egress_hosts_t **out, mf_error_t *err);
/* The addresses given for name (any case, trailing dot ignored), in file
 * order, at most max; returns how many (0: not in the file). */
size_t egress_hosts_lookup(const egress_hosts_t *h, const char *name, egress_addr_t *out,
                           size_t max);
void egress_hosts_free(egress_hosts_t *h);

#endif
