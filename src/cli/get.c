/* mayfly get NAME: one function's settings and code digest, as indented
 * JSON (GET /v1/functions/NAME); with --files its package's entries
 * (…/code/files, every page), with --code-out FILE its package as a zip
 * (…/code). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "core/buf.h"
#include "core/cleanup.h"
#include "core/fs.h"
#include "core/json.h"

static const char get_usage[] =
    "usage: mayfly get NAME [--files | --code-out FILE]\n"
    "\n"
    "Prints the function NAME as JSON: its runtime, handler, limits, env,\n"
    "egress rules, async settings, version and code_sha256.\n"
    "\n"
    "options:\n"
    "  --files           list the files of NAME's code package instead: mode,\n"
    "                    type, size in bytes and path (a symlink with its target)\n"
    "  --code-out FILE   save NAME's code package to FILE as a zip (- for stdout)\n"
    "  -h, --help        show this help\n";

enum { OPT_FILES = 256, OPT_CODE_OUT };

static const struct option get_options[] = {
    {"files", no_argument, NULL, OPT_FILES},
    {"code-out", required_argument, NULL, OPT_CODE_OUT},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void file_row(buf_t *cells, const json_t *f)
{
    cli_cell_string(&cells[0], json_object_get(f, "mode"));
    cli_cell_string(&cells[1], json_object_get(f, "type"));
    cli_cell_number(&cells[2], json_object_get(f, "size"));
    buf_adds(&cells[3], json_string_value(json_object_get(f, "path")) ?: "-");
    const char *target = json_string_value(json_object_get(f, "target"));
    if (target)
        buf_addf(&cells[3], " -> %s", target);
}

/* Every page of the package's entries, as one table. */
static int get_files(const char *name)
{
    static const char *const header[] = {"MODE", "TYPE", "SIZE", "PATH"};
    cleanup_json json_t *all = json_array();
    cleanup_buf buf_t next = BUF_INIT;
    for (;;) {
        cleanup_buf buf_t path = BUF_INIT;
        cli_function_path(&path, name, "/code/files");
        cli_query_add(&path, "limit", "1000");
        if (next.len)
            cli_query_add(&path, "after", next.data);
        cleanup_json json_t *page = NULL;
        int rc = cli_get_json("get", path.data, &page);
        if (rc != CLI_EXIT_OK)
            return rc;
        json_t *files = json_object_get(page, "files");
        if (!json_is_array(files)) {
            fprintf(stderr, "mayfly get: the server's answer has no file list\n");
            return CLI_EXIT_ERROR;
        }
        json_array_extend(all, files);
        const char *cursor = json_string_value(json_object_get(page, "next"));
        if (!cursor)
            break;
        buf_reset(&next);
        buf_adds(&next, cursor);
    }
    cli_print_json_array(all, 4, header, file_row);
    return CLI_EXIT_OK;
}

static int get_code(const char *name, const char *out)
{
    cleanup_buf buf_t path = BUF_INIT;
    cli_function_path(&path, name, "/code");
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    if (cli_request("GET", path.data, NULL, 0, NULL, 0, &resp))
        return CLI_EXIT_ERROR;
    if (cli_check_status(&resp, 200, 200) != CLI_EXIT_OK)
        return CLI_EXIT_ERROR;
    if (!strcmp(out, "-")) {
        if (fwrite(resp.body.data, 1, resp.body.len, stdout) != resp.body.len || fflush(stdout)) {
            fprintf(stderr, "mayfly get: cannot write the package: %s\n", strerror(errno));
            return CLI_EXIT_ERROR;
        }
        return CLI_EXIT_OK;
    }
    cleanup_close int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || fs_write_all(fd, resp.body.data, resp.body.len) < 0) {
        fprintf(stderr, "mayfly get: cannot write `%s`: %s\n", out, strerror(errno));
        return CLI_EXIT_ERROR;
    }
    if (close(steal_fd(&fd)) < 0) {
        fprintf(stderr, "mayfly get: cannot write `%s`: %s\n", out, strerror(errno));
        return CLI_EXIT_ERROR;
    }
    /* The ETag is the package's SHA-256, W/ when the server zipped the
     * unpacked files again (other bytes, the same files). */
    char etag[80] = "", *sha = etag;
    client_response_header(&resp, "ETag", etag, sizeof etag);
    if (!strncmp(sha, "W/", 2))
        sha += 2;
    sha += strspn(sha, "\"");
    sha[strcspn(sha, "\"")] = '\0';
    printf("saved the code of %s to %s (%zu bytes, package %s)\n", name, out, resp.body.len,
           *sha ? sha : "-");
    return CLI_EXIT_OK;
}

int cmd_get(int argc, char **argv)
{
    bool files = false;
    const char *code_out = NULL;
    int opt;
    cli_getopt_begin(argc, argv, "get");
    while ((opt = getopt_long(argc, argv, "h", get_options, NULL)) != -1) {
        switch (opt) {
        case 'h': fputs(get_usage, stdout); return CLI_EXIT_OK;
        case OPT_FILES: files = true; break;
        case OPT_CODE_OUT:
            if (!*optarg)
                return cli_usage_error("get", get_usage, "--code-out needs a file name");
            code_out = optarg;
            break;
        default: return cli_usage_error("get", get_usage, NULL);
        }
    }
    const char *name;
    int rc = cli_last_operand(argc, argv, "get", get_usage, "NAME", &name);
    if (rc >= 0)
        return rc;
    if (files && code_out)
        return cli_usage_error("get", get_usage, "--files and --code-out go one at a time");
    if (files)
        return get_files(name);
    if (code_out)
        return get_code(name, code_out);

    cleanup_buf buf_t path = BUF_INIT;
    cli_function_path(&path, name, NULL);
    return cli_get_and_print_json("get", path.data);
}
