/* Sandboxes, for real: every test spawns actual sandboxes (namespaces,
 * cgroups, seccomp) running /bin/sh scripts, python3 or node, and checks
 * from the outside what the function could and could not do. Needs root;
 * skipped otherwise. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/fs.h"
#include "sandbox/internal.h"
#include "sandbox/sandbox.h"

extern char **environ;

static sandbox_system_t *sys;
static char code_dir[] = "/tmp/mayfly-test-sandbox-XXXXXX";
/* The stand-in for a volume (volume_source). */
static char volume_dir[] = "/tmp/mayfly-test-volume-XXXXXX";
static bool volume_mounted;
static int seq;

#define SKIP_UNLESS_ROOT()                                                                         \
    do {                                                                                           \
        if (!sys) {                                                                                \
            print_message("sandbox tests need root: skipped\n");                                   \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

static int group_setup(void **state)
{
    if (geteuid() != 0)
        return 0;
    /* A mount namespace of our own (before any thread exists, which
     * unshare needs), so that the volumes the tests mount never show on
     * the host, whatever happens to this process. */
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0) {
        print_error("a mount namespace for the tests: %s\n", strerror(errno));
        return -1;
    }
    mf_error_t err = MF_ERROR_INIT;
    if (sandbox_system_init(&sys, &err) < 0) {
        print_error("sandbox_system_init: %s\n", err.msg);
        return -1;
    }
    if (!mkdtemp(code_dir))
        return -1;
    /* World-writable, so that a failing write inside can only be the
     * read-only mount, not the permissions. */
    chmod(code_dir, 0777);
    char path[256];
    snprintf(path, sizeof path, "%s/hello.txt", code_dir);
    const char hello[] = "hello from the task\n";
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || fs_write_all(fd, hello, sizeof hello - 1) < 0)
        return -1;
    close(fd);
    return 0;
}

static int group_teardown(void **state)
{
    if (!sys)
        return 0;
    sandbox_system_free(sys);
    fs_rm_rf(code_dir, NULL);
    if (volume_mounted && umount2(volume_dir, MNT_DETACH) == 0)
        rmdir(volume_dir);
    return 0;
}

/* ---- helpers ---------------------------------------------------------- */

typedef struct run {
    int status;
    buf_t out, err;
    sandbox_stats_t stats;
    bool echo;      /* answer "ping" on the Runtime API listener with "pong" */
    buf_t received; /* what came in on the listener */
    uid_t uid;      /* the sandbox's */
    int exec_errno;
} run_t;

#define RUN_INIT ((run_t){0, BUF_INIT, BUF_INIT, {0}, false, BUF_INIT, 0, 0})

static void run_release(run_t *r)
{
    buf_release(&r->out);
    buf_release(&r->err);
    buf_release(&r->received);
}

static char *sh_argv[4] = {"/bin/sh", "-c", NULL, NULL};
static char *test_envp[] = {"PATH=/usr/bin:/bin", "FOO=bar", "LANG=C.UTF-8", NULL};

static void base_config(sandbox_config_t *cfg, char *const *argv)
{
    static char id[64];
    snprintf(id, sizeof id, "test-%d-%d", (int)getpid(), seq++);
    *cfg = (sandbox_config_t){
        .id = id,
        .code_dir = code_dir,
        .runtime_dir = NULL,
        .argv = argv,
        .envp = test_envp,
        .hostname = "fn-test",
        .memory_mb = 256,
        .tmp_mb = 16,
        .max_pids = 64,
        .api_port = 9001,
    };
}

static void drain(int *fd, buf_t *into)
{
    char tmp[4096];
    for (;;) {
        ssize_t n = read(*fd, tmp, sizeof tmp);
        if (n > 0) {
            buf_add(into, tmp, (size_t)n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        *fd = -1; /* EOF: stop polling it (the sandbox still owns it) */
        return;
    }
}

/* Spawns cfg, collects stdout and stderr until EOF, serves the listener
 * when asked, waits for the exit, reads the stats, reaps and destroys. */
static void run_sandbox(const sandbox_config_t *cfg, run_t *r)
{
    mf_error_t err = MF_ERROR_INIT;
    sandbox_t sb;
    int rc = sandbox_spawn(sys, cfg, &sb, &err);
    if (rc < 0)
        fail_msg("sandbox_spawn: %s", err.msg);

    int out = sb.stdout_fd, errfd = sb.stderr_fd, conn = -1;
    uint64_t deadline = clock_mono_ns() + 30ull * 1000000000ull;
    while (out >= 0 || errfd >= 0) {
        struct pollfd p[4] = {{out, POLLIN, 0},
                              {errfd, POLLIN, 0},
                              {r->echo ? sb.api_listen_fd : -1, POLLIN, 0},
                              {conn, POLLIN, 0}};
        assert_true(clock_mono_ns() < deadline);
        if (poll(p, 4, 1000) <= 0)
            continue;
        if (p[0].revents)
            drain(&out, &r->out);
        if (p[1].revents)
            drain(&errfd, &r->err);
        if (p[2].revents && conn < 0)
            conn = accept4(sb.api_listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (conn >= 0 && p[3].revents) {
            char tmp[64];
            ssize_t n = read(conn, tmp, sizeof tmp);
            if (n > 0) {
                buf_add(&r->received, tmp, (size_t)n);
                if (strstr(r->received.data, "ping"))
                    assert_int_equal(write(conn, "pong", 4), 4);
            } else {
                close(conn);
                conn = -1;
            }
        }
    }
    if (conn >= 0)
        close(conn);
    struct pollfd pp = {sb.pidfd, POLLIN, 0};
    assert_int_equal(poll(&pp, 1, 30000), 1);
    assert_int_equal(sandbox_stats(&sb, SANDBOX_STAT_ALL, &r->stats), 0);
    assert_int_equal(sandbox_reap(&sb, &r->status), 0);
    r->uid = sb.uid;
    r->exec_errno = sb.exec_errno;
    sandbox_destroy(&sb);
}

static void run_script(const char *script, run_t *r)
{
    sandbox_config_t cfg;
    sh_argv[2] = (char *)script;
    base_config(&cfg, sh_argv);
    run_sandbox(&cfg, r);
}

static bool contains(const buf_t *b, const char *s)
{
    return strstr(b->data, s) != NULL;
}

/* Writes value to dir/name. */
static int write_file_at(const char *dir, const char *name, const char *value)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = fs_write_all(fd, value, strlen(value));
    close(fd);
    return r;
}

/* Reads dir/name (a small cgroup file) into out, without the newline. */
static bool read_file_at(const char *dir, const char *name, char *out, size_t size)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    buf_t b = BUF_INIT;
    bool ok = fs_read_file(path, &b, 4096, NULL) == 0;
    snprintf(out, size, "%s", ok ? b.data : "");
    out[strcspn(out, "\n")] = '\0';
    buf_release(&b);
    return ok;
}

/* Whether word is one of the comma-separated list's. */
static bool listed(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *w = list; w; w = strchr(w, ','), w = w ? w + 1 : NULL)
        if (!strncmp(w, word, n) && (w[n] == ',' || w[n] == '\0'))
            return true;
    return false;
}

/* The directory of pid's cgroup in the hierarchy holding controller ctl
 * (v1; on v2 the one cgroup), from /proc/<pid>/cgroup as this process
 * sees it and where that hierarchy is mounted. */
static bool ctl_dir(pid_t pid, const char *ctl, char *out, size_t size)
{
    char path[64];
    buf_t cg = BUF_INIT, mi = BUF_INIT;
    snprintf(path, sizeof path, "/proc/%d/cgroup", (int)pid);
    bool v2 = sandbox_system_cgroup_version(sys) == SANDBOX_CGROUP_V2;
    const char *rel = NULL;
    char *save = NULL;
    if (fs_read_file(path, &cg, 1 << 20, NULL) == 0) {
        for (char *line = strtok_r(cg.data, "\n", &save); line && !rel;
             line = strtok_r(NULL, "\n", &save)) {
            char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
            if (!c2)
                continue;
            *c2 = '\0';
            if (v2 ? c1[1] == '\0' : listed(c1 + 1, ctl))
                rel = c2 + 1;
        }
    }
    bool found = false;
    if (rel && fs_read_file("/proc/self/mountinfo", &mi, 16 << 20, NULL) == 0) {
        for (char *m = strtok_r(mi.data, "\n", &save); m && !found;
             m = strtok_r(NULL, "\n", &save)) {
            char mnt[256], fstype[32], opts[256];
            const char *dash = strstr(m, " - ");
            if (!dash || sscanf(dash, " - %31s %*s %255s", fstype, opts) != 2 ||
                sscanf(m, "%*s %*s %*s %*s %255s", mnt) != 1)
                continue;
            if (v2 ? !strcmp(fstype, "cgroup2") : !strcmp(fstype, "cgroup") && listed(opts, ctl)) {
                snprintf(out, size, "%s%s", mnt, rel);
                found = true;
            }
        }
    }
    buf_release(&cg);
    buf_release(&mi);
    return found;
}

#define assert_output(r, s)                                                                        \
    do {                                                                                           \
        if (!contains(&(r)->out, s))                                                               \
            fail_msg("expected `%s` in stdout:\n%s\nstderr:\n%s", s, (r)->out.data,                \
                     (r)->err.data);                                                               \
    } while (0)

static bool exited_ok(const run_t *r)
{
    return WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0;
}

/* ---- tests ------------------------------------------------------------ */

