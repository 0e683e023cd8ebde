/* Writers for .lfs-meta records, pointer files and .gitattributes (atomic, sorted, idempotent). */
#include "meta/lfsmeta_write.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lfsfs/error.h"
#include "util/buf.h"
#include "util/json.h"
#include "util/path.h"

#define META_FILE_CAP ((size_t)256 << 20)
#define RECORD_FILE_CAP ((size_t)1 << 20)
#define ATTR_FILE_CAP ((size_t)64 << 20)
/* Largest integer a JSON number (a double) carries exactly: 2^53. */
#define JSON_EXACT_MAX 9007199254740992ull

static const char META_REL[] = ".lfs-meta/metadata.json";
static const char ATTR_LINE_TAIL[] = " filter=lfs diff=lfs merge=lfs -text";

/* ---- small helpers ------------------------------------------------------ */

static int is_hex(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

int lfsfs_sha256_parse(const char *in, char out[LFSFS_OID_HEX_LEN + 1])
{
	const char *s = in ? in : "";

	if (!strncasecmp(s, "sha256:", 7))
		s += 7;
	for (int i = 0; i < LFSFS_OID_HEX_LEN; i++) {
		if (!is_hex((unsigned char)s[i]))
			goto bad;
		out[i] = (char)tolower((unsigned char)s[i]);
	}
	if (s[LFSFS_OID_HEX_LEN])
		goto bad;
	out[LFSFS_OID_HEX_LEN] = '\0';
	return 0;
bad:
	out[0] = '\0';
	return lfsfs_error_set(-EINVAL, "invalid sha256 '%.80s': expected 64 hex digits", s);
}

/* Strip W/ and one pair of quotes: the entity's opaque part as [p, p+n). */
static void etag_core(const char *etag, const char **p, size_t *n)
{
	const char *s = etag;
	size_t len;

	if (!strncmp(s, "W/", 2))
		s += 2;
	len = strlen(s);
	if (len >= 2 && s[0] == '"' && s[len - 1] == '"') {
		s++;
		len -= 2;
	}
	*p = s;
	*n = len;
}

int lfsfs_etag_filename(const char *etag, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	const char *p;
	size_t n, o = 0;

	if (!etag)
		return lfsfs_error_set(-EINVAL, "empty etag");
	etag_core(etag, &p, &n);
	if (!n)
		return lfsfs_error_set(-EINVAL, "etag '%s' is empty once its quotes are stripped",
		                       etag);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		int plain = isalnum(c) || c == '.' || c == '_' || c == '-';

		if (o + (plain ? 1 : 3) + 1 > cap)
			goto long_name;
		if (plain) {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	/* "<name>.json" must be a legal file name. */
	if (o + 5 > NAME_MAX)
		goto long_name;
	return 0;
long_name:
	if (cap)
		out[0] = '\0';
	return lfsfs_error_set(-ENAMETOOLONG, "etag '%.80s' is too long for a record file name",
	                       etag);
}

int lfsfs_etag_normalize(const char *in, char *out, size_t cap)
{
	size_t n = in ? strlen(in) : 0;
	int quoted;

	if (!n || has_ctl(in))
		return lfsfs_error_set(-EINVAL, "invalid etag '%.80s'", in ? in : "");
	quoted = (n >= 2 && in[0] == '"' && in[n - 1] == '"') ||
	         (n >= 4 && !strncmp(in, "W/\"", 3) && in[n - 1] == '"');
	if ((quoted ? n : n + 2) + 1 > cap)
		return lfsfs_error_set(-ENAMETOOLONG, "etag '%.80s' is too long", in);
	if (quoted)
		memcpy(out, in, n + 1);
	else
		snprintf(out, cap, "\"%s\"", in);
	return 0;
}

int lfsfs_etag_same(const char *a, const char *b)
{
	const char *pa, *pb;
	size_t na, nb;

	if (!a || !b)
		return 0;
	etag_core(a, &pa, &na);
	etag_core(b, &pb, &nb);
	return na == nb && !memcmp(pa, pb, na);
}

/* ---- atomic files ------------------------------------------------------- */

static pthread_once_t umask_once = PTHREAD_ONCE_INIT;
static mode_t umask_value = 022;

/* Linux >= 4.7 reports the umask in /proc without changing it (umask(2)
 * would briefly change it under other threads creating files). */
static void umask_read(void)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "re");

	if (f) {
		while (fgets(line, sizeof(line), f)) {
			if (!strncmp(line, "Umask:", 6)) {
				umask_value = (mode_t)strtoul(line + 6, NULL, 8) & 0777;
				fclose(f);
				return;
			}
		}
		fclose(f);
	}
	umask_value = umask(022);
	umask(umask_value);
}

static mode_t new_file_mode(void)
{
	pthread_once(&umask_once, umask_read);
	return 0666 & ~umask_value;
}

/* 1 if path is a regular file holding exactly [data, data+len). */
static int same_content(const char *path, const struct stat *sb, const void *data, size_t len)
{
	char buf[65536];
	size_t off = 0;
	int fd, same = 1;

	if (!S_ISREG(sb->st_mode) || (uint64_t)sb->st_size != len)
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	while (off < len) {
		size_t want = len - off < sizeof(buf) ? len - off : sizeof(buf);
		ssize_t n = read(fd, buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || memcmp(buf, (const char *)data + off, (size_t)n)) {
			same = 0;
			break;
		}
		off += (size_t)n;
	}
	close(fd);
	return same;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) && errno != EINVAL)
		rc = -errno;
	close(fd);
	return rc;
}

int lfsfs_write_atomic(const char *path, const void *data, size_t len, unsigned flags)
{
	char dir[PATH_MAX], tmp[PATH_MAX + 32];
	const char *slash = strrchr(path, '/');
	struct stat sb;
	mode_t mode = new_file_mode();
	size_t off = 0;
	int fd, rc;

	if (lstat(path, &sb) == 0) {
		if (same_content(path, &sb, data, len))
			return 0;
		if (S_ISREG(sb.st_mode))
			mode = sb.st_mode & 07777;
	}
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else if ((size_t)(slash - path) >= sizeof(dir))
		return lfsfs_error_set(-ENAMETOOLONG, "path '%.200s' is too long", path);
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	snprintf(tmp, sizeof(tmp), "%s/.lfsfs-tmp-XXXXXX", dir);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return lfsfs_error_set(-errno, "cannot create a temporary file in '%s': %s", dir,
		                       strerror(errno));
	while (off < len) {
		ssize_t n = write(fd, (const char *)data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = lfsfs_error_set(-errno, "cannot write '%s': %s", tmp, strerror(errno));
			goto fail;
		}
		off += (size_t)n;
	}
	if (fchmod(fd, mode)) {
		rc = lfsfs_error_set(-errno, "cannot chmod '%s': %s", tmp, strerror(errno));
		goto fail;
	}
	if (!(flags & LFSFS_WRITE_NOSYNC) && fsync(fd)) {
		rc = lfsfs_error_set(-errno, "cannot sync '%s': %s", tmp, strerror(errno));
		goto fail;
	}
	if (close(fd)) {
		fd = -1;
		rc = lfsfs_error_set(-errno, "cannot write '%s': %s", tmp, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path)) {
		rc = lfsfs_error_set(-errno, "cannot replace '%s': %s", path, strerror(errno));
		goto fail;
	}
	if (!(flags & LFSFS_WRITE_NOSYNC) && (rc = fsync_dir(dir)))
		return lfsfs_error_set(rc, "cannot sync directory '%s': %s", dir, strerror(-rc));
	return 1;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return rc;
}

