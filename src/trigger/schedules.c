/* Schedules: settings, the plan of each one's next fire, one timer for
 * all of them, and fires as async events (see schedules.h). */
#include "trigger/schedules.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/id.h"
#include "core/json.h"
#include "core/log.h"
#include "core/map.h"
#include "core/xalloc.h"
#include "obs/metrics.h"
#include "store/schedules.h"
#include "trigger/due.h"
#include "trigger/schedule_expr.h"
#include "trigger/tz.h"

/* A timer never sleeps longer than this, so that a step of the wall clock
 * (NTP, a suspended machine) is noticed within a minute. */
#define SCHEDULES_MAX_SLEEP_MS 60000

typedef struct entry {
    store_schedule_t s;          /* as stored (input owned) */
    sched_expr_t expr;
    const tz_t *zone;            /* the service's cache holds it */
    bool has_last;               /* a fire is logged: */
    int64_t last_due_s;          /* the latest due time fired */
    int64_t last_fired_ms;
    char last_request_id[ID_UUID_LEN + 1];
    char *last_error;            /* owned; NULL when it queued its event */
    bool planned;                /* the next fire is worked out: */
    int64_t plan_due_s;          /* the due time */
    int64_t plan_at_ms;          /* when it fires (its flexible window's offset in) */
    bool inflight;               /* a fire is on its way to the queue */
} entry_t;

struct schedules {
    uv_loop_t *loop;
    async_t *async;
    registry_t *registry;
    schedules_config_t cfg;
    char region[33];
    char zoneinfo_dir[4096];
    map_t entries;               /* name → entry_t */
    map_t zones;                 /* name → tz_t, loaded once */
    tz_t *utc;
    uv_timer_t *timer;
    bool stopping;
    int64_t test_now_ms;
    metrics_family_t *m_fires;
};

static void schedules__wake(schedules_t *s);

/* ---- clocks, names and zones ------------------------------------------------ */

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

int64_t schedules_now_ms(schedules_t *s)
{
    return s->cfg.test_clock ? s->test_now_ms : clock_wall_ms() + s->cfg.clock_offset_ms;
}

bool schedules_test_clock(schedules_t *s)
{
    return s->cfg.test_clock;
}

