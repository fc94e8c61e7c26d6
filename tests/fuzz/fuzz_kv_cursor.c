/* libFuzzer target: the cursor of KV listings (?cursor=), as a client may
 * send anything. What parses is a key of 1 to 1024 bytes whose cursor is
 * the input again, byte for byte.
 * Build with `make fuzz`; `make test` replays the checked-in corpus. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/kv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    buf_t key = BUF_INIT, again = BUF_INIT;
    if (store_kv_cursor_parse((const char *)data, size, &key) == 0) {
        store_kv_cursor_format(&again, key.data, key.len);
        if (key.len < 1 || key.len > STORE_KV_KEY_MAX || again.len != size ||
            memcmp(again.data, data, size)) {
            fprintf(stderr, "fuzz_kv_cursor: %.*s does not round-trip\n", (int)size,
                    (const char *)data);
            abort();
        }
    } else if (key.len) {
        fprintf(stderr, "fuzz_kv_cursor: a refused cursor left bytes\n");
        abort();
    }
    buf_release(&key);
    buf_release(&again);
    return 0;
}
