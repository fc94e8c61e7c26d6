/* Function URLs (docs/triggers.md): /v1/functions/{name}/url sets, shows
 * and removes a function's URL, and the URLs themselves are served here,
 * at /url/NAME/… and, with --url-domain D, at http://NAME.D/… by Host.
 *
 * A URL request walks: the router's claim (any method, any path below
 * the URL) → the head check (the URL exists; with auth "key", a bearer
 * token or a SigV4 signature, 403 otherwise; a body over 6 MiB is 413
 * before it is read) → a CORS preflight answered from the settings, or
 * the call: the request as payload format 2.0, the function's answer
 * mapped back as Lambda maps it, 502 for a function error or timeout,
 * 429 when throttled. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "auth/sigv4.h"
#include "core/clock.h"
#include "core/id.h"
#include "core/json.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "exec/exec.h"
#include "trigger/url.h"

#define URL_PREFIX "/url/"
#define URL_ROUTE_LABEL "/url/{name}/{path*}"
/* A PUT body is a few settings: CORS lists at their longest stay well
 * under this. */
#define URL_CONFIG_BODY_MAX (512 * 1024)

/* ---- addresses -------------------------------------------------------------- */

/* The length of host without its ":port" (an IPv6 literal keeps its
 * brackets). */
static size_t host_len(const char *host)
{
    if (host[0] == '[') {
        const char *end = strchr(host, ']');
        return end ? (size_t)(end - host) + 1 : strlen(host);
    }
    return strcspn(host, ":");
}

void api__url_address(const api_ctx_t *ctx, const char *name, buf_t *out)
{
    /* Another tenant's function than the default's: http://NAME.TENANT.D/
     * by host, /url/TENANT~NAME/ by path (core/tenant.h). */
    char tenant[TENANT_MAX + 1];
    tenant_of(name, tenant);
    if (ctx->url_domain && strcmp(tenant, TENANT_DEFAULT))
        buf_addf(out, "http://%s.%s.%s/", tenant_local(name), tenant, ctx->url_domain);
    else if (ctx->url_domain)
        buf_addf(out, "http://%s.%s/", name, ctx->url_domain);
    else
        buf_addf(out, "http://%s" URL_PREFIX "%s/",
                 ctx->listen_addr && ctx->listen_addr[0] ? ctx->listen_addr : "127.0.0.1:8700",
                 name);
}

/* ---- /v1/functions/{name}/url ---------------------------------------------- */

static json_t *url_json(const api_ctx_t *ctx, const url_config_t *c)
{
    json_t *o = url_config_settings_json(c);
    buf_t addr = BUF_INIT;
    api__url_address(ctx, c->function, &addr);
    char created[32], updated[32];
    clock_format_iso8601(c->created_ms, created, sizeof created);
    clock_format_iso8601(c->updated_ms, updated, sizeof updated);
    json_object_set_new(o, "function", json_string(tenant_local(c->function)));
    json_object_set_new(o, "url", json_string(addr.data));
    json_object_set_new(o, "created", json_string(created));
    json_object_set_new(o, "updated", json_string(updated));
    buf_release(&addr);
    return o;
}

static void log_public(const api_ctx_t *ctx, const char *name)
{
    buf_t addr = BUF_INIT;
    api__url_address(ctx, name, &addr);
    log_warn("urls", "the URL of function %s is public (auth none): anyone who reaches %s may "
             "call it", name, addr.data);
    buf_release(&addr);
}

static void put_done(void *ud, int r, bool created, const mf_error_t *err)
{
    api_pending_t *p = ud;
    http_request_t *req = p->req;
    const url_config_t *now = r == 0 ? url_table_get(p->ctx->urls, p->name) : NULL;
    if (r == -ENOENT || (r == 0 && !now)) { /* !now: the function went meanwhile */
        http_respond_error(req, 404, "not_found", "no function named %s", tenant_local(p->name));
    } else if (r < 0) {
        api_respond_failure(req, r, err);
    } else {
        if (now->auth == URL_AUTH_NONE)
            log_public(p->ctx, p->name);
        cleanup_json json_t *out = url_json(p->ctx, now);
        http_respond_json(req, created ? 201 : 200, out);
    }
    free(p);
}

