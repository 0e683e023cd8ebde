/* Unit tests for the LMDB cache index (src/index/index.c). */
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index/index.h"
#include "lfsfs/error.h"
#include "test.h"

static char root[] = "/tmp/lfsfs-test-index.XXXXXX";
static char ixdir[4096];

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(p);
	return 0;
}

static void fill_rec(struct lfsfs_objrec *r, uint64_t seed)
{
	memset(r, 0, sizeof(*r)); /* pad bytes too, so memcmp is meaningful */
	r->version = 1;
	r->flags = LFSFS_OBJ_VERIFIED;
	r->size = 0x123456789abcull + seed;
	r->block_size = 1u << 20;
	r->reserved = 0;
	r->cached_bytes = 0xfedcba987ull + seed;
	r->atime = 1700000000ull + seed;
	r->etag_src = 0x8877665544332211ull ^ seed;
	/* a maximum-length ETag (159 chars + NUL) */
	memset(r->etag, 'a' + (int)(seed % 26), sizeof(r->etag) - 1);
	r->etag[0] = '"';
	r->etag[sizeof(r->etag) - 2] = '"';
	for (int i = 0; i < 64; i++)
		r->sha256[i] = "0123456789abcdef"[(i + seed) % 16];
	r->sha256[64] = '\0';
}

static int put_obj(struct lfsfs_index *ix, const char *key, const struct lfsfs_objrec *r)
{
	struct lfsfs_index_txn *t;
	int rc = lfsfs_index_begin(ix, 1, &t);

	if (rc)
		return rc;
	rc = lfsfs_index_put_obj(t, key, r);
	if (rc) {
		lfsfs_index_abort(t);
		return rc;
	}
	return lfsfs_index_commit(t);
}

static int get_obj(struct lfsfs_index *ix, const char *key, struct lfsfs_objrec *r)
{
	struct lfsfs_index_txn *t;
	int rc = lfsfs_index_begin(ix, 0, &t);

	if (rc)
		return rc;
	rc = lfsfs_index_get_obj(t, key, r);
	lfsfs_index_abort(t);
	return rc;
}

static int get_bits(struct lfsfs_index *ix, const char *key, uint8_t *bits, size_t n)
{
	struct lfsfs_index_txn *t;
	int rc = lfsfs_index_begin(ix, 0, &t);

	if (rc)
		return rc;
	rc = lfsfs_index_get_bits(t, key, bits, n);
	lfsfs_index_abort(t);
	return rc;
}

static int put_page(struct lfsfs_index *ix, const char *key, uint32_t page, const uint8_t *d,
		    size_t len)
{
	struct lfsfs_index_txn *t;
	int rc = lfsfs_index_begin(ix, 1, &t);

	if (rc)
		return rc;
	rc = lfsfs_index_put_bits_page(t, key, page, d, len);
	if (rc) {
		lfsfs_index_abort(t);
		return rc;
	}
	return lfsfs_index_commit(t);
}

static int del_obj(struct lfsfs_index *ix, const char *key)
{
	struct lfsfs_index_txn *t;
	int rc = lfsfs_index_begin(ix, 1, &t);

	if (rc)
		return rc;
	rc = lfsfs_index_del_obj(t, key);
	if (rc) {
		lfsfs_index_abort(t);
		return rc;
	}
	return lfsfs_index_commit(t);
}

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/* A page whose every byte is pattern; distinguishes pages and keys. */
static void pattern_page(uint8_t *p, uint8_t v)
{
	memset(p, v, LFSFS_BITS_PAGE);
	p[0] = (uint8_t)(v ^ 0x5a);
	p[LFSFS_BITS_PAGE - 1] = (uint8_t)(v ^ 0xa5);
}

/* ---- object records ---- */

