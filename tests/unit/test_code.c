/* Code packages: real zips built here with libzip, unpacked into a fresh
 * directory, and the hostile ones a client could send. */
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
#include <zip.h>

#include <cmocka.h>

#include "tmpdir.h"

#include "core/buf.h"
#include "core/cleanup.h"
#include "core/codec.h"
#include "core/fs.h"
#include "core/xalloc.h"
#include "registry/code.h"

#include "zips.h"

typedef enum { Z_FILE, Z_EXEC, Z_DIR, Z_LINK, Z_FIFO } zkind_t;

typedef struct zent {
    const char *name;
    zkind_t kind;
    const char *data; /* file contents or symlink target */
    size_t len;       /* 0: strlen(data) */
} zent_t;

/* Builds a zip in memory, the way a Unix zip tool would: mode bits in the
 * high half of the external attributes. */
static void make_zip_raw(buf_t *out, const zent_t *ents, size_t n)
{
    zip_source_t *src;
    zip_t *za = zips_open(&src);
    for (size_t i = 0; i < n; i++) {
        const zent_t *e = &ents[i];
        zip_int64_t idx;
        if (e->kind == Z_DIR) {
            idx = zip_dir_add(za, e->name, ZIP_FL_ENC_UTF_8);
        } else {
            size_t len = e->len ? e->len : strlen(e->data);
            zip_source_t *fs = zip_source_buffer(za, e->data, len, 0);
            assert_non_null(fs);
            idx = zip_file_add(za, e->name, fs, ZIP_FL_ENC_UTF_8);
            if (idx < 0)
                zip_source_free(fs);
        }
        if (idx < 0)
            fail_msg("zip add `%s`: %s", e->name, zip_strerror(za));
        mode_t mode = e->kind == Z_DIR    ? S_IFDIR | 0755
                      : e->kind == Z_EXEC ? S_IFREG | 0755
                      : e->kind == Z_LINK ? S_IFLNK | 0777
                      : e->kind == Z_FIFO ? S_IFIFO | 0644
                                          : S_IFREG | 0644;
        assert_int_equal(zip_file_set_external_attributes(za, (zip_uint64_t)idx, 0, ZIP_OPSYS_UNIX,
                                                          (zip_uint32_t)mode << 16),
                         0);
    }
    zips_close(za, src, out);
}

#define make_zip(out, ...)                                                                         \
    do {                                                                                           \
        const zent_t ents_[] = {__VA_ARGS__};                                                      \
        make_zip_raw((out), ents_, sizeof ents_ / sizeof ents_[0]);                                \
    } while (0)


static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static int install(const char *root, const buf_t *zip, const code_limits_t *limits, char sha[65],
                   int64_t *size, mf_error_t *err)
{
    static const code_limits_t def = CODE_LIMITS_DEFAULT;
    return code_install(root, zip->data, zip->len, limits ? limits : &def, sha, size, err);
}

/* Installs a zip that must be refused with code, and checks that the
 * message names needle and that nothing was left in the code root. */
static void expect_refused(const char *root, const buf_t *zip, const code_limits_t *limits,
                           int code, const char *needle)
{
    mf_error_t err = MF_ERROR_INIT;
    char sha[65] = "";
    int64_t size = -1;
    int r = install(root, zip, limits, sha, &size, &err);
    if (r != code)
        fail_msg("expected %d, got %d (%s)", code, r, err.msg);
    if (!strstr(err.msg, needle))
        fail_msg("message `%s` does not contain `%s`", err.msg, needle);
    assert_true(count_entries(root) <= 0);
}

