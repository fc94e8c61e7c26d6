/* Trace export: spans are queued in memory and sent in batches to an
 * OpenTelemetry collector, OTLP over HTTP with the JSON encoding, by a
 * small HTTP client on the event loop. Tracing is never allowed to hurt
 * what it observes: adding a span never blocks and never fails, memory is
 * bounded, and a collector that is down, slow or broken costs the batch
 * in flight (counted in mayfly_otlp_spans_total{outcome="dropped"} and
 * warned about at most once a minute), never a retry loop. Everything
 * here but the pure helpers runs on the loop's thread. */
#ifndef MAYFLY_OBS_OTLP_H
#define MAYFLY_OBS_OTLP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "core/error.h"

/* Spans waiting for export at most; past it new spans are dropped. */
#define OBS_OTLP_QUEUE_MAX 8192
/* Spans one request carries at most; this many queued are sent at once
 * rather than at the next tick. */
#define OBS_OTLP_BATCH_MAX 512
/* How often queued spans are sent when fewer than a batch are waiting. */
#define OBS_OTLP_INTERVAL_MS 1000
/* A whole request (resolving, connecting, sending, the answer) gets this
 * long before its batch is dropped. */
#define OBS_OTLP_TIMEOUT_MS 5000

typedef struct obs_otlp obs_otlp_t;

typedef enum { OBS_ATTR_STRING, OBS_ATTR_INT, OBS_ATTR_BOOL, OBS_ATTR_DOUBLE } obs_attr_type_t;

/* One span attribute; only the member its type names is read. */
typedef struct obs_attr {
    const char *key;
    obs_attr_type_t type;
    const char *s; /* STRING (may be NULL: the attribute is then left out) */
    int64_t i;     /* INT */
    bool b;        /* BOOL */
    double d;      /* DOUBLE */
} obs_attr_t;

/* OTLP span kinds */
enum {
    OBS_SPAN_INTERNAL = 1,
    OBS_SPAN_SERVER = 2,
    OBS_SPAN_CLIENT = 3,
    OBS_SPAN_PRODUCER = 4,
    OBS_SPAN_CONSUMER = 5
};
/* status codes */
enum { OBS_STATUS_UNSET = 0, OBS_STATUS_OK = 1, OBS_STATUS_ERROR = 2 };

/* A finished span as the caller describes it; the exporter copies what it
 * keeps, so every pointer need only live through obs_otlp_add. */
typedef struct obs_span {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t parent_id[8];
    bool has_parent;
    const char *name;           /* NULL is sent as "" */
    int kind;                   /* OBS_SPAN_*; anything else is sent as 0 (unspecified) */
    int64_t start_ns, end_ns;   /* Unix epoch nanoseconds */
    int status;                 /* OBS_STATUS_*; anything else is sent as 0 (unset) */
    const char *status_message; /* may be NULL */
    const obs_attr_t *attrs;
    size_t n_attrs;
} obs_span_t;

/* Parses url ("http://HOST[:PORT][/PATH]": HOST a name, an IPv4 address
 * or a bracketed IPv6 one; PORT 4318 by default; PATH "/v1/traces" when
 * absent or just "/") and starts the exporter on loop: a 1 s timer,
 * unreferenced so that it never keeps the loop alive. A numeric HOST is
 * used as it is; a name is resolved when the first batch goes, and again
 * after a failed export. service is the resource's service.name ("mayfly"
 * when NULL or empty). https (no TLS here) and malformed URLs are refused
 * with -EINVAL and a message naming the URL; *out is then NULL. */
int obs_otlp_new(uv_loop_t *loop, const char *url, const char *service, obs_otlp_t **out,
                 mf_error_t *err);

/* Queues a copy of span (its strings and attributes copied). Never
 * blocks, never fails: past OBS_OTLP_QUEUE_MAX queued spans it drops the
 * span and counts it. With OBS_OTLP_BATCH_MAX queued and no request in
 * flight, a request starts at once. o may be NULL (nothing happens), so a
 * caller with tracing off need not check. Loop thread only. */
