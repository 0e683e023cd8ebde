/*
 * The s3 backend: s3://bucket/key served by SigV4-signed ranged GETs and
 * HEADs against AWS S3 or an S3-compatible endpoint (docs/S3.md).
 *
 * Per store state: the AWS credential chain (store/aws_creds.h) and a cache
 * of bucket -> region learned from the endpoint (x-amz-bucket-region, or
 * the <Region> of a 301 PermanentRedirect / 400 AuthorizationHeaderMalformed
 * error document).  Requests are built here, signed with store/sigv4.h and
 * handed to the shared net engine exactly like the https backend does.
 *
 * Threads: fetch(), head() and explain() run on reader/CLI threads and may
 * block (credential chain, region discovery); the fetch completion runs on
 * the engine thread and only takes the short region-cache mutex.
 */
#include "store/store.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "lfsfs/error.h"
#include "net/net.h"
#include "store/aws_creds.h"
#include "store/sigv4.h"
#include "util/config.h"
#include "util/log.h"

#define S3_DEFAULT_REGION "us-east-1"
#define S3_TRIED_MAX 1536
#define S3_PATH_MAX 4608        /* 1024-byte keys encode to at most 3072 */
#define S3_URL_MAX (S3_PATH_MAX + 512)
#define S3_SIG_LINES 6
#define S3_ANON_TTL 60          /* seconds to trust "no credentials anywhere" */

/* ------------------------------------------------------------------ state */

struct s3_region_ent {
	char bucket[256];
	char region[64];
	const char *how;        /* static text */
};

struct s3_state {
	struct lfsfs_aws_chain chain;
	char profile[128];      /* lfsfs.s3.profile, "" = AWS_PROFILE or default */
	pthread_mutex_t lock;   /* protects regions, anon_*; never held across I/O */
	struct s3_region_ent *regions;
	size_t nregions, aregions;
	int invalidate;         /* atomic: drop the cached credential before next use */
	time_t anon_until;      /* under lock: the chain found nothing; do not ask */
	char anon_tried[S3_TRIED_MAX];  /* again before then (public buckets) */
};


static void *s3_create(struct lfsfs_store *st)
{
	struct s3_state *s = calloc(1, sizeof(*s));
	const char *p;

	if (!s)
		return NULL;
	p = lfsfs_config_get(st->cfg, "lfsfs.s3.profile");
	snprintf(s->profile, sizeof(s->profile), "%s", p ? p : "");
	pthread_mutex_init(&s->lock, NULL);
	lfsfs_aws_chain_init(&s->chain, st->net, s->profile);
	return s;
}

static void s3_release(void *state)
{
	struct s3_state *s = state;

	if (!s)
		return;
	lfsfs_aws_chain_release(&s->chain);
	pthread_mutex_destroy(&s->lock);
	free(s->regions);
	free(s);
}

static struct s3_state *s3_state(struct lfsfs_store *st)
{
	return lfsfs_store_state(st, &lfsfs_store_s3, s3_create);
}

static int region_valid(const char *r)
{
	size_t n = 0;

	for (; r[n]; n++)
		if (!(islower((unsigned char)r[n]) || isdigit((unsigned char)r[n]) || r[n] == '-'))
			return 0;
	return n > 0 && n < 64;
}

static int region_cache_get(struct s3_state *s, const char *bucket, char *out, size_t cap,
			    const char **how)
{
	int found = 0;

	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->nregions; i++)
		if (!strcmp(s->regions[i].bucket, bucket)) {
			snprintf(out, cap, "%s", s->regions[i].region);
			*how = s->regions[i].how;
			found = 1;
			break;
		}
	pthread_mutex_unlock(&s->lock);
	return found;
}

static void region_cache_put(struct s3_state *s, const char *bucket, const char *region,
			     const char *how)
{
	struct s3_region_ent *e = NULL;

	if (!region_valid(region) || strlen(bucket) >= sizeof(e->bucket))
		return;
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->nregions; i++)
		if (!strcmp(s->regions[i].bucket, bucket))
			e = &s->regions[i];
	if (!e) {
		if (s->nregions == s->aregions) {
			size_t na = s->aregions ? 2 * s->aregions : 8;
			struct s3_region_ent *n = realloc(s->regions, na * sizeof(*n));
			if (!n) {
				pthread_mutex_unlock(&s->lock);
				return;
			}
			s->regions = n;
			s->aregions = na;
		}
		e = &s->regions[s->nregions++];
		snprintf(e->bucket, sizeof(e->bucket), "%s", bucket);
	}
	snprintf(e->region, sizeof(e->region), "%s", region);
	e->how = how;
	pthread_mutex_unlock(&s->lock);
}

/* --------------------------------------------------------------- endpoint */

struct s3_endpoint {
	char scheme[8];         /* "http" or "https" */
	char host[256];         /* lowercase, IPv6 literal in brackets */
	unsigned port;          /* 0: the scheme's default */
	char base[256];         /* path prefix without trailing '/', usually "" */
	int custom;             /* not AWS's own endpoint */
	const char *src;        /* where it came from */
};

static int host_is_ip_or_localhost(const char *h)
{
	int dots = 0, digits = 0;
	size_t n = strlen(h);

	if (h[0] == '[')
		return 1;
	if (!strcmp(h, "localhost") || (n > 10 && !strcmp(h + n - 10, ".localhost")))
		return 1;
	for (const char *p = h; *p; p++) {
		if (*p == '.')
			dots++;
		else if (isdigit((unsigned char)*p))
			digits++;
		else
			return 0;
	}
	return dots == 3 && digits > 0;
}

