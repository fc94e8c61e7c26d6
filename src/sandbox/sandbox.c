/* Sandboxes, the server's side: process-wide set-up, spawning (clone and
 * the handshake with the child), stats, reaping and tear-down. The child's
 * side is in init.c, mounts.c and netns.c; cgroups in cgroup.c; the
 * seccomp filter in seccomp.c. */
#include "sandbox/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/cleanup.h"
#include "core/clock.h"
#include "core/fs.h"
#include "core/id.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "sandbox/cgroup.h"
#include "sandbox/internal.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* Every namespace but cgroup and time: the PID namespace makes the
 * sandbox's processes invisible to each other across sandboxes and lets
 * one SIGKILL to its init end all of them; mount for the private root;
 * IPC so System V objects are not shared; UTS for the host name; network
 * for the private loopback. CLONE_PIDFD gives a descriptor that becomes
 * readable when init exits, for the server's event loop, and that signals
 * without pid-reuse races. */
#define SANDBOX_CLONE_FLAGS                                                                        \
    (CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET | CLONE_PIDFD)

/* ---- process-wide set-up -------------------------------------------- */

static void host_entry_init(sandbox__host_entry_t *e, const char *host)
{
    e->host = host;
    e->inside = host + 1;
    e->step_bind = xasprintf("bind %s", host);
    e->step_ro = xasprintf("remount %s read-only", host);
    struct stat st;
    if (lstat(host, &st) < 0)
        return;
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlink(host, target, sizeof target - 1);
        if (n > 0) {
            target[n] = '\0';
            /* A link into /usr (merged-/usr's bin -> usr/bin, Debian's
             * localtime -> /usr/share/zoneinfo/…) resolves the same inside,
             * so the link is copied and costs no mount. Anything else is
             * bound as what it points to. */
            bool relative_usr = !strncmp(target, "usr/", 4);
            bool absolute_usr = !strncmp(target, "/usr/", 5);
            if (relative_usr || absolute_usr) {
                e->kind = SANDBOX__HOST_SYMLINK;
                e->link = xstrdup(target);
                return;
            }
        }
        if (stat(host, &st) < 0)
            return;
    }
    if (S_ISDIR(st.st_mode))
        e->kind = SANDBOX__HOST_DIR;
    else if (S_ISREG(st.st_mode))
        e->kind = SANDBOX__HOST_FILE;
}

static void host_entry_free(sandbox__host_entry_t *e)
{
    free(e->owned);
    free(e->link);
    free(e->step_bind);
    free(e->step_ro);
}

/* Clones a child into every namespace a sandbox uses and lets it exit at
 * once, so a host that forbids them fails at start with a clear message
 * instead of on the first invocation. */
static int probe_namespaces(const sandbox_system_t *sys, mf_error_t *err)
{
    unsigned long flags = (SANDBOX_CLONE_FLAGS & ~(unsigned long)CLONE_PIDFD) | SIGCHLD;
    if (sys->userns)
        flags |= CLONE_NEWUSER;
    pid_t pid = (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, 0);
    if (pid == 0)
        _exit(0);
    if (pid < 0)
        return mf_error_set(err, errno, "sandbox: cannot create namespaces%s",
                            sys->userns ? " (are unprivileged user namespaces disabled?)" : "");
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return 0;
}

/* ---- user ids ----------------------------------------------------------- */

static void uids_set(sandbox__uids_t *u, uint32_t first, uint32_t count)
{
    free(u->used);
    u->first = first;
    u->count = count;
    u->next = 0;
    u->in_use = 0;
    u->used = xcalloc((count + 63) / 64, sizeof *u->used);
}

/* Takes a free uid of the range for a new sandbox; -EAGAIN when all are
 * taken. The search starts after the one taken last, so a uid just given
 * back is the last to be reused. */
static int uid_take(sandbox_system_t *sys, uid_t *out)
{
    sandbox__uids_t *u = &sys->uids;
    pthread_mutex_lock(&u->lock);
    if (u->in_use == u->count) {
        pthread_mutex_unlock(&u->lock);
        return -EAGAIN;
    }
    uint32_t i = u->next;
    while (u->used[i / 64] & (1ull << (i % 64)))
        i = i + 1 == u->count ? 0 : i + 1;
    u->used[i / 64] |= 1ull << (i % 64);
    u->in_use++;
    u->next = i + 1 == u->count ? 0 : i + 1;
    *out = (uid_t)(u->first + i);
    pthread_mutex_unlock(&u->lock);
    return 0;
}

static void uid_give(sandbox_system_t *sys, uid_t uid)
{
    sandbox__uids_t *u = &sys->uids;
    pthread_mutex_lock(&u->lock);
    uint32_t i = (uint32_t)uid - u->first;
    if (uid >= u->first && i < u->count && (u->used[i / 64] & (1ull << (i % 64)))) {
        u->used[i / 64] &= ~(1ull << (i % 64));
        u->in_use--;
    }
    pthread_mutex_unlock(&u->lock);
}

/* Whether [first, first+count) meets [lo, lo+n). */
static bool ranges_meet(uint64_t first, uint64_t count, uint64_t lo, uint64_t n)
{
    return first < lo + n && lo < first + count;
}

/* Fails if the range holds an id of a local account or group, or one that
 * is some user's subordinate id: a sandbox must not share its kernel
 * quotas, or files, with anyone. Only the local files are read (an LDAP
 * directory is not enumerated at start). */
