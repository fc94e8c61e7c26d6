/* The sandbox's child, from clone() to execve(): it becomes PID 1 of the
 * new PID namespace, sets the sandbox up step by step, reports to the
 * server, forks the function's process and then stays as its init.
 *
 * Rules for this file (see internal.h): no allocation, no stdio, no
 * logging, no locks; only system calls and memory prepared by the parent.
 * A step that fails reports {step, errno} on the sync socket and exits 127
 * (bubblewrap's die_with_error), and the parent turns that into
 * "sandbox: <step>: <strerror>". */
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/proctitle.h"
#include "sandbox/internal.h"

/* The descriptor numbers the child moves its three descriptors to. */
enum { FD_SYNC = 3, FD_OUT = 4, FD_ERR = 5, FD_FIRST_FREE = 6 };

static int report_fd = -1;

_Noreturn void sandbox__child_die(const char *step)
{
    sandbox__report_t rep;
    memset(&rep, 0, sizeof rep);
    rep.err = errno;
    strncpy(rep.step, step, sizeof rep.step - 1);
    /* MSG_NOSIGNAL: with the server gone, SIGPIPE must not be what ends
     * us; we exit on our own terms either way. */
    if (report_fd >= 0)
        send(report_fd, &rep, sizeof rep, MSG_NOSIGNAL);
    _exit(127);
}

/* Closes every descriptor from lowfd up by listing /proc/self/fd with
 * getdents64 into a stack buffer (opendir would allocate). Only for
 * kernels before 5.9, which lack close_range. */
static void close_from_proc(int lowfd)
{
    int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        sandbox__child_die("open /proc/self/fd");
    char buf[4096];
    for (;;) {
        long n = syscall(SYS_getdents64, dfd, buf, sizeof buf);
        if (n < 0)
            sandbox__child_die("read /proc/self/fd");
        if (n == 0)
            break;
        for (long off = 0; off < n;) {
            struct {
                uint64_t ino;
                int64_t off;
                unsigned short reclen;
                unsigned char type;
                char name[];
            } *d = (void *)(buf + off);
            int fd = 0;
            const char *p = d->name;
            for (; *p >= '0' && *p <= '9'; p++)
                fd = fd * 10 + (*p - '0');
            if (!*p && p != d->name && fd >= lowfd && fd != dfd)
                close(fd);
            off += d->reclen;
        }
    }
    close(dfd);
}

/* Moves the child's three descriptors to 3, 4 and 5 (and its volumes'
 * mounts to 6 and up) and closes every other one the server had open:
 * client connections, its listening socket, the SQLite files, other
 * sandboxes' pipes. A sandbox holding any of them could read another's
 * data or keep a connection from closing. */
static void keep_only_our_fds(sandbox__child_t *c)
{
    int fds[3 + SANDBOX_VOLUMES_MAX] = {c->sync_fd, c->out_fd, c->err_fd};
    unsigned n = 3 + c->n_volumes;
    int first_free = FD_FIRST_FREE + (int)c->n_volumes;
    for (unsigned i = 0; i < c->n_volumes; i++)
        fds[3 + i] = c->volume_fds[i];
    /* First above the target range, then into place: a source may sit on
     * a target number already. */
    for (unsigned i = 0; i < n; i++)
        if ((fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, first_free)) < 0)
            sandbox__child_die("move descriptors");
    for (unsigned i = 0; i < n; i++)
        if (dup3(fds[i], FD_SYNC + (int)i, O_CLOEXEC) < 0)
            sandbox__child_die("move descriptors");
    report_fd = FD_SYNC;
    c->sync_fd = FD_SYNC;
    c->out_fd = FD_OUT;
    c->err_fd = FD_ERR;
    for (unsigned i = 0; i < c->n_volumes; i++)
        c->volume_fds[i] = FD_FIRST_FREE + (int)i;
    if (syscall(SYS_close_range, first_free, ~0U, 0) < 0) {
        if (errno != ENOSYS)
            sandbox__child_die("close_range");
        close_from_proc(first_free);
    }
    /* 0, 1 and 2 are the server's stdin, stdout and stderr (maybe a
     * terminal, maybe a supervisor's log pipe): point them at /dev/null.
     * This also guarantees 0-2 are taken, so no later descriptor lands
     * there and gets clobbered. */
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0)
        sandbox__child_die("open /dev/null");
    for (int fd = 0; fd < 3; fd++)
        if (null != fd && dup2(null, fd) < 0)
            sandbox__child_die("dup2 /dev/null");
    if (null > 2)
        close(null);
}

