#include "auth/sigv4.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/cleanup.h"
#include "core/codec.h"
#include "core/xalloc.h"

#define ALGORITHM "AWS4-HMAC-SHA256"
#define TERMINATOR "aws4_request"
#define UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
/* How much of a client's own text a message repeats back: a part of the
 * header, and the whole Authorization header. */
#define SHOW_MAX 160
#define SHOW_AUTHZ_MAX 320
/* Room for "20150830T123600Z" whatever the year. */
#define DATE_BUF 48

/* The signing parameters, from the Authorization header or the query, each
 * a decoded copy. */
typedef struct sig_parts {
    buf_t algorithm, credential, signed_headers, signature, date, expires;
    bool has_credential, has_signed_headers, has_signature, has_date, has_expires;
    bool http_date; /* the date is the Date header's (RFC 7231), not X-Amz-Date */
} sig_parts_t;

static void sig_parts_release(sig_parts_t *p)
{
    buf_release(&p->algorithm);
    buf_release(&p->credential);
    buf_release(&p->signed_headers);
    buf_release(&p->signature);
    buf_release(&p->date);
    buf_release(&p->expires);
}
#define cleanup_sig_parts __attribute__((cleanup(sig_parts_release)))

static const char *const error_types[] = {
    [SIGV4_OK] = NULL,
    [SIGV4_MISSING] = "MissingAuthenticationTokenException",
    [SIGV4_INCOMPLETE] = "IncompleteSignatureException",
    [SIGV4_UNKNOWN_KEY] = "UnrecognizedClientException",
    [SIGV4_EXPIRED] = "InvalidSignatureException",
    [SIGV4_INVALID] = "InvalidSignatureException",
    [SIGV4_MISMATCH] = "InvalidSignatureException",
};

static int reject(sigv4_result_t *res, mf_error_t *err, sigv4_status_t status, const char *fmt,
                  ...) __attribute__((format(printf, 4, 5)));

static int reject(sigv4_result_t *res, mf_error_t *err, sigv4_status_t status, const char *fmt,
                  ...)
{
    res->status = status;
    res->http_status = 403;
    res->error_type = error_types[status];
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = EACCES;
    }
    return -EACCES;
}

/* A client's text fit to repeat in a message: control bytes replaced, cut
 * after max characters (out holds max + 8 bytes). */
static const char *show_max(const char *s, size_t len, size_t max, char *out)
{
    char tmp[SHOW_AUTHZ_MAX + 2];
    size_t n = len < max + 1 ? len : max + 1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    return mf_error_show(tmp, max, out, max + 8);
}

static const char *show(const char *s, size_t len, char out[SHOW_MAX + 8])
{
    return show_max(s, len, SHOW_MAX, out);
}

static const char *show_authz(const char *authz, char out[SHOW_AUTHZ_MAX + 8])
{
    return show_max(authz, strlen(authz), SHOW_AUTHZ_MAX, out);
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool slice_is(slice_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.base, lit, n) == 0;
}

static void set_part(buf_t *part, bool *has, const char *s, size_t len)
{
    buf_reset(part);
    buf_add(part, s, len);
    *has = true;
}

static const char *header_get(const sigv4_request_t *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        if (req->headers[i].name && !strcasecmp(req->headers[i].name, name))
            return req->headers[i].value ? req->headers[i].value : "";
    }
    return NULL;
}

/* --- Encodings ------------------------------------------------------------ */

/* Decodes %XX escapes; a '%' not followed by two hex digits stays as it is,
 * and '+' is a plus (the SDKs send a space as %20). */
static void percent_decode(buf_t *out, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < len && (hi = codec_hex_digit(s[i + 1])) >= 0 &&
            (lo = codec_hex_digit(s[i + 2])) >= 0) {
            buf_addch(out, (char)(hi << 4 | lo));
            i += 2;
        } else {
            buf_addch(out, s[i]);
        }
    }
}

/* SigV4's URI encoding: everything but RFC 3986's unreserved characters
 * (and '/' when keep_slash) becomes %XX, uppercase. */
static void uri_encode(buf_t *out, const char *s, size_t len, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
            buf_addch(out, (char)c);
        } else {
            char esc[3] = { '%', hex[c >> 4], hex[c & 15] };
            buf_add(out, esc, 3);
        }
    }
}

/* --- Dates ---------------------------------------------------------------- */

