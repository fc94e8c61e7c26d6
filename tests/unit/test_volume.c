/* Shared volumes: the create body's parser, the store's table (on both
 * backends: a fresh data directory and a fresh PostgreSQL database,
 * store_backends.h), and the service for real (ext4 images on loop
 * devices, mounted in this test's own mount namespace; needs root,
 * skipped otherwise). */
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "store_backends.h"

#include "core/cleanup.h"
#include "core/fs.h"
#include "core/xalloc.h"
#include "sandbox/sandbox.h"
#include "state/volume.h"
#include "store/store.h"

/* ---- the create body ---------------------------------------------------- */

static void test_parse_spec(void **state)
{
    static const struct {
        const char *body;
        int64_t size_mb; /* 0: refused, with this message's start */
        const char *msg;
    } cases[] = {
        {"{\"size_mb\": 1}", 1, NULL},
        {"{\"size_mb\": 1048576}", 1048576, NULL},
        {" {\"size_mb\":64} ", 64, NULL},
        {"", 0, "body: must be a JSON object"},
        {"[]", 0, "body: must be a JSON object"},
        {"8", 0, "body: must be a JSON object"},
        {"{\"size_mb\": 8", 0, "body: not JSON"},
        {"{}", 0, "size_mb: required"},
        {"{\"size_mb\": 0}", 0, "size_mb: must be a whole number of MiB from 1 to 1048576"},
        {"{\"size_mb\": -1}", 0, "size_mb: must be"},
        {"{\"size_mb\": 1048577}", 0, "size_mb: must be"},
        {"{\"size_mb\": 99999999999999999999}", 0, "body: not JSON"},
        {"{\"size_mb\": 8.0}", 0, "size_mb: must be"},
        {"{\"size_mb\": \"8\"}", 0, "size_mb: must be"},
        {"{\"size_mb\": null}", 0, "size_mb: must be"},
        {"{\"size_mb\": 8, \"size_mb\": 9}", 0, "body: not JSON"},
        {"{\"size_mb\": 8, \"encrypted\": true}", 0, "encrypted: unknown field"},
        {"{\"a\\nb\": 1}", 0, "a?b: unknown field"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int64_t size = -1;
        mf_error_t err = MF_ERROR_INIT;
        int r = volumes_parse_spec(cases[i].body, strlen(cases[i].body), &size, &err);
        if (cases[i].size_mb) {
            if (r != 0)
                fail_msg("`%s` refused: %s", cases[i].body, err.msg);
            assert_int_equal(size, cases[i].size_mb);
        } else {
            assert_int_equal(r, -EINVAL);
            if (strncmp(err.msg, cases[i].msg, strlen(cases[i].msg)) != 0)
                fail_msg("`%s`: message `%s`, expected it to start with `%s`", cases[i].body,
                         err.msg, cases[i].msg);
            assert_int_equal(size, -1);
        }
    }
}

/* ---- the store's table ---------------------------------------------------- */

static void test_store_table(void **state)
{
    store_t *s = open_store(*state);
    mf_error_t err = MF_ERROR_INIT;
    store_volume_t a = {.name = "beta", .size_mb = 8, .created_ms = 1700000000000};
    store_volume_t b = {.name = "alpha", .size_mb = 1048576, .created_ms = 1700000000001};
    assert_int_equal(store_volume_add(s, &a, &err), 0);
    assert_int_equal(store_volume_add(s, &b, &err), 0);
    assert_int_equal(store_volume_add(s, &a, &err), -EEXIST);
    assert_non_null(strstr(err.msg, "beta"));

    store_volume_t got;
    assert_int_equal(store_volume_get(s, "beta", &got, &err), 0);
    assert_string_equal(got.name, "beta");
    assert_int_equal(got.size_mb, 8);
    assert_int_equal(got.created_ms, 1700000000000);
    assert_int_equal(store_volume_get(s, "gamma", &got, &err), -ENOENT);

    /* Kept across a reopen, listed by name. */
    store_close(s);
    s = open_store(*state);
    store_volume_t *list;
    size_t n;
    assert_int_equal(store_volume_list(s, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "alpha");
    assert_int_equal(list[0].size_mb, 1048576);
    assert_string_equal(list[1].name, "beta");
    free(list);

    assert_int_equal(store_volume_delete(s, "beta", &err), 0);
    assert_int_equal(store_volume_delete(s, "beta", &err), -ENOENT);
    assert_int_equal(store_volume_list(s, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    free(list);
    store_close(s);
}

/* ---- the service ---------------------------------------------------------- */

static bool isolated; /* this process has a mount namespace of its own */

static store_t *open_dir_store(const char *dir)
{
    mf_error_t err = MF_ERROR_INIT;
    store_t *s = NULL;
    if (store_open(dir, &s, &err) < 0)
        fail_msg("store_open: %s", err.msg);
    return s;
}

#define SKIP_UNLESS_ISOLATED()                                                                     \
    do {                                                                                           \
        if (!isolated) {                                                                           \
            print_message("volume tests need root: skipped\n");                                    \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

typedef struct created {
    bool called, created;
    int r;
    volume_info_t info;
    mf_error_t err;
} created_t;

static void on_created(void *ud, int r, const volume_info_t *info, bool created,
                       const mf_error_t *err)
{
    created_t *c = ud;
    c->called = true;
    c->r = r;
    c->created = created;
    if (info)
        c->info = *info;
    c->err = *err;
}

static void on_done(void *ud, int r, const mf_error_t *err)
{
    int *out = ud;
    *out = r == 0 ? 1 : r;
}

static volumes_t *open_volumes(uv_loop_t *loop, store_t *s, const char *dir, bool iso)
{
    mf_error_t err = MF_ERROR_INIT;
    volumes_t *v = NULL;
    if (volumes_open(loop, s, dir, iso, &v, &err) < 0)
        fail_msg("volumes_open: %s", err.msg);
    return v;
}

static bool is_mount_root(const char *path)
{
    struct stat a, b;
    char parent[4096];
    snprintf(parent, sizeof parent, "%s/..", path);
    return stat(path, &a) == 0 && stat(parent, &b) == 0 && a.st_dev != b.st_dev;
}

/* Without a mount namespace of its own, a server keeps no volumes and
 * says why; what the store records is still listed. */
static void test_unavailable_says_why(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    store_t *s = open_dir_store(*state);
    mf_error_t err = MF_ERROR_INIT;
    store_volume_t row = {.name = "kept", .size_mb = 4, .created_ms = 1};
    assert_int_equal(store_volume_add(s, &row, &err), 0);
    volumes_t *v = open_volumes(&loop, s, *state, false);
    created_t c = {0};
    volumes_create(v, "fresh", 4, on_created, &c);
    assert_true(c.called);
    assert_int_equal(c.r, -ENOTSUP);
    assert_non_null(strstr(c.err.msg, "volumes need"));
    volume_info_t *list;
    size_t n;
    assert_int_equal(volumes_list(v, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_false(list[0].mounted);
    assert_non_null(strstr(list[0].error, "volumes need"));
    free(list);
    char path[4096];
    assert_int_equal(volumes_mount_point(v, "kept", path, sizeof path, &err), -EIO);
    assert_non_null(strstr(err.msg, "volume kept is not available"));
    volumes_close(v);
    store_close(s);
    uv_loop_close(&loop);
}

static void test_create_mount_reopen_delete(void **state)
{
    SKIP_UNLESS_ISOLATED();
    const char *dir = *state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    store_t *s = open_dir_store(dir);
    mf_error_t err = MF_ERROR_INIT;

    /* What an unfinished create or delete left, which no record names. */
    char stray_img[4096], stray_dir[4096];
    snprintf(stray_img, sizeof stray_img, "%s/volumes/ghost.img", dir);
    snprintf(stray_dir, sizeof stray_dir, "%s/volumes/ghost", dir);
    assert_int_equal(fs_mkdir_p(stray_dir, 0755, &err), 0);
    assert_int_equal(fs_write_file_atomic(stray_img, "x", 1, 0600, &err), 0);

    volumes_t *v = open_volumes(&loop, s, dir, true);
    assert_int_equal(access(stray_img, F_OK), -1);
    assert_int_equal(access(stray_dir, F_OK), -1);

    created_t c = {0};
    volumes_create(v, "data", 8, on_created, &c);
    /* Formatted on the thread pool: not there until it is. */
    assert_false(c.called);
    assert_false(volumes_exists(v, "data"));
    created_t busy = {0};
    volumes_create(v, "data", 8, on_created, &busy);
    assert_int_equal(busy.r, -EBUSY);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (c.r != 0)
        fail_msg("create: %s", c.err.msg);
    assert_true(c.created && c.info.mounted);
    assert_int_equal(c.info.size_mb, 8);
    assert_true(c.info.size_bytes > 0 && c.info.size_bytes <= 8u << 20);
    assert_true(volumes_exists(v, "data"));

    char mp[4096], img[4096];
    assert_int_equal(volumes_mount_point(v, "data", mp, sizeof mp, &err), 0);
    assert_true(is_mount_root(mp));
    /* Its root belongs to the volumes' owner, with nothing in it. */
    struct stat st;
    assert_int_equal(stat(mp, &st), 0);
    assert_int_equal(st.st_uid, SANDBOX_VOLUME_OWNER);
    char lf[4200];
    snprintf(lf, sizeof lf, "%s/lost+found", mp);
    assert_int_equal(access(lf, F_OK), -1);
    snprintf(img, sizeof img, "%s/volumes/data.img", dir);
    assert_int_equal(stat(img, &st), 0);
    assert_int_equal(st.st_size, 8 << 20);
    assert_true(st.st_blocks * 512 <= 8 << 20);

    char file[4200];
    snprintf(file, sizeof file, "%s/kept", mp);
    assert_int_equal(fs_write_file_atomic(file, "kept\n", 5, 0644, &err), 0);

    /* The same size again is the same volume; another size is refused. */
    created_t same = {0}, other = {0};
    volumes_create(v, "data", 8, on_created, &same);
    assert_true(same.called && same.r == 0 && !same.created);
    volumes_create(v, "data", 9, on_created, &other);
    assert_int_equal(other.r, -EEXIST);
    assert_non_null(strstr(other.err.msg, "resizing"));

    /* Closed: unmounted. Opened again: mounted again, the file there. */
    volumes_close(v);
    assert_false(is_mount_root(mp));
    v = open_volumes(&loop, s, dir, true);
    assert_true(is_mount_root(mp));
    buf_t text = BUF_INIT;
    assert_int_equal(fs_read_file(file, &text, 64, &err), 0);
    assert_string_equal(text.data, "kept\n");
    buf_release(&text);

    int done = 0;
    volumes_delete(v, "data", on_done, &done);
    assert_false(volumes_exists(v, "data")); /* at once */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(done, 1);
    assert_false(is_mount_root(mp));
    assert_int_equal(access(img, F_OK), -1);
    volume_info_t info;
    assert_int_equal(volumes_get(v, "data", &info, &err), -ENOENT);
    done = 0;
    volumes_delete(v, "data", on_done, &done);
    assert_int_equal(done, -ENOENT);
    volumes_close(v);
    store_close(s);
    uv_loop_close(&loop);
}

/* A recorded volume whose image is gone is listed with the reason, its
 * functions cannot mount it, and it can still be deleted. */
static void test_missing_image_is_reported(void **state)
{
    SKIP_UNLESS_ISOLATED();
    const char *dir = *state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    store_t *s = open_dir_store(dir);
    mf_error_t err = MF_ERROR_INIT;
    store_volume_t row = {.name = "lost", .size_mb = 4, .created_ms = 1};
    assert_int_equal(store_volume_add(s, &row, &err), 0);
    volumes_t *v = open_volumes(&loop, s, dir, true);
    volume_info_t info;
    assert_int_equal(volumes_get(v, "lost", &info, &err), 0);
    assert_false(info.mounted);
    assert_non_null(strstr(info.error, "missing"));
    char mp[4096];
    assert_int_equal(volumes_mount_point(v, "lost", mp, sizeof mp, &err), -EIO);
    assert_non_null(strstr(err.msg, "lost"));
    int done = 0;
    volumes_delete(v, "lost", on_done, &done);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(done, 1);
    assert_int_equal(store_volume_get(s, "lost", &row, &err), -ENOENT);
    volumes_close(v);
    store_close(s);
    uv_loop_close(&loop);
}

static void test_bad_names_are_refused(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    store_t *s = open_dir_store(*state);
    volumes_t *v = open_volumes(&loop, s, *state, isolated);
    const char *bad[] = {"", "a/b", "..", "a.img", "x y", NULL};
    for (size_t i = 0; bad[i]; i++) {
        created_t c = {0};
        volumes_create(v, bad[i], 4, on_created, &c);
        assert_int_equal(c.r, -EINVAL);
        assert_non_null(strstr(c.err.msg, "name: must match"));
    }
    char long_name[80];
    memset(long_name, 'a', 65);
    long_name[65] = '\0';
    created_t c = {0};
    volumes_create(v, long_name, 4, on_created, &c);
    assert_int_equal(c.r, -EINVAL);
    created_t z = {0};
    volumes_create(v, "fine", 0, on_created, &z);
    assert_int_equal(z.r, -EINVAL);
    assert_non_null(strstr(z.err.msg, "size_mb"));
    volumes_close(v);
    store_close(s);
    uv_loop_close(&loop);
}

int main(void)
{
    /* Before any thread (libuv's pool starts with the first create). */
    if (geteuid() == 0) {
        mf_error_t err = MF_ERROR_INIT;
        isolated = volumes_isolate_mounts(&err) == 0;
        if (!isolated)
            fprintf(stderr, "%s\n", err.msg);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_spec),
        cmocka_unit_test_setup_teardown(test_unavailable_says_why, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_create_mount_reopen_delete, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_missing_image_is_reported, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_bad_names_are_refused, setup_dir, teardown_dir),
    };
    const struct CMUnitTest store[] = {
        cmocka_unit_test_setup_teardown(test_store_table, setup_backend, teardown),
    };
    int failed = cmocka_run_group_tests_name("volumes", tests, NULL, NULL);
    return failed | run_on_both_backends("the volumes' table", store);
}
