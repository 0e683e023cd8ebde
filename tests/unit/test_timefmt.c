/* Unit tests for the shared timestamp parsers (src/util/timefmt.c). */
#include <errno.h>

#include "test.h"
#include "util/timefmt.h"

static void rfc(const char *s, int rc, long long want)
{
	time_t t = 12345;
	int got = lfsfs_time_rfc3339(s, &t);

	CHECK_EQ_INT(got, rc);
	if (!rc && got == 0)
		CHECK_EQ_INT(t, want);
	if (got != rc)
		fprintf(stderr, "  rfc3339 '%s'\n", s);
}

static void iso(const char *s, int rc, long long want)
{
	time_t t = 12345;
	int got = lfsfs_time_iso8601_utc(s, &t);

	CHECK_EQ_INT(got, rc);
	if (!rc && got == 0)
		CHECK_EQ_INT(t, want);
	if (got != rc)
		fprintf(stderr, "  iso8601 '%s'\n", s);
}

int main(void)
{
	rfc("2016-11-10T15:29:07Z", 0, 1478791747);
	rfc("  2016-11-10t15:29:07z ", 0, 1478791747);
	rfc("2016-11-10 15:29:07Z", 0, 1478791747);
	rfc("2016-10-02T15:32:32.087972164+08:00", 0, 1475393552);
	rfc("2016-11-10T10:29:07-05:00", 0, 1478791747);
	rfc("2038-01-19T03:14:08Z", 0, 2147483648LL);
	rfc("", -EINVAL, 0);
	rfc("2016-11-10", -EINVAL, 0);
	rfc("2016-11-10T15:29:07", -EINVAL, 0);
	rfc("2016-11-10T15:29:07+0800", -EINVAL, 0);
	rfc("2016-13-10T15:29:07Z", -EINVAL, 0);
	rfc("2016-11-10T15:29:07Z junk", -EINVAL, 0);
	rfc("2016-11-10T15:29:07.Z", -EINVAL, 0);
	rfc("1478791747", -EINVAL, 0);
	CHECK_EQ_INT(lfsfs_time_rfc3339(NULL, NULL), -EINVAL);

	iso("2030-01-02T03:04:05Z", 0, 1893553445);
	iso("2030-01-02T03:04Z", 0, 1893553440);
	iso("2030-01-02", 0, 1893542400);
	iso("2030-01-02T03:04:05.123", 0, 1893553445);
	iso("2030-01-02T03", -EINVAL, 0);
	iso("2030-1-02", -EINVAL, 0);
	iso("2030-01-02T03:04:05+01:00", -EINVAL, 0);
	iso("2030-02-30X", -EINVAL, 0);
	return TEST_RESULT();
}