/* Days between 1970-01-01 and y-m-d, proleptic Gregorian (Howard Hinnant's
 * days_from_civil), so no time zone or locale takes part. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static bool valid_ymd_hms(int64_t y, unsigned mo, unsigned d, unsigned h, unsigned mi,
                          unsigned s)
{
    static const unsigned mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59)
        return false;
    return d <= mdays[mo - 1] + (mo == 2 && leap(y));
}

static unsigned digits(const char *s, int n)
{
    unsigned v = 0;
    for (int i = 0; i < n; i++)
        v = v * 10 + (unsigned)(s[i] - '0');
    return v;
}

/* Parses ISO 8601 basic format, "20150830T123600Z". */
static bool parse_amz_date(const char *s, size_t len, int64_t *epoch_s)
{
    if (len != 16 || s[8] != 'T' || s[15] != 'Z')
        return false;
    for (int i = 0; i < 15; i++) {
        if (i != 8 && !is_digit(s[i]))
            return false;
    }
    int64_t y = digits(s, 4);
    unsigned mo = digits(s + 4, 2), d = digits(s + 6, 2);
    unsigned h = digits(s + 9, 2), mi = digits(s + 11, 2), sec = digits(s + 13, 2);
    if (!valid_ymd_hms(y, mo, d, h, mi, sec))
        return false;
    *epoch_s = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    return true;
}

/* Parses an HTTP date in its one current form (RFC 7231 IMF-fixdate),
 * "Sun, 30 Aug 2015 12:36:00 GMT". */
static bool parse_http_date(const char *s, size_t len, int64_t *epoch_s)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    if (len != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
        s[16] != ' ' || s[19] != ':' || s[22] != ':' || s[25] != ' ' ||
        memcmp(s + 26, "GMT", 3) != 0)
        return false;
    static const int num[] = { 5, 6, 12, 13, 14, 15, 17, 18, 20, 21, 23, 24 };
    for (size_t i = 0; i < sizeof num / sizeof num[0]; i++) {
        if (!is_digit(s[num[i]]))
            return false;
    }
    unsigned mo = 0;
    for (unsigned i = 0; i < 12; i++) {
        if (!memcmp(s + 8, months + 3 * i, 3))
            mo = i + 1;
    }
    int64_t y = digits(s + 12, 4);
    unsigned d = digits(s + 5, 2), h = digits(s + 17, 2), mi = digits(s + 20, 2),
             sec = digits(s + 23, 2);
    if (!valid_ymd_hms(y, mo, d, h, mi, sec))
        return false;
    *epoch_s = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    return true;
}

