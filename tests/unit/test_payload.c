/* A record's payload: what is kept byte for byte, what is redacted (at any
 * depth, any value, names in any case and spelled with escapes) and what is
 * not (longer names, names as values), what is not JSON, what is refused as
 * too deep, the cut at the maximum (never inside a UTF-8 sequence), the
 * kinds, and payloads of many megabytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/xalloc.h"
#include "obs/payload.h"

/* ---- helpers ------------------------------------------------------------------- */

static const obs_payload_policy_t defaults = {
    obs_payload_default_redact,
    OBS_PAYLOAD_N_DEFAULT_REDACT,
    OBS_PAYLOAD_MAX_DEFAULT,
};

static obs_payload_policy_t with_max(size_t max)
{
    obs_payload_policy_t p = defaults;
    p.max_bytes = max;
    return p;
}

/* Checks the fields every result has, whatever the input. */
static void sane(const obs_payload_t *p, size_t len, size_t max)
{
    assert_int_equal(p->full_len, len);
    if (p->refused) {
        assert_null(p->data);
        assert_int_equal(p->len, 0);
        return;
    }
    assert_non_null(p->data);
    assert_true(p->len <= max);
    assert_int_equal(p->data[p->len], '\0');
    if (p->kind == OBS_PAYLOAD_JSON)
        assert_false(p->truncated);
}

static obs_payload_t make_with(const obs_payload_policy_t *policy, const char *in, size_t len)
{
    obs_payload_t p;
    obs_payload_make(policy, in, len, &p);
    sane(&p, len, policy ? policy->max_bytes : OBS_PAYLOAD_MAX_DEFAULT);
    return p;
}

/* in under the default policy must be stored as want, with the kind and
 * flags given. */
static void expect(const char *in, const char *want, bool redacted, obs_payload_kind_t kind)
{
    obs_payload_t p = make_with(&defaults, in, strlen(in));
    assert_false(p.refused);
    if (p.len != strlen(want) || memcmp(p.data, want, p.len))
        fail_msg("payload\n  `%s`\nstored as\n  `%.*s`\nexpected\n  `%s`", in, (int)p.len, p.data,
                 want);
    if (p.redacted != redacted)
        fail_msg("`%s`: redacted is %d", in, p.redacted);
    if (p.kind != kind)
        fail_msg("`%s`: kind %d, expected %d", in, p.kind, kind);
    assert_false(p.truncated);
    obs_payload_release(&p);
}

/* Stored exactly as it came, as JSON. */
static void kept(const char *in)
{
    expect(in, in, false, OBS_PAYLOAD_JSON);
}

/* Not JSON: stored as it came, as text. */
static void not_json(const char *in)
{
    expect(in, in, false, OBS_PAYLOAD_TEXT);
}

static void redacts(const char *in, const char *want)
{
    expect(in, want, true, OBS_PAYLOAD_JSON);
}

