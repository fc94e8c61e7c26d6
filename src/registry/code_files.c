/* An unpacked package read back: its entries for a listing, and the tree
 * zipped again for a download where the store keeps no copy of the zip as
 * uploaded. The tree is the one code_install wrote (content-addressed,
 * never changed in place), so it is walked with *at() calls that never
 * follow a symlink, and a symlink is reported, never entered. */
#include "registry/code.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "core/cleanup.h"
#include "core/codec.h"
#include "core/xalloc.h"

#define CURSOR_TAG "p."

/* 2000-01-01 00:00 as MS-DOS packs a date and a time: every entry of a
 * zip made again carries it (the unpacked files' own times say when this
 * server unpacked them, not when they were written). */
#define CODE_ZIP_DOSDATE ((20u << 9) | (1u << 5) | 1u)
#define CODE_ZIP_DOSTIME 0u

typedef struct files_acc {
    code_file_t *v;
    size_t n, cap;
} files_acc_t;

static code_file_t *files_push(files_acc_t *a)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 64;
        a->v = xrealloc(a->v, a->cap * sizeof *a->v);
    }
    code_file_t *f = &a->v[a->n++];
    memset(f, 0, sizeof *f);
    return f;
}

/* Adds the entries below the directory dfd (taken over) to a, their paths
 * prefixed by prefix ("" at the top). */
static int files_walk(int dfd, const char *prefix, files_acc_t *a, mf_error_t *err)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        int e = errno;
        close(dfd);
        return mf_error_set(err, e, "code: read directory `%s`", *prefix ? prefix : ".");
    }
    int r = 0;
    struct dirent *de;
    for (;;) {
        errno = 0;
        if (!(de = readdir(d))) {
            if (errno)
                r = mf_error_set(err, errno, "code: read directory `%s`", *prefix ? prefix : ".");
            break;
        }
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            r = mf_error_set(err, errno, "code: stat `%s%s`", prefix, de->d_name);
            break;
        }
        cleanup_free char *path = xasprintf("%s%s", prefix, de->d_name);
        if (S_ISREG(st.st_mode)) {
            code_file_t *f = files_push(a);
            f->type = CODE_FILE_REGULAR;
            f->mode = st.st_mode & 07777;
            f->size = st.st_size;
            f->path = steal_pointer(&path);
        } else if (S_ISLNK(st.st_mode)) {
            char target[4097];
            ssize_t n = readlinkat(dirfd(d), de->d_name, target, sizeof target - 1);
            if (n < 0) {
                r = mf_error_set(err, errno, "code: read symlink `%s`", path);
                break;
            }
            target[n] = '\0';
            code_file_t *f = files_push(a);
            f->type = CODE_FILE_SYMLINK;
            f->mode = 0777;
            f->size = n;
            f->target = xstrdup(target);
            f->path = steal_pointer(&path);
        } else if (S_ISDIR(st.st_mode)) {
            int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                r = mf_error_set(err, errno, "code: open directory `%s`", path);
                break;
            }
            code_file_t *f = files_push(a);
            f->type = CODE_FILE_DIR;
            f->mode = st.st_mode & 07777;
            f->path = xstrdup(path);
            cleanup_free char *below = xasprintf("%s/", path);
            if ((r = files_walk(sub, below, a, err)) < 0)
                break;
        }
        /* Nothing else is ever unpacked (code_install makes files,
         * directories and symlinks only). */
    }
    closedir(d);
    return r;
}

static int files_cmp(const void *a, const void *b)
{
    return strcmp(((const code_file_t *)a)->path, ((const code_file_t *)b)->path);
}

int code_files(const char *dir, code_file_t **out, size_t *count, mf_error_t *err)
{
    *out = NULL;
    *count = 0;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return mf_error_set(err, errno, "code: open the package");
    files_acc_t a = {0};
    int r = files_walk(dfd, "", &a, err);
    if (r < 0) {
        code_files_free(a.v, a.n);
        return r;
    }
    if (a.n)
        qsort(a.v, a.n, sizeof *a.v, files_cmp);
    *out = a.v;
    *count = a.n;
    return 0;
}

void code_files_free(code_file_t *files, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(files[i].path);
        free(files[i].target);
    }
    free(files);
}

/* The 22 bytes of a zip with no entries (an end of central directory
 * record and nothing else): libzip writes nothing at all for one. */
static const unsigned char code__empty_zip[22] = {0x50, 0x4b, 0x05, 0x06};

static int zip_fail(zip_t *za, const char *what, const char *path, mf_error_t *err)
{
    return mf_error_plain(err, EIO, "code: zip %s `%s`: %s", what, path, zip_strerror(za));
}

