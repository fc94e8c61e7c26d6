/* Pools and the scheduler: which instance runs which invocation. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/cpus.h"
#include "core/json.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "exec/exec_internal.h"

const char *inv_status_name(inv_status_t s)
{
    switch (s) {
    case INV_SUCCESS: return "success";
    case INV_ERROR: return "error";
    case INV_TIMEOUT: return "timeout";
    case INV_OOM: return "oom";
    case INV_THROTTLED: return "throttled";
    default: return "running";
    }
}

static void metrics_setup(exec_t *ex)
{
    static const char *const fn_status_trigger[] = { "function", "status", "trigger", NULL };
    static const char *const fn[] = { "function", NULL };
    static const char *const fn_state[] = { "function", "state", NULL };
    static const double dur_buckets[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                          0.5,   1,      2.5,   5,    10,    30,   60,  300, 900 };
    ex->m_invocations = metrics_family_new(METRICS_COUNTER, "mayfly_invocations_total",
                                           "Invocations ended, by function, status and "
                                           "trigger (its kind: invoke, url, replay, "
                                           "destination, schedule, topic, function).",
                                           fn_status_trigger, NULL, 0);
    ex->m_duration = metrics_family_new(
        METRICS_HISTOGRAM, "mayfly_invocation_duration_seconds",
        "Time from handing the event to the function to its answer.", fn, dur_buckets,
        sizeof dur_buckets / sizeof dur_buckets[0]);
    ex->m_cold = metrics_family_new(METRICS_COUNTER, "mayfly_cold_starts_total",
                                    "Invocations that waited for a new instance.", fn, NULL, 0);
    ex->m_instances = metrics_family_new(METRICS_GAUGE, "mayfly_instances",
                                         "Instances by function and state.", fn_state, NULL, 0);
    ex->m_start_failures = metrics_family_new(
        METRICS_COUNTER, "mayfly_instance_start_failures_total",
        "Instances that exited or reported an init error before asking for work.", fn, NULL, 0);
    ex->m_backoff = metrics_family_new(
        METRICS_GAUGE, "mayfly_function_start_backoff_seconds",
        "How long a function whose instances keep failing to start waits before the next "
        "try (0 when it starts normally).", fn, NULL, 0);
    static const char *const mem_kind[] = { "kind", NULL };
    ex->m_memory = metrics_family_new(
        METRICS_GAUGE, "mayfly_instance_memory_bytes",
        "The sandboxes' memory budget (kind=budget, 0 when unbounded) and how much of it "
        "running instances hold (kind=reserved: the sum of their memory_mb).",
        mem_kind, NULL, 0);
    ex->m_idle_mb_s = metrics_family_new(
        METRICS_COUNTER, "mayfly_idle_instance_memory_mb_seconds_total",
        "Memory held by idle instances: memory_mb times the seconds each instance waited idle "
        "(an instance started ahead of a call counts from its start until it serves one).",
        fn, NULL, 0);
    static const char *const fn_outcome[] = { "function", "outcome", NULL };
    ex->m_prewarms = metrics_family_new(
        METRICS_COUNTER, "mayfly_prewarms_total",
        "Instances the adaptive keep-alive started ahead of a call, by whether one used it "
        "(used) or it stopped first (wasted).",
        fn_outcome, NULL, 0);
    ex->m_held = metrics_family_new(
        METRICS_COUNTER, "mayfly_scale_out_waits_total",
        "Calls that found no instance free and waited for a busy one rather than starting "
        "another, as every CPU was busy (CPU-aware scale-out).",
        fn, NULL, 0);
    ex->m_busy = metrics_family_new(
        METRICS_GAUGE, "mayfly_cpu_busy_ratio",
        "The share of the CPUs the server may use that it and its sandboxes used, averaged "
        "over the last few ms while calls ran (CPU-aware scale-out counts them all busy from "
        "0.8, or --busy-cpu-percent).",
        NULL, NULL, 0);
    static const char *const kind[] = { "kind", NULL };
    ex->m_pool = metrics_family_new(METRICS_GAUGE, "mayfly_sandbox_pool_ready",
                                    "Sandboxes prepared ahead for cold starts, by kind "
                                    "(generic, or the runtime a zygote has started).",
                                    kind, NULL, 0);
}

/* Gauges that mirror state the scheduler keeps anyway: read when /metrics
 * is asked for, not updated on every call. */
static void collect_gauges(void *ud)
{
    exec_t *ex = ud;
    static const char *const states[] = { "starting", "idle", "busy", "stopping" };
    const char *key;
    void *value;
    uint64_t now = clock_mono_ns();
    for (size_t it = 0; map_next(&ex->pools, &it, &key, &value);) {
        exec_pool_t *p = value;
        if (p->copy)
            continue;
        unsigned counts[] = { p->n_starting, p->n_idle, p->n_busy, p->n_stopping };
        for (int i = 0; i < 4; i++) {
            const char *labels[] = { p->name, states[i] };
            metrics_set(ex->m_instances, labels, counts[i]);
        }
        const char *labels[] = { p->name };
        metrics_set(ex->m_backoff, labels,
                    p->backoff_until_ns > now ? (double)(p->backoff_until_ns - now) / 1e9 : 0);
        /* Idle time so far counts now, not only when the instance leaves
         * idle: the counter is current whenever it is read. */
        for (exec_instance_t *i = p->instances; i; i = i->next)
            exec__idle_account(i, now, true);
    }
    metrics_set(ex->m_busy, NULL, ex->busy_share > 0 ? ex->busy_share : 0);
    metrics_set(ex->m_memory, (const char *[]){ "budget" },
                (double)ex->cfg.memory_budget_mb * 1048576);
    metrics_set(ex->m_memory, (const char *[]){ "reserved" },
                (double)ex->memory_used_mb * 1048576);
    static const char *const kinds[] = { "generic", "python3", "nodejs", "java17", "java21" };
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
        const char *labels[] = { kinds[i] };
        metrics_set(ex->m_pool, labels,
                    sandbox_system_pool_ready(ex->sandboxes, i ? kinds[i] : NULL));
    }
}

/* Tells the registry whether an instance still runs from a package. */
static bool code_in_use(void *ud, const char *sha)
{
    exec_t *ex = ud;
    return map_get(&ex->code_users, sha) != NULL;
}

void exec__code_acquire(exec_t *ex, const char *sha)
{
    uintptr_t n = (uintptr_t)map_get(&ex->code_users, sha);
    map_put(&ex->code_users, sha, (void *)(n + 1));
}

void exec__code_release(exec_t *ex, const char *sha)
{
    uintptr_t n = (uintptr_t)map_get(&ex->code_users, sha);
    if (n > 1) {
        map_put(&ex->code_users, sha, (void *)(n - 1));
        return;
    }
    map_remove(&ex->code_users, sha);
    registry_code_released(ex->registry, sha);
}

