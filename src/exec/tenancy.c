/* Which instances a call may run on under Lambda's tenant isolation mode:
 * an instance serves one tenant id for its whole life (the first call it
 * was started for sets it), so a call is only ever handed to an idle
 * instance of its own tenant id, and a function may cap how many
 * instances one tenant id holds. A function without the mode has every
 * call and instance with the tenant id "", which makes these the plain
 * LIFO choice. */
#include <string.h>

#include "exec/exec_internal.h"

exec_instance_t *exec__idle_take(exec_pool_t *p, const char *tenant_id)
{
    /* The stack is most recently used first: the first match is the one
     * whose caches are warmest. */
    for (exec_instance_t **pp = &p->idle; *pp; pp = &(*pp)->next_idle) {
        exec_instance_t *inst = *pp;
        if (strcmp(inst->tenant_id, tenant_id))
            continue;
        *pp = inst->next_idle;
        inst->next_idle = NULL;
        return inst;
    }
    return NULL;
}

bool exec__idle_has(const exec_pool_t *p, const char *tenant_id)
{
    for (const exec_instance_t *inst = p->idle; inst; inst = inst->next_idle)
        if (!strcmp(inst->tenant_id, tenant_id))
            return true;
    return false;
}

exec_instance_t *exec__idle_other_oldest(const exec_pool_t *p, const char *tenant_id)
{
    exec_instance_t *oldest = NULL;
    for (exec_instance_t *inst = p->idle; inst; inst = inst->next_idle)
        if (strcmp(inst->tenant_id, tenant_id) &&
            (!oldest || inst->idle_since_ns < oldest->idle_since_ns))
            oldest = inst;
    return oldest;
}

unsigned exec__tenant_instances(const exec_pool_t *p, const char *tenant_id)
{
    unsigned n = 0;
    for (const exec_instance_t *inst = p->instances; inst; inst = inst->next)
        if (inst->state != INST_STOPPING && !strcmp(inst->tenant_id, tenant_id))
            n++;
    return n;
}

bool exec__tenant_busy(const exec_pool_t *p, const char *tenant_id)
{
    for (const exec_instance_t *inst = p->instances; inst; inst = inst->next)
        if (inst->state == INST_BUSY && !strcmp(inst->tenant_id, tenant_id))
            return true;
    return false;
}

bool exec__tenant_at_cap(const exec_pool_t *p, const char *tenant_id)
{
    int cap = p->fn.tenancy.max_instances_per_tenant;
    return p->fn.tenancy.per_tenant && cap > 0 &&
           exec__tenant_instances(p, tenant_id) >= (unsigned)cap;
}
