/* libFuzzer target: SNS filter policies and message attributes, as a
 * subscriber and a publisher (or a function) may send anything. The input
 * is a policy, a newline, then attributes. What parses must keep its
 * promises: a refusal says why; the policy's canonical form parses back
 * to itself and decides every message as the policy does; the attributes'
 * SNS form parses back to attributes the policy decides on alike.
 * Build with `make fuzz`; `make test` replays the checked-in corpus. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trigger/filter_policy.h"

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_filter_policy: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    const uint8_t *nl = memchr(data, '\n', size);
    size_t plen = nl ? (size_t)(nl - data) : size;
    json_t *pdoc = json_loadb((const char *)data, plen, 0, NULL);
    json_t *adoc = nl ? json_loadb((const char *)nl + 1, size - plen - 1, 0, NULL) : NULL;
    filter_policy_t *p = NULL;
    filter_attrs_t *a = NULL;
    mf_error_t err = MF_ERROR_INIT;
    if (pdoc && filter_policy_parse(pdoc, "filter", &p, &err) < 0)
        check(err.msg[0] != '\0', "a policy refused without a message");
    err = (mf_error_t)MF_ERROR_INIT;
    if (adoc && filter_attrs_parse(adoc, true, "attributes", &a, &err) < 0)
        check(err.msg[0] != '\0', "attributes refused without a message");

    if (p) {
        json_t *canon = filter_policy_json(p);
        filter_policy_t *q = NULL;
        check(filter_policy_parse(canon, "filter", &q, &err) == 0,
              "the canonical form of a policy is refused");
        json_t *again = filter_policy_json(q);
        check(json_equal(canon, again), "the canonical form does not round-trip");
        check(filter_policy_matches(p, a) == filter_policy_matches(q, a),
              "the canonical form decides otherwise");
        json_decref(canon);
        json_decref(again);
        filter_policy_free(q);
    }
    if (a) {
        json_t *sns = filter_attrs_sns(a);
        filter_attrs_t *b = NULL;
        check(filter_attrs_parse(sns, false, "attributes", &b, &err) == 0,
              "the SNS form of attributes is refused");
        check(filter_attrs_bytes(a) == filter_attrs_bytes(b), "the SNS form changes the size");
        if (p)
            check(filter_policy_matches(p, a) == filter_policy_matches(p, b),
                  "the SNS form of attributes is decided otherwise");
        json_decref(sns);
        filter_attrs_free(b);
    }
    filter_policy_free(p);
    filter_attrs_free(a);
    json_decref(pdoc);
    json_decref(adoc);
    return 0;
}
