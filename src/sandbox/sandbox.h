/* Sandboxes: one Linux process tree per function instance, in its own PID,
 * mount, IPC, UTS and network namespaces (and a user namespace when the
 * server is not root), with a minimal read-only root, its own cgroup,
 * rlimits, no capabilities, no_new_privs and a seccomp filter.
 *
 * Inside, PID 1 is a small init (a fork of the server, never exec'd) that
 * reaps orphans and exits when the function's process exits, after sending
 * that process's wait status to the server. The function's process is
 * exec'd from it with the argv and envp given.
 *
 * The Runtime API address 127.0.0.1:PORT exists inside the sandbox's own
 * network namespace: the child brings up `lo`, binds and listens there, and
 * hands the listening descriptor to the server (SCM_RIGHTS) before it execs.
 * The server accepts on it from its own event loop. lo also carries
 * 10.255.255.2/32 and fd00:6d66::2/128 (no route anywhere), so that
 * getaddrinfo with AI_ADDRCONFIG resolves 127.0.0.1 inside.
 *
 * As root, each sandbox runs as a user (and group) id of its own, taken
 * from a range (sandbox_system_set_uid_range) when it is made and given
 * back when it is destroyed. Without root (a user namespace) it is uid 0
 * inside, the server's uid outside, for every sandbox, as before.
 *
 * The server's own process moves into a cgroup of its own that outweighs
 * all sandboxes together for CPU, and the sandboxes' common parent cgroup
 * carries a memory and pids budget over all of them (see cgroup.h). */
#ifndef MAYFLY_SANDBOX_SANDBOX_H
#define MAYFLY_SANDBOX_SANDBOX_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/error.h"

typedef enum { SANDBOX_CGROUP_V1 = 1, SANDBOX_CGROUP_V2 = 2 } sandbox_cgroup_version_t;

/* The Runtime API port inside, as on Lambda; pooled sandboxes listen on it. */
#define SANDBOX_API_PORT 9001

/* The user ids sandboxes run as unless told otherwise: 0x70000000 and up,
 * above the ranges Debian's useradd hands out as subordinate ids
 * (/etc/subuid: 100000 up to 600100000) and systemd-nspawn's container
 * ranges (up to 0x6FFFFFFF), below 2^31, which some programs mistake for
 * negative. */
#define SANDBOX_UID_FIRST_DEFAULT 1879048192u
#define SANDBOX_UID_COUNT_DEFAULT 65536u

/* The memory limit of a prepared (pooled) sandbox until it knows its
 * function: the smallest a function may ask for. Each one counts this
 * much against the sandboxes' memory budget, on top of the instances'
 * part (sandbox_system_set_budget). */
#define SANDBOX_POOL_MEMORY_MB 128

/* The CPU-bandwidth period of a capped sandbox, in microseconds. At the
 * smallest size, 128 MB, a 20 ms period gives a quota of 1.45 ms, above
 * the kernel's 1 ms minimum, and a sandbox that used its quota waits at
 * most about 18.5 ms for the next period (with the kernel's default 100
 * ms it would be 93 ms: a visible stall on a short call). */
#define SANDBOX_CPU_PERIOD_US 20000

/* Process-wide state: which cgroup version is in use and where mayfly's
 * parent cgroup is. */
typedef struct sandbox_system sandbox_system_t;

struct sandbox;

/* Volumes: file systems the server has mounted that sandboxes share. A
 * sandbox sees a volume's files as owned by its own uid and gid (an
 * idmapped mount of the volume's root), and what it creates is stored
 * as SANDBOX_VOLUME_OWNER: so functions, each running as a uid of its
 * own, read and write each other's files as Lambda functions do on EFS.
 * 65534 is never a sandbox's uid (sandbox_system_set_uid_range refuses
 * it). Needs root (open_tree, mount_setattr). */
#define SANDBOX_VOLUME_OWNER 65534u
#define SANDBOX_VOLUMES_MAX 8

typedef struct sandbox_volume {
    const char *source;        /* host directory: the root of a mount (not a subfolder) */
    const char *target;        /* where inside: "/mnt/NAME", NAME 1 to 64 of [A-Za-z0-9_.-] */
    bool read_only;            /* mounted read-only: a write fails with EROFS */
} sandbox_volume_t;

