/* Generic http:// and https:// backend: plain ranged GETs with If-Match. */
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "lfsfs/error.h"
#include "net/net.h"

static int http_handles(const char *url)
{
	return !strncasecmp(url, "http://", 7) || !strncasecmp(url, "https://", 8);
}

static void http_done(struct lfsfs_http_req *req, int rc)
{
	struct lfsfs_fetch *f = req->ctx;

	snprintf(f->etag_seen, sizeof(f->etag_seen), "%s", req->etag);
	f->status = req->status;
	if (rc)
		snprintf(f->error, sizeof(f->error), "%s", req->error);
	lfsfs_buf_release(&req->errbody);
	curl_slist_free_all(req->headers);
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
	for (size_t i = 0; i < f->n_headers; i++) {
		struct curl_slist *n = curl_slist_append(req->headers, f->headers[i]);
		if (!n) {
			curl_slist_free_all(req->headers);
			free(req);
			return -ENOMEM;
		}
		req->headers = n;
	}
	req->done = http_done;
	req->ctx = f;
	f->priv = req;
	lfsfs_net_submit(st->net, req);
	return 0;
}


/* Content-MD5 is base64 of the 16-byte digest: return it as hex. */
static void md5_b64_to_hex(const char *b64, char out[33])
{
	unsigned char raw[64];
	int n;

	out[0] = '\0';
	if (!b64 || strlen(b64) > 60)
		return;
	n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)strlen(b64));
	/* EVP_DecodeBlock counts padding bytes: 24 chars -> 18 bytes */
	if (n < 16)
		return;
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

static int http_head(struct lfsfs_store *st, const char *url, struct lfsfs_objmeta *out)
{
	struct lfsfs_http_req req;
	const char *v;
	int rc;

	memset(&req, 0, sizeof(req));
	req.method = LFSFS_HTTP_HEAD;
	req.url = url;
	req.fd = -1;
	req.keep_headers = 1;
	rc = lfsfs_net_perform(st->net, &req);
	out->status = req.status;
	if (rc) {
		lfsfs_error_set(rc, "%s: cannot read '%s': %s", lfsfs_code_name(rc), url, req.error);
		goto out;
	}
	out->size = req.total;
	out->has_size = lfsfs_http_header(req.resp_headers, "Content-Length") != NULL;
	snprintf(out->etag, sizeof(out->etag), "%s", req.etag);
	if ((v = lfsfs_http_header(req.resp_headers, "Last-Modified")))
		snprintf(out->last_modified, sizeof(out->last_modified), "%s", v);
	if ((v = lfsfs_http_header(req.resp_headers, "Content-Type")))
		snprintf(out->content_type, sizeof(out->content_type), "%s", v);
	md5_b64_to_hex(lfsfs_http_header(req.resp_headers, "Content-MD5"), out->md5);
out:
	curl_slist_free_all(req.resp_headers);
	lfsfs_buf_release(&req.errbody);
	lfsfs_buf_release(&req.body);
	return rc;
}

static int http_explain(struct lfsfs_store *st, const char *url, struct lfsfs_buf *out)
{
	lfsfs_buf_printf(out, "backend: %s\ncredentials: none (public URL or presigned query)\n",
			 strncasecmp(url, "https://", 8) ? "http" : "https");
	return 0;
}

const struct lfsfs_store_ops lfsfs_store_http = {
	.name = "https",
	.forms = "http://host/path, https://host/path",
	.handles = http_handles,
	.fetch = http_fetch,
	.head = http_head,
	.explain = http_explain,
};
