/*
 * Azure Blob Storage backend: az://container/blob and
 * https://ACCOUNT.blob.core.windows.net/container/blob, signed with
 * SharedKey, a SAS, a managed-identity bearer token, or sent anonymously
 * (endpoint and credential rules: azure_auth.h).  Ranged GETs go through
 * the shared net engine exactly like the plain https backend; this file
 * adds the signature and turns Azure's error documents into messages that
 * name the credential source and what to change.
 */
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "lfsfs/error.h"
#include "net/net.h"
#include "store/azure_auth.h"
#include "util/log.h"
#include "util/timefmt.h"

struct az_state {
	struct lfsfs_az_env env;            /* read once; immutable afterwards */
	struct lfsfs_az_token_cache tok;    /* has its own lock */
};

/* One request: the engine request plus what failure messages need. */
struct az_call {
	struct lfsfs_http_req req;          /* first: req->ctx is this call */
	struct lfsfs_fetch *f;              /* fetch being served, or NULL (head) */
	struct az_state *s;
	enum lfsfs_az_auth auth;
	const char *cred_src;               /* static text */
	const char *endpoint_src;           /* static text */
	char account[64];
	char where[320];                    /* endpoint + container/blob, no query */
	char sas_expiry[32];                /* the SAS's se= value, if any */
	char tried[700];
	char *url;                          /* owned */
};

static void *az_create(struct lfsfs_store *st)
{
	struct az_state *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	lfsfs_az_env_load(&s->env, st->cfg);
	lfsfs_az_token_init(&s->tok);
	return s;
}

static void az_release(void *p)
{
	struct az_state *s = p;

	if (!s)
		return;
	lfsfs_az_token_release(&s->tok);
	memset(&s->env, 0, sizeof(s->env));
	free(s);
}

static struct az_state *az_state(struct lfsfs_store *st);

static int az_handles(const char *url)
{
	return lfsfs_az_url_handles(url);
}

/* The value of parameter name in a query ("" if absent), decoded enough
 * for a timestamp (%3A -> ':'). */
static void query_param(const char *query, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name), o = 0;
	const char *p = query;

	out[0] = '\0';
	while (p && *p) {
		if (!strncmp(p, name, nl) && p[nl] == '=') {
			for (p += nl + 1; *p && *p != '&' && o + 1 < cap; p++) {
				if (!strncasecmp(p, "%3A", 3)) {
					out[o++] = ':';
					p += 2;
				} else {
					out[o++] = *p;
				}
			}
			out[o] = '\0';
			return;
		}
		p = strchr(p, '&');
		if (p)
			p++;
	}
}

static void call_free(struct az_call *c)
{
	if (!c)
		return;
	curl_slist_free_all(c->req.headers);
	curl_slist_free_all(c->req.resp_headers);
	lfsfs_buf_release(&c->req.errbody);
	lfsfs_buf_release(&c->req.body);
	free(c->url);
	free(c);
}

/*
 * Resolve url to a signed request in c: endpoint, account, credential
 * (asking IMDS when nothing static applies), URL and headers.
 */
static int az_prepare(struct az_state *s, const char *url, const char *verb, uint64_t off,
		      uint64_t len, const char *if_match, struct az_call *c)
{
	struct lfsfs_az_target t;
	struct curl_slist *hdrs = NULL;
	char *token = NULL;
	int rc;

	if ((rc = lfsfs_az_target(&s->env, url, &t)))
		return rc;
	c->s = s;
	snprintf(c->account, sizeof(c->account), "%s", t.account);
	snprintf(c->where, sizeof(c->where), "%s/%s/%s", t.base, t.u.container, t.u.blob);
	snprintf(c->tried, sizeof(c->tried), "%s", t.tried);
	if (t.auth == LFSFS_AZ_ANON) {
		token = malloc(sizeof(s->tok.token));
		if (!token)
			return lfsfs_error_set(-ENOMEM, "out of memory");
		if (!lfsfs_az_token_get(&s->tok, s->env.imds, s->env.client_id, token,
					sizeof(s->tok.token))) {
			t.auth = LFSFS_AZ_BEARER;
			t.cred_src = "managed identity (IMDS)";
		} else {
			size_t n = strlen(c->tried);
			snprintf(c->tried + n, sizeof(c->tried) - n, "%s%s", n ? "; " : "",
				 lfsfs_error_message());
		}
	}
	if (t.auth == LFSFS_AZ_SAS)
		query_param(t.sas ? t.sas : t.u.query, "se", c->sas_expiry, sizeof(c->sas_expiry));
	c->auth = t.auth;
	c->cred_src = t.cred_src;
	c->endpoint_src = t.endpoint_src;
	rc = lfsfs_az_build(&t, verb, off, len, if_match, token, time(NULL), &c->url, &hdrs);
	if (token) {
		memset(token, 0, sizeof(s->tok.token));
		free(token);
	}
	if (rc)
		return rc;
	c->req.url = c->url;
	c->req.headers = hdrs;
	log_debug("azure: %s %s (account '%s' from %s, endpoint from %s, credentials: %s)", verb,
		  c->where, t.account, t.account_src, t.endpoint_src, t.cred_src);
	return 0;
}