/* Adds the entry f of the package at dir to za. */
static int zip_add_entry(zip_t *za, const char *dir, const code_file_t *f, mf_error_t *err)
{
    zip_int64_t idx;
    zip_uint32_t attr;
    if (f->type == CODE_FILE_DIR) {
        idx = zip_dir_add(za, f->path, ZIP_FL_ENC_RAW);
        if (idx < 0)
            return zip_fail(za, "add directory", f->path, err);
        attr = (S_IFDIR | f->mode) << 16;
    } else {
        zip_source_t *src;
        if (f->type == CODE_FILE_SYMLINK) {
            /* A symlink's data is its target, as Info-ZIP stores one. */
            src = zip_source_buffer(za, f->target, strlen(f->target), 0);
            attr = (S_IFLNK | 0777u) << 16;
        } else {
            cleanup_free char *full = xasprintf("%s/%s", dir, f->path);
            /* Opened when the archive is written, by which time the
             * package is still the same: it never changes in place. */
            src = zip_source_file(za, full, 0, -1);
            attr = (S_IFREG | f->mode) << 16;
        }
        if (!src)
            return zip_fail(za, "read", f->path, err);
        idx = zip_file_add(za, f->path, src, ZIP_FL_ENC_RAW);
        if (idx < 0) {
            zip_source_free(src);
            return zip_fail(za, "add", f->path, err);
        }
        /* A symlink's few bytes are stored as they are. */
        if (f->type == CODE_FILE_SYMLINK &&
            zip_set_file_compression(za, (zip_uint64_t)idx, ZIP_CM_STORE, 0) < 0)
            return zip_fail(za, "store", f->path, err);
    }
    if (zip_file_set_external_attributes(za, (zip_uint64_t)idx, 0, ZIP_OPSYS_UNIX, attr) < 0 ||
        zip_file_set_dostime(za, (zip_uint64_t)idx, CODE_ZIP_DOSTIME, CODE_ZIP_DOSDATE, 0) < 0)
        return zip_fail(za, "describe", f->path, err);
    return 0;
}

/* Copies what src holds (an archive libzip has written) into out. */
static int zip_take(zip_source_t *src, buf_t *out, mf_error_t *err)
{
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_source_stat(src, &st) < 0 || !(st.valid & ZIP_STAT_SIZE) ||
        zip_source_open(src) < 0)
        return mf_error_plain(err, EIO, "code: read the zip made: %s",
                              zip_error_strerror(zip_source_error(src)));
    buf_reset(out);
    buf_grow(out, (size_t)st.size);
    int r = 0;
    while (out->len < st.size) {
        zip_int64_t n = zip_source_read(src, out->data + out->len, st.size - out->len);
        if (n <= 0) {
            r = mf_error_plain(err, EIO, "code: read the zip made: %s",
                               n < 0 ? zip_error_strerror(zip_source_error(src)) : "it ends early");
            break;
        }
        out->len += (size_t)n;
    }
    out->data[out->len] = '\0';
    zip_source_close(src);
    return r;
}

int code_zip(const char *dir, buf_t *out, mf_error_t *err)
{
    code_file_t *files;
    size_t n;
    int r = code_files(dir, &files, &n, err);
    if (r < 0)
        return r;
    if (n == 0) {
        code_files_free(files, n);
        buf_reset(out);
        buf_add(out, code__empty_zip, sizeof code__empty_zip);
        return 0;
    }
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(NULL, 0, 0, &ze);
    if (!src) {
        r = mf_error_plain(err, ENOMEM, "code: make a zip: %s", zip_error_strerror(&ze));
        zip_error_fini(&ze);
        code_files_free(files, n);
        return r;
    }
    /* The archive's bytes stay in src after zip_close, to be read. */
    zip_source_keep(src);
    zip_t *za = zip_open_from_source(src, ZIP_TRUNCATE, &ze);
    if (!za) {
        r = mf_error_plain(err, EIO, "code: make a zip: %s", zip_error_strerror(&ze));
    } else {
        for (size_t i = 0; i < n && r == 0; i++)
            r = zip_add_entry(za, dir, &files[i], err);
        if (r < 0) {
            zip_discard(za);
        } else if (zip_close(za) < 0) {
            r = mf_error_plain(err, EIO, "code: write the zip: %s", zip_strerror(za));
            zip_discard(za);
        } else {
            r = zip_take(src, out, err);
        }
    }
    zip_error_fini(&ze);
    zip_source_free(src);
    code_files_free(files, n);
    return r;
}

void code_cursor_format(buf_t *out, const char *path, size_t len)
{
    cleanup_buf buf_t b64 = BUF_INIT;
    codec_base64_encode(&b64, path, len);
    buf_adds(out, CURSOR_TAG);
    for (size_t i = 0; i < b64.len && b64.data[i] != '='; i++)
        buf_addch(out, b64.data[i] == '+' ? '-' : b64.data[i] == '/' ? '_' : b64.data[i]);
}

int code_cursor_parse(const char *s, size_t len, buf_t *out)
{
    size_t tag = sizeof CURSOR_TAG - 1;
    buf_reset(out);
    if (len <= tag || memcmp(s, CURSOR_TAG, tag) ||
        len - tag > 4 * ((CODE_CURSOR_PATH_MAX + 2) / 3))
        return -EINVAL;
    cleanup_buf buf_t std = BUF_INIT;
    for (size_t i = tag; i < len; i++) {
        char c = s[i];
        if (c == '+' || c == '/' || c == '=')
            return -EINVAL;
        buf_addch(&std, c == '-' ? '+' : c == '_' ? '/' : c);
    }
    int r = codec_base64_decode(out, std.data, std.len, CODE_CURSOR_PATH_MAX);
    /* A path: not empty, no NUL. */
    if (r == 0 && (out->len == 0 || memchr(out->data, '\0', out->len)))
        r = -EINVAL;
    if (r == 0) {
        /* Only the one spelling this server writes: a cursor is not to be
         * edited. */
        cleanup_buf buf_t again = BUF_INIT;
        code_cursor_format(&again, out->data, out->len);
        if (again.len != len || memcmp(again.data, s, len))
            r = -EINVAL;
    }
    if (r < 0) {
        buf_reset(out);
        return -EINVAL;
    }
    return 0;
}
