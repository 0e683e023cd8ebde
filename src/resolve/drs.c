/*
 * The `drs` resolver: GA4GH DRS 1.4 objects looked up by oid (or named by a
 * drs:// URI in a record), checked against the oid, turned into a URL
 * through their access methods (signed URLs with an expiry), and bulk
 * lookups for a directory's pointers.  Settings and rules: docs/RESOLVERS.md.
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

#define API_PATH "/ga4gh/drs/v1"
#define DEFAULT_URLTTL 300
#define MAX_BULK 1000 /* never ask for more at once, whatever the server says */

struct drs {
	struct lfsfs_resolve_ctx *ctx;
	char *base;      /* lfsfs.drs.url, no trailing '/'; NULL: drs:// URIs only */
	char *api;       /* base + /ga4gh/drs/v1, or NULL */
	char *idfmt;     /* object id template with {oid}; NULL with by_checksum */
	int by_checksum; /* lfsfs.drs.idformat = checksum */
	long urlttl;     /* assumed life of a URL that does not say */
	struct lfsfs_drs_auth auth;

	pthread_mutex_t lock; /* protects info_done and bulk_max; held across
			       * the one service-info request */
	int info_done;
	long bulk_max; /* bulk_object_ids per request; 0: no bulk */
};

/* ---------------------------------------------------------------- setup */

/* Does the comma list `list` name `word` (case-insensitively)? */
static int list_has(const char *list, const char *word)
{
	size_t wl = strlen(word);

	while (list && *list) {
		size_t len;
		list += strspn(list, ", \t");
		len = strcspn(list, ", \t");
		if (len == wl && !strncasecmp(list, word, wl))
			return 1;
		list += len;
	}
	return 0;
}

static int meta_has_drs_uri(const struct lfsfs_meta *m)
{
	for (size_t i = 0; m && i < m->n; i++)
		if (m->entries[i].url && !strncasecmp(m->entries[i].url, "drs://", 6))
			return 1;
	return 0;
}

static void drs_free(struct lfsfs_resolver *r)
{
	struct drs *d = r->priv;

	if (!d || d == (void *)r->ctx)
		return;
	lfsfs_drs_auth_release(&d->auth);
	pthread_mutex_destroy(&d->lock);
	free(d->base);
	free(d->api);
	free(d->idfmt);
	free(d);
	r->priv = NULL;
}

