/* Core helpers: buffers, base64, JSON quoting, errors, fs. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/codec.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/id.h"
#include "core/json.h"
#include "core/map.h"

static void test_buf_grows_and_stays_terminated(void **state)
{
    buf_t b = BUF_INIT;
    assert_string_equal(b.data, "");
    for (int i = 0; i < 1000; i++)
        buf_addf(&b, "%d,", i);
    assert_int_equal(b.data[b.len], '\0');
    assert_memory_equal(b.data, "0,1,2,", 6);
    buf_consume(&b, 2);
    assert_memory_equal(b.data, "1,2,", 4);
    size_t len;
    char *p = buf_detach(&b, &len);
    assert_int_equal(strlen(p), len);
    assert_int_equal(b.len, 0);
    free(p);
}

static void test_base64_round_trip_and_errors(void **state)
{
    const char *samples[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
    const char *encoded[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
    for (int i = 0; i < 7; i++) {
        buf_t e = BUF_INIT, d = BUF_INIT;
        codec_base64_encode(&e, samples[i], strlen(samples[i]));
        assert_string_equal(e.data, encoded[i]);
        assert_int_equal(codec_base64_decode(&d, e.data, e.len, 100), 0);
        assert_string_equal(d.data, samples[i]);
        buf_release(&e);
        buf_release(&d);
    }
    buf_t d = BUF_INIT;
    assert_int_equal(codec_base64_decode(&d, "Zm9v!", 5, 100), -EINVAL);
    assert_int_equal(codec_base64_decode(&d, "Z", 1, 100), -EINVAL);
    assert_int_equal(codec_base64_decode(&d, "Zm=v", 4, 100), -EINVAL);
    assert_int_equal(codec_base64_decode(&d, "Zm9vYmFy", 8, 5), -EFBIG);
    assert_int_equal(d.len, 0);
    buf_release(&d);
}

static void test_sha256_hex(void **state)
{
    char hex[65];
    codec_sha256_hex(hex, "abc", 3);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_json_quote_escapes(void **state)
{
    buf_t b = BUF_INIT;
    json_quote(&b, "a\"b\\c\n\x01\x7f", 8);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\u0001\\u007f\"");
    buf_release(&b);
}

static void test_error_wrap(void **state)
{
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(mf_error_set(&err, ENOENT, "open `%s`", "x"), -ENOENT);
    assert_string_equal(err.msg, "open `x`: No such file or directory");
    mf_error_wrap(&err, "loading %s", "keys");
    assert_string_equal(err.msg, "loading keys: open `x`: No such file or directory");
    assert_int_equal(mf_error_set(&err, 0, "plain"), -EINVAL);
}

static void test_fs_mkdir_rm_write(void **state)
{
    char tmpl[] = "/tmp/mayfly-test-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    char path[600], file[600];
    snprintf(path, sizeof path, "%s/a/b/c", tmpl);
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(fs_mkdir_p(path, 0755, &err), 0);
    assert_int_equal(fs_mkdir_p(path, 0755, &err), 0);
    snprintf(file, sizeof file, "%.500s/f", path);
    assert_int_equal(fs_write_file_atomic(file, "data", 4, 0644, &err), 0);
    buf_t b = BUF_INIT;
    assert_int_equal(fs_read_file(file, &b, 100, &err), 0);
    assert_string_equal(b.data, "data");
    buf_reset(&b);
    assert_int_equal(fs_read_file(file, &b, 2, &err), -EFBIG);
    buf_release(&b);
    /* A path through a regular file cannot be a directory. */
    snprintf(path, sizeof path, "%.500s/f/sub", file);
    assert_true(fs_mkdir_p(path, 0755, &err) < 0);
    assert_int_equal(fs_rm_rf(tmpl, &err), 0);
    struct stat st;
    assert_int_equal(stat(tmpl, &st), -1);
    assert_int_equal(fs_rm_rf(tmpl, &err), 0);
}

