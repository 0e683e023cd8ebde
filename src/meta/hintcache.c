/* The .git/drs/pre-commit/v1 hint cache: names, records, applying staged changes, git runner. */
#include "meta/hintcache.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lfsfs/error.h"
#include "util/json.h"

extern char **environ;

#define RECORD_CAP (1u << 20) /* a record larger than this is not ours */
#define TOKEN_LEVEL 250       /* characters of a token per directory level */

/* ------------------------------------------------------------------ names */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *lfsfs_hint_b64url_encode(const void *in, size_t len)
{
	const unsigned char *p = in;
	char *out = malloc(len / 3 * 4 + 4 + 1), *w = out;
	size_t i = 0;

	if (!out)
		return NULL;
	for (; i + 3 <= len; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
		*w++ = b64url[v >> 18];
		*w++ = b64url[(v >> 12) & 63];
		*w++ = b64url[(v >> 6) & 63];
		*w++ = b64url[v & 63];
	}
	if (len - i == 1) {
		unsigned v = (unsigned)p[i] << 16;
		*w++ = b64url[v >> 18];
		*w++ = b64url[(v >> 12) & 63];
	} else if (len - i == 2) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
		*w++ = b64url[v >> 18];
		*w++ = b64url[(v >> 12) & 63];
		*w++ = b64url[(v >> 6) & 63];
	}
	*w = '\0';
	return out;
}

static int b64url_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

int lfsfs_hint_b64url_decode(const char *in, size_t len, char **out, size_t *outlen)
{
	unsigned char *buf, *w;
	unsigned acc = 0;
	int bits = 0;

	*out = NULL;
	*outlen = 0;
	if (len % 4 == 1)
		return lfsfs_error_set(-EINVAL, "invalid base64url: impossible length %zu", len);
	buf = malloc(len / 4 * 3 + 3 + 1);
	if (!buf)
		return -ENOMEM;
	w = buf;
	for (size_t i = 0; i < len; i++) {
		int v = b64url_value(in[i]);
		if (v < 0) {
			free(buf);
			return lfsfs_error_set(-EINVAL, "invalid base64url: byte %zu is '%c'", i,
			                       in[i] >= 0x20 && in[i] < 0x7f ? in[i] : '?');
		}
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			*w++ = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* Raw encoding: the leftover bits must be zero (one canonical form). */
	if (acc) {
		free(buf);
		return lfsfs_error_set(-EINVAL, "invalid base64url: non-zero trailing bits");
	}
	*w = '\0';
	*out = (char *)buf;
	*outlen = (size_t)(w - buf);
	return 0;
}

char *lfsfs_hint_root(const char *gitdir)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(0);

	if (lfsfs_buf_printf(&b, "%s/%s", gitdir, LFSFS_HINT_DIR)) {
		lfsfs_buf_release(&b);
		return NULL;
	}
	return lfsfs_buf_detach(&b);
}

char *lfsfs_hint_path_file(const char *root, const char *dir, const char *path)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(0);
	char *tok = lfsfs_hint_b64url_encode(path, strlen(path));
	size_t n, off = 0;
	int rc;

	if (!tok)
		return NULL;
	n = strlen(tok);
	rc = lfsfs_buf_printf(&b, "%s/%s/", root, dir);
	/* "<token>.json" must fit NAME_MAX: long tokens become directory levels */
	while (!rc && n - off + 5 > NAME_MAX) {
		rc = lfsfs_buf_append(&b, tok + off, TOKEN_LEVEL);
		if (!rc)
			rc = lfsfs_buf_appends(&b, "/");
		off += TOKEN_LEVEL;
	}
	if (!rc)
		rc = lfsfs_buf_printf(&b, "%s.json", tok + off);
	free(tok);
	if (rc) {
		lfsfs_buf_release(&b);
		return NULL;
	}
	return lfsfs_buf_detach(&b);
}

void lfsfs_hint_time(int64_t t, char *out)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, LFSFS_HINT_TIME_LEN + 1, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ------------------------------------------------------------------ JSON out */

/* Append s as a JSON string.  Bytes >= 0x80 are copied (paths are UTF-8). */
static int json_str(struct lfsfs_buf *b, const char *s)
{
	int rc = lfsfs_buf_append(b, "\"", 1);

	for (const unsigned char *p = (const unsigned char *)s; !rc && *p; p++) {
		const unsigned char *run = p;
		while (*p >= 0x20 && *p != '"' && *p != '\\')
			p++;
		if (p > run)
			rc = lfsfs_buf_append(b, run, (size_t)(p - run));
		if (rc || !*p)
			break;
		switch (*p) {
		case '"':
			rc = lfsfs_buf_appends(b, "\\\"");
			break;
		case '\\':
			rc = lfsfs_buf_appends(b, "\\\\");
			break;
		case '\n':
			rc = lfsfs_buf_appends(b, "\\n");
			break;
		case '\t':
			rc = lfsfs_buf_appends(b, "\\t");
			break;
		case '\r':
			rc = lfsfs_buf_appends(b, "\\r");
			break;
		default:
			rc = lfsfs_buf_printf(b, "\\u%04x", *p);
			break;
		}
	}
	if (!rc)
		rc = lfsfs_buf_append(b, "\"", 1);
	return rc;
}

int lfsfs_hint_path_format(const struct lfsfs_hint_path_rec *r, struct lfsfs_buf *out)
{
	int rc = lfsfs_buf_appends(out, "{\n  \"path\": ");

	if (!rc)
		rc = json_str(out, r->path);
	if (!rc)
		rc = lfsfs_buf_printf(
		        out, ",\n  \"lfs_oid\": \"sha256:%s\",\n  \"updated_at\": ", r->oid);
	if (!rc)
		rc = json_str(out, r->updated_at);
	if (!rc)
		rc = lfsfs_buf_appends(out, "\n}\n");
	return rc;
}

