/* Whose an object is. Every object a tenant makes (a function, a KV store,
 * a volume, a schedule, a topic, …) is known inside mayfly by its
 * qualified name: its own name for the tenant "default", else
 * "TENANT~NAME". No name a user gives may hold '~' (every object's names
 * are [A-Za-z0-9_.-]), and a tenant is [a-z0-9-]{1,32}, so a qualified
 * name tells its tenant and its name within it, and two tenants' objects
 * of one name never meet: in the registry, the stores, the queue, the
 * records, the logs. Data from before tenants is the default tenant's as
 * it stands (docs/metering.md, "Tenants and roles"). */
#ifndef MAYFLY_CORE_TENANT_H
#define MAYFLY_CORE_TENANT_H

#include <stdbool.h>
#include <stddef.h>

#define TENANT_MAX 32       /* the longest tenant name */
#define TENANT_LOCAL_MAX 64 /* the longest name of an object within its tenant */
/* The longest qualified name: size buffers holding one by it. */
#define TENANT_QNAME_MAX (TENANT_MAX + 1 + TENANT_LOCAL_MAX)
#define TENANT_DEFAULT "default"
#define TENANT_SEP '~'

/* Whether s is a tenant's name: [a-z0-9-]{1,32}. */
bool tenant_valid(const char *s, size_t len);
/* The qualified name of the tenant's object local into out; false (out
 * "") when it would not fit. */
bool tenant_qualify(const char *tenant, const char *local, char *out, size_t size);
/* The name within its tenant of a qualified name whose tenant, if it
 * names one, is valid; NULL when it names a bad one. */
const char *tenant_check(const char *qname);
/* The tenant of a qualified name into out ("default" for a name without
 * one). */
void tenant_of(const char *qname, char out[TENANT_MAX + 1]);
/* The name within its tenant: a pointer into qname. */
const char *tenant_local(const char *qname);
/* Whether the object qname is tenant's. */
bool tenant_owns(const char *tenant, const char *qname);
/* What a name that the object owner's settings give (a destination, a
 * volume, a schedule's target) is qualified: a reference is always to an
 * object of the same tenant. */
bool tenant_resolve(const char *owner, const char *local, char *out, size_t size);
/* The tenant's account id in ARNs: 12 digits, "000000000000" for
 * "default", else derived from its name. */
void tenant_account(const char *tenant, char out[13]);
/* Takes the tenants out of the qualified names in a message (in place),
 * so that one tenant's answers name its objects as it does. */
void tenant_strip(char *msg);
/* "arn:aws:SERVICE:REGION:ACCOUNT:KINDNAME" for the object qname (kind
 * "function:" for a function, "" for a topic) into out: the account is
 * its tenant's, the name the one within it. */
void tenant_arn(const char *service, const char *region, const char *kind, const char *qname,
                char *out, size_t size);

#endif
