/* libFuzzer target: what a client sends the console's routes, the asset
 * path below /console/ and If-None-Match. The input's first line is the
 * path, the rest the header. Whatever path console_path_check accepts
 * must stay below the console's folder: no segment "." or "..", none
 * empty or hidden, no leading '/', no '\\', and it checks again unchanged.
 * Build with `make fuzz`; `make test` replays the checked-in corpus. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "console/console.h"
#include "http/request.h"

static void fail(const char *why, const char *path)
{
    fprintf(stderr, "fuzz_console_path: %s: `%s`\n", why, path);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t plen = nl ? (size_t)(nl - data) : size;
    char out[CONSOLE_PATH_MAX + 1];
    if (console_path_check((const char *)data, plen, out) == 0) {
        size_t n = strlen(out);
        if (!n || out[0] == '/' || out[n - 1] == '/' || strchr(out, '\\') || strstr(out, "//"))
            fail("a path that is no file below the folder", out);
        for (const char *s = out; s; s = strchr(s, '/'), s = s ? s + 1 : s)
            if (*s == '.')
                fail("a segment starting with '.'", out);
        char again[CONSOLE_PATH_MAX + 1];
        if (console_path_check(out, n, again) != 0 || strcmp(out, again))
            fail("a checked path does not check again unchanged", out);
        (void)console_content_type(out);
        (void)console_name_hashed(out);
    }
    char *header = malloc(size - plen + 1);
    size_t hlen = nl ? size - plen - 1 : 0;
    memcpy(header, nl ? nl + 1 : data, hlen);
    header[hlen] = '\0';
    (void)http_etag_matches(header, "\"0123456789abcdef0123456789abcdef\"");
    free(header);
    return 0;
}
