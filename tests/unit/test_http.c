/* The HTTP request reader and the router: what a client's bytes turn into,
 * and the errors bad bytes get. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/request.h"
#include "http/router.h"
#include "http/server.h"
#include "obs/metrics.h"

static void noop(http_request_t *req, void *ud)
{
}

static http_router_t router;

static int on_head(void *ud, http_request_t *req, size_t *body_limit)
{
    buf_t allow = BUF_INIT;
    req->route_status = http_router_match(&router, req, &allow);
    buf_release(&allow);
    *body_limit = req->route ? req->route->max_body : 0;
    return 0;
}

static int setup(void **state)
{
    http_router_init(&router);
    http_router_add(&router, HTTP_GET, "/healthz", noop, NULL, 0);
    http_router_add(&router, HTTP_GET, "/v1/functions", noop, NULL, 0);
    http_router_add(&router, HTTP_PUT, "/v1/functions/{name}", noop, NULL, 100);
    http_router_add(&router, HTTP_GET, "/v1/functions/{name}", noop, NULL, 0);
    http_router_add(&router, HTTP_POST, "/v1/functions/{name}/invoke", noop, NULL, 1000);
    return 0;
}

static int teardown(void **state)
{
    http_router_release(&router);
    return 0;
}

/* Feeds the whole input and collects requests until the input is used up
 * or the reader fails; returns the last result. */
static http_reader_result_t feed_all(http_reader_t *r, const char *in, size_t len,
                                     http_request_t **reqs, size_t *nreqs)
{
    size_t off = 0;
    http_reader_result_t res = HTTP_READER_MORE;
    *nreqs = 0;
    while (off < len) {
        size_t used = 0;
        res = http_reader_feed(r, in + off, len - off, &used);
        off += used;
        if (res == HTTP_READER_ERROR)
            return res;
        if (res == HTTP_READER_REQUEST)
            reqs[(*nreqs)++] = http_reader_take(r);
        else if (used == 0)
            break;
    }
    return res;
}

static void free_all(http_request_t **reqs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        http_request_free(reqs[i]);
}

static void test_simple_get(void **state)
{
    http_reader_t r;
    http_reader_init(&r, on_head, NULL, NULL);
    const char in[] = "GET /v1/functions/hello?limit=5&x=a%20b HTTP/1.1\r\nHost: h\r\nX-Y: z\r\n\r\n";
    http_request_t *reqs[4];
    size_t n;
    feed_all(&r, in, sizeof in - 1, reqs, &n);
    assert_int_equal(n, 1);
    assert_int_equal(reqs[0]->method, HTTP_GET);
    assert_string_equal(reqs[0]->path, "/v1/functions/hello");
    assert_string_equal(reqs[0]->params[0], "hello");
    assert_string_equal(http_request_header(reqs[0], "x-y"), "z");
    assert_null(http_request_header(reqs[0], "absent"));
    buf_t q = BUF_INIT;
    assert_true(http_request_query(reqs[0], "x", &q));
    assert_string_equal(q.data, "a b");
    assert_true(http_request_query(reqs[0], "limit", &q));
    assert_string_equal(q.data, "5");
    assert_false(http_request_query(reqs[0], "lim", &q));
    buf_release(&q);
    assert_true(reqs[0]->keep_alive);
    free_all(reqs, n);
    http_reader_release(&r);
}

/* Headers of the shapes http_header_add writes without printf come out as
 * printf would write them, and any other shape still goes through it. */
