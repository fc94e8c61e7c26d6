/* libFuzzer target: durable execution ARNs, as they arrive in request
 * paths from anyone. What parses must format back to itself; what is
 * refused is refused cleanly. Build with `make fuzz`; `make test`
 * replays the checked-in corpus. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durable/durable.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1024)
        return 0;
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    durable_arn_t a;
    if (durable_arn_parse(s, &a) == 0) {
        char again[512];
        durable_arn_format(a.region, a.function, a.name, a.id, again, sizeof again);
        durable_arn_t b;
        /* mayfly writes its one account; the rest must come back as it was. */
        if (durable_arn_parse(again, &b) != 0 || strcmp(a.region, b.region) ||
            strcmp(a.function, b.function) || strcmp(a.name, b.name) || strcmp(a.id, b.id)) {
            fprintf(stderr, "fuzz_durable_arn: `%s` does not round-trip\n", s);
            abort();
        }
    }
    free(s);
    return 0;
}
