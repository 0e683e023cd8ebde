/* Azure Blob URL forms, connection strings, SharedKey signing, credential
 * chain and the IMDS token cache (see azure_auth.h). */
#include "store/azure_auth.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "lfsfs/error.h"
#include "util/config.h"
#include "util/log.h"

/* ------------------------------------------------------------------ URLs */

static int is_unreserved(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
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

/* Escape a path: keep unreserved bytes, '/' and well-formed "%XX"; escape
 * the rest.  -1 if it does not fit. */
static int escape_path(const char *in, size_t n, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		if (is_unreserved(c) || c == '/') {
			if (o + 1 >= cap)
				return -1;
			out[o++] = (char)c;
		} else if (c == '%' && i + 2 < n && hexval(in[i + 1]) >= 0 &&
			   hexval(in[i + 2]) >= 0) {
			if (o + 3 >= cap)
				return -1;
			memcpy(out + o, in + i, 3);
			o += 3;
			i += 2;
		} else {
			if (o + 3 >= cap)
				return -1;
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return 0;
}

/* host of "scheme://host[:port]/..." into out; returns pointer past the
 * authority, or NULL. */
static const char *url_host(const char *url, char *out, size_t cap, const char **authority)
{
	const char *p = strstr(url, "://"), *a, *e, *h;
	size_t n;

	if (!p)
		return NULL;
	a = p + 3;
	e = a + strcspn(a, "/?#");
	h = memchr(a, '@', (size_t)(e - a)) ? NULL : a;
	if (!h)
		return NULL;
	n = strcspn(h, ":/?#");
	if (h + n > e)
		n = (size_t)(e - h);
	if (!n || n >= cap)
		return NULL;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)h[i]);
	out[n] = '\0';
	if (authority)
		*authority = a;
	return e;
}

/* "ACCOUNT.blob.core.*": the account label, or 0. */
static int blob_host_account(const char *host, char *account, size_t cap)
{
	const char *dot = strchr(host, '.');
	size_t n;

	if (!dot || strncmp(dot, ".blob.core.", 11) || !dot[11])
		return 0;
	n = (size_t)(dot - host);
	if (!n || n >= cap)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)host[i]))
			return 0;
	memcpy(account, host, n);
	account[n] = '\0';
	return 1;
}

int lfsfs_az_url_handles(const char *url)
{
	char host[256], acct[64];

	if (!strncasecmp(url, "az://", 5))
		return 1;
	if (strncasecmp(url, "https://", 8) && strncasecmp(url, "http://", 7))
		return 0;
	return url_host(url, host, sizeof(host), NULL) && blob_host_account(host, acct, sizeof(acct));
}

int lfsfs_az_query_is_sas(const char *query)
{
	const char *p = query;

	while (p && *p) {
		if (!strncasecmp(p, "sig=", 4))
			return 1;
		p = strchr(p, '&');
		if (p)
			p++;
	}
	return 0;
}

int lfsfs_az_url_parse(const char *url, struct lfsfs_az_url *out)
{
	const char *path, *q, *slash, *end;
	char host[256];
	size_t n;

	memset(out, 0, sizeof(*out));
	if (!strncasecmp(url, "az://", 5)) {
		path = url + 5;
	} else {
		const char *authority;
		path = lfsfs_az_url_handles(url) ? url_host(url, host, sizeof(host), &authority)
						 : NULL;
		if (!path)
			return lfsfs_error_set(-LFSFS_EPARSE, "'%.*s' is not an Azure Blob URL "
					       "(az://container/blob or https://ACCOUNT.blob."
					       "core.windows.net/container/blob)",
					       (int)strcspn(url, "?#"), url);
		blob_host_account(host, out->account, sizeof(out->account));
		out->https_form = 1;
		n = (size_t)(authority - url) + (size_t)(path - authority);
		if (n >= sizeof(out->origin))
			return lfsfs_error_set(-LFSFS_EPARSE, "URL host too long");
		for (size_t i = 0; i < n; i++)   /* scheme and host are case-insensitive */
			out->origin[i] = (char)tolower((unsigned char)url[i]);
		if (*path != '/')
			goto bad;
		path++;
	}
	end = path + strcspn(path, "?#");
	q = *end == '?' ? end + 1 : NULL;
	slash = memchr(path, '/', (size_t)(end - path));
	if (!slash || slash == path || slash + 1 >= end)
		goto bad;
	n = (size_t)(slash - path);
	if (n >= sizeof(out->container))
		goto bad;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)path[i]) && path[i] != '-' && path[i] != '$')
			goto bad;
	memcpy(out->container, path, n);
	out->container[n] = '\0';
	if (escape_path(slash + 1, (size_t)(end - slash - 1), out->blob, sizeof(out->blob)))
		return lfsfs_error_set(-LFSFS_EPARSE, "blob name too long in '%.*s'",
				       (int)strcspn(url, "?#"), url);
	if (q) {
		n = strcspn(q, "#");
		if (n >= sizeof(out->query))
			return lfsfs_error_set(-LFSFS_EPARSE, "query string too long in '%.*s'",
					       (int)strcspn(url, "?#"), url);
		memcpy(out->query, q, n);
		out->query[n] = '\0';
	}
	return 0;