typedef struct sandbox_config {
    const char *id;            /* unique instance id: names the cgroup */
    const char *code_dir;      /* host directory → /var/task, read-only */
    const char *runtime_dir;   /* host directory → /var/runtime, read-only (may be NULL) */
    char *const *argv;         /* what to exec inside; argv[0] a path inside */
    char *const *envp;
    const char *hostname;      /* the UTS name inside */
    unsigned memory_mb;        /* cgroup memory limit (swap included where possible) */
    unsigned tmp_mb;           /* size of the /tmp tmpfs */
    unsigned max_pids;         /* cgroup pids limit */
    uint16_t api_port;         /* the Runtime API port on the sandbox's loopback */
    /* Optional: the zygote kind ("python3", "nodejs") whose pre-started
     * runtime may serve this sandbox; then argv is not exec'd and envp is
     * handed to the waiting runtime instead (see sandbox_system_add_zygotes). */
    const char *zygote;
    /* Optional: run by sandbox_spawn once the sandbox exists and before
     * anything of the function runs in it (its process is not started, a
     * zygote's runtime not given the function), e.g. to set up its
     * network from outside with sandbox_enter_net. A failure fails the
     * spawn. Sandboxes without it never wait for it. */
    int (*net_setup)(void *ud, const struct sandbox *sb, mf_error_t *err);
    void *net_setup_ud;
    /* The volumes it mounts (see sandbox_volume_t), nosuid and nodev; a
     * file on one may grow to the volume's size whatever tmp_mb is. */
    const sandbox_volume_t *volumes;
    unsigned n_volumes;        /* at most SANDBOX_VOLUMES_MAX */
} sandbox_config_t;

/* Where the time of a start went (monotonic ns), for the cold-start
 * breakdown. */
typedef struct sandbox_timings {
    uint64_t start_ns;         /* sandbox_spawn entered */
    uint64_t cloned_ns;        /* clone() returned in the parent */
    uint64_t ready_ns;         /* the child reported its listener: about to exec */
} sandbox_timings_t;

typedef struct sandbox {
    pid_t pid;                 /* the sandbox's PID 1, as the host sees it */
    int pidfd;                 /* becomes readable when PID 1 exits */
    int status_fd;             /* PID 1 writes the function's wait status here */
    int api_listen_fd;         /* listening socket at 127.0.0.1:api_port inside */
    int stdout_fd;             /* read ends of the function's stdout and stderr */
    int stderr_fd;
    char *cgroup_path;         /* v2: the cgroup; v1: the memory controller's dir
                                  (the other controllers', the freezer's too, are
                                  named in /proc/<pid>/cgroup read from the host) */
    uid_t uid;                 /* who the function runs as, as the host sees it */
    gid_t gid;
    /* Set by sandbox_reap: the errno of the exec that could not start the
     * function's process (EACCES: not executable; ENOENT: no such file,
     * or its #! interpreter is missing; ENOEXEC: not a program), with
     * wstatus then "exited 127"; 0 when the exec worked. */
    int exec_errno;
    sandbox_timings_t timings;
    /* private */
    struct sandbox__cg *cg;
    struct sandbox_system *sys;
    bool reaped;               /* PID 1 has been collected */
    bool frozen;               /* sandbox_freeze'd and not thawed since */
    bool owns_uid;             /* uid goes back to the range on destroy */
    int schedstat_fd;          /* /proc/<pid>/schedstat, opened on first use */
    int wstatus;               /* what sandbox_reap reported */
} sandbox_t;

/* Resource use of a sandbox so far. */
typedef struct sandbox_stats {
    uint64_t memory_peak_bytes;  /* high-water mark since the last reset */
    uint64_t cpu_ns;             /* CPU time of every process in it */
    uint64_t oom_kills;          /* processes the memory limit killed */
} sandbox_stats_t;

/* Detects the cgroup version (and logs which one is in use), checks that
 * namespaces can be created, creates mayfly's cgroups (moving the calling
 * process into its own, see cgroup.h) and removes cgroups left behind by
 * an earlier server that died. Sandboxes get uids from the default range
 * and no budget until told otherwise. */
int sandbox_system_init(sandbox_system_t **out, mf_error_t *err);
sandbox_cgroup_version_t sandbox_system_cgroup_version(const sandbox_system_t *sys);

/* Sandboxes run as uids (and the same gids) first .. first+count-1, one
 * per sandbox. Refused (EINVAL, with the reason) when the range holds 0 or
 * 65534 (nobody), passes 2^32-2, overlaps an account of /etc/passwd or
 * /etc/group or subordinate ids of /etc/subuid or /etc/subgid, or is not
 * mapped in the user namespace the server runs in; EBUSY once sandboxes
 * exist. Without root this changes nothing: sandboxes run as the server's
 * own uid (uid 0 in their user namespace). */
