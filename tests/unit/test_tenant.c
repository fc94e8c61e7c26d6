/* core/tenant.h: qualified names, the tenant and name in them, ARNs and
 * account ids, and the tenants taken out of a message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/tenant.h"

static void test_the_default_tenants_names_are_as_given(void **state)
{
    (void)state;
    char q[TENANT_QNAME_MAX + 1], t[TENANT_MAX + 1];
    assert_true(tenant_qualify("default", "orders", q, sizeof q));
    assert_string_equal(q, "orders");
    assert_true(tenant_qualify(NULL, "orders", q, sizeof q));
    assert_string_equal(q, "orders");
    tenant_of("orders", t);
    assert_string_equal(t, "default");
    assert_string_equal(tenant_local("orders"), "orders");
    assert_true(tenant_owns("default", "orders"));
    assert_false(tenant_owns("team-a", "orders"));
}

static void test_another_tenants_names_carry_it(void **state)
{
    (void)state;
    char q[TENANT_QNAME_MAX + 1], t[TENANT_MAX + 1];
    assert_true(tenant_qualify("team-a", "orders", q, sizeof q));
    assert_string_equal(q, "team-a~orders");
    tenant_of(q, t);
    assert_string_equal(t, "team-a");
    assert_string_equal(tenant_local(q), "orders");
    assert_true(tenant_owns("team-a", q));
    assert_false(tenant_owns("default", q));
    assert_false(tenant_owns("team-b", q));
    /* The longest tenant and name fit; one more does not. */
    char tenant[TENANT_MAX + 1], local[TENANT_LOCAL_MAX + 2];
    memset(tenant, 'x', TENANT_MAX);
    tenant[TENANT_MAX] = '\0';
    memset(local, 'n', TENANT_LOCAL_MAX);
    local[TENANT_LOCAL_MAX] = '\0';
    assert_true(tenant_qualify(tenant, local, q, sizeof q));
    assert_int_equal(strlen(q), TENANT_QNAME_MAX);
    strcat(local, "n");
    assert_false(tenant_qualify(tenant, local, q, sizeof q));
    assert_string_equal(q, "");
}

static void test_a_reference_resolves_within_its_owners_tenant(void **state)
{
    (void)state;
    char q[TENANT_QNAME_MAX + 1];
    assert_true(tenant_resolve("team-a~caller", "callee", q, sizeof q));
    assert_string_equal(q, "team-a~callee");
    assert_true(tenant_resolve("caller", "callee", q, sizeof q));
    assert_string_equal(q, "callee");
    /* A reference never leaves its owner's tenant. */
    assert_true(tenant_resolve("caller", "team-b~callee", q, sizeof q));
    assert_string_equal(q, "callee");
}

static void test_check_takes_valid_tenants_only(void **state)
{
    (void)state;
    assert_string_equal(tenant_check("orders"), "orders");
    assert_string_equal(tenant_check("team-a~orders"), "orders");
    assert_null(tenant_check("Team~orders"));
    assert_null(tenant_check("~orders"));
    assert_null(tenant_check("team-a~"));
    assert_true(tenant_valid("a-1", 3));
    assert_false(tenant_valid("a_1", 3));
    assert_false(tenant_valid("", 0));
    assert_false(tenant_valid("abcdefghijklmnopqrstuvwxyz0123456", 33));
}

static void test_accounts_and_arns(void **state)
{
    (void)state;
    char a[13], b[13], arn[256];
    tenant_account("default", a);
    assert_string_equal(a, "000000000000");
    tenant_account("team-a", a);
    tenant_account("team-b", b);
    assert_int_equal(strlen(a), 12);
    assert_string_not_equal(a, b);
    assert_string_not_equal(a, "000000000000");
    tenant_arn("lambda", "us-east-1", "function:", "team-a~orders", arn, sizeof arn);
    char want[256];
    snprintf(want, sizeof want, "arn:aws:lambda:us-east-1:%s:function:orders", a);
    assert_string_equal(arn, want);
    tenant_arn("sns", "eu-west-1", "", "news", arn, sizeof arn);
    assert_string_equal(arn, "arn:aws:sns:eu-west-1:000000000000:news");
}

static void test_strip_takes_the_tenants_out_of_a_message(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"no function named team-a~orders", "no function named orders"},
        {"`team-a~x` and team-b~y, z", "`x` and y, z"},
        {"function orders is busy", "function orders is busy"},
        /* Not a tenant: inside a word, or too long, or upper case. */
        {"Team~x a_b~y", "Team~x a_b~y"},
        {"abcdefghijklmnopqrstuvwxyz0123456~x", "abcdefghijklmnopqrstuvwxyz0123456~x"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s", cases[i][0]);
        tenant_strip(msg);
        assert_string_equal(msg, cases[i][1]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_default_tenants_names_are_as_given),
        cmocka_unit_test(test_another_tenants_names_carry_it),
        cmocka_unit_test(test_a_reference_resolves_within_its_owners_tenant),
        cmocka_unit_test(test_check_takes_valid_tenants_only),
        cmocka_unit_test(test_accounts_and_arns),
        cmocka_unit_test(test_strip_takes_the_tenants_out_of_a_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