static void test_identity_and_namespaces(void **state)
{
    SKIP_UNLESS_ROOT();
    run_t r = RUN_INIT;
    run_script("hostname; echo pid=$$; echo cwd=$(pwd); echo foo=$FOO;"
               "set -- /proc/[0-9]*; echo procs=$#;"
               "grep -E '^(Uid|Gid|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):'"
               " /proc/self/status; id;"
               "echo cgroup_mentions=$(grep -c mayfly /proc/self/cgroup)",
               &r);
    assert_true(exited_ok(&r));
    assert_output(&r, "fn-test\n");
    /* PID 1 is the init, the shell the function's process. */
    assert_output(&r, "pid=2\n");
    assert_output(&r, "cwd=/var/task\n");
    assert_output(&r, "foo=bar\n");
    /* Only the sandbox's own processes: init, sh, maybe the grep. */
    const char *p = strstr(r.out.data, "procs=");
    assert_non_null(p);
    assert_true(atoi(p + 6) <= 3);
    /* Its own uid and gid from the range, named in its /etc/passwd. */
    assert_true(r.uid >= SANDBOX_UID_FIRST_DEFAULT &&
                r.uid < SANDBOX_UID_FIRST_DEFAULT + SANDBOX_UID_COUNT_DEFAULT);
    char want[128];
    snprintf(want, sizeof want, "Uid:\t%u\t%u\t%u\t%u", r.uid, r.uid, r.uid, r.uid);
    assert_output(&r, want);
    snprintf(want, sizeof want, "Gid:\t%u\t%u\t%u\t%u", r.uid, r.uid, r.uid, r.uid);
    assert_output(&r, want);
    assert_output(&r, "CapInh:\t0000000000000000");
    assert_output(&r, "CapPrm:\t0000000000000000");
    assert_output(&r, "CapEff:\t0000000000000000");
    assert_output(&r, "CapBnd:\t0000000000000000");
    assert_output(&r, "CapAmb:\t0000000000000000");
    assert_output(&r, "NoNewPrivs:\t1");
    assert_output(&r, "Seccomp:\t2");
    snprintf(want, sizeof want, "uid=%u(sbx_user) gid=%u(sbx_user)", r.uid, r.uid);
    assert_output(&r, want);
    /* Its own cgroup namespace: no host cgroup paths. */
    assert_output(&r, "cgroup_mentions=0\n");
    run_release(&r);
}

static void test_filesystem_is_read_only_but_tmp(void **state)
{
    SKIP_UNLESS_ROOT();
    run_t r = RUN_INIT;
    run_script("cat /var/task/hello.txt;"
               "touch /var/task/new 2>&1 && echo task-writable;"
               "touch /etc/new 2>&1 && echo etc-writable;"
               "touch /new 2>&1 && echo root-writable;"
               "echo data > /tmp/file && cat /tmp/file && echo tmp-ok;"
               "ls /home /root /run /sys 2>&1 | head -4;"
               "grep -E ' / | /etc/ssl | /var/task | /usr ' /proc/self/mountinfo;"
               "stat -c '%a %U' /tmp",
               &r);
    assert_true(exited_ok(&r));
    assert_output(&r, "hello from the task\n");
    /* The code dir is 0777 on the host: only the mount can refuse. */
    assert_output(&r, "/var/task/new': Read-only file system");
    assert_false(contains(&r.out, "task-writable"));
    assert_false(contains(&r.out, "etc-writable"));
    assert_false(contains(&r.out, "root-writable"));
    assert_output(&r, "data\ntmp-ok\n");
    assert_output(&r, "'/home': No such file or directory");
    assert_output(&r, "'/sys': No such file or directory");
    /* Mount options: the root, /usr, /etc/ssl and /var/task read-only. */
    const char *mounts[] = {" / / ro,", " /usr ro,", " /etc/ssl ro,", " /var/task ro,"};
    for (size_t i = 0; i < 4; i++)
        assert_output(&r, mounts[i]);
    assert_output(&r, "1777 root");
    run_release(&r);
}

static void test_tmp_is_size_limited(void **state)
{
    SKIP_UNLESS_ROOT();
    run_t r = RUN_INIT;
    sandbox_config_t cfg;
    sh_argv[2] = "dd if=/dev/zero of=/tmp/big bs=1M count=40 2>&1; echo dd=$?;"
                 "rm /tmp/big; echo small > /tmp/again && echo survived";
    base_config(&cfg, sh_argv);
    cfg.tmp_mb = 8;
    run_sandbox(&cfg, &r);
    assert_true(exited_ok(&r));
    assert_false(contains(&r.out, "dd=0\n"));
    /* tmpfs full (ENOSPC) or RLIMIT_FSIZE (EFBIG, with SIGXFSZ ignored):
     * either way the write fails and the shell lives on. */
    assert_true(contains(&r.out, "No space left on device") || contains(&r.out, "File too large"));
    assert_output(&r, "survived\n");
    run_release(&r);
}

static void test_privileged_operations_fail(void **state)
{
    SKIP_UNLESS_ROOT();
    run_t r = RUN_INIT;
    run_script("unshare -r true 2>&1; echo unshare=$?;"
               "unshare -n true 2>&1; echo unshare_net=$?;"
               "mount -t tmpfs none /tmp 2>&1; echo mount=$?;"
               "/usr/bin/python3 -c 'import os\n"
               "try:\n    os.setuid(0)\nexcept OSError as e:\n    print(\"setuid\", e.errno)'",
               &r);
    assert_true(exited_ok(&r));
    assert_false(contains(&r.out, "unshare=0"));
    assert_false(contains(&r.out, "unshare_net=0"));
    assert_false(contains(&r.out, "mount=0"));
    assert_output(&r, "Operation not permitted");
    assert_output(&r, "setuid 1\n");
    run_release(&r);
}

static void test_runtime_api_listener_reaches_the_server(void **state)
{
    SKIP_UNLESS_ROOT();
    run_t r = RUN_INIT;
    r.echo = true;
    run_script("/usr/bin/python3 -c 'import socket\n"
               "s = socket.create_connection((\"127.0.0.1\", 9001), 5)\n"
               "s.sendall(b\"ping\")\n"
               "print(s.recv(4).decode())'",
               &r);
    assert_true(exited_ok(&r));
    assert_string_equal(r.received.data, "ping");
    assert_output(&r, "pong\n");
    run_release(&r);
}

static void test_no_route_to_host_or_outside(void **state)
{
    SKIP_UNLESS_ROOT();
    /* A port on the host's loopback: the sandbox's 127.0.0.1 is not it. */
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(l, 8), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &alen), 0);

    char script[1024];
    snprintf(script, sizeof script,
             "/usr/bin/python3 -c 'import socket\n"
             "for host in (\"127.0.0.1\", \"1.1.1.1\"):\n"
             "    try:\n"
             "        socket.create_connection((host, %d), 1)\n"
             "        print(host, \"connected\")\n"
             "    except OSError as e:\n"
             "        print(host, \"failed\", e.errno)'",
             ntohs(a.sin_port));
    run_t r = RUN_INIT;
    run_script(script, &r);
    assert_true(exited_ok(&r));
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1 failed %d", ECONNREFUSED);
    assert_output(&r, want);
    snprintf(want, sizeof want, "1.1.1.1 failed %d", ENETUNREACH);
    assert_output(&r, want);
    struct pollfd p = {l, POLLIN, 0};
    assert_int_equal(poll(&p, 1, 0), 0); /* nobody knocked */
    close(l);
    run_release(&r);
}

static void test_memory_limit_kills_and_counts(void **state)
{
    SKIP_UNLESS_ROOT();
    static char *argv[] = {"/usr/bin/python3", "-c",
                           "b = b'x' * (200 << 20)\nprint('survived', len(b))", NULL};
    sandbox_config_t cfg;
    base_config(&cfg, argv);
    cfg.memory_mb = 128;
    run_t r = RUN_INIT;
    run_sandbox(&cfg, &r);
    assert_false(contains(&r.out, "survived"));
    assert_true(WIFSIGNALED(r.status));
    assert_int_equal(WTERMSIG(r.status), SIGKILL);
    assert_true(r.stats.oom_kills >= 1);
    assert_true(r.stats.memory_peak_bytes > 64ull << 20);
    assert_true(r.stats.memory_peak_bytes <= 129ull << 20);
    print_message("memory bomb: killed, peak %.1f MB, oom_kills %llu\n",
                  r.stats.memory_peak_bytes / 1048576.0, (unsigned long long)r.stats.oom_kills);
    run_release(&r);
}

static void test_pids_limit_holds(void **state)
{
    SKIP_UNLESS_ROOT();
    /* dash gives up on a failed fork, so python forks until refused. */
    static char *argv[] = {"/usr/bin/python3", "-c",
                           "import os, time\n"
                           "for i in range(60):\n"
                           "    try:\n"
                           "        if os.fork() == 0:\n"
                           "            time.sleep(30)\n"
                           "            os._exit(0)\n"
                           "    except OSError as e:\n"
                           "        print('fork failed', e.errno)\n"
                           "        break\n"
                           "print('procs', sum(d.isdigit() for d in os.listdir('/proc')))",
                           NULL};
    sandbox_config_t cfg;
    base_config(&cfg, argv);
    cfg.max_pids = 16;
    run_t r = RUN_INIT;
    uint64_t t0 = clock_mono_ns();
    run_sandbox(&cfg, &r);
    double secs = (double)(clock_mono_ns() - t0) / 1e9;
    char want[32];
    snprintf(want, sizeof want, "fork failed %d\n", EAGAIN);
    assert_output(&r, want);
    const char *p = strstr(r.out.data, "procs ");
    assert_non_null(p);
    int procs = atoi(p + 6);
    assert_true(procs <= 16);
    assert_true(procs >= 12); /* it did fork up to about the limit */
    /* The sleepers died with python (init's exit kills the namespace)
     * rather than running their 30 s. */
    assert_true(secs < 10);
    /* And the test process itself can still start processes. */
    pid_t child;
    char *tv[] = {"/bin/true", NULL};
    assert_int_equal(posix_spawn(&child, "/bin/true", NULL, NULL, tv, environ), 0);
    int st;
    assert_int_equal(waitpid(child, &st, 0), child);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    run_release(&r);
}