static int check_id_file(const char *path, bool subids, uint32_t first, uint32_t count,
                         mf_error_t *err)
{
    cleanup_buf buf_t text = BUF_INIT;
    if (fs_read_file(path, &text, 64 << 20, NULL) < 0)
        return 0; /* no such file: nothing to collide with */
    char *save = NULL;
    for (char *line = strtok_r(text.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f[4] = {line, NULL, NULL, NULL};
        for (int i = 1; i < 4 && f[i - 1]; i++) {
            char *colon = strchr(f[i - 1], ':');
            if (colon)
                *colon = '\0';
            f[i] = colon ? colon + 1 : NULL;
        }
        /* passwd and group: name:x:id:…; subuid and subgid: name:first:count. */
        const char *id_text = subids ? f[1] : f[2];
        if (!id_text || !*id_text || (subids && !f[2]))
            continue;
        char *end;
        unsigned long long lo = strtoull(id_text, &end, 10);
        if (*end)
            continue;
        unsigned long long n = subids ? strtoull(f[2], &end, 10) : 1;
        if (ranges_meet(first, count, lo, n))
            return subids ? mf_error_plain(err, EINVAL,
                                           "sandbox: uid range %u:%u overlaps the subordinate ids "
                                           "%llu:%llu of `%s` in %s",
                                           first, count, lo, n, f[0], path)
                          : mf_error_plain(err, EINVAL,
                                           "sandbox: uid range %u:%u holds id %llu of `%s` in %s",
                                           first, count, lo, f[0], path);
    }
    return 0;
}

/* Fails unless the whole range is mapped in the user namespace we run in
 * (a root server in a container may have only part of the ids). */
static int check_mapped(const char *path, uint32_t first, uint32_t count, mf_error_t *err)
{
    cleanup_buf buf_t text = BUF_INIT;
    if (fs_read_file(path, &text, 1 << 20, NULL) < 0)
        return 0;
    char *save = NULL;
    for (char *line = strtok_r(text.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        unsigned long long in, outside, n;
        if (sscanf(line, "%llu %llu %llu", &in, &outside, &n) == 3 && first >= in &&
            (uint64_t)first + count <= in + n)
            return 0;
    }
    return mf_error_plain(err, EINVAL,
                          "sandbox: uid range %u:%u is not mapped in this user namespace (see %s)",
                          first, count, path);
}

int sandbox_system_set_uid_range(sandbox_system_t *sys, uint32_t first, uint32_t count,
                                 mf_error_t *err)
{
    uint64_t end = (uint64_t)first + count;
    if (count == 0 || first == 0 || end > 4294967295u || ranges_meet(first, count, 65534, 2))
        return mf_error_plain(err, EINVAL,
                              "sandbox: uid range %u:%u must be 1 or more ids from 1 to 4294967294 "
                              "without 65534 and 65535",
                              first, count);
    if (sys->userns)
        return 0; /* every sandbox is the server's own uid */
    int r = check_mapped("/proc/self/uid_map", first, count, err);
    if (r == 0)
        r = check_mapped("/proc/self/gid_map", first, count, err);
    if (r == 0)
        r = check_id_file("/etc/passwd", false, first, count, err);
    if (r == 0)
        r = check_id_file("/etc/group", false, first, count, err);
    if (r == 0)
        r = check_id_file("/etc/subuid", true, first, count, err);
    if (r == 0)
        r = check_id_file("/etc/subgid", true, first, count, err);
    if (r < 0)
        return r;
    pthread_mutex_lock(&sys->uids.lock);
    if (sys->uids.in_use) {
        pthread_mutex_unlock(&sys->uids.lock);
        return mf_error_set(err, EBUSY,
                            "sandbox: the uid range cannot change while sandboxes "
                            "exist");
    }
    uids_set(&sys->uids, first, count);
    pthread_mutex_unlock(&sys->uids.lock);
    return 0;
}

/* Where /bin/sh is in the new root, and the bash to bind over it (see
 * sandbox_system_t). */
static void find_sh(sandbox_system_t *sys)
{
    char dir[PATH_MAX], sh[PATH_MAX], bash[PATH_MAX];
    if (!realpath("/bin/bash", bash)) {
        log_warn("sandbox", "no /bin/bash on this host: /bin/sh inside sandboxes is the host's");
        return;
    }
    if (!realpath("/bin", dir) || !realpath("/bin/sh", sh) || !strcmp(sh, bash))
        return;
    /* On merged /usr, /bin is a symlink into usr, which is bound as is;
     * otherwise /bin is bound (as itself or what it points to) at bin. */
    sys->sh_inside = !strncmp(dir, "/usr/", 5) ? xasprintf("%s/sh", dir + 1) : xstrdup("bin/sh");
    sys->bash_host = xstrdup(bash);
}

int sandbox_system_init(sandbox_system_t **out, mf_error_t *err)
{
    sandbox_system_t *sys = xcalloc(1, sizeof *sys);
    int r;

    sys->uid = geteuid();
    sys->gid = getegid();
    sys->userns = sys->uid != 0;
    pthread_mutex_init(&sys->uids.lock, NULL);
    uids_set(&sys->uids, SANDBOX_UID_FIRST_DEFAULT, SANDBOX_UID_COUNT_DEFAULT);
    find_sh(sys);

    r = sandbox__seccomp_build(&sys->seccomp, err);
    if (r < 0)
        goto fail;
    sys->no_caps = cap_init(); /* allocated empty */
    if (!sys->no_caps) {
        r = mf_error_set(err, errno, "sandbox: cap_init");
        goto fail;
    }
    sys->last_cap = (int)cap_max_bits() - 1;
    if ((r = sandbox__spawn_actions_build(&sys->spawn_actions)) < 0) {
        posix_spawn_file_actions_destroy(&sys->spawn_actions);
        r = mf_error_set(err, -r, "sandbox: posix_spawn file actions");
        goto fail;
    }
    sys->spawn_actions_ready = true;

    /* The mount point for each sandbox's root: root-owned and empty, in
     * /run (a tmpfs, gone at reboot). Without root, a private directory
     * under the temporary directory instead. */
    if (!sys->userns) {
        sys->root_dir = xstrdup("/run/mayfly/root");
    } else {
        const char *tmp = getenv("TMPDIR");
        sys->root_dir =
            xasprintf("%s/mayfly-%u-root", tmp && *tmp ? tmp : "/tmp", (unsigned)sys->uid);
    }
    r = fs_mkdir_p(sys->root_dir, 0755, err);
    if (r < 0) {
        mf_error_wrap(err, "sandbox");
        goto fail;
    }

    struct stat st;
    if (stat("/usr", &st) < 0 || !S_ISDIR(st.st_mode)) {
        r = mf_error_set(err, ENOENT, "sandbox: the host has no /usr to give sandboxes");
        goto fail;
    }
    /* The top-level directories programs expect besides /usr. */
    static const char *const top[] = {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"};
    for (size_t i = 0; i < sizeof top / sizeof *top; i++)
        host_entry_init(&sys->top[sys->ntop++], top[i]);
    /* What of the host's /etc a program needs: the dynamic linker's cache
     * (it finds /usr/lib/<triplet> through it), the time zone, TLS
     * configuration and certificates (openssl.cnf lives in /etc/ssl), and
     * Debian's alternatives, through which links such as /usr/bin/nodejs
     * resolve. /etc/ca-certificates is left out: it only configures
     * update-ca-certificates; the certificates are in /etc/ssl/certs. */
    static const char *const etc[] = {"/etc/ld.so.cache", "/etc/localtime", "/etc/ssl",
                                      "/etc/alternatives"};
    for (size_t i = 0; i < sizeof etc / sizeof *etc; i++)
        host_entry_init(&sys->etc[sys->netc++], etc[i]);
    /* Debian's JDKs keep their configuration in /etc/java-N-openjdk
     * (their lib/jvm.cfg and conf/ link there), without which the JVM
     * does not start: each one the host has, as far as room is left. */
    glob_t jdks;
    if (glob("/etc/java-*", GLOB_ONLYDIR | GLOB_NOSORT, NULL, &jdks) == 0) {
        for (size_t i = 0; i < jdks.gl_pathc && sys->netc < SANDBOX__MAX_HOST_ENTRIES; i++) {
            sandbox__host_entry_t *e = &sys->etc[sys->netc++];
            e->owned = xstrdup(jdks.gl_pathv[i]);
            host_entry_init(e, e->owned);
        }
        globfree(&jdks);
    }

    r = sandbox__cgsys_init(&sys->cg, err);
    if (r < 0) {
        mf_error_wrap(err, "sandbox");
        goto fail;
    }
    r = probe_namespaces(sys, err);
    if (r < 0)
        goto fail;
    if (sys->userns)
        log_info("sandbox", "not root: sandboxes get a user namespace (uid 0 inside is uid %u)",
                 (unsigned)sys->uid);
    *out = sys;
    return 0;

fail:
    sandbox_system_free(sys);
    return r;
}

sandbox_cgroup_version_t sandbox_system_cgroup_version(const sandbox_system_t *sys)
{
    return sandbox__cgsys_version(sys->cg);
}

void sandbox_system_free(sandbox_system_t *sys)
{
    if (!sys)
        return;
    sandbox__pool_free(sys->pool);
    sandbox__cgsys_free(sys->cg);
    sandbox__seccomp_free(&sys->seccomp);
    if (sys->no_caps)
        cap_free(sys->no_caps);
    if (sys->spawn_actions_ready)
        posix_spawn_file_actions_destroy(&sys->spawn_actions);
    for (size_t i = 0; i < sys->ntop; i++)
        host_entry_free(&sys->top[i]);
    for (size_t i = 0; i < sys->netc; i++)
        host_entry_free(&sys->etc[i]);
    /* root_dir stays: other servers may use it, and it is an empty dir. */
    free(sys->root_dir);
    free(sys->sh_inside);
    free(sys->bash_host);
    free(sys->uids.used);
    pthread_mutex_destroy(&sys->uids.lock);
    free(sys);
}

/* ---- capacity and budget ---------------------------------------------- */

/* A number from a one-number file such as /proc/sys/kernel/pid_max. */
static uint64_t read_number(const char *path)
{
    cleanup_buf buf_t text = BUF_INIT;
    if (fs_read_file(path, &text, 4096, NULL) < 0)
        return UINT64_MAX;
    char *end;
    unsigned long long v = strtoull(text.data, &end, 10);
    return end == text.data ? UINT64_MAX : v;
}

static uint64_t mem_total_bytes(void)
{
    cleanup_buf buf_t text = BUF_INIT;
    if (fs_read_file("/proc/meminfo", &text, 1 << 20, NULL) < 0)
        return UINT64_MAX;
    const char *p = strstr(text.data, "MemTotal:");
    return p ? strtoull(p + 9, NULL, 10) << 10 : UINT64_MAX;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

void sandbox_system_capacity(const sandbox_system_t *sys, sandbox_capacity_t *out)
{
    uint64_t cg_memory, cg_pids;
    sandbox__cgsys_limits(sys->cg, &cg_memory, &cg_pids);
    out->memory_mb = min_u64(mem_total_bytes(), cg_memory) >> 20;
    out->max_pids = min_u64(min_u64(read_number("/proc/sys/kernel/pid_max"),
                                    read_number("/proc/sys/kernel/threads-max")),
                            cg_pids);
    out->cpus = sandbox__cgsys_cpus(sys->cg);
}

int sandbox_system_cpu_ns(sandbox_system_t *sys, uint64_t *ns)
{
    return sandbox__cgsys_cpu_ns(sys->cg, ns);
}

/* The budget as the kernel enforces it: the instances' memory plus what
 * prepared sandboxes may hold. */
static int write_budget(sandbox_system_t *sys, mf_error_t *err)
{
    uint64_t mb = sys->budget_memory_mb ? sys->budget_memory_mb + sys->pool_memory_mb : 0;
    int r = sandbox__cgsys_set_budget(sys->cg, mb << 20, sys->budget_pids, err);
    if (r < 0)
        mf_error_wrap(err, "sandbox: the budget of all sandboxes");
    return r;
}

int sandbox_system_set_budget(sandbox_system_t *sys, uint64_t memory_mb, uint64_t max_pids,
                              mf_error_t *err)
{
    /* Bounds that keep the byte count far from overflowing. */
    if (memory_mb > (1ull << 30) || max_pids > (1ull << 32))
        return mf_error_set(err, EINVAL, "sandbox: budget out of range (%llu MB, %llu pids)",
                            (unsigned long long)memory_mb, (unsigned long long)max_pids);
    sys->budget_memory_mb = memory_mb;
    sys->budget_pids = max_pids;
    return write_budget(sys, err);
}

/* The pool grew by count prepared sandboxes: so does the memory they may
 * hold together, and with it the kernel's limit. */
static int pool_grew(sandbox_system_t *sys, unsigned count, mf_error_t *err)
{
    sys->pool_memory_mb += (uint64_t)count * SANDBOX_POOL_MEMORY_MB;
    return sys->budget_memory_mb ? write_budget(sys, err) : 0;
}

/* ---- spawning -------------------------------------------------------- */

/* The names become directory names and a host name: keep them plain. */
static bool valid_id(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 128 || !strcmp(s, ".") || !strcmp(s, ".."))
        return false;
    for (const char *p = s; *p; p++)
        if (!(*p == '-' || *p == '_' || *p == '.' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return false;
    return true;
}

static int check_config(const sandbox_config_t *cfg, mf_error_t *err)
{
    if (!valid_id(cfg->id))
        return mf_error_set(err, EINVAL, "sandbox: bad id `%s`", cfg->id ? cfg->id : "");
    if (!cfg->code_dir || cfg->code_dir[0] != '/')
        return mf_error_set(err, EINVAL, "sandbox: code_dir must be an absolute path");
    if (cfg->runtime_dir && cfg->runtime_dir[0] != '/')
        return mf_error_set(err, EINVAL, "sandbox: runtime_dir must be an absolute path");
    if (!cfg->argv || !cfg->argv[0] || cfg->argv[0][0] != '/')
        return mf_error_set(err, EINVAL, "sandbox: argv[0] must be an absolute path inside");
    if (!cfg->envp)
        return mf_error_set(err, EINVAL, "sandbox: envp is NULL");
    if (!cfg->hostname || !*cfg->hostname || strlen(cfg->hostname) > 64 ||
        strpbrk(cfg->hostname, " \t\n"))
        return mf_error_set(err, EINVAL, "sandbox: bad hostname");
    if (cfg->memory_mb < 16 || cfg->tmp_mb < 1 || cfg->tmp_mb > 1 << 20 || cfg->max_pids < 2)
        return mf_error_set(err, EINVAL,
                            "sandbox: limits out of range (memory %u MB, tmp %u MB, "
                            "pids %u)",
                            cfg->memory_mb, cfg->tmp_mb, cfg->max_pids);
    if (cfg->api_port == 0)
        return mf_error_set(err, EINVAL, "sandbox: api_port is 0");
    return sandbox__volumes_check(cfg, err);
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

static int write_proc_file(pid_t pid, const char *name, const char *value)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
    cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    return fs_write_all(fd, value, strlen(value));
}

/* In a user namespace the child is uid 0 inside only once we map it:
 * "0 <our uid> 1" is the one mapping an unprivileged process may write,
 * and only after denying setgroups (which could otherwise drop a group
 * that denies access). */
static int write_id_maps(const sandbox_system_t *sys, pid_t pid, mf_error_t *err)
{
    char map[64];
    int r = write_proc_file(pid, "setgroups", "deny");
    if (r < 0 && r != -ENOENT)
        return mf_error_set(err, -r, "sandbox: write setgroups");
    snprintf(map, sizeof map, "0 %u 1\n", (unsigned)sys->uid);
    if ((r = write_proc_file(pid, "uid_map", map)) < 0)
        return mf_error_set(err, -r, "sandbox: write uid_map");
    snprintf(map, sizeof map, "0 %u 1\n", (unsigned)sys->gid);
    if ((r = write_proc_file(pid, "gid_map", map)) < 0)
        return mf_error_set(err, -r, "sandbox: write gid_map");
    return 0;
}

static void describe_status(char *out, size_t len, int st)
{
    if (WIFEXITED(st))
        snprintf(out, len, "exit status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(out, len, "signal %s",
                 sigabbrev_np(WTERMSIG(st)) ? sigabbrev_np(WTERMSIG(st)) : "?");
    else
        snprintf(out, len, "status %#x", st);
}

/* Waits for the child's one report: ready (with the listener) or the step
 * that failed. Returns the listener. */
static int wait_report(int sync_fd, pid_t pid, mf_error_t *err)
{
    struct pollfd p = {.fd = sync_fd, .events = POLLIN};
    int n;
    do
        n = poll(&p, 1, SANDBOX__SETUP_TIMEOUT_MS);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return mf_error_set(err, errno, "sandbox: poll");
    if (n == 0)
        return mf_error_set(err, ETIMEDOUT, "sandbox: the child did not report within %d ms",
                            SANDBOX__SETUP_TIMEOUT_MS);

    sandbox__report_t rep;
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct iovec iov = {&rep, sizeof rep};
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    ssize_t got;
    /* MSG_CMSG_CLOEXEC: the received descriptor is O_CLOEXEC from birth,
     * so a concurrent fork elsewhere in the server cannot leak it. */
    do
        got = recvmsg(sync_fd, &msg, MSG_CMSG_CLOEXEC);
    while (got < 0 && errno == EINTR);
    if (got < 0)
        return mf_error_set(err, errno, "sandbox: receive the child's report");

    int fd = -1;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
            cm->cmsg_len == CMSG_LEN(sizeof(int)))
            memcpy(&fd, CMSG_DATA(cm), sizeof fd);

    if (got == (ssize_t)sizeof rep && rep.ok && fd >= 0)
        return fd;
    cleanup_closep(&fd);
    if (got == (ssize_t)sizeof rep && !rep.ok) {
        rep.step[sizeof rep.step - 1] = '\0';
        return mf_error_set(err, rep.err, "sandbox: %s", rep.step);
    }
    if (got == 0) {
        /* The child died without a word (killed, or a crash). */
        int st = 0;
        char what[64];
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        describe_status(what, sizeof what, st);
        return mf_error_set(err, 0, "sandbox: the child died during set-up (%s)", what);
    }
    return mf_error_set(err, EPROTO, "sandbox: malformed report from the child");
}

/* A child between clone() and its report: what both a direct spawn and a
 * pooled one hold while they wait for it. */
typedef struct started {
    sandbox_system_t *sys;
    pid_t pid;
    int pidfd, sync_fd, out_r, err_r;
    struct sandbox__cg *cg;
    uid_t uid;     /* the sandbox's user (and group) id, as the host sees it */
    bool owns_uid; /* taken from the range: given back with the sandbox */
    uint64_t start_ns, cloned_ns;
} started_t;

static void started_init(started_t *st)
{
    *st = (started_t){.pid = -1, .pidfd = -1, .sync_fd = -1, .out_r = -1, .err_r = -1};
}

/* Kills and reaps the child, removes its cgroup and closes the parent's
 * descriptors. */
static void started_destroy(started_t *st)
{
    if (st->pid > 0) {
        /* SIGKILL to its init ends the whole namespace; then reap it, so
         * that nothing is left. */
        if (st->pidfd >= 0)
            syscall(SYS_pidfd_send_signal, st->pidfd, SIGKILL, NULL, 0);
        else
            kill(st->pid, SIGKILL);
        int w;
        while (waitpid(st->pid, &w, 0) < 0 && errno == EINTR)
            ;
    }
    sandbox__cg_destroy(st->cg);
    if (st->owns_uid)
        uid_give(st->sys, st->uid);
    cleanup_closep(&st->pidfd);
    cleanup_closep(&st->sync_fd);
    cleanup_closep(&st->out_r);
    cleanup_closep(&st->err_r);
    started_init(st);
}

/* The sandbox's identity: its uid, and the /etc/passwd and /etc/group
 * that name it. In a user namespace it is uid 0 inside, as before. */
static void child_identity(const sandbox_system_t *sys, sandbox__child_t *child, uid_t uid)
{
    child->uid = uid;
    child->gid = (gid_t)uid;
    if (sys->userns) {
        snprintf(child->passwd, sizeof child->passwd,
                 "root:x:0:0:root:/root:/usr/sbin/nologin\n"
                 "nobody:x:65534:65534:nobody:/tmp:/usr/sbin/nologin\n");
        snprintf(child->group, sizeof child->group, "root:x:0:\nnogroup:x:65534:\n");
        return;
    }
    snprintf(child->passwd, sizeof child->passwd,
             "root:x:0:0:root:/root:/usr/sbin/nologin\n" SANDBOX__USER
             ":x:%u:%u::/tmp:/usr/sbin/nologin\n"
             "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
             (unsigned)uid, (unsigned)uid);
    snprintf(child->group, sizeof child->group,
             "root:x:0:\n" SANDBOX__USER ":x:%u:\nnogroup:x:65534:\n", (unsigned)uid);
}

/* Creates the cgroup, clones the child, puts it in the cgroup and lets it
 * go. The child then runs sandbox__child_main(child). */
static int start_child(sandbox_system_t *sys, sandbox__child_t *child, const char *id,
                       unsigned memory_mb, unsigned max_pids, started_t *st, mf_error_t *err)
{
    started_init(st);
    st->sys = sys;
    st->start_ns = clock_mono_ns();

    /* Its own uid, so that no per-user kernel quota is shared with
     * another sandbox. */
    int r;
    if (sys->userns) {
        st->uid = sys->uid;
    } else if ((r = uid_take(sys, &st->uid)) < 0) {
        return mf_error_set(err, -r, "sandbox: every uid of the range %u:%u is in use",
                            sys->uids.first, sys->uids.count);
    } else {
        st->owns_uid = true;
    }
    child_identity(sys, child, st->uid);

    /* A direct child attaches its volumes from descriptors it inherits,
     * made now that its uid is known (a pooled one gets them with its
     * function, in specialise). */
    if (!child->pooled && (r = sandbox__volume_trees(child->cfg, st->uid, (gid_t)st->uid, child,
                                                     err)) < 0) {
        started_destroy(st);
        return r;
    }

    /* The cgroup first, so the child can be put in it before it does
     * anything worth accounting. */
    r = sandbox__cg_create(sys->cg, id, memory_mb, max_pids, &st->cg, err);
    /* A sandbox prepared ahead starts on the CPU that instances leave:
     * it is for a start to come, and must not slow one under way. */
    if (r == 0 && child->pooled)
        r = sandbox__cg_background(st->cg, err);
    if (r < 0) {
        mf_error_wrap(err, "sandbox");
        sandbox__volume_trees_close(child);
        started_destroy(st);
        return r;
    }

    /* The sync channel: SEQPACKET keeps the child's report, the listener
     * it carries and later the function's wait status as separate
     * messages, and EOF tells either side that the other died. */
    cleanup_close int sync_child = -1, out_w = -1, err_w = -1;
    int sp[2], po[2], pe[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
        r = mf_error_set(err, errno, "sandbox: socketpair");
        goto fail;
    }
    st->sync_fd = sp[0];
    sync_child = sp[1];
    /* The function's stdout and stderr. Blocking on the function's side
     * (programs do not expect EAGAIN on stdout); the server's ends are
     * made non-blocking when the sandbox is handed out. */
    if (pipe2(po, O_CLOEXEC) < 0) {
        r = mf_error_set(err, errno, "sandbox: pipe");
        goto fail;
    }
    st->out_r = po[0];
    out_w = po[1];
    if (pipe2(pe, O_CLOEXEC) < 0) {
        r = mf_error_set(err, errno, "sandbox: pipe");
        goto fail;
    }
    st->err_r = pe[0];
    err_w = pe[1];
    child->sync_fd = sync_child;
    child->out_fd = out_w;
    child->err_fd = err_w;

    /* No signal handler of the server may run in the child before it has
     * reset them: block everything around the clone (posix_spawn and crun
     * do the same). */
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    unsigned long flags = SANDBOX_CLONE_FLAGS | SIGCHLD;
    if (sys->userns)
        flags |= CLONE_NEWUSER;
    /* A raw clone without a new stack behaves like fork, and unlike
     * glibc's fork runs no atfork handlers in the child. CLONE_PIDFD
     * stores the pidfd where the parent_tid argument points. */
    pid_t pid = (pid_t)syscall(SYS_clone, flags, NULL, &st->pidfd, NULL, 0);
    if (pid == 0)
        sandbox__child_main(child);
    int clone_errno = errno;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    /* The child has its own copies of the volumes' descriptors. */
    sandbox__volume_trees_close(child);
    if (pid < 0) {
        r = mf_error_set(err, clone_errno, "sandbox: clone");
        goto fail;
    }
    st->pid = pid;
    st->cloned_ns = clock_mono_ns();

    if (sys->userns && (r = write_id_maps(sys, pid, err)) < 0)
        goto fail;
    if ((r = sandbox__cg_attach(st->cg, pid, err)) < 0) {
        mf_error_wrap(err, "sandbox");
        goto fail;
    }
    /* Go. */
    if (send(st->sync_fd, "g", 1, MSG_NOSIGNAL) != 1) {
        r = mf_error_set(err, errno, "sandbox: start the child");
        goto fail;
    }
    return 0;

fail:
    sandbox__volume_trees_close(child);
    started_destroy(st);
    return r;
}

/* Waits for the child's ready report and turns st into a running sandbox
 * (st is consumed either way). */
static int finish_child(started_t *st, const sandbox_config_t *cfg, sandbox_t *out,
                        mf_error_t *err)
{
    int r;
    int listen_fd = wait_report(st->sync_fd, st->pid, err);
    if (listen_fd < 0) {
        r = listen_fd;
        goto fail;
    }
    out->timings.ready_ns = clock_mono_ns();

    /* The server watches these from its event loop. */
    int fds[] = {st->sync_fd, listen_fd, st->out_r, st->err_r, st->pidfd};
    for (size_t i = 0; i < sizeof fds / sizeof *fds; i++) {
        if ((r = set_nonblock(fds[i])) < 0) {
            close(listen_fd);
            r = mf_error_set(err, -r, "sandbox: O_NONBLOCK");
            goto fail;
        }
    }
    out->pid = st->pid;
    out->pidfd = steal_fd(&st->pidfd);
    out->status_fd = steal_fd(&st->sync_fd);
    out->api_listen_fd = listen_fd;
    out->stdout_fd = steal_fd(&st->out_r);
    out->stderr_fd = steal_fd(&st->err_r);
    out->cgroup_path = xstrdup(sandbox__cg_path(st->cg));
    out->cg = steal_pointer(&st->cg);
    out->sys = st->sys;
    out->uid = st->uid;
    out->gid = st->sys->userns ? st->sys->gid : (gid_t)st->uid;
    out->owns_uid = st->owns_uid;
    st->owns_uid = false;
    st->pid = -1;
    if (cfg && cfg->net_setup) {
        /* The child waits after its report: nothing of the function runs
         * before the hook is done and the go below arrives. */
        r = cfg->net_setup(cfg->net_setup_ud, out, err);
        if (r == 0 && send(out->status_fd, "g", 1, MSG_NOSIGNAL) != 1)
            r = mf_error_set(err, errno, "sandbox: let the function start");
        if (r < 0) {
            sandbox_destroy(out);
            return r;
        }
    }
    return 0;

fail:
    started_destroy(st);
    return r;
}

/* The child fields the parent computes from a config. */
static void child_for(sandbox__child_t *child, const sandbox_config_t *cfg)
{
    snprintf(child->tmp_opts, sizeof child->tmp_opts, "size=%um,mode=1777", cfg->tmp_mb);
    snprintf(child->hosts, sizeof child->hosts,
             "127.0.0.1\tlocalhost %s\n::1\tlocalhost ip6-localhost ip6-loopback\n", cfg->hostname);
    child->fsize = (rlim_t)cfg->tmp_mb << 20;
    child->hold = cfg->net_setup != NULL;
}

/* ---- the pool of prepared sandboxes -------------------------------- */

/* Sandboxes cloned, put in their cgroup, given their loopback listener and
 * the part of the root every sandbox shares, waiting for a function. A
 * thread of its own keeps the pool full, so creating them costs the event
 * loop nothing; handing one out costs the function-specific steps only.
 * Zygote kinds go further: their root is finished and their runtime is
 * already running, waiting for the function's code and environment. */
typedef struct pool_kind {
    char *name;                /* NULL for the generic kind */
    char **argv, **envp;       /* zygotes: the runtime's command */
    char *runtime_dir;
    started_t *ready;
    unsigned count, target;
} pool_kind_t;

#define POOL_MAX_KINDS 8

typedef struct sandbox__pool {
    sandbox_system_t *sys;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pool_kind_t kinds[POOL_MAX_KINDS];
    unsigned nkinds;
    unsigned max_pids;
    bool stop;
    unsigned failures;
    uint64_t last_take_ns;
} sandbox__pool_t;

/* A refill waits for this long after the last sandbox was handed out: a
 * new sandbox's runtime is starting then, and a clone beside it would slow
 * that start down (same CPUs, same kernel locks). Bursts drain the pool
 * and fall back to direct spawns; the pool refills in the quiet after. */
#define POOL_QUIET_NS (20u * 1000 * 1000)

/* The memory limit a waiting sandbox has until it knows its function: the
 * smallest a function may ask for (a zygote's runtime fits in it). */
#define POOL_MEMORY_MB 128
/* /tmp's size until the function's own is known. */
#define POOL_TMP_MB 64

static int pool_prepare(sandbox__pool_t *pool, const pool_kind_t *kind, started_t *st,
                        mf_error_t *err)
{
    char id[32];
    uint8_t rnd[6];
    id_random_bytes(rnd, sizeof rnd);
    snprintf(id, sizeof id, "pool-%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3],
             rnd[4], rnd[5]);
    /* A pooled sandbox finishes its root now, so everything a config
     * carries is known but the code, the command and the environment
     * (and, for a zygote, the command is its runtime's). */
    char hostname[64];
    snprintf(hostname, sizeof hostname, "mayfly-%.12s", id + 5);
    sandbox_config_t pcfg = {
        .id = id,
        .code_dir = NULL,
        .runtime_dir = kind->runtime_dir,
        .argv = kind->argv,
        .envp = kind->envp,
        .hostname = hostname,
        .memory_mb = POOL_MEMORY_MB,
        .tmp_mb = POOL_TMP_MB,
        .max_pids = pool->max_pids,
        .api_port = SANDBOX_API_PORT,
    };
    sandbox__child_t child = {.sys = pool->sys, .pooled = true, .cfg = &pcfg,
                              .zygote = kind->name != NULL};
    child_for(&child, &pcfg);
    /* Init can only lower its file-size limit when the function comes
     * (raising it needs CAP_SYS_RESOURCE, which a root server in a
     * container may lack), and a zygote's runtime, started now, keeps this
     * one: start with none, as a function's file on a volume may be as
     * large as the volume (up to 1 TiB). Each file system a sandbox can
     * write to (its /tmp, its volumes) still bounds every write. */
    child.fsize = RLIM_INFINITY;
    int r = start_child(pool->sys, &child, id, POOL_MEMORY_MB, pool->max_pids, st, err);
    if (r < 0)
        return r;
    /* The one-byte "prepared" message, or a failure report. The sandbox
     * starts with the lowest CPU weight (start_child), so that it slows no
     * instance's start; if busy instances leave it too little CPU to get
     * ready in half the time it has, it gets the weight an instance of
     * its memory has for the other half. */
    struct pollfd p = {.fd = st->sync_fd, .events = POLLIN};
    int n;
    do
        n = poll(&p, 1, SANDBOX__SETUP_TIMEOUT_MS / 2);
    while (n < 0 && errno == EINTR);
    if (n == 0 && sandbox__cg_set_memory(st->cg, POOL_MEMORY_MB, err) == 0) {
        do
            n = poll(&p, 1, SANDBOX__SETUP_TIMEOUT_MS / 2);
        while (n < 0 && errno == EINTR);
    }
    char buf[sizeof(sandbox__report_t)];
    ssize_t got = n > 0 ? recv(st->sync_fd, buf, sizeof buf, 0) : -1;
    if (got == 1 && buf[0] == SANDBOX__PREPARED)
        return 0;
    if (got == (ssize_t)sizeof(sandbox__report_t)) {
        sandbox__report_t *rep = (sandbox__report_t *)buf;
        rep->step[sizeof rep->step - 1] = '\0';
        r = mf_error_set(err, rep->err, "sandbox: %s", rep->step);
    } else {
        r = mf_error_set(err, n == 0 ? ETIMEDOUT : EPROTO,
                         "sandbox: a pooled sandbox did not get ready");
    }
    started_destroy(st);
    return r;
}

/* The kind most in need of a sandbox, or NULL when all are full. */
static pool_kind_t *pool_needy(sandbox__pool_t *pool)
{
    pool_kind_t *best = NULL;
    for (unsigned i = 0; i < pool->nkinds; i++) {
        pool_kind_t *k = &pool->kinds[i];
        if (k->count < k->target && (!best || k->count < best->count))
            best = k;
    }
    return best;
}

static void *pool_main(void *arg)
{
    sandbox__pool_t *pool = arg;
    pthread_setname_np(pthread_self(), "mayfly-sbpool");
    pthread_mutex_lock(&pool->lock);
    while (!pool->stop) {
        pool_kind_t *kind = pool_needy(pool);
        if (!kind) {
            pthread_cond_wait(&pool->wake, &pool->lock);
            continue;
        }
        uint64_t now = clock_mono_ns();
        if (now - pool->last_take_ns < POOL_QUIET_NS) {
            uint64_t wait_ns = POOL_QUIET_NS - (now - pool->last_take_ns);
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += (long)wait_ns;
            ts.tv_sec += ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&pool->wake, &pool->lock, &ts);
            continue;
        }
        pthread_mutex_unlock(&pool->lock);
        started_t st;
        mf_error_t err = MF_ERROR_INIT;
        int r = pool_prepare(pool, kind, &st, &err);
        pthread_mutex_lock(&pool->lock);
        if (r < 0) {
            /* Keep serving (spawns fall back to the direct path), but do
             * not spin: a broken pool would otherwise burn a core. */
            if (pool->failures++ < 3)
                log_warn("sandbox", "preparing a pooled %s sandbox: %s",
                         kind->name ? kind->name : "generic", err.msg);
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&pool->wake, &pool->lock, &ts);
            continue;
        }
        pool->failures = 0;
        if (pool->stop) {
            pthread_mutex_unlock(&pool->lock);
            started_destroy(&st);
            pthread_mutex_lock(&pool->lock);
            break;
        }
        kind->ready[kind->count++] = st;
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

static char **strv_dup(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    char **out = xcalloc(n + 1, sizeof *out);
    for (size_t i = 0; i < n; i++)
        out[i] = xstrdup(v[i]);
    return out;
}

static void strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

int sandbox_system_start_pool(sandbox_system_t *sys, unsigned count, unsigned max_pids,
                              const char *runtime_dir, mf_error_t *err)
{
    if (sys->pool)
        return 0;
    if (sys->userns)
        count = 0; /* handing out a prepared sandbox needs open_tree: root */
    sandbox__pool_t *pool = xcalloc(1, sizeof *pool);
    pool->sys = sys;
    pool->max_pids = max_pids;
    pool->nkinds = 1;
    pool->kinds[0].target = count;
    pool->kinds[0].runtime_dir = runtime_dir ? xstrdup(runtime_dir) : NULL;
    pool->kinds[0].ready = xcalloc(count ? count : 1, sizeof(started_t));
    int r = pool_grew(sys, count, err);
    if (r < 0) {
        free(pool->kinds[0].runtime_dir);
        free(pool->kinds[0].ready);
        free(pool);
        return r;
    }
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    r = pthread_create(&pool->thread, NULL, pool_main, pool);
    if (r != 0) {
        pthread_mutex_destroy(&pool->lock);
        pthread_cond_destroy(&pool->wake);
        free(pool->kinds[0].ready);
        free(pool);
        return mf_error_set(err, r, "sandbox: start the pool thread");
    }
    sys->pool = pool;
    return 0;
}

int sandbox_system_add_zygotes(sandbox_system_t *sys, const char *kind, char *const *argv,
                               char *const *envp, const char *runtime_dir, unsigned count,
                               mf_error_t *err)
{
    sandbox__pool_t *pool = sys->pool;
    if (count == 0)
        return 0;
    if (!pool)
        return mf_error_set(err, EINVAL, "sandbox: start the pool before adding zygotes");
    if (sys->userns)
        return mf_error_set(err, EPERM, "sandbox: zygotes need root (open_tree)");
    if (!argv || !argv[0] || argv[0][0] != '/' || !runtime_dir || runtime_dir[0] != '/')
        return mf_error_set(err, EINVAL, "sandbox: a zygote needs an absolute command and "
                                         "runtime folder");
    int r = pool_grew(sys, count, err);
    if (r < 0)
        return r;
    pthread_mutex_lock(&pool->lock);
    if (pool->nkinds == POOL_MAX_KINDS) {
        pthread_mutex_unlock(&pool->lock);
        return mf_error_set(err, ENOSPC, "sandbox: too many zygote kinds");
    }
    pool_kind_t *k = &pool->kinds[pool->nkinds++];
    k->name = xstrdup(kind);
    k->argv = strv_dup(argv);
    /* The runtime finds its descriptor through the environment. */
    size_t n = 0;
    while (envp && envp[n])
        n++;
    k->envp = xcalloc(n + 2, sizeof *k->envp);
    for (size_t i = 0; i < n; i++)
        k->envp[i] = xstrdup(envp[i]);
    k->envp[n] = xasprintf("MAYFLY_ZYGOTE_FD=%d", SANDBOX__ZYGOTE_FD);
    k->runtime_dir = xstrdup(runtime_dir);
    k->ready = xcalloc(count, sizeof *k->ready);
    k->target = count;
    pthread_cond_signal(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    return 0;
}

void sandbox__pool_free(sandbox__pool_t *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->stop = true;
    pthread_cond_signal(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    pthread_join(pool->thread, NULL);
    for (unsigned i = 0; i < pool->nkinds; i++) {
        pool_kind_t *k = &pool->kinds[i];
        for (unsigned j = 0; j < k->count; j++)
            started_destroy(&k->ready[j]);
        free(k->ready);
        free(k->name);
        strv_free(k->argv);
        strv_free(k->envp);
        free(k->runtime_dir);
    }
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->wake);
    free(pool);
}

unsigned sandbox_system_pool_ready(sandbox_system_t *sys, const char *kind)
{
    sandbox__pool_t *pool = sys->pool;
    unsigned n = 0;
    if (!pool)
        return 0;
    pthread_mutex_lock(&pool->lock);
    for (unsigned i = 0; i < pool->nkinds; i++) {
        const pool_kind_t *k = &pool->kinds[i];
        if (kind ? k->name && !strcmp(k->name, kind) : !k->name)
            n = k->count;
    }
    pthread_mutex_unlock(&pool->lock);
    return n;
}

/* Takes a prepared sandbox for cfg, if one is waiting: a zygote of cfg's
 * kind when it names one, else a generic one. */
static const pool_kind_t *pool_take(sandbox__pool_t *pool, const sandbox_config_t *cfg,
                                    started_t *st)
{
    if (!pool || cfg->api_port != SANDBOX_API_PORT || cfg->max_pids != pool->max_pids)
        return NULL;
    pthread_mutex_lock(&pool->lock);
    pool_kind_t *got = NULL;
    for (unsigned i = 1; cfg->zygote && i < pool->nkinds && !got; i++) {
        pool_kind_t *k = &pool->kinds[i];
        if (k->count && !strcmp(k->name, cfg->zygote))
            got = k;
    }
    /* A generic sandbox has its /var/runtime already: only for the same. */
    const char *rd = pool->kinds[0].runtime_dir;
    if (!got && pool->kinds[0].count &&
        (rd && cfg->runtime_dir ? !strcmp(rd, cfg->runtime_dir) : rd == cfg->runtime_dir))
        got = &pool->kinds[0];
    if (got) {
        *st = got->ready[--got->count];
        pool->last_take_ns = clock_mono_ns();
    }
    pthread_mutex_unlock(&pool->lock);
    return got;
}

/* Lets the pool make up for what was taken. Called once the taken sandbox
 * is running: a refill racing its specialisation would compete for the
 * same CPU and the kernel's namespace and cgroup locks. */
static void pool_refill(sandbox__pool_t *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    pthread_cond_signal(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
}

/* ---- specialisation ----------------------------------------------------- */

static void spec_add(buf_t *out, const char *s)
{
    buf_add(out, s ? s : "", strlen(s ? s : "") + 1);
}

void sandbox__spec_encode(buf_t *out, const sandbox_config_t *cfg, const sandbox__child_t *c)
{
    char num[32];
    spec_add(out, cfg->hostname);
    spec_add(out, cfg->code_dir);
    spec_add(out, cfg->runtime_dir);
    spec_add(out, c->tmp_opts);
    spec_add(out, c->hosts);
    snprintf(num, sizeof num, "%llu", (unsigned long long)c->fsize);
    spec_add(out, num);
    spec_add(out, c->hold ? "1" : "0");
    size_t n = 0;
    while (cfg->argv[n])
        n++;
    snprintf(num, sizeof num, "%zu", n);
    spec_add(out, num);
    for (size_t i = 0; i < n; i++)
        spec_add(out, cfg->argv[i]);
    n = 0;
    while (cfg->envp[n])
        n++;
    snprintf(num, sizeof num, "%zu", n);
    spec_add(out, num);
    for (size_t i = 0; i < n; i++)
        spec_add(out, cfg->envp[i]);
    /* The volumes' mount points; their mounts travel as descriptors. */
    snprintf(num, sizeof num, "%u", c->n_volumes);
    spec_add(out, num);
    for (unsigned i = 0; i < c->n_volumes; i++)
        spec_add(out, c->volume_dirs[i]);
}

/* Child side: no allocation, static storage only. */
static const char *spec_next(char **p, char *end)
{
    if (*p >= end)
        return NULL;
    char *s = *p;
    char *nul = memchr(s, '\0', (size_t)(end - s));
    if (!nul)
        return NULL;
    *p = nul + 1;
    return s;
}

static bool spec_count(char **p, char *end, size_t max, size_t *n)
{
    const char *s = spec_next(p, end);
    if (!s || !*s)
        return false;
    size_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (size_t)(*s - '0');
        if (v > max)
            return false;
    }
    *n = v;
    return true;
}

int sandbox__spec_decode(char *msg, size_t len, sandbox__child_t *c)
{
    static sandbox_config_t cfg;
    static char *argv[SANDBOX__SPEC_MAX_ARGV + 1];
    static char *envp[SANDBOX__SPEC_MAX_ENVP + 1];
    char *p = msg, *end = msg + len;
    const char *hostname = spec_next(&p, end), *code_dir = spec_next(&p, end),
               *runtime_dir = spec_next(&p, end), *tmp_opts = spec_next(&p, end),
               *hosts = spec_next(&p, end), *fsize = spec_next(&p, end),
               *hold = spec_next(&p, end);
    size_t n;
    if (!hold || strlen(tmp_opts) >= sizeof c->tmp_opts || strlen(hosts) >= sizeof c->hosts)
        return -EINVAL;
    c->hold = hold[0] == '1';
    if (!spec_count(&p, end, SANDBOX__SPEC_MAX_ARGV, &n) || n == 0)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!(argv[i] = (char *)spec_next(&p, end)))
            return -EINVAL;
    argv[n] = NULL;
    if (!spec_count(&p, end, SANDBOX__SPEC_MAX_ENVP, &n))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!(envp[i] = (char *)spec_next(&p, end)))
            return -EINVAL;
    envp[n] = NULL;
    if (!spec_count(&p, end, SANDBOX_VOLUMES_MAX, &n))
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        const char *dir = spec_next(&p, end);
        if (!dir || strncmp(dir, "mnt/", 4) != 0 || strlen(dir) >= sizeof c->volume_dirs[0])
            return -EINVAL;
        memcpy(c->volume_dirs[i], dir, strlen(dir) + 1);
    }
    c->n_volumes = (unsigned)n;
    /* Nothing may follow. */
    if (p != end)
        return -EINVAL;

    cfg.hostname = hostname;
    cfg.code_dir = code_dir;
    cfg.runtime_dir = *runtime_dir ? runtime_dir : NULL;
    cfg.argv = argv;
    cfg.envp = envp;
    cfg.api_port = SANDBOX_API_PORT;
    memcpy(c->tmp_opts, tmp_opts, strlen(tmp_opts) + 1);
    memcpy(c->hosts, hosts, strlen(hosts) + 1);
    c->fsize = (rlim_t)strtoull(fsize, NULL, 10);
    c->cfg = &cfg;
    return 0;
}

/* The function's code as a detached, read-only mount, for a zygote whose
 * root no longer reaches the host's paths: its init attaches it at
 * /var/task with move_mount. */
static int code_tree(const char *code_dir, mf_error_t *err)
{
    int fd = open_tree(AT_FDCWD, code_dir, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    if (fd < 0)
        return mf_error_set(err, errno, "sandbox: open_tree `%s`", code_dir);
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
                                          MOUNT_ATTR_NODEV};
    if (mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0) {
        int e = errno;
        close(fd);
        return mf_error_set(err, e, "sandbox: make the code mount read-only");
    }
    return fd;
}

/* Sends the specialisation, with the code's mount and then the volumes'
 * (c->volume_fds) as SCM_RIGHTS. */
static int send_spec(int sync_fd, const buf_t *spec, int code, const sandbox__child_t *c)
{
    struct iovec iov = {spec->data, spec->len};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * (1 + SANDBOX_VOLUMES_MAX))];
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    int fds[1 + SANDBOX_VOLUMES_MAX];
    size_t n = 0;
    fds[n++] = code;
    for (unsigned i = 0; i < c->n_volumes; i++)
        fds[n++] = c->volume_fds[i];
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    msg.msg_control = ctl.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * n);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
    return sendmsg(sync_fd, &msg, MSG_NOSIGNAL) == (ssize_t)spec->len ? 0 : -errno;
}

