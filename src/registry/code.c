/* Code packages: a zip from a client is untrusted input that is about to
 * become files on the server's disk, so it is checked twice. First the
 * whole entry table is validated without writing anything (names, types,
 * duplicates, symlink targets, declared sizes); then it is unpacked with
 * *at() calls that never follow a symlink, counting the bytes actually
 * written, into a temporary directory that is renamed into place only when
 * complete. */
#include "registry/code.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "core/buf.h"
#include "core/cleanup.h"
#include "core/codec.h"
#include "core/fs.h"
#include "core/id.h"
#include "core/xalloc.h"

/* Linux's own limits: a symlink target fits in PATH_MAX with its NUL, and
 * path resolution gives up after 40 links (MAXSYMLINKS). */
#define CODE_TARGET_MAX 4095
#define CODE_LINK_HOPS 40
/* Well under PATH_MAX, so that CODE_ROOT/<sha>/ in front of an entry and
 * /var/task/ inside the sandbox still leave a path the kernel accepts. */
#define CODE_PATH_MAX 2048
#define CODE_NAME_MAX 255
#define CODE_CHUNK (64u << 10)

typedef enum { CODE_FILE, CODE_DIR, CODE_LINK } code_kind_t;

typedef struct code_entry {
    zip_uint64_t index;
    const char *name; /* as in the zip (owned by the zip_t), for messages */
    char *path;       /* normalised: relative, no `.`, no empty parts */
    code_kind_t kind;
    mode_t mode;  /* files: 0644, or 0755 when the zip gave any x bit */
    char *target; /* symlinks: the target, checked to stay inside */
} code_entry_t;

typedef struct code_pkg {
    zip_t *za;
    code_entry_t *entries;
    size_t count;
    uint64_t declared; /* sum of the sizes the zip declares */
} code_pkg_t;

/* Client text made fit for a message: printable and short. */
#define SHOW(name) mf_error_show((name), 200, (char[256]){0}, 256)

static void code__size_str(uint64_t n, char *out, size_t size)
{
    if (n && n % (1u << 20) == 0)
        snprintf(out, size, "%llu MiB", (unsigned long long)(n >> 20));
    else if (n && n % (1u << 10) == 0)
        snprintf(out, size, "%llu KiB", (unsigned long long)(n >> 10));
    else
        snprintf(out, size, "%llu bytes", (unsigned long long)n);
}

static int code__too_big(mf_error_t *err, uint64_t limit)
{
    char lim[32];
    code__size_str(limit, lim, sizeof lim);
    return mf_error_plain(err, EFBIG, "code: the package unpacks to more than %s", lim);
}

/* Turns an entry name into a relative path with no `.`, `..` or empty
 * parts, or says what is wrong with it. *path is NULL for the package's own
 * root (a "./" entry), which needs nothing done. */
static int code__normalise(const char *name, char **path, mf_error_t *err)
{
    *path = NULL;
    if (!*name)
        return mf_error_plain(err, EINVAL, "code: an entry has an empty name");
    for (const char *p = name; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f)
            return mf_error_plain(err, EINVAL, "code: entry `%s` has a control character in its name",
                              SHOW(name));
        /* A zip made on Windows may use `\` as a separator; unpacked here
         * it would be part of a file name, so a `..\x` slips past the `..`
         * check and escapes on any tool that reads it the Windows way. */
        if (c == '\\')
            return mf_error_plain(err, EINVAL, "code: entry `%s` has a backslash in its name",
                              SHOW(name));
    }
    if (name[0] == '/')
        return mf_error_plain(err, EINVAL, "code: entry `%s` is an absolute path", SHOW(name));
    if (isalpha((unsigned char)name[0]) && name[1] == ':')
        return mf_error_plain(err, EINVAL, "code: entry `%s` starts with a drive letter", SHOW(name));

    buf_t out = BUF_INIT;
    const char *p = name;
    while (*p) {
        size_t len = strcspn(p, "/");
        if (len == 2 && p[0] == '.' && p[1] == '.') {
            buf_release(&out);
            return mf_error_plain(err, EINVAL, "code: entry `%s` leaves the package", SHOW(name));
        }
        if (len > CODE_NAME_MAX) {
            buf_release(&out);
            return mf_error_plain(err, EINVAL, "code: entry `%s` has a name part over %d bytes",
                              SHOW(name), CODE_NAME_MAX);
        }
        if (len && !(len == 1 && p[0] == '.')) {
            if (out.len)
                buf_addch(&out, '/');
            buf_add(&out, p, len);
        }
        p += len;
        if (*p == '/')
            p++;
    }
    if (out.len > CODE_PATH_MAX) {
        buf_release(&out);
        return mf_error_plain(err, EINVAL, "code: entry `%s` has a name over %d bytes", SHOW(name),
                          CODE_PATH_MAX);
    }
    if (out.len)
        *path = buf_detach(&out, NULL);
    return 0;
}