int sandbox_system_set_uid_range(sandbox_system_t *sys, uint32_t first, uint32_t count,
                                 mf_error_t *err);

/* What the machine gives the server: memory (MemTotal, or less where the
 * cgroup the server started in, or one above it, has a lower limit), the
 * processes it may have (the least of pid_max, threads-max and such a
 * cgroup's pids limit) and the CPUs it may run on. */
typedef struct sandbox_capacity {
    uint64_t memory_mb;
    uint64_t max_pids;
    unsigned cpus;
} sandbox_capacity_t;

void sandbox_system_capacity(const sandbox_system_t *sys, sandbox_capacity_t *out);
/* The CPU time the server and every sandbox have used so far, in ns (from
 * the server's cgroups): 0, or -errno (-ENOTSUP where the cgroups do not
 * account CPU). */
int sandbox_system_cpu_ns(sandbox_system_t *sys, uint64_t *ns);

/* The budget of all sandboxes together, enforced by the kernel as limits
 * on their common parent cgroup, so that it holds even if admission is
 * wrong: memory_mb for the instances, plus SANDBOX_POOL_MEMORY_MB for each
 * sandbox the pool keeps prepared (added as the pool and its zygotes are
 * set up), and max_pids for every process of every sandbox, prepared ones
 * included. 0 lifts a limit. Past the memory limit the kernel kills a
 * process in some sandbox (its oom_kills counts it); past the pids limit
 * fork fails with EAGAIN inside. */
int sandbox_system_set_budget(sandbox_system_t *sys, uint64_t memory_mb, uint64_t max_pids,
                              mf_error_t *err);
/* Keeps count sandboxes prepared ahead (cloned, in their cgroup, loopback
 * listening, the whole root built with runtime_dir at /var/runtime and an
 * empty /var/task), refilled by a thread of the system's. sandbox_spawn
 * then only does the function's part: its code (attached with move_mount),
 * /tmp's size, limits, identity and exec. Spawns whose max_pids, api_port
 * or runtime_dir differ from the pool's take the direct path. Needs root
 * (open_tree); a server without it keeps no pool. */
int sandbox_system_start_pool(sandbox_system_t *sys, unsigned count, unsigned max_pids,
                              const char *runtime_dir, mf_error_t *err);
/* Adds zygotes of a kind to the pool: sandboxes whose whole root is built
 * (with runtime_dir at /var/runtime and an empty /var/task) and whose
 * runtime is already running, exec'd from argv with envp plus
 * MAYFLY_ZYGOTE_FD. That runtime, once initialised, writes one byte to
 * the descriptor and waits there for the function's environment (envp
 * strings, NUL-separated, one message). Handing one out mounts the code
 * (an open_tree clone, passed in) and sends the environment: no exec and
 * no interpreter start on the cold path. Needs root (open_tree). */
int sandbox_system_add_zygotes(sandbox_system_t *sys, const char *kind, char *const *argv,
                               char *const *envp, const char *runtime_dir, unsigned count,
                               mf_error_t *err);
/* How many sandboxes of a kind (NULL: generic) wait ready in the pool. */
unsigned sandbox_system_pool_ready(sandbox_system_t *sys, const char *kind);
/* Removes mayfly's parent cgroup (after every sandbox is destroyed). */
void sandbox_system_free(sandbox_system_t *sys);

/* Creates the sandbox and starts cfg->argv in it. Returns once the child
 * has set everything up and is about to exec, or fails with the name of
 * the step that failed and its errno (e.g. "sandbox: pivot_root: Operation
 * not permitted"); a failed start leaves nothing behind. All descriptors
 * are O_CLOEXEC and non-blocking.
 *
 * It blocks for the few milliseconds the child needs (the child reports
 * over a socket; nothing sleeps or polls). The sandbox's init gets
 * PR_SET_PDEATHSIG, which fires when the *thread* that called this exits:
 * call it from a thread that lives as long as the sandbox should (the loop
 * thread, or a libuv pool thread, which lives until exit). The code in
 * code_dir is read by the sandbox's own uid inside: it must be
 * world-readable. Fails with EAGAIN when every uid of the range is taken.
 *
 * The sandbox starts without a CPU quota (up to every CPU, for a quick
 * runtime start, as Lambda boosts init) and with its CPU weight and memory
 * limit from memory_mb.
 *
 * *out is always initialised (descriptors -1), so sandbox_destroy may be
 * called on it after a failure too. sandbox_destroy closes every
 * descriptor field that is not -1: a caller that hands one over (e.g.
 * uv_tcp_open(api_listen_fd), after which uv_close closes it) must set the
 * field to -1. */
