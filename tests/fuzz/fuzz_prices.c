/* libFuzzer target: a prices file (--prices, meter/meter.h). What parses
 * has every price a finite number of 0 or more and a currency of letters,
 * and comes back the same from its own JSON; a refusal says why.
 * Build with `make fuzz`; `make test` replays the checked-in corpus. */
#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meter/meter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    meter_prices_t p;
    mf_error_t err = MF_ERROR_INIT;
    if (meter_prices_parse((const char *)data, size, "prices.json", &p, &err) < 0) {
        if (!err.msg[0])
            abort();
        return 0;
    }
    double v[] = { p.request_per_million, p.gb_second, p.cpu_second, p.egress_gb,
                   p.kv_ops_per_million };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        if (!isfinite(v[i]) || v[i] < 0)
            abort();
    if (!p.currency[0])
        abort();
    for (const char *c = p.currency; *c; c++)
        if (!isalpha((unsigned char)*c))
            abort();
    json_t *shown = meter_prices_json(&p);
    char *text = json_dumps(shown, JSON_COMPACT);
    meter_prices_t again;
    mf_error_t err2 = MF_ERROR_INIT;
    if (meter_prices_parse(text, strlen(text), "again.json", &again, &err2) < 0) {
        fprintf(stderr, "fuzz_prices: its own JSON is refused: %s\n", err2.msg);
        abort();
    }
    if (strcmp(again.currency, p.currency) || again.gb_second != p.gb_second ||
        again.request_per_million != p.request_per_million || again.cpu_second != p.cpu_second ||
        again.egress_gb != p.egress_gb || again.kv_ops_per_million != p.kv_ops_per_million)
        abort();
    free(text);
    json_decref(shown);
    return 0;
}
