#include "cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/json.h"
#include "core/xalloc.h"

void cli_getopt_begin(int argc, char **argv, const char *cmd)
{
    /* getopt prefixes its messages with argv[0]; the subcommand's argv[0]
     * alone ("deploy") would read oddly, so it becomes "mayfly deploy". The
     * string lives for the whole process, as argv[0] must. */
    static char prog[64];
    snprintf(prog, sizeof prog, "mayfly %s", cmd);
    if (argc > 0)
        argv[0] = prog;
    /* 0, not 1: GNU getopt then also forgets the state (permutation, a
     * half-read option cluster) from any earlier scan. */
    optind = 0;
    opterr = 1;
}

int cli_usage_error(const char *cmd, const char *usage, const char *fmt, ...)
{
    if (fmt) {
        va_list ap;
        fprintf(stderr, "mayfly %s: ", cmd);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
    }
    /* The synopsis only (up to the first blank line); --help has the rest. */
    const char *end = strstr(usage, "\n\n");
    fprintf(stderr, "%.*s\nRun 'mayfly %s --help' for the options.\n",
            (int)(end ? (size_t)(end - usage) + 1 : strlen(usage)), usage, cmd);
    return CLI_EXIT_USAGE;
}

bool cli_parse_int(const char *s, int *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < INT_MIN || v > INT_MAX)
        return false;
    /* strtol skips leading blanks; " 12" is as much a typo as "12x". */
    if (s[0] == ' ' || s[0] == '\t' || s[0] == '\n')
        return false;
    *out = (int)v;
    return true;
}

void cli_url_encode(buf_t *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            buf_addch(out, (char)c);
        } else {
            buf_addch(out, '%');
            buf_addch(out, hex[c >> 4]);
            buf_addch(out, hex[c & 15]);
        }
    }
}

void cli_function_path(buf_t *out, const char *name, const char *suffix)
{
    buf_adds(out, "/v1/functions/");
    cli_url_encode(out, name);
    if (suffix)
        buf_adds(out, suffix);
}

void cli_query_add(buf_t *url, const char *key, const char *value)
{
    buf_addch(url, strchr(url->data, '?') ? '&' : '?');
    buf_adds(url, key);
    buf_addch(url, '=');
    cli_url_encode(url, value);
}

/* The last column is not padded: trailing blanks only get in the way of a
 * script that cuts the output. */
static void print_cell(const char *s, size_t width, bool last)
{
    if (last)
        printf("%s\n", s);
    else
        printf("%-*s  ", (int)width, s);
}

void cli_print_table(size_t ncols, const char *const *header, buf_t *cells, size_t nrows)
{
    size_t *width = xcalloc(ncols, sizeof *width);
    for (size_t c = 0; c < ncols; c++)
        width[c] = strlen(header[c]);
    for (size_t r = 0; r < nrows; r++)
        for (size_t c = 0; c < ncols; c++)
            if (cells[r * ncols + c].len > width[c])
                width[c] = cells[r * ncols + c].len;
    for (size_t c = 0; c < ncols; c++)
        print_cell(header[c], width[c], c + 1 == ncols);
    for (size_t r = 0; r < nrows; r++)
        for (size_t c = 0; c < ncols; c++)
            print_cell(cells[r * ncols + c].data, width[c], c + 1 == ncols);
    free(width);
}

void cli_print_body(const buf_t *body)
{
    fwrite(body->data, 1, body->len, stdout);
    if (!body->len || body->data[body->len - 1] != '\n')
        putchar('\n');
}

int cli_request(const char *method, const char *path, const void *body, size_t body_len,
                const client_header_t *headers, size_t nheaders, client_response_t *resp)
{
    mf_error_t err = MF_ERROR_INIT;
    if (client_request(method, path, body, body_len, headers, nheaders, resp, &err) < 0) {
        fprintf(stderr, "mayfly: %s\n", err.msg);
        return CLI_EXIT_ERROR;
    }
    return 0;
}

int cli_request_stream(const char *method, const char *path, const client_header_t *headers,
                       size_t nheaders, client_body_cb on_body, void *ud,
                       client_response_t *resp)
{
    mf_error_t err = MF_ERROR_INIT;
    if (client_request_stream(method, path, headers, nheaders, on_body, ud, resp, &err) < 0) {
        fprintf(stderr, "mayfly: %s\n", err.msg);
        return CLI_EXIT_ERROR;
    }
    return 0;
}

int cli_one_operand(int argc, char **argv, const char *cmd, const char *usage, const char *what,
                    const char **operand)
{
    static const struct option options[] = {
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int opt;
    cli_getopt_begin(argc, argv, cmd);
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (opt == 'h') {
            fputs(usage, stdout);
            return CLI_EXIT_OK;
        }
        return cli_usage_error(cmd, usage, NULL);
    }
    return cli_last_operand(argc, argv, cmd, usage, what, operand);
}

