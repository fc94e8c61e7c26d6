/* Access keys and the checks that use them. With no keys the server runs in
 * development mode and accepts every request. */
#ifndef MAYFLY_AUTH_AUTH_H
#define MAYFLY_AUTH_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

typedef struct auth_key {
    char *id;
    char *secret;
} auth_key_t;

typedef struct auth_keys {
    auth_key_t *keys;
    size_t count;
} auth_keys_t;

/* Adds the keys of a file holding one "ACCESS_KEY_ID SECRET" a line (blank
 * lines and lines starting with '#' are skipped). */
int auth_keys_load_file(auth_keys_t *keys, const char *path, mf_error_t *err);
/* Adds keys from "ID:SECRET[,ID:SECRET…]". */
int auth_keys_parse_list(auth_keys_t *keys, const char *spec, mf_error_t *err);
const auth_key_t *auth_keys_find(const auth_keys_t *keys, const char *id);
/* True when the header is "Bearer ID:SECRET" for a known key (compared in
 * constant time), or when there are no keys at all. */
bool auth_check_bearer(const auth_keys_t *keys, const char *authorization);
void auth_keys_release(auth_keys_t *keys);

#endif
