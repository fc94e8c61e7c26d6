#include "cli/cli.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
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

void cli_function_path(buf_t *out, const char *name, const char *suffix)
{
    static const char hex[] = "0123456789ABCDEF";
    buf_adds(out, "/v1/functions/");
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
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
    if (suffix)
        buf_adds(out, suffix);
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
