/* Google credentials for gcs: the ADC chain, OAuth2 tokens, service-account JWTs. */
#include "store/gcp_auth.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "lfsfs/error.h"
#include "net/net.h"
#include "util/log.h"

#define TOKEN_BODY_CAP (256 * 1024)
#define FAIL_HOLD_S 5
#define ANON_HOLD_S 30

enum cred_type { CRED_SERVICE_ACCOUNT = 1, CRED_AUTHORIZED_USER };

/* A parsed credential file.  Secrets are malloc'ed and cleansed on release. */
struct gcp_cred {
	enum cred_type type;
	char email[256];
	char key_id[128];
	char client_id[256];
	char token_uri[512];
	char *private_key;
	char *client_secret;
	char *refresh_token;
	char where[640];            /* "GOOGLE_APPLICATION_CREDENTIALS=/p" / "gcloud ADC file /p" */
};

/* The outcome of walking the chain once. */
struct acquired {
	char token[4096];
	int64_t lifetime;
	int anonymous;
	char source[512];
	char token_uri[512];
	char tried[768];
};

/* ------------------------------------------------------------ small helpers */

static uint64_t fnv64(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static void free_secret(char **p)
{
	if (*p) {
		OPENSSL_cleanse(*p, strlen(*p));
		free(*p);
		*p = NULL;
	}
}

static void cred_release(struct gcp_cred *c)
{
	free_secret(&c->private_key);
	free_secret(&c->client_secret);
	free_secret(&c->refresh_token);
}

static void appendf(char *dst, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void appendf(char *dst, size_t cap, const char *fmt, ...)
{
	size_t l = strlen(dst);
	va_list ap;

	if (l + 1 >= cap)
		return;
	va_start(ap, fmt);
	vsnprintf(dst + l, cap - l, fmt, ap);
	va_end(ap);
}

size_t lfsfs_b64url_encode(const void *in, size_t n, char *out, size_t cap)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const unsigned char *p = in;
	size_t o = 0, i;

	if (cap < 4 * ((n + 2) / 3) + 1) {
		if (cap)
			out[0] = '\0';
		return 0;
	}
	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = tab[v >> 6 & 63];
		out[o++] = tab[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = tab[v >> 6 & 63];
	}
	out[o] = '\0';
	return o;
}

/* Append b64url(s) to b. */
static int buf_b64url(struct lfsfs_buf *b, const void *s, size_t n)
{
	size_t need = 4 * ((n + 2) / 3) + 1;
	char *tmp = malloc(need);
	int rc;

	if (!tmp)
		return -ENOMEM;
	lfsfs_b64url_encode(s, n, tmp, need);
	rc = lfsfs_buf_appends(b, tmp);
	free(tmp);
	return rc;
}

/* Never prompt on a terminal for an encrypted key: a daemon has none. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
	return 0;
}

int lfsfs_gcp_jwt_sign(const char *client_email, const char *key_id, const char *pem_key,
		       const char *aud, const char *scope, int64_t iat, char **out)
{
	struct lfsfs_buf jwt = LFSFS_BUF_INIT(0);
	cJSON *hdr = NULL, *claims = NULL;
	char *hs = NULL, *cs = NULL, num[32];
	unsigned char *sig = NULL;
	size_t siglen = 0;
	EVP_PKEY *pkey = NULL;
	EVP_MD_CTX *md = NULL;
	BIO *bio = NULL;
	int rc = -ENOMEM;

	*out = NULL;
	bio = BIO_new_mem_buf(pem_key, -1);
	if (!bio)
		goto out;
	pkey = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
	if (!pkey || EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA) {
		rc = lfsfs_error_set(-LFSFS_EPARSE, "private_key is not a PEM RSA private key");
		goto out;
	}
	hdr = cJSON_CreateObject();
	claims = cJSON_CreateObject();
	if (!hdr || !claims)
		goto out;
	cJSON_AddStringToObject(hdr, "alg", "RS256");
	cJSON_AddStringToObject(hdr, "typ", "JWT");
	if (key_id && *key_id)
		cJSON_AddStringToObject(hdr, "kid", key_id);
	cJSON_AddStringToObject(claims, "iss", client_email);
	cJSON_AddStringToObject(claims, "scope", scope);
	cJSON_AddStringToObject(claims, "aud", aud);
	/* integers exactly, not through a double */
	snprintf(num, sizeof(num), "%" PRId64, iat);
	cJSON_AddRawToObject(claims, "iat", num);
	snprintf(num, sizeof(num), "%" PRId64, iat + 3600);
	cJSON_AddRawToObject(claims, "exp", num);
	hs = cJSON_PrintUnformatted(hdr);
	cs = cJSON_PrintUnformatted(claims);
	if (!hs || !cs)
		goto out;
	if (buf_b64url(&jwt, hs, strlen(hs)) || lfsfs_buf_appends(&jwt, ".") ||
	    buf_b64url(&jwt, cs, strlen(cs)))
		goto out;
	md = EVP_MD_CTX_new();
	if (!md)
		goto out;
	if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey) != 1 ||
	    EVP_DigestSign(md, NULL, &siglen, (const unsigned char *)jwt.data, jwt.len) != 1 ||
	    !(sig = malloc(siglen)) ||
	    EVP_DigestSign(md, sig, &siglen, (const unsigned char *)jwt.data, jwt.len) != 1) {
		rc = lfsfs_error_set(-LFSFS_EPARSE, "cannot sign with private_key (RSA-SHA256)");
		goto out;
	}
	if (lfsfs_buf_appends(&jwt, ".") || buf_b64url(&jwt, sig, siglen))
		goto out;
	*out = lfsfs_buf_detach(&jwt);
	rc = 0;
