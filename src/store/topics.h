/* Topics, their subscriptions and the messages published to them, in the
 * async queue's database (DATA/queue.db, or the PostgreSQL database): a
 * publish writes its message and the events of its deliveries in one
 * transaction of the queue's writer. The calls take a store_queue_t
 * (store/queue.h) and follow its rules: one thread per connection, 0 or a
 * negative errno, -ENOENT for what is not there. */
#ifndef MAYFLY_STORE_TOPICS_H
#define MAYFLY_STORE_TOPICS_H

#include "core/tenant.h"
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "store/queue.h"

typedef struct store_topic {
    char name[TENANT_QNAME_MAX + 1];
    int64_t created_ms;
} store_topic_t;

typedef struct store_subscription {
    char id[37];
    char topic[TENANT_QNAME_MAX + 1];
    char function[TENANT_QNAME_MAX + 1];
    char *filter;             /* the filter policy's JSON (owned), or NULL: every message */
    int64_t created_ms;
    /* The tenant id its events' calls run for (tenant isolation), or "". */
    char tenant_id[STORE_TENANT_ID_MAX + 1];
} store_subscription_t;

typedef struct store_topic_message {
    char message_id[37];
    const char *topic;
    const char *subject;      /* or NULL */
    const void *message;
    size_t message_len;
    const char *attributes;   /* SNS's MessageAttributes JSON, or NULL */
    int64_t time_ms;
    int deliveries;           /* the subscriptions it was queued for */
} store_topic_message_t;

/* Creates the topic unless it exists. */
int store_topic_put(store_queue_t *q, const char *name, int64_t created_ms, mf_error_t *err);
/* Deletes the topic and its subscriptions (its messages stay until
 * pruned); -ENOENT if it is not there. */
int store_topic_delete(store_queue_t *q, const char *name, mf_error_t *err);
/* By name. */
int store_topic_list(store_queue_t *q, store_topic_t **out, size_t *count, mf_error_t *err);

int store_subscription_put(store_queue_t *q, const store_subscription_t *s, mf_error_t *err);
/* -ENOENT if it is not there. */
int store_subscription_delete(store_queue_t *q, const char *id, mf_error_t *err);
/* Every subscription, oldest first. */
int store_subscription_list(store_queue_t *q, store_subscription_t **out, size_t *count,
                            mf_error_t *err);
void store_subscription_list_free(store_subscription_t *list, size_t count);
/* Deletes a deleted function's subscriptions. */
int store_subscriptions_forget_function(store_queue_t *q, const char *function, mf_error_t *err);

int store_topic_message_put(store_queue_t *q, const store_topic_message_t *m, mf_error_t *err);
/* Deletes messages published before before_ms, 1,000 at a time; *n says
 * how many went. */
int store_topic_messages_prune(store_queue_t *q, int64_t before_ms, int64_t *n, mf_error_t *err);
/* How many messages of topic are kept. */
int store_topic_message_count(store_queue_t *q, const char *topic, int64_t *n, mf_error_t *err);

#endif