/* Writes epoch_s as "20150830T123600Z". */
static void format_amz_date(int64_t epoch_s, char out[DATE_BUF])
{
    int64_t days = epoch_s / 86400, rem = epoch_s % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(out, DATE_BUF, "%04lld%02u%02uT%02u%02u%02uZ", (long long)y, m, d,
             (unsigned)(rem / 3600), (unsigned)(rem / 60 % 60), (unsigned)(rem % 60));
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* --- Reading the signing parameters -------------------------------------- */

/* Splits the next '&'-separated parameter off *p: false once none is
 * left. Empty parameters ("a=1&&b=2") are skipped. */
static bool next_param(const char **p, slice_t *name, slice_t *value)
{
    const char *s = *p;
    while (*s == '&')
        s++;
    if (!*s) {
        *p = s;
        return false;
    }
    const char *end = s + strcspn(s, "&");
    const char *eq = memchr(s, '=', (size_t)(end - s));
    name->base = s;
    name->len = (size_t)((eq ? eq : end) - s);
    value->base = eq ? eq + 1 : end;
    value->len = eq ? (size_t)(end - eq - 1) : 0;
    *p = end;
    return true;
}

static bool query_has(const char *query, const char *name)
{
    cleanup_buf buf_t key = BUF_INIT;
    slice_t n, v;
    for (const char *p = query; next_param(&p, &n, &v);) {
        buf_reset(&key);
        percent_decode(&key, n.base, n.len);
        if (slice_is(buf_slice(&key), name))
            return true;
    }
    return false;
}

/* Reads "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...":
 * the algorithm, then key=value pairs split on commas and white space. */
static int parts_from_header(const char *authz, sig_parts_t *parts, sigv4_result_t *res,
                             mf_error_t *err)
{
    char shown[SHOW_AUTHZ_MAX + 8], shown_pair[SHOW_MAX + 8];
    const char *p = authz;
    while (is_space(*p))
        p++;
    size_t alen = strcspn(p, " \t\r\n\v\f,");
    buf_add(&parts->algorithm, p, alen);
    p += alen;
    while (*p) {
        while (*p == ',' || is_space(*p))
            p++;
        if (!*p)
            break;
        size_t len = strcspn(p, " \t\r\n\v\f,");
        const char *eq = memchr(p, '=', len);
        if (!eq)
            return reject(res, err, SIGV4_INCOMPLETE,
                          "'%s' not a valid key=value pair (missing equal-sign) in "
                          "Authorization header: '%s'.",
                          show(p, len, shown_pair), show_authz(authz, shown));
        slice_t key = { p, (size_t)(eq - p) };
        const char *val = eq + 1;
        size_t vlen = len - key.len - 1;
        if (slice_is(key, "Credential"))
            set_part(&parts->credential, &parts->has_credential, val, vlen);
        else if (slice_is(key, "SignedHeaders"))
            set_part(&parts->signed_headers, &parts->has_signed_headers, val, vlen);
        else if (slice_is(key, "Signature"))
            set_part(&parts->signature, &parts->has_signature, val, vlen);
        p += len;
    }
    return 0;
}

static int check_header_parts(const sigv4_request_t *req, const char *authz, sig_parts_t *parts,
                              sigv4_result_t *res, mf_error_t *err)
{
    const char *date = header_get(req, "X-Amz-Date");
    if (!date) {
        date = header_get(req, "Date");
        parts->http_date = date != NULL;
    }
    if (date)
        set_part(&parts->date, &parts->has_date, date, strlen(date));

    cleanup_buf buf_t msg = BUF_INIT;
    if (!parts->has_credential || !parts->credential.len)
        buf_adds(&msg, "Authorization header requires 'Credential' parameter. ");
    if (!parts->has_signature || !parts->signature.len)
        buf_adds(&msg, "Authorization header requires 'Signature' parameter. ");
    if (!parts->has_signed_headers)
        buf_adds(&msg, "Authorization header requires 'SignedHeaders' parameter. ");
    if (!parts->has_date)
        buf_adds(&msg, "Authorization header requires existence of either a 'X-Amz-Date' or "
                       "a 'Date' header. ");
    if (!msg.len)
        return 0;
    char shown[SHOW_AUTHZ_MAX + 8];
    return reject(res, err, SIGV4_INCOMPLETE, "%sAuthorization=%s", msg.data,
                  show_authz(authz, shown));
}

/* Reads the X-Amz-* parameters of a presigned request. */
static int parts_from_query(const char *query, sig_parts_t *parts, sigv4_result_t *res,
                            mf_error_t *err)
{
    bool has_algorithm = false;
    const struct {
        const char *name;
        buf_t *dst;
        bool *has;
    } fields[] = {
        { "X-Amz-Algorithm", &parts->algorithm, &has_algorithm },
        { "X-Amz-Credential", &parts->credential, &parts->has_credential },
        { "X-Amz-Date", &parts->date, &parts->has_date },
        { "X-Amz-SignedHeaders", &parts->signed_headers, &parts->has_signed_headers },
        { "X-Amz-Signature", &parts->signature, &parts->has_signature },
        { "X-Amz-Expires", &parts->expires, &parts->has_expires },
    };
    cleanup_buf buf_t key = BUF_INIT;
    slice_t n, v;
    for (const char *p = query; next_param(&p, &n, &v);) {
        buf_reset(&key);
        percent_decode(&key, n.base, n.len);
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
            if (!slice_is(buf_slice(&key), fields[i].name))
                continue;
            buf_reset(fields[i].dst);
            percent_decode(fields[i].dst, v.base, v.len);
            *fields[i].has = true;
        }
    }

    cleanup_buf buf_t msg = BUF_INIT;
    const struct {
        const char *name;
        bool ok;
    } required[] = {
        { "X-Amz-Algorithm", has_algorithm && parts->algorithm.len },
        { "X-Amz-Credential", parts->has_credential && parts->credential.len },
        { "X-Amz-Signature", parts->has_signature && parts->signature.len },
        { "X-Amz-SignedHeaders", parts->has_signed_headers },
        { "X-Amz-Date", parts->has_date && parts->date.len },
    };
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        if (!required[i].ok)
            buf_addf(&msg, "AWS query-string parameters must include '%s'. ", required[i].name);
    }
    if (!msg.len)
        return 0;
    return reject(res, err, SIGV4_INCOMPLETE, "%sRe-examine the query-string parameters.",
                  msg.data);
}

