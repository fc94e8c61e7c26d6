/* clock_parse_rfc3339: the times a user gives ?since= and ?until=, and
 * what it refuses. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <cmocka.h>

#include "core/clock.h"

static int64_t parse_ok(const char *s)
{
    int64_t ms = -42;
    int r = clock_parse_rfc3339(s, &ms);
    if (r != 0)
        fail_msg("`%s` was refused (%d)", s, r);
    return ms;
}

static void test_utc_times(void **state)
{
    assert_int_equal(parse_ok("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(parse_ok("2026-12-05T10:00:00Z"), 1796464800000LL);
    assert_int_equal(parse_ok("2000-02-29T23:59:59Z"), 951868799000LL);
    assert_int_equal(parse_ok("1969-12-31T23:59:59Z"), -1000);
    assert_int_equal(parse_ok("0000-01-01T00:00:00Z"), -62167219200000LL);
    assert_int_equal(parse_ok("9999-12-31T23:59:59Z"), 253402300799000LL);
}

static void test_fractions_are_cut_to_milliseconds(void **state)
{
    assert_int_equal(parse_ok("2026-12-05T10:00:00.5Z"), 1796464800500LL);
    assert_int_equal(parse_ok("2026-12-05T10:00:00.25Z"), 1796464800250LL);
    assert_int_equal(parse_ok("2026-12-05T10:00:00.123Z"), 1796464800123LL);
    assert_int_equal(parse_ok("2026-12-05T10:00:00.123999999Z"), 1796464800123LL);
    assert_int_equal(parse_ok("2026-12-05T10:00:00.000Z"), 1796464800000LL);
}

static void test_offsets(void **state)
{
    int64_t utc = parse_ok("2026-12-05T10:00:00Z");
    assert_int_equal(parse_ok("2026-12-05T12:00:00+02:00"), utc);
    assert_int_equal(parse_ok("2026-12-05T04:30:00-05:30"), utc);
    assert_int_equal(parse_ok("2026-12-05T10:00:00+00:00"), utc);
    assert_int_equal(parse_ok("2026-12-05T10:00:00-00:00"), utc);
    /* Across a day, a month and a year. */
    assert_int_equal(parse_ok("2027-01-01T01:00:00+14:59") / 1000,
                     parse_ok("2026-12-31T10:01:00Z") / 1000);
    assert_int_equal(parse_ok("2026-12-05T12:00:00.250+02:00"), utc + 250);
}

static void test_lenient_spellings_rfc3339_allows(void **state)
{
    int64_t utc = parse_ok("2026-12-05T10:00:00Z");
    assert_int_equal(parse_ok("2026-12-05t10:00:00z"), utc);
    assert_int_equal(parse_ok("2026-12-05 10:00:00Z"), utc);
    /* A leap second is the first second of the next minute. */
    assert_int_equal(parse_ok("2016-12-31T23:59:60Z"), parse_ok("2017-01-01T00:00:00Z"));
}

static void test_round_trips_what_records_show(void **state)
{
    static const int64_t times[] = { 0, 1, 999, 1000, 1796464800123LL, 951868799999LL,
                                     4102444800000LL };
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        char s[32];
        clock_format_iso8601(times[i], s, sizeof s);
        assert_int_equal(parse_ok(s), times[i]);
    }
}

static void test_agrees_with_timegm(void **state)
{
    /* Every day of a few years, leap and not, at a time with every field
     * set. */
    for (int y = 1999; y <= 2001; y++) {
        for (int yday = 0; yday < 366; yday++) {
            struct tm tm = { .tm_year = y - 1900, .tm_mon = 0, .tm_mday = 1 + yday,
                             .tm_hour = 13, .tm_min = 14, .tm_sec = 15 };
            time_t t = timegm(&tm); /* normalises tm to the real date */
            if (tm.tm_year != y - 1900)
                break;
            char s[40];
            snprintf(s, sizeof s, "%04d-%02d-%02dT%02d:%02d:%02d.678Z", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
            assert_int_equal(parse_ok(s), (int64_t)t * 1000 + 678);
        }
    }
}

static void test_refuses_what_is_not_rfc3339(void **state)
{
    static const char *const bad[] = {
        "",
        "2026",
        "2026-12-05",
        "2026-12-05T10:00",
        "2026-12-05T10:00:00",         /* no offset */
        "2026-12-05T10:00:00.Z",       /* a dot without digits */
        "2026-12-05T10:00:00ZZ",
        "2026-12-05T10:00:00Z ",
        " 2026-12-05T10:00:00Z",
        "2026-12-05T10:00:00+0200",    /* the colon is required */
        "2026-12-05T10:00:00+02",
        "2026-12-05T10:00:00+24:00",
        "2026-12-05T10:00:00+02:60",
        "2026-12-05X10:00:00Z",
        "2026-13-05T10:00:00Z",
        "2026-00-05T10:00:00Z",
        "2026-12-00T10:00:00Z",
        "2026-12-32T10:00:00Z",
        "2026-02-29T10:00:00Z",        /* not a leap year */
        "1900-02-29T10:00:00Z",
        "2026-04-31T10:00:00Z",
        "2026-12-05T24:00:00Z",
        "2026-12-05T10:60:00Z",
        "2026-12-05T10:00:61Z",
        "26-12-05T10:00:00Z",
        "+2026-12-05T10:00:00Z",
        "2026-1-05T10:00:00Z",
        "2026-12-05T1:00:00Z",
        "1796464800000",
        "yesterday",
        "2026-12-05T10:00:00 02:00",   /* '+' read as a space from a form */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = 7;
        int r = clock_parse_rfc3339(bad[i], &ms);
        if (r != -EINVAL)
            fail_msg("`%s` gave %d, expected -EINVAL", bad[i], r);
        assert_int_equal(ms, 7);
    }
    assert_int_equal(parse_ok("2024-02-29T10:00:00Z"), parse_ok("2024-03-01T10:00:00Z") -
                                                           86400000);
    assert_int_equal(parse_ok("2000-02-29T00:00:00Z"), 951782400000LL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utc_times),
        cmocka_unit_test(test_fractions_are_cut_to_milliseconds),
        cmocka_unit_test(test_offsets),
        cmocka_unit_test(test_lenient_spellings_rfc3339_allows),
        cmocka_unit_test(test_round_trips_what_records_show),
        cmocka_unit_test(test_agrees_with_timegm),
        cmocka_unit_test(test_refuses_what_is_not_rfc3339),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
