#include "auth/auth.h"

#include <ctype.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/cleanup.h"
#include "core/fs.h"
#include "core/xalloc.h"

#define KEY_PART_MAX 128

static bool valid_part(const char *s, size_t len)
{
    if (len == 0 || len > KEY_PART_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!isgraph((unsigned char)s[i]) || s[i] == ':' || s[i] == ',')
            return false;
    }
    return true;
}

static const char *const role_names[] = { "viewer", "invoker", "developer", "admin" };

const char *auth_role_name(auth_role_t role)
{
    return role_names[role];
}

const char *auth_action_name(auth_action_t action)
{
    static const char *const names[] = { "any", "read", "read a call", "invoke", "deploy",
                                         "administer" };
    return names[action];
}

bool auth_role_allows(auth_role_t role, auth_action_t action)
{
    switch (action) {
    case AUTH_ANY:
    case AUTH_READ_CALL: return true;
    case AUTH_READ: return role != AUTH_INVOKER;
    case AUTH_INVOKE: return role >= AUTH_INVOKER;
    case AUTH_DEPLOY: return role >= AUTH_DEVELOPER;
    case AUTH_ADMINISTER: return role == AUTH_ADMIN;
    }
    return false;
}

auth_role_t auth_action_role(auth_action_t action)
{
    switch (action) {
    case AUTH_ANY:
    case AUTH_READ:
    case AUTH_READ_CALL: return AUTH_VIEWER;
    case AUTH_INVOKE: return AUTH_INVOKER;
    case AUTH_DEPLOY: return AUTH_DEVELOPER;
    case AUTH_ADMINISTER: return AUTH_ADMIN;
    }
    return AUTH_ADMIN;
}

/* An entry's parts: id, secret, and the tenant and role when given (their
 * lengths 0 when not). 0, or -EINVAL with err naming the part. */
static int add_key(auth_keys_t *keys, const char *const part[4], const size_t len[4],
                   mf_error_t *err)
{
    if (!valid_part(part[0], len[0]) || !valid_part(part[1], len[1]))
        return mf_error_plain(err, EINVAL,
                              "an access key id and secret are 1 to %d printable characters "
                              "without ':' or ','",
                              KEY_PART_MAX);
    if (len[2] && !tenant_valid(part[2], len[2]))
        return mf_error_plain(err, EINVAL, "tenant `%.*s`: must match [a-z0-9-]{1,%d}",
                              (int)(len[2] > 64 ? 64 : len[2]), part[2], TENANT_MAX);
    auth_role_t role = AUTH_DEVELOPER;
    if (len[3]) {
        int found = -1;
        for (int i = 0; i < 4; i++)
            if (strlen(role_names[i]) == len[3] && !memcmp(role_names[i], part[3], len[3]))
                found = i;
        if (found < 0)
            return mf_error_plain(err, EINVAL,
                                  "role `%.*s`: must be admin, developer, invoker or viewer",
                                  (int)(len[3] > 64 ? 64 : len[3]), part[3]);
        role = (auth_role_t)found;
    }
    for (size_t i = 0; i < keys->count; i++)
        if (strlen(keys->keys[i].id) == len[0] && !memcmp(keys->keys[i].id, part[0], len[0]))
            return mf_error_plain(err, EINVAL, "access key `%.*s` is given twice", (int)len[0],
                                  part[0]);
    keys->keys = xrealloc(keys->keys, (keys->count + 1) * sizeof *keys->keys);
    auth_key_t *k = &keys->keys[keys->count++];
    *k = (auth_key_t){ .id = xstrndup(part[0], len[0]),
                       .secret = xstrndup(part[1], len[1]),
                       .role = role };
    if (len[2])
        snprintf(k->tenant, sizeof k->tenant, "%.*s", (int)len[2], part[2]);
    else
        snprintf(k->tenant, sizeof k->tenant, "%s", TENANT_DEFAULT);
    return 0;
}

/* Splits s (n bytes) at each of seps into at most 4 parts; false when
 * there are more, or fewer than 2. */
