/* mayfly schedule put|ls|get|rm: schedules (PUT, GET and DELETE
 * /v1/schedules/…), which start a function by the clock. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "core/buf.h"
#include "core/json.h"

static const char schedule_usage[] =
    "usage: mayfly schedule put NAME --expression EXPR --function F [--input JSON]\n"
    "                           [--timezone TZ] [--disabled] [--flexible-window MIN]\n"
    "       mayfly schedule ls [--json]\n"
    "       mayfly schedule get NAME\n"
    "       mayfly schedule rm NAME\n"
    "\n"
    "Schedules start a function by the clock, as EventBridge Scheduler does: each\n"
    "due time queues one asynchronous event (retries, dead letters and\n"
    "destinations apply), the schedule's input or else EventBridge's\n"
    "\"Scheduled Event\".\n"
    "\n"
    "commands:\n"
    "  put NAME                  create or replace the schedule NAME:\n"
    "    --expression EXPR       rate(5 minutes), cron(0 12 * * ? *) (AWS's six\n"
    "                            fields) or at(2026-12-24T18:00:00)\n"
    "    --function F            the function it starts (it must exist)\n"
    "    --input JSON            the event it gets (default: the scheduled event)\n"
    "    --timezone TZ           the zone cron() and at() are read in, e.g.\n"
    "                            Europe/Paris (default UTC)\n"
    "    --disabled              keep it, but fire nothing\n"
    "    --flexible-window MIN   fire within MIN minutes after each due time,\n"
    "                            0 to 1440 (default 0: at the due time)\n"
    "  ls [--json]               list the schedules with their next fire\n"
    "  get NAME                  show one, with its next five fires and its last\n"
    "                            fires, as JSON\n"
    "  rm NAME                   delete it\n"
    "  -h, --help                show this help\n";

static void schedule_path(buf_t *out, const char *name)
{
    buf_adds(out, "/v1/schedules/");
    cli_url_encode(out, name);
}

static int schedule_put(int argc, char **argv)
{
    static const struct option options[] = {
        {"expression", required_argument, NULL, 'e'},
        {"function", required_argument, NULL, 'f'},
        {"input", required_argument, NULL, 'i'},
        {"timezone", required_argument, NULL, 't'},
        {"disabled", no_argument, NULL, 'd'},
        {"flexible-window", required_argument, NULL, 'w'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    cleanup_json json_t *body = json_object();
    int opt;
    cli_getopt_begin(argc, argv, "schedule put");
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'h':
            fputs(schedule_usage, stdout);
            return CLI_EXIT_OK;
        case 'e':
            json_object_set_new(body, "expression", json_string(optarg));
            break;
        case 'f':
            json_object_set_new(body, "function", json_string(optarg));
            break;
        case 't':
            json_object_set_new(body, "timezone", json_string(optarg));
            break;
        case 'd':
            json_object_set_new(body, "enabled", json_false());
            break;
        case 'i': {
            json_error_t jerr;
            json_t *input = json_loads(optarg, JSON_DECODE_ANY, &jerr);
            if (!input)
                return cli_usage_error("schedule put", schedule_usage,
                                       "--input must be JSON (%s)", jerr.text);
            json_object_set_new(body, "input", input);
            break;
        }
        case 'w': {
            int min;
            if (!cli_parse_int(optarg, &min) || min < 0 || min > 1440)
                return cli_usage_error("schedule put", schedule_usage,
                                       "--flexible-window must be whole minutes from 0 to 1440, "
                                       "not `%s`",
                                       optarg);
            json_object_set_new(body, "flexible_window_min", json_integer(min));
            break;
        }
        default:
            return cli_usage_error("schedule put", schedule_usage, NULL);
        }
    }
    const char *name;
    int rc = cli_last_operand(argc, argv, "schedule put", schedule_usage, "NAME", &name);
    if (rc >= 0)
        return rc;
    if (!json_object_get(body, "expression"))
        return cli_usage_error("schedule put", schedule_usage, "missing --expression EXPR");
    if (!json_object_get(body, "function"))
        return cli_usage_error("schedule put", schedule_usage, "missing --function F");

    cleanup_buf buf_t path = BUF_INIT, data = BUF_INIT;
    schedule_path(&path, name);
    json_dump_buf(&data, body);
    client_header_t json = {"Content-Type", "application/json"};
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    if (cli_request("PUT", path.data, data.data, data.len, &json, 1, &resp))
        return CLI_EXIT_ERROR;
    if (resp.status != 200 && resp.status != 201) {
        client_print_error(&resp);
        return CLI_EXIT_ERROR;
    }
    cleanup_json json_t *doc = json_loadb(resp.body.data, resp.body.len, 0, NULL);
    const char *next = json_string_value(json_array_get(json_object_get(doc, "next_fires"), 0));
    printf("%s schedule %s; next fire: %s\n", resp.status == 201 ? "created" : "updated", name,
           next ? next : "none");
    return CLI_EXIT_OK;
}

#define LS_COLS 6
static const char *const ls_header[LS_COLS] = {"NAME",    "EXPRESSION", "TIMEZONE",
                                               "FUNCTION", "NEXT_FIRE",  "LAST_FIRE"};

static void fill_row(buf_t *cells, const json_t *s)
{
    cli_cell_string(&cells[0], json_object_get(s, "name"));
    cli_cell_string(&cells[1], json_object_get(s, "expression"));
    cli_cell_string(&cells[2], json_object_get(s, "timezone"));
    cli_cell_string(&cells[3], json_object_get(s, "function"));
    if (json_is_false(json_object_get(s, "enabled")))
        buf_adds(&cells[4], "disabled");
    else
        cli_cell_string(&cells[4], json_array_get(json_object_get(s, "next_fires"), 0));
    const json_t *last = json_object_get(s, "last_fire");
    cli_cell_string(&cells[5], json_object_get(last, "due"));
    if (json_is_string(json_object_get(last, "error")))
        buf_adds(&cells[5], " (failed)");
}

static int schedule_ls(int argc, char **argv)
{
    return cli_list_command(argc, argv, "schedule ls", schedule_usage, "/v1/schedules",
                            "schedules", LS_COLS, ls_header, fill_row);
}

static int schedule_get(int argc, char **argv)
{
    const char *name;
    int rc = cli_one_operand(argc, argv, "schedule get", schedule_usage, "NAME", &name);
    if (rc >= 0)
        return rc;
    cleanup_buf buf_t path = BUF_INIT;
    schedule_path(&path, name);
    return cli_get_and_print_json("schedule get", path.data);
}

static int schedule_rm(int argc, char **argv)
{
    const char *name;
    int rc = cli_one_operand(argc, argv, "schedule rm", schedule_usage, "NAME", &name);
    if (rc >= 0)
        return rc;
    cleanup_buf buf_t path = BUF_INIT;
    schedule_path(&path, name);
    return cli_delete(path.data, "schedule", name);
}

int cmd_schedule(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int argc, char **argv);
    } subs[] = {{"put", schedule_put}, {"ls", schedule_ls}, {"get", schedule_get},
                {"rm", schedule_rm}};
    if (argc < 2)
        return cli_usage_error("schedule", schedule_usage, "missing a command: put, ls, get or rm");
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(schedule_usage, stdout);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof subs / sizeof *subs; i++)
        if (!strcmp(argv[1], subs[i].name))
            return subs[i].fn(argc - 1, argv + 1);
    return cli_usage_error("schedule", schedule_usage, "unknown command `%s`: put, ls, get or rm",
                           argv[1]);
}
