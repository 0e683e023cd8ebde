/*
 * Unit tests for the block cache (src/cache/): reads through file:// URLs
 * served synchronously by the file store backend (no FUSE, no network: the
 * store is initialized with no net engine, which only http needs).
 *
 * Regression checks for bugs these tests found: zero-length reads, a
 * refetch racing the hole punch of an eviction, the flusher's dirty-list
 * walk.  LFSFS_TEST_LOG=1 shows the library's log.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/internal.h" /* data_lock, to check what is left pinned */
#include "index/index.h"
#include "lfsfs/error.h"
#include "store/store.h"
#include "test.h"
#include "util/log.h"

#define KiB (1024ull)
#define MiB (1024ull * 1024ull)

static char root[] = "/tmp/lfsfs-test-cache.XXXXXX";
static int known_bugs; /* kept out of the default run so the suite stays green */
static struct lfsfs_store store; /* file:// needs no net engine: .net stays NULL */

/* ---- helpers ---- */

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(p);
	return 0;
}

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

static uint64_t rng_below(uint64_t *s, uint64_t n)
{
	return n ? rng_next(s) % n : 0;
}

static void fill_random(uint8_t *p, uint64_t n, uint64_t seed)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;

	for (uint64_t i = 0; i < n; i += 8) {
		uint64_t v = rng_next(&s);
		memcpy(p + i, &v, n - i < 8 ? (size_t)(n - i) : 8);
	}
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;

	if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL)) {
		memset(out, '0', 64);
		out[64] = '\0';
		return;
	}
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static int write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t done = 0;

	if (fd < 0)
		return -errno;
	while (done < len) {
		ssize_t n = write(fd, (const char *)data + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return -EIO;
		}
		done += (size_t)n;
	}
	close(fd);
	return 0;
}

/* An origin file: random bytes of size, its sha256 and file:// URL. */
struct origin {
	char path[4200];
	char url[4300];
	char oid[65];
	uint8_t *data;
	uint64_t size;
};

static int origin_make(struct origin *g, const char *name, uint64_t size, uint64_t seed)
{
	memset(g, 0, sizeof(*g));
	snprintf(g->path, sizeof(g->path), "%s/%s", root, name);
	snprintf(g->url, sizeof(g->url), "file://%s", g->path);
	g->size = size;
	g->data = malloc(size ? size : 1);
	if (!g->data)
		return -ENOMEM;
	fill_random(g->data, size, seed);
	sha256_hex(g->data, size, g->oid);
	return write_file(g->path, g->data, size);
}

static void origin_free(struct origin *g)
{
	free(g->data);
	g->data = NULL;
}

/* The resolver: hands out the URL and counts calls. */
struct src {
	const char *url;
	int calls;      /* atomic */
	int fail;       /* refuse to resolve */
};

static int resolve_cb(void *ctx, struct lfsfs_source *out)
{
	struct src *s = ctx;

	__atomic_add_fetch(&s->calls, 1, __ATOMIC_SEQ_CST);
	if (s->fail)
		return lfsfs_error_set(-LFSFS_ESOURCE_NOT_ACCESSIBLE, "test resolver refuses");
	memset(out, 0, sizeof(*out));
	out->url = strdup(s->url);
	return out->url ? 0 : -ENOMEM;
}

static int calls(struct src *s)
{
	return __atomic_load_n(&s->calls, __ATOMIC_SEQ_CST);
}

/* Read [off, off+len) and compare with the origin; 1 if right. Quiet
 * enough to call from threads. */
static int read_ok(struct lfsfs_object *o, struct lfsfs_reader *rd, const struct origin *g,
		   uint64_t off, size_t len, struct src *s)
{
	char *buf = malloc(len ? len : 1);
	size_t want = off >= g->size ? 0 : (len < g->size - off ? len : (size_t)(g->size - off));
	ssize_t n;
	int ok;

	if (!buf)
		return 0;
	n = lfsfs_object_read(o, rd, buf, len, off, resolve_cb, s);
	ok = n == (ssize_t)want && (want == 0 || !memcmp(buf, g->data + off, want));
	if (!ok && n == (ssize_t)want) {
		/* say where, and whether the wrong bytes are a hole (zeros) */
		size_t i = 0, ndiff = 0, zeros = 0;
		while (i < want && buf[i] == (char)g->data[off + i])
			i++;
		for (size_t j = i; j < want; j++)
			if (buf[j] != (char)g->data[off + j]) {
				ndiff++;
				zeros += !buf[j];
			}
		fprintf(stderr, "  read %s off=%" PRIu64 " len=%zu: first wrong byte at object "
			"offset %" PRIu64 ", %zu wrong bytes, %zu of them zero\n",
			g->path, off, len, off + i, ndiff, zeros);
	} else if (!ok) {
		fprintf(stderr, "  read %s off=%" PRIu64 " len=%zu: got %zd, want %zu (%s)\n",
			g->path, off, len, n, want, n < 0 ? lfsfs_error_message() : "");
	}
	free(buf);
	return ok;
}

/* Return value of one read (bytes discarded). */
static ssize_t read_rc(struct lfsfs_object *o, uint64_t off, size_t len, struct src *s)
{
	char *buf = malloc(len ? len : 1);
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	n = lfsfs_object_read(o, NULL, buf, len, off, resolve_cb, s);
	free(buf);
	return n;
}

/* Read the whole object sequentially in chunks; 1 if all right. */
static int read_all_ok(struct lfsfs_object *o, const struct origin *g, size_t chunk,
		       struct src *s)
{
	struct lfsfs_reader rd = { .next_off = 0 };
	int ok = 1;

	for (uint64_t off = 0; off < g->size; off += chunk)
		ok &= read_ok(o, &rd, g, off, chunk, s);
	return ok;
}

static struct lfsfs_cache *cache_open(const char *name, uint64_t limit, uint32_t bs,
				      unsigned flush_ms)
{
	struct lfsfs_cache_opts opts;
	struct lfsfs_cache *c = NULL;
	char dir[4200];
	int rc;

	snprintf(dir, sizeof(dir), "%s/%s", root, name);
	memset(&opts, 0, sizeof(opts));
	opts.dir = dir;
	opts.limit = limit;
	opts.block_size = bs;
	opts.flush_ms = flush_ms;
	rc = lfsfs_cache_open(&opts, &store, &c);
	CHECK_EQ_INT(rc, 0);
	if (rc) {
		fprintf(stderr, "  cache open %s: %s\n", dir, lfsfs_error_message());
		return NULL;
	}
	return c;
}

static struct lfsfs_object_desc desc_of(const struct origin *g)
{
	struct lfsfs_object_desc d = { .oid = g->oid, .size = g->size };
	return d;
}

static struct lfsfs_object *get_obj(struct lfsfs_cache *c, const struct lfsfs_object_desc *d)
{
	struct lfsfs_object *o = NULL;
	int rc = lfsfs_cache_get(c, d, &o);

	CHECK_EQ_INT(rc, 0);
	return rc ? NULL : o;
}

static struct lfsfs_object *get_origin(struct lfsfs_cache *c, const struct origin *g)
{
	struct lfsfs_object_desc d = desc_of(g);
	return get_obj(c, &d);
}

static void peek(struct lfsfs_cache *c, const struct origin *g, struct lfsfs_object_info *info)
{
	struct lfsfs_object_desc d = desc_of(g);
	lfsfs_cache_peek(c, &d, info);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static uint64_t disk_bytes;
static int du_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)p;
	(void)ftw;
	if (flag == FTW_F)
		disk_bytes += (uint64_t)sb->st_blocks * 512;
	return 0;
}

