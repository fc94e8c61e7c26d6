/* The durable execution engine (see durable/durable.h): starts
 * executions, hands their invocations the operation log, applies
 * checkpoints, and wakes suspended executions when what they wait for is
 * due. Every change runs as a job of the async queue's writer on
 * queue.db, so it is fsync'd before anyone hears of it; the loop keeps
 * only what is rebuilt from the file on a restart (which executions run,
 * when each is next due, who waits for which). */
#include "durable/durable.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cleanup.h"
#include "core/clock.h"
#include "core/id.h"
#include "core/json.h"
#include "core/log.h"
#include "core/map.h"
#include "core/xalloc.h"
#include "durable/internal.h"
#include "exec/exec.h"
#include "invoke/async.h"
#include "obs/metrics.h"
#include "store/durable.h"

#define DURABLE_PRUNE_MS (3600 * 1000)

/* ---- the loop's side ----------------------------------------------------- */

static void job_done(void *arg, int r, const mf_error_t *err);

/* A change is fsync'd before anyone hears of it; a read waits for no sync. */
static int submit(job_t *j, mf_error_t *err)
{
    int r = j->kind == JOB_STATE ? async_read(j->d->async, durable__job_apply, job_done, j, err)
                                 : async_write(j->d->async, true, durable__job_apply, job_done, j,
                                               err);
    if (r == 0)
        j->d->jobs++;
    return r;
}

static void durable_free(durable_t *d);

static void arm_timer(durable_t *d);

static durable_run_t *run_get(durable_t *d, const char *id, const char *function)
{
    durable_run_t *run = map_get(&d->runs, id);
    if (!run && function) {
        run = xcalloc(1, sizeof *run);
        snprintf(run->id, sizeof run->id, "%s", id);
        snprintf(run->function, sizeof run->function, "%s", function);
        map_put(&d->runs, id, run);
    }
    return run;
}

static void outcome_of(const store_durable_exec_t *ex, const char *region, char *arn, size_t len,
                       durable_outcome_t *o)
{
    durable_arn_format(region, ex->function, ex->name, ex->id, arn, len);
    o->arn = arn;
    o->id = ex->id;
    o->status = ex->status;
    o->result = ex->result;
    o->error = ex->error;
}

/* The execution ended: its waiters hear, its caller's chained invoke ends. */
static void ended(durable_t *d, const store_durable_exec_t *ex)
{
    durable_run_t *run = map_remove(&d->runs, ex->id);
    char arn[512];
    durable_outcome_t o = {0};
    outcome_of(ex, d->region, arn, sizeof arn, &o);
    while (run && run->waiters) {
        durable_waiter_t *w = run->waiters;
        run->waiters = w->next;
        w->cb(w->ud, &o);
        free(w);
    }
    free(run);
    log_info("durable", "execution %s of %s ended: %s", ex->id, ex->function, ex->status);
    if (ex->parent_id[0]) {
        job_t *j = durable__job_new(d, JOB_CHAINED_DONE);
        snprintf(j->id, sizeof j->id, "%s", ex->parent_id);
        j->ord = (size_t)strtoull(ex->parent_op, NULL, 10);
        snprintf(j->status_in, sizeof j->status_in, "%s", ex->status);
        if (!strcmp(ex->status, "SUCCEEDED"))
            j->payload = json_string(ex->result ? ex->result : "null");
        else
            j->error = ex->error ? json_loads(ex->error, 0, NULL) : NULL;
        mf_error_t err = MF_ERROR_INIT;
        if (submit(j, &err) < 0)
            durable__job_free(j);
    }
}

static void kick(durable_t *d, durable_run_t *run);

/* An execution that is not there any more (its function was deleted):
 * its waiters hear so and the loop forgets it. */
static void forget_run(durable_t *d, const char *id)
{
    durable_run_t *run = map_remove(&d->runs, id);
    mf_error_t err = MF_ERROR_INIT;
    mf_error_plain(&err, ENOENT, "the execution was deleted with its function");
    while (run && run->waiters) {
        durable_waiter_t *w = run->waiters;
        run->waiters = w->next;
        w->cb(w->ud, &(durable_outcome_t){.r = -ENOENT, .err = &err, .id = id});
        free(w);
    }
    free(run);
}