static void handle_put(http_request_t *req, api_ctx_t *ctx)
{
    const char *name = req->params[0];
    if (!registry_valid_name(name)) {
        http_respond_error(req, 400, "bad_request", "name: must match [A-Za-z0-9_-]{1,%d}",
                           FN_NAME_MAX);
        return;
    }
    json_error_t jerr;
    cleanup_json json_t *body =
        json_loadb(req->body.data, req->body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!body) {
        http_respond_error(req, 400, "bad_request", "body: not JSON: %s (line %d, column %d)",
                           jerr.text, jerr.line, jerr.column);
        return;
    }
    url_config_t c = { 0 };
    mf_error_t err = MF_ERROR_INIT;
    int r = url_config_parse(body, &c, &err);
    if (r < 0) {
        api_respond_failure(req, r, &err);
        return;
    }
    snprintf(c.function, sizeof c.function, "%s", name);
    url_table_put(ctx->urls, &c, put_done, api__pending(req, ctx, name, false));
    url_config_clear(&c);
}

static void handle_get(http_request_t *req, api_ctx_t *ctx)
{
    const url_config_t *c = url_table_get(ctx->urls, req->params[0]);
    if (!c) {
        http_respond_error(req, 404, "not_found", "function %s has no URL",
                           tenant_local(req->params[0]));
        return;
    }
    cleanup_json json_t *out = url_json(ctx, c);
    http_respond_json(req, 200, out);
}

static void delete_done(void *ud, int r, bool created, const mf_error_t *err)
{
    (void)created;
    http_request_t *req = ud;
    if (r == -ENOENT)
        http_respond_error(req, 404, "not_found", "function %s has no URL",
                           tenant_local(req->params[0]));
    else if (r < 0)
        api_respond_failure(req, r, err);
    else
        http_respond(req, 204, NULL, NULL, 0);
}

static void handle_delete(http_request_t *req, api_ctx_t *ctx)
{
    url_table_delete(ctx->urls, req->params[0], delete_done, req);
}

/* ---- which requests are a URL's -------------------------------------------- */

/* Takes the requests of a URL: params[0] the function's name, params[1]
 * the path below the URL (from '/', as received). By Host first, so that
 * every path of http://NAME.D/ is the function's, /v1 included. */
static bool url_claim(http_request_t *req, void *ud)
{
    api_ctx_t *ctx = ud;
    if (ctx->url_domain) {
        const char *host = http_request_header(req, "Host");
        size_t hlen = host ? host_len(host) : 0;
        size_t dlen = host_len(ctx->url_domain);
        if (hlen > dlen + 1 && host[hlen - dlen - 1] == '.' &&
            !strncasecmp(host + hlen - dlen, ctx->url_domain, dlen)) {
            size_t nlen = hlen - dlen - 1;
            char name[TENANT_QNAME_MAX + 1], local[TENANT_QNAME_MAX + 1];
            /* NAME.D, or NAME.TENANT.D for another tenant's. */
            const char *dot = memchr(host, '.', nlen);
            bool ok = nlen <= TENANT_QNAME_MAX && !memchr(host, TENANT_SEP, nlen);
            if (ok && dot) {
                size_t tlen = nlen - (size_t)(dot - host) - 1;
                char tenant[TENANT_MAX + 1];
                ok = tenant_valid(dot + 1, tlen) && !memchr(dot + 1, '.', tlen);
                if (ok) {
                    snprintf(tenant, sizeof tenant, "%.*s", (int)tlen, dot + 1);
                    snprintf(local, sizeof local, "%.*s", (int)(dot - host), host);
                    ok = tenant_qualify(tenant, local, name, sizeof name);
                }
            } else if (ok) {
                memcpy(name, host, nlen);
                name[nlen] = '\0';
            }
            if (ok) {
                if (registry_valid_name(name)) {
                    req->params[req->nparams++] = xstrdup(name);
                    req->params[req->nparams++] = xstrdup(req->path);
                    return true;
                }
            }
        }
    }
    if (strncmp(req->path, URL_PREFIX, strlen(URL_PREFIX)))
        return false;
    const char *p = req->path + strlen(URL_PREFIX);
    size_t nlen = strcspn(p, "/");
    char name[TENANT_QNAME_MAX + 1];
    if (nlen == 0 || nlen > TENANT_QNAME_MAX)
        return false;
    memcpy(name, p, nlen);
    name[nlen] = '\0';
    if (!registry_valid_name(name))
        return false;
    req->params[req->nparams++] = xstrdup(name);
    req->params[req->nparams++] = xstrdup(p[nlen] ? p + nlen : "/");
    return true;
}

