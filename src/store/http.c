/* Generic http:// and https:// backend: plain ranged GETs with If-Match. */
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net/net.h"

static int http_handles(const char *url)
{
	return !strncasecmp(url, "http://", 7) || !strncasecmp(url, "https://", 8);
}

static void http_done(struct lfsfs_http_req *req, int rc)
{
	struct lfsfs_fetch *f = req->ctx;

	snprintf(f->etag_seen, sizeof(f->etag_seen), "%s", req->etag);
	if (rc)
		snprintf(f->error, sizeof(f->error), "%s", req->error);
	free(req);
	f->priv = NULL;
	f->done(f, rc);
}

static int http_fetch(struct lfsfs_store *st, struct lfsfs_fetch *f)
{
	struct lfsfs_http_req *req = calloc(1, sizeof(*req));

	if (!req)
		return -ENOMEM;
	req->method = LFSFS_HTTP_GET;
	req->url = f->url;
	req->range_start = f->off;
	req->range_len = f->len;
	req->expect_total = f->size;
	req->fd = f->fd;
	/* A weak validator can never satisfy If-Match (RFC 9110 13.1.1):
	 * send only strong ones; the caller compares the returned ETag. */
	if (f->etag[0] && strncmp(f->etag, "W/", 2))
		snprintf(req->if_match, sizeof(req->if_match), "%s", f->etag);
	req->done = http_done;
	req->ctx = f;
	f->priv = req;
	lfsfs_net_submit(st->net, req);
	return 0;
}

const struct lfsfs_store_ops lfsfs_store_http = {
	.name = "https",
	.handles = http_handles,
	.fetch = http_fetch,
};
