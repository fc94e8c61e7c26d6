/* Topics (store/topics.h), on both backends (a real queue.db in a fresh
 * directory, a fresh PostgreSQL database; store_backends.h): a topic's
 * deletion takes its subscriptions, a function's forgetting takes its
 * own, published messages are counted and pruned by age, and everything
 * is still there when the queue is opened again. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store_backends.h"

#include "store/queue.h"
#include "store/topics.h"

#define OK(call)                                                                                   \
    do {                                                                                           \
        mf_error_t err_ = MF_ERROR_INIT;                                                           \
        if ((call) < 0)                                                                            \
            fail_msg("%s: %s", #call, err_.msg);                                                   \
    } while (0)

static void put_sub(store_queue_t *q, const char *id, const char *topic, const char *function,
                    const char *filter, int64_t created_ms)
{
    store_subscription_t s = {.filter = (char *)filter, .created_ms = created_ms};
    snprintf(s.id, sizeof s.id, "%s", id);
    snprintf(s.topic, sizeof s.topic, "%s", topic);
    snprintf(s.function, sizeof s.function, "%s", function);
    mf_error_t err = MF_ERROR_INIT;
    if (store_subscription_put(q, &s, &err) < 0)
        fail_msg("store_subscription_put: %s", err.msg);
}

/* "topic/function" of every subscription, in the store's order. */
static void sub_list(store_queue_t *q, char *out, size_t size)
{
    store_subscription_t *list = NULL;
    size_t n = 0;
    mf_error_t err = MF_ERROR_INIT;
    if (store_subscription_list(q, &list, &n, &err) < 0)
        fail_msg("store_subscription_list: %s", err.msg);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(out);
        snprintf(out + len, size - len, "%s%s/%s%s", i ? " " : "", list[i].topic, list[i].function,
                 list[i].filter ? "+f" : "");
    }
    store_subscription_list_free(list, n);
}

static void test_topics_and_subscriptions(void **state)
{
    const backend_t *b = *state;
    store_queue_t *q = open_queue(b);
    mf_error_t err = MF_ERROR_INIT;
    OK(store_topic_put(q, "orders", 1000, &err_));
    OK(store_topic_put(q, "alerts", 2000, &err_));
    /* A second put keeps the first's time. */
    OK(store_topic_put(q, "orders", 5000, &err_));
    put_sub(q, "s1", "orders", "a", NULL, 10);
    put_sub(q, "s2", "orders", "b", "{\"k\":[\"v\"]}", 11);
    put_sub(q, "s3", "alerts", "a", NULL, 12);
    char subs[256];
    sub_list(q, subs, sizeof subs);
    assert_string_equal(subs, "orders/a orders/b+f alerts/a");

    /* A deleted function's subscriptions go, on every topic. */
    OK(store_subscriptions_forget_function(q, "a", &err_));
    sub_list(q, subs, sizeof subs);
    assert_string_equal(subs, "orders/b+f");
    assert_int_equal(store_subscription_delete(q, "s1", &err), -ENOENT);

    /* A deleted topic takes its subscriptions. */
    put_sub(q, "s4", "alerts", "c", NULL, 13);
    OK(store_topic_delete(q, "orders", &err_));
    sub_list(q, subs, sizeof subs);
    assert_string_equal(subs, "alerts/c");
    assert_int_equal(store_topic_delete(q, "orders", &err), -ENOENT);
    assert_non_null(strstr(err.msg, "orders"));
    store_queue_close(q);

    /* All of it is kept. */
    q = open_queue(b);
    store_topic_t *topics = NULL;
    size_t n = 0;
    OK(store_topic_list(q, &topics, &n, &err_));
    assert_int_equal(n, 1);
    assert_string_equal(topics[0].name, "alerts");
    assert_int_equal(topics[0].created_ms, 2000);
    free(topics);
    OK(store_subscription_delete(q, "s4", &err_));
    sub_list(q, subs, sizeof subs);
    assert_string_equal(subs, "");
    store_queue_close(q);
}

static void put_message(store_queue_t *q, const char *id, const char *topic, int64_t time_ms)
{
    store_topic_message_t m = {
        .topic = topic, .message = "hello", .message_len = 5, .time_ms = time_ms, .deliveries = 2};
    snprintf(m.message_id, sizeof m.message_id, "%s", id);
    mf_error_t err = MF_ERROR_INIT;
    if (store_topic_message_put(q, &m, &err) < 0)
        fail_msg("store_topic_message_put: %s", err.msg);
}

static void test_messages_are_counted_and_pruned_by_age(void **state)
{
    store_queue_t *q = open_queue(*state);
    char id[40];
    /* More than one batch of the prune. */
    for (int i = 0; i < 2500; i++) {
        snprintf(id, sizeof id, "old-%d", i);
        put_message(q, id, "t", 1000 + i);
    }
    put_message(q, "new-1", "t", 900000);
    put_message(q, "new-2", "u", 900001);
    int64_t n = 0;
    OK(store_topic_message_count(q, "t", &n, &err_));
    assert_int_equal(n, 2501);
    OK(store_topic_messages_prune(q, 800000, &n, &err_));
    assert_int_equal(n, 2500);
    OK(store_topic_message_count(q, "t", &n, &err_));
    assert_int_equal(n, 1);
    OK(store_topic_message_count(q, "u", &n, &err_));
    assert_int_equal(n, 1);
    /* A message id is written once. */
    store_topic_message_t dup = {.topic = "t", .message = "x", .message_len = 1, .time_ms = 1};
    snprintf(dup.message_id, sizeof dup.message_id, "new-1");
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(store_topic_message_put(q, &dup, &err), -EIO);
    store_queue_close(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_topics_and_subscriptions, setup_backend, teardown),
        cmocka_unit_test_setup_teardown(test_messages_are_counted_and_pruned_by_age, setup_backend,
                                        teardown),
    };
    return run_on_both_backends("topics", tests);
}
