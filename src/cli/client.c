#include "cli/client.h"

#include <ctype.h>
#include <stdbool.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/cleanup.h"
#include "core/json.h"
#include "core/xalloc.h"

#define CLIENT_DEFAULT_URL "http://127.0.0.1:8700"
/* Connecting is quick or it is not happening; the request itself has no
 * overall limit, since a synchronous invoke may run for up to 900 s. */
#define CLIENT_CONNECT_TIMEOUT_S 10L

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_init_rc;

static void global_init(void)
{
    global_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* MAYFLY_URL without its trailing slashes, so "/v1/..." can be appended. */
static char *base_url(void)
{
    const char *env = getenv("MAYFLY_URL");
    char *url = xstrdup(env && *env ? env : CLIENT_DEFAULT_URL);
    size_t len = strlen(url);
    while (len > 0 && url[len - 1] == '/')
        url[--len] = '\0';
    return url;
}

/* Where a response's body goes: into resp->body, or, for a 2xx answer to
 * a streamed request, to the caller's callback as it arrives. */
typedef struct body_sink {
    CURL *curl;
    buf_t *body;
    client_body_cb cb;
    void *ud;
    bool stopped;  /* the callback asked to stop */
} body_sink_t;

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    body_sink_t *sink = ud;
    size_t n = size * nmemb;
    long status = 0;
    if (sink->cb)
        curl_easy_getinfo(sink->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) {
        if (sink->cb(data, n, sink->ud) != 0) {
            sink->stopped = true;
            return 0; /* curl ends the transfer with CURLE_WRITE_ERROR */
        }
        return n;
    }
    buf_add(sink->body, data, n);
    return n;
}

/* Called once per header line, for every response curl sees (a 100
 * Continue included); only the final response's header lines are kept. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    buf_t *h = ud;
    size_t n = size * nmemb;
    if (n >= 5 && !memcmp(data, "HTTP/", 5)) {
        buf_reset(h);
        return n;
    }
    if (n == 2 && data[0] == '\r' && data[1] == '\n')
        return n;
    buf_add(h, data, n);
    return n;
}

static void slist_freep(struct curl_slist **l)
{
    curl_slist_free_all(*l);
}

static void easy_cleanupp(CURL **c)
{
    if (*c)
        curl_easy_cleanup(*c);
}

static int perform(const char *method, const char *path, const void *body, size_t body_len,
                   const client_header_t *headers, size_t nheaders, client_body_cb cb, void *ud,
                   client_response_t *resp, mf_error_t *err)
{
    resp->status = 0;
    buf_init(&resp->body, 0);
    buf_init(&resp->headers, 0);

    pthread_once(&global_once, global_init);
    if (global_init_rc != CURLE_OK) {
        mf_error_set(err, 0, "cannot initialise libcurl: %s", curl_easy_strerror(global_init_rc));
        return -EIO;
    }

    cleanup_free char *base = base_url();
    cleanup_free char *url = xasprintf("%s%s", base, path);
    __attribute__((cleanup(easy_cleanupp))) CURL *c = curl_easy_init();
    if (!c) {
        mf_error_set(err, 0, "cannot initialise libcurl");
        return -ENOMEM;
    }

    __attribute__((cleanup(slist_freep))) struct curl_slist *hl = NULL;
    /* The server answers at once; waiting for a 100 Continue only costs a
     * second on every upload. */
    hl = curl_slist_append(hl, "Expect:");
    const char *token = getenv("MAYFLY_TOKEN");
    if (token && *token) {
        cleanup_free char *auth = xasprintf("Authorization: Bearer %s", token);
        hl = curl_slist_append(hl, auth);
    }
    /* An admin's work in another tenant than its key's. */
    const char *tenant = getenv("MAYFLY_TENANT");
    if (tenant && *tenant) {
        cleanup_free char *line = xasprintf("X-Mayfly-Tenant: %s", tenant);
        hl = curl_slist_append(hl, line);
    }
    for (size_t i = 0; i < nheaders; i++) {
        cleanup_free char *line = xasprintf("%s: %s", headers[i].name, headers[i].value);
        hl = curl_slist_append(hl, line);
    }
    if (!hl) {
        mf_error_set(err, 0, "cannot build the request headers");
        return -ENOMEM;
    }

    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, CLIENT_CONNECT_TIMEOUT_S);
    /* Lets a long invoke notice a server that vanished without a FIN. */
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "mayfly-cli");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    body_sink_t sink = { .curl = c, .body = &resp->body, .cb = cb, .ud = ud };
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &resp->headers);

    if (!strcmp(method, "GET") && !body) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else if (!strcmp(method, "HEAD")) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        /* POST and PUT always carry a body, if only an empty one, so the
         * server sees Content-Length: 0 rather than guessing. */
        if (body || !strcmp(method, "POST") || !strcmp(method, "PUT")) {
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
        }
    }

    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_WRITE_ERROR && sink.stopped)
        rc = CURLE_OK;
    if (rc != CURLE_OK) {
        const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
        switch (rc) {
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
            mf_error_set(err, 0, "MAYFLY_URL `%s` is not a usable URL: %s", base, why);
            return -EINVAL;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
        case CURLE_COULDNT_CONNECT:
        case CURLE_OPERATION_TIMEDOUT:
            mf_error_set(err, 0, "cannot reach the mayfly server at %s: %s", base, why);
            return -ECONNREFUSED;
        default:
            /* Connected, then the exchange broke off (a reset, an empty
             * reply): saying "cannot reach" would send the user looking
             * for a server that is in fact there. */
            mf_error_set(err, 0, "the request to the mayfly server at %s failed: %s", base, why);
            return -EIO;
        }
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    return 0;
}