void obs_otlp_add(obs_otlp_t *o, const obs_span_t *span);

/* Stops: queued spans and a batch in flight are abandoned (counted as
 * dropped), handles are closed through the loop, and the exporter frees
 * itself once they are (and a name resolution running on the thread pool
 * has come back), so the caller runs the loop until then. NULL is
 * ignored. */
void obs_otlp_free(obs_otlp_t *o);

/* Spans this exporter has had accepted by the collector (2xx) and has
 * dropped (queue full, failed requests, abandoned at free), so far. The
 * same counts go to mayfly_otlp_spans_total{outcome="exported"|"dropped"},
 * summed over every exporter of the process. Either pointer may be NULL. */
void obs_otlp_counts(const obs_otlp_t *o, uint64_t *exported, uint64_t *dropped);

/* Fills out with len random bytes (core/id.h's per-thread pool: no syscall
 * per call), drawn again until they are not all zero (an all-zero trace or
 * span id is invalid). */
void obs_trace_random(uint8_t *out, size_t len);

/* Parses a W3C traceparent header value, "00-<32 hex>-<16 hex>-<2 hex
 * flags>": lowercase hex only, version 00 only, exactly 55 characters
 * (nothing after the flags), trace and parent ids not all zero. Returns 0
 * and fills the outputs (flags may be NULL), or -EINVAL and leaves them
 * untouched. */
int obs_traceparent_parse(const char *s, uint8_t trace_id[16], uint8_t parent_id[8],
                          uint8_t *flags);

/* Parses an X-Ray trace header (X-Amzn-Trace-Id), fields separated by
 * ';' in any order: "Root=1-<8 hex>-<24 hex>" and "Parent=<16 hex>" are
 * both needed (a header without a parent names no span to be a child of),
 * the rest (Sampled=, Lineage=, …) is ignored. Returns 0 and fills the
 * ids, or -EINVAL and leaves them untouched. */
int obs_xray_parse(const char *s, uint8_t trace_id[16], uint8_t parent_id[8]);

/* Writes "00-<trace id>-<span id>-01" (sampled) and its NUL into out,
 * which needs at least 56 bytes; a shorter out gets "" (when it has room
 * for that). */
void obs_traceparent_format(const uint8_t trace_id[16], const uint8_t span_id[8], char *out,
                            size_t outlen);

/* Appends to out the JSON body of an export request (OTLP/JSON
 * ExportTraceServiceRequest) carrying spans, under one resource whose
 * service.name is service and one scope named "mayfly". Ids are lowercase
 * hex, times and integer attributes decimal strings, strings escaped with
 * bytes that are not UTF-8 replaced by U+FFFD (a collector refuses a whole
 * batch over one bad string). What the exporter sends; public for tests. */
void obs_otlp_encode(const char *service, const obs_span_t *spans, size_t n, buf_t *out);

/* What a collector's answer so far says (p[0..n) of its first bytes, total
 * received in all): OBS_OTLP_ANSWER_MORE (more is needed), _DONE (*status
 * set) or _BAD (no HTTP answer: *why says why). At eof an answer whose head
 * arrived is complete however much of its body came. The exporter's own
 * parser, declared here for its fuzz target. */
enum { OBS_OTLP_ANSWER_BAD = -1, OBS_OTLP_ANSWER_MORE = 0, OBS_OTLP_ANSWER_DONE = 1 };
int obs_otlp__answer(const char *p, size_t n, uint64_t total, bool eof, int *status,
                     const char **why);

/* For tests only: sets the whole-request timeout (OBS_OTLP_TIMEOUT_MS by
 * default) for the requests o starts from now on. */
void obs_otlp_set_timeout_ms(obs_otlp_t *o, unsigned ms);

#endif
