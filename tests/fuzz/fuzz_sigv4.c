/* libFuzzer target: the SigV4 verifier (whole, and from the head alone) on
 * arbitrary Authorization headers, queries, paths, dates and bodies
 * (newline-separated fields of the input).
 * Build with `make fuzz`; `make test` replays the checked-in corpus. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/sigv4.h"

/* Reachable for the whole run, so leak checkers do not count it. */
static auth_keys_t keys;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!keys.count) {
        mf_error_t e = MF_ERROR_INIT;
        auth_keys_parse_list(&keys, "AKIDEXAMPLE:secret", &e);
    }
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    /* Authorization, query, path, X-Amz-Date, x-amz-content-sha256, body. */
    char *f[6] = { "", "", "/", "", "", "" };
    char *p = s;
    for (int i = 0; i < 6 && p; i++) {
        f[i] = p;
        p = strchr(p, '\n');
        if (p)
            *p++ = '\0';
    }
    http_header_t h[] = { { "Authorization", f[0] }, { "Host", "h" }, { "X-Amz-Date", f[3] },
                          { "X-Amz-Content-Sha256", f[4] }, { "Date", f[5] } };
    sigv4_request_t req = { .method = "GET",
                            .path = f[2],
                            .query = f[1],
                            .headers = h,
                            .nheaders = f[4][0] ? 5 : 3,
                            .body = f[5],
                            .body_len = strlen(f[5]) };
    sigv4_result_t res = { 0 };
    mf_error_t err = MF_ERROR_INIT;
    sigv4_verify(&req, "lambda", &keys, 1440938160000LL, &res, &err);
    /* The head-only check sees the same parts without the body. */
    sigv4_result_t head = { 0 };
    sigv4_verify_head(&req, "lambda", &keys, 1440938160000LL, &head, &err);
    free(s);
    return 0;
}
