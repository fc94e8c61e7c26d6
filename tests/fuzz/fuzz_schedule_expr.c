/* libFuzzer target: schedule expressions (rate, cron, at), the text a
 * user sends with a schedule. What parses must give next times that are
 * strictly later than asked and stable: the first time after next - 1 is
 * next again.
 * Build with `make fuzz`; `make test` replays the checked-in corpus. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trigger/schedule_expr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 512)
        return 0;
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    sched_expr_t e;
    mf_error_t err = MF_ERROR_INIT;
    if (sched_expr_parse(s, &e, &err) == 0) {
        static const int64_t after[] = {0, 1796083200 /* 2026-12-01 */, 4102444799};
        for (size_t i = 0; i < sizeof after / sizeof after[0]; i++) {
            int64_t next, again;
            if (sched_expr_next(&e, 0, after[i], &next) < 0)
                continue;
            if (next <= after[i] || sched_expr_next(&e, 0, next - 1, &again) < 0 || again != next) {
                fprintf(stderr, "fuzz_schedule_expr: `%s` after %lld: %lld, then %lld\n", s,
                        (long long)after[i], (long long)next, (long long)again);
                abort();
            }
        }
    } else if (!err.msg[0]) {
        fprintf(stderr, "fuzz_schedule_expr: `%s` refused without a message\n", s);
        abort();
    }
    free(s);
    return 0;
}
