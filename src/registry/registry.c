/* The function registry: turns a client's JSON into a validated fn_t, keeps
 * it in the store (settings as a JSON object in config_json, the rest in
 * columns) and keeps the code directory in step: a package is installed
 * before the function that uses it is written, and removed once no function
 * uses it any more.
 *
 * Every validation error is -EINVAL with a message that starts with the
 * field's name, so the API can answer 400 with something a user can act on. */
#include "registry/registry.h"
#include "registry/jvm.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <uv.h>

#include "core/buf.h"
#include "core/cleanup.h"
#include "core/clock.h"
#include "core/codec.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/map.h"
#include "core/xalloc.h"
#include "egress/policy.h"
#include "obs/payload.h"
#include "store/health.h"
#include "store/writer.h"

/* Lambda's bound: the keys and values of all variables together. */
#define REG_ENV_MAX 4096

/* A package to remove once no upload is in flight; forget: from the
 * store too (a change made here, not one another server made and
 * forgot there already). */
typedef struct reg_deferred {
    char *sha;
    bool forget;
} reg_deferred_t;

struct registry {
    store_t *store;
    char *code_root;
    code_limits_t limits;
    bool (*code_in_use)(void *ud, const char *sha);
    void *code_in_use_ud;
    unsigned uploads; /* prepared (or fetched) off the loop, not yet put */
    reg_deferred_t *deferred; /* packages to look at again when they end */
    size_t ndeferred;
    uint64_t changes; /* puts and deletes made here (registry_changes) */
    json_t *default_egress; /* canonical rule texts for a function created without any */
    /* Every stored function as read back (name -> fn_t *), filled on first
     * use and kept by put and delete, which write the store first: reads
     * (a call to a function without a pool yet, the API's checks, the
     * queue's first event of a function) never touch the store, which on
     * a shared database would mean a round trip on the event loop. */
    map_t cache;
    bool cached;
    /* With a store that keeps code packages (store_keeps_code): a
     * connection of the registry's own that uploads, unpacked on libuv's
     * thread pool, keep their zips through, one at a time. */
    store_t *code_db;
    uv_mutex_t code_lock;
    store_writer_t *writer;      /* forgets packages off the loop; NULL: at once */
};

typedef struct reg_range {
    const char *field;
    int lo, hi, def;
} reg_range_t;

static const reg_range_t reg__memory_mb = {"memory_mb", 128, 10240, 128};
static const reg_range_t reg__timeout_s = {"timeout_s", 1, 900, 3};
static const reg_range_t reg__max_concurrency = {"max_concurrency", 0, 1000, 10};
static const reg_range_t reg__instance_concurrency = {"instance_concurrency", 1, 1600, 1};
static const reg_range_t reg__tmp_mb = {"tmp_mb", 16, 10240, 64};
static const reg_range_t reg__max_retries = {"async.max_retries", 0, 2, 2};
static const reg_range_t reg__max_event_age_s = {"async.max_event_age_s", 60, 21600, 21600};
static const reg_range_t reg__max_payload_kb = {"record.max_payload_kb", 1, 1024, 64};
static const char *const reg__payloads[] = {"full", "errors", "off", NULL};

static const char *const reg__fields[] = {
    "name",   "runtime",     "handler", "memory_mb",  "timeout_s", "max_concurrency",  "tmp_mb",
    "env",    "async",       "code",    "log_format", "log_level", "system_log_level", "egress",
    "record", "permissions", "volumes", "durable", "tenancy", "max_instances_per_tenant", "keep_warm",
    "instance_concurrency", NULL,
};
static const char *const reg__record_fields[] = {
    "payloads",
    "max_payload_kb",
    "redact",
    NULL,
};
static const char *const reg__async_fields[] = {
    "max_retries", "max_event_age_s", "on_success", "on_failure", NULL,
};

/* Client text made fit for a message: printable and short. */
#define SHOW(s) mf_error_show((s), 64, (char[80]){0}, 80)

static bool reg__in(const char *const *list, const char *key, size_t key_len)
{
    if (strlen(key) != key_len)
        return false;
    for (size_t i = 0; list[i]; i++)
        if (!strcmp(list[i], key))
            return true;
    return false;
}

bool registry_valid_local(const char *name)
{
    size_t len = strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-");
    return len >= 1 && len <= FN_NAME_MAX && name[len] == '\0';
}

bool registry_valid_name(const char *name)
{
    const char *local = tenant_check(name);
    return local && registry_valid_local(local);
}

static bool reg__digits(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* Maps Lambda's runtime names onto those mayfly runs. The version in
 * an alias is not honoured: the host's python3 or node runs the function. */
static const char *reg__canonical_runtime(const char *s)
{
    size_t len = strlen(s);
    if (!strcmp(s, "python3") || (!strncmp(s, "python3.", 8) && reg__digits(s + 8, len - 8)))
        return "python3";
    if (!strcmp(s, "nodejs") || (len > 8 && !strncmp(s, "nodejs", 6) &&
                                 !strcmp(s + len - 2, ".x") && reg__digits(s + 6, len - 8)))
        return "nodejs";
    if (!strcmp(s, "provided") || !strcmp(s, "provided.al2") || !strcmp(s, "provided.al2023"))
        return "provided";
    /* The Java runtimes keep their version: each runs on its own JDK. */
    if (!strcmp(s, "java17") || !strcmp(s, "java21"))
        return s;
    return NULL;
}

static bool reg__ident_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == '$';
}

static bool reg__ident_char(char c)
{
    return reg__ident_start(c) || (c >= '0' && c <= '9');
}

/* `path/module.function`: the module part may hold dots and slashes (a
 * package path), the function part is an identifier. */
static bool reg__handler_shape(const char *h)
{
    const char *dot = strrchr(h, '.');
    if (!dot || dot == h || !reg__ident_start(dot[1]))
        return false;
    for (const char *p = dot + 2; *p; p++)
        if (!reg__ident_char(*p))
            return false;
    size_t mod = (size_t)(dot - h);
    return strspn(h, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./-") >= mod;
}

/* `package.Class` or `package.Class::method`, each part a Java
 * identifier (`$` included, for nested classes). */
static bool reg__java_handler_shape(const char *h)
{
    const char *sep = strstr(h, "::");
    size_t cls_len = sep ? (size_t)(sep - h) : strlen(h);
    bool start = true;
    for (size_t i = 0; i < cls_len; i++) {
        if (h[i] == '.' && !start) {
            start = true;
            continue;
        }
        if (start ? !reg__ident_start(h[i]) : !reg__ident_char(h[i]))
            return false;
        start = false;
    }
    if (start)
        return false;
    if (!sep)
        return true;
    const char *m = sep + 2;
    if (!reg__ident_start(*m))
        return false;
    while (*++m)
        if (!reg__ident_char(*m))
            return false;
    return true;
}

static int reg__check_handler(const fn_t *f, mf_error_t *err)
{
    if (jvm_is_java(f->runtime)) {
        if (!f->handler[0])
            return mf_error_plain(err, EINVAL, "handler: required for runtime %s", f->runtime);
        if (!reg__java_handler_shape(f->handler))
            return mf_error_plain(err, EINVAL,
                                  "handler: must look like `package.Class::method` or "
                                  "`package.Class` (e.g. `example.Hello::handleRequest`), not "
                                  "`%s`",
                                  SHOW(f->handler));
        return 0;
    }
    if (!strcmp(f->runtime, "provided")) {
        /* The bootstrap reads _HANDLER as it likes; it only has to survive
         * being put in the environment. */
        for (const char *p = f->handler; *p; p++)
            if (*p < 0x21 || *p > 0x7e)
                return mf_error_plain(err, EINVAL,
                                      "handler: must be printable ASCII without spaces");
        return 0;
    }
    if (!f->handler[0])
        return mf_error_plain(err, EINVAL, "handler: required for runtime %s", f->runtime);
    if (!reg__handler_shape(f->handler))
        return mf_error_plain(err, EINVAL,
                              "handler: must look like `file.function` (e.g. `index.handler`), "
                              "not `%s`",
                              SHOW(f->handler));
    return 0;
}

/* A present field must be an integer in range: 128.0, "128" and true are
 * refused rather than coerced, so a typo is not silently accepted. */
static int reg__int(const json_t *obj, const char *key, const reg_range_t *range, int *out,
                    mf_error_t *err)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (json_is_null(v)) { /* back to the default */
        *out = range->def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < range->lo ||
        json_integer_value(v) > range->hi)
        return mf_error_plain(err, EINVAL, "%s: must be an integer from %d to %d", range->field,
                              range->lo, range->hi);
    *out = (int)json_integer_value(v);
    return 0;
}

