#include "http/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/json.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "http/peers.h"
#include "obs/metrics.h"

/* Past this much unparsed input behind a request in flight, stop reading
 * from the client until the request is answered. */
#define IN_HIGH_WATER (256 * 1024)
/* Reading and parsing resume once the unsent output is down to this. */
#define OUTPUT_LOW_WATER (HTTP_OUTPUT_HIGH_WATER / 4)
/* Body bytes accepted (and thrown away) on a path that matches no route. */
#define UNROUTED_MAX_BODY (64 * 1024)
#define READ_SLAB (64 * 1024)
/* An emptied input buffer larger than this is freed rather than kept. */
#define IN_KEEP_MAX (16 * 1024)
/* After a refusal the client's further bytes are read and dropped for at
 * most this long, and at most this many, before the connection closes. */
#define LINGER_MS 2000
#define LINGER_MAX_BYTES (1024 * 1024)
/* Connections refused over the per-client bound are logged this seldom. */
#define CAP_LOG_INTERVAL_NS (10 * 1000000000ULL)

typedef enum { TIMER_NONE, TIMER_KEEPALIVE, TIMER_HEAD, TIMER_SEND, TIMER_LINGER } timer_mode_t;

typedef struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown;
    http_server_t *srv;
    http_reader_t reader;
    buf_t in;                  /* received; parsed up to in_off */
    size_t in_off;
    http_request_t *active;    /* the one request being answered */
    http_refuse_fn refuse;     /* shapes a refusal of the request being read */
    int refusal_status;        /* a head check's refusal of the request being read */
    buf_t refusal;             /* ... and its body */
    const char *refusal_message; /* the server's own refusal at head time */
    const char *refusal_headers;
    struct http_conn *prev, *next;
    timer_mode_t timer_mode;
    size_t send_mark;          /* the write queue when TIMER_SEND last saw progress */
    int open_handles;
    http__peer_addr_t peer;
    bool peer_counted;         /* in the server's per-client counts */
    bool admitted;             /* counted in nadmitted */
    bool closing;
    bool processing;
    bool close_after;          /* no more requests: close once the output is written */
    bool eof;
    bool reading;
    bool served;               /* a request has been dispatched on it */
    bool out_paused;           /* parsing waits for the output to drain */
    bool yielded;              /* used its turn's budget: on the resume list */
    bool lingering;
    size_t lingered;           /* bytes dropped while lingering */
    uint64_t turn;             /* the loop turn budget counts for */
    unsigned budget;           /* requests it may still start in that turn */
    size_t body_held;          /* the server's body bytes this request holds */
    buf_t out;                 /* answered, not yet handed to the kernel */
    bool flush_queued;         /* on the server's flush list */
    bool hold;                 /* the next answer waits for the one after it */
    struct http_conn *flush_next;
    struct http_conn *resume_next;
} http_conn_t;

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t grace_timer;
    uv_check_t flusher;        /* writes each loop iteration's output */
    uv_idle_t flush_soon;      /* active while output waits: the poll must not block */
    uv_idle_t resumer;         /* runs connections that used up a turn's budget */
    http_conn_t *flush_list;
    http_conn_t *resume_list;
    http_server_config_t config;
    const http_router_t *router;
    http_conn_t *conns;
    struct http_server *metrics_next; /* on metric_servers while metrics are on */
    unsigned nconns;           /* open, refused ones closing included */
    unsigned nadmitted;        /* open and not refused at accept */
    http__peers_t peers;
    size_t body_bytes;         /* held by requests being read */
    uint64_t cap_logged_ns;    /* the last log line about the per-client bound */
    unsigned cap_unlogged;     /* refusals since */
    void *ud;
    bool metrics;
    bool shutting_down;
    bool listener_closed;
    int closing_handles;
    void (*done)(void *);
    void *done_ud;
};

/* Reads are copied out (or parsed) at once, on the one loop thread, so
 * every connection of every server shares one slab: a server per instance
 * (the Runtime API) must not cost a 64 KiB buffer each. */
static char read_slab[READ_SLAB];

/* Counts loop iterations (every server's check phase moves it on; several
 * moves in one iteration are harmless): a connection's request budget is
 * for one value of it. */
static uint64_t turn_counter;

typedef struct write_req {
    uv_write_t w;
    http_conn_t *conn;
    buf_t head;
    buf_t body;
} write_req_t;

static metrics_family_t *m_requests, *m_duration, *m_refused, *m_body_bytes, *m_unsent;
/* The servers with metrics on, whose unsent answers /metrics counts. */
static http_server_t *metric_servers;
/* Body bytes held by the requests being read on servers with metrics on,
 * read when /metrics is rendered (a gauge set per request would cost the
 * warm path a lookup). */
static size_t counted_body_bytes;

static void conn_close(http_conn_t *conn);
static void conn_process(http_conn_t *conn);
static void conn_update_timer(http_conn_t *conn);
static void maybe_finish_shutdown(http_server_t *srv);

const char *http_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    default: return "Unknown";
    }
}

const char *http_status_code_name(int status)
{
    switch (status) {
    case 400: return "bad_request";
    case 401: return "unauthorized";
    case 403: return "forbidden";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 408: return "request_timeout";
    case 409: return "conflict";
    case 412: return "precondition_failed";
    case 413: return "payload_too_large";
    case 429: return "throttled";
    case 431: return "header_too_large";
    case 501: return "not_implemented";
    case 503: return "unavailable";
    case 507: return "insufficient_storage";
    case 508: return "loop_detected";
    default: return status >= 500 ? "internal" : "bad_request";
    }
}

static size_t conn_unsent(const http_conn_t *conn);

static void collect_body_bytes(void *ud)
{
    metrics_set(m_body_bytes, NULL, (double)counted_body_bytes);
    size_t unsent = 0;
    for (const http_server_t *srv = metric_servers; srv; srv = srv->metrics_next)
        for (http_conn_t *c = srv->conns; c; c = c->next)
            if (!c->closing)
                unsent += conn_unsent(c);
    metrics_set(m_unsent, NULL, (double)unsent);
}

