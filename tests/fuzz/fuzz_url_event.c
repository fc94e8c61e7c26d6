/* libFuzzer target: HTTP requests (through the request reader) turned
 * into a function URL's event, Lambda's payload format 2.0. Whatever the
 * request holds, the event must be valid JSON whose body gives back the
 * request's bytes exactly (as text or as base64), with one `headers`
 * member per header name.
 * Build with `make fuzz`; `make test` replays the checked-in corpus. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/codec.h"
#include "http/request.h"
#include "trigger/url.h"

static int on_head(void *ud, http_request_t *req, size_t *body_limit)
{
    *body_limit = 1 << 16;
    return 0;
}

static void check(http_request_t *req)
{
    url_request_t r = { .method = http_method_str(req->method),
                        .raw_path = req->path,
                        .raw_query = req->query,
                        .headers = req->headers,
                        .nheaders = req->nheaders,
                        .body = req->body.data,
                        .body_len = req->body.len,
                        .source_ip = "127.0.0.1",
                        .domain_name = "example.test",
                        .domain_prefix = "fn",
                        .api_id = "fn",
                        .account_id = "anonymous",
                        .access_key_id = req->nheaders ? req->headers[0].value : NULL,
                        .request_id = "00000000-0000-4000-8000-000000000000",
                        .time_ms = (int64_t)req->body.len * 1000003 };
    buf_t ev = BUF_INIT;
    url_event_build(&ev, &r);
    json_error_t jerr;
    /* NUL is text too: \u0000 is JSON, and the runtimes read it. */
    json_t *doc = json_loadb(ev.data, ev.len, JSON_ALLOW_NUL, &jerr);
    if (!json_is_object(doc)) {
        fprintf(stderr, "fuzz_url_event: not a JSON object (%s): %s\n", jerr.text, ev.data);
        abort();
    }
    json_t *body = json_object_get(doc, "body");
    buf_t got = BUF_INIT;
    if (json_is_true(json_object_get(doc, "isBase64Encoded"))) {
        if (codec_base64_decode(&got, json_string_value(body), json_string_length(body),
                                1 << 20) < 0)
            abort();
    } else if (body) {
        buf_add(&got, json_string_value(body), json_string_length(body));
    }
    if (got.len != req->body.len || memcmp(got.data, req->body.data, got.len)) {
        fprintf(stderr, "fuzz_url_event: the body did not come back: %s\n", ev.data);
        abort();
    }
    if (!json_is_object(json_object_get(doc, "headers")) ||
        !json_is_object(json_object_get(doc, "requestContext")))
        abort();
    buf_release(&got);
    json_decref(doc);
    buf_release(&ev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    http_reader_t r;
    http_reader_init(&r, on_head, NULL, NULL);
    size_t off = 0;
    while (off < size) {
        size_t used = 0;
        http_reader_result_t res = http_reader_feed(&r, (const char *)data + off, size - off, &used);
        off += used;
        if (res == HTTP_READER_ERROR)
            break;
        if (res == HTTP_READER_REQUEST) {
            http_request_t *req = http_reader_take(&r);
            check(req);
            http_request_free(req);
            continue;
        }
        if (!used)
            break;
    }
    http_reader_release(&r);
    return 0;
}