bool schedules_valid_name(const char *qname)
{
    const char *name = tenant_check(qname);
    if (!name)
        return false;
    size_t n = strnlen(name, SCHEDULE_NAME_MAX + 1);
    return n >= 1 && n <= SCHEDULE_NAME_MAX &&
           strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

/* The zone name, loaded from the zone files once. */
static int schedules__zone(schedules_t *s, const char *name, const tz_t **out, mf_error_t *err)
{
    tz_t *z = map_get(&s->zones, name);
    if (!z) {
        int r = tz_load(s->zoneinfo_dir[0] ? s->zoneinfo_dir : NULL, name, &z, err);
        if (r < 0)
            return r;
        map_put(&s->zones, name, z);
    }
    *out = z;
    return 0;
}

/* A 64-bit mix (splitmix64's finalizer). */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* The offset within the flexible window at which due time due fires: it
 * looks random (spreading schedules that share a due time, which is what
 * the window is for) but is the same every time it is worked out. */
static int64_t schedules__flex_ms(const entry_t *e, int64_t due_s)
{
    if (e->s.flexible_window_min <= 0)
        return 0;
    uint64_t h = 1469598103934665603ULL; /* FNV-1a of the name */
    for (const char *p = e->s.name; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ULL;
    uint64_t window = (uint64_t)e->s.flexible_window_min * 60000;
    return (int64_t)(mix64(h ^ (uint64_t)due_s) % window);
}

/* Due times count from here: after the latest fire, and never from
 * before the schedule's start (its creation, or its last change of
 * expression, zone or enabling). */
static int64_t schedules__base_s(const entry_t *e)
{
    int64_t base = floor_div(e->s.start_ms, 1000) - 1;
    if (e->has_last && e->last_due_s > base)
        base = e->last_due_s;
    return base;
}

/* Works out e's next fire as of now_s: the latest due time that has come
 * and not fired (the one a catch-up fires), else the next one. */
static void schedules__plan(entry_t *e, int64_t now_s)
{
    e->planned = false;
    if (!e->s.enabled || !e->zone)
        return;
    int64_t start_s = floor_div(e->s.start_ms, 1000), base = schedules__base_s(e), due;
    if (sched_due_latest(&e->expr, e->zone, start_s, base, now_s, &due) < 0 &&
        sched_due_next(&e->expr, e->zone, start_s, base > now_s ? base : now_s, &due) < 0)
        return;
    e->planned = true;
    e->plan_due_s = due;
    e->plan_at_ms = due * 1000 + schedules__flex_ms(e, due);
}

/* ---- firing -------------------------------------------------------------------- */

typedef struct fire_job {
    schedules_t *s;
    char name[TENANT_QNAME_MAX + 1];
    store_schedule_fire_t fire;
} fire_job_t;

/* Runs on the queue writer's thread, in the event's own transaction. */
static int schedules__fire_with_event(store_queue_t *q, const store_qevent_t *ev, void *arg,
                                      mf_error_t *err)
{
    fire_job_t *j = arg;
    snprintf(j->fire.request_id, sizeof j->fire.request_id, "%s", ev->request_id);
    return store_schedule_fire_put(q, &j->fire, err);
}

/* A fire that queued nothing: its row alone. */
static int schedules__fire_log_apply(void *db, void *arg, mf_error_t *err)
{
    fire_job_t *j = arg;
    return store_schedule_fire_put(db, &j->fire, err);
}

/* The fire is written (r == 0) or not: what the schedule shows, and its
 * next plan. */
static void schedules__fired(fire_job_t *j, int r, const char *request_id, const mf_error_t *err)
{
    schedules_t *s = j->s;
    entry_t *e = map_get(&s->entries, j->name);
    const char *outcome = r == 0 && !j->fire.error ? "queued" : "failed";
    if (r < 0 && r != -EEXIST && r != -ENOENT)
        log_error("schedules", "%s: the fire due at %lld was not written: %s", j->name,
                  (long long)(j->fire.due_ms / 1000), err && err->msg[0] ? err->msg : "?");
    if (e) {
        e->inflight = false;
        /* Written, or written before (-EEXIST): either way this due time
         * is done. A failed write is not tried again: the next due time is
         * the next chance, as after a crash. */
        if (r != -ENOENT) {
            e->has_last = true;
            e->last_due_s = j->fire.due_ms / 1000;
            e->last_fired_ms = j->fire.fired_ms;
            snprintf(e->last_request_id, sizeof e->last_request_id, "%s",
                     r == 0 && request_id ? request_id : "");
            free(e->last_error);
            e->last_error = r == 0 ? (j->fire.error ? xstrdup(j->fire.error) : NULL)
                                   : xstrdup(err && err->msg[0] ? err->msg : "not written");
            metrics_inc(s->m_fires, (const char *[]){ j->name, outcome }, 1);
        }
        e->planned = false;
    }
    free(j->fire.error);
    free(j);
    schedules__wake(s);
}

static void schedules__fire_accepted(void *ud, int r, const char *request_id, bool replay,
                                     const mf_error_t *err)
{
    (void)replay;
    schedules__fired(ud, r, request_id, err);
}

static void schedules__fire_logged(void *arg, int r, const mf_error_t *err)
{
    schedules__fired(arg, r, NULL, err);
}

/* EventBridge's scheduled event, for a schedule without input. */
static void schedules__scheduled_event(schedules_t *s, const entry_t *e, int64_t due_s, buf_t *out)
{
    char id[ID_UUID_LEN + 1], time[40], arn[256];
    id_uuid4(id);
    tz_format_rfc3339(s->utc, due_s, time, sizeof time);
    snprintf(arn, sizeof arn, "arn:aws:scheduler:%s:000000000000:schedule/default/%s", s->region,
             e->s.name);
    cleanup_json json_t *ev = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:[s], s:{}}", "version", "0", "id", id,
        "detail-type", "Scheduled Event", "source", "aws.events", "account", "000000000000",
        "time", time, "region", s->region, "resources", arn, "detail");
    json_dump_buf(out, ev);
}