bad:
	return lfsfs_error_set(-LFSFS_EPARSE, "cannot parse '%.*s': want az://container/blob or "
			       "https://ACCOUNT.blob.core.windows.net/container/blob",
			       (int)strcspn(url, "?#"), url);
}

/* ------------------------------------------------------ connection strings */

static void trim(const char **s, size_t *n)
{
	while (*n && isspace((unsigned char)**s)) {
		(*s)++;
		(*n)--;
	}
	while (*n && isspace((unsigned char)(*s)[*n - 1]))
		(*n)--;
}

static void strip_slashes(char *s)
{
	size_t n = strlen(s);

	while (n && s[n - 1] == '/')
		s[--n] = '\0';
}

int lfsfs_az_connstr_parse(const char *s, struct lfsfs_az_connstr *out)
{
	static const struct {
		const char *name;
		size_t off, cap;
	} keys[] = {
#define CS_FIELD(name, f) { name, offsetof(struct lfsfs_az_connstr, f), \
			    sizeof(((struct lfsfs_az_connstr *)0)->f) }
		CS_FIELD("AccountName", account),
		CS_FIELD("AccountKey", key),
		CS_FIELD("BlobEndpoint", blob_endpoint),
		CS_FIELD("DefaultEndpointsProtocol", protocol),
		CS_FIELD("EndpointSuffix", suffix),
		CS_FIELD("SharedAccessSignature", sas),
#undef CS_FIELD
	};
	const char *p = s;

	memset(out, 0, sizeof(*out));
	while (*p) {
		const char *seg = p, *eq, *k, *v;
		size_t n = strcspn(p, ";"), kn, vn;

		p += n;
		if (*p == ';')
			p++;
		trim(&seg, &n);
		if (!n)
			continue;
		eq = memchr(seg, '=', n);
		if (!eq || eq == seg)
			return lfsfs_error_set(-LFSFS_EPARSE, "malformed connection string: a part "
					       "is not Key=Value");
		k = seg;
		kn = (size_t)(eq - seg);
		v = eq + 1;
		vn = n - kn - 1;
		trim(&k, &kn);
		trim(&v, &vn);
		if (kn == 21 && !strncasecmp(k, "UseDevelopmentStorage", kn)) {
			out->dev = vn == 4 && !strncasecmp(v, "true", 4);
			continue;
		}
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			char *dst = (char *)out + keys[i].off;
			if (strlen(keys[i].name) != kn || strncasecmp(keys[i].name, k, kn))
				continue;
			if (vn >= keys[i].cap)
				return lfsfs_error_set(-LFSFS_EPARSE, "connection string value of "
						       "%s is too long", keys[i].name);
			memcpy(dst, v, vn);
			dst[vn] = '\0';
		}
	}
	if (out->sas[0] == '?')
		memmove(out->sas, out->sas + 1, strlen(out->sas));
	strip_slashes(out->blob_endpoint);
	if (out->dev) {
		if (!out->account[0])
			snprintf(out->account, sizeof(out->account), "%s", LFSFS_AZ_DEV_ACCOUNT);
		if (!out->key[0] && !out->sas[0])
			snprintf(out->key, sizeof(out->key), "%s", LFSFS_AZ_DEV_KEY);
		if (!out->blob_endpoint[0])
			snprintf(out->blob_endpoint, sizeof(out->blob_endpoint), "%s",
				 LFSFS_AZ_DEV_ENDPOINT);
	}
	if (out->protocol[0] && strcasecmp(out->protocol, "https") &&
	    strcasecmp(out->protocol, "http"))
		return lfsfs_error_set(-LFSFS_EPARSE, "connection string DefaultEndpointsProtocol "
				       "must be http or https");
	if (out->blob_endpoint[0] && strncasecmp(out->blob_endpoint, "https://", 8) &&
	    strncasecmp(out->blob_endpoint, "http://", 7))
		return lfsfs_error_set(-LFSFS_EPARSE, "connection string BlobEndpoint must be "
				       "an http(s) URL");
	if (!out->account[0] && !out->key[0] && !out->sas[0] && !out->blob_endpoint[0])
		return lfsfs_error_set(-LFSFS_EPARSE, "connection string names no AccountName, "
				       "AccountKey, SharedAccessSignature or BlobEndpoint");
	return 0;
}

