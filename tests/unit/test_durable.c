/* Durable executions' pure parts (src/durable/durable.h): execution ARNs,
 * the checkpoint body's checks, and how each update of the protocol
 * changes the operation log, with the clock passed in; and their store
 * (store/durable.h) on both backends (store_backends.h). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "store_backends.h"

#include "durable/durable.h"
#include "store/durable.h"
#include "store/queue.h"

#define ID "1b4e28ba-2fa1-41d2-883f-0016d3cca427"

static void test_arn_parse(void **state)
{
    (void)state;
    durable_arn_t a;
    assert_int_equal(durable_arn_parse("arn:aws:lambda:eu-west-1:000000000000:function:orders:"
                                       "$LATEST/durable-execution/order-42/" ID,
                                       &a),
                     0);
    assert_string_equal(a.region, "eu-west-1");
    assert_string_equal(a.function, "orders");
    assert_string_equal(a.name, "order-42");
    assert_string_equal(a.id, ID);
    /* As it arrives in a path, percent-encoded. */
    assert_int_equal(durable_arn_parse("arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction"
                                       "%3Af%3A%24LATEST%2Fdurable-execution%2Fn%2F" ID,
                                       &a),
                     0);
    assert_string_equal(a.function, "f");
    char out[512];
    durable_arn_format("us-east-1", "f", "n", ID, out, sizeof out);
    assert_string_equal(out, "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST/"
                             "durable-execution/n/" ID);
}

static void test_arn_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "nonsense",
        "arn:aws:lambda:us-east-1:000000000000:function:f",
        "arn:aws:lambda:us-east-1:000000000000:function:f:7/durable-execution/n/" ID,
        "arn:aws:lambda:us-east-1:0000:function:f:$LATEST/durable-execution/n/" ID,
        "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST/durable-execution/../" ID,
        "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST/durable-execution/n/xyz",
        "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST/durable-execution/n/" ID "/x",
        "arn%zz",
        "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST/durable-execution/n%00/" ID,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        durable_arn_t a;
        if (durable_arn_parse(bad[i], &a) != -EINVAL)
            fail_msg("`%s` parsed", bad[i]);
    }
    assert_true(durable_name_valid("order-42_x"));
    assert_false(durable_name_valid(""));
    assert_false(durable_name_valid("a/b"));
}

static void parse_fails(const char *body, int code, const char *mention)
{
    durable_checkpoint_req_t req;
    mf_error_t err = MF_ERROR_INIT;
    int r = durable_checkpoint_parse(body, strlen(body), &req, &err);
    if (r != -code)
        fail_msg("`%s`: %d, not %d (%s)", body, r, -code, err.msg);
    if (!strstr(err.msg, mention))
        fail_msg("`%s`: `%s` does not mention `%s`", body, err.msg, mention);
}

static void test_checkpoint_parse(void **state)
{
    (void)state;
    durable_checkpoint_req_t req;
    mf_error_t err = MF_ERROR_INIT;
    const char *ok = "{\"CheckpointToken\":\"tok\",\"ClientToken\":\"c1\",\"Updates\":"
                     "[{\"Id\":\"a\",\"Type\":\"STEP\",\"Action\":\"START\",\"Name\":\"one\"}]}";
    assert_int_equal(durable_checkpoint_parse(ok, strlen(ok), &req, &err), 0);
    assert_string_equal(req.token, "tok");
    assert_string_equal(req.client_token, "c1");
    assert_int_equal(json_array_size(req.updates), 1);
    durable_checkpoint_req_clear(&req);

    parse_fails("[]", EINVAL, "JSON object");
    parse_fails("{}", EINVAL, "CheckpointToken");
    parse_fails("{\"CheckpointToken\":\"t\",\"Updates\":{}}", EINVAL, "Updates");
    parse_fails(
        "{\"CheckpointToken\":\"t\",\"Updates\":[{\"Type\":\"STEP\",\"Action\":\"START\"}]}",
        EINVAL, "Updates[0].Id");
    parse_fails("{\"CheckpointToken\":\"t\",\"Updates\":[{\"Id\":\"a\",\"Type\":\"NAP\","
                "\"Action\":\"START\"}]}",
                EINVAL, "Updates[0].Type");
    parse_fails("{\"CheckpointToken\":\"t\",\"Updates\":[{\"Id\":\"a\",\"Type\":\"STEP\","
                "\"Action\":\"FLY\"}]}",
                EINVAL, "Updates[0].Action");
    parse_fails("{\"CheckpointToken\":\"t\",\"Updates\":[{\"Id\":\"a\",\"Type\":\"WAIT\","
                "\"Action\":\"START\",\"WaitOptions\":{\"WaitSeconds\":-1}}]}",
                EINVAL, "WaitOptions.WaitSeconds");
    /* A payload past the bound. */
    size_t n = DURABLE_MAX_PAYLOAD + 100;
    char *big = malloc(n + 200);
    int k = snprintf(big, 200,
                     "{\"CheckpointToken\":\"t\",\"Updates\":[{\"Id\":\"a\",\"Type\":"
                     "\"STEP\",\"Action\":\"SUCCEED\",\"Payload\":\"");
    memset(big + k, 'x', n);
    strcpy(big + k + n, "\"}]}");
    parse_fails(big, EFBIG, "Updates[0].Payload");
    free(big);
}

