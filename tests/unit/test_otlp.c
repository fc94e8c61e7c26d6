/* The OTLP trace exporter: the JSON it sends, W3C trace context, and the
 * exporter against real collectors on 127.0.0.1, served by a thread of
 * this test: one that answers, and ones that refuse, never answer, answer
 * garbage or close early. Waits are bounded by deadlines far above what
 * an idle machine needs, so a loaded one passes too. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include "core/buf.h"
#include "core/clock.h"
#include "obs/metrics.h"
#include "obs/otlp.h"

/* ---- Encoding ---------------------------------------------------------- */

static json_t *encode(const char *service, const obs_span_t *spans, size_t n)
{
    buf_t out = BUF_INIT;
    obs_otlp_encode(service, spans, n, &out);
    json_error_t jerr;
    json_t *doc = json_loads(out.data, 0, &jerr);
    if (!doc)
        fail_msg("not JSON (%s): %s", jerr.text, out.data);
    buf_release(&out);
    return doc;
}

/* The spans array of the one resource's one scope. */
static json_t *spans_of(json_t *doc)
{
    json_t *rs = json_object_get(doc, "resourceSpans");
    assert_int_equal(json_array_size(rs), 1);
    json_t *ss = json_object_get(json_array_get(rs, 0), "scopeSpans");
    assert_int_equal(json_array_size(ss), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(json_array_get(ss, 0), "scope"), "name")),
        "mayfly");
    json_t *spans = json_object_get(json_array_get(ss, 0), "spans");
    assert_true(json_is_array(spans));
    return spans;
}

static const char *str_at(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        fail_msg("`%s` is not a string", key);
    return json_string_value(v);
}

/* The value object of the attribute key in span, or NULL. */
static json_t *attr(json_t *span, const char *key)
{
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(span, "attributes"), i, a)
    {
        if (!strcmp(str_at(a, "key"), key))
            return json_object_get(a, "value");
    }
    return NULL;
}

static void test_encode_sends_the_otlp_json_mapping(void **state)
{
    obs_attr_t attrs[] = {
        {.key = "faas.name", .type = OBS_ATTR_STRING, .s = "hello \"world\"\n"},
        {.key = "faas.coldstart", .type = OBS_ATTR_BOOL, .b = true},
        {.key = "http.status_code", .type = OBS_ATTR_INT, .i = -9007199254740993LL},
        {.key = "ratio", .type = OBS_ATTR_DOUBLE, .d = 1.5},
        {.key = "tiny", .type = OBS_ATTR_DOUBLE, .d = 0.1},
        {.key = "nothing", .type = OBS_ATTR_STRING, .s = NULL},
        {.key = "bad.utf8", .type = OBS_ATTR_STRING, .s = "a\377b\303"},
    };
    obs_span_t spans[2] = {
        {
            .trace_id = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0, 0, 0, 0, 0, 0, 0, 0xff},
            .span_id = {0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3},
            .name = "invoke hello",
            .kind = OBS_SPAN_SERVER,
            .start_ns = 1767225600123456789LL,
            .end_ns = 1767225600223456789LL,
            .status = OBS_STATUS_ERROR,
            .status_message = "Unhandled",
            .attrs = attrs,
            .n_attrs = sizeof attrs / sizeof attrs[0],
        },
        {
            .trace_id = {[15] = 1},
            .span_id = {[7] = 2},
            .parent_id = {0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11},
            .has_parent = true,
            .name = "sandbox start",
            .kind = OBS_SPAN_INTERNAL,
            .start_ns = 5,
            .end_ns = 6,
        },
    };
    json_t *doc = encode("my \"svc\"", spans, 2);
    json_t *res =
        json_object_get(json_array_get(json_object_get(doc, "resourceSpans"), 0), "resource");
    json_t *ra = json_array_get(json_object_get(res, "attributes"), 0);
    assert_string_equal(str_at(ra, "key"), "service.name");
    assert_string_equal(str_at(json_object_get(ra, "value"), "stringValue"), "my \"svc\"");

    json_t *list = spans_of(doc);
    assert_int_equal(json_array_size(list), 2);
    json_t *s = json_array_get(list, 0);
    assert_string_equal(str_at(s, "traceId"), "0123456789abcdef00000000000000ff");
    assert_string_equal(str_at(s, "spanId"), "deadbeef00010203");
    assert_null(json_object_get(s, "parentSpanId"));
    assert_string_equal(str_at(s, "name"), "invoke hello");
    assert_int_equal(json_integer_value(json_object_get(s, "kind")), 2);
    assert_string_equal(str_at(s, "startTimeUnixNano"), "1767225600123456789");
    assert_string_equal(str_at(s, "endTimeUnixNano"), "1767225600223456789");
    assert_string_equal(str_at(attr(s, "faas.name"), "stringValue"), "hello \"world\"\n");
    assert_true(json_is_true(json_object_get(attr(s, "faas.coldstart"), "boolValue")));
    assert_string_equal(str_at(attr(s, "http.status_code"), "intValue"), "-9007199254740993");
    assert_true(json_real_value(json_object_get(attr(s, "ratio"), "doubleValue")) == 1.5);
    assert_true(json_real_value(json_object_get(attr(s, "tiny"), "doubleValue")) == 0.1);
    assert_null(attr(s, "nothing"));
    assert_string_equal(str_at(attr(s, "bad.utf8"), "stringValue"), "a\357\277\275b\357\277\275");
    assert_int_equal(json_array_size(json_object_get(s, "attributes")), 6);
    json_t *st = json_object_get(s, "status");
    assert_int_equal(json_integer_value(json_object_get(st, "code")), 2);
    assert_string_equal(str_at(st, "message"), "Unhandled");

    s = json_array_get(list, 1);
    assert_string_equal(str_at(s, "traceId"), "00000000000000000000000000000001");
    assert_string_equal(str_at(s, "spanId"), "0000000000000002");
    assert_string_equal(str_at(s, "parentSpanId"), "aabbccddeeff0011");
    assert_int_equal(json_integer_value(json_object_get(s, "kind")), 1);
    assert_int_equal(json_array_size(json_object_get(s, "attributes")), 0);
    st = json_object_get(s, "status");
    assert_int_equal(json_integer_value(json_object_get(st, "code")), 0);
    assert_null(json_object_get(st, "message"));
    json_decref(doc);
}