static void metrics_init_once(void)
{
    if (m_requests)
        return;
    static const char *const labels[] = { "route", "code", NULL };
    m_requests = metrics_family_new(METRICS_COUNTER, "mayfly_http_requests_total",
                                    "HTTP requests answered, by route and status code.", labels,
                                    NULL, 0);
    m_duration = metrics_family_new(METRICS_HISTOGRAM, "mayfly_http_request_duration_seconds",
                                    "Time from a request's arrival to its answer.", labels, NULL,
                                    0);
    static const char *const reason[] = { "reason", NULL };
    m_refused = metrics_family_new(
        METRICS_COUNTER, "mayfly_http_refused_total",
        "Requests and connections the HTTP server refused before any handler ran, by reason: "
        "head_check (a route's own check, credentials say), body_too_large, header_too_large, "
        "bad_request, header_timeout, buffered_bodies, max_connections, client_connections, "
        "shutting_down.",
        reason, NULL, 0);
    m_body_bytes = metrics_family_new(
        METRICS_GAUGE, "mayfly_http_request_body_bytes",
        "Request body bytes the server holds for requests still being received, declared "
        "Content-Length counted from the head on.",
        NULL, NULL, 0);
    m_unsent = metrics_family_new(
        METRICS_GAUGE, "mayfly_http_response_unsent_bytes",
        "Answer bytes the server has queued for clients that have not taken them yet (a slow "
        "log follower's, say): what clients that stop reading make it hold.",
        NULL, NULL, 0);
    metrics_add_collector(collect_body_bytes, NULL);
}

static void observe(const http_request_t *req, int status)
{
    char code[8];
    snprintf(code, sizeof code, "%d", status);
    const char *route = req->route ? req->route->pattern : "unmatched";
    const char *values[] = { route, code };
    metrics_inc(m_requests, values, 1);
    metrics_observe(m_duration, values, (double)(clock_mono_ns() - req->start_ns) / 1e9);
}

static void count_refusal(const http_server_t *srv, const char *reason)
{
    if (srv->metrics)
        metrics_inc(m_refused, &reason, 1);
}

/* ---- connection plumbing ---------------------------------------------- */

static size_t conn_unsent(const http_conn_t *conn)
{
    return conn->out.len + uv_stream_get_write_queue_size((const uv_stream_t *)&conn->tcp);
}

/* Gives back the server's body bytes the request being read holds. */
static void conn_release_body(http_conn_t *conn)
{
    conn->srv->body_bytes -= conn->body_held;
    if (conn->srv->metrics)
        counted_body_bytes -= conn->body_held;
    conn->body_held = 0;
}

static void conn_hold_body(http_conn_t *conn, size_t more)
{
    conn->srv->body_bytes += more;
    if (conn->srv->metrics)
        counted_body_bytes += more;
    conn->body_held += more;
}

/* Takes conn off one of the server's singly linked lists. */
static void unlink_flush(http_conn_t **list, http_conn_t *conn)
{
    for (http_conn_t **pp = list; *pp; pp = &(*pp)->flush_next) {
        if (*pp == conn) {
            *pp = conn->flush_next;
            return;
        }
    }
}

