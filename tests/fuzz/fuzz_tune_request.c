/* libFuzzer target: a power tuning request's body (POST
 * /v1/functions/{name}/tune, watch/tune.h). What parses has 1 to 16
 * sizes in 128–10240, ascending with no two alike, 1 to 100 runs, a known
 * strategy and an event that is JSON; a refusal names a field. Build with
 * `make fuzz`; `make test` replays the checked-in corpus. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "watch/tune.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    watch_tune_request_t rq;
    mf_error_t err = MF_ERROR_INIT;
    if (watch_tune_parse((const char *)data, size, &rq, &err) < 0) {
        if (!err.msg[0] || !strchr(err.msg, ':'))
            abort();
        return 0;
    }
    if (rq.n_sizes < 1 || rq.n_sizes > WATCH_TUNE_SIZES_MAX)
        abort();
    for (size_t i = 0; i < rq.n_sizes; i++) {
        if (rq.sizes[i] < WATCH_MEMORY_MIN || rq.sizes[i] > WATCH_MEMORY_MAX)
            abort();
        if (i && rq.sizes[i] <= rq.sizes[i - 1])
            abort();
    }
    if (rq.runs < 1 || rq.runs > WATCH_TUNE_RUNS_MAX)
        abort();
    if (strcmp(watch_tune_strategy_name(rq.strategy), "balanced") &&
        strcmp(watch_tune_strategy_name(rq.strategy), "cost") &&
        strcmp(watch_tune_strategy_name(rq.strategy), "speed"))
        abort();
    json_error_t jerr;
    json_t *event = json_loadb(rq.event, rq.event_len, JSON_DECODE_ANY, &jerr);
    if (!event || strlen(rq.event) != rq.event_len) {
        fprintf(stderr, "fuzz_tune_request: the event is not JSON: %s\n", rq.event);
        abort();
    }
    json_decref(event);
    /* A table over no runs at all: every size without a p50, none
     * recommended. */
    int done[WATCH_TUNE_SIZES_MAX] = {0};
    meter_prices_t prices;
    meter_prices_default(&prices);
    watch_tune_run_t *runs = calloc(rq.n_sizes * (size_t)rq.runs, sizeof *runs);
    json_t *t = watch_tune_table(&rq, runs, done, &prices);
    free(runs);
    if (!json_is_null(json_object_get(t, "recommended")) ||
        json_array_size(json_object_get(t, "sizes")) != rq.n_sizes)
        abort();
    json_decref(t);
    watch_tune_request_release(&rq);
    return 0;
}
