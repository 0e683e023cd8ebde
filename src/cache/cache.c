/* The block cache: objects, single-flight fetches, readahead, verification. */
#include "cache/cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/evict.h"
#include "cache/internal.h"
#include "index/index.h"
#include "lfsfs/error.h"
#include "store/store.h"
#include "util/log.h"

#define DEFAULT_BLOCK (1u << 20)
#define DEFAULT_READAHEAD (64u << 20)
#define MAX_RUN_BYTES (8u << 20)   /* one GET covers at most this much */
#define HASH_CHUNK (1u << 20)

static uint64_t now_s(void)
{
	return (uint64_t)time(NULL);
}

/* Hash of a URL without its query: a presigned URL of the same object
 * changes its signature, not the object it names. */
uint64_t lfsfs_cache_url_hash(const char *url)
{
	uint64_t h = 1469598103934665603ull;

	for (; *url && *url != '?'; url++) {
		h ^= (unsigned char)*url;
		h *= 1099511628211ull;
	}
	return h ? h : 1;
}

uint64_t lfsfs__hash64(const char *s)
{
	/* FNV-1a: identifies which URL an ETag was learned from */
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h ? h : 1;
}

static int sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;

	if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL))
		return -EIO;
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}

int lfsfs_cache_key(const struct lfsfs_object_desc *d, char *buf, size_t cap)
{
	int n;

	if (d->oid && d->oid[0])
		n = snprintf(buf, cap, "sha256:%s", d->oid);
	else if (d->etag && d->etag[0])
		n = snprintf(buf, cap, "etag:%" PRIu64 ":%s", d->size, d->etag);
	else if (d->url && d->url[0]) {
		char h[65];
		if (sha256_hex(d->url, strlen(d->url), h))
			return -EIO;
		n = snprintf(buf, cap, "url:%" PRIu64 ":%s", d->size, h);
	} else
		return lfsfs_error_set(-EINVAL, "object has no sha256, etag or url");
	if (n < 0 || (size_t)n >= cap)
		return lfsfs_error_set(-ENAMETOOLONG, "object key too long");
	return 0;
}

/* data/<2 hex>/<name>: sha256 keys use the oid, others a hash of the key */
static int data_path(const struct lfsfs_cache *c, const char *key, char *out, size_t cap,
		     int mkdirs)
{
	char name[66];
	char dir[4096];

	if (!strncmp(key, "sha256:", 7) && strlen(key) == 71) {
		snprintf(name, sizeof(name), "%s", key + 7);
	} else {
		name[0] = 'e';
		if (sha256_hex(key, strlen(key), name + 1))
			return -EIO;
		name[64] = '\0';
	}
	snprintf(dir, sizeof(dir), "%s/data/%.2s", c->dir, name[0] == 'e' ? name + 1 : name);
	if (mkdirs && mkdir(dir, 0700) && errno != EEXIST)
		return lfsfs_error_set(-errno, "cannot create '%s': %s", dir, strerror(errno));
	if ((size_t)snprintf(out, cap, "%s/%s", dir, name) >= cap)
		return -ENAMETOOLONG;
	return 0;
}

/* ---- the object table (protected by c->lock) ---- */

static size_t bucket_of(const struct lfsfs_cache *c, const char *key)
{
	return (size_t)(lfsfs__hash64(key) & (c->nbuckets - 1));
}

struct lfsfs_object *lfsfs__table_find(struct lfsfs_cache *c, const char *key)
{
	for (struct lfsfs_object *o = c->buckets[bucket_of(c, key)]; o; o = o->hnext)
		if (!strcmp(o->key, key))
			return o;
	return NULL;
}

static int table_grow(struct lfsfs_cache *c)
{
	size_t nb = c->nbuckets * 2;
	struct lfsfs_object **b = calloc(nb, sizeof(*b));

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < c->nbuckets; i++) {
		struct lfsfs_object *o = c->buckets[i], *next;
		for (; o; o = next) {
			size_t k = (size_t)(lfsfs__hash64(o->key) & (nb - 1));
			next = o->hnext;
			o->hnext = b[k];
			b[k] = o;
		}
	}
	free(c->buckets);
	c->buckets = b;
	c->nbuckets = nb;
	return 0;
}

void lfsfs__table_insert(struct lfsfs_cache *c, struct lfsfs_object *o)
{
	size_t k;

	if (c->nobjects + 1 > c->nbuckets * 2)
		table_grow(c); /* on ENOMEM the chains just get longer */
	k = bucket_of(c, o->key);
	o->hnext = c->buckets[k];
	c->buckets[k] = o;
	c->nobjects++;
}

void lfsfs__table_remove(struct lfsfs_cache *c, struct lfsfs_object *o)
{
	struct lfsfs_object **pp = &c->buckets[bucket_of(c, o->key)];

	for (; *pp; pp = &(*pp)->hnext)
		if (*pp == o) {
			*pp = o->hnext;
			c->nobjects--;
			return;
		}
}

static struct lfsfs_object *object_new(struct lfsfs_cache *c, const char *key, uint64_t size,
				       uint32_t bs)
{
	struct lfsfs_object *o = calloc(1, sizeof(*o));

	if (!o)
		return NULL;
	o->cache = c;
	snprintf(o->key, sizeof(o->key), "%s", key);
	if (!strncmp(key, "sha256:", 7))
		snprintf(o->oid, sizeof(o->oid), "%s", key + 7);
	o->size = size;
	o->bs = bs;
	o->nblocks = (size + bs - 1) / bs;
	o->fd = -1;
	pthread_mutex_init(&o->lock, NULL);
	pthread_cond_init(&o->cond, NULL);
	pthread_rwlock_init(&o->data_lock, NULL);
	pthread_mutex_init(&o->hash_lock, NULL);
	pthread_mutex_init(&o->src_lock, NULL);
	return o;
}