/* ------------------------------------------------------------- SharedKey */

struct kv {
	char *name, *value;
};

static int kv_cmp(const void *a, const void *b)
{
	const struct kv *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->value, y->value);
}

/* Percent-decode (and '+' -> ' ', as form-encoded queries mean it) n bytes. */
static char *decode(const char *s, size_t n)
{
	char *out = malloc(n + 1);
	size_t o = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		} else {
			out[o++] = s[i] == '+' ? ' ' : s[i];
		}
	}
	out[o] = '\0';
	return out;
}

static int std_slot(const char *name)
{
	static const char *const slots[] = {
		"Content-Encoding", "Content-Language", "Content-Length", "Content-MD5",
		"Content-Type", "Date", "If-Modified-Since", "If-Match", "If-None-Match",
		"If-Unmodified-Since", "Range",
	};
	for (int i = 0; i < (int)(sizeof(slots) / sizeof(slots[0])); i++)
		if (!strcasecmp(name, slots[i]))
			return i;
	return -1;
}

/* x-ms- header value: trimmed, whitespace runs folded to one space. */
static void append_folded(struct lfsfs_buf *b, const char *v)
{
	int space = 0;

	while (*v && isspace((unsigned char)*v))
		v++;
	for (; *v; v++) {
		if (isspace((unsigned char)*v)) {
			space = 1;
			continue;
		}
		if (space)
			lfsfs_buf_append(b, " ", 1);
		space = 0;
		lfsfs_buf_append(b, v, 1);
	}
}

int lfsfs_az_string_to_sign(const char *verb, const struct lfsfs_az_header *headers,
			    size_t nheaders, const char *account, const char *path,
			    const char *query, struct lfsfs_buf *out)
{
	const char *slot[11] = { 0 };
	struct kv *xms = NULL, *qp = NULL;
	size_t nx = 0, nq = 0;
	int rc = -ENOMEM;

	lfsfs_buf_reset(out);
	xms = calloc(nheaders ? nheaders : 1, sizeof(*xms));
	if (!xms)
		goto out;
	for (size_t i = 0; i < nheaders; i++) {
		int s = std_slot(headers[i].name);
		if (s >= 0) {
			slot[s] = headers[i].value;
		} else if (!strncasecmp(headers[i].name, "x-ms-", 5)) {
			xms[nx].name = strdup(headers[i].name);
			xms[nx].value = strdup(headers[i].value ? headers[i].value : "");
			if (!xms[nx].name || !xms[nx].value) {
				nx++;
				goto out;
			}
			for (char *c = xms[nx].name; *c; c++)
				*c = (char)tolower((unsigned char)*c);
			nx++;
		}
	}
	if (slot[2] && !strcmp(slot[2], "0"))
		slot[2] = NULL;       /* Content-Length: empty when zero */
	lfsfs_buf_appends(out, verb);
	for (int i = 0; i < 11; i++) {
		lfsfs_buf_append(out, "\n", 1);
		if (slot[i])
			lfsfs_buf_appends(out, slot[i]);
	}
	lfsfs_buf_append(out, "\n", 1);
	qsort(xms, nx, sizeof(*xms), kv_cmp);
	for (size_t i = 0; i < nx; i++) {
		lfsfs_buf_printf(out, "%s:", xms[i].name);
		append_folded(out, xms[i].value);
		lfsfs_buf_append(out, "\n", 1);
	}
	lfsfs_buf_printf(out, "/%s%s", account, path);
	if (query && *query) {
		size_t cap = 1;
		for (const char *c = query; *c; c++)
			cap += *c == '&';
		qp = calloc(cap, sizeof(*qp));
		if (!qp)
			goto out;
		for (const char *p = query; *p;) {
			size_t n = strcspn(p, "&");
			const char *eq = memchr(p, '=', n);
			size_t kn = eq ? (size_t)(eq - p) : n;
			if (n) {
				qp[nq].name = decode(p, kn);
				qp[nq].value = eq ? decode(eq + 1, n - kn - 1) : strdup("");
				nq++;
				if (!qp[nq - 1].name || !qp[nq - 1].value)
					goto out;
				for (char *c = qp[nq - 1].name; *c; c++)
					*c = (char)tolower((unsigned char)*c);
			}
			p += n;
			if (*p == '&')
				p++;
		}
		qsort(qp, nq, sizeof(*qp), kv_cmp);
		for (size_t i = 0; i < nq; i++) {
			if (i && !strcmp(qp[i].name, qp[i - 1].name))
				lfsfs_buf_printf(out, ",%s", qp[i].value);
			else
				lfsfs_buf_printf(out, "\n%s:%s", qp[i].name, qp[i].value);
		}
	}
	rc = out->data ? 0 : -ENOMEM;
out:
	for (size_t i = 0; i < nx; i++) {
		free(xms[i].name);
		free(xms[i].value);
	}
	for (size_t i = 0; i < nq; i++) {
		free(qp[i].name);
		free(qp[i].value);
	}
	free(xms);
	free(qp);
	return rc;
}