static void on_invoked(invocation_t *inv, void *ud)
{
    job_t *j = ud; /* a JOB_END prepared by kick */
    durable_t *d = j->d;
    j->now_ms = clock_wall_ms();
    if (inv->status == INV_SUCCESS) {
        json_t *answer =
            json_loadb(inv->result.data ? inv->result.data : "", inv->result.len, 0, NULL);
        if (json_is_string(json_object_get(answer, "Status"))) {
            j->answered = true;
            buf_add(&j->input, inv->result.data, inv->result.len);
        } else {
            snprintf(j->fail_type, sizeof j->fail_type, "Runtime.InvalidResponse");
            j->fail_message = xstrdup("the handler of a durable function must answer "
                                      "{Status, Result, Error}: wrap it with withDurableExecution");
        }
        json_decref(answer);
    } else {
        snprintf(j->fail_type, sizeof j->fail_type, "%s",
                 inv->error_type ? inv->error_type : "Error");
        j->fail_message = xstrdup(inv->error_message ? inv->error_message : "the call failed");
    }
    invocation_free(inv);
    mf_error_t err = MF_ERROR_INIT;
    if (submit(j, &err) < 0) {
        log_warn("durable", "execution %s: %s", j->id, err.msg);
        durable__job_free(j);
    }
    (void)d;
}

/* Runs the execution's next invocation (once it is not running one). */
static void kick(durable_t *d, durable_run_t *run)
{
    if (d->stopping || run->in_flight)
        return;
    run->in_flight = true;
    run->rekick = false;
    run->wake_ms = 0;
    job_t *j = durable__job_new(d, JOB_BEGIN);
    snprintf(j->id, sizeof j->id, "%s", run->id);
    mf_error_t err = MF_ERROR_INIT;
    if (submit(j, &err) < 0) {
        run->in_flight = false;
        durable__job_free(j);
    }
}

static void begun(durable_t *d, job_t *j)
{
    durable_run_t *run = run_get(d, j->ex.id, j->ex.function);
    if (j->finished) {
        if (run)
            run->in_flight = false;
        ended(d, &j->ex);
        return;
    }
    job_t *end = durable__job_new(d, JOB_END);
    snprintf(end->id, sizeof end->id, "%s", j->ex.id);
    buf_t event = BUF_INIT;
    json_dump_buf(&event, j->body);
    char trigger[STORE_TRIGGER_MAX];
    snprintf(trigger, sizeof trigger, "durable:%s", j->ex.id);
    mf_error_t err = MF_ERROR_INIT;
    int r = exec_invoke_opts(d->exec, j->ex.function, &event,
                             &(exec_call_opts_t){.trigger = trigger}, on_invoked, end, &err);
    if (r < 0) {
        buf_release(&event);
        if (r == -EDQUOT)
            log_info("durable", "execution %s waits: %s", j->ex.id, err.msg);
        end->held = r == -EDQUOT;
        snprintf(end->fail_type, sizeof end->fail_type, "%s",
                 r == -ENOENT ? "ResourceNotFoundException" : "Mayfly.InvokeFailed");
        end->fail_message = xstrdup(err.msg);
        if (submit(end, &err) < 0)
            durable__job_free(end);
    }
}

