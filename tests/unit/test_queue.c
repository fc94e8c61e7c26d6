/* The async queue's store (store/queue.h) and its writer thread
 * (store/writer.h), the same on both backends: every test runs once
 * against a real queue.db in a fresh directory and once against a fresh
 * PostgreSQL database (store_backends.h). What only PostgreSQL does (two
 * nodes claiming at once) is in test_queue_pg.c. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <sqlite3.h>
#include <uv.h>

#include "store_backends.h"

#include "core/buf.h"
#include "core/cleanup.h"
#include "core/xalloc.h"
#include "store/nodes.h"
#include "store/queue.h"
#include "store/writer.h"

/* ---- helpers -------------------------------------------------------------- */

static void make_event(store_qevent_t *ev, const char *request_id, const char *function,
                       const void *body, size_t len)
{
    memset(ev, 0, sizeof *ev);
    snprintf(ev->request_id, sizeof ev->request_id, "%s", request_id);
    snprintf(ev->function, sizeof ev->function, "%s", function);
    ev->enqueued_ms = 1700000000000;
    ev->next_ms = 1700000000000;
    ev->event = (void *)body;
    ev->event_len = len;
}

static int64_t insert_event(store_queue_t *q, const char *request_id, const char *function,
                            const char *body)
{
    mf_error_t err = MF_ERROR_INIT;
    store_qevent_t ev;
    make_event(&ev, request_id, function, body, strlen(body));
    int r = store_qevent_insert(q, &ev, &err);
    if (r < 0)
        fail_msg("store_qevent_insert: %s", err.msg);
    return ev.seq;
}

static size_t count_events(store_queue_t *q)
{
    mf_error_t err = MF_ERROR_INIT;
    store_qevent_t *list = NULL;
    size_t n = 0;
    int r = store_qevent_list(q, &list, &n, &err);
    if (r < 0)
        fail_msg("store_qevent_list: %s", err.msg);
    store_qevent_list_free(list, n);
    return n;
}

static void make_dead_letter(store_dead_letter_t *dl, const char *function, const char *request_id,
                             const char *error_type, const char *error_message, const void *event,
                             size_t event_len, int64_t time_ms)
{
    memset(dl, 0, sizeof *dl);
    snprintf(dl->function, sizeof dl->function, "%s", function);
    snprintf(dl->request_id, sizeof dl->request_id, "%s", request_id);
    dl->attempts = 3;
    snprintf(dl->condition, sizeof dl->condition, "RetriesExhausted");
    dl->error_type = (char *)error_type;
    dl->error_message = (char *)error_message;
    dl->event = (void *)event;
    dl->event_len = event_len;
    dl->time_ms = time_ms;
}

static int64_t put_dead_letter(store_queue_t *q, const char *function, const char *request_id,
                               int64_t time_ms)
{
    mf_error_t err = MF_ERROR_INIT;
    store_dead_letter_t dl;
    make_dead_letter(&dl, function, request_id, "Boom", "it broke", "{}", 2, time_ms);
    int r = store_dead_letter_put(q, &dl, 0, &err);
    if (r < 0)
        fail_msg("store_dead_letter_put: %s", err.msg);
    return dl.id;
}

/* What store_dead_letter_counts reported, in the order it reported it. */
typedef struct counts {
    char function[8][65];
    int64_t n[8];
    size_t len;
} counts_t;

static void on_count(const char *function, int64_t n, void *ud)
{
    counts_t *c = ud;
    if (c->len < 8) {
        snprintf(c->function[c->len], sizeof c->function[c->len], "%s", function);
        c->n[c->len] = n;
    }
    c->len++;
}

/* The count counts_t holds for function, or 0 if it was not reported. */
static int64_t count_of(const counts_t *c, const char *function)
{
    for (size_t i = 0; i < c->len && i < 8; i++)
        if (!strcmp(c->function[i], function))
            return c->n[i];
    return 0;
}

static counts_t dead_letter_counts(store_queue_t *q)
{
    mf_error_t err = MF_ERROR_INIT;
    counts_t c = {0};
    int r = store_dead_letter_counts(q, on_count, &c, &err);
    if (r < 0)
        fail_msg("store_dead_letter_counts: %s", err.msg);
    return c;
}

/* What store_idem_list reported. */
typedef struct keys {
    char line[16][160];
    size_t len;
} keys_t;

static void on_key(const char *function, const char *key, const char *request_id,
                   int64_t created_ms, void *ud)
{
    keys_t *k = ud;
    if (k->len < 16)
        snprintf(k->line[k->len], sizeof k->line[k->len], "%s/%s=%s@%lld", function, key,
                 request_id, (long long)created_ms);
    k->len++;
}

