/* mayfly deploy NAME PATH: packs a folder (or takes a .zip as it is) and
 * creates or updates the function with PUT /v1/functions/NAME. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "core/buf.h"
#include "core/cleanup.h"
#include "core/codec.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/json.h"
#include "core/xalloc.h"
#include "egress/policy.h"
#include "registry/registry.h"

static const char deploy_usage[] =
    "usage: mayfly deploy NAME PATH [--runtime RT] [--handler H] [--memory MB]\n"
    "                     [--timeout S] [--env K=V]... [--max-concurrency N] [--tmp-mb N]\n"
    "                     [--instance-concurrency N]\n"
    "                     [--log-format Text|JSON] [--log-level LEVEL]\n"
    "                     [--egress RULES]... [--permission KIND:NAME]...\n"
    "                     [--volume NAME:/mnt/DIR[:ro]]...\n"
    "                     [--tenancy per_tenant] [--max-instances-per-tenant N]\n"
    "                     [--keep-warm adaptive|fixed|default]\n"
    "\n"
    "Creates the function NAME, or updates it, from PATH: a folder (zipped on the\n"
    "fly, keeping executable bits and symlinks) or a .zip file sent as it is.\n"
    "On an update, a setting left out keeps its current value.\n"
    "\n"
    "options:\n"
    "  --runtime RT           python3, nodejs, java17, java21 or provided (Lambda names such as\n"
    "                         python3.12, nodejs20.x, provided.al2023 work too);\n"
    "                         required when the function is created\n"
    "  --handler H            module.function (python3), file.function (nodejs),\n"
    "                         package.Class::method or package.Class (java17, java21)\n"
    "  --memory MB            memory limit, 128-10240 (default 128)\n"
    "  --timeout S            time limit per invocation, 1-900 (default 3)\n"
    "  --env K=V              an environment variable; repeat for more\n"
    "  --max-concurrency N    calls at once, 0-1000 (default 10; 0 pauses it)\n"
    "  --instance-concurrency N\n"
    "                         calls one instance serves at once, 1-1600 (default 1)\n"
    "  --tmp-mb N             size of /tmp, 16-10240 (default 64)\n"
    "  --keep-warm P          how long idle instances stay warm: adaptive (learnt\n"
    "                         from the time between calls), fixed (the server's\n"
    "                         --idle-timeout) or default (the server's --keep-warm)\n"
    "  --log-format F         Text (default) or JSON: how the runtime writes log\n"
    "                         lines, as Lambda's LoggingConfig LogFormat\n"
    "  --log-level LEVEL      with JSON, the lowest level logged: TRACE, DEBUG, INFO\n"
    "                         (default), WARN, ERROR or FATAL; `default` resets it\n"
    "  --egress RULES         where the function may connect, comma-separated:\n"
    "                         HOST[:PORT], *.DOMAIN[:PORT], CIDR[:PORT] (IPv6 with a\n"
    "                         port in brackets: [2001:db8::/32]:443), or *[:PORT]\n"
    "                         for any public address; repeat to add more; `--egress ''`\n"
    "                         sets none (no network). Left out on create: the\n"
    "                         server's --default-egress (none unless set)\n"
    "  --permission P         what the function may reach through MAYFLY_API inside\n"
    "                         its sandbox: kv:STORE, invoke:FUNCTION, volume:VOLUME,\n"
    "                         topic:TOPIC (* matches any run of characters); repeat\n"
    "                         for more;\n"
    "                         `--permission ''` sets none (see docs/state.md)\n"
    "  --volume V             mount the shared volume NAME at /mnt/DIR, read-only\n"
    "                         with :ro (it needs the permission volume:NAME);\n"
    "                         repeat for more; `--volume ''` mounts none\n"
    "  --tenancy per_tenant   on create: Lambda's tenant isolation mode, each call\n"
    "                         names a tenant id (mayfly invoke --tenant-id) and runs\n"
    "                         on instances of that tenant id only; fixed once created\n"
    "  --max-instances-per-tenant N\n"
    "                         with it, instances one tenant id may hold, 1-1000\n"
    "                         (default: only --max-concurrency bounds them)\n"
    "  -h, --help             show this help\n";

enum {
    OPT_RUNTIME = 256,
    OPT_HANDLER,
    OPT_MEMORY,
    OPT_TIMEOUT,
    OPT_ENV,
    OPT_MAX_CONCURRENCY,
    OPT_TMP_MB,
    OPT_LOG_FORMAT,
    OPT_LOG_LEVEL,
    OPT_EGRESS,
    OPT_PERMISSION,
    OPT_VOLUME,
    OPT_TENANCY,
    OPT_MAX_INSTANCES_PER_TENANT,
    OPT_KEEP_WARM,
    OPT_INSTANCE_CONCURRENCY,
};

static const struct option deploy_options[] = {
    {"runtime", required_argument, NULL, OPT_RUNTIME},
    {"handler", required_argument, NULL, OPT_HANDLER},
    {"memory", required_argument, NULL, OPT_MEMORY},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"env", required_argument, NULL, OPT_ENV},
    {"max-concurrency", required_argument, NULL, OPT_MAX_CONCURRENCY},
    {"tmp-mb", required_argument, NULL, OPT_TMP_MB},
    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"egress", required_argument, NULL, OPT_EGRESS},
    {"permission", required_argument, NULL, OPT_PERMISSION},
    {"volume", required_argument, NULL, OPT_VOLUME},
    {"tenancy", required_argument, NULL, OPT_TENANCY},
    {"max-instances-per-tenant", required_argument, NULL, OPT_MAX_INSTANCES_PER_TENANT},
    {"keep-warm", required_argument, NULL, OPT_KEEP_WARM},
    {"instance-concurrency", required_argument, NULL, OPT_INSTANCE_CONCURRENCY},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void archive_discardp(zip_t **za)
{
    if (*za)
        zip_discard(*za);
}

static void source_freep(zip_source_t **src)
{
    if (*src)
        zip_source_free(*src);
}

static int pack_fail(mf_error_t *err, zip_t *za, const char *what, const char *name)
{
    return mf_error_set(err, 0, "cannot zip `%s`: %s: %s", name, what, zip_strerror(za));
}

static int name_cmp(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int not_dots(const struct dirent *d)
{
    return strcmp(d->d_name, ".") && strcmp(d->d_name, "..");
}

/* Sets the Unix mode (type and permission bits) and mtime an unzip will
 * restore; the mode is what keeps `bootstrap` executable. */
