/* mayfly usage: what the calls metered and cost (GET /v1/usage), as a
 * table with a total, CSV, or the server's JSON. */
#include <getopt.h>
#include <stdlib.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/buf.h"
#include "core/cleanup.h"
#include "core/json.h"
#include "core/xalloc.h"

static const char usage_usage[] =
    "usage: mayfly usage [--from T] [--to T] [--granularity hour|day|month]\n"
    "                    [--by function|tenant|tenant_id] [--function NAME]\n"
    "                    [--format table|csv|json]\n"
    "\n"
    "Shows what the calls metered and what it costs at the server's prices\n"
    "(docs/metering.md): requests, GB-seconds, CPU, egress, KV operations and\n"
    "log bytes, per period and function (or tenant, or the calls' tenant id\n"
    "under tenant isolation), and their total.\n"
    "\n"
    "options:\n"
    "  --from T          from T: an RFC 3339 time or milliseconds since the epoch\n"
    "                    (default: the start of this month, UTC)\n"
    "  --to T            until T (default: now)\n"
    "  --granularity G   hour, day (default) or month\n"
    "  --by K            function (default), tenant or tenant_id\n"
    "  --function NAME   only that function's usage\n"
    "  --format F        table (default), csv or json (the server's answer)\n"
    "  -h, --help        show this help\n";

#define USAGE_COLS 9
static const char *const usage_header[USAGE_COLS] = { "PERIOD",       "KEY",    "REQUESTS",
                                                      "GB-SECONDS",   "CPU MS", "EGRESS BYTES",
                                                      "KV OPS",       "LOG BYTES", "COST" };

/* A row's cells; key is "function", "tenant" or "tenant_id", the total
 * has none. */
static void fill(buf_t *cells, const json_t *row, const char *key)
{
    if (json_object_get(row, "period"))
        cli_cell_string(&cells[0], json_object_get(row, "period"));
    else
        buf_adds(&cells[0], "TOTAL");
    cli_cell_string(&cells[1], json_object_get(row, key));
    cli_cell_number(&cells[2], json_object_get(row, "requests"));
    buf_addf(&cells[3], "%.6f", json_number_value(json_object_get(row, "gb_seconds")));
    cli_cell_number(&cells[4], json_object_get(row, "cpu_ms"));
    cli_cell_number(&cells[5], json_object_get(row, "egress_bytes"));
    cli_cell_number(&cells[6], json_object_get(row, "kv_ops"));
    cli_cell_number(&cells[7], json_object_get(row, "log_bytes"));
    buf_addf(&cells[8], "%.8f", json_number_value(json_object_get(row, "cost")));
}

/* A CSV field: quoted when it holds a comma, a quote or a line break. */
static void csv_field(const char *s, bool last)
{
    if (strpbrk(s, ",\"\r\n")) {
        putchar('"');
        for (const char *p = s; *p; p++) {
            if (*p == '"')
                putchar('"');
            putchar(*p);
        }
        putchar('"');
    } else {
        fputs(s, stdout);
    }
    putchar(last ? '\n' : ',');
}

static int print_report(const client_response_t *resp, bool csv)
{
    json_error_t jerr;
    cleanup_json json_t *doc =
        json_loadb(resp->body.data ? resp->body.data : "", resp->body.len, 0, &jerr);
    const json_t *rows = json_object_get(doc, "rows");
    const char *key = json_string_value(json_object_get(doc, "group_by"));
    const char *currency = json_string_value(json_object_get(doc, "currency"));
    if (!json_is_array(rows) || !key || !currency) {
        fprintf(stderr, "mayfly usage: the server's answer is not a usage report\n");
        return CLI_EXIT_ERROR;
    }
    size_t n = json_array_size(rows) + 1;
    buf_t *cells = xcalloc(n * USAGE_COLS, sizeof *cells);
    for (size_t i = 0; i + 1 < n; i++)
        fill(&cells[i * USAGE_COLS], json_array_get(rows, i), key);
    fill(&cells[(n - 1) * USAGE_COLS], json_object_get(doc, "totals"), key);
    const char *header[USAGE_COLS];
    memcpy(header, usage_header, sizeof header);
    header[1] = !strcmp(key, "tenant")      ? "TENANT"
                : !strcmp(key, "tenant_id") ? "TENANT ID"
                                            : "FUNCTION";
    char cost[32];
    snprintf(cost, sizeof cost, "COST (%s)", currency);
    header[8] = cost;
    if (csv) {
        for (size_t c = 0; c < USAGE_COLS; c++)
            csv_field(header[c], c + 1 == USAGE_COLS);
        for (size_t i = 0; i < n * USAGE_COLS; i++)
            csv_field(cells[i].data, (i + 1) % USAGE_COLS == 0);
    } else {
        cli_print_table(USAGE_COLS, header, cells, n);
    }
    for (size_t i = 0; i < n * USAGE_COLS; i++)
        buf_release(&cells[i]);
    free(cells);
    return CLI_EXIT_OK;
}

int cmd_usage(int argc, char **argv)
{
    enum { OPT_FROM = 256, OPT_TO, OPT_GRANULARITY, OPT_BY, OPT_FUNCTION, OPT_FORMAT };
    static const struct option options[] = {
        {"from", required_argument, NULL, OPT_FROM},
        {"to", required_argument, NULL, OPT_TO},
        {"granularity", required_argument, NULL, OPT_GRANULARITY},
        {"by", required_argument, NULL, OPT_BY},
        {"function", required_argument, NULL, OPT_FUNCTION},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    cleanup_buf buf_t path = BUF_INIT;
    buf_adds(&path, "/v1/usage");
    const char *format = "table";
    int opt;
    cli_getopt_begin(argc, argv, "usage");
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'h': fputs(usage_usage, stdout); return CLI_EXIT_OK;
        case OPT_FROM: cli_query_add(&path, "from", optarg); break;
        case OPT_TO: cli_query_add(&path, "to", optarg); break;
        case OPT_GRANULARITY: cli_query_add(&path, "granularity", optarg); break;
        case OPT_BY: cli_query_add(&path, "group_by", optarg); break;
        case OPT_FUNCTION: cli_query_add(&path, "function", optarg); break;
        case OPT_FORMAT:
            if (strcmp(optarg, "table") && strcmp(optarg, "csv") && strcmp(optarg, "json"))
                return cli_usage_error("usage", usage_usage,
                                       "--format must be table, csv or json, not `%s`", optarg);
            format = optarg;
            break;
        default: return cli_usage_error("usage", usage_usage, NULL);
        }
    }
    if (optind < argc)
        return cli_usage_error("usage", usage_usage, "unexpected argument `%s`", argv[optind]);
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    if (cli_request("GET", path.data, NULL, 0, NULL, 0, &resp))
        return CLI_EXIT_ERROR;
    int rc = cli_check_status(&resp, 200, 200);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (!strcmp(format, "json")) {
        cli_print_body(&resp.body);
        return CLI_EXIT_OK;
    }
    return print_report(&resp, !strcmp(format, "csv"));
}
