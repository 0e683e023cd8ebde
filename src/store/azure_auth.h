/*
 * Azure Blob Storage: URL forms, connection strings, SharedKey signing, the
 * credential chain and the managed-identity token cache.  Everything here
 * but lfsfs_az_token_get() is pure (no I/O), so tests can pin it down.
 *
 * URL forms:
 *   az://CONTAINER/BLOB[?QUERY]            account and endpoint come from the
 *                                          credential environment or config
 *   https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB[?QUERY]
 *                                          (any host "ACCOUNT.blob.core.*",
 *                                          so sovereign clouds work too)
 * The blob part is a URL path: "%XX" escapes are kept as written, other
 * bytes outside [A-Za-z0-9-._~/] are escaped.  A query carrying "sig=" is a
 * SAS and is used as given.
 *
 * Endpoint (first that is set): git config lfsfs.azure.endpoint; the
 * https URL's own scheme and host; the connection string's BlobEndpoint
 * (UseDevelopmentStorage=true means Azurite's http://127.0.0.1:10000/
 * devstoreaccount1); DefaultEndpointsProtocol://ACCOUNT.blob.EndpointSuffix;
 * https://ACCOUNT.blob.core.windows.net.  An endpoint with a path
 * ("http://127.0.0.1:10000/devstoreaccount1") is path-style: requests go to
 * ENDPOINT/CONTAINER/BLOB and, when nothing else names the account, its
 * first path segment is the account.
 *
 * Credentials (first that applies): a SAS in the URL's query;
 * AZURE_STORAGE_CONNECTION_STRING (AccountKey -> SharedKey, else
 * SharedAccessSignature -> SAS); AZURE_STORAGE_ACCOUNT + AZURE_STORAGE_KEY
 * (SharedKey); AZURE_STORAGE_SAS_TOKEN; managed identity (IMDS bearer
 * token, see lfsfs_az_token_get); anonymous.  Account keys only apply to
 * their own account: a connection string for account A is skipped for a
 * URL of account B (and the skip is listed in `tried`).
 */
#ifndef LFSFS_AZURE_AUTH_H
#define LFSFS_AZURE_AUTH_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/buf.h"

struct curl_slist;
struct lfsfs_config;

/* x-ms-version sent on every request (Azurite 3.35 accepts <= 2025-11-05). */
#define LFSFS_AZ_VERSION "2021-08-06"
/* Azurite's well-known development account (public, documented by Microsoft). */
#define LFSFS_AZ_DEV_ACCOUNT "devstoreaccount1"
#define LFSFS_AZ_DEV_KEY \
	"Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#define LFSFS_AZ_DEV_ENDPOINT "http://127.0.0.1:10000/devstoreaccount1"
/* Managed identity token endpoint (Azure Instance Metadata Service). */
#define LFSFS_AZ_IMDS_DEFAULT "http://169.254.169.254"
/* Test-only: replaces LFSFS_AZ_IMDS_DEFAULT (a loopback stand-in). */
#define LFSFS_AZ_IMDS_ENV "LFSFS_AZURE_IMDS_ENDPOINT"

/* ------------------------------------------------------------------ URLs */

struct lfsfs_az_url {
	int https_form;            /* 1: https://ACCOUNT.blob.core.*, 0: az:// */
	char account[64];          /* https form: from the host; az://: "" */
	char origin[256];          /* https form: "https://host[:port]"; az://: "" */
	char container[64];
	char blob[1024];           /* escaped blob path, no leading '/' */
	char query[2048];          /* raw query without '?', "" if none */
};

/* 1 if url is an az:// URL or an https URL of a *.blob.core.* host. */
int lfsfs_az_url_handles(const char *url);
/* Parse url; -LFSFS_EPARSE with a message when it is not a blob URL. */
int lfsfs_az_url_parse(const char *url, struct lfsfs_az_url *out);
/* 1 if a query string carries a SAS signature ("sig=" parameter). */
int lfsfs_az_query_is_sas(const char *query);

/* ------------------------------------------------------ connection strings */

struct lfsfs_az_connstr {
	char account[64];          /* AccountName */
	char key[256];             /* AccountKey (base64, as given) */
	char blob_endpoint[512];   /* BlobEndpoint, no trailing '/' */
	char protocol[8];          /* DefaultEndpointsProtocol ("" = https) */
	char suffix[128];          /* EndpointSuffix ("" = core.windows.net) */
	char sas[2048];            /* SharedAccessSignature, no leading '?' */
	int dev;                   /* UseDevelopmentStorage=true (fills the above) */
};

/* Parse "Key=Value;Key=Value" (keys case-insensitive, values may contain
 * '=', unknown keys ignored).  -LFSFS_EPARSE with a message (naming the
 * offending key, never a value) on a malformed string. */
int lfsfs_az_connstr_parse(const char *s, struct lfsfs_az_connstr *out);

/* ------------------------------------------------------------- SharedKey */

struct lfsfs_az_header {
	const char *name, *value;
};

/*
 * The Blob service SharedKey string-to-sign (2009-09-19 and later):
 *   VERB \n Content-Encoding \n Content-Language \n Content-Length (empty
 *   when 0) \n Content-MD5 \n Content-Type \n Date \n If-Modified-Since \n
 *   If-Match \n If-None-Match \n If-Unmodified-Since \n Range \n
 *   CanonicalizedHeaders  ("name:value\n" for each x-ms- header, names
 *                          lowercased and sorted, values' whitespace runs
 *                          folded to one space and trimmed)
 *   CanonicalizedResource ("/" account path, then "\nname:value" for each
 *                          query parameter, names lowercased and sorted,
 *                          values decoded, repeated names joined with ',')
 * headers: the request's headers (any order, names case-insensitive);
 * path: the escaped request path as sent ("/container/blob", or for a
 * path-style endpoint "/devstoreaccount1/container/blob", so the account
 * then appears twice); query: raw, without '?', may be NULL.
 */
