/* mayfly url set|get|rm: a function's URL (PUT, GET and DELETE
 * /v1/functions/NAME/url), its own HTTP endpoint. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "core/buf.h"
#include "core/json.h"

static const char url_usage[] =
    "usage: mayfly url set NAME [--auth none|key] [--cors JSON] [--invoke-mode MODE]\n"
    "       mayfly url get NAME\n"
    "       mayfly url rm NAME\n"
    "\n"
    "A function URL is the function's own HTTP endpoint, as Lambda's function\n"
    "URLs: every method, path, query, header, cookie and body below it reaches\n"
    "the function as Lambda's payload format 2.0, and its answer becomes the\n"
    "HTTP response. It is served at /url/NAME/ on the server's listener and,\n"
    "with `mayfly server --url-domain D`, at http://NAME.D/.\n"
    "\n"
    "commands:\n"
    "  set NAME                  give NAME a URL, or replace its settings\n"
    "    --auth none|key         key (the default): callers need an access key's\n"
    "                            bearer token or a SigV4 signature; none: public\n"
    "    --cors JSON             e.g. '{\"allow_origins\":[\"https://example.com\"],\n"
    "                            \"allow_methods\":[\"GET\",\"POST\"],\"max_age\":300}'\n"
    "                            (also allow_headers, expose_headers, allow_credentials)\n"
    "    --invoke-mode MODE      BUFFERED (the default) or RESPONSE_STREAM\n"
    "  get NAME                  show NAME's URL and its settings (JSON)\n"
    "  rm NAME                   remove NAME's URL\n"
    "  -h, --help                show this help\n";

static int check_status(const client_response_t *resp, long ok_a, long ok_b)
{
    if (resp->status == ok_a || resp->status == ok_b)
        return CLI_EXIT_OK;
    client_print_error(resp);
    return CLI_EXIT_ERROR;
}

static int url_set(int argc, char **argv)
{
    static const struct option options[] = {
        {"auth", required_argument, NULL, 'a'},
        {"cors", required_argument, NULL, 'c'},
        {"invoke-mode", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    cleanup_json json_t *body = json_object();
    int opt;
    cli_getopt_begin(argc, argv, "url set");
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'h': fputs(url_usage, stdout); return CLI_EXIT_OK;
        case 'a':
            if (strcmp(optarg, "none") && strcmp(optarg, "key"))
                return cli_usage_error("url set", url_usage,
                                       "--auth must be `none` or `key`, not `%s`", optarg);
            json_object_set_new(body, "auth", json_string(optarg));
            break;
        case 'c': {
            json_error_t jerr;
            json_t *cors = json_loads(optarg, 0, &jerr);
            if (!json_is_object(cors)) {
                json_decref(cors);
                return cli_usage_error("url set", url_usage,
                                       "--cors must be a JSON object, e.g. "
                                       "'{\"allow_origins\":[\"*\"]}'%s%s",
                                       cors ? "" : ": ", cors ? "" : jerr.text);
            }
            json_object_set_new(body, "cors", cors);
            break;
        }
        case 'm':
            json_object_set_new(body, "invoke_mode", json_string(optarg));
            break;
        default: return cli_usage_error("url set", url_usage, NULL);
        }
    }
    const char *name;
    int rc = cli_last_operand(argc, argv, "url set", url_usage, "NAME", &name);
    if (rc >= 0)
        return rc;
    cleanup_buf buf_t path = BUF_INIT, text = BUF_INIT;
    cli_function_path(&path, name, "/url");
    json_dump_buf(&text, body);
    client_header_t json = {"Content-Type", "application/json"};
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    if (cli_request("PUT", path.data, text.data, text.len, &json, 1, &resp))
        return CLI_EXIT_ERROR;
    if ((rc = check_status(&resp, 201, 200)) != CLI_EXIT_OK)
        return rc;
    json_error_t jerr;
    cleanup_json json_t *out = json_loadb(resp.body.data, resp.body.len, 0, &jerr);
    const char *url = json_string_value(json_object_get(out, "url"));
    const char *auth = json_string_value(json_object_get(out, "auth"));
    printf("%s (auth %s)\n", url ? url : "?", auth ? auth : "?");
    return CLI_EXIT_OK;
}

static int url_get(int argc, char **argv)
{
    const char *name;
    int rc = cli_one_operand(argc, argv, "url get", url_usage, "NAME", &name);
    if (rc >= 0)
        return rc;
    cleanup_buf buf_t path = BUF_INIT;
    cli_function_path(&path, name, "/url");
    return cli_get_and_print_json("url get", path.data);
}

static int url_rm(int argc, char **argv)
{
    const char *name;
    int rc = cli_one_operand(argc, argv, "url rm", url_usage, "NAME", &name);
    if (rc >= 0)
        return rc;
    cleanup_buf buf_t path = BUF_INIT;
    cli_function_path(&path, name, "/url");
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    if (cli_request("DELETE", path.data, NULL, 0, NULL, 0, &resp))
        return CLI_EXIT_ERROR;
    if ((rc = check_status(&resp, 204, 200)) != CLI_EXIT_OK)
        return rc;
    printf("removed the URL of %s\n", name);
    return CLI_EXIT_OK;
}

int cmd_url(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int argc, char **argv);
    } subs[] = {{"set", url_set}, {"get", url_get}, {"rm", url_rm}};
    if (argc < 2)
        return cli_usage_error("url", url_usage, "missing a command: set, get or rm");
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(url_usage, stdout);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof subs / sizeof *subs; i++)
        if (!strcmp(argv[1], subs[i].name))
            return subs[i].fn(argc - 1, argv + 1);
    return cli_usage_error("url", url_usage, "unknown command `%s`: set, get or rm", argv[1]);
}