static void set_limit(int resource, rlim_t value, const char *step)
{
    struct rlimit rl;
    if (getrlimit(resource, &rl) < 0)
        sandbox__child_die(step);
    /* Lowering always works; raising the hard limit needs privilege we
     * may not have in a user namespace, so never ask for more than it. */
    if (rl.rlim_max != RLIM_INFINITY && value > rl.rlim_max)
        value = rl.rlim_max;
    rl.rlim_cur = rl.rlim_max = value;
    if (setrlimit(resource, &rl) < 0)
        sandbox__child_die(step);
}

/* Gives up every privilege, for good, in the order the kernel requires. */
static void drop_privileges(const sandbox__child_t *c)
{
    const sandbox_system_t *sys = c->sys;

    /* The bounding set caps what any later execve can gain (a setuid or
     * file-capability binary), so empty it first, while we still hold
     * CAP_SETPCAP. EINVAL marks a capability this kernel does not know. */
    for (int cap = 0; cap <= sys->last_cap; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            sandbox__child_die("drop the capability bounding set");
    /* Ambient capabilities would survive execve even for an unprivileged
     * user. */
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        sandbox__child_die("clear ambient capabilities");

    if (!sys->userns) {
        /* Become the sandbox's own user (a uid no other sandbox has, so
         * per-user kernel quotas are its own): no supplementary groups
         * left from the server, then the group, then the user last (after
         * it we could change neither). The uid change from 0 also empties
         * the permitted and effective capability sets. Raw system calls,
         * not glibc's: in a multi-threaded parent glibc would try to apply
         * the change to threads that do not exist in this copy of the
         * process. */
        if (syscall(SYS_setgroups, 0, NULL) < 0)
            sandbox__child_die("setgroups");
        if (syscall(SYS_setresgid, c->gid, c->gid, c->gid) < 0)
            sandbox__child_die("setresgid");
        if (syscall(SYS_setresuid, c->uid, c->uid, c->uid) < 0)
            sandbox__child_die("setresuid");
    }
    /* In a user namespace our only mapped id is 0 (the server's own uid
     * outside), so we stay 0 inside, with no capabilities at all: with
     * the bounding set empty, not even exec as uid 0 restores any. In both
     * cases make sure every set, inheritable included, is empty. */
    if (cap_set_proc(sys->no_caps) < 0)
        sandbox__child_die("clear capabilities");

    /* No execve may grant privileges again (setuid bits, file
     * capabilities); also the precondition for an unprivileged seccomp
     * filter. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        sandbox__child_die("PR_SET_NO_NEW_PRIVS");

    /* If the server dies, so does the sandbox: its init gets SIGKILL and
     * the kernel then kills the whole PID namespace. Set only now because
     * any credential change above resets it. Were the server already gone,
     * the report we are about to send fails and we exit anyway. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        sandbox__child_die("PR_SET_PDEATHSIG");
}

static void send_ready(int listen_fd)
{
    sandbox__report_t rep;
    memset(&rep, 0, sizeof rep);
    rep.ok = 1;
    struct iovec iov = {&rep, sizeof rep};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &listen_fd, sizeof(int));
    if (sendmsg(FD_SYNC, &msg, MSG_NOSIGNAL) != (ssize_t)sizeof rep)
        sandbox__child_die("send the listener to the server");
}

/* Writes "mayfly: <what> <arg>: <error>" to the function's stderr pipe,
 * where the server's log collection picks it up. */
static void complain(int fd, const char *what, const char *arg, int err)
{
    const char *desc = strerrordesc_np(err);
    struct iovec v[] = {
        {(void *)"mayfly: ", 8}, {(void *)what, strlen(what)},
        {(void *)" ", 1},        {(void *)arg, strlen(arg)},
        {(void *)": ", 2},       {(void *)(desc ? desc : "error"), strlen(desc ? desc : "error")},
        {(void *)"\n", 1},
    };
    ssize_t r = writev(fd, v, sizeof v / sizeof *v);
    (void)r;
}

/* The function's process: inherits the namespaces, the cgroup, the
 * identity, the limits and the seccomp filter from init. */
static _Noreturn void exec_function(const sandbox__child_t *c)
{
    /* Past RLIMIT_FSIZE the kernel sends SIGXFSZ, whose default action
     * kills. Ignored, the write fails with EFBIG instead and the function
     * can report it. An ignored disposition is the one kind execve keeps. */
    signal(SIGXFSZ, SIG_IGN);
    /* The usual umask for the function; ours was 0 so modes came out
     * exactly as written. */
    umask(022);
    /* stdin is /dev/null already; stdout and stderr become the pipes the
     * server reads. dup2 leaves the copies without FD_CLOEXEC, so they
     * survive the exec while 3-5 close. */
    if (dup2(FD_OUT, 1) < 0 || dup2(FD_ERR, 2) < 0)
        _exit(127);
    /* Lambda starts a runtime in its task root. */
    if (chdir("/var/task") < 0) {
        complain(2, "chdir", "/var/task", errno);
        _exit(127);
    }
    execve(c->cfg->argv[0], c->cfg->argv, c->cfg->envp);
    complain(2, "exec", c->cfg->argv[0], errno);
    _exit(127);
}

/* Starts the function's process from an init that has already given up
 * its privileges: posix_spawn clones with CLONE_VM | CLONE_VFORK, so the
 * page tables of this copy of the server are not copied again (a fork
 * would), and runs no atfork handler. What the function inherits is set
 * here in init: SIGXFSZ ignored (past RLIMIT_FSIZE a write then fails with
 * EFBIG instead of killing; an ignored disposition is the one kind execve
 * keeps) and the usual umask. On failure the server gets status 127 and
 * the reason on the function's stderr, as from a failed exec. */
int sandbox__spawn_actions_build(posix_spawn_file_actions_t *fa)
{
    int r = posix_spawn_file_actions_init(fa);
    /* stdin is /dev/null already; stdout and stderr become the pipes the
     * server reads (a dup2 action leaves the copies inheritable). */
    if (r == 0)
        r = posix_spawn_file_actions_adddup2(fa, FD_OUT, 1);
    if (r == 0)
        r = posix_spawn_file_actions_adddup2(fa, FD_ERR, 2);
    /* Lambda starts a runtime in its task root. */
    if (r == 0)
        r = posix_spawn_file_actions_addchdir_np(fa, "/var/task");
    return -r;
}

static pid_t spawn_function(const sandbox__child_t *c)
{
    signal(SIGXFSZ, SIG_IGN);
    umask(022);
    /* The actions were built by the parent (sandbox__spawn_actions_build):
     * building them here would allocate. */
    pid_t fn = -1;
    int e = posix_spawn(&fn, c->cfg->argv[0], &c->sys->spawn_actions, NULL, c->cfg->argv,
                        c->cfg->envp);
    if (e != 0) {
        /* As if the function exited 127, as a shell reports it, plus the
         * exec's errno, so the server can tell "could not be started" (a
         * bootstrap that is not executable, a missing interpreter) from a
         * function that exited 127 itself. */
        sandbox__exit_t ex = {.wstatus = 127 << 8, .exec_errno = e};
        complain(FD_ERR, "exec", c->cfg->argv[0], e);
        ssize_t w = send(FD_SYNC, &ex, sizeof ex, MSG_NOSIGNAL);
        (void)w;
        _exit(0);
    }
    /* Only the function may hold the output pipes' write ends, so that
     * the server sees EOF when the function and its children are gone. */
    close(FD_OUT);
    close(FD_ERR);
    return fn;
}

/* PID 1's job: reap everything (orphans of the function are reparented
 * to us), and when the function's own process exits, hand its status to
 * the server and exit; the kernel then SIGKILLs whatever is left in the
 * namespace. Signals sent from inside the namespace to an init without
 * handlers are dropped by the kernel, so the function cannot kill us. */
static _Noreturn void init_loop(pid_t fn)
{
    for (;;) {
        int st;
        pid_t r = waitpid(-1, &st, 0);
        if (r == fn) {
            sandbox__exit_t ex = {.wstatus = st, .exec_errno = 0};
            ssize_t n = send(FD_SYNC, &ex, sizeof ex, MSG_NOSIGNAL);
            (void)n;
            _exit(0);
        }
        if (r < 0 && errno != EINTR)
            _exit(1);
    }
}

static void set_limits(const sandbox__child_t *c)
{
    /* Limits the cgroup does not cover. Processes are bounded by the pids
     * controller, memory by the memory controller. */
    set_limit(RLIMIT_NOFILE, 1024, "RLIMIT_NOFILE");
    set_limit(RLIMIT_CORE, 0, "RLIMIT_CORE"); /* no core files filling /tmp */
    /* No file can outgrow /tmp (or the largest volume, which fsize then
     * is) anyway; the limit turns a runaway write into a clean EFBIG
     * (SIGXFSZ is ignored, see exec_function). */
    set_limit(RLIMIT_FSIZE, c->fsize, "RLIMIT_FSIZE");
}

static void install_seccomp(const sandbox__child_t *c)
{
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &c->sys->seccomp, 0, 0) < 0)
        sandbox__child_die("install the seccomp filter");
}