static void test_uuid7_is_time_ordered(void **state)
{
    char a[ID_UUID_LEN + 1], b[ID_UUID_LEN + 1];
    id_uuid7(a);
    struct timespec ts = { 0, 2 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    id_uuid7(b);
    assert_int_equal(strlen(a), 36);
    assert_int_equal(a[14], '7');
    assert_true(a[19] == '8' || a[19] == '9' || a[19] == 'a' || a[19] == 'b');
    /* Later ids sort after earlier ones, by their time prefix. */
    assert_true(strcmp(a, b) < 0);
}

static void test_uuid_shape(void **state)
{
    char a[ID_UUID_LEN + 1], b[ID_UUID_LEN + 1];
    id_uuid4(a);
    id_uuid4(b);
    assert_int_equal(strlen(a), 36);
    assert_int_equal(a[14], '4');
    assert_string_not_equal(a, b);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(a[i], '-');
        else
            assert_non_null(strchr("0123456789abcdef", a[i]));
    }
}

static void test_buf_add_int_writes_what_printf_does(void **state)
{
    const long long ints[] = { 0, 7, -1, 10, -10, 1234567890123LL, LLONG_MAX, LLONG_MIN };
    const unsigned long long uints[] = { 0, 9, 10, 18446744073709551615ULL };
    char want[32];
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        buf_t b = BUF_INIT;
        buf_adds(&b, "x");
        buf_add_int(&b, ints[i]);
        snprintf(want, sizeof want, "x%lld", ints[i]);
        assert_string_equal(b.data, want);
        buf_release(&b);
    }
    for (size_t i = 0; i < sizeof uints / sizeof *uints; i++) {
        buf_t b = BUF_INIT;
        buf_add_uint(&b, uints[i]);
        snprintf(want, sizeof want, "%llu", uints[i]);
        assert_string_equal(b.data, want);
        buf_release(&b);
    }
}

static void test_map_put_get_remove_grow(void **state)
{
    map_t m = MAP_INIT;
    char key[32];
    for (uintptr_t i = 1; i <= 1000; i++) {
        snprintf(key, sizeof key, "k%lu", (unsigned long)i);
        assert_null(map_put(&m, key, (void *)i));
    }
    assert_int_equal(m.len, 1000);
    assert_ptr_equal(map_get(&m, "k500"), (void *)500);
    assert_ptr_equal(map_put(&m, "k500", (void *)7), (void *)500);
    for (uintptr_t i = 1; i <= 1000; i += 2) {
        snprintf(key, sizeof key, "k%lu", (unsigned long)i);
        assert_non_null(map_remove(&m, key));
    }
    assert_null(map_get(&m, "k1"));
    assert_null(map_remove(&m, "k1"));
    assert_ptr_equal(map_get(&m, "k2"), (void *)2);
    /* Re-adding after removals reuses tombstones and keeps lookups right. */
    for (uintptr_t i = 1; i <= 1000; i += 2) {
        snprintf(key, sizeof key, "k%lu", (unsigned long)i);
        map_put(&m, key, (void *)i);
    }
    size_t seen = 0;
    const char *k;
    void *v;
    for (size_t it = 0; map_next(&m, &it, &k, &v);)
        seen++;
    assert_int_equal(seen, 1000);
    assert_int_equal(m.len, 1000);
    map_release(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_grows_and_stays_terminated),
        cmocka_unit_test(test_base64_round_trip_and_errors),
        cmocka_unit_test(test_sha256_hex),
        cmocka_unit_test(test_json_quote_escapes),
        cmocka_unit_test(test_error_wrap),
        cmocka_unit_test(test_fs_mkdir_rm_write),
        cmocka_unit_test(test_uuid_shape),
        cmocka_unit_test(test_buf_add_int_writes_what_printf_does),
        cmocka_unit_test(test_uuid7_is_time_ordered),
        cmocka_unit_test(test_map_put_get_remove_grow),
    };
    return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
