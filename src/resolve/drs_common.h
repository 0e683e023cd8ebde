/*
 * Shared by the `drs` (GA4GH DRS 1.4) and `indexd` (Gen3 Indexd) resolvers:
 * bearer tokens, JSON requests, DRS object parsing, drs:// URIs, and the
 * expiry of signed URLs.
 *
 * Tokens (first that is set wins; see docs/RESOLVERS.md):
 *   1. the setting <prefix>.token          (lfsfs.drs.token)
 *   2. the environment variable            (LFSFS_DRS_TOKEN)
 *   3. a Gen3 credentials file named by <prefix>.credentials, JSON
 *      {"api_key", "key_id"}: the api_key is exchanged with
 *      POST {base}/user/credentials/cdis/access_token {"api_key": ...} for
 *      {"access_token": JWT}, cached until 60 s before the JWT's `exp` claim.
 *   none: requests carry no Authorization header (public servers).
 * Tokens, API keys and signed query strings are never put into messages or
 * logs (messages name where a token came from, never the token).
 *
 * Thread-safety: the auth functions may be called from any reader thread
 * (they may block on the network; never from the net engine's thread).
 * The parsers are pure.
 */
#ifndef LFSFS_DRS_COMMON_H
#define LFSFS_DRS_COMMON_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "net/net.h"
#include "util/buf.h"

struct lfsfs_config;

/* ---------------------------------------------------------------- auth */

struct lfsfs_drs_auth {
	const char *what;      /* "DRS server", "Indexd server" (static) */
	const char *prefix;    /* "lfsfs.drs" (static) */
	const char *env;       /* "LFSFS_DRS_TOKEN" (static) */
	int allow_credentials; /* <prefix>.credentials is read */
	char *base;            /* server base URL, no trailing '/' (owned) */
	char *static_token;    /* from the setting or env; owned, or NULL */
	char *cred_path;       /* Gen3 credentials file; owned, or NULL */
	char source[320];      /* where the token comes from (no secret) */

	pthread_mutex_t lock; /* protects token, exp; held across the
				    * token exchange so one thread fetches */
	char *token;          /* exchanged Gen3 access token, or NULL */
	time_t exp;           /* its JWT exp (0 = unknown: 10 minutes) */
	time_t fail_until;    /* a failed exchange is not retried before */
	char fail_msg[512];
};

/*
 * Read <prefix>.token, env and (when allow_credentials) <prefix>.credentials
 * from cfg.  base is the server's base URL (copied, trailing '/' dropped;
 * the Gen3 token endpoint hangs off it).  Never fails for a missing token;
 * -ENOMEM only.
 */
int lfsfs_drs_auth_init(struct lfsfs_drs_auth *a, const struct lfsfs_config *cfg, const char *what,
                        const char *prefix, const char *env, const char *base,
                        int allow_credentials);
void lfsfs_drs_auth_release(struct lfsfs_drs_auth *a);

/*
 * The "Authorization: Bearer ..." header line for a request, malloc'd into
 * *out, or *out = NULL when no token source is configured.  refresh != 0
 * drops a cached exchanged token first (after a 401).  A failed exchange
 * returns -LFSFS_ESOURCE_NOT_ACCESSIBLE (or -LFSFS_ECREDENTIALS_MISSING for
 * an unreadable credentials file) with the message naming the file and the
 * fix.  Free *out with lfsfs_drs_secret_free().
 */
int lfsfs_drs_auth_header(struct lfsfs_drs_auth *a, struct lfsfs_net *net, int refresh, char **out);
/* 1 if the token comes from a credentials file (a 401 may be cured by a
 * fresh exchange). */
int lfsfs_drs_auth_refreshable(const struct lfsfs_drs_auth *a);
/* Wipe and free a string that held a secret. */
void lfsfs_drs_secret_free(char *s);

/* ---------------------------------------------------------------- requests */

/*
 * One JSON request to the server of `a`: method GET or POST (body: JSON
 * text, may be NULL), url absolute.  Sends Accept: application/json and
 * the bearer token; after a 401 with an exchanged token, exchanges again
 * and resends once; a 202 Accepted (DRS: "retry later") is asked again
 * after its Retry-After, at most 3 times and 5 s each.  `auth` 0 sends no
 * token (a drs:// URI naming another host: tokens go only to the
 * configured server).
 *
 * Returns 0 with *out the parsed JSON (caller cJSON_Delete()s it);
 * -ENOENT on 404 (no message: the caller says what was missing);
 * -LFSFS_ESOURCE_NOT_ACCESSIBLE on 401/403 (the message names the server,
 * where the token came from, and the settings that fix it), on other
 * failures and on network errors after retries; -LFSFS_EPARSE when the
 * body is not JSON.  *status (may be NULL) gets the HTTP status.
 */