static char *repeat(const char *s, size_t n)
{
    size_t len = strlen(s);
    char *out = xmalloc(len * n + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(out + i * len, s, len);
    out[len * n] = '\0';
    return out;
}

/* ---- what is kept --------------------------------------------------------------- */

static void test_nothing_to_redact(void **state)
{
    kept("{}");
    kept("[]");
    kept("0");
    kept("-0.5e+10");
    kept("\"password\"");
    kept("true");
    kept("null");
    kept("  {\"a\" : 1 ,\n\t\"b\":[true,false,null, \"x\\\"y\"] }\r\n");
    kept("{\"user\":\"ann\",\"items\":[1,2,{\"q\":3}],\"note\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}");
    kept("{\"a\":\"\\u0000\\ud800\\n\\/\"}");
    kept("[1e999, 123456789012345678901234567890, -0, 0.0E-0]");
    /* A value that is "[redacted]" already is nothing to do. */
    kept("{\"password\":\"[redacted]\"}");
}

static void test_not_json(void **state)
{
    not_json("hello");
    not_json("{\"password\":\"x\",}");
    not_json("{\"password\":NaN}");
    not_json("{\"password\":Infinity}");
    not_json("{'password':'x'}");
    not_json("{password:\"x\"}");
    not_json("{\"password\":\"x\"} trailing");
    not_json("{\"password\":\"x\"}{}");
    not_json("{\"password\":\"x\"} // comment");
    not_json("/* c */ {\"password\":\"x\"}");
    not_json("{\"password\" \"x\"}");
    not_json("{\"password\":}");
    not_json("{\"password\":\"x\"");
    not_json("{\"password\":\"x\"]");
    not_json("[\"password\"}");
    not_json("{\"password\":\"x\\u12\"}");
    not_json("{\"password\":\"x\\q\"}");
    not_json("{\"password\":\"x\\\"}");
    not_json("{\"password\":\"x\tb\"}");
    not_json("{\"pass\\u0077ord\":01}");
    not_json("{\"password\":-}");
    not_json("{\"password\":1.}");
    not_json("{\"password\":.5}");
    not_json("{\"password\":1e}");
    not_json("{\"password\":+1}");
    not_json("{\"password\":tru}");
    not_json("{\"password\":nulls}");
    not_json("{\"password\":\"x\",\"a\":[1,]}");
    not_json("[1 2]");
    not_json("\"unterminated");
    not_json("\f{\"password\":1}");
    not_json("{\"password\":1}\v");
    not_json("  ");
    not_json("\xc2\xa0{\"password\":1}");
}

/* ---- what is redacted ------------------------------------------------------------- */

static void test_depth(void **state)
{
    redacts("{\"a\":[{\"b\":{\"password\":\"hunter2\"}}],\"token\":\"t\"}",
            "{\"a\":[{\"b\":{\"password\":\"[redacted]\"}}],\"token\":\"[redacted]\"}");
    redacts("[[[[{\"secret\":1}]]],{\"x\":[{\"cookie\":\"c\"},{\"y\":{\"apikey\":\"k\"}}]}]",
            "[[[[{\"secret\":\"[redacted]\"}]]],{\"x\":[{\"cookie\":\"[redacted]\"},"
            "{\"y\":{\"apikey\":\"[redacted]\"}}]}]");
    /* A listed member inside a listed member's value goes with it. */
    redacts("{\"secret\":{\"token\":\"t\",\"a\":[{\"password\":1}]},\"b\":2}",
            "{\"secret\":\"[redacted]\",\"b\":2}");
    /* Members after a replaced container are still looked at. */
    redacts("{\"secret\":[{\"a\":1}],\"token\":{},\"password\":[],\"x\":{\"api_key\":0}}",
            "{\"secret\":\"[redacted]\",\"token\":\"[redacted]\",\"password\":\"[redacted]\","
            "\"x\":{\"api_key\":\"[redacted]\"}}");
}

static void test_value_types(void **state)
{
    redacts("{\"password\":\"s\"}", "{\"password\":\"[redacted]\"}");
    redacts("{\"password\":\"\"}", "{\"password\":\"[redacted]\"}");
    redacts("{\"password\":\"a\\\"b\\u0041\"}", "{\"password\":\"[redacted]\"}");
    redacts("{\"password\":12345}", "{\"password\":\"[redacted]\"}");
    redacts("{\"password\":-1.5e-3}", "{\"password\":\"[redacted]\"}");
    redacts("{\"password\":{\"a\":[1,{\"b\":\"c\"}]}}", "{\"password\":\"[redacted]\"}");
    redacts("{\"password\":[\"a\",1,null]}", "{\"password\":\"[redacted]\"}");
    redacts("{\"password\":true}", "{\"password\":\"[redacted]\"}");
    redacts("{\"password\":false}", "{\"password\":\"[redacted]\"}");
    redacts("{\"password\":null}", "{\"password\":\"[redacted]\"}");
    redacts("{\"password\":{}}", "{\"password\":\"[redacted]\"}");
    redacts("{\"password\":[]}", "{\"password\":\"[redacted]\"}");
    redacts("{\"password\":\"[REDACTED]\"}", "{\"password\":\"[redacted]\"}");
}

static void test_every_default_name(void **state)
{
    size_t n = 0;
    while (obs_payload_default_redact[n])
        n++;
    assert_int_equal(n, OBS_PAYLOAD_N_DEFAULT_REDACT);
    const char *want[] = {"password", "secret", "token",  "authorization",
                          "api_key",  "apikey", "cookie", "set-cookie"};
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(obs_payload_default_redact[i], want[i]);
        char in[128], out[128];
        snprintf(in, sizeof in, "{\"%s\":\"v\"}", want[i]);
        snprintf(out, sizeof out, "{\"%s\":\"[redacted]\"}", want[i]);
        redacts(in, out);
    }
}