static void test_encode_of_no_spans_is_still_a_request(void **state)
{
    json_t *doc = encode("svc", NULL, 0);
    assert_int_equal(json_array_size(spans_of(doc)), 0);
    json_decref(doc);
}

/* ---- Trace context ----------------------------------------------------- */

static void test_traceparent_round_trips(void **state)
{
    uint8_t trace[16], span[8], t2[16], p2[8], flags = 0;
    obs_trace_random(trace, sizeof trace);
    obs_trace_random(span, sizeof span);
    char tp[56];
    obs_traceparent_format(trace, span, tp, sizeof tp);
    assert_int_equal(strlen(tp), 55);
    assert_int_equal(obs_traceparent_parse(tp, t2, p2, &flags), 0);
    assert_memory_equal(trace, t2, 16);
    assert_memory_equal(span, p2, 8);
    assert_int_equal(flags, 1);

    const char *known = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    assert_int_equal(obs_traceparent_parse(known, t2, p2, NULL), 0);
    assert_int_equal(t2[0], 0x4b);
    assert_int_equal(t2[15], 0x36);
    assert_int_equal(p2[7], 0xb7);
    obs_traceparent_format(t2, p2, tp, sizeof tp);
    assert_string_equal(tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");

    /* Too small an output gets an empty string, not a cut id. */
    char small[20] = "x";
    obs_traceparent_format(t2, p2, small, sizeof small);
    assert_string_equal(small, "");
}

static void test_traceparent_rejects_bad_input(void **state)
{
    static const char *const bad[] = {
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",   /* short flags */
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",   /* short trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",   /* short span id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", /* trailing garbage */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", /* uppercase */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
        "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01", /* not hex */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902g7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", /* version ff */
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", /* other versions */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01", /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", /* zero span id */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", /* separators */
        "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
        "004bf92f3577b34da6a3ce929d0e0e473600f067aa0ba902b701",
    };
    uint8_t t[16], p[8], f = 7;
    memset(t, 0x5a, sizeof t);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (obs_traceparent_parse(bad[i], t, p, &f) != -EINVAL)
            fail_msg("accepted `%s`", bad[i]);
    }
    assert_int_equal(obs_traceparent_parse(NULL, t, p, &f), -EINVAL);
    /* A refused header leaves the outputs alone. */
    assert_int_equal(t[0], 0x5a);
    assert_int_equal(f, 7);
}

