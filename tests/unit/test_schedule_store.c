/* The schedules' tables (store/schedules.h), on both backends (a real
 * queue.db in a fresh directory, a fresh PostgreSQL database;
 * store_backends.h): settings round-trip, a due time is logged once, a
 * deleted schedule logs nothing, the log keeps the latest fires, and a
 * failed log undoes the event written beside it. */
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

#include "store_backends.h"

#include "store/queue.h"
#include "store/schedules.h"

static void put_schedule(store_queue_t *q, const char *name, const char *input)
{
    store_schedule_t s = {.enabled = true, .flexible_window_min = 5, .start_ms = 1000,
                          .created_ms = 1000, .updated_ms = 2000};
    snprintf(s.name, sizeof s.name, "%s", name);
    snprintf(s.expression, sizeof s.expression, "cron(30 2 * * ? *)");
    snprintf(s.timezone, sizeof s.timezone, "Europe/Paris");
    snprintf(s.function, sizeof s.function, "fn");
    s.input = (char *)input;
    mf_error_t err = MF_ERROR_INIT;
    if (store_schedule_put(q, &s, &err) < 0)
        fail_msg("store_schedule_put: %s", err.msg);
}

static int log_fire(store_queue_t *q, const char *name, int64_t due_ms, const char *rid,
                    mf_error_t *err)
{
    store_schedule_fire_t f = {.due_ms = due_ms, .fired_ms = due_ms + 7};
    snprintf(f.schedule, sizeof f.schedule, "%s", name);
    snprintf(f.request_id, sizeof f.request_id, "%s", rid);
    return store_schedule_fire_put(q, &f, err);
}

static void test_settings_round_trip_and_survive_reopening(void **state)
{
    store_queue_t *q = open_queue(*state);
    put_schedule(q, "b", NULL);
    put_schedule(q, "a", "{\"x\":1}");
    store_queue_close(q);
    q = open_queue(*state);
    store_schedule_t *list;
    size_t n;
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(store_schedule_list(q, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "a");
    assert_string_equal(list[0].input, "{\"x\":1}");
    assert_null(list[1].input);
    assert_string_equal(list[1].expression, "cron(30 2 * * ? *)");
    assert_string_equal(list[1].timezone, "Europe/Paris");
    assert_true(list[1].enabled);
    assert_int_equal(list[1].flexible_window_min, 5);
    assert_int_equal(list[1].updated_ms, 2000);
    store_schedule_list_free(list, n);
    assert_int_equal(store_schedule_delete(q, "a", &err), 0);
    assert_int_equal(store_schedule_delete(q, "a", &err), -ENOENT);
    store_queue_close(q);
}

static void test_a_due_time_is_logged_once(void **state)
{
    store_queue_t *q = open_queue(*state);
    put_schedule(q, "s", NULL);
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(log_fire(q, "s", 60000, "r1", &err), 0);
    assert_int_equal(log_fire(q, "s", 60000, "r2", &err), -EEXIST);
    assert_int_equal(log_fire(q, "gone", 60000, "r3", &err), -ENOENT);
    store_schedule_fire_t *fires;
    size_t n;
    assert_int_equal(store_schedule_fire_list(q, "s", 10, &fires, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(fires[0].request_id, "r1");
    assert_int_equal(fires[0].fired_ms, 60007);
    assert_null(fires[0].error);
    store_schedule_fire_list_free(fires, n);
    /* Deleting a schedule forgets its log: a new one of that name starts
     * afresh. */
    assert_int_equal(store_schedule_delete(q, "s", &err), 0);
    put_schedule(q, "s", NULL);
    assert_int_equal(log_fire(q, "s", 60000, "r4", &err), 0);
    store_queue_close(q);
}

static void test_the_log_keeps_the_latest_fires(void **state)
{
    store_queue_t *q = open_queue(*state);
    put_schedule(q, "s", NULL);
    put_schedule(q, "t", NULL);
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(log_fire(q, "t", 1, "t1", &err), 0);
    for (int i = 1; i <= STORE_SCHEDULE_FIRES_KEPT + 5; i++)
        assert_int_equal(log_fire(q, "s", i * 60000LL, "r", &err), 0);
    store_schedule_fire_t *fires;
    size_t n;
    assert_int_equal(store_schedule_fire_list(q, "s", 100, &fires, &n, &err), 0);
    assert_int_equal(n, STORE_SCHEDULE_FIRES_KEPT);
    assert_int_equal(fires[0].due_ms, (STORE_SCHEDULE_FIRES_KEPT + 5) * 60000LL);
    assert_int_equal(fires[n - 1].due_ms, 6 * 60000LL);
    store_schedule_fire_list_free(fires, n);
    /* Another schedule's log is its own. */
    assert_int_equal(store_schedule_fire_list(q, "t", 100, &fires, &n, &err), 0);
    assert_int_equal(n, 1);
    store_schedule_fire_list_free(fires, n);
    store_queue_close(q);
}

/* What async's with_event relies on: inside one savepoint, an event and
 * a fire row that is refused go together. */
static void test_a_refused_fire_undoes_its_event(void **state)
{
    store_queue_t *q = open_queue(*state);
    put_schedule(q, "s", NULL);
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(log_fire(q, "s", 60000, "r1", &err), 0);
    assert_int_equal(store_queue_begin(q, true, &err), 0);
    assert_int_equal(store_queue_savepoint(q, &err), 0);
    store_qevent_t ev = {.enqueued_ms = 1, .next_ms = 1, .event = "{}", .event_len = 2};
    snprintf(ev.request_id, sizeof ev.request_id, "r2");
    snprintf(ev.function, sizeof ev.function, "fn");
    assert_int_equal(store_qevent_insert(q, &ev, &err), 0);
    int r = log_fire(q, "s", 60000, "r2", &err);
    assert_int_equal(r, -EEXIST);
    store_queue_release(q, false);
    assert_int_equal(store_queue_commit(q, &err), 0);
    store_qevent_t *list;
    size_t n;
    assert_int_equal(store_qevent_list(q, &list, &n, &err), 0);
    assert_int_equal(n, 0);
    store_qevent_list_free(list, n);
    store_queue_close(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_settings_round_trip_and_survive_reopening,
                                        setup_backend, teardown),
        cmocka_unit_test_setup_teardown(test_a_due_time_is_logged_once, setup_backend, teardown),
        cmocka_unit_test_setup_teardown(test_the_log_keeps_the_latest_fires, setup_backend,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_refused_fire_undoes_its_event, setup_backend,
                                        teardown),
    };
    return run_on_both_backends("the schedules' tables", tests);
}
