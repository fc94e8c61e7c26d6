/* mayfly topic create|ls|rm|subscribe|subscriptions|unsubscribe: topics
 * and their subscriptions (/v1/topics/…). Publishing is `mayfly publish`. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "core/buf.h"
#include "core/json.h"

static const char topic_usage[] =
    "usage: mayfly topic create NAME\n"
    "       mayfly topic ls [--json]\n"
    "       mayfly topic rm NAME\n"
    "       mayfly topic subscribe TOPIC FUNCTION [--filter JSON]\n"
    "       mayfly topic subscriptions TOPIC [--json]\n"
    "       mayfly topic unsubscribe TOPIC ID\n"
    "\n"
    "Topics fan a published message out to every subscribed function whose\n"
    "filter policy its attributes pass, as SNS does: each subscriber gets\n"
    "SNS's Lambda event as an asynchronous call of its own, retried and\n"
    "dead-lettered by its own async settings. Publish with `mayfly publish`.\n"
    "\n"
    "commands:\n"
    "  create NAME               create the topic NAME ([A-Za-z0-9_-]{1,64});\n"
    "                            one that exists already is fine\n"
    "  ls [--json]               list the topics\n"
    "  rm NAME                   delete the topic and its subscriptions\n"
    "  subscribe TOPIC FUNCTION  subscribe FUNCTION; prints the subscription's id\n"
    "      --filter JSON         SNS's filter policy on message attributes, e.g.\n"
    "                            '{\"kind\": [\"order\"], \"total\": [{\"numeric\": [\">\", "
    "100]}]}'\n"
    "  subscriptions TOPIC       list the topic's subscriptions\n"
    "  unsubscribe TOPIC ID      delete a subscription\n"
    "  -h, --help                show this help\n";

static void topic_path(buf_t *out, const char *name, const char *suffix)
{
    buf_adds(out, "/v1/topics/");
    cli_url_encode(out, name);
    if (suffix)
        buf_adds(out, suffix);
}

/* Parses --help and --json (when json is not NULL), leaving optind at the
 * operands; -1 to go on, or an exit code. */
static int simple_opts(int argc, char **argv, const char *cmd, bool *json)
{
    static const struct option options[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    cli_getopt_begin(argc, argv, cmd);
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (opt == 'h') {
            fputs(topic_usage, stdout);
            return CLI_EXIT_OK;
        }
        if (opt != 'j' || !json)
            return cli_usage_error(cmd, topic_usage,
                                   opt == 'j' ? "--json is not an option here" : NULL);
        *json = true;
    }
    return -1;
}

/* The operands left after the options: exactly n of them, none empty. */
static int operands(int argc, char **argv, const char *cmd, int n, const char *what)
{
    if (argc - optind < n)
        return cli_usage_error(cmd, topic_usage, "missing %s", what);
    if (argc - optind > n)
        return cli_usage_error(cmd, topic_usage, "unexpected argument `%s`", argv[optind + n]);
    for (int i = 0; i < n; i++)
        if (!*argv[optind + i])
            return cli_usage_error(cmd, topic_usage, "an empty argument: %s", what);
    return -1;
}

static int topic_create(int argc, char **argv)
{
    const char *name;
    int rc = cli_one_operand(argc, argv, "topic create", topic_usage, "NAME", &name);
    if (rc >= 0)
        return rc;
    cleanup_buf buf_t path = BUF_INIT;
    topic_path(&path, name, NULL);
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    if (cli_request("PUT", path.data, NULL, 0, NULL, 0, &resp))
        return CLI_EXIT_ERROR;
    if ((rc = cli_check_status(&resp, 201, 200)) != CLI_EXIT_OK)
        return rc;
    printf(resp.status == 201 ? "created topic %s\n" : "topic %s exists already\n", name);
    return CLI_EXIT_OK;
}

#define LS_COLS 4
static const char *const ls_header[LS_COLS] = {"NAME", "SUBSCRIPTIONS", "CREATED", "ARN"};

static void ls_row(buf_t *cells, const json_t *t)
{
    cli_cell_string(&cells[0], json_object_get(t, "name"));
    cli_cell_number(&cells[1], json_object_get(t, "subscription_count"));
    cli_cell_string(&cells[2], json_object_get(t, "created"));
    cli_cell_string(&cells[3], json_object_get(t, "arn"));
}

static int topic_ls(int argc, char **argv)
{
    return cli_list_command(argc, argv, "topic ls", topic_usage, "/v1/topics", "topics", LS_COLS,
                            ls_header, ls_row);
}

static int topic_rm(int argc, char **argv)
{
    const char *name;
    int rc = cli_one_operand(argc, argv, "topic rm", topic_usage, "NAME", &name);
    if (rc >= 0)
        return rc;
    cleanup_buf buf_t path = BUF_INIT;
    topic_path(&path, name, NULL);
    return cli_delete(path.data, "topic", name);
}