/* Allocated bytes of the data files under root/name/data. */
static uint64_t data_disk_usage(const char *name)
{
	char dir[4200];

	snprintf(dir, sizeof(dir), "%s/%s/data", root, name);
	disk_bytes = 0;
	nftw(dir, du_one, 16, FTW_PHYS);
	return disk_bytes;
}

/* ---- a multi-block object read in random chunks, then verified ---- */

static void test_read_verify(void)
{
	struct origin g;
	struct src s = { NULL, 0, 0 }, nosrc = { NULL, 0, 1 };
	struct lfsfs_cache *c;
	struct lfsfs_object *o;
	struct lfsfs_object_info info;
	struct lfsfs_cache_stats st;
	struct lfsfs_reader rd = { .next_off = 0 };
	uint64_t rs = 12345;
	char key[LFSFS_KEY_MAX + 1];
	int ok;

	CHECK_EQ_INT(origin_make(&g, "origin-rv", 5 * MiB + 123, 1), 0);
	s.url = g.url;
	nosrc.url = g.url;
	c = cache_open("c-rv", 0, 1 * MiB, 0);
	if (!c)
		goto out;
	{
		char want[4200];
		snprintf(want, sizeof(want), "%s/c-rv", root);
		CHECK_EQ_STR(lfsfs_cache_dir(c), want);
	}

	/* a cold object */
	peek(c, &g, &info);
	snprintf(key, sizeof(key), "sha256:%s", g.oid);
	CHECK_EQ_STR(info.key, key);
	CHECK_EQ_INT(info.state, LFSFS_STATE_REMOTE);
	CHECK_EQ_INT(info.size, g.size);
	CHECK_EQ_INT(info.cached_bytes, 0);
	CHECK_EQ_INT(info.error, 0);
	CHECK_EQ_STR(info.sha256, g.oid);
	CHECK_EQ_STR(lfsfs_obj_state_name(LFSFS_STATE_REMOTE), "remote");
	CHECK_EQ_STR(lfsfs_obj_state_name(LFSFS_STATE_VERIFIED), "verified");

	o = get_origin(c, &g);
	if (!o)
		goto close;

	/* a random read crossing the block 0/1 boundary fetches exactly the
	 * two blocks it touches (no readahead for a non-sequential read) */
	CHECK(read_ok(o, &rd, &g, 1 * MiB - 10, 20, &s));
	CHECK_EQ_INT(calls(&s), 1);
	peek(c, &g, &info);
	CHECK_EQ_INT(info.state, LFSFS_STATE_PARTIAL);
	CHECK_EQ_INT(info.cached_bytes, 2 * MiB);
	CHECK(info.etag[0] == '"'); /* the file backend's ETag was pinned */

	/* the last, partial block; reads at and after EOF; short at EOF */
	CHECK(read_ok(o, NULL, &g, 5 * MiB, 4096, &s));
	CHECK(read_ok(o, NULL, &g, 5 * MiB + 100, 23, &s));
	CHECK(read_ok(o, NULL, &g, g.size - 1, 10, &s));
	CHECK_EQ_INT(read_rc(o, g.size, 10, &s), 0);
	CHECK_EQ_INT(read_rc(o, g.size + 1, 10, &s), 0);
	CHECK_EQ_INT(read_rc(o, g.size + 5 * MiB, 1 * MiB, &s), 0);
	CHECK_EQ_INT(read_rc(o, UINT64_MAX - 5, 100, &s), 0);
	CHECK_EQ_INT(read_rc(o, UINT64_MAX, 1, &s), 0);
	/* a read spanning the whole object and past its end is short */
	{
		char *buf = malloc(6 * MiB);
		ssize_t n = buf ? lfsfs_object_read(o, NULL, buf, 6 * MiB, 3 * MiB + 1, resolve_cb, &s)
				: -ENOMEM;
		CHECK_EQ_INT(n, g.size - (3 * MiB + 1));
		CHECK(n > 0 && !memcmp(buf, g.data + 3 * MiB + 1, (size_t)n));
		free(buf);
	}

	/* random chunks, exact block boundaries, single bytes */
	ok = 1;
	for (int i = 0; i < 80; i++) {
		uint64_t off = rng_below(&rs, g.size + 1000);
		size_t len = 1 + (size_t)rng_below(&rs, i % 4 == 0 ? 3 * MiB : 64 * KiB);
		ok &= read_ok(o, &rd, &g, off, len, &s);
	}
	for (uint64_t b = 0; b <= 5; b++) {
		ok &= read_ok(o, NULL, &g, b * MiB, 1, &s);
		if (b)
			ok &= read_ok(o, NULL, &g, b * MiB - 1, 2, &s);
		ok &= read_ok(o, NULL, &g, b * MiB, 1 * MiB, &s);
	}
	CHECK(ok);
	/* then everything, sequentially */
	CHECK(read_all_ok(o, &g, 100 * KiB + 7, &s));

	peek(c, &g, &info);
	CHECK_EQ_INT(info.state, LFSFS_STATE_VERIFIED);
	CHECK_EQ_INT(info.cached_bytes, g.size);
	CHECK_EQ_INT(info.error, 0);
	CHECK_EQ_STR(info.sha256, g.oid);
	/* one resolution for all those reads */
	CHECK_EQ_INT(calls(&s), 1);

	lfsfs_cache_get_stats(c, &st);
	CHECK_EQ_INT(st.objects, 1);
	CHECK_EQ_INT(st.verified, 1);
	CHECK_EQ_INT(st.cached_bytes, g.size);
	CHECK_EQ_INT(st.limit, 0);

	/* everything cached: no resolution at all, even by a new handle */
	CHECK(read_all_ok(o, &g, 1 * MiB + 3, &nosrc));
	lfsfs_object_put(o);
	o = get_origin(c, &g);
	if (o) {
		CHECK(read_all_ok(o, &g, 3 * MiB, &nosrc));
		CHECK(read_ok(o, NULL, &g, 4 * MiB - 1, 2, &nosrc));
		lfsfs_object_put(o);
	}
	CHECK_EQ_INT(calls(&nosrc), 0);

	/* ---- one process per cache directory ---- */
	{
		struct lfsfs_cache_opts opts;
		struct lfsfs_cache *c2 = NULL;
		char dir[4200];
		int rc;

		snprintf(dir, sizeof(dir), "%s/c-rv", root);
		memset(&opts, 0, sizeof(opts));
		opts.dir = dir;
		/* flock locks belong to the open file description, and
		 * lfsfs_cache_open opens DIR/lock afresh, so a second open in the
		 * same process conflicts just like another process would */
		rc = lfsfs_cache_open(&opts, &store, &c2);
		CHECK_EQ_INT(rc, -EBUSY);
		CHECK(c2 == NULL);
		CHECK(strstr(lfsfs_error_message(), "in use") != NULL);
		if (!rc)
			lfsfs_cache_close(c2);

		/* and another process */
		fflush(NULL);
		pid_t pid = fork();
		if (pid == 0) {
			struct lfsfs_cache *c3 = NULL;
			int r = lfsfs_cache_open(&opts, &store, &c3);
			_exit(r == -EBUSY ? 0 : r == 0 ? 1 : 2);
		}
		CHECK(pid > 0);
		if (pid > 0) {
			int status = 0;
			CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
			CHECK(WIFEXITED(status));
			CHECK_EQ_INT(WEXITSTATUS(status), 0);
		}

		/* clear needs the lock too; stat works while the cache is open */
		CHECK_EQ_INT(lfsfs_cache_offline_clear(dir), -EBUSY);
		CHECK_EQ_INT(lfsfs_cache_flush(c), 0);
		CHECK_EQ_INT(lfsfs_cache_offline_stats(dir, &st), 0);
		CHECK_EQ_INT(st.objects, 1);
		CHECK_EQ_INT(st.cached_bytes, g.size);
		CHECK_EQ_INT(st.verified, 1);
	}
close:
	lfsfs_cache_close(c);

	/* ---- persistence ---- */
	{
		char dir[4200];
		snprintf(dir, sizeof(dir), "%s/c-rv", root);
		CHECK_EQ_INT(lfsfs_cache_offline_stats(dir, &st), 0);
		CHECK_EQ_INT(st.objects, 1);
		CHECK_EQ_INT(st.cached_bytes, g.size);
		CHECK_EQ_INT(st.verified, 1);
	}
	c = cache_open("c-rv", 0, 1 * MiB, 0);
	if (!c)
		goto out;
	lfsfs_cache_get_stats(c, &st);
	CHECK_EQ_INT(st.objects, 1);
	CHECK_EQ_INT(st.cached_bytes, g.size);
	CHECK_EQ_INT(st.verified, 1);
	peek(c, &g, &info);
	CHECK_EQ_INT(info.state, LFSFS_STATE_VERIFIED);
	CHECK_EQ_INT(info.cached_bytes, g.size);
	CHECK(info.etag[0] == '"');
	o = get_origin(c, &g);
	if (o) {
		struct lfsfs_reader rd2 = { .next_off = 0 };
		nosrc.calls = 0;
		CHECK(read_all_ok(o, &g, 512 * KiB, &nosrc));
		CHECK(read_ok(o, &rd2, &g, 2 * MiB - 3, 2 * MiB, &nosrc));
		CHECK(read_ok(o, NULL, &g, 5 * MiB, 200, &nosrc));
		CHECK_EQ_INT(calls(&nosrc), 0);
		lfsfs_object_put(o);
	}
	peek(c, &g, &info);
	CHECK_EQ_INT(info.state, LFSFS_STATE_VERIFIED);
	CHECK_EQ_INT(info.error, 0);
	lfsfs_cache_close(c);

	/* ---- offline clear ---- */
	{
		char dir[4200], sub[4300];
		struct stat sb;
		snprintf(dir, sizeof(dir), "%s/c-rv", root);
		CHECK_EQ_INT(lfsfs_cache_offline_clear(dir), 0);
		CHECK_EQ_INT(lfsfs_cache_offline_stats(dir, &st), 0);
		CHECK_EQ_INT(st.objects, 0);
		CHECK_EQ_INT(st.cached_bytes, 0);
		snprintf(sub, sizeof(sub), "%s/data", dir);
		CHECK(stat(sub, &sb) != 0);
		CHECK_EQ_INT(data_disk_usage("c-rv"), 0);
		/* clearing a directory that does not exist is fine */
		snprintf(sub, sizeof(sub), "%s/never-made", root);
		CHECK_EQ_INT(lfsfs_cache_offline_clear(sub), 0);
		CHECK_EQ_INT(lfsfs_cache_offline_stats(sub, &st), 0);
		CHECK_EQ_INT(st.objects, 0);
	}
	c = cache_open("c-rv", 0, 1 * MiB, 0);
	if (!c)
		goto out;
	peek(c, &g, &info);
	CHECK_EQ_INT(info.state, LFSFS_STATE_REMOTE);
	CHECK_EQ_INT(info.cached_bytes, 0);
	o = get_origin(c, &g);
	if (o) {
		s.calls = 0;
		CHECK(read_ok(o, NULL, &g, 0, 10, &s));
		CHECK_EQ_INT(calls(&s), 1);
		lfsfs_object_put(o);
	}
	lfsfs_cache_close(c);
out:
	origin_free(&g);
}