static void object_free(struct lfsfs_object *o)
{
	if (o->fd >= 0)
		close(o->fd);
	free(o->present);
	free(o->inflight);
	free(o->dirty_pages);
	lfsfs_source_release(&o->src);
	if (o->md)
		EVP_MD_CTX_free(o->md);
	pthread_mutex_destroy(&o->lock);
	pthread_cond_destroy(&o->cond);
	pthread_rwlock_destroy(&o->data_lock);
	pthread_mutex_destroy(&o->hash_lock);
	pthread_mutex_destroy(&o->src_lock);
	free(o);
}

static inline int bit_get(const uint8_t *b, uint64_t i)
{
	return (b[i >> 3] >> (i & 7)) & 1;
}

static inline void bit_set(uint8_t *b, uint64_t i)
{
	b[i >> 3] |= (uint8_t)(1u << (i & 7));
}

static inline void bit_clr(uint8_t *b, uint64_t i)
{
	b[i >> 3] &= (uint8_t)~(1u << (i & 7));
}

uint64_t lfsfs__block_len(const struct lfsfs_object *o, uint64_t b)
{
	uint64_t start = b * o->bs;

	return o->size - start < o->bs ? o->size - start : o->bs;
}

/* Mark block b's bitmap page dirty; caller holds o->lock. */
static void page_dirty(struct lfsfs_object *o, uint64_t b)
{
	bit_set(o->dirty_pages, b / LFSFS_BITS_PER_PAGE);
	o->dirty = 1;
}

/* Queue o for the flusher; caller holds o->lock (lock order o -> c). */
void lfsfs__object_mark_dirty(struct lfsfs_object *o)
{
	struct lfsfs_cache *c = o->cache;

	o->dirty = 1;
	pthread_mutex_lock(&c->lock);
	if (!o->on_dirty_list) {
		o->on_dirty_list = 1;
		o->refs++;
		o->dirty_next = c->dirty;
		c->dirty = o;
	}
	pthread_mutex_unlock(&c->lock);
}

void lfsfs__block_clear(struct lfsfs_object *o, uint64_t b)
{
	if (!bit_get(o->present, b))
		return;
	bit_clr(o->present, b);
	o->npresent--;
	o->cached_bytes -= lfsfs__block_len(o, b);
	__atomic_sub_fetch(&o->cache->total, lfsfs__block_len(o, b), __ATOMIC_RELAXED);
	page_dirty(o, b);
	o->flags &= ~LFSFS_OBJ_VERIFIED_MEM;
}

int lfsfs__block_present(const struct lfsfs_object *o, uint64_t b)
{
	return bit_get(o->present, b);
}

/*
 * Load the bitmap and open the data file; caller holds o->lock.
 * Idempotent.
 */
static int object_load(struct lfsfs_object *o)
{
	struct lfsfs_cache *c = o->cache;
	struct lfsfs_index_txn *t = NULL;
	size_t nbytes = (size_t)((o->nblocks + 7) / 8) + 1;
	size_t npages = (size_t)(o->nblocks / LFSFS_BITS_PER_PAGE) + 1;
	char path[4096];
	struct stat sb;
	int rc;

	if (o->loaded)
		return 0;
	o->present = calloc(1, nbytes);
	o->inflight = calloc(1, nbytes);
	o->dirty_pages = calloc(1, (npages + 7) / 8 + 1);
	if (!o->present || !o->inflight || !o->dirty_pages) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = data_path(c, o->key, path, sizeof(path), 1)))
		goto fail;
	o->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (o->fd < 0) {
		rc = lfsfs_error_set(-errno, "cannot open cache file '%s': %s", path,
				     strerror(errno));
		goto fail;
	}
	if (fstat(o->fd, &sb) == 0 && (uint64_t)sb.st_size != o->size &&
	    ftruncate(o->fd, (off_t)o->size)) {
		rc = lfsfs_error_set(-errno, "cannot size cache file '%s': %s", path,
				     strerror(errno));
		goto fail;
	}
	if (o->in_index) {
		if ((rc = lfsfs_index_begin(c->ix, 0, &t)))
			goto fail;
		rc = lfsfs_index_get_bits(t, o->key, o->present, nbytes);
		lfsfs_index_abort(t);
		if (rc)
			goto fail;
		/* A data file shorter than the recorded size means it was
		 * replaced behind our back: trust nothing. */
		if ((uint64_t)sb.st_size != o->size)
			memset(o->present, 0, nbytes);
	}
	o->npresent = 0;
	{
		uint64_t cached = 0;
		for (uint64_t b = 0; b < o->nblocks; b++)
			if (bit_get(o->present, b)) {
				o->npresent++;
				cached += lfsfs__block_len(o, b);
			}
		/* clear stray bits past the end */
		for (uint64_t b = o->nblocks; b < (uint64_t)nbytes * 8; b++)
			bit_clr(o->present, b);
		if (cached != o->cached_bytes) {
			__atomic_add_fetch(&c->total, cached - o->cached_bytes, __ATOMIC_RELAXED);
			o->cached_bytes = cached;
		}
	}
	if (o->npresent != o->nblocks)
		o->flags &= ~LFSFS_OBJ_VERIFIED_MEM;
	o->hashed_upto = 0;
	/* Hash while bytes stream in only if none were there before: re-reading
	 * a cached prefix on every open would stall the first read. Otherwise
	 * the hash is one pass when the last block arrives. */
	o->stream_hash = o->npresent == 0;
	o->loaded = 1;
	return 0;
