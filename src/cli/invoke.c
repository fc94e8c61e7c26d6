/* mayfly invoke NAME: calls a function (POST /v1/functions/NAME/invoke) with
 * an event and prints its result, or queues the event with --async. */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/json.h"
#include "registry/registry.h"

static const char invoke_usage[] =
    "usage: mayfly invoke NAME [--data JSON | --file F | -]\n"
    "                    [--async [--idempotency-key K]] [--tenant-id ID] [--verbose]\n"
    "\n"
    "Calls the function NAME with an event and prints its result on stdout.\n"
    "The event is sent as it is given, byte for byte; without --data, --file\n"
    "or -, it is {}. When the function fails (an exception, a timeout, running\n"
    "out of memory, a crash), its error JSON is printed on stdout, the error\n"
    "on stderr, and the exit code is 1.\n"
    "\n"
    "options:\n"
    "  --data JSON    the event\n"
    "  --file F       read the event from the file F\n"
    "  -              read the event from stdin\n"
    "  --async        queue the event and print its request id instead of\n"
    "                 waiting for the result\n"
    "  --idempotency-key K\n"
    "                 with --async: a repeat with the same key within 24 hours\n"
    "                 queues nothing and prints the first call's request id;\n"
    "                 K is 1-256 printable ASCII characters\n"
    "  --tenant-id ID the tenant id the call runs for, for a function with\n"
    "                 tenant isolation (\"tenancy\": \"per_tenant\"): 1-256 of\n"
    "                 letters, digits, spaces and ._:/=+-@\n"
    "  -v, --verbose  also print the request id, duration, billed time and\n"
    "                 whether the call started a new instance, on stderr;\n"
    "                 with --async, whether the idempotency key was seen before\n"
    "  -h, --help     show this help\n";

enum {
    OPT_DATA = 256,
    OPT_FILE,
    OPT_ASYNC,
    OPT_IDEMPOTENCY_KEY,
    OPT_TENANT_ID,
};

/* The server accepts the same keys; checking here too turns a typo into a
 * usage error rather than a round trip, and keeps control bytes out of the
 * request's headers. */
#define IDEMPOTENCY_KEY_MAX 256