static void job_done(void *arg, int r, const mf_error_t *err)
{
    job_t *j = arg;
    durable_t *d = j->d;
    d->jobs--;
    if (d->closed) {
        /* The server is going: what was written stays, nobody waits. */
        durable__job_free(j);
        if (!d->jobs)
            durable_free(d);
        return;
    }
    if (r < 0) {
        log_warn("durable", "execution %s: %s", j->id[0] ? j->id : j->ex.id, err->msg);
        durable__job_refuse(j, 500, "ServiceException", "%s", err->msg);
    }
    switch (j->kind) {
    case JOB_START: {
        char arn[512];
        durable_outcome_t o = {.r = r, .err = err, .existed = j->existed};
        if (r == 0 && j->status >= 400) {
            o.r = -EEXIST;
            mf_error_t e = MF_ERROR_INIT;
            mf_error_plain(&e, EEXIST, "%s", j->message);
            o.err = &e;
            j->ocb(j->ud, &o);
            break;
        }
        if (r < 0) {
            j->ocb(j->ud, &o);
            break;
        }
        outcome_of(&j->ex, d->region, arn, sizeof arn, &o);
        bool running = !strcmp(j->ex.status, "RUNNING");
        durable_run_t *run = running ? run_get(d, j->ex.id, j->ex.function) : NULL;
        if (j->sopts.wait && running) {
            durable_waiter_t *w = xcalloc(1, sizeof *w);
            w->cb = j->ocb;
            w->ud = j->ud;
            w->next = run->waiters;
            run->waiters = w;
        } else {
            j->ocb(j->ud, &o);
        }
        if (run && !j->existed)
            kick(d, run);
        break;
    }
    case JOB_BEGIN: {
        durable_run_t *run = run_get(d, j->id, NULL);
        if (r == 0 && j->gone) {
            forget_run(d, j->id);
            break;
        }
        if (r < 0) {
            if (run) {
                run->in_flight = false;
                run->wake_ms = clock_wall_ms() + 1000;
                arm_timer(d);
            }
            break;
        }
        begun(d, j);
        break;
    }
    case JOB_END: {
        if (r == 0 && j->gone) {
            forget_run(d, j->id);
            break;
        }
        durable_run_t *run = run_get(d, j->id, NULL);
        if (run)
            run->in_flight = false;
        if (r < 0) {
            if (run) {
                run->wake_ms = clock_wall_ms() + 1000;
                arm_timer(d);
            }
            break;
        }
        if (j->finished || strcmp(j->ex.status, "RUNNING")) {
            ended(d, &j->ex);
            break;
        }
        if (!run)
            run = run_get(d, j->ex.id, j->ex.function);
        run->wake_ms = j->ex.next_wake_ms;
        if (run->rekick && !run->wake_ms)
            run->wake_ms = clock_wall_ms();
        arm_timer(d);
        break;
    }
    case JOB_CHECKPOINT: {
        /* The callees its chained invokes created run now. */
        size_t i;
        json_t *c;
        json_array_foreach(j->chained, i, c)
        {
            durable_run_t *run = run_get(d, json_string_value(json_object_get(c, "id")),
                                         json_string_value(json_object_get(c, "function")));
            kick(d, run);
        }
        j->acb(j->ud, &(durable_answer_t){.status = j->status ? j->status : 500,
                                          .error_type = j->error_type,
                                          .message = j->message,
                                          .body = j->body});
        break;
    }
    case JOB_CALLBACK:
    case JOB_CHAINED_DONE: {
        if (r == 0 && j->changed && !strcmp(j->ex.status, "RUNNING")) {
            durable_run_t *run = run_get(d, j->ex.id, j->ex.function);
            if (run->in_flight)
                run->rekick = true;
            else
                kick(d, run);
        } else if (r == 0 && j->kind == JOB_CALLBACK && !strcmp(j->ex.status, "RUNNING")) {
            /* A heartbeat moves the callback's deadline on. */
            durable_run_t *run = run_get(d, j->ex.id, j->ex.function);
            if (!run->in_flight) {
                run->wake_ms = j->ex.next_wake_ms;
                arm_timer(d);
            }
        }
        if (j->acb)
            j->acb(j->ud, &(durable_answer_t){.status = j->status ? j->status : 500,
                                              .error_type = j->error_type,
                                              .message = j->message,
                                              .body = j->body});
        break;
    }
    case JOB_STOP:
    case JOB_STATE:
        if (r == 0 && j->finished)
            ended(d, &j->ex);
        j->acb(j->ud, &(durable_answer_t){.status = j->status ? j->status : 500,
                                          .error_type = j->error_type,
                                          .message = j->message,
                                          .body = j->body});
        break;
    }
    durable__job_free(j);
}

/* ---- timers ----------------------------------------------------------------- */

static void on_timer(uv_timer_t *t)
{
    durable_t *d = t->data;
    int64_t now = clock_wall_ms();
    size_t it = 0;
    const char *key;
    void *value;
    /* Collected first: kick may change the map's entries' state, not its shape. */
    while (map_next(&d->runs, &it, &key, &value)) {
        durable_run_t *run = value;
        if (!run->in_flight && run->wake_ms && run->wake_ms <= now)
            kick(d, run);
    }
    arm_timer(d);
}

static void arm_timer(durable_t *d)
{
    if (d->stopping)
        return;
    int64_t next = 0;
    size_t it = 0;
    const char *key;
    void *value;
    while (map_next(&d->runs, &it, &key, &value)) {
        durable_run_t *run = value;
        if (!run->in_flight && run->wake_ms && (!next || run->wake_ms < next))
            next = run->wake_ms;
    }
    uv_timer_stop(d->timer);
    if (!next)
        return;
    int64_t delay = next - clock_wall_ms();
    uv_timer_start(d->timer, on_timer, delay > 0 ? (uint64_t)delay : 0, 0);
}

