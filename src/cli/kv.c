/* mayfly kv get|put|rm|ls: the key-value stores (/v1/kv/…) from the shell.
 * get writes the value's bytes to stdout as they are; put reads them from
 * an argument or stdin. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "core/buf.h"
#include "core/json.h"

static const char kv_usage[] =
    "usage: mayfly kv get STORE KEY\n"
    "       mayfly kv put STORE KEY [VALUE|-] [--ttl S] [--if-version V] [--content-type T]\n"
    "       mayfly kv rm STORE KEY [--if-version V]\n"
    "       mayfly kv ls [STORE] [--prefix P] [--json]\n"
    "\n"
    "Reads and writes the server's key-value stores.\n"
    "\n"
    "  get   prints the value of KEY, its bytes as they are\n"
    "  put   sets KEY to VALUE, or to what stdin holds (no VALUE, or -), and\n"
    "        prints the version written; a VALUE that starts with '-' goes\n"
    "        after `--`\n"
    "  rm    deletes KEY\n"
    "  ls    lists the keys of STORE (every page), or with no STORE the stores\n"
    "\n"
    "options:\n"
    "  --ttl S            put: the key expires S seconds from now (1-31536000)\n"
    "  --if-version V     put, rm: only if KEY is at version V (else exit 1)\n"
    "  --content-type T   put: the value's type (default application/octet-stream)\n"
    "  --prefix P         ls: only keys that start with P\n"
    "  --json             ls: print the server's JSON (one page a line)\n"
    "  -h, --help         show this help\n";

enum {
    OPT_TTL = 256,
    OPT_IF_VERSION,
    OPT_CONTENT_TYPE,
    OPT_PREFIX,
    OPT_JSON,
};

static const struct option kv_options[] = {
    {"ttl", required_argument, NULL, OPT_TTL},
    {"if-version", required_argument, NULL, OPT_IF_VERSION},
    {"content-type", required_argument, NULL, OPT_CONTENT_TYPE},
    {"prefix", required_argument, NULL, OPT_PREFIX},
    {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

typedef struct kv_args {
    const char *sub; /* get, put, rm, ls */
    const char *store, *key, *value;
    const char *ttl, *if_version, *content_type, *prefix;
    bool json;
} kv_args_t;

/* A whole positive decimal number, kept as the text given. */
static bool positive(const char *s, long long max)
{
    if (!*s || *s == '0' || strspn(s, "0123456789") != strlen(s) || strlen(s) > 18)
        return false;
    return strtoll(s, NULL, 10) <= max;
}

static void kv_path(buf_t *out, const char *store, const char *key, const char *suffix)
{
    buf_adds(out, "/v1/kv");
    if (store) {
        buf_addch(out, '/');
        cli_url_encode(out, store);
    }
    if (key) {
        buf_addch(out, '/');
        cli_url_encode(out, key);
    }
    if (suffix)
        buf_adds(out, suffix);
}

/* Sends the request and prints the server's error for any status but ok. */
static int kv_call(const char *method, const char *path, const buf_t *body,
                   const client_header_t *headers, size_t nheaders, long ok,
                   client_response_t *resp)
{
    if (cli_request(method, path, body ? body->data : NULL, body ? body->len : 0, headers, nheaders,
                    resp))
        return CLI_EXIT_ERROR;
    if (resp->status != ok) {
        client_print_error(resp);
        return CLI_EXIT_ERROR;
    }
    return CLI_EXIT_OK;
}

static int kv_get(const kv_args_t *a)
{
    cleanup_buf buf_t path = BUF_INIT;
    kv_path(&path, a->store, a->key, NULL);
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    int rc = kv_call("GET", path.data, NULL, NULL, 0, 200, &resp);
    if (rc == CLI_EXIT_OK && fwrite(resp.body.data, 1, resp.body.len, stdout) != resp.body.len) {
        fprintf(stderr, "mayfly kv get: cannot write the value: %s\n", strerror(errno));
        return CLI_EXIT_ERROR;
    }
    return rc;
}

static int read_stdin(buf_t *out)
{
    char tmp[65536];
    for (;;) {
        ssize_t n = read(STDIN_FILENO, tmp, sizeof tmp);
        if (n == 0)
            return 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "mayfly kv put: cannot read the value from stdin: %s\n",
                    strerror(errno));
            return CLI_EXIT_ERROR;
        }
        buf_add(out, tmp, (size_t)n);
    }
}

