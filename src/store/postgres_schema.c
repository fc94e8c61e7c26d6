/* The PostgreSQL schema: one database holds what the SQLite store keeps
 * in mayfly.db, queue.db and kv.db, table by table and column by column
 * as there (INTEGER is bigint, REAL double precision, BLOB bytea), so that
 * one set of statements fits both where it can (store/rows.h).
 *
 * Migrations are numbered from 1 and applied in order inside one
 * transaction that holds an advisory lock: of several nodes starting at
 * once, the first applies them and the others, waiting on the lock, then
 * find nothing to do. The version is the integer in the one-row table
 * mayfly_schema. A later change appends a migration and never edits one
 * that has shipped.
 *
 * Text that is compared as a key or sorted on (names, ids) has the "C"
 * collation: byte order, as SQLite compares, whatever the database's
 * locale. A rowid table of SQLite whose rowid the code reads (a log
 * line's id, a queued event's seq, a dead letter's id, a KV row's id) has
 * an identity column of that name; invocations have one named rowid, the
 * tie-break of record listings' cursors. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "store/alerts_backend.h"
#include "store/budgets_backend.h"
#include "store/backend.h"
#include "store/postgres_internal.h"
#include "store/queue_rows.h"

/* Usage by statement triggers (migration 13): a record's function is a
 * qualified name (core/tenant.h), its usage row the tenant's and the name
 * within it. */
#define PG_USAGE_TENANT                                                                            \
    "CASE WHEN strpos(function, '~') > 0 THEN split_part(function, '~', 1) ELSE 'default' END"
#define PG_USAGE_LOCAL "substr(function, strpos(function, '~') + 1)"
#define PG_USAGE_FN(name, rows)                                                                    \
    "FUNCTION " name "() RETURNS trigger LANGUAGE plpgsql AS $$"                                  \
    " BEGIN " STORE_USAGE_INSERT "SELECT " PG_USAGE_TENANT ", " PG_USAGE_LOCAL ", h,"              \
    "  pg_backend_pid(), sum(requests), sum(billed_ms), sum(mb_ms), sum(cpu_ms), sum(max_rss_kb),"  \
    "  sum(egress_bytes), sum(kv_ops), sum(log_bytes) FROM (" rows ") AS d(function, h, "          \
    STORE_USAGE_COLUMNS ") GROUP BY function, h ORDER BY function, h" STORE_USAGE_ADD ";"          \
    "  RETURN NULL;"                                                                               \
    " END $$"
/* The same by tenant id too (migration 16): rows gives each record's
 * function, tenant id, hour and quantities. */
#define PG_USAGE_BY_ID_FN(name, rows)                                                              \
    "FUNCTION " name "() RETURNS trigger LANGUAGE plpgsql AS $$"                                  \
    " BEGIN INSERT INTO usage (" STORE_USAGE_KEY ", " STORE_USAGE_COLUMNS ")"                       \
    " SELECT " PG_USAGE_TENANT ", " PG_USAGE_LOCAL ", t, h, pg_backend_pid(),"                     \
    "  sum(requests), sum(billed_ms), sum(mb_ms), sum(cpu_ms), sum(max_rss_kb),"                   \
    "  sum(egress_bytes), sum(kv_ops), sum(log_bytes) FROM (" rows ")"                             \
    " AS d(function, t, h, " STORE_USAGE_COLUMNS ") GROUP BY function, t, h"                       \
    " ORDER BY function, t, h" STORE_USAGE_ADD_BY_ID ";"                                           \
    "  RETURN NULL;"                                                                               \
    " END $$"
#define PG_USAGE_IN_FN                                                                             \
    PG_USAGE_FN("mayfly_usage_in", "SELECT function, " STORE_USAGE_HOUR("n.") " AS h, "            \
                STORE_USAGE_VALUES("n.", "+") " FROM n")
#define PG_USAGE_MOVED_FN                                                                          \
    PG_USAGE_FN("mayfly_usage_moved",                                                              \
                "SELECT function, " STORE_USAGE_HOUR("n.") ", " STORE_USAGE_VALUES("n.", "+")      \
                " FROM n UNION ALL SELECT function, " STORE_USAGE_HOUR("o.") ", "                   \
                STORE_USAGE_VALUES("o.", "-") " FROM o")