int lfsfs_hint_oid_format(const struct lfsfs_hint_oid_rec *r, struct lfsfs_buf *out)
{
	int rc = lfsfs_buf_printf(out, "{\n  \"lfs_oid\": \"sha256:%s\",\n  \"paths\": [", r->oid);

	for (size_t i = 0; !rc && i < r->n_paths; i++) {
		rc = lfsfs_buf_appends(out, i ? ",\n    " : "\n    ");
		if (!rc)
			rc = json_str(out, r->paths[i]);
	}
	if (!rc)
		rc = lfsfs_buf_appends(out, r->n_paths ? "\n  ],\n" : "],\n");
	if (!rc && r->s3_url) {
		rc = lfsfs_buf_appends(out, "  \"s3_url\": ");
		if (!rc)
			rc = json_str(out, r->s3_url);
		if (!rc)
			rc = lfsfs_buf_appends(out, ",\n");
	}
	if (!rc)
		rc = lfsfs_buf_appends(out, "  \"updated_at\": ");
	if (!rc)
		rc = json_str(out, r->updated_at);
	if (!rc)
		rc = lfsfs_buf_printf(out, ",\n  \"content_changed\": %s",
		                      r->content_changed ? "true" : "false");
	for (const cJSON *it = r->extra ? r->extra->child : NULL; !rc && it; it = it->next) {
		char *v = cJSON_PrintUnformatted(it);
		if (!v)
			return -ENOMEM;
		rc = lfsfs_buf_appends(out, ",\n  ");
		if (!rc)
			rc = json_str(out, it->string);
		if (!rc)
			rc = lfsfs_buf_printf(out, ": %s", v);
		free(v);
	}
	if (!rc)
		rc = lfsfs_buf_appends(out, "\n}\n");
	return rc;
}

/* ------------------------------------------------------------------ JSON in */

static int parse_object(const char *data, size_t len, const char *what, cJSON **out)
{
	cJSON *root;

	*out = NULL;
	if (memchr(data, '\0', len))
		return lfsfs_error_set(-LFSFS_EPARSE, "cannot parse '%s': nul byte", what);
	root = cJSON_ParseWithLength(data, len);
	if (!root)
		return lfsfs_error_set(-LFSFS_EPARSE, "cannot parse '%s': not json", what);
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return lfsfs_error_set(-LFSFS_EPARSE, "cannot use '%s': not a json object", what);
	}
	*out = root;
	return 0;
}

/* Copy a string member ("" or absent = none) of at most cap-1 bytes. */
static int get_time(const cJSON *root, const char *what, char *out)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, "updated_at");

	out[0] = '\0';
	if (!it || cJSON_IsNull(it))
		return 0;
	if (!cJSON_IsString(it))
		return lfsfs_error_set(-LFSFS_EPARSE,
		                       "cannot use '%s': \"updated_at\" must be a string", what);
	snprintf(out, LFSFS_HINT_TIME_LEN + 1, "%s", it->valuestring);
	return 0;
}

int lfsfs_hint_path_parse(const char *data, size_t len, const char *what,
                          struct lfsfs_hint_path_rec *out)
{
	const cJSON *it;
	cJSON *root;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = parse_object(data, len, what, &root)))
		return rc;
	it = cJSON_GetObjectItemCaseSensitive(root, "path");
	if (!cJSON_IsString(it) || !*it->valuestring) {
		rc = lfsfs_error_set(-LFSFS_EPARSE, "cannot use '%s': \"path\" must be a string",
		                     what);
		goto out;
	}
	it = cJSON_GetObjectItemCaseSensitive(root, "lfs_oid");
	if (lfsfs_json_sha256(it, out->oid)) {
		rc = lfsfs_error_set(-LFSFS_EPARSE,
		                     "cannot use '%s': \"lfs_oid\" must be \"sha256:<64 hex>\"",
		                     what);
		goto out;
	}
	if ((rc = get_time(root, what, out->updated_at)))
		goto out;
	out->path = strdup(cJSON_GetObjectItemCaseSensitive(root, "path")->valuestring);
	rc = out->path ? 0 : -ENOMEM;
out:
	cJSON_Delete(root);
	if (rc)
		lfsfs_hint_path_rec_release(out);
	return rc;
}

int lfsfs_hint_oid_parse(const char *data, size_t len, const char *what,
                         struct lfsfs_hint_oid_rec *out)
{
	cJSON *root, *it, *next;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = parse_object(data, len, what, &root)))
		return rc;
	it = cJSON_GetObjectItemCaseSensitive(root, "lfs_oid");
	if (lfsfs_json_sha256(it, out->oid)) {
		rc = lfsfs_error_set(-LFSFS_EPARSE,
		                     "cannot use '%s': \"lfs_oid\" must be \"sha256:<64 hex>\"",
		                     what);
		goto out;
	}
	it = cJSON_GetObjectItemCaseSensitive(root, "paths");
	if (it && !cJSON_IsNull(it) && !cJSON_IsArray(it)) {
		rc = lfsfs_error_set(-LFSFS_EPARSE, "cannot use '%s': \"paths\" must be an array",
		                     what);
		goto out;
	}
	for (const cJSON *p = it && cJSON_IsArray(it) ? it->child : NULL; p; p = p->next) {
		if (!cJSON_IsString(p)) {
			rc = lfsfs_error_set(-LFSFS_EPARSE,
			                     "cannot use '%s': \"paths\" must hold strings", what);
			goto out;
		}
		if (*p->valuestring && (rc = lfsfs_hint_oid_add_path(out, p->valuestring)) < 0)
			goto out;
		rc = 0;
	}
	it = cJSON_GetObjectItemCaseSensitive(root, "s3_url");
	if (it && !cJSON_IsNull(it) && !cJSON_IsString(it)) {
		rc = lfsfs_error_set(-LFSFS_EPARSE, "cannot use '%s': \"s3_url\" must be a string",
		                     what);
		goto out;
	}
	if (cJSON_IsString(it) && *it->valuestring && !(out->s3_url = strdup(it->valuestring))) {
		rc = -ENOMEM;
		goto out;
	}
	it = cJSON_GetObjectItemCaseSensitive(root, "content_changed");
	if (it && !cJSON_IsNull(it) && !cJSON_IsBool(it)) {
		rc = lfsfs_error_set(-LFSFS_EPARSE,
		                     "cannot use '%s': \"content_changed\" must be true or false",
		                     what);
		goto out;
	}
	out->content_changed = cJSON_IsTrue(it);
	if ((rc = get_time(root, what, out->updated_at)))
		goto out;
	/* whatever else the record holds is kept for the next write */
	for (it = root->child; it; it = next) {
		static const char *const known[] = { "lfs_oid", "paths", "s3_url", "updated_at",
			                             "content_changed" };
		int k = 0;
		next = it->next;
		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			k |= it->string && !strcmp(it->string, known[i]);
		if (k || !it->string)
			continue;
		if (!out->extra && !(out->extra = cJSON_CreateObject())) {
			rc = -ENOMEM;
			goto out;
		}
		cJSON_AddItemToObject(out->extra, it->string, cJSON_DetachItemViaPointer(root, it));
	}