/* ---- authentication ------------------------------------------------------------ */

static int forbidden(buf_t *refusal, const char *why)
{
    buf_adds(refusal, "{\"Message\":\"Forbidden\",\"error\":{\"code\":\"forbidden\",\"message\":");
    json_quote(refusal, why, strlen(why));
    buf_adds(refusal, "}}\n");
    return 403;
}

static bool has_keys(const api_ctx_t *ctx)
{
    return ctx->keys && ctx->keys->count > 0;
}

static bool is_bearer(const char *authorization)
{
    return authorization && !strncasecmp(authorization, "Bearer ", 7);
}

/* A preflight mayfly answers itself: it carries no credentials (browsers
 * never send them on one), so it is not asked for any. */
static bool answered_preflight(const http_request_t *req, const url_config_t *c)
{
    return c->cors.set &&
           url_cors_is_preflight(http_method_str(req->method), http_request_header(req, "Origin"),
                                 http_request_header(req, "Access-Control-Request-Method"));
}

static int64_t head_wall_ms(const http_request_t *req)
{
    uint64_t since = clock_mono_ns() - req->head_ns;
    return clock_wall_ms() - (int64_t)(since / 1000000);
}

/* The refusal of a URL that is not there (or is another tenant's). */
static int no_url(http_request_t *req, buf_t *refusal)
{
    buf_adds(refusal, "{\"error\":{\"code\":\"not_found\",\"message\":");
    char msg[160];
    snprintf(msg, sizeof msg, "function %s has no URL", tenant_local(req->params[0]));
    json_quote(refusal, msg, strlen(msg));
    buf_adds(refusal, "}}\n");
    return 404;
}

/* A key calling a URL whose auth is key must be allowed to invoke, and
 * be of the function's tenant (or an admin): another tenant's URL is one
 * its keys do not reach. */
static int invoker_check(const auth_key_t *key, http_request_t *req, buf_t *refusal)
{
    if (key && key->role != AUTH_ADMIN && !tenant_owns(key->tenant, req->params[0]))
        return no_url(req, refusal);
    if (key && auth_role_allows(key->role, AUTH_INVOKE))
        return 0;
    char msg[320] = "the access key is gone", what[160];
    snprintf(what, sizeof what, "%s /url/%s", http_method_str(req->method), req->params[0]);
    if (key)
        api__role_refusal(key, AUTH_INVOKE, what, msg, sizeof msg);
    return forbidden(refusal, msg);
}

/* Everything about the request the head tells: the URL exists, and the
 * caller's credentials (a SigV4 signature over the body waits for it). */