static const char *const pg__migrations[] = {
    /* 1: functions (the settings the registry validates are in
     * config_json), their URLs (which go with them), shared volumes. */
    "CREATE TABLE functions ("
    "  name        text COLLATE \"C\" PRIMARY KEY,"
    "  version     bigint NOT NULL,"
    "  code_sha256 text NOT NULL,"
    "  code_size   bigint NOT NULL,"
    "  config_json text NOT NULL,"
    "  created_ms  bigint NOT NULL,"
    "  updated_ms  bigint NOT NULL"
    ");"
    "CREATE INDEX functions_code_sha256 ON functions (code_sha256);"
    "CREATE TABLE function_urls ("
    "  function    text COLLATE \"C\" PRIMARY KEY"
    "              REFERENCES functions (name) ON DELETE CASCADE,"
    "  config_json text NOT NULL,"
    "  created_ms  bigint NOT NULL,"
    "  updated_ms  bigint NOT NULL"
    ");"
    "CREATE TABLE volumes ("
    "  name       text COLLATE \"C\" PRIMARY KEY,"
    "  size_mb    bigint NOT NULL,"
    "  created_ms bigint NOT NULL"
    ");",

    /* 2: invocation records (replaced as an invocation moves on: queued →
     * running → success, each time with a new rowid, as in SQLite) and
     * function logs. */
    "CREATE TABLE invocations ("
    "  request_id        text COLLATE \"C\" PRIMARY KEY,"
    "  function          text COLLATE \"C\" NOT NULL,"
    "  version           bigint NOT NULL,"
    "  status            text NOT NULL,"
    "  start_ms          bigint NOT NULL,"
    "  duration_ms       double precision NOT NULL,"
    "  billed_ms         bigint NOT NULL,"
    "  memory_mb         bigint NOT NULL,"
    "  max_rss_kb        bigint NOT NULL,"
    "  cpu_ms            bigint NOT NULL,"
    "  cold_start        bigint NOT NULL,"
    "  init_ms           double precision NOT NULL,"
    "  error_type        text,"
    "  error_message     text,"
    "  attempts          bigint NOT NULL,"
    "  egress_json       text,"
    "  event             bytea,"
    "  event_bytes       bigint NOT NULL DEFAULT 0,"
    "  event_flags       bigint NOT NULL DEFAULT 0,"
    "  result            bytea,"
    "  result_bytes      bigint NOT NULL DEFAULT 0,"
    "  result_flags      bigint NOT NULL DEFAULT 0,"
    "  replay_of         text,"
    "  caller_request_id text,"
    "  kv_ops            bigint NOT NULL DEFAULT 0,"
    "  trigger           text,"
    "  rowid             bigint GENERATED ALWAYS AS IDENTITY"
    ");"
    "CREATE INDEX invocations_function_start ON invocations (function, start_ms, rowid);"
    "CREATE INDEX invocations_status_start ON invocations (status, start_ms);"
    "CREATE INDEX invocations_start ON invocations (start_ms, rowid);"
    "CREATE TABLE logs ("
    "  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  time_ms    bigint NOT NULL,"
    "  function   text COLLATE \"C\" NOT NULL,"
    "  request_id text COLLATE \"C\" NOT NULL,"
    "  stream     bigint NOT NULL,"
    "  message    bytea NOT NULL"
    ");"
    "CREATE INDEX logs_function ON logs (function, id);"
    "CREATE INDEX logs_request ON logs (request_id, id);",

    /* 3: the async queue: events, their attempts, dead letters,
     * idempotency keys. A seq or id is never given twice. */
    "CREATE TABLE events ("
    "  seq               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  request_id        text COLLATE \"C\" NOT NULL UNIQUE,"
    "  function          text COLLATE \"C\" NOT NULL,"
    "  event             bytea NOT NULL,"
    "  enqueued_ms       bigint NOT NULL,"
    "  next_ms           bigint NOT NULL,"
    "  attempts          bigint NOT NULL,"
    "  fn_errors         bigint NOT NULL,"
    "  running           bigint NOT NULL,"
    "  replay_of         text,"
    "  traceparent       text,"
    "  caller_request_id text,"
    "  call_depth        bigint NOT NULL DEFAULT 0,"
    "  trigger           text"
    ");"
    "CREATE INDEX events_function ON events (function);"
    "CREATE TABLE attempts ("
    "  request_id    text COLLATE \"C\" NOT NULL,"
    "  attempt       bigint NOT NULL,"
    "  start_ms      bigint NOT NULL,"
    "  duration_ms   double precision NOT NULL,"
    "  status        text NOT NULL,"
    "  error_type    text,"
    "  error_message text,"
    "  PRIMARY KEY (request_id, attempt)"
    ");"
    "CREATE TABLE dead_letters ("
    "  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  function      text COLLATE \"C\" NOT NULL,"
    "  request_id    text COLLATE \"C\" NOT NULL,"
    "  attempts      bigint NOT NULL,"
    "  condition     text NOT NULL,"
    "  error_type    text,"
    "  error_message text,"
    "  event         bytea NOT NULL,"
    "  time_ms       bigint NOT NULL,"
    "  traceparent   text,"
    "  trigger       text"
    ");"
    "CREATE INDEX dead_letters_function ON dead_letters (function, id);"
    "CREATE TABLE idempotency_keys ("
    "  function   text COLLATE \"C\" NOT NULL,"
    "  key        text COLLATE \"C\" NOT NULL,"
    "  request_id text NOT NULL,"
    "  created_ms bigint NOT NULL,"
    "  PRIMARY KEY (function, key)"
    ");"
    "CREATE INDEX idempotency_keys_created ON idempotency_keys (created_ms);",

    /* 4: schedules and their fire log. */
    "CREATE TABLE schedules ("
    "  name                text COLLATE \"C\" PRIMARY KEY,"
    "  expression          text NOT NULL,"
    "  timezone            text NOT NULL,"
    "  function            text COLLATE \"C\" NOT NULL,"
    "  input               text,"
    "  enabled             bigint NOT NULL,"
    "  flexible_window_min bigint NOT NULL,"
    "  start_ms            bigint NOT NULL,"
    "  created_ms          bigint NOT NULL,"
    "  updated_ms          bigint NOT NULL"
    ");"
    "CREATE TABLE schedule_fires ("
    "  schedule   text COLLATE \"C\" NOT NULL,"
    "  due_ms     bigint NOT NULL,"
    "  fired_ms   bigint NOT NULL,"
    "  request_id text,"
    "  error      text,"
    "  PRIMARY KEY (schedule, due_ms)"
    ");",

    /* 5: topics, their subscriptions, and what was published (the
     * deliveries themselves are events). */
    "CREATE TABLE topics ("
    "  name       text COLLATE \"C\" PRIMARY KEY,"
    "  created_ms bigint NOT NULL"
    ");"
    "CREATE TABLE subscriptions ("
    "  id         text COLLATE \"C\" PRIMARY KEY,"
    "  topic      text COLLATE \"C\" NOT NULL,"
    "  function   text COLLATE \"C\" NOT NULL,"
    "  filter     text,"
    "  created_ms bigint NOT NULL"
    ");"
    "CREATE INDEX subscriptions_topic ON subscriptions (topic);"
    "CREATE INDEX subscriptions_function ON subscriptions (function);"
    "CREATE TABLE topic_messages ("
    "  message_id text COLLATE \"C\" PRIMARY KEY,"
    "  topic      text COLLATE \"C\" NOT NULL,"
    "  subject    text,"
    "  message    bytea NOT NULL,"
    "  attributes text,"
    "  time_ms    bigint NOT NULL,"
    "  deliveries bigint NOT NULL"
    ");"
    "CREATE INDEX topic_messages_time ON topic_messages (time_ms);"
    "CREATE INDEX topic_messages_topic ON topic_messages (topic);",

    /* 6: durable executions and their operation logs. */
    "CREATE TABLE durable_executions ("
    "  id                text COLLATE \"C\" PRIMARY KEY,"
    "  function          text COLLATE \"C\" NOT NULL,"
    "  name              text COLLATE \"C\" NOT NULL,"
    "  status            text NOT NULL,"
    "  input             text NOT NULL,"
    "  result            text,"
    "  error             text,"
    "  token             text NOT NULL,"
    "  seq               bigint NOT NULL,"
    "  token_seq         bigint NOT NULL,"
    "  in_flight         bigint NOT NULL,"
    "  next_wake_ms      bigint NOT NULL,"
    "  start_ms          bigint NOT NULL,"
    "  end_ms            bigint NOT NULL,"
    "  deadline_ms       bigint NOT NULL,"
    "  retention_days    bigint NOT NULL,"
    "  invocations       bigint NOT NULL,"
    "  failures          bigint NOT NULL,"
    "  last_client_token text NOT NULL,"
    "  last_token_in     text NOT NULL,"
    "  last_response     text,"
    "  parent_id         text NOT NULL,"
    "  parent_op         text NOT NULL,"
    "  UNIQUE (function, name)"
    ");"
    "CREATE INDEX durable_executions_status ON durable_executions (status, start_ms);"
    "CREATE TABLE durable_operations ("
    "  exec_id     text COLLATE \"C\" NOT NULL,"
    "  ord         bigint NOT NULL,"
    "  op_id       text NOT NULL,"
    "  type        text NOT NULL,"
    "  status      text NOT NULL,"
    "  callback_id text COLLATE \"C\","
    "  op          text NOT NULL,"
    "  PRIMARY KEY (exec_id, ord)"
    ");"
    "CREATE INDEX durable_operations_callback ON durable_operations (callback_id)"
    "  WHERE callback_id IS NOT NULL;",

    /* 7: KV stores: keys and values, what each store holds (kept in the
     * same transactions as kv, so a store's keys and bytes are exact at
     * every commit), and the one version counter (a version is never given
     * twice). The value is the last column, as in SQLite; PostgreSQL keeps
     * a large one out of line (TOAST) by itself. */
    "CREATE TABLE kv ("
    "  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  store        text COLLATE \"C\" NOT NULL,"
    "  key          bytea NOT NULL,"
    "  version      bigint NOT NULL,"
    "  size         bigint NOT NULL,"
    "  expires_ms   bigint,"
    "  content_type text NOT NULL,"
    "  value        bytea NOT NULL"
    ");"
    "CREATE UNIQUE INDEX kv_key ON kv (store, key);"
    "CREATE INDEX kv_expires ON kv (expires_ms) WHERE expires_ms IS NOT NULL;"
    "CREATE TABLE stores ("
    "  name  text COLLATE \"C\" PRIMARY KEY,"
    "  keys  bigint NOT NULL,"
    "  bytes bigint NOT NULL"
    ");"
    "CREATE TABLE meta ("
    "  id      bigint PRIMARY KEY CHECK (id = 1),"
    "  version bigint NOT NULL"
    ");"
    "INSERT INTO meta (id, version) VALUES (1, 0);",

    /* 8: what a claim of ready events reads (store_qevent_claim): the
     * events not running, earliest due first, so that a node taking a
     * few walks the index from its start and stops, passing over what
     * other nodes hold, instead of sorting the whole queue. SQLite's
     * queue.db has no claims to serve, and no such index. */
    "CREATE INDEX events_ready ON events (next_ms, seq) WHERE running = 0;",

    /* 9: KV versions from a sequence rather than meta's one row: every
     * server's writes would wait on that row's lock until they commit,
     * whatever store they write to, and a batch holding it while it waits
     * for a store's lock held by another server's batch waiting for it
     * would be a deadlock. A sequence's numbers are never given twice and
     * never wait (kv_pg.c). It goes on from meta's count. */
    "CREATE SEQUENCE kv_versions AS bigint;"
    "SELECT setval('kv_versions', greatest(version, 1), version > 0) FROM meta;"
    "DROP TABLE meta;",
    /* 10: code packages, by the SHA-256 of their zip: every server unpacks
     * one from here into its own data directory the first time it needs
     * it. A zip is compressed already, so its bytes are kept out of line
     * as they are (EXTERNAL) rather than compressed again. */
    "CREATE TABLE code_packages ("
    "  sha256     text COLLATE \"C\" PRIMARY KEY,"
    "  zip        bytea NOT NULL,"
    "  created_ms bigint NOT NULL"
    ");"
    "ALTER TABLE code_packages ALTER COLUMN zip SET STORAGE EXTERNAL;",
    /* 11: the nodes sharing the database, and the node holding each queued
     * event (store/nodes.h): the ones no node holds are the pool, which a
     * node takes from oldest first, through the partial index. Claims of
     * ready events (8's index) gave way to it. Events queued before hold
     * no owner: the first node to take from the pool runs them. */
    "ALTER TABLE events ADD COLUMN owner text COLLATE \"C\";"
    "DROP INDEX events_ready;"
    "CREATE INDEX events_owner ON events (owner);"
    "CREATE INDEX events_pool ON events (seq) WHERE owner IS NULL;"
    STORE__NODES_TABLE("text COLLATE \"C\"", "bigint"),
    /* 12: every server keeps functions, their URLs, topics with their
     * subscriptions and schedules in memory; a change to one of those rows
     * is announced on the channel mayfly_changes as "KIND NAME" (function,
     * url and schedule by their own names, topic for a topic or any of its
     * subscriptions), at commit, so a server that hears it reads a row
     * that is there to read (cluster/changes.c). A row's key changing
     * announces the old name and the new. Log lines carry the server that
     * wrote them: its writer announces each batch on the same channel as
     * "logs NODE FIRST_ID LAST_ID FUNCTION...", and a follower elsewhere
     * reads that node's lines of that range. */
    "CREATE FUNCTION mayfly_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN"
    "  IF TG_OP <> 'INSERT' THEN"
    "   PERFORM pg_notify('mayfly_changes', TG_ARGV[0] || ' ' || (to_jsonb(OLD) ->> TG_ARGV[1]));"
    "  END IF;"
    "  IF TG_OP <> 'DELETE' THEN"
    "   PERFORM pg_notify('mayfly_changes', TG_ARGV[0] || ' ' || (to_jsonb(NEW) ->> TG_ARGV[1]));"
    "  END IF;"
    "  RETURN NULL;"
    " END $$;"
    "CREATE TRIGGER functions_changes AFTER INSERT OR UPDATE OR DELETE ON functions"
    "  FOR EACH ROW EXECUTE FUNCTION mayfly_notify_change('function', 'name');"
    "CREATE TRIGGER function_urls_changes AFTER INSERT OR UPDATE OR DELETE ON function_urls"
    "  FOR EACH ROW EXECUTE FUNCTION mayfly_notify_change('url', 'function');"
    "CREATE TRIGGER topics_changes AFTER INSERT OR UPDATE OR DELETE ON topics"
    "  FOR EACH ROW EXECUTE FUNCTION mayfly_notify_change('topic', 'name');"
    "CREATE TRIGGER subscriptions_changes AFTER INSERT OR UPDATE OR DELETE ON subscriptions"
    "  FOR EACH ROW EXECUTE FUNCTION mayfly_notify_change('topic', 'topic');"
    "CREATE TRIGGER schedules_changes AFTER INSERT OR UPDATE OR DELETE ON schedules"
    "  FOR EACH ROW EXECUTE FUNCTION mayfly_notify_change('schedule', 'name');"
    "ALTER TABLE logs ADD COLUMN node text COLLATE \"C\";",
    /* 13: metering (rows.h, STORE_USAGE_*): each record's egress and log
     * bytes, and usage per tenant, function and hour, kept by statement
     * triggers over what each statement inserted and updated (an upsert
     * fires both), each connection into rows of its own (part, its
     * backend's pid), in one order: no two writers wait on a row or
     * deadlock over two. Records written before count from here on. */
    "ALTER TABLE invocations ADD COLUMN egress_bytes bigint NOT NULL DEFAULT 0;"
    "ALTER TABLE invocations ADD COLUMN log_bytes bigint NOT NULL DEFAULT 0;"
    STORE_USAGE_TABLE("text COLLATE \"C\"", "bigint") ";"
    "CREATE " PG_USAGE_IN_FN ";"
    "CREATE " PG_USAGE_MOVED_FN ";"
    "CREATE TRIGGER invocations_usage_in AFTER INSERT ON invocations"
    "  REFERENCING NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION mayfly_usage_in();"
    "CREATE TRIGGER invocations_usage_moved AFTER UPDATE ON invocations"
    "  REFERENCING OLD TABLE AS o NEW TABLE AS n"
    "  FOR EACH STATEMENT EXECUTE FUNCTION mayfly_usage_moved();",
    /* 14: tenants (core/tenant.h): usage goes to the tenant a record's
     * function names, under the name within it (a database that ran 13
     * before had every row the default tenant's, as it still is). */
    "CREATE OR REPLACE " PG_USAGE_IN_FN ";"
    "CREATE OR REPLACE " PG_USAGE_MOVED_FN ";",
    /* 15: budgets (store/budgets.h): each budget's settings by its
     * qualified name, and the thresholds its periods crossed, each once
     * whichever server saw it first. */
    STORE_BUDGETS_TABLES("text COLLATE \"C\"", "bigint", "double precision") ";",
    /* 16: tenant ids (Lambda's tenant isolation mode, docs/metering.md):
     * each record's, each queued event's (and dead letter's), each
     * schedule's and subscription's, and usage by tenant id as well,
     * which joins usage's key and the triggers' grouping. Rows before
     * have none (''). The triggers file usage under the tenant a
     * qualified function name TENANT~NAME carries (core/tenant.h) and the
     * name within it; a name without one is the default tenant's. */
    "ALTER TABLE invocations ADD COLUMN tenant_id text COLLATE \"C\" NOT NULL DEFAULT '';"
    "ALTER TABLE events ADD COLUMN tenant_id text COLLATE \"C\" NOT NULL DEFAULT '';"
    "ALTER TABLE dead_letters ADD COLUMN tenant_id text COLLATE \"C\" NOT NULL DEFAULT '';"
    "ALTER TABLE schedules ADD COLUMN tenant_id text COLLATE \"C\" NOT NULL DEFAULT '';"
    "ALTER TABLE subscriptions ADD COLUMN tenant_id text COLLATE \"C\" NOT NULL DEFAULT '';"
    "ALTER TABLE usage ADD COLUMN tenant_id text COLLATE \"C\" NOT NULL DEFAULT '';"
    "ALTER TABLE usage DROP CONSTRAINT usage_pkey;"
    "ALTER TABLE usage ADD PRIMARY KEY (tenant, function, tenant_id, hour_ms, part);"
    "CREATE OR REPLACE " PG_USAGE_BY_ID_FN("mayfly_usage_in",
                                           "SELECT function, n.tenant_id, " STORE_USAGE_HOUR("n.")
                                           " AS h, " STORE_USAGE_VALUES("n.", "+") " FROM n") ";"
    "CREATE OR REPLACE " PG_USAGE_BY_ID_FN(
        "mayfly_usage_moved",
        "SELECT function, n.tenant_id, " STORE_USAGE_HOUR("n.") ", " STORE_USAGE_VALUES("n.", "+")
        " FROM n UNION ALL SELECT function, o.tenant_id, " STORE_USAGE_HOUR("o.") ", "
        STORE_USAGE_VALUES("o.", "-") " FROM o") ";",
    /* 17: record keys (store_record_t.key_id): the access key that made
     * each call, for an invoker to read its own calls only. */
    "ALTER TABLE invocations ADD COLUMN key_id text COLLATE \"C\";",
    /* 18: storage (rows.h, STORE_STORAGE_*): usage of KV stores and
     * volumes over time, and the samples taken (one server counts the
     * shared KV stores of each). */
    STORE_STORAGE_TABLES("bigint") ";",
    /* 19: alert rules (store/alerts.h): each rule's settings and state by
     * its qualified name, and the notifications to deliver (the outbox),
     * written before they are sent and claimed by one server at a time. */
    STORE_ALERTS_TABLES("text COLLATE \"C\"", "bigint", "bigserial PRIMARY KEY") ";",
    /* 20: prewarmed (store_record_t.prewarmed): the call ran on an
     * instance the adaptive keep-alive started ahead of it. */
    "ALTER TABLE invocations ADD COLUMN prewarmed bigint NOT NULL DEFAULT 0;",
    /* 21: phases (store_record_t.queue_ms, .sandbox_ms): the cold-start
     * breakdown; NULL when not known. */
    "ALTER TABLE invocations ADD COLUMN queue_ms double precision;"
    "ALTER TABLE invocations ADD COLUMN sandbox_ms double precision;",
};

