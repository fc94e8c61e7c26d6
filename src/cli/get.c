/* mayfly get NAME: one function's settings and code digest, as indented
 * JSON (GET /v1/functions/NAME). */
#include <jansson.h>
#include <stdio.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "core/buf.h"
#include "core/json.h"

static const char get_usage[] =
    "usage: mayfly get NAME\n"
    "\n"
    "Prints the function NAME as JSON: its runtime, handler, limits, env,\n"
    "async settings, version and code_sha256.\n"
    "\n"
    "options:\n"
    "  -h, --help   show this help\n";

int cmd_get(int argc, char **argv)
{
    const char *name;
    int rc = cli_one_operand(argc, argv, "get", get_usage, "NAME", &name);
    if (rc >= 0)
        return rc;

    cleanup_buf buf_t path = BUF_INIT;
    cli_function_path(&path, name, NULL);
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    if (cli_request("GET", path.data, NULL, 0, NULL, 0, &resp))
        return CLI_EXIT_ERROR;
    if (resp.status != 200) {
        client_print_error(&resp);
        return CLI_EXIT_ERROR;
    }
    json_error_t jerr;
    cleanup_json json_t *fn = json_loadb(resp.body.data, resp.body.len, 0, &jerr);
    if (!fn) {
        fprintf(stderr, "mayfly get: the server's answer is not JSON: %s\n", jerr.text);
        return CLI_EXIT_ERROR;
    }
    json_dumpf(fn, stdout, JSON_INDENT(2));
    putchar('\n');
    return CLI_EXIT_OK;
}
