/* Where a notification goes (docs/alerts.md, "Notifications"): an alert
 * rule's "notify" and a budget's, a list of targets each one of
 * {"webhook": URL}, {"function": NAME} or {"topic": NAME}. Kept here,
 * beside the other small JSON pieces, because two rooms take the same
 * list: meter/ (budgets) and watch/ (alert rules, and the delivery of
 * both). Pure: parsing and printing only. */
#ifndef MAYFLY_CORE_NOTIFY_H
#define MAYFLY_CORE_NOTIFY_H

#include <jansson.h>
#include <stddef.h>

#include "core/error.h"

#define NOTIFY_TARGETS_MAX 8
#define NOTIFY_URL_MAX 512 /* a webhook's URL; a name is [A-Za-z0-9_.-]{1,64} */

typedef enum { NOTIFY_WEBHOOK, NOTIFY_FUNCTION, NOTIFY_TOPIC } notify_kind_t;

typedef struct notify_target {
    notify_kind_t kind;
    char to[NOTIFY_URL_MAX + 1]; /* the URL, or the name within the tenant */
} notify_target_t;

typedef struct notify_list {
    notify_target_t t[NOTIFY_TARGETS_MAX];
    size_t n;
} notify_list_t;

/* "webhook", "function", "topic". */
const char *notify_kind_name(notify_kind_t k);
/* The kind named s; -1 when none is. */
int notify_kind_of(const char *s);
/* Parses v, the member field of a body (named in messages), into out: an
 * array of at most NOTIFY_TARGETS_MAX objects of one member each. A
 * webhook's URL is http:// or https:// with a host; a name matches
 * [A-Za-z0-9_.-]{1,64}. -EINVAL naming the field and the target. */
int notify_parse(const json_t *v, const char *field, notify_list_t *out, mf_error_t *err);
/* The list as notify_parse takes it. */
json_t *notify_json(const notify_list_t *l);

#endif
