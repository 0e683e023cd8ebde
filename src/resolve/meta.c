/* The `meta` resolver: committed .lfs-meta/sha256 records and metadata.json. */
#include "resolve/resolve.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lfsfs/error.h"

static int entry_to_record(const struct lfsfs_meta_entry *e, struct lfsfs_record *out)
{
	memset(out, 0, sizeof(*out));
	out->urls = calloc(1, sizeof(char *));
	if (!out->urls || !(out->urls[0] = strdup(e->url))) {
		free(out->urls);
		out->urls = NULL;
		return -ENOMEM;
	}
	out->n_urls = 1;
	out->etag = e->etag ? strdup(e->etag) : NULL;
	out->size = e->size;
	out->has_size = e->has_size;
	memcpy(out->sha256, e->sha256, sizeof(out->sha256));
	return 0;
}

static int meta_resolve(struct lfsfs_resolver *r, const struct lfsfs_resolve_query *q,
			struct lfsfs_record *out, struct lfsfs_buf *why)
{
	struct lfsfs_resolve_ctx *ctx = r->priv;
	const struct lfsfs_meta_entry *e;
	int rc;

	if (q->oid) {
		rc = lfsfs_meta_read_sha256(ctx->repo, q->oid, out);
		if (rc != -ENOENT)
			return rc;
		lfsfs_buf_printf(why, "no .lfs-meta/sha256/%.12s….json", q->oid);
		if (ctx->meta && (e = lfsfs_meta_find_oid(ctx->meta, q->oid)) && e->url)
			return entry_to_record(e, out);
	}
	if (q->path && ctx->meta && (e = lfsfs_meta_find(ctx->meta, q->path)) && e->url) {
		/* a path entry serves a pointer only if it describes the same bytes */
		if (!q->oid || !e->sha256[0] || !strcmp(e->sha256, q->oid))
			return entry_to_record(e, out);
		lfsfs_buf_printf(why, ", metadata.json entry for '%s' has another sha256",
				 q->path);
		return -ENOENT;
	}
	lfsfs_buf_printf(why, "%sno metadata.json entry", q->oid ? ", " : "");
	return -ENOENT;
}

const struct lfsfs_resolver_ops lfsfs_resolver_meta = {
	.name = "meta",
	.resolve = meta_resolve,
};