static int code__read_target(code_pkg_t *pkg, code_entry_t *e, uint64_t size, mf_error_t *err)
{
    if (size == 0 || size > CODE_TARGET_MAX)
        return mf_error_plain(err, EINVAL, "code: symlink `%s` has a target of %llu bytes",
                          SHOW(e->name), (unsigned long long)size);
    zip_file_t *zf = zip_fopen_index(pkg->za, e->index, 0);
    if (!zf)
        return mf_error_plain(err, EINVAL, "code: entry `%s` cannot be read: %s", SHOW(e->name),
                          zip_strerror(pkg->za));
    char target[CODE_TARGET_MAX + 1];
    zip_int64_t n = zip_fread(zf, target, size);
    int r = 0;
    if (n < 0)
        r = mf_error_plain(err, EINVAL, "code: entry `%s` is corrupt: %s", SHOW(e->name),
                       zip_file_strerror(zf));
    else if ((uint64_t)n != size || memchr(target, '\0', (size_t)n))
        r = mf_error_plain(err, EINVAL, "code: symlink `%s` has a bad target", SHOW(e->name));
    zip_fclose(zf);
    if (r < 0)
        return r;
    target[n] = '\0';
    if (target[0] == '/')
        return mf_error_plain(err, EINVAL, "code: symlink `%s` points outside the package (`%s`)",
                          SHOW(e->name), SHOW(target));
    e->target = xstrdup(target);
    return 0;
}

/* Reads the entry table: names, kinds, modes, symlink targets and the
 * declared total, without unpacking any file. */
static int code__read_entries(code_pkg_t *pkg, const code_limits_t *limits, mf_error_t *err)
{
    zip_int64_t n = zip_get_num_entries(pkg->za, 0);
    if (n < 0)
        return mf_error_plain(err, EINVAL, "code: not a valid zip archive");
    if ((uint64_t)n > limits->max_files)
        return mf_error_plain(err, EFBIG, "code: the zip has %lld entries, over the limit of %llu",
                          (long long)n, (unsigned long long)limits->max_files);
    pkg->entries = xcalloc((size_t)n ? (size_t)n : 1, sizeof *pkg->entries);

    for (zip_uint64_t i = 0; i < (zip_uint64_t)n; i++) {
        zip_stat_t st;
        zip_stat_init(&st);
        if (zip_stat_index(pkg->za, i, 0, &st) < 0 || !(st.valid & ZIP_STAT_NAME) ||
            !(st.valid & ZIP_STAT_SIZE))
            return mf_error_plain(err, EINVAL, "code: entry %llu cannot be read: %s",
                              (unsigned long long)i, zip_strerror(pkg->za));
        char *path = NULL;
        int r = code__normalise(st.name, &path, err);
        if (r < 0)
            return r;
        if (__builtin_add_overflow(pkg->declared, st.size, &pkg->declared))
            pkg->declared = UINT64_MAX;
        if (!path)
            continue;

        code_entry_t *e = &pkg->entries[pkg->count++];
        e->index = i;
        e->name = st.name;
        e->path = path;

        zip_uint8_t opsys = 0;
        zip_uint32_t attr = 0;
        if (zip_file_get_external_attributes(pkg->za, i, 0, &opsys, &attr) < 0)
            attr = 0;
        /* Only a zip made on Unix carries a mode, in the high 16 bits. */
        mode_t mode = opsys == ZIP_OPSYS_UNIX ? (mode_t)(attr >> 16) : 0;
        size_t len = strlen(st.name);
        if (st.name[len - 1] == '/') {
            e->kind = CODE_DIR;
        } else {
            switch (mode & S_IFMT) {
            case S_IFLNK: e->kind = CODE_LINK; break;
            case S_IFDIR: e->kind = CODE_DIR; break;
            case 0:
            case S_IFREG: e->kind = CODE_FILE; break;
            default:
                return mf_error_plain(err, EINVAL,
                                  "code: entry `%s` is not a file, directory or symlink",
                                  SHOW(st.name));
            }
        }
        e->mode = mode & 0111 ? 0755 : 0644;
        if (e->kind == CODE_LINK && (r = code__read_target(pkg, e, st.size, err)) < 0)
            return r;
    }
    return 0;
}