static int topic_subscribe(int argc, char **argv)
{
    static const struct option options[] = {
        {"filter", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *filter = NULL;
    int opt;
    cli_getopt_begin(argc, argv, "topic subscribe");
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (opt == 'h') {
            fputs(topic_usage, stdout);
            return CLI_EXIT_OK;
        }
        if (opt != 'f')
            return cli_usage_error("topic subscribe", topic_usage, NULL);
        filter = optarg;
    }
    int rc = operands(argc, argv, "topic subscribe", 2, "TOPIC and FUNCTION");
    if (rc >= 0)
        return rc;
    const char *topic = argv[optind], *function = argv[optind + 1];
    cleanup_json json_t *body = json_pack("{ss}", "function", function);
    if (filter) {
        json_error_t jerr;
        json_t *doc = json_loads(filter, 0, &jerr);
        if (!doc)
            return cli_usage_error("topic subscribe", topic_usage,
                                   "--filter is not a JSON object: %s", jerr.text);
        json_object_set_new(body, "filter", doc);
    }
    cleanup_buf buf_t path = BUF_INIT, text = BUF_INIT;
    topic_path(&path, topic, "/subscriptions");
    json_dump_buf(&text, body);
    client_header_t ctype = {"Content-Type", "application/json"};
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    if (cli_request("POST", path.data, text.data, text.len, &ctype, 1, &resp))
        return CLI_EXIT_ERROR;
    if ((rc = cli_check_status(&resp, 201, 200)) != CLI_EXIT_OK)
        return rc;
    cleanup_json json_t *doc = json_loadb(resp.body.data, resp.body.len, 0, NULL);
    const char *id = json_string_value(json_object_get(doc, "id"));
    if (!id) {
        fprintf(stderr, "mayfly topic subscribe: the server's answer has no id\n");
        return CLI_EXIT_ERROR;
    }
    printf("%s\n", id);
    return CLI_EXIT_OK;
}

#define SUBS_COLS 4
static const char *const subs_header[SUBS_COLS] = {"ID", "FUNCTION", "CREATED", "FILTER"};

static void subs_row(buf_t *cells, const json_t *s)
{
    cli_cell_string(&cells[0], json_object_get(s, "id"));
    cli_cell_string(&cells[1], json_object_get(s, "function"));
    cli_cell_string(&cells[2], json_object_get(s, "created"));
    const json_t *filter = json_object_get(s, "filter");
    if (json_is_object(filter))
        json_dump_buf(&cells[3], filter);
    else
        buf_adds(&cells[3], "-");
}

static int topic_subscriptions(int argc, char **argv)
{
    bool as_json = false;
    int rc = simple_opts(argc, argv, "topic subscriptions", &as_json);
    if (rc >= 0)
        return rc;
    if ((rc = operands(argc, argv, "topic subscriptions", 1, "TOPIC")) >= 0)
        return rc;
    cleanup_buf buf_t path = BUF_INIT;
    topic_path(&path, argv[optind], "/subscriptions");
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    if (cli_request("GET", path.data, NULL, 0, NULL, 0, &resp))
        return CLI_EXIT_ERROR;
    if ((rc = cli_check_status(&resp, 200, 200)) != CLI_EXIT_OK)
        return rc;
    if (as_json) {
        cli_print_body(&resp.body);
        return CLI_EXIT_OK;
    }
    return cli_print_json_list(&resp, "topic subscriptions", "subscriptions", SUBS_COLS,
                               subs_header, subs_row);
}

static int topic_unsubscribe(int argc, char **argv)
{
    int rc = simple_opts(argc, argv, "topic unsubscribe", NULL);
    if (rc >= 0)
        return rc;
    if ((rc = operands(argc, argv, "topic unsubscribe", 2, "TOPIC and ID")) >= 0)
        return rc;
    cleanup_buf buf_t path = BUF_INIT;
    topic_path(&path, argv[optind], "/subscriptions/");
    cli_url_encode(&path, argv[optind + 1]);
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    if (cli_request("DELETE", path.data, NULL, 0, NULL, 0, &resp))
        return CLI_EXIT_ERROR;
    if ((rc = cli_check_status(&resp, 204, 200)) != CLI_EXIT_OK)
        return rc;
    printf("unsubscribed %s from %s\n", argv[optind + 1], argv[optind]);
    return CLI_EXIT_OK;
}

int cmd_topic(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int argc, char **argv);
    } subs[] = {{"create", topic_create},
                {"ls", topic_ls},
                {"rm", topic_rm},
                {"subscribe", topic_subscribe},
                {"subscriptions", topic_subscriptions},
                {"unsubscribe", topic_unsubscribe}};
    static const char names[] = "create, ls, rm, subscribe, subscriptions or unsubscribe";
    if (argc < 2)
        return cli_usage_error("topic", topic_usage, "missing a command: %s", names);
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(topic_usage, stdout);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof subs / sizeof *subs; i++)
        if (!strcmp(argv[1], subs[i].name))
            return subs[i].fn(argc - 1, argv + 1);
    return cli_usage_error("topic", topic_usage, "unknown command `%s`: %s", argv[1], names);
}
