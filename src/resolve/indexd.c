/*
 * The `indexd` resolver: Gen3 Indexd records found by hash,
 * GET {lfsfs.indexd.url}/index/?hash=sha256:<oid>; a record is used only if
 * its hashes.sha256 equals the oid and its size the pointer's.  Its urls
 * (s3://, gs://, az://, https://) go to the stores as they are.
 */
#include "resolve/resolve.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lfsfs/error.h"
#include "resolve/drs_common.h"
#include "store/store.h"
#include "util/config.h"
#include "util/log.h"

struct indexd {
	struct lfsfs_resolve_ctx *ctx;
	char *base;                 /* lfsfs.indexd.url, no trailing '/' */
	struct lfsfs_drs_auth auth; /* lfsfs.indexd.token / LFSFS_INDEXD_TOKEN */
};

static void indexd_free(struct lfsfs_resolver *r)
{
	struct indexd *x = r->priv;

	if (!x || x == (void *)r->ctx)
		return;
	lfsfs_drs_auth_release(&x->auth);
	free(x->base);
	free(x);
	r->priv = NULL;
}

static int indexd_init(struct lfsfs_resolver *r, struct lfsfs_resolve_ctx *ctx)
{
	const char *url = lfsfs_config_get(ctx->cfg, "lfsfs.indexd.url");
	struct indexd *x;
	size_t n;
	int rc;

	if (!ctx->net || !url || !*url)
		return -ENOENT;
	if (strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8))
		return lfsfs_error_set(-EINVAL,
		                       "lfsfs.indexd.url '%s' is not an http(s) URL; set "
		                       "it to the Indexd base, e.g. https://gen3.example.org/index",
		                       url);
	if (!(x = calloc(1, sizeof(*x))))
		return -ENOMEM;
	x->ctx = ctx;
	r->priv = x;
	n = strlen(url);
	while (n && url[n - 1] == '/')
		n--;
	if (!(x->base = strndup(url, n))) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = lfsfs_drs_auth_init(&x->auth, ctx->cfg, "Indexd server", "lfsfs.indexd",
	                              "LFSFS_INDEXD_TOKEN", x->base, 0)))
		goto fail;
	log_info("indexd resolver: server '%s', token from %s", x->base, x->auth.source);
	return 0;
fail:
	indexd_free(r);
	return rc;
}

/* 1 if record j describes the bytes of q; else a note in why. */
static int record_matches(const cJSON *j, const struct lfsfs_resolve_query *q, uint64_t *size,
                          struct lfsfs_buf *why)
{
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(j, "hashes");
	const cJSON *sha = cJSON_IsObject(h) ? cJSON_GetObjectItemCaseSensitive(h, "sha256") : NULL;
	const cJSON *sz = cJSON_GetObjectItemCaseSensitive(j, "size");
	const cJSON *did = cJSON_GetObjectItemCaseSensitive(j, "did");
	const char *name = cJSON_IsString(did) ? did->valuestring : "?";

	if (!cJSON_IsString(sha) || !lfsfs_drs_hex_eq(q->oid, sha->valuestring)) {
		lfsfs_buf_printf(why, "%srecord '%s' has another sha256, not used",
		                 why->len ? ", " : "", name);
		return 0;
	}
	*size = 0;
	if (cJSON_IsNumber(sz) && sz->valuedouble >= 0)
		*size = (uint64_t)sz->valuedouble;
	if (cJSON_IsNumber(sz) && *size != q->size) {
		lfsfs_buf_printf(why,
		                 "%srecord '%s' is %" PRIu64 " bytes, the pointer says %" PRIu64
		                 ", not used",
		                 why->len ? ", " : "", name, *size, q->size);
		return 0;
	}
	return 1;
}

static int indexd_resolve(struct lfsfs_resolver *r, const struct lfsfs_resolve_query *q,
                          struct lfsfs_record *out, struct lfsfs_buf *why)
{
	struct indexd *x = r->priv;
	struct lfsfs_buf url = LFSFS_BUF_INIT(0);
	struct lfsfs_buf notes = LFSFS_BUF_INIT(2048);
	const cJSON *recs, *it, *pick = NULL;
	cJSON *j = NULL;
	uint64_t size = 0, psize = 0;
	int rc, pick_ok = 0;

