/* RFC 3339 and ISO 8601 UTC timestamp parsing shared by the credential and resolver code. */
#include "util/timefmt.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

/* n decimal digits at *p, advancing it; -1 if they are not there */
static int digits(const char **p, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++, (*p)++) {
		if (!isdigit((unsigned char)**p))
			return -1;
		v = v * 10 + (**p - '0');
	}
	return v;
}

static int to_time(int y, int mo, int d, int h, int mi, int sec, time_t *out)
{
	struct tm tm;

	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -EINVAL;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	*out = timegm(&tm);
	return 0;
}

static void skip_fraction(const char **p)
{
	if (**p == '.' || **p == ',')
		for ((*p)++; isdigit((unsigned char)**p); (*p)++)
			;
}

int lfsfs_time_rfc3339(const char *s, time_t *out)
{
	const char *p = s;
	int y, mo, d, h, mi, sec, off = 0;
	time_t t;

	if (!s)
		return -EINVAL;
	while (isspace((unsigned char)*p))
		p++;
	if ((y = digits(&p, 4)) < 0 || *p++ != '-' || (mo = digits(&p, 2)) < 0 || *p++ != '-' ||
	    (d = digits(&p, 2)) < 0 || (*p != 'T' && *p != 't' && *p != ' ') || !*p++ ||
	    (h = digits(&p, 2)) < 0 || *p++ != ':' || (mi = digits(&p, 2)) < 0 || *p++ != ':' ||
	    (sec = digits(&p, 2)) < 0)
		return -EINVAL;
	if ((*p == '.' || *p == ',') && !isdigit((unsigned char)p[1]))
		return -EINVAL;
	skip_fraction(&p);
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1, oh, om;
		/* RFC 3339 needs the colon in the offset */
		if ((oh = digits(&p, 2)) < 0 || *p++ != ':' || (om = digits(&p, 2)) < 0 ||
		    oh > 23 || om > 59)
			return -EINVAL;
		off = sign * (oh * 3600 + om * 60);
	} else {
		return -EINVAL;
	}
	while (isspace((unsigned char)*p))
		p++;
	if (*p || to_time(y, mo, d, h, mi, sec, &t))
		return -EINVAL;
	*out = t - off;
	return 0;
}

int lfsfs_time_iso8601_utc(const char *s, time_t *out)
{
	const char *p = s;
	int y, mo, d, h = 0, mi = 0, sec = 0;

	if (!s || (y = digits(&p, 4)) < 0 || *p++ != '-' || (mo = digits(&p, 2)) < 0 ||
	    *p++ != '-' || (d = digits(&p, 2)) < 0)
		return -EINVAL;
	if (*p == 'T' || *p == 't') {
		p++;
		if ((h = digits(&p, 2)) < 0 || *p++ != ':' || (mi = digits(&p, 2)) < 0)
			return -EINVAL;
		if (*p == ':') {
			p++;
			if ((sec = digits(&p, 2)) < 0)
				return -EINVAL;
			skip_fraction(&p);
		}
	}
	if (*p == 'Z' || *p == 'z')
		p++;
	if (*p)
		return -EINVAL;
	return to_time(y, mo, d, h, mi, sec, out);
}