int lfsfs_drs_request(struct lfsfs_drs_auth *a, struct lfsfs_net *net, int auth,
                      enum lfsfs_http_method method, const char *url, const char *body, cJSON **out,
                      long *status);

/* ---------------------------------------------------------------- objects */

struct lfsfs_drs_access {
	char *type;      /* "s3", "https", ... or NULL */
	char *access_id; /* or NULL */
	char *url;       /* access_url.url, or NULL */
	char **headers;  /* access_url.headers ("Name: value") */
	size_t n_headers;
};

struct lfsfs_drs_object {
	char *id; /* or NULL */
	uint64_t size;
	int has_size;
	char sha256[65];     /* lowercase hex from a "sha256"/"sha-256"
				    * checksum, "" when none */
	int sha256_conflict; /* two sha256 checksums that differ */
	struct lfsfs_drs_access *access;
	size_t n_access;
};

/* Parse a DrsObject; -LFSFS_EPARSE with a message when it is not one. */
int lfsfs_drs_object_parse(const cJSON *j, struct lfsfs_drs_object *out);
int lfsfs_drs_object_parse_text(const char *json, struct lfsfs_drs_object *out);
void lfsfs_drs_object_release(struct lfsfs_drs_object *o);

/*
 * 0 if o describes the bytes of oid (its sha256 checksum equals oid, case
 * aside) and, when size is known (has_size), of that size.  Otherwise
 * -ENOENT with a note appended to why (may be NULL): an object without a
 * sha256 checksum, or with another one, is never used.
 */
int lfsfs_drs_object_check(const struct lfsfs_drs_object *o, const char *oid, uint64_t size,
                           int has_size, struct lfsfs_buf *why);

/* Parse an AccessURL {url, headers[]} into acc->url/headers. */
int lfsfs_drs_access_url_parse(const cJSON *j, struct lfsfs_drs_access *acc);
void lfsfs_drs_access_release(struct lfsfs_drs_access *a);

/* ---------------------------------------------------------------- URIs */

/* Percent-encode an object or access id for a URL path segment: bytes
 * outside [A-Za-z0-9._~-] become %XX; an existing %XX is kept. */
char *lfsfs_drs_encode_id(const char *id);

/*
 * The object URL of a drs:// URI.
 *   drs://host[:port]/id  ->  https://host[:port]/ga4gh/drs/v1/objects/id,
 *     or {base}/ga4gh/drs/v1/objects/id when base (may be NULL) names the
 *     same host[:port] (so http:// and path prefixes of lfsfs.drs.url apply)
 *   drs://prefix:accession (compact identifier) -> looked up on base:
 *     {base}/ga4gh/drs/v1/objects/<prefix:accession, encoded>; without base
 *     -LFSFS_EUNSUPPORTED (lfsfs does not ask identifiers.org / n2t.net).
 * *same_host is set to 1 when the URL is on base's server (may be NULL).
 * -EINVAL with a message for something that is not a drs:// URI.
 */
int lfsfs_drs_uri_to_url(const char *uri, const char *base, char **url, int *same_host);

/* ---------------------------------------------------------------- expiry */

/*
 * When a signed URL stops working, from its query string:
 *   X-Amz-Date + X-Amz-Expires    (S3 SigV4 presigned)
 *   X-Goog-Date + X-Goog-Expires  (GCS V4 signed)
 *   se=                           (Azure SAS signed expiry, ISO 8601 UTC)
 *   Expires=                      (S3 V2 presigned, GCS V2, CloudFront: epoch s)
 * 0 and *out on success; -ENOENT when the URL carries none of these.
 */
int lfsfs_drs_url_expiry(const char *url, time_t *out);

/* The `exp` claim of a JWT (base64url payload); -LFSFS_EPARSE if none. */
int lfsfs_drs_jwt_exp(const char *jwt, time_t *out);

/* Case-insensitive comparison of two hex digests ("sha256:" prefix on b
 * allowed); 1 if equal. */
int lfsfs_drs_hex_eq(const char *oid, const char *b);

#endif