static void schedules__fire(schedules_t *s, entry_t *e, int64_t due_s)
{
    fire_job_t *j = xcalloc(1, sizeof *j);
    j->s = s;
    snprintf(j->name, sizeof j->name, "%s", e->s.name);
    snprintf(j->fire.schedule, sizeof j->fire.schedule, "%s", e->s.name);
    j->fire.due_ms = due_s * 1000;
    j->fire.fired_ms = schedules_now_ms(s);
    buf_t body = BUF_INIT;
    if (e->s.input)
        buf_adds(&body, e->s.input);
    else
        schedules__scheduled_event(s, e, due_s, &body);
    char trigger[STORE_TRIGGER_MAX], fn[TENANT_QNAME_MAX + 1];
    snprintf(trigger, sizeof trigger, "schedule:%s", tenant_local(e->s.name));
    tenant_resolve(e->s.name, e->s.function, fn, sizeof fn);
    async_enqueue_opts_t opts = {.with_event = schedules__fire_with_event, .with_event_arg = j,
                                 .trigger = trigger,
                                 .tenant_id = e->s.tenant_id,
                                 .tenant_field = "tenant_id"};
    mf_error_t err = MF_ERROR_INIT;
    e->inflight = true;
    int r = async_enqueue(s->async, fn, &body, &opts, schedules__fire_accepted, j, &err);
    buf_release(&body);
    if (r == 0)
        return;
    if (r == -ESHUTDOWN) {
        e->inflight = false;
        free(j);
        return;
    }
    /* The target cannot be called (no such function, an event too
     * large): the due time is spent, and its row says why. */
    log_warn("schedules", "%s: the fire due at %lld queued nothing: %s", e->s.name,
             (long long)due_s, err.msg);
    j->fire.error = xstrdup(err.msg);
    store_writer_submit(async_writer(s->async), true, schedules__fire_log_apply,
                        schedules__fire_logged, j);
}

/* ---- the timer ------------------------------------------------------------------ */

static void schedules__on_timer(uv_timer_t *t)
{
    schedules__wake(t->data);
}

/* Fires what is due and sets the timer for the earliest next fire. */
static void schedules__wake(schedules_t *s)
{
    if (s->stopping)
        return;
    int64_t now = schedules_now_ms(s), now_s = floor_div(now, 1000);
    int64_t earliest = INT64_MAX;
    const char *key;
    void *v;
    for (size_t i = 0; map_next(&s->entries, &i, &key, &v);) {
        entry_t *e = v;
        if (e->inflight || !e->s.enabled)
            continue;
        if (!e->planned || e->plan_at_ms <= now) {
            /* Worked out again as of now: when several due times went by
             * (a restart, a stalled loop, a clock moved on), only the
             * latest fires. */
            schedules__plan(e, now_s);
            if (e->planned && e->plan_at_ms <= now) {
                schedules__fire(s, e, e->plan_due_s);
                continue;
            }
        }
        if (e->planned && e->plan_at_ms < earliest)
            earliest = e->plan_at_ms;
    }
    uv_timer_stop(s->timer);
    /* A clock that stands still moves only by schedules_clock_set. */
    if (earliest == INT64_MAX || s->cfg.test_clock)
        return;
    int64_t delay = earliest - now;
    if (delay > SCHEDULES_MAX_SLEEP_MS)
        delay = SCHEDULES_MAX_SLEEP_MS;
    uv_timer_start(s->timer, schedules__on_timer, (uint64_t)(delay < 0 ? 0 : delay), 0);
}

int schedules_clock_set(schedules_t *s, int64_t now_ms, mf_error_t *err)
{
    if (!s->cfg.test_clock)
        return mf_error_plain(err, EPERM, "the schedules' clock is the real one (start the "
                                          "server with --test-clock to move it)");
    if (now_ms < s->test_now_ms)
        return mf_error_plain(err, EINVAL, "the clock moves forward only");
    s->test_now_ms = now_ms;
    schedules__wake(s);
    return 0;
}