/* A JSON string as a C string: refuses NULs, which would cut the value
 * short wherever it ends up (the environment, a file name). */
static const char *reg__string(const json_t *v, size_t max, size_t *len)
{
    if (!json_is_string(v))
        return NULL;
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (n > max || memchr(s, '\0', n))
        return NULL;
    if (len)
        *len = n;
    return s;
}

static bool reg__env_name(const char *k)
{
    if (!((k[0] >= 'A' && k[0] <= 'Z') || (k[0] >= 'a' && k[0] <= 'z')))
        return false;
    size_t n = strspn(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_");
    return k[n] == '\0';
}

/* Names the sandbox sets itself: a function may not override what tells
 * the runtime where its code and its API are. Lambda's log settings are
 * the exception: Lambda does not reserve them, and a function's own value
 * wins over log_format and log_level. */
static bool reg__env_reserved(const char *k)
{
    if (!strcmp(k, "AWS_LAMBDA_LOG_FORMAT") || !strcmp(k, "AWS_LAMBDA_LOG_LEVEL"))
        return false;
    /* Where AWS's SDKs send Lambda calls, and with which credentials: the
     * instance's listener by default (docs/durable.md), but a function
     * that calls AWS itself through its egress sets its own. */
    if (!strcmp(k, "AWS_ENDPOINT_URL_LAMBDA") || !strcmp(k, "AWS_ACCESS_KEY_ID") ||
        !strcmp(k, "AWS_SECRET_ACCESS_KEY") || !strcmp(k, "AWS_SESSION_TOKEN"))
        return false;
    return !strncmp(k, "AWS_", 4) || !strcmp(k, "_HANDLER") || !strcmp(k, "LAMBDA_TASK_ROOT") ||
           !strcmp(k, "LAMBDA_RUNTIME_DIR");
}

static int reg__env(const json_t *v, json_t **out, mf_error_t *err)
{
    if (!json_is_object(v))
        return mf_error_plain(err, EINVAL, "env: must be an object of strings");
    const char *k;
    size_t klen;
    json_t *val;
    size_t total = 0;
    json_object_keylen_foreach((json_t *)v, k, klen, val)
    {
        if (strlen(k) != klen)
            return mf_error_plain(err, EINVAL, "env: a variable name contains NUL");
        if (reg__env_reserved(k))
            return mf_error_plain(err, EINVAL, "env: `%s` is reserved", SHOW(k));
        if (!reg__env_name(k))
            return mf_error_plain(
                err, EINVAL, "env: `%s` is not a valid variable name (use [A-Za-z][A-Za-z0-9_]*)",
                SHOW(k));
        if (!json_is_string(val))
            return mf_error_plain(err, EINVAL, "env.%s: must be a string", SHOW(k));
        size_t vlen = json_string_length(val);
        if (memchr(json_string_value(val), '\0', vlen))
            return mf_error_plain(err, EINVAL, "env.%s: must not contain NUL", SHOW(k));
        total += klen + vlen;
        if (total > REG_ENV_MAX)
            return mf_error_plain(err, EINVAL, "env: the variables are over the 4 KiB limit");
    }
    *out = json_deep_copy(v);
    return 0;
}

static int reg__destination(const json_t *obj, const char *key, char *out, mf_error_t *err)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (json_is_null(v)) {
        out[0] = '\0';
        return 0;
    }
    const char *s = reg__string(v, FN_NAME_MAX, NULL);
    if (!s || !registry_valid_local(s))
        return mf_error_plain(err, EINVAL, "async.%s: must be null or a function name", key);
    snprintf(out, FN_NAME_MAX + 1, "%s", s);
    return 0;
}

/* Fields left out of async keep their value, as at the top level. */
/* Refuses a field of obj that is not in fields, naming it (with prefix). */
static int reg__known_fields(const json_t *obj, const char *const *fields, const char *prefix,
                             mf_error_t *err)
{
    const char *k;
    size_t klen;
    json_t *val;
    json_object_keylen_foreach((json_t *)obj, k, klen, val)
    {
        if (!reg__in(fields, k, klen))
            return mf_error_plain(err, EINVAL, "%s%s: unknown field", prefix, SHOW(k));
    }
    return 0;
}

static int reg__async(const json_t *v, fn_async_t *a, mf_error_t *err)
{
    if (!json_is_object(v))
        return mf_error_plain(err, EINVAL, "async: must be an object");
    int r = reg__known_fields(v, reg__async_fields, "async.", err);
    if (r < 0)
        return r;
    if ((r = reg__int(v, "max_retries", &reg__max_retries, &a->max_retries, err)) < 0 ||
        (r = reg__int(v, "max_event_age_s", &reg__max_event_age_s, &a->max_event_age_s, err)) < 0 ||
        (r = reg__destination(v, "on_success", a->on_success, err)) < 0 ||
        (r = reg__destination(v, "on_failure", a->on_failure, err)) < 0)
        return r;
    return 0;
}

static int reg__redact(const json_t *v, fn_record_t *rec, mf_error_t *err)
{
    if (!json_is_array(v) || json_array_size(v) > FN_REDACT_MAX)
        return mf_error_plain(err, EINVAL, "record.redact: must be an array of at most %d names",
                              FN_REDACT_MAX);
    size_t i;
    const json_t *name;
    json_array_foreach(v, i, name)
    {
        size_t len;
        const char *s = reg__string(name, FN_REDACT_NAME_MAX, &len);
        if (!s || len == 0)
            return mf_error_plain(err, EINVAL,
                                  "record.redact[%zu]: must be a name of 1 to %d characters", i,
                                  FN_REDACT_NAME_MAX);
    }
    rec->n_redact = (int)json_array_size(v);
    json_array_foreach(v, i, name)
        snprintf(rec->redact[i], sizeof rec->redact[i], "%s", json_string_value(name));
    return 0;
}

/* Fields left out of record keep their value, as at the top level. */
static int reg__record(const json_t *v, fn_record_t *rec, mf_error_t *err)
{
    if (!json_is_object(v))
        return mf_error_plain(err, EINVAL, "record: must be an object");
    int r = reg__known_fields(v, reg__record_fields, "record.", err);
    if (r < 0 ||
        (r = reg__int(v, "max_payload_kb", &reg__max_payload_kb, &rec->max_payload_kb, err)) < 0)
        return r;
    const json_t *p = json_object_get(v, "payloads");
    if (p) {
        const char *s = reg__string(p, 16, NULL);
        size_t k = 0;
        while (s && reg__payloads[k] && strcmp(s, reg__payloads[k]))
            k++;
        if (!s || !reg__payloads[k])
            return mf_error_plain(err, EINVAL,
                                  "record.payloads: must be \"full\", \"errors\" or \"off\"");
        snprintf(rec->payloads, sizeof rec->payloads, "%s", reg__payloads[k]);
    }
    const json_t *redact = json_object_get(v, "redact");
    if (redact && (r = reg__redact(redact, rec, err)) < 0)
        return r;
    return 0;
}

static json_t *reg__record_json(const fn_record_t *rec)
{
    json_t *redact = json_array();
    for (int i = 0; i < rec->n_redact; i++)
        json_array_append_new(redact, json_string(rec->redact[i]));
    return json_pack("{s:s, s:i, s:o}", "payloads", rec->payloads, "max_payload_kb",
                     rec->max_payload_kb, "redact", redact);
}

static json_t *reg__async_json(const fn_async_t *a)
{
    return json_pack("{s:i, s:i, s:s?, s:s?}", "max_retries", a->max_retries, "max_event_age_s",
                     a->max_event_age_s, "on_success", a->on_success[0] ? a->on_success : NULL,
                     "on_failure", a->on_failure[0] ? a->on_failure : NULL);
}

/* A string from names, in any case; its spelling in names, or NULL. */
static const char *reg__choice(const json_t *v, const char *const *names)
{
    const char *s = reg__string(v, 16, NULL);
    for (size_t i = 0; s && names[i]; i++)
        if (!strcasecmp(s, names[i]))
            return names[i];
    return NULL;
}

/* A log level field: null puts back the default. *given tells whether the
 * body named a level. */
static int reg__log_level(const json_t *body, const char *key, const char *const *levels,
                          char out[8], bool *given, mf_error_t *err)
{
    const json_t *v = json_object_get(body, key);
    *given = false;
    if (!v)
        return 0;
    if (json_is_null(v)) {
        out[0] = '\0';
        return 0;
    }
    const char *level = reg__choice(v, levels);
    if (!level) {
        char list[64] = "";
        for (size_t i = 0; levels[i]; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                     levels[i]);
        return mf_error_plain(err, EINVAL, "%s: must be null or one of %s", key, list);
    }
    snprintf(out, 8, "%s", level);
    *given = true;
    return 0;
}