static void test_objrec(struct lfsfs_index *ix)
{
	struct lfsfs_objrec in, out;
	struct lfsfs_index_txn *t;

	fill_rec(&in, 7);
	CHECK_EQ_INT(put_obj(ix, "sha256:0001", &in), 0);
	memset(&out, 0xee, sizeof(out));
	CHECK_EQ_INT(get_obj(ix, "sha256:0001", &out), 0);
	CHECK_EQ_INT(out.version, 1);
	CHECK_EQ_INT(out.flags, LFSFS_OBJ_VERIFIED);
	CHECK(out.size == in.size);
	CHECK_EQ_INT(out.block_size, 1u << 20);
	CHECK_EQ_INT(out.reserved, 0);
	CHECK(out.cached_bytes == in.cached_bytes);
	CHECK(out.atime == in.atime);
	CHECK(out.etag_src == in.etag_src);
	CHECK_EQ_STR(out.etag, in.etag);
	CHECK_EQ_INT(strlen(out.etag), sizeof(out.etag) - 1);
	CHECK_EQ_STR(out.sha256, in.sha256);
	CHECK(memcmp(&in, &out, sizeof(in)) == 0);

	/* overwrite replaces the record */
	fill_rec(&in, 8);
	in.flags = 0;
	in.etag[0] = '\0';
	CHECK_EQ_INT(put_obj(ix, "sha256:0001", &in), 0);
	CHECK_EQ_INT(get_obj(ix, "sha256:0001", &out), 0);
	CHECK_EQ_INT(out.flags, 0);
	CHECK_EQ_STR(out.etag, "");
	CHECK(out.size == in.size);
	CHECK(memcmp(&in, &out, sizeof(in)) == 0);

	/* missing keys, including prefixes and extensions of a present key */
	memset(&out, 0, sizeof(out));
	CHECK_EQ_INT(get_obj(ix, "sha256:0002", &out), -ENOENT);
	CHECK_EQ_INT(get_obj(ix, "sha256:000", &out), -ENOENT);
	CHECK_EQ_INT(get_obj(ix, "sha256:00011", &out), -ENOENT);
	/* an empty key is not a valid LMDB key: an error, not a record */
	CHECK(get_obj(ix, "", &out) < 0);

	/* an unknown record version reads as absent (documented) */
	fill_rec(&in, 9);
	in.version = 2;
	CHECK_EQ_INT(put_obj(ix, "etag:5:\"v2\"", &in), 0);
	CHECK_EQ_INT(get_obj(ix, "etag:5:\"v2\"", &out), -ENOENT);

	/* a record without its NUL terminators is terminated on read */
	fill_rec(&in, 10);
	memset(in.etag, 'x', sizeof(in.etag));
	memset(in.sha256, 'f', sizeof(in.sha256));
	CHECK_EQ_INT(put_obj(ix, "etag:6:\"unterminated\"", &in), 0);
	CHECK_EQ_INT(get_obj(ix, "etag:6:\"unterminated\"", &out), 0);
	CHECK_EQ_INT(strlen(out.etag), sizeof(out.etag) - 1);
	CHECK_EQ_INT(strlen(out.sha256), 64);

	/* several operations in one write transaction, read back in it */
	CHECK_EQ_INT(lfsfs_index_begin(ix, 1, &t), 0);
	fill_rec(&in, 11);
	CHECK_EQ_INT(lfsfs_index_put_obj(t, "sha256:0003", &in), 0);
	CHECK_EQ_INT(lfsfs_index_get_obj(t, "sha256:0003", &out), 0);
	CHECK(out.size == in.size);
	CHECK_EQ_INT(lfsfs_index_commit(t), 0);
	CHECK_EQ_INT(get_obj(ix, "sha256:0003", &out), 0);

	/* clean up for the foreach test */
	CHECK_EQ_INT(del_obj(ix, "sha256:0001"), 0);
	CHECK_EQ_INT(del_obj(ix, "sha256:0003"), 0);
	CHECK_EQ_INT(del_obj(ix, "etag:5:\"v2\""), 0);
	CHECK_EQ_INT(del_obj(ix, "etag:6:\"unterminated\""), 0);
	CHECK_EQ_INT(get_obj(ix, "sha256:0001", &out), -ENOENT);
}

/* ---- bitmap pages ---- */