void schedules_sync(schedules_t *s, void (*cb)(void *ud), void *ud)
{
    store_writer_barrier(async_writer(s->async), cb, ud);
}

/* ---- settings -------------------------------------------------------------------- */

static void entry_free(entry_t *e)
{
    if (!e)
        return;
    store_schedule_clear(&e->s);
    free(e->last_error);
    free(e);
}

/* Parses and checks a PUT body into *out (name and times not set). */
static int schedules__parse(schedules_t *s, const char *name, const void *body, size_t len,
                            store_schedule_t *out, sched_expr_t *expr, const tz_t **zone,
                            mf_error_t *err)
{
    json_error_t jerr;
    cleanup_json json_t *doc =
        len ? json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr) : NULL;
    if (!doc && len)
        return mf_error_plain(err, EINVAL, "body: not JSON (%s at line %d)", jerr.text, jerr.line);
    if (!json_is_object(doc))
        return mf_error_plain(err, EINVAL,
                              "body: must be a JSON object {\"expression\", \"function\", ...}");
    static const char *const known[] = {"expression", "timezone", "function", "input",
                                        "enabled", "flexible_window_min", "tenant_id"};
    const char *key;
    json_t *val;
    json_object_foreach(doc, key, val)
    {
        bool ok = false;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            ok |= !strcmp(key, known[i]);
        if (!ok) {
            char shown[80];
            return mf_error_plain(err, EINVAL,
                                  "%s: unknown field (a schedule has expression, timezone, "
                                  "function, input, enabled, flexible_window_min and tenant_id)",
                                  mf_error_show(key, 64, shown, sizeof shown));
        }
    }
    const char *text = json_string_value(json_object_get(doc, "expression"));
    if (!text)
        return mf_error_plain(err, EINVAL,
                              "expression: required, a string such as \"rate(5 minutes)\", "
                              "\"cron(0 12 * * ? *)\" or \"at(2026-12-24T18:00:00)\"");
    int r = sched_expr_parse(text, expr, err);
    if (r < 0)
        return r;
    snprintf(out->expression, sizeof out->expression, "%s", text);

    json_t *tzv = json_object_get(doc, "timezone");
    const char *tzname = tzv ? json_string_value(tzv) : "UTC";
    if (!tzname)
        return mf_error_plain(err, EINVAL, "timezone: must be a string, an IANA zone name "
                                           "such as \"Europe/Paris\"");
    if ((r = schedules__zone(s, tzname, zone, err)) < 0)
        return r;
    snprintf(out->timezone, sizeof out->timezone, "%s", tzname);

    const char *fn = json_string_value(json_object_get(doc, "function"));
    if (!fn)
        return mf_error_plain(err, EINVAL, "function: required, the name of a function");
    char shown[80];
    if (!registry_valid_local(fn))
        return mf_error_plain(err, EINVAL, "function: `%s` is not a function name "
                                           "([A-Za-z0-9_-]{1,64})",
                              mf_error_show(fn, 64, shown, sizeof shown));
    /* The function is the schedule's tenant's (core/tenant.h). */
    char qfn[TENANT_QNAME_MAX + 1];
    tenant_resolve(name, fn, qfn, sizeof qfn);
    mf_error_t e2 = MF_ERROR_INIT;
    fn_t f;
    if (registry_get(s->registry, qfn, &f, &e2) < 0)
        return mf_error_plain(err, EINVAL, "function: no function named %s", fn);
    snprintf(out->function, sizeof out->function, "%s", fn);
    /* Unlike EventBridge's, a schedule may start a function with tenant
     * isolation: its fires run for the tenant id it names. */
    json_t *tid = json_object_get(doc, "tenant_id");
    if (tid && !json_is_null(tid) && !json_is_string(tid)) {
        fn_clear(&f);
        return mf_error_plain(err, EINVAL, "tenant_id: must be a string or null");
    }
    r = fn_tenant_id_for(f.name, &f.tenancy, "tenant_id", json_string_value(tid), err);
    fn_clear(&f);
    if (r < 0)
        return r;
    if (json_is_string(tid))
        snprintf(out->tenant_id, sizeof out->tenant_id, "%s", json_string_value(tid));

    json_t *input = json_object_get(doc, "input");
    if (input && !json_is_null(input)) {
        char *dump = json_dumps(input, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!dump || strlen(dump) > SCHEDULE_INPUT_MAX) {
            free(dump);
            return mf_error_plain(err, EINVAL, "input: at most %d bytes of JSON",
                                  SCHEDULE_INPUT_MAX);
        }
        out->input = dump;
    }

    json_t *en = json_object_get(doc, "enabled");
    if (en && !json_is_boolean(en)) {
        store_schedule_clear(out);
        return mf_error_plain(err, EINVAL, "enabled: must be true or false");
    }
    out->enabled = !en || json_is_true(en);

    json_t *w = json_object_get(doc, "flexible_window_min");
    if (w && (!json_is_integer(w) || json_integer_value(w) < 0 ||
              json_integer_value(w) > SCHEDULE_WINDOW_MAX_MIN)) {
        store_schedule_clear(out);
        return mf_error_plain(err, EINVAL,
                              "flexible_window_min: must be a whole number of minutes from 0 "
                              "(off) to %d",
                              SCHEDULE_WINDOW_MAX_MIN);
    }
    out->flexible_window_min = w ? (int)json_integer_value(w) : 0;
    return 0;
}