/* Lambda's LoggingConfig rules: the levels belong to the JSON format. A
 * level asked for with Text is an error; a function whose format becomes
 * Text drops its levels; with JSON a level not set is INFO. */
static int reg__logging(const json_t *body, fn_t *f, mf_error_t *err)
{
    static const char *const formats[] = {"Text", "JSON", NULL};
    static const char *const levels[] = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", NULL};
    static const char *const system_levels[] = {"DEBUG", "INFO", "WARN", NULL};
    const json_t *v = json_object_get(body, "log_format");
    if (v) {
        const char *format = reg__choice(v, formats);
        if (!format)
            return mf_error_plain(err, EINVAL, "log_format: must be \"Text\" or \"JSON\"");
        snprintf(f->log_format, sizeof f->log_format, "%s", format);
    }
    bool level_given, system_given;
    int rc = reg__log_level(body, "log_level", levels, f->log_level, &level_given, err);
    if (rc < 0 || (rc = reg__log_level(body, "system_log_level", system_levels, f->system_log_level,
                                       &system_given, err)) < 0)
        return rc;
    if (strcmp(f->log_format, "JSON")) {
        if (level_given || system_given)
            return mf_error_plain(err, EINVAL, "%s: applies only with log_format \"JSON\"",
                                  level_given ? "log_level" : "system_log_level");
        f->log_level[0] = f->system_log_level[0] = '\0';
        return 0;
    }
    if (!f->log_level[0])
        snprintf(f->log_level, sizeof f->log_level, "INFO");
    if (!f->system_log_level[0])
        snprintf(f->system_log_level, sizeof f->system_log_level, "INFO");
    return 0;
}

/* keep_warm: "adaptive" or "fixed"; null goes back to the server's
 * default. */
static int reg__keep_warm(const json_t *body, fn_t *f, mf_error_t *err)
{
    static const char *const policies[] = {"adaptive", "fixed", NULL};
    const json_t *v = json_object_get(body, "keep_warm");
    if (!v)
        return 0;
    if (json_is_null(v)) {
        f->keep_warm[0] = '\0';
        return 0;
    }
    const char *policy = reg__choice(v, policies);
    if (!policy)
        return mf_error_plain(err, EINVAL, "keep_warm: must be \"adaptive\", \"fixed\" or null");
    snprintf(f->keep_warm, sizeof f->keep_warm, "%s", policy);
    return 0;
}

static void reg__size_str(uint64_t n, char *out, size_t size)
{
    if (n && n % (1u << 20) == 0)
        snprintf(out, size, "%llu MiB", (unsigned long long)(n >> 20));
    else
        snprintf(out, size, "%llu bytes", (unsigned long long)n);
}

/* Decodes code.zip_base64 into zip. */
static int reg__code(const registry_t *r, const json_t *v, buf_t *zip, mf_error_t *err)
{
    if (!json_is_object(v))
        return mf_error_plain(err, EINVAL, "code: must be an object with zip_base64");
    const char *k;
    size_t klen;
    json_t *val;
    json_object_keylen_foreach((json_t *)v, k, klen, val)
    {
        if (strlen(k) != klen || strcmp(k, "zip_base64"))
            return mf_error_plain(err, EINVAL, "code.%s: unknown field", SHOW(k));
    }
    const json_t *b64 = json_object_get(v, "zip_base64");
    if (!b64)
        return mf_error_plain(err, EINVAL, "code.zip_base64: required");
    if (!json_is_string(b64))
        return mf_error_plain(err, EINVAL, "code.zip_base64: must be a base64 string");
    int rc = codec_base64_decode(zip, json_string_value(b64), json_string_length(b64),
                                 (size_t)r->limits.max_zip_bytes);
    if (rc == -EFBIG) {
        char lim[32];
        reg__size_str(r->limits.max_zip_bytes, lim, sizeof lim);
        return mf_error_plain(err, EFBIG, "code: the zip is over the %s limit", lim);
    }
    if (rc < 0)
        return mf_error_plain(err, EINVAL, "code.zip_base64: not valid base64");
    return 0;
}

/* ---- permissions and volumes ------------------------------------------- */

static bool reg__name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

bool registry_valid_state_name(const char *name)
{
    return registry_valid_name(name);
}

/* '*' matches any run of characters (iterative, with one backtrack point:
 * linear enough for names of 64 characters). */
static bool reg__glob(const char *pat, const char *s)
{
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*pat == '*') {
            star = pat++;
            resume = s;
        } else if (*pat == *s) {
            pat++;
            s++;
        } else if (star) {
            pat = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*pat == '*')
        pat++;
    return !*pat;
}

bool fn_permits(const fn_t *f, const char *kind, const char *name)
{
    size_t klen = strlen(kind), i;
    json_t *p;
    json_array_foreach(f->permissions, i, p)
    {
        const char *s = json_string_value(p);
        if (s && !strncmp(s, kind, klen) && s[klen] == ':' &&
            reg__glob(s + klen + 1, tenant_local(name)))
            return true;
    }
    return false;
}

static int reg__permissions(const json_t *v, json_t **out, mf_error_t *err)
{
    static const char *const kinds[] = {FN_PERM_KV, FN_PERM_INVOKE, FN_PERM_TOPIC, FN_PERM_VOLUME,
                                        NULL};
    if (!json_is_array(v))
        return mf_error_plain(err, EINVAL,
                              "permissions: must be an array of \"KIND:NAME\" "
                              "strings");
    if (json_array_size(v) > FN_PERMISSIONS_MAX)
        return mf_error_plain(err, EINVAL, "permissions: at most %d", FN_PERMISSIONS_MAX);
    json_t *list = json_array();
    size_t i;
    json_t *p;
    json_array_foreach(v, i, p)
    {
        const char *s = json_string_value(p);
        const char *colon = s ? strchr(s, ':') : NULL;
        bool ok = colon != NULL;
        if (ok) {
            ok = false;
            for (int k = 0; kinds[k]; k++)
                if ((size_t)(colon - s) == strlen(kinds[k]) &&
                    !strncmp(s, kinds[k], (size_t)(colon - s)))
                    ok = true;
        }
        size_t n = ok ? strlen(colon + 1) : 0;
        ok = ok && n >= 1 && n <= FN_NAME_MAX;
        for (size_t j = 0; ok && j < n; j++)
            ok = reg__name_char(colon[1 + j]) || colon[1 + j] == '*';
        if (!ok) {
            json_decref(list);
            if (!s)
                return mf_error_plain(err, EINVAL, "permissions[%zu]: must be a string", i);
            return mf_error_plain(err, EINVAL,
                                  "permissions[%zu]: `%.80s` is not KIND:NAME with KIND kv, "
                                  "invoke, topic or volume and NAME 1 to %d of "
                                  "[A-Za-z0-9_-] or *",
                                  i, s, FN_NAME_MAX);
        }
        json_array_append_new(list, json_string(s));
    }
    *out = list;
    return 0;
}

static int reg__volumes(const json_t *v, json_t **out, mf_error_t *err)
{
    if (!json_is_array(v))
        return mf_error_plain(err, EINVAL,
                              "volumes: must be an array of {\"name\", \"path\", "
                              "\"read_only\"}");
    if (json_array_size(v) > FN_VOLUMES_MAX)
        return mf_error_plain(err, EINVAL, "volumes: at most %d", FN_VOLUMES_MAX);
    json_t *list = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(v, i, m)
    {
        const char *name = json_string_value(json_object_get(m, "name"));
        const char *path = json_string_value(json_object_get(m, "path"));
        const json_t *ro = json_object_get(m, "read_only");
        const char *key;
        json_t *val;
        int rc = 0;
        if (!json_is_object(m))
            rc = mf_error_plain(err, EINVAL, "volumes[%zu]: must be an object", i);
        json_object_foreach((json_t *)m, key, val)
        {
            if (!rc && strcmp(key, "name") && strcmp(key, "path") && strcmp(key, "read_only"))
                rc = mf_error_plain(err, EINVAL, "volumes[%zu].%s: unknown field", i, key);
        }
        if (!rc && (!name || !registry_valid_local(name)))
            rc =
                mf_error_plain(err, EINVAL, "volumes[%zu].name: must match [A-Za-z0-9_-]{1,64}", i);
        /* One level under /mnt, as Lambda mounts EFS. */
        bool path_ok = path && !strncmp(path, "/mnt/", 5) && strlen(path) > 5 &&
                       strlen(path) <= 5 + FN_NAME_MAX && strcmp(path + 5, ".") &&
                       strcmp(path + 5, "..");
        for (const char *c = path ? path + 5 : ""; path_ok && *c; c++)
            path_ok = reg__name_char(*c) || *c == '.';
        if (!rc && !path_ok)
            rc = mf_error_plain(err, EINVAL,
                                "volumes[%zu].path: must be /mnt/NAME, NAME 1 to %d of "
                                "[A-Za-z0-9_.-]",
                                i, FN_NAME_MAX);
        if (!rc && ro && !json_is_boolean(ro))
            rc = mf_error_plain(err, EINVAL, "volumes[%zu].read_only: must be true or false", i);
        size_t j;
        json_t *o;
        json_array_foreach(list, j, o)
        {
            if (!rc && !strcmp(json_string_value(json_object_get(o, "path")), path))
                rc = mf_error_plain(err, EINVAL, "volumes[%zu].path: %s is mounted twice", i, path);
            if (!rc && !strcmp(json_string_value(json_object_get(o, "name")), name))
                rc = mf_error_plain(err, EINVAL, "volumes[%zu].name: %s is mounted twice", i, name);
        }
        if (rc) {
            json_decref(list);
            return rc;
        }
        json_array_append_new(list, json_pack("{s:s, s:s, s:b}", "name", name, "path", path,
                                              "read_only", json_is_true(ro)));
    }
    *out = list;
    return 0;
}