static int kv_put(const kv_args_t *a)
{
    cleanup_buf buf_t value = BUF_INIT;
    if (!a->value || !strcmp(a->value, "-")) {
        int rc = read_stdin(&value);
        if (rc)
            return rc;
    } else {
        buf_adds(&value, a->value);
    }
    cleanup_buf buf_t path = BUF_INIT, match = BUF_INIT;
    kv_path(&path, a->store, a->key, NULL);
    /* Always a type: libcurl would otherwise say the bytes are a form. */
    client_header_t headers[3] = {
        {"Content-Type", a->content_type ? a->content_type : "application/octet-stream"},
    };
    size_t n = 1;
    if (a->ttl)
        headers[n++] = (client_header_t){"X-Mayfly-TTL", a->ttl};
    if (a->if_version) {
        buf_addf(&match, "\"%s\"", a->if_version);
        headers[n++] = (client_header_t){"If-Match", match.data};
    }
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    int rc = kv_call("PUT", path.data, &value, headers, n, 200, &resp);
    if (rc != CLI_EXIT_OK)
        return rc;
    json_error_t jerr;
    cleanup_json json_t *doc = json_loadb(resp.body.data, resp.body.len, 0, &jerr);
    json_t *version = json_object_get(doc, "version");
    if (!json_is_integer(version)) {
        fprintf(stderr, "mayfly kv put: the server answered without a version\n");
        return CLI_EXIT_ERROR;
    }
    printf("%" JSON_INTEGER_FORMAT "\n", json_integer_value(version));
    return CLI_EXIT_OK;
}

static int kv_rm(const kv_args_t *a)
{
    cleanup_buf buf_t path = BUF_INIT, match = BUF_INIT;
    kv_path(&path, a->store, a->key, NULL);
    client_header_t header = {"If-Match", NULL};
    if (a->if_version) {
        buf_addf(&match, "\"%s\"", a->if_version);
        header.value = match.data;
    }
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    int rc = kv_call("DELETE", path.data, NULL, &header, a->if_version ? 1 : 0, 204, &resp);
    if (rc == CLI_EXIT_OK)
        printf("deleted %s/%s\n", a->store, a->key);
    return rc;
}

#define KEY_COLS 4
static const char *const key_header[KEY_COLS] = {"KEY", "VERSION", "SIZE", "EXPIRES"};

static void key_row(buf_t *cells, const json_t *k)
{
    cli_cell_string(&cells[0], json_object_get(k, "key"));
    cli_cell_number(&cells[1], json_object_get(k, "version"));
    cli_cell_number(&cells[2], json_object_get(k, "size"));
    cli_cell_string(&cells[3], json_object_get(k, "expires"));
}

#define STORE_COLS 3
static const char *const store_header[STORE_COLS] = {"STORE", "KEYS", "BYTES"};

static void store_row(buf_t *cells, const json_t *s)
{
    cli_cell_string(&cells[0], json_object_get(s, "name"));
    cli_cell_number(&cells[1], json_object_get(s, "keys"));
    cli_cell_number(&cells[2], json_object_get(s, "bytes"));
}

static int kv_ls_stores(const kv_args_t *a)
{
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    int rc = kv_call("GET", "/v1/kv", NULL, NULL, 0, 200, &resp);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (a->json) {
        cli_print_body(&resp.body);
        return CLI_EXIT_OK;
    }
    return cli_print_json_list(&resp, "kv ls", "stores", STORE_COLS, store_header, store_row);
}