/* ---- wrong oid: CHECKSUM_MISMATCH ---- */

static int inval_calls;
static char inval_oid[LFSFS_KEY_MAX + 1];

static void inval_cb(void *ctx, const char *oid)
{
	(void)ctx;
	inval_calls++;
	snprintf(inval_oid, sizeof(inval_oid), "%s", oid);
}

static void test_checksum_mismatch(void)
{
	struct origin g, g2;
	struct src s = { NULL, 0, 0 };
	struct lfsfs_cache *c;
	struct lfsfs_object *o;
	struct lfsfs_object_info info;
	struct lfsfs_cache_stats st;
	char wrong[65];
	struct lfsfs_object_desc d;

	CHECK_EQ_INT(origin_make(&g, "origin-bad", 3 * MiB + 5, 2), 0);
	CHECK_EQ_INT(origin_make(&g2, "origin-bad2", 2 * MiB + 77, 3), 0);
	sha256_hex("not the content", 15, wrong);
	s.url = g.url;
	c = cache_open("c-bad", 0, 1 * MiB, 0);
	if (!c)
		goto out;
	lfsfs_cache_set_invalidate_cb(c, inval_cb, NULL);
	d = (struct lfsfs_object_desc){ .oid = wrong, .size = g.size };
	o = get_obj(c, &d);
	if (!o)
		goto close;

	/* partial reads are served before the whole object can be checked */
	CHECK(read_ok(o, NULL, &g, 0, 1 * MiB, &s));
	CHECK(read_ok(o, NULL, &g, 1 * MiB, 1 * MiB, &s));
	CHECK(read_ok(o, NULL, &g, 2 * MiB + 10, 1000, &s));
	lfsfs_cache_peek(c, &d, &info);
	CHECK_EQ_INT(info.state, LFSFS_STATE_PARTIAL);
	CHECK_EQ_INT(info.error, 0);
	CHECK_EQ_INT(inval_calls, 0);

	/* the read that completes the object gets the verdict */
	lfsfs_error_clear();
	CHECK_EQ_INT(read_rc(o, 3 * MiB, 5, &s), -LFSFS_ECHECKSUM_MISMATCH);
	CHECK(strstr(lfsfs_error_message(), "CHECKSUM_MISMATCH") != NULL);
	CHECK_EQ_INT(inval_calls, 1);
	CHECK_EQ_STR(inval_oid, wrong);

	/* every later read fails the same way, cached block or not */
	CHECK_EQ_INT(read_rc(o, 0, 10, &s), -LFSFS_ECHECKSUM_MISMATCH);
	CHECK_EQ_INT(read_rc(o, 3 * MiB, 5, &s), -LFSFS_ECHECKSUM_MISMATCH);
	CHECK_EQ_INT(read_rc(o, 1 * MiB - 1, 2, &s), -LFSFS_ECHECKSUM_MISMATCH);
	CHECK_EQ_INT(lfsfs_error_code(), -LFSFS_ECHECKSUM_MISMATCH);
	lfsfs_object_put(o);
	/* and through a new handle */
	o = get_obj(c, &d);
	if (o) {
		CHECK_EQ_INT(read_rc(o, 0, 10, &s), -LFSFS_ECHECKSUM_MISMATCH);
		lfsfs_object_put(o);
	}
	CHECK_EQ_INT(calls(&s), 1);

	lfsfs_cache_peek(c, &d, &info);
	CHECK_EQ_INT(info.error, -LFSFS_ECHECKSUM_MISMATCH);
	CHECK(info.state != LFSFS_STATE_VERIFIED);
	CHECK_EQ_INT(info.cached_bytes, 0); /* purged */
	lfsfs_cache_get_stats(c, &st);
	CHECK_EQ_INT(st.verified, 0);
	CHECK_EQ_INT(st.cached_bytes, 0);

	/* one read that covers the whole object fails the same way */
	{
		struct src s2 = { g2.url, 0, 0 };
		struct lfsfs_object_desc d2 = { .oid = wrong, .size = g2.size };
		/* same (wrong) oid but another size: the cache refuses the mix */
		struct lfsfs_object *o2 = NULL;
		CHECK_EQ_INT(lfsfs_cache_get(c, &d2, &o2), -LFSFS_ESIZE_MISMATCH);
		CHECK(o2 == NULL);
		sha256_hex("also not the content", 20, wrong);
		d2.oid = wrong;
		o2 = get_obj(c, &d2);
		if (o2) {
			struct lfsfs_reader rd = { .next_off = 0 };
			char *buf = malloc(g2.size);
			ssize_t n = buf ? lfsfs_object_read(o2, &rd, buf, g2.size, 0, resolve_cb, &s2)
					: -ENOMEM;
			CHECK_EQ_INT(n, -LFSFS_ECHECKSUM_MISMATCH);
			free(buf);
			CHECK_EQ_INT(read_rc(o2, 1 * MiB, 1, &s2), -LFSFS_ECHECKSUM_MISMATCH);
			lfsfs_cache_peek(c, &d2, &info);
			CHECK_EQ_INT(info.error, -LFSFS_ECHECKSUM_MISMATCH);
			CHECK_EQ_INT(info.cached_bytes, 0);
			CHECK_EQ_INT(inval_calls, 2);
			lfsfs_object_put(o2);
		}
	}
close:
	lfsfs_cache_close(c);
out:
	origin_free(&g);
	origin_free(&g2);
}

