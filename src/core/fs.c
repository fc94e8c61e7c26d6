#include "core/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cleanup.h"
#include "core/xalloc.h"

int fs_mkdir_p(const char *path, mode_t mode, mf_error_t *err)
{
    cleanup_free char *p = xstrdup(path);
    size_t len = strlen(p);
    for (size_t i = 1; i <= len; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char saved = p[i];
        p[i] = '\0';
        if (*p && mkdir(p, mode) < 0) {
            if (errno != EEXIST)
                return mf_error_set(err, errno, "mkdir `%s`", p);
            struct stat st;
            if (stat(p, &st) < 0)
                return mf_error_set(err, errno, "stat `%s`", p);
            if (!S_ISDIR(st.st_mode))
                return mf_error_set(err, ENOTDIR, "mkdir `%s`", p);
        }
        p[i] = saved;
    }
    return 0;
}

static int rm_rf_at(int parent, const char *name, mf_error_t *err)
{
    struct stat st;
    if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : mf_error_set(err, errno, "stat `%s`", name);
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(parent, name, 0) < 0 && errno != ENOENT)
            return mf_error_set(err, errno, "unlink `%s`", name);
        return 0;
    }
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return mf_error_set(err, errno, "open `%s`", name);
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return mf_error_set(err, errno, "opendir `%s`", name);
    }
    struct dirent *de;
    int ret = 0;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        ret = rm_rf_at(dirfd(d), de->d_name, err);
        if (ret < 0)
            break;
    }
    closedir(d);
    if (ret < 0)
        return ret;
    if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return mf_error_set(err, errno, "rmdir `%s`", name);
    return 0;
}

int fs_rm_rf(const char *path, mf_error_t *err)
{
    return rm_rf_at(AT_FDCWD, path, err);
}

int fs_read_file(const char *path, buf_t *out, size_t max_len, mf_error_t *err)
{
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mf_error_set(err, errno, "open `%s`", path);
    char tmp[65536];
    for (;;) {
        ssize_t n = read(fd, tmp, sizeof tmp);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return mf_error_set(err, errno, "read `%s`", path);
        }
        if (n == 0)
            break;
        if (out->len + (size_t)n > max_len)
            return mf_error_set(err, EFBIG, "read `%s`", path);
        buf_add(out, tmp, (size_t)n);
    }
    return 0;
}

int fs_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int fs_fsync_dir(const char *path, mf_error_t *err)
{
    cleanup_close int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return mf_error_set(err, errno, "open `%s`", path);
    if (fsync(fd) < 0)
        return mf_error_set(err, errno, "fsync `%s`", path);
    return 0;
}

int fs_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                         mf_error_t *err)
{
    cleanup_free char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
    cleanup_close int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return mf_error_set(err, errno, "create `%s`", tmp);
    int r = fs_write_all(fd, data, len);
    if (r < 0 || fsync(fd) < 0) {
        int e = r < 0 ? -r : errno;
        unlink(tmp);
        return mf_error_set(err, e, "write `%s`", tmp);
    }
    if (rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        return mf_error_set(err, e, "rename `%s`", tmp);
    }
    cleanup_free char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        return fs_fsync_dir(*dir ? dir : "/", err);
    }
    return fs_fsync_dir(".", err);
}

int fs_lock_dir(const char *dir, int *out_fd, mf_error_t *err)
{
    cleanup_free char *path = xasprintf("%s/lock", dir);
    cleanup_close int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return mf_error_set(err, errno, "data dir `%s` is not writable: cannot open `%s`", dir,
                            path);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno != EWOULDBLOCK)
            return mf_error_set(err, errno, "lock `%s`", path);
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        if (n > 0) {
            pid[n] = '\0';
            pid[strcspn(pid, "\n")] = '\0';
        }
        return mf_error_plain(err, EBUSY,
                              "data dir `%s` is in use by another mayfly server (pid %s)", dir,
                              *pid ? pid : "unknown");
    }
    /* The pid is only for the message above; the lock itself is the flock. */
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0)
        return mf_error_set(err, errno, "truncate `%s`", path);
    ssize_t w = pwrite(fd, pid, (size_t)len, 0);
    if (w != len)
        return mf_error_set(err, w < 0 ? errno : EIO, "write `%s`", path);
    *out_fd = steal_fd(&fd);
    return 0;
}

int fs_read_schedstat(int fd, uint64_t *run_ns, uint64_t *wait_ns)
{
    char line[96];
    ssize_t n = pread(fd, line, sizeof line - 1, 0);
    if (n <= 0)
        return n < 0 ? -errno : -EIO;
    line[n] = '\0';
    unsigned long long run, wait;
    if (sscanf(line, "%llu %llu", &run, &wait) != 2)
        return -EIO;
    *run_ns = run;
    *wait_ns = wait;
    return 0;
}
