/* libFuzzer target: Lambda's HTTP-integration prelude (a JSON object,
 * eight NUL bytes, then the body), which a function writes at the head of
 * a streamed answer and a function URL turns into the response's status
 * and headers. The input is fed in pieces whose size its first byte picks;
 * the outcome must not depend on how it was split, and the header lines
 * it gives hold no CR or LF but at their ends.
 * Build with `make fuzz`; `make test` replays the checked-in corpus. */
#include <stdint.h>
#include <string.h>

#include "exec/exec.h"

static long feed(const char *data, size_t size, size_t step, exec_prelude_t *p)
{
    size_t off = 0;
    while (off < size && !p->done) {
        size_t len = size - off < step ? size - off : step;
        mf_error_t err = MF_ERROR_INIT;
        long n = exec_prelude_feed(p, data + off, len, &err);
        if (n < 0)
            return n;
        if ((size_t)n > len || (!p->done && (size_t)n != len))
            __builtin_trap();
        off += (size_t)n;
    }
    return (long)off;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 80 * 1024)
        return 0;
    size_t step = (size_t)data[0] + 1;
    const char *in = (const char *)data + 1;
    size--;

    exec_prelude_t whole, pieces;
    exec_prelude_init(&whole);
    exec_prelude_init(&pieces);
    long a = feed(in, size, size ? size : 1, &whole);
    long b = feed(in, size, step, &pieces);
    if ((a < 0) != (b < 0) || (a >= 0 && a != b) || whole.done != pieces.done)
        __builtin_trap();
    if (whole.done) {
        if (whole.status != pieces.status || whole.header_lines.len != pieces.header_lines.len ||
            memcmp(whole.header_lines.data, pieces.header_lines.data, whole.header_lines.len))
            __builtin_trap();
        if (whole.status < 100 || whole.status > 599)
            __builtin_trap();
        /* Every line ends with CRLF, and holds no other CR, LF or NUL. */
        const char *h = whole.header_lines.data;
        size_t n = whole.header_lines.len;
        for (size_t i = 0; i < n; i++) {
            if (h[i] == '\0' || (h[i] == '\r' && (i + 1 >= n || h[i + 1] != '\n')) ||
                (h[i] == '\n' && (i == 0 || h[i - 1] != '\r')))
                __builtin_trap();
        }
        if (n && (n < 2 || h[n - 2] != '\r' || h[n - 1] != '\n'))
            __builtin_trap();
    }
    exec_prelude_release(&whole);
    exec_prelude_release(&pieces);
    return 0;
}
