/* mayfly server: flags, start-up checks, the event loop, and a graceful
 * shutdown on SIGTERM or SIGINT. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "api/api.h"
#include "cli/commands.h"
#include "cluster/cluster.h"
#include "console/console.h"
#include "core/cleanup.h"
#include "core/clock.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "egress/policy.h"
#include "exec/exec.h"
#include "invoke/async.h"
#include "meter/budget.h"
#include "watch/alerts.h"
#include "meter/meter.h"
#include "trigger/topics.h"
#include "durable/durable.h"
#include "obs/logs.h"
#include "obs/loop.h"
#include "obs/metrics.h"
#include "obs/records.h"
#include "obs/otlp.h"
#include "obs/retention.h"
#include "sandbox/sandbox.h"
#include "state/kv.h"
#include "state/volume.h"
#include "store/store.h"
#include "trigger/schedules.h"
#include "trigger/url.h"
#include "watch/keepalive.h"
#include "registry/jvm.h"

typedef struct server_opts {
    char host[256];
    int port;
    const char *data_dir;
    const char *store;           /* --store: a postgresql:// URL, or NULL for SQLite in data_dir */
    const char *keys_file;
    const char *runtimes_dir;
    unsigned sandbox_pool;
    unsigned zygotes;
    unsigned keep_alive_bin_s;   /* --keep-alive-bin-s */
    unsigned java_zygotes;
    const char *jvm_dir;         /* --jvm-dir: where the JDKs are (default /usr/lib/jvm) */
    uint32_t uid_first, uid_count;
    uint64_t sandbox_memory_mb;  /* 0: from the machine's size */
    uint64_t sandbox_max_pids;   /* 0: from the machine's size */
    http_server_config_t http;
    code_limits_t code;
    exec_config_t exec;
    async_config_t async;
    bool default_egress_set;
    egress_policy_t default_egress; /* --default-egress, owned */
    const char *egress_hosts_file;
    egress_hosts_t *egress_hosts;   /* loaded from it; exec.egress_hosts points here */
    meter_prices_t prices;          /* --prices, or Lambda's list prices */
    int64_t storage_interval_ms;    /* --storage-interval (0: meter's default) */
    unsigned alert_interval_s;      /* --alert-interval-s */
    obs_retention_config_t retention;
    const char *otlp_endpoint;      /* --otlp-endpoint, or NULL */
    state_kv_config_t kv;           /* --kv-max-* */
    schedules_config_t schedules;   /* --test-clock, --clock-offset */
    const char *url_domain;         /* --url-domain, or NULL */
    const char *console_dir;        /* --console-dir, or NULL: the embedded console */
} server_opts_t;

typedef struct server_state {
    uv_loop_t *loop;
    http_server_t *http;
    exec_t *exec;
    async_t *async;
    topics_t *topics;            /* on the async queue: closed before it */
    durable_t *durable;          /* on the async queue: closed before it */
    state_kv_t *kv;
    schedules_t *schedules;
    cluster_changes_t *changes;  /* other nodes' changes, heard (a shared store) */
    api_cluster_t *cluster;      /* and taken in */
    uv_signal_t sigterm, sigint;
    bool stopping;
    int stop_waits;              /* the HTTP server and the async queue */
} server_state_t;

static const char usage_text[] =
    "usage: mayfly server [OPTIONS]\n"
    "\n"
    "Runs the mayfly server until SIGTERM or SIGINT.\n"
    "\n"
    "  --listen HOST:PORT        address to listen on (default 127.0.0.1:8700, env MAYFLY_LISTEN)\n"
    "  --data DIR                data directory (default ./.mayfly, env MAYFLY_DATA)\n"
    "  --store URL               keep functions, code packages, records, logs and the\n"
    "                            async queue in a PostgreSQL database that several\n"
    "                            servers may share, e.g. postgresql://mayfly@db/mayfly\n"
    "                            (env MAYFLY_STORE; default: SQLite files under --data);\n"
    "                            --data then keeps only this server's own files (code\n"
    "                            unpacked from the store, volumes)\n"
    "  --keys FILE               access keys, one `ACCESS_KEY_ID SECRET` a line\n"
    "                            (or env MAYFLY_ACCESS_KEYS=ID:SECRET[,ID:SECRET...]);\n"
    "                            without keys the server runs in development mode and\n"
    "                            only listens on loopback\n"
    "  --log-format text|json    log line format on stderr (default text)\n"
    "  --log-level LEVEL         debug, info, warn or error (default info)\n"
    "  --max-connections N       open connections at most (default 1024)\n"
    "  --header-timeout S        seconds a client has to send a whole request (default 30)\n"
    "  --keepalive-timeout S     seconds an idle connection stays open (default 60)\n"
    "  --max-connections-per-client N\n"
    "                            open connections from one client address at most\n"
    "                            (default 128; 0: no bound, e.g. behind a reverse proxy)\n"
    "  --max-buffered-body-mb N  MiB of request bodies held at once while they arrive\n"
    "                            (counted from each head's Content-Length); a request\n"
    "                            that would go over gets 503 and Retry-After before its\n"
    "                            body is read (default 256)\n"
    "  --max-zip-mb N            largest code zip in MiB (default 50)\n"
    "  --max-unzipped-mb N       largest unpacked code package in MiB (default 250)\n"
    "  --max-files N             most files in a code package (default 10000)\n"
    "  --idle-timeout S          seconds an idle instance of a function with the\n"
    "                            fixed keep-alive is kept warm (default 300)\n"
    "  --keep-warm adaptive|fixed  the keep-alive of functions without keep_warm\n"
    "                            (default adaptive: learnt from the time between\n"
    "                            calls, docs/keep-alive.md)\n"
    "  --keep-alive-max-s S      the longest an adaptive keep-alive keeps an idle\n"
    "                            instance warm, 1-864000 seconds (default the\n"
    "                            histogram's range: 240 bins, 4 hours)\n"
    "  --max-starting N          instances starting at once, of every function;\n"
    "                            more wait for one to finish starting (default\n"
    "                            twice the CPUs the server may use, at least 2)\n"
    "  --scale-out cpu-aware|eager  while every CPU is busy, a short call that\n"
    "                            finds no instance free waits a moment for a busy\n"
    "                            one (cpu-aware, the default), or always starts\n"
    "                            another (eager)\n"
    "  --busy-cpu-percent N      CPU-aware scale-out counts every CPU busy while the\n"
    "                            server and its sandboxes use N%% of the CPUs it\n"
    "                            may use, 5-100 (default 80)\n"
    "  --accept-first N|off      while events are being accepted and the event\n"
    "                            loop is busy N%% of the time (0-100, default 90; 0:\n"
    "                            whatever the loop), queued events run at most 2\n"
    "                            attempts in all, taking turns, so that accepting\n"
    "                            goes first (off: never)\n"
    "  --keep-alive-bin-s S      the adaptive keep-alive's histogram bin, 1-3600\n"
    "                            seconds (default 60; 240 bins)\n"
    "  --max-queue N             calls waiting per function before 429 (default 100)\n"
    "  --max-stream-mb N         largest answer a function streams (Lambda's\n"
    "                            RESPONSE_STREAM), in MiB, 1-4096 (default 200)\n"
    "  --max-pids N              processes per instance (default 128)\n"
    "  --region NAME             AWS_REGION inside functions (default us-east-1)\n"
    "  --runtimes-dir DIR        the runtimes folder (default: next to the binary)\n"
    "  --sandbox-pool N          sandboxes kept prepared for cold starts (default 4; 0: none)\n"
    "  --zygotes N               python3 and nodejs runtimes each kept started ahead\n"
    "                            for cold starts (default 2; 0: none)\n"
    "  --java-zygotes N          JVMs kept started ahead for each Java runtime the\n"
    "                            host has a JDK for (java17, java21) (default 1, or 0\n"
    "                            with --zygotes 0; 0: none)\n"
    "  --jvm-dir DIR             where the JDKs of the Java runtimes are (default\n"
    "                            /usr/lib/jvm; only JDKs under /usr are used)\n"
    "  --sandbox-memory-mb N     memory of all instances together, in MiB; a new\n"
    "                            instance starts only while it fits, and the kernel\n"
    "                            enforces it (default: the machine's memory, or its\n"
    "                            cgroup's limit, less 1/8 of it (0.5 to 4 GiB) for the\n"
    "                            server and the system and 128 MiB per prepared sandbox)\n"
    "  --sandbox-max-pids N      processes of all sandboxes together (default: half\n"
    "                            of the machine's pid_max or threads-max)\n"
    "  --uid-range FIRST:COUNT   user ids sandboxes run as, one per sandbox (default\n"
    "                            1879048192:65536; as root only)\n"
    "  --retry-base-ms N         async retry schedule: function errors retry after\n"
    "                            about 1x and 2x N ms (default 60000); alert\n"
    "                            notifications retry after 1x, 2x, 4x … N ms\n"
    "  --max-async-event-kb N    largest async event in KiB (default 256)\n"
    "  --shutdown-grace S        seconds a stop waits for running async events (default 10)\n"
    "  --lease-s S               nodes sharing a --store: seconds without a beat after\n"
    "                            which a node is taken for gone and others run its\n"
    "                            events (default 15)\n"
    "  --default-egress RULES    egress rules, comma-separated, of functions created\n"
    "                            without \"egress\" (through /v1 or Lambda's API), e.g.\n"
    "                            '*:443,10.0.0.0/8' (default: none, no network)\n"
    "  --prices FILE             unit prices of usage reports, a JSON object\n"
    "                            (docs/metering.md; default: Lambda's x86 list prices)\n"
    "  --storage-interval S      seconds between samples of what KV stores and volumes\n"
    "                            hold, for storage's usage (default 60)\n"
    "  --alert-interval-s S      seconds between evaluations of the alert rules\n"
    "                            (docs/alerts.md; default 10)\n"
    "  --egress-hosts FILE       extra name-to-address entries the gateway resolves\n"
    "                            first, in /etc/hosts syntax (e.g. for split-horizon DNS)\n"
    "  --egress-max-connections N\n"
    "                            outbound connections one instance may hold open at\n"
    "                            once, 1-65536 (default 256)\n"
    "  --egress-splice on|off    after a connection's first exchange, hand its bytes\n"
    "                            over in the kernel (BPF sockmap) instead of through\n"
    "                            the server (default on, where the kernel allows it)\n"
    "  --retention-days N        invocation records (with their payloads) and log\n"
    "                            lines are kept N days, 1-3650 (default 7)\n"
    "  --records-max-mb N        and within N MB of the store, oldest going first,\n"
    "                            16-1048576 (default 1024)\n"
    "  --otlp-endpoint URL       export every call's trace to an OpenTelemetry\n"
    "                            collector, OTLP over HTTP (JSON), e.g.\n"
    "                            http://127.0.0.1:4318/v1/traces (default: none)\n"
    "  --dead-letter-days N      dead letters not redriven are kept N days, 1-3650\n"
    "                            (default 14)\n"
    "  --kv-max-value-kb N       largest value of a key-value store in KiB, 1-65536\n"
    "                            (default 1024)\n"
    "  --kv-max-store-mb N       keys and values one key-value store may hold, in MiB,\n"
    "                            1-1048576 (default 256); past it writes get 507\n"
    "  --kv-max-keys N           keys one key-value store may hold, 1-1000000000\n"
    "                            (default 1000000)\n"
    "  --url-domain D            also serve each function URL at http://NAME.D/ (by the\n"
    "                            Host header; D may end with :PORT, as the URLs shown\n"
    "                            then do); URLs are always at /url/NAME/ too\n"
    "  --console-dir DIR         serve /console/ from the files under DIR, read at each\n"
    "                            request (for working on the console; default: the\n"
    "                            files built into this binary)\n"
    "  --disable-egress          no gateway at all: functions with egress rules fail\n"
    "                            to start (the rest are as they are without it)\n"
    "  --test-clock TIME         for tests: the schedules' clock stands still at TIME\n"
    "                            (RFC 3339, e.g. 2026-03-28T12:00:00Z) and moves only\n"
    "                            by POST /v1/test/clock {\"advance_s\": N} or\n"
    "                            {\"now\": TIME}, which answers once the fires it\n"
    "                            caused are queued (default: the real clock)\n"
    "  --clock-offset S          for tests: the schedules' clock runs S seconds (may be\n"
    "                            negative) ahead of the real one (default 0)\n"
    "  -h, --help                show this help\n";

