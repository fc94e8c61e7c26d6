/* The KV service's reads (state/kv.h: state_kv_read), on both backends
 * (store_backends.h): every kind of read answers what the stores hold; a
 * read asked for once a write's callback has run sees that write (on
 * PostgreSQL the write is the writer thread's connection's and the read a
 * reader thread's); the answer comes at once on SQLite and from the loop on
 * PostgreSQL, where many reads in flight at once are each answered once
 * with their own key; reads count; a stopping service refuses reads; and
 * closing the service answers the reads still on their way. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "store_backends.h"

#include "core/xalloc.h"
#include "obs/metrics.h"
#include "state/kv.h"

/* ---- the service on a loop ------------------------------------------------ */

typedef struct svc {
    uv_loop_t loop;
    uv_async_t keep; /* keeps uv_run waiting for the threads' answers */
    state_kv_t *kv;
    bool pg;
} svc_t;

static void svc_open(svc_t *s, const backend_t *b)
{
    memset(s, 0, sizeof *s);
    s->pg = b->pg;
    assert_int_equal(uv_loop_init(&s->loop), 0);
    assert_int_equal(uv_async_init(&s->loop, &s->keep, NULL), 0);
    state_kv_config_t cfg = STATE_KV_CONFIG_DEFAULT;
    mf_error_t err = MF_ERROR_INIT;
    if (state_kv_open(&s->loop, b->where, &cfg, &s->kv, &err) < 0)
        fail_msg("state_kv_open: %s", err.msg);
}

static void svc_close(svc_t *s)
{
    state_kv_close(s->kv);
    uv_close((uv_handle_t *)&s->keep, NULL);
    assert_int_equal(uv_run(&s->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&s->loop), 0);
}

static void run_until(svc_t *s, const bool *flag)
{
    while (!*flag)
        uv_run(&s->loop, UV_RUN_ONCE);
}

/* ---- writes --------------------------------------------------------------- */

typedef struct wrote {
    bool called;
    int r;
} wrote_t;

static void on_wrote(void *ud, int r, const state_kv_result_t *res, const mf_error_t *err)
{
    wrote_t *w = ud;
    w->called = true;
    w->r = r;
}

/* Puts value at store/key and waits for its callback. */
static void put(svc_t *s, const char *store, const char *key, const char *value)
{
    store_kv_op_t *op = xcalloc(1, sizeof *op);
    op->kind = STORE_KV_PUT;
    op->key = xstrdup(key);
    op->key_len = strlen(key);
    op->value = xstrdup(value);
    op->value_len = strlen(value);
    wrote_t w = {0};
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(state_kv_write(s->kv, store, op, 1, on_wrote, &w, &err), 0);
    run_until(s, &w.called);
    assert_int_equal(w.r, 0);
}

/* ---- reads ---------------------------------------------------------------- */

/* What a read's callback was given, taken over from the answer. */
typedef struct got {
    bool called;
    int r;
    char msg[512];
    state_kv_answer_t a;
} got_t;

static void on_read(void *ud, int r, state_kv_answer_t *a, const mf_error_t *err)
{
    got_t *g = ud;
    assert_false(g->called);
    g->called = true;
    g->r = r;
    snprintf(g->msg, sizeof g->msg, "%s", r < 0 && err ? err->msg : "");
    g->a = *a;
    /* Taken: the service frees none of it. */
    memset(&a->item, 0, sizeof a->item);
    a->items = NULL;
    a->stores = NULL;
}

static void got_clear(got_t *g)
{
    store_kv_item_clear(&g->a.item);
    store_kv_items_free(g->a.items, g->a.count);
    free(g->a.stores);
    memset(g, 0, sizeof *g);
}

/* Asks q and waits for the answer; on SQLite it must come at once, on
 * PostgreSQL only from the loop. */
static void read_now(svc_t *s, const state_kv_query_t *q, got_t *g)
{
    memset(g, 0, sizeof *g);
    state_kv_read(s->kv, q, on_read, g);
    assert_int_equal(g->called, !s->pg);
    run_until(s, &g->called);
}

