/*
 * mayfly_runtime.h - write a Lambda-compatible function in C.
 *
 * A function for mayfly's `provided` runtime (and for AWS Lambda's
 * `provided.al2*`) is an executable named `bootstrap` that speaks the Lambda
 * Runtime API.  This library speaks it for you, so a function is one handler
 * and one call in main:
 *
 *     #include "mayfly_runtime.h"
 *
 *     static int handler(const mayfly_event_t *ev, mayfly_response_t *res)
 *     {
 *         return mayfly_response_set(res, "{\"ok\":true}", 11);
 *     }
 *
 *     int main(void)
 *     {
 *         return mayfly_runtime_run(handler);
 *     }
 *
 * Build it with nothing but a C17 compiler and libc:
 *
 *     cc -std=gnu17 -O2 -Iruntimes/c -o bootstrap main.c runtimes/c/mayfly_runtime.c
 *
 * then deploy the folder that holds `bootstrap` with `--runtime provided`.
 *
 * How it behaves
 * - It reads AWS_LAMBDA_RUNTIME_API (host:port, default 127.0.0.1:9001) and
 *   keeps one persistent HTTP/1.1 connection to it for every call: a long
 *   poll on GET /2018-06-01/runtime/invocation/next, then POST .../response
 *   or .../error.  If the server closes the idle connection, the library
 *   reconnects and retries once.
 * - The event is handed over as raw bytes (Lambda's events are JSON; this
 *   library does not parse them, see mayfly_json_get_string() for the common
 *   case of picking out one field).  Events may be up to
 *   MAYFLY_MAX_BODY_BYTES; the response bodies it reads are Content-Length
 *   or chunked framed, as the server chooses.
 * - stdout is made line buffered, and stdout and stderr are flushed before
 *   each result is posted, so what the handler prints is attributed to its
 *   invocation and shows up promptly in `mayfly logs`.
 * - One call at a time, unless the function sets instance_concurrency: then
 *   the platform says AWS_LAMBDA_MAX_CONCURRENCY=N and the library serves N
 *   calls at once, N threads each running the handler on a connection of
 *   its own (see "Many calls at once" below).  Otherwise nothing here is
 *   thread-safe: call the library from one thread.
 * - Memory allocation failure aborts the process with a message (the
 *   platform restarts it); every other failure is reported.
 */
#ifndef MAYFLY_RUNTIME_H
#define MAYFLY_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define MAYFLY__PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define MAYFLY__PRINTF(fmt, args)
#endif

/* The largest event the library accepts: the platform's default limit for a
 * synchronous event.  A larger body is treated as a protocol error (the
 * runtime exits).  A server configured for larger events needs functions
 * built with -DMAYFLY_MAX_BODY_BYTES=... to match. */
#ifndef MAYFLY_MAX_BODY_BYTES
#define MAYFLY_MAX_BODY_BYTES (6u * 1024u * 1024u)
#endif

/* One invocation, as the Runtime API delivered it.  Every pointer stays
 * valid until the handler returns; copy what you need to keep. */
typedef struct mayfly_event {
    /* The event bytes (JSON on Lambda), body_len of them.  A NUL follows the
     * last byte, so text events can be used as C strings, but the body itself
     * may contain NUL bytes: trust body_len. */
    const char *body;
    size_t body_len;
    /* Lambda-Runtime-Aws-Request-Id: the invocation's id, never empty. */
    const char *request_id;
    /* Lambda-Runtime-Invoked-Function-Arn, or "" if the server sent none. */
    const char *invoked_function_arn;
    /* Lambda-Runtime-Trace-Id, or "".  The library also exports it as
     * _X_AMZN_TRACE_ID for the duration of the invocation, as Lambda does. */
    const char *trace_id;
    /* Lambda-Runtime-Client-Context and Lambda-Runtime-Cognito-Identity: JSON
     * text, or NULL when the invocation carried none. */
    const char *client_context;
    const char *cognito_identity;
    /* Lambda-Runtime-Deadline-Ms: when the platform stops the invocation, in
     * milliseconds since the Unix epoch; 0 if the server sent none. */
    int64_t deadline_ms;
} mayfly_event_t;

/* What the handler answers.  Opaque: fill it with the functions below.  The
 * library owns it and reuses its storage between invocations. */
typedef struct mayfly_response mayfly_response_t;

/* The function's code.  Return 0 for success: the bytes put into `res` are
 * the invocation's result (JSON, by Lambda's convention; nothing at all means
 * `null`).  Return non-zero, or call mayfly_response_error(), for a function
 * error: the caller then gets {"errorType","errorMessage"} instead. */
typedef int (*mayfly_handler_fn)(const mayfly_event_t *event, mayfly_response_t *res);