static json_t *update(const char *text)
{
    json_error_t jerr;
    json_t *u = json_loads(text, 0, &jerr);
    if (!u)
        fail_msg("bad test update `%s`: %s", text, jerr.text);
    return u;
}

static void apply_ok(durable_oplog_t *log, const char *text, int64_t now)
{
    json_t *u = update(text);
    mf_error_t err = MF_ERROR_INIT;
    if (durable_oplog_apply(log, u, "exec", now, &err) < 0)
        fail_msg("`%s` refused: %s", text, err.msg);
    json_decref(u);
}

static void apply_refused(durable_oplog_t *log, const char *text, int64_t now, const char *mention)
{
    json_t *u = update(text);
    mf_error_t err = MF_ERROR_INIT;
    if (durable_oplog_apply(log, u, "exec", now, &err) != -EINVAL)
        fail_msg("`%s` applied", text);
    if (!strstr(err.msg, mention))
        fail_msg("`%s`: `%s` does not mention `%s`", text, err.msg, mention);
    json_decref(u);
}

static const char *status_of(durable_oplog_t *log, const char *id)
{
    return json_string_value(json_object_get(durable_oplog_find(log, id, NULL), "Status"));
}

static void test_step_lifecycle(void **state)
{
    (void)state;
    durable_oplog_t log;
    durable_oplog_init(&log, NULL, 0);
    durable_oplog_start(&log, "exec", "{\"x\":1}", 1000);
    apply_ok(&log, "{\"Id\":\"s\",\"Type\":\"STEP\",\"Action\":\"START\",\"Name\":\"one\"}", 2000);
    assert_string_equal(status_of(&log, "s"), "STARTED");
    /* A retry: PENDING until its time, then READY, then started again. */
    apply_ok(&log,
             "{\"Id\":\"s\",\"Type\":\"STEP\",\"Action\":\"RETRY\",\"StepOptions\":"
             "{\"NextAttemptDelaySeconds\":3},\"Error\":{\"ErrorMessage\":\"boom\"}}",
             2000);
    assert_string_equal(status_of(&log, "s"), "PENDING");
    assert_int_equal(durable_oplog_next_wake(&log), 5000);
    assert_false(durable_oplog_advance(&log, 4999));
    assert_true(durable_oplog_advance(&log, 5000));
    assert_string_equal(status_of(&log, "s"), "READY");
    apply_ok(&log, "{\"Id\":\"s\",\"Type\":\"STEP\",\"Action\":\"START\"}", 5100);
    apply_ok(&log, "{\"Id\":\"s\",\"Type\":\"STEP\",\"Action\":\"SUCCEED\",\"Payload\":\"42\"}",
             5200);
    json_t *op = durable_oplog_find(&log, "s", NULL);
    json_t *d = json_object_get(op, "StepDetails");
    assert_string_equal(json_string_value(json_object_get(d, "Result")), "42");
    assert_int_equal(json_integer_value(json_object_get(d, "Attempt")), 1);
    assert_string_equal(json_string_value(json_object_get(op, "Name")), "one");
    /* Ended: nothing more applies to it. */
    apply_refused(&log, "{\"Id\":\"s\",\"Type\":\"STEP\",\"Action\":\"FAIL\"}", 5300, "ended");
    apply_refused(&log, "{\"Id\":\"s\",\"Type\":\"WAIT\",\"Action\":\"START\"}", 5300, "STEP");
    /* mayfly's own fields stay inside. */
    json_t *pub = durable_op_public(op);
    assert_null(json_object_get(pub, "_seq"));
    assert_non_null(json_object_get(pub, "StepDetails"));
    json_decref(pub);
    durable_oplog_release(&log);
}

