/* /v1/topics: topics, their subscriptions, and publishing (docs/triggers.md).
 * Publishing is also the in-function door's, /mayfly/v1/topics/NAME/publish
 * with the permission topic:NAME. Changes and publishes are answered once
 * the queue's writer has them on disk. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/xalloc.h"
#include "trigger/topics.h"

/* A subscription body holds a function name and a filter policy (SNS
 * allows 256 KiB of policy). */
#define SUBSCRIBE_BODY_MAX (300u << 10)
/* A publish body holds a message of up to 256 KiB as JSON text: room for
 * one written wholly in \u escapes. */
#define PUBLISH_BODY_MAX (1600u << 10)

static bool valid_topic(http_request_t *req)
{
    if (topics_valid_name(req->params[0]))
        return true;
    http_respond_error(req, 400, "bad_request", "topic: a name must match [A-Za-z0-9_-]{1,64}");
    return false;
}

/* The body as a JSON object whose members are all among allowed; NULL
 * when the request was answered. */
static json_t *body_object(http_request_t *req, const char *const *allowed)
{
    json_error_t jerr;
    json_t *doc = json_loadb(req->body.data, req->body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        http_respond_error(req, 400, "bad_request", "the body is not JSON: %s", jerr.text);
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        http_respond_error(req, 400, "bad_request", "the body must be a JSON object");
        return NULL;
    }
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v)
    {
        bool ok = false;
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = !strcmp(key, allowed[i]);
        if (!ok) {
            char shown[48];
            http_respond_error(req, 400, "bad_request", "unknown field `%s`",
                               mf_error_show(key, 32, shown, sizeof shown));
            json_decref(doc);
            return NULL;
        }
    }
    return doc;
}

static json_t *subscription_json(const topic_subscription_t *s)
{
    char created[40];
    clock_format_iso8601(s->created_ms, created, sizeof created);
    json_t *filter = s->filter ? json_loads(s->filter, 0, NULL) : NULL;
    return json_pack("{ss ss so ss so}", "id", s->id, "function", tenant_local(s->function),
                     "filter", filter ? filter : json_null(), "created", created, "tenant_id",
                     s->tenant_id[0] ? json_string(s->tenant_id) : json_null());
}

static json_t *topic_json(api_ctx_t *ctx, const topic_view_t *v, bool with_subs)
{
    char created[40], arn[160];
    clock_format_iso8601(v->created_ms, created, sizeof created);
    topics_arn(ctx->topics, v->name, arn, sizeof arn);
    char tenant[TENANT_MAX + 1];
    tenant_of(v->name, tenant);
    json_t *out = json_pack("{ss ss ss ss sI}", "name", tenant_local(v->name), "tenant", tenant,
                            "arn", arn, "created", created, "subscription_count",
                            (json_int_t)v->nsubs);
    if (with_subs) {
        json_t *subs = json_array();
        for (size_t i = 0; i < v->nsubs; i++)
            json_array_append_new(subs, subscription_json(&v->subs[i]));
        json_object_set_new(out, "subscriptions", subs);
    }
    return out;
}

/* A request waiting for its change to be written. */
typedef struct wait {
    http_request_t *req;
    api_ctx_t *ctx;
    char topic[TENANT_QNAME_MAX + 1];
    char id[ID_UUID_LEN + 1];
} wait_t;

static wait_t *wait_new(http_request_t *req, api_ctx_t *ctx)
{
    wait_t *w = xcalloc(1, sizeof *w);
    w->req = req;
    w->ctx = ctx;
    snprintf(w->topic, sizeof w->topic, "%s", req->params[0]);
    return w;
}

/* ---- topics --------------------------------------------------------------- */

static void on_put(void *ud, int r, bool created, const mf_error_t *err)
{
    wait_t *w = ud;
    topic_view_t v;
    mf_error_t e = MF_ERROR_INIT;
    if (r < 0) {
        api_respond_failure(w->req, r, err);
    } else if ((r = topics_get(w->ctx->topics, w->topic, &v, &e)) < 0) {
        /* Deleted again before this answer. */
        api_respond_failure(w->req, r, &e);
    } else {
        cleanup_json json_t *out = topic_json(w->ctx, &v, false);
        http_respond_json(w->req, created ? 201 : 200, out);
    }
    free(w);
}

static void handle_put(http_request_t *req, api_ctx_t *ctx)
{
    if (!valid_topic(req))
        return;
    if (req->body.len) {
        static const char *const none[] = {NULL};
        json_t *doc = body_object(req, none);
        if (!doc)
            return;
        json_decref(doc);
    }
    wait_t *w = wait_new(req, ctx);
    mf_error_t err = MF_ERROR_INIT;
    int r = topics_create(ctx->topics, req->params[0], on_put, w, &err);
    if (r < 0) {
        free(w);
        api_respond_failure(req, r, &err);
    }
}

