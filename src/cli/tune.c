/* mayfly tune NAME --event FILE: power tuning, the event run against
 * temporary copies of the function at several memory sizes (POST
 * /v1/functions/{name}/tune; docs/sizing.md). The server answers once
 * every run is done, so the client waits as long as that takes. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/buf.h"
#include "core/json.h"

static const char tune_usage[] =
    "usage: mayfly tune NAME --event FILE [--memory 128,256,...] [--runs N]\n"
    "                  [--strategy cost|speed|balanced] [--json]\n"
    "\n"
    "Runs the event in FILE (JSON; - reads stdin) against temporary copies of\n"
    "the function at each memory size, runs times each (the first call cold),\n"
    "and prints a table of cold and warm durations and cost per million calls,\n"
    "with the size the strategy recommends. The function really runs: its side\n"
    "effects happen runs times per size. The live function, its records and\n"
    "its metrics are not touched; the calls are metered to its tenant.\n"
    "\n"
    "options:\n"
    "  --event FILE        the event, a JSON document (required)\n"
    "  --memory LIST       sizes in MB, comma-separated (128,256,512,1024,2048)\n"
    "  --runs N            calls per size, 1 to 100 (10)\n"
    "  --strategy S        cost (cheapest), speed (fastest p50) or balanced\n"
    "                      (half each, as the AWS Lambda Power Tuning tool; default)\n"
    "  --json              print the server's JSON\n"
    "  -h, --help          show this help\n";

enum { OPT_EVENT = 256, OPT_MEMORY, OPT_RUNS, OPT_STRATEGY, OPT_JSON };

/* "128,256" into a JSON array of integers; NULL when a member is not one. */
static json_t *memory_list(const char *s)
{
    json_t *list = json_array();
    cleanup_buf buf_t item = BUF_INIT;
    for (const char *p = s;; p++) {
        if (*p && *p != ',') {
            buf_addch(&item, *p);
            continue;
        }
        int x;
        if (!cli_parse_int(item.data ? item.data : "", &x)) {
            json_decref(list);
            return NULL;
        }
        json_array_append_new(list, json_integer(x));
        buf_reset(&item);
        if (!*p)
            return list;
    }
}

static json_t *read_event(const char *file, char *why, size_t len)
{
    json_error_t jerr;
    json_t *v;
    if (!strcmp(file, "-")) {
        v = json_loadf(stdin, JSON_DECODE_ANY, &jerr);
    } else {
        FILE *f = fopen(file, "re");
        if (!f) {
            snprintf(why, len, "--event: cannot open %s: %s", file, strerror(errno));
            return NULL;
        }
        v = json_loadf(f, JSON_DECODE_ANY, &jerr);
        fclose(f);
    }
    if (!v)
        snprintf(why, len, "--event: %s is not JSON: %s", file, jerr.text);
    return v;
}

static const char *cell_ms(buf_t *b, const json_t *v)
{
    if (json_is_number(v))
        buf_addf(b, "%.1f", json_number_value(v));
    else
        buf_adds(b, "-");
    return b->data;
}

static void print_table(const json_t *t)
{
    const json_t *sizes = json_object_get(t, "sizes");
    size_t n = json_array_size(sizes);
    static const char *const header[] = {"MEMORY_MB",        "COLD_MS", "P50_MS", "P90_MS",
                                         "COST_PER_MILLION", "OK",      "ERRORS"};
    buf_t *cells = calloc(n ? n * 7 : 1, sizeof *cells);
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_array_get(sizes, i);
        buf_t *c = &cells[i * 7];
        buf_addf(&c[0], "%lld", (long long)json_integer_value(json_object_get(s, "memory_mb")));
        cell_ms(&c[1], json_object_get(s, "cold_ms"));
        cell_ms(&c[2], json_object_get(s, "p50_ms"));
        cell_ms(&c[3], json_object_get(s, "p90_ms"));
        const json_t *cost = json_object_get(s, "cost_per_million");
        if (json_is_number(cost))
            buf_addf(&c[4], "%.6f", json_number_value(cost));
        else
            buf_adds(&c[4], "-");
        buf_addf(&c[5], "%lld/%lld", (long long)json_integer_value(json_object_get(s, "successes")),
                 (long long)json_integer_value(json_object_get(s, "runs")));
        const json_t *types = json_object_get(s, "error_types");
        size_t k;
        const json_t *e;
        json_array_foreach(types, k, e) buf_addf(&c[6], "%s%s", k ? "," : "", json_string_value(e));
        if (!json_array_size(types))
            buf_adds(&c[6], "-");
    }
    cli_print_table(7, header, cells, n);
    for (size_t i = 0; i < n * 7; i++)
        buf_release(&cells[i]);
    free(cells);
    const json_t *rec = json_object_get(t, "recommended");
    if (json_is_object(rec))
        printf("recommended: %lld MB (strategy %s)\n",
               (long long)json_integer_value(json_object_get(rec, "memory_mb")),
               json_string_value(json_object_get(t, "strategy")));
    else
        printf("recommended: none (strategy %s)\n",
               json_string_value(json_object_get(t, "strategy")));
    const char *msg = json_string_value(json_object_get(t, "message"));
    if (msg)
        printf("%s\n", msg);
}