static void unlink_resume(http_conn_t **list, http_conn_t *conn)
{
    for (http_conn_t **pp = list; *pp; pp = &(*pp)->resume_next) {
        if (*pp == conn) {
            *pp = conn->resume_next;
            return;
        }
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    http_conn_t *conn = h->data;
    if (--conn->open_handles > 0)
        return;
    http_server_t *srv = conn->srv;
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        srv->conns = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    srv->nconns--;
    if (conn->admitted)
        srv->nadmitted--;
    if (conn->flush_queued)
        unlink_flush(&srv->flush_list, conn);
    if (conn->yielded)
        unlink_resume(&srv->resume_list, conn);
    if (conn->peer_counted)
        http__peers_remove(&srv->peers, &conn->peer);
    conn_release_body(conn);
    /* A request cut off in the middle tells its route (unhandled_cb). */
    http_reader_release(&conn->reader);
    buf_release(&conn->in);
    buf_release(&conn->out);
    buf_release(&conn->refusal);
    free(conn);
    maybe_finish_shutdown(srv);
}

static void conn_close(http_conn_t *conn)
{
    if (conn->closing)
        return;
    conn->closing = true;
    if (conn->active) {
        /* The handler still owns the request; tell it the client is gone. */
        http_request_t *req = conn->active;
        conn->active = NULL;
        req->conn = NULL;
        req->arriving_on = NULL;
        /* A request whose body was still arriving is the handler's alone
         * now, not the reader's as well. */
        if (conn->reader.cur == req)
            conn->reader.cur = NULL;
        if (req->abort_cb)
            req->abort_cb(req);
    }
    uv_close((uv_handle_t *)&conn->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&conn->timer, on_handle_closed);
}

static void on_shutdown(uv_shutdown_t *sr, int status)
{
    http_conn_t *conn = sr->data;
    if (status < 0 && !conn->closing)
        conn_close(conn);
}

static void conn_set_timer(http_conn_t *conn, timer_mode_t mode);
static void conn_set_reading(http_conn_t *conn, bool on);

/* Ends a connection whose last answer has been written: a FIN, then the
 * client's further bytes (the rest of a refused body, say) are read and
 * dropped until it closes too, or for a short while. Closing at once with
 * unread bytes would send a reset, which can destroy the answer before the
 * client has read it. */
static void conn_linger(http_conn_t *conn)
{
    if (conn->closing || conn->lingering)
        return;
    conn->shutdown.data = conn;
    if (conn->eof ||
        uv_shutdown(&conn->shutdown, (uv_stream_t *)&conn->tcp, on_shutdown) < 0) {
        conn_close(conn);
        return;
    }
    conn->lingering = true;
    conn_set_timer(conn, TIMER_LINGER);
    conn_set_reading(conn, true);
}

/* After output left: a finished connection closes once everything is
 * written, and one paused for its output goes on once enough has gone. */
static void conn_after_write(http_conn_t *conn)
{
    if (conn->closing)
        return;
    size_t unsent = conn_unsent(conn);
    if (conn->close_after && unsent == 0) {
        conn_linger(conn);
        return;
    }
    if (conn->active && conn->active->drain_cb && unsent <= OUTPUT_LOW_WATER) {
        http_request_t *req = conn->active;
        void (*cb)(http_request_t *) = req->drain_cb;
        req->drain_cb = NULL;
        cb(req);
        if (conn->closing)
            return;
    }
    if (conn->out_paused && unsent <= OUTPUT_LOW_WATER) {
        conn->out_paused = false;
        conn_process(conn);
        return;
    }
    conn_update_timer(conn);
}

static void on_write(uv_write_t *w, int status)
{
    write_req_t *wr = (write_req_t *)w;
    http_conn_t *conn = wr->conn;
    buf_release(&wr->head);
    buf_release(&wr->body);
    free(wr);
    if (conn->closing)
        return;
    if (status < 0) {
        conn_close(conn);
        return;
    }
    conn_after_write(conn);
}

/* Hands head and then body (NULL for none) to the kernel: as much as it
 * takes at once, and the rest through a queued write that takes over
 * their memory. Trying first spares the event loop a poll-for-writable
 * round (and an epoll_ctl) on the common path, where a loopback socket
 * takes everything. */
static void conn_send(http_conn_t *conn, buf_t *head, buf_t *body)
{
    uv_stream_t *s = (uv_stream_t *)&conn->tcp;
    size_t hlen = head->len, blen = body ? body->len : 0;
    size_t off = 0;
    if (uv_stream_get_write_queue_size(s) == 0) {
        uv_buf_t b[2];
        unsigned nb = 0;
        if (hlen)
            b[nb++] = uv_buf_init(head->data, (unsigned)hlen);
        if (blen)
            b[nb++] = uv_buf_init(body->data, (unsigned)blen);
        int n = nb ? uv_try_write(s, b, nb) : 0;
        if (n < 0 && n != UV_EAGAIN) {
            buf_release(head);
            if (body)
                buf_release(body);
            conn_close(conn);
            return;
        }
        off = n > 0 ? (size_t)n : 0;
    }
    if (off == hlen + blen) {
        buf_release(head);
        if (body)
            buf_release(body);
        conn_after_write(conn);
        return;
    }
    write_req_t *wr = xcalloc(1, sizeof *wr);
    wr->conn = conn;
    wr->head = *head;
    buf_init(head, 0);
    buf_init(&wr->body, 0);
    if (body) {
        wr->body = *body;
        buf_init(body, 0);
    }
    uv_buf_t b[2];
    unsigned nb = 0;
    if (off < hlen)
        b[nb++] = uv_buf_init(wr->head.data + off, (unsigned)(hlen - off));
    size_t boff = off > hlen ? off - hlen : 0;
    if (blen > boff)
        b[nb++] = uv_buf_init(wr->body.data + boff, (unsigned)(blen - boff));
    if (uv_write(&wr->w, s, b, nb, on_write) < 0) {
        buf_release(&wr->head);
        buf_release(&wr->body);
        free(wr);
        conn_close(conn);
        return;
    }
    conn_update_timer(conn);
}

static void conn_flush(http_conn_t *conn)
{
    if (conn->closing || !conn->out.len)
        return;
    buf_t out = conn->out;
    buf_init(&conn->out, 0);
    conn_send(conn, &out, NULL);
}

/* Runs after each poll phase: every answer produced while handling that
 * round of events goes out in one write per connection (an answer to a
 * runtime and the next event for it, say), waking its reader once. */
static void on_flush(uv_check_t *h)
{
    http_server_t *srv = h->data;
    turn_counter++;
    uv_idle_stop(&srv->flush_soon);
    while (srv->flush_list) {
        http_conn_t *conn = srv->flush_list;
        srv->flush_list = conn->flush_next;
        conn->flush_next = NULL;
        conn->flush_queued = false;
        conn_flush(conn);
    }
}

static void on_flush_soon(uv_idle_t *h)
{
    /* Nothing to do here: being active keeps the next poll from blocking,
     * and on_flush runs right after it. */
}

static void conn_queue_flush(http_conn_t *conn)
{
    if (conn->flush_queued)
        return;
    conn->flush_queued = true;
    conn->flush_next = conn->srv->flush_list;
    conn->srv->flush_list = conn;
    /* Output made outside the poll phase (a timer, a deadline) must not
     * wait for the next I/O event to go out. */
    uv_idle_start(&conn->srv->flush_soon, on_flush_soon);
}

/* Queues head (and body, whose memory the write takes over) on the socket:
 * small answers are gathered and written by on_flush; a large body goes
 * out at once, behind what was gathered, without being copied. */
static void conn_write(http_conn_t *conn, buf_t *head, buf_t *body, bool close_after)
{
    if (conn->closing) {
        buf_release(head);
        if (body)
            buf_release(body);
        return;
    }
    buf_add(&conn->out, head->data, head->len);
    buf_release(head);
    if (close_after)
        conn->close_after = true;
    if (body && body->len > 65536) {
        buf_t out = conn->out;
        buf_init(&conn->out, 0);
        conn->hold = false;
        conn_send(conn, &out, body);
        return;
    }
    if (body) {
        buf_add(&conn->out, body->data, body->len);
        buf_release(body);
    }
    if (conn->hold && !conn->close_after) {
        conn->hold = false; /* it goes out with the next answer */
        return;
    }
    conn->hold = false;
    conn_queue_flush(conn);
}

/* Refuses what the connection is reading, without a handler, and closes
 * the connection once the answer is written. */
static void conn_refuse(http_conn_t *conn, int status, const char *extra_headers, const buf_t *body)
{
    buf_t head = BUF_INIT;
    buf_addf(&head,
             "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
             "%sConnection: close\r\n\r\n",
             status, http_status_text(status), body->len, extra_headers ? extra_headers : "");
    buf_add(&head, body->data, body->len);
    /* Nothing more is read into memory: the rest of a body is dropped. */
    conn_release_body(conn);
    conn->close_after = true;
    conn_write(conn, &head, NULL, true);
}

/* Answers a request the server refuses on its own (the reader's errors, a
 * connection over a bound, a request during shutdown) in the error shape
 * of the API the path belongs to. */
static void conn_write_error(http_conn_t *conn, int status, const char *message,
                             const char *extra_headers)
{
    buf_t body = BUF_INIT, extra = BUF_INIT;
    buf_adds(&extra, extra_headers);
    if (conn->refuse) {
        conn->refuse(status, message, &extra, &body);
    } else {
        buf_addf(&body, "{\"error\":{\"code\":\"%s\",\"message\":",
                 http_status_code_name(status));
        json_quote(&body, message, strlen(message));
        buf_adds(&body, "}}");
    }
    conn_refuse(conn, status, extra.data, &body);
    buf_release(&extra);
    buf_release(&body);
}

/* Ends a connection whose client has finished sending: what is answered
 * still goes out, then it closes. */
static void conn_end(http_conn_t *conn)
{
    conn->close_after = true;
    if (conn->out.len)
        conn_queue_flush(conn);
    else if (!conn_unsent(conn))
        conn_close(conn);
    /* else the queued writes' completion closes it */
}

static void on_timer(uv_timer_t *t)
{
    http_conn_t *conn = t->data;
    switch (conn->timer_mode) {
    case TIMER_HEAD:
        conn->timer_mode = TIMER_NONE;
        if (!conn->close_after &&
            (conn->in_off < conn->in.len || http_reader_busy(&conn->reader))) {
            /* A client too slow to send its request holds a connection
             * slot; tell it why and let it go. */
            count_refusal(conn->srv, "header_timeout");
            conn_write_error(conn, 408, "the request did not arrive in time", "");
            return;
        }
        break; /* nothing of a request arrived: just close */
    case TIMER_SEND: {
        /* The client has not taken its answers: close it unless it has
         * taken some since the timer was set. */
        size_t queued = uv_stream_get_write_queue_size((uv_stream_t *)&conn->tcp);
        if (queued && queued < conn->send_mark) {
            conn->send_mark = queued;
            uv_timer_start(t, on_timer, conn->srv->config.keepalive_timeout_ms, 0);
            return;
        }
        if (!queued) {
            conn->timer_mode = TIMER_NONE;
            conn_update_timer(conn);
            return;
        }
        break;
    }
    default:
        break;
    }
    conn_close(conn);
}

static void conn_set_timer(http_conn_t *conn, timer_mode_t mode)
{
    if (conn->timer_mode == mode || conn->closing)
        return;
    conn->timer_mode = mode;
    uint64_t ms;
    switch (mode) {
    case TIMER_NONE:
        uv_timer_stop(&conn->timer);
        return;
    case TIMER_HEAD:
        ms = conn->srv->config.header_timeout_ms;
        break;
    case TIMER_LINGER:
        ms = LINGER_MS;
        break;
    case TIMER_SEND:
        conn->send_mark = uv_stream_get_write_queue_size((uv_stream_t *)&conn->tcp);
        ms = conn->srv->config.keepalive_timeout_ms;
        break;
    default:
        ms = conn->srv->config.keepalive_timeout_ms;
        break;
    }
    uv_timer_start(&conn->timer, on_timer, ms, 0);
}

/* Picks the one deadline that applies now. */
static void conn_update_timer(http_conn_t *conn)
{
    if (conn->closing || conn->lingering)
        return;
    timer_mode_t mode;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&conn->tcp))
        mode = TIMER_SEND;
    else if (conn->close_after)
        return; /* the last answer goes out in this iteration */
    else if (conn->active)
        mode = TIMER_NONE;
    else if (conn->in_off < conn->in.len || http_reader_busy(&conn->reader) || !conn->served)
        mode = TIMER_HEAD;
    else
        mode = TIMER_KEEPALIVE;
    conn_set_timer(conn, mode);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    *buf = uv_buf_init(read_slab, READ_SLAB);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    http_conn_t *conn = s->data;
    if (conn->lingering) {
        if (nread < 0) {
            conn_close(conn);
            return;
        }
        conn->lingered += (size_t)nread;
        if (conn->lingered > LINGER_MAX_BYTES)
            conn_close(conn);
        return;
    }
    if (nread == UV_EOF) {
        conn->eof = true;
        uv_read_stop(s);
        conn->reading = false;
        conn_process(conn);
        if (!conn->closing && conn->close_after && !conn_unsent(conn))
            conn_close(conn);
        return;
    }
    if (nread < 0) {
        conn_close(conn);
        return;
    }
    if (nread == 0 || conn->close_after)
        return;
    buf_add(&conn->in, buf->base, (size_t)nread);
    conn_process(conn);
}