static int reg__volumes_granted(const fn_t *f, mf_error_t *err)
{
    size_t i;
    json_t *m;
    json_array_foreach(f->volumes, i, m)
    {
        const char *name = json_string_value(json_object_get(m, "name"));
        if (!fn_permits(f, FN_PERM_VOLUME, name))
            return mf_error_plain(err, EINVAL,
                                  "volumes[%zu]: mounting %s needs the permission `volume:%s` "
                                  "in permissions",
                                  i, name, name);
    }
    return 0;
}

static void reg__defaults(fn_t *f, const char *name)
{
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    f->memory_mb = reg__memory_mb.def;
    f->timeout_s = reg__timeout_s.def;
    f->max_concurrency = reg__max_concurrency.def;
    f->instance_concurrency = reg__instance_concurrency.def;
    f->tmp_mb = reg__tmp_mb.def;
    f->env = json_object();
    f->egress = json_array();
    f->permissions = json_array();
    f->volumes = json_array();
    f->async.max_retries = reg__max_retries.def;
    f->async.max_event_age_s = reg__max_event_age_s.def;
    snprintf(f->record.payloads, sizeof f->record.payloads, "full");
    f->record.max_payload_kb = reg__max_payload_kb.def;
    /* The names whose values a record never keeps, unless the function
     * lists its own. */
    f->record.n_redact = OBS_PAYLOAD_N_DEFAULT_REDACT;
    for (int i = 0; i < f->record.n_redact; i++)
        snprintf(f->record.redact[i], sizeof f->record.redact[i], "%s",
                 obs_payload_default_redact[i]);
    snprintf(f->log_format, sizeof f->log_format, "Text");
}

/* The settings as stored: what fn_to_json shows, less the columns the
 * store keeps itself. */
static json_t *reg__config_base(const fn_t *f);
static json_t *reg__config(const fn_t *f)
{
    json_t *cfg = reg__config_base(f);
    if (f->durable.enabled)
        json_object_set_new(cfg, "durable", fn_durable_json(&f->durable));
    fn_tenancy_to_json(&f->tenancy, cfg);
    if (f->keep_warm[0])
        json_object_set_new(cfg, "keep_warm", json_string(f->keep_warm));
    if (f->instance_concurrency > 1)
        json_object_set_new(cfg, "instance_concurrency", json_integer(f->instance_concurrency));
    return cfg;
}

static json_t *reg__config_base(const fn_t *f)
{
    return json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:O, s:O, s:O, s:O, s:o, s:o, s:I, "
                     "s:s, s:s?, s:s?}",
                     "runtime", f->runtime, "runtime_name", f->runtime_name, "handler", f->handler,
                     "memory_mb", f->memory_mb, "timeout_s", f->timeout_s, "max_concurrency",
                     f->max_concurrency, "tmp_mb", f->tmp_mb, "env", f->env, "egress", f->egress,
                     "permissions", f->permissions, "volumes", f->volumes, "async",
                     reg__async_json(&f->async), "record", reg__record_json(&f->record), "zip_size",
                     (json_int_t)f->zip_size, "log_format", f->log_format, "log_level",
                     f->log_level[0] ? f->log_level : NULL, "system_log_level",
                     f->system_log_level[0] ? f->system_log_level : NULL);
}

static int reg__cfg_int(const json_t *obj, const char *key, int def)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (int)json_integer_value(v) : def;
}

static void reg__cfg_str(const json_t *obj, const char *key, char *out, size_t size)
{
    const json_t *v = json_object_get(obj, key);
    if (json_is_string(v))
        snprintf(out, size, "%s", json_string_value(v));
}

/* Reads a stored function back. The store holds only what this file wrote,
 * so a missing setting takes its default (a later version may add one)
 * instead of failing the whole function. */
static int reg__from_stored(const store_function_t *sf, fn_t *f, mf_error_t *err)
{
    json_error_t jerr;
    json_t *cfg = json_loads(sf->config_json, 0, &jerr);
    if (!json_is_object(cfg)) {
        json_decref(cfg);
        return mf_error_plain(err, EIO, "registry: function `%s` has an unreadable config: %s",
                              sf->name, jerr.text);
    }
    reg__defaults(f, sf->name);
    reg__cfg_str(cfg, "runtime", f->runtime, sizeof f->runtime);
    snprintf(f->runtime_name, sizeof f->runtime_name, "%s", f->runtime);
    reg__cfg_str(cfg, "runtime_name", f->runtime_name, sizeof f->runtime_name);
    reg__cfg_str(cfg, "handler", f->handler, sizeof f->handler);
    const json_t *zs = json_object_get(cfg, "zip_size");
    f->zip_size = json_is_integer(zs) ? json_integer_value(zs) : 0;
    f->memory_mb = reg__cfg_int(cfg, "memory_mb", f->memory_mb);
    f->timeout_s = reg__cfg_int(cfg, "timeout_s", f->timeout_s);
    f->max_concurrency = reg__cfg_int(cfg, "max_concurrency", f->max_concurrency);
    f->instance_concurrency = reg__cfg_int(cfg, "instance_concurrency", f->instance_concurrency);
    f->tmp_mb = reg__cfg_int(cfg, "tmp_mb", f->tmp_mb);
    json_t *env = json_object_get(cfg, "env");
    if (json_is_object(env)) {
        json_decref(f->env);
        f->env = json_incref(env);
    }
    /* Functions stored before egress existed had no network: [] still. */
    json_t *egress = json_object_get(cfg, "egress");
    if (json_is_array(egress)) {
        json_decref(f->egress);
        f->egress = json_incref(egress);
    }
    json_t *perms = json_object_get(cfg, "permissions");
    if (json_is_array(perms)) {
        json_decref(f->permissions);
        f->permissions = json_incref(perms);
    }
    json_t *vols = json_object_get(cfg, "volumes");
    if (json_is_array(vols)) {
        json_decref(f->volumes);
        f->volumes = json_incref(vols);
    }
    const json_t *async = json_object_get(cfg, "async");
    f->async.max_retries = reg__cfg_int(async, "max_retries", f->async.max_retries);
    f->async.max_event_age_s = reg__cfg_int(async, "max_event_age_s", f->async.max_event_age_s);
    reg__cfg_str(async, "on_success", f->async.on_success, sizeof f->async.on_success);
    reg__cfg_str(async, "on_failure", f->async.on_failure, sizeof f->async.on_failure);
    /* Stored before records kept payloads: the defaults. What this file
     * wrote passes its own checks again. */
    const json_t *record = json_object_get(cfg, "record");
    if (record) {
        mf_error_t ignored = MF_ERROR_INIT;
        fn_record_t rec = f->record;
        if (reg__record(record, &rec, &ignored) == 0)
            f->record = rec;
    }
    reg__cfg_str(cfg, "log_format", f->log_format, sizeof f->log_format);
    reg__cfg_str(cfg, "log_level", f->log_level, sizeof f->log_level);
    reg__cfg_str(cfg, "system_log_level", f->system_log_level, sizeof f->system_log_level);
    fn_durable_read(cfg, &f->durable);
    fn_tenancy_read(cfg, &f->tenancy);
    reg__cfg_str(cfg, "keep_warm", f->keep_warm, sizeof f->keep_warm);
    json_decref(cfg);

    f->version = sf->version;
    snprintf(f->code_sha256, sizeof f->code_sha256, "%s", sf->code_sha256);
    f->code_size = sf->code_size;
    f->created_ms = sf->created_ms;
    f->updated_ms = sf->updated_ms;
    return 0;
}