/* mkdir -p of the directories above rel inside repo (mode 0777 & ~umask). */
static int mkdir_parents(const char *repo, const char *rel)
{
	char path[PATH_MAX];
	size_t base = strlen(repo) + 1;
	int n = snprintf(path, sizeof(path), "%s/%s", repo, rel);

	if (n < 0 || (size_t)n >= sizeof(path))
		return lfsfs_error_set(-ENAMETOOLONG, "path '%.200s' is too long", rel);
	for (char *p = path + base; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0777) && errno != EEXIST) {
			int e = errno;
			*p = '/';
			return lfsfs_error_set(-e, "cannot create directory '%.*s': %s",
			                       (int)(p - path), path, strerror(e));
		}
		*p = '/';
	}
	return 0;
}

/* ---- JSON in, JSON out -------------------------------------------------- */

static int json_print(const cJSON *v, unsigned depth, struct lfsfs_buf *b);

static int print_indent(unsigned depth, struct lfsfs_buf *b)
{
	static const char sp[] = "                                ";

	for (unsigned n = depth * 2; n;) {
		unsigned k = n < sizeof(sp) - 1 ? n : (unsigned)sizeof(sp) - 1;
		int rc = lfsfs_buf_append(b, sp, k);
		if (rc)
			return rc;
		n -= k;
	}
	return 0;
}

static int print_string(const char *s, struct lfsfs_buf *b)
{
	int rc = lfsfs_buf_append(b, "\"", 1);

	for (const unsigned char *p = (const unsigned char *)s; !rc && *p; p++) {
		switch (*p) {
		case '"':
			rc = lfsfs_buf_append(b, "\\\"", 2);
			break;
		case '\\':
			rc = lfsfs_buf_append(b, "\\\\", 2);
			break;
		case '\b':
			rc = lfsfs_buf_append(b, "\\b", 2);
			break;
		case '\f':
			rc = lfsfs_buf_append(b, "\\f", 2);
			break;
		case '\n':
			rc = lfsfs_buf_append(b, "\\n", 2);
			break;
		case '\r':
			rc = lfsfs_buf_append(b, "\\r", 2);
			break;
		case '\t':
			rc = lfsfs_buf_append(b, "\\t", 2);
			break;
		default:
			if (*p < 0x20)
				rc = lfsfs_buf_printf(b, "\\u%04x", *p);
			else
				rc = lfsfs_buf_append(b, p, 1);
		}
	}
	return rc ? rc : lfsfs_buf_append(b, "\"", 1);
}

static int print_number(double d, struct lfsfs_buf *b)
{
	char tmp[64];

	if (!isfinite(d))
		return lfsfs_buf_appends(b, "null");
	if (d == floor(d) && fabs(d) < 1e17)
		return lfsfs_buf_printf(b, "%.0f", d);
	/* shortest form that reads back as the same double */
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	return lfsfs_buf_appends(b, tmp);
}

struct keyed {
	const cJSON *it;
	size_t order;
};

static int keyed_cmp(const void *a, const void *b)
{
	const struct keyed *x = a, *y = b;
	int c = strcmp(x->it->string ? x->it->string : "", y->it->string ? y->it->string : "");

	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

static int print_container(const cJSON *v, unsigned depth, struct lfsfs_buf *b, int object)
{
	size_t n = 0, i = 0;
	struct keyed *kids;
	const cJSON *c;
	int rc = 0;

	for (c = v->child; c; c = c->next)
		n++;
	if (!n)
		return lfsfs_buf_appends(b, object ? "{}" : "[]");
	kids = malloc(n * sizeof(*kids));
	if (!kids)
		return -ENOMEM;
	for (c = v->child; c; c = c->next, i++) {
		kids[i].it = c;
		kids[i].order = i;
	}
	if (object)
		qsort(kids, n, sizeof(*kids), keyed_cmp);
	rc = lfsfs_buf_appends(b, object ? "{\n" : "[\n");
	for (i = 0; !rc && i < n; i++) {
		rc = print_indent(depth + 1, b);
		if (!rc && object) {
			rc = print_string(kids[i].it->string ? kids[i].it->string : "", b);
			if (!rc)
				rc = lfsfs_buf_append(b, ": ", 2);
		}
		if (!rc)
			rc = json_print(kids[i].it, depth + 1, b);
		if (!rc)
			rc = lfsfs_buf_appends(b, i + 1 < n ? ",\n" : "\n");
	}
	if (!rc)
		rc = print_indent(depth, b);
	if (!rc)
		rc = lfsfs_buf_appends(b, object ? "}" : "]");
	free(kids);
	return rc;
}

static int json_print(const cJSON *v, unsigned depth, struct lfsfs_buf *b)
{
	if (cJSON_IsNull(v))
		return lfsfs_buf_appends(b, "null");
	if (cJSON_IsTrue(v))
		return lfsfs_buf_appends(b, "true");
	if (cJSON_IsFalse(v))
		return lfsfs_buf_appends(b, "false");
	if (cJSON_IsNumber(v))
		return print_number(v->valuedouble, b);
	if (cJSON_IsString(v))
		return print_string(v->valuestring ? v->valuestring : "", b);
	if (cJSON_IsArray(v))
		return print_container(v, depth, b, 0);
	if (cJSON_IsObject(v))
		return print_container(v, depth, b, 1);
	if (cJSON_IsRaw(v) && v->valuestring)
		return lfsfs_buf_appends(b, v->valuestring);
	return lfsfs_buf_appends(b, "null");
}

/* The canonical text of a JSON document: sorted keys, 2-space indent, "\n". */
static int json_text(const cJSON *root, struct lfsfs_buf *b)
{
	int rc = json_print(root, 0, b);

	return rc ? rc : lfsfs_buf_append(b, "\n", 1);
}

static const cJSON *jfield(const cJSON *obj, const char *key)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsNull(it) ? NULL : it;
}

static const char *jstr(const cJSON *obj, const char *key)
{
	const cJSON *it = jfield(obj, key);

	return cJSON_IsString(it) && it->valuestring && *it->valuestring ? it->valuestring : NULL;
}

/* A size: a non-negative integral number (exact up to 2^53) or a decimal string. */
static int jsize(const cJSON *it, uint64_t *out)
{
	if (cJSON_IsString(it)) {
		const char *s = it->valuestring;
		uint64_t n = 0;

		if (!s || !*s)
			return -1;
		for (; *s; s++) {
			if (*s < '0' || *s > '9' || n > (UINT64_MAX - 9) / 10)
				return -1;
			n = n * 10 + (uint64_t)(*s - '0');
		}
		*out = n;
		return 0;
	}
	if (cJSON_IsNumber(it)) {
		double d = it->valuedouble;
		if (!(d >= 0 && d <= (double)JSON_EXACT_MAX) || d != floor(d))
			return -1;
		*out = (uint64_t)d;
		return 0;
	}
	return -1;
}

/* The sha256 in obj[key] as lowercase hex into out; 0 found, -1 absent/bad. */
static int jsha(const cJSON *obj, const char *key, char out[LFSFS_OID_HEX_LEN + 1])
{
	const char *s = jstr(obj, key);
	int rc;

	out[0] = '\0';
	if (!s)
		return -1;
	rc = lfsfs_sha256_parse(s, out);
	lfsfs_error_clear();
	return rc ? -1 : 0;
}

/* Set obj[key] = item, replacing the first such key. Takes item. */
static int jput(cJSON *obj, const char *key, cJSON *item)
{
	if (!item)
		return -ENOMEM;
	if (cJSON_GetObjectItemCaseSensitive(obj, key)) {
		if (!cJSON_ReplaceItemInObjectCaseSensitive(obj, key, item)) {
			cJSON_Delete(item);
			return -ENOMEM;
		}
		return 0;
	}
	if (!cJSON_AddItemToObject(obj, key, item)) {
		cJSON_Delete(item);
		return -ENOMEM;
	}
	return 0;
}