#define PG_SCHEMA_VERSION ((int)(sizeof pg__migrations / sizeof pg__migrations[0]))

int store__pg_schema_latest(void)
{
    return PG_SCHEMA_VERSION;
}

/* The version the database has, making the table that holds it (at 0) if
 * this is the first mayfly to come. Inside the migration's transaction,
 * under its lock: two nodes never both make it. */
static int pg__version(PGconn *c, int *out, mf_error_t *err)
{
    PGresult *res = PQexec(c, "SELECT to_regclass('mayfly_schema') IS NOT NULL");
    int r = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1
                ? 0
                : store__pg_fail(c, res, "look for the schema version", err);
    bool exists = r == 0 && PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (r < 0)
        return r;
    if (!exists &&
        (r = store__pg_exec(c,
                            "CREATE TABLE mayfly_schema ("
                            "  one     boolean PRIMARY KEY DEFAULT true CHECK (one),"
                            "  version integer NOT NULL"
                            ");"
                            "INSERT INTO mayfly_schema (version) VALUES (0)",
                            "create the schema version's table", err)) < 0)
        return r;
    res = PQexec(c, "SELECT version FROM mayfly_schema");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        r = PQresultStatus(res) == PGRES_TUPLES_OK
                ? mf_error_plain(err, EIO,
                                 "store: the table mayfly_schema has %d rows, not one; it holds "
                                 "the schema version and nothing else may change it",
                                 PQntuples(res))
                : store__pg_fail(c, res, "read the schema version", err);
    } else {
        *out = atoi(PQgetvalue(res, 0, 0));
    }
    PQclear(res);
    return r;
}

