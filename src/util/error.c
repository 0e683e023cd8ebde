/* Error code names and the per-thread error message buffer. */
#include "lfsfs/error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char msg_buf[1024];
static _Thread_local int msg_code;

static const char *const names[] = {
	[LFSFS_ESIZE_MISMATCH - LFSFS_EBASE] = "SIZE_MISMATCH",
	[LFSFS_ECHECKSUM_MISMATCH - LFSFS_EBASE] = "CHECKSUM_MISMATCH",
	[LFSFS_EUNSTABLE_SOURCE - LFSFS_EBASE] = "UNSTABLE_OBJECT_SOURCE",
	[LFSFS_EIMMUTABILITY - LFSFS_EBASE] = "IMMUTABILITY_VIOLATION",
	[LFSFS_ESOURCE_NOT_ACCESSIBLE - LFSFS_EBASE] = "SOURCE_NOT_ACCESSIBLE",
	[LFSFS_ECREDENTIALS_MISSING - LFSFS_EBASE] = "CREDENTIALS_MISSING",
	[LFSFS_EPARSE - LFSFS_EBASE] = "PARSE_ERROR",
	[LFSFS_EUNSUPPORTED - LFSFS_EBASE] = "UNSUPPORTED",
	[LFSFS_ERETRY_AUTH - LFSFS_EBASE] = "SOURCE_NOT_ACCESSIBLE",
};

const char *lfsfs_code_name(int rc)
{
	int c = rc < 0 ? -rc : rc;

	if (c == 0)
		return "OK";
	if (c > LFSFS_EBASE && c < LFSFS_ELAST && names[c - LFSFS_EBASE])
		return names[c - LFSFS_EBASE];
	return strerror(c);
}

int lfsfs_code_errno(int rc)
{
	int c = rc < 0 ? -rc : rc;

	if (c == 0)
		return 0;
	if (c < LFSFS_EBASE)
		return c;
	/* Integrity, source and support failures all mean "the bytes are not
	 * available": EIO is what tools understand (the log has the code). */
	return EIO;
}

int lfsfs_error_vset(int rc, const char *fmt, va_list ap)
{
	vsnprintf(msg_buf, sizeof(msg_buf), fmt, ap);
	msg_code = rc;
	return rc;
}

int lfsfs_error_set(int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	lfsfs_error_vset(rc, fmt, ap);
	va_end(ap);
	return rc;
}

const char *lfsfs_error_message(void)
{
	return msg_buf;
}

int lfsfs_error_code(void)
{
	return msg_code;
}

void lfsfs_error_clear(void)
{
	msg_buf[0] = '\0';
	msg_code = 0;
}