/* Text of <tag>...</tag> in an Azure XML error document, bounded and
 * printable; "" if absent. */
static void xml_field(const char *doc, const char *tag, char *out, size_t cap)
{
	char open[64], close[64];
	const char *a, *b;
	size_t o = 0;

	out[0] = '\0';
	if (!doc)
		return;
	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	if (!(a = strstr(doc, open)))
		return;
	a += strlen(open);
	if (!(b = strstr(a, close)))
		return;
	for (; a < b && o + 1 < cap; a++)
		out[o++] = *a == '\n' || *a == '\r' || *a == '\t' ? ' ' : *a;
	out[o] = '\0';
}

/* An unparseable `se` is left for the server to judge. */
static int sas_expired(const char *se, time_t now)
{
	time_t t;

	return lfsfs_time_iso8601_utc(se, &t) == 0 && t <= now;
}

/*
 * Turn a failed request into the code and message a person needs: which
 * credential source was used or which were tried, and what to change.
 * rc: the engine's code; code: Azure's error code ("" if unknown);
 * detail: the engine's text.  Writes out, returns the final code.
 */
static int az_failure(struct az_call *c, int rc, long status, const char *code,
		      const char *detail, char *out, size_t cap)
{
	char sc[96];

	snprintf(sc, sizeof(sc), "HTTP %ld%s%s", status, code[0] ? " " : "", code);
	if (!status && rc == -LFSFS_ESOURCE_NOT_ACCESSIBLE) {
		/* transport failure after retries: say where we tried to go */
		snprintf(out, cap, "%s (%s, endpoint from %s)", detail, c->where, c->endpoint_src);
		return rc;
	}
	if (rc == -LFSFS_EIMMUTABILITY || rc == -LFSFS_ESIZE_MISMATCH || rc == -ENOSPC ||
	    rc == -EIO || rc == -ECANCELED || rc == -LFSFS_EUNSUPPORTED || !status) {
		snprintf(out, cap, "%s", detail);
		return rc;
	}
	if (c->auth == LFSFS_AZ_ANON && (status == 401 || status == 403 || status == 409 ||
					 (status == 404 && strcmp(code, "BlobNotFound")))) {
		/* kept short: the cache prefixes it with the object and URL */
		snprintf(out, cap, "no Azure credentials for '%s', anonymous access refused (%s); "
			 "set AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT + "
			 "AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN (tried: %s)",
			 c->account, sc, c->tried);
		return -LFSFS_ECREDENTIALS_MISSING;
	}
	if (status == 401 || status == 403) {
		/* Azure says AuthenticationFailed for a bad signature (Azurite:
		 * AuthorizationFailure); these codes mean the credential was
		 * accepted but does not allow the read. */
		if (!strcmp(code, "AuthorizationPermissionMismatch") ||
		    !strcmp(code, "AuthorizationResourceTypeMismatch") ||
		    !strcmp(code, "AuthorizationServiceMismatch") ||
		    !strcmp(code, "AuthorizationProtocolMismatch") ||
		    !strcmp(code, "AuthorizationSourceIPMismatch")) {
			snprintf(out, cap, "credentials from %s were accepted by account '%s' but do "
				 "not allow this read (%s); check the role assignment (Storage Blob "
				 "Data Reader) or the SAS's permissions (sp=r), resource, protocol "
				 "and IP range", c->cred_src, c->account, sc);
			return -LFSFS_ESOURCE_NOT_ACCESSIBLE;
		}
		switch (c->auth) {
		case LFSFS_AZ_SHAREDKEY:
			snprintf(out, cap, "credentials from %s were rejected by account '%s' (%s); "
				 "check that the key is the current key of that account and that "
				 "the clock is right", c->cred_src, c->account, sc);
			break;
		case LFSFS_AZ_SAS:
			snprintf(out, cap, "credentials from %s were rejected by account '%s' (%s); "
				 "%s", c->cred_src, c->account, sc,
				 c->sas_expiry[0] && sas_expired(c->sas_expiry, time(NULL))
					 ? "the SAS has expired (se=), generate a new one"
					 : "the SAS must be signed for this account and container, "
					   "allow read (sp=r) and be within its start/expiry time");
			break;
		case LFSFS_AZ_BEARER:
			lfsfs_az_token_invalidate(&c->s->tok);
			snprintf(out, cap, "credentials from %s were rejected by account '%s' (%s); "
				 "the identity needs role 'Storage Blob Data Reader' on the "
				 "account or container", c->cred_src, c->account, sc);
			break;
		default:
			snprintf(out, cap, "access denied by account '%s' (%s)", c->account, sc);
			break;
		}
		return -LFSFS_ESOURCE_NOT_ACCESSIBLE;
	}
	if (status == 404) {
		snprintf(out, cap, "not found at %s (%s); check the account, container and blob "
			 "name", c->where, sc);
		return -LFSFS_ESOURCE_NOT_ACCESSIBLE;
	}
	snprintf(out, cap, "%s: %s", sc, detail);
	return rc ? rc : -LFSFS_ESOURCE_NOT_ACCESSIBLE;
}