out:
	cJSON_Delete(root);
	if (rc)
		lfsfs_hint_oid_rec_release(out);
	return rc;
}

void lfsfs_hint_path_rec_release(struct lfsfs_hint_path_rec *r)
{
	free(r->path);
	memset(r, 0, sizeof(*r));
}

void lfsfs_hint_oid_rec_release(struct lfsfs_hint_oid_rec *r)
{
	for (size_t i = 0; i < r->n_paths; i++)
		free(r->paths[i]);
	free(r->paths);
	free(r->s3_url);
	cJSON_Delete(r->extra);
	memset(r, 0, sizeof(*r));
}

/* Index of the first path >= p (binary search over the sorted list). */
static size_t path_slot(const struct lfsfs_hint_oid_rec *r, const char *p, int *found)
{
	size_t lo = 0, hi = r->n_paths;

	*found = 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(r->paths[mid], p);
		if (!c) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int lfsfs_hint_oid_add_path(struct lfsfs_hint_oid_rec *r, const char *path)
{
	int found;
	size_t k = path_slot(r, path, &found);
	char **np, *dup;

	if (found)
		return 0;
	dup = strdup(path);
	np = dup ? realloc(r->paths, (r->n_paths + 1) * sizeof(*np)) : NULL;
	if (!np) {
		free(dup);
		return -ENOMEM;
	}
	r->paths = np;
	memmove(np + k + 1, np + k, (r->n_paths - k) * sizeof(*np));
	np[k] = dup;
	r->n_paths++;
	return 1;
}

int lfsfs_hint_oid_remove_path(struct lfsfs_hint_oid_rec *r, const char *path)
{
	int found;
	size_t k = path_slot(r, path, &found);

	if (!found)
		return 0;
	free(r->paths[k]);
	memmove(r->paths + k, r->paths + k + 1, (r->n_paths - k - 1) * sizeof(char *));
	r->n_paths--;
	return 1;
}

/* ------------------------------------------------------------------ files */

static int mkdir_p(const char *dir)
{
	char tmp[PATH_MAX];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, dir, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0777) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0777) && errno != EEXIST)
		return -errno;
	return 0;
}

/* Write data to tmp and rename it to file; tmp == NULL: write file in place
 * (a staging tree nobody reads yet). */
static int write_once(const char *file, const char *tmp, const void *data, size_t len)
{
	const char *p = data;
	int fd = open(tmp ? tmp : file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);

	if (fd < 0)
		return -errno;
	if (!tmp)
		tmp = file;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			unlink(tmp);
			return -e;
		}
		p += n;
		len -= (size_t)n;
	}
	if (close(fd)) {
		int e = errno;
		unlink(tmp);
		return -e;
	}
	if (tmp != file && rename(tmp, file)) {
		int e = errno;
		unlink(tmp);
		return -e;
	}
	return 0;
}

static int put_file(const char *file, const void *data, size_t len, int direct)
{
	struct lfsfs_buf tmp = LFSFS_BUF_INIT(0);
	int rc = lfsfs_buf_printf(&tmp, "%s.tmp.%ld", file, (long)getpid());

	if (!rc) {
		rc = write_once(file, direct ? NULL : tmp.data, data, len);
		if (rc == -ENOENT) {
			/* first record in this directory */
			char *slash = strrchr(tmp.data, '/');
			if (slash) {
				*slash = '\0';
				rc = mkdir_p(tmp.data);
				*slash = '/';
			}
			if (!rc)
				rc = write_once(file, direct ? NULL : tmp.data, data, len);
		}
	}
	if (rc && rc != -ENOMEM)
		rc = lfsfs_error_set(rc, "cannot write '%s': %s", file, strerror(-rc));
	lfsfs_buf_release(&tmp);
	return rc;
}

int lfsfs_hint_write_file(const char *file, const void *data, size_t len)
{
	return put_file(file, data, len, 0);
}

static int read_record(const char *file, struct lfsfs_buf *b)
{
	int rc = lfsfs_buf_read_file(b, file);

	if (rc == -ENOENT || rc == -ENOTDIR)
		return -ENOENT;
	if (rc == -E2BIG)
		return lfsfs_error_set(-LFSFS_EPARSE, "cannot use '%s': larger than %u bytes", file,
		                       RECORD_CAP);
	if (rc)
		return lfsfs_error_set(rc, "cannot read '%s': %s", file, strerror(-rc));
	return 0;
}

int lfsfs_hint_path_read(const char *root, const char *path, struct lfsfs_hint_path_rec *out)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(RECORD_CAP);
	char *file = lfsfs_hint_path_file(root, "paths", path);
	int rc;

	memset(out, 0, sizeof(*out));
	if (!file)
		return -ENOMEM;
	rc = read_record(file, &b);
	if (!rc)
		rc = lfsfs_hint_path_parse(b.data ? b.data : "", b.len, file, out);
	if (!rc && strcmp(out->path, path)) {
		rc = lfsfs_error_set(-LFSFS_EPARSE,
		                     "cannot use '%s': \"path\" does not match the file name",
		                     file);
		lfsfs_hint_path_rec_release(out);
	}
	lfsfs_buf_release(&b);
	free(file);
	return rc;
}