fail:
	if (o->fd >= 0)
		close(o->fd);
	o->fd = -1;
	free(o->present);
	free(o->inflight);
	free(o->dirty_pages);
	o->present = o->inflight = o->dirty_pages = NULL;
	return rc;
}

/* Drop the in-memory bitmap and fd of an unused, clean object. */
static void object_unload(struct lfsfs_object *o)
{
	if (!o->loaded)
		return;
	if (o->fd >= 0)
		close(o->fd);
	o->fd = -1;
	free(o->present);
	free(o->inflight);
	free(o->dirty_pages);
	o->present = o->inflight = o->dirty_pages = NULL;
	if (o->md) {
		EVP_MD_CTX_free(o->md);
		o->md = NULL;
	}
	o->hashed_upto = 0;
	o->loaded = 0;
}

int lfsfs_cache_get(struct lfsfs_cache *c, const struct lfsfs_object_desc *d,
		    struct lfsfs_object **out)
{
	char key[LFSFS_KEY_MAX + 1], alias[LFSFS_KEY_MAX + 1];
	struct lfsfs_object *o;
	int rc;

	if ((rc = lfsfs_cache_key(d, key, sizeof(key))))
		return rc;
	pthread_mutex_lock(&c->lock);
	o = lfsfs__table_find(c, key);
	if (!o && d->oid && d->oid[0]) {
		/* An etag-keyed object whose sha256 was learned holds the
		 * same bytes: share it. */
		struct lfsfs_index_txn *t;
		if (!lfsfs_index_begin(c->ix, 0, &t)) {
			if (!lfsfs_index_get_alias(t, key, alias, sizeof(alias))) {
				struct lfsfs_object *a = lfsfs__table_find(c, alias);
				if (a && a->size == d->size && !a->error)
					o = a;
			}
			lfsfs_index_abort(t);
		}
	}
	if (o && o->size != d->size) {
		/* Same key, different size: only possible for a lying record. */
		pthread_mutex_unlock(&c->lock);
		return lfsfs_error_set(-LFSFS_ESIZE_MISMATCH,
				       "SIZE_MISMATCH: object '%s' is %" PRIu64
				       " bytes in the cache but %" PRIu64
				       " in this repository; fix the pointer or record",
				       key, o->size, d->size);
	}
	if (!o) {
		o = object_new(c, key, d->size, c->block_size);
		if (!o) {
			pthread_mutex_unlock(&c->lock);
			return -ENOMEM;
		}
		o->atime = now_s();
		lfsfs__table_insert(c, o);
	}
	o->refs++;
	pthread_mutex_unlock(&c->lock);
	*out = o;
	return 0;
}

void lfsfs_object_put(struct lfsfs_object *o)
{
	struct lfsfs_cache *c;
	int last;

	if (!o)
		return;
	c = o->cache;
	pthread_mutex_lock(&o->lock);
	pthread_mutex_lock(&c->lock);
	last = --o->refs == 0;
	pthread_mutex_unlock(&c->lock);
	/* Unused and clean (a dirty object is referenced by the dirty list) */
	if (last && !o->on_dirty_list)
		object_unload(o);
	pthread_mutex_unlock(&o->lock);
}

/* ---- fetching ---- */

struct run {
	struct lfsfs_fetch f;
	struct lfsfs_object *o;
	uint64_t first, count;
	struct lfsfs_source src;  /* the run's own copy: the object's may be
				   * replaced while the run is in flight */
};

static void run_free(struct run *r)
{
	lfsfs_source_release(&r->src);
	free(r);
}

/* Copy o's source into r; caller holds o->lock. */
static int run_take_source(struct run *r, const struct lfsfs_object *o)
{
	r->src.url = o->src.url ? strdup(o->src.url) : NULL;
	if (o->src.url && !r->src.url)
		return -ENOMEM;
	if (o->src.n_headers) {
		r->src.headers = calloc(o->src.n_headers, sizeof(char *));
		if (!r->src.headers)
			return -ENOMEM;
		for (size_t i = 0; i < o->src.n_headers; i++) {
			if (!(r->src.headers[i] = strdup(o->src.headers[i])))
				return -ENOMEM;
			r->src.n_headers++;
		}
	}
	return 0;
}

