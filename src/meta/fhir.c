/* FHIR R4 DocumentReference generation from .lfs-meta/metadata.json. */
#include "meta/fhir.h"
#include "meta/lfsmeta.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdarg.h>
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

/* Same cap as the mount's reader: metadata.json lists a whole repository. */
/* NDJSON is written in chunks of about this size. */
#define WRITE_CHUNK ((size_t)64 << 10)
/* FHIR id: [A-Za-z0-9\-\.]{1,64} */
#define FHIR_ID_MAX 64

/* ------------------------------------------------------------ reading */

static int is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Value of a hex digit (is_hex() already checked). */
static unsigned hexval(char c)
{
	c = lower(c);
	return c <= '9' ? (unsigned)(c - '0') : (unsigned)(c - 'a' + 10);
}

static int b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/* Canonical base64 (RFC 4648, padded) of exactly `want` bytes. */
static int base64_of_len(const char *s, size_t want)
{
	size_t n = strlen(s), pad = 0, i;
	unsigned char raw[96];
	char again[132];

	if (!n || n % 4 || want > 64 || n != (want + 2) / 3 * 4)
		return 0;
	if (s[n - 1] == '=')
		pad++;
	if (pad && s[n - 2] == '=')
		pad++;
	for (i = 0; i < n - pad; i++)
		if (!b64_char(s[i]))
			return 0;
	if (EVP_DecodeBlock(raw, (const unsigned char *)s, (int)n) < 0)
		return 0;
	/* Re-encoding must give the same text: rejects non-zero pad bits. */
	EVP_EncodeBlock((unsigned char *)again, raw, (int)want);
	return !strcmp(again, s);
}

/* "sha1": 40 hex digits or the base64 of 20 bytes -> base64. */
static int parse_sha1(const char *s, char out[29])
{
	unsigned char raw[20];

	if (strlen(s) == 40) {
		for (int i = 0; i < 20; i++) {
			char hi = lower(s[2 * i]), lo = lower(s[2 * i + 1]);

			if (!is_hex(hi) || !is_hex(lo))
				return -1;
			raw[i] = (unsigned char)((hexval(hi) << 4) | hexval(lo));
		}
		EVP_EncodeBlock((unsigned char *)out, raw, 20);
		return 0;
	}
	if (!base64_of_len(s, 20))
		return -1;
	memcpy(out, s, 29);
	return 0;
}

/* Well-formed UTF-8: no overlongs, surrogates or code points past U+10FFFF. */
static int utf8_valid(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	while (*s) {
		unsigned c = *s, n, cp;

		if (c < 0x80) {
			s++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		for (unsigned i = 1; i <= n; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		s += n + 1;
	}
	return 1;
}

/* R4 string: non-empty UTF-8 without control characters other than
 * tab, CR and LF. */
static int fhir_string_ok(const char *s)
{
	if (!*s || !utf8_valid(s))
		return 0;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f)
			return 0;
	}
	return 1;
}

