/* Function URLs (src/trigger/url.h): the request → payload format 2.0
 * conversion, the result → HTTP answer mapping, CORS, and the settings
 * with their store table (durable, and gone with the function), on both
 * backends (store_backends.h). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/codec.h"
#include "core/json.h"
#include "trigger/url.h"

#include "store_backends.h"

static json_t *event_of(const char *method, const char *path, const char *query,
                        const http_header_t *h, size_t nh, const char *body, size_t body_len)
{
    url_request_t r = { .method = method, .raw_path = path, .raw_query = query, .headers = h,
                        .nheaders = nh, .body = body, .body_len = body_len,
                        .source_ip = "192.0.2.7", .domain_name = "fn.example",
                        .domain_prefix = "fn", .api_id = "fn", .account_id = "anonymous",
                        .request_id = "r-1", .time_ms = 1583348638390 };
    buf_t out = BUF_INIT;
    url_event_build(&out, &r);
    json_error_t jerr;
    json_t *doc = json_loadb(out.data, out.len, JSON_ALLOW_NUL, &jerr);
    if (!doc)
        fail_msg("not JSON (%s): %s", jerr.text, out.data);
    buf_release(&out);
    return doc;
}

static const char *str(json_t *doc, const char *path)
{
    /* "a.b.c" */
    char key[64];
    json_t *v = doc;
    while (*path && v) {
        size_t n = strcspn(path, ".");
        snprintf(key, sizeof key, "%.*s", (int)n, path);
        v = json_object_get(v, key);
        path += n + (path[n] == '.');
    }
    return json_string_value(v);
}

static void test_event_shape(void **state)
{
    http_header_t h[] = {
        { "Host", "fn.example:8700" },     { "X-Rep", "1" },      { "Cookie", "a=1; b=2" },
        { "x-rep", "2" },                  { "User-Agent", "ua/1" }, { "Cookie", "c=3" },
        { "Content-Type", "application/json; charset=utf-8" },
    };
    json_t *ev = event_of("POST", "/my/path", "p1=v1&p1=v2&p2=a%20b+c&flag&bad=%zz", h,
                          sizeof h / sizeof h[0], "{\"k\":\"\xc3\xa9\"}", 11);
    assert_string_equal(str(ev, "version"), "2.0");
    assert_string_equal(str(ev, "routeKey"), "$default");
    assert_string_equal(str(ev, "rawPath"), "/my/path");
    assert_string_equal(str(ev, "rawQueryString"), "p1=v1&p1=v2&p2=a%20b+c&flag&bad=%zz");
    assert_string_equal(str(ev, "headers.x-rep"), "1,2");
    assert_string_equal(str(ev, "headers.host"), "fn.example:8700");
    assert_null(json_object_get(json_object_get(ev, "headers"), "cookie"));
    json_t *cookies = json_object_get(ev, "cookies");
    assert_int_equal(json_array_size(cookies), 3);
    assert_string_equal(json_string_value(json_array_get(cookies, 0)), "a=1");
    assert_string_equal(json_string_value(json_array_get(cookies, 2)), "c=3");
    assert_string_equal(str(ev, "queryStringParameters.p1"), "v1,v2");
    assert_string_equal(str(ev, "queryStringParameters.p2"), "a b c");
    assert_string_equal(str(ev, "queryStringParameters.flag"), "");
    assert_string_equal(str(ev, "queryStringParameters.bad"), "%zz");
    assert_string_equal(str(ev, "requestContext.http.method"), "POST");
    assert_string_equal(str(ev, "requestContext.http.sourceIp"), "192.0.2.7");
    assert_string_equal(str(ev, "requestContext.http.userAgent"), "ua/1");
    assert_string_equal(str(ev, "requestContext.time"), "04/Mar/2020:19:03:58 +0000");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(ev, "requestContext"),
                                                        "timeEpoch")),
                     1583348638390);
    assert_null(json_object_get(json_object_get(ev, "requestContext"), "authorizer"));
    assert_string_equal(str(ev, "body"), "{\"k\":\"\xc3\xa9\"}");
    assert_true(json_is_false(json_object_get(ev, "isBase64Encoded")));
    json_decref(ev);

    /* No query, no cookies, no body: the members are left out. */
    ev = event_of("GET", "/", "", NULL, 0, NULL, 0);
    assert_null(json_object_get(ev, "queryStringParameters"));
    assert_null(json_object_get(ev, "cookies"));
    assert_null(json_object_get(ev, "body"));
    json_decref(ev);
}

