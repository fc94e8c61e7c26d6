/* mayfly alert put|ls|get|rm: alert rules, conditions on a function's
 * calls, its async queue or a budget that notify when they fire and when
 * they resolve (PUT, GET and DELETE /v1/alerts/{name}; docs/alerts.md). */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/buf.h"
#include "core/cleanup.h"
#include "core/fs.h"
#include "core/json.h"

static const char alert_usage[] =
    "usage: mayfly alert put NAME --file RULE.json\n"
    "       mayfly alert put NAME (--function F | --budget B) --metric M [--op '>'|'<']\n"
    "                        [--threshold X] [--window S] [--for S] [--severity S]\n"
    "                        [--notify-webhook URL]... [--notify-function F]...\n"
    "                        [--notify-topic T]... [--tenant T]\n"
    "       mayfly alert ls [--tenant T] [--json]\n"
    "       mayfly alert get NAME [--tenant T]\n"
    "       mayfly alert rm NAME [--tenant T]\n"
    "\n"
    "An alert rule watches a metric of a function's calls (error_rate,\n"
    "timeout_rate, throttle_rate, p50_duration_ms, p99_duration_ms,\n"
    "cold_start_rate, invocations, absent), of its async queue\n"
    "(async_queue_depth, async_oldest_age_s, dead_letters) or of a budget\n"
    "(budget_used) over a window, goes ok -> pending -> firing -> resolved, and\n"
    "notifies its targets (Prometheus Alertmanager's webhook document) when it\n"
    "fires and when it resolves (docs/alerts.md).\n"
    "\n"
    "commands:\n"
    "  put NAME      create or replace the rule NAME\n"
    "  ls            list rules with their state and value\n"
    "  get NAME      show one as JSON, with its series and history\n"
    "  rm NAME       delete it\n"
    "\n"
    "options:\n"
    "  --file F               the rule's JSON (the other put options then go)\n"
    "  --function F           the function, or '*' for each of the tenant's\n"
    "  --budget B             the budget (metric budget_used)\n"
    "  --metric M             what is watched (see above)\n"
    "  --op O                 '>' or '<' (not for absent)\n"
    "  --threshold X          the value it is compared with (not for absent)\n"
    "  --window S            seconds the metric is measured over (default 300)\n"
    "  --for S                seconds it must breach before it fires (default 0)\n"
    "  --severity S           its severity label (default warning)\n"
    "  --notify-webhook URL   POST Alertmanager's document to URL (repeatable)\n"
    "  --notify-function F    queue it as an async event of F (repeatable)\n"
    "  --notify-topic T       publish it to topic T (repeatable)\n"
    "  --tenant T             the tenant (an admin's choice; the key's own by default)\n"
    "  --json                 ls: the server's JSON\n"
    "  -h, --help             show this help\n";

enum {
    OPT_TENANT = 256,
    OPT_JSON,
    OPT_FILE,
    OPT_FUNCTION,
    OPT_BUDGET,
    OPT_METRIC,
    OPT_OP,
    OPT_THRESHOLD,
    OPT_WINDOW,
    OPT_FOR,
    OPT_SEVERITY,
    OPT_WEBHOOK,
    OPT_NOTIFY_FUNCTION,
    OPT_TOPIC
};

static bool parse_number(const char *s, double *out)
{
    char *end;
    double x = strtod(s, &end);
    if (!*s || *end || !isfinite(x))
        return false;
    *out = x;
    return true;
}

static bool parse_seconds(const char *s, long *out)
{
    char *end;
    long x = strtol(s, &end, 10);
    if (!*s || *end || x < 0 || x > 86400)
        return false;
    *out = x;
    return true;
}


/* The command's paths and its ls, get and rm (cli/owned.c), below. */
static const cli_owned_t owned;

