/* mayfly invocations NAME: a function's invocation records as a table,
 * newest first; mayfly invocation ID: one record as JSON. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/xalloc.h"
#include "obs/records.h"

static const char invocations_usage[] =
    "usage: mayfly invocations NAME [--limit N] [--status S] [--since T] [--until T]\n"
    "                          [--cold | --warm] [--min-duration MS] [--error-type E]\n"
    "                          [--trigger T] [--cursor C] [--json]\n"
    "\n"
    "Lists the function's invocation records, newest first: request id,\n"
    "status, start time, duration, billed time, whether it was a cold start\n"
    "and the most memory the instance used. When there are more than fit, a\n"
    "last line on stderr gives the command that lists the next page.\n"
    "\n"
    "options:\n"
    "  --limit N          at most N records, 1-1000 (the server's default is 50)\n"
    "  --status S         only records with this status: success, error, timeout,\n"
    "                     oom, throttled, queued or running\n"
    "  --since T          only calls that started at T or later: an RFC 3339 time\n"
    "                     (2026-12-05T10:00:00Z, a fraction and an offset allowed)\n"
    "                     or milliseconds since the epoch\n"
    "  --until T          only calls that started at T or earlier\n"
    "  --cold             only cold starts\n"
    "  --warm             only warm starts\n"
    "  --min-duration MS  only calls that ran MS milliseconds or longer\n"
    "  --error-type E     only calls that failed with this error type (KeyError)\n"
    "  --trigger T        only calls that ran for this reason: invoke, url, replay,\n"
    "                     destination, schedule, topic or function, or one of the\n"
    "                     last three with its name (schedule:nightly)\n"
    "  --cursor C         the page after the one that printed C (its \"next\")\n"
    "  --json             print the server's JSON instead of a table\n"
    "  -h, --help         show this help\n";

static const char invocation_usage[] =
    "usage: mayfly invocation ID [--json | --event | --result]\n"
    "\n"
    "Prints the invocation record with the request id ID as JSON: function,\n"
    "version, status, start, duration_ms, billed_ms, memory_mb, max_rss_kb,\n"
    "cpu_ms, cold_start, init_ms, error_type, error_message, attempts, where\n"
    "the time went (queue_ms: accepted until handed to the runtime, a cold\n"
    "start's init_ms included; sandbox_ms: of init_ms, making the sandbox),\n"
    "what it metered (gb_seconds, egress_bytes, kv_ops, log_bytes), the\n"
    "event and the result (or error document) as kept, with their sizes and\n"
    "whether they were cut or redacted; then\n"
    "the call's outbound connections (egress), one a row: host, address,\n"
    "port, start, duration, bytes out and in, allowed, HTTP request and\n"
    "status or TLS server name, error.\n"
    "\n"
    "options:\n"
    "  --json       print the server's JSON only (egress included)\n"
    "  --event      write the call's event to stdout, the bytes as kept\n"
    "  --result     write the call's result (or error document), as kept\n"
    "  -h, --help   show this help\n";

enum {
    OPT_LIMIT = 256,
    OPT_STATUS,
    OPT_SINCE,
    OPT_UNTIL,
    OPT_COLD,
    OPT_WARM,
    OPT_MIN_DURATION,
    OPT_ERROR_TYPE,
    OPT_TRIGGER,
    OPT_CURSOR,
    OPT_JSON,
    OPT_EVENT,
    OPT_RESULT,
};

static const struct option invocation_options[] = {
    { "json", no_argument, NULL, OPT_JSON },
    { "event", no_argument, NULL, OPT_EVENT },
    { "result", no_argument, NULL, OPT_RESULT },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

#define EG_COLS 9
static const char *const eg_header[EG_COLS] = { "HOST", "ADDRESS", "PORT", "START",
                                                "DURATION_MS", "OUT", "IN", "ALLOWED",
                                                "DETAIL" };

static void fill_egress_row(buf_t *cells, const json_t *e)
{
    cli_cell_string(&cells[0], json_object_get(e, "host"));
    cli_cell_string(&cells[1], json_object_get(e, "ip"));
    cli_cell_number(&cells[2], json_object_get(e, "port"));
    cli_cell_string(&cells[3], json_object_get(e, "start"));
    cli_cell_number(&cells[4], json_object_get(e, "duration_ms"));
    cli_cell_number(&cells[5], json_object_get(e, "bytes_out"));
    cli_cell_number(&cells[6], json_object_get(e, "bytes_in"));
    buf_adds(&cells[7], json_is_true(json_object_get(e, "allowed")) ? "yes" : "no");
    /* What the gateway saw of it, then how it ended. */
    const json_t *http = json_object_get(e, "http");
    const char *sni = json_string_value(json_object_get(json_object_get(e, "tls"), "sni"));
    const char *error = json_string_value(json_object_get(e, "error"));
    if (json_is_object(http)) {
        const char *m = json_string_value(json_object_get(http, "method"));
        const char *path = json_string_value(json_object_get(http, "path"));
        buf_addf(&cells[8], "%s %s", m ? m : "?", path ? path : "?");
        json_t *st = json_object_get(http, "status");
        if (json_is_integer(st))
            buf_addf(&cells[8], " -> %" JSON_INTEGER_FORMAT, json_integer_value(st));
    } else if (sni) {
        buf_addf(&cells[8], "TLS %s", sni);
    }
    if (json_is_true(json_object_get(e, "reused")))
        buf_addf(&cells[8], "%sreused", cells[8].len ? "; " : "");
    if (error)
        buf_addf(&cells[8], "%s%s", cells[8].len ? "; " : "", error);
    if (cells[8].len == 0)
        buf_adds(&cells[8], "-");
}