/* Parse an endpoint URL ("http://127.0.0.1:9000", "https://minio.example",
 * bare "host:port" means https).  Message set on failure. */
static int endpoint_parse(const char *v, const char *src, struct s3_endpoint *e)
{
	const char *p = v, *end, *hend, *colon = NULL;
	size_t hl;

	memset(e, 0, sizeof(*e));
	e->src = src;
	e->custom = 1;
	while (*p == ' ' || *p == '\t')
		p++;
	if (!strncasecmp(p, "https://", 8)) {
		strcpy(e->scheme, "https");
		p += 8;
	} else if (!strncasecmp(p, "http://", 7)) {
		strcpy(e->scheme, "http");
		p += 7;
	} else if (strstr(p, "://")) {
		return lfsfs_error_set(-LFSFS_EUNSUPPORTED, "S3 endpoint from %s must be an http:// "
				       "or https:// URL", src);
	} else {
		strcpy(e->scheme, "https");
	}
	end = p + strcspn(p, "/?#");
	if (memchr(p, '@', (size_t)(end - p)))
		return lfsfs_error_set(-LFSFS_EPARSE, "S3 endpoint from %s must not contain "
				       "user:password@ (use the AWS credential chain)", src);
	if (p[0] == '[') {
		hend = memchr(p, ']', (size_t)(end - p));
		if (!hend)
			return lfsfs_error_set(-LFSFS_EPARSE, "S3 endpoint from %s: bad IPv6 "
					       "literal", src);
		hend++;
		if (hend < end && *hend == ':')
			colon = hend;
		else if (hend != end)
			return lfsfs_error_set(-LFSFS_EPARSE, "S3 endpoint from %s: bad host", src);
	} else {
		colon = memchr(p, ':', (size_t)(end - p));
		hend = colon ? colon : end;
	}
	hl = (size_t)(hend - p);
	if (!hl || hl >= sizeof(e->host))
		return lfsfs_error_set(-LFSFS_EPARSE, "S3 endpoint from %s has no host", src);
	for (size_t i = 0; i < hl; i++) {
		unsigned char c = (unsigned char)p[i];
		if (!(isalnum(c) || c == '.' || c == '-' || c == '_' || c == '[' || c == ']' ||
		      c == ':'))
			return lfsfs_error_set(-LFSFS_EPARSE, "S3 endpoint from %s: bad host "
					       "character", src);
		e->host[i] = (char)tolower(c);
	}
	e->host[hl] = '\0';
	if (colon) {
		char *q;
		unsigned long port = strtoul(colon + 1, &q, 10);
		if (q != end || port == 0 || port > 65535)
			return lfsfs_error_set(-LFSFS_EPARSE, "S3 endpoint from %s: bad port", src);
		e->port = (unsigned)port;
	}
	if ((e->port == 80 && !strcmp(e->scheme, "http")) ||
	    (e->port == 443 && !strcmp(e->scheme, "https")))
		e->port = 0;   /* curl leaves default ports out of Host: so must we */
	if (*end == '?' || *end == '#')
		return lfsfs_error_set(-LFSFS_EPARSE, "S3 endpoint from %s must not have a "
				       "query string", src);
	{
		size_t bl = strcspn(end, "?#");
		while (bl && end[bl - 1] == '/')
			bl--;
		if (bl >= sizeof(e->base))
			return lfsfs_error_set(-LFSFS_EPARSE, "S3 endpoint from %s: path too long",
					       src);
		memcpy(e->base, end, bl);
		e->base[bl] = '\0';
		if (end[strcspn(end, "?#")])
			return lfsfs_error_set(-LFSFS_EPARSE, "S3 endpoint from %s must not have "
					       "a query string", src);
	}
	return 0;
}

/* Endpoint: lfsfs.s3.endpoint, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, else AWS. */
static int endpoint_pick(const struct lfsfs_config *cfg, struct s3_endpoint *e)
{
	const char *v;

	if ((v = lfsfs_config_get(cfg, "lfsfs.s3.endpoint")) && *v)
		return endpoint_parse(v, "lfsfs.s3.endpoint", e);
	if ((v = getenv("AWS_ENDPOINT_URL_S3")) && *v)
		return endpoint_parse(v, "AWS_ENDPOINT_URL_S3", e);
	if ((v = getenv("AWS_ENDPOINT_URL")) && *v)
		return endpoint_parse(v, "AWS_ENDPOINT_URL", e);
	memset(e, 0, sizeof(*e));
	strcpy(e->scheme, "https");
	e->custom = 0;
	e->src = "default (AWS S3)";
	return 0;
}

/* ------------------------------------------------------------------ target */

struct s3_target {
	char bucket[256];
	const char *key;        /* points into the URL */
	struct s3_endpoint ep;
	char region[64];
	const char *region_src;
	int region_checked;     /* the endpoint was asked (region cache hit) */
	int path_style;
	const char *style_why;
	char host[320];         /* Host header value */
	char path[S3_PATH_MAX]; /* URI-encoded request path */
	char url[S3_URL_MAX];
};

static int s3_handles(const char *url)
{
	return !strncasecmp(url, "s3://", 5);
}

/* A bucket name that can be a DNS label (virtual-hosted addressing). */
static int bucket_dns_ok(const char *b)
{
	size_t n = strlen(b);

	if (n < 3 || n > 63 || !(islower((unsigned char)b[0]) || isdigit((unsigned char)b[0])) ||
	    !(islower((unsigned char)b[n - 1]) || isdigit((unsigned char)b[n - 1])))
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)b[i];
		if (!(islower(c) || isdigit(c) || c == '-' || c == '.'))
			return 0;
		if (c == '.' && (b[i + 1] == '.' || b[i + 1] == '-' || (i && b[i - 1] == '-')))
			return 0;
	}
	return !host_is_ip_or_localhost(b);
}

