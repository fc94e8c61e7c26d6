/* The registry over a store that servers share (PostgreSQL): code
 * packages kept in the store beside the functions, so that a server with
 * an empty data directory unpacks what another deployed, and dropped from
 * it once no function uses them. Each test has a database of its own on
 * the server MAYFLY_TEST_PG names (store_backends.h). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "store_backends.h"
#include "zips.h"

#include "core/codec.h"
#include "core/fs.h"
#include "registry/registry.h"

/* One server: its own data directory and registry over the shared store. */
typedef struct node {
    char *dir;
    store_t *store;
    registry_t *reg;
} node_t;

static const code_limits_t limits = CODE_LIMITS_DEFAULT;

static void node_open(node_t *n, const backend_t *b)
{
    void *dir = NULL;
    assert_int_equal(setup_dir(&dir), 0);
    n->dir = dir;
    n->store = open_store(b);
    mf_error_t err = MF_ERROR_INIT;
    if (registry_open(n->store, n->dir, &limits, &n->reg, &err) < 0)
        fail_msg("registry_open: %s", err.msg);
}

static void node_close(node_t *n)
{
    registry_close(n->reg);
    store_close(n->store);
    void *dir = n->dir;
    teardown_dir(&dir);
}

/* Creates or updates name with the package of files; its digest in sha. */
static void put_code(node_t *n, const char *name, const char *const *files, char sha[65])
{
    buf_t zip = BUF_INIT, b64 = BUF_INIT;
    make_zip(&zip, files);
    codec_sha256_hex(sha, zip.data, zip.len);
    codec_base64_encode(&b64, zip.data, zip.len);
    json_t *body = json_pack("{s:s, s:s, s:{s:s}}", "runtime", "python3", "handler",
                             "app.handler", "code", "zip_base64", b64.data);
    fn_t f;
    bool created;
    mf_error_t err = MF_ERROR_INIT;
    if (registry_put(n->reg, name, body, &f, &created, &err) < 0)
        fail_msg("registry_put %s: %s", name, err.msg);
    assert_string_equal(f.code_sha256, sha);
    fn_clear(&f);
    json_decref(body);
    buf_release(&zip);
    buf_release(&b64);
}

/* The contents of the function's app.py as its server unpacked it, or
 * NULL when the package is not in that server's data directory. */
static char *unpacked_app(node_t *n, const char *name)
{
    fn_t f;
    mf_error_t err = MF_ERROR_INIT;
    if (registry_get(n->reg, name, &f, &err) < 0)
        fail_msg("registry_get %s: %s", name, err.msg);
    cleanup_free char *dir = registry_code_dir(n->reg, &f);
    cleanup_free char *path = xasprintf("%s/app.py", dir);
    fn_clear(&f);
    buf_t text = BUF_INIT;
    if (fs_read_file(path, &text, 1 << 20, &err) < 0) {
        buf_release(&text);
        return NULL;
    }
    return buf_detach(&text, NULL);
}

static const char *const v1[] = { "app.py", "def handler(e, c):\n    return 1\n", NULL };
static const char *const v2[] = { "app.py", "def handler(e, c):\n    return 2\n", NULL };

/* A server that starts with an empty data directory on a store another
 * server deployed to runs the same code: it unpacks the package from the
 * store when it opens. */
static void test_a_new_server_unpacks_what_another_deployed(void **state)
{
    backend_t *b = *state;
    node_t a, fresh;
    node_open(&a, b);
    char sha[65];
    put_code(&a, "f", v1, sha);
    assert_int_equal(pg_kept_packages(b, sha), 1);

    node_open(&fresh, b);
    cleanup_free char *app = unpacked_app(&fresh, "f");
    assert_non_null(app);
    assert_string_equal(app, v1[1]);
    node_close(&fresh);
    node_close(&a);
}

/* An update to other code drops the old package from the store as well as
 * from the server's directory; a package another function still uses
 * stays; deleting the last function drops it. */