exec_t *exec_new(uv_loop_t *loop, sandbox_system_t *sandboxes, registry_t *registry,
                 struct obs_records *records, struct obs_logs *logs, const exec_config_t *cfg)
{
    exec_t *ex = xcalloc(1, sizeof *ex);
    ex->loop = loop;
    ex->sandboxes = sandboxes;
    ex->registry = registry;
    ex->records = records;
    ex->logs = logs;
    ex->cfg = *cfg;
    http_router_init(&ex->runtime_router);
    exec__runtime_api_routes(&ex->runtime_router);
    ex->queue_timer = xmalloc(sizeof *ex->queue_timer);
    uv_timer_init(loop, ex->queue_timer);
    ex->queue_timer->data = ex;
    unsigned ncpu = cpus_usable();
    ex->max_starting = cfg->max_starting ? cfg->max_starting : ncpu * 2 > 2 ? ncpu * 2 : 2;
    ex->start_room_timer = xmalloc(sizeof *ex->start_room_timer);
    uv_timer_init(loop, ex->start_room_timer);
    ex->start_room_timer->data = ex;
    uv_unref((uv_handle_t *)ex->start_room_timer);
    metrics_setup(ex);
    metrics_add_collector(collect_gauges, ex);
    exec__busy_init(ex);
    registry_set_code_guard(registry, code_in_use, ex);
    egress_config_t ecfg = {.hosts = cfg->egress_hosts,
                            .max_connections = cfg->egress_max_connections,
                            .no_splice = cfg->egress_no_splice};
    if (!cfg->egress_disabled)
        ex->egress = egress_new(loop, &ecfg);
    return ex;
}

void exec_set_volume_resolver(exec_t *ex, exec_volume_path_fn fn, void *ud)
{
    ex->volume_path = fn;
    ex->volume_ud = ud;
}

void exec_set_meter(exec_t *ex, void (*observe)(void *ud, const store_record_t *rec), void *ud)
{
    ex->meter = observe;
    ex->meter_ud = ud;
}

void exec_meter_record(exec_t *ex, const store_record_t *rec)
{
    if (ex->meter)
        ex->meter(ex->meter_ud, rec);
}

void exec_meter_unrecorded(exec_t *ex, const store_record_t *rec)
{
    exec_meter_record(ex, rec);
    if (ex->records)
        obs_records_usage_only(ex->records, rec);
}

void exec_set_admit(exec_t *ex, exec_admit_fn admit, void *ud)
{
    ex->admit = admit;
    ex->admit_ud = ud;
}

void exec_add_own_address(exec_t *ex, const struct sockaddr *sa)
{
    if (ex->egress)
        egress_add_own_address(ex->egress, sa);
}

/* ---- pools -------------------------------------------------------------- */

static exec_pool_t *pool_new(exec_t *ex, const fn_t *fn)
{
    exec_pool_t *p = xcalloc(1, sizeof *p);
    p->ex = ex;
    snprintf(p->name, sizeof p->name, "%s", fn->name);
    fn_copy(&p->fn, fn);
    map_put(&ex->pools, p->name, p);
    return p;
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

int exec_copy_define(exec_t *ex, const char *key, const fn_t *fn, mf_error_t *err)
{
    if (ex->shutting_down)
        return mf_error_plain(err, ESHUTDOWN, "the server is shutting down");
    if (strlen(key) > TENANT_QNAME_MAX || map_get(&ex->pools, key))
        return mf_error_plain(err, EEXIST, "%s is in use", key);
    exec_pool_t *p = xcalloc(1, sizeof *p);
    p->ex = ex;
    snprintf(p->name, sizeof p->name, "%s", key);
    fn_copy(&p->fn, fn);
    p->copy = true;
    map_put(&ex->pools, p->name, p);
    return 0;
}

static void pool_release(exec_pool_t *p)
{
    exec__busy_unhold(p);
    if (p->prewarm_timer)
        uv_close((uv_handle_t *)p->prewarm_timer, free_handle);
    fn_clear(&p->fn);
    free(p->start_error_type);
    free(p->start_error_reason);
    free(p);
}

static void pool_free(exec_pool_t *p)
{
    map_remove(&p->ex->pools, p->name);
    pool_release(p);
}

/* A pool with nothing left in it, whose function is gone, is dropped. */
static void pool_maybe_free(exec_pool_t *p)
{
    if (p->removed && !p->instances && !p->queue_head)
        pool_free(p);
}

static void pump_waiting_for_memory(exec_t *ex);

void exec__instance_freed(exec_t *ex, exec_pool_t *p, unsigned memory_mb)
{
    ex->n_instances--;
    ex->memory_used_mb -= memory_mb;
    ex->memory_stopping_mb -= memory_mb;
    if (p) {
        exec__pool_pump(p);
        pool_maybe_free(p);
    }
    pump_waiting_for_memory(ex);
    if (ex->shutting_down && ex->n_instances == 0 && ex->shutdown_done) {
        void (*done)(void *) = ex->shutdown_done;
        ex->shutdown_done = NULL;
        done(ex->shutdown_ud);
    }
}

static invocation_t *queue_pop(exec_pool_t *p)
{
    invocation_t *inv = p->queue_head;
    if (inv) {
        p->queue_head = inv->next;
        if (!p->queue_head)
            p->queue_tail = NULL;
        inv->next = NULL;
        p->n_queued--;
    }
    return inv;
}

static void queue_push(exec_pool_t *p, invocation_t *inv)
{
    inv->next = NULL;
    if (p->queue_tail)
        p->queue_tail->next = inv;
    else
        p->queue_head = inv;
    p->queue_tail = inv;
    p->n_queued++;
    inv->queued_ns = clock_mono_ns();
}

static void queue_timer_arm(exec_t *ex, uint64_t due);

void exec__error_doc(buf_t *out, const char *type, const char *message)
{
    buf_adds(out, "{\"errorType\":");
    json_quote(out, type, strlen(type));
    buf_adds(out, ",\"errorMessage\":");
    json_quote(out, message, strlen(message));
    buf_addch(out, '}');
}

void exec__requeue(exec_pool_t *p, invocation_t *inv)
{
    inv->next = p->queue_head;
    p->queue_head = inv;
    if (!p->queue_tail)
        p->queue_tail = inv;
    p->n_queued++;
    inv->requeues++;
    queue_timer_arm(p->ex, inv->deadline_ns);
}

/* ---- triggers ----------------------------------------------------------- */

bool exec_trigger_valid(const char *s)
{
    static const char *const alone[] = { "invoke", "url", "replay", "destination" };
    static const char *const named[] = { "schedule", "topic", "function", "durable" };
    size_t k = strcspn(s, ":");
    for (size_t i = 0; i < sizeof alone / sizeof alone[0]; i++)
        if (!strcmp(s, alone[i]))
            return true;
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        if (strlen(named[i]) != k || strncmp(s, named[i], k))
            continue;
        if (!s[k])
            return true;
        const char *name = s + k + 1;
        size_t n = strlen(name);
        return n >= 1 && n <= 64 &&
               strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
    }
    return false;
}

const char *exec_trigger_faas(const char *trigger, bool event_attempt)
{
    if (!strncmp(trigger, "schedule:", 9))
        return "timer";
    if (!strncmp(trigger, "topic:", 6) || !strcmp(trigger, "destination"))
        return "pubsub";
    return event_attempt ? "other" : "http";
}

/* ---- ending invocations -------------------------------------------------- */

