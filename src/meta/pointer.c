/* Git LFS pointer parser (strict, with the spec's legacy allowances) and canonical writer. */
#include "lfsfs/pointer.h"

#include <errno.h>
#include <string.h>

#include "lfsfs/error.h"

#define SHA256_PREFIX "sha256:"
#define SHA256_PREFIX_LEN (sizeof(SHA256_PREFIX) - 1)
#define CANONICAL_VERSION "https://git-lfs.github.com/spec/v1"
/* How much of an offending value an error message quotes. */
#define QUOTE_MAX 80

static const char *const versions[] = {
	/* current, then pre-release (hawser), then alpha (git-media) */
	CANONICAL_VERSION,
	"https://hawser.github.com/spec/v1",
	"http://git-media.io/v/2",
};

static int is_lower_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

int lfsfs_oid_valid(const char *s)
{
	if (!s)
		return 0;
	for (int i = 0; i < LFSFS_OID_HEX_LEN; i++)
		if (!is_lower_hex((unsigned char)s[i]))
			return 0;
	return s[LFSFS_OID_HEX_LEN] == '\0';
}

int lfsfs_pointer_size_plausible(uint64_t size)
{
	return size > 0 && size < LFSFS_POINTER_MAX_LEN;
}

static int key_char_ok(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
	size_t need;
	unsigned min;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		need = 2;
		min = 0x80;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		need = 3;
		min = 0x800;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		need = 4;
		min = 0x10000;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need;
}

/* 0 if value is "sha256:" + 64 lowercase hex; copies the hex to oid. */
static int parse_sha256_value(const char *v, size_t vlen, char *oid)
{
	if (vlen != SHA256_PREFIX_LEN + LFSFS_OID_HEX_LEN ||
	    memcmp(v, SHA256_PREFIX, SHA256_PREFIX_LEN))
		return -1;
	for (size_t i = 0; i < LFSFS_OID_HEX_LEN; i++)
		if (!is_lower_hex((unsigned char)v[SHA256_PREFIX_LEN + i]))
			return -1;
	memcpy(oid, v + SHA256_PREFIX_LEN, LFSFS_OID_HEX_LEN);
	oid[LFSFS_OID_HEX_LEN] = '\0';
	return 0;
}

/* Decimal digits only (leading zeros tolerated as git-lfs does), fits uint64. */
static int parse_size_value(const char *v, size_t vlen, uint64_t *out)
{
	uint64_t n = 0;

	if (!vlen)
		return -1;
	for (size_t i = 0; i < vlen; i++) {
		unsigned d;

		if (v[i] < '0' || v[i] > '9')
			return -1;
		d = (unsigned)(v[i] - '0');
		if (n > (UINT64_MAX - d) / 10)
			return -2;
		n = n * 10 + d;
	}
	*out = n;
	return 0;
}

/* Check text-ness of the whole input: no control bytes, valid UTF-8. */
static int check_text(const char *data, size_t len)
{
	const unsigned char *s = (const unsigned char *)data;
	unsigned line = 1;
	size_t i = 0;

	while (i < len) {
		size_t n;

		if (s[i] == '\n') {
			line++;
			i++;
			continue;
		}
		/* CR is allowed only as part of a CRLF or as the very last byte. */
		if (s[i] == '\r' && (i + 1 == len || s[i + 1] == '\n')) {
			i++;
			continue;
		}
		if (s[i] < 0x20 || s[i] == 0x7f)
			return lfsfs_error_set(
			        -LFSFS_EPARSE,
			        "pointer line %u: byte 0x%02x is not text; binary data is not a pointer",
			        line, s[i]);
		n = utf8_seq_len(s + i, len - i);
		if (!n)
			return lfsfs_error_set(
			        -LFSFS_EPARSE,
			        "pointer line %u: byte 0x%02x is not utf-8 text; binary data is not a pointer",
			        line, s[i]);
		i += n;
	}
	return 0;
}

static int parse_ext(unsigned lineno, const char *key, const char *v, size_t vlen,
                     struct lfsfs_pointer *p, unsigned *prio_seen)
{
	const char *name = key + 6;
	size_t nlen;
	struct lfsfs_pointer_ext *e;
	unsigned prio;

