/* A function's egress policy: the rule grammar, canonical texts, matching,
 * the table of internal addresses `*` never reaches, and --egress-hosts.
 *
 * The parser is strict on purpose: a rule is a security boundary, so what
 * it accepts has exactly one meaning. Names are checked as DNS names (and
 * never as something a resolver would read as a number), addresses as the
 * kernel reads them, and anything else is refused with a message that names
 * the rule and says what is wrong. */
#include "egress/policy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/buf.h"
#include "core/cleanup.h"
#include "core/fs.h"
#include "core/map.h"
#include "core/xalloc.h"

#define EGRESS_LABEL_MAX 63
#define EGRESS_HOSTS_FILE_MAX (1u << 20)

/* The rule as it came, fit for a message: printable and at most 80
 * characters, so a megabyte of garbage does not fill a log line. */
#define SHOW(s) mf_error_show((s), 80, (char[96]){0}, 96)

static int bad_rule(mf_error_t *err, const char *text, const char *reason)
{
    return mf_error_plain(err, EINVAL, "bad egress rule \"%s\": %s", SHOW(text), reason);
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* ---- the parts of a rule -------------------------------------------------- */

/* A decimal number of at most max_digits digits, without a sign or
 * leading zeros ("0" itself is one), from min to max. */
static bool parse_decimal(const char *s, size_t len, size_t max_digits, unsigned min,
                          unsigned max, unsigned *out)
{
    if (len == 0 || len > max_digits || (s[0] == '0' && len > 1))
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i]))
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* A port: 1–65535. */
static bool parse_port(const char *s, size_t len, uint16_t *out)
{
    unsigned v;
    if (!parse_decimal(s, len, 5, 1, 65535, &v))
        return false;
    *out = (uint16_t)v;
    return true;
}

/* A prefix length: at most max. */
static bool parse_prefix(const char *s, size_t len, unsigned max, unsigned *out)
{
    return parse_decimal(s, len, 3, 0, max, out);
}

/* Dotted-quad IPv4 as the kernel and every resolver agree on it: four
 * decimal numbers 0–255 without leading zeros. inet_aton's other forms
 * ("127.1", "0x7f.1", "017.0.0.1") are refused, as they read differently
 * from one library to the next. */
static bool parse_ipv4(const char *s, size_t len, uint8_t out[4])
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part) {
            if (i >= len || s[i] != '.')
                return false;
            i++;
        }
        size_t start = i;
        unsigned v = 0;
        while (i < len && is_digit(s[i]) && i - start < 3)
            v = v * 10 + (unsigned)(s[i++] - '0');
        size_t n = i - start;
        if (n == 0 || v > 255 || (n > 1 && s[start] == '0'))
            return false;
        out[part] = (uint8_t)v;
    }
    return i == len;
}

static bool parse_ipv6(const char *s, size_t len, uint8_t out[16])
{
    char tmp[INET6_ADDRSTRLEN + 1];
    if (len == 0 || len >= sizeof tmp)
        return false;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    return inet_pton(AF_INET6, tmp, out) == 1;
}

/* The mask of byte i of an address for a prefix of that many bits. */
static uint8_t prefix_mask(size_t i, unsigned prefix)
{
    unsigned bit = (unsigned)i * 8;
    if (prefix >= bit + 8)
        return 0xff;
    if (prefix <= bit)
        return 0;
    return (uint8_t)(0xff << (8 - (prefix - bit)));
}

/* Whether the bits of addr past prefix are all zero. */
static bool host_bits_zero(const uint8_t *addr, size_t bytes, unsigned prefix)
{
    for (size_t i = 0; i < bytes; i++)
        if (addr[i] & (uint8_t)~prefix_mask(i, prefix))
            return false;
    return true;
}

static void clear_host_bits(uint8_t *addr, size_t bytes, unsigned prefix)
{
    for (size_t i = 0; i < bytes; i++)
        addr[i] &= prefix_mask(i, prefix);
}

static bool prefix_match(const uint8_t *a, const uint8_t *net, unsigned prefix)
{
    size_t whole = prefix / 8;
    if (memcmp(a, net, whole))
        return false;
    unsigned rest = prefix % 8;
    if (!rest)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[whole] & mask) == (net[whole] & mask);
}

