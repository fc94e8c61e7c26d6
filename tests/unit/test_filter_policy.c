/* SNS filter policies and message attributes
 * (src/trigger/filter_policy.h): which messages each operator lets
 * through, against a table written from SNS's documentation; what is
 * refused and why; the canonical form parses back to the same policy. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "trigger/filter_policy.h"

static filter_policy_t *policy(const char *text)
{
    json_error_t jerr;
    json_t *doc = json_loads(text, 0, &jerr);
    if (!doc)
        fail_msg("bad test policy `%s`: %s", text, jerr.text);
    filter_policy_t *p = NULL;
    mf_error_t err = MF_ERROR_INIT;
    if (filter_policy_parse(doc, "filter", &p, &err) < 0)
        fail_msg("policy `%s` refused: %s", text, err.msg);
    json_decref(doc);
    return p;
}

static filter_attrs_t *attrs(const char *text, bool allow_short)
{
    json_error_t jerr;
    json_t *doc = json_loads(text, 0, &jerr);
    if (!doc)
        fail_msg("bad test attributes `%s`: %s", text, jerr.text);
    filter_attrs_t *a = NULL;
    mf_error_t err = MF_ERROR_INIT;
    if (filter_attrs_parse(doc, allow_short, "attributes", &a, &err) < 0)
        fail_msg("attributes `%s` refused: %s", text, err.msg);
    json_decref(doc);
    return a;
}

typedef struct {
    const char *policy;
    const char *attrs;
    bool match;
} case_t;

static const case_t cases[] = {
    /* Exact strings: case-sensitive, OR within the list. */
    {"{\"store\":[\"example_corp\"]}",
     "{\"store\":{\"Type\":\"String\",\"Value\":\"example_corp\"}}", true},
    {"{\"store\":[\"example_corp\"]}",
     "{\"store\":{\"Type\":\"String\",\"Value\":\"Example_corp\"}}", false},
    {"{\"store\":[\"a\",\"example_corp\"]}",
     "{\"store\":{\"Type\":\"String\",\"Value\":\"example_corp\"}}", true},
    {"{\"store\":[\"example\"]}", "{\"store\":{\"Type\":\"String\",\"Value\":\"example_corp\"}}",
     false},
    /* A name the message lacks fails; names the policy does not list are ignored. */
    {"{\"store\":[\"x\"]}", "{}", false},
    {"{\"store\":[\"x\"]}", "{\"other\":{\"Type\":\"String\",\"Value\":\"x\"}}", false},
    {"{\"store\":[\"x\"]}",
     "{\"store\":{\"Type\":\"String\",\"Value\":\"x\"},\"more\":{\"Type\":\"String\",\"Value\":"
     "\"y\"}}",
     true},
    /* AND across names. */
    {"{\"a\":[\"1\"],\"b\":[\"2\"]}",
     "{\"a\":{\"Type\":\"String\",\"Value\":\"1\"},\"b\":{\"Type\":\"String\",\"Value\":\"2\"}}",
     true},
    {"{\"a\":[\"1\"],\"b\":[\"2\"]}",
     "{\"a\":{\"Type\":\"String\",\"Value\":\"1\"},\"b\":{\"Type\":\"String\",\"Value\":\"3\"}}",
     false},
    {"{\"a\":[\"1\"],\"b\":[\"2\"]}", "{\"a\":{\"Type\":\"String\",\"Value\":\"1\"}}", false},
    /* Numbers: equal to five decimals, in any notation. */
    {"{\"price_usd\":[{\"numeric\":[\"=\",301.5]}]}",
     "{\"price_usd\":{\"Type\":\"Number\",\"Value\":\"301.5\"}}", true},
    {"{\"price_usd\":[{\"numeric\":[\"=\",301.5]}]}",
     "{\"price_usd\":{\"Type\":\"Number\",\"Value\":\"3.015e2\"}}", true},
    {"{\"price_usd\":[301.5]}", "{\"price_usd\":{\"Type\":\"Number\",\"Value\":\"301.50000\"}}",
     true},
    {"{\"price_usd\":[301.5]}", "{\"price_usd\":{\"Type\":\"Number\",\"Value\":\"301.50001\"}}",
     false},
    {"{\"price_usd\":[301.5]}", "{\"price_usd\":{\"Type\":\"Number\",\"Value\":\"301.500001\"}}",
     true},
    /* A number never equals a string, nor a string a number. */
    {"{\"n\":[5]}", "{\"n\":{\"Type\":\"String\",\"Value\":\"5\"}}", false},
    {"{\"n\":[\"5\"]}", "{\"n\":{\"Type\":\"Number\",\"Value\":\"5\"}}", false},
    /* Ranges. */
    {"{\"p\":[{\"numeric\":[\"<\",0]}]}", "{\"p\":{\"Type\":\"Number\",\"Value\":\"-0.5\"}}", true},
    {"{\"p\":[{\"numeric\":[\"<\",0]}]}", "{\"p\":{\"Type\":\"Number\",\"Value\":\"0\"}}", false},
    {"{\"p\":[{\"numeric\":[\"<=\",0]}]}", "{\"p\":{\"Type\":\"Number\",\"Value\":\"0\"}}", true},
    {"{\"p\":[{\"numeric\":[\">\",0,\"<=\",150]}]}",
     "{\"p\":{\"Type\":\"Number\",\"Value\":\"150\"}}", true},
    {"{\"p\":[{\"numeric\":[\">\",0,\"<=\",150]}]}",
     "{\"p\":{\"Type\":\"Number\",\"Value\":\"0\"}}", false},
    {"{\"p\":[{\"numeric\":[\">\",0,\"<=\",150]}]}",
     "{\"p\":{\"Type\":\"Number\",\"Value\":\"150.00001\"}}", false},
    {"{\"p\":[{\"numeric\":[\">=\",10,\"<\",20]}]}",
     "{\"p\":{\"Type\":\"Number\",\"Value\":\"10\"}}", true},
    {"{\"p\":[{\"numeric\":[\">=\",10,\"<\",20]}]}",
     "{\"p\":{\"Type\":\"Number\",\"Value\":\"20\"}}", false},
    {"{\"p\":[{\"numeric\":[\">\",5]}]}", "{\"p\":{\"Type\":\"Number\",\"Value\":\"1e12\"}}", true},
    {"{\"p\":[{\"numeric\":[\"<\",5]}]}", "{\"p\":{\"Type\":\"Number\",\"Value\":\"-1e12\"}}",
     true},
    {"{\"p\":[{\"numeric\":[\"=\",1000000000]}]}",
     "{\"p\":{\"Type\":\"Number\",\"Value\":\"1e12\"}}", false},
    {"{\"p\":[{\"numeric\":[\">\",0]}]}", "{\"p\":{\"Type\":\"String\",\"Value\":\"5\"}}", false},
    /* Prefixes. */
    {"{\"c\":[{\"prefix\":\"bas\"}]}", "{\"c\":{\"Type\":\"String\",\"Value\":\"baseball\"}}",
     true},
    {"{\"c\":[{\"prefix\":\"bas\"}]}", "{\"c\":{\"Type\":\"String\",\"Value\":\"ba\"}}", false},
    {"{\"c\":[{\"prefix\":\"bas\"}]}", "{\"c\":{\"Type\":\"String\",\"Value\":\"Baseball\"}}",
     false},
    /* anything-but: one value, a list, numbers, a prefix; the attribute must be there. */
    {"{\"c\":[{\"anything-but\":\"rugby\"}]}", "{\"c\":{\"Type\":\"String\",\"Value\":\"soccer\"}}",
     true},
    {"{\"c\":[{\"anything-but\":\"rugby\"}]}", "{\"c\":{\"Type\":\"String\",\"Value\":\"rugby\"}}",
     false},
    {"{\"c\":[{\"anything-but\":[\"rugby\",\"tennis\"]}]}",
     "{\"c\":{\"Type\":\"String\",\"Value\":\"tennis\"}}", false},
    {"{\"c\":[{\"anything-but\":[\"rugby\",\"tennis\"]}]}", "{}", false},
    {"{\"price\":[{\"anything-but\":[100,500]}]}",
     "{\"price\":{\"Type\":\"Number\",\"Value\":\"100.1\"}}", true},
    {"{\"price\":[{\"anything-but\":[100,500]}]}",
     "{\"price\":{\"Type\":\"Number\",\"Value\":\"100\"}}", false},
    {"{\"price\":[{\"anything-but\":[100,500]}]}",
     "{\"price\":{\"Type\":\"String.Array\",\"Value\":\"[100, 50]\"}}", true},
    {"{\"price\":[{\"anything-but\":[100,500]}]}",
     "{\"price\":{\"Type\":\"String.Array\",\"Value\":\"[100, 500]\"}}", false},
    {"{\"c\":[{\"anything-but\":{\"prefix\":\"order-\"}}]}",
     "{\"c\":{\"Type\":\"String\",\"Value\":\"order-cancelled\"}}", false},
    {"{\"c\":[{\"anything-but\":{\"prefix\":\"order-\"}}]}",
     "{\"c\":{\"Type\":\"String\",\"Value\":\"refund\"}}", true},
    /* exists. */
    {"{\"c\":[{\"exists\":true}]}", "{\"c\":{\"Type\":\"String\",\"Value\":\"x\"}}", true},
    {"{\"c\":[{\"exists\":true}]}", "{}", false},
    {"{\"c\":[{\"exists\":false}]}", "{}", true},
    {"{\"c\":[{\"exists\":false}]}", "{\"c\":{\"Type\":\"Number\",\"Value\":\"1\"}}", false},
    {"{\"c\":[\"x\",{\"exists\":false}]}", "{}", true},
    {"{\"c\":[\"x\",{\"exists\":false}]}", "{\"c\":{\"Type\":\"String\",\"Value\":\"x\"}}", true},
    {"{\"c\":[\"x\",{\"exists\":false}]}", "{\"c\":{\"Type\":\"String\",\"Value\":\"y\"}}", false},
    /* Binary attributes are not seen by policies. */
    {"{\"b\":[{\"exists\":true}]}", "{\"b\":{\"Type\":\"Binary\",\"Value\":\"AAEC\"}}", false},
    {"{\"b\":[{\"exists\":false}]}", "{\"b\":{\"Type\":\"Binary\",\"Value\":\"AAEC\"}}", true},
    /* String.Array: one element meeting a condition is enough. */
    {"{\"customer_interests\":[\"rugby\"]}",
     "{\"customer_interests\":{\"Type\":\"String.Array\",\"Value\":\"[\\\"soccer\\\",\\\"rugby\\\","
     "\\\"hockey\\\"]\"}}",
     true},
    {"{\"customer_interests\":[\"golf\"]}",
     "{\"customer_interests\":{\"Type\":\"String.Array\",\"Value\":\"[\\\"soccer\\\",\\\"rugby\\\"]"
     "\"}}",
     false},
    {"{\"v\":[{\"numeric\":[\">\",2]}]}",
     "{\"v\":{\"Type\":\"String.Array\",\"Value\":\"[1, \\\"7\\\", 3]\"}}", true},
    {"{\"v\":[{\"prefix\":\"a\"}]}", "{\"v\":{\"Type\":\"String.Array\",\"Value\":\"[]\"}}", false},
    {"{\"v\":[{\"exists\":true}]}", "{\"v\":{\"Type\":\"String.Array\",\"Value\":\"[]\"}}", true},
    /* The empty policy lets everything through. */
    {"{}", "{}", true},
};

