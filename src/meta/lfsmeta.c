/* Readers for committed .lfs-meta records and the local .git/drs hint cache. */
#include "meta/lfsmeta.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lfsfs/error.h"
#include "util/json.h"
#include "util/path.h"

/* metadata.json lists a whole repository; per-object records are tiny.
 * Both caps stop a hostile or corrupt file from eating memory. */
#define META_FILE_CAP ((size_t)256 << 20)
#define RECORD_FILE_CAP ((size_t)1 << 20)

/* Present and not JSON null. */
static const cJSON *field(const cJSON *obj, const char *name)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);

	return cJSON_IsNull(it) ? NULL : it;
}

static void entry_release(struct lfsfs_meta_entry *e)
{
	free(e->path);
	free(e->url);
	free(e->etag);
	memset(e, 0, sizeof(*e));
}

/*
 * Fill e (path already set) from one metadata.json value.  0 on success,
 * 1 if the entry is unusable (*why says why), -ENOMEM.
 */
static int entry_fill(const cJSON *obj, struct lfsfs_meta_entry *e, const char **why)
{
	const cJSON *it;

	if (!cJSON_IsObject(obj)) {
		*why = "value is not a json object";
		return 1;
	}
	it = field(obj, "remote_url");
	if (!cJSON_IsString(it) || !*it->valuestring) {
		*why = "missing or empty \"remote_url\"";
		return 1;
	}
	it = field(obj, "size");
	if (!it) {
		*why = "missing \"size\"";
		return 1;
	}
	if (lfsfs_json_size(it, &e->size)) {
		*why = "\"size\" must be a non-negative integer (a decimal string above 2^53)";
		return 1;
	}
	e->has_size = 1;
	it = field(obj, "sha256");
	if (it && lfsfs_json_sha256(it, e->sha256)) {
		*why = "\"sha256\" must be 64 hex digits, optionally prefixed 'sha256:'";
		return 1;
	}
	it = field(obj, "etag");
	if (it && !cJSON_IsString(it)) {
		*why = "\"etag\" must be a string";
		return 1;
	}
	if (it && *it->valuestring) {
		e->etag = strdup(it->valuestring);
		if (!e->etag)
			return -ENOMEM;
	}
	e->url = strdup(field(obj, "remote_url")->valuestring);
	if (!e->url)
		return -ENOMEM;
	return 0;
}

static char *elem_path(const struct lfsfs_meta_walk_ops *ops, void *elem)
{
	return *(char **)((char *)elem + ops->path_off);
}

struct walk_sort {
	const struct lfsfs_meta_walk_ops *ops;
	char *elems;
};

/* by path, then by position in the file (idx) */
static int walk_cmp(const void *a, const void *b, void *arg)
{
	const struct walk_sort *w = arg;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	int c = strcmp(elem_path(w->ops, w->elems + x * w->ops->size),
		       elem_path(w->ops, w->elems + y * w->ops->size));

	return c ? c : (x > y) - (x < y);
}

int lfsfs_meta_walk(const struct cJSON *root, const struct lfsfs_meta_walk_ops *ops,
		    void (*refused)(const char *path, const char *why, void *ctx), void *ctx,
		    void **out, size_t *nout)
{
	size_t total = (size_t)cJSON_GetArraySize(root), n = 0, kept = 0;
	char *elems = calloc(total ? total : 1, ops->size);
	size_t *idx = calloc(total ? total : 1, sizeof(*idx));
	char *res = NULL, why[256];
	const cJSON *it;
	int rc = 0;

	*out = NULL;
	*nout = 0;
	if (!elems || !idx) {
		rc = -ENOMEM;
		goto out;
	}
	cJSON_ArrayForEach(it, root)
	{
		char *e = elems + n * ops->size;
		const char *refusal = lfsfs_relpath_refusal(it->string);

		if (refusal) {
			if (refused)
				refused(it->string ? it->string : "", refusal, ctx);
			continue;
		}
		if ((rc = lfsfs_relpath_normalize(it->string, (char **)(e + ops->path_off))))
			goto out;
		why[0] = '\0';
		rc = ops->fill(it, e, why, sizeof(why));
		if (rc < 0) {
			n++; /* released below */
			goto out;
		}
		if (rc) {
			if (refused)
				refused(it->string, why, ctx);
			ops->release(e);
			memset(e, 0, ops->size);
			rc = 0;
			continue;
		}
		idx[n] = n;
		n++;
	}
	{
		struct walk_sort w = { ops, elems };
		qsort_r(idx, n, sizeof(*idx), walk_cmp, &w);
	}
	if (n && !(res = malloc(n * ops->size))) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char *e = elems + idx[i] * ops->size;
		/* "a//b" and "a/b" normalize alike: the first in the file wins. */
		if (kept && !strcmp(elem_path(ops, e), elem_path(ops, res + (kept - 1) * ops->size))) {
			if (refused)
				refused(elem_path(ops, e),
				        "duplicate path; an earlier entry names the same file", ctx);
			ops->release(e);
			continue;
		}
		memcpy(res + kept * ops->size, e, ops->size);
		kept++;
	}
	n = 0; /* every element was moved or released */
	*out = res;
	*nout = kept;
	res = NULL;
