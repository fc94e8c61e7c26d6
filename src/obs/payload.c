/* A record's payload: one pass over the bytes that checks the JSON grammar
 * and, as it goes, replaces the values of listed members, then the cut to
 * the maximum and the kind.
 *
 * The scanner is a loop over three states (a value is next, a member is
 * next, a value has ended) with a bit per open container, not a recursive
 * descent: a payload of a million '[' must cost no stack. The output is
 * written only once something is replaced, and only up to max_bytes of it
 * is kept (the rest is only counted), so the common case (nothing to
 * redact) is one copy of at most max_bytes, and a huge payload never takes
 * memory in its own size. A replaced value's bytes are never copied, and
 * nothing here logs or formats a message: a secret has no way out. */
#include "obs/payload.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/codec.h"
#include "core/utf8.h"
#include "core/xalloc.h"

const char *const obs_payload_default_redact[OBS_PAYLOAD_N_DEFAULT_REDACT + 1] = {
    "password", "secret",     "token", "authorization", "api_key", "apikey",
    "cookie",   "set-cookie", NULL,
};

static const char REPLACEMENT[] = "\"[redacted]\"";
#define REPLACEMENT_LEN (sizeof REPLACEMENT - 1)

/* A member name is decoded into a buffer this big on the stack, or on the
 * heap for a policy that lists a longer name. */
#define NAME_INLINE 256

/* Not a valid length: a member name that no listed name can equal. */
#define NO_MATCH SIZE_MAX

typedef struct scan {
    const unsigned char *p;
    size_t len;
    size_t i; /* the next byte to read */

    const char *const *names;
    size_t n_names;
    char *name; /* a decoded member name, name_cap bytes */
    size_t name_cap;

    /* One bit per open container, set for an object. The first
     * OBS_PAYLOAD_MAX_DEPTH levels fit inline; a deeper payload is still
     * checked (to tell JSON too deep from no JSON) with bits on the heap. */
    uint64_t inline_bits[OBS_PAYLOAD_MAX_DEPTH / 64];
    uint64_t *bits;
    size_t bits_cap;
    size_t depth;
    bool too_deep;
    bool utf8_bad; /* a string holds bytes that are not UTF-8 */

    /* The value being replaced: from start, at depth. */
    bool replacing;
    size_t replace_depth;
    size_t replace_start;

    /* The output, once something is replaced: input[0..copied) is in it
     * (as far as max allows), and total is its whole length. */
    bool writing;
    buf_t out;
    size_t copied;
    size_t total;
    size_t max;
    bool redacted;
} scan_t;

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_cont(unsigned char c)
{
    return (c & 0xc0) == 0x80;
}

/* Where to cut n bytes so that no UTF-8 sequence is split: before the last
 * sequence when its lead byte promises more bytes than there are. Bytes
 * that lead no sequence (binary) are cut where they fall. */
static size_t utf8_cut(const unsigned char *p, size_t n)
{
    size_t k = 0;
    while (k < 3 && k < n && is_cont(p[n - 1 - k]))
        k++;
    if (k == n)
        return n;
    unsigned char lead = p[n - 1 - k];
    if (lead < 0xc2 || lead > 0xf4)
        return n;
    size_t want = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
    return want > k + 1 ? n - 1 - k : n;
}

/* ---- output ------------------------------------------------------------------ */

/* Appends n bytes to the output, keeping no more than max of it. */
static void out_add(scan_t *s, const void *data, size_t n)
{
    if (__builtin_add_overflow(s->total, n, &s->total))
        s->total = SIZE_MAX;
    size_t room = s->max - s->out.len;
    buf_add(&s->out, data, n < room ? n : room);
}

/* Brings the output up to input byte upto. */
static void out_copy(scan_t *s, size_t upto)
{
    out_add(s, s->p + s->copied, upto - s->copied);
    s->copied = upto;
}

/* The value from replace_start has ended at the current byte. A value
 * that is "[redacted]" already is left alone, so redacting twice changes
 * nothing the second time. */
