/* The CLI's HTTP client (libcurl): talks to MAYFLY_URL (default
 * http://127.0.0.1:8700) with MAYFLY_TOKEN as bearer token when set. */
#ifndef MAYFLY_CLI_CLIENT_H
#define MAYFLY_CLI_CLIENT_H

#include <stddef.h>

#include "core/buf.h"
#include "core/error.h"

typedef struct client_header {
    const char *name;
    const char *value;
} client_header_t;

typedef struct client_response {
    long status;
    buf_t body;
    buf_t headers;   /* raw "Name: value\r\n" lines of the final response */
} client_response_t;

/* Sends one request to MAYFLY_URL + path. A transport failure (server not
 * reachable) returns a negative errno with a message naming the URL; any
 * HTTP status, 4xx and 5xx included, returns 0 with resp filled. */
int client_request(const char *method, const char *path, const void *body, size_t body_len,
                   const client_header_t *headers, size_t nheaders, client_response_t *resp,
                   mf_error_t *err);

/* Receives a 2xx response's body piece by piece, as it arrives; returns 0
 * to go on, or non-zero to stop the transfer (client_request_stream then
 * returns 0 as if the body had ended). */
typedef int (*client_body_cb)(const char *data, size_t len, void *ud);

/* Like client_request, for a long or endless body (a followed log): a 2xx
 * body goes to on_body as it arrives instead of into resp->body; any other
 * status's body is still collected in resp->body for client_print_error. */
int client_request_stream(const char *method, const char *path, const client_header_t *headers,
                          size_t nheaders, client_body_cb on_body, void *ud,
                          client_response_t *resp, mf_error_t *err);

/* The value of a response header (case-insensitive name), copied into out;
 * returns 0, or -ENOENT when absent. */
int client_response_header(const client_response_t *resp, const char *name, char *out,
                           size_t outlen);

/* Prints the server's error for a non-2xx response readably on stderr:
 * "mayfly: <message> (<code>, HTTP <status>)". */
void client_print_error(const client_response_t *resp);

void client_response_release(client_response_t *resp);

#endif
