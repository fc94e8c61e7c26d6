/* The registry over a real store and code directory: every validation rule
 * and the message it gives, defaults, aliases, updates and versions, and
 * the lifetime of code packages. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "zips.h"

#include "core/buf.h"
#include "core/cleanup.h"
#include "core/codec.h"
#include "core/fs.h"
#include "core/xalloc.h"
#include "egress/policy.h"
#include "registry/registry.h"
#include "store/store.h"

typedef struct fixture {
    char *dir;
    store_t *store;
    registry_t *reg;
    code_limits_t limits;
} fixture_t;

static const char *const zip_py[] = {"app.py", "def handler(e, c):\n    return e\n", NULL};
static const char *const zip_js[] = {"index.js", "exports.handler = async (e) => e;\n", NULL};

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!v)
        fail_msg("bad test JSON `%s`: %s", text, jerr.text);
    return v;
}

static void set_code(json_t *body, const char *const *files)
{
    buf_t zip = BUF_INIT, b64 = BUF_INIT;
    make_zip(&zip, files);
    codec_base64_encode(&b64, zip.data, zip.len);
    json_object_set_new(body, "code", json_pack("{s:s}", "zip_base64", b64.data));
    buf_release(&zip);
    buf_release(&b64);
}

static void sha_of(const char *const *files, char sha[65])
{
    buf_t zip = BUF_INIT;
    make_zip(&zip, files);
    codec_sha256_hex(sha, zip.data, zip.len);
    buf_release(&zip);
}

static int open_all(fixture_t *fx)
{
    mf_error_t err = MF_ERROR_INIT;
    if (store_open(fx->dir, &fx->store, &err) < 0 ||
        registry_open(fx->store, fx->dir, &fx->limits, &fx->reg, &err) < 0) {
        fprintf(stderr, "open: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static void close_all(fixture_t *fx)
{
    registry_close(fx->reg);
    store_close(fx->store);
    fx->reg = NULL;
    fx->store = NULL;
}

static int setup(void **state)
{
    fixture_t *fx = xcalloc(1, sizeof *fx);
    const char *tmp = getenv("TMPDIR");
    fx->dir = xasprintf("%s/mayfly-registry-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(fx->dir))
        return -1;
    fx->limits = (code_limits_t)CODE_LIMITS_DEFAULT;
    fx->limits.max_zip_bytes = 1u << 20;
    *state = fx;
    return open_all(fx);
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    close_all(fx);
    mf_error_t err = MF_ERROR_INIT;
    fs_rm_rf(fx->dir, &err);
    free(fx->dir);
    free(fx);
    return 0;
}

/* Puts body (text; code added from files unless files is NULL). */
static int put(fixture_t *fx, const char *name, const char *text, const char *const *files,
               fn_t *out, bool *created, mf_error_t *err)
{
    json_t *body = parse(text);
    if (files)
        set_code(body, files);
    fn_t tmp;
    bool c = false;
    int r = registry_put(fx->reg, name, body, out ? out : &tmp, created ? created : &c, err);
    if (r == 0 && !out)
        fn_clear(&tmp);
    json_decref(body);
    return r;
}

static void put_ok(fixture_t *fx, const char *name, const char *text, const char *const *files,
                   fn_t *out)
{
    mf_error_t err = MF_ERROR_INIT;
    int r = put(fx, name, text, files, out, NULL, &err);
    if (r < 0)
        fail_msg("put %s %s: %s", name, text, err.msg);
}

