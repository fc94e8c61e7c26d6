/* The egress policy: every rule form and its canonical text, every error
 * and its message, lists and JSON arrays, name and address matching, the
 * internal ranges `*` never reaches (with IPv6 forms of IPv4 addresses),
 * and --egress-hosts files. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/cleanup.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/xalloc.h"
#include "egress/policy.h"
#include "tmpdir.h"

/* ---- helpers ------------------------------------------------------------------- */

/* Parses text, expecting success, and returns its canonical text. */
static const char *canon(const char *text, egress_rule_t *rule)
{
    static char out[EGRESS_RULE_TEXT_MAX];
    mf_error_t err = MF_ERROR_INIT;
    int rc = egress_rule_parse(text, rule, &err);
    if (rc != 0)
        fail_msg("`%s` did not parse: %s", text, err.msg);
    egress_rule_format(rule, out, sizeof out);
    /* The canonical text is a rule of its own, and the same one. */
    egress_rule_t again;
    rc = egress_rule_parse(out, &again, &err);
    if (rc != 0)
        fail_msg("canonical `%s` of `%s` did not parse: %s", out, text, err.msg);
    char out2[EGRESS_RULE_TEXT_MAX];
    egress_rule_format(&again, out2, sizeof out2);
    assert_string_equal(out, out2);
    assert_int_equal(again.kind, rule->kind);
    assert_int_equal(again.port, rule->port);
    return out;
}

/* Parses text, expecting -EINVAL with exactly the message want. */
static void refused(const char *text, const char *want)
{
    egress_rule_t rule;
    mf_error_t err = MF_ERROR_INIT;
    int rc = egress_rule_parse(text, &rule, &err);
    if (rc != -EINVAL)
        fail_msg("`%s`: expected -EINVAL, got %d", text, rc);
    if (strcmp(err.msg, want))
        fail_msg("`%s`: message\n  `%s`, expected\n  `%s`", text, err.msg, want);
}

static void addr4(const char *s, uint8_t out[4])
{
    assert_int_equal(inet_pton(AF_INET, s, out), 1);
}

static void addr6(const char *s, uint8_t out[16])
{
    assert_int_equal(inet_pton(AF_INET6, s, out), 1);
}

static bool internal(const char *s)
{
    uint8_t a[16];
    if (strchr(s, ':')) {
        addr6(s, a);
        return egress_addr_internal(AF_INET6, a);
    }
    addr4(s, a);
    return egress_addr_internal(AF_INET, a);
}

static bool matches(const char *rule_text, const char *addr)
{
    egress_rule_t rule;
    canon(rule_text, &rule);
    uint8_t a[16];
    if (strchr(addr, ':')) {
        addr6(addr, a);
        return egress_rule_matches_addr(&rule, AF_INET6, a);
    }
    addr4(addr, a);
    return egress_rule_matches_addr(&rule, AF_INET, a);
}

static bool name_matches(const char *rule_text, const char *name)
{
    egress_rule_t rule;
    canon(rule_text, &rule);
    return egress_rule_matches_name(&rule, name);
}

static json_t *parse_json(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!v)
        fail_msg("bad test JSON `%s`: %s", text, jerr.text);
    return v;
}

/* ---- rule forms ----------------------------------------------------------------- */

static void test_host_rules(void **state)
{
    egress_rule_t r;
    assert_string_equal(canon("api.example.com", &r), "api.example.com");
    assert_int_equal(r.kind, EGRESS_RULE_HOST);
    assert_int_equal(r.port, 0);
    assert_string_equal(r.host, "api.example.com");

    assert_string_equal(canon("API.Example.COM.:443", &r), "api.example.com:443");
    assert_int_equal(r.kind, EGRESS_RULE_HOST);
    assert_int_equal(r.port, 443);
    assert_string_equal(r.host, "api.example.com");

    assert_string_equal(canon("localhost", &r), "localhost");
    assert_string_equal(canon("db:5432", &r), "db:5432");
    assert_string_equal(canon("_srv._tcp.example.com", &r), "_srv._tcp.example.com");
    assert_string_equal(canon("xn--bcher-kva.example", &r), "xn--bcher-kva.example");
    assert_string_equal(canon("a-b.c-d.e", &r), "a-b.c-d.e");
    /* Digits are fine anywhere but as the whole last label. */
    assert_string_equal(canon("1.2.3.4.nip.io", &r), "1.2.3.4.nip.io");
    assert_string_equal(canon("123.example.com", &r), "123.example.com");
    assert_string_equal(canon("example.c0m", &r), "example.c0m");
    assert_string_equal(canon("x:1", &r), "x:1");
    assert_string_equal(canon("x:65535", &r), "x:65535");

    /* The longest label and the longest name. */
    char label[64], name[254];
    memset(label, 'a', 63);
    label[63] = '\0';
    assert_string_equal(canon(label, &r), label);
    memset(name, 'b', 253);
    for (int i = 63; i < 253; i += 64)
        name[i] = '.';
    name[253] = '\0';
    assert_string_equal(canon(name, &r), name);
    char dotted[256];
    snprintf(dotted, sizeof dotted, "%s.", name);
    assert_string_equal(canon(dotted, &r), name);
}