static void test_case(void **state)
{
    redacts("{\"PassWord\":1,\"API_KEY\":2,\"Set-Cookie\":3,\"AUTHORIZATION\":4}",
            "{\"PassWord\":\"[redacted]\",\"API_KEY\":\"[redacted]\",\"Set-Cookie\":"
            "\"[redacted]\",\"AUTHORIZATION\":\"[redacted]\"}");
    /* Only ASCII letters fold: a dotless i is not an i. */
    kept("{\"AUTHOR\xc4\xb0ZATION\":1,\"token\xc4\xb1\":2}");
}

static void test_escaped_names(void **state)
{
    redacts("{\"pass\\u0077ord\":\"x\"}", "{\"pass\\u0077ord\":\"[redacted]\"}");
    redacts("{\"\\u0050\\u0041SSWORD\":\"x\"}", "{\"\\u0050\\u0041SSWORD\":\"[redacted]\"}");
    redacts("{\"\\u0074\\u006F\\u006b\\u0065\\u006E\":1}",
            "{\"\\u0074\\u006F\\u006b\\u0065\\u006E\":\"[redacted]\"}");
    redacts("{\"api\\u005fkey\":1,\"set\\u002dcookie\":2}",
            "{\"api\\u005fkey\":\"[redacted]\",\"set\\u002dcookie\":\"[redacted]\"}");
    redacts("{\"to\\/ken\":1,\"tok\\/en\":2,\"token\":3}",
            "{\"to\\/ken\":1,\"tok\\/en\":2,\"token\":\"[redacted]\"}");
    /* Escapes that decode to something else, and names with NULs or lone
     * surrogates in them, match nothing (and do not crash). */
    kept("{\"pass\\\\u0077ord\":1}");
    kept("{\"password\\u0000\":1,\"pass\\u0000word\":2,\"\\u0000password\":3}");
    kept("{\"password\\ud800\":1,\"\\udc00password\":2,\"pass\\ud83dword\":3}");
    kept("{\"password\\n\":1,\"password \":2,\" password\":3,\"pass word\":4}");
    not_json("{\"pass\\u00word\":1}");
    not_json("{\"pass\\xword\":1}");
    not_json("{\"password\\");
    not_json("{\"password\\u");
    not_json("{\"password\\ud800\\u");
}

static void test_non_ascii_names(void **state)
{
    static const char *const names[] = {"p\xc3\xa4sswort", "\xf0\x9f\x94\x91", "x"};
    obs_payload_policy_t pol = {names, 3, 1024};
    const char *in = "{\"P\\u00e4ssWORT\":1,\"\\ud83d\\udd11\":2,\"\xf0\x9f\x94\x91\":3,"
                     "\"p\xc3\xa4sswort\":4,\"P\xc3\x84SSWORT\":5,\"X\":6}";
    obs_payload_t p = make_with(&pol, in, strlen(in));
    /* Ä is not ä: only ASCII letters fold. */
    assert_string_equal(p.data,
                        "{\"P\\u00e4ssWORT\":\"[redacted]\",\"\\ud83d\\udd11\":\"[redacted]\","
                        "\"\xf0\x9f\x94\x91\":\"[redacted]\",\"p\xc3\xa4sswort\":"
                        "\"[redacted]\",\"P\xc3\x84SSWORT\":5,\"X\":\"[redacted]\"}");
    assert_true(p.redacted);
    assert_int_equal(p.kind, OBS_PAYLOAD_JSON);
    obs_payload_release(&p);
}

static void test_not_a_name(void **state)
{
    kept("{\"passwords\":1,\"my_token\":2,\"tokens\":3,\"xsecret\":4,\"secret_\":5,"
         "\"api-key\":6,\"cookies\":7,\"setcookie\":8,\"pass\":9}");
    /* A listed word as a value, an array element or the whole payload. */
    kept("{\"field\":\"password\",\"list\":[\"token\",\"secret\"],\"q\":{\"name\":\"cookie\"}}");
    kept("[\"password\",\"x\"]");
    kept("\"token\"");
    /* ... nor as the value of a listed member's neighbour. */
    redacts("{\"token\":\"token\",\"next\":\"password\"}",
            "{\"token\":\"[redacted]\",\"next\":\"password\"}");
}

