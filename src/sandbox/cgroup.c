/* Control groups for sandboxes: v1 and v2. See cgroup.h for the layout.
 *
 * Every per-sandbox operation works relative to a descriptor of the
 * server's mayfly/<tag>/sandboxes directory (openat, mkdirat, unlinkat),
 * so the per-invocation path never walks /sys/fs/cgroup again, and the
 * files sandbox_stats reads and the freezer writes are opened once and
 * used with pread and pwrite. */
#include "sandbox/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/cleanup.h"
#include "core/cpus.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/xalloc.h"

/* The freezer comes first: on v1 a frozen leftover of a dead server dies
 * of SIGKILL only once thawed, so its hierarchy is cleaned up before the
 * others, whose cgroups can be removed only when their processes are gone. */
enum { CTL_FREEZER, CTL_MEMORY, CTL_CPU, CTL_CPUACCT, CTL_PIDS, CTL_COUNT };
static const char *const ctl_names[CTL_COUNT] = {"freezer", "memory", "cpu", "cpuacct", "pids"};

/* Lambda's rule: 1769 MB of memory buys one full vCPU. */
#define MB_PER_CPU 1769

/* The server's CPU weight against all sandboxes together (cgroup.h): v1
 * cpu.shares and v2 cpu.weight, four to one. The server mostly idles, so
 * this costs the sandboxes nothing until it needs the CPU, and then it
 * gets 80% of what is contended. */
#define SERVER_CPU_SHARES "4096"
#define SANDBOXES_CPU_SHARES "1024"
#define SERVER_CPU_WEIGHT "400"
#define SANDBOXES_CPU_WEIGHT "100"

/* A sandbox prepared ahead (sandbox__cg_background), against the
 * smallest instance's 74 shares (128 MB) or weight 7: an eighth or less.
 * It starts only on CPU that instances leave, yet a JVM still gets ready
 * within the pool's set-up timeout while every CPU is busy. */
#define BACKGROUND_CPU_SHARES 8
#define BACKGROUND_CPU_WEIGHT 1

/* The kernel's smallest CFS quota. */
#define MIN_QUOTA_US 1000

typedef struct hier {
    char *mnt;    /* the hierarchy's mount point */
    char *origin; /* the server's cgroup when it started: it goes back there */
    char *mayfly; /* <base>/mayfly */
    char *path;   /* <base>/mayfly/<tag> */
    char *boxes;  /* <base>/mayfly/<tag>/sandboxes */
    int fd;       /* O_PATH descriptor of boxes */
    bool moved;   /* the server is in <tag>/server */
} hier_t;

struct sandbox__cgsys {
    sandbox_cgroup_version_t version;
    char tag[64];
    hier_t hier[CTL_COUNT];
    size_t nhier;
    int ctl[CTL_COUNT]; /* index into hier, or -1 when the controller is missing */
    unsigned cpus;
    uint64_t limit_memory, limit_pids; /* on the server's cgroup and above */
    /* v1 */
    bool memsw;          /* memory.memsw.* exists (swap accounting is on) */
    bool oom_kill_field; /* memory.oom_control has the oom_kill counter */
    /* v2 */
    bool swap_max, peak, kill_file;
    /* <tag>'s CPU time (v1 cpuacct.usage, v2 cpu.stat): the server's and
     * every sandbox's; -errno when it cannot be opened. */
    int usage_fd;
};

struct sandbox__cg {
    struct sandbox__cgsys *sys;
    unsigned memory_mb;      /* the limit last written */
    bool background;         /* sandbox__cg_background: the lowest CPU weight */
    bool capped;             /* sandbox__cg_cap_cpu was called */
    unsigned cpu_mb;         /* the memory its CPU quota is for (0: its memory_mb) */
    char *id;
    char *path;
    bool created[CTL_COUNT]; /* per hierarchy */
    int peak_fd, cpu_fd, oom_fd, freeze_fd;
    bool peak_writable;
};

/* ---- small file helpers ---------------------------------------------- */

static int write_at(int dirfd, const char *name, const char *value)
{
    cleanup_close int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = strlen(value);
    ssize_t n = write(fd, value, len);
    if (n < 0)
        return -errno;
    return (size_t)n == len ? 0 : -EIO;
}

static int write_atf(int dirfd, const char *id, const char *file, const char *value)
{
    char name[512];
    if ((size_t)snprintf(name, sizeof name, "%s/%s", id, file) >= sizeof name)
        return -ENAMETOOLONG;
    return write_at(dirfd, name, value);
}

static int open_atf(int dirfd, const char *id, const char *file, int flags)
{
    char name[512];
    if ((size_t)snprintf(name, sizeof name, "%s/%s", id, file) >= sizeof name) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return openat(dirfd, name, flags | O_CLOEXEC);
}

/* Reads a small cgroup file from the start into buf (NUL-terminated). */
static ssize_t pread_str(int fd, char *buf, size_t size)
{
    if (fd < 0)
        return -EBADF;
    ssize_t n = pread(fd, buf, size - 1, 0);
    if (n < 0)
        return -errno;
    buf[n] = '\0';
    return n;
}

/* Finds "key value" in a flat-keyed file such as memory.events. */
static bool keyed_u64(const char *text, const char *key, uint64_t *out)
{
    size_t klen = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (!strncmp(p, key, klen) && p[klen] == ' ') {
            *out = strtoull(p + klen + 1, NULL, 10);
            return true;
        }
    }
    return false;
}

static bool exists_at(int dirfd, const char *name)
{
    return faccessat(dirfd, name, F_OK, 0) == 0;
}

/* ---- discovering the hierarchies --------------------------------------- */

/* A process's start time (clock ticks since boot, /proc/PID/stat field 22):
 * with the pid it names one process for the life of the machine. */
static int proc_start_time(pid_t pid, unsigned long long *out)
{
    char path[64], text[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, text, sizeof text - 1);
    if (n <= 0)
        return n < 0 ? -errno : -EIO;
    text[n] = '\0';
    /* The command name may hold spaces and parentheses: fields count from
     * the last ')'. It is followed by field 3 (state); we want field 22. */
    char *p = strrchr(text, ')');
    if (!p)
        return -EIO;
    p++;
    /* A server killed a moment ago may still be a zombie: it is gone. */
    if (p[0] == ' ' && (p[1] == 'Z' || p[1] == 'X'))
        return -ESRCH;
    for (int field = 2; field < 21 && p; field++)
        p = strchr(p + 1, ' ');
    if (!p)
        return -EIO;
    *out = strtoull(p + 1, NULL, 10);
    return 0;
}

