/* The sandbox's file system (child side): a minimal root built on a tmpfs
 * and pivoted into, in the child's own mount namespace.
 *
 *   /usr           the host's, read-only (programs and libraries)
 *   /bin /lib …    symlinks into usr as on the host (merged /usr), or
 *                  read-only binds where the host has real directories
 *   /bin/sh        the host's bash, bound over the host's sh (Debian's is
 *                  dash): on Lambda's images /bin/sh is bash, and custom
 *                  runtimes' `#!/bin/sh` bootstraps rely on it
 *   /etc           a handful of generated files (passwd, group, hosts,
 *                  nsswitch.conf, resolv.conf) plus read-only binds of the
 *                  host's ld.so.cache, ssl and alternatives
 *   /var/task      the function's code, read-only
 *   /var/runtime   the runtime's files, read-only (when given)
 *   /tmp           a private tmpfs of tmp_mb, the only writable place
 *                  of the sandbox's own
 *   /mnt/NAME      the function's volumes, shared with other sandboxes
 *                  (an empty /mnt without them)
 *   /proc          a fresh procfs of the sandbox's PID namespace
 *   /dev           null, zero, full, random, urandom and the fd symlinks
 *
 * Nothing else of the host is visible: no /home, /root, /var, /run, /sys,
 * no host /etc/passwd or /etc/shadow, no server data directory. The root
 * itself is remounted read-only once built. Each mount is one system call
 * or two, and the set is kept small because it is paid on every cold
 * start. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "sandbox/internal.h"

static const char etc_nsswitch[] = "passwd: files\n"
                                   "group: files\n"
                                   "shadow: files\n"
                                   "hosts: files dns\n";

/* In a user namespace, the flags of the source mount that the kernel
 * locked (noexec, atime behaviour…) must be repeated in a bind remount or
 * it fails with EPERM (bubblewrap does the same). statfs() is a plain
 * system call; statvfs() may read /proc/mounts. */
static unsigned long locked_flags(const char *src)
{
    struct statfs sf;
    unsigned long f = 0;
    if (statfs(src, &sf) < 0)
        return 0;
    if (sf.f_flags & ST_NOEXEC)
        f |= MS_NOEXEC;
    if (sf.f_flags & ST_NOATIME)
        f |= MS_NOATIME;
    if (sf.f_flags & ST_NODIRATIME)
        f |= MS_NODIRATIME;
    if (sf.f_flags & ST_RELATIME)
        f |= MS_RELATIME;
    return f;
}

/* A read-only bind takes two calls: the kernel ignores MS_RDONLY on the
 * MS_BIND itself and applies it only in a following bind remount. Binds
 * are not recursive: a mount below the source (say /usr/local on its own
 * disk) stays out, which is what a minimal root wants. */
static void bind_ro(const sandbox__child_t *c, const char *src, const char *dst,
                    const char *step_bind, const char *step_ro)
{
    if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
        sandbox__child_die(step_bind);
    unsigned long extra = c->sys->userns ? locked_flags(src) : 0;
    if (mount(NULL, dst, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | extra,
              NULL) < 0)
        sandbox__child_die(step_ro);
}

static void make_dir(const char *path, const char *step)
{
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        sandbox__child_die(step);
}

static void write_file(const char *path, const char *data, size_t len, const char *step)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        sandbox__child_die(step);
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            sandbox__child_die(step);
        }
        data += n;
        len -= (size_t)n;
    }
    close(fd);
}

/* Reproduces one host path found at start (see sandbox_system_init). */
static void host_entry(const sandbox__child_t *c, const sandbox__host_entry_t *e)
{
    switch (e->kind) {
    case SANDBOX__HOST_SYMLINK:
        if (symlink(e->link, e->inside) < 0)
            sandbox__child_die(e->step_bind);
        break;
    case SANDBOX__HOST_DIR:
        make_dir(e->inside, e->step_bind);
        bind_ro(c, e->host, e->inside, e->step_bind, e->step_ro);
        break;
    case SANDBOX__HOST_FILE:
        write_file(e->inside, "", 0, e->step_bind);
        bind_ro(c, e->host, e->inside, e->step_bind, e->step_ro);
        break;
    case SANDBOX__HOST_MISSING: break;
    }
}