static int drs_init(struct lfsfs_resolver *r, struct lfsfs_resolve_ctx *ctx)
{
	const char *url = lfsfs_config_get(ctx->cfg, "lfsfs.drs.url");
	const char *fmt = lfsfs_config_get(ctx->cfg, "lfsfs.drs.idformat");
	const char *ttl = lfsfs_config_get(ctx->cfg, "lfsfs.drs.urlttl");
	struct drs *d;
	int rc;

	if (!ctx->net)
		return -ENOENT;
	if (url && !*url)
		url = NULL;
	/* Without a server, drs:// URIs in records are still served when the
	 * user asks for the resolver by name or metadata.json holds some. */
	if (!url && !list_has(lfsfs_config_get(ctx->cfg, "lfsfs.resolvers"), "drs") &&
	    !meta_has_drs_uri(ctx->meta))
		return -ENOENT;
	if (url && strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8))
		return lfsfs_error_set(-EINVAL,
		                       "lfsfs.drs.url '%s' is not an http(s) URL; set it "
		                       "to the server's base, e.g. https://drs.example.org",
		                       url);
	if (!(d = calloc(1, sizeof(*d))))
		return -ENOMEM;
	pthread_mutex_init(&d->lock, NULL);
	d->ctx = ctx;
	d->urlttl = DEFAULT_URLTTL;
	r->priv = d;
	if (url) {
		size_t n = strlen(url);
		while (n && url[n - 1] == '/')
			n--;
		/* accept the API root itself too */
		if (n >= strlen(API_PATH) &&
		    !strncmp(url + n - strlen(API_PATH), API_PATH, strlen(API_PATH)))
			n -= strlen(API_PATH);
		if (!(d->base = strndup(url, n)) || !(d->api = malloc(n + sizeof(API_PATH)))) {
			rc = -ENOMEM;
			goto fail;
		}
		snprintf(d->api, n + sizeof(API_PATH), "%s%s", d->base, API_PATH);
	}
	if (!fmt || !*fmt || !strcasecmp(fmt, "oid")) {
		d->idfmt = strdup("{oid}");
	} else if (!strcasecmp(fmt, "checksum")) {
		d->by_checksum = 1;
	} else if (strstr(fmt, "{oid}")) {
		d->idfmt = strdup(fmt);
	} else {
		rc = lfsfs_error_set(-EINVAL,
		                     "lfsfs.drs.idformat '%s': use oid, sha256:{oid} (any "
		                     "text with {oid}), or checksum",
		                     fmt);
		goto fail;
	}
	if (!d->by_checksum && !d->idfmt) {
		rc = -ENOMEM;
		goto fail;
	}
	if (ttl && *ttl) {
		char *end;
		errno = 0;
		long v = strtol(ttl, &end, 10);
		if (errno || *end || v < 1) {
			rc = lfsfs_error_set(-EINVAL,
			                     "lfsfs.drs.urlttl '%s': use a number of seconds "
			                     "(default %d)",
			                     ttl, DEFAULT_URLTTL);
			goto fail;
		}
		d->urlttl = v;
	}
	if ((rc = lfsfs_drs_auth_init(&d->auth, ctx->cfg, "DRS server", "lfsfs.drs",
	                              "LFSFS_DRS_TOKEN", d->base ? d->base : "", 1)))
		goto fail;
	if (d->base)
		log_info("drs resolver: server '%s', ids %s, token from %s", d->base,
		         d->by_checksum ? "by checksum lookup" : d->idfmt, d->auth.source);
	else
		log_info("drs resolver: drs:// URIs only (lfsfs.drs.url not set)");
	return 0;
fail:
	drs_free(r);
	return rc;
}

/* ---------------------------------------------------------------- helpers */

/* The object id for oid under lfsfs.drs.idformat (malloc'd). */
static char *make_id(const struct drs *d, const char *oid)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(0);

	lfsfs_buf_appends(&b, "");
	for (const char *p = d->idfmt; *p;) {
		if (!strncmp(p, "{oid}", 5)) {
			lfsfs_buf_appends(&b, oid);
			p += 5;
		} else {
			lfsfs_buf_append(&b, p++, 1);
		}
	}
	return lfsfs_buf_detach(&b);
}

/* {api}/objects/<encoded id> (malloc'd). */
static char *object_url(const struct drs *d, const char *id)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(0);
	char *enc = lfsfs_drs_encode_id(id);

	if (enc)
		lfsfs_buf_printf(&b, "%s/objects/%s", d->api, enc);
	free(enc);
	return lfsfs_buf_detach(&b);
}

static int strv_dup(char **in, size_t n, char ***out)
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

/* Fill rec with one URL (and its headers), the object's identity, and when
 * the URL stops working. */
static int fill_record(const struct drs *d, const struct lfsfs_drs_object *o, const char *url,
                       char **headers, size_t n_headers, struct lfsfs_record *rec)
{
	time_t t;

	memset(rec, 0, sizeof(*rec));
	if (!(rec->urls = calloc(1, sizeof(char *))) || !(rec->urls[0] = strdup(url)))
		goto nomem;
	rec->n_urls = 1;
	if (strv_dup(headers, n_headers, &rec->headers)) {
		rec->n_headers = n_headers;
		goto nomem;
	}
	rec->n_headers = n_headers;
	rec->size = o->size;
	rec->has_size = o->has_size;
	memcpy(rec->sha256, o->sha256, sizeof(rec->sha256));
	/* DRS has no expiry field: the URL's own, else lfsfs.drs.urlttl */
	rec->expires = lfsfs_drs_url_expiry(url, &t) == 0 ? t : time(NULL) + d->urlttl;
	return 0;
nomem:
	lfsfs_record_release(rec);
	return -ENOMEM;
}