/* --- The canonical request ------------------------------------------------ */

/* The path with "." and ".." segments resolved and empty segments dropped
 * (botocore's remove_dot_segments, the JS SDK's getCanonicalPath), each
 * byte then URI-encoded again: the path as received is already encoded
 * once, and AWS signs it encoded twice for every service but S3. Returns
 * whether resolving the segments changed the path. */
static bool add_canonical_uri(buf_t *out, const char *path)
{
    size_t len = strlen(path);
    size_t max = 1;
    for (size_t i = 0; i < len; i++)
        max += path[i] == '/';
    cleanup_free slice_t *segs = xmalloc(max * sizeof *segs);
    size_t n = 0;
    for (const char *p = path, *end = path + len; p < end;) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        size_t seglen = (size_t)((slash ? slash : end) - p);
        slice_t seg = { p, seglen };
        if (slice_is(seg, "..")) {
            if (n)
                n--;
        } else if (seglen && !slice_is(seg, ".")) {
            segs[n++] = seg;
        }
        p += seglen + 1;
    }
    cleanup_buf buf_t norm = BUF_INIT;
    if (len == 0 || path[0] == '/')
        buf_addch(&norm, '/');
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_addch(&norm, '/');
        buf_add(&norm, segs[i].base, segs[i].len);
    }
    if (n && path[len - 1] == '/')
        buf_addch(&norm, '/');
    uri_encode(out, norm.data, norm.len, true);
    return strcmp(norm.data, path) != 0;
}

typedef struct query_param {
    char *name;  /* URI-encoded */
    char *value; /* URI-encoded */
} query_param_t;

static int query_param_cmp(const void *a, const void *b)
{
    const query_param_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

/* Every parameter decoded and encoded again the one canonical way, sorted
 * by name then value; a presigned request leaves out its X-Amz-Signature. */
static void add_canonical_query(buf_t *out, const char *query, bool presigned)
{
    size_t max = 1;
    for (const char *p = query; *p; p++)
        max += *p == '&';
    cleanup_free query_param_t *params = xmalloc(max * sizeof *params);
    size_t n = 0;
    cleanup_buf buf_t raw = BUF_INIT;
    cleanup_buf buf_t enc = BUF_INIT;
    slice_t name, value;
    for (const char *p = query; next_param(&p, &name, &value);) {
        buf_reset(&raw);
        percent_decode(&raw, name.base, name.len);
        if (presigned && slice_is(buf_slice(&raw), "X-Amz-Signature"))
            continue;
        buf_reset(&enc);
        uri_encode(&enc, raw.data, raw.len, false);
        params[n].name = xstrdup(enc.data);
        buf_reset(&raw);
        percent_decode(&raw, value.base, value.len);
        buf_reset(&enc);
        uri_encode(&enc, raw.data, raw.len, false);
        params[n].value = xstrdup(enc.data);
        n++;
    }
    qsort(params, n, sizeof *params, query_param_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_addch(out, '&');
        buf_addf(out, "%s=%s", params[i].name, params[i].value);
        free(params[i].name);
        free(params[i].value);
    }
}

/* A header value trimmed, each run of white space inside made one space. */
static void add_trimmed(buf_t *out, const char *v)
{
    bool gap = false, any = false;
    for (; *v; v++) {
        if (is_space(*v)) {
            gap = any;
            continue;
        }
        if (gap)
            buf_addch(out, ' ');
        buf_addch(out, *v);
        gap = false;
        any = true;
    }
}

/* "name:value\n" for each signed header, in the order SignedHeaders gives
 * (clients sort it), values of a repeated header joined with ','. Returns
 * false when a signed header is not in the request. */
static bool add_canonical_headers(buf_t *out, const sigv4_request_t *req, slice_t signed_headers)
{
    bool all = true;
    const char *p = signed_headers.base, *end = p + signed_headers.len;
    while (p <= end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        size_t len = (size_t)((semi ? semi : end) - p);
        buf_add(out, p, len);
        buf_addch(out, ':');
        bool found = false;
        for (size_t i = 0; i < req->nheaders; i++) {
            const char *hn = req->headers[i].name;
            if (!hn || strlen(hn) != len || strncasecmp(hn, p, len))
                continue;
            if (found)
                buf_addch(out, ',');
            add_trimmed(out, req->headers[i].value ? req->headers[i].value : "");
            found = true;
        }
        all &= found;
        buf_addch(out, '\n');
        if (!semi)
            break;
        p = semi + 1;
    }
    return all;
}

static bool signs_host(slice_t signed_headers)
{
    const char *p = signed_headers.base, *end = p + signed_headers.len;
    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        size_t len = (size_t)((semi ? semi : end) - p);
        if (len == 4 && !strncasecmp(p, "host", 4))
            return true;
        if (!semi)
            break;
        p = semi + 1;
    }
    return false;
}

