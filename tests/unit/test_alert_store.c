/* Alert rules and their outbox in the store (store/alerts.h), the same on
 * both backends: a rule's settings and state round trip and survive
 * reopening, a put with other settings forgets the state and one with the
 * same keeps it, and the outbox's notifications are claimed by one node at
 * a time, retried when due, finished, and taken up again after a crash. */
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

#include "store/alerts.h"

#define expect(call, want)                                                                         \
    do {                                                                                           \
        int r_ = (call);                                                                           \
        if (r_ != (want))                                                                          \
            fail_msg("%s: %d, not %d: %s", #call, r_, (want), err.msg);                            \
    } while (0)

static store_alert_rule_t rule(const char *name, const char *config, int64_t ms)
{
    store_alert_rule_t r = {.config_json = (char *)config, .created_ms = ms, .updated_ms = ms};
    snprintf(r.name, sizeof r.name, "%s", name);
    return r;
}

static const char *state_of(store_t *s, const char *name)
{
    static char kept[256];
    mf_error_t err = MF_ERROR_INIT;
    store_alert_rule_t *list = NULL;
    size_t n = 0;
    expect(store_alert_rule_list(s, &list, &n, &err), 0);
    const char *found = NULL;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(list[i].name, name)) {
            snprintf(kept, sizeof kept, "%s", list[i].state_json ? list[i].state_json : "(null)");
            found = kept;
        }
    store_alert_rule_list_free(list, n);
    return found;
}

static void test_rules_round_trip_and_keep_their_state(void **state)
{
    backend_t *b = *state;
    mf_error_t err = MF_ERROR_INIT;
    store_t *s = open_store(b);
    bool created = false;
    store_alert_rule_t r = rule("team-b~errors", "{\"threshold\":0.5}", 1000);
    expect(store_alert_rule_put(s, &r, &created, &err), 0);
    assert_true(created);
    expect(store_alert_state_put(s, "team-b~errors", "{\"series\":[1]}", &err), 0);
    expect(store_alert_state_put(s, "gone", "{}", &err), -ENOENT);
    assert_non_null(strstr(err.msg, "gone"));
    /* The same settings again: the state stays, created_ms too. */
    r.updated_ms = 2000;
    expect(store_alert_rule_put(s, &r, &created, &err), 0);
    assert_false(created);
    assert_string_equal(state_of(s, "team-b~errors"), "{\"series\":[1]}");
    store_close(s);

    s = open_store(b);
    store_alert_rule_t *list = NULL;
    size_t n = 0;
    expect(store_alert_rule_list(s, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].config_json, "{\"threshold\":0.5}");
    assert_int_equal(list[0].created_ms, 1000);
    assert_int_equal(list[0].updated_ms, 2000);
    store_alert_rule_list_free(list, n);
    /* Other settings: the state starts again. */
    r = rule("team-b~errors", "{\"threshold\":0.9}", 3000);
    expect(store_alert_rule_put(s, &r, &created, &err), 0);
    assert_string_equal(state_of(s, "team-b~errors"), "(null)");
    expect(store_alert_rule_delete(s, "team-b~errors", &err), 0);
    expect(store_alert_rule_delete(s, "team-b~errors", &err), -ENOENT);
    assert_null(state_of(s, "team-b~errors"));
    store_close(s);
}

static store_alert_note_t note(const char *target, int64_t now)
{
    store_alert_note_t n = {.created_ms = now, .target = (char *)target, .body = "{\"v\":\"4\"}"};
    snprintf(n.tenant, sizeof n.tenant, "default");
    snprintf(n.kind, sizeof n.kind, "webhook");
    return n;
}

