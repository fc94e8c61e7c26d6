#include "core/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int mf_error_set(mf_error_t *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        if (code && n >= 0 && (size_t)n < sizeof err->msg)
            snprintf(err->msg + n, sizeof err->msg - (size_t)n, ": %s", strerror(code));
        err->code = code;
    }
    return code ? -code : -EINVAL;
}

int mf_error_wrap(mf_error_t *err, const char *fmt, ...)
{
    if (!err)
        return -EINVAL;
    char prefix[128];
    char old[sizeof err->msg];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    size_t n = strlen(prefix);
    /* Keep as much of both as fits; the message is for people. */
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, ": ", 2);
    size_t room = sizeof err->msg - n - 3;
    size_t ol = strnlen(old, room);
    memcpy(err->msg + n + 2, old, ol);
    err->msg[n + 2 + ol] = '\0';
    return err->code ? -err->code : -EINVAL;
}

int mf_error_plain(mf_error_t *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return -code;
}

const char *mf_error_show(const char *text, size_t max, char *out, size_t size)
{
    size_t j = 0;
    for (size_t i = 0; text[i] && j + 4 < size; i++) {
        unsigned char c = (unsigned char)text[i];
        out[j++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
        if (j == max) {
            memcpy(out + j, "...", 3);
            j += 3;
            break;
        }
    }
    out[j] = '\0';
    return out;
}