/* Checks a DNS name (len bytes of s) and writes it lower case, without a
 * trailing dot, to out (EGRESS_NAME_MAX + 1 bytes). Labels are letters,
 * digits, '-' (not first or last) and '_' (SRV-style and some internal
 * names use it), 1–63 each; the whole name at most 253. A name whose last
 * label is a number (all digits, or 0x and hex digits) is refused: no top
 * level domain is one, and resolvers read such names as IPv4 addresses
 * ("127.1", "0x7f000001"), which would make a name rule an address rule.
 * On failure *reason says why. */
static bool check_name(const char *s, size_t len, char *out, const char **reason)
{
    if (len && s[len - 1] == '.')
        len--;
    if (len == 0) {
        *reason = "empty host name";
        return false;
    }
    if (len > EGRESS_NAME_MAX) {
        *reason = "host name longer than 253 characters";
        return false;
    }
    size_t label = 0;
    for (size_t i = 0; i <= len; i++) {
        char c = i < len ? lower(s[i]) : '.';
        if (c == '.') {
            if (label == 0) {
                *reason = "empty label in the host name";
                return false;
            }
            if (out[i - 1] == '-' || out[i - label] == '-') {
                *reason = "a label of the host name starts or ends with '-'";
                return false;
            }
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || is_digit(c) || c == '-' || c == '_') {
            if (++label > EGRESS_LABEL_MAX) {
                *reason = "a label of the host name is longer than 63 characters";
                return false;
            }
        } else if (c == '*') {
            *reason = "'*' is allowed only as a whole first label (*.example.com) or alone";
            return false;
        } else {
            *reason = "a host name has only letters, digits, '-', '_' and dots";
            return false;
        }
        if (i < len)
            out[i] = c;
    }
    out[len] = '\0';
    const char *last = strrchr(out, '.');
    last = last ? last + 1 : out;
    bool numeric = strspn(last, "0123456789") == strlen(last);
    if (!numeric && last[0] == '0' && last[1] == 'x')
        numeric = strspn(last + 2, "0123456789abcdef") == strlen(last + 2);
    if (numeric) {
        *reason = "not a host name (it ends in a number) nor an IPv4 address "
                  "(four numbers 0-255 without leading zeros)";
        return false;
    }
    return true;
}

/* ADDR or ADDR/PREFIX of family into the rule. Host bits set are an error
 * rather than silently cleared: "10.1.2.3/8" is more likely a typo for a
 * /32 or for 10.0.0.0/8 than a wish for all of 10/8. */
static int parse_cidr(const char *text, const char *s, size_t len, int family, egress_rule_t *out,
                      mf_error_t *err)
{
    const char *slash = memchr(s, '/', len);
    size_t alen = slash ? (size_t)(slash - s) : len;
    unsigned max = family == AF_INET ? 32 : 128;
    memset(out->addr, 0, sizeof out->addr);
    bool ok = family == AF_INET ? parse_ipv4(s, alen, out->addr) : parse_ipv6(s, alen, out->addr);
    if (!ok)
        return bad_rule(err, text,
                        family == AF_INET
                            ? "not an IPv4 address (four numbers 0-255 without leading zeros)"
                            : "not an IPv6 address");
    out->prefix = max;
    if (slash && !parse_prefix(slash + 1, len - alen - 1, max, &out->prefix))
        return bad_rule(err, text,
                        family == AF_INET ? "the prefix length must be 0-32"
                                          : "the prefix length must be 0-128");
    size_t bytes = family == AF_INET ? 4 : 16;
    if (!host_bits_zero(out->addr, bytes, out->prefix)) {
        uint8_t net[16];
        memcpy(net, out->addr, sizeof net);
        clear_host_bits(net, bytes, out->prefix);
        char addr[INET6_ADDRSTRLEN], reason[128];
        inet_ntop(family, net, addr, sizeof addr);
        snprintf(reason, sizeof reason, "host bits set; did you mean %s/%u?", addr, out->prefix);
        return bad_rule(err, text, reason);
    }
    out->kind = EGRESS_RULE_CIDR;
    out->family = family;
    return 0;
}