/* Serve invocations until the Runtime API goes away, calling `handler` for
 * each.  It only returns when the Runtime API cannot be reached or answers
 * nonsense, after printing why on stderr; the return value is then an exit
 * status for main (1).  The platform starts a new process when it needs one. */
int mayfly_runtime_run(mayfly_handler_fn handler);

/* --- Many calls at once ----------------------------------------------------
 *
 * With AWS_LAMBDA_MAX_CONCURRENCY=N above 1 (a function deployed with
 * "instance_concurrency": N), mayfly_runtime_run() starts N threads, each
 * serving one call at a time on its own connection to the Runtime API, and
 * waits; when one of them meets a failure of the Runtime API the process
 * ends, as with one.  Then:
 * - The handler runs in N threads at once: it must be thread-safe (what it
 *   keeps in static or global variables is shared by every call; guard it,
 *   or make it _Thread_local).  Each call has its own event and response.
 *   Build with -pthread.
 * - _X_AMZN_TRACE_ID is not set (the environment is the process's, shared
 *   by the calls): each call's trace is in event->trace_id.
 * - The instance's stdout and stderr are shared, and the platform files a
 *   line under the call whose request id it carries.  So stdout and stderr
 *   become unbuffered streams that gather what each thread prints into lines
 *   and write each line whole, in one write(2), as
 *   "TIMESTAMP\tREQUEST_ID\tINFO\tLINE" (ERROR for stderr) when the thread
 *   is serving a call: printf(), puts() and fprintf(stderr, ...) in the
 *   handler are filed under its call.  A line the handler leaves unfinished
 *   is ended when it returns.  What threads of the handler's own print, and
 *   what is written to file descriptors 1 and 2 directly (write(2)), goes
 *   out as it is: the platform files it under the call in flight when there
 *   is exactly one, else under the function.
 * - The platform's API calls below (mayfly_kv_*, mayfly_invoke, ...) may be
 *   made from any thread: each thread has its own connection.
 * - A call whose deadline passes is failed by the platform while the
 *   instance goes on serving the others; the library ignores the refusal of
 *   its late answer. */

/* Writes one log record, in Lambda's text format:
 * "TIMESTAMP\tREQUEST_ID\tINFO\tMESSAGE" (the request id of the calling
 * thread's call, empty outside a call), in one write to stdout.  A trailing
 * newline of the message is dropped and the message's own line breaks are
 * kept in the record as "\r", so a record of many lines stays one line of
 * the log, filed under its call. */
void mayfly_log(const char *fmt, ...) MAYFLY__PRINTF(1, 2);

/* The request id of the call the calling thread is serving, or NULL outside
 * a call (before the first, and in threads the handler started). */
const char *mayfly_request_id(void);

/* Report a failure to initialise (a missing configuration, an unreachable
 * dependency) before calling mayfly_runtime_run(): POSTs
 * {"errorType","errorMessage"} to /runtime/init/error and prints it on
 * stderr.  Exit non-zero afterwards; the platform fails the pending
 * invocation with this error.  Returns 0, or a negative errno value if the
 * Runtime API could not be told. */
int mayfly_runtime_init_error(const char *error_type, const char *fmt, ...) MAYFLY__PRINTF(2, 3);

/* Replace the response body with `len` bytes of `data`.  Returns 0. */
int mayfly_response_set(mayfly_response_t *res, const void *data, size_t len);

/* Append `len` bytes of `data` to the response body.  Returns 0. */
int mayfly_response_append(mayfly_response_t *res, const void *data, size_t len);

/* Append printf-formatted text to the response body.  Returns 0, or -EINVAL
 * for a format the C library refuses. */
int mayfly_response_printf(mayfly_response_t *res, const char *fmt, ...) MAYFLY__PRINTF(2, 3);

/* Append `len` bytes of `s` as a JSON string literal, quotes included: `"`,
 * `\` and control characters are escaped and invalid UTF-8 becomes U+FFFD,
 * so the result is always valid JSON.  Returns 0. */
int mayfly_response_append_json_string(mayfly_response_t *res, const char *s, size_t len);

/* Turn the invocation into a function error of type `error_type` (for
 * example "ValidationError"; NULL means "HandlerError") with a
 * printf-formatted message.  Whatever the handler then returns, the library
 * POSTs {"errorMessage","errorType","stackTrace":[]} to .../error with the
 * header Lambda-Runtime-Function-Error-Type.  Returns -1, so a handler can
 * end with `return mayfly_response_error(res, "X", "...");`. */
int mayfly_response_error(mayfly_response_t *res, const char *error_type, const char *fmt, ...)
    MAYFLY__PRINTF(3, 4);