/* --- Checks --------------------------------------------------------------- */

static bool valid_region(slice_t r)
{
    if (r.len == 0 || r.len > SIGV4_REGION_MAX)
        return false;
    for (size_t i = 0; i < r.len; i++) {
        char c = r.base[i];
        if (!((c >= 'a' && c <= 'z') || is_digit(c) || c == '-'))
            return false;
    }
    return true;
}

/* Compares without an early exit, so the time taken does not tell how much
 * of a guessed signature is right. */
static bool equal_ct(const char *a, size_t la, const char *b, size_t lb)
{
    unsigned char diff = la != lb;
    size_t n = la < lb ? la : lb;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

static bool hex_equal_nocase(const char *a, const char *b, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'F')
            x = (char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'F')
            y = (char)(y - 'A' + 'a');
        if (x != y)
            return false;
    }
    return true;
}

/* The credential scope "AKID/20150830/us-east-1/lambda/aws4_request": five
 * parts, trailing slashes ignored as AWS ignores them. */
static bool split_credential(const buf_t *cred, slice_t parts[5])
{
    size_t len = cred->len;
    while (len && cred->data[len - 1] == '/')
        len--;
    const char *p = cred->data, *end = p + len;
    for (int i = 0; i < 5; i++) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        if ((i < 4) != (slash != NULL))
            return false;
        parts[i] = (slice_t){ p, (size_t)((slash ? slash : end) - p) };
        if (slash)
            p = slash + 1;
    }
    return true;
}

static int check_time(const sig_parts_t *parts, const char *amz_date, int64_t signed_s,
                      int64_t now_ms, sigv4_result_t *res, mf_error_t *err)
{
    int64_t now_s = floor_div(now_ms, 1000);
    int64_t signed_ms = signed_s * 1000;
    char now_str[DATE_BUF], edge[DATE_BUF];
    format_amz_date(now_s, now_str);

    if (parts->has_expires) {
        /* A presigned URL is good from its date for X-Amz-Expires seconds. */
        const buf_t *e = &parts->expires;
        bool number = e->len > 0 && e->len <= 10;
        for (size_t i = 0; number && i < e->len; i++)
            number = is_digit(e->data[i]);
        if (!number)
            return reject(res, err, SIGV4_INCOMPLETE, "X-Amz-Expires should be a number");
        long long expires = strtoll(e->data, NULL, 10);
        if (expires > SIGV4_MAX_EXPIRES_S)
            return reject(res, err, SIGV4_INCOMPLETE,
                          "X-Amz-Expires must be less than a week (in seconds); that is, the "
                          "given X-Amz-Expires must be less than %d seconds",
                          SIGV4_MAX_EXPIRES_S);
        if (signed_ms + expires * 1000 < now_ms) {
            format_amz_date(now_s - expires, edge);
            return reject(res, err, SIGV4_EXPIRED,
                          "Signature expired: %s is now earlier than %s (%s - %lld sec.)",
                          amz_date, edge, now_str, expires);
        }
    } else if (signed_ms < now_ms - SIGV4_MAX_SKEW_MS) {
        format_amz_date(now_s - SIGV4_MAX_SKEW_MS / 1000, edge);
        return reject(res, err, SIGV4_EXPIRED,
                      "Signature expired: %s is now earlier than %s (%s - 5 min.)", amz_date, edge,
                      now_str);
    }
    if (signed_ms > now_ms + SIGV4_MAX_SKEW_MS) {
        format_amz_date(now_s + SIGV4_MAX_SKEW_MS / 1000, edge);
        return reject(res, err, SIGV4_EXPIRED,
                      "Signature not yet current: %s is still later than %s (%s + 5 min.)",
                      amz_date, edge, now_str);
    }
    return 0;
}

