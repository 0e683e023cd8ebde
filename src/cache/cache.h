/*
 * The block cache: one sparse data file per object under
 * <cache-dir>/data/, a presence bitmap per object in the LMDB index, and
 * the read path that fills it.
 *
 *   object key   "sha256:<oid>" for pointers and records that know the
 *                sha256; "etag:<size>:<etag>" for metadata-only entries;
 *                "url:<size>:<sha256 of url>" for entries with neither.
 *                Two repositories that share an object share its bytes.
 *   read         missing blocks of the requested range are fetched with
 *                one ranged GET per run of adjacent blocks; each block is
 *                fetched once however many readers want it (single-flight);
 *                sequential readers grow a readahead window, a random read
 *                fetches one block.
 *   integrity    the first response's ETag is pinned (If-Match afterwards);
 *                once every block is present the sha256 is computed
 *                (streamed while the present prefix grows) and compared
 *                with the oid: a mismatch purges the object and poisons it
 *                (every later read fails with CHECKSUM_MISMATCH).
 *   durability   bytes are written (and fdatasync'ed by the flusher thread)
 *                before the bitmap page that vouches for them is committed;
 *                eviction commits cleared bits before punching holes.  A
 *                kill -9 can lose recent fetches, never claim absent bytes.
 *   eviction     LRU by object to stay under the size limit; an object in
 *                use loses its blocks outside the reader's window.
 *
 * Only one process may use a cache directory at a time (flock on
 * <cache-dir>/lock); a second mount gets a clear error.
 *
 * Locks, in order: object data_lock (rw) -> object lock -> cache lock.
 */
#ifndef LFSFS_CACHE_H
#define LFSFS_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct lfsfs_store;
struct lfsfs_source;
struct lfsfs_cache;
struct lfsfs_object;

struct lfsfs_cache_opts {
	const char *dir;          /* created if missing */
	uint64_t limit;           /* bytes; 0 = unlimited */
	uint32_t block_size;      /* 0 = default 1 MiB; fixed per object at creation */
	uint32_t max_readahead;   /* bytes; 0 = default 64 MiB */
	unsigned flush_ms;        /* flusher period; 0 = default 500 */
};

/* What the caller knows of an object before it is opened. */
struct lfsfs_object_desc {
	const char *oid;          /* 64 hex, or NULL */
	const char *etag;         /* identifies the object when oid is NULL */
	const char *url;          /* identifies it when both are NULL: the first
				   * response's ETag is then pinned */
	uint64_t size;
};

/* Find where an object's bytes are: fill *out (see store.h) or return a
 * negative code with the per-thread message set. */
typedef int (*lfsfs_resolve_fn)(void *ctx, struct lfsfs_source *out);

int lfsfs_cache_open(const struct lfsfs_cache_opts *opts, struct lfsfs_store *store,
		     struct lfsfs_cache **out);
/* Flush everything and release the directory lock. Objects must be put. */
void lfsfs_cache_close(struct lfsfs_cache *c);
const char *lfsfs_cache_dir(const struct lfsfs_cache *c);

/* Called with an object key when its cached bytes must no longer be
 * served from kernel page caches (purge after a checksum mismatch). */
void lfsfs_cache_set_invalidate_cb(struct lfsfs_cache *c,
				   void (*fn)(void *ctx, const char *oid), void *ctx);

/* The hash the index keeps (objrec.etag_src) of the URL an object's ETag
 * came from: the URL up to its query, so re-signed URLs match. */
uint64_t lfsfs_cache_url_hash(const char *url);

/* Build the key for desc into buf (LFSFS_KEY_MAX+1). -EINVAL if neither. */
int lfsfs_cache_key(const struct lfsfs_object_desc *d, char *buf, size_t cap);

/* Get a reference to the object (created empty if new). */
int lfsfs_cache_get(struct lfsfs_cache *c, const struct lfsfs_object_desc *d,
		    struct lfsfs_object **out);
void lfsfs_object_put(struct lfsfs_object *o);

/* Per open file: sequential-access detection for readahead. */
struct lfsfs_reader {
	uint64_t next_off;
	uint64_t seq_bytes;       /* read sequentially so far */
	uint32_t window;          /* readahead in blocks */
	uint64_t ra_end;          /* first block not yet asked for ahead */
};

/*
 * Read up to size bytes at off into buf.  The first read that needs the
 * origin calls resolve(ctx, &source) (the object takes the source over);
 * it is called again when an expiring source is about to lapse, or when
 * the origin refuses a source that carries an expiry or headers (401/403:
 * a signed URL or token gone stale) and the request is then sent again.  Returns bytes read (short only at EOF) or a
 * negative code with the per-thread message set.
 */
ssize_t lfsfs_object_read(struct lfsfs_object *o, struct lfsfs_reader *r, char *buf,
			  size_t size, uint64_t off, lfsfs_resolve_fn resolve, void *ctx);

/*
 * The zero-copy form of lfsfs_object_read: make [off, off+size) present
 * (fetching and verifying as above) and pin it.  Returns the byte count
 * n > 0 with the range pinned: the bytes are at the same offset of
 * lfsfs_object_fd(o) until lfsfs_object_unpin(o), which the caller must
 * call exactly once.  The pin holds its own reference to o, so o outlives
 * the caller's reference until the unpin.  Returns 0 at EOF (nothing pinned) or a negative code.
 */
ssize_t lfsfs_object_pin(struct lfsfs_object *o, struct lfsfs_reader *r, size_t size,
			 uint64_t off, lfsfs_resolve_fn resolve, void *ctx);
void lfsfs_object_unpin(struct lfsfs_object *o);
/* The object's cache data file (valid while the object is referenced). */
int lfsfs_object_fd(const struct lfsfs_object *o);

enum lfsfs_obj_state { LFSFS_STATE_REMOTE, LFSFS_STATE_PARTIAL, LFSFS_STATE_CACHED,
		       LFSFS_STATE_VERIFIED };

struct lfsfs_object_info {
	enum lfsfs_obj_state state;
	uint64_t size, cached_bytes;
	char key[401];
	char sha256[65];          /* known or computed, "" otherwise */
	char etag[160];
	char url[4096];           /* current source, "" until a read resolved one */
	int error;                /* sticky error code, 0 if none */
};

/* 1 if o's whole content is present and matched its sha256 (or had it
 * computed): such bytes never change, so kernel caches may keep them. */
int lfsfs_object_verified(struct lfsfs_object *o);

/* State of an object by desc without loading it. */
void lfsfs_cache_peek(struct lfsfs_cache *c, const struct lfsfs_object_desc *d,
		      struct lfsfs_object_info *out);
const char *lfsfs_obj_state_name(enum lfsfs_obj_state s);

struct lfsfs_cache_stats {
	uint64_t objects, cached_bytes, limit;
	uint64_t verified;
};
void lfsfs_cache_get_stats(struct lfsfs_cache *c, struct lfsfs_cache_stats *out);

/* Write all dirty state to the index now (also done periodically). */
int lfsfs_cache_flush(struct lfsfs_cache *c);

/*
 * Offline helpers for `lfsfs cache stat|clear` (no daemon involved).
 * stat opens the index read-only and works while a mount runs;
 * clear takes the directory lock and fails with -EBUSY if a mount holds it.
 */
int lfsfs_cache_offline_stats(const char *dir, struct lfsfs_cache_stats *out);
int lfsfs_cache_offline_clear(const char *dir);

#endif