/* obj[key] = s; returns 1 if that changed anything, 0 if not, <0. */
static int jset_str(cJSON *obj, const char *key, const char *s)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
	int rc;

	if (cJSON_IsString(it) && it->valuestring && !strcmp(it->valuestring, s))
		return 0;
	rc = jput(obj, key, cJSON_CreateString(s));
	return rc ? rc : 1;
}

/* obj[key] = size (a number up to 2^53, above that a decimal string). */
static int jset_size(cJSON *obj, const char *key, uint64_t size)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
	uint64_t have;
	char num[32];
	int rc;

	if (it && !jsize(it, &have) && have == size)
		return 0;
	if (size <= JSON_EXACT_MAX) {
		rc = jput(obj, key, cJSON_CreateNumber((double)size));
	} else {
		snprintf(num, sizeof(num), "%" PRIu64, size);
		rc = jput(obj, key, cJSON_CreateString(num));
	}
	return rc ? rc : 1;
}

static int jset_null(cJSON *obj, const char *key)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
	int rc;

	if (cJSON_IsNull(it))
		return 0;
	rc = jput(obj, key, cJSON_CreateNull());
	return rc ? rc : 1;
}

static int jdel(cJSON *obj, const char *key)
{
	if (!cJSON_GetObjectItemCaseSensitive(obj, key))
		return 0;
	cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
	return 1;
}

/* url is obj["url"] or one of obj["urls"]. */
static int jhas_url(const cJSON *obj, const char *url)
{
	const char *u = jstr(obj, "url");
	const cJSON *it;

	if (u && !strcmp(u, url))
		return 1;
	cJSON_ArrayForEach(it, jfield(obj, "urls")) if (cJSON_IsString(it) && it->valuestring &&
	                                                !strcmp(it->valuestring, url)) return 1;
	return 0;
}

/* Record url in obj: as "url" when it has none, else appended to "urls". */
static int jadd_url(cJSON *obj, const char *url)
{
	cJSON *urls;

	if (jhas_url(obj, url))
		return 0;
	if (!jstr(obj, "url") && !cJSON_GetArraySize(jfield(obj, "urls")))
		return jset_str(obj, "url", url);
	urls = cJSON_GetObjectItemCaseSensitive(obj, "urls");
	if (!cJSON_IsArray(urls)) {
		urls = cJSON_CreateArray();
		if (jput(obj, "urls", urls))
			return -ENOMEM;
	}
	if (!cJSON_AddItemToArray(urls, cJSON_CreateString(url)))
		return -ENOMEM;
	return 1;
}

/* ---- a string -> pointer hash map ------------------------------------- */

struct smap_ent {
	char *key;
	void *val;
	long line;
};

struct smap {
	struct smap_ent *e;
	size_t cap, n; /* cap is 0 or a power of two */
};

static uint64_t str_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static struct smap_ent *smap_find(const struct smap *m, const char *key)
{
	if (!m->cap)
		return NULL;
	for (size_t i = str_hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (!m->e[i].key)
			return NULL;
		if (!strcmp(m->e[i].key, key))
			return &m->e[i];
	}
}

static int smap_grow(struct smap *m)
{
	size_t cap = m->cap ? m->cap * 2 : 64;
	struct smap_ent *e = calloc(cap, sizeof(*e));

	if (!e)
		return -ENOMEM;
	for (size_t j = 0; j < m->cap; j++) {
		size_t i;
		if (!m->e[j].key)
			continue;
		for (i = str_hash(m->e[j].key) & (cap - 1); e[i].key; i = (i + 1) & (cap - 1))
			;
		e[i] = m->e[j];
	}
	free(m->e);
	m->e = e;
	m->cap = cap;
	return 0;
}

/* Insert or overwrite key (copied). */
static int smap_put(struct smap *m, const char *key, void *val, long line)
{
	struct smap_ent *f = smap_find(m, key);
	size_t i;

	if (f) {
		f->val = val;
		f->line = line;
		return 0;
	}
	if ((m->n + 1) * 2 > m->cap && smap_grow(m))
		return -ENOMEM;
	for (i = str_hash(key) & (m->cap - 1); m->e[i].key; i = (i + 1) & (m->cap - 1))
		;
	m->e[i].key = strdup(key);
	if (!m->e[i].key)
		return -ENOMEM;
	m->e[i].val = val;
	m->e[i].line = line;
	m->n++;
	return 0;
}

static void smap_release(struct smap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->e[i].key);
	free(m->e);
	memset(m, 0, sizeof(*m));
}

/* ---- .gitattributes ---------------------------------------------------- */

/*
 * Only the `filter` attribute matters here: is PATH already stored with
 * filter=lfs?  Lines whose pattern is a literal path (as this writer writes
 * them) go into a map; real globs are kept in order and matched with
 * fnmatch(3), which is close to git's wildmatch for the usual forms
 * (star-dot-bam, data/star-dot-vcf).  The last matching line wins, as in git.
 */
enum {
	ATTR_LFS = 1,
	ATTR_NOT_LFS = 2
};

struct attr_glob {
	char *pattern;
	long line;
	int state;
};

/* Escape a path into a gitattributes pattern matching exactly it. */
static int attr_escape(const char *path, struct lfsfs_buf *out)
{
	int rc = 0;

	for (const char *p = path; !rc && *p; p++) {
		char c = *p;
		if (c == ' ')
			rc = lfsfs_buf_appends(out, "[[:space:]]");
		else if (strchr("*?[]\\", c) || (p == path && strchr("#!\"", c)))
			rc = lfsfs_buf_printf(out, "\\%c", c);
		else
			rc = lfsfs_buf_append(out, &c, 1);
	}
	return rc;
}

/* The path a pattern names literally (reverse of attr_escape), or -1 if the
 * pattern is a real glob. */
static int attr_unescape(const char *pat, struct lfsfs_buf *out)
{
	for (const char *p = pat; *p; p++) {
		if (!strncmp(p, "[[:space:]]", 11)) {
			if (lfsfs_buf_append(out, " ", 1))
				return -1;
			p += 10;
		} else if (*p == '\\' && p[1]) {
			if (lfsfs_buf_append(out, p + 1, 1))
				return -1;
			p++;
		} else if (strchr("*?[]\\", *p)) {
			return -1;
		} else if (lfsfs_buf_append(out, p, 1)) {
			return -1;
		}
	}
	return 0;
}

static int attr_matches(const char *pattern, const char *path)
{
	const char *p = pattern;
	const char *base = strrchr(path, '/');
	size_t n = strlen(p);

	if (n && p[n - 1] == '/')
		return 0; /* directories only */
	if (*p == '/')
		return !fnmatch(p + 1, path, strstr(p, "**") ? 0 : FNM_PATHNAME);
	if (strchr(p, '/'))
		return !fnmatch(p, path, strstr(p, "**") ? 0 : FNM_PATHNAME);
	return !fnmatch(p, base ? base + 1 : path, 0);
}

/* ---- the writer ---------------------------------------------------------- */

struct lfsfs_writer {
	char *repo;
	unsigned flags;
	cJSON *meta; /* metadata.json root object */
	int meta_dirty;
	struct smap paths;     /* normalized path -> entry (cJSON *) in meta */
	struct lfsfs_buf attr; /* .gitattributes text (existing + appended) */
	int attr_dirty;
	long attr_lines;
	struct smap attr_exact; /* literal path -> state (as intptr), line */
	struct attr_glob *globs;
	size_t n_globs, cap_globs;
};

const char *lfsfs_writer_repo(const struct lfsfs_writer *w)
{
	return w->repo;
}