int egress_rule_parse(const char *text, egress_rule_t *out, mf_error_t *err)
{
    memset(out, 0, sizeof *out);
    size_t len = strlen(text);
    if (len == 0)
        return bad_rule(err, text, "empty");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c <= ' ' || c >= 0x7f)
            return bad_rule(err, text,
                            c == ' ' || c == '\t'
                                ? "contains white space"
                                : "contains a character that is not printable ASCII "
                                  "(write international names in "
                                  "punycode, xn--...)");
    }

    /* [IPv6 or IPv6/PREFIX] with an optional :PORT. */
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close)
            return bad_rule(err, text, "missing ']'");
        if (close[1] && close[1] != ':')
            return bad_rule(err, text, "expected ':PORT' after ']'");
        if (close[1] == ':' && !parse_port(close + 2, strlen(close + 2), &out->port))
            return bad_rule(err, text, "port must be 1-65535");
        size_t alen = (size_t)(close - text - 1);
        if (!memchr(text + 1, ':', alen))
            return bad_rule(err, text, "brackets hold an IPv6 address only");
        return parse_cidr(text, text + 1, alen, AF_INET6, out, err);
    }

    /* Two colons or more, without brackets: a bare IPv6 address or
     * network, which cannot carry a port (its last group would read as one). */
    const char *colon = strchr(text, ':');
    if (colon && strchr(colon + 1, ':')) {
        const char *slash = strchr(text, '/');
        if (slash && strchr(slash, ':'))
            return bad_rule(err, text,
                            "an IPv6 network with a port goes in brackets: [2001:db8::/32]:443");
        return parse_cidr(text, text, len, AF_INET6, out, err);
    }

    size_t hlen = len;
    if (colon) {
        hlen = (size_t)(colon - text);
        if (!parse_port(colon + 1, len - hlen - 1, &out->port))
            return bad_rule(err, text, "port must be 1-65535");
    }
    if (hlen == 0)
        return bad_rule(err, text, "nothing before the port");

    if (hlen == 1 && text[0] == '*') {
        out->kind = EGRESS_RULE_ANY;
        return 0;
    }

    /* Digits, dots and an optional /PREFIX: an IPv4 address or network,
     * never a name. */
    if (strspn(text, "0123456789./") >= hlen && strcspn(text, "0123456789") < hlen)
        return parse_cidr(text, text, hlen, AF_INET, out, err);
    if (memchr(text, '/', hlen))
        return bad_rule(err, text, "a prefix length goes only after an IP address");

    const char *name = text;
    size_t nlen = hlen;
    out->kind = EGRESS_RULE_HOST;
    if (hlen >= 2 && text[0] == '*' && text[1] == '.') {
        name += 2;
        nlen -= 2;
        out->kind = EGRESS_RULE_WILDCARD;
        if (nlen == 0 || (nlen == 1 && name[0] == '.'))
            return bad_rule(err, text, "nothing after '*.'");
    }
    const char *reason;
    if (!check_name(name, nlen, out->host, &reason))
        return bad_rule(err, text, reason);
    return 0;
}

void egress_rule_format(const egress_rule_t *rule, char *out, size_t outlen)
{
    char host[EGRESS_RULE_TEXT_MAX];
    switch (rule->kind) {
    case EGRESS_RULE_HOST: snprintf(host, sizeof host, "%s", rule->host); break;
    case EGRESS_RULE_WILDCARD: snprintf(host, sizeof host, "*.%s", rule->host); break;
    case EGRESS_RULE_ANY: snprintf(host, sizeof host, "*"); break;
    case EGRESS_RULE_CIDR: {
        char addr[INET6_ADDRSTRLEN] = "?";
        inet_ntop(rule->family, rule->addr, addr, sizeof addr);
        bool whole = rule->prefix == (rule->family == AF_INET ? 32u : 128u);
        bool brackets = rule->family == AF_INET6 && rule->port;
        char prefix[8] = "";
        if (!whole)
            snprintf(prefix, sizeof prefix, "/%u", rule->prefix);
        snprintf(host, sizeof host, "%s%s%s%s", brackets ? "[" : "", addr, prefix,
                 brackets ? "]" : "");
        break;
    }
    default: snprintf(host, sizeof host, "?"); break;
    }
    if (rule->port)
        snprintf(out, outlen, "%s:%u", host, (unsigned)rule->port);
    else
        snprintf(out, outlen, "%s", host);
}