static void test_wait_and_callback(void **state)
{
    (void)state;
    durable_oplog_t log;
    durable_oplog_init(&log, NULL, 0);
    durable_oplog_start(&log, "exec", "{}", 0);
    apply_ok(&log,
             "{\"Id\":\"w\",\"Type\":\"WAIT\",\"Action\":\"START\",\"WaitOptions\":"
             "{\"WaitSeconds\":10}}",
             1000);
    apply_refused(&log, "{\"Id\":\"w\",\"Type\":\"WAIT\",\"Action\":\"SUCCEED\"}", 1000,
                  "ends by itself");
    apply_ok(&log,
             "{\"Id\":\"c\",\"Type\":\"CALLBACK\",\"Action\":\"START\",\"CallbackOptions\":"
             "{\"TimeoutSeconds\":60,\"HeartbeatTimeoutSeconds\":5}}",
             1000);
    assert_int_equal(durable_oplog_next_wake(&log), 6000); /* the heartbeat's deadline */
    assert_true(durable_oplog_waiting(&log));
    const char *cb = json_string_value(json_object_get(
        json_object_get(durable_oplog_find(&log, "c", NULL), "CallbackDetails"), "CallbackId"));
    assert_non_null(cb);
    mf_error_t err = MF_ERROR_INIT;
    /* A heartbeat moves the deadline on. */
    assert_int_equal(durable_oplog_callback(&log, cb, "heartbeat", NULL, NULL, 4000, &err), 0);
    assert_int_equal(durable_oplog_next_wake(&log), 9000);
    assert_true(durable_oplog_advance(&log, 11000));
    assert_string_equal(status_of(&log, "w"), "SUCCEEDED");
    assert_string_equal(status_of(&log, "c"), "TIMED_OUT");
    json_t *x = json_string("x");
    assert_int_equal(durable_oplog_callback(&log, cb, "succeed", x, NULL, 12000, &err), -EINVAL);
    json_decref(x);
    assert_int_equal(durable_oplog_callback(&log, "nope", "succeed", NULL, NULL, 12000, &err),
                     -ENOENT);
    durable_oplog_release(&log);
}

static void test_callback_success_and_chained(void **state)
{
    (void)state;
    durable_oplog_t log;
    durable_oplog_init(&log, NULL, 0);
    durable_oplog_start(&log, "exec", "{}", 0);
    apply_ok(&log, "{\"Id\":\"c\",\"Type\":\"CALLBACK\",\"Action\":\"START\"}", 10);
    const char *cb = json_string_value(json_object_get(
        json_object_get(durable_oplog_find(&log, "c", NULL), "CallbackDetails"), "CallbackId"));
    mf_error_t err = MF_ERROR_INIT;
    json_t *res = json_string("\"yes\"");
    assert_int_equal(durable_oplog_callback(&log, cb, "succeed", res, NULL, 20, &err), 0);
    json_decref(res);
    assert_string_equal(status_of(&log, "c"), "SUCCEEDED");
    apply_refused(&log, "{\"Id\":\"i\",\"Type\":\"CHAINED_INVOKE\",\"Action\":\"START\"}", 30,
                  "FunctionName");
    apply_ok(&log,
             "{\"Id\":\"i\",\"Type\":\"CHAINED_INVOKE\",\"Action\":\"START\","
             "\"ChainedInvokeOptions\":{\"FunctionName\":\"callee\"},\"Payload\":\"{}\"}",
             30);
    assert_int_equal(json_array_size(log.chained), 1);
    size_t ord;
    durable_oplog_find(&log, "i", &ord);
    res = json_string("7");
    durable_oplog_chained_done(&log, ord, "SUCCEEDED", res, NULL, 40);
    json_decref(res);
    assert_string_equal(status_of(&log, "i"), "SUCCEEDED");
    /* The execution's own result, checkpointed when too large to answer. */
    apply_ok(&log, "{\"Id\":\"r\",\"Type\":\"EXECUTION\",\"Action\":\"SUCCEED\",\"Payload\":\"1\"}",
             50);
    assert_string_equal(log.outcome, "SUCCEEDED");
    assert_string_equal(json_string_value(log.result), "1");
    durable_oplog_release(&log);
}