/* ---- retention ---------------------------------------------------------- */

static int prune_apply(void *db, void *arg, mf_error_t *err)
{
    int64_t n = 0;
    return store_durable_prune(db, clock_wall_ms(), &n, err);
}

static void prune_done(void *arg, int r, const mf_error_t *err)
{
    if (r < 0)
        log_warn("durable", "pruning executions: %s", err->msg);
}

void durable_prune(durable_t *d)
{
    mf_error_t err = MF_ERROR_INIT;
    async_write(d->async, false, prune_apply, prune_done, d, &err);
}

static void on_prune(uv_timer_t *t)
{
    durable_prune(t->data);
}

/* ---- metrics -------------------------------------------------------------- */

/* The executions by status and the operations they wait on are counted in
 * the database, a scan of every execution kept: too slow to run on the
 * loop on either store (on PostgreSQL a round trip as well). They are read
 * by a job of the queue's writer instead, on both stores alike, every
 * DURABLE_COUNTS_MS while someone reads /metrics (a scrape in the last
 * DURABLE_COUNTS_WATCHED_MS), and /metrics shows the last counts read: at
 * most that old while watched, the first scrape after a quiet spell aside.
 * A node nobody watches does not count at all. */
#define DURABLE_COUNTS_MS 5000
#define DURABLE_COUNTS_WATCHED_MS (120 * 1000)

typedef struct counts_job {
    durable_t *d;
    int64_t counts[5], timers, callbacks;
} counts_job_t;

static void counts_show(durable_t *d, const int64_t counts[5], int64_t timers,
                        int64_t callbacks)
{
    static const char *const names[5] = {"RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"};
    for (int i = 0; i < 5; i++)
        metrics_set(d->m_execs, (const char *[]){names[i]}, (double)counts[i]);
    metrics_set(d->m_pending, (const char *[]){"timer"}, (double)timers);
    metrics_set(d->m_pending, (const char *[]){"callback"}, (double)callbacks);
}

/* On the queue's writer thread, with its connection. */
static int counts_apply(void *db, void *arg, mf_error_t *err)
{
    counts_job_t *j = arg;
    return store_durable_counts(db, j->counts, &j->timers, &j->callbacks, err);
}

static void counts_done(void *arg, int r, const mf_error_t *err)
{
    counts_job_t *j = arg;
    durable_t *d = j->d;
    d->jobs--;
    d->counting = false;
    if (d->closed) {
        free(j);
        if (!d->jobs)
            durable_free(d);
        return;
    }
    if (r < 0) {
        /* Said once, not every few seconds while the database is away. */
        if (!d->counts_failed)
            log_warn("durable", "counting executions for /metrics: %s", err->msg);
        d->counts_failed = true;
    } else {
        d->counts_failed = false;
        counts_show(d, j->counts, j->timers, j->callbacks);
    }
    free(j);
}

static void counts_refresh(durable_t *d)
{
    if (d->counting || d->stopping)
        return;
    counts_job_t *j = xcalloc(1, sizeof *j);
    j->d = d;
    mf_error_t err = MF_ERROR_INIT;
    if (async_read(d->async, counts_apply, counts_done, j, &err) < 0) {
        free(j);
        return;
    }
    d->jobs++;
    d->counting = true;
    d->counted_ns = clock_mono_ns();
}

static void on_counts_timer(uv_timer_t *t)
{
    durable_t *d = t->data;
    if (clock_mono_ns() - d->scraped_ns < (uint64_t)DURABLE_COUNTS_WATCHED_MS * 1000000)
        counts_refresh(d);
}

/* Before each render of /metrics: the gauges hold the last counts read; a
 * scrape after a quiet spell has them read again now, for the next. */
static void collect(void *ud)
{
    durable_t *d = ud;
    d->scraped_ns = clock_mono_ns();
    if (d->scraped_ns - d->counted_ns >= (uint64_t)DURABLE_COUNTS_MS * 1000000)
        counts_refresh(d);
}

/* ---- public ----------------------------------------------------------------- */

/* ---- calls from elsewhere (exec_set_handoff) -------------------------------- */

/* A call of a durable function that did not come through the invoke APIs
 * (an async event: a schedule's, a topic's, a destination's; a URL; a
 * call from another function) starts an execution too, as on Lambda. An
 * event's execution is named by the event's id, so an attempt run again
 * after a crash finds the execution the first one started; it ends when
 * the execution has started. A synchronous call waits for its end. */