static char *oid_file(const char *root, const char *oid)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(0);

	if (lfsfs_buf_printf(&b, "%s/oids/%s.json", root, oid)) {
		lfsfs_buf_release(&b);
		return NULL;
	}
	return lfsfs_buf_detach(&b);
}

int lfsfs_hint_oid_read(const char *root, const char *oid, struct lfsfs_hint_oid_rec *out)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(RECORD_CAP);
	char *file;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!lfsfs_oid_valid(oid))
		return lfsfs_error_set(-EINVAL, "invalid oid '%.80s'", oid);
	if (!(file = oid_file(root, oid)))
		return -ENOMEM;
	rc = read_record(file, &b);
	if (!rc)
		rc = lfsfs_hint_oid_parse(b.data ? b.data : "", b.len, file, out);
	if (!rc && strcmp(out->oid, oid)) {
		rc = lfsfs_error_set(-LFSFS_EPARSE,
		                     "cannot use '%s': \"lfs_oid\" does not match the file name",
		                     file);
		lfsfs_hint_oid_rec_release(out);
	}
	lfsfs_buf_release(&b);
	free(file);
	return rc;
}

static int path_write(const char *root, const struct lfsfs_hint_path_rec *r, int direct)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(0);
	char *file = lfsfs_hint_path_file(root, "paths", r->path);
	int rc = file ? lfsfs_hint_path_format(r, &b) : -ENOMEM;

	if (!rc)
		rc = put_file(file, b.data, b.len, direct);
	lfsfs_buf_release(&b);
	free(file);
	return rc;
}

static int oid_write(const char *root, const struct lfsfs_hint_oid_rec *r, int direct)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(0);
	char *file = oid_file(root, r->oid);
	int rc = file ? lfsfs_hint_oid_format(r, &b) : -ENOMEM;

	if (!rc)
		rc = put_file(file, b.data, b.len, direct);
	lfsfs_buf_release(&b);
	free(file);
	return rc;
}

int lfsfs_hint_path_write(const char *root, const struct lfsfs_hint_path_rec *r)
{
	return path_write(root, r, 0);
}

int lfsfs_hint_oid_write(const char *root, const struct lfsfs_hint_oid_rec *r)
{
	return oid_write(root, r, 0);
}

/* One writer at a time: an exclusive flock on <gitdir>/drs/pre-commit/.lock
 * (outside v1/, which a new cache replaces whole).  *fd is closed to unlock. */
