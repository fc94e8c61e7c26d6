/* The function registry: validation of a function's settings, versions,
 * and its code package, over the store and the code directory.
 *
 * Errors map onto HTTP statuses by their errno: -EINVAL a bad field (the
 * message starts with the field's name, e.g. "memory_mb: must be an integer
 * from 128 to 10240"), -ENOENT no such function, -EFBIG a package past its
 * limits, anything else an internal error. */
#ifndef MAYFLY_REGISTRY_REGISTRY_H
#define MAYFLY_REGISTRY_REGISTRY_H

#include "core/tenant.h"
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "registry/code.h"
#include "store/store.h"
#include "store/writer.h"

#define FN_NAME_MAX 64

struct egress_policy;

typedef struct fn_async {
    int max_retries;             /* 0–2, default 2 */
    int max_event_age_s;         /* 60–21600, default 21600 */
    char on_success[TENANT_QNAME_MAX + 1]; /* "" when unset */
    char on_failure[TENANT_QNAME_MAX + 1];
} fn_async_t;

/* What a call's record keeps of its event and result (docs/observability.md). */
#define FN_REDACT_MAX 32
#define FN_REDACT_NAME_MAX 64
typedef struct fn_record {
    char payloads[8];            /* "full" (default), "errors" or "off" */
    int max_payload_kb;          /* 1–1024, default 64 */
    int n_redact;                /* member names whose values are never kept */
    char redact[FN_REDACT_MAX][FN_REDACT_NAME_MAX + 1];
} fn_record_t;

/* Durable functions (docs/durable.md): each call starts a durable
 * execution (src/durable/). */
typedef struct fn_durable {
    bool enabled;
    int execution_timeout_s;     /* 1–31622400, default 86400 */
    int retention_days;          /* 1–90, default 14 */
} fn_durable_t;

/* Lambda's tenant isolation mode (TenancyConfig; docs/metering.md): each
 * call names a tenant id of the function's own customers (not one of
 * mayfly's tenants, core/tenant.h), and an instance serves one tenant id
 * for its whole life. Fixed when the function is created. */
#define FN_TENANCY_PER_TENANT "per_tenant"
#define FN_TENANT_ID_MAX 256
#define FN_MAX_INSTANCES_PER_TENANT 1000
typedef struct fn_tenancy {
    bool per_tenant;
    int max_instances_per_tenant; /* 1–1000; 0: no cap but max_concurrency */
} fn_tenancy_t;

/* A function as the rest of mayfly sees it. */
typedef struct fn {
    char name[TENANT_QNAME_MAX + 1];
    char runtime[16];            /* canonical: "python3", "nodejs", "provided" */
    char runtime_name[65];       /* as given, e.g. "python3.12" (Lambda shows it back) */
    char handler[129];
    int memory_mb;               /* 128–10240, default 128 */
    int timeout_s;               /* 1–900, default 3 */
    int max_concurrency;         /* 1–1000, default 10 */
    /* How many calls one instance serves at once (Lambda Managed
     * Instances' per-environment concurrency): 1–1600, default 1, one
     * call per instance as on Lambda. Its runtime gets it as
     * AWS_LAMBDA_MAX_CONCURRENCY. */
    int instance_concurrency;
    int tmp_mb;                  /* 16–10240, default 64 */
    json_t *env;                 /* object of string → string, owned */
    /* Where the function may connect (src/egress/policy.h): an array of
     * canonical rule texts, owned; never NULL for a function read back,
     * [] (no network) by default. */
    json_t *egress;
    /* What the function may reach through the platform's API inside its
     * sandbox (docs/state.md): an array of "KIND:NAME" strings (KIND kv,
     * invoke, topic or volume; NAME may hold * wildcards), owned, never
     * NULL for a function read back; [] by default. */
    json_t *permissions;
    /* The shared volumes it mounts: an array of {"name","path","read_only"}
     * (path /mnt/NAME-like, one level under /mnt), owned, [] by default;
     * each needs the permission volume:NAME. */
    json_t *volumes;
    fn_async_t async;
    fn_record_t record;
    fn_durable_t durable;
    fn_tenancy_t tenancy;
    /* Lambda's LoggingConfig. The runtimes get the format and level as
     * AWS_LAMBDA_LOG_FORMAT and AWS_LAMBDA_LOG_LEVEL (unless env sets
     * them). The levels apply to the JSON format only, as on Lambda: ""
     * with Text, "INFO" by default with JSON. */
    char log_format[8];          /* "Text" (default) or "JSON" */
    char log_level[8];           /* TRACE, DEBUG, INFO, WARN, ERROR or FATAL */
    char system_log_level[8];    /* the platform's own lines: DEBUG, INFO or WARN */
    /* How long an idle instance stays warm (docs/keep-alive.md): "fixed"
     * (the server's --idle-timeout), "adaptive" (learnt from the time
     * between its calls), or "" for the server's default (--keep-warm). */
    char keep_warm[12];
    int64_t version;
    char code_sha256[65];
    int64_t code_size;           /* unpacked */
    int64_t zip_size;            /* the package as uploaded (Lambda's CodeSize) */
    int64_t created_ms, updated_ms;
} fn_t;