static int pack_set_attrs(zip_t *za, zip_int64_t idx, mode_t mode, time_t mtime, const char *name,
                          mf_error_t *err)
{
    if (zip_file_set_external_attributes(za, (zip_uint64_t)idx, 0, ZIP_OPSYS_UNIX,
                                         (zip_uint32_t)mode << 16) < 0)
        return pack_fail(err, za, "set attributes", name);
    if (zip_file_set_mtime(za, (zip_uint64_t)idx, mtime, 0) < 0)
        return pack_fail(err, za, "set mtime", name);
    return 0;
}

static int pack_add_symlink(zip_t *za, const char *path, const char *name, const struct stat *st,
                            mf_error_t *err)
{
    char target[PATH_MAX];
    ssize_t n = readlink(path, target, sizeof target);
    if (n < 0)
        return mf_error_set(err, errno, "cannot read the symlink `%s`", path);
    if ((size_t)n >= sizeof target)
        return mf_error_set(err, ENAMETOOLONG, "cannot read the symlink `%s`", path);
    /* libzip frees the copy with the source (freep = 1). */
    char *copy = xstrndup(target, (size_t)n);
    zip_source_t *src = zip_source_buffer(za, copy, (zip_uint64_t)n, 1);
    if (!src) {
        free(copy);
        return pack_fail(err, za, "buffer", name);
    }
    zip_int64_t idx = zip_file_add(za, name, src, ZIP_FL_ENC_GUESS);
    if (idx < 0) {
        zip_source_free(src);
        return pack_fail(err, za, "add", name);
    }
    if (zip_set_file_compression(za, (zip_uint64_t)idx, ZIP_CM_STORE, 0) < 0)
        return pack_fail(err, za, "set compression", name);
    return pack_set_attrs(za, idx, S_IFLNK | 0777, st->st_mtime, name, err);
}

static int pack_add_file(zip_t *za, const char *path, const char *name, const struct stat *st,
                         mf_error_t *err)
{
    /* libzip reads the file only in zip_close; opening it now reports an
     * unreadable file by its name instead of as a failed close. */
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mf_error_set(err, errno, "cannot read `%s`", path);
    zip_source_t *src = zip_source_file(za, path, 0, -1);
    if (!src)
        return pack_fail(err, za, "open", name);
    zip_int64_t idx = zip_file_add(za, name, src, ZIP_FL_ENC_GUESS);
    if (idx < 0) {
        zip_source_free(src);
        return pack_fail(err, za, "add", name);
    }
    return pack_set_attrs(za, idx, S_IFREG | (st->st_mode & 07777), st->st_mtime, name, err);
}

/* Adds everything under root/rel to the archive, names relative to root,
 * in a stable (sorted) order so the same folder packs the same way. */
