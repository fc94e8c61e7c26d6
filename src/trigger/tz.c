/* IANA time zones from TZif files, and wall clock ↔ instant (see tz.h). */
#include "trigger/tz.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/cleanup.h"
#include "core/fs.h"
#include "core/xalloc.h"
#include "trigger/schedule_expr.h"

/* Offsets beyond a day and a bit are not of this planet; bounding them
 * keeps every sum below far from overflow. */
#define TZ_OFFSET_MAX (26 * 3600)
/* Real zone files hold a few hundred transitions, the largest a couple of
 * thousand. */
#define TZ_TRANSITIONS_MAX 20000

/* One date of a POSIX TZ rule: Jn (1-365, February 29 never counted), n
 * (0-365, counted), or Mm.w.d (month m, week w of 1-5 where 5 is the last,
 * weekday d of 0-6 from Sunday); time: seconds after midnight of that
 * date, on the clock in force before the change (may be negative or past
 * a day, as version 3 allows). */
typedef struct tz_rule_date {
    char kind; /* 'J', 'N' or 'M' */
    int a, b, c;
    int32_t time;
} tz_rule_date_t;

typedef struct tz_rule {
    int32_t std_off, dst_off; /* seconds east of UTC */
    bool has_dst;
    tz_rule_date_t start, end; /* into and out of daylight saving time */
} tz_rule_t;

struct tz {
    char name[TZ_NAME_MAX + 1];
    int64_t *times;   /* transitions, ascending */
    uint8_t *types;   /* the type each one starts */
    size_t n;
    int32_t *offsets; /* per type */
    size_t ntypes;
    bool has_rule;    /* the footer's, for instants past the table */
    tz_rule_t rule;
};

/* ---- names ----------------------------------------------------------------- */

bool tz_valid_name(const char *name)
{
    size_t len = strnlen(name, TZ_NAME_MAX + 1);
    if (len == 0 || len > TZ_NAME_MAX)
        return false;
    const char *p = name;
    for (;;) {
        size_t n = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+-");
        /* An empty component is a leading, doubled or trailing slash. Dots
         * are not among the characters, so `..` cannot appear. */
        if (n == 0)
            return false;
        p += n;
        if (*p == '\0')
            return true;
        if (*p != '/')
            return false;
        p++;
    }
}

/* ---- the POSIX TZ rule ------------------------------------------------------- */

/* The civil second at which date d of year y happens. */
static int64_t rule_date_civil(const tz_rule_date_t *d, int year)
{
    int64_t jan1 = sched_civil_seconds(year, 1, 1, 0, 0, 0);
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    int64_t day;
    if (d->kind == 'J') {
        day = jan1 / 86400 + d->a - 1 + (leap && d->a >= 60);
    } else if (d->kind == 'N') {
        day = jan1 / 86400 + d->a;
    } else {
        int64_t first = sched_civil_seconds(year, d->a, 1, 0, 0, 0);
        int y, mo, dd, h, mi, s, wd;
        sched_civil_split(first, &y, &mo, &dd, &h, &mi, &s, &wd);
        int dom = 1 + ((d->c - (wd - 1)) % 7 + 7) % 7 + (d->b - 1) * 7;
        static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        int last = mdays[d->a - 1] + (d->a == 2 && leap);
        while (dom > last)
            dom -= 7;
        day = first / 86400 + dom - 1;
    }
    return day * 86400 + d->time;
}

typedef struct tz_change {
    int64_t at;
    int32_t off;
    int order; /* among changes at the same instant: ends before starts */
} tz_change_t;

static int change_cmp(const void *pa, const void *pb)
{
    const tz_change_t *a = pa, *b = pb;
    if (a->at != b->at)
        return a->at < b->at ? -1 : 1;
    return a->order - b->order;
}