static void test_wildcard_rules(void **state)
{
    egress_rule_t r;
    assert_string_equal(canon("*.example.com", &r), "*.example.com");
    assert_int_equal(r.kind, EGRESS_RULE_WILDCARD);
    assert_string_equal(r.host, "example.com");
    assert_int_equal(r.port, 0);

    assert_string_equal(canon("*.EXAMPLE.com.:8443", &r), "*.example.com:8443");
    assert_int_equal(r.kind, EGRESS_RULE_WILDCARD);
    assert_string_equal(r.host, "example.com");
    assert_int_equal(r.port, 8443);

    assert_string_equal(canon("*.com", &r), "*.com");
}

static void test_any_rules(void **state)
{
    egress_rule_t r;
    assert_string_equal(canon("*", &r), "*");
    assert_int_equal(r.kind, EGRESS_RULE_ANY);
    assert_int_equal(r.port, 0);
    assert_string_equal(canon("*:443", &r), "*:443");
    assert_int_equal(r.kind, EGRESS_RULE_ANY);
    assert_int_equal(r.port, 443);
}

static void test_ipv4_rules(void **state)
{
    egress_rule_t r;
    uint8_t want[4];
    assert_string_equal(canon("203.0.113.7", &r), "203.0.113.7");
    assert_int_equal(r.kind, EGRESS_RULE_CIDR);
    assert_int_equal(r.family, AF_INET);
    assert_int_equal(r.prefix, 32);
    addr4("203.0.113.7", want);
    assert_memory_equal(r.addr, want, 4);

    assert_string_equal(canon("203.0.113.0/24", &r), "203.0.113.0/24");
    assert_int_equal(r.prefix, 24);
    assert_string_equal(canon("203.0.113.0/24:443", &r), "203.0.113.0/24:443");
    assert_int_equal(r.port, 443);
    assert_string_equal(canon("203.0.113.7:80", &r), "203.0.113.7:80");
    assert_int_equal(r.prefix, 32);
    /* A whole-length prefix is the address alone. */
    assert_string_equal(canon("10.0.0.1/32", &r), "10.0.0.1");
    assert_string_equal(canon("0.0.0.0/0", &r), "0.0.0.0/0");
    assert_int_equal(r.prefix, 0);
    assert_string_equal(canon("10.0.0.0/8", &r), "10.0.0.0/8");
    assert_string_equal(canon("172.16.0.0/12:5432", &r), "172.16.0.0/12:5432");
    assert_string_equal(canon("255.255.255.255", &r), "255.255.255.255");
    assert_string_equal(canon("0.0.0.0", &r), "0.0.0.0");
    assert_string_equal(canon("10.128.0.0/9", &r), "10.128.0.0/9");
}

static void test_ipv6_rules(void **state)
{
    egress_rule_t r;
    uint8_t want[16];
    assert_string_equal(canon("2001:db8::/32", &r), "2001:db8::/32");
    assert_int_equal(r.kind, EGRESS_RULE_CIDR);
    assert_int_equal(r.family, AF_INET6);
    assert_int_equal(r.prefix, 32);
    assert_int_equal(r.port, 0);
    addr6("2001:db8::", want);
    assert_memory_equal(r.addr, want, 16);

    assert_string_equal(canon("::1", &r), "::1");
    assert_int_equal(r.prefix, 128);
    assert_string_equal(canon("[::1]:8443", &r), "[::1]:8443");
    assert_int_equal(r.port, 8443);
    assert_string_equal(canon("[2001:db8::/32]:443", &r), "[2001:db8::/32]:443");
    assert_int_equal(r.prefix, 32);
    assert_int_equal(r.port, 443);
    assert_string_equal(canon("[2001:db8::1]:443", &r), "[2001:db8::1]:443");
    /* Brackets without a port are dropped; inet_ntop's spelling is kept. */
    assert_string_equal(canon("[2001:DB8:0:0:0:0:0:1]", &r), "2001:db8::1");
    assert_string_equal(canon("2001:0db8:0000::/48", &r), "2001:db8::/48");
    assert_string_equal(canon("2001:db8::1/128", &r), "2001:db8::1");
    assert_string_equal(canon("::/0", &r), "::/0");
    assert_string_equal(canon("::ffff:203.0.113.7", &r), "::ffff:203.0.113.7");
    assert_string_equal(canon("fc00::/7", &r), "fc00::/7");
}

/* ---- errors ------------------------------------------------------------------------ */