static void test_failing_step_names_it_and_leaves_nothing(void **state)
{
    SKIP_UNLESS_ROOT();
    sandbox_config_t cfg;
    sh_argv[2] = "true";
    base_config(&cfg, sh_argv);
    cfg.code_dir = "/nonexistent/mayfly-code";
    mf_error_t err = MF_ERROR_INIT;
    sandbox_t sb;
    assert_true(sandbox_spawn(sys, &cfg, &sb, &err) < 0);
    assert_int_equal(err.code, ENOENT);
    assert_string_equal(err.msg, "sandbox: bind /var/task: No such file or directory");
    assert_int_equal(sb.pidfd, -1);
    assert_null(sb.cgroup_path);
    sandbox_destroy(&sb); /* harmless on a failed start */
    /* No child left to reap, and the cgroup is gone: the same id works. */
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
    cfg.code_dir = code_dir;
    assert_int_equal(sandbox_spawn(sys, &cfg, &sb, &err), 0);
    sandbox_destroy(&sb);

    /* A bad configuration never gets as far as clone. */
    static char *rel[] = {"bin/sh", NULL};
    base_config(&cfg, rel);
    assert_int_equal(sandbox_spawn(sys, &cfg, &sb, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "argv[0]"));
    base_config(&cfg, sh_argv);
    cfg.id = "../escape";
    assert_int_equal(sandbox_spawn(sys, &cfg, &sb, &err), -EINVAL);
}

static void test_exec_failure_is_reported_on_stderr(void **state)
{
    SKIP_UNLESS_ROOT();
    static char *argv[] = {"/var/task/no-such-bootstrap", NULL};
    sandbox_config_t cfg;
    base_config(&cfg, argv);
    run_t r = RUN_INIT;
    run_sandbox(&cfg, &r);
    assert_true(WIFEXITED(r.status));
    assert_int_equal(WEXITSTATUS(r.status), 127);
    assert_non_null(
        strstr(r.err.data, "mayfly: exec /var/task/no-such-bootstrap: No such file or directory"));
    assert_int_equal(r.exec_errno, ENOENT);
    run_release(&r);
}

/* A function that cannot be started at all is told apart from one that
 * exits 127 itself: sandbox_reap sets exec_errno, the errno of the exec. */
static void test_exec_errno_tells_why_the_function_did_not_start(void **state)
{
    SKIP_UNLESS_ROOT();
    static const struct {
        const char *name, *content;
        mode_t mode;
        int want;
    } cases[] = {
        {"not-executable", "#!/bin/sh\necho hi\n", 0644, EACCES},
        {"no-interpreter", "#!/usr/bin/no-such-interpreter\n", 0755, ENOENT},
        {"not-a-program", "\177ELF but not really", 0755, ENOEXEC},
        {"exits-127", "#!/bin/sh\nexit 127\n", 0755, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char host[512], inside[128];
        snprintf(host, sizeof host, "%s/%s", code_dir, cases[i].name);
        int fd = open(host, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, cases[i].mode);
        assert_true(fd >= 0);
        assert_int_equal(fs_write_all(fd, cases[i].content, strlen(cases[i].content)), 0);
        close(fd);
        chmod(host, cases[i].mode);
        snprintf(inside, sizeof inside, "/var/task/%s", cases[i].name);
        char *argv[] = {inside, NULL};
        sandbox_config_t cfg;
        base_config(&cfg, argv);
        run_t r = RUN_INIT;
        run_sandbox(&cfg, &r);
        assert_true(WIFEXITED(r.status));
        assert_int_equal(WEXITSTATUS(r.status), 127);
        if (r.exec_errno != cases[i].want)
            fail_msg("%s: exec_errno %d, want %d", cases[i].name, r.exec_errno, cases[i].want);
        run_release(&r);
        unlink(host);
    }
}

static void test_exit_status_is_the_functions(void **state)
{
    SKIP_UNLESS_ROOT();
    run_t r = RUN_INIT;
    run_script("echo out; echo err >&2; exit 7", &r);
    assert_true(WIFEXITED(r.status));
    assert_int_equal(WEXITSTATUS(r.status), 7);
    assert_string_equal(r.out.data, "out\n");
    assert_string_equal(r.err.data, "err\n");
    run_release(&r);

    run_t k = RUN_INIT;
    run_script("kill -SEGV $$", &k);
    assert_true(WIFSIGNALED(k.status));
    assert_int_equal(WTERMSIG(k.status), SIGSEGV);
    run_release(&k);
}

static void test_server_descriptors_do_not_leak(void **state)
{
    SKIP_UNLESS_ROOT();
    /* A descriptor without O_CLOEXEC, as a careless library might leave. */
    int leaky = dup2(STDIN_FILENO, 50);
    assert_int_equal(leaky, 50);
    run_t r = RUN_INIT;
    /* The shell's descriptors: 0, 1, 2 and 3, the directory the glob
     * reads; nothing of ours. */
    run_script("cd /proc/self/fd && echo fds: *; ls -l /proc/1/fd 2>&1 | head -1", &r);
    close(leaky);
    assert_true(exited_ok(&r));
    assert_output(&r, "fds: 0 1 2 3\n");
    /* init's descriptors are root's: out of the function's reach. */
    assert_output(&r, "Permission denied");
    run_release(&r);
}

static void test_destroy_kills_everything_and_removes_the_cgroup(void **state)
{
    SKIP_UNLESS_ROOT();
    sandbox_config_t cfg;
    sh_argv[2] = "sleep 100 & sleep 100 & echo started; wait";
    base_config(&cfg, sh_argv);
    mf_error_t err = MF_ERROR_INIT;
    sandbox_t sb;
    assert_int_equal(sandbox_spawn(sys, &cfg, &sb, &err), 0);
    /* Wait until the sleeps run, then list the sandbox's processes. */
    struct pollfd p = {sb.stdout_fd, POLLIN, 0};
    assert_int_equal(poll(&p, 1, 10000), 1);
    char path[512];
    snprintf(path, sizeof path, "%s/cgroup.procs", sb.cgroup_path);
    buf_t procs = BUF_INIT;
    assert_int_equal(fs_read_file(path, &procs, 65536, NULL), 0);
    pid_t pids[16];
    int n = 0;
    for (char *s = procs.data; *s && n < 16; s = strchr(s, '\n') + 1)
        pids[n++] = (pid_t)atoi(s);
    assert_true(n >= 4); /* init, sh, two sleeps */
    buf_release(&procs);

    char *cg = strdup(sb.cgroup_path);
    pid_t init = sb.pid;
    int st;
    assert_int_equal(sandbox_reap(&sb, &st), -EAGAIN);
    sandbox_destroy(&sb);
    sandbox_destroy(&sb); /* idempotent */
    struct stat s;
    assert_int_equal(stat(cg, &s), -1);
    assert_int_equal(errno, ENOENT);
    free(cg);
    assert_int_equal(kill(init, 0), -1);
    for (int i = 0; i < n; i++)
        assert_int_equal(kill(pids[i], 0), -1);
}

static void test_kill_then_reap(void **state)
{
    SKIP_UNLESS_ROOT();
    sandbox_config_t cfg;
    sh_argv[2] = "sleep 100";
    base_config(&cfg, sh_argv);
    mf_error_t err = MF_ERROR_INIT;
    sandbox_t sb;
    assert_int_equal(sandbox_spawn(sys, &cfg, &sb, &err), 0);
    sandbox_kill(&sb);
    struct pollfd p = {sb.pidfd, POLLIN, 0};
    assert_int_equal(poll(&p, 1, 10000), 1);
    int st;
    assert_int_equal(sandbox_reap(&sb, &st), 0);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGKILL);
    assert_int_equal(sandbox_reap(&sb, &st), 0); /* stays reaped */
    sandbox_destroy(&sb);
}

static void test_language_runtimes_start(void **state)
{
    SKIP_UNLESS_ROOT();
    static char *py[] = {"/usr/bin/python3", "-c",
                         "import ssl, json, socket, os; print('py', os.getuid())", NULL};
    static char *node[] = {"/usr/bin/node", "-e", "console.log('node', process.getuid())", NULL};
    sandbox_config_t cfg;
    run_t r = RUN_INIT;
    base_config(&cfg, py);
    run_sandbox(&cfg, &r);
    assert_true(exited_ok(&r));
    char want[64];
    snprintf(want, sizeof want, "py %u\n", r.uid);
    assert_output(&r, want);
    run_release(&r);

    if (access("/usr/bin/node", X_OK) < 0) {
        print_message("no /usr/bin/node on this host: node check skipped\n");
        return;
    }
    run_t n = RUN_INIT;
    base_config(&cfg, node);
    run_sandbox(&cfg, &n);
    if (!exited_ok(&n))
        fail_msg("node: %s", n.err.data);
    snprintf(want, sizeof want, "node %u\n", n.uid);
    assert_output(&n, want);
    run_release(&n);
}