static void test_event_body_encoding(void **state)
{
    static const struct {
        const char *ct;
        const char *body;
        bool text;
    } cases[] = {
        { "text/plain", "hi", true },
        { "TEXT/html; charset=utf-8", "<p>", true },
        { "application/json", "{}", true },
        { "application/xml", "<a/>", true },
        { "application/javascript", "x()", true },
        { "application/x-www-form-urlencoded", "a=1", false },
        { "application/octet-stream", "hi", false },
        { "application/jsonx", "{}", false },
        { NULL, "hi", false },
        { "text/plain", "\xff\xfe", false }, /* not UTF-8 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        http_header_t h = { "Content-Type", (char *)cases[i].ct };
        json_t *ev = event_of("POST", "/", "", &h, cases[i].ct ? 1 : 0, cases[i].body,
                              strlen(cases[i].body));
        bool b64 = json_is_true(json_object_get(ev, "isBase64Encoded"));
        if (b64 == cases[i].text)
            fail_msg("%s: isBase64Encoded %d", cases[i].ct ? cases[i].ct : "(none)", b64);
        if (b64) {
            buf_t raw = BUF_INIT;
            assert_int_equal(codec_base64_decode(&raw, str(ev, "body"), strlen(str(ev, "body")),
                                                 100),
                             0);
            assert_string_equal(raw.data, cases[i].body);
            buf_release(&raw);
        }
        json_decref(ev);
    }
    /* A header value that is not UTF-8 still makes valid JSON. */
    http_header_t h = { "X-Latin", "caf\xe9" };
    json_t *ev = event_of("GET", "/", "", &h, 1, NULL, 0);
    assert_string_equal(str(ev, "headers.x-latin"), "caf\xef\xbf\xbd");
    json_decref(ev);
}

static int map(const char *result, bool drop_cors, url_response_t *out, mf_error_t *err)
{
    buf_t b = BUF_INIT;
    buf_adds(&b, result);
    int r = url_response_map(&b, drop_cors, out, err);
    buf_release(&b);
    return r;
}

static void test_response_mapping(void **state)
{
    url_response_t r;
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(map("\"Hello, world!\"", false, &r, &err), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "application/json");
    assert_string_equal(r.body.data, "\"Hello, world!\"");
    url_response_release(&r);

    assert_int_equal(map(" {\"message\": \"hi\"}", false, &r, &err), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, " {\"message\": \"hi\"}");
    url_response_release(&r);

    assert_int_equal(map("{\"statusCode\": 201, \"headers\": {\"Content-Type\": \"text/plain\", "
                         "\"X-N\": 5, \"X-B\": false, \"Content-Length\": \"1\", "
                         "\"Access-Control-Allow-Origin\": \"*\", \"X-Null\": null}, "
                         "\"multiValueHeaders\": {\"X-M\": [\"a\", \"b\"]}, "
                         "\"cookies\": [\"c=1; Path=/\"], \"body\": \"aGk=\", "
                         "\"isBase64Encoded\": true}",
                         true, &r, &err),
                     0);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.content_type, "text/plain");
    assert_string_equal(r.headers.data, "X-N: 5\r\nX-B: false\r\nX-M: a\r\nX-M: b\r\n"
                                        "Set-Cookie: c=1; Path=/\r\n");
    assert_string_equal(r.body.data, "hi");
    url_response_release(&r);

    assert_int_equal(map("{\"statusCode\": 200, \"body\": {\"a\": [1]}}", false, &r, &err), 0);
    assert_null(r.content_type);
    assert_string_equal(r.body.data, "{\"a\":[1]}");
    url_response_release(&r);

    static const struct {
        const char *result, *msg;
    } bad[] = {
        { "{\"statusCode\": \"200\"}", "statusCode" },
        { "{\"statusCode\": 99}", "statusCode" },
        { "{\"statusCode\": 600}", "statusCode" },
        { "{\"statusCode\": 200, \"headers\": {\"X\": \"a\\r\\nB: c\"}}", "headers.X" },
        { "{\"statusCode\": 200, \"headers\": {\"bad name\": \"v\"}}", "header name" },
        { "{\"statusCode\": 200, \"headers\": {\"X\": [1]}}", "headers.X" },
        { "{\"statusCode\": 200, \"headers\": []}", "headers" },
        { "{\"statusCode\": 200, \"multiValueHeaders\": {\"X\": \"v\"}}", "multiValueHeaders.X" },
        { "{\"statusCode\": 200, \"cookies\": [\"a=1\\n\"]}", "cookies[0]" },
        { "{\"statusCode\": 200, \"cookies\": \"a=1\"}", "cookies" },
        { "{\"statusCode\": 200, \"body\": \"!!\", \"isBase64Encoded\": true}", "base64" },
        { "{\"statusCode\": 200,", "not JSON" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mf_error_t e = MF_ERROR_INIT;
        if (map(bad[i].result, false, &r, &e) != -EINVAL)
            fail_msg("accepted %s", bad[i].result);
        if (!strstr(e.msg, bad[i].msg))
            fail_msg("%s: got `%s`, want `%s`", bad[i].result, e.msg, bad[i].msg);
    }
}

static url_config_t parse_ok(const char *text)
{
    json_error_t jerr;
    json_t *doc = json_loads(text, 0, &jerr);
    url_config_t c = { 0 };
    mf_error_t err = MF_ERROR_INIT;
    if (!doc || url_config_parse(doc, &c, &err) < 0)
        fail_msg("%s: %s", text, err.msg);
    json_decref(doc);
    return c;
}

static void test_cors(void **state)
{
    url_config_t c = parse_ok("{\"cors\": {\"allow_origins\": [\"https://a.example\"], "
                              "\"allow_methods\": [\"get\", \"POST\"], \"allow_headers\": "
                              "[\"X-A\"], \"expose_headers\": [\"X-E\"], \"max_age\": 60}}");
    assert_true(url_cors_is_preflight("OPTIONS", "https://a.example", "POST"));
    assert_false(url_cors_is_preflight("OPTIONS", "https://a.example", NULL));
    assert_false(url_cors_is_preflight("GET", "https://a.example", "POST"));
    buf_t h = BUF_INIT;
    url_cors_preflight(&c.cors, "https://a.example", "POST", &h);
    assert_string_equal(h.data, "Access-Control-Allow-Origin: https://a.example\r\n"
                                "Vary: Origin\r\n"
                                "Access-Control-Allow-Methods: GET,POST\r\n"
                                "Access-Control-Allow-Headers: X-A\r\n"
                                "Access-Control-Max-Age: 60\r\n");
    buf_reset(&h);
    url_cors_preflight(&c.cors, "https://a.example", "DELETE", &h);
    url_cors_preflight(&c.cors, "https://b.example", "GET", &h);
    url_cors_actual(&c.cors, "https://b.example", &h);
    url_cors_actual(&c.cors, NULL, &h);
    assert_int_equal(h.len, 0);
    url_cors_actual(&c.cors, "https://a.example", &h);
    assert_string_equal(h.data, "Access-Control-Allow-Origin: https://a.example\r\n"
                                "Vary: Origin\r\nAccess-Control-Expose-Headers: X-E\r\n");
    url_config_clear(&c);

    c = parse_ok("{\"cors\": {\"allow_origins\": [\"*\"], \"allow_methods\": [\"*\"]}}");
    buf_reset(&h);
    url_cors_actual(&c.cors, "https://z.example", &h);
    assert_string_equal(h.data, "Access-Control-Allow-Origin: *\r\n");
    url_config_clear(&c);
    c = parse_ok("{\"cors\": {\"allow_origins\": [\"*\"], \"allow_credentials\": true}}");
    buf_reset(&h);
    url_cors_actual(&c.cors, "https://z.example", &h);
    assert_string_equal(h.data, "Access-Control-Allow-Origin: https://z.example\r\n"
                                "Vary: Origin\r\nAccess-Control-Allow-Credentials: true\r\n");
    url_config_clear(&c);
    buf_release(&h);
}

/* A change's outcome: without a writer the table calls back at once. */
typedef struct change_seen {
    int calls, r;
    bool created;
} change_seen_t;

static void on_change(void *ud, int r, bool created, const mf_error_t *err)
{
    (void)err;
    change_seen_t *c = ud;
    c->calls++;
    c->r = r;
    c->created = created;
}

static int put_now(url_table_t *t, const url_config_t *c, bool *created)
{
    change_seen_t seen = { 0 };
    url_table_put(t, c, on_change, &seen);
    assert_int_equal(seen.calls, 1);
    *created = seen.created;
    return seen.r;
}

static int delete_now(url_table_t *t, const char *function)
{
    change_seen_t seen = { 0 };
    url_table_delete(t, function, on_change, &seen);
    assert_int_equal(seen.calls, 1);
    return seen.r;
}

static void test_table_is_durable_and_goes_with_the_function(void **state)
{
    store_t *s = open_store(*state);
    mf_error_t err = MF_ERROR_INIT;
    store_function_t f = { .name = "fn", .version = 1, .code_sha256 = "x",
                           .config_json = "{}", .created_ms = 1, .updated_ms = 1 };
    assert_int_equal(store_function_put(s, &f, &err), 0);

    url_table_t *t;
    assert_int_equal(url_table_open(s, &t, &err), 0);
    url_config_t c = parse_ok("{\"auth\": \"none\", \"invoke_mode\": \"RESPONSE_STREAM\", "
                              "\"cors\": {\"allow_origins\": [\"*\"]}}");
    snprintf(c.function, sizeof c.function, "fn");
    bool created = false;
    assert_int_equal(put_now(t, &c, &created), 0);
    assert_true(created);
    snprintf(c.function, sizeof c.function, "ghost");
    assert_int_equal(put_now(t, &c, &created), -ENOENT);
    assert_null(url_table_get(t, "ghost"));
    url_config_clear(&c);
    url_table_close(t);

    /* Read back as written. */
    assert_int_equal(url_table_open(s, &t, &err), 0);
    const url_config_t *got = url_table_get(t, "fn");
    assert_non_null(got);
    assert_int_equal(got->auth, URL_AUTH_NONE);
    assert_int_equal(got->invoke_mode, URL_INVOKE_RESPONSE_STREAM);
    assert_true(got->cors.set);
    assert_string_equal(got->cors.allow_origins.v[0], "*");
    url_table_close(t);

    /* An update of the function keeps its URL; a delete takes it. */
    f.version = 2;
    assert_int_equal(store_function_put(s, &f, &err), 0);
    assert_int_equal(url_table_open(s, &t, &err), 0);
    assert_non_null(url_table_get(t, "fn"));
    url_table_close(t);
    assert_int_equal(store_function_delete(s, "fn", &err), 0);
    assert_int_equal(url_table_open(s, &t, &err), 0);
    assert_null(url_table_get(t, "fn"));
    assert_int_equal(delete_now(t, "fn"), -ENOENT);
    url_table_close(t);
    store_close(s);
}

/* Both changes were called back. */
static bool both_called(void *ctx)
{
    change_seen_t *const *c = ctx;
    return c[0]->calls && c[1]->calls;
}

/* Through a writer, off the caller's thread: the table changes only when
 * the write is done, and what it says is what the store has. */
static void test_table_changes_through_a_writer(void **state)
{
    store_t *s = open_store(*state);
    mf_error_t err = MF_ERROR_INIT;
    store_function_t f = { .name = "fn", .version = 1, .code_sha256 = "x",
                           .config_json = "{}", .created_ms = 1, .updated_ms = 1 };
    assert_int_equal(store_function_put(s, &f, &err), 0);
    uv_loop_t loop;
    store_writer_t *w = start_writer(s, &loop);
    url_table_t *t;
    assert_int_equal(url_table_open(s, &t, &err), 0);
    url_table_set_writer(t, w);

    url_config_t c = parse_ok("{\"auth\": \"key\"}");
    snprintf(c.function, sizeof c.function, "fn");
    change_seen_t put = { 0 }, ghost = { 0 }, del = { 0 }, again = { 0 };
    url_table_put(t, &c, on_change, &put);
    snprintf(c.function, sizeof c.function, "ghost");
    url_table_put(t, &c, on_change, &ghost);
    url_config_clear(&c);
    assert_int_equal(put.calls, 0);
    assert_null(url_table_get(t, "fn"));
    uint64_t before = url_table_changes(t);
    assert_true(run_writer_until(&loop, w, both_called, (change_seen_t *[]){ &put, &ghost }));
    assert_int_equal(put.r, 0);
    assert_true(put.created);
    assert_int_equal(ghost.r, -ENOENT);
    assert_null(url_table_get(t, "ghost"));
    assert_non_null(url_table_get(t, "fn"));
    assert_true(url_table_changes(t) > before);

    url_table_delete(t, "fn", on_change, &del);
    url_table_delete(t, "fn", on_change, &again);
    assert_non_null(url_table_get(t, "fn"));
    assert_true(run_writer_until(&loop, w, both_called, (change_seen_t *[]){ &del, &again }));
    assert_int_equal(del.r, 0);
    assert_int_equal(again.r, -ENOENT);
    assert_null(url_table_get(t, "fn"));
    assert_int_equal(stop_writer(w, &loop), 0);
    url_table_close(t);
    /* The store agrees. */
    assert_int_equal(url_table_open(s, &t, &err), 0);
    assert_null(url_table_get(t, "fn"));
    url_table_close(t);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_shape),
        cmocka_unit_test(test_event_body_encoding),
        cmocka_unit_test(test_response_mapping),
        cmocka_unit_test(test_cors),
    };
    const struct CMUnitTest store[] = {
        cmocka_unit_test_setup_teardown(test_table_is_durable_and_goes_with_the_function,
                                        setup_backend, teardown),
        cmocka_unit_test_setup_teardown(test_table_changes_through_a_writer, setup_backend,
                                        teardown),
    };
    int failed = cmocka_run_group_tests_name("function URLs", tests, NULL, NULL);
    return failed | run_on_both_backends("the URLs' table", store);
}