static int count_packages(const fixture_t *fx)
{
    cleanup_free char *root = xasprintf("%s/code", fx->dir);
    DIR *d = opendir(root);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* null puts a number back to its default; 0 concurrency (paused) is kept. */
static void test_null_restores_a_default(void **state)
{
    fixture_t *fx = *state;
    fn_t f;
    bool created = false;
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(put(fx, "nulls",
                         "{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"memory_mb\":256,"
                         "\"timeout_s\":9,\"max_concurrency\":0}",
                         zip_py, &f, &created, &err),
                     0);
    assert_int_equal(f.max_concurrency, 0);
    assert_int_equal(f.memory_mb, 256);
    fn_clear(&f);
    assert_int_equal(put(fx, "nulls", "{\"memory_mb\":null,\"max_concurrency\":null}", NULL, &f,
                         &created, &err),
                     0);
    assert_false(created);
    assert_int_equal(f.memory_mb, 128);
    assert_int_equal(f.max_concurrency, 10);
    assert_int_equal(f.timeout_s, 9);
    fn_clear(&f);
}

static void test_create_defaults(void **state)
{
    fixture_t *fx = *state;
    fn_t f;
    bool created = false;
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(put(fx, "hello", "{\"runtime\":\"python3\",\"handler\":\"app.handler\"}",
                         zip_py, &f, &created, &err),
                     0);
    assert_true(created);
    assert_string_equal(f.name, "hello");
    assert_string_equal(f.runtime, "python3");
    assert_string_equal(f.handler, "app.handler");
    assert_int_equal(f.memory_mb, 128);
    assert_int_equal(f.timeout_s, 3);
    assert_int_equal(f.max_concurrency, 10);
    assert_int_equal(f.tmp_mb, 64);
    assert_int_equal(json_object_size(f.env), 0);
    assert_true(json_is_array(f.egress));
    assert_int_equal(json_array_size(f.egress), 0);
    assert_int_equal(f.async.max_retries, 2);
    assert_int_equal(f.async.max_event_age_s, 21600);
    assert_string_equal(f.async.on_success, "");
    assert_string_equal(f.async.on_failure, "");
    assert_string_equal(f.log_format, "Text");
    assert_string_equal(f.log_level, "");
    assert_string_equal(f.system_log_level, "");
    assert_int_equal(f.version, 1);
    assert_int_equal(f.created_ms, f.updated_ms);
    char sha[65];
    sha_of(zip_py, sha);
    assert_string_equal(f.code_sha256, sha);
    assert_int_equal(f.code_size, strlen(zip_py[1]));

    cleanup_free char *dir = registry_code_dir(fx->reg, &f);
    cleanup_free char *want = xasprintf("%s/code/%s", fx->dir, sha);
    assert_string_equal(dir, want);
    cleanup_free char *app = xasprintf("%s/app.py", dir);
    assert_int_equal(access(app, R_OK), 0);

    /* What get returns is what put returned. */
    fn_t g;
    assert_int_equal(registry_get(fx->reg, "hello", &g, &err), 0);
    json_t *a = fn_to_json(&f), *b = fn_to_json(&g);
    assert_true(json_equal(a, b));
    json_decref(a);
    json_decref(b);
    fn_clear(&g);
    fn_clear(&f);
}

static void test_to_json_shape(void **state)
{
    fn_t f = {0};
    snprintf(f.name, sizeof f.name, "f");
    snprintf(f.runtime, sizeof f.runtime, "nodejs");
    snprintf(f.handler, sizeof f.handler, "index.handler");
    f.memory_mb = 256;
    f.timeout_s = 5;
    f.max_concurrency = 2;
    f.instance_concurrency = 4;
    f.tmp_mb = 64;
    f.env = json_pack("{s:s}", "A", "1");
    f.egress = json_pack("[s,s]", "api.example.com:443", "10.0.0.0/8");
    f.async.max_retries = 1;
    f.async.max_event_age_s = 60;
    snprintf(f.async.on_failure, sizeof f.async.on_failure, "dlq");
    snprintf(f.record.payloads, sizeof f.record.payloads, "errors");
    f.record.max_payload_kb = 8;
    f.record.n_redact = 1;
    snprintf(f.record.redact[0], sizeof f.record.redact[0], "ssn");
    snprintf(f.log_format, sizeof f.log_format, "JSON");
    snprintf(f.log_level, sizeof f.log_level, "DEBUG");
    f.version = 7;
    snprintf(f.code_sha256, sizeof f.code_sha256, "ab");
    f.code_size = 42;
    f.zip_size = 30;
    f.created_ms = 0;
    f.updated_ms = 1700000000123;
    json_t *j = fn_to_json(&f);
    char *text = json_dumps(j, JSON_COMPACT);
    assert_string_equal(
        text, "{\"name\":\"f\",\"runtime\":\"nodejs\",\"handler\":\"index.handler\","
              "\"memory_mb\":256,\"timeout_s\":5,\"max_concurrency\":2,\"tmp_mb\":64,"
              "\"env\":{\"A\":\"1\"},\"egress\":[\"api.example.com:443\",\"10.0.0.0/"
              "8\"],\"permissions\":[],\"volumes\":[],"
              "\"async\":{\"max_retries\":1,\"max_event_age_s\":60,"
              "\"on_success\":null,\"on_failure\":\"dlq\"},"
              "\"record\":{\"payloads\":\"errors\",\"max_payload_kb\":8,\"redact\":[\"ssn\"]},"
              "\"log_format\":\"JSON\","
              "\"log_level\":\"DEBUG\",\"system_log_level\":null,\"version\":7,"
              "\"code_sha256\":\"ab\","
              "\"code_size\":42,\"zip_size\":30,\"created\":\"1970-01-01T00:00:00.000Z\","
              "\"updated\":\"2023-11-14T22:13:20.123Z\",\"tenant\":\"default\",\"instance_concurrency\":4}");
    free(text);
    json_decref(j);
    fn_clear(&f);
}

static void test_runtime_aliases(void **state)
{
    fixture_t *fx = *state;
    static const struct {
        const char *given, *canonical, *handler;
    } cases[] = {
        {"python3", "python3", "app.handler"},     {"python3.9", "python3", "app.handler"},
        {"python3.13", "python3", "app.handler"},  {"nodejs", "nodejs", "index.handler"},
        {"nodejs18.x", "nodejs", "index.handler"}, {"nodejs20.x", "nodejs", "index.handler"},
        {"nodejs22.x", "nodejs", "index.handler"}, {"provided", "provided", ""},
        {"provided.al2", "provided", ""},          {"provided.al2023", "provided", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cleanup_free char *text =
            xasprintf("{\"runtime\":\"%s\",\"handler\":\"%s\"}", cases[i].given, cases[i].handler);
        fn_t f;
        put_ok(fx, "alias", text, zip_py, &f);
        assert_string_equal(f.runtime, cases[i].canonical);
        fn_clear(&f);
    }
}

typedef struct bad_case {
    const char *body;
    const char *msg; /* the message starts with this */
} bad_case_t;

/* Each body is refused on create with -EINVAL and a message that starts
 * with the field's name; code is added to each so that it is never the
 * reason. */
static const bad_case_t bad_cases[] = {
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"foo\":1}", "foo: unknown field"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"name\":\"other\"}",
     "name: does not match the name in the path"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"name\":7}",
     "name: does not match the name in the path"},
    {"{\"handler\":\"app.handler\"}", "runtime: required when creating a function"},
    {"{\"runtime\":\"java11\",\"handler\":\"app.handler\"}",
     "runtime: unsupported runtime `java11` (use python3, nodejs, java17, java21 or provided)"},
    {"{\"runtime\":\"python2.7\",\"handler\":\"app.handler\"}", "runtime: unsupported runtime"},
    {"{\"runtime\":\"python3.\",\"handler\":\"app.handler\"}", "runtime: unsupported runtime"},
    {"{\"runtime\":\"python3.x\",\"handler\":\"app.handler\"}", "runtime: unsupported runtime"},
    {"{\"runtime\":\"nodejs.x\",\"handler\":\"app.handler\"}", "runtime: unsupported runtime"},
    {"{\"runtime\":\"nodejs20\",\"handler\":\"app.handler\"}", "runtime: unsupported runtime"},
    {"{\"runtime\":\"provided.al3\"}", "runtime: unsupported runtime"},
    {"{\"runtime\":3,\"handler\":\"app.handler\"}", "runtime: must be a string"},
    {"{\"runtime\":\"python3\"}", "handler: required for runtime python3"},
    {"{\"runtime\":\"nodejs\"}", "handler: required for runtime nodejs"},
    {"{\"runtime\":\"python3\",\"handler\":\"app\"}", "handler: must look like `file.function`"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.\"}", "handler: must look like"},
    {"{\"runtime\":\"python3\",\"handler\":\".handler\"}", "handler: must look like"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.1x\"}", "handler: must look like"},
    {"{\"runtime\":\"python3\",\"handler\":\"my app.handler\"}", "handler: must look like"},
    {"{\"runtime\":\"python3\",\"handler\":5}", "handler: must be a string"},
    {"{\"runtime\":\"provided\",\"handler\":\"has space\"}",
     "handler: must be printable ASCII without spaces"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"memory_mb\":127}",
     "memory_mb: must be an integer from 128 to 10240"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"memory_mb\":10241}",
     "memory_mb: must be an integer from 128 to 10240"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"memory_mb\":256.0}",
     "memory_mb: must be an integer from 128 to 10240"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"memory_mb\":\"256\"}",
     "memory_mb: must be an integer from 128 to 10240"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"memory_mb\":true}",
     "memory_mb: must be an integer from 128 to 10240"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"memory_mb\":true}",
     "memory_mb: must be an integer from 128 to 10240"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"memory_mb\":99999999999999}",
     "memory_mb: must be an integer from 128 to 10240"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"timeout_s\":0}",
     "timeout_s: must be an integer from 1 to 900"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"timeout_s\":901}",
     "timeout_s: must be an integer from 1 to 900"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"max_concurrency\":-1}",
     "max_concurrency: must be an integer from 0 to 1000"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"max_concurrency\":1001}",
     "max_concurrency: must be an integer from 0 to 1000"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"tmp_mb\":15}",
     "tmp_mb: must be an integer from 16 to 10240"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"tmp_mb\":10241}",
     "tmp_mb: must be an integer from 16 to 10240"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"env\":[]}",
     "env: must be an object of strings"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"env\":{\"1A\":\"x\"}}",
     "env: `1A` is not a valid variable name"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"env\":{\"A-B\":\"x\"}}",
     "env: `A-B` is not a valid variable name"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"env\":{\"A\":1}}",
     "env.A: must be a string"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"env\":{\"AWS_REGION\":\"x\"}}",
     "env: `AWS_REGION` is reserved"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"env\":{\"AWS_ANYTHING\":\"x\"}}",
     "env: `AWS_ANYTHING` is reserved"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"env\":{\"_HANDLER\":\"x\"}}",
     "env: `_HANDLER` is reserved"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"env\":{\"LAMBDA_TASK_ROOT\":\"x\"}}",
     "env: `LAMBDA_TASK_ROOT` is reserved"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\","
     "\"env\":{\"LAMBDA_RUNTIME_DIR\":\"x\"}}",
     "env: `LAMBDA_RUNTIME_DIR` is reserved"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"async\":1}",
     "async: must be an object"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"async\":{\"foo\":1}}",
     "async.foo: unknown field"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"async\":{\"max_retries\":3}}",
     "async.max_retries: must be an integer from 0 to 2"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"async\":{\"max_retries\":-1}}",
     "async.max_retries: must be an integer from 0 to 2"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\","
     "\"async\":{\"max_event_age_s\":59}}",
     "async.max_event_age_s: must be an integer from 60 to 21600"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\","
     "\"async\":{\"max_event_age_s\":21601}}",
     "async.max_event_age_s: must be an integer from 60 to 21600"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\","
     "\"async\":{\"on_success\":\"bad name\"}}",
     "async.on_success: must be null or a function name"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"async\":{\"on_failure\":5}}",
     "async.on_failure: must be null or a function name"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"log_format\":\"XML\"}",
     "log_format: must be \"Text\" or \"JSON\""},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"log_format\":null}",
     "log_format: must be \"Text\" or \"JSON\""},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"log_format\":1}",
     "log_format: must be \"Text\" or \"JSON\""},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"log_format\":\"JSON\\u0000\"}",
     "log_format: must be \"Text\" or \"JSON\""},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"log_format\":\"JSON\","
     "\"log_level\":\"VERBOSE\"}",
     "log_level: must be null or one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"log_format\":\"JSON\","
     "\"log_level\":3}",
     "log_level: must be null or one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"log_format\":\"JSON\","
     "\"system_log_level\":\"ERROR\"}",
     "system_log_level: must be null or one of DEBUG, INFO, WARN"},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"log_level\":\"DEBUG\"}",
     "log_level: applies only with log_format \"JSON\""},
    {"{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"log_format\":\"Text\","
     "\"system_log_level\":\"WARN\"}",
     "system_log_level: applies only with log_format \"JSON\""},
};