enum {
    OPT_LISTEN = 256, OPT_DATA, OPT_STORE, OPT_KEYS, OPT_LOG_FORMAT, OPT_LOG_LEVEL, OPT_MAX_CONNS,
    OPT_HEADER_TIMEOUT, OPT_KEEPALIVE_TIMEOUT, OPT_MAX_ZIP, OPT_MAX_UNZIPPED, OPT_MAX_FILES,
    OPT_IDLE_TIMEOUT, OPT_MAX_QUEUE, OPT_MAX_STREAM, OPT_MAX_PIDS, OPT_REGION, OPT_RUNTIMES_DIR,
    OPT_SANDBOX_POOL, OPT_ZYGOTES, OPT_JAVA_ZYGOTES, OPT_JVM_DIR, OPT_RETRY_BASE, OPT_MAX_ASYNC_EVENT, OPT_SHUTDOWN_GRACE,
    OPT_SANDBOX_MEMORY, OPT_SANDBOX_MAX_PIDS, OPT_UID_RANGE,
    OPT_MAX_CONNS_PER_CLIENT, OPT_MAX_BUFFERED_BODY, OPT_DEFAULT_EGRESS, OPT_EGRESS_HOSTS,
    OPT_EGRESS_MAX_CONNS,
    OPT_PRICES,
    OPT_STORAGE_INTERVAL,
    OPT_ALERT_INTERVAL,
    OPT_DISABLE_EGRESS,
    OPT_EGRESS_SPLICE,
    OPT_RETENTION_DAYS,
    OPT_RECORDS_MAX_MB,
    OPT_DEAD_LETTER_DAYS,
    OPT_OTLP_ENDPOINT,
    OPT_KV_MAX_VALUE,
    OPT_KV_MAX_STORE,
    OPT_KV_MAX_KEYS,
    OPT_TEST_CLOCK,
    OPT_CLOCK_OFFSET,
    OPT_URL_DOMAIN,
    OPT_CONSOLE_DIR,
    OPT_LEASE,
    OPT_KEEP_WARM,
    OPT_MAX_STARTING,
    OPT_KEEP_ALIVE_BIN,
    OPT_KEEP_ALIVE_MAX,
    OPT_SCALE_OUT,
    OPT_BUSY_CPU_PERCENT,
    OPT_ACCEPT_FIRST,
};

