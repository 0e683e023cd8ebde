/* Cache flusher thread, LRU eviction and the offline stat/clear helpers. */
#include "cache/evict.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/internal.h"
#include "lfsfs/error.h"
#include "util/log.h"

/* ---- directories and the lock ---- */

int lfsfs__mkdirs(const char *dir)
{
	char tmp[4096];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(tmp))
		return lfsfs_error_set(-EINVAL, "bad cache directory '%s'", dir);
	memcpy(tmp, dir, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) && errno != EEXIST)
			return lfsfs_error_set(-errno, "cannot create '%s': %s", tmp, strerror(errno));
		*p = '/';
	}
	if (mkdir(tmp, 0700) && errno != EEXIST)
		return lfsfs_error_set(-errno, "cannot create cache directory '%s': %s", tmp,
				       strerror(errno));
	return 0;
}

int lfsfs__lock_dir(const char *path, int *fd_out)
{
	char buf[32];
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	ssize_t n;

	if (fd < 0)
		return lfsfs_error_set(-errno, "cannot open '%s': %s", path, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		int e = errno;
		n = pread(fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		close(fd);
		if (e == EWOULDBLOCK)
			return lfsfs_error_set(-EBUSY,
					       "cache directory '%.*s' is in use by another lfsfs "
					       "process (pid %s); unmount it first or pass "
					       "--cache-dir DIR", (int)(strrchr(path, '/') - path),
					       path, buf[0] ? buf : "?");
		return lfsfs_error_set(-e, "cannot lock '%s': %s", path, strerror(e));
	}
	if (ftruncate(fd, 0) == 0) {
		n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
		if (pwrite(fd, buf, (size_t)n, 0) < 0)
			log_warn("cannot write pid to '%s'", path);
	}
	*fd_out = fd;
	return 0;
}

/* ---- flushing ---- */

struct snap {
	struct lfsfs_object *o;
	char key[LFSFS_KEY_MAX + 1];
	struct lfsfs_objrec rec;
	uint32_t *pages;
	uint8_t *page_data;
	size_t npages;
	int fd;
	int alias;
};

static void fill_rec(struct lfsfs_object *o, struct lfsfs_objrec *rec)
{
	memset(rec, 0, sizeof(*rec));
	rec->version = 1;
	rec->flags = o->flags & LFSFS_OBJ_VERIFIED;
	rec->size = o->size;
	rec->block_size = o->bs;
	rec->cached_bytes = o->cached_bytes;
	rec->atime = o->atime;
	rec->etag_src = o->etag_src;
	snprintf(rec->etag, sizeof(rec->etag), "%s", o->etag);
	snprintf(rec->sha256, sizeof(rec->sha256), "%s", o->sha256);
}

/* Copy o's dirty bitmap pages; caller holds o->lock. */
static int snap_pages(struct lfsfs_object *o, struct snap *s)
{
	uint64_t total_pages = o->nblocks / LFSFS_BITS_PER_PAGE + 1;
	size_t bitmap_bytes = (size_t)((o->nblocks + 7) / 8) + 1;
	size_t n = 0;

	s->npages = 0;
	if (!o->loaded)
		return 0;
	for (uint64_t p = 0; p < total_pages; p++)
		if ((o->dirty_pages[p >> 3] >> (p & 7)) & 1)
			n++;
	if (!n)
		return 0;
	s->pages = malloc(n * sizeof(*s->pages));
	s->page_data = malloc(n * LFSFS_BITS_PAGE);
	if (!s->pages || !s->page_data)
		return -ENOMEM;
	for (uint64_t p = 0; p < total_pages; p++) {
		size_t off, len;
		if (!((o->dirty_pages[p >> 3] >> (p & 7)) & 1))
			continue;
		off = (size_t)p * LFSFS_BITS_PAGE;
		len = bitmap_bytes - off < LFSFS_BITS_PAGE ? bitmap_bytes - off : LFSFS_BITS_PAGE;
		memset(s->page_data + s->npages * LFSFS_BITS_PAGE, 0, LFSFS_BITS_PAGE);
		memcpy(s->page_data + s->npages * LFSFS_BITS_PAGE, o->present + off, len);
		s->pages[s->npages++] = (uint32_t)p;
		o->dirty_pages[p >> 3] &= (uint8_t)~(1u << (p & 7));
	}
	return 0;
}

static int put_snap(struct lfsfs_index_txn *t, struct snap *s)
{
	int rc = 0;

	for (size_t i = 0; i < s->npages && !rc; i++)
		rc = lfsfs_index_put_bits_page(t, s->key, s->pages[i],
					       s->page_data + i * LFSFS_BITS_PAGE, LFSFS_BITS_PAGE);
	if (!rc)
		rc = lfsfs_index_put_obj(t, s->key, &s->rec);
	if (!rc && s->alias && s->rec.sha256[0]) {
		char akey[80];
		snprintf(akey, sizeof(akey), "sha256:%s", s->rec.sha256);
		rc = lfsfs_index_put_alias(t, akey, s->key);
	}
	return rc;
}

int lfsfs_cache_flush(struct lfsfs_cache *c)
{
	struct lfsfs_object *list, *o, *next;
	struct stale *stale;
	struct snap *snaps = NULL;
	size_t n = 0, cap = 0;
	struct lfsfs_index_txn *t = NULL;
	int rc = 0;

	pthread_mutex_lock(&c->commit_lock);
	pthread_mutex_lock(&c->lock);
	list = c->dirty;
	c->dirty = NULL;
	stale = c->stale;
	c->stale = NULL;
	pthread_mutex_unlock(&c->lock);
	if (!list && !stale)
		goto out;
	for (o = list; o; o = o->dirty_next)
		cap++;
	snaps = calloc(cap + 1, sizeof(*snaps));
	if (!snaps) {
		rc = -ENOMEM;
		goto out;
	}
	for (o = list; o; o = next) {
		struct snap *s = &snaps[n++];
		/* read the link first: once on_dirty_list is 0, run_done may put
		 * o on the new list and overwrite dirty_next */
		pthread_mutex_lock(&c->lock);
		next = o->dirty_next;
		pthread_mutex_unlock(&c->lock);
		s->o = o;
		pthread_mutex_lock(&o->lock);
		snprintf(s->key, sizeof(s->key), "%s", o->key);
		if (snap_pages(o, s))
			rc = -ENOMEM;
		fill_rec(o, &s->rec);
		s->alias = o->alias_pending;
		o->alias_pending = 0;
		o->dirty = 0;
		s->fd = o->fd >= 0 ? dup(o->fd) : -1;
		pthread_mutex_unlock(&o->lock);
		pthread_mutex_lock(&c->lock);
		o->on_dirty_list = 0;
		pthread_mutex_unlock(&c->lock);
	}
	/* The bytes first, then the bits that vouch for them. */
	for (size_t i = 0; i < n; i++)
		if (snaps[i].fd >= 0 && snaps[i].npages && fdatasync(snaps[i].fd))
			log_warn("fdatasync of cache data for '%s' failed: %s", snaps[i].key,
				 strerror(errno));
	if (!rc)
		rc = lfsfs_index_begin(c->ix, 1, &t);
	for (struct stale *s = stale; s && !rc; s = s->next)
		rc = lfsfs_index_del_obj(t, s->key);
	for (size_t i = 0; i < n && !rc; i++)
		rc = put_snap(t, &snaps[i]);
	if (t)
		rc = rc ? (lfsfs_index_abort(t), rc) : lfsfs_index_commit(t);
	if (rc)
		log_error("cannot write the cache index: %s (%s)", lfsfs_error_message(),
			  lfsfs_code_name(rc));
	for (size_t i = 0; i < n; i++) {
		pthread_mutex_lock(&c->lock);
		if (!rc)
			snaps[i].o->in_index = 1;
		pthread_mutex_unlock(&c->lock);
		if (rc) {
			/* try again next round */
			pthread_mutex_lock(&snaps[i].o->lock);
			for (size_t k = 0; k < snaps[i].npages; k++) {
				uint32_t p = snaps[i].pages[k];
				if (snaps[i].o->dirty_pages)
					snaps[i].o->dirty_pages[p >> 3] |= (uint8_t)(1u << (p & 7));
			}
			lfsfs__object_mark_dirty(snaps[i].o);
			pthread_mutex_unlock(&snaps[i].o->lock);
		}
		if (snaps[i].fd >= 0)
			close(snaps[i].fd);
		free(snaps[i].pages);
		free(snaps[i].page_data);
		lfsfs_object_put(snaps[i].o);
	}
out:
	while (stale) {
		struct stale *s = stale;
		stale = s->next;
		free(s);
	}
	free(snaps);
	pthread_mutex_unlock(&c->commit_lock);
	return rc;
}

/* ---- eviction ---- */

uint64_t lfsfs__evict_blocks(struct lfsfs_object *o, uint64_t keep_first, uint64_t keep_n)
{
	struct lfsfs_cache *c = o->cache;
	struct lfsfs_index_txn *t = NULL;
	struct snap s;
	uint64_t freed = 0, *ranges = NULL;
	size_t nr = 0, rcap = 0;
	int rc;

	memset(&s, 0, sizeof(s));
	pthread_mutex_lock(&c->commit_lock);
	pthread_rwlock_wrlock(&o->data_lock);
	pthread_mutex_lock(&o->lock);
	if (!o->loaded)
		goto unlock;
	for (uint64_t b = 0; b < o->nblocks; b++) {
		if (!lfsfs__block_present(o, b))
			continue;
		if (keep_n && b >= keep_first && b - keep_first < keep_n)
			continue;
		lfsfs__block_clear(o, b);
		freed += lfsfs__block_len(o, b);
		if (nr && ranges[2 * nr - 1] == b) {
			ranges[2 * nr - 1] = b + 1;
		} else {
			if (nr == rcap) {
				size_t nc = rcap ? rcap * 2 : 16;
				uint64_t *nrg = realloc(ranges, nc * 2 * sizeof(*ranges));
				if (!nrg)
					break; /* bits cleared so far are still consistent */
				ranges = nrg;
				rcap = nc;
			}
			ranges[2 * nr] = b;
			ranges[2 * nr + 1] = b + 1;
			nr++;
		}
	}
	if (!freed)
		goto unlock;
	snprintf(s.key, sizeof(s.key), "%s", o->key);
	snap_pages(o, &s);
	fill_rec(o, &s.rec);
	/* Pages may also carry bits of fresh blocks: their bytes go first. */
	if (fdatasync(o->fd))
		log_warn("fdatasync of '%s' failed: %s", o->key, strerror(errno));
	rc = lfsfs_index_begin(c->ix, 1, &t);
	if (!rc)
		rc = put_snap(t, &s);
	if (t)
		rc = rc ? (lfsfs_index_abort(t), rc) : lfsfs_index_commit(t);
	if (rc) {
		/* Cannot record the eviction: keep the bytes (the index still
		 * vouches for them) and retry at the next pass. */
		log_error("cannot record eviction of '%s': %s", o->key, lfsfs_error_message());
		nr = 0;
	}
	/* Punch while still holding o->lock: a cleared block must not be
	 * claimed, fetched and marked present again before its hole is made,
	 * or the punch would zero fresh bytes that the bitmap vouches for. */
	for (size_t i = 0; i < nr; i++) {
		uint64_t off = ranges[2 * i] * o->bs;
		uint64_t end = ranges[2 * i + 1] * o->bs;
		if (end > o->size)
			end = o->size;
		if (fallocate(o->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
			      (off_t)(end - off)))
			log_warn("cannot punch cache file of '%s': %s", o->key, strerror(errno));
	}
	pthread_mutex_unlock(&o->lock);
	pthread_rwlock_unlock(&o->data_lock);
	pthread_mutex_unlock(&c->commit_lock);
	free(ranges);
	free(s.pages);
	free(s.page_data);
	log_debug("evicted %" PRIu64 " bytes of %s", freed, o->key);
	return freed;
unlock:
	pthread_mutex_unlock(&o->lock);
	pthread_rwlock_unlock(&o->data_lock);
	pthread_mutex_unlock(&c->commit_lock);
	free(ranges);
	free(s.pages);
	free(s.page_data);
	return freed;
}

/* Whole-object eviction of an unused object that is not loaded. */
static int evict_unused(struct lfsfs_cache *c, struct lfsfs_object *o)
{
	struct lfsfs_index_txn *t = NULL;
	char path[4096];
	int removed = 0, rc;

	pthread_mutex_lock(&c->commit_lock);
	pthread_mutex_lock(&o->lock);
	pthread_mutex_lock(&c->lock);
	if (o->refs == 1 && !o->loaded && !o->on_dirty_list) {
		lfsfs__table_remove(c, o);
		removed = 1;
	}
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_unlock(&o->lock);
	if (!removed) {
		pthread_mutex_unlock(&c->commit_lock);
		return 0;
	}
	rc = lfsfs_index_begin(c->ix, 1, &t);
	if (!rc)
		rc = lfsfs_index_del_obj(t, o->key);
	if (t)
		rc = rc ? (lfsfs_index_abort(t), rc) : lfsfs_index_commit(t);
	if (rc) {
		log_error("cannot record eviction of '%s': %s", o->key, lfsfs_error_message());
		pthread_mutex_lock(&c->lock);
		lfsfs__table_insert(c, o); /* still vouched for by the index */
		pthread_mutex_unlock(&c->lock);
		pthread_mutex_unlock(&c->commit_lock);
		return -1;
	}
	if (!lfsfs__data_path(c, o->key, path, sizeof(path)) && unlink(path) && errno != ENOENT)
		log_warn("cannot remove '%s': %s", path, strerror(errno));
	pthread_mutex_unlock(&c->commit_lock);
	__atomic_sub_fetch(&c->total, o->cached_bytes, __ATOMIC_RELAXED);
	log_debug("evicted %s (%" PRIu64 " bytes)", o->key, o->cached_bytes);
	lfsfs__object_free(o);
	return 1;
}

struct cand {
	struct lfsfs_object *o;
	uint64_t atime;
	int in_use;
};

static int cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->in_use != y->in_use)
		return x->in_use - y->in_use; /* idle objects go first */
	return x->atime < y->atime ? -1 : x->atime > y->atime;
}

