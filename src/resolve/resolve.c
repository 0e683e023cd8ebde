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
#include "util/log.h"

/* Every resolver lfsfs knows, by the name used in lfsfs.resolvers. */
static const struct lfsfs_resolver_ops *const known[] = {
	&lfsfs_resolver_meta,
	&lfsfs_resolver_hints,
	&lfsfs_resolver_drs,
	&lfsfs_resolver_indexd,
	&lfsfs_resolver_lfs,
};

#define NKNOWN (sizeof(known) / sizeof(known[0]))
#define DEFAULT_ORDER "meta,hints,drs,indexd,lfs"
/* names of the default order that this build may not have yet are skipped */
static const char *const planned[] = { "drs", "indexd", "lfs" };

struct lfsfs_prefetched {
	char oid[65];
	struct lfsfs_source src;
	time_t found;
};

/* Drop every prefetched source; caller holds ctx->lock (or owns ctx). */
static void prefetch_clear(struct lfsfs_resolve_ctx *ctx)
{
	for (size_t i = 0; i < ctx->npre; i++)
		lfsfs_source_release(&ctx->pre[i].src);
	free(ctx->pre);
	ctx->pre = NULL;
	ctx->npre = ctx->cappre = 0;
}

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
	pthread_mutex_init(&ctx->lock, NULL);
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
	prefetch_clear(ctx);
	if (ctx->repo || ctx->gitdir)
		pthread_mutex_destroy(&ctx->lock);
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

static int dup_strv(char **in, size_t n, char ***out)
{
	*out = NULL;
	if (!n)
		return 0;
	if (!(*out = calloc(n, sizeof(char *))))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (!((*out)[i] = strdup(in[i])))
			return -ENOMEM;
	return 0;
}

/*
 * The prefetched source for oid, if one is still good.  With consume, the
 * entry is handed over and forgotten: the object keeps its own copy, and a
 * later resolution (say after the origin refused that URL) must ask the
 * resolvers afresh rather than get the same URL again.
 */
static int take_prefetched(struct lfsfs_resolve_ctx *ctx, const char *oid,
			   struct lfsfs_source *out, int consume)
{
	int rc = -ENOENT;

	pthread_mutex_lock(&ctx->lock);
	for (size_t i = 0; i < ctx->npre; i++) {
		struct lfsfs_source *p = &ctx->pre[i].src;
		if (strcmp(ctx->pre[i].oid, oid))
			continue;
		if (p->expires && time(NULL) + 30 >= p->expires)
			break; /* about to lapse: resolve afresh */
		memset(out, 0, sizeof(*out));
		out->url = strdup(p->url);
		out->etag = p->etag ? strdup(p->etag) : NULL;
		out->expires = p->expires;
		out->resolver = p->resolver;
		out->n_headers = p->n_headers;
		rc = (!out->url || dup_strv(p->headers, p->n_headers, &out->headers)) ? -ENOMEM : 0;
		if (rc)
			lfsfs_source_release(out);
		if (!rc && consume) {
			lfsfs_source_release(p);
			ctx->pre[i] = ctx->pre[--ctx->npre];
		}
		break;
	}
	pthread_mutex_unlock(&ctx->lock);
	return rc;
}

void lfsfs_resolve_prefetch(struct lfsfs_resolve_ctx *ctx, const struct lfsfs_resolve_query *q,
			    size_t n)
{
	struct lfsfs_record *recs;
	size_t *who;
	char *done;

	if (!n)
		return;
	recs = calloc(n, sizeof(*recs));
	who = calloc(n, sizeof(*who));
	done = calloc(n, 1);
	if (!recs || !who || !done)
		goto out;
	/* already known and still good */
	for (size_t k = 0; k < n; k++) {
		struct lfsfs_source tmp;
		if (!q[k].oid || take_prefetched(ctx, q[k].oid, &tmp, 0) == 0) {
			if (q[k].oid)
				lfsfs_source_release(&tmp);
			done[k] = 1;
		}
	}
	for (size_t i = 0; i < ctx->n; i++) {
		struct lfsfs_resolver *r = &ctx->resolvers[i];
		struct lfsfs_resolve_query *sub;
		size_t *map, m = 0;
		int rc;

		if (!r->ops->resolve_batch)
			continue;
		sub = calloc(n, sizeof(*sub));
		map = calloc(n, sizeof(*map));
		if (!sub || !map) {
			free(sub);
			free(map);
			break;
		}
		for (size_t k = 0; k < n; k++)
			if (!done[k]) {
				sub[m] = q[k];
				map[m++] = k;
			}
		if (m) {
			struct lfsfs_record *sr = calloc(m, sizeof(*sr));
			rc = sr ? r->ops->resolve_batch(r, sub, m, sr) : -ENOMEM;
			if (rc)
				log_warn("batch resolution by '%s' failed: %s", r->ops->name,
					 lfsfs_error_message());
			for (size_t j = 0; sr && j < m; j++) {
				size_t k = map[j];
				if (!rc && sr[j].n_urls && !done[k] &&
				    (!sr[j].has_size || sr[j].size == q[k].size) &&
				    lfsfs_store_for_url(sr[j].urls[0])) {
					recs[k] = sr[j];
					memset(&sr[j], 0, sizeof(sr[j]));
					done[k] = 2;
					who[k] = i;
				}
				lfsfs_record_release(&sr[j]);
			}
			free(sr);
		}
		free(sub);
		free(map);
	}
	pthread_mutex_lock(&ctx->lock);
	for (size_t k = 0; k < n; k++) {
		struct lfsfs_prefetched *p;
		if (done[k] != 2)
			continue;
		if (ctx->npre == ctx->cappre) {
			size_t nc = ctx->cappre ? ctx->cappre * 2 : 64;
			struct lfsfs_prefetched *np = realloc(ctx->pre, nc * sizeof(*np));
			if (!np)
				break;
			ctx->pre = np;
			ctx->cappre = nc;
		}
		/* replace an older entry for the same oid */
		p = NULL;
		for (size_t i = 0; i < ctx->npre; i++)
			if (!strcmp(ctx->pre[i].oid, q[k].oid)) {
				p = &ctx->pre[i];
				lfsfs_source_release(&p->src);
			}
		if (!p)
			p = &ctx->pre[ctx->npre++];
		memset(p, 0, sizeof(*p));
		snprintf(p->oid, sizeof(p->oid), "%s", q[k].oid);
		take_record(&recs[k], 0, ctx->resolvers[who[k]].ops->name, &p->src);
		p->found = time(NULL);
	}
	pthread_mutex_unlock(&ctx->lock);
out:
	for (size_t k = 0; recs && k < n; k++)
		lfsfs_record_release(&recs[k]);
	free(recs);
	free(who);
	free(done);
}

int lfsfs_resolve_has_batch(const struct lfsfs_resolve_ctx *ctx)
{
	for (size_t i = 0; i < ctx->n; i++)
		if (ctx->resolvers[i].ops->resolve_batch)
			return 1;
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
	if (q->oid && take_prefetched(ctx, q->oid, out, 1) == 0) {
		lfsfs_buf_release(&why);
		lfsfs_buf_release(&unsupported);
		return 0;
	}
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