typedef struct handed {
    durable_t *d;
    invocation_t *inv;
} handed_t;

static void handed_outcome(void *ud, const durable_outcome_t *o)
{
    handed_t *h = ud;
    exec_t *ex = h->d->exec;
    invocation_t *inv = h->inv;
    free(h);
    if (o->r < 0) {
        exec_handoff_done(ex, inv, INV_ERROR, NULL,
                          o->r == -ESHUTDOWN ? "Mayfly.ShuttingDown" : "Mayfly.DurableStart",
                          o->err ? o->err->msg : "the execution could not start");
        return;
    }
    buf_t out = BUF_INIT;
    if (!inv->event_attempt && !strcmp(o->status, "SUCCEEDED")) {
        buf_adds(&out, o->result ? o->result : "null");
    } else if (inv->event_attempt || !strcmp(o->status, "RUNNING")) {
        buf_adds(&out, "{\"DurableExecutionArn\":");
        json_quote(&out, o->arn, strlen(o->arn));
        buf_adds(&out, ",\"Status\":");
        json_quote(&out, o->status, strlen(o->status));
        buf_addch(&out, '}');
    } else {
        /* Ended otherwise: a function error, with the execution's. */
        cleanup_json json_t *e = o->error ? json_loads(o->error, 0, NULL) : NULL;
        const char *type = json_string_value(json_object_get(e, "ErrorType"));
        const char *msg = json_string_value(json_object_get(e, "ErrorMessage"));
        char what[96];
        snprintf(what, sizeof what, "the durable execution ended %s", o->status);
        exec_handoff_done(ex, inv, INV_ERROR, NULL, type ? type : "Error", msg ? msg : what);
        return;
    }
    exec_handoff_done(ex, inv, INV_SUCCESS, &out, NULL, NULL);
}

static bool handoff(void *ud, invocation_t *inv)
{
    durable_t *d = ud;
    /* The engine's own calls of the function run on an instance. */
    if (!strncmp(inv->trigger, "durable:", 8) || !map_get(&d->fns, inv->function))
        return false;
    /* A copy: the call's record keeps its event. */
    buf_t input = BUF_INIT;
    buf_add(&input, inv->event.data ? inv->event.data : "", inv->event.len);
    durable_start_opts_t opts = {.name = inv->event_attempt ? inv->request_id : NULL,
                                 .wait = !inv->event_attempt,
                                 .caller_request_id =
                                     inv->caller_request_id[0] ? inv->caller_request_id : NULL};
    handed_t *h = xmalloc(sizeof *h);
    *h = (handed_t){d, inv};
    mf_error_t err = MF_ERROR_INIT;
    if (durable_start(d, inv->function, &input, &opts, handed_outcome, h, &err) < 0) {
        free(h);
        buf_release(&input);
        exec_handoff_done(d->exec, inv, INV_ERROR, NULL, "Mayfly.DurableStart", err.msg);
    }
    return true;
}