static int pack_add_tree(zip_t *za, const char *root, const char *rel, mf_error_t *err)
{
    cleanup_free char *dir = *rel ? xasprintf("%s/%s", root, rel) : xstrdup(root);
    struct dirent **list = NULL;
    int n = scandir(dir, &list, not_dots, name_cmp);
    if (n < 0)
        return mf_error_set(err, errno, "cannot read `%s`", dir);

    int ret = 0;
    for (int i = 0; i < n; i++) {
        const char *base = list[i]->d_name;
        if (ret < 0)
            continue;
        cleanup_free char *path = xasprintf("%s/%s", dir, base);
        cleanup_free char *name = *rel ? xasprintf("%s/%s", rel, base) : xstrdup(base);
        struct stat st;
        if (lstat(path, &st) < 0) {
            ret = mf_error_set(err, errno, "cannot read `%s`", path);
        } else if (S_ISDIR(st.st_mode)) {
            cleanup_free char *dname = xasprintf("%s/", name);
            zip_int64_t idx = zip_dir_add(za, name, ZIP_FL_ENC_GUESS);
            if (idx < 0)
                ret = pack_fail(err, za, "add", dname);
            else
                ret = pack_set_attrs(za, idx, S_IFDIR | (st.st_mode & 07777), st.st_mtime, dname,
                                     err);
            if (ret == 0)
                ret = pack_add_tree(za, root, name, err);
        } else if (S_ISREG(st.st_mode)) {
            ret = pack_add_file(za, path, name, &st, err);
        } else if (S_ISLNK(st.st_mode)) {
            ret = pack_add_symlink(za, path, name, &st, err);
        } else {
            fprintf(stderr, "mayfly deploy: skipping `%s`: not a file, folder or symlink\n", path);
        }
    }
    for (int i = 0; i < n; i++)
        free(list[i]);
    free(list);
    return ret;
}