static void end_replace(scan_t *s)
{
    s->replacing = false;
    size_t start = s->replace_start, n = s->i - start;
    if (s->too_deep || (n == REPLACEMENT_LEN && !memcmp(s->p + start, REPLACEMENT, n)))
        return;
    if (!s->writing) {
        s->writing = true;
        buf_init(&s->out, (s->len < s->max ? s->len : s->max) + REPLACEMENT_LEN);
    }
    out_copy(s, start);
    out_add(s, REPLACEMENT, REPLACEMENT_LEN);
    s->copied = s->i;
    s->redacted = true;
}

/* ---- the grammar ----------------------------------------------------------- */

static void push(scan_t *s, bool object)
{
    if (s->depth == s->bits_cap) {
        size_t words = s->bits_cap / 64;
        uint64_t *more = xcalloc(words * 2, sizeof *more);
        memcpy(more, s->bits, words * sizeof *more);
        if (s->bits != s->inline_bits)
            free(s->bits);
        s->bits = more;
        s->bits_cap *= 2;
    }
    uint64_t bit = (uint64_t)1 << (s->depth % 64);
    if (object)
        s->bits[s->depth / 64] |= bit;
    else
        s->bits[s->depth / 64] &= ~bit;
    if (++s->depth > OBS_PAYLOAD_MAX_DEPTH)
        s->too_deep = true;
}

static bool top_is_object(const scan_t *s)
{
    size_t d = s->depth - 1;
    return s->bits[d / 64] >> (d % 64) & 1;
}

static void skip_ws(scan_t *s)
{
    while (s->i < s->len) {
        unsigned char c = s->p[s->i];
        if (c != ' ' && c != '\n' && c != '\r' && c != '\t')
            return;
        s->i++;
    }
}

static bool scan_literal(scan_t *s, const char *lit, size_t n)
{
    if (s->len - s->i < n || memcmp(s->p + s->i, lit, n))
        return false;
    s->i += n;
    return true;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, of any size. */
static bool scan_number(scan_t *s)
{
    const unsigned char *p = s->p;
    size_t i = s->i, len = s->len;
    if (i < len && p[i] == '-')
        i++;
    if (i < len && p[i] == '0')
        i++;
    else if (i < len && p[i] >= '1' && p[i] <= '9')
        while (i < len && is_digit(p[i]))
            i++;
    else
        return false;
    if (i < len && p[i] == '.') {
        if (++i >= len || !is_digit(p[i]))
            return false;
        while (i < len && is_digit(p[i]))
            i++;
    }
    if (i < len && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < len && (p[i] == '+' || p[i] == '-'))
            i++;
        if (i >= len || !is_digit(p[i]))
            return false;
        while (i < len && is_digit(p[i]))
            i++;
    }
    s->i = i;
    return true;
}