static int reg__cache_fill(registry_t *r, mf_error_t *err);

/* Unpacks from the store every package a function uses that the code
 * directory lacks: a server new to a shared store, or whose data
 * directory was emptied, then runs what the others deployed. At the
 * start, before anything is served. A package the store does not have,
 * or that this server's limits refuse, is said in the log and left out:
 * its function's calls fail until it is deployed again. */
static int reg__unpack_missing(registry_t *r, mf_error_t *err)
{
    int rc = reg__cache_fill(r, err);
    if (rc < 0)
        return rc;
    cleanup_buf buf_t zip = BUF_INIT;
    size_t unpacked = 0;
    const char *key;
    void *value;
    for (size_t it = 0; map_next(&r->cache, &it, &key, &value);) {
        const fn_t *f = value;
        cleanup_free char *dir = registry_code_dir(r, f);
        if (access(dir, F_OK) == 0)
            continue;
        mf_error_t e = MF_ERROR_INIT;
        char sha[65];
        int64_t size;
        rc = store_code_get(r->store, f->code_sha256, &zip, &e);
        if (rc == 0)
            rc = code_install(r->code_root, zip.data, zip.len, &r->limits, sha, &size, &e);
        if (rc == 0 && strcmp(sha, f->code_sha256))
            rc = mf_error_plain(&e, EIO, "the store's package %s holds other bytes (%s)",
                                f->code_sha256, sha);
        if (store_unavailable(rc) || rc == -ENOMEM) {
            *err = e;
            return rc;
        }
        if (rc < 0)
            log_warn("registry", "function %s cannot run here until it is deployed again: %s",
                     f->name, e.msg);
        else
            unpacked++;
    }
    if (unpacked)
        log_info("registry", "unpacked %zu code package(s) from the store", unpacked);
    return 0;
}

int registry_open(store_t *store, const char *data_dir, const code_limits_t *limits,
                  registry_t **out, mf_error_t *err)
{
    cleanup_free char *code_root = xasprintf("%s/code", data_dir);
    int r = fs_mkdir_p(code_root, 0755, err);
    if (r < 0)
        return r;
    /* A .tmp- directory is an unpacking that a crash interrupted; the data
     * dir's lock is held (by the SQLite store, or by the server beside a
     * shared one), so no other server is unpacking now. */
    DIR *d = opendir(code_root);
    if (!d)
        return mf_error_set(err, errno, "registry: open `%s`", code_root);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, ".tmp-", 5))
            continue;
        cleanup_free char *path = xasprintf("%s/%s", code_root, de->d_name);
        mf_error_t e = MF_ERROR_INIT;
        if (fs_rm_rf(path, &e) < 0)
            log_warn("registry", "cannot remove an interrupted unpacking: %s", e.msg);
    }
    closedir(d);

    registry_t *reg = xcalloc(1, sizeof *reg);
    reg->store = store;
    reg->code_root = steal_pointer(&code_root);
    reg->limits = *limits;
    uv_mutex_init(&reg->code_lock);
    if (store_keeps_code(store) &&
        ((r = store_reopen(store, &reg->code_db, err)) < 0 ||
         (r = reg__unpack_missing(reg, err)) < 0)) {
        registry_close(reg);
        return r;
    }
    *out = reg;
    return 0;
}

/* Unpacks zip into the code directory and, with a store that keeps code
 * packages, keeps it there too for the other servers. *unpacked says
 * whether the package is in the code directory, whatever came after. On
 * the loop or on an upload's thread. */
static int reg__install(registry_t *r, const buf_t *zip, char sha[65], int64_t *size,
                        bool *unpacked, mf_error_t *err)
{
    int rc = code_install(r->code_root, zip->data, zip->len, &r->limits, sha, size, err);
    *unpacked = rc == 0;
    if (rc < 0 || !r->code_db)
        return rc;
    uv_mutex_lock(&r->code_lock);
    rc = store_code_put(r->code_db, sha, zip->data, zip->len, err);
    uv_mutex_unlock(&r->code_lock);
    return rc;
}

static void reg__cache_drop(registry_t *r)
{
    const char *key;
    void *value;
    for (size_t it = 0; map_next(&r->cache, &it, &key, &value);) {
        fn_clear(value);
        free(value);
    }
    map_release(&r->cache);
    r->cached = false;
}

/* Puts f (taken) in the cache under its name. */
static void reg__cache_set(registry_t *r, fn_t *f)
{
    fn_t *kept = xmalloc(sizeof *kept);
    *kept = *f;
    memset(f, 0, sizeof *f);
    fn_t *old = map_put(&r->cache, kept->name, kept);
    if (old) {
        fn_clear(old);
        free(old);
    }
}

static int reg__cache_fill(registry_t *r, mf_error_t *err)
{
    if (r->cached)
        return 0;
    store_function_t *list = NULL;
    size_t n = 0;
    int rc = store_function_list(r->store, &list, &n, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        fn_t f;
        if ((rc = reg__from_stored(&list[i], &f, err)) == 0)
            reg__cache_set(r, &f);
    }
    store_function_list_free(list, n);
    if (rc < 0) {
        reg__cache_drop(r);
        return rc;
    }
    r->cached = true;
    return 0;
}

void registry_close(registry_t *r)
{
    if (!r)
        return;
    store_close(r->code_db);
    uv_mutex_destroy(&r->code_lock);
    reg__cache_drop(r);
    for (size_t i = 0; i < r->ndeferred; i++)
        free(r->deferred[i].sha);
    free(r->deferred);
    free(r->code_root);
    json_decref(r->default_egress);
    free(r);
}

static int reg__check_name(const char *name, mf_error_t *err)
{
    if (!registry_valid_name(name))
        return mf_error_plain(err, EINVAL, "name: must match [A-Za-z0-9_-]{1,64}");
    return 0;
}

static int reg__forget_apply(void *db, void *arg, mf_error_t *err)
{
    return store_code_forget(db, arg, err);
}

static void reg__forget_done(void *arg, int rc, const mf_error_t *err)
{
    if (rc < 0)
        log_warn("registry", "cannot drop code package %s from the store: %s", (char *)arg,
                 err->msg);
    free(arg);
}

/* Removes a package once no function refers to it. Failing to remove it
 * only wastes disk, so it is logged rather than failing the call that
 * already changed the store. */
static void reg__release_code_as(registry_t *r, const char *sha, bool forget)
{
    if (!sha[0])
        return;
    /* A running instance has the package mounted as its /var/task; it is
     * removed when the last such instance stops (registry_code_released). */
    if (r->code_in_use && r->code_in_use(r->code_in_use_ud, sha))
        return;
    if (r->uploads) {
        r->deferred = xrealloc(r->deferred, (r->ndeferred + 1) * sizeof *r->deferred);
        r->deferred[r->ndeferred++] = (reg_deferred_t){ xstrdup(sha), forget };
        return;
    }
    mf_error_t err = MF_ERROR_INIT;
    if (reg__cache_fill(r, &err) < 0) {
        log_warn("registry", "keeping code package %s: %s", sha, err.msg);
        return;
    }
    const char *key;
    void *value;
    for (size_t it = 0; map_next(&r->cache, &it, &key, &value);)
        if (!strcmp(((const fn_t *)value)->code_sha256, sha))
            return; /* another function runs it */
    if (code_remove(r->code_root, sha, &err) < 0)
        log_warn("registry", "cannot remove code package %s: %s", sha, err.msg);
    /* A function of another server sharing the store keeps it there. */
    if (!forget || !r->code_db)
        return;
    store_writer_submit_or_run(r->writer, r->store, false, reg__forget_apply, reg__forget_done,
                               xstrdup(sha));
}

void registry_set_writer(registry_t *r, store_writer_t *w)
{
    r->writer = w;
}

static void reg__release_code(registry_t *r, const char *sha)
{
    reg__release_code_as(r, sha, true);
}

/* An upload (or fetch) ended: the packages that waited for it are looked
 * at again once none is in flight. */
static void reg__uploads_end(registry_t *r)
{
    r->uploads--;
    if (r->uploads)
        return;
    reg_deferred_t *deferred = r->deferred;
    size_t n = r->ndeferred;
    r->deferred = NULL;
    r->ndeferred = 0;
    for (size_t i = 0; i < n; i++) {
        reg__release_code_as(r, deferred[i].sha, deferred[i].forget);
        free(deferred[i].sha);
    }
    free(deferred);
}

