/* mayfly nodes: the servers sharing this one's database (GET
 * /v1/cluster/nodes) as a table, or the raw JSON with --json. */
#include <jansson.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/buf.h"

static const char nodes_usage[] =
    "usage: mayfly nodes [--json]\n"
    "\n"
    "Lists the nodes sharing the server's database (docs/cluster.md): id,\n"
    "address, state (alive, silent, lost or stopped), instances, last\n"
    "heartbeat and start. One server on SQLite lists itself and the runs\n"
    "before it.\n"
    "\n"
    "options:\n"
    "  --json       print the server's JSON instead of a table\n"
    "  -h, --help   show this help\n";

#define NODES_COLS 6
static const char *const nodes_header[NODES_COLS] = { "ID", "ADDRESS", "STATE", "INSTANCES",
                                                      "LAST HEARTBEAT", "STARTED" };

static void fill_row(buf_t *cells, const json_t *n)
{
    const json_t *self = json_object_get(n, "self");
    cli_cell_string(&cells[0], json_object_get(n, "id"));
    if (json_is_true(self))
        buf_adds(&cells[0], " (this)");
    cli_cell_string(&cells[1], json_object_get(n, "address"));
    cli_cell_string(&cells[2], json_object_get(n, "state"));
    cli_cell_number(&cells[3], json_object_get(n, "instances"));
    cli_cell_string(&cells[4], json_object_get(n, "last_heartbeat"));
    cli_cell_string(&cells[5], json_object_get(n, "started"));
}

int cmd_nodes(int argc, char **argv)
{
    return cli_list_command(argc, argv, "nodes", nodes_usage, "/v1/cluster/nodes", "nodes",
                            NODES_COLS, nodes_header, fill_row);
}
