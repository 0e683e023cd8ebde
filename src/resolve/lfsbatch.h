/*
 * The `lfs` resolver: the Git LFS Batch API (git-lfs docs/api/batch.md).
 *
 * For objects that nothing else registers, ask the repository's own LFS
 * server where their bytes are, like `git lfs pull` would, without
 * downloading them: POST {endpoint}/objects/batch with operation
 * "download", and hand out each object's download action (href, its
 * `header` map as request headers, and when it expires).
 *
 * Endpoint discovery follows git-lfs (docs/api/server-discovery.md):
 * lfsfs.lfs.url, then lfs.url (git config over .lfsconfig), then
 * remote.<remote>.lfsurl, else derived from remote.<remote>.url
 * (https://host/path[.git] -> https://host/path.git/info/lfs; ssh and
 * scp-like remotes -> https://host/path.git/info/lfs; git-lfs-authenticate
 * is not run).  Local-path and file:// remotes have no batch API: the
 * resolver then stays in the chain only to say so.
 *
 * Credentials: requests go out anonymously until the server answers 401;
 * then `git credential fill` (no prompts) gives a username and password,
 * sent as Basic auth from then on; `git credential approve` / `reject`
 * report the outcome.  Passwords and tokens are never logged.
 *
 * The functions below are the resolver's pure parts, exposed for tests.
 */
#ifndef LFSFS_LFSBATCH_H
#define LFSFS_LFSBATCH_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "resolve/resolve.h"
#include "util/buf.h"

#define LFSFS_LFS_BATCH_MAX 100 /* objects per batch request (git-lfs sends 100) */

extern const struct lfsfs_resolver_ops lfsfs_resolver_lfs;

/*
 * The LFS server URL git-lfs derives from a git remote URL (no trailing
 * slash), in *out (malloc'd, caller frees).  Userinfo of http(s) URLs is
 * kept (libcurl sends it as Basic auth); ssh user and port are dropped.
 * Returns 0, -LFSFS_EUNSUPPORTED for local paths, file:// and
 * `transport::address` remotes (message says why and what to set), or
 * -EINVAL for an empty URL.
 */
int lfsfs_lfs_endpoint_from_remote(const char *remote, char **out);

/*
 * Pick the endpoint from git settings.  kv holds n key/value pairs
 * (kv[2i] = key as `git config` prints it, kv[2i+1] = value), later pairs
 * overriding earlier ones (so: .lfsconfig first, then git config, then
 * lfsfs.lfs.url / lfsfs.lfs.remote overrides).  branch is the checked-out
 * branch or NULL.  url.<base>.insteadOf rewrites apply.
 * On 0, *endpoint (malloc'd, no trailing slash) and *how (malloc'd, e.g.
 * "lfs.url" or "remote.origin.url") are set; -ENOENT when there is no
 * remote at all; -LFSFS_EUNSUPPORTED (message set) when the endpoint
 * cannot be an http(s) batch API.
 */
int lfsfs_lfs_discover(const char *const *kv, size_t n, const char *branch, char **endpoint,
                       char **how);

/*
 * Parse an RFC 3339 timestamp ("2016-11-10T15:29:07Z", fractions and
 * +hh:mm offsets allowed).  Go's zero time ("0001-01-01T00:00:00Z"), which
 * some servers send for "no expiry", and anything before 1970 give 0.
 * Returns 0 or -EINVAL.
 */
int lfsfs_lfs_parse_time(const char *s, time_t *out);

/* One object of a batch response. */
struct lfsfs_lfs_object {
	char oid[65];
	uint64_t size;
	int authenticated;
	char *href;     /* download href, or NULL */
	char **headers; /* action `header` as "Name: value" (malloc'd) */
	size_t n_headers;
	time_t expires; /* expires_in (preferred) or expires_at; 0 = none */
	int error;      /* error.code (404, 410, 422...); -1 = unusable action */
	char *message;  /* error.message or why the action is unusable */
};

/*
 * Parse a batch response body.  now is the local time the answer arrived
 * (expires_in counts from it).  *out (malloc'd array of *n objects, free
 * with lfsfs_lfs_objects_free) lists every object with a valid oid, in
 * response order.  -LFSFS_EPARSE for malformed JSON or no "objects",
 * -LFSFS_EUNSUPPORTED when the server picked a transfer other than basic
 * or a hash algorithm other than sha256.
 */
int lfsfs_lfs_parse_response(const char *json, size_t len, time_t now,
                             struct lfsfs_lfs_object **out, size_t *n);
void lfsfs_lfs_objects_free(struct lfsfs_lfs_object *o, size_t n);

/*
 * The download request body for n queries (oids must be valid; duplicates
 * are sent once), with "ref": {"name": ref} when ref is not NULL.
 */
int lfsfs_lfs_request_body(const struct lfsfs_resolve_query *q, size_t n, const char *ref,
                           struct lfsfs_buf *out);

#endif
