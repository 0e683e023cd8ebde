/* DRS / Indexd helpers: bearer tokens, JSON requests, DrsObject parsing, drs:// URIs, URL expiry. */
#include "resolve/drs_common.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "lfsfs/error.h"
#include "util/config.h"
#include "util/timefmt.h"

#define JSON_BODY_CAP (32u << 20) /* a bulk answer for 1000 objects fits */
#define CRED_FILE_CAP (64u << 10)
#define TOKEN_MARGIN 60        /* renew an exchanged token this early */
#define TOKEN_DEFAULT_LIFE 600 /* when the JWT says nothing */
#define FAIL_HOLD 5            /* a failed exchange is remembered this long */
#define ACCEPTED_WAITS 3       /* 202 Accepted: ask again this often ... */
#define ACCEPTED_MAX_WAIT 5    /* ... waiting at most this long each time */

/* ---------------------------------------------------------------- small helpers */

void lfsfs_drs_secret_free(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

static char *dup_trim_slash(const char *s)
{
	size_t n = strlen(s);

	while (n && s[n - 1] == '/')
		n--;
	return strndup(s, n);
}

static int is_hex64(const char *s)
{
	for (int i = 0; i < 64; i++)
		if (!isxdigit((unsigned char)s[i]))
			return 0;
	return s[64] == '\0';
}

int lfsfs_drs_hex_eq(const char *oid, const char *b)
{
	if (!oid || !b)
		return 0;
	if (!strncasecmp(b, "sha256:", 7))
		b += 7;
	return strlen(oid) == 64 && is_hex64(b) && !strncasecmp(oid, b, 64);
}

/* ---------------------------------------------------------------- auth */

int lfsfs_drs_auth_init(struct lfsfs_drs_auth *a, const struct lfsfs_config *cfg, const char *what,
                        const char *prefix, const char *env, const char *base,
                        int allow_credentials)
{
	char key[96];
	const char *v;

	memset(a, 0, sizeof(*a));
	pthread_mutex_init(&a->lock, NULL);
	a->what = what;
	a->prefix = prefix;
	a->env = env;
	a->allow_credentials = allow_credentials;
	if (!(a->base = dup_trim_slash(base ? base : "")))
		return -ENOMEM;
	snprintf(key, sizeof(key), "%s.token", prefix);
	if ((v = lfsfs_config_get(cfg, key)) && *v) {
		snprintf(a->source, sizeof(a->source), "the setting %s", key);
		return (a->static_token = strdup(v)) ? 0 : -ENOMEM;
	}
	if (env && (v = getenv(env)) && *v) {
		snprintf(a->source, sizeof(a->source), "the environment variable %s", env);
		return (a->static_token = strdup(v)) ? 0 : -ENOMEM;
	}
	snprintf(key, sizeof(key), "%s.credentials", prefix);
	if (allow_credentials && (v = lfsfs_config_get(cfg, key)) && *v) {
		const char *home = getenv("HOME");
		struct lfsfs_buf p = LFSFS_BUF_INIT(0);

		if (!strncmp(v, "~/", 2) && home)
			lfsfs_buf_printf(&p, "%s/%s", home, v + 2);
		else
			lfsfs_buf_appends(&p, v);
		if (!p.data)
			return -ENOMEM;
		a->cred_path = lfsfs_buf_detach(&p);
		snprintf(a->source, sizeof(a->source), "the Gen3 credentials file '%s' (%s)",
		         a->cred_path, key);
		return 0;
	}
	snprintf(a->source, sizeof(a->source), "none");
	return 0;
}

void lfsfs_drs_auth_release(struct lfsfs_drs_auth *a)
{
	pthread_mutex_destroy(&a->lock);
	free(a->base);
	lfsfs_drs_secret_free(a->static_token);
	free(a->cred_path);
	lfsfs_drs_secret_free(a->token);
	memset(a, 0, sizeof(*a));
}

int lfsfs_drs_auth_refreshable(const struct lfsfs_drs_auth *a)
{
	return a->cred_path != NULL;
}

/* The settings that give this server a token, for "fix:" hints. */
static void fix_hint(const struct lfsfs_drs_auth *a, char *out, size_t cap)
{
	if (a->allow_credentials)
		snprintf(out, cap, "set %s.token, %s or %s.credentials (a Gen3 credentials file)",
		         a->prefix, a->env, a->prefix);
	else
		snprintf(out, cap, "set %s.token or %s", a->prefix, a->env);
}

/* Exchange the Gen3 API key for an access token; caller holds a->lock. */
static int gen3_exchange(struct lfsfs_drs_auth *a, struct lfsfs_net *net)
{
	struct lfsfs_buf file = LFSFS_BUF_INIT(CRED_FILE_CAP);
	struct lfsfs_buf url = LFSFS_BUF_INIT(0);
	struct lfsfs_http_req req;
	struct curl_slist *hdrs = NULL;
	cJSON *j = NULL, *body = NULL, *resp = NULL;
	const cJSON *k;
	char *text = NULL;
	time_t exp;
	int rc;

	rc = lfsfs_buf_read_file(&file, a->cred_path);
	if (rc) {
		rc = lfsfs_error_set(
		        -LFSFS_ECREDENTIALS_MISSING,
		        "cannot read the Gen3 credentials file '%s' (%s.credentials): %s; "
		        "fix: download an API key from the %s's profile page and "
		        "point %s.credentials at it",
		        a->cred_path, a->prefix, strerror(-rc), a->what, a->prefix);
		goto out;
	}
	j = cJSON_Parse(file.data);
	k = j ? cJSON_GetObjectItemCaseSensitive(j, "api_key") : NULL;
	if (!cJSON_IsString(k) || !*k->valuestring) {
		rc = lfsfs_error_set(-LFSFS_ECREDENTIALS_MISSING,
		                     "the Gen3 credentials file '%s' has no \"api_key\"; fix: "
		                     "download a new API key (JSON with api_key and key_id)",
		                     a->cred_path);
		goto out;
	}
	if (!(body = cJSON_CreateObject()) ||
	    !cJSON_AddStringToObject(body, "api_key", k->valuestring) ||
	    !(text = cJSON_PrintUnformatted(body)) ||
	    lfsfs_buf_printf(&url, "%s/user/credentials/cdis/access_token", a->base)) {
		rc = -ENOMEM;
		goto out;
	}
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	memset(&req, 0, sizeof(req));
	req.method = LFSFS_HTTP_POST;
	req.url = url.data;
	req.headers = hdrs;
	req.req_body = text;
	req.req_body_len = strlen(text);
	req.fd = -1;
	req.body.cap = 1 << 20;
	req.max_attempts = 3;
	rc = lfsfs_net_perform(net, &req);
	if (rc) {
		if (req.status == 400 || req.status == 401 || req.status == 403)
			rc = lfsfs_error_set(
			        -LFSFS_ESOURCE_NOT_ACCESSIBLE,
			        "%s '%s' rejected the API key of the Gen3 credentials "
			        "file '%s' (HTTP %ld at %s); fix: create a new API key "
			        "(profile page) and point %s.credentials at it",
			        a->what, a->base, a->cred_path, req.status, url.data, a->prefix);
		else
			rc = lfsfs_error_set(
			        -LFSFS_ESOURCE_NOT_ACCESSIBLE,
			        "cannot exchange the API key of '%s' for a token at %s: %s",
			        a->cred_path, url.data, req.error);
	} else {
		resp = cJSON_Parse(req.body.data ? req.body.data : "");
		k = resp ? cJSON_GetObjectItemCaseSensitive(resp, "access_token") : NULL;
		if (!cJSON_IsString(k) || !*k->valuestring) {
			rc = lfsfs_error_set(-LFSFS_ESOURCE_NOT_ACCESSIBLE,
			                     "%s gave no access_token for the API key of '%s' (%s)",
			                     a->what, a->cred_path, url.data);
		} else {
			lfsfs_drs_secret_free(a->token);
			if (!(a->token = strdup(k->valuestring))) {
				rc = -ENOMEM;
			} else {
				if (lfsfs_drs_jwt_exp(a->token, &exp))
					exp = time(NULL) + TOKEN_DEFAULT_LIFE;
				a->exp = exp;
			}
		}
	}
	if (req.body.data)
		OPENSSL_cleanse(req.body.data, req.body.len);
	lfsfs_buf_release(&req.body);
	lfsfs_buf_release(&req.errbody);
	curl_slist_free_all(req.resp_headers);
out:
	curl_slist_free_all(hdrs);
	if (text)
		OPENSSL_cleanse(text, strlen(text));
	free(text);
	if (body)
		cJSON_Delete(body);
	if (j)
		cJSON_Delete(j);
	if (resp)
		cJSON_Delete(resp);
	if (file.data)
		OPENSSL_cleanse(file.data, file.len);
	lfsfs_buf_release(&file);
	lfsfs_buf_release(&url);
	return rc;
}

int lfsfs_drs_auth_header(struct lfsfs_drs_auth *a, struct lfsfs_net *net, int refresh, char **out)
{
	struct lfsfs_buf h = LFSFS_BUF_INIT(0);
	time_t now = time(NULL);
	int rc = 0;

	*out = NULL;
	if (a->static_token) {
		if (lfsfs_buf_printf(&h, "Authorization: Bearer %s", a->static_token))
			return -ENOMEM;
		*out = lfsfs_buf_detach(&h);
		return 0;
	}
	if (!a->cred_path)
		return 0;
	pthread_mutex_lock(&a->lock);
	if (refresh && a->token) {
		lfsfs_drs_secret_free(a->token);
		a->token = NULL;
	}
	if (a->token && now + TOKEN_MARGIN >= a->exp) {
		lfsfs_drs_secret_free(a->token);
		a->token = NULL;
	}
	if (!a->token) {
		if (now < a->fail_until) {
			rc = lfsfs_error_set(-LFSFS_ESOURCE_NOT_ACCESSIBLE, "%s", a->fail_msg);
		} else if ((rc = gen3_exchange(a, net))) {
			snprintf(a->fail_msg, sizeof(a->fail_msg), "%s", lfsfs_error_message());
			a->fail_until = now + FAIL_HOLD;
		}
	}
	if (!rc && lfsfs_buf_printf(&h, "Authorization: Bearer %s", a->token))
		rc = -ENOMEM;
	pthread_mutex_unlock(&a->lock);
	if (!rc)
		*out = lfsfs_buf_detach(&h);
	return rc;
}

/* ---------------------------------------------------------------- requests */

/* Wipe every header line (one holds the token) and free the list. */
static void slist_free_wiped(struct curl_slist *l)
{
	for (struct curl_slist *p = l; p; p = p->next)
		OPENSSL_cleanse(p->data, strlen(p->data));
	curl_slist_free_all(l);
}

/* A short, printable reason from a JSON error body ({msg}, {error}, {message}),
 * never one that repeats the token. */
static void error_detail(const struct lfsfs_buf *eb, const char *hdr, char *out, size_t cap)
{
	static const char *const keys[] = { "msg", "message", "error", "detail" };
	cJSON *j;

	out[0] = '\0';
	if (!eb->data || !eb->len || !(j = cJSON_Parse(eb->data)))
		return;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]) && !out[0]; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[i]);
		if (cJSON_IsString(v) && *v->valuestring) {
			const char *tok = hdr ? strstr(hdr, "Bearer ") : NULL;
			if (tok && strstr(v->valuestring, tok + 7))
				break;
			snprintf(out, cap, ": %.200s", v->valuestring);
			for (char *p = out; *p; p++)
				if ((unsigned char)*p < 0x20)
					*p = ' ';
		}
	}
	cJSON_Delete(j);
}