/* ---- the origin changes under a partially cached object ---- */

static int replace_origin(struct origin *g, uint64_t new_size, uint64_t seed, int in_place)
{
	char tmp[4300];
	uint8_t *d = malloc(new_size);
	struct timespec ts[2];
	int rc;

	if (!d)
		return -ENOMEM;
	fill_random(d, new_size, seed);
	if (in_place) {
		rc = write_file(g->path, d, new_size);
	} else {
		/* a new file renamed over the old one (new inode) */
		snprintf(tmp, sizeof(tmp), "%s.new", g->path);
		rc = write_file(tmp, d, new_size);
		if (!rc && rename(tmp, g->path))
			rc = -errno;
	}
	/* a distinct mtime, whatever the clock granularity */
	ts[0].tv_sec = ts[1].tv_sec = 1000000000 + (time_t)seed;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	if (!rc && utimensat(AT_FDCWD, g->path, ts, 0))
		rc = -errno;
	free(d);
	return rc;
}

static void test_immutability(void)
{
	struct origin g1, g2, g3;
	struct src s1 = { NULL, 0, 0 }, s2 = { NULL, 0, 0 }, s3 = { NULL, 0, 0 };
	struct lfsfs_cache *c;
	struct lfsfs_object *o;
	struct lfsfs_object_info info;
	char pinned[160] = "";

	CHECK_EQ_INT(origin_make(&g1, "origin-imm1", 3 * MiB + 7, 4), 0);
	CHECK_EQ_INT(origin_make(&g2, "origin-imm2", 2 * MiB + 1, 5), 0);
	CHECK_EQ_INT(origin_make(&g3, "origin-imm3", 2 * MiB, 6), 0);
	s1.url = g1.url;
	s2.url = g2.url;
	s3.url = g3.url;
	c = cache_open("c-imm", 0, 1 * MiB, 0);
	if (!c)
		goto out;

	/* 1: replaced by another file of the same size */
	o = get_origin(c, &g1);
	if (o) {
		CHECK(read_ok(o, NULL, &g1, 10, 100, &s1));
		peek(c, &g1, &info);
		CHECK(info.etag[0] == '"');
		snprintf(pinned, sizeof(pinned), "%s", info.etag);
		CHECK_EQ_INT(replace_origin(&g1, g1.size, 41, 0), 0);
		lfsfs_error_clear();
		CHECK_EQ_INT(read_rc(o, 2 * MiB, 100, &s1), -LFSFS_EIMMUTABILITY);
		CHECK(strstr(lfsfs_error_message(), lfsfs_code_name(-LFSFS_EIMMUTABILITY)) != NULL);
		/* sticky: reads fail until the record is updated, cached or not */
		CHECK_EQ_INT(read_rc(o, 3 * MiB, 7, &s1), -LFSFS_EIMMUTABILITY);
		CHECK_EQ_INT(read_rc(o, 10, 100, &s1), -LFSFS_EIMMUTABILITY);
		peek(c, &g1, &info);
		CHECK_EQ_INT(info.error, -LFSFS_EIMMUTABILITY);
		CHECK_EQ_STR(info.etag, pinned); /* the pinned ETag is not replaced */
		CHECK(info.state != LFSFS_STATE_VERIFIED);
		lfsfs_object_put(o);
	}

	/* 2: grown (new size, new mtime) in place */
	o = get_origin(c, &g3);
	if (o) {
		CHECK(read_ok(o, NULL, &g3, 0, 1 * MiB, &s3));
		CHECK_EQ_INT(replace_origin(&g3, g3.size + 4096, 61, 1), 0);
		CHECK_EQ_INT(read_rc(o, 1 * MiB, 1, &s3), -LFSFS_EIMMUTABILITY);
		lfsfs_object_put(o);
	}

	/* 3: the pinned ETag survives a restart */
	o = get_origin(c, &g2);
	if (o) {
		CHECK(read_ok(o, NULL, &g2, 0, 1 * MiB, &s2));
		lfsfs_object_put(o);
	}
	lfsfs_cache_close(c);
	/* rewritten in place: same inode and size, new mtime */
	CHECK_EQ_INT(replace_origin(&g2, g2.size, 51, 1), 0);
	c = cache_open("c-imm", 0, 1 * MiB, 0);
	if (!c)
		goto out;
	o = get_origin(c, &g2);
	if (o) {
		peek(c, &g2, &info);
		CHECK(info.etag[0] == '"');
		CHECK_EQ_INT(info.state, LFSFS_STATE_PARTIAL);
		CHECK_EQ_INT(read_rc(o, 1 * MiB, 100, &s2), -LFSFS_EIMMUTABILITY);
		lfsfs_object_put(o);
	}
	lfsfs_cache_close(c);
out:
	origin_free(&g1);
	origin_free(&g2);
	origin_free(&g3);
}

/* ---- other failures ---- */