/* Turns a pooled sandbox into cfg's: its limits and name, then the
 * function's part of the set-up in the child. */
static int specialise(started_t *st, const pool_kind_t *kind, const sandbox_config_t *cfg,
                      sandbox_t *out, mf_error_t *err)
{
    out->timings.start_ns = clock_mono_ns();
    out->timings.cloned_ns = out->timings.start_ns;
    sandbox__child_t child = {0};
    child_for(&child, cfg);
    int r = sandbox__cg_set_memory(st->cg, cfg->memory_mb, err);
    if (r == 0)
        r = sandbox__cg_rename(st->cg, cfg->id, err);
    cleanup_close int tree = -1;
    if (r == 0 && (tree = code_tree(cfg->code_dir, err)) < 0)
        r = tree;
    if (r == 0)
        r = sandbox__volume_trees(cfg, st->uid, (gid_t)st->uid, &child, err);
    if (r < 0) {
        mf_error_wrap(err, "sandbox");
        started_destroy(st);
        return r;
    }
    buf_t spec = BUF_INIT;
    sandbox__spec_encode(&spec, cfg, &child);
    if (spec.len > SANDBOX__SPEC_MAX) {
        buf_release(&spec);
        sandbox__volume_trees_close(&child);
        started_destroy(st);
        return mf_error_set(err, E2BIG, "sandbox: the function's command and environment are "
                                        "over %d bytes", SANDBOX__SPEC_MAX);
    }
    r = send_spec(st->sync_fd, &spec, tree, &child);
    sandbox__volume_trees_close(&child);
    buf_release(&spec);
    if (r < 0) {
        r = mf_error_set(err, -r, "sandbox: hand the function to a pooled sandbox");
        started_destroy(st);
        return r;
    }
    return finish_child(st, cfg, out, err);
}