/* The rule's changes in years y0 to y0 + count - 1, in order. */
static size_t rule_changes(const tz_rule_t *r, int y0, int count, tz_change_t *out)
{
    size_t n = 0;
    for (int y = y0; y < y0 + count; y++) {
        /* Into daylight time on the standard clock; out of it on the
         * daylight clock. */
        out[n++] = (tz_change_t){rule_date_civil(&r->start, y) - r->std_off, r->dst_off, 1};
        out[n++] = (tz_change_t){rule_date_civil(&r->end, y) - r->dst_off, r->std_off, 0};
    }
    qsort(out, n, sizeof *out, change_cmp);
    return n;
}

/* The year instant t falls in (on the UTC calendar, near enough to pick
 * the rule's years around it). */
static int year_of(int64_t t)
{
    int y, mo, d, h, mi, s, wd;
    sched_civil_split(t, &y, &mo, &d, &h, &mi, &s, &wd);
    return y;
}

static int32_t rule_offset_at(const tz_rule_t *r, int64_t t)
{
    if (!r->has_dst)
        return r->std_off;
    tz_change_t ch[6];
    size_t n = rule_changes(r, year_of(t) - 1, 3, ch);
    int32_t off = r->std_off;
    for (size_t i = 0; i < n && ch[i].at <= t; i++)
        off = ch[i].off;
    return off;
}

/* The rule's first change after t: false when it has none. */
static bool rule_next_change(const tz_rule_t *r, int64_t t, int64_t *at, int32_t *off)
{
    if (!r->has_dst)
        return false;
    tz_change_t ch[8];
    size_t n = rule_changes(r, year_of(t) - 1, 4, ch);
    for (size_t i = 0; i < n; i++) {
        if (ch[i].at > t) {
            *at = ch[i].at;
            *off = ch[i].off;
            return true;
        }
    }
    return false;
}

/* A number of at most max_digits digits at *p, within [0, max]. */
static bool parse_num(const char **p, int max_digits, int max, int *out)
{
    int v = 0, n = 0;
    while (**p >= '0' && **p <= '9' && n < max_digits) {
        v = v * 10 + (**p - '0');
        (*p)++;
        n++;
    }
    if (n == 0 || v > max || (**p >= '0' && **p <= '9'))
        return false;
    *out = v;
    return true;
}

/* [+-]h[h…][:mm[:ss]], hours up to max_hours: seconds (the sign applied). */
static bool parse_hms(const char **p, int max_hours, int32_t *out)
{
    int sign = 1;
    if (**p == '+' || **p == '-')
        sign = *(*p)++ == '-' ? -1 : 1;
    int h, m = 0, s = 0;
    if (!parse_num(p, 3, max_hours, &h))
        return false;
    if (**p == ':') {
        (*p)++;
        if (!parse_num(p, 2, 59, &m))
            return false;
        if (**p == ':') {
            (*p)++;
            if (!parse_num(p, 2, 59, &s))
                return false;
        }
    }
    *out = sign * (h * 3600 + m * 60 + s);
    return true;
}

/* A zone abbreviation: three or more letters, or <...> of letters, digits
 * and signs. */