static void test_bits(struct lfsfs_index *ix)
{
	const char *key = "sha256:bits";
	uint8_t p0[LFSFS_BITS_PAGE], p3[LFSFS_BITS_PAGE];
	size_t n4 = 4 * LFSFS_BITS_PAGE;
	uint8_t *buf = malloc(6 * LFSFS_BITS_PAGE);

	if (!buf) {
		CHECK(buf != NULL);
		return;
	}
	/* sparse bits: blocks 0, 7, 8191 of page 0; blocks 3*8192+5 and the
	 * last bit of page 3 */
	memset(p0, 0, sizeof(p0));
	p0[0] = 0x81;
	p0[LFSFS_BITS_PAGE - 1] = 0x80;
	memset(p3, 0, sizeof(p3));
	p3[0] = 0x20;
	p3[LFSFS_BITS_PAGE - 1] = 0x80;
	CHECK_EQ_INT(put_page(ix, key, 0, p0, sizeof(p0)), 0);
	CHECK_EQ_INT(put_page(ix, key, 3, p3, sizeof(p3)), 0);

	/* nothing stored yet for another key: all zero, even over garbage */
	memset(buf, 0xff, n4);
	CHECK_EQ_INT(get_bits(ix, "sha256:nothing", buf, n4), 0);
	CHECK(all_zero(buf, n4));

	/* exactly the right size */
	memset(buf, 0xff, n4);
	CHECK_EQ_INT(get_bits(ix, key, buf, n4), 0);
	CHECK(memcmp(buf, p0, LFSFS_BITS_PAGE) == 0);
	CHECK(all_zero(buf + LFSFS_BITS_PAGE, 2 * LFSFS_BITS_PAGE));
	CHECK(memcmp(buf + 3 * LFSFS_BITS_PAGE, p3, LFSFS_BITS_PAGE) == 0);
	{
		size_t bits = 0;
		for (size_t i = 0; i < n4 * 8; i++)
			bits += (buf[i >> 3] >> (i & 7)) & 1;
		CHECK_EQ_INT(bits, 5);
		CHECK((buf[0] & 1) && ((buf[0] >> 7) & 1));
		CHECK((buf[(8191) >> 3] >> (8191 & 7)) & 1);
		CHECK((buf[(3 * 8192 + 5) >> 3] >> ((3 * 8192 + 5) & 7)) & 1);
		CHECK((buf[(4 * 8192 - 1) >> 3] >> ((4 * 8192 - 1) & 7)) & 1);
	}

	/* a larger buffer is zero past the last page */
	memset(buf, 0xff, 6 * LFSFS_BITS_PAGE);
	CHECK_EQ_INT(get_bits(ix, key, buf, 6 * LFSFS_BITS_PAGE), 0);
	CHECK(memcmp(buf + 3 * LFSFS_BITS_PAGE, p3, LFSFS_BITS_PAGE) == 0);
	CHECK(all_zero(buf + 4 * LFSFS_BITS_PAGE, 2 * LFSFS_BITS_PAGE));

	/* a shorter buffer gets the part of page 3 that fits, nothing past it
	 * (ASan would flag an overrun of this exact-size allocation) */
	{
		size_t n = 3 * LFSFS_BITS_PAGE + 10;
		uint8_t *small = malloc(n);
		if (small) {
			memset(small, 0xff, n);
			CHECK_EQ_INT(get_bits(ix, key, small, n), 0);
			CHECK(memcmp(small, p0, LFSFS_BITS_PAGE) == 0);
			CHECK(all_zero(small + LFSFS_BITS_PAGE, 2 * LFSFS_BITS_PAGE));
			CHECK(memcmp(small + 3 * LFSFS_BITS_PAGE, p3, 10) == 0);
			free(small);
		}
		/* and one that ends before page 3 ignores it */
		small = malloc(LFSFS_BITS_PAGE + 1);
		if (small) {
			memset(small, 0xff, LFSFS_BITS_PAGE + 1);
			CHECK_EQ_INT(get_bits(ix, key, small, LFSFS_BITS_PAGE + 1), 0);
			CHECK(memcmp(small, p0, LFSFS_BITS_PAGE) == 0);
			CHECK_EQ_INT(small[LFSFS_BITS_PAGE], 0);
			free(small);
		}
	}

	/* a short page is zero-padded; rewriting a page replaces it */
	{
		uint8_t shortp[3] = { 1, 2, 3 };
		CHECK_EQ_INT(put_page(ix, key, 3, shortp, sizeof(shortp)), 0);
		memset(buf, 0xff, n4);
		CHECK_EQ_INT(get_bits(ix, key, buf, n4), 0);
		CHECK(memcmp(buf, p0, LFSFS_BITS_PAGE) == 0);
		CHECK(memcmp(buf + 3 * LFSFS_BITS_PAGE, shortp, 3) == 0);
		CHECK(all_zero(buf + 3 * LFSFS_BITS_PAGE + 3, LFSFS_BITS_PAGE - 3));
		/* len > page is clamped to one page */
		uint8_t *big = calloc(1, 2 * LFSFS_BITS_PAGE);
		if (big) {
			memset(big, 0x11, 2 * LFSFS_BITS_PAGE);
			CHECK_EQ_INT(put_page(ix, key, 1, big, 2 * LFSFS_BITS_PAGE), 0);
			memset(buf, 0, n4);
			CHECK_EQ_INT(get_bits(ix, key, buf, n4), 0);
			CHECK(memcmp(buf + LFSFS_BITS_PAGE, big, LFSFS_BITS_PAGE) == 0);
			CHECK(all_zero(buf + 2 * LFSFS_BITS_PAGE, LFSFS_BITS_PAGE));
			free(big);
		}
	}

	/* high page numbers: big-endian page keys sort numerically, and a
	 * page beyond the buffer is ignored */
	{
		uint8_t pp[LFSFS_BITS_PAGE];
		pattern_page(pp, 0x42);
		CHECK_EQ_INT(put_page(ix, "etag:big", 256, pp, sizeof(pp)), 0);
		CHECK_EQ_INT(put_page(ix, "etag:big", 0x01000000u, pp, sizeof(pp)), 0);
		memset(buf, 0xff, n4);
		CHECK_EQ_INT(get_bits(ix, "etag:big", buf, n4), 0);
		CHECK(all_zero(buf, n4));
		CHECK_EQ_INT(del_obj(ix, "etag:big"), 0);
	}

	/* keys longer than LFSFS_KEY_MAX are refused for bitmaps */
	{
		char longkey[LFSFS_KEY_MAX + 2];
		memset(longkey, 'k', sizeof(longkey) - 1);
		longkey[sizeof(longkey) - 1] = '\0';
		CHECK_EQ_INT(put_page(ix, longkey, 0, p0, sizeof(p0)), -ENAMETOOLONG);
		CHECK_EQ_INT(get_bits(ix, longkey, buf, n4), -ENAMETOOLONG);
		CHECK_EQ_INT(del_obj(ix, longkey), -ENAMETOOLONG);
		/* exactly LFSFS_KEY_MAX is fine */
		longkey[LFSFS_KEY_MAX] = '\0';
		CHECK_EQ_INT(put_page(ix, longkey, 2, p0, sizeof(p0)), 0);
		memset(buf, 0xff, n4);
		CHECK_EQ_INT(get_bits(ix, longkey, buf, n4), 0);
		CHECK(memcmp(buf + 2 * LFSFS_BITS_PAGE, p0, LFSFS_BITS_PAGE) == 0);
		CHECK_EQ_INT(del_obj(ix, longkey), 0);
		CHECK_EQ_INT(get_bits(ix, longkey, buf, n4), 0);
		CHECK(all_zero(buf, n4));
	}

	CHECK_EQ_INT(del_obj(ix, key), 0);
	free(buf);
}

