/* libFuzzer target: an alert rule's body (PUT /v1/alerts/{name},
 * watch/alert.h). What parses has a tenant's name, a known metric, a
 * function or (budget_used) a budget, an op, a window and for within
 * their bounds, at most NOTIFY_TARGETS_MAX targets, and comes back the
 * same from its own JSON; a refusal says why. Build with `make fuzz`;
 * `make test` replays the checked-in corpus. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "watch/alert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    alert_rule_t r;
    mf_error_t err = MF_ERROR_INIT;
    if (alert_rule_parse((const char *)data, size, "fuzz", "default", &r, &err) < 0) {
        if (!err.msg[0])
            abort();
        return 0;
    }
    if (!tenant_valid(r.tenant, strlen(r.tenant)) || strcmp(r.name, "fuzz"))
        abort();
    if ((unsigned)r.metric >= ALERT_METRICS || (r.op != '<' && r.op != '>'))
        abort();
    if (!isfinite(r.threshold) || r.window_s < 1 || r.window_s > ALERT_WINDOW_MAX_S ||
        r.for_s > ALERT_FOR_MAX_S || r.notify.n > NOTIFY_TARGETS_MAX)
        abort();
    if ((r.metric == ALERT_BUDGET_USED) != (r.budget[0] != '\0') ||
        (r.metric == ALERT_BUDGET_USED) == (r.function[0] != '\0'))
        abort();
    json_t *doc = alert_rule_json(&r);
    char *text = json_dumps(doc, 0);
    alert_rule_t again;
    if (!text || alert_rule_parse(text, strlen(text), "fuzz", "default", &again, &err) < 0 ||
        !alert_rule_same(&r, &again))
        abort();
    free(text);
    json_decref(doc);
    return 0;
}
