/* The servers (nodes) that share the queue's database, and which of them
 * holds which queued event (store/queue.h).
 *
 * Every node beats: it writes its row now and then, and a node whose last
 * beat is older than the lease is taken for gone by the next node to beat,
 * which puts the events it held back in the pool, where any node takes
 * them (store_qevent_take). A node that stops gives its events back
 * itself. On SQLite one server holds the data directory, so there is one
 * node at a time: the rows of the runs before it are of nodes gone.
 *
 * Calls run on the queue's connections (a writer's jobs, or the loop's at
 * the start) and return 0 or a negative errno with *err filled. */
#ifndef MAYFLY_STORE_NODES_H
#define MAYFLY_STORE_NODES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "store/queue.h"

#define STORE_NODE_ID_MAX 64

typedef struct store_node {
    char id[STORE_NODE_ID_MAX + 1];
    char address[96];         /* where its API listens, host:port */
    int64_t started_ms;
    int64_t heartbeat_ms;     /* its last beat */
    int64_t left_ms;          /* 0 while it runs; when it stopped, or was found gone */
    bool lost;                /* found gone (its lease ran out), rather than stopped */
    int64_t instances;        /* sandboxes it had at its last beat */
} store_node_t;

/* Writes n's row: its address, start, instances, and heartbeat_ms as its
 * beat's time. Then every other running node whose last beat is older
 * than n->heartbeat_ms - lease_ms is found gone: its row says so and the
 * events it held go back to the pool. *alive (may be NULL) is the number
 * of nodes whose lease holds, n included; *was_lost (may be NULL) is true
 * when another node had found n gone before this beat (n's events may be
 * another's now), and n runs again from this beat on. */
int store_node_beat(store_queue_t *q, const store_node_t *n, int64_t lease_ms, int *alive,
                    bool *was_lost, mf_error_t *err);
/* The node id stops: its events go back to the pool, its row says when it
 * left. */
int store_node_leave(store_queue_t *q, const char *id, int64_t now_ms, mf_error_t *err);
/* Every node the table has, the last started first. */
int store_node_list(store_queue_t *q, store_node_t **out, size_t *count, mf_error_t *err);
/* Forgets the nodes that left before before_ms and hold no event. */
int store_node_prune(store_queue_t *q, int64_t before_ms, mf_error_t *err);

#endif