typedef struct registry registry_t;

/* Code packages live under DATA_DIR/code. */
int registry_open(store_t *store, const char *data_dir, const code_limits_t *limits,
                  registry_t **out, mf_error_t *err);
void registry_close(registry_t *r);

/* The egress rules of a function created without "egress" (--default-egress;
 * [] until set). The registry keeps a copy; NULL sets []. A function
 * updated without the field keeps its own, and functions already created
 * keep theirs: the default is applied once, when a function is created. */
void registry_set_default_egress(registry_t *r, const struct egress_policy *p);

/* True when name is a function's qualified name (core/tenant.h): a valid
 * tenant, if any, and a name within it matching [A-Za-z0-9_-]{1,64}. */
bool registry_valid_name(const char *name);
/* A name as a user writes it, within its tenant: [A-Za-z0-9_-]{1,64}.
 * registry_valid_name takes a qualified name (core/tenant.h) too; a
 * setting that names another object of the function's tenant (a
 * destination, a volume) takes this one only. */
bool registry_valid_local(const char *name);

/* Creates or updates the function name from a request body shaped as in
 * DESIGN.md: {"runtime","handler","memory_mb","timeout_s","env",
 * "max_concurrency","tmp_mb","async":{…},"log_format","log_level",
 * "system_log_level","egress":[RULE…],"record":{…},"permissions":[…],
 * "volumes":[…],"code":{"zip_base64"}}.
 * On create, runtime and code are required, and other fields take their
 * defaults (egress the server's, registry_set_default_egress); on update, a field left out keeps its current value (but a
 * function whose format becomes Text drops its log levels, which only JSON
 * has), and a new code package or any changed field raises the version by
 * one. Unknown fields are rejected. *created tells which happened. */
int registry_put(registry_t *r, const char *name, const json_t *body, fn_t *out,
                 bool *created, mf_error_t *err);
/* What taking a function's stored row in did (registry_apply_stored,
 * registry_put_commit). */
typedef enum registry_sync {
    REGISTRY_SAME,    /* the registry has it so already (a change of this server's own) */
    REGISTRY_CREATED,
    REGISTRY_CHANGED,
    REGISTRY_REMOVED,
} registry_sync_t;

/* A put split up, so that neither its slow part (parsing a body of up to
 * about 67 MiB, base64, SHA-256, unzipping up to 250 MiB) nor its store
 * write runs on the event loop:
 *   registry_upload_begin (loop), registry_prepare_upload (any thread);
 *   then registry_put_plan (loop): the body applied to the function as the
 *   registry has it, the row to write; registry_plan_write (a store
 *   writer's thread, with its store as db); registry_put_commit (loop),
 *   with what the write's job returned: the registry takes the put in.
 *   -ESTALE from the commit: another server sharing the store had put a
 *   newer version, which the registry has now taken in; plan again (the
 *   body then goes on top of it), up to a few times, then answer 409;
 *   then registry_upload_end (loop) with the final outcome.
 * Answers and errors are registry_put's. While an upload or a plan is in
 * flight, packages no function uses any more stay (the upload may have
 * found one in place) until the last one ends. */
typedef struct registry_upload {
    json_t *body;             /* the parsed body, or NULL */
    bool has_code;            /* the package below is unpacked */
    char code_sha256[65];
    int64_t code_size;           /* unpacked */
    int64_t zip_size;            /* the package as uploaded (Lambda's CodeSize) */
    int rc;                   /* the body's or the package's failure, or 0 */
    bool body_failed;         /* rc is about the body as a whole */
    mf_error_t err;
} registry_upload_t;