static void test_header_add_shapes(void **state)
{
    http_reader_t r;
    http_reader_init(&r, on_head, NULL, NULL);
    const char in[] = "GET /v1/functions/hello HTTP/1.1\r\nHost: h\r\n\r\n";
    http_request_t *reqs[4];
    size_t n;
    feed_all(&r, in, sizeof in - 1, reqs, &n);
    assert_int_equal(n, 1);
    http_request_t *req = reqs[0];
    http_header_add(req, "A", "%s", "text");
    http_header_add(req, "B", "%d", -5);
    http_header_add(req, "C", "%lld", LLONG_MIN);
    http_header_add(req, "D", "%llu", ULLONG_MAX);
    http_header_add(req, "E", "%.3f", 1.5);
    http_header_add(req, "F", "1");
    http_header_add(req, "G", "arn:%s:%d", "x", 7);
    assert_string_equal(req->resp_headers.data,
                        "A: text\r\nB: -5\r\nC: -9223372036854775808\r\n"
                        "D: 18446744073709551615\r\nE: 1.500\r\nF: 1\r\nG: arn:x:7\r\n");
    free_all(reqs, n);
    http_reader_release(&r);
}

static void test_pipelined_in_order(void **state)
{
    http_reader_t r;
    http_reader_init(&r, on_head, NULL, NULL);
    const char in[] = "GET /healthz HTTP/1.1\r\n\r\n"
                      "PUT /v1/functions/a HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"
                      "GET /v1/functions HTTP/1.1\r\nConnection: close\r\n\r\n";
    http_request_t *reqs[4];
    size_t n;
    feed_all(&r, in, sizeof in - 1, reqs, &n);
    assert_int_equal(n, 3);
    assert_string_equal(reqs[0]->path, "/healthz");
    assert_string_equal(reqs[1]->path, "/v1/functions/a");
    assert_int_equal(reqs[1]->body.len, 2);
    assert_string_equal(reqs[2]->path, "/v1/functions");
    assert_false(reqs[2]->keep_alive);
    free_all(reqs, n);
    http_reader_release(&r);
}

static void test_chunked_body_split_reads(void **state)
{
    http_reader_t r;
    http_reader_init(&r, on_head, NULL, NULL);
    const char in[] = "POST /v1/functions/f/invoke HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    /* One byte at a time: a request split anywhere must come out whole. */
    http_request_t *req = NULL;
    for (size_t i = 0; i < sizeof in - 1; i++) {
        size_t used;
        http_reader_result_t res = http_reader_feed(&r, in + i, 1, &used);
        assert_int_not_equal(res, HTTP_READER_ERROR);
        if (res == HTTP_READER_REQUEST)
            req = http_reader_take(&r);
    }
    assert_non_null(req);
    assert_string_equal(req->body.data, "hello world");
    http_request_free(req);
    http_reader_release(&r);
}

static void expect_error(const char *in, size_t len, int status)
{
    http_reader_t r;
    http_reader_init(&r, on_head, NULL, NULL);
    http_request_t *reqs[4];
    size_t n;
    http_reader_result_t res = feed_all(&r, in, len, reqs, &n);
    assert_int_equal(res, HTTP_READER_ERROR);
    assert_int_equal(r.error_status, status);
    assert_non_null(r.error_message);
    free_all(reqs, n);
    http_reader_release(&r);
}

