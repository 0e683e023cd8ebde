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

#endif