int lfsfs_drs_request(struct lfsfs_drs_auth *a, struct lfsfs_net *net, int auth,
                      enum lfsfs_http_method method, const char *url, const char *body, cJSON **out,
                      long *status)
{
	const char *mname = method == LFSFS_HTTP_POST ? "POST" : "GET";
	int rc = 0, refreshed = 0, waits = 0;

	*out = NULL;
	if (status)
		*status = 0;
	for (;;) {
		struct lfsfs_http_req req;
		struct curl_slist *hdrs = NULL, *n;
		char *hdr = NULL, detail[256], fix[200];
		int again = 0;

		if (auth && (rc = lfsfs_drs_auth_header(a, net, refreshed == 1, &hdr)))
			return rc;
		if (refreshed == 1)
			refreshed = 2;
		hdrs = curl_slist_append(NULL, "Accept: application/json");
		if (hdrs && body && (n = curl_slist_append(hdrs, "Content-Type: application/json")))
			hdrs = n;
		if (hdrs && hdr && (n = curl_slist_append(hdrs, hdr)))
			hdrs = n;
		if (!hdrs) {
			lfsfs_drs_secret_free(hdr);
			return -ENOMEM;
		}
		memset(&req, 0, sizeof(req));
		req.method = method;
		req.url = url;
		req.headers = hdrs;
		req.req_body = body;
		req.req_body_len = body ? strlen(body) : 0;
		req.fd = -1;
		req.body.cap = JSON_BODY_CAP;
		req.max_attempts = 3;
		req.keep_headers = 1;
		rc = lfsfs_net_perform(net, &req);
		if (status)
			*status = req.status;
		if (!rc && req.status == 202 && waits < ACCEPTED_WAITS) {
			/* DRS: "the operation is delayed; retry after Retry-After" */
			const char *ra = lfsfs_http_header(req.resp_headers, "Retry-After");
			long secs = ra ? strtol(ra, NULL, 10) : 1;
			if (secs < 1 || secs > ACCEPTED_MAX_WAIT)
				secs = secs < 1 ? 1 : ACCEPTED_MAX_WAIT;
			waits++;
			again = 1;
			sleep((unsigned)secs);
		} else if (!rc) {
			if (!req.body.data || !(*out = cJSON_Parse(req.body.data)))
				rc = lfsfs_error_set(
				        -LFSFS_EPARSE,
				        "%s '%s' answered %s %s with something that is "
				        "not JSON; is %s.url right?",
				        a->what, a->base, mname, url, a->prefix);
		} else if (req.status == 404) {
			rc = -ENOENT;
		} else if (req.status == 401 || req.status == 403) {
			if (req.status == 401 && auth && hdr && !refreshed &&
			    lfsfs_drs_auth_refreshable(a)) {
				refreshed = 1;
				again = 1;
			} else {
				error_detail(&req.errbody, hdr, detail, sizeof(detail));
				fix_hint(a, fix, sizeof(fix));
				if (!hdr)
					rc = lfsfs_error_set(
					        -LFSFS_ESOURCE_NOT_ACCESSIBLE,
					        "%s '%s' refused %s %s: HTTP %ld%s; no "
					        "token was sent; fix: %s",
					        a->what, a->base, mname, url, req.status, detail,
					        fix);
				else if (req.status == 401)
					rc = lfsfs_error_set(
					        -LFSFS_ESOURCE_NOT_ACCESSIBLE,
					        "%s '%s' rejected the token from %s (%s "
					        "%s: HTTP 401%s); fix: %s with a valid token",
					        a->what, a->base, a->source, mname, url, detail,
					        fix);
				else
					rc = lfsfs_error_set(
					        -LFSFS_ESOURCE_NOT_ACCESSIBLE,
					        "%s '%s' refused %s %s: HTTP 403%s; the token "
					        "from %s lacks access to it; fix: %s with a "
					        "token that may read it",
					        a->what, a->base, mname, url, detail, a->source,
					        fix);
			}
		} else {
			error_detail(&req.errbody, hdr, detail, sizeof(detail));
			rc = lfsfs_error_set(-LFSFS_ESOURCE_NOT_ACCESSIBLE,
			                     "%s '%s': %s %s failed: %s%s", a->what, a->base, mname,
			                     url, req.error, detail);
		}
		lfsfs_buf_release(&req.body);
		lfsfs_buf_release(&req.errbody);
		curl_slist_free_all(req.resp_headers);
		slist_free_wiped(hdrs);
		lfsfs_drs_secret_free(hdr);
		if (!again)
			break;
	}
	return rc;
}

