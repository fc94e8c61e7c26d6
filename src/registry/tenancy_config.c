/* A function's tenant isolation mode (Lambda's TenancyConfig, docs/metering.md):
 * its settings parsed, stored and shown here, and the tenant ids its calls
 * carry checked, beside the registry's other settings. */
#include <errno.h>
#include <string.h>

#include "registry/registry.h"

static const char *tc__mode_name(bool per_tenant)
{
    return per_tenant ? FN_TENANCY_PER_TENANT : "none";
}

int fn_tenancy_apply(const json_t *body, bool create, fn_tenancy_t *t, mf_error_t *err)
{
    fn_tenancy_t next = *t;
    const json_t *v = json_object_get(body, "tenancy");
    if (v) {
        if (!json_is_null(v) &&
            !(json_is_string(v) && !strcmp(json_string_value(v), FN_TENANCY_PER_TENANT)))
            return mf_error_plain(err, EINVAL, "tenancy: must be \"per_tenant\" or null");
        next.per_tenant = !json_is_null(v);
        /* Lambda fixes the mode when a function is created: an instance
         * that served one tenant id must never be handed another's, and a
         * change would leave calls in flight on either side of it. */
        if (!create && next.per_tenant != t->per_tenant)
            return mf_error_plain(err, EINVAL,
                                  "tenancy: is fixed when a function is created (this one's is "
                                  "%s); delete the function and create it again to change it",
                                  tc__mode_name(t->per_tenant));
    }
    v = json_object_get(body, "max_instances_per_tenant");
    if (v) {
        if (json_is_null(v)) {
            next.max_instances_per_tenant = 0;
        } else if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                   json_integer_value(v) > FN_MAX_INSTANCES_PER_TENANT) {
            return mf_error_plain(err, EINVAL,
                                  "max_instances_per_tenant: must be an integer from 1 to %d, or "
                                  "null for no cap but max_concurrency",
                                  FN_MAX_INSTANCES_PER_TENANT);
        } else {
            next.max_instances_per_tenant = (int)json_integer_value(v);
        }
    }
    if (!next.per_tenant && next.max_instances_per_tenant)
        return mf_error_plain(err, EINVAL,
                              "max_instances_per_tenant: only a function with \"tenancy\": "
                              "\"per_tenant\" has instances per tenant id");
    *t = next;
    return 0;
}

void fn_tenancy_to_json(const fn_tenancy_t *t, json_t *out)
{
    if (!t->per_tenant)
        return;
    json_object_set_new(out, "tenancy", json_string(FN_TENANCY_PER_TENANT));
    json_object_set_new(out, "max_instances_per_tenant",
                        t->max_instances_per_tenant
                            ? json_integer(t->max_instances_per_tenant)
                            : json_null());
}

void fn_tenancy_read(const json_t *cfg, fn_tenancy_t *out)
{
    const json_t *v = json_object_get(cfg, "tenancy");
    fn_tenancy_t t = {0};
    t.per_tenant = json_is_string(v) && !strcmp(json_string_value(v), FN_TENANCY_PER_TENANT);
    v = json_object_get(cfg, "max_instances_per_tenant");
    if (t.per_tenant && json_is_integer(v) && json_integer_value(v) >= 1 &&
        json_integer_value(v) <= FN_MAX_INSTANCES_PER_TENANT)
        t.max_instances_per_tenant = (int)json_integer_value(v);
    *out = t;
}

/* Lambda's TenantId: 1 to 256 characters of [a-zA-Z0-9._:/=+-@ ]. */
static bool tc__tenant_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("._:/=+-@ ", c));
}

int fn_tenant_id_check(const char *field, const char *s, mf_error_t *err)
{
    size_t n = strlen(s);
    if (n < 1 || n > FN_TENANT_ID_MAX)
        return mf_error_plain(err, EINVAL, "%s: a tenant id must be 1 to %d characters long",
                              field, FN_TENANT_ID_MAX);
    for (size_t i = 0; i < n; i++)
        if (!tc__tenant_char((unsigned char)s[i]))
            return mf_error_plain(err, EINVAL,
                                  "%s: a tenant id may hold only letters, digits, spaces and "
                                  "._:/=+-@ (character %zu is not one)",
                                  field, i + 1);
    return 0;
}

int fn_tenant_id_for(const char *function, const fn_tenancy_t *t, const char *field,
                     const char *tenant_id, mf_error_t *err)
{
    if (t->per_tenant) {
        if (!tenant_id || !*tenant_id)
            return mf_error_plain(err, EINVAL,
                                  "%s: %s has tenant isolation (\"tenancy\": "
                                  "\"per_tenant\"): each call must name its tenant id",
                                  field, function);
        return fn_tenant_id_check(field, tenant_id, err);
    }
    if (tenant_id && *tenant_id)
        return mf_error_plain(err, EINVAL,
                              "%s: %s does not have tenant isolation: a call of it "
                              "takes no tenant id",
                              field, function);
    return 0;
}
