/* libFuzzer target: a function's result mapped to the HTTP answer behind
 * its URL. The answer's header lines must be well formed whatever the
 * function returned: "Name: value\r\n" with no CR or LF inside, never a
 * framing header; a refused result must say why.
 * Build with `make fuzz`; `make test` replays the checked-in corpus. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "trigger/url.h"

static void check_lines(const buf_t *h)
{
    const char *p = h->data, *end = h->data + h->len;
    while (p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        if (!eol || eol + 1 >= end || eol[1] != '\n' || memchr(p, '\n', (size_t)(eol - p)) ||
            !memchr(p, ':', (size_t)(eol - p)) || !strncasecmp(p, "content-length:", 15) ||
            !strncasecmp(p, "transfer-encoding:", 18) || !strncasecmp(p, "connection:", 11)) {
            fprintf(stderr, "fuzz_url_response: bad header lines: %s\n", h->data);
            abort();
        }
        p = eol + 2;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    buf_t result = BUF_INIT;
    buf_add(&result, data, size);
    url_response_t resp;
    mf_error_t err = MF_ERROR_INIT;
    if (url_response_map(&result, size & 1, &resp, &err) == 0) {
        if (resp.status < 200 || resp.status > 599)
            abort();
        check_lines(&resp.headers);
        if (resp.content_type && strpbrk(resp.content_type, "\r\n"))
            abort();
        url_response_release(&resp);
    } else if (!err.msg[0]) {
        abort();
    }
    buf_release(&result);
    return 0;
}