/* ---------------------------------------------------------------- objects */

static char *jstr(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) && *v->valuestring ? strdup(v->valuestring) : NULL;
}

/* A JSON size: a non-negative integral number or a decimal string. */
static int jsize(const cJSON *v, uint64_t *out)
{
	if (cJSON_IsNumber(v)) {
		double d = v->valuedouble;
		if (d < 0 || d > 9007199254740992.0 || floor(d) != d)
			return -1;
		*out = (uint64_t)d;
		return 0;
	}
	if (cJSON_IsString(v) && *v->valuestring) {
		char *end;
		errno = 0;
		unsigned long long x = strtoull(v->valuestring, &end, 10);
		if (errno || *end || v->valuestring[0] == '-')
			return -1;
		*out = x;
		return 0;
	}
	return -1;
}

void lfsfs_drs_access_release(struct lfsfs_drs_access *a)
{
	free(a->type);
	free(a->access_id);
	free(a->url);
	for (size_t i = 0; i < a->n_headers; i++)
		lfsfs_drs_secret_free(a->headers[i]);
	free(a->headers);
	memset(a, 0, sizeof(*a));
}

static int add_header(struct lfsfs_drs_access *acc, const char *name, const char *value)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(0);
	char **nh;

	if (name)
		lfsfs_buf_printf(&b, "%s: %s", name, value);
	else
		lfsfs_buf_appends(&b, value);
	if (!b.data)
		return -ENOMEM;
	/* a header line must not smuggle another one in, and needs a name */
	if (strpbrk(b.data, "\r\n") || !strchr(b.data, ':') || b.data[0] == ':') {
		lfsfs_buf_release(&b);
		return -LFSFS_EPARSE;
	}
	nh = realloc(acc->headers, (acc->n_headers + 1) * sizeof(*nh));
	if (!nh) {
		lfsfs_buf_release(&b);
		return -ENOMEM;
	}
	acc->headers = nh;
	acc->headers[acc->n_headers++] = lfsfs_buf_detach(&b);
	return 0;
}

