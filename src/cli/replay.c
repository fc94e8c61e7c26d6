/* mayfly replay ID: runs a recorded call's event again (POST
 * /v1/invocations/ID/replay), prints the new result and, when it differs
 * from the recorded one, a unified diff of the two. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/xalloc.h"

static const char replay_usage[] =
    "usage: mayfly replay ID [--async]\n"
    "\n"
    "Runs the event of the invocation ID again, on its function's current\n"
    "version, and prints the new result on stdout. When the result differs\n"
    "from the one recorded for ID, a unified diff of the two follows on\n"
    "stdout (JSON pretty-printed when both are JSON). The new record says\n"
    "replay_of ID. An event that was not kept, or kept cut or redacted,\n"
    "cannot run again (the server says which).\n"
    "\n"
    "options:\n"
    "  --async     queue the event and print the new request id\n"
    "  -h, --help  show this help\n";

enum { OPT_ASYNC = 256 };

static const struct option replay_options[] = {
    { "async", no_argument, NULL, OPT_ASYNC },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

/* JSON pretty-printed with sorted keys, so that equal documents compare
 * equal line by line; other bytes as they are. */
static void normalise(const buf_t *in, buf_t *out)
{
    json_t *v = in->len ? json_loadb(in->data, in->len, JSON_DECODE_ANY, NULL) : NULL;
    if (v) {
        char *s = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        buf_adds(out, s ? s : "");
        free(s);
        json_decref(v);
    } else if (in->len) {
        buf_add(out, in->data, in->len);
    }
    if (!out->len || out->data[out->len - 1] != '\n')
        buf_addch(out, '\n');
}

typedef struct lines {
    const char **at;
    size_t *len;
    size_t n;
} lines_t;

static void split(const buf_t *b, lines_t *l)
{
    l->n = 0;
    for (size_t i = 0; i < b->len; i++)
        if (b->data[i] == '\n')
            l->n++;
    l->at = xcalloc(l->n + 1, sizeof *l->at);
    l->len = xcalloc(l->n + 1, sizeof *l->len);
    size_t k = 0, start = 0;
    for (size_t i = 0; i < b->len; i++) {
        if (b->data[i] == '\n') {
            l->at[k] = b->data + start;
            l->len[k++] = i - start;
            start = i + 1;
        }
    }
}

static bool same(const lines_t *a, size_t i, const lines_t *b, size_t j)
{
    return a->len[i] == b->len[j] && !memcmp(a->at[i], b->at[j], a->len[i]);
}

#define DIFF_MAX_LINES 4000
#define CONTEXT 3

/* A unified diff of a and b (longest common subsequence of lines). */
static void unified_diff(const lines_t *a, const lines_t *b)
{
    printf("--- recorded\n+++ replayed\n");
    if (a->n > DIFF_MAX_LINES || b->n > DIFF_MAX_LINES) {
        printf("@@ -1,%zu +1,%zu @@\n(too long to compare line by line)\n", a->n, b->n);
        return;
    }
    size_t w = b->n + 1;
    unsigned *lcs = xcalloc((a->n + 1) * w, sizeof *lcs);
    for (size_t i = a->n; i-- > 0;)
        for (size_t j = b->n; j-- > 0;)
            lcs[i * w + j] = same(a, i, b, j) ? lcs[(i + 1) * w + j + 1] + 1
                             : lcs[(i + 1) * w + j] > lcs[i * w + j + 1] ? lcs[(i + 1) * w + j]
                                                                          : lcs[i * w + j + 1];
    /* The edit script: ' ', '-', '+', with the line's index in a or b. */
    size_t cap = a->n + b->n, n = 0;
    char *op = xmalloc(cap + 1);
    size_t *ia = xmalloc((cap + 1) * sizeof *ia), *ib = xmalloc((cap + 1) * sizeof *ib);
    size_t i = 0, j = 0;
    while (i < a->n || j < b->n) {
        if (i < a->n && j < b->n && same(a, i, b, j)) {
            op[n] = ' ', ia[n] = i++, ib[n++] = j++;
        } else if (i < a->n && (j == b->n || lcs[(i + 1) * w + j] >= lcs[i * w + j + 1])) {
            op[n] = '-', ia[n] = i++, ib[n++] = j;
        } else {
            op[n] = '+', ia[n] = i, ib[n++] = j++;
        }
    }
    /* Hunks: changes with CONTEXT lines around them. */
    for (size_t k = 0; k < n;) {
        if (op[k] == ' ') {
            k++;
            continue;
        }
        size_t start = k > CONTEXT ? k - CONTEXT : 0, end = k;
        for (size_t q = k; q < n; q++) {
            if (op[q] != ' ')
                end = q;
            else if (q - end > 2 * CONTEXT)
                break;
        }
        end = end + CONTEXT + 1 < n ? end + CONTEXT + 1 : n;
        size_t na = 0, nb = 0;
        for (size_t q = start; q < end; q++) {
            na += op[q] != '+';
            nb += op[q] != '-';
        }
        printf("@@ -%zu,%zu +%zu,%zu @@\n", ia[start] + (na ? 1 : 0), na, ib[start] + (nb ? 1 : 0),
               nb);
        for (size_t q = start; q < end; q++) {
            const lines_t *src = op[q] == '+' ? b : a;
            size_t at = op[q] == '+' ? ib[q] : ia[q];
            printf("%c%.*s\n", op[q], (int)src->len[at], src->at[at]);
        }
        k = end;
    }
    free(op);
    free(ia);
    free(ib);
    free(lcs);
}