static void test_validation(void **state)
{
    fixture_t *fx = *state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        mf_error_t err = MF_ERROR_INIT;
        int r = put(fx, "fn", bad_cases[i].body, zip_py, NULL, NULL, &err);
        if (r != -EINVAL || strncmp(err.msg, bad_cases[i].msg, strlen(bad_cases[i].msg)))
            fail_msg("%s: got %d `%s`, want `%s`", bad_cases[i].body, r, err.msg, bad_cases[i].msg);
    }
    /* Nothing was created, and no package was left behind. */
    fn_t f;
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(registry_get(fx->reg, "fn", &f, &err), -ENOENT);
    assert_int_equal(count_packages(fx), 0);
}

static void expect_bad(fixture_t *fx, const char *name, const char *text, const char *const *files,
                       int code, const char *msg)
{
    mf_error_t err = MF_ERROR_INIT;
    int r = put(fx, name, text, files, NULL, NULL, &err);
    if (r != code || strncmp(err.msg, msg, strlen(msg)))
        fail_msg("%s: got %d `%s`, want %d `%s`", text, r, err.msg, code, msg);
}

static void test_names_and_body(void **state)
{
    fixture_t *fx = *state;
    const char *ok = "{\"runtime\":\"python3\",\"handler\":\"app.handler\"}";
    expect_bad(fx, "bad name", ok, zip_py, -EINVAL, "name: must match [A-Za-z0-9_-]{1,64}");
    expect_bad(fx, "", ok, zip_py, -EINVAL, "name: must match");
    expect_bad(fx, "a.b", ok, zip_py, -EINVAL, "name: must match");
    char long_name[66];
    memset(long_name, 'a', 65);
    long_name[65] = '\0';
    expect_bad(fx, long_name, ok, zip_py, -EINVAL, "name: must match");
    long_name[64] = '\0';
    put_ok(fx, long_name, ok, zip_py, NULL);
    put_ok(fx, "Az09_-", ok, zip_py, NULL);
    assert_true(registry_valid_name("Az09_-"));
    assert_false(registry_valid_name("a/b"));

    json_t *arr = parse("[1]");
    fn_t f;
    bool created;
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(registry_put(fx->reg, "fn", arr, &f, &created, &err), -EINVAL);
    assert_string_equal(err.msg, "body: must be a JSON object");
    json_decref(arr);

    /* The name in the body may repeat the one in the path. */
    put_ok(fx, "same", "{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"name\":\"same\"}",
           zip_py, NULL);
}