static void test_errors(void)
{
	struct origin g;
	struct lfsfs_cache *c;
	struct lfsfs_object *o;
	struct lfsfs_object_info info;
	char key[LFSFS_KEY_MAX + 1];

	/* keys */
	CHECK_EQ_INT(lfsfs_cache_key(&(struct lfsfs_object_desc){ .size = 1 }, key, sizeof(key)),
		     -EINVAL);
	CHECK_EQ_INT(lfsfs_cache_key(&(struct lfsfs_object_desc){ .oid = "", .etag = "", .url = "",
							       .size = 1 }, key, sizeof(key)),
		     -EINVAL);
	{
		char h[65], want[100];
		sha256_hex("file:///x", 9, h);
		snprintf(want, sizeof(want), "url:7:%s", h);
		CHECK_EQ_INT(lfsfs_cache_key(&(struct lfsfs_object_desc){ .url = "file:///x", .size = 7 },
					     key, sizeof(key)), 0);
		CHECK_EQ_STR(key, want);
	}
	CHECK_EQ_INT(lfsfs_cache_key(&(struct lfsfs_object_desc){ .oid = "ab", .etag = "\"e\"",
							       .size = 1 }, key, sizeof(key)), 0);
	CHECK_EQ_STR(key, "sha256:ab");
	CHECK_EQ_INT(lfsfs_cache_key(&(struct lfsfs_object_desc){ .etag = "\"e\"", .size = 12 }, key,
				     sizeof(key)), 0);
	CHECK_EQ_STR(key, "etag:12:\"e\"");
	CHECK_EQ_INT(lfsfs_cache_key(&(struct lfsfs_object_desc){ .etag = "\"e\"", .size = 12 }, key, 8),
		     -ENAMETOOLONG);

	CHECK_EQ_INT(origin_make(&g, "origin-err", 2 * MiB + 10, 7), 0);
	c = cache_open("c-err", 0, 1 * MiB, 0);
	if (!c)
		goto out;
	o = get_origin(c, &g);
	if (o) {
		/* a resolver failure is returned and not sticky */
		struct src bad = { g.url, 0, 1 }, good = { g.url, 0, 0 };
		char buf[16];
		/* no resolver at all: refused when a fetch is needed */
		CHECK_EQ_INT(lfsfs_object_read(o, NULL, buf, sizeof(buf), 0, NULL, NULL),
			     -LFSFS_ESOURCE_NOT_ACCESSIBLE);
		CHECK_EQ_INT(read_rc(o, 0, 10, &bad), -LFSFS_ESOURCE_NOT_ACCESSIBLE);
		CHECK_EQ_INT(calls(&bad), 1);
		CHECK_EQ_INT(read_rc(o, 0, 10, &bad), -LFSFS_ESOURCE_NOT_ACCESSIBLE);
		CHECK_EQ_INT(calls(&bad), 2);
		peek(c, &g, &info);
		CHECK_EQ_INT(info.error, 0);
		CHECK(read_ok(o, NULL, &g, 0, 10, &good));
		CHECK_EQ_INT(calls(&good), 1);
		/* ... and not needed for cached bytes */
		CHECK_EQ_INT(lfsfs_object_read(o, NULL, buf, sizeof(buf), 0, NULL, NULL), 16);
		CHECK(!memcmp(buf, g.data, sizeof(buf)));
		lfsfs_object_put(o);
	}

	/* a missing origin file is a (retryable) source error */
	{
		struct origin m;
		CHECK_EQ_INT(origin_make(&m, "origin-missing", 1 * MiB + 1, 8), 0);
		CHECK_EQ_INT(unlink(m.path), 0);
		struct src sm = { m.url, 0, 0 };
		o = get_origin(c, &m);
		if (o) {
			CHECK_EQ_INT(read_rc(o, 0, 10, &sm), -LFSFS_ESOURCE_NOT_ACCESSIBLE);
			peek(c, &m, &info);
			CHECK_EQ_INT(info.error, 0);
			/* the file appears: the next read works */
			CHECK_EQ_INT(write_file(m.path, m.data, m.size), 0);
			CHECK(read_all_ok(o, &m, 256 * KiB, &sm));
			peek(c, &m, &info);
			CHECK_EQ_INT(info.state, LFSFS_STATE_VERIFIED);
			lfsfs_object_put(o);
		}
		origin_free(&m);
	}

	/* the origin is not the size the pointer says: SIZE_MISMATCH, sticky */
	{
		char oid[65];
		struct src ss = { g.url, 0, 0 };
		struct lfsfs_object_desc d;
		sha256_hex("size", 4, oid);
		d = (struct lfsfs_object_desc){ .oid = oid, .size = g.size - 1 };
		o = get_obj(c, &d);
		if (o) {
			CHECK_EQ_INT(read_rc(o, 0, 10, &ss), -LFSFS_ESIZE_MISMATCH);
			CHECK_EQ_INT(read_rc(o, 0, 10, &ss), -LFSFS_ESIZE_MISMATCH);
			lfsfs_cache_peek(c, &d, &info);
			CHECK_EQ_INT(info.error, -LFSFS_ESIZE_MISMATCH);
			lfsfs_object_put(o);
		}
	}

	/* a URL scheme nobody serves */
	{
		char oid[65];
		struct src su = { "gopher://example.invalid/x", 0, 0 };
		struct lfsfs_object_desc d;
		sha256_hex("scheme", 6, oid);
		d = (struct lfsfs_object_desc){ .oid = oid, .size = 100 };
		o = get_obj(c, &d);
		if (o) {
			CHECK_EQ_INT(read_rc(o, 0, 10, &su), -LFSFS_EUNSUPPORTED);
			lfsfs_object_put(o);
		}
	}

	/* an empty object reads as EOF without a source */
	{
		char oid[65], buf[4];
		sha256_hex("", 0, oid);
		o = get_obj(c, &(struct lfsfs_object_desc){ .oid = oid, .size = 0 });
		if (o) {
			CHECK_EQ_INT(lfsfs_object_read(o, NULL, buf, sizeof(buf), 0, NULL, NULL), 0);
			lfsfs_object_put(o);
		}
	}
	lfsfs_cache_close(c);
out:
	origin_free(&g);
}

/* ---- etag-keyed objects: sha256 computed, then shared by oid ---- */

static void test_etag_keyed(void)
{
	struct origin g;
	struct src s = { NULL, 0, 0 };
	struct lfsfs_cache *c;
	struct lfsfs_object *o, *o2;
	struct lfsfs_object_info info;
	struct lfsfs_object_desc d;

	CHECK_EQ_INT(origin_make(&g, "origin-etag", 1 * MiB + 999, 9), 0);
	s.url = g.url;
	c = cache_open("c-etag", 0, 256 * KiB, 0);
	if (!c)
		goto out;
	d = (struct lfsfs_object_desc){ .etag = "\"meta-etag-1\"", .size = g.size };
	o = get_obj(c, &d);
	if (o) {
		CHECK(read_all_ok(o, &g, 300 * KiB, &s));
		lfsfs_cache_peek(c, &d, &info);
		CHECK_EQ_INT(info.state, LFSFS_STATE_VERIFIED);
		CHECK_EQ_STR(info.sha256, g.oid);
		CHECK_EQ_STR(info.key, "etag:1049575:\"meta-etag-1\"");
		CHECK_EQ_INT(lfsfs_cache_flush(c), 0);
		/* the same bytes by sha256 are the same object (alias) */
		o2 = get_origin(c, &g);
		CHECK(o2 == o);
		if (o2) {
			struct src nos = { g.url, 0, 1 };
			CHECK(read_ok(o2, NULL, &g, 5, 1 * MiB, &nos));
			CHECK_EQ_INT(calls(&nos), 0);
			lfsfs_object_put(o2);
		}
		lfsfs_object_put(o);
	}
	lfsfs_cache_close(c);
out:
	origin_free(&g);
}

/* ---- eviction ---- */