/* The four hex digits at p[i..i+4) as a number, or -1. */
static long hex4(const unsigned char *p, size_t len, size_t i)
{
    if (len - i < 4)
        return -1;
    long v = 0;
    for (size_t k = 0; k < 4; k++) {
        int d = codec_hex_digit((char)p[i + k]);
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Adds code point cp to the decoded name as UTF-8; false when it does not
 * fit (and so the name matches nothing). */
static bool name_put(scan_t *s, size_t *n, uint32_t cp)
{
    char u[4];
    size_t k;
    if (cp < 0x80) {
        u[0] = (char)cp;
        k = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3f));
        k = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | cp >> 12);
        u[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        k = 3;
    } else {
        u[0] = (char)(0xf0 | cp >> 18);
        u[1] = (char)(0x80 | (cp >> 12 & 0x3f));
        u[2] = (char)(0x80 | (cp >> 6 & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        k = 4;
    }
    if (s->name_cap - *n < k)
        return false;
    memcpy(s->name + *n, u, k);
    *n += k;
    return true;
}

/* The string at s->i (its opening quote). For a member name (decode set),
 * *name_len is its decoded length in s->name, or NO_MATCH when no listed
 * name can equal it: longer than any, or holding a NUL, an unpaired
 * surrogate or bytes that are not UTF-8. */
static bool scan_string(scan_t *s, bool decode, size_t *name_len)
{
    const unsigned char *p = s->p;
    size_t i = s->i + 1, len = s->len, n = 0;
    bool can_match = decode;
    for (;;) {
        /* The common run: printable ASCII, nothing to decode. */
        if (!can_match)
            while (i < len && p[i] >= 0x20 && p[i] < 0x80 && p[i] != '"' && p[i] != '\\')
                i++;
        if (i >= len)
            return false;
        unsigned char c = p[i];
        if (c == '"')
            break;
        if (c < 0x20)
            return false;
        if (c >= 0x80) {
            size_t k = utf8_seq(p + i, len - i);
            if (!k) {
                s->utf8_bad = true;
                can_match = false;
                k = 1;
            }
            if (can_match && s->name_cap - n >= k) {
                memcpy(s->name + n, p + i, k);
                n += k;
            } else {
                can_match = false;
            }
            i += k;
            continue;
        }
        if (c != '\\') {
            if (can_match && n < s->name_cap)
                s->name[n++] = (char)c;
            else
                can_match = false;
            i++;
            continue;
        }
        if (i + 1 >= len)
            return false;
        uint32_t cp;
        switch (p[i + 1]) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u': {
            long u = hex4(p, len, i + 2);
            if (u < 0)
                return false;
            i += 4;
            cp = (uint32_t)u;
            /* A surrogate pair is one code point; a lone surrogate is
             * valid grammar that stands for no character. */
            if (cp >= 0xd800 && cp <= 0xdbff && len - (i + 2) >= 6 && p[i + 2] == '\\' &&
                p[i + 3] == 'u') {
                long lo = hex4(p, len, i + 4);
                if (lo >= 0xdc00 && lo <= 0xdfff) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (uint32_t)(lo - 0xdc00);
                    i += 6;
                }
            }
            if (cp == 0 || (cp >= 0xd800 && cp <= 0xdfff))
                can_match = false;
            break;
        }
        default: return false;
        }
        i += 2;
        if (can_match)
            can_match = name_put(s, &n, cp);
    }
    s->i = i + 1;
    if (decode)
        *name_len = can_match ? n : NO_MATCH;
    return true;
}

/* Whether the decoded name (n bytes) is listed, ASCII letters in any case. */
static bool listed(const scan_t *s, size_t n)
{
    for (size_t k = 0; k < s->n_names; k++) {
        const char *l = s->names[k];
        if (!l)
            continue;
        size_t j = 0;
        while (j < n && l[j] && lower(s->name[j]) == lower(l[j]))
            j++;
        if (j == n && !l[j])
            return true;
    }
    return false;
}

enum { NEXT_VALUE, NEXT_MEMBER, VALUE_ENDED };

/* Whether the input from s->i is one JSON value with white space around
 * it, replacing listed members' values on the way. */
static bool scan_json(scan_t *s)
{
    const unsigned char *p = s->p;
    bool replace_next = false;
    int state = NEXT_VALUE;
    skip_ws(s);
    for (;;) {
        switch (state) {
        case NEXT_VALUE:
            if (s->i >= s->len)
                return false;
            if (replace_next) {
                s->replacing = true;
                s->replace_depth = s->depth;
                s->replace_start = s->i;
                replace_next = false;
            }
            state = VALUE_ENDED;
            switch (p[s->i]) {
            case '{':
            case '[': {
                bool object = p[s->i] == '{';
                push(s, object);
                s->i++;
                skip_ws(s);
                if (s->i < s->len && p[s->i] == (object ? '}' : ']')) {
                    s->i++;
                    s->depth--;
                } else {
                    state = object ? NEXT_MEMBER : NEXT_VALUE;
                }
                break;
            }
            case '"':
                if (!scan_string(s, false, NULL))
                    return false;
                break;
            case 't':
                if (!scan_literal(s, "true", 4))
                    return false;
                break;
            case 'f':
                if (!scan_literal(s, "false", 5))
                    return false;
                break;
            case 'n':
                if (!scan_literal(s, "null", 4))
                    return false;
                break;
            default:
                if (!scan_number(s))
                    return false;
                break;
            }
            break;

        case NEXT_MEMBER: {
            if (s->i >= s->len || p[s->i] != '"')
                return false;
            /* Names inside a value being replaced need no look. */
            bool look = s->n_names && !s->replacing && !s->too_deep;
            size_t n = NO_MATCH;
            if (!scan_string(s, look, &n))
                return false;
            replace_next = look && n != NO_MATCH && listed(s, n);
            skip_ws(s);
            if (s->i >= s->len || p[s->i] != ':')
                return false;
            s->i++;
            skip_ws(s);
            state = NEXT_VALUE;
            break;
        }

        case VALUE_ENDED: {
            if (s->replacing && s->depth == s->replace_depth)
                end_replace(s);
            skip_ws(s);
            if (s->depth == 0)
                return s->i == s->len;
            if (s->i >= s->len)
                return false;
            bool object = top_is_object(s);
            unsigned char c = p[s->i++];
            if (c == ',') {
                skip_ws(s);
                state = object ? NEXT_MEMBER : NEXT_VALUE;
            } else if (c == (object ? '}' : ']')) {
                s->depth--;
            } else {
                return false;
            }
            break;
        }
        }
    }
}

