/* A call's trace (docs/observability.md): its ids, the header its
 * function sees, and the spans exported when --otlp-endpoint is set. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/codec.h"
#include "exec/exec_internal.h"
#include "obs/otlp.h"

#define ATTR_S(k, v) {.key = (k), .type = OBS_ATTR_STRING, .s = (v)}
#define ATTR_I(k, v) {.key = (k), .type = OBS_ATTR_INT, .i = (v)}
#define ATTR_B(k, v) {.key = (k), .type = OBS_ATTR_BOOL, .b = (v)}

/* A trace id from a request id's hex digits (a UUID has 32): every
 * attempt at an async event is in the same trace. */
static void trace_from_request(const char *request_id, uint8_t trace_id[16])
{
    size_t k = 0;
    for (const char *p = request_id; *p && k < 32; p++) {
        int v = codec_hex_digit(*p);
        if (v < 0)
            continue;
        if (k % 2 == 0)
            trace_id[k / 2] = (uint8_t)(v << 4);
        else
            trace_id[k / 2] |= (uint8_t)v;
        k++;
    }
    if (k < 32)
        obs_trace_random(trace_id, 16);
}

void exec__trace_begin(invocation_t *inv, const char *traceparent)
{
    uint8_t flags;
    inv->trace_parent_set =
        traceparent && obs_traceparent_parse(traceparent, inv->trace_id, inv->trace_parent,
                                             &flags) == 0;
    if (!inv->trace_parent_set)
        trace_from_request(inv->request_id, inv->trace_id);
    obs_trace_random(inv->span_id, sizeof inv->span_id);
}

/* An async event's own span id: the same on every attempt and after a
 * restart, so the attempts are its children without it being stored. */
static void event_span_id(const char *request_id, uint8_t out[8])
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, over "event:" and the id */
    for (const char *p = "event:"; *p; p++)
        h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    for (const char *p = request_id; *p; p++)
        h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    if (!h)
        h = 1;
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(h >> (56 - 8 * i));
}

/* The event's trace id, and its parent when the caller sent one. */
static bool event_trace(const char *request_id, const char *caller, uint8_t trace_id[16],
                        uint8_t parent[8])
{
    if (caller && *caller && obs_traceparent_parse(caller, trace_id, parent, NULL) == 0)
        return true;
    trace_from_request(request_id, trace_id);
    return false;
}

void exec_event_traceparent(const char *request_id, const char *caller, char out[56])
{
    uint8_t trace[16], parent[8], span[8];
    event_trace(request_id, caller, trace, parent);
    event_span_id(request_id, span);
    obs_traceparent_format(trace, span, out, 56);
}

void exec__trace_header(const invocation_t *inv, bool sampled, char *out, size_t outlen)
{
    /* X-Ray's shape: Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=N. */
    char t[33], s[17];
    codec_hex(t, inv->trace_id, 16);
    codec_hex(s, inv->span_id, 8);
    snprintf(out, outlen, "Root=1-%.8s-%.24s;Parent=%s;Sampled=%d", t, t + 8, s, sampled ? 1 : 0);
}

void exec__traceparent(const invocation_t *inv, char *out, size_t outlen)
{
    obs_traceparent_format(inv->trace_id, inv->span_id, out, outlen);
}

/* ---- spans ------------------------------------------------------------- */

static void child(obs_otlp_t *o, const invocation_t *inv, const char *name, int kind,
                  int64_t start_ns, int64_t end_ns, const obs_attr_t *attrs, size_t n,
                  int status, const char *message)
{
    obs_span_t sp = {.name = name, .kind = kind, .start_ns = start_ns, .end_ns = end_ns,
                     .status = status, .status_message = message, .attrs = attrs, .n_attrs = n,
                     .has_parent = true};
    memcpy(sp.trace_id, inv->trace_id, 16);
    memcpy(sp.parent_id, inv->span_id, 8);
    obs_trace_random(sp.span_id, 8);
    obs_otlp_add(o, &sp);
}

