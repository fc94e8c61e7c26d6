/* Helpers the CLI subcommands share: option parsing, usage errors and the
 * paths of the /v1 API. Only the subcommands under src/cli/ use them. */
#ifndef MAYFLY_CLI_CLI_H
#define MAYFLY_CLI_CLI_H

#include <getopt.h>
#include <stdbool.h>

#include "cli/client.h"
#include "core/buf.h"

/* Prepares getopt_long for a subcommand's argv (argv[0] is the subcommand):
 * resets getopt's state and names the program "mayfly CMD" in getopt's own
 * messages, so an unknown flag reads "mayfly deploy: unrecognized option". */
void cli_getopt_begin(int argc, char **argv, const char *cmd);

/* Prints "mayfly CMD: <message>", the usage synopsis (usage up to its first
 * blank line) and a pointer to --help on stderr, and returns CLI_EXIT_USAGE.
 * A NULL fmt (getopt has already said what is wrong) skips the message. */
int cli_usage_error(const char *cmd, const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Parses a whole decimal integer (optional sign) that fits an int; false on
 * anything else, so "--memory abc" and "--memory 1.5" are usage errors. */
bool cli_parse_int(const char *s, int *out);

/* Appends "/v1/functions/<name>" with name percent-encoded, then suffix
 * (may be NULL), so a name the server will reject still makes a valid URL. */
void cli_function_path(buf_t *out, const char *name, const char *suffix);

/* Sends the request and, when the server cannot be reached, prints
 * "mayfly: cannot reach the mayfly server at URL: ..." on stderr. Returns
 * 0 with resp filled for any HTTP status, or CLI_EXIT_ERROR. */
int cli_request(const char *method, const char *path, const void *body, size_t body_len,
                const client_header_t *headers, size_t nheaders, client_response_t *resp);

static inline void cli_response_cleanup(client_response_t *r)
{
    client_response_release(r);
}
#define cleanup_response __attribute__((cleanup(cli_response_cleanup)))
#define CLIENT_RESPONSE_INIT { 0, BUF_INIT, BUF_INIT }

#endif
