/* Changes other nodes make (src/cluster/cluster.h): the notifications'
 * payloads as the store sends them, and what is refused; a burst gathered
 * into one batch; the reconnect backoff; the node's id. Then, on the
 * PostgreSQL that MAYFLY_TEST_PG names, the store's side: a change of a
 * kept table and a batch of log lines are heard on the channel, other
 * nodes' lines are read back by node and range, and a listener whose
 * connection is killed connects again; and the listening thread hands
 * what it hears to the loop. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "store_backends.h"

#include "cluster/cluster.h"
#include "core/clock.h"
#include "store/listen.h"

static cluster_change_t parsed(const char *payload)
{
    cluster_change_t c;
    int r = cluster_change_parse(payload, strlen(payload), &c);
    if (r < 0)
        fail_msg("`%s` refused", payload);
    return c;
}

static void test_payloads_parse(void **state)
{
    cluster_change_t c = parsed("function hello-world_1");
    assert_int_equal(c.kind, CLUSTER_FUNCTION);
    assert_string_equal(c.name, "hello-world_1");
    c = parsed("url f");
    assert_int_equal(c.kind, CLUSTER_URL);
    assert_string_equal(c.name, "f");
    c = parsed("topic orders");
    assert_int_equal(c.kind, CLUSTER_TOPIC);
    c = parsed("schedule nightly.backup");
    assert_int_equal(c.kind, CLUSTER_SCHEDULE);
    assert_string_equal(c.name, "nightly.backup");
    /* The longest qualified name (core/tenant.h). */
    char longest[TENANT_QNAME_MAX + 1];
    memset(longest, 'n', TENANT_QNAME_MAX);
    longest[TENANT_MAX] = TENANT_SEP;
    longest[TENANT_QNAME_MAX] = '\0';
    char buf[160];
    snprintf(buf, sizeof buf, "function %s", longest);
    assert_string_equal(parsed(buf).name, longest);
    assert_string_equal(parsed("url team-a~web").name, "team-a~web");

    c = parsed("logs host.example-0a1b2c3d 17 42 fa fb-2");
    assert_int_equal(c.kind, CLUSTER_LOGS);
    assert_string_equal(c.node, "host.example-0a1b2c3d");
    assert_int_equal(c.first_id, 17);
    assert_int_equal(c.last_id, 42);
    assert_int_equal(c.functions_len, strlen("fa fb-2"));
    assert_memory_equal(c.functions, "fa fb-2", c.functions_len);
    c = parsed("logs n 5 5 one");
    assert_int_equal(c.first_id, 5);
    assert_int_equal(c.last_id, 5);
}

static void test_bad_payloads_are_refused(void **state)
{
    char too_long[TENANT_QNAME_MAX + 2];
    memset(too_long, 'n', TENANT_QNAME_MAX + 1);
    too_long[TENANT_QNAME_MAX + 1] = '\0';
    char long_name[160];
    snprintf(long_name, sizeof long_name, "function %s", too_long);
    const char *bad[] = {
        "",
        "function",
        "function ",
        "functions f",
        "Function f",
        "function f g",
        "function f ",
        "function  f",
        "function f/../x",
        "function f\n",
        "url a:b",
        long_name,
        "logs",
        "logs n",
        "logs n 1",
        "logs n 1 2",
        "logs n 1 2 ",
        "logs n 1 2 f ",
        "logs n 1 2 f  g",
        "logs n 2 1 f",
        "logs n -1 2 f",
        "logs n x 2 f",
        "logs n 1 1234567890123456789 f",
        "logs n/x 1 2 f",
        "logs n 1 2 f.g",
        "topic t\xff",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cluster_change_t c;
        if (cluster_change_parse(bad[i], strlen(bad[i]), &c) != -EINVAL)
            fail_msg("`%s` was taken", bad[i]);
    }
    /* The length given is what counts, NUL or not. */
    cluster_change_t c;
    assert_int_equal(cluster_change_parse("function f\0g", 12, &c), -EINVAL);
    assert_int_equal(cluster_change_parse("function fg", 10, &c), 0);
    assert_string_equal(c.name, "f");
}

static void add(cluster_batch_t *b, const char *payload, const char *self)
{
    cluster_change_t c = parsed(payload);
    cluster_batch_add(b, &c, self);
}

static const cluster_lines_t *lines_of(const cluster_batch_t *b, const char *fn, const char *node)
{
    for (size_t i = 0; i < b->nlines; i++)
        if (!strcmp(b->lines[i].function, fn) && !strcmp(b->lines[i].node, node))
            return &b->lines[i];
    return NULL;
}