static void test_xray_header_gives_trace_and_parent(void **state)
{
    (void)state;
    static const char *const good[] = {
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        "Parent=53995c3f42cd8ad8;Root=1-5759e988-bd862e3fe1be46a994272793",
        " Root=1-5759e988-bd862e3fe1be46a994272793 ; Parent=53995c3f42cd8ad8 ;Lineage=a:1;",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint8_t t[16], p[8];
        if (obs_xray_parse(good[i], t, p) != 0)
            fail_msg("refused `%s`", good[i]);
        char tp[56];
        obs_traceparent_format(t, p, tp, sizeof tp);
        assert_string_equal(tp, "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01");
    }
    static const char *const bad[] = {
        "",
        "Root=1-5759e988-bd862e3fe1be46a994272793",          /* no parent: no span to join */
        "Parent=53995c3f42cd8ad8",                           /* no root */
        "Root=1-5759e988-bd862e3fe1be46a99427279;Parent=53995c3f42cd8ad8", /* short */
        "Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8", /* version */
        "Root=1-5759e988_bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
        "Root=1-5759e988-bd862e3fe1be46a99427279x;Parent=53995c3f42cd8ad8",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000000000",
        "Root=1-00000000-000000000000000000000000;Parent=53995c3f42cd8ad8",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Root=1-5759e988-bd862e3fe1be46a994272793;"
        "Parent=53995c3f42cd8ad8",                           /* twice */
    };
    uint8_t t[16], p[8];
    memset(t, 0x5a, sizeof t);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (obs_xray_parse(bad[i], t, p) != -EINVAL)
            fail_msg("accepted `%s`", bad[i]);
    }
    assert_int_equal(obs_xray_parse(NULL, t, p), -EINVAL);
    assert_int_equal(t[0], 0x5a);
}

static void test_random_ids_are_never_zero(void **state)
{
    uint8_t a[16], b[16], one;
    obs_trace_random(a, sizeof a);
    obs_trace_random(b, sizeof b);
    assert_memory_not_equal(a, b, sizeof a);
    /* One byte is zero one time in 256: a thousand draws meet it. */
    for (int i = 0; i < 1000; i++) {
        obs_trace_random(&one, 1);
        assert_int_not_equal(one, 0);
    }
}

/* ---- A collector on 127.0.0.1 ------------------------------------------ */

typedef struct collector {
    int fd;
    int port;
    const char *answer;      /* written after the request; NULL: never answers */
    bool close_at_once;      /* closes each connection before reading anything */
    bool close_after_answer; /* else waits for the client to close */
    pthread_t thread;
    atomic_bool stop;
    atomic_int accepted, requests;
    pthread_mutex_t lock;
    char *heads[4], *bodies[4]; /* the first requests */
} collector_t;

/* Reads into b until stop or EOF (false) or until the request's head and
 * Content-Length body are in (true). */
static bool read_request(collector_t *c, int fd, buf_t *b, size_t *head_len)
{
    for (;;) {
        char *he = strstr(b->data, "\r\n\r\n");
        if (he) {
            *head_len = (size_t)(he - b->data) + 4;
            const char *cl = strcasestr(b->data, "\r\ncontent-length:");
            size_t want = cl ? strtoul(cl + 17, NULL, 10) : 0;
            if (b->len >= *head_len + want)
                return true;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (atomic_load(&c->stop))
            return false;
        if (poll(&p, 1, 20) <= 0)
            continue;
        char tmp[65536];
        ssize_t n = read(fd, tmp, sizeof tmp);
        if (n <= 0)
            return false;
        buf_add(b, tmp, (size_t)n);
    }
}

/* Waits for the client to close (or for stop). */
static void drain(collector_t *c, int fd)
{
    while (!atomic_load(&c->stop)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0)
            continue;
        char tmp[4096];
        if (read(fd, tmp, sizeof tmp) <= 0)
            return;
    }
}

static void *collector_run(void *arg)
{
    collector_t *c = arg;
    while (!atomic_load(&c->stop)) {
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0)
            continue;
        int fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        atomic_fetch_add(&c->accepted, 1);
        if (c->close_at_once) {
            close(fd);
            continue;
        }
        buf_t b = BUF_INIT;
        size_t head_len = 0;
        if (read_request(c, fd, &b, &head_len)) {
            int i = atomic_load(&c->requests);
            if (i < 4) {
                pthread_mutex_lock(&c->lock);
                c->heads[i] = strndup(b.data, head_len);
                c->bodies[i] = strdup(b.data + head_len);
                pthread_mutex_unlock(&c->lock);
            }
            atomic_fetch_add(&c->requests, 1);
            if (c->answer) {
                ssize_t n = write(fd, c->answer, strlen(c->answer));
                (void)n;
            }
            if (!c->close_after_answer)
                drain(c, fd);
        }
        buf_release(&b);
        close(fd);
    }
    return NULL;
}