/* Zips the folder in memory and appends the archive's bytes to out. */
static int pack_folder(const char *folder, buf_t *out, mf_error_t *err)
{
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *fresh = zip_source_buffer_create(NULL, 0, 0, &ze);
    if (!fresh) {
        mf_error_set(err, 0, "cannot create a zip in memory: %s", zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return -ENOMEM;
    }
    __attribute__((cleanup(archive_discardp))) zip_t *za =
        zip_open_from_source(fresh, ZIP_TRUNCATE, &ze);
    if (!za) {
        mf_error_set(err, 0, "cannot create a zip in memory: %s", zip_error_strerror(&ze));
        zip_error_fini(&ze);
        zip_source_free(fresh);
        return -ENOMEM;
    }
    zip_error_fini(&ze);
    /* The archive drops its reference when closed; this one keeps the
     * buffer alive so the finished bytes can be read back. */
    __attribute__((cleanup(source_freep))) zip_source_t *src = fresh;
    zip_source_keep(src);

    int r = pack_add_tree(za, folder, "", err);
    if (r < 0)
        return r;
    if (zip_get_num_entries(za, 0) == 0)
        return mf_error_set(err, 0, "nothing to deploy: `%s` is an empty folder", folder);
    if (zip_close(za) < 0)
        return mf_error_set(err, 0, "cannot zip `%s`: %s", folder, zip_strerror(za));
    za = NULL;

    if (zip_source_open(src) < 0)
        return mf_error_set(err, 0, "cannot read the zip back: %s",
                            zip_error_strerror(zip_source_error(src)));
    char tmp[65536];
    zip_int64_t n;
    while ((n = zip_source_read(src, tmp, sizeof tmp)) > 0)
        buf_add(out, tmp, (size_t)n);
    zip_source_close(src);
    if (n < 0)
        return mf_error_set(err, 0, "cannot read the zip back: %s",
                            zip_error_strerror(zip_source_error(src)));
    return 0;
}

/* The request body: the settings the user gave, then the code. The code is
 * appended by hand because it is by far the largest part and base64 needs
 * no JSON escaping; handing tens of MiB through jansson would only copy and
 * re-scan it. */
static void build_body(buf_t *body, const json_t *settings, const buf_t *zip)
{
    json_dump_buf(body, settings);
    /* body is "{}" or "{...}": reopen the object to add "code". */
    body->len--;
    if (body->len > 1)
        buf_addch(body, ',');
    buf_adds(body, "\"code\":{\"zip_base64\":\"");
    codec_base64_encode(body, zip->data, zip->len);
    buf_adds(body, "\"}}");
}

static int print_result(const char *name, const client_response_t *resp)
{
    json_error_t jerr;
    cleanup_json json_t *fn = json_loadb(resp->body.data, resp->body.len, 0, &jerr);
    json_t *version = json_object_get(fn, "version");
    const char *sha = json_string_value(json_object_get(fn, "code_sha256"));
    if (!json_is_integer(version) || !sha) {
        fprintf(stderr,
                "mayfly deploy: the server answered HTTP %ld without the function's "
                "version and code_sha256\n",
                resp->status);
        return CLI_EXIT_ERROR;
    }
    printf("deployed %s version %" JSON_INTEGER_FORMAT " (code sha256 %.12s%s, %s)\n", name,
           json_integer_value(version), sha, strlen(sha) > 12 ? "…" : "",
           resp->status == 201 ? "created" : "updated");
    return CLI_EXIT_OK;
}

int cmd_deploy(int argc, char **argv)
{
    cleanup_json json_t *settings = json_object();
    cleanup_json json_t *env = NULL;
    cleanup_json json_t *egress = NULL;
    cleanup_json json_t *permissions = NULL;
    cleanup_json json_t *volumes = NULL;
    int opt;

    cli_getopt_begin(argc, argv, "deploy");
    while ((opt = getopt_long(argc, argv, "h", deploy_options, NULL)) != -1) {
        int v;
        const char *field = NULL, *flag = NULL;
        switch (opt) {
        case 'h': fputs(deploy_usage, stdout); return CLI_EXIT_OK;
        case OPT_RUNTIME:
        case OPT_HANDLER:
        case OPT_LOG_FORMAT:
        case OPT_LOG_LEVEL:
        case OPT_KEEP_WARM: {
            /* The server checks the values and names what it accepts. */
            static const char *const keys[][2] = {
                {"runtime", "runtime"},       {"handler", "handler"},
                {"log_format", "log-format"}, {"log_level", "log-level"},
                {"keep_warm", "keep-warm"},
            };
            const char *const *key = keys[opt == OPT_RUNTIME      ? 0
                                          : opt == OPT_HANDLER    ? 1
                                          : opt == OPT_LOG_FORMAT ? 2
                                          : opt == OPT_LOG_LEVEL  ? 3
                                                                  : 4];
            json_t *val = (opt == OPT_LOG_LEVEL || opt == OPT_KEEP_WARM) && !strcmp(optarg, "default")
                              ? json_null()
                              : json_string(optarg);
            if (!val)
                return cli_usage_error("deploy", deploy_usage, "--%s: not valid UTF-8", key[1]);
            json_object_set_new(settings, key[0], val);
            break;
        }
        case OPT_MEMORY: field = "memory_mb", flag = "memory"; break;
        case OPT_TIMEOUT: field = "timeout_s", flag = "timeout"; break;
        case OPT_MAX_CONCURRENCY: field = "max_concurrency", flag = "max-concurrency"; break;
        case OPT_TMP_MB: field = "tmp_mb", flag = "tmp-mb"; break;
        case OPT_INSTANCE_CONCURRENCY:
            field = "instance_concurrency", flag = "instance-concurrency";
            break;
        case OPT_MAX_INSTANCES_PER_TENANT:
            field = "max_instances_per_tenant", flag = "max-instances-per-tenant";
            break;
        case OPT_TENANCY:
            if (strcmp(optarg, FN_TENANCY_PER_TENANT))
                return cli_usage_error("deploy", deploy_usage,
                                       "--tenancy: the one mode is per_tenant, not `%s`", optarg);
            json_object_set_new(settings, "tenancy", json_string(optarg));
            break;
        case OPT_ENV: {
            const char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg)
                return cli_usage_error("deploy", deploy_usage, "--env expects KEY=VALUE, got `%s`",
                                       optarg);
            if (!env)
                env = json_object();
            cleanup_free char *key = xstrndup(optarg, (size_t)(eq - optarg));
            json_t *val = json_string(eq + 1);
            if (!val)
                return cli_usage_error("deploy", deploy_usage,
                                       "--env %s: the value is not valid UTF-8", key);
            json_object_set_new(env, key, val);
            break;
        }
        case OPT_EGRESS: {
            /* Checked here with the server's own parser, so a typo is a
             * usage error before a package is zipped and sent. */
            egress_policy_t p;
            mf_error_t err = MF_ERROR_INIT;
            if (egress_policy_from_list(optarg, &p, &err) < 0)
                return cli_usage_error("deploy", deploy_usage, "--egress: %s", err.msg);
            if (!egress)
                egress = json_array();
            json_t *rules = egress_policy_to_json(&p);
            json_array_extend(egress, rules);
            json_decref(rules);
            egress_policy_free(&p);
            break;
        }
        case OPT_PERMISSION:
            /* The server checks each one and names a bad one. */
            if (!permissions)
                permissions = json_array();
            if (*optarg && json_array_append_new(permissions, json_string(optarg)) < 0)
                return cli_usage_error("deploy", deploy_usage, "--permission: not valid UTF-8");
            break;
        case OPT_VOLUME: {
            if (!volumes)
                volumes = json_array();
            if (!*optarg)
                break;
            /* NAME:/mnt/DIR[:ro] */
            const char *colon = strchr(optarg, ':');
            if (!colon || colon == optarg || colon[1] != '/')
                return cli_usage_error("deploy", deploy_usage,
                                       "--volume expects NAME:/mnt/DIR[:ro], got `%s`", optarg);
            cleanup_free char *vname = xstrndup(optarg, (size_t)(colon - optarg));
            cleanup_free char *vpath = xstrdup(colon + 1);
            bool ro = false;
            size_t n = strlen(vpath);
            if (n > 3 && !strcmp(vpath + n - 3, ":ro")) {
                vpath[n - 3] = '\0';
                ro = true;
            }
            json_t *m =
                json_pack("{s:s?, s:s?, s:b}", "name", vname, "path", vpath, "read_only", ro);
            if (!m)
                return cli_usage_error("deploy", deploy_usage, "--volume: not valid UTF-8");
            json_array_append_new(volumes, m);
            break;
        }
        default: return cli_usage_error("deploy", deploy_usage, NULL);
        }
        if (field) {
            if (!cli_parse_int(optarg, &v))
                return cli_usage_error("deploy", deploy_usage, "--%s expects an integer, got `%s`",
                                       flag, optarg);
            json_object_set_new(settings, field, json_integer(v));
        }
    }
    if (env)
        json_object_set(settings, "env", env);
    if (permissions)
        json_object_set(settings, "permissions", permissions);
    if (volumes)
        json_object_set(settings, "volumes", volumes);
    if (egress) {
        /* The flags together: each rule once, at most EGRESS_MAX_RULES. */
        egress_policy_t p;
        mf_error_t err = MF_ERROR_INIT;
        if (json_array_size(egress) > EGRESS_MAX_RULES)
            return cli_usage_error("deploy", deploy_usage,
                                   "--egress: at most %d rules in all, not %zu", EGRESS_MAX_RULES,
                                   json_array_size(egress));
        if (egress_policy_from_json(egress, &p, &err) < 0)
            return cli_usage_error("deploy", deploy_usage, "--egress: %s", err.msg);
        json_object_set_new(settings, "egress", egress_policy_to_json(&p));
        egress_policy_free(&p);
    }
    if (argc - optind < 2)
        return cli_usage_error("deploy", deploy_usage, "%s",
                               argc - optind == 0 ? "missing NAME and PATH" : "missing PATH");
    if (argc - optind > 2)
        return cli_usage_error("deploy", deploy_usage, "unexpected argument `%s`",
                               argv[optind + 2]);
    const char *name = argv[optind];
    const char *path = argv[optind + 1];
    if (!*name)
        return cli_usage_error("deploy", deploy_usage, "NAME is empty");

    mf_error_t err = MF_ERROR_INIT;
    cleanup_buf buf_t zip = BUF_INIT;
    struct stat st;
    if (stat(path, &st) < 0) {
        mf_error_set(&err, errno, "cannot read `%s`", path);
        fprintf(stderr, "mayfly deploy: %s\n", err.msg);
        return CLI_EXIT_ERROR;
    }
    int r = S_ISDIR(st.st_mode) ? pack_folder(path, &zip, &err)
                                : fs_read_file(path, &zip, SIZE_MAX, &err);
    if (r < 0) {
        if (!S_ISDIR(st.st_mode))
            mf_error_set(&err, -r, "cannot read `%s`", path);
        fprintf(stderr, "mayfly deploy: %s\n", err.msg);
        return CLI_EXIT_ERROR;
    }

    cleanup_buf buf_t body = BUF_INIT;
    build_body(&body, settings, &zip);
    buf_release(&zip);

    cleanup_buf buf_t url = BUF_INIT;
    cli_function_path(&url, name, NULL);
    const client_header_t headers[] = {{"Content-Type", "application/json"}};
    cleanup_response client_response_t resp = CLIENT_RESPONSE_INIT;
    if (cli_request("PUT", url.data, body.data, body.len, headers, 1, &resp))
        return CLI_EXIT_ERROR;
    if (resp.status != 200 && resp.status != 201) {
        client_print_error(&resp);
        return CLI_EXIT_ERROR;
    }
    return print_result(name, &resp);
}