static bool parse_abbr(const char **p)
{
    const char *s = *p;
    size_t n;
    if (*s == '<') {
        n = strspn(s + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+-");
        if (n < 3 || s[1 + n] != '>')
            return false;
        *p = s + n + 2;
        return true;
    }
    n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
    if (n < 3)
        return false;
    *p = s + n;
    return true;
}

static bool parse_rule_date(const char **p, tz_rule_date_t *d)
{
    d->time = 2 * 3600;
    if (**p == 'J') {
        (*p)++;
        d->kind = 'J';
        if (!parse_num(p, 3, 365, &d->a) || d->a < 1)
            return false;
    } else if (**p == 'M') {
        (*p)++;
        d->kind = 'M';
        if (!parse_num(p, 2, 12, &d->a) || d->a < 1 || *(*p)++ != '.' ||
            !parse_num(p, 1, 5, &d->b) || d->b < 1 || *(*p)++ != '.' || !parse_num(p, 1, 6, &d->c))
            return false;
    } else {
        d->kind = 'N';
        if (!parse_num(p, 3, 365, &d->a))
            return false;
    }
    if (**p == '/') {
        (*p)++;
        /* Version 3 allows -167 to 167 hours. */
        if (!parse_hms(p, 167, &d->time))
            return false;
    }
    return true;
}

/* Parses a POSIX TZ string ("CET-1CEST,M3.5.0,M10.5.0/3"). Its offsets
 * count west of UTC; the rule's count east. */
static bool parse_posix_tz(const char *s, tz_rule_t *r)
{
    memset(r, 0, sizeof *r);
    const char *p = s;
    int32_t off;
    if (!parse_abbr(&p) || !parse_hms(&p, 24, &off))
        return false;
    r->std_off = -off;
    if (*p == '\0')
        return true;
    if (!parse_abbr(&p))
        return false;
    r->has_dst = true;
    r->dst_off = r->std_off + 3600;
    if (*p && *p != ',') {
        if (!parse_hms(&p, 24, &off))
            return false;
        r->dst_off = -off;
    }
    if (*p == '\0') {
        /* No rule given: POSIX leaves it to the implementation; the
         * reference code takes the United States' (M3.2.0,M11.1.0). */
        r->start = (tz_rule_date_t){'M', 3, 2, 0, 7200};
        r->end = (tz_rule_date_t){'M', 11, 1, 0, 7200};
        return true;
    }
    if (*p++ != ',' || !parse_rule_date(&p, &r->start) || *p++ != ',' ||
        !parse_rule_date(&p, &r->end) || *p != '\0')
        return false;
    return true;
}

/* ---- TZif -------------------------------------------------------------------- */

typedef struct tzif_counts {
    uint32_t isut, isstd, leap, time, type, chars;
} tzif_counts_t;

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const uint8_t *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static int tzif_fail(mf_error_t *err, const char *name, const char *what)
{
    return mf_error_plain(err, EINVAL, "timezone: `%s` is not a usable zone file: %s", name, what);
}

/* Reads a header at data[0..len): its version and counts. */
static int tzif_header(const uint8_t *data, size_t len, const char *name, int *version,
                       tzif_counts_t *c, mf_error_t *err)
{
    if (len < 44 || memcmp(data, "TZif", 4))
        return tzif_fail(err, name, "no TZif header");
    if (data[4] != 0 && (data[4] < '2' || data[4] > '4'))
        return tzif_fail(err, name, "an unknown version");
    *version = data[4] ? data[4] - '0' : 1;
    *c = (tzif_counts_t){be32(data + 20), be32(data + 24), be32(data + 28),
                         be32(data + 32), be32(data + 36), be32(data + 40)};
    if (c->type == 0 || c->chars == 0 || (c->isut && c->isut != c->type) ||
        (c->isstd && c->isstd != c->type) || c->type > 256 || c->time > TZ_TRANSITIONS_MAX)
        return tzif_fail(err, name, "inconsistent counts");
    if (c->leap)
        return tzif_fail(err, name, "it counts leap seconds (a right/ zone)");
    return 0;
}

/* The size of a data block after its header, 4-byte times (v1) or 8. */
static uint64_t tzif_block_size(const tzif_counts_t *c, int time_size)
{
    return (uint64_t)c->time * (uint64_t)time_size + c->time + (uint64_t)c->type * 6 + c->chars +
           (uint64_t)c->leap * (uint64_t)(time_size + 4) + c->isstd + c->isut;
}

/* Takes the transitions and types of one data block. */
static int tzif_block(const uint8_t *p, const tzif_counts_t *c, int time_size, const char *name,
                      tz_t *z, mf_error_t *err)
{
    z->n = c->time;
    z->ntypes = c->type;
    z->times = xcalloc(c->time ? c->time : 1, sizeof *z->times);
    z->types = xcalloc(c->time ? c->time : 1, 1);
    z->offsets = xcalloc(c->type, sizeof *z->offsets);
    for (uint32_t i = 0; i < c->time; i++) {
        z->times[i] = time_size == 8 ? be64(p + 8 * (size_t)i) : (int32_t)be32(p + 4 * (size_t)i);
        if (i && z->times[i] <= z->times[i - 1])
            return tzif_fail(err, name, "transitions out of order");
    }
    p += (size_t)c->time * (size_t)time_size;
    for (uint32_t i = 0; i < c->time; i++) {
        z->types[i] = p[i];
        if (p[i] >= c->type)
            return tzif_fail(err, name, "a transition to a type that does not exist");
    }
    p += c->time;
    for (uint32_t i = 0; i < c->type; i++, p += 6) {
        int32_t off = (int32_t)be32(p);
        if (off < -TZ_OFFSET_MAX || off > TZ_OFFSET_MAX || p[4] > 1 || p[5] >= c->chars)
            return tzif_fail(err, name, "a local time type out of range");
        z->offsets[i] = off;
    }
    return 0;
}

int tz_parse(const void *data, size_t len, const char *name, tz_t **out, mf_error_t *err)
{
    const uint8_t *d = data;
    int version;
    tzif_counts_t c;
    int r = tzif_header(d, len, name, &version, &c, err);
    if (r < 0)
        return r;
    uint64_t size = tzif_block_size(&c, 4);
    if (size > len - 44)
        return tzif_fail(err, name, "cut short");
    const uint8_t *block = d + 44;
    int time_size = 4;
    const uint8_t *end = block + size;
    if (version >= 2) {
        /* The 64-bit header and block follow the 32-bit ones, then the
         * footer. */
        const uint8_t *h2 = block + size;
        size_t left = len - (size_t)(h2 - d);
        int v2;
        if ((r = tzif_header(h2, left, name, &v2, &c, err)) < 0)
            return r;
        size = tzif_block_size(&c, 8);
        if (size > left - 44)
            return tzif_fail(err, name, "cut short");
        block = h2 + 44;
        time_size = 8;
        end = block + size;
    }
    tz_t *z = xcalloc(1, sizeof *z);
    snprintf(z->name, sizeof z->name, "%s", name);
    if ((r = tzif_block(block, &c, time_size, name, z, err)) < 0) {
        tz_free(z);
        return r;
    }
    if (version >= 2) {
        /* "\nTZ\n": the rule for instants past the table (may be empty). */
        size_t left = len - (size_t)(end - d);
        const uint8_t *nl = left > 1 ? memchr(end + 1, '\n', left - 1) : NULL;
        if (left < 2 || end[0] != '\n' || !nl || (size_t)(nl - end - 1) > 255) {
            tz_free(z);
            return tzif_fail(err, name, "no footer");
        }
        char footer[256];
        memcpy(footer, end + 1, (size_t)(nl - end - 1));
        footer[nl - end - 1] = '\0';
        if (footer[0]) {
            if (!parse_posix_tz(footer, &z->rule) || z->rule.std_off < -TZ_OFFSET_MAX ||
                z->rule.std_off > TZ_OFFSET_MAX || z->rule.dst_off < -TZ_OFFSET_MAX ||
                z->rule.dst_off > TZ_OFFSET_MAX) {
                tz_free(z);
                return tzif_fail(err, name, "its footer is not a POSIX TZ rule");
            }
            z->has_rule = true;
        }
    }
    *out = z;
    return 0;
}

tz_t *tz_utc(void)
{
    tz_t *z = xcalloc(1, sizeof *z);
    snprintf(z->name, sizeof z->name, "UTC");
    z->offsets = xcalloc(1, sizeof *z->offsets);
    z->ntypes = 1;
    return z;
}

int tz_load(const char *dir, const char *name, tz_t **out, mf_error_t *err)
{
    char shown[TZ_NAME_MAX + 8];
    if (!tz_valid_name(name))
        return mf_error_plain(err, EINVAL,
                              "timezone: `%s` is not a time zone name (like Europe/Paris: "
                              "letters, digits, _, + and - between single slashes)",
                              mf_error_show(name, TZ_NAME_MAX, shown, sizeof shown));
    cleanup_free char *path = xasprintf("%s/%s", dir ? dir : TZ_DIR_DEFAULT, name);
    buf_t b = BUF_INIT;
    mf_error_t e = MF_ERROR_INIT;
    int r = fs_read_file(path, &b, TZ_FILE_MAX, &e);
    if (r < 0) {
        buf_release(&b);
        if (!strcmp(name, "UTC")) {
            *out = tz_utc();
            return 0;
        }
        return mf_error_plain(err, EINVAL, "timezone: no time zone named `%s`", name);
    }
    r = tz_parse(b.data, b.len, name, out, err);
    buf_release(&b);
    return r;
}

void tz_free(tz_t *z)
{
    if (!z)
        return;
    free(z->times);
    free(z->types);
    free(z->offsets);
    free(z);
}

const char *tz_name(const tz_t *z)
{
    return z->name;
}

/* ---- offsets and the wall clock ------------------------------------------------ */

int32_t tz_offset_at(const tz_t *z, int64_t t)
{
    if (z->n == 0 || t >= z->times[z->n - 1]) {
        if (z->has_rule)
            return rule_offset_at(&z->rule, t);
        return z->n ? z->offsets[z->types[z->n - 1]] : z->offsets[0];
    }
    if (t < z->times[0])
        return z->offsets[0];
    /* The last transition at or before t. */
    size_t lo = 0, hi = z->n - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        if (z->times[mid] <= t)
            lo = mid;
        else
            hi = mid - 1;
    }
    return z->offsets[z->types[lo]];
}

