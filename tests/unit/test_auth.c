/* Access keys with a tenant and a role (auth/auth.h): the keys' two
 * optional columns, what each role may do, the tenants' account ids, and
 * the bearer tokens that find a key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/auth.h"
#include "tmpdir.h"

static void test_roles_allow_what_the_docs_say(void **state)
{
    (void)state;
    /* rows: viewer, invoker, developer, admin; columns: the actions. */
    static const bool allowed[4][6] = {
        /* any  read   call   invoke deploy admin */
        { true, true, true, false, false, false },
        { true, false, true, true, false, false },
        { true, true, true, true, true, false },
        { true, true, true, true, true, true },
    };
    for (int r = 0; r < 4; r++)
        for (int a = 0; a < 6; a++)
            assert_int_equal(auth_role_allows((auth_role_t)r, (auth_action_t)a), allowed[r][a]);
    for (int a = 0; a < 6; a++) /* the least role that may is one that may */
        assert_true(auth_role_allows(auth_action_role((auth_action_t)a), (auth_action_t)a));
    assert_string_equal(auth_role_name(AUTH_INVOKER), "invoker");
    assert_string_equal(auth_action_name(AUTH_DEPLOY), "deploy");
}

static void test_keys_take_a_tenant_and_a_role(void **state)
{
    (void)state;
    auth_keys_t keys = { 0 };
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(auth_keys_parse_list(&keys, "A:a,B:b:team-1,C:c:team-1:viewer", &err), 0);
    assert_int_equal(keys.count, 3);
    assert_string_equal(keys.keys[0].tenant, "default");
    assert_int_equal(keys.keys[0].role, AUTH_DEVELOPER);
    assert_string_equal(keys.keys[1].tenant, "team-1");
    assert_int_equal(keys.keys[1].role, AUTH_DEVELOPER);
    assert_int_equal(keys.keys[2].role, AUTH_VIEWER);
    const auth_key_t *k = auth_bearer_key(&keys, "Bearer C:c");
    assert_non_null(k);
    assert_string_equal(k->id, "C");
    assert_null(auth_bearer_key(&keys, "Bearer C:b"));
    assert_null(auth_bearer_key(&keys, "Bearer C"));
    assert_null(auth_bearer_key(&keys, NULL));

    static const struct {
        const char *spec, *mention;
    } bad[] = {
        { "A:a:Team", "tenant `Team`" },
        { "A:a:t:owner", "role `owner`" },
        { "A:a:t:viewer:x", "ID:SECRET[:TENANT[:ROLE]]" },
        { "A", "ID:SECRET" },
        { "A:a:" "abcdefghijklmnopqrstuvwxyz0123456", "tenant" }, /* 33 characters */
        { "Z:z,Z:y", "given twice" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        auth_keys_t more = { 0 };
        err = (mf_error_t)MF_ERROR_INIT;
        assert_int_not_equal(auth_keys_parse_list(&more, bad[i].spec, &err), 0);
        if (!strstr(err.msg, bad[i].mention))
            fail_msg("%s: `%s` does not mention `%s`", bad[i].spec, err.msg, bad[i].mention);
        auth_keys_release(&more);
    }
    auth_keys_release(&keys);
}

static void test_a_keys_file_names_its_bad_line(void **state)
{
    (void)state;
    void *dir = NULL;
    assert_int_equal(setup_dir(&dir), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/keys", (char *)dir);
    FILE *f = fopen(path, "w");
    fputs("# comment\n\nA  a\tteam-2   admin\nB b default  nobody\n", f);
    fclose(f);
    auth_keys_t keys = { 0 };
    mf_error_t err = MF_ERROR_INIT;
    assert_int_not_equal(auth_keys_load_file(&keys, path, &err), 0);
    assert_non_null(strstr(err.msg, "line 4"));
    assert_non_null(strstr(err.msg, "role `nobody`"));
    assert_int_equal(keys.count, 1);
    assert_string_equal(keys.keys[0].tenant, "team-2");
    assert_int_equal(keys.keys[0].role, AUTH_ADMIN);
    auth_keys_release(&keys);
    teardown_dir(&dir);
}

static void test_development_mode_is_the_default_tenants_admin(void **state)
{
    (void)state;
    auth_keys_t none = { 0 };
    const auth_key_t *k = auth_bearer_key(&none, NULL);
    assert_non_null(k);
    assert_string_equal(k->tenant, "default");
    assert_int_equal(k->role, AUTH_ADMIN);
}

static void test_tenants_have_twelve_digit_accounts(void **state)
{
    (void)state;
    char a[13], b[13], again[13];
    tenant_account("default", a);
    assert_string_equal(a, "000000000000");
    tenant_account("team-b", b);
    tenant_account("team-b", again);
    assert_string_equal(b, again);
    assert_int_equal(strlen(b), 12);
    assert_int_equal(strspn(b, "0123456789"), 12);
    assert_string_not_equal(a, b);
    tenant_account("team-c", again);
    assert_string_not_equal(b, again);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles_allow_what_the_docs_say),
        cmocka_unit_test(test_keys_take_a_tenant_and_a_role),
        cmocka_unit_test(test_a_keys_file_names_its_bad_line),
        cmocka_unit_test(test_development_mode_is_the_default_tenants_admin),
        cmocka_unit_test(test_tenants_have_twelve_digit_accounts),
    };
    return cmocka_run_group_tests_name("access keys, tenants and roles", tests, NULL, NULL);
}
