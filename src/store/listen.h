/* Notifications from the database: a connection of its own that LISTENs
 * on a channel, for a thread that waits on its socket and reads what
 * arrives (cluster/changes.c). PostgreSQL delivers a notification when the
 * transaction that sent it commits, so what it announces is there to read.
 *
 * Only PostgreSQL has them: on SQLite one server is alone with its data,
 * and store_listen_open fails with -ENOTSUP. The libpq side lives here,
 * beside the store's other connections, so that no room but the store
 * includes libpq; a caller sees a descriptor to poll and payloads.
 *
 * A listener is used by one thread at a time. */
#ifndef MAYFLY_STORE_LISTEN_H
#define MAYFLY_STORE_LISTEN_H

#include <stddef.h>

#include "core/error.h"
#include "store/store.h"

/* The channel on which the store announces changes to what servers keep
 * in memory, one notification each, as "KIND NAME" (postgres_schema.c,
 * migration 12: function, url, topic, schedule) or, for a batch of log
 * lines a server wrote, "logs NODE FIRST_ID LAST_ID FUNCTION..." (its
 * store_set_node name; the ids of its first and last line, other
 * servers' lines perhaps between them). */
#define STORE_CHANGES_CHANNEL "mayfly_changes"

typedef struct store_listener store_listener_t;

/* Opens a connection to s's database named application_name (as
 * pg_stat_activity shows it, whatever s's URL says) and LISTENs on
 * channel (a plain identifier). */
int store_listen_open(store_t *s, const char *channel, const char *application_name,
                      store_listener_t **out, mf_error_t *err);
/* The connection's socket, to poll for input before store_listen_read; -1
 * while the connection is lost. */
int store_listen_fd(const store_listener_t *l);
typedef void (*store_notify_cb)(void *ud, const char *payload, size_t len);
/* Reads what the socket has without waiting, and calls cb with each
 * notification's payload, in the order their transactions committed.
 * -ECONNRESET (err says why) once the connection is lost: it is closed,
 * and what is sent until store_listen_reconnect succeeds is never heard. */
int store_listen_read(store_listener_t *l, store_notify_cb cb, void *ud, mf_error_t *err);
/* Connects again and LISTENs again, after a loss (a no-op while connected). */
int store_listen_reconnect(store_listener_t *l, mf_error_t *err);
void store_listen_close(store_listener_t *l);

#endif