int store__pg_migrate(PGconn *c, int *version, mf_error_t *err)
{
    char sql[96];
    snprintf(sql, sizeof sql, "BEGIN; SELECT pg_advisory_xact_lock(%lld)",
             (long long)STORE_PG_MIGRATION_LOCK);
    int r = store__pg_exec(c, sql, "lock the schema for migrations", err);
    if (r < 0)
        goto fail;
    int have = 0;
    if ((r = pg__version(c, &have, err)) < 0)
        goto fail;
    if (have > PG_SCHEMA_VERSION) {
        r = store__newer_schema(err, have, PG_SCHEMA_VERSION);
        goto fail;
    }
    for (int i = have; i < PG_SCHEMA_VERSION; i++) {
        snprintf(sql, sizeof sql, "apply migration %d", i + 1);
        if ((r = store__pg_exec(c, pg__migrations[i], sql, err)) < 0)
            goto fail;
    }
    if (have < PG_SCHEMA_VERSION) {
        snprintf(sql, sizeof sql, "UPDATE mayfly_schema SET version = %d", PG_SCHEMA_VERSION);
        if ((r = store__pg_exec(c, sql, "record the schema version", err)) < 0)
            goto fail;
    }
    /* The lock goes with the transaction. */
    if ((r = store__pg_commit(c, err)) < 0)
        return r;
    *version = PG_SCHEMA_VERSION;
    return 0;

fail:
    store__pg_rollback(c);
    return r;
}