/* A record that lists URLs no store serves (resolve_source names them). */
static int unsupported_record(const struct lfsfs_drs_object *o, char **urls, size_t n,
                              struct lfsfs_record *rec)
{
	memset(rec, 0, sizeof(*rec));
	if (strv_dup(urls, n, &rec->urls)) {
		rec->n_urls = n;
		lfsfs_record_release(rec);
		return -ENOMEM;
	}
	rec->n_urls = n;
	rec->size = o->size;
	rec->has_size = o->has_size;
	return 0;
}

/* Keep the first real failure's code and message while trying the rest. */
struct first_err {
	int rc;
	char msg[1024];
};

static void keep_err(struct first_err *fe, int rc)
{
	if (rc && rc != -ENOENT && !fe->rc) {
		fe->rc = rc;
		snprintf(fe->msg, sizeof(fe->msg), "%s", lfsfs_error_message());
	}
}

static int give_err(const struct first_err *fe)
{
	return lfsfs_error_set(fe->rc, "%s", fe->msg);
}

/* A growable list of owned strings. */
struct strv {
	char **v;
	size_t n;
};

static void strv_push(struct strv *sv, const char *s)
{
	char **nv = realloc(sv->v, (sv->n + 1) * sizeof(*nv));

	if (!nv)
		return;
	sv->v = nv;
	if ((sv->v[sv->n] = strdup(s)))
		sv->n++;
}

static void strv_release(struct strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = 0;
}

/*
 * Turn object o (at objurl, on our server when auth) into a record: an
 * access_url a store serves, used as given; else an access_id exchanged
 * for a (signed) URL at {objurl}/access/{access_id}.  When only URLs no
 * store serves turn up, the record lists them (resolve_source names them).
 */
static int choose_access(struct drs *d, const char *objurl, int auth,
                         const struct lfsfs_drs_object *o, struct lfsfs_record *rec,
                         struct lfsfs_buf *why)
{
	struct first_err fe = { 0 };
	struct strv unsup = { 0 };
	int rc;

	for (size_t i = 0; i < o->n_access; i++) {
		const struct lfsfs_drs_access *m = &o->access[i];
		if (m->url && lfsfs_store_for_url(m->url))
			return fill_record(d, o, m->url, m->headers, m->n_headers, rec);
	}
	for (size_t i = 0; i < o->n_access; i++) {
		const struct lfsfs_drs_access *m = &o->access[i];
		struct lfsfs_drs_access acc = { 0 };
		struct lfsfs_buf url = LFSFS_BUF_INIT(0);
		char *enc;
		cJSON *j = NULL;

		if (!m->access_id) {
			if (m->url)
				strv_push(&unsup, m->url);
			continue;
		}
		if (!(enc = lfsfs_drs_encode_id(m->access_id)) ||
		    lfsfs_buf_printf(&url, "%s/access/%s", objurl, enc)) {
			free(enc);
			lfsfs_buf_release(&url);
			strv_release(&unsup);
			return -ENOMEM;
		}
		free(enc);
		rc = lfsfs_drs_request(&d->auth, d->ctx->net, auth, LFSFS_HTTP_GET, url.data, NULL,
		                       &j, NULL);
		if (rc == -ENOENT)
			rc = lfsfs_error_set(-LFSFS_ESOURCE_NOT_ACCESSIBLE,
			                     "DRS server: no access method '%s' at %s",
			                     m->access_id, url.data);
		if (!rc && (rc = lfsfs_drs_access_url_parse(j, &acc)))
			rc = lfsfs_error_set(rc, "DRS server: %s answered %s", url.data,
			                     lfsfs_error_message());
		cJSON_Delete(j);
		lfsfs_buf_release(&url);
		if (rc) {
			keep_err(&fe, rc);
			continue;
		}
		if (lfsfs_store_for_url(acc.url)) {
			rc = fill_record(d, o, acc.url, acc.headers, acc.n_headers, rec);
			log_debug("drs: object '%s' access '%s' -> %s (expires in %lds)",
			          o->id ? o->id : "?", m->access_id, acc.url,
			          rc ? 0L : (long)(rec->expires - time(NULL)));
			lfsfs_drs_access_release(&acc);
			strv_release(&unsup);
			return rc;
		}
		strv_push(&unsup, acc.url);
		lfsfs_drs_access_release(&acc);
	}
	if (unsup.n) {
		rc = unsupported_record(o, unsup.v, unsup.n, rec);
		strv_release(&unsup);
		return rc;
	}
	if (fe.rc)
		return give_err(&fe);
	lfsfs_buf_printf(why, "DRS object '%s' has no access method", o->id ? o->id : "?");
	return -ENOENT;
}

