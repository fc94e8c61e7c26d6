/* libFuzzer target: access keys as MAYFLY_ACCESS_KEYS gives them
 * ("ID:SECRET[:TENANT[:ROLE]],…", auth/auth.h). What parses has valid
 * tenants and roles, and each key is found again by its own bearer token;
 * a refusal says why. Build with `make fuzz`; `make test` replays the
 * checked-in corpus. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *spec = malloc(size + 1);
    memcpy(spec, data, size);
    spec[size] = '\0';
    auth_keys_t keys = { 0 };
    mf_error_t err = MF_ERROR_INIT;
    if (auth_keys_parse_list(&keys, spec, &err) < 0) {
        if (!err.msg[0])
            abort();
    } else {
        for (size_t i = 0; i < keys.count; i++) {
            const auth_key_t *k = &keys.keys[i];
            size_t n = strlen(k->tenant);
            if (n < 1 || n > TENANT_MAX || strspn(k->tenant, "abcdefghijklmnopqrstuvwxyz"
                                                                  "0123456789-") != n)
                abort();
            if (k->role < AUTH_VIEWER || k->role > AUTH_ADMIN)
                abort();
            char header[300];
            snprintf(header, sizeof header, "Bearer %s:%s", k->id, k->secret);
            if (auth_bearer_key(&keys, header) != k)
                abort();
        }
    }
    auth_keys_release(&keys);
    free(spec);
    return 0;
}