void registry_upload_begin(registry_t *r);
void registry_prepare_upload(registry_t *r, const char *data, size_t len, registry_upload_t *up);
typedef struct registry_plan registry_plan_t;
/* How many plans of one put may meet another server's newer version
 * before it gives up (-ESTALE, the caller's 409). */
#define REGISTRY_PUT_TRIES 8
int registry_put_plan(registry_t *r, const char *name, const registry_upload_t *up,
                      registry_plan_t **out, mf_error_t *err);
/* Writes the plan's row; rerun-safe (a writer may run a job again). */
int registry_plan_write(registry_plan_t *p, store_t *db, mf_error_t *err);
/* Frees p; rc and rc_err are the write job's outcome. On success *what is
 * REGISTRY_CREATED or REGISTRY_CHANGED and *out the function put; on
 * -ESTALE, *what is what taking in the other server's version did, as
 * registry_apply_stored says (*out the function it made, when created or
 * changed), for the caller to act on as on any change from elsewhere;
 * fn_clear *out in both cases. */
int registry_put_commit(registry_t *r, registry_plan_t *p, int rc, const mf_error_t *rc_err,
                        fn_t *out, registry_sync_t *what, mf_error_t *err);
void registry_upload_end(registry_t *r, registry_upload_t *up, int rc);
void registry_upload_release(registry_upload_t *up);

int registry_get(registry_t *r, const char *name, fn_t *out, mf_error_t *err);
/* Whether the function exists, as registry_get would say (0, -ENOENT or
 * -EINVAL for a bad name, with *err), without copying it out. */
int registry_check(registry_t *r, const char *name, mf_error_t *err);
/* Fills *out with a newly allocated array; free with fn_list_free. */
int registry_list(registry_t *r, fn_t **out, size_t *count, mf_error_t *err);
/* Deletes the function and, when no other function uses it, its package. */
int registry_delete(registry_t *r, const char *name, mf_error_t *err);
/* The same split up as a put is, so that its store write runs off the
 * loop: registry_delete_plan (loop) checks the function is there (-ENOENT,
 * -EINVAL); registry_delete_write (a store writer's thread, its store as
 * db; -ENOENT when another server deleted it first); registry_delete_commit
 * (loop) with the write's outcome takes it out of the registry. */
int registry_delete_plan(registry_t *r, const char *name, mf_error_t *err);
int registry_delete_write(store_t *db, const char *name, mf_error_t *err);
int registry_delete_commit(registry_t *r, const char *name, int rc, const mf_error_t *rc_err,
                           mf_error_t *err);

/* With a store that keeps code packages, a package nothing uses any more
 * is dropped from it by a job of w, off the loop (NULL, the default: at
 * once). w must outlive the registry's use. */
void registry_set_writer(registry_t *r, store_writer_t *w);

/* Lets the execution layer keep packages its instances still run from:
 * a package no function refers to any more is only removed when in_use
 * says no; registry_code_released(sha) then asks again. */
void registry_set_code_guard(registry_t *r, bool (*in_use)(void *ud, const char *sha), void *ud);
void registry_code_released(registry_t *r, const char *sha);

/* ---- changes other servers made (a shared store) ----------------------------
 *
 * Another server sharing the store changed a function: its row, read
 * again off the loop, is taken in here. The reads come after the change,
 * but a put or delete made on this server meanwhile may be newer than what
 * was read: a caller that sees registry_changes move while its read was on
 * its way reads again instead. */

/* How many puts and deletes this server made: it moves with each. */
uint64_t registry_changes(registry_t *r);
/* Whether row (NULL: the function is gone) differs from what the registry
 * keeps of name: its version, time or package. On the loop. */
bool registry_differs(registry_t *r, const char *name, const store_function_t *row);
/* Makes sure the package sha is unpacked in the code directory, from the
 * store's copy (with a store that keeps code packages). On any thread,
 * between registry_fetch_begin and registry_fetch_end (on the loop), while
 * which no package is removed (it may be one nothing refers to yet). */