static const struct option invoke_options[] = {
    { "data", required_argument, NULL, OPT_DATA },
    { "file", required_argument, NULL, OPT_FILE },
    { "async", no_argument, NULL, OPT_ASYNC },
    { "idempotency-key", required_argument, NULL, OPT_IDEMPOTENCY_KEY },
    { "tenant-id", required_argument, NULL, OPT_TENANT_ID },
    { "verbose", no_argument, NULL, 'v' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

static int read_stdin(buf_t *out, mf_error_t *err)
{
    char tmp[65536];
    for (;;) {
        ssize_t n = read(STDIN_FILENO, tmp, sizeof tmp);
        if (n == 0)
            return 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return mf_error_set(err, errno, "cannot read the event from stdin");
        }
        buf_add(out, tmp, (size_t)n);
    }
}

/* The call's metering, from the response headers, for --verbose. */
static void print_call_info(const client_response_t *resp)
{
    char id[128] = "-", duration[64] = "-", billed[64] = "-", cold[16] = "";
    client_response_header(resp, "X-Mayfly-Request-Id", id, sizeof id);
    client_response_header(resp, "X-Mayfly-Duration-Ms", duration, sizeof duration);
    client_response_header(resp, "X-Mayfly-Billed-Ms", billed, sizeof billed);
    client_response_header(resp, "X-Mayfly-Cold-Start", cold, sizeof cold);
    fprintf(stderr,
            "request id: %s\n"
            "duration:   %s ms\n"
            "billed:     %s ms\n"
            "start:      %s\n",
            id, duration, billed,
            !strcmp(cold, "1") ? "cold" : !strcmp(cold, "0") ? "warm" : "-");
}

/* Says on stderr what the function's error document says, in one line. */
static void print_function_error(const char *name, const buf_t *body)
{
    json_error_t jerr;
    cleanup_json json_t *doc = json_loadb(body->data, body->len, 0, &jerr);
    const char *type = json_string_value(json_object_get(doc, "errorType"));
    const char *message = json_string_value(json_object_get(doc, "errorMessage"));
    if (type && message)
        fprintf(stderr, "mayfly invoke: %s failed: %s: %s\n", name, type, message);
    else if (type || message)
        fprintf(stderr, "mayfly invoke: %s failed: %s\n", name, type ? type : message);
    else
        fprintf(stderr, "mayfly invoke: %s failed\n", name);
}

static bool idempotency_key_valid(const char *key)
{
    size_t n = strlen(key);
    if (n < 1 || n > IDEMPOTENCY_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (key[i] < 0x20 || key[i] > 0x7e)
            return false;
    return true;
}

static int print_queued(const client_response_t *resp, bool verbose)
{
    json_error_t jerr;
    cleanup_json json_t *doc = json_loadb(resp->body.data, resp->body.len, 0, &jerr);
    const char *id = json_string_value(json_object_get(doc, "request_id"));
    if (!id) {
        fprintf(stderr, "mayfly invoke: the server answered HTTP %ld without a request_id\n",
                resp->status);
        return CLI_EXIT_ERROR;
    }
    printf("%s\n", id);
    /* stdout stays the bare id either way, so a script's retry reads the
     * same thing; only --verbose says the event was not queued again. */
    if (verbose) {
        char replay[8] = "";
        client_response_header(resp, "X-Mayfly-Idempotent-Replay", replay, sizeof replay);
        fprintf(stderr, "request id: %s\nreplay:     %s\n", id,
                !strcmp(replay, "1") ? "yes (queued by an earlier call with this key)" : "no");
    }
    return CLI_EXIT_OK;
}

int cmd_invoke(int argc, char **argv)
{
    const char *data = NULL, *file = NULL, *idempotency_key = NULL,
               *tenant_id = NULL;
    bool async = false, verbose = false, from_stdin = false;
    int opt;

    cli_getopt_begin(argc, argv, "invoke");
    while ((opt = getopt_long(argc, argv, "hv", invoke_options, NULL)) != -1) {
        switch (opt) {
        case 'h':
            fputs(invoke_usage, stdout);
            return CLI_EXIT_OK;
        case 'v':
            verbose = true;
            break;
        case OPT_DATA:
            data = optarg;
            break;
        case OPT_FILE:
            file = optarg;
            break;
        case OPT_ASYNC:
            async = true;
            break;
        case OPT_IDEMPOTENCY_KEY:
            idempotency_key = optarg;
            break;
        case OPT_TENANT_ID:
            tenant_id = optarg;
            break;
        default:
            return cli_usage_error("invoke", invoke_usage, NULL);
        }
    }
    const char *name = NULL;
    for (int i = optind; i < argc; i++) {
        if (!strcmp(argv[i], "-") && !from_stdin)
            from_stdin = true;
        else if (!name)
            name = argv[i];
        else
            return cli_usage_error("invoke", invoke_usage, "unexpected argument `%s`", argv[i]);
    }
    if (!name)
        return cli_usage_error("invoke", invoke_usage, "missing NAME");
    if (!*name)
        return cli_usage_error("invoke", invoke_usage, "NAME is empty");
    if ((data != NULL) + (file != NULL) + from_stdin > 1)
        return cli_usage_error("invoke", invoke_usage,
                               "give the event one way only: --data, --file or -");
    if (idempotency_key && !async)
        return cli_usage_error("invoke", invoke_usage, "--idempotency-key needs --async");
    if (idempotency_key && !idempotency_key_valid(idempotency_key))
        return cli_usage_error("invoke", invoke_usage,
                               "--idempotency-key must be 1-%d printable ASCII characters",
                               IDEMPOTENCY_KEY_MAX);
    mf_error_t tid_err = MF_ERROR_INIT;
    if (tenant_id && fn_tenant_id_check("--tenant-id", tenant_id, &tid_err) < 0)
        return cli_usage_error("invoke", invoke_usage, "%s", tid_err.msg);

    mf_error_t err = MF_ERROR_INIT;
    cleanup_buf buf_t event = BUF_INIT;
    if (data) {
        buf_adds(&event, data);
    } else if (file) {
        int r = fs_read_file(file, &event, SIZE_MAX, &err);
        if (r < 0) {
            mf_error_set(&err, -r, "cannot read `%s`", file);
            fprintf(stderr, "mayfly invoke: %s\n", err.msg);
            return CLI_EXIT_ERROR;
        }
    } else if (from_stdin) {
        if (read_stdin(&event, &err) < 0) {
            fprintf(stderr, "mayfly invoke: %s\n", err.msg);
            return CLI_EXIT_ERROR;
        }
    } else {
        buf_adds(&event, "{}");
    }

    cleanup_buf buf_t path = BUF_INIT;
    cli_function_path(&path, name, "/invoke");
    client_header_t headers[4] = { { "Content-Type", "application/json" } };
    size_t nheaders = 1;
    if (async)
        headers[nheaders++] = (client_header_t){ "X-Mayfly-Invocation-Type", "Event" };
    if (idempotency_key)
        headers[nheaders++] = (client_header_t){ "X-Mayfly-Idempotency-Key", idempotency_key };
    if (tenant_id)
        headers[nheaders++] = (client_header_t){ "X-Amz-Tenant-Id", tenant_id };
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    if (cli_request("POST", path.data, event.data, event.len, headers, nheaders, &resp))
        return CLI_EXIT_ERROR;

    if (async) {
        if (resp.status != 202) {
            client_print_error(&resp);
            return CLI_EXIT_ERROR;
        }
        return print_queued(&resp, verbose);
    }
    if (resp.status != 200) {
        client_print_error(&resp);
        return CLI_EXIT_ERROR;
    }
    if (verbose)
        print_call_info(&resp);
    cli_print_body(&resp.body);
    if (client_response_header(&resp, "X-Mayfly-Function-Error", NULL, 0) == 0) {
        fflush(stdout);
        print_function_error(name, &resp.body);
        return CLI_EXIT_ERROR;
    }
    return CLI_EXIT_OK;
}