static void poison(struct lfsfs_object *o, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Caller holds o->lock. */
static void poison(struct lfsfs_object *o, int rc, const char *fmt, ...)
{
	va_list ap;

	if (o->error)
		return;
	o->error = rc;
	va_start(ap, fmt);
	vsnprintf(o->errmsg, sizeof(o->errmsg), fmt, ap);
	va_end(ap);
	log_error("%s", o->errmsg);
}

static int sticky(int rc)
{
	return rc == -LFSFS_EIMMUTABILITY || rc == -LFSFS_ESIZE_MISMATCH ||
	       rc == -LFSFS_ECHECKSUM_MISMATCH || rc == -LFSFS_EUNSUPPORTED;
}

static void run_done(struct lfsfs_fetch *f, int rc)
{
	struct run *r = f->ctx;
	struct lfsfs_object *o = r->o;
	struct lfsfs_cache *c = o->cache;

	pthread_mutex_lock(&o->lock);
	if (!rc && f->etag_seen[0]) {
		if (!o->etag[0]) {
			snprintf(o->etag, sizeof(o->etag), "%s", f->etag_seen);
			o->etag_src = lfsfs_cache_url_hash(o->src.url);
		} else if (strcmp(o->etag, f->etag_seen)) {
			snprintf(f->error, sizeof(f->error), "ETag changed from %s to %s", o->etag,
				 f->etag_seen);
			rc = -LFSFS_EIMMUTABILITY;
		}
	}
	if (!rc) {
		for (uint64_t b = r->first; b < r->first + r->count; b++) {
			bit_clr(o->inflight, b);
			if (!bit_get(o->present, b)) {
				bit_set(o->present, b);
				o->npresent++;
				o->cached_bytes += lfsfs__block_len(o, b);
				__atomic_add_fetch(&c->total, lfsfs__block_len(o, b), __ATOMIC_RELAXED);
				page_dirty(o, b);
			}
		}
		__atomic_add_fetch(&c->fetched_bytes, f->len, __ATOMIC_RELAXED);
		lfsfs__object_mark_dirty(o);
	} else {
		for (uint64_t b = r->first; b < r->first + r->count; b++)
			bit_clr(o->inflight, b);
		if (rc == -LFSFS_ESOURCE_NOT_ACCESSIBLE && (f->status == 401 || f->status == 403) &&
		    (o->src.expires || o->src.n_headers)) {
			/* a signed URL or token went stale: resolve again, resend */
			o->src_stale = 1;
			rc = -LFSFS_ERETRY_AUTH;
		}
		o->fetch_err = rc;
		o->fetch_seq++;
		snprintf(o->fetch_msg, sizeof(o->fetch_msg), "%s: cannot fetch bytes %" PRIu64
			 "-%" PRIu64 " of '%s' from %s: %s", lfsfs_code_name(rc), f->off,
			 f->off + f->len - 1, o->key, o->src.url, f->error);
		if (sticky(rc))
			poison(o, rc, "%s", o->fetch_msg);
		else if (rc == -LFSFS_ERETRY_AUTH)
			log_info("sending bytes %" PRIu64 "-%" PRIu64 " of '%s' again: %s", f->off,
				 f->off + f->len - 1, o->key, f->error);
		else
			log_error("%s", o->fetch_msg);
		if (rc == -LFSFS_EIMMUTABILITY)
			log_error("IMMUTABILITY_VIOLATION: '%s' changed at the origin; reads fail "
				  "until the record is updated (lfsfs meta sync / track-remote)",
				  o->key);
	}
	pthread_cond_broadcast(&o->cond);
	pthread_mutex_unlock(&o->lock);
	if (!rc && c->limit && __atomic_load_n(&c->total, __ATOMIC_RELAXED) > c->limit)
		lfsfs__flusher_kick(c);
	run_free(r);
	lfsfs_object_put(o);
}

/*
 * Claim missing blocks in [first, last] (mark them inflight) and append
 * runs to the list; caller holds o->lock.
 */
static int plan_runs(struct lfsfs_object *o, uint64_t first, uint64_t last, struct run **runs,
		     size_t *nruns, size_t cap)
{
	uint64_t max_blocks = MAX_RUN_BYTES / o->bs ? MAX_RUN_BYTES / o->bs : 1;
	uint64_t b = first;

	while (b <= last && *nruns < cap) {
		uint64_t start;
		struct run *r;

		if (bit_get(o->present, b) || bit_get(o->inflight, b)) {
			b++;
			continue;
		}
		start = b;
		while (b <= last && b - start < max_blocks && !bit_get(o->present, b) &&
		       !bit_get(o->inflight, b)) {
			bit_set(o->inflight, b);
			b++;
		}
		r = calloc(1, sizeof(*r));
		if (!r) {
			for (uint64_t k = start; k < b; k++)
				bit_clr(o->inflight, k);
			return -ENOMEM;
		}
		r->o = o;
		r->first = start;
		r->count = b - start;
		runs[(*nruns)++] = r;
	}
	return 0;
}

static void submit_runs(struct lfsfs_object *o, struct run **runs, size_t n)
{
	struct lfsfs_cache *c = o->cache;

	for (size_t i = 0; i < n; i++) {
		struct run *r = runs[i];
		int rc;

		r->f.off = r->first * o->bs;
		r->f.len = (r->first + r->count) * o->bs > o->size ? o->size - r->f.off
								    : r->count * o->bs;
		r->f.size = o->size;
		r->f.fd = o->fd;
		r->f.done = run_done;
		r->f.ctx = r;
		pthread_mutex_lock(&o->lock);
		snprintf(r->f.etag, sizeof(r->f.etag), "%s", o->etag);
		rc = run_take_source(r, o);
		pthread_mutex_unlock(&o->lock);
		pthread_mutex_lock(&c->lock);
		o->refs++;
		pthread_mutex_unlock(&c->lock);
		if (rc || !r->src.url) {
			/* fail this run like a fetch that could not start */
			r->f.url = "";
			snprintf(r->f.error, sizeof(r->f.error), "%s",
				 rc ? "out of memory" : "no source");
			run_done(&r->f, rc ? rc : -LFSFS_ESOURCE_NOT_ACCESSIBLE);
			continue;
		}
		r->f.url = r->src.url;
		r->f.headers = (const char *const *)r->src.headers;
		r->f.n_headers = r->src.n_headers;
		log_debug("fetch %s bytes %" PRIu64 "+%" PRIu64, o->key, r->f.off, r->f.len);
		lfsfs_store_fetch(c->store, &r->f);
	}
}

static int ensure_source(struct lfsfs_object *o, lfsfs_resolve_fn resolve, void *ctx)
{
	struct lfsfs_source src;
	int rc = 0, need;

	memset(&src, 0, sizeof(src));
	pthread_mutex_lock(&o->src_lock);
	pthread_mutex_lock(&o->lock);
	/* none yet, refused, or about to lapse (30 s is a transfer's worth) */
	need = !o->src.url || o->src_stale ||
	       (o->src.expires && time(NULL) + 30 >= o->src.expires);
	pthread_mutex_unlock(&o->lock);
	if (!need)
		goto out;
	if (!resolve) {
		rc = lfsfs_error_set(-LFSFS_ESOURCE_NOT_ACCESSIBLE, "no source for '%s'", o->key);
		goto out;
	}
	rc = resolve(ctx, &src);
	if (rc)
		goto out;
	pthread_mutex_lock(&o->lock);
	/* An ETag pinned from another origin says nothing about this one. */
	if (o->etag[0] && o->etag_src != lfsfs_cache_url_hash(src.url)) {
		o->etag[0] = '\0';
		o->etag_src = 0;
	}
	if (src.etag && *src.etag && !o->etag[0]) {
		snprintf(o->etag, sizeof(o->etag), "%s", src.etag);
		o->etag_src = lfsfs_cache_url_hash(src.url);
	} else if (src.etag && *src.etag && strcmp(src.etag, o->etag)) {
		/* The record says one version, the origin served another. */
		poison(o, -LFSFS_EIMMUTABILITY,
		       "IMMUTABILITY_VIOLATION: '%s' was cached with ETag %s but the record for %s "
		       "says %s; the remote object changed: re-register it", o->key, o->etag,
		       src.url, src.etag);
	}
	lfsfs_source_release(&o->src);
	o->src = src;
	memset(&src, 0, sizeof(src));
	o->src_stale = 0;
	pthread_mutex_unlock(&o->lock);
out:
	pthread_mutex_unlock(&o->src_lock);
	lfsfs_source_release(&src);
	return rc;
}

static int hash_advance(struct lfsfs_object *o, int must_finish);

/* Does [first, last] lack a block, or the readahead part an unclaimed one?
 * Caller holds o->lock. */
static int needs_fetch(const struct lfsfs_object *o, uint64_t first, uint64_t last,
		       uint64_t ra_last)
{
	for (uint64_t b = first; b <= ra_last; b++)
		if (!bit_get(o->present, b) && (b <= last || !bit_get(o->inflight, b)))
			return 1;
	return 0;
}

/* Purge every block (checksum mismatch); caller holds nothing. */
static void object_purge(struct lfsfs_object *o)
{
	lfsfs__evict_blocks(o, UINT64_MAX, 0);
}

ssize_t lfsfs_object_pin(struct lfsfs_object *o, struct lfsfs_reader *rd, size_t size,
			 uint64_t off, lfsfs_resolve_fn resolve, void *ctx)
{
	struct lfsfs_cache *c = o->cache;
	struct run *runs[64];
	size_t nruns = 0;
	uint64_t first, last, seq0, ra_last;
	int rc = 0, complete, auth_retries = 0;

	if (size == 0 || off >= o->size)
		return 0; /* nothing pinned */
	if (size > o->size - off)
		size = (size_t)(o->size - off);
	first = off / o->bs;
	last = (off + size - 1) / o->bs;

	pthread_mutex_lock(&o->lock);
	if ((rc = object_load(o)))
		goto out_locked;
	if (o->error) {
		rc = lfsfs_error_set(o->error, "%s", o->errmsg);
		goto out_locked;
	}
	o->atime = now_s();
	o->last_block = last;
	/* Sequential? Read ahead as much as was read in a row (so at most
	 * half of what is fetched can go unused); a random read fetches
	 * only its own blocks. */
	if (rd) {
		if (off == rd->next_off || (off <= rd->next_off && off + size > rd->next_off)) {
			uint64_t w = (rd->seq_bytes + size) / o->bs;
			uint32_t maxw = c->max_readahead / o->bs;
			rd->seq_bytes += size;
			rd->window = (uint32_t)(w < 1 ? 1 : w > maxw ? maxw : w);
		} else {
			rd->seq_bytes = 0;
			rd->window = 0;
			rd->ra_end = 0;
		}
		rd->next_off = off + size;
	}
	/* Asynchronous readahead: ask for the next window only once the
	 * reader has eaten half of what was asked ahead, so requests stay
	 * window-sized instead of one block each. */
	ra_last = last;
	if (rd && rd->window &&
	    (rd->ra_end <= last + 1 || rd->ra_end - (last + 1) <= rd->window / 2)) {
		ra_last = last + rd->window;
		if (ra_last >= o->nblocks)
			ra_last = o->nblocks - 1;
		rd->ra_end = ra_last + 1;
	}
	o->ra_last = rd && rd->ra_end > ra_last + 1 ? rd->ra_end - 1 : ra_last;
	if (needs_fetch(o, first, last, ra_last)) {
		/* resolve once, outside the object lock (it may read files or,
		 * later, talk to a DRS server) */
		pthread_mutex_unlock(&o->lock);
		rc = ensure_source(o, resolve, ctx);
		pthread_mutex_lock(&o->lock);
		if (rc)
			goto out_locked;
		if (o->error) {
			rc = lfsfs_error_set(o->error, "%s", o->errmsg);
			goto out_locked;
		}
	}
	if ((rc = plan_runs(o, first, ra_last, runs, &nruns, 64)))
		goto out_locked;
	seq0 = o->fetch_seq;
	pthread_mutex_unlock(&o->lock);
	submit_runs(o, runs, nruns);

again:
	for (;;) {
		pthread_mutex_lock(&o->lock);
		for (uint64_t b = first; b <= last; b++) {
			while (!bit_get(o->present, b)) {
				if (o->error) {
					rc = lfsfs_error_set(o->error, "%s", o->errmsg);
					goto out_locked;
				}
				if (!bit_get(o->inflight, b)) {
					if (o->fetch_seq != seq0 &&
					    (o->fetch_err != -LFSFS_ERETRY_AUTH || auth_retries >= 2)) {
						rc = o->fetch_err == -LFSFS_ERETRY_AUTH
							     ? -LFSFS_ESOURCE_NOT_ACCESSIBLE
							     : o->fetch_err;
						rc = lfsfs_error_set(rc, "%s", o->fetch_msg);
						goto out_locked;
					}
					if (o->fetch_seq != seq0) {
						/* stale credentials or signed URL: refresh
						 * (resolving again if the source was refused)
						 * and send again from this reader thread */
						auth_retries++;
						seq0 = o->fetch_seq;
						pthread_mutex_unlock(&o->lock);
						rc = ensure_source(o, resolve, ctx);
						pthread_mutex_lock(&o->lock);
						if (rc)
							goto out_locked;
					}
					/* evicted between our plan and now: fetch again */
					nruns = 0;
					if ((rc = plan_runs(o, b, last, runs, &nruns, 64)))
						goto out_locked;
					pthread_mutex_unlock(&o->lock);
					submit_runs(o, runs, nruns);
					pthread_mutex_lock(&o->lock);
					continue;
				}
				pthread_cond_wait(&o->cond, &o->lock);
			}
		}
		pthread_mutex_unlock(&o->lock);
		/* Pin the blocks against eviction while we copy them out. */
		pthread_rwlock_rdlock(&o->data_lock);
		pthread_mutex_lock(&o->lock);
		int ok = 1;
		for (uint64_t b = first; b <= last; b++)
			if (!bit_get(o->present, b))
				ok = 0;
		pthread_mutex_unlock(&o->lock);
		if (ok)
			break;
		pthread_rwlock_unlock(&o->data_lock);
	}
	/* The read that completes the object waits for the verdict, so it
	 * fails with CHECKSUM_MISMATCH rather than handing out bad bytes. */
	pthread_mutex_lock(&o->lock);
	complete = o->npresent == o->nblocks && !(o->flags & LFSFS_OBJ_VERIFIED_MEM);
	pthread_mutex_unlock(&o->lock);
	if (complete) {
		pthread_rwlock_unlock(&o->data_lock);
		if ((rc = hash_advance(o, 1)))
			return rc;
		goto again;
	}
	/* The pin holds a reference: the file handle may be released while
	 * the reply is still being spliced from our data file. */
	pthread_mutex_lock(&c->lock);
	o->refs++;
	pthread_mutex_unlock(&c->lock);
	return (ssize_t)size;

out_locked:
	pthread_mutex_unlock(&o->lock);
	return rc;
}

void lfsfs_object_unpin(struct lfsfs_object *o)
{
	pthread_rwlock_unlock(&o->data_lock);
	/* feed what streamed in; a failure poisons o and the next read says so */
	hash_advance(o, 0);
	lfsfs_object_put(o);
}

int lfsfs_object_fd(const struct lfsfs_object *o)
{
	return o->fd;
}

ssize_t lfsfs_object_read(struct lfsfs_object *o, struct lfsfs_reader *rd, char *buf,
			  size_t size, uint64_t off, lfsfs_resolve_fn resolve, void *ctx)
{
	ssize_t n = lfsfs_object_pin(o, rd, size, off, resolve, ctx);
	ssize_t got = 0;
	int rc = 0;

	if (n <= 0)
		return n;
	while (got < n) {
		ssize_t k = pread(o->fd, buf + got, (size_t)(n - got), (off_t)(off + (uint64_t)got));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			rc = lfsfs_error_set(-EIO, "cannot read cache file of '%s': %s", o->key,
					     k < 0 ? strerror(errno) : "short file");
			break;
		}
		got += k;
	}
	lfsfs_object_unpin(o);
	return rc ? rc : got;
}