typedef struct put_job {
    schedules_t *s;
    store_schedule_t sched;      /* input owned until handed to the entry */
    sched_expr_t expr;
    const tz_t *zone;
    bool remove;                 /* a delete */
    schedules_done_cb cb;
    void *ud;
} put_job_t;

static int schedules__put_apply(void *db, void *arg, mf_error_t *err)
{
    put_job_t *j = arg;
    if (j->remove)
        return store_schedule_delete(db, j->sched.name, err);
    return store_schedule_put(db, &j->sched, err);
}

static void schedules__put_done(void *arg, int r, const mf_error_t *err)
{
    put_job_t *j = arg;
    schedules_t *s = j->s;
    bool created = false;
    if (r == 0 && j->remove) {
        entry_free(map_remove(&s->entries, j->sched.name));
        metrics_remove(s->m_fires, (const char *[]){ j->sched.name, "queued" });
        metrics_remove(s->m_fires, (const char *[]){ j->sched.name, "failed" });
    } else if (r == 0) {
        entry_t *e = map_get(&s->entries, j->sched.name);
        created = !e;
        if (!e) {
            e = xcalloc(1, sizeof *e);
            map_put(&s->entries, j->sched.name, e);
        }
        store_schedule_clear(&e->s);
        e->s = j->sched;
        j->sched.input = NULL;
        e->expr = j->expr;
        e->zone = j->zone;
        e->planned = false;
        schedules__wake(s);
    }
    j->cb(j->ud, r, created, err);
    store_schedule_clear(&j->sched);
    free(j);
}

int schedules_put(schedules_t *s, const char *name, const void *body, size_t len,
                  schedules_done_cb cb, void *ud, mf_error_t *err)
{
    if (s->stopping)
        return mf_error_plain(err, ESHUTDOWN, "the server is shutting down");
    char shown[80];
    if (!schedules_valid_name(name))
        return mf_error_plain(err, EINVAL, "name: `%s` is not a schedule name "
                                           "([A-Za-z0-9_.-]{1,64})",
                              mf_error_show(name, 64, shown, sizeof shown));
    put_job_t *j = xcalloc(1, sizeof *j);
    int r = schedules__parse(s, name, body, len, &j->sched, &j->expr, &j->zone, err);
    if (r < 0) {
        store_schedule_clear(&j->sched);
        free(j);
        return r;
    }
    j->s = s;
    j->cb = cb;
    j->ud = ud;
    snprintf(j->sched.name, sizeof j->sched.name, "%s", name);
    int64_t now = schedules_now_ms(s);
    j->sched.created_ms = j->sched.updated_ms = j->sched.start_ms = now;
    const entry_t *old = map_get(&s->entries, name);
    if (old) {
        j->sched.created_ms = old->s.created_ms;
        /* The same times go on unless what they are counted from changed. */
        if (!strcmp(old->s.expression, j->sched.expression) &&
            !strcmp(old->s.timezone, j->sched.timezone) && (old->s.enabled || !j->sched.enabled))
            j->sched.start_ms = old->s.start_ms;
    }
    store_writer_submit(async_writer(s->async), true, schedules__put_apply, schedules__put_done,
                        j);
    return 0;
}

