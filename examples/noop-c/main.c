/*
 * Does nothing: the benchmarks use it to measure the platform's own overhead.
 * Built into ./bootstrap like examples/hello-c.
 */
#include "mayfly_runtime.h"

static int handler(const mayfly_event_t *ev, mayfly_response_t *res)
{
    (void)ev;
    return mayfly_response_set(res, "{}", 2);
}

int main(void)
{
    return mayfly_runtime_run(handler);
}