static int take_lock(const char *gitdir, int *fd)
{
	struct lfsfs_buf parent = LFSFS_BUF_INIT(0);
	int rc = lfsfs_buf_printf(&parent, "%s/drs/pre-commit", gitdir);

	*fd = -1;
	if (!rc && (rc = mkdir_p(parent.data)))
		rc = lfsfs_error_set(rc, "cannot create '%s': %s", parent.data, strerror(-rc));
	if (!rc && (rc = lfsfs_buf_appends(&parent, "/.lock")) == 0) {
		*fd = open(parent.data, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
		if (*fd < 0 || flock(*fd, LOCK_EX)) {
			rc = lfsfs_error_set(-errno, "cannot lock '%s': %s", parent.data,
			                     strerror(errno));
			if (*fd >= 0)
				close(*fd);
			*fd = -1;
		}
	}
	lfsfs_buf_release(&parent);
	return rc;
}

int lfsfs_hint_set_url(const char *gitdir, const char *oid, const char *url, const char *now)
{
	struct lfsfs_hint_oid_rec r;
	char *root = lfsfs_hint_root(gitdir);
	int rc, lfd = -1;

	if (!root)
		return -ENOMEM;
	if ((rc = take_lock(gitdir, &lfd))) {
		free(root);
		return rc;
	}
	rc = lfsfs_hint_oid_read(root, oid, &r);
	if (rc == -ENOENT || rc == -LFSFS_EPARSE) {
		/* no record yet, or a malformed one (replaced) */
		memset(&r, 0, sizeof(r));
		snprintf(r.oid, sizeof(r.oid), "%s", oid);
		rc = 0;
	}
	if (!rc) {
		free(r.s3_url);
		r.s3_url = strdup(url);
		snprintf(r.updated_at, sizeof(r.updated_at), "%s", now);
		rc = r.s3_url ? lfsfs_hint_oid_write(root, &r) : -ENOMEM;
		lfsfs_hint_oid_rec_release(&r);
	}
	close(lfd);
	free(root);
	return rc;
}

/* ------------------------------------------------------------------ apply */

/* An oid record loaded for this run, written once at the end if dirty. */
struct oid_slot {
	struct lfsfs_hint_oid_rec rec; /* rec.oid[0] == '\0': empty slot */
	int dirty;
};

struct apply {
	const char *root;  /* where records go: the cache, or a staging tree */
	int fresh;         /* root is a new staging tree: files are written in
				 * place, and a kind of file not written yet this
				 * run cannot exist */
	int no_tombstones; /* tombstones/ was empty when the run started */
	const char *now;
	struct lfsfs_hint_stats *st;
	void (*warn)(const char *msg, void *ctx);
	void *ctx;
	struct oid_slot *slots; /* open addressing, power-of-two size */
	size_t cap, used;
};

static void warnf(struct apply *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warnf(struct apply *a, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	a->st->warnings++;
	if (a->warn)
		a->warn(msg, a->ctx);
}

static size_t oid_hash(const char *oid)
{
	size_t h = 0;

	/* an oid is a sha256: its first hex digits are already uniform */
	for (int i = 0; i < 16; i++)
		h = h << 4 | (size_t)(oid[i] <= '9' ? oid[i] - '0' : oid[i] - 'a' + 10);
	return h;
}

static int slots_grow(struct apply *a)
{
	size_t ncap = a->cap ? a->cap * 2 : 256;
	struct oid_slot *ns = calloc(ncap, sizeof(*ns));

	if (!ns)
		return -ENOMEM;
	for (size_t i = 0; i < a->cap; i++) {
		size_t k;
		if (!a->slots[i].rec.oid[0])
			continue;
		for (k = oid_hash(a->slots[i].rec.oid) & (ncap - 1); ns[k].rec.oid[0];
		     k = (k + 1) & (ncap - 1))
			;
		ns[k] = a->slots[i];
	}
	free(a->slots);
	a->slots = ns;
	a->cap = ncap;
	return 0;
}

/* The record of oid, read from disk (or started empty) on first use. */
static int oid_get(struct apply *a, const char *oid, struct lfsfs_hint_oid_rec **out)
{
	size_t k;
	int rc;

	*out = NULL;
	if ((a->used + 1) * 2 > a->cap && (rc = slots_grow(a)))
		return rc;
	for (k = oid_hash(oid) & (a->cap - 1); a->slots[k].rec.oid[0]; k = (k + 1) & (a->cap - 1))
		if (!strcmp(a->slots[k].rec.oid, oid)) {
			*out = &a->slots[k].rec;
			return 0;
		}
	/* oid records are written at the end: a fresh tree has none yet */
	rc = a->fresh ? -ENOENT : lfsfs_hint_oid_read(a->root, oid, &a->slots[k].rec);
	if (rc == -LFSFS_EPARSE) {
		warnf(a, "replacing a malformed hint record: %s", lfsfs_error_message());
		a->slots[k].dirty = 1;
	} else if (rc && rc != -ENOENT) {
		return rc;
	}
	if (rc) {
		memset(&a->slots[k].rec, 0, sizeof(a->slots[k].rec));
		snprintf(a->slots[k].rec.oid, sizeof(a->slots[k].rec.oid), "%s", oid);
		a->slots[k].dirty = 1; /* a new record is written even with no path */
	}
	a->used++;
	*out = &a->slots[k].rec;
	return 0;
}

static void oid_mark(struct apply *a, struct lfsfs_hint_oid_rec *r)
{
	((struct oid_slot *)(void *)r)->dirty = 1;
}

/* The paths/ entry of path: 0 with *pe, -ENOENT, or an error (a malformed
 * entry is reported and counts as absent). */
static int path_get(struct apply *a, const char *path, struct lfsfs_hint_path_rec *pe)
{
	int rc;

	if (a->fresh && !a->st->paths_written) {
		memset(pe, 0, sizeof(*pe));
		return -ENOENT;
	}
	rc = lfsfs_hint_path_read(a->root, path, pe);
	if (rc == -LFSFS_EPARSE) {
		warnf(a, "ignoring a malformed hint record: %s", lfsfs_error_message());
		rc = -ENOENT;
	}
	return rc;
}

static int unlink_path_file(struct apply *a, const char *dir, const char *path, int *removed)
{
	char *file;
	int rc = 0;

	if (removed)
		*removed = 0;
	if (strcmp(dir, "paths") ? (a->fresh || a->no_tombstones) && !a->st->tombstones :
	                           a->fresh && !a->st->paths_written)
		return 0;
	if (!(file = lfsfs_hint_path_file(a->root, dir, path)))
		return -ENOMEM;
	if (unlink(file) == 0) {
		if (removed)
			*removed = 1;
	} else if (errno != ENOENT && errno != ENOTDIR) {
		rc = lfsfs_error_set(-errno, "cannot remove '%s': %s", file, strerror(errno));
	}
	free(file);
	return rc;
}

static int write_path(struct apply *a, const char *path, const char *oid)
{
	struct lfsfs_hint_path_rec r = { .path = (char *)path };
	int rc;

	snprintf(r.oid, sizeof(r.oid), "%s", oid);
	snprintf(r.updated_at, sizeof(r.updated_at), "%s", a->now);
	rc = path_write(a->root, &r, a->fresh);
	if (!rc)
		a->st->paths_written++;
	return rc;
}

static int write_tombstone(struct apply *a, const char *path, const char *oid, const char *reason,
                           const char *renamed_to)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(0);
	char *file = lfsfs_hint_path_file(a->root, "tombstones", path);
	int rc = file ? 0 : -ENOMEM;

	if (!rc)
		rc = lfsfs_buf_appends(&b, "{\n  \"path\": ");
	if (!rc)
		rc = json_str(&b, path);
	if (!rc)
		rc = lfsfs_buf_printf(&b,
		                      ",\n  \"lfs_oid\": \"sha256:%s\",\n  \"deleted_at\": ", oid);
	if (!rc)
		rc = json_str(&b, a->now);
	if (!rc)
		rc = lfsfs_buf_appends(&b, ",\n  \"reason\": ");
	if (!rc)
		rc = json_str(&b, reason);
	if (!rc && renamed_to) {
		rc = lfsfs_buf_appends(&b, ",\n  \"renamed_to\": ");
		if (!rc)
			rc = json_str(&b, renamed_to);
	}
	if (!rc)
		rc = lfsfs_buf_appends(&b, "\n}\n");
	if (!rc)
		rc = put_file(file, b.data, b.len, a->fresh);
	if (!rc)
		a->st->tombstones++;
	lfsfs_buf_release(&b);
	free(file);
	return rc;
}

static int apply_upsert(struct apply *a, const struct lfsfs_hint_change *c)
{
	struct lfsfs_hint_path_rec pe;
	struct lfsfs_hint_oid_rec *r;
	const char *old;
	int rc, have_pe, changed;

	rc = path_get(a, c->path, &pe);
	if (rc && rc != -ENOENT)
		return rc;
	have_pe = !rc;
	old = c->prev_oid && c->prev_oid[0] ? c->prev_oid : have_pe ? pe.oid : "";
	changed = old[0] && strcmp(old, c->oid);
	/* an unchanged entry is left alone: reruns touch nothing */
	if (!have_pe || strcmp(pe.oid, c->oid))
		rc = write_path(a, c->path, c->oid);
	if (have_pe)
		lfsfs_hint_path_rec_release(&pe);
	if (!rc)
		rc = unlink_path_file(a, "tombstones", c->path, NULL);
	if (!rc)
		rc = oid_get(a, c->oid, &r);
	if (rc)
		return rc;
	if ((rc = lfsfs_hint_oid_add_path(r, c->path)) < 0)
		return rc;
	if (rc)
		oid_mark(a, r);
	if (changed) {
		/* the old oid keeps the path: advisory, and lets an undo find it */
		a->st->content_changes++;
		if (!r->content_changed)
			oid_mark(a, r);
		r->content_changed = 1;
	}
	return 0;
}

/* Take path out of oid's paths (oid "" or invalid: nothing). */
static int oid_drop_path(struct apply *a, const char *oid, const char *path)
{
	struct lfsfs_hint_oid_rec *r;
	int rc;

	if (!oid || !lfsfs_oid_valid(oid))
		return 0;
	if ((rc = oid_get(a, oid, &r)))
		return rc;
	if (lfsfs_hint_oid_remove_path(r, path) > 0)
		oid_mark(a, r);
	return 0;
}

static int apply_delete(struct apply *a, const struct lfsfs_hint_change *c)
{
	struct lfsfs_hint_path_rec pe;
	const char *oid;
	int rc, have_pe, removed = 0;

	rc = path_get(a, c->path, &pe);
	if (rc && rc != -ENOENT)
		return rc;
	have_pe = !rc;
	oid = c->prev_oid && c->prev_oid[0] ? c->prev_oid : have_pe ? pe.oid : "";
	if (!oid[0])
		return 0; /* never in scope: nothing to remember */
	rc = unlink_path_file(a, "paths", c->path, &removed);
	if (removed)
		a->st->paths_removed++;
	if (!rc)
		rc = write_tombstone(a, c->path, oid, "deleted", NULL);
	if (!rc)
		rc = oid_drop_path(a, oid, c->path);
	if (!rc && have_pe && strcmp(pe.oid, oid))
		rc = oid_drop_path(a, pe.oid, c->path);
	if (have_pe)
		lfsfs_hint_path_rec_release(&pe);
	return rc;
}

static int apply_rename(struct apply *a, const struct lfsfs_hint_change *c)
{
	struct lfsfs_hint_path_rec pe;
	struct lfsfs_hint_oid_rec *r;
	int rc, have_pe, removed = 0;

	rc = path_get(a, c->old_path, &pe);
	if (rc && rc != -ENOENT)
		return rc;
	have_pe = !rc;
	rc = unlink_path_file(a, "paths", c->old_path, &removed);
	if (removed)
		a->st->paths_removed++;
	if (!rc)
		rc = write_tombstone(a, c->old_path, c->prev_oid, "renamed", c->path);
	if (!rc)
		rc = write_path(a, c->path, c->oid);
	if (!rc)
		rc = unlink_path_file(a, "tombstones", c->path, NULL);
	if (!rc)
		rc = oid_drop_path(a, c->prev_oid, c->old_path);
	if (!rc && have_pe && strcmp(pe.oid, c->prev_oid))
		rc = oid_drop_path(a, pe.oid, c->old_path);
	if (have_pe)
		lfsfs_hint_path_rec_release(&pe);
	if (!rc)
		rc = oid_get(a, c->oid, &r);
	if (rc)
		return rc;
	if ((rc = lfsfs_hint_oid_add_path(r, c->path)) < 0)
		return rc;
	if (rc)
		oid_mark(a, r);
	a->st->renames++;
	if (strcmp(c->prev_oid, c->oid)) {
		a->st->content_changes++;
		if (!r->content_changed)
			oid_mark(a, r);
		r->content_changed = 1;
	}
	return 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path) && errno != ENOENT ? -1 : 0;
}