static int cmp_line(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* The keys created at or after since_ms as "function/key=request_id@ms",
 * sorted (the listing promises no order). */
static keys_t idem_keys(store_queue_t *q, int64_t since_ms)
{
    mf_error_t err = MF_ERROR_INIT;
    keys_t k = {0};
    int r = store_idem_list(q, since_ms, on_key, &k, &err);
    if (r < 0)
        fail_msg("store_idem_list: %s", err.msg);
    if (k.len > 16)
        fail_msg("store_idem_list: %zu keys, the test expects at most 16", k.len);
    qsort(k.line, k.len, sizeof k.line[0], cmp_line);
    return k;
}

/* ---- opening ------------------------------------------------------------ */

static void test_open_creates_and_migrates(void **state)
{
    const backend_t *b = *state;
    store_queue_t *q = open_queue(b);
    if (!b->pg) {
        cleanup_free char *path = xasprintf("%s/queue.db", b->dir);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_true(S_ISREG(st.st_mode));
    }

    /* Every table the queue needs is there, empty, and the schema version
     * says the migrations ran. */
    assert_true(queue_schema_version(b) >= 1);
    assert_int_equal(queue_int(b, b->pg ? "SELECT count(*) FROM pg_tables WHERE tablename IN"
                                          " ('events', 'attempts', 'dead_letters',"
                                          " 'idempotency_keys')"
                                        : "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                                          " AND name IN ('events', 'attempts', 'dead_letters',"
                                          " 'idempotency_keys')"),
                     4);
    assert_int_equal(count_events(q), 0);
    counts_t c = dead_letter_counts(q);
    assert_int_equal(c.len, 0);
    keys_t k = idem_keys(q, 0);
    assert_int_equal(k.len, 0);
    store_queue_close(q);
}

static void test_reopen_keeps_data(void **state)
{
    const backend_t *b = *state;
    mf_error_t err = MF_ERROR_INIT;
    store_queue_t *q = open_queue(b);
    int64_t seq = insert_event(q, "req-1", "fn", "{\"a\":1}");
    store_attempt_t a = {.attempt = 1, .start_ms = 5, .duration_ms = 1.5, .status = "error"};
    snprintf(a.request_id, sizeof a.request_id, "req-1");
    assert_int_equal(store_attempt_put(q, &a, &err), 0);
    int64_t dl = put_dead_letter(q, "fn", "req-0", 100);
    assert_int_equal(store_idem_put(q, "fn", "key", "req-1", 200, 0, NULL, &err), 0);
    long long version = queue_schema_version(b);
    store_queue_close(q);

    /* Reopening runs no migration twice and finds everything. */
    q = open_queue(b);
    assert_int_equal(queue_schema_version(b), version);
    buf_t body = BUF_INIT;
    assert_int_equal(store_qevent_body(q, seq, &body, &err), 0);
    assert_string_equal(body.data, "{\"a\":1}");
    buf_release(&body);
    store_attempt_t *at = NULL;
    size_t n = 0;
    assert_int_equal(store_attempt_list(q, "req-1", &at, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(at[0].status, "error");
    store_attempt_list_free(at, n);
    store_dead_letter_t got;
    assert_int_equal(store_dead_letter_get(q, "fn", dl, &got, &err), 0);
    assert_string_equal(got.request_id, "req-0");
    store_dead_letter_clear(&got);
    keys_t k = idem_keys(q, 0);
    assert_int_equal(k.len, 1);
    assert_string_equal(k.line[0], "fn/key=req-1@200");

    /* Events accepted after the restart come after those before it. */
    int64_t later = insert_event(q, "req-2", "fn", "{}");
    assert_true(later > seq);
    store_queue_close(q);
}

static void test_open_fails_where_unreachable(void **state)
{
    const char *mention;
    cleanup_free char *where = unreachable_where(*state, &mention);
    mf_error_t err = MF_ERROR_INIT;
    store_queue_t *q = NULL;
    int r = store_queue_open(where, &q, &err);
    assert_true(r < 0);
    assert_null(q);
    assert_non_null(strstr(err.msg, mention));
}

/* ---- events --------------------------------------------------------------- */

static void test_qevent_insert_list_update_delete(void **state)
{
    store_queue_t *q = open_queue(*state);
    mf_error_t err = MF_ERROR_INIT;

    store_qevent_t ev;
    int64_t seq[3];
    const char *fns[3] = {"beta", "alpha", "beta"};
    for (int i = 0; i < 3; i++) {
        char rid[37];
        snprintf(rid, sizeof rid, "req-%d", i);
        make_event(&ev, rid, fns[i], "body", 4);
        ev.enqueued_ms = 1000 + i;
        ev.next_ms = 2000 + i;
        ev.attempts = i;
        ev.fn_errors = i / 2;
        ev.running = i == 1;
        if (i == 2) {
            snprintf(ev.replay_of, sizeof ev.replay_of, "req-0");
            snprintf(ev.traceparent, sizeof ev.traceparent,
                     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
            snprintf(ev.caller_request_id, sizeof ev.caller_request_id, "req-caller");
            ev.call_depth = 5;
        }
        ev.seq = -1;
        assert_int_equal(store_qevent_insert(q, &ev, &err), 0);
        seq[i] = ev.seq;
        assert_true(seq[i] > 0);
        if (i > 0)
            assert_true(seq[i] > seq[i - 1]);
    }

    /* A request id is accepted once. */
    make_event(&ev, "req-1", "alpha", "x", 1);
    assert_true(store_qevent_insert(q, &ev, &err) < 0);

    /* The listing is in acceptance order, with every field but the body. */
    store_qevent_t *list = NULL;
    size_t n = 0;
    assert_int_equal(store_qevent_list(q, &list, &n, &err), 0);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) {
        char rid[37];
        snprintf(rid, sizeof rid, "req-%d", i);
        assert_int_equal(list[i].seq, seq[i]);
        assert_string_equal(list[i].request_id, rid);
        assert_string_equal(list[i].function, fns[i]);
        assert_int_equal(list[i].enqueued_ms, 1000 + i);
        assert_int_equal(list[i].next_ms, 2000 + i);
        assert_int_equal(list[i].attempts, i);
        assert_int_equal(list[i].fn_errors, i / 2);
        assert_int_equal(list[i].running, i == 1);
        assert_null(list[i].event);
        assert_int_equal(list[i].event_len, 0);
        assert_string_equal(list[i].replay_of, i == 2 ? "req-0" : "");
        assert_string_equal(list[i].traceparent,
                            i == 2 ? "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                                   : "");
        assert_string_equal(list[i].caller_request_id, i == 2 ? "req-caller" : "");
        assert_int_equal(list[i].call_depth, i == 2 ? 5 : 0);
    }
    store_qevent_list_free(list, n);

    /* An update writes next_ms, attempts, fn_errors and running, and
     * nothing else. */
    memset(&ev, 0, sizeof ev);
    ev.seq = seq[1];
    snprintf(ev.request_id, sizeof ev.request_id, "changed");
    snprintf(ev.function, sizeof ev.function, "changed");
    ev.enqueued_ms = 1;
    ev.next_ms = 9999;
    ev.attempts = 4;
    ev.fn_errors = 3;
    ev.running = 0;
    assert_int_equal(store_qevent_update(q, &ev, &err), 0);
    assert_int_equal(store_qevent_list(q, &list, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(list[1].seq, seq[1]);
    assert_string_equal(list[1].request_id, "req-1");
    assert_string_equal(list[1].function, "alpha");
    assert_int_equal(list[1].enqueued_ms, 1001);
    assert_int_equal(list[1].next_ms, 9999);
    assert_int_equal(list[1].attempts, 4);
    assert_int_equal(list[1].fn_errors, 3);
    assert_int_equal(list[1].running, 0);
    /* The others are untouched. */
    assert_int_equal(list[0].next_ms, 2000);
    assert_int_equal(list[2].attempts, 2);
    store_qevent_list_free(list, n);

    /* A delete removes that event only. */
    assert_int_equal(store_qevent_delete(q, seq[1], &err), 0);
    assert_int_equal(store_qevent_list(q, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(list[0].seq, seq[0]);
    assert_int_equal(list[1].seq, seq[2]);
    store_qevent_list_free(list, n);
    buf_t body = BUF_INIT;
    assert_int_equal(store_qevent_body(q, seq[1], &body, &err), -ENOENT);
    buf_release(&body);

    /* Inserted after the delete: still after every event still queued. */
    int64_t next = insert_event(q, "req-3", "alpha", "{}");
    assert_true(next > seq[2]);
    store_queue_close(q);
}

static void test_qevent_body_round_trips_bytes(void **state)
{
    store_queue_t *q = open_queue(*state);
    mf_error_t err = MF_ERROR_INIT;

    /* 256 KiB of every byte value, NULs included. */
    size_t big_len = 256 * 1024;
    cleanup_free unsigned char *big = xmalloc(big_len);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (unsigned char)(i * 7 + i / 256);
    big[0] = 0;
    big[big_len - 1] = 0;
    static const char nuls[] = {'a', 0, 'b', 0, 0, 'c'};

    store_qevent_t ev;
    make_event(&ev, "big", "fn", big, big_len);
    assert_int_equal(store_qevent_insert(q, &ev, &err), 0);
    int64_t big_seq = ev.seq;
    make_event(&ev, "nuls", "fn", nuls, sizeof nuls);
    assert_int_equal(store_qevent_insert(q, &ev, &err), 0);
    int64_t nuls_seq = ev.seq;
    make_event(&ev, "empty", "fn", NULL, 0);
    assert_int_equal(store_qevent_insert(q, &ev, &err), 0);
    int64_t empty_seq = ev.seq;

    /* The body replaces what the buffer held. */
    buf_t body = BUF_INIT;
    buf_adds(&body, "left over from before");
    assert_int_equal(store_qevent_body(q, big_seq, &body, &err), 0);
    assert_int_equal(body.len, big_len);
    assert_memory_equal(body.data, big, big_len);
    assert_int_equal(body.data[body.len], '\0');

    assert_int_equal(store_qevent_body(q, nuls_seq, &body, &err), 0);
    assert_int_equal(body.len, sizeof nuls);
    assert_memory_equal(body.data, nuls, sizeof nuls);

    assert_int_equal(store_qevent_body(q, empty_seq, &body, &err), 0);
    assert_int_equal(body.len, 0);
    assert_string_equal(body.data, "");
    buf_release(&body);
    store_queue_close(q);

    /* And so it does after a reopen. */
    q = open_queue(*state);
    assert_int_equal(store_qevent_body(q, big_seq, &body, &err), 0);
    assert_int_equal(body.len, big_len);
    assert_memory_equal(body.data, big, big_len);
    buf_release(&body);
    store_queue_close(q);
}

static void test_qevent_body_missing_is_enoent(void **state)
{
    store_queue_t *q = open_queue(*state);
    mf_error_t err = MF_ERROR_INIT;
    buf_t body = BUF_INIT;
    buf_adds(&body, "untouched");
    assert_int_equal(store_qevent_body(q, 42, &body, &err), -ENOENT);
    assert_int_equal(err.code, ENOENT);
    assert_non_null(strstr(err.msg, "42"));

    int64_t seq = insert_event(q, "req", "fn", "x");
    assert_int_equal(store_qevent_delete(q, seq, &err), 0);
    err = (mf_error_t)MF_ERROR_INIT;
    assert_int_equal(store_qevent_body(q, seq, &body, &err), -ENOENT);
    assert_int_equal(err.code, ENOENT);
    buf_release(&body);
    store_queue_close(q);
}

/* ---- attempts -------------------------------------------------------------- */

static void put_attempt(store_queue_t *q, const char *request_id, int attempt, const char *status,
                        const char *error_type, const char *error_message)
{
    mf_error_t err = MF_ERROR_INIT;
    store_attempt_t a = {0};
    snprintf(a.request_id, sizeof a.request_id, "%s", request_id);
    a.attempt = attempt;
    a.start_ms = 1700000000000 + attempt;
    a.duration_ms = 10.25 * attempt;
    snprintf(a.status, sizeof a.status, "%s", status);
    a.error_type = (char *)error_type;
    a.error_message = (char *)error_message;
    int r = store_attempt_put(q, &a, &err);
    if (r < 0)
        fail_msg("store_attempt_put: %s", err.msg);
}

static void test_attempts_put_list(void **state)
{
    store_queue_t *q = open_queue(*state);
    mf_error_t err = MF_ERROR_INIT;

    /* Written out of order, listed oldest first. */
    put_attempt(q, "req", 3, "success", NULL, NULL);
    put_attempt(q, "req", 1, "error", "Handled", "bad input");
    put_attempt(q, "other", 1, "timeout", "Mayfly.Timeout", "");
    put_attempt(q, "req", 2, "oom", "Mayfly.OutOfMemory", NULL);

    store_attempt_t *list = NULL;
    size_t n = 0;
    assert_int_equal(store_attempt_list(q, "req", &list, &n, &err), 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(list[i].request_id, "req");
        assert_int_equal(list[i].attempt, (int)i + 1);
        assert_int_equal(list[i].start_ms, 1700000000000 + (int64_t)i + 1);
        assert_true(list[i].duration_ms == 10.25 * (double)(i + 1));
    }
    assert_string_equal(list[0].status, "error");
    assert_string_equal(list[0].error_type, "Handled");
    assert_string_equal(list[0].error_message, "bad input");
    assert_string_equal(list[1].status, "oom");
    assert_string_equal(list[1].error_type, "Mayfly.OutOfMemory");
    assert_null(list[1].error_message);
    assert_string_equal(list[2].status, "success");
    assert_null(list[2].error_type);
    assert_null(list[2].error_message);
    store_attempt_list_free(list, n);

    /* An empty message stays empty, not NULL. */
    assert_int_equal(store_attempt_list(q, "other", &list, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].status, "timeout");
    assert_non_null(list[0].error_message);
    assert_string_equal(list[0].error_message, "");
    store_attempt_list_free(list, n);

    /* Writing an attempt again replaces it. */
    put_attempt(q, "req", 2, "interrupted", NULL, NULL);
    assert_int_equal(store_attempt_list(q, "req", &list, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(list[1].status, "interrupted");
    assert_null(list[1].error_type);
    store_attempt_list_free(list, n);

    n = 99;
    assert_int_equal(store_attempt_list(q, "nobody", &list, &n, &err), 0);
    assert_int_equal(n, 0);
    store_attempt_list_free(list, n);
    store_queue_close(q);
}

/* ---- dead letters -------------------------------------------------------- */

/* Pruning takes what is old enough, however many, and nothing newer:
 * attempts past several batches of 1,000, with one of the first keys not
 * yet old (a retry of an early event) in the way of the first batch, and
 * dead letters by the time they were written. */
static void test_prune_attempts_and_dead_letters(void **state)
{
    store_queue_t *q = open_queue(*state);
    mf_error_t err = MF_ERROR_INIT;
    char id[32];
    for (int i = 0; i < 2500; i++) {
        store_attempt_t a = {0};
        snprintf(a.request_id, sizeof a.request_id, "a%05d", i);
        a.attempt = 1;
        a.start_ms = 1000 + i;
        snprintf(a.status, sizeof a.status, "error");
        assert_int_equal(store_attempt_put(q, &a, &err), 0);
    }
    put_attempt(q, "a00000", 2, "success", NULL, NULL); /* starts at 1700000000002 */
    put_attempt(q, "b", 1, "success", NULL, NULL);
    store_dead_letter_t dl;
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "dl-%d", i);
        make_dead_letter(&dl, "fn", id, NULL, NULL, NULL, 0, i < 3 ? 100 + i : 1700000000000);
        snprintf(dl.condition, sizeof dl.condition, "RetriesExhausted");
        assert_int_equal(store_dead_letter_put(q, &dl, 0, &err), 0);
    }

    int64_t attempts = 0, dead = 0;
    assert_int_equal(store_queue_prune(q, 1000000, 1000000, &attempts, &dead, &err), 0);
    assert_int_equal(attempts, 2500);
    assert_int_equal(dead, 3);
    store_attempt_t *list = NULL;
    size_t n = 0;
    assert_int_equal(store_attempt_list(q, "a00000", &list, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(list[0].attempt, 2);
    store_attempt_list_free(list, n);
    assert_int_equal(store_attempt_list(q, "a02499", &list, &n, &err), 0);
    assert_int_equal(n, 0);
    store_attempt_list_free(list, n);
    assert_int_equal(store_attempt_list(q, "b", &list, &n, &err), 0);
    assert_int_equal(n, 1);
    store_attempt_list_free(list, n);
    store_dead_letter_t *dls = NULL;
    assert_int_equal(store_dead_letter_list(q, "fn", 10, &dls, &n, &err), 0);
    assert_int_equal(n, 2);
    store_dead_letter_list_free(dls, n);

    /* Again: nothing is old enough now. */
    attempts = dead = 0;
    assert_int_equal(store_queue_prune(q, 1000000, 1000000, &attempts, &dead, &err), 0);
    assert_int_equal(attempts + dead, 0);
    store_queue_close(q);
}

static void test_dead_letter_put_get_delete(void **state)
{
    store_queue_t *q = open_queue(*state);
    mf_error_t err = MF_ERROR_INIT;
    static const char bytes[] = {'{', 0, '}', 0};

    store_dead_letter_t dl;
    make_dead_letter(&dl, "fn", "req-1", "Boom", "it broke", bytes, sizeof bytes, 1234);
    dl.attempts = 3;
    snprintf(dl.condition, sizeof dl.condition, "RetriesExhausted");
    assert_int_equal(store_dead_letter_put(q, &dl, 0, &err), 0);
    int64_t id1 = dl.id;
    assert_true(id1 > 0);

    make_dead_letter(&dl, "fn", "req-2", NULL, NULL, NULL, 0, 5678);
    dl.attempts = 0;
    snprintf(dl.condition, sizeof dl.condition, "EventAgeExceeded");
    assert_int_equal(store_dead_letter_put(q, &dl, 0, &err), 0);
    int64_t id2 = dl.id;
    assert_true(id2 > id1);

    store_dead_letter_t got;
    assert_int_equal(store_dead_letter_get(q, "fn", id1, &got, &err), 0);
    assert_int_equal(got.id, id1);
    assert_string_equal(got.function, "fn");
    assert_string_equal(got.request_id, "req-1");
    assert_int_equal(got.attempts, 3);
    assert_string_equal(got.condition, "RetriesExhausted");
    assert_string_equal(got.error_type, "Boom");
    assert_string_equal(got.error_message, "it broke");
    assert_int_equal(got.event_len, sizeof bytes);
    assert_memory_equal(got.event, bytes, sizeof bytes);
    assert_int_equal(got.time_ms, 1234);
    assert_string_equal(got.traceparent, "");
    store_dead_letter_clear(&got);
    assert_null(got.event);
    assert_null(got.error_type);

    assert_int_equal(store_dead_letter_get(q, "fn", id2, &got, &err), 0);
    assert_string_equal(got.condition, "EventAgeExceeded");
    assert_int_equal(got.attempts, 0);
    assert_null(got.error_type);
    assert_null(got.error_message);
    assert_int_equal(got.event_len, 0);
    store_dead_letter_clear(&got);

    /* Another function's dead letter is not this one's. */
    err = (mf_error_t)MF_ERROR_INIT;
    assert_int_equal(store_dead_letter_get(q, "other", id1, &got, &err), -ENOENT);
    assert_int_equal(err.code, ENOENT);
    assert_int_equal(store_dead_letter_get(q, "fn", id2 + 100, &got, &err), -ENOENT);

    /* A delete works once. */
    assert_int_equal(store_dead_letter_delete(q, id1, &err), 0);
    err = (mf_error_t)MF_ERROR_INIT;
    assert_int_equal(store_dead_letter_delete(q, id1, &err), -ENOENT);
    assert_int_equal(err.code, ENOENT);
    assert_int_equal(store_dead_letter_get(q, "fn", id1, &got, &err), -ENOENT);
    assert_int_equal(store_dead_letter_get(q, "fn", id2, &got, &err), 0);
    store_dead_letter_clear(&got);
    store_dead_letter_clear(NULL);
    store_queue_close(q);
}

static void test_dead_letter_from_seq(void **state)
{
    store_queue_t *q = open_queue(*state);
    mf_error_t err = MF_ERROR_INIT;
    static const char body[] = {'e', 'v', 0, 'e', 'n', 't'};

    store_qevent_t ev;
    make_event(&ev, "req-1", "fn", body, sizeof body);
    snprintf(ev.traceparent, sizeof ev.traceparent,
             "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    assert_int_equal(store_qevent_insert(q, &ev, &err), 0);

    /* The bytes (and the traceparent) come from the queued event, not
     * from dl. */
    store_dead_letter_t dl;
    make_dead_letter(&dl, "fn", "req-1", "Boom", NULL, "ignored", 7, 42);
    assert_int_equal(store_dead_letter_put(q, &dl, ev.seq, &err), 0);
    assert_true(dl.id > 0);
    store_dead_letter_t got;
    assert_int_equal(store_dead_letter_get(q, "fn", dl.id, &got, &err), 0);
    assert_int_equal(got.event_len, sizeof body);
    assert_memory_equal(got.event, body, sizeof body);
    assert_string_equal(got.request_id, "req-1");
    assert_string_equal(got.error_type, "Boom");
    assert_null(got.error_message);
    assert_int_equal(got.time_ms, 42);
    assert_string_equal(got.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    store_dead_letter_clear(&got);

    /* From an event that is not queued: nothing is written. */
    int64_t before = dl.id;
    make_dead_letter(&dl, "fn", "req-2", NULL, NULL, "ignored", 7, 43);
    dl.id = -7;
    err = (mf_error_t)MF_ERROR_INIT;
    assert_int_equal(store_dead_letter_put(q, &dl, ev.seq + 1000, &err), -ENOENT);
    assert_int_equal(err.code, ENOENT);
    assert_int_equal(dl.id, -7);
    counts_t c = dead_letter_counts(q);
    assert_int_equal(count_of(&c, "fn"), 1);

    /* Nor from an event already deleted. */
    assert_int_equal(store_qevent_delete(q, ev.seq, &err), 0);
    assert_int_equal(store_dead_letter_put(q, &dl, ev.seq, &err), -ENOENT);
    c = dead_letter_counts(q);
    assert_int_equal(count_of(&c, "fn"), 1);

    /* The first one's bytes outlive the event. */
    assert_int_equal(store_dead_letter_get(q, "fn", before, &got, &err), 0);
    assert_memory_equal(got.event, body, sizeof body);
    store_dead_letter_clear(&got);
    store_queue_close(q);
}

static void test_dead_letter_list_and_counts(void **state)
{
    store_queue_t *q = open_queue(*state);
    mf_error_t err = MF_ERROR_INIT;
    int64_t a_ids[5];
    for (int i = 0; i < 5; i++) {
        char rid[37];
        snprintf(rid, sizeof rid, "a-%d", i);
        a_ids[i] = put_dead_letter(q, "a", rid, 100 + i);
        if (i < 2) {
            snprintf(rid, sizeof rid, "b-%d", i);
            put_dead_letter(q, "b", rid, 200 + i);
        }
    }

    /* Newest first, at most limit. */
    store_dead_letter_t *list = NULL;
    size_t n = 0;
    assert_int_equal(store_dead_letter_list(q, "a", 3, &list, &n, &err), 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        char rid[37];
        snprintf(rid, sizeof rid, "a-%d", 4 - (int)i);
        assert_int_equal(list[i].id, a_ids[4 - i]);
        assert_string_equal(list[i].function, "a");
        assert_string_equal(list[i].request_id, rid);
        assert_int_equal(list[i].event_len, 2);
        assert_memory_equal(list[i].event, "{}", 2);
        assert_string_equal(list[i].error_type, "Boom");
    }
    store_dead_letter_list_free(list, n);

    assert_int_equal(store_dead_letter_list(q, "a", 100, &list, &n, &err), 0);
    assert_int_equal(n, 5);
    assert_int_equal(list[4].id, a_ids[0]);
    store_dead_letter_list_free(list, n);

    assert_int_equal(store_dead_letter_list(q, "b", 100, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].request_id, "b-1");
    assert_string_equal(list[1].request_id, "b-0");
    store_dead_letter_list_free(list, n);

    n = 99;
    assert_int_equal(store_dead_letter_list(q, "nobody", 10, &list, &n, &err), 0);
    assert_int_equal(n, 0);
    store_dead_letter_list_free(list, n);

    /* One call per function with dead letters. */
    counts_t c = dead_letter_counts(q);
    assert_int_equal(c.len, 2);
    assert_int_equal(count_of(&c, "a"), 5);
    assert_int_equal(count_of(&c, "b"), 2);

    assert_int_equal(store_dead_letter_delete(q, a_ids[2], &err), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(store_dead_letter_list(q, "b", 10, &list, &n, &err), 0);
        assert_int_equal(store_dead_letter_delete(q, list[0].id, &err), 0);
        store_dead_letter_list_free(list, n);
    }
    c = dead_letter_counts(q);
    assert_int_equal(c.len, 1);
    assert_int_equal(count_of(&c, "a"), 4);
    store_queue_close(q);
}

/* ---- idempotency keys ---------------------------------------------------- */

static void test_idempotency_put_list_prune(void **state)
{
    store_queue_t *q = open_queue(*state);
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(store_idem_put(q, "f1", "k1", "r1", 100, 0, NULL, &err), 0);
    assert_int_equal(store_idem_put(q, "f1", "k2", "r2", 200, 0, NULL, &err), 0);
    assert_int_equal(store_idem_put(q, "f2", "k1", "r3", 300, 0, NULL, &err), 0);

    keys_t k = idem_keys(q, 0);
    assert_int_equal(k.len, 3);
    assert_string_equal(k.line[0], "f1/k1=r1@100");
    assert_string_equal(k.line[1], "f1/k2=r2@200");
    assert_string_equal(k.line[2], "f2/k1=r3@300");

    /* At or after since_ms. */
    k = idem_keys(q, 200);
    assert_int_equal(k.len, 2);
    assert_string_equal(k.line[0], "f1/k2=r2@200");
    assert_string_equal(k.line[1], "f2/k1=r3@300");
    k = idem_keys(q, 301);
    assert_int_equal(k.len, 0);

    /* Strictly before before_ms. */
    assert_int_equal(store_idem_prune(q, 200, &err), 0);
    k = idem_keys(q, 0);
    assert_int_equal(k.len, 2);
    assert_string_equal(k.line[0], "f1/k2=r2@200");
    assert_string_equal(k.line[1], "f2/k1=r3@300");
    assert_int_equal(store_idem_prune(q, 1000, &err), 0);
    k = idem_keys(q, 0);
    assert_int_equal(k.len, 0);

    /* A pruned key can be given again. */
    assert_int_equal(store_idem_put(q, "f1", "k1", "r4", 2000, 0, NULL, &err), 0);
    k = idem_keys(q, 0);
    assert_int_equal(k.len, 1);
    assert_string_equal(k.line[0], "f1/k1=r4@2000");
    store_queue_close(q);
}

/* A live key stays, whoever asks: the put fails with -EEXIST and says
 * whose request holds it (another node's, as two nodes would); one older
 * than live_since_ms is given again. */
static void test_idempotency_key_live_elsewhere(void **state)
{
    store_queue_t *q = open_queue(*state);
    mf_error_t err = MF_ERROR_INIT;
    char existing[37] = "";
    assert_int_equal(store_idem_put(q, "f", "k", "first", 1000, 0, existing, &err), 0);
    assert_int_equal(store_idem_put(q, "f", "k", "second", 1500, 900, existing, &err), -EEXIST);
    assert_string_equal(existing, "first");
    keys_t k = idem_keys(q, 0);
    assert_int_equal(k.len, 1);
    assert_string_equal(k.line[0], "f/k=first@1000");
    /* Past its life, the key is the new request's. */
    assert_int_equal(store_idem_put(q, "f", "k", "third", 3000, 1001, existing, &err), 0);
    k = idem_keys(q, 0);
    assert_string_equal(k.line[0], "f/k=third@3000");
    store_queue_close(q);
}

/* ---- forgetting a function ------------------------------------------------ */

static void test_forget_function(void **state)
{
    store_queue_t *q = open_queue(*state);
    mf_error_t err = MF_ERROR_INIT;
    insert_event(q, "a-1", "a", "1");
    int64_t b1 = insert_event(q, "b-1", "b", "2");
    insert_event(q, "a-2", "a", "3");
    int64_t a_dl = put_dead_letter(q, "a", "a-0", 1);
    int64_t b_dl = put_dead_letter(q, "b", "b-0", 2);
    assert_int_equal(store_idem_put(q, "a", "k", "a-1", 10, 0, NULL, &err), 0);
    assert_int_equal(store_idem_put(q, "b", "k", "b-1", 11, 0, NULL, &err), 0);
    /* A function named like a prefix of another is another function. */
    insert_event(q, "ab-1", "ab", "4");

    assert_int_equal(store_queue_forget_function(q, "a", &err), 0);

    store_qevent_t *list = NULL;
    size_t n = 0;
    assert_int_equal(store_qevent_list(q, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(list[0].seq, b1);
    assert_string_equal(list[0].function, "b");
    assert_string_equal(list[1].function, "ab");
    store_qevent_list_free(list, n);

    store_dead_letter_t got;
    assert_int_equal(store_dead_letter_get(q, "a", a_dl, &got, &err), -ENOENT);
    assert_int_equal(store_dead_letter_get(q, "b", b_dl, &got, &err), 0);
    store_dead_letter_clear(&got);
    counts_t c = dead_letter_counts(q);
    assert_int_equal(c.len, 1);
    assert_int_equal(count_of(&c, "b"), 1);

    keys_t k = idem_keys(q, 0);
    assert_int_equal(k.len, 1);
    assert_string_equal(k.line[0], "b/k=b-1@11");

    /* Forgetting a function with nothing queued is no error. */
    assert_int_equal(store_queue_forget_function(q, "nobody", &err), 0);
    assert_int_equal(count_events(q), 2);
    store_queue_close(q);
}

/* ---- claiming ready events ------------------------------------------------ */

/* Takes for node and says what was taken, "id" each, in the order given:
 * "a-1 a-2". Events come without their bodies, as they were written. */
static void take(store_queue_t *q, const char *node, int limit, char *out, size_t size)
{
    mf_error_t err = MF_ERROR_INIT;
    store_qevent_t *list = NULL;
    size_t n = 99;
    if (store_qevent_take(q, node, limit, &list, &n, &err) < 0)
        fail_msg("store_qevent_take: %s", err.msg);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(out);
        snprintf(out + len, size - len, "%s%s", i ? " " : "", list[i].request_id);
        assert_null(list[i].event);
        if (i > 0)
            assert_true(list[i].seq > list[i - 1].seq);
    }
    store_qevent_list_free(list, n);
}

static int64_t insert_owned(store_queue_t *q, const char *request_id, const char *owner,
                            int running)
{
    mf_error_t err = MF_ERROR_INIT;
    store_qevent_t ev;
    make_event(&ev, request_id, "fn", request_id, strlen(request_id));
    snprintf(ev.owner, sizeof ev.owner, "%s", owner);
    ev.running = running;
    if (store_qevent_insert(q, &ev, &err) < 0)
        fail_msg("store_qevent_insert: %s", err.msg);
    return ev.seq;
}

/* The pool is the events no node holds: a take gets them oldest first,
 * at most limit, and they are the taker's from then on; events a node
 * holds are not in it, and a take in a transaction rolled back gives its
 * events back. */
static void test_take_from_the_pool(void **state)
{
    store_queue_t *q = open_queue(*state);
    mf_error_t err = MF_ERROR_INIT;
    char got[256];
    insert_owned(q, "p-1", "", 0);
    insert_owned(q, "held", "node-a", 0);
    insert_owned(q, "p-2", "", 1); /* a dead node's attempt was under way */
    insert_owned(q, "p-3", "", 0);

    take(q, "node-b", 2, got, sizeof got);
    assert_string_equal(got, "p-1 p-2");
    take(q, "node-c", -1, got, sizeof got);
    assert_string_equal(got, "p-3");
    take(q, "node-c", -1, got, sizeof got);
    assert_string_equal(got, "");

    /* Taken as it was written: p-2 still says its attempt ran. */
    store_qevent_t *list = NULL;
    size_t n = 0;
    assert_int_equal(store_qevent_list(q, &list, &n, &err), 0);
    assert_int_equal(n, 4);
    assert_int_equal(list[2].running, 1);
    store_qevent_list_free(list, n);

    /* Rolled back, a take leaves the pool as it was. */
    insert_owned(q, "p-4", "", 0);
    assert_int_equal(store_queue_begin(q, true, &err), 0);
    take(q, "node-b", 10, got, sizeof got);
    assert_string_equal(got, "p-4");
    store_queue_rollback(q);
    take(q, "node-c", 10, got, sizeof got);
    assert_string_equal(got, "p-4");
    store_queue_close(q);
}

/* ---- nodes ---------------------------------------------------------------- */

static void beat(store_queue_t *q, const char *id, int64_t now, int64_t lease, int *alive,
                 bool *was_lost)
{
    store_node_t n = {.started_ms = 1, .heartbeat_ms = now, .instances = 3};
    snprintf(n.id, sizeof n.id, "%s", id);
    snprintf(n.address, sizeof n.address, "127.0.0.1:1");
    mf_error_t err = MF_ERROR_INIT;
    if (store_node_beat(q, &n, lease, alive, was_lost, &err) < 0)
        fail_msg("store_node_beat: %s", err.msg);
}

static const store_node_t *node_in(const store_node_t *list, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(list[i].id, id))
            return &list[i];
    fail_msg("no node %s", id);
    return NULL;
}

/* Nodes beat; one silent for longer than the lease is found gone by the
 * next beat of another, and the events it held go back to the pool (its
 * attempt under way still marked running, for the taker to record as
 * cut short). When it beats again it learns it was found gone. A node
 * that leaves gives its events back itself. */
static void test_nodes_beat_expire_and_leave(void **state)
{
    store_queue_t *q = open_queue(*state);
    mf_error_t err = MF_ERROR_INIT;
    char got[256];
    int alive = 0;
    bool lost = true;
    beat(q, "a", 1000, 500, &alive, &lost);
    assert_int_equal(alive, 1);
    assert_false(lost);
    beat(q, "b", 1100, 500, &alive, &lost);
    assert_int_equal(alive, 2);
    insert_owned(q, "a-1", "a", 1);
    insert_owned(q, "a-2", "a", 0);
    insert_owned(q, "b-1", "b", 0);
    take(q, "b", -1, got, sizeof got);
    assert_string_equal(got, "");

    /* Within a's lease: nothing moves. */
    beat(q, "b", 1500, 500, &alive, &lost);
    assert_int_equal(alive, 2);
    take(q, "b", -1, got, sizeof got);
    assert_string_equal(got, "");

    /* Past it: a is found gone, its events are in the pool. */
    beat(q, "b", 1600, 500, &alive, &lost);
    assert_int_equal(alive, 1);
    assert_false(lost);
    take(q, "b", -1, got, sizeof got);
    assert_string_equal(got, "a-1 a-2");

    store_node_t *list = NULL;
    size_t n = 0;
    assert_int_equal(store_node_list(q, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    const store_node_t *na = node_in(list, n, "a");
    assert_true(na->lost);
    assert_int_equal(na->left_ms, 1600);
    assert_int_equal(na->heartbeat_ms, 1000);
    assert_int_equal(na->instances, 3);
    assert_string_equal(na->address, "127.0.0.1:1");
    assert_int_equal(node_in(list, n, "b")->left_ms, 0);
    free(list);

    /* a comes back: it learns it was found gone, and runs again. */
    beat(q, "a", 1700, 500, &alive, &lost);
    assert_true(lost);
    assert_int_equal(alive, 2);
    beat(q, "a", 1800, 500, &alive, &lost);
    assert_false(lost);

    /* b leaves: what it holds is in the pool, and it is stopped, not lost. */
    assert_int_equal(store_node_leave(q, "b", 1900, &err), 0);
    take(q, "a", -1, got, sizeof got);
    assert_string_equal(got, "a-1 a-2 b-1");
    assert_int_equal(store_node_list(q, &list, &n, &err), 0);
    assert_false(node_in(list, n, "b")->lost);
    assert_int_equal(node_in(list, n, "b")->left_ms, 1900);
    free(list);

    /* A node that left is forgotten once it holds nothing. */
    assert_int_equal(store_node_prune(q, 2000, &err), 0);
    assert_int_equal(store_node_list(q, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, "a");
    free(list);
    store_queue_close(q);
}

/* A lease of 0 (a server alone on its data directory, starting) finds
 * every other node gone at once. */
static void test_a_lease_of_zero_takes_over_everything(void **state)
{
    store_queue_t *q = open_queue(*state);
    char got[64];
    int alive = 0;
    bool lost = false;
    beat(q, "old", 5000, 15000, &alive, &lost);
    insert_owned(q, "o-1", "old", 1);
    beat(q, "new", 5001, 0, &alive, &lost);
    assert_int_equal(alive, 1);
    take(q, "new", -1, got, sizeof got);
    assert_string_equal(got, "o-1");
    store_queue_close(q);
}

/* ---- transactions ------------------------------------------------------- */

static void test_savepoint_undoes_one_job(void **state)
{
    store_queue_t *q = open_queue(*state);
    store_queue_t *reader = open_queue(*state);
    mf_error_t err = MF_ERROR_INIT;

    assert_int_equal(store_queue_begin(q, true, &err), 0);

    assert_int_equal(store_queue_savepoint(q, &err), 0);
    insert_event(q, "kept-1", "fn", "1");
    store_queue_release(q, true);

    /* This job's writes, of every kind, are undone. */
    assert_int_equal(store_queue_savepoint(q, &err), 0);
    insert_event(q, "undone", "fn", "2");
    assert_int_equal(store_idem_put(q, "fn", "k-undone", "undone", 5, 0, NULL, &err), 0);
    put_dead_letter(q, "fn", "undone", 5);
    put_attempt(q, "undone", 1, "error", NULL, NULL);
    store_queue_release(q, false);

    assert_int_equal(store_queue_savepoint(q, &err), 0);
    insert_event(q, "kept-2", "fn", "3");
    assert_int_equal(store_idem_put(q, "fn", "k-kept", "kept-2", 6, 0, NULL, &err), 0);
    store_queue_release(q, true);

    /* Nothing is visible to another connection before the commit. */
    assert_int_equal(count_events(q), 2);
    assert_int_equal(count_events(reader), 0);
    assert_int_equal(store_queue_commit(q, &err), 0);

    store_qevent_t *list = NULL;
    size_t n = 0;
    assert_int_equal(store_qevent_list(reader, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].request_id, "kept-1");
    assert_string_equal(list[1].request_id, "kept-2");
    store_qevent_list_free(list, n);
    keys_t k = idem_keys(reader, 0);
    assert_int_equal(k.len, 1);
    assert_string_equal(k.line[0], "fn/k-kept=kept-2@6");
    counts_t c = dead_letter_counts(reader);
    assert_int_equal(c.len, 0);
    store_attempt_t *at = NULL;
    assert_int_equal(store_attempt_list(reader, "undone", &at, &n, &err), 0);
    assert_int_equal(n, 0);
    store_attempt_list_free(at, n);

    store_queue_close(reader);
    store_queue_close(q);
}

static void test_transactions_durable_or_not(void **state)
{
    store_queue_t *q = open_queue(*state);
    store_queue_t *reader = open_queue(*state);
    mf_error_t err = MF_ERROR_INIT;

    /* Both kinds commit, in any order. */
    assert_int_equal(store_queue_begin(q, false, &err), 0);
    insert_event(q, "lazy-1", "fn", "1");
    assert_int_equal(store_queue_commit(q, &err), 0);
    assert_int_equal(count_events(reader), 1);
    assert_int_equal(store_queue_begin(q, true, &err), 0);
    insert_event(q, "durable", "fn", "2");
    assert_int_equal(store_queue_commit(q, &err), 0);
    assert_int_equal(store_queue_begin(q, false, &err), 0);
    insert_event(q, "lazy-2", "fn", "3");
    assert_int_equal(store_queue_commit(q, &err), 0);
    assert_int_equal(count_events(reader), 3);

    /* A rolled back transaction leaves nothing. */
    assert_int_equal(store_queue_begin(q, true, &err), 0);
    insert_event(q, "rolled-back", "fn", "4");
    assert_int_equal(count_events(q), 4);
    store_queue_rollback(q);
    assert_int_equal(count_events(q), 3);
    /* A rollback outside a transaction is harmless. */
    store_queue_rollback(q);

    /* A transaction does not nest. */
    assert_int_equal(store_queue_begin(q, false, &err), 0);
    err = (mf_error_t)MF_ERROR_INIT;
    assert_true(store_queue_begin(q, false, &err) < 0);
    assert_true(err.msg[0] != '\0');
    insert_event(q, "after-a-failed-begin", "fn", "5");
    assert_int_equal(store_queue_commit(q, &err), 0);
    assert_int_equal(count_events(reader), 4);

    /* Outside a transaction every write commits on its own. */
    insert_event(q, "autocommit", "fn", "6");
    assert_int_equal(count_events(reader), 5);
    store_queue_close(reader);
    store_queue_close(q);

    q = open_queue(*state);
    assert_int_equal(count_events(q), 5);
    store_queue_close(q);
}

/* ---- the writer --------------------------------------------------------- */

#define MAX_JOBS 512

typedef struct harness {
    uv_loop_t loop;
    uv_timer_t guard; /* fails a test that would wait forever */
    bool timed_out;
    pthread_t loop_thread;
    store_writer_t *w;
    store_queue_t *reader; /* the loop's own connection */
    /* on_commit's reports: */
    unsigned commits;
    unsigned committed_jobs;
    unsigned batch[MAX_JOBS]; /* jobs of each commit */
    bool durable[MAX_JOBS];   /* and whether it was durable */
    /* done callbacks, in the order they ran: */
    int order[MAX_JOBS];
    unsigned n_done;
    /* Set when a done callback ran before on_commit reported its batch, or
     * off the loop's thread. */
    bool done_before_commit;
    bool done_off_loop;
} harness_t;

typedef struct job {
    harness_t *h;
    int index;
    int fail;              /* what apply returns: 0, or a negative errno */
    uv_sem_t *started;     /* posted when apply begins, if set */
    uv_sem_t *gate;        /* apply waits on it, if set */
    bool apply_off_loop;   /* apply ran on another thread than the loop's */
    bool submit_follow_up; /* done submits job follow_up */
    struct job *follow_up;
    /* What done was told: */
    bool called;
    int r;
    int code;
    char msg[512];
    /* For a barrier: what had committed when its done ran. */
    unsigned done_before;
    size_t visible;
} job_t;

static void on_guard(uv_timer_t *t)
{
    harness_t *h = t->data;
    h->timed_out = true;
    uv_stop(&h->loop);
}

static void on_commit(void *ud, unsigned jobs, bool durable, uint64_t commit_ns)
{
    harness_t *h = ud;
    if (h->commits < MAX_JOBS) {
        h->batch[h->commits] = jobs;
        h->durable[h->commits] = durable;
    }
    h->commits++;
    h->committed_jobs += jobs;
}

static void harness_init(harness_t *h, const backend_t *b)
{
    memset(h, 0, sizeof *h);
    assert_int_equal(uv_loop_init(&h->loop), 0);
    assert_int_equal(uv_timer_init(&h->loop, &h->guard), 0);
    h->guard.data = h;
    h->loop_thread = pthread_self();
    mf_error_t err = MF_ERROR_INIT;
    store_writer_db_t db;
    int r = store_queue_writer_db(b->where, &db, &err);
    if (r == 0)
        r = store_writer_start(&h->loop, &db, on_commit, h, &h->w, &err);
    if (r < 0)
        fail_msg("store_writer_start: %s", err.msg);
    h->reader = open_queue(b);
}

/* Runs the loop until *count reaches target, failing after 20 s. */
static void harness_run_until(harness_t *h, const unsigned *count, unsigned target)
{
    uv_timer_start(&h->guard, on_guard, 20000, 0);
    while (*count < target && !h->timed_out)
        uv_run(&h->loop, UV_RUN_ONCE);
    uv_timer_stop(&h->guard);
    assert_false(h->timed_out);
}

/* Stops the writer (if the test has not) and checks that nothing is left
 * on the loop. */
static void harness_fini(harness_t *h)
{
    if (h->w)
        store_writer_stop(h->w);
    h->w = NULL;
    store_queue_close(h->reader);
    uv_close((uv_handle_t *)&h->guard, NULL);
    assert_int_equal(uv_run(&h->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&h->loop), 0);
}

static int job_apply(void *db, void *arg, mf_error_t *err)
{
    store_queue_t *q = db;
    job_t *j = arg;
    /* No cmocka asserts here: this is the writer's thread. */
    j->apply_off_loop = !pthread_equal(pthread_self(), j->h->loop_thread);
    if (j->started)
        uv_sem_post(j->started);
    if (j->gate)
        uv_sem_wait(j->gate);
    store_qevent_t ev;
    char rid[37];
    snprintf(rid, sizeof rid, "job-%d", j->index);
    make_event(&ev, rid, "fn", rid, strlen(rid));
    int r = store_qevent_insert(q, &ev, err);
    if (r == 0 && j->fail)
        r = mf_error_plain(err, -j->fail, "job %d fails on purpose", j->index);
    return r;
}

static void job_done(void *arg, int r, const mf_error_t *err)
{
    job_t *j = arg;
    harness_t *h = j->h;
    if (!pthread_equal(pthread_self(), h->loop_thread))
        h->done_off_loop = true;
    if (h->n_done >= h->committed_jobs)
        h->done_before_commit = true;
    j->called = true;
    j->r = r;
    j->code = err ? err->code : -1;
    snprintf(j->msg, sizeof j->msg, "%s", err ? err->msg : "(no error struct)");
    if (h->n_done < MAX_JOBS)
        h->order[h->n_done] = j->index;
    h->n_done++;
    if (j->submit_follow_up && j->follow_up)
        store_writer_submit(h->w, true, job_apply, job_done, j->follow_up);
}

/* A barrier's done: notes what had committed and become visible to the
 * loop's own connection by then. */
static void barrier_done(void *arg, int r, const mf_error_t *err)
{
    job_t *j = arg;
    j->done_before = j->h->n_done;
    j->visible = count_events(j->h->reader);
    job_done(arg, r, err);
}

static job_t *make_jobs(harness_t *h, int n)
{
    job_t *jobs = xcalloc((size_t)n, sizeof *jobs);
    for (int i = 0; i < n; i++) {
        jobs[i].h = h;
        jobs[i].index = i;
        jobs[i].r = 1; /* not called yet */
    }
    return jobs;
}

/* The request ids of the events the reader sees, in order, "job-0,job-1". */
static void visible_jobs(store_queue_t *q, char *out, size_t size)
{
    mf_error_t err = MF_ERROR_INIT;
    store_qevent_t *list = NULL;
    size_t n = 0;
    int r = store_qevent_list(q, &list, &n, &err);
    if (r < 0)
        fail_msg("store_qevent_list: %s", err.msg);
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && len < size; i++)
        len += (size_t)snprintf(out + len, size - len, "%s%s", i ? "," : "", list[i].request_id);
    store_qevent_list_free(list, n);
}

static void test_writer_done_in_submission_order(void **state)
{
    harness_t h;
    harness_init(&h, *state);
    enum { N = 50 };
    cleanup_free job_t *jobs = make_jobs(&h, N);
    for (int i = 0; i < N; i++)
        store_writer_submit(h.w, i % 3 == 0, job_apply, job_done, &jobs[i]);
    harness_run_until(&h, &h.n_done, N);

    assert_int_equal(h.n_done, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(h.order[i], i);
        assert_true(jobs[i].called);
        assert_int_equal(jobs[i].r, 0);
        assert_true(jobs[i].apply_off_loop);
    }
    assert_false(h.done_off_loop);
    assert_false(h.done_before_commit);
    assert_int_equal(h.committed_jobs, N);
    assert_true(h.commits >= 1);

    /* Another connection sees every job's write, in submission order. */
    assert_int_equal(count_events(h.reader), N);
    char seen[1024], want[1024];
    visible_jobs(h.reader, seen, sizeof seen);
    size_t len = 0;
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(want + len, sizeof want - len, "%sjob-%d", i ? "," : "", i);
    assert_string_equal(seen, want);

    harness_fini(&h);
    /* And so does a connection opened after the writer stopped. */
    store_queue_t *q = open_queue(*state);
    assert_int_equal(count_events(q), N);
    store_queue_close(q);
}

static void test_writer_failing_job_fails_alone(void **state)
{
    harness_t h;
    harness_init(&h, *state);
    cleanup_free job_t *jobs = make_jobs(&h, 4);
    uv_sem_t started, gate;
    assert_int_equal(uv_sem_init(&started, 0), 0);
    assert_int_equal(uv_sem_init(&gate, 0), 0);

    /* Job 0 holds the writer's thread until the other three wait behind
     * it, so that they make one batch. */
    jobs[0].started = &started;
    jobs[0].gate = &gate;
    store_writer_submit(h.w, false, job_apply, job_done, &jobs[0]);
    /* Jobs reach the thread once per loop iteration. */
    uv_run(&h.loop, UV_RUN_NOWAIT);
    uv_sem_wait(&started);
    jobs[2].fail = -EINVAL;
    store_writer_submit(h.w, true, job_apply, job_done, &jobs[1]);
    store_writer_submit(h.w, false, job_apply, job_done, &jobs[2]);
    store_writer_submit(h.w, false, job_apply, job_done, &jobs[3]);
    uv_sem_post(&gate);
    harness_run_until(&h, &h.n_done, 4);

    assert_int_equal(h.commits, 2);
    assert_int_equal(h.batch[0], 1);
    assert_false(h.durable[0]);
    assert_int_equal(h.batch[1], 3);
    assert_true(h.durable[1]); /* one durable job makes its batch durable */

    for (int i = 0; i < 4; i++)
        assert_int_equal(h.order[i], i);
    assert_int_equal(jobs[0].r, 0);
    assert_int_equal(jobs[1].r, 0);
    assert_int_equal(jobs[2].r, -EINVAL);
    assert_int_equal(jobs[2].code, EINVAL);
    assert_string_equal(jobs[2].msg, "job 2 fails on purpose");
    assert_int_equal(jobs[3].r, 0);

    /* Job 2's insert is undone; its neighbours' are committed. */
    char seen[256];
    visible_jobs(h.reader, seen, sizeof seen);
    assert_string_equal(seen, "job-0,job-1,job-3");

    harness_fini(&h);
    uv_sem_destroy(&started);
    uv_sem_destroy(&gate);
}

/* A read's apply: how many events the writer's own connection sees. */
static int read_apply(void *db, void *arg, mf_error_t *err)
{
    job_t *j = arg;
    /* No cmocka asserts here: this is the writer's thread. */
    j->apply_off_loop = !pthread_equal(pthread_self(), j->h->loop_thread);
    store_qevent_t *list = NULL;
    size_t n = 0;
    int r = store_qevent_list(db, &list, &n, err);
    store_qevent_list_free(list, n);
    j->visible = n;
    return r;
}

/* A read runs on the writer's thread after every write submitted before it
 * (it sees them all), is answered in order with them, and makes no batch
 * of writes that nobody waits for sync. */
static void test_writer_read_sees_the_writes_before_it(void **state)
{
    harness_t h;
    harness_init(&h, *state);
    enum { N = 20 };
    cleanup_free job_t *jobs = make_jobs(&h, N + 1);
    for (int i = 0; i < N; i++)
        store_writer_submit(h.w, false, job_apply, job_done, &jobs[i]);
    store_writer_submit_read(h.w, read_apply, job_done, &jobs[N]);
    harness_run_until(&h, &h.n_done, N + 1);

    assert_int_equal(jobs[N].r, 0);
    assert_true(jobs[N].apply_off_loop);
    assert_int_equal(jobs[N].visible, N);
    assert_int_equal(h.order[N], N);
    for (unsigned c = 0; c < h.commits && c < MAX_JOBS; c++)
        assert_false(h.durable[c]);
    harness_fini(&h);
}

static void test_writer_barrier_after_earlier_jobs(void **state)
{
    harness_t h;
    harness_init(&h, *state);
    enum { N = 20 };
    cleanup_free job_t *jobs = make_jobs(&h, N + 2);

    /* A barrier with nothing before it still gets its callback. */
    jobs[N + 1].index = N + 1;
    store_writer_submit(h.w, false, NULL, barrier_done, &jobs[N + 1]);
    harness_run_until(&h, &h.n_done, 1);
    assert_int_equal(jobs[N + 1].r, 0);
    assert_int_equal(jobs[N + 1].visible, 0);
    h.n_done = 0;

    for (int i = 0; i < N; i++)
        store_writer_submit(h.w, i == 7, job_apply, job_done, &jobs[i]);
    store_writer_submit(h.w, false, NULL, barrier_done, &jobs[N]);
    harness_run_until(&h, &h.n_done, N + 1);

    /* It ran last, once every earlier job had committed and was visible to
     * another connection. */
    assert_true(jobs[N].called);
    assert_int_equal(jobs[N].r, 0);
    assert_int_equal(jobs[N].done_before, N);
    assert_int_equal(jobs[N].visible, N);
    assert_int_equal(h.order[N], N);
    assert_false(jobs[N].apply_off_loop); /* it has no apply */
    assert_int_equal(count_events(h.reader), N);
    harness_fini(&h);
}

typedef struct burst {
    harness_t *h;
    job_t *jobs;
    int n;
} burst_t;

static void on_burst(uv_timer_t *t)
{
    burst_t *b = t->data;
    for (int i = 0; i < b->n; i++)
        store_writer_submit(b->h->w, true, job_apply, job_done, &b->jobs[i]);
}

static void test_writer_group_commits(void **state)
{
    harness_t h;
    harness_init(&h, *state);
    enum { N = 200 };
    cleanup_free job_t *jobs = make_jobs(&h, N);

    /* Submitted in one go from a callback on the loop, as the HTTP server
     * would under load. */
    burst_t b = {&h, jobs, N};
    uv_timer_t t;
    assert_int_equal(uv_timer_init(&h.loop, &t), 0);
    t.data = &b;
    assert_int_equal(uv_timer_start(&t, on_burst, 0, 0), 0);
    harness_run_until(&h, &h.n_done, N);
    uv_close((uv_handle_t *)&t, NULL);

    assert_int_equal(h.n_done, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(h.order[i], i);
        assert_int_equal(jobs[i].r, 0);
    }
    assert_int_equal(h.committed_jobs, N);
    assert_true(h.commits >= 1);
    assert_true(h.commits < N);
    for (unsigned i = 0; i < h.commits && i < MAX_JOBS; i++)
        assert_true(h.durable[i]);
    assert_false(h.done_before_commit);
    assert_int_equal(count_events(h.reader), N);
    harness_fini(&h);
}

static void test_writer_stop_runs_pending(void **state)
{
    harness_t h;
    harness_init(&h, *state);
    enum { N = 30 };
    cleanup_free job_t *jobs = make_jobs(&h, N + 1);

    /* A callback that submits more while the writer stops: that job runs
     * too. */
    jobs[N - 1].submit_follow_up = true;
    jobs[N - 1].follow_up = &jobs[N];
    jobs[5].fail = -EIO;
    for (int i = 0; i < N; i++)
        store_writer_submit(h.w, i % 2 == 0, job_apply, job_done, &jobs[i]);

    /* The loop never runs before the stop: the stop itself calls back. */
    store_writer_stop(h.w);
    h.w = NULL;
    assert_int_equal(h.n_done, N + 1);
    for (int i = 0; i <= N; i++) {
        assert_int_equal(h.order[i], i);
        assert_true(jobs[i].called);
        assert_int_equal(jobs[i].r, i == 5 ? -EIO : 0);
    }
    assert_false(h.done_off_loop);

    assert_int_equal(count_events(h.reader), N);
    char seen[1024];
    visible_jobs(h.reader, seen, sizeof seen);
    assert_null(strstr(seen, "job-5,"));
    assert_non_null(strstr(seen, "job-4,job-6,"));
    assert_non_null(strstr(seen, ",job-30"));
    harness_fini(&h);
}

static void test_writer_stop_when_idle(void **state)
{
    harness_t h;
    harness_init(&h, *state);
    store_writer_stop(h.w);
    h.w = NULL;
    assert_int_equal(h.n_done, 0);
    assert_int_equal(h.commits, 0);
    store_writer_stop(NULL);
    harness_fini(&h);
}

static void test_writer_start_fails_where_unreachable(void **state)
{
    const char *mention;
    cleanup_free char *where = unreachable_where(*state, &mention);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    mf_error_t err = MF_ERROR_INIT;
    store_writer_t *w = NULL;
    store_writer_db_t db;
    int r = store_queue_writer_db(where, &db, &err);
    if (r == 0)
        r = store_writer_start(&loop, &db, NULL, NULL, &w, &err);
    assert_true(r < 0);
    assert_null(w);
    assert_non_null(strstr(err.msg, mention));
    /* Nothing is left on the loop. */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup_backend, teardown)
    const struct CMUnitTest tests[] = {
        T(test_open_creates_and_migrates),
        T(test_reopen_keeps_data),
        T(test_open_fails_where_unreachable),
        T(test_qevent_insert_list_update_delete),
        T(test_qevent_body_round_trips_bytes),
        T(test_qevent_body_missing_is_enoent),
        T(test_attempts_put_list),
        T(test_prune_attempts_and_dead_letters),
        T(test_dead_letter_put_get_delete),
        T(test_dead_letter_from_seq),
        T(test_dead_letter_list_and_counts),
        T(test_idempotency_put_list_prune),
        T(test_forget_function),
        T(test_take_from_the_pool),
        T(test_nodes_beat_expire_and_leave),
        T(test_a_lease_of_zero_takes_over_everything),
        T(test_idempotency_key_live_elsewhere),
        T(test_savepoint_undoes_one_job),
        T(test_transactions_durable_or_not),
        T(test_writer_done_in_submission_order),
        T(test_writer_failing_job_fails_alone),
        T(test_writer_barrier_after_earlier_jobs),
        T(test_writer_read_sees_the_writes_before_it),
        T(test_writer_group_commits),
        T(test_writer_stop_runs_pending),
        T(test_writer_stop_when_idle),
        T(test_writer_start_fails_where_unreachable),
    };
#undef T
    return run_on_both_backends("the queue", tests);
}