/* One client span per outbound connection of the call's record. */
static void egress_spans(obs_otlp_t *o, const invocation_t *inv)
{
    json_t *list = inv->egress_json ? json_loads(inv->egress_json, 0, NULL) : NULL;
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        const char *start = json_string_value(json_object_get(e, "start"));
        int64_t start_ms;
        if (!start || clock_parse_rfc3339(start, &start_ms) < 0)
            continue;
        int64_t start_ns = start_ms * 1000000;
        int64_t end_ns = start_ns +
                         (int64_t)(json_number_value(json_object_get(e, "duration_ms")) * 1e6);
        const json_t *http = json_object_get(e, "http");
        const char *method = json_string_value(json_object_get(http, "method"));
        const char *path = json_string_value(json_object_get(http, "path"));
        const json_t *status = json_object_get(http, "status");
        const char *error = json_string_value(json_object_get(e, "error"));
        bool allowed = json_is_true(json_object_get(e, "allowed"));
        obs_attr_t a[] = {
            ATTR_S("server.address", json_string_value(json_object_get(e, "host"))),
            ATTR_I("server.port", json_integer_value(json_object_get(e, "port"))),
            ATTR_S("network.peer.address", json_string_value(json_object_get(e, "ip"))),
            ATTR_I("mayfly.egress.bytes_out", json_integer_value(json_object_get(e, "bytes_out"))),
            ATTR_I("mayfly.egress.bytes_in", json_integer_value(json_object_get(e, "bytes_in"))),
            ATTR_B("mayfly.egress.allowed", allowed),
            ATTR_S("http.request.method", method),
            ATTR_S("url.path", path),
            /* Left out (a NULL string) when no status was seen. */
            {.key = "http.response.status_code",
             .type = json_is_integer(status) ? OBS_ATTR_INT : OBS_ATTR_STRING,
             .i = json_integer_value(status)},
        };
        char name[300];
        if (method)
            snprintf(name, sizeof name, "%s %s", method, path ? path : "/");
        else
            snprintf(name, sizeof name, "connect %s",
                     json_string_value(json_object_get(e, "host")) ?: "?");
        child(o, inv, name, OBS_SPAN_CLIENT, start_ns, end_ns, a, sizeof a / sizeof a[0],
              error || !allowed ? OBS_STATUS_ERROR : OBS_STATUS_UNSET, error);
    }
    json_decref(list);
}

