/* The CPUs the server may use. */
#ifndef MAYFLY_CORE_CPUS_H
#define MAYFLY_CORE_CPUS_H

/* The CPUs this process may run on (its affinity mask; else the CPUs
 * online), at least 1. The sandboxes inherit the mask, so these are the
 * CPUs they share. */
unsigned cpus_usable(void);

#endif
