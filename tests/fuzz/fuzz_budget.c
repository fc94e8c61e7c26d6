/* libFuzzer target: a budget's body (PUT /v1/budgets/{name}, meter/budget.h).
 * What parses has a tenant's name, a period, an amount above 0, 1 to 16
 * thresholds in (0, 10] in ascending order with no two alike, and comes
 * back the same from its own JSON; a refusal says why. Build with `make
 * fuzz`; `make test` replays the checked-in corpus. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meter/budget.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    budget_t b;
    mf_error_t err = MF_ERROR_INIT;
    if (budget_parse((const char *)data, size, "fuzz", &b, &err) < 0) {
        if (!err.msg[0])
            abort();
        return 0;
    }
    if (!tenant_valid(b.tenant, strlen(b.tenant)) || strcmp(b.name, "fuzz"))
        abort();
    if (b.period != METER_DAY && b.period != METER_MONTH)
        abort();
    if (!isfinite(b.amount) || b.amount <= 0)
        abort();
    if (b.n_alerts < 1 || b.n_alerts > BUDGET_ALERTS_MAX)
        abort();
    for (size_t i = 0; i < b.n_alerts; i++) {
        if (!(b.alert_at[i] > 0 && b.alert_at[i] <= BUDGET_ALERT_TOP))
            abort();
        if (i && !(b.alert_at[i] > b.alert_at[i - 1]))
            abort();
    }
    json_t *shown = budget_json(&b);
    char *text = json_dumps(shown, JSON_COMPACT);
    budget_t again;
    mf_error_t err2 = MF_ERROR_INIT;
    if (budget_parse(text, strlen(text), "fuzz", &again, &err2) < 0) {
        fprintf(stderr, "fuzz_budget: its own JSON is refused: %s\n", err2.msg);
        abort();
    }
    if (strcmp(again.tenant, b.tenant) || strcmp(again.function, b.function) ||
        again.period != b.period || again.amount != b.amount || again.action != b.action ||
        again.n_alerts != b.n_alerts ||
        memcmp(again.alert_at, b.alert_at, b.n_alerts * sizeof b.alert_at[0]))
        abort();
    free(text);
    json_decref(shown);
    return 0;
}
