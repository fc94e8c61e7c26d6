/* Volumes, the Linux side: a volume is an ext4 file system in a sparse
 * image file, attached to a loop device and mounted by the server. ext4
 * enforces the size (a write past it fails with ENOSPC where it is made),
 * the image never takes more of the host's disk than its size, and the
 * loop device's autoclear releases it with the last mount.
 *
 * The tools (mke2fs, e2fsck: Debian's e2fsprogs) run as child processes;
 * everything here may block and is called off the event loop, or at
 * start and stop. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <linux/loop.h>
#include <poll.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/cleanup.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "sandbox/sandbox.h"
#include "state/volume.h"
#include "state/volume_internal.h"

/* What of a tool's output a message quotes at most. */
#define TOOL_OUTPUT_MAX 2048

int volumes_isolate_mounts(mf_error_t *err)
{
    /* A namespace of our own: the volumes' mounts never show on the host,
     * and when the server ends, however it ends, the kernel takes the
     * namespace down with every mount in it (and the loop devices with
     * them). Slave, not private: mounts the host makes later (a disk
     * under the data directory, say) still reach us; ours never reach it. */
    if (unshare(CLONE_NEWNS) < 0)
        return mf_error_set(err, errno, "volumes: a mount namespace of the server's own");
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
        return mf_error_set(err, errno, "volumes: keep the server's mounts from the host");
    return 0;
}

/* The tool's path: e2fsprogs installs to /usr/sbin (and /sbin on older
 * layouts), which a server's PATH may not hold. */
static const char *tool_path(const char *name, char *out, size_t len)
{
    static const char *const dirs[] = {"/usr/sbin", "/sbin", "/usr/bin", "/bin"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        snprintf(out, len, "%s/%s", dirs[i], name);
        if (access(out, X_OK) == 0)
            return out;
    }
    return NULL;
}

/* Runs argv (argv[0] a name found by tool_path) with its stdout and
 * stderr collected in out (the last TOOL_OUTPUT_MAX bytes); *status is
 * its exit status, or -1 when killed. */
