/* The `hints` resolver: the local .git/drs/pre-commit/v1 hint cache (advisory). */
#include "resolve/resolve.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int hints_resolve(struct lfsfs_resolver *r, const struct lfsfs_resolve_query *q,
			 struct lfsfs_record *out, struct lfsfs_buf *why)
{
	struct lfsfs_resolve_ctx *ctx = r->priv;
	char *url = NULL;
	int rc;

	if (!q->oid) {
		lfsfs_buf_appends(why, "needs an oid");
		return -ENOENT;
	}
	rc = lfsfs_hint_read_url(ctx->gitdir, q->oid, &url);
	if (rc == -ENOENT) {
		lfsfs_buf_appends(why, "no hint in .git/drs/pre-commit/v1/oids");
		return rc;
	}
	if (rc)
		return rc;
	memset(out, 0, sizeof(*out));
	out->urls = calloc(1, sizeof(char *));
	if (!out->urls) {
		free(url);
		return -ENOMEM;
	}
	out->urls[0] = url;
	out->n_urls = 1;
	return 0;
}

const struct lfsfs_resolver_ops lfsfs_resolver_hints = {
	.name = "hints",
	.resolve = hints_resolve,
};