/* The next whitespace-separated token of *p (NUL-terminated in place), or NULL. */
static char *next_token(char **p)
{
	char *s = *p, *start;

	while (*s == ' ' || *s == '\t' || *s == '\r')
		s++;
	if (!*s) {
		*p = s;
		return NULL;
	}
	start = s;
	while (*s && *s != ' ' && *s != '\t' && *s != '\r')
		s++;
	if (*s)
		*s++ = '\0';
	*p = s;
	return start;
}

static int attr_add_line(struct lfsfs_writer *w, char *line, long lineno)
{
	char *pat, *tok;
	int state = 0;

	while (*line == ' ' || *line == '\t')
		line++;
	if (!*line || *line == '#' || *line == '!' || !strncmp(line, "[attr]", 6))
		return 0;
	pat = next_token(&line);
	if (!pat)
		return 0;
	while ((tok = next_token(&line))) {
		if (!strcmp(tok, "filter=lfs"))
			state = ATTR_LFS;
		else if (!strcmp(tok, "filter") || !strncmp(tok, "filter=", 7) ||
		         !strcmp(tok, "-filter") || !strcmp(tok, "!filter"))
			state = ATTR_NOT_LFS;
	}
	if (!state)
		return 0;
	{
		struct lfsfs_buf lit = LFSFS_BUF_INIT(0);
		int literal = !attr_unescape(pat, &lit) && lit.data && *lit.data;
		int rc = 0;

		if (literal)
			rc = smap_put(&w->attr_exact, lit.data, (void *)(intptr_t)state, lineno);
		lfsfs_buf_release(&lit);
		if (literal || rc)
			return rc;
	}
	if (w->n_globs == w->cap_globs) {
		size_t cap = w->cap_globs ? w->cap_globs * 2 : 16;
		struct attr_glob *g = realloc(w->globs, cap * sizeof(*g));
		if (!g)
			return -ENOMEM;
		w->globs = g;
		w->cap_globs = cap;
	}
	w->globs[w->n_globs].pattern = strdup(pat);
	if (!w->globs[w->n_globs].pattern)
		return -ENOMEM;
	w->globs[w->n_globs].line = lineno;
	w->globs[w->n_globs].state = state;
	w->n_globs++;
	return 0;
}

static int attr_load(struct lfsfs_writer *w)
{
	char *file = lfsfs_path_join(w->repo, ".gitattributes");
	char *copy = NULL, *line, *nl;
	int rc;

	if (!file)
		return -ENOMEM;
	rc = lfsfs_buf_read_file(&w->attr, file);
	if (rc == -ENOENT) {
		rc = 0;
		goto out;
	}
	if (rc) {
		rc = lfsfs_error_set(rc, "cannot read '.gitattributes': %s", strerror(-rc));
		goto out;
	}
	copy = strdup(w->attr.data);
	if (!copy) {
		rc = -ENOMEM;
		goto out;
	}
	for (line = copy; line && *line; line = nl) {
		nl = strchr(line, '\n');
		if (nl)
			*nl++ = '\0';
		w->attr_lines++;
		if ((rc = attr_add_line(w, line, w->attr_lines)))
			goto out;
	}
out:
	free(copy);
	free(file);
	return rc;
}

/* 1 if path already gets filter=lfs from .gitattributes. */
static int attr_covered(const struct lfsfs_writer *w, const char *path)
{
	const struct smap_ent *e = smap_find(&w->attr_exact, path);
	long line = e ? e->line : 0;
	int state = e ? (int)(intptr_t)e->val : 0;

	for (size_t i = w->n_globs; i-- > 0;) {
		if (w->globs[i].line < line)
			break;
		if (attr_matches(w->globs[i].pattern, path)) {
			state = w->globs[i].state;
			break;
		}
	}
	return state == ATTR_LFS;
}

/* Append "<path> filter=lfs diff=lfs merge=lfs -text" unless covered. */
static int attr_ensure(struct lfsfs_writer *w, const char *path)
{
	int rc;

	if (attr_covered(w, path))
		return 0;
	if (w->attr.len && w->attr.data[w->attr.len - 1] != '\n' &&
	    (rc = lfsfs_buf_append(&w->attr, "\n", 1)))
		return rc;
	if ((rc = attr_escape(path, &w->attr)) ||
	    (rc = lfsfs_buf_appends(&w->attr, ATTR_LINE_TAIL)) ||
	    (rc = lfsfs_buf_append(&w->attr, "\n", 1)))
		return rc;
	w->attr_lines++;
	if ((rc = smap_put(&w->attr_exact, path, (void *)(intptr_t)ATTR_LFS, w->attr_lines)))
		return rc;
	w->attr_dirty = 1;
	return 1;
}

static const char *const record_dirs[] = { ".lfs-meta", ".lfs-meta/etag", ".lfs-meta/sha256" };

int lfsfs_writer_open(const char *repo, unsigned flags, struct lfsfs_writer **out)
{
	struct lfsfs_writer *w = calloc(1, sizeof(*w));
	char *file = NULL;
	cJSON *it;
	int rc;

	*out = NULL;
	if (!w)
		return -ENOMEM;
	w->flags = flags;
	w->attr.cap = ATTR_FILE_CAP;
	w->repo = strdup(repo);
	file = lfsfs_path_join(repo, META_REL);
	if (!w->repo || !file) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = lfsfs_json_load_edit(file, META_REL, META_FILE_CAP, &w->meta);
	if (rc == -ENOENT) {
		w->meta = cJSON_CreateObject();
		rc = w->meta ? 0 : -ENOMEM;
	}
	if (rc)
		goto fail;
	if (!cJSON_IsObject(w->meta)) {
		rc = lfsfs_error_set(
		        -LFSFS_EPARSE,
		        "cannot use '%s:1:1': the top level must be a json object keyed "
		        "by path; the file was left untouched: fix it by hand",
		        META_REL);
		goto fail;
	}
	cJSON_ArrayForEach(it, w->meta)
	{
		char *norm = NULL;

		if (!it->string || lfsfs_relpath_refusal(it->string))
			continue; /* kept as is, never matched */
		if ((rc = lfsfs_relpath_normalize(it->string, &norm)))
			goto fail;
		/* "a//b" and "a/b" normalize alike: the first wins, as when reading */
		if (!smap_find(&w->paths, norm))
			rc = smap_put(&w->paths, norm, it, 0);
		free(norm);
		if (rc)
			goto fail;
	}
	/* records are written below these: none may lead elsewhere */
	for (size_t i = 0; i < sizeof(record_dirs) / sizeof(record_dirs[0]); i++) {
		char *d = lfsfs_path_join(repo, record_dirs[i]);
		struct stat sb;
		int bad = d && lstat(d, &sb) == 0 && !S_ISDIR(sb.st_mode);

		free(d);
		if (!d) {
			rc = -ENOMEM;
			goto fail;
		}
		if (bad) {
			rc = lfsfs_error_set(
			        -EINVAL,
			        "'%s' is not a directory (a symbolic link?); lfsfs writes "
			        "records only into real directories of the repository",
			        record_dirs[i]);
			goto fail;
		}
	}
	if ((rc = attr_load(w)))
		goto fail;
	free(file);
	*out = w;
	return 0;
fail:
	free(file);
	lfsfs_writer_free(w);
	return rc;
}

void lfsfs_writer_free(struct lfsfs_writer *w)
{
	if (!w)
		return;
	cJSON_Delete(w->meta);
	smap_release(&w->paths);
	smap_release(&w->attr_exact);
	for (size_t i = 0; i < w->n_globs; i++)
		free(w->globs[i].pattern);
	free(w->globs);
	lfsfs_buf_release(&w->attr);
	free(w->repo);
	free(w);
}

