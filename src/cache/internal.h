/*
 * Private structures of the cache module (cache.c, evict.c).  Nothing
 * outside src/cache/ includes this.
 */
#ifndef LFSFS_CACHE_INTERNAL_H
#define LFSFS_CACHE_INTERNAL_H

#include <openssl/evp.h>
#include <pthread.h>
#include <stdint.h>

#include "cache/cache.h"
#include "index/index.h"
#include "store/store.h"

#define LFSFS_OBJ_VERIFIED_MEM LFSFS_OBJ_VERIFIED

struct stale {
	char key[LFSFS_KEY_MAX + 1];
	struct stale *next;
};

struct lfsfs_object {
	struct lfsfs_cache *cache;
	char key[LFSFS_KEY_MAX + 1];
	char oid[65];              /* expected sha256 ("" for etag-keyed) */
	uint64_t size;
	uint32_t bs;
	uint64_t nblocks;

	/* protected by cache->lock */
	struct lfsfs_object *hnext;
	struct lfsfs_object *dirty_next;
	int on_dirty_list;
	int refs;
	int in_index;              /* a record exists in LMDB */

	/* protected by lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;       /* blocks arrived or a fetch failed */
	int loaded;                /* present/inflight/fd valid */
	uint8_t *present, *inflight, *dirty_pages;
	uint64_t npresent;
	uint64_t cached_bytes;
	int dirty;
	int fd;
	struct lfsfs_source src;   /* where the bytes are: set and replaced by
				    * ensure_source (under src_lock, then lock) */
	int src_stale;             /* refused (401/403): resolve again */
	char etag[160];
	uint64_t etag_src;
	char sha256[65];
	uint32_t flags;            /* LFSFS_OBJ_VERIFIED_MEM */
	int alias_pending;
	int error;                 /* sticky: every read fails with it */
	char errmsg[512];
	int fetch_err;             /* last failed fetch */
	uint64_t fetch_seq;
	char fetch_msg[512];
	uint64_t atime;
	uint64_t last_block, ra_last;   /* reader position, for eviction */

	pthread_rwlock_t data_lock;  /* readers pin blocks; eviction punches */
	pthread_mutex_t src_lock;    /* serializes resolution */
	pthread_mutex_t hash_lock;   /* protects md, hashed_upto */
	int stream_hash;             /* set at load (lock): hash as bytes arrive */
	EVP_MD_CTX *md;
	uint64_t hashed_upto;
};

struct lfsfs_cache {
	char *dir;
	int lock_fd;
	struct lfsfs_index *ix;
	struct lfsfs_store *store;
	uint64_t limit;
	uint32_t block_size;
	uint32_t max_readahead;
	unsigned flush_ms;
	uint64_t total;            /* cached bytes, atomic */
	uint64_t fetched_bytes;    /* atomic */

	pthread_mutex_t lock;      /* table, dirty list, refs */
	struct lfsfs_object **buckets;
	size_t nbuckets, nobjects;
	struct lfsfs_object *dirty;
	struct stale *stale;

	/* serializes index commits of bitmaps (flusher vs eviction) */
	pthread_mutex_t commit_lock;

	pthread_t flusher;
	pthread_cond_t flush_cond; /* with lock */
	int flusher_running, flusher_stop, kicked;

	void (*invalidate)(void *ctx, const char *oid);
	void *invalidate_ctx;
};

uint64_t lfsfs__hash64(const char *s);
uint64_t lfsfs__block_len(const struct lfsfs_object *o, uint64_t b);
int lfsfs__block_present(const struct lfsfs_object *o, uint64_t b);
void lfsfs__block_clear(struct lfsfs_object *o, uint64_t b);
void lfsfs__object_mark_dirty(struct lfsfs_object *o);
struct lfsfs_object *lfsfs__table_find(struct lfsfs_cache *c, const char *key);
void lfsfs__table_insert(struct lfsfs_cache *c, struct lfsfs_object *o);
void lfsfs__table_remove(struct lfsfs_cache *c, struct lfsfs_object *o);
void lfsfs__object_free(struct lfsfs_object *o);
void lfsfs__object_unload(struct lfsfs_object *o);
int lfsfs__data_path(const struct lfsfs_cache *c, const char *key, char *out, size_t cap);

#endif
