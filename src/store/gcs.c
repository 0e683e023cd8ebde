/*
 * Google Cloud Storage backend (gs://bucket/object) over the JSON API:
 * metadata GET for head(), ranged media GETs (?alt=media) pinned to one
 * object generation with ifGenerationMatch.  Credentials come from
 * gcp_auth.c; see docs/GCS.md.
 *
 * The version pin.  GCS gives every write of an object a new generation
 * number; ifGenerationMatch=<g> makes a read fail with 412 once the object
 * was replaced.  The cache only compares ETag strings, so the generation
 * travels through f->etag / f->etag_seen, spelled the way GCS spells it:
 * the JSON API's etag, base64 of a protobuf {1: generation,
 * 2: metageneration} ("CKih16GjycICEAE="), which is also what head() and
 * `lfsfs doctor` report, so records written from them compare equal.
 *   f->etag ""         first fetch: no precondition; the generation is
 *                      learned from X-Goog-Generation (+ X-Goog-Metageneration)
 *                      -> etag_seen = that etag
 *   f->etag JSON etag  its generation is decoded: ifGenerationMatch=N
 *   f->etag "gen:N"    ifGenerationMatch=N (for hand-written records)
 *   f->etag other      e.g. an XML-API md5 ETag: matched once against the
 *                      object's metadata (etag, md5Hash) and the generation
 *                      remembered; then ifGenerationMatch=N
 * With a pin, etag_seen echoes f->etag while the generation matches (a
 * metadata-only update bumps the metageneration, not the bytes).
 * A 412, or a response for another generation, is IMMUTABILITY_VIOLATION.
 */
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "lfsfs/error.h"
#include "net/net.h"
#include "store/gcp_auth.h"
#include "util/config.h"
#include "util/log.h"

#define GCS_DEFAULT_ENDPOINT "https://storage.googleapis.com"
#define META_CAP (1 << 20)
#define NPINS 1024

/* Foreign validator -> generation, learned from a metadata lookup. */
struct gcs_pin {
	uint64_t url_hash;
	char etag[160];
	uint64_t gen;
};

struct gcs_state {
	struct lfsfs_gcp_auth auth;
	char endpoint[512];         /* no trailing slash */
	char endpoint_src[64];      /* where it came from, for explain() */
	int emulator;               /* STORAGE_EMULATOR_HOST set */
	pthread_mutex_t lock;       /* protects pins */
	struct gcs_pin pins[NPINS]; /* direct-mapped by url hash */
};

/* One media GET in flight. */
struct gcs_req {
	struct lfsfs_http_req req;  /* first: done() gets &req */
	struct lfsfs_fetch *f;
	struct gcs_state *s;
	struct lfsfs_buf url;
	struct curl_slist *hdrs;
	uint64_t gen;               /* ifGenerationMatch sent, 0 = none */
	uint64_t tok_hash;
	int anonymous;
	char source[512];
	char tried[768];
};

static uint64_t fnv64(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

/* ------------------------------------------------------------------ URLs */

static int gcs_handles(const char *url)
{
	return !strncasecmp(url, "gs://", 5);
}

int lfsfs_gcs_parse_url(const char *url, char *bucket, size_t bcap, char **object)
{
	const char *b, *slash;
	size_t bl;

	*object = NULL;
	if (strncasecmp(url, "gs://", 5))
		return lfsfs_error_set(-LFSFS_EPARSE, "'%s' is not a gs:// URL", url);
	b = url + 5;
	slash = strchr(b, '/');
	if (!slash || slash == b || !slash[1])
		return lfsfs_error_set(-LFSFS_EPARSE, "'%s': expected gs://bucket/object", url);
	bl = (size_t)(slash - b);
	if (bl < 3 || bl > 222 || bl >= bcap)
		return lfsfs_error_set(-LFSFS_EPARSE, "'%s': a bucket name has 3 to 222 characters",
				       url);
	for (size_t i = 0; i < bl; i++) {
		char c = b[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return lfsfs_error_set(-LFSFS_EPARSE, "'%s': invalid bucket name", url);
	}
	if (strlen(slash + 1) > 1024 || strpbrk(slash + 1, "\r\n"))
		return lfsfs_error_set(-LFSFS_EPARSE, "'%s': invalid object name (at most 1024 "
				       "bytes, no CR/LF)", url);
	memcpy(bucket, b, bl);
	bucket[bl] = '\0';
	*object = strdup(slash + 1);
	return *object ? 0 : -ENOMEM;
}

int lfsfs_gcs_encode(const char *s, struct lfsfs_buf *out)
{
	static const char hex[] = "0123456789ABCDEF";
	int rc;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' ||
		    *p == '~') {
			rc = lfsfs_buf_append(out, p, 1);
		} else {
			char e[3] = { '%', hex[*p >> 4], hex[*p & 15] };
			rc = lfsfs_buf_append(out, e, 3);
		}
		if (rc)
			return rc;
	}
	return 0;
}