static void record_and_finish(exec_t *ex, invocation_t *inv)
{
    exec__trace_export(ex, inv);
    if (!inv->no_record) {
        store_record_t rec;
        invocation_record(inv, &rec);
        if (ex->meter)
            ex->meter(ex->meter_ud, &rec);
        obs_records_add(ex->records, &rec);
    }

    if (inv->copy) {
        inv->done(inv, inv->ud);
        return;
    }
    const char *labels[] = { inv->function, inv_status_name(inv->status) };
    char kind[16];
    snprintf(kind, sizeof kind, "%.*s", (int)strcspn(inv->trigger, ":"), inv->trigger);
    const char *counted[] = { inv->function, inv_status_name(inv->status), kind };
    metrics_inc(ex->m_invocations, counted, 1);
    if (inv->status != INV_THROTTLED)
        metrics_observe(ex->m_duration, labels, inv->duration_ms / 1000.0);
    if (inv->cold_start)
        metrics_inc(ex->m_cold, labels, 1);
    inv->done(inv, inv->ud);
}

void invocation_record(const invocation_t *inv, store_record_t *rec)
{
    memset(rec, 0, sizeof *rec);
    snprintf(rec->request_id, sizeof rec->request_id, "%s", inv->request_id);
    snprintf(rec->function, sizeof rec->function, "%s", inv->function);
    rec->version = inv->version;
    snprintf(rec->status, sizeof rec->status, "%s", inv_status_name(inv->status));
    rec->start_ms = inv->start_wall_ms;
    rec->duration_ms = inv->duration_ms;
    rec->billed_ms = (int64_t)inv->billed_ms;
    rec->memory_mb = inv->memory_mb;
    rec->max_rss_kb = (int64_t)inv->max_rss_kb;
    rec->cpu_ms = (int64_t)inv->cpu_ms;
    rec->cold_start = inv->cold_start;
    rec->prewarmed = inv->prewarmed;
    rec->init_ms = inv->init_ms;
    /* The breakdown (store.h): the wait known once the call was handed
     * over; the sandbox's part on a cold start whose init ended (handed
     * over, or failed in its init). */
    rec->queue_ms = inv->delivered_ns && inv->delivered_ns >= inv->enqueued_ns
                        ? (double)(inv->delivered_ns - inv->enqueued_ns) / 1e6
                        : -1;
    rec->sandbox_ms = inv->cold_start && inv->init_ms > 0 ? inv->sandbox_ms : -1;
    rec->error_type = inv->error_type;
    rec->error_message = inv->error_message;
    rec->attempts = inv->attempts;
    rec->egress_json = inv->egress_json;
    snprintf(rec->replay_of, sizeof rec->replay_of, "%s", inv->replay_of);
    snprintf(rec->caller_request_id, sizeof rec->caller_request_id, "%s", inv->caller_request_id);
    rec->kv_ops = (int64_t)inv->kv_ops;
    rec->egress_bytes = (int64_t)inv->egress_bytes;
    rec->log_bytes = (int64_t)inv->log_bytes;
    rec->first = !inv->event_attempt; /* a call's request id is new */
    snprintf(rec->trigger, sizeof rec->trigger, "%s", inv->trigger);
    snprintf(rec->tenant_id, sizeof rec->tenant_id, "%s", inv->tenant_id);
    snprintf(rec->key_id, sizeof rec->key_id, "%s", inv->key_id);
    /* Borrowed, as the rest: obs_records copies what it keeps. */
    bool keep = inv->payloads == 'f' || (inv->payloads == 'e' && inv->status != INV_SUCCESS);
    if (keep && inv->redact) {
        rec->event = inv->event.data ? inv->event.data : "";
        rec->event_len = inv->event.len;
        rec->result = inv->result.data ? inv->result.data : "";
        rec->result_len = inv->result.len;
        if (inv->streamed && inv->sink && inv->status == INV_SUCCESS)
            rec->result_bytes = (int64_t)inv->stream_bytes;
        rec->redact = inv->redact;
        rec->payload_max = inv->payload_max;
    }
}

void exec__fail(exec_t *ex, invocation_t *inv, inv_status_t status, const char *error_type,
                const char *fmt, ...)
{
    va_list ap;
    buf_t msg = BUF_INIT;
    va_start(ap, fmt);
    buf_vaddf(&msg, fmt, ap);
    va_end(ap);
    inv->status = status;
    free(inv->error_type);
    free(inv->error_message);
    inv->error_type = xstrdup(error_type);
    inv->error_message = buf_detach(&msg, NULL);
    buf_reset(&inv->result);
    exec__error_doc(&inv->result, inv->error_type, inv->error_message);
    record_and_finish(ex, inv);
}

void exec__complete(exec_lane_t *lane, inv_status_t status, buf_t *result,
                    const char *error_type, const char *error_message)
{
    invocation_t *inv = lane->inv;
    exec_instance_t *inst = lane->inst;
    exec_t *ex = inst->pool->ex;
    if (inv->delivered_ns) {
        exec__instance_logs_settle(inst);
        exec__cpu_share(inst);
    }
    lane->inv = NULL;
    inv->instance = NULL;
    inv->lane = NULL;
    inst->n_assigned--;
    if (inv->delivered_ns)
        inst->n_delivered--;
    exec__instance_arm_timer(inst); /* its other calls' deadlines, if any */
    snprintf(inst->last_request_id, sizeof inst->last_request_id, "%s", inv->request_id);
    inst->ended_call = true;

    if (inv->delivered_ns) {
        inst->pool->last_end_ns = clock_mono_ns();
        inv->duration_ms = (double)(clock_mono_ns() - inv->delivered_ns) / 1e6;
        exec__busy_call_ended(inst->pool, inv->duration_ms);
        inv->billed_ms = (uint64_t)ceil(inv->duration_ms);
        if (inv->billed_ms == 0)
            inv->billed_ms = 1;
        /* Max memory is the instance's high-water mark, as Lambda reports
         * "Max Memory Used" for its execution environment; CPU is the
         * call's share of what the sandbox used while it ran
         * (exec__cpu_share). */
        sandbox_stats_t st;
        if (sandbox_stats(&inst->sb, SANDBOX_STAT_MEMORY, &st) == 0)
            inv->max_rss_kb = st.memory_peak_bytes / 1024;
        inv->cpu_ms = inv->cpu_ns / 1000000;
        uint64_t wait_ns;
        if (inst->cpu_wait_ns_last && inst->n_lanes == 1 &&
            sandbox_cpu_wait(&inst->sb, &wait_ns) == 0 && wait_ns >= inst->cpu_wait_ns_last)
            inv->cpu_wait_ms = (double)(wait_ns - inst->cpu_wait_ns_last) / 1e6;
    }
    inv->status = status;
    buf_release(&inv->result);
    if (result) {
        inv->result = *result;
        buf_init(result, 0);
    }
    if (error_type) {
        inv->error_type = xstrdup(error_type);
        inv->error_message = xstrdup(error_message ? error_message : "");
    }
    if (inv->delivered_ns && inst->egress) {
        /* The connections made since the last call ended: an instance
         * serving many calls at once cannot tell whose they are, and gives
         * them to the call that ends first. */
        free(inv->egress_json);
        inv->egress_json = egress_box_call_end(inst->egress, &inv->egress_bytes);
        if (inst->n_delivered)
            egress_box_call_begin(inst->egress);
    }
    if (inv->delivered_ns)
        exec__instance_log_end(inst, inv);
    /* Ended in the middle of a streamed response (a timeout, a crash): the
     * runtime's request is answered with why. */
    if (lane->stream_req)
        exec__stream_detach(lane, inv);
    record_and_finish(ex, inv);
}