static void test_stats_count_cpu_and_memory(void **state)
{
    SKIP_UNLESS_ROOT();
    static char *argv[] = {"/usr/bin/python3", "-c", "b = b'x' * (40 << 20)\nsum(range(5_000_000))",
                           NULL};
    sandbox_config_t cfg;
    base_config(&cfg, argv);
    run_t r = RUN_INIT;
    uint64_t all_before, all_after;
    assert_int_equal(sandbox_system_cpu_ns(sys, &all_before), 0);
    run_sandbox(&cfg, &r);
    assert_true(exited_ok(&r));
    assert_true(r.stats.cpu_ns > 20ull * 1000000);
    /* The server's and every sandbox's CPU time holds this one's (to the
     * microsecond v2 counts in), gone as it is. */
    assert_int_equal(sandbox_system_cpu_ns(sys, &all_after), 0);
    assert_true(all_after - all_before + 1000 >= r.stats.cpu_ns);
    assert_true(r.stats.memory_peak_bytes > 40ull << 20);
    assert_int_equal(r.stats.oom_kills, 0);
    print_message("stats: cpu %.1f ms, peak %.1f MB\n", r.stats.cpu_ns / 1e6,
                  r.stats.memory_peak_bytes / 1048576.0);
    run_release(&r);
}

static void test_reset_peak(void **state)
{
    SKIP_UNLESS_ROOT();
    /* Allocate 40 MB, free it, then wait to be told to finish. */
    static char *argv[] = {"/usr/bin/python3", "-c",
                           "import sys\nb = b'x' * (40 << 20)\ndel b\nprint('freed', flush=True)\n"
                           "sys.stdin.read()",
                           NULL};
    sandbox_config_t cfg;
    base_config(&cfg, argv);
    mf_error_t err = MF_ERROR_INIT;
    sandbox_t sb;
    assert_int_equal(sandbox_spawn(sys, &cfg, &sb, &err), 0);
    struct pollfd p = {sb.stdout_fd, POLLIN, 0};
    assert_int_equal(poll(&p, 1, 10000), 1);
    sandbox_stats_t before, after;
    assert_int_equal(sandbox_stats(&sb, SANDBOX_STAT_ALL, &before), 0);
    sandbox_reset_peak(&sb);
    assert_int_equal(sandbox_stats(&sb, SANDBOX_STAT_ALL, &after), 0);
    print_message("peak before reset %.1f MB, after %.1f MB\n",
                  before.memory_peak_bytes / 1048576.0, after.memory_peak_bytes / 1048576.0);
    assert_true(before.memory_peak_bytes > 40ull << 20);
    assert_true(after.memory_peak_bytes <= before.memory_peak_bytes);
    sandbox_destroy(&sb);
}

/* A server that crashed leaves mayfly/server-<pid>-<start>/<id> behind,
 * maybe with processes in it: the next server's init kills and removes
 * them, and leaves a live server's cgroups alone. */
static void test_init_removes_what_a_dead_server_left(void **state)
{
    SKIP_UNLESS_ROOT();
    /* Learn where mayfly/ is from a sandbox: <mayfly>/<tag>/sandboxes/<id>
     * (in the memory hierarchy), and the freezer hierarchy's. */
    sandbox_config_t cfg;
    sh_argv[2] = "sleep 100";
    base_config(&cfg, sh_argv);
    mf_error_t err = MF_ERROR_INIT;
    sandbox_t sb;
    assert_int_equal(sandbox_spawn(sys, &cfg, &sb, &err), 0);
    char mayfly[512], freezer_mayfly[512];
    snprintf(mayfly, sizeof mayfly, "%s", sb.cgroup_path);
    bool freezer = ctl_dir(sb.pid, "freezer", freezer_mayfly, sizeof freezer_mayfly);
    sandbox_destroy(&sb);
    for (int i = 0; i < 3; i++) {
        *strrchr(mayfly, '/') = '\0';
        if (freezer)
            *strrchr(freezer_mayfly, '/') = '\0';
    }

    /* The dead server's sandbox, with a process in it. pid 1 with a start
     * time of 12345 is nobody alive. */
    char stale[600], procs[700], pid_text[32];
    snprintf(stale, sizeof stale, "%s/server-1-12345/i-1", mayfly);
    assert_int_equal(fs_mkdir_p(stale, 0755, NULL), 0);
    pid_t victim;
    char *sleep_argv[] = {"/bin/sleep", "100", NULL};
    assert_int_equal(posix_spawn(&victim, "/bin/sleep", NULL, NULL, sleep_argv, environ), 0);
    snprintf(procs, sizeof procs, "%s/cgroup.procs", stale);
    snprintf(pid_text, sizeof pid_text, "%d", (int)victim);
    int fd = open(procs, O_WRONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(fs_write_all(fd, pid_text, strlen(pid_text)), 0);
    close(fd);

    /* The same in today's layout, <tag>/sandboxes/<id>, with a process
     * that is frozen too (v1 does not kill a frozen process until thawed). */
    char stale2[600], frozen_dir[600];
    snprintf(stale2, sizeof stale2, "%s/server-1-12346/sandboxes/i-2", mayfly);
    assert_int_equal(fs_mkdir_p(stale2, 0755, NULL), 0);
    pid_t frozen;
    assert_int_equal(posix_spawn(&frozen, "/bin/sleep", NULL, NULL, sleep_argv, environ), 0);
    snprintf(pid_text, sizeof pid_text, "%d", (int)frozen);
    assert_int_equal(write_file_at(stale2, "cgroup.procs", pid_text), 0);
    if (freezer) {
        snprintf(frozen_dir, sizeof frozen_dir, "%s/server-1-12346/sandboxes/i-2", freezer_mayfly);
        assert_int_equal(fs_mkdir_p(frozen_dir, 0755, NULL), 0);
        assert_int_equal(write_file_at(frozen_dir, "cgroup.procs", pid_text), 0);
        assert_int_equal(write_file_at(frozen_dir, "freezer.state", "FROZEN"), 0);
    }

    /* A restart of the server. */
    sandbox_system_free(sys);
    sys = NULL;
    assert_int_equal(sandbox_system_init(&sys, &err), 0);
    int st;
    assert_int_equal(waitpid(victim, &st, 0), victim);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGKILL);
    assert_int_equal(waitpid(frozen, &st, 0), frozen);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGKILL);
    *strrchr(stale, '/') = '\0';
    struct stat sst;
    assert_int_equal(stat(stale, &sst), -1);
    assert_int_equal(errno, ENOENT);
    *strrchr(stale2, '/') = '\0';
    *strrchr(stale2, '/') = '\0';
    assert_int_equal(stat(stale2, &sst), -1);
    assert_int_equal(errno, ENOENT);
    if (freezer) {
        *strrchr(frozen_dir, '/') = '\0';
        *strrchr(frozen_dir, '/') = '\0';
        assert_int_equal(stat(frozen_dir, &sst), -1);
        assert_int_equal(errno, ENOENT);
    }
}

/* lo carries an address of each family besides loopback, so glibc's
 * AI_ADDRCONFIG finds IPv4 (and IPv6) configured: asking for the literal
 * 127.0.0.1 then resolves. No route leads anywhere new. */
static void test_lo_addresses_make_addrconfig_resolve(void **state)
{
    SKIP_UNLESS_ROOT();
    run_t r = RUN_INIT;
    run_script("ip -o addr show dev lo | awk '{print $4}';"
               "ip route show table all | grep -Ev '^(local|broadcast|multicast|fe80|ff00)' "
               "| sed 's/^/route: /';"
               "/usr/bin/python3 -c 'import socket\n"
               "ai = socket.getaddrinfo(\"127.0.0.1\", 9001, socket.AF_INET, socket.SOCK_STREAM, 0,"
               " socket.AI_ADDRCONFIG)\n"
               "print(\"addrconfig\", ai[0][4][0])'",
               &r);
    if (!exited_ok(&r))
        fail_msg("stdout:\n%s\nstderr:\n%s", r.out.data, r.err.data);
    assert_output(&r, "127.0.0.1/8\n");
    assert_output(&r, SANDBOX__ADDR4 "/32\n");
    if (access("/proc/net/if_inet6", F_OK) == 0)
        assert_output(&r, SANDBOX__ADDR6 "/128\n");
    assert_output(&r, "addrconfig 127.0.0.1\n");
    /* Only the routes of the addresses themselves: nothing leads out. */
    if (contains(&r.out, "route: default") || contains(&r.out, "route: 10."))
        fail_msg("a route out of the sandbox:\n%s", r.out.data);
    run_release(&r);
}

/* /bin/sh is bash, as on Lambda's images, in a directly spawned sandbox
 * (the pooled one is checked in test_pooled_sandbox_gets_the_same); dash
 * itself stays dash. */
static void test_bin_sh_is_bash(void **state)
{
    SKIP_UNLESS_ROOT();
    static char *argv[] = {"/bin/sh", "-c",
                           "set -euo pipefail; echo \"bash=${BASH_VERSION:-none}\";"
                           "false | true && echo pipefail-off || echo pipefail-on;"
                           "/usr/bin/dash -c 'echo dash=${BASH_VERSION:-none}';"
                           "touch /bin/sh 2>/dev/null || echo sh-read-only",
                           NULL};
    sandbox_config_t cfg;
    base_config(&cfg, argv);
    run_t r = RUN_INIT;
    run_sandbox(&cfg, &r);
    if (!exited_ok(&r))
        fail_msg("stdout:\n%s\nstderr:\n%s", r.out.data, r.err.data);
    assert_false(contains(&r.out, "bash=none"));
    assert_output(&r, "pipefail-on\n");
    assert_output(&r, "dash=none\n");
    assert_output(&r, "sh-read-only\n");
    run_release(&r);
}

/* Only Unix, IPv4, IPv6 and routing-netlink sockets can be made inside:
 * AF_VSOCK in particular is not confined by the network namespace. */