static void conn_set_reading(http_conn_t *conn, bool on)
{
    if (conn->reading == on || conn->closing || conn->eof)
        return;
    if (on)
        uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read);
    else
        uv_read_stop((uv_stream_t *)&conn->tcp);
    conn->reading = on;
}

/* ---- the reader's callbacks -------------------------------------------- */

/* Everything decided about a request before its body: route, the route's
 * head check, the body limit (the reader answers 413 on a 0 return), and
 * the server's bound on the body bytes it holds. */
static int reader_on_head(void *ud, http_request_t *req, size_t *body_limit)
{
    http_conn_t *conn = ud;
    http_server_t *srv = conn->srv;
    buf_t allow = BUF_INIT;
    req->route_status = http_router_match(srv->router, req, &allow);
    conn->refuse = http_router_refuser(srv->router, req->path);
    conn->refusal_status = 0;
    conn->refusal_message = NULL;
    conn->refusal_headers = NULL;
    if (req->route_status == 405)
        buf_addf(&req->resp_headers, "Allow: %s\r\n", allow.data);
    buf_release(&allow);
    req->server_data = srv->ud;
    req->arriving_on = conn;
    *body_limit = req->route ? req->route->max_body : UNROUTED_MAX_BODY;

    if (srv->shutting_down) {
        count_refusal(srv, "shutting_down");
        conn->refusal_message = "the server is shutting down";
        return 503;
    }
    if (req->route && req->route->head_check) {
        buf_reset(&conn->refusal);
        int status = req->route->head_check(req, req->route->ud, &conn->refusal);
        if (status) {
            count_refusal(srv, "head_check");
            conn->refusal_status = status;
            return status;
        }
    }
    size_t cap = srv->config.max_buffered_body_bytes;
    /* A streamed body is taken as it comes and held only a piece at a
     * time (its handler pauses it when it cannot take more). */
    if (!cap || !req->content_length || req->content_length > *body_limit || req->body_streamed)
        return 0;
    if (req->content_length > cap) {
        /* It could never fit, however long it waited. */
        count_refusal(srv, "body_too_large");
        conn->refusal_message = "the request body is over the most this server holds at once";
        return 413;
    }
    if (srv->body_bytes + req->content_length > cap) {
        count_refusal(srv, "buffered_bodies");
        conn->refusal_message =
            "the server holds as many request bodies as it may at once; try again shortly";
        conn->refusal_headers = "Retry-After: 1\r\n";
        return 503;
    }
    conn_hold_body(conn, (size_t)req->content_length);
    return 0;
}

static void reader_on_continue(void *ud, http_request_t *req)
{
    http_conn_t *conn = ud;
    buf_t head = BUF_INIT;
    buf_adds(&head, "HTTP/1.1 100 Continue\r\n\r\n");
    /* The client waits for this before sending its body: no gathering. */
    conn_write(conn, &head, NULL, false);
    conn_flush(conn);
}

/* A chunked body's bytes count against the server's bound as they come;
 * returns false, having refused the request, once they would break it. */
static bool conn_count_chunked(http_conn_t *conn)
{
    http_server_t *srv = conn->srv;
    const http_request_t *cur = conn->reader.cur;
    size_t cap = srv->config.max_buffered_body_bytes;
    if (!cap || !cur || !cur->body_chunked || cur->body_streamed ||
        cur->body.len <= conn->body_held)
        return true;
    size_t more = cur->body.len - conn->body_held;
    if (srv->body_bytes + more > cap) {
        count_refusal(srv, "buffered_bodies");
        conn_write_error(conn, 503,
                         "the server holds as many request bodies as it may at once; try again "
                         "shortly",
                         "Retry-After: 1\r\n");
        return false;
    }
    conn_hold_body(conn, more);
    return true;
}