/* The contiguous bytes of a NUL-separated string list decoded in place
 * (sandbox__spec_decode keeps the strings where they arrived). */
static void strv_span(char *const *v, const char **start, size_t *len)
{
    static const char empty[1];
    if (!v[0]) {
        *start = empty;
        *len = 1;
        return;
    }
    size_t n = 0;
    while (v[n + 1])
        n++;
    *start = v[0];
    *len = (size_t)(v[n] + strlen(v[n]) + 1 - v[0]);
}

/* A pooled sandbox's init. Everything but the function is done ahead:
 * the root is finished and pivoted (with /var/task an empty mount point),
 * and a zygote's runtime starts (unprivileged, filtered) and initialises,
 * while the sandbox waits in the pool. When the function comes, init
 * attaches its code at /var/task, sizes /tmp, gives up its own privileges,
 * and only then starts the function (a generic sandbox) or hands the
 * zygote's runtime the function's environment: no user code ever runs
 * beside a privileged init. */
/* Waits for the parent's one-byte go on the sync socket; EOF means it gave
 * up on us. */
static void wait_for_parent(void)
{
    char go;
    ssize_t n;
    do
        n = recv(FD_SYNC, &go, 1, 0);
    while (n < 0 && errno == EINTR);
    if (n != 1)
        _exit(127);
}