/* Remove a staging tree this process made. */
static void rm_tree(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* 1 if root/sub has no entries (or does not exist). */
static int dir_empty(const char *root, const char *sub)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(0);
	struct dirent *e;
	DIR *d = NULL;
	int empty = 0;

	if (!lfsfs_buf_printf(&b, "%s/%s", root, sub)) {
		d = opendir(b.data);
		empty = !d && (errno == ENOENT || errno == ENOTDIR);
	}
	if (d) {
		empty = 1;
		while (empty && (e = readdir(d)))
			empty = e->d_name[0] == '.' &&
			        (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]));
		closedir(d);
	}
	lfsfs_buf_release(&b);
	return empty;
}

static int apply_all(struct apply *a, const struct lfsfs_hint_change *changes, size_t n)
{
	int rc = 0;

	for (size_t i = 0; i < n && !rc; i++) {
		const struct lfsfs_hint_change *c = &changes[i];
		switch (c->op) {
		case LFSFS_HINT_UPSERT:
			rc = apply_upsert(a, c);
			break;
		case LFSFS_HINT_DELETE:
			rc = apply_delete(a, c);
			break;
		case LFSFS_HINT_RENAME:
			rc = apply_rename(a, c);
			break;
		}
	}
	for (size_t i = 0; i < a->cap; i++) {
		struct oid_slot *s = &a->slots[i];
		if (!s->rec.oid[0])
			continue;
		if (s->dirty && !rc) {
			snprintf(s->rec.updated_at, sizeof(s->rec.updated_at), "%s", a->now);
			rc = oid_write(a->root, &s->rec, a->fresh);
			if (!rc)
				a->st->oids_written++;
		}
		lfsfs_hint_oid_rec_release(&s->rec);
	}
	free(a->slots);
	a->slots = NULL;
	a->cap = a->used = 0;
	return rc;
}