static void test_change_numbers(void **state)
{
    (void)state;
    durable_oplog_t log;
    durable_oplog_init(&log, NULL, 10);
    durable_oplog_start(&log, "exec", "{}", 0);
    apply_ok(&log, "{\"Id\":\"a\",\"Type\":\"STEP\",\"Action\":\"START\"}", 1);
    apply_ok(&log, "{\"Id\":\"a\",\"Type\":\"STEP\",\"Action\":\"SUCCEED\"}", 2);
    /* Each change gets the next number; a checkpoint answers those past
     * what its caller saw. */
    assert_int_equal(log.seq, 13);
    json_t *a = durable_oplog_find(&log, "a", NULL);
    assert_int_equal(json_integer_value(json_object_get(a, "_seq")), 13);
    assert_int_equal(json_array_size(log.changed), 2);
    durable_oplog_release(&log);
}

/* Retention: a finished execution goes retention_days after it ended,
 * with its operations; a running one stays however old. */
static void test_store_prune(void **state)
{
    store_queue_t *q = open_queue(*state);
    mf_error_t err = MF_ERROR_INIT;
    const int64_t day = 86400000;
    const char *ids[] = {"00000000-0000-4000-8000-000000000001",
                         "00000000-0000-4000-8000-000000000002",
                         "00000000-0000-4000-8000-000000000003"};
    const char *status[] = {"SUCCEEDED", "FAILED", "RUNNING"};
    const int64_t ended[] = {1 * day, 9 * day, 0};
    for (int i = 0; i < 3; i++) {
        store_durable_exec_t e = {0};
        snprintf(e.id, sizeof e.id, "%s", ids[i]);
        snprintf(e.function, sizeof e.function, "f");
        snprintf(e.name, sizeof e.name, "n%d", i);
        snprintf(e.status, sizeof e.status, "%s", status[i]);
        e.end_ms = ended[i];
        e.retention_days = 2;
        assert_int_equal(store_durable_exec_put(q, &e, &err), 0);
        json_t *op =
            json_pack("{s:s, s:s, s:s}", "Id", ids[i], "Type", "EXECUTION", "Status", status[i]);
        assert_int_equal(store_durable_op_put(q, ids[i], 0, op, &err), 0);
        json_decref(op);
    }
    int64_t n = 0;
    assert_int_equal(store_durable_prune(q, 10 * day, &n, &err), 0);
    assert_int_equal(n, 1); /* ended on day 1, kept 2 days */
    store_durable_exec_t e = {0};
    assert_int_equal(store_durable_exec_get(q, ids[0], &e, &err), -ENOENT);
    json_t *ops = NULL;
    assert_int_equal(store_durable_ops_get(q, ids[0], &ops, &err), 0);
    assert_int_equal(json_array_size(ops), 0);
    json_decref(ops);
    assert_int_equal(store_durable_exec_get(q, ids[1], &e, &err), 0);
    store_durable_exec_clear(&e);
    assert_int_equal(store_durable_exec_get(q, ids[2], &e, &err), 0);
    store_durable_exec_clear(&e);
    store_queue_close(q);
}