/* Keys that are prefixes of each other never see each other's pages. */
static void test_prefix_keys(struct lfsfs_index *ix)
{
	const char *ka = "sha256:ab", *kb = "sha256:abc", *kc = "sha256:abd";
	uint8_t pa[LFSFS_BITS_PAGE], pb[LFSFS_BITS_PAGE], pc[LFSFS_BITS_PAGE];
	size_t n = 8 * LFSFS_BITS_PAGE;
	uint8_t *buf = malloc(n);
	struct lfsfs_objrec r, out;

	if (!buf) {
		CHECK(buf != NULL);
		return;
	}
	pattern_page(pa, 0x0a);
	pattern_page(pb, 0x0b);
	pattern_page(pc, 0x0c);

	/* only the longer key has pages: the shorter one sees none */
	CHECK_EQ_INT(put_page(ix, kb, 0, pb, sizeof(pb)), 0);
	CHECK_EQ_INT(put_page(ix, kb, 1, pb, sizeof(pb)), 0);
	memset(buf, 0xff, n);
	CHECK_EQ_INT(get_bits(ix, ka, buf, n), 0);
	CHECK(all_zero(buf, n));
	CHECK_EQ_INT(get_bits(ix, "sha256:a", buf, n), 0);
	CHECK(all_zero(buf, n));

	/* the shorter key's pages, interleaved page numbers */
	for (uint32_t p = 0; p < 6; p += 2)
		CHECK_EQ_INT(put_page(ix, ka, p, pa, sizeof(pa)), 0);
	CHECK_EQ_INT(put_page(ix, kc, 5, pc, sizeof(pc)), 0);

	memset(buf, 0xff, n);
	CHECK_EQ_INT(get_bits(ix, ka, buf, n), 0);
	for (uint32_t p = 0; p < 8; p++) {
		if (p % 2 == 0 && p < 6)
			CHECK(memcmp(buf + p * LFSFS_BITS_PAGE, pa, LFSFS_BITS_PAGE) == 0);
		else
			CHECK(all_zero(buf + p * LFSFS_BITS_PAGE, LFSFS_BITS_PAGE));
	}
	memset(buf, 0xff, n);
	CHECK_EQ_INT(get_bits(ix, kb, buf, n), 0);
	CHECK(memcmp(buf, pb, LFSFS_BITS_PAGE) == 0);
	CHECK(memcmp(buf + LFSFS_BITS_PAGE, pb, LFSFS_BITS_PAGE) == 0);
	CHECK(all_zero(buf + 2 * LFSFS_BITS_PAGE, 6 * LFSFS_BITS_PAGE));
	memset(buf, 0xff, n);
	CHECK_EQ_INT(get_bits(ix, kc, buf, n), 0);
	CHECK(all_zero(buf, 5 * LFSFS_BITS_PAGE));
	CHECK(memcmp(buf + 5 * LFSFS_BITS_PAGE, pc, LFSFS_BITS_PAGE) == 0);
	CHECK(all_zero(buf + 6 * LFSFS_BITS_PAGE, 2 * LFSFS_BITS_PAGE));

	/* records for all three */
	fill_rec(&r, 1);
	CHECK_EQ_INT(put_obj(ix, ka, &r), 0);
	fill_rec(&r, 2);
	CHECK_EQ_INT(put_obj(ix, kb, &r), 0);
	fill_rec(&r, 3);
	CHECK_EQ_INT(put_obj(ix, kc, &r), 0);

	/* del_obj of the short key: its record and pages go, the others stay */
	CHECK_EQ_INT(del_obj(ix, ka), 0);
	CHECK_EQ_INT(get_obj(ix, ka, &out), -ENOENT);
	memset(buf, 0xff, n);
	CHECK_EQ_INT(get_bits(ix, ka, buf, n), 0);
	CHECK(all_zero(buf, n));
	CHECK_EQ_INT(get_obj(ix, kb, &out), 0);
	CHECK(out.size == 0x123456789abcull + 2);
	memset(buf, 0xff, n);
	CHECK_EQ_INT(get_bits(ix, kb, buf, n), 0);
	CHECK(memcmp(buf, pb, LFSFS_BITS_PAGE) == 0);
	CHECK(memcmp(buf + LFSFS_BITS_PAGE, pb, LFSFS_BITS_PAGE) == 0);
	memset(buf, 0xff, n);
	CHECK_EQ_INT(get_bits(ix, kc, buf, n), 0);
	CHECK(memcmp(buf + 5 * LFSFS_BITS_PAGE, pc, LFSFS_BITS_PAGE) == 0);

	/* deleting a missing key (or again) is fine */
	CHECK_EQ_INT(del_obj(ix, ka), 0);
	CHECK_EQ_INT(del_obj(ix, "sha256:never"), 0);

	/* del_obj of the long key leaves the last key (kc) alone */
	CHECK_EQ_INT(del_obj(ix, kb), 0);
	CHECK_EQ_INT(get_obj(ix, kb, &out), -ENOENT);
	memset(buf, 0xff, n);
	CHECK_EQ_INT(get_bits(ix, kb, buf, n), 0);
	CHECK(all_zero(buf, n));
	CHECK_EQ_INT(get_obj(ix, kc, &out), 0);
	memset(buf, 0xff, n);
	CHECK_EQ_INT(get_bits(ix, kc, buf, n), 0);
	CHECK(memcmp(buf + 5 * LFSFS_BITS_PAGE, pc, LFSFS_BITS_PAGE) == 0);

	/* deleting pages that are the last items in the table (cursor runs
	 * off the end) */
	for (uint32_t p = 0; p < 4; p++)
		CHECK_EQ_INT(put_page(ix, "zzz:last", p, pa, sizeof(pa)), 0);
	CHECK_EQ_INT(del_obj(ix, "zzz:last"), 0);
	memset(buf, 0xff, n);
	CHECK_EQ_INT(get_bits(ix, "zzz:last", buf, n), 0);
	CHECK(all_zero(buf, n));
	/* a key with pages but no record: del_obj still removes the pages */
	CHECK_EQ_INT(put_page(ix, "sha256:pagesonly", 1, pa, sizeof(pa)), 0);
	CHECK_EQ_INT(del_obj(ix, "sha256:pagesonly"), 0);
	memset(buf, 0xff, n);
	CHECK_EQ_INT(get_bits(ix, "sha256:pagesonly", buf, n), 0);
	CHECK(all_zero(buf, n));

	CHECK_EQ_INT(del_obj(ix, kc), 0);
	memset(buf, 0xff, n);
	CHECK_EQ_INT(get_bits(ix, kc, buf, n), 0);
	CHECK(all_zero(buf, n));
	free(buf);
}

