/* Whether the store can be reached: one notion for the whole process,
 * kept by the connections to a shared database (PostgreSQL), which all
 * lead to the same server. SQLite's file is never out of reach, so on
 * SQLite the store is always up.
 *
 * The store goes down when a connection that was lost cannot be made
 * again (a failed first try of a reconnect), and comes back when any
 * connection is made again; each change is logged once ("store: lost
 * PostgreSQL (why); retrying", "store: PostgreSQL is back after N s").
 * While it is down, what answers a request fails at once with -ENOTCONN
 * and a message for the client, rather than waiting for it; what the
 * server owes (records, logs, the queue's own updates) waits in its
 * writer (store/writer.h). */
#ifndef MAYFLY_STORE_HEALTH_H
#define MAYFLY_STORE_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"

/* How long a connection waits between tries while the store is down:
 * from the first, doubling, to the last (and at once when another finds
 * it back). Never a loop that spins, never one that gives up. */
#define STORE_RETRY_FIRST_MS 200u
#define STORE_RETRY_LAST_MS 5000u

/* Since when (wall clock, ms) the store has been out of reach; 0 while it
 * is up. A relaxed atomic read: cheap enough for any request path. */
int64_t store_down_since_ms(void);

/* 0 while the store is up; else -ENOTCONN, with err saying "the store
 * (PostgreSQL) cannot be reached: <why>; retry later". */
int store_check_up(mf_error_t *err);

/* Whether r is the store's error for a database out of reach (a
 * connection lost during the call, -ECONNRESET, or one not tried because
 * the store is down or reconnecting, -ENOTCONN): the request may succeed
 * later, and is answered 503. */
bool store_unavailable(int r);

/* ---- for the store's own files --------------------------------------- */

/* A connection could not be made again: the store goes down (logged
 * once, with why; a later why replaces it in what clients are told).
 * True when this call took it down. */
bool store__health_lost(const char *why);
/* A connection was made again: the store is up (logged once), and every
 * watcher is woken to try its own connection now. */
void store__health_back(void);
/* How many times the store has gone down: a connection made while this
 * number was lower than it is now predates an outage. */
uint64_t store__health_outages(void);

/* Something waiting to reconnect (a writer's thread, a connection's
 * reconnecting thread), woken when the store comes back. wake is called
 * with the health's own lock held: it may take its owner's lock, and no
 * one may call the functions above while holding a lock that wake
 * takes. */
typedef struct store__health_watch {
    void (*wake)(void *ud);
    void *ud;
    struct store__health_watch *prev, *next;
    bool on;
} store__health_watch_t;

void store__health_watch(store__health_watch_t *w);
void store__health_unwatch(store__health_watch_t *w);

#endif