/* Decode standard base64 (with padding); -1 if malformed. */
static int b64_decode(const char *in, unsigned char *out, size_t cap, size_t *outlen)
{
	size_t n = strlen(in), pad = 0;
	int m;

	if (!n || n % 4 || n / 4 * 3 > cap)
		return -1;
	if (in[n - 1] == '=')
		pad++;
	if (in[n - 2] == '=')
		pad++;
	m = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
	if (m < 0 || (size_t)m < pad)
		return -1;
	*outlen = (size_t)m - pad;
	return 0;
}

static int key_valid(const char *key_b64)
{
	unsigned char raw[192];
	size_t n;

	return !b64_decode(key_b64, raw, sizeof(raw), &n) && n > 0;
}

int lfsfs_az_sign(const char *key_b64, const char *msg, size_t len, char *out, size_t cap)
{
	unsigned char key[192], mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	size_t keylen;

	if (cap < 45)
		return -ENOBUFS;
	if (b64_decode(key_b64, key, sizeof(key), &keylen) || !keylen)
		return lfsfs_error_set(-LFSFS_EPARSE, "the account key is not valid base64");
	if (!HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, len, mac, &maclen))
		return lfsfs_error_set(-EIO, "HMAC-SHA256 failed");
	EVP_EncodeBlock((unsigned char *)out, mac, (int)maclen);
	memset(key, 0, sizeof(key));
	return 0;
}

void lfsfs_az_http_date(time_t t, char out[32])
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char mons[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, 32, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7],
		 tm.tm_mday, mons[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
		 tm.tm_sec);
}

/* -------------------------------------------------- the credential chain */

/* Copy a trimmed environment variable; "" when unset or too long. */
static void env_copy(struct lfsfs_az_env *env, const char *name, char *dst, size_t cap)
{
	const char *v = getenv(name);
	size_t n, o = strlen(env->skipped);

	dst[0] = '\0';
	if (!v)
		return;
	n = strlen(v);
	trim(&v, &n);
	if (n >= cap) {
		snprintf(env->skipped + o, sizeof(env->skipped) - o, "%s%s is longer than %zu bytes",
			 o ? "; " : "", name, cap - 1);
		return;
	}
	memcpy(dst, v, n);
	dst[n] = '\0';
}

void lfsfs_az_env_load(struct lfsfs_az_env *env, const struct lfsfs_config *cfg)
{
	const char *cs = getenv("AZURE_STORAGE_CONNECTION_STRING");
	const char *v;

	memset(env, 0, sizeof(*env));
	if (cs && *cs) {
		env->have_connstr = 1;
		if (lfsfs_az_connstr_parse(cs, &env->cs))
			snprintf(env->connstr_error, sizeof(env->connstr_error), "%s",
				 lfsfs_error_message());
		else
			env->connstr_ok = 1;
	}
	env_copy(env, "AZURE_STORAGE_ACCOUNT", env->account, sizeof(env->account));
	env_copy(env, "AZURE_STORAGE_KEY", env->key, sizeof(env->key));
	env_copy(env, "AZURE_STORAGE_SAS_TOKEN", env->sas, sizeof(env->sas));
	if (env->sas[0] == '?')
		memmove(env->sas, env->sas + 1, strlen(env->sas));
	env_copy(env, "AZURE_CLIENT_ID", env->client_id, sizeof(env->client_id));
	env_copy(env, LFSFS_AZ_IMDS_ENV, env->imds, sizeof(env->imds));
	if (!env->imds[0])
		snprintf(env->imds, sizeof(env->imds), "%s", LFSFS_AZ_IMDS_DEFAULT);
	strip_slashes(env->imds);
	if ((v = lfsfs_config_get(cfg, "lfsfs.azure.account")) && strlen(v) < sizeof(env->cfg_account))
		snprintf(env->cfg_account, sizeof(env->cfg_account), "%s", v);
	if ((v = lfsfs_config_get(cfg, "lfsfs.azure.endpoint")) &&
	    strlen(v) < sizeof(env->cfg_endpoint)) {
		snprintf(env->cfg_endpoint, sizeof(env->cfg_endpoint), "%s", v);
		strip_slashes(env->cfg_endpoint);
	}
}