/* The reader stopped on bad input or a refusal at head time. */
static void conn_reader_failed(http_conn_t *conn)
{
    int status = conn->reader.error_status;
    if (conn->refusal_status) {
        const http_request_t *cur = conn->reader.cur;
        conn_refuse(conn, status, cur ? cur->resp_headers.data : "", &conn->refusal);
        buf_release(&conn->refusal);
        return;
    }
    if (conn->refusal_message) {
        conn_write_error(conn, status, conn->refusal_message,
                         conn->refusal_headers ? conn->refusal_headers : "");
        return;
    }
    count_refusal(conn->srv, status == 413   ? "body_too_large"
                             : status == 431 ? "header_too_large"
                                             : "bad_request");
    conn_write_error(conn, status, conn->reader.error_message, "");
}

/* ---- dispatching -------------------------------------------------------- */

static void dispatch(http_conn_t *conn, http_request_t *req)
{
    req->conn = conn;
    req->server_data = conn->srv->ud;
    req->metrics = conn->srv->metrics;
    conn->active = req;
    conn->served = true;
    if (conn->srv->shutting_down) {
        req->keep_alive = false;
        http_respond_error(req, 503, "unavailable", "the server is shutting down");
        return;
    }
    if (req->route_status) {
        /* No handler takes it: an API with its own error format shapes
         * the answer (a Lambda SDK reads the error type from a header). */
        http_refuse_fn refuse = http_router_refuser(conn->srv->router, req->path);
        if (refuse) {
            buf_t body = BUF_INIT;
            char msg[512];
            snprintf(msg, sizeof msg, "%s %s is not an operation this server serves",
                     http_method_str(req->method), req->path);
            refuse(req->route_status, msg, &req->resp_headers, &body);
            http_respond_buf(req, req->route_status, "application/json", &body);
            return;
        }
    }
    switch (req->route_status) {
    case 0:
        /* From here the handler owns whatever the head check took. */
        req->unhandled_cb = NULL;
        req->route->handler(req, req->route->ud);
        return;
    case 405:
        http_respond_error(req, 405, "method_not_allowed", "%s is not allowed on %s",
                           http_method_str(req->method), req->path);
        return;
    case 400:
        http_respond_error(req, 400, "bad_request", "bad percent-encoding in the path %s",
                           req->path);
        return;
    default:
        http_respond_error(req, 404, "not_found", "no route for %s %s",
                           http_method_str(req->method), req->path);
        return;
    }
}

static void on_resume(uv_idle_t *h);

/* The connection has started its turn's share of requests: the rest wait
 * for the next loop iteration, after every other connection's events. */
static void conn_yield(http_conn_t *conn)
{
    if (conn->yielded)
        return;
    conn->yielded = true;
    conn->resume_next = conn->srv->resume_list;
    conn->srv->resume_list = conn;
    uv_idle_start(&conn->srv->resumer, on_resume);
}

static void on_resume(uv_idle_t *h)
{
    http_server_t *srv = h->data;
    http_conn_t *list = srv->resume_list;
    srv->resume_list = NULL;
    while (list) {
        http_conn_t *conn = list;
        list = conn->resume_next;
        conn->resume_next = NULL;
        conn->yielded = false;
        conn_process(conn);
    }
    if (!srv->resume_list)
        uv_idle_stop(h);
}

/* Drops the parsed part of the input; a large buffer left empty goes. */
static void conn_compact_input(http_conn_t *conn)
{
    if (conn->in_off < conn->in.len) {
        buf_consume(&conn->in, conn->in_off);
    } else if (conn->in.cap > IN_KEEP_MAX) {
        buf_release(&conn->in);
    } else {
        buf_reset(&conn->in);
    }
    conn->in_off = 0;
}

/* Tells the handler of a request whose body streams what has arrived:
 * more of it, its end, or its failure. The handler may answer (and so
 * free the request) in the callback. */
static void body_notify(http_conn_t *conn, http_request_t *req)
{
    if (conn->active == req && req->body_cb && (req->body.len || req->body_done || req->body_error))
        req->body_cb(req);
}

/* The reader failed in the middle of a streamed body: its handler, which
 * owns the request, learns why and answers; the connection closes after. */
static void stream_body_failed(http_conn_t *conn, http_request_t *req)
{
    if (conn->reader.cur == req)
        conn->reader.cur = NULL;
    req->body_error = conn->reader.error_status ? conn->reader.error_status : 400;
    req->body_error_message =
        conn->reader.error_message ? conn->reader.error_message : "bad request body";
    req->keep_alive = false;
    body_notify(conn, req);
}

static void conn_process(http_conn_t *conn)
{
    if (conn->processing || conn->closing)
        return;
    conn->processing = true;
    if (conn->turn != turn_counter) {
        conn->turn = turn_counter;
        conn->budget = HTTP_REQUESTS_PER_TURN;
    }
    while (!conn->closing && !conn->close_after && conn->in_off < conn->in.len) {
        http_request_t *act = conn->active;
        if (act) {
            /* Only a request whose body is still streaming in reads on
             * while it is being answered, and only while its handler
             * takes the bytes. */
            if (!act->body_streamed || act->body_done || act->body_error || act->body_paused)
                break;
        } else {
            /* A client that does not read its answers gets no more of them. */
            if (conn_unsent(conn) > HTTP_OUTPUT_HIGH_WATER) {
                conn->out_paused = true;
                break;
            }
            if (!conn->budget) {
                conn_yield(conn);
                break;
            }
        }
        size_t used = 0;
        http_reader_result_t r = http_reader_feed(&conn->reader, conn->in.data + conn->in_off,
                                                  conn->in.len - conn->in_off, &used);
        conn->in_off += used;
        if (act) {
            if (r == HTTP_READER_ERROR) {
                stream_body_failed(conn, act);
                break;
            }
            if (r == HTTP_READER_REQUEST)
                http_reader_take(&conn->reader); /* act itself, body_done set */
            body_notify(conn, act);
            continue;
        }
        if (r == HTTP_READER_ERROR) {
            conn_reader_failed(conn);
            break;
        }
        if (!conn_count_chunked(conn))
            break;
        http_request_t *req;
        if (r == HTTP_READER_MORE) {
            /* A request whose body streams goes to its handler as soon as
             * its head is complete; the reader fills its body from here on. */
            req = conn->reader.cur;
            if (!req || !req->body_streamed || !req->head_ns || req->conn)
                break;
        } else {
            req = http_reader_take(&conn->reader);
        }
        conn_release_body(conn);
        conn->refuse = NULL;
        conn->budget--;
        req->start_ns = clock_mono_ns();
        dispatch(conn, req);
        /* (req is gone if it was answered already.) */
        if (conn->active == req && req->body_streamed)
            body_notify(conn, req);
    }
    conn->processing = false;
    if (conn->closing)
        return;
    conn_compact_input(conn);
    if (conn->close_after)
        return;
    conn_update_timer(conn);
    bool backlog = conn->active && conn->in.len > IN_HIGH_WATER;
    conn_set_reading(conn, !conn->out_paused && !conn->yielded && !backlog);
    if (conn->eof && !conn->active && !conn->out_paused && !conn->yielded)
        conn_end(conn);
}

