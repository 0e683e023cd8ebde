/* Leveled, redacting logger shared by the daemon and the CLI. */
#include "util/log.h"

#include <ctype.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static int log_level = LFSFS_LOG_WARN;
static int log_fd = 2;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int lfsfs_log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (!strcasecmp(s, level_names[i]))
			return i;
	if (!strcasecmp(s, "warning"))
		return LFSFS_LOG_WARN;
	return -1;
}

void lfsfs_log_set_level(int level)
{
	log_level = level;
}

int lfsfs_log_get_level(void)
{
	return log_level;
}

int lfsfs_log_open(const char *path)
{
	int fd;

	if (!path) {
		if (log_fd > 2)
			close(log_fd);
		log_fd = 2;
		return 0;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (log_fd > 2)
		close(log_fd);
	log_fd = fd;
	return 0;
}

static int is_secret_header(const char *p)
{
	static const char *const keys[] = {
		"authorization:", "x-amz-security-token:", "x-ms-authorization:",
		"cookie:", "proxy-authorization:", "x-goog-api-key:",
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!strncasecmp(p, keys[i], strlen(keys[i])))
			return (int)strlen(keys[i]);
	return 0;
}

/*
 * At p, a JSON member whose name says it holds a secret:
 * "access_token": "...".  Returns the length up to and including the
 * value's opening quote, or 0.
 */
static size_t secret_json_member(const char *p)
{
	static const char *const keys[] = {
		"authorization", "access_token", "refresh_token", "id_token", "token",
		"api_key", "apikey", "password", "client_secret", "private_key",
		"secretaccesskey", "secret_access_key", "sessiontoken", "session_token",
		"assertion", "accountkey", "sas_token",
	};
	const char *q;

	if (*p != '"')
		return 0;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		size_t n = strlen(keys[i]);
		if (strncasecmp(p + 1, keys[i], n) || p[1 + n] != '"')
			continue;
		q = p + 2 + n;
		while (*q == ' ' || *q == '\t')
			q++;
		if (*q++ != ':')
			return 0;
		while (*q == ' ' || *q == '\t')
			q++;
		return *q == '"' ? (size_t)(q + 1 - p) : 0;
	}
	return 0;
}

char *lfsfs_redact(const char *in, char *out, size_t cap)
{
	size_t o = 0;
	const char *p = in;

	if (!cap)
		return out;
#define PUT(c) do { char c_ = (c); if (o + 1 < cap) out[o++] = c_; } while (0)
#define PUTS(s) do { for (const char *q_ = (s); *q_; q_++) PUT(*q_); } while (0)
	while (*p) {
		int hl;
		/* URL: scheme://[userinfo@]host/path[?query] */
		if (p[0] == ':' && p[1] == '/' && p[2] == '/') {
			const char *auth = p + 3, *end = auth, *at = NULL;
			PUTS("://");
			while (*end && *end != '/' && *end != '?' && *end != '#' &&
			       !isspace((unsigned char)*end) && *end != '"' && *end != '\'') {
				if (*end == '@')
					at = end;
				end++;
			}
			if (at) {
				PUTS("***@");
				auth = at + 1;
			}
			while (auth < end)
				PUT(*auth++);
			/* path */
			while (*end && *end != '?' && !isspace((unsigned char)*end) &&
			       *end != '"' && *end != '\'')
				PUT(*end++);
			if (*end == '?') {
				PUTS("?REDACTED");
				while (*end && !isspace((unsigned char)*end) && *end != '"' &&
				       *end != '\'')
					end++;
			}
			p = end;
			continue;
		}
		if ((hl = (int)secret_json_member(p))) {
			/* keep the name, drop the string value (escapes included) */
			for (int i = 0; i < hl; i++)
				PUT(p[i]);
			PUTS("REDACTED\"");
			p += hl;
			while (*p && *p != '"')
				p += (*p == '\\' && p[1]) ? 2 : 1;
			if (*p)
				p++;
			continue;
		}
		if ((p == in || p[-1] == '\n' || p[-1] == ' ' || p[-1] == '"') &&
		    (hl = is_secret_header(p))) {
			for (int i = 0; i < hl; i++)
				PUT(p[i]);
			PUTS(" REDACTED");
			p += hl;
			while (*p && *p != '\n' && *p != '"')
				p++;
			continue;
		}
		PUT(*p);
		p++;
	}
	out[o] = '\0';
#undef PUT
#undef PUTS
	return out;
}

void lfsfs_log(int level, const char *fmt, ...)
{
	char raw[2048], clean[2400], line[2600];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	lfsfs_redact(raw, clean, sizeof(clean));
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
		     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ lfsfs[%d] %s: %s\n",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, (int)getpid(),
		     level_names[level < 0 ? 0 : level > 3 ? 3 : level], clean);
	if (n > (int)sizeof(line) - 1)
		n = (int)sizeof(line) - 1;
	if (write(log_fd, line, (size_t)n) < 0) {
		/* nowhere left to report a failing log */
	}
}