static void test_socket_families_are_limited(void **state)
{
    SKIP_UNLESS_ROOT();
    static char *argv[] = {
        "/usr/bin/python3", "-c",
        "import errno, socket\n"
        "def t(name, fn):\n"
        "    try:\n"
        "        fn()\n"
        "        print(name, 'ok')\n"
        "    except OSError as e:\n"
        "        print(name, errno.errorcode[e.errno])\n"
        "t('unix', lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close())\n"
        "t('inet', lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close())\n"
        "t('inet6', lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close())\n"
        "t('route', lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).close())\n"
        "t('audit', lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 9).close())\n"
        "t('vsock', lambda: socket.socket(40, socket.SOCK_STREAM).close())\n"
        "t('packet', lambda: socket.socket(17, socket.SOCK_DGRAM).close())\n"
        "t('high', lambda: socket.socket(1 << 20, socket.SOCK_STREAM).close())\n"
        "t('pair', lambda: [x.close() for x in socket.socketpair()])\n"
        "t('pair-vsock', lambda: socket.socketpair(40, socket.SOCK_STREAM))\n",
        NULL};
    sandbox_config_t cfg;
    base_config(&cfg, argv);
    run_t r = RUN_INIT;
    run_sandbox(&cfg, &r);
    if (!exited_ok(&r))
        fail_msg("stdout:\n%s\nstderr:\n%s", r.out.data, r.err.data);
    const char *want[] = {"unix ok\n",
                          "inet ok\n",
                          "inet6 ok\n",
                          "route ok\n",
                          "audit EPROTONOSUPPORT\n",
                          "vsock EAFNOSUPPORT\n",
                          "packet EAFNOSUPPORT\n",
                          "high EAFNOSUPPORT\n",
                          "pair ok\n",
                          "pair-vsock EAFNOSUPPORT\n"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        assert_output(&r, want[i]);
    run_release(&r);
}

/* Each sandbox has a uid of its own while it lives; the uid goes back to
 * the range when it is destroyed, and a range with none left fails the
 * spawn with a clear error. */
static void test_each_sandbox_has_its_own_uid(void **state)
{
    SKIP_UNLESS_ROOT();
    mf_error_t err = MF_ERROR_INIT;
    /* Refused ranges, with the reason. */
    assert_int_equal(sandbox_system_set_uid_range(sys, 65530, 10, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "65534"));
    assert_int_equal(sandbox_system_set_uid_range(sys, 0, 10, &err), -EINVAL);
    assert_int_equal(sandbox_system_set_uid_range(sys, 4294967290u, 10, &err), -EINVAL);

    sh_argv[2] = "sleep 100";
    sandbox_config_t cfg;
    sandbox_t a, b, c;
    base_config(&cfg, sh_argv);
    assert_int_equal(sandbox_spawn(sys, &cfg, &a, &err), 0);
    /* Not while a sandbox holds one. */
    assert_int_equal(sandbox_system_set_uid_range(sys, 5000000, 2, &err), -EBUSY);
    sandbox_destroy(&a);

    assert_int_equal(sandbox_system_set_uid_range(sys, 5000000, 2, &err), 0);
    base_config(&cfg, sh_argv);
    assert_int_equal(sandbox_spawn(sys, &cfg, &a, &err), 0);
    base_config(&cfg, sh_argv);
    assert_int_equal(sandbox_spawn(sys, &cfg, &b, &err), 0);
    assert_true(a.uid != b.uid);
    assert_true(a.uid >= 5000000 && a.uid < 5000002 && b.uid >= 5000000 && b.uid < 5000002);
    assert_int_equal(a.gid, a.uid);
    /* The host sees the processes under those ids. */
    char path[64], want[64];
    buf_t status = BUF_INIT;
    snprintf(path, sizeof path, "/proc/%d/status", (int)a.pid);
    assert_int_equal(fs_read_file(path, &status, 65536, NULL), 0);
    snprintf(want, sizeof want, "Uid:\t%u\t%u\t%u\t%u", a.uid, a.uid, a.uid, a.uid);
    assert_non_null(strstr(status.data, want));
    buf_release(&status);

    base_config(&cfg, sh_argv);
    assert_int_equal(sandbox_spawn(sys, &cfg, &c, &err), -EAGAIN);
    assert_non_null(strstr(err.msg, "uid"));
    assert_int_equal(c.pidfd, -1);
    uid_t freed = a.uid;
    sandbox_destroy(&a);
    base_config(&cfg, sh_argv);
    assert_int_equal(sandbox_spawn(sys, &cfg, &c, &err), 0);
    assert_int_equal(c.uid, freed);
    sandbox_destroy(&b);
    sandbox_destroy(&c);
    assert_int_equal(sandbox_system_set_uid_range(sys, SANDBOX_UID_FIRST_DEFAULT,
                                                  SANDBOX_UID_COUNT_DEFAULT, &err),
                     0);
}

static int cmp_u64_fwd(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* How much CPU a sandbox has used so far, in ns. */
static uint64_t cpu_ns(sandbox_t *sb)
{
    sandbox_stats_t st;
    assert_int_equal(sandbox_stats(sb, SANDBOX_STAT_CPU, &st), 0);
    return st.cpu_ns;
}

static bool frozen_state(sandbox_t *sb, const char *want)
{
    char dir[512], state[32];
    if (sandbox_system_cgroup_version(sys) == SANDBOX_CGROUP_V2)
        return read_file_at(sb->cgroup_path, "cgroup.events", state, sizeof state) &&
               strstr(state, "frozen") != NULL; /* checked by the caller's loop */
    assert_true(ctl_dir(sb->pid, "freezer", dir, sizeof dir));
    return read_file_at(dir, "freezer.state", state, sizeof state) && !strcmp(state, want);
}

/* Waits (a guard, not a bound: the kernel gets there unless broken) until
 * the sandbox's freezer reports want. */
static void wait_frozen_state(sandbox_t *sb, const char *want)
{
    char path[600], text[128];
    for (int i = 0; i < 30000; i++) {
        if (sandbox_system_cgroup_version(sys) == SANDBOX_CGROUP_V2) {
            snprintf(path, sizeof path, "%s", sb->cgroup_path);
            buf_t b = BUF_INIT;
            snprintf(text, sizeof text, "frozen %d", !strcmp(want, "FROZEN"));
            char file[700];
            snprintf(file, sizeof file, "%s/cgroup.events", path);
            bool done = fs_read_file(file, &b, 4096, NULL) == 0 && strstr(b.data, text);
            buf_release(&b);
            if (done)
                return;
        } else if (frozen_state(sb, want)) {
            return;
        }
        /* On a loaded host a v1 freeze can stay FREEZING when a task was
         * between states as it was asked (a fork under way): asking again
         * goes over the tasks once more, as the kernel's documentation
         * says to. */
        if (!strcmp(want, "FROZEN") && i % 100 == 99)
            sandbox_freeze(sb);
        usleep(1000);
    }
    fail_msg("the freezer never reported %s", want);
}

/* A frozen sandbox uses no CPU at all, runs again once thawed, and can
 * still be killed and destroyed while frozen. */
static void test_freeze_stops_the_cpu_and_kill_still_works(void **state)
{
    SKIP_UNLESS_ROOT();
    static char *argv[] = {"/bin/sh", "-c", "while :; do :; done & while :; do :; done", NULL};
    sandbox_config_t cfg;
    base_config(&cfg, argv);
    mf_error_t err = MF_ERROR_INIT;
    sandbox_t sb;
    assert_int_equal(sandbox_spawn(sys, &cfg, &sb, &err), 0);
    if (sandbox_freeze(&sb) == -ENOTSUP) {
        print_message("no freezer on this host: skipped\n");
        sandbox_destroy(&sb);
        skip();
    }
    wait_frozen_state(&sb, "FROZEN");
    uint64_t before = cpu_ns(&sb);
    usleep(300 * 1000);
    assert_int_equal(cpu_ns(&sb), before);
    assert_true(sb.frozen);

    assert_int_equal(sandbox_thaw(&sb), 0);
    wait_frozen_state(&sb, "THAWED");
    uint64_t thawed = cpu_ns(&sb);
    for (int i = 0; i < 30000 && cpu_ns(&sb) == thawed; i++)
        usleep(1000);
    assert_true(cpu_ns(&sb) > thawed);

    /* Killed while frozen: init's pidfd becomes readable, the status is
     * SIGKILL's. */
    assert_int_equal(sandbox_freeze(&sb), 0);
    wait_frozen_state(&sb, "FROZEN");
    sandbox_kill(&sb);
    struct pollfd p = {sb.pidfd, POLLIN, 0};
    assert_int_equal(poll(&p, 1, 30000), 1);
    int st;
    assert_int_equal(sandbox_reap(&sb, &st), 0);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    sandbox_destroy(&sb);

    /* Destroyed while frozen, without a kill first: nothing is left. */
    base_config(&cfg, argv);
    assert_int_equal(sandbox_spawn(sys, &cfg, &sb, &err), 0);
    assert_int_equal(sandbox_freeze(&sb), 0);
    wait_frozen_state(&sb, "FROZEN");
    pid_t init = sb.pid;
    char *cg = strdup(sb.cgroup_path);
    sandbox_destroy(&sb);
    struct stat sst;
    assert_int_equal(stat(cg, &sst), -1);
    assert_int_equal(kill(init, 0), -1);
    free(cg);
}

/* Not a benchmark (bench/ has those): what a freeze and a thaw cost the
 * caller, for the report. */
static void test_freeze_thaw_cost(void **state)
{
    SKIP_UNLESS_ROOT();
    enum { N = 200 };
    static char *argv[] = {"/bin/sh", "-c", "sleep 100 & sleep 100 & wait", NULL};
    sandbox_config_t cfg;
    base_config(&cfg, argv);
    mf_error_t err = MF_ERROR_INIT;
    sandbox_t sb;
    assert_int_equal(sandbox_spawn(sys, &cfg, &sb, &err), 0);
    uint64_t pair[N];
    for (int i = 0; i < N; i++) {
        uint64_t t0 = clock_mono_ns();
        int r = sandbox_freeze(&sb);
        if (r == -ENOTSUP) {
            sandbox_destroy(&sb);
            skip();
        }
        assert_int_equal(r, 0);
        assert_int_equal(sandbox_thaw(&sb), 0);
        pair[i] = clock_mono_ns() - t0;
    }
    sandbox_destroy(&sb);
    qsort(pair, N, sizeof *pair, cmp_u64_fwd);
    print_message("freeze+thaw of a sandbox of 4 processes, %d pairs: median %.1f us, "
                  "p90 %.1f us\n",
                  N, pair[N / 2] / 1e3, pair[N * 9 / 10] / 1e3);
}

/* The CPU quota follows the memory (1769 MB = one CPU) once capped, and
 * not before: a 128 MB sandbox spinning gets about 7% of a CPU. */
static void test_cpu_cap_follows_memory(void **state)
{
    SKIP_UNLESS_ROOT();
    static char *argv[] = {"/bin/sh", "-c", "while :; do :; done", NULL};
    sandbox_config_t cfg;
    base_config(&cfg, argv);
    cfg.memory_mb = 128;
    mf_error_t err = MF_ERROR_INIT;
    sandbox_t sb;
    assert_int_equal(sandbox_spawn(sys, &cfg, &sb, &err), 0);
    char dir[512], text[64];
    assert_true(ctl_dir(sb.pid, "cpu", dir, sizeof dir));
    bool v2 = sandbox_system_cgroup_version(sys) == SANDBOX_CGROUP_V2;
    /* Uncapped while the runtime starts. */
    assert_true(read_file_at(dir, v2 ? "cpu.max" : "cpu.cfs_quota_us", text, sizeof text));
    assert_string_equal(text, v2 ? "max 100000" : "-1");

    assert_int_equal(sandbox_cap_cpu(&sb, 0, &err), 0);
    uint64_t quota = 128ull * SANDBOX_CPU_PERIOD_US / 1769; /* 1447 us */
    char want[64];
    if (v2) {
        snprintf(want, sizeof want, "%llu %d", (unsigned long long)quota, SANDBOX_CPU_PERIOD_US);
        assert_true(read_file_at(dir, "cpu.max", text, sizeof text));
        assert_string_equal(text, want);
    } else {
        snprintf(want, sizeof want, "%llu", (unsigned long long)quota);
        assert_true(read_file_at(dir, "cpu.cfs_quota_us", text, sizeof text));
        assert_string_equal(text, want);
        snprintf(want, sizeof want, "%d", SANDBOX_CPU_PERIOD_US);
        assert_true(read_file_at(dir, "cpu.cfs_period_us", text, sizeof text));
        assert_string_equal(text, want);
    }
    /* And the kernel holds it to that: over a second, the CPU it used is
     * at most its share of the time that passed (a busy machine gives it
     * less, never more; the slack covers accounting at period edges). */
    uint64_t c0 = cpu_ns(&sb), t0 = clock_mono_ns();
    usleep(1000 * 1000);
    uint64_t used = cpu_ns(&sb) - c0, wall = clock_mono_ns() - t0;
    double share = (double)used / (double)wall, cap = (double)quota / SANDBOX_CPU_PERIOD_US;
    print_message("capped 128 MB sandbox: %.1f%% of a CPU (quota %.1f%%)\n", share * 100,
                  cap * 100);
    assert_true(share <= cap * 1.5);

    /* A size past the machine's CPUs is capped at all of them. */
    sandbox_capacity_t capc;
    sandbox_system_capacity(sys, &capc);
    uint64_t huge = 1769ull * (capc.cpus + 2);
    mf_error_t e2 = MF_ERROR_INIT;
    sandbox_destroy(&sb);
    base_config(&cfg, argv);
    cfg.memory_mb = (unsigned)huge;
    assert_int_equal(sandbox_spawn(sys, &cfg, &sb, &e2), 0);
    assert_int_equal(sandbox_cap_cpu(&sb, 0, &e2), 0);
    assert_true(ctl_dir(sb.pid, "cpu", dir, sizeof dir));
    assert_true(read_file_at(dir, v2 ? "cpu.max" : "cpu.cfs_quota_us", text, sizeof text));
    assert_int_equal(strtoull(text, NULL, 10), (uint64_t)capc.cpus * SANDBOX_CPU_PERIOD_US);
    sandbox_destroy(&sb);
}

/* The budget of all sandboxes together is the kernel's: a sandbox below
 * its own limit is still stopped by it. */
static void test_budget_holds_all_sandboxes(void **state)
{
    SKIP_UNLESS_ROOT();
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(sandbox_system_set_budget(sys, 200, 24, &err), 0);
    static char *argv[] = {"/usr/bin/python3", "-c",
                           "import os, sys, time\n"
                           "if sys.argv[1:] == ['fork']:\n"
                           "    n = 0\n"
                           "    try:\n"
                           "        for i in range(100):\n"
                           "            if os.fork() == 0:\n"
                           "                time.sleep(30)\n"
                           "                os._exit(0)\n"
                           "            n += 1\n"
                           "    except OSError as e:\n"
                           "        print('fork failed', e.errno, 'after', n, flush=True)\n"
                           "else:\n"
                           "    b = b'x' * (300 << 20)\n"
                           "    print('survived', len(b))\n",
                           NULL, NULL};
    sandbox_config_t cfg;
    base_config(&cfg, argv);
    cfg.memory_mb = 512; /* its own limit would let it */
    run_t r = RUN_INIT;
    run_sandbox(&cfg, &r);
    assert_false(contains(&r.out, "survived"));
    assert_true(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGKILL);
    assert_true(r.stats.oom_kills >= 1);
    run_release(&r);

    argv[3] = "fork";
    base_config(&cfg, argv);
    run_t f = RUN_INIT;
    run_sandbox(&cfg, &f);
    char want[32];
    snprintf(want, sizeof want, "fork failed %d", EAGAIN);
    assert_output(&f, want);
    const char *after = strstr(f.out.data, "after ");
    assert_non_null(after);
    assert_true(atoi(after + 6) < 24);
    run_release(&f);
    argv[3] = NULL;

    /* The limits are on the sandboxes' common parent. */
    sh_argv[2] = "sleep 100";
    base_config(&cfg, sh_argv);
    sandbox_t sb;
    assert_int_equal(sandbox_spawn(sys, &cfg, &sb, &err), 0);
    char parent[512], text[64];
    snprintf(parent, sizeof parent, "%s", sb.cgroup_path);
    *strrchr(parent, '/') = '\0';
    bool v2 = sandbox_system_cgroup_version(sys) == SANDBOX_CGROUP_V2;
    assert_true(
        read_file_at(parent, v2 ? "memory.max" : "memory.limit_in_bytes", text, sizeof text));
    assert_int_equal(strtoull(text, NULL, 10), 200ull << 20);
    sandbox_destroy(&sb);

    /* Lifted again for the tests that follow. */
    assert_int_equal(sandbox_system_set_budget(sys, 0, 0, &err), 0);
}

/* A prepared sandbox, handed out, is the same as one made directly: its
 * own uid, bash as /bin/sh, lo's addresses, and its function's CPU quota
 * when capped. Its share of memory is added to the budget. */
static void test_pooled_sandbox_gets_the_same(void **state)
{
    SKIP_UNLESS_ROOT();
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(sandbox_system_set_budget(sys, 1000, 0, &err), 0);
    /* max_pids 77: only spawns that ask for it are served by this pool. */
    assert_int_equal(sandbox_system_start_pool(sys, 1, 77, NULL, &err), 0);
    for (int i = 0; i < 30000 && sandbox_system_pool_ready(sys, NULL) < 1; i++)
        usleep(1000);
    assert_int_equal(sandbox_system_pool_ready(sys, NULL), 1);

    static char *argv[] = {"/bin/sh", "-c",
                           "set -o pipefail; echo \"bash=${BASH_VERSION:-none}\"; id -u;"
                           "ip -o addr show dev lo | awk '{print $4}'; exec sleep 100",
                           NULL};
    sandbox_config_t cfg;
    base_config(&cfg, argv);
    cfg.max_pids = 77;
    cfg.memory_mb = 512;
    sandbox_t sb;
    assert_int_equal(sandbox_spawn(sys, &cfg, &sb, &err), 0);
    /* Served by the pool: no clone on this path. */
    assert_int_equal(sb.timings.cloned_ns, sb.timings.start_ns);
    buf_t out = BUF_INIT;
    int fd = sb.stdout_fd;
    for (int i = 0; i < 30000 && !strstr(out.data, "/32"); i++) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 1) == 1)
            drain(&fd, &out);
    }
    char want[64];
    snprintf(want, sizeof want, "\n%u\n", sb.uid);
    if (strstr(out.data, "bash=none") || !strstr(out.data, want) ||
        !strstr(out.data, SANDBOX__ADDR4 "/32"))
        fail_msg("pooled sandbox (uid %u) said:\n%s", sb.uid, out.data);
    buf_release(&out);

    assert_int_equal(sandbox_cap_cpu(&sb, 0, &err), 0);
    char dir[512], text[64];
    assert_true(ctl_dir(sb.pid, "cpu", dir, sizeof dir));
    bool v2 = sandbox_system_cgroup_version(sys) == SANDBOX_CGROUP_V2;
    assert_true(read_file_at(dir, v2 ? "cpu.max" : "cpu.cfs_quota_us", text, sizeof text));
    assert_int_equal(strtoull(text, NULL, 10), 512ull * SANDBOX_CPU_PERIOD_US / 1769);

    /* The budget: the instances' 1000 MB plus the pool's one sandbox. */
    char parent[512];
    snprintf(parent, sizeof parent, "%s", sb.cgroup_path);
    *strrchr(parent, '/') = '\0';
    assert_true(
        read_file_at(parent, v2 ? "memory.max" : "memory.limit_in_bytes", text, sizeof text));
    assert_int_equal(strtoull(text, NULL, 10), (1000ull + SANDBOX_POOL_MEMORY_MB) << 20);
    sandbox_destroy(&sb);
    assert_int_equal(sandbox_system_set_budget(sys, 0, 0, &err), 0);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}