static void assert_get(svc_t *s, const char *store, const char *key, const char *value)
{
    got_t g;
    read_now(s,
             &(state_kv_query_t){
                 .kind = STATE_KV_READ_GET, .store = store, .key = key, .key_len = strlen(key)},
             &g);
    if (!value) {
        assert_int_equal(g.r, -ENOENT);
    } else {
        if (g.r < 0)
            fail_msg("get %s/%s: %s", store, key, g.msg);
        assert_int_equal(g.a.item.value_len, strlen(value));
        assert_memory_equal(g.a.item.value, value, strlen(value));
        assert_true(g.a.item.version > 0);
    }
    got_clear(&g);
}

/* ---- tests ---------------------------------------------------------------- */

static void test_every_kind_of_read_answers(void **state)
{
    const backend_t *b = *state;
    svc_t s;
    svc_open(&s, b);
    for (int i = 0; i < 5; i++) {
        char key[16], value[16];
        snprintf(key, sizeof key, "k%d", i);
        snprintf(value, sizeof value, "v%d", i);
        put(&s, "st", key, value);
    }
    put(&s, "other", "x", "123");

    assert_get(&s, "st", "k3", "v3");
    assert_get(&s, "st", "nope", NULL);
    assert_get(&s, "none", "k3", NULL);

    got_t g;
    slice_t keys[] = {{"k4", 2}, {"missing", 7}, {"k0", 2}};
    read_now(&s,
             &(state_kv_query_t){
                 .kind = STATE_KV_READ_GET_MANY, .store = "st", .keys = keys, .nkeys = 3},
             &g);
    assert_int_equal(g.r, 0);
    assert_int_equal(g.a.count, 3);
    assert_true(g.a.items[0].found && g.a.items[2].found && !g.a.items[1].found);
    assert_string_equal(g.a.items[0].value, "v4");
    assert_string_equal(g.a.items[1].key, "missing");
    assert_string_equal(g.a.items[2].value, "v0");
    got_clear(&g);

    /* Two pages of two after a prefix, then the last. */
    const char *after = NULL;
    char last[16] = "";
    size_t pages = 0, seen = 0;
    do {
        read_now(&s,
                 &(state_kv_query_t){.kind = STATE_KV_READ_LIST,
                                     .store = "st",
                                     .prefix = "k",
                                     .prefix_len = 1,
                                     .after = after,
                                     .after_len = after ? strlen(after) : 0,
                                     .limit = 2},
                 &g);
        assert_int_equal(g.r, 0);
        for (size_t i = 0; i < g.a.count; i++) {
            char want[16];
            snprintf(want, sizeof want, "k%zu", seen++);
            assert_string_equal(g.a.items[i].key, want);
            assert_null(g.a.items[i].value);
        }
        pages++;
        snprintf(last, sizeof last, "%s", g.a.count ? (char *)g.a.items[g.a.count - 1].key : "");
        after = last;
        bool more = g.a.more;
        got_clear(&g);
        if (!more)
            break;
    } while (pages < 10);
    assert_int_equal(pages, 3);
    assert_int_equal(seen, 5);

    /* Reads so far of st: a get, a missing get, a batch of three, three
     * pages. */
    read_now(&s, &(state_kv_query_t){.kind = STATE_KV_READ_STATS, .store = "st"}, &g);
    assert_int_equal(g.r, 0);
    assert_int_equal(g.a.stats.keys, 5);
    assert_int_equal(g.a.stats.bytes, 5 * 4);
    assert_int_equal(g.a.stats.writes, 5);
    assert_int_equal(g.a.stats.reads, 1 + 1 + 3 + 3);
    assert_int_equal(g.a.stats.max_keys, 1000000);
    got_clear(&g);

    read_now(&s, &(state_kv_query_t){.kind = STATE_KV_READ_STORES}, &g);
    assert_int_equal(g.r, 0);
    assert_int_equal(g.a.nstores, 2);
    assert_string_equal(g.a.stores[0].name, "other");
    assert_int_equal(g.a.stores[0].keys, 1);
    assert_string_equal(g.a.stores[1].name, "st");
    got_clear(&g);
    svc_close(&s);
}