/* Applies body to f, which holds the current settings or the defaults.
 * Every field is checked before the package is touched, so a bad field
 * never leaves an unpacked package behind. */
static int reg__apply(registry_t *r, const char *name, const json_t *body, bool create, fn_t *f,
                      const registry_upload_t *pre, mf_error_t *err)
{
    json_t *v;
    int known = reg__known_fields(body, reg__fields, "", err);
    if (known < 0)
        return known;

    if ((v = json_object_get(body, "name"))) {
        const char *s = reg__string(v, FN_NAME_MAX, NULL);
        if (!s || strcmp(s, name))
            return mf_error_plain(err, EINVAL, "name: does not match the name in the path");
    }

    if ((v = json_object_get(body, "runtime"))) {
        const char *s = reg__string(v, 64, NULL);
        const char *rt = s ? reg__canonical_runtime(s) : NULL;
        if (!rt) {
            if (!json_is_string(v))
                return mf_error_plain(err, EINVAL, "runtime: must be a string");
            return mf_error_plain(
                err, EINVAL,
                "runtime: unsupported runtime `%s` (use python3, nodejs, java17, java21 or provided)",
                SHOW(json_string_value(v)));
        }
        /* Refused now rather than at the first call: the function could
         * never start on this server. */
        if (jvm_is_java(rt) && !jvm_home(rt))
            return mf_error_plain(err, EINVAL,
                                  "runtime: this server has no Java %s (no JDK %s%s in its JVM "
                                  "folder)",
                                  rt + 4, rt + 4, strcmp(rt, "java17") ? " or newer" : "");
        snprintf(f->runtime, sizeof f->runtime, "%s", rt);
        snprintf(f->runtime_name, sizeof f->runtime_name, "%s", s);
    } else if (create) {
        return mf_error_plain(err, EINVAL, "runtime: required when creating a function");
    }

    if ((v = json_object_get(body, "handler"))) {
        if (!json_is_string(v))
            return mf_error_plain(err, EINVAL, "handler: must be a string");
        const char *s = reg__string(v, sizeof f->handler - 1, NULL);
        if (!s)
            return mf_error_plain(err, EINVAL,
                                  "handler: must be at most %zu characters without NUL",
                                  sizeof f->handler - 1);
        snprintf(f->handler, sizeof f->handler, "%s", s);
    }
    /* Checked on every put, not only when handler is given: a new runtime
     * may need a handler the old one did without. */
    int rc = reg__check_handler(f, err);
    if (rc < 0)
        return rc;

    if ((rc = reg__int(body, "memory_mb", &reg__memory_mb, &f->memory_mb, err)) < 0 ||
        (rc = reg__int(body, "timeout_s", &reg__timeout_s, &f->timeout_s, err)) < 0 ||
        (rc = reg__int(body, "max_concurrency", &reg__max_concurrency, &f->max_concurrency, err)) <
            0 ||
        (rc = reg__int(body, "instance_concurrency", &reg__instance_concurrency,
                       &f->instance_concurrency, err)) < 0 ||
        (rc = reg__int(body, "tmp_mb", &reg__tmp_mb, &f->tmp_mb, err)) < 0)
        return rc;

    if ((v = json_object_get(body, "env"))) {
        json_t *env = NULL;
        if ((rc = reg__env(v, &env, err)) < 0)
            return rc;
        json_decref(f->env);
        f->env = env;
    }

    if ((v = json_object_get(body, "egress"))) {
        /* Stored and shown as canonical texts, so what GET shows is what
         * the gateway enforces, however the rules were spelt. */
        egress_policy_t policy;
        if ((rc = egress_policy_from_json(v, &policy, err)) < 0)
            return rc;
        json_decref(f->egress);
        f->egress = egress_policy_to_json(&policy);
        egress_policy_free(&policy);
    }

    if ((v = json_object_get(body, "permissions"))) {
        json_t *perms = NULL;
        if ((rc = reg__permissions(v, &perms, err)) < 0)
            return rc;
        json_decref(f->permissions);
        f->permissions = perms;
    }
    if ((v = json_object_get(body, "volumes"))) {
        json_t *vols = NULL;
        if ((rc = reg__volumes(v, &vols, err)) < 0)
            return rc;
        json_decref(f->volumes);
        f->volumes = vols;
    }
    /* Checked whichever of the two changed: a volume stays granted. */
    if ((rc = reg__volumes_granted(f, err)) < 0)
        return rc;

    if ((v = json_object_get(body, "async")) && (rc = reg__async(v, &f->async, err)) < 0)
        return rc;
    if ((v = json_object_get(body, "record")) && (rc = reg__record(v, &f->record, err)) < 0)
        return rc;
    if ((v = json_object_get(body, "durable")) && (rc = fn_durable_parse(v, &f->durable, err)) < 0)
        return rc;
    if ((rc = fn_tenancy_apply(body, create, &f->tenancy, err)) < 0)
        return rc;

    if ((rc = reg__logging(body, f, err)) < 0)
        return rc;
    if ((rc = reg__keep_warm(body, f, err)) < 0)
        return rc;

    v = json_object_get(body, "code");
    if (!v) {
        if (create)
            return mf_error_plain(err, EINVAL, "code: required when creating a function");
        return 0;
    }
    if (pre) {
        /* Unpacked already, off the loop; its failure comes after the
         * fields', as in a put done in one go. */
        if (pre->rc < 0) {
            if (err)
                *err = pre->err;
            return pre->rc;
        }
        memcpy(f->code_sha256, pre->code_sha256, sizeof f->code_sha256);
        f->code_size = pre->code_size;
        f->zip_size = pre->zip_size;
        return 0;
    }
    cleanup_buf buf_t zip = BUF_INIT;
    if ((rc = reg__code(r, v, &zip, err)) < 0)
        return rc;
    f->zip_size = (int64_t)zip.len;
    bool unpacked;
    return reg__install(r, &zip, f->code_sha256, &f->code_size, &unpacked, err);
}

/* A put between its plan and its commit (registry.h). */
struct registry_plan {
    registry_t *r;
    char name[TENANT_QNAME_MAX + 1];
    fn_t f;                   /* the function as it will be */
    store_function_t sf;      /* its row (config_json owned) */
    char old_sha[65];
    bool create;
    /* The write's outcome: 0, or -ESTALE with the row the store has now
     * (found, or the function is gone). */
    int write_rc;
    mf_error_t write_err;
    bool stale_found;
    store_function_t stale_row;
};

static int reg__plan(registry_t *r, const char *name, const json_t *body,
                     const registry_upload_t *pre, registry_plan_t **out, mf_error_t *err);

static int reg__put(registry_t *r, const char *name, const json_t *body,
                    const registry_upload_t *pre, fn_t *out, bool *created, mf_error_t *err)
{
    for (int tries = 1;; tries++) {
        registry_plan_t *p;
        int rc = reg__plan(r, name, body, pre, &p, err);
        if (rc < 0)
            return rc;
        registry_sync_t what;
        rc = registry_plan_write(p, r->store, err);
        rc = registry_put_commit(r, p, rc, err, out, &what, err);
        *created = rc == 0 && what == REGISTRY_CREATED;
        if (rc != 0 && (what == REGISTRY_CREATED || what == REGISTRY_CHANGED))
            fn_clear(out); /* another server's version, taken in */
        if (rc != -ESTALE || tries == REGISTRY_PUT_TRIES)
            return rc;
    }
}