static int code__cmp_entry(const void *a, const void *b)
{
    return strcmp(((const code_entry_t *)a)->path, ((const code_entry_t *)b)->path);
}

static int code__cmp_key(const void *key, const void *e)
{
    return strcmp(key, ((const code_entry_t *)e)->path);
}

static const code_entry_t *code__lookup(const code_pkg_t *pkg, const char *path)
{
    return bsearch(path, pkg->entries, pkg->count, sizeof *pkg->entries, code__cmp_key);
}

/* Resolves a symlink the way the kernel would, but inside the package's
 * entry table: each component is looked up, a component that is itself a
 * symlink in the package is replaced by its target, and `..` that would
 * climb above the package's root means the link escapes. A purely textual
 * check is not enough: with `s/up -> ..`, the link `t -> s/up/..` looks
 * like `s` but lands above the package. Returns 0 when the link stays in. */
static int code__check_link(const code_pkg_t *pkg, const code_entry_t *link, mf_error_t *err)
{
    cleanup_buf buf_t cur = BUF_INIT;
    cleanup_buf buf_t todo = BUF_INIT;
    const char *slash = strrchr(link->path, '/');
    if (slash)
        buf_add(&cur, link->path, (size_t)(slash - link->path));
    buf_adds(&todo, link->target);

    int hops = 0;
    while (todo.len) {
        size_t len = strcspn(todo.data, "/");
        cleanup_free char *part = xstrndup(todo.data, len);
        buf_consume(&todo, len < todo.len ? len + 1 : len);
        if (!*part || !strcmp(part, "."))
            continue;
        if (!strcmp(part, "..")) {
            if (!cur.len)
                return mf_error_plain(err, EINVAL,
                                  "code: symlink `%s` points outside the package (`%s`)",
                                  SHOW(link->name), SHOW(link->target));
            char *up = strrchr(cur.data, '/');
            cur.len = up ? (size_t)(up - cur.data) : 0;
            cur.data[cur.len] = '\0';
            continue;
        }
        size_t before = cur.len;
        if (cur.len)
            buf_addch(&cur, '/');
        buf_adds(&cur, part);
        const code_entry_t *e = code__lookup(pkg, cur.data);
        if (!e || e->kind != CODE_LINK)
            continue;
        if (++hops > CODE_LINK_HOPS)
            return mf_error_plain(err, EINVAL, "code: symlink `%s` is part of a symlink loop",
                              SHOW(link->name));
        /* Step back to the link's directory and walk its target instead;
         * what was left to walk follows the target. */
        cur.len = before;
        cur.data[cur.len] = '\0';
        cleanup_buf buf_t next = BUF_INIT;
        buf_adds(&next, e->target);
        if (todo.len) {
            buf_addch(&next, '/');
            buf_add(&next, todo.data, todo.len);
        }
        buf_reset(&todo);
        buf_add(&todo, next.data, next.len);
    }
    return 0;
}

/* Checks the table as a whole: every path once (a directory may repeat),
 * nothing below a file or a symlink, every symlink inside the package. */
static int code__check_entries(code_pkg_t *pkg, mf_error_t *err)
{
    qsort(pkg->entries, pkg->count, sizeof *pkg->entries, code__cmp_entry);
    for (size_t i = 0; i < pkg->count; i++) {
        const code_entry_t *e = &pkg->entries[i];
        if (i > 0 && !strcmp(e->path, pkg->entries[i - 1].path) &&
            (e->kind != CODE_DIR || pkg->entries[i - 1].kind != CODE_DIR))
            return mf_error_plain(err, EINVAL, "code: entry `%s` appears twice", SHOW(e->name));

        cleanup_free char *prefix = xstrdup(e->path);
        for (char *p = strchr(prefix, '/'); p; p = strchr(p + 1, '/')) {
            *p = '\0';
            const code_entry_t *parent = code__lookup(pkg, prefix);
            *p = '/';
            if (parent && parent->kind == CODE_LINK)
                return mf_error_plain(err, EINVAL, "code: entry `%s` is inside symlink `%s`",
                                  SHOW(e->name), SHOW(parent->name));
            if (parent && parent->kind == CODE_FILE)
                return mf_error_plain(err, EINVAL, "code: entry `%s` is inside file `%s`",
                                  SHOW(e->name), SHOW(parent->name));
        }
        int r;
        if (e->kind == CODE_LINK && (r = code__check_link(pkg, e, err)) < 0)
            return r;
    }
    return 0;
}

