/* libFuzzer target: the OTLP exporter's reading of a collector's answer
 * (obs_otlp__answer), with the connection still open and closed, and with
 * more received than kept. A complete answer has a status of 200-599; a
 * refused one says why.
 * Build with `make fuzz`; `make test` replays the checked-in corpus. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "obs/otlp.h"

static void check(const uint8_t *data, size_t size, uint64_t total, bool eof)
{
    int status = 0;
    const char *why = NULL;
    int r = obs_otlp__answer(size ? (const char *)data : NULL, size, total, eof, &status, &why);
    if ((r == OBS_OTLP_ANSWER_DONE && (status < 200 || status > 599)) ||
        (r == OBS_OTLP_ANSWER_BAD && !why) || (r == OBS_OTLP_ANSWER_MORE && eof && size == 0)) {
        fprintf(stderr, "fuzz_otlp_answer: %d (status %d) for %zu bytes, eof %d\n", r, status,
                size, eof);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so a read past the end shows under ASan. */
    uint8_t *copy = malloc(size ? size : 1);
    for (size_t i = 0; i < size; i++)
        copy[i] = data[i];
    check(copy, size, size, false);
    check(copy, size, size, true);
    check(copy, size, (uint64_t)size + 4096, false);
    free(copy);
    return 0;
}
