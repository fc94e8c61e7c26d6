/* Lambda's tenant isolation mode, a function's side
 * (src/registry/tenancy_config.c): its settings, fixed at creation, and the
 * tenant ids its calls carry, required with the mode and refused without,
 * by Lambda's rule of length and characters. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "registry/registry.h"

/* ---- settings -------------------------------------------------------------- */

static int apply(const char *json, bool create, fn_tenancy_t *t, mf_error_t *err)
{
    json_t *body = json_loads(json, 0, NULL);
    assert_non_null(body);
    int r = fn_tenancy_apply(body, create, t, err);
    json_decref(body);
    return r;
}

static void test_the_mode_is_set_at_creation(void **state)
{
    (void)state;
    fn_tenancy_t t = {0};
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(apply("{\"tenancy\": \"per_tenant\", \"max_instances_per_tenant\": 2}", true,
                           &t, &err),
                     0);
    assert_true(t.per_tenant);
    assert_int_equal(t.max_instances_per_tenant, 2);
    json_t *out = json_object();
    fn_tenancy_to_json(&t, out);
    fn_tenancy_t back;
    fn_tenancy_read(out, &back);
    assert_true(back.per_tenant);
    assert_int_equal(back.max_instances_per_tenant, 2);
    json_decref(out);
}

static void test_an_update_may_not_change_the_mode(void **state)
{
    (void)state;
    mf_error_t err = MF_ERROR_INIT;
    fn_tenancy_t on = {.per_tenant = true};
    assert_int_equal(apply("{\"tenancy\": null}", false, &on, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "tenancy: is fixed when a function is created"));
    assert_true(on.per_tenant);
    fn_tenancy_t off = {0};
    assert_int_equal(apply("{\"tenancy\": \"per_tenant\"}", false, &off, &err), -EINVAL);
    assert_false(off.per_tenant);
    /* The same mode again, and a new cap, are fine. */
    assert_int_equal(apply("{\"tenancy\": \"per_tenant\", \"max_instances_per_tenant\": 5}",
                           false, &on, &err),
                     0);
    assert_int_equal(on.max_instances_per_tenant, 5);
    assert_int_equal(apply("{\"max_instances_per_tenant\": null}", false, &on, &err), 0);
    assert_int_equal(on.max_instances_per_tenant, 0);
}

static void test_bad_settings_are_refused_naming_the_field(void **state)
{
    (void)state;
    mf_error_t err = MF_ERROR_INIT;
    fn_tenancy_t t = {0};
    assert_int_equal(apply("{\"tenancy\": \"PER_TENANT\"}", true, &t, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "tenancy: must be"));
    assert_int_equal(apply("{\"tenancy\": \"per_tenant\", \"max_instances_per_tenant\": 0}",
                           true, &t, &err),
                     -EINVAL);
    assert_non_null(strstr(err.msg, "max_instances_per_tenant: must be an integer from 1"));
    assert_int_equal(apply("{\"tenancy\": \"per_tenant\", \"max_instances_per_tenant\": 1001}",
                           true, &t, &err),
                     -EINVAL);
    assert_int_equal(apply("{\"max_instances_per_tenant\": 2}", true, &t, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "max_instances_per_tenant: only a function with"));
    assert_false(t.per_tenant);
}

static void test_tenant_ids_follow_lambdas_rules(void **state)
{
    (void)state;
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(fn_tenant_id_check("X-Amz-Tenant-Id", "blue", &err), 0);
    assert_int_equal(fn_tenant_id_check("X-Amz-Tenant-Id", "a.b_c:d/e=f+g-h@i j", &err), 0);
    char longest[FN_TENANT_ID_MAX + 2];
    memset(longest, 'a', FN_TENANT_ID_MAX);
    longest[FN_TENANT_ID_MAX] = '\0';
    assert_int_equal(fn_tenant_id_check("X-Amz-Tenant-Id", longest, &err), 0);
    longest[FN_TENANT_ID_MAX] = 'a';
    longest[FN_TENANT_ID_MAX + 1] = '\0';
    assert_int_equal(fn_tenant_id_check("X-Amz-Tenant-Id", longest, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "1 to 256 characters"));
    assert_int_equal(fn_tenant_id_check("tenant_id", "", &err), -EINVAL);
    assert_int_equal(fn_tenant_id_check("tenant_id", "a#b", &err), -EINVAL);
    assert_non_null(strstr(err.msg, "tenant_id: a tenant id may hold only"));
    assert_non_null(strstr(err.msg, "character 2"));
    assert_int_equal(fn_tenant_id_check("tenant_id", "caf\xc3\xa9", &err), -EINVAL);
}

static void test_a_call_names_a_tenant_id_only_for_a_function_with_the_mode(void **state)
{
    (void)state;
    mf_error_t err = MF_ERROR_INIT;
    fn_tenancy_t on = {.per_tenant = true}, off = {0};
    assert_int_equal(fn_tenant_id_for("f", &on, "X-Amz-Tenant-Id", "blue", &err), 0);
    assert_int_equal(fn_tenant_id_for("f", &on, "X-Amz-Tenant-Id", NULL, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "X-Amz-Tenant-Id: f has tenant isolation"));
    assert_int_equal(fn_tenant_id_for("f", &on, "X-Amz-Tenant-Id", "", &err), -EINVAL);
    assert_int_equal(fn_tenant_id_for("f", &on, "X-Amz-Tenant-Id", "a\nb", &err), -EINVAL);
    assert_int_equal(fn_tenant_id_for("f", &off, "X-Amz-Tenant-Id", NULL, &err), 0);
    assert_int_equal(fn_tenant_id_for("f", &off, "X-Amz-Tenant-Id", "", &err), 0);
    assert_int_equal(fn_tenant_id_for("f", &off, "tenant_id", "blue", &err), -EINVAL);
    assert_non_null(strstr(err.msg, "tenant_id: f does not have tenant isolation"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_mode_is_set_at_creation),
        cmocka_unit_test(test_an_update_may_not_change_the_mode),
        cmocka_unit_test(test_bad_settings_are_refused_naming_the_field),
        cmocka_unit_test(test_tenant_ids_follow_lambdas_rules),
        cmocka_unit_test(test_a_call_names_a_tenant_id_only_for_a_function_with_the_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
