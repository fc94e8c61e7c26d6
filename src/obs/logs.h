/* Function logs: the lines a function prints, tagged with the request id
 * and a timestamp, kept in the store (handed in batches to a writer thread,
 * never written on the event loop) and streamed to followers as they
 * arrive. */
#ifndef MAYFLY_OBS_LOGS_H
#define MAYFLY_OBS_LOGS_H

#include <stddef.h>
#include <uv.h>

#include "store/store.h"

typedef struct obs_logs obs_logs_t;
typedef struct obs_log_sub obs_log_sub_t;
typedef void (*obs_log_cb)(const store_log_t *line, void *ud);

/* writer is a store_writer_db writer of the store (shared with records). */
obs_logs_t *obs_logs_new(uv_loop_t *loop, store_writer_t *writer);
/* Appends one line (without its newline). */
void obs_logs_append(obs_logs_t *l, const char *function, const char *request_id, int stream,
                     const char *msg, size_t len);
/* Hands every queued line to the writer now. */
void obs_logs_flush(obs_logs_t *l);
/* Calls cb(ud) on the loop once every line appended so far is written. */
void obs_logs_sync(obs_logs_t *l, void (*cb)(void *ud), void *ud);
/* Calls cb for every new line of function (and request_id, when not NULL)
 * until unsubscribed. */
obs_log_sub_t *obs_logs_subscribe(obs_logs_t *l, const char *function, const char *request_id,
                                  obs_log_cb cb, void *ud);
void obs_logs_unsubscribe(obs_logs_t *l, obs_log_sub_t *sub);

/* ---- lines other servers wrote (a shared store) -------------------------------
 *
 * Servers sharing a database each write their own lines; a follower here
 * gets another server's too, read (on the writer's thread) when that
 * server says it wrote them, in the order it wrote them, each once. */

/* What a follower's first read gave: node's lines up to id (node NULL: the
 * last id of any line it gave, where catching up starts for a server it
 * had nothing of). */
void obs_logs_seen(obs_logs_t *l, obs_log_sub_t *sub, const char *node, int64_t id);
/* Server node (not this one) wrote lines first_id to last_id of function
 * (other lines between): its followers here get theirs. */
void obs_logs_remote(obs_logs_t *l, const char *function, const char *node, int64_t first_id,
                     int64_t last_id);
/* What other servers wrote may not have been heard of (the notifications
 * were lost for a while): every follower gets their lines after the last
 * it had of each. */
void obs_logs_remote_resync(obs_logs_t *l);
void obs_logs_free(obs_logs_t *l);

#endif