int schedules_delete(schedules_t *s, const char *name, schedules_done_cb cb, void *ud,
                     mf_error_t *err)
{
    if (s->stopping)
        return mf_error_plain(err, ESHUTDOWN, "the server is shutting down");
    if (!map_get(&s->entries, name))
        return mf_error_plain(err, ENOENT, "no schedule named %s", tenant_local(name));
    put_job_t *j = xcalloc(1, sizeof *j);
    j->s = s;
    j->remove = true;
    j->cb = cb;
    j->ud = ud;
    snprintf(j->sched.name, sizeof j->sched.name, "%s", name);
    store_writer_submit(async_writer(s->async), true, schedules__put_apply, schedules__put_done,
                        j);
    return 0;
}

/* ---- what the API shows --------------------------------------------------------- */

static json_t *schedules__time(schedules_t *s, const tz_t *zone, int64_t ms)
{
    char out[40];
    tz_format_rfc3339(zone ? zone : s->utc, floor_div(ms, 1000), out, sizeof out);
    return json_string(out);
}

static json_t *schedules__fire_json(schedules_t *s, int64_t due_s, int64_t fired_ms,
                                    const char *request_id, const char *error)
{
    json_t *f = json_object();
    json_object_set_new(f, "due", schedules__time(s, NULL, due_s * 1000));
    json_object_set_new(f, "fired", schedules__time(s, NULL, fired_ms));
    json_object_set_new(f, "request_id",
                        request_id && request_id[0] ? json_string(request_id) : json_null());
    json_object_set_new(f, "error", error ? json_string(error) : json_null());
    return f;
}

static json_t *schedules__json(schedules_t *s, const entry_t *e)
{
    json_t *out = json_object();
    char tenant[TENANT_MAX + 1];
    tenant_of(e->s.name, tenant);
    json_object_set_new(out, "name", json_string(tenant_local(e->s.name)));
    json_object_set_new(out, "tenant", json_string(tenant));
    json_object_set_new(out, "expression", json_string(e->s.expression));
    json_object_set_new(out, "timezone", json_string(e->s.timezone));
    json_object_set_new(out, "function", json_string(e->s.function));
    json_t *input = e->s.input ? json_loads(e->s.input, JSON_DECODE_ANY, NULL) : NULL;
    json_object_set_new(out, "input", input ? input : json_null());
    json_object_set_new(out, "enabled", json_boolean(e->s.enabled));
    json_object_set_new(out, "flexible_window_min", json_integer(e->s.flexible_window_min));
    json_object_set_new(out, "tenant_id",
                        e->s.tenant_id[0] ? json_string(e->s.tenant_id) : json_null());
    json_object_set_new(out, "created", schedules__time(s, NULL, e->s.created_ms));
    json_object_set_new(out, "updated", schedules__time(s, NULL, e->s.updated_ms));
    char arn[256];
    tenant_arn("scheduler", s->region, "schedule/default/", e->s.name, arn, sizeof arn);
    json_object_set_new(out, "arn", json_string(arn));
    /* The next due times, from the one planned if it has not fired yet. */
    json_t *next = json_array();
    if (e->s.enabled && e->zone) {
        int64_t start_s = floor_div(e->s.start_ms, 1000);
        int64_t now_s = floor_div(schedules_now_ms(s), 1000), after = schedules__base_s(e), t;
        if (e->planned && !e->inflight && e->plan_due_s > after && e->plan_due_s <= now_s)
            after = e->plan_due_s - 1; /* come, waiting in its flexible window */
        else
            after = after > now_s ? after : now_s;
        for (int i = 0; i < SCHEDULE_NEXT_FIRES &&
                        sched_due_next(&e->expr, e->zone, start_s, after, &t) == 0;
             i++) {
            json_array_append_new(next, schedules__time(s, e->zone, t * 1000));
            after = t;
        }
    }
    json_object_set_new(out, "next_fires", next);
    json_object_set_new(out, "last_fire",
                        e->has_last ? schedules__fire_json(s, e->last_due_s, e->last_fired_ms,
                                                           e->last_request_id, e->last_error)
                                    : json_null());
    return out;
}

