/* The commands of a tenant's named objects (budgets, alert rules): their
 * paths, and ls, get and rm, which differ only in names. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "core/cleanup.h"

enum { OPT_TENANT = 256, OPT_JSON };

void cli_owned_path(const cli_owned_t *o, buf_t *path, const char *name, const char *tenant)
{
    buf_adds(path, o->path);
    if (name) {
        buf_addch(path, '/');
        cli_url_encode(path, name);
    }
    if (tenant)
        cli_query_add(path, "tenant", tenant);
}

/* ls takes --tenant and --json; get and rm NAME and --tenant. -1 to go
 * on, else the exit code. */
static int parse(const cli_owned_t *o, int argc, char **argv, const char *cmd, bool ls,
                 const char **tenant, bool *json, const char **name)
{
    static const struct option options[] = {
        {"tenant", required_argument, NULL, OPT_TENANT},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    cli_getopt_begin(argc, argv, cmd);
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (opt == 'h') {
            fputs(o->usage, stdout);
            return CLI_EXIT_OK;
        }
        if (opt == OPT_TENANT)
            *tenant = optarg;
        else if (opt == OPT_JSON && ls)
            *json = true;
        else
            return cli_usage_error(cmd, o->usage, NULL);
    }
    if (ls) {
        if (optind < argc)
            return cli_usage_error(cmd, o->usage, "unexpected argument `%s`", argv[optind]);
        return -1;
    }
    return cli_last_operand(argc, argv, cmd, o->usage, "NAME", name);
}

static int run(const cli_owned_t *o, const char *verb, int argc, char **argv)
{
    char cmd[64];
    snprintf(cmd, sizeof cmd, "%s %s", o->cmd, verb);
    const char *tenant = NULL, *name = NULL;
    bool json = false, ls = !strcmp(verb, "ls");
    int rc = parse(o, argc, argv, cmd, ls, &tenant, &json, &name);
    if (rc >= 0)
        return rc;
    cleanup_buf buf_t path = BUF_INIT;
    cli_owned_path(o, &path, name, tenant);
    if (!strcmp(verb, "get"))
        return cli_get_and_print_json(cmd, path.data);
    if (!strcmp(verb, "rm"))
        return cli_delete(path.data, o->noun, name);
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    if (cli_request("GET", path.data, NULL, 0, NULL, 0, &resp))
        return CLI_EXIT_ERROR;
    if ((rc = cli_check_status(&resp, 200, 200)) != CLI_EXIT_OK)
        return rc;
    if (json) {
        cli_print_body(&resp.body);
        return CLI_EXIT_OK;
    }
    return cli_print_json_list(&resp, cmd, o->key, o->ncols, o->header, o->fill_row);
}

int cli_owned_command(const cli_owned_t *o, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error(o->cmd, o->usage, "missing a command: put, ls, get or rm");
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(o->usage, stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(argv[1], "put"))
        return o->put(argc - 1, argv + 1);
    if (!strcmp(argv[1], "ls") || !strcmp(argv[1], "get") || !strcmp(argv[1], "rm"))
        return run(o, argv[1], argc - 1, argv + 1);
    return cli_usage_error(o->cmd, o->usage, "unknown command `%s`: put, ls, get or rm", argv[1]);
}

void cli_notify_add(json_t *body, const char *kind, const char *to)
{
    json_t *list = json_object_get(body, "notify");
    if (!list) {
        list = json_array();
        json_object_set_new(body, "notify", list);
    }
    json_array_append_new(list, json_pack("{ss}", kind, to));
}