out:
	lfsfs_buf_release(&jwt);
	free(sig);
	cJSON_free(hs);
	cJSON_free(cs);
	cJSON_Delete(hdr);
	cJSON_Delete(claims);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	return rc;
}

/* -------------------------------------------------------- credential files */

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* Parse the JSON credential file at path; on failure fill why. */
static int cred_load(const char *path, const char *where, struct gcp_cred *c, char *why,
		     size_t wcap)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(1 << 20);
	const char *type, *v;
	cJSON *j = NULL;
	int rc;

	memset(c, 0, sizeof(*c));
	snprintf(c->where, sizeof(c->where), "%s", where);
	if ((rc = lfsfs_buf_read_file(&b, path))) {
		snprintf(why, wcap, "cannot read '%s': %s", path, strerror(-rc));
		rc = -1;
		goto out;
	}
	j = cJSON_Parse(b.data);
	rc = -1;
	if (!cJSON_IsObject(j)) {
		snprintf(why, wcap, "'%s' is not a JSON object", path);
		goto out;
	}
	type = jstr(j, "type");
	if (!type) {
		snprintf(why, wcap, "'%s' has no \"type\"", path);
		goto out;
	}
	if (!strcmp(type, "service_account")) {
		const char *email = jstr(j, "client_email"), *key = jstr(j, "private_key");
		if (!email || !key) {
			snprintf(why, wcap, "service_account file '%s' lacks client_email or "
				 "private_key", path);
			goto out;
		}
		c->type = CRED_SERVICE_ACCOUNT;
		snprintf(c->email, sizeof(c->email), "%s", email);
		if ((v = jstr(j, "private_key_id")))
			snprintf(c->key_id, sizeof(c->key_id), "%s", v);
		c->private_key = strdup(key);
		if (!c->private_key) {
			snprintf(why, wcap, "out of memory");
			goto out;
		}
	} else if (!strcmp(type, "authorized_user")) {
		const char *id = jstr(j, "client_id"), *sec = jstr(j, "client_secret"),
			   *rt = jstr(j, "refresh_token");
		if (!id || !sec || !rt) {
			snprintf(why, wcap, "authorized_user file '%s' lacks client_id, "
				 "client_secret or refresh_token", path);
			goto out;
		}
		c->type = CRED_AUTHORIZED_USER;
		snprintf(c->client_id, sizeof(c->client_id), "%s", id);
		c->client_secret = strdup(sec);
		c->refresh_token = strdup(rt);
		if (!c->client_secret || !c->refresh_token) {
			snprintf(why, wcap, "out of memory");
			goto out;
		}
	} else {
		snprintf(why, wcap, "'%s' has credential type \"%s\"; lfsfs supports "
			 "service_account and authorized_user", path, type);
		goto out;
	}
	v = jstr(j, "token_uri");
	snprintf(c->token_uri, sizeof(c->token_uri), "%s", v ? v : LFSFS_GCP_DEFAULT_TOKEN_URI);
	rc = 0;