/* Split s3://bucket/key. */
static int s3_parse_url(const char *url, struct s3_target *t)
{
	const char *b, *slash;
	size_t bl;

	if (!s3_handles(url))
		return lfsfs_error_set(-LFSFS_EUNSUPPORTED, "'%s' is not an s3:// URL", url);
	b = url + 5;
	slash = strchr(b, '/');
	bl = slash ? (size_t)(slash - b) : strlen(b);
	if (!bl || !slash || !slash[1])
		return lfsfs_error_set(-LFSFS_EPARSE, "'%s': expected s3://bucket/key", url);
	if (bl >= sizeof(t->bucket))
		return lfsfs_error_set(-LFSFS_EPARSE, "'%s': bucket name too long", url);
	for (size_t i = 0; i < bl; i++) {
		unsigned char c = (unsigned char)b[i];
		if (!(isalnum(c) || c == '.' || c == '-' || c == '_'))
			return lfsfs_error_set(-LFSFS_EPARSE, "'%s': invalid bucket name", url);
	}
	memcpy(t->bucket, b, bl);
	t->bucket[bl] = '\0';
	t->key = slash + 1;
	if (strlen(t->key) > 1024)
		return lfsfs_error_set(-LFSFS_EPARSE, "'%s': S3 keys are at most 1024 bytes", url);
	/* libcurl collapses "." and ".." path segments before sending, so such a
	 * key can never be requested as itself. */
	for (const char *seg = t->key; seg;) {
		size_t sl = strcspn(seg, "/");
		if ((sl == 1 && seg[0] == '.') || (sl == 2 && seg[0] == '.' && seg[1] == '.'))
			return lfsfs_error_set(-LFSFS_EUNSUPPORTED, "'%s': keys with '.' or '..' "
					       "path segments are not supported", url);
		seg = seg[sl] ? seg + sl + 1 : NULL;
	}
	return 0;
}

/* The effective profile name (for the region lookup and messages). */
static const char *s3_profile(const struct s3_state *s)
{
	const char *p = s->profile[0] ? s->profile : getenv("AWS_PROFILE");

	return p && *p ? p : "default";
}

/* Region: learned for the bucket, lfsfs.s3.region, AWS_REGION,
 * AWS_DEFAULT_REGION, the profile's region, else us-east-1 (unknown). */
static void region_pick(const struct lfsfs_store *st, struct s3_state *s, struct s3_target *t)
{
	const char *v;
	char prof[64];

	if (s && region_cache_get(s, t->bucket, t->region, sizeof(t->region), &t->region_src)) {
		t->region_checked = 1;
		return;
	}
	if ((v = lfsfs_config_get(st->cfg, "lfsfs.s3.region")) && *v) {
		snprintf(t->region, sizeof(t->region), "%s", v);
		t->region_src = "lfsfs.s3.region";
		return;
	}
	if ((v = getenv("AWS_REGION")) && *v) {
		snprintf(t->region, sizeof(t->region), "%s", v);
		t->region_src = "AWS_REGION";
		return;
	}
	if ((v = getenv("AWS_DEFAULT_REGION")) && *v) {
		snprintf(t->region, sizeof(t->region), "%s", v);
		t->region_src = "AWS_DEFAULT_REGION";
		return;
	}
	prof[0] = '\0';
	if (s)
		lfsfs_aws_region(s3_profile(s), prof, sizeof(prof));
	if (prof[0]) {
		snprintf(t->region, sizeof(t->region), "%s", prof);
		t->region_src = "the profile's region in ~/.aws/config";
		return;
	}
	snprintf(t->region, sizeof(t->region), "%s", S3_DEFAULT_REGION);
	t->region_src = "default";
}

static int env_true(const char *name)
{
	const char *v = getenv(name);

	return v && (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes") ||
		     !strcasecmp(v, "on"));
}

static void style_pick(const struct lfsfs_store *st, struct s3_target *t)
{
	int cfgps = lfsfs_config_get_bool(st->cfg, "lfsfs.s3.pathstyle", -1);

	t->path_style = 1;
	if (!bucket_dns_ok(t->bucket))
		t->style_why = "the bucket name is not a valid DNS label";
	else if (cfgps == 1)
		t->style_why = "lfsfs.s3.pathstyle = true";
	else if (cfgps == 0) {
		t->path_style = 0;
		t->style_why = "lfsfs.s3.pathstyle = false";
	} else if (env_true("AWS_S3_FORCE_PATH_STYLE"))
		t->style_why = "AWS_S3_FORCE_PATH_STYLE";
	else if (t->ep.custom && host_is_ip_or_localhost(t->ep.host))
		t->style_why = "the endpoint is an IP address or localhost";
	else if (strchr(t->bucket, '.') && !strcmp(t->ep.scheme, "https"))
		t->style_why = "the bucket name has dots and TLS certificates do not match "
			       "nested names";
	else {
		t->path_style = 0;
		t->style_why = "default";
	}
}