/* A socket bound to an ephemeral port of 127.0.0.1; listening if listen_too. */
static int bound_socket(bool listen_too, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    if (listen_too)
        assert_int_equal(listen(fd, 16), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static collector_t *collector_start_ex(const char *answer, bool close_after_answer,
                                       bool close_at_once)
{
    collector_t *c = calloc(1, sizeof *c);
    c->answer = answer;
    c->close_after_answer = close_after_answer;
    c->close_at_once = close_at_once;
    pthread_mutex_init(&c->lock, NULL);
    c->fd = bound_socket(true, &c->port);
    assert_int_equal(pthread_create(&c->thread, NULL, collector_run, c), 0);
    return c;
}

static collector_t *collector_start(const char *answer, bool close_after_answer)
{
    return collector_start_ex(answer, close_after_answer, false);
}

static void collector_stop(collector_t *c)
{
    atomic_store(&c->stop, true);
    pthread_join(c->thread, NULL);
    close(c->fd);
    for (int i = 0; i < 4; i++) {
        free(c->heads[i]);
        free(c->bodies[i]);
    }
    pthread_mutex_destroy(&c->lock);
    free(c);
}

#define ANSWER_OK "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"

/* ---- Driving the loop -------------------------------------------------- */

typedef bool (*cond_fn)(void *arg);

typedef struct waiter {
    cond_fn cond;
    void *arg;
    uint64_t deadline;
    bool met;
} waiter_t;

static void on_poll(uv_timer_t *t)
{
    waiter_t *w = t->data;
    if (w->cond(w->arg) || clock_mono_ns() > w->deadline) {
        w->met = w->cond(w->arg);
        uv_stop(t->loop);
    }
}

/* Runs loop until cond(arg) holds or ms pass; whether it held. The
 * exporter's own timer keeps no loop alive, so a timer of ours does. */
static bool run_until(uv_loop_t *loop, cond_fn cond, void *arg, unsigned ms)
{
    waiter_t w = {cond, arg, clock_mono_ns() + (uint64_t)ms * 1000000, false};
    uv_timer_t t;
    uv_timer_init(loop, &t);
    t.data = &w;
    uv_timer_start(&t, on_poll, 5, 5);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return w.met;
}

/* Frees o and runs loop until every handle is closed, then closes loop:
 * nothing may be left behind. */
static void finish(uv_loop_t *loop, obs_otlp_t *o)
{
    obs_otlp_free(o);
    uint64_t deadline = clock_mono_ns() + 10000000000ull;
    while (uv_run(loop, UV_RUN_DEFAULT) && clock_mono_ns() < deadline)
        ;
    assert_int_equal(uv_loop_close(loop), 0);
}

typedef struct want {
    obs_otlp_t *o;
    uint64_t exported, dropped;
} want_t;

static bool counts_reached(void *arg)
{
    want_t *w = arg;
    uint64_t e, d;
    obs_otlp_counts(w->o, &e, &d);
    return e >= w->exported && d >= w->dropped;
}

static bool wait_counts(uv_loop_t *loop, obs_otlp_t *o, uint64_t exported, uint64_t dropped)
{
    want_t w = {o, exported, dropped};
    return run_until(loop, counts_reached, &w, 10000);
}

static bool got_request(void *arg)
{
    return atomic_load(&((collector_t *)arg)->requests) > 0;
}

static void add_spans(obs_otlp_t *o, int n, const char *name)
{
    obs_attr_t a[] = {{.key = "i", .type = OBS_ATTR_INT}};
    obs_span_t s = {.name = name, .kind = OBS_SPAN_SERVER, .attrs = a, .n_attrs = 1};
    for (int i = 0; i < n; i++) {
        obs_trace_random(s.trace_id, 16);
        obs_trace_random(s.span_id, 8);
        s.start_ns = 1767225600000000000LL + i;
        s.end_ns = s.start_ns + 1000;
        a[0].i = i;
        obs_otlp_add(o, &s);
    }
}

static obs_otlp_t *exporter(uv_loop_t *loop, const char *fmt, int port)
{
    char url[128];
    snprintf(url, sizeof url, fmt, port);
    obs_otlp_t *o = NULL;
    mf_error_t err = MF_ERROR_INIT;
    if (obs_otlp_new(loop, url, "test-svc", &o, &err) < 0)
        fail_msg("%s", err.msg);
    return o;
}

/* ---- The exporter ------------------------------------------------------ */

static void test_new_refuses_bad_urls(void **state)
{
    static const char *const bad[] = {
        "https://collector:4318",
        "ftp://collector",
        "collector:4318",
        "http://",
        "http://:4318",
        "http://host:",
        "http://host:0",
        "http://host:65536",
        "http://host:12a",
        "http://user:pw@host",
        "http://ho st",
        "http://host/a\nb",
        "http://[::1",
        "http://[]:80",
        "http://ho$t",
        "http://host?x=1",
        "",
    };
    uv_loop_t loop;
    uv_loop_init(&loop);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        obs_otlp_t *o = (obs_otlp_t *)1;
        mf_error_t err = MF_ERROR_INIT;
        if (obs_otlp_new(&loop, bad[i], "svc", &o, &err) != -EINVAL)
            fail_msg("accepted `%s`", bad[i]);
        assert_null(o);
        if (*bad[i] && !strchr(bad[i], '\n') && !strstr(err.msg, bad[i]))
            fail_msg("the message does not name `%s`: %s", bad[i], err.msg);
    }
    mf_error_t err = MF_ERROR_INIT;
    obs_otlp_t *o;
    assert_int_equal(obs_otlp_new(&loop, "https://otel.example:4318", "svc", &o, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "https is not supported"));

    static const char *const good[] = {
        "http://collector",
        "http://collector:4318/v1/traces",
        "HTTP://127.0.0.1:1/x?y=z",
        "http://[::1]:4318/",
        "http://otel-collector.monitoring.svc.cluster.local",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (obs_otlp_new(&loop, good[i], NULL, &o, &err) < 0)
            fail_msg("refused `%s`: %s", good[i], err.msg);
        obs_otlp_free(o);
    }
    obs_otlp_free(NULL);
    obs_otlp_add(NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_spans_reach_the_collector_as_one_post(void **state)
{
    collector_t *c = collector_start(ANSWER_OK, false);
    uv_loop_t loop;
    uv_loop_init(&loop);
    obs_otlp_t *o = exporter(&loop, "http://127.0.0.1:%d/custom/traces", c->port);
    add_spans(o, 3, "invoke \"x\"");
    /* Fewer than a batch go at the next tick, all in one request. */
    assert_true(wait_counts(&loop, o, 3, 0));
    uint64_t e, d;
    obs_otlp_counts(o, &e, &d);
    assert_int_equal(e, 3);
    assert_int_equal(d, 0);
    assert_int_equal(atomic_load(&c->requests), 1);

    const char *head = c->heads[0];
    assert_non_null(strstr(head, "POST /custom/traces HTTP/1.1\r\n"));
    char host[64];
    snprintf(host, sizeof host, "\r\nHost: 127.0.0.1:%d\r\n", c->port);
    assert_non_null(strstr(head, host));
    assert_non_null(strcasestr(head, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strcasestr(head, "\r\nConnection: close\r\n"));
    char cl[64];
    snprintf(cl, sizeof cl, "\r\nContent-Length: %zu\r\n", strlen(c->bodies[0]));
    assert_non_null(strstr(head, cl));

    json_t *doc = json_loads(c->bodies[0], 0, NULL);
    assert_non_null(doc);
    json_t *list = spans_of(doc);
    assert_int_equal(json_array_size(list), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *s = json_array_get(list, i);
        assert_string_equal(str_at(s, "name"), "invoke \"x\"");
        assert_int_equal(strlen(str_at(s, "traceId")), 32);
        char want[32];
        snprintf(want, sizeof want, "%zu", i);
        assert_string_equal(str_at(attr(s, "i"), "intValue"), want);
    }
    json_t *res =
        json_object_get(json_array_get(json_object_get(doc, "resourceSpans"), 0), "resource");
    assert_string_equal(
        str_at(json_object_get(json_array_get(json_object_get(res, "attributes"), 0), "value"),
               "stringValue"),
        "test-svc");
    json_decref(doc);

    buf_t m = BUF_INIT;
    metrics_render(&m);
    assert_non_null(strstr(m.data, "mayfly_otlp_spans_total{outcome=\"exported\"}"));
    assert_non_null(strstr(m.data, "mayfly_otlp_spans_total{outcome=\"dropped\"}"));
    buf_release(&m);

    finish(&loop, o);
    collector_stop(c);
}

static void test_a_full_batch_goes_at_once_and_the_rest_follows(void **state)
{
    collector_t *c = collector_start(ANSWER_OK, true);
    uv_loop_t loop;
    uv_loop_init(&loop);
    /* A name, so the address is looked up once and then kept. */
    obs_otlp_t *o = exporter(&loop, "http://localhost:%d", c->port);
    add_spans(o, OBS_OTLP_BATCH_MAX + 88, "s");
    bool ok = wait_counts(&loop, o, OBS_OTLP_BATCH_MAX + 88, 0);
    uint64_t e, d;
    obs_otlp_counts(o, &e, &d);
    if (!ok && d) {
        /* localhost resolved to ::1 first, where nobody listens. */
        finish(&loop, o);
        collector_stop(c);
        skip();
    }
    assert_true(ok);
    assert_int_equal(atomic_load(&c->requests), 2);
    json_t *doc = json_loads(c->bodies[0], 0, NULL);
    assert_int_equal(json_array_size(spans_of(doc)), OBS_OTLP_BATCH_MAX);
    json_decref(doc);
    doc = json_loads(c->bodies[1], 0, NULL);
    assert_int_equal(json_array_size(spans_of(doc)), 88);
    json_decref(doc);
    assert_non_null(strstr(c->heads[0], "POST /v1/traces HTTP/1.1\r\n"));
    finish(&loop, o);
    collector_stop(c);
}

static void test_a_refusing_collector_costs_the_batch(void **state)
{
    int port;
    int fd = bound_socket(false, &port); /* bound, not listening: refused */
    uv_loop_t loop;
    uv_loop_init(&loop);
    obs_otlp_t *o = exporter(&loop, "http://127.0.0.1:%d", port);
    uint64_t t0 = clock_mono_ns();
    add_spans(o, OBS_OTLP_BATCH_MAX, "s");
    /* add started the request but did not wait for it. */
    assert_true(clock_mono_ns() - t0 < 2000000000ull);
    assert_true(wait_counts(&loop, o, 0, OBS_OTLP_BATCH_MAX));
    /* The next batch tries again, once; a failure is no retry loop. */
    add_spans(o, 5, "s");
    assert_true(wait_counts(&loop, o, 0, OBS_OTLP_BATCH_MAX + 5));
    uint64_t e, d;
    obs_otlp_counts(o, &e, &d);
    assert_int_equal(e, 0);
    assert_int_equal(d, OBS_OTLP_BATCH_MAX + 5);
    finish(&loop, o);

    /* By name too: looked up, refused, looked up again. */
    uv_loop_init(&loop);
    o = exporter(&loop, "http://localhost:%d/v1/traces", port);
    add_spans(o, 2, "s");
    assert_true(wait_counts(&loop, o, 0, 2));
    add_spans(o, 2, "s");
    assert_true(wait_counts(&loop, o, 0, 4));
    finish(&loop, o);
    close(fd);
}

static void test_a_silent_collector_times_out(void **state)
{
    collector_t *c = collector_start(NULL, false);
    uv_loop_t loop;
    uv_loop_init(&loop);
    obs_otlp_t *o = exporter(&loop, "http://127.0.0.1:%d", c->port);
    obs_otlp_set_timeout_ms(o, 300);
    add_spans(o, OBS_OTLP_BATCH_MAX, "s");
    assert_true(wait_counts(&loop, o, 0, OBS_OTLP_BATCH_MAX));
    assert_int_equal(atomic_load(&c->requests), 1);
    uint64_t e, d;
    obs_otlp_counts(o, &e, &d);
    assert_int_equal(e, 0);
    finish(&loop, o);
    collector_stop(c);
}

/* Each answer and whether it counts as exported. */
static void test_misbehaving_collectors_cost_only_the_batch(void **state)
{
    static const struct {
        const char *answer;
        bool close_after, close_at_once, exported;
    } cases[] = {
        {"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\noops!", false, false,
         false},
        {"HTTP/1.1 400 Bad Request\r\n\r\n{\"code\":3,\"message\":\"bad\"}", true, false, false},
        {"\x01\x02garbage\r\n\r\n", false, false, false},
        {"garbage", true, false, false},
        {"HTTP/1.1 20", true, false, false},
        {"HTTP/1.1 2000 OK\r\n\r\n", true, false, false},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", false, false, false},
        {"", true, false, false},   /* reads, closes without a word */
        {NULL, false, true, false}, /* closes before reading */
        /* Well-formed successes, however they end. */
        {"HTTP/1.1 202 Accepted\r\n\r\n", true, false, true},
        {"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false, false, true},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", false, false,
         true},
        {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}", false,
         false, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        collector_t *c =
            collector_start_ex(cases[i].answer, cases[i].close_after, cases[i].close_at_once);
        uv_loop_t loop;
        uv_loop_init(&loop);
        obs_otlp_t *o = exporter(&loop, "http://127.0.0.1:%d", c->port);
        obs_otlp_set_timeout_ms(o, 3000);
        add_spans(o, OBS_OTLP_BATCH_MAX, "s");
        uint64_t want = OBS_OTLP_BATCH_MAX;
        if (!wait_counts(&loop, o, cases[i].exported ? want : 0, cases[i].exported ? 0 : want))
            fail_msg("case %zu: no outcome", i);
        uint64_t e, d;
        obs_otlp_counts(o, &e, &d);
        if (e != (cases[i].exported ? want : 0) || d != (cases[i].exported ? 0 : want))
            fail_msg("case %zu: exported %llu, dropped %llu", i, (unsigned long long)e,
                     (unsigned long long)d);
        finish(&loop, o);
        collector_stop(c);
    }
}

static void test_the_queue_is_bounded(void **state)
{
    int port;
    int fd = bound_socket(false, &port);
    uv_loop_t loop;
    uv_loop_init(&loop);
    obs_otlp_t *o = exporter(&loop, "http://127.0.0.1:%d", port);
    /* The first batch leaves in a request; the queue then fills to its
     * bound and every span past it is counted and let go. */
    add_spans(o, OBS_OTLP_BATCH_MAX + OBS_OTLP_QUEUE_MAX + 88, "s");
    uint64_t e, d;
    obs_otlp_counts(o, &e, &d);
    assert_int_equal(e, 0);
    assert_int_equal(d, 88);
    finish(&loop, o);
    close(fd);
}

static void test_free_with_a_request_in_flight(void **state)
{
    collector_t *c = collector_start(NULL, false);
    uv_loop_t loop;
    uv_loop_init(&loop);
    obs_otlp_t *o = exporter(&loop, "http://127.0.0.1:%d", c->port);
    add_spans(o, OBS_OTLP_BATCH_MAX + 10, "s");
    assert_true(run_until(&loop, got_request, c, 10000));
    uint64_t t0 = clock_mono_ns();
    finish(&loop, o);
    /* Abandoned, not waited out. */
    assert_true(clock_mono_ns() - t0 < (uint64_t)OBS_OTLP_TIMEOUT_MS * 1000000);
    collector_stop(c);

    /* While the name is still being looked up. */
    int port;
    int fd = bound_socket(false, &port);
    uv_loop_init(&loop);
    o = exporter(&loop, "http://localhost:%d", port);
    add_spans(o, OBS_OTLP_BATCH_MAX, "s");
    finish(&loop, o);
    close(fd);
}

int main(void)
{
    /* A collector that closes mid-request must not kill us (the server
     * ignores SIGPIPE the same way). */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_sends_the_otlp_json_mapping),
        cmocka_unit_test(test_encode_of_no_spans_is_still_a_request),
        cmocka_unit_test(test_traceparent_round_trips),
        cmocka_unit_test(test_traceparent_rejects_bad_input),
        cmocka_unit_test(test_xray_header_gives_trace_and_parent),
        cmocka_unit_test(test_random_ids_are_never_zero),
        cmocka_unit_test(test_new_refuses_bad_urls),
        cmocka_unit_test(test_spans_reach_the_collector_as_one_post),
        cmocka_unit_test(test_a_full_batch_goes_at_once_and_the_rest_follows),
        cmocka_unit_test(test_a_refusing_collector_costs_the_batch),
        cmocka_unit_test(test_a_silent_collector_times_out),
        cmocka_unit_test(test_misbehaving_collectors_cost_only_the_batch),
        cmocka_unit_test(test_the_queue_is_bounded),
        cmocka_unit_test(test_free_with_a_request_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