static void test_a_burst_is_one_batch(void **state)
{
    cluster_batch_t b;
    cluster_batch_init(&b);
    assert_true(cluster_batch_empty(&b));
    add(&b, "function f", "me");
    add(&b, "function f", "me");
    add(&b, "function g", "me");
    add(&b, "topic t", "me");
    add(&b, "logs other 10 20 f g", "me");
    add(&b, "logs other 30 31 f", "me");
    add(&b, "logs other 5 6 f", "me");
    add(&b, "logs third 25 26 f", "me");
    add(&b, "logs me 40 50 f", "me"); /* this node's own: its followers had them */
    assert_false(cluster_batch_empty(&b));
    assert_false(b.all);
    assert_int_equal(b.names[CLUSTER_FUNCTION].len, 2);
    assert_non_null(map_get(&b.names[CLUSTER_FUNCTION], "f"));
    assert_non_null(map_get(&b.names[CLUSTER_FUNCTION], "g"));
    assert_int_equal(b.names[CLUSTER_TOPIC].len, 1);
    assert_int_equal(b.names[CLUSTER_URL].len, 0);
    assert_int_equal(b.nlines, 3);
    const cluster_lines_t *l = lines_of(&b, "f", "other");
    assert_non_null(l);
    assert_int_equal(l->first_id, 5);
    assert_int_equal(l->last_id, 31);
    l = lines_of(&b, "g", "other");
    assert_int_equal(l->first_id, 10);
    assert_int_equal(l->last_id, 20);
    assert_null(lines_of(&b, "f", "me"));
    assert_non_null(lines_of(&b, "f", "third"));

    /* Merged into another, and emptied. */
    cluster_batch_t into;
    cluster_batch_init(&into);
    add(&into, "function h", "me");
    add(&into, "logs other 100 101 f", "me");
    cluster_batch_merge(&into, &b);
    assert_true(cluster_batch_empty(&b));
    assert_int_equal(into.names[CLUSTER_FUNCTION].len, 3);
    l = lines_of(&into, "f", "other");
    assert_int_equal(l->first_id, 5);
    assert_int_equal(l->last_id, 101);
    assert_int_equal(into.nlines, 3);

    cluster_batch_t all;
    cluster_batch_init(&all);
    all.all = true;
    assert_false(cluster_batch_empty(&all));
    cluster_batch_merge(&into, &all);
    assert_true(into.all);
    cluster_batch_release(&into);
    cluster_batch_release(&b);
    cluster_batch_release(&all);
}

static void test_backoff_doubles_to_five_seconds(void **state)
{
    unsigned want[] = {200, 400, 800, 1600, 3200, 5000, 5000}, ms = 0;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        ms = cluster_backoff_ms(ms);
        assert_int_equal(ms, want[i]);
    }
}

static void test_node_ids(void **state)
{
    char id[CLUSTER_NODE_ID_MAX + 1];
    cluster_node_id_format("web-1.example.com", 0x0a1b2c3d, id, sizeof id);
    assert_string_equal(id, "web-1.example.com-0a1b2c3d");
    cluster_node_id_format("", 1, id, sizeof id);
    assert_string_equal(id, "node-00000001");
    cluster_node_id_format(NULL, 1, id, sizeof id);
    assert_string_equal(id, "node-00000001");
    cluster_node_id_format("a b/c\xc3\xa9", 0xffffffff, id, sizeof id);
    assert_string_equal(id, "a_b_c__-ffffffff");
    char host[300];
    memset(host, 'h', sizeof host - 1);
    host[sizeof host - 1] = '\0';
    cluster_node_id_format(host, 2, id, sizeof id);
    assert_int_equal(strlen(id), CLUSTER_NODE_ID_MAX);
    assert_string_equal(id + CLUSTER_NODE_ID_MAX - 9, "-00000002");
    /* Every id is a name a notification's payload takes. */
    char payload[128];
    snprintf(payload, sizeof payload, "logs %s 1 2 f", id);
    assert_string_equal(parsed(payload).node, id);
    snprintf(payload, sizeof payload, "logs %s 1 2 f", cluster_node_id());
    assert_string_equal(parsed(payload).node, cluster_node_id());
    assert_ptr_equal(cluster_node_id(), cluster_node_id());
}

/* ---- on PostgreSQL ---------------------------------------------------------------- */

typedef struct heard {
    char payloads[16][256];
    size_t n;
} heard_t;