/* A sandbox with nothing open, safe to destroy. */
static sandbox_t sandbox_blank(void)
{
    return (sandbox_t){.pid = -1,
                       .pidfd = -1,
                       .status_fd = -1,
                       .api_listen_fd = -1,
                       .stdout_fd = -1,
                       .stderr_fd = -1,
                       .schedstat_fd = -1};
}

int sandbox_spawn(sandbox_system_t *sys, const sandbox_config_t *cfg, sandbox_t *out,
                  mf_error_t *err)
{
    *out = sandbox_blank();
    int r = check_config(cfg, err);
    if (r < 0)
        return r;
    if (cfg->n_volumes && sys->userns)
        return mf_error_set(err, EPERM, "sandbox: volumes need a server running as root");

    started_t st;
    const pool_kind_t *kind = pool_take(sys->pool, cfg, &st);
    if (kind) {
        mf_error_t perr = MF_ERROR_INIT;
        r = specialise(&st, kind, cfg, out, &perr);
        pool_refill(sys->pool);
        if (r == 0)
            return 0;
        /* A prepared sandbox that died waiting is no reason to fail the
         * call: make one the slow way. A function-specific failure (its
         * code dir is gone) fails the same way below, with its step. */
        log_debug("sandbox", "pooled sandbox not usable: %s", perr.msg);
        *out = sandbox_blank();
    }

    /* Everything the child needs is computed here: it must not allocate. */
    sandbox__child_t child = {.sys = sys, .cfg = cfg};
    child_for(&child, cfg);
    r = start_child(sys, &child, cfg->id, cfg->memory_mb, cfg->max_pids, &st, err);
    if (r < 0)
        return r;
    out->timings.start_ns = st.start_ns;
    out->timings.cloned_ns = st.cloned_ns;
    r = finish_child(&st, cfg, out, err);
    pool_refill(sys->pool); /* an empty pool is refilled after a direct spawn */
    return r;
}