static void test_multiple(void **state)
{
    redacts("{\"token\":1,\"token\":2,\"TOKEN\":3}",
            "{\"token\":\"[redacted]\",\"token\":\"[redacted]\",\"TOKEN\":\"[redacted]\"}");
    redacts("[{\"password\":\"a\"},{\"password\":\"b\"},{\"x\":1},{\"password\":\"c\"}]",
            "[{\"password\":\"[redacted]\"},{\"password\":\"[redacted]\"},{\"x\":1},"
            "{\"password\":\"[redacted]\"}]");
}

static void test_formatting_kept(void **state)
{
    redacts("\r\n\t {  \"password\"  :\n\t \"hunter2\"  ,\r\n  \"a\" : [ 1 , 2 ]\n}\n\t",
            "\r\n\t {  \"password\"  :\n\t \"[redacted]\"  ,\r\n  \"a\" : [ 1 , 2 ]\n}\n\t");
    redacts("{\"token\" : { \"a\" : 1 }  }", "{\"token\" : \"[redacted]\"  }");
}

/* ---- the secret never gets out ------------------------------------------------- */

static void test_secret_never_stored(void **state)
{
    const char *secret = "hunter2-S3CRET";
    char in[1024];
    snprintf(in, sizeof in,
             "{\"password\":\"%s\",\"a\":[{\"Token\":{\"deep\":[\"%s\"]}},"
             "{\"Authorization\":\"Bearer %s\"}],\"api_key\":[\"%s\",{\"k\":\"%s\"}],"
             "\"cookie\":\"s=%s; t=%s\",\"pass\\u0077ord\":\"%s\",\"b\":{\"c\":{\"d\":{"
             "\"set-cookie\":\"%s\"}}}}",
             secret, secret, secret, secret, secret, secret, secret, secret, secret);
    for (size_t max = 0; max <= strlen(in) + 1; max++) {
        obs_payload_policy_t pol = with_max(max);
        obs_payload_t p = make_with(&pol, in, strlen(in));
        if (memmem(p.data, p.len, "hunter2", 7))
            fail_msg("the secret is in the stored payload (max %zu): %s", max, p.data);
        assert_true(p.len > 0 || max == 0);
        assert_true(p.redacted);
        obs_payload_release(&p);
    }
}

/* ---- JSON that is not quite, and too deep ----------------------------------------- */

static void test_bom_and_bad_utf8(void **state)
{
    /* A leading BOM is skipped for redaction, kept in the bytes, and makes
     * the payload text. */
    expect("\xef\xbb\xbf{\"password\":\"x\"}", "\xef\xbb\xbf{\"password\":\"[redacted]\"}", true,
           OBS_PAYLOAD_TEXT);
    expect("\xef\xbb\xbf[1]", "\xef\xbb\xbf[1]", false, OBS_PAYLOAD_TEXT);
    not_json("\xef\xbb\xbf");
    /* A string with bytes that are not UTF-8 is still redacted; what is
     * stored is binary. */
    expect("{\"password\":\"x\",\"a\":\"\xff\"}", "{\"password\":\"[redacted]\",\"a\":\"\xff\"}",
           true, OBS_PAYLOAD_BINARY);
    /* ... and JSON again when those bytes were the secret. */
    expect("{\"password\":\"\xff\xfe\"}", "{\"password\":\"[redacted]\"}", true, OBS_PAYLOAD_JSON);
    /* Outside strings such bytes are no JSON at all. */
    expect("{\"password\":1}\xff", "{\"password\":1}\xff", false, OBS_PAYLOAD_BINARY);
}

static char *nested(size_t depth, const char *open, const char *inner, const char *close)
{
    buf_t b = BUF_INIT;
    for (size_t i = 0; i < depth; i++)
        buf_adds(&b, open);
    buf_adds(&b, inner);
    for (size_t i = 0; i < depth; i++)
        buf_adds(&b, close);
    return buf_detach(&b, NULL);
}