int schedules_fires_json(schedules_t *s, store_queue_t *q, const char *name, json_t **out,
                         mf_error_t *err)
{
    store_schedule_fire_t *fires = NULL;
    size_t n = 0;
    int r = store_schedule_fire_list(q, name, STORE_SCHEDULE_FIRES_KEPT, &fires, &n, err);
    if (r < 0)
        return r;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, schedules__fire_json(s, fires[i].due_ms / 1000,
                                                        fires[i].fired_ms, fires[i].request_id,
                                                        fires[i].error));
    store_schedule_fire_list_free(fires, n);
    *out = arr;
    return 0;
}

int schedules_get_json(schedules_t *s, const char *name, json_t **out, mf_error_t *err)
{
    entry_t *e = map_get(&s->entries, name);
    if (!e)
        return mf_error_plain(err, ENOENT, "no schedule named %s", tenant_local(name));
    *out = schedules__json(s, e);
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *schedules_list_json(schedules_t *s, const char *tenant)
{
    const char **names = xcalloc(s->entries.len + 1, sizeof *names);
    size_t n = 0;
    const char *key;
    void *v;
    for (size_t i = 0; map_next(&s->entries, &i, &key, &v);)
        if (!tenant || tenant_owns(tenant, key))
            names[n++] = key;
    qsort(names, n, sizeof *names, name_cmp);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, schedules__json(s, map_get(&s->entries, names[i])));
    free(names);
    return json_pack("{s:o}", "schedules", arr);
}

/* ---- opening and closing ---------------------------------------------------------- */

/* Takes a stored schedule's settings into e (st's input taken over). */
static void schedules__settings(schedules_t *s, entry_t *e, store_schedule_t *st)
{
    store_schedule_clear(&e->s);
    e->s = *st;
    st->input = NULL;
    e->planned = false;
    mf_error_t err = MF_ERROR_INIT;
    /* One that no longer parses (a zone gone from the system) stays, shown
     * without next fires, and fires nothing until it is put again. */
    if (sched_expr_parse(e->s.expression, &e->expr, &err) < 0 ||
        schedules__zone(s, e->s.timezone, &e->zone, &err) < 0) {
        log_error("schedules", "%s: %s; it fires nothing until it is put again", e->s.name,
                  err.msg);
        e->zone = NULL;
    }
}

/* Takes a logged fire as e's latest. */
static void schedules__last(entry_t *e, const store_schedule_fire_t *f)
{
    e->has_last = true;
    e->last_due_s = f->due_ms / 1000;
    e->last_fired_ms = f->fired_ms;
    snprintf(e->last_request_id, sizeof e->last_request_id, "%s", f->request_id);
    free(e->last_error);
    e->last_error = f->error ? xstrdup(f->error) : NULL;
}

/* Takes a stored schedule into memory, with its latest logged fire. */
static void schedules__load(schedules_t *s, store_schedule_t *st)
{
    entry_t *e = xcalloc(1, sizeof *e);
    schedules__settings(s, e, st);
    mf_error_t err = MF_ERROR_INIT;
    store_schedule_fire_t *fires = NULL;
    size_t n = 0;
    if (store_schedule_fire_list(async_store(s->async), e->s.name, 1, &fires, &n, &err) < 0)
        log_error("schedules", "%s: %s", e->s.name, err.msg);
    if (n)
        schedules__last(e, &fires[0]);
    store_schedule_fire_list_free(fires, n);
    map_put(&s->entries, e->s.name, e);
}

