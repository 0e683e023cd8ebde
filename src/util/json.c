/* JSON file loading with line:column errors, and shared size/sha256 field parsers. */
#include "util/json.h"

#include <errno.h>
#include <string.h>

#include "lfsfs/error.h"
#include "util/buf.h"

/* Largest integer a JSON number (a double) carries exactly: 2^53. */
#define JSON_EXACT_MAX 9007199254740992.0

/* How a loader's messages word a failure (see json.h). */
struct wording {
	const char *name;    /* what the messages call the file */
	const char *too_big; /* verb for an oversized file: "read" or "use" */
	const char *advice;  /* ends both parse messages; "" for none */
};

/* 1-based line and byte column of `at` inside buf. */
static void text_position(const char *buf, const char *at, unsigned *line, unsigned *col)
{
	const char *p, *bol = buf;

	*line = 1;
	for (p = buf; p < at; p++) {
		if (*p == '\n') {
			(*line)++;
			bol = p + 1;
		}
	}
	*col = (unsigned)(at - bol) + 1;
}

static int load(const char *path, size_t cap, const struct wording *w, cJSON **out)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(cap);
	const char *end = NULL;
	unsigned line, col;
	int rc;

	*out = NULL;
	rc = lfsfs_buf_read_file(&b, path);
	if (rc == -ENOENT)
		goto out;
	if (rc == -E2BIG) {
		rc = lfsfs_error_set(-LFSFS_EPARSE, "cannot %s '%s': larger than %zu bytes",
		                     w->too_big, w->name, cap);
		goto out;
	}
	if (rc) {
		rc = lfsfs_error_set(rc, "cannot read '%s': %s", w->name, lfsfs_code_name(rc));
		goto out;
	}
	/* lfsfs_buf_read_file() leaves b.data non-NULL ("" for an empty file). */
	end = memchr(b.data, '\0', b.len);
	if (end) {
		text_position(b.data, end, &line, &col);
		rc = lfsfs_error_set(-LFSFS_EPARSE, "cannot parse '%s:%u:%u': nul byte in json%s",
		                     w->name, line, col, w->advice);
		goto out;
	}
	*out = cJSON_ParseWithOpts(b.data, &end, 1);
	if (!*out) {
		/* cJSON points return_parse_end at the failing byte. */
		if (!end || end < b.data || end > b.data + b.len)
			end = b.data;
		text_position(b.data, end, &line, &col);
		rc = lfsfs_error_set(-LFSFS_EPARSE, "cannot parse '%s:%u:%u': malformed json%s",
		                     w->name, line, col, w->advice);
		goto out;
	}
	rc = 0;
out:
	lfsfs_buf_release(&b);
	return rc;
}

int lfsfs_json_load_file(const char *path, size_t cap, cJSON **out)
{
	const struct wording w = {path, "read", ""};

	return load(path, cap, &w, out);
}

int lfsfs_json_load_edit(const char *path, const char *name, size_t cap, cJSON **out)
{
	const struct wording w = {
	        name, "use",
	        "; the file was left untouched: fix it by hand, then run the command again"};

	return load(path, cap, &w, out);
}

/* Decimal digits only, fits uint64. */
static int parse_decimal(const char *s, uint64_t *out)
{
	uint64_t n = 0;

	if (!*s)
		return -LFSFS_EPARSE;
	for (; *s; s++) {
		unsigned d;

		if (*s < '0' || *s > '9')
			return -LFSFS_EPARSE;
		d = (unsigned)(*s - '0');
		if (n > (UINT64_MAX - d) / 10)
			return -LFSFS_EPARSE;
		n = n * 10 + d;
	}
	*out = n;
	return 0;
}

int lfsfs_json_size(const cJSON *it, uint64_t *out)
{
	double d;

	if (cJSON_IsString(it))
		return parse_decimal(it->valuestring, out);
	if (!cJSON_IsNumber(it))
		return -LFSFS_EPARSE;
	d = it->valuedouble;
	if (!(d >= 0 && d <= JSON_EXACT_MAX) || (double)(uint64_t)d != d)
		return -LFSFS_EPARSE;
	*out = (uint64_t)d;
	return 0;
}

int lfsfs_json_sha256(const cJSON *it, char out[LFSFS_OID_HEX_LEN + 1])
{
	const char *s;

	if (!cJSON_IsString(it))
		return -LFSFS_EPARSE;
	s = it->valuestring;
	if (!strncmp(s, "sha256:", 7))
		s += 7;
	for (int i = 0; i < LFSFS_OID_HEX_LEN; i++) {
		char c = s[i];

		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return -LFSFS_EPARSE;
		out[i] = c;
	}
	if (s[LFSFS_OID_HEX_LEN])
		return -LFSFS_EPARSE;
	out[LFSFS_OID_HEX_LEN] = '\0';
	return 0;
}