static void test_bad_input_statuses(void **state)
{
    const char garbage[] = "\x00\x01GARBAGE\r\n\r\n";
    expect_error(garbage, sizeof garbage - 1, 400);

    buf_t big = BUF_INIT;
    buf_adds(&big, "GET / HTTP/1.1\r\nX-Big: ");
    for (int i = 0; i < 17 * 1024; i++)
        buf_addch(&big, 'a');
    buf_adds(&big, "\r\n\r\n");
    expect_error(big.data, big.len, 431);

    buf_reset(&big);
    buf_adds(&big, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 101; i++)
        buf_addf(&big, "X-%d: v\r\n", i);
    buf_adds(&big, "\r\n");
    expect_error(big.data, big.len, 431);
    buf_release(&big);

    /* PUT allows 100 bytes: a larger Content-Length is refused before the
     * body is read, and so is a chunked body that grows past it. */
    const char too_long[] = "PUT /v1/functions/a HTTP/1.1\r\nContent-Length: 101\r\n\r\n";
    expect_error(too_long, sizeof too_long - 1, 413);
    buf_t chunked = BUF_INIT;
    buf_adds(&chunked, "PUT /v1/functions/a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 30; i++)
        buf_adds(&chunked, "5\r\nhello\r\n");
    expect_error(chunked.data, chunked.len, 413);
    buf_release(&chunked);

    const char relative[] = "GET healthz HTTP/1.1\r\n\r\n";
    expect_error(relative, sizeof relative - 1, 400);
}

static void test_router_statuses(void **state)
{
    http_reader_t r;
    http_reader_init(&r, on_head, NULL, NULL);
    const char in[] = "DELETE /healthz HTTP/1.1\r\n\r\n"
                      "GET /nope HTTP/1.1\r\n\r\n"
                      "GET /v1/functions/a%2Fb HTTP/1.1\r\n\r\n"
                      "GET /v1/functions/a%zz HTTP/1.1\r\n\r\n"
                      "GET /v1/functions/ HTTP/1.1\r\n\r\n"
                      "GET /v1/functions/with%20space HTTP/1.1\r\n\r\n";
    http_request_t *reqs[8];
    size_t n;
    feed_all(&r, in, sizeof in - 1, reqs, &n);
    assert_int_equal(n, 6);
    assert_int_equal(reqs[0]->route_status, 405);
    assert_int_equal(reqs[1]->route_status, 404);
    assert_int_equal(reqs[2]->route_status, 400); /* an escaped '/' is no name */
    assert_int_equal(reqs[3]->route_status, 400);
    assert_int_equal(reqs[4]->route_status, 404);
    assert_int_equal(reqs[5]->route_status, 0);
    assert_string_equal(reqs[5]->params[0], "with space");
    free_all(reqs, n);
    http_reader_release(&r);
}

static void test_router_allow_lists_methods(void **state)
{
    http_request_t req = { 0 };
    req.method = HTTP_DELETE;
    req.path = "/v1/functions/x/invoke";
    buf_t allow = BUF_INIT;
    assert_int_equal(http_router_match(&router, &req, &allow), 405);
    assert_string_equal(allow.data, "POST");
    buf_release(&allow);
    req.method = HTTP_POST;
    assert_int_equal(http_router_match(&router, &req, NULL), 0);
    assert_string_equal(req.params[0], "x");
    free(req.params[0]);
}

/* A parameter named {x*} may hold an escaped '/'; a literal segment
 * added before it wins over it. */
static void test_router_slash_parameter_and_literal_first(void **state)
{
    http_router_t rt;
    http_router_init(&rt);
    http_router_add(&rt, HTTP_GET, "/kv/{store}/_stats", noop, NULL, 0);
    http_router_add(&rt, HTTP_GET, "/kv/{store}/{key*}", noop, NULL, 0);
    http_router_add(&rt, HTTP_POST, "/kv/{store}/{key*}/incr", noop, NULL, 0);
    http_request_t req = { 0 };
    req.method = HTTP_GET;
    req.path = "/kv/s/a%2Fb%2F";
    assert_int_equal(http_router_match(&rt, &req, NULL), 0);
    assert_string_equal(req.params[1], "a/b/");
    assert_string_equal(req.route->pattern, "/kv/{store}/{key*}");
    for (size_t i = 0; i < req.nparams; i++)
        free(req.params[i]);
    req = (http_request_t){ .method = HTTP_GET, .path = "/kv/s/_stats" };
    assert_int_equal(http_router_match(&rt, &req, NULL), 0);
    assert_string_equal(req.route->pattern, "/kv/{store}/_stats");
    free(req.params[0]);
    /* The store is a plain parameter: no slash in it. */
    req = (http_request_t){ .method = HTTP_GET, .path = "/kv/a%2Fb/k" };
    assert_int_equal(http_router_match(&rt, &req, NULL), 400);
    for (size_t i = 0; i < req.nparams; i++)
        free(req.params[i]);
    /* An unescaped '/' still separates segments. */
    req = (http_request_t){ .method = HTTP_POST, .path = "/kv/s/a%2Fincr/incr" };
    assert_int_equal(http_router_match(&rt, &req, NULL), 0);
    assert_string_equal(req.params[1], "a/incr");
    for (size_t i = 0; i < req.nparams; i++)
        free(req.params[i]);
    http_router_release(&rt);
}

/* A last parameter {x**} takes the rest of the path, slashes (plain and
 * escaped) and all; it is never empty, and "/c/" itself is its own route. */
static void test_router_rest_parameter(void **state)
{
    http_router_t rt;
    http_router_init(&rt);
    http_router_add(&rt, HTTP_GET, "/c/", noop, NULL, 0);
    http_router_add(&rt, HTTP_GET, "/c/{path**}", noop, NULL, 0);
    http_request_t req = { .method = HTTP_GET, .path = "/c/a/b%2Fc/d.js" };
    assert_int_equal(http_router_match(&rt, &req, NULL), 0);
    assert_string_equal(req.route->pattern, "/c/{path**}");
    assert_int_equal(req.nparams, 1);
    assert_string_equal(req.params[0], "a/b/c/d.js");
    free(req.params[0]);
    req = (http_request_t){ .method = HTTP_GET, .path = "/c/" };
    assert_int_equal(http_router_match(&rt, &req, NULL), 0);
    assert_string_equal(req.route->pattern, "/c/");
    assert_int_equal(req.nparams, 0);
    req = (http_request_t){ .method = HTTP_GET, .path = "/c/x%zz" };
    assert_int_equal(http_router_match(&rt, &req, NULL), 400);
    req = (http_request_t){ .method = HTTP_POST, .path = "/c/a/b" };
    assert_int_equal(http_router_match(&rt, &req, NULL), 405);
    req = (http_request_t){ .method = HTTP_GET, .path = "/d/a/b" };
    assert_int_equal(http_router_match(&rt, &req, NULL), 404);
    http_router_release(&rt);
}

static void test_percent_decode(void **state)
{
    buf_t b = BUF_INIT;
    assert_int_equal(http_percent_decode(&b, "a%41+b", 6, true), 0);
    assert_string_equal(b.data, "aA b");
    buf_reset(&b);
    assert_int_equal(http_percent_decode(&b, "%4", 2, false), -EINVAL);
    buf_reset(&b);
    assert_int_equal(http_percent_decode(&b, "%00", 3, false), -EINVAL);
    buf_release(&b);
}

/* ---- head checks ------------------------------------------------------------- */

typedef struct check_state {
    int refuse;            /* the status the check answers, 0 to pass */
    int checks;            /* times the check ran */
    int continues;         /* 100 Continue requests seen */
    int unhandled;         /* unhandled_cb calls */
    size_t body_seen;      /* the body's length when the check ran */
    size_t limit;
} check_state_t;

static check_state_t cs;

static void on_unhandled(http_request_t *req)
{
    cs.unhandled++;
    assert_ptr_equal(req->data, &cs);
}

/* What the server's on_head does: route, then the route's head check. */
static int on_head_checked(void *ud, http_request_t *req, size_t *body_limit)
{
    cs.checks++;
    cs.body_seen = req->body.len;
    *body_limit = cs.limit;
    if (cs.refuse)
        return cs.refuse;
    req->data = &cs;
    req->unhandled_cb = on_unhandled;
    return 0;
}

static void on_continue_count(void *ud, http_request_t *req)
{
    cs.continues++;
}

static void test_head_check_refuses_before_the_body(void **state)
{
    memset(&cs, 0, sizeof cs);
    cs.refuse = 401;
    cs.limit = 10;
    http_reader_t r;
    http_reader_init(&r, on_head_checked, on_continue_count, NULL);
    /* Credentials are judged before size: a body over the limit still
     * gets the check's 401, not 413, and none of it is consumed. */
    const char head[] = "PUT /v1/functions/a HTTP/1.1\r\nContent-Length: 1000\r\n"
                        "Expect: 100-continue\r\n\r\n";
    buf_t in = BUF_INIT;
    buf_adds(&in, head);
    for (int i = 0; i < 1000; i++)
        buf_addch(&in, 'x');
    size_t used = 0;
    assert_int_equal(http_reader_feed(&r, in.data, in.len, &used), HTTP_READER_ERROR);
    assert_int_equal(r.error_status, 401);
    assert_int_equal(cs.checks, 1);
    assert_int_equal(cs.body_seen, 0);
    assert_int_equal(cs.continues, 0); /* no 100 Continue for a refused request */
    assert_true(used <= sizeof head - 1);
    /* Once failed, the reader takes nothing more. */
    assert_int_equal(http_reader_feed(&r, in.data + used, in.len - used, &used),
                     HTTP_READER_ERROR);
    assert_int_equal(used, 0);
    http_reader_release(&r);
    assert_int_equal(cs.unhandled, 0); /* the refusing check took nothing */
    buf_release(&in);
}

static void test_body_limit_comes_after_a_passed_check(void **state)
{
    memset(&cs, 0, sizeof cs);
    cs.limit = 10;
    http_reader_t r;
    http_reader_init(&r, on_head_checked, on_continue_count, NULL);
    const char in[] = "PUT /v1/functions/a HTTP/1.1\r\nContent-Length: 11\r\n"
                      "Expect: 100-continue\r\n\r\nxxxxxxxxxxx";
    size_t used = 0;
    assert_int_equal(http_reader_feed(&r, in, sizeof in - 1, &used), HTTP_READER_ERROR);
    assert_int_equal(r.error_status, 413);
    assert_int_equal(cs.checks, 1);
    assert_int_equal(cs.continues, 0);
    /* The check passed and took something: the request dies unhandled, and
     * its route hears of it once, when the reader lets it go. */
    assert_int_equal(cs.unhandled, 0);
    http_reader_release(&r);
    assert_int_equal(cs.unhandled, 1);
}

static void test_unhandled_cb_on_a_request_cut_off_mid_body(void **state)
{
    memset(&cs, 0, sizeof cs);
    cs.limit = 100;
    http_reader_t r;
    http_reader_init(&r, on_head_checked, on_continue_count, NULL);
    const char in[] = "POST /v1/functions/f/invoke HTTP/1.1\r\nContent-Length: 50\r\n"
                      "Expect: 100-continue\r\n\r\nonly part";
    size_t used = 0;
    assert_int_equal(http_reader_feed(&r, in, sizeof in - 1, &used), HTTP_READER_MORE);
    assert_int_equal(cs.continues, 1);
    assert_true(http_reader_busy(&r));
    http_reader_release(&r); /* the client went away */
    assert_int_equal(cs.unhandled, 1);
}

static void test_unhandled_cb_not_called_once_handled(void **state)
{
    memset(&cs, 0, sizeof cs);
    cs.limit = 100;
    http_reader_t r;
    http_reader_init(&r, on_head_checked, NULL, NULL);
    const char in[] = "POST /v1/functions/f/invoke HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
                      "POST /v1/functions/f/invoke HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
    http_request_t *reqs[4];
    size_t n;
    feed_all(&r, in, sizeof in - 1, reqs, &n);
    assert_int_equal(n, 2);
    assert_int_equal(reqs[0]->content_length, 5);
    assert_false(reqs[0]->body_chunked);
    /* The first reaches its handler (the server clears the callback then);
     * the second is dropped unanswered. */
    reqs[0]->unhandled_cb = NULL;
    free_all(reqs, n);
    assert_int_equal(cs.unhandled, 1);
    http_reader_release(&r);
    assert_int_equal(cs.unhandled, 1);
}

/* ---- the server: turns -------------------------------------------------------- */

#define FLOOD 2000

typedef struct turn_state {
    unsigned a_count;      /* requests for /a handled */
    int a_at_b;            /* a_count when /b was handled, -1 before */
    bool done;
} turn_state_t;

static turn_state_t ts;

static void handle_a(http_request_t *req, void *ud)
{
    ts.a_count++;
    http_respond(req, 204, NULL, NULL, 0);
}

static void handle_b(http_request_t *req, void *ud)
{
    ts.a_at_b = (int)ts.a_count;
    http_respond(req, 204, NULL, NULL, 0);
}

static void on_server_done(void *ud)
{
    ts.done = true;
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Reads and drops what the server answered, without waiting. */
static void drain(int fd)
{
    char b[65536];
    while (recv(fd, b, sizeof b, MSG_DONTWAIT) > 0) {
    }
}

/* One connection pipelining thousands of requests, another sending one:
 * the one is answered after at most one turn's worth of the thousands.
 * Counted by the handlers themselves, so no clock takes part. */
static void test_pipelining_connection_yields_to_others(void **state)
{
    memset(&ts, 0, sizeof ts);
    ts.a_at_b = -1;
    uv_loop_t loop;
    uv_loop_init(&loop);
    http_router_t rt;
    http_router_init(&rt);
    http_router_add(&rt, HTTP_GET, "/a", handle_a, NULL, 0);
    http_router_add(&rt, HTTP_GET, "/b", handle_b, NULL, 0);
    http_server_config_t cfg = HTTP_SERVER_CONFIG_DEFAULT;
    http_server_t *srv = NULL;
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(http_server_listen(&loop, "127.0.0.1", 0, &cfg, &rt, &srv, &err), 0);
    char addr[64];
    http_server_address(srv, addr, sizeof addr);
    int port = atoi(strrchr(addr, ':') + 1);

    int a = connect_to(port), b = connect_to(port);
    /* Both connections accepted and being read before any request comes. */
    for (int i = 0; i < 10; i++)
        uv_run(&loop, UV_RUN_NOWAIT);

    /* A's flood is in the kernel before B's one request, so the server
     * sees A first; all of it fits one read. */
    static const char get_a[] = "GET /a HTTP/1.1\r\nHost: t\r\n\r\n";
    buf_t flood = BUF_INIT;
    for (int i = 0; i < FLOOD; i++)
        buf_add(&flood, get_a, sizeof get_a - 1);
    assert_true(flood.len < 64 * 1024);
    assert_int_equal(send(a, flood.data, flood.len, 0), (ssize_t)flood.len);
    static const char get_b[] = "GET /b HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_int_equal(send(b, get_b, sizeof get_b - 1, 0), (ssize_t)sizeof get_b - 1);
    buf_release(&flood);

    while (ts.a_at_b < 0 || ts.a_count < FLOOD) {
        uv_run(&loop, UV_RUN_ONCE);
        drain(a);
        drain(b);
    }
    /* B waited for one turn of A's at most, not for A's whole flood, and
     * none of A's requests was lost on the way. */
    assert_true(HTTP_REQUESTS_PER_TURN * 10 < FLOOD);
    assert_true(ts.a_at_b <= HTTP_REQUESTS_PER_TURN);
    assert_int_equal(ts.a_count, FLOOD);

    close(a);
    close(b);
    http_server_shutdown(srv, on_server_done, NULL);
    while (!ts.done)
        uv_run(&loop, UV_RUN_ONCE);
    http_server_free(srv);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    http_router_release(&rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_header_add_shapes),
        cmocka_unit_test(test_pipelined_in_order),
        cmocka_unit_test(test_chunked_body_split_reads),
        cmocka_unit_test(test_bad_input_statuses),
        cmocka_unit_test(test_router_statuses),
        cmocka_unit_test(test_router_allow_lists_methods),
        cmocka_unit_test(test_router_slash_parameter_and_literal_first),
        cmocka_unit_test(test_router_rest_parameter),
        cmocka_unit_test(test_percent_decode),
        cmocka_unit_test(test_head_check_refuses_before_the_body),
        cmocka_unit_test(test_body_limit_comes_after_a_passed_check),
        cmocka_unit_test(test_unhandled_cb_on_a_request_cut_off_mid_body),
        cmocka_unit_test(test_unhandled_cb_not_called_once_handled),
        cmocka_unit_test(test_pipelining_connection_yields_to_others),
    };
    int failed = cmocka_run_group_tests_name("http", tests, setup, teardown);
    metrics_free_all();
    return failed;
}