static const struct option invocations_options[] = {
    { "limit", required_argument, NULL, OPT_LIMIT },
    { "status", required_argument, NULL, OPT_STATUS },
    { "since", required_argument, NULL, OPT_SINCE },
    { "until", required_argument, NULL, OPT_UNTIL },
    { "cold", no_argument, NULL, OPT_COLD },
    { "warm", no_argument, NULL, OPT_WARM },
    { "min-duration", required_argument, NULL, OPT_MIN_DURATION },
    { "error-type", required_argument, NULL, OPT_ERROR_TYPE },
    { "trigger", required_argument, NULL, OPT_TRIGGER },
    { "cursor", required_argument, NULL, OPT_CURSOR },
    { "json", no_argument, NULL, OPT_JSON },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

/* The filters of `mayfly invocations`, each a query parameter of
 * GET /v1/functions/NAME/invocations and a flag of the command. The server
 * checks the values (a bad one is its 400). */
typedef struct inv_filter {
    const char *param, *flag, *value;
} inv_filter_t;

enum {
    F_STATUS,
    F_SINCE,
    F_UNTIL,
    F_COLD,
    F_MIN_DURATION,
    F_ERROR_TYPE,
    F_TRIGGER,
    F_LIMIT,
    F_COUNT
};

#define INV_COLS 7
static const char *const inv_header[INV_COLS] = { "REQUEST_ID", "STATUS",    "START",
                                                  "DURATION_MS", "BILLED_MS", "COLD",
                                                  "MAX_RSS_KB" };

static void fill_row(buf_t *cells, const json_t *rec)
{
    cli_cell_string(&cells[0], json_object_get(rec, "request_id"));
    cli_cell_string(&cells[1], json_object_get(rec, "status"));
    cli_cell_string(&cells[2], json_object_get(rec, "start"));
    cli_cell_number(&cells[3], json_object_get(rec, "duration_ms"));
    cli_cell_number(&cells[4], json_object_get(rec, "billed_ms"));
    json_t *cold = json_object_get(rec, "cold_start");
    buf_adds(&cells[5], json_is_boolean(cold) ? (json_is_true(cold) ? "yes" : "no") : "-");
    cli_cell_number(&cells[6], json_object_get(rec, "max_rss_kb"));
}

/* Appends " ARG" to a command line, single-quoted when the shell would
 * otherwise read it differently. */
static void add_shell_arg(buf_t *out, const char *arg)
{
    buf_addch(out, ' ');
    if (*arg && strspn(arg, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                            "-_.,:/+=@%") == strlen(arg)) {
        buf_adds(out, arg);
        return;
    }
    buf_addch(out, '\'');
    for (const char *p = arg; *p; p++) {
        if (*p == '\'')
            buf_adds(out, "'\\''");
        else
            buf_addch(out, *p);
    }
    buf_addch(out, '\'');
}

/* The table, then, when the server says there is more, the command that
 * lists the next page (the same filters and the cursor) on stderr, after
 * the table: a terminal shows it last, and stdout stays rows for a pipe. */
static int print_table(const client_response_t *resp, const char *name,
                       const inv_filter_t *filters)
{
    json_error_t jerr;
    cleanup_json json_t *doc =
        json_loadb(resp->body.data ? resp->body.data : "", resp->body.len, 0, &jerr);
    json_t *list = json_object_get(doc, "invocations");
    if (!json_is_array(list)) {
        fprintf(stderr, "mayfly invocations: the server's answer has no \"invocations\" list\n");
        return CLI_EXIT_ERROR;
    }
    cli_print_json_array(list, INV_COLS, inv_header, fill_row);
    const char *next = json_string_value(json_object_get(doc, "next"));
    if (next && *next) {
        cleanup_buf buf_t cmd = BUF_INIT;
        buf_adds(&cmd, "next: mayfly invocations");
        add_shell_arg(&cmd, name);
        for (int i = 0; i < F_COUNT; i++) {
            if (!filters[i].value)
                continue;
            add_shell_arg(&cmd, filters[i].flag);
            if (i != F_COLD)
                add_shell_arg(&cmd, filters[i].value);
        }
        add_shell_arg(&cmd, "--cursor");
        add_shell_arg(&cmd, next);
        fprintf(stderr, "%s\n", cmd.data);
    }
    return CLI_EXIT_OK;
}

int cmd_invocations(int argc, char **argv)
{
    inv_filter_t filters[F_COUNT] = {
        [F_STATUS] = { "status", "--status", NULL },
        [F_SINCE] = { "since", "--since", NULL },
        [F_UNTIL] = { "until", "--until", NULL },
        [F_COLD] = { "cold", NULL, NULL }, /* --cold or --warm */
        [F_MIN_DURATION] = { "min_duration_ms", "--min-duration", NULL },
        [F_ERROR_TYPE] = { "error_type", "--error-type", NULL },
        [F_TRIGGER] = { "trigger", "--trigger", NULL },
        [F_LIMIT] = { "limit", "--limit", NULL },
    };
    const char *cursor = NULL;
    int limit = 0;
    char limit_s[16];
    bool as_json = false;
    int opt;

    cli_getopt_begin(argc, argv, "invocations");
    while ((opt = getopt_long(argc, argv, "h", invocations_options, NULL)) != -1) {
        switch (opt) {
        case 'h':
            fputs(invocations_usage, stdout);
            return CLI_EXIT_OK;
        case OPT_LIMIT:
            if (!cli_parse_int(optarg, &limit) || limit < 1)
                return cli_usage_error("invocations", invocations_usage,
                                       "--limit expects a positive integer, got `%s`", optarg);
            snprintf(limit_s, sizeof limit_s, "%d", limit);
            filters[F_LIMIT].value = limit_s;
            break;
        case OPT_STATUS:
            /* A usage error here rather than an HTTP 400 later. */
            if (!obs_records_status_valid(optarg))
                return cli_usage_error("invocations", invocations_usage,
                                       "--status must be one of success, error, timeout, oom, "
                                       "throttled, queued or running, not `%s`",
                                       optarg);
            filters[F_STATUS].value = optarg;
            break;
        case OPT_SINCE:
            filters[F_SINCE].value = optarg;
            break;
        case OPT_UNTIL:
            filters[F_UNTIL].value = optarg;
            break;
        case OPT_COLD:
        case OPT_WARM:
            if (filters[F_COLD].value)
                return cli_usage_error("invocations", invocations_usage,
                                       "--cold and --warm go one at a time");
            filters[F_COLD].value = opt == OPT_COLD ? "1" : "0";
            filters[F_COLD].flag = opt == OPT_COLD ? "--cold" : "--warm";
            break;
        case OPT_MIN_DURATION:
            filters[F_MIN_DURATION].value = optarg;
            break;
        case OPT_TRIGGER:
            filters[F_TRIGGER].value = optarg;
            break;
        case OPT_ERROR_TYPE:
            filters[F_ERROR_TYPE].value = optarg;
            break;
        case OPT_CURSOR:
            cursor = optarg;
            break;
        case OPT_JSON:
            as_json = true;
            break;
        default:
            return cli_usage_error("invocations", invocations_usage, NULL);
        }
    }
    const char *name;
    int rc = cli_last_operand(argc, argv, "invocations", invocations_usage, "NAME", &name);
    if (rc >= 0)
        return rc;

    cleanup_buf buf_t path = BUF_INIT;
    cli_function_path(&path, name, "/invocations");
    for (int i = 0; i < F_COUNT; i++)
        if (filters[i].value)
            cli_query_add(&path, filters[i].param, filters[i].value);
    if (cursor)
        cli_query_add(&path, "cursor", cursor);

    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    if (cli_request("GET", path.data, NULL, 0, NULL, 0, &resp))
        return CLI_EXIT_ERROR;
    if (resp.status != 200) {
        client_print_error(&resp);
        return CLI_EXIT_ERROR;
    }
    if (as_json) {
        cli_print_body(&resp.body);
        return CLI_EXIT_OK;
    }
    return print_table(&resp, name, filters);
}

int cmd_invocation(int argc, char **argv)
{
    bool as_json = false;
    const char *payload = NULL;
    int opt;
    cli_getopt_begin(argc, argv, "invocation");
    while ((opt = getopt_long(argc, argv, "h", invocation_options, NULL)) != -1) {
        switch (opt) {
        case 'h':
            fputs(invocation_usage, stdout);
            return CLI_EXIT_OK;
        case OPT_JSON:
            as_json = true;
            break;
        case OPT_EVENT:
        case OPT_RESULT:
            if (payload)
                return cli_usage_error("invocation", invocation_usage,
                                       "--event and --result go one at a time");
            payload = opt == OPT_EVENT ? "/event" : "/result";
            break;
        default:
            return cli_usage_error("invocation", invocation_usage, NULL);
        }
    }
    if (payload && as_json)
        return cli_usage_error("invocation", invocation_usage,
                               "--json prints the record; --event and --result the bytes");
    const char *id;
    int rc = cli_last_operand(argc, argv, "invocation", invocation_usage, "ID", &id);
    if (rc >= 0)
        return rc;

    cleanup_buf buf_t path = BUF_INIT;
    buf_adds(&path, "/v1/invocations/");
    cli_url_encode(&path, id);
    if (as_json)
        return cli_get_and_print_json("invocation", path.data);
    if (payload) {
        buf_adds(&path, payload);
        cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
        if (cli_request("GET", path.data, NULL, 0, NULL, 0, &resp))
            return CLI_EXIT_ERROR;
        if (resp.status != 200) {
            client_print_error(&resp);
            return CLI_EXIT_ERROR;
        }
        if (resp.body.len && fwrite(resp.body.data, 1, resp.body.len, stdout) != resp.body.len)
            return CLI_EXIT_ERROR;
        return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
    }

    cleanup_json json_t *doc = NULL;
    rc = cli_get_json("invocation", path.data, &doc);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (!json_is_object(doc)) {
        fprintf(stderr, "mayfly invocation: the server's answer is not a JSON object\n");
        return CLI_EXIT_ERROR;
    }
    /* The record as JSON, its connections as a table after it. */
    json_t *eg = json_incref(json_object_get(doc, "egress"));
    if (json_array_size(eg) > 0)
        json_object_del(doc, "egress");
    json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    putchar('\n');
    size_t n = json_array_size(eg);
    if (n > 0) {
        printf("\negress:\n");
        cli_print_json_array(eg, EG_COLS, eg_header, fill_egress_row);
        json_t *more = json_object_get(doc, "egress_more");
        if (json_is_integer(more))
            printf("(and %" JSON_INTEGER_FORMAT " more connections)\n", json_integer_value(more));
    }
    json_decref(eg);
    return CLI_EXIT_OK;
}
