/* The AWS Lambda control-plane API, so that awscli, boto3 and the AWS SDKs
 * work against mayfly with --endpoint-url: Lambda's paths, JSON shapes,
 * status codes and error types, on the same registry, pools, queue and
 * records as /v1. Requests carry an AWS Signature Version 4 (auth/sigv4.h)
 * from one of the server's access keys; without keys (development mode)
 * any signature is accepted.
 *
 * docs/lambda-compat.md lists what is supported, field by field. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "auth/sigv4.h"
#include "core/clock.h"
#include "core/codec.h"
#include "core/eventstream.h"
#include "core/id.h"
#include "core/json.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "exec/exec.h"
#include "invoke/async.h"
#include "obs/logs.h"

#define LIST_MAX 50
/* Lambda's bounds on an event: 6 MiB invoked synchronously. */
#define SYNC_EVENT_MAX (6u << 20)
/* X-Amz-Log-Result carries the last 4 KB of the call's log. */
#define TAIL_BYTES 4096

/* ---- errors in Lambda's shape ---------------------------------------------- */

/* Answers with Lambda's error: the type in x-amzn-ErrorType (which the SDKs
 * read first) and in the body with the message. */
static void lambda_error(http_request_t *req, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void lambda_error(http_request_t *req, int status, const char *type, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tenant_strip(msg);
    http_header_add(req, "x-amzn-ErrorType", "%s", type);
    cleanup_json json_t *body = json_pack("{ss ss ss}", "Type", status >= 500 ? "Service" : "User",
                                          "message", msg, "__type", type);
    http_respond_json(req, status, body);
}

static void lambda_failure(http_request_t *req, int r, const mf_error_t *err)
{
    const char *msg = err && err->msg[0] ? err->msg : "unknown error";
    switch (r) {
    case -ENOENT:
        lambda_error(req, 404, "ResourceNotFoundException", "%s", msg);
        return;
    case -EINVAL:
        lambda_error(req, 400, "InvalidParameterValueException", "%s", msg);
        return;
    case -EEXIST:
    case -EBUSY:
    case -ESTALE: /* another server changed it meanwhile, again and again */
        lambda_error(req, 409, "ResourceConflictException", "%s", msg);
        return;
    case -EFBIG:
        lambda_error(req, 413, "RequestEntityTooLargeException", "%s", msg);
        return;
    case -EDQUOT: { /* a spent budget (meter/budget.h): Lambda's throttle, with why */
        http_header_add(req, "x-amzn-ErrorType", "TooManyRequestsException");
        cleanup_json json_t *body =
            json_pack("{ss ss ss ss}", "Reason", "BudgetExceeded", "Type", "User", "message", msg,
                      "__type", "TooManyRequestsException");
        http_respond_json(req, 429, body);
        return;
    }
    case -ESHUTDOWN:
    case -ECONNRESET: /* the store is out of reach (store/health.h) */
    case -ENOTCONN:
        lambda_error(req, 503, "ServiceException", "%s", msg);
        return;
    default:
        log_error("lambda", "%s %s: %s", http_method_str(req->method), req->path, msg);
        lambda_error(req, 500, "ServiceException", "%s", msg);
        return;
    }
}

/* The server's refusals (a body too large, a request too slow, an action
 * mayfly does not serve) in Lambda's shape, for the paths of the Lambda
 * API. */
static void lambda_refused(int status, const char *message, buf_t *headers, buf_t *body)
{
    const char *type = status == 413                   ? "RequestEntityTooLargeException"
                       : status == 408                 ? "RequestTimeoutException"
                       : status == 404 || status == 405 ? "UnknownOperationException"
                                                        : "InvalidParameterValueException";
    buf_addf(headers, "x-amzn-ErrorType: %s\r\n", type);
    buf_adds(body, "{\"Type\":\"User\",\"message\":");
    json_quote(body, message, strlen(message));
    buf_addf(body, ",\"__type\":\"%s\"}", type);
}

/* ---- names and shapes ------------------------------------------------------------ */

/* The function name in a path or a body: a name, a partial ARN
 * (ACCOUNT:function:NAME) or a full one, with an optional :$LATEST
 * qualifier, into out (the name within its tenant), and the ARN's account
 * into account ("" when it gives none). */
static bool lambda_name(const char *param, char out[TENANT_QNAME_MAX + 1], char account[13])
{
    const char *p = param;
    const char *fn = strstr(p, "function:");
    account[0] = '\0';
    if (fn) {
        /* The account is the part before ":function:". */
        const char *end = fn > p && fn[-1] == ':' ? fn - 1 : fn;
        const char *start = end;
        while (start > p && start[-1] != ':')
            start--;
        if (end - start == 12)
            snprintf(account, 13, "%.12s", start);
        p = fn + strlen("function:");
    }
    size_t n = strcspn(p, ":");
    if (p[n] && strcmp(p + n, ":$LATEST"))
        return false; /* versions and aliases are not kept */
    if (n == 0 || n > FN_NAME_MAX)
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return registry_valid_local(out);
}

static void lambda_arn(const api_ctx_t *ctx, const char *name, char *out, size_t len)
{
    tenant_arn("lambda", ctx->region, "function:", name, out, len);
}

/* 2026-11-21T08:18:40.173+0000, as Lambda writes LastModified. */
static void lambda_time(int64_t ms, char *out, size_t len)
{
    char iso[40];
    clock_format_iso8601(ms, iso, sizeof iso);
    size_t n = strlen(iso);
    if (n && iso[n - 1] == 'Z')
        iso[n - 1] = '\0';
    snprintf(out, len, "%s+0000", iso);
}

/* LoggingConfig as Lambda shows it: the levels with JSON only, and the
 * log group a function's logs go to (mayfly keeps one log per function). */
static json_t *lambda_logging_config(const fn_t *f)
{
    json_t *lc = json_pack("{ss}", "LogFormat", f->log_format);
    if (f->log_level[0])
        json_object_set_new(lc, "ApplicationLogLevel", json_string(f->log_level));
    if (f->system_log_level[0])
        json_object_set_new(lc, "SystemLogLevel", json_string(f->system_log_level));
    char group[16 + TENANT_QNAME_MAX];
    snprintf(group, sizeof group, "/aws/lambda/%s", tenant_local(f->name));
    json_object_set_new(lc, "LogGroup", json_string(group));
    return lc;
}

static json_t *lambda_config(const api_ctx_t *ctx, const fn_t *f)
{
    char arn[256], modified[48], role[64], tenant[TENANT_MAX + 1], account[13];
    lambda_arn(ctx, f->name, arn, sizeof arn);
    tenant_of(f->name, tenant);
    tenant_account(tenant, account);
    snprintf(role, sizeof role, "arn:aws:iam::%s:role/mayfly", account);
    lambda_time(f->updated_ms, modified, sizeof modified);
    /* CodeSha256 is the zip's digest in base64, where mayfly keeps hex. */
    uint8_t digest[32];
    buf_t sha = BUF_INIT;
    size_t n = strlen(f->code_sha256);
    for (size_t i = 0; i + 1 < n && i / 2 < sizeof digest; i += 2)
        digest[i / 2] = (uint8_t)(codec_hex_digit(f->code_sha256[i]) << 4 |
                                  codec_hex_digit(f->code_sha256[i + 1]));
    codec_base64_encode(&sha, digest, n / 2 < sizeof digest ? n / 2 : sizeof digest);
    /* A revision id changes with each version: the code's digest and the
     * version number, shaped like Lambda's UUIDs. */
    char revision[40];
    snprintf(revision, sizeof revision, "%.8s-%.4s-%.4s-%.4s-%012llx", f->code_sha256,
             f->code_sha256 + 8, f->code_sha256 + 12, f->code_sha256 + 16,
             (unsigned long long)f->version);
    json_t *c = json_pack(
        "{ss ss ss ss ss sI ss si si ss ss s{sO} ss ss ss ss s[s] ss}", "FunctionName", tenant_local(f->name),
        "FunctionArn", arn, "Runtime", f->runtime_name[0] ? f->runtime_name : f->runtime, "Role", role,
        "Handler", f->handler, "CodeSize", (json_int_t)(f->zip_size ? f->zip_size : f->code_size), "Description", "", "Timeout",
        f->timeout_s, "MemorySize", f->memory_mb, "LastModified", modified, "CodeSha256",
        sha.data ? sha.data : "", "Environment", "Variables", f->env ? f->env : json_object(),
        "Version", "$LATEST", "State", "Active", "LastUpdateStatus", "Successful", "PackageType",
        "Zip", "Architectures", "x86_64", "RevisionId", revision);
    buf_release(&sha);
    json_object_set_new(c, "LoggingConfig", lambda_logging_config(f));
    if (f->durable.enabled)
        json_object_set_new(c, "DurableConfig",
                            json_pack("{s:i, s:i}", "ExecutionTimeout",
                                      f->durable.execution_timeout_s, "RetentionPeriodInDays",
                                      f->durable.retention_days));
    if (f->tenancy.per_tenant)
        json_object_set_new(c, "TenancyConfig",
                            json_pack("{ss}", "TenantIsolationMode", "PER_TENANT"));
    return c;
}

/* The name from the path, qualified with the caller's tenant
 * (core/tenant.h), or an answer and false. An ARN of another account's
 * function names nothing the caller has: 404, as if absent. */
static bool path_name(http_request_t *req, const api_ctx_t *ctx, char name[TENANT_QNAME_MAX + 1])
{
    char local[TENANT_QNAME_MAX + 1], account[13], mine[13];
    if (!lambda_name(req->params[0], local, account)) {
        lambda_error(req, 400, "InvalidParameterValueException",
                     "1 validation error detected: Value '%s' at 'functionName' failed to "
                     "satisfy constraint: Member must satisfy regular expression pattern: "
                     "[A-Za-z0-9_-]{1,64}, a function ARN, or NAME:$LATEST",
                     req->params[0]);
        return false;
    }
    api_who_t who;
    if (!api__who(req, ctx, &who))
        snprintf(who.tenant, sizeof who.tenant, "%s", TENANT_DEFAULT);
    tenant_account(who.tenant, mine);
    tenant_qualify(who.tenant, local, name, TENANT_QNAME_MAX + 1);
    if (account[0] && strcmp(account, mine)) {
        lambda_error(req, 404, "ResourceNotFoundException", "Function not found: %s",
                     req->params[0]);
        return false;
    }
    return true;
}

/* Only $LATEST exists (no published versions or aliases): any other
 * ?Qualifier= names a version that is not there. */
static bool qualifier_ok(http_request_t *req, const api_ctx_t *ctx, const char *name)
{
    buf_t q = BUF_INIT;
    bool ok = !http_request_query(req, "Qualifier", &q) || !q.len || !strcmp(q.data, "$LATEST");
    if (!ok) {
        char arn[256];
        lambda_arn(ctx, name, arn, sizeof arn);
        lambda_error(req, 404, "ResourceNotFoundException",
                     "Function not found: %s:%s (mayfly keeps $LATEST only)", arn, q.data);
    }
    buf_release(&q);
    return ok;
}

/* ---- authentication ------------------------------------------------------- */

typedef void (*lambda_handler_fn)(http_request_t *req, api_ctx_t *ctx);

/* A Lambda-shaped refusal written at head time, before a handler exists. */
static int lambda_refusal(http_request_t *req, buf_t *body, int status, const char *type,
                          const char *message)
{
    http_header_add(req, "x-amzn-ErrorType", "%s", type);
    buf_adds(body, "{\"Type\":\"User\",\"message\":");
    json_quote(body, message, strlen(message));
    buf_addf(body, ",\"__type\":\"%s\"}\n", type);
    return status;
}

/* The wall-clock time the request's head arrived: the signature's date is
 * judged against it, both before and after the body (a long upload must
 * not make a fresh signature stale). */
static int64_t head_wall_ms(const http_request_t *req)
{
    uint64_t since = clock_mono_ns() - req->head_ns;
    return clock_wall_ms() - (int64_t)(since / 1000000);
}

/* Every Lambda route's head check: everything about the signature that
 * the head tells (its form, the key, the date, the scope, and the
 * signature itself when x-amz-content-sha256 names the payload's hash)
 * before any of the body is read. */
static int lambda_head_check(http_request_t *req, api_ctx_t *ctx, buf_t *refusal)
{
    /* Every answer carries a request id, as Lambda's do (an invocation's
     * own id replaces it). */
    if (req->method != HTTP_POST || !strstr(req->path, "invocations")) {
        char id[ID_UUID_LEN + 1];
        id_uuid4(id);
        http_header_add(req, "x-amzn-RequestId", "%s", id);
    }
    if (!ctx->keys || ctx->keys->count == 0)
        return 0;
    sigv4_result_t res = { 0 };
    mf_error_t err = MF_ERROR_INIT;
    if (sigv4_verify_http_head(req, "lambda", ctx->keys, head_wall_ms(req), &res, &err) == 0) {
        if (!res.path_normalized)
            return 0;
        return lambda_refusal(req, refusal, 403, "InvalidSignatureException",
                              "The request path has empty, '.' or '..' segments");
    }
    log_info("lambda", "%s %s refused: %s (key `%s`)", http_method_str(req->method), req->path,
             res.error_type, res.access_key_id);
    return lambda_refusal(req, refusal, res.http_status ? res.http_status : 403,
                          res.error_type ? res.error_type : "AccessDeniedException", err.msg);
}

/* Every Lambda handler passes here once the body is read: the signature
 * over it (the head check has passed everything else, and the signature
 * too when the request declared its payload's hash, whose match with the
 * body is checked now). */
static bool lambda_authorized(http_request_t *req, api_ctx_t *ctx)
{
    if (!ctx->keys || ctx->keys->count == 0)
        return true;
    sigv4_result_t res = { 0 };
    mf_error_t err = MF_ERROR_INIT;
    if (sigv4_verify_http(req, "lambda", ctx->keys, head_wall_ms(req), &res, &err) == 0 &&
        !res.path_normalized) {
        /* The key's role must allow what the request does: reads are
         * GETs, an invoke is Invoke's POST, the rest deploys. */
        const auth_key_t *key = auth_keys_find(ctx->keys, res.access_key_id);
        req->principal = key; /* who the handler's api__who finds */
        auth_action_t action = req->method == HTTP_GET || req->method == HTTP_HEAD
                                   ? AUTH_READ
                               : strstr(req->path, "/invocations") ||
                                       strstr(req->path, "/response-streaming-invocations")
                                   ? AUTH_INVOKE
                                   : AUTH_DEPLOY;
        if (key && auth_role_allows(key->role, action))
            return true;
        char what[200], msg[320] = "the access key is gone";
        snprintf(what, sizeof what, "%s %s", http_method_str(req->method), req->path);
        if (key)
            api__role_refusal(key, action, what, msg, sizeof msg);
        lambda_error(req, 403, "AccessDeniedException", "%s", msg);
        return false;
    }
    if (res.status == SIGV4_OK) {
        lambda_error(req, 403, "InvalidSignatureException",
                     "The request path has empty, '.' or '..' segments");
        return false;
    }
    log_info("lambda", "%s %s refused: %s (key `%s`)", http_method_str(req->method), req->path,
             res.error_type, res.access_key_id);
    lambda_error(req, res.http_status ? res.http_status : 403,
                 res.error_type ? res.error_type : "AccessDeniedException", "%s", err.msg);
    return false;
}

/* The first line of every handler. */
#define LAMBDA_AUTHORIZE(req, ctx)                                                                 \
    do {                                                                                           \
        if (!lambda_authorized(req, ctx))                                                          \
            return;                                                                                \
    } while (0)

/* ---- create, update ------------------------------------------------------- */

/* LoggingConfig → log_format, log_level and system_log_level; the registry
 * checks their values. LogGroup is checked as Lambda checks it and not
 * kept: a function's log is its own, and Get shows /aws/lambda/NAME. */
static int lambda_translate_logging(json_t *lc, json_t *out, mf_error_t *err)
{
    static const struct {
        const char *from, *to;
    } map[] = {
        { "LogFormat", "log_format" },
        { "ApplicationLogLevel", "log_level" },
        { "SystemLogLevel", "system_log_level" },
    };
    if (!lc || json_is_null(lc))
        return 0;
    if (!json_is_object(lc))
        return mf_error_plain(err, EINVAL, "LoggingConfig: must be an object");
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        json_t *v = json_object_get(lc, map[i].from);
        if (!v)
            continue;
        if (!json_is_string(v))
            return mf_error_plain(err, EINVAL, "LoggingConfig.%s: must be a string", map[i].from);
        json_object_set(out, map[i].to, v);
    }
    json_t *group = json_object_get(lc, "LogGroup");
    if (group) {
        const char *g = json_string_value(group);
        size_t n = g ? json_string_length(group) : 0;
        if (!g || n < 1 || n > 512 ||
            strspn(g, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-/#") != n)
            return mf_error_plain(err, EINVAL,
                                  "LoggingConfig.LogGroup: must be 1 to 512 of [.-_/#A-Za-z0-9]");
    }
    return 0;
}

/* Copies Lambda's fields of a function's configuration into /v1's shape.
 * Fields Lambda has and mayfly has not are accepted and ignored (Role,
 * Description, Publish, Architectures, ...); those that would change what
 * runs and cannot be honoured are refused. */
static int lambda_translate_fields(json_t *in, json_t *out, mf_error_t *err)
{
    static const struct {
        const char *from, *to;
        json_type type;
    } map[] = {
        { "Runtime", "runtime", JSON_STRING },
        { "Handler", "handler", JSON_STRING },
        { "MemorySize", "memory_mb", JSON_INTEGER },
        { "Timeout", "timeout_s", JSON_INTEGER },
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        json_t *v = json_object_get(in, map[i].from);
        if (!v)
            continue;
        if (json_typeof(v) != map[i].type)
            return mf_error_plain(err, EINVAL, "%s: must be a %s", map[i].from,
                                  map[i].type == JSON_STRING ? "string" : "number");
        json_object_set(out, map[i].to, v);
    }
    json_t *env = json_object_get(in, "Environment");
    if (env) {
        json_t *vars = json_is_object(env) ? json_object_get(env, "Variables") : NULL;
        if (!json_is_object(env) || (vars && !json_is_object(vars)))
            return mf_error_plain(err, EINVAL, "Environment: must be {\"Variables\": {...}}");
        json_object_set_new(out, "env", vars ? json_deep_copy(vars) : json_object());
    }
    int r = lambda_translate_logging(json_object_get(in, "LoggingConfig"), out, err);
    if (r < 0)
        return r;
    /* DurableConfig → "durable" (docs/durable.md); KMSKeyArn is not kept. */
    json_t *dc = json_object_get(in, "DurableConfig");
    if (dc && !json_is_null(dc)) {
        if (!json_is_object(dc))
            return mf_error_plain(err, EINVAL, "DurableConfig: must be an object");
        json_t *d = json_object();
        json_t *t = json_object_get(dc, "ExecutionTimeout");
        json_t *days = json_object_get(dc, "RetentionPeriodInDays");
        if (t)
            json_object_set(d, "execution_timeout_s", t);
        if (days)
            json_object_set(d, "retention_days", days);
        json_object_set_new(out, "durable", d);
    }
    /* TenancyConfig → "tenancy" (docs/metering.md); fixed at creation, so
     * an update that would change it is refused by the registry. */
    json_t *tc = json_object_get(in, "TenancyConfig");
    if (tc && !json_is_null(tc)) {
        json_t *mode = json_is_object(tc) ? json_object_get(tc, "TenantIsolationMode") : NULL;
        if (!json_is_string(mode) || strcmp(json_string_value(mode), "PER_TENANT"))
            return mf_error_plain(
                err, EINVAL, "TenancyConfig: must be {\"TenantIsolationMode\": \"PER_TENANT\"}");
        json_object_set_new(out, "tenancy", json_string(FN_TENANCY_PER_TENANT));
    }
    static const char *const refused[] = { "ImageUri", "Layers", "VpcConfig", "FileSystemConfigs",
                                           "KMSKeyArn", "SnapStart", NULL };
    for (int i = 0; refused[i]; i++) {
        json_t *v = json_object_get(in, refused[i]);
        if (v && !json_is_null(v) && !(json_is_array(v) && json_array_size(v) == 0) &&
            !(json_is_object(v) && json_object_size(v) == 0))
            return mf_error_plain(err, EINVAL, "%s: not supported by mayfly", refused[i]);
    }
    return 0;
}

/* The Code object (CreateFunction) or the body (UpdateFunctionCode). */
static int lambda_translate_code(json_t *code, json_t *out, bool required, mf_error_t *err)
{
    if (!code || !json_is_object(code)) {
        if (required)
            return mf_error_plain(err, EINVAL, "Code: must be {\"ZipFile\": base64}");
        return 0;
    }
    json_t *zip = json_object_get(code, "ZipFile");
    if (!zip) {
        if (json_object_get(code, "S3Bucket") || json_object_get(code, "ImageUri"))
            return mf_error_plain(err, EINVAL,
                                  "Code: only ZipFile is supported (no S3 or image packages)");
        return mf_error_plain(err, EINVAL, "Code.ZipFile: required");
    }
    if (!json_is_string(zip))
        return mf_error_plain(err, EINVAL, "Code.ZipFile: must be base64 text");
    json_object_set_new(out, "code", json_pack("{sO}", "zip_base64", zip));
    return 0;
}

static int lambda_parse(buf_t *body, json_t **out, mf_error_t *err)
{
    json_error_t jerr;
    *out = json_loadb(body->data ? body->data : "", body->len, 0, &jerr);
    if (!*out || !json_is_object(*out)) {
        json_decref(*out);
        return mf_error_plain(err, EINVAL, "the body must be a JSON object: %s", jerr.text);
    }
    return 0;
}

static int lambda_emit(buf_t *body, json_t *out)
{
    buf_reset(body);
    json_dump_buf(body, out);
    json_decref(out);
    return 0;
}

/* On the thread pool: CreateFunction's body → PUT /v1/functions/NAME's,
 * and the name it carries. */
static int translate_create(buf_t *body, char name[TENANT_QNAME_MAX + 1], mf_error_t *err)
{
    json_t *in;
    int r = lambda_parse(body, &in, err);
    if (r < 0)
        return r;
    json_t *fname = json_object_get(in, "FunctionName");
    char account[13];
    if (!json_is_string(fname) || !lambda_name(json_string_value(fname), name, account)) {
        json_decref(in);
        return mf_error_plain(err, EINVAL,
                              "FunctionName: required, [A-Za-z0-9_-]{1,64} or a function ARN");
    }
    json_t *out = json_object();
    if ((r = lambda_translate_fields(in, out, err)) == 0)
        r = lambda_translate_code(json_object_get(in, "Code"), out, true, err);
    json_decref(in);
    if (r < 0) {
        json_decref(out);
        return r;
    }
    return lambda_emit(body, out);
}

static int translate_configuration(buf_t *body, char name[TENANT_QNAME_MAX + 1], mf_error_t *err)
{
    json_t *in;
    int r = lambda_parse(body, &in, err);
    if (r < 0)
        return r;
    json_t *out = json_object();
    r = lambda_translate_fields(in, out, err);
    json_decref(in);
    if (r < 0) {
        json_decref(out);
        return r;
    }
    return lambda_emit(body, out);
}

static int translate_code(buf_t *body, char name[TENANT_QNAME_MAX + 1], mf_error_t *err)
{
    json_t *in;
    int r = lambda_parse(body, &in, err);
    if (r < 0)
        return r;
    json_t *out = json_object();
    r = lambda_translate_code(in, out, true, err);
    bool dry_run = json_is_true(json_object_get(in, "DryRun"));
    json_decref(in);
    if (r < 0) {
        json_decref(out);
        return r;
    }
    lambda_emit(body, out);
    return dry_run ? API_TRANSLATE_DRY_RUN : 0;
}

static void put_answered(http_request_t *req, api_ctx_t *ctx, int r, const fn_t *fn, bool created,
                         const mf_error_t *err)
{
    if (r < 0) {
        lambda_failure(req, r, err);
        return;
    }
    cleanup_json json_t *out = lambda_config(ctx, fn);
    http_respond_json(req, created ? 201 : 200, out);
}

static void handle_create(http_request_t *req, api_ctx_t *ctx)
{
    LAMBDA_AUTHORIZE(req, ctx);
    /* The name is in the body, which is read on the thread pool: up to
     * 67 MB of JSON would otherwise hold the loop. */
    api__function_put(req, ctx, "", &req->body, API_PUT_CREATE, translate_create, put_answered);
}

static void handle_update_code(http_request_t *req, api_ctx_t *ctx)
{
    LAMBDA_AUTHORIZE(req, ctx);
    char name[TENANT_QNAME_MAX + 1];
    if (path_name(req, ctx, name))
        api__function_put(req, ctx, name, &req->body, API_PUT_UPDATE, translate_code,
                          put_answered);
}

static void handle_update_configuration(http_request_t *req, api_ctx_t *ctx)
{
    LAMBDA_AUTHORIZE(req, ctx);
    char name[TENANT_QNAME_MAX + 1];
    if (path_name(req, ctx, name))
        api__function_put(req, ctx, name, &req->body, API_PUT_UPDATE, translate_configuration,
                          put_answered);
}

/* ---- read, list, delete ---------------------------------------------------------- */

static bool get_function(http_request_t *req, api_ctx_t *ctx, fn_t *fn)
{
    char name[TENANT_QNAME_MAX + 1];
    if (!path_name(req, ctx, name) || !qualifier_ok(req, ctx, name))
        return false;
    mf_error_t err = MF_ERROR_INIT;
    int r = registry_get(ctx->registry, name, fn, &err);
    if (r == -ENOENT) {
        char arn[256];
        lambda_arn(ctx, name, arn, sizeof arn);
        lambda_error(req, 404, "ResourceNotFoundException", "Function not found: %s", arn);
        return false;
    }
    if (r < 0) {
        lambda_failure(req, r, &err);
        return false;
    }
    return true;
}

static void handle_get(http_request_t *req, api_ctx_t *ctx)
{
    LAMBDA_AUTHORIZE(req, ctx);
    fn_t fn;
    if (!get_function(req, ctx, &fn))
        return;
    cleanup_json json_t *out =
        json_pack("{so s{ss ss} s{si}}", "Configuration", lambda_config(ctx, &fn), "Code",
                  "RepositoryType", "S3", "Location", "", "Concurrency",
                  "ReservedConcurrentExecutions", fn.max_concurrency);
    fn_clear(&fn);
    http_respond_json(req, 200, out);
}

static void handle_get_configuration(http_request_t *req, api_ctx_t *ctx)
{
    LAMBDA_AUTHORIZE(req, ctx);
    fn_t fn;
    if (!get_function(req, ctx, &fn))
        return;
    cleanup_json json_t *out = lambda_config(ctx, &fn);
    fn_clear(&fn);
    http_respond_json(req, 200, out);
}

static void handle_list(http_request_t *req, api_ctx_t *ctx)
{
    LAMBDA_AUTHORIZE(req, ctx);
    int max = LIST_MAX;
    buf_t v = BUF_INIT, marker = BUF_INIT;
    if (http_request_query(req, "MaxItems", &v)) {
        char *end;
        long n = strtol(v.data ? v.data : "", &end, 10);
        if (!v.len || *end || n < 1 || n > 10000) {
            buf_release(&v);
            lambda_error(req, 400, "InvalidParameterValueException",
                         "MaxItems: must be a number from 1 to 10000");
            return;
        }
        max = n < LIST_MAX ? (int)n : LIST_MAX;
    }
    buf_release(&v);
    http_request_query(req, "Marker", &marker);
    fn_t *list = NULL;
    size_t n = 0;
    mf_error_t err = MF_ERROR_INIT;
    int r = registry_list(ctx->registry, &list, &n, &err);
    if (r < 0) {
        buf_release(&marker);
        lambda_failure(req, r, &err);
        return;
    }
    /* The caller's tenant's functions only (an admin's too: the Lambda API
     * has one account a key). The marker is the last name of the page
     * before: the list is by name, and one tenant's names all begin alike. */
    api_who_t who;
    if (!api__who(req, ctx, &who))
        snprintf(who.tenant, sizeof who.tenant, "%s", TENANT_DEFAULT);
    size_t kept = 0;
    for (size_t j = 0; j < n; j++) {
        if (tenant_owns(who.tenant, list[j].name)) {
            fn_t t = list[kept];
            list[kept++] = list[j];
            list[j] = t;
        }
    }
    json_t *arr = json_array();
    const char *last = NULL;
    size_t i = 0;
    while (i < kept && marker.len && strcmp(tenant_local(list[i].name), marker.data) <= 0)
        i++;
    for (; i < kept && (int)json_array_size(arr) < max; i++) {
        json_array_append_new(arr, lambda_config(ctx, &list[i]));
        last = tenant_local(list[i].name);
    }
    cleanup_json json_t *out = json_pack("{so}", "Functions", arr);
    if (i < kept && last)
        json_object_set_new(out, "NextMarker", json_string(last));
    fn_list_free(list, n);
    buf_release(&marker);
    http_respond_json(req, 200, out);
}

static void delete_answered(http_request_t *req, api_ctx_t *ctx, const char *name, int r,
                            const mf_error_t *err)
{
    if (r == 0) {
        http_respond(req, 204, NULL, NULL, 0);
    } else if (r == -ENOENT) {
        char arn[256];
        lambda_arn(ctx, name, arn, sizeof arn);
        lambda_error(req, 404, "ResourceNotFoundException", "Function not found: %s", arn);
    } else {
        lambda_failure(req, r, err);
    }
}

static void handle_delete(http_request_t *req, api_ctx_t *ctx)
{
    LAMBDA_AUTHORIZE(req, ctx);
    char name[TENANT_QNAME_MAX + 1];
    if (!path_name(req, ctx, name) || !qualifier_ok(req, ctx, name))
        return;
    api__function_delete(req, ctx, name, delete_answered);
}

/* ---- invoke ------------------------------------------------------------------ */

/* X-Amz-Log-Result: the call's log (the platform's START, END and REPORT
 * lines around what the function printed), its last 4 KB, base64; read
 * back by a job of the records' writer, on its thread. */
typedef struct log_tail {
    char function[TENANT_QNAME_MAX + 1];
    char request_id[ID_UUID_LEN + 1];
    buf_t b64;
} log_tail_t;

static void log_tail_start(log_tail_t *t, const invocation_t *inv)
{
    snprintf(t->function, sizeof t->function, "%s", inv->function);
    snprintf(t->request_id, sizeof t->request_id, "%s", inv->request_id);
    buf_init(&t->b64, 0);
}

static int log_tail_read(void *db, log_tail_t *t, mf_error_t *err)
{
    store_log_t *lines = NULL;
    size_t n = 0;
    buf_t text = BUF_INIT;
    int r = store_logs_list(db, t->function, t->request_id, 0, 0, 10000, &lines, &n, err);
    if (r == 0) {
        for (size_t i = 0; i < n; i++) {
            buf_add(&text, lines[i].message, lines[i].len);
            buf_addch(&text, '\n');
        }
        store_log_list_free(lines, n);
    }
    size_t from = text.len > TAIL_BYTES ? text.len - TAIL_BYTES : 0;
    codec_base64_encode(&t->b64, text.data + from, text.len - from);
    buf_release(&text);
    return r;
}

typedef struct invoke_call {
    http_request_t *req;
    api_ctx_t *ctx;
    bool tail;
    invocation_t *inv;
    log_tail_t log;              /* with tail: read back once the call's lines are written */
} invoke_call_t;

static void invoke_answer(invoke_call_t *call)
{
    http_request_t *req = call->req;
    invocation_t *inv = call->inv;
    const char *type = inv->error_type ? inv->error_type : "";
    http_header_add(req, "x-amzn-RequestId", "%s", inv->request_id);
    if (inv->status == INV_THROTTLED) {
        http_header_add(req, "Retry-After", "1");
        http_header_add(req, "x-amzn-ErrorType", "TooManyRequestsException");
        cleanup_json json_t *body =
            json_pack("{ss ss ss ss}", "Reason", "ReservedFunctionConcurrentInvocationLimitExceeded",
                      "Type", "User", "message", "Rate Exceeded.", "__type",
                      "TooManyRequestsException");
        http_respond_json(req, 429, body);
    } else if (!strcmp(type, "ResourceNotFoundException")) {
        lambda_error(req, 404, type, "%s", inv->error_message);
    } else if (!strncmp(type, "Mayfly.", 7)) {
        lambda_error(req, !strcmp(type, "Mayfly.ShuttingDown") ? 503 : 500, "ServiceException",
                     "%s", inv->error_message);
    } else {
        http_header_add(req, "X-Amz-Executed-Version", "$LATEST");
        if (call->tail)
            http_header_add(req, "X-Amz-Log-Result", "%s",
                            call->log.b64.data ? call->log.b64.data : "");
        if (inv->status != INV_SUCCESS)
            http_header_add(req, "X-Amz-Function-Error", "Unhandled");
        http_respond_buf(req, 200, "application/json", &inv->result);
    }
    invocation_free(inv);
}

static int invoke_tail_read(void *db, void *arg, mf_error_t *err)
{
    return log_tail_read(db, &((invoke_call_t *)arg)->log, err);
}

static void answer_after_log(http_request_t *req, api_ctx_t *ctx, void *ud, int r,
                             const mf_error_t *err)
{
    invoke_call_t *call = ud;
    /* A tail that could not be read is left empty, as Lambda's can be. */
    if (r < 0)
        log_warn("api", "the log tail of %s: %s", call->log.request_id, err->msg);
    invoke_answer(call);
    buf_release(&call->log.b64);
    free(call);
}

static void on_invoked(invocation_t *inv, void *ud)
{
    invoke_call_t *call = ud;
    call->inv = inv;
    if (call->tail) {
        log_tail_start(&call->log, inv);
        api__read_records(call->req, call->ctx, invoke_tail_read, answer_after_log, call);
        return;
    }
    answer_after_log(call->req, call->ctx, call, 0, NULL);
}

static void on_event_accepted(void *ud, int r, const char *request_id, bool replay,
                              const mf_error_t *err)
{
    http_request_t *req = ud;
    if (r < 0) {
        lambda_failure(req, r, err);
        return;
    }
    http_header_add(req, "x-amzn-RequestId", "%s", request_id);
    http_respond(req, 202, NULL, NULL, 0);
}

/* X-Amz-Invocation-Type: DryRun checks the function is there (204) and
 * calls nothing; true when it has answered. */
static bool dry_run(http_request_t *req, api_ctx_t *ctx, const char *type)
{
    if (!type || strcasecmp(type, "DryRun"))
        return false;
    fn_t fn;
    if (get_function(req, ctx, &fn)) {
        fn_clear(&fn);
        http_respond(req, 204, NULL, NULL, 0);
    }
    return true;
}

static void handle_invoke(http_request_t *req, api_ctx_t *ctx)
{
    LAMBDA_AUTHORIZE(req, ctx);
    char name[TENANT_QNAME_MAX + 1];
    if (!path_name(req, ctx, name) || !qualifier_ok(req, ctx, name))
        return;
    const char *type = http_request_header(req, "X-Amz-Invocation-Type");
    const char *log = http_request_header(req, "X-Amz-Log-Type");
    mf_error_t err = MF_ERROR_INIT;
    char tp[56];
    const char *trace = api__trace_context(req, tp);
    /* A durable function's call starts an execution (api/durable.c). */
    if ((!type || !strcasecmp(type, "Event") || !strcasecmp(type, "RequestResponse")) &&
        api__durable_invoke(req, ctx, name, true, type && !strcasecmp(type, "Event")))
        return;
    if (type && !strcasecmp(type, "Event")) {
        int r = async_enqueue(ctx->async, name, &req->body,
                              &(async_enqueue_opts_t){.traceparent = trace,
                                                      .tenant_id = http_request_header(
                                                          req, "X-Amz-Tenant-Id"),
                                                      .key_id = api__key_id(req, ctx)},
                              on_event_accepted, req, &err);
        if (r < 0)
            lambda_failure(req, r, &err);
        return;
    }
    if (dry_run(req, ctx, type))
        return;
    if (type && strcasecmp(type, "RequestResponse")) {
        lambda_error(req, 400, "InvalidParameterValueException",
                     "X-Amz-Invocation-Type: must be RequestResponse, Event or DryRun, not `%s`",
                     type);
        return;
    }
    if (req->body.len > SYNC_EVENT_MAX) {
        lambda_error(req, 413, "RequestEntityTooLargeException",
                     "Request must be smaller than %u bytes for the InvokeFunction operation",
                     SYNC_EVENT_MAX);
        return;
    }
    invoke_call_t *call = xcalloc(1, sizeof *call);
    call->req = req;
    call->ctx = ctx;
    call->tail = log && !strcasecmp(log, "Tail");
    buf_t event = req->body;
    buf_init(&req->body, 0);
    int r = exec_invoke_opts(ctx->exec, name, &event,
                             &(exec_call_opts_t){.traceparent = trace,
                                                 .tenant_id = http_request_header(
                                                     req, "X-Amz-Tenant-Id"),
                                                 .key_id = api__key_id(req, ctx)},
                             on_invoked, call, &err);
    if (r < 0) {
        buf_release(&event);
        free(call);
        if (r == -ENOENT) {
            char arn[256];
            lambda_arn(ctx, name, arn, sizeof arn);
            lambda_error(req, 404, "ResourceNotFoundException", "Function not found: %s", arn);
        } else {
            lambda_failure(req, r, &err);
        }
    }
}

/* ---- invoke with response stream ---------------------------------------------------- */

/* InvokeWithResponseStream: the answer in AWS's event-stream framing, one
 * PayloadChunk event per piece of the function's stream as it comes, then
 * InvokeComplete (ErrorCode and ErrorDetails when the call failed,
 * LogResult with X-Amz-Log-Type: Tail). A function that answers in one
 * piece is one PayloadChunk. The stream goes no faster than the client
 * takes it (exec_stream_pause). */
#define STREAM_EVENT_MAX (256 * 1024)

typedef struct stream_invoke {
    http_request_t *req;
    api_ctx_t *ctx;
    bool tail;
    bool begun;
    bool paused;
    invocation_t *inv;           /* between the stream's head and done; then the ended call */
    log_tail_t log;              /* with tail: read back once the call's lines are written */
} stream_invoke_t;

static void stream_invoke_resume(stream_invoke_t *c)
{
    if (c->paused && c->inv) {
        c->paused = false;
        exec_stream_pause(c->inv, false);
    }
}

static void stream_invoke_drained(http_request_t *req)
{
    stream_invoke_resume(req->data);
}

static void stream_invoke_begin(stream_invoke_t *c, const invocation_t *inv)
{
    http_request_t *req = c->req;
    c->begun = true;
    http_header_add(req, "x-amzn-RequestId", "%s", inv->request_id);
    http_header_add(req, "X-Amz-Executed-Version", "$LATEST");
    /* A client that leaves lets the call run to its end, as any call. */
    req->abort_cb = stream_invoke_drained;
    http_stream_begin(req, 200, "application/vnd.amazon.eventstream");
}

static void stream_invoke_chunk(stream_invoke_t *c, const char *data, size_t len)
{
    buf_t ev = BUF_INIT;
    for (size_t off = 0; off < len; off += STREAM_EVENT_MAX) {
        size_t n = len - off < STREAM_EVENT_MAX ? len - off : STREAM_EVENT_MAX;
        eventstream_event(&ev, "PayloadChunk", "application/octet-stream", data + off, n);
    }
    http_stream_write(c->req, ev.data, ev.len);
    buf_release(&ev);
}

static void stream_invoke_head(invocation_t *inv, void *ud, const char *content_type)
{
    stream_invoke_t *c = ud;
    c->inv = inv;
    stream_invoke_begin(c, inv);
}

static void stream_invoke_data(invocation_t *inv, void *ud, const char *data, size_t len)
{
    stream_invoke_t *c = ud;
    stream_invoke_chunk(c, data, len);
    if (!c->paused && http_request_unsent(c->req) > HTTP_OUTPUT_HIGH_WATER) {
        c->paused = true;
        exec_stream_pause(inv, true);
        http_request_on_drain(c->req, stream_invoke_drained);
    }
}

static const exec_stream_sink_t stream_invoke_sink = { stream_invoke_head, stream_invoke_data };

static int stream_tail_read(void *db, void *arg, mf_error_t *err)
{
    return log_tail_read(db, &((stream_invoke_t *)arg)->log, err);
}

/* InvokeComplete, and the end of the answer. */
static void stream_invoke_complete(http_request_t *req, api_ctx_t *ctx, void *ud, int r,
                                   const mf_error_t *err)
{
    stream_invoke_t *c = ud;
    invocation_t *inv = c->inv;
    if (r < 0)
        log_warn("api", "the log tail of %s: %s", c->log.request_id, err->msg);
    json_t *done = json_object();
    if (inv->status != INV_SUCCESS) {
        json_object_set_new(done, "ErrorCode",
                            json_string(inv->error_type ? inv->error_type : "Unhandled"));
        json_object_set_new(done, "ErrorDetails",
                            json_string(inv->error_message ? inv->error_message : ""));
    }
    if (c->tail)
        json_object_set_new(done, "LogResult",
                            json_string(c->log.b64.data ? c->log.b64.data : ""));
    buf_t payload = BUF_INIT, ev = BUF_INIT;
    json_dump_buf(&payload, done);
    json_decref(done);
    eventstream_event(&ev, "InvokeComplete", "application/json", payload.data, payload.len);
    http_stream_write(req, ev.data, ev.len);
    buf_release(&payload);
    buf_release(&ev);
    req->abort_cb = NULL;
    req->drain_cb = NULL;
    req->data = NULL;
    http_stream_end(req);
    invocation_free(inv);
    buf_release(&c->log.b64);
    free(c);
}

static void stream_invoke_done(invocation_t *inv, void *ud)
{
    stream_invoke_t *c = ud;
    c->inv = inv;
    if (!c->begun) {
        const char *type = inv->error_type ? inv->error_type : "";
        if (inv->status == INV_THROTTLED || !strcmp(type, "ResourceNotFoundException") ||
            !strncmp(type, "Mayfly.", 7)) {
            /* Refused or failed by the platform: an error answer, as Invoke's. */
            invoke_call_t *call = xcalloc(1, sizeof *call);
            call->req = c->req;
            call->ctx = c->ctx;
            call->inv = inv;
            c->req->data = NULL;
            free(c);
            answer_after_log(call->req, call->ctx, call, 0, NULL);
            return;
        }
        /* Answered in one piece: one chunk with all of it (a function
         * error's document is in ErrorDetails instead). */
        stream_invoke_begin(c, inv);
        if (inv->status == INV_SUCCESS && inv->result.len)
            stream_invoke_chunk(c, inv->result.data, inv->result.len);
    }
    if (c->tail) {
        log_tail_start(&c->log, inv);
        api__read_records(c->req, c->ctx, stream_tail_read, stream_invoke_complete, c);
        return;
    }
    stream_invoke_complete(c->req, c->ctx, c, 0, NULL);
}

static void handle_invoke_stream(http_request_t *req, api_ctx_t *ctx)
{
    LAMBDA_AUTHORIZE(req, ctx);
    char name[TENANT_QNAME_MAX + 1];
    if (!path_name(req, ctx, name) || !qualifier_ok(req, ctx, name))
        return;
    const char *type = http_request_header(req, "X-Amz-Invocation-Type");
    const char *log = http_request_header(req, "X-Amz-Log-Type");
    if (dry_run(req, ctx, type))
        return;
    if (type && strcasecmp(type, "RequestResponse")) {
        lambda_error(req, 400, "InvalidParameterValueException",
                     "X-Amz-Invocation-Type: must be RequestResponse or DryRun for "
                     "InvokeWithResponseStream, not `%s`",
                     type);
        return;
    }
    if (log && strcasecmp(log, "Tail") && strcasecmp(log, "None")) {
        lambda_error(req, 400, "InvalidParameterValueException",
                     "X-Amz-Log-Type: must be None or Tail, not `%s`", log);
        return;
    }
    if (req->body.len > SYNC_EVENT_MAX) {
        lambda_error(req, 413, "RequestEntityTooLargeException",
                     "Request must be smaller than %u bytes for the InvokeWithResponseStream "
                     "operation",
                     SYNC_EVENT_MAX);
        return;
    }
    char tp[56];
    const char *trace = api__trace_context(req, tp);
    stream_invoke_t *c = xcalloc(1, sizeof *c);
    c->req = req;
    c->ctx = ctx;
    c->tail = log && !strcasecmp(log, "Tail");
    req->data = c;
    buf_t event = req->body;
    buf_init(&req->body, 0);
    mf_error_t err = MF_ERROR_INIT;
    int r = exec_invoke_opts(ctx->exec, name, &event,
                             &(exec_call_opts_t){.traceparent = trace,
                                                 .stream = &stream_invoke_sink,
                                                 .tenant_id = http_request_header(
                                                     req, "X-Amz-Tenant-Id"),
                                                 .key_id = api__key_id(req, ctx)},
                             stream_invoke_done, c, &err);
    if (r < 0) {
        buf_release(&event);
        req->data = NULL;
        free(c);
        if (r == -ENOENT) {
            char arn[256];
            lambda_arn(ctx, name, arn, sizeof arn);
            lambda_error(req, 404, "ResourceNotFoundException", "Function not found: %s", arn);
        } else {
            lambda_failure(req, r, &err);
        }
    }
}

/* ---- event invoke config -------------------------------------------------------- */

/* A destination ARN (a function's: mayfly calls functions only) → name. */
static int destination_name(json_t *dest, char *out, mf_error_t *err)
{
    const char *arn = json_is_string(dest) ? json_string_value(dest) : "";
    char account[13];
    if (!strstr(arn, ":function:") || !lambda_name(arn, out, account))
        return mf_error_plain(err, EINVAL,
                              "DestinationConfig: `%s` is not a function ARN; mayfly's "
                              "destinations are functions",
                              arn);
    return 0;
}

static int translate_event_config(buf_t *body, char name[TENANT_QNAME_MAX + 1], mf_error_t *err)
{
    json_t *in;
    int r = lambda_parse(body, &in, err);
    if (r < 0)
        return r;
    json_t *async = json_object();
    json_t *v;
    if ((v = json_object_get(in, "MaximumRetryAttempts")))
        json_object_set(async, "max_retries", v);
    if ((v = json_object_get(in, "MaximumEventAgeInSeconds")))
        json_object_set(async, "max_event_age_s", v);
    json_t *dc = json_object_get(in, "DestinationConfig");
    static const char *const kinds[][2] = { { "OnSuccess", "on_success" },
                                            { "OnFailure", "on_failure" } };
    for (int i = 0; i < 2 && r == 0; i++) {
        json_t *d = dc ? json_object_get(dc, kinds[i][0]) : NULL;
        json_t *arn = d ? json_object_get(d, "Destination") : NULL;
        if (!arn || json_is_null(arn)) {
            json_object_set_new(async, kinds[i][1], json_null());
            continue;
        }
        char dest[TENANT_QNAME_MAX + 1];
        if ((r = destination_name(arn, dest, err)) == 0)
            json_object_set_new(async, kinds[i][1], json_string(dest));
    }
    json_decref(in);
    if (r < 0) {
        json_decref(async);
        return r;
    }
    return lambda_emit(body, json_pack("{so}", "async", async));
}

static json_t *event_config_json(const api_ctx_t *ctx, const fn_t *f)
{
    char arn[256], dest[256];
    lambda_arn(ctx, f->name, arn, sizeof arn);
    json_t *dc = json_object();
    const char *names[2] = { f->async.on_success, f->async.on_failure };
    const char *kinds[2] = { "OnSuccess", "OnFailure" };
    for (int i = 0; i < 2; i++) {
        json_t *d = json_object();
        if (names[i][0]) {
            char q[TENANT_QNAME_MAX + 1];
            tenant_resolve(f->name, names[i], q, sizeof q);
            lambda_arn(ctx, q, dest, sizeof dest);
            json_object_set_new(d, "Destination", json_string(dest));
        }
        json_object_set_new(dc, kinds[i], d);
    }
    return json_pack("{sf ss si si so}", "LastModified", f->updated_ms / 1000.0, "FunctionArn",
                     arn, "MaximumRetryAttempts", f->async.max_retries,
                     "MaximumEventAgeInSeconds", f->async.max_event_age_s, "DestinationConfig",
                     dc);
}

static void event_config_answered(http_request_t *req, api_ctx_t *ctx, int r, const fn_t *fn,
                                  bool created, const mf_error_t *err)
{
    if (r < 0) {
        lambda_failure(req, r, err);
        return;
    }
    cleanup_json json_t *out = event_config_json(ctx, fn);
    http_respond_json(req, 200, out);
}

static void handle_put_event_config(http_request_t *req, api_ctx_t *ctx)
{
    LAMBDA_AUTHORIZE(req, ctx);
    char name[TENANT_QNAME_MAX + 1];
    if (path_name(req, ctx, name))
        api__function_put(req, ctx, name, &req->body, API_PUT_UPDATE, translate_event_config,
                          event_config_answered);
}

static void handle_get_event_config(http_request_t *req, api_ctx_t *ctx)
{
    LAMBDA_AUTHORIZE(req, ctx);
    fn_t fn;
    if (!get_function(req, ctx, &fn))
        return;
    cleanup_json json_t *out = event_config_json(ctx, &fn);
    fn_clear(&fn);
    http_respond_json(req, 200, out);
}

/* ---- reserved concurrency -------------------------------------------------------- */

/* Lambda's reserved concurrency is mayfly's max_concurrency: the most
 * instances the function runs at once. 0 pauses it (every call throttles,
 * queued events wait); removing the reservation restores the default. */
static int translate_concurrency(buf_t *body, char name[TENANT_QNAME_MAX + 1], mf_error_t *err)
{
    json_t *in;
    int r = lambda_parse(body, &in, err);
    if (r < 0)
        return r;
    json_t *v = json_object_get(in, "ReservedConcurrentExecutions");
    if (!json_is_integer(v)) {
        json_decref(in);
        return mf_error_plain(err, EINVAL, "ReservedConcurrentExecutions: must be an integer");
    }
    json_t *out = json_pack("{sO}", "max_concurrency", v);
    json_decref(in);
    return lambda_emit(body, out);
}

static void concurrency_answered(http_request_t *req, api_ctx_t *ctx, int r, const fn_t *fn,
                                 bool created, const mf_error_t *err)
{
    if (r < 0) {
        lambda_failure(req, r, err);
        return;
    }
    cleanup_json json_t *out =
        json_pack("{si}", "ReservedConcurrentExecutions", fn->max_concurrency);
    http_respond_json(req, 200, out);
}

static void handle_put_concurrency(http_request_t *req, api_ctx_t *ctx)
{
    LAMBDA_AUTHORIZE(req, ctx);
    char name[TENANT_QNAME_MAX + 1];
    if (path_name(req, ctx, name))
        api__function_put(req, ctx, name, &req->body, API_PUT_UPDATE, translate_concurrency,
                          concurrency_answered);
}

static void handle_get_concurrency(http_request_t *req, api_ctx_t *ctx)
{
    LAMBDA_AUTHORIZE(req, ctx);
    fn_t fn;
    if (!get_function(req, ctx, &fn))
        return;
    cleanup_json json_t *out = json_pack("{si}", "ReservedConcurrentExecutions", fn.max_concurrency);
    fn_clear(&fn);
    http_respond_json(req, 200, out);
}

static int translate_concurrency_delete(buf_t *body, char name[TENANT_QNAME_MAX + 1], mf_error_t *err)
{
    return lambda_emit(body, json_pack("{sn}", "max_concurrency"));
}

static void concurrency_deleted(http_request_t *req, api_ctx_t *ctx, int r, const fn_t *fn,
                                bool created, const mf_error_t *err)
{
    if (r < 0)
        lambda_failure(req, r, err);
    else
        http_respond(req, 204, NULL, NULL, 0);
}

static void handle_delete_concurrency(http_request_t *req, api_ctx_t *ctx)
{
    LAMBDA_AUTHORIZE(req, ctx);
    char name[TENANT_QNAME_MAX + 1];
    if (path_name(req, ctx, name))
        api__function_put(req, ctx, name, &req->body, API_PUT_UPDATE,
                          translate_concurrency_delete, concurrency_deleted);
}

/* ---- routes ---------------------------------------------------------------------- */

static const struct {
    enum http_method method;
    const char *pattern;
    lambda_handler_fn fn;
    /* BODY_EVENT reads a body up to twice Lambda's bound, so that a client
     * just over it gets Lambda's 413 rather than a connection closed in the
     * middle of its upload. */
    enum { BODY_SMALL, BODY_CODE, BODY_EVENT } body;
} lambda_routes[] = {
    { HTTP_POST, "/2015-03-31/functions", handle_create, BODY_CODE },
    { HTTP_POST, "/2015-03-31/functions/", handle_create, BODY_CODE },
    { HTTP_GET, "/2015-03-31/functions", handle_list, BODY_SMALL },
    { HTTP_GET, "/2015-03-31/functions/", handle_list, BODY_SMALL },
    { HTTP_GET, "/2015-03-31/functions/{name}", handle_get, BODY_SMALL },
    { HTTP_DELETE, "/2015-03-31/functions/{name}", handle_delete, BODY_SMALL },
    { HTTP_GET, "/2015-03-31/functions/{name}/configuration", handle_get_configuration, BODY_SMALL },
    { HTTP_PUT, "/2015-03-31/functions/{name}/configuration", handle_update_configuration, BODY_SMALL },
    { HTTP_PUT, "/2015-03-31/functions/{name}/code", handle_update_code, BODY_CODE },
    { HTTP_POST, "/2015-03-31/functions/{name}/invocations", handle_invoke, BODY_EVENT },
    { HTTP_PUT, "/2019-09-25/functions/{name}/event-invoke-config", handle_put_event_config, BODY_SMALL },
    { HTTP_GET, "/2019-09-25/functions/{name}/event-invoke-config", handle_get_event_config, BODY_SMALL },
    { HTTP_PUT, "/2017-10-31/functions/{name}/concurrency", handle_put_concurrency, BODY_SMALL },
    { HTTP_DELETE, "/2017-10-31/functions/{name}/concurrency", handle_delete_concurrency, BODY_SMALL },
    { HTTP_GET, "/2019-09-30/functions/{name}/concurrency", handle_get_concurrency, BODY_SMALL },
    /* Function URLs (api/lambda_urls.c). */
    { HTTP_POST, "/2021-10-31/functions/{name}/url", api__lambda_url_create, BODY_SMALL },
    { HTTP_GET, "/2021-10-31/functions/{name}/url", api__lambda_url_get, BODY_SMALL },
    { HTTP_PUT, "/2021-10-31/functions/{name}/url", api__lambda_url_update, BODY_SMALL },
    { HTTP_DELETE, "/2021-10-31/functions/{name}/url", api__lambda_url_delete, BODY_SMALL },
    { HTTP_GET, "/2021-10-31/functions/{name}/urls", api__lambda_url_list, BODY_SMALL },
    { HTTP_POST, "/2021-11-15/functions/{name}/response-streaming-invocations", handle_invoke_stream, BODY_EVENT },
};

void api__lambda_register(http_router_t *router, api_ctx_t *ctx)
{
    /* A create or code update carries the zip base64-encoded inside JSON,
     * as /v1's PUT does. */
    size_t large = (size_t)(ctx->code_limits.max_zip_bytes / 3 + 1) * 4 + 64 * 1024;
    for (size_t i = 0; i < sizeof lambda_routes / sizeof lambda_routes[0]; i++)
        api__route_checked(router, ctx, lambda_routes[i].method, lambda_routes[i].pattern,
                           lambda_routes[i].fn,
                           lambda_routes[i].body == BODY_CODE    ? large
                           : lambda_routes[i].body == BODY_EVENT ? 2 * (size_t)SYNC_EVENT_MAX
                                                                 : SYNC_EVENT_MAX,
                           lambda_head_check /* SigV4: the head here, the body in handlers */);
    http_router_refuse_with(router, "/2015-03-31/", lambda_refused);
    http_router_refuse_with(router, "/2017-10-31/", lambda_refused);
    http_router_refuse_with(router, "/2019-09-25/", lambda_refused);
    http_router_refuse_with(router, "/2019-09-30/", lambda_refused);
    http_router_refuse_with(router, "/2021-10-31/", lambda_refused);
    http_router_refuse_with(router, "/2021-11-15/", lambda_refused);
    http_router_refuse_with(router, "/2025-12-01/", lambda_refused);
}

/* ---- for the Lambda API's other files --------------------------------------- */

void api__lambda_error(http_request_t *req, int status, const char *type, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lambda_error(req, status, type, "%s", msg);
}

void api__lambda_failure(http_request_t *req, int r, const mf_error_t *err)
{
    lambda_failure(req, r, err);
}

int api__lambda_head_check(http_request_t *req, api_ctx_t *ctx, buf_t *refusal)
{
    return lambda_head_check(req, ctx, refusal);
}

bool api__lambda_authorized(http_request_t *req, api_ctx_t *ctx)
{
    return lambda_authorized(req, ctx);
}

bool api__lambda_path_name(http_request_t *req, const api_ctx_t *ctx,
                           char name[TENANT_QNAME_MAX + 1])
{
    return path_name(req, ctx, name);
}

void api__lambda_arn(const api_ctx_t *ctx, const char *name, char *out, size_t len)
{
    lambda_arn(ctx, name, out, len);
}

void api__lambda_time(int64_t ms, char *out, size_t len)
{
    lambda_time(ms, out, len);
}