int lfsfs_drs_access_url_parse(const cJSON *j, struct lfsfs_drs_access *acc)
{
	const cJSON *h, *it;
	int rc;

	if (!cJSON_IsObject(j) || !(acc->url = jstr(j, "url")))
		return lfsfs_error_set(-LFSFS_EPARSE, "an AccessURL without \"url\"");
	h = cJSON_GetObjectItemCaseSensitive(j, "headers");
	/* DRS says an array of "Name: value" strings; some servers send an object */
	if (cJSON_IsArray(h)) {
		cJSON_ArrayForEach(it, h)
		{
			if (!cJSON_IsString(it))
				continue;
			if ((rc = add_header(acc, NULL, it->valuestring)))
				goto bad;
		}
	} else if (cJSON_IsObject(h)) {
		cJSON_ArrayForEach(it, h)
		{
			if (!cJSON_IsString(it))
				continue;
			if ((rc = add_header(acc, it->string, it->valuestring)))
				goto bad;
		}
	}
	return 0;
bad:
	free(acc->url);
	acc->url = NULL;
	return rc == -ENOMEM ?
	               rc :
	               lfsfs_error_set(-LFSFS_EPARSE, "an AccessURL with a malformed header");
}

void lfsfs_drs_object_release(struct lfsfs_drs_object *o)
{
	free(o->id);
	for (size_t i = 0; i < o->n_access; i++)
		lfsfs_drs_access_release(&o->access[i]);
	free(o->access);
	memset(o, 0, sizeof(*o));
}