static void test_errors(void **state)
{
    refused("", "bad egress rule \"\": empty");
    refused(" api.example.com", "bad egress rule \" api.example.com\": contains white space");
    refused("a b", "bad egress rule \"a b\": contains white space");
    refused("a\tb", "bad egress rule \"a?b\": contains white space");
    refused("a\x01"
            "b",
            "bad egress rule \"a?b\": contains a character that is not printable "
            "ASCII (write international names in punycode, xn--...)");
    refused("bücher.example", "bad egress rule \"bücher.example\": contains a character that "
                              "is not printable ASCII (write international names in punycode, "
                              "xn--...)");

    /* Ports. */
    refused("x:0", "bad egress rule \"x:0\": port must be 1-65535");
    refused("x:65536", "bad egress rule \"x:65536\": port must be 1-65535");
    refused("x:99999", "bad egress rule \"x:99999\": port must be 1-65535");
    refused("x:", "bad egress rule \"x:\": port must be 1-65535");
    refused("x:0443", "bad egress rule \"x:0443\": port must be 1-65535");
    refused("x:+443", "bad egress rule \"x:+443\": port must be 1-65535");
    refused("x:-1", "bad egress rule \"x:-1\": port must be 1-65535");
    refused("x:0x50", "bad egress rule \"x:0x50\": port must be 1-65535");
    refused("x:https", "bad egress rule \"x:https\": port must be 1-65535");
    refused("x:123456", "bad egress rule \"x:123456\": port must be 1-65535");
    refused("*:0", "bad egress rule \"*:0\": port must be 1-65535");
    refused("[::1]:0", "bad egress rule \"[::1]:0\": port must be 1-65535");
    refused("[::1]:", "bad egress rule \"[::1]:\": port must be 1-65535");
    refused("10.0.0.0/8:70000", "bad egress rule \"10.0.0.0/8:70000\": port must be 1-65535");
    refused(":443", "bad egress rule \":443\": nothing before the port");

    /* Names. */
    refused("a..b", "bad egress rule \"a..b\": empty label in the host name");
    refused(".a", "bad egress rule \".a\": empty label in the host name");
    refused("a.b..", "bad egress rule \"a.b..\": empty label in the host name");
    refused(".", "bad egress rule \".\": empty host name");
    refused("-a.com", "bad egress rule \"-a.com\": a label of the host name starts or ends "
                      "with '-'");
    refused("a-.com", "bad egress rule \"a-.com\": a label of the host name starts or ends "
                      "with '-'");
    refused("a.b-", "bad egress rule \"a.b-\": a label of the host name starts or ends with '-'");
    refused("a!b.com", "bad egress rule \"a!b.com\": a host name has only letters, digits, '-', "
                       "'_' and dots");
    refused("http://example.com", "bad egress rule \"http://example.com\": port must be 1-65535");
    refused("example.com/path", "bad egress rule \"example.com/path\": a prefix length goes "
                                "only after an IP address");
    refused("example.com/24", "bad egress rule \"example.com/24\": a prefix length goes only "
                              "after an IP address");
    char label[65];
    memset(label, 'a', 64);
    label[64] = '\0';
    cleanup_free char *want_label = xasprintf(
        "bad egress rule \"%s\": a label of the host name is longer than 63 characters", label);
    refused(label, want_label);
    /* 254 characters: shown as its first 80 and "...". */
    char name[256];
    memset(name, 'b', 254);
    for (int i = 63; i < 254; i += 64)
        name[i] = '.';
    name[254] = '\0';
    cleanup_free char *want_name =
        xasprintf("bad egress rule \"%.80s...\": host name longer than 253 characters", name);
    refused(name, want_name);

    /* Names a resolver would read as numbers. */
    static const char numeric[] = "not a host name (it ends in a number) nor an IPv4 address "
                                  "(four numbers 0-255 without leading zeros)";
    char want[512];
    static const char *const numbers[] = {"0x7f000001", "0x7f.1", "1.0x7f", "example.123",
                                          "*.0.1",      "a.0x",   "0xAB",   NULL};
    for (size_t i = 0; numbers[i]; i++) {
        snprintf(want, sizeof want, "bad egress rule \"%s\": %s", numbers[i], numeric);
        refused(numbers[i], want);
    }

    /* Wildcards. */
    static const char star[] = "'*' is allowed only as a whole first label (*.example.com) or "
                               "alone";
    static const char *const stars[] = {"**",      "*example.com",   "a.*.com", "api.*", "*.*.com",
                                        "a*b.com", "*.ex*ample.com", "**.com",  NULL};
    for (size_t i = 0; stars[i]; i++) {
        snprintf(want, sizeof want, "bad egress rule \"%s\": %s", stars[i], star);
        refused(stars[i], want);
    }
    refused("*.", "bad egress rule \"*.\": nothing after '*.'");
    refused("*..", "bad egress rule \"*..\": nothing after '*.'");

    /* IPv4. */
    static const char v4[] = "not an IPv4 address (four numbers 0-255 without leading zeros)";
    static const char *const bad4[] = {
        "1.2.3",  "1.2.3.4.5",  "256.0.0.1", "1.2.3.04", "010.0.0.1",  "127.1", "1..2.3",
        "1.2.3.", "2130706433", "1.2.3.4.",  "/8",       "1.2.3.1000", NULL};
    for (size_t i = 0; bad4[i]; i++) {
        snprintf(want, sizeof want, "bad egress rule \"%s\": %s", bad4[i], v4);
        refused(bad4[i], want);
    }
    refused("10.0.0.0/33", "bad egress rule \"10.0.0.0/33\": the prefix length must be 0-32");
    refused("10.0.0.0/", "bad egress rule \"10.0.0.0/\": the prefix length must be 0-32");
    refused("1.2.3.0/24/8", "bad egress rule \"1.2.3.0/24/8\": the prefix length must be 0-32");
    refused("10.0.0.0/08", "bad egress rule \"10.0.0.0/08\": the prefix length must be 0-32");
    refused("10.1.2.3/8", "bad egress rule \"10.1.2.3/8\": host bits set; did you mean "
                          "10.0.0.0/8?");
    refused("192.168.1.1/24:443", "bad egress rule \"192.168.1.1/24:443\": host bits set; did "
                                  "you mean 192.168.1.0/24?");
    refused("10.0.0.1/0", "bad egress rule \"10.0.0.1/0\": host bits set; did you mean "
                          "0.0.0.0/0?");

    /* IPv6. */
    refused("2001:db8::g", "bad egress rule \"2001:db8::g\": not an IPv6 address");
    refused("1:2:3:4:5:6:7:8:9", "bad egress rule \"1:2:3:4:5:6:7:8:9\": not an IPv6 address");
    refused("fe80::1%eth0", "bad egress rule \"fe80::1%eth0\": not an IPv6 address");
    refused("2001:db8::/129", "bad egress rule \"2001:db8::/129\": the prefix length must be "
                              "0-128");
    refused("2001:db8::1/32", "bad egress rule \"2001:db8::1/32\": host bits set; did you mean "
                              "2001:db8::/32?");
    refused("2001:db8::/32:443", "bad egress rule \"2001:db8::/32:443\": an IPv6 network with a "
                                 "port goes in brackets: [2001:db8::/32]:443");
    refused("[2001:db8::1", "bad egress rule \"[2001:db8::1\": missing ']'");
    refused("[::1]443", "bad egress rule \"[::1]443\": expected ':PORT' after ']'");
    refused("[1.2.3.4]:80", "bad egress rule \"[1.2.3.4]:80\": brackets hold an IPv6 address "
                            "only");
    refused("[example.com]:80", "bad egress rule \"[example.com]:80\": brackets hold an IPv6 "
                                "address only");
    refused("[]", "bad egress rule \"[]\": brackets hold an IPv6 address only");
    refused("[::1/129]:80", "bad egress rule \"[::1/129]:80\": the prefix length must be 0-128");
    refused("[::g]:80", "bad egress rule \"[::g]:80\": not an IPv6 address");

    /* A huge rule is cut short in the message, which stays readable. */
    char *huge = xmalloc(100001);
    memset(huge, 'x', 100000);
    huge[100000] = '\0';
    huge[50000] = '!';
    egress_rule_t rule;
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(egress_rule_parse(huge, &rule, &err), -EINVAL);
    assert_true(strlen(err.msg) < 200);
    assert_non_null(strstr(err.msg, "bad egress rule \"xxxxxxxx"));
    assert_non_null(strstr(err.msg, "...\": "));
    free(huge);
}