int cmd_tune(int argc, char **argv)
{
    static const struct option options[] = {
        {"event", required_argument, NULL, OPT_EVENT},
        {"memory", required_argument, NULL, OPT_MEMORY},
        {"runs", required_argument, NULL, OPT_RUNS},
        {"strategy", required_argument, NULL, OPT_STRATEGY},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    cleanup_json json_t *body = json_object();
    const char *event_file = NULL;
    bool as_json = false;
    int opt, x;
    json_t *list;
    cli_getopt_begin(argc, argv, "tune");
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'h': fputs(tune_usage, stdout); return CLI_EXIT_OK;
        case OPT_EVENT: event_file = optarg; break;
        case OPT_MEMORY:
            if (!(list = memory_list(optarg)))
                return cli_usage_error("tune", tune_usage,
                                       "--memory must be sizes in MB separated by commas "
                                       "(128,256,512), not `%s`",
                                       optarg);
            json_object_set_new(body, "memory_mb", list);
            break;
        case OPT_RUNS:
            if (!cli_parse_int(optarg, &x))
                return cli_usage_error("tune", tune_usage, "--runs must be an integer, not `%s`",
                                       optarg);
            json_object_set_new(body, "runs", json_integer(x));
            break;
        case OPT_STRATEGY:
            if (strcmp(optarg, "cost") && strcmp(optarg, "speed") && strcmp(optarg, "balanced"))
                return cli_usage_error("tune", tune_usage,
                                       "--strategy must be cost, speed or balanced, not `%s`",
                                       optarg);
            json_object_set_new(body, "strategy", json_string(optarg));
            break;
        case OPT_JSON: as_json = true; break;
        default: return cli_usage_error("tune", tune_usage, NULL);
        }
    }
    const char *name;
    int rc = cli_last_operand(argc, argv, "tune", tune_usage, "NAME", &name);
    if (rc >= 0)
        return rc;
    if (!event_file)
        return cli_usage_error("tune", tune_usage, "missing --event FILE");
    char why[300];
    json_t *event = read_event(event_file, why, sizeof why);
    if (!event)
        return cli_usage_error("tune", tune_usage, "%s", why);
    json_object_set_new(body, "event", event);

    cleanup_buf buf_t path = BUF_INIT, text = BUF_INIT;
    cli_function_path(&path, name, "/tune");
    json_dump_buf(&text, body);
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    client_header_t type = {"Content-Type", "application/json"};
    if (cli_request("POST", path.data, text.data, text.len, &type, 1, &resp))
        return CLI_EXIT_ERROR;
    if ((rc = cli_check_status(&resp, 200, 200)) != CLI_EXIT_OK)
        return rc;
    json_error_t jerr;
    cleanup_json json_t *doc = json_loadb(resp.body.data, resp.body.len, 0, &jerr);
    if (!doc) {
        fprintf(stderr, "mayfly tune: the server's answer is not JSON: %s\n", jerr.text);
        return CLI_EXIT_ERROR;
    }
    if (as_json) {
        char *s = json_dumps(doc, JSON_INDENT(2));
        printf("%s\n", s);
        free(s);
    } else {
        print_table(doc);
    }
    return CLI_EXIT_OK;
}