static int is_sha256_type(const char *t)
{
	return !strcasecmp(t, "sha256") || !strcasecmp(t, "sha-256");
}

int lfsfs_drs_object_parse(const cJSON *j, struct lfsfs_drs_object *out)
{
	const cJSON *v, *it;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (!cJSON_IsObject(j))
		return lfsfs_error_set(-LFSFS_EPARSE, "a DRS object that is not a JSON object");
	out->id = jstr(j, "id");
	v = cJSON_GetObjectItemCaseSensitive(j, "size");
	if (v && !cJSON_IsNull(v)) {
		if (jsize(v, &out->size)) {
			rc = lfsfs_error_set(-LFSFS_EPARSE, "DRS object '%s' has a bad \"size\"",
			                     out->id ? out->id : "?");
			goto fail;
		}
		out->has_size = 1;
	}
	v = cJSON_GetObjectItemCaseSensitive(j, "checksums");
	if (!cJSON_IsArray(v))
		v = NULL;
	cJSON_ArrayForEach(it, v)
	{
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(it, "type");
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "checksum");
		const char *hex;

		if (!cJSON_IsString(t) || !cJSON_IsString(c) || !is_sha256_type(t->valuestring))
			continue;
		hex = c->valuestring;
		if (!strncasecmp(hex, "sha256:", 7))
			hex += 7;
		if (!is_hex64(hex)) {
			out->sha256_conflict = 1; /* a sha256 we cannot compare: never trust it */
			continue;
		}
		if (out->sha256[0] && strncasecmp(out->sha256, hex, 64))
			out->sha256_conflict = 1;
		for (int i = 0; i < 64; i++)
			out->sha256[i] = (char)tolower((unsigned char)hex[i]);
		out->sha256[64] = '\0';
	}
	v = cJSON_GetObjectItemCaseSensitive(j, "access_methods");
	if (cJSON_IsArray(v) && cJSON_GetArraySize(v) > 0) {
		size_t n = (size_t)cJSON_GetArraySize(v);
		if (!(out->access = calloc(n, sizeof(*out->access)))) {
			rc = -ENOMEM;
			goto fail;
		}
		cJSON_ArrayForEach(it, v)
		{
			struct lfsfs_drs_access *acc = &out->access[out->n_access];
			const cJSON *au;

			if (!cJSON_IsObject(it))
				continue;
			acc->type = jstr(it, "type");
			acc->access_id = jstr(it, "access_id");
			au = cJSON_GetObjectItemCaseSensitive(it, "access_url");
			if (cJSON_IsObject(au) && (rc = lfsfs_drs_access_url_parse(au, acc))) {
				if (rc == -ENOMEM)
					goto fail;
				rc = 0; /* a bad access_url: the method may still have an id */
			}
			if (!acc->url && !acc->access_id) {
				lfsfs_drs_access_release(acc);
				continue;
			}
			out->n_access++;
		}
	}
	return 0;
