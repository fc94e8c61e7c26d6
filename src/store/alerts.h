/* Alert rules and the notification outbox in the store (watch/alerts.h,
 * docs/alerts.md). Both live in the store the servers share (mayfly.db,
 * or the PostgreSQL database), so that a rule, its state and its
 * transitions survive a restart, and a notification decided is written
 * before it is sent, delivered after a crash, and claimed by one server
 * at a time.
 *
 * Calls take a store_t used from one thread at a time (the loop's at
 * start, the records' writer's after) and return 0 or a negative errno
 * filling *err; -ENOENT when the rule does not exist. */
#ifndef MAYFLY_STORE_ALERTS_H
#define MAYFLY_STORE_ALERTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/tenant.h"
#include "store/store.h"

typedef struct store_alert_rule {
    char name[TENANT_QNAME_MAX + 1]; /* qualified */
    char *config_json;               /* owned: watch/alert.h's alert_rule_json */
    char *state_json;                /* owned: its series and history, or NULL (fresh) */
    int64_t created_ms, updated_ms;
} store_alert_rule_t;

/* A notification to deliver (or delivered). */
typedef struct store_alert_note {
    int64_t id; /* the store's, from store_alert_note_add */
    int64_t created_ms;
    char tenant[TENANT_MAX + 1];
    char kind[16]; /* webhook, function, topic (core/notify.h) */
    char *target;  /* owned: the URL or the name within the tenant */
    char *body;    /* owned: the Alertmanager document */
    int attempts;  /* made so far */
    int64_t next_ms;
} store_alert_note_t;

/* Creates or replaces the rule r->name; a replacement with other
 * settings (config_json) forgets the state, one with the same keeps it.
 * *created says which. */
int store_alert_rule_put(store_t *s, const store_alert_rule_t *r, bool *created, mf_error_t *err);
/* Keeps the rule's state (-ENOENT when it is gone). */
int store_alert_state_put(store_t *s, const char *name, const char *state_json, mf_error_t *err);
int store_alert_rule_delete(store_t *s, const char *name, mf_error_t *err);
/* Every rule, by name. */
int store_alert_rule_list(store_t *s, store_alert_rule_t **out, size_t *count, mf_error_t *err);
void store_alert_rule_list_free(store_alert_rule_t *list, size_t count);

/* Adds n to the outbox, due at once; n->id is set. */
int store_alert_note_add(store_t *s, store_alert_note_t *n, mf_error_t *err);
/* Claims for node at most limit notifications due at now and not done,
 * unclaimed or claimed before stale_ms (a node that died with them): no
 * two calls claim one row, whichever servers make them. */
int store_alert_note_claim(store_t *s, const char *node, int64_t now_ms, int64_t stale_ms,
                           int limit, store_alert_note_t **out, size_t *count, mf_error_t *err);
/* Done with id: delivered (or given up, delivered false), at now. */
int store_alert_note_finish(store_t *s, int64_t id, bool delivered, int64_t now_ms,
                            const char *last_error, mf_error_t *err);
/* Tried and failed: due again at next_ms, attempts made so far, unclaimed. */
int store_alert_note_retry(store_t *s, int64_t id, int attempts, int64_t next_ms,
                           const char *last_error, mf_error_t *err);
/* At a server's start: unclaims what a server before it on the same data
 * claimed (node NULL: every claim, for a store only one server uses), and
 * forgets notifications done before done_before_ms. */
int store_alert_note_recover(store_t *s, const char *node, int64_t done_before_ms, mf_error_t *err);
void store_alert_note_list_free(store_alert_note_t *list, size_t count);

#endif