static void test_a_package_leaves_the_store_with_its_last_function(void **state)
{
    backend_t *b = *state;
    node_t a;
    node_open(&a, b);
    char sha1[65], sha2[65], again[65];
    put_code(&a, "f", v1, sha1);
    put_code(&a, "g", v1, again);
    put_code(&a, "f", v2, sha2);
    assert_int_equal(pg_kept_packages(b, sha1), 1); /* g runs it */
    assert_int_equal(pg_kept_packages(b, sha2), 1);
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(registry_delete(a.reg, "g", &err), 0);
    assert_int_equal(pg_kept_packages(b, sha1), 0);
    assert_int_equal(registry_delete(a.reg, "f", &err), 0);
    assert_int_equal(pg_kept_packages(b, sha2), 0);
    node_close(&a);
}

/* A function whose package the store lost does not stop a server from
 * opening: the others run, and the lost one is not unpacked. */
static void test_a_package_missing_from_the_store_leaves_only_its_function_out(void **state)
{
    backend_t *b = *state;
    node_t a, fresh;
    node_open(&a, b);
    char sha1[65], sha2[65];
    put_code(&a, "lost", v1, sha1);
    put_code(&a, "fine", v2, sha2);
    PGconn *c = pg_connect(b->where);
    cleanup_free char *sql = xasprintf("DELETE FROM code_packages WHERE sha256 = '%s'", sha1);
    pg_exec(c, sql);
    PQfinish(c);

    node_open(&fresh, b);
    cleanup_free char *lost = unpacked_app(&fresh, "lost");
    cleanup_free char *fine = unpacked_app(&fresh, "fine");
    assert_null(lost);
    assert_non_null(fine);
    assert_string_equal(fine, v2[1]);
    node_close(&fresh);
    node_close(&a);
}

/* What another server changed, read back and taken in: a new function is
 * created with its package fetched from the store, an update changes it,
 * the server's own change is the same already, and a delete removes it,
 * its package leaving this server's directory but staying in the store
 * while the other server's function uses it. */
static int take_in(node_t *n, const char *name, fn_t *out, registry_sync_t *what)
{
    store_function_t row;
    mf_error_t err = MF_ERROR_INIT;
    int r = store_function_get(n->store, name, &row, &err);
    const store_function_t *at = r == 0 ? &row : NULL;
    if (r < 0 && r != -ENOENT)
        fail_msg("store_function_get %s: %s", name, err.msg);
    bool differs = registry_differs(n->reg, name, at);
    registry_fetch_begin(n->reg);
    if (at && registry_fetch_code(n->reg, row.code_sha256, &err) < 0)
        fail_msg("registry_fetch_code: %s", err.msg);
    r = registry_apply_stored(n->reg, name, at, out, what, &err);
    registry_fetch_end(n->reg);
    if (at)
        store_function_clear(&row);
    assert_int_equal(r, 0);
    assert_int_equal(differs, *what != REGISTRY_SAME);
    return r;
}

static void test_another_servers_changes_are_taken_in(void **state)
{
    backend_t *b = *state;
    node_t a, other;
    node_open(&a, b);
    node_open(&other, b);
    char sha1[65], sha2[65];
    fn_t f;
    registry_sync_t what;
    uint64_t changes = registry_changes(other.reg), own = registry_changes(a.reg);

    put_code(&a, "f", v1, sha1);
    take_in(&other, "f", &f, &what);
    assert_int_equal(what, REGISTRY_CREATED);
    assert_int_equal(f.version, 1);
    fn_clear(&f);
    cleanup_free char *app1 = unpacked_app(&other, "f");
    assert_string_equal(app1, v1[1]);
    take_in(&other, "f", &f, &what);
    assert_int_equal(what, REGISTRY_SAME);
    take_in(&a, "f", &f, &what); /* a hears its own */
    assert_int_equal(what, REGISTRY_SAME);

    put_code(&a, "f", v2, sha2);
    take_in(&other, "f", &f, &what);
    assert_int_equal(what, REGISTRY_CHANGED);
    assert_int_equal(f.version, 2);
    assert_string_equal(f.code_sha256, sha2);
    fn_clear(&f);
    cleanup_free char *app2 = unpacked_app(&other, "f");
    assert_string_equal(app2, v2[1]);
    cleanup_free char *old_dir = xasprintf("%s/code/%s", other.dir, sha1);
    assert_int_equal(access(old_dir, F_OK), -1); /* nothing here uses v1 now */

    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(registry_delete(a.reg, "f", &err), 0);
    take_in(&other, "f", &f, &what);
    assert_int_equal(what, REGISTRY_REMOVED);
    assert_int_equal(registry_check(other.reg, "f", &err), -ENOENT);
    take_in(&other, "f", &f, &what);
    assert_int_equal(what, REGISTRY_SAME);
    /* Taking in is not a change of this server's own. */
    assert_true(registry_changes(other.reg) == changes);
    assert_true(registry_changes(a.reg) == own + 3);
    node_close(&other);
    node_close(&a);
}