/* GET and parse the object at url. -ENOENT on 404. */
static int get_object(struct drs *d, const char *url, int auth, struct lfsfs_drs_object *o)
{
	cJSON *j = NULL;
	int rc;

	memset(o, 0, sizeof(*o));
	rc = lfsfs_drs_request(&d->auth, d->ctx->net, auth, LFSFS_HTTP_GET, url, NULL, &j, NULL);
	if (rc)
		return rc;
	rc = lfsfs_drs_object_parse(j, o);
	cJSON_Delete(j);
	if (rc && rc != -ENOMEM)
		rc = lfsfs_error_set(-LFSFS_EPARSE, "DRS server: %s: %s", url,
		                     lfsfs_error_message());
	return rc;
}

/* The object of a drs:// URI named by a record. */
static int resolve_uri(struct drs *d, const char *uri, const struct lfsfs_resolve_query *q,
                       struct lfsfs_record *rec, struct lfsfs_buf *why)
{
	struct lfsfs_drs_object o;
	char *url = NULL;
	int same = 0, rc;

	if ((rc = lfsfs_drs_uri_to_url(uri, d->base, &url, &same)))
		return rc;
	rc = get_object(d, url, same, &o);
	if (rc == -ENOENT) {
		lfsfs_buf_printf(why, "%s: no such DRS object", uri);
	} else if (!rc) {
		if (q->oid)
			rc = lfsfs_drs_object_check(&o, q->oid, q->size, 1, why);
		else if (o.has_size && o.size != q->size) {
			lfsfs_buf_printf(why, "%s is %" PRIu64 " bytes, not %" PRIu64, uri, o.size,
			                 q->size);
			rc = -ENOENT;
		}
		if (!rc)
			rc = choose_access(d, url, same, &o, rec, why);
		lfsfs_drs_object_release(&o);
	}
	free(url);
	return rc;
}

/* Objects from a list answer: a bare array or {resolved_drs_object: [...]}. */
static const cJSON *object_list(const cJSON *j)
{
	static const char *const keys[] = { "resolved_drs_object", "drs_objects", "objects" };

	if (cJSON_IsArray(j))
		return j;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[i]);
		if (cJSON_IsArray(v))
			return v;
	}
	return NULL;
}

/* Look the oid up on lfsfs.drs.url. */
static int lookup_oid(struct drs *d, const struct lfsfs_resolve_query *q, struct lfsfs_record *rec,
                      struct lfsfs_buf *why)
{
	struct lfsfs_drs_object o;
	char *id = NULL, *url = NULL;
	cJSON *j = NULL;
	const cJSON *it;
	int rc;