/* The first change of offset (or of type) after t: false when none. *off
 * is what tz_offset_at answers from then on, which at the table's last
 * transition is the footer rule's and not necessarily the type's (in a
 * file whose two disagree). */
static bool next_change(const tz_t *z, int64_t t, int64_t *at, int32_t *off)
{
    if (z->n && t < z->times[z->n - 1]) {
        size_t lo = 0, hi = z->n - 1;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (z->times[mid] > t)
                hi = mid;
            else
                lo = mid + 1;
        }
        *at = z->times[lo];
    } else if (!z->has_rule || !rule_next_change(&z->rule, t, at, off)) {
        return false;
    }
    *off = tz_offset_at(z, *at);
    return true;
}

tz_civil_kind_t tz_civil_to_instant(const tz_t *z, int64_t civil, int64_t *first, int64_t *second)
{
    /* Every instant whose wall clock can read civil lies within a day and
     * a bit of it: try each offset in force somewhere in that stretch. */
    enum { SPAN = TZ_OFFSET_MAX + 3600 };
    int64_t t = civil - SPAN, lo = INT64_MAX, hi = INT64_MIN, gap_at = civil, at;
    int32_t off = tz_offset_at(z, t), prev = off;
    for (;;) {
        int64_t inst = civil - off;
        if (tz_offset_at(z, inst) == off) {
            lo = inst < lo ? inst : lo;
            hi = inst > hi ? inst : hi;
        }
        if (!next_change(z, t, &at, &off) || at > civil + SPAN)
            break;
        /* A jump forward over civil: where its gap is. */
        if (at + prev <= civil && civil < at + off)
            gap_at = at;
        prev = off;
        t = at;
    }
    if (lo == INT64_MAX) {
        *first = *second = gap_at;
        return TZ_CIVIL_SKIPPED;
    }
    *first = lo;
    *second = hi;
    return lo == hi ? TZ_CIVIL_UNIQUE : TZ_CIVIL_REPEATED;
}

void tz_format_rfc3339(const tz_t *z, int64_t t, char *out, size_t outlen)
{
    int32_t off = tz_offset_at(z, t);
    int y, mo, d, h, mi, s, wd;
    sched_civil_split(t + off, &y, &mo, &d, &h, &mi, &s, &wd);
    if (off == 0) {
        snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02dZ", y, mo, d, h, mi, s);
        return;
    }
    int a = off < 0 ? -off : off;
    /* RFC 3339 has no seconds in an offset: historical ones with seconds
     * (local mean time) are shown to the minute. */
    snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d", y, mo, d, h, mi, s,
             off < 0 ? '-' : '+', a / 3600, a / 60 % 60);
}
