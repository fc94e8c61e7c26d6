/* mayfly ls: the functions as a table (GET /v1/functions), or the raw JSON
 * with --json. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/xalloc.h"

static const char ls_usage[] =
    "usage: mayfly ls [--json]\n"
    "\n"
    "Lists the functions: name, runtime, memory, timeout, version and when it\n"
    "was last updated.\n"
    "\n"
    "options:\n"
    "  --json       print the server's JSON instead of a table\n"
    "  -h, --help   show this help\n";

static const struct option ls_options[] = {
    { "json", no_argument, NULL, 'j' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

#define LS_COLS 6
static const char *const ls_header[LS_COLS] = { "NAME", "RUNTIME", "MEMORY",
                                                "TIMEOUT", "VERSION", "UPDATED" };

/* A time as the API gives it: an ISO 8601 string as it is, or milliseconds
 * since the epoch formatted as one. */
static void format_time(buf_t *out, const json_t *v)
{
    if (json_is_string(v)) {
        buf_adds(out, json_string_value(v));
    } else if (json_is_integer(v)) {
        char iso[32];
        clock_format_iso8601((int64_t)json_integer_value(v), iso, sizeof iso);
        buf_adds(out, iso);
    } else {
        buf_adds(out, "-");
    }
}

static void format_int(buf_t *out, const json_t *v, const char *unit)
{
    if (json_is_integer(v))
        buf_addf(out, "%" JSON_INTEGER_FORMAT "%s", json_integer_value(v), unit);
    else
        buf_adds(out, "-");
}

static void fill_row(buf_t cells[LS_COLS], const json_t *fn)
{
    const char *name = json_string_value(json_object_get(fn, "name"));
    const char *runtime = json_string_value(json_object_get(fn, "runtime"));
    buf_adds(&cells[0], name ? name : "-");
    buf_adds(&cells[1], runtime ? runtime : "-");
    format_int(&cells[2], json_object_get(fn, "memory_mb"), "MB");
    format_int(&cells[3], json_object_get(fn, "timeout_s"), "s");
    format_int(&cells[4], json_object_get(fn, "version"), "");
    json_t *updated = json_object_get(fn, "updated");
    format_time(&cells[5], updated ? updated : json_object_get(fn, "updated_at"));
}

static int print_table(const client_response_t *resp)
{
    json_error_t jerr;
    cleanup_json json_t *doc = json_loadb(resp->body.data, resp->body.len, 0, &jerr);
    json_t *fns = json_object_get(doc, "functions");
    if (!json_is_array(fns)) {
        fprintf(stderr, "mayfly ls: the server's answer has no \"functions\" list\n");
        return CLI_EXIT_ERROR;
    }
    size_t rows = json_array_size(fns) + 1;
    buf_t(*cells)[LS_COLS] = xcalloc(rows, sizeof *cells);
    size_t width[LS_COLS] = { 0 };
    for (size_t r = 0; r < rows; r++) {
        for (int c = 0; c < LS_COLS; c++)
            buf_init(&cells[r][c], 0);
        if (r == 0) {
            for (int c = 0; c < LS_COLS; c++)
                buf_adds(&cells[r][c], ls_header[c]);
        } else {
            fill_row(cells[r], json_array_get(fns, r - 1));
        }
        for (int c = 0; c < LS_COLS; c++)
            if (cells[r][c].len > width[c])
                width[c] = cells[r][c].len;
    }
    for (size_t r = 0; r < rows; r++) {
        for (int c = 0; c < LS_COLS; c++) {
            if (c < LS_COLS - 1)
                printf("%-*s  ", (int)width[c], cells[r][c].data);
            else
                printf("%s\n", cells[r][c].data);
            buf_release(&cells[r][c]);
        }
    }
    free(cells);
    return CLI_EXIT_OK;
}

int cmd_ls(int argc, char **argv)
{
    bool as_json = false;
    int opt;

    cli_getopt_begin(argc, argv, "ls");
    while ((opt = getopt_long(argc, argv, "h", ls_options, NULL)) != -1) {
        switch (opt) {
        case 'h':
            fputs(ls_usage, stdout);
            return CLI_EXIT_OK;
        case 'j':
            as_json = true;
            break;
        default:
            return cli_usage_error("ls", ls_usage, NULL);
        }
    }
    if (optind < argc)
        return cli_usage_error("ls", ls_usage, "unexpected argument `%s`", argv[optind]);

    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    if (cli_request("GET", "/v1/functions", NULL, 0, NULL, 0, &resp))
        return CLI_EXIT_ERROR;
    if (resp.status != 200) {
        client_print_error(&resp);
        return CLI_EXIT_ERROR;
    }
    if (as_json) {
        fwrite(resp.body.data, 1, resp.body.len, stdout);
        if (!resp.body.len || resp.body.data[resp.body.len - 1] != '\n')
            putchar('\n');
        return CLI_EXIT_OK;
    }
    return print_table(&resp);
}
