/*
 * Leveled logging to stderr or a file, with secret redaction.
 *
 * Every message passes through lfsfs_redact() before it is written, so a
 * URL with a query string (presigned S3, Azure SAS, GCS signed URLs) or
 * userinfo never reaches a log.  Thread-safe: one write(2) per line.
 */
#ifndef LFSFS_LOG_H
#define LFSFS_LOG_H

#include <stddef.h>

enum lfsfs_log_level {
	LFSFS_LOG_ERROR = 0,
	LFSFS_LOG_WARN,
	LFSFS_LOG_INFO,
	LFSFS_LOG_DEBUG,
};

/* Parse "error|warn|info|debug"; returns -1 for anything else. */
int lfsfs_log_level_parse(const char *s);
void lfsfs_log_set_level(int level);
int lfsfs_log_get_level(void);
/* Log to this file (appended) instead of stderr; NULL restores stderr. */
int lfsfs_log_open(const char *path);

void lfsfs_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) lfsfs_log(LFSFS_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) lfsfs_log(LFSFS_LOG_WARN, __VA_ARGS__)
#define log_info(...) lfsfs_log(LFSFS_LOG_INFO, __VA_ARGS__)
#define log_debug(...) \
	do { if (lfsfs_log_get_level() >= LFSFS_LOG_DEBUG) \
		lfsfs_log(LFSFS_LOG_DEBUG, __VA_ARGS__); } while (0)

/*
 * Copy `in` to `out` (capacity `cap`, always NUL-terminated) with secrets
 * removed: userinfo in URLs becomes "***@", query strings become "?REDACTED",
 * and "Authorization:"/"x-amz-security-token"-style header values are
 * dropped.  Returns `out`.
 */
char *lfsfs_redact(const char *in, char *out, size_t cap);

#endif
