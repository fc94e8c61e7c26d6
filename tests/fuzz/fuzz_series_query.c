/* libFuzzer target: the series query's parser (GET
 * /v1/functions/{name}/series?metric=&from=&to=&step=). The input's lines
 * are metric, from, to and step (a missing line: not given). Whatever it
 * accepts must be a window the answer can hold: from a multiple of the
 * step and before to, 1 to WATCH_SERIES_MAX_POINTS points covering it;
 * whatever it refuses names a parameter.
 * Build with `make fuzz`; `make test` replays the checked-in corpus. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "watch/series.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    char *field[4] = { NULL, NULL, NULL, NULL };
    char *p = s;
    for (int i = 0; i < 4 && p; i++) {
        field[i] = p;
        p = strchr(p, '\n');
        if (p)
            *p++ = '\0';
    }
    watch_series_query_t q;
    mf_error_t err = MF_ERROR_INIT;
    int64_t now = INT64_C(1767225600000);
    if (watch_series_parse(field[0], field[1], field[2], field[3], now, &q, &err) == 0) {
        if (q.step_ms < 1000 || q.from_ms % q.step_ms || q.from_ms >= q.to_ms || q.points < 1 ||
            q.points > WATCH_SERIES_MAX_POINTS ||
            q.from_ms + (int64_t)q.points * q.step_ms < q.to_ms ||
            q.from_ms + (int64_t)(q.points - 1) * q.step_ms >= q.to_ms) {
            fprintf(stderr, "fuzz_series_query: a bad window: %lld..%lld step %lld, %zu points\n",
                    (long long)q.from_ms, (long long)q.to_ms, (long long)q.step_ms, q.points);
            abort();
        }
    } else if (strncmp(err.msg, "metric:", 7) && strncmp(err.msg, "from:", 5) &&
               strncmp(err.msg, "to:", 3) && strncmp(err.msg, "step:", 5)) {
        fprintf(stderr, "fuzz_series_query: a refusal naming no parameter: %s\n", err.msg);
        abort();
    }
    free(s);
    return 0;
}