static void test_handlers_accepted(void **state)
{
    fixture_t *fx = *state;
    static const char *const bodies[] = {
        "{\"runtime\":\"nodejs\",\"handler\":\"src/index.handler\"}",
        "{\"runtime\":\"nodejs\",\"handler\":\"index.$h\"}",
        "{\"runtime\":\"python3\",\"handler\":\"pkg.mod.handler\"}",
        "{\"runtime\":\"python3\",\"handler\":\"a-b/c_d.run_2\"}",
        "{\"runtime\":\"provided\"}",
        "{\"runtime\":\"provided\",\"handler\":\"anything.goes:here!\"}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        put_ok(fx, "h", bodies[i], zip_js, NULL);

    char handler[130];
    memset(handler, 'a', 129);
    handler[129] = '\0';
    handler[1] = '.';
    cleanup_free char *long_body =
        xasprintf("{\"runtime\":\"python3\",\"handler\":\"%s\"}", handler);
    expect_bad(fx, "h", long_body, zip_py, -EINVAL, "handler: must be at most 128 characters");
    handler[128] = '\0';
    cleanup_free char *max_body =
        xasprintf("{\"runtime\":\"python3\",\"handler\":\"%s\"}", handler);
    put_ok(fx, "h", max_body, zip_py, NULL);
}

static void test_env(void **state)
{
    fixture_t *fx = *state;
    fn_t f;
    put_ok(fx, "env",
           "{\"runtime\":\"python3\",\"handler\":\"app.handler\","
           "\"env\":{\"TZ\":\"Europe/Paris\",\"a_1\":\"\",\"LANG\":\"C\"}}",
           zip_py, &f);
    assert_string_equal(json_string_value(json_object_get(f.env, "TZ")), "Europe/Paris");
    assert_string_equal(json_string_value(json_object_get(f.env, "a_1")), "");
    fn_clear(&f);

    /* 4 KiB of keys and values together is the limit, as on Lambda. */
    buf_t body = BUF_INIT;
    char value[4097];
    memset(value, 'v', sizeof value - 1);
    value[4096 - 1] = '\0'; /* "K" + 4095 bytes = 4096 */
    buf_addf(&body, "{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"env\":{\"K\":\"%s\"}}",
             value);
    put_ok(fx, "env", body.data, zip_py, NULL);
    buf_reset(&body);
    value[4096 - 1] = 'v';
    value[4096] = '\0';
    buf_addf(&body, "{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"env\":{\"K\":\"%s\"}}",
             value);
    expect_bad(fx, "env", body.data, zip_py, -EINVAL,
               "env: the variables are over the 4 KiB limit");
    buf_release(&body);

    expect_bad(fx, "env",
               "{\"runtime\":\"python3\",\"handler\":\"app.handler\","
               "\"env\":{\"A\":\"x\\u0000y\"}}",
               zip_py, -EINVAL, "env.A: must not contain NUL");
}

static void test_async(void **state)
{
    fixture_t *fx = *state;
    fn_t f;
    put_ok(fx, "a",
           "{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"async\":{\"max_retries\":0,"
           "\"max_event_age_s\":60,\"on_success\":\"next\",\"on_failure\":null}}",
           zip_py, &f);
    assert_int_equal(f.async.max_retries, 0);
    assert_int_equal(f.async.max_event_age_s, 60);
    assert_string_equal(f.async.on_success, "next");
    assert_string_equal(f.async.on_failure, "");
    fn_clear(&f);

    /* Left-out async fields keep their value on update. */
    put_ok(fx, "a", "{\"async\":{\"max_retries\":1,\"on_failure\":\"dlq\"}}", NULL, &f);
    assert_int_equal(f.async.max_retries, 1);
    assert_int_equal(f.async.max_event_age_s, 60);
    assert_string_equal(f.async.on_success, "next");
    assert_string_equal(f.async.on_failure, "dlq");
    json_t *j = fn_to_json(&f);
    json_t *a = json_object_get(j, "async");
    assert_string_equal(json_string_value(json_object_get(a, "on_success")), "next");
    fn_clear(&f);
    json_decref(j);

    put_ok(fx, "a", "{\"async\":{\"on_success\":null}}", NULL, &f);
    assert_string_equal(f.async.on_success, "");
    j = fn_to_json(&f);
    assert_true(json_is_null(json_object_get(json_object_get(j, "async"), "on_success")));
    json_decref(j);
    fn_clear(&f);
}

static void test_logging(void **state)
{
    fixture_t *fx = *state;
    fn_t f;
    /* JSON alone brings Lambda's default levels; any case is accepted and
     * shown back as Lambda spells it. */
    put_ok(fx, "lg",
           "{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"log_format\":\"json\"}", zip_py,
           &f);
    assert_string_equal(f.log_format, "JSON");
    assert_string_equal(f.log_level, "INFO");
    assert_string_equal(f.system_log_level, "INFO");
    json_t *j = fn_to_json(&f);
    assert_string_equal(json_string_value(json_object_get(j, "log_format")), "JSON");
    assert_string_equal(json_string_value(json_object_get(j, "log_level")), "INFO");
    assert_string_equal(json_string_value(json_object_get(j, "system_log_level")), "INFO");
    json_decref(j);
    fn_clear(&f);

    /* Levels are set on their own, and kept by an update that leaves them out. */
    put_ok(fx, "lg", "{\"log_level\":\"debug\",\"system_log_level\":\"WARN\"}", NULL, &f);
    assert_string_equal(f.log_level, "DEBUG");
    assert_string_equal(f.system_log_level, "WARN");
    fn_clear(&f);
    put_ok(fx, "lg", "{\"memory_mb\":256}", NULL, &f);
    assert_string_equal(f.log_format, "JSON");
    assert_string_equal(f.log_level, "DEBUG");
    assert_string_equal(f.system_log_level, "WARN");
    fn_clear(&f);

    /* null puts the default back. */
    put_ok(fx, "lg", "{\"log_level\":null}", NULL, &f);
    assert_string_equal(f.log_level, "INFO");
    assert_string_equal(f.system_log_level, "WARN");
    fn_clear(&f);

    /* Back to Text drops the levels, which only JSON has; null levels with
     * Text are no error. */
    put_ok(fx, "lg", "{\"log_format\":\"Text\",\"log_level\":null}", NULL, &f);
    assert_string_equal(f.log_format, "Text");
    assert_string_equal(f.log_level, "");
    assert_string_equal(f.system_log_level, "");
    j = fn_to_json(&f);
    assert_true(json_is_null(json_object_get(j, "log_level")));
    assert_true(json_is_null(json_object_get(j, "system_log_level")));
    json_decref(j);
    fn_clear(&f);

    /* A level for a Text function is refused and changes nothing. */
    expect_bad(fx, "lg", "{\"log_level\":\"ERROR\"}", NULL, -EINVAL,
               "log_level: applies only with log_format \"JSON\"");
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(registry_get(fx->reg, "lg", &f, &err), 0);
    assert_string_equal(f.log_level, "");
    fn_clear(&f);

    /* Format and level in one update. */
    put_ok(fx, "lg", "{\"log_format\":\"JSON\",\"log_level\":\"FATAL\"}", NULL, &f);
    assert_string_equal(f.log_level, "FATAL");
    assert_string_equal(f.system_log_level, "INFO");
    fn_clear(&f);

    /* Lambda's log variables are the function's to set, unlike other AWS_ names. */
    put_ok(fx, "lg",
           "{\"env\":{\"AWS_LAMBDA_LOG_FORMAT\":\"JSON\",\"AWS_LAMBDA_LOG_LEVEL\":\"WARN\"}}", NULL,
           &f);
    assert_string_equal(json_string_value(json_object_get(f.env, "AWS_LAMBDA_LOG_LEVEL")), "WARN");
    fn_clear(&f);
    expect_bad(fx, "lg", "{\"env\":{\"AWS_LAMBDA_LOG_GROUP_NAME\":\"x\"}}", NULL, -EINVAL,
               "env: `AWS_LAMBDA_LOG_GROUP_NAME` is reserved");
}

static void test_code_field(void **state)
{
    fixture_t *fx = *state;
    const char *base = "{\"runtime\":\"python3\",\"handler\":\"app.handler\"";
    cleanup_free char *no_code = xasprintf("%s}", base);
    expect_bad(fx, "c", no_code, NULL, -EINVAL, "code: required when creating a function");
    cleanup_free char *str = xasprintf("%s,\"code\":\"x\"}", base);
    expect_bad(fx, "c", str, NULL, -EINVAL, "code: must be an object");
    cleanup_free char *empty = xasprintf("%s,\"code\":{}}", base);
    expect_bad(fx, "c", empty, NULL, -EINVAL, "code.zip_base64: required");
    cleanup_free char *other = xasprintf("%s,\"code\":{\"zip\":\"x\"}}", base);
    expect_bad(fx, "c", other, NULL, -EINVAL, "code.zip: unknown field");
    cleanup_free char *bad = xasprintf("%s,\"code\":{\"zip_base64\":\"!!!!\"}}", base);
    expect_bad(fx, "c", bad, NULL, -EINVAL, "code.zip_base64: not valid base64");
    cleanup_free char *num = xasprintf("%s,\"code\":{\"zip_base64\":1}}", base);
    expect_bad(fx, "c", num, NULL, -EINVAL, "code.zip_base64: must be a base64 string");
    /* "hello world" is base64 of bytes that are not a zip. */
    cleanup_free char *notzip =
        xasprintf("%s,\"code\":{\"zip_base64\":\"aGVsbG8gd29ybGQ=\"}}", base);
    expect_bad(fx, "c", notzip, NULL, -EINVAL, "code: not a valid zip archive");

    static const char *const evil[] = {"../x", "x", NULL};
    cleanup_free char *ok = xasprintf("%s}", base);
    expect_bad(fx, "c", ok, evil, -EINVAL, "code: entry `../x` leaves the package");

    /* Past max_zip_bytes (1 MiB in these tests) once decoded: 413. */
    buf_t big = BUF_INIT, b64 = BUF_INIT;
    buf_grow(&big, (1u << 20) + 1);
    memset(big.data, 'z', (1u << 20) + 1);
    big.len = (1u << 20) + 1;
    codec_base64_encode(&b64, big.data, big.len);
    json_t *body = parse(ok);
    json_object_set_new(body, "code", json_pack("{s:s}", "zip_base64", b64.data));
    fn_t f;
    bool created;
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(registry_put(fx->reg, "c", body, &f, &created, &err), -EFBIG);
    assert_string_equal(err.msg, "code: the zip is over the 1 MiB limit");
    json_decref(body);
    buf_release(&big);
    buf_release(&b64);

    assert_int_equal(registry_get(fx->reg, "c", &f, &err), -ENOENT);
    assert_int_equal(count_packages(fx), 0);
}

static void test_update_keeps_fields(void **state)
{
    fixture_t *fx = *state;
    fn_t f;
    put_ok(fx, "up",
           "{\"runtime\":\"nodejs20.x\",\"handler\":\"index.handler\",\"memory_mb\":256,"
           "\"env\":{\"A\":\"1\"},\"tmp_mb\":128}",
           zip_js, &f);
    int64_t created_ms = f.created_ms;
    char sha[65];
    memcpy(sha, f.code_sha256, sizeof sha);
    fn_clear(&f);

    bool created = true;
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(put(fx, "up", "{\"timeout_s\":10}", NULL, &f, &created, &err), 0);
    assert_false(created);
    assert_int_equal(f.version, 2);
    assert_int_equal(f.timeout_s, 10);
    assert_int_equal(f.memory_mb, 256);
    assert_int_equal(f.tmp_mb, 128);
    assert_string_equal(f.runtime, "nodejs");
    assert_string_equal(f.handler, "index.handler");
    assert_string_equal(json_string_value(json_object_get(f.env, "A")), "1");
    assert_string_equal(f.code_sha256, sha);
    assert_int_equal(f.created_ms, created_ms);
    assert_true(f.updated_ms >= created_ms);
    fn_clear(&f);

    /* Every successful put is a new version, even an empty one. */
    put_ok(fx, "up", "{}", NULL, &f);
    assert_int_equal(f.version, 3);
    fn_clear(&f);

    /* env given replaces env. */
    put_ok(fx, "up", "{\"env\":{\"B\":\"2\"}}", NULL, &f);
    assert_int_equal(f.version, 4);
    assert_null(json_object_get(f.env, "A"));
    assert_string_equal(json_string_value(json_object_get(f.env, "B")), "2");
    fn_clear(&f);

    /* A refused update changes nothing, not even the version. */
    expect_bad(fx, "up", "{\"runtime\":\"provided\",\"handler\":\"\",\"memory_mb\":1}", NULL,
               -EINVAL, "memory_mb:");
    expect_bad(fx, "up", "{\"handler\":\"nodot\"}", NULL, -EINVAL, "handler:");
    assert_int_equal(registry_get(fx->reg, "up", &f, &err), 0);
    assert_int_equal(f.version, 4);
    assert_string_equal(f.runtime, "nodejs");
    fn_clear(&f);

    /* Switching runtime re-checks the handler against the new one. */
    put_ok(fx, "up", "{\"runtime\":\"provided\",\"handler\":\"\"}", NULL, &f);
    fn_clear(&f);
    expect_bad(fx, "up", "{\"runtime\":\"python3\"}", NULL, -EINVAL,
               "handler: required for runtime python3");
}

static void test_permissions_and_volumes(void **state)
{
    fixture_t *fx = *state;
    fn_t f;
    put_ok(fx, "p",
           "{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"permissions\":"
           "[\"kv:cart\",\"kv:sessions-*\",\"invoke:resize\",\"volume:shared\"],"
           "\"volumes\":[{\"name\":\"shared\",\"path\":\"/mnt/shared\"}]}",
           zip_py, &f);
    assert_true(fn_permits(&f, "kv", "cart"));
    assert_true(fn_permits(&f, "kv", "sessions-"));
    assert_true(fn_permits(&f, "kv", "sessions-eu"));
    assert_false(fn_permits(&f, "kv", "sessions"));
    assert_false(fn_permits(&f, "kv", "carts"));
    assert_false(fn_permits(&f, "invoke", "cart"));
    assert_true(fn_permits(&f, "invoke", "resize"));
    assert_false(fn_permits(&f, "topic", "resize"));
    cleanup_free char *vols = json_dumps(f.volumes, JSON_COMPACT);
    assert_string_equal(vols, "[{\"name\":\"shared\",\"path\":\"/mnt/shared\","
                              "\"read_only\":false}]");
    json_t *shown = fn_to_json(&f);
    assert_true(json_equal(json_object_get(shown, "permissions"), f.permissions));
    assert_true(json_equal(json_object_get(shown, "volumes"), f.volumes));
    json_decref(shown);
    fn_clear(&f);

    /* Read back, and copied, as written. */
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(registry_get(fx->reg, "p", &f, &err), 0);
    fn_t copy;
    fn_copy(&copy, &f);
    fn_clear(&f);
    assert_int_equal(json_array_size(copy.permissions), 4);
    assert_true(fn_permits(&copy, "volume", "shared"));
    fn_clear(&copy);

    /* A wildcard in the middle, and one that grants everything. */
    put_ok(fx, "p", "{\"permissions\":[\"kv:a*z\",\"invoke:*\",\"volume:shared\"]}", NULL, &f);
    assert_true(fn_permits(&f, "kv", "az"));
    assert_true(fn_permits(&f, "kv", "a-b-z"));
    assert_false(fn_permits(&f, "kv", "a-b-y"));
    assert_true(fn_permits(&f, "invoke", "anything"));
    fn_clear(&f);

    static const struct {
        const char *body, *msg;
    } bad[] = {
        {"{\"permissions\":\"kv:a\"}", "permissions: must be an array"},
        {"{\"permissions\":[1]}", "permissions[0]: must be a string"},
        {"{\"permissions\":[\"kv\"]}", "permissions[0]: `kv` is not KIND:NAME"},
        {"{\"permissions\":[\"db:x\"]}", "permissions[0]: `db:x` is not KIND:NAME"},
        {"{\"permissions\":[\"kv:\"]}", "permissions[0]: `kv:` is not KIND:NAME"},
        {"{\"permissions\":[\"kv:a/b\"]}", "permissions[0]: `kv:a/b` is not KIND:NAME"},
        {"{\"permissions\":[\"volume:other\"]}",
         "volumes[0]: mounting shared needs the permission `volume:shared`"},
        {"{\"volumes\":{}}", "volumes: must be an array"},
        {"{\"volumes\":[{\"name\":\"shared\",\"path\":\"/tmp/x\"}]}",
         "volumes[0].path: must be /mnt/NAME"},
        {"{\"volumes\":[{\"name\":\"shared\",\"path\":\"/mnt/a/b\"}]}",
         "volumes[0].path: must be /mnt/NAME"},
        {"{\"volumes\":[{\"name\":\"shared\",\"path\":\"/mnt/..\"}]}",
         "volumes[0].path: must be /mnt/NAME"},
        {"{\"volumes\":[{\"name\":\"sh ared\",\"path\":\"/mnt/x\"}]}",
         "volumes[0].name: must match"},
        {"{\"volumes\":[{\"name\":\"shared\",\"path\":\"/mnt/x\",\"size\":1}]}",
         "volumes[0].size: unknown field"},
        {"{\"volumes\":[{\"name\":\"shared\",\"path\":\"/mnt/x\",\"read_only\":1}]}",
         "volumes[0].read_only: must be true or false"},
        {"{\"volumes\":[{\"name\":\"shared\",\"path\":\"/mnt/x\"},"
         "{\"name\":\"shared\",\"path\":\"/mnt/y\"}]}",
         "volumes[1].name: shared is mounted twice"},
        {"{\"volumes\":[{\"name\":\"other\",\"path\":\"/mnt/x\"}]}",
         "volumes[0]: mounting other needs the permission `volume:other`"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_bad(fx, "p", bad[i].body, NULL, -EINVAL, bad[i].msg);
}

static char *egress_text(const fn_t *f)
{
    assert_true(json_is_array(f->egress));
    return json_dumps(f->egress, JSON_COMPACT);
}

static void expect_egress(const fn_t *f, const char *want)
{
    cleanup_free char *text = egress_text(f);
    assert_string_equal(text, want);
}

static void test_egress(void **state)
{
    fixture_t *fx = *state;
    fn_t f;
    /* Kept as canonical texts, in order, each rule once. */
    put_ok(fx, "e",
           "{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"egress\":"
           "[\"API.Example.com.:443\",\"*.example.org\",\"203.0.113.0/24\",\"[::1]:8443\","
           "\"api.example.com:443\",\"*:443\",\"10.0.0.1/32\"]}",
           zip_py, &f);
    expect_egress(&f, "[\"api.example.com:443\",\"*.example.org\",\"203.0.113.0/24\","
                      "\"[::1]:8443\",\"*:443\",\"10.0.0.1\"]");
    assert_int_equal(f.version, 1);
    json_t *shown = fn_to_json(&f);
    assert_true(json_equal(json_object_get(shown, "egress"), f.egress));
    json_decref(shown);
    fn_clear(&f);

    /* Read back as written. */
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(registry_get(fx->reg, "e", &f, &err), 0);
    expect_egress(&f, "[\"api.example.com:443\",\"*.example.org\",\"203.0.113.0/24\","
                      "\"[::1]:8443\",\"*:443\",\"10.0.0.1\"]");
    fn_clear(&f);

    /* An update without the field keeps the rules; one with it replaces
     * them, and raises the version as any change does. */
    put_ok(fx, "e", "{\"timeout_s\":9}", NULL, &f);
    assert_int_equal(f.version, 2);
    assert_int_equal(json_array_size(f.egress), 6);
    fn_clear(&f);
    put_ok(fx, "e", "{\"egress\":[\"db.internal:5432\"]}", NULL, &f);
    assert_int_equal(f.version, 3);
    expect_egress(&f, "[\"db.internal:5432\"]");
    fn_clear(&f);
    put_ok(fx, "e", "{\"egress\":[]}", NULL, &f);
    assert_int_equal(f.version, 4);
    expect_egress(&f, "[]");
    fn_clear(&f);

    /* Refusals name the field and the rule, and change nothing. */
    static const struct {
        const char *body, *msg;
    } bad[] = {
        {"{\"egress\":null}", "egress: must be an array of at most 64 rules"},
        {"{\"egress\":\"api.example.com\"}", "egress: must be an array of at most 64 rules"},
        {"{\"egress\":{}}", "egress: must be an array of at most 64 rules"},
        {"{\"egress\":[\"a.com\",443]}", "egress: element 1 is not a string"},
        {"{\"egress\":[\"a.com:0\"]}",
         "egress[0]: bad egress rule \"a.com:0\": port must be 1-65535"},
        {"{\"egress\":[\"ok.com\",\"10.1.2.3/8\"]}",
         "egress[1]: bad egress rule \"10.1.2.3/8\": host bits set; did you mean 10.0.0.0/8?"},
        {"{\"egress\":[\"a.*.com\"]}",
         "egress[0]: bad egress rule \"a.*.com\": '*' is allowed only as a whole first label"},
        {"{\"egress\":[\"\"]}", "egress[0]: bad egress rule \"\": empty"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_bad(fx, "e", bad[i].body, NULL, -EINVAL, bad[i].msg);
    char many[64 * 16 + 32] = "{\"egress\":[";
    for (int i = 0; i <= EGRESS_MAX_RULES; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%s\"h%d.com\"", i ? "," : "", i);
    strcat(many, "]}");
    expect_bad(fx, "e", many, NULL, -EINVAL, "egress: must be an array of at most 64 rules");
    assert_int_equal(registry_get(fx->reg, "e", &f, &err), 0);
    assert_int_equal(f.version, 4);
    fn_clear(&f);

    /* A bad rule on create creates nothing. */
    expect_bad(fx, "e2",
               "{\"runtime\":\"python3\",\"handler\":\"app.handler\","
               "\"egress\":[\"x:99999\"]}",
               zip_py, -EINVAL, "egress[0]: bad egress rule \"x:99999\": port must be 1-65535");
    assert_int_equal(registry_get(fx->reg, "e2", &f, &err), -ENOENT);
}

static void test_default_egress(void **state)
{
    fixture_t *fx = *state;
    fn_t f;
    mf_error_t err = MF_ERROR_INIT;
    egress_policy_t def;
    assert_int_equal(egress_policy_from_list("*:443, 10.0.0.0/8", &def, &err), 0);
    registry_set_default_egress(fx->reg, &def);
    /* The registry keeps its own copy. */
    egress_policy_free(&def);

    /* Created without the field: the default. */
    put_ok(fx, "d", "{\"runtime\":\"python3\",\"handler\":\"app.handler\"}", zip_py, &f);
    expect_egress(&f, "[\"*:443\",\"10.0.0.0/8\"]");
    fn_clear(&f);
    /* Created with the field, even empty: what it says. */
    put_ok(fx, "none", "{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"egress\":[]}",
           zip_py, &f);
    expect_egress(&f, "[]");
    fn_clear(&f);
    put_ok(fx, "own",
           "{\"runtime\":\"python3\",\"handler\":\"app.handler\",\"egress\":[\"a.com\"]}", zip_py,
           &f);
    expect_egress(&f, "[\"a.com\"]");
    fn_clear(&f);

    /* Updated without the field: its own rules, not the default. */
    put_ok(fx, "none", "{\"memory_mb\":256}", NULL, &f);
    expect_egress(&f, "[]");
    fn_clear(&f);

    /* A new default applies to functions created from then on only. */
    assert_int_equal(egress_policy_from_list("api.example.com", &def, &err), 0);
    registry_set_default_egress(fx->reg, &def);
    egress_policy_free(&def);
    put_ok(fx, "d2", "{\"runtime\":\"python3\",\"handler\":\"app.handler\"}", zip_py, &f);
    expect_egress(&f, "[\"api.example.com\"]");
    fn_clear(&f);
    assert_int_equal(registry_get(fx->reg, "d", &f, &err), 0);
    expect_egress(&f, "[\"*:443\",\"10.0.0.0/8\"]");
    fn_clear(&f);
    put_ok(fx, "d", "{\"timeout_s\":5}", NULL, &f);
    expect_egress(&f, "[\"*:443\",\"10.0.0.0/8\"]");
    fn_clear(&f);

    /* NULL puts back no network. */
    registry_set_default_egress(fx->reg, NULL);
    put_ok(fx, "d3", "{\"runtime\":\"python3\",\"handler\":\"app.handler\"}", zip_py, &f);
    expect_egress(&f, "[]");
    fn_clear(&f);
}

/* A function stored before egress existed reads back with no network. */
static void test_egress_of_older_functions(void **state)
{
    fixture_t *fx = *state;
    fn_t f;
    mf_error_t err = MF_ERROR_INIT;
    egress_policy_t def;
    assert_int_equal(egress_policy_from_list("*", &def, &err), 0);
    registry_set_default_egress(fx->reg, &def);
    egress_policy_free(&def);

    put_ok(fx, "old", "{\"runtime\":\"python3\",\"handler\":\"app.handler\"}", zip_py, &f);
    /* Written over as the next version (a store replaces only an older one). */
    store_function_t sf = {
        .version = f.version + 1,
        .code_size = f.code_size,
        .config_json = xstrdup("{\"runtime\":\"python3\",\"runtime_name\":\"python3\","
                               "\"handler\":\"app.handler\",\"memory_mb\":128,\"timeout_s\":3,"
                               "\"max_concurrency\":10,\"tmp_mb\":64,\"env\":{},"
                               "\"async\":{\"max_retries\":2,\"max_event_age_s\":21600},"
                               "\"zip_size\":1,\"log_format\":\"Text\"}"),
        .created_ms = f.created_ms,
        .updated_ms = f.updated_ms,
    };
    memcpy(sf.name, f.name, sizeof sf.name);
    memcpy(sf.code_sha256, f.code_sha256, sizeof sf.code_sha256);
    fn_clear(&f);
    assert_int_equal(store_function_put(fx->store, &sf, &err), 0);
    free(sf.config_json);
    /* Read back by a server started on that data, as an upgrade would. */
    close_all(fx);
    assert_int_equal(open_all(fx), 0);
    assert_int_equal(egress_policy_from_list("*", &def, &err), 0);
    registry_set_default_egress(fx->reg, &def);
    egress_policy_free(&def);

    assert_int_equal(registry_get(fx->reg, "old", &f, &err), 0);
    expect_egress(&f, "[]");
    fn_clear(&f);
    /* An update keeps that: the default is for functions created. */
    put_ok(fx, "old", "{\"timeout_s\":4}", NULL, &f);
    expect_egress(&f, "[]");
    fn_clear(&f);
    fn_t *list = NULL;
    size_t n = 0;
    assert_int_equal(registry_list(fx->reg, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    expect_egress(&list[0], "[]");
    fn_list_free(list, n);
}

static void test_unknown_function(void **state)
{
    fixture_t *fx = *state;
    fn_t f;
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(registry_get(fx->reg, "ghost", &f, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "ghost"));
    assert_int_equal(registry_delete(fx->reg, "ghost", &err), -ENOENT);

    assert_int_equal(registry_check(fx->reg, "ghost", &err), -ENOENT);
    assert_non_null(strstr(err.msg, "ghost"));
    assert_int_equal(registry_check(fx->reg, "no such/name", &err), -EINVAL);

    put_ok(fx, "real", "{\"runtime\":\"python3\",\"handler\":\"app.handler\"}", zip_py, NULL);
    assert_int_equal(registry_check(fx->reg, "real", &err), 0);
    assert_int_equal(registry_delete(fx->reg, "real", &err), 0);
    assert_int_equal(registry_check(fx->reg, "real", &err), -ENOENT);
    assert_int_equal(registry_get(fx->reg, "real", &f, &err), -ENOENT);
    assert_int_equal(registry_delete(fx->reg, "real", &err), -ENOENT);
}

static void test_list(void **state)
{
    fixture_t *fx = *state;
    put_ok(fx, "b", "{\"runtime\":\"python3\",\"handler\":\"app.handler\"}", zip_py, NULL);
    put_ok(fx, "a", "{\"runtime\":\"nodejs\",\"handler\":\"index.handler\"}", zip_js, NULL);
    fn_t *list = NULL;
    size_t n = 0;
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(registry_list(fx->reg, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "a");
    assert_string_equal(list[0].runtime, "nodejs");
    assert_string_equal(list[1].name, "b");
    fn_list_free(list, n);
}

static void test_code_lifetime(void **state)
{
    fixture_t *fx = *state;
    char sha_py[65], sha_js[65];
    sha_of(zip_py, sha_py);
    sha_of(zip_js, sha_js);
    cleanup_free char *dir_py = xasprintf("%s/code/%s", fx->dir, sha_py);
    cleanup_free char *dir_js = xasprintf("%s/code/%s", fx->dir, sha_js);
    mf_error_t err = MF_ERROR_INIT;

    /* Two functions, one package: unpacked once. */
    put_ok(fx, "one", "{\"runtime\":\"python3\",\"handler\":\"app.handler\"}", zip_py, NULL);
    put_ok(fx, "two", "{\"runtime\":\"python3\",\"handler\":\"app.handler\"}", zip_py, NULL);
    assert_int_equal(count_packages(fx), 1);

    /* Deleting one keeps the package the other still uses. */
    assert_int_equal(registry_delete(fx->reg, "one", &err), 0);
    assert_int_equal(access(dir_py, F_OK), 0);

    /* New code for the last user: the old package goes. */
    fn_t f;
    put_ok(fx, "two", "{\"runtime\":\"nodejs\",\"handler\":\"index.handler\"}", zip_js, &f);
    assert_string_equal(f.code_sha256, sha_js);
    assert_int_equal(f.version, 2);
    fn_clear(&f);
    assert_int_equal(access(dir_py, F_OK), -1);
    assert_int_equal(access(dir_js, F_OK), 0);

    /* The same code again changes nothing on disk. */
    put_ok(fx, "two", "{}", zip_js, NULL);
    assert_int_equal(access(dir_js, F_OK), 0);

    assert_int_equal(registry_delete(fx->reg, "two", &err), 0);
    assert_int_equal(access(dir_js, F_OK), -1);
    assert_int_equal(count_packages(fx), 0);
}

static void test_reopen(void **state)
{
    fixture_t *fx = *state;
    fn_t before, after;
    put_ok(fx, "p",
           "{\"runtime\":\"python3.12\",\"handler\":\"app.handler\",\"memory_mb\":512,"
           "\"timeout_s\":30,\"max_concurrency\":3,\"tmp_mb\":32,\"env\":{\"X\":\"y\"},"
           "\"async\":{\"max_retries\":1,\"on_failure\":\"dlq\"},\"log_format\":\"JSON\","
           "\"log_level\":\"TRACE\",\"system_log_level\":\"DEBUG\","
           "\"egress\":[\"*.example.com:443\",\"[2001:db8::/32]:443\"]}",
           zip_py, &before);
    close_all(fx);

    /* A crash mid-unpack leaves a .tmp- directory; opening sweeps it. */
    cleanup_free char *stale = xasprintf("%s/code/.tmp-dead-beef", fx->dir);
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(fs_mkdir_p(stale, 0755, &err), 0);

    assert_int_equal(open_all(fx), 0);
    assert_int_equal(access(stale, F_OK), -1);
    assert_int_equal(registry_get(fx->reg, "p", &after, &err), 0);
    assert_string_equal(after.log_format, "JSON");
    assert_string_equal(after.log_level, "TRACE");
    assert_string_equal(after.system_log_level, "DEBUG");
    expect_egress(&after, "[\"*.example.com:443\",\"[2001:db8::/32]:443\"]");
    json_t *a = fn_to_json(&before), *b = fn_to_json(&after);
    assert_true(json_equal(a, b));
    json_decref(a);
    json_decref(b);
    fn_clear(&before);
    fn_clear(&after);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_null_restores_a_default),
        T(test_create_defaults),
        T(test_to_json_shape),
        T(test_runtime_aliases),
        T(test_validation),
        T(test_names_and_body),
        T(test_handlers_accepted),
        T(test_env),
        T(test_async),
        T(test_logging),
        T(test_code_field),
        T(test_update_keeps_fields),
        T(test_permissions_and_volumes),
        T(test_egress),
        T(test_default_egress),
        T(test_egress_of_older_functions),
        T(test_unknown_function),
        T(test_list),
        T(test_code_lifetime),
        T(test_reopen),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