	if (!d->by_checksum) {
		if (!(id = make_id(d, q->oid)) || !(url = object_url(d, id))) {
			free(id);
			return -ENOMEM;
		}
		rc = get_object(d, url, 1, &o);
		if (rc == -ENOENT)
			lfsfs_buf_printf(why, "DRS server '%s' has no object '%s'", d->base, id);
		if (!rc) {
			rc = lfsfs_drs_object_check(&o, q->oid, q->size, 1, why);
			if (!rc)
				rc = choose_access(d, url, 1, &o, rec, why);
			lfsfs_drs_object_release(&o);
		}
		free(id);
		free(url);
		return rc;
	}
	/* GET /objects/checksum/{oid}: every object with that checksum */
	{
		struct lfsfs_buf b = LFSFS_BUF_INIT(0);
		if (lfsfs_buf_printf(&b, "%s/objects/checksum/%s", d->api, q->oid))
			return -ENOMEM;
		url = lfsfs_buf_detach(&b);
	}
	rc = lfsfs_drs_request(&d->auth, d->ctx->net, 1, LFSFS_HTTP_GET, url, NULL, &j, NULL);
	if (rc == -ENOENT)
		lfsfs_buf_printf(why, "DRS server '%s' has no object with checksum %.12s…", d->base,
		                 q->oid);
	if (!rc) {
		struct lfsfs_buf notes = LFSFS_BUF_INIT(2048);

		rc = -ENOENT;
		cJSON_ArrayForEach(it, object_list(j))
		{
			char *ourl;
			if (lfsfs_drs_object_parse(it, &o))
				continue;
			if (notes.len)
				lfsfs_buf_appends(&notes, ", ");
			if (!lfsfs_drs_object_check(&o, q->oid, q->size, 1, &notes) && o.id &&
			    (ourl = object_url(d, o.id))) {
				rc = choose_access(d, ourl, 1, &o, rec, why);
				free(ourl);
			}
			lfsfs_drs_object_release(&o);
			if (rc != -ENOENT)
				break;
		}
		if (rc == -ENOENT)
			lfsfs_buf_printf(why,
			                 "DRS server '%s' has no usable object with checksum "
			                 "%.12s…%s%s%s",
			                 d->base, q->oid, notes.len ? " (" : "",
			                 notes.len ? notes.data : "", notes.len ? ")" : "");
		lfsfs_buf_release(&notes);
		cJSON_Delete(j);
	}
	free(url);
	return rc;
}

/* Add u to the list sv if it is a drs:// URI not there yet. */
static void add_uri(struct strv *sv, const char *u)
{
	if (!u || strncasecmp(u, "drs://", 6))
		return;
	for (size_t i = 0; i < sv->n; i++)
		if (!strcmp(sv->v[i], u))
			return;
	strv_push(sv, u);
}

/* drs:// URIs that the repository's records give for q. */
static void record_uris(struct drs *d, const struct lfsfs_resolve_query *q, struct strv *out)
{
	struct lfsfs_resolve_ctx *ctx = d->ctx;
	const struct lfsfs_meta_entry *e;
	struct lfsfs_record mrec;
	char *hint = NULL;

	if (q->oid) {
		memset(&mrec, 0, sizeof(mrec));
		if (lfsfs_meta_read_sha256(ctx->repo, q->oid, &mrec) == 0)
			for (size_t i = 0; i < mrec.n_urls; i++)
				add_uri(out, mrec.urls[i]);
		lfsfs_record_release(&mrec);
		if (ctx->meta && (e = lfsfs_meta_find_oid(ctx->meta, q->oid)))
			add_uri(out, e->url);
		if (lfsfs_hint_read_url(ctx->gitdir, q->oid, &hint) == 0)
			add_uri(out, hint);
		free(hint);
	}
	if (q->path && ctx->meta && (e = lfsfs_meta_find(ctx->meta, q->path)) &&
	    (!q->oid || !e->sha256[0] || !strcmp(e->sha256, q->oid)))
		add_uri(out, e->url);
	lfsfs_error_clear(); /* a malformed record is the meta resolver's to report */
}

/* ---------------------------------------------------------------- resolve */

