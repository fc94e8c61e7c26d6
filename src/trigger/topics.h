/* Topics: SNS-style publish and subscribe on the async queue.
 *
 * A topic has subscriptions, each a function with an optional filter
 * policy (trigger/filter_policy.h) on the message's attributes. Publishing
 * a message writes it and one queued event per matching subscription in
 * one durable transaction of the queue's writer (async_enqueue_batch), and
 * is answered once that is on disk; each event then runs, retries and
 * dead-letters on its own by its function's async settings. Each event is
 * SNS's Lambda event: {"Records": [{"EventSource": "aws:sns", "Sns": …}]}.
 *
 * Topics and subscriptions live in queue.db and, for publishing without a
 * read, in memory. A change is made in memory when asked and answered once
 * written: the writer runs jobs in order, so what is on disk follows. */
#ifndef MAYFLY_TRIGGER_TOPICS_H
#define MAYFLY_TRIGGER_TOPICS_H

#include "core/tenant.h"
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/error.h"
#include "core/id.h"
#include "invoke/async.h"
#include "registry/registry.h"
#include "trigger/filter_policy.h"

typedef struct topics_config {
    const char *region;          /* in the topics' ARNs */
    int retention_days;          /* published messages are kept this long (7) */
    size_t max_message_bytes;    /* message, subject and attributes together (256 KiB) */
} topics_config_t;

#define TOPICS_CONFIG_DEFAULT { "us-east-1", 7, 256u << 10 }

#define TOPIC_SUBSCRIPTIONS_MAX 100 /* per topic: a publish's fan-out is bounded */
#define TOPIC_SUBJECT_MAX 100       /* as SNS */
#define TOPICS_ACCOUNT "000000000000" /* the account in ARNs, as the Lambda API's */

typedef struct topics topics_t;

typedef struct topic_subscription {
    char id[ID_UUID_LEN + 1];
    char function[TENANT_QNAME_MAX + 1];
    char *filter;                /* the policy's JSON as given, or NULL: every message */
    filter_policy_t *policy;     /* parsed, or NULL */
    int64_t created_ms;
    /* The tenant id its events' calls run for (a function with tenant
     * isolation, which unlike Lambda's may subscribe), or "". */
    char tenant_id[FN_TENANT_ID_MAX + 1];
} topic_subscription_t;

/* A topic as it is now; valid until the loop next changes topics. */
typedef struct topic_view {
    const char *name;
    int64_t created_ms;
    const topic_subscription_t *subs; /* oldest first */
    size_t nsubs;
} topic_view_t;

/* Loads the topics from the queue's file (subscriptions of functions that
 * no longer exist go). */
int topics_open(uv_loop_t *loop, async_t *async, registry_t *registry,
                const topics_config_t *cfg, topics_t **out, mf_error_t *err);
/* Before async_close: stops the pruning of old messages. */
void topics_close(topics_t *t);

/* A topic name: [A-Za-z0-9_-]{1,64}, so that a permission topic:NAME can
 * name it. */
bool topics_valid_name(const char *name);
/* arn:aws:sns:REGION:ACCOUNT:NAME into out. */
void topics_arn(const topics_t *t, const char *name, char *out, size_t size);

/* -ENOENT when there is no such topic. */
int topics_get(topics_t *t, const char *name, topic_view_t *out, mf_error_t *err);
/* Calls cb for every topic, by name. */
void topics_list(topics_t *t, void (*cb)(const topic_view_t *v, void *ud), void *ud);

/* r is 0 or the error; created says a new topic or subscription was made
 * (false: it existed already, as asked). */
typedef void (*topics_done_cb)(void *ud, int r, bool created, const mf_error_t *err);

/* Creates the topic unless it exists; -EINVAL for a bad name. */
int topics_create(topics_t *t, const char *name, topics_done_cb cb, void *ud, mf_error_t *err);
/* Deletes the topic and its subscriptions; -ENOENT at once. */
int topics_delete(topics_t *t, const char *name, topics_done_cb cb, void *ud, mf_error_t *err);
/* Subscribes function (a name within the topic's tenant, core/tenant.h;
 * it must exist) to topic with filter (NULL or JSON null: every message),
 * its calls running for tenant_id (NULL or "": none; required by a
 * function with tenant isolation, refused by one without: -EINVAL).
 * Subscribing a function again with the same filter and tenant id is its
 * subscription (created false), with another one
 * -EEXIST. id receives the subscription's id at once. */
int topics_subscribe(topics_t *t, const char *topic, const char *function, const json_t *filter,
                     const char *tenant_id, char id[ID_UUID_LEN + 1], topics_done_cb cb,
                     void *ud, mf_error_t *err);
/* -ENOENT at once when the topic has no such subscription. */
int topics_unsubscribe(topics_t *t, const char *topic, const char *id, topics_done_cb cb,
                       void *ud, mf_error_t *err);

/* A message to publish. */
typedef struct topic_message {
    const char *message;         /* UTF-8 text */
    size_t message_len;
    const char *subject;         /* or NULL */
    const json_t *attributes;    /* or NULL */
    bool short_attributes;       /* {"name": value} allowed beside {"Type","Value"} */
    /* Where the publish comes from (api_call_origin_t), applied to every
     * delivery. */
    const char *traceparent;
    const char *caller_request_id;
    int call_depth;
} topic_message_t;

/* One queued delivery. */
typedef struct topic_delivery {
    char subscription[ID_UUID_LEN + 1];
    char function[TENANT_QNAME_MAX + 1];
    char request_id[ID_UUID_LEN + 1];
} topic_delivery_t;

typedef void (*topics_published_cb)(void *ud, int r, const char *message_id,
                                    const topic_delivery_t *deliveries, size_t n,
                                    const mf_error_t *err);

/* Publishes m to topic; cb once the message and its deliveries are on
 * disk. Fails at once with -ENOENT (no topic), -EINVAL (a bad subject or
 * attribute, an empty message), -EFBIG (too large) or -ESHUTDOWN. */
int topics_publish(topics_t *t, const char *topic, const topic_message_t *m,
                   topics_published_cb cb, void *ud, mf_error_t *err);

/* A deleted function's subscriptions go, from the store too when stored
 * (false where another server sharing the store deleted them). */
void topics_function_removed(topics_t *t, const char *function, bool stored);

/* ---- changes other servers made (a shared store) --------------------------- */

struct store_topic;
struct store_subscription;
/* How many changes the calls above made in memory: it moves with each, so
 * that a reader of the store can tell that what it read may be older than
 * what is in memory (and read again). */
uint64_t topics_changes(const topics_t *t);
/* Takes the topics and subscriptions as the store holds them now (read
 * off the loop, with the queue's writer: store/topics.h) in place of what
 * is in memory; the subscriptions' filters are taken over. On the loop. */
void topics_replace(topics_t *t, const struct store_topic *list, size_t n,
                    struct store_subscription *subs, size_t ns);

#endif
