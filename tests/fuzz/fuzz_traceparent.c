/* libFuzzer target: the W3C traceparent and X-Ray header parsers (the
 * headers a caller sends on invoke). Whatever they accept is formatted as
 * a traceparent, which must parse to the same ids.
 * Build with `make fuzz`; `make test` replays the checked-in corpus. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obs/otlp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    uint8_t trace[16], parent[8], flags;
    if (obs_traceparent_parse(s, trace, parent, &flags) == 0) {
        char text[64];
        obs_traceparent_format(trace, parent, text, sizeof text);
        uint8_t t2[16], p2[8], f2;
        if (obs_traceparent_parse(text, t2, p2, &f2) != 0 || memcmp(t2, trace, 16) ||
            memcmp(p2, parent, 8)) {
            fprintf(stderr, "fuzz_traceparent: `%s` does not round-trip\n", s);
            abort();
        }
    }
    if (obs_xray_parse(s, trace, parent) == 0) {
        char text[64];
        obs_traceparent_format(trace, parent, text, sizeof text);
        uint8_t t2[16], p2[8];
        if (obs_traceparent_parse(text, t2, p2, NULL) != 0 || memcmp(t2, trace, 16) ||
            memcmp(p2, parent, 8)) {
            fprintf(stderr, "fuzz_traceparent: X-Ray `%s` does not round-trip\n", s);
            abort();
        }
    }
    free(s);
    return 0;
}