/* Splits /proc/self/mountinfo lines into the fields we need. */
typedef struct mount_line {
    char *root, *mountpoint, *fstype, *superopts;
} mount_line_t;

static bool parse_mount_line(char *line, mount_line_t *m)
{
    char *field[6] = {0};
    char *save = NULL, *tok = strtok_r(line, " ", &save);
    int i = 0;
    /* id parent major:minor root mountpoint options [optional…] - fstype source superopts */
    for (; tok && i < 6; tok = strtok_r(NULL, " ", &save))
        field[i++] = tok;
    if (i < 6)
        return false;
    m->root = field[3];
    m->mountpoint = field[4];
    while (tok && strcmp(tok, "-"))
        tok = strtok_r(NULL, " ", &save);
    if (!tok)
        return false;
    m->fstype = strtok_r(NULL, " ", &save);
    strtok_r(NULL, " ", &save);
    m->superopts = strtok_r(NULL, " \n", &save);
    return m->fstype && m->superopts;
}

/* Whether word appears in a list separated by sep ("rw,memory" or
 * "cpu memory pids"). */
static bool word_listed(const char *list, const char *word, char sep)
{
    size_t len = strlen(word);
    for (const char *p = list; p; p = strchr(p, sep), p = p ? p + 1 : NULL)
        if (!strncmp(p, word, len) && (p[len] == sep || p[len] == '\0' || p[len] == '\n'))
            return true;
    return false;
}

/* The server's own cgroup in the hierarchy holding ctl ("" for v2's
 * "0::" line), from /proc/self/cgroup. */
static char *own_cgroup(const char *cgroup_file, const char *ctl)
{
    cleanup_free char *copy = xstrdup(cgroup_file);
    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = '\0';
        const char *ctls = c1 + 1;
        if (*ctl ? word_listed(ctls, ctl, ',') : !*ctls)
            return xstrdup(c2 + 1);
    }
    return NULL;
}

/* The directory of the server's own cgroup as seen through a mount whose
 * root is mnt_root (a container sees only part of the tree). */
static char *own_dir(const char *mountpoint, const char *mnt_root, const char *own)
{
    size_t rl = strlen(mnt_root);
    const char *rel = "";
    if (own && !strcmp(mnt_root, "/"))
        rel = own;
    else if (own && !strncmp(own, mnt_root, rl) && (own[rl] == '/' || own[rl] == '\0'))
        rel = own + rl;
    if (!strcmp(rel, "/"))
        rel = "";
    return xasprintf("%s%s", mountpoint, rel);
}

/* ---- limits above the server ------------------------------------------ */

/* A limit file's value: a number, or "max" (v2), or v1's "unlimited"
 * (the largest page-aligned 63-bit number): UINT64_MAX for none. */
static uint64_t parse_limit(const char *text)
{
    if (!strncmp(text, "max", 3))
        return UINT64_MAX;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text || v >= (1ull << 62))
        return UINT64_MAX;
    return v;
}

/* The lowest value of file in dir and every cgroup above it, up to the
 * hierarchy's mount point. */
static uint64_t lowest_limit(const char *mnt, const char *dir, const char *file)
{
    uint64_t low = UINT64_MAX;
    cleanup_free char *d = xstrdup(dir);
    size_t ml = strlen(mnt);
    for (;;) {
        char path[4096], text[64];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", d, file) < sizeof path) {
            cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (pread_str(fd, text, sizeof text) > 0) {
                uint64_t v = parse_limit(text);
                if (v < low)
                    low = v;
            }
        }
        char *slash = strrchr(d, '/');
        if (strlen(d) <= ml || !slash || (size_t)(slash - d) < ml)
            return low;
        *slash = '\0';
    }
}

/* ---- killing and removing ---------------------------------------------- */

/* SIGKILLs every process listed in dir/cgroup.procs but ourselves;
 * returns how many it saw. Reading the pids and killing them is racy
 * against pid reuse, which is why this is only the fallback: a sandbox is
 * normally killed through its init's pidfd (the kernel then kills its
 * whole PID namespace) or v2's cgroup.kill. */
static int sweep_procs(int dirfd, const char *dir)
{
    char name[512];
    snprintf(name, sizeof name, "%s/cgroup.procs", dir);
    cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char text[4096];
    int found = 0;
    ssize_t n;
    size_t keep = 0;
    pid_t self = getpid();
    while ((n = read(fd, text + keep, sizeof text - 1 - keep)) > 0) {
        size_t len = keep + (size_t)n;
        text[len] = '\0';
        char *p = text, *nl;
        while ((nl = strchr(p, '\n'))) {
            *nl = '\0';
            pid_t pid = (pid_t)strtol(p, NULL, 10);
            if (pid > 0 && pid != self) {
                kill(pid, SIGKILL);
                found++;
            }
            p = nl + 1;
        }
        keep = len - (size_t)(p - text);
        memmove(text, p, keep);
    }
    return found;
}

/* Lets the frozen processes of dir run again (if it has a freezer): on v1
 * a frozen process does not act on SIGKILL until it is thawed. */
static void thaw_at(int dirfd, const char *dir)
{
    if (write_atf(dirfd, dir, "freezer.state", "THAWED") == -ENOENT)
        write_atf(dirfd, dir, "cgroup.freeze", "0");
}

/* rmdir can fail with EBUSY for a moment after the last process of a
 * cgroup was reaped (its exit is still being accounted); retry for up to
 * about half a second, killing whatever is listed when sweep is set (a
 * sandbox's cgroup: what is left there must go; not the server's own,
 * where a child the server started may still live). */