/* ---- lists and JSON ---------------------------------------------------------------- */

static void expect_policy_json(const egress_policy_t *p, const char *want)
{
    json_t *j = egress_policy_to_json(p);
    char *text = json_dumps(j, JSON_COMPACT);
    assert_string_equal(text, want);
    free(text);
    json_decref(j);
}

static void test_list(void **state)
{
    egress_policy_t p;
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(egress_policy_from_list("", &p, &err), 0);
    assert_int_equal(p.n, 0);
    assert_null(p.rules);
    expect_policy_json(&p, "[]");
    egress_policy_free(&p);
    assert_int_equal(egress_policy_from_list("  \t ", &p, &err), 0);
    assert_int_equal(p.n, 0);

    assert_int_equal(egress_policy_from_list(" API.example.com:443 ,10.0.0.0/8,\t*.x.org ,"
                                             "[2001:db8::/32]:443,*",
                                             &p, &err),
                     0);
    assert_int_equal(p.n, 5);
    assert_int_equal(p.rules[0].kind, EGRESS_RULE_HOST);
    assert_int_equal(p.rules[1].kind, EGRESS_RULE_CIDR);
    assert_int_equal(p.rules[2].kind, EGRESS_RULE_WILDCARD);
    assert_int_equal(p.rules[3].kind, EGRESS_RULE_CIDR);
    assert_int_equal(p.rules[4].kind, EGRESS_RULE_ANY);
    expect_policy_json(&p, "[\"api.example.com:443\",\"10.0.0.0/8\",\"*.x.org\","
                           "\"[2001:db8::/32]:443\",\"*\"]");
    egress_policy_free(&p);
    assert_int_equal(p.n, 0);
    assert_null(p.rules);

    /* Two spellings of one rule are one rule, in the first one's place. */
    assert_int_equal(egress_policy_from_list("a.com,b.com,A.COM.,10.0.0.1/32,10.0.0.1", &p, &err),
                     0);
    expect_policy_json(&p, "[\"a.com\",\"b.com\",\"10.0.0.1\"]");
    egress_policy_free(&p);

    static const struct {
        const char *list, *msg;
    } bad[] = {
        {"a,,b", "egress[1]: bad egress rule \"\": empty"},
        {"a,", "egress[1]: bad egress rule \"\": empty"},
        {",a", "egress[0]: bad egress rule \"\": empty"},
        {"a, ,b", "egress[1]: bad egress rule \"\": empty"},
        {"a.com,b.com:0", "egress[1]: bad egress rule \"b.com:0\": port must be 1-65535"},
        {"x y", "egress[0]: bad egress rule \"x y\": contains white space"},
        {"ok.com, 10.1.0.0/8 ",
         "egress[1]: bad egress rule \"10.1.0.0/8\": host bits set; did you mean 10.0.0.0/8?"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&p, 0xff, sizeof p);
        assert_int_equal(egress_policy_from_list(bad[i].list, &p, &err), -EINVAL);
        assert_string_equal(err.msg, bad[i].msg);
        /* Nothing to free after a failure, and freeing is still safe. */
        assert_int_equal(p.n, 0);
        assert_null(p.rules);
        egress_policy_free(&p);
    }

    /* At most 64 rules. */
    buf_t list = BUF_INIT;
    for (int i = 0; i < EGRESS_MAX_RULES; i++)
        buf_addf(&list, "%sh%d.example.com", i ? "," : "", i);
    assert_int_equal(egress_policy_from_list(list.data, &p, &err), 0);
    assert_int_equal(p.n, EGRESS_MAX_RULES);
    egress_policy_free(&p);
    buf_adds(&list, ",one-more.example.com");
    assert_int_equal(egress_policy_from_list(list.data, &p, &err), -EINVAL);
    assert_string_equal(err.msg, "egress: must be a list of at most 64 rules");
    buf_release(&list);
}