/* Each write is answered, then read at once: the read sees it, though on
 * PostgreSQL it is made on another connection than the write. */
static void test_a_read_sees_every_answered_write(void **state)
{
    const backend_t *b = *state;
    svc_t s;
    svc_open(&s, b);
    for (int i = 0; i < 200; i++) {
        char value[16];
        snprintf(value, sizeof value, "%d", i);
        put(&s, "ryw", "k", value);
        assert_get(&s, "ryw", "k", value);
    }
    svc_close(&s);
}

/* Many reads in flight at once: each answered once, with its own key. */
static void test_reads_in_flight_each_get_their_answer(void **state)
{
    const backend_t *b = *state;
    svc_t s;
    svc_open(&s, b);
    enum { KEYS = 20, READS = 300 };
    for (int i = 0; i < KEYS; i++) {
        char key[16], value[16];
        snprintf(key, sizeof key, "k%d", i);
        snprintf(value, sizeof value, "v%d", i);
        put(&s, "many", key, value);
    }
    got_t *g = xcalloc(READS, sizeof *g);
    for (int i = 0; i < READS; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i % (KEYS + 1)); /* k20 is not there */
        state_kv_read(s.kv,
                      &(state_kv_query_t){.kind = STATE_KV_READ_GET,
                                          .store = "many",
                                          .key = key,
                                          .key_len = strlen(key)},
                      on_read, &g[i]);
    }
    for (int i = 0; i < READS; i++)
        run_until(&s, &g[i].called);
    for (int i = 0; i < READS; i++) {
        int k = i % (KEYS + 1);
        if (k == KEYS) {
            assert_int_equal(g[i].r, -ENOENT);
        } else {
            char value[16];
            snprintf(value, sizeof value, "v%d", k);
            assert_int_equal(g[i].r, 0);
            assert_string_equal(g[i].a.item.value, value);
        }
        got_clear(&g[i]);
    }
    free(g);
    got_t st;
    read_now(&s, &(state_kv_query_t){.kind = STATE_KV_READ_STATS, .store = "many"}, &st);
    assert_int_equal(st.a.stats.reads, READS);
    got_clear(&st);
    svc_close(&s);
}

/* Stopping refuses new reads at once; closing answers those still on their
 * way, read to the end. */
static void test_stop_refuses_and_close_answers(void **state)
{
    const backend_t *b = *state;
    svc_t s;
    svc_open(&s, b);
    put(&s, "end", "k", "v");
    enum { N = 50 };
    got_t g[N];
    memset(g, 0, sizeof g);
    for (int i = 0; i < N; i++)
        state_kv_read(s.kv,
                      &(state_kv_query_t){
                          .kind = STATE_KV_READ_GET, .store = "end", .key = "k", .key_len = 1},
                      on_read, &g[i]);
    state_kv_stop(s.kv);
    got_t refused = {0};
    state_kv_read(s.kv, &(state_kv_query_t){.kind = STATE_KV_READ_STORES}, on_read, &refused);
    assert_true(refused.called);
    assert_int_equal(refused.r, -ESHUTDOWN);
    got_clear(&refused);
    /* No loop turn in between: the close answers them all. */
    state_kv_close(s.kv);
    for (int i = 0; i < N; i++) {
        assert_true(g[i].called);
        assert_int_equal(g[i].r, 0);
        assert_string_equal(g[i].a.item.value, "v");
        got_clear(&g[i]);
    }
    uv_close((uv_handle_t *)&s.keep, NULL);
    assert_int_equal(uv_run(&s.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&s.loop), 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup_backend, teardown)
    const struct CMUnitTest tests[] = {
        T(test_every_kind_of_read_answers),
        T(test_a_read_sees_every_answered_write),
        T(test_reads_in_flight_each_get_their_answer),
        T(test_stop_refuses_and_close_answers),
    };
    int failed = run_on_both_backends("the KV service's reads", tests);
    metrics_free_all();
    return failed;
}
