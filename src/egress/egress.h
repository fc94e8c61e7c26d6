/* The egress gateway: the only way out of a sandbox (docs/egress.md).
 *
 * For a sandbox whose function has egress rules, egress_box_open steps
 * into its network namespace once and leaves there: default routes via
 * lo, an nftables table that redirects the TCP connections the policy
 * allows to the relay's listener and refuses (and logs) the rest, the
 * relay's listeners, the resolver's socket, and a NFLOG socket for the
 * denials. From then on everything runs on the server's loop: the relay
 * reads each connection's original destination, dials it from the host
 * and copies bytes both ways, counting them; the resolver answers the
 * names the rules allow (and opens their addresses in the kernel's sets
 * before answering) and NXDOMAIN for the rest. Each connection becomes an
 * entry of the record of the call it served. Sandboxes of functions
 * without rules get none of this: no routes, no table, nothing on their
 * cold start. */
#ifndef MAYFLY_EGRESS_EGRESS_H
#define MAYFLY_EGRESS_EGRESS_H

#include <stdbool.h>
#include <sys/socket.h>
#include <uv.h>

#include "core/error.h"
#include "egress/policy.h"
#include "sandbox/sandbox.h"

/* At most this many entries in a call's record; the rest are counted. */
#define EGRESS_RECORD_MAX 100

typedef struct egress egress_t;
typedef struct egress_box egress_box_t;

typedef struct egress_config {
    const egress_hosts_t *hosts;     /* answered before the host's resolver; may be NULL */
    unsigned max_connections;        /* open at once per sandbox (default 256) */
    bool no_splice;                  /* relay every byte in user space */
} egress_config_t;

egress_t *egress_new(uv_loop_t *loop, const egress_config_t *cfg);
/* An address the server listens on: never reachable through the gateway
 * unless a rule names that address and port. A wildcard (0.0.0.0, ::)
 * stands for every address of the host. */
void egress_add_own_address(egress_t *g, const struct sockaddr *sa);
/* Every box must be closed first. */
void egress_free(egress_t *g);

/* A line for the function's log: of the call running, or between calls. */
typedef void (*egress_log_cb)(void *ud, const char *line);

/* Sets up sb's namespace for policy (non-empty) and starts serving it. */
int egress_box_open(egress_t *g, const sandbox_t *sb, const char *function,
                    const egress_policy_t *policy, egress_log_cb log, void *ud,
                    egress_box_t **out, mf_error_t *err);
/* A call starts: connections made (or used again) from now are its own. */
void egress_box_call_begin(egress_box_t *b);
/* The call ended: its entries as a JSON array (malloc'd text), NULL when it
 * made no connection and resolved nothing denied. Connections still open
 * are recorded with what they did so far and go on into the next call's
 * record, marked "reused", if it uses them. *bytes is what the call's
 * connections moved both ways, its entries' and the rest's (those past
 * the entries kept, and bytes moved between calls on connections it did
 * not use): each byte through the box is in one call's count. */
char *egress_box_call_end(egress_box_t *b, uint64_t *bytes);
/* Closes every connection (resetting them), the listeners and sockets;
 * the box frees itself once its handles are closed. */
void egress_box_close(egress_box_t *b);

#endif