int lfsfs_writer_commit(struct lfsfs_writer *w, unsigned *changed)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(0);
	char *file = NULL;
	unsigned done = 0;
	int rc = 0;

	if (changed)
		*changed = 0;
	if (w->flags & LFSFS_W_NOSYNC) {
		/* every record written without fsync reaches the disk before the
		 * metadata.json that refers to them */
		int fd = open(w->repo, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			syncfs(fd);
			close(fd);
		}
	}
	if (w->meta_dirty) {
		file = lfsfs_path_join(w->repo, META_REL);
		if (!file) {
			rc = -ENOMEM;
			goto out;
		}
		if ((rc = mkdir_parents(w->repo, META_REL)) || (rc = json_text(w->meta, &b)))
			goto out;
		rc = lfsfs_write_atomic(file, b.data, b.len, 0);
		if (rc < 0)
			goto out;
		if (rc > 0)
			done |= LFSFS_WROTE_META;
		w->meta_dirty = 0;
		free(file);
		file = NULL;
	}
	if (w->attr_dirty) {
		file = lfsfs_path_join(w->repo, ".gitattributes");
		if (!file) {
			rc = -ENOMEM;
			goto out;
		}
		rc = lfsfs_write_atomic(file, w->attr.data, w->attr.len, 0);
		if (rc < 0)
			goto out;
		if (rc > 0)
			done |= LFSFS_WROTE_ATTR;
		w->attr_dirty = 0;
	}
	rc = 0;
out:
	if (changed)
		*changed = done;
	lfsfs_buf_release(&b);
	free(file);
	return rc;
}

/* ---- registering one object --------------------------------------------- */

static const char *const reserved_fields[] = {
	"remote_url", "etag", "size", "sha256", "md5", NULL
};

/* Paths a registration may never take. */
static const char *forbidden_path(const char *norm)
{
	size_t n = strcspn(norm, "/");

	if (n == 9 && !strncasecmp(norm, ".lfs-meta", 9))
		return "'.lfs-meta/' holds the records themselves";
	if (!strcasecmp(norm, ".gitattributes") || !strcasecmp(norm, ".lfsconfig") ||
	    !strcasecmp(norm, ".gitmodules") || !strcasecmp(norm, ".gitignore"))
		return "it is a git control file";
	return NULL;
}

/* Every existing parent of rel must be a real directory (no symlink may
 * carry a write outside the repository). */
static int check_parents(const struct lfsfs_writer *w, const char *rel)
{
	char path[PATH_MAX];
	size_t base = strlen(w->repo) + 1;
	struct stat sb;
	int n = snprintf(path, sizeof(path), "%s/%s", w->repo, rel);

	if (n < 0 || (size_t)n >= sizeof(path))
		return lfsfs_error_set(-ENAMETOOLONG, "path '%.200s' is too long", rel);
	for (char *p = path + base; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (lstat(path, &sb)) {
			*p = '/';
			return 0; /* the rest does not exist yet */
		}
		if (S_ISLNK(sb.st_mode) || !S_ISDIR(sb.st_mode)) {
			int link = S_ISLNK(sb.st_mode);
			*p = '/';
			return lfsfs_error_set(
			        -EINVAL,
			        "refusing path '%s': '%.*s' is %s; lfsfs writes only "
			        "below real directories of the repository",
			        rel, (int)(p - path - base), path + base,
			        link ? "a symbolic link" : "not a directory");
		}
		*p = '/';
	}
	return 0;
}

enum tree_state {
	TREE_NONE,
	TREE_POINTER,
	TREE_ORDINARY,
	TREE_LINK
};

static int tree_classify(const char *full, const char *rel, enum tree_state *st,
                         struct lfsfs_pointer *ptr)
{
	struct stat sb;
	char buf[LFSFS_POINTER_MAX_LEN];
	ssize_t n;
	int fd;

	*st = TREE_NONE;
	if (lstat(full, &sb)) {
		if (errno == ENOENT)
			return 0;
		return lfsfs_error_set(-errno, "cannot inspect '%s': %s", rel, strerror(errno));
	}
	if (S_ISLNK(sb.st_mode)) {
		*st = TREE_LINK;
		return 0;
	}
	if (S_ISDIR(sb.st_mode))
		return lfsfs_error_set(-EINVAL, "refusing path '%s': it is a directory", rel);
	if (!S_ISREG(sb.st_mode))
		return lfsfs_error_set(-EINVAL, "refusing path '%s': it is not a regular file",
		                       rel);
	*st = TREE_ORDINARY;
	if (!lfsfs_pointer_size_plausible((uint64_t)sb.st_size))
		return 0;
	fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return lfsfs_error_set(-errno, "cannot read '%s': %s", rel, strerror(errno));
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n > 0 && !lfsfs_pointer_parse(buf, (size_t)n, ptr))
		*st = TREE_POINTER;
	lfsfs_error_clear();
	return 0;
}

/* Load the record at repo/rel; *out NULL when absent. */
static int record_load(const struct lfsfs_writer *w, const char *rel, cJSON **out)
{
	char *file = lfsfs_path_join(w->repo, rel);
	int rc;

	if (!file)
		return -ENOMEM;
	rc = lfsfs_json_load_edit(file, rel, RECORD_FILE_CAP, out);
	free(file);
	if (rc == -ENOENT)
		return 0;
	if (!rc && !cJSON_IsObject(*out)) {
		cJSON_Delete(*out);
		*out = NULL;
		return lfsfs_error_set(-LFSFS_EPARSE,
		                       "cannot use '%s': the top level must be a json object; the "
		                       "file was left untouched: fix or remove it",
		                       rel);
	}
	return rc;
}

/* Write the canonical text of rec to repo/rel; 1 written, 0 unchanged. */
static int record_store(const struct lfsfs_writer *w, const char *rel, const cJSON *rec)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(0);
	char *file = lfsfs_path_join(w->repo, rel);
	int rc;

	if (!file)
		return -ENOMEM;
	rc = mkdir_parents(w->repo, rel);
	if (!rc)
		rc = json_text(rec, &b);
	if (!rc)
		rc = lfsfs_write_atomic(file, b.data, b.len,
		                        (w->flags & LFSFS_W_NOSYNC) ? LFSFS_WRITE_NOSYNC : 0);
	lfsfs_buf_release(&b);
	free(file);
	return rc;
}

static int validate(const struct lfsfs_regobj *o)
{
	if (!o->url || !*o->url || has_ctl(o->url))
		return lfsfs_error_set(-EINVAL, "invalid url '%.200s'", o->url ? o->url : "");
	if (o->etag && *o->etag && (strlen(o->etag) >= 160 || has_ctl(o->etag)))
		return lfsfs_error_set(-EINVAL, "invalid etag '%.80s' for '%s'", o->etag, o->url);
	if (o->sha256 && *o->sha256 && !lfsfs_oid_valid(o->sha256))
		return lfsfs_error_set(-EINVAL,
		                       "invalid sha256 '%.80s' for '%s': expected 64 "
		                       "lowercase hex digits",
		                       o->sha256, o->url);
	if (o->md5 && *o->md5) {
		size_t n = strlen(o->md5);
		for (size_t i = 0; i < n; i++)
			if (!is_hex((unsigned char)o->md5[i]))
				n = 0;
		if (n != 32)
			return lfsfs_error_set(-EINVAL, "invalid md5 '%.80s' for '%s'", o->md5,
			                       o->url);
	}
	for (size_t i = 0; i < o->n_fields; i++) {
		const char *k = o->fields[2 * i], *v = o->fields[2 * i + 1];
		if (!k || !*k || !v)
			return lfsfs_error_set(-EINVAL, "empty metadata field name or value");
		for (const char *const *r = reserved_fields; *r; r++)
			if (!strcmp(k, *r))
				return lfsfs_error_set(
				        -EINVAL,
				        "metadata field '%s' is set by lfsfs itself; "
				        "choose another name",
				        k);
	}
	return 0;
}