out:
	if (rc)
		cred_release(c);
	cJSON_Delete(j);
	if (b.data)
		OPENSSL_cleanse(b.data, b.len);
	lfsfs_buf_release(&b);
	return rc;
}

/* {"access_token": "...", "expires_in": N} -> acquired. */
static int parse_token(const char *body, struct acquired *acq, char *why, size_t wcap)
{
	cJSON *j = cJSON_Parse(body ? body : "");
	const cJSON *e;
	const char *t;
	int rc = -1;

	if (!cJSON_IsObject(j)) {
		snprintf(why, wcap, "the token response is not JSON");
		goto out;
	}
	t = jstr(j, "access_token");
	if (!t || strlen(t) >= sizeof(acq->token) || strpbrk(t, "\r\n")) {
		snprintf(why, wcap, "the token response has no usable access_token");
		goto out;
	}
	snprintf(acq->token, sizeof(acq->token), "%s", t);
	acq->lifetime = 3600;
	e = cJSON_GetObjectItemCaseSensitive(j, "expires_in");
	if (cJSON_IsNumber(e) && e->valuedouble > 0)
		acq->lifetime = (int64_t)e->valuedouble;
	else if (cJSON_IsString(e) && atoll(e->valuestring) > 0)
		acq->lifetime = atoll(e->valuestring);
	rc = 0;
out:
	cJSON_Delete(j);
	return rc;
}

/* OAuth2 error bodies: {"error": "invalid_grant", "error_description": "..."}
 * (Google's token endpoint) or {"error": {"code", "message", "status"}}. */
