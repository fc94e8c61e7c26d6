/* The server's alert rules (docs/alerts.md): every rule in memory with
 * the state of each of its series, evaluated every interval from
 * in-memory windows of each function's calls (fed by each finished
 * call's record, alerts_observe), the async queue's counters and the
 * budgets' spend, never from a query. A transition is written to the
 * store with the notifications it makes (the outbox) in one transaction,
 * before anything is sent; the outbox is delivered from here, retried
 * with backoff, and taken up again at the next start when the server
 * died first. On a store servers share, a claim keeps two servers from
 * delivering one notification. */
#ifndef MAYFLY_WATCH_ALERTS_H
#define MAYFLY_WATCH_ALERTS_H

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

#include "core/error.h"
#include "store/store.h"
#include "store/writer.h"
#include "watch/alert.h"

/* A notification is tried at most this many times, the n-th retry
 * retry_base_ms × 2^(n-1) after the attempt before; then it is given up
 * (kept in the outbox as failed, and counted). */
#define ALERTS_ATTEMPTS_MAX 8
/* A webhook's whole request (connecting, sending, the answer) gets this
 * long. */
#define ALERTS_WEBHOOK_TIMEOUT_MS 10000
/* A claim older than this is another server's that died with it. */
#define ALERTS_CLAIM_STALE_MS 60000
/* Transitions a rule's history keeps, newest first. */
#define ALERTS_HISTORY_MAX 50

typedef struct alerts alerts_t;
struct async;
struct topics;
struct budgets;
struct registry;

typedef struct alerts_config {
    unsigned interval_s;    /* evaluation, --alert-interval-s */
    unsigned retry_base_ms; /* --retry-base-ms */
    const char *node;       /* this server's node id (claims) */
    bool shared;            /* other servers share the store */
} alerts_config_t;

/* Reads the rules and their state from s (on the loop, at start), takes
 * up the notifications a server before left claimed, and starts the
 * evaluation and delivery timers (unreferenced). writer is the store's
 * (its jobs' db a store_t). */
int alerts_open(uv_loop_t *loop, store_t *s, store_writer_t *writer, struct registry *registry,
                const alerts_config_t *cfg, alerts_t **out, mf_error_t *err);
/* Where notifications go and values come from; each may be NULL. */
void alerts_set_sources(alerts_t *a, struct async *async, struct topics *topics,
                        struct budgets *budgets);
/* The server's own URL (externalURL, generatorURL's base). */
void alerts_set_url(alerts_t *a, const char *url);
/* A finished call's record (exec_set_meter's observer, beside the
 * meter's). Memory only. */
void alerts_observe(alerts_t *a, const store_record_t *rec);
/* The server stops: no more evaluations, deliveries or store jobs. NULL
 * is fine. */
void alerts_stop(alerts_t *a);
/* After the writer has stopped: closes the timers; frees once the last
 * webhook on its way has come back. NULL is fine. */
void alerts_close(alerts_t *a);

/* A put's or a delete's end. */
typedef void (*alerts_done_cb)(void *ud, int r, bool created, const mf_error_t *err);
/* Keeps the rule (created or replaced: with other settings its state
 * starts again). */
void alerts_put(alerts_t *a, const alert_rule_t *rule, alerts_done_cb done, void *ud);
/* -ENOENT through done when the tenant has no rule name. */
void alerts_delete(alerts_t *a, const char *tenant, const char *name, alerts_done_cb done,
                   void *ud);
/* The rule with its state, the value and state of each series, and (with
 * history) its transitions; NULL when the tenant has none of that name. */
json_t *alerts_show(alerts_t *a, const char *tenant, const char *name, bool history);
/* Every rule (of tenant, or of every tenant when NULL), by tenant and
 * name, without history. */
json_t *alerts_list(alerts_t *a, const char *tenant);

/* Budgets' thresholds notify through the same outbox: runs on the
 * writer's thread in the transaction that records the crossing (db its
 * store_t), queueing the Alertmanager document for each of the budget's
 * targets. ud is the alerts_t. */
struct budget;
struct store_budget_crossing;
int alerts_budget_crossed(void *ud, void *db, const struct budget *b,
                          const struct store_budget_crossing *c, mf_error_t *err);
/* After such a crossing is committed: delivers at once. */
void alerts_kick(void *ud);

#endif