/* ---- volumes ---------------------------------------------------------- */

/* A file system standing in for a volume (the server mounts ext4 images;
 * a tmpfs takes idmapped mounts too since Linux 6.3), owned by the
 * volumes' owner as the server's are. Mounted in the tests' own mount
 * namespace (group_setup). NULL when this kernel cannot idmap it. */

static bool volume_source(void)
{
    if (volume_mounted)
        return true;
    if (!mkdtemp(volume_dir))
        return false;
    char opts[64];
    snprintf(opts, sizeof opts, "size=1m,mode=0755,uid=%u,gid=%u", SANDBOX_VOLUME_OWNER,
             SANDBOX_VOLUME_OWNER);
    if (mount("tmpfs", volume_dir, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
        return false;
    volume_mounted = true;
    return true;
}

/* Runs script with the test volume at /mnt/shared. */
static int run_with_volume(const char *script, bool read_only, unsigned max_pids, run_t *r,
                           sandbox_t *keep)
{
    sandbox_volume_t vol = {.source = volume_dir, .target = "/mnt/shared", .read_only = read_only};
    static char *argv[4] = {"/bin/sh", "-c", NULL, NULL};
    argv[2] = (char *)script;
    sandbox_config_t cfg;
    base_config(&cfg, argv);
    cfg.volumes = &vol;
    cfg.n_volumes = 1;
    if (max_pids)
        cfg.max_pids = max_pids;
    mf_error_t err = MF_ERROR_INIT;
    if (keep) {
        int rc = sandbox_spawn(sys, &cfg, keep, &err);
        if (rc < 0)
            print_message("sandbox_spawn: %s\n", err.msg);
        return rc;
    }
    run_sandbox(&cfg, r);
    return 0;
}

static bool idmap_supported(void)
{
    run_t r = RUN_INIT;
    sandbox_t sb;
    int rc = run_with_volume("true", false, 0, &r, &sb);
    if (rc == 0)
        sandbox_destroy(&sb);
    return rc == 0;
}

#define SKIP_UNLESS_VOLUMES()                                                                      \
    do {                                                                                           \
        SKIP_UNLESS_ROOT();                                                                        \
        if (!volume_source() || !idmap_supported()) {                                              \
            print_message("this kernel cannot idmap a tmpfs: skipped\n");                         \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* Every sandbox sees the volume's files as its own (each runs as a uid of
 * its own), what it writes is stored as the volumes' owner, another
 * sandbox can change it, a read-only mount refuses writes, and the mount
 * is nosuid and nodev with /mnt itself read-only. */
static void test_volumes_are_shared_between_sandboxes(void **state)
{
    SKIP_UNLESS_VOLUMES();
    run_t a = RUN_INIT;
    run_with_volume("stat -c 'owner=%u:%g mode=%a' /mnt/shared; echo one > /mnt/shared/f && "
                    "echo wrote; stat -c 'file=%u' /mnt/shared/f; touch /mnt/other 2>&1;"
                    "grep ' /mnt/shared ' /proc/self/mountinfo",
                    false, 0, &a, NULL);
    assert_true(exited_ok(&a));
    char want[64];
    snprintf(want, sizeof want, "owner=%u:%u mode=755\n", a.uid, a.uid);
    assert_output(&a, want);
    assert_output(&a, "wrote\n");
    snprintf(want, sizeof want, "file=%u\n", a.uid);
    assert_output(&a, want);
    assert_output(&a, "/mnt/other': Read-only file system");
    assert_output(&a, " rw,nosuid,nodev");
    assert_output(&a, "idmapped");

    /* Stored as the volumes' owner, whoever wrote it. */
    char path[128];
    snprintf(path, sizeof path, "%s/f", volume_dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_uid, SANDBOX_VOLUME_OWNER);
    assert_int_equal(st.st_gid, SANDBOX_VOLUME_OWNER);

    /* Another sandbox, another uid: the file is its to change. */
    run_t b = RUN_INIT;
    run_with_volume("echo two >> /mnt/shared/f && cat /mnt/shared/f", false, 0, &b, NULL);
    assert_true(exited_ok(&b));
    assert_int_not_equal(a.uid, b.uid);
    assert_output(&b, "one\ntwo\n");

    /* Read-only: reads work, writes fail with EROFS. */
    run_t c = RUN_INIT;
    run_with_volume("cat /mnt/shared/f; { echo three >> /mnt/shared/f; } 2>&1;"
                    "grep ' /mnt/shared ' /proc/self/mountinfo",
                    true, 0, &c, NULL);
    assert_output(&c, "one\ntwo\n");
    assert_output(&c, "Read-only file system");
    assert_output(&c, " ro,nosuid,nodev");
    run_release(&a);
    run_release(&b);
    run_release(&c);
}

/* A volume whose file system is not mounted (a plain folder) would let a
 * function fill the server's disk: refused, naming it. Bad targets are
 * refused before anything starts. */
static void test_volume_must_be_mounted_and_under_mnt(void **state)
{
    SKIP_UNLESS_ROOT();
    static char *argv[] = {"/bin/true", NULL};
    sandbox_volume_t vol = {.source = code_dir, .target = "/mnt/x"};
    sandbox_config_t cfg;
    base_config(&cfg, argv);
    cfg.volumes = &vol;
    cfg.n_volumes = 1;
    mf_error_t err = MF_ERROR_INIT;
    sandbox_t sb;
    assert_int_equal(sandbox_spawn(sys, &cfg, &sb, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "is not mounted"));
    const char *bad[] = {"/mnt/", "/mnt/a/b", "/mnt/..", "/etc/x", "mnt/x", "/mnt/a b"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        vol.target = bad[i];
        err = (mf_error_t)MF_ERROR_INIT;
        assert_int_equal(sandbox_spawn(sys, &cfg, &sb, &err), -EINVAL);
        assert_non_null(strstr(err.msg, "volume target"));
    }
}

/* A pooled sandbox (its root built and pivoted before its function was
 * known) attaches its function's volumes the same way. */
static void test_pooled_sandbox_mounts_volumes(void **state)
{
    SKIP_UNLESS_VOLUMES();
    mf_error_t err = MF_ERROR_INIT;
    /* The pool test's pool (max_pids 77), refilled. */
    assert_int_equal(sandbox_system_start_pool(sys, 1, 77, NULL, &err), 0);
    for (int i = 0; i < 30000 && sandbox_system_pool_ready(sys, NULL) < 1; i++)
        usleep(1000);
    assert_int_equal(sandbox_system_pool_ready(sys, NULL), 1);
    sandbox_t sb;
    assert_int_equal(run_with_volume("echo pooled > /mnt/shared/p && stat -c 'p=%u' /mnt/shared/p;"
                                     "grep ' /mnt/shared ' /proc/self/mountinfo",
                                     false, 77, NULL, &sb),
                     0);
    assert_int_equal(sb.timings.cloned_ns, sb.timings.start_ns);
    buf_t out = BUF_INIT;
    int fd = sb.stdout_fd;
    while (fd >= 0) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 30000) != 1)
            break;
        drain(&fd, &out);
    }
    char want[32];
    snprintf(want, sizeof want, "p=%u\n", sb.uid);
    if (!strstr(out.data, want) || !strstr(out.data, "idmapped"))
        fail_msg("pooled sandbox (uid %u) said:\n%s", sb.uid, out.data);
    sandbox_destroy(&sb);
    buf_release(&out);
    char path[128];
    snprintf(path, sizeof path, "%s/p", volume_dir);
    buf_t b = BUF_INIT;
    assert_int_equal(fs_read_file(path, &b, 64, NULL), 0);
    assert_string_equal(b.data, "pooled\n");
    buf_release(&b);
}

