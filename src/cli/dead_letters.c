/* mayfly dead-letters NAME: the asynchronous events of a function that
 * failed every attempt (GET /v1/functions/NAME/dead-letters) as a table,
 * and --redrive ID to queue one of them again. */
#include <errno.h>
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

static const char dead_letters_usage[] =
    "usage: mayfly dead-letters NAME [--limit N] [--json]\n"
    "       mayfly dead-letters NAME --redrive ID\n"
    "\n"
    "Lists the asynchronous events of the function NAME that failed on every\n"
    "attempt, newest first: id, request id, attempts, error type, time and the\n"
    "error message (cut short; --json has it whole, and the event).\n"
    "With --redrive, queues the dead letter ID's event again and prints the\n"
    "new request id.\n"
    "\n"
    "options:\n"
    "  --limit N      at most N dead letters\n"
    "  --json         print the server's JSON instead of a table\n"
    "  --redrive ID   queue the event of the dead letter ID again\n"
    "  -h, --help     show this help\n";

enum {
    OPT_LIMIT = 256,
    OPT_JSON,
    OPT_REDRIVE,
};

static const struct option dead_letters_options[] = {
    { "limit", required_argument, NULL, OPT_LIMIT },
    { "json", no_argument, NULL, OPT_JSON },
    { "redrive", required_argument, NULL, OPT_REDRIVE },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

/* The message column is cut to this many bytes so one long traceback does
 * not widen every row; --json has the message whole. */
#define DL_MESSAGE_MAX 60

#define DL_COLS 6
static const char *const dl_header[DL_COLS] = { "ID",         "REQUEST_ID", "ATTEMPTS",
                                                "ERROR_TYPE", "TIME",       "ERROR_MESSAGE" };

/* A dead letter's id: a positive decimal integer, written back as given so
 * ids beyond an int still work. */
static bool id_valid(const char *s)
{
    if (!*s || *s == '0' || strspn(s, "0123456789") != strlen(s))
        return false;
    errno = 0;
    (void)strtoll(s, NULL, 10);
    return errno == 0;
}

/* The error message on one line: control bytes (a traceback's newlines)
 * become spaces, and a long one is cut at a character boundary with "...". */
static void format_message(buf_t *out, const json_t *v)
{
    const char *s = json_string_value(v);
    if (!s || !*s) {
        buf_adds(out, "-");
        return;
    }
    size_t n = json_string_length(v);
    bool cut = n > DL_MESSAGE_MAX;
    if (cut) {
        n = DL_MESSAGE_MAX - 3;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        buf_addch(out, c < 0x20 || c == 0x7f ? ' ' : (char)c);
    }
    if (cut)
        buf_adds(out, "...");
}

static void fill_row(buf_t *cells, const json_t *dl)
{
    cli_cell_number(&cells[0], json_object_get(dl, "id"));
    cli_cell_string(&cells[1], json_object_get(dl, "request_id"));
    cli_cell_number(&cells[2], json_object_get(dl, "attempts"));
    cli_cell_string(&cells[3], json_object_get(dl, "error_type"));
    cli_cell_string(&cells[4], json_object_get(dl, "time"));
    format_message(&cells[5], json_object_get(dl, "error_message"));
}

static int print_table(const client_response_t *resp)
{
    return cli_print_json_list(resp, "dead-letters", "dead_letters", DL_COLS, dl_header, fill_row);
}

static int list(const char *name, int limit, bool as_json)
{
    cleanup_buf buf_t path = BUF_INIT;
    cli_function_path(&path, name, "/dead-letters");
    if (limit) {
        char n[16];
        snprintf(n, sizeof n, "%d", limit);
        cli_query_add(&path, "limit", n);
    }
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
    return print_table(&resp);
}

static int redrive(const char *name, const char *id)
{
    cleanup_buf buf_t path = BUF_INIT;
    cli_function_path(&path, name, "/dead-letters/");
    cli_url_encode(&path, id);
    buf_adds(&path, "/redrive");
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    if (cli_request("POST", path.data, NULL, 0, NULL, 0, &resp))
        return CLI_EXIT_ERROR;
    if (resp.status != 202) {
        client_print_error(&resp);
        return CLI_EXIT_ERROR;
    }
    json_error_t jerr;
    cleanup_json json_t *doc = json_loadb(resp.body.data, resp.body.len, 0, &jerr);
    const char *rid = json_string_value(json_object_get(doc, "request_id"));
    if (!rid) {
        fprintf(stderr, "mayfly dead-letters: the server answered HTTP %ld without a request_id\n",
                resp.status);
        return CLI_EXIT_ERROR;
    }
    printf("%s\n", rid);
    return CLI_EXIT_OK;
}

int cmd_dead_letters(int argc, char **argv)
{
    const char *redrive_id = NULL;
    int limit = 0;
    bool as_json = false;
    int opt;

    cli_getopt_begin(argc, argv, "dead-letters");
    while ((opt = getopt_long(argc, argv, "h", dead_letters_options, NULL)) != -1) {
        switch (opt) {
        case 'h':
            fputs(dead_letters_usage, stdout);
            return CLI_EXIT_OK;
        case OPT_LIMIT:
            if (!cli_parse_int(optarg, &limit) || limit < 1)
                return cli_usage_error("dead-letters", dead_letters_usage,
                                       "--limit expects a positive integer, got `%s`", optarg);
            break;
        case OPT_JSON:
            as_json = true;
            break;
        case OPT_REDRIVE:
            if (!id_valid(optarg))
                return cli_usage_error("dead-letters", dead_letters_usage,
                                       "--redrive expects a dead letter's id (a positive "
                                       "integer), got `%s`",
                                       optarg);
            redrive_id = optarg;
            break;
        default:
            return cli_usage_error("dead-letters", dead_letters_usage, NULL);
        }
    }
    const char *name;
    int rc = cli_last_operand(argc, argv, "dead-letters", dead_letters_usage, "NAME", &name);
    if (rc >= 0)
        return rc;
    if (redrive_id && (limit || as_json))
        return cli_usage_error("dead-letters", dead_letters_usage,
                               "--redrive does not go with --limit or --json");

    return redrive_id ? redrive(name, redrive_id) : list(name, limit, as_json);
}
