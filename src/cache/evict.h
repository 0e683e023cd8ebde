/*
 * The cache's background side: the flusher thread that commits bitmaps
 * (after fdatasync of the data they vouch for), LRU eviction, and the
 * directory helpers shared with the offline `cache` commands.
 */
#ifndef LFSFS_CACHE_EVICT_H
#define LFSFS_CACHE_EVICT_H

#include <stdint.h>

struct lfsfs_cache;
struct lfsfs_object;

int lfsfs__flusher_start(struct lfsfs_cache *c);
void lfsfs__flusher_stop(struct lfsfs_cache *c);
/* Wake the flusher now (cache over its limit). */
void lfsfs__flusher_kick(struct lfsfs_cache *c);

/*
 * Drop o's present blocks outside [keep_first, keep_first + keep_n) and
 * commit that before the holes are punched.  keep_n == 0 drops all.
 * Caller holds no object lock.  Returns bytes freed.
 */
uint64_t lfsfs__evict_blocks(struct lfsfs_object *o, uint64_t keep_first, uint64_t keep_n);

int lfsfs__mkdirs(const char *dir);
/* Take an exclusive flock on path; -EBUSY (with message) if held. */
int lfsfs__lock_dir(const char *path, int *fd_out);

#endif
