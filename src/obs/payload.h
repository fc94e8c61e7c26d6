/* What an invocation record keeps of a call's event or result: the bytes
 * with secrets redacted, cut to the function's maximum, and classified for
 * display. Pure: no I/O, no logging, and no message ever holds payload
 * bytes, so a secret cannot leak through an error either.
 *
 * Redaction: in a JSON payload the value of every object member whose name
 * is on the policy's list (compared after decoding the name's escapes, ASCII
 * letters in any case; "pass\u0077ord" is "password", "passwords" and
 * "my_token" are not, nor is a name holding a \u0000 or an unpaired
 * surrogate) becomes the string "[redacted]", at any depth and whatever the
 * value (string, number, object, array, true, false, null). Only the
 * value's bytes are replaced: the rest of the payload, white space
 * included, is kept byte for byte, and a payload with nothing to redact is
 * kept exactly as it came.
 *
 * JSON is RFC 8259's: one value with optional white space around it,
 * strings in UTF-8, numbers of any size. Two leniencies, both so that a
 * secret is never kept in the clear where a function's own parser would
 * have read the payload:
 * - a leading UTF-8 byte order mark is skipped (RFC 8259 lets parsers
 *   ignore it), and the stored kind is then TEXT;
 * - a payload that is JSON but for bytes inside a string that are not
 *   UTF-8 is redacted too (Node.js, say, reads such bytes as U+FFFD), and
 *   the stored kind is BINARY unless those bytes went with a secret.
 * Anything else that is not JSON (NaN, comments, trailing commas, single
 * quotes, UTF-16, binary) is kept as it came. JSON nested deeper than
 * OBS_PAYLOAD_MAX_DEPTH is not looked into, and so is refused whole.
 *
 * The scan is one pass over the input without building a tree or
 * recursing; the result takes memory in proportion to max_bytes, not to
 * the input. */
#ifndef MAYFLY_OBS_PAYLOAD_H
#define MAYFLY_OBS_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>

/* The bounds and the default of a function's maximum payload size. */
#define OBS_PAYLOAD_MAX_MIN (1u << 10)
#define OBS_PAYLOAD_MAX_MAX (1u << 20)
#define OBS_PAYLOAD_MAX_DEFAULT (64u << 10)
/* Containers nested deeper than this are not scanned (see refused). */
#define OBS_PAYLOAD_MAX_DEPTH 512
/* The length of obs_payload_default_redact, without its NULL. */
#define OBS_PAYLOAD_N_DEFAULT_REDACT 8

/* How the stored bytes are to be shown. JSON may hold what RFC 8259 allows
 * and some parsers refuse (jansson: numbers past 64 bits or a double, a
 * lone surrogate escape, a \u0000 in a member name); a reader that cannot
 * take it shows it as text. */
typedef enum {
    OBS_PAYLOAD_JSON,   /* JSON per RFC 8259, whole (not truncated), no BOM */
    OBS_PAYLOAD_TEXT,   /* valid UTF-8 (NULs included), but not JSON */
    OBS_PAYLOAD_BINARY, /* not valid UTF-8: shown as base64 */
} obs_payload_kind_t;

typedef struct obs_payload_policy {
    const char *const *redact; /* member names (NULLs skipped); ASCII letters match
                                  in any case */
    size_t n_redact;
    size_t max_bytes; /* used as given; the API keeps it in MIN..MAX */
} obs_payload_policy_t;

typedef struct obs_payload {
    char *data;              /* owned, NUL-terminated (len bytes before it may hold NULs);
                                NULL when refused */
    size_t len;              /* the bytes to store, at most max_bytes */
    size_t full_len;         /* the input's length: the record's event_bytes */
    bool truncated;          /* the (redacted) payload was longer than max_bytes */
    bool redacted;           /* at least one value was replaced ("[redacted]" itself
                                is left as it is and does not count) */
    bool refused;            /* JSON nested deeper than OBS_PAYLOAD_MAX_DEPTH: it was
                                not checked for secrets, so nothing is to be stored */
    obs_payload_kind_t kind; /* of data; JSON when refused */
} obs_payload_t;

/* The default redact list, NULL-terminated: password, secret, token,
 * authorization, api_key, apikey, cookie, set-cookie. */
extern const char *const obs_payload_default_redact[OBS_PAYLOAD_N_DEFAULT_REDACT + 1];

/* Fills out with what a record keeps of in[0..len) under policy (NULL: the
 * default list and OBS_PAYLOAD_MAX_DEFAULT): redacted, then cut to
 * max_bytes, before any UTF-8 sequence the cut would split. Cannot fail
 * (allocation failure aborts, as everywhere); release out with
 * obs_payload_release. */
void obs_payload_make(const obs_payload_policy_t *policy, const void *in, size_t len,
                      obs_payload_t *out);

/* Frees p's data and clears p. Safe on a cleared or released payload. */
void obs_payload_release(obs_payload_t *p);

#endif
