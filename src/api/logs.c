/* GET /v1/functions/{name}/logs: a function's log lines as NDJSON, one
 * {"time","request_id","stream","message"} a line; follow=1 keeps the
 * response open and streams new lines as the function prints them: on
 * this server as it prints them, and, with servers sharing a database,
 * on the others as they write them (obs/logs.h).
 *
 * A follower that reads more slowly than the function prints does not make
 * the server hold lines for it: while more than FOLLOW_BACKLOG_MAX bytes of
 * its stream are unsent, new lines are skipped, and the first line written
 * after that is one gap marker with the same four fields and a count:
 *   {"time":"<now>","request_id":"","stream":"gap",
 *    "message":"N log lines skipped: the client read too slowly","skipped":N}
 * (stream "gap" appears on no other line). A follower that takes nothing
 * of its stream for the server's keep-alive timeout is disconnected by the
 * HTTP server. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "obs/logs.h"

#define PAGE 1000
/* Unsent bytes of a followed stream past which new lines are skipped. */
#define FOLLOW_BACKLOG_MAX (256 * 1024)
#define DEFAULT_LIMIT 10000
#define MAX_LIMIT 100000

typedef struct follow {
    api_ctx_t *ctx;
    obs_log_sub_t *sub;
    uint64_t skipped;          /* lines left out since the last one written */
    /* Until the lines before the request are read back and written, new
     * ones wait here, as NDJSON, within the same bound. */
    bool live;
    buf_t held;
} follow_t;

static void line_json(buf_t *out, const store_log_t *l)
{
    char t[32];
    clock_format_iso8601(l->time_ms, t, sizeof t);
    buf_addf(out, "{\"time\":\"%s\",\"request_id\":", t);
    json_quote(out, l->request_id, strlen(l->request_id));
    buf_addf(out, ",\"stream\":\"%s\",\"message\":", l->stream == 2 ? "stderr" : "stdout");
    json_quote(out, l->message, l->len);
    buf_adds(out, "}\n");
}

/* Parses ?since= as milliseconds since the epoch or as an ISO 8601 UTC
 * time ("2026-01-02T03:04:05Z", fractions allowed). */
static bool parse_since(const char *s, int64_t *out)
{
    char *end;
    long long ms = strtoll(s, &end, 10);
    if (*s && !*end && ms >= 0) {
        *out = ms;
        return true;
    }
    struct tm tm = { 0 };
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        return false;
    long frac = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 3)
                frac = frac * 10 + (*p - '0');
        for (; digits < 3; digits++)
            frac *= 10;
    }
    if (strcmp(p, "Z") && strcmp(p, ""))
        return false;
    *out = (int64_t)timegm(&tm) * 1000 + frac;
    return true;
}

static void gap_json(buf_t *out, uint64_t skipped)
{
    char t[32];
    clock_format_iso8601(clock_wall_ms(), t, sizeof t);
    buf_addf(out,
             "{\"time\":\"%s\",\"request_id\":\"\",\"stream\":\"gap\",\"message\":\"%llu log "
             "lines skipped: the client read too slowly\",\"skipped\":%llu}\n",
             t, (unsigned long long)skipped, (unsigned long long)skipped);
}

static void on_line(const store_log_t *line, void *ud)
{
    http_request_t *req = ud;
    follow_t *f = req->data;
    if ((f->live ? http_request_unsent(req) : f->held.len) > FOLLOW_BACKLOG_MAX) {
        f->skipped++;
        return;
    }
    buf_t b = BUF_INIT;
    buf_t *out = f->live ? &b : &f->held;
    if (f->skipped) {
        gap_json(out, f->skipped);
        f->skipped = 0;
    }
    line_json(out, line);
    if (f->live)
        http_stream_write(req, b.data, b.len);
    buf_release(&b);
}

static void follow_free(follow_t *f)
{
    obs_logs_unsubscribe(f->ctx->logs, f->sub);
    buf_release(&f->held);
    free(f);
}

static void on_follow_aborted(http_request_t *req)
{
    follow_free(req->data);
    req->data = NULL;
    http_stream_end(req);
}

/* The last line of a server's the first read gave (store_log_t.node). */
typedef struct node_seen {
    char node[65];
    int64_t id;
} node_seen_t;

/* What a GET asks for, and the lines read back for it (as NDJSON). */
typedef struct logs_read {
    char name[TENANT_QNAME_MAX + 1];
    char request_id[64];
    int64_t since;
    int limit;
    buf_t lines;
    follow_t *follow;          /* follow=1: subscribed already, holding new lines */
    /* For a follower: the last line of each server the read gave, and of
     * any, so that other servers' lines are not streamed again. */
    node_seen_t *seen;
    size_t nseen;
    int64_t last_id;
} logs_read_t;

static void note_seen(logs_read_t *l, const store_log_t *line)
{
    if (line->id > l->last_id)
        l->last_id = line->id;
    if (!line->node[0])
        return;
    for (size_t i = 0; i < l->nseen; i++)
        if (!strcmp(l->seen[i].node, line->node)) {
            if (line->id > l->seen[i].id)
                l->seen[i].id = line->id;
            return;
        }
    l->seen = xrealloc(l->seen, (l->nseen + 1) * sizeof *l->seen);
    snprintf(l->seen[l->nseen].node, sizeof l->seen[0].node, "%s", line->node);
    l->seen[l->nseen++].id = line->id;
}