/* ---- running sandboxes ---------------------------------------------- */

int sandbox_stats(const sandbox_t *sb, unsigned what, sandbox_stats_t *out)
{
    if (!sb->cg)
        return -EINVAL;
    return sandbox__cg_stats(sb->cg, what, out);
}

/* The process that runs the function: PID 1, or PID 1's one child where
 * PID 1 is the init that holds a zygote's runtime (init.c). */
static pid_t runtime_pid(pid_t pid1)
{
    char path[64], list[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid1, (int)pid1);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return pid1;
    ssize_t n = read(fd, list, sizeof list - 1);
    close(fd);
    if (n <= 0)
        return pid1;
    list[n] = '\0';
    int child, end = 0;
    if (sscanf(list, "%d %n", &child, &end) != 1 || list[end] != '\0')
        return pid1; /* none, or more than one */
    return (pid_t)child;
}

int sandbox_cpu_wait(sandbox_t *sb, uint64_t *wait_ns)
{
    if (sb->pid <= 0 || sb->reaped)
        return -ESRCH;
    if (sb->schedstat_fd < 0) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/schedstat", (int)runtime_pid(sb->pid));
        sb->schedstat_fd = open(path, O_RDONLY | O_CLOEXEC);
        if (sb->schedstat_fd < 0)
            return -errno;
    }
    uint64_t run_ns;
    return fs_read_schedstat(sb->schedstat_fd, &run_ns, wait_ns);
}