/* Length of "scheme://host[:port]" in an endpoint URL (0 if not http(s)). */
static size_t origin_len(const char *ep)
{
	const char *p;

	if (strncasecmp(ep, "https://", 8) && strncasecmp(ep, "http://", 7))
		return 0;
	p = strstr(ep, "://") + 3;
	p += strcspn(p, "/?#");
	return (size_t)(p - ep);
}

/* The account an endpoint implies: first path segment (path-style) or the
 * first host label of ACCOUNT.blob.core.*; "" if neither. */
static void endpoint_account(const char *ep, char *out, size_t cap)
{
	size_t ol = origin_len(ep), n;
	char host[256];

	out[0] = '\0';
	if (!ol)
		return;
	if (ep[ol] == '/') {
		n = strcspn(ep + ol + 1, "/?#");
		if (n && n < cap) {
			memcpy(out, ep + ol + 1, n);
			out[n] = '\0';
		}
		return;
	}
	if (url_host(ep, host, sizeof(host), NULL))
		blob_host_account(host, out, cap);
}

static void tried_add(struct lfsfs_az_target *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void tried_add(struct lfsfs_az_target *t, const char *fmt, ...)
{
	size_t n = strlen(t->tried);
	va_list ap;

	if (n && n + 2 < sizeof(t->tried)) {
		memcpy(t->tried + n, "; ", 3);
		n += 2;
	}
	va_start(ap, fmt);
	vsnprintf(t->tried + n, sizeof(t->tried) - n, fmt, ap);
	va_end(ap);
}

int lfsfs_az_target(const struct lfsfs_az_env *env, const char *url, struct lfsfs_az_target *t)
{
	const struct lfsfs_az_connstr *cs = env->connstr_ok ? &env->cs : NULL;
	const char *ep = NULL;
	char derived[64];
	int rc;

	memset(t, 0, sizeof(*t));
	if ((rc = lfsfs_az_url_parse(url, &t->u)))
		return rc;

	/* endpoint */
	if (env->cfg_endpoint[0]) {
		ep = env->cfg_endpoint;
		t->endpoint_src = "git config lfsfs.azure.endpoint";
	} else if (t->u.https_form) {
		ep = t->u.origin;
		t->endpoint_src = "the URL";
	} else if (cs && cs->blob_endpoint[0]) {
		ep = cs->blob_endpoint;
		t->endpoint_src = cs->dev ? "AZURE_STORAGE_CONNECTION_STRING UseDevelopmentStorage"
					  : "AZURE_STORAGE_CONNECTION_STRING BlobEndpoint";
	}
	if (ep && !origin_len(ep))
		return lfsfs_error_set(-LFSFS_EPARSE, "cannot read '%s': endpoint from %s is not an "
				       "http(s) URL", url, t->endpoint_src);

	/* account */
	derived[0] = '\0';
	if (ep)
		endpoint_account(ep, derived, sizeof(derived));
	if (env->cfg_account[0]) {
		snprintf(t->account, sizeof(t->account), "%s", env->cfg_account);
		t->account_src = "git config lfsfs.azure.account";
	} else if (t->u.https_form && t->u.account[0]) {
		snprintf(t->account, sizeof(t->account), "%s", t->u.account);
		t->account_src = "the URL host";
	} else if (derived[0] && (env->cfg_endpoint[0] || t->u.https_form)) {
		snprintf(t->account, sizeof(t->account), "%s", derived);
		t->account_src = "the endpoint";
	} else if (cs && cs->account[0]) {
		snprintf(t->account, sizeof(t->account), "%s", cs->account);
		t->account_src = "AZURE_STORAGE_CONNECTION_STRING AccountName";
	} else if (env->account[0]) {
		snprintf(t->account, sizeof(t->account), "%s", env->account);
		t->account_src = "AZURE_STORAGE_ACCOUNT";
	} else if (derived[0]) {
		snprintf(t->account, sizeof(t->account), "%s", derived);
		t->account_src = "the endpoint";
	} else {
		return lfsfs_error_set(-LFSFS_ECREDENTIALS_MISSING,
				       "cannot read '%s': no Azure storage account known; set "
				       "AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT "
				       "(or git config lfsfs.azure.account / lfsfs.azure.endpoint)",
				       url);
	}
	if (!ep) {
		const char *proto = cs && cs->protocol[0] ? cs->protocol : "https";
		const char *suffix = cs && cs->suffix[0] ? cs->suffix : "core.windows.net";
		snprintf(t->base, sizeof(t->base), "%s://%s.blob.%s", proto, t->account, suffix);
		t->endpoint_src = cs && (cs->protocol[0] || cs->suffix[0])
					  ? "AZURE_STORAGE_CONNECTION_STRING EndpointSuffix"
					  : "default for the account";
	} else {
		snprintf(t->base, sizeof(t->base), "%s", ep);
	}
	t->origin_len = origin_len(t->base);
	t->path_style = t->base[t->origin_len] != '\0';

	/* credentials: first that applies */
	if (lfsfs_az_query_is_sas(t->u.query)) {
		t->auth = LFSFS_AZ_SAS;
		t->cred_src = "the URL's query";
		return 0;
	}
	if (env->skipped[0])
		tried_add(t, "%s", env->skipped);
	if (!env->have_connstr) {
		tried_add(t, "no connection string");
	} else if (!cs) {
		tried_add(t, "AZURE_STORAGE_CONNECTION_STRING: %s", env->connstr_error);
	} else {
		char csacct[64];
		snprintf(csacct, sizeof(csacct), "%s", cs->account);
		if (!csacct[0] && cs->blob_endpoint[0])
			endpoint_account(cs->blob_endpoint, csacct, sizeof(csacct));
		if (csacct[0] && strcasecmp(csacct, t->account)) {
			tried_add(t, "AZURE_STORAGE_CONNECTION_STRING is for account '%s', not '%s'",
				  csacct, t->account);
		} else if (cs->key[0] && key_valid(cs->key)) {
			t->auth = LFSFS_AZ_SHAREDKEY;
			t->key = cs->key;
			t->cred_src = "AZURE_STORAGE_CONNECTION_STRING (AccountKey)";
			return 0;
		} else if (cs->key[0]) {
			tried_add(t, "AZURE_STORAGE_CONNECTION_STRING: AccountKey is not valid base64");
		} else if (cs->sas[0]) {
			t->auth = LFSFS_AZ_SAS;
			t->sas = cs->sas;
			t->cred_src = "AZURE_STORAGE_CONNECTION_STRING (SharedAccessSignature)";
			return 0;
		} else {
			tried_add(t, "AZURE_STORAGE_CONNECTION_STRING has no AccountKey or "
				  "SharedAccessSignature");
		}
	}
	if (!env->key[0]) {
		tried_add(t, "no account key");
	} else if (!env->account[0]) {
		tried_add(t, "AZURE_STORAGE_KEY set but AZURE_STORAGE_ACCOUNT unset");
	} else if (strcasecmp(env->account, t->account)) {
		tried_add(t, "AZURE_STORAGE_ACCOUNT is '%s', not '%s'", env->account, t->account);
	} else if (!key_valid(env->key)) {
		tried_add(t, "AZURE_STORAGE_KEY is not valid base64");
	} else {
		t->auth = LFSFS_AZ_SHAREDKEY;
		t->key = env->key;
		t->cred_src = "AZURE_STORAGE_ACCOUNT + AZURE_STORAGE_KEY";
		return 0;
	}
	if (env->sas[0]) {
		t->auth = LFSFS_AZ_SAS;
		t->sas = env->sas;
		t->cred_src = "AZURE_STORAGE_SAS_TOKEN";
		return 0;
	}
	tried_add(t, "no SAS token");
	t->auth = LFSFS_AZ_ANON;
	t->cred_src = "anonymous";
	return 0;
}

int lfsfs_az_build(const struct lfsfs_az_target *t, const char *verb, uint64_t range_start,
		   uint64_t range_len, const char *if_match, const char *bearer, time_t now,
		   char **url_out, struct curl_slist **hdrs_out)
{
	struct lfsfs_buf url = LFSFS_BUF_INIT(16384), sts = LFSFS_BUF_INIT(65536);
	struct lfsfs_buf line = LFSFS_BUF_INIT(16384);
	struct lfsfs_az_header h[4];
	struct curl_slist *hdrs = NULL, *n;
	char date[32], range[64], sig[64];
	size_t nh = 0;
	int rc = -ENOMEM;

	*url_out = NULL;
	*hdrs_out = NULL;
	lfsfs_az_http_date(now, date);
	lfsfs_buf_printf(&url, "%s/%s/%s", t->base, t->u.container, t->u.blob);
	if (t->u.query[0])
		lfsfs_buf_printf(&url, "?%s", t->u.query);
	if (t->auth == LFSFS_AZ_SAS && t->sas && t->sas[0])
		lfsfs_buf_printf(&url, "%c%s", t->u.query[0] ? '&' : '?', t->sas);
	if (!url.data)
		goto out;
	h[nh++] = (struct lfsfs_az_header){ "x-ms-date", date };
	h[nh++] = (struct lfsfs_az_header){ "x-ms-version", LFSFS_AZ_VERSION };
	for (size_t i = 0; i < nh; i++) {
		lfsfs_buf_reset(&line);
		lfsfs_buf_printf(&line, "%s: %s", h[i].name, h[i].value);
		if (!line.data || !(n = curl_slist_append(hdrs, line.data)))
			goto out;
		hdrs = n;
	}
	if (range_len) {
		snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)range_start,
			 (unsigned long long)(range_start + range_len - 1));
		h[nh++] = (struct lfsfs_az_header){ "Range", range };
	}
	if (if_match && *if_match)
		h[nh++] = (struct lfsfs_az_header){ "If-Match", if_match };
	lfsfs_buf_reset(&line);
	if (t->auth == LFSFS_AZ_SHAREDKEY) {
		/* the signed path is the escaped path as sent: with a path-style
		 * endpoint it starts with the endpoint's path (the account) */
		struct lfsfs_buf path = LFSFS_BUF_INIT(8192);
		lfsfs_buf_printf(&path, "%s/%s/%s", t->base + t->origin_len, t->u.container,
				 t->u.blob);
		rc = path.data ? lfsfs_az_string_to_sign(verb, h, nh, t->account, path.data,
							 t->u.query, &sts)
			       : -ENOMEM;
		lfsfs_buf_release(&path);
		if (rc)
			goto out;
		if ((rc = lfsfs_az_sign(t->key, sts.data, sts.len, sig, sizeof(sig))))
			goto out;
		rc = -ENOMEM;
		lfsfs_buf_printf(&line, "Authorization: SharedKey %s:%s", t->account, sig);
	} else if (t->auth == LFSFS_AZ_BEARER && bearer) {
		lfsfs_buf_printf(&line, "Authorization: Bearer %s", bearer);
	}
	if (line.len) {
		if (!line.data || !(n = curl_slist_append(hdrs, line.data)))
			goto out;
		hdrs = n;
	}
	*url_out = lfsfs_buf_detach(&url);
	*hdrs_out = hdrs;
	hdrs = NULL;
	rc = 0;
