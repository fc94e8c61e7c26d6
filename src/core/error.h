/* The error a failing function hands back to its caller: an errno-style code
 * and a message that gains context on the way up (crun's libcrun_error_t).
 * Functions that can fail return int: 0 on success, a negative errno on
 * failure, and fill *err when err is not NULL. */
#ifndef MAYFLY_CORE_ERROR_H
#define MAYFLY_CORE_ERROR_H

#include <stddef.h>

typedef struct mf_error {
    int code;        /* positive errno value, or 0 when not from the OS */
    char msg[512];
} mf_error_t;

#define MF_ERROR_INIT { 0, { 0 } }

/* Sets *err to code and a formatted message; returns -code (or -EINVAL when
 * code is 0) so a caller can write `return mf_error_set(err, ...)`. When code
 * is non-zero, ": strerror(code)" is appended to the message. */
int mf_error_set(mf_error_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like mf_error_set, but the message is used as it is (no strerror), for
 * errors whose message already says everything. Returns -code. */
int mf_error_plain(mf_error_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Copies text that came from a client into out (size bytes) fit for a
 * message: control characters become '?', and past max characters it is
 * cut with "...". Returns out. */
const char *mf_error_show(const char *text, size_t max, char *out, size_t size);

/* Prefixes the message already in *err with more context: "ctx: old". */
int mf_error_wrap(mf_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
