/* Helpers the CLI subcommands share: option parsing, usage errors and the
 * paths of the /v1 API. Only the subcommands under src/cli/ use them. */
#ifndef MAYFLY_CLI_CLI_H
#define MAYFLY_CLI_CLI_H

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>

#include "cli/client.h"
#include "core/buf.h"

/* Prepares getopt_long for a subcommand's argv (argv[0] is the subcommand):
 * resets getopt's state and names the program "mayfly CMD" in getopt's own
 * messages, so an unknown flag reads "mayfly deploy: unrecognized option". */
void cli_getopt_begin(int argc, char **argv, const char *cmd);

/* GETs path and parses the answer: CLI_EXIT_OK with *out set (the
 * caller's), or an exit code after printing why (an HTTP error, or an
 * answer that is not JSON, named by cmd). */
int cli_get_json(const char *cmd, const char *path, json_t **out);
/* GETs path and prints the JSON answer indented; returns the exit code. */
int cli_get_and_print_json(const char *cmd, const char *path);

/* Parses the arguments of a command that takes only --help and one
 * operand (what names it in messages, e.g. "NAME"). Returns -1 with *operand
 * set when the command should go on, or the exit code to return (0 after
 * --help, 2 on bad usage). */
int cli_one_operand(int argc, char **argv, const char *cmd, const char *usage, const char *what,
                    const char **operand);
/* After getopt: takes the one operand left (what names it in messages).
 * Returns -1 with *operand set, or 2 when it is missing, empty, or not
 * alone. */
int cli_last_operand(int argc, char **argv, const char *cmd, const char *usage, const char *what,
                     const char **operand);
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

/* Appends s percent-encoded: everything but A-Z a-z 0-9 - _ . ~ becomes
 * %XX, so it is safe both as a path segment and as a query value. */
void cli_url_encode(buf_t *out, const char *s);

/* Appends "?key=value" to url, or "&key=value" when url already has a
 * query, with value percent-encoded. */
void cli_query_add(buf_t *url, const char *key, const char *value);

/* Prints rows of ncols cells as a table with a header row, each column
 * as wide as its widest cell and two spaces between columns. cells holds
 * nrows * ncols strings, row after row. */
void cli_print_table(size_t ncols, const char *const *header, buf_t *cells, size_t nrows);

/* Prints the JSON array named key of the server's answer as a table, one
 * row a member, fill_row filling a row's ncols cells; a missing list is an
 * error naming command. Returns an exit code. */
int cli_print_json_list(const client_response_t *resp, const char *command, const char *key,
                        size_t ncols, const char *const *header,
                        void (*fill_row)(buf_t *cells, const json_t *item));
/* CLI_EXIT_OK when the answer's status is ok_a or ok_b, else prints the
 * server's error and gives CLI_EXIT_ERROR. */
int cli_check_status(const client_response_t *resp, long ok_a, long ok_b);
/* The whole of a `mayfly THING ls [--json]` command: GET path, then the
 * server's JSON (--json) or its array key as a table (cli_print_json_list). */
int cli_list_command(int argc, char **argv, const char *cmd, const char *usage, const char *path,
                     const char *key, size_t ncols, const char *const *header,
                     void (*fill_row)(buf_t *cells, const json_t *item));
/* A tenant's named objects at PATH/{name} (budgets, alert rules): the
 * command CMD's put is its own, and ls [--tenant T] [--json], get NAME
 * [--tenant T] and rm NAME [--tenant T] are cli/owned.c's, a list shown
 * as a table by fill_row. */
typedef struct cli_owned {
    const char *cmd;             /* "budget" */
    const char *path;            /* "/v1/budgets" */
    const char *key;             /* the list's array: "budgets" */
    const char *noun;            /* what rm says it deleted: "budget" */
    const char *usage;
    size_t ncols;
    const char *const *header;
    void (*fill_row)(buf_t *cells, const json_t *item);
    int (*put)(int argc, char **argv);
} cli_owned_t;
/* PATH, /NAME when name is set, ?tenant=T when tenant is. */
void cli_owned_path(const cli_owned_t *o, buf_t *path, const char *name, const char *tenant);
int cli_owned_command(const cli_owned_t *o, int argc, char **argv);
/* Appends {KIND: TO} (a notification target: webhook, function or topic,
 * docs/alerts.md) to body's "notify" list, made when missing. */
void cli_notify_add(json_t *body, const char *kind, const char *to);
/* DELETE path; on 204 (or 200) prints "deleted WHAT NAME". An exit code. */
int cli_delete(const char *path, const char *what, const char *name);
/* The same for a JSON array in hand. */
void cli_print_json_array(const json_t *list, size_t ncols, const char *const *header,
                          void (*fill_row)(buf_t *cells, const json_t *item));
/* Cells: a string, or a number (whole, or with two decimals), or "-". */
void cli_cell_string(buf_t *out, const json_t *v);
void cli_cell_number(buf_t *out, const json_t *v);

/* Writes the bytes to stdout as they are, then a newline unless they end
 * with one, so the shell prompt starts on a line of its own. */
void cli_print_body(const buf_t *body);

/* Sends the request and, when the server cannot be reached, prints
 * "mayfly: cannot reach the mayfly server at URL: ..." on stderr. Returns
 * 0 with resp filled for any HTTP status, or CLI_EXIT_ERROR. */
int cli_request(const char *method, const char *path, const void *body, size_t body_len,
                const client_header_t *headers, size_t nheaders, client_response_t *resp);

/* cli_request for a streamed answer: a 2xx body goes to on_body as it
 * arrives (see client_request_stream). */
int cli_request_stream(const char *method, const char *path, const client_header_t *headers,
                       size_t nheaders, client_body_cb on_body, void *ud,
                       client_response_t *resp);

static inline void cli_response_cleanup(client_response_t *r)
{
    client_response_release(r);
}
#define cleanup_response __attribute__((cleanup(cli_response_cleanup)))
#define CLIENT_RESPONSE_INIT { 0, BUF_INIT, BUF_INIT }

#endif