/* Called when a request's answer has been queued in full. */
static void request_done(http_request_t *req)
{
    http_conn_t *conn = req->conn;
    if (req->metrics)
        observe(req, req->status);
    if (!conn) {
        http_request_free(req);
        return;
    }
    bool keep = req->keep_alive && !conn->srv->shutting_down;
    if (conn->reader.cur == req) {
        /* Answered before its body ended: the rest of the body is never
         * read, so nothing more can be on this connection. */
        conn->reader.cur = NULL;
        keep = false;
    }
    conn->active = NULL;
    http_request_free(req);
    if (!keep) {
        conn->close_after = true;
        return;
    }
    conn_process(conn);
}

/* ---- responses ---------------------------------------------------------- */

void http_header_add(http_request_t *req, const char *name, const char *fmt, ...)
{
    buf_t *h = &req->resp_headers;
    if (!h->cap)
        buf_grow(h, 256); /* an answer's few headers, in one allocation */
    buf_adds(h, name);
    buf_add(h, ": ", 2);
    /* The shapes every call's answers use go without printf: each answer
     * of a warm call adds several headers. */
    va_list ap;
    va_start(ap, fmt);
    if (!strcmp(fmt, "%s"))
        buf_adds(h, va_arg(ap, const char *));
    else if (!strcmp(fmt, "%d"))
        buf_add_int(h, va_arg(ap, int));
    else if (!strcmp(fmt, "%lld"))
        buf_add_int(h, va_arg(ap, long long));
    else if (!strcmp(fmt, "%llu"))
        buf_add_uint(h, va_arg(ap, unsigned long long));
    else
        buf_vaddf(h, fmt, ap);
    va_end(ap);
    buf_add(h, "\r\n", 2);
}

static bool response_keeps_alive(const http_request_t *req)
{
    return req->keep_alive && req->conn && !req->conn->srv->shutting_down;
}

/* content_length: the body's size, HEAD_CHUNKED for a stream, or HEAD_NONE
 * for a status that carries no body; extra: room to leave after the head
 * (a small body that follows it in the same buffer). */
#define HEAD_CHUNKED (-1)
#define HEAD_NONE (-2)

static void build_head(buf_t *head, http_request_t *req, int status, const char *content_type,
                       long long content_length, size_t extra)
{
    buf_grow(head, 128 + req->resp_headers.len + extra);
    buf_adds(head, "HTTP/1.1 ");
    buf_add_int(head, status);
    buf_addch(head, ' ');
    buf_adds(head, http_status_text(status));
    buf_add(head, "\r\n", 2);
    if (content_type && content_length != HEAD_NONE) {
        buf_adds(head, "Content-Type: ");
        buf_adds(head, content_type);
        buf_add(head, "\r\n", 2);
    }
    if (content_length >= 0) {
        buf_adds(head, "Content-Length: ");
        buf_add_int(head, content_length);
        buf_add(head, "\r\n", 2);
    } else if (content_length == HEAD_CHUNKED)
        buf_adds(head, "Transfer-Encoding: chunked\r\n");
    if (!response_keeps_alive(req))
        buf_adds(head, "Connection: close\r\n");
    buf_add(head, req->resp_headers.data, req->resp_headers.len);
    buf_adds(head, "\r\n");
}

void http_respond_buf(http_request_t *req, int status, const char *content_type, buf_t *body)
{
    req->status = status;
    http_conn_t *conn = req->conn;
    if (conn) {
        buf_t head = BUF_INIT;
        bool no_body = status == 204 || status == 304;
        /* A small answer goes out with its head, in one buffer sized once. */
        build_head(&head, req, status, content_type, no_body ? HEAD_NONE : (long long)body->len,
                   !no_body && body->len <= 16384 ? body->len : 0);
        bool close_after = !response_keeps_alive(req);
        if (no_body || req->method == HTTP_HEAD) {
            conn_write(conn, &head, NULL, close_after);
        } else if (body->len <= 16384) {
            /* Small answers go out in one buffer. */
            buf_add(&head, body->data, body->len);
            conn_write(conn, &head, NULL, close_after);
        } else {
            conn_write(conn, &head, body, close_after);
        }
    }
    buf_release(body);
    request_done(req);
}

void http_respond(http_request_t *req, int status, const char *content_type, const void *body,
                  size_t len)
{
    buf_t b = BUF_INIT;
    buf_add(&b, body, len);
    http_respond_buf(req, status, content_type, &b);
}

void http_respond_json(http_request_t *req, int status, const json_t *v)
{
    buf_t b;
    buf_init(&b, 1024); /* most answers fit: one allocation, no regrowth */
    json_dump_buf(&b, v);
    buf_addch(&b, '\n');
    http_respond_buf(req, status, "application/json", &b);
}

void http_respond_error(http_request_t *req, int status, const char *code, const char *fmt, ...)
{
    buf_t msg = BUF_INIT, b = BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    buf_vaddf(&msg, fmt, ap);
    va_end(ap);
    buf_addf(&b, "{\"error\":{\"code\":\"%s\",\"message\":", code);
    json_quote(&b, msg.data, msg.len);
    buf_adds(&b, "}}\n");
    buf_release(&msg);
    http_respond_buf(req, status, "application/json", &b);
}

bool http_hold_for_next(http_request_t *req)
{
    http_conn_t *conn = req->conn;
    if (!conn || conn->in_off >= conn->in.len || !req->keep_alive)
        return false;
    conn->hold = true;
    return true;
}

void http_stream_begin(http_request_t *req, int status, const char *content_type)
{
    req->status = status;
    req->streaming = true;
    if (!req->conn)
        return;
    buf_t head = BUF_INIT;
    /* A stream's head answers HEAD, and the connection closes after it:
     * the body, which may never end (a log followed), is not sent, and
     * the handler's writes then go nowhere, as after a client left. */
    if (req->method == HTTP_HEAD)
        req->keep_alive = false;
    build_head(&head, req, status, content_type, HEAD_CHUNKED, 0);
    conn_write(req->conn, &head, NULL, req->method == HTTP_HEAD);
}

void http_stream_write(http_request_t *req, const void *data, size_t len)
{
    if (!req->conn || !len || req->method == HTTP_HEAD)
        return;
    buf_t chunk = BUF_INIT;
    buf_addf(&chunk, "%zx\r\n", len);
    buf_add(&chunk, data, len);
    buf_adds(&chunk, "\r\n");
    conn_write(req->conn, &chunk, NULL, false);
}

void http_stream_end(http_request_t *req)
{
    http_stream_end_trailers(req, NULL);
}