static void az_fetch_done(struct lfsfs_http_req *req, int rc)
{
	struct az_call *c = req->ctx;
	struct lfsfs_fetch *f = c->f;

	snprintf(f->etag_seen, sizeof(f->etag_seen), "%s", req->etag);
	if (rc) {
		char code[64] = "", msg[160] = "";
		if (req->errbody.data) {
			xml_field(req->errbody.data, "Code", code, sizeof(code));
			xml_field(req->errbody.data, "Message", msg, sizeof(msg));
			log_debug("azure: %s -> HTTP %ld %s: %s", c->where, req->status, code, msg);
		}
		rc = az_failure(c, rc, req->status, code, req->error, f->error, sizeof(f->error));
	}
	f->priv = NULL;
	call_free(c);
	f->done(f, rc);
}

static int az_fetch(struct lfsfs_store *st, struct lfsfs_fetch *f)
{
	struct az_state *s = az_state(st);
	struct az_call *c;
	char if_match[160] = "";
	int rc;

	if (!s)
		return lfsfs_error_set(-ENOMEM, "out of memory");
	if (!(c = calloc(1, sizeof(*c))))
		return lfsfs_error_set(-ENOMEM, "out of memory");
	/* A weak validator can never satisfy If-Match: send only strong ones
	 * (Azure's are strong); the caller compares the returned ETag. */
	if (f->etag[0] && strncmp(f->etag, "W/", 2))
		snprintf(if_match, sizeof(if_match), "%s", f->etag);
	if ((rc = az_prepare(s, f->url, "GET", f->off, f->len, if_match, c))) {
		call_free(c);
		return rc;
	}
	c->f = f;
	c->req.method = LFSFS_HTTP_GET;
	c->req.range_start = f->off;
	c->req.range_len = f->len;
	c->req.expect_total = f->size;
	c->req.fd = f->fd;
	snprintf(c->req.if_match, sizeof(c->req.if_match), "%s", if_match);
	c->req.done = az_fetch_done;
	c->req.ctx = c;
	f->priv = c;
	lfsfs_net_submit(st->net, &c->req);
	return 0;
}

