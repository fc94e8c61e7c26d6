/* mayfly get NAME: one function's settings and code digest, as indented
 * JSON (GET /v1/functions/NAME). */
#include <jansson.h>
#include <stdio.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "core/buf.h"

static const char get_usage[] =
    "usage: mayfly get NAME\n"
    "\n"
    "Prints the function NAME as JSON: its runtime, handler, limits, env,\n"
    "egress rules, async settings, version and code_sha256.\n"
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
    return cli_get_and_print_json("get", path.data);
}