/* ---- aliases ---- */

static void test_alias(struct lfsfs_index *ix)
{
	struct lfsfs_index_txn *t;
	char out[LFSFS_KEY_MAX + 1];
	const char *target = "etag:1234:\"abc-1\"";

	CHECK_EQ_INT(lfsfs_index_begin(ix, 1, &t), 0);
	CHECK_EQ_INT(lfsfs_index_put_alias(t, "sha256:aaaa", target), 0);
	CHECK_EQ_INT(lfsfs_index_put_alias(t, "sha256:bbbb", "etag:1:x"), 0);
	CHECK_EQ_INT(lfsfs_index_commit(t), 0);

	CHECK_EQ_INT(lfsfs_index_begin(ix, 0, &t), 0);
	memset(out, 'Z', sizeof(out));
	CHECK_EQ_INT(lfsfs_index_get_alias(t, "sha256:aaaa", out, sizeof(out)), 0);
	CHECK_EQ_STR(out, target);
	CHECK_EQ_INT(lfsfs_index_get_alias(t, "sha256:bbbb", out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "etag:1:x");
	CHECK_EQ_INT(lfsfs_index_get_alias(t, "sha256:cccc", out, sizeof(out)), -ENOENT);
	CHECK_EQ_INT(lfsfs_index_get_alias(t, "sha256:aaa", out, sizeof(out)), -ENOENT);
	/* cap must hold the target and its NUL */
	CHECK_EQ_INT(lfsfs_index_get_alias(t, "sha256:aaaa", out, strlen(target)), -ENAMETOOLONG);
	CHECK_EQ_INT(lfsfs_index_get_alias(t, "sha256:aaaa", out, strlen(target) + 1), 0);
	CHECK_EQ_STR(out, target);
	/* aliases are not object records */
	{
		struct lfsfs_objrec r;
		CHECK_EQ_INT(lfsfs_index_get_obj(t, "sha256:aaaa", &r), -ENOENT);
	}
	lfsfs_index_abort(t);

	/* overwrite */
	CHECK_EQ_INT(lfsfs_index_begin(ix, 1, &t), 0);
	CHECK_EQ_INT(lfsfs_index_put_alias(t, "sha256:aaaa", "etag:2:y"), 0);
	CHECK_EQ_INT(lfsfs_index_commit(t), 0);
	CHECK_EQ_INT(lfsfs_index_begin(ix, 0, &t), 0);
	CHECK_EQ_INT(lfsfs_index_get_alias(t, "sha256:aaaa", out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "etag:2:y");
	lfsfs_index_abort(t);
}

/* ---- foreach ---- */

struct visit {
	int n;
	int stop_at;       /* return 99 at this visit (1-based), 0 = never */
	unsigned seen;     /* bit i: key "obj:<i>" visited */
	int bad;
};

static int visit_fn(const char *key, const struct lfsfs_objrec *rec, void *ctx)
{
	struct visit *v = ctx;
	int i;

	v->n++;
	if (sscanf(key, "obj:%d", &i) != 1 || i < 0 || i >= 32 || (v->seen >> i) & 1u ||
	    rec->size != (uint64_t)i * 1000 || rec->version != 1)
		v->bad++;
	else
		v->seen |= 1u << i;
	return v->stop_at && v->n == v->stop_at ? 99 : 0;
}

static void test_foreach(struct lfsfs_index *ix)
{
	struct lfsfs_index_txn *t;
	struct lfsfs_objrec r;
	struct visit v;
	char key[32];

	/* empty table (earlier tests deleted their records) */
	memset(&v, 0, sizeof(v));
	CHECK_EQ_INT(lfsfs_index_begin(ix, 0, &t), 0);
	CHECK_EQ_INT(lfsfs_index_foreach_obj(t, visit_fn, &v), 0);
	lfsfs_index_abort(t);
	CHECK_EQ_INT(v.n, 0);

	CHECK_EQ_INT(lfsfs_index_begin(ix, 1, &t), 0);
	for (int i = 0; i < 10; i++) {
		fill_rec(&r, 0);
		r.size = (uint64_t)i * 1000;
		snprintf(key, sizeof(key), "obj:%d", i);
		CHECK_EQ_INT(lfsfs_index_put_obj(t, key, &r), 0);
	}
	/* bitmap pages and aliases are not visited; nor are unknown versions */
	CHECK_EQ_INT(lfsfs_index_put_bits_page(t, "obj:3", 0, (const uint8_t *)"\xff", 1), 0);
	fill_rec(&r, 0);
	r.version = 7;
	CHECK_EQ_INT(lfsfs_index_put_obj(t, "obj:v7", &r), 0);
	CHECK_EQ_INT(lfsfs_index_commit(t), 0);

	memset(&v, 0, sizeof(v));
	CHECK_EQ_INT(lfsfs_index_begin(ix, 0, &t), 0);
	CHECK_EQ_INT(lfsfs_index_foreach_obj(t, visit_fn, &v), 0);
	lfsfs_index_abort(t);
	CHECK_EQ_INT(v.n, 10);
	CHECK_EQ_INT(v.seen, 0x3ff);
	CHECK_EQ_INT(v.bad, 0);

	/* early stop: fn's value is returned, no further visits */
	memset(&v, 0, sizeof(v));
	v.stop_at = 4;
	CHECK_EQ_INT(lfsfs_index_begin(ix, 0, &t), 0);
	CHECK_EQ_INT(lfsfs_index_foreach_obj(t, visit_fn, &v), 99);
	lfsfs_index_abort(t);
	CHECK_EQ_INT(v.n, 4);
	CHECK_EQ_INT(v.bad, 0);

	/* stop at the very first record */
	memset(&v, 0, sizeof(v));
	v.stop_at = 1;
	CHECK_EQ_INT(lfsfs_index_begin(ix, 0, &t), 0);
	CHECK_EQ_INT(lfsfs_index_foreach_obj(t, visit_fn, &v), 99);
	lfsfs_index_abort(t);
	CHECK_EQ_INT(v.n, 1);

	/* clean up */
	CHECK_EQ_INT(lfsfs_index_begin(ix, 1, &t), 0);
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "obj:%d", i);
		CHECK_EQ_INT(lfsfs_index_del_obj(t, key), 0);
	}
	CHECK_EQ_INT(lfsfs_index_del_obj(t, "obj:v7"), 0);
	CHECK_EQ_INT(lfsfs_index_commit(t), 0);
}