/* The credential scope must name this service, the usual terminator and the
 * request's own day; every part that is wrong is named, as AWS names them. */
static int check_scope(const slice_t scope[5], const char *service, const char *amz_date,
                       sigv4_result_t *res, mf_error_t *err)
{
    cleanup_buf buf_t msg = BUF_INIT;
    char shown[SHOW_MAX + 8];
    if (!valid_region(scope[2]))
        buf_addf(&msg, "Credential should be scoped to a valid region, not '%s'. ",
                 show(scope[2].base, scope[2].len, shown));
    if (!slice_is(scope[3], service))
        buf_addf(&msg, "Credential should be scoped to correct service: '%s'. ", service);
    if (!slice_is(scope[4], TERMINATOR))
        buf_addf(&msg, "Credential should be scoped with a valid terminator: '%s', not '%s'. ",
                 TERMINATOR, show(scope[4].base, scope[4].len, shown));
    if (scope[1].len != 8 || memcmp(scope[1].base, amz_date, 8))
        buf_addf(&msg,
                 "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                 "date from HTTP: '%s' != '%.8s', from '%s'.",
                 show(scope[1].base, scope[1].len, shown), amz_date, amz_date);
    if (!msg.len)
        return 0;
    /* AWS ends these messages in a space; an error body is better without. */
    while (msg.len && msg.data[msg.len - 1] == ' ')
        msg.data[--msg.len] = '\0';
    return reject(res, err, SIGV4_INVALID, "%s", msg.data);
}

static bool is_hex(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (codec_hex_digit(s[i]) < 0)
            return false;
    }
    return true;
}

/* The payload hash the client signed: x-amz-content-sha256 when it sent
 * one, which must then be the body's (or UNSIGNED-PAYLOAD), else the
 * body's own. With head_only there is no body yet: a hash sent in the
 * header is taken as it is (the caller compares it with the body later),
 * and without one *signed_hash is NULL: the signature cannot be checked. */
static int payload_hash(const sigv4_request_t *req, bool head_only,
                        char out[CODEC_SHA256_HEX_LEN + 1], const char **signed_hash,
                        sigv4_result_t *res, mf_error_t *err)
{
    const char *given = header_get(req, "X-Amz-Content-Sha256");
    *signed_hash = NULL;
    out[0] = '\0';
    if (!head_only) {
        if (req->body_sha256)
            snprintf(out, CODEC_SHA256_HEX_LEN + 1, "%s", req->body_sha256);
        else if (!given || strcmp(given, UNSIGNED_PAYLOAD))
            codec_sha256_hex(out, req->body ? req->body : "", req->body ? req->body_len : 0);
    }
    if (!given) {
        if (!head_only)
            *signed_hash = out;
        return 0;
    }
    *signed_hash = given;
    if (!strcmp(given, UNSIGNED_PAYLOAD)) {
        res->unsigned_payload = true;
        return 0;
    }
    if (!strncmp(given, "STREAMING-", 10)) {
        char shown[SHOW_MAX + 8];
        return reject(res, err, SIGV4_INVALID,
                      "x-amz-content-sha256 '%s' (chunked signing) is not supported.",
                      show(given, strlen(given), shown));
    }
    if (strlen(given) != CODEC_SHA256_HEX_LEN || !is_hex(given, CODEC_SHA256_HEX_LEN) ||
        (!head_only && !hex_equal_nocase(given, out, CODEC_SHA256_HEX_LEN)))
        return reject(res, err, SIGV4_INVALID,
                      "The provided 'x-amz-content-sha256' header does not match what was "
                      "computed.");
    return 0;
}

static void signing_key(uint8_t key[CODEC_SHA256_LEN], const char *secret, slice_t date,
                        slice_t region, const char *service)
{
    cleanup_buf buf_t k = BUF_INIT;
    uint8_t a[CODEC_SHA256_LEN], b[CODEC_SHA256_LEN];
    buf_adds(&k, "AWS4");
    buf_adds(&k, secret);
    codec_hmac_sha256(a, k.data, k.len, date.base, date.len);
    codec_hmac_sha256(b, a, sizeof a, region.base, region.len);
    codec_hmac_sha256(a, b, sizeof b, service, strlen(service));
    codec_hmac_sha256(key, a, sizeof a, TERMINATOR, strlen(TERMINATOR));
    explicit_bzero(k.data, k.len);
    explicit_bzero(a, sizeof a);
    explicit_bzero(b, sizeof b);
}