static void oauth_error(const struct lfsfs_buf *eb, char *out, size_t cap)
{
	cJSON *j = eb->data ? cJSON_Parse(eb->data) : NULL;
	const cJSON *e = j ? cJSON_GetObjectItemCaseSensitive(j, "error") : NULL;
	const char *d;

	out[0] = '\0';
	if (cJSON_IsString(e)) {
		d = jstr(j, "error_description");
		snprintf(out, cap, "%s%s%s", e->valuestring, d ? ": " : "", d ? d : "");
	} else if (cJSON_IsObject(e) && (d = jstr(e, "message"))) {
		snprintf(out, cap, "%s", d);
	}
	for (char *p = out; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	cJSON_Delete(j);
}

/* Form field name=value (value %-encoded) into b. */
static int form_add(struct lfsfs_buf *b, const char *name, const char *value)
{
	int rc;

	if (b->len && (rc = lfsfs_buf_appends(b, "&")))
		return rc;
	if ((rc = lfsfs_buf_appends(b, name)) || (rc = lfsfs_buf_appends(b, "=")))
		return rc;
	return lfsfs_gcs_encode(value, b);
}

/* Exchange a credential file for a token at its token_uri. */
static int exchange(struct lfsfs_gcp_auth *a, const struct gcp_cred *c, struct acquired *acq)
{
	struct lfsfs_buf form = LFSFS_BUF_INIT(0);
	struct lfsfs_http_req req;
	struct curl_slist *hdrs = NULL;
	char who[800], why[512], *jwt = NULL;
	int rc;

	if (c->type == CRED_SERVICE_ACCOUNT)
		snprintf(who, sizeof(who), "service account '%s' (%s)", c->email, c->where);
	else
		snprintf(who, sizeof(who), "authorized_user client '%s' (%s)", c->client_id,
			 c->where);
	snprintf(acq->source, sizeof(acq->source), "%s", who);
	snprintf(acq->token_uri, sizeof(acq->token_uri), "%s", c->token_uri);

	if (c->type == CRED_SERVICE_ACCOUNT) {
		rc = lfsfs_gcp_jwt_sign(c->email, c->key_id, c->private_key, c->token_uri,
					LFSFS_GCS_SCOPE, (int64_t)time(NULL), &jwt);
		if (rc) {
			if (rc == -ENOMEM)
				return rc;
			return lfsfs_error_set(-LFSFS_ECREDENTIALS_MISSING,
					       "%s: %s; fix: download a new JSON key for the "
					       "service account", who, lfsfs_error_message());
		}
		rc = form_add(&form, "grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer");
		if (!rc)
			rc = form_add(&form, "assertion", jwt);
	} else {
		rc = form_add(&form, "grant_type", "refresh_token");
		if (!rc)
			rc = form_add(&form, "client_id", c->client_id);
		if (!rc)
			rc = form_add(&form, "client_secret", c->client_secret);
		if (!rc)
			rc = form_add(&form, "refresh_token", c->refresh_token);
	}
	if (rc)
		goto out;

	memset(&req, 0, sizeof(req));
	hdrs = curl_slist_append(hdrs, "Content-Type: application/x-www-form-urlencoded");
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	req.method = LFSFS_HTTP_POST;
	req.url = c->token_uri;
	req.headers = hdrs;
	req.req_body = form.data;
	req.req_body_len = form.len;
	req.fd = -1;
	req.body.cap = TOKEN_BODY_CAP;
	req.max_attempts = 3;
	rc = lfsfs_net_perform(a->net, &req);
	if (rc) {
		char detail[400];
		oauth_error(&req.errbody, detail, sizeof(detail));
		if (req.status == 400 || req.status == 401 || req.status == 403)
			lfsfs_error_set(-LFSFS_ESOURCE_NOT_ACCESSIBLE,
					"token endpoint %s rejected the %s: HTTP %ld%s%s; fix: %s",
					c->token_uri, who, req.status, detail[0] ? ": " : "", detail,
					c->type == CRED_SERVICE_ACCOUNT
						? "check that the key is current and not disabled "
						  "(IAM > Service accounts > Keys)"
						: "run `gcloud auth application-default login` again");
		else
			lfsfs_error_set(-LFSFS_ESOURCE_NOT_ACCESSIBLE,
					"cannot get a token for the %s from %s: %s", who,
					c->token_uri, req.error);
		rc = -LFSFS_ESOURCE_NOT_ACCESSIBLE;
	} else if (parse_token(req.body.data, acq, why, sizeof(why))) {
		rc = lfsfs_error_set(-LFSFS_ESOURCE_NOT_ACCESSIBLE, "token endpoint %s, %s: %s",
				     c->token_uri, who, why);
	}
	if (req.body.data)
		OPENSSL_cleanse(req.body.data, req.body.len);
	lfsfs_buf_release(&req.body);
	lfsfs_buf_release(&req.errbody);
	curl_slist_free_all(req.resp_headers);
out:
	curl_slist_free_all(hdrs);
	if (form.data)
		OPENSSL_cleanse(form.data, form.len);
	lfsfs_buf_release(&form);
	free_secret(&jwt);
	return rc;
}

/* -------------------------------------------------------- metadata server */

static size_t md_write(char *data, size_t size, size_t n, void *p)
{
	return lfsfs_buf_append(p, data, size * n) ? 0 : size * n;
}

/*
 * The GCE metadata server.  Returns 0 with a token, 1 when the server is
 * not there (or has no service account), negative when it refused.
 * Plain libcurl, not the engine: a short connect timeout, no proxy, no
 * retries (Google's libraries probe the same way).
 */
static int metadata_token(struct lfsfs_gcp_auth *a, const char *host, struct acquired *acq,
			  char *why, size_t wcap)
{
	struct lfsfs_buf body = LFSFS_BUF_INIT(TOKEN_BODY_CAP);
	struct curl_slist *hdrs = NULL;
	char url[600], err[CURL_ERROR_SIZE] = "", pwhy[256];
	long status = 0;
	CURLcode cc;
	CURL *h;
	int rc = 1;

	snprintf(url, sizeof(url), "%s%s/computeMetadata/v1/instance/service-accounts/default/token",
		 strstr(host, "://") ? "" : "http://", host);
	h = curl_easy_init();
	if (!h)
		return -ENOMEM;
	hdrs = curl_slist_append(hdrs, "Metadata-Flavor: Google");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, md_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "lfsfs/" LFSFS_VERSION);
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	snprintf(acq->source, sizeof(acq->source), "GCE metadata server %s", host);
	acq->token_uri[0] = '\0';
	if (cc != CURLE_OK) {
		snprintf(why, wcap, "metadata server %s not reachable (%s)", host,
			 err[0] ? err : curl_easy_strerror(cc));
		rc = 1;
	} else if (status == 404) {
		snprintf(why, wcap, "metadata server %s has no default service account", host);
		rc = 1;
	} else if (status != 200) {
		char detail[300];
		oauth_error(&body, detail, sizeof(detail));
		rc = lfsfs_error_set(-LFSFS_ESOURCE_NOT_ACCESSIBLE,
				     "the GCE metadata server %s rejected the token request: HTTP %ld%s%s; "
				     "fix: give the VM a service account with the "
				     "devstorage.read_only scope", host, status,
				     detail[0] ? ": " : "", detail);
	} else if (parse_token(body.data, acq, pwhy, sizeof(pwhy))) {
		rc = lfsfs_error_set(-LFSFS_ESOURCE_NOT_ACCESSIBLE, "GCE metadata server %s: %s",
				     host, pwhy);
	} else {
		rc = 0;
	}
	if (body.data)
		OPENSSL_cleanse(body.data, body.len);
	lfsfs_buf_release(&body);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	return rc;
}

