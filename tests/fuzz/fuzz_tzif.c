/* libFuzzer target: TZif zone files (RFC 8536) and their POSIX TZ footer,
 * which the server reads for a schedule's time zone. Whatever parses must
 * map instants and wall-clock times consistently: the wall clock at an
 * instant t maps back to instants around t, never to a skipped time, and
 * each instant it maps to reads that wall-clock time.
 * Build with `make fuzz`; `make test` replays the checked-in corpus. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "trigger/tz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > TZ_FILE_MAX)
        return 0;
    tz_t *z = NULL;
    mf_error_t err = MF_ERROR_INIT;
    if (tz_parse(data, size, "fuzz", &z, &err) < 0) {
        if (!err.msg[0]) {
            fprintf(stderr, "fuzz_tzif: refused without a message\n");
            abort();
        }
        return 0;
    }
    static const int64_t at[] = {-2208988800 /* 1900 */, 0, 1796551200 /* 2026-12 */,
                                 4102444800 /* 2100 */, 32503680000 /* 3000 */};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        for (int64_t d = -86400 * 200; d <= 86400 * 200; d += 86400 * 7 + 3599) {
            int64_t t = at[i] + d;
            int64_t civil = t + tz_offset_at(z, t), first, second;
            tz_civil_kind_t k = tz_civil_to_instant(z, civil, &first, &second);
            if (k == TZ_CIVIL_SKIPPED || first > t || t > second ||
                first + tz_offset_at(z, first) != civil ||
                second + tz_offset_at(z, second) != civil) {
                fprintf(stderr, "fuzz_tzif: t %lld reads %lld, maps back to %lld..%lld (%d)\n",
                        (long long)t, (long long)civil, (long long)first, (long long)second, k);
                abort();
            }
            char out[48];
            tz_format_rfc3339(z, t, out, sizeof out);
        }
    }
    tz_free(z);
    return 0;
}
