/* libFuzzer target: the egress rule grammar. The input is parsed as one
 * rule, as a comma-separated list and as an --egress-hosts file; whatever
 * parses is formatted and parsed again, which must give the same rule and
 * the same text (the API shows the canonical text back, and a function's
 * stored rules are read back through the same parser). Matching runs on
 * the input as a name and as address bytes.
 * Build with `make fuzz`; `make test` replays the checked-in corpus. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "egress/policy.h"

static void check(bool ok, const char *what, const char *text)
{
    if (!ok) {
        fprintf(stderr, "fuzz_egress_rule: %s for `%s`\n", what, text);
        abort();
    }
}

static void same_rule(const egress_rule_t *a, const egress_rule_t *b, const char *text)
{
    check(a->kind == b->kind && a->port == b->port, "kind or port changed", text);
    if (a->kind == EGRESS_RULE_HOST || a->kind == EGRESS_RULE_WILDCARD)
        check(!strcmp(a->host, b->host), "name changed", text);
    if (a->kind == EGRESS_RULE_CIDR)
        check(a->family == b->family && a->prefix == b->prefix &&
                  !memcmp(a->addr, b->addr, sizeof a->addr),
              "network changed", text);
}

static void round_trip_rule(const char *text, uint8_t addr[16])
{
    egress_rule_t rule, again;
    mf_error_t err = MF_ERROR_INIT;
    if (egress_rule_parse(text, &rule, &err) < 0) {
        check(!strncmp(err.msg, "bad egress rule \"", 17), "message not naming the rule", text);
        return;
    }
    char out[EGRESS_RULE_TEXT_MAX], out2[EGRESS_RULE_TEXT_MAX];
    egress_rule_format(&rule, out, sizeof out);
    check(strlen(out) < sizeof out - 1, "canonical text may not fit", text);
    check(egress_rule_parse(out, &again, &err) == 0, "canonical text refused", out);
    same_rule(&rule, &again, text);
    egress_rule_format(&again, out2, sizeof out2);
    check(!strcmp(out, out2), "canonical text not stable", text);

    /* Matching must hold up on anything. */
    (void)egress_rule_matches_name(&rule, text);
    if (rule.kind == EGRESS_RULE_HOST)
        check(egress_rule_matches_name(&rule, rule.host), "a name rule misses its name", text);
    (void)egress_rule_matches_addr(&rule, AF_INET, addr);
    (void)egress_rule_matches_addr(&rule, AF_INET6, addr);
    if (rule.kind == EGRESS_RULE_CIDR)
        check(egress_rule_matches_addr(&rule, rule.family, rule.addr),
              "a network misses its own address", text);
}

static void round_trip_list(const char *text)
{
    egress_policy_t p, q;
    mf_error_t err = MF_ERROR_INIT;
    if (egress_policy_from_list(text, &p, &err) < 0)
        return;
    json_t *j = egress_policy_to_json(&p);
    check(egress_policy_from_json(j, &q, &err) == 0, "canonical list refused", text);
    json_t *k = egress_policy_to_json(&q);
    check(json_equal(j, k), "canonical list not stable", text);
    check(p.n == q.n, "rule count changed", text);
    for (size_t i = 0; i < p.n; i++)
        same_rule(&p.rules[i], &q.rules[i], text);
    (void)egress_policy_allows_name(&p, text);
    json_decref(j);
    json_decref(k);
    egress_policy_free(&p);
    egress_policy_free(&q);
}

/* The hosts parser reads a file: the input goes through a memfd. */
static void hosts_file(const uint8_t *data, size_t size, const char *name)
{
    int fd = memfd_create("fuzz-hosts", MFD_CLOEXEC);
    if (fd < 0)
        return;
    if (write(fd, data, size) == (ssize_t)size) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        egress_hosts_t *h = NULL;
        mf_error_t err = MF_ERROR_INIT;
        if (egress_hosts_load(path, &h, &err) == 0) {
            egress_addr_t out[EGRESS_HOSTS_MAX_ADDRS];
            size_t n = egress_hosts_lookup(h, name, out, EGRESS_HOSTS_MAX_ADDRS);
            check(n <= EGRESS_HOSTS_MAX_ADDRS, "too many addresses", name);
            egress_hosts_free(h);
        }
    }
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    uint8_t addr[16] = {0};
    memcpy(addr, data, size < sizeof addr ? size : sizeof addr);

    round_trip_rule(s, addr);
    round_trip_list(s);
    (void)egress_addr_internal(AF_INET, addr);
    (void)egress_addr_internal(AF_INET6, addr);
    /* The last word of the input as a name to look up. */
    const char *sp = strrchr(s, ' ');
    hosts_file(data, size, sp ? sp + 1 : s);
    free(s);
    return 0;
}