static void test_eviction(void)
{
	struct origin g[3];
	struct src s[3];
	struct lfsfs_cache *c;
	struct lfsfs_cache_stats st;
	const uint64_t limit = 4 * MiB;
	int ok, i, waited;

	for (i = 0; i < 3; i++) {
		char name[32];
		snprintf(name, sizeof(name), "origin-ev%d", i);
		CHECK_EQ_INT(origin_make(&g[i], name, 3 * MiB, 20 + (uint64_t)i), 0);
		s[i] = (struct src){ g[i].url, 0, 0 };
	}
	c = cache_open("c-ev", limit, 1 * MiB, 50);
	if (!c)
		goto out;
	for (i = 0; i < 3; i++) {
		struct lfsfs_object *o = get_origin(c, &g[i]);
		if (!o)
			continue;
		CHECK(read_all_ok(o, &g[i], 512 * KiB, &s[i]));
		lfsfs_object_put(o);
	}
	/* the flusher evicts down to the limit */
	for (waited = 0; waited < 2000; waited += 20) {
		lfsfs_cache_get_stats(c, &st);
		if (st.cached_bytes <= limit && data_disk_usage("c-ev") <= limit)
			break;
		sleep_ms(20);
	}
	lfsfs_cache_get_stats(c, &st);
	CHECK(st.cached_bytes <= limit);
	CHECK(st.cached_bytes > 0);
	CHECK_EQ_INT(st.limit, limit);
	/* and the disk really shrank */
	CHECK(data_disk_usage("c-ev") <= limit);
	if (st.cached_bytes > limit)
		fprintf(stderr, "  cached %" PRIu64 " > limit %" PRIu64 "\n", st.cached_bytes, limit);

	/* everything still reads back right (refetched as needed) */
	ok = 1;
	for (i = 2; i >= 0; i--) {
		struct lfsfs_object *o = get_origin(c, &g[i]);
		if (!o)
			continue;
		ok &= read_all_ok(o, &g[i], 1 * MiB + 1, &s[i]);
		/* and random pieces of it */
		uint64_t rs = 99 + (uint64_t)i;
		for (int k = 0; k < 10; k++)
			ok &= read_ok(o, NULL, &g[i], rng_below(&rs, g[i].size), 1 + (size_t)rng_below(&rs, 2 * MiB),
				      &s[i]);
		lfsfs_object_put(o);
	}
	CHECK(ok);
	/* the resolver was asked again only for objects that were dropped */
	for (i = 0; i < 3; i++)
		CHECK(calls(&s[i]) >= 1 && calls(&s[i]) <= 2);
	for (waited = 0; waited < 2000; waited += 20) {
		lfsfs_cache_get_stats(c, &st);
		if (st.cached_bytes <= limit)
			break;
		sleep_ms(20);
	}
	CHECK(st.cached_bytes <= limit);
	lfsfs_cache_close(c);
	{
		char dir[4200];
		snprintf(dir, sizeof(dir), "%s/c-ev", root);
		CHECK_EQ_INT(lfsfs_cache_offline_stats(dir, &st), 0);
		CHECK(st.cached_bytes <= limit);
		CHECK(st.objects >= 1 && st.objects <= 3);
	}
	/* a reopened cache has the same view and still evicts correctly */
	c = cache_open("c-ev", limit, 1 * MiB, 50);
	if (c) {
		lfsfs_cache_get_stats(c, &st);
		CHECK(st.cached_bytes <= limit);
		ok = 1;
		for (i = 0; i < 3; i++) {
			struct lfsfs_object *o = get_origin(c, &g[i]);
			if (!o)
				continue;
			ok &= read_all_ok(o, &g[i], 700 * KiB, &s[i]);
			lfsfs_object_put(o);
		}
		CHECK(ok);
		lfsfs_cache_close(c);
	}
out:
	for (i = 0; i < 3; i++)
		origin_free(&g[i]);
}

/* ---- concurrency ---- */

struct worker {
	pthread_t th;
	struct lfsfs_object *o;
	const struct origin *g;
	struct src *s;
	pthread_barrier_t *bar;
	uint64_t seed;
	int mode;         /* 0: random ranges, 1: whole object sequentially */
	int nreads;
	int bad;          /* failed reads */
};

static void *worker_main(void *p)
{
	struct worker *w = p;
	struct lfsfs_reader rd = { .next_off = 0 };
	uint64_t rs = w->seed;

	pthread_barrier_wait(w->bar);
	if (w->mode == 1) {
		size_t chunk = 64 * KiB + (size_t)rng_below(&rs, 128 * KiB);
		for (uint64_t off = 0; off < w->g->size; off += chunk) {
			w->bad += !read_ok(w->o, &rd, w->g, off, chunk, w->s);
			w->nreads++;
		}
		return NULL;
	}
	for (int i = 0; i < 120; i++) {
		uint64_t off = rng_below(&rs, w->g->size + 64 * KiB);
		size_t len = 1 + (size_t)rng_below(&rs, i % 8 == 0 ? 1 * MiB : 200 * KiB);
		/* now and then a sequential run, to grow a readahead window */
		int run = i % 10 == 0 ? 4 : 1;
		for (int k = 0; k < run; k++, off += len) {
			w->bad += !read_ok(w->o, (i & 1) ? &rd : NULL, w->g, off, len, w->s);
			w->nreads++;
		}
	}
	return NULL;
}

static void run_workers(struct lfsfs_object *o, const struct origin *g, struct src *s, int mode,
			uint64_t seed, int *bad, int *nreads)
{
	enum { N = 8 };
	struct worker w[N];
	pthread_barrier_t bar;
	int started = 0;

	*bad = 0;
	*nreads = 0;
	pthread_barrier_init(&bar, NULL, N);
	for (int i = 0; i < N; i++) {
		w[i] = (struct worker){ .o = o, .g = g, .s = s, .bar = &bar,
					.seed = seed * 131 + (uint64_t)i + 1, .mode = mode };
		if (pthread_create(&w[i].th, NULL, worker_main, &w[i]))
			abort(); /* the others would wait at the barrier forever */
		started++;
	}
	CHECK_EQ_INT(started, N);
	for (int i = 0; i < started; i++) {
		pthread_join(w[i].th, NULL);
		*bad += w[i].bad;
		*nreads += w[i].nreads;
	}
	pthread_barrier_destroy(&bar);
}