/* ---- policies ------------------------------------------------------------- */

/* Appends a rule unless the policy has the same one already: two spellings
 * of a rule ("API.example.com." and "api.example.com") are one rule. */
static void policy_add(egress_policy_t *p, const egress_rule_t *rule)
{
    char text[EGRESS_RULE_TEXT_MAX], other[EGRESS_RULE_TEXT_MAX];
    egress_rule_format(rule, text, sizeof text);
    for (size_t i = 0; i < p->n; i++) {
        egress_rule_format(&p->rules[i], other, sizeof other);
        if (!strcmp(text, other))
            return;
    }
    p->rules = xrealloc(p->rules, (p->n + 1) * sizeof *p->rules);
    p->rules[p->n++] = *rule;
}

int egress_policy_from_json(const json_t *rules, egress_policy_t *out, mf_error_t *err)
{
    *out = (egress_policy_t){NULL, 0};
    if (!json_is_array(rules) || json_array_size(rules) > EGRESS_MAX_RULES)
        return mf_error_plain(err, EINVAL, "egress: must be an array of at most %d rules",
                              EGRESS_MAX_RULES);
    egress_policy_t p = {NULL, 0};
    for (size_t i = 0; i < json_array_size(rules); i++) {
        const json_t *v = json_array_get(rules, i);
        if (!json_is_string(v)) {
            egress_policy_free(&p);
            return mf_error_plain(err, EINVAL, "egress: element %zu is not a string", i);
        }
        const char *s = json_string_value(v);
        egress_rule_t rule;
        int rc = strlen(s) != json_string_length(v) ? bad_rule(err, s, "contains a NUL character")
                                                    : egress_rule_parse(s, &rule, err);
        if (rc < 0) {
            egress_policy_free(&p);
            return mf_error_wrap(err, "egress[%zu]", i);
        }
        policy_add(&p, &rule);
    }
    *out = p;
    return 0;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int egress_policy_from_list(const char *list, egress_policy_t *out, mf_error_t *err)
{
    *out = (egress_policy_t){NULL, 0};
    const char *p = list;
    while (is_blank(*p))
        p++;
    if (!*p)
        return 0;
    egress_policy_t pol = {NULL, 0};
    size_t index = 0;
    for (const char *s = list;; index++) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        if (index >= EGRESS_MAX_RULES) {
            egress_policy_free(&pol);
            return mf_error_plain(err, EINVAL, "egress: must be a list of at most %d rules",
                                  EGRESS_MAX_RULES);
        }
        while (len && is_blank(*s))
            s++, len--;
        while (len && is_blank(s[len - 1]))
            len--;
        cleanup_free char *text = xstrndup(s, len);
        egress_rule_t rule;
        if (egress_rule_parse(text, &rule, err) < 0) {
            egress_policy_free(&pol);
            return mf_error_wrap(err, "egress[%zu]", index);
        }
        policy_add(&pol, &rule);
        if (!comma)
            break;
        s = comma + 1;
    }
    *out = pol;
    return 0;
}

json_t *egress_policy_to_json(const egress_policy_t *p)
{
    json_t *arr = json_array();
    char text[EGRESS_RULE_TEXT_MAX];
    for (size_t i = 0; p && i < p->n; i++) {
        egress_rule_format(&p->rules[i], text, sizeof text);
        json_array_append_new(arr, json_string(text));
    }
    return arr;
}

void egress_policy_free(egress_policy_t *p)
{
    if (!p)
        return;
    free(p->rules);
    p->rules = NULL;
    p->n = 0;
}

/* ---- matching --------------------------------------------------------------- */

/* name as rules hold names: lower case, no trailing dot. False when it
 * cannot be a name any rule holds. */