int sandbox_spawn(sandbox_system_t *sys, const sandbox_config_t *cfg, sandbox_t *out,
                  mf_error_t *err);
/* What sandbox_stats reads: each is a file read, and the warm path reads
 * only what it needs. */
#define SANDBOX_STAT_MEMORY 1u
#define SANDBOX_STAT_CPU 2u
#define SANDBOX_STAT_OOM 4u
#define SANDBOX_STAT_ALL 7u

/* Fills the fields of *out that what asks for (the others are 0). */
int sandbox_stats(const sandbox_t *sb, unsigned what, sandbox_stats_t *out);
/* How long the sandbox's runtime (PID 1, or the zygote's runtime under
 * PID 1) has waited, runnable, for a CPU (the kernel's schedstat), so far: a call's share of it says whether
 * more instances beside it would only queue for the same CPUs. -ESRCH once
 * it is gone; other errors where the kernel keeps no schedstats. */
int sandbox_cpu_wait(sandbox_t *sb, uint64_t *wait_ns);
/* Starts a new high-water mark for memory_peak_bytes (where the kernel
 * allows it; otherwise the peak is over the sandbox's life). */
void sandbox_reset_peak(sandbox_t *sb);
/* Caps the sandbox's CPU in proportion to its memory, as on Lambda: 1769
 * MB buys one CPU, and no sandbox gets more than the machine's CPUs
 * (quota memory_mb/1769 × SANDBOX_CPU_PERIOD_US per period, at least the
 * kernel's 1 ms; cpu.cfs_quota_us on v1, cpu.max on v2), on top of its
 * weight. Call it once the runtime has initialised: until then the
 * sandbox may use every CPU, so a cold start is not slowed down. A pooled
 * sandbox gets its function's quota here too. Without a cpu controller it
 * does nothing and returns 0. cpu_mb, when not 0, is the memory the quota
 * is for instead of the sandbox's own (an instance serving many calls at
 * once gets each call's share). */
int sandbox_cap_cpu(sandbox_t *sb, unsigned cpu_mb, mf_error_t *err);
/* Freezes every process of the sandbox (v1 freezer.state FROZEN, v2
 * cgroup.freeze 1): one write to a file kept open, cheap enough for every
 * call, so that nothing the function left running after its answer uses
 * CPU while the instance is idle. It takes effect asynchronously: the
 * processes stop within moments. sandbox_thaw lets them run again.
 * sandbox_kill and sandbox_destroy work on a frozen sandbox (on v1 a
 * frozen process does not die of SIGKILL until thawed: they thaw it after
 * the kill). Both return 0, or -ENOTSUP when there is no freezer (a v1
 * host without the freezer hierarchy), or the write's error. */
int sandbox_freeze(sandbox_t *sb);
int sandbox_thaw(sandbox_t *sb);
/* SIGKILLs every process in the sandbox: its init through the pidfd (the
 * kernel then kills the whole PID namespace, and nothing new can start in
 * it), plus cgroup.kill on v2, then thaws it if it was frozen. Does not
 * wait: the pidfd becomes readable once it is over. */
void sandbox_kill(sandbox_t *sb);
/* Collects PID 1 once it has exited (pidfd readable); fills the function
 * process's wait status (as from waitpid) when PID 1 reported it, else
 * PID 1's own status, and sets sb->exec_errno. Returns 0, or -EAGAIN if
 * PID 1 is still running. */
int sandbox_reap(sandbox_t *sb, int *wstatus);
/* Kills what is left, reaps it, removes the cgroup, gives the uid back,
 * closes descriptors. Idempotent. Stop watching the descriptors (uv_close)
 * before calling it: their numbers may be reused right after. */
void sandbox_destroy(sandbox_t *sb);

/* Runs fn(ud) on the calling thread inside the sandbox's network namespace
 * and returns the thread to its own: sockets fn creates stay in the
 * sandbox's namespace wherever their descriptors go (the egress gateway's
 * listeners, its nftables and nflog sockets). fn returns 0 or -errno; a
 * negative one comes back with err set to its strerror. -ESRCH when the
 * sandbox's PID 1 is gone. */
int sandbox_enter_net(const sandbox_t *sb, int (*fn)(void *ud), void *ud, mf_error_t *err);

#endif