static const struct option long_opts[] = {
    { "listen", required_argument, NULL, OPT_LISTEN },
    { "data", required_argument, NULL, OPT_DATA },
    { "store", required_argument, NULL, OPT_STORE },
    { "keys", required_argument, NULL, OPT_KEYS },
    { "log-format", required_argument, NULL, OPT_LOG_FORMAT },
    { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
    { "max-connections", required_argument, NULL, OPT_MAX_CONNS },
    { "header-timeout", required_argument, NULL, OPT_HEADER_TIMEOUT },
    { "keepalive-timeout", required_argument, NULL, OPT_KEEPALIVE_TIMEOUT },
    { "max-connections-per-client", required_argument, NULL, OPT_MAX_CONNS_PER_CLIENT },
    { "max-buffered-body-mb", required_argument, NULL, OPT_MAX_BUFFERED_BODY },
    { "max-zip-mb", required_argument, NULL, OPT_MAX_ZIP },
    { "max-unzipped-mb", required_argument, NULL, OPT_MAX_UNZIPPED },
    { "max-files", required_argument, NULL, OPT_MAX_FILES },
    { "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
    { "max-queue", required_argument, NULL, OPT_MAX_QUEUE },
    { "max-stream-mb", required_argument, NULL, OPT_MAX_STREAM },
    { "max-pids", required_argument, NULL, OPT_MAX_PIDS },
    { "region", required_argument, NULL, OPT_REGION },
    { "runtimes-dir", required_argument, NULL, OPT_RUNTIMES_DIR },
    { "sandbox-pool", required_argument, NULL, OPT_SANDBOX_POOL },
    { "zygotes", required_argument, NULL, OPT_ZYGOTES },
    { "java-zygotes", required_argument, NULL, OPT_JAVA_ZYGOTES },
    { "jvm-dir", required_argument, NULL, OPT_JVM_DIR },
    { "retry-base-ms", required_argument, NULL, OPT_RETRY_BASE },
    { "lease-s", required_argument, NULL, OPT_LEASE },
    { "keep-warm", required_argument, NULL, OPT_KEEP_WARM },
    { "scale-out", required_argument, NULL, OPT_SCALE_OUT },
    { "busy-cpu-percent", required_argument, NULL, OPT_BUSY_CPU_PERCENT },
    { "accept-first", required_argument, NULL, OPT_ACCEPT_FIRST },
    { "max-starting", required_argument, NULL, OPT_MAX_STARTING },
    { "keep-alive-bin-s", required_argument, NULL, OPT_KEEP_ALIVE_BIN },
    { "keep-alive-max-s", required_argument, NULL, OPT_KEEP_ALIVE_MAX },
    { "max-async-event-kb", required_argument, NULL, OPT_MAX_ASYNC_EVENT },
    { "shutdown-grace", required_argument, NULL, OPT_SHUTDOWN_GRACE },
    { "sandbox-memory-mb", required_argument, NULL, OPT_SANDBOX_MEMORY },
    { "sandbox-max-pids", required_argument, NULL, OPT_SANDBOX_MAX_PIDS },
    { "uid-range", required_argument, NULL, OPT_UID_RANGE },
    { "default-egress", required_argument, NULL, OPT_DEFAULT_EGRESS },
    { "prices", required_argument, NULL, OPT_PRICES },
    { "storage-interval", required_argument, NULL, OPT_STORAGE_INTERVAL },
    { "alert-interval-s", required_argument, NULL, OPT_ALERT_INTERVAL },
    { "egress-hosts", required_argument, NULL, OPT_EGRESS_HOSTS },
    { "egress-max-connections", required_argument, NULL, OPT_EGRESS_MAX_CONNS },
    { "disable-egress", no_argument, NULL, OPT_DISABLE_EGRESS },
    { "egress-splice", required_argument, NULL, OPT_EGRESS_SPLICE },
    { "retention-days", required_argument, NULL, OPT_RETENTION_DAYS },
    { "records-max-mb", required_argument, NULL, OPT_RECORDS_MAX_MB },
    { "dead-letter-days", required_argument, NULL, OPT_DEAD_LETTER_DAYS },
    { "otlp-endpoint", required_argument, NULL, OPT_OTLP_ENDPOINT },
    { "kv-max-value-kb", required_argument, NULL, OPT_KV_MAX_VALUE },
    { "kv-max-store-mb", required_argument, NULL, OPT_KV_MAX_STORE },
    { "kv-max-keys", required_argument, NULL, OPT_KV_MAX_KEYS },
    { "test-clock", required_argument, NULL, OPT_TEST_CLOCK },
    { "clock-offset", required_argument, NULL, OPT_CLOCK_OFFSET },
    { "url-domain", required_argument, NULL, OPT_URL_DOMAIN },
    { "console-dir", required_argument, NULL, OPT_CONSOLE_DIR },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "mayfly server: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nRun 'mayfly server --help' for the options.\n");
    return CLI_EXIT_USAGE;
}

/* Parses a whole decimal number within [min, max]. */
static bool parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    if (!*s || *s == '-' || *s == '+')
        return false;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* Splits "HOST:PORT" (IPv6 hosts in brackets) into host and port. */
static bool parse_listen(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        return false;
    size_t hl = (size_t)(colon - s);
    if (hl >= hostlen)
        return false;
    if (strchr(s, ':') != colon && !(s[0] == '[' && colon[-1] == ']'))
        return false;
    unsigned long p;
    if (!parse_uint(colon + 1, 0, 65535, &p))
        return false;
    memcpy(host, s, hl);
    host[hl] = '\0';
    if (!strcmp(host, "localhost"))
        snprintf(host, hostlen, "127.0.0.1");
    *port = (int)p;
    return true;
}

/* "FIRST:COUNT": count ids from first, none of them 0, 65534 (nobody),
 * 65535 or past 4294967294 ((uid_t)-1 means "no change" to the kernel). */
static bool parse_uid_range(const char *s, uint32_t *first, uint32_t *count)
{
    const char *colon = strchr(s, ':');
    if (!colon || colon == s || (size_t)(colon - s) > 10)
        return false;
    char head[16];
    memcpy(head, s, (size_t)(colon - s));
    head[colon - s] = '\0';
    unsigned long f, c;
    if (!parse_uint(head, 1, 4294967294ul, &f) || !parse_uint(colon + 1, 1, 4294967294ul, &c))
        return false;
    if (f + c - 1 > 4294967294ul || (f <= 65535 && f + c > 65534))
        return false;
    *first = (uint32_t)f;
    *count = (uint32_t)c;
    return true;
}

/* --url-domain: a host name, optionally with a port, for http://NAME.D/. */
static bool valid_url_domain(const char *d)
{
    size_t n = strcspn(d, ":");
    if (n == 0 || n > 253 || d[0] == '.' || d[n - 1] == '.' || d[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)d[i]) || d[i] == '-' || d[i] == '.') ||
            (d[i] == '.' && d[i + 1] == '.'))
            return false;
    if (!d[n])
        return true;
    const char *port = d + n + 1;
    if (!*port || strlen(port) > 5)
        return false;
    for (const char *p = port; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    return atoi(port) >= 1 && atoi(port) <= 65535;
}

static bool is_loopback(const char *host)
{
    return !strncmp(host, "127.", 4) || !strcmp(host, "::1") || !strcmp(host, "[::1]");
}