static void put_exec(store_queue_t *q, const char *id, const char *function, const char *name,
                     const char *status, int64_t start_ms)
{
    store_durable_exec_t e = {.seq = 7, .token_seq = 5, .in_flight = true, .next_wake_ms = 9,
                              .start_ms = start_ms, .deadline_ms = 99, .retention_days = 14,
                              .invocations = 2, .failures = 1};
    snprintf(e.id, sizeof e.id, "%s", id);
    snprintf(e.function, sizeof e.function, "%s", function);
    snprintf(e.name, sizeof e.name, "%s", name);
    snprintf(e.status, sizeof e.status, "%s", status);
    e.input = "{\"x\":1}";
    snprintf(e.token, sizeof e.token, "tok-%s", id);
    snprintf(e.last_client_token, sizeof e.last_client_token, "client");
    snprintf(e.parent_id, sizeof e.parent_id, "parent");
    mf_error_t err = MF_ERROR_INIT;
    if (store_durable_exec_put(q, &e, &err) < 0)
        fail_msg("store_durable_exec_put: %s", err.msg);
}

static void put_op(store_queue_t *q, const char *exec_id, int64_t ord, const char *text)
{
    json_t *op = json_loads(text, 0, NULL);
    assert_non_null(op);
    mf_error_t err = MF_ERROR_INIT;
    if (store_durable_op_put(q, exec_id, ord, op, &err) < 0)
        fail_msg("store_durable_op_put: %s", err.msg);
    json_decref(op);
}

/* The ids of a listing, in its order: "e1 e2". */
static void exec_ids(store_queue_t *q, const char *function, const char *status, int limit,
                     char *out, size_t size)
{
    store_durable_exec_t *list = NULL;
    size_t n = 0;
    mf_error_t err = MF_ERROR_INIT;
    if (store_durable_exec_list(q, function, status, limit, &list, &n, &err) < 0)
        fail_msg("store_durable_exec_list: %s", err.msg);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(out);
        snprintf(out + len, size - len, "%s%s", i ? " " : "", list[i].id);
    }
    store_durable_exec_list_free(list, n);
}

/* An execution round-trips field by field, is found by name and listed
 * newest first; its operation log keeps positions; callbacks are found;
 * counts and a function's forgetting take what they should. */
