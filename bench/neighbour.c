/* The noisy neighbour of bench/run.sh's noisy row: a C function that, when
 * called, misbehaves until the wall-clock time its event names, in one of
 * the ways a function on a shared server can, so the suite can measure how
 * much a well-behaved function beside it suffers. The event is
 * {"mode": M, "until_ms": "EPOCH_MS"}:
 *
 *   spin   every thread it starts (4) spins on the CPU; then it answers
 *   fork   a fork bomb: every process forks until the pids limit refuses,
 *          and keeps trying; then the bomb is killed and it answers
 *   api    floods its Runtime API (127.0.0.1:9001) from 4 connections with
 *          pipelined requests the server must refuse (GETs of a path it
 *          does not serve, responses for a request id it never sent); then
 *          it answers
 *   log    answers at once, then prints as fast as it can (outside any
 *          invocation, so no per-call log bound applies)
 *
 * Built against runtimes/c by bench/run.sh. */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mayfly_runtime.h"

#define THREADS 4

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void *spin(void *arg)
{
    double until = *(const double *)arg;
    volatile unsigned long x = 0;
    while (now_ms() < until)
        for (int i = 0; i < 100000; i++)
            x += (unsigned long)i;
    return NULL;
}

static void run_threads(void *(*fn)(void *), double until)
{
    pthread_t t[THREADS];
    int n = 0;
    for (; n < THREADS - 1; n++)
        if (pthread_create(&t[n], NULL, fn, &until) != 0)
            break;
    fn(&until);
    while (n-- > 0)
        pthread_join(t[n], NULL);
}

static void fork_bomb(double until)
{
    pid_t leader = fork();
    if (leader == 0) {
        /* Its own process group, so that one kill ends every process. */
        setpgid(0, 0);
        while (now_ms() < until)
            if (fork() < 0)
                usleep(1000);
        _exit(0);
    }
    if (leader < 0)
        return;
    while (now_ms() < until)
        usleep(10000);
    kill(-leader, SIGKILL);
    kill(leader, SIGKILL);
    waitpid(leader, NULL, 0);
}

/* One connection to the Runtime API, or -1. */
static int api_connect(void)
{
    const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
    char host[256] = "127.0.0.1", port[16] = "9001";
    if (api) {
        const char *colon = strrchr(api, ':');
        if (colon && (size_t)(colon - api) < sizeof host) {
            memcpy(host, api, (size_t)(colon - api));
            host[colon - api] = '\0';
            snprintf(port, sizeof port, "%s", colon + 1);
        }
    }
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *ai;
    if (getaddrinfo(host, port, &hints, &ai) != 0)
        return -1;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd >= 0) {
        struct timeval tv = { 1, 0 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    return fd;
}

#define BATCH 32

/* Counts status lines in what the server answered ("HTTP/1.1 " at the
 * start of a response; the bodies are short JSON errors). */
static int count_responses(const char *buf, size_t len)
{
    int n = 0;
    for (size_t i = 0; i + 9 <= len; i++)
        if (!memcmp(buf + i, "HTTP/1.1 ", 9))
            n++;
    return n;
}

static void *flood_api(void *arg)
{
    double until = *(const double *)arg;
    static const char get[] = "GET /2018-06-01/runtime/bogus HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    static const char post[] =
        "POST /2018-06-01/runtime/invocation/00000000-0000-0000-0000-000000000000/response "
        "HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Content-Length: 2\r\n\r\n{}";
    char batch[BATCH * sizeof post], in[65536];
    size_t blen = 0;
    for (int i = 0; i < BATCH; i++) {
        const char *r = i % 2 ? post : get;
        size_t n = i % 2 ? sizeof post - 1 : sizeof get - 1;
        memcpy(batch + blen, r, n);
        blen += n;
    }
    int fd = -1;
    while (now_ms() < until) {
        if (fd < 0 && (fd = api_connect()) < 0) {
            usleep(1000);
            continue;
        }
        size_t off = 0;
        while (off < blen) {
            ssize_t w = send(fd, batch + off, blen - off, MSG_NOSIGNAL);
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        int seen = 0;
        while (off == blen && seen < BATCH) {
            ssize_t r = recv(fd, in, sizeof in, 0);
            if (r <= 0)
                break;
            seen += count_responses(in, (size_t)r);
        }
        if (off < blen || seen < BATCH) {
            /* Closed, or an answer missing: a new connection. */
            close(fd);
            fd = -1;
        }
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static void flood_log(double until)
{
    char buf[65536];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (i % 100 == 99) ? '\n' : 'y';
    while (now_ms() < until)
        if (write(1, buf, sizeof buf) < 0 && errno != EINTR)
            break;
}

static int handler(const mayfly_event_t *ev, mayfly_response_t *res)
{
    char mode[16] = "", until_s[32] = "";
    mayfly_json_get_string(ev->body, ev->body_len, "mode", mode, sizeof mode);
    mayfly_json_get_string(ev->body, ev->body_len, "until_ms", until_s, sizeof until_s);
    double until = atof(until_s);
    if (!strcmp(mode, "spin")) {
        run_threads(spin, until);
    } else if (!strcmp(mode, "fork")) {
        fork_bomb(until);
    } else if (!strcmp(mode, "api")) {
        run_threads(flood_api, until);
    } else if (!strcmp(mode, "log")) {
        /* After the answer: a child that outlives the call prints. */
        fflush(NULL);
        pid_t p = fork();
        if (p == 0) {
            flood_log(until);
            _exit(0);
        }
    } else if (strcmp(mode, "idle")) {
        return mayfly_response_error(res, "BadMode", "mode `%s`: spin, fork, api, log or idle",
                                     mode);
    }
    return mayfly_response_printf(res, "{\"mode\":\"%s\"}", mode);
}

int main(void)
{
    /* The log flooder is never waited for: let the kernel reap it. */
    signal(SIGCHLD, SIG_IGN);
    return mayfly_runtime_run(handler);
}