/* {endpoint}/storage/v1/b/{bucket}/o/{object} */
static int object_url(const struct gcs_state *s, const char *bucket, const char *object,
		      struct lfsfs_buf *out)
{
	int rc;

	if ((rc = lfsfs_buf_appends(out, s->endpoint)) ||
	    (rc = lfsfs_buf_appends(out, "/storage/v1/b/")) ||
	    (rc = lfsfs_gcs_encode(bucket, out)) || (rc = lfsfs_buf_appends(out, "/o/")))
		return rc;
	return lfsfs_gcs_encode(object, out);
}

/* ----------------------------------------------------------------- state */

static void *gcs_create(struct lfsfs_store *st)
{
	struct gcs_state *s = calloc(1, sizeof(*s));
	const char *cfg = lfsfs_config_get(st->cfg, "lfsfs.gcs.endpoint");
	const char *emu = getenv("STORAGE_EMULATOR_HOST");
	const char *ep;
	size_t l;

	if (!s)
		return NULL;
	s->emulator = emu && *emu;
	if (cfg && *cfg) {
		ep = cfg;
		snprintf(s->endpoint_src, sizeof(s->endpoint_src), "lfsfs.gcs.endpoint");
	} else if (s->emulator) {
		ep = emu;
		snprintf(s->endpoint_src, sizeof(s->endpoint_src), "STORAGE_EMULATOR_HOST");
	} else {
		ep = GCS_DEFAULT_ENDPOINT;
		snprintf(s->endpoint_src, sizeof(s->endpoint_src), "default");
	}
	/* "host:port" means plain http, as Google's clients read the emulator variable */
	snprintf(s->endpoint, sizeof(s->endpoint), "%s%s", strstr(ep, "://") ? "" : "http://", ep);
	l = strlen(s->endpoint);
	while (l > 0 && s->endpoint[l - 1] == '/')
		s->endpoint[--l] = '\0';
	pthread_mutex_init(&s->lock, NULL);
	lfsfs_gcp_auth_init(&s->auth, st->net, s->emulator);
	log_debug("gcs: endpoint %s (%s)", s->endpoint, s->endpoint_src);
	return s;
}