static void test_too_deep(void **state)
{
    obs_payload_policy_t pol = with_max(OBS_PAYLOAD_MAX_MAX);

    /* As deep as allowed: scanned and redacted. */
    char *in = nested(OBS_PAYLOAD_MAX_DEPTH - 1, "[", "{\"password\":1}", "]");
    obs_payload_t p = make_with(&pol, in, strlen(in));
    assert_false(p.refused);
    assert_true(p.redacted);
    assert_int_equal(p.kind, OBS_PAYLOAD_JSON);
    assert_non_null(strstr(p.data, "{\"password\":\"[redacted]\"}"));
    obs_payload_release(&p);
    free(in);

    in = nested(OBS_PAYLOAD_MAX_DEPTH, "[", "1", "]");
    p = make_with(&pol, in, strlen(in));
    assert_false(p.refused);
    assert_int_equal(p.kind, OBS_PAYLOAD_JSON);
    obs_payload_release(&p);
    free(in);

    /* One deeper: refused, even with nothing to redact. */
    const char *inners[] = {"{\"password\":1}", "[]", "{}", "[1]"};
    for (size_t i = 0; i < 4; i++) {
        in = nested(OBS_PAYLOAD_MAX_DEPTH, "[", inners[i], "]");
        p = make_with(&pol, in, strlen(in));
        assert_true(p.refused);
        assert_null(p.data);
        assert_false(p.redacted);
        obs_payload_release(&p);
        free(in);
    }
    in = nested(OBS_PAYLOAD_MAX_DEPTH + 1, "{\"a\":", "null", "}");
    p = make_with(&pol, in, strlen(in));
    assert_true(p.refused);
    obs_payload_release(&p);
    free(in);

    /* A secret before the depth is passed is no reason to store it. */
    char *deep = nested(600, "[", "0", "]");
    char *doc = xasprintf("{\"password\":\"hunter2\",\"x\":%s}", deep);
    p = make_with(&pol, doc, strlen(doc));
    assert_true(p.refused);
    assert_null(p.data);
    obs_payload_release(&p);
    free(doc);
    free(deep);

    /* Deep, but not JSON: kept as it came. */
    in = nested(OBS_PAYLOAD_MAX_DEPTH + 10, "[", "{\"password\":1}", "");
    p = make_with(&pol, in, strlen(in));
    assert_false(p.refused);
    assert_false(p.redacted);
    assert_int_equal(p.kind, OBS_PAYLOAD_TEXT);
    assert_memory_equal(p.data, in, strlen(in));
    obs_payload_release(&p);
    free(in);
    in = nested(OBS_PAYLOAD_MAX_DEPTH + 10, "[", "1", "}");
    p = make_with(&pol, in, strlen(in));
    assert_false(p.refused);
    assert_memory_equal(p.data, in, strlen(in));
    obs_payload_release(&p);
    free(in);
}

/* ---- truncation ------------------------------------------------------------------ */

static void test_truncation(void **state)
{
    /* Exactly at the limit: whole. */
    const char *in = "{\"a\":\"0123456789\"}";
    size_t len = strlen(in);
    obs_payload_policy_t pol = with_max(len);
    obs_payload_t p = make_with(&pol, in, len);
    assert_false(p.truncated);
    assert_int_equal(p.len, len);
    assert_int_equal(p.kind, OBS_PAYLOAD_JSON);
    obs_payload_release(&p);

    /* One byte over: cut, and text. */
    pol.max_bytes = len - 1;
    p = make_with(&pol, in, len);
    assert_true(p.truncated);
    assert_int_equal(p.len, len - 1);
    assert_int_equal(p.full_len, len);
    assert_memory_equal(p.data, in, len - 1);
    assert_int_equal(p.kind, OBS_PAYLOAD_TEXT);
    obs_payload_release(&p);

    /* Nothing kept at all. */
    pol.max_bytes = 0;
    p = make_with(&pol, in, len);
    assert_true(p.truncated);
    assert_int_equal(p.len, 0);
    assert_string_equal(p.data, "");
    obs_payload_release(&p);

    /* Redaction comes first: the redacted payload is what must fit. */
    in = "{\"token\":1}";
    len = strlen(in); /* 11; redacted, 22 */
    pol.max_bytes = 22;
    p = make_with(&pol, in, len);
    assert_false(p.truncated);
    assert_string_equal(p.data, "{\"token\":\"[redacted]\"}");
    assert_int_equal(p.kind, OBS_PAYLOAD_JSON);
    obs_payload_release(&p);
    pol.max_bytes = 21;
    p = make_with(&pol, in, len);
    assert_true(p.truncated);
    assert_true(p.redacted);
    assert_int_equal(p.full_len, 11);
    assert_string_equal(p.data, "{\"token\":\"[redacted]\"");
    assert_int_equal(p.kind, OBS_PAYLOAD_TEXT);
    obs_payload_release(&p);
    pol.max_bytes = 12;
    p = make_with(&pol, in, len);
    assert_string_equal(p.data, "{\"token\":\"[r");
    obs_payload_release(&p);
}

