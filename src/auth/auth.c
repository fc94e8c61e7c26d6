#include "auth/auth.h"

#include <ctype.h>
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

static int add_key(auth_keys_t *keys, const char *id, size_t idlen, const char *secret,
                   size_t secretlen)
{
    if (!valid_part(id, idlen) || !valid_part(secret, secretlen))
        return -EINVAL;
    keys->keys = xrealloc(keys->keys, (keys->count + 1) * sizeof *keys->keys);
    keys->keys[keys->count].id = xstrndup(id, idlen);
    keys->keys[keys->count].secret = xstrndup(secret, secretlen);
    keys->count++;
    return 0;
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
        char *sp = line + strcspn(line, " \t");
        char *secret = sp + strspn(sp, " \t");
        if (!*sp || add_key(keys, line, (size_t)(sp - line), secret, strlen(secret)) < 0)
            return mf_error_set(err, 0,
                                "access keys `%s` line %d: expected `ACCESS_KEY_ID SECRET`",
                                path, lineno);
    }
    return 0;
}

int auth_keys_parse_list(auth_keys_t *keys, const char *spec, mf_error_t *err)
{
    const char *p = spec;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *colon = memchr(p, ':', len);
        if (!colon ||
            add_key(keys, p, (size_t)(colon - p), colon + 1, len - (size_t)(colon - p) - 1) < 0)
            return mf_error_set(err, 0, "access keys: expected ID:SECRET[,ID:SECRET...]");
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

bool auth_check_bearer(const auth_keys_t *keys, const char *authorization)
{
    if (keys->count == 0)
        return true;
    if (!authorization || strncasecmp(authorization, "Bearer ", 7))
        return false;
    const char *token = authorization + 7;
    const char *colon = strchr(token, ':');
    if (!colon || (size_t)(colon - token) > KEY_PART_MAX)
        return false;
    char id[KEY_PART_MAX + 1];
    memcpy(id, token, (size_t)(colon - token));
    id[colon - token] = '\0';
    const auth_key_t *k = auth_keys_find(keys, id);
    return k && equal_ct(k->secret, colon + 1);
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