out:
	if (rc == -ENOMEM)
		lfsfs_error_set(rc, "out of memory");
	curl_slist_free_all(hdrs);
	lfsfs_buf_release(&url);
	lfsfs_buf_release(&sts);
	if (line.data)
		memset(line.data, 0, line.len);   /* may hold a bearer token */
	lfsfs_buf_release(&line);
	return rc;
}

/* ------------------------------------------- managed identity (IMDS) */

void lfsfs_az_token_init(struct lfsfs_az_token_cache *c)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
}

void lfsfs_az_token_release(struct lfsfs_az_token_cache *c)
{
	memset(c->token, 0, sizeof(c->token));
	pthread_mutex_destroy(&c->lock);
}

void lfsfs_az_token_invalidate(struct lfsfs_az_token_cache *c)
{
	pthread_mutex_lock(&c->lock);
	c->expires_on = 0;
	memset(c->token, 0, sizeof(c->token));
	pthread_mutex_unlock(&c->lock);
}

static size_t imds_write(char *data, size_t size, size_t n, void *p)
{
	return lfsfs_buf_append(p, data, size * n) ? 0 : size * n;
}

/* A JSON number or numeric string as seconds; 0 if absent. */
static time_t json_seconds(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	char *end;
	long long x;

	if (cJSON_IsNumber(v))
		return (time_t)v->valuedouble;
	if (!cJSON_IsString(v) || !v->valuestring)
		return 0;
	x = strtoll(v->valuestring, &end, 10);
	return end != v->valuestring && !*end ? (time_t)x : 0;
}

