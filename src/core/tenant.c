#include "core/tenant.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

bool tenant_valid(const char *s, size_t len)
{
    if (len == 0 || len > TENANT_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '-')
            return false;
    return true;
}

bool tenant_qualify(const char *tenant, const char *local, char *out, size_t size)
{
    int n = !tenant || !*tenant || !strcmp(tenant, TENANT_DEFAULT)
                ? snprintf(out, size, "%s", local)
                : snprintf(out, size, "%s%c%s", tenant, TENANT_SEP, local);
    if (n < 0 || (size_t)n >= size) {
        if (size)
            out[0] = '\0';
        return false;
    }
    return true;
}

const char *tenant_check(const char *qname)
{
    const char *sep = strchr(qname, TENANT_SEP);
    if (!sep)
        return qname;
    return tenant_valid(qname, (size_t)(sep - qname)) && strcmp(sep + 1, "") ? sep + 1 : NULL;
}

void tenant_of(const char *qname, char out[TENANT_MAX + 1])
{
    const char *sep = strchr(qname, TENANT_SEP);
    if (!sep || sep == qname || sep - qname > TENANT_MAX)
        snprintf(out, TENANT_MAX + 1, "%s", TENANT_DEFAULT);
    else
        snprintf(out, TENANT_MAX + 1, "%.*s", (int)(sep - qname), qname);
}

const char *tenant_local(const char *qname)
{
    const char *sep = strchr(qname, TENANT_SEP);
    return sep ? sep + 1 : qname;
}

bool tenant_owns(const char *tenant, const char *qname)
{
    char t[TENANT_MAX + 1];
    tenant_of(qname, t);
    return !strcmp(t, tenant && *tenant ? tenant : TENANT_DEFAULT);
}

bool tenant_resolve(const char *owner, const char *local, char *out, size_t size)
{
    char t[TENANT_MAX + 1];
    tenant_of(owner, t);
    return tenant_qualify(t, tenant_local(local), out, size);
}

void tenant_account(const char *tenant, char out[13])
{
    if (!strcmp(tenant, TENANT_DEFAULT)) {
        snprintf(out, 13, "000000000000");
        return;
    }
    uint64_t h = 14695981039346656037ULL; /* FNV-1a */
    for (const char *p = tenant; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    uint64_t n = h % 1000000000000ULL;
    snprintf(out, 13, "%012llu", (unsigned long long)(n ? n : 1));
}

void tenant_arn(const char *service, const char *region, const char *kind, const char *qname,
                char *out, size_t size)
{
    char t[TENANT_MAX + 1], account[13];
    tenant_of(qname, t);
    tenant_account(t, account);
    snprintf(out, size, "arn:aws:%s:%s:%s:%s%s", service, region, account, kind,
             tenant_local(qname));
}

static bool tenant__char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

void tenant_strip(char *msg)
{
    char *w = msg;
    for (char *r = msg; *r;) {
        /* A run of a tenant's characters right after something that is not
         * part of a name, ended by the separator, is a tenant: drop it. */
        bool starts = r == msg || !(tenant__char(r[-1]) || (r[-1] >= 'A' && r[-1] <= 'Z') ||
                                    r[-1] == '_' || r[-1] == '.');
        if (starts && tenant__char(*r)) {
            size_t n = 0;
            while (tenant__char(r[n]))
                n++;
            if (r[n] == TENANT_SEP && n <= TENANT_MAX) {
                r += n + 1;
                continue;
            }
            memmove(w, r, n);
            w += n;
            r += n;
            continue;
        }
        *w++ = *r++;
    }
    *w = '\0';
}
