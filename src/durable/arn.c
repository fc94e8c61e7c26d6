/* Execution ARNs, as Lambda writes them (see durable/durable.h). They
 * arrive from outside in request paths, so this parser sees anything. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "durable/durable.h"

static bool arn__chars(const char *s, size_t n, const char *set)
{
    return strspn(s, set) >= n;
}

#define ARN_NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"

bool durable_name_valid(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= 64 && arn__chars(s, n, ARN_NAME_CHARS);
}

/* Decodes %XX escapes into out (size bytes); false on a bad escape or
 * when it does not fit. */
static bool arn__decode(const char *s, char *out, size_t size)
{
    size_t o = 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (c == '%') {
            unsigned v;
            if (!p[1] || !p[2] || sscanf(p + 1, "%2x", &v) != 1 ||
                !strchr("0123456789abcdefABCDEF", p[1]) || !strchr("0123456789abcdefABCDEF", p[2]))
                return false;
            c = (char)v;
            p += 2;
        }
        if (c == '\0' || o + 1 >= size)
            return false;
        out[o++] = c;
    }
    out[o] = '\0';
    return true;
}

/* Copies the field [s, s+n) into out (size bytes) if it fits and is made
 * of set's characters. */
static bool arn__field(const char *s, size_t n, char *out, size_t size, const char *set, size_t min)
{
    if (n < min || n >= size || !arn__chars(s, n, set))
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    return true;
}

int durable_arn_parse(const char *in, durable_arn_t *out)
{
    char s[512];
    memset(out, 0, sizeof *out);
    if (!arn__decode(in, s, sizeof s))
        return -EINVAL;
    static const char prefix[] = "arn:aws:lambda:";
    if (strncmp(s, prefix, sizeof prefix - 1))
        return -EINVAL;
    const char *p = s + sizeof prefix - 1;
    size_t n = strcspn(p, ":");
    if (!p[n] || !arn__field(p, n, out->region, sizeof out->region,
                             "abcdefghijklmnopqrstuvwxyz0123456789-", 1))
        return -EINVAL;
    p += n + 1;
    n = strcspn(p, ":");
    if (!p[n] || !arn__field(p, n, out->account, sizeof out->account, "0123456789", 12))
        return -EINVAL;
    p += n + 1;
    static const char fn[] = "function:";
    if (strncmp(p, fn, sizeof fn - 1))
        return -EINVAL;
    p += sizeof fn - 1;
    n = strcspn(p, ":/");
    if (p[n] != ':' || !arn__field(p, n, out->function, sizeof out->function, ARN_NAME_CHARS, 1))
        return -EINVAL;
    p += n + 1;
    static const char qual[] = "$LATEST/durable-execution/";
    if (strncmp(p, qual, sizeof qual - 1))
        return -EINVAL;
    p += sizeof qual - 1;
    n = strcspn(p, "/");
    if (p[n] != '/' || !arn__field(p, n, out->name, sizeof out->name, ARN_NAME_CHARS, 1))
        return -EINVAL;
    p += n + 1;
    n = strlen(p);
    if (!arn__field(p, n, out->id, sizeof out->id, "0123456789abcdef-", 36))
        return -EINVAL;
    return 0;
}

void durable_arn_format(const char *region, const char *function, const char *name, const char *id,
                        char *out, size_t len)
{
    char fn_arn[256];
    tenant_arn("lambda", region, "function:", function, fn_arn, sizeof fn_arn);
    snprintf(out, len, "%s:$LATEST/durable-execution/%s/%s", fn_arn, name, id);
}
