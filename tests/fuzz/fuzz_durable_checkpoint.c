/* libFuzzer target: CheckpointDurableExecution's body, as a function (or
 * anyone with a token) may send anything, then the checked updates
 * applied to an operation log. A refusal says why; what is accepted
 * applies or is refused with a message, and leaves a log whose every
 * operation has an Id, a Type and a Status. Build with `make fuzz`;
 * `make test` replays the checked-in corpus. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durable/durable.h"

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_durable_checkpoint: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    durable_checkpoint_req_t req;
    mf_error_t err = MF_ERROR_INIT;
    if (durable_checkpoint_parse((const char *)data, size, &req, &err) < 0) {
        check(err.msg[0] != '\0', "a body refused without a message");
        return 0;
    }
    durable_oplog_t log;
    durable_oplog_init(&log, NULL, 0);
    durable_oplog_start(&log, "exec", "{}", 1000);
    size_t i;
    json_t *u;
    int64_t now = 2000;
    json_array_foreach(req.updates, i, u)
    {
        err = (mf_error_t)MF_ERROR_INIT;
        size_t before = json_array_size(log.ops);
        if (durable_oplog_apply(&log, u, "exec", now, &err) < 0) {
            check(err.msg[0] != '\0', "an update refused without a message");
            check(json_array_size(log.ops) == before, "a refused update left an operation");
        }
        now += 500;
        durable_oplog_advance(&log, now);
    }
    (void)durable_oplog_next_wake(&log);
    json_t *op;
    json_array_foreach(log.ops, i, op)
    {
        check(json_is_string(json_object_get(op, "Id")), "an operation without an Id");
        check(json_is_string(json_object_get(op, "Type")), "an operation without a Type");
        check(json_is_string(json_object_get(op, "Status")), "an operation without a Status");
        json_t *pub = durable_op_public(op);
        json_decref(pub);
    }
    durable_oplog_release(&log);
    durable_checkpoint_req_clear(&req);
    return 0;
}