int lfsfs_writer_register(struct lfsfs_writer *w, const struct lfsfs_regobj *o,
                          struct lfsfs_regresult *res)
{
	const int force = ((o->flags | w->flags) & LFSFS_W_FORCE) != 0;
	const char *etag = o->etag && *o->etag ? o->etag : NULL;
	const char *md5 = o->md5 && *o->md5 ? o->md5 : NULL;
	char sha[LFSFS_OID_HEX_LEN + 1] = "", ex_sha[LFSFS_OID_HEX_LEN + 1], name[300];
	char *norm = NULL, *full = NULL;
	struct lfsfs_buf ptext = LFSFS_BUF_INIT(LFSFS_POINTER_MAX_LEN);
	struct lfsfs_pointer ptr;
	enum tree_state tree;
	cJSON *entry = NULL, *erec = NULL, *srec = NULL;
	const struct smap_ent *me;
	int replace = 0, erec_other = 0, write_pointer = 0, remove_path = 0, rc;
	const char *why;

	memset(res, 0, sizeof(*res));
	if ((rc = validate(o)))
		goto out;
	if (o->sha256 && *o->sha256)
		memcpy(sha, o->sha256, sizeof(sha));
	if ((rc = lfsfs_relpath_normalize(o->path, &norm)))
		goto out;
	snprintf(res->path, sizeof(res->path), "%s", norm);
	if ((why = forbidden_path(norm))) {
		rc = lfsfs_error_set(-EINVAL, "refusing path '%s': %s", norm, why);
		goto out;
	}

	/* 1. the path's metadata.json entry: same object, or a replacement? */
	me = smap_find(&w->paths, norm);
	entry = me ? me->val : NULL;
	if (entry && !cJSON_IsObject(entry)) {
		rc = lfsfs_error_set(
		        -LFSFS_EPARSE,
		        "the entry for '%s' in %s is not a json object; fix it by hand", norm,
		        META_REL);
		goto out;
	}
	if (entry) {
		const char *ex_url = jstr(entry, "remote_url");
		const char *ex_etag = jstr(entry, "etag");
		const cJSON *szit = jfield(entry, "size");
		uint64_t ex_size = 0;
		int has_size = szit && !jsize(szit, &ex_size);

		if (ex_url && strcmp(ex_url, o->url)) {
			if (!force) {
				rc = lfsfs_error_set(
				        -EEXIST,
				        "'%s' is already registered to '%s'; pass --force "
				        "to register '%s' there instead",
				        norm, ex_url, o->url);
				goto out;
			}
			replace = 1;
		} else if ((has_size && ex_size != o->size) ||
		           (ex_etag && etag && !lfsfs_etag_same(ex_etag, etag))) {
			if (!force) {
				rc = lfsfs_error_set(
				        -LFSFS_EIMMUTABILITY,
				        "IMMUTABILITY_VIOLATION: '%s' changed since it was registered "
				        "at '%s' (ETag %s, %" PRIu64 " bytes; now %s, %" PRIu64
				        " bytes): the committed records describe the old bytes; "
				        "check the source, then pass --force to register the "
				        "current version",
				        o->url, norm, ex_etag ? ex_etag : "unknown", ex_size,
				        etag ? etag : "unknown", o->size);
				goto out;
			}
			replace = 1;
		} else if (!jsha(entry, "sha256", ex_sha)) {
			if (sha[0] && strcmp(sha, ex_sha)) {
				rc = lfsfs_error_set(
				        -LFSFS_ECHECKSUM_MISMATCH,
				        "CHECKSUM_MISMATCH: '%s' is registered with sha256 %s, but %s "
				        "was given for '%s'; check the sha256 (the registered one "
				        "came from a verified read or an earlier --sha256)",
				        norm, ex_sha, sha, o->url);
				goto out;
			}
			memcpy(sha, ex_sha, sizeof(sha));
		}
	}

	/* 2. the ETag record (may already know the sha256) */
	if (etag) {
		const cJSON *szit;
		uint64_t rsize = 0;

		if ((rc = lfsfs_etag_filename(etag, name, sizeof(name))))
			goto out;
		snprintf(res->etag_record, sizeof(res->etag_record), ".lfs-meta/etag/%s.json",
		         name);
		if ((rc = record_load(w, res->etag_record, &erec)))
			goto out;
		szit = erec ? jfield(erec, "size") : NULL;
		erec_other = szit && (jsize(szit, &rsize) || rsize != o->size);
		if (erec_other && !force) {
			rc = lfsfs_error_set(
			        -EEXIST,
			        "'%s' describes another object with ETag %s (%" PRIu64
			        " bytes at '%s'), not the %" PRIu64 " bytes of '%s': the "
			        "ETag is not unique; pass --force to overwrite the record",
			        res->etag_record, etag, rsize,
			        jstr(erec, "url") ? jstr(erec, "url") : "?", o->size, o->url);
			goto out;
		}
		if (erec && !erec_other && !jsha(erec, "sha256", ex_sha)) {
			if (sha[0] && strcmp(sha, ex_sha) && !force) {
				rc = lfsfs_error_set(
				        -LFSFS_ECHECKSUM_MISMATCH,
				        "CHECKSUM_MISMATCH: '%s' says ETag %s has sha256 %s, but "
				        "'%s' is given sha256 %s; check the sha256",
				        res->etag_record, etag, ex_sha, o->url, sha);
				goto out;
			}
			/* learned earlier for this very URL (an ETag alone is not unique
			 * across URLs: nginx's is mtime-size) */
			if (!sha[0] && jstr(erec, "url") && !strcmp(jstr(erec, "url"), o->url) &&
			    !cJSON_GetArraySize(jfield(erec, "urls")))
				memcpy(sha, ex_sha, sizeof(sha));
		}
	}

	/* 3. the sha256 record */
	if (sha[0]) {
		const cJSON *szit;
		uint64_t rsize;

		snprintf(res->sha256_record, sizeof(res->sha256_record), ".lfs-meta/sha256/%s.json",
		         sha);
		if ((rc = record_load(w, res->sha256_record, &srec)))
			goto out;
		if (srec && !jsha(srec, "sha256", ex_sha) && strcmp(ex_sha, sha)) {
			rc = lfsfs_error_set(-LFSFS_EPARSE,
			                     "cannot use '%s': its \"sha256\" is %s; fix or remove "
			                     "the record",
			                     res->sha256_record, ex_sha);
			goto out;
		}
		szit = srec ? jfield(srec, "size") : NULL;
		if (szit && (jsize(szit, &rsize) || rsize != o->size)) {
			rc = lfsfs_error_set(
			        -LFSFS_ESIZE_MISMATCH,
			        "SIZE_MISMATCH: '%s' says the object with sha256 %s is %" PRIu64
			        " bytes, but '%s' is %" PRIu64 " bytes: one of them is not that "
			        "object; check the sha256 and the URL",
			        res->sha256_record, sha, rsize, o->url, o->size);
			goto out;
		}
	}