out:
	for (size_t i = 0; i < n; i++)
		ops->release(elems + i * ops->size);
	free(res);
	free(elems);
	free(idx);
	return rc;
}

int lfsfs_meta_read_root(const char *file, cJSON **root)
{
	int rc = lfsfs_json_load_file(file, META_FILE_CAP, root);

	if (rc)
		return rc;
	if (!cJSON_IsObject(*root)) {
		cJSON_Delete(*root);
		*root = NULL;
		return lfsfs_error_set(-LFSFS_EPARSE, "cannot use '%s': top level must be a json "
				       "object keyed by path", file);
	}
	return 0;
}

static int entry_walk_fill(const cJSON *member, void *elem, char *why, size_t whylen)
{
	const char *w = NULL;
	int rc = entry_fill(member, elem, &w);

	if (rc > 0)
		snprintf(why, whylen, "%s", w ? w : "unusable entry");
	return rc;
}

static void entry_walk_release(void *elem)
{
	entry_release(elem);
}

static const struct lfsfs_meta_walk_ops entry_walk = {
	.size = sizeof(struct lfsfs_meta_entry),
	.path_off = offsetof(struct lfsfs_meta_entry, path),
	.fill = entry_walk_fill,
	.release = entry_walk_release,
};

int lfsfs_meta_load(const char *repo, struct lfsfs_meta **out,
                    void (*refused)(const char *path, const char *why, void *ctx), void *ctx)
{
	struct lfsfs_meta *m = NULL;
	cJSON *root = NULL;
	char *file = NULL;
	void *entries = NULL;
	int rc;

	*out = NULL;
	m = calloc(1, sizeof(*m));
	file = lfsfs_path_join(repo, ".lfs-meta/metadata.json");
	if (!m || !file) {
		rc = -ENOMEM;
		goto out;
	}
	rc = lfsfs_meta_read_root(file, &root);
	if (rc == -ENOENT) {
		rc = 0;
		goto done;
	}
	if (rc)
		goto out;
	if ((rc = lfsfs_meta_walk(root, &entry_walk, refused, ctx, &entries, &m->n)))
		goto out;
	m->entries = entries;
done:
	*out = m;
	m = NULL;
out:
	lfsfs_meta_free(m);
	cJSON_Delete(root);
	free(file);
	return rc;
}

void lfsfs_meta_free(struct lfsfs_meta *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++)
		entry_release(&m->entries[i]);
	free(m->entries);
	free(m);
}

static int find_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct lfsfs_meta_entry *)elem)->path);
}

const struct lfsfs_meta_entry *lfsfs_meta_find(const struct lfsfs_meta *m, const char *path)
{
	if (!m || !m->n || !path)
		return NULL;
	return bsearch(path, m->entries, m->n, sizeof(*m->entries), find_cmp);
}

const struct lfsfs_meta_entry *lfsfs_meta_find_oid(const struct lfsfs_meta *m, const char *oid)
{
	if (!m || !oid || !*oid)
		return NULL;
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->entries[i].sha256, oid))
			return &m->entries[i];
	return NULL;
}

void lfsfs_record_release(struct lfsfs_record *r)
{
	for (size_t i = 0; i < r->n_urls; i++)
		free(r->urls[i]);
	free(r->urls);
	free(r->etag);
	for (size_t i = 0; i < r->n_headers; i++)
		free(r->headers[i]);
	free(r->headers);
	memset(r, 0, sizeof(*r));
}

/* "<dir>/<mid>/<oid>.json", malloc'd; NULL on ENOMEM. */
static char *oid_file(const char *dir, const char *mid, const char *oid)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(0);

	if (lfsfs_buf_printf(&b, "%s/%s/%s.json", dir, mid, oid)) {
		lfsfs_buf_release(&b);
		return NULL;
	}
	return lfsfs_buf_detach(&b);
}

/* Append a copy of url unless it is already listed. */
static int record_add_url(struct lfsfs_record *r, const char *url)
{
	for (size_t i = 0; i < r->n_urls; i++)
		if (!strcmp(r->urls[i], url))
			return 0;
	r->urls[r->n_urls] = strdup(url);
	if (!r->urls[r->n_urls])
		return -ENOMEM;
	r->n_urls++;
	return 0;
}

