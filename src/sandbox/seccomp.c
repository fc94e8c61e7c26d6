/* The sandbox's seccomp filter, compiled once with libseccomp.
 *
 * The policy is a deny list on top of the namespaces, the unprivileged
 * identity and the empty capability sets: most of the calls below already
 * fail for a process without capabilities, and the filter is the second
 * wall for when a kernel bug makes one of them reachable anyway (the
 * reasoning of Docker's default profile). Everything else is allowed, so
 * stock language runtimes work unchanged.
 *
 * Sockets are the exception: an allow list of families. The network
 * namespace confines IPv4 and IPv6, but not every family is bound to one
 * (AF_VSOCK shares the host's vsock port space, whatever the namespace),
 * and each family is a protocol implementation of the kernel's a function
 * could reach. A function needs Unix sockets, IPv4, IPv6 and the routing
 * netlink (glibc's getaddrinfo asks it which addresses exist, for
 * AI_ADDRCONFIG; getifaddrs too); the rest fails as on a kernel built
 * without them, with EAFNOSUPPORT, and the other netlink protocols (audit,
 * uevents, sock_diag…) with EPROTONOSUPPORT.
 *
 * libseccomp allocates while building, which the child must not do (see
 * internal.h), so the filter is exported as a raw BPF program here and the
 * child loads it with a single prctl(). */
#include <errno.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <sched.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cleanup.h"
#include "core/xalloc.h"
#include "sandbox/internal.h"

/* Answered with EPERM. */
/* clang-format off */
static const char *const denied[] = {
    /* The file system view is fixed once the sandbox starts. */
    "mount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount", "fspick",
    "move_mount", "open_tree", "mount_setattr",
    /* No looking into or taking from other processes. */
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd",
    /* No new namespaces (clone is filtered by flag below). */
    "unshare", "setns",
    /* Kernel attack surface a function has no use for. */
    "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key",
    "open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "quotactl",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    /* Machine-wide state. */
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
    "swapon", "swapoff", "acct", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "iopl", "ioperm", "syslog", "vhangup",
};
/* clang-format on */

/* clone() with any of these would make a new namespace. CLONE_NEWTIME is
 * left out: in clone()'s first argument its bit is part of the exit signal
 * (it only means "new time namespace" to unshare and clone3). */
static const unsigned long clone_new_flags[] = {
    CLONE_NEWNS,   CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
    CLONE_NEWUSER, CLONE_NEWPID,    CLONE_NEWNET,
};

/* Whether a socket family is one a function may use. */
static bool family_allowed(unsigned long family)
{
    return family == AF_UNIX || family == AF_INET || family == AF_INET6 || family == AF_NETLINK;
}

/* The family rules for socket() and socketpair(), whose first argument is
 * the family: every value below AF_MAX that is not allowed is refused by a
 * rule of its own, and everything from AF_MAX up by one more (a comparison
 * of the whole 64-bit argument, so a value with high bits set is refused
 * too). The rules of a call are ORed, and only socket() and socketpair()
 * pass through these comparisons: no other system call pays for them. For
 * socket(), the netlink protocols other than NETLINK_ROUTE are refused as
 * well. */
static int add_family_rules(scmp_filter_ctx ctx, int nr, bool protocols)
{
    int r = 0;
    for (unsigned long f = 0; r == 0 && f < AF_MAX; f++)
        if (!family_allowed(f))
            r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), nr, 1, SCMP_A0(SCMP_CMP_EQ, f));
    if (r == 0)
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), nr, 1,
                             SCMP_A0(SCMP_CMP_GE, (scmp_datum_t)AF_MAX));
    if (r == 0 && protocols)
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPROTONOSUPPORT), nr, 2,
                             SCMP_A0(SCMP_CMP_EQ, AF_NETLINK), SCMP_A2(SCMP_CMP_NE, NETLINK_ROUTE));
    return r;
}

int sandbox__seccomp_build(struct sock_fprog *out, mf_error_t *err)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        return mf_error_set(err, ENOMEM, "seccomp_init");
    int r = 0;
    const char *what = "seccomp_attr_set";

    /* A system call made through another ABI (int 0x80 on x86-64) would
     * bypass rules written for the native numbers: kill the process. */
    r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    for (size_t i = 0; r == 0 && i < sizeof denied / sizeof *denied; i++) {
        int nr = seccomp_syscall_resolve_name(denied[i]);
        if (nr == __NR_SCMP_ERROR || nr < 0)
            continue; /* not a system call on this architecture */
        what = denied[i];
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
    }
    /* clone's flags are its first argument on x86-64 and arm64 (s390 swaps
     * the first two; mayfly does not target it). One rule per flag: the
     * rules of a call are ORed, the conditions of a rule ANDed. */
    for (size_t i = 0; r == 0 && i < sizeof clone_new_flags / sizeof *clone_new_flags; i++) {
        what = "clone";
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                             SCMP_A0(SCMP_CMP_MASKED_EQ, clone_new_flags[i], clone_new_flags[i]));
    }
    /* clone3 passes its flags in memory, out of a filter's reach. ENOSYS
     * makes glibc and other libcs fall back to clone, which is filtered. */
    if (r == 0) {
        what = "clone3";
        int nr = seccomp_syscall_resolve_name("clone3");
        if (nr != __NR_SCMP_ERROR && nr >= 0)
            r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
    }
    if (r == 0) {
        what = "socket";
        r = add_family_rules(ctx, SCMP_SYS(socket), true);
    }
    if (r == 0) {
        what = "socketpair";
        r = add_family_rules(ctx, SCMP_SYS(socketpair), false);
    }
    if (r < 0) {
        seccomp_release(ctx);
        return mf_error_set(err, -r, "seccomp: rule for %s", what);
    }

    cleanup_close int fd = memfd_create("mayfly-seccomp", MFD_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        seccomp_release(ctx);
        return mf_error_set(err, e, "seccomp: memfd_create");
    }
    r = seccomp_export_bpf(ctx, fd);
    seccomp_release(ctx);
    if (r < 0)
        return mf_error_set(err, -r, "seccomp: export the filter");
    struct stat st;
    if (fstat(fd, &st) < 0)
        return mf_error_set(err, errno, "seccomp: fstat");
    size_t len = (size_t)st.st_size;
    if (len == 0 || len % sizeof(struct sock_filter) ||
        len / sizeof(struct sock_filter) > BPF_MAXINSNS)
        return mf_error_set(err, EINVAL, "seccomp: exported program has %zu bytes", len);
    struct sock_filter *prog = xmalloc(len);
    if (pread(fd, prog, len, 0) != (ssize_t)len) {
        free(prog);
        return mf_error_set(err, EIO, "seccomp: read the exported filter");
    }
    out->filter = prog;
    out->len = (unsigned short)(len / sizeof(struct sock_filter));
    return 0;
}

void sandbox__seccomp_free(struct sock_fprog *prog)
{
    free(prog->filter);
    prog->filter = NULL;
    prog->len = 0;
}