void exec__trace_export(exec_t *ex, const invocation_t *inv)
{
    obs_otlp_t *o = ex->cfg.otlp;
    if (!o)
        return;
    /* Wall times from the acceptance's, moved by the monotonic clock. */
    int64_t t0 = inv->start_wall_ms * 1000000;
    int64_t handed = t0 + (inv->delivered_ns > inv->enqueued_ns
                               ? (int64_t)(inv->delivered_ns - inv->enqueued_ns)
                               : 0);
    int64_t end = handed + (int64_t)(inv->duration_ms * 1e6);
    if (!inv->delivered_ns)
        end = t0 + (int64_t)(inv->duration_ms * 1e6);
    bool ok = inv->status == INV_SUCCESS;
    obs_attr_t a[] = {
        ATTR_S("faas.invocation_id", inv->request_id),
        ATTR_S("faas.name", inv->function),
        ATTR_I("faas.version", inv->version),
        ATTR_B("faas.coldstart", inv->cold_start),
        ATTR_S("faas.trigger", exec_trigger_faas(inv->trigger, inv->event_attempt)),
        ATTR_S("mayfly.trigger", inv->trigger),
        ATTR_I("faas.max_memory", (int64_t)inv->memory_mb << 20),
        ATTR_I("mayfly.attempt", inv->attempts),
        ATTR_S("mayfly.status", inv_status_name(inv->status)),
        ATTR_I("mayfly.billed_ms", (int64_t)inv->billed_ms),
        ATTR_S("error.type", inv->error_type),
        ATTR_S("mayfly.replay_of", inv->replay_of[0] ? inv->replay_of : NULL),
    };
    /* An async event's attempt is a child of the event's span
     * (exec_trace_event); a call is a server span of its own. */
    char name[TENANT_QNAME_MAX + 24];
    if (inv->event_attempt)
        snprintf(name, sizeof name, "%s attempt %d", inv->function, inv->attempts);
    else
        snprintf(name, sizeof name, "%s", inv->function);
    obs_span_t root = {.name = name,
                       .kind = inv->event_attempt ? OBS_SPAN_INTERNAL : OBS_SPAN_SERVER,
                       .start_ns = t0,
                       .end_ns = end, .status = ok ? OBS_STATUS_OK : OBS_STATUS_ERROR,
                       .status_message = ok ? NULL : inv->error_message, .attrs = a,
                       .n_attrs = sizeof a / sizeof a[0], .has_parent = inv->trace_parent_set};
    memcpy(root.trace_id, inv->trace_id, 16);
    memcpy(root.span_id, inv->span_id, 8);
    memcpy(root.parent_id, inv->trace_parent, 8);
    obs_otlp_add(o, &root);
    if (!inv->delivered_ns)
        return;
    if (handed > t0)
        child(o, inv, "queue", OBS_SPAN_INTERNAL, t0, handed, NULL, 0, OBS_STATUS_UNSET, NULL);
    if (inv->cold_start && inv->init_ms > 0) {
        int64_t init0 = handed - (int64_t)(inv->init_ms * 1e6);
        child(o, inv, "cold start: sandbox", OBS_SPAN_INTERNAL, init0,
              init0 + (int64_t)(inv->sandbox_ms * 1e6), NULL, 0, OBS_STATUS_UNSET, NULL);
        child(o, inv, "cold start: runtime init", OBS_SPAN_INTERNAL,
              init0 + (int64_t)(inv->sandbox_ms * 1e6), handed, NULL, 0, OBS_STATUS_UNSET,
              NULL);
    }
    child(o, inv, "function", OBS_SPAN_INTERNAL, handed, end, NULL, 0,
          ok ? OBS_STATUS_UNSET : OBS_STATUS_ERROR, NULL);
    egress_spans(o, inv);
}

void exec_trace_event(exec_t *ex, const exec_event_trace_t *ev)
{
    obs_otlp_t *o = ex->cfg.otlp;
    if (!o)
        return;
    bool ok = !strcmp(ev->outcome, "Success");
    obs_attr_t a[] = {
        ATTR_S("faas.invocation_id", ev->request_id),
        ATTR_S("faas.name", ev->function),
        ATTR_S("faas.trigger", exec_trigger_faas(ev->trigger ? ev->trigger : "", true)),
        ATTR_S("mayfly.trigger", ev->trigger && *ev->trigger ? ev->trigger : "invoke"),
        ATTR_I("mayfly.attempts", ev->attempts),
        ATTR_S("mayfly.outcome", ev->outcome),
        ATTR_S("error.type", ok ? NULL : ev->error_type),
        ATTR_S("mayfly.replay_of", ev->replay_of && *ev->replay_of ? ev->replay_of : NULL),
    };
    char name[TENANT_QNAME_MAX + 8];
    snprintf(name, sizeof name, "%s event", ev->function);
    /* The outcome came within its whole millisecond: the span ends with
     * that millisecond, so never before the last attempt (timed to the
     * nanosecond) it waited for. */
    obs_span_t sp = {.name = name, .kind = OBS_SPAN_CONSUMER,
                     .start_ns = ev->accepted_ms * 1000000,
                     .end_ns = ev->ended_ms * 1000000 + 999999,
                     .status = ok ? OBS_STATUS_OK : OBS_STATUS_ERROR,
                     .status_message = ok ? NULL : ev->error_message, .attrs = a,
                     .n_attrs = sizeof a / sizeof a[0]};
    sp.has_parent = event_trace(ev->request_id, ev->traceparent, sp.trace_id, sp.parent_id);
    event_span_id(ev->request_id, sp.span_id);
    obs_otlp_add(o, &sp);
}
