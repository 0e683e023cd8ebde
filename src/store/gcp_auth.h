/*
 * Google Cloud credentials for the gcs backend: the Application Default
 * Credentials chain, OAuth2 access tokens, and the RS256 JWT of a service
 * account.
 *
 * The chain, first that yields a credential wins (as Google's client
 * libraries do):
 *   1. GOOGLE_APPLICATION_CREDENTIALS: a JSON key file of type
 *      "service_account" (client_email, private_key, token_uri: an RS256 JWT
 *      is exchanged for a token at token_uri) or "authorized_user"
 *      (client_id, client_secret, refresh_token: refreshed at token_uri,
 *      default https://oauth2.googleapis.com/token).  A variable that is set
 *      but names an unusable file is an error, not a fall-through.
 *   2. the gcloud ADC file, $CLOUDSDK_CONFIG/application_default_credentials.json
 *      or ~/.config/gcloud/application_default_credentials.json (written by
 *      `gcloud auth application-default login`), same two types.
 *   3. the GCE metadata server, GET http://$GCE_METADATA_HOST (default
 *      metadata.google.internal)/computeMetadata/v1/instance/service-accounts/
 *      default/token with "Metadata-Flavor: Google", 1 s connect timeout.
 *      Not probed when `emulator` is set unless GCE_METADATA_HOST is set;
 *      an unreachable server is not probed again for the life of the chain.
 *   4. anonymous: an empty token; public objects still read.
 *
 * Tokens are cached until 5 minutes before they expire (half their
 * lifetime when that is under 10 minutes).  A failed acquisition is
 * remembered for 5 s so a burst of reads does not hammer the token
 * endpoint.  Tokens, private keys and assertions are never logged nor put
 * into messages.
 *
 * Thread-safety: every function may be called from any thread.
 * lfsfs_gcp_auth_token() may block on the network and must run on a
 * reader thread, never on the net engine's thread;
 * lfsfs_gcp_auth_invalidate() never blocks and is safe in a done() callback.
 */
#ifndef LFSFS_GCP_AUTH_H
#define LFSFS_GCP_AUTH_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/buf.h"

struct lfsfs_net;

#define LFSFS_GCS_SCOPE "https://www.googleapis.com/auth/devstorage.read_only"
#define LFSFS_GCP_DEFAULT_TOKEN_URI "https://oauth2.googleapis.com/token"

struct lfsfs_gcp_auth {
	struct lfsfs_net *net;      /* not owned: token endpoint requests */
	int emulator;               /* STORAGE_EMULATOR_HOST set */

	pthread_mutex_t refresh_lock; /* serializes acquisitions; held across the
				       * network; taken before `lock` */
	pthread_mutex_t lock;       /* protects the fields below; never held
				     * across the network */
	char token[4096];           /* "" with anonymous set: no credentials */
	uint64_t token_hash;        /* to match lfsfs_gcp_auth_invalidate() */
	time_t refresh_at;          /* token (or anonymity) valid until then */
	int anonymous;
	char source[512];           /* where the token comes from (no secrets) */
	char token_uri[512];        /* "" for the metadata server / anonymous */
	char tried[768];            /* sources tried and why each was skipped */
	int fail_rc;                /* remembered failure, until fail_until */
	time_t fail_until;
	char fail_msg[1024];
	int no_metadata;            /* metadata server unreachable: skip it */
};

void lfsfs_gcp_auth_init(struct lfsfs_gcp_auth *a, struct lfsfs_net *net, int emulator);
void lfsfs_gcp_auth_release(struct lfsfs_gcp_auth *a);

/*
 * A token for a request.  Returns 0 and fills `token` ("" = anonymous:
 * send no Authorization header), `*hash` (a fingerprint for
 * lfsfs_gcp_auth_invalidate()), `source` (description of the credential,
 * never a secret) and `tried` (the sources tried, for a later
 * CREDENTIALS_MISSING message); any of source/tried may be NULL.
 * On failure returns a negative code with the message set:
 *   -LFSFS_ECREDENTIALS_MISSING    GOOGLE_APPLICATION_CREDENTIALS or the ADC
 *                                  file exists but is unusable
 *   -LFSFS_ESOURCE_NOT_ACCESSIBLE  the token endpoint or metadata server
 *                                  rejected the credential (names the source)
 */
int lfsfs_gcp_auth_token(struct lfsfs_gcp_auth *a, char *token, size_t cap, uint64_t *hash,
			 char *source, size_t scap, char *tried, size_t tcap);

/* Forget the cached token if it is still the one with fingerprint hash
 * (after a 401).  Never blocks on the network. */
void lfsfs_gcp_auth_invalidate(struct lfsfs_gcp_auth *a, uint64_t hash);

/* For `lfsfs doctor`: acquire a token and append "credentials:",
 * "token endpoint:" and, on trouble, "problem:"/"fix:" lines to out.
 * Returns what lfsfs_gcp_auth_token() returned. */
int lfsfs_gcp_auth_explain(struct lfsfs_gcp_auth *a, struct lfsfs_buf *out);

/* ------------------------------------------------------------------ helpers
 * Pure functions, exposed for tests (tests/unit/test_gcs.c). */

/* base64url without padding (RFC 7515 2).  Returns the length written, or
 * 0 with out = "" when cap is too small (needs 4 * ceil(n / 3) + 1). */
size_t lfsfs_b64url_encode(const void *in, size_t n, char *out, size_t cap);

/*
 * Build and sign the service-account assertion: header
 * {"alg":"RS256","typ":"JWT"[,"kid":key_id]}, claims {"iss":client_email,
 * "scope":scope,"aud":aud,"iat":iat,"exp":iat+3600}, RSA-SHA256 over
 * "b64url(header).b64url(claims)".  *out is malloc'ed (caller frees; it is a
 * bearer credential for its hour: never log it).  Returns 0, -LFSFS_EPARSE (the PEM is not a private key, with
 * the message set) or -ENOMEM.
 */
int lfsfs_gcp_jwt_sign(const char *client_email, const char *key_id, const char *pem_key,
		       const char *aud, const char *scope, int64_t iat, char **out);

/* Implemented in gcs.c. */

/* Split "gs://bucket/object" into bucket and object (the object name is
 * literal, as gsutil prints it: no %-decoding).  Returns 0 or -LFSFS_EPARSE
 * with the message set.  *object is malloc'ed (caller frees). */
int lfsfs_gcs_parse_url(const char *url, char *bucket, size_t bcap, char **object);
/* Percent-encode s for a JSON API path segment: every byte outside
 * [A-Za-z0-9-._~] becomes %XX (so "/" -> %2F, " " -> %20, UTF-8 bytes
 * one by one).  Returns 0 or -E2BIG / -ENOMEM. */
int lfsfs_gcs_encode(const char *s, struct lfsfs_buf *out);

#endif
