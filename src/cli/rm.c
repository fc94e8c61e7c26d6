/* mayfly rm NAME: deletes a function (DELETE /v1/functions/NAME); the
 * server removes its code package when nothing else uses it. */
#include <stdio.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "core/buf.h"

static const char rm_usage[] =
    "usage: mayfly rm NAME\n"
    "\n"
    "Deletes the function NAME and its code.\n"
    "\n"
    "options:\n"
    "  -h, --help   show this help\n";

int cmd_rm(int argc, char **argv)
{
    const char *name;
    int rc = cli_one_operand(argc, argv, "rm", rm_usage, "NAME", &name);
    if (rc >= 0)
        return rc;

    cleanup_buf buf_t path = BUF_INIT;
    cli_function_path(&path, name, NULL);
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    if (cli_request("DELETE", path.data, NULL, 0, NULL, 0, &resp))
        return CLI_EXIT_ERROR;
    if (resp.status != 204 && resp.status != 200) {
        client_print_error(&resp);
        return CLI_EXIT_ERROR;
    }
    printf("deleted %s\n", name);
    return CLI_EXIT_OK;
}
