/* The C function of the density row: a no-op whose first call sleeps, so
 * that a burst of concurrent calls finds no idle instance and the server
 * starts one instance per call. Later calls answer at once. Built against
 * runtimes/c by bench/run.sh. */
#include <stdlib.h>
#include <time.h>

#include "mayfly_runtime.h"

static int first = 1;

static int handler(const mayfly_event_t *ev, mayfly_response_t *res)
{
    (void)ev;
    if (first) {
        const char *ms = getenv("BENCH_FIRST_SLEEP_MS");
        long n = ms ? atol(ms) : 1000;
        struct timespec ts = {n / 1000, (n % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        first = 0;
    }
    return mayfly_response_set(res, "{}", 2);
}

int main(void)
{
    return mayfly_runtime_run(handler);
}