	if (key[4] < '0' || key[4] > '9' || key[5] != '-' || !*name)
		return lfsfs_error_set(
		        -LFSFS_EPARSE,
		        "pointer line %u: extension key '%s' must be 'ext-<digit>-<name>'", lineno,
		        key);
	nlen = strlen(name);
	for (size_t i = 0; i < nlen; i++)
		if (name[i] == '.' || name[i] == '-')
			return lfsfs_error_set(
			        -LFSFS_EPARSE,
			        "pointer line %u: extension name in '%s' must be letters and digits",
			        lineno, key);
	if (nlen >= sizeof(p->ext[0].name))
		return lfsfs_error_set(
		        -LFSFS_EPARSE,
		        "pointer line %u: extension name in '%s' is longer than %zu bytes", lineno,
		        key, sizeof(p->ext[0].name) - 1);
	prio = (unsigned)(key[4] - '0');
	if (*prio_seen & (1u << prio))
		return lfsfs_error_set(
		        -LFSFS_EPARSE,
		        "pointer line %u: extension priority %u appears twice ('%s')", lineno, prio,
		        key);
	/* Unique priorities 0-9 bound n_ext by LFSFS_POINTER_MAX_EXT. */
	e = &p->ext[p->n_ext];
	if (parse_sha256_value(v, vlen, e->oid))
		return lfsfs_error_set(
		        -LFSFS_EPARSE,
		        "pointer line %u: '%s' must be 'sha256:' followed by 64 lowercase hex digits",
		        lineno, key);
	*prio_seen |= 1u << prio;
	e->priority = prio;
	memcpy(e->name, name, nlen + 1);
	p->n_ext++;
	return 0;
}

int lfsfs_pointer_parse(const char *data, size_t len, struct lfsfs_pointer *out)
{
	struct lfsfs_pointer p;
	/* A key is shorter than the whole input, which is < LFSFS_POINTER_MAX_LEN. */
	char key[LFSFS_POINTER_MAX_LEN], prev[LFSFS_POINTER_MAX_LEN];
	unsigned lineno = 0, prio_seen = 0;
	int have_oid = 0, have_size = 0;
	size_t pos = 0;
	int rc;

	memset(&p, 0, sizeof(p));
	prev[0] = '\0';
	if (!data || len == 0) {
		rc = lfsfs_error_set(-LFSFS_EPARSE, "pointer is empty");
		goto out;
	}
	if (len >= LFSFS_POINTER_MAX_LEN) {
		rc = lfsfs_error_set(-LFSFS_EPARSE,
		                     "pointer is %zu bytes; a pointer is shorter than %d bytes",
		                     len, LFSFS_POINTER_MAX_LEN);
		goto out;
	}
	rc = check_text(data, len);
	if (rc)
		goto out;

	while (pos < len) {
		const char *line = data + pos, *nl, *sp, *v;
		size_t llen, klen, vlen, next;

		lineno++;
		nl = memchr(line, '\n', len - pos);
		llen = nl ? (size_t)(nl - line) : len - pos;
		next = pos + llen + (nl ? 1 : 0);
		/* Accept CRLF; a missing final newline is tolerated as git-lfs does. */
		if (llen && line[llen - 1] == '\r')
			llen--;
		pos = next;

		if (!llen) {
			rc = lfsfs_error_set(-LFSFS_EPARSE, "pointer line %u: empty line", lineno);
			goto out;
		}
		sp = memchr(line, ' ', llen);
		if (!sp) {
			rc = lfsfs_error_set(
			        -LFSFS_EPARSE,
			        "pointer line %u: expected 'key value', found no space", lineno);
			goto out;
		}
		klen = (size_t)(sp - line);
		if (!klen) {
			rc = lfsfs_error_set(
			        -LFSFS_EPARSE,
			        "pointer line %u: line starts with a space; expected 'key value'",
			        lineno);
			goto out;
		}
		for (size_t i = 0; i < klen; i++) {
			if (!key_char_ok((unsigned char)line[i])) {
				rc = lfsfs_error_set(
				        -LFSFS_EPARSE,
				        "pointer line %u: key '%.*s' may only use [a-z0-9.-]",
				        lineno, (int)(klen < QUOTE_MAX ? klen : QUOTE_MAX), line);
				goto out;
			}
		}
		memcpy(key, line, klen);
		key[klen] = '\0';
		v = sp + 1;
		vlen = llen - klen - 1;
		if (!vlen) {
			rc = lfsfs_error_set(-LFSFS_EPARSE,
			                     "pointer line %u: key '%s' has no value", lineno, key);
			goto out;
		}
		if (v[0] == ' ') {
			rc = lfsfs_error_set(-LFSFS_EPARSE,
			                     "pointer line %u: more than one space after key '%s'",
			                     lineno, key);
			goto out;
		}

		if (lineno == 1) {
			size_t i;

			if (strcmp(key, "version")) {
				rc = lfsfs_error_set(
				        -LFSFS_EPARSE,
				        "pointer line 1: first key must be 'version', not '%s'",
				        key);
				goto out;
			}
			for (i = 0; i < sizeof(versions) / sizeof(versions[0]); i++)
				if (strlen(versions[i]) == vlen && !memcmp(versions[i], v, vlen))
					break;
			if (i == sizeof(versions) / sizeof(versions[0])) {
				rc = lfsfs_error_set(
				        -LFSFS_EPARSE,
				        "pointer line 1: unknown version '%.*s'; expected '%s'",
				        (int)(vlen < QUOTE_MAX ? vlen : QUOTE_MAX), v,
				        CANONICAL_VERSION);
				goto out;
			}
			continue;
		}
		if (!strcmp(key, "version") || (prev[0] && !strcmp(key, prev))) {
			rc = lfsfs_error_set(-LFSFS_EPARSE, "pointer line %u: duplicate key '%s'",
			                     lineno, key);
			goto out;
		}
		if (prev[0] && strcmp(key, prev) < 0) {
			rc = lfsfs_error_set(
			        -LFSFS_EPARSE,
			        "pointer line %u: key '%s' must come before '%s'; keys after 'version' are sorted",
			        lineno, key, prev);
			goto out;
		}

		if (!strncmp(key, "ext-", 4)) {
			rc = parse_ext(lineno, key, v, vlen, &p, &prio_seen);
			if (rc)
				goto out;
		} else if (!strcmp(key, "oid")) {
			if (parse_sha256_value(v, vlen, p.oid)) {
				rc = lfsfs_error_set(
				        -LFSFS_EPARSE,
				        "pointer line %u: oid must be 'sha256:' followed by 64 lowercase hex digits",
				        lineno);
				goto out;
			}
			have_oid = 1;
		} else if (!strcmp(key, "size")) {
			int src = parse_size_value(v, vlen, &p.size);

			if (src == -2) {
				rc = lfsfs_error_set(
				        -LFSFS_EPARSE,
				        "pointer line %u: size '%.*s' does not fit in 64 bits",
				        lineno, (int)(vlen < QUOTE_MAX ? vlen : QUOTE_MAX), v);
				goto out;
			}
			if (src) {
				rc = lfsfs_error_set(
				        -LFSFS_EPARSE,
				        "pointer line %u: size '%.*s' must be decimal digits only",
				        lineno, (int)(vlen < QUOTE_MAX ? vlen : QUOTE_MAX), v);
				goto out;
			}
			have_size = 1;
		}
		/* Other well-formed keys in order are future spec keys: tolerated. */
		memcpy(prev, key, klen + 1);
	}

	if (!have_oid) {
		rc = lfsfs_error_set(-LFSFS_EPARSE, "pointer has no 'oid' line");
		goto out;
	}
	if (!have_size) {
		rc = lfsfs_error_set(-LFSFS_EPARSE, "pointer has no 'size' line");
		goto out;
	}
	*out = p;
	rc = 0;
out:
	return rc;
}