/* R4 uri/url: non-empty, no whitespace or control characters. */
static int fhir_uri_ok(const char *s)
{
	if (!*s || !utf8_valid(s))
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

/* An absolute URI: scheme ":" rest (RFC 3986 scheme syntax). */
static int absolute_uri_ok(const char *s)
{
	const char *p = s;

	if (!fhir_uri_ok(s) || !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
		return 0;
	for (p++; *p && *p != ':'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '+' || *p == '-' || *p == '.'))
			return 0;
	return *p == ':' && p[1];
}

/* FHIR id over s[0..n). */
static int id_ok(const char *s, size_t n)
{
	if (n < 1 || n > FHIR_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.'))
			return 0;
	}
	return 1;
}

static int digits(const char *s, int n)
{
	for (int i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

static int num2(const char *s)
{
	return (s[0] - '0') * 10 + (s[1] - '0');
}

/* R4 instant: YYYY-MM-DDThh:mm:ss[.f+](Z|(+|-)hh:mm), a real calendar
 * day-of-month range (1..31), year 0001..9999, seconds up to 60. */
static int instant_ok(const char *s)
{
	int mo, d, h, mi, sec;

	if (strlen(s) < 20 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' ||
	    !digits(s + 8, 2) || s[10] != 'T' || !digits(s + 11, 2) || s[13] != ':' ||
	    !digits(s + 14, 2) || s[16] != ':' || !digits(s + 17, 2))
		return 0;
	if (!strncmp(s, "0000", 4))
		return 0;
	mo = num2(s + 5);
	d = num2(s + 8);
	h = num2(s + 11);
	mi = num2(s + 14);
	sec = num2(s + 17);
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return 0;
	s += 19;
	if (*s == '.') {
		s++;
		if (*s < '0' || *s > '9')
			return 0;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	if (!strcmp(s, "Z"))
		return 1;
	if ((*s != '+' && *s != '-') || strlen(s) != 6 || !digits(s + 1, 2) || s[3] != ':' ||
	    !digits(s + 4, 2))
		return 0;
	h = num2(s + 1);
	mi = num2(s + 4);
	return (h <= 13 && mi <= 59) || (h == 14 && mi == 0);
}

/* RFC 6838 restricted-name over s, returning its length (0 if none). */
static size_t restricted_name(const char *s)
{
	size_t n = 0;

	if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
		return 0;
	for (n = 1; s[n] && n < 127; n++)
		if (!((s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= 'a' && s[n] <= 'z') ||
		      (s[n] >= '0' && s[n] <= '9') || strchr("!#$&^_.+-", s[n])))
			break;
	return n;
}

/* A media type "type/subtype" with optional "; parameters", also a valid
 * R4 code (no leading, trailing or repeated whitespace). */
static int mime_ok(const char *s)
{
	size_t n = restricted_name(s);

	if (!n || s[n] != '/')
		return 0;
	s += n + 1;
	n = restricted_name(s);
	if (!n)
		return 0;
	s += n;
	if (!*s)
		return 1;
	if (*s != ';')
		return 0;
	for (const char *p = s; *p; p++) {
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			return 0;
		if (*p == ' ' && (p[1] == ' ' || !p[1]))
			return 0;
	}
	return 1;
}

static int uuid_ok(const char *s)
{
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!is_hex(s[i])) {
			return 0;
		}
	}
	return s[36] == '\0';
}

/* "Type" over s[0..n) is in types, or (types NULL) looks like a resource
 * type name: an upper-case letter then letters. */
static int type_ok(const char *s, size_t n, const char *const *types)
{
	if (!types) {
		if (n < 1 || n > 64 || s[0] < 'A' || s[0] > 'Z')
			return 0;
		for (size_t i = 1; i < n; i++)
			if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z')))
				return 0;
		return 1;
	}
	for (; *types; types++)
		if (strlen(*types) == n && !memcmp(*types, s, n))
			return 1;
	return 0;
}

/*
 * s is "Type/id" or "Type/id/_history/vid" (relative literal reference).
 * 1 if so with an acceptable Type; sets *bad_type when only the type is
 * wrong.
 */
static int relative_ref_ok(const char *s, const char *const *types, int *bad_type)
{
	const char *slash = strchr(s, '/'), *id, *hist;
	size_t idlen;

	if (!slash)
		return 0;
	id = slash + 1;
	hist = strstr(id, "/_history/");
	idlen = hist ? (size_t)(hist - id) : strlen(id);
	if (!id_ok(id, idlen))
		return 0;
	if (hist && !id_ok(hist + 10, strlen(hist + 10)))
		return 0;
	if (!type_ok(s, (size_t)(slash - s), NULL))
		return 0;
	if (!type_ok(s, (size_t)(slash - s), types)) {
		*bad_type = 1;
		return 0;
	}
	return 1;
}

/* Literal reference as given (no bare ids): 1 if acceptable. */
static int reference_ok(const char *s, const char *const *types, int *bad_type)
{
	*bad_type = 0;
	if (!strncmp(s, "urn:uuid:", 9))
		return uuid_ok(s + 9);
	if (!strncmp(s, "http://", 7) || !strncmp(s, "https://", 8)) {
		/* [base]/Type/id[/_history/vid]: find "Type/" as the segment
		 * before the id (or before "/_history/"). */
		const char *hist, *end, *p;
		int seen = 0;

		if (!fhir_uri_ok(s))
			return 0;
		hist = strstr(s, "/_history/");
		end = hist ? hist : s + strlen(s);
		for (p = end; p > s; p--)
			if (p[-1] == '/' && ++seen == 2)
				break;
		if (seen != 2 || p <= strchr(s, ':') + 3)
			return 0;
		return relative_ref_ok(p, types, bad_type);
	}
	return relative_ref_ok(s, types, bad_type);
}

static const char why_type[] = "names a resource type that is not allowed here";

int lfsfs_fhir_reference(const char *value, const char *default_type, const char *const *types,
                         char **out, const char **why)
{
	int bad_type = 0;

	*out = NULL;
	if (id_ok(value, strlen(value))) {
		size_t n = strlen(default_type) + strlen(value) + 2;

		*out = malloc(n);
		if (!*out)
			return -ENOMEM;
		snprintf(*out, n, "%s/%s", default_type, value);
		return 0;
	}
	if (reference_ok(value, types, &bad_type)) {
		*out = strdup(value);
		return *out ? 0 : -ENOMEM;
	}
	*why = bad_type ? why_type :
	                  "is neither a bare id ([A-Za-z0-9-.]{1,64}) nor a reference "
	                  "('Type/id', an absolute http(s) URL, 'urn:uuid:...')";
	return -EINVAL;
}

static const char *const subject_types[] = { "Patient", "Group", "Practitioner", "Device", NULL };
static const char *const specimen_types[] = { "Specimen", NULL };

/* ------------------------------------------------------------ the set */

static void object_release(struct lfsfs_fhir_object *o)
{
	free(o->path);
	free(o->url);
	free(o->etag);
	free(o->md5);
	free(o->subject);
	free(o->specimen);
	free(o->content_type);
	free(o->date);
	free(o->description);
	memset(o, 0, sizeof(*o));
}

/* Present and not JSON null. */
static const cJSON *field(const cJSON *obj, const char *name)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);

	return cJSON_IsNull(it) ? NULL : it;
}

/* Optional string member: *out = copy, NULL if absent/null/"".
 * 1 (with why) if not a string or not an acceptable FHIR string. */