static int reg__plan(registry_t *r, const char *name, const json_t *body,
                     const registry_upload_t *pre, registry_plan_t **out, mf_error_t *err)
{
    int rc = reg__check_name(name, err);
    if (rc < 0)
        return rc;
    if (!json_is_object(body))
        return mf_error_plain(err, EINVAL, "body: must be a JSON object");
    if ((rc = reg__cache_fill(r, err)) < 0)
        return rc;
    const fn_t *cur = map_get(&r->cache, name);
    bool create = !cur;
    int64_t cur_version = cur ? cur->version : 0, cur_created_ms = cur ? cur->created_ms : 0;

    fn_t f;
    if (create) {
        reg__defaults(&f, name);
        if (r->default_egress) {
            json_decref(f.egress);
            f.egress = json_deep_copy(r->default_egress);
        }
    } else {
        fn_copy(&f, cur);
    }
    char old_sha[sizeof f.code_sha256];
    memcpy(old_sha, f.code_sha256, sizeof old_sha);

    if ((rc = reg__apply(r, name, body, create, &f, pre, err)) < 0)
        goto fail;

    /* Every successful put to an existing function is a new version, even
     * one that changes nothing: simple to explain, and a version never
     * names two different configurations. */
    int64_t now = clock_wall_ms();
    f.version = create ? 1 : cur_version + 1;
    f.created_ms = create ? now : cur_created_ms;
    f.updated_ms = now;

    json_t *cfg = reg__config(&f);
    char *config = json_dumps(cfg, JSON_COMPACT);
    json_decref(cfg);
    if (!config) {
        rc = mf_error_plain(err, ENOMEM, "registry: cannot encode function `%s`", name);
        goto fail;
    }
    registry_plan_t *p = xcalloc(1, sizeof *p);
    p->r = r;
    snprintf(p->name, sizeof p->name, "%s", name);
    p->sf = (store_function_t){
        .version = f.version,
        .code_size = f.code_size,
        .config_json = config,
        .created_ms = f.created_ms,
        .updated_ms = f.updated_ms,
    };
    memcpy(p->sf.name, f.name, sizeof p->sf.name);
    memcpy(p->sf.code_sha256, f.code_sha256, sizeof p->sf.code_sha256);
    memcpy(p->old_sha, old_sha, sizeof p->old_sha);
    p->create = create;
    p->f = f;
    /* Until the commit, no package goes (the plan's new one, or the one a
     * newer version found by the write refers to, fetched meanwhile). */
    r->uploads++;
    *out = p;
    return 0;

fail:
    /* A package this call unpacked and nothing refers to is not kept. */
    if (strcmp(old_sha, f.code_sha256))
        reg__release_code(r, f.code_sha256);
    fn_clear(&f);
    return rc;
}

int registry_put_plan(registry_t *r, const char *name, const registry_upload_t *up,
                      registry_plan_t **out, mf_error_t *err)
{
    if (up->body_failed) {
        *err = up->err;
        return up->rc;
    }
    return reg__plan(r, name, up->body, up, out, err);
}

int registry_plan_write(registry_plan_t *p, store_t *db, mf_error_t *err)
{
    /* A writer may run a job again: only this run's outcome counts. */
    if (p->stale_found)
        store_function_clear(&p->stale_row);
    p->stale_found = false;
    p->write_err = (mf_error_t)MF_ERROR_INIT;
    p->write_rc = store_function_put(db, &p->sf, &p->write_err);
    if (p->write_rc != -ESTALE) {
        if (p->write_rc < 0)
            *err = p->write_err;
        return p->write_rc;
    }
    /* Another server's version is newer: read it, and have its package
     * here, for the commit to take it in. */
    int rc = store_function_get(db, p->name, &p->stale_row, err);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    p->stale_found = true;
    mf_error_t e = MF_ERROR_INIT;
    if (registry_fetch_code(p->r, p->stale_row.code_sha256, &e) < 0)
        log_warn("registry", "function %s cannot run here until its package is: %s", p->name,
                 e.msg);
    return 0;
}

static void reg__plan_free(registry_t *r, registry_plan_t *p)
{
    if (p->stale_found)
        store_function_clear(&p->stale_row);
    free(p->sf.config_json);
    free(p);
    reg__uploads_end(r);
}

int registry_put_commit(registry_t *r, registry_plan_t *p, int rc, const mf_error_t *rc_err,
                        fn_t *out, registry_sync_t *what, mf_error_t *err)
{
    *what = REGISTRY_SAME;
    if (rc == 0)
        rc = p->write_rc;
    if (rc == 0) {
        fn_t kept;
        fn_copy(&kept, &p->f);
        reg__cache_set(r, &kept);
        r->changes++;
        if (strcmp(p->old_sha, p->f.code_sha256))
            reg__release_code(r, p->old_sha);
        *what = p->create ? REGISTRY_CREATED : REGISTRY_CHANGED;
        *out = p->f;
        reg__plan_free(r, p);
        return 0;
    }
    /* A package this put unpacked and nothing refers to is not kept. */
    if (strcmp(p->old_sha, p->f.code_sha256))
        reg__release_code(r, p->f.code_sha256);
    fn_clear(&p->f);
    if (rc == -ESTALE) {
        /* The body goes on top of what the other server made, in the
         * caller's next plan, as if the two puts had come one after the
         * other (neither is lost). */
        int a = registry_apply_stored(r, p->name, p->stale_found ? &p->stale_row : NULL, out,
                                      what, err);
        if (a == 0)
            *err = p->write_err;
        else
            rc = a;
    } else if (rc_err != err) {
        *err = *rc_err;
    }
    reg__plan_free(r, p);
    return rc;
}

int registry_put(registry_t *r, const char *name, const json_t *body, fn_t *out, bool *created,
                 mf_error_t *err)
{
    return reg__put(r, name, body, NULL, out, created, err);
}

void registry_upload_begin(registry_t *r)
{
    r->uploads++;
}

void registry_prepare_upload(registry_t *r, const char *data, size_t len, registry_upload_t *up)
{
    memset(up, 0, sizeof *up);
    json_error_t jerr;
    up->body = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!up->body) {
        up->body_failed = true;
        up->rc = mf_error_plain(&up->err, EINVAL, "body: invalid JSON at line %d column %d: %s",
                                jerr.line, jerr.column, jerr.text);
        return;
    }
    const json_t *code = json_is_object(up->body) ? json_object_get(up->body, "code") : NULL;
    if (!code)
        return; /* the rest is checked by registry_put_prepared */
    cleanup_buf buf_t zip = BUF_INIT;
    up->rc = reg__code(r, code, &zip, &up->err);
    up->zip_size = (int64_t)zip.len;
    if (up->rc == 0)
        up->rc = reg__install(r, &zip, up->code_sha256, &up->code_size, &up->has_code, &up->err);
}

void registry_upload_end(registry_t *r, registry_upload_t *up, int rc)
{
    /* A package unpacked for a put that failed belongs to no one (it
     * waits while this upload counts, and goes when it ends). */
    if (rc < 0 && up->has_code)
        reg__release_code(r, up->code_sha256);
    reg__uploads_end(r);
}

void registry_upload_release(registry_upload_t *up)
{
    json_decref(up->body);
    up->body = NULL;
}

int registry_get(registry_t *r, const char *name, fn_t *out, mf_error_t *err)
{
    int rc = reg__check_name(name, err);
    if (rc < 0)
        return rc;
    if ((rc = reg__cache_fill(r, err)) < 0)
        return rc;
    const fn_t *f = map_get(&r->cache, name);
    if (!f)
        return mf_error_plain(err, ENOENT, "function `%s` does not exist", name);
    fn_copy(out, f);
    return 0;
}

int registry_check(registry_t *r, const char *name, mf_error_t *err)
{
    int rc = reg__check_name(name, err);
    if (rc < 0 || (rc = reg__cache_fill(r, err)) < 0)
        return rc;
    if (!map_get(&r->cache, name))
        return mf_error_plain(err, ENOENT, "function `%s` does not exist", name);
    return 0;
}

static int reg__by_name(const void *a, const void *b)
{
    return strcmp(((const fn_t *)a)->name, ((const fn_t *)b)->name);
}

int registry_list(registry_t *r, fn_t **out, size_t *count, mf_error_t *err)
{
    int rc = reg__cache_fill(r, err);
    if (rc < 0)
        return rc;
    fn_t *fns = xcalloc(r->cache.len ? r->cache.len : 1, sizeof *fns);
    size_t n = 0;
    const char *key;
    void *value;
    for (size_t it = 0; map_next(&r->cache, &it, &key, &value);)
        fn_copy(&fns[n++], value);
    qsort(fns, n, sizeof *fns, reg__by_name);
    *out = fns;
    *count = n;
    return 0;
}

int registry_delete_plan(registry_t *r, const char *name, mf_error_t *err)
{
    int rc = reg__check_name(name, err);
    if (rc < 0)
        return rc;
    if ((rc = reg__cache_fill(r, err)) < 0)
        return rc;
    if (!map_get(&r->cache, name))
        return mf_error_plain(err, ENOENT, "function `%s` does not exist", name);
    return 0;
}

int registry_delete_write(store_t *db, const char *name, mf_error_t *err)
{
    return store_function_delete(db, name, err);
}

int registry_delete_commit(registry_t *r, const char *name, int rc, const mf_error_t *rc_err,
                           mf_error_t *err)
{
    if (rc < 0) {
        if (rc_err != err)
            *err = *rc_err;
        return rc;
    }
    r->changes++;
    /* A put of this server's may have taken it out and in again meanwhile:
     * the store has none now either way. */
    fn_t *f = map_remove(&r->cache, name);
    if (f) {
        reg__release_code(r, f->code_sha256);
        fn_clear(f);
        free(f);
    }
    return 0;
}

int registry_delete(registry_t *r, const char *name, mf_error_t *err)
{
    int rc = registry_delete_plan(r, name, err);
    if (rc == 0)
        rc = registry_delete_write(r->store, name, err);
    return registry_delete_commit(r, name, rc, err, err);
}

