/* Access keys and the checks that use them. With no keys the server runs in
 * development mode and accepts every request. */
#ifndef MAYFLY_AUTH_AUTH_H
#define MAYFLY_AUTH_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "core/tenant.h"

/* What a key may do (docs/metering.md, "Tenants and roles"): each role
 * may do what the one before may, but an invoker does not read. */
typedef enum auth_role {
    AUTH_VIEWER,    /* read only */
    AUTH_INVOKER,   /* invoke, publish, and read a call's record by its id */
    AUTH_DEVELOPER, /* deploy and run within the tenant (the default) */
    AUTH_ADMIN,     /* everything, every tenant */
} auth_role_t;

/* What a request does, as a role is checked against it. */
typedef enum auth_action {
    AUTH_ANY,        /* any key (who am I) */
    AUTH_READ,       /* read the tenant's functions, logs, records, stores */
    AUTH_READ_CALL,  /* read one call's record by its request id */
    AUTH_INVOKE,     /* invoke, publish, replay */
    AUTH_DEPLOY,     /* create, change or delete anything of the tenant */
    AUTH_ADMINISTER, /* see the tenants */
} auth_action_t;

typedef struct auth_key {
    char *id;
    char *secret;
    char tenant[TENANT_MAX + 1];
    auth_role_t role;
} auth_key_t;

typedef struct auth_keys {
    auth_key_t *keys;
    size_t count;
} auth_keys_t;

/* Adds the keys of a file holding one "ACCESS_KEY_ID SECRET [TENANT
 * [ROLE]]" a line (blank lines and lines starting with '#' are skipped);
 * a tenant is [a-z0-9-]{1,32} ("default" when left out), a role viewer,
 * invoker, developer (when left out) or admin. */
int auth_keys_load_file(auth_keys_t *keys, const char *path, mf_error_t *err);
/* Adds keys from "ID:SECRET[:TENANT[:ROLE]][,…]". */
int auth_keys_parse_list(auth_keys_t *keys, const char *spec, mf_error_t *err);
const auth_key_t *auth_keys_find(const auth_keys_t *keys, const char *id);
/* The key of an "Authorization: Bearer ID:SECRET" header (the secret
 * compared in constant time), or NULL; with no keys at all (development
 * mode), the one development key: tenant "default", role admin, id "". */
const auth_key_t *auth_bearer_key(const auth_keys_t *keys, const char *authorization);
/* Whether role may do action. */
bool auth_role_allows(auth_role_t role, auth_action_t action);
const char *auth_role_name(auth_role_t role);     /* "viewer", … */
const char *auth_action_name(auth_action_t action); /* "read", "invoke", … */
/* The least role that may do action ("developer" for deploy, …). */
auth_role_t auth_action_role(auth_action_t action);
void auth_keys_release(auth_keys_t *keys);

#endif