static int opt_string(const cJSON *obj, const char *name, char **out, char *why, size_t whylen)
{
	const cJSON *it = field(obj, name);

	*out = NULL;
	if (!it)
		return 0;
	if (!cJSON_IsString(it)) {
		snprintf(why, whylen, "\"%s\" must be a string", name);
		return 1;
	}
	if (!*it->valuestring)
		return 0;
	if (!fhir_string_ok(it->valuestring)) {
		snprintf(why, whylen, "\"%s\" is not valid UTF-8 or has control characters", name);
		return 1;
	}
	*out = strdup(it->valuestring);
	return *out ? 0 : -ENOMEM;
}

/* Fill o (path set) from one entry; 0, 1 (skip, why filled), -ENOMEM. */
static int object_fill(const cJSON *obj, struct lfsfs_fhir_object *o, char *why, size_t whylen)
{
	const cJSON *it;
	char *tmp = NULL;
	const char *rwhy = NULL;
	int rc;

	if (!cJSON_IsObject(obj)) {
		snprintf(why, whylen, "value is not a json object");
		return 1;
	}
	it = field(obj, "remote_url");
	if (!cJSON_IsString(it) || !*it->valuestring) {
		snprintf(why, whylen, "missing or empty \"remote_url\"");
		return 1;
	}
	if (!fhir_uri_ok(it->valuestring)) {
		snprintf(why, whylen,
		         "\"remote_url\" has spaces, control characters or invalid UTF-8; "
		         "percent-encode them");
		return 1;
	}
	o->url = strdup(it->valuestring);
	if (!o->url)
		return -ENOMEM;
	it = field(obj, "size");
	if (!it) {
		snprintf(why, whylen, "missing \"size\"");
		return 1;
	}
	if (lfsfs_json_size(it, &o->size)) {
		snprintf(why, whylen,
		         "\"size\" must be a non-negative integer (a decimal string above 2^53)");
		return 1;
	}
	it = field(obj, "sha256");
	if (it && lfsfs_json_sha256(it, o->sha256)) {
		snprintf(why, whylen,
		         "\"sha256\" must be 64 hex digits, optionally prefixed 'sha256:'");
		return 1;
	}
	it = field(obj, "sha1");
	if (it && (!cJSON_IsString(it) || parse_sha1(it->valuestring, o->sha1_b64))) {
		snprintf(why, whylen, "\"sha1\" must be 40 hex digits or base64 of 20 bytes");
		return 1;
	}
	if ((rc = opt_string(obj, "etag", &o->etag, why, whylen)) ||
	    (rc = opt_string(obj, "md5", &o->md5, why, whylen)) ||
	    (rc = opt_string(obj, "description", &o->description, why, whylen)) ||
	    (rc = opt_string(obj, "content_type", &o->content_type, why, whylen)) ||
	    (rc = opt_string(obj, "date", &o->date, why, whylen)))
		return rc;
	if (o->content_type && !mime_ok(o->content_type)) {
		snprintf(why, whylen, "\"content_type\" is not a media type like 'text/plain'");
		return 1;
	}
	if (o->date && !instant_ok(o->date)) {
		snprintf(why, whylen,
		         "\"date\" is not an instant with a time zone, like "
		         "'2024-05-01T12:00:00Z'");
		return 1;
	}
	if ((rc = opt_string(obj, "patient", &tmp, why, whylen)))
		return rc;
	if (tmp) {
		rc = lfsfs_fhir_reference(tmp, "Patient", subject_types, &o->subject, &rwhy);
		free(tmp);
		tmp = NULL;
		if (rc == -EINVAL) {
			snprintf(why, whylen, "\"patient\" %s%s", rwhy,
			         rwhy == why_type ? " (Patient, Group, Practitioner or Device)" :
			                            "");
			return 1;
		}
		if (rc)
			return rc;
	}
	if ((rc = opt_string(obj, "specimen", &tmp, why, whylen)))
		return rc;
	if (tmp) {
		rc = lfsfs_fhir_reference(tmp, "Specimen", specimen_types, &o->specimen, &rwhy);
		free(tmp);
		if (rc == -EINVAL) {
			snprintf(why, whylen, "\"specimen\" %s%s", rwhy,
			         rwhy == why_type ? " (Specimen)" : "");
			return 1;
		}
		if (rc)
			return rc;
	}
	return 0;
}

static int walk_fill(const cJSON *member, void *elem, char *why, size_t whylen)
{
	/* FHIR strings must be UTF-8; metadata.json paths need not be */
	if (!utf8_valid(member->string)) {
		snprintf(why, whylen, "path is not valid UTF-8");
		return 1;
	}
	return object_fill(member, elem, why, whylen);
}

static void walk_release(void *elem)
{
	object_release(elem);
}

static const struct lfsfs_meta_walk_ops object_walk = {
	.size = sizeof(struct lfsfs_fhir_object),
	.path_off = offsetof(struct lfsfs_fhir_object, path),
	.fill = walk_fill,
	.release = walk_release,
};