/* With c->hold, after the ready report: the parent sets up what the
 * function needs from outside (its network) first. */
static void wait_for_go(const sandbox__child_t *c)
{
    if (c->hold)
        wait_for_parent();
}

static _Noreturn void prepared_main(sandbox__child_t *c, int listen_fd)
{
    const sandbox_config_t *cfg = c->cfg;
    /* A fork of the server: hide its command line before anything runs
     * beside us (a zygote's runtime reads /proc like any process). */
    proctitle_set("mayfly-init");
    sandbox__child_mounts_finish(c);
    if (sethostname(cfg->hostname, strlen(cfg->hostname)) < 0)
        sandbox__child_die("sethostname");
    set_limits(c);

    int zs[2] = { -1, -1 };
    pid_t fn = -1;
    if (c->zygote) {
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, zs) < 0)
            sandbox__child_die("socketpair for the zygote");
        fn = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
        if (fn == 0) {
            /* The runtime's end becomes SANDBOX__ZYGOTE_FD; dup2 clears
             * FD_CLOEXEC so it survives the exec (the sync socket it
             * replaces there is init's, not the runtime's). */
            if (dup2(zs[1], SANDBOX__ZYGOTE_FD) < 0)
                _exit(127);
            drop_privileges(c);
            install_seccomp(c);
            exec_function(c);
        }
        if (fn < 0)
            sandbox__child_die("fork the zygote's runtime");
        close(zs[1]);
        close(FD_OUT);
        close(FD_ERR);
        /* The runtime says it has initialised with one byte. */
        char b;
        ssize_t n;
        do
            n = recv(zs[0], &b, 1, 0);
        while (n < 0 && errno == EINTR);
        if (n != 1) {
            errno = n < 0 ? errno : EPIPE;
            sandbox__child_die("start the zygote's runtime");
        }
    }
    char ready = SANDBOX__PREPARED;
    if (send(FD_SYNC, &ready, 1, MSG_NOSIGNAL) != 1)
        _exit(127);

    /* The function: its paths, limits, command and environment, and its
     * code as a detached mount. */
    static char spec[SANDBOX__SPEC_MAX];
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * (1 + SANDBOX_VOLUMES_MAX))];
    } ctl;
    struct iovec iov = {spec, sizeof spec};
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    ssize_t n;
    do
        n = recvmsg(FD_SYNC, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        _exit(127); /* the server let the pooled sandbox go */
    /* The code's mount first, then the volumes'. */
    int fds[1 + SANDBOX_VOLUMES_MAX];
    size_t nfds = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS && nfds == 0 &&
            cm->cmsg_len >= CMSG_LEN(sizeof(int))) {
            nfds = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            if (nfds > 1 + SANDBOX_VOLUMES_MAX)
                nfds = 1 + SANDBOX_VOLUMES_MAX;
            memcpy(fds, CMSG_DATA(cm), nfds * sizeof(int));
        }
    if (sandbox__spec_decode(spec, (size_t)n, c) < 0 || nfds != 1 + c->n_volumes ||
        (msg.msg_flags & MSG_CTRUNC)) {
        errno = EINVAL;
        sandbox__child_die("decode the specialisation");
    }
    int code = fds[0];
    for (unsigned i = 0; i < c->n_volumes; i++)
        c->volume_fds[i] = fds[1 + i];
    if (move_mount(code, "", AT_FDCWD, "/var/task", MOVE_MOUNT_F_EMPTY_PATH) < 0)
        sandbox__child_die("attach /var/task");
    close(code);
    if (mount(NULL, "/tmp", NULL, MS_REMOUNT | MS_NOSUID | MS_NODEV, c->tmp_opts) < 0)
        sandbox__child_die("resize /tmp");
    sandbox__child_mount_volumes(c);
    /* A function init starts gets the file-size limit of its own /tmp, or
     * of its largest volume (a limit can always be lowered); a zygote's
     * runtime keeps the pool's, none (pool_prepare). */
    if (!c->zygote)
        set_limit(RLIMIT_FSIZE, c->fsize, "RLIMIT_FSIZE");

    drop_privileges(c);
    install_seccomp(c);
    send_ready(listen_fd);
    close(listen_fd);
    wait_for_go(c);

    if (c->zygote) {
        const char *env;
        size_t env_len;
        strv_span(c->cfg->envp, &env, &env_len);
        if (send(zs[0], env, env_len, MSG_NOSIGNAL) != (ssize_t)env_len)
            complain(FD_SYNC, "hand the environment to", "the runtime", errno);
        close(zs[0]);
    } else {
        fn = spawn_function(c);
    }
    init_loop(fn);
}