static void test_matching_follows_sns(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        filter_policy_t *p = policy(cases[i].policy);
        filter_attrs_t *a = attrs(cases[i].attrs, false);
        bool got = filter_policy_matches(p, a);
        if (got != cases[i].match)
            fail_msg("policy %s on %s: got %s, want %s", cases[i].policy, cases[i].attrs,
                     got ? "match" : "no match", cases[i].match ? "match" : "no match");
        filter_policy_free(p);
        filter_attrs_free(a);
    }
}

static void test_short_attributes_and_their_sns_form(void **state)
{
    (void)state;
    filter_attrs_t *a = attrs("{\"color\":\"red\",\"size\":3,\"tags\":[\"x\",2],"
                              "\"api\":{\"DataType\":\"String\",\"StringValue\":\"v\"}}",
                              true);
    filter_policy_t *p = policy("{\"color\":[\"red\"],\"size\":[{\"numeric\":[\">=\",3]}],"
                                "\"tags\":[2],\"api\":[\"v\"]}");
    assert_true(filter_policy_matches(p, a));
    json_t *sns = filter_attrs_sns(a);
    char *text = json_dumps(sns, JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(text, "{\"api\":{\"Type\":\"String\",\"Value\":\"v\"},"
                              "\"color\":{\"Type\":\"String\",\"Value\":\"red\"},"
                              "\"size\":{\"Type\":\"Number\",\"Value\":\"3\"},"
                              "\"tags\":{\"Type\":\"String.Array\",\"Value\":\"[\\\"x\\\",2]\"}}");
    free(text);
    json_decref(sns);
    /* Names, types and values, as SNS counts a message's size. */
    assert_int_equal(filter_attrs_bytes(a),
                     strlen("color") + strlen("String") + strlen("red") + strlen("size") +
                         strlen("Number") + 1 + strlen("tags") + strlen("String.Array") +
                         strlen("[\"x\",2]") + strlen("api") + strlen("String") + 1);
    filter_policy_free(p);
    filter_attrs_free(a);

    /* Without allow_short, a bare value is refused. */
    json_t *doc = json_loads("{\"color\":\"red\"}", 0, NULL);
    filter_attrs_t *none = NULL;
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(filter_attrs_parse(doc, false, "attributes", &none, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "attributes.color"));
    json_decref(doc);
    /* No attributes at all. */
    assert_int_equal(filter_attrs_parse(NULL, true, "attributes", &none, &err), 0);
    p = policy("{\"c\":[{\"exists\":false}]}");
    assert_true(filter_policy_matches(p, none));
    assert_true(filter_policy_matches(p, NULL));
    filter_policy_free(p);
    filter_attrs_free(none);
}

static void expect_refused_policy(const char *text, const char *msg)
{
    json_t *doc = json_loads(text, JSON_DECODE_ANY, NULL);
    if (!doc)
        fail_msg("bad test policy `%s`", text);
    filter_policy_t *p = NULL;
    mf_error_t err = MF_ERROR_INIT;
    int r = filter_policy_parse(doc, "filter", &p, &err);
    json_decref(doc);
    if (r != -EINVAL) {
        filter_policy_free(p);
        fail_msg("accepted policy `%s`", text);
    }
    if (!strstr(err.msg, msg))
        fail_msg("policy `%s`: got `%s`, want `%s`", text, err.msg, msg);
}

static void test_bad_policies_name_the_problem(void **state)
{
    (void)state;
    expect_refused_policy("[]", "filter: must be a JSON object");
    expect_refused_policy("{\"a\":[1],\"b\":[1],\"c\":[1],\"d\":[1],\"e\":[1],\"f\":[1]}",
                          "6 attribute names; at most 5");
    expect_refused_policy("{\"a\":\"x\"}", "filter.a: must be a non-empty list");
    expect_refused_policy("{\"a\":[]}", "filter.a: must be a non-empty list");
    expect_refused_policy("{\"a\":{\"b\":[\"x\"]}}", "do not nest");
    expect_refused_policy("{\"a\":[[\"x\"]]}", "filter.a[0]: a list inside a list");
    expect_refused_policy("{\"a\":[\"x\",true]}", "filter.a[1]: true, false and null");
    expect_refused_policy("{\"a\":[null]}", "filter.a[0]: true, false and null");
    expect_refused_policy("{\"a\":[1e10]}", "from -1e9 to 1e9");
    expect_refused_policy("{\"a\":[{\"suffix\":\"x\"}]}", "filter.a[0]: unknown operator `suffix`");
    expect_refused_policy("{\"a\":[{\"prefix\":\"x\",\"exists\":true}]}", "exactly one of");
    expect_refused_policy("{\"a\":[{\"prefix\":1}]}", "prefix must be a string");
    expect_refused_policy("{\"a\":[{\"exists\":\"yes\"}]}", "exists must be true or false");
    expect_refused_policy("{\"a\":[{\"anything-but\":[]}]}", "anything-but needs at least one");
    expect_refused_policy("{\"a\":[{\"anything-but\":{\"suffix\":\"x\"}}]}",
                          "must be {\"prefix\": \"text\"}");
    expect_refused_policy("{\"a\":[{\"anything-but\":[\"x\",[1]]}]}",
                          "must be a string or a number");
    expect_refused_policy("{\"a\":[{\"numeric\":[\"=\"]}]}", "numeric needs");
    expect_refused_policy("{\"a\":[{\"numeric\":[\"!=\",1]}]}", "numeric[0] must be one of");
    expect_refused_policy("{\"a\":[{\"numeric\":[\"=\",\"1\"]}]}", "numeric[1] must be a number");
    expect_refused_policy("{\"a\":[{\"numeric\":[\"<\",1,\">\",0]}]}", "starts with its lower");
    expect_refused_policy("{\"a\":[{\"numeric\":[\">\",1,\">\",0]}]}", "ends with its upper");
    expect_refused_policy("{\"a\":[{\"numeric\":[\">\",5,\"<\",5]}]}", "must be below");
    expect_refused_policy("{\"a\":[{\"numeric\":[\">\",0,\"<\",2e9]}]}", "from -1e9 to 1e9");
    /* 6 × 5 × 6 = 180 combinations. */
    expect_refused_policy("{\"a\":[1,2,3,4,5,6],\"b\":[1,2,3,4,5],\"c\":[1,2,3,4,5,6]}",
                          "more than 150 combinations");
    expect_refused_policy("{\"\":[1]}", "attribute names are 1 to 256");

    /* 150 is allowed: 5 × 5 × 6. */
    filter_policy_t *p = policy("{\"a\":[1,2,3,4,5],\"b\":[1,2,3,4,5],\"c\":[1,2,3,4,5,6]}");
    filter_policy_free(p);
}

static void expect_refused_attrs(const char *text, bool allow_short, const char *msg)
{
    json_t *doc = json_loads(text, JSON_DECODE_ANY, NULL);
    if (!doc)
        fail_msg("bad test attributes `%s`", text);
    filter_attrs_t *a = NULL;
    mf_error_t err = MF_ERROR_INIT;
    int r = filter_attrs_parse(doc, allow_short, "attributes", &a, &err);
    json_decref(doc);
    if (r != -EINVAL) {
        filter_attrs_free(a);
        fail_msg("accepted attributes `%s`", text);
    }
    if (!strstr(err.msg, msg))
        fail_msg("attributes `%s`: got `%s`, want `%s`", text, err.msg, msg);
}

static void test_bad_attributes_name_the_problem(void **state)
{
    (void)state;
    expect_refused_attrs("[1]", true, "attributes: must be an object");
    expect_refused_attrs("{\"a\":{\"Value\":\"x\"}}", false, "attributes.a: needs a Type");
    expect_refused_attrs("{\"a\":{\"Type\":\"Text\",\"Value\":\"x\"}}", false,
                         "Type must be String, Number, String.Array or Binary");
    expect_refused_attrs("{\"a\":{\"Type\":\"String\"}}", false, "attributes.a: needs a Value");
    expect_refused_attrs("{\"a\":{\"Type\":\"String\",\"Value\":\"\"}}", false, "non-empty string");
    expect_refused_attrs("{\"a\":{\"Type\":\"Number\",\"Value\":\"12abc\"}}", false,
                         "a Number's value must be a number");
    expect_refused_attrs("{\"a\":{\"Type\":\"Number\",\"Value\":\"inf\"}}", false,
                         "a Number's value must be a number");
    expect_refused_attrs("{\"a\":{\"Type\":\"Number\",\"Value\":\" 1\"}}", false,
                         "a Number's value must be a number");
    expect_refused_attrs("{\"a\":{\"Type\":\"String.Array\",\"Value\":\"x\"}}", false,
                         "must be a JSON array");
    expect_refused_attrs("{\"a\":{\"Type\":\"String.Array\",\"Value\":\"[[1]]\"}}", false,
                         "not lists or objects");
    expect_refused_attrs("{\"a\":{\"Type\":\"Binary\",\"Value\":\"***\"}}", false,
                         "a Binary's value must be base64");
    expect_refused_attrs("{\"a\":{\"Type\":\"String\",\"Value\":\"x\",\"Extra\":1}}", false,
                         "unknown member `Extra`");
    expect_refused_attrs("{\"AWS.x\":\"v\"}", true, "not AWS.* or Amazon.*");
    expect_refused_attrs("{\"a..b\":\"v\"}", true, "no leading, trailing or double dots");
    expect_refused_attrs("{\"a b\":\"v\"}", true, "attributes.a b: a name is");
    expect_refused_attrs("{\"a\":true}", true, "must be a string, a number, a list");
    expect_refused_attrs("{\"a\":\"1\",\"b\":\"1\",\"c\":\"1\",\"d\":\"1\",\"e\":\"1\",\"f\":\"1\","
                         "\"g\":\"1\",\"h\":\"1\",\"i\":\"1\",\"j\":\"1\",\"k\":\"1\"}",
                         true, "11 attributes; a message may have 10 at most");
}

/* The canonical form parses back to itself, and to a policy that decides
 * as the first. */
static void test_canonical_form_round_trips(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        filter_policy_t *p = policy(cases[i].policy);
        json_t *canon = filter_policy_json(p);
        filter_policy_t *q = NULL;
        mf_error_t err = MF_ERROR_INIT;
        if (filter_policy_parse(canon, "filter", &q, &err) < 0)
            fail_msg("canonical form of %s refused: %s", cases[i].policy, err.msg);
        json_t *again = filter_policy_json(q);
        assert_true(json_equal(canon, again));
        filter_attrs_t *a = attrs(cases[i].attrs, false);
        assert_int_equal(filter_policy_matches(p, a), filter_policy_matches(q, a));
        filter_attrs_free(a);
        json_decref(canon);
        json_decref(again);
        filter_policy_free(p);
        filter_policy_free(q);
    }
    /* A single anything-but value becomes a list; numeric = stays one. */
    filter_policy_t *p = policy("{\"a\":[{\"anything-but\":\"x\"},{\"numeric\":[\"=\",2.5]}]}");
    json_t *canon = filter_policy_json(p);
    char *text = json_dumps(canon, JSON_COMPACT);
    assert_string_equal(text, "{\"a\":[{\"anything-but\":[\"x\"]},{\"numeric\":[\"=\",2.5]}]}");
    free(text);
    json_decref(canon);
    filter_policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matching_follows_sns),
        cmocka_unit_test(test_short_attributes_and_their_sns_form),
        cmocka_unit_test(test_bad_policies_name_the_problem),
        cmocka_unit_test(test_bad_attributes_name_the_problem),
        cmocka_unit_test(test_canonical_form_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
