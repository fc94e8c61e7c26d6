/* One instance: a sandbox running a function's runtime, its Runtime API
 * endpoint, its log pipes, and its deadline and idle timers. */
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/json.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "exec/exec_internal.h"
#include "registry/jvm.h"

/* A line longer than this is cut into pieces of this size. */
#define LOG_LINE_MAX (64 * 1024)

static const http_server_config_t runtime_api_config = {
    .max_connections = 16,
    .header_timeout_ms = 30000,
    /* The runtime's connection is idle while its handler runs, which may
     * be up to the longest timeout (900 s): closing it then would make the
     * runtime post its result on a new one. */
    .keepalive_timeout_ms = 1000 * 1000,
    /* The runtime is killed before its API closes: nothing to wait for. */
    .shutdown_grace_ms = 1000,
};

static void on_handle_closed(uv_handle_t *h);
static void on_log_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b);
static void on_log_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

/* ---- states and counts --------------------------------------------------- */

static unsigned *state_counter(exec_pool_t *p, exec_inst_state_t s)
{
    switch (s) {
    case INST_STARTING: return &p->n_starting;
    case INST_IDLE: return &p->n_idle;
    case INST_BUSY: return &p->n_busy;
    default: return &p->n_stopping;
    }
}

void exec__instance_set_state(exec_instance_t *inst, exec_inst_state_t state)
{
    exec_pool_t *p = inst->pool;
    if (inst->state == state)
        return;
    if (inst->state == INST_IDLE)
        uv_timer_stop(&inst->timer); /* the idle timeout */
    uint64_t now = clock_mono_ns();
    exec__idle_account(inst, now, false);
    if (state == INST_STOPPING)
        p->ex->memory_stopping_mb += inst->memory_mb;
    (*state_counter(p, inst->state))--;
    (*state_counter(p, state))++;
    bool was_starting = inst->state == INST_STARTING;
    if (inst->state == INST_BUSY)
        p->ex->n_busy_all--;
    if (state == INST_BUSY) {
        p->ex->n_busy_all++;
        exec__busy_kick(p->ex);
    }
    inst->state = state;
    if (was_starting) {
        p->ex->n_starting_all--;
        exec__start_room(p->ex);
    }
    if (state == INST_IDLE)
        inst->idle_acct_ns = now;
}

void exec__idle_stack_remove(exec_instance_t *inst)
{
    for (exec_instance_t **pp = &inst->pool->idle; *pp; pp = &(*pp)->next_idle) {
        if (*pp == inst) {
            *pp = inst->next_idle;
            inst->next_idle = NULL;
            return;
        }
    }
}

/* ---- environment ----------------------------------------------------------- */

