/* The resolver chain: build it from settings, try each resolver, explain every miss. */
#include "resolve/resolve.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lfsfs/error.h"
#include "store/store.h"
#include "util/config.h"

/* Every resolver lfsfs knows, by the name used in lfsfs.resolvers. */
static const struct lfsfs_resolver_ops *const known[] = {
	&lfsfs_resolver_meta,
	&lfsfs_resolver_hints,
};

#define NKNOWN (sizeof(known) / sizeof(known[0]))
#define DEFAULT_ORDER "meta,hints,drs,indexd,lfs"
/* names of the default order that this build may not have yet are skipped */
static const char *const planned[] = { "drs", "indexd", "lfs" };

static void free_chain(struct lfsfs_resolve_ctx *ctx)
{
	for (size_t i = 0; i < ctx->n; i++)
		if (ctx->resolvers[i].ops->free)
			ctx->resolvers[i].ops->free(&ctx->resolvers[i]);
	free(ctx->resolvers);
	ctx->resolvers = NULL;
	ctx->n = 0;
}

/* Append ops to the chain; its init may decline (-ENOENT: not configured). */
static int chain_add(struct lfsfs_resolve_ctx *ctx, const struct lfsfs_resolver_ops *ops)
{
	struct lfsfs_resolver *nr = realloc(ctx->resolvers, (ctx->n + 1) * sizeof(*nr));
	struct lfsfs_resolver *r;
	int rc;

	if (!nr)
		return -ENOMEM;
	ctx->resolvers = nr;
	r = &nr[ctx->n];
	memset(r, 0, sizeof(*r));
	r->ops = ops;
	r->ctx = ctx;
	r->priv = ctx;
	if (ops->init && (rc = ops->init(r, ctx))) {
		return rc == -ENOENT ? 0 : rc;
	}
	ctx->n++;
	return 0;
}

int lfsfs_resolve_init(struct lfsfs_resolve_ctx *ctx, const char *repo, const char *gitdir,
		       const struct lfsfs_meta *meta)
{
	int rc;

	memset(ctx, 0, sizeof(*ctx));
	ctx->repo = strdup(repo);
	ctx->gitdir = strdup(gitdir);
	ctx->meta = meta;
	if (!ctx->repo || !ctx->gitdir) {
		lfsfs_resolve_release(ctx);
		return -ENOMEM;
	}
	if ((rc = chain_add(ctx, &lfsfs_resolver_meta)) ||
	    (rc = chain_add(ctx, &lfsfs_resolver_hints))) {
		lfsfs_resolve_release(ctx);
		return rc;
	}
	return 0;
}

int lfsfs_resolve_configure(struct lfsfs_resolve_ctx *ctx, const struct lfsfs_config *cfg,
			    struct lfsfs_net *net)
{
	const char *order = lfsfs_config_get(cfg, "lfsfs.resolvers");
	const char *p = order && *order ? order : DEFAULT_ORDER;
	char name[64];
	int rc = 0;

	free_chain(ctx);
	ctx->cfg = cfg;
	ctx->net = net;
	while (*p && !rc) {
		size_t len;

		p += strspn(p, ", \t");
		len = strcspn(p, ", \t");
		if (!len)
			break;
		snprintf(name, sizeof(name), "%.*s", (int)len, p);
		p += len;
		const struct lfsfs_resolver_ops *ops = NULL;
		int is_planned = 0;

		for (size_t i = 0; i < NKNOWN; i++)
			if (!strcasecmp(name, known[i]->name))
				ops = known[i];
		for (size_t i = 0; i < sizeof(planned) / sizeof(planned[0]); i++)
			if (!strcasecmp(name, planned[i]))
				is_planned = 1;
		if (!ops && is_planned && !(order && *order))
			continue; /* default order naming a resolver this build lacks */
		if (!ops) {
			char names[256] = "";
			for (size_t i = 0; i < NKNOWN; i++)
				snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
					 i ? ", " : "", known[i]->name);
			return lfsfs_error_set(-EINVAL, "unknown resolver '%s' in lfsfs.resolvers; "
					       "known: %s", name, names);
		}
		rc = chain_add(ctx, ops);
	}
	return rc;
}

void lfsfs_resolve_release(struct lfsfs_resolve_ctx *ctx)
{
	free_chain(ctx);
	free(ctx->repo);
	free(ctx->gitdir);
	memset(ctx, 0, sizeof(*ctx));
}

static int take_record(struct lfsfs_record *rec, size_t k, const char *name,
		       struct lfsfs_source *out)
{
	memset(out, 0, sizeof(*out));
	out->url = rec->urls[k];
	rec->urls[k] = NULL;
	out->etag = rec->etag;
	rec->etag = NULL;
	out->headers = rec->headers;
	out->n_headers = rec->n_headers;
	rec->headers = NULL;
	rec->n_headers = 0;
	out->expires = rec->expires;
	out->resolver = name;
	return 0;
}

int lfsfs_resolve_source(struct lfsfs_resolve_ctx *ctx, const struct lfsfs_resolve_query *q,
			 struct lfsfs_source *out)
{
	struct lfsfs_buf why = LFSFS_BUF_INIT(4096);
	struct lfsfs_buf unsupported = LFSFS_BUF_INIT(4096);
	const char *what = q->oid ? q->oid : q->path;
	int rc = -ENOENT;

	memset(out, 0, sizeof(*out));
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
			lfsfs_record_release(&rec);
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
				take_record(&rec, k, r->ops->name, out);
				lfsfs_record_release(&rec);
				lfsfs_buf_release(&why);
				lfsfs_buf_release(&unsupported);
				return 0;
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

int lfsfs_resolve(struct lfsfs_resolve_ctx *ctx, const struct lfsfs_resolve_query *q,
		  char **url, char **etag)
{
	struct lfsfs_source s;
	int rc = lfsfs_resolve_source(ctx, q, &s);

	*url = NULL;
	*etag = NULL;
	if (rc)
		return rc;
	*url = s.url;
	*etag = s.etag;
	s.url = s.etag = NULL;
	lfsfs_source_release(&s);
	return 0;
}