/* ---- failing starts ------------------------------------------------------- */

/* The back-off after a failed start: 250 ms, doubling per failure in a row,
 * at most 30 s. A deploy starts afresh. */
#define BACKOFF_BASE_MS 250u
#define BACKOFF_MAX_MS 30000u

void exec__start_failed(exec_pool_t *p, const char *type, const char *reason,
                        bool per_call_prefix)
{
    exec_t *ex = p->ex;
    p->start_failures++;
    unsigned shift = p->start_failures - 1 < 7 ? p->start_failures - 1 : 7;
    uint64_t delay_ms = (uint64_t)BACKOFF_BASE_MS << shift;
    if (delay_ms > BACKOFF_MAX_MS)
        delay_ms = BACKOFF_MAX_MS;
    p->backoff_until_ns = clock_mono_ns() + delay_ms * 1000000;
    free(p->start_error_type);
    free(p->start_error_reason);
    p->start_error_type = xstrdup(type);
    p->start_error_reason = xstrdup(reason);
    p->start_error_prefixed = per_call_prefix;
    p->start_error_ms = clock_wall_ms();
    const char *labels[] = { p->name };
    if (!p->copy)
        metrics_inc(ex->m_start_failures, labels, 1);
    log_warn("exec", "%s: an instance failed to start (%s: %s), %u in a row; for the next %llu ms "
             "calls %s",
             p->name, type, reason, p->start_failures, (unsigned long long)delay_ms,
             p->n_busy ? "wait for its busy instances" : "fail at once");
}

void exec__pump_pools(exec_t *ex, size_t most, bool (*take)(exec_pool_t *p))
{
    if (!most)
        return;
    exec_pool_t **pools = xcalloc(most, sizeof *pools);
    size_t k = 0;
    const char *key;
    void *value;
    for (size_t it = 0; k < most && map_next(&ex->pools, &it, &key, &value);)
        if (take(value))
            pools[k++] = value;
    for (size_t i = 0; i < k; i++)
        exec__pool_pump(pools[i]);
    free(pools);
}

static bool take_waiting_for_start(exec_pool_t *p)
{
    if (!p->waiting_for_start)
        return false;
    p->waiting_for_start = false;
    return true;
}

/* Each pool waiting for start room takes what room there is, in turn. */
static void on_start_room(uv_timer_t *t)
{
    exec_t *ex = t->data;
    exec__pump_pools(ex, ex->pools.len, take_waiting_for_start);
}

void exec__start_room(exec_t *ex)
{
    if (ex->start_room_timer && !uv_is_active((uv_handle_t *)ex->start_room_timer))
        uv_timer_start(ex->start_room_timer, on_start_room, 0, 0);
}

void exec__start_succeeded(exec_pool_t *p)
{
    if (!p->start_failures)
        return;
    log_info("exec", "%s: an instance started after %u failed start(s)", p->name,
             p->start_failures);
    p->start_failures = 0;
    p->backoff_until_ns = 0;
}

void exec_start_health(exec_t *ex, const char *name, exec_start_health_t *out)
{
    *out = (exec_start_health_t){ 0 };
    exec_pool_t *p = map_get(&ex->pools, name);
    if (!p || !p->start_failures)
        return;
    uint64_t now = clock_mono_ns();
    out->consecutive_failures = p->start_failures;
    out->retry_after_ms = clock_wall_ms() + (p->backoff_until_ns > now
                                                 ? (int64_t)((p->backoff_until_ns - now) / 1000000)
                                                 : 0);
    out->failed_at_ms = p->start_error_ms;
    out->error_type = p->start_error_type;
    out->error_reason = p->start_error_reason;
}

/* Fails a call at once with the start failure that put its function in
 * back-off, worded for this call as Lambda words it. */
static void fail_backing_off(exec_pool_t *p, invocation_t *inv)
{
    inv_status_t st = !strcmp(p->start_error_type, "Runtime.OutOfMemory") ? INV_OOM : INV_ERROR;
    if (p->start_error_prefixed)
        exec__fail(p->ex, inv, st, p->start_error_type, "RequestId: %s Error: %s",
                   inv->request_id, p->start_error_reason);
    else
        exec__fail(p->ex, inv, st, p->start_error_type, "%s", p->start_error_reason);
}

/* ---- deadlines of waiting calls ---------------------------------------- */

/* A call's deadline counts from its acceptance, as the caller sees it: a
 * call still waiting in its function's queue at its deadline fails with
 * Lambda's timeout there and then. One timer serves every queue. */
static void on_queue_timer(uv_timer_t *t);

static void queue_timer_arm(exec_t *ex, uint64_t due)
{
    if (ex->queue_timer_due && ex->queue_timer_due <= due)
        return;
    ex->queue_timer_due = due;
    uint64_t now = clock_mono_ns();
    uv_timer_start(ex->queue_timer, on_queue_timer, due > now ? (due - now + 999999) / 1000000 : 0,
                   0);
}

static void queue_unlink(exec_pool_t *p, invocation_t **pp)
{
    invocation_t *inv = *pp;
    *pp = inv->next;
    if (p->queue_tail == inv) {
        p->queue_tail = NULL;
        for (invocation_t *q = p->queue_head; q; q = q->next)
            p->queue_tail = q;
    }
    inv->next = NULL;
    p->n_queued--;
}

void exec__timeout_message(const invocation_t *inv, char *out, size_t outlen)
{
    snprintf(out, outlen, "Task timed out after %.2f seconds",
             (double)(inv->deadline_ns - inv->enqueued_ns) / 1e9);
}

static void on_queue_timer(uv_timer_t *t)
{
    exec_t *ex = t->data;
    ex->queue_timer_due = 0;
    /* Failing a call runs its done callback, which may start other calls
     * (and make pools): collect the pools first. */
    size_t n = ex->pools.len, k = 0;
    exec_pool_t **pools = xcalloc(n ? n : 1, sizeof *pools);
    const char *key;
    void *value;
    for (size_t it = 0; map_next(&ex->pools, &it, &key, &value);)
        pools[k++] = value;
    uint64_t now = clock_mono_ns(), next = 0;
    for (size_t i = 0; i < k; i++) {
        exec_pool_t *p = pools[i];
        for (invocation_t **pp = &p->queue_head; *pp;) {
            invocation_t *inv = *pp;
            if (inv->deadline_ns > now) {
                if (!next || inv->deadline_ns < next)
                    next = inv->deadline_ns;
                pp = &inv->next;
                continue;
            }
            queue_unlink(p, pp);
            char msg[64];
            exec__timeout_message(inv, msg, sizeof msg);
            exec__fail(ex, inv, INV_TIMEOUT, "Sandbox.Timedout", "%s", msg);
            pp = &p->queue_head; /* the callback may have changed the queue */
            next = 0;
        }
    }
    free(pools);
    /* Anything still waiting (including what callbacks queued) sets the
     * next firing. */
    for (size_t it = 0; map_next(&ex->pools, &it, &key, &value);)
        for (invocation_t *inv = ((exec_pool_t *)value)->queue_head; inv; inv = inv->next)
            if (!next || inv->deadline_ns < next)
                next = inv->deadline_ns;
    if (next)
        queue_timer_arm(ex, next);
}

