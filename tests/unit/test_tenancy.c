/* Lambda's tenant isolation mode: the function's settings and the tenant
 * ids its calls carry (src/registry/tenancy_config.c), and the choice of
 * instances by tenant id (src/exec/tenancy.c): a call only ever gets an
 * idle instance of its own tenant id, the most recently used first; the
 * room another tenant id's idle instances take is found; the cap on
 * instances per tenant id counts starting, idle and busy ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "exec/exec_internal.h"
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

/* ---- instances ------------------------------------------------------------- */

#define N_INST 6

typedef struct pool_fixture {
    exec_pool_t p;
    exec_instance_t inst[N_INST];
} pool_fixture_t;

/* A pool of instances i (tenant ids[i], state states[i]); the idle ones
 * are stacked in order, the first given on top, each idle since idle_ns[i]. */
static void pool_make(pool_fixture_t *f, int n, const char *const *ids,
                      const exec_inst_state_t *states, const uint64_t *idle_ns, int cap)
{
    memset(f, 0, sizeof *f);
    f->p.fn.tenancy.per_tenant = true;
    f->p.fn.tenancy.max_instances_per_tenant = cap;
    exec_instance_t **idle_tail = &f->p.idle;
    for (int i = 0; i < n; i++) {
        exec_instance_t *inst = &f->inst[i];
        inst->pool = &f->p;
        snprintf(inst->id, sizeof inst->id, "i%d", i);
        snprintf(inst->tenant_id, sizeof inst->tenant_id, "%s", ids[i]);
        inst->state = states[i];
        inst->idle_since_ns = idle_ns ? idle_ns[i] : 0;
        inst->next = f->p.instances;
        f->p.instances = inst;
        if (states[i] == INST_IDLE) {
            *idle_tail = inst;
            idle_tail = &inst->next_idle;
        }
    }
}

static void test_an_idle_instance_of_another_tenant_id_is_never_taken(void **state)
{
    (void)state;
    pool_fixture_t f;
    const char *ids[] = { "A", "A", "B" };
    exec_inst_state_t st[] = { INST_IDLE, INST_IDLE, INST_BUSY };
    pool_make(&f, 3, ids, st, NULL, 0);
    assert_null(exec__idle_take(&f.p, "B"));
    assert_null(exec__idle_take(&f.p, "C"));
    assert_false(exec__idle_has(&f.p, "B"));
    assert_true(exec__idle_has(&f.p, "A"));
    /* The most recently used (top of the stack) first, each taken once. */
    assert_ptr_equal(exec__idle_take(&f.p, "A"), &f.inst[0]);
    assert_ptr_equal(exec__idle_take(&f.p, "A"), &f.inst[1]);
    assert_null(exec__idle_take(&f.p, "A"));
    assert_null(f.p.idle);
}

static void test_a_tenant_id_deep_in_the_stack_is_found_and_unlinked(void **state)
{
    (void)state;
    pool_fixture_t f;
    const char *ids[] = { "A", "B", "A", "C" };
    exec_inst_state_t st[] = { INST_IDLE, INST_IDLE, INST_IDLE, INST_IDLE };
    pool_make(&f, 4, ids, st, NULL, 0);
    assert_ptr_equal(exec__idle_take(&f.p, "C"), &f.inst[3]);
    assert_ptr_equal(exec__idle_take(&f.p, "B"), &f.inst[1]);
    /* What is left is the two of A, in their order. */
    assert_ptr_equal(f.p.idle, &f.inst[0]);
    assert_ptr_equal(f.p.idle->next_idle, &f.inst[2]);
    assert_null(f.p.idle->next_idle->next_idle);
}

static void test_a_function_without_the_mode_takes_the_top_of_the_stack(void **state)
{
    (void)state;
    pool_fixture_t f;
    const char *ids[] = { "", "" };
    exec_inst_state_t st[] = { INST_IDLE, INST_IDLE };
    pool_make(&f, 2, ids, st, NULL, 0);
    f.p.fn.tenancy.per_tenant = false;
    assert_ptr_equal(exec__idle_take(&f.p, ""), &f.inst[0]);
    assert_false(exec__tenant_at_cap(&f.p, ""));
}

static void test_room_is_taken_from_the_longest_idle_of_other_tenant_ids(void **state)
{
    (void)state;
    pool_fixture_t f;
    const char *ids[] = { "A", "B", "B", "C" };
    exec_inst_state_t st[] = { INST_IDLE, INST_IDLE, INST_IDLE, INST_BUSY };
    uint64_t idle[] = { 10, 30, 20, 5 };
    pool_make(&f, 4, ids, st, idle, 0);
    /* For A: the oldest idle of B (20), not A's own, not C's busy one. */
    assert_ptr_equal(exec__idle_other_oldest(&f.p, "A"), &f.inst[2]);
    /* For B: A's (10). */
    assert_ptr_equal(exec__idle_other_oldest(&f.p, "B"), &f.inst[0]);
    /* Only A's is idle and the call is A's: none. */
    exec__idle_take(&f.p, "B");
    exec__idle_take(&f.p, "B");
    assert_null(exec__idle_other_oldest(&f.p, "A"));
}

static void test_the_cap_counts_every_live_instance_of_the_tenant_id(void **state)
{
    (void)state;
    pool_fixture_t f;
    const char *ids[] = { "A", "A", "A", "B", "A" };
    exec_inst_state_t st[] = { INST_STARTING, INST_IDLE, INST_BUSY, INST_BUSY, INST_STOPPING };
    pool_make(&f, 5, ids, st, NULL, 3);
    assert_int_equal(exec__tenant_instances(&f.p, "A"), 3);
    assert_int_equal(exec__tenant_instances(&f.p, "B"), 1);
    assert_int_equal(exec__tenant_instances(&f.p, "C"), 0);
    assert_true(exec__tenant_at_cap(&f.p, "A"));
    assert_false(exec__tenant_at_cap(&f.p, "B"));
    f.p.fn.tenancy.max_instances_per_tenant = 4;
    assert_false(exec__tenant_at_cap(&f.p, "A"));
    /* No cap: never at it. */
    f.p.fn.tenancy.max_instances_per_tenant = 0;
    assert_false(exec__tenant_at_cap(&f.p, "A"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_mode_is_set_at_creation),
        cmocka_unit_test(test_an_update_may_not_change_the_mode),
        cmocka_unit_test(test_bad_settings_are_refused_naming_the_field),
        cmocka_unit_test(test_tenant_ids_follow_lambdas_rules),
        cmocka_unit_test(test_a_call_names_a_tenant_id_only_for_a_function_with_the_mode),
        cmocka_unit_test(test_an_idle_instance_of_another_tenant_id_is_never_taken),
        cmocka_unit_test(test_a_tenant_id_deep_in_the_stack_is_found_and_unlinked),
        cmocka_unit_test(test_a_function_without_the_mode_takes_the_top_of_the_stack),
        cmocka_unit_test(test_room_is_taken_from_the_longest_idle_of_other_tenant_ids),
        cmocka_unit_test(test_the_cap_counts_every_live_instance_of_the_tenant_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