static void evict_pass(struct lfsfs_cache *c)
{
	uint64_t target = c->limit - c->limit / 10;
	struct cand *cands = NULL;
	size_t n = 0;

	if (!c->limit || __atomic_load_n(&c->total, __ATOMIC_RELAXED) <= c->limit)
		return;
	pthread_mutex_lock(&c->lock);
	cands = calloc(c->nobjects + 1, sizeof(*cands));
	if (cands) {
		for (size_t i = 0; i < c->nbuckets; i++)
			for (struct lfsfs_object *o = c->buckets[i]; o; o = o->hnext) {
				if (!o->cached_bytes)
					continue;
				o->refs++;
				cands[n].o = o;
				cands[n].atime = o->atime;
				cands[n].in_use = o->refs - 1 - o->on_dirty_list > 0;
				n++;
			}
	}
	pthread_mutex_unlock(&c->lock);
	if (!cands)
		return;
	qsort(cands, n, sizeof(*cands), cand_cmp);
	for (size_t i = 0; i < n; i++) {
		struct lfsfs_object *o = cands[i].o;
		int gone = 0;

		if (__atomic_load_n(&c->total, __ATOMIC_RELAXED) > target) {
			if (!cands[i].in_use && !o->loaded) {
				gone = evict_unused(c, o) == 1;
			}
			if (!gone) {
				uint64_t keep_first = 0, keep_n = 0;
				if (cands[i].in_use) {
					/* keep what the reader is using and its readahead */
					pthread_mutex_lock(&o->lock);
					keep_first = o->last_block;
					keep_n = o->ra_last >= o->last_block
							 ? o->ra_last - o->last_block + 1 : 1;
					pthread_mutex_unlock(&o->lock);
				}
				lfsfs__evict_blocks(o, keep_first, keep_n);
			}
		}
		if (!gone)
			lfsfs_object_put(o);
	}
	free(cands);
	if (__atomic_load_n(&c->total, __ATOMIC_RELAXED) > c->limit)
		log_warn("cache holds %" PRIu64 " bytes, over its limit of %" PRIu64
			 ": blocks in use by readers cannot be evicted",
			 __atomic_load_n(&c->total, __ATOMIC_RELAXED), c->limit);
}

