/*
 * AWS Signature Version 4 for header-signed requests (OpenSSL HMAC-SHA256).
 *
 * Pure computation, no I/O: given the request parts and a credential, it
 * produces the headers to add (x-amz-date, x-amz-content-sha256,
 * x-amz-security-token when there is a session token, Authorization).
 * Tested against AWS's published SigV4 test vectors.
 */
#ifndef LFSFS_SIGV4_H
#define LFSFS_SIGV4_H

#include <stddef.h>
#include <time.h>

struct lfsfs_aws_cred {
	char access_key[128];
	char secret_key[128];
	char session_token[2048];   /* "" if none */
	time_t expires;             /* 0 = does not expire */
	char source[128];           /* where it came from: "env", "profile 'x'",
				     * "credential_process", "web identity",
				     * "ecs", "imds" (never a secret) */
};

struct lfsfs_sigv4_req {
	const char *method;         /* "GET", "HEAD" */
	const char *host;           /* Host header value (with :port if not default) */
	const char *path;           /* already URI-encoded absolute path, e.g. "/bucket/my%20key" */
	const char *query;          /* canonical-ready query "a=1&b=2" or "" (sorted by the signer) */
	const char *const *headers; /* extra "name:value" headers to sign (e.g. "range:bytes=0-9"), NULL-terminated, may be NULL */
	const char *payload_hash;   /* hex sha256 of the body, or "UNSIGNED-PAYLOAD" */
	const char *region;         /* "us-east-1" */
	const char *service;        /* "s3" */
	time_t now;                 /* signing time */
};

/*
 * Compute the signature headers.  out is an array of `cap` strings of 4096
 * bytes each ("Name: value"); returns the number written (3 or 4) or a
 * negative errno.  All headers in r->headers are signed in addition to
 * host, x-amz-date and x-amz-content-sha256 (and x-amz-security-token).
 *
 * Details (appended with the implementation):
 * - x-amz-content-sha256 is an S3 header: it is sent and signed only when
 *   r->service is "s3" (other services, e.g. AWS's generic SigV4 test
 *   suite, leave it out, so 2 or 3 headers are written for them).
 * - payload_hash NULL means an empty body (sha256 of "").
 * - path is used verbatim (S3 rules: no normalization, no second encoding);
 *   NULL or "" means "/".
 * - query pairs are split on '&' and the first '=', percent-decoded, then
 *   encoded the SigV4 way and sorted by name, then value: raw or already
 *   encoded input gives the same result ('+' is a literal plus, not space).
 * - r->headers entries named host, x-amz-date, x-amz-content-sha256,
 *   x-amz-security-token or authorization are ignored (the signer sets
 *   them); repeated names are joined with ',' in order; values are trimmed
 *   and runs of spaces collapsed; a CR or LF in an entry is -EINVAL.
 * - the building blocks return 0 or a negative errno (-ERANGE when `cap`
 *   is too small); out of lfsfs_sigv4_sign is in that order: x-amz-date,
 *   [x-amz-content-sha256], [x-amz-security-token], Authorization.
 */
int lfsfs_sigv4_sign(const struct lfsfs_sigv4_req *r, const struct lfsfs_aws_cred *c,
		     char out[][4096], size_t cap);

/* Building blocks, exposed for tests (all outputs NUL-terminated hex or text). */
int lfsfs_sigv4_canonical_request(const struct lfsfs_sigv4_req *r, const char *amz_date,
				  const char *session_token, char *out, size_t cap,
				  char *signed_headers, size_t sh_cap);
int lfsfs_sigv4_string_to_sign(const char *amz_date, const char *region, const char *service,
			       const char *canonical_request, char *out, size_t cap);
int lfsfs_sigv4_signature(const char *secret, const char *date8, const char *region,
			  const char *service, const char *string_to_sign, char hex[65]);
/* RFC 3986 encoding as SigV4 wants it (slash kept when keep_slash). */
int lfsfs_sigv4_uri_encode(const char *in, int keep_slash, char *out, size_t cap);

#endif