int lfsfs_hint_apply(const char *gitdir, const struct lfsfs_hint_change *changes, size_t n,
                     const char *now, struct lfsfs_hint_stats *st,
                     void (*warn)(const char *msg, void *ctx), void *ctx)
{
	struct lfsfs_hint_stats dummy;
	struct apply a = { .now = now, .st = st ? st : &dummy, .warn = warn, .ctx = ctx };
	struct lfsfs_buf stage = LFSFS_BUF_INIT(0);
	char *root = lfsfs_hint_root(gitdir);
	int rc = 0, lfd = -1;

	memset(a.st, 0, sizeof(*a.st));
	if (!root ||
	    lfsfs_buf_printf(&stage, "%s/drs/pre-commit/v1.new.%ld", gitdir, (long)getpid())) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = take_lock(gitdir, &lfd)))
		goto out;
	if (access(root, F_OK) && errno == ENOENT) {
		/* a new cache is built aside and renamed into place whole: no
		 * temp file per record, and nobody sees half a cache */
		rm_tree(stage.data);
		if (mkdir(stage.data, 0777) == 0) {
			a.root = stage.data;
			a.fresh = 1;
			rc = apply_all(&a, changes, n);
			if (!rc && rename(stage.data, root) == 0)
				goto out;
			rm_tree(stage.data);
			if (rc)
				goto out;
			memset(a.st, 0, sizeof(*a.st)); /* lost a race: do it in place */
		}
	}
	a.root = root;
	a.fresh = 0;
	a.no_tombstones = dir_empty(root, "tombstones");
	if ((rc = mkdir_p(root))) {
		rc = lfsfs_error_set(rc, "cannot create '%s': %s", root, strerror(-rc));
		goto out;
	}
	rc = apply_all(&a, changes, n);
out:
	free(a.slots);
	if (lfd >= 0)
		close(lfd); /* releases the lock */
	lfsfs_buf_release(&stage);
	free(root);
	return rc;
}

/* ------------------------------------------------------------------ state */

int lfsfs_hint_read_state(const char *gitdir, char **head)
{
	struct lfsfs_buf file = LFSFS_BUF_INIT(0), b = LFSFS_BUF_INIT(RECORD_CAP);
	const cJSON *v, *h;
	cJSON *root = NULL;
	int rc;

	*head = NULL;
	if ((rc = lfsfs_buf_printf(&file, "%s/%s/state.json", gitdir, LFSFS_HINT_DIR)))
		goto out;
	rc = -ENOENT;
	if (lfsfs_buf_read_file(&b, file.data) || !b.data ||
	    !(root = cJSON_ParseWithLength(b.data, b.len)))
		goto out;
	v = cJSON_GetObjectItemCaseSensitive(root, "version");
	h = cJSON_GetObjectItemCaseSensitive(root, "head");
	if (!cJSON_IsNumber(v) || v->valuedouble != 1 || !h ||
	    (!cJSON_IsNull(h) && !cJSON_IsString(h)))
		goto out;
	rc = 0;
	if (cJSON_IsString(h) && !(*head = strdup(h->valuestring)))
		rc = -ENOMEM;
out:
	cJSON_Delete(root);
	lfsfs_buf_release(&file);
	lfsfs_buf_release(&b);
	return rc;
}

struct pathlist {
	char **v;
	size_t n, cap;
};

/* Collect the tokens below dir (prefix: the token so far, for long names
 * cut into directory levels). */
static int list_tokens(const char *dir, const char *prefix, struct pathlist *pl, int depth)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int rc = 0;

	if (!d)
		return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
	while (!rc && (e = readdir(d))) {
		size_t len = strlen(e->d_name);
		struct lfsfs_buf tok = LFSFS_BUF_INIT(0), sub = LFSFS_BUF_INIT(0);
		if (e->d_name[0] == '.')
			continue;
		if (e->d_type == DT_DIR || e->d_type == DT_UNKNOWN) {
			if (depth < 32 && !lfsfs_buf_printf(&sub, "%s/%s", dir, e->d_name) &&
			    !lfsfs_buf_printf(&tok, "%s%s", prefix, e->d_name)) {
				struct stat st;
				if (e->d_type == DT_DIR ||
				    (!stat(sub.data, &st) && S_ISDIR(st.st_mode)))
					rc = list_tokens(sub.data, tok.data, pl, depth + 1);
			}
			lfsfs_buf_release(&sub);
			lfsfs_buf_release(&tok);
			if (e->d_type == DT_DIR || rc)
				continue;
		}
		if (len > 5 && !strcmp(e->d_name + len - 5, ".json")) {
			char *path;
			size_t plen;
			if (lfsfs_buf_printf(&tok, "%s%.*s", prefix, (int)(len - 5), e->d_name)) {
				rc = -ENOMEM;
			} else if (!lfsfs_hint_b64url_decode(tok.data, tok.len, &path, &plen)) {
				if (strlen(path) != plen) {
					free(path); /* a NUL inside: not a path */
				} else {
					if (pl->n == pl->cap) {
						size_t nc = pl->cap ? pl->cap * 2 : 256;
						char **nv = realloc(pl->v, nc * sizeof(*nv));
						if (!nv) {
							free(path);
							rc = -ENOMEM;
						} else {
							pl->v = nv;
							pl->cap = nc;
						}
					}
					if (!rc)
						pl->v[pl->n++] = path;
				}
			}
			lfsfs_error_clear();
		}
		lfsfs_buf_release(&tok);
	}
	closedir(d);
	return rc;
}

static int cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int lfsfs_hint_list_paths(const char *gitdir, char ***out, size_t *n)
{
	struct lfsfs_buf dir = LFSFS_BUF_INIT(0);
	struct pathlist pl = { 0 };
	int rc = lfsfs_buf_printf(&dir, "%s/%s/paths", gitdir, LFSFS_HINT_DIR);

	*out = NULL;
	*n = 0;
	if (!rc)
		rc = list_tokens(dir.data, "", &pl, 0);
	lfsfs_buf_release(&dir);
	if (rc) {
		lfsfs_hint_paths_free(pl.v, pl.n);
		return rc;
	}
	if (pl.n)
		qsort(pl.v, pl.n, sizeof(*pl.v), cmp_cstr);
	*out = pl.v;
	*n = pl.n;
	return 0;
}

void lfsfs_hint_paths_free(char **paths, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
}