/* ---- the flusher thread ---- */

static void *flusher_main(void *p)
{
	struct lfsfs_cache *c = p;

	pthread_mutex_lock(&c->lock);
	while (!c->flusher_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)(c->flush_ms % 1000) * 1000000L;
		ts.tv_sec += c->flush_ms / 1000 + ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		if (!c->kicked)
			pthread_cond_timedwait(&c->flush_cond, &c->lock, &ts);
		c->kicked = 0;
		if (c->flusher_stop)
			break;
		pthread_mutex_unlock(&c->lock);
		evict_pass(c);
		lfsfs_cache_flush(c);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

int lfsfs__flusher_start(struct lfsfs_cache *c)
{
	int rc = pthread_create(&c->flusher, NULL, flusher_main, c);

	if (rc)
		return lfsfs_error_set(-rc, "cannot start the cache flusher: %s", strerror(rc));
	c->flusher_running = 1;
	return 0;
}

void lfsfs__flusher_stop(struct lfsfs_cache *c)
{
	if (!c->flusher_running)
		return;
	pthread_mutex_lock(&c->lock);
	c->flusher_stop = 1;
	pthread_cond_signal(&c->flush_cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->flusher, NULL);
	c->flusher_running = 0;
	evict_pass(c);
}

void lfsfs__flusher_kick(struct lfsfs_cache *c)
{
	pthread_mutex_lock(&c->lock);
	c->kicked = 1;
	pthread_cond_signal(&c->flush_cond);
	pthread_mutex_unlock(&c->lock);
}

/* ---- offline helpers ---- */

static int stat_one(const char *key, const struct lfsfs_objrec *rec, void *ctx)
{
	struct lfsfs_cache_stats *st = ctx;

	st->objects++;
	st->cached_bytes += rec->cached_bytes;
	if (rec->flags & LFSFS_OBJ_VERIFIED)
		st->verified++;
	return 0;
}

int lfsfs_cache_offline_stats(const char *dir, struct lfsfs_cache_stats *out)
{
	char path[4096];
	struct lfsfs_index *ix;
	struct lfsfs_index_txn *t;
	struct stat sb;
	int rc;

	memset(out, 0, sizeof(*out));
	snprintf(path, sizeof(path), "%s/index", dir);
	if (stat(path, &sb))
		return 0; /* no cache yet: empty */
	if ((rc = lfsfs_index_open(path, &ix)))
		return rc;
	rc = lfsfs_index_begin(ix, 0, &t);
	if (!rc) {
		rc = lfsfs_index_foreach_obj(t, stat_one, out);
		lfsfs_index_abort(t);
	}
	lfsfs_index_close(ix);
	return rc;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	if (ftw->level == 0)
		return 0;
	if (remove(p) && errno != ENOENT)
		return -1;
	return 0;
}

int lfsfs_cache_offline_clear(const char *dir)
{
	char path[4096];
	struct stat sb;
	int fd = -1, rc;

	if (stat(dir, &sb))
		return 0;
	snprintf(path, sizeof(path), "%s/lock", dir);
	if ((rc = lfsfs__lock_dir(path, &fd)))
		return rc;
	const char *subs[] = { "index", "data" };
	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, subs[i]);
		if (stat(path, &sb))
			continue;
		if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS)) {
			rc = lfsfs_error_set(-errno, "cannot clear '%s': %s", path, strerror(errno));
			break;
		}
		rmdir(path);
	}
	close(fd);
	return rc;
}