void sandbox_reset_peak(sandbox_t *sb)
{
    if (sb->cg)
        sandbox__cg_reset_peak(sb->cg);
}

int sandbox_cap_cpu(sandbox_t *sb, unsigned cpu_mb, mf_error_t *err)
{
    if (!sb->cg)
        return mf_error_set(err, EINVAL, "sandbox: no cgroup to cap");
    int r = sandbox__cg_cap_cpu(sb->cg, cpu_mb, err);
    if (r < 0)
        mf_error_wrap(err, "sandbox: cap the CPU");
    return r;
}

int sandbox_freeze(sandbox_t *sb)
{
    if (!sb->cg)
        return -EINVAL;
    int r = sandbox__cg_freeze(sb->cg, true);
    if (r == 0)
        sb->frozen = true;
    return r;
}

int sandbox_thaw(sandbox_t *sb)
{
    if (!sb->cg)
        return -EINVAL;
    int r = sandbox__cg_freeze(sb->cg, false);
    if (r == 0)
        sb->frozen = false;
    return r;
}

void sandbox_kill(sandbox_t *sb)
{
    if (sb->pidfd >= 0 && !sb->reaped)
        syscall(SYS_pidfd_send_signal, sb->pidfd, SIGKILL, NULL, 0);
    if (sb->cg) {
        sandbox__cg_kill(sb->cg);
        /* v1's freezer holds a frozen process until it is thawed, SIGKILL
         * or not (v2's lets the kill through): thawed after the signal,
         * nothing runs but the way out. */
        if (sb->frozen)
            sandbox_thaw(sb);
    }
}