int durable_open(uv_loop_t *loop, async_t *async, exec_t *exec, registry_t *registry,
                 const durable_config_t *cfg, durable_t **out, mf_error_t *err)
{
    durable_t *d = xcalloc(1, sizeof *d);
    d->loop = loop;
    d->async = async;
    d->exec = exec;
    d->registry = registry;
    snprintf(d->region, sizeof d->region, "%s", cfg && cfg->region ? cfg->region : "us-east-1");
    d->timer = xmalloc(sizeof *d->timer);
    uv_timer_init(loop, d->timer);
    d->timer->data = d;
    d->prune_timer = xmalloc(sizeof *d->prune_timer);
    uv_timer_init(loop, d->prune_timer);
    d->prune_timer->data = d;
    uv_timer_start(d->prune_timer, on_prune, 60 * 1000, DURABLE_PRUNE_MS);
    uv_unref((uv_handle_t *)d->prune_timer);

    fn_t *fns = NULL;
    size_t nfns = 0;
    if (registry_list(registry, &fns, &nfns, err) < 0) {
        durable_close(d);
        return -EIO;
    }
    for (size_t i = 0; i < nfns; i++)
        durable_function_changed(d, &fns[i]);
    fn_list_free(fns, nfns);

    store_durable_exec_t *running = NULL;
    size_t n = 0;
    int r = store_durable_exec_running(async_store(async), &running, &n, err);
    if (r < 0) {
        durable_close(d);
        return r;
    }
    int64_t now = clock_wall_ms();
    for (size_t i = 0; i < n; i++) {
        durable_run_t *run = run_get(d, running[i].id, running[i].function);
        /* One that was running when the server stopped runs again now. */
        run->wake_ms = running[i].in_flight ? now : running[i].next_wake_ms;
    }
    if (n)
        log_info("durable", "taking up %zu running executions", n);
    store_durable_exec_list_free(running, n);
    static const char *const status_label[] = {"status", NULL};
    static const char *const kind_label[] = {"kind", NULL};
    d->m_execs = metrics_family_new(METRICS_GAUGE, "mayfly_durable_executions",
                                    "Durable executions kept, by status", status_label, NULL, 0);
    d->m_pending = metrics_family_new(METRICS_GAUGE, "mayfly_durable_pending",
                                      "Operations running executions wait on (timer: waits and "
                                      "step retries; callback)",
                                      kind_label, NULL, 0);
    /* The first counts are read now, as the running executions were:
     * the server serves nothing yet. */
    int64_t counts[5], timers, callbacks;
    mf_error_t cerr = MF_ERROR_INIT;
    if (store_durable_counts(async_store(async), counts, &timers, &callbacks, &cerr) == 0)
        counts_show(d, counts, timers, callbacks);
    else
        log_warn("durable", "counting executions for /metrics: %s", cerr.msg);
    d->counted_ns = clock_mono_ns();
    d->counts_timer = xmalloc(sizeof *d->counts_timer);
    uv_timer_init(loop, d->counts_timer);
    d->counts_timer->data = d;
    uv_timer_start(d->counts_timer, on_counts_timer, DURABLE_COUNTS_MS, DURABLE_COUNTS_MS);
    uv_unref((uv_handle_t *)d->counts_timer);
    metrics_add_collector(collect, d);
    exec_set_handoff(exec, handoff, d);
    arm_timer(d);
    *out = d;
    return 0;
}