int lfsfs_hint_write_state(const char *gitdir, const char *now, const char *head, const char *mode,
                           const struct lfsfs_hint_stats *st, double ms)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(0), file = LFSFS_BUF_INIT(0);
	int rc = lfsfs_buf_printf(&file, "%s/%s/state.json", gitdir, LFSFS_HINT_DIR);

	if (!rc)
		rc = lfsfs_buf_appends(&b, "{\n  \"version\": 1,\n  \"updated_at\": ");
	if (!rc)
		rc = json_str(&b, now);
	if (!rc)
		rc = lfsfs_buf_appends(&b, ",\n  \"head\": ");
	if (!rc)
		rc = head && *head ? json_str(&b, head) : lfsfs_buf_appends(&b, "null");
	if (!rc)
		rc = lfsfs_buf_appends(&b, ",\n  \"last_run\": {\n    \"mode\": ");
	if (!rc)
		rc = json_str(&b, mode);
	if (!rc)
		rc = lfsfs_buf_printf(&b,
		                      ",\n    \"paths_written\": %zu,\n    \"paths_removed\": %zu,"
		                      "\n    \"oids_written\": %zu,\n    \"tombstones\": %zu,"
		                      "\n    \"renames\": %zu,\n    \"content_changes\": %zu,"
		                      "\n    \"warnings\": %zu,\n    \"ms\": %.1f\n  }\n}\n",
		                      st->paths_written, st->paths_removed, st->oids_written,
		                      st->tombstones, st->renames, st->content_changes,
		                      st->warnings, ms);
	if (!rc)
		rc = lfsfs_hint_write_file(file.data, b.data, b.len);
	lfsfs_buf_release(&b);
	lfsfs_buf_release(&file);
	return rc;
}

/* ------------------------------------------------------------------ git */

static int drain(int fd, struct lfsfs_buf *b, int *over)
{
	char tmp[65536];
	ssize_t n = read(fd, tmp, sizeof(tmp));

	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 1 : -errno;
	if (n == 0)
		return 0;
	if (b && !*over && lfsfs_buf_append(b, tmp, (size_t)n))
		*over = 1; /* keep reading so git can finish */
	return 1;
}

int lfsfs_git_run(const char *dir, const char *const *argv, const void *in, size_t inlen,
                  struct lfsfs_buf *out, struct lfsfs_buf *err, int *status)
{
	const char **av = NULL;
	size_t argc = 0, k = 0, off = 0;
	int ip[2] = { -1, -1 }, op[2] = { -1, -1 }, ep[2] = { -1, -1 };
	int rc = 0, st = 0, over = 0, over_err = 0, sigpipe_pending = 0;
	posix_spawn_file_actions_t fa;
	sigset_t pipeset, oldset;
	pid_t pid;

	*status = 127;
	while (argv[argc])
		argc++;
	av = calloc(argc + 4, sizeof(*av));
	if (!av)
		return -ENOMEM;
	av[k++] = "git";
	if (dir) {
		av[k++] = "-C";
		av[k++] = dir;
	}
	for (size_t i = 0; i < argc; i++)
		av[k++] = argv[i];
	av[k] = NULL;
	if (pipe2(ip, O_CLOEXEC) || pipe2(op, O_CLOEXEC) || pipe2(ep, O_CLOEXEC)) {
		rc = -errno;
		goto out;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, ip[0], 0);
	posix_spawn_file_actions_adddup2(&fa, op[1], 1);
	posix_spawn_file_actions_adddup2(&fa, ep[1], 2);
	rc = -posix_spawnp(&pid, "git", &fa, NULL, (char *const *)av, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(ip[0]);
	close(op[1]);
	close(ep[1]);
	ip[0] = op[1] = ep[1] = -1;
	if (rc) {
		rc = lfsfs_error_set(rc, "cannot run git: %s", strerror(-rc));
		goto out;
	}
	/* git may exit without reading its input: EPIPE, not a dead process */
	sigemptyset(&pipeset);
	sigaddset(&pipeset, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipeset, &oldset);
	if (!inlen) {
		close(ip[1]);
		ip[1] = -1;
	} else {
		fcntl(ip[1], F_SETFL, O_NONBLOCK);
	}
	while (op[0] >= 0 || ep[0] >= 0) {
		struct pollfd pf[3];
		int np = 0, r;
		int iw = -1, io = -1, ie = -1;
		if (ip[1] >= 0) {
			pf[np] = (struct pollfd){ .fd = ip[1], .events = POLLOUT };
			iw = np++;
		}
		if (op[0] >= 0) {
			pf[np] = (struct pollfd){ .fd = op[0], .events = POLLIN };
			io = np++;
		}
		if (ep[0] >= 0) {
			pf[np] = (struct pollfd){ .fd = ep[0], .events = POLLIN };
			ie = np++;
		}
		if (poll(pf, (nfds_t)np, -1) < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		if (iw >= 0 && pf[iw].revents) {
			ssize_t n = write(ip[1], (const char *)in + off, inlen - off);
			if (n > 0)
				off += (size_t)n;
			if ((n < 0 && errno != EAGAIN && errno != EINTR) || off == inlen) {
				if (n < 0 && errno == EPIPE)
					sigpipe_pending = 1;
				close(ip[1]);
				ip[1] = -1;
			}
		}
		if (io >= 0 && pf[io].revents && (r = drain(op[0], out, &over)) <= 0) {
			close(op[0]);
			op[0] = -1;
		}
		if (ie >= 0 && pf[ie].revents && (r = drain(ep[0], err, &over_err)) <= 0) {
			close(ep[0]);
			ep[0] = -1;
		}
	}
	if (ip[1] >= 0) {
		close(ip[1]);
		ip[1] = -1;
	}
	if (sigpipe_pending) {
		struct timespec zero = { 0, 0 };
		while (sigtimedwait(&pipeset, NULL, &zero) > 0)
			;
	}
	pthread_sigmask(SIG_SETMASK, &oldset, NULL);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	*status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	if (!rc && over)
		rc = lfsfs_error_set(-E2BIG, "git %s: output larger than %zu bytes", argv[0],
		                     out && out->cap ? out->cap : (size_t)0);
out:
	for (int i = 0; i < 2; i++) {
		if (ip[i] >= 0)
			close(ip[i]);
		if (op[i] >= 0)
			close(op[i]);
		if (ep[i] >= 0)
			close(ep[i]);
	}
	free(av);
	return rc;
}