static void test_store_executions_and_operations(void **state)
{
    store_queue_t *q = open_queue(*state);
    mf_error_t err = MF_ERROR_INIT;
    put_exec(q, "e1", "f", "one", "RUNNING", 100);
    put_exec(q, "e2", "f", "two", "SUCCEEDED", 200);
    put_exec(q, "e3", "g", "one", "RUNNING", 300);

    store_durable_exec_t e = {0};
    assert_int_equal(store_durable_exec_get(q, "e2", &e, &err), 0);
    assert_string_equal(e.function, "f");
    assert_string_equal(e.name, "two");
    assert_string_equal(e.status, "SUCCEEDED");
    assert_string_equal(e.input, "{\"x\":1}");
    assert_null(e.result);
    assert_null(e.last_response);
    assert_string_equal(e.token, "tok-e2");
    assert_int_equal(e.seq, 7);
    assert_int_equal(e.token_seq, 5);
    assert_true(e.in_flight);
    assert_int_equal(e.next_wake_ms, 9);
    assert_int_equal(e.start_ms, 200);
    assert_int_equal(e.deadline_ms, 99);
    assert_int_equal(e.retention_days, 14);
    assert_int_equal(e.invocations, 2);
    assert_int_equal(e.failures, 1);
    assert_string_equal(e.last_client_token, "client");
    assert_string_equal(e.parent_id, "parent");
    assert_string_equal(e.parent_op, "");
    store_durable_exec_clear(&e);
    assert_int_equal(store_durable_exec_by_name(q, "g", "one", &e, &err), 0);
    assert_string_equal(e.id, "e3");
    store_durable_exec_clear(&e);
    assert_int_equal(store_durable_exec_by_name(q, "g", "two", &e, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "two"));
    assert_int_equal(store_durable_exec_get(q, "nope", &e, &err), -ENOENT);

    char ids[128];
    exec_ids(q, NULL, NULL, 10, ids, sizeof ids);
    assert_string_equal(ids, "e3 e2 e1");
    exec_ids(q, "f", NULL, 10, ids, sizeof ids);
    assert_string_equal(ids, "e2 e1");
    exec_ids(q, NULL, "RUNNING", 1, ids, sizeof ids);
    assert_string_equal(ids, "e3");
    store_durable_exec_t *running = NULL;
    size_t n = 0;
    assert_int_equal(store_durable_exec_running(q, &running, &n, &err), 0);
    assert_int_equal(n, 2);
    store_durable_exec_list_free(running, n);

    /* A put replaces the execution of its id, and one of the same function
     * and name goes. */
    put_exec(q, "e1", "f", "one", "FAILED", 100);
    put_exec(q, "e4", "f", "two", "RUNNING", 400);
    exec_ids(q, "f", NULL, 10, ids, sizeof ids);
    assert_string_equal(ids, "e4 e1");
    assert_int_equal(store_durable_exec_get(q, "e1", &e, &err), 0);
    assert_string_equal(e.status, "FAILED");
    store_durable_exec_clear(&e);

    /* The log is in the order of positions; a position written again is
     * replaced; a callback is found by its id. */
    put_op(q, "e4", 1, "{\"Id\":\"b\",\"Type\":\"WAIT\",\"Status\":\"STARTED\"}");
    put_op(q, "e4", 0, "{\"Id\":\"a\",\"Type\":\"STEP\",\"Status\":\"STARTED\"}");
    put_op(q, "e4", 2,
           "{\"Id\":\"c\",\"Type\":\"CALLBACK\",\"Status\":\"STARTED\","
           "\"CallbackDetails\":{\"CallbackId\":\"cb-1\"}}");
    put_op(q, "e4", 0, "{\"Id\":\"a\",\"Type\":\"STEP\",\"Status\":\"PENDING\"}");
    put_op(q, "e3", 0, "{\"Id\":\"w\",\"Type\":\"WAIT\",\"Status\":\"SUCCEEDED\"}");
    json_t *ops = NULL;
    assert_int_equal(store_durable_ops_get(q, "e4", &ops, &err), 0);
    assert_int_equal(json_array_size(ops), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ops, 0), "Status")),
                        "PENDING");
    assert_string_equal(json_string_value(json_object_get(json_array_get(ops, 2), "Id")), "c");
    json_decref(ops);
    char exec_id[37];
    assert_int_equal(store_durable_callback_find(q, "cb-1", exec_id, &err), 0);
    assert_string_equal(exec_id, "e4");
    assert_int_equal(store_durable_callback_find(q, "cb-2", exec_id, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "cb-2"));

    /* RUNNING e3, e4; FAILED e1; SUCCEEDED none (e2 went); e4 waits on a
     * step's retry, a wait and a callback. */
    int64_t counts[5], timers, callbacks;
    assert_int_equal(store_durable_counts(q, counts, &timers, &callbacks, &err), 0);
    assert_int_equal(counts[0], 2);
    assert_int_equal(counts[1], 0);
    assert_int_equal(counts[2], 1);
    assert_int_equal(counts[3] + counts[4], 0);
    assert_int_equal(timers, 2);
    assert_int_equal(callbacks, 1);

    /* A deleted function's executions go with their operations. */
    assert_int_equal(store_durable_forget_function(q, "f", &err), 0);
    assert_int_equal(store_durable_forget_function(q, "f", &err), 0);
    exec_ids(q, NULL, NULL, -1, ids, sizeof ids);
    assert_string_equal(ids, "e3");
    assert_int_equal(store_durable_ops_get(q, "e4", &ops, &err), 0);
    assert_int_equal(json_array_size(ops), 0);
    json_decref(ops);
    assert_int_equal(store_durable_ops_get(q, "e3", &ops, &err), 0);
    assert_int_equal(json_array_size(ops), 1);
    json_decref(ops);
    store_queue_close(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arn_parse),
        cmocka_unit_test(test_arn_refused),
        cmocka_unit_test(test_checkpoint_parse),
        cmocka_unit_test(test_step_lifecycle),
        cmocka_unit_test(test_wait_and_callback),
        cmocka_unit_test(test_callback_success_and_chained),
        cmocka_unit_test(test_change_numbers),
    };
    const struct CMUnitTest store_tests[] = {
        cmocka_unit_test_setup_teardown(test_store_prune, setup_backend, teardown),
        cmocka_unit_test_setup_teardown(test_store_executions_and_operations, setup_backend,
                                        teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return failed | run_on_both_backends("durable executions' store", store_tests);
}
