/* IANA time zones, read from the system's compiled zone files (TZif,
 * RFC 8536: versions 1 to 4), for schedules that run on a zone's wall
 * clock.
 *
 * A zone is its table of transitions (the 64-bit one when the file has
 * it) and, for instants past the table, the POSIX TZ rule of the file's
 * footer ("CET-1CEST,M3.5.0,M10.5.0/3"), so that a zone answers for any
 * year, not only those its table lists. Leap-second ("right/") zones are
 * refused: schedules count POSIX seconds.
 *
 * Civil times and instants are seconds since 1970-01-01T00:00:00, civil
 * ones on the zone's wall clock (as trigger/schedule_expr.h counts them),
 * instants in UTC. */
#ifndef MAYFLY_TRIGGER_TZ_H
#define MAYFLY_TRIGGER_TZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define TZ_DIR_DEFAULT "/usr/share/zoneinfo"
#define TZ_NAME_MAX 128         /* the longest zone name accepted */
#define TZ_FILE_MAX (256 << 10) /* the largest zone file read */

typedef struct tz tz_t;

/* Whether name has the shape of a zone name: components of
 * [A-Za-z0-9_+-] separated by single slashes, no leading slash, no
 * component of dots only, at most TZ_NAME_MAX characters. A name of this
 * shape cannot leave the zone directory. */
bool tz_valid_name(const char *name);

/* Loads the zone name from dir (TZ_DIR_DEFAULT when NULL): 0, or -EINVAL
 * naming the zone when the name is not of the right shape, is not a zone
 * there, or its file does not parse. "UTC" needs no file. */
int tz_load(const char *dir, const char *name, tz_t **out, mf_error_t *err);
/* Parses the bytes of a TZif file (what tz_load reads): 0, or -EINVAL
 * with a message naming what is wrong with it. */
int tz_parse(const void *data, size_t len, const char *name, tz_t **out, mf_error_t *err);
/* The zone UTC (offset 0 at all times). */
tz_t *tz_utc(void);
void tz_free(tz_t *z);

const char *tz_name(const tz_t *z);
/* Seconds east of UTC of the zone's wall clock at instant t. */
int32_t tz_offset_at(const tz_t *z, int64_t t);

typedef enum {
    TZ_CIVIL_UNIQUE,   /* one instant: *first (= *second) */
    TZ_CIVIL_SKIPPED,  /* no instant: the clock jumped over it (spring) */
    TZ_CIVIL_REPEATED, /* two: the clock went back over it (autumn);
                        * *first the earlier, *second the later */
} tz_civil_kind_t;

/* The instants at which the zone's wall clock reads civil. For a skipped
 * time, *first and *second are both the instant the jump happened. */
tz_civil_kind_t tz_civil_to_instant(const tz_t *z, int64_t civil, int64_t *first,
                                    int64_t *second);

/* Writes instant t as RFC 3339 on the zone's clock with its offset,
 * "2026-03-29T03:30:00+02:00" ("Z" for an offset of 0), into out (at least
 * 32 bytes). */
void tz_format_rfc3339(const tz_t *z, int64_t t, char *out, size_t outlen);

#endif
