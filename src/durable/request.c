/* CheckpointDurableExecution's body (see durable/durable.h): the one
 * request of the protocol that carries a batch of changes from a
 * function, parsed and checked here before anything is applied. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "durable/durable.h"

static const char *const req__types[] = {"EXECUTION", "CONTEXT",        "STEP", "WAIT",
                                         "CALLBACK",  "CHAINED_INVOKE", NULL};
static const char *const req__actions[] = {"START", "SUCCEED", "FAIL", "RETRY", "CANCEL", NULL};

static bool req__one_of(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (!strcmp(s, *set))
            return true;
    return false;
}

/* A string member of at most max bytes, or absent. */
static int req__str(const json_t *u, size_t i, const char *key, size_t max, bool required,
                    mf_error_t *err)
{
    const json_t *v = json_object_get(u, key);
    if (!v) {
        if (required)
            return mf_error_plain(err, EINVAL, "Updates[%zu].%s: required", i, key);
        return 0;
    }
    if (!json_is_string(v))
        return mf_error_plain(err, EINVAL, "Updates[%zu].%s: must be a string", i, key);
    if (json_string_length(v) > max)
        return mf_error_plain(err, max >= DURABLE_MAX_PAYLOAD ? EFBIG : EINVAL,
                              "Updates[%zu].%s: must be at most %zu bytes", i, key, max);
    if (max < DURABLE_MAX_PAYLOAD && memchr(json_string_value(v), '\0', json_string_length(v)))
        return mf_error_plain(err, EINVAL, "Updates[%zu].%s: must not hold NUL", i, key);
    return 0;
}

/* An options object whose members are all non-negative integers (or a
 * boolean, ReplayChildren), or absent. */
static int req__options(const json_t *u, size_t i, const char *key, mf_error_t *err)
{
    const json_t *o = json_object_get(u, key);
    if (!o || json_is_null(o))
        return 0;
    if (!json_is_object(o))
        return mf_error_plain(err, EINVAL, "Updates[%zu].%s: must be an object", i, key);
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)o, k, v)
    {
        if (json_is_boolean(v) || json_is_null(v))
            continue;
        if (json_is_string(v) && json_string_length(v) <= DURABLE_MAX_ID)
            continue; /* ChainedInvokeOptions.FunctionName, TenantId */
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > DURABLE_TIMEOUT_MAX)
            return mf_error_plain(err, EINVAL,
                                  "Updates[%zu].%s.%s: must be an integer from 0 to %d", i, key, k,
                                  DURABLE_TIMEOUT_MAX);
    }
    return 0;
}

static int req__error_object(const json_t *u, size_t i, mf_error_t *err)
{
    const json_t *e = json_object_get(u, "Error");
    if (!e || json_is_null(e))
        return 0;
    if (!json_is_object(e))
        return mf_error_plain(err, EINVAL, "Updates[%zu].Error: must be an object", i);
    /* The error's texts together are bounded as a payload is. */
    char *text = json_dumps(e, JSON_COMPACT);
    size_t n = text ? strlen(text) : 0;
    free(text);
    if (n > DURABLE_MAX_PAYLOAD)
        return mf_error_plain(err, EFBIG, "Updates[%zu].Error: must be at most %u bytes", i,
                              DURABLE_MAX_PAYLOAD);
    return 0;
}

int durable_checkpoint_parse(const char *body, size_t len, durable_checkpoint_req_t *out,
                             mf_error_t *err)
{
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    json_t *doc = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return mf_error_plain(err, EINVAL, "the body must be a JSON object: %s", jerr.text);
    }
    int r = 0;
    const json_t *tok = json_object_get(doc, "CheckpointToken");
    const json_t *ct = json_object_get(doc, "ClientToken");
    json_t *ups = json_object_get(doc, "Updates");
    if (!json_is_string(tok) || json_string_length(tok) == 0 ||
        json_string_length(tok) >= sizeof out->token) {
        r = mf_error_plain(err, EINVAL, "CheckpointToken: required, a string of at most %zu bytes",
                           sizeof out->token - 1);
        goto out;
    }
    if (ct && !json_is_null(ct) &&
        (!json_is_string(ct) || json_string_length(ct) >= sizeof out->client_token)) {
        r = mf_error_plain(err, EINVAL, "ClientToken: must be a string of at most %zu bytes",
                           sizeof out->client_token - 1);
        goto out;
    }
    if (ups && !json_is_null(ups) && !json_is_array(ups)) {
        r = mf_error_plain(err, EINVAL, "Updates: must be an array");
        goto out;
    }
    if (json_array_size(ups) > DURABLE_MAX_UPDATES) {
        r = mf_error_plain(err, EINVAL, "Updates: at most %d in one checkpoint",
                           DURABLE_MAX_UPDATES);
        goto out;
    }
    size_t i;
    json_t *u;
    json_array_foreach(ups, i, u)
    {
        if (!json_is_object(u)) {
            r = mf_error_plain(err, EINVAL, "Updates[%zu]: must be an object", i);
            goto out;
        }
        if ((r = req__str(u, i, "Id", DURABLE_MAX_ID, true, err)) < 0 ||
            (r = req__str(u, i, "Type", 32, true, err)) < 0 ||
            (r = req__str(u, i, "Action", 32, true, err)) < 0 ||
            (r = req__str(u, i, "ParentId", DURABLE_MAX_ID, false, err)) < 0 ||
            (r = req__str(u, i, "Name", DURABLE_MAX_ID, false, err)) < 0 ||
            (r = req__str(u, i, "SubType", 64, false, err)) < 0 ||
            (r = req__str(u, i, "Payload", DURABLE_MAX_PAYLOAD, false, err)) < 0 ||
            (r = req__error_object(u, i, err)) < 0 ||
            (r = req__options(u, i, "ContextOptions", err)) < 0 ||
            (r = req__options(u, i, "StepOptions", err)) < 0 ||
            (r = req__options(u, i, "WaitOptions", err)) < 0 ||
            (r = req__options(u, i, "CallbackOptions", err)) < 0 ||
            (r = req__options(u, i, "ChainedInvokeOptions", err)) < 0)
            goto out;
        if (json_string_length(json_object_get(u, "Id")) == 0) {
            r = mf_error_plain(err, EINVAL, "Updates[%zu].Id: must not be empty", i);
            goto out;
        }
        const char *type = json_string_value(json_object_get(u, "Type"));
        const char *action = json_string_value(json_object_get(u, "Action"));
        if (!req__one_of(type, req__types)) {
            r = mf_error_plain(err, EINVAL,
                               "Updates[%zu].Type: must be EXECUTION, CONTEXT, STEP, WAIT, "
                               "CALLBACK or CHAINED_INVOKE",
                               i);
            goto out;
        }
        if (!req__one_of(action, req__actions)) {
            r = mf_error_plain(err, EINVAL,
                               "Updates[%zu].Action: must be START, SUCCEED, FAIL, RETRY or "
                               "CANCEL",
                               i);
            goto out;
        }
    }
    snprintf(out->token, sizeof out->token, "%s", json_string_value(tok));
    if (json_is_string(ct))
        snprintf(out->client_token, sizeof out->client_token, "%s", json_string_value(ct));
    out->updates = ups ? json_incref(ups) : json_array();
    if (!json_is_array(out->updates)) {
        json_decref(out->updates);
        out->updates = json_array();
    }
out:
    json_decref(doc);
    return r;
}

void durable_checkpoint_req_clear(durable_checkpoint_req_t *req)
{
    json_decref(req->updates);
    memset(req, 0, sizeof *req);
}
