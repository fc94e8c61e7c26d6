/* Clocks: monotonic time for durations and timeouts, wall time for records. */
#ifndef MAYFLY_CORE_CLOCK_H
#define MAYFLY_CORE_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic nanoseconds, for measuring durations. */
uint64_t clock_mono_ns(void);
/* Milliseconds since the Unix epoch. */
int64_t clock_wall_ms(void);
/* Writes "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC) into out (at least 25 bytes). */
void clock_format_iso8601(int64_t wall_ms, char *out, size_t outlen);

#endif