/* ------------------------------------------------------------------ chain */

static void adc_path(char *out, size_t cap)
{
	const char *cfg = getenv("CLOUDSDK_CONFIG"), *home = getenv("HOME");

	if (cfg && *cfg)
		snprintf(out, cap, "%s/application_default_credentials.json", cfg);
	else
		snprintf(out, cap, "%s/.config/gcloud/application_default_credentials.json",
			 home && *home ? home : "");
}

static int from_file(struct lfsfs_gcp_auth *a, const char *path, const char *where,
		     struct acquired *acq)
{
	struct gcp_cred c;
	char why[700];
	int rc;

	if (cred_load(path, where, &c, why, sizeof(why)))
		return lfsfs_error_set(-LFSFS_ECREDENTIALS_MISSING,
				       "unusable Google credentials (%s): %s; fix: point it to a "
				       "service-account key file or run `gcloud auth "
				       "application-default login`", where, why);
	rc = exchange(a, &c, acq);
	cred_release(&c);
	return rc;
}

/* Walk the chain once; called with refresh_lock held, not lock. */
static int acquire(struct lfsfs_gcp_auth *a, struct acquired *acq)
{
	const char *gac = getenv("GOOGLE_APPLICATION_CREDENTIALS");
	const char *mdhost = getenv("GCE_METADATA_HOST");
	char path[700], where[720], why[512];
	struct stat sb;
	int no_md, rc;

	memset(acq, 0, sizeof(*acq));
	if (gac && *gac) {
		snprintf(where, sizeof(where), "GOOGLE_APPLICATION_CREDENTIALS=%s", gac);
		return from_file(a, gac, where, acq);
	}
	appendf(acq->tried, sizeof(acq->tried), "GOOGLE_APPLICATION_CREDENTIALS unset");

	adc_path(path, sizeof(path));
	if (!stat(path, &sb)) {
		snprintf(where, sizeof(where), "gcloud ADC file %s", path);
		return from_file(a, path, where, acq);
	}
	appendf(acq->tried, sizeof(acq->tried), "; no gcloud ADC file %s", path);

	if (!mdhost || !*mdhost)
		mdhost = getenv("GCE_METADATA_ROOT"); /* the older spelling */
	pthread_mutex_lock(&a->lock);
	no_md = a->no_metadata;
	pthread_mutex_unlock(&a->lock);
	if (a->emulator && (!mdhost || !*mdhost)) {
		appendf(acq->tried, sizeof(acq->tried),
			"; metadata server not probed (STORAGE_EMULATOR_HOST set, GCE_METADATA_HOST unset)");
	} else if (no_md) {
		appendf(acq->tried, sizeof(acq->tried), "; metadata server %s not reachable",
			mdhost && *mdhost ? mdhost : "metadata.google.internal");
	} else {
		rc = metadata_token(a, mdhost && *mdhost ? mdhost : "metadata.google.internal", acq,
				    why, sizeof(why));
		if (rc <= 0)
			return rc;
		appendf(acq->tried, sizeof(acq->tried), "; %s", why);
		pthread_mutex_lock(&a->lock);
		a->no_metadata = 1;
		pthread_mutex_unlock(&a->lock);
	}
	acq->token[0] = '\0';
	acq->anonymous = 1;
	snprintf(acq->source, sizeof(acq->source), "anonymous (no credentials found)");
	acq->token_uri[0] = '\0';
	return 0;
}