void schedules_replace(schedules_t *s, store_schedule_t *list, size_t n,
                       const store_schedule_fire_t *last)
{
    if (s->stopping)
        return;
    map_t now = MAP_INIT;
    for (size_t i = 0; i < n; i++) {
        map_put(&now, list[i].name, (void *)1);
        entry_t *e = map_get(&s->entries, list[i].name);
        if (e && e->s.updated_ms == list[i].updated_ms && e->s.created_ms == list[i].created_ms)
            continue;
        if (!e) {
            e = xcalloc(1, sizeof *e);
            map_put(&s->entries, list[i].name, e);
            if (last && last[i].schedule[0])
                schedules__last(e, &last[i]);
        }
        /* A fire on its way finds the entry by name when it is written. */
        schedules__settings(s, e, &list[i]);
    }
    const char *key;
    void *v;
    for (size_t i = 0; map_next(&s->entries, &i, &key, &v);) {
        if (map_get(&now, key))
            continue;
        char name[TENANT_QNAME_MAX + 1];
        snprintf(name, sizeof name, "%s", key);
        entry_free(map_remove(&s->entries, name));
        metrics_remove(s->m_fires, (const char *[]){ name, "queued" });
        metrics_remove(s->m_fires, (const char *[]){ name, "failed" });
    }
    map_release(&now);
    schedules__wake(s);
}

int schedules_open(uv_loop_t *loop, async_t *async, registry_t *registry,
                   const schedules_config_t *cfg, schedules_t **out, mf_error_t *err)
{
    store_schedule_t *list = NULL;
    size_t n = 0;
    int r = store_schedule_list(async_store(async), &list, &n, err);
    if (r < 0)
        return r;
    schedules_t *s = xcalloc(1, sizeof *s);
    s->loop = loop;
    s->async = async;
    s->registry = registry;
    s->cfg = *cfg;
    snprintf(s->region, sizeof s->region, "%s", cfg->region ? cfg->region : "us-east-1");
    snprintf(s->zoneinfo_dir, sizeof s->zoneinfo_dir, "%s",
             cfg->zoneinfo_dir ? cfg->zoneinfo_dir : "");
    s->test_now_ms = cfg->test_clock_ms;
    s->utc = tz_utc();
    s->m_fires = metrics_family_new(METRICS_COUNTER, "mayfly_schedule_fires_total",
                                    "Due times of schedules fired, by outcome: queued (an "
                                    "event is on the async queue) or failed (the function "
                                    "could not be called)",
                                    (const char *[]){ "schedule", "outcome", NULL }, NULL, 0);
    s->timer = xcalloc(1, sizeof *s->timer);
    uv_timer_init(loop, s->timer);
    s->timer->data = s;
    for (size_t i = 0; i < n; i++)
        schedules__load(s, &list[i]);
    store_schedule_list_free(list, n);
    if (n)
        log_info("schedules", "%zu schedule(s)%s", n,
                 cfg->test_clock ? " on a test clock that stands still" : "");
    /* Catch up: what came due while the server was down fires now, once. */
    schedules__wake(s);
    *out = s;
    return 0;
}

void schedules_stop(schedules_t *s)
{
    if (!s)
        return;
    s->stopping = true;
    uv_timer_stop(s->timer);
}

static void schedules__timer_closed(uv_handle_t *h)
{
    free(h);
}

void schedules_close(schedules_t *s)
{
    if (!s)
        return;
    const char *key;
    void *v;
    for (size_t i = 0; map_next(&s->entries, &i, &key, &v);)
        entry_free(v);
    map_release(&s->entries);
    for (size_t i = 0; map_next(&s->zones, &i, &key, &v);)
        tz_free(v);
    map_release(&s->zones);
    tz_free(s->utc);
    uv_close((uv_handle_t *)s->timer, schedules__timer_closed);
    free(s);
}