void http_stream_end_trailers(http_request_t *req, const buf_t *trailers)
{
    if (req->conn && req->method != HTTP_HEAD) {
        buf_t chunk = BUF_INIT;
        buf_adds(&chunk, "0\r\n");
        if (trailers)
            buf_add(&chunk, trailers->data, trailers->len);
        buf_adds(&chunk, "\r\n");
        conn_write(req->conn, &chunk, NULL, !response_keeps_alive(req));
    }
    request_done(req);
}

void http_request_peer(const http_request_t *req, char *out, size_t outlen)
{
    if (outlen)
        out[0] = '\0';
    http_conn_t *conn = req->conn;
    if (!conn)
        return;
    if (!conn->peer.len) {
        /* Not counted per client (no bound set): asked of the socket once
         * per connection, not once per request. */
        struct sockaddr_storage ss;
        int len = sizeof ss;
        if (uv_tcp_getpeername(&conn->tcp, (struct sockaddr *)&ss, &len) < 0 ||
            http__peer_addr_from(&conn->peer, (struct sockaddr *)&ss) < 0)
            return;
    }
    http__peer_addr_format(&conn->peer, out, outlen);
}

void http_request_on_drain(http_request_t *req, void (*cb)(http_request_t *req))
{
    req->drain_cb = cb;
}

void http_request_stream_body(http_request_t *req)
{
    req->body_streamed = true;
}

void http_request_on_body(http_request_t *req, void (*cb)(http_request_t *req))
{
    req->body_cb = cb;
}

void http_request_pause_body(http_request_t *req, bool paused)
{
    if (req->body_paused == paused)
        return;
    req->body_paused = paused;
    /* Going on: parse what waits in the input, and read again. */
    if (!paused && req->conn)
        conn_process(req->conn);
}

size_t http_request_unsent(const http_request_t *req)
{
    return req->conn ? conn_unsent(req->conn) : 0;
}

bool http_request_cut_short(const http_request_t *req)
{
    http_conn_t *conn = req->conn ? req->conn : req->arriving_on;
    if (!conn || conn->closing)
        return true;
    if (req->body_chunked)
        return false; /* how much is still to come is not known */
    uv_os_fd_t fd;
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    int queued = 0;
    if (uv_fileno((const uv_handle_t *)&conn->tcp, &fd) < 0 ||
        getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 || ioctl(fd, FIONREAD, &queued) < 0)
        return false;
    /* CLOSE_WAIT: the client's FIN has arrived, whether or not the loop
     * has read up to it yet; CLOSE: it reset the connection. */
    bool closed = conn->eof || ti.tcpi_state == TCP_CLOSE_WAIT || ti.tcpi_state == TCP_CLOSE;
    uint64_t have = req->body.len + (conn->in.len - conn->in_off) + (uint64_t)queued;
    return closed && have < req->content_length;
}

/* ---- accepting ---------------------------------------------------------- */

/* Counts the connection against its client's bound; false when over. */
static bool conn_count_peer(http_conn_t *conn)
{
    http_server_t *srv = conn->srv;
    unsigned cap = srv->config.max_connections_per_client;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (!cap || uv_tcp_getpeername(&conn->tcp, (struct sockaddr *)&ss, &len) < 0 ||
        http__peer_addr_from(&conn->peer, (struct sockaddr *)&ss) < 0)
        return true;
    conn->peer_counted = true;
    unsigned open = http__peers_add(&srv->peers, &conn->peer);
    if (open <= cap)
        return true;
    /* Refused: it is closing, and must not keep its client's next
     * connection out. */
    http__peers_remove(&srv->peers, &conn->peer);
    conn->peer_counted = false;
    /* One line now and then, not one per refused connection: a client
     * that keeps connecting must not flood the log either. */
    srv->cap_unlogged++;
    uint64_t now = clock_mono_ns();
    if (!srv->cap_logged_ns || now - srv->cap_logged_ns >= CAP_LOG_INTERVAL_NS) {
        char ip[64];
        http__peer_addr_format(&conn->peer, ip, sizeof ip);
        log_warn("http",
                 "refusing connections from %s: it has %u open, the most one client may have "
                 "(%u refused since the last such message)",
                 ip, open - 1, srv->cap_unlogged);
        srv->cap_logged_ns = now;
        srv->cap_unlogged = 0;
    }
    return false;
}

static void on_connection(uv_stream_t *listener, int status)
{
    http_server_t *srv = listener->data;
    if (status < 0) {
        log_warn("http", "accept failed: %s", uv_strerror(status));
        return;
    }
    http_conn_t *conn = xcalloc(1, sizeof *conn);
    conn->srv = srv;
    buf_init(&conn->in, 0);
    buf_init(&conn->out, 0);
    uv_tcp_init(srv->loop, &conn->tcp);
    uv_timer_init(srv->loop, &conn->timer);
    conn->tcp.data = conn;
    conn->timer.data = conn;
    conn->open_handles = 2;
    http_reader_init(&conn->reader, reader_on_head, reader_on_continue, conn);
    conn->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = conn;
    srv->conns = conn;
    srv->nconns++;

    if (uv_accept(listener, (uv_stream_t *)&conn->tcp) < 0) {
        conn_close(conn);
        return;
    }
    uv_tcp_nodelay(&conn->tcp, 1);
    /* A refused connection is still read from, briefly, so its client can
     * send its request and then read the refusal. */
    conn_set_reading(conn, true);
    if (srv->shutting_down) {
        count_refusal(srv, "shutting_down");
        conn_write_error(conn, 503, "the server is shutting down", "");
        return;
    }
    if (!conn_count_peer(conn)) {
        count_refusal(srv, "client_connections");
        conn_write_error(conn, 429,
                         "too many connections from your address; close some and try again",
                         "Retry-After: 1\r\n");
        return;
    }
    /* Refused connections linger a moment before they close; they do not
     * count here, or a client refused by the bound above would take the
     * slots of everyone else meanwhile. */
    if (srv->nadmitted >= srv->config.max_connections) {
        count_refusal(srv, "max_connections");
        conn_write_error(conn, 503, "too many connections; try again later", "");
        return;
    }
    conn->admitted = true;
    srv->nadmitted++;
    /* Until its first request has arrived whole, a connection has the
     * short header deadline: idle connections nobody uses must not hold
     * slots for the long keep-alive time. */
    conn_set_timer(conn, TIMER_HEAD);
}

static int parse_ip(const char *host, int port, struct sockaddr_storage *ss)
{
    char h[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof h) {
        memcpy(h, host + 1, n - 2);
        h[n - 2] = '\0';
        host = h;
    }
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    return -EINVAL;
}