static void list_one(const topic_view_t *v, void *ud)
{
    void **pair = ud;
    if (api__sees(pair[2], v->name))
        json_array_append_new(pair[1], topic_json(pair[0], v, false));
}

static void handle_list(http_request_t *req, api_ctx_t *ctx)
{
    json_t *arr = json_array();
    api_who_t who;
    api__who(req, ctx, &who);
    void *pair[3] = {ctx, arr, &who};
    topics_list(ctx->topics, list_one, pair);
    cleanup_json json_t *out = json_pack("{so}", "topics", arr);
    http_respond_json(req, 200, out);
}

/* The topic the path names into *v; false when it has answered (400 for
 * a bad name, 404 for none). */
static bool path_topic(http_request_t *req, api_ctx_t *ctx, topic_view_t *v)
{
    if (!valid_topic(req))
        return false;
    mf_error_t err = MF_ERROR_INIT;
    int r = topics_get(ctx->topics, req->params[0], v, &err);
    if (r < 0)
        api_respond_failure(req, r, &err);
    return r == 0;
}

static void handle_get(http_request_t *req, api_ctx_t *ctx)
{
    topic_view_t v;
    if (!path_topic(req, ctx, &v))
        return;
    cleanup_json json_t *out = topic_json(ctx, &v, true);
    http_respond_json(req, 200, out);
}

static void on_deleted(void *ud, int r, bool created, const mf_error_t *err)
{
    wait_t *w = ud;
    if (r < 0)
        api_respond_failure(w->req, r, err);
    else
        http_respond(w->req, 204, NULL, NULL, 0);
    free(w);
}

static void handle_delete(http_request_t *req, api_ctx_t *ctx)
{
    if (!valid_topic(req))
        return;
    wait_t *w = wait_new(req, ctx);
    mf_error_t err = MF_ERROR_INIT;
    int r = topics_delete(ctx->topics, req->params[0], on_deleted, w, &err);
    if (r < 0) {
        free(w);
        api_respond_failure(req, r, &err);
    }
}

/* ---- subscriptions ---------------------------------------------------------- */

static void on_subscribed(void *ud, int r, bool created, const mf_error_t *err)
{
    wait_t *w = ud;
    topic_view_t v;
    mf_error_t e = MF_ERROR_INIT;
    if (r < 0) {
        api_respond_failure(w->req, r, err);
        free(w);
        return;
    }
    if ((r = topics_get(w->ctx->topics, w->topic, &v, &e)) == 0) {
        for (size_t i = 0; i < v.nsubs; i++)
            if (!strcmp(v.subs[i].id, w->id)) {
                cleanup_json json_t *out = subscription_json(&v.subs[i]);
                char arn[240];
                topics_arn(w->ctx->topics, w->topic, arn, sizeof arn);
                size_t n = strlen(arn);
                snprintf(arn + n, sizeof arn - n, ":%s", w->id);
                json_object_set_new(out, "arn", json_string(arn));
                http_respond_json(w->req, created ? 201 : 200, out);
                free(w);
                return;
            }
        r = mf_error_plain(&e, ENOENT, "the subscription was removed again before this answer");
    }
    api_respond_failure(w->req, r, &e);
    free(w);
}

static void handle_subscribe(http_request_t *req, api_ctx_t *ctx)
{
    if (!valid_topic(req))
        return;
    static const char *const allowed[] = {"function", "filter", "tenant_id", NULL};
    cleanup_json json_t *doc = body_object(req, allowed);
    if (!doc)
        return;
    const char *function = json_string_value(json_object_get(doc, "function"));
    if (!function) {
        http_respond_error(req, 400, "bad_request", "function: the subscriber's name is needed");
        return;
    }
    wait_t *w = wait_new(req, ctx);
    mf_error_t err = MF_ERROR_INIT;
    json_t *tid = json_object_get(doc, "tenant_id");
    if (tid && !json_is_null(tid) && !json_is_string(tid)) {
        free(w);
        http_respond_error(req, 400, "bad_request", "tenant_id: must be a string or null");
        return;
    }
    int r = topics_subscribe(ctx->topics, req->params[0], function, json_object_get(doc, "filter"),
                             json_string_value(tid), w->id, on_subscribed, w, &err);
    if (r < 0) {
        free(w);
        api_respond_failure(req, r, &err);
    }
}