int lfsfs_az_string_to_sign(const char *verb, const struct lfsfs_az_header *headers,
			    size_t nheaders, const char *account, const char *path,
			    const char *query, struct lfsfs_buf *out);

/* base64(HMAC-SHA256(base64decode(key_b64), msg)) into out (>= 45 bytes).
 * -LFSFS_EPARSE when the key is not base64. */
int lfsfs_az_sign(const char *key_b64, const char *msg, size_t len, char *out, size_t cap);

/* RFC 1123 date for x-ms-date ("Sun, 06 Nov 1994 08:49:37 GMT"), C locale. */
void lfsfs_az_http_date(time_t t, char out[32]);

/* -------------------------------------------------- the credential chain */

enum lfsfs_az_auth { LFSFS_AZ_ANON = 0, LFSFS_AZ_SHAREDKEY, LFSFS_AZ_SAS, LFSFS_AZ_BEARER };

/* The credential environment and config, read once. */
struct lfsfs_az_env {
	int have_connstr;              /* AZURE_STORAGE_CONNECTION_STRING set */
	int connstr_ok;                /* ... and parsed */
	char connstr_error[160];       /* why not (no secrets) */
	struct lfsfs_az_connstr cs;
	char account[64];              /* AZURE_STORAGE_ACCOUNT */
	char key[256];                 /* AZURE_STORAGE_KEY */
	char sas[4096];                /* AZURE_STORAGE_SAS_TOKEN, no leading '?' */
	char imds[256];                /* IMDS base URL */
	char client_id[128];           /* AZURE_CLIENT_ID (user-assigned identity) */
	char cfg_account[64];          /* lfsfs.azure.account */
	char cfg_endpoint[512];        /* lfsfs.azure.endpoint, no trailing '/' */
	char skipped[160];             /* variables ignored for being too long */
};

/* Read the variables above from the process environment and cfg (may be
 * NULL). */
void lfsfs_az_env_load(struct lfsfs_az_env *env, const struct lfsfs_config *cfg);

/* Where one URL's requests go and how they are authorized. */
struct lfsfs_az_target {
	struct lfsfs_az_url u;
	char account[64];
	const char *account_src;       /* static text: where the account came from */
	char base[512];                /* endpoint: "scheme://host[:port][/prefix]" */
	size_t origin_len;             /* base[0, origin_len) = "scheme://host[:port]" */
	const char *endpoint_src;      /* static text */
	int path_style;                /* base has a path prefix */
	enum lfsfs_az_auth auth;       /* ANON: no static credential (try IMDS) */
	const char *cred_src;          /* static text naming the credential source */
	const char *key;               /* SharedKey: base64 key (points into env) */
	const char *sas;               /* SAS: query to add (points into env or u) */
	char tried[512];               /* sources skipped and why ("; "-separated) */
};

/*
 * Work out endpoint, account and static credential for url.  Returns 0,
 * -LFSFS_EPARSE for a malformed URL or -LFSFS_ECREDENTIALS_MISSING when no
 * account can be determined (message set, naming what to set).  t points
 * into env: keep env alive while t is used.
 */
int lfsfs_az_target(const struct lfsfs_az_env *env, const char *url,
		    struct lfsfs_az_target *t);

/*
 * The request URL (malloc'd, *url_out) and headers (*hdrs_out: x-ms-date,
 * x-ms-version, Authorization as needed) for verb on t at time now.
 * range_len == 0: no Range.  The Range ("bytes=S-E") and If-Match values
 * are signed exactly as the net engine sends them (it adds those two
 * headers itself).  bearer: token for LFSFS_AZ_BEARER, else ignored.
 */
int lfsfs_az_build(const struct lfsfs_az_target *t, const char *verb, uint64_t range_start,
		   uint64_t range_len, const char *if_match, const char *bearer, time_t now,
		   char **url_out, struct curl_slist **hdrs_out);

/* ------------------------------------------- managed identity (IMDS) */

struct lfsfs_az_token_cache {
	pthread_mutex_t lock;          /* protects everything below; held while
					* asking IMDS so callers do not stampede */
	char token[8192];
	time_t expires_on;             /* 0 = none cached */
	time_t retry_after;            /* IMDS failed: do not ask before this */
	char error[200];               /* why IMDS failed last (no secrets) */
	unsigned requests;             /* token requests made (for tests) */
};

void lfsfs_az_token_init(struct lfsfs_az_token_cache *c);
void lfsfs_az_token_release(struct lfsfs_az_token_cache *c);

/*
 * A bearer token for https://storage.azure.com/ from IMDS at imds_base
 * (GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=...
 * with "Metadata: true", 1 s connect timeout, no proxy), cached until 5
 * minutes before expires_on.  client_id: AZURE_CLIENT_ID or NULL.
 * Blocking: call from a reader thread, never from a net completion.
 * Returns 0 with the token in out, or -LFSFS_ECREDENTIALS_MISSING with a
 * message (also kept in c->error); a failure is remembered for a while so
 * anonymous reads do not pay the timeout on every request.
 */
int lfsfs_az_token_get(struct lfsfs_az_token_cache *c, const char *imds_base,
		       const char *client_id, char *out, size_t cap);
/* Forget the cached token (it was rejected). */
void lfsfs_az_token_invalidate(struct lfsfs_az_token_cache *c);

#endif
