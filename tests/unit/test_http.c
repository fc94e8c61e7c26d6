/* The HTTP request reader and the router: what a client's bytes turn into,
 * and the errors bad bytes get. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/request.h"
#include "http/router.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_pipelined_in_order),
        cmocka_unit_test(test_chunked_body_split_reads),
        cmocka_unit_test(test_bad_input_statuses),
        cmocka_unit_test(test_router_statuses),
        cmocka_unit_test(test_router_allow_lists_methods),
        cmocka_unit_test(test_percent_decode),
    };
    return cmocka_run_group_tests_name("http", tests, setup, teardown);
}