_Noreturn void sandbox__child_main(sandbox__child_t *c)
{
    const sandbox_config_t *cfg = c->cfg;
    report_fd = c->sync_fd;

    /* We are a copy of the server, with its signal handlers installed and
     * every signal blocked (the parent blocked them around clone, so that
     * none of its handlers can run here, writing to descriptors that will
     * soon mean something else). Restore the defaults, then unblock. */
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        sigaction(sig, &sa, NULL); /* glibc refuses its internal ones: fine */
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    /* Modes below come out exactly as written. */
    umask(0);

    /* Step 1: shed the server's descriptors. Done before waiting for the
     * parent so it overlaps with the parent's cgroup work; it allocates
     * nothing the cgroup would have to account. */
    keep_only_our_fds(c);

    /* A session of our own: a Ctrl-C or SIGHUP meant for the server's
     * terminal or process group must not reach the sandbox (the server
     * shuts down gracefully and decides when sandboxes die). */
    if (setsid() < 0)
        sandbox__child_die("setsid");

    /* Step 2: wait until the parent has put us in the cgroup (and, in a
     * user namespace, written our id maps), so that everything from here
     * on is accounted and limited. EOF means the parent gave up on us. */
    wait_for_parent();
    /* Now that we are in it, make our cgroup the root of a cgroup
     * namespace: /proc/self/cgroup then reads "/" instead of revealing the
     * host's hierarchy, the server's pid and the instance id. */
    if (unshare(CLONE_NEWCGROUP) < 0)
        sandbox__child_die("unshare the cgroup namespace");

    /* Step 3: the network: lo up, and the Runtime API listener. */
    int listen_fd = sandbox__child_listen(c->pooled ? SANDBOX_API_PORT : cfg->api_port);

    /* Step 4: the file system. A pooled sandbox goes on in prepared_main:
     * it finishes everything but the function and waits for it, so that
     * the clone, the cgroup move, the network and the mounts are all off
     * the cold-start path. */
    if (c->pooled) {
        sandbox__child_mounts_base(c);
        prepared_main(c, listen_fd);
    }
    sandbox__child_mounts(c);

    /* Step 5: our own host name (new UTS namespace). */
    if (sethostname(cfg->hostname, strlen(cfg->hostname)) < 0)
        sandbox__child_die("sethostname");

    /* Step 6: limits the cgroup does not cover. */
    set_limits(c);

    /* Step 7: identity, capabilities, no_new_privs, parent-death signal. */
    drop_privileges(c);

    /* Step 8: the seccomp filter, for init and (inherited across fork)
     * the function. Last, because the steps above need mount and friends. */
    install_seccomp(c);

    /* This process is a fork of the server: before the function exists,
     * replace the server's command line it would see as /proc/1/cmdline. */
    proctitle_set("mayfly-init");

    /* Step 9: tell the server we are ready and hand it the listener. */
    send_ready(listen_fd);
    close(listen_fd);
    wait_for_go(c);

    /* Step 10: the function's process. */
    pid_t fn = spawn_function(c);
    init_loop(fn);
}
