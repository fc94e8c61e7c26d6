/* What the files of src/sandbox/ share and nothing else sees: the layout of
 * sandbox_system_t, the arguments the parent prepares for the child, and the
 * child-side steps (init.c, mounts.c, netns.c).
 *
 * Everything the child needs is computed by the parent before clone(): the
 * child runs in a copy of a possibly multi-threaded server whose other
 * threads may have held the malloc or stdio locks at the moment of the
 * clone, so between clone() and execve() it only makes system calls and
 * touches memory that already exists (the rule posix_spawn and crun follow). */
#ifndef MAYFLY_SANDBOX_INTERNAL_H
#define MAYFLY_SANDBOX_INTERNAL_H

#include <linux/filter.h>
#include <pthread.h>
#include <stdbool.h>
#include <spawn.h>
#include <stddef.h>
#include <sys/capability.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "core/buf.h"
#include "core/error.h"
#include "sandbox/sandbox.h"

/* The user name each sandbox's uid has in its /etc/passwd (Lambda's are
 * sbx_userNNNN), so that getpwuid, `id` and Node's os.userInfo() work. */
#define SANDBOX__USER "sbx_user"

/* How long sandbox_spawn waits for the child to report. The child only
 * makes local system calls, so this is a guard against a wedged kernel
 * path (a hung network file system under code_dir), not a tuning knob. */
#define SANDBOX__SETUP_TIMEOUT_MS 10000

struct sandbox__cgsys;

/* A host path the new root reproduces: a symlink is recreated as the same
 * symlink (no mount needed), a directory or file is bind-mounted read-only. */
typedef enum {
    SANDBOX__HOST_MISSING = 0,
    SANDBOX__HOST_SYMLINK,
    SANDBOX__HOST_DIR,
    SANDBOX__HOST_FILE,
} sandbox__host_kind_t;

typedef struct sandbox__host_entry {
    const char *host;   /* absolute path on the host, e.g. "/lib64" */
    const char *inside; /* the same path relative to the new root: "lib64" */
    sandbox__host_kind_t kind;
    char *link;      /* the symlink's target when kind is SYMLINK */
    char *step_bind; /* "bind /lib64": the step name a failure reports */
    char *step_ro;   /* "remount /lib64 read-only" */
    char *owned;     /* host, when it was found at start rather than a constant */
} sandbox__host_entry_t;

#define SANDBOX__MAX_HOST_ENTRIES 10

struct sandbox__pool;

/* The user ids sandboxes run as: one of its own per sandbox, so that
 * per-user kernel quotas (inotify instances, POSIX message queue bytes,
 * RLIMIT_NPROC) are not shared between functions. Taken by the loop
 * thread and the pool's thread alike, hence the lock. */
typedef struct sandbox__uids {
    pthread_mutex_t lock;
    uint32_t first, count;
    uint32_t next; /* where the search for a free one starts: recently
                      freed ids are the last to be reused */
    uint32_t in_use;
    uint64_t *used; /* a bit per id of the range */
} sandbox__uids_t;

struct sandbox_system {
    struct sandbox__cgsys *cg;
    struct sandbox__pool *pool; /* prepared sandboxes, when started */
    /* An empty host directory the child mounts its new root's tmpfs on.
     * Inside the child's private mount namespace that hides nothing anyone
     * else sees, and no source the child binds can live below it. */
    char *root_dir;
    sandbox__host_entry_t top[SANDBOX__MAX_HOST_ENTRIES]; /* bin, sbin, lib… */
    size_t ntop;
    sandbox__host_entry_t etc[SANDBOX__MAX_HOST_ENTRIES]; /* ld.so.cache… */
    size_t netc;
    /* The seccomp program, compiled once by libseccomp at start so that the
     * child installs it with one system call and no allocation. */
    struct sock_fprog seccomp;
    /* An empty capability set, allocated once for the same reason. */
    cap_t no_caps;
    /* How init starts the function (its stdout and stderr, its directory):
     * built once here because building it allocates, and init is a copy of
     * a threaded server in which another thread may have held malloc's
     * lock at the clone. */
    posix_spawn_file_actions_t spawn_actions;
    bool spawn_actions_ready;
    int last_cap;
    /* Not root: the sandbox gets a user namespace mapping 0 to our uid. */
    bool userns;
    uid_t uid;
    gid_t gid;
    sandbox__uids_t uids; /* as root */
    /* Inside, /bin/sh is bash, as on Lambda's images: sh_inside is where
     * the host's sh is found in the new root ("usr/bin/sh"), bash_host the
     * bash bound over it. NULL when the host's sh is bash already, or the
     * host has no bash. */
    char *sh_inside;
    char *bash_host;
    /* The budget of all sandboxes together (0: none) and what prepared
     * sandboxes add to the memory part, SANDBOX_POOL_MEMORY_MB each. */
    uint64_t budget_memory_mb, budget_pids;
    uint64_t pool_memory_mb;
};