/* Host, path and URL from the endpoint, style and region. */
static int target_address(struct s3_target *t)
{
	char host[300], ekey[S3_PATH_MAX];
	int n;

	if (t->ep.custom) {
		snprintf(host, sizeof(host), "%s", t->ep.host);
	} else {
		snprintf(host, sizeof(host), "s3.%s.amazonaws.com%s", t->region,
			 strncmp(t->region, "cn-", 3) ? "" : ".cn");
	}
	if (t->path_style)
		n = snprintf(t->host, sizeof(t->host), "%s", host);
	else
		n = snprintf(t->host, sizeof(t->host), "%s.%s", t->bucket, host);
	if (n < 0 || (size_t)n >= sizeof(t->host))
		return lfsfs_error_set(-LFSFS_EPARSE, "S3 host name too long");
	if (t->ep.port) {
		size_t l = strlen(t->host);
		snprintf(t->host + l, sizeof(t->host) - l, ":%u", t->ep.port);
	}
	if (lfsfs_sigv4_uri_encode(t->key, 1, ekey, sizeof(ekey)) < 0)
		return lfsfs_error_set(-LFSFS_EPARSE, "S3 key too long");
	if (t->path_style)
		n = snprintf(t->path, sizeof(t->path), "%s/%s/%s", t->ep.base, t->bucket, ekey);
	else
		n = snprintf(t->path, sizeof(t->path), "%s/%s", t->ep.base, ekey);
	if (n < 0 || (size_t)n >= sizeof(t->path))
		return lfsfs_error_set(-LFSFS_EPARSE, "S3 request path too long");
	n = snprintf(t->url, sizeof(t->url), "%s://%s%s", t->ep.scheme, t->host, t->path);
	if (n < 0 || (size_t)n >= sizeof(t->url))
		return lfsfs_error_set(-LFSFS_EPARSE, "S3 request URL too long");
	return 0;
}

static int target_build(struct lfsfs_store *st, struct s3_state *s, const char *url,
			struct s3_target *t)
{
	int rc;

	memset(t, 0, sizeof(*t));
	if ((rc = s3_parse_url(url, t)))
		return rc;
	if ((rc = endpoint_pick(st->cfg, &t->ep)))
		return rc;
	region_pick(st, s, t);
	style_pick(st, t);
	return target_address(t);
}

/* Use region r (learned from the endpoint) for t and remember it. */
static int target_set_region(struct s3_state *s, struct s3_target *t, const char *r,
			     const char *how)
{
	region_cache_put(s, t->bucket, r, how);
	if (r != t->region)
		snprintf(t->region, sizeof(t->region), "%s", r);
	t->region_src = how;
	t->region_checked = 1;
	return target_address(t);
}

/* ------------------------------------------------------------ credentials */

struct s3_auth {
	struct lfsfs_aws_cred cred;
	int anon;               /* no credentials anywhere: unsigned requests */
	char tried[S3_TRIED_MAX];
};

/*
 * A credential from the chain, or anonymous access (a->anon, with the list
 * of sources tried) when no source has one.  "Nothing anywhere" is
 * remembered for S3_ANON_TTL seconds so that reads of a public bucket do
 * not walk the chain (metadata-service timeouts included) every time.
 */
static int auth_get(struct s3_state *s, struct s3_auth *a)
{
	struct lfsfs_buf tb = LFSFS_BUF_INIT(1 << 16);
	time_t now = time(NULL);
	int rc;

	memset(a, 0, sizeof(*a));
	if (__atomic_exchange_n(&s->invalidate, 0, __ATOMIC_ACQ_REL))
		lfsfs_aws_chain_invalidate(&s->chain);
	pthread_mutex_lock(&s->lock);
	if (now < s->anon_until) {
		a->anon = 1;
		snprintf(a->tried, sizeof(a->tried), "%s", s->anon_tried);
	}
	pthread_mutex_unlock(&s->lock);
	if (a->anon)
		return 0;
	rc = lfsfs_aws_chain_get(&s->chain, &a->cred, &tb);
	if (rc == -LFSFS_ECREDENTIALS_MISSING) {
		a->anon = 1;
		snprintf(a->tried, sizeof(a->tried), "%s",
			 tb.data && tb.len ? tb.data : "no source had credentials");
		pthread_mutex_lock(&s->lock);
		s->anon_until = now + S3_ANON_TTL;
		snprintf(s->anon_tried, sizeof(s->anon_tried), "%s", a->tried);
		pthread_mutex_unlock(&s->lock);
		lfsfs_error_clear();
		rc = 0;
	}
	lfsfs_buf_release(&tb);
	return rc;
}

static void auth_wipe(struct s3_auth *a)
{
	OPENSSL_cleanse(&a->cred, sizeof(a->cred));
}

/* Sign method for t with the extra (lowercase "name:value") headers and
 * append the signature headers to *hdrs.  Nothing for anonymous access. */
static int s3_sign(const struct s3_target *t, const char *method, const struct s3_auth *a,
		   const char *const *extra, struct curl_slist **hdrs)
{
	char (*out)[4096];
	struct lfsfs_sigv4_req r;
	int n, rc = 0;

	if (a->anon)
		return 0;
	out = malloc(S3_SIG_LINES * sizeof(*out));
	if (!out)
		return lfsfs_error_set(-ENOMEM, "out of memory");
	memset(&r, 0, sizeof(r));
	r.method = method;
	r.host = t->host;
	r.path = t->path;
	r.query = "";
	r.headers = extra;
	r.payload_hash = "UNSIGNED-PAYLOAD";
	r.region = t->region;
	r.service = "s3";
	r.now = time(NULL);
	n = lfsfs_sigv4_sign(&r, &a->cred, out, S3_SIG_LINES);
	if (n < 0) {
		rc = lfsfs_error_set(n, "cannot sign the S3 request for credentials from %s: %s",
				     a->cred.source, strerror(-n));
	} else {
		for (int i = 0; i < n; i++) {
			struct curl_slist *l = curl_slist_append(*hdrs, out[i]);
			if (!l) {
				rc = lfsfs_error_set(-ENOMEM, "out of memory");
				break;
			}
			*hdrs = l;
		}
	}
	OPENSSL_cleanse(out, S3_SIG_LINES * sizeof(*out));
	free(out);
	return rc;
}

