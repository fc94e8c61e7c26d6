/* Function URLs (Lambda's function URLs, docs/triggers.md): a function's
 * own HTTP endpoint. This module holds what is independent of the server
 * that serves them:
 *
 * - a URL's settings (who may call it, CORS, the invoke mode), checked as
 *   they come from /v1 or the Lambda API, and kept in the store's
 *   function_urls table with an in-memory copy the request path reads;
 * - the request → event conversion: Lambda's payload format 2.0, written
 *   straight into a buffer (no JSON library on the hot path);
 * - the result → response conversion, as Lambda maps a function's answer
 *   back to HTTP;
 * - CORS: the preflight answer and the headers added to actual answers.
 *
 * The API layer (api/urls.c) does the HTTP side: routing, authentication
 * and the call itself. */
#ifndef MAYFLY_TRIGGER_URL_H
#define MAYFLY_TRIGGER_URL_H

#include "core/tenant.h"
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "core/map.h"
#include "http/request.h"
#include "registry/registry.h"
#include "store/store.h"
#include "store/writer.h"

/* Lambda's bounds on the CORS lists and their items. */
#define URL_CORS_ORIGINS_MAX 100
#define URL_CORS_ORIGIN_LEN_MAX 253
#define URL_CORS_METHODS_MAX 6
#define URL_CORS_HEADERS_MAX 100
#define URL_CORS_HEADER_LEN_MAX 1024
#define URL_CORS_MAX_AGE_MAX 86400
/* The largest request body a URL takes, Lambda's 6 MiB (413 beyond). */
#define URL_BODY_MAX (6u << 20)

typedef enum { URL_AUTH_NONE, URL_AUTH_KEY } url_auth_t;
/* RESPONSE_STREAM is kept and shown; the answer is buffered until the
 * server can stream a call's response. */
typedef enum { URL_INVOKE_BUFFERED, URL_INVOKE_RESPONSE_STREAM } url_invoke_mode_t;

typedef struct url_list {
    char **v;
    size_t n;
} url_list_t;

typedef struct url_cors {
    bool set;                  /* a cors object was given: Lambda's CORS applies */
    url_list_t allow_origins;  /* "*" or origins ("https://example.com") */
    url_list_t allow_methods;  /* upper-case methods, or "*" */
    url_list_t allow_headers;  /* as given; "*" allows any */
    url_list_t expose_headers;
    int max_age;               /* seconds, 0 to URL_CORS_MAX_AGE_MAX; 0: not sent */
    bool allow_credentials;
} url_cors_t;

typedef struct url_config {
    char function[TENANT_QNAME_MAX + 1];
    url_auth_t auth;
    url_invoke_mode_t invoke_mode;
    url_cors_t cors;
    int64_t created_ms, updated_ms; /* wall clock */
} url_config_t;

/* ---- settings ------------------------------------------------------------ */

/* Fills *out (which holds nothing; url_config_clear it) from /v1's body
 * {"auth": "none"|"key", "cors": {"allow_origins", "allow_methods",
 * "allow_headers", "expose_headers", "max_age", "allow_credentials"},
 * "invoke_mode": "BUFFERED"|"RESPONSE_STREAM"}. Every field is optional:
 * auth defaults to "key", invoke_mode to "BUFFERED", no cors to none.
 * Unknown fields and bad values are -EINVAL with a message that starts
 * with the field's name. function and the times are left as they are. */
int url_config_parse(const json_t *body, url_config_t *out, mf_error_t *err);
/* The settings as /v1 shows and takes them (a new reference): auth,
 * invoke_mode and, when set, cors. */
json_t *url_config_settings_json(const url_config_t *c);
const char *url_auth_name(url_auth_t a);           /* "none" | "key" */
const char *url_invoke_mode_name(url_invoke_mode_t m); /* "BUFFERED" | ... */
void url_config_copy(url_config_t *dst, const url_config_t *src);
void url_config_clear(url_config_t *c);

/* ---- the table --------------------------------------------------------- */

/* Every function URL, read from the store once at start and written
 * through on each change. A function's URL goes with the function (the
 * store deletes its row with the function's). Used from the loop thread. */
typedef struct url_table {
    store_t *store;
    store_writer_t *writer;    /* writes changes off the loop; NULL: at once */
    map_t by_function;         /* name → url_config_t* */
    uint64_t changes;          /* puts, deletes and forgets made here */
} url_table_t;

int url_table_open(store_t *store, url_table_t **out, mf_error_t *err);
void url_table_close(url_table_t *t);
/* Changes are written by jobs of w, off the loop (NULL, the default: at
 * once, with the table's store). w must outlive the changes it was given. */
