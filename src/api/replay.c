/* POST /v1/invocations/{id}/replay: a recorded call's event run again on
 * its function's current version, synchronously or (with
 * X-Mayfly-Invocation-Type: Event) queued, answered as an invoke is. The
 * new call's record says replay_of. Only an event kept whole can run
 * again: one cut, redacted or not kept gets 409 saying which. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "core/xalloc.h"
#include "store/store.h"

typedef struct replay_read {
    const char *id;            /* the request's path parameter */
    store_record_t rec;
} replay_read_t;

static int replay_read(void *db, void *arg, mf_error_t *err)
{
    replay_read_t *g = arg;
    return store_record_get(db, g->id, &g->rec, err);
}

static void replay_answer(http_request_t *req, api_ctx_t *ctx, void *arg, int r,
                          const mf_error_t *err)
{
    replay_read_t *g = arg;
    store_record_t *rec = &g->rec;
    const char *type = http_request_header(req, "X-Mayfly-Invocation-Type");
    const char *why = NULL;
    if (rec->event_flags & STORE_PAYLOAD_WITHHELD)
        why = "was not kept: it could not be checked for values to redact";
    else if (!rec->event)
        why = "was not kept (the function's record.payloads)";
    else if (rec->event_flags & STORE_PAYLOAD_REDACTED)
        why = "was redacted (record.redact)";
    else if (rec->event_flags & STORE_PAYLOAD_TRUNCATED)
        why = "was cut at the function's record.max_payload_kb";
    api_who_t who;
    if (r < 0) {
        api_respond_failure(req, r, err);
    } else if (!api__who(req, ctx, &who) || !api__sees(&who, rec->function) ||
               (who.key && who.key->role == AUTH_INVOKER && strcmp(who.key->id, rec->key_id))) {
        /* Another tenant's call, or another key's for an invoker: as absent. */
        http_respond_error(req, 404, "not_found", "invocation `%s` does not exist",
                           rec->request_id);
    } else if (type && strcasecmp(type, "RequestResponse") && strcasecmp(type, "Event")) {
        http_respond_error(req, 400, "bad_request",
                           "X-Mayfly-Invocation-Type: must be RequestResponse or Event, not `%s`",
                           type);
    } else if (why) {
        http_respond_error(req, 409, "conflict", "invocation `%s` cannot be replayed: its event %s",
                           rec->request_id, why);
    } else {
        buf_t event = BUF_INIT;
        buf_add(&event, rec->event, rec->event_len);
        if (type && !strcasecmp(type, "Event"))
            api__enqueue(req, ctx, rec->function, &event, rec->request_id, rec->tenant_id);
        else
            api__call(req, ctx, rec->function, &event, rec->request_id, rec->tenant_id);
        buf_release(&event);
    }
    store_record_clear(rec);
    free(g);
}

/* Once the records of calls that have answered are written. */
static void handle_replay(http_request_t *req, api_ctx_t *ctx)
{
    replay_read_t *g = xcalloc(1, sizeof *g);
    g->id = req->params[0];
    api__read_records(req, ctx, replay_read, replay_answer, g);
}

void api__replay_register(http_router_t *router, api_ctx_t *ctx)
{
    api__route(router, ctx, HTTP_POST, "/v1/invocations/{id}/replay", handle_replay, 0, false);
}
