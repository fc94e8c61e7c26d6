/* mayfly advise NAME: the right-sizing advisor's answer for a function
 * (GET /v1/functions/{name}/advice; docs/sizing.md). */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/buf.h"
#include "core/json.h"

static const char advise_usage[] =
    "usage: mayfly advise NAME [--json]\n"
    "\n"
    "Reads the function's calls of the last 7 days (at most 1000) and says\n"
    "whether its memory_mb fits: its memory peak (p99) against its size, whether\n"
    "it is CPU-bound (CPU grows with memory), and the memory_mb it should have,\n"
    "with the duration and cost per million calls predicted there and now.\n"
    "Few calls give a cautious answer that says so (docs/sizing.md).\n"
    "\n"
    "options:\n"
    "  --json       print the server's JSON\n"
    "  -h, --help   show this help\n";

enum { OPT_JSON = 256 };

static double num(const json_t *o, const char *key)
{
    return json_number_value(json_object_get(o, key));
}

static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "-";
}

static void print_advice(const json_t *a)
{
    const json_t *ev = json_object_get(a, "evidence");
    printf("function     %s (memory_mb %d)\n", str(a, "function"),
           (int)json_integer_value(json_object_get(a, "memory_mb")));
    printf("confidence   %s\n", str(a, "confidence"));
    long long records = (long long)json_integer_value(json_object_get(ev, "records"));
    printf("evidence     %lld call%s from %s to %s: %lld successes, %lld errors, %lld ooms, %lld "
           "timeouts\n",
           records, records == 1 ? "" : "s", str(ev, "from"),
           str(ev, "to"), (long long)json_integer_value(json_object_get(ev, "successes")),
           (long long)json_integer_value(json_object_get(ev, "errors")),
           (long long)json_integer_value(json_object_get(ev, "ooms")),
           (long long)json_integer_value(json_object_get(ev, "timeouts")));
    const json_t *mem = json_object_get(a, "memory");
    if (mem) {
        const json_t *cpu = json_object_get(a, "cpu");
        printf("memory       p99 peak %.1f MB (%.0f%% of memory_mb): %s\n", num(mem, "peak_p99_mb"),
               num(mem, "used_ratio") * 100, str(mem, "verdict"));
        printf("cpu          %.2f ms CPU in %.2f ms per call at a share of %.3f cores: %s\n",
               num(cpu, "cpu_ms_per_call"), num(cpu, "duration_ms_per_call"), num(cpu, "share"),
               json_is_true(json_object_get(cpu, "cpu_bound")) ? "CPU-bound" : "not CPU-bound");
        const json_t *cur = json_object_get(a, "current"), *rec = json_object_get(a, "recommended");
        printf("current      %d MB, %.2f ms, %.6f %s per million calls\n",
               (int)json_integer_value(json_object_get(cur, "memory_mb")), num(cur, "duration_ms"),
               num(cur, "cost_per_million"), str(a, "currency"));
        printf("recommended  %d MB (%s), %.2f ms, %.6f %s per million calls\n",
               (int)json_integer_value(json_object_get(rec, "memory_mb")), str(rec, "change"),
               num(rec, "duration_ms"), num(rec, "cost_per_million"), str(a, "currency"));
    }
    printf("%s\n", str(a, "message"));
}

int cmd_advise(int argc, char **argv)
{
    static const struct option options[] = {
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool as_json = false;
    int opt;
    cli_getopt_begin(argc, argv, "advise");
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'h': fputs(advise_usage, stdout); return CLI_EXIT_OK;
        case OPT_JSON: as_json = true; break;
        default: return cli_usage_error("advise", advise_usage, NULL);
        }
    }
    const char *name;
    int rc = cli_last_operand(argc, argv, "advise", advise_usage, "NAME", &name);
    if (rc >= 0)
        return rc;
    cleanup_buf buf_t path = BUF_INIT;
    cli_function_path(&path, name, "/advice");
    if (as_json)
        return cli_get_and_print_json("advise", path.data);
    cleanup_json json_t *doc = NULL;
    if ((rc = cli_get_json("advise", path.data, &doc)) != CLI_EXIT_OK)
        return rc;
    print_advice(doc);
    return CLI_EXIT_OK;
}