static void env_add(char ***env, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void env_add(char ***env, size_t *n, const char *fmt, ...)
{
    va_list ap;
    buf_t b = BUF_INIT;
    va_start(ap, fmt);
    buf_vaddf(&b, fmt, ap);
    va_end(ap);
    *env = xrealloc(*env, (*n + 2) * sizeof **env);
    (*env)[(*n)++] = buf_detach(&b, NULL);
    (*env)[*n] = NULL;
}

static void strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* What the runtime needs from its very start (the interpreter reads it
 * once): shared by a function's environment and a zygote's. */
static void env_runtime(char ***env, size_t *n, const char *runtime)
{
    env_add(env, n, "TZ=:UTC");
    env_add(env, n, "LANG=en_US.UTF-8");
    env_add(env, n, "PATH=/usr/local/bin:/usr/bin/:/bin:/opt/bin");
    /* Lambda's list names folders this sandbox does not have (/var/lang,
     * /opt) or that hold no libraries; the dynamic loader probes each one
     * for every library of every start. The package's own lib/ is what a
     * function ships native libraries in. */
    env_add(env, n, "LD_LIBRARY_PATH=/var/task/lib");
    env_add(env, n, "LAMBDA_TASK_ROOT=/var/task");
    env_add(env, n, "LAMBDA_RUNTIME_DIR=/var/runtime");
    if (!strcmp(runtime, "python3")) {
        env_add(env, n, "PYTHONUNBUFFERED=1");
        env_add(env, n, "PYTHONDONTWRITEBYTECODE=1");
    } else if (!strcmp(runtime, "nodejs")) {
        env_add(env, n, "NODE_PATH=/opt/nodejs/node_modules:/var/runtime/node_modules:"
                        "/var/task/node_modules");
    }
}

/* The environment a Lambda function expects, then the function's own. */
static char **build_env(const exec_instance_t *inst, const exec_t *ex, const fn_t *fn)
{
    char **env = NULL;
    size_t n = 0;
    char day[16];
    int64_t now = clock_wall_ms();
    char iso[32];
    clock_format_iso8601(now, iso, sizeof iso);
    snprintf(day, sizeof day, "%.4s/%.2s/%.2s", iso, iso + 5, iso + 8);

    env_runtime(&env, &n, fn->runtime);
    env_add(&env, &n, "AWS_LAMBDA_RUNTIME_API=127.0.0.1:%d", SANDBOX_API_PORT);
    /* The platform's API, through the same listener (docs/state.md). */
    env_add(&env, &n, "MAYFLY_API=http://127.0.0.1:%d/mayfly/v1", SANDBOX_API_PORT);
    env_add(&env, &n, "_HANDLER=%s", fn->handler);
    env_add(&env, &n, "AWS_LAMBDA_FUNCTION_NAME=%s", fn->name);
    env_add(&env, &n, "AWS_LAMBDA_FUNCTION_VERSION=$LATEST");
    env_add(&env, &n, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=%d", fn->memory_mb);
    /* Lambda Managed Instances' name for how many calls the runtime may
     * take at once; absent for one, as on Lambda. */
    if (fn->instance_concurrency > 1)
        env_add(&env, &n, "AWS_LAMBDA_MAX_CONCURRENCY=%d", fn->instance_concurrency);
    env_add(&env, &n, "AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/%s", fn->name);
    env_add(&env, &n, "AWS_LAMBDA_LOG_STREAM_NAME=%s/[$LATEST]%s", day, inst->id);
    env_add(&env, &n, "AWS_REGION=%s", ex->cfg.region);
    env_add(&env, &n, "AWS_DEFAULT_REGION=%s", ex->cfg.region);
    env_add(&env, &n, "AWS_LAMBDA_INITIALIZATION_TYPE=on-demand");
    env_add(&env, &n, "AWS_EXECUTION_ENV=AWS_Lambda_%s", fn->runtime);
    env_add(&env, &n, "MAYFLY_FUNCTION_VERSION=%lld", (long long)fn->version);
    /* Lambda's log settings, unless the function's own env names them. */
    if (!json_object_get(fn->env, "AWS_LAMBDA_LOG_FORMAT"))
        env_add(&env, &n, "AWS_LAMBDA_LOG_FORMAT=%s", fn->log_format);
    if (fn->log_level[0] && !json_object_get(fn->env, "AWS_LAMBDA_LOG_LEVEL"))
        env_add(&env, &n, "AWS_LAMBDA_LOG_LEVEL=%s", fn->log_level);
    /* The Lambda API's durable execution actions answer on this listener
     * (docs/durable.md): AWS's SDKs find them here with no configuration,
     * a durable function's to checkpoint, any function's to answer a
     * callback. The listener is the identity, not a signature, so the
     * credentials (which AWS's clients insist on, and Lambda gives every
     * function) are placeholders scoped to nothing. A function's own env
     * may set either, to call AWS itself. */
    if (!json_object_get(fn->env, "AWS_ENDPOINT_URL_LAMBDA"))
        env_add(&env, &n, "AWS_ENDPOINT_URL_LAMBDA=http://127.0.0.1:%d", SANDBOX_API_PORT);
    if (!json_object_get(fn->env, "AWS_ACCESS_KEY_ID")) {
        env_add(&env, &n, "AWS_ACCESS_KEY_ID=MAYFLYFUNCTION");
        env_add(&env, &n, "AWS_SECRET_ACCESS_KEY=identified-by-its-listener");
    }
    const char *key;
    json_t *value;
    json_object_foreach(fn->env, key, value)
        env_add(&env, &n, "%s=%s", key, json_string_value(value));
    return env;
}

/* A pre-started runtime (a zygote) can serve a function unless its
 * environment changes how that runtime starts: the interpreter has read
 * those variables already. */
static const char *zygote_for(const fn_t *fn)
{
    bool java = jvm_is_java(fn->runtime);
    if (strcmp(fn->runtime, "python3") && strcmp(fn->runtime, "nodejs") && !java)
        return NULL;
    /* A zygote's JVM sized its heap before it knew its function. */
    if (java && fn->memory_mb > JVM_ZYGOTE_MAX_MB)
        return NULL;
    static const char *const startup[] = { "PYTHON",      "NODE_",          "LD_",
                                           "MALLOC_",     "GLIBC_",         "JAVA_TOOL_OPTIONS",
                                           "JDK_JAVA_OPTIONS", "_JAVA_OPTIONS" };
    const char *key;
    json_t *value;
    json_object_foreach(fn->env, key, value) {
        for (size_t i = 0; i < sizeof startup / sizeof *startup; i++)
            if (!strncmp(key, startup[i], strlen(startup[i])))
                return NULL;
    }
    return fn->runtime;
}

/* NULL only for a Java runtime whose JDK this host lacks. */
static char **build_argv(const char *runtime, const char *runtime_dir, unsigned memory_mb)
{
    if (jvm_is_java(runtime))
        return jvm_argv(runtime, runtime_dir, memory_mb);
    char **argv = xcalloc(3, sizeof *argv);
    if (!strcmp(runtime, "python3")) {
        argv[0] = xstrdup("/usr/bin/python3");
        argv[1] = xstrdup("/var/runtime/python3/bootstrap.py");
    } else if (!strcmp(runtime, "nodejs")) {
        argv[0] = xstrdup("/usr/bin/node");
        argv[1] = xstrdup("/var/runtime/nodejs/bootstrap.js");
    } else {
        argv[0] = xstrdup("/var/task/bootstrap");
    }
    return argv;
}

int exec_start_zygotes(exec_t *ex, unsigned count, mf_error_t *err)
{
    static const char *const runtimes[] = { "python3", "nodejs" };
    for (size_t i = 0; i < sizeof runtimes / sizeof *runtimes; i++) {
        char **argv = build_argv(runtimes[i], ex->cfg.runtimes_dir, 0);
        char **env = NULL;
        size_t n = 0;
        env_runtime(&env, &n, runtimes[i]);
        int r = sandbox_system_add_zygotes(ex->sandboxes, runtimes[i], argv, env,
                                           ex->cfg.runtimes_dir, count, err);
        strv_free(argv);
        strv_free(env);
        if (r < 0)
            return r;
    }
    return 0;
}

static const char *const java_runtimes[] = { "java17", "java21" };

static int java_zygotes_start(exec_t *ex, size_t i, mf_error_t *err)
{
    ex->java_started |= 1u << i;
    char **argv = jvm_argv(java_runtimes[i], ex->cfg.runtimes_dir, JVM_ZYGOTE_MAX_MB);
    if (!argv)
        return 0; /* no JDK for it here */
    char **env = NULL;
    size_t n = 0;
    env_runtime(&env, &n, java_runtimes[i]);
    int r = sandbox_system_add_zygotes(ex->sandboxes, java_runtimes[i], argv, env,
                                       ex->cfg.runtimes_dir, ex->java_zygotes, err);
    strv_free(argv);
    strv_free(env);
    return r;
}

void exec__runtime_seen(exec_t *ex, const char *runtime)
{
    for (size_t i = 0; ex->java_zygotes && i < sizeof java_runtimes / sizeof *java_runtimes; i++) {
        mf_error_t err;
        if (!strcmp(runtime, java_runtimes[i]) && !(ex->java_started & (1u << i)) &&
            java_zygotes_start(ex, i, &err) < 0)
            log_warn("exec", "no pre-started JVMs for %s: %s", runtime, err.msg);
    }
}

/* A JVM costs a few hundred milliseconds of CPU and tens of MB: the
 * zygotes of a Java runtime start with the first function of it that the
 * server sees (here for those stored, else at its deploy or first call). */
int exec_start_java_zygotes(exec_t *ex, unsigned count, mf_error_t *err)
{
    ex->java_zygotes = count;
    if (!count)
        return 0;
    fn_t *fns = NULL;
    size_t n = 0;
    int r = registry_list(ex->registry, &fns, &n, err);
    for (size_t i = 0; r == 0 && i < sizeof java_runtimes / sizeof *java_runtimes; i++)
        for (size_t k = 0; k < n; k++)
            if (!strcmp(fns[k].runtime, java_runtimes[i])) {
                r = java_zygotes_start(ex, i, err);
                break;
            }
    fn_list_free(fns, n);
    return r;
}

/* ---- logs ------------------------------------------------------------------ */

/* What an instance may print between calls (after an answer, before the
 * next event) before the server stops reading its output until the next
 * call: a runtime's own late lines fit easily; a process flooding its
 * pipes after answering only fills the pipe and then blocks. */
#define BETWEEN_CALLS_LOG_MAX (64 * 1024)

/* ---- lanes ------------------------------------------------------------------ */

exec_lane_t *exec__lane_of(exec_instance_t *inst, const char *rid)
{
    for (unsigned i = 0; i < inst->n_lanes; i++) {
        invocation_t *inv = inst->lanes[i].inv;
        if (inv && inv->delivered_ns && !strcmp(inv->request_id, rid))
            return &inst->lanes[i];
    }
    return NULL;
}

exec_lane_t *exec__lane_free(exec_instance_t *inst)
{
    for (unsigned i = 0; i < inst->n_lanes; i++)
        if (!inst->lanes[i].inv && !inst->lanes[i].stuck_rid[0])
            return &inst->lanes[i];
    return NULL;
}

exec_lane_t *exec__lane_waiting(exec_instance_t *inst)
{
    if (inst->n_assigned == inst->n_delivered)
        return NULL;
    for (unsigned i = 0; i < inst->n_lanes; i++)
        if (inst->lanes[i].inv && !inst->lanes[i].inv->delivered_ns)
            return &inst->lanes[i];
    return NULL;
}

unsigned exec__instance_room(const exec_instance_t *inst)
{
    return inst->n_lanes - inst->n_assigned - inst->n_stuck;
}

void exec__instance_lane_free(exec_instance_t *inst)
{
    if (inst->state != INST_BUSY)
        return;
    if (!inst->n_assigned)
        exec__instance_idle(inst);
    else if (inst->n_lanes > 1)
        exec__pool_pump(inst->pool); /* room for a waiting call */
}

void exec__cpu_share(exec_instance_t *inst)
{
    sandbox_stats_t st;
    if (sandbox_stats(&inst->sb, SANDBOX_STAT_CPU, &st) < 0)
        return;
    if (inst->n_delivered && st.cpu_ns > inst->cpu_ns_last) {
        uint64_t part = (st.cpu_ns - inst->cpu_ns_last) / inst->n_delivered;
        for (unsigned i = 0; i < inst->n_lanes; i++) {
            invocation_t *inv = inst->lanes[i].inv;
            if (inv && inv->delivered_ns)
                inv->cpu_ns += part;
        }
    }
    /* With no call delivered, what the instance used is nobody's: a call
     * is billed from its hand-over. */
    inst->cpu_ns_last = st.cpu_ns;
}

/* The request id a line names: its first UUID-shaped token (8-4-4-4-12
 * hex digits, not inside a longer run of them) within its first 256
 * bytes; false when none. */
static bool line_request_id(const char *data, size_t len, char out[ID_UUID_LEN + 1])
{
    static const unsigned char dash[ID_UUID_LEN] = { [8] = 1, [13] = 1, [18] = 1, [23] = 1 };
    if (len > 256)
        len = 256;
    for (size_t i = 0; i + ID_UUID_LEN <= len; i++) {
        if (i && (isxdigit((unsigned char)data[i - 1]) || data[i - 1] == '-'))
            continue;
        size_t k = 0;
        for (; k < ID_UUID_LEN; k++) {
            char c = data[i + k];
            if (dash[k] ? c != '-' : !isxdigit((unsigned char)c))
                break;
        }
        if (k < ID_UUID_LEN)
            continue;
        if (i + ID_UUID_LEN < len &&
            (isxdigit((unsigned char)data[i + ID_UUID_LEN]) || data[i + ID_UUID_LEN] == '-'))
            continue;
        memcpy(out, data + i, ID_UUID_LEN);
        out[ID_UUID_LEN] = '\0';
        return true;
    }
    return false;
}

invocation_t *exec__line_call(const exec_instance_t *inst, const char *data, size_t len)
{
    if (!inst->n_delivered)
        return NULL;
    if (inst->n_lanes > 1 && inst->n_delivered > 1 && data) {
        char rid[ID_UUID_LEN + 1];
        exec_lane_t *lane = line_request_id(data, len, rid)
                                ? exec__lane_of((exec_instance_t *)inst, rid)
                                : NULL;
        return lane ? lane->inv : NULL;
    }
    for (unsigned i = 0; i < inst->n_lanes; i++) {
        invocation_t *inv = inst->lanes[i].inv;
        if (inv && inv->delivered_ns)
            return inv;
    }
    return NULL;
}

invocation_t *exec__running_call(const exec_instance_t *inst)
{
    return inst->n_delivered == 1 ? exec__line_call(inst, NULL, 0) : NULL;
}

static void log_reading(exec_instance_t *inst, bool on)
{
    if (inst->logs_paused == !on)
        return;
    inst->logs_paused = !on;
    for (int i = 0; i < 2; i++) {
        uv_stream_t *s = (uv_stream_t *)&inst->out[i];
        if (uv_is_closing((uv_handle_t *)s))
            continue;
        if (on)
            uv_read_start(s, on_log_alloc, on_log_read);
        else
            uv_read_stop(s);
    }
}

/* A line the platform adds to a call's log (START, END, REPORT). */
static void platform_line(exec_instance_t *inst, const char *rid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void platform_line(exec_instance_t *inst, const char *rid, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    obs_logs_append(inst->pool->ex->logs, inst->pool->name, rid, 1, line,
                    (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* The same for a line of count fixed parts, without printf: every call
 * writes START and END. */
static void platform_join(exec_instance_t *inst, const char *rid, const char *const parts[],
                          size_t count)
{
    char line[512];
    size_t n = 0;
    for (size_t i = 0; i < count && n < sizeof line - 1; i++) {
        size_t k = strlen(parts[i]);
        if (k > sizeof line - 1 - n)
            k = sizeof line - 1 - n;
        memcpy(line + n, parts[i], k);
        n += k;
    }
    obs_logs_append(inst->pool->ex->logs, inst->pool->name, rid, 1, line, n);
}

static void emit_line(exec_instance_t *inst, int stream, const char *data, size_t len)
{
    exec_t *ex = inst->pool->ex;
    if (len && data[len - 1] == '\r')
        len--;
    invocation_t *inv = exec__line_call(inst, data, len);
    /* A line of an instance serving many calls that names none of them
     * is the function's, not a call's. */
    const char *rid = inv ? inv->request_id : inst->n_delivered ? "" : inst->last_request_id;
    if (inv) {
        if (inv->log_truncated)
            return;
        if (inv->log_bytes + len > ex->cfg.max_log_bytes) {
            inv->log_truncated = true;
            platform_line(inst, rid, "mayfly: this invocation's log is over %zu bytes; the rest "
                                     "is dropped", ex->cfg.max_log_bytes);
            return;
        }
        inv->log_bytes += len;
    } else if (inst->state != INST_STOPPING && !inst->n_delivered) {
        inst->between_calls_log_bytes += len;
        if (inst->between_calls_log_bytes > BETWEEN_CALLS_LOG_MAX) {
            platform_line(inst, rid, "mayfly: over %d bytes of output between calls; the rest "
                                     "waits for the next call", BETWEEN_CALLS_LOG_MAX);
            log_reading(inst, false);
            return;
        }
    }
    obs_logs_append(ex->logs, inst->pool->name, rid, stream, data, len);
}

/* Splits what a pipe gave into lines; a line longer than LOG_LINE_MAX is
 * cut into pieces of that size. Past a call's log cap the bytes are only
 * read (so the function never blocks on its output mid-call), not parsed. */
static void log_consume(exec_instance_t *inst, int idx, const char *data, size_t len)
{
    invocation_t *inv = inst->n_lanes == 1 ? exec__running_call(inst) : NULL;
    if ((inv && inv->log_truncated) || inst->logs_paused)
        return;
    buf_t *partial = &inst->partial[idx];
    const char *p = data, *end = data + len;
    while (p < end && !inst->logs_paused) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t take = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (partial->len + take > LOG_LINE_MAX)
            take = LOG_LINE_MAX - partial->len;
        if (partial->len == 0 && nl && take == (size_t)(nl - p)) {
            emit_line(inst, idx + 1, p, take); /* a whole line: no copy */
        } else {
            buf_add(partial, p, take);
            if ((nl && take == (size_t)(nl - p)) || partial->len >= LOG_LINE_MAX) {
                emit_line(inst, idx + 1, partial->data, partial->len);
                buf_reset(partial);
            }
        }
        p += take;
        if (nl && p == nl)
            p++;
    }
}

/* Consumed at once in log_consume, so one buffer serves every pipe. */
static char log_slab[65536];

static void on_log_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    *b = uv_buf_init(log_slab, sizeof log_slab);
}

static void on_log_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    exec_instance_t *inst = s->data;
    int idx = s == (uv_stream_t *)&inst->out[0] ? 0 : 1;
    if (nread < 0) {
        buf_t *partial = &inst->partial[idx];
        if (partial->len)
            emit_line(inst, idx + 1, partial->data, partial->len);
        buf_release(partial);
        uv_close((uv_handle_t *)s, on_handle_closed);
        return;
    }
    log_consume(inst, idx, b->base, (size_t)nread);
}

/* Reads what the function has already written to its pipes, so that every
 * line it printed before answering is in its call's log before the END
 * line (the pipes and the Runtime API are separate descriptors: the loop
 * may see the answer first). Bounded, so a flood cannot hold the loop;
 * what is left is read as usual. An unfinished last line ends with the
 * call. One poll of both pipes first: most calls print nothing, and a
 * read of each would be two system calls a call for nothing. */
void exec__instance_logs_settle(exec_instance_t *inst)
{
    struct pollfd pfd[2];
    for (int i = 0; i < 2; i++) {
        uv_handle_t *h = (uv_handle_t *)&inst->out[i];
        uv_os_fd_t fd;
        pfd[i] = (struct pollfd){ .fd = -1 }; /* poll skips it */
        if (!uv_is_closing(h) && uv_fileno(h, &fd) == 0)
            pfd[i] = (struct pollfd){ .fd = fd, .events = POLLIN };
    }
    if (poll(pfd, 2, 0) < 0)
        pfd[0].revents = pfd[1].revents = POLLIN; /* read as before */
    for (int i = 0; i < 2; i++) {
        if (pfd[i].fd < 0)
            continue;
        bool readable = pfd[i].revents & (POLLIN | POLLHUP);
        for (size_t total = 0; readable && total < (1u << 20) && !inst->logs_paused;) {
            ssize_t n = read(pfd[i].fd, log_slab, sizeof log_slab);
            if (n <= 0)
                break;
            log_consume(inst, i, log_slab, (size_t)n);
            total += (size_t)n;
            if ((size_t)n < sizeof log_slab)
                break; /* drained: the rest comes as usual */
        }
        buf_t *partial = &inst->partial[i];
        if (partial->len) {
            emit_line(inst, i + 1, partial->data, partial->len);
            buf_reset(partial);
        }
    }
}

/* A function with Lambda's JSON log format gets the platform's lines as
 * Lambda's JSON system events (platform.start, platform.report), which its
 * system log level WARN leaves out; otherwise START, END and REPORT. */
static bool platform_json(const exec_instance_t *inst)
{
    return !strcmp(inst->pool->fn.log_format, "JSON");
}

static bool platform_quiet(const exec_instance_t *inst)
{
    return platform_json(inst) && !strcmp(inst->pool->fn.system_log_level, "WARN");
}

static void platform_start(exec_instance_t *inst, const invocation_t *inv)
{
    const char *rid = inv->request_id;
    /* A call with a tenant id (tenant isolation) says it in its START
     * line, and in its JSON events as Lambda's tenantId. */
    if (!platform_json(inst)) {
        if (inv->tenant_id[0])
            platform_join(inst, rid,
                          (const char *[]){ "START RequestId: ", rid,
                                            " Version: $LATEST TenantId: ", inv->tenant_id },
                          4);
        else
            platform_join(inst, rid,
                          (const char *[]){ "START RequestId: ", rid, " Version: $LATEST" }, 3);
    } else if (!platform_quiet(inst)) {
        char t[32];
        clock_format_iso8601(clock_wall_ms(), t, sizeof t);
        buf_t b = BUF_INIT;
        buf_addf(&b,
                 "{\"time\":\"%s\",\"type\":\"platform.start\",\"record\":{\"requestId\":"
                 "\"%s\",\"version\":\"$LATEST\"",
                 t, rid);
        if (inv->tenant_id[0]) {
            buf_adds(&b, ",\"tenantId\":");
            json_quote(&b, inv->tenant_id, strlen(inv->tenant_id));
        }
        buf_adds(&b, "}}");
        obs_logs_append(inst->pool->ex->logs, inst->pool->name, rid, 1, b.data, b.len);
        buf_release(&b);
    }
}

static void platform_report_json(exec_instance_t *inst, const invocation_t *inv)
{
    char t[32];
    clock_format_iso8601(clock_wall_ms(), t, sizeof t);
    buf_t b = BUF_INIT;
    buf_addf(&b,
             "{\"time\":\"%s\",\"type\":\"platform.report\",\"record\":{\"requestId\":\"%s\","
             "\"metrics\":{\"durationMs\":%.3f,\"billedDurationMs\":%llu,\"memorySizeMB\":%d,"
             "\"maxMemoryUsedMB\":%llu",
             t, inv->request_id, inv->duration_ms, (unsigned long long)inv->billed_ms,
             inv->memory_mb, (unsigned long long)(inv->max_rss_kb / 1024));
    if (inv->cold_start)
        buf_addf(&b, ",\"initDurationMs\":%.3f", inv->init_ms);
    buf_adds(&b, "}");
    if (inv->tenant_id[0]) {
        buf_adds(&b, ",\"tenantId\":");
        json_quote(&b, inv->tenant_id, strlen(inv->tenant_id));
    }
    buf_addf(&b, ",\"status\":\"%s\"",
             inv->status == INV_SUCCESS ? "success" : inv->status == INV_TIMEOUT ? "timeout"
                                                                                : "error");
    if (inv->status != INV_SUCCESS && inv->error_type) {
        buf_adds(&b, ",\"errorType\":");
        json_quote(&b, inv->error_type, strlen(inv->error_type));
    }
    buf_adds(&b, "}}");
    obs_logs_append(inst->pool->ex->logs, inst->pool->name, inv->request_id, 1, b.data, b.len);
    buf_release(&b);
}

void exec__instance_log_end(exec_instance_t *inst, const invocation_t *inv)
{
    const char *rid = inv->request_id;
    if (platform_json(inst)) {
        if (!platform_quiet(inst))
            platform_report_json(inst, inv);
        return;
    }
    if (inv->status == INV_TIMEOUT) {
        char t[32];
        clock_format_iso8601(clock_wall_ms(), t, sizeof t);
        platform_line(inst, rid, "%s %s %s", t, rid, inv->error_message);
    }
    platform_join(inst, rid, (const char *[]){ "END RequestId: ", rid }, 2);
    char init[64] = "";
    if (inv->cold_start)
        snprintf(init, sizeof init, "Init Duration: %.2f ms\t", inv->init_ms);
    const char *status = inv->status == INV_TIMEOUT ? "Status: timeout\t"
                         : inv->status == INV_OOM   ? "Status: error\tError Type: Runtime.OutOfMemory\t"
                                                    : "";
    platform_line(inst, rid,
                  "REPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: %llu ms\tMemory "
                  "Size: %d MB\tMax Memory Used: %llu MB\t%s%s",
                  rid, inv->duration_ms, (unsigned long long)inv->billed_ms, inv->memory_mb,
                  (unsigned long long)(inv->max_rss_kb / 1024), init, status);
}

/* ---- teardown -------------------------------------------------------------- */

static void lanes_free(exec_instance_t *inst)
{
    if (inst->lanes != &inst->lane0)
        free(inst->lanes);
    if (inst->polls != &inst->poll0)
        free(inst->polls);
    inst->lanes = NULL;
    inst->polls = NULL;
}

static void instance_free(exec_instance_t *inst)
{
    exec_pool_t *p = inst->pool;
    exec_t *ex = p->ex;
    sandbox_destroy(&inst->sb);
    exec__code_release(ex, inst->code_sha);
    (*state_counter(p, inst->state))--;
    if (inst->state == INST_STARTING) {
        ex->n_starting_all--;
        exec__start_room(ex);
    }
    if (inst->prev)
        inst->prev->next = inst->next;
    else
        p->instances = inst->next;
    if (inst->next)
        inst->next->prev = inst->prev;
    buf_release(&inst->partial[0]);
    buf_release(&inst->partial[1]);
    unsigned memory_mb = inst->memory_mb;
    inst->magic = 0;
    lanes_free(inst);
    free(inst);
    exec__instance_freed(ex, p, memory_mb);
}

static void on_handle_closed(uv_handle_t *h)
{
    exec_instance_t *inst = h->data;
    if (--inst->open_handles == 0)
        instance_free(inst);
}

static void on_api_closed(void *ud)
{
    exec_instance_t *inst = ud;
    http_server_free(inst->api);
    inst->api = NULL;
    if (--inst->open_handles == 0)
        instance_free(inst);
}

/* Describes how the runtime ended, as Lambda words it. */
static void describe_exit(int wstatus, char *out, size_t outlen)
{
    if (WIFSIGNALED(wstatus)) {
        int sig = WTERMSIG(wstatus);
        const char *name = sig == SIGKILL ? "killed" : strsignal(sig);
        snprintf(out, outlen, "signal: %s", name);
    } else if (WIFEXITED(wstatus)) {
        snprintf(out, outlen, "exit status %d", WEXITSTATUS(wstatus));
    } else {
        snprintf(out, outlen, "status %d", wstatus);
    }
}

static void fail_lane(exec_lane_t *lane, inv_status_t status, const char *type,
                      const char *message)
{
    exec_instance_t *inst = lane->inst;
    if (lane->inv->delivered_ns && status != INV_TIMEOUT && !platform_json(inst)) {
        /* The runtime could not say what happened: the platform does, as
         * Lambda does, after what the function printed (in JSON, the
         * report's status and errorType say it). */
        exec__instance_logs_settle(inst);
        platform_line(inst, lane->inv->request_id, "%s", message);
        platform_line(inst, lane->inv->request_id, "%s", type);
    }
    buf_t result = BUF_INIT;
    exec__error_doc(&result, type, message);
    exec__complete(lane, status, &result, type, message);
}

/* Fails every call the instance holds with "RequestId: ID Error: reason". */
static void fail_lanes(exec_instance_t *inst, inv_status_t status, const char *type,
                       const char *reason)
{
    for (unsigned i = 0; i < inst->n_lanes && inst->n_assigned; i++) {
        exec_lane_t *lane = &inst->lanes[i];
        if (!lane->inv)
            continue;
        char msg[320];
        snprintf(msg, sizeof msg, "RequestId: %s Error: %s", lane->inv->request_id, reason);
        fail_lane(lane, status, type, msg);
    }
}

/* The runtime ended before its call was handed over: the call goes back
 * to the queue only when this instance had served calls before (it died
 * between calls, and another may serve this one) and only once; otherwise
 * the call fails with the runtime's exit, at once, as on Lambda. */
static bool requeue_undelivered(exec_instance_t *inst)
{
    exec_pool_t *p = inst->pool;
    bool any = false;
    for (unsigned i = 0; i < inst->n_lanes; i++) {
        invocation_t *inv = inst->lanes[i].inv;
        if (!inv || inv->delivered_ns || !inst->calls || inv->requeues || p->removed ||
            p->ex->shutting_down)
            continue;
        inst->lanes[i].inv = NULL;
        inst->n_assigned--;
        inv->instance = NULL;
        inv->lane = NULL;
        inv->cold_start = false;
        exec__requeue(p, inv);
        any = true;
    }
    return any;
}

static void on_exit_ready(uv_poll_t *h, int status, int events)
{
    exec_instance_t *inst = h->data;
    int wstatus = 0;
    if (sandbox_reap(&inst->sb, &wstatus) == -EAGAIN)
        return; /* not yet: the poll fires again */
    inst->reaped = true;
    uv_poll_stop(h);

    exec_pool_t *p = inst->pool;
    char how[64], reason[256];
    describe_exit(wstatus, how, sizeof how);
    sandbox_stats_t st = { 0 };
    sandbox_stats(&inst->sb, SANDBOX_STAT_OOM, &st);
    const char *type = st.oom_kills > 0 ? "Runtime.OutOfMemory" : "Runtime.ExitError";
    if (inst->sb.exec_errno) {
        /* The entry point could not even be started: Lambda's words, which
         * are Go's ("fork/exec /var/task/bootstrap: permission denied"). */
        char desc[96];
        snprintf(desc, sizeof desc, "%s", strerror(inst->sb.exec_errno));
        desc[0] = (char)tolower((unsigned char)desc[0]);
        type = "Runtime.InvalidEntrypoint";
        snprintf(reason, sizeof reason, "fork/exec %s: %s", inst->argv0, desc);
    } else {
        snprintf(reason, sizeof reason, "Runtime exited with error: %s", how);
    }
    /* Gone before it ever asked for work, and not because we stopped it. */
    bool failed_start = !inst->initialized && inst->state != INST_STOPPING;

    bool requeued = requeue_undelivered(inst);
    if (inst->n_assigned) {
        fail_lanes(inst, st.oom_kills > 0 ? INV_OOM : INV_ERROR, type, reason);
    } else if (inst->state != INST_STOPPING) {
        log_info("exec", "instance %s of %s exited (%s)", inst->id, p->name, how);
    }
    if (failed_start)
        exec__start_failed(p, type, reason, true);
    exec__instance_stop(inst);
    if (requeued || failed_start)
        exec__pool_pump(p);
}

void exec__instance_stop(exec_instance_t *inst)
{
    if (inst->state == INST_STOPPING) {
        if (inst->reaped && !uv_is_closing((uv_handle_t *)&inst->exit_poll))
            uv_close((uv_handle_t *)&inst->exit_poll, on_handle_closed);
        return;
    }
    if (inst->state == INST_IDLE)
        exec__idle_stack_remove(inst);
    if (inst->prewarm_pending) {
        inst->prewarm_pending = false;
        metrics_inc(inst->pool->ex->m_prewarms, (const char *[]){ inst->pool->name, "wasted" }, 1);
    }
    exec__instance_set_state(inst, INST_STOPPING);
    uv_timer_stop(&inst->timer);
    uv_close((uv_handle_t *)&inst->timer, on_handle_closed);
    /* Killing first means the runtime cannot race the API's closing. */
    sandbox_kill(&inst->sb);
    invocation_t *cut = inst->egress ? exec__line_call(inst, NULL, 0) : NULL;
    if (cut) {
        /* A call cut short (a timeout, a crash) keeps the connections it
         * made in its record. */
        free(cut->egress_json);
        cut->egress_json = egress_box_call_end(inst->egress, &cut->egress_bytes);
    }
    egress_box_close(inst->egress);
    inst->egress = NULL;
    while (inst->n_polls) {
        http_request_t *req = inst->polls[--inst->n_polls];
        req->abort_cb = NULL;
        http_respond_error(req, 410, "gone", "this instance is stopping");
    }
    http_server_shutdown(inst->api, on_api_closed, inst);
    log_reading(inst, true); /* the pipes close once read to their end */
    if (inst->reaped)
        uv_close((uv_handle_t *)&inst->exit_poll, on_handle_closed);
    /* The log pipes close on their own when the last writer is gone. An
     * invocation still running is failed in on_exit_ready, once the
     * sandbox's processes are reaped. */
}

/* ---- timers ------------------------------------------------------------- */

/* How long a runtime may take to ask for its first call: Lambda's 10 s
 * init phase, or the function's timeout when that is longer (Lambda then
 * goes on initialising within the call). */
static uint64_t init_limit_ns(const exec_instance_t *inst)
{
    uint64_t timeout_ms = (uint64_t)inst->pool->fn.timeout_s * 1000;
    return (timeout_ms > 10000 ? timeout_ms : 10000) * 1000000;
}

/* An idle instance is frozen (its cgroup's freezer) once it has been idle
 * this long, as Lambda freezes an environment between calls: a process it
 * left running uses no CPU until the next call thaws it. Not at once, so
 * that back-to-back calls pay no freeze and thaw each. */
#define FREEZE_AFTER_NS (2u * 1000 * 1000)

void exec__instance_freeze(exec_instance_t *inst, bool on)
{
    if (inst->frozen == on)
        return;
    int r = on ? sandbox_freeze(&inst->sb) : sandbox_thaw(&inst->sb);
    if (r == 0)
        inst->frozen = on;
    else if (r != -ENOTSUP)
        log_warn("exec", "%s instance %s of %s: %s", on ? "freezing" : "thawing", inst->id,
                 inst->pool->name, strerror(-r));
}

static void on_timer(uv_timer_t *t);

void exec__instance_arm_timer(exec_instance_t *inst)
{
    uint64_t now = clock_mono_ns(), due = 0;
    if (inst->state == INST_STOPPING) {
        uv_timer_stop(&inst->timer);
        return;
    }
    if (inst->state == INST_IDLE) {
        /* One whose runtime is still in a call that timed out (a stuck
         * lane) is not frozen: the runtime's late answer frees the lane. */
        due = inst->frozen || inst->n_stuck ? inst->idle_since_ns + inst->keep_alive_ms * 1000000
                                            : inst->idle_since_ns + FREEZE_AFTER_NS;
    } else {
        for (unsigned i = 0; i < inst->n_lanes && inst->n_assigned; i++) {
            const invocation_t *inv = inst->lanes[i].inv;
            if (inv && (!due || inv->deadline_ns < due))
                due = inv->deadline_ns;
        }
        if (!inst->initialized) {
            uint64_t limit = inst->spawn_ns + init_limit_ns(inst);
            if (!due || limit < due)
                due = limit;
        }
    }
    if (!due) {
        uv_timer_stop(&inst->timer);
        return;
    }
    uv_timer_start(&inst->timer, on_timer, due > now ? (due - now + 999999) / 1000000 : 0, 0);
}

static void on_timer(uv_timer_t *t)
{
    exec_instance_t *inst = t->data;
    exec_pool_t *p = inst->pool;
    uint64_t now = clock_mono_ns();
    if (inst->state == INST_IDLE) {
        if (!inst->frozen && !inst->n_stuck) {
            if (now >= inst->idle_since_ns + FREEZE_AFTER_NS)
                exec__instance_freeze(inst, true);
            exec__instance_arm_timer(inst);
            return;
        }
        if (now < inst->idle_since_ns + inst->keep_alive_ms * 1000000) {
            exec__instance_arm_timer(inst);
            return;
        }
        log_debug("exec", "instance %s of %s idle for %llu ms: stopping", inst->id, p->name,
                  (unsigned long long)inst->keep_alive_ms);
        exec__instance_stop(inst);
        return;
    }
    bool freed = false;
    for (unsigned i = 0; i < inst->n_lanes && inst->n_assigned; i++) {
        exec_lane_t *lane = &inst->lanes[i];
        invocation_t *inv = lane->inv;
        if (!inv || now < inv->deadline_ns)
            continue;
        char msg[64];
        exec__timeout_message(inv, msg, sizeof msg);
        if (inv->delivered_ns && inst->n_lanes == 1) {
            /* The runtime is stuck in the handler: only a new instance can
             * serve the next call, as on Lambda. */
            fail_lane(lane, INV_TIMEOUT, "Sandbox.Timedout", msg);
            exec__instance_stop(inst);
            return;
        }
        if (inv->delivered_ns) {
            /* One of many calls: it fails, the others go on, and the lane
             * waits for the runtime to give up on it (its late answer); an
             * instance whose every lane waits so has stopped answering. */
            snprintf(lane->stuck_rid, sizeof lane->stuck_rid, "%s", inv->request_id);
            inst->n_stuck++;
            fail_lane(lane, INV_TIMEOUT, "Sandbox.Timedout", msg);
            if (inst->n_stuck == inst->n_lanes) {
                log_info("exec", "instance %s of %s: every call it took timed out unanswered: "
                         "stopping it", inst->id, p->name);
                exec__instance_stop(inst);
                return;
            }
            continue;
        }
        /* Its deadline passed before the instance could take it (a slow
         * start): the instance goes on and may serve later calls. */
        lane->inv = NULL;
        inst->n_assigned--;
        inv->instance = NULL;
        inv->lane = NULL;
        exec__fail(p->ex, inv, INV_TIMEOUT, "Sandbox.Timedout", "%s", msg);
        freed = true;
    }
    if (!inst->initialized && now >= inst->spawn_ns + init_limit_ns(inst)) {
        char reason[128];
        snprintf(reason, sizeof reason, "Runtime did not ask for work within %llu s of starting",
                 (unsigned long long)(init_limit_ns(inst) / 1000000000));
        fail_lanes(inst, INV_TIMEOUT, "Sandbox.Timedout", reason);
        exec__start_failed(p, "Sandbox.Timedout", reason, true);
        exec__instance_stop(inst);
        exec__pool_pump(p);
        return;
    }
    exec__instance_arm_timer(inst);
    if (freed && inst->n_lanes > 1 && inst->state != INST_STOPPING)
        exec__pool_pump(p); /* room for a waiting call */
}

/* ---- the hot path ----------------------------------------------------------- */

void exec__instance_deliver(exec_lane_t *lane)
{
    exec_instance_t *inst = lane->inst;
    invocation_t *inv = lane->inv;
    exec_t *ex = inst->pool->ex;
    const fn_t *fn = &inst->pool->fn;
    uint64_t now = clock_mono_ns();
    if (now >= inv->deadline_ns) {
        /* It waited past its deadline: fail it without running it; the
         * runtime keeps its poll and takes the next call. */
        char msg[64];
        exec__timeout_message(inv, msg, sizeof msg);
        lane->inv = NULL;
        inst->n_assigned--;
        inv->instance = NULL;
        inv->lane = NULL;
        exec__fail(ex, inv, INV_TIMEOUT, "Sandbox.Timedout", "%s", msg);
        if (!inst->n_assigned)
            exec__instance_idle(inst);
        else
            exec__instance_lane_free(inst);
        return;
    }
    http_request_t *req = inst->polls[0];
    inst->polls[0] = inst->polls[--inst->n_polls];
    req->abort_cb = NULL;
    exec__instance_set_state(inst, INST_BUSY);
    inst->calls++;
    if (!inst->n_delivered) {
        inst->between_calls_log_bytes = 0;
        if (inst->egress)
            egress_box_call_begin(inst->egress);
    }
    log_reading(inst, true);
    platform_start(inst, inv);

    /* A call is billed its share of the CPU its sandbox uses from
     * hand-over to answer (all of it when it runs alone), and nothing a
     * process did between calls. */
    exec__cpu_share(inst);
    inv->cpu_ns = 0;
    inst->cpu_wait_ns_last = 0; /* stays 0 (unknown) when it cannot be read */
    if (inv->event_attempt && inst->n_lanes == 1)
        sandbox_cpu_wait(&inst->sb, &inst->cpu_wait_ns_last);
    if (inv->cold_start) {
        inv->init_ms = inst->init_ms;
        inv->sandbox_ms = (double)(inst->sb.timings.ready_ns - inst->sb.timings.start_ns) / 1e6;
    }

    char tid[96], tp[64];
    exec__trace_header(inv, ex->cfg.otlp != NULL, tid, sizeof tid);
    exec__traceparent(inv, tp, sizeof tp);
    http_header_add(req, "Lambda-Runtime-Aws-Request-Id", "%s", inv->request_id);
    /* Acceptance + timeout on the wall clock, from the two readings taken
     * together at acceptance: not re-derived now, which would move it by
     * however long the loop was held up between two clock readings. */
    http_header_add(req, "Lambda-Runtime-Deadline-Ms", "%lld",
                    (long long)(inv->start_wall_ms +
                                (int64_t)((inv->deadline_ns - inv->enqueued_ns) / 1000000)));
    http_header_add(req, "Lambda-Runtime-Invoked-Function-Arn",
                    "arn:aws:lambda:%s:000000000000:function:%s", ex->cfg.region, fn->name);
    http_header_add(req, "Lambda-Runtime-Trace-Id", "%s", tid);
    if (inv->tenant_id[0])
        http_header_add(req, "Lambda-Runtime-Aws-Tenant-Id", "%s", inv->tenant_id);
    http_header_add(req, "Mayfly-Traceparent", "%s", tp);

    inv->delivered_ns = now;
    inst->n_delivered++;
    exec__instance_arm_timer(inst);
    /* The event's bytes go to the runtime as they came: no parse, and no
     * copy unless the call's record keeps them. */
    if (inv->payloads == 'o')
        http_respond_buf(req, 200, "application/json", &inv->event);
    else
        http_respond(req, 200, "application/json", inv->event.data, inv->event.len);
}

void exec__instance_idle(exec_instance_t *inst)
{
    exec_pool_t *p = inst->pool;
    exec_t *ex = p->ex;
    bool ended_call = inst->ended_call;
    inst->ended_call = false;
    if (p->removed || inst->version != p->fn.version || ex->shutting_down) {
        exec__instance_stop(inst);
        return;
    }
    exec_keep_warm_t kw;
    exec__keep_warm_window(p, &kw);
    if (ended_call && kw.prewarm_ms && !p->queue_head) {
        /* The next call is not expected before the pre-warm window: no
         * instance meanwhile, and a new one started ahead of it. */
        log_debug("exec", "instance %s of %s: stopping until %llu ms from now", inst->id, p->name,
                  (unsigned long long)kw.prewarm_ms);
        exec__instance_stop(inst);
        exec__prewarm_arm(p, kw.prewarm_ms);
        return;
    }
    inst->keep_alive_ms = kw.keep_alive_ms;
    exec__instance_set_state(inst, INST_IDLE);
    inst->next_idle = p->idle;
    p->idle = inst;
    inst->idle_since_ns = clock_mono_ns();
    exec__instance_arm_timer(inst);
    exec__pool_pump(p);
}

/* ---- start ------------------------------------------------------------------ */

/* The gateway's lines go to the running call's log, or between calls to
 * the last call's, as the function's own late lines do. */
static void egress_line(void *ud, const char *line)
{
    exec_instance_t *inst = ud;
    const invocation_t *inv = exec__line_call(inst, NULL, 0);
    platform_line(inst, inv ? inv->request_id : inst->last_request_id, "%s", line);
}

/* sandbox_spawn's net_setup: the sandbox exists, nothing of the function
 * runs yet, so the function never sees its network half made. */
static int egress_open(void *ud, const sandbox_t *sb, mf_error_t *err)
{
    exec_instance_t *inst = ud;
    exec_pool_t *p = inst->pool;
    if (!p->ex->egress)
        return mf_error_plain(err, EPERM,
                              "the function has egress rules and this server runs without "
                              "the egress gateway (--disable-egress)");
    egress_policy_t policy;
    int r = egress_policy_from_json(p->fn.egress, &policy, err);
    if (r < 0)
        return r;
    r = egress_box_open(p->ex->egress, sb, p->name, &policy, egress_line, inst, &inst->egress,
                        err);
    egress_policy_free(&policy);
    return r;
}

_Static_assert(FN_VOLUMES_MAX <= SANDBOX_VOLUMES_MAX, "a function's volumes fit a sandbox");

/* The function's volumes as its sandbox mounts them: each one's host
 * mount point (paths[i], FN_VOLUME_PATH_MAX bytes each) and place inside. */
#define FN_VOLUME_PATH_MAX 4096
static int volumes_for(exec_t *ex, const fn_t *fn, sandbox_volume_t *out, char *paths,
                       unsigned *n, mf_error_t *err)
{
    *n = 0;
    size_t i;
    json_t *m;
    json_array_foreach(fn->volumes, i, m)
    {
        const char *local = json_string_value(json_object_get(m, "name"));
        char name[TENANT_QNAME_MAX + 1];
        /* The function's tenant's volume (core/tenant.h). */
        tenant_resolve(fn->name, local ? local : "", name, sizeof name);
        char *path = paths + (size_t)*n * FN_VOLUME_PATH_MAX;
        if (!ex->volume_path)
            return mf_error_plain(err, ENOTSUP, "volume %s: this server keeps no volumes", name);
        int r = ex->volume_path(ex->volume_ud, name, path, FN_VOLUME_PATH_MAX, err);
        if (r < 0)
            return r;
        out[*n] = (sandbox_volume_t){
            .source = path,
            .target = json_string_value(json_object_get(m, "path")),
            .read_only = json_is_true(json_object_get(m, "read_only")),
        };
        (*n)++;
    }
    return 0;
}

int exec__instance_start(exec_pool_t *p, exec_instance_t **out, mf_error_t *err)
{
    sandbox_volume_t volumes[SANDBOX_VOLUMES_MAX];
    unsigned n_volumes = 0;
    char *volume_paths = NULL;
    if (json_array_size(p->fn.volumes)) {
        volume_paths = xmalloc((size_t)FN_VOLUME_PATH_MAX * FN_VOLUMES_MAX);
        int r = volumes_for(p->ex, &p->fn, volumes, volume_paths, &n_volumes, err);
        if (r < 0) {
            free(volume_paths);
            return r;
        }
    }

    exec_t *ex = p->ex;
    exec_instance_t *inst = xcalloc(1, sizeof *inst);
    inst->magic = EXEC_INSTANCE_MAGIC;
    inst->pool = p;
    inst->version = p->fn.version;
    uint8_t rnd[8];
    id_random_bytes(rnd, sizeof rnd);
    snprintf(inst->id, sizeof inst->id, "%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1],
             rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    buf_init(&inst->partial[0], 0);
    buf_init(&inst->partial[1], 0);
    inst->n_lanes = p->fn.instance_concurrency > 1 ? (unsigned)p->fn.instance_concurrency : 1;
    inst->lanes = inst->n_lanes == 1 ? &inst->lane0 : xcalloc(inst->n_lanes, sizeof *inst->lanes);
    inst->polls = inst->n_lanes == 1 ? &inst->poll0 : xcalloc(inst->n_lanes, sizeof *inst->polls);
    for (unsigned i = 0; i < inst->n_lanes; i++)
        inst->lanes[i].inst = inst;

    char *code_dir = registry_code_dir(ex->registry, &p->fn);
    char **argv = build_argv(p->fn.runtime, ex->cfg.runtimes_dir, (unsigned)p->fn.memory_mb);
    if (!argv) {
        buf_release(&inst->partial[0]);
        buf_release(&inst->partial[1]);
        free(volume_paths);
        free(code_dir);
        lanes_free(inst);
        free(inst);
        return mf_error_set(err, ENOENT, "runtime %s: this server has no JDK for it",
                            p->fn.runtime);
    }
    snprintf(inst->argv0, sizeof inst->argv0, "%s", argv[0]);
    char **envp = build_env(inst, ex, &p->fn);
    char hostname[64];
    snprintf(hostname, sizeof hostname, "mayfly-%.12s", inst->id);
    sandbox_config_t cfg = {
        .id = inst->id,
        .code_dir = code_dir,
        .runtime_dir = ex->cfg.runtimes_dir,
        .argv = argv,
        .envp = envp,
        .hostname = hostname,
        .memory_mb = (unsigned)p->fn.memory_mb,
        .tmp_mb = (unsigned)p->fn.tmp_mb,
        .max_pids = ex->cfg.max_pids,
        .api_port = SANDBOX_API_PORT,
        .zygote = zygote_for(&p->fn),
        .net_setup = json_array_size(p->fn.egress) > 0 ? egress_open : NULL,
        .net_setup_ud = inst,
        .volumes = volumes,
        .n_volumes = n_volumes,
    };
    inst->spawn_ns = clock_mono_ns();
    int r = sandbox_spawn(ex->sandboxes, &cfg, &inst->sb, err);
    free(volume_paths);
    free(code_dir);
    strv_free(argv);
    strv_free(envp);
    if (r < 0) {
        egress_box_close(inst->egress); /* opened when only the go failed */
        lanes_free(inst);
        free(inst);
        return r;
    }

    /* A connection per lane's poll and answer, on top of the usual. */
    http_server_config_t api_cfg = runtime_api_config;
    api_cfg.max_connections += 2 * (inst->n_lanes - 1);
    r = http_server_open_fd(ex->loop, inst->sb.api_listen_fd, &api_cfg, &ex->runtime_router, inst,
                            &inst->api, err);
    if (r < 0) {
        egress_box_close(inst->egress);
        sandbox_destroy(&inst->sb);
        lanes_free(inst);
        free(inst);
        return r;
    }
    http_server_set_metrics(inst->api, false);
    inst->sb.api_listen_fd = -1; /* the server owns it now */

    uv_loop_t *loop = ex->loop;
    uv_poll_init(loop, &inst->exit_poll, inst->sb.pidfd);
    inst->exit_poll.data = inst;
    uv_poll_start(&inst->exit_poll, UV_READABLE, on_exit_ready);
    int fds[2] = { inst->sb.stdout_fd, inst->sb.stderr_fd };
    for (int i = 0; i < 2; i++) {
        uv_pipe_init(loop, &inst->out[i], 0);
        inst->out[i].data = inst;
        uv_pipe_open(&inst->out[i], fds[i]);
        uv_read_start((uv_stream_t *)&inst->out[i], on_log_alloc, on_log_read);
    }
    inst->sb.stdout_fd = inst->sb.stderr_fd = -1; /* the pipes own them now */
    uv_timer_init(loop, &inst->timer);
    inst->timer.data = inst;
    inst->open_handles = 5; /* api server, exit poll, two pipes, timer */

    snprintf(inst->code_sha, sizeof inst->code_sha, "%s", p->fn.code_sha256);
    exec__code_acquire(ex, inst->code_sha);
    inst->state = INST_STARTING;
    p->n_starting++;
    ex->n_starting_all++;
    inst->memory_mb = (unsigned)p->fn.memory_mb;
    ex->memory_used_mb += inst->memory_mb;
    exec__instance_arm_timer(inst); /* the init limit */
    inst->next = p->instances;
    if (p->instances)
        p->instances->prev = inst;
    p->instances = inst;
    ex->n_instances++;
    *out = inst;
    return 0;
}