/* A file on a volume may be as large as the volume, whatever /tmp's size:
 * RLIMIT_FSIZE follows the largest volume, in a sandbox made directly and
 * in a pooled one (whose init could not raise its limit without
 * CAP_SYS_RESOURCE). A 20 GiB tmpfs costs nothing until written. */
static void test_volume_raises_the_file_size_limit(void **state)
{
    SKIP_UNLESS_VOLUMES();
    char big[] = "/tmp/mayfly-test-bigvol-XXXXXX";
    assert_non_null(mkdtemp(big));
    char opts[64];
    snprintf(opts, sizeof opts, "size=20g,mode=0755,uid=%u,gid=%u", SANDBOX_VOLUME_OWNER,
             SANDBOX_VOLUME_OWNER);
    assert_int_equal(mount("tmpfs", big, "tmpfs", MS_NOSUID | MS_NODEV, opts), 0);
    sandbox_volume_t vols[] = {{.source = volume_dir, .target = "/mnt/small"},
                               {.source = big, .target = "/mnt/big", .read_only = true}};
    static char *argv[] = {"/usr/bin/python3", "-c",
                           "import resource\n"
                           "print('fsize=%d' % resource.getrlimit(resource.RLIMIT_FSIZE)[0])",
                           NULL};
    mf_error_t err = MF_ERROR_INIT;
    for (int pooled = 0; pooled < 2; pooled++) {
        if (pooled) {
            assert_int_equal(sandbox_system_start_pool(sys, 1, 77, NULL, &err), 0);
            for (int i = 0; i < 30000 && sandbox_system_pool_ready(sys, NULL) < 1; i++)
                usleep(1000);
        }
        sandbox_config_t cfg;
        base_config(&cfg, argv);
        cfg.volumes = vols;
        cfg.n_volumes = 2;
        cfg.tmp_mb = 16;
        if (pooled)
            cfg.max_pids = 77;
        sandbox_t sb;
        if (sandbox_spawn(sys, &cfg, &sb, &err) < 0)
            fail_msg("sandbox_spawn: %s", err.msg);
        /* The pooled one was served by the pool, not made the slow way. */
        assert_true(pooled ? sb.timings.cloned_ns == sb.timings.start_ns
                           : sb.timings.cloned_ns > sb.timings.start_ns);
        buf_t out = BUF_INIT;
        int fd = sb.stdout_fd;
        while (fd >= 0) {
            struct pollfd p = {fd, POLLIN, 0};
            if (poll(&p, 1, 30000) != 1)
                break;
            drain(&fd, &out);
        }
        if (!strstr(out.data, "fsize=21474836480\n"))
            fail_msg("%s sandbox said: %s", pooled ? "a pooled" : "a direct", out.data);
        buf_release(&out);
        sandbox_destroy(&sb);
    }
    umount2(big, MNT_DETACH);
    rmdir(big);
}