/* Every page of the store's keys, one table (or one JSON page a line). */
static int kv_ls(const kv_args_t *a)
{
    if (!a->store)
        return kv_ls_stores(a);
    cleanup_json json_t *all = json_array();
    cleanup_buf buf_t cursor = BUF_INIT;
    for (;;) {
        cleanup_buf buf_t path = BUF_INIT;
        kv_path(&path, a->store, NULL, NULL);
        cli_query_add(&path, "limit", "1000");
        if (a->prefix)
            cli_query_add(&path, "prefix", a->prefix);
        if (cursor.len)
            cli_query_add(&path, "cursor", cursor.data);
        cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
        int rc = kv_call("GET", path.data, NULL, NULL, 0, 200, &resp);
        if (rc != CLI_EXIT_OK)
            return rc;
        if (a->json)
            cli_print_body(&resp.body);
        json_error_t jerr;
        cleanup_json json_t *doc = json_loadb(resp.body.data, resp.body.len, 0, &jerr);
        json_t *keys = json_object_get(doc, "keys");
        if (!json_is_array(keys)) {
            fprintf(stderr, "mayfly kv ls: the server's answer has no \"keys\" list\n");
            return CLI_EXIT_ERROR;
        }
        json_array_extend(all, keys);
        const char *next = json_string_value(json_object_get(doc, "next"));
        if (!next)
            break;
        buf_reset(&cursor);
        buf_adds(&cursor, next);
    }
    if (!a->json)
        cli_print_json_array(all, KEY_COLS, key_header, key_row);
    return CLI_EXIT_OK;
}

static int kv_parse(int argc, char **argv, kv_args_t *a, char *cmd)
{
    int opt;
    cli_getopt_begin(argc, argv, cmd);
    while ((opt = getopt_long(argc, argv, "h", kv_options, NULL)) != -1) {
        switch (opt) {
        case 'h': fputs(kv_usage, stdout); return CLI_EXIT_OK;
        case OPT_TTL:
            if (!positive(optarg, 31536000))
                return cli_usage_error(cmd, kv_usage,
                                       "--ttl expects whole seconds from 1 to 31536000, got `%s`",
                                       optarg);
            a->ttl = optarg;
            break;
        case OPT_IF_VERSION:
            if (!positive(optarg, INT64_MAX))
                return cli_usage_error(cmd, kv_usage,
                                       "--if-version expects a version (a positive integer), "
                                       "got `%s`",
                                       optarg);
            a->if_version = optarg;
            break;
        case OPT_CONTENT_TYPE: a->content_type = optarg; break;
        case OPT_PREFIX: a->prefix = optarg; break;
        case OPT_JSON: a->json = true; break;
        default: return cli_usage_error(cmd, kv_usage, NULL);
        }
    }
    const char **want[3] = {&a->store, &a->key, &a->value};
    size_t min = 2, max = 2;
    bool put = !strcmp(a->sub, "put"), rm = !strcmp(a->sub, "rm"), ls = !strcmp(a->sub, "ls");
    if (put)
        max = 3;
    if (ls)
        min = 0, max = 1;
    size_t n = (size_t)(argc - optind);
    if (n < min)
        return cli_usage_error(cmd, kv_usage, "missing %s", n == 0 ? "STORE" : "KEY");
    if (n > max)
        return cli_usage_error(cmd, kv_usage, "unexpected argument `%s`", argv[optind + max]);
    for (size_t i = 0; i < n; i++) {
        if (i < 2 && !*argv[optind + i])
            return cli_usage_error(cmd, kv_usage, "%s is empty", i ? "KEY" : "STORE");
        *want[i] = argv[optind + i];
    }
    if ((a->ttl || a->content_type) && !put)
        return cli_usage_error(cmd, kv_usage, "--ttl and --content-type go with put only");
    if (a->if_version && !put && !rm)
        return cli_usage_error(cmd, kv_usage, "--if-version goes with put and rm only");
    if ((a->prefix || a->json) && !ls)
        return cli_usage_error(cmd, kv_usage, "--prefix and --json go with ls only");
    return -1;
}

int cmd_kv(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(const kv_args_t *a);
    } subs[] = {{"get", kv_get}, {"put", kv_put}, {"rm", kv_rm}, {"ls", kv_ls}};
    if (argc < 2)
        return cli_usage_error("kv", kv_usage, "missing the operation (get, put, rm or ls)");
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(kv_usage, stdout);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        if (strcmp(argv[1], subs[i].name))
            continue;
        kv_args_t a = {.sub = subs[i].name};
        char cmd[16];
        snprintf(cmd, sizeof cmd, "kv %s", subs[i].name);
        int rc = kv_parse(argc - 1, argv + 1, &a, cmd);
        if (rc >= 0)
            return rc;
        return subs[i].fn(&a);
    }
    return cli_usage_error("kv", kv_usage, "unknown operation `%s` (get, put, rm or ls)", argv[1]);
}
