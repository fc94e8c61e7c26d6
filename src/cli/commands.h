/* The subcommands of bin/mayfly, one file each under src/cli/. Each takes
 * the arguments after its own name (argv[0] is the subcommand) and returns
 * the process exit code: 0 ok, 1 an error reported by the server or the
 * function (the message on stderr), 2 bad usage. */
#ifndef MAYFLY_CLI_COMMANDS_H
#define MAYFLY_CLI_COMMANDS_H

int cmd_server(int argc, char **argv);
int cmd_deploy(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_invoke(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_invocations(int argc, char **argv);
int cmd_invocation(int argc, char **argv);
int cmd_dead_letters(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_kv(int argc, char **argv);
int cmd_volume(int argc, char **argv);
int cmd_schedule(int argc, char **argv);
int cmd_topic(int argc, char **argv);
int cmd_publish(int argc, char **argv);
int cmd_url(int argc, char **argv);
/* The tenants and who the CLI's key is (cli/tenant.c). */
int cmd_tenant(int argc, char **argv);
int cmd_whoami(int argc, char **argv);
/* What the calls metered and cost (cli/usage.c). */
int cmd_usage(int argc, char **argv);
/* Budgets: caps on what calls cost (cli/budget.c). */
int cmd_budget(int argc, char **argv);
/* Sizing: the advisor and power tuning (cli/advise.c, cli/tune.c). */
int cmd_advise(int argc, char **argv);
int cmd_tune(int argc, char **argv);
/* Alert rules and their notifications (cli/alert.c). */
int cmd_alert(int argc, char **argv);
/* The nodes sharing the database (cli/nodes.c). */
int cmd_nodes(int argc, char **argv);
/* Durable executions (cli/executions.c). */
int cmd_executions(int argc, char **argv);
int cmd_execution(int argc, char **argv);
int cmd_callback(int argc, char **argv);

#define CLI_EXIT_OK 0
#define CLI_EXIT_ERROR 1
#define CLI_EXIT_USAGE 2

#endif
