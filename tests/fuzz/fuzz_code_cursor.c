/* libFuzzer target: the cursor of a package's file list (?after=), as a
 * client may send anything. What parses is a path of 1 to
 * CODE_CURSOR_PATH_MAX bytes without NUL whose cursor is the input again,
 * byte for byte; what does not leaves nothing behind.
 * Build with `make fuzz`; `make test` replays the checked-in corpus. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/code.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    buf_t path = BUF_INIT, again = BUF_INIT;
    if (code_cursor_parse((const char *)data, size, &path) == 0) {
        code_cursor_format(&again, path.data, path.len);
        if (path.len < 1 || path.len > CODE_CURSOR_PATH_MAX ||
            memchr(path.data, '\0', path.len) || again.len != size ||
            memcmp(again.data, data, size)) {
            fprintf(stderr, "fuzz_code_cursor: %.*s does not round-trip\n", (int)size,
                    (const char *)data);
            abort();
        }
    } else if (path.len) {
        fprintf(stderr, "fuzz_code_cursor: a refused cursor left bytes\n");
        abort();
    }
    buf_release(&path);
    buf_release(&again);
    return 0;
}
