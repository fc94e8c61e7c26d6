/* Control groups for sandboxes, on cgroup v1 (one directory per controller
 * hierarchy) and v2 (one unified directory). Internal to src/sandbox/.
 *
 * Layout: <base>/mayfly/<tag>/<sandbox id>, where <tag> is
 * "server-<pid>-<start time>" of the server that made it. The tag lets two
 * servers share a host without one mistaking the other's sandboxes for
 * leftovers, and lets a new server recognise the cgroups of a dead one.
 *   v1: <base> is the server's own cgroup in each of the memory, cpu,
 *       cpuacct and pids hierarchies, so a limit put on the server (a
 *       systemd MemoryMax=, a container's memory limit) also bounds its
 *       sandboxes. With the server in the root cgroup that is
 *       /sys/fs/cgroup/<controller>/mayfly/….
 *   v2: <base> is the root of the visible hierarchy (/sys/fs/cgroup):
 *       v2 allows controllers in a cgroup's children only when the cgroup
 *       itself holds no process, which the server's own cgroup does. */
#ifndef MAYFLY_SANDBOX_CGROUP_H
#define MAYFLY_SANDBOX_CGROUP_H

#include <sys/types.h>

#include "core/error.h"
#include "sandbox/sandbox.h"

struct sandbox__cgsys;
struct sandbox__cg;

/* Finds the hierarchies, creates mayfly/<tag>, enables the v2 controllers
 * and removes what dead servers left behind. */
int sandbox__cgsys_init(struct sandbox__cgsys **out, mf_error_t *err);
sandbox_cgroup_version_t sandbox__cgsys_version(const struct sandbox__cgsys *cs);
/* Removes mayfly/<tag> (and mayfly/ when no other server uses it). */
void sandbox__cgsys_free(struct sandbox__cgsys *cs);

/* Creates the sandbox's cgroup(s) with their limits and opens the files
 * sandbox__cg_stats reads. A failure leaves nothing behind. */
int sandbox__cg_create(struct sandbox__cgsys *cs, const char *id, unsigned memory_mb,
                       unsigned max_pids, struct sandbox__cg **out, mf_error_t *err);
/* Sets the memory limit and the CPU share that follows it, on a live
 * cgroup too. */
int sandbox__cg_set_memory(struct sandbox__cg *cg, unsigned memory_mb, mf_error_t *err);
/* Renames the cgroup(s) within their parent (a pooled sandbox takes its
 * instance's id). Open stat files stay valid. */
int sandbox__cg_rename(struct sandbox__cg *cg, const char *id, mf_error_t *err);
/* Moves pid (a whole process) into the sandbox's cgroup(s). */
int sandbox__cg_attach(struct sandbox__cg *cg, pid_t pid, mf_error_t *err);
/* v2: the cgroup; v1: the memory controller's directory. */
const char *sandbox__cg_path(const struct sandbox__cg *cg);
int sandbox__cg_stats(const struct sandbox__cg *cg, unsigned what, sandbox_stats_t *out);
void sandbox__cg_reset_peak(struct sandbox__cg *cg);
/* SIGKILLs what is in the cgroup: cgroup.kill on v2, one sweep of
 * cgroup.procs on v1. Does not wait. */
void sandbox__cg_kill(struct sandbox__cg *cg);
/* Removes the cgroup(s), retrying briefly while the kernel still counts a
 * dying process in them, closes the stat files and frees cg. */
void sandbox__cg_destroy(struct sandbox__cg *cg);

#endif