int cmd_replay(int argc, char **argv)
{
    bool async = false;
    int opt;
    cli_getopt_begin(argc, argv, "replay");
    while ((opt = getopt_long(argc, argv, "h", replay_options, NULL)) != -1) {
        switch (opt) {
        case 'h':
            fputs(replay_usage, stdout);
            return CLI_EXIT_OK;
        case OPT_ASYNC:
            async = true;
            break;
        default:
            return cli_usage_error("replay", replay_usage, NULL);
        }
    }
    const char *id;
    int rc = cli_last_operand(argc, argv, "replay", replay_usage, "ID", &id);
    if (rc >= 0)
        return rc;

    cleanup_buf buf_t path = BUF_INIT;
    buf_adds(&path, "/v1/invocations/");
    cli_url_encode(&path, id);
    size_t base = path.len;
    buf_adds(&path, "/replay");
    client_header_t hdr = {"X-Mayfly-Invocation-Type", "Event"};
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    if (cli_request("POST", path.data, NULL, 0, async ? &hdr : NULL, async ? 1 : 0, &resp))
        return CLI_EXIT_ERROR;
    if (resp.status != 200 && resp.status != 202) {
        client_print_error(&resp);
        return CLI_EXIT_ERROR;
    }
    cli_print_body(&resp.body);
    if (async)
        return CLI_EXIT_OK;
    char fe[32];
    bool failed = client_response_header(&resp, "X-Mayfly-Function-Error", fe, sizeof fe) == 0;

    /* The recorded result, to compare. */
    path.len = base;
    buf_adds(&path, "/result");
    cleanup_response client_response_t orig = CLIENT_RESPONSE_INIT;
    if (cli_request("GET", path.data, NULL, 0, NULL, 0, &orig))
        return CLI_EXIT_ERROR;
    if (orig.status != 200) {
        fprintf(stderr, "mayfly replay: the recorded result cannot be compared: ");
        client_print_error(&orig);
        return failed ? CLI_EXIT_ERROR : CLI_EXIT_OK;
    }
    cleanup_buf buf_t a = BUF_INIT;
    cleanup_buf buf_t b = BUF_INIT;
    normalise(&orig.body, &a);
    normalise(&resp.body, &b);
    if (a.len != b.len || memcmp(a.data, b.data, a.len)) {
        lines_t la, lb;
        split(&a, &la);
        split(&b, &lb);
        unified_diff(&la, &lb);
        free(la.at), free(la.len), free(lb.at), free(lb.len);
    }
    return failed ? CLI_EXIT_ERROR : CLI_EXIT_OK;
}
