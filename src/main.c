/* bin/mayfly: the server and the CLI in one binary. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "core/proctitle.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} commands[] = {
    { "server", cmd_server, "run the mayfly server" },
    { "deploy", cmd_deploy, "create or update a function from a folder or a .zip" },
    { "ls", cmd_ls, "list functions" },
    { "get", cmd_get, "show one function" },
    { "rm", cmd_rm, "delete a function" },
    { "invoke", cmd_invoke, "call a function with an event and print its result" },
    { "logs", cmd_logs, "print a function's log lines, or follow them" },
    { "invocations", cmd_invocations, "list a function's invocation records" },
    { "invocation", cmd_invocation, "show one invocation record" },
    { "replay", cmd_replay, "run a recorded call's event again and diff the results" },
    { "dead-letters", cmd_dead_letters, "list a function's failed async events, or redrive one" },
    { "kv", cmd_kv, "get, put, delete and list keys of the key-value stores" },
    { "volume", cmd_volume, "create, list or delete shared volumes" },
    { "schedule", cmd_schedule, "create, list, show or delete schedules that start functions" },
    { "topic", cmd_topic, "create, list or delete topics and their subscriptions" },
    { "publish", cmd_publish, "publish a message to a topic's subscribers" },
    { "url", cmd_url, "give a function an HTTP endpoint (a function URL), show or remove it" },
    { "executions", cmd_executions, "list a durable function's executions" },
    { "execution", cmd_execution, "show a durable execution and its operations, or stop it" },
    { "callback", cmd_callback, "complete a durable execution's callback" },
    { "nodes", cmd_nodes, "list the nodes sharing the server's database" },
    { "usage", cmd_usage, "what the calls metered and cost, per period and function" },
    { "alert", cmd_alert, "alert rules that notify when a metric breaches" },
    { "budget", cmd_budget, "cap what a tenant's calls cost in a day or a month" },
    { "advise", cmd_advise, "right-size a function's memory from its recent calls" },
    { "tune", cmd_tune, "run an event at several memory sizes and compare" },
    { "tenant", cmd_tenant, "list the tenants the access keys name (admins)" },
    { "whoami", cmd_whoami, "show the access key in use: tenant, role, account" },
};

static void usage(FILE *out)
{
    fprintf(out, "usage: mayfly COMMAND [ARGS]...\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-13s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun 'mayfly COMMAND --help' for a command's options.\n"
                 "The CLI talks to MAYFLY_URL (default http://127.0.0.1:8700), with\n"
                 "MAYFLY_TOKEN as bearer token when set.\n");
}

int main(int argc, char **argv)
{
    proctitle_init(argc, argv);
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "mayfly: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return CLI_EXIT_USAGE;
}