void lfsfs_gcp_auth_init(struct lfsfs_gcp_auth *a, struct lfsfs_net *net, int emulator)
{
	memset(a, 0, sizeof(*a));
	a->net = net;
	a->emulator = emulator;
	pthread_mutex_init(&a->refresh_lock, NULL);
	pthread_mutex_init(&a->lock, NULL);
}

void lfsfs_gcp_auth_release(struct lfsfs_gcp_auth *a)
{
	OPENSSL_cleanse(a->token, sizeof(a->token));
	pthread_mutex_destroy(&a->lock);
	pthread_mutex_destroy(&a->refresh_lock);
}

/* Copy the cached answer out; caller holds a->lock. 1 if there was one. */
static int cached(struct lfsfs_gcp_auth *a, time_t now, int *rc, char *token, size_t cap,
		  uint64_t *hash, char *source, size_t scap, char *tried, size_t tcap)
{
	if (a->fail_rc && now < a->fail_until) {
		*rc = lfsfs_error_set(a->fail_rc, "%s", a->fail_msg);
		return 1;
	}
	if (!a->refresh_at || now >= a->refresh_at)
		return 0;
	if (strlen(a->token) >= cap)
		return 0;
	snprintf(token, cap, "%s", a->token);
	if (hash)
		*hash = a->token_hash;
	if (source)
		snprintf(source, scap, "%s", a->source);
	if (tried)
		snprintf(tried, tcap, "%s", a->tried);
	*rc = 0;
	return 1;
}

