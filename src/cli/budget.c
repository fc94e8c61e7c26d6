/* mayfly budget put|ls|get|rm: budgets, a cap on what a tenant's calls
 * cost in a day or a month (PUT, GET and DELETE /v1/budgets/{name};
 * docs/metering.md, "Budgets"). */
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
#include "core/json.h"

static const char budget_usage[] =
    "usage: mayfly budget put NAME --tenant T [--function F] --period day|month\n"
    "                         --amount X [--alert-at 0.5,0.8,1] [--action alert|block]\n"
    "                         [--notify-webhook URL]... [--notify-function F]...\n"
    "                         [--notify-topic T]...\n"
    "       mayfly budget ls [--tenant T] [--json]\n"
    "       mayfly budget get NAME [--tenant T]\n"
    "       mayfly budget rm NAME [--tenant T]\n"
    "\n"
    "Budgets cap what a tenant's calls (or one function's) cost in a day or a\n"
    "month (UTC), at the server's prices (docs/metering.md). Each threshold of\n"
    "--alert-at (a fraction of the amount) is recorded and logged once a\n"
    "period; with --action block, once the spend reaches the amount, new calls\n"
    "are refused (402) and async events wait until the period ends or the\n"
    "budget is raised or removed.\n"
    "\n"
    "commands:\n"
    "  put NAME      create or replace the budget NAME\n"
    "  ls            list budgets with their spend (an admin's: every tenant's)\n"
    "  get NAME      show one as JSON: spend, forecast, thresholds crossed\n"
    "  rm NAME       delete it (events it held run)\n"
    "\n"
    "options:\n"
    "  --tenant T          the tenant (put: required; others: an admin's choice,\n"
    "                      the key's own tenant by default)\n"
    "  --function F        only F's calls count (default: every function's)\n"
    "  --period P          day or month\n"
    "  --amount X          the cap, in the prices' currency\n"
    "  --alert-at LIST     comma-separated fractions of the amount (0.5,0.8,1)\n"
    "  --action A          alert (default: record and log) or block\n"
    "  --notify-webhook URL, --notify-function F, --notify-topic T\n"
    "                      where each threshold crossed is also sent, as an\n"
    "                      alert is (docs/alerts.md; repeatable)\n"
    "  --json              ls: the server's JSON\n"
    "  -h, --help          show this help\n";

enum { OPT_TENANT = 256, OPT_FUNCTION, OPT_PERIOD, OPT_AMOUNT, OPT_ALERT_AT, OPT_ACTION, OPT_JSON,
       OPT_WEBHOOK, OPT_NOTIFY_FUNCTION, OPT_TOPIC };

static bool parse_number(const char *s, double *out)
{
    char *end;
    double x = strtod(s, &end);
    if (!*s || *end || !isfinite(x))
        return false;
    *out = x;
    return true;
}

/* "0.5,0.8,1" into a JSON array; NULL when a member is not a number. */
static json_t *alert_list(const char *s)
{
    json_t *list = json_array();
    cleanup_buf buf_t item = BUF_INIT;
    for (const char *p = s;; p++) {
        if (*p && *p != ',') {
            buf_addch(&item, *p);
            continue;
        }
        double x;
        if (!parse_number(item.data ? item.data : "", &x)) {
            json_decref(list);
            return NULL;
        }
        json_array_append_new(list, json_real(x));
        buf_reset(&item);
        if (!*p)
            return list;
    }
}

/* The command's paths and its ls, get and rm (cli/owned.c), below. */
static const cli_owned_t owned;