static int remove_cgroup(int dirfd, const char *name, bool sweep)
{
    for (int attempt = 0;; attempt++) {
        if (unlinkat(dirfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
            return 0;
        if (errno != EBUSY || attempt >= 500)
            return -errno;
        if (sweep)
            sweep_procs(dirfd, name);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

/* Kills what is in dirfd/name and every cgroup below it, and removes them
 * all, deepest first (a dead server's <tag>: server, sandboxes and the
 * sandboxes in it, or the older layout's sandboxes right below <tag>). */
static void remove_tree(int parentfd, const char *name, sandbox_cgroup_version_t version, int depth)
{
    int fd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_type == DT_DIR && de->d_name[0] != '.' && depth < 8)
            remove_tree(dirfd(d), de->d_name, version, depth + 1);
    closedir(d);
    if (version != SANDBOX_CGROUP_V2 || write_atf(parentfd, name, "cgroup.kill", "1") < 0)
        sweep_procs(parentfd, name);
    thaw_at(parentfd, name);
    int r = remove_cgroup(parentfd, name, true);
    if (r < 0)
        log_warn("sandbox", "cannot remove leftover cgroup %s: %s", name, strerror(-r));
}

/* Removes what servers that are no longer running left in mayfly/. Their
 * sandboxes normally died with them (PR_SET_PDEATHSIG); the cgroups
 * remain, and so might processes if the kill raced, frozen ones too. */
static void remove_stale(const char *mayfly, const char *own_tag, sandbox_cgroup_version_t v)
{
    cleanup_close int fd = open(mayfly, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    int dfd = dup(fd);
    if (dfd < 0)
        return;
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        int pid;
        unsigned long long start, now;
        if (de->d_type != DT_DIR || !strcmp(de->d_name, own_tag))
            continue;
        if (sscanf(de->d_name, "server-%d-%llu", &pid, &start) != 2)
            continue;
        if (proc_start_time(pid, &now) == 0 && now == start)
            continue; /* another live server's */
        log_info("sandbox", "removing cgroups left by server %d at %s/%s", pid, mayfly, de->d_name);
        remove_tree(fd, de->d_name, v, 0);
    }
    closedir(d);
}

/* ---- v2 controller delegation ----------------------------------------- */

static bool controllers_listed(const char *text, bool cpu)
{
    return word_listed(text, "memory", ' ') && word_listed(text, "pids", ' ') &&
           (!cpu || word_listed(text, "cpu", ' '));
}

/* Lets dir's children use the controllers, unless they already can. */
static int enable_controllers(const char *dir, bool cpu, mf_error_t *err)
{
    cleanup_buf buf_t current = BUF_INIT;
    cleanup_free char *file = xasprintf("%s/cgroup.subtree_control", dir);
    int r = fs_read_file(file, &current, 4096, err);
    if (r < 0)
        return r;
    if (controllers_listed(current.data, cpu))
        return 0;
    const char *want = cpu ? "+memory +pids +cpu" : "+memory +pids";
    r = write_at(AT_FDCWD, file, want);
    if (r == -EBUSY)
        return mf_error_set(err, EBUSY,
                            "cgroup v2: cannot enable controllers in %s: other processes live "
                            "there (run mayfly in a delegated cgroup, e.g. systemd Delegate=yes)",
                            dir);
    if (r < 0)
        return mf_error_set(err, -r, "cgroup v2: write `%s` to %s", want, file);
    return 0;
}

/* ---- set-up ----------------------------------------------------------- */

static int mkdir_ok(const char *path)
{
    return mkdir(path, 0755) == 0 || errno == EEXIST ? 0 : -errno;
}

/* Creates <base>/mayfly, <tag>, <tag>/server and <tag>/sandboxes, and
 * opens the last. A concurrent server's sandbox_system_free may remove an
 * empty mayfly/ between our mkdirs, hence the second round. */
static int make_hier(hier_t *h, const char *base, const char *tag, mf_error_t *err)
{
    h->mayfly = xasprintf("%s/mayfly", base);
    h->path = xasprintf("%s/%s", h->mayfly, tag);
    h->boxes = xasprintf("%s/sandboxes", h->path);
    int r = 0;
    for (int round = 0; round < 2; round++) {
        if ((r = mkdir_ok(h->mayfly)) < 0)
            return mf_error_set(err, -r, "cgroup: mkdir %s", h->mayfly);
        if ((r = mkdir_ok(h->path)) == 0)
            break;
        if (r != -ENOENT || round == 1)
            return mf_error_set(err, -r, "cgroup: mkdir %s", h->path);
    }
    cleanup_free char *server = xasprintf("%s/server", h->path);
    if ((r = mkdir_ok(server)) < 0)
        return mf_error_set(err, -r, "cgroup: mkdir %s", server);
    if ((r = mkdir_ok(h->boxes)) < 0)
        return mf_error_set(err, -r, "cgroup: mkdir %s", h->boxes);
    h->fd = open(h->boxes, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (h->fd < 0)
        return mf_error_set(err, errno, "cgroup: open %s", h->boxes);
    return 0;
}

/* Moves this whole process (every thread) into dir. */
static int move_self(const char *dir)
{
    char self[32];
    snprintf(self, sizeof self, "%d", (int)getpid());
    cleanup_free char *procs = xasprintf("%s/cgroup.procs", dir);
    return write_at(AT_FDCWD, procs, self);
}

/* Moves every process of from into to: children the server started
 * while it was in <tag>/server are there too, and are not sandboxes to
 * kill. */
static void move_procs(const char *from, const char *to)
{
    cleanup_buf buf_t procs = BUF_INIT;
    cleanup_free char *file = xasprintf("%s/cgroup.procs", from);
    cleanup_free char *dest = xasprintf("%s/cgroup.procs", to);
    if (fs_read_file(file, &procs, 1 << 20, NULL) < 0)
        return;
    char *save = NULL;
    for (char *pid = strtok_r(procs.data, "\n", &save); pid; pid = strtok_r(NULL, "\n", &save))
        write_at(AT_FDCWD, dest, pid);
}

/* The v1 freezer switches a kernel-wide static key on when a cgroup
 * starts freezing and off when none is frozen any more; each switch
 * patches kernel text on every CPU, which took milliseconds per freeze
 * and thaw (about 2.3 ms each here) where the write itself takes 2 µs. An
 * empty cgroup kept frozen for the server's life keeps the key on, so
 * freezing and thawing an instance on every call stays cheap. */
#define FREEZER_ANCHOR "freezer-anchor"

static void freezer_anchor(struct sandbox__cgsys *cs)
{
    if (cs->version != SANDBOX_CGROUP_V1 || cs->ctl[CTL_FREEZER] < 0)
        return;
    const hier_t *h = &cs->hier[cs->ctl[CTL_FREEZER]];
    cleanup_free char *dir = xasprintf("%s/" FREEZER_ANCHOR, h->path);
    int r = mkdir_ok(dir);
    if (r == 0)
        r = write_atf(AT_FDCWD, dir, "freezer.state", "FROZEN");
    if (r < 0)
        log_warn("sandbox",
                 "cgroup v1: cannot keep %s frozen (%s): each freeze and thaw of a "
                 "sandbox may take milliseconds",
                 dir, strerror(-r));
}

/* Moves the server into <tag>/server of every hierarchy. */
static int move_into_server(struct sandbox__cgsys *cs, mf_error_t *err)
{
    for (size_t i = 0; i < cs->nhier; i++) {
        hier_t *h = &cs->hier[i];
        cleanup_free char *server = xasprintf("%s/server", h->path);
        int r = move_self(server);
        if (r < 0)
            return mf_error_set(err, -r, "cgroup: move the server into %s", server);
        h->moved = true;
    }
    return 0;
}

/* The server's and the sandboxes' CPU weights (see SERVER_CPU_SHARES). */
static int weigh(struct sandbox__cgsys *cs, mf_error_t *err)
{
    if (cs->ctl[CTL_CPU] < 0)
        return 0;
    const hier_t *h = &cs->hier[cs->ctl[CTL_CPU]];
    bool v1 = cs->version == SANDBOX_CGROUP_V1;
    const char *file = v1 ? "cpu.shares" : "cpu.weight";
    cleanup_free char *server = xasprintf("%s/server/%s", h->path, file);
    int r = write_at(AT_FDCWD, server, v1 ? SERVER_CPU_SHARES : SERVER_CPU_WEIGHT);
    if (r == 0)
        r = write_at(h->fd, file, v1 ? SANDBOXES_CPU_SHARES : SANDBOXES_CPU_WEIGHT);
    if (r < 0)
        return mf_error_set(err, -r, "cgroup: set the CPU weights below %s (%s)", h->path, file);
    return 0;
}

static int init_v1(struct sandbox__cgsys *cs, mount_line_t mounts[CTL_COUNT],
                   const char *cgroup_file, mf_error_t *err)
{
    for (int c = 0; c < CTL_COUNT; c++) {
        cs->ctl[c] = -1;
        if (!mounts[c].mountpoint) {
            if (c == CTL_MEMORY || c == CTL_PIDS)
                return mf_error_set(err, ENOENT, "cgroup v1: no hierarchy has the %s controller",
                                    ctl_names[c]);
            log_warn("sandbox", "cgroup v1: no %s controller; %s", ctl_names[c],
                     c == CTL_CPU       ? "sandboxes get no CPU share or quota"
                     : c == CTL_CPUACCT ? "cpu_ns stays 0"
                                        : "sandboxes cannot be frozen");
            continue;
        }
        /* cpu and cpuacct are often mounted together as cpu,cpuacct. */
        for (int o = 0; o < c; o++)
            if (cs->ctl[o] >= 0 && mounts[o].mountpoint &&
                !strcmp(mounts[o].mountpoint, mounts[c].mountpoint))
                cs->ctl[c] = cs->ctl[o];
        if (cs->ctl[c] >= 0)
            continue;
        cleanup_free char *own = own_cgroup(cgroup_file, ctl_names[c]);
        cleanup_free char *base = own_dir(mounts[c].mountpoint, mounts[c].root, own);
        cleanup_free char *mayfly = xasprintf("%s/mayfly", base);
        remove_stale(mayfly, cs->tag, SANDBOX_CGROUP_V1);
        cs->ctl[c] = (int)cs->nhier;
        hier_t *h = &cs->hier[cs->nhier++];
        h->mnt = xstrdup(mounts[c].mountpoint);
        h->origin = xstrdup(base);
        int r = make_hier(h, base, cs->tag, err);
        if (r < 0)
            return r;
    }
    int r = move_into_server(cs, err);
    if (r == 0)
        r = weigh(cs, err);
    if (r < 0)
        return r;
    freezer_anchor(cs);
    const hier_t *hm = &cs->hier[cs->ctl[CTL_MEMORY]];
    const hier_t *hp = &cs->hier[cs->ctl[CTL_PIDS]];
    cs->limit_memory = lowest_limit(hm->mnt, hm->origin, "memory.limit_in_bytes");
    cs->limit_pids = lowest_limit(hp->mnt, hp->origin, "pids.max");
    int memfd = hm->fd;
    cs->memsw = exists_at(memfd, "memory.memsw.limit_in_bytes");
    char text[256];
    cleanup_close int oomfd = openat(memfd, "memory.oom_control", O_RDONLY | O_CLOEXEC);
    uint64_t v;
    cs->oom_kill_field = pread_str(oomfd, text, sizeof text) > 0 && keyed_u64(text, "oom_kill", &v);
    log_info("sandbox", "cgroup v1 in use: sandboxes in %s, the server in %s/server%s", hm->boxes,
             hm->path, cs->memsw ? "" : " (no swap accounting: the memory limit excludes swap)");
    return 0;
}

static int init_v2(struct sandbox__cgsys *cs, const char *base, const char *cgroup_file,
                   const char *mnt_root, mf_error_t *err)
{
    cleanup_buf buf_t avail = BUF_INIT;
    cleanup_free char *file = xasprintf("%s/cgroup.controllers", base);
    int r = fs_read_file(file, &avail, 4096, err);
    if (r < 0)
        return r;
    if (!controllers_listed(avail.data, false))
        return mf_error_set(err, ENOENT,
                            "cgroup v2: memory and pids controllers not available in %s", base);
    bool cpu = word_listed(avail.data, "cpu", ' ');
    if (!cpu)
        log_warn("sandbox", "cgroup v2: no cpu controller in %s; sandboxes get no CPU share", base);
    cleanup_free char *mayfly = xasprintf("%s/mayfly", base);
    remove_stale(mayfly, cs->tag, SANDBOX_CGROUP_V2);
    cs->nhier = 1;
    hier_t *h = &cs->hier[0];
    cleanup_free char *own = own_cgroup(cgroup_file, "");
    h->mnt = xstrdup(base);
    h->origin = own_dir(base, mnt_root, own);
    r = make_hier(h, base, cs->tag, err);
    /* The server first moves out of the way: a cgroup that delegates
     * controllers may hold no process (the root of the whole hierarchy
     * excepted), and <base> may have been the server's own. */
    if (r == 0)
        r = move_into_server(cs, err);
    const char *chain[] = {base, h->mayfly, h->path, h->boxes};
    for (size_t i = 0; r == 0 && i < sizeof chain / sizeof *chain; i++)
        r = enable_controllers(chain[i], cpu, err);
    for (int c = 0; c < CTL_COUNT; c++)
        cs->ctl[c] = 0;
    if (!cpu)
        cs->ctl[CTL_CPU] = -1;
    if (r == 0)
        r = weigh(cs, err);
    if (r < 0)
        return r;
    cs->limit_memory = lowest_limit(h->mnt, h->origin, "memory.max");
    cs->limit_pids = lowest_limit(h->mnt, h->origin, "pids.max");
    int fd = h->fd;
    cs->swap_max = exists_at(fd, "memory.swap.max");
    cs->peak = exists_at(fd, "memory.peak");
    cs->kill_file = exists_at(fd, "cgroup.kill");
    log_info("sandbox", "cgroup v2 in use: sandboxes in %s, the server in %s/server%s%s", h->boxes,
             h->path, cs->swap_max ? "" : " (no memory.swap.max: the memory limit excludes swap)",
             cs->peak ? "" : " (no memory.peak: the peak is sampled from memory.current)");
    return 0;
}

/* Opens <tag>'s CPU time for sandbox__cgsys_cpu_ns: cpuacct.usage in the
 * cpuacct hierarchy on v1, cpu.stat (always there) on v2. */
static void open_usage(struct sandbox__cgsys *cs)
{
    bool v2 = cs->version == SANDBOX_CGROUP_V2;
    int c = cs->ctl[v2 ? CTL_MEMORY : CTL_CPUACCT];
    if (c < 0 || !cs->hier[c].path)
        return; /* stays -ENOTSUP */
    cleanup_free char *file =
        xasprintf("%s/%s", cs->hier[c].path, v2 ? "cpu.stat" : "cpuacct.usage");
    cs->usage_fd = open(file, O_RDONLY | O_CLOEXEC);
    if (cs->usage_fd < 0)
        cs->usage_fd = -errno;
}

int sandbox__cgsys_init(struct sandbox__cgsys **out, mf_error_t *err)
{
    struct sandbox__cgsys *cs = xcalloc(1, sizeof *cs);
    unsigned long long start = 0;
    proc_start_time(getpid(), &start);
    snprintf(cs->tag, sizeof cs->tag, "server-%d-%llu", (int)getpid(), start);
    for (int i = 0; i < CTL_COUNT; i++)
        cs->hier[i].fd = -1;
    cs->usage_fd = -ENOTSUP;
    cs->cpus = cpus_usable();

    cleanup_buf buf_t mountinfo = BUF_INIT;
    cleanup_buf buf_t cgroups = BUF_INIT;
    int r = fs_read_file("/proc/self/mountinfo", &mountinfo, 16 << 20, err);
    if (r == 0)
        r = fs_read_file("/proc/self/cgroup", &cgroups, 1 << 20, err);
    if (r < 0) {
        sandbox__cgsys_free(cs);
        return r;
    }

    /* v1 when some v1 hierarchy carries the memory controller (that
     * includes "hybrid" systems with an empty v2 mount beside); v2 when a
     * cgroup2 mount exists and no v1 hierarchy took memory. */
    mount_line_t v1[CTL_COUNT] = {0};
    mount_line_t v2 = {0};
    char *save = NULL;
    for (char *line = strtok_r(mountinfo.data, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        mount_line_t m;
        if (!parse_mount_line(line, &m))
            continue;
        if (!strcmp(m.fstype, "cgroup2")) {
            /* Prefer /sys/fs/cgroup itself over e.g. /sys/fs/cgroup/unified. */
            if (!v2.mountpoint || !strcmp(m.mountpoint, "/sys/fs/cgroup"))
                v2 = m;
        } else if (!strcmp(m.fstype, "cgroup")) {
            for (int c = 0; c < CTL_COUNT; c++)
                if (!v1[c].mountpoint && word_listed(m.superopts, ctl_names[c], ','))
                    v1[c] = m;
        }
    }
    if (v1[CTL_MEMORY].mountpoint) {
        cs->version = SANDBOX_CGROUP_V1;
        r = init_v1(cs, v1, cgroups.data, err);
    } else if (v2.mountpoint) {
        cs->version = SANDBOX_CGROUP_V2;
        r = init_v2(cs, v2.mountpoint, cgroups.data, v2.root, err);
    } else {
        r = mf_error_set(err, ENOENT, "cgroup: no cgroup v1 memory hierarchy and no cgroup2 mount");
    }
    if (r < 0) {
        sandbox__cgsys_free(cs);
        return r;
    }
    open_usage(cs);
    *out = cs;
    return 0;
}

sandbox_cgroup_version_t sandbox__cgsys_version(const struct sandbox__cgsys *cs)
{
    return cs->version;
}

void sandbox__cgsys_limits(const struct sandbox__cgsys *cs, uint64_t *memory_bytes, uint64_t *pids)
{
    *memory_bytes = cs->limit_memory;
    *pids = cs->limit_pids;
}

unsigned sandbox__cgsys_cpus(const struct sandbox__cgsys *cs)
{
    return cs->cpus;
}

int sandbox__cgsys_cpu_ns(struct sandbox__cgsys *cs, uint64_t *ns)
{
    if (cs->usage_fd < 0)
        return cs->usage_fd;
    char text[512];
    ssize_t n = pread_str(cs->usage_fd, text, sizeof text);
    if (n < 0)
        return (int)n;
    if (cs->version == SANDBOX_CGROUP_V1) {
        *ns = strtoull(text, NULL, 10);
        return 0;
    }
    uint64_t usec;
    if (!keyed_u64(text, "usage_usec", &usec))
        return -EINVAL;
    *ns = usec * 1000;
    return 0;
}

void sandbox__cgsys_free(struct sandbox__cgsys *cs)
{
    if (!cs)
        return;
    if (cs->usage_fd >= 0)
        close(cs->usage_fd);
    for (size_t i = 0; i < cs->nhier; i++) {
        hier_t *h = &cs->hier[i];
        if (h->fd >= 0) {
            close(h->fd);
            /* Every sandbox is destroyed by now; anything left is killed. */
            remove_tree(AT_FDCWD, h->boxes, cs->version, 0);
        }
        bool server_left = false;
        if (h->path) {
            /* Thawed and removed, or left by a failed start: harmless. */
            cleanup_free char *anchor = xasprintf("%s/" FREEZER_ANCHOR, h->path);
            if (write_atf(AT_FDCWD, anchor, "freezer.state", "THAWED") == 0)
                rmdir(anchor);
        }
        if (h->moved) {
            int r = move_self(h->origin);
            if (r < 0) {
                /* v2, where the cgroup we came from now delegates
                 * controllers: we stay, and so does <tag>/server, until
                 * the next server removes it. */
                log_debug("sandbox", "cannot move back into %s (%s): %s/server stays", h->origin,
                          strerror(-r), h->path);
                server_left = true;
            }
        }
        if (h->path && !server_left) {
            cleanup_free char *server = xasprintf("%s/server", h->path);
            move_procs(server, h->origin);
            int r = remove_cgroup(AT_FDCWD, server, false);
            if (r == 0)
                r = remove_cgroup(AT_FDCWD, h->path, false);
            if (r < 0)
                log_warn("sandbox", "cannot remove cgroup %s: %s", h->path, strerror(-r));
            /* Other servers may still use mayfly/: then this fails, fine. */
            rmdir(h->mayfly);
        }
        free(h->mnt);
        free(h->origin);
        free(h->mayfly);
        free(h->path);
        free(h->boxes);
    }
    free(cs);
}

/* ---- limits ------------------------------------------------------------- */

/* Writes a memory limit (bytes as text, or "-1"/"max" for none) to
 * dirfd/id: on v1 the plain limit and, with swap accounting, the
 * memory+swap one, which may never be below the plain one (raising,
 * memsw goes first; lowering, the plain limit does); on v2 memory.max. */
static int write_memory_limit(const struct sandbox__cgsys *cs, int dirfd, const char *id,
                              const char *value, const char **step)
{
    if (cs->version == SANDBOX_CGROUP_V2)
        return write_atf(dirfd, id, *step = "memory.max", value);
    int r = write_atf(dirfd, id, *step = "memory.limit_in_bytes", value);
    if (!cs->memsw)
        return r;
    if (r == -EINVAL) {
        r = write_atf(dirfd, id, *step = "memory.memsw.limit_in_bytes", value);
        if (r == 0)
            r = write_atf(dirfd, id, *step = "memory.limit_in_bytes", value);
    } else if (r == 0) {
        r = write_atf(dirfd, id, *step = "memory.memsw.limit_in_bytes", value);
    }
    return r;
}

int sandbox__cgsys_set_budget(struct sandbox__cgsys *cs, uint64_t memory_bytes, uint64_t pids,
                              mf_error_t *err)
{
    bool v1 = cs->version == SANDBOX_CGROUP_V1;
    const char *none = v1 ? "-1" : "max";
    char mem[32], pid[32];
    if (memory_bytes)
        snprintf(mem, sizeof mem, "%" PRIu64, memory_bytes);
    if (pids)
        snprintf(pid, sizeof pid, "%" PRIu64, pids);
    const hier_t *hm = &cs->hier[cs->ctl[CTL_MEMORY]];
    const hier_t *hp = &cs->hier[cs->ctl[CTL_PIDS]];
    const char *step = "";
    int r = write_memory_limit(cs, hm->fd, ".", memory_bytes ? mem : none, &step);
    if (r < 0)
        return mf_error_set(err, -r, "cgroup: %s/%s", hm->boxes, step);
    r = write_at(hp->fd, "pids.max", pids ? pid : "max");
    if (r < 0)
        return mf_error_set(err, -r, "cgroup: %s/pids.max", hp->boxes);
    return 0;
}

/* ---- per sandbox ------------------------------------------------------ */

/* The CPU quota per SANDBOX_CPU_PERIOD_US for memory_mb: one CPU per
 * MB_PER_CPU, at most every CPU, at least the kernel's minimum. */
static uint64_t cpu_quota_us(const struct sandbox__cgsys *cs, unsigned memory_mb)
{
    uint64_t q = (uint64_t)memory_mb * SANDBOX_CPU_PERIOD_US / MB_PER_CPU;
    uint64_t most = (uint64_t)cs->cpus * SANDBOX_CPU_PERIOD_US;
    return q < MIN_QUOTA_US ? MIN_QUOTA_US : q > most ? most : q;
}

static int write_quota(struct sandbox__cg *cg, const char **step)
{
    const struct sandbox__cgsys *cs = cg->sys;
    const hier_t *hc = &cs->hier[cs->ctl[CTL_CPU]];
    uint64_t q = cpu_quota_us(cs, cg->cpu_mb ? cg->cpu_mb : cg->memory_mb);
    char text[64];
    if (cs->version == SANDBOX_CGROUP_V2) {
        snprintf(text, sizeof text, "%" PRIu64 " %d", q, SANDBOX_CPU_PERIOD_US);
        return write_atf(hc->fd, cg->id, *step = "cpu.max", text);
    }
    /* The period first: a quota is checked against the current one. */
    snprintf(text, sizeof text, "%d", SANDBOX_CPU_PERIOD_US);
    int r = write_atf(hc->fd, cg->id, *step = "cpu.cfs_period_us", text);
    snprintf(text, sizeof text, "%" PRIu64, q);
    if (r == 0)
        r = write_atf(hc->fd, cg->id, *step = "cpu.cfs_quota_us", text);
    return r;
}

/* Writes the cgroup's CPU weight: shares on v1 (cpu.shares, from 2),
 * weight on v2 (cpu.weight, 1 to 10000), each brought within its range. */
static int cg_write_weight(struct sandbox__cg *cg, uint64_t shares, uint64_t weight,
                           const char **step)
{
    struct sandbox__cgsys *cs = cg->sys;
    if (cs->ctl[CTL_CPU] < 0)
        return 0;
    int fd = cs->hier[cs->ctl[CTL_CPU]].fd;
    char cpu[32];
    if (cs->version == SANDBOX_CGROUP_V1) {
        snprintf(cpu, sizeof cpu, "%" PRIu64, shares < 2 ? 2 : shares);
        return write_atf(fd, cg->id, *step = "cpu.shares", cpu);
    }
    snprintf(cpu, sizeof cpu, "%" PRIu64, weight < 1 ? 1 : weight > 10000 ? 10000 : weight);
    return write_atf(fd, cg->id, *step = "cpu.weight", cpu);
}

/* The CPU weight (a relative share) that memory_mb buys, as on Lambda
 * (1769 MB = one CPU). */
static int cg_set_weight(struct sandbox__cg *cg, unsigned memory_mb, const char **step)
{
    return cg_write_weight(cg, (uint64_t)memory_mb * 1024 / MB_PER_CPU,
                           (uint64_t)memory_mb * 100 / MB_PER_CPU, step);
}

/* The memory limit and, following it as on Lambda, the CPU weight and,
 * once capped, the quota. Callable again on a live cgroup (a pooled
 * sandbox gets its function's limits when it is handed out). */
static int cg_set_limits(struct sandbox__cg *cg, unsigned memory_mb, const char **step)
{
    struct sandbox__cgsys *cs = cg->sys;
    const char *id = cg->id;
    char mem[32];
    snprintf(mem, sizeof mem, "%" PRIu64, (uint64_t)memory_mb << 20);
    const hier_t *hm = &cs->hier[cs->ctl[CTL_MEMORY]];
    const hier_t *hc = cs->ctl[CTL_CPU] >= 0 ? &cs->hier[cs->ctl[CTL_CPU]] : NULL;
    int r = write_memory_limit(cs, hm->fd, id, mem, step);
    /* No swap on v2: a function over its memory is killed, as on Lambda,
     * rather than slowed down by swapping. */
    if (r == 0 && cs->version != SANDBOX_CGROUP_V1 && cs->swap_max)
        r = write_atf(hm->fd, id, *step = "memory.swap.max", "0");
    if (r == 0)
        r = cg_set_weight(cg, memory_mb, step);
    if (r == 0 && hc && cg->capped) {
        unsigned old = cg->memory_mb;
        cg->memory_mb = memory_mb;
        cg->cpu_mb = 0;
        r = write_quota(cg, step);
        cg->memory_mb = old;
    }
    return r;
}

int sandbox__cg_create(struct sandbox__cgsys *cs, const char *id, unsigned memory_mb,
                       unsigned max_pids, struct sandbox__cg **out, mf_error_t *err)
{
    struct sandbox__cg *cg = xcalloc(1, sizeof *cg);
    cg->sys = cs;
    cg->id = xstrdup(id);
    cg->peak_fd = cg->cpu_fd = cg->oom_fd = cg->freeze_fd = -1;

    for (size_t i = 0; i < cs->nhier; i++) {
        if (mkdirat(cs->hier[i].fd, id, 0755) < 0) {
            int e = errno;
            sandbox__cg_destroy(cg);
            return mf_error_set(err, e, "cgroup: mkdir %s/%s", cs->hier[i].boxes, id);
        }
        cg->created[i] = true;
    }

    char pids[32];
    snprintf(pids, sizeof pids, "%u", max_pids);
    const hier_t *hm = &cs->hier[cs->ctl[CTL_MEMORY]];
    const hier_t *hp = &cs->hier[cs->ctl[CTL_PIDS]];
    const char *step;
    int r = cg_set_limits(cg, memory_mb, &step);
    cg->memory_mb = memory_mb;
    if (r == 0)
        r = write_atf(hp->fd, id, step = "pids.max", pids);

    if (cs->version == SANDBOX_CGROUP_V1) {
        if (r == 0) {
            step = "memory.max_usage_in_bytes";
            cg->peak_fd = open_atf(hm->fd, id, step, O_RDWR);
            cg->peak_writable = true;
            r = cg->peak_fd < 0 ? -errno : 0;
        }
        if (r == 0) {
            step = cs->oom_kill_field ? "memory.oom_control" : "memory.failcnt";
            cg->oom_fd = open_atf(hm->fd, id, step, O_RDONLY);
            r = cg->oom_fd < 0 ? -errno : 0;
        }
        if (r == 0 && cs->ctl[CTL_CPUACCT] >= 0) {
            step = "cpuacct.usage";
            cg->cpu_fd = open_atf(cs->hier[cs->ctl[CTL_CPUACCT]].fd, id, step, O_RDONLY);
            r = cg->cpu_fd < 0 ? -errno : 0;
        }
        if (r == 0 && cs->ctl[CTL_FREEZER] >= 0) {
            step = "freezer.state";
            cg->freeze_fd = open_atf(cs->hier[cs->ctl[CTL_FREEZER]].fd, id, step, O_WRONLY);
            r = cg->freeze_fd < 0 ? -errno : 0;
        }
    } else {
        if (r == 0) {
            /* memory.peak can be reset per open file (Linux 6.12+) by
             * writing to it; older kernels have it read-only, and before
             * 5.19 not at all (then memory.current is sampled). */
            step = cs->peak ? "memory.peak" : "memory.current";
            cg->peak_fd = open_atf(hm->fd, id, step, O_RDWR);
            cg->peak_writable = cg->peak_fd >= 0 && cs->peak;
            if (cg->peak_fd < 0)
                cg->peak_fd = open_atf(hm->fd, id, step, O_RDONLY);
            r = cg->peak_fd < 0 ? -errno : 0;
        }
        if (r == 0) {
            step = "memory.events";
            cg->oom_fd = open_atf(hm->fd, id, step, O_RDONLY);
            r = cg->oom_fd < 0 ? -errno : 0;
        }
        if (r == 0) {
            step = "cpu.stat";
            cg->cpu_fd = open_atf(hm->fd, id, step, O_RDONLY);
            r = cg->cpu_fd < 0 ? -errno : 0;
        }
        /* cgroup.freeze is there from Linux 5.2 on; without it, no
         * freezing. */
        if (r == 0)
            cg->freeze_fd = open_atf(hm->fd, id, "cgroup.freeze", O_WRONLY);
    }
    if (r < 0) {
        sandbox__cg_destroy(cg);
        return mf_error_set(err, -r, "cgroup: %s/%s/%s", hm->boxes, id, step);
    }
    cg->path = xasprintf("%s/%s", hm->boxes, id);
    *out = cg;
    return 0;
}

int sandbox__cg_attach(struct sandbox__cg *cg, pid_t pid, mf_error_t *err)
{
    char value[32];
    snprintf(value, sizeof value, "%d", (int)pid);
    for (size_t i = 0; i < cg->sys->nhier; i++) {
        int r = write_atf(cg->sys->hier[i].fd, cg->id, "cgroup.procs", value);
        if (r < 0)
            return mf_error_set(err, -r, "cgroup: move %d into %s/%s", (int)pid,
                                cg->sys->hier[i].boxes, cg->id);
    }
    return 0;
}

const char *sandbox__cg_path(const struct sandbox__cg *cg)
{
    return cg->path;
}

int sandbox__cg_stats(const struct sandbox__cg *cg, unsigned what, sandbox_stats_t *out)
{
    char text[1024];
    ssize_t n;
    int ret = 0;
    bool v2 = cg->sys->version == SANDBOX_CGROUP_V2;

    *out = (sandbox_stats_t){0};
    if (what & SANDBOX_STAT_MEMORY) {
        if ((n = pread_str(cg->peak_fd, text, sizeof text)) >= 0)
            out->memory_peak_bytes = strtoull(text, NULL, 10);
        else
            ret = (int)n;
    }
    if ((what & SANDBOX_STAT_CPU) && cg->cpu_fd >= 0) {
        if ((n = pread_str(cg->cpu_fd, text, sizeof text)) < 0) {
            ret = (int)n;
        } else if (v2) {
            uint64_t usec = 0;
            keyed_u64(text, "usage_usec", &usec);
            out->cpu_ns = usec * 1000;
        } else {
            out->cpu_ns = strtoull(text, NULL, 10);
        }
    }
    if (!(what & SANDBOX_STAT_OOM))
        return ret;
    if ((n = pread_str(cg->oom_fd, text, sizeof text)) < 0)
        ret = (int)n;
    else if (v2 || cg->sys->oom_kill_field)
        keyed_u64(text, "oom_kill", &out->oom_kills);
    else
        out->oom_kills = strtoull(text, NULL, 10); /* memory.failcnt: limit hits */
    return ret;
}

void sandbox__cg_reset_peak(struct sandbox__cg *cg)
{
    if (cg->peak_fd < 0 || !cg->peak_writable)
        return;
    /* v1 resets max_usage_in_bytes on "0"; v2 resets on any write, for
     * reads through this descriptor. A kernel that refuses leaves the
     * life-long peak, which the header allows. */
    const char *v = cg->sys->version == SANDBOX_CGROUP_V1 ? "0" : "reset";
    if (pwrite(cg->peak_fd, v, strlen(v), 0) < 0)
        cg->peak_writable = false;
}

int sandbox__cg_freeze(struct sandbox__cg *cg, bool frozen)
{
    if (cg->freeze_fd < 0)
        return -ENOTSUP;
    bool v1 = cg->sys->version == SANDBOX_CGROUP_V1;
    const char *v = v1 ? (frozen ? "FROZEN" : "THAWED") : (frozen ? "1" : "0");
    size_t len = strlen(v);
    ssize_t n = pwrite(cg->freeze_fd, v, len, 0);
    if (n < 0)
        return -errno;
    return (size_t)n == len ? 0 : -EIO;
}

void sandbox__cg_kill(struct sandbox__cg *cg)
{
    const struct sandbox__cgsys *cs = cg->sys;
    if (cs->version == SANDBOX_CGROUP_V2 && cs->kill_file &&
        write_atf(cs->hier[0].fd, cg->id, "cgroup.kill", "1") == 0)
        return;
    sweep_procs(cs->hier[cs->ctl[CTL_PIDS]].fd, cg->id);
}

void sandbox__cg_destroy(struct sandbox__cg *cg)
{
    if (!cg)
        return;
    cleanup_closep(&cg->peak_fd);
    cleanup_closep(&cg->cpu_fd);
    cleanup_closep(&cg->oom_fd);
    cleanup_closep(&cg->freeze_fd);
    for (size_t i = 0; i < cg->sys->nhier; i++) {
        if (!cg->created[i])
            continue;
        int r = remove_cgroup(cg->sys->hier[i].fd, cg->id, true);
        if (r < 0)
            log_warn("sandbox", "cannot remove cgroup %s/%s: %s", cg->sys->hier[i].boxes, cg->id,
                     strerror(-r));
    }
    free(cg->id);
    free(cg->path);
    free(cg);
}

int sandbox__cg_set_memory(struct sandbox__cg *cg, unsigned memory_mb, mf_error_t *err)
{
    const char *step = "";
    int r = 0;
    if (memory_mb == cg->memory_mb) {
        /* The usual case: a pooled sandbox has the smallest memory
         * already, and only its weight changes. */
        if (cg->background && (r = cg_set_weight(cg, memory_mb, &step)) < 0)
            return mf_error_set(err, -r, "cgroup: %s/%s", cg->id, step);
        cg->background = false;
        return 0;
    }
    r = cg_set_limits(cg, memory_mb, &step);
    if (r < 0)
        return mf_error_set(err, -r, "cgroup: %s/%s", cg->id, step);
    cg->memory_mb = memory_mb;
    cg->background = false;
    return 0;
}

int sandbox__cg_background(struct sandbox__cg *cg, mf_error_t *err)
{
    const char *step = "";
    int r = cg_write_weight(cg, BACKGROUND_CPU_SHARES, BACKGROUND_CPU_WEIGHT, &step);
    if (r < 0)
        return mf_error_set(err, -r, "cgroup: %s/%s", cg->id, step);
    cg->background = true;
    return 0;
}

int sandbox__cg_cap_cpu(struct sandbox__cg *cg, unsigned cpu_mb, mf_error_t *err)
{
    const char *step = "";
    if (cg->sys->ctl[CTL_CPU] < 0)
        return 0;
    cg->cpu_mb = cpu_mb;
    int r = write_quota(cg, &step);
    if (r < 0)
        return mf_error_set(err, -r, "cgroup: %s/%s", cg->id, step);
    cg->capped = true;
    return 0;
}

int sandbox__cg_rename(struct sandbox__cg *cg, const char *id, mf_error_t *err)
{
    struct sandbox__cgsys *cs = cg->sys;
    for (size_t i = 0; i < cs->nhier; i++) {
        if (renameat(cs->hier[i].fd, cg->id, cs->hier[i].fd, id) < 0) {
            int e = errno;
            /* Put back what was renamed, so every hierarchy agrees. */
            while (i-- > 0)
                renameat(cs->hier[i].fd, id, cs->hier[i].fd, cg->id);
            return mf_error_set(err, e, "cgroup: rename %s/%s to %s", cs->hier[0].boxes, cg->id,
                                id);
        }
    }
    free(cg->id);
    cg->id = xstrdup(id);
    free(cg->path);
    cg->path = xasprintf("%s/%s", cs->hier[cs->ctl[CTL_MEMORY]].boxes, id);
    return 0;
}
