/* libFuzzer target: the RFC 3339 time parser the invocation filters use
 * (?since=, ?until=). Whatever it accepts is formatted back and parsed
 * again, which must give the same instant: a time the API shows can
 * always be pasted back into a filter.
 * Build with `make fuzz`; `make test` replays the checked-in corpus. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    int64_t ms;
    if (clock_parse_rfc3339(s, &ms) == 0 && ms >= 0 && ms < INT64_C(253402300800000)) {
        char text[40];
        clock_format_iso8601(ms, text, sizeof text);
        int64_t again;
        if (clock_parse_rfc3339(text, &again) != 0 || again != ms) {
            fprintf(stderr, "fuzz_rfc3339: `%s` → %lld → `%s` does not parse back\n", s,
                    (long long)ms, text);
            abort();
        }
    }
    free(s);
    return 0;
}
