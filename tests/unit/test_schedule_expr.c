/* Schedule expressions (src/trigger/schedule_expr.h): what parses, what is
 * refused and why, and the next times against a table worked out by hand
 * (and checked with Python's calendar): month ends, L, W, #, leap years. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "trigger/schedule_expr.h"

#define T(y, mo, d, h, mi) sched_civil_seconds(y, mo, d, h, mi, 0)

static void fmt(int64_t s, char *out, size_t n)
{
    int y, mo, d, h, mi, se, wd;
    sched_civil_split(s, &y, &mo, &d, &h, &mi, &se, &wd);
    snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d", y, mo, d, h, mi, se);
}

static void expect_next(const char *text, int64_t after, const char *want)
{
    sched_expr_t e;
    mf_error_t err = MF_ERROR_INIT;
    if (sched_expr_parse(text, &e, &err) < 0)
        fail_msg("%s: refused: %s", text, err.msg);
    int64_t next = 0;
    int r = sched_expr_next(&e, 0, after, &next);
    char got[32] = "never";
    if (r == 0)
        fmt(next, got, sizeof got);
    if (strcmp(got, want)) {
        char a[32];
        fmt(after, a, sizeof a);
        fail_msg("%s after %s: got %s, want %s", text, a, got, want);
    }
}

static void test_civil_time_round_trips(void **state)
{
    (void)state;
    int64_t s = T(2026, 12, 6, 2, 44);
    int y, mo, d, h, mi, se, wd;
    sched_civil_split(s, &y, &mo, &d, &h, &mi, &se, &wd);
    assert_int_equal(y, 2026);
    assert_int_equal(mo, 12);
    assert_int_equal(d, 6);
    assert_int_equal(h, 2);
    assert_int_equal(mi, 44);
    assert_int_equal(wd, 1); /* a Sunday */
    assert_int_equal(T(1970, 1, 1, 0, 0), 0);
    assert_int_equal(T(2000, 3, 1, 0, 0) - T(2000, 2, 28, 0, 0), 2 * 86400); /* leap */
    assert_int_equal(T(2100, 3, 1, 0, 0) - T(2100, 2, 28, 0, 0), 86400);     /* not leap */
}

static void test_cron_next_times(void **state)
{
    (void)state;
    int64_t sat = T(2026, 12, 5, 12, 0); /* Saturday noon */
    expect_next("cron(0 10 * * ? *)", sat, "2026-12-06T10:00:00");
    expect_next("cron(15 12 * * ? *)", sat, "2026-12-05T12:15:00");
    expect_next("cron(0 12 * * ? *)", sat, "2026-12-06T12:00:00"); /* strictly after */
    expect_next("cron(0 18 ? * MON-FRI *)", sat, "2026-12-07T18:00:00");
    expect_next("cron(0 18 ? * 2-6 *)", sat, "2026-12-07T18:00:00");
    expect_next("cron(0 8 1 * ? *)", sat, "2027-01-01T08:00:00");
    expect_next("cron(0/15 * * * ? *)", T(2026, 12, 5, 12, 7), "2026-12-05T12:15:00");
    expect_next("cron(0/15 * * * ? *)", T(2026, 12, 5, 23, 50), "2026-12-06T00:00:00");
    expect_next("cron(5,35 14 * * ? *)", T(2026, 12, 5, 14, 5), "2026-12-05T14:35:00");
    expect_next("cron(0 9 ? JAN,jul MON *)", sat, "2027-01-04T09:00:00");
    expect_next("cron(* * * * ? *)", T(2026, 12, 31, 23, 59), "2027-01-01T00:00:00");
    /* Month ends and leap years. */
    expect_next("cron(0 0 L * ? *)", T(2027, 2, 10, 0, 0), "2027-02-28T00:00:00");
    expect_next("cron(0 0 L * ? *)", T(2028, 2, 10, 0, 0), "2028-02-29T00:00:00");
    expect_next("cron(0 0 L-2 * ? *)", T(2027, 2, 10, 0, 0), "2027-02-26T00:00:00");
    expect_next("cron(0 0 31 * ? *)", T(2027, 4, 1, 0, 0), "2027-05-31T00:00:00");
    expect_next("cron(0 0 29 2 ? *)", T(2026, 12, 5, 0, 0), "2028-02-29T00:00:00");
    /* The weekday nearest a day, within its month. */
    expect_next("cron(0 0 15W * ? *)", T(2026, 8, 1, 0, 0), "2026-08-14T00:00:00");
    expect_next("cron(0 0 15W * ? *)", T(2026, 11, 1, 0, 0), "2026-11-16T00:00:00");
    expect_next("cron(0 0 1W * ? *)", T(2026, 7, 31, 0, 0), "2026-08-03T00:00:00");
    expect_next("cron(0 0 1W * ? *)", T(2026, 10, 31, 0, 0), "2026-11-02T00:00:00");
    expect_next("cron(0 0 LW * ? *)", T(2026, 11, 1, 0, 0), "2026-11-30T00:00:00");
    /* Last and nth weekdays. */
    expect_next("cron(0 0 ? * 6L *)", T(2027, 1, 1, 0, 0), "2027-01-29T00:00:00");
    expect_next("cron(0 0 ? * FRIL *)", T(2027, 2, 1, 0, 0), "2027-02-26T00:00:00");
    expect_next("cron(0 0 ? * 2#1 *)", T(2026, 12, 31, 0, 0), "2027-01-04T00:00:00");
    expect_next("cron(0 0 ? * MON#1 *)", T(2027, 1, 5, 0, 0), "2027-02-01T00:00:00");
    expect_next("cron(0 0 ? * L *)", sat, "2026-12-12T00:00:00");
    /* Years. */
    expect_next("cron(0 0 1 1 ? 2030-2032)", sat, "2030-01-01T00:00:00");
    expect_next("cron(0 0 1 1 ? 2025)", sat, "never");
    expect_next("cron(0 0 30 2 ? *)", sat, "never");
    expect_next("cron(0 0 ? * 2#5 2027)", sat, "2027-03-29T00:00:00");
}