/* ---- scheduling -------------------------------------------------------- */

static void assign(exec_instance_t *inst, invocation_t *inv)
{
    /* The scheduler picks instances by tenant id; this is the last line
     * that keeps one tenant's call off another's instance. */
    exec_lane_t *lane = exec__lane_free(inst);
    if (strcmp(inst->tenant_id, inv->tenant_id) || !lane) {
        log_error("exec", "%s: instance %s serves another tenant id than call %s, or has no "
                  "room: not run there", inst->pool->name, inst->id, inv->request_id);
        exec__instance_stop(inst);
        exec__fail(inst->pool->ex, inv, INV_ERROR, "Mayfly.InternalError",
                   "mayfly picked an instance of another tenant id (or without room) for this "
                   "call");
        return;
    }
    exec__instance_freeze(inst, false);
    lane->inv = inv;
    inst->n_assigned++;
    inv->instance = inst;
    inv->lane = lane;
    inv->cold_start = !inst->initialized;
    if (inst->prewarm_pending) {
        inst->prewarm_pending = false;
        inv->prewarmed = true;
        metrics_inc(inst->pool->ex->m_prewarms, (const char *[]){ inst->pool->name, "used" }, 1);
    }
    if (inst->n_polls)
        exec__instance_deliver(lane);
    else
        exec__instance_arm_timer(inst);
}

/* An instance of p of many lanes with room for a call of tenant_id
 * (starting or running calls already: an idle one is on the idle stack),
 * while the function runs fewer calls than its max_concurrency; NULL when
 * none. The fullest goes first, so that the others empty and go. */
static exec_instance_t *room_take(exec_pool_t *p, const char *tenant_id)
{
    if (p->fn.instance_concurrency <= 1)
        return NULL;
    unsigned calls = 0;
    exec_instance_t *best = NULL;
    for (exec_instance_t *i = p->instances; i; i = i->next) {
        calls += i->n_assigned;
        if (i->state == INST_STOPPING || i->state == INST_IDLE || i->version != p->fn.version ||
            strcmp(i->tenant_id, tenant_id) || !exec__instance_room(i))
            continue;
        if (!best || i->n_assigned > best->n_assigned)
            best = i;
    }
    return calls < (unsigned)p->fn.max_concurrency ? best : NULL;
}

/* ---- the sandboxes' memory budget ----------------------------------------- */

/* The idle instance that has waited longest, of any function but p's. */
static exec_instance_t *oldest_idle_elsewhere(exec_t *ex, const exec_pool_t *p)
{
    exec_instance_t *oldest = NULL;
    const char *key;
    void *value;
    for (size_t it = 0; map_next(&ex->pools, &it, &key, &value);) {
        if (value == p)
            continue;
        for (exec_instance_t *i = ((exec_pool_t *)value)->idle; i; i = i->next_idle)
            if (!oldest || i->idle_since_ns < oldest->idle_since_ns)
                oldest = i;
    }
    return oldest;
}

/* Whether a new instance of p fits in the memory budget (the sum of
 * memory_mb over every instance). When it does not and evict is set (a
 * call is waiting), idle instances of other functions, longest idle first,
 * are stopped to make room; p is pumped again whenever an instance is
 * freed. */
static bool memory_admits(exec_pool_t *p, bool evict)
{
    exec_t *ex = p->ex;
    uint64_t budget = ex->cfg.memory_budget_mb, need = (uint64_t)p->fn.memory_mb;
    if (!budget || ex->memory_used_mb + need <= budget)
        return true;
    while (evict && ex->memory_used_mb - ex->memory_stopping_mb + need > budget) {
        exec_instance_t *victim = oldest_idle_elsewhere(ex, p);
        if (!victim)
            break;
        log_debug("exec", "stopping idle instance %s of %s to make room for %s", victim->id,
                  victim->pool->name, p->name);
        exec__instance_stop(victim);
    }
    p->waiting_for_memory = true;
    return false;
}

static void pump_waiting_for_memory(exec_t *ex)
{
    if (!ex->cfg.memory_budget_mb)
        return;
    size_t n = 0, k = 0;
    const char *key;
    void *value;
    for (size_t it = 0; map_next(&ex->pools, &it, &key, &value);)
        n += ((exec_pool_t *)value)->waiting_for_memory;
    if (!n)
        return;
    /* Pumping may free pools: collect first. */
    exec_pool_t **pools = xcalloc(n, sizeof *pools);
    for (size_t it = 0; map_next(&ex->pools, &it, &key, &value);) {
        exec_pool_t *p = value;
        if (p->waiting_for_memory && k < n) {
            p->waiting_for_memory = false;
            pools[k++] = p;
        }
    }
    for (size_t i = 0; i < k; i++)
        exec__pool_pump(pools[i]);
    free(pools);
}

/* Whether the function runs as many instances as it may (starting, idle
 * or busy): always when it is paused (max_concurrency 0). An instance of
 * many lanes counts for as many calls. */
static bool pool_full(const exec_pool_t *p)
{
    unsigned lanes = p->fn.instance_concurrency > 1 ? (unsigned)p->fn.instance_concurrency : 1;
    unsigned most = ((unsigned)p->fn.max_concurrency + lanes - 1) / lanes;
    return p->n_starting + p->n_idle + p->n_busy >= most;
}

/* Whether a call of tenant_id that finds no instance free waits rather
 * than starting one (or failing at once) while the function's starts
 * fail: one try at a time, and in the back-off it waits for the instances
 * that did start and may serve it (exec__pool_pump). */
static bool start_waits(const exec_pool_t *p, const char *tenant_id)
{
    if (!p->start_failures)
        return false;
    if (clock_mono_ns() >= p->backoff_until_ns)
        return p->n_starting > 0;
    return p->n_busy && (!p->fn.tenancy.per_tenant || exec__tenant_busy(p, tenant_id));
}

/* Whether a call could start at once: an idle instance, or room for a
 * new one (a function whose starts fail tries one at a time; in its
 * back-off a call waits for its busy instances, or with none fails at
 * once, which also counts as starting). With
 * evict, idle instances of other functions may be stopped for the room. */
static bool pool_can_start(exec_pool_t *p, bool evict)
{
    if (p->fn.max_concurrency == 0)
        return false; /* paused */
    if (p->idle || room_take(p, ""))
        return true;
    if (p->removed || p->ex->shutting_down || pool_full(p))
        return false;
    if (start_waits(p, ""))
        return false;
    return memory_admits(p, evict);
}

/* Whether a call of tenant_id could start at once: on an idle instance
 * of its own, or on a new one while the tenant id is under its cap and
 * the function has room, counting the idle instances of other tenant ids,
 * which are stopped for it (so with evict only). */
static bool pool_can_start_for(exec_pool_t *p, const char *tenant_id, bool evict)
{
    if (!p->fn.tenancy.per_tenant)
        return pool_can_start(p, evict);
    if (p->fn.max_concurrency == 0)
        return false;
    if (exec__idle_has(p, tenant_id) || room_take(p, tenant_id))
        return true;
    if (p->removed || p->ex->shutting_down || exec__tenant_at_cap(p, tenant_id))
        return false;
    if (pool_full(p)) {
        exec_instance_t *victim = exec__idle_other_oldest(p, tenant_id);
        if (!victim || !evict)
            return false;
        exec__instance_stop(victim);
    }
    if (start_waits(p, tenant_id))
        return false;
    return memory_admits(p, evict);
}