static int url_head_check(http_request_t *req, api_ctx_t *ctx, buf_t *refusal)
{
    const url_config_t *c = url_table_get(ctx->urls, req->params[0]);
    if (!c)
        return no_url(req, refusal);
    if (c->auth == URL_AUTH_NONE || !has_keys(ctx) || answered_preflight(req, c))
        return 0;
    const char *authorization = http_request_header(req, "Authorization");
    if (is_bearer(authorization)) {
        const auth_key_t *key = auth_bearer_key(ctx->keys, authorization);
        if (!key)
            return forbidden(refusal, "this URL's auth is key, and the bearer token is not one "
                                      "of the server's access keys");
        return invoker_check(key, req, refusal);
    }
    sigv4_result_t res = { 0 };
    mf_error_t err = MF_ERROR_INIT;
    if (sigv4_verify_http_head(req, "lambda", ctx->keys, head_wall_ms(req), &res, &err) == 0 &&
        !res.path_normalized)
        return invoker_check(auth_keys_find(ctx->keys, res.access_key_id), req, refusal);
    if (res.status == SIGV4_MISSING)
        return forbidden(refusal, "this URL's auth is key: send `Authorization: Bearer ID:SECRET` "
                                  "or sign the request with SigV4 (service lambda)");
    log_info("urls", "%s %s refused: %s (key `%s`)", http_method_str(req->method), req->path,
             res.error_type ? res.error_type : "bad path", res.access_key_id);
    return forbidden(refusal, res.status == SIGV4_OK
                                  ? "the request path has empty, '.' or '..' segments"
                                  : err.msg);
}

/* The rest of the check once the body is here: a SigV4 signature covers
 * the body's hash. Fills key_id with the caller's key; false once it has
 * answered 403. */
static bool url_authorized(http_request_t *req, api_ctx_t *ctx, char key_id[SIGV4_KEY_ID_MAX + 1])
{
    key_id[0] = '\0';
    const char *authorization = http_request_header(req, "Authorization");
    if (is_bearer(authorization)) {
        /* Checked at head time: only its key's id is wanted. */
        const char *token = authorization + 7;
        size_t n = strcspn(token, ":");
        snprintf(key_id, SIGV4_KEY_ID_MAX + 1, "%.*s", (int)n, token);
        return true;
    }
    sigv4_result_t res = { 0 };
    mf_error_t err = MF_ERROR_INIT;
    if (sigv4_verify_http(req, "lambda", ctx->keys, head_wall_ms(req), &res, &err) == 0 &&
        !res.path_normalized) {
        snprintf(key_id, SIGV4_KEY_ID_MAX + 1, "%s", res.access_key_id);
        return true;
    }
    log_info("urls", "%s %s refused: %s (key `%s`)", http_method_str(req->method), req->path,
             res.error_type ? res.error_type : "bad path", res.access_key_id);
    cleanup_buf buf_t body = BUF_INIT;
    forbidden(&body, res.status == SIGV4_OK ? "the request path has empty, '.' or '..' segments"
                                            : err.msg);
    http_respond_buf(req, 403, "application/json", &body);
    return false;
}

/* ---- the call ------------------------------------------------------------------ */

/* The CORS headers of an actual answer, when the URL has CORS settings. */
static void add_cors(http_request_t *req, const url_config_t *c)
{
    if (c && c->cors.set)
        url_cors_actual(&c->cors, http_request_header(req, "Origin"), &req->resp_headers);
}

static void respond_message(http_request_t *req, int status, const char *message)
{
    buf_t body = BUF_INIT;
    buf_adds(&body, "{\"Message\":");
    json_quote(&body, message, strlen(message));
    buf_adds(&body, "}\n");
    http_respond_buf(req, status, "application/json", &body);
}