/* waitid's siginfo back to a waitpid status word. */
static int siginfo_status(const siginfo_t *si)
{
    switch (si->si_code) {
    case CLD_EXITED: return (si->si_status & 0xff) << 8;
    case CLD_KILLED: return si->si_status & 0x7f;
    case CLD_DUMPED: return (si->si_status & 0x7f) | 0x80;
    default: return 0;
    }
}

int sandbox_reap(sandbox_t *sb, int *wstatus)
{
    if (sb->reaped) {
        *wstatus = sb->wstatus;
        return 0;
    }
    if (sb->pidfd < 0)
        return -EINVAL;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid((idtype_t)P_PIDFD, (id_t)sb->pidfd, &si, WEXITED | WNOHANG) < 0)
        return errno == EAGAIN ? -EAGAIN : -errno;
    if (si.si_pid == 0)
        return -EAGAIN;
    int st = siginfo_status(&si);
    /* Init sends the function's status before it exits, so if there is
     * one it is queued by now. */
    sandbox__exit_t ex;
    if (sb->status_fd >= 0 && recv(sb->status_fd, &ex, sizeof ex, MSG_DONTWAIT) == sizeof ex) {
        st = ex.wstatus;
        sb->exec_errno = ex.exec_errno;
    }
    sb->reaped = true;
    sb->wstatus = st;
    *wstatus = st;
    return 0;
}

