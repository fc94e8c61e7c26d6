/* mayfly logs NAME: a function's log lines (GET /v1/functions/NAME/logs),
 * printed as they arrive, and kept coming with --follow. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "core/buf.h"
#include "core/json.h"

static const char logs_usage[] =
    "usage: mayfly logs NAME [--request ID] [--follow] [--since T] [--json]\n"
    "\n"
    "Prints what the function NAME wrote on its stdout and stderr, a line at a\n"
    "time: the time, the request id of the call that printed it, the line.\n"
    "\n"
    "options:\n"
    "  --request ID   only the lines of the call with this request id\n"
    "  -f, --follow   keep printing new lines as the function writes them,\n"
    "                 until interrupted (with servers sharing a database, the\n"
    "                 calls that run on every one of them)\n"
    "  --since T      only lines from T on: an ISO 8601 UTC time\n"
    "                 (2026-01-02T03:04:05Z) or milliseconds since the epoch\n"
    "  --json         print the server's NDJSON lines as they are\n"
    "  -h, --help     show this help\n";

enum {
    OPT_REQUEST = 256,
    OPT_SINCE,
    OPT_JSON,
};

static const struct option logs_options[] = {
    { "request", required_argument, NULL, OPT_REQUEST },
    { "follow", no_argument, NULL, 'f' },
    { "since", required_argument, NULL, OPT_SINCE },
    { "json", no_argument, NULL, OPT_JSON },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

typedef struct logs_printer {
    buf_t pending;  /* the start of a line whose end has not arrived */
    bool as_json;
} logs_printer_t;

/* One NDJSON line as "TIME REQUEST_ID message"; a line that is not the
 * expected object is shown as it came rather than dropped. */
static void print_line(const logs_printer_t *p, const char *line, size_t len)
{
    if (len == 0)
        return;
    if (p->as_json) {
        fwrite(line, 1, len, stdout);
        putchar('\n');
        return;
    }
    json_error_t jerr;
    cleanup_json json_t *doc = json_loadb(line, len, 0, &jerr);
    const char *when = json_string_value(json_object_get(doc, "time"));
    const char *rid = json_string_value(json_object_get(doc, "request_id"));
    json_t *message = json_object_get(doc, "message");
    if (!when || !json_is_string(message)) {
        fwrite(line, 1, len, stdout);
        putchar('\n');
        return;
    }
    printf("%s %s ", when, rid && *rid ? rid : "-");
    /* The message may hold any byte the function printed, NULs included. */
    fwrite(json_string_value(message), 1, json_string_length(message), stdout);
    putchar('\n');
}

/* Prints every complete line received so far and keeps the rest, so a
 * followed log shows each line the moment its end arrives. */
static int on_chunk(const char *data, size_t len, void *ud)
{
    logs_printer_t *p = ud;
    buf_add(&p->pending, data, len);
    size_t start = 0;
    char *nl;
    while ((nl = memchr(p->pending.data + start, '\n', p->pending.len - start))) {
        size_t end = (size_t)(nl - p->pending.data);
        print_line(p, p->pending.data + start, end - start);
        start = end + 1;
    }
    buf_consume(&p->pending, start);
    fflush(stdout);
    return 0;
}

int cmd_logs(int argc, char **argv)
{
    const char *request = NULL, *since = NULL;
    bool follow = false, as_json = false;
    int opt;

    cli_getopt_begin(argc, argv, "logs");
    while ((opt = getopt_long(argc, argv, "hf", logs_options, NULL)) != -1) {
        switch (opt) {
        case 'h':
            fputs(logs_usage, stdout);
            return CLI_EXIT_OK;
        case 'f':
            follow = true;
            break;
        case OPT_REQUEST:
            request = optarg;
            break;
        case OPT_SINCE:
            since = optarg;
            break;
        case OPT_JSON:
            as_json = true;
            break;
        default:
            return cli_usage_error("logs", logs_usage, NULL);
        }
    }
    const char *name;
    int rc = cli_last_operand(argc, argv, "logs", logs_usage, "NAME", &name);
    if (rc >= 0)
        return rc;

    cleanup_buf buf_t path = BUF_INIT;
    cli_function_path(&path, name, "/logs");
    if (request)
        cli_query_add(&path, "request_id", request);
    if (since)
        cli_query_add(&path, "since", since);
    if (follow)
        cli_query_add(&path, "follow", "1");

    logs_printer_t printer = { BUF_INIT, as_json };
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    int r = cli_request_stream("GET", path.data, NULL, 0, on_chunk, &printer, &resp);
    /* A last line without its newline (a server that stopped mid-way) is
     * still worth showing. */
    print_line(&printer, printer.pending.data, printer.pending.len);
    buf_release(&printer.pending);
    fflush(stdout);
    if (r)
        return CLI_EXIT_ERROR;
    if (resp.status != 200) {
        client_print_error(&resp);
        return CLI_EXIT_ERROR;
    }
    return CLI_EXIT_OK;
}
