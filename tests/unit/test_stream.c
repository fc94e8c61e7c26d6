/* Response streaming's parsers and encoders: AWS's event-stream framing
 * (checked against a decoder written here from the format's description
 * and against the format's published empty message), the reader's
 * streamed bodies and trailers, and Lambda's HTTP-integration prelude. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/eventstream.h"
#include "exec/exec.h"
#include "http/request.h"
#include "http/server.h"

/* ---- event stream ----------------------------------------------------------- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A bitwise CRC-32 (reflected, polynomial 0xEDB88320), independent of the
 * table the encoder uses. */
static uint32_t slow_crc32(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

typedef struct decoded {
    char names[8][64], values[8][256];
    size_t nheaders;
    const unsigned char *payload;
    size_t payload_len;
} decoded_t;

/* Decodes one message at p, checking both CRCs; returns its length. */
static size_t decode(const unsigned char *p, size_t n, decoded_t *d)
{
    assert_true(n >= 16);
    uint32_t total = be32(p), hlen = be32(p + 4);
    assert_true(total <= n);
    assert_int_equal(be32(p + 8), slow_crc32(p, 8));
    assert_int_equal(be32(p + total - 4), slow_crc32(p, total - 4));
    memset(d, 0, sizeof *d);
    const unsigned char *h = p + 12, *end = h + hlen;
    while (h < end) {
        size_t nl = *h++;
        assert_true(d->nheaders < 8 && nl < 64);
        memcpy(d->names[d->nheaders], h, nl);
        h += nl;
        assert_int_equal(*h++, 7); /* a string */
        size_t vl = (size_t)h[0] << 8 | h[1];
        h += 2;
        assert_true(vl < 256);
        memcpy(d->values[d->nheaders], h, vl);
        h += vl;
        d->nheaders++;
    }
    assert_ptr_equal(h, end);
    d->payload = end;
    d->payload_len = total - 16 - hlen;
    return total;
}

static const char *header(const decoded_t *d, const char *name)
{
    for (size_t i = 0; i < d->nheaders; i++)
        if (!strcmp(d->names[i], name))
            return d->values[i];
    return NULL;
}

static void test_crc32_check_value(void **state)
{
    assert_int_equal(eventstream_crc32(0, "123456789", 9), 0xcbf43926u);
    /* In two pieces, continued. */
    assert_int_equal(eventstream_crc32(eventstream_crc32(0, "1234", 4), "56789", 5), 0xcbf43926u);
}

static void test_empty_message_is_the_published_one(void **state)
{
    /* The event-stream format's test vector "empty_message". */
    static const unsigned char want[] = {0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00,
                                         0x05, 0xc2, 0x48, 0xeb, 0x7d, 0x98, 0xc8, 0xff};
    buf_t b = BUF_INIT;
    eventstream_message(&b, NULL, 0, NULL, 0);
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    buf_release(&b);
}

static void test_events_carry_their_headers_and_payload(void **state)
{
    buf_t b = BUF_INIT;
    eventstream_event(&b, "PayloadChunk", "application/octet-stream", "chunk 0\n\0x", 10);
    eventstream_event(&b, "InvokeComplete", "application/json", "{}", 2);
    decoded_t d;
    size_t first = decode((const unsigned char *)b.data, b.len, &d);
    assert_string_equal(header(&d, ":event-type"), "PayloadChunk");
    assert_string_equal(header(&d, ":message-type"), "event");
    assert_string_equal(header(&d, ":content-type"), "application/octet-stream");
    assert_int_equal(d.payload_len, 10);
    assert_memory_equal(d.payload, "chunk 0\n\0x", 10);
    size_t second = decode((const unsigned char *)b.data + first, b.len - first, &d);
    assert_int_equal(first + second, b.len);
    assert_string_equal(header(&d, ":event-type"), "InvokeComplete");
    assert_int_equal(d.payload_len, 2);
    buf_release(&b);
}

static void test_a_large_payload_keeps_its_length(void **state)
{
    size_t n = 300 * 1024;
    char *big = malloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)(i * 7);
    buf_t b = BUF_INIT;
    eventstream_event(&b, "PayloadChunk", "application/octet-stream", big, n);
    decoded_t d;
    assert_int_equal(decode((const unsigned char *)b.data, b.len, &d), b.len);
    assert_int_equal(d.payload_len, n);
    assert_memory_equal(d.payload, big, n);
    free(big);
    buf_release(&b);
}

/* ---- the reader: streamed bodies and trailers ------------------------------------ */