/* ---- the payload ------------------------------------------------------------ */

void obs_payload_make(const obs_payload_policy_t *policy, const void *in, size_t len,
                      obs_payload_t *out)
{
    static const obs_payload_policy_t defaults = {
        obs_payload_default_redact,
        OBS_PAYLOAD_N_DEFAULT_REDACT,
        OBS_PAYLOAD_MAX_DEFAULT,
    };
    if (!policy)
        policy = &defaults;
    if (!in)
        len = 0;
    *out = (obs_payload_t){.full_len = len};

    scan_t s = {
        .p = in ? in : (const void *)"",
        .len = len,
        .names = policy->redact,
        .n_names = policy->redact ? policy->n_redact : 0,
        .bits_cap = OBS_PAYLOAD_MAX_DEPTH,
        .max = policy->max_bytes,
        .out = BUF_INIT,
    };
    s.bits = s.inline_bits;

    char name_inline[NAME_INLINE];
    for (size_t k = 0; k < s.n_names; k++)
        if (s.names[k]) {
            size_t n = strlen(s.names[k]);
            s.name_cap = n > s.name_cap ? n : s.name_cap;
        }
    s.name = s.name_cap <= sizeof name_inline ? name_inline : xmalloc(s.name_cap);

    /* RFC 8259 lets a parser skip a byte order mark; a function's may. */
    bool bom = len >= 3 && !memcmp(s.p, "\xef\xbb\xbf", 3);
    s.i = bom ? 3 : 0;
    bool json = scan_json(&s);

    if (s.name != name_inline)
        free(s.name);
    if (s.bits != s.inline_bits)
        free(s.bits);

    if (json && s.too_deep) {
        buf_release(&s.out);
        out->refused = true;
        out->kind = OBS_PAYLOAD_JSON;
        return;
    }

    if (json && s.writing) {
        out_copy(&s, len);
        out->truncated = s.total > s.max;
        out->redacted = true;
        out->data = buf_detach(&s.out, &out->len);
    } else {
        buf_release(&s.out);
        size_t n = len < s.max ? len : s.max;
        out->truncated = len > s.max;
        out->data = xmalloc(n + 1);
        memcpy(out->data, s.p, n);
        out->data[n] = '\0';
        out->len = n;
    }

    const unsigned char *data = (const unsigned char *)out->data;
    if (out->truncated) {
        out->len = utf8_cut(data, out->len);
        out->data[out->len] = '\0';
    }
    /* JSON whose strings were all UTF-8 stays so, redacted and cut (never
     * inside a sequence); otherwise what is stored tells, as bytes that
     * were not UTF-8 may have gone with a secret. */
    bool utf8 = (json && !s.utf8_bad) || utf8_valid(data, out->len);
    if (json && utf8 && !out->truncated && !bom)
        out->kind = OBS_PAYLOAD_JSON;
    else
        out->kind = utf8 ? OBS_PAYLOAD_TEXT : OBS_PAYLOAD_BINARY;
}

void obs_payload_release(obs_payload_t *p)
{
    if (!p)
        return;
    free(p->data);
    *p = (obs_payload_t){0};
}