static int parse_opts(int argc, char **argv, server_opts_t *o)
{
    const char *listen = getenv("MAYFLY_LISTEN");
    o->data_dir = getenv("MAYFLY_DATA");
    if (!o->data_dir || !*o->data_dir)
        o->data_dir = "./.mayfly";
    o->store = getenv("MAYFLY_STORE");
    if (o->store && !*o->store)
        o->store = NULL;
    if (!listen || !*listen)
        listen = "127.0.0.1:8700";

    opterr = 0;
    optind = 1;
    int c;
    unsigned long v;
    while ((c = getopt_long(argc, argv, ":h", long_opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(usage_text, stdout);
            return -1;
        case OPT_LISTEN:
            listen = optarg;
            break;
        case OPT_DATA:
            o->data_dir = optarg;
            break;
        case OPT_STORE:
            o->store = optarg;
            break;
        case OPT_KEYS:
            o->keys_file = optarg;
            break;
        case OPT_LOG_FORMAT: {
            log_format_t f;
            if (log_parse_format(optarg, &f) < 0)
                return usage_error("--log-format must be text or json, not `%s`", optarg);
            log_set_format(f);
            break;
        }
        case OPT_LOG_LEVEL: {
            log_level_t l;
            if (log_parse_level(optarg, &l) < 0)
                return usage_error("--log-level must be debug, info, warn or error, not `%s`",
                                   optarg);
            log_set_level(l);
            break;
        }
        case OPT_MAX_CONNS:
            if (!parse_uint(optarg, 1, 1000000, &v))
                return usage_error("--max-connections must be a number from 1 to 1000000, not `%s`", optarg);
            o->http.max_connections = (unsigned)v;
            break;
        case OPT_HEADER_TIMEOUT:
            if (!parse_uint(optarg, 1, 3600, &v))
                return usage_error("--header-timeout must be seconds from 1 to 3600, not `%s`", optarg);
            o->http.header_timeout_ms = (unsigned)v * 1000;
            break;
        case OPT_KEEPALIVE_TIMEOUT:
            if (!parse_uint(optarg, 1, 3600, &v))
                return usage_error("--keepalive-timeout must be seconds from 1 to 3600, not `%s`", optarg);
            o->http.keepalive_timeout_ms = (unsigned)v * 1000;
            break;
        case OPT_MAX_CONNS_PER_CLIENT:
            if (!parse_uint(optarg, 0, 1000000, &v))
                return usage_error("--max-connections-per-client must be a number from 0 to 1000000, not `%s`", optarg);
            o->http.max_connections_per_client = (unsigned)v;
            break;
        case OPT_MAX_BUFFERED_BODY:
            if (!parse_uint(optarg, 1, 1048576, &v))
                return usage_error("--max-buffered-body-mb must be a number from 1 to 1048576, not `%s`", optarg);
            o->http.max_buffered_body_bytes = (size_t)v << 20;
            break;
        case OPT_MAX_ZIP:
            if (!parse_uint(optarg, 1, 1024, &v))
                return usage_error("--max-zip-mb must be a number from 1 to 1024, not `%s`", optarg);
            o->code.max_zip_bytes = (uint64_t)v << 20;
            break;
        case OPT_MAX_UNZIPPED:
            if (!parse_uint(optarg, 1, 10240, &v))
                return usage_error("--max-unzipped-mb must be a number from 1 to 10240, not `%s`", optarg);
            o->code.max_unzipped_bytes = (uint64_t)v << 20;
            break;
        case OPT_MAX_FILES:
            if (!parse_uint(optarg, 1, 1000000, &v))
                return usage_error("--max-files must be a number from 1 to 1000000, not `%s`", optarg);
            o->code.max_files = v;
            break;
        case OPT_IDLE_TIMEOUT:
            if (!parse_uint(optarg, 1, 86400, &v))
                return usage_error("--idle-timeout must be seconds from 1 to 86400, not `%s`", optarg);
            o->exec.idle_timeout_ms = (unsigned)v * 1000;
            break;
        case OPT_MAX_STREAM:
            if (!parse_uint(optarg, 1, 4096, &v))
                return usage_error("--max-stream-mb must be a number from 1 to 4096, not `%s`",
                                   optarg);
            o->exec.max_stream_bytes = (size_t)v << 20;
            break;
        case OPT_MAX_QUEUE:
            if (!parse_uint(optarg, 0, 100000, &v))
                return usage_error("--max-queue must be a number from 0 to 100000, not `%s`", optarg);
            o->exec.max_queue = (unsigned)v;
            break;
        case OPT_MAX_PIDS:
            if (!parse_uint(optarg, 8, 65536, &v))
                return usage_error("--max-pids must be a number from 8 to 65536, not `%s`", optarg);
            o->exec.max_pids = (unsigned)v;
            break;
        case OPT_REGION:
            if (!*optarg || strlen(optarg) > 32 || strspn(optarg, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(optarg))
                return usage_error("--region must be a region name like us-east-1, not `%s`", optarg);
            o->exec.region = optarg;
            break;
        case OPT_RUNTIMES_DIR:
            o->runtimes_dir = optarg;
            break;
        case OPT_SANDBOX_POOL:
            if (!parse_uint(optarg, 0, 256, &v))
                return usage_error("--sandbox-pool must be a number from 0 to 256, not `%s`", optarg);
            o->sandbox_pool = (unsigned)v;
            break;
        case OPT_ZYGOTES:
            if (!parse_uint(optarg, 0, 64, &v))
                return usage_error("--zygotes must be a number from 0 to 64, not `%s`", optarg);
            o->zygotes = (unsigned)v;
            break;
        case OPT_JAVA_ZYGOTES:
            if (!parse_uint(optarg, 0, 64, &v))
                return usage_error("--java-zygotes must be a number from 0 to 64, not `%s`",
                                   optarg);
            o->java_zygotes = (unsigned)v;
            break;
        case OPT_JVM_DIR:
            o->jvm_dir = optarg;
            break;
        case OPT_RETRY_BASE:
            if (!parse_uint(optarg, 10, 3600000, &v))
                return usage_error("--retry-base-ms must be a number from 10 to 3600000, not `%s`", optarg);
            o->async.retry_base_ms = (unsigned)v;
            break;
        case OPT_KEEP_WARM:
            if (strcmp(optarg, "adaptive") && strcmp(optarg, "fixed"))
                return usage_error("--keep-warm must be adaptive or fixed, not `%s`", optarg);
            o->exec.keep_warm_adaptive = !strcmp(optarg, "adaptive");
            break;
        case OPT_SCALE_OUT:
            if (strcmp(optarg, "cpu-aware") && strcmp(optarg, "eager"))
                return usage_error("--scale-out must be cpu-aware or eager, not `%s`", optarg);
            o->exec.scale_out_eager = !strcmp(optarg, "eager");
            break;
        case OPT_BUSY_CPU_PERCENT:
            if (!parse_uint(optarg, 5, 100, &v))
                return usage_error("--busy-cpu-percent must be a number from 5 to 100, not `%s`",
                                   optarg);
            o->exec.busy_cpu_percent = (unsigned)v;
            break;
        case OPT_ACCEPT_FIRST:
            if (!strcmp(optarg, "off"))
                o->async.accept_first_percent = -1;
            else if (parse_uint(optarg, 0, 100, &v))
                o->async.accept_first_percent = (int)v;
            else
                return usage_error("--accept-first must be a number from 0 to 100 or off, not "
                                   "`%s`", optarg);
            break;
        case OPT_MAX_STARTING:
            if (!parse_uint(optarg, 1, 1024, &v))
                return usage_error("--max-starting must be a number from 1 to 1024, not `%s`",
                                   optarg);
            o->exec.max_starting = v;
            break;
        case OPT_KEEP_ALIVE_BIN:
            if (!parse_uint(optarg, 1, 3600, &v))
                return usage_error("--keep-alive-bin-s must be seconds from 1 to 3600, not `%s`", optarg);
            o->keep_alive_bin_s = (unsigned)v;
            break;
        case OPT_KEEP_ALIVE_MAX:
            if (!parse_uint(optarg, 1, 864000, &v))
                return usage_error("--keep-alive-max-s must be seconds from 1 to 864000, not `%s`",
                                   optarg);
            o->exec.keep_alive_max_ms = (uint64_t)v * 1000;
            break;
        case OPT_LEASE:
            if (!parse_uint(optarg, 1, 3600, &v))
                return usage_error("--lease-s must be a number of seconds from 1 to 3600, not `%s`", optarg);
            o->async.lease_ms = (unsigned)v * 1000;
            break;
        case OPT_MAX_ASYNC_EVENT:
            if (!parse_uint(optarg, 1, 6144, &v))
                return usage_error("--max-async-event-kb must be a number from 1 to 6144, not `%s`", optarg);
            o->async.max_event_bytes = (size_t)v << 10;
            break;
        case OPT_SHUTDOWN_GRACE:
            if (!parse_uint(optarg, 0, 3600, &v))
                return usage_error("--shutdown-grace must be seconds from 0 to 3600, not `%s`", optarg);
            o->async.shutdown_grace_ms = (unsigned)v * 1000;
            break;
        case OPT_SANDBOX_MEMORY:
            if (!parse_uint(optarg, 128, 1ul << 30, &v))
                return usage_error("--sandbox-memory-mb must be MiB from 128 to 1073741824, not `%s`", optarg);
            o->sandbox_memory_mb = v;
            break;
        case OPT_SANDBOX_MAX_PIDS:
            if (!parse_uint(optarg, 16, 1ul << 22, &v))
                return usage_error("--sandbox-max-pids must be a number from 16 to 4194304, not `%s`", optarg);
            o->sandbox_max_pids = v;
            break;
        case OPT_UID_RANGE:
            if (!parse_uid_range(optarg, &o->uid_first, &o->uid_count))
                return usage_error("--uid-range must be FIRST:COUNT, ids from 1 to 4294967294 "
                                   "without 65534 and 65535 (e.g. 1879048192:65536), not `%s`",
                                   optarg);
            break;
        case OPT_DEFAULT_EGRESS: {
            mf_error_t err = MF_ERROR_INIT;
            egress_policy_free(&o->default_egress);
            if (egress_policy_from_list(optarg, &o->default_egress, &err) < 0)
                return usage_error("--default-egress: %s", err.msg);
            o->default_egress_set = true;
            break;
        }
        case OPT_STORAGE_INTERVAL:
            if (!parse_uint(optarg, 1, 3600, &v))
                return usage_error("--storage-interval must be seconds from 1 to 3600, not `%s`",
                                   optarg);
            o->storage_interval_ms = (int64_t)v * 1000;
            break;
        case OPT_ALERT_INTERVAL:
            if (!parse_uint(optarg, 1, 3600, &v))
                return usage_error("--alert-interval-s must be seconds from 1 to 3600, not `%s`",
                                   optarg);
            o->alert_interval_s = (unsigned)v;
            break;
        case OPT_PRICES: {
            mf_error_t err = MF_ERROR_INIT;
            if (meter_prices_load(optarg, &o->prices, &err) < 0)
                return usage_error("--prices: %s", err.msg);
            break;
        }
        case OPT_EGRESS_HOSTS:
            if (!*optarg)
                return usage_error("--egress-hosts must name a file, not `%s`", optarg);
            o->egress_hosts_file = optarg;
            break;
        case OPT_EGRESS_MAX_CONNS:
            if (!parse_uint(optarg, 1, 65536, &v))
                return usage_error("--egress-max-connections must be a number from 1 to 65536, not `%s`", optarg);
            o->exec.egress_max_connections = (unsigned)v;
            break;
        case OPT_DISABLE_EGRESS:
            o->exec.egress_disabled = true;
            break;
        case OPT_RETENTION_DAYS:
            if (!parse_uint(optarg, 1, 3650, &v))
                return usage_error("--retention-days must be a number from 1 to 3650, not `%s`",
                                   optarg);
            o->retention.days = (int)v;
            break;
        case OPT_RECORDS_MAX_MB:
            if (!parse_uint(optarg, 16, 1048576, &v))
                return usage_error("--records-max-mb must be a number from 16 to 1048576, not "
                                   "`%s`", optarg);
            o->retention.max_bytes = (int64_t)v << 20;
            break;
        case OPT_OTLP_ENDPOINT:
            o->otlp_endpoint = optarg;
            break;
        case OPT_DEAD_LETTER_DAYS:
            if (!parse_uint(optarg, 1, 3650, &v))
                return usage_error("--dead-letter-days must be a number from 1 to 3650, not `%s`",
                                   optarg);
            o->async.dead_letter_days = (int)v;
            break;
        case OPT_KV_MAX_VALUE:
            if (!parse_uint(optarg, 1, 65536, &v))
                return usage_error("--kv-max-value-kb must be a number from 1 to 65536, not "
                                   "`%s`", optarg);
            o->kv.max_value_bytes = (size_t)v << 10;
            break;
        case OPT_KV_MAX_STORE:
            if (!parse_uint(optarg, 1, 1048576, &v))
                return usage_error("--kv-max-store-mb must be a number from 1 to 1048576, not "
                                   "`%s`", optarg);
            o->kv.max_store_bytes = (int64_t)v << 20;
            break;
        case OPT_KV_MAX_KEYS:
            if (!parse_uint(optarg, 1, 1000000000, &v))
                return usage_error("--kv-max-keys must be a number from 1 to 1000000000, not "
                                   "`%s`", optarg);
            o->kv.max_keys = (int64_t)v;
            break;
        case OPT_TEST_CLOCK:
            if (clock_parse_rfc3339(optarg, &o->schedules.test_clock_ms) < 0)
                return usage_error("--test-clock must be an RFC 3339 date-time (e.g. "
                                   "2026-03-28T12:00:00Z), not `%s`", optarg);
            o->schedules.test_clock = true;
            break;
        case OPT_CLOCK_OFFSET: {
            char *end;
            errno = 0;
            long long sec = strtoll(optarg, &end, 10);
            if (!*optarg || *end || errno || sec < -100LL * 366 * 86400 ||
                sec > 100LL * 366 * 86400)
                return usage_error("--clock-offset must be whole seconds within a hundred "
                                   "years, not `%s`", optarg);
            o->schedules.clock_offset_ms = sec * 1000;
            break;
        }
        case OPT_URL_DOMAIN:
            if (!valid_url_domain(optarg))
                return usage_error("--url-domain must be a domain name (letters, digits, '-' "
                                   "and '.', e.g. fn.example.com, optionally with :PORT), not "
                                   "`%s`",
                                   optarg);
            o->url_domain = optarg;
            break;
        case OPT_CONSOLE_DIR: {
            struct stat cst;
            if (stat(optarg, &cst) < 0 || !S_ISDIR(cst.st_mode))
                return usage_error("--console-dir must be a folder, not `%s`", optarg);
            o->console_dir = optarg;
            break;
        }
        case OPT_EGRESS_SPLICE:
            if (strcmp(optarg, "on") != 0 && strcmp(optarg, "off") != 0)
                return usage_error("--egress-splice must be `on` or `off`, not `%s`", optarg);
            o->exec.egress_no_splice = strcmp(optarg, "off") == 0;
            break;
        case ':':
            return usage_error("option `%s` needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown option `%s`", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument `%s`", argv[optind]);
    /* Only a URL: a directory is what --data is for. */
    if (o->store && strncmp(o->store, "postgresql://", 13) && strncmp(o->store, "postgres://", 11))
        return usage_error("%s", "--store (or MAYFLY_STORE) must be a postgresql:// or "
                                 "postgres:// URL, e.g. postgresql://mayfly@db.example/mayfly");
    if (!parse_listen(listen, o->host, sizeof o->host, &o->port))
        return usage_error("--listen must be HOST:PORT (e.g. 127.0.0.1:8700), not `%s`", listen);
    return 0;
}

static void on_exec_stopped(void *ud)
{
    server_state_t *st = ud;
    /* Attempts cut short are back in the queue; what is left is written. */
    topics_close(st->topics);
    st->topics = NULL;
    durable_close(st->durable);
    st->durable = NULL;
    async_close(st->async);
    st->async = NULL;
    uv_close((uv_handle_t *)&st->sigterm, NULL);
    uv_close((uv_handle_t *)&st->sigint, NULL);
}

/* In-flight calls have answered and running async events have ended (or
 * their grace periods are over): now the instances go, with their
 * processes, mounts and cgroups. */
static void on_drained(void *ud)
{
    server_state_t *st = ud;
    if (--st->stop_waits == 0)
        exec_shutdown(st->exec, on_exec_stopped, st);
}

/* Every instance holds a handful of descriptors (its Runtime API socket,
 * log pipes, pidfd, cgroup files), so the soft default of 1024 would cap the
 * server at a hundred or so instances. */
static void raise_nofile_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            log_warn("server", "cannot raise the open-file limit: %s", strerror(errno));
    }
}

/* The runtimes folder ships beside the binary: bin/mayfly and runtimes/
 * (or, for the test build, build/asan/mayfly and runtimes/). */
static char *default_runtimes_dir(void)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return xstrdup("runtimes");
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    static const char *const candidates[] = { "../runtimes", "../../runtimes" };
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        char *dir = xasprintf("%s/%s", exe, candidates[i]);
        if (access(dir, F_OK) == 0)
            return dir;
        free(dir);
    }
    return xasprintf("%s/../runtimes", exe);
}

/* The budget of all sandboxes together: the flags, or from the machine's
 * size. Memory: what the machine (or the cgroup the server started in)
 * has, less a reserve for the server and the system (1/8 of it, from 512
 * MiB to 4 GiB) and less what the prepared sandboxes may hold, which the
 * kernel's limit adds back on top (sandbox_system_set_budget): so the
 * instances' budget and the pool together fit in the machine. Processes:
 * half of what the machine allows, the rest for everything else. */
static int set_sandbox_budget(sandbox_system_t *sandboxes, server_opts_t *o, mf_error_t *err)
{
    sandbox_capacity_t cap;
    sandbox_system_capacity(sandboxes, &cap);
    /* The pool and the zygotes (python3 and nodejs, --zygotes of each)
     * exist only for a root server. JVM zygotes start later, with the
     * first Java function, and the kernel's limit grows by their share
     * then (taken from the reserve). */
    unsigned prepared = geteuid() == 0 ? o->sandbox_pool + 2 * o->zygotes : 0;
    uint64_t pool_mb = (uint64_t)prepared * SANDBOX_POOL_MEMORY_MB;
    uint64_t memory = o->sandbox_memory_mb, pids = o->sandbox_max_pids;
    if (!memory) {
        uint64_t reserve = cap.memory_mb / 8;
        reserve = reserve < 512 ? 512 : reserve > 4096 ? 4096 : reserve;
        memory = cap.memory_mb > reserve + pool_mb + 128 ? cap.memory_mb - reserve - pool_mb : 128;
        if (memory == 128)
            log_warn("server", "this machine has little memory (%llu MB) for sandboxes: their "
                               "budget is the least, 128 MB (fewer prepared sandboxes leave "
                               "more: --sandbox-pool, --zygotes)",
                     (unsigned long long)cap.memory_mb);
    } else if (memory + pool_mb > cap.memory_mb) {
        log_warn("server", "--sandbox-memory-mb %llu (+ %llu MB for prepared sandboxes) is more "
                           "than the %llu MB this machine has",
                 (unsigned long long)memory, (unsigned long long)pool_mb,
                 (unsigned long long)cap.memory_mb);
    }
    if (!pids)
        pids = cap.max_pids / 2 < 64 ? 64 : cap.max_pids / 2;
    int r = sandbox_system_set_budget(sandboxes, memory, pids, err);
    if (r < 0)
        return r;
    o->exec.memory_budget_mb = memory;
    log_info("server", "sandbox budget: %llu MB for instances + %llu MB for %u prepared "
                       "sandboxes, %llu processes (this machine: %llu MB, %llu processes, "
                       "%u CPUs)",
             (unsigned long long)memory, (unsigned long long)pool_mb, prepared,
             (unsigned long long)pids, (unsigned long long)cap.memory_mb,
             (unsigned long long)cap.max_pids, cap.cpus);
    return 0;
}

static void on_signal(uv_signal_t *h, int signum)
{
    server_state_t *st = h->data;
    if (st->stopping) {
        log_warn("server", "%s again: still finishing in-flight requests", strsignal(signum));
        return;
    }
    st->stopping = true;
    log_info("server", "%s: stopping (no new connections; finishing in-flight requests)",
             strsignal(signum));
    st->stop_waits = 2;
    /* Other nodes' changes are no longer taken in. */
    api_cluster_stop(st->cluster);
    /* No more fires; those on their way are written with the queue. */
    schedules_stop(st->schedules);
    /* New KV requests get 503; accepted writes still commit. */
    state_kv_stop(st->kv);
    /* Callers waiting for executions hear 503; the executions stay on disk. */
    durable_stop(st->durable);
    http_server_shutdown(st->http, on_drained, st);
    async_stop(st->async, on_drained, st);
}

/* What the options own, on every way out of cmd_server: the gateway's
 * hosts table outlives the execution layer that reads it. */
static void opts_release(server_opts_t *o)
{
    egress_policy_free(&o->default_egress);
    egress_hosts_free(o->egress_hosts);
    o->egress_hosts = NULL;
    o->exec.egress_hosts = NULL;
}

/* Each finished call's record goes to the meter and to the alert rules'
 * windows (exec_set_meter takes one observer). */
typedef struct observers {
    meter_t *meter;
    alerts_t *alerts;
} observers_t;

static void observe_call(void *ud, const store_record_t *rec)
{
    observers_t *o = ud;
    meter_observe(o->meter, rec);
    alerts_observe(o->alerts, rec);
}

/* A budget lets calls through again: the events it held may run. */
static void release_held(void *ud)
{
    async_hold_changed(ud);
}

int cmd_server(int argc, char **argv)
{
    __attribute__((cleanup(opts_release))) server_opts_t o = {
        .http = HTTP_SERVER_CONFIG_DEFAULT,
        .code = CODE_LIMITS_DEFAULT,
        .exec = EXEC_CONFIG_DEFAULT,
        .async = ASYNC_CONFIG_DEFAULT,
        .sandbox_pool = 4,
        .zygotes = 2,
        .keep_alive_bin_s = 60,
        .java_zygotes = UINT_MAX, /* 1, or 0 with --zygotes 0 */
        .uid_first = SANDBOX_UID_FIRST_DEFAULT,
        .uid_count = SANDBOX_UID_COUNT_DEFAULT,
        .retention = {.days = 7, .max_bytes = (int64_t)1024 << 20},
        .kv = STATE_KV_CONFIG_DEFAULT,
    };
    meter_prices_default(&o.prices);
    o.exec.keep_warm_adaptive = true; /* docs/keep-alive.md, "Results" */
    int r = parse_opts(argc, argv, &o);
    if (r < 0)
        return CLI_EXIT_OK;
    if (r > 0)
        return r;

    mf_error_t err = MF_ERROR_INIT;
    auth_keys_t keys = { 0 };
    const char *key_list = getenv("MAYFLY_ACCESS_KEYS");
    if ((o.keys_file && auth_keys_load_file(&keys, o.keys_file, &err) < 0) ||
        (key_list && *key_list && auth_keys_parse_list(&keys, key_list, &err) < 0)) {
        fprintf(stderr, "mayfly server: %s\n", err.msg);
        auth_keys_release(&keys);
        return CLI_EXIT_ERROR;
    }
    if (keys.count == 0) {
        if (!is_loopback(o.host)) {
            fprintf(stderr,
                    "mayfly server: refusing to listen on %s: with no access keys the server runs "
                    "in development mode, which only listens on loopback (127.0.0.1 or ::1); "
                    "give --keys FILE or MAYFLY_ACCESS_KEYS\n",
                    o.host);
            return CLI_EXIT_ERROR;
        }
        log_warn("server", "development mode: no access keys given, every request is accepted "
                           "without credentials (/v1 without a token, the Lambda API with any "
                           "signature)");
    } else {
        log_info("server", "%zu access key(s) loaded; requests must carry credentials",
                 keys.count);
    }
    if (o.egress_hosts_file) {
        if (egress_hosts_load(o.egress_hosts_file, &o.egress_hosts, &err) < 0) {
            fprintf(stderr, "mayfly server: --egress-hosts: %s\n", err.msg);
            auth_keys_release(&keys);
            return CLI_EXIT_ERROR;
        }
        o.exec.egress_hosts = o.egress_hosts;
    }

    signal(SIGPIPE, SIG_IGN);
    raise_nofile_limit();

    /* Before any thread starts (unshare needs a process of one thread):
     * the volumes' mounts stay the server's own. */
    bool mounts_isolated = geteuid() == 0 && volumes_isolate_mounts(&err) == 0;
    if (geteuid() == 0 && !mounts_isolated)
        log_warn("server", "no shared volumes: %s", err.msg);

    cleanup_free char *runtimes = o.runtimes_dir ? xstrdup(o.runtimes_dir) : default_runtimes_dir();
    char resolved[4096];
    if (!realpath(runtimes, resolved)) {
        fprintf(stderr, "mayfly server: runtimes folder `%s`: %s (give --runtimes-dir)\n",
                runtimes, strerror(errno));
        auth_keys_release(&keys);
        return CLI_EXIT_ERROR;
    }
    o.exec.runtimes_dir = resolved;
    if (o.java_zygotes == UINT_MAX)
        o.java_zygotes = o.zygotes ? 1 : 0;
    /* Before anything asks which JDK runs a Java runtime. */
    if (o.jvm_dir)
        jvm_set_root(o.jvm_dir);

    /* The uids and the budget before the pool: prepared sandboxes take a
     * uid each and count against the budget. */
    sandbox_system_t *sandboxes = NULL;
    if (sandbox_system_init(&sandboxes, &err) < 0 ||
        (sandbox_system_set_uid_range(sandboxes, o.uid_first, o.uid_count, &err) < 0 &&
         mf_error_wrap(&err, "--uid-range") < 0) ||
        set_sandbox_budget(sandboxes, &o, &err) < 0 ||
        sandbox_system_start_pool(sandboxes, o.sandbox_pool, o.exec.max_pids, resolved,
                                  &err) < 0) {
        fprintf(stderr, "mayfly server: cannot create sandboxes here: %s\n", err.msg);
        sandbox_system_free(sandboxes);
        auth_keys_release(&keys);
        return CLI_EXIT_ERROR;
    }

    /* Sandboxes mount code by absolute path, whatever the server's cwd. */
    store_t *store = NULL;
    registry_t *registry = NULL;
    char data_dir[4096];
    /* With a shared store the data directory keeps this server's own files
     * (code unpacked from the store, volumes), and is still this server's
     * alone: two servers unpacking into one directory would each remove
     * packages the other runs. SQLite's store takes the same lock itself. */
    cleanup_close int data_lock = -1;
    if ((o.store && (fs_mkdir_p(o.data_dir, 0755, &err) < 0 ||
                     fs_lock_dir(o.data_dir, &data_lock, &err) < 0)) ||
        store_open(o.store ? o.store : o.data_dir, &store, &err) < 0 ||
        (!realpath(o.data_dir, data_dir) &&
         mf_error_set(&err, errno, "data dir `%s`", o.data_dir) < 0) ||
        registry_open(store, data_dir, &o.code, &registry, &err) < 0) {
        fprintf(stderr, "mayfly server: %s\n", err.msg);
        store_close(store);
        sandbox_system_free(sandboxes);
        auth_keys_release(&keys);
        return CLI_EXIT_ERROR;
    }
    /* One id per start, for this server's place among the nodes that share
     * a store (its log lines carry it). */
    const char *node_id = cluster_node_id();
    store_set_node(store, node_id);
    if (o.store)
        log_info("store", "data in %s (schema version %d); this server's own files in %s; "
                          "this node is %s",
                 store_backend_name(store), store_schema_version(store), data_dir, node_id);
    else
        log_info("store", "data in %s (%s, schema version %d)", data_dir,
                 store_backend_name(store), store_schema_version(store));
    /* Where the async queue (and what shares its connections) and the KV
     * stores keep their data: the same place as the store's. */
    const char *where = o.store ? o.store : data_dir;
    if (o.default_egress_set) {
        registry_set_default_egress(registry, &o.default_egress);
        log_info("server", "functions created without egress rules get %zu rule(s) "
                           "(--default-egress)",
                 o.default_egress.n);
    }

    server_state_t st = { .loop = uv_default_loop() };
    volumes_t *volumes = NULL;
    if (volumes_open(st.loop, store, data_dir, mounts_isolated, &volumes, &err) < 0) {
        fprintf(stderr, "mayfly server: %s\n", err.msg);
        registry_close(registry);
        store_close(store);
        sandbox_system_free(sandboxes);
        auth_keys_release(&keys);
        return CLI_EXIT_ERROR;
    }
    /* Before anything runs on the loop: its idle time counts from here. */
    obs_loop_t *loop_obs = NULL;
    if (obs_loop_start(st.loop, &loop_obs, &err) < 0)
        log_warn("server", "no event loop metrics: %s", err.msg);
    /* Invocation records and function logs are written by a thread of
     * their own, with its own connection: never on the event loop. */
    store_writer_t *obs_writer = NULL;
    store_writer_db_t obs_db;
    if (store_writer_db(store, &obs_db, &err) < 0 ||
        store_writer_start(st.loop, &obs_db, NULL, NULL, &obs_writer, &err) < 0) {
        fprintf(stderr, "mayfly server: %s\n", err.msg);
        volumes_close(volumes);
        registry_close(registry);
        store_close(store);
        sandbox_system_free(sandboxes);
        auth_keys_release(&keys);
        return CLI_EXIT_ERROR;
    }
    registry_set_writer(registry, obs_writer);
    volumes_set_writer(volumes, obs_writer);
    http_router_t router;
    http_router_init(&router);
    url_table_t *urls = NULL;
    meter_t *meter = NULL;
    keepalive_set_t *keep_alive = NULL;
    meter_storage_t *storage = NULL;
    budgets_t *budgets = NULL;
    alerts_t *alerts = NULL;
    observers_t observers = { 0 };
    obs_records_t *records = obs_records_new(st.loop, obs_writer);
    obs_logs_t *logs = obs_logs_new(st.loop, obs_writer);
    obs_retention_t *retention = obs_retention_start(st.loop, obs_writer, &o.retention);
    obs_otlp_t *otlp = NULL;
    if (o.otlp_endpoint) {
        if (obs_otlp_new(st.loop, o.otlp_endpoint, "mayfly", &otlp, &err) < 0) {
            fprintf(stderr, "mayfly server: --otlp-endpoint: %s\n", err.msg);
            r = CLI_EXIT_USAGE;
            st.http = NULL;
            goto out;
        }
        log_info("server", "traces go to %s (OTLP/HTTP, JSON)", o.otlp_endpoint);
    }
    o.exec.otlp = otlp;
    if (!o.exec.keep_alive_max_ms)
        o.exec.keep_alive_max_ms = (uint64_t)o.keep_alive_bin_s * 1000 * KEEPALIVE_BINS;
    if (o.exec.keep_warm_adaptive)
        log_info("server", "keep-alive: adaptive for functions without keep_warm, idle "
                 "instances warm for at most %llu s (fixed: %u s)",
                 (unsigned long long)(o.exec.keep_alive_max_ms / 1000), o.exec.idle_timeout_ms / 1000);
    else
        log_info("server", "keep-alive: fixed %u s for functions without keep_warm",
                 o.exec.idle_timeout_ms / 1000);
    st.exec = exec_new(st.loop, sandboxes, registry, records, logs, &o.exec);
    exec_set_volume_resolver(st.exec, volumes_mount_point, volumes);
    meter = meter_new(&o.prices);
    observers.meter = meter;
    exec_set_meter(st.exec, observe_call, &observers);
    keep_alive = keepalive_set_new(&(keepalive_config_t){
        .bin_ms = (uint64_t)o.keep_alive_bin_s * 1000, .max_keep_alive_ms = o.exec.keep_alive_max_ms });
    keepalive_set_attach(keep_alive, st.exec);
    if (geteuid() == 0 && exec_start_zygotes(st.exec, o.zygotes, &err) < 0)
        log_warn("server", "no pre-started runtimes: %s", err.msg);
    if (geteuid() == 0 && exec_start_java_zygotes(st.exec, o.java_zygotes, &err) < 0)
        log_warn("server", "no pre-started JVMs: %s", err.msg);
    o.async.region = o.exec.region;
    /* The node list shows where this node's API listens. */
    char address[300];
    snprintf(address, sizeof address, "%s:%d", o.host, o.port);
    o.async.node = node_id;
    o.async.address = address;
    o.async.retention_days = o.retention.days;
    if (async_open(st.loop, where, st.exec, registry, records, &o.async, &st.async, &err) < 0) {
        fprintf(stderr, "mayfly server: %s\n", err.msg);
        r = CLI_EXIT_ERROR;
        st.http = NULL;
        goto out;
    }
    /* Budgets (meter/budget.h): a spent one refuses calls (exec's admit)
     * and holds events (the queue's hold) from memory; on a shared store
     * the other servers' spend is read again every few seconds. */
    if (budgets_open(st.loop, store, obs_writer, records, &o.prices,
                     &(budgets_config_t){ .shared = o.store != NULL, .refresh_ms = 5000 },
                     &budgets, &err) < 0) {
        fprintf(stderr, "mayfly server: %s\n", err.msg);
        r = CLI_EXIT_ERROR;
        st.http = NULL;
        goto out;
    }
    meter_set_budgets(meter, budgets);
    exec_set_admit(st.exec, budgets_admit, budgets);
    async_set_hold(st.async, budgets_held, budgets);
    budgets_set_released(budgets, release_held, st.async);
    topics_config_t topics_cfg = TOPICS_CONFIG_DEFAULT;
    topics_cfg.region = o.exec.region;
    topics_cfg.retention_days = o.retention.days;
    if (topics_open(st.loop, st.async, registry, &topics_cfg, &st.topics, &err) < 0) {
        fprintf(stderr, "mayfly server: %s\n", err.msg);
        r = CLI_EXIT_ERROR;
        st.http = NULL;
        goto out;
    }
    if (durable_open(st.loop, st.async, st.exec, registry,
                     &(durable_config_t){ .region = o.exec.region }, &st.durable, &err) < 0) {
        fprintf(stderr, "mayfly server: %s\n", err.msg);
        r = CLI_EXIT_ERROR;
        st.http = NULL;
        goto out;
    }
    if (state_kv_open(st.loop, where, &o.kv, &st.kv, &err) < 0) {
        fprintf(stderr, "mayfly server: %s\n", err.msg);
        r = CLI_EXIT_ERROR;
        st.http = NULL;
        goto out;
    }
    storage = meter_storage_start(st.loop, st.kv, volumes, obs_writer, o.storage_interval_ms);
    meter_storage_set_budgets(storage, budgets);
    if (url_table_open(store, &urls, &err) < 0) {
        fprintf(stderr, "mayfly server: %s\n", err.msg);
        r = CLI_EXIT_ERROR;
        st.http = NULL;
        goto out;
    }
    url_table_set_writer(urls, obs_writer);
    /* Alert rules (watch/alerts.h): evaluated from memory every
     * --alert-interval-s; their notifications, and the budgets', go
     * through the store's outbox, and what a server before left
     * undelivered is delivered now. */
    if (alerts_open(st.loop, store, obs_writer, registry,
                    &(alerts_config_t){ .interval_s = o.alert_interval_s,
                                        .retry_base_ms = o.async.retry_base_ms,
                                        .node = node_id,
                                        .shared = o.store != NULL },
                    &alerts, &err) < 0) {
        fprintf(stderr, "mayfly server: %s\n", err.msg);
        r = CLI_EXIT_ERROR;
        st.http = NULL;
        goto out;
    }
    alerts_set_sources(alerts, st.async, st.topics, budgets);
    budgets_set_crossed(budgets, alerts_budget_crossed, alerts_kick, alerts);
    observers.alerts = alerts;

    /* After the queue (fires are its events); catches up on what came due
     * while the server was down. */
    o.schedules.region = o.exec.region;
    if (schedules_open(st.loop, st.async, registry, &o.schedules, &st.schedules, &err) < 0) {
        fprintf(stderr, "mayfly server: %s\n", err.msg);
        r = CLI_EXIT_ERROR;
        st.http = NULL;
        goto out;
    }

    char addr[300] = ""; /* the bound address, once listening */
    api_ctx_t api = { .loop = st.loop,
                      .registry = registry,
                      .store = store,
                      .exec = st.exec,
                      .async = st.async,
                      .records = records,
                      .logs = logs,
                      .kv = st.kv,
                      .obs_writer = obs_writer,
                      .prices = &o.prices,
                      .budgets = budgets,
                      .alerts = alerts,
                      .code_limits = o.code,
                      .keys = &keys,
                      .region = o.exec.region,
                      .inside = exec_inside_router(st.exec),
                      .volumes = volumes,
                      .schedules = st.schedules,
                      .topics = st.topics,
                      .urls = urls,
                      .url_domain = o.url_domain,
                      .listen_addr = addr,
                      .durable = st.durable,
                      .node_id = node_id };
    api_register(&router, &api);
    console_register(&router, st.loop, o.console_dir);
    /* With a shared store, what other nodes change reaches this one's
     * memory, and their log lines its followers. */
    if (o.store) {
        st.cluster = api_cluster_new(&api);
        if (cluster_changes_start(st.loop, store, node_id, api_cluster_changed, st.cluster,
                                  &st.changes, &err) < 0) {
            fprintf(stderr, "mayfly server: %s\n", err.msg);
            r = CLI_EXIT_ERROR;
            goto out;
        }
    }
    r = http_server_listen(st.loop, o.host, o.port, &o.http, &router, &st.http, &err);
    if (r < 0) {
        fprintf(stderr, "mayfly server: %s\n", err.msg);
        r = CLI_EXIT_ERROR;
        goto out;
    }

    /* Functions' egress never reaches the server's own listener. */
    struct sockaddr_storage own;
    if (http_server_sockname(st.http, &own) == 0)
        exec_add_own_address(st.exec, (struct sockaddr *)&own);

    uv_signal_init(st.loop, &st.sigterm);
    uv_signal_init(st.loop, &st.sigint);
    st.sigterm.data = st.sigint.data = &st;
    uv_signal_start(&st.sigterm, on_signal, SIGTERM);
    uv_signal_start(&st.sigint, on_signal, SIGINT);

    http_server_address(st.http, addr, sizeof addr);
    {
        char url[320];
        snprintf(url, sizeof url, "http://%s", addr);
        alerts_set_url(alerts, url);
    }
    log_info("server", "mayfly listening on %s", addr);
    /* The contract's ready line, on stdout, flushed at once: scripts and
     * tests wait for it. */
    printf("mayfly listening on %s\n", addr);
    fflush(stdout);

    uv_run(st.loop, UV_RUN_DEFAULT);
    log_info("server", "stopped");
    r = CLI_EXIT_OK;

out:
    /* The queue goes before the budgets' last jobs come back: they no
     * longer reach it. */
    budgets_stop(budgets);
    alerts_stop(alerts); /* no more deliveries through the queue and topics closing below */
    observers.alerts = NULL;
    meter_storage_stop(storage); /* before the KV stores and the writer it reads and writes by */
    /* Nothing more heard: what is on its way is dropped as it comes back. */
    api_cluster_stop(st.cluster);
    cluster_changes_stop(st.changes);
    /* Before the HTTP server goes: the writes it still has are committed
     * and answered (to connections that may be gone). */
    state_kv_close(st.kv);
    http_server_free(st.http);
    topics_close(st.topics);
    durable_close(st.durable);
    async_close(st.async);
    schedules_close(st.schedules); /* after the queue has called back its fires */
    exec_free(st.exec);
    keepalive_set_free(keep_alive);
    volumes_close(volumes); /* after the instances that mounted them */
    if (otlp)
        obs_otlp_free(otlp);
    obs_retention_stop(retention);
    obs_records_free(records);
    obs_logs_free(logs);
    store_writer_stop(obs_writer); /* writes what the two above handed it */
    budgets_close(budgets);        /* after the writes it handed the writer came back */
    alerts_close(alerts);          /* the same; freed once its last webhook is back */
    registry_set_writer(registry, NULL);
    obs_loop_close(loop_obs);
    /* Let the loop run the close callbacks of the timers freed above. */
    uv_run(st.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(st.loop) != 0)
        log_warn("server", "the event loop still had open handles at exit");
    api_cluster_free(st.cluster);
    http_router_release(&router);
    api_release();
    url_table_close(urls);
    registry_close(registry);
    store_close(store);
    sandbox_system_free(sandboxes);
    auth_keys_release(&keys);
    metrics_free_all();
    meter_free(meter); /* after the last render that collects from it */
    return r;
}