static int stream_head(void *ud, http_request_t *req, size_t *body_limit)
{
    *body_limit = 4; /* tiny: a streamed body is not bound by it */
    if (!strcmp(req->path, "/stream"))
        http_request_stream_body(req);
    return 0;
}

static void test_a_streamed_body_comes_in_pieces_with_its_trailers(void **state)
{
    static const char in[] =
        "POST /stream HTTP/1.1\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
        "6\r\nchunk \r\n"
        "a\r\n0123456789\r\n"
        "0\r\nLambda-Runtime-Function-Error-Type: ValueError\r\n"
        "Content-Type: overridden?\r\n\r\n";
    http_reader_t r;
    http_reader_init(&r, stream_head, NULL, NULL);
    buf_t seen = BUF_INIT;
    http_request_t *req = NULL;
    /* A byte at a time: each piece is taken as it comes. */
    for (size_t i = 0; i < sizeof in - 1 && !req; i++) {
        size_t used = 0;
        http_reader_result_t res = http_reader_feed(&r, in + i, 1, &used);
        assert_int_not_equal(res, HTTP_READER_ERROR);
        assert_int_equal(used, 1);
        http_request_t *cur = r.cur ? r.cur : r.ready;
        if (cur && cur->body_streamed) {
            buf_add(&seen, cur->body.data, cur->body.len);
            buf_reset(&cur->body);
        }
        if (res == HTTP_READER_REQUEST)
            req = http_reader_take(&r);
    }
    assert_non_null(req);
    assert_true(req->body_done);
    assert_string_equal(seen.data, "chunk 0123456789");
    assert_int_equal(req->body_received, 16);
    assert_string_equal(http_request_trailer(req, "Lambda-Runtime-Function-Error-Type"),
                        "ValueError");
    /* A trailer never stands in for a header, nor a header for a trailer. */
    assert_string_equal(http_request_header(req, "Content-Type"), "text/plain");
    assert_string_equal(http_request_trailer(req, "Content-Type"), "overridden?");
    assert_null(http_request_header(req, "Lambda-Runtime-Function-Error-Type"));
    assert_null(http_request_trailer(req, "Transfer-Encoding"));
    http_request_free(req);
    http_reader_release(&r);
    buf_release(&seen);
}

static void test_a_body_not_streamed_keeps_its_limit(void **state)
{
    static const char in[] = "POST /whole HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "6\r\ntoo long\r\n0\r\n\r\n";
    http_reader_t r;
    http_reader_init(&r, stream_head, NULL, NULL);
    size_t used;
    assert_int_equal(http_reader_feed(&r, in, sizeof in - 1, &used), HTTP_READER_ERROR);
    assert_int_equal(r.error_status, 413);
    http_reader_release(&r);
}

static void test_trailers_have_a_bound_of_their_own(void **state)
{
    buf_t in = BUF_INIT;
    buf_adds(&in, "POST /stream HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n");
    buf_adds(&in, "Big: ");
    for (int i = 0; i < 17 * 1024; i++)
        buf_addch(&in, 'a');
    buf_adds(&in, "\r\n\r\n");
    http_reader_t r;
    http_reader_init(&r, stream_head, NULL, NULL);
    size_t used;
    assert_int_equal(http_reader_feed(&r, in.data, in.len, &used), HTTP_READER_ERROR);
    assert_int_equal(r.error_status, 431);
    assert_non_null(strstr(r.error_message, "trailers"));
    http_reader_release(&r);
    buf_release(&in);
}

/* ---- the HTTP-integration prelude ------------------------------------------------- */

static const char NULS[8] = {0};

static void test_prelude_gives_status_headers_and_cookies(void **state)
{
    buf_t in = BUF_INIT;
    buf_adds(&in, "{\"statusCode\":201,\"headers\":{\"Content-Type\":\"text/csv\",\"X-A\":\"1\"},"
                  "\"cookies\":[\"a=1\",\"b=2; Path=/\"]}");
    buf_add(&in, NULS, 8);
    buf_adds(&in, "the body");
    /* Whole, and a byte at a time: the same. */
    for (int split = 0; split < 2; split++) {
        exec_prelude_t p;
        exec_prelude_init(&p);
        mf_error_t err = MF_ERROR_INIT;
        size_t off = 0;
        while (!p.done) {
            size_t len = split ? 1 : in.len;
            long n = exec_prelude_feed(&p, in.data + off, len, &err);
            assert_true(n >= 0);
            off += (size_t)n;
        }
        assert_int_equal(in.len - off, 8);
        assert_memory_equal(in.data + off, "the body", 8);
        assert_int_equal(p.status, 201);
        assert_string_equal(p.header_lines.data, "Content-Type: text/csv\r\nX-A: 1\r\n"
                                                 "Set-Cookie: a=1\r\nSet-Cookie: b=2; Path=/\r\n");
        exec_prelude_release(&p);
    }
    buf_release(&in);
}