/* On the writer's thread: every line up to the limit, a page at a time. */
static int logs_read(void *db, void *arg, mf_error_t *err)
{
    logs_read_t *l = arg;
    const char *rid = l->request_id[0] ? l->request_id : NULL;
    int64_t after = 0;
    /* A follower catches up on a server it has had nothing of (after a
     * lost notification) from here, not from the beginning; with one
     * server alone (SQLite) there is nothing to catch up on. */
    mf_error_t ignored = MF_ERROR_INIT;
    if (l->follow)
        store_logs_last_id(db, &l->last_id, &ignored);
    for (int left = l->limit; left > 0;) {
        store_log_t *lines = NULL;
        size_t n = 0;
        int r = store_logs_list(db, l->name, rid, l->since, after, left < PAGE ? left : PAGE,
                                &lines, &n, err);
        if (r < 0)
            return r;
        for (size_t i = 0; i < n; i++) {
            line_json(&l->lines, &lines[i]);
            if (l->follow)
                note_seen(l, &lines[i]);
        }
        if (n)
            after = lines[n - 1].id;
        store_log_list_free(lines, n);
        left -= (int)n;
        if (n < PAGE)
            break;
    }
    return 0;
}

static void logs_answer(http_request_t *req, api_ctx_t *ctx, void *arg, int r,
                        const mf_error_t *err)
{
    logs_read_t *l = arg;
    follow_t *f = l->follow;
    /* A failed read ends the stream where it stopped, as a broken one does. */
    if (r < 0)
        log_error("api", "reading the logs of %s: %s", l->name, err->msg);
    http_stream_begin(req, 200, "application/x-ndjson");
    http_stream_write(req, l->lines.data, l->lines.len);
    if (!f || r < 0 || http_request_gone(req)) {
        if (f)
            follow_free(f);
        req->data = NULL;
        http_stream_end(req);
    } else {
        /* New lines arrive through the subscription until the client
         * leaves or the server stops; other servers' lines from where
         * this read left each of them. */
        for (size_t i = 0; i < l->nseen; i++)
            obs_logs_seen(ctx->logs, f->sub, l->seen[i].node, l->seen[i].id);
        obs_logs_seen(ctx->logs, f->sub, NULL, l->last_id);
        http_stream_write(req, f->held.data, f->held.len);
        buf_release(&f->held);
        f->live = true;
        req->abort_cb = on_follow_aborted;
    }
    buf_release(&l->lines);
    free(l->seen);
    free(l);
}

/* Reads once the lines printed so far are written; a follower hears of
 * the lines printed after that from the moment it asks. */
static void handle_logs(http_request_t *req, api_ctx_t *ctx)
{
    const char *name = req->params[0];
    if (!registry_valid_name(name)) {
        http_respond_error(req, 400, "bad_request", "name: must match [A-Za-z0-9_-]{1,64}");
        return;
    }
    buf_t v = BUF_INIT;
    char request_id[64] = "";
    int64_t since = 0;
    int limit = DEFAULT_LIMIT;
    bool follow = false;
    if (http_request_query(req, "request_id", &v) && v.len) {
        if (v.len >= sizeof request_id) {
            buf_release(&v);
            http_respond_error(req, 400, "bad_request", "request_id: too long");
            return;
        }
        memcpy(request_id, v.data, v.len + 1);
    }
    if (http_request_query(req, "since", &v) && v.len && !parse_since(v.data, &since)) {
        buf_release(&v);
        http_respond_error(req, 400, "bad_request",
                           "since: must be milliseconds since the epoch or an ISO 8601 UTC time");
        return;
    }
    if (http_request_query(req, "limit", &v)) {
        char *end;
        long n = strtol(v.data, &end, 10);
        if (!v.len || *end || n < 1 || n > MAX_LIMIT) {
            buf_release(&v);
            http_respond_error(req, 400, "bad_request", "limit: must be a number from 1 to %d",
                               MAX_LIMIT);
            return;
        }
        limit = (int)n;
    }
    if (http_request_query(req, "follow", &v))
        follow = !strcmp(v.data, "1") || !strcmp(v.data, "true");
    buf_release(&v);

    logs_read_t *l = xcalloc(1, sizeof *l);
    snprintf(l->name, sizeof l->name, "%s", name);
    snprintf(l->request_id, sizeof l->request_id, "%s", request_id);
    l->since = since;
    l->limit = limit;
    buf_init(&l->lines, 0);
    if (follow) {
        /* Subscribed before the lines so far are handed to the writer
         * (api__read_records): each line is read back or held, never
         * both, never neither. */
        follow_t *f = xcalloc(1, sizeof *f);
        f->ctx = ctx;
        buf_init(&f->held, 0);
        req->data = f;
        f->sub = obs_logs_subscribe(ctx->logs, name, request_id[0] ? request_id : NULL, on_line,
                                    req);
        l->follow = f;
    }
    api__read_records(req, ctx, logs_read, logs_answer, l);
}

void api__logs_register(http_router_t *router, api_ctx_t *ctx)
{
    api__route(router, ctx, HTTP_GET, "/v1/functions/{name}/logs", handle_logs, 0, false);
}