/* ---- transactions ---- */

static void test_abort(struct lfsfs_index *ix)
{
	struct lfsfs_index_txn *t, *rt;
	struct lfsfs_objrec r, out;
	uint8_t page[LFSFS_BITS_PAGE], bits[LFSFS_BITS_PAGE];
	char alias[64];

	fill_rec(&r, 21);
	pattern_page(page, 0x77);
	CHECK_EQ_INT(lfsfs_index_begin(ix, 1, &t), 0);
	CHECK_EQ_INT(lfsfs_index_put_obj(t, "sha256:aborted", &r), 0);
	CHECK_EQ_INT(lfsfs_index_put_bits_page(t, "sha256:aborted", 0, page, sizeof(page)), 0);
	CHECK_EQ_INT(lfsfs_index_put_alias(t, "sha256:aborted-alias", "sha256:aborted"), 0);
	/* visible inside the transaction */
	CHECK_EQ_INT(lfsfs_index_get_obj(t, "sha256:aborted", &out), 0);
	lfsfs_index_abort(t);
	lfsfs_index_abort(NULL); /* documented as harmless */

	CHECK_EQ_INT(get_obj(ix, "sha256:aborted", &out), -ENOENT);
	memset(bits, 0xff, sizeof(bits));
	CHECK_EQ_INT(get_bits(ix, "sha256:aborted", bits, sizeof(bits)), 0);
	CHECK(all_zero(bits, sizeof(bits)));
	CHECK_EQ_INT(lfsfs_index_begin(ix, 0, &t), 0);
	CHECK_EQ_INT(lfsfs_index_get_alias(t, "sha256:aborted-alias", alias, sizeof(alias)),
		     -ENOENT);
	lfsfs_index_abort(t);

	/* aborting a delete keeps the record */
	CHECK_EQ_INT(put_obj(ix, "sha256:keep", &r), 0);
	CHECK_EQ_INT(lfsfs_index_begin(ix, 1, &t), 0);
	CHECK_EQ_INT(lfsfs_index_del_obj(t, "sha256:keep"), 0);
	CHECK_EQ_INT(lfsfs_index_get_obj(t, "sha256:keep", &out), -ENOENT);
	lfsfs_index_abort(t);
	CHECK_EQ_INT(get_obj(ix, "sha256:keep", &out), 0);

	/* a read snapshot does not see a later commit */
	CHECK_EQ_INT(lfsfs_index_begin(ix, 0, &rt), 0);
	CHECK_EQ_INT(put_obj(ix, "sha256:later", &r), 0);
	CHECK_EQ_INT(lfsfs_index_get_obj(rt, "sha256:later", &out), -ENOENT);
	lfsfs_index_abort(rt);
	CHECK_EQ_INT(get_obj(ix, "sha256:later", &out), 0);

	/* writes in a read transaction fail cleanly */
	CHECK_EQ_INT(lfsfs_index_begin(ix, 0, &rt), 0);
	CHECK(lfsfs_index_put_obj(rt, "sha256:ro", &r) < 0);
	lfsfs_index_abort(rt);
	CHECK_EQ_INT(get_obj(ix, "sha256:ro", &out), -ENOENT);

	CHECK_EQ_INT(del_obj(ix, "sha256:later"), 0);
}