static void test_truncation_utf8(void **state)
{
    /* "ab", then é (2 bytes), € (3 bytes), 😀 (4 bytes), "z". */
    const char *in = "ab\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z";
    size_t len = strlen(in); /* 12 */
    /* For each max, where the cut must fall. */
    static const size_t want[] = {0, 1, 2, 2, 4, 4, 4, 7, 7, 7, 7, 11, 12};
    for (size_t max = 0; max <= len; max++) {
        obs_payload_policy_t pol = with_max(max);
        obs_payload_t p = make_with(&pol, in, len);
        if (p.len != want[max])
            fail_msg("max %zu: cut at %zu, expected %zu", max, p.len, want[max]);
        assert_int_equal(p.truncated, max < len);
        assert_memory_equal(p.data, in, p.len);
        assert_int_equal(p.kind, OBS_PAYLOAD_TEXT);
        obs_payload_release(&p);
    }

    /* Inside a JSON string, after a redaction. */
    in = "{\"token\":\"x\",\"s\":\"\xe2\x82\xac\xe2\x82\xac\"}";
    obs_payload_policy_t pol =
        with_max(strlen("{\"token\":\"[redacted]\",\"s\":\"\xe2\x82\xac") + 2);
    obs_payload_t p = make_with(&pol, in, strlen(in));
    assert_true(p.truncated);
    assert_string_equal(p.data, "{\"token\":\"[redacted]\",\"s\":\"\xe2\x82\xac");
    assert_int_equal(p.kind, OBS_PAYLOAD_TEXT);
    obs_payload_release(&p);

    /* Binary is cut at the limit, or before what looks like a lead byte's
     * unfinished sequence. */
    pol.max_bytes = 4;
    p = make_with(&pol, "\xff\xfe\xfd\xfc\xfb", 5);
    assert_int_equal(p.len, 4);
    assert_int_equal(p.kind, OBS_PAYLOAD_BINARY);
    obs_payload_release(&p);
    p = make_with(&pol, "\x80\x80\x80\x80\x80", 5);
    assert_int_equal(p.len, 4);
    obs_payload_release(&p);
    p = make_with(&pol, "\xff\xff\xff\xe2\x82\xac", 6);
    assert_int_equal(p.len, 3);
    assert_int_equal(p.kind, OBS_PAYLOAD_BINARY);
    obs_payload_release(&p);
}

/* ---- kinds ------------------------------------------------------------------------ */

static void test_kinds(void **state)
{
    expect("{\"a\":1}", "{\"a\":1}", false, OBS_PAYLOAD_JSON);
    expect(" 42 ", " 42 ", false, OBS_PAYLOAD_JSON);
    expect("hello, world\n", "hello, world\n", false, OBS_PAYLOAD_TEXT);
    expect("caf\xc3\xa9", "caf\xc3\xa9", false, OBS_PAYLOAD_TEXT);
    expect("\xff\xd8\xff\xe0", "\xff\xd8\xff\xe0", false, OBS_PAYLOAD_BINARY);
    /* Overlong forms, surrogates and code points past U+10FFFF are not UTF-8. */
    expect("a\xc0\x80", "a\xc0\x80", false, OBS_PAYLOAD_BINARY);
    expect("\xe0\x80\xaf", "\xe0\x80\xaf", false, OBS_PAYLOAD_BINARY);
    expect("\xed\xa0\x80", "\xed\xa0\x80", false, OBS_PAYLOAD_BINARY);
    expect("\xf4\x90\x80\x80", "\xf4\x90\x80\x80", false, OBS_PAYLOAD_BINARY);
    expect("\xf0\x9f\x98", "\xf0\x9f\x98", false, OBS_PAYLOAD_BINARY);
    expect("\"\xed\x9f\xbf\xf4\x8f\xbf\xbf\"", "\"\xed\x9f\xbf\xf4\x8f\xbf\xbf\"", false,
           OBS_PAYLOAD_JSON);

    /* NUL bytes are UTF-8, though never JSON outside a \u0000. */
    obs_payload_t p = make_with(&defaults, "a\0b", 3);
    assert_int_equal(p.kind, OBS_PAYLOAD_TEXT);
    assert_int_equal(p.len, 3);
    assert_memory_equal(p.data, "a\0b", 3);
    obs_payload_release(&p);
    p = make_with(&defaults, "{\"a\":\"\0\"}", 9);
    assert_int_equal(p.kind, OBS_PAYLOAD_TEXT);
    obs_payload_release(&p);
}