static int ext_name_ok(const char *name)
{
	size_t n = strnlen(name, sizeof(((struct lfsfs_pointer_ext *)0)->name));

	if (!n || n >= sizeof(((struct lfsfs_pointer_ext *)0)->name))
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
			return 0;
	}
	return 1;
}

int lfsfs_pointer_write(const struct lfsfs_pointer *p, struct lfsfs_buf *out)
{
	int rc;

	if (!lfsfs_oid_valid(p->oid)) {
		rc = lfsfs_error_set(
		        -EINVAL, "cannot write pointer: oid '%.64s' is not 64 lowercase hex digits",
		        p->oid);
		goto out;
	}
	if (p->n_ext > LFSFS_POINTER_MAX_EXT) {
		rc = lfsfs_error_set(-EINVAL, "cannot write pointer: %u extensions; at most %d",
		                     p->n_ext, LFSFS_POINTER_MAX_EXT);
		goto out;
	}
	for (unsigned i = 0; i < p->n_ext; i++) {
		const struct lfsfs_pointer_ext *e = &p->ext[i];

		if (e->priority > 9 || (i && e->priority <= p->ext[i - 1].priority) ||
		    !ext_name_ok(e->name) || !lfsfs_oid_valid(e->oid)) {
			rc = lfsfs_error_set(
			        -EINVAL,
			        "cannot write pointer: extension %u is invalid; priorities must ascend within 0-9, names be [a-z0-9]+ and oids 64 lowercase hex digits",
			        i);
			goto out;
		}
	}
	rc = lfsfs_buf_appends(out, "version " CANONICAL_VERSION "\n");
	for (unsigned i = 0; !rc && i < p->n_ext; i++)
		rc = lfsfs_buf_printf(out, "ext-%u-%s " SHA256_PREFIX "%s\n", p->ext[i].priority,
		                      p->ext[i].name, p->ext[i].oid);
	if (!rc)
		rc = lfsfs_buf_printf(out, "oid " SHA256_PREFIX "%s\nsize %llu\n", p->oid,
		                      (unsigned long long)p->size);
out:
	return rc;
}