/* ---- persistence ---- */

static void test_reopen(void)
{
	struct lfsfs_index *ix;
	struct lfsfs_index_txn *t;
	struct lfsfs_objrec r, out;
	uint8_t page[LFSFS_BITS_PAGE];
	uint8_t *bits = malloc(3 * LFSFS_BITS_PAGE);
	char alias[64];

	if (!bits) {
		CHECK(bits != NULL);
		return;
	}
	CHECK_EQ_INT(lfsfs_index_open(ixdir, &ix), 0);
	fill_rec(&r, 31);
	pattern_page(page, 0x31);
	CHECK_EQ_INT(lfsfs_index_begin(ix, 1, &t), 0);
	CHECK_EQ_INT(lfsfs_index_put_obj(t, "sha256:persist", &r), 0);
	CHECK_EQ_INT(lfsfs_index_put_bits_page(t, "sha256:persist", 2, page, sizeof(page)), 0);
	CHECK_EQ_INT(lfsfs_index_put_alias(t, "sha256:pa", "sha256:persist"), 0);
	CHECK_EQ_INT(lfsfs_index_commit(t), 0);
	/* an uncommitted write at close is lost */
	CHECK_EQ_INT(lfsfs_index_begin(ix, 1, &t), 0);
	CHECK_EQ_INT(lfsfs_index_put_obj(t, "sha256:uncommitted", &r), 0);
	lfsfs_index_abort(t);
	lfsfs_index_close(ix);
	lfsfs_index_close(NULL); /* harmless */

	CHECK_EQ_INT(lfsfs_index_open(ixdir, &ix), 0);
	memset(&out, 0, sizeof(out));
	CHECK_EQ_INT(get_obj(ix, "sha256:persist", &out), 0);
	CHECK(memcmp(&out, &r, sizeof(r)) == 0);
	CHECK_EQ_INT(get_obj(ix, "sha256:keep", &out), 0); /* from test_abort */
	CHECK_EQ_INT(get_obj(ix, "sha256:uncommitted", &out), -ENOENT);
	memset(bits, 0xff, 3 * LFSFS_BITS_PAGE);
	CHECK_EQ_INT(get_bits(ix, "sha256:persist", bits, 3 * LFSFS_BITS_PAGE), 0);
	CHECK(all_zero(bits, 2 * LFSFS_BITS_PAGE));
	CHECK(memcmp(bits + 2 * LFSFS_BITS_PAGE, page, LFSFS_BITS_PAGE) == 0);
	CHECK_EQ_INT(lfsfs_index_begin(ix, 0, &t), 0);
	CHECK_EQ_INT(lfsfs_index_get_alias(t, "sha256:pa", alias, sizeof(alias)), 0);
	CHECK_EQ_STR(alias, "sha256:persist");
	lfsfs_index_abort(t);
	lfsfs_index_close(ix);

	/* open fails cleanly where no directory can be made */
	{
		char bad[4200];
		struct lfsfs_index *ix2 = NULL;
		snprintf(bad, sizeof(bad), "%s/no/such/parent", root);
		CHECK(lfsfs_index_open(bad, &ix2) < 0);
		CHECK(ix2 == NULL);
	}
	free(bits);
}

int main(void)
{
	struct lfsfs_index *ix = NULL;

	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(ixdir, sizeof(ixdir), "%s/index", root);
	CHECK_EQ_INT(lfsfs_index_open(ixdir, &ix), 0);
	if (ix) {
		test_objrec(ix);
		test_bits(ix);
		test_prefix_keys(ix);
		test_alias(ix);
		test_foreach(ix);
		test_abort(ix);
		lfsfs_index_close(ix);
		test_reopen();
	}
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return TEST_RESULT();
}
