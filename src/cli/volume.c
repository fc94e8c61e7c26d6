/* mayfly volume create|ls|rm: shared volumes (PUT, GET and DELETE
 * /v1/volumes/…), the file systems functions mount at /mnt/NAME. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/json.h"

static const char volume_usage[] =
    "usage: mayfly volume create NAME --size-mb N\n"
    "       mayfly volume ls [--json]\n"
    "       mayfly volume rm NAME\n"
    "\n"
    "Shared volumes: persistent file systems of a fixed size that every\n"
    "instance of every function mounting one shares. A function mounts a\n"
    "volume at /mnt/NAME through its \"volumes\" setting, with the permission\n"
    "volume:NAME; its files outlive calls, instances and server restarts.\n"
    "\n"
    "commands:\n"
    "  create NAME --size-mb N   create the volume NAME of N MiB (1 to 1048576);\n"
    "                            one of that name and size already there is fine\n"
    "  ls [--json]               list the volumes: size, bytes in use and the\n"
    "                            functions that mount each\n"
    "  rm NAME                   delete the volume and its files (refused while\n"
    "                            a function mounts it)\n"
    "  -h, --help                show this help\n";

static void volume_path(buf_t *out, const char *name)
{
    buf_adds(out, "/v1/volumes/");
    cli_url_encode(out, name);
}

static int volume_create(int argc, char **argv)
{
    static const struct option options[] = {
        {"size-mb", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int size_mb = 0;
    bool have_size = false;
    int opt;
    cli_getopt_begin(argc, argv, "volume create");
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (opt == 'h') {
            fputs(volume_usage, stdout);
            return CLI_EXIT_OK;
        }
        if (opt != 's')
            return cli_usage_error("volume create", volume_usage, NULL);
        if (!cli_parse_int(optarg, &size_mb) || size_mb < 1 || size_mb > 1048576)
            return cli_usage_error("volume create", volume_usage,
                                   "--size-mb must be a whole number from 1 to 1048576, not `%s`",
                                   optarg);
        have_size = true;
    }
    const char *name;
    int rc = cli_last_operand(argc, argv, "volume create", volume_usage, "NAME", &name);
    if (rc >= 0)
        return rc;
    if (!have_size)
        return cli_usage_error("volume create", volume_usage, "missing --size-mb N");

    cleanup_buf buf_t path = BUF_INIT, body = BUF_INIT;
    volume_path(&path, name);
    buf_addf(&body, "{\"size_mb\":%d}", size_mb);
    client_header_t json = {"Content-Type", "application/json"};
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    if (cli_request("PUT", path.data, body.data, body.len, &json, 1, &resp))
        return CLI_EXIT_ERROR;
    if ((rc = cli_check_status(&resp, 201, 200)) != CLI_EXIT_OK)
        return rc;
    printf(resp.status == 201 ? "created volume %s (%d MiB)\n"
                              : "volume %s exists already (%d MiB)\n",
           name, size_mb);
    return CLI_EXIT_OK;
}

/* Bytes as people read them: "512 B", "2.0 KiB", "6.3 MiB"... */
static void format_bytes(buf_t *out, const json_t *v)
{
    if (!json_is_integer(v)) {
        buf_adds(out, "-");
        return;
    }
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double n = (double)json_integer_value(v);
    size_t u = 0;
    while (n >= 1024 && u + 1 < sizeof units / sizeof *units) {
        n /= 1024;
        u++;
    }
    if (u == 0)
        buf_addf(out, "%.0f B", n);
    else
        buf_addf(out, "%.1f %s", n, units[u]);
}

#define LS_COLS 5
static const char *const ls_header[LS_COLS] = {"NAME", "SIZE_MB", "USED", "CREATED", "FUNCTIONS"};

static void fill_row(buf_t *cells, const json_t *vol)
{
    cli_cell_string(&cells[0], json_object_get(vol, "name"));
    cli_cell_number(&cells[1], json_object_get(vol, "size_mb"));
    if (json_is_false(json_object_get(vol, "mounted")))
        buf_adds(&cells[2], "unavailable");
    else
        format_bytes(&cells[2], json_object_get(vol, "used_bytes"));
    cli_cell_string(&cells[3], json_object_get(vol, "created"));
    const json_t *fns = json_object_get(vol, "functions");
    size_t i;
    json_t *f;
    json_array_foreach(fns, i, f)
    {
        buf_addf(&cells[4], "%s%s", i ? "," : "", json_string_value(f));
    }
    if (!json_array_size(fns))
        buf_adds(&cells[4], "-");
}

static int volume_ls(int argc, char **argv)
{
    return cli_list_command(argc, argv, "volume ls", volume_usage, "/v1/volumes", "volumes",
                            LS_COLS, ls_header, fill_row);
}

static int volume_rm(int argc, char **argv)
{
    const char *name;
    int rc = cli_one_operand(argc, argv, "volume rm", volume_usage, "NAME", &name);
    if (rc >= 0)
        return rc;
    cleanup_buf buf_t path = BUF_INIT;
    volume_path(&path, name);
    return cli_delete(path.data, "volume", name);
}

int cmd_volume(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int argc, char **argv);
    } subs[] = {{"create", volume_create}, {"ls", volume_ls}, {"rm", volume_rm}};
    if (argc < 2)
        return cli_usage_error("volume", volume_usage, "missing a command: create, ls or rm");
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(volume_usage, stdout);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof subs / sizeof *subs; i++)
        if (!strcmp(argv[1], subs[i].name))
            return subs[i].fn(argc - 1, argv + 1);
    return cli_usage_error("volume", volume_usage, "unknown command `%s`: create, ls or rm",
                           argv[1]);
}