/* ----------------------------------------------------------------- errors */

/* Copy the text of <tag>...</tag> from an XML error document (printable
 * ASCII only, truncated). */
static void xml_tag(const char *doc, const char *tag, char *out, size_t cap)
{
	char open[48], close[48];
	const char *s, *e;
	size_t o = 0;

	out[0] = '\0';
	if (!doc)
		return;
	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	if (!(s = strstr(doc, open)))
		return;
	s += strlen(open);
	if (!(e = strstr(s, close)))
		return;
	for (; s < e && o + 1 < cap; s++)
		out[o++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
	out[o] = '\0';
}

/* The region the endpoint says the bucket is in, "" if none. */
static void region_hint(const struct curl_slist *hdrs, const char *doc, char out[64])
{
	const char *v = lfsfs_http_header(hdrs, "x-amz-bucket-region");

	out[0] = '\0';
	if (v && *v)
		snprintf(out, 64, "%s", v);
	else
		xml_tag(doc, "Region", out, 64);
	if (out[0] && !region_valid(out))
		out[0] = '\0';
}

struct s3_outcome {
	long status;
	const char *doc;                /* error document, may be NULL */
	const struct curl_slist *hdrs;  /* response headers, may be NULL */
	const char *neterr;             /* the engine's detail */
	const char *if_match;           /* ETag sent, "" if none */
};

static int code_is(const char *code, const char *const *list)
{
	for (; *list; list++)
		if (!strcmp(code, *list))
			return 1;
	return 0;
}

/*
 * Turn a failed request into a precise message (no secrets) and the code
 * callers get.  May learn the bucket's region or flag the credential for
 * refresh; safe on the engine thread (only the region-cache mutex).
 */
static int s3_failure(struct s3_state *s, const struct s3_target *t, const struct s3_auth *a,
		      const struct s3_outcome *o, int rc, char *out, size_t cap)
{
	static const char *const rejected[] = { "SignatureDoesNotMatch", "InvalidAccessKeyId",
						"IncompleteSignature", "InvalidSecurity",
						"AuthorizationHeaderMalformed", "InvalidToken",
						"InvalidClientTokenId", NULL };
	static const char *const expired[] = { "ExpiredToken", "TokenRefreshRequired",
					       "ExpiredTokenException", NULL };
	char code[64], msg[200], hint[64], where[80];
	const char *src = a->anon ? "none (unsigned request)" : a->cred.source;
	long st = o->status;

	xml_tag(o->doc, "Code", code, sizeof(code));
	xml_tag(o->doc, "Message", msg, sizeof(msg));
	region_hint(o->hdrs, o->doc, hint);
	snprintf(where, sizeof(where), "%s", code[0] ? code : "no error document");

	if (rc == -LFSFS_EIMMUTABILITY || st == 412) {
		snprintf(out, cap, "the object changed at the origin: it no longer matches ETag %s "
			 "(HTTP 412 %s)", o->if_match && o->if_match[0] ? o->if_match : "?",
			 code[0] ? code : "PreconditionFailed");
		return -LFSFS_EIMMUTABILITY;
	}
	if (rc == -LFSFS_ESIZE_MISMATCH || rc == -LFSFS_EUNSUPPORTED || rc == -ENOSPC ||
	    rc == -EIO || rc == -ECANCELED || rc == -ENOMEM) {
		snprintf(out, cap, "%s", o->neterr);
		return rc;
	}
	if (st == 0) {
		snprintf(out, cap, "cannot reach the S3 endpoint %s://%s: %s", t->ep.scheme, t->host,
			 o->neterr);
		return rc ? rc : -LFSFS_ESOURCE_NOT_ACCESSIBLE;
	}
	if (hint[0] && strcmp(hint, t->region) && (st == 301 || st == 400 || st == 403)) {
		/* a retried request goes to the right region */
		region_cache_put(s, t->bucket, hint, "learned from the endpoint");
		log_info("s3: bucket '%s' is in region %s (requests were signed for %s from %s)",
			 t->bucket, hint, t->region, t->region_src);
		snprintf(out, cap, "bucket '%s' is in region %s, not %s (from %s) (HTTP %ld %s); "
			 "the next request uses %s: set lfsfs.s3.region = %s to start there",
			 t->bucket, hint, t->region, t->region_src, st, where, hint, hint);
		return -LFSFS_ESOURCE_NOT_ACCESSIBLE;
	}
	if (a->anon && (st == 401 || st == 403)) {
		/* the advice first: the list of sources can be long */
		snprintf(out, cap, "no AWS credentials were found and the unsigned (anonymous) "
			 "request was denied (HTTP %ld %s): set AWS_PROFILE or AWS_ACCESS_KEY_ID "
			 "and AWS_SECRET_ACCESS_KEY; tried: %s", st, where, a->tried);
		return -LFSFS_ECREDENTIALS_MISSING;
	}
	if (code[0] && code_is(code, rejected)) {
		snprintf(out, cap, "credentials from %s were rejected (%s): check the secret key / "
			 "AWS_PROFILE (access key %.4s...)", src, code, a->cred.access_key);
		return -LFSFS_ESOURCE_NOT_ACCESSIBLE;
	}
	if (code[0] && code_is(code, expired)) {
		__atomic_store_n(&s->invalidate, 1, __ATOMIC_RELEASE);
		snprintf(out, cap, "credentials from %s have expired (%s): they are fetched again "
			 "for the next request", src, code);
		return -LFSFS_ESOURCE_NOT_ACCESSIBLE;
	}
	if (!strcmp(code, "RequestTimeTooSkewed") || !strcmp(code, "RequestExpired")) {
		snprintf(out, cap, "the S3 endpoint rejected the request time (%s): the system "
			 "clock is more than 15 minutes off; fix it (NTP)", code);
		return -LFSFS_ESOURCE_NOT_ACCESSIBLE;
	}
	if (!strcmp(code, "NoSuchBucket")) {
		snprintf(out, cap, "bucket '%s' does not exist at %s://%s (HTTP %ld NoSuchBucket)",
			 t->bucket, t->ep.scheme, t->host, st);
		return -LFSFS_ESOURCE_NOT_ACCESSIBLE;
	}
	if (st == 404) {
		snprintf(out, cap, "no such object: key '%s' in bucket '%s' (HTTP 404 %s)", t->key,
			 t->bucket, code[0] ? code : "NoSuchKey");
		return -LFSFS_ESOURCE_NOT_ACCESSIBLE;
	}
	if (st == 401 || st == 403) {
		if (code[0])
			snprintf(out, cap, "access denied for credentials from %s (HTTP %ld %s%s%s): "
				 "the IAM or bucket policy must allow s3:GetObject on '%s'", src,
				 st, code, msg[0] ? ": " : "", msg, t->bucket);
		else
			snprintf(out, cap, "HTTP %ld for credentials from %s: the credentials were "
				 "rejected or access is denied; check the secret key / AWS_PROFILE "
				 "and the bucket policy", st, src);
		return -LFSFS_ESOURCE_NOT_ACCESSIBLE;
	}
	if (st == 301 || st == 307) {
		snprintf(out, cap, "the endpoint redirects requests for bucket '%s' (HTTP %ld %s); "
			 "set lfsfs.s3.region or lfsfs.s3.endpoint", t->bucket, st, where);
		return -LFSFS_ESOURCE_NOT_ACCESSIBLE;
	}
	if (code[0])
		snprintf(out, cap, "HTTP %ld %s%s%s", st, code, msg[0] ? ": " : "", msg);
	else
		snprintf(out, cap, "%s", o->neterr[0] ? o->neterr : "request failed");
	return rc ? rc : -LFSFS_ESOURCE_NOT_ACCESSIBLE;
}

/* ------------------------------------------------------------------ fetch */

struct s3_fetch_req {
	struct lfsfs_http_req http;
	struct lfsfs_fetch *f;
	struct s3_state *s;
	struct s3_auth auth;
	struct s3_target t;
};

static void s3_fetch_done(struct lfsfs_http_req *req, int rc)
{
	struct s3_fetch_req *r = req->ctx;
	struct lfsfs_fetch *f = r->f;

	snprintf(f->etag_seen, sizeof(f->etag_seen), "%s", req->etag);
	if (rc) {
		struct s3_outcome o = { req->status, req->errbody.data, req->resp_headers,
					req->error, req->if_match };
		rc = s3_failure(r->s, &r->t, &r->auth, &o, rc, f->error, sizeof(f->error));
	}
	curl_slist_free_all(req->headers);
	curl_slist_free_all(req->resp_headers);
	lfsfs_buf_release(&req->errbody);
	auth_wipe(&r->auth);
	free(r);
	f->priv = NULL;
	f->done(f, rc);
}

static int s3_head_target(struct lfsfs_store *st, struct s3_state *s, struct s3_target *t,
			  struct s3_auth *a, struct lfsfs_objmeta *out, char *err, size_t errcap);

/* Ask the endpoint once per bucket which region it is in (one HEAD; a
 * 301/400 naming another region is retried there), so that GETs are signed
 * for the right region even when none or a wrong one is configured. */
static void s3_discover(struct lfsfs_store *st, struct s3_state *s, struct s3_target *t,
			struct s3_auth *a)
{
	struct lfsfs_objmeta m;
	char err[512];

	memset(&m, 0, sizeof(m));
	if (s3_head_target(st, s, t, a, &m, err, sizeof(err))) {
		log_debug("s3: region discovery for bucket '%s': %s", t->bucket, err);
		if (!t->region_checked)   /* ask once per bucket, even on failure */
			region_cache_put(s, t->bucket, t->region, t->region_src);
	}
	lfsfs_error_clear();
}

static int s3_fetch(struct lfsfs_store *st, struct lfsfs_fetch *f)
{
	struct s3_state *s = s3_state(st);
	struct s3_fetch_req *r;
	char range[96], im[200];
	const char *extra[3];
	int rc, ne = 0;

	if (!s)
		return lfsfs_error_set(-ENOMEM, "out of memory");
	r = calloc(1, sizeof(*r));
	if (!r)
		return lfsfs_error_set(-ENOMEM, "out of memory");
	r->f = f;
	r->s = s;
	if ((rc = target_build(st, s, f->url, &r->t)))
		goto fail;
	if ((rc = auth_get(s, &r->auth)))
		goto fail;
	if (!r->t.region_checked)
		s3_discover(st, s, &r->t, &r->auth);

	r->http.method = LFSFS_HTTP_GET;
	r->http.url = r->t.url;
	r->http.range_start = f->off;
	r->http.range_len = f->len;
	r->http.expect_total = f->size;
	r->http.fd = f->fd;
	r->http.keep_headers = 1;       /* x-amz-bucket-region on errors */
	if (f->len) {
		snprintf(range, sizeof(range), "range:bytes=%" PRIu64 "-%" PRIu64, f->off,
			 f->off + f->len - 1);
		extra[ne++] = range;
	}
	/* A weak validator can never satisfy If-Match: send only strong ones. */
	if (f->etag[0] && strncmp(f->etag, "W/", 2)) {
		snprintf(r->http.if_match, sizeof(r->http.if_match), "%s", f->etag);
		snprintf(im, sizeof(im), "if-match:%s", f->etag);
		extra[ne++] = im;
	}
	extra[ne] = NULL;
	if ((rc = s3_sign(&r->t, "GET", &r->auth, extra, &r->http.headers)))
		goto fail;
	r->http.done = s3_fetch_done;
	r->http.ctx = r;
	f->priv = r;
	lfsfs_net_submit(st->net, &r->http);
	return 0;
fail:
	snprintf(f->error, sizeof(f->error), "%s", lfsfs_error_message());
	curl_slist_free_all(r->http.headers);
	auth_wipe(&r->auth);
	free(r);
	return rc;
}

/* ------------------------------------------------------------------- head */

static void b64_to_hex(const char *b64, size_t want, char *out, size_t cap)
{
	unsigned char raw[96];
	size_t l = b64 ? strlen(b64) : 0;
	int n;

	out[0] = '\0';
	if (!l || l > 88 || cap < 2 * want + 1)
		return;
	n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)l);
	if (n < (int)want)
		return;
	for (size_t i = 0; i < want; i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

static void meta_fill(const struct lfsfs_http_req *req, struct lfsfs_objmeta *out)
{
	const struct curl_slist *h = req->resp_headers;
	const char *v;
	size_t el;

	memset(out, 0, sizeof(*out));
	out->size = req->total;
	out->has_size = lfsfs_http_header(h, "Content-Length") != NULL;
	snprintf(out->etag, sizeof(out->etag), "%s", req->etag);
	/* single-part uploads: the ETag is the MD5 of the bytes */
	el = strlen(req->etag);
	if (el == 34 && req->etag[0] == '"' && req->etag[33] == '"') {
		int hex = 1;
		for (int i = 1; i < 33; i++)
			hex &= isxdigit((unsigned char)req->etag[i]) != 0;
		if (hex) {
			for (int i = 0; i < 32; i++)
				out->md5[i] = (char)tolower((unsigned char)req->etag[i + 1]);
			out->md5[32] = '\0';
		}
	}
	/* full-object SHA-256 only: composite (multipart) ones end in -N */
	v = lfsfs_http_header(h, "x-amz-checksum-sha256");
	if (v && !strchr(v, '-')) {
		const char *type = lfsfs_http_header(h, "x-amz-checksum-type");
		if (!type || strcasecmp(type, "COMPOSITE"))
			b64_to_hex(v, 32, out->sha256, sizeof(out->sha256));
	}
	if ((v = lfsfs_http_header(h, "x-amz-version-id")) && strcmp(v, "null"))
		snprintf(out->version, sizeof(out->version), "%s", v);
	if ((v = lfsfs_http_header(h, "Last-Modified")))
		snprintf(out->last_modified, sizeof(out->last_modified), "%s", v);
	if ((v = lfsfs_http_header(h, "Content-Type")))
		snprintf(out->content_type, sizeof(out->content_type), "%s", v);
}

static void req_release(struct lfsfs_http_req *req)
{
	curl_slist_free_all(req->headers);
	curl_slist_free_all(req->resp_headers);
	lfsfs_buf_release(&req->errbody);
	lfsfs_buf_release(&req->body);
	memset(req, 0, sizeof(*req));
}

/* One signed request on t (HEAD, or a 1-byte GET to read an error document). */
static int s3_request(struct lfsfs_store *st, const struct s3_target *t, const struct s3_auth *a,
		      int head, struct lfsfs_http_req *req)
{
	const char *extra[2] = { NULL, NULL };
	int rc;

	memset(req, 0, sizeof(*req));
	req->url = t->url;
	req->fd = -1;
	req->keep_headers = 1;
	req->max_attempts = 3;
	if (head) {
		req->method = LFSFS_HTTP_HEAD;
		/* ask for x-amz-checksum-sha256 (AWS sends it only when asked) */
		extra[0] = "x-amz-checksum-mode:ENABLED";
		if (!(req->headers = curl_slist_append(NULL, "x-amz-checksum-mode: ENABLED")))
			return -ENOMEM;
	} else {
		req->method = LFSFS_HTTP_GET;
		req->range_start = 0;
		req->range_len = 1;
		req->body.cap = 4096;
		extra[0] = "range:bytes=0-0";
	}
	if ((rc = s3_sign(t, head ? "HEAD" : "GET", a, extra, &req->headers)))
		return rc;
	return lfsfs_net_perform(st->net, req);
}

/*
 * HEAD t; on a region error retry once in the region the endpoint names.
 * A failed HEAD has no body, so for 301/400/401/403/404 a 1-byte GET
 * fetches the error document that says why (NoSuchBucket or NoSuchKey,
 * SignatureDoesNotMatch or AccessDenied, the bucket's region).  err gets
 * the message (without the code prefix).
 */
static int s3_head_target(struct lfsfs_store *st, struct s3_state *s, struct s3_target *t,
			  struct s3_auth *a, struct lfsfs_objmeta *out, char *err, size_t errcap)
{
	struct lfsfs_http_req req, diag;
	char hint[64];
	int rc;

	memset(&diag, 0, sizeof(diag));
	for (int attempt = 0;; attempt++) {
		rc = s3_request(st, t, a, 1, &req);
		if (!rc) {
			meta_fill(&req, out);
			if (!t->region_checked)
				target_set_region(s, t, t->region, t->region_src);
			req_release(&req);
			return 0;
		}
		if (rc == -ENOMEM) {
			req_release(&req);
			snprintf(err, errcap, "out of memory");
			return rc;
		}
		region_hint(req.resp_headers, NULL, hint);
		if (!hint[0] && (req.status == 301 || req.status == 400 || req.status == 401 ||
				 req.status == 403 || req.status == 404)) {
			req_release(&diag);
			s3_request(st, t, a, 0, &diag);
			region_hint(diag.resp_headers, diag.errbody.data, hint);
		}
		if (attempt == 0 && hint[0] && strcmp(hint, t->region)) {
			log_info("s3: bucket '%s' is in region %s (not %s from %s): retrying there",
				 t->bucket, hint, t->region, t->region_src);
			req_release(&req);
			req_release(&diag);
			if ((rc = target_set_region(s, t, hint, "learned from the endpoint")))
				return rc;
			continue;
		}
		{
			struct s3_outcome o = { req.status, diag.errbody.data,
						diag.resp_headers ? diag.resp_headers
								  : req.resp_headers,
						req.error, "" };
			if (diag.status && diag.status != req.status && diag.errbody.data)
				o.status = diag.status;
			rc = s3_failure(s, t, a, &o, rc, err, errcap);
		}
		req_release(&req);
		req_release(&diag);
		return rc;
	}
}

static int s3_head(struct lfsfs_store *st, const char *url, struct lfsfs_objmeta *out)
{
	struct s3_state *s = s3_state(st);
	struct s3_target *t;
	struct s3_auth *a;
	char err[768];
	int rc;

	if (!s)
		return lfsfs_error_set(-ENOMEM, "out of memory");
	t = malloc(sizeof(*t));
	a = malloc(sizeof(*a));
	if (!t || !a) {
		free(t);
		free(a);
		return lfsfs_error_set(-ENOMEM, "out of memory");
	}
	if (!(rc = target_build(st, s, url, t)) && !(rc = auth_get(s, a))) {
		rc = s3_head_target(st, s, t, a, out, err, sizeof(err));
		if (rc)
			lfsfs_error_set(rc, "%s: cannot read '%s': %s", lfsfs_code_name(rc), url,
					err);
		auth_wipe(a);
	}
	free(t);
	free(a);
	return rc;
}

/* ---------------------------------------------------------------- explain */

static int s3_explain(struct lfsfs_store *st, const char *url, struct lfsfs_buf *out)
{
	struct s3_state *s = s3_state(st);
	struct s3_target *t;
	struct s3_auth *a;
	int rc;

	if (!s)
		return lfsfs_error_set(-ENOMEM, "out of memory");
	t = malloc(sizeof(*t));
	a = malloc(sizeof(*a));
	if (!t || !a) {
		free(t);
		free(a);
		return lfsfs_error_set(-ENOMEM, "out of memory");
	}
	lfsfs_buf_printf(out, "backend: s3\n");
	if ((rc = target_build(st, s, url, t))) {
		lfsfs_buf_printf(out, "error: %s\nfix: use s3://bucket/key with a valid "
				 "lfsfs.s3.endpoint / AWS_ENDPOINT_URL_S3\n",
				 lfsfs_error_message());
		goto out;
	}
	lfsfs_buf_printf(out, "bucket: %s\nkey: %s\n", t->bucket, t->key);
	if (t->ep.custom) {
		char port[16] = "";
		if (t->ep.port)
			snprintf(port, sizeof(port), ":%u", t->ep.port);
		lfsfs_buf_printf(out, "endpoint: %s://%s%s%s (from %s)\n", t->ep.scheme, t->ep.host,
				 port, t->ep.base, t->ep.src);
	} else {
		lfsfs_buf_printf(out, "endpoint: AWS S3, %s://%s (%s)\n", t->ep.scheme, t->host,
				 t->ep.src);
	}
	lfsfs_buf_printf(out, "addressing: %s (%s)\n",
			 t->path_style ? "path-style" : "virtual-hosted", t->style_why);
	lfsfs_buf_printf(out, "region: %s (%s%s)\n", t->region,
			 strcmp(t->region_src, "default") ? "from " : "",
			 strcmp(t->region_src, "default") ? t->region_src :
			 "default: none configured; checked with the endpoint on first use");
	lfsfs_buf_printf(out, "request: %s\n", t->url);
	if ((rc = auth_get(s, a))) {
		lfsfs_buf_printf(out, "credentials: error: %s\nfix: repair that credential source "
				 "or set AWS_PROFILE / AWS_ACCESS_KEY_ID\n", lfsfs_error_message());
	} else if (a->anon) {
		lfsfs_buf_printf(out, "credentials: none (unsigned requests: public buckets only)\n"
				 "credentials tried: %s\nfix: for a private bucket set AWS_PROFILE "
				 "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY\n", a->tried);
	} else {
		lfsfs_buf_printf(out, "credentials: %s%s\n", a->cred.source,
				 a->cred.session_token[0] ? " (temporary, with session token)" : "");
		if (a->cred.expires) {
			char when[64];
			struct tm tm;
			gmtime_r(&a->cred.expires, &tm);
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
			lfsfs_buf_printf(out, "credentials expire: %s\n", when);
		}
	}
	auth_wipe(a);
out:
	free(t);
	free(a);
	return rc;
}

const struct lfsfs_store_ops lfsfs_store_s3 = {
	.name = "s3",
	.forms = "s3://bucket/key",
	.handles = s3_handles,
	.fetch = s3_fetch,
	.head = s3_head,
	.explain = s3_explain,
	.release = s3_release,
};