static void test_an_empty_prelude_means_200(void **state)
{
    exec_prelude_t p;
    exec_prelude_init(&p);
    mf_error_t err = MF_ERROR_INIT;
    char in[10] = "{}";
    memcpy(in + 2, NULS, 8);
    assert_int_equal(exec_prelude_feed(&p, in, 10, &err), 10);
    assert_true(p.done);
    assert_int_equal(p.status, 200);
    assert_int_equal(p.header_lines.len, 0);
    exec_prelude_release(&p);
}

static void expect_refused(const char *json, int code, const char *mention)
{
    exec_prelude_t p;
    exec_prelude_init(&p);
    mf_error_t err = MF_ERROR_INIT;
    buf_t in = BUF_INIT;
    buf_adds(&in, json);
    buf_add(&in, NULS, 8);
    long n = exec_prelude_feed(&p, in.data, in.len, &err);
    if (n != -code || !strstr(err.msg, mention))
        fail_msg("%s: got %ld `%s`, wanted -%d mentioning `%s`", json, n, err.msg, code, mention);
    assert_false(p.done);
    exec_prelude_release(&p);
    buf_release(&in);
}

static void test_bad_preludes_are_refused_naming_the_problem(void **state)
{
    expect_refused("not json", EINVAL, "not JSON");
    expect_refused("[1]", EINVAL, "object");
    expect_refused("{\"statusCode\":99}", EINVAL, "statusCode");
    expect_refused("{\"statusCode\":\"200\"}", EINVAL, "statusCode");
    expect_refused("{\"headers\":[]}", EINVAL, "headers");
    expect_refused("{\"headers\":{\"Bad Name\":\"x\"}}", EINVAL, "Bad Name");
    expect_refused("{\"headers\":{\"X\":\"a\\r\\nInjected: 1\"}}", EINVAL, "headers.X");
    /* (jansson itself refuses an escaped NUL.) */
    expect_refused("{\"headers\":{\"X\":\"a\\u0000b\"}}", EINVAL, "not JSON");
    expect_refused("{\"headers\":{\"X\":1}}", EINVAL, "headers.X");
    expect_refused("{\"cookies\":\"a=1\"}", EINVAL, "cookies");
    expect_refused("{\"cookies\":[\"a\\nb\"]}", EINVAL, "cookies[0]");
}

static void test_a_prelude_without_its_eight_nuls_or_too_long_is_refused(void **state)
{
    exec_prelude_t p;
    exec_prelude_init(&p);
    mf_error_t err = MF_ERROR_INIT;
    static const char in[] = "{}\0\0\0x";
    assert_int_equal(exec_prelude_feed(&p, in, sizeof in - 1, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "eight NUL"));
    exec_prelude_release(&p);

    exec_prelude_init(&p);
    char *big = malloc(EXEC_PRELUDE_MAX + 2);
    memset(big, ' ', EXEC_PRELUDE_MAX + 2);
    assert_int_equal(exec_prelude_feed(&p, big, EXEC_PRELUDE_MAX, &err), EXEC_PRELUDE_MAX);
    assert_int_equal(exec_prelude_feed(&p, big, 2, &err), -EFBIG);
    free(big);
    exec_prelude_release(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32_check_value),
        cmocka_unit_test(test_empty_message_is_the_published_one),
        cmocka_unit_test(test_events_carry_their_headers_and_payload),
        cmocka_unit_test(test_a_large_payload_keeps_its_length),
        cmocka_unit_test(test_a_streamed_body_comes_in_pieces_with_its_trailers),
        cmocka_unit_test(test_a_body_not_streamed_keeps_its_limit),
        cmocka_unit_test(test_trailers_have_a_bound_of_their_own),
        cmocka_unit_test(test_prelude_gives_status_headers_and_cookies),
        cmocka_unit_test(test_an_empty_prelude_means_200),
        cmocka_unit_test(test_bad_preludes_are_refused_naming_the_problem),
        cmocka_unit_test(test_a_prelude_without_its_eight_nuls_or_too_long_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