int lfsfs_fhir_load(const char *file, struct lfsfs_fhir_set **out,
                    void (*skipped)(const char *path, const char *why, void *ctx), void *ctx)
{
	struct lfsfs_fhir_set *s = NULL;
	cJSON *root = NULL;
	void *objs = NULL;
	int rc;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s) {
		rc = -ENOMEM;
		goto out;
	}
	rc = lfsfs_meta_read_root(file, &root);
	if (rc == -ENOENT)
		rc = lfsfs_error_set(rc, "cannot read '%s': %s", file, lfsfs_code_name(rc));
	if (rc)
		goto out;
	if ((rc = lfsfs_meta_walk(root, &object_walk, skipped, ctx, &objs, &s->n)))
		goto out;
	s->objs = objs;
	*out = s;
	s = NULL;
out:
	lfsfs_fhir_set_free(s);
	cJSON_Delete(root);
	return rc;
}

void lfsfs_fhir_set_free(struct lfsfs_fhir_set *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		object_release(&s->objs[i]);
	free(s->objs);
	free(s);
}

/* ------------------------------------------------------------ mapping */

/*
 * Extension (lowercase, after the last '.') -> media type.  Registered
 * types where one exists; formats without one get the type of their
 * bytes: text/plain for line-oriented text (VCF, BED, FASTQ, ...; note
 * that IANA gives .vcf to text/vcard, the address-book format), and
 * application/octet-stream for binary ones (BAM, CRAM, indexes).  Keep
 * docs/FHIR.md in step.
 */
static const struct {
	const char *ext;
	const char *type;
} content_types[] = {
	/* compression and archives: the outermost layer decides */
	{ "gz", "application/gzip" },
	{ "bgz", "application/gzip" },
	{ "tgz", "application/gzip" },
	{ "bz2", "application/x-bzip2" },
	{ "xz", "application/x-xz" },
	{ "zst", "application/zstd" },
	{ "zip", "application/zip" },
	{ "tar", "application/x-tar" },
	/* genomics, binary: no registered type */
	{ "bam", "application/octet-stream" },
	{ "bai", "application/octet-stream" },
	{ "cram", "application/octet-stream" },
	{ "crai", "application/octet-stream" },
	{ "bcf", "application/octet-stream" },
	{ "csi", "application/octet-stream" },
	{ "tbi", "application/octet-stream" },
	/* genomics, text: no registered type */
	{ "vcf", "text/plain" },
	{ "bed", "text/plain" },
	{ "fastq", "text/plain" },
	{ "fq", "text/plain" },
	{ "fasta", "text/plain" },
	{ "fa", "text/plain" },
	{ "fna", "text/plain" },
	{ "sam", "text/plain" },
	{ "gff", "text/plain" },
	{ "gff3", "text/plain" },
	{ "gtf", "text/plain" },
	/* general */
	{ "txt", "text/plain" },
	{ "log", "text/plain" },
	{ "md", "text/markdown" },
	{ "csv", "text/csv" },
	{ "tsv", "text/tab-separated-values" },
	{ "html", "text/html" },
	{ "htm", "text/html" },
	{ "json", "application/json" },
	{ "xml", "application/xml" },
	{ "pdf", "application/pdf" },
	{ "png", "image/png" },
	{ "jpg", "image/jpeg" },
	{ "jpeg", "image/jpeg" },
	{ "gif", "image/gif" },
	{ "svg", "image/svg+xml" },
	{ "tif", "image/tiff" },
	{ "tiff", "image/tiff" },
	{ "dcm", "application/dicom" },
	{ "dicom", "application/dicom" },
	{ "h5", "application/x-hdf5" },
	{ "hdf5", "application/x-hdf5" },
	{ "parquet", "application/vnd.apache.parquet" },
};

#define DEFAULT_CONTENT_TYPE "application/octet-stream"

const char *lfsfs_fhir_content_type(const char *path)
{
	const char *base = strrchr(path, '/'), *dot;

	base = base ? base + 1 : path;
	dot = strrchr(base, '.');
	/* ".bashrc" has no extension; "x." has an empty one. */
	if (!dot || dot == base || !dot[1])
		return DEFAULT_CONTENT_TYPE;
	for (size_t i = 0; i < sizeof(content_types) / sizeof(content_types[0]); i++)
		if (!strcasecmp(dot + 1, content_types[i].ext))
			return content_types[i].type;
	return DEFAULT_CONTENT_TYPE;
}