static void code__pkg_free(code_pkg_t *pkg)
{
    for (size_t i = 0; i < pkg->count; i++) {
        free(pkg->entries[i].path);
        free(pkg->entries[i].target);
    }
    free(pkg->entries);
    if (pkg->za)
        zip_discard(pkg->za);
}

/* Opens the directory that will hold path's last component, creating the
 * ones before it. O_NOFOLLOW on every step is what keeps a symlink that an
 * earlier entry planted from redirecting a later write outside the package,
 * whatever the table checks above missed. */
static int code__open_parent(int top, const code_entry_t *e, const char **leaf, mf_error_t *err)
{
    cleanup_free char *path = xstrdup(e->path);
    cleanup_close int fd = openat(top, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return mf_error_set(err, errno, "code: open the package directory");
    char *part = path;
    for (char *slash; (slash = strchr(part, '/')); part = slash + 1) {
        *slash = '\0';
        bool made = mkdirat(fd, part, 0755) == 0;
        if (!made && errno != EEXIST)
            return mf_error_set(err, errno, "code: create the directory for `%s`", SHOW(e->name));
        int next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) {
            if (errno == ELOOP || errno == ENOTDIR)
                return mf_error_plain(err, EINVAL, "code: entry `%s` goes through a symlink or a file",
                                  SHOW(e->name));
            return mf_error_set(err, errno, "code: open the directory for `%s`", SHOW(e->name));
        }
        /* Explicit, so the server's umask cannot make code unreadable to
         * the unprivileged user a sandbox runs as. */
        if (made)
            fchmod(next, 0755);
        close(fd);
        fd = next;
    }
    *leaf = e->path + (part - path);
    return steal_fd(&fd);
}

static int code__write_file(code_pkg_t *pkg, const code_entry_t *e, int dirfd_, const char *leaf,
                            char *chunk, uint64_t *total, uint64_t max, mf_error_t *err)
{
    cleanup_close int fd =
        openat(dirfd_, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            return mf_error_plain(err, EINVAL, "code: entry `%s` appears twice", SHOW(e->name));
        return mf_error_set(err, errno, "code: create `%s`", SHOW(e->name));
    }
    zip_file_t *zf = zip_fopen_index(pkg->za, e->index, 0);
    if (!zf)
        return mf_error_plain(err, EINVAL, "code: entry `%s` cannot be read: %s", SHOW(e->name),
                          zip_strerror(pkg->za));
    int r = 0;
    for (;;) {
        zip_int64_t n = zip_fread(zf, chunk, CODE_CHUNK);
        if (n < 0) {
            r = mf_error_plain(err, EINVAL, "code: entry `%s` is corrupt: %s", SHOW(e->name),
                           zip_file_strerror(zf));
            break;
        }
        if (n == 0)
            break;
        /* Counted as written, not as declared: the sizes in a zip are the
         * client's claim, the inflated bytes are the truth. */
        *total += (uint64_t)n;
        if (*total > max) {
            r = code__too_big(err, max);
            break;
        }
        int w = fs_write_all(fd, chunk, (size_t)n);
        if (w < 0) {
            r = mf_error_set(err, -w, "code: write `%s`", SHOW(e->name));
            break;
        }
    }
    zip_fclose(zf);
    if (r < 0)
        return r;
    if (fchmod(fd, e->mode) < 0)
        return mf_error_set(err, errno, "code: chmod `%s`", SHOW(e->name));
    return 0;
}