static int drs_resolve(struct lfsfs_resolver *r, const struct lfsfs_resolve_query *q,
                       struct lfsfs_record *out, struct lfsfs_buf *why)
{
	struct drs *d = r->priv;
	struct first_err fe = { 0 };
	struct strv uris = { 0 };
	size_t mark = why->len;
	int rc = -ENOENT;

	/* 1. drs:// URIs the repository's records name */
	record_uris(d, q, &uris);
	for (size_t i = 0; i < uris.n; i++) {
		if (why->len > mark)
			lfsfs_buf_appends(why, ", ");
		if (!(rc = resolve_uri(d, uris.v[i], q, out, why)))
			break;
		keep_err(&fe, rc);
	}
	if (!rc && uris.n) {
		strv_release(&uris);
		return 0;
	}
	if (why->len > mark)
		lfsfs_buf_appends(why, ", ");
	/* 2. the oid on lfsfs.drs.url */
	if (!d->base) {
		lfsfs_buf_appends(why, uris.n ? "lfsfs.drs.url not set" :
		                                "no drs:// record and lfsfs.drs.url not set");
	} else if (!q->oid) {
		lfsfs_buf_appends(why, "needs an oid");
	} else {
		if (!(rc = lookup_oid(d, q, out, why))) {
			strv_release(&uris);
			return 0;
		}
		keep_err(&fe, rc);
	}
	strv_release(&uris);
	return fe.rc ? give_err(&fe) : -ENOENT;
}

/* ---------------------------------------------------------------- bulk */

/* bulk_object_ids per request the server takes (service-info), 0 = none. */
static long bulk_limit(struct drs *d)
{
	struct lfsfs_buf url = LFSFS_BUF_INIT(0);
	cJSON *j = NULL;
	const cJSON *v = NULL, *sub;
	long lim;

	pthread_mutex_lock(&d->lock);
	if (!d->info_done) {
		d->info_done = 1;
		d->bulk_max = 0;
		if (!lfsfs_buf_printf(&url, "%s/service-info", d->api) &&
		    !lfsfs_drs_request(&d->auth, d->ctx->net, 1, LFSFS_HTTP_GET, url.data, NULL, &j,
		                       NULL)) {
			/* DRS 1.4: drs.maxBulkRequestLength; before: at the root */
			sub = cJSON_GetObjectItemCaseSensitive(j, "drs");
			if (cJSON_IsObject(sub))
				v = cJSON_GetObjectItemCaseSensitive(sub, "maxBulkRequestLength");
			if (!cJSON_IsNumber(v))
				v = cJSON_GetObjectItemCaseSensitive(j, "maxBulkRequestLength");
			if (cJSON_IsNumber(v) && v->valuedouble > 1)
				d->bulk_max =
				        v->valuedouble > MAX_BULK ? MAX_BULK : (long)v->valuedouble;
		}
		log_info("drs: server '%s' %s bulk requests%s", d->base,
		         d->bulk_max ? "takes" : "does not take",
		         d->bulk_max ? "" : " (no maxBulkRequestLength > 1 in service-info)");
		cJSON_Delete(j);
		lfsfs_buf_release(&url);
		lfsfs_error_clear();
	}
	lim = d->bulk_max;
	pthread_mutex_unlock(&d->lock);
	return lim;
}

static void bulk_off(struct drs *d)
{
	pthread_mutex_lock(&d->lock);
	d->bulk_max = 0;
	pthread_mutex_unlock(&d->lock);
}

struct pending {
	size_t qi;                        /* index into the batch */
	const struct lfsfs_drs_object *o; /* the matching object (not owned) */
	const char *access_id;            /* into o */
};

/* Bulk access: POST /objects/access for objects that need an access_id.
 * Failures leave the objects for per-object resolution later. */
