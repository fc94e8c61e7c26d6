/* mayfly tenant ls|get and mayfly whoami: the tenants the server's keys
 * name (GET /v1/tenants, for admins) and who the CLI's key is (GET
 * /v1/whoami). */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/buf.h"
#include "core/json.h"

static const char tenant_usage[] =
    "usage: mayfly tenant ls [--json]\n"
    "       mayfly tenant get NAME\n"
    "\n"
    "The tenants the server's access keys name (docs/metering.md), with their\n"
    "account ids and how many keys of each role they have. Takes an admin key.\n"
    "\n"
    "commands:\n"
    "  ls [--json]   list the tenants\n"
    "  get NAME      show one as JSON\n"
    "  -h, --help    show this help\n";

static const char whoami_usage[] =
    "usage: mayfly whoami\n"
    "\n"
    "Shows the access key the CLI uses: its tenant, role and account id.\n";

#define LS_COLS 3
static const char *const ls_header[LS_COLS] = { "NAME", "ACCOUNT", "KEYS" };

static void fill_row(buf_t *cells, const json_t *t)
{
    cli_cell_string(&cells[0], json_object_get(t, "name"));
    cli_cell_string(&cells[1], json_object_get(t, "account_id"));
    cli_cell_number(&cells[2], json_object_get(t, "keys"));
}

static int tenant_ls(int argc, char **argv)
{
    return cli_list_command(argc, argv, "tenant ls", tenant_usage, "/v1/tenants", "tenants",
                            LS_COLS, ls_header, fill_row);
}

static int tenant_get(int argc, char **argv)
{
    const char *name;
    int rc = cli_one_operand(argc, argv, "tenant get", tenant_usage, "NAME", &name);
    if (rc >= 0)
        return rc;
    cleanup_buf buf_t path = BUF_INIT;
    buf_adds(&path, "/v1/tenants/");
    cli_url_encode(&path, name);
    return cli_get_and_print_json("tenant get", path.data);
}

int cmd_tenant(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("tenant", tenant_usage, "missing a command: ls or get");
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(tenant_usage, stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(argv[1], "ls"))
        return tenant_ls(argc - 1, argv + 1);
    if (!strcmp(argv[1], "get"))
        return tenant_get(argc - 1, argv + 1);
    return cli_usage_error("tenant", tenant_usage, "unknown command `%s`: ls or get", argv[1]);
}

int cmd_whoami(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        fputs(whoami_usage, stdout);
        return CLI_EXIT_OK;
    }
    if (argc > 1)
        return cli_usage_error("whoami", whoami_usage, "unexpected argument `%s`", argv[1]);
    json_t *doc = NULL;
    int rc = cli_get_json("whoami", "/v1/whoami", &doc);
    if (rc != CLI_EXIT_OK)
        return rc;
    const char *id = json_string_value(json_object_get(doc, "access_key_id"));
    printf("%s in tenant %s (role %s, account %s)%s\n", id && *id ? id : "(no key)",
           json_string_value(json_object_get(doc, "tenant")),
           json_string_value(json_object_get(doc, "role")),
           json_string_value(json_object_get(doc, "account_id")),
           json_is_true(json_object_get(doc, "development")) ? ": development mode" : "");
    json_decref(doc);
    return CLI_EXIT_OK;
}
