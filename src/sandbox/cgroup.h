/* Control groups for sandboxes, on cgroup v1 (one directory per controller
 * hierarchy) and v2 (one unified directory). Internal to src/sandbox/.
 *
 * Layout, below <base>/mayfly/<tag>, where <tag> is
 * "server-<pid>-<start time>" of the server that made it:
 *
 *   <tag>/server            the server's own process (all its threads)
 *   <tag>/sandboxes         the common parent of every sandbox: the memory
 *                           and pids budget of all of them together
 *   <tag>/sandboxes/<id>    one sandbox (an instance, or pool-<random> for
 *                           one prepared ahead), with its own limits
 *   <tag>/freezer-anchor    v1, freezer hierarchy only: an empty cgroup
 *                           kept frozen, so that freezing a sandbox stays
 *                           cheap (see cgroup.c)
 *
 * server and sandboxes are siblings, and server has the higher CPU weight
 * (4:1), so however many sandboxes spin, the server keeps most of a CPU
 * when it needs one and the platform keeps answering; each sandbox's
 * weight and quota then divide the sandboxes' part. The tag lets two
 * servers share a host without one mistaking the other's sandboxes for
 * leftovers, and lets a new server recognise (and remove) the cgroups of a
 * dead one, of this layout or the older <tag>/<id>. At exit the server
 * moves back to the cgroup it started in and removes <tag>.
 *   v1: <base> is the server's own cgroup in each of the memory, cpu,
 *       cpuacct, pids and (when mounted) freezer hierarchies, so a limit
 *       put on the server (a systemd MemoryMax=, a container's memory
 *       limit) also bounds its sandboxes. cpu and cpuacct are often
 *       co-mounted: one directory serves both. With the server in the root
 *       cgroup that is /sys/fs/cgroup/<controller>/mayfly/….
 *   v2: <base> is the root of the visible hierarchy (/sys/fs/cgroup): v2
 *       allows controllers in a cgroup's children only when the cgroup
 *       itself holds no process, which the server's original cgroup may
 *       (a login session, a shared service). The server moves into
 *       <tag>/server first, which also empties <base> when it was the
 *       only process there (a container), and then enables the memory,
 *       pids and cpu controllers down to <tag>/sandboxes; <tag> itself
 *       holds no process. Where the cgroup the server started in cannot
 *       take it back at exit (it now delegates controllers), <tag>/server
 *       stays until the next server removes it. */
#ifndef MAYFLY_SANDBOX_CGROUP_H
#define MAYFLY_SANDBOX_CGROUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/error.h"
#include "sandbox/sandbox.h"

struct sandbox__cgsys;
struct sandbox__cg;

/* Finds the hierarchies, removes what dead servers left behind, creates
 * mayfly/<tag>/server and mayfly/<tag>/sandboxes, moves the calling
 * process into the former and enables the v2 controllers. */
int sandbox__cgsys_init(struct sandbox__cgsys **out, mf_error_t *err);
sandbox_cgroup_version_t sandbox__cgsys_version(const struct sandbox__cgsys *cs);
/* The lowest memory limit (bytes) and pids limit on the cgroup the server
 * started in and its ancestors, UINT64_MAX where there is none. */
void sandbox__cgsys_limits(const struct sandbox__cgsys *cs, uint64_t *memory_bytes, uint64_t *pids);
/* The CPUs the server may run on (its affinity when it started). */
unsigned sandbox__cgsys_cpus(const struct sandbox__cgsys *cs);
/* The CPU time the server and every sandbox have used so far, in ns
 * (<tag>'s cpuacct.usage on v1, cpu.stat's usage_usec on v2): 0, or
 * -errno (-ENOTSUP without CPU accounting). */
int sandbox__cgsys_cpu_ns(struct sandbox__cgsys *cs, uint64_t *ns);
/* Writes the limits of all sandboxes together on <tag>/sandboxes (0
 * lifts one). */
int sandbox__cgsys_set_budget(struct sandbox__cgsys *cs, uint64_t memory_bytes, uint64_t pids,
                              mf_error_t *err);
/* Moves the server back where it started, removes mayfly/<tag> (and
 * mayfly/ when no other server uses it). */
void sandbox__cgsys_free(struct sandbox__cgsys *cs);

/* Creates the sandbox's cgroup(s) below <tag>/sandboxes with their limits
 * and opens the files sandbox__cg_stats reads and the freezer writes. A
 * failure leaves nothing behind. */
int sandbox__cg_create(struct sandbox__cgsys *cs, const char *id, unsigned memory_mb,
                       unsigned max_pids, struct sandbox__cg **out, mf_error_t *err);
/* Sets the memory limit and the CPU share that follows it (and the quota,
 * once capped), on a live cgroup too. */
int sandbox__cg_set_memory(struct sandbox__cg *cg, unsigned memory_mb, mf_error_t *err);
/* Gives the cgroup the lowest CPU weight, for a sandbox prepared ahead of
 * any call: its runtime starts on the CPU that instances leave, and slows
 * no instance's start. sandbox__cg_set_memory gives it its function's. */
int sandbox__cg_background(struct sandbox__cg *cg, mf_error_t *err);
/* Gives the cgroup its CPU quota from its memory (see sandbox_cap_cpu). */
int sandbox__cg_cap_cpu(struct sandbox__cg *cg, unsigned cpu_mb, mf_error_t *err);
/* Freezes (true) or thaws (false) every process in the cgroup: one write.
 * -ENOTSUP without a freezer. */
int sandbox__cg_freeze(struct sandbox__cg *cg, bool frozen);
/* Renames the cgroup(s) within their parent (a pooled sandbox takes its
 * instance's id). Open files stay valid. */
int sandbox__cg_rename(struct sandbox__cg *cg, const char *id, mf_error_t *err);
/* Moves pid (a whole process) into the sandbox's cgroup(s). */
int sandbox__cg_attach(struct sandbox__cg *cg, pid_t pid, mf_error_t *err);
/* v2: the cgroup; v1: the memory controller's directory. */
const char *sandbox__cg_path(const struct sandbox__cg *cg);
int sandbox__cg_stats(const struct sandbox__cg *cg, unsigned what, sandbox_stats_t *out);
void sandbox__cg_reset_peak(struct sandbox__cg *cg);
/* SIGKILLs what is in the cgroup: cgroup.kill on v2, one sweep of
 * cgroup.procs on v1. Does not wait, and does not thaw. */
void sandbox__cg_kill(struct sandbox__cg *cg);
/* Removes the cgroup(s), retrying briefly while the kernel still counts a
 * dying process in them, closes the open files and frees cg. */
void sandbox__cg_destroy(struct sandbox__cg *cg);

#endif