/* ---- hashing and verification ---- */

static void hex32(const unsigned char *md, char out[65])
{
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/*
 * Feed the present prefix to the running sha256 and verify once it covers
 * the whole object.  Only one thread hashes an object at a time; others
 * skip unless must_finish (the read that completed the object waits, so
 * it can fail with CHECKSUM_MISMATCH instead of returning bad bytes).
 */
static int hash_advance(struct lfsfs_object *o, int must_finish)
{
	struct lfsfs_cache *c = o->cache;
	unsigned char *chunk = NULL;
	int rc = 0;

	if (must_finish)
		pthread_mutex_lock(&o->hash_lock);
	else if (!o->stream_hash || pthread_mutex_trylock(&o->hash_lock))
		return 0;
	pthread_mutex_lock(&o->lock);
	if ((o->flags & LFSFS_OBJ_VERIFIED_MEM) || o->error || !o->loaded) {
		rc = o->error ? lfsfs_error_set(o->error, "%s", o->errmsg) : 0;
		pthread_mutex_unlock(&o->lock);
		goto out;
	}
	pthread_mutex_unlock(&o->lock);
	if (!o->md) {
		o->md = EVP_MD_CTX_new();
		if (!o->md || !EVP_DigestInit_ex(o->md, EVP_sha256(), NULL)) {
			rc = -ENOMEM;
			goto out;
		}
		o->hashed_upto = 0;
	}
	for (;;) {
		uint64_t end;

		pthread_rwlock_rdlock(&o->data_lock);
		pthread_mutex_lock(&o->lock);
		end = o->hashed_upto;
		while (end < o->size && bit_get(o->present, end / o->bs))
			end = (end / o->bs + 1) * o->bs;
		if (end > o->size)
			end = o->size;
		pthread_mutex_unlock(&o->lock);
		if (end == o->hashed_upto) {
			pthread_rwlock_unlock(&o->data_lock);
			break;
		}
		if (!chunk && !(chunk = malloc(HASH_CHUNK))) {
			pthread_rwlock_unlock(&o->data_lock);
			rc = -ENOMEM;
			goto out;
		}
		while (o->hashed_upto < end) {
			size_t want = end - o->hashed_upto < HASH_CHUNK ? (size_t)(end - o->hashed_upto)
									: HASH_CHUNK;
			ssize_t n = pread(o->fd, chunk, want, (off_t)o->hashed_upto);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				pthread_rwlock_unlock(&o->data_lock);
				rc = lfsfs_error_set(-EIO, "cannot read cache file of '%s'", o->key);
				goto out;
			}
			EVP_DigestUpdate(o->md, chunk, (size_t)n);
			o->hashed_upto += (uint64_t)n;
		}
		pthread_rwlock_unlock(&o->data_lock);
	}
	if (o->hashed_upto == o->size) {
		unsigned char md[32];
		unsigned int mdlen = 0;
		char hex[65];

		EVP_DigestFinal_ex(o->md, md, &mdlen);
		EVP_MD_CTX_free(o->md);
		o->md = NULL;
		o->hashed_upto = 0;
		hex32(md, hex);
		pthread_mutex_lock(&o->lock);
		if (o->oid[0] && strcmp(hex, o->oid)) {
			poison(o, -LFSFS_ECHECKSUM_MISMATCH,
			       "CHECKSUM_MISMATCH: '%s' from %s has sha256 %s; the cached copy was "
			       "purged and reads fail: fix the URL or the pointer", o->key,
			       o->src.url ? o->src.url : "(cache)", hex);
			rc = lfsfs_error_set(o->error, "%s", o->errmsg);
			pthread_mutex_unlock(&o->lock);
			object_purge(o);
			if (c->invalidate)
				c->invalidate(c->invalidate_ctx, o->oid);
			goto out;
		}
		snprintf(o->sha256, sizeof(o->sha256), "%s", hex);
		o->flags |= LFSFS_OBJ_VERIFIED_MEM;
		if (!o->oid[0])
			o->alias_pending = 1; /* etag-keyed: publish sha256 -> key */
		log_info("%s: sha256 %s %s", o->key, hex, o->oid[0] ? "verified" : "computed");
		lfsfs__object_mark_dirty(o);
		pthread_mutex_unlock(&o->lock);
	}
out:
	free(chunk);
	pthread_mutex_unlock(&o->hash_lock);
	return rc;
}