/* Content-MD5 is base64 of the 16-byte digest: return it as hex. */
static void md5_b64_to_hex(const char *b64, char out[33])
{
	unsigned char raw[64];
	int n;

	out[0] = '\0';
	if (!b64 || strlen(b64) != 24)
		return;
	n = EVP_DecodeBlock(raw, (const unsigned char *)b64, 24);
	if (n < 16)
		return;
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

static void copy_header(const struct curl_slist *h, const char *name, char *out, size_t cap)
{
	const char *v = lfsfs_http_header(h, name);

	if (v)
		snprintf(out, cap, "%s", v);
}

static int az_head(struct lfsfs_store *st, const char *url, struct lfsfs_objmeta *out)
{
	struct az_state *s = az_state(st);
	struct az_call *c;
	const struct curl_slist *h;
	char msg[768], code[64] = "";
	int rc;

	if (!s)
		return lfsfs_error_set(-ENOMEM, "out of memory");
	if (!(c = calloc(1, sizeof(*c))))
		return lfsfs_error_set(-ENOMEM, "out of memory");
	if ((rc = az_prepare(s, url, "HEAD", 0, 0, NULL, c)))
		goto out;
	c->req.method = LFSFS_HTTP_HEAD;
	c->req.fd = -1;
	c->req.keep_headers = 1;
	rc = lfsfs_net_perform(st->net, &c->req);
	h = c->req.resp_headers;
	if (rc) {
		/* HEAD answers carry no body: the code is in x-ms-error-code */
		copy_header(h, "x-ms-error-code", code, sizeof(code));
		rc = az_failure(c, rc, c->req.status, code, c->req.error, msg, sizeof(msg));
		lfsfs_error_set(rc, "%s: cannot read '%.*s': %s", lfsfs_code_name(rc),
				(int)strcspn(url, "?#"), url, msg);
		goto out;
	}
	out->size = c->req.total;
	out->has_size = lfsfs_http_header(h, "Content-Length") != NULL;
	snprintf(out->etag, sizeof(out->etag), "%s", c->req.etag);
	md5_b64_to_hex(lfsfs_http_header(h, "Content-MD5"), out->md5);
	copy_header(h, "x-ms-version-id", out->version, sizeof(out->version));
	copy_header(h, "Last-Modified", out->last_modified, sizeof(out->last_modified));
	copy_header(h, "Content-Type", out->content_type, sizeof(out->content_type));
out:
	call_free(c);
	return rc;
}

static int az_explain(struct lfsfs_store *st, const char *url, struct lfsfs_buf *out)
{
	static const char *const auth_names[] = { "anonymous (public containers only)",
						  "SharedKey", "SAS", "bearer token" };
	struct az_state *s = az_state(st);
	struct lfsfs_az_target t;
	char *token = NULL;
	int rc;

	lfsfs_buf_printf(out, "backend: azure\n");
	if (!s)
		return lfsfs_error_set(-ENOMEM, "out of memory");
	if ((rc = lfsfs_az_target(&s->env, url, &t))) {
		lfsfs_buf_printf(out, "error: %s\n", lfsfs_error_message());
		if (rc == -LFSFS_EPARSE)
			lfsfs_buf_printf(out, "fix: write az://container/blob or https://ACCOUNT."
					 "blob.core.windows.net/container/blob\n");
		return rc;
	}
	lfsfs_buf_printf(out, "account: %s (from %s)\nendpoint: %s (from %s)\naddressing: %s\n",
			 t.account, t.account_src, t.base, t.endpoint_src,
			 t.path_style ? "path-style (account in the path)" : "virtual-host");
	lfsfs_buf_printf(out, "container: %s\nblob: %s\n", t.u.container, t.u.blob);
	if (t.auth == LFSFS_AZ_ANON && (token = malloc(sizeof(s->tok.token))) &&
	    !lfsfs_az_token_get(&s->tok, s->env.imds, s->env.client_id, token,
				sizeof(s->tok.token))) {
		t.auth = LFSFS_AZ_BEARER;
		t.cred_src = "managed identity (IMDS)";
	} else if (t.auth == LFSFS_AZ_ANON) {
		size_t n = strlen(t.tried);
		snprintf(t.tried + n, sizeof(t.tried) - n, "%s%s", n ? "; " : "",
			 token ? lfsfs_error_message() : "managed identity: out of memory");
	}
	if (token) {
		memset(token, 0, sizeof(s->tok.token));
		free(token);
	}
	lfsfs_buf_printf(out, "credentials: %s%s%s\n", auth_names[t.auth],
			 t.auth == LFSFS_AZ_ANON ? "" : " from ",
			 t.auth == LFSFS_AZ_ANON ? "" : t.cred_src);
	if (t.tried[0])
		lfsfs_buf_printf(out, "tried: %s\n", t.tried);
	if (t.auth == LFSFS_AZ_ANON)
		lfsfs_buf_printf(out, "fix: for a private container set "
				 "AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT + "
				 "AZURE_STORAGE_KEY, or AZURE_STORAGE_SAS_TOKEN\n");
	return 0;
}

const struct lfsfs_store_ops lfsfs_store_azure = {
	.name = "azure",
	.forms = "az://container/blob, https://ACCOUNT.blob.core.windows.net/container/blob",
	.handles = az_handles,
	.fetch = az_fetch,
	.head = az_head,
	.explain = az_explain,
	.release = az_release,
};

static struct az_state *az_state(struct lfsfs_store *st)
{
	return lfsfs_store_state(st, &lfsfs_store_azure, az_create);
}
