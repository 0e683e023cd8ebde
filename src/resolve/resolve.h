/*
 * Resolution: which URL holds the bytes of an object (by oid, or by path
 * for metadata-only entries).  Resolvers are an ops table tried in order;
 * the first one that yields a URL with a supported scheme wins.
 *
 * The chain is `meta,hints` by default (committed .lfs-meta records, the
 * local .git/drs hint cache); lfsfs_resolve_configure() builds it from the
 * `lfsfs.resolvers` setting instead (default order
 * meta,hints,drs,indexd,lfs) and lets resolvers that need a server read
 * their settings; one that is not configured (say no lfsfs.drs.url) is
 * left out quietly.
 *
 * A resolved source may carry request headers and an expiry (signed DRS
 * access URLs, LFS batch hrefs); the cache re-resolves when it expires or
 * when the origin refuses it with 401/403.
 */
#ifndef LFSFS_RESOLVE_H
#define LFSFS_RESOLVE_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "meta/lfsmeta.h"
#include "store/store.h"

struct lfsfs_config;
struct lfsfs_net;

struct lfsfs_resolve_query {
	const char *oid;     /* 64 hex, or NULL for metadata-only etag entries */
	const char *path;    /* repo-relative path the object appears at, or NULL */
	uint64_t size;
};

struct lfsfs_resolver;
struct lfsfs_resolve_ctx;

struct lfsfs_resolver_ops {
	const char *name;
	/* Optional: set up r->priv from ctx->cfg; -ENOENT = not configured
	 * (the resolver is then left out of the chain without a word). */
	int (*init)(struct lfsfs_resolver *r, struct lfsfs_resolve_ctx *ctx);
	/* 0 and *out filled, -ENOENT if this resolver knows nothing (append a
	 * short note to `why`), other negative codes for real failures. */
	int (*resolve)(struct lfsfs_resolver *r, const struct lfsfs_resolve_query *q,
		       struct lfsfs_record *out, struct lfsfs_buf *why);
	/* Optional: resolve n queries at once (a directory's pointers in one
	 * request); out[i] left with n_urls == 0 when unknown. */
	int (*resolve_batch)(struct lfsfs_resolver *r, const struct lfsfs_resolve_query *q,
			     size_t n, struct lfsfs_record *out);
	void (*free)(struct lfsfs_resolver *r);
};

struct lfsfs_resolver {
	const struct lfsfs_resolver_ops *ops;
	void *priv;                   /* resolver state; the built-ins use ctx */
	struct lfsfs_resolve_ctx *ctx;
};

struct lfsfs_prefetched;

struct lfsfs_resolve_ctx {
	char *repo;                    /* absolute working tree path */
	char *gitdir;                  /* absolute .git directory */
	const struct lfsfs_meta *meta; /* not owned */
	const struct lfsfs_config *cfg;/* not owned, may be NULL */
	struct lfsfs_net *net;         /* not owned, may be NULL (no network resolvers) */
	struct lfsfs_resolver *resolvers;
	size_t n;
	/* sources found ahead of time by resolve_batch (a directory listing);
	 * protected by lock */
	pthread_mutex_t lock;
	struct lfsfs_prefetched *pre;
	size_t npre, cappre;
};

/* Build the default chain (meta, hints) for a repository. */
int lfsfs_resolve_init(struct lfsfs_resolve_ctx *ctx, const char *repo, const char *gitdir,
		       const struct lfsfs_meta *meta);
/*
 * Rebuild the chain from cfg's `lfsfs.resolvers` (comma separated; default
 * "meta,hints,drs,indexd,lfs"), giving network resolvers net.  Unknown
 * names are an error naming the known ones.  cfg and net must outlive ctx.
 */
int lfsfs_resolve_configure(struct lfsfs_resolve_ctx *ctx, const struct lfsfs_config *cfg,
			    struct lfsfs_net *net);
void lfsfs_resolve_release(struct lfsfs_resolve_ctx *ctx);

/*
 * Resolve q to a source.  On failure returns -LFSFS_ESOURCE_NOT_ACCESSIBLE
 * (or -LFSFS_EUNSUPPORTED when only unsupported URL schemes were found)
 * with a message naming the object and everything that was tried.
 */
int lfsfs_resolve_source(struct lfsfs_resolve_ctx *ctx, const struct lfsfs_resolve_query *q,
			 struct lfsfs_source *out);
/*
 * Resolve many objects at once ahead of their reads (the pointers of a
 * directory being listed): every resolver with a resolve_batch op is asked,
 * in chain order, about the objects still unknown; what it finds is kept
 * (until it expires) and handed out by lfsfs_resolve_source.  Objects no
 * batch resolver knows are left to the per-object chain.  Never fails the
 * caller: problems are logged.
 */
void lfsfs_resolve_prefetch(struct lfsfs_resolve_ctx *ctx, const struct lfsfs_resolve_query *q,
			    size_t n);

/* 1 if some resolver of the chain can resolve in batches. */
int lfsfs_resolve_has_batch(const struct lfsfs_resolve_ctx *ctx);

/* The same, for callers that need only the URL and ETag (malloc'd). */
int lfsfs_resolve(struct lfsfs_resolve_ctx *ctx, const struct lfsfs_resolve_query *q,
		  char **url, char **etag);

/* Register an ops table under its name for lfsfs_resolve_configure (the
 * built-in table already holds meta and hints; network resolvers add
 * themselves in resolve.c's table). */
extern const struct lfsfs_resolver_ops lfsfs_resolver_meta;
extern const struct lfsfs_resolver_ops lfsfs_resolver_hints;
extern const struct lfsfs_resolver_ops lfsfs_resolver_drs;    /* resolve/drs.c */
extern const struct lfsfs_resolver_ops lfsfs_resolver_indexd; /* resolve/indexd.c */
extern const struct lfsfs_resolver_ops lfsfs_resolver_lfs;    /* resolve/lfsbatch.c */

#endif