int cli_last_operand(int argc, char **argv, const char *cmd, const char *usage, const char *what,
                     const char **operand)
{
    if (argc == optind)
        return cli_usage_error(cmd, usage, "missing %s", what);
    if (argc - optind > 1)
        return cli_usage_error(cmd, usage, "unexpected argument `%s`", argv[optind + 1]);
    if (!*argv[optind])
        return cli_usage_error(cmd, usage, "%s is empty", what);
    *operand = argv[optind];
    return -1;
}

int cli_get_json(const char *cmd, const char *path, json_t **out)
{
    *out = NULL;
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    if (cli_request("GET", path, NULL, 0, NULL, 0, &resp))
        return CLI_EXIT_ERROR;
    if (resp.status != 200) {
        client_print_error(&resp);
        return CLI_EXIT_ERROR;
    }
    json_error_t jerr;
    *out = json_loadb(resp.body.data, resp.body.len, 0, &jerr);
    if (!*out) {
        fprintf(stderr, "mayfly %s: the server's answer is not JSON: %s\n", cmd, jerr.text);
        return CLI_EXIT_ERROR;
    }
    return CLI_EXIT_OK;
}

int cli_get_and_print_json(const char *cmd, const char *path)
{
    cleanup_json json_t *doc = NULL;
    int rc = cli_get_json(cmd, path, &doc);
    if (rc != CLI_EXIT_OK)
        return rc;
    json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    putchar('\n');
    return CLI_EXIT_OK;
}

void cli_print_json_array(const json_t *list, size_t ncols, const char *const *header,
                          void (*fill_row)(buf_t *cells, const json_t *item))
{
    size_t rows = json_array_size(list);
    buf_t *cells = xcalloc(rows * ncols + 1, sizeof *cells);
    for (size_t i = 0; i < rows * ncols; i++)
        buf_init(&cells[i], 0);
    for (size_t r = 0; r < rows; r++)
        fill_row(&cells[r * ncols], json_array_get(list, r));
    cli_print_table(ncols, header, cells, rows);
    for (size_t i = 0; i < rows * ncols; i++)
        buf_release(&cells[i]);
    free(cells);
}

int cli_print_json_list(const client_response_t *resp, const char *command, const char *key,
                        size_t ncols, const char *const *header,
                        void (*fill_row)(buf_t *cells, const json_t *item))
{
    json_error_t jerr;
    json_t *doc = json_loadb(resp->body.data ? resp->body.data : "", resp->body.len, 0, &jerr);
    json_t *list = json_object_get(doc, key);
    if (!json_is_array(list)) {
        fprintf(stderr, "mayfly %s: the server's answer has no \"%s\" list\n", command, key);
        json_decref(doc);
        return CLI_EXIT_ERROR;
    }
    cli_print_json_array(list, ncols, header, fill_row);
    json_decref(doc);
    return CLI_EXIT_OK;
}

int cli_check_status(const client_response_t *resp, long ok_a, long ok_b)
{
    if (resp->status == ok_a || resp->status == ok_b)
        return CLI_EXIT_OK;
    client_print_error(resp);
    return CLI_EXIT_ERROR;
}

int cli_list_command(int argc, char **argv, const char *cmd, const char *usage, const char *path,
                     const char *key, size_t ncols, const char *const *header,
                     void (*fill_row)(buf_t *cells, const json_t *item))
{
    static const struct option options[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool as_json = false;
    int opt;
    cli_getopt_begin(argc, argv, cmd);
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (opt == 'h') {
            fputs(usage, stdout);
            return CLI_EXIT_OK;
        }
        if (opt != 'j')
            return cli_usage_error(cmd, usage, NULL);
        as_json = true;
    }
    if (optind < argc)
        return cli_usage_error(cmd, usage, "unexpected argument `%s`", argv[optind]);
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    if (cli_request("GET", path, NULL, 0, NULL, 0, &resp))
        return CLI_EXIT_ERROR;
    int rc = cli_check_status(&resp, 200, 200);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (as_json) {
        cli_print_body(&resp.body);
        return CLI_EXIT_OK;
    }
    return cli_print_json_list(&resp, cmd, key, ncols, header, fill_row);
}

int cli_delete(const char *path, const char *what, const char *name)
{
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    if (cli_request("DELETE", path, NULL, 0, NULL, 0, &resp))
        return CLI_EXIT_ERROR;
    int rc = cli_check_status(&resp, 204, 200);
    if (rc == CLI_EXIT_OK)
        printf("deleted %s %s\n", what, name);
    return rc;
}

void cli_cell_string(buf_t *out, const json_t *v)
{
    const char *s = json_string_value(v);
    buf_adds(out, s && *s ? s : "-");
}

void cli_cell_number(buf_t *out, const json_t *v)
{
    if (json_is_integer(v))
        buf_addf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        buf_addf(out, "%.2f", json_real_value(v));
    else
        buf_adds(out, "-");
}
