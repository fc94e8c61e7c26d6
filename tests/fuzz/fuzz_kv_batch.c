/* libFuzzer target: the body of POST /v1/kv/{store}/_batch, as a client
 * (or a function) may send anything. What parses must hold what the
 * parser promises: at most 100 items, keys that pass the key check, values
 * within the bound, and exactly one of reads or writes.
 * Build with `make fuzz`; `make test` replays the checked-in corpus. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state/kv.h"

/* Small, so values over it are easy to reach. */
#define FUZZ_MAX_VALUE 64

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_kv_batch: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    state_kv_batch_t b;
    mf_error_t err = MF_ERROR_INIT;
    int r = state_kv_batch_parse(data, size, FUZZ_MAX_VALUE, &b, &err);
    if (r < 0) {
        check(r == -EINVAL || r == -EFBIG, "an error other than EINVAL or EFBIG");
        check(err.msg[0] != '\0', "an error without a message");
        check(!b.keys && !b.ops && !b.nkeys && !b.nops, "a failed parse left items");
        return 0;
    }
    mf_error_t e2 = MF_ERROR_INIT;
    if (b.is_get) {
        check(b.nops == 0 && b.nkeys <= STATE_KV_BATCH_MAX, "a bad read batch");
        for (size_t i = 0; i < b.nkeys; i++)
            check(state_kv_check_key("k", b.keys[i].base, b.keys[i].len, &e2) == 0,
                  "a read key that fails the key check");
    } else {
        check(b.nkeys == 0 && b.nops <= STATE_KV_BATCH_MAX, "a bad write batch");
        for (size_t i = 0; i < b.nops; i++) {
            const store_kv_op_t *op = &b.ops[i];
            check(state_kv_check_key("k", op->key, op->key_len, &e2) == 0,
                  "a written key that fails the key check");
            check(op->value_len <= FUZZ_MAX_VALUE, "a value over the bound");
            check(!(op->if_absent && op->if_version), "if_absent with if_version");
            check(op->ttl_ms >= 0 && op->ttl_ms <= (int64_t)STATE_KV_TTL_MAX * 1000,
                  "a TTL out of range");
            if (op->kind == STORE_KV_DELETE)
                check(!op->value && !op->content_type && !op->ttl_ms && !op->if_absent,
                      "a delete with put fields");
            else
                check(op->value != NULL, "a put without a value");
        }
    }
    state_kv_batch_clear(&b);
    return 0;
}