static int alert_put(int argc, char **argv)
{
    static const struct option options[] = {
        {"file", required_argument, NULL, OPT_FILE},
        {"tenant", required_argument, NULL, OPT_TENANT},
        {"function", required_argument, NULL, OPT_FUNCTION},
        {"budget", required_argument, NULL, OPT_BUDGET},
        {"metric", required_argument, NULL, OPT_METRIC},
        {"op", required_argument, NULL, OPT_OP},
        {"threshold", required_argument, NULL, OPT_THRESHOLD},
        {"window", required_argument, NULL, OPT_WINDOW},
        {"for", required_argument, NULL, OPT_FOR},
        {"severity", required_argument, NULL, OPT_SEVERITY},
        {"notify-webhook", required_argument, NULL, OPT_WEBHOOK},
        {"notify-function", required_argument, NULL, OPT_NOTIFY_FUNCTION},
        {"notify-topic", required_argument, NULL, OPT_TOPIC},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    cleanup_json json_t *body = json_object();
    const char *file = NULL;
    bool flags = false;
    int opt;
    cli_getopt_begin(argc, argv, "alert put");
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        double x;
        long s;
        if (opt != 'h' && opt != OPT_FILE && opt != OPT_TENANT)
            flags = true;
        switch (opt) {
        case 'h': fputs(alert_usage, stdout); return CLI_EXIT_OK;
        case OPT_FILE: file = optarg; break;
        case OPT_TENANT: json_object_set_new(body, "tenant", json_string(optarg)); break;
        case OPT_FUNCTION: json_object_set_new(body, "function", json_string(optarg)); break;
        case OPT_BUDGET: json_object_set_new(body, "budget", json_string(optarg)); break;
        case OPT_METRIC: json_object_set_new(body, "metric", json_string(optarg)); break;
        case OPT_OP:
            if (strcmp(optarg, ">") && strcmp(optarg, "<"))
                return cli_usage_error("alert put", alert_usage,
                                       "--op must be '>' or '<', not `%s`", optarg);
            json_object_set_new(body, "op", json_string(optarg));
            break;
        case OPT_THRESHOLD:
            if (!parse_number(optarg, &x))
                return cli_usage_error("alert put", alert_usage,
                                       "--threshold must be a number, not `%s`", optarg);
            json_object_set_new(body, "threshold", json_real(x));
            break;
        case OPT_WINDOW:
        case OPT_FOR:
            if (!parse_seconds(optarg, &s))
                return cli_usage_error("alert put", alert_usage,
                                       "--%s must be whole seconds, not `%s`",
                                       opt == OPT_WINDOW ? "window" : "for", optarg);
            json_object_set_new(body, opt == OPT_WINDOW ? "window_s" : "for_s", json_integer(s));
            break;
        case OPT_SEVERITY: json_object_set_new(body, "severity", json_string(optarg)); break;
        case OPT_WEBHOOK: cli_notify_add(body, "webhook", optarg); break;
        case OPT_NOTIFY_FUNCTION: cli_notify_add(body, "function", optarg); break;
        case OPT_TOPIC: cli_notify_add(body, "topic", optarg); break;
        default: return cli_usage_error("alert put", alert_usage, NULL);
        }
    }
    const char *name;
    int rc = cli_last_operand(argc, argv, "alert put", alert_usage, "NAME", &name);
    if (rc >= 0)
        return rc;
    cleanup_buf buf_t path = BUF_INIT, text = BUF_INIT;
    if (file) {
        if (flags)
            return cli_usage_error("alert put", alert_usage,
                                   "--file gives the whole rule: no other rule options with it");
        mf_error_t err = MF_ERROR_INIT;
        if (fs_read_file(file, &text, 1 << 20, &err) < 0) {
            fprintf(stderr, "mayfly alert put: %s\n", err.msg);
            return CLI_EXIT_USAGE;
        }
        const char *tenant = json_string_value(json_object_get(body, "tenant"));
        cli_owned_path(&owned, &path, name, NULL);
        if (tenant) {
            json_t *doc = json_loadb(text.data, text.len, 0, NULL);
            if (json_is_object(doc)) {
                json_object_set_new(doc, "tenant", json_string(tenant));
                buf_reset(&text);
                json_dump_buf(&text, doc);
            }
            json_decref(doc);
        }
    } else {
        if (!json_object_get(body, "metric"))
            return cli_usage_error("alert put", alert_usage, "missing --metric (or --file)");
        cli_owned_path(&owned, &path, name, NULL);
        json_dump_buf(&text, body);
    }
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    client_header_t type = {"Content-Type", "application/json"};
    if (cli_request("PUT", path.data, text.data, text.len, &type, 1, &resp))
        return CLI_EXIT_ERROR;
    rc = cli_check_status(&resp, 200, 201);
    if (rc == CLI_EXIT_OK)
        printf("%s alert rule %s\n", resp.status == 201 ? "created" : "updated", name);
    return rc;
}

#define LS_COLS 7
static const char *const ls_header[LS_COLS] = {"TENANT", "NAME",  "WATCHES", "METRIC",
                                               "RULE",   "STATE", "VALUE"};

static void fill_row(buf_t *cells, const json_t *a)
{
    cli_cell_string(&cells[0], json_object_get(a, "tenant"));
    cli_cell_string(&cells[1], json_object_get(a, "name"));
    const json_t *budget = json_object_get(a, "budget");
    if (budget)
        buf_addf(&cells[2], "budget %s", json_string_value(budget));
    else
        cli_cell_string(&cells[2], json_object_get(a, "function"));
    cli_cell_string(&cells[3], json_object_get(a, "metric"));
    const char *op = json_string_value(json_object_get(a, "op"));
    if (op)
        buf_addf(&cells[4], "%s %g for %llds", op,
                 json_number_value(json_object_get(a, "threshold")),
                 (long long)json_integer_value(json_object_get(a, "for_s")));
    else
        buf_addf(&cells[4], "none for %llds",
                 (long long)json_integer_value(json_object_get(a, "for_s")));
    cli_cell_string(&cells[5], json_object_get(a, "state"));
    const json_t *v = json_object_get(a, "value");
    if (json_is_number(v))
        buf_addf(&cells[6], "%g", json_number_value(v));
    else
        buf_adds(&cells[6], json_array_size(json_object_get(a, "series")) > 1 ? "(series)" : "-");
}

static const cli_owned_t owned = {
    .cmd = "alert",
    .path = "/v1/alerts",
    .key = "alerts",
    .noun = "alert rule",
    .usage = alert_usage,
    .ncols = LS_COLS,
    .header = ls_header,
    .fill_row = fill_row,
    .put = alert_put,
};

int cmd_alert(int argc, char **argv)
{
    return cli_owned_command(&owned, argc, argv);
}
