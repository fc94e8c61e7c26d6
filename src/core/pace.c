/* Background threads giving way (see core/pace.h). */
#include "core/pace.h"

#include <sched.h>
#include <stdbool.h>

#include "core/clock.h"

static __thread bool pace_on;
static __thread uint64_t pace_since, pace_count;

void pace_background(void)
{
    pace_on = true;
    pace_since = clock_mono_ns();
}

void pace_point(void)
{
    if (!pace_on)
        return;
    uint64_t now = clock_mono_ns();
    if (now - pace_since < PACE_STEP_NS)
        return;
    sched_yield();
    pace_count++;
    /* The next step counts from when this thread got the CPU back. */
    pace_since = clock_mono_ns();
}

uint64_t pace_yields(void)
{
    return pace_count;
}