fail:
	lfsfs_drs_object_release(out);
	return rc;
}

int lfsfs_drs_object_parse_text(const char *json, struct lfsfs_drs_object *out)
{
	cJSON *j = cJSON_Parse(json ? json : "");
	int rc;

	memset(out, 0, sizeof(*out));
	if (!j)
		return lfsfs_error_set(-LFSFS_EPARSE, "a DRS object that is not JSON");
	rc = lfsfs_drs_object_parse(j, out);
	cJSON_Delete(j);
	return rc;
}

int lfsfs_drs_object_check(const struct lfsfs_drs_object *o, const char *oid, uint64_t size,
                           int has_size, struct lfsfs_buf *why)
{
	const char *id = o->id ? o->id : "?";

	if (o->sha256_conflict) {
		if (why)
			lfsfs_buf_printf(why,
			                 "DRS object '%s' lists conflicting sha256 checksums, "
			                 "not used",
			                 id);
		return -ENOENT;
	}
	if (!o->sha256[0]) {
		if (why)
			lfsfs_buf_printf(why, "DRS object '%s' has no sha256 checksum, not used",
			                 id);
		return -ENOENT;
	}
	if (!lfsfs_drs_hex_eq(oid, o->sha256)) {
		if (why)
			lfsfs_buf_printf(why,
			                 "DRS object '%s' has sha256 %.12s…, not %.12s…: "
			                 "checksum mismatch, not used",
			                 id, o->sha256, oid);
		return -ENOENT;
	}
	if (has_size && o->has_size && o->size != size) {
		if (why)
			lfsfs_buf_printf(why,
			                 "DRS object '%s' is %" PRIu64 " bytes, the pointer "
			                 "says %" PRIu64 ", not used",
			                 id, o->size, size);
		return -ENOENT;
	}
	return 0;
}

/* ---------------------------------------------------------------- URIs */

static int is_unreserved(int c)
{
	return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

char *lfsfs_drs_encode_id(const char *id)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(0);

	lfsfs_buf_appends(&b, "");
	for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
		if (is_unreserved(*p) && *p < 0x80)
			lfsfs_buf_append(&b, p, 1);
		else if (*p == '%' && isxdigit(p[1]) && isxdigit(p[2]))
			lfsfs_buf_append(&b, p, 1);
		else
			lfsfs_buf_printf(&b, "%%%02X", *p);
	}
	return lfsfs_buf_detach(&b);
}

