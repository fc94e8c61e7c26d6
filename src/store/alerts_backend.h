/* How store/alerts.h's calls reach a backend, and the statements both
 * word alike. Not for other modules. */
#ifndef MAYFLY_STORE_ALERTS_BACKEND_H
#define MAYFLY_STORE_ALERTS_BACKEND_H

#include "store/alerts.h"
#include "store/rows.h"

typedef struct store__alert_ops {
    int (*put)(store_t *s, const store_alert_rule_t *r, bool *created, mf_error_t *err);
    int (*state_put)(store_t *s, const char *name, const char *state_json, mf_error_t *err);
    int (*del)(store_t *s, const char *name, mf_error_t *err);
    int (*list)(store_t *s, store_alert_rule_t **out, size_t *count, mf_error_t *err);
    int (*note_add)(store_t *s, store_alert_note_t *n, mf_error_t *err);
    int (*note_claim)(store_t *s, const char *node, int64_t now_ms, int64_t stale_ms, int limit,
                      store_alert_note_t **out, size_t *count, mf_error_t *err);
    int (*note_finish)(store_t *s, int64_t id, bool delivered, int64_t now_ms,
                       const char *last_error, mf_error_t *err);
    int (*note_retry)(store_t *s, int64_t id, int attempts, int64_t next_ms, const char *last_error,
                      mf_error_t *err);
    int (*note_recover)(store_t *s, const char *node, int64_t done_before_ms, mf_error_t *err);
} store__alert_ops_t;

extern const store__alert_ops_t store__sqlite_alert_ops;
extern const store__alert_ops_t store__pg_alert_ops;

/* The tables: TEXT, INT the backend's names, ID its auto-numbered key. */
#define STORE_ALERTS_TABLES(TEXT, INT, ID)                                                         \
    "CREATE TABLE alert_rules ("                                                                   \
    "  name        " TEXT " PRIMARY KEY NOT NULL,"                                                 \
    "  config_json " TEXT " NOT NULL,"                                                             \
    "  state_json  " TEXT ","                                                                      \
    "  created_ms  " INT " NOT NULL,"                                                              \
    "  updated_ms  " INT " NOT NULL"                                                               \
    ")"                                                                                            \
    ";CREATE TABLE alert_outbox ("                                                                 \
    "  id         " ID ","                                                                         \
    "  created_ms " INT " NOT NULL,"                                                               \
    "  tenant     " TEXT " NOT NULL,"                                                              \
    "  kind       " TEXT " NOT NULL,"                                                              \
    "  target     " TEXT " NOT NULL,"                                                              \
    "  body       " TEXT " NOT NULL,"                                                              \
    "  attempts   " INT " NOT NULL DEFAULT 0,"                                                     \
    "  next_ms    " INT " NOT NULL,"                                                               \
    "  claimed_by " TEXT ","                                                                       \
    "  claimed_ms " INT ","                                                                        \
    "  done_ms    " INT ","                                                                        \
    "  delivered  " INT ","                                                                        \
    "  last_error " TEXT ")"                                                                       \
    ";CREATE INDEX alert_outbox_due ON alert_outbox (done_ms, next_ms)"

#define STORE_ALERT_COLUMNS "name, config_json, state_json, created_ms, updated_ms"
#define STORE_ALERT_COUNT(P) "SELECT count(*) FROM alert_rules WHERE name = " P(1)
/* Other settings: the state starts again. */
#define STORE_ALERT_PUT(P)                                                                         \
    "INSERT INTO alert_rules (" STORE_ALERT_COLUMNS                                                \
    ") VALUES (" P(1) ", " P(2) ", NULL, " P(3) ", " P(                                            \
        4) ") ON CONFLICT (name) DO UPDATE SET state_json = CASE WHEN"                             \
           " alert_rules.config_json = excluded.config_json THEN alert_rules.state_json END,"      \
           " config_json = excluded.config_json, updated_ms = excluded.updated_ms"
#define STORE_ALERT_STATE_PUT(P) "UPDATE alert_rules SET state_json = " P(2) " WHERE name = " P(1)
#define STORE_ALERT_DELETE(P) "DELETE FROM alert_rules WHERE name = " P(1)
#define STORE_ALERT_LIST "SELECT " STORE_ALERT_COLUMNS " FROM alert_rules ORDER BY name"
#define STORE_NOTE_COLUMNS "id, created_ms, tenant, kind, target, body, attempts, next_ms"
#define STORE_NOTE_ADD(P)                                                                          \
    "INSERT INTO alert_outbox (created_ms, tenant, kind, target, body, next_ms) VALUES (" P(       \
        1) ", " P(2) ", " P(3) ", " P(4) ", " P(5) ", " P(1) ") RETURNING id"
/* LOCK: the backend's words that keep two claims apart ("" where one
 * writer at a time is all there is). */
#define STORE_NOTE_CLAIM(P, LOCK)                                                                  \
    "UPDATE alert_outbox SET claimed_by = " P(1) ", claimed_ms = " P(                              \
        2) " WHERE id IN (SELECT id FROM alert_outbox WHERE done_ms IS "                           \
           "NULL AND next_ms <= " P(2) " AND (claimed_by IS NULL OR "                              \
                                       "claimed_ms < " P(3) ") ORDER BY "                          \
                                                            "id LIMIT " P(4) LOCK                  \
        ") RETURNING " STORE_NOTE_COLUMNS
#define STORE_NOTE_FINISH(P)                                                                       \
    "UPDATE alert_outbox SET done_ms = " P(2) ", delivered = " P(3) ", last_error = " P(           \
        4) ", claimed_by = NULL, attempts = attempts + 1 WHERE id = " P(1)
#define STORE_NOTE_RETRY(P)                                                                        \
    "UPDATE alert_outbox SET attempts = " P(2) ", next_ms = " P(3) ", last_error = " P(            \
        4) ", claimed_by = NULL, claimed_ms = NULL WHERE id = " P(1)
#define STORE_NOTE_RELEASE(P)                                                                      \
    "UPDATE alert_outbox SET claimed_by = NULL, claimed_ms = NULL WHERE done_ms IS NULL AND"       \
    " claimed_by IS NOT NULL AND (" P(1) " = '' OR claimed_by = " P(1) ")"
#define STORE_NOTE_PRUNE(P) "DELETE FROM alert_outbox WHERE done_ms < " P(1)

void store__fill_alert_rule(const store__row_t *row, void *item);
void store__fill_alert_note(const store__row_t *row, void *item);
int store__bind_alert_rule(const store__binder_t *b, const store_alert_rule_t *r);
int store__bind_alert_note(const store__binder_t *b, const store_alert_note_t *n);
int store__no_alert_rule(mf_error_t *err, const char *name);

#endif