static void bulk_access(struct drs *d, struct pending *p, size_t np, struct lfsfs_record *out)
{
	cJSON *body = cJSON_CreateObject(), *arr, *j = NULL;
	const cJSON *it;
	struct lfsfs_buf url = LFSFS_BUF_INIT(0);
	char *text = NULL;
	long st = 0;
	int rc;

	if (!body || !(arr = cJSON_AddArrayToObject(body, "bulk_object_access_ids")))
		goto out;
	for (size_t i = 0; i < np; i++) {
		cJSON *e = cJSON_CreateObject(), *ids;
		if (!e)
			goto out;
		cJSON_AddItemToArray(arr, e);
		if (!cJSON_AddStringToObject(e, "bulk_object_id", p[i].o->id) ||
		    !(ids = cJSON_AddArrayToObject(e, "bulk_access_ids")))
			goto out;
		cJSON_AddItemToArray(ids, cJSON_CreateString(p[i].access_id));
	}
	if (!(text = cJSON_PrintUnformatted(body)) ||
	    lfsfs_buf_printf(&url, "%s/objects/access", d->api))
		goto out;
	rc = lfsfs_drs_request(&d->auth, d->ctx->net, 1, LFSFS_HTTP_POST, url.data, text, &j, &st);
	if (rc) {
		log_debug("drs: bulk access at '%s' failed (HTTP %ld): %s; access URLs are asked "
		          "for per object",
		          url.data, st, rc == -ENOENT ? "not found" : lfsfs_error_message());
		goto out;
	}
	cJSON_ArrayForEach(it,
	                   cJSON_GetObjectItemCaseSensitive(j, "resolved_drs_object_access_urls"))
	{
		const cJSON *oid = cJSON_GetObjectItemCaseSensitive(it, "drs_object_id");
		const cJSON *aid = cJSON_GetObjectItemCaseSensitive(it, "drs_access_id");
		struct lfsfs_drs_access acc = { 0 };

		if (!cJSON_IsString(oid) || lfsfs_drs_access_url_parse(it, &acc))
			continue;
		for (size_t i = 0; i < np; i++) {
			if (out[p[i].qi].n_urls || strcmp(p[i].o->id, oid->valuestring))
				continue;
			if (cJSON_IsString(aid) && strcmp(aid->valuestring, p[i].access_id))
				continue;
			if (lfsfs_store_for_url(acc.url))
				fill_record(d, p[i].o, acc.url, acc.headers, acc.n_headers,
				            &out[p[i].qi]);
		}
		lfsfs_drs_access_release(&acc);
	}
out:
	lfsfs_error_clear();
	cJSON_Delete(j);
	cJSON_Delete(body);
	free(text);
	lfsfs_buf_release(&url);
}