static void handle_subscriptions(http_request_t *req, api_ctx_t *ctx)
{
    topic_view_t v;
    if (!path_topic(req, ctx, &v))
        return;
    json_t *arr = json_array();
    for (size_t i = 0; i < v.nsubs; i++)
        json_array_append_new(arr, subscription_json(&v.subs[i]));
    cleanup_json json_t *out = json_pack("{so}", "subscriptions", arr);
    http_respond_json(req, 200, out);
}

static void handle_unsubscribe(http_request_t *req, api_ctx_t *ctx)
{
    if (!valid_topic(req))
        return;
    wait_t *w = wait_new(req, ctx);
    mf_error_t err = MF_ERROR_INIT;
    int r = topics_unsubscribe(ctx->topics, req->params[0], req->params[1], on_deleted, w, &err);
    if (r < 0) {
        free(w);
        api_respond_failure(req, r, &err);
    }
}

/* ---- publishing -------------------------------------------------------------- */

static void on_published(void *ud, int r, const char *message_id,
                         const topic_delivery_t *deliveries, size_t n, const mf_error_t *err)
{
    http_request_t *req = ud;
    if (r < 0) {
        api_respond_failure(req, r, err);
        return;
    }
    /* Written out directly, not through a tree of JSON values: this
     * answers every publish. */
    buf_t b;
    buf_init(&b, 96 + n * 160);
    buf_adds(&b, "{\"message_id\":\"");
    buf_adds(&b, message_id);
    buf_adds(&b, "\",\"deliveries\":[");
    for (size_t i = 0; i < n; i++) {
        buf_adds(&b, i ? ",{\"subscription\":" : "{\"subscription\":");
        json_quote(&b, deliveries[i].subscription, strlen(deliveries[i].subscription));
        buf_adds(&b, ",\"function\":");
        const char *fn = tenant_local(deliveries[i].function);
        json_quote(&b, fn, strlen(fn));
        buf_adds(&b, ",\"request_id\":\"");
        buf_adds(&b, deliveries[i].request_id);
        buf_adds(&b, "\"}");
    }
    buf_adds(&b, "]}\n");
    http_respond_buf(req, 202, "application/json", &b);
}

static void handle_publish(http_request_t *req, api_ctx_t *ctx)
{
    if (!valid_topic(req))
        return;
    static const char *const allowed[] = {"message", "subject", "attributes", NULL};
    cleanup_json json_t *doc = body_object(req, allowed);
    if (!doc)
        return;
    const json_t *message = json_object_get(doc, "message");
    const json_t *subject = json_object_get(doc, "subject");
    if (!json_is_string(message)) {
        http_respond_error(req, 400, "bad_request",
                           "message: a string is needed (serialise JSON into it)");
        return;
    }
    if (subject && !json_is_null(subject) && !json_is_string(subject)) {
        http_respond_error(req, 400, "bad_request", "subject: must be a string");
        return;
    }
    api_call_origin_t from;
    if (!api__call_origin(req, &from))
        return;
    topic_message_t m = {.message = json_string_value(message),
                         .message_len = json_string_length(message),
                         .subject = json_string_value(subject),
                         .attributes = json_object_get(doc, "attributes"),
                         .short_attributes = true,
                         .traceparent = from.traceparent,
                         .caller_request_id = from.caller_request_id,
                         .call_depth = from.call_depth};
    mf_error_t err = MF_ERROR_INIT;
    /* The 202 goes out once the message and its deliveries are on disk. */
    int r = topics_publish(ctx->topics, req->params[0], &m, on_published, req, &err);
    if (r < 0)
        api_respond_failure(req, r, &err);
}

void api__topics_register(http_router_t *router, api_ctx_t *ctx)
{
    if (!ctx->topics)
        return;
    api__route(router, ctx, HTTP_GET, "/v1/topics", handle_list, 0, false);
    api__route(router, ctx, HTTP_PUT, "/v1/topics/{name}", handle_put, 4096, false);
    api__route(router, ctx, HTTP_GET, "/v1/topics/{name}", handle_get, 0, false);
    api__route(router, ctx, HTTP_DELETE, "/v1/topics/{name}", handle_delete, 0, false);
    api__route(router, ctx, HTTP_POST, "/v1/topics/{name}/subscriptions", handle_subscribe,
               SUBSCRIBE_BODY_MAX, false);
    api__route(router, ctx, HTTP_GET, "/v1/topics/{name}/subscriptions", handle_subscriptions, 0,
               false);
    api__route(router, ctx, HTTP_DELETE, "/v1/topics/{name}/subscriptions/{id}", handle_unsubscribe,
               0, false);
    api__route_both(router, ctx, HTTP_POST, "/v1/topics/{name}/publish", handle_publish,
                    PUBLISH_BODY_MAX, FN_PERM_TOPIC, 0);
}