/* host[:port] of an http(s) URL (userinfo dropped) into out; 0 or -1. */
static int url_hostport(const char *url, char *out, size_t cap)
{
	const char *p = strstr(url, "://"), *end, *at;

	if (!p)
		return -1;
	p += 3;
	end = p + strcspn(p, "/?#");
	at = memchr(p, '@', (size_t)(end - p));
	if (at)
		p = at + 1;
	if ((size_t)(end - p) >= cap || end == p)
		return -1;
	memcpy(out, p, (size_t)(end - p));
	out[end - p] = '\0';
	return 0;
}

int lfsfs_drs_uri_to_url(const char *uri, const char *base, char **url, int *same_host)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(0);
	const char *rest, *slash;
	char host[256], bhost[256];
	char *enc = NULL;
	int same = 0;

	*url = NULL;
	if (same_host)
		*same_host = 0;
	if (strncasecmp(uri, "drs://", 6) || !uri[6])
		return lfsfs_error_set(-EINVAL, "'%s' is not a drs:// URI", uri);
	rest = uri + 6;
	slash = strchr(rest, '/');
	bhost[0] = '\0';
	if (base && *base && url_hostport(base, bhost, sizeof(bhost)))
		bhost[0] = '\0';
	if (slash) {
		/* hostname-based: drs://host[:port]/id */
		size_t hl = (size_t)(slash - rest);
		if (!hl || hl >= sizeof(host) || !slash[1])
			return lfsfs_error_set(-EINVAL, "'%s' is not a drs://host/id URI", uri);
		memcpy(host, rest, hl);
		host[hl] = '\0';
		if (strpbrk(host, "@?# \t"))
			return lfsfs_error_set(-EINVAL, "'%s' has a bad host", uri);
		if (!(enc = lfsfs_drs_encode_id(slash + 1)))
			return -ENOMEM;
		same = bhost[0] && !strcasecmp(host, bhost);
		if (same) {
			char *bt = dup_trim_slash(base);
			if (bt)
				lfsfs_buf_printf(&b, "%s/ga4gh/drs/v1/objects/%s", bt, enc);
			free(bt);
		} else {
			lfsfs_buf_printf(&b, "https://%s/ga4gh/drs/v1/objects/%s", host, enc);
		}
	} else {
		/* compact identifier: drs://prefix:accession */
		if (!strchr(rest, ':'))
			return lfsfs_error_set(-EINVAL,
			                       "'%s' is neither drs://host/id nor "
			                       "drs://prefix:accession",
			                       uri);
		if (!base || !*base)
			return lfsfs_error_set(
			        -LFSFS_EUNSUPPORTED,
			        "'%s' is a compact DRS identifier; lfsfs looks those "
			        "up on lfsfs.drs.url, which is not set",
			        uri);
		if (!(enc = lfsfs_drs_encode_id(rest)))
			return -ENOMEM;
		char *bt = dup_trim_slash(base);
		if (bt)
			lfsfs_buf_printf(&b, "%s/ga4gh/drs/v1/objects/%s", bt, enc);
		free(bt);
		same = 1;
	}
	free(enc);
	if (!b.data)
		return -ENOMEM;
	*url = lfsfs_buf_detach(&b);
	if (same_host)
		*same_host = same;
	return 0;
}

/* ---------------------------------------------------------------- expiry */

static int hexval(int c)
{
	return isdigit(c) ? c - '0' : tolower(c) - 'a' + 10;
}

/* Percent-decode [p, p+n) into out (cap); '+' stays '+'. */
static void pct_decode(const char *p, size_t n, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < n && o + 1 < cap; i++) {
		if (p[i] == '%' && i + 2 < n && isxdigit((unsigned char)p[i + 1]) &&
		    isxdigit((unsigned char)p[i + 2])) {
			out[o++] = (char)(hexval((unsigned char)p[i + 1]) * 16 +
			                  hexval((unsigned char)p[i + 2]));
			i += 2;
		} else {
			out[o++] = p[i];
		}
	}
	out[o] = '\0';
}

static int parse_uint(const char *s, long long *out)
{
	char *end;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	*out = strtoll(s, &end, 10);
	return errno || *end ? -1 : 0;
}