/* ---- info ---- */

const char *lfsfs_obj_state_name(enum lfsfs_obj_state s)
{
	static const char *const n[] = { "remote", "partial", "cached", "verified" };
	return n[s];
}

static void fill_info(struct lfsfs_object *o, struct lfsfs_object_info *out)
{
	out->size = o->size;
	out->cached_bytes = o->cached_bytes;
	snprintf(out->key, sizeof(out->key), "%s", o->key);
	snprintf(out->sha256, sizeof(out->sha256), "%s", o->sha256[0] ? o->sha256 : o->oid);
	snprintf(out->etag, sizeof(out->etag), "%s", o->etag);
	snprintf(out->url, sizeof(out->url), "%s", o->src.url ? o->src.url : "");
	out->error = o->error;
	if (o->flags & LFSFS_OBJ_VERIFIED_MEM)
		out->state = LFSFS_STATE_VERIFIED;
	else if (o->size && o->cached_bytes == o->size)
		out->state = LFSFS_STATE_CACHED;
	else if (o->cached_bytes)
		out->state = LFSFS_STATE_PARTIAL;
	else
		out->state = LFSFS_STATE_REMOTE;
}

int lfsfs_object_verified(struct lfsfs_object *o)
{
	int v;

	pthread_mutex_lock(&o->lock);
	v = (o->flags & LFSFS_OBJ_VERIFIED_MEM) && !o->error;
	pthread_mutex_unlock(&o->lock);
	return v;
}

