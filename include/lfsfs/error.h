/*
 * lfsfs error codes and the per-thread error message.
 *
 * Functions in liblfsfs return 0 on success or a negative value on failure:
 * either a negated errno (-ENOENT, -EIO, ...) or one of the LFSFS_E* codes
 * below, which live in a private range far above any errno.  Details meant
 * for a person go into a per-thread message set with lfsfs_error_set();
 * the caller that finally reports the failure reads it with
 * lfsfs_error_message().  The message buffer is owned by the thread.
 */
#ifndef LFSFS_ERROR_H
#define LFSFS_ERROR_H

#include <stdarg.h>

enum lfsfs_code {
	LFSFS_OK = 0,
	LFSFS_EBASE = 20000,
	LFSFS_ESIZE_MISMATCH,          /* size differs from the pointer/record */
	LFSFS_ECHECKSUM_MISMATCH,      /* sha256 of the bytes differs from the oid */
	LFSFS_EUNSTABLE_SOURCE,        /* object changed while it was being read */
	LFSFS_EIMMUTABILITY,           /* remote object changed (412 / new ETag) */
	LFSFS_ESOURCE_NOT_ACCESSIBLE,  /* no URL, 403/404, network failure */
	LFSFS_ECREDENTIALS_MISSING,    /* no usable credentials for the URL */
	LFSFS_EPARSE,                  /* malformed input (pointer, JSON, ...) */
	LFSFS_EUNSUPPORTED,            /* URL scheme or feature not supported */
	LFSFS_ERETRY_AUTH,             /* internal: credentials refreshed, send the
					* request again (a backend's 401 with a
					* cached token); never reaches a user */
	LFSFS_ELAST
};

/* The seed vocabulary name of a code ("SIZE_MISMATCH", ...); for negated
 * errno values, the errno's symbolic meaning via strerror(). Never NULL. */
const char *lfsfs_code_name(int rc);

/* Map any return code to an errno suitable for a FUSE reply. */
int lfsfs_code_errno(int rc);

/* Set the calling thread's message; returns rc so callers can write
 * `return lfsfs_error_set(-EIO, "...")`. */
int lfsfs_error_set(int rc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int lfsfs_error_vset(int rc, const char *fmt, va_list ap);

/* The thread's last message, or "" if none. Valid until the next set. */
const char *lfsfs_error_message(void);
int lfsfs_error_code(void);
void lfsfs_error_clear(void);

#endif
