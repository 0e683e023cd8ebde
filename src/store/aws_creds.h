/*
 * The AWS credential chain, in the SDKs' order:
 *   1. environment: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN)
 *   2. shared files: AWS_PROFILE (or "default", or the per-repo profile) in
 *      AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials) and AWS_CONFIG_FILE
 *      (~/.aws/config, "[profile x]"), including credential_process
 *   3. web identity: AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN
 *      (+ AWS_ROLE_SESSION_NAME) via STS AssumeRoleWithWebIdentity
 *      (endpoint overridable with AWS_ENDPOINT_URL_STS for tests)
 *   4. ECS/container: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (169.254.170.2)
 *      or AWS_CONTAINER_CREDENTIALS_FULL_URI (+ AWS_CONTAINER_AUTHORIZATION_TOKEN)
 *   5. EC2 IMDSv2: PUT /latest/api/token, then
 *      /latest/meta-data/iam/security-credentials/<role>
 *      (endpoint AWS_EC2_METADATA_SERVICE_ENDPOINT; disabled by
 *      AWS_EC2_METADATA_DISABLED=true)
 * The first that yields a credential wins; temporary credentials are cached
 * and refreshed 5 minutes before they expire.  No credentials anywhere means
 * unsigned requests (public buckets) when allowed.
 */
#ifndef LFSFS_AWS_CREDS_H
#define LFSFS_AWS_CREDS_H

#include <pthread.h>

#include "store/sigv4.h"
#include "util/buf.h"

struct lfsfs_net;

struct lfsfs_aws_chain {
	struct lfsfs_net *net;      /* not owned: for STS/ECS/IMDS requests */
	char profile[128];          /* "" = AWS_PROFILE or "default" */
	pthread_mutex_t lock;       /* protects cached */
	struct lfsfs_aws_cred cached;
	int have_cached;
};

void lfsfs_aws_chain_init(struct lfsfs_aws_chain *ch, struct lfsfs_net *net, const char *profile);
void lfsfs_aws_chain_release(struct lfsfs_aws_chain *ch);

/*
 * Get a valid credential into *out.  Returns 0, or
 * -LFSFS_ECREDENTIALS_MISSING when no source had one; then `tried`
 * (may be NULL) lists every source tried and why it was skipped, e.g.
 * "env: AWS_ACCESS_KEY_ID unset; profile 'default': no ~/.aws/credentials; ...".
 * Other negative codes when a source exists but fails (bad file, STS error),
 * with a message naming it.  Never blocks the network thread: call from a
 * reader thread.
 */
int lfsfs_aws_chain_get(struct lfsfs_aws_chain *ch, struct lfsfs_aws_cred *out,
			struct lfsfs_buf *tried);

/* Forget the cached credential (after a 403 ExpiredToken). */
void lfsfs_aws_chain_invalidate(struct lfsfs_aws_chain *ch);

/* Region from AWS_REGION, AWS_DEFAULT_REGION, or the profile's `region` in
 * ~/.aws/config; "" if none. */
void lfsfs_aws_region(const char *profile, char *out, size_t cap);

/*
 * Details (appended with the implementation):
 * - Sources and their cred.source: "env"; "profile 'x'" (static keys in
 *   the credentials file, or in the config file's "[profile x]" /
 *   "[default]"; the credentials file wins); "credential_process" (run with
 *   /bin/sh -c, stdin /dev/null, 30 s timeout, JSON {Version: 1,
 *   AccessKeyId, SecretAccessKey, SessionToken, Expiration}); "web
 *   identity" (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN, or role_arn +
 *   web_identity_token_file in the profile; POST to AWS_ENDPOINT_URL_STS,
 *   else AWS_ENDPOINT_URL, else https://sts.amazonaws.com/); "ecs"; "imds".
 * - The profile is ch->profile if set, else AWS_PROFILE, else "default".
 *   A profile named by either that exists in neither file is an error
 *   (CREDENTIALS_MISSING naming it), as in the AWS SDKs; a missing
 *   "default" just moves on.  role_arn + source_profile and sso_* profiles
 *   give -LFSFS_EUNSUPPORTED with a credential_process suggestion.
 * - AWS_ACCESS_KEY_ID without AWS_SECRET_ACCESS_KEY (or a profile with one
 *   key of the pair) is an error, not a fallthrough.
 * - LFSFS_ECS_ENDPOINT (TEST ONLY): replaces "http://169.254.170.2" in
 *   front of AWS_CONTAINER_CREDENTIALS_RELATIVE_URI.  A FULL_URI must be
 *   https, or http to a loopback or container address.
 *   AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE wins over ..._TOKEN.
 * - IMDS: AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6 selects
 *   http://[fd00:ec2::254].  A TCP connect probe (1 s) runs first, and an
 *   endpoint found absent is remembered process-wide for 60 s.  A token PUT
 *   answered 403/404/405 falls back to IMDSv1 requests.  No role attached
 *   counts as "nothing here" (CREDENTIALS_MISSING).
 * - Every credential (static ones too) is cached until 5 minutes before
 *   `expires`; if a refresh then fails while the cached one has not yet
 *   expired, the cached one is returned (rc 0).  After invalidate it is not.
 *   Lookups hold ch->lock, so concurrent callers wait for one refresh.
 * - `tried` is reset on entry; clauses are joined with "; ".  Messages and
 *   clauses never hold secrets or tokens.
 */

#endif