static void test_json(void **state)
{
    egress_policy_t p;
    mf_error_t err = MF_ERROR_INIT;
    json_t *j = parse_json("[]");
    assert_int_equal(egress_policy_from_json(j, &p, &err), 0);
    assert_int_equal(p.n, 0);
    json_decref(j);

    j = parse_json("[\"Api.Example.com.:443\",\"*.example.org\",\"203.0.113.0/24\","
                   "\"[::1]:8443\",\"*:443\",\"::1\"]");
    assert_int_equal(egress_policy_from_json(j, &p, &err), 0);
    expect_policy_json(&p, "[\"api.example.com:443\",\"*.example.org\",\"203.0.113.0/24\","
                           "\"[::1]:8443\",\"*:443\",\"::1\"]");
    egress_policy_free(&p);
    json_decref(j);

    static const struct {
        const char *json, *msg;
    } bad[] = {
        {"null", "egress: must be an array of at most 64 rules"},
        {"\"api.example.com\"", "egress: must be an array of at most 64 rules"},
        {"{\"a\":1}", "egress: must be an array of at most 64 rules"},
        {"[\"a.com\",1]", "egress: element 1 is not a string"},
        {"[null]", "egress: element 0 is not a string"},
        {"[[\"a\"]]", "egress: element 0 is not a string"},
        {"[\"a.com\",\"b.com\",\"*.*\"]",
         "egress[2]: bad egress rule \"*.*\": '*' is allowed only as a whole first label "
         "(*.example.com) or alone"},
        {"[\"\"]", "egress[0]: bad egress rule \"\": empty"},
        {"[\" a.com\"]", "egress[0]: bad egress rule \" a.com\": contains white space"},
        {"[\"a.com\\u0000b\"]", "egress[0]: bad egress rule \"a.com\": contains a NUL character"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        j = parse_json(bad[i].json);
        memset(&p, 0xff, sizeof p);
        assert_int_equal(egress_policy_from_json(j, &p, &err), -EINVAL);
        if (strcmp(err.msg, bad[i].msg))
            fail_msg("%s: message\n  `%s`, expected\n  `%s`", bad[i].json, err.msg, bad[i].msg);
        assert_int_equal(p.n, 0);
        assert_null(p.rules);
        json_decref(j);
    }

    /* 64 rules, not 65. */
    j = json_array();
    for (int i = 0; i < EGRESS_MAX_RULES; i++) {
        char r[32];
        snprintf(r, sizeof r, "10.0.%d.0/24", i);
        json_array_append_new(j, json_string(r));
    }
    assert_int_equal(egress_policy_from_json(j, &p, &err), 0);
    assert_int_equal(p.n, EGRESS_MAX_RULES);
    egress_policy_free(&p);
    json_array_append_new(j, json_string("10.1.0.0/16"));
    assert_int_equal(egress_policy_from_json(j, &p, &err), -EINVAL);
    assert_string_equal(err.msg, "egress: must be an array of at most 64 rules");
    json_decref(j);

    /* No policy shows as the empty array. */
    expect_policy_json(NULL, "[]");
}

/* ---- matching ---------------------------------------------------------------------- */

static void test_name_matching(void **state)
{
    assert_true(name_matches("api.example.com", "api.example.com"));
    assert_true(name_matches("api.example.com", "API.Example.COM"));
    assert_true(name_matches("api.example.com", "api.example.com."));
    assert_true(name_matches("API.EXAMPLE.COM.:443", "api.example.com"));
    assert_false(name_matches("api.example.com", "example.com"));
    assert_false(name_matches("api.example.com", "x.api.example.com"));
    assert_false(name_matches("api.example.com", "api.example.com.."));
    assert_false(name_matches("api.example.com", ""));
    assert_false(name_matches("api.example.com", "."));

    assert_true(name_matches("*.example.com", "a.example.com"));
    assert_true(name_matches("*.example.com", "a.b.example.com"));
    assert_true(name_matches("*.example.com", "A.EXAMPLE.COM."));
    assert_true(name_matches("*.example.com:443", "a.example.com"));
    /* Not the suffix itself, nor a name that only ends the same way. */
    assert_false(name_matches("*.example.com", "example.com"));
    assert_false(name_matches("*.example.com", "example.com."));
    assert_false(name_matches("*.example.com", "badexample.com"));
    assert_false(name_matches("*.example.com", ".example.com"));
    assert_false(name_matches("*.example.com", "example.com.evil.org"));

    /* Address rules match no name, whatever it looks like. */
    assert_false(name_matches("*", "example.com"));
    assert_false(name_matches("*:443", "example.com"));
    assert_false(name_matches("10.0.0.1", "10.0.0.1"));
    assert_false(name_matches("0.0.0.0/0", "example.com"));

    /* A name longer than any rule's is no rule's. */
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_false(name_matches("*.a", longname));

    egress_policy_t p;
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(
        egress_policy_from_list("api.example.com:443,*.example.org,10.0.0.0/8,*", &p, &err), 0);
    assert_true(egress_policy_allows_name(&p, "api.example.com"));
    assert_true(egress_policy_allows_name(&p, "Api.Example.Com."));
    assert_true(egress_policy_allows_name(&p, "www.example.org"));
    assert_false(egress_policy_allows_name(&p, "example.org"));
    assert_false(egress_policy_allows_name(&p, "www.example.com"));
    assert_false(egress_policy_allows_name(&p, "10.0.0.1"));
    egress_policy_free(&p);
    egress_policy_t none = {NULL, 0};
    assert_false(egress_policy_allows_name(&none, "api.example.com"));
}

static void test_addr_matching(void **state)
{
    assert_true(matches("203.0.113.0/24", "203.0.113.0"));
    assert_true(matches("203.0.113.0/24", "203.0.113.255"));
    assert_false(matches("203.0.113.0/24", "203.0.114.0"));
    assert_false(matches("203.0.113.0/24", "203.0.112.255"));
    assert_true(matches("203.0.113.7:443", "203.0.113.7"));
    assert_false(matches("203.0.113.7", "203.0.113.8"));
    assert_true(matches("10.128.0.0/9", "10.200.1.1"));
    assert_false(matches("10.128.0.0/9", "10.127.255.255"));
    assert_true(matches("0.0.0.0/0", "127.0.0.1"));
    /* A CIDR reaches internal addresses when it names them. */
    assert_true(matches("127.0.0.1", "127.0.0.1"));
    assert_true(matches("10.0.0.0/8", "10.1.2.3"));
    assert_true(matches("169.254.169.254", "169.254.169.254"));

    assert_true(matches("2001:db8::/32", "2001:db8:1::5"));
    assert_false(matches("2001:db8::/32", "2001:db9::1"));
    assert_true(matches("[2001:db8::/33]:443", "2001:db8:7fff::1"));
    assert_false(matches("[2001:db8::/33]:443", "2001:db8:8000::1"));
    assert_true(matches("::1", "::1"));
    assert_false(matches("::1", "::2"));
    assert_true(matches("::/0", "2001:db8::1"));

    /* An IPv4 rule matches the IPv4-mapped IPv6 form, and back; no other
     * form crosses the families. */
    assert_true(matches("203.0.113.0/24", "::ffff:203.0.113.9"));
    assert_false(matches("203.0.113.0/24", "::ffff:203.0.114.9"));
    assert_false(matches("203.0.113.0/24", "::203.0.113.9"));
    assert_false(matches("203.0.113.0/24", "64:ff9b::203.0.113.9"));
    assert_true(matches("::ffff:203.0.113.0/120", "203.0.113.9"));
    assert_false(matches("::ffff:203.0.113.0/120", "203.0.114.9"));
    assert_true(matches("::ffff:0.0.0.0/96", "203.0.113.9"));
    assert_false(matches("2001:db8::/32", "203.0.113.9"));
    assert_false(matches("0.0.0.0/0", "2001:db8::1"));

    /* `*` is every public address, no internal one. */
    assert_true(matches("*", "203.0.113.9"));
    assert_true(matches("*", "8.8.8.8"));
    assert_true(matches("*:443", "2001:db8::1"));
    assert_true(matches("*", "2606:4700::1111"));
    assert_true(matches("*", "::ffff:8.8.8.8"));
    assert_false(matches("*", "127.0.0.1"));
    assert_false(matches("*", "10.0.0.1"));
    assert_false(matches("*", "169.254.169.254"));
    assert_false(matches("*", "::1"));
    assert_false(matches("*", "::ffff:127.0.0.1"));
    assert_false(matches("*", "::ffff:169.254.169.254"));
    assert_false(matches("*", "fd00::1"));

    /* Name rules match no address. */
    assert_false(matches("example.com", "203.0.113.9"));
    assert_false(matches("*.example.com", "203.0.113.9"));

    /* Nor does anything match another family. */
    egress_rule_t any;
    canon("*", &any);
    uint8_t a[16] = {8, 8, 8, 8};
    assert_false(egress_rule_matches_addr(&any, AF_UNIX, a));
}

static void test_internal_ranges(void **state)
{
    static const char *const inside[] = {
        "0.0.0.0",
        "0.255.255.255",
        "10.0.0.0",
        "10.255.255.255",
        "100.64.0.0",
        "100.127.255.255",
        "127.0.0.1",
        "127.255.255.254",
        "169.254.0.1",
        "169.254.169.254",
        "172.16.0.1",
        "172.31.255.255",
        "192.0.0.1",
        "192.0.0.255",
        "192.168.0.1",
        "192.168.255.255",
        "198.18.0.1",
        "198.19.255.255",
        "224.0.0.1",
        "239.255.255.255",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "febf::1",
        "fec0::1",
        "ff02::1",
        "ff00::",
        "100::1",
        /* IPv6 forms of internal IPv4 addresses. */
        "::ffff:127.0.0.1",
        "::ffff:10.1.2.3",
        "::ffff:169.254.169.254",
        "::ffff:0.0.0.0",
        "::127.0.0.1",
        "::10.0.0.1",
        "64:ff9b::127.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "2002:7f00:1::1",
        "2002:a00:1::",
        "64:ff9b:1::1",
        NULL,
    };
    static const char *const outside[] = {
        "1.1.1.1",         "8.8.8.8",          "9.255.255.255",    "11.0.0.0",
        "100.63.255.255",  "100.128.0.0",      "126.255.255.255",  "128.0.0.0",
        "169.253.255.255", "169.255.0.0",      "172.15.255.255",   "172.32.0.0",
        "192.0.1.0",       "192.0.2.1",        "192.167.255.255",  "192.169.0.0",
        "198.17.255.255",  "198.20.0.0",       "198.51.100.1",     "203.0.113.7",
        "223.255.255.255", "2001:db8::1",      "2001:db8:ffff::1", "2606:4700::1111",
        "2a00:1450::1",    "fbff::1",          "fe7f::1",          "::ffff:8.8.8.8",
        "::8.8.8.8",       "64:ff9b::808:808", "2002:808:808::1",  NULL,
    };
    for (size_t i = 0; inside[i]; i++)
        if (!internal(inside[i]))
            fail_msg("%s should be internal", inside[i]);
    for (size_t i = 0; outside[i]; i++)
        if (internal(outside[i]))
            fail_msg("%s should be public", outside[i]);

    uint8_t a[16];
    addr4("169.254.169.254", a);
    assert_string_equal(egress_addr_internal_range(AF_INET, a),
                        "link-local, cloud metadata (169.254.0.0/16)");
    addr6("::ffff:127.0.0.1", a);
    assert_string_equal(egress_addr_internal_range(AF_INET6, a), "loopback (127.0.0.0/8)");
    addr6("::1", a);
    assert_string_equal(egress_addr_internal_range(AF_INET6, a), "loopback (::1)");
    addr6("::", a);
    assert_string_equal(egress_addr_internal_range(AF_INET6, a), "unspecified (::)");
    addr4("8.8.8.8", a);
    assert_null(egress_addr_internal_range(AF_INET, a));
    /* Anything that is not IPv4 or IPv6 is never public. */
    assert_true(egress_addr_internal(AF_UNIX, a));
}

/* ---- --egress-hosts ----------------------------------------------------------------- */

static char *write_hosts(const char *dir, const char *text, size_t len)
{
    char *path = xasprintf("%s/hosts", dir);
    mf_error_t err = MF_ERROR_INIT;
    if (fs_write_file_atomic(path, text, len, 0644, &err) < 0)
        fail_msg("write %s: %s", path, err.msg);
    return path;
}

static void test_hosts_file(void **state)
{
    const char *dir = *state;
    static const char text[] = "# extra names for the gateway\n"
                               "127.0.0.1   local.test  Echo.Test.  # trailing comment\n"
                               "\n"
                               "   \t\n"
                               "::1\tlocal.test six.test\r\n"
                               "203.0.113.7 api.example.com\n"
                               "203.0.113.8 api.example.com\n"
                               "203.0.113.7 api.example.com\n" /* again: kept once */
                               "#203.0.113.9 commented.test\n"
                               "10.0.0.1 _svc.internal";
    cleanup_free char *path = write_hosts(dir, text, sizeof text - 1);
    egress_hosts_t *h = NULL;
    mf_error_t err = MF_ERROR_INIT;
    if (egress_hosts_load(path, &h, &err) < 0)
        fail_msg("%s", err.msg);

    egress_addr_t out[EGRESS_HOSTS_MAX_ADDRS];
    uint8_t want[16];
    assert_int_equal(egress_hosts_lookup(h, "local.test", out, EGRESS_HOSTS_MAX_ADDRS), 2);
    assert_int_equal(out[0].family, AF_INET);
    addr4("127.0.0.1", want);
    assert_memory_equal(out[0].addr, want, 4);
    assert_int_equal(out[1].family, AF_INET6);
    addr6("::1", want);
    assert_memory_equal(out[1].addr, want, 16);
    /* At most max. */
    assert_int_equal(egress_hosts_lookup(h, "local.test", out, 1), 1);
    assert_int_equal(out[0].family, AF_INET);

    assert_int_equal(egress_hosts_lookup(h, "ECHO.test", out, EGRESS_HOSTS_MAX_ADDRS), 1);
    assert_int_equal(egress_hosts_lookup(h, "echo.test.", out, EGRESS_HOSTS_MAX_ADDRS), 1);
    addr4("127.0.0.1", want);
    assert_memory_equal(out[0].addr, want, 4);
    assert_int_equal(egress_hosts_lookup(h, "six.test", out, EGRESS_HOSTS_MAX_ADDRS), 1);
    assert_int_equal(out[0].family, AF_INET6);

    assert_int_equal(egress_hosts_lookup(h, "api.example.com", out, EGRESS_HOSTS_MAX_ADDRS), 2);
    addr4("203.0.113.7", want);
    assert_memory_equal(out[0].addr, want, 4);
    addr4("203.0.113.8", want);
    assert_memory_equal(out[1].addr, want, 4);
    assert_int_equal(egress_hosts_lookup(h, "_svc.internal", out, EGRESS_HOSTS_MAX_ADDRS), 1);

    assert_int_equal(egress_hosts_lookup(h, "commented.test", out, EGRESS_HOSTS_MAX_ADDRS), 0);
    assert_int_equal(egress_hosts_lookup(h, "test", out, EGRESS_HOSTS_MAX_ADDRS), 0);
    assert_int_equal(egress_hosts_lookup(h, "", out, EGRESS_HOSTS_MAX_ADDRS), 0);
    assert_int_equal(egress_hosts_lookup(h, "x.local.test", out, EGRESS_HOSTS_MAX_ADDRS), 0);
    assert_int_equal(egress_hosts_lookup(NULL, "local.test", out, EGRESS_HOSTS_MAX_ADDRS), 0);
    egress_hosts_free(h);
    egress_hosts_free(NULL);

    /* An empty file (or only comments) is an empty table. */
    cleanup_free char *empty = write_hosts(dir, "# nothing\n", 10);
    assert_int_equal(egress_hosts_load(empty, &h, &err), 0);
    assert_int_equal(egress_hosts_lookup(h, "local.test", out, EGRESS_HOSTS_MAX_ADDRS), 0);
    egress_hosts_free(h);
}

static void test_hosts_errors(void **state)
{
    const char *dir = *state;
    static const struct {
        const char *text, *msg; /* msg after "PATH:" */
    } bad[] = {
        {"127.0.0.1 ok.test\nnot-an-ip name.test\n", "2: not an address: not-an-ip"},
        {"127.0.0.1\n", "1: an address without a name"},
        {"127.0.0.1 # only a comment\n", "1: an address without a name"},
        {"\n\n127.0.0.1 bad..name\n", "3: bad..name: empty label in the host name"},
        {"127.0.0.1 *.wild.test\n",
         "1: *.wild.test: '*' is allowed only as a whole first label (*.example.com) or alone"},
        {"127.0.0.1 1.2.3.4\n", "1: 1.2.3.4: not a host name (it ends in a number) nor an IPv4 "
                                "address (four numbers 0-255 without leading zeros)"},
        {"127.1 short.test\n", "1: not an address: 127.1"},
        {"10.0.0.0/8 net.test\n", "1: not an address: 10.0.0.0/8"},
        {"fe80::1%eth0 ll.test\n", "1: not an address: fe80::1%eth0"},
        {"127.0.0.1 a-.test\n", "1: a-.test: a label of the host name starts or ends with '-'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cleanup_free char *path = write_hosts(dir, bad[i].text, strlen(bad[i].text));
        egress_hosts_t *h = (egress_hosts_t *)1;
        mf_error_t err = MF_ERROR_INIT;
        assert_int_equal(egress_hosts_load(path, &h, &err), -EINVAL);
        assert_null(h);
        cleanup_free char *want = xasprintf("%s:%s", path, bad[i].msg);
        if (strcmp(err.msg, want))
            fail_msg("%s: message\n  `%s`, expected\n  `%s`", bad[i].text, err.msg, want);
    }

    /* A name longer than 253 characters. */
    buf_t text = BUF_INIT;
    buf_adds(&text, "127.0.0.1 ");
    for (int i = 0; i < 5; i++)
        buf_adds(&text, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.");
    buf_adds(&text, "test\n");
    cleanup_free char *path = write_hosts(dir, text.data, text.len);
    buf_release(&text);
    egress_hosts_t *h = NULL;
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(egress_hosts_load(path, &h, &err), -EINVAL);
    assert_non_null(strstr(err.msg, ":1: "));
    assert_non_null(strstr(err.msg, ": host name longer than 253 characters"));

    /* More addresses for one name than a lookup can give. */
    for (int i = 0; i <= EGRESS_HOSTS_MAX_ADDRS; i++)
        buf_addf(&text, "203.0.113.%d many.test\n", i + 1);
    free(path);
    path = write_hosts(dir, text.data, text.len);
    buf_release(&text);
    assert_int_equal(egress_hosts_load(path, &h, &err), -EINVAL);
    cleanup_free char *want = xasprintf("%s:17: many.test has more than 16 addresses", path);
    assert_string_equal(err.msg, want);

    /* A NUL byte: not a text file. */
    free(path);
    path = write_hosts(dir, "127.0.0.1 a.test\0b\n", 19);
    assert_int_equal(egress_hosts_load(path, &h, &err), -EINVAL);
    free(want);
    want = xasprintf("%s: contains a NUL byte: not a hosts file", path);
    assert_string_equal(err.msg, want);

    /* Past 1 MiB. */
    size_t big = (1u << 20) + 1;
    char *blob = xmalloc(big);
    memset(blob, '#', big);
    blob[big - 1] = '\n';
    free(path);
    path = write_hosts(dir, blob, big);
    free(blob);
    assert_int_equal(egress_hosts_load(path, &h, &err), -EFBIG);
    free(want);
    want = xasprintf("%s: larger than 1 MiB", path);
    assert_string_equal(err.msg, want);
    /* Exactly 1 MiB of comments is fine. */
    blob = xmalloc(1u << 20);
    memset(blob, '#', 1u << 20);
    free(path);
    path = write_hosts(dir, blob, 1u << 20);
    free(blob);
    assert_int_equal(egress_hosts_load(path, &h, &err), 0);
    egress_hosts_free(h);

    /* A file that is not there. */
    cleanup_free char *missing = xasprintf("%s/no-such-file", dir);
    assert_int_equal(egress_hosts_load(missing, &h, &err), -ENOENT);
    assert_null(h);
    assert_non_null(strstr(err.msg, missing));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_rules),
        cmocka_unit_test(test_wildcard_rules),
        cmocka_unit_test(test_any_rules),
        cmocka_unit_test(test_ipv4_rules),
        cmocka_unit_test(test_ipv6_rules),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_name_matching),
        cmocka_unit_test(test_addr_matching),
        cmocka_unit_test(test_internal_ranges),
        cmocka_unit_test_setup_teardown(test_hosts_file, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_hosts_errors, setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
