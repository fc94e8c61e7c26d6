/* libFuzzer target: the keyset cursor of record listings (?cursor=), as a
 * client may send anything. What parses is formatted and parsed again,
 * which must give the same cursor.
 * Build with `make fuzz`; `make test` replays the checked-in corpus. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size ? size : 1);
    memcpy(s, data, size);
    store_record_cursor_t c;
    if (store_record_cursor_parse(s, size, &c) == 0) {
        buf_t text = BUF_INIT;
        store_record_cursor_format(&text, &c);
        store_record_cursor_t again;
        if (store_record_cursor_parse(text.data, text.len, &again) != 0 ||
            again.start_ms != c.start_ms || again.rowid != c.rowid) {
            fprintf(stderr, "fuzz_record_cursor: %.*s does not round-trip\n", (int)size, s);
            abort();
        }
        buf_release(&text);
    }
    free(s);
    return 0;
}