void lfsfs_cache_peek(struct lfsfs_cache *c, const struct lfsfs_object_desc *d,
		      struct lfsfs_object_info *out)
{
	struct lfsfs_object *o;

	memset(out, 0, sizeof(*out));
	out->size = d->size;
	if (lfsfs_cache_key(d, out->key, sizeof(out->key)))
		return;
	if (lfsfs_cache_get(c, d, &o))
		return;
	pthread_mutex_lock(&o->lock);
	fill_info(o, out);
	pthread_mutex_unlock(&o->lock);
	lfsfs_object_put(o);
}

void lfsfs_cache_get_stats(struct lfsfs_cache *c, struct lfsfs_cache_stats *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->nbuckets; i++)
		for (struct lfsfs_object *o = c->buckets[i]; o; o = o->hnext)
			if (o->cached_bytes || o->in_index) {
				out->objects++;
				if (o->flags & LFSFS_OBJ_VERIFIED_MEM)
					out->verified++;
			}
	pthread_mutex_unlock(&c->lock);
	out->cached_bytes = __atomic_load_n(&c->total, __ATOMIC_RELAXED);
	out->limit = c->limit;
}

const char *lfsfs_cache_dir(const struct lfsfs_cache *c)
{
	return c->dir;
}

void lfsfs_cache_set_invalidate_cb(struct lfsfs_cache *c,
				   void (*fn)(void *ctx, const char *oid), void *ctx)
{
	c->invalidate = fn;
	c->invalidate_ctx = ctx;
}