	if (!q->oid) {
		lfsfs_buf_appends(why, "needs an oid");
		return -ENOENT;
	}
	if (lfsfs_buf_printf(&url, "%s/index/?hash=sha256:%s", x->base, q->oid))
		return -ENOMEM;
	rc = lfsfs_drs_request(&x->auth, x->ctx->net, 1, LFSFS_HTTP_GET, url.data, NULL, &j, NULL);
	if (rc == -ENOENT) {
		lfsfs_buf_printf(why, "Indexd server '%s' has no record (HTTP 404 at %s/index/)",
		                 x->base, x->base);
		goto out;
	}
	if (rc)
		goto out;
	recs = cJSON_GetObjectItemCaseSensitive(j, "records");
	if (!cJSON_IsArray(recs)) {
		rc = lfsfs_error_set(-LFSFS_EPARSE,
		                     "Indexd server '%s': the answer to %s/index/"
		                     "?hash=sha256:%.12s… has no \"records\" list; is "
		                     "lfsfs.indexd.url right?",
		                     x->base, x->base, q->oid);
		goto out;
	}
	/* the first record for these bytes whose urls a store serves; else the
	 * first for these bytes at all (resolve_source names its URLs) */
	cJSON_ArrayForEach(it, recs)
	{
		const cJSON *u, *urls = cJSON_GetObjectItemCaseSensitive(it, "urls");
		int ok = 0;

		if (!cJSON_IsArray(urls) || !cJSON_GetArraySize(urls) ||
		    !record_matches(it, q, &size, &notes))
			continue;
		cJSON_ArrayForEach(u, urls) if (cJSON_IsString(u) &&
		                                lfsfs_store_for_url(u->valuestring)) ok = 1;
		if (!pick || (ok && !pick_ok)) {
			pick = it;
			pick_ok = ok;
			psize = size;
		}
		if (ok)
			break;
	}
	if (!pick) {
		lfsfs_buf_printf(why, "Indexd server '%s' has no record with sha256 %.12s…%s%s",
		                 x->base, q->oid, notes.len ? " (" : "",
		                 notes.len ? notes.data : "");
		if (notes.len)
			lfsfs_buf_appends(why, ")");
		rc = -ENOENT;
		goto out;
	}
	{
		const cJSON *u, *urls = cJSON_GetObjectItemCaseSensitive(pick, "urls");
		size_t n = (size_t)cJSON_GetArraySize(urls), k = 0;
		time_t t;

		memset(out, 0, sizeof(*out));
		if (!(out->urls = calloc(n, sizeof(char *)))) {
			rc = -ENOMEM;
			goto out;
		}
		cJSON_ArrayForEach(u, urls)
		{
			if (!cJSON_IsString(u) || !*u->valuestring)
				continue;
			if (!(out->urls[k] = strdup(u->valuestring))) {
				out->n_urls = k;
				lfsfs_record_release(out);
				rc = -ENOMEM;
				goto out;
			}
			k++;
		}
		out->n_urls = k;
		out->size = psize;
		out->has_size = cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(pick, "size"));
		snprintf(out->sha256, sizeof(out->sha256), "%s", q->oid);
		/* storage URLs do not expire, unless one is presigned */
		for (size_t i = 0; i < k; i++)
			if (lfsfs_store_for_url(out->urls[i])) {
				if (lfsfs_drs_url_expiry(out->urls[i], &t) == 0)
					out->expires = t;
				break;
			}
		rc = 0;
	}
out:
	cJSON_Delete(j);
	lfsfs_buf_release(&url);
	lfsfs_buf_release(&notes);
	return rc;
}

const struct lfsfs_resolver_ops lfsfs_resolver_indexd = {
	.name = "indexd",
	.init = indexd_init,
	.resolve = indexd_resolve,
	.free = indexd_free,
};