/* --- Streamed answers (Lambda's RESPONSE_STREAM) ---------------------------
 *
 * Instead of a result, a handler may stream its answer: each
 * mayfly_stream_write() reaches the caller as it is made (a client that
 * asked for a stream, InvokeWithResponseStream, a function URL in
 * RESPONSE_STREAM mode; a buffered caller gets the whole of it).  The
 * answer ends when the handler returns: 0 ends it well, non-zero (or
 * mayfly_response_error()) ends it with that error, which the caller
 * sees in the stream's trailers.  mayfly_response_set() and its kin are
 * ignored once a stream began.  Each returns 0 or a negative errno value
 * (-EPIPE or -ECONNRESET once the platform stopped taking the stream: it
 * was too large, or the call's deadline passed; stop writing then). */

/* Begins the stream with a content type (NULL: application/octet-stream).
 * Optional: the first write begins it. */
int mayfly_stream_begin(mayfly_response_t *res, const char *content_type);
/* Begins the stream as a function URL's HTTP response (Lambda's HTTP
 * integration): the status and headers, given as a NULL-terminated list of
 * name, value, name, value...; "Set-Cookie" entries become cookies. */
int mayfly_stream_begin_http(mayfly_response_t *res, int status_code,
                             const char *const *headers);
/* Sends len bytes of data to the caller now. */
int mayfly_stream_write(mayfly_response_t *res, const void *data, size_t len);

/* Milliseconds left before the invocation's deadline (never negative); -1 if
 * the server sent no deadline. */
int64_t mayfly_event_remaining_ms(const mayfly_event_t *event);

/* Find the string member `key` of the JSON object in json[0..len) - top
 * level only - and write its decoded value (escapes resolved, as UTF-8) NUL
 * terminated into out[0..out_size).  Returns the value's length in bytes,
 * -ENOENT if the text is not an object or has no such member, -EINVAL if the
 * text is not valid JSON as far as it was read or the member is not a
 * string, -ENOSPC if out_size is too small for the value and its NUL. */
int mayfly_json_get_string(const char *json, size_t len, const char *key, char *out,
                           size_t out_size);

/* --- The platform's API from inside the function (docs/state.md) --------
 *
 * Key-value stores and calls of other functions, over MAYFLY_API (the
 * instance's own listener) on one kept-alive connection of their own, with
 * the function as the identity: it may reach what its `permissions`
 * grant.  Each returns 0 or a negative errno value:
 *   -ENOENT     no such key (or function)
 *   -EACCES     the function's permissions do not grant it (HTTP 403)
 *   -ECANCELED  a condition (if_version, if_absent) did not hold (412)
 *   -EFBIG      the value is too large (413); -ENOSPC the store is full (507)
 *   -EREMOTEIO  mayfly_invoke: the function failed; *result is its error
 *   -EIO        another error answer; -EINVAL a bad argument or MAYFLY_API;
 *               transport errors as themselves
 * and mayfly_api_error() says what the server answered.  Values and
 * results point into library storage that the next of these calls
 * reuses: copy what you keep.  Each thread has its own connection and
 * storage: with N calls at once each call's thread may use these. */

typedef struct mayfly_kv_put_opts {
    int64_t ttl_s;            /* expire after this many seconds; 0: never */
    uint64_t if_version;      /* write only if the key is at this version; 0: any */
    int if_absent;            /* write only if the key does not exist */
    const char *content_type; /* NULL: application/octet-stream */
} mayfly_kv_put_opts_t;

int mayfly_kv_get(const char *store, const char *key, const char **value, size_t *len,
                  uint64_t *version);
/* opts may be NULL; *version (may be NULL) gets the new version. */
int mayfly_kv_put(const char *store, const char *key, const void *value, size_t len,
                  const mayfly_kv_put_opts_t *opts, uint64_t *version);
/* Adds by to the key's integer (0 when absent), atomically. */
int mayfly_kv_incr(const char *store, const char *key, int64_t by, int64_t *value);
/* if_version 0: whatever its version. */
int mayfly_kv_delete(const char *store, const char *key, uint64_t if_version);
/* Calls function with event (JSON; NULL: null).  Synchronously, *result is
 * its result; with asynchronous set, {"request_id": …} once the event is
 * durably queued. */
int mayfly_invoke(const char *function, const void *event, size_t len, int asynchronous,
                  const char **result, size_t *result_len);
/* Publishes message (len bytes of UTF-8 text) to topic (permission
 * topic:TOPIC); subject may be NULL, and attributes_json (NULL: none) is
 * the attributes object as JSON text, e.g.
 * {"kind": "order", "total": {"Type": "Number", "Value": "12.5"}}.  Once
 * the message and its deliveries are durably queued, *message_id (may be
 * NULL) is its id. */
int mayfly_publish(const char *topic, const char *message, size_t len, const char *subject,
                   const char *attributes_json, const char **message_id);
/* The last call's error message ("" after a success), and its HTTP status
 * (0 when none came). */
const char *mayfly_api_error(void); /* the calling thread's */
int mayfly_api_status(void);

#ifdef __cplusplus
}
#endif

#endif /* MAYFLY_RUNTIME_H */