/* A function whose concurrency is 0 is paused, as Lambda's reserved
 * concurrency 0: every call throttles at once (queued events wait). */
static void exec__fail_paused(exec_pool_t *p, invocation_t *inv)
{
    exec__fail(p->ex, inv, INV_THROTTLED, "TooManyRequestsException",
               "Rate exceeded: %s has its concurrency set to 0: its calls are paused until it is "
               "raised",
               p->name);
}

/* Takes inv, waiting at *pp, out of its pool's queue. */
static invocation_t *queue_take(exec_pool_t *p, invocation_t **pp)
{
    invocation_t *inv = *pp;
    if (pp == &p->queue_head)
        return queue_pop(p);
    queue_unlink(p, pp);
    return inv;
}

void exec__pool_pump(exec_pool_t *p)
{
    exec_t *ex = p->ex;
    /* Calls go in order. Under tenant isolation a call that must wait
     * (its tenant id at its cap, or no room while no idle instance of its
     * own) lets those behind it, of other tenant ids, go first; without
     * it every call would wait for the same thing, so the first that
     * waits stops the walk. Each call handled starts the walk again, as
     * its callback may change the queue. */
    bool tenants = p->fn.tenancy.per_tenant;
    for (invocation_t **pp = &p->queue_head; *pp;) {
        invocation_t *inv = *pp;
        if (p->fn.max_concurrency == 0) {
            exec__fail_paused(p, queue_take(p, pp));
            pp = &p->queue_head;
            continue;
        }
        exec_instance_t *room = room_take(p, inv->tenant_id);
        if (room) {
            assign(room, queue_take(p, pp));
            pp = &p->queue_head;
            continue;
        }
        exec_instance_t *idle = exec__idle_take(p, inv->tenant_id);
        if (idle) {
            exec__instance_set_state(idle, INST_BUSY);
            assign(idle, queue_take(p, pp));
            pp = &p->queue_head;
            continue;
        }
        if (p->removed || ex->shutting_down)
            break;
        if (tenants && exec__tenant_at_cap(p, inv->tenant_id)) {
            pp = &inv->next; /* waits for an instance of its own to free up */
            continue;
        }
        if (pool_full(p)) {
            /* Room taken by idle instances of other tenant ids is given
             * back: the one idle longest stops. */
            exec_instance_t *victim = tenants ? exec__idle_other_oldest(p, inv->tenant_id) : NULL;
            if (!victim)
                break;
            log_debug("exec", "stopping idle instance %s of %s to make room for another tenant id",
                      victim->id, p->name);
            exec__instance_stop(victim);
        }
        if (start_waits(p, inv->tenant_id)) {
            /* For the start being tried, or for the instances that did
             * start; under tenant isolation other tenant ids go first. */
            if (!tenants)
                break;
            pp = &inv->next;
            continue;
        }
        if (p->start_failures && clock_mono_ns() < p->backoff_until_ns) {
            fail_backing_off(p, queue_take(p, pp));
            pp = &p->queue_head;
            continue;
        }
        if ((uint64_t)p->fn.memory_mb > ex->cfg.memory_budget_mb && ex->cfg.memory_budget_mb) {
            exec__fail(ex, queue_take(p, pp), INV_ERROR, "Mayfly.InsufficientMemory",
                       "%s needs %d MB, more than the %llu MB all instances together may use "
                       "(the server's --sandbox-memory-mb)",
                       p->name, p->fn.memory_mb, (unsigned long long)ex->cfg.memory_budget_mb);
            pp = &p->queue_head;
            continue;
        }
        if (exec__busy_hold(p, inv))
            break; /* it waits for a busy instance while the CPUs are full */
        if (ex->n_starting_all >= ex->max_starting) {
            p->waiting_for_start = true;
            break; /* the calls wait for a start under way to finish (exec__start_room) */
        }
        if (!memory_admits(p, true))
            break; /* the calls wait for memory, and then throttle as at max_concurrency */
        inv = queue_take(p, pp);
        pp = &p->queue_head;
        exec_instance_t *inst;
        mf_error_t err = MF_ERROR_INIT;
        if (exec__instance_start(p, &inst, &err) < 0) {
            log_error("exec", "starting an instance of %s: %s", p->name, err.msg);
            exec__fail(ex, inv, INV_ERROR, "Mayfly.SandboxError",
                       "mayfly could not start an instance: %s", err.msg);
            continue;
        }
        snprintf(inst->tenant_id, sizeof inst->tenant_id, "%s", inv->tenant_id);
        assign(inst, inv);
    }
    if (!p->queue_head && ex->capacity_cb && pool_can_start(p, false))
        ex->capacity_cb(ex->capacity_ud, p->name);
}

void exec_set_capacity_cb(exec_t *ex, void (*cb)(void *ud, const char *function), void *ud)
{
    ex->capacity_cb = cb;
    ex->capacity_ud = ud;
}

int exec_invoke(exec_t *ex, const char *name, buf_t *event, invocation_done_cb done, void *ud,
                mf_error_t *err)
{
    return exec_invoke_opts(ex, name, event, NULL, done, ud, err);
}

/* The function's record settings, as this call's record will apply them. */
static void record_policy(invocation_t *inv, const fn_record_t *rec)
{
    inv->payloads = !strcmp(rec->payloads, "off") ? 'o' : !strcmp(rec->payloads, "errors") ? 'e' : 'f';
    inv->payload_max = (size_t)rec->max_payload_kb << 10;
    size_t len = 1;
    for (int i = 0; i < rec->n_redact; i++)
        len += strlen(rec->redact[i]) + 1;
    char *p = inv->redact = xmalloc(len);
    for (int i = 0; i < rec->n_redact; i++) {
        size_t n = strlen(rec->redact[i]) + 1;
        memcpy(p, rec->redact[i], n);
        p += n;
    }
    *p = '\0';
}

/* ---- adaptive keep-alive ---------------------------------------------------- */

void exec_set_keep_warm(exec_t *ex, const exec_keep_warm_policy_t *policy, void *ud)
{
    ex->keep_warm = *policy;
    ex->keep_warm_ud = ud;
}

static bool keep_warm_adaptive(const exec_t *ex, const fn_t *fn)
{
    if (!ex->keep_warm.decide || !strcmp(fn->keep_warm, "fixed"))
        return false;
    return !strcmp(fn->keep_warm, "adaptive") || ex->cfg.keep_warm_adaptive;
}

void exec_keep_warm(exec_t *ex, const fn_t *fn, exec_keep_warm_t *out)
{
    memset(out, 0, sizeof *out);
    if (ex->keep_warm.decide)
        ex->keep_warm.decide(ex->keep_warm_ud, fn->name, out);
    if (!keep_warm_adaptive(ex, fn)) {
        out->policy = "fixed";
        out->basis = "fixed";
        out->keep_alive_ms = ex->cfg.idle_timeout_ms;
        out->prewarm_ms = 0;
        return;
    }
    out->policy = "adaptive";
    if (out->prewarm_ms && fn->tenancy.per_tenant) {
        /* An instance serves one tenant id, which a call ahead of time
         * does not know: no pre-warm, warm through both windows instead. */
        out->keep_alive_ms += out->prewarm_ms;
        out->prewarm_ms = 0;
    }
    uint64_t max = ex->cfg.keep_alive_max_ms;
    if (max && out->keep_alive_ms > max)
        out->keep_alive_ms = max;
}