static int code__make_dir(const code_entry_t *e, int dirfd_, const char *leaf, mf_error_t *err)
{
    if (mkdirat(dirfd_, leaf, 0755) < 0) {
        if (errno != EEXIST)
            return mf_error_set(err, errno, "code: create directory `%s`", SHOW(e->name));
        struct stat st;
        if (fstatat(dirfd_, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
            return mf_error_plain(err, EINVAL, "code: entry `%s` appears twice", SHOW(e->name));
        return 0;
    }
    cleanup_close int fd = openat(dirfd_, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fchmod(fd, 0755) < 0)
        return mf_error_set(err, errno, "code: chmod `%s`", SHOW(e->name));
    return 0;
}

static int code__unpack(code_pkg_t *pkg, int top, uint64_t max, uint64_t *total, mf_error_t *err)
{
    cleanup_free char *chunk = xmalloc(CODE_CHUNK);
    for (size_t i = 0; i < pkg->count; i++) {
        const code_entry_t *e = &pkg->entries[i];
        const char *leaf = NULL;
        cleanup_close int dfd = code__open_parent(top, e, &leaf, err);
        if (dfd < 0)
            return dfd;
        int r = 0;
        switch (e->kind) {
        case CODE_DIR: r = code__make_dir(e, dfd, leaf, err); break;
        case CODE_FILE: r = code__write_file(pkg, e, dfd, leaf, chunk, total, max, err); break;
        case CODE_LINK:
            if (symlinkat(e->target, dfd, leaf) < 0)
                r = errno == EEXIST
                        ? mf_error_plain(err, EINVAL, "code: entry `%s` appears twice", SHOW(e->name))
                        : mf_error_set(err, errno, "code: create symlink `%s`", SHOW(e->name));
            break;
        }
        if (r < 0)
            return r;
    }
    return 0;
}

/* The bytes of regular files below dirfd_, for a package unpacked by an
 * earlier call: the same number the unpacking counted. */
static int code__tree_size(int dirfd_, uint64_t *total, mf_error_t *err)
{
    int fd = openat(dirfd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return mf_error_set(err, errno, "code: open a package directory");
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return mf_error_set(err, errno, "code: read a package directory");
    }
    int r = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            r = mf_error_set(err, errno, "code: stat `%s`", de->d_name);
            break;
        }
        if (S_ISREG(st.st_mode)) {
            *total += (uint64_t)st.st_size;
        } else if (S_ISDIR(st.st_mode)) {
            cleanup_close int sub =
                openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                r = mf_error_set(err, errno, "code: open `%s`", de->d_name);
                break;
            }
            if ((r = code__tree_size(sub, total, err)) < 0)
                break;
        }
    }
    closedir(d);
    return r;
}

static int code__open_zip(code_pkg_t *pkg, const void *zip, size_t zip_len, mf_error_t *err)
{
    /* An empty body would open as a new, empty archive. */
    if (zip_len == 0)
        return mf_error_plain(err, EINVAL, "code: not a valid zip archive");
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(zip, zip_len, 0, &ze);
    if (!src) {
        zip_error_fini(&ze);
        return mf_error_plain(err, ENOMEM, "code: cannot read the zip");
    }
    /* No ZIP_CHECKCONS: libzip before 1.10.1 rejects the zips macOS's
     * Archive Utility makes with it, and what it guards against (local and
     * central headers that disagree, overlapping entries) is covered by
     * counting inflated bytes and by taking names from the central
     * directory only. */
    pkg->za = zip_open_from_source(src, ZIP_RDONLY, &ze);
    zip_error_fini(&ze);
    if (!pkg->za) {
        zip_source_free(src);
        return mf_error_plain(err, EINVAL, "code: not a valid zip archive");
    }
    return 0;
}

/* Unpacks into CODE_ROOT/.tmp-<sha>-<random> and renames that into place,
 * so a reader never sees a half-written package, and a crash leaves only a
 * .tmp- directory that the registry sweeps at open. */