static void test_good_zip_unpacks(void **state)
{
    const char *root = *state;
    cleanup_buf buf_t zip = BUF_INIT;
    make_zip(&zip, {"index.py", Z_FILE, "def handler(e, c):\n    return e\n", 0},
             {"bin/", Z_DIR, NULL, 0}, {"bin/run", Z_EXEC, "#!/bin/sh\necho hi\n", 0},
             {"lib/deep/data.txt", Z_FILE, "12345", 0}, {"lib/link", Z_LINK, "deep/data.txt", 0},
             {"up", Z_LINK, "lib/..", 0}, {"./dot.txt", Z_FILE, "x", 0});

    /* A restrictive umask must not make the package unreadable. */
    mode_t old = umask(077);
    mf_error_t err = MF_ERROR_INIT;
    char sha[65];
    int64_t size = -1;
    int r = install(root, &zip, NULL, sha, &size, &err);
    umask(old);
    if (r < 0)
        fail_msg("install: %s", err.msg);

    char want[65];
    codec_sha256_hex(want, zip.data, zip.len);
    assert_string_equal(sha, want);
    assert_int_equal(size, strlen("def handler(e, c):\n    return e\n") +
                               strlen("#!/bin/sh\necho hi\n") + 5 + 1);

    cleanup_free char *pkg = xasprintf("%s/%s", root, sha);
    struct stat st;
    cleanup_free char *run = xasprintf("%s/bin/run", pkg);
    assert_int_equal(stat(run, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    cleanup_free char *index = xasprintf("%s/index.py", pkg);
    assert_int_equal(stat(index, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    cleanup_free char *deep = xasprintf("%s/lib/deep", pkg);
    assert_int_equal(stat(deep, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    cleanup_free char *dot = xasprintf("%s/dot.txt", pkg);
    assert_int_equal(stat(dot, &st), 0);

    cleanup_free char *link = xasprintf("%s/lib/link", pkg);
    char target[64];
    ssize_t n = readlink(link, target, sizeof target - 1);
    assert_true(n > 0);
    target[n] = '\0';
    assert_string_equal(target, "deep/data.txt");
    buf_t data = BUF_INIT;
    assert_int_equal(fs_read_file(link, &data, 100, &err), 0);
    assert_string_equal(data.data, "12345");
    buf_release(&data);

    /* Only the package itself is left: no temporary directory. */
    assert_int_equal(count_entries(root), 1);
}

static void test_same_zip_unpacked_once(void **state)
{
    const char *root = *state;
    cleanup_buf buf_t zip = BUF_INIT;
    make_zip(&zip, {"app.js", Z_FILE, "exports.handler = async () => 1;\n", 0});
    mf_error_t err = MF_ERROR_INIT;
    char sha1[65], sha2[65];
    int64_t size1 = -1, size2 = -1;
    assert_int_equal(install(root, &zip, NULL, sha1, &size1, &err), 0);

    /* A marker the second install would wipe if it unpacked again. */
    cleanup_free char *marker = xasprintf("%s/%s/marker", root, sha1);
    assert_int_equal(fs_write_file_atomic(marker, "", 0, 0644, &err), 0);

    assert_int_equal(install(root, &zip, NULL, sha2, &size2, &err), 0);
    assert_string_equal(sha1, sha2);
    assert_int_equal(size1, size2);
    assert_int_equal(size1, strlen("exports.handler = async () => 1;\n"));
    assert_int_equal(access(marker, F_OK), 0);
    assert_int_equal(count_entries(root), 1);
}

static void test_absolute_path(void **state)
{
    cleanup_buf buf_t zip = BUF_INIT;
    make_zip(&zip, {"ok.txt", Z_FILE, "x", 0}, {"/tmp/evil", Z_FILE, "x", 0});
    expect_refused(*state, &zip, NULL, -EINVAL, "code: entry `/tmp/evil` is an absolute path");
}

static void test_dotdot(void **state)
{
    cleanup_buf buf_t zip = BUF_INIT;
    make_zip(&zip, {"../x", Z_FILE, "x", 0});
    expect_refused(*state, &zip, NULL, -EINVAL, "code: entry `../x` leaves the package");

    buf_reset(&zip);
    make_zip(&zip, {"a/b/../../../x", Z_FILE, "x", 0});
    expect_refused(*state, &zip, NULL, -EINVAL, "`a/b/../../../x` leaves the package");

    /* Even a `..` that stays inside is refused: no honest zip has one. */
    buf_reset(&zip);
    make_zip(&zip, {"a/../x", Z_FILE, "x", 0});
    expect_refused(*state, &zip, NULL, -EINVAL, "`a/../x` leaves the package");
}

static void test_windows_names(void **state)
{
    cleanup_buf buf_t zip = BUF_INIT;
    make_zip(&zip, {"..\\evil.txt", Z_FILE, "x", 0});
    expect_refused(*state, &zip, NULL, -EINVAL, "backslash");

    buf_reset(&zip);
    make_zip(&zip, {"C:/evil.txt", Z_FILE, "x", 0});
    expect_refused(*state, &zip, NULL, -EINVAL, "`C:/evil.txt` starts with a drive letter");

    buf_reset(&zip);
    make_zip(&zip, {"bad\nname", Z_FILE, "x", 0});
    expect_refused(*state, &zip, NULL, -EINVAL, "control character");
}

static void test_symlink_escapes(void **state)
{
    cleanup_buf buf_t zip = BUF_INIT;
    make_zip(&zip, {"sub/l", Z_LINK, "../../etc", 0});
    expect_refused(*state, &zip, NULL, -EINVAL,
                   "code: symlink `sub/l` points outside the package (`../../etc`)");

    /* Textually `s`, but s/up is itself a link to the root, so `..` from
     * there is above the package. */
    buf_reset(&zip);
    make_zip(&zip, {"s/up", Z_LINK, "..", 0}, {"t", Z_LINK, "s/up/..", 0});
    expect_refused(*state, &zip, NULL, -EINVAL, "symlink `t` points outside the package");

    buf_reset(&zip);
    make_zip(&zip, {"a", Z_LINK, "b", 0}, {"b", Z_LINK, "a/x", 0});
    expect_refused(*state, &zip, NULL, -EINVAL, "loop");
}

static void test_absolute_symlink(void **state)
{
    cleanup_buf buf_t zip = BUF_INIT;
    make_zip(&zip, {"passwd", Z_LINK, "/etc/passwd", 0});
    expect_refused(*state, &zip, NULL, -EINVAL,
                   "code: symlink `passwd` points outside the package (`/etc/passwd`)");
}

static void test_write_through_symlink(void **state)
{
    /* The link is inside the package, but a later entry must not be
     * written through it. */
    cleanup_buf buf_t zip = BUF_INIT;
    make_zip(&zip, {"real/", Z_DIR, NULL, 0}, {"l", Z_LINK, "real", 0},
             {"l/x.txt", Z_FILE, "x", 0});
    expect_refused(*state, &zip, NULL, -EINVAL, "code: entry `l/x.txt` is inside symlink `l`");
}

static void test_duplicates(void **state)
{
    cleanup_buf buf_t zip = BUF_INIT;
    make_zip(&zip, {"a.txt", Z_FILE, "one", 0}, {"./a.txt", Z_FILE, "two", 0});
    expect_refused(*state, &zip, NULL, -EINVAL, "appears twice");

    buf_reset(&zip);
    make_zip(&zip, {"a", Z_FILE, "one", 0}, {"a/b", Z_FILE, "two", 0});
    expect_refused(*state, &zip, NULL, -EINVAL, "code: entry `a/b` is inside file `a`");

    /* The same directory twice is harmless. */
    buf_reset(&zip);
    make_zip(&zip, {"d/", Z_DIR, NULL, 0}, {"./d/", Z_DIR, NULL, 0}, {"d/f", Z_FILE, "x", 0});
    mf_error_t err = MF_ERROR_INIT;
    char sha[65];
    int64_t size;
    assert_int_equal(install(*state, &zip, NULL, sha, &size, &err), 0);
}

static void test_special_file(void **state)
{
    cleanup_buf buf_t zip = BUF_INIT;
    make_zip(&zip, {"fifo", Z_FIFO, "", 1});
    expect_refused(*state, &zip, NULL, -EINVAL, "`fifo` is not a file, directory or symlink");
}

static void test_not_a_zip(void **state)
{
    cleanup_buf buf_t zip = BUF_INIT;
    buf_adds(&zip, "this is plainly not a zip archive, though it is long enough to be one");
    expect_refused(*state, &zip, NULL, -EINVAL, "code: not a valid zip archive");

    buf_reset(&zip);
    expect_refused(*state, &zip, NULL, -EINVAL, "code: not a valid zip archive");
}

static void test_too_many_files(void **state)
{
    cleanup_buf buf_t zip = BUF_INIT;
    make_zip(&zip, {"1", Z_FILE, "x", 0}, {"2", Z_FILE, "x", 0}, {"3", Z_FILE, "x", 0},
             {"4", Z_FILE, "x", 0});
    code_limits_t limits = CODE_LIMITS_DEFAULT;
    limits.max_files = 3;
    expect_refused(*state, &zip, &limits, -EFBIG, "4 entries, over the limit of 3");
    limits.max_files = 4;
    mf_error_t err = MF_ERROR_INIT;
    char sha[65];
    int64_t size;
    assert_int_equal(install(*state, &zip, &limits, sha, &size, &err), 0);
}

static void test_zip_too_large(void **state)
{
    cleanup_buf buf_t zip = BUF_INIT;
    make_zip(&zip, {"a", Z_FILE, "x", 0});
    code_limits_t limits = CODE_LIMITS_DEFAULT;
    limits.max_zip_bytes = zip.len - 1;
    expect_refused(*state, &zip, &limits, -EFBIG, "code: the zip is over the");
}

#define BOMB_SIZE (20u << 20)

/* 20 MiB of zeros deflates to some 20 KiB. */
static void make_bomb(buf_t *zip, char **zeros)
{
    *zeros = xcalloc(1, BOMB_SIZE);
    make_zip(zip, {"small.txt", Z_FILE, "x", 0}, {"zeros", Z_FILE, *zeros, BOMB_SIZE});
    assert_true(zip->len < (1u << 20));
}

static void test_declared_size_over_limit(void **state)
{
    cleanup_buf buf_t zip = BUF_INIT;
    cleanup_free char *zeros = NULL;
    make_bomb(&zip, &zeros);
    code_limits_t limits = CODE_LIMITS_DEFAULT;
    limits.max_unzipped_bytes = 1u << 20;
    expect_refused(*state, &zip, &limits, -EFBIG, "over the 1 MiB limit");
}

static void put_le32(char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (char)(v >> (8 * i));
}

/* The same bomb with its sizes forged small in both the local and the
 * central header: only counting the inflated bytes catches it. */
static void test_zip_bomb_counted_as_written(void **state)
{
    const char *root = *state;
    cleanup_buf buf_t zip = BUF_INIT;
    cleanup_free char *zeros = NULL;
    make_bomb(&zip, &zeros);
    size_t forged = 0;
    for (size_t i = 0; i + 46 <= zip.len; i++) {
        if (!memcmp(zip.data + i, "PK\3\4", 4) && !memcmp(zip.data + i + 26, "\5\0", 2) &&
            !memcmp(zip.data + i + 30, "zeros", 5)) {
            put_le32(zip.data + i + 22, 100);
            forged++;
        }
        if (!memcmp(zip.data + i, "PK\1\2", 4) && !memcmp(zip.data + i + 28, "\5\0", 2) &&
            !memcmp(zip.data + i + 46, "zeros", 5)) {
            put_le32(zip.data + i + 24, 100);
            forged++;
        }
    }
    assert_int_equal(forged, 2);

    code_limits_t limits = CODE_LIMITS_DEFAULT;
    limits.max_unzipped_bytes = 1u << 20;
    mf_error_t err = MF_ERROR_INIT;
    char sha[65];
    int64_t size;
    int r = install(root, &zip, &limits, sha, &size, &err);
    if (r != -EFBIG)
        fail_msg("expected -EFBIG, got %d (%s)", r, err.msg);
    assert_non_null(strstr(err.msg, "code: the package unpacks to more than 1 MiB"));
    /* The temporary directory is gone, and no package was put in place. */
    assert_int_equal(count_entries(root), 0);
}

static void test_remove(void **state)
{
    const char *root = *state;
    cleanup_buf buf_t zip = BUF_INIT;
    make_zip(&zip, {"sub/a.txt", Z_FILE, "x", 0});
    mf_error_t err = MF_ERROR_INIT;
    char sha[65];
    int64_t size;
    assert_int_equal(install(root, &zip, NULL, sha, &size, &err), 0);
    assert_int_equal(count_entries(root), 1);
    assert_int_equal(code_remove(root, sha, &err), 0);
    assert_int_equal(count_entries(root), 0);
    /* Removing what is not there is fine. */
    assert_int_equal(code_remove(root, sha, &err), 0);
    /* Anything but a digest is refused rather than removed. */
    assert_int_equal(code_remove(root, "..", &err), -EINVAL);
    assert_int_equal(code_remove(root, "", &err), -EINVAL);
}

/* An unpacked package read back: every entry, sorted, with its type,
 * mode, size and a symlink's target; and zipped again, it unpacks to the
 * same entries, and the same tree always gives the same bytes. */
static void test_files_and_zip_again(void **state)
{
    const char *root = *state;
    cleanup_buf buf_t zip = BUF_INIT;
    make_zip(&zip, {"index.py", Z_FILE, "print(1)\n", 0}, {"empty/", Z_DIR, NULL, 0},
             {"bin/run", Z_EXEC, "#!/bin/sh\n", 0}, {"lib/deep/data.txt", Z_FILE, "12345", 0},
             {"lib/link", Z_LINK, "deep/data.txt", 0}, {"lib-b.txt", Z_FILE, "b", 0});
    mf_error_t err = MF_ERROR_INIT;
    char sha[65];
    int64_t size;
    assert_int_equal(install(root, &zip, NULL, sha, &size, &err), 0);
    cleanup_free char *pkg = xasprintf("%s/%s", root, sha);

    code_file_t *files;
    size_t n;
    if (code_files(pkg, &files, &n, &err) < 0)
        fail_msg("code_files: %s", err.msg);
    static const struct {
        const char *path;
        code_file_type_t type;
        unsigned mode;
        int64_t size;
        const char *target;
    } want[] = {
        {"bin", CODE_FILE_DIR, 0755, 0, NULL},
        {"bin/run", CODE_FILE_REGULAR, 0755, 10, NULL},
        {"empty", CODE_FILE_DIR, 0755, 0, NULL},
        {"index.py", CODE_FILE_REGULAR, 0644, 9, NULL},
        {"lib", CODE_FILE_DIR, 0755, 0, NULL},
        {"lib-b.txt", CODE_FILE_REGULAR, 0644, 1, NULL},
        {"lib/deep", CODE_FILE_DIR, 0755, 0, NULL},
        {"lib/deep/data.txt", CODE_FILE_REGULAR, 0644, 5, NULL},
        {"lib/link", CODE_FILE_SYMLINK, 0777, 13, "deep/data.txt"},
    };
    assert_int_equal(n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(files[i].path, want[i].path);
        assert_int_equal(files[i].type, want[i].type);
        assert_int_equal(files[i].mode, want[i].mode);
        assert_int_equal(files[i].size, want[i].size);
        if (want[i].target)
            assert_string_equal(files[i].target, want[i].target);
        else
            assert_null(files[i].target);
    }

    cleanup_buf buf_t again = BUF_INIT, twice = BUF_INIT;
    if (code_zip(pkg, &again, &err) < 0)
        fail_msg("code_zip: %s", err.msg);
    assert_int_equal(code_zip(pkg, &twice, &err), 0);
    assert_int_equal(again.len, twice.len);
    assert_memory_equal(again.data, twice.data, again.len);

    char sha2[65];
    int64_t size2;
    if (install(root, &again, NULL, sha2, &size2, &err) < 0)
        fail_msg("install the zip made again: %s", err.msg);
    assert_string_not_equal(sha, sha2);
    assert_int_equal(size, size2);
    cleanup_free char *pkg2 = xasprintf("%s/%s", root, sha2);
    code_file_t *files2;
    size_t n2;
    assert_int_equal(code_files(pkg2, &files2, &n2, &err), 0);
    assert_int_equal(n2, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(files2[i].path, files[i].path);
        assert_int_equal(files2[i].type, files[i].type);
        assert_int_equal(files2[i].mode, files[i].mode);
        assert_int_equal(files2[i].size, files[i].size);
    }
    code_files_free(files, n);
    code_files_free(files2, n2);

    /* A directory that is not there. */
    cleanup_free char *gone = xasprintf("%s/%064d", root, 0);
    assert_int_equal(code_files(gone, &files, &n, &err), -ENOENT);
    assert_int_equal(code_zip(gone, &again, &err), -ENOENT);
}

/* A package with no entries zips to the 22 bytes of an empty zip, which
 * libzip reads back as one. */
static void test_empty_package_zips(void **state)
{
    const char *root = *state;
    cleanup_free char *pkg = xasprintf("%s/empty", root);
    assert_int_equal(mkdir(pkg, 0755), 0);
    mf_error_t err = MF_ERROR_INIT;
    cleanup_buf buf_t zip = BUF_INIT;
    assert_int_equal(code_zip(pkg, &zip, &err), 0);
    assert_int_equal(zip.len, 22);
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(zip.data, zip.len, 0, &ze);
    zip_t *za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
    assert_non_null(za);
    assert_int_equal(zip_get_num_entries(za, 0), 0);
    zip_discard(za);
    zip_error_fini(&ze);
}

static void test_cursor_round_trips(void **state)
{
    (void)state;
    static const char *const paths[] = {"a", "lib/deep/data.txt", "\xc3\xbc.txt", "x y+z/"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        cleanup_buf buf_t c = BUF_INIT, back = BUF_INIT;
        code_cursor_format(&c, paths[i], strlen(paths[i]));
        assert_int_equal(strncmp(c.data, "p.", 2), 0);
        assert_null(strpbrk(c.data, "+/="));
        assert_int_equal(code_cursor_parse(c.data, c.len, &back), 0);
        assert_string_equal(back.data, paths[i]);
    }
    static const char *const bad[] = {"", "p.", "Ymlu", "p.Ymlu=", "p.Y+lu", "p.AA", "p.Ymlu!",
                                      "p.Ymm"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cleanup_buf buf_t out = BUF_INIT;
        if (code_cursor_parse(bad[i], strlen(bad[i]), &out) != -EINVAL)
            fail_msg("`%s` parsed", bad[i]);
        assert_int_equal(out.len, 0);
    }
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup_dir, teardown_dir)
    const struct CMUnitTest tests[] = {
        T(test_good_zip_unpacks),
        T(test_same_zip_unpacked_once),
        T(test_absolute_path),
        T(test_dotdot),
        T(test_windows_names),
        T(test_symlink_escapes),
        T(test_absolute_symlink),
        T(test_write_through_symlink),
        T(test_duplicates),
        T(test_special_file),
        T(test_not_a_zip),
        T(test_too_many_files),
        T(test_zip_too_large),
        T(test_declared_size_over_limit),
        T(test_zip_bomb_counted_as_written),
        T(test_remove),
        T(test_files_and_zip_again),
        T(test_empty_package_zips),
        T(test_cursor_round_trips),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