int lfsfs_meta_read_sha256(const char *repo, const char *oid, struct lfsfs_record *out)
{
	const cJSON *url, *urls, *it;
	char sha[LFSFS_OID_HEX_LEN + 1];
	cJSON *root = NULL;
	char *file = NULL;
	size_t max_urls;
	int rc;

	memset(out, 0, sizeof(*out));
	/* The oid becomes a file name: never let it carry a path. */
	if (!lfsfs_oid_valid(oid)) {
		rc = lfsfs_error_set(-EINVAL,
		                     "invalid oid '%.80s'; expected 64 lowercase hex digits",
		                     oid ? oid : "");
		goto out;
	}
	file = oid_file(repo, ".lfs-meta/sha256", oid);
	if (!file) {
		rc = -ENOMEM;
		goto out;
	}
	rc = lfsfs_json_load_file(file, RECORD_FILE_CAP, &root);
	if (rc)
		goto out;
	if (!cJSON_IsObject(root)) {
		rc = lfsfs_error_set(-LFSFS_EPARSE,
		                     "cannot use '%s': top level must be a json object", file);
		goto out;
	}
	it = field(root, "sha256");
	if (it && lfsfs_json_sha256(it, sha)) {
		rc = lfsfs_error_set(-LFSFS_EPARSE,
		                     "cannot use '%s': \"sha256\" must be 64 hex digits", file);
		goto out;
	}
	if (it && strcmp(sha, oid)) {
		rc = lfsfs_error_set(
		        -LFSFS_EPARSE,
		        "cannot use '%s': \"sha256\" is '%s' but the file is named for '%s'; fix or remove the record",
		        file, sha, oid);
		goto out;
	}
	memcpy(out->sha256, oid, sizeof(out->sha256));

	url = field(root, "url");
	urls = field(root, "urls");
	if (url && (!cJSON_IsString(url) || !*url->valuestring)) {
		rc = lfsfs_error_set(-LFSFS_EPARSE,
		                     "cannot use '%s': \"url\" must be a non-empty string", file);
		goto out;
	}
	if (urls && !cJSON_IsArray(urls)) {
		rc = lfsfs_error_set(-LFSFS_EPARSE,
		                     "cannot use '%s': \"urls\" must be an array of strings", file);
		goto out;
	}
	max_urls = (url ? 1 : 0) + (urls ? (size_t)cJSON_GetArraySize(urls) : 0);
	if (!max_urls) {
		rc = lfsfs_error_set(-LFSFS_EPARSE, "cannot use '%s': no \"url\" or \"urls\"",
		                     file);
		goto out;
	}
	out->urls = calloc(max_urls, sizeof(*out->urls));
	if (!out->urls) {
		rc = -ENOMEM;
		goto out;
	}
	if (url) {
		rc = record_add_url(out, url->valuestring);
		if (rc)
			goto out;
	}
	cJSON_ArrayForEach(it, urls)
	{
		if (!cJSON_IsString(it) || !*it->valuestring) {
			rc = lfsfs_error_set(
			        -LFSFS_EPARSE,
			        "cannot use '%s': \"urls\" must be an array of non-empty strings",
			        file);
			goto out;
		}
		rc = record_add_url(out, it->valuestring);
		if (rc)
			goto out;
	}

	it = field(root, "size");
	if (it) {
		if (lfsfs_json_size(it, &out->size)) {
			rc = lfsfs_error_set(
			        -LFSFS_EPARSE,
			        "cannot use '%s': \"size\" must be a non-negative integer", file);
			goto out;
		}
		out->has_size = 1;
	}
	it = field(root, "etag");
	if (it && !cJSON_IsString(it)) {
		rc = lfsfs_error_set(-LFSFS_EPARSE, "cannot use '%s': \"etag\" must be a string",
		                     file);
		goto out;
	}
	if (it && *it->valuestring) {
		out->etag = strdup(it->valuestring);
		if (!out->etag) {
			rc = -ENOMEM;
			goto out;
		}
	}
	rc = 0;
out:
	if (rc)
		lfsfs_record_release(out);
	cJSON_Delete(root);
	free(file);
	return rc;
}

int lfsfs_hint_read_url(const char *gitdir, const char *oid, char **url)
{
	const cJSON *it;
	char sha[LFSFS_OID_HEX_LEN + 1];
	cJSON *root = NULL;
	char *file = NULL;
	int rc;

	*url = NULL;
	if (!lfsfs_oid_valid(oid)) {
		rc = lfsfs_error_set(-EINVAL,
		                     "invalid oid '%.80s'; expected 64 lowercase hex digits",
		                     oid ? oid : "");
		goto out;
	}
	file = oid_file(gitdir, "drs/pre-commit/v1/oids", oid);
	if (!file) {
		rc = -ENOMEM;
		goto out;
	}
	rc = lfsfs_json_load_file(file, RECORD_FILE_CAP, &root);
	if (rc)
		goto out;
	if (!cJSON_IsObject(root)) {
		rc = lfsfs_error_set(-LFSFS_EPARSE,
		                     "cannot use '%s': top level must be a json object", file);
		goto out;
	}
	/* A hint filed under the wrong oid would point reads at other bytes. */
	it = field(root, "lfs_oid");
	if (it && (lfsfs_json_sha256(it, sha) || strcmp(sha, oid))) {
		rc = lfsfs_error_set(
		        -LFSFS_EPARSE,
		        "cannot use '%s': \"lfs_oid\" does not match the file name's oid", file);
		goto out;
	}
	it = field(root, "s3_url");
	if (!cJSON_IsString(it) || !*it->valuestring) {
		/* Advisory cache: no URL is "no hint", not an error. */
		rc = -ENOENT;
		goto out;
	}
	*url = strdup(it->valuestring);
	rc = *url ? 0 : -ENOMEM;
out:
	cJSON_Delete(root);
	free(file);
	return rc;
}