static int run_tool(char *const *argv, buf_t *out, int *status, mf_error_t *err)
{
    char path[64];
    if (!tool_path(argv[0], path, sizeof path))
        return mf_error_plain(err, ENOENT, "volumes: %s not found (install Debian's e2fsprogs)",
                              argv[0]);
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return mf_error_set(err, errno, "volumes: pipe for %s", argv[0]);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_adddup2(&fa, p[1], 2);
    static char *const envp[] = {"PATH=/usr/sbin:/sbin:/usr/bin:/bin", "LC_ALL=C", NULL};
    pid_t pid;
    int e = posix_spawn(&pid, path, &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    if (e != 0) {
        close(p[0]);
        return mf_error_set(err, e, "volumes: start %s", path);
    }
    char chunk[4096];
    for (;;) {
        ssize_t n = read(p[0], chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        buf_add(out, chunk, (size_t)n);
        if (out->len > TOOL_OUTPUT_MAX)
            buf_consume(out, out->len - TOOL_OUTPUT_MAX);
    }
    close(p[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            return mf_error_set(err, errno, "volumes: wait for %s", argv[0]);
    }
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    /* One line for a message: the tool's last words, newlines as "; ". */
    while (out->len && (out->data[out->len - 1] == '\n' || out->data[out->len - 1] == ' '))
        out->data[--out->len] = '\0';
    for (size_t i = 0; i < out->len; i++)
        if (out->data[i] == '\n')
            out->data[i] = ';';
    return 0;
}

int volume__format(const char *image, int64_t size_mb, mf_error_t *err)
{
    cleanup_close int fd = open(image, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return mf_error_set(err, errno, "volumes: create `%s`", image);
    /* Sparse: the host's disk is taken as files are written, never more
     * than size_mb. */
    if (ftruncate(fd, (off_t)size_mb << 20) < 0) {
        int e = errno;
        unlink(image);
        return mf_error_set(err, e, "volumes: size `%s` to %lld MiB", image, (long long)size_mb);
    }
    close(steal_fd(&fd));
    char owner[64];
    snprintf(owner, sizeof owner, "root_owner=%u:%u", SANDBOX_VOLUME_OWNER, SANDBOX_VOLUME_OWNER);
    /* -m 0: no blocks kept back for root, whom no function is; -F: the
     * image is a regular file, not a device. */
    char *argv[] = {"mke2fs", "-q", "-F",  "-t",          "ext4", "-m",
                    "0",      "-E", owner, (char *)image, NULL};
    cleanup_buf buf_t out = BUF_INIT;
    int status = 0;
    int r = run_tool(argv, &out, &status, err);
    if (r == 0 && status != 0)
        r = mf_error_plain(err, EIO, "volumes: mke2fs failed (exit status %d): %s", status,
                           out.len ? out.data : "no output");
    if (r < 0)
        unlink(image);
    return r;
}

int volume__check(const char *image, mf_error_t *err)
{
    char *argv[] = {"e2fsck", "-p", (char *)image, NULL};
    cleanup_buf buf_t out = BUF_INIT;
    int status = 0;
    int r = run_tool(argv, &out, &status, err);
    if (r < 0)
        return r;
    /* 0: clean; 1: errors fixed; 2: fixed, and a mounted root would need
     * a reboot (not ours). 4 and up: errors left, or e2fsck itself failed. */
    if (status < 0 || status >= 4)
        return mf_error_plain(err, EIO,
                              "e2fsck -p found what it cannot repair alone (exit status %d): %s",
                              status, out.len ? out.data : "no output");
    if (status)
        log_warn("volumes", "e2fsck repaired %s: %s", image, out.data);
    return 0;
}

bool volume__attached(const char *image, char *out, size_t len)
{
    char want[4096];
    if (!realpath(image, want))
        return false;
    glob_t g;
    if (glob("/sys/block/loop*/loop/backing_file", 0, NULL, &g) != 0)
        return false;
    bool found = false;
    for (size_t i = 0; i < g.gl_pathc && !found; i++) {
        cleanup_close int fd = open(g.gl_pathv[i], O_RDONLY | O_CLOEXEC);
        char backing[4096];
        ssize_t n = fd < 0 ? -1 : read(fd, backing, sizeof backing - 1);
        if (n <= 0)
            continue;
        backing[n] = '\0';
        backing[strcspn(backing, "\n")] = '\0';
        if (strcmp(backing, want) != 0)
            continue;
        /* /sys/block/loopN/loop/backing_file → /dev/loopN */
        const char *dev = g.gl_pathv[i] + strlen("/sys/block/");
        snprintf(out, len, "/dev/%.*s", (int)strcspn(dev, "/"), dev);
        found = true;
    }
    globfree(&g);
    return found;
}

/* Opens /dev/loopN, making the node if this /dev lacks it (a container's
 * static /dev does not grow nodes for devices made after it started). */
static int open_loop(int n, char *dev, size_t len)
{
    snprintf(dev, len, "/dev/loop%d", n);
    int fd = open(dev, O_RDWR | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (mknod(dev, S_IFBLK | 0660, makedev(7, (unsigned)n)) < 0 && errno != EEXIST)
            return -1;
        fd = open(dev, O_RDWR | O_CLOEXEC);
    }
    return fd;
}

/* Binds image to a free loop device; returns its descriptor (the device
 * stays bound while it is open or mounted). */
static int loop_attach(const char *image, char *dev, size_t len, mf_error_t *err)
{
    cleanup_close int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (ctl < 0)
        return mf_error_set(err, errno, "volumes: open /dev/loop-control (loop devices needed)");
    cleanup_close int img = open(image, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (img < 0)
        return mf_error_set(err, errno, "volumes: open `%s`", image);
    /* Another process may take the free device between our asking and
     * our binding it (EBUSY): ask again. */
    for (int attempt = 0; attempt < 32; attempt++) {
        int n = ioctl(ctl, LOOP_CTL_GET_FREE);
        if (n < 0)
            return mf_error_set(err, errno, "volumes: find a free loop device");
        int fd = open_loop(n, dev, len);
        if (fd < 0)
            return mf_error_set(err, errno, "volumes: open %s", dev);
        /* Autoclear: unbound when the last mount (the server's, the
         * sandboxes' clones) is gone, however the server ends. Direct
         * I/O: the image's pages are not cached a second time beside
         * the file system's own (the kernel goes without it where the
         * host's file system cannot). */
        struct loop_config cfg = {.fd = (unsigned)img};
        cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO;
        snprintf((char *)cfg.info.lo_file_name, sizeof cfg.info.lo_file_name, "%s", image);
        if (ioctl(fd, LOOP_CONFIGURE, &cfg) == 0)
            return fd;
        int e = errno;
        if (e == EINVAL || e == ENOTTY) {
            /* Before Linux 5.8: the two-step way. */
            struct loop_info64 info = {.lo_flags = LO_FLAGS_AUTOCLEAR};
            if (ioctl(fd, LOOP_SET_FD, img) == 0) {
                if (ioctl(fd, LOOP_SET_STATUS64, &info) == 0)
                    return fd;
                e = errno;
                ioctl(fd, LOOP_CLR_FD, 0);
            } else {
                e = errno;
            }
        }
        close(fd);
        if (e != EBUSY)
            return mf_error_set(err, e, "volumes: bind `%s` to %s", image, dev);
    }
    return mf_error_plain(err, EBUSY, "volumes: no loop device stayed free for `%s`", image);
}

int volume__mount(const char *image, const char *dir, bool fresh, mf_error_t *err)
{
    char dev[64];
    if (volume__attached(image, dev, sizeof dev))
        return mf_error_plain(err, EBUSY,
                              "volumes: `%s` is attached to %s already (is another server using "
                              "it?): mounting it twice would corrupt it",
                              image, dev);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return mf_error_set(err, errno, "volumes: mkdir `%s`", dir);
    if (volume__is_mounted(dir))
        return mf_error_plain(err, EBUSY, "volumes: something is mounted at `%s` already", dir);
    cleanup_close int loop = loop_attach(image, dev, sizeof dev, err);
    if (loop < 0)
        return loop;
    /* errors=remount-ro: a file system found damaged stops taking writes
     * rather than spreading the damage. Executables are allowed, as on
     * EFS (packages and native libraries live on volumes). */
    if (mount(dev, dir, "ext4", MS_NOSUID | MS_NODEV, "errors=remount-ro") < 0)
        return mf_error_set(err, errno, "volumes: mount %s (`%s`) at `%s`", dev, image, dir);
    if (fresh) {
        char lf[4096];
        snprintf(lf, sizeof lf, "%s/lost+found", dir);
        rmdir(lf);
    }
    /* Closing our descriptor leaves the mount as the device's only user. */
    return 0;
}

int volume__unmount(const char *dir, mf_error_t *err)
{
    if (umount2(dir, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL && errno != ENOENT)
        return mf_error_set(err, errno, "volumes: unmount `%s`", dir);
    return 0;
}

bool volume__is_mounted(const char *dir)
{
    struct statx stx;
    if (statx(AT_FDCWD, dir, AT_SYMLINK_NOFOLLOW, STATX_TYPE, &stx) < 0)
        return false;
    return (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
           (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

int volume__usage(const char *dir, uint64_t *size_bytes, uint64_t *used_bytes)
{
    struct statvfs sv;
    if (statvfs(dir, &sv) < 0)
        return -errno;
    *size_bytes = (uint64_t)sv.f_blocks * sv.f_frsize;
    *used_bytes = (uint64_t)(sv.f_blocks - sv.f_bfree) * sv.f_frsize;
    return 0;
}
