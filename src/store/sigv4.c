/* AWS Signature Version 4 header signing: canonical request, string to sign,
 * key derivation and the headers to send.  Pure computation (OpenSSL). */
#include "store/sigv4.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "util/buf.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static const char hexdig[] = "0123456789abcdef";

static void to_hex(const unsigned char *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hexdig[in[i] >> 4];
		out[2 * i + 1] = hexdig[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int sha256_hex(const void *data, size_t n, char hex[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!EVP_Digest(data, n, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
		return -EIO;
	to_hex(md, 32, hex);
	return 0;
}

static int hmac256(const void *key, size_t keylen, const void *data, size_t n,
		   unsigned char out[32])
{
	unsigned int len = 0;

	if (!HMAC(EVP_sha256(), key, (int)keylen, data, n, out, &len) || len != 32)
		return -EIO;
	return 0;
}

static int is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

/* Append the SigV4 encoding of in[0..n) to b. */
static int encode_into(struct lfsfs_buf *b, const char *in, size_t n, int keep_slash)
{
	char esc[3];
	int rc = 0;

	for (size_t i = 0; i < n && !rc; i++) {
		unsigned char c = (unsigned char)in[i];
		if (is_unreserved(c) || (keep_slash && c == '/')) {
			rc = lfsfs_buf_append(b, &in[i], 1);
		} else {
			esc[0] = '%';
			esc[1] = "0123456789ABCDEF"[c >> 4];
			esc[2] = "0123456789ABCDEF"[c & 15];
			rc = lfsfs_buf_append(b, esc, 3);
		}
	}
	return rc;
}

int lfsfs_sigv4_uri_encode(const char *in, int keep_slash, char *out, size_t cap)
{
	size_t o = 0;

	if (!in || !out || !cap)
		return -EINVAL;
	for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
		if (is_unreserved(*p) || (keep_slash && *p == '/')) {
			if (o + 1 >= cap)
				return -ERANGE;
			out[o++] = (char)*p;
		} else {
			if (o + 3 >= cap)
				return -ERANGE;
			out[o++] = '%';
			out[o++] = "0123456789ABCDEF"[*p >> 4];
			out[o++] = "0123456789ABCDEF"[*p & 15];
		}
	}
	out[o] = '\0';
	return 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode %XX in s[0..n) into out (n + 1 bytes); a '%' not followed by two
 * hex digits stays literal.  '+' stays '+'.  Returns the decoded length. */
static size_t pct_decode(const char *s, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int hi, lo;
		if (s[i] == '%' && i + 2 < n &&
		    (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
		    (lo = hexval((unsigned char)s[i + 2])) >= 0) {
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	return o;
}

struct qparam {
	char *name;     /* encoded */
	char *value;    /* encoded */
};

static int qparam_cmp(const void *a, const void *b)
{
	const struct qparam *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->value, y->value);
}

/* Normalize one query component: decode, then encode the SigV4 way. */
static char *norm_component(const char *s, size_t n)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(0);
	char *dec = malloc(n + 1);
	size_t dn;

	if (!dec)
		return NULL;
	dn = pct_decode(s, n, dec);
	if (encode_into(&b, dec, dn, 0) || lfsfs_buf_append(&b, "", 0)) {
		free(dec);
		lfsfs_buf_release(&b);
		return NULL;
	}
	free(dec);
	return lfsfs_buf_detach(&b);
}

static int canonical_query(const char *q, struct lfsfs_buf *out)
{
	struct qparam *ps = NULL;
	size_t np = 0, alloc = 0;
	int rc = 0;
	const char *p = q ? q : "";

	while (*p) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);
		if (len) {
			const char *eq = memchr(p, '=', len);
			size_t nl = eq ? (size_t)(eq - p) : len;
			if (np == alloc) {
				size_t na = alloc ? alloc * 2 : 8;
				struct qparam *nps = realloc(ps, na * sizeof(*ps));
				if (!nps) {
					rc = -ENOMEM;
					goto out;
				}
				ps = nps;
				alloc = na;
			}
			ps[np].name = norm_component(p, nl);
			ps[np].value = eq ? norm_component(eq + 1, len - nl - 1) : strdup("");
			np++;
			if (!ps[np - 1].name || !ps[np - 1].value) {
				rc = -ENOMEM;
				goto out;
			}
		}
		if (!amp)
			break;
		p = amp + 1;
	}
	if (np)
		qsort(ps, np, sizeof(*ps), qparam_cmp);
	for (size_t i = 0; i < np && !rc; i++)
		rc = lfsfs_buf_printf(out, "%s%s=%s", i ? "&" : "", ps[i].name, ps[i].value);
out:
	for (size_t i = 0; i < np; i++) {
		free(ps[i].name);
		free(ps[i].value);
	}
	free(ps);
	return rc;
}

struct hdr {
	char *name;     /* lowercase */
	char *value;    /* trimmed, spaces collapsed */
	size_t order;   /* input order, keeps duplicate values in sequence */
};

static int hdr_cmp(const void *a, const void *b)
{
	const struct hdr *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Trim and collapse runs of whitespace to one space. */
static char *norm_value(const char *v, size_t n)
{
	char *out = malloc(n + 1);
	size_t o = 0;
	int space = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		char c = v[i];
		if (c == ' ' || c == '\t') {
			space = 1;
			continue;
		}
		if (space && o)
			out[o++] = ' ';
		space = 0;
		out[o++] = c;
	}
	out[o] = '\0';
	return out;
}

static int hdr_push(struct hdr **hs, size_t *n, size_t *alloc, const char *name, size_t nl,
		    const char *value, size_t vl)
{
	struct hdr *h;

	if (*n == *alloc) {
		size_t na = *alloc ? *alloc * 2 : 8;
		struct hdr *nh = realloc(*hs, na * sizeof(**hs));
		if (!nh)
			return -ENOMEM;
		*hs = nh;
		*alloc = na;
	}
	h = &(*hs)[*n];
	h->name = malloc(nl + 1);
	h->value = norm_value(value, vl);
	h->order = *n;
	(*n)++;
	if (!h->name || !h->value)
		return -ENOMEM;
	for (size_t i = 0; i < nl; i++)
		h->name[i] = (char)tolower((unsigned char)name[i]);
	h->name[nl] = '\0';
	return 0;
}

/* Headers the signer sets itself; copies in r->headers are ignored. */
static int reserved_header(const char *name, size_t nl)
{
	static const char *const names[] = { "host", "x-amz-date", "x-amz-content-sha256",
					     "x-amz-security-token", "authorization" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == nl && !strncasecmp(names[i], name, nl))
			return 1;
	return 0;
}

static int is_s3(const char *service)
{
	return service && !strcmp(service, "s3");
}

static int copy_out(const struct lfsfs_buf *b, char *out, size_t cap)
{
	const char *s = b->data ? b->data : "";

	if (!out)
		return 0;
	if (b->len + 1 > cap)
		return -ERANGE;
	memcpy(out, s, b->len + 1);
	return 0;
}

int lfsfs_sigv4_canonical_request(const struct lfsfs_sigv4_req *r, const char *amz_date,
				  const char *session_token, char *out, size_t cap,
				  char *signed_headers, size_t sh_cap)
{
	struct lfsfs_buf cr = LFSFS_BUF_INIT(0), sh = LFSFS_BUF_INIT(0);
	struct hdr *hs = NULL;
	size_t nh = 0, ha = 0;
	const char *payload = r->payload_hash ? r->payload_hash : EMPTY_SHA256;
	int rc;

	if (!r->method || !r->host || !amz_date)
		return -EINVAL;
	if ((rc = hdr_push(&hs, &nh, &ha, "host", 4, r->host, strlen(r->host))))
		goto out;
	if ((rc = hdr_push(&hs, &nh, &ha, "x-amz-date", 10, amz_date, strlen(amz_date))))
		goto out;
	if (is_s3(r->service) &&
	    (rc = hdr_push(&hs, &nh, &ha, "x-amz-content-sha256", 20, payload, strlen(payload))))
		goto out;
	if (session_token && *session_token &&
	    (rc = hdr_push(&hs, &nh, &ha, "x-amz-security-token", 20, session_token,
			   strlen(session_token))))
		goto out;
	for (const char *const *h = r->headers; h && *h; h++) {
		const char *colon = strchr(*h, ':');
		const char *name = *h, *v;
		size_t nl;

		if (!colon || strpbrk(*h, "\r\n")) {
			rc = -EINVAL;
			goto out;
		}
		while (*name == ' ' || *name == '\t')
			name++;
		nl = (size_t)(colon - name);
		while (nl && (name[nl - 1] == ' ' || name[nl - 1] == '\t'))
			nl--;
		if (!nl) {
			rc = -EINVAL;
			goto out;
		}
		if (reserved_header(name, nl))
			continue;
		v = colon + 1;
		if ((rc = hdr_push(&hs, &nh, &ha, name, nl, v, strlen(v))))
			goto out;
	}
	qsort(hs, nh, sizeof(*hs), hdr_cmp);

	rc = lfsfs_buf_printf(&cr, "%s\n%s\n", r->method, r->path && *r->path ? r->path : "/");
	if (!rc)
		rc = canonical_query(r->query, &cr);
	if (!rc)
		rc = lfsfs_buf_appends(&cr, "\n");
	for (size_t i = 0; i < nh && !rc; i++) {
		if (i && !strcmp(hs[i].name, hs[i - 1].name)) {
			/* repeated header: values joined with commas, in order */
			rc = lfsfs_buf_printf(&cr, ",%s", hs[i].value);
			continue;
		}
		if (i)
			rc = lfsfs_buf_appends(&cr, "\n");
		if (!rc)
			rc = lfsfs_buf_printf(&cr, "%s:%s", hs[i].name, hs[i].value);
		if (!rc)
			rc = lfsfs_buf_printf(&sh, "%s%s", i ? ";" : "", hs[i].name);
	}
	if (!rc)
		rc = lfsfs_buf_printf(&cr, "\n\n%s\n%s", sh.data, payload);
	if (!rc)
		rc = copy_out(&cr, out, cap);
	if (!rc)
		rc = copy_out(&sh, signed_headers, sh_cap);
out:
	for (size_t i = 0; i < nh; i++) {
		free(hs[i].name);
		free(hs[i].value);
	}
	free(hs);
	lfsfs_buf_release(&cr);
	lfsfs_buf_release(&sh);
	return rc;
}

int lfsfs_sigv4_string_to_sign(const char *amz_date, const char *region, const char *service,
			       const char *canonical_request, char *out, size_t cap)
{
	char hash[65];
	int rc, n;

	if (!amz_date || strlen(amz_date) < 8)
		return -EINVAL;
	if ((rc = sha256_hex(canonical_request, strlen(canonical_request), hash)))
		return rc;
	n = snprintf(out, cap, "AWS4-HMAC-SHA256\n%s\n%.8s/%s/%s/aws4_request\n%s", amz_date,
		     amz_date, region, service, hash);
	return n < 0 || (size_t)n >= cap ? -ERANGE : 0;
}

int lfsfs_sigv4_signature(const char *secret, const char *date8, const char *region,
			  const char *service, const char *string_to_sign, char hex[65])
{
	unsigned char k[32], k2[32];
	char *seed;
	size_t sl = strlen(secret);
	int rc;

	seed = malloc(sl + 5);
	if (!seed)
		return -ENOMEM;
	memcpy(seed, "AWS4", 4);
	memcpy(seed + 4, secret, sl + 1);
	rc = hmac256(seed, sl + 4, date8, strnlen(date8, 8), k);
	OPENSSL_cleanse(seed, sl + 4);
	free(seed);
	if (!rc)
		rc = hmac256(k, 32, region, strlen(region), k2);
	if (!rc)
		rc = hmac256(k2, 32, service, strlen(service), k);
	if (!rc)
		rc = hmac256(k, 32, "aws4_request", 12, k2);
	if (!rc)
		rc = hmac256(k2, 32, string_to_sign, strlen(string_to_sign), k);
	if (!rc)
		to_hex(k, 32, hex);
	OPENSSL_cleanse(k, sizeof(k));
	OPENSSL_cleanse(k2, sizeof(k2));
	return rc;
}

int lfsfs_sigv4_sign(const struct lfsfs_sigv4_req *r, const struct lfsfs_aws_cred *c,
		     char out[][4096], size_t cap)
{
	char amz_date[17], sh[4096], sig[65], sts[512];
	char *cr;
	const char *payload = r->payload_hash ? r->payload_hash : EMPTY_SHA256;
	const char *token = c->session_token[0] ? c->session_token : NULL;
	struct tm tm;
	size_t want = 2 + (is_s3(r->service) ? 1 : 0) + (token ? 1 : 0), n = 0;
	int rc;

	if (!r->region || !r->service || !c->access_key[0] || !c->secret_key[0])
		return -EINVAL;
	if (cap < want)
		return -ERANGE;
	if (!gmtime_r(&r->now, &tm) || !strftime(amz_date, sizeof(amz_date), "%Y%m%dT%H%M%SZ", &tm))
		return -EINVAL;
	cr = malloc(65536);
	if (!cr)
		return -ENOMEM;
	rc = lfsfs_sigv4_canonical_request(r, amz_date, token, cr, 65536, sh, sizeof(sh));
	if (!rc)
		rc = lfsfs_sigv4_string_to_sign(amz_date, r->region, r->service, cr, sts, sizeof(sts));
	free(cr);
	if (!rc)
		rc = lfsfs_sigv4_signature(c->secret_key, amz_date, r->region, r->service, sts, sig);
	if (rc)
		return rc;
	snprintf(out[n++], 4096, "x-amz-date: %s", amz_date);
	if (is_s3(r->service))
		snprintf(out[n++], 4096, "x-amz-content-sha256: %s", payload);
	if (token)
		snprintf(out[n++], 4096, "x-amz-security-token: %s", token);
	rc = snprintf(out[n++], 4096,
		      "Authorization: AWS4-HMAC-SHA256 Credential=%s/%.8s/%s/%s/aws4_request, "
		      "SignedHeaders=%s, Signature=%s",
		      c->access_key, amz_date, r->region, r->service, sh, sig);
	if (rc < 0 || rc >= 4096)
		return -ERANGE;
	return (int)n;
}