static http_server_t *server_new(uv_loop_t *loop, const http_server_config_t *config,
                                 const http_router_t *router, void *ud)
{
    metrics_init_once();
    http_server_t *srv = xcalloc(1, sizeof *srv);
    srv->loop = loop;
    srv->config = *config;
    srv->router = router;
    srv->ud = ud;
    http_server_set_metrics(srv, true);
    uv_tcp_init(loop, &srv->listener);
    srv->listener.data = srv;
    uv_timer_init(loop, &srv->grace_timer);
    srv->grace_timer.data = srv;
    uv_check_init(loop, &srv->flusher);
    srv->flusher.data = srv;
    uv_check_start(&srv->flusher, on_flush);
    uv_unref((uv_handle_t *)&srv->flusher);
    uv_idle_init(loop, &srv->flush_soon);
    srv->flush_soon.data = srv;
    uv_idle_init(loop, &srv->resumer);
    srv->resumer.data = srv;
    http__peers_init(&srv->peers);
    return srv;
}

static void on_abandoned_handle_closed(uv_handle_t *h)
{
    http_server_t *srv = h->data;
    if (--srv->closing_handles == 0) {
        http__peers_release(&srv->peers);
        free(srv);
    }
}

/* Frees a server whose listener never started, through the loop (its
 * handles must be closed before the memory goes). */
static void server_abandon(http_server_t *srv)
{
    srv->shutting_down = true;
    srv->closing_handles = 5;
    uv_close((uv_handle_t *)&srv->listener, on_abandoned_handle_closed);
    uv_close((uv_handle_t *)&srv->grace_timer, on_abandoned_handle_closed);
    uv_close((uv_handle_t *)&srv->flusher, on_abandoned_handle_closed);
    uv_close((uv_handle_t *)&srv->flush_soon, on_abandoned_handle_closed);
    uv_close((uv_handle_t *)&srv->resumer, on_abandoned_handle_closed);
}

int http_server_listen(uv_loop_t *loop, const char *host, int port,
                       const http_server_config_t *config, const http_router_t *router,
                       http_server_t **out, mf_error_t *err)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (parse_ip(host, port, &ss) < 0)
        return mf_error_set(err, 0, "cannot listen on %s:%d: not an IP address", host, port);

    http_server_t *srv = server_new(loop, config, router, NULL);
    int r = uv_tcp_bind(&srv->listener, (struct sockaddr *)&ss, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&srv->listener, 511, on_connection);
    if (r < 0) {
        mf_error_set(err, 0, "cannot listen on %s:%d: %s", host, port,
                     r == UV_EADDRINUSE ? "address already in use" : uv_strerror(r));
        server_abandon(srv);
        return r == UV_EADDRINUSE ? -EADDRINUSE : -EINVAL;
    }
    *out = srv;
    return 0;
}

int http_server_open_fd(uv_loop_t *loop, int fd, const http_server_config_t *config,
                        const http_router_t *router, void *ud, http_server_t **out,
                        mf_error_t *err)
{
    http_server_t *srv = server_new(loop, config, router, ud);
    int r = uv_tcp_open(&srv->listener, fd);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&srv->listener, 128, on_connection);
    if (r < 0) {
        server_abandon(srv);
        return mf_error_set(err, -r, "serve on descriptor %d", fd);
    }
    *out = srv;
    return 0;
}

void *http_request_server_data(const http_request_t *req)
{
    return req->server_data;
}

void http_server_set_metrics(http_server_t *srv, bool on)
{
    if (srv->metrics == on)
        return;
    srv->metrics = on;
    if (on) {
        srv->metrics_next = metric_servers;
        metric_servers = srv;
        return;
    }
    for (http_server_t **pp = &metric_servers; *pp; pp = &(*pp)->metrics_next)
        if (*pp == srv) {
            *pp = srv->metrics_next;
            break;
        }
}

int http_server_sockname(http_server_t *srv, struct sockaddr_storage *out)
{
    int len = sizeof *out;
    return uv_tcp_getsockname(&srv->listener, (struct sockaddr *)out, &len);
}

void http_server_address(http_server_t *srv, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char ip[INET6_ADDRSTRLEN];
    if (uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &len) < 0) {
        snprintf(out, outlen, "?");
        return;
    }
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, ip, sizeof ip);
        snprintf(out, outlen, "[%s]:%d", ip, ntohs(a->sin6_port));
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        uv_ip4_name(a, ip, sizeof ip);
        snprintf(out, outlen, "%s:%d", ip, ntohs(a->sin_port));
    }
}

static void on_grace_closed(uv_handle_t *h)
{
    http_server_t *srv = h->data;
    if (--srv->closing_handles > 0)
        return;
    if (srv->done) {
        void (*done)(void *) = srv->done;
        srv->done = NULL;
        done(srv->done_ud);
    }
}

/* The last step of a shutdown: every connection and the listener are gone. */
static void maybe_finish_shutdown(http_server_t *srv)
{
    if (!srv->shutting_down || srv->nconns || !srv->listener_closed)
        return;
    if (!uv_is_closing((uv_handle_t *)&srv->grace_timer)) {
        srv->closing_handles = 4;
        uv_close((uv_handle_t *)&srv->grace_timer, on_grace_closed);
        uv_close((uv_handle_t *)&srv->flusher, on_grace_closed);
        uv_close((uv_handle_t *)&srv->flush_soon, on_grace_closed);
        uv_close((uv_handle_t *)&srv->resumer, on_grace_closed);
    }
}

static void on_listener_closed(uv_handle_t *h)
{
    http_server_t *srv = h->data;
    srv->listener_closed = true;
    maybe_finish_shutdown(srv);
}

static void on_grace_over(uv_timer_t *t)
{
    http_server_t *srv = t->data;
    if (srv->nconns)
        log_warn("http", "closing %u connection(s) still busy after the grace period",
                 srv->nconns);
    for (http_conn_t *c = srv->conns, *next; c; c = next) {
        next = c->next;
        conn_close(c);
    }
}

void http_server_shutdown(http_server_t *srv, void (*done)(void *ud), void *ud)
{
    if (srv->shutting_down)
        return;
    srv->shutting_down = true;
    srv->done = done;
    srv->done_ud = ud;
    for (http_conn_t *c = srv->conns, *next; c; c = next) {
        next = c->next;
        if (!c->active) {
            conn_close(c);
        } else if (c->active->streaming && c->active->abort_cb) {
            /* A stream (log following) has no natural end: end it now. */
            c->active->abort_cb(c->active);
        }
    }
    uv_timer_start(&srv->grace_timer, on_grace_over, srv->config.shutdown_grace_ms, 0);
    uv_unref((uv_handle_t *)&srv->grace_timer);
    uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
}

void http_server_free(http_server_t *srv)
{
    /* Only after the shutdown's done callback: every handle is closed. */
    if (srv) {
        http_server_set_metrics(srv, false);
        http__peers_release(&srv->peers);
    }
    free(srv);
}