/* One bulk request for queries idx[0..m); fills out[] for what it finds. */
static int bulk_chunk(struct drs *d, const struct lfsfs_resolve_query *q, const size_t *idx,
                      size_t m, struct lfsfs_record *out)
{
	cJSON *body = cJSON_CreateObject(), *arr, *j = NULL;
	struct lfsfs_buf url = LFSFS_BUF_INIT(0);
	struct lfsfs_drs_object *objs = NULL;
	struct pending *pend = NULL;
	size_t nobj = 0, npend = 0;
	const cJSON *list, *it;
	char *text = NULL;
	long st = 0;
	int rc = -ENOMEM;

	if (!body || !(arr = cJSON_AddArrayToObject(body, "bulk_object_ids")))
		goto out;
	for (size_t k = 0; k < m; k++) {
		char *id = make_id(d, q[idx[k]].oid);
		if (!id)
			goto out;
		cJSON_AddItemToArray(arr, cJSON_CreateString(id));
		free(id);
	}
	if (!(text = cJSON_PrintUnformatted(body)) || lfsfs_buf_printf(&url, "%s/objects", d->api))
		goto out;
	rc = lfsfs_drs_request(&d->auth, d->ctx->net, 1, LFSFS_HTTP_POST, url.data, text, &j, &st);
	if (rc) {
		if (st == 401 || st == 403)
			goto out; /* the message says which token and what to set */
		log_info("drs: bulk lookup at '%s' failed (HTTP %ld): %s; resolving objects one "
		         "by one",
		         url.data, st, rc == -ENOENT ? "not found" : lfsfs_error_message());
		/* the server said bulk but refuses it (400, 404, 405, 413, 501):
		 * stop asking; a network failure or a 5xx may pass */
		if ((st >= 400 && st < 500) || st == 501)
			bulk_off(d);
		rc = 0;
		goto out;
	}
	list = object_list(j);
	rc = -ENOMEM;
	if (!(objs = calloc((size_t)cJSON_GetArraySize(list) + 1, sizeof(*objs))) ||
	    !(pend = calloc(m, sizeof(*pend))))
		goto out;
	cJSON_ArrayForEach(it, list) if (!lfsfs_drs_object_parse(it, &objs[nobj])) nobj++;
	for (size_t k = 0; k < m; k++) {
		const struct lfsfs_resolve_query *qq = &q[idx[k]];
		struct lfsfs_drs_object *o = NULL;
		for (size_t i = 0; i < nobj && !o; i++)
			if (!lfsfs_drs_object_check(&objs[i], qq->oid, qq->size, 1, NULL))
				o = &objs[i];
		if (!o)
			continue; /* unknown or wrong bytes: the per-object path explains */
		for (size_t a = 0; a < o->n_access && !out[idx[k]].n_urls; a++)
			if (o->access[a].url && lfsfs_store_for_url(o->access[a].url) &&
			    (rc = fill_record(d, o, o->access[a].url, o->access[a].headers,
			                      o->access[a].n_headers, &out[idx[k]])))
				goto out;
		if (out[idx[k]].n_urls)
			continue;
		for (size_t a = 0; a < o->n_access; a++) {
			if (!o->access[a].access_id)
				continue;
			if (o->id) {
				pend[npend].qi = idx[k];
				pend[npend].o = o;
				pend[npend].access_id = o->access[a].access_id;
				npend++;
			}
			break;
		}
	}
	if (npend)
		bulk_access(d, pend, npend, out);
	rc = 0;
out:
	if (rc == -ENOMEM)
		lfsfs_error_set(rc, "out of memory");
	for (size_t i = 0; i < nobj; i++)
		lfsfs_drs_object_release(&objs[i]);
	free(objs);
	free(pend);
	cJSON_Delete(j);
	cJSON_Delete(body);
	free(text);
	lfsfs_buf_release(&url);
	return rc;
}

/*
 * Resolve a directory's pointers in bulk requests (when service-info
 * advertises maxBulkRequestLength > 1): POST /objects, then one POST
 * /objects/access for the objects that need an access_id.  Anything not
 * found this way (unknown, wrong checksum, bulk access refused) is left
 * empty for the per-object path, which explains misses.  Never more than
 * two requests per chunk: this runs while a directory is listed.
 */
static int drs_resolve_batch(struct lfsfs_resolver *r, const struct lfsfs_resolve_query *q,
                             size_t n, struct lfsfs_record *out)
{
	struct drs *d = r->priv;
	size_t *idx, m = 0;
	long lim;
	int rc = 0;

	if (!d->base || d->by_checksum || !n || (lim = bulk_limit(d)) < 2)
		return 0;
	if (!(idx = calloc(n, sizeof(*idx))))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (q[i].oid && !out[i].n_urls)
			idx[m++] = i;
	for (size_t k = 0; k < m && !rc; k += (size_t)lim) {
		size_t cnt = m - k < (size_t)lim ? m - k : (size_t)lim;
		rc = bulk_chunk(d, q, idx + k, cnt, out);
		if (!rc && bulk_limit(d) < 2)
			break;
	}
	free(idx);
	return rc;
}

const struct lfsfs_resolver_ops lfsfs_resolver_drs = {
	.name = "drs",
	.init = drs_init,
	.resolve = drs_resolve,
	.resolve_batch = drs_resolve_batch,
	.free = drs_free,
};