static void gcs_release(void *p)
{
	struct gcs_state *s = p;

	if (!s)
		return;
	lfsfs_gcp_auth_release(&s->auth);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

extern const struct lfsfs_store_ops lfsfs_store_gcs;

static struct gcs_state *state_of(struct lfsfs_store *st)
{
	return lfsfs_store_state(st, &lfsfs_store_gcs, gcs_create);
}

/* ---------------------------------------------------------------- errors */

/* The message of a GCS JSON error document {"error": {"code", "message"}}. */
static void gcs_error_message(const struct lfsfs_buf *eb, char *out, size_t cap)
{
	cJSON *j = eb->data ? cJSON_Parse(eb->data) : NULL;
	const cJSON *e = j ? cJSON_GetObjectItemCaseSensitive(j, "error") : NULL;
	const cJSON *m = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "message") : NULL;

	out[0] = '\0';
	if (cJSON_IsString(m))
		snprintf(out, cap, "%s", m->valuestring);
	else if (cJSON_IsString(e))
		snprintf(out, cap, "%s", e->valuestring);
	for (char *p = out; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	cJSON_Delete(j);
}

/*
 * Turn a failed request into the store.h vocabulary; msg gets the detail.
 * Runs on the engine thread for fetches: no locks but the auth's short one.
 */
static int map_error(int rc, const struct lfsfs_http_req *req, const char *url, uint64_t gen,
		     int anonymous, const char *source, const char *tried, char *msg, size_t cap)
{
	char gm[300];

	gcs_error_message(&req->errbody, gm, sizeof(gm));
	if (rc == -LFSFS_EIMMUTABILITY || req->status == 412) {
		snprintf(msg, cap, "generation changed: '%s' is no longer generation %" PRIu64
			 " (ifGenerationMatch failed, HTTP 412): the object was replaced", url, gen);
		return -LFSFS_EIMMUTABILITY;
	}
	if (req->status == 401 || req->status == 403) {
		if (anonymous) {
			/* the fix first: the cache's log line has room for ~350 bytes */
			if (strlen(gm) > 90)
				snprintf(gm + 84, sizeof(gm) - 84, " [...]");
			snprintf(msg, cap, "no Google credentials (HTTP %ld%s%s); fix: set "
				 "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file or "
				 "run `gcloud auth application-default login`; tried: %s",
				 req->status, gm[0] ? ": " : "", gm, tried);
			return -LFSFS_ECREDENTIALS_MISSING;
		}
		snprintf(msg, cap, "HTTP %ld with the credentials of %s%s%s; fix: grant it "
			 "storage.objects.get on the bucket (roles/storage.objectViewer)",
			 req->status, source, gm[0] ? ": " : "", gm);
		return -LFSFS_ESOURCE_NOT_ACCESSIBLE;
	}
	if (req->status == 404) {
		snprintf(msg, cap, "HTTP 404%s%s: no such bucket or object", gm[0] ? ": " : "", gm);
		return -LFSFS_ESOURCE_NOT_ACCESSIBLE;
	}
	snprintf(msg, cap, "%s%s%s", req->error, gm[0] ? ": " : "", gm);
	return rc;
}

/* ------------------------------------------------------------- metadata */

/* base64 (standard alphabet, padding optional) -> bytes; -1 if invalid. */
static int b64_decode(const char *in, unsigned char *out, size_t cap)
{
	char tmp[256];
	size_t l = strlen(in);
	int n, pad = 0;

	if (!l || l + 4 >= sizeof(tmp))
		return -1;
	memcpy(tmp, in, l);
	while (l % 4)
		tmp[l++] = '=';
	tmp[l] = '\0';
	for (size_t i = l; i > 0 && tmp[i - 1] == '='; i--)
		pad++;
	if (cap < l / 4 * 3)
		return -1;
	n = EVP_DecodeBlock(out, (const unsigned char *)tmp, (int)l);
	return n < 0 ? -1 : n - pad;
}

/* md5Hash (base64 of 16 bytes) -> hex. */
static void md5_b64_hex(const char *b64, char out[33])
{
	unsigned char raw[64];

	out[0] = '\0';
	if (!b64 || b64_decode(b64, raw, sizeof(raw)) != 16)
		return;
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

/*
 * The generation inside a JSON-API etag: base64 of a protobuf
 * {1: generation, 2: metageneration} (e.g. "CJ2tq5fo9/8CEAE=").  0 if the
 * string is not exactly that.
 */
static uint64_t etag_generation(const char *etag)
{
	unsigned char raw[64];
	char e[160];
	uint64_t v[2] = { 0, 0 };
	size_t l, i = 0;
	int n;

	snprintf(e, sizeof(e), "%s", etag);
	l = strlen(e);
	if (l >= 2 && e[0] == '"' && e[l - 1] == '"') {
		memmove(e, e + 1, l - 2);
		e[l - 2] = '\0';
	}
	n = b64_decode(e, raw, sizeof(raw));
	if (n < 4)
		return 0;
	for (int field = 1; field <= 2; field++) {
		int shift = 0;
		if (i >= (size_t)n || raw[i] != (unsigned char)(field << 3))
			return 0;
		i++;
		for (;;) {
			if (i >= (size_t)n || shift > 63)
				return 0;
			v[field - 1] |= (uint64_t)(raw[i] & 0x7f) << shift;
			shift += 7;
			if (!(raw[i++] & 0x80))
				break;
		}
	}
	return i == (size_t)n ? v[0] : 0;
}

/* The JSON API etag for (generation, metageneration). */
static void etag_make(uint64_t gen, uint64_t metagen, char *out, size_t cap)
{
	unsigned char pb[32], b64[48];
	size_t n = 0;
	uint64_t v[2] = { gen, metagen };

	for (int field = 1; field <= 2; field++) {
		pb[n++] = (unsigned char)(field << 3);
		do {
			pb[n] = (unsigned char)(v[field - 1] & 0x7f);
			v[field - 1] >>= 7;
			pb[n++] |= v[field - 1] ? 0x80 : 0;
		} while (v[field - 1]);
	}
	EVP_EncodeBlock(b64, pb, (int)n);
	snprintf(out, cap, "%s", (const char *)b64);
}

/* Fill out from a metadata JSON document; *gen gets the generation. */
static int parse_meta(const char *body, struct lfsfs_objmeta *out, uint64_t *gen)
{
	cJSON *j = cJSON_Parse(body ? body : "");
	const cJSON *v;
	int rc = 0;

	if (!cJSON_IsObject(j)) {
		rc = -1;
		goto out;
	}
#define STR(k) ((v = cJSON_GetObjectItemCaseSensitive(j, k)) && cJSON_IsString(v) ? \
		v->valuestring : NULL)
	if (STR("size")) {
		char *end;
		out->size = strtoull(v->valuestring, &end, 10);
		out->has_size = end != v->valuestring && !*end;
	} else if (v && cJSON_IsNumber(v) && v->valuedouble >= 0) {
		out->size = (uint64_t)v->valuedouble;
		out->has_size = 1;
	}
	if (STR("generation")) {
		snprintf(out->version, sizeof(out->version), "%s", v->valuestring);
		*gen = strtoull(v->valuestring, NULL, 10);
	} else if (v && cJSON_IsNumber(v)) {
		snprintf(out->version, sizeof(out->version), "%.0f", v->valuedouble);
		*gen = (uint64_t)v->valuedouble;
	}
	if (STR("etag"))
		snprintf(out->etag, sizeof(out->etag), "%s", v->valuestring);
	md5_b64_hex(STR("md5Hash"), out->md5);
	if (STR("crc32c"))
		snprintf(out->crc32c, sizeof(out->crc32c), "%s", v->valuestring);
	if (STR("updated"))
		snprintf(out->last_modified, sizeof(out->last_modified), "%s", v->valuestring);
	if (STR("contentType"))
		snprintf(out->content_type, sizeof(out->content_type), "%s", v->valuestring);
#undef STR
	if (!out->has_size || !*gen)
		rc = -1;
out:
	cJSON_Delete(j);
	return rc;
}

/* Add the Authorization header (if any) to *hdrs; clears the local copy. */
static int add_auth(struct gcs_state *s, struct curl_slist **hdrs, uint64_t *tok_hash,
		    int *anonymous, char *source, size_t scap, char *tried, size_t tcap)
{
	char tok[4096], line[4200];
	int rc;

	rc = lfsfs_gcp_auth_token(&s->auth, tok, sizeof(tok), tok_hash, source, scap, tried, tcap);
	if (rc)
		return rc;
	*anonymous = !tok[0];
	if (tok[0]) {
		struct curl_slist *n;
		snprintf(line, sizeof(line), "Authorization: Bearer %s", tok);
		n = curl_slist_append(*hdrs, line);
		OPENSSL_cleanse(line, sizeof(line));
		OPENSSL_cleanse(tok, sizeof(tok));
		if (!n)
			return -ENOMEM;
		*hdrs = n;
	}
	return 0;
}

static void free_hdrs(struct curl_slist *h)
{
	for (struct curl_slist *p = h; p; p = p->next)
		OPENSSL_cleanse(p->data, strlen(p->data));
	curl_slist_free_all(h);
}

/* Synchronous metadata GET; *gen gets the generation. */
static int meta_get(struct gcs_state *s, const char *url, struct lfsfs_objmeta *out,
		    uint64_t *gen)
{
	struct lfsfs_http_req req;
	struct lfsfs_buf u = LFSFS_BUF_INIT(0);
	struct curl_slist *hdrs = NULL;
	char bucket[256], source[512], tried[768], msg[1000], *object = NULL;
	uint64_t tok_hash = 0;
	int anonymous = 0, rc;

	memset(&req, 0, sizeof(req));
	*gen = 0;
	if ((rc = lfsfs_gcs_parse_url(url, bucket, sizeof(bucket), &object)))
		goto out;
	if ((rc = object_url(s, bucket, object, &u)))
		goto out;
	for (int attempt = 0;; attempt++) {
		free_hdrs(hdrs);
		hdrs = NULL;
		rc = add_auth(s, &hdrs, &tok_hash, &anonymous, source, sizeof(source), tried,
			      sizeof(tried));
		if (rc)
			goto out;
		hdrs = curl_slist_append(hdrs, "Accept: application/json");
		req.method = LFSFS_HTTP_GET;
		req.url = u.data;
		req.headers = hdrs;
		req.fd = -1;
		req.body.cap = META_CAP;
		rc = lfsfs_net_perform(s->auth.net, &req);
		if (!rc)
			break;
		if (req.status == 401 && !anonymous) {
			/* revoked or expired early: once more with a new token */
			lfsfs_gcp_auth_invalidate(&s->auth, tok_hash);
			if (attempt == 0)
				continue;
		}
		rc = map_error(rc, &req, url, 0, anonymous, source, tried, msg, sizeof(msg));
		lfsfs_error_set(rc, "metadata GET: %s", msg);
		goto out;
	}
	if (parse_meta(req.body.data, out, gen)) {
		rc = lfsfs_error_set(-LFSFS_ESOURCE_NOT_ACCESSIBLE, "the metadata from %s has "
				     "no size or generation", s->endpoint);
		goto out;
	}
out:
	free_hdrs(hdrs);
	curl_slist_free_all(req.resp_headers);
	lfsfs_buf_release(&req.errbody);
	lfsfs_buf_release(&req.body);
	lfsfs_buf_release(&u);
	free(object);
	return rc;
}

static int gcs_head(struct lfsfs_store *st, const char *url, struct lfsfs_objmeta *out)
{
	struct gcs_state *s = state_of(st);
	char msg[1024];
	uint64_t gen;
	int rc;

	if (!s)
		return lfsfs_error_set(-ENOMEM, "out of memory");
	rc = meta_get(s, url, out, &gen);
	if (rc) {
		snprintf(msg, sizeof(msg), "%s", lfsfs_error_message());
		lfsfs_error_set(rc, "%s: cannot read '%s': %s", lfsfs_code_name(rc), url, msg);
	}
	return rc;
}

/* ----------------------------------------------------------- the pin */

static void strip_quotes(const char *in, char *out, size_t cap)
{
	size_t l;

	if (!strncmp(in, "W/", 2))
		in += 2;
	snprintf(out, cap, "%s", in);
	l = strlen(out);
	if (l >= 2 && out[0] == '"' && out[l - 1] == '"') {
		memmove(out, out + 1, l - 2);
		out[l - 2] = '\0';
	}
}

/* A record's validator for the object now described by m? */
static int validator_matches(const char *want, const struct lfsfs_objmeta *m, uint64_t gen)
{
	char w[160], e[160];

	strip_quotes(want, w, sizeof(w));
	strip_quotes(m->etag, e, sizeof(e));
	if (w[0] && !strcmp(w, e))
		return 1;
	if (m->md5[0] && !strcasecmp(w, m->md5))
		return 1;
	return etag_generation(w) == gen && gen;
}

/*
 * The generation to send for f, or 0 for "learn it".  May do one metadata
 * GET (reader thread) for a validator that does not carry a generation.
 */
static int pin_for(struct gcs_state *s, struct lfsfs_fetch *f, uint64_t *gen)
{
	struct lfsfs_objmeta m;
	struct gcs_pin *p;
	uint64_t h, g = 0;
	char *end;
	int rc;

	*gen = 0;
	if (!f->etag[0])
		return 0;
	if (!strncmp(f->etag, "gen:", 4)) {
		*gen = strtoull(f->etag + 4, &end, 10);
		if (!*gen || *end)
			return lfsfs_error_set(-LFSFS_EPARSE, "bad generation pin '%s'", f->etag);
		return 0;
	}
	if ((*gen = etag_generation(f->etag)))
		return 0;
	h = fnv64(f->url);
	p = &s->pins[h % NPINS];
	pthread_mutex_lock(&s->lock);
	if (p->url_hash == h && !strcmp(p->etag, f->etag))
		g = p->gen;
	pthread_mutex_unlock(&s->lock);
	if (g) {
		*gen = g;
		return 0;
	}
	memset(&m, 0, sizeof(m));
	if ((rc = meta_get(s, f->url, &m, &g)))
		return rc;
	if (!validator_matches(f->etag, &m, g))
		return lfsfs_error_set(-LFSFS_EIMMUTABILITY, "generation changed: the record pins "
				       "'%s' to ETag %s, but the object is now generation %" PRIu64
				       " (etag %s, md5 %s): it was replaced", f->url, f->etag, g,
				       m.etag, m.md5[0] ? m.md5 : "unknown");
	pthread_mutex_lock(&s->lock);
	p->url_hash = h;
	snprintf(p->etag, sizeof(p->etag), "%s", f->etag);
	p->gen = g;
	pthread_mutex_unlock(&s->lock);
	*gen = g;
	return 0;
}

/* ---------------------------------------------------------------- fetch */

static void gcs_finish(struct gcs_req *g, int rc)
{
	struct lfsfs_fetch *f = g->f;

	free_hdrs(g->hdrs);
	curl_slist_free_all(g->req.resp_headers);
	lfsfs_buf_release(&g->req.errbody);
	lfsfs_buf_release(&g->url);
	free(g);
	f->priv = NULL;
	f->done(f, rc);
}

/* The request headers: Authorization (unless anonymous) and Accept-Encoding. */
static int gcs_headers(struct gcs_req *g)
{
	struct curl_slist *n;
	int rc;

	free_hdrs(g->hdrs);
	g->hdrs = NULL;
	rc = add_auth(g->s, &g->hdrs, &g->tok_hash, &g->anonymous, g->source, sizeof(g->source),
		      g->tried, sizeof(g->tried));
	if (rc)
		return rc;
	/* serve gzip-encoded objects as stored, so Range applies to the stored bytes */
	n = curl_slist_append(g->hdrs, "Accept-Encoding: gzip");
	if (!n)
		return -ENOMEM;
	g->hdrs = n;
	g->req.headers = g->hdrs;
	return 0;
}

static void gcs_done(struct lfsfs_http_req *req, int rc)
{
	struct gcs_req *g = (struct gcs_req *)req;
	struct lfsfs_fetch *f = g->f;
	const char *gh = lfsfs_http_header(req->resp_headers, "X-Goog-Generation");
	const char *mh = lfsfs_http_header(req->resp_headers, "X-Goog-Metageneration");
	uint64_t seen = gh ? strtoull(gh, NULL, 10) : 0;
	uint64_t metagen = mh ? strtoull(mh, NULL, 10) : 0;

	if (rc && req->status == 401 && !g->anonymous) {
		/* A token that looked valid was refused (revoked, or expired
		 * early): drop it and let the cache send the request again from
		 * a reader thread, where getting a new token may block. */
		lfsfs_gcp_auth_invalidate(&g->s->auth, g->tok_hash);
		snprintf(f->error, sizeof(f->error), "HTTP 401 with a cached token for '%s'; "
			 "retrying with a new one", f->url);
		gcs_finish(g, -LFSFS_ERETRY_AUTH);
		return;
	}
	if (!rc) {
		if (g->gen && seen && seen != g->gen) {
			/* a server that ignored ifGenerationMatch */
			snprintf(f->error, sizeof(f->error), "generation changed: '%s' served "
				 "generation %" PRIu64 ", pinned %" PRIu64, f->url, seen, g->gen);
			rc = -LFSFS_EIMMUTABILITY;
		} else if (g->gen) {
			snprintf(f->etag_seen, sizeof(f->etag_seen), "%s", f->etag);
		} else if (seen) {
			etag_make(seen, metagen ? metagen : 1, f->etag_seen, sizeof(f->etag_seen));
		} else {
			/* no generation header: fall back to the plain ETag */
			snprintf(f->etag_seen, sizeof(f->etag_seen), "%s", req->etag);
		}
	} else {
		rc = map_error(rc, req, f->url, g->gen, g->anonymous, g->source, g->tried,
			       f->error, sizeof(f->error));
		if (req->status == 401 && !g->anonymous)
			lfsfs_gcp_auth_invalidate(&g->s->auth, g->tok_hash);
	}
	gcs_finish(g, rc);
}

static int gcs_fetch(struct lfsfs_store *st, struct lfsfs_fetch *f)
{
	struct gcs_state *s = state_of(st);
	struct gcs_req *g = NULL;
	char bucket[256], *object = NULL, q[64];
	int rc;

	if (!s)
		return -ENOMEM;
	if ((rc = lfsfs_gcs_parse_url(f->url, bucket, sizeof(bucket), &object)))
		goto fail;
	g = calloc(1, sizeof(*g));
	if (!g) {
		rc = -ENOMEM;
		goto fail;
	}
	g->f = f;
	g->s = s;
	if ((rc = pin_for(s, f, &g->gen)))
		goto fail;
	if ((rc = object_url(s, bucket, object, &g->url)))
		goto fail;
	if (g->gen)
		snprintf(q, sizeof(q), "?alt=media&ifGenerationMatch=%" PRIu64, g->gen);
	else
		snprintf(q, sizeof(q), "?alt=media");
	if ((rc = lfsfs_buf_appends(&g->url, q)))
		goto fail;
	if ((rc = gcs_headers(g)))
		goto fail;
	g->req.method = LFSFS_HTTP_GET;
	g->req.url = g->url.data;
	g->req.range_start = f->off;
	g->req.range_len = f->len;
	g->req.expect_total = f->size;
	g->req.fd = f->fd;
	g->req.keep_headers = 1;
	g->req.done = gcs_done;
	g->req.ctx = f;
	f->priv = g;
	free(object);
	lfsfs_net_submit(st->net, &g->req);
	return 0;
fail:
	/* lfsfs_store_fetch() copies the thread's message into f->error */
	if (g) {
		free_hdrs(g->hdrs);
		lfsfs_buf_release(&g->url);
		free(g);
	}
	free(object);
	return rc;
}

/* -------------------------------------------------------------- explain */

static int gcs_explain(struct lfsfs_store *st, const char *url, struct lfsfs_buf *out)
{
	struct gcs_state *s = state_of(st);
	struct lfsfs_buf u = LFSFS_BUF_INIT(0);
	char bucket[256], *object = NULL;
	int rc;

	if (!s)
		return -ENOMEM;
	lfsfs_buf_printf(out, "backend: gcs\n");
	lfsfs_buf_printf(out, "endpoint: %s (%s)\n", s->endpoint, s->endpoint_src);
	rc = lfsfs_gcs_parse_url(url, bucket, sizeof(bucket), &object);
	if (rc) {
		lfsfs_buf_printf(out, "problem: %s\nfix: write the URL as gs://bucket/object\n",
				 lfsfs_error_message());
		return rc;
	}
	if (!object_url(s, bucket, object, &u))
		lfsfs_buf_printf(out, "bucket: %s\nobject: %s\nmetadata URL: %s\n", bucket, object,
				 u.data);
	lfsfs_buf_release(&u);
	free(object);
	return lfsfs_gcp_auth_explain(&s->auth, out);
}

const struct lfsfs_store_ops lfsfs_store_gcs = {
	.name = "gcs",
	.forms = "gs://bucket/object",
	.handles = gcs_handles,
	.fetch = gcs_fetch,
	.head = gcs_head,
	.explain = gcs_explain,
	.release = gcs_release,
};