static bool fold_name(const char *name, char out[EGRESS_NAME_MAX + 1])
{
    size_t len = strlen(name);
    if (len && name[len - 1] == '.')
        len--;
    if (len == 0 || len > EGRESS_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        out[i] = lower(name[i]);
    out[len] = '\0';
    return true;
}

bool egress_rule_matches_name(const egress_rule_t *rule, const char *name)
{
    if (rule->kind != EGRESS_RULE_HOST && rule->kind != EGRESS_RULE_WILDCARD)
        return false;
    char folded[EGRESS_NAME_MAX + 1];
    if (!fold_name(name, folded))
        return false;
    if (rule->kind == EGRESS_RULE_HOST)
        return !strcmp(folded, rule->host);
    /* Below the suffix, at any depth, with a whole label in front: not the
     * suffix itself, and not "badexample.com" for "*.example.com". */
    size_t n = strlen(folded), sl = strlen(rule->host);
    return n > sl + 1 && folded[n - sl - 1] == '.' && !strcmp(folded + n - sl, rule->host);
}

bool egress_rule_matches_addr(const egress_rule_t *rule, int family, const void *addr)
{
    if (rule->kind == EGRESS_RULE_ANY)
        return (family == AF_INET || family == AF_INET6) && !egress_addr_internal(family, addr);
    if (rule->kind != EGRESS_RULE_CIDR)
        return false;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    uint8_t v4[4];
    if (family == rule->family)
        return prefix_match(addr, rule->addr, rule->prefix);
    /* The other family: an AF_INET6 socket connected to ::ffff:a.b.c.d
     * reaches a.b.c.d over IPv4, so an IPv4-mapped address is the same
     * destination as its IPv4 address, both ways. */
    if (family == AF_INET6 && rule->family == AF_INET && !memcmp(addr, mapped, 12)) {
        memcpy(v4, (const uint8_t *)addr + 12, 4);
        return prefix_match(v4, rule->addr, rule->prefix);
    }
    if (family == AF_INET && rule->family == AF_INET6 && rule->prefix >= 96 &&
        !memcmp(rule->addr, mapped, 12))
        return prefix_match(addr, rule->addr + 12, rule->prefix - 96);
    return false;
}

bool egress_policy_allows_name(const egress_policy_t *p, const char *name)
{
    for (size_t i = 0; p && i < p->n; i++)
        if (egress_rule_matches_name(&p->rules[i], name))
            return true;
    return false;
}

/* ---- internal addresses ----------------------------------------------------- */

/* Every range `*` does not reach, in one table (the IANA special-purpose
 * registries' non-global entries that can be connected to). An IPv6 range with
 * embed_at >= 0 holds an IPv4 address at that byte offset, and an address
 * in it is internal when that IPv4 address is (so ::ffff:127.0.0.1 is
 * loopback, ::ffff:8.8.8.8 is not). 2001:db8::/32 (documentation) is not
 * here, nor are IPv4's documentation networks, so tests and examples can
 * name them. */
typedef struct internal_range {
    int family;
    uint8_t net[16];
    unsigned prefix;
    int embed_at;
    const char *what;
} internal_range_t;

static const internal_range_t internal_ranges[] = {
    {AF_INET, {0}, 8, -1, "this network (0.0.0.0/8)"},
    {AF_INET, {10}, 8, -1, "private (10.0.0.0/8)"},
    {AF_INET, {100, 64}, 10, -1, "shared address space (100.64.0.0/10)"},
    {AF_INET, {127}, 8, -1, "loopback (127.0.0.0/8)"},
    {AF_INET, {169, 254}, 16, -1, "link-local, cloud metadata (169.254.0.0/16)"},
    {AF_INET, {172, 16}, 12, -1, "private (172.16.0.0/12)"},
    {AF_INET, {192, 0, 0}, 24, -1, "IETF protocol assignments (192.0.0.0/24)"},
    {AF_INET, {192, 168}, 16, -1, "private (192.168.0.0/16)"},
    {AF_INET, {198, 18}, 15, -1, "benchmarking (198.18.0.0/15)"},
    {AF_INET, {224}, 4, -1, "multicast (224.0.0.0/4)"},
    /* With the limited broadcast address, 255.255.255.255. */
    {AF_INET, {240}, 4, -1, "reserved (240.0.0.0/4)"},

    {AF_INET6, {0}, 128, -1, "unspecified (::)"},
    {AF_INET6, {[15] = 1}, 128, -1, "loopback (::1)"},
    {AF_INET6, {[10] = 0xff, [11] = 0xff}, 96, 12, "IPv4-mapped (::ffff:0:0/96)"},
    {AF_INET6, {0}, 96, 12, "IPv4-compatible (::/96)"},
    {AF_INET6, {0, 0x64, 0xff, 0x9b}, 96, 12, "NAT64 (64:ff9b::/96)"},
    {AF_INET6, {0, 0x64, 0xff, 0x9b, 0, 1}, 48, -1, "local NAT64 (64:ff9b:1::/48)"},
    {AF_INET6, {0x01}, 64, -1, "discard-only (100::/64)"},
    {AF_INET6, {0x20, 0x01, 0, 0}, 32, -1, "Teredo (2001::/32)"},
    {AF_INET6, {0x20, 0x02}, 16, 2, "6to4 (2002::/16)"},
    {AF_INET6, {0xfc}, 7, -1, "unique local (fc00::/7)"},
    {AF_INET6, {0xfe, 0x80}, 10, -1, "link-local (fe80::/10)"},
    {AF_INET6, {0xfe, 0xc0}, 10, -1, "site-local, deprecated (fec0::/10)"},
    {AF_INET6, {0xff}, 8, -1, "multicast (ff00::/8)"},
};

static bool embedded_ipv4(const uint8_t *a6, uint8_t out[4])
{
    for (size_t i = 0; i < sizeof internal_ranges / sizeof internal_ranges[0]; i++) {
        const internal_range_t *r = &internal_ranges[i];
        if (r->family == AF_INET6 && r->embed_at >= 0 && prefix_match(a6, r->net, r->prefix)) {
            memcpy(out, a6 + r->embed_at, 4);
            return true;
        }
    }
    return false;
}

const char *egress_addr_internal_range(int family, const void *addr)
{
    if (family != AF_INET && family != AF_INET6)
        return "not an IP address";
    const uint8_t *a = addr;
    const size_t n = sizeof internal_ranges / sizeof internal_ranges[0];
    if (family == AF_INET) {
        for (size_t i = 0; i < n; i++)
            if (internal_ranges[i].family == AF_INET &&
                prefix_match(a, internal_ranges[i].net, internal_ranges[i].prefix))
                return internal_ranges[i].what;
        return NULL;
    }
    /* The ranges of their own first: :: and ::1 lie in ::/96 too, where
     * their "embedded IPv4 addresses" would be read instead. */
    for (size_t i = 0; i < n; i++)
        if (internal_ranges[i].family == AF_INET6 && internal_ranges[i].embed_at < 0 &&
            prefix_match(a, internal_ranges[i].net, internal_ranges[i].prefix))
            return internal_ranges[i].what;
    uint8_t v4[4];
    if (embedded_ipv4(a, v4))
        return egress_addr_internal_range(AF_INET, v4);
    return NULL;
}

bool egress_addr_internal(int family, const void *addr)
{
    return egress_addr_internal_range(family, addr) != NULL;
}

size_t egress_internal_networks(egress_net_t *out, size_t max)
{
    const size_t n = sizeof internal_ranges / sizeof internal_ranges[0];
    for (size_t i = 0; i < n && i < max; i++) {
        out[i].family = internal_ranges[i].family;
        memcpy(out[i].addr, internal_ranges[i].net, sizeof out[i].addr);
        out[i].prefix = internal_ranges[i].prefix;
    }
    return n;
}
/* ---- --egress-hosts ---------------------------------------------------------- */

typedef struct hosts_entry {
    size_t n;
    egress_addr_t addrs[EGRESS_HOSTS_MAX_ADDRS];
} hosts_entry_t;

struct egress_hosts {
    map_t names; /* lower-case name → hosts_entry_t */
};

void egress_hosts_free(egress_hosts_t *h)
{
    if (!h)
        return;
    const char *key;
    void *value;
    for (size_t i = 0; map_next(&h->names, &i, &key, &value);)
        free(value);
    map_release(&h->names);
    free(h);
}

static int hosts_add(egress_hosts_t *h, const char *name, const egress_addr_t *addr,
                     const char *path, int lineno, mf_error_t *err)
{
    hosts_entry_t *e = map_get(&h->names, name);
    if (!e) {
        e = xcalloc(1, sizeof *e);
        map_put(&h->names, name, e);
    }
    for (size_t i = 0; i < e->n; i++)
        if (e->addrs[i].family == addr->family && !memcmp(e->addrs[i].addr, addr->addr, 16))
            return 0;
    if (e->n == EGRESS_HOSTS_MAX_ADDRS)
        return mf_error_plain(err, EINVAL, "%s:%d: %s has more than %d addresses", path, lineno,
                              name, EGRESS_HOSTS_MAX_ADDRS);
    e->addrs[e->n++] = *addr;
    return 0;
}

/* One line, comment and line end already cut off. */
static int hosts_line(egress_hosts_t *h, char *line, const char *path, int lineno, mf_error_t *err)
{
    static const char blanks[] = " \t\r\f\v";
    char *p = line + strspn(line, blanks);
    if (!*p)
        return 0;
    size_t alen = strcspn(p, blanks);
    char *word = p;
    p += alen;
    if (*p)
        *p++ = '\0';
    egress_addr_t addr = {0};
    if (alen <= INET6_ADDRSTRLEN && strchr(word, ':') && parse_ipv6(word, alen, addr.addr))
        addr.family = AF_INET6;
    else if (parse_ipv4(word, alen, addr.addr))
        addr.family = AF_INET;
    else
        return mf_error_plain(err, EINVAL, "%s:%d: not an address: %s", path, lineno, SHOW(word));

    int names = 0;
    for (;;) {
        p += strspn(p, blanks);
        if (!*p)
            break;
        size_t nlen = strcspn(p, blanks);
        word = p;
        p += nlen;
        if (*p)
            *p++ = '\0';
        char name[EGRESS_NAME_MAX + 1];
        const char *reason;
        if (!check_name(word, nlen, name, &reason))
            return mf_error_plain(err, EINVAL, "%s:%d: %s: %s", path, lineno, SHOW(word), reason);
        int rc = hosts_add(h, name, &addr, path, lineno, err);
        if (rc < 0)
            return rc;
        names++;
    }
    if (!names)
        return mf_error_plain(err, EINVAL, "%s:%d: an address without a name", path, lineno);
    return 0;
}

int egress_hosts_load(const char *path, egress_hosts_t **out, mf_error_t *err)
{
    *out = NULL;
    cleanup_buf buf_t text = BUF_INIT;
    int rc = fs_read_file(path, &text, EGRESS_HOSTS_FILE_MAX, err);
    if (rc == -EFBIG)
        return mf_error_plain(err, EFBIG, "%s: larger than 1 MiB", path);
    if (rc < 0)
        return rc;
    if (memchr(text.data, '\0', text.len))
        return mf_error_plain(err, EINVAL, "%s: contains a NUL byte: not a hosts file", path);
    egress_hosts_t *h = xcalloc(1, sizeof *h);
    int lineno = 0;
    for (char *line = text.data, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        if ((rc = hosts_line(h, line, path, lineno, err)) < 0) {
            egress_hosts_free(h);
            return rc;
        }
    }
    *out = h;
    return 0;
}

size_t egress_hosts_lookup(const egress_hosts_t *h, const char *name, egress_addr_t *out,
                           size_t max)
{
    char folded[EGRESS_NAME_MAX + 1];
    if (!h || !fold_name(name, folded))
        return 0;
    const hosts_entry_t *e = map_get(&h->names, folded);
    if (!e)
        return 0;
    size_t n = e->n < max ? e->n : max;
    memcpy(out, e->addrs, n * sizeof *out);
    return n;
}