/* Not a benchmark (bench/ has those): a sanity figure for the report. */
static void test_spawn_timing(void **state)
{
    SKIP_UNLESS_ROOT();
    enum { N = 50 };
    static char *argv[] = {"/bin/true", NULL};
    uint64_t ready[N], total[N], plain[N];
    for (int i = 0; i < N; i++) {
        sandbox_config_t cfg;
        base_config(&cfg, argv);
        mf_error_t err = MF_ERROR_INIT;
        sandbox_t sb;
        assert_int_equal(sandbox_spawn(sys, &cfg, &sb, &err), 0);
        struct pollfd p = {sb.pidfd, POLLIN, 0};
        assert_int_equal(poll(&p, 1, 10000), 1);
        uint64_t exited = clock_mono_ns();
        int st;
        assert_int_equal(sandbox_reap(&sb, &st), 0);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        sandbox_destroy(&sb);
        ready[i] = sb.timings.ready_ns - sb.timings.start_ns;
        total[i] = exited - sb.timings.start_ns;
    }
    for (int i = 0; i < N; i++) {
        uint64_t t0 = clock_mono_ns();
        pid_t pid;
        assert_int_equal(posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ), 0);
        int st;
        waitpid(pid, &st, 0);
        plain[i] = clock_mono_ns() - t0;
    }
    qsort(ready, N, sizeof *ready, cmp_u64);
    qsort(total, N, sizeof *total, cmp_u64);
    qsort(plain, N, sizeof *plain, cmp_u64);
    print_message("sandbox /bin/true, median of %d: spawn->ready %.2f ms, spawn->exit %.2f ms; "
                  "posix_spawn+wait %.2f ms (ratio %.1f)\n",
                  N, ready[N / 2] / 1e6, total[N / 2] / 1e6, plain[N / 2] / 1e6,
                  (double)total[N / 2] / (double)plain[N / 2]);
}

/* The message that turns a pooled sandbox into a function's, decoded in
 * the sandbox's child without allocating: a round trip keeps every field,
 * and a message cut short or padded with garbage is refused. */
static void test_specialisation_round_trip_and_bad_messages(void **state)
{
    char *argv[] = {"/var/task/bootstrap", "--flag", NULL};
    char *envp[] = {"A=1", "_HANDLER=app.handler", "EMPTY=", NULL};
    sandbox_config_t cfg = {
        .id = "abc", .code_dir = "/data/code/x", .runtime_dir = "/opt/runtimes", .argv = argv,
        .envp = envp, .hostname = "mayfly-abc", .memory_mb = 256, .tmp_mb = 32, .max_pids = 64,
        .api_port = SANDBOX_API_PORT,
    };
    sandbox__child_t in = {0};
    snprintf(in.tmp_opts, sizeof in.tmp_opts, "size=32m,mode=1777");
    snprintf(in.hosts, sizeof in.hosts, "127.0.0.1\tlocalhost mayfly-abc\n");
    in.fsize = (rlim_t)32 << 20;
    in.n_volumes = 2;
    snprintf(in.volume_dirs[0], sizeof in.volume_dirs[0], "mnt/shared");
    snprintf(in.volume_dirs[1], sizeof in.volume_dirs[1], "mnt/logs.d");
    buf_t msg = BUF_INIT;
    sandbox__spec_encode(&msg, &cfg, &in);

    sandbox__child_t out = {0};
    char *copy = malloc(msg.len);
    memcpy(copy, msg.data, msg.len);
    assert_int_equal(sandbox__spec_decode(copy, msg.len, &out), 0);
    assert_string_equal(out.cfg->hostname, "mayfly-abc");
    assert_string_equal(out.cfg->code_dir, "/data/code/x");
    assert_string_equal(out.cfg->runtime_dir, "/opt/runtimes");
    assert_string_equal(out.cfg->argv[0], "/var/task/bootstrap");
    assert_string_equal(out.cfg->argv[1], "--flag");
    assert_null(out.cfg->argv[2]);
    assert_string_equal(out.cfg->envp[2], "EMPTY=");
    assert_null(out.cfg->envp[3]);
    assert_string_equal(out.tmp_opts, "size=32m,mode=1777");
    assert_string_equal(out.hosts, in.hosts);
    assert_int_equal(out.fsize, in.fsize);
    assert_int_equal(out.n_volumes, 2);
    assert_string_equal(out.volume_dirs[0], "mnt/shared");
    assert_string_equal(out.volume_dirs[1], "mnt/logs.d");

    /* Anything after the last field is refused too. */
    char *padded = malloc(msg.len + 2);
    memcpy(padded, msg.data, msg.len);
    memcpy(padded + msg.len, "x", 2);
    sandbox__child_t pad = {0};
    assert_int_equal(sandbox__spec_decode(padded, msg.len + 2, &pad), -EINVAL);
    free(padded);

    /* Every truncation of the message is refused, never read past. */
    for (size_t cut = 0; cut < msg.len; cut++) {
        char *part = malloc(cut ? cut : 1);
        memcpy(part, msg.data, cut);
        sandbox__child_t bad = {0};
        assert_int_equal(sandbox__spec_decode(part, cut, &bad), -EINVAL);
        free(part);
    }
    /* A count that is not a number, or past the bound, is refused. */
    buf_t forged = BUF_INIT;
    buf_add(&forged, "h\0/c\0\0size=1m\0hosts\0" "1\0" "x1\0/a\0" "0\0", 30);
    sandbox__child_t bad = {0};
    assert_int_equal(sandbox__spec_decode(forged.data, forged.len, &bad), -EINVAL);
    buf_reset(&forged);
    buf_add(&forged, "h\0/c\0\0size=1m\0hosts\0" "1\0" "99999\0", 29);
    assert_int_equal(sandbox__spec_decode(forged.data, forged.len, &bad), -EINVAL);
    buf_release(&forged);
    free(copy);
    buf_release(&msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_specialisation_round_trip_and_bad_messages),
        cmocka_unit_test(test_identity_and_namespaces),
        cmocka_unit_test(test_filesystem_is_read_only_but_tmp),
        cmocka_unit_test(test_tmp_is_size_limited),
        cmocka_unit_test(test_privileged_operations_fail),
        cmocka_unit_test(test_runtime_api_listener_reaches_the_server),
        cmocka_unit_test(test_no_route_to_host_or_outside),
        cmocka_unit_test(test_memory_limit_kills_and_counts),
        cmocka_unit_test(test_pids_limit_holds),
        cmocka_unit_test(test_failing_step_names_it_and_leaves_nothing),
        cmocka_unit_test(test_exec_failure_is_reported_on_stderr),
        cmocka_unit_test(test_exit_status_is_the_functions),
        cmocka_unit_test(test_server_descriptors_do_not_leak),
        cmocka_unit_test(test_destroy_kills_everything_and_removes_the_cgroup),
        cmocka_unit_test(test_kill_then_reap),
        cmocka_unit_test(test_language_runtimes_start),
        cmocka_unit_test(test_stats_count_cpu_and_memory),
        cmocka_unit_test(test_reset_peak),
        cmocka_unit_test(test_lo_addresses_make_addrconfig_resolve),
        cmocka_unit_test(test_bin_sh_is_bash),
        cmocka_unit_test(test_socket_families_are_limited),
        cmocka_unit_test(test_each_sandbox_has_its_own_uid),
        cmocka_unit_test(test_exec_errno_tells_why_the_function_did_not_start),
        cmocka_unit_test(test_freeze_stops_the_cpu_and_kill_still_works),
        cmocka_unit_test(test_freeze_thaw_cost),
        cmocka_unit_test(test_cpu_cap_follows_memory),
        cmocka_unit_test(test_budget_holds_all_sandboxes),
        cmocka_unit_test(test_volumes_are_shared_between_sandboxes),
        cmocka_unit_test(test_volume_must_be_mounted_and_under_mnt),
        cmocka_unit_test(test_pooled_sandbox_gets_the_same),
        cmocka_unit_test(test_pooled_sandbox_mounts_volumes),
        cmocka_unit_test(test_volume_raises_the_file_size_limit),
        cmocka_unit_test(test_init_removes_what_a_dead_server_left),
        cmocka_unit_test(test_spawn_timing),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