/* Printable, bounded copy of a server-supplied string for a message. */
static void clean_copy(char *dst, size_t cap, const char *src)
{
	size_t o = 0;

	for (; src && *src && o + 1 < cap; src++)
		dst[o++] = isprint((unsigned char)*src) ? *src : ' ';
	dst[o] = '\0';
}

/* One token request; 0 or a message in c->error and the retry delay in
 * *backoff. Called with c->lock held. */
static int imds_request(struct lfsfs_az_token_cache *c, const char *base, const char *client_id,
			time_t *backoff)
{
	struct lfsfs_buf body = LFSFS_BUF_INIT(256 * 1024), url = LFSFS_BUF_INIT(4096);
	struct curl_slist *hdrs = NULL;
	cJSON *j = NULL;
	const cJSON *tok;
	CURL *h = curl_easy_init();
	CURLcode cc;
	long status = 0;
	time_t now, exp;
	int rc = -1;

	*backoff = 300;
	c->requests++;
	lfsfs_buf_printf(&url, "%s/metadata/identity/oauth2/token?api-version=2018-02-01"
			 "&resource=https%%3A%%2F%%2Fstorage.azure.com%%2F", base);
	if (client_id && *client_id) {
		char *e = h ? curl_easy_escape(h, client_id, 0) : NULL;
		if (e)
			lfsfs_buf_printf(&url, "&client_id=%s", e);
		curl_free(e);
	}
	hdrs = curl_slist_append(NULL, "Metadata: true");
	if (!h || !hdrs || !url.data) {
		snprintf(c->error, sizeof(c->error), "managed identity: out of memory");
		goto out;
	}
	curl_easy_setopt(h, CURLOPT_URL, url.data);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, imds_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	/* IMDS is link-local: never through a proxy, and a machine outside
	 * Azure must find out fast (the shared engine's 20 s connect timeout
	 * would stall the first anonymous read). */
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_USERAGENT, "lfsfs/" LFSFS_VERSION);
	cc = curl_easy_perform(h);
	if (cc != CURLE_OK) {
		/* short: it ends up in every "no credentials" message */
		snprintf(c->error, sizeof(c->error), "managed identity: IMDS not reachable");
		log_debug("azure: IMDS at %s: %s", base, curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	j = body.data ? cJSON_Parse(body.data) : NULL;
	if (status != 200) {
		const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "error_description");
		char why[120];
		clean_copy(why, sizeof(why), cJSON_IsString(d) ? d->valuestring : "");
		if (status == 429 || status >= 500)
			*backoff = 10;
		snprintf(c->error, sizeof(c->error), "managed identity: IMDS answered HTTP %ld%s%s",
			 status, why[0] ? ": " : "", why);
		goto out;
	}
	tok = cJSON_GetObjectItemCaseSensitive(j, "access_token");
	if (!cJSON_IsString(tok) || !tok->valuestring || !tok->valuestring[0] ||
	    strlen(tok->valuestring) >= sizeof(c->token)) {
		snprintf(c->error, sizeof(c->error), "managed identity: IMDS reply has no usable "
			 "access_token");
		goto out;
	}
	now = time(NULL);
	exp = json_seconds(j, "expires_on");
	if (!exp && (exp = json_seconds(j, "expires_in")))
		exp += now;
	if (!exp)
		exp = now + 600;    /* unknown lifetime: ask again soon */
	snprintf(c->token, sizeof(c->token), "%s", tok->valuestring);
	c->expires_on = exp;
	c->error[0] = '\0';
	rc = 0;
out:
	cJSON_Delete(j);
	if (body.data)
		memset(body.data, 0, body.len);
	lfsfs_buf_release(&body);
	lfsfs_buf_release(&url);
	curl_slist_free_all(hdrs);
	if (h)
		curl_easy_cleanup(h);
	return rc;
}

int lfsfs_az_token_get(struct lfsfs_az_token_cache *c, const char *imds_base,
		       const char *client_id, char *out, size_t cap)
{
	time_t now = time(NULL), backoff;
	int rc = 0;

	pthread_mutex_lock(&c->lock);
	if (!(c->expires_on && now < c->expires_on - 300)) {
		if (c->retry_after && now < c->retry_after) {
			rc = -LFSFS_ECREDENTIALS_MISSING;
		} else if (imds_request(c, imds_base, client_id, &backoff)) {
			c->retry_after = time(NULL) + backoff;
			rc = -LFSFS_ECREDENTIALS_MISSING;
		} else {
			c->retry_after = 0;
		}
	}
	if (!rc && strlen(c->token) >= cap)
		rc = -ENOBUFS;
	if (!rc)
		snprintf(out, cap, "%s", c->token);
	else
		lfsfs_error_set(rc, "%s", rc == -ENOBUFS ? "token too long" : c->error);
	pthread_mutex_unlock(&c->lock);
	return rc;
}