typedef struct forgot {
    backend_t *b;
    const char *sha;
} forgot_t;

static bool package_gone(void *ctx)
{
    forgot_t *f = ctx;
    return pg_kept_packages(f->b, f->sha) == 0;
}

/* A delete split as the API makes it: checked, written with another
 * connection (a writer's), taken in. A delete another server made first
 * is -ENOENT from the write, and the commit passes it on; with a writer
 * set, the package leaves the store by one of its jobs, not at once. */
static void test_a_split_delete_and_a_package_dropped_by_a_writer(void **state)
{
    backend_t *b = *state;
    node_t a, other;
    node_open(&a, b);
    node_open(&other, b);
    uv_loop_t loop;
    store_writer_t *w = start_writer(a.store, &loop);
    mf_error_t err = MF_ERROR_INIT;
    registry_set_writer(a.reg, w);

    char sha1[65], sha2[65];
    put_code(&a, "f", v1, sha1);
    put_code(&a, "g", v2, sha2);
    put_code(&other, "h", v2, sha2);
    assert_int_equal(registry_delete_plan(a.reg, "ghost", &err), -ENOENT);
    assert_int_equal(registry_delete_plan(a.reg, "f", &err), 0);
    store_t *wdb = open_store(b); /* the writer's connection, as it were */
    assert_int_equal(registry_delete_write(wdb, "f", &err), 0);
    assert_int_equal(registry_check(a.reg, "f", &err), 0); /* not taken in yet */
    uint64_t changes = registry_changes(a.reg);
    assert_int_equal(registry_delete_commit(a.reg, "f", 0, &err, &err), 0);
    assert_int_equal(registry_check(a.reg, "f", &err), -ENOENT);
    assert_true(registry_changes(a.reg) == changes + 1);
    /* Its package leaves by the writer's job. */
    assert_int_equal(pg_kept_packages(b, sha1), 1);
    forgot_t gone = { b, sha1 };
    assert_true(run_writer_until(&loop, w, package_gone, &gone));

    /* g: another server deletes it between this one's check and write. */
    assert_int_equal(registry_delete_plan(a.reg, "g", &err), 0);
    assert_int_equal(store_function_delete(other.store, "g", &err), 0);
    int r = registry_delete_write(wdb, "g", &err);
    assert_int_equal(r, -ENOENT);
    mf_error_t e = MF_ERROR_INIT;
    assert_int_equal(registry_delete_commit(a.reg, "g", r, &err, &e), -ENOENT);
    assert_non_null(strstr(e.msg, "g"));
    /* h of the other server still runs sha2: the store keeps it. */
    assert_int_equal(pg_kept_packages(b, sha2), 1);

    assert_int_equal(stop_writer(w, &loop), 0);
    registry_set_writer(a.reg, NULL);
    store_close(wdb);
    node_close(&other);
    node_close(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_new_server_unpacks_what_another_deployed, setup_pg,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_package_leaves_the_store_with_its_last_function,
                                        setup_pg, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_package_missing_from_the_store_leaves_only_its_function_out, setup_pg,
            teardown),
        cmocka_unit_test_setup_teardown(test_another_servers_changes_are_taken_in, setup_pg,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_split_delete_and_a_package_dropped_by_a_writer,
                                        setup_pg, teardown),
    };
    if (!pg_available())
        return 0;
    return cmocka_run_group_tests_name("the registry over PostgreSQL", tests, NULL, NULL);
}
