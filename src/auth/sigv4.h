/* AWS Signature Version 4, the verifying side: checks that a request was
 * signed with one of the server's access keys the way the AWS CLI, boto3 and
 * the AWS SDKs sign requests to a service other than S3 (Lambda's API, with
 * `--endpoint-url http://127.0.0.1:PORT`).
 *
 * Both places a signature can travel are read: the Authorization header
 * ("AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/lambda/aws4_request,
 * SignedHeaders=host;x-amz-date, Signature=...") and presigned query
 * parameters (X-Amz-Algorithm, X-Amz-Credential, X-Amz-Date,
 * X-Amz-SignedHeaders, X-Amz-Signature, optional X-Amz-Expires).
 *
 * The canonical request is built as AWS builds it for non-S3 services: the
 * raw path has its dot segments and empty segments removed and is then
 * URI-encoded once more (so the "%3A" botocore sends for a ':' in a function
 * ARN is signed as "%253A"); query parameters are decoded, re-encoded with
 * only A-Z a-z 0-9 - _ . ~ left as they are, and sorted by name then value;
 * signed headers are matched case-insensitively, their values trimmed with
 * inner whitespace runs collapsed, and repeated headers joined with ','.
 *
 * Rejections carry the error type and message AWS's own endpoints answer
 * with, so an SDK shows its user the error it would show against AWS. */
#ifndef MAYFLY_AUTH_SIGV4_H
#define MAYFLY_AUTH_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"
#include "core/buf.h"
#include "core/error.h"
#include "http/request.h"

/* How far a header-signed request's X-Amz-Date may be from the server's
 * clock, either way (AWS's window). */
#define SIGV4_MAX_SKEW_MS (5 * 60 * 1000)
/* The longest X-Amz-Expires a presigned request may ask for: a week. */
#define SIGV4_MAX_EXPIRES_S 604800
#define SIGV4_KEY_ID_MAX 128
#define SIGV4_REGION_MAX 63

/* The request as received. Nothing here is modified or kept. */
typedef struct sigv4_request {
    const char *method;            /* "GET", "POST", ... */
    const char *path;              /* raw, still percent-encoded, without the query */
    const char *query;             /* raw, without the '?'; NULL or "" when none */
    const http_header_t *headers;  /* in the order received, repeats included */
    size_t nheaders;
    const void *body;
    size_t body_len;
    /* The body's SHA-256 in lowercase hex when the caller already has it
     * (say, hashed while streaming it to disk); NULL to have body hashed. */
    const char *body_sha256;
} sigv4_request_t;

/* Why a request was turned away. Every one but SIGV4_OK is a 403; the
 * comment gives the error type Lambda answers with. */
typedef enum sigv4_status {
    SIGV4_OK = 0,
    /* No Authorization header starting "AWS4-" and no X-Amz-Algorithm
     * parameter: MissingAuthenticationTokenException. A caller that also
     * takes other schemes (a Bearer token) tries them on this status. */
    SIGV4_MISSING,
    /* A part is missing or malformed (Credential, SignedHeaders, Signature,
     * the date, the algorithm, X-Amz-Expires): IncompleteSignatureException. */
    SIGV4_INCOMPLETE,
    /* The access key ID is not one of the server's:
     * UnrecognizedClientException. */
    SIGV4_UNKNOWN_KEY,
    /* X-Amz-Date is over five minutes from the server's clock, or a
     * presigned request's X-Amz-Expires has run out:
     * InvalidSignatureException. */
    SIGV4_EXPIRED,
    /* The signature cannot be right whatever the key: the credential scope
     * names another service, terminator or day, host is not signed, both
     * signing forms are present, or x-amz-content-sha256 does not match the
     * body: InvalidSignatureException. */
    SIGV4_INVALID,
    /* The signature does not match what the key gives (a wrong secret, or a
     * request changed on the way, a signed header dropped included):
     * InvalidSignatureException. */
    SIGV4_MISMATCH,
} sigv4_status_t;

typedef struct sigv4_result {
    sigv4_status_t status;
    int http_status;          /* 0 when accepted, else 403 */
    const char *error_type;   /* NULL when accepted, else "InvalidSignatureException"... */
    /* From the credential scope, filled as soon as it is parsed (so a log
     * line can name the key even of a rejected request); "" before. */
    char access_key_id[SIGV4_KEY_ID_MAX + 1];
    char region[SIGV4_REGION_MAX + 1];
    int64_t signed_at_ms;     /* the request's X-Amz-Date (or Date) */
    bool presigned;           /* signed in the query rather than the header */
    /* The client sent x-amz-content-sha256: UNSIGNED-PAYLOAD, so the body
     * is not covered by the signature. Accepted; a caller that must not
     * trust an unsigned body checks this. */
    bool unsigned_payload;
    /* The path had empty, "." or ".." segments: the signature covers the
     * path with those resolved ("/a//b/../c" signs as "/a/c"), so a caller
     * that routes on the raw path should refuse the request rather than
     * let one signed path stand for another. No SDK sends such a path. */
    bool path_normalized;
    /* The signature itself was verified. Always so when sigv4_verify
     * accepts a request; sigv4_verify_head sets it only when the request
     * carried x-amz-content-sha256 (a hash, or UNSIGNED-PAYLOAD), the one
     * case where the head alone fixes the canonical request. */
    bool signature_checked;
    /* In: when not NULL, the canonical request and the string to sign are
     * appended here once built, for logs and tests. sigv4_verify never
     * clears these two fields. */
    buf_t *canonical_request;
    buf_t *string_to_sign;
} sigv4_result_t;

/* Verifies req's signature for service (e.g. "lambda") against keys, with
 * now_ms the wall clock (ms since the epoch). Any region is accepted.
 * Returns 0 when the signature holds. Otherwise returns -EACCES, sets
 * res->status, res->http_status and res->error_type, and puts in err->msg
 * the message for the error body ("The request signature we calculated does
 * not match the signature you provided. ...", "Signature expired: ...").
 * With no keys at all every key is unknown: whether a server without keys
 * checks signatures is the caller's choice. */
int sigv4_verify(const sigv4_request_t *req, const char *service, const auth_keys_t *keys,
                 int64_t now_ms, sigv4_result_t *res, mf_error_t *err);

/* sigv4_verify on a request as the HTTP reader built it (its whole body
 * read). */
int sigv4_verify_http(const http_request_t *req, const char *service, const auth_keys_t *keys,
                      int64_t now_ms, sigv4_result_t *res, mf_error_t *err);

/* What can be verified before the body is read, for refusing a request
 * without reading it: the signing form (header or query), the key id, the
 * date and its window, the credential scope, and, when the request carries
 * x-amz-content-sha256, the signature itself over the hash it declares
 * (UNSIGNED-PAYLOAD included; a declared hash must be well formed, and the
 * body must match it: sigv4_verify checks that once the body is read).
 * Without that header the signature covers the body's hash, so it waits
 * for sigv4_verify; res->signature_checked tells which happened. body and
 * body_len of req are not used. Returns as sigv4_verify does. */
int sigv4_verify_head(const sigv4_request_t *req, const char *service, const auth_keys_t *keys,
                      int64_t now_ms, sigv4_result_t *res, mf_error_t *err);
/* sigv4_verify_head on a request whose head the HTTP reader has read. */
int sigv4_verify_http_head(const http_request_t *req, const char *service,
                           const auth_keys_t *keys, int64_t now_ms, sigv4_result_t *res,
                           mf_error_t *err);

#endif