void durable_stop(durable_t *d)
{
    if (!d || d->stopping)
        return;
    d->stopping = true;
    uv_timer_stop(d->timer);
    uv_timer_stop(d->prune_timer);
    if (d->counts_timer)
        uv_timer_stop(d->counts_timer);
    size_t it = 0;
    const char *key;
    void *value;
    mf_error_t err = MF_ERROR_INIT;
    mf_error_plain(&err, ESHUTDOWN, "the server is shutting down");
    while (map_next(&d->runs, &it, &key, &value)) {
        durable_run_t *run = value;
        while (run->waiters) {
            durable_waiter_t *w = run->waiters;
            run->waiters = w->next;
            w->cb(w->ud, &(durable_outcome_t){.r = -ESHUTDOWN, .err = &err, .id = run->id});
            free(w);
        }
    }
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

void durable_close(durable_t *d)
{
    if (!d)
        return;
    durable_stop(d);
    if (d->exec)
        exec_set_handoff(d->exec, NULL, NULL);
    size_t it = 0;
    const char *key;
    void *value;
    while (map_next(&d->runs, &it, &key, &value))
        free(value);
    map_release(&d->runs);
    it = 0;
    while (map_next(&d->fns, &it, &key, &value))
        free(value);
    map_release(&d->fns);
    uv_close((uv_handle_t *)d->timer, free_handle);
    uv_close((uv_handle_t *)d->prune_timer, free_handle);
    if (d->counts_timer)
        uv_close((uv_handle_t *)d->counts_timer, free_handle);
    d->closed = true;
    if (!d->jobs)
        durable_free(d);
}

static void durable_free(durable_t *d)
{
    free(d);
}

void durable_function_changed(durable_t *d, const fn_t *fn)
{
    if (!fn->durable.enabled) {
        free(map_remove(&d->fns, fn->name));
        return;
    }
    durable_fn_t *df = map_get(&d->fns, fn->name);
    if (!df) {
        df = xcalloc(1, sizeof *df);
        map_put(&d->fns, fn->name, df);
    }
    df->cfg = fn->durable;
}

static int forget_apply(void *db, void *arg, mf_error_t *err)
{
    return store_durable_forget_function(db, arg, err);
}

static void forget_done(void *arg, int r, const mf_error_t *err)
{
    if (r < 0)
        log_warn("durable", "forgetting %s's executions: %s", (char *)arg, err->msg);
    free(arg);
}

void durable_function_removed(durable_t *d, const char *function, bool stored)
{
    free(map_remove(&d->fns, function));
    /* Its executions go with it: those not running now are forgotten at
     * once, a running one when its invocation ends. */
    for (;;) {
        size_t it = 0, n = 0;
        const char *key;
        void *value;
        char gone[64][37];
        while (map_next(&d->runs, &it, &key, &value) && n < 64) {
            durable_run_t *run = value;
            if (!strcmp(run->function, function) && !run->in_flight)
                snprintf(gone[n++], sizeof gone[0], "%s", run->id);
        }
        if (!n)
            break;
        for (size_t i = 0; i < n; i++)
            forget_run(d, gone[i]);
    }
    if (!stored)
        return;
    mf_error_t err = MF_ERROR_INIT;
    char *name = xstrdup(function);
    if (async_write(d->async, false, forget_apply, forget_done, name, &err) < 0)
        free(name);
}

bool durable_is_durable(durable_t *d, const char *function)
{
    return d && map_get(&d->fns, function) != NULL;
}

int durable_start(durable_t *d, const char *function, buf_t *input,
                  const durable_start_opts_t *opts, durable_outcome_cb cb, void *ud,
                  mf_error_t *err)
{
    if (d->stopping)
        return mf_error_plain(err, ESHUTDOWN, "the server is shutting down");
    durable_fn_t *df = map_get(&d->fns, function);
    if (!df)
        return mf_error_plain(err, ENOENT, "%s is not a durable function", function);
    if (opts && opts->name && !durable_name_valid(opts->name))
        return mf_error_plain(err, EINVAL, "DurableExecutionName: must match [A-Za-z0-9_-]{1,64}");
    /* The input is the SDK's InputPayload: JSON text; an empty body is {}. */
    if (input->len == 0)
        buf_adds(input, "{}");
    json_t *parsed = memchr(input->data, '\0', input->len)
                         ? NULL
                         : json_loadb(input->data, input->len, JSON_DECODE_ANY, NULL);
    if (!parsed)
        return mf_error_plain(err, EINVAL, "a durable execution's input must be JSON");
    json_decref(parsed);
    job_t *j = durable__job_new(d, JOB_START);
    snprintf(j->function, sizeof j->function, "%s", function);
    if (opts && opts->name)
        snprintf(j->name, sizeof j->name, "%s", opts->name);
    j->timeout_s = df->cfg.execution_timeout_s;
    j->retention_days = df->cfg.retention_days;
    j->input = *input;
    buf_init(input, 0);
    j->ocb = cb;
    j->ud = ud;
    if (opts)
        j->sopts = *opts;
    int r = submit(j, err);
    if (r < 0) {
        *input = j->input;
        buf_init(&j->input, 0);
        durable__job_free(j);
    }
    return r;
}

static void answer_now(durable_answer_cb cb, void *ud, int status, const char *type,
                       const char *msg)
{
    cb(ud, &(durable_answer_t){.status = status, .error_type = type, .message = msg});
}

void durable_checkpoint(durable_t *d, const char *caller, const durable_arn_t *arn,
                        const char *body, size_t len, durable_answer_cb cb, void *ud)
{
    job_t *j = durable__job_new(d, JOB_CHECKPOINT);
    mf_error_t err = MF_ERROR_INIT;
    int r = durable_checkpoint_parse(body, len, &j->cp, &err);
    if (r < 0) {
        durable__job_free(j);
        answer_now(cb, ud, r == -EFBIG ? 413 : 400,
                   r == -EFBIG ? "RequestTooLargeException" : "InvalidParameterValueException",
                   err.msg);
        return;
    }
    if (caller && strcmp(caller, arn->function)) {
        durable__job_free(j);
        char msg[256];
        snprintf(msg, sizeof msg, "function %s may not checkpoint an execution of %s", caller,
                 arn->function);
        answer_now(cb, ud, 403, "AccessDeniedException", msg);
        return;
    }
    snprintf(j->id, sizeof j->id, "%s", arn->id);
    snprintf(j->caller, sizeof j->caller, "%s", caller ? caller : "");
    /* The settings of the durable functions its chained invokes name, read
     * here on the loop for the writer's thread. */
    j->callees = json_object();
    size_t i;
    json_t *u;
    json_array_foreach(j->cp.updates, i, u)
    {
        const json_t *o = json_object_get(u, "ChainedInvokeOptions");
        const char *f = json_string_value(json_object_get(o, "FunctionName"));
        char fname[TENANT_QNAME_MAX + 1];
        durable_fn_t *df = f && durable__function_name(arn->function, f, fname) ? map_get(&d->fns, fname) : NULL;
        if (df)
            json_object_set_new(j->callees, fname,
                                json_pack("{s:i, s:i}", "timeout_s", df->cfg.execution_timeout_s,
                                          "retention_days", df->cfg.retention_days));
    }
    j->acb = cb;
    j->ud = ud;
    if (submit(j, &err) < 0) {
        durable__job_free(j);
        answer_now(cb, ud, 503, "ServiceException", err.msg);
    }
}

void durable_state(durable_t *d, const char *caller, const durable_arn_t *arn, const char *token,
                   const char *marker, int max_items, durable_answer_cb cb, void *ud)
{
    if (caller && strcmp(caller, arn->function)) {
        answer_now(cb, ud, 403, "AccessDeniedException",
                   "a function reads the state of its own executions only");
        return;
    }
    /* Read by the queue's writer (apply.c), after the checkpoints before it. */
    job_t *j = durable__job_new(d, JOB_STATE);
    snprintf(j->id, sizeof j->id, "%s", arn->id);
    snprintf(j->function, sizeof j->function, "%s", arn->function);
    j->token = token ? xstrdup(token) : NULL;
    j->marker = marker ? xstrdup(marker) : NULL;
    j->max_items = max_items;
    j->acb = cb;
    j->ud = ud;
    mf_error_t err = MF_ERROR_INIT;
    if (submit(j, &err) < 0) {
        durable__job_free(j);
        answer_now(cb, ud, 503, "ServiceException", err.msg);
    }
}

void durable_callback(durable_t *d, const char *callback_id, const char *kind, const char *body,
                      size_t len, durable_answer_cb cb, void *ud)
{
    if (strlen(callback_id) >= 65) {
        answer_now(cb, ud, 404, "ResourceNotFoundException", "no such callback");
        return;
    }
    job_t *j = durable__job_new(d, JOB_CALLBACK);
    snprintf(j->callback_id, sizeof j->callback_id, "%s", callback_id);
    snprintf(j->kind_s, sizeof j->kind_s, "%s", kind);
    if (!strcmp(kind, "succeed")) {
        if (len > DURABLE_MAX_PAYLOAD) {
            durable__job_free(j);
            answer_now(cb, ud, 413, "RequestTooLargeException", "Result: at most 256 KiB");
            return;
        }
        /* The result is the body's bytes, as the SDK's callback passes them. */
        buf_t b = BUF_INIT;
        buf_add(&b, body ? body : "", len);
        if (memchr(b.data ? b.data : "", '\0', b.len)) {
            buf_release(&b);
            durable__job_free(j);
            answer_now(cb, ud, 400, "InvalidParameterValueException", "Result: must be text");
            return;
        }
        j->payload = json_stringn(b.data ? b.data : "", b.len);
        buf_release(&b);
        if (!j->payload) {
            durable__job_free(j);
            answer_now(cb, ud, 400, "InvalidParameterValueException", "Result: must be UTF-8");
            return;
        }
    } else if (!strcmp(kind, "fail")) {
        j->error = len ? json_loadb(body, len, 0, NULL) : json_object();
        if (!json_is_object(j->error) || len > DURABLE_MAX_PAYLOAD) {
            durable__job_free(j);
            answer_now(cb, ud, 400, "InvalidParameterValueException",
                       "the body must be an ErrorObject {ErrorType, ErrorMessage, …}");
            return;
        }
    }
    j->acb = cb;
    j->ud = ud;
    mf_error_t err = MF_ERROR_INIT;
    if (submit(j, &err) < 0) {
        durable__job_free(j);
        answer_now(cb, ud, 503, "ServiceException", err.msg);
    }
}

void durable_stop_execution(durable_t *d, const char *id, const json_t *error, durable_answer_cb cb,
                            void *ud)
{
    job_t *j = durable__job_new(d, JOB_STOP);
    snprintf(j->id, sizeof j->id, "%s", id);
    j->error = error ? json_deep_copy(error) : NULL;
    j->acb = cb;
    j->ud = ud;
    mf_error_t err = MF_ERROR_INIT;
    if (submit(j, &err) < 0) {
        durable__job_free(j);
        answer_now(cb, ud, 503, "ServiceException", err.msg);
    }
}