/* ---- changes other servers made ------------------------------------------- */

uint64_t registry_changes(registry_t *r)
{
    return r->changes;
}

/* Whether a row read back is another version than f: a version is never
 * given twice by one server, but two servers updating a function at once
 * may each give the same one; the time tells them apart. */
static bool reg__row_differs(const fn_t *f, const store_function_t *row)
{
    return f->version != row->version || f->updated_ms != row->updated_ms ||
           strcmp(f->code_sha256, row->code_sha256);
}

bool registry_differs(registry_t *r, const char *name, const store_function_t *row)
{
    mf_error_t err = MF_ERROR_INIT;
    if (reg__cache_fill(r, &err) < 0)
        return true;
    const fn_t *cur = map_get(&r->cache, name);
    return row ? !cur || reg__row_differs(cur, row) : cur != NULL;
}

void registry_fetch_begin(registry_t *r)
{
    r->uploads++;
}

static bool reg__sha_shape(const char *sha)
{
    size_t n = strspn(sha, "0123456789abcdef");
    return n == 64 && !sha[n];
}

int registry_fetch_code(registry_t *r, const char *sha, mf_error_t *err)
{
    if (!reg__sha_shape(sha))
        return mf_error_plain(err, EINVAL, "registry: `%s` is not a package's SHA-256",
                              SHOW(sha));
    cleanup_free char *dir = xasprintf("%s/%s", r->code_root, sha);
    if (access(dir, F_OK) == 0)
        return 0;
    if (!r->code_db)
        return mf_error_plain(err, ENOENT, "registry: code package %s is not here", sha);
    cleanup_buf buf_t zip = BUF_INIT;
    uv_mutex_lock(&r->code_lock);
    int rc = store_code_get(r->code_db, sha, &zip, err);
    uv_mutex_unlock(&r->code_lock);
    char got[65];
    int64_t size;
    if (rc == 0)
        rc = code_install(r->code_root, zip.data, zip.len, &r->limits, got, &size, err);
    if (rc == 0 && strcmp(got, sha))
        rc = mf_error_plain(err, EIO, "registry: the store's package %s holds other bytes (%s)",
                            sha, got);
    return rc;
}

int registry_code_zip(registry_t *r, const char *sha, buf_t *out, bool *as_uploaded,
                      mf_error_t *err)
{
    *as_uploaded = false;
    if (!reg__sha_shape(sha))
        return mf_error_plain(err, EINVAL, "registry: `%s` is not a package's SHA-256",
                              SHOW(sha));
    if (r->code_db) {
        uv_mutex_lock(&r->code_lock);
        int rc = store_code_get(r->code_db, sha, out, err);
        uv_mutex_unlock(&r->code_lock);
        if (rc == 0) {
            *as_uploaded = true;
            return 0;
        }
        /* Gone from the store (a package nothing uses any more, dropped
         * as this read came): the tree, while this server still has it. */
        if (rc != -ENOENT)
            return rc;
    }
    cleanup_free char *dir = xasprintf("%s/%s", r->code_root, sha);
    if (access(dir, F_OK) < 0)
        return mf_error_plain(err, ENOENT, "registry: code package %s is not here", sha);
    return code_zip(dir, out, err);
}

int registry_code_files(registry_t *r, const char *sha, code_file_t **out, size_t *count,
                        mf_error_t *err)
{
    *out = NULL;
    *count = 0;
    int rc = registry_fetch_code(r, sha, err);
    if (rc < 0)
        return rc;
    cleanup_free char *dir = xasprintf("%s/%s", r->code_root, sha);
    return code_files(dir, out, count, err);
}

void registry_fetch_end(registry_t *r)
{
    reg__uploads_end(r);
}

int registry_apply_stored(registry_t *r, const char *name, const store_function_t *row,
                          fn_t *out, registry_sync_t *what, mf_error_t *err)
{
    *what = REGISTRY_SAME;
    int rc = reg__cache_fill(r, err);
    if (rc < 0)
        return rc;
    fn_t *cur = map_get(&r->cache, name);
    /* The server that made the change dropped a package nothing uses any
     * more from the store already: only this server's copy goes. */
    if (!row) {
        if (!cur)
            return 0;
        map_remove(&r->cache, name);
        reg__release_code_as(r, cur->code_sha256, false);
        fn_clear(cur);
        free(cur);
        *what = REGISTRY_REMOVED;
        return 0;
    }
    if (cur && !reg__row_differs(cur, row))
        return 0;
    fn_t f;
    if ((rc = reg__from_stored(row, &f, err)) < 0)
        return rc;
    char old_sha[sizeof f.code_sha256] = "";
    if (cur)
        memcpy(old_sha, cur->code_sha256, sizeof old_sha);
    *what = cur ? REGISTRY_CHANGED : REGISTRY_CREATED;
    fn_t kept;
    fn_copy(&kept, &f);
    reg__cache_set(r, &kept);
    if (old_sha[0] && strcmp(old_sha, f.code_sha256))
        reg__release_code_as(r, old_sha, false);
    *out = f;
    return 0;
}

char *registry_code_dir(registry_t *r, const fn_t *f)
{
    return xasprintf("%s/%s", r->code_root, f->code_sha256);
}

static json_t *fn_to_json_base(const fn_t *f);

json_t *fn_to_json(const fn_t *f)
{
    json_t *out = fn_to_json_base(f);
    char tenant[TENANT_MAX + 1];
    tenant_of(f->name, tenant);
    json_object_set_new(out, "tenant", json_string(tenant));
    /* Shown only on a durable function (docs/durable.md). */
    if (f->durable.enabled)
        json_object_set_new(out, "durable", fn_durable_json(&f->durable));
    fn_tenancy_to_json(&f->tenancy, out);
    json_object_set_new(out, "instance_concurrency", json_integer(f->instance_concurrency));
    return out;
}

static json_t *fn_to_json_base(const fn_t *f)
{
    char created[32], updated[32];
    clock_format_iso8601(f->created_ms, created, sizeof created);
    clock_format_iso8601(f->updated_ms, updated, sizeof updated);
    json_t *env = f->env ? json_deep_copy(f->env) : json_object();
    json_t *egress = f->egress ? json_deep_copy(f->egress) : json_array();
    json_t *perms = f->permissions ? json_deep_copy(f->permissions) : json_array();
    json_t *vols = f->volumes ? json_deep_copy(f->volumes) : json_array();
    return json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:s, "
                     "s:s?, s:s?, s:I, s:s, s:I, s:I, s:s, s:s}",
                     "name", tenant_local(f->name), "runtime", f->runtime, "handler", f->handler, "memory_mb",
                     f->memory_mb, "timeout_s", f->timeout_s, "max_concurrency", f->max_concurrency,
                     "tmp_mb", f->tmp_mb, "env", env, "egress", egress, "permissions", perms,
                     "volumes", vols, "async", reg__async_json(&f->async), "record",
                     reg__record_json(&f->record), "log_format", f->log_format, "log_level",
                     f->log_level[0] ? f->log_level : NULL, "system_log_level",
                     f->system_log_level[0] ? f->system_log_level : NULL, "version",
                     (json_int_t)f->version, "code_sha256", f->code_sha256, "code_size",
                     (json_int_t)f->code_size, "zip_size", (json_int_t)f->zip_size, "created",
                     created, "updated", updated);
}

void fn_copy(fn_t *dst, const fn_t *src)
{
    *dst = *src;
    dst->env = src->env ? json_deep_copy(src->env) : json_object();
    dst->egress = src->egress ? json_deep_copy(src->egress) : json_array();
    dst->permissions = src->permissions ? json_deep_copy(src->permissions) : json_array();
    dst->volumes = src->volumes ? json_deep_copy(src->volumes) : json_array();
}

void fn_clear(fn_t *f)
{
    if (!f)
        return;
    json_decref(f->env);
    json_decref(f->egress);
    json_decref(f->permissions);
    json_decref(f->volumes);
    memset(f, 0, sizeof *f);
}

void fn_list_free(fn_t *list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        fn_clear(&list[i]);
    free(list);
}

void registry_set_default_egress(registry_t *r, const egress_policy_t *p)
{
    json_decref(r->default_egress);
    r->default_egress = egress_policy_to_json(p);
}

void registry_set_code_guard(registry_t *r, bool (*in_use)(void *ud, const char *sha), void *ud)
{
    r->code_in_use = in_use;
    r->code_in_use_ud = ud;
}

void registry_code_released(registry_t *r, const char *sha)
{
    reg__release_code(r, sha);
}