static void test_concurrency(void)
{
	struct origin g1, g2, g3;
	struct src s1 = { NULL, 0, 0 }, s2 = { NULL, 0, 0 }, s3 = { NULL, 0, 0 };
	struct lfsfs_cache *c;
	struct lfsfs_object *o;
	struct lfsfs_object_info info;
	struct lfsfs_cache_stats st;
	int bad, n;

	CHECK_EQ_INT(origin_make(&g1, "origin-mt1", 6 * MiB + 333, 30), 0);
	CHECK_EQ_INT(origin_make(&g2, "origin-mt2", 5 * MiB + 17, 31), 0);
	CHECK_EQ_INT(origin_make(&g3, "origin-mt3", 6 * MiB + 5, 32), 0);
	s1.url = g1.url;
	s2.url = g2.url;
	s3.url = g3.url;

	c = cache_open("c-mt", 0, 64 * KiB, 20);
	if (!c)
		goto out;
	/* 8 threads, random ranges of one cold object */
	o = get_origin(c, &g1);
	if (o) {
		run_workers(o, &g1, &s1, 0, 1, &bad, &n);
		CHECK_EQ_INT(bad, 0);
		CHECK(n >= 8 * 120);
		CHECK_EQ_INT(calls(&s1), 1);
		CHECK(read_all_ok(o, &g1, 1 * MiB, &s1));
		peek(c, &g1, &info);
		CHECK_EQ_INT(info.state, LFSFS_STATE_VERIFIED);
		CHECK_EQ_INT(info.cached_bytes, g1.size);
		lfsfs_object_put(o);
	}
	/* 8 threads reading a whole cold object at once: the read that
	 * completes it waits for the verdict, so it is verified at the end */
	o = get_origin(c, &g2);
	if (o) {
		run_workers(o, &g2, &s2, 1, 2, &bad, &n);
		CHECK_EQ_INT(bad, 0);
		CHECK_EQ_INT(calls(&s2), 1);
		peek(c, &g2, &info);
		CHECK_EQ_INT(info.state, LFSFS_STATE_VERIFIED);
		CHECK_EQ_INT(info.cached_bytes, g2.size);
		lfsfs_object_put(o);
	}
	lfsfs_cache_get_stats(c, &st);
	CHECK_EQ_INT(st.verified, 2);
	CHECK_EQ_INT(st.cached_bytes, g1.size + g2.size);
	lfsfs_cache_close(c);

	/* 8 threads on an object larger than the cache limit: eviction runs
	 * under the readers, every byte must still be right (a block refetched
	 * while evict_blocks() punched it used to be served as zeros). */
	if (!known_bugs) {
		fprintf(stderr, "note: concurrent read+eviction test skipped "
			"(set LFSFS_TEST_KNOWN_BUGS=1)\n");
		goto out;
	}
	c = cache_open("c-mt-ev", 2 * MiB, 64 * KiB, 10);
	if (!c)
		goto out;
	o = get_origin(c, &g3);
	if (o) {
		run_workers(o, &g3, &s3, 0, 3, &bad, &n);
		CHECK_EQ_INT(bad, 0);
		run_workers(o, &g3, &s3, 1, 4, &bad, &n);
		CHECK_EQ_INT(bad, 0);
		peek(c, &g3, &info);
		CHECK_EQ_INT(info.error, 0);
		lfsfs_object_put(o);
	}
	for (int waited = 0; waited < 2000; waited += 20) {
		lfsfs_cache_get_stats(c, &st);
		if (st.cached_bytes <= 2 * MiB)
			break;
		sleep_ms(20);
	}
	CHECK(st.cached_bytes <= 2 * MiB);
	lfsfs_cache_close(c);
out:
	origin_free(&g1);
	origin_free(&g2);
	origin_free(&g3);
}

/* ---- many objects dirtied while the flusher runs ----
 * Known bug (see the report): lfsfs_cache_flush() walks its detached dirty
 * list through o->dirty_next after clearing o->on_dirty_list, so a
 * concurrent lfsfs__object_mark_dirty() can redirect the walk into the new
 * list: objects are skipped (never persisted) or processed twice. */

#define FLUSH_NOBJ 300
#define FLUSH_BS (4u * 1024u)

struct flush_worker {
	pthread_t th;
	struct lfsfs_cache *c;
	struct origin *g;
	pthread_barrier_t *bar;
	uint64_t seed;
	int bad;
};

static void *flush_worker_main(void *p)
{
	struct flush_worker *w = p;
	uint64_t rs = w->seed;

	pthread_barrier_wait(w->bar);
	for (int k = 0; k < FLUSH_NOBJ; k++) {
		struct origin *g = &w->g[(k * 7 + (int)rng_below(&rs, 3) + (int)w->seed * 37) %
					 FLUSH_NOBJ];
		struct lfsfs_object_desc d = desc_of(g);
		struct lfsfs_object *o = NULL;
		struct src s = { g->url, 0, 0 };
		if (lfsfs_cache_get(w->c, &d, &o)) {
			w->bad++;
			continue;
		}
		for (uint64_t off = 0; off < g->size; off += FLUSH_BS)
			w->bad += !read_ok(o, NULL, g, off, FLUSH_BS, &s);
		lfsfs_object_put(o);
	}
	return NULL;
}

static void test_flush_race(void)
{
	enum { N = 16 };
	struct origin *g = calloc(FLUSH_NOBJ, sizeof(*g));
	struct flush_worker w[N];
	struct lfsfs_cache *c;
	struct lfsfs_cache_stats st;
	pthread_barrier_t bar;
	char dir[4200];
	int bad = 0, i;

	if (!known_bugs) {
		fprintf(stderr, "note: flush-list race test skipped (set LFSFS_TEST_KNOWN_BUGS=1)\n");
		free(g);
		return;
	}
	if (!g) {
		CHECK(g != NULL);
		return;
	}
	for (i = 0; i < FLUSH_NOBJ; i++) {
		char name[32];
		snprintf(name, sizeof(name), "origin-fl%d", i);
		CHECK_EQ_INT(origin_make(&g[i], name, 3 * FLUSH_BS + 1, 100 + (uint64_t)i), 0);
	}
	c = cache_open("c-flush", 0, FLUSH_BS, 1);
	if (!c)
		goto out;
	pthread_barrier_init(&bar, NULL, N);
	for (i = 0; i < N; i++) {
		w[i] = (struct flush_worker){ .c = c, .g = g, .bar = &bar, .seed = (uint64_t)i + 1 };
		if (pthread_create(&w[i].th, NULL, flush_worker_main, &w[i]))
			abort(); /* the others would wait at the barrier forever */
	}
	for (i = 0; i < N; i++) {
		pthread_join(w[i].th, NULL);
		bad += w[i].bad;
	}
	pthread_barrier_destroy(&bar);
	CHECK_EQ_INT(bad, 0);
	lfsfs_cache_get_stats(c, &st);
	CHECK_EQ_INT(st.objects, FLUSH_NOBJ);
	CHECK_EQ_INT(st.verified, FLUSH_NOBJ);
	lfsfs_cache_close(c);
	/* everything read must have been committed by close */
	snprintf(dir, sizeof(dir), "%s/c-flush", root);
	CHECK_EQ_INT(lfsfs_cache_offline_stats(dir, &st), 0);
	CHECK_EQ_INT(st.objects, FLUSH_NOBJ);
	CHECK_EQ_INT(st.verified, FLUSH_NOBJ);
	CHECK_EQ_INT(st.cached_bytes, (uint64_t)FLUSH_NOBJ * (3 * FLUSH_BS + 1));
out:
	for (i = 0; i < FLUSH_NOBJ; i++)
		origin_free(&g[i]);
	free(g);
}

/* ---- zero-length reads (used to overflow the bitmap or leave a pin) ----
 * Each case runs in a child so a heap overflow or a hang cannot take the
 * other tests down. */

#define ZB_BADRC 1     /* did not return 0 */
#define ZB_FETCHED 2   /* fetched bytes for a zero-length read */
#define ZB_RESOLVED 4  /* asked the resolver */
#define ZB_PINNED 8    /* left data_lock read-held (eviction would hang) */
#define ZB_SETUP 100

