/*
 * Timestamps as servers write them: RFC 3339 (STS, ECS/IMDS credentials,
 * credential_process, Git LFS expires_at) and the looser ISO 8601 UTC form
 * of Azure SAS `se=` values.  Pure parsing, no time zone database.
 */
#ifndef LFSFS_TIMEFMT_H
#define LFSFS_TIMEFMT_H

#include <time.h>

/*
 * "2024-01-02T03:04:05[.frac](Z|+hh:mm|-hh:mm)"; 'T' may be 't' or a space,
 * surrounding whitespace is ignored.  0 and *out in seconds since the
 * epoch, or -EINVAL (anything else, trailing text included).
 */
int lfsfs_time_rfc3339(const char *s, time_t *out);

/* "YYYY-MM-DD[THH:MM[:SS[.frac]]][Z]", always UTC. 0 or -EINVAL. */
int lfsfs_time_iso8601_utc(const char *s, time_t *out);

#endif