void url_table_set_writer(url_table_t *t, store_writer_t *w);
/* The function's URL settings, or NULL; valid until the table next changes. */
const url_config_t *url_table_get(const url_table_t *t, const char *function);
/* A change's outcome, on the loop, once the table has taken it in. */
typedef void (*url_table_done_fn)(void *ud, int r, bool created, const mf_error_t *err);
/* Creates or replaces the function's URL (c->function names it; c is
 * copied): written to the store first, then kept. created_ms is kept from
 * an existing URL, and created says whether there was none. -ENOENT when
 * the function does not exist. */
void url_table_put(url_table_t *t, const url_config_t *c, url_table_done_fn done, void *ud);
/* -ENOENT when the function has no URL. */
void url_table_delete(url_table_t *t, const char *function, url_table_done_fn done, void *ud);
/* The function was deleted (the store's row went with it). */
void url_table_forget(url_table_t *t, const char *function);
/* How many changes the three calls above made: it moves with each, so that
 * a reader of the store (url_table_replace's caller) can tell that what it
 * read may be older than the table. */
uint64_t url_table_changes(const url_table_t *t);
/* Takes list, every URL as a shared store holds it now (another server
 * changed one), in place of the table: a URL whose times differ is read
 * again, one not in list goes. One that cannot be read is logged and left
 * as it was. On the loop. */
void url_table_replace(url_table_t *t, const store_url_t *list, size_t n);

/* ---- request → event ------------------------------------------------------ */

/* A request as the event needs it; nothing is kept. */
typedef struct url_request {
    const char *method;        /* "GET", ... */
    const char *raw_path;      /* after the function's prefix, from '/', as received */
    const char *raw_query;     /* after '?', "" when none */
    const http_header_t *headers;
    size_t nheaders;
    const void *body;
    size_t body_len;
    const char *source_ip;
    const char *domain_name;   /* the Host the URL was reached at, without a port */
    const char *domain_prefix; /* the function's name */
    const char *api_id;
    const char *account_id;    /* "anonymous" for a public URL */
    const char *access_key_id; /* the key that signed or bore the request, or NULL */
    const char *request_id;
    int64_t time_ms;           /* wall clock */
} url_request_t;

/* Appends to out the event Lambda gives a function behind its URL:
 * payload format 2.0 (version, routeKey, rawPath, rawQueryString,
 * cookies, headers lower-cased with repeats comma-joined, the cookie
 * header's cookies in `cookies` instead, queryStringParameters with
 * repeated keys comma-joined, requestContext, body, isBase64Encoded).
 * The body is text (isBase64Encoded false) when its Content-Type is
 * text/x, application/json, application/xml or application/javascript
 * and it is UTF-8, base64 otherwise, as AWS does. */
void url_event_build(buf_t *out, const url_request_t *r);
/* True when Content-Type value ct (NULL: none) marks a text body. */
bool url_content_type_is_text(const char *ct);

/* ---- result → response ---------------------------------------------------- */

typedef struct url_response {
    int status;
    char *content_type;        /* owned; NULL: none */
    buf_t headers;             /* further "Name: value\r\n" lines */
    buf_t body;
} url_response_t;

/* Maps a function's result to the HTTP answer as Lambda does. An object
 * with statusCode is that answer: headers, multiValueHeaders (one line a
 * value), cookies (a Set-Cookie line each), body (base64-decoded when
 * isBase64Encoded; any JSON but a string is sent serialised). Anything
 * else is 200 application/json with the result's bytes as body. Headers
 * that frame the message (Content-Length, Transfer-Encoding, Connection)
 * are the server's and dropped; with drop_cors, so are the function's
 * Access-Control-* headers (the URL's CORS settings give them). The
 * result's bytes are taken over (result left empty) when they are the
 * body as they are, so the common answer is not copied. Returns
 * 0, or -EINVAL with a message naming what is malformed (an object that
 * is not JSON, a bad statusCode, header name or value, or base64): Lambda
 * answers 502 then. */
int url_response_map(buf_t *result, bool drop_cors, url_response_t *out, mf_error_t *err);
void url_response_release(url_response_t *r);

/* ---- CORS ----------------------------------------------------------------- */

/* True for a CORS preflight: OPTIONS with Origin and
 * Access-Control-Request-Method. */
bool url_cors_is_preflight(const char *method, const char *origin, const char *request_method);
/* Appends the preflight answer's header lines to out: nothing when the
 * origin or the method is not allowed (the browser then refuses). */
void url_cors_preflight(const url_cors_t *c, const char *origin, const char *request_method,
                        buf_t *out);
/* Appends the header lines an actual answer carries for origin (NULL:
 * the request had none, nothing is added). */
void url_cors_actual(const url_cors_t *c, const char *origin, buf_t *out);

#endif
