/*
 * The cache index: one LMDB environment under <cache-dir>/index/.
 *
 * This is the only module that touches MDB_* (DESIGN section 3).  It
 * stores three tables:
 *   objects  key -> struct lfsfs_objrec (fixed-size, versioned)
 *   bits     key "\0" be32(page) -> LFSFS_BITS_PAGE bytes of block bitmap
 *   alias    key -> key (e.g. "sha256:<hex>" -> the etag key holding it)
 * Object keys are "sha256:<64 hex>" or "etag:<size>:<etag>".
 *
 * Commits are durable (LMDB's default sync); callers make sure data is on
 * disk before the bitmap bit that vouches for it is committed.
 */
#ifndef LFSFS_INDEX_H
#define LFSFS_INDEX_H

#include <stddef.h>
#include <stdint.h>

#define LFSFS_BITS_PAGE 1024u                 /* bytes per bitmap page */
#define LFSFS_BITS_PER_PAGE (LFSFS_BITS_PAGE * 8u)
#define LFSFS_KEY_MAX 400

#define LFSFS_OBJ_VERIFIED 0x1u   /* full sha256 checked (or computed) */

struct lfsfs_objrec {
	uint32_t version;          /* record layout version, currently 1 */
	uint32_t flags;            /* LFSFS_OBJ_* */
	uint64_t size;             /* object size in bytes */
	uint32_t block_size;
	uint32_t reserved;
	uint64_t cached_bytes;     /* bytes of present blocks, kept with the pages */
	uint64_t atime;            /* last access, unix seconds (LRU) */
	uint64_t etag_src;         /* hash of the URL that served etag */
	char etag[160];            /* ETag served by the origin, "" unknown */
	char sha256[65];           /* content sha256 when known */
	char pad[7];
};

struct lfsfs_index;
struct lfsfs_index_txn;

/* Open (creating) the environment in dir. *out owned by caller. */
int lfsfs_index_open(const char *dir, struct lfsfs_index **out);
void lfsfs_index_close(struct lfsfs_index *ix);

/* write != 0 for a write transaction. Exactly one of commit/abort ends it. */
int lfsfs_index_begin(struct lfsfs_index *ix, int write, struct lfsfs_index_txn **out);
int lfsfs_index_commit(struct lfsfs_index_txn *t);
void lfsfs_index_abort(struct lfsfs_index_txn *t);

/* -ENOENT when absent. */
int lfsfs_index_get_obj(struct lfsfs_index_txn *t, const char *key, struct lfsfs_objrec *out);
int lfsfs_index_put_obj(struct lfsfs_index_txn *t, const char *key, const struct lfsfs_objrec *rec);
/* Delete the record and all its bitmap pages (missing is fine). */
int lfsfs_index_del_obj(struct lfsfs_index_txn *t, const char *key);

/* Fill bits (nbytes long, zeroed first) from the stored pages. */
int lfsfs_index_get_bits(struct lfsfs_index_txn *t, const char *key, uint8_t *bits, size_t nbytes);
/* Store page `page` (LFSFS_BITS_PAGE bytes at data; shorter tail is zero-padded). */
int lfsfs_index_put_bits_page(struct lfsfs_index_txn *t, const char *key, uint32_t page,
			      const uint8_t *data, size_t len);

int lfsfs_index_get_alias(struct lfsfs_index_txn *t, const char *key, char *out, size_t cap);
int lfsfs_index_put_alias(struct lfsfs_index_txn *t, const char *key, const char *target);

/* Call fn for every object record; stop early if fn returns non-zero
 * (which is then returned). */
int lfsfs_index_foreach_obj(struct lfsfs_index_txn *t,
			    int (*fn)(const char *key, const struct lfsfs_objrec *rec, void *ctx),
			    void *ctx);

#endif
