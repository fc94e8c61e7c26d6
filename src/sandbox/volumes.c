/* Volumes, the server's side: a volume the server has mounted becomes, for
 * one sandbox, a detached mount the sandbox's init attaches at /mnt/NAME
 * (mounts.c). The child cannot reach the volume by path: a pooled sandbox
 * pivoted into its own root before the function (and so the volume) was
 * known, and a direct one is handed the same descriptors so that both
 * paths attach volumes the same way.
 *
 * Each sandbox runs as a uid of its own (sandbox.h), so a volume's files
 * could not be shared by plain ownership: one function's 0644 file would
 * be read-only to every other. The clone is idmapped instead: files owned
 * by SANDBOX_VOLUME_OWNER on disk show as the sandbox's own uid and gid,
 * and what it creates is stored as SANDBOX_VOLUME_OWNER. Every function
 * sees itself as the owner of every file, as Lambda functions (which all
 * run as one user) do on EFS. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/cleanup.h"
#include "core/fs.h"
#include "sandbox/internal.h"

/* The longest NAME of /mnt/NAME (the registry's bound). */
#define VOLUME_NAME_MAX 64

static bool target_ok(const char *t)
{
    if (!t || strncmp(t, "/mnt/", 5) != 0)
        return false;
    const char *name = t + 5;
    size_t n = strlen(name);
    if (n == 0 || n > VOLUME_NAME_MAX || !strcmp(name, ".") || !strcmp(name, ".."))
        return false;
    for (const char *p = name; *p; p++)
        if (!(*p == '-' || *p == '_' || *p == '.' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return false;
    return true;
}

int sandbox__volumes_check(const sandbox_config_t *cfg, mf_error_t *err)
{
    if (cfg->n_volumes > SANDBOX_VOLUMES_MAX)
        return mf_error_set(err, EINVAL, "sandbox: %u volumes, at most %d", cfg->n_volumes,
                            SANDBOX_VOLUMES_MAX);
    if (cfg->n_volumes && !cfg->volumes)
        return mf_error_set(err, EINVAL, "sandbox: n_volumes without volumes");
    for (unsigned i = 0; i < cfg->n_volumes; i++) {
        const sandbox_volume_t *v = &cfg->volumes[i];
        if (!v->source || v->source[0] != '/')
            return mf_error_set(err, EINVAL,
                                "sandbox: a volume's source must be an absolute "
                                "path");
        if (!target_ok(v->target))
            return mf_error_set(err, EINVAL, "sandbox: bad volume target `%s` (must be /mnt/NAME)",
                                v->target ? v->target : "");
        for (unsigned j = 0; j < i; j++)
            if (!strcmp(cfg->volumes[j].target, v->target))
                return mf_error_set(err, EINVAL, "sandbox: two volumes at %s", v->target);
    }
    return 0;
}

static int write_map(pid_t pid, const char *file, unsigned inside, unsigned outside)
{
    char path[64], map[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
    int len = snprintf(map, sizeof map, "%u %u 1\n", inside, outside);
    cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    return fs_write_all(fd, map, (size_t)len);
}

/* The child that holds the user namespace while its maps are written: it
 * starts with every signal blocked (see idmap_userns), so it never runs a
 * handler of the server's in the memory it shares with it, and sleeps
 * until SIGKILL. A raw ppoll with nothing to wait for, not pause(): the
 * child shares the calling thread's TLS, and glibc's cancellation points
 * would mark that thread's own state on the way in. */
static int idmap_holder(void *arg)
{
    (void)arg;
    for (;;)
        syscall(SYS_ppoll, NULL, 0, NULL, NULL, 0);
    return 0;
}

#define HOLDER_STACK (64 * 1024)

/* A user namespace mapping SANDBOX_VOLUME_OWNER to uid and gid: what an
 * idmapped mount takes (ids on disk are the namespace's inside ids, what
 * the sandbox sees its outside ones). A namespace needs a process to be
 * born in and written to; the process goes at once, the descriptor keeps
 * the namespace. The process shares our memory (CLONE_VM, a stack of its
 * own): no copy of the server's page tables, as a fork would make. */
static int idmap_userns(uid_t uid, gid_t gid, mf_error_t *err)
{
    void *stack = mmap(NULL, HOLDER_STACK, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED)
        return mf_error_set(err, errno, "sandbox: a stack for the volumes' id mapping");
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    pid_t pid =
        clone(idmap_holder, (char *)stack + HOLDER_STACK, CLONE_NEWUSER | CLONE_VM | SIGCHLD, NULL);
    int clone_errno = errno;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    if (pid < 0) {
        munmap(stack, HOLDER_STACK);
        return mf_error_set(err, clone_errno, "sandbox: create a user namespace for the volumes");
    }
    int r = write_map(pid, "uid_map", SANDBOX_VOLUME_OWNER, (unsigned)uid);
    if (r == 0)
        r = write_map(pid, "gid_map", SANDBOX_VOLUME_OWNER, (unsigned)gid);
    int ns = -1;
    if (r == 0) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/ns/user", (int)pid);
        ns = open(path, O_RDONLY | O_CLOEXEC);
        if (ns < 0)
            r = -errno;
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    munmap(stack, HOLDER_STACK);
    if (r < 0)
        return mf_error_set(err, -r, "sandbox: map the volumes' owner to uid %u", (unsigned)uid);
    return ns;
}

void sandbox__volume_trees_close(sandbox__child_t *c)
{
    for (unsigned i = 0; i < c->n_volumes; i++)
        cleanup_closep(&c->volume_fds[i]);
    c->n_volumes = 0;
}

/* The source must be a mount's root: a plain folder there (its volume not
 * mounted) would let a function write to the server's disk unbounded. */
static int check_mounted(const char *source, mf_error_t *err)
{
    struct statx stx;
    if (statx(AT_FDCWD, source, AT_SYMLINK_NOFOLLOW, STATX_TYPE, &stx) < 0)
        return mf_error_set(err, errno, "sandbox: volume `%s`", source);
    if (!S_ISDIR(stx.stx_mode))
        return mf_error_set(err, ENOTDIR, "sandbox: volume `%s`", source);
    if ((stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
        !(stx.stx_attributes & STATX_ATTR_MOUNT_ROOT))
        return mf_error_plain(err, EINVAL, "sandbox: volume `%s` is not mounted", source);
    return 0;
}

int sandbox__volume_trees(const sandbox_config_t *cfg, uid_t uid, gid_t gid, sandbox__child_t *c,
                          mf_error_t *err)
{
    c->n_volumes = 0;
    if (!cfg->n_volumes)
        return 0;
    cleanup_close int ns = idmap_userns(uid, gid, err);
    if (ns < 0)
        return ns;
    for (unsigned i = 0; i < cfg->n_volumes; i++) {
        const sandbox_volume_t *v = &cfg->volumes[i];
        int r = check_mounted(v->source, err);
        if (r < 0) {
            sandbox__volume_trees_close(c);
            return r;
        }
        /* Not recursive: the volume's own file system only. */
        int fd = open_tree(AT_FDCWD, v->source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (fd < 0) {
            r = mf_error_set(err, errno, "sandbox: open_tree `%s`", v->source);
            sandbox__volume_trees_close(c);
            return r;
        }
        c->volume_fds[c->n_volumes] = fd;
        snprintf(c->volume_dirs[c->n_volumes], sizeof c->volume_dirs[0], "mnt/%s", v->target + 5);
        c->n_volumes++;
        struct mount_attr attr = {
            .attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                        (v->read_only ? MOUNT_ATTR_RDONLY : 0),
            .userns_fd = (uint64_t)ns,
        };
        if (mount_setattr(fd, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0) {
            r = mf_error_set(err, errno, "sandbox: idmap the volume `%s`", v->source);
            sandbox__volume_trees_close(c);
            return r;
        }
        /* A file on the volume may be as large as the volume, whatever
         * /tmp's size (RLIMIT_FSIZE is there to turn a runaway write into
         * EFBIG, and the volume's own size bounds it anyway). */
        struct statvfs sv;
        if (fstatvfs(fd, &sv) == 0) {
            rlim_t size = (rlim_t)sv.f_blocks * sv.f_frsize;
            if (size > c->fsize)
                c->fsize = size;
        }
    }
    return 0;
}
