/* Sandbox creations per second, through the project's own sandbox module
 * (src/sandbox), with nothing of the server around it: each creation is
 * sandbox_spawn of /bin/true (namespaces, cgroup, mounts, seccomp, the
 * Runtime API listener handed back), waiting for it to exit, reaping and
 * sandbox_destroy (cgroup removed, descriptors closed).
 *
 *   sandbox_rate [--threads N] [--seconds S]
 *
 * Prints one JSON object: creations, seconds, rate, errors, and the median
 * and 90th percentile of one whole creation and of sandbox_spawn alone.
 * Built and run by bench/run.sh (as root, like the server).
 *
 * One sandbox_system_t serves the whole process, as in the server. The
 * sandbox's init gets PR_SET_PDEATHSIG bound to the thread that spawned
 * it, so every worker thread lives until its last sandbox is destroyed. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/sandbox.h"

#define MAX_SAMPLES 200000

typedef struct worker {
    int index;
    pthread_t thread;
    unsigned long creations, errors;
    double *total_ms, *spawn_ms; /* per creation */
    char first_error[600];
} worker_t;

static sandbox_system_t *sys;
static char code_dir[64];
static double deadline_s;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void note_error(worker_t *w, const char *msg)
{
    if (!w->first_error[0])
        snprintf(w->first_error, sizeof w->first_error, "%s", msg);
    w->errors++;
}

/* One creation: spawn, wait for /bin/true to exit, reap, destroy. */
static int create_one(worker_t *w, unsigned long n)
{
    char id[64];
    snprintf(id, sizeof id, "rate-%d-%lu", w->index, n);
    char *const argv[] = {"/bin/true", NULL};
    char *const envp[] = {"PATH=/usr/bin:/bin", NULL};
    sandbox_config_t cfg = {
        .id = id,
        .code_dir = code_dir,
        .runtime_dir = NULL,
        .argv = argv,
        .envp = envp,
        .hostname = "rate",
        .memory_mb = 128,
        .tmp_mb = 16,
        .max_pids = 16,
        .api_port = 9001,
    };
    mf_error_t err = MF_ERROR_INIT;
    sandbox_t sb;
    double t0 = now_s();
    int r = sandbox_spawn(sys, &cfg, &sb, &err);
    double t1 = now_s();
    if (r < 0) {
        note_error(w, err.msg);
        sandbox_destroy(&sb);
        return -1;
    }
    struct pollfd p = {.fd = sb.pidfd, .events = POLLIN};
    int pr;
    do
        pr = poll(&p, 1, 10000);
    while (pr < 0 && errno == EINTR);
    int st = -1;
    if (pr != 1 || sandbox_reap(&sb, &st) < 0) {
        note_error(w, "the sandbox did not exit within 10 s");
        sandbox_destroy(&sb);
        return -1;
    }
    sandbox_destroy(&sb);
    double t2 = now_s();
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char msg[80];
        snprintf(msg, sizeof msg, "/bin/true in the sandbox ended with status %#x", st);
        note_error(w, msg);
        return -1;
    }
    if (w->creations < MAX_SAMPLES) {
        w->total_ms[w->creations] = (t2 - t0) * 1e3;
        w->spawn_ms[w->creations] = (t1 - t0) * 1e3;
    }
    w->creations++;
    return 0;
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    unsigned long n = 0;
    while (now_s() < deadline_s) {
        create_one(w, n++);
        /* A broken set-up fails every time: stop early rather than spin. */
        if (w->errors > 50 && w->creations == 0)
            break;
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double percentile(double *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i];
}

int main(int argc, char **argv)
{
    int threads = 2;
    double seconds = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: sandbox_rate [--threads N] [--seconds S]\n");
            return 2;
        }
    }
    if (threads < 1 || threads > 64 || seconds <= 0) {
        fprintf(stderr, "sandbox_rate: bad --threads or --seconds\n");
        return 2;
    }

    mf_error_t err = MF_ERROR_INIT;
    if (sandbox_system_init(&sys, &err) < 0) {
        fprintf(stderr, "sandbox_rate: %s\n", err.msg);
        return 1;
    }
    /* An empty, world-readable directory to stand in for /var/task. */
    snprintf(code_dir, sizeof code_dir, "/tmp/sandbox-rate-XXXXXX");
    if (!mkdtemp(code_dir) || chmod(code_dir, 0755) < 0) {
        fprintf(stderr, "sandbox_rate: mkdtemp: %s\n", strerror(errno));
        sandbox_system_free(sys);
        return 1;
    }

    /* A few creations first, so that page cache and the kernel's own
     * caches are warm as they would be in a running server. */
    worker_t warm = {.index = 99};
    warm.total_ms = calloc(8, sizeof(double));
    warm.spawn_ms = calloc(8, sizeof(double));
    for (int i = 0; i < 5; i++)
        create_one(&warm, (unsigned long)i);
    if (warm.creations == 0) {
        fprintf(stderr, "sandbox_rate: warm-up failed: %s\n", warm.first_error);
        rmdir(code_dir);
        sandbox_system_free(sys);
        return 1;
    }

    worker_t *w = calloc((size_t)threads, sizeof *w);
    double start = now_s();
    deadline_s = start + seconds;
    for (int i = 0; i < threads; i++) {
        w[i].index = i;
        w[i].total_ms = calloc(MAX_SAMPLES, sizeof(double));
        w[i].spawn_ms = calloc(MAX_SAMPLES, sizeof(double));
        pthread_create(&w[i].thread, NULL, worker_main, &w[i]);
    }
    unsigned long creations = 0, errors = 0;
    const char *first_error = "";
    for (int i = 0; i < threads; i++) {
        pthread_join(w[i].thread, NULL);
        creations += w[i].creations;
        errors += w[i].errors;
        if (!first_error[0] && w[i].first_error[0])
            first_error = w[i].first_error;
    }
    double elapsed = now_s() - start;

    size_t ns = 0;
    double *total = calloc(creations + 1, sizeof(double));
    double *spawn = calloc(creations + 1, sizeof(double));
    for (int i = 0; i < threads; i++) {
        size_t k = w[i].creations < MAX_SAMPLES ? w[i].creations : MAX_SAMPLES;
        memcpy(total + ns, w[i].total_ms, k * sizeof(double));
        memcpy(spawn + ns, w[i].spawn_ms, k * sizeof(double));
        ns += k;
    }
    printf("{\"threads\": %d, \"creations\": %lu, \"seconds\": %.3f, \"rate\": %.1f, "
           "\"errors\": %lu, \"creation_ms_p50\": %.3f, \"creation_ms_p90\": %.3f, "
           "\"spawn_ms_p50\": %.3f, \"spawn_ms_p90\": %.3f, \"first_error\": \"",
           threads, creations, elapsed, (double)creations / elapsed, errors,
           percentile(total, ns, 0.5), percentile(total, ns, 0.9), percentile(spawn, ns, 0.5),
           percentile(spawn, ns, 0.9));
    for (const char *p = first_error; *p; p++)
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if ((unsigned char)*p >= 0x20)
            putchar(*p);
    printf("\"}\n");

    rmdir(code_dir);
    sandbox_system_free(sys);
    return creations > 0 ? 0 : 1;
}