static bool split(const char *s, size_t n, const char *seps, const char *part[4], size_t len[4])
{
    int k = 0;
    size_t i = 0;
    for (; k < 4; k++) {
        while (seps[0] == ' ' && i < n && (s[i] == ' ' || s[i] == '\t'))
            i++; /* runs of blanks between a file's columns */
        if (i >= n)
            break;
        size_t start = i;
        while (i < n && !strchr(seps, s[i]))
            i++;
        part[k] = s + start;
        len[k] = i - start;
        if (i < n)
            i++;
    }
    for (int j = k; j < 4; j++) {
        part[j] = "";
        len[j] = 0;
    }
    return k >= 2 && i >= n;
}

int auth_keys_load_file(auth_keys_t *keys, const char *path, mf_error_t *err)
{
    cleanup_buf buf_t text = BUF_INIT;
    int r = fs_read_file(path, &text, 1 << 20, err);
    if (r < 0)
        return mf_error_wrap(err, "access keys");
    int lineno = 0;
    for (char *line = text.data, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        lineno++;
        while (isspace((unsigned char)*line))
            line++;
        size_t len = strlen(line);
        while (len && isspace((unsigned char)line[len - 1]))
            line[--len] = '\0';
        if (!len || line[0] == '#')
            continue;
        const char *part[4];
        size_t plen[4];
        mf_error_t why = MF_ERROR_INIT;
        if (!split(line, len, " \t", part, plen))
            return mf_error_set(err, 0,
                                "access keys `%s` line %d: expected `ACCESS_KEY_ID SECRET [TENANT "
                                "[ROLE]]`",
                                path, lineno);
        if (add_key(keys, part, plen, &why) < 0)
            return mf_error_set(err, 0, "access keys `%s` line %d: %s", path, lineno, why.msg);
    }
    return 0;
}

int auth_keys_parse_list(auth_keys_t *keys, const char *spec, mf_error_t *err)
{
    const char *p = spec;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *part[4];
        size_t plen[4];
        mf_error_t why = MF_ERROR_INIT;
        if (!split(p, len, ":", part, plen))
            return mf_error_set(err, 0,
                                "access keys: expected ID:SECRET[:TENANT[:ROLE]][,...]");
        if (add_key(keys, part, plen, &why) < 0)
            return mf_error_set(err, 0, "access keys: %s", why.msg);
        p = end ? end + 1 : p + len;
    }
    return 0;
}

const auth_key_t *auth_keys_find(const auth_keys_t *keys, const char *id)
{
    for (size_t i = 0; i < keys->count; i++) {
        if (!strcmp(keys->keys[i].id, id))
            return &keys->keys[i];
    }
    return NULL;
}

/* Compares without an early exit, so timing does not reveal a prefix. */
static bool equal_ct(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = la != lb;
    for (size_t i = 0; i < la && i < lb; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

const auth_key_t *auth_bearer_key(const auth_keys_t *keys, const char *authorization)
{
    static const auth_key_t development = { .id = (char *)"", .secret = (char *)"",
                                            .tenant = TENANT_DEFAULT, .role = AUTH_ADMIN };
    if (keys->count == 0)
        return &development;
    if (!authorization || strncasecmp(authorization, "Bearer ", 7))
        return NULL;
    const char *token = authorization + 7;
    const char *colon = strchr(token, ':');
    if (!colon || (size_t)(colon - token) > KEY_PART_MAX)
        return NULL;
    char id[KEY_PART_MAX + 1];
    memcpy(id, token, (size_t)(colon - token));
    id[colon - token] = '\0';
    const auth_key_t *k = auth_keys_find(keys, id);
    return k && equal_ct(k->secret, colon + 1) ? k : NULL;
}

void auth_keys_release(auth_keys_t *keys)
{
    for (size_t i = 0; i < keys->count; i++) {
        free(keys->keys[i].id);
        free(keys->keys[i].secret);
    }
    free(keys->keys);
    keys->keys = NULL;
    keys->count = 0;
}