int lfsfs_fhir_id(const char *path, char out[LFSFS_FHIR_ID_LEN + 1])
{
	static const char ns[] = LFSFS_FHIR_ID_NAMESPACE;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *c;
	unsigned char nsb[16];
	int j = 0, ok;

	/* RFC 4122 section 4.3: SHA-1 over namespace bytes then the name. */
	for (int i = 0; ns[i]; i++) {
		if (ns[i] == '-')
			continue;
		if (j % 2)
			nsb[j / 2] = (unsigned char)(nsb[j / 2] | hexval(ns[i]));
		else
			nsb[j / 2] = (unsigned char)(hexval(ns[i]) << 4);
		j++;
	}
	c = EVP_MD_CTX_new();
	if (!c)
		return -ENOMEM;
	ok = EVP_DigestInit_ex(c, EVP_sha1(), NULL) && EVP_DigestUpdate(c, nsb, sizeof(nsb)) &&
	     EVP_DigestUpdate(c, path, strlen(path)) && EVP_DigestFinal_ex(c, md, &mdlen);
	EVP_MD_CTX_free(c);
	if (!ok || mdlen < 16)
		return lfsfs_error_set(-EIO, "cannot compute sha-1 for a resource id");
	md[6] = (unsigned char)((md[6] & 0x0f) | 0x50); /* version 5 */
	md[8] = (unsigned char)((md[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(out, LFSFS_FHIR_ID_LEN + 1,
	         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", md[0],
	         md[1], md[2], md[3], md[4], md[5], md[6], md[7], md[8], md[9], md[10], md[11],
	         md[12], md[13], md[14], md[15]);
	return 0;
}

/* {"url": url, "valueString": v} appended to arr. */
static int add_ext_string(cJSON *arr, const char *url, const char *v)
{
	cJSON *e = cJSON_CreateObject();

	if (!e || !cJSON_AddStringToObject(e, "url", url) ||
	    !cJSON_AddStringToObject(e, "valueString", v)) {
		cJSON_Delete(e);
		return -ENOMEM;
	}
	cJSON_AddItemToArray(arr, e);
	return 0;
}

int lfsfs_fhir_render(const struct lfsfs_fhir_object *o, char **out)
{
	char id[LFSFS_FHIR_ID_LEN + 1], num[24];
	cJSON *r = NULL, *arr, *obj, *att, *ext = NULL;
	const char *title = strrchr(o->path, '/');
	int rc = -ENOMEM;

	*out = NULL;
	rc = lfsfs_fhir_id(o->path, id);
	if (rc)
		return rc;
	rc = -ENOMEM;
	snprintf(num, sizeof(num), "%" PRIu64, o->size);
	/* Elements in the order of the R4 DocumentReference definition. */
	r = cJSON_CreateObject();
	if (!r || !cJSON_AddStringToObject(r, "resourceType", "DocumentReference") ||
	    !cJSON_AddStringToObject(r, "id", id))
		goto out;
	if (!(arr = cJSON_AddArrayToObject(r, "identifier")) || !(obj = cJSON_CreateObject()))
		goto out;
	cJSON_AddItemToArray(arr, obj);
	if (!cJSON_AddStringToObject(obj, "system", LFSFS_FHIR_SID_PATH) ||
	    !cJSON_AddStringToObject(obj, "value", o->path) ||
	    !cJSON_AddStringToObject(r, "status", "current"))
		goto out;
	if (o->subject && (!(obj = cJSON_AddObjectToObject(r, "subject")) ||
	                   !cJSON_AddStringToObject(obj, "reference", o->subject)))
		goto out;
	if (o->date && !cJSON_AddStringToObject(r, "date", o->date))
		goto out;
	if (o->description && !cJSON_AddStringToObject(r, "description", o->description))
		goto out;
	if (!(arr = cJSON_AddArrayToObject(r, "content")) || !(obj = cJSON_CreateObject()))
		goto out;
	cJSON_AddItemToArray(arr, obj);
	if (!(att = cJSON_AddObjectToObject(obj, "attachment")))
		goto out;
	/* Attachment: extension first (Element), then its own elements. */
	if (!(ext = cJSON_CreateArray()))
		goto out;
	if ((o->sha256[0] && add_ext_string(ext, LFSFS_FHIR_EXT_SHA256, o->sha256)) ||
	    (o->md5 && add_ext_string(ext, LFSFS_FHIR_EXT_MD5, o->md5)) ||
	    (o->etag && add_ext_string(ext, LFSFS_FHIR_EXT_ETAG, o->etag)))
		goto out;
	if (o->size > LFSFS_FHIR_UNSIGNED_MAX) {
		/* R4 has no 64-bit integer: decimal keeps every digit. */
		cJSON *e = cJSON_CreateObject();

		if (!e)
			goto out;
		cJSON_AddItemToArray(ext, e);
		if (!cJSON_AddStringToObject(e, "url", LFSFS_FHIR_EXT_SIZE) ||
		    !cJSON_AddRawToObject(e, "valueDecimal", num))
			goto out;
	}
	if (cJSON_GetArraySize(ext)) {
		cJSON_AddItemToObject(att, "extension", ext);
		ext = NULL;
	}
	if (!cJSON_AddStringToObject(att, "contentType",
	                             o->content_type ? o->content_type :
	                                               lfsfs_fhir_content_type(o->path)) ||
	    !cJSON_AddStringToObject(att, "url", o->url))
		goto out;
	if (o->size <= LFSFS_FHIR_UNSIGNED_MAX && !cJSON_AddRawToObject(att, "size", num))
		goto out;
	if (o->sha1_b64[0] && !cJSON_AddStringToObject(att, "hash", o->sha1_b64))
		goto out;
	if (!cJSON_AddStringToObject(att, "title", title ? title + 1 : o->path))
		goto out;
	if (o->specimen) {
		if (!(obj = cJSON_AddObjectToObject(r, "context")) ||
		    !(arr = cJSON_AddArrayToObject(obj, "related")) ||
		    !(obj = cJSON_CreateObject()))
			goto out;
		cJSON_AddItemToArray(arr, obj);
		if (!cJSON_AddStringToObject(obj, "reference", o->specimen))
			goto out;
	}
	*out = cJSON_PrintUnformatted(r);
	rc = *out ? 0 : -ENOMEM;
out:
	cJSON_Delete(ext);
	cJSON_Delete(r);
	return rc;
}

/* ------------------------------------------------------------ checking */

/* Set the message for element `where` of the resource and return. */
#define BAD(...) lfsfs_error_set(-LFSFS_EPARSE, "invalid DocumentReference: " __VA_ARGS__)

/* FHIR JSON: no null, "" , [] or {} anywhere; strings valid UTF-8. */
static int json_rules(const cJSON *n, const char *name)
{
	const cJSON *c;

	if (cJSON_IsNull(n))
		return BAD("'%s' is null", name);
	if (cJSON_IsString(n) && (!*n->valuestring || !utf8_valid(n->valuestring)))
		return BAD("'%s' is an empty or non-UTF-8 string", name);
	if ((cJSON_IsArray(n) || cJSON_IsObject(n)) && !n->child)
		return BAD("'%s' is an empty array or object", name);
	for (c = n->child; c; c = c->next) {
		int rc = json_rules(c, c->string ? c->string : name);

		if (rc)
			return rc;
	}
	return 0;
}

/* Every member of obj is listed in names (NULL-terminated). */
static int members_known(const cJSON *obj, const char *const *names, const char *where)
{
	for (const cJSON *c = obj->child; c; c = c->next) {
		const char *const *k;

		for (k = names; *k && strcmp(*k, c->string); k++)
			;
		if (!*k)
			return BAD("%s has an unknown element '%s'", where, c->string);
	}
	return 0;
}

static int check_extensions(const cJSON *arr, const char *where)
{
	static const char *const names[] = { "id", "extension", "url", NULL };
	const cJSON *e;

	if (!cJSON_IsArray(arr))
		return BAD("%s.extension is not an array", where);
	cJSON_ArrayForEach(e, arr)
	{
		const cJSON *url = cJSON_GetObjectItemCaseSensitive(e, "url");
		int values = 0;

		if (!cJSON_IsObject(e))
			return BAD("%s.extension has a non-object", where);
		if (!cJSON_IsString(url) || !absolute_uri_ok(url->valuestring))
			return BAD("%s.extension lacks an absolute 'url'", where);
		for (const cJSON *c = e->child; c; c = c->next) {
			const char *const *k;

			if (!strncmp(c->string, "value", 5) && c->string[5] >= 'A' &&
			    c->string[5] <= 'Z') {
				values++;
				continue;
			}
			for (k = names; *k && strcmp(*k, c->string); k++)
				;
			if (!*k)
				return BAD("%s.extension has an unknown element '%s'", where,
				           c->string);
		}
		/* ext-1: a value or nested extensions, not both. */
		if (values > 1 ||
		    (values == 1) == !!cJSON_GetObjectItemCaseSensitive(e, "extension"))
			return BAD("extension '%s' needs exactly one value[x] or extensions",
			           url->valuestring);
	}
	return 0;
}

static int check_reference(const cJSON *ref, const char *const *types, const char *where)
{
	static const char *const names[] = { "id",         "extension", "reference", "type",
		                             "identifier", "display",   NULL };
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(ref, "reference");
	int bad_type, rc;

	if (!cJSON_IsObject(ref))
		return BAD("%s is not a Reference object", where);
	if ((rc = members_known(ref, names, where)))
		return rc;
	if (s && (!cJSON_IsString(s) || !reference_ok(s->valuestring, types, &bad_type)))
		return BAD("%s.reference is not a valid reference%s", where,
		           cJSON_IsString(s) && bad_type ? " of an allowed type" : "");
	return 0;
}

static int check_attachment(const cJSON *a)
{
	static const char *const names[] = { "id",    "extension", "contentType", "language",
		                             "data",  "url",       "size",        "hash",
		                             "title", "creation",  NULL };
	const cJSON *it;
	int rc;

	if (!cJSON_IsObject(a))
		return BAD("content.attachment is missing or not an object");
	if ((rc = members_known(a, names, "content.attachment")))
		return rc;
	it = cJSON_GetObjectItemCaseSensitive(a, "extension");
	if (it && (rc = check_extensions(it, "content.attachment")))
		return rc;
	it = cJSON_GetObjectItemCaseSensitive(a, "contentType");
	if (it && (!cJSON_IsString(it) || !mime_ok(it->valuestring)))
		return BAD("content.attachment.contentType is not a media type");
	/* att-1 */
	if (cJSON_GetObjectItemCaseSensitive(a, "data") && !it)
		return BAD("content.attachment has data but no contentType");
	it = cJSON_GetObjectItemCaseSensitive(a, "url");
	if (it && (!cJSON_IsString(it) || !fhir_uri_ok(it->valuestring)))
		return BAD("content.attachment.url is not a url");
	it = cJSON_GetObjectItemCaseSensitive(a, "size");
	if (it && (!cJSON_IsNumber(it) || it->valuedouble < 0 ||
	           it->valuedouble > (double)LFSFS_FHIR_UNSIGNED_MAX ||
	           (double)(uint64_t)it->valuedouble != it->valuedouble))
		return BAD("content.attachment.size is not an unsignedInt (0..4294967295)");
	it = cJSON_GetObjectItemCaseSensitive(a, "hash");
	if (it && (!cJSON_IsString(it) || !base64_of_len(it->valuestring, 20)))
		return BAD("content.attachment.hash is not the base64 of a SHA-1");
	it = cJSON_GetObjectItemCaseSensitive(a, "title");
	if (it && !cJSON_IsString(it))
		return BAD("content.attachment.title is not a string");
	return 0;
}

int lfsfs_fhir_check(const char *json)
{
	static const char *const names[] = { "resourceType",
		                             "id",
		                             "meta",
		                             "implicitRules",
		                             "language",
		                             "text",
		                             "contained",
		                             "extension",
		                             "modifierExtension",
		                             "masterIdentifier",
		                             "identifier",
		                             "status",
		                             "docStatus",
		                             "type",
		                             "category",
		                             "subject",
		                             "date",
		                             "author",
		                             "authenticator",
		                             "custodian",
		                             "relatesTo",
		                             "description",
		                             "securityLabel",
		                             "content",
		                             "context",
		                             NULL };
	static const char *const content_names[] = { "id",         "extension", "modifierExtension",
		                                     "attachment", "format",    NULL };
	static const char *const context_names[] = {
		"id",     "extension",    "modifierExtension", "encounter",         "event",
		"period", "facilityType", "practiceSetting",   "sourcePatientInfo", "related",
		NULL
	};
	static const char *const identifier_names[] = { "id",     "extension", "use",
		                                        "type",   "system",    "value",
		                                        "period", "assigner",  NULL };
	const cJSON *it, *c;
	cJSON *r = cJSON_Parse(json);
	int rc;

	if (!r || !cJSON_IsObject(r)) {
		rc = BAD("not a json object");
		goto out;
	}
	if ((rc = json_rules(r, "DocumentReference")) || (rc = members_known(r, names, "resource")))
		goto out;
	it = cJSON_GetObjectItemCaseSensitive(r, "resourceType");
	if (!cJSON_IsString(it) || strcmp(it->valuestring, "DocumentReference")) {
		rc = BAD("resourceType is not 'DocumentReference'");
		goto out;
	}
	it = cJSON_GetObjectItemCaseSensitive(r, "id");
	if (it && (!cJSON_IsString(it) || !id_ok(it->valuestring, strlen(it->valuestring)))) {
		rc = BAD("id does not match [A-Za-z0-9-.]{1,64}");
		goto out;
	}
	it = cJSON_GetObjectItemCaseSensitive(r, "status");
	if (!cJSON_IsString(it) ||
	    (strcmp(it->valuestring, "current") && strcmp(it->valuestring, "superseded") &&
	     strcmp(it->valuestring, "entered-in-error"))) {
		rc = BAD("status is missing or not current|superseded|entered-in-error");
		goto out;
	}
	it = cJSON_GetObjectItemCaseSensitive(r, "extension");
	if (it && (rc = check_extensions(it, "resource")))
		goto out;
	it = cJSON_GetObjectItemCaseSensitive(r, "identifier");
	if (it) {
		if (!cJSON_IsArray(it)) {
			rc = BAD("identifier is not an array");
			goto out;
		}
		cJSON_ArrayForEach(c, it)
		{
			const cJSON *sys = cJSON_GetObjectItemCaseSensitive(c, "system");
			const cJSON *val = cJSON_GetObjectItemCaseSensitive(c, "value");

			if (!cJSON_IsObject(c) ||
			    (rc = members_known(c, identifier_names, "identifier")))
				goto bad_identifier;
			if ((sys && (!cJSON_IsString(sys) || !absolute_uri_ok(sys->valuestring))) ||
			    (val && !cJSON_IsString(val)))
				goto bad_identifier;
		}
	}
	it = cJSON_GetObjectItemCaseSensitive(r, "subject");
	if (it && (rc = check_reference(it, subject_types, "subject")))
		goto out;
	it = cJSON_GetObjectItemCaseSensitive(r, "date");
	if (it && (!cJSON_IsString(it) || !instant_ok(it->valuestring))) {
		rc = BAD("date is not an instant");
		goto out;
	}
	it = cJSON_GetObjectItemCaseSensitive(r, "description");
	if (it && (!cJSON_IsString(it) || !fhir_string_ok(it->valuestring))) {
		rc = BAD("description is not a string");
		goto out;
	}
	it = cJSON_GetObjectItemCaseSensitive(r, "content");
	if (!cJSON_IsArray(it) || !it->child) {
		rc = BAD("content is missing (1..* required)");
		goto out;
	}
	cJSON_ArrayForEach(c, it)
	{
		if (!cJSON_IsObject(c)) {
			rc = BAD("content has a non-object");
			goto out;
		}
		if ((rc = members_known(c, content_names, "content")) ||
		    (rc = check_attachment(cJSON_GetObjectItemCaseSensitive(c, "attachment"))))
			goto out;
	}
	it = cJSON_GetObjectItemCaseSensitive(r, "context");
	if (it) {
		const cJSON *rel;

		if (!cJSON_IsObject(it) || (rc = members_known(it, context_names, "context"))) {
			if (!rc)
				rc = BAD("context is not an object");
			goto out;
		}
		rel = cJSON_GetObjectItemCaseSensitive(it, "related");
		if (rel && !cJSON_IsArray(rel)) {
			rc = BAD("context.related is not an array");
			goto out;
		}
		cJSON_ArrayForEach(c, rel)
		{
			if ((rc = check_reference(c, NULL, "context.related")))
				goto out;
		}
	}
	rc = 0;
	goto out;
bad_identifier:
	if (!rc)
		rc = BAD("identifier needs an absolute 'system' uri and a string 'value'");
out:
	cJSON_Delete(r);
	return rc;
}

/* ------------------------------------------------------------ writing */

/* Set the message to "<prefix>: <current message>" and return rc. */
__attribute__((format(printf, 2, 3))) static int error_prefix(int rc, const char *fmt, ...)
{
	char old[1024], pre[1024];
	va_list ap;

	snprintf(old, sizeof(old), "%s", lfsfs_error_message());
	va_start(ap, fmt);
	vsnprintf(pre, sizeof(pre), fmt, ap);
	va_end(ap);
	return lfsfs_error_set(rc, "%s: %s", pre, old);
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int lfsfs_fhir_write_fd(const struct lfsfs_fhir_set *s, int fd)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(0);
	int rc = 0;

	for (size_t i = 0; i < s->n && !rc; i++) {
		char *line = NULL;

		rc = lfsfs_fhir_render(&s->objs[i], &line);
		if (rc)
			rc = lfsfs_error_set(rc, "%s", lfsfs_code_name(rc));
		else if ((rc = lfsfs_fhir_check(line)))
			/* A bug here, not bad input: say which object. */
			rc = error_prefix(rc, "'%s'", s->objs[i].path);
		if (!rc && !(rc = lfsfs_buf_appends(&b, line)))
			rc = lfsfs_buf_append(&b, "\n", 1);
		if (rc == -ENOMEM)
			rc = lfsfs_error_set(rc, "%s", lfsfs_code_name(rc));
		free(line);
		if (!rc && (b.len >= WRITE_CHUNK || i + 1 == s->n)) {
			rc = write_all(fd, b.data, b.len);
			if (rc)
				rc = lfsfs_error_set(rc, "%s", lfsfs_code_name(rc));
			lfsfs_buf_reset(&b);
		}
	}
	lfsfs_buf_release(&b);
	return rc;
}

/* mkdir -p (umask applies to what is created). */
static int mkdir_p(const char *dir)
{
	char *d = strdup(dir);
	int rc = 0;

	if (!d)
		return -ENOMEM;
	for (char *p = d + 1;; p++) {
		char save = *p;

		if (save && save != '/')
			continue;
		*p = '\0';
		if (mkdir(d, 0777) && errno != EEXIST) {
			rc = -errno;
			break;
		}
		*p = save;
		if (!save)
			break;
	}
	free(d);
	return rc;
}

int lfsfs_fhir_write_file(const struct lfsfs_fhir_set *s, const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = NULL, *tmp = NULL;
	struct lfsfs_buf tb = LFSFS_BUF_INIT(0);
	mode_t mode = 0644;
	struct stat st;
	int fd = -1, dfd, rc;

	dir = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
	if (!dir) {
		rc = -ENOMEM;
		goto out;
	}
	if (!*dir) {
		free(dir);
		dir = strdup("/");
		if (!dir) {
			rc = -ENOMEM;
			goto out;
		}
	}
	if (!*(slash ? slash + 1 : path)) {
		rc = lfsfs_error_set(-EISDIR, "cannot write '%s': names a directory", path);
		goto out;
	}
	if ((rc = mkdir_p(dir))) {
		rc = lfsfs_error_set(rc, "cannot create directory '%s': %s", dir,
		                     lfsfs_code_name(rc));
		goto out;
	}
	if (!stat(path, &st)) {
		if (S_ISDIR(st.st_mode)) {
			rc = lfsfs_error_set(-EISDIR, "cannot write '%s': it is a directory", path);
			goto out;
		}
		mode = st.st_mode & 07777;
	}
	if ((rc = lfsfs_buf_printf(&tb, "%s/.%s.tmp-XXXXXX", dir, slash ? slash + 1 : path)))
		goto out;
	tmp = lfsfs_buf_detach(&tb);
	fd = mkstemp(tmp);
	if (fd < 0) {
		rc = -errno;
		rc = lfsfs_error_set(rc, "cannot create a temporary file in '%s': %s", dir,
		                     lfsfs_code_name(rc));
		free(tmp);
		tmp = NULL;
		goto out;
	}
	if (fchmod(fd, mode)) {
		rc = lfsfs_error_set(-errno, "cannot chmod '%s': %s", tmp, strerror(errno));
		goto out;
	}
	if ((rc = lfsfs_fhir_write_fd(s, fd))) {
		rc = error_prefix(rc, "cannot write '%s'", path);
		goto out;
	}
	if (fsync(fd) || close(fd)) {
		fd = -1;
		rc = lfsfs_error_set(-errno, "cannot write '%s': %s", path, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path)) {
		rc = lfsfs_error_set(-errno, "cannot rename '%s' to '%s': %s", tmp, path,
		                     strerror(errno));
		goto out;
	}
	free(tmp);
	tmp = NULL;
	/* Make the rename itself durable. */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	lfsfs_buf_release(&tb);
	free(dir);
	return rc;
}