static void test_empty(void **state)
{
    obs_payload_t p = make_with(&defaults, "", 0);
    assert_non_null(p.data);
    assert_int_equal(p.len, 0);
    assert_false(p.truncated);
    assert_false(p.redacted);
    assert_false(p.refused);
    assert_int_equal(p.kind, OBS_PAYLOAD_TEXT);
    obs_payload_release(&p);
    assert_null(p.data);
    obs_payload_release(&p);
    obs_payload_release(NULL);

    obs_payload_make(&defaults, NULL, 0, &p);
    sane(&p, 0, 0);
    assert_int_equal(p.kind, OBS_PAYLOAD_TEXT);
    obs_payload_release(&p);
}

/* ---- policies ---------------------------------------------------------------------- */

static void test_policies(void **state)
{
    /* No policy: the defaults. */
    const char *in = "{\"password\":1}";
    obs_payload_t p = make_with(NULL, in, strlen(in));
    assert_string_equal(p.data, "{\"password\":\"[redacted]\"}");
    obs_payload_release(&p);
    char *big = repeat("x", OBS_PAYLOAD_MAX_DEFAULT + 1);
    p = make_with(NULL, big, strlen(big));
    assert_true(p.truncated);
    assert_int_equal(p.len, OBS_PAYLOAD_MAX_DEFAULT);
    obs_payload_release(&p);
    free(big);

    /* An empty list redacts nothing; a list of its own only its names. */
    obs_payload_policy_t none = {NULL, 0, 1024};
    p = make_with(&none, in, strlen(in));
    assert_string_equal(p.data, in);
    assert_false(p.redacted);
    obs_payload_release(&p);

    static const char *const mine[] = {"ssn", NULL, "Card-Number", ""};
    obs_payload_policy_t pol = {mine, 4, 1024};
    in = "{\"password\":1,\"SSN\":2,\"card-number\":3,\"\":4,\"card\":5}";
    p = make_with(&pol, in, strlen(in));
    assert_string_equal(p.data, "{\"password\":1,\"SSN\":\"[redacted]\",\"card-number\":"
                                "\"[redacted]\",\"\":\"[redacted]\",\"card\":5}");
    obs_payload_release(&p);

    /* A name longer than the inline buffer. */
    char *longname = repeat("k", 300);
    const char *const lng[] = {longname};
    obs_payload_policy_t lpol = {lng, 1, 4096};
    char *doc = xasprintf("{\"%s\":1,\"%sk\":2,\"%.299s\":3}", longname, longname, longname);
    p = make_with(&lpol, doc, strlen(doc));
    char *want =
        xasprintf("{\"%s\":\"[redacted]\",\"%sk\":2,\"%.299s\":3}", longname, longname, longname);
    assert_string_equal(p.data, want);
    obs_payload_release(&p);
    free(want);
    free(doc);
    free(longname);
}

static void test_idempotent(void **state)
{
    const char *in = "{\"a\":[{\"Token\":{\"x\":1}}],\"password\":\"p\",\"b\":\"[redacted]\"}";
    obs_payload_t p = make_with(&defaults, in, strlen(in));
    assert_true(p.redacted);
    obs_payload_t q = make_with(&defaults, p.data, p.len);
    assert_false(q.redacted);
    assert_int_equal(q.kind, OBS_PAYLOAD_JSON);
    assert_int_equal(q.len, p.len);
    assert_memory_equal(q.data, p.data, p.len);
    obs_payload_release(&p);
    obs_payload_release(&q);
}