/* What the parent hands the child across clone(). */
typedef struct sandbox__child {
    const sandbox_system_t *sys;
    const sandbox_config_t *cfg;
    int sync_fd;        /* the child's end of the SEQPACKET socketpair */
    int out_fd, err_fd; /* write ends of the stdout and stderr pipes */
    bool pooled;        /* prepared ahead: cfg arrives later, as a message */
    bool zygote;        /* pooled, with its runtime started from cfg->argv */
    uid_t uid;          /* who the function runs as (as root) */
    gid_t gid;
    char tmp_opts[64];  /* "size=64m,mode=1777" */
    char hosts[384];    /* the sandbox's /etc/hosts */
    char passwd[256];   /* its /etc/passwd and /etc/group, naming uid and gid */
    char group[128];
    rlim_t fsize;       /* RLIMIT_FSIZE: the /tmp size in bytes */
    bool hold;          /* after the ready report, wait for the parent's go
                           (cfg->net_setup runs meanwhile) before the function */
    /* The volumes: detached mounts the parent made (sandbox__volume_trees),
     * already idmapped and flagged, and where each goes, relative to the
     * new root ("mnt/NAME"). A pooled child gets them with its function. */
    unsigned n_volumes;
    int volume_fds[SANDBOX_VOLUMES_MAX];
    char volume_dirs[SANDBOX_VOLUMES_MAX][72];
} sandbox__child_t;

/* A pooled child's word that its generic part is done and it now waits
 * for its function (a one-byte message). */
#define SANDBOX__PREPARED 'p'
/* The descriptor a zygote's runtime waits on for its environment. */
#define SANDBOX__ZYGOTE_FD 3
/* The most a specialisation message may hold (argv, envp and paths). */
#define SANDBOX__SPEC_MAX (128 * 1024)
#define SANDBOX__SPEC_MAX_ARGV 64
#define SANDBOX__SPEC_MAX_ENVP 1024

/* What init sends the server when the function's process is over (or
 * could not be started): its wait status, and the errno of the exec that
 * failed (0 when the exec worked). */
typedef struct sandbox__exit {
    int wstatus;
    int exec_errno;
} sandbox__exit_t;

/* The child's one message to the parent during setup. On success it
 * carries the listening socket as SCM_RIGHTS; on failure the step that
 * failed and its errno. */
typedef struct sandbox__report {
    int ok;
    int err;
    char step[96];
} sandbox__report_t;

/* sandbox.c: the specialisation message: the strings of cfg and the
 * computed child fields, NUL-separated (parent side). */
void sandbox__spec_encode(buf_t *out, const sandbox_config_t *cfg, const sandbox__child_t *c);
/* Decodes it in the child into static storage; returns 0 or -EINVAL. */
int sandbox__spec_decode(char *msg, size_t len, sandbox__child_t *c);

/* sandbox.c: stops the pool's thread and destroys what it prepared. */
void sandbox__pool_free(struct sandbox__pool *pool);

/* init.c: builds the actions init starts the function with (parent side,
 * once: it allocates). Returns 0 or a negative errno. */
int sandbox__spawn_actions_build(posix_spawn_file_actions_t *fa);
/* init.c: the child's whole life after clone(); never returns. */
_Noreturn void sandbox__child_main(sandbox__child_t *c);
/* init.c: reports {step, errno} to the parent and exits 127 (bubblewrap's
 * die_with_error). Usable from every child-side step. */
_Noreturn void sandbox__child_die(const char *step);

/* mounts.c: builds the new root and pivots into it (child side): the base
 * (what every sandbox has), then the finish (the function's code, /tmp of
 * its size, /etc/hosts with its host name, the pivot). A pooled sandbox
 * does the base ahead of time and the finish when it is handed out. */
void sandbox__child_mounts(const sandbox__child_t *c);
void sandbox__child_mounts_base(const sandbox__child_t *c);
void sandbox__child_mounts_finish(const sandbox__child_t *c);

/* volumes.c (parent side): one detached mount per volume of cfg, for a
 * sandbox running as uid and gid: a clone of the volume's root mount,
 * idmapped so that SANDBOX_VOLUME_OWNER on disk is uid and gid inside,
 * nosuid, nodev, read-only where asked. Fills c->volume_fds (O_CLOEXEC),
 * volume_dirs and n_volumes, and raises c->fsize to the largest volume's
 * size. On failure nothing is left open. */
int sandbox__volume_trees(const sandbox_config_t *cfg, uid_t uid, gid_t gid,
                          sandbox__child_t *c, mf_error_t *err);
/* Closes what sandbox__volume_trees opened in c (the parent's copies once
 * the child has its own, or on a failure). */
void sandbox__volume_trees_close(sandbox__child_t *c);
/* Checks cfg's volumes (count, absolute sources, targets one level under
 * /mnt, no target twice). */
int sandbox__volumes_check(const sandbox_config_t *cfg, mf_error_t *err);

/* mounts.c: attaches the volumes under mnt of the new root (child side,
 * with the root as the working directory, before or after the pivot): a
 * small tmpfs on mnt holds their mount points and is made read-only once
 * they are in place. Does nothing without volumes. */
void sandbox__child_mount_volumes(const sandbox__child_t *c);

/* netns.c: brings up lo, gives it the sandbox's own addresses and
 * returns a socket listening on 127.0.0.1:port inside the new network
 * namespace (child side). */
int sandbox__child_listen(uint16_t port);

/* The addresses lo gets besides 127.0.0.1 and ::1. glibc's getaddrinfo
 * with AI_ADDRCONFIG (the default of many clients) treats a family as
 * configured only when an address of it is not loopback: without these,
 * asking for IPv4 returns nothing, even for the literal 127.0.0.1. They
 * lead nowhere (a /32 and a /128 on lo add no route out), and they are
 * the ones the planned egress gateway routes from. */
#define SANDBOX__ADDR4 "10.255.255.2"
#define SANDBOX__ADDR6 "fd00:6d66::2"

/* seccomp.c: compiles the filter into a BPF program (parent side). */
int sandbox__seccomp_build(struct sock_fprog *out, mf_error_t *err);
void sandbox__seccomp_free(struct sock_fprog *prog);

#endif
