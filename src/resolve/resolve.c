/* The resolver chain: try each resolver, explain every miss. */
#include "resolve/resolve.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lfsfs/error.h"
#include "store/store.h"

int lfsfs_resolve_init(struct lfsfs_resolve_ctx *ctx, const char *repo, const char *gitdir,
		       const struct lfsfs_meta *meta)
{
	static const struct lfsfs_resolver_ops *const chain[] = {
		&lfsfs_resolver_meta,
		&lfsfs_resolver_hints,
	};

	memset(ctx, 0, sizeof(*ctx));
	ctx->repo = strdup(repo);
	ctx->gitdir = strdup(gitdir);
	ctx->meta = meta;
	ctx->resolvers = calloc(2, sizeof(*ctx->resolvers));
	if (!ctx->repo || !ctx->gitdir || !ctx->resolvers) {
		lfsfs_resolve_release(ctx);
		return -ENOMEM;
	}
	for (size_t i = 0; i < 2; i++) {
		ctx->resolvers[i].ops = chain[i];
		ctx->resolvers[i].priv = ctx;
	}
	ctx->n = 2;
	return 0;
}

void lfsfs_resolve_release(struct lfsfs_resolve_ctx *ctx)
{
	for (size_t i = 0; i < ctx->n; i++)
		if (ctx->resolvers[i].ops->free)
			ctx->resolvers[i].ops->free(&ctx->resolvers[i]);
	free(ctx->resolvers);
	free(ctx->repo);
	free(ctx->gitdir);
	memset(ctx, 0, sizeof(*ctx));
}

int lfsfs_resolve(struct lfsfs_resolve_ctx *ctx, const struct lfsfs_resolve_query *q,
		  char **url, char **etag)
{
	struct lfsfs_buf why = LFSFS_BUF_INIT(4096);
	struct lfsfs_buf unsupported = LFSFS_BUF_INIT(4096);
	const char *what = q->oid ? q->oid : q->path;
	int rc = -ENOENT;

	*url = NULL;
	*etag = NULL;
	for (size_t i = 0; i < ctx->n; i++) {
		struct lfsfs_record rec;
		struct lfsfs_resolver *r = &ctx->resolvers[i];

		memset(&rec, 0, sizeof(rec));
		lfsfs_buf_printf(&why, "%s%s: ", why.len ? "; " : "", r->ops->name);
		rc = r->ops->resolve(r, q, &rec, &why);
		if (rc == -ENOENT)
			continue;
		if (rc) {
			lfsfs_buf_printf(&why, "%s", lfsfs_error_message());
			continue;
		}
		if (rec.has_size && rec.size != q->size) {
			lfsfs_buf_printf(&why, "record says %llu bytes, pointer says %llu",
					 (unsigned long long)rec.size, (unsigned long long)q->size);
			lfsfs_record_release(&rec);
			rc = -LFSFS_ESIZE_MISMATCH;
			continue;
		}
		for (size_t k = 0; k < rec.n_urls; k++) {
			if (lfsfs_store_for_url(rec.urls[k])) {
				*url = strdup(rec.urls[k]);
				*etag = rec.etag ? strdup(rec.etag) : NULL;
				lfsfs_record_release(&rec);
				lfsfs_buf_release(&why);
				lfsfs_buf_release(&unsupported);
				return *url ? 0 : -ENOMEM;
			}
			lfsfs_buf_printf(&unsupported, "%s%s", unsupported.len ? ", " : "",
					 rec.urls[k]);
		}
		lfsfs_buf_printf(&why, "only unsupported URLs");
		lfsfs_record_release(&rec);
	}
	if (unsupported.len)
		rc = lfsfs_error_set(-LFSFS_EUNSUPPORTED,
				     "SOURCE_NOT_ACCESSIBLE: no supported URL for '%s' (found %s; "
				     "this build serves %s)", what, unsupported.data,
				     lfsfs_store_schemes());
	else
		rc = lfsfs_error_set(-LFSFS_ESOURCE_NOT_ACCESSIBLE,
				     "SOURCE_NOT_ACCESSIBLE: cannot resolve '%s' (tried %s); "
				     "register it with a .lfs-meta record or a hint", what,
				     why.data ? why.data : "nothing");
	lfsfs_buf_release(&why);
	lfsfs_buf_release(&unsupported);
	return rc;
}