	/* 4. the working tree at the path */
	if ((rc = check_parents(w, norm)))
		goto out;
	full = lfsfs_path_join(w->repo, norm);
	if (!full) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = tree_classify(full, norm, &tree, &ptr)))
		goto out;
	switch (tree) {
	case TREE_NONE:
		write_pointer = sha[0] != 0;
		break;
	case TREE_POINTER:
		if (sha[0] && !strcmp(ptr.oid, sha) && ptr.size == o->size && !ptr.n_ext)
			break; /* already this pointer */
		if (!force) {
			if (sha[0])
				rc = lfsfs_error_set(
				        -EEXIST,
				        "'%s' holds a pointer to other content (sha256 %s, %" PRIu64
				        " bytes); pass --force to replace it",
				        norm, ptr.oid, ptr.size);
			else
				rc = lfsfs_error_set(
				        -EEXIST,
				        "'%s' holds a pointer (sha256 %s) but the sha256 of '%s' is "
				        "not known, so lfsfs cannot tell whether they are the same "
				        "bytes; give --sha256 %s if they are, or pass --force to "
				        "replace the pointer with an ETag-only registration",
				        norm, ptr.oid, o->url, ptr.oid);
			goto out;
		}
		write_pointer = sha[0] != 0;
		remove_path = !sha[0];
		break;
	case TREE_ORDINARY:
		if (!force) {
			rc = lfsfs_error_set(
			        -EEXIST,
			        "'%s' is an ordinary file in the working tree; refusing "
			        "to replace it (move it away, or pass --force to replace "
			        "it with a pointer)",
			        norm);
			goto out;
		}
		if (!sha[0]) {
			rc = lfsfs_error_set(
			        -EEXIST,
			        "'%s' is an ordinary file and the sha256 of '%s' is not "
			        "known, so no pointer can replace it; move the file away "
			        "or give the sha256 (--sha256, --hash)",
			        norm, o->url);
			goto out;
		}
		write_pointer = 1;
		break;
	case TREE_LINK:
		if (!force) {
			rc = lfsfs_error_set(
			        -EEXIST,
			        "'%s' is a symbolic link; refusing to replace it (pass "
			        "--force to replace the link itself)",
			        norm);
			goto out;
		}
		write_pointer = sha[0] != 0;
		remove_path = !sha[0];
		break;
	}
	if (write_pointer) {
		memset(&ptr, 0, sizeof(ptr));
		memcpy(ptr.oid, sha, sizeof(ptr.oid));
		ptr.size = o->size;
		if ((rc = lfsfs_pointer_write(&ptr, &ptext)))
			goto out;
	}

	/* Every check passed: write. */
	if (etag) {
		if (erec_other) {
			/* --force over another object's record: start afresh */
			cJSON_Delete(erec);
			erec = NULL;
		}
		if (!erec && !(erec = cJSON_CreateObject())) {
			rc = -ENOMEM;
			goto out;
		}
		if ((rc = jset_str(erec, "etag", etag)) < 0 || (rc = jadd_url(erec, o->url)) < 0 ||
		    (rc = jset_size(erec, "size", o->size)) < 0)
			goto out;
		if (sha[0])
			rc = jset_str(erec, "sha256", sha);
		else if (jsha(erec, "sha256", ex_sha))
			rc = jset_null(erec, "sha256");
		if (rc < 0)
			goto out;
		rc = record_store(w, res->etag_record, erec);
		if (rc < 0)
			goto out;
		if (rc)
			res->changed |= LFSFS_WROTE_ETAG;
	}
	if (sha[0]) {
		if (!srec && !(srec = cJSON_CreateObject())) {
			rc = -ENOMEM;
			goto out;
		}
		if ((rc = jset_str(srec, "sha256", sha)) < 0 || (rc = jadd_url(srec, o->url)) < 0 ||
		    (rc = jset_size(srec, "size", o->size)) < 0)
			goto out;
		/* an ETag belongs to one URL: the record's first */
		if (etag && !jstr(srec, "etag") && jstr(srec, "url") &&
		    !strcmp(jstr(srec, "url"), o->url) && (rc = jset_str(srec, "etag", etag)) < 0)
			goto out;
		rc = record_store(w, res->sha256_record, srec);
		if (rc < 0)
			goto out;
		if (rc)
			res->changed |= LFSFS_WROTE_SHA256;
	}
	if (write_pointer) {
		if ((rc = mkdir_parents(w->repo, norm)))
			goto out;
		rc = lfsfs_write_atomic(full, ptext.data, ptext.len,
		                        (w->flags & LFSFS_W_NOSYNC) ? LFSFS_WRITE_NOSYNC : 0);
		if (rc < 0)
			goto out;
		if (rc)
			res->changed |= LFSFS_WROTE_POINTER;
	}
	if (remove_path) {
		if (unlink(full) && errno != ENOENT) {
			rc = lfsfs_error_set(-errno, "cannot remove '%s': %s", norm,
			                     strerror(errno));
			goto out;
		}
		res->changed |= LFSFS_REMOVED_POINTER;
	}

	/* metadata.json, in memory until commit */
	{
		int ch = 0;

		if (!entry) {
			entry = cJSON_CreateObject();
			if (!entry || !cJSON_AddItemToObject(w->meta, norm, entry)) {
				cJSON_Delete(entry);
				rc = -ENOMEM;
				goto out;
			}
			if ((rc = smap_put(&w->paths, norm, entry, 0)))
				goto out;
			ch = 1;
		}
		if (replace) {
			if (cJSON_GetObjectItemCaseSensitive(entry, "sha256") && !sha[0])
				res->changed |= LFSFS_DROPPED_SHA256;
			ch |= jdel(entry, "sha256") | jdel(entry, "md5") | jdel(entry, "etag");
		}
		if ((rc = jset_str(entry, "remote_url", o->url)) < 0)
			goto out;
		ch |= rc;
		if ((rc = jset_size(entry, "size", o->size)) < 0)
			goto out;
		ch |= rc;
		if (etag) {
			if ((rc = jset_str(entry, "etag", etag)) < 0)
				goto out;
			ch |= rc;
		}
		if (sha[0]) {
			if ((rc = jset_str(entry, "sha256", sha)) < 0)
				goto out;
			ch |= rc;
		}
		if (md5) {
			char low[33];
			for (int i = 0; i < 32; i++)
				low[i] = (char)tolower((unsigned char)md5[i]);
			low[32] = '\0';
			if ((rc = jset_str(entry, "md5", low)) < 0)
				goto out;
			ch |= rc;
		}
		for (size_t i = 0; i < o->n_fields; i++) {
			if ((rc = jset_str(entry, o->fields[2 * i], o->fields[2 * i + 1])) < 0)
				goto out;
			ch |= rc;
		}
		if (ch) {
			w->meta_dirty = 1;
			res->changed |= LFSFS_WROTE_META;
		}
	}
	if (sha[0]) {
		if ((rc = attr_ensure(w, norm)) < 0)
			goto out;
		if (rc)
			res->changed |= LFSFS_WROTE_ATTR;
	}
	memcpy(res->sha256, sha, sizeof(res->sha256));
	rc = 0;
out:
	if (rc) {
		res->etag_record[0] = res->sha256_record[0] = '\0';
	}
	lfsfs_buf_release(&ptext);
	cJSON_Delete(erec);
	cJSON_Delete(srec);
	free(full);
	free(norm);
	return rc;
}

/* ---- reconciling what was given with what the origin says ---------------- */