static int zero_read_child(const struct origin *g, const char *dir, uint64_t off, int pin)
{
	struct src s = { g->url, 0, 0 };
	struct lfsfs_cache *c = cache_open(dir, 0, 1 * MiB, 0);
	struct lfsfs_object *o;
	struct lfsfs_object_info info;
	char buf[1];
	ssize_t n;
	int res = 0;

	if (!c || !(o = get_origin(c, g)))
		return ZB_SETUP;
	alarm(20);
	n = pin ? lfsfs_object_pin(o, NULL, 0, off, resolve_cb, &s)
		: lfsfs_object_read(o, NULL, buf, 0, off, resolve_cb, &s);
	if (n != 0)
		res |= ZB_BADRC;
	if (n > 0)
		lfsfs_object_unpin(o);
	peek(c, g, &info);
	if (info.cached_bytes)
		res |= ZB_FETCHED;
	if (calls(&s))
		res |= ZB_RESOLVED;
	/* "0 at EOF (nothing pinned)": an evictor must be able to take it */
	if (pthread_rwlock_trywrlock(&o->data_lock))
		res |= ZB_PINNED;
	else
		pthread_rwlock_unlock(&o->data_lock);
	return res;
}

static void test_zero_length_read(void)
{
	static const struct { uint64_t off; int pin; } cases[] = {
		{ 100, 0 }, { 1 * MiB, 0 }, { 100, 1 }, { 0, 0 },
	};
	struct origin g;

	if (!known_bugs) {
		fprintf(stderr, "note: zero-length read test skipped (set LFSFS_TEST_KNOWN_BUGS=1)\n");
		return;
	}
	CHECK_EQ_INT(origin_make(&g, "origin-zero", 5 * MiB + 123, 40), 0);
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		char dir[64];
		int status = 0, res;
		pid_t pid;

		snprintf(dir, sizeof(dir), "c-zero%zu", k);
		fflush(NULL);
		pid = fork();
		if (pid == 0)
			_exit(zero_read_child(&g, dir, cases[k].off, cases[k].pin));
		CHECK(pid > 0);
		if (pid <= 0)
			continue;
		CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
		if (!WIFEXITED(status)) {
			fprintf(stderr, "  zero-length %s at offset %" PRIu64 ": child killed by "
				"signal %d\n", cases[k].pin ? "pin" : "read", cases[k].off,
				WIFSIGNALED(status) ? WTERMSIG(status) : 0);
			CHECK(WIFEXITED(status));
			continue;
		}
		res = WEXITSTATUS(status);
		if (res)
			fprintf(stderr, "  zero-length %s at offset %" PRIu64 ": %s%s%s%s%s\n",
				cases[k].pin ? "pin" : "read", cases[k].off,
				res == ZB_SETUP ? "setup failed" : "",
				res != ZB_SETUP && (res & ZB_BADRC) ? "did not return 0; " : "",
				res != ZB_SETUP && (res & ZB_FETCHED) ? "fetched bytes; " : "",
				res != ZB_SETUP && (res & ZB_RESOLVED) ? "resolved a URL; " : "",
				res != ZB_SETUP && (res & ZB_PINNED) ? "left the data lock held" : "");
		CHECK_EQ_INT(res, 0);
	}
	origin_free(&g);
}

/* ---- the zero-copy form: pin / fd / unpin ---- */

static void test_pin(void)
{
	struct origin g, gb;
	struct src s = { NULL, 0, 0 };
	struct lfsfs_cache *c;
	struct lfsfs_object *o;
	char wrong[65];

	CHECK_EQ_INT(origin_make(&g, "origin-pin", 2 * MiB + 9, 50), 0);
	CHECK_EQ_INT(origin_make(&gb, "origin-pinbad", 1 * MiB + 9, 51), 0);
	s.url = g.url;
	c = cache_open("c-pin", 0, 1 * MiB, 0);
	if (!c)
		goto out;
	o = get_origin(c, &g);
	if (o) {
		char *buf = malloc(2 * MiB);
		ssize_t n;

		CHECK_EQ_INT(lfsfs_object_verified(o), 0);
		n = lfsfs_object_pin(o, NULL, 1000, 1 * MiB - 500, resolve_cb, &s);
		CHECK_EQ_INT(n, 1000);
		if (n > 0) {
			CHECK(lfsfs_object_fd(o) >= 0);
			/* pinned: an evictor cannot take the data lock */
			CHECK(pthread_rwlock_trywrlock(&o->data_lock) != 0);
			CHECK(buf && pread(lfsfs_object_fd(o), buf, 1000, 1 * MiB - 500) == 1000 &&
			      !memcmp(buf, g.data + 1 * MiB - 500, 1000));
			lfsfs_object_unpin(o);
			CHECK(pthread_rwlock_trywrlock(&o->data_lock) == 0);
			pthread_rwlock_unlock(&o->data_lock);
		}
		/* short at EOF; 0 (nothing pinned) at and past EOF */
		n = lfsfs_object_pin(o, NULL, 1 * MiB, 2 * MiB, resolve_cb, &s);
		CHECK_EQ_INT(n, 9);
		if (n > 0)
			lfsfs_object_unpin(o);
		CHECK_EQ_INT(lfsfs_object_pin(o, NULL, 10, g.size, resolve_cb, &s), 0);
		CHECK_EQ_INT(lfsfs_object_pin(o, NULL, 10, g.size + 10, resolve_cb, &s), 0);
		CHECK(pthread_rwlock_trywrlock(&o->data_lock) == 0);
		pthread_rwlock_unlock(&o->data_lock);
		/* the pin that completes the object verifies it first */
		n = lfsfs_object_pin(o, NULL, 2 * MiB, 0, resolve_cb, &s);
		CHECK_EQ_INT(n, 2 * MiB);
		CHECK_EQ_INT(lfsfs_object_verified(o), 1);
		if (n > 0) {
			CHECK(buf && pread(lfsfs_object_fd(o), buf, 2 * MiB, 0) == (ssize_t)(2 * MiB) &&
			      !memcmp(buf, g.data, 2 * MiB));
			lfsfs_object_unpin(o);
		}
		CHECK_EQ_INT(calls(&s), 1);
		free(buf);
		lfsfs_object_put(o);
	}
	/* a pin that completes an object with the wrong oid fails, unpinned */
	sha256_hex("pin", 3, wrong);
	o = get_obj(c, &(struct lfsfs_object_desc){ .oid = wrong, .size = gb.size });
	if (o) {
		struct src sb = { gb.url, 0, 0 };
		CHECK_EQ_INT(lfsfs_object_pin(o, NULL, gb.size, 0, resolve_cb, &sb),
			     -LFSFS_ECHECKSUM_MISMATCH);
		CHECK(pthread_rwlock_trywrlock(&o->data_lock) == 0);
		pthread_rwlock_unlock(&o->data_lock);
		CHECK_EQ_INT(lfsfs_object_pin(o, NULL, 10, 0, resolve_cb, &sb),
			     -LFSFS_ECHECKSUM_MISMATCH);
		CHECK_EQ_INT(lfsfs_object_verified(o), 0);
		lfsfs_object_put(o);
	}
	lfsfs_cache_close(c);
out:
	origin_free(&g);
	origin_free(&gb);
}

int main(void)
{
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	lfsfs_store_init(&store, NULL, NULL);
	known_bugs = 1; /* the bugs are fixed: these checks always run */
	/* the failures provoked here are logged as errors by design; a failed
	 * CHECK prints the per-thread message instead.  LFSFS_TEST_LOG=1 shows
	 * the log. */
	if (!getenv("LFSFS_TEST_LOG"))
		lfsfs_log_set_level(-1);
	test_zero_length_read();
	test_read_verify();
	test_pin();
	test_checksum_mismatch();
	test_immutability();
	test_errors();
	test_etag_keyed();
	test_eviction();
	test_concurrency();
	test_flush_race();
	lfsfs_store_release(&store);
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return TEST_RESULT();
}