/* "YYYYMMDDTHHMMSSZ" (SigV4 / GCS V4 dates). */
static int parse_basic_date(const char *s, time_t *out)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (strlen(s) != 16 || s[8] != 'T' || s[15] != 'Z' ||
	    sscanf(s, "%4d%2d%2dT%2d%2d%2dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
	           &tm.tm_min, &tm.tm_sec) != 6)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*out = timegm(&tm);
	return *out == (time_t)-1 ? -1 : 0;
}

int lfsfs_drs_url_expiry(const char *url, time_t *out)
{
	const char *q = url ? strchr(url, '?') : NULL;
	time_t amz_date = 0, goog_date = 0, best = 0, t;
	long long amz_exp = -1, goog_exp = -1, v;
	char name[32], val[128];

	if (!q)
		return -ENOENT;
	q++;
	while (*q && *q != '#') {
		size_t len = strcspn(q, "&#"), nl;
		const char *eq = memchr(q, '=', len);

		if (eq) {
			nl = (size_t)(eq - q);
			pct_decode(q, nl, name, sizeof(name));
			pct_decode(eq + 1, len - nl - 1, val, sizeof(val));
			if (!strcasecmp(name, "X-Amz-Date")) {
				if (parse_basic_date(val, &t) == 0)
					amz_date = t;
			} else if (!strcasecmp(name, "X-Goog-Date")) {
				if (parse_basic_date(val, &t) == 0)
					goog_date = t;
			} else if (!strcasecmp(name, "X-Amz-Expires")) {
				if (parse_uint(val, &v) == 0)
					amz_exp = v;
			} else if (!strcasecmp(name, "X-Goog-Expires")) {
				if (parse_uint(val, &v) == 0)
					goog_exp = v;
			} else if (!strcmp(name, "se")) {
				if (lfsfs_time_iso8601_utc(val, &t) == 0 && (!best || t < best))
					best = t;
			} else if (!strcasecmp(name, "Expires")) {
				if (parse_uint(val, &v) == 0 && v > 0 &&
				    (!best || (time_t)v < best))
					best = (time_t)v;
			}
		}
		q += len;
		if (*q == '&')
			q++;
	}
	if (amz_date && amz_exp >= 0 && (!best || amz_date + amz_exp < best))
		best = amz_date + (time_t)amz_exp;
	if (goog_date && goog_exp >= 0 && (!best || goog_date + goog_exp < best))
		best = goog_date + (time_t)goog_exp;
	if (!best)
		return -ENOENT;
	*out = best;
	return 0;
}

/* base64url (padding optional) into a NUL-terminated malloc'd buffer. */
static char *b64url_decode(const char *s, size_t n)
{
	char *out = malloc(n * 3 / 4 + 4);
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i], v;
		if (c >= 'A' && c <= 'Z')
			v = c - 'A';
		else if (c >= 'a' && c <= 'z')
			v = c - 'a' + 26;
		else if (c >= '0' && c <= '9')
			v = c - '0' + 52;
		else if (c == '-' || c == '+')
			v = 62;
		else if (c == '_' || c == '/')
			v = 63;
		else if (c == '=')
			break;
		else {
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	out[o] = '\0';
	return out;
}

int lfsfs_drs_jwt_exp(const char *jwt, time_t *out)
{
	const char *p = jwt ? strchr(jwt, '.') : NULL, *e;
	char *payload;
	cJSON *j;
	const cJSON *exp;
	int rc = -LFSFS_EPARSE;

	if (!p || !(e = strchr(p + 1, '.')))
		return -LFSFS_EPARSE;
	if (!(payload = b64url_decode(p + 1, (size_t)(e - p - 1))))
		return -LFSFS_EPARSE;
	if ((j = cJSON_Parse(payload))) {
		exp = cJSON_GetObjectItemCaseSensitive(j, "exp");
		if (cJSON_IsNumber(exp) && exp->valuedouble > 0 && exp->valuedouble < 1e12) {
			*out = (time_t)exp->valuedouble;
			rc = 0;
		}
		cJSON_Delete(j);
	}
	OPENSSL_cleanse(payload, strlen(payload));
	free(payload);
	return rc;
}