/* ---- size ---------------------------------------------------------------------------- */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_big(void **state)
{
    const size_t four_mib = 4u << 20;
    obs_payload_policy_t pol = with_max(OBS_PAYLOAD_MAX_MAX);

    /* 4 MiB of records, each with a secret. */
    const char *rec = "{\"id\":12345,\"name\":\"a b c\",\"token\":\"hunter2\",\"v\":[1,2]},";
    size_t n = four_mib / strlen(rec);
    buf_t b = BUF_INIT;
    buf_addch(&b, '[');
    for (size_t i = 0; i < n; i++)
        buf_adds(&b, rec);
    b.data[b.len - 1] = ']';
    double t0 = now();
    obs_payload_t p = make_with(&pol, b.data, b.len);
    double t1 = now();
    assert_true(p.redacted);
    assert_true(p.truncated);
    assert_int_equal(p.full_len, b.len);
    assert_int_equal(p.len, OBS_PAYLOAD_MAX_MAX);
    assert_int_equal(p.kind, OBS_PAYLOAD_TEXT);
    assert_null(memmem(p.data, p.len, "hunter2", 7));
    obs_payload_release(&p);

    /* Everything fits when the maximum allows. */
    pol.max_bytes = SIZE_MAX;
    p = make_with(&pol, b.data, b.len);
    assert_false(p.truncated);
    assert_int_equal(p.kind, OBS_PAYLOAD_JSON);
    assert_int_equal(p.len, b.len + n * strlen("\"[redacted]\"") - n * strlen("\"hunter2\""));
    assert_null(memmem(p.data, p.len, "hunter2", 7));
    obs_payload_release(&p);
    buf_release(&b);
    pol.max_bytes = OBS_PAYLOAD_MAX_MAX;

    /* 4 MiB with nothing to redact: the first MiB as it came. */
    char *recs = repeat("{\"k\":\"v\"},", four_mib / 10);
    recs[strlen(recs) - 1] = '\0';
    char *text = xasprintf("[%s]", recs);
    free(recs);
    p = make_with(&pol, text, strlen(text));
    assert_false(p.redacted);
    assert_true(p.truncated);
    assert_memory_equal(p.data, text, OBS_PAYLOAD_MAX_MAX);
    obs_payload_release(&p);
    free(text);

    /* One 4 MiB string, a secret. */
    b = (buf_t)BUF_INIT;
    buf_adds(&b, "{\"secret\":\"");
    for (size_t i = 0; i < four_mib; i++)
        buf_addch(&b, (char)('a' + i % 26));
    buf_adds(&b, "\"}");
    p = make_with(&pol, b.data, b.len);
    assert_string_equal(p.data, "{\"secret\":\"[redacted]\"}");
    assert_int_equal(p.kind, OBS_PAYLOAD_JSON);
    obs_payload_release(&p);
    buf_release(&b);

    /* Four million brackets: no stack to overflow. */
    char *deep = nested(2u << 20, "[", "", "]");
    p = make_with(&pol, deep, strlen(deep));
    assert_true(p.refused);
    obs_payload_release(&p);
    deep[strlen(deep) - 1] = '}';
    p = make_with(&pol, deep, strlen(deep));
    assert_false(p.refused);
    assert_int_equal(p.kind, OBS_PAYLOAD_TEXT);
    obs_payload_release(&p);
    free(deep);

    print_message("4 MiB of records with secrets: %.1f ms\n", (t1 - t0) * 1e3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nothing_to_redact),
        cmocka_unit_test(test_not_json),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_value_types),
        cmocka_unit_test(test_every_default_name),
        cmocka_unit_test(test_case),
        cmocka_unit_test(test_escaped_names),
        cmocka_unit_test(test_non_ascii_names),
        cmocka_unit_test(test_not_a_name),
        cmocka_unit_test(test_multiple),
        cmocka_unit_test(test_formatting_kept),
        cmocka_unit_test(test_secret_never_stored),
        cmocka_unit_test(test_bom_and_bad_utf8),
        cmocka_unit_test(test_too_deep),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_truncation_utf8),
        cmocka_unit_test(test_kinds),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_policies),
        cmocka_unit_test(test_idempotent),
        cmocka_unit_test(test_big),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
