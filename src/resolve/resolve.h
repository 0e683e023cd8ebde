/*
 * Resolution: which URL holds the bytes of an object (by oid, or by path
 * for metadata-only entries).  Resolvers are an ops table tried in order;
 * the first one that yields a URL with a supported scheme wins.  This
 * issue ships `meta` (.lfs-meta records) and `hints` (.git/drs hint
 * cache); DRS, Indexd and the LFS batch API plug in the same way.
 */
#ifndef LFSFS_RESOLVE_H
#define LFSFS_RESOLVE_H

#include <stdint.h>

#include "meta/lfsmeta.h"

struct lfsfs_resolve_query {
	const char *oid;     /* 64 hex, or NULL for metadata-only etag entries */
	const char *path;    /* repo-relative path the object appears at, or NULL */
	uint64_t size;
};

struct lfsfs_resolver;

struct lfsfs_resolver_ops {
	const char *name;
	/* 0 and *out filled, -ENOENT if this resolver knows nothing (append a
	 * short note to `why`), other negative codes for real failures. */
	int (*resolve)(struct lfsfs_resolver *r, const struct lfsfs_resolve_query *q,
		       struct lfsfs_record *out, struct lfsfs_buf *why);
	void (*free)(struct lfsfs_resolver *r);
};

struct lfsfs_resolver {
	const struct lfsfs_resolver_ops *ops;
	void *priv;
};

struct lfsfs_resolve_ctx {
	char *repo;                    /* absolute working tree path */
	char *gitdir;                  /* absolute .git directory */
	const struct lfsfs_meta *meta; /* not owned */
	struct lfsfs_resolver *resolvers;
	size_t n;
};

/* Build the default chain (meta, hints) for a repository. */
int lfsfs_resolve_init(struct lfsfs_resolve_ctx *ctx, const char *repo, const char *gitdir,
		       const struct lfsfs_meta *meta);
void lfsfs_resolve_release(struct lfsfs_resolve_ctx *ctx);

/*
 * Resolve q to a URL (malloc'd, *url) and the ETag the record pins
 * (malloc'd or NULL, *etag).  On failure returns
 * -LFSFS_ESOURCE_NOT_ACCESSIBLE (or -LFSFS_EUNSUPPORTED when only
 * unsupported URL schemes were found) with a message naming the object
 * and everything that was tried.
 */
int lfsfs_resolve(struct lfsfs_resolve_ctx *ctx, const struct lfsfs_resolve_query *q,
		  char **url, char **etag);

extern const struct lfsfs_resolver_ops lfsfs_resolver_meta;
extern const struct lfsfs_resolver_ops lfsfs_resolver_hints;

#endif