/* setns() moves only the calling thread: the loop thread steps into the
 * sandbox's network namespace, runs fn, and steps back into its own, which
 * it holds open for that (opened on first use, kept for the process). */
int sandbox_enter_net(const sandbox_t *sb, int (*fn)(void *ud), void *ud, mf_error_t *err)
{
    static int own_net = -1;
    if (own_net < 0) {
        own_net = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (own_net < 0)
            return mf_error_set(err, errno, "open this thread's network namespace");
    }
    if (sb->reaped || sb->pidfd < 0)
        return mf_error_set(err, -ESRCH, "the sandbox has exited");
    /* A pidfd names the namespace of the sandbox's PID 1 (Linux 5.8). */
    if (setns(sb->pidfd, CLONE_NEWNET) < 0) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/ns/net", (int)sb->pid);
        cleanup_close int ns = open(path, O_RDONLY | O_CLOEXEC);
        if (ns < 0 || setns(ns, CLONE_NEWNET) < 0)
            return mf_error_set(err, errno, "enter the sandbox's network namespace");
    }
    int r = fn(ud);
    if (setns(own_net, CLONE_NEWNET) < 0) {
        /* The thread would go on in the wrong namespace: nothing sane is left. */
        log_error("sandbox", "return to the server's network namespace: %s", strerror(errno));
        abort();
    }
    if (r < 0)
        return mf_error_plain(err, -r, "%s", strerror(-r));
    return 0;
}

void sandbox_destroy(sandbox_t *sb)
{
    if (sb->pid > 0 && !sb->reaped) {
        sandbox_kill(sb);
        /* After SIGKILL this returns as soon as the kernel has torn the
         * namespace down; a blocking wait is fine. */
        int st = 0;
        while (waitpid(sb->pid, &st, 0) < 0 && errno == EINTR)
            ;
        sb->reaped = true;
        sb->wstatus = st;
    }
    if (sb->cg) {
        sandbox__cg_destroy(sb->cg);
        sb->cg = NULL;
    }
    /* Its processes are gone: the uid can serve another sandbox. */
    if (sb->owns_uid) {
        uid_give(sb->sys, sb->uid);
        sb->owns_uid = false;
    }
    int *fds[] = {&sb->pidfd,     &sb->status_fd, &sb->api_listen_fd,
                  &sb->stdout_fd, &sb->stderr_fd, &sb->schedstat_fd};
    for (size_t i = 0; i < sizeof fds / sizeof *fds; i++) {
        cleanup_closep(fds[i]);
        *fds[i] = -1;
    }
    free(sb->cgroup_path);
    sb->cgroup_path = NULL;
}
