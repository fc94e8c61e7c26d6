/* Notification targets (core/notify.h). */
#include "core/notify.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const kinds[] = {"webhook", "function", "topic"};

const char *notify_kind_name(notify_kind_t k)
{
    return (unsigned)k < 3 ? kinds[k] : "?";
}

int notify_kind_of(const char *s)
{
    for (int i = 0; s && i < 3; i++)
        if (!strcmp(s, kinds[i]))
            return i;
    return -1;
}

/* http:// or https://, a host, then anything printable without spaces. */
static bool url_ok(const char *s)
{
    size_t skip;
    if (!strncasecmp(s, "http://", 7))
        skip = 7;
    else if (!strncasecmp(s, "https://", 8))
        skip = 8;
    else
        return false;
    const char *host = s + skip;
    if (!*host || *host == '/' || *host == ':' || *host == '?' || *host == '#')
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p >= 0x7f)
            return false;
    return true;
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= 64 &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

int notify_parse(const json_t *v, const char *field, notify_list_t *out, mf_error_t *err)
{
    notify_list_t l = {0};
    if (json_is_null(v)) {
        *out = l;
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) > NOTIFY_TARGETS_MAX)
        return mf_error_plain(err, EINVAL,
                              "%s: must be an array of at most %d targets, each "
                              "{\"webhook\": URL}, {\"function\": NAME} or {\"topic\": NAME}",
                              field, NOTIFY_TARGETS_MAX);
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *t = json_array_get(v, i);
        const char *key = NULL;
        json_t *val = NULL;
        if (json_is_object(t) && json_object_size(t) == 1) {
            void *it = json_object_iter((json_t *)t);
            key = json_object_iter_key(it);
            val = json_object_iter_value(it);
        }
        int kind = notify_kind_of(key);
        const char *s = json_string_value(val);
        if (kind < 0 || !s)
            return mf_error_plain(err, EINVAL,
                                  "%s[%zu]: must be one of {\"webhook\": URL}, {\"function\": "
                                  "NAME}, {\"topic\": NAME}",
                                  field, i);
        if (kind == NOTIFY_WEBHOOK && (strlen(s) > NOTIFY_URL_MAX || !url_ok(s)))
            return mf_error_plain(err, EINVAL,
                                  "%s[%zu].webhook: must be an http:// or https:// URL with a "
                                  "host, at most %d characters, without spaces",
                                  field, i, NOTIFY_URL_MAX);
        if (kind != NOTIFY_WEBHOOK && !name_ok(s))
            return mf_error_plain(err, EINVAL, "%s[%zu].%s: must match [A-Za-z0-9_.-]{1,64}", field,
                                  i, key);
        l.t[l.n].kind = kind;
        snprintf(l.t[l.n].to, sizeof l.t[l.n].to, "%s", s);
        l.n++;
    }
    *out = l;
    return 0;
}

json_t *notify_json(const notify_list_t *l)
{
    json_t *a = json_array();
    for (size_t i = 0; i < l->n; i++)
        json_array_append_new(a, json_pack("{ss}", notify_kind_name(l->t[i].kind), l->t[i].to));
    return a;
}
