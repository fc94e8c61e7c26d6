/* Lambda's tenant isolation mode, the scheduler's side
 * (src/exec/tenancy.c): a call only ever gets an idle instance of its own
 * tenant id, the most recently used first; the room another tenant id's
 * idle instances take is found, longest idle first; the cap on instances
 * per tenant id counts starting, idle and busy ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "exec/exec_internal.h"

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
        cmocka_unit_test(test_an_idle_instance_of_another_tenant_id_is_never_taken),
        cmocka_unit_test(test_a_tenant_id_deep_in_the_stack_is_found_and_unlinked),
        cmocka_unit_test(test_a_function_without_the_mode_takes_the_top_of_the_stack),
        cmocka_unit_test(test_room_is_taken_from_the_longest_idle_of_other_tenant_ids),
        cmocka_unit_test(test_the_cap_counts_every_live_instance_of_the_tenant_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
