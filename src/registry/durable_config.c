/* A function's "durable" settings (docs/durable.md): parsed, stored and
 * shown here, beside the registry's other settings. */
#include <errno.h>
#include <string.h>

#include "registry/registry.h"

static int dc__int(const json_t *obj, const char *key, int min, int max, int def, int *out,
                   mf_error_t *err)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return mf_error_plain(err, EINVAL, "durable.%s: must be an integer from %d to %d", key, min,
                              max);
    *out = (int)json_integer_value(v);
    return 0;
}

int fn_durable_parse(const json_t *v, fn_durable_t *out, mf_error_t *err)
{
    fn_durable_t d = {0};
    if (json_is_null(v) || json_is_false(v)) {
        *out = d;
        return 0;
    }
    if (json_is_true(v))
        v = NULL; /* the defaults */
    else if (!json_is_object(v))
        return mf_error_plain(err, EINVAL,
                              "durable: must be {\"execution_timeout_s\", \"retention_days\"} or "
                              "null");
    const char *key;
    json_t *m;
    json_object_foreach(
        (json_t *)v, key,
        m) if (strcmp(key, "execution_timeout_s") &&
               strcmp(key, "retention_days")) return mf_error_plain(err, EINVAL,
                                                                    "durable.%s: unknown field",
                                                                    key);
    int r = dc__int(v, "execution_timeout_s", 1, 31622400, 86400, &d.execution_timeout_s, err);
    if (r == 0)
        r = dc__int(v, "retention_days", 1, 90, 14, &d.retention_days, err);
    if (r < 0)
        return r;
    d.enabled = true;
    *out = d;
    return 0;
}

json_t *fn_durable_json(const fn_durable_t *d)
{
    if (!d->enabled)
        return json_null();
    return json_pack("{s:i, s:i}", "execution_timeout_s", d->execution_timeout_s, "retention_days",
                     d->retention_days);
}

void fn_durable_read(const json_t *cfg, fn_durable_t *out)
{
    mf_error_t ignored = MF_ERROR_INIT;
    fn_durable_t d = {0};
    const json_t *v = json_object_get(cfg, "durable");
    if (v && fn_durable_parse(v, &d, &ignored) == 0)
        *out = d;
}