int lfsfs_objfacts_merge(const char *url, const struct lfsfs_objfacts *given,
                         const struct lfsfs_objfacts *head, struct lfsfs_objfacts *out)
{
	static const struct lfsfs_objfacts none;
	const struct lfsfs_objfacts *g = given ? given : &none, *h = head ? head : &none;
	const char *ge = g->etag && *g->etag ? g->etag : NULL;
	const char *he = h->etag && *h->etag ? h->etag : NULL;
	const char *gs = g->sha256 && *g->sha256 ? g->sha256 : NULL;
	const char *hs = h->sha256 && *h->sha256 ? h->sha256 : NULL;

	memset(out, 0, sizeof(*out));
	if (g->has_size && h->has_size && g->size != h->size)
		return lfsfs_error_set(-LFSFS_ESIZE_MISMATCH,
		                       "SIZE_MISMATCH: '%s' is %" PRIu64 " bytes at the origin, "
		                       "but %" PRIu64 " bytes were given; check --size (or the "
		                       "URL)",
		                       url, h->size, g->size);
	if (ge && he && !lfsfs_etag_same(ge, he))
		return lfsfs_error_set(-LFSFS_EIMMUTABILITY,
		                       "IMMUTABILITY_VIOLATION: '%s' now has ETag %s, not the "
		                       "given %s: the object changed; check it, then register it "
		                       "without --etag",
		                       url, he, ge);
	if (gs && hs && strcasecmp(gs, hs))
		return lfsfs_error_set(-LFSFS_ECHECKSUM_MISMATCH,
		                       "CHECKSUM_MISMATCH: the store reports sha256 %s for '%s', "
		                       "but %s was given; check --sha256",
		                       hs, url, gs);
	if (!g->has_size && !h->has_size)
		return lfsfs_error_set(-LFSFS_ESOURCE_NOT_ACCESSIBLE,
		                       "SOURCE_NOT_ACCESSIBLE: the origin did not report the size "
		                       "of '%s'; pass --size",
		                       url);
	out->etag = ge ? ge : he;
	out->has_size = 1;
	out->size = g->has_size ? g->size : h->size;
	out->sha256 = gs ? gs : hs;
	out->md5 = g->md5 && *g->md5 ? g->md5 : (h->md5 && *h->md5 ? h->md5 : NULL);
	return 0;
}

int lfsfs_regresult_describe(const struct lfsfs_regresult *r, struct lfsfs_buf *out)
{
	int rc = 0;

	if (!rc && (r->changed & LFSFS_WROTE_POINTER))
		rc = lfsfs_buf_printf(out, "  pointer   %s (sha256:%s)\n", r->path, r->sha256);
	if (!rc && (r->changed & LFSFS_REMOVED_POINTER))
		rc = lfsfs_buf_printf(out, "  removed   %s (its sha256 is not known now)\n",
		                      r->path);
	if (!rc && (r->changed & LFSFS_WROTE_META))
		rc = lfsfs_buf_printf(out, "  entry     %s in %s\n", r->path, META_REL);
	if (!rc && (r->changed & LFSFS_DROPPED_SHA256))
		rc = lfsfs_buf_printf(out, "  dropped   the sha256 of the earlier version\n");
	if (!rc && (r->changed & LFSFS_WROTE_ETAG))
		rc = lfsfs_buf_printf(out, "  record    %s\n", r->etag_record);
	if (!rc && (r->changed & LFSFS_WROTE_SHA256))
		rc = lfsfs_buf_printf(out, "  record    %s\n", r->sha256_record);
	if (!rc && (r->changed & LFSFS_WROTE_ATTR))
		rc = lfsfs_buf_printf(out, "  attribute %s filter=lfs in .gitattributes\n",
		                      r->path);
	return rc;
}

/* ---- where to write ----------------------------------------------------- */

static int has_dotgit(const char *dir)
{
	char *g = lfsfs_path_join(dir, ".git");
	struct stat sb;
	int ok = g && lstat(g, &sb) == 0;

	free(g);
	return ok;
}

int lfsfs_repo_locate(const char *repo_opt, char **repo, char **prefix)
{
	char cwd[PATH_MAX], top[PATH_MAX];
	char *real = NULL;
	size_t n;

	*repo = *prefix = NULL;
	if (!getcwd(cwd, sizeof(cwd)))
		return lfsfs_error_set(-errno, "cannot find the current directory: %s",
		                       strerror(errno));
	if (repo_opt) {
		real = realpath(repo_opt, NULL);
		if (!real)
			return lfsfs_error_set(-errno, "cannot use repository '%s': %s", repo_opt,
			                       strerror(errno));
		if (!has_dotgit(real)) {
			int rc = lfsfs_error_set(-EINVAL,
			                         "'%s' is not a git working tree (no .git); run "
			                         "'git init' there or pass the right --repo",
			                         repo_opt);
			free(real);
			return rc;
		}
	} else {
		snprintf(top, sizeof(top), "%s", cwd);
		for (;;) {
			char *slash;
			if (has_dotgit(top))
				break;
			slash = strrchr(top, '/');
			if (!slash || slash == top)
				return lfsfs_error_set(-EINVAL,
				                       "not inside a git working tree; run this "
				                       "inside one, or pass --repo DIR");
			*slash = '\0';
		}
		real = realpath(top, NULL);
		if (!real)
			return -errno;
	}
	*repo = real;
	/* the current directory relative to the repository, if inside */
	{
		char *rcwd = realpath(cwd, NULL);
		n = strlen(real);
		if (rcwd && !strncmp(rcwd, real, n) && rcwd[n] == '/')
			*prefix = strdup(rcwd + n + 1);
		else
			*prefix = strdup("");
		free(rcwd);
	}
	if (!*prefix) {
		free(*repo);
		*repo = NULL;
		return -ENOMEM;
	}
	return 0;
}

int lfsfs_repo_relpath(const char *repo, const char *prefix, const char *arg, char **out)
{
	struct lfsfs_buf in = LFSFS_BUF_INIT(PATH_MAX * 2);
	char *res = NULL;
	size_t n = strlen(repo);
	int rc;

	*out = NULL;
	if (!arg || !*arg)
		return lfsfs_error_set(-EINVAL, "empty path");
	if (arg[0] == '/')
		rc = lfsfs_buf_appends(&in, arg);
	else
		rc = lfsfs_buf_printf(&in, "%s/%s%s%s", repo, prefix, *prefix ? "/" : "", arg);
	if (rc)
		goto out;
	/* in is absolute (repo comes from lfsfs_repo_locate()); collapse it lexically */
	res = lfsfs_path_absolute(in.data);
	if (!res) {
		rc = -ENOMEM;
		goto out;
	}
	if (strncmp(res, repo, n) || res[n] != '/' || !res[n + 1]) {
		rc = lfsfs_error_set(-EINVAL,
		                     "refusing path '%s': it is outside the repository '%s'", arg,
		                     repo);
		goto out;
	}
	rc = lfsfs_relpath_normalize(res + n + 1, out);
out:
	lfsfs_buf_release(&in);
	free(res);
	return rc;
}

int lfsfs_url_basename(const char *url, char **out)
{
	const char *s = strstr(url, "://");
	const char *end, *seg;
	char *name, *o;

	*out = NULL;
	s = s ? s + 3 : url;
	end = s + strcspn(s, "?#");
	/* skip the authority: the name is in the path */
	seg = memchr(s, '/', (size_t)(end - s));
	if (seg) {
		const char *last = seg;
		for (const char *p = seg; p < end; p++)
			if (*p == '/')
				last = p;
		seg = last + 1;
	}
	if (!seg || seg >= end)
		return lfsfs_error_set(-EINVAL, "'%s' names no file; give PATH explicitly", url);
	name = malloc((size_t)(end - seg) + 1);
	if (!name)
		return -ENOMEM;
	for (o = name; seg < end; seg++) {
		if (*seg == '%' && seg + 2 < end && is_hex((unsigned char)seg[1]) &&
		    is_hex((unsigned char)seg[2])) {
			char hex[3] = { seg[1], seg[2], 0 };
			*o++ = (char)strtol(hex, NULL, 16);
			seg += 2;
		} else {
			*o++ = *seg;
		}
	}
	*o = '\0';
	if (!*name || strlen(name) != (size_t)(o - name) || strchr(name, '/') ||
	    !strcmp(name, ".") || !strcmp(name, "..") || has_ctl(name)) {
		free(name);
		return lfsfs_error_set(-EINVAL,
		                       "cannot take a file name from '%s'; give PATH "
		                       "explicitly",
		                       url);
	}
	*out = name;
	return 0;
}
