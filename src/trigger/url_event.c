/* A URL request → Lambda's payload format 2.0. The event is written
 * straight into one buffer: this runs on every call behind a URL, and the
 * point is that a URL costs little more than an invoke. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/codec.h"
#include "core/json.h"
#include "core/utf8.h"
#include "core/xalloc.h"
#include "trigger/url.h"

bool url_content_type_is_text(const char *ct)
{
    if (!ct)
        return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strcspn(ct, "; \t");
    if (n >= 5 && !strncasecmp(ct, "text/", 5))
        return true;
    static const char *const text_types[] = { "application/json", "application/xml",
                                              "application/javascript" };
    for (size_t i = 0; i < sizeof text_types / sizeof text_types[0]; i++)
        if (n == strlen(text_types[i]) && !strncasecmp(ct, text_types[i], n))
            return true;
    return false;
}

/* Text from the request, which may not be UTF-8 (a Latin-1 header value,
 * say), as a JSON string. */
static void quote_str(buf_t *out, const char *s)
{
    json_quote_text(out, s, strlen(s));
}

/* A header name, lower-cased, as a JSON string. */
static void quote_lower(buf_t *out, const char *name)
{
    char low[256];
    size_t n = strlen(name);
    if (n >= sizeof low) {
        char *big = xstrdup(name);
        for (size_t i = 0; i < n; i++)
            big[i] = (char)(big[i] >= 'A' && big[i] <= 'Z' ? big[i] + 32 : big[i]);
        json_quote_text(out, big, n);
        free(big);
        return;
    }
    for (size_t i = 0; i < n; i++)
        low[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    json_quote_text(out, low, n);
}

/* The Cookie headers' cookies, split at ';' and trimmed, as Lambda gives
 * them in `cookies`. Returns whether there were any. */
static bool add_cookies(buf_t *out, const url_request_t *r)
{
    bool any = false;
    for (size_t i = 0; i < r->nheaders; i++) {
        if (strcasecmp(r->headers[i].name, "cookie"))
            continue;
        const char *p = r->headers[i].value;
        while (*p) {
            while (*p == ' ' || *p == '\t' || *p == ';')
                p++;
            size_t n = strcspn(p, ";");
            size_t t = n;
            while (t && (p[t - 1] == ' ' || p[t - 1] == '\t'))
                t--;
            if (t) {
                buf_adds(out, any ? "," : ",\"cookies\":[");
                json_quote_text(out, p, t);
                any = true;
            }
            p += n;
        }
    }
    if (any)
        buf_addch(out, ']');
    return any;
}

static void add_headers(buf_t *out, const url_request_t *r)
{
    buf_adds(out, ",\"headers\":{");
    bool first = true;
    for (size_t i = 0; i < r->nheaders; i++) {
        const char *name = r->headers[i].name;
        if (!strcasecmp(name, "cookie"))
            continue;
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = !strcasecmp(r->headers[j].name, name);
        if (seen)
            continue; /* joined into its first occurrence */
        if (!first)
            buf_addch(out, ',');
        first = false;
        quote_lower(out, name);
        buf_addch(out, ':');
        /* Repeats joined with ',', as Lambda joins them. */
        bool repeated = false;
        for (size_t j = i + 1; j < r->nheaders && !repeated; j++)
            repeated = !strcasecmp(r->headers[j].name, name);
        if (!repeated) {
            quote_str(out, r->headers[i].value);
            continue;
        }
        buf_t joined = BUF_INIT;
        for (size_t j = i; j < r->nheaders; j++) {
            if (strcasecmp(r->headers[j].name, name))
                continue;
            if (joined.len)
                buf_addch(&joined, ',');
            buf_adds(&joined, r->headers[j].value);
        }
        json_quote_text(out, joined.data, joined.len);
        buf_release(&joined);
    }
    buf_addch(out, '}');
}

typedef struct query_param {
    char *key;
    buf_t value;
} query_param_t;

/* Decodes one part of the query (form encoding: '+' is a space); a part
 * with a bad escape is kept as it came. */
static void query_decode(buf_t *out, const char *s, size_t len)
{
    if (http_percent_decode(out, s, len, true) < 0) {
        buf_reset(out);
        buf_add(out, s, len);
    }
}

/* queryStringParameters: decoded, repeated keys' values comma-joined in
 * the order they came. A map keeps the grouping linear in the query's
 * size, whatever a client sends. */
static void add_query(buf_t *out, const char *q)
{
    if (!*q)
        return;
    map_t index = MAP_INIT;
    query_param_t *params = NULL;
    size_t n = 0, cap = 0;
    buf_t key = BUF_INIT, val = BUF_INIT;
    while (*q) {
        size_t len = strcspn(q, "&");
        if (len) {
            const char *eq = memchr(q, '=', len);
            size_t klen = eq ? (size_t)(eq - q) : len;
            buf_reset(&key);
            buf_reset(&val);
            query_decode(&key, q, klen);
            if (eq)
                query_decode(&val, eq + 1, len - klen - 1);
            void *slot = map_get(&index, key.data);
            if (slot) {
                query_param_t *p = &params[(size_t)slot - 1];
                buf_addch(&p->value, ',');
                buf_add(&p->value, val.data, val.len);
            } else {
                if (n == cap) {
                    cap = cap ? cap * 2 : 8;
                    params = xrealloc(params, cap * sizeof *params);
                }
                params[n].key = xstrndup(key.data, key.len);
                buf_init(&params[n].value, 0);
                buf_add(&params[n].value, val.data, val.len);
                n++;
                map_put(&index, params[n - 1].key, (void *)n);
            }
        }
        q += len;
        if (*q == '&')
            q++;
    }
    if (n) {
        buf_adds(out, ",\"queryStringParameters\":{");
        for (size_t i = 0; i < n; i++) {
            if (i)
                buf_addch(out, ',');
            quote_str(out, params[i].key);
            buf_addch(out, ':');
            json_quote_text(out, params[i].value.data, params[i].value.len);
        }
        buf_addch(out, '}');
    }
    for (size_t i = 0; i < n; i++) {
        free(params[i].key);
        buf_release(&params[i].value);
    }
    free(params);
    map_release(&index);
    buf_release(&key);
    buf_release(&val);
}

static const char *header(const url_request_t *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (!strcasecmp(r->headers[i].name, name))
            return r->headers[i].value;
    return NULL;
}

static void add_string(buf_t *out, const char *key, const char *value)
{
    buf_addf(out, ",\"%s\":", key);
    quote_str(out, value ? value : "");
}

static void add_context(buf_t *out, const url_request_t *r)
{
    buf_adds(out, ",\"requestContext\":{\"accountId\":");
    quote_str(out, r->account_id);
    add_string(out, "apiId", r->api_id);
    if (r->access_key_id) {
        /* The caller as Lambda shows an IAM caller: the key is its
         * identity here. */
        buf_adds(out, ",\"authorizer\":{\"iam\":{\"accessKey\":");
        quote_str(out, r->access_key_id);
        add_string(out, "accountId", r->account_id);
        add_string(out, "callerId", r->access_key_id);
        buf_adds(out, ",\"cognitoIdentity\":null,\"principalOrgId\":null,\"userArn\":");
        buf_t arn = BUF_INIT;
        buf_addf(&arn, "arn:aws:iam::%s:user/%s", r->account_id, r->access_key_id);
        json_quote_text(out, arn.data, arn.len);
        buf_release(&arn);
        add_string(out, "userId", r->access_key_id);
        buf_adds(out, "}}");
    }
    add_string(out, "domainName", r->domain_name);
    add_string(out, "domainPrefix", r->domain_prefix);
    buf_adds(out, ",\"http\":{\"method\":");
    quote_str(out, r->method);
    add_string(out, "path", r->raw_path);
    add_string(out, "protocol", "HTTP/1.1");
    add_string(out, "sourceIp", r->source_ip);
    add_string(out, "userAgent", header(r, "User-Agent"));
    buf_addch(out, '}');
    add_string(out, "requestId", r->request_id);
    buf_adds(out, ",\"routeKey\":\"$default\",\"stage\":\"$default\"");
    /* "12/Mar/2020:19:03:58 +0000", as Lambda writes it. */
    static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    time_t secs = (time_t)(r->time_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    buf_addf(out, ",\"time\":\"%02d/%s/%04d:%02d:%02d:%02d +0000\",\"timeEpoch\":%lld}",
             tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
             tm.tm_sec, (long long)r->time_ms);
}

void url_event_build(buf_t *out, const url_request_t *r)
{
    /* One growth for the usual event: the body (base64 at worst) and the
     * headers, plus the fixed part. */
    size_t guess = 1024 + r->body_len / 3 * 4 + 4;
    for (size_t i = 0; i < r->nheaders; i++)
        guess += strlen(r->headers[i].name) + strlen(r->headers[i].value) + 8;
    buf_grow(out, guess);

    buf_adds(out, "{\"version\":\"2.0\",\"routeKey\":\"$default\",\"rawPath\":");
    quote_str(out, r->raw_path);
    add_string(out, "rawQueryString", r->raw_query);
    add_cookies(out, r);
    add_headers(out, r);
    add_query(out, r->raw_query);
    add_context(out, r);
    bool text = true;
    if (r->body_len) {
        text = url_content_type_is_text(header(r, "Content-Type")) &&
               utf8_valid(r->body, r->body_len);
        buf_adds(out, ",\"body\":");
        if (text) {
            json_quote(out, r->body, r->body_len);
        } else {
            buf_addch(out, '"');
            codec_base64_encode(out, r->body, r->body_len);
            buf_addch(out, '"');
        }
    }
    buf_adds(out, text ? ",\"isBase64Encoded\":false}" : ",\"isBase64Encoded\":true}");
}