static void on_called(invocation_t *inv, void *ud)
{
    http_request_t *req = ud;
    api_ctx_t *ctx = req->data;
    const url_config_t *c = url_table_get(ctx->urls, inv->function);
    http_header_add(req, "X-Mayfly-Request-Id", "%s", inv->request_id);
    http_header_add(req, "x-amzn-RequestId", "%s", inv->request_id);
    const char *type = inv->error_type ? inv->error_type : "";
    if (inv->status == INV_SUCCESS) {
        url_response_t resp;
        mf_error_t err = MF_ERROR_INIT;
        if (url_response_map(&inv->result, c && c->cors.set, &resp, &err) < 0) {
            /* Lambda answers a response it cannot map with 502. */
            log_info("urls", "%s answered %s with a response that is not an HTTP answer: %s",
                     inv->function, inv->request_id, err.msg);
            add_cors(req, c);
            respond_message(req, 502, "Internal Server Error");
        } else {
            buf_add(&req->resp_headers, resp.headers.data, resp.headers.len);
            add_cors(req, c);
            http_respond_buf(req, resp.status, resp.content_type, &resp.body);
            url_response_release(&resp);
        }
    } else if (inv->status == INV_THROTTLED) {
        http_header_add(req, "Retry-After", "1");
        add_cors(req, c);
        respond_message(req, 429, "Rate Exceeded.");
    } else if (!strncmp(type, "Mayfly.", 7)) {
        bool down = !strcmp(type, "Mayfly.ShuttingDown");
        http_respond_error(req, down ? 503 : 500, down ? "unavailable" : "internal", "%s",
                           inv->error_message);
    } else if (!strcmp(type, "ResourceNotFoundException")) {
        api__respond_error(req, 404, "not_found", inv->error_message);
    } else {
        /* A function error, a timeout or out-of-memory: Lambda's 502, and
         * the record (X-Mayfly-Request-Id) says what happened. */
        http_header_add(req, "X-Mayfly-Function-Error", "Unhandled");
        add_cors(req, c);
        respond_message(req, 502, "Internal Server Error");
    }
    invocation_free(inv);
}

/* ---- a streamed answer ----------------------------------------------------------- */

/* A URL in RESPONSE_STREAM mode, while its call runs: the function's bytes
 * go to the client as they come (chunked). Lambda's HTTP-integration
 * prelude, when the function sends one, gives the status, headers and
 * cookies; any other stream is a 200 of its content type. A function that
 * answers in one piece is answered as in BUFFERED mode. */
typedef struct url_stream {
    http_request_t *req;
    api_ctx_t *ctx;
    invocation_t *inv;           /* between the stream's head and done */
    exec_prelude_t prelude;
    bool integration;            /* the stream begins with a prelude */
    bool begun;                  /* the answer's head went out */
    bool refused;                /* answered 502 (a bad prelude): the rest is dropped */
    bool paused;                 /* the function's stream waits for the client */
} url_stream_t;

static void url_stream_resume(http_request_t *req)
{
    url_stream_t *u = req->data;
    if (u && u->paused && u->inv) {
        u->paused = false;
        exec_stream_pause(u->inv, false);
    }
}

static void url_stream_begin(url_stream_t *u, int status, const char *content_type)
{
    http_request_t *req = u->req;
    http_header_add(req, "X-Mayfly-Request-Id", "%s", u->inv->request_id);
    http_header_add(req, "x-amzn-RequestId", "%s", u->inv->request_id);
    add_cors(req, url_table_get(u->ctx->urls, u->inv->function));
    req->abort_cb = url_stream_resume; /* the client left: nothing waits for it */
    http_stream_begin(req, status, content_type);
    u->begun = true;
}

/* True when the "Name: value\r\n" lines set Content-Type. */
static bool names_content_type(const char *lines)
{
    for (const char *l = lines; l && *l;) {
        if (!strncasecmp(l, "Content-Type:", 13))
            return true;
        const char *nl = strchr(l, '\n');
        l = nl ? nl + 1 : NULL;
    }
    return false;
}

static void url_stream_head(invocation_t *inv, void *ud, const char *content_type)
{
    url_stream_t *u = ud;
    u->inv = inv;
    u->integration = content_type && !strcmp(content_type, EXEC_PRELUDE_CONTENT_TYPE);
    if (!u->integration)
        url_stream_begin(u, 200, content_type ? content_type : "application/octet-stream");
}

