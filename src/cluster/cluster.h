/* The cluster: several mayfly servers (nodes) sharing one PostgreSQL
 * database (docs/cluster.md). This header is the room's whole public
 * surface, one section per concern:
 *
 * - the node's id (node_id.c): this server's name among the others;
 * - changes (changes.c): what other nodes changed in the shared tables
 *   that every node keeps in memory (functions, function URLs, topics with
 *   their subscriptions, schedules) and the log lines they wrote, heard as
 *   the store's notifications and handed to the event loop.
 *
 * The room knows the store and nothing above it: what a change means to
 * the registry, the triggers and the log followers is api/cluster.c's. */
#ifndef MAYFLY_CLUSTER_CLUSTER_H
#define MAYFLY_CLUSTER_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/error.h"
#include "core/map.h"
#include "store/store.h"

/* ---- the node's id --------------------------------------------------------- */

#define CLUSTER_NODE_ID_MAX 64

/* This server's id among the nodes, made once per start (at the first call,
 * from any thread; cli/server.c makes it before anything else asks): its
 * host name and '-' and 8 random hex digits, at most CLUSTER_NODE_ID_MAX
 * characters. A restarted server is a new node. */
const char *cluster_node_id(void);
/* What cluster_node_id makes of a host name and 32 random bits, into out
 * (size >= CLUSTER_NODE_ID_MAX + 1): the name's letters, digits, '.', '-'
 * and '_' (others become '_'; "node" when it is empty), cut to leave room
 * for the suffix. */
void cluster_node_id_format(const char *host, uint32_t rnd, char *out, size_t size);

/* ---- changes other nodes make ------------------------------------------------ */

/* What a notification is about: one of the things nodes keep in memory,
 * by name, or a batch of log lines. */
typedef enum cluster_kind {
    CLUSTER_FUNCTION, /* a function, by name */
    CLUSTER_URL,      /* a function's URL, by the function's name */
    CLUSTER_TOPIC,    /* a topic or one of its subscriptions, by the topic's name */
    CLUSTER_SCHEDULE, /* a schedule, by name */
    CLUSTER_KINDS,    /* how many kinds of kept things there are */
    CLUSTER_LOGS = CLUSTER_KINDS,
} cluster_kind_t;

#define CLUSTER_NAME_MAX TENANT_QNAME_MAX /* a qualified name (core/tenant.h) */

/* One notification's payload, parsed (store/listen.h has its forms). */
typedef struct cluster_change {
    cluster_kind_t kind;
    char name[CLUSTER_NAME_MAX + 1]; /* the kept thing's name; "" for logs */
    /* Logs: the node that wrote them, the ids of its batch's first and
     * last line, and the functions whose lines it holds, as names
     * separated by single spaces (pointing into the payload). */
    char node[CLUSTER_NODE_ID_MAX + 1];
    int64_t first_id, last_id;
    const char *functions;
    size_t functions_len;
} cluster_change_t;

/* Parses a payload: 0, or -EINVAL for anything the store does not send (an
 * unknown kind, a name that is not one, a missing or negative id, last
 * before first). Payloads come from the database, not from clients, but a
 * bad one is refused rather than trusted. */
int cluster_change_parse(const char *payload, size_t len, cluster_change_t *out);

/* The lines of one function that one node wrote, in an id range (which
 * holds other nodes' and other functions' lines too). */
typedef struct cluster_lines {
    char function[CLUSTER_NAME_MAX + 1];
    char node[CLUSTER_NODE_ID_MAX + 1];
    int64_t first_id, last_id;
} cluster_lines_t;

/* Changes gathered since the event loop last took them: a burst of
 * notifications about one thing is one entry. */
typedef struct cluster_batch {
    /* Everything may have changed (notifications were missed, or none
     * were heard yet): every kept thing is to be read again, and log
     * followers to catch up. */
    bool all;
    map_t names[CLUSTER_KINDS]; /* the names that changed (values unused) */
    cluster_lines_t *lines;     /* one per function and node, ranges merged */
    size_t nlines, cap;
    map_t lines_at; /* "NODE FUNCTION" → its index in lines + 1 */
} cluster_batch_t;

void cluster_batch_init(cluster_batch_t *b);
void cluster_batch_release(cluster_batch_t *b);
bool cluster_batch_empty(const cluster_batch_t *b);
/* Adds c to b. Lines that self (this node's id) wrote are left out: its
 * followers have had them as they were printed. */
void cluster_batch_add(cluster_batch_t *b, const cluster_change_t *c, const char *self);
/* Moves everything in src into dst, leaving src empty. */
void cluster_batch_merge(cluster_batch_t *dst, cluster_batch_t *src);

/* The wait before the next attempt to connect again after one failed (or,
 * with 0, after the connection was lost): 200 ms, doubling to 5 s. */
unsigned cluster_backoff_ms(unsigned last_ms);

typedef struct cluster_changes cluster_changes_t;
/* Called on the loop with what changed since its last call; b is the
 * callee's to read and change until it returns. */
typedef void (*cluster_changes_cb)(void *ud, cluster_batch_t *b);

/* Starts hearing changes to s's database (PostgreSQL: -ENOTSUP on SQLite,
 * where this server is alone): connects now, with a connection of its own
 * named "mayfly-listen" in pg_stat_activity, and runs a thread that waits
 * on it and hands what it hears to cb on loop, once with all set first
 * (what changed before the listening began). A lost connection is opened
 * again with backoff (cluster_backoff_ms), logged once when lost and once
 * when back, and then cb hears all. self is this node's id. */
int cluster_changes_start(uv_loop_t *loop, store_t *s, const char *self, cluster_changes_cb cb,
                          void *ud, cluster_changes_t **out, mf_error_t *err);
/* Stops the thread and closes the connection; cb is not called again.
 * NULL is fine. */
void cluster_changes_stop(cluster_changes_t *c);

#endif