int client_request(const char *method, const char *path, const void *body, size_t body_len,
                   const client_header_t *headers, size_t nheaders, client_response_t *resp,
                   mf_error_t *err)
{
    return perform(method, path, body, body_len, headers, nheaders, NULL, NULL, resp, err);
}

int client_request_stream(const char *method, const char *path, const client_header_t *headers,
                          size_t nheaders, client_body_cb on_body_cb, void *ud,
                          client_response_t *resp, mf_error_t *err)
{
    return perform(method, path, NULL, 0, headers, nheaders, on_body_cb, ud, resp, err);
}

int client_response_header(const client_response_t *resp, const char *name, char *out,
                           size_t outlen)
{
    size_t nlen = strlen(name);
    const char *p = resp->headers.data;
    while (*p) {
        const char *eol = strchr(p, '\n');
        const char *end = eol ? eol : p + strlen(p);
        if ((size_t)(end - p) > nlen && p[nlen] == ':' && !strncasecmp(p, name, nlen)) {
            const char *v = p + nlen + 1;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = end;
            while (ve > v && isspace((unsigned char)ve[-1]))
                ve--;
            if (outlen) {
                size_t n = (size_t)(ve - v);
                if (n >= outlen)
                    n = outlen - 1;
                memcpy(out, v, n);
                out[n] = '\0';
            }
            return 0;
        }
        if (!eol)
            break;
        p = eol + 1;
    }
    return -ENOENT;
}

void client_print_error(const client_response_t *resp)
{
    json_error_t jerr;
    cleanup_json json_t *doc = json_loadb(resp->body.data, resp->body.len, 0, &jerr);
    json_t *e = doc ? json_object_get(doc, "error") : NULL;
    const char *message = json_string_value(json_object_get(e, "message"));
    const char *code = json_string_value(json_object_get(e, "code"));
    if (message) {
        fprintf(stderr, "mayfly: %s (%s, HTTP %ld)\n", message, code ? code : "error",
                resp->status);
        return;
    }
    /* Not mayfly's error shape (a proxy in between, or a bug): show what
     * came back, trimmed to one readable line. */
    size_t n = resp->body.len;
    if (n > 200)
        n = 200;
    while (n > 0 && isspace((unsigned char)resp->body.data[n - 1]))
        n--;
    bool printable = n > 0;
    for (size_t i = 0; i < n && printable; i++) {
        unsigned char ch = (unsigned char)resp->body.data[i];
        if (ch < 0x20 && ch != '\t')
            printable = false;
    }
    if (printable)
        fprintf(stderr, "mayfly: the server answered HTTP %ld: %.*s\n", resp->status, (int)n,
                resp->body.data);
    else
        fprintf(stderr, "mayfly: the server answered HTTP %ld\n", resp->status);
}

void client_response_release(client_response_t *resp)
{
    buf_release(&resp->body);
    buf_release(&resp->headers);
    resp->status = 0;
}