static int code__unpack_into(code_pkg_t *pkg, int root, const char *code_root, const char *sha,
                             uint64_t max, uint64_t *total, mf_error_t *err)
{
    uint8_t rnd[8];
    char rnd_hex[2 * sizeof rnd + 1];
    id_random_bytes(rnd, sizeof rnd);
    codec_hex(rnd_hex, rnd, sizeof rnd);
    cleanup_free char *tmp_name = xasprintf(".tmp-%s-%s", sha, rnd_hex);
    cleanup_free char *tmp_path = xasprintf("%s/%s", code_root, tmp_name);
    if (mkdirat(root, tmp_name, 0755) < 0)
        return mf_error_set(err, errno, "code: create `%s`", tmp_path);

    int r;
    int tmp = openat(root, tmp_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (tmp < 0)
        r = mf_error_set(err, errno, "code: open `%s`", tmp_path);
    else if (fchmod(tmp, 0755) < 0)
        r = mf_error_set(err, errno, "code: chmod `%s`", tmp_path);
    else
        r = code__unpack(pkg, tmp, max, total, err);
    /* One syncfs for the whole tree instead of an fsync per file: the
     * rename below must not become durable before the files it names. */
    if (r == 0 && syncfs(tmp) < 0)
        r = mf_error_set(err, errno, "code: sync `%s`", tmp_path);
    if (tmp >= 0)
        close(tmp);
    /* EEXIST/ENOTEMPTY: the same bytes were unpacked meanwhile, and that
     * copy is as good as this one. */
    if (r == 0 && renameat(root, tmp_name, root, sha) < 0 && errno != EEXIST && errno != ENOTEMPTY)
        r = mf_error_set(err, errno, "code: rename `%s`", tmp_path);
    if (r == 0 && fsync(root) < 0)
        r = mf_error_set(err, errno, "code: sync `%s`", code_root);
    /* Gone after a successful rename; after a failure, the half-written
     * package must not stay behind. */
    mf_error_t ignored = MF_ERROR_INIT;
    fs_rm_rf(tmp_path, &ignored);
    return r;
}

static int code__install_pkg(code_pkg_t *pkg, const char *code_root, const void *zip,
                             size_t zip_len, const code_limits_t *limits, const char *sha,
                             uint64_t *total, mf_error_t *err)
{
    int r;
    if ((r = code__open_zip(pkg, zip, zip_len, err)) < 0 ||
        (r = code__read_entries(pkg, limits, err)) < 0 || (r = code__check_entries(pkg, err)) < 0)
        return r;
    /* The declared total is only a claim, but a claim past the limit is
     * reason enough to stop before writing anything. */
    if (pkg->declared > limits->max_unzipped_bytes) {
        char lim[32];
        code__size_str(limits->max_unzipped_bytes, lim, sizeof lim);
        return mf_error_plain(err, EFBIG,
                          "code: the zip declares %llu bytes unpacked, over the %s limit",
                          (unsigned long long)pkg->declared, lim);
    }

    if ((r = fs_mkdir_p(code_root, 0755, err)) < 0)
        return r;
    cleanup_close int root = open(code_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return mf_error_set(err, errno, "code: open `%s`", code_root);

    struct stat st;
    if (fstatat(root, sha, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
        return code__unpack_into(pkg, root, code_root, sha, limits->max_unzipped_bytes, total, err);

    /* Content-addressed: these bytes were unpacked before. The entries were
     * still checked above, since the limits may have changed since. */
    cleanup_close int pfd = openat(root, sha, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (pfd < 0)
        return mf_error_set(err, errno, "code: open package `%s`", sha);
    if ((r = code__tree_size(pfd, total, err)) < 0)
        return r;
    if (*total > limits->max_unzipped_bytes)
        return code__too_big(err, limits->max_unzipped_bytes);
    return 0;
}

int code_install(const char *code_root, const void *zip, size_t zip_len,
                 const code_limits_t *limits, char sha_out[65], int64_t *unpacked_size,
                 mf_error_t *err)
{
    if (zip_len > limits->max_zip_bytes) {
        char lim[32];
        code__size_str(limits->max_zip_bytes, lim, sizeof lim);
        return mf_error_plain(err, EFBIG, "code: the zip is over the %s limit", lim);
    }
    char sha[CODEC_SHA256_HEX_LEN + 1];
    codec_sha256_hex(sha, zip, zip_len);

    code_pkg_t pkg = {0};
    uint64_t total = 0;
    int r = code__install_pkg(&pkg, code_root, zip, zip_len, limits, sha, &total, err);
    code__pkg_free(&pkg);
    if (r < 0)
        return r;
    memcpy(sha_out, sha, sizeof sha);
    *unpacked_size = (int64_t)total;
    return 0;
}

int code_remove(const char *code_root, const char *sha, mf_error_t *err)
{
    /* The name becomes part of an rm -rf: accept nothing but a digest. */
    size_t len = strlen(sha);
    if (len != CODEC_SHA256_HEX_LEN || strspn(sha, "0123456789abcdef") != len)
        return mf_error_plain(err, EINVAL, "code: `%s` is not a package digest", SHOW(sha));
    cleanup_free char *path = xasprintf("%s/%s", code_root, sha);
    return fs_rm_rf(path, err);
}