static int verify(const sigv4_request_t *req, const char *service, const auth_keys_t *keys,
                  int64_t now_ms, bool head_only, sigv4_result_t *res, mf_error_t *err)
{
    res->signature_checked = false;
    res->status = SIGV4_OK;
    res->http_status = 0;
    res->error_type = NULL;
    res->access_key_id[0] = '\0';
    res->region[0] = '\0';
    res->signed_at_ms = 0;
    res->unsigned_payload = false;
    res->path_normalized = false;

    const char *query = req->query ? req->query : "";
    const char *authz = header_get(req, "Authorization");
    res->presigned = query_has(query, "X-Amz-Algorithm");
    if (authz && res->presigned)
        return reject(res, err, SIGV4_INVALID,
                      "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' "
                      "as HTTP header.");
    if (!res->presigned) {
        const char *a = authz;
        while (a && is_space(*a))
            a++;
        if (!a || strncmp(a, "AWS4-", 5))
            return reject(res, err, SIGV4_MISSING, "Missing Authentication Token");
    }

    cleanup_sig_parts sig_parts_t parts = {
        .algorithm = BUF_INIT,
        .credential = BUF_INIT,
        .signed_headers = BUF_INIT,
        .signature = BUF_INIT,
        .date = BUF_INIT,
        .expires = BUF_INIT,
    };
    int r = res->presigned ? parts_from_query(query, &parts, res, err)
                           : parts_from_header(authz, &parts, res, err);
    if (r == 0 && !res->presigned)
        r = check_header_parts(req, authz, &parts, res, err);
    if (r < 0)
        return r;

    /* The date, and whether it is recent enough. */
    char amz_date[DATE_BUF];
    int64_t signed_s;
    char shown[SHOW_MAX + 8];
    if (parts.http_date ? !parse_http_date(parts.date.data, parts.date.len, &signed_s)
                        : !parse_amz_date(parts.date.data, parts.date.len, &signed_s))
        return reject(res, err, SIGV4_INCOMPLETE,
                      "Date must be in ISO-8601 'basic format'. Got '%s'. See "
                      "http://en.wikipedia.org/wiki/ISO_8601",
                      show(parts.date.data, parts.date.len, shown));
    format_amz_date(signed_s, amz_date);
    res->signed_at_ms = signed_s * 1000;
    if ((r = check_time(&parts, amz_date, signed_s, now_ms, res, err)) < 0)
        return r;

    slice_t signed_headers = buf_slice(&parts.signed_headers);
    if (!signs_host(signed_headers))
        return reject(res, err, SIGV4_INVALID,
                      "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
    if (strcmp(parts.algorithm.data, ALGORITHM))
        return reject(res, err, SIGV4_INCOMPLETE,
                      "Unsupported AWS 'algorithm': '%s' (only %s for now).",
                      show(parts.algorithm.data, parts.algorithm.len, shown), ALGORITHM);

    /* The credential scope, then the key it names. */
    slice_t scope[5];
    if (!split_credential(&parts.credential, scope))
        return reject(res, err, SIGV4_INCOMPLETE,
                      "Credential must have exactly 5 slash-delimited elements, e.g. "
                      "keyid/date/region/service/term, got '%s'",
                      show(parts.credential.data, parts.credential.len, shown));
    if (scope[0].len <= SIGV4_KEY_ID_MAX) {
        memcpy(res->access_key_id, scope[0].base, scope[0].len);
        res->access_key_id[scope[0].len] = '\0';
    }
    if (scope[2].len <= SIGV4_REGION_MAX) {
        memcpy(res->region, scope[2].base, scope[2].len);
        res->region[scope[2].len] = '\0';
    }
    if ((r = check_scope(scope, service, amz_date, res, err)) < 0)
        return r;
    const auth_key_t *key = NULL;
    if (scope[0].len <= SIGV4_KEY_ID_MAX && !memchr(scope[0].base, '\0', scope[0].len))
        key = auth_keys_find(keys, res->access_key_id);
    if (!key)
        return reject(res, err, SIGV4_UNKNOWN_KEY,
                      "The security token included in the request is invalid.");

    char body_hash[CODEC_SHA256_HEX_LEN + 1];
    const char *signed_hash;
    if ((r = payload_hash(req, head_only, body_hash, &signed_hash, res, err)) < 0)
        return r;
    if (!signed_hash) {
        /* Everything but the signature holds; it waits for the body. The
         * path is resolved anyway, so a caller can refuse an unusual one
         * now. */
        cleanup_buf buf_t uri = BUF_INIT;
        res->path_normalized = add_canonical_uri(&uri, req->path ? req->path : "");
        return 0;
    }

    /* The canonical request, the string to sign, and the signature. */
    cleanup_buf buf_t creq = BUF_INIT;
    buf_adds(&creq, req->method);
    buf_addch(&creq, '\n');
    res->path_normalized = add_canonical_uri(&creq, req->path ? req->path : "");
    buf_addch(&creq, '\n');
    add_canonical_query(&creq, query, res->presigned);
    buf_addch(&creq, '\n');
    bool headers_present = add_canonical_headers(&creq, req, signed_headers);
    buf_addch(&creq, '\n');
    buf_add(&creq, signed_headers.base, signed_headers.len);
    buf_addch(&creq, '\n');
    buf_adds(&creq, signed_hash);

    char creq_hash[CODEC_SHA256_HEX_LEN + 1];
    codec_sha256_hex(creq_hash, creq.data, creq.len);
    cleanup_buf buf_t sts = BUF_INIT;
    buf_addf(&sts, "%s\n%s\n%.*s/%.*s/%s/%s\n%s", ALGORITHM, amz_date, (int)scope[1].len,
             scope[1].base, (int)scope[2].len, scope[2].base, service, TERMINATOR, creq_hash);
    if (res->canonical_request)
        buf_add(res->canonical_request, creq.data, creq.len);
    if (res->string_to_sign)
        buf_add(res->string_to_sign, sts.data, sts.len);

    uint8_t ksigning[CODEC_SHA256_LEN], mac[CODEC_SHA256_LEN];
    char expected[CODEC_SHA256_HEX_LEN + 1];
    signing_key(ksigning, key->secret, scope[1], scope[2], service);
    codec_hmac_sha256(mac, ksigning, sizeof ksigning, sts.data, sts.len);
    codec_hex(expected, mac, sizeof mac);
    explicit_bzero(ksigning, sizeof ksigning);
    bool match = equal_ct(expected, CODEC_SHA256_HEX_LEN, parts.signature.data,
                          parts.signature.len);
    if (!match || !headers_present)
        return reject(res, err, SIGV4_MISMATCH,
                      "The request signature we calculated does not match the signature you "
                      "provided. Check your AWS Secret Access Key and signing method. Consult "
                      "the service documentation for details.");
    res->signature_checked = true;
    return 0;
}

int sigv4_verify(const sigv4_request_t *req, const char *service, const auth_keys_t *keys,
                 int64_t now_ms, sigv4_result_t *res, mf_error_t *err)
{
    return verify(req, service, keys, now_ms, false, res, err);
}

int sigv4_verify_head(const sigv4_request_t *req, const char *service, const auth_keys_t *keys,
                      int64_t now_ms, sigv4_result_t *res, mf_error_t *err)
{
    return verify(req, service, keys, now_ms, true, res, err);
}

static void from_http(sigv4_request_t *out, const http_request_t *req)
{
    *out = (sigv4_request_t){
        .method = http_method_str(req->method),
        .path = req->path,
        .query = req->query,
        .headers = req->headers,
        .nheaders = req->nheaders,
        .body = req->body.data,
        .body_len = req->body.len,
    };
}

int sigv4_verify_http_head(const http_request_t *req, const char *service,
                           const auth_keys_t *keys, int64_t now_ms, sigv4_result_t *res,
                           mf_error_t *err)
{
    sigv4_request_t r;
    from_http(&r, req);
    return sigv4_verify_head(&r, service, keys, now_ms, res, err);
}

int sigv4_verify_http(const http_request_t *req, const char *service, const auth_keys_t *keys,
                      int64_t now_ms, sigv4_result_t *res, mf_error_t *err)
{
    sigv4_request_t r;
    from_http(&r, req);
    return sigv4_verify(&r, service, keys, now_ms, res, err);
}