static void test_the_outbox_is_claimed_once(void **state)
{
    backend_t *b = *state;
    mf_error_t err = MF_ERROR_INIT;
    /* PostgreSQL: two servers' connections; SQLite: one server at a time
     * (the data directory is locked), its claims by two names alike. */
    store_t *s1 = open_store(b), *s2 = b->pg ? open_store(b) : s1;
    int64_t now = 1000000;
    store_alert_note_t n1 = note("http://a/1", now), n2 = note("http://a/2", now),
                       n3 = note("http://a/3", now);
    expect(store_alert_note_add(s1, &n1, &err), 0);
    expect(store_alert_note_add(s1, &n2, &err), 0);
    expect(store_alert_note_add(s1, &n3, &err), 0);
    assert_true(n1.id > 0 && n2.id > n1.id && n3.id > n2.id);
    /* Two nodes claim: neither gets what the other has. */
    store_alert_note_t *a = NULL, *c = NULL;
    size_t na = 0, nc = 0;
    expect(store_alert_note_claim(s1, "node-a", now, now - 60000, 2, &a, &na, &err), 0);
    expect(store_alert_note_claim(s2, "node-b", now, now - 60000, 8, &c, &nc, &err), 0);
    assert_int_equal(na, 2);
    assert_int_equal(nc, 1);
    assert_int_equal(a[0].id, n1.id);
    assert_string_equal(a[0].target, "http://a/1");
    assert_string_equal(a[0].body, "{\"v\":\"4\"}");
    assert_string_equal(a[0].kind, "webhook");
    assert_string_equal(a[0].tenant, "default");
    assert_int_equal(c[0].id, n3.id);
    store_alert_note_list_free(c, nc);
    expect(store_alert_note_claim(s2, "node-b", now, now - 60000, 8, &c, &nc, &err), 0);
    assert_int_equal(nc, 0);
    store_alert_note_list_free(c, nc);
    /* n1 delivered; n2 failed: due again later, unclaimed. */
    expect(store_alert_note_finish(s1, a[0].id, true, now + 5, NULL, &err), 0);
    expect(store_alert_note_retry(s1, a[1].id, 1, now + 100, "the receiver answered 500", &err), 0);
    store_alert_note_list_free(a, na);
    expect(store_alert_note_claim(s1, "node-a", now + 99, now - 60000, 8, &a, &na, &err), 0);
    assert_int_equal(na, 0);
    store_alert_note_list_free(a, na);
    expect(store_alert_note_claim(s1, "node-a", now + 100, now - 60000, 8, &a, &na, &err), 0);
    assert_int_equal(na, 1);
    assert_int_equal(a[0].id, n2.id);
    assert_int_equal(a[0].attempts, 1);
    store_alert_note_list_free(a, na);
    /* node-b died with n3: a stale claim is taken by age... */
    expect(store_alert_note_claim(s1, "node-a", now + 200, now - 60000, 8, &a, &na, &err), 0);
    assert_int_equal(na, 0);
    store_alert_note_list_free(a, na);
    expect(store_alert_note_claim(s1, "node-a", now + 200, now + 1, 8, &a, &na, &err), 0);
    assert_int_equal(na, 1); /* n3: n2's claim (at now + 100) is not older than now + 1 */
    assert_int_equal(a[0].id, n3.id);
    store_alert_note_list_free(a, na);
    /* ...and a server starting on the same data releases every claim. */
    expect(store_alert_note_recover(s2, NULL, 0, &err), 0);
    expect(store_alert_note_claim(s2, "node-c", now + 300, now - 60000, 8, &c, &nc, &err), 0);
    assert_int_equal(nc, 2);
    store_alert_note_list_free(c, nc);
    /* Done ones are forgotten once old enough; a finished one is never
     * claimed again. */
    expect(store_alert_note_recover(s2, NULL, now + 6, &err), 0);
    expect(store_alert_note_recover(s2, NULL, 0, &err), 0);
    expect(store_alert_note_claim(s2, "node-c", now + 400, now + 400, 8, &c, &nc, &err), 0);
    assert_int_equal(nc, 2);
    for (size_t i = 0; i < nc; i++)
        assert_true(c[i].id != n1.id);
    store_alert_note_list_free(c, nc);
    store_close(s1);
    if (s2 != s1)
        store_close(s2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rules_round_trip_and_keep_their_state, setup_backend,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_the_outbox_is_claimed_once, setup_backend, teardown),
    };
    return run_on_both_backends("alert rules in the store", tests);
}