/* "/proc/self/fd/<fd>" into out, without stdio. */
static void proc_fd_path(char *out, size_t size, int fd)
{
    static const char prefix[] = "/proc/self/fd/";
    char digits[16];
    size_t n = 0;
    do
        digits[n++] = (char)('0' + fd % 10);
    while ((fd /= 10) > 0 && n < sizeof digits);
    if (sizeof prefix + n > size) {
        out[0] = '\0';
        return;
    }
    memcpy(out, prefix, sizeof prefix - 1);
    for (size_t i = 0; i < n; i++)
        out[sizeof prefix - 1 + i] = digits[n - 1 - i];
    out[sizeof prefix - 1 + n] = '\0';
}

/* Binds the host's bash over /bin/sh inside. The host's sh is usually a
 * symlink (Debian's sh -> dash), and mount(2) follows a symlink at its
 * target, which would put bash over dash itself: so the mount goes
 * through a descriptor of the link (O_PATH|O_NOFOLLOW, named by its
 * /proc/self/fd entry), which covers the link and leaves dash alone. The
 * remount that makes it read-only then names the path, which now leads to
 * the mount. */
static void bash_as_sh(const sandbox__child_t *c)
{
    const sandbox_system_t *sys = c->sys;
    int fd = open(sys->sh_inside, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        sandbox__child_die("open /bin/sh");
    char target[32];
    proc_fd_path(target, sizeof target, fd);
    if (mount(sys->bash_host, target, NULL, MS_BIND, NULL) < 0)
        sandbox__child_die("bind bash at /bin/sh");
    close(fd);
    unsigned long extra = sys->userns ? locked_flags(sys->bash_host) : 0;
    if (mount(NULL, sys->sh_inside, NULL,
              MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | extra, NULL) < 0)
        sandbox__child_die("remount /bin/sh read-only");
}

static void make_dev(const sandbox__child_t *c)
{
    static const struct {
        const char *name, *host;
        unsigned minor;
    } devs[] = {
        {"dev/null", "/dev/null", 3},       {"dev/zero", "/dev/zero", 5},
        {"dev/full", "/dev/full", 7},       {"dev/random", "/dev/random", 8},
        {"dev/urandom", "/dev/urandom", 9},
    };
    /* A small tmpfs without nodev, so the device nodes work; noexec and
     * nosuid. Owned by root and 0755, so the function cannot add to it. */
    if (mount("tmpfs", "dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k,nr_inodes=64") <
        0)
        sandbox__child_die("mount /dev");
    for (size_t i = 0; i < sizeof devs / sizeof *devs; i++) {
        if (!c->sys->userns) {
            /* As real root, creating the node is one call and no mount. */
            if (mknod(devs[i].name, S_IFCHR | 0666, makedev(1, devs[i].minor)) < 0)
                sandbox__child_die("mknod in /dev");
        } else {
            /* In a user namespace mknod is refused: bind the host's node. */
            write_file(devs[i].name, "", 0, "create a /dev node");
            if (mount(devs[i].host, devs[i].name, NULL, MS_BIND, NULL) < 0)
                sandbox__child_die("bind a /dev node");
        }
    }
    if (symlink("/proc/self/fd", "dev/fd") < 0 || symlink("/proc/self/fd/0", "dev/stdin") < 0 ||
        symlink("/proc/self/fd/1", "dev/stdout") < 0 ||
        symlink("/proc/self/fd/2", "dev/stderr") < 0)
        sandbox__child_die("symlinks in /dev");
}

void sandbox__child_mounts_base(const sandbox__child_t *c)
{
    const sandbox_system_t *sys = c->sys;

    /* The new mount namespace starts as a copy of the host's, with the
     * host's propagation: on a shared "/" (systemd's default) our mounts
     * would appear on the host. Make every mount private first. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        sandbox__child_die("make / private");

    /* The new root: a small tmpfs on the server's empty root_dir. Mounted
     * in our private namespace it hides nothing from anyone else, and as
     * no source lives under root_dir, every host path stays reachable
     * until the pivot. */
    if (mount("tmpfs", sys->root_dir, "tmpfs", MS_NOSUID | MS_NODEV,
              "mode=0755,size=1m,nr_inodes=256") < 0)
        sandbox__child_die("mount the root tmpfs");
    if (chdir(sys->root_dir) < 0)
        sandbox__child_die("chdir to the new root");

    static const char *const dirs[] = {"usr", "etc", "var",  "var/task", "var/runtime",
                                       "tmp", "mnt", "proc", "dev"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++)
        make_dir(dirs[i], "mkdir in the new root");

    bind_ro(c, "/usr", "usr", "bind /usr", "remount /usr read-only");
    for (size_t i = 0; i < sys->ntop; i++)
        host_entry(c, &sys->top[i]);
    if (sys->sh_inside)
        bash_as_sh(c);

    /* Our own passwd and group: the function sees its own user and root,
     * not the host's accounts. */
    write_file("etc/passwd", c->passwd, strlen(c->passwd), "write /etc/passwd");
    write_file("etc/group", c->group, strlen(c->group), "write /etc/group");
    write_file("etc/nsswitch.conf", etc_nsswitch, sizeof etc_nsswitch - 1,
               "write /etc/nsswitch.conf");
    write_file("etc/resolv.conf", "", 0, "write /etc/resolv.conf");
    for (size_t i = 0; i < sys->netc; i++)
        host_entry(c, &sys->etc[i]);

    /* A procfs of our own PID namespace: it lists only the sandbox's
     * processes. We may mount it because we are PID 1 of that namespace
     * and own this mount namespace. */
    if (mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        sandbox__child_die("mount /proc");

    make_dev(c);
}

void sandbox__child_mounts_finish(const sandbox__child_t *c)
{
    const sandbox_config_t *cfg = c->cfg;

    /* hosts names the sandbox's host name, which some runtimes resolve at
     * start. */
    write_file("etc/hosts", c->hosts, strlen(c->hosts), "write /etc/hosts");
    /* A zygote gets its code later, through move_mount: /var/task stays an
     * empty mount point until then. */
    if (cfg->code_dir)
        bind_ro(c, cfg->code_dir, "var/task", "bind /var/task", "remount /var/task read-only");
    if (cfg->runtime_dir)
        bind_ro(c, cfg->runtime_dir, "var/runtime", "bind /var/runtime",
                "remount /var/runtime read-only");

    /* /tmp: the one writable place, bounded by size (and, through the
     * memory cgroup its pages are charged to, by memory). */
    if (mount("tmpfs", "tmp", "tmpfs", MS_NOSUID | MS_NODEV, c->tmp_opts) < 0)
        sandbox__child_die("mount /tmp");
    /* A pooled sandbox has none yet: it attaches them when its function
     * comes, after the pivot. */
    sandbox__child_mount_volumes(c);

    /* pivot_root(".", ".") stacks the old root on top of the new one at
     * "/"; detaching it then drops every host mount from this namespace,
     * so no path, ".." or /proc/self/root trick can lead back out. This
     * needs no directory for the old root (runc and crun do the same). */
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        sandbox__child_die("pivot_root");
    if (umount2(".", MNT_DETACH) < 0)
        sandbox__child_die("detach the old root");
    if (chdir("/") < 0)
        sandbox__child_die("chdir /");

    /* Built: freeze the root. /tmp and /dev are mounts of their own and
     * keep their flags. */
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
        sandbox__child_die("remount / read-only");
}

/* "attach /mnt/NAME" into out, without stdio: the step a failure names. */
static void volume_step(char *out, size_t size, const char *what, const char *dir)
{
    size_t a = strlen(what), b = strlen(dir);
    if (a + 2 + b >= size) {
        out[0] = '\0';
        return;
    }
    memcpy(out, what, a);
    out[a] = ' ';
    out[a + 1] = '/';
    memcpy(out + a + 2, dir, b + 1);
}

void sandbox__child_mount_volumes(const sandbox__child_t *c)
{
    if (!c->n_volumes)
        return;
    /* The root is read-only once built (and a pooled sandbox's is built
     * before its volumes are known): the mount points go on a tmpfs of
     * their own, which is frozen in turn once they are in place. */
    if (mount("tmpfs", "mnt", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "mode=0755,size=4k,nr_inodes=16") < 0)
        sandbox__child_die("mount /mnt");
    char step[96];
    for (unsigned i = 0; i < c->n_volumes; i++) {
        const char *dir = c->volume_dirs[i];
        volume_step(step, sizeof step, "mkdir", dir);
        make_dir(dir, step);
        /* The detached mount is the parent's work (sandbox__volume_trees):
         * idmapped, nosuid, nodev, read-only when asked; moving it keeps
         * all of that. */
        volume_step(step, sizeof step, "attach the volume at", dir);
        if (move_mount(c->volume_fds[i], "", AT_FDCWD, dir, MOVE_MOUNT_F_EMPTY_PATH) < 0)
            sandbox__child_die(step);
        close(c->volume_fds[i]);
    }
    /* MS_BIND: only this mount's flag; the volumes below keep theirs. */
    if (mount(NULL, "mnt", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
              NULL) < 0)
        sandbox__child_die("remount /mnt read-only");
}

void sandbox__child_mounts(const sandbox__child_t *c)
{
    sandbox__child_mounts_base(c);
    sandbox__child_mounts_finish(c);
}
