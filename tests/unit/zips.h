/* Code zips for the registry's and the code packages' tests, built in
 * memory with libzip. */
#ifndef MAYFLY_TESTS_ZIPS_H
#define MAYFLY_TESTS_ZIPS_H

/* Included after <cmocka.h>, whose asserts it uses. */
#include <string.h>
#include <zip.h>

#include "core/buf.h"

/* A zip being built in memory: add entries to what zips_open gives, then
 * zips_close puts its bytes into out. */
static inline zip_t *zips_open(zip_source_t **src)
{
    zip_error_t ze;
    zip_error_init(&ze);
    *src = zip_source_buffer_create(NULL, 0, 0, &ze);
    assert_non_null(*src);
    zip_source_keep(*src);
    zip_t *za = zip_open_from_source(*src, ZIP_TRUNCATE, &ze);
    assert_non_null(za);
    return za;
}

static inline void zips_close(zip_t *za, zip_source_t *src, buf_t *out)
{
    if (zip_close(za) < 0)
        fail_msg("zip close: %s", zip_strerror(za));
    zip_stat_t st;
    assert_int_equal(zip_source_open(src), 0);
    assert_int_equal(zip_source_stat(src, &st), 0);
    buf_grow(out, st.size);
    assert_int_equal(zip_source_read(src, out->data, st.size), (zip_int64_t)st.size);
    out->len = st.size;
    out->data[out->len] = '\0';
    zip_source_close(src);
    zip_source_free(src);
}

/* A zip of (name, contents) pairs. */
static inline void make_zip(buf_t *out, const char *const *files)
{
    zip_source_t *src;
    zip_t *za = zips_open(&src);
    for (size_t i = 0; files[i]; i += 2) {
        zip_source_t *fs = zip_source_buffer(za, files[i + 1], strlen(files[i + 1]), 0);
        assert_non_null(fs);
        zip_int64_t idx = zip_file_add(za, files[i], fs, ZIP_FL_ENC_UTF_8);
        assert_true(idx >= 0);
        /* A fixed time: the same files must make the same bytes (and so
         * the same package digest) whenever the zip is built. */
        assert_int_equal(zip_file_set_mtime(za, (zip_uint64_t)idx, 1700000000, 0), 0);
    }
    zips_close(za, src, out);
}

#endif