/* ---- open / close ---- */

static int load_record(const char *key, const struct lfsfs_objrec *rec, void *ctx)
{
	struct lfsfs_cache *c = ctx;
	struct lfsfs_object *o;
	char path[4096];
	struct stat sb;

	if (!rec->block_size || data_path(c, key, path, sizeof(path), 0) ||
	    stat(path, &sb) || (uint64_t)sb.st_size != rec->size) {
		/* record without its data file: forget it (next flush) */
		struct stale *s = malloc(sizeof(*s));
		if (s) {
			snprintf(s->key, sizeof(s->key), "%s", key);
			s->next = c->stale;
			c->stale = s;
		}
		return 0;
	}
	o = object_new(c, key, rec->size, rec->block_size);
	if (!o)
		return -ENOMEM;
	o->in_index = 1;
	o->cached_bytes = rec->cached_bytes;
	o->atime = rec->atime;
	o->etag_src = rec->etag_src;
	snprintf(o->etag, sizeof(o->etag), "%s", rec->etag);
	snprintf(o->sha256, sizeof(o->sha256), "%s", rec->sha256);
	if (rec->flags & LFSFS_OBJ_VERIFIED)
		o->flags |= LFSFS_OBJ_VERIFIED_MEM;
	c->total += rec->cached_bytes;
	lfsfs__table_insert(c, o);
	return 0;
}

int lfsfs_cache_open(const struct lfsfs_cache_opts *opts, struct lfsfs_store *store,
		     struct lfsfs_cache **out)
{
	struct lfsfs_cache *c = calloc(1, sizeof(*c));
	struct lfsfs_index_txn *t = NULL;
	char path[4096];
	int rc;

	if (!c)
		return -ENOMEM;
	c->lock_fd = -1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->commit_lock, NULL);
	pthread_cond_init(&c->flush_cond, NULL);
	c->store = store;
	c->limit = opts->limit;
	c->block_size = opts->block_size ? opts->block_size : DEFAULT_BLOCK;
	c->max_readahead = opts->max_readahead ? opts->max_readahead : DEFAULT_READAHEAD;
	/* Readahead must not evict what it just fetched. */
	if (c->limit && c->max_readahead > c->limit / 4)
		c->max_readahead = (uint32_t)(c->limit / 4);
	if (c->max_readahead < c->block_size)
		c->max_readahead = c->block_size;
	c->flush_ms = opts->flush_ms ? opts->flush_ms : 500;
	c->nbuckets = 1024;
	c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
	c->dir = strdup(opts->dir);
	if (!c->buckets || !c->dir) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = lfsfs__mkdirs(c->dir)))
		goto fail;
	snprintf(path, sizeof(path), "%s/lock", c->dir);
	if ((rc = lfsfs__lock_dir(path, &c->lock_fd)))
		goto fail;
	snprintf(path, sizeof(path), "%s/data", c->dir);
	if (mkdir(path, 0700) && errno != EEXIST) {
		rc = lfsfs_error_set(-errno, "cannot create '%s': %s", path, strerror(errno));
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/index", c->dir);
	if ((rc = lfsfs_index_open(path, &c->ix)))
		goto fail;
	if ((rc = lfsfs_index_begin(c->ix, 0, &t)))
		goto fail;
	rc = lfsfs_index_foreach_obj(t, load_record, c);
	lfsfs_index_abort(t);
	if (rc)
		goto fail;
	if ((rc = lfsfs__flusher_start(c)))
		goto fail;
	*out = c;
	log_info("cache '%s': %zu objects, %" PRIu64 " bytes cached, limit %" PRIu64, c->dir,
		 c->nobjects, c->total, c->limit);
	return 0;
fail:
	if (c->ix)
		lfsfs_index_close(c->ix);
	if (c->lock_fd >= 0)
		close(c->lock_fd);
	free(c->buckets);
	free(c->dir);
	free(c);
	return rc;
}

void lfsfs_cache_close(struct lfsfs_cache *c)
{
	if (!c)
		return;
	lfsfs__flusher_stop(c);
	lfsfs_cache_flush(c);
	for (size_t i = 0; i < c->nbuckets; i++) {
		struct lfsfs_object *o = c->buckets[i], *next;
		for (; o; o = next) {
			next = o->hnext;
			object_free(o);
		}
	}
	while (c->stale) {
		struct stale *s = c->stale;
		c->stale = s->next;
		free(s);
	}
	lfsfs_index_close(c->ix);
	close(c->lock_fd);
	free(c->buckets);
	free(c->dir);
	free(c);
}

void lfsfs__object_free(struct lfsfs_object *o)
{
	object_free(o);
}

void lfsfs__object_unload(struct lfsfs_object *o)
{
	object_unload(o);
}

int lfsfs__data_path(const struct lfsfs_cache *c, const char *key, char *out, size_t cap)
{
	return data_path(c, key, out, cap, 0);
}