int lfsfs_gcp_auth_token(struct lfsfs_gcp_auth *a, char *token, size_t cap, uint64_t *hash,
			 char *source, size_t scap, char *tried, size_t tcap)
{
	struct acquired *acq;
	time_t now = time(NULL);
	int rc = 0;

	pthread_mutex_lock(&a->lock);
	if (cached(a, now, &rc, token, cap, hash, source, scap, tried, tcap)) {
		pthread_mutex_unlock(&a->lock);
		return rc;
	}
	pthread_mutex_unlock(&a->lock);

	pthread_mutex_lock(&a->refresh_lock);
	/* somebody else may have refreshed while we waited */
	now = time(NULL);
	pthread_mutex_lock(&a->lock);
	if (cached(a, now, &rc, token, cap, hash, source, scap, tried, tcap)) {
		pthread_mutex_unlock(&a->lock);
		pthread_mutex_unlock(&a->refresh_lock);
		return rc;
	}
	pthread_mutex_unlock(&a->lock);

	acq = calloc(1, sizeof(*acq));
	if (!acq) {
		pthread_mutex_unlock(&a->refresh_lock);
		return -ENOMEM;
	}
	rc = acquire(a, acq);
	now = time(NULL);
	pthread_mutex_lock(&a->lock);
	if (rc) {
		a->fail_rc = rc;
		a->fail_until = now + FAIL_HOLD_S;
		snprintf(a->fail_msg, sizeof(a->fail_msg), "%s", lfsfs_error_message());
		a->refresh_at = 0;
		a->token[0] = '\0';
		log_warn("gcs credentials: %s", a->fail_msg);
	} else {
		int64_t life = acq->lifetime, margin;

		a->fail_rc = 0;
		snprintf(a->token, sizeof(a->token), "%s", acq->token);
		a->token_hash = acq->token[0] ? fnv64(acq->token) : 0;
		a->anonymous = acq->anonymous;
		if (acq->anonymous) {
			a->refresh_at = now + ANON_HOLD_S;
		} else {
			margin = life > 600 ? 300 : life / 2;
			a->refresh_at = now + (time_t)(life - margin);
			if (a->refresh_at <= now)
				a->refresh_at = now + 1;
		}
		snprintf(a->source, sizeof(a->source), "%s", acq->source);
		snprintf(a->token_uri, sizeof(a->token_uri), "%s", acq->token_uri);
		snprintf(a->tried, sizeof(a->tried), "%s", acq->tried);
		if (a->anonymous)
			log_info("gcs credentials: anonymous; tried: %s", a->tried);
		else
			log_info("gcs credentials: %s%s%s", a->source,
				 a->token_uri[0] ? ", token from " : "", a->token_uri);
		if (strlen(a->token) >= cap) {
			rc = lfsfs_error_set(-E2BIG, "access token too long");
		} else {
			snprintf(token, cap, "%s", a->token);
			if (hash)
				*hash = a->token_hash;
			if (source)
				snprintf(source, scap, "%s", a->source);
			if (tried)
				snprintf(tried, tcap, "%s", a->tried);
		}
	}
	pthread_mutex_unlock(&a->lock);
	pthread_mutex_unlock(&a->refresh_lock);
	OPENSSL_cleanse(acq->token, sizeof(acq->token));
	free(acq);
	return rc;
}

void lfsfs_gcp_auth_invalidate(struct lfsfs_gcp_auth *a, uint64_t hash)
{
	pthread_mutex_lock(&a->lock);
	if (hash && a->token_hash == hash)
		a->refresh_at = 0;
	pthread_mutex_unlock(&a->lock);
}

int lfsfs_gcp_auth_explain(struct lfsfs_gcp_auth *a, struct lfsfs_buf *out)
{
	char tok[4096], source[512], tried[768];
	int rc;

	rc = lfsfs_gcp_auth_token(a, tok, sizeof(tok), NULL, source, sizeof(source), tried,
				  sizeof(tried));
	OPENSSL_cleanse(tok, sizeof(tok));
	if (rc) {
		lfsfs_buf_printf(out, "credentials: unusable\nproblem: %s\n", lfsfs_error_message());
		lfsfs_buf_printf(out, "fix: set GOOGLE_APPLICATION_CREDENTIALS to a valid "
				 "service-account key file, or run `gcloud auth "
				 "application-default login`\n");
		return rc;
	}
	lfsfs_buf_printf(out, "credentials: %s\n", source);
	pthread_mutex_lock(&a->lock);
	if (a->token_uri[0])
		lfsfs_buf_printf(out, "token endpoint: %s (token obtained)\n", a->token_uri);
	else if (!a->anonymous)
		lfsfs_buf_printf(out, "token endpoint: metadata server (token obtained)\n");
	pthread_mutex_unlock(&a->lock);
	if (tried[0] && !strncmp(source, "anonymous", 9)) {
		lfsfs_buf_printf(out, "tried: %s\n", tried);
		lfsfs_buf_printf(out, "note: only public objects are readable anonymously; for "
				 "private buckets set GOOGLE_APPLICATION_CREDENTIALS to a "
				 "service-account key file or run `gcloud auth "
				 "application-default login`\n");
	}
	return 0;
}
