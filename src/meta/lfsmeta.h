/*
 * Committed `.lfs-meta/` records and the local `.git/drs` hint cache.
 *
 *   .lfs-meta/metadata.json      path-keyed: {"data/x.vcf": {"remote_url",
 *                                "etag", "size", "sha256"?, "md5"?, ...}}
 *   .lfs-meta/sha256/<oid>.json  {"sha256", "url" | "urls": [...], "size",
 *                                "etag"?}
 *   .git/drs/pre-commit/v1/oids/<oid>.json  {"lfs_oid", "paths", "s3_url",
 *                                "updated_at", "content_changed"}
 *
 * Everything returned is owned by the caller and freed with the matching
 * _free().  Unknown keys are ignored on read.
 */
#ifndef LFSFS_LFSMETA_H
#define LFSFS_LFSMETA_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "lfsfs/pointer.h"

struct lfsfs_meta_entry {
	char *path;      /* normalized repo-relative path (never NULL) */
	char *url;       /* remote_url, or NULL if absent */
	char *etag;      /* as recorded (quotes kept if given), or NULL */
	uint64_t size;
	int has_size;
	char sha256[LFSFS_OID_HEX_LEN + 1]; /* "" when unknown */
};

struct lfsfs_meta {
	struct lfsfs_meta_entry *entries; /* sorted by path (strcmp) */
	size_t n;
};

/*
 * Load <repo>/.lfs-meta/metadata.json.  A missing file gives an empty set
 * and 0.  Malformed JSON gives -LFSFS_EPARSE with a message naming the
 * file and line:column.  Entries whose path fails
 * lfsfs_relpath_normalize() (traversal, absolute, .git) are skipped and
 * reported through the `refused` callback (may be NULL) with the reason;
 * entries without a usable "remote_url" or "size" are also reported and
 * skipped.
 */
int lfsfs_meta_load(const char *repo, struct lfsfs_meta **out,
		    void (*refused)(const char *path, const char *why, void *ctx),
		    void *ctx);
void lfsfs_meta_free(struct lfsfs_meta *m);

/*
 * The walk every reader of a path-keyed JSON object (metadata.json's shape)
 * needs: members whose name is not a safe repo-relative path are refused;
 * the others get their normalized path stored at path_off of a zeroed
 * element of `size` bytes, and fill() completes it (0 kept, > 0 refused
 * with a reason written to why, < 0 error).  The kept elements come back
 * sorted by path in a malloc'd array (*out, *nout); of two members naming
 * the same path after normalization, the first in the file wins.  refused
 * (may be NULL) hears of every member left out.  release frees an element.
 */
struct cJSON;
struct lfsfs_meta_walk_ops {
	size_t size;
	size_t path_off;    /* offsetof(element, its char *path) */
	int (*fill)(const struct cJSON *member, void *elem, char *why, size_t whylen);
	void (*release)(void *elem);
};
/* Load a metadata.json-shaped file: -ENOENT (no message) when missing,
 * -LFSFS_EPARSE with line:col or "top level must be a json object". */
int lfsfs_meta_read_root(const char *file, struct cJSON **root);

int lfsfs_meta_walk(const struct cJSON *root, const struct lfsfs_meta_walk_ops *ops,
		    void (*refused)(const char *path, const char *why, void *ctx), void *ctx,
		    void **out, size_t *nout);

/* Binary search by normalized path; NULL if absent. */
const struct lfsfs_meta_entry *lfsfs_meta_find(const struct lfsfs_meta *m,
					       const char *path);
/* First entry whose sha256 equals oid; NULL if none. */
const struct lfsfs_meta_entry *lfsfs_meta_find_oid(const struct lfsfs_meta *m,
						   const char *oid);

/* A resolved location for one object. */
struct lfsfs_record {
	char **urls;      /* n_urls malloc'd strings, in preference order */
	size_t n_urls;
	char *etag;       /* or NULL */
	uint64_t size;
	int has_size;
	char sha256[LFSFS_OID_HEX_LEN + 1]; /* "" when unknown */
	/* set by resolvers that hand out signed or authorized URLs (DRS
	 * access URLs, LFS batch hrefs): headers to send with every request
	 * ("Name: value", malloc'd) and when the URL stops working (0 = never) */
	char **headers;
	size_t n_headers;
	time_t expires;
};
void lfsfs_record_release(struct lfsfs_record *r);

/*
 * Read <repo>/.lfs-meta/sha256/<oid>.json.  -ENOENT if absent (no
 * message), -LFSFS_EPARSE if malformed or if its "sha256" differs from
 * oid, 0 on success.
 */
int lfsfs_meta_read_sha256(const char *repo, const char *oid,
			   struct lfsfs_record *out);

/*
 * Read <gitdir>/drs/pre-commit/v1/oids/<oid>.json and return its s3_url
 * (malloc'd) in *url.  -ENOENT if absent or no s3_url, -LFSFS_EPARSE if
 * malformed.
 */
int lfsfs_hint_read_url(const char *gitdir, const char *oid, char **url);

#endif