static int budget_put(int argc, char **argv)
{
    static const struct option options[] = {
        {"tenant", required_argument, NULL, OPT_TENANT},
        {"function", required_argument, NULL, OPT_FUNCTION},
        {"period", required_argument, NULL, OPT_PERIOD},
        {"amount", required_argument, NULL, OPT_AMOUNT},
        {"alert-at", required_argument, NULL, OPT_ALERT_AT},
        {"action", required_argument, NULL, OPT_ACTION},
        {"notify-webhook", required_argument, NULL, OPT_WEBHOOK},
        {"notify-function", required_argument, NULL, OPT_NOTIFY_FUNCTION},
        {"notify-topic", required_argument, NULL, OPT_TOPIC},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    cleanup_json json_t *body = json_object();
    bool amount = false;
    int opt;
    cli_getopt_begin(argc, argv, "budget put");
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        double x;
        json_t *list;
        switch (opt) {
        case 'h': fputs(budget_usage, stdout); return CLI_EXIT_OK;
        case OPT_TENANT: json_object_set_new(body, "tenant", json_string(optarg)); break;
        case OPT_FUNCTION: json_object_set_new(body, "function", json_string(optarg)); break;
        case OPT_PERIOD:
            if (strcmp(optarg, "day") && strcmp(optarg, "month"))
                return cli_usage_error("budget put", budget_usage,
                                       "--period must be day or month, not `%s`", optarg);
            json_object_set_new(body, "period", json_string(optarg));
            break;
        case OPT_AMOUNT:
            if (!parse_number(optarg, &x))
                return cli_usage_error("budget put", budget_usage,
                                       "--amount must be a number, not `%s`", optarg);
            json_object_set_new(body, "amount", json_real(x));
            amount = true;
            break;
        case OPT_ALERT_AT:
            if (!(list = alert_list(optarg)))
                return cli_usage_error("budget put", budget_usage,
                                       "--alert-at must be numbers separated by commas "
                                       "(0.5,0.8,1), not `%s`",
                                       optarg);
            json_object_set_new(body, "alert_at", list);
            break;
        case OPT_ACTION:
            if (strcmp(optarg, "alert") && strcmp(optarg, "block"))
                return cli_usage_error("budget put", budget_usage,
                                       "--action must be alert or block, not `%s`", optarg);
            json_object_set_new(body, "action", json_string(optarg));
            break;
        case OPT_WEBHOOK: cli_notify_add(body, "webhook", optarg); break;
        case OPT_NOTIFY_FUNCTION: cli_notify_add(body, "function", optarg); break;
        case OPT_TOPIC: cli_notify_add(body, "topic", optarg); break;
        default: return cli_usage_error("budget put", budget_usage, NULL);
        }
    }
    const char *name;
    int rc = cli_last_operand(argc, argv, "budget put", budget_usage, "NAME", &name);
    if (rc >= 0)
        return rc;
    if (!json_object_get(body, "tenant"))
        return cli_usage_error("budget put", budget_usage, "missing --tenant");
    if (!json_object_get(body, "period"))
        return cli_usage_error("budget put", budget_usage, "missing --period");
    if (!amount)
        return cli_usage_error("budget put", budget_usage, "missing --amount");
    cleanup_buf buf_t path = BUF_INIT, text = BUF_INIT;
    cli_owned_path(&owned, &path, name, NULL);
    json_dump_buf(&text, body);
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    client_header_t type = {"Content-Type", "application/json"};
    if (cli_request("PUT", path.data, text.data, text.len, &type, 1, &resp))
        return CLI_EXIT_ERROR;
    rc = cli_check_status(&resp, 200, 201);
    if (rc == CLI_EXIT_OK)
        printf("%s budget %s\n", resp.status == 201 ? "created" : "updated", name);
    return rc;
}

#define LS_COLS 8
static const char *const ls_header[LS_COLS] = {"TENANT", "NAME",  "FUNCTION", "PERIOD",
                                               "AMOUNT", "SPEND", "FORECAST", "ACTION"};

static void fill_row(buf_t *cells, const json_t *b)
{
    cli_cell_string(&cells[0], json_object_get(b, "tenant"));
    cli_cell_string(&cells[1], json_object_get(b, "name"));
    cli_cell_string(&cells[2], json_object_get(b, "function"));
    cli_cell_string(&cells[3], json_object_get(b, "period"));
    buf_addf(&cells[4], "%.6f", json_number_value(json_object_get(b, "amount")));
    buf_addf(&cells[5], "%.6f", json_number_value(json_object_get(b, "spend")));
    buf_addf(&cells[6], "%.6f", json_number_value(json_object_get(b, "forecast")));
    const char *action = json_string_value(json_object_get(b, "action"));
    buf_addf(&cells[7], "%s%s", action ? action : "-",
             json_is_true(json_object_get(b, "blocking")) ? " (blocking)" : "");
}

static const cli_owned_t owned = {
    .cmd = "budget",
    .path = "/v1/budgets",
    .key = "budgets",
    .noun = "budget",
    .usage = budget_usage,
    .ncols = LS_COLS,
    .header = ls_header,
    .fill_row = fill_row,
    .put = budget_put,
};

int cmd_budget(int argc, char **argv)
{
    return cli_owned_command(&owned, argc, argv);
}
