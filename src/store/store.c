/* The table of object-store backends and URL dispatch. */
#include "store/store.h"

#include <errno.h>
#include <stdio.h>

#include "lfsfs/error.h"

static const struct lfsfs_store_ops *const backends[] = {
	&lfsfs_store_http,
	&lfsfs_store_file,
};

const struct lfsfs_store_ops *lfsfs_store_for_url(const char *url)
{
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (backends[i]->handles(url))
			return backends[i];
	return NULL;
}

const char *lfsfs_store_schemes(void)
{
	return "http://, https://, file://";
}

void lfsfs_store_fetch(struct lfsfs_store *st, struct lfsfs_fetch *f)
{
	const struct lfsfs_store_ops *ops = lfsfs_store_for_url(f->url);
	int rc;

	f->etag_seen[0] = '\0';
	f->error[0] = '\0';
	if (!ops) {
		snprintf(f->error, sizeof(f->error), "unsupported URL scheme (supported: %s)",
			 lfsfs_store_schemes());
		f->done(f, -LFSFS_EUNSUPPORTED);
		return;
	}
	rc = ops->fetch(st, f);
	if (rc) {
		if (!f->error[0])
			snprintf(f->error, sizeof(f->error), "%s", lfsfs_error_message());
		f->done(f, rc);
	}
}