void registry_fetch_begin(registry_t *r);
int registry_fetch_code(registry_t *r, const char *sha, mf_error_t *err);
void registry_fetch_end(registry_t *r);

/* A package read back for its owner (GET /v1/functions/{name}/code…), on
 * any thread between registry_fetch_begin and registry_fetch_end.
 * registry_code_zip: with a store that keeps code packages, the zip as it
 * was uploaded, byte for byte (*as_uploaded true); else the unpacked tree
 * zipped again (code_zip: the same tree, other bytes). registry_code_files:
 * the unpacked tree's entries (code_files), unpacked from the store's
 * copy first when this server lacks it. -ENOENT when neither is here. */
int registry_code_zip(registry_t *r, const char *sha, buf_t *out, bool *as_uploaded,
                      mf_error_t *err);
int registry_code_files(registry_t *r, const char *sha, code_file_t **out, size_t *count,
                        mf_error_t *err);


/* Takes name's row (NULL: it is gone) into the registry, on the loop;
 * *what says what that did and, when created or changed, *out is the
 * function as it is now (fn_clear it). A package no function refers to any
 * more leaves this server's code directory (the store's copy was dropped
 * by the server that made the change). */
int registry_apply_stored(registry_t *r, const char *name, const store_function_t *row,
                          fn_t *out, registry_sync_t *what, mf_error_t *err);

/* The directory holding a function's unpacked code (free() it). */
char *registry_code_dir(registry_t *r, const fn_t *f);

/* The function's JSON as the API returns it (a new reference). */
json_t *fn_to_json(const fn_t *f);
/* A deep copy of src into dst (which holds nothing): fn_clear it. */
void fn_copy(fn_t *dst, const fn_t *src);
void fn_clear(fn_t *f);

#define FN_PERMISSIONS_MAX 64
#define FN_VOLUMES_MAX 8
/* The kinds a permission names. */
#define FN_PERM_KV "kv"
#define FN_PERM_INVOKE "invoke"
#define FN_PERM_TOPIC "topic"
#define FN_PERM_VOLUME "volume"

/* True when f's permissions grant KIND:name (a permission's NAME may hold
 * '*', matching any run of characters). */
bool fn_permits(const fn_t *f, const char *kind, const char *name);

/* True when name is a valid name of a KV store or volume: the same shape
 * as a function's, [A-Za-z0-9_-]{1,64}. */
bool registry_valid_state_name(const char *name);
void fn_list_free(fn_t *list, size_t count);

/* "durable" (registry/durable_config.c): {"execution_timeout_s",
 * "retention_days"} (either may be left out for its default), true for
 * the defaults, or null to turn it off. */
int fn_durable_parse(const json_t *v, fn_durable_t *out, mf_error_t *err);
/* The settings' JSON, null when off; a new reference. A function's JSON
 * shows it only when on. */
json_t *fn_durable_json(const fn_durable_t *d);
/* From a stored config (left as it is when absent). */
void fn_durable_read(const json_t *cfg, fn_durable_t *out);

/* "tenancy" ("per_tenant" or null) and "max_instances_per_tenant" (1–1000
 * or null) of a put's body (registry/tenancy_config.c), applied to *t,
 * which holds the current settings (or the defaults when create): the
 * mode may only be set when the function is created. */
int fn_tenancy_apply(const json_t *body, bool create, fn_tenancy_t *t, mf_error_t *err);
/* Adds the settings to a function's JSON (or its stored config): only on
 * a function with the mode. */
void fn_tenancy_to_json(const fn_tenancy_t *t, json_t *out);
/* From a stored config (off when absent). */
void fn_tenancy_read(const json_t *cfg, fn_tenancy_t *out);

/* 0 when s is a valid tenant id as Lambda takes them (1 to 256 of
 * [a-zA-Z0-9._:/=+-@ ]), else -EINVAL with a message that starts with
 * field. */
int fn_tenant_id_check(const char *field, const char *s, mf_error_t *err);
/* Whether a call of function, whose mode t is, may carry tenant_id (NULL or "": none): one is
 * required by a function with the mode, and refused by one without, as
 * Lambda does (-EINVAL; the message starts with field, where the tenant
 * id came from). */
int fn_tenant_id_for(const char *function, const fn_tenancy_t *t, const char *field,
                     const char *tenant_id, mf_error_t *err);

#endif
