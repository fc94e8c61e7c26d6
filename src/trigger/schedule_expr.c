/* Schedule expressions: parsing and the next time one fires. */
#include "trigger/schedule_expr.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define YEAR_MIN 1970
#define YEAR_MAX 2199

/* ---- civil time ----------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static int days_in_month(int y, int m)
{
    static const int n[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : n[m - 1];
}

/* 1 = Sunday … 7 = Saturday; 1970-01-01 was a Thursday (5). */
static int weekday(int64_t days)
{
    int64_t w = (days + 4) % 7;
    if (w < 0)
        w += 7;
    return (int)w + 1;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

int64_t sched_civil_seconds(int year, int month, int day, int hour, int minute, int second)
{
    return days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
}

void sched_civil_split(int64_t s, int *year, int *month, int *day, int *hour, int *minute,
                       int *second, int *wday)
{
    int64_t days = floor_div(s, 86400), rest = s - days * 86400;
    civil_from_days(days, year, month, day);
    *hour = (int)(rest / 3600);
    *minute = (int)(rest / 60 % 60);
    *second = (int)(rest % 60);
    if (wday)
        *wday = weekday(days);
}

/* ---- parsing ---------------------------------------------------------------- */

typedef struct field {
    const char *name;
    int lo, hi;
    const char *const *names; /* names[i] is value lo + i, or NULL */
} field_t;

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
static const char *const day_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

static const field_t fields[6] = {
    {"minutes", 0, 59, NULL},         {"hours", 0, 23, NULL},
    {"day of month", 1, 31, NULL},    {"month", 1, 12, month_names},
    {"day of week", 1, 7, day_names}, {"year", YEAR_MIN, YEAR_MAX, NULL},
};

static int fail(mf_error_t *err, int idx, const char *fmt, const char *a, const char *b)
{
    char msg[200];
    snprintf(msg, sizeof msg, fmt, a, b);
    return mf_error_plain(err, EINVAL, "cron: field %d (%s): %s", idx + 1, fields[idx].name, msg);
}

/* A number or (for months and days of the week) a name, the whole of
 * [s, e). -1 when it is neither or out of range. */
static int value_of(const field_t *f, const char *s, const char *e)
{
    size_t n = (size_t)(e - s);
    if (n == 0 || n > 4)
        return -1;
    if (f->names && n == 3) {
        for (int i = 0; i <= f->hi - f->lo; i++)
            if (!strncasecmp(s, f->names[i], 3))
                return f->lo + i;
        return -1;
    }
    int v = 0;
    for (const char *p = s; p < e; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    return v < f->lo || v > f->hi ? -1 : v;
}

static void set_bit(sched_expr_t *e, int idx, int v)
{
    switch (idx) {
    case 0: e->minutes |= 1ull << v; break;
    case 1: e->hours |= 1u << v; break;
    case 2: e->mdays |= 1u << v; break;
    case 3: e->months |= (uint16_t)(1u << v); break;
    case 4: e->wdays |= (uint8_t)(1u << v); break;
    default: e->years[(v - YEAR_MIN) / 8] |= (uint8_t)(1u << ((v - YEAR_MIN) % 8)); break;
    }
}

/* One item of a list: `*`, `*` over n, a, a-b, a/n, a-b/n. */
static int parse_item(sched_expr_t *e, int idx, const char *s, const char *end, mf_error_t *err)
{
    const field_t *f = &fields[idx];
    char item[64];
    snprintf(item, sizeof item, "%.*s", (int)(end - s > 60 ? 60 : end - s), s);
    const char *slash = memchr(s, '/', (size_t)(end - s));
    const char *range_end = slash ? slash : end;
    int lo, hi, step = 1;
    if (slash) {
        int n = 0;
        const char *p = slash + 1;
        if (p == end)
            return fail(err, idx, "`%s`: a step needs a number after /%s", item, "");
        for (; p < end; p++) {
            if (*p < '0' || *p > '9' || n > 1000)
                return fail(err, idx, "`%s`: the step is not a number%s", item, "");
            n = n * 10 + (*p - '0');
        }
        if (n < 1 || n > f->hi - f->lo + 1)
            return fail(err, idx, "`%s`: the step must be from 1 to the field's span%s", item, "");
        step = n;
    }
    if (range_end - s == 1 && *s == '*') {
        lo = f->lo;
        hi = f->hi;
    } else {
        const char *dash = memchr(s, '-', (size_t)(range_end - s));
        lo = value_of(f, s, dash ? dash : range_end);
        hi = dash ? value_of(f, dash + 1, range_end) : (slash ? f->hi : lo);
        if (lo < 0 || hi < 0) {
            char lim[40];
            snprintf(lim, sizeof lim, "%d-%d", f->lo, f->hi);
            return fail(err, idx, "`%s`: not a value in %s", item, lim);
        }
        if (hi < lo)
            return fail(err, idx, "`%s`: the range ends before it starts%s", item, "");
    }
    for (int v = lo; v <= hi; v += step)
        set_bit(e, idx, v);
    return 0;
}

/* The day-of-month field's specials: L, L-N, NW, LW. 1 when s was one. */
static int parse_mday_special(sched_expr_t *e, const char *s, mf_error_t *err, int *r)
{
    size_t n = strlen(s);
    if (!strcmp(s, "L")) {
        e->mday_last = true;
    } else if (!strcmp(s, "LW")) {
        e->mday_last_weekday = true;
    } else if (n >= 3 && s[0] == 'L' && s[1] == '-') {
        int v = value_of(&fields[2], s + 2, s + n);
        if (v < 1 || v > 30) {
            *r = fail(err, 2, "`%s`: L-N needs N from 1 to 30%s", s, "");
            return 1;
        }
        e->mday_last = true;
        e->mday_last_offset = v;
    } else if (n >= 2 && s[n - 1] == 'W') {
        int v = value_of(&fields[2], s, s + n - 1);
        if (v < 0) {
            *r = fail(err, 2, "`%s`: NW needs N from 1 to 31%s", s, "");
            return 1;
        }
        e->mday_weekday = v;
    } else {
        return 0;
    }
    *r = 0;
    return 1;
}

/* The day-of-week field's specials: L, NL, N#K. */
static int parse_wday_special(sched_expr_t *e, const char *s, mf_error_t *err, int *r)
{
    size_t n = strlen(s);
    const char *hash = strchr(s, '#');
    if (!strcmp(s, "L")) {
        set_bit(e, 4, 7); /* L alone: the week's last day, Saturday */
    } else if (n >= 2 && s[n - 1] == 'L') {
        int v = value_of(&fields[4], s, s + n - 1);
        if (v < 0) {
            *r = fail(err, 4, "`%s`: NL needs a day of the week (1-7 or SUN-SAT)%s", s, "");
            return 1;
        }
        e->wday_last = v;
    } else if (hash) {
        int v = value_of(&fields[4], s, hash);
        int k = hash[1] >= '1' && hash[1] <= '5' && !hash[2] ? hash[1] - '0' : 0;
        if (v < 0 || !k) {
            *r = fail(err, 4, "`%s`: N#K needs a day of the week and K from 1 to 5%s", s, "");
            return 1;
        }
        e->wday_nth_day = v;
        e->wday_nth = k;
    } else {
        return 0;
    }
    *r = 0;
    return 1;
}

static int parse_field(sched_expr_t *e, int idx, const char *s, mf_error_t *err)
{
    if (!strcmp(s, "?")) {
        if (idx != 2 && idx != 4)
            return fail(err, idx, "`?` is only for the day of month or the day of week%s%s", "",
                        "");
        if (idx == 2)
            e->mday_any = true;
        else
            e->wday_any = true;
        return 0;
    }
    int r;
    if (idx == 2 && parse_mday_special(e, s, err, &r))
        return r;
    if (idx == 4 && parse_wday_special(e, s, err, &r))
        return r;
    for (const char *p = s;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        if (end == p)
            return fail(err, idx, "`%s`: an empty item in the list%s", s, "");
        if ((r = parse_item(e, idx, p, end, err)) < 0)
            return r;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

static int parse_cron(const char *body, sched_expr_t *e, mf_error_t *err)
{
    char buf[SCHED_EXPR_MAX + 1];
    snprintf(buf, sizeof buf, "%s", body);
    char *parts[7];
    int n = 0;
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        if (n == 7)
            break;
        parts[n++] = t;
    }
    if (n != 6)
        return mf_error_plain(err, EINVAL,
                              "cron: needs six fields (minutes hours day-of-month month "
                              "day-of-week year), not %d",
                              n > 6 ? 7 : n);
    for (int i = 0; i < 6; i++) {
        int r = parse_field(e, i, parts[i], err);
        if (r < 0)
            return r;
    }
    bool mday_set = !e->mday_any, wday_set = !e->wday_any;
    if (mday_set == wday_set)
        return mf_error_plain(err, EINVAL,
                              "cron: exactly one of day of month and day of week must be `?` "
                              "(the other says which days)");
    return 0;
}

static int parse_rate(const char *body, sched_expr_t *e, mf_error_t *err)
{
    char unit[16];
    long long v = 0;
    const char *p = body;
    if (*p < '1' || *p > '9')
        return mf_error_plain(err, EINVAL,
                              "rate: needs `rate(VALUE UNIT)`, VALUE a positive "
                              "whole number");
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (*p - '0');
        if (v > 1000000)
            return mf_error_plain(err, EINVAL, "rate: VALUE is at most 1000000");
    }
    if (*p != ' ' || strlen(p + 1) >= sizeof unit)
        return mf_error_plain(err, EINVAL,
                              "rate: needs `rate(VALUE UNIT)`, UNIT minute(s), hour(s) or day(s)");
    snprintf(unit, sizeof unit, "%s", p + 1);
    static const struct {
        const char *one, *many;
        int64_t s;
    } units[] = {{"minute", "minutes", 60}, {"hour", "hours", 3600}, {"day", "days", 86400}};
    for (size_t i = 0; i < 3; i++) {
        if (!strcmp(unit, v == 1 ? units[i].one : units[i].many)) {
            e->rate_s = v * units[i].s;
            return 0;
        }
        if (!strcmp(unit, v == 1 ? units[i].many : units[i].one))
            return mf_error_plain(err, EINVAL, "rate: `%lld %s` should be `%lld %s`", v, unit, v,
                                  v == 1 ? units[i].one : units[i].many);
    }
    return mf_error_plain(err, EINVAL, "rate: `%s` is not a unit: minute(s), hour(s) or day(s)",
                          unit);
}

static int parse_at(const char *body, sched_expr_t *e, mf_error_t *err)
{
    int y, mo, d, h, mi, s, n = -1;
    if (strlen(body) != 19 ||
        sscanf(body, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &n) != 6 || n != 19 ||
        body[4] != '-' || body[7] != '-' || body[10] != 'T' || body[13] != ':' || body[16] != ':')
        return mf_error_plain(err, EINVAL, "at: needs `at(YYYY-MM-DDTHH:MM:SS)`");
    for (int i = 0; i < 19; i++)
        if (i != 4 && i != 7 && i != 10 && i != 13 && i != 16 && (body[i] < '0' || body[i] > '9'))
            return mf_error_plain(err, EINVAL, "at: needs `at(YYYY-MM-DDTHH:MM:SS)`");
    if (y < YEAR_MIN || y > YEAR_MAX || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) ||
        h > 23 || mi > 59 || s > 59)
        return mf_error_plain(err, EINVAL, "at: `%s` is not a date and time from %d to %d", body,
                              YEAR_MIN, YEAR_MAX);
    e->at_s = sched_civil_seconds(y, mo, d, h, mi, s);
    return 0;
}

int sched_expr_parse(const char *text, sched_expr_t *out, mf_error_t *err)
{
    memset(out, 0, sizeof *out);
    size_t n = text ? strnlen(text, SCHED_EXPR_MAX + 1) : 0;
    if (n == 0 || n > SCHED_EXPR_MAX)
        return mf_error_plain(err, EINVAL, "expression: must be 1 to %d characters",
                              SCHED_EXPR_MAX);
    static const struct {
        const char *prefix;
        sched_kind_t kind;
        int (*parse)(const char *body, sched_expr_t *e, mf_error_t *err);
    } kinds[] = {{"rate(", SCHED_RATE, parse_rate},
                 {"cron(", SCHED_CRON, parse_cron},
                 {"at(", SCHED_AT, parse_at}};
    for (size_t i = 0; i < 3; i++) {
        size_t p = strlen(kinds[i].prefix);
        if (strncmp(text, kinds[i].prefix, p))
            continue;
        if (text[n - 1] != ')')
            return mf_error_plain(err, EINVAL, "expression: `%s…` must end with `)`",
                                  kinds[i].prefix);
        char body[SCHED_EXPR_MAX + 1];
        snprintf(body, sizeof body, "%.*s", (int)(n - p - 1), text + p);
        for (const char *c = body; *c; c++)
            if ((unsigned char)*c < ' ' || (unsigned char)*c > '~')
                return mf_error_plain(err, EINVAL, "expression: only printable ASCII");
        out->kind = kinds[i].kind;
        return kinds[i].parse(body, out, err);
    }
    return mf_error_plain(err, EINVAL, "expression: must be rate(…), cron(…) or at(…)");
}

/* ---- the next time ----------------------------------------------------------- */

static bool year_ok(const sched_expr_t *e, int y)
{
    return y >= YEAR_MIN && y <= YEAR_MAX &&
           (e->years[(y - YEAR_MIN) / 8] >> ((y - YEAR_MIN) % 8) & 1);
}

/* Whether the day y-m-d (days since the epoch: z) matches the day fields. */
static bool day_ok(const sched_expr_t *e, int y, int m, int d, int64_t z)
{
    int last = days_in_month(y, m), wd = weekday(z);
    if (e->wday_any) { /* the day of month decides */
        if (e->mday_last)
            return d == last - e->mday_last_offset;
        if (e->mday_last_weekday || e->mday_weekday) {
            int target = e->mday_last_weekday ? last : e->mday_weekday;
            if (target > last)
                return false;
            /* The weekday nearest target, within the month. */
            int twd = weekday(z - d + target);
            int t = target;
            if (twd == 7)
                t = target == 1 ? target + 2 : target - 1;
            else if (twd == 1)
                t = target == last ? target - 2 : target + 1;
            return d == t;
        }
        return e->mdays >> d & 1;
    }
    if (e->wday_last)
        return wd == e->wday_last && d + 7 > last;
    if (e->wday_nth)
        return wd == e->wday_nth_day && (d - 1) / 7 + 1 == e->wday_nth;
    return e->wdays >> wd & 1;
}

int sched_expr_next(const sched_expr_t *e, int64_t start_s, int64_t after_s, int64_t *next)
{
    if (e->kind == SCHED_AT) {
        if (e->at_s <= after_s)
            return -ENOENT;
        *next = e->at_s;
        return 0;
    }
    if (e->kind == SCHED_RATE) {
        if (after_s < start_s) {
            *next = start_s;
            return 0;
        }
        *next = start_s + (floor_div(after_s - start_s, e->rate_s) + 1) * e->rate_s;
        return 0;
    }
    /* cron: the first whole minute after after_s, day by day. */
    int64_t t = floor_div(after_s, 60) * 60 + 60;
    int64_t z = floor_div(t, 86400);
    int64_t first_minute = (t - z * 86400) / 60;
    int64_t z_end = days_from_civil(YEAR_MAX, 12, 31);
    for (; z <= z_end; z++, first_minute = 0) {
        int y, m, d;
        civil_from_days(z, &y, &m, &d);
        if (y < YEAR_MIN)
            continue;
        if (!year_ok(e, y)) {
            z = days_from_civil(y + 1, 1, 1) - 1;
            continue;
        }
        if (!(e->months >> m & 1)) {
            z = days_from_civil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) - 1;
            continue;
        }
        if (!day_ok(e, y, m, d, z))
            continue;
        for (int64_t mm = first_minute; mm < 1440; mm++) {
            if (e->hours >> (mm / 60) & 1 && e->minutes >> (mm % 60) & 1) {
                *next = z * 86400 + mm * 60;
                return 0;
            }
        }
    }
    return -ENOENT;
}