static void url_stream_data(invocation_t *inv, void *ud, const char *data, size_t len)
{
    url_stream_t *u = ud;
    http_request_t *req = u->req;
    if (u->refused || http_request_gone(req))
        return;
    if (u->integration && !u->prelude.done) {
        mf_error_t err = MF_ERROR_INIT;
        long n = exec_prelude_feed(&u->prelude, data, len, &err);
        if (n < 0) {
            log_info("urls", "%s answered %s with a bad HTTP-integration prelude: %s",
                     inv->function, inv->request_id, err.msg);
            u->refused = true;
            http_header_add(req, "X-Mayfly-Request-Id", "%s", inv->request_id);
            add_cors(req, url_table_get(u->ctx->urls, inv->function));
            respond_message(req, 502, "Internal Server Error");
            return;
        }
        if (!u->prelude.done)
            return;
        buf_add(&req->resp_headers, u->prelude.header_lines.data, u->prelude.header_lines.len);
        url_stream_begin(u, u->prelude.status,
                         names_content_type(u->prelude.header_lines.data)
                             ? NULL
                             : "application/octet-stream");
        data += n;
        len -= (size_t)n;
    }
    if (!len)
        return;
    http_stream_write(req, data, len);
    if (!u->paused && http_request_unsent(req) > HTTP_OUTPUT_HIGH_WATER) {
        u->paused = true;
        exec_stream_pause(inv, true);
        http_request_on_drain(req, url_stream_resume);
    }
}

static const exec_stream_sink_t url_sink = {url_stream_head, url_stream_data};

static void url_stream_done(invocation_t *inv, void *ud)
{
    url_stream_t *u = ud;
    http_request_t *req = u->req;
    u->inv = NULL;
    exec_prelude_release(&u->prelude);
    bool begun = u->begun, refused = u->refused;
    api_ctx_t *ctx = u->ctx;
    free(u);
    if (refused) {
        invocation_free(inv);
        return;
    }
    if (!begun) {
        /* An answer in one piece (or a stream that ended before its
         * prelude did): mapped as in BUFFERED mode. */
        req->data = ctx;
        on_called(inv, req);
        return;
    }
    /* Headers went out long ago: a failure mid-stream ends the stream,
     * and its trailers say what happened, as /v1's do. */
    buf_t t = BUF_INIT;
    if (inv->status != INV_SUCCESS)
        buf_addf(&t, "X-Mayfly-Function-Error: Unhandled\r\n");
    req->abort_cb = NULL;
    req->drain_cb = NULL;
    req->data = NULL;
    http_stream_end_trailers(req, &t);
    buf_release(&t);
    invocation_free(inv);
}

/* ---- the call ---------------------------------------------------------------------- */

/* Calls the URL's function with the request as payload format 2.0: its
 * answer in one piece (on_called), or with stream as it comes. */