void exec__keep_warm_window(exec_pool_t *p, exec_keep_warm_t *out)
{
    exec_keep_warm(p->ex, &p->fn, out);
    if (p->copy) {
        /* A tuner's copy learns nothing and is never pre-warmed: its
         * instances go when the copy does. */
        out->policy = out->basis = "fixed";
        out->keep_alive_ms = p->ex->cfg.idle_timeout_ms;
        out->prewarm_ms = 0;
    }
}

void exec__idle_account(exec_instance_t *inst, uint64_t now, bool go_on)
{
    if (!inst->idle_acct_ns)
        return;
    if (now > inst->idle_acct_ns && !inst->pool->copy)
        metrics_inc(inst->pool->ex->m_idle_mb_s, (const char *[]){ inst->pool->name },
                    (double)inst->memory_mb * (double)(now - inst->idle_acct_ns) / 1e9);
    inst->idle_acct_ns = go_on ? now : 0;
}

/* A call arrives: the time since the function's last call ended is an
 * idle time, or 0 while another call is running or waiting. */
static void keep_warm_observe(exec_pool_t *p)
{
    exec_t *ex = p->ex;
    if (!ex->keep_warm.observe || !p->last_end_ns || p->copy)
        return;
    uint64_t now = clock_mono_ns(), idle_ms = 0;
    bool running = p->n_busy || p->queue_head;
    for (exec_instance_t *i = p->instances; i && !running && p->n_starting; i = i->next)
        running = i->state == INST_STARTING && i->n_assigned;
    if (!running && now > p->last_end_ns)
        idle_ms = (now - p->last_end_ns) / 1000000;
    ex->keep_warm.observe(ex->keep_warm_ud, p->name, idle_ms);
}


/* The pre-warm window is over: an instance starts for the call expected
 * soon, unless one is there already or the function may not have one
 * now (paused, at its concurrency, in start back-off, or without room in
 * the memory budget: a pre-warm never stops another function's instance). */
static void on_prewarm(uv_timer_t *t)
{
    exec_pool_t *p = t->data;
    exec_t *ex = p->ex;
    if (ex->shutting_down || p->removed || !keep_warm_adaptive(ex, &p->fn) ||
        p->fn.max_concurrency == 0 || p->fn.tenancy.per_tenant)
        return;
    if (p->idle || p->n_starting || p->n_busy || p->queue_head || pool_full(p) ||
        p->start_failures)
        return;
    uint64_t budget = ex->cfg.memory_budget_mb;
    if (budget && ex->memory_used_mb + (uint64_t)p->fn.memory_mb > budget)
        return;
    if (ex->n_starting_all >= ex->max_starting)
        return; /* calls come first: this start is only ahead of one */
    exec_instance_t *inst;
    mf_error_t err = MF_ERROR_INIT;
    if (exec__instance_start(p, &inst, &err) < 0) {
        log_warn("exec", "pre-warming an instance of %s: %s", p->name, err.msg);
        return;
    }
    inst->prewarm_pending = true;
    inst->idle_acct_ns = clock_mono_ns();
    log_debug("exec", "instance %s of %s started ahead of its next call", inst->id, p->name);
}

void exec__prewarm_arm(exec_pool_t *p, uint64_t delay_ms)
{
    if (!p->prewarm_timer) {
        p->prewarm_timer = xmalloc(sizeof *p->prewarm_timer);
        uv_timer_init(p->ex->loop, p->prewarm_timer);
        p->prewarm_timer->data = p;
        /* Never what keeps the loop (and so a stop) waiting. */
        uv_unref((uv_handle_t *)p->prewarm_timer);
    }
    uv_timer_start(p->prewarm_timer, on_prewarm, delay_ms, 0);
}

int exec_invoke_opts(exec_t *ex, const char *name, buf_t *event, const exec_call_opts_t *opts,
                     invocation_done_cb done, void *ud, mf_error_t *err)
{
    exec_pool_t *p = map_get(&ex->pools, name);
    if (!p || p->removed) {
        fn_t fn;
        int r = registry_get(ex->registry, name, &fn, err);
        if (r < 0)
            return r;
        if (p) {
            fn_clear(&p->fn);
            fn_copy(&p->fn, &fn);
            p->removed = false;
        } else {
            p = pool_new(ex, &fn);
            exec__runtime_seen(ex, fn.runtime);
        }
        fn_clear(&fn);
    }

    const char *tenant_id = opts && opts->tenant_id ? opts->tenant_id : "";
    int r = fn_tenant_id_for(p->name, &p->fn.tenancy,
                             opts && opts->tenant_field ? opts->tenant_field : "X-Amz-Tenant-Id",
                             tenant_id, err);
    if (r < 0)
        return r;
    if (ex->admit && !(opts && opts->request_id && opts->attempt > 0) &&
        (r = ex->admit(ex->admit_ud, p->copy ? p->fn.name : p->name, err)) < 0)
        return r;
    if (opts && opts->no_wait && (p->queue_head || !pool_can_start_for(p, tenant_id, true)))
        return mf_error_plain(err, EAGAIN, "%s has no room for another call now", p->name);

    invocation_t *inv = xcalloc(1, sizeof *inv);
    inv->cpu_wait_ms = -1;
    if (opts && opts->request_id) {
        snprintf(inv->request_id, sizeof inv->request_id, "%s", opts->request_id);
        inv->event_attempt = opts->attempt > 0;
    } else
        id_uuid7(inv->request_id);
    snprintf(inv->function, sizeof inv->function, "%s", p->name);
    snprintf(inv->tenant_id, sizeof inv->tenant_id, "%s", tenant_id);
    snprintf(inv->key_id, sizeof inv->key_id, "%s", opts && opts->key_id ? opts->key_id : "");
    inv->version = p->fn.version;
    inv->memory_mb = p->fn.memory_mb;
    record_policy(inv, &p->fn.record);
    inv->event = *event;
    buf_init(event, 0);
    buf_init(&inv->result, 0);
    inv->start_wall_ms = clock_wall_ms();
    inv->enqueued_ns = clock_mono_ns();
    inv->deadline_ns = inv->enqueued_ns + (uint64_t)p->fn.timeout_s * 1000000000u;
    inv->attempts = opts && opts->attempt > 0 ? opts->attempt : 1;
    inv->no_record = opts && opts->no_record;
    inv->copy = p->copy;
    if (opts && opts->replay_of)
        snprintf(inv->replay_of, sizeof inv->replay_of, "%s", opts->replay_of);
    inv->call_depth = opts ? opts->call_depth : 0;
    if (opts && opts->caller_request_id)
        snprintf(inv->caller_request_id, sizeof inv->caller_request_id, "%s",
                 opts->caller_request_id);
    snprintf(inv->trigger, sizeof inv->trigger, "%s",
             opts && opts->trigger && *opts->trigger ? opts->trigger : "invoke");
    exec__trace_begin(inv, opts ? opts->traceparent : NULL);
    inv->done = done;
    inv->ud = ud;
    inv->sink = opts ? opts->stream : NULL;

    if (ex->shutting_down) {
        exec__fail(ex, inv, INV_ERROR, "Mayfly.ShuttingDown", "the server is shutting down");
        return 0;
    }
    if (p->fn.max_concurrency == 0) {
        exec__fail_paused(p, inv);
        return 0;
    }
    keep_warm_observe(p);
    if (ex->handoff && ex->handoff(ex->handoff_ud, inv))
        return 0;
    if (p->fn.tenancy.per_tenant && p->n_queued >= ex->cfg.max_queue &&
        !exec__idle_has(p, inv->tenant_id) && exec__tenant_at_cap(p, inv->tenant_id)) {
        exec__fail(ex, inv, INV_THROTTLED, "TooManyRequestsException",
                   "Rate exceeded: tenant id `%s` of %s has its %d instances running and %u calls "
                   "waiting",
                   inv->tenant_id, p->name, p->fn.tenancy.max_instances_per_tenant, p->n_queued);
        return 0;
    }
    /* Under tenant isolation, other tenant ids' idle instances are room. */
    bool room_elsewhere = p->fn.tenancy.per_tenant && exec__idle_other_oldest(p, inv->tenant_id);
    if (!exec__idle_has(p, inv->tenant_id) && p->n_queued >= ex->cfg.max_queue &&
        ((pool_full(p) && !room_elsewhere) || p->waiting_for_memory || p->waiting_for_start)) {
        exec__fail(ex, inv, INV_THROTTLED, "TooManyRequestsException",
                   "Rate exceeded: %s has %d calls running and %u waiting", p->name,
                   p->fn.max_concurrency, p->n_queued);
        return 0;
    }
    queue_push(p, inv);
    exec__pool_pump(p);
    /* Still waiting (inv itself or an older call): its deadline must fire
     * even if no instance frees up. */
    if (p->queue_tail)
        queue_timer_arm(ex, p->queue_tail->deadline_ns);
    return 0;
}

