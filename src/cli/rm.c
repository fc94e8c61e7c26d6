/* mayfly rm NAME [--purge]: deletes a function (DELETE /v1/functions/NAME);
 * the server removes its code package when nothing else uses it, and with
 * --purge its invocation records and log lines too. */
#include <getopt.h>
#include <stdio.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "core/buf.h"

static const char rm_usage[] =
    "usage: mayfly rm NAME [--purge]\n"
    "\n"
    "Deletes the function NAME and its code. Its invocation records and log\n"
    "lines stay, to be read later, unless --purge is given.\n"
    "\n"
    "options:\n"
    "  --purge      also delete the function's invocation records and logs\n"
    "  -h, --help   show this help\n";

int cmd_rm(int argc, char **argv)
{
    static const struct option options[] = {
        { "purge", no_argument, NULL, 'p' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    bool purge = false;
    int opt;
    cli_getopt_begin(argc, argv, "rm");
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (opt == 'h') {
            fputs(rm_usage, stdout);
            return CLI_EXIT_OK;
        }
        if (opt != 'p')
            return cli_usage_error("rm", rm_usage, NULL);
        purge = true;
    }
    const char *name;
    int rc = cli_last_operand(argc, argv, "rm", rm_usage, "NAME", &name);
    if (rc >= 0)
        return rc;

    cleanup_buf buf_t path = BUF_INIT;
    cli_function_path(&path, name, NULL);
    if (purge)
        cli_query_add(&path, "purge", "1");
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    if (cli_request("DELETE", path.data, NULL, 0, NULL, 0, &resp))
        return CLI_EXIT_ERROR;
    if (resp.status != 204 && resp.status != 200) {
        client_print_error(&resp);
        return CLI_EXIT_ERROR;
    }
    printf(purge ? "deleted %s, its records and its logs\n" : "deleted %s\n", name);
    return CLI_EXIT_OK;
}
