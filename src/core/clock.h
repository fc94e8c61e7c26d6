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
/* Parses an RFC 3339 date-time, years 0000-9999, into milliseconds since
 * the epoch: "2026-12-05T10:00:00Z", with a fraction (cut to whole ms) and
 * a numeric offset allowed ("2026-12-05T12:00:00.25+02:00"), 't', 'z' or a
 * space in place of 'T' and 'Z'. Returns 0, or -EINVAL for anything else,
 * a day that does not exist (February 30) included. */
int clock_parse_rfc3339(const char *s, int64_t *wall_ms);

#endif
