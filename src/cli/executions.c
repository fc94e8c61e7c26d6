/* mayfly executions NAME, mayfly execution ID [--stop] and mayfly callback
 * ID succeed|fail|heartbeat: durable executions (docs/durable.md), over
 * /v1/durable-executions and /v1/durable-execution-callbacks. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "core/buf.h"
#include "core/json.h"

static const char executions_usage[] =
    "usage: mayfly executions NAME [--status S] [--limit N] [--json]\n"
    "\n"
    "Lists the durable executions of function NAME, newest first: id, status,\n"
    "start, name.\n"
    "\n"
    "options:\n"
    "  --status S   only RUNNING, SUCCEEDED, FAILED, TIMED_OUT or STOPPED ones\n"
    "  --limit N    at most N (100)\n"
    "  --json       print the server's answer\n"
    "  -h, --help   show this help\n";

int cmd_executions(int argc, char **argv)
{
    static const struct option options[] = {
        {"status", required_argument, NULL, 's'},
        {"limit", required_argument, NULL, 'l'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *status = NULL, *limit = NULL;
    bool as_json = false;
    int opt;
    cli_getopt_begin(argc, argv, "executions");
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'h': fputs(executions_usage, stdout); return CLI_EXIT_OK;
        case 's': status = optarg; break;
        case 'l': limit = optarg; break;
        case 'j': as_json = true; break;
        default: return cli_usage_error("executions", executions_usage, NULL);
        }
    }
    const char *name;
    int rc = cli_last_operand(argc, argv, "executions", executions_usage, "NAME", &name);
    if (rc >= 0)
        return rc;
    int n;
    if (limit && !cli_parse_int(limit, &n))
        return cli_usage_error("executions", executions_usage, "--limit must be a number");
    cleanup_buf buf_t path = BUF_INIT;
    buf_adds(&path, "/v1/durable-executions");
    cli_query_add(&path, "function", name);
    if (status)
        cli_query_add(&path, "status", status);
    if (limit)
        cli_query_add(&path, "limit", limit);
    if (as_json)
        return cli_get_and_print_json("executions", path.data);
    json_t *doc = NULL;
    if ((rc = cli_get_json("executions", path.data, &doc)) != CLI_EXIT_OK)
        return rc;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(doc, "executions"), i, e)
        printf("%s  %-9s  %s  %s\n", json_string_value(json_object_get(e, "id")),
               json_string_value(json_object_get(e, "status")),
               json_string_value(json_object_get(e, "start")) ?: "-",
               json_string_value(json_object_get(e, "name")) ?: "");
    json_decref(doc);
    return CLI_EXIT_OK;
}

static const char execution_usage[] =
    "usage: mayfly execution ID [--stop]\n"
    "\n"
    "Shows durable execution ID with its operations (each step's name,\n"
    "status, attempts, timing, result or error), as JSON; --stop stops it.\n"
    "\n"
    "options:\n"
    "  --stop       stop the execution (StopDurableExecution)\n"
    "  -h, --help   show this help\n";

int cmd_execution(int argc, char **argv)
{
    static const struct option options[] = {
        {"stop", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool stop = false;
    int opt;
    cli_getopt_begin(argc, argv, "execution");
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'h': fputs(execution_usage, stdout); return CLI_EXIT_OK;
        case 's': stop = true; break;
        default: return cli_usage_error("execution", execution_usage, NULL);
        }
    }
    const char *id;
    int rc = cli_last_operand(argc, argv, "execution", execution_usage, "ID", &id);
    if (rc >= 0)
        return rc;
    cleanup_buf buf_t path = BUF_INIT;
    buf_adds(&path, "/v1/durable-executions/");
    cli_url_encode(&path, id);
    if (!stop)
        return cli_get_and_print_json("execution", path.data);
    buf_adds(&path, "/stop");
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    if (cli_request("POST", path.data, "", 0, NULL, 0, &resp))
        return CLI_EXIT_ERROR;
    if (resp.status != 200) {
        client_print_error(&resp);
        return CLI_EXIT_ERROR;
    }
    printf("stopped %s\n", id);
    return CLI_EXIT_OK;
}

static const char callback_usage[] =
    "usage: mayfly callback ID succeed|fail|heartbeat [--data TEXT]\n"
    "\n"
    "Completes the callback ID a durable execution waits for\n"
    "(waitForCallback): succeed with TEXT as its result (the SDK parses it,\n"
    "so JSON), fail with TEXT as an error object {\"ErrorType\",\n"
    "\"ErrorMessage\"}, or send a heartbeat.\n"
    "\n"
    "options:\n"
    "  --data TEXT  the result or error (default: empty)\n"
    "  -h, --help   show this help\n";

int cmd_callback(int argc, char **argv)
{
    static const struct option options[] = {
        {"data", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *data = "";
    int opt;
    cli_getopt_begin(argc, argv, "callback");
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'h': fputs(callback_usage, stdout); return CLI_EXIT_OK;
        case 'd': data = optarg; break;
        default: return cli_usage_error("callback", callback_usage, NULL);
        }
    }
    if (argc - optind != 2)
        return cli_usage_error("callback", callback_usage,
                               "needs ID and succeed, fail or heartbeat");
    const char *id = argv[optind], *kind = argv[optind + 1];
    if (strcmp(kind, "succeed") && strcmp(kind, "fail") && strcmp(kind, "heartbeat"))
        return cli_usage_error("callback", callback_usage,
                               "the second operand is succeed, fail or heartbeat, not `%s`", kind);
    cleanup_buf buf_t path = BUF_INIT;
    buf_adds(&path, "/v1/durable-execution-callbacks/");
    cli_url_encode(&path, id);
    buf_addf(&path, "/%s", kind);
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    if (cli_request("POST", path.data, data, strlen(data), NULL, 0, &resp))
        return CLI_EXIT_ERROR;
    if (resp.status != 200) {
        client_print_error(&resp);
        return CLI_EXIT_ERROR;
    }
    return CLI_EXIT_OK;
}