static void test_rate_and_at(void **state)
{
    (void)state;
    sched_expr_t e;
    mf_error_t err = MF_ERROR_INIT;
    int64_t next;
    assert_int_equal(sched_expr_parse("rate(5 minutes)", &e, &err), 0);
    assert_int_equal(e.rate_s, 300);
    assert_int_equal(sched_expr_next(&e, 1000, 1000, &next), 0);
    assert_int_equal(next, 1300);
    assert_int_equal(sched_expr_next(&e, 1000, 1299, &next), 0);
    assert_int_equal(next, 1300);
    assert_int_equal(sched_expr_next(&e, 1000, 999, &next), 0);
    assert_int_equal(next, 1000);
    assert_int_equal(sched_expr_parse("rate(1 hour)", &e, &err), 0);
    assert_int_equal(e.rate_s, 3600);
    assert_int_equal(sched_expr_parse("rate(2 days)", &e, &err), 0);
    assert_int_equal(e.rate_s, 2 * 86400);
    expect_next("at(2026-12-24T18:00:00)", T(2026, 12, 5, 0, 0), "2026-12-24T18:00:00");
    expect_next("at(2026-12-24T18:00:00)", T(2026, 12, 24, 18, 0), "never");
}

static void test_bad_expressions_name_the_problem(void **state)
{
    (void)state;
    static const struct {
        const char *text, *msg;
    } bad[] = {
        {"", "expression: must be 1 to"},
        {"every 5 minutes", "expression: must be rate(…), cron(…) or at(…)"},
        {"rate(5 minutes", "expression: `rate(…` must end with `)`"},
        {"rate(0 minutes)", "rate: needs `rate(VALUE UNIT)`, VALUE a positive"},
        {"rate(1 minutes)", "rate: `1 minutes` should be `1 minute`"},
        {"rate(5 minute)", "rate: `5 minute` should be `5 minutes`"},
        {"rate(5 weeks)", "rate: `weeks` is not a unit"},
        {"rate(5000000 days)", "rate: VALUE is at most 1000000"},
        {"rate(5)", "rate: needs `rate(VALUE UNIT)`, UNIT"},
        {"cron(0 12 * * *)", "cron: needs six fields"},
        {"cron(0 12 * * ? * *)", "cron: needs six fields"},
        {"cron(60 12 * * ? *)", "cron: field 1 (minutes): `60`: not a value in 0-59"},
        {"cron(0 24 * * ? *)", "cron: field 2 (hours): `24`: not a value in 0-23"},
        {"cron(0 12 32 * ? *)", "cron: field 3 (day of month): `32`: not a value in 1-31"},
        {"cron(0 12 * 13 ? *)", "cron: field 4 (month): `13`: not a value in 1-12"},
        {"cron(0 12 * FOO ? *)", "cron: field 4 (month): `FOO`"},
        {"cron(0 12 ? * 8 *)", "cron: field 5 (day of week): `8`"},
        {"cron(0 12 * * ? 1969)", "cron: field 6 (year): `1969`"},
        {"cron(0 12 * * * *)", "cron: exactly one of day of month and day of week"},
        {"cron(0 12 ? * ? *)", "cron: exactly one of day of month and day of week"},
        {"cron(0 12 1 * 2 *)", "cron: exactly one of day of month and day of week"},
        {"cron(? 12 * * ? *)", "cron: field 1 (minutes): `?` is only"},
        {"cron(5-1 12 * * ? *)", "the range ends before it starts"},
        {"cron(0/0 12 * * ? *)", "the step must be from 1"},
        {"cron(0/ 12 * * ? *)", "a step needs a number"},
        {"cron(0,,5 12 * * ? *)", "an empty item in the list"},
        {"cron(0 12 L-31 * ? *)", "L-N needs N from 1 to 30"},
        {"cron(0 12 ? * 2#6 *)", "N#K needs a day of the week and K from 1 to 5"},
        {"cron(0 12 ? * 9L *)", "NL needs a day of the week"},
        {"cron(0 12 32W * ? *)", "NW needs N from 1 to 31"},
        {"at(2026-02-29T00:00:00)", "at: `2026-02-29T00:00:00` is not a date"},
        {"at(2026-12-24 18:00:00)", "at: needs `at(YYYY-MM-DDTHH:MM:SS)`"},
        {"at(2026-12-24T18:00)", "at: needs"},
        {"at(+026-12-24T18:00:00)", "at: needs"},
        {"cron(0\t12 * * ? *)", "expression: only printable ASCII"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sched_expr_t e;
        mf_error_t err = MF_ERROR_INIT;
        if (sched_expr_parse(bad[i].text, &e, &err) != -EINVAL)
            fail_msg("accepted `%s`", bad[i].text);
        if (!strstr(err.msg, bad[i].msg))
            fail_msg("`%s`: got `%s`, want `%s`", bad[i].text, err.msg, bad[i].msg);
    }
    char long_text[SCHED_EXPR_MAX + 8];
    memset(long_text, 'x', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    sched_expr_t e;
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(sched_expr_parse(long_text, &e, &err), -EINVAL);
    assert_int_equal(sched_expr_parse(NULL, &e, &err), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_civil_time_round_trips),
        cmocka_unit_test(test_cron_next_times),
        cmocka_unit_test(test_rate_and_at),
        cmocka_unit_test(test_bad_expressions_name_the_problem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