static void on_notify(void *ud, const char *payload, size_t len)
{
    heard_t *h = ud;
    if (h->n < 16)
        snprintf(h->payloads[h->n++], sizeof h->payloads[0], "%.*s", (int)len, payload);
}

/* Reads l until it has heard at least n notifications (a deadline of a
 * minute for ones that never come). */
static void hear(store_listener_t *l, heard_t *h, size_t n)
{
    uint64_t deadline = clock_mono_ns() + 60000000000ull;
    while (h->n < n) {
        if (clock_mono_ns() > deadline)
            fail_msg("heard %zu notifications, not %zu", h->n, n);
        mf_error_t err = MF_ERROR_INIT;
        if (store_listen_read(l, on_notify, h, &err) < 0)
            fail_msg("listen: %s", err.msg);
        usleep(5000);
    }
}

static store_log_t line(const char *fn, const char *msg)
{
    store_log_t l = {.time_ms = 1000, .stream = 1, .message = (char *)msg, .len = strlen(msg)};
    snprintf(l.function, sizeof l.function, "%s", fn);
    snprintf(l.request_id, sizeof l.request_id, "r-1");
    return l;
}

static void test_changes_and_lines_are_heard(void **state)
{
    backend_t *b = *state;
    store_t *n1 = open_store(b), *n2 = open_store(b);
    store_set_node(n1, "n1");
    store_set_node(n2, "n2");
    mf_error_t err = MF_ERROR_INIT;
    store_listener_t *l;
    assert_int_equal(store_listen_open(n2, STORE_CHANGES_CHANNEL, "mayfly-test", &l, &err), 0);
    assert_true(store_listen_fd(l) >= 0);
    assert_int_equal(pg_db_int(b, "SELECT count(*) FROM pg_stat_activity"
                                  " WHERE application_name = 'mayfly-test'"),
                     1);

    store_function_t f = {.version = 1, .code_sha256 = "abc", .config_json = "{}"};
    snprintf(f.name, sizeof f.name, "fa");
    assert_int_equal(store_function_put(n1, &f, &err), 0);
    store_log_t lines[] = {line("fa", "one"), line("fb", "two"), line("fa", "three")};
    assert_int_equal(store_logs_put(n1, lines, 3, &err), 0);
    assert_int_equal(store_function_delete(n1, "fa", &err), 0);
    heard_t h = {0};
    hear(l, &h, 3);
    assert_int_equal(h.n, 3);
    assert_string_equal(h.payloads[0], "function fa");
    assert_string_equal(h.payloads[2], "function fa");
    cluster_change_t c = parsed(h.payloads[1]);
    assert_int_equal(c.kind, CLUSTER_LOGS);
    assert_string_equal(c.node, "n1");
    assert_int_equal(c.last_id - c.first_id, 2);
    assert_int_equal(c.functions_len, strlen("fa fb"));
    assert_memory_equal(c.functions, "fa fb", c.functions_len);

    /* n2 reads n1's lines of fa in that range, by node or as "not mine". */
    store_log_t *got = NULL;
    size_t n = 0;
    assert_int_equal(
        store_logs_list_remote(n2, "fa", "n1", c.first_id - 1, c.last_id, 100, &got, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(got[0].message, "one");
    assert_string_equal(got[1].message, "three");
    assert_string_equal(got[0].node, "n1");
    store_log_list_free(got, n);
    assert_int_equal(store_logs_list_remote(n2, "fa", NULL, 0, INT64_MAX, 100, &got, &n, &err), 0);
    assert_int_equal(n, 2);
    store_log_list_free(got, n);
    assert_int_equal(store_logs_list_remote(n1, "fa", NULL, 0, INT64_MAX, 100, &got, &n, &err), 0);
    assert_int_equal(n, 0); /* n1's own */
    store_log_list_free(got, n);
    assert_int_equal(
        store_logs_list_remote(n2, "fa", NULL, c.first_id, INT64_MAX, 100, &got, &n, &err), 0);
    assert_int_equal(n, 1);
    store_log_list_free(got, n);
    /* Every listing says whose a line is. */
    assert_int_equal(store_logs_list(n2, "fb", NULL, 0, 0, 10, &got, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(got[0].node, "n1");
    store_log_list_free(got, n);
    int64_t last = 0;
    assert_int_equal(store_logs_last_id(n2, &last, &err), 0);
    assert_int_equal(last, c.last_id);

    /* Killed from the database's side: the read says so, and a reconnect
     * listens again. */
    PGconn *admin = pg_connect(b->where);
    pg_exec(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                   " WHERE application_name = 'mayfly-test'");
    PQfinish(admin);
    int r = 0;
    uint64_t deadline = clock_mono_ns() + 60000000000ull;
    while ((r = store_listen_read(l, on_notify, &h, &err)) == 0) {
        if (clock_mono_ns() > deadline)
            fail_msg("the killed connection is still taken for alive");
        usleep(5000);
    }
    assert_int_equal(r, -ECONNRESET);
    assert_non_null(strstr(err.msg, "listen for changes"));
    assert_int_equal(store_listen_fd(l), -1);
    assert_int_equal(store_listen_reconnect(l, &err), 0);
    assert_true(store_listen_fd(l) >= 0);
    assert_int_equal(store_function_put(n1, &f, &err), 0);
    h.n = 0;
    hear(l, &h, 1);
    assert_string_equal(h.payloads[0], "function fa");
    store_listen_close(l);
    store_close(n1);
    store_close(n2);
}

static void test_sqlite_hears_nothing(void **state)
{
    backend_t *b = *state;
    store_t *s = open_store(b);
    store_set_node(s, "n1");
    mf_error_t err = MF_ERROR_INIT;
    store_listener_t *l = NULL;
    assert_int_equal(store_listen_open(s, STORE_CHANGES_CHANNEL, "x", &l, &err), -ENOTSUP);
    cluster_changes_t *c = NULL;
    assert_int_equal(cluster_changes_start(uv_default_loop(), s, "n1", NULL, NULL, &c, &err),
                     -ENOTSUP);
    store_log_t *got;
    size_t n;
    assert_int_equal(store_logs_list_remote(s, "f", NULL, 0, 10, 10, &got, &n, &err), -ENOTSUP);
    store_log_t one = line("f", "x");
    assert_int_equal(store_logs_put(s, &one, 1, &err), 0);
    assert_int_equal(store_logs_list(s, "f", NULL, 0, 0, 10, &got, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(got[0].node, "");
    store_log_list_free(got, n);
    store_close(s);
}

/* The thread hands batches to the loop: first one that says all (nothing
 * was heard before it listened), then what another node changes. */
typedef struct handed {
    int batches;
    bool all;
    bool heard_fn;
    uv_timer_t deadline;
} handed_t;

static void on_batch(void *ud, cluster_batch_t *b)
{
    handed_t *h = ud;
    h->batches++;
    h->all |= b->all;
    if (map_get(&b->names[CLUSTER_FUNCTION], "fz"))
        h->heard_fn = true;
    if (h->all && h->heard_fn)
        uv_stop(h->deadline.loop);
}

static void on_deadline(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static void test_the_thread_hands_changes_to_the_loop(void **state)
{
    backend_t *b = *state;
    store_t *s = open_store(b), *other = open_store(b);
    uv_loop_t loop;
    uv_loop_init(&loop);
    handed_t h = {0};
    uv_timer_init(&loop, &h.deadline);
    uv_timer_start(&h.deadline, on_deadline, 60000, 0);
    mf_error_t err = MF_ERROR_INIT;
    cluster_changes_t *c = NULL;
    assert_int_equal(cluster_changes_start(&loop, s, "me", on_batch, &h, &c, &err), 0);
    store_function_t f = {.version = 1, .code_sha256 = "abc", .config_json = "{}"};
    snprintf(f.name, sizeof f.name, "fz");
    assert_int_equal(store_function_put(other, &f, &err), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(h.all);
    assert_true(h.heard_fn);
    cluster_changes_stop(c);
    uv_close((uv_handle_t *)&h.deadline, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    store_close(s);
    store_close(other);
}

int main(void)
{
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_payloads_parse),
        cmocka_unit_test(test_bad_payloads_are_refused),
        cmocka_unit_test(test_a_burst_is_one_batch),
        cmocka_unit_test(test_backoff_doubles_to_five_seconds),
        cmocka_unit_test(test_node_ids),
        cmocka_unit_test_setup_teardown(test_sqlite_hears_nothing, setup_sqlite, teardown),
    };
    int failed = cmocka_run_group_tests_name("cluster", pure, NULL, NULL);
    if (!pg_available())
        return failed;
    const struct CMUnitTest pg[] = {
        cmocka_unit_test_setup_teardown(test_changes_and_lines_are_heard, setup_pg, teardown),
        cmocka_unit_test_setup_teardown(test_the_thread_hands_changes_to_the_loop, setup_pg,
                                        teardown),
    };
    return failed + cmocka_run_group_tests_name("cluster on PostgreSQL", pg, NULL, NULL);
}