void exec_set_handoff(exec_t *ex, exec_handoff_fn fn, void *ud)
{
    ex->handoff = fn;
    ex->handoff_ud = ud;
}

void exec_handoff_done(exec_t *ex, invocation_t *inv, inv_status_t status, buf_t *result,
                       const char *error_type, const char *error_message)
{
    inv->status = status;
    inv->duration_ms = (double)(clock_mono_ns() - inv->enqueued_ns) / 1e6;
    buf_release(&inv->result);
    if (result) {
        inv->result = *result;
        buf_init(result, 0);
    }
    if (error_type) {
        free(inv->error_type);
        free(inv->error_message);
        inv->error_type = xstrdup(error_type);
        inv->error_message = xstrdup(error_message ? error_message : "");
        if (!inv->result.len)
            exec__error_doc(&inv->result, inv->error_type, inv->error_message);
    }
    record_and_finish(ex, inv);
}

bool exec_at_limit(exec_t *ex, const char *name)
{
    exec_pool_t *p = map_get(&ex->pools, name);
    if (!p || p->removed || p->idle)
        return false;
    return p->queue_head || pool_full(p);
}

void invocation_free(invocation_t *inv)
{
    if (!inv)
        return;
    buf_release(&inv->event);
    buf_release(&inv->result);
    free(inv->error_type);
    free(inv->error_message);
    free(inv->egress_json);
    free(inv->redact);
    free(inv->content_type);
    free(inv);
}

/* ---- changes to functions ----------------------------------------------- */

/* Stops idle instances of versions other than the pool's own; busy ones
 * stop when they next ask for work. */
static void drain_old(exec_pool_t *p)
{
    for (exec_instance_t **pp = &p->idle; *pp;) {
        exec_instance_t *inst = *pp;
        if (p->removed || inst->version != p->fn.version) {
            *pp = inst->next_idle;
            inst->next_idle = NULL;
            exec__instance_stop(inst);
        } else {
            pp = &inst->next_idle;
        }
    }
}

uint64_t exec_instances(const exec_t *ex)
{
    return ex->n_instances;
}

void exec_function_changed(exec_t *ex, const fn_t *fn)
{
    exec__runtime_seen(ex, fn->runtime);
    exec_pool_t *p = map_get(&ex->pools, fn->name);
    if (!p)
        return; /* nothing running: the next call reads the registry */
    if (fn->version != p->fn.version) {
        /* New code or settings may start where the old could not. */
        p->start_failures = 0;
        p->backoff_until_ns = 0;
    }
    fn_clear(&p->fn);
    fn_copy(&p->fn, fn);
    p->removed = false;
    drain_old(p);
    exec__pool_pump(p);
}

void exec_function_removed(exec_t *ex, const char *name)
{
    exec_pool_t *p = map_get(&ex->pools, name);
    if (!p)
        return;
    p->removed = true;
    if (p->prewarm_timer)
        uv_timer_stop(p->prewarm_timer);
    if (ex->keep_warm.forget)
        ex->keep_warm.forget(ex->keep_warm_ud, name);
    invocation_t *inv;
    while ((inv = queue_pop(p)))
        exec__fail(ex, inv, INV_ERROR, "ResourceNotFoundException",
                       "Function not found: %s was deleted", name);
    drain_old(p);
    pool_maybe_free(p);
}

/* ---- shutdown ------------------------------------------------------------ */

void exec_shutdown(exec_t *ex, void (*done)(void *ud), void *ud)
{
    ex->shutting_down = true;
    ex->shutdown_done = done;
    ex->shutdown_ud = ud;
    const char *key;
    void *value;
    /* Collect first: stopping may free pools while we walk the map. */
    size_t n = ex->pools.len, k = 0;
    exec_pool_t **pools = xcalloc(n ? n : 1, sizeof *pools);
    for (size_t it = 0; map_next(&ex->pools, &it, &key, &value);)
        pools[k++] = value;
    for (size_t i = 0; i < k; i++) {
        exec_pool_t *p = pools[i];
        invocation_t *inv;
        while ((inv = queue_pop(p)))
            exec__fail(ex, inv, INV_ERROR, "Mayfly.ShuttingDown",
                           "the server is shutting down");
        p->removed = true;
        if (p->prewarm_timer)
            uv_timer_stop(p->prewarm_timer);
        for (exec_instance_t *inst = p->instances, *next; inst; inst = next) {
            next = inst->next;
            exec__instance_stop(inst);
        }
        pool_maybe_free(p);
    }
    free(pools);
    /* No call waits any more: an armed deadline timer would only hold the
     * loop (and so the stop) until it fired. */
    uv_timer_stop(ex->queue_timer);
    ex->queue_timer_due = 0;
    if (ex->n_instances == 0 && ex->shutdown_done) {
        ex->shutdown_done = NULL;
        done(ud);
    }
}

void exec_free(exec_t *ex)
{
    if (!ex)
        return;
    const char *key;
    void *value;
    for (size_t it = 0; map_next(&ex->pools, &it, &key, &value);)
        pool_release(value);
    map_release(&ex->pools);
    uv_close((uv_handle_t *)ex->queue_timer, free_handle);
    uv_close((uv_handle_t *)ex->start_room_timer, free_handle);
    ex->start_room_timer = NULL;
    exec__busy_free(ex);
    map_release(&ex->code_users);
    registry_set_code_guard(ex->registry, NULL, NULL);
    http_router_release(&ex->runtime_router);
    egress_free(ex->egress);
    free(ex);
}