static void call_function(http_request_t *req, api_ctx_t *ctx, const url_config_t *c,
                          const char *key_id, bool stream)
{
    const char *name = req->params[0];
    const char *host = http_request_header(req, "Host");
    char domain[256], ip[64], request_id[ID_UUID_LEN + 1];
    snprintf(domain, sizeof domain, "%.*s", host ? (int)host_len(host) : 0, host ? host : "");
    http_request_peer(req, ip, sizeof ip);
    /* The call's own id, as on Lambda: the event's requestContext, the
     * function's context, the answer's X-Mayfly-Request-Id and the record
     * all say the same. */
    id_uuid7(request_id);
    char tenant[TENANT_MAX + 1], account[13];
    tenant_of(name, tenant);
    tenant_account(tenant, account);
    url_request_t r = { .method = http_method_str(req->method),
                        .raw_path = req->params[1],
                        .raw_query = req->query,
                        .headers = req->headers,
                        .nheaders = req->nheaders,
                        .body = req->body.data,
                        .body_len = req->body.len,
                        .source_ip = ip,
                        .domain_name = domain,
                        .domain_prefix = tenant_local(name),
                        .api_id = tenant_local(name),
                        .account_id = c->auth == URL_AUTH_NONE ? "anonymous" : account,
                        .access_key_id = key_id[0] ? key_id : NULL,
                        .request_id = request_id,
                        .time_ms = clock_wall_ms() };
    buf_t event = BUF_INIT;
    url_event_build(&event, &r);
    buf_release(&req->body); /* in the event now */

    char tp[56];
    /* Unlike Lambda's, a URL serves a function with tenant isolation: the
     * request names its tenant id as the Invoke API's callers do. */
    exec_call_opts_t opts = { .request_id = request_id,
                              .traceparent = api__trace_context(req, tp),
                              .trigger = "url",
                              .tenant_id = http_request_header(req, "X-Amz-Tenant-Id"),
                              .key_id = key_id[0] ? key_id : NULL };
    invocation_done_cb done = on_called;
    void *ud = req;
    req->data = ctx;
    if (stream) {
        url_stream_t *u = xcalloc(1, sizeof *u);
        u->req = req;
        u->ctx = ctx;
        exec_prelude_init(&u->prelude);
        opts.stream = &url_sink;
        done = url_stream_done;
        ud = u;
        req->data = u;
    }
    mf_error_t err = MF_ERROR_INIT;
    int rc = exec_invoke_opts(ctx->exec, name, &event, &opts, done, ud, &err);
    if (rc < 0) {
        buf_release(&event);
        if (stream) {
            exec_prelude_release(&((url_stream_t *)ud)->prelude);
            free(ud);
            req->data = NULL;
        }
        if (rc == -ENOENT)
            http_respond_error(req, 404, "not_found", "no function named %s", tenant_local(name));
        else
            api_respond_failure(req, rc, &err);
    }
}

static void url_serve(http_request_t *req, api_ctx_t *ctx)
{
    const url_config_t *c = url_table_get(ctx->urls, req->params[0]);
    if (!c) {
        /* Removed while the body arrived. */
        http_respond_error(req, 404, "not_found", "function %s has no URL",
                           tenant_local(req->params[0]));
        return;
    }
    if (answered_preflight(req, c)) {
        url_cors_preflight(&c->cors, http_request_header(req, "Origin"),
                           http_request_header(req, "Access-Control-Request-Method"),
                           &req->resp_headers);
        http_respond(req, 200, NULL, NULL, 0);
        return;
    }
    char key_id[SIGV4_KEY_ID_MAX + 1] = "";
    if (c->auth == URL_AUTH_KEY && has_keys(ctx) && !url_authorized(req, ctx, key_id))
        return;
    call_function(req, ctx, c, key_id, c->invoke_mode == URL_INVOKE_RESPONSE_STREAM);
}

void api__urls_register(http_router_t *router, api_ctx_t *ctx)
{
    if (!ctx->urls)
        return;
    api__route(router, ctx, HTTP_PUT, "/v1/functions/{name}/url", handle_put, URL_CONFIG_BODY_MAX,
               false);
    api__route(router, ctx, HTTP_GET, "/v1/functions/{name}/url", handle_get, 0, false);
    api__route(router, ctx, HTTP_DELETE, "/v1/functions/{name}/url", handle_delete, 0, false);
    api__route_checked(router, ctx, HTTP_GET, URL_ROUTE_LABEL, url_serve, URL_BODY_MAX,
                       url_head_check);
    /* The route just added is reached through the claim only: its pattern
     * never matches a path ("{path*}" is one segment), and it lends the
     * claim its handler, check and body limit. */
    const http_route_t *rt = &router->routes[router->nroutes - 1];
    http_router_set_claim(router, url_claim, ctx, rt->pattern, rt->handler, rt->head_check, rt->ud,
                          rt->max_body);
    /* Where they are served is known once the server listens: the names
     * say enough here. */
    const char *key;
    void *val;
    for (size_t i = 0; map_next(&ctx->urls->by_function, &i, &key, &val);)
        if (((url_config_t *)val)->auth == URL_AUTH_NONE)
            log_warn("urls", "the URL of function %s is public (auth none): anyone who reaches "
                     "this server may call it", key);
}
