/* Unit tests for the .git/drs/pre-commit/v1 hint cache: names, records, applying changes, git runner. */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "lfsfs/error.h"
#include "meta/hintcache.h"
#include "meta/lfsmeta.h"
#include "test.h"

#define OID_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define OID_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define OID_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define NOW "2026-02-01T12:34:56Z"
#define LATER "2026-02-02T08:00:00Z"

static char tmpdir[] = "/tmp/lfsfs-test-hintcache-XXXXXX";
static char gitdir[PATH_MAX], root[PATH_MAX];

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

static void reset_cache(void)
{
	char d[PATH_MAX + 16];

	snprintf(d, sizeof(d), "%s/drs", gitdir);
	nftw(d, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Whole file as a malloc'd string, or NULL. */
static char *slurp(const char *path)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(1 << 20);

	if (lfsfs_buf_read_file(&b, path)) {
		lfsfs_buf_release(&b);
		return NULL;
	}
	return lfsfs_buf_detach(&b);
}

static cJSON *load_json(const char *path)
{
	char *t = slurp(path);
	cJSON *j = t ? cJSON_Parse(t) : NULL;

	free(t);
	return j;
}

static cJSON *load_path_rec(const char *dir, const char *path)
{
	char *f = lfsfs_hint_path_file(root, dir, path);
	cJSON *j = load_json(f);

	free(f);
	return j;
}

static cJSON *load_oid_rec(const char *oid)
{
	char f[PATH_MAX + 128];

	snprintf(f, sizeof(f), "%s/oids/%s.json", root, oid);
	return load_json(f);
}

static const char *jstr(const cJSON *j, const char *key)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(j, key);

	return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* The paths array of an oid record joined with ',' (static buffer). */
static const char *jpaths(const cJSON *j)
{
	static char out[4096];
	const cJSON *it;

	out[0] = '\0';
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "paths"))
	        snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%s", out[0] ? "," : "",
	                 cJSON_IsString(it) ? it->valuestring : "?");
	return out;
}

static int exists(const char *dir, const char *path)
{
	char *f = lfsfs_hint_path_file(root, dir, path);
	int e = access(f, F_OK) == 0;

	free(f);
	return e;
}

/* ------------------------------------------------------------ base64url */

static void check_b64(const char *in, size_t len, const char *want)
{
	char *enc = lfsfs_hint_b64url_encode(in, len), *dec = NULL;
	size_t dlen = 0;

	CHECK_EQ_STR(enc, want);
	CHECK_EQ_INT(lfsfs_hint_b64url_decode(want, strlen(want), &dec, &dlen), 0);
	CHECK_EQ_INT(dlen, len);
	CHECK(dec && !memcmp(dec, in, len));
	free(enc);
	free(dec);
}

static void test_b64url(void)
{
	char *dec;
	size_t n;

	/* RFC 4648 section 10 vectors, without padding */
	check_b64("", 0, "");
	check_b64("f", 1, "Zg");
	check_b64("fo", 2, "Zm8");
	check_b64("foo", 3, "Zm9v");
	check_b64("foob", 4, "Zm9vYg");
	check_b64("fooba", 5, "Zm9vYmE");
	check_b64("foobar", 6, "Zm9vYmFy");
	/* the URL-safe alphabet: '-' and '_' where standard base64 has '+' and '/' */
	check_b64("\xfb\xff", 2, "-_8");
	check_b64("\xfb\xef\xbe", 3, "----");
	check_b64("\xff\xff\xff", 3, "____");
	/* the ADR's example paths */
	check_b64("data/foo.bam", 12, "ZGF0YS9mb28uYmFt");
	check_b64("data/a.bin", 10, "ZGF0YS9hLmJpbg");
	check_b64("donn\xc3\xa9"
	          "es/\xc3\xa9.bin",
	          15, "ZG9ubsOpZXMvw6kuYmlu");

	/* padding, the standard alphabet, impossible lengths, stray bits */
	CHECK_EQ_INT(lfsfs_hint_b64url_decode("Zg==", 4, &dec, &n), -EINVAL);
	CHECK_EQ_INT(lfsfs_hint_b64url_decode("a+b/", 4, &dec, &n), -EINVAL);
	CHECK_EQ_INT(lfsfs_hint_b64url_decode("Zm9vY", 5, &dec, &n), -EINVAL);
	CHECK_EQ_INT(lfsfs_hint_b64url_decode("Zh", 2, &dec, &n), -EINVAL);
	CHECK(dec == NULL);
}

static void test_names(void)
{
	char *f = lfsfs_hint_path_file("/r", "paths", "data/foo.bam");
	char longpath[600], *tok, *joined, *dec;
	size_t n, dlen;

	CHECK_EQ_STR(f, "/r/paths/ZGF0YS9mb28uYmFt.json");
	free(f);
	f = lfsfs_hint_path_file("/r", "tombstones", "data/a.bin");
	CHECK_EQ_STR(f, "/r/tombstones/ZGF0YS9hLmJpbg.json");
	free(f);
	f = lfsfs_hint_root("/x/.git");
	CHECK_EQ_STR(f, "/x/.git/drs/pre-commit/v1");
	free(f);

	/* a token that would not fit NAME_MAX becomes directory levels */
	for (size_t i = 0; i < sizeof(longpath) - 1; i++)
		longpath[i] = (char)('a' + i % 26);
	longpath[sizeof(longpath) - 1] = '\0';
	f = lfsfs_hint_path_file("/r", "paths", longpath);
	tok = lfsfs_hint_b64url_encode(longpath, strlen(longpath));
	CHECK(f && tok);
	if (f && tok) {
		const char *p = f + strlen("/r/paths/");
		size_t w = 0;
		joined = malloc(strlen(p) + 1);
		for (const char *s = p; *s; s++) {
			size_t comp = strcspn(s, "/");
			CHECK(comp <= NAME_MAX);
			memcpy(joined + w, s, comp);
			w += comp;
			s += comp;
			if (!*s)
				break;
		}
		joined[w] = '\0';
		n = strlen(joined);
		CHECK(n > 5 && !strcmp(joined + n - 5, ".json"));
		joined[n - 5] = '\0';
		CHECK_EQ_STR(joined, tok);
		CHECK_EQ_INT(lfsfs_hint_b64url_decode(joined, strlen(joined), &dec, &dlen), 0);
		CHECK_EQ_STR(dec, longpath);
		free(dec);
		free(joined);
	}
	free(f);
	free(tok);

	char t[LFSFS_HINT_TIME_LEN + 1];
	lfsfs_hint_time(0, t);
	CHECK_EQ_STR(t, "1970-01-01T00:00:00Z");
	lfsfs_hint_time(1769949296, t);
	CHECK_EQ_STR(t, "2026-02-01T12:34:56Z");
}

/* ------------------------------------------------------------ records */

static void test_path_record(void)
{
	struct lfsfs_hint_path_rec r = { .path = "dir \"q\"/back\\slash/new\nline/\xc3\xa9.bam" };
	struct lfsfs_hint_path_rec back;
	struct lfsfs_buf b = LFSFS_BUF_INIT(0);
	cJSON *j;

	snprintf(r.oid, sizeof(r.oid), "%s", OID_A);
	snprintf(r.updated_at, sizeof(r.updated_at), "%s", NOW);
	CHECK_EQ_INT(lfsfs_hint_path_format(&r, &b), 0);
	/* the ADR's schema, in this order */
	CHECK(b.data && strstr(b.data, "{\n  \"path\": "));
	CHECK(b.data && strstr(b.data, "\"lfs_oid\": \"sha256:" OID_A "\""));
	CHECK(b.data && strstr(b.data, "\"updated_at\": \"" NOW "\"\n}\n"));
	j = b.data ? cJSON_Parse(b.data) : NULL;
	CHECK(j != NULL);
	CHECK_EQ_STR(jstr(j, "path"), r.path);
	cJSON_Delete(j);
	CHECK_EQ_INT(lfsfs_hint_path_parse(b.data, b.len, "x", &back), 0);
	CHECK_EQ_STR(back.path, r.path);
	CHECK_EQ_STR(back.oid, OID_A);
	CHECK_EQ_STR(back.updated_at, NOW);
	lfsfs_hint_path_rec_release(&back);
	lfsfs_buf_release(&b);

	/* bare hex and upper case are read; broken records are not */
	static const char ok[] = "{\"path\":\"a\",\"lfs_oid\":\"" OID_B "\"}";
	CHECK_EQ_INT(lfsfs_hint_path_parse(ok, strlen(ok), "x", &back), 0);
	CHECK_EQ_STR(back.oid, OID_B);
	CHECK_EQ_STR(back.updated_at, "");
	lfsfs_hint_path_rec_release(&back);
	static const char *const bad[] = {
		"",
		"[]",
		"{",
		"{\"path\":\"a\"}",
		"{\"path\":1,\"lfs_oid\":\"sha256:" OID_A "\"}",
		"{\"path\":\"a\",\"lfs_oid\":\"sha256:abc\"}",
		"{\"path\":\"a\",\"lfs_oid\":\"md5:" OID_A "\"}",
		"{\"path\":\"a\",\"lfs_oid\":\"sha256:" OID_A "\",\"updated_at\":5}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_EQ_INT(lfsfs_hint_path_parse(bad[i], strlen(bad[i]), "x", &back),
		             -LFSFS_EPARSE);
	CHECK_EQ_INT(lfsfs_hint_path_parse("{\"pa\0th\":1}", 11, "x", &back), -LFSFS_EPARSE);
}

static void test_oid_record(void)
{
	struct lfsfs_hint_oid_rec r = { 0 }, back;
	struct lfsfs_buf b = LFSFS_BUF_INIT(0);

	snprintf(r.oid, sizeof(r.oid), "%s", OID_A);
	snprintf(r.updated_at, sizeof(r.updated_at), "%s", NOW);
	/* add keeps the list sorted and unique; remove takes one out */
	CHECK_EQ_INT(lfsfs_hint_oid_add_path(&r, "data/foo.bam"), 1);
	CHECK_EQ_INT(lfsfs_hint_oid_add_path(&r, "data/archive/foo-copy.bam"), 1);
	CHECK_EQ_INT(lfsfs_hint_oid_add_path(&r, "z.bam"), 1);
	CHECK_EQ_INT(lfsfs_hint_oid_add_path(&r, "data/foo.bam"), 0);
	CHECK_EQ_INT(r.n_paths, 3);
	CHECK_EQ_STR(r.paths[0], "data/archive/foo-copy.bam");
	CHECK_EQ_STR(r.paths[1], "data/foo.bam");
	CHECK_EQ_INT(lfsfs_hint_oid_remove_path(&r, "z.bam"), 1);
	CHECK_EQ_INT(lfsfs_hint_oid_remove_path(&r, "z.bam"), 0);
	CHECK_EQ_INT(r.n_paths, 2);

	/* no URL known: no s3_url key (never invented) */
	CHECK_EQ_INT(lfsfs_hint_oid_format(&r, &b), 0);
	CHECK(b.data && !strstr(b.data, "s3_url"));
	CHECK(b.data && strstr(b.data, "\"content_changed\": false\n}\n"));
	lfsfs_buf_reset(&b);
	r.s3_url = strdup("s3://bucket/key");
	r.content_changed = 1;
	CHECK_EQ_INT(lfsfs_hint_oid_format(&r, &b), 0);
	CHECK_EQ_STR(b.data, "{\n"
	                     "  \"lfs_oid\": \"sha256:" OID_A "\",\n"
	                     "  \"paths\": [\n"
	                     "    \"data/archive/foo-copy.bam\",\n"
	                     "    \"data/foo.bam\"\n"
	                     "  ],\n"
	                     "  \"s3_url\": \"s3://bucket/key\",\n"
	                     "  \"updated_at\": \"" NOW "\",\n"
	                     "  \"content_changed\": true\n"
	                     "}\n");
	CHECK_EQ_INT(lfsfs_hint_oid_parse(b.data, b.len, "x", &back), 0);
	CHECK_EQ_STR(back.oid, OID_A);
	CHECK_EQ_INT(back.n_paths, 2);
	CHECK_EQ_STR(back.s3_url, "s3://bucket/key");
	CHECK_EQ_INT(back.content_changed, 1);
	CHECK(back.extra == NULL);
	lfsfs_hint_oid_rec_release(&back);
	lfsfs_hint_oid_rec_release(&r);
	lfsfs_buf_release(&b);

	/* keys of other tools survive a rewrite; an empty paths list is [] */
	static const char other[] = "{\"lfs_oid\":\"sha256:" OID_B "\",\"paths\":[],"
	                            "\"external_url\":\"gs://b/k\",\"n\":[1,{\"x\":null}],"
	                            "\"s3_url\":null,\"content_changed\":false}";
	CHECK_EQ_INT(lfsfs_hint_oid_parse(other, strlen(other), "x", &back), 0);
	CHECK(back.s3_url == NULL);
	CHECK(back.extra != NULL);
	CHECK_EQ_INT(lfsfs_hint_oid_format(&back, &b), 0);
	CHECK(b.data && strstr(b.data, "\"paths\": [],\n"));
	CHECK(b.data && strstr(b.data, "\"external_url\": \"gs://b/k\""));
	CHECK(b.data && strstr(b.data, "\"n\": [1,{\"x\":null}]"));
	lfsfs_hint_oid_rec_release(&back);
	lfsfs_buf_release(&b);

	static const char *const bad[] = {
		"{\"paths\":[]}",
		"{\"lfs_oid\":\"sha256:" OID_A "\",\"paths\":\"a\"}",
		"{\"lfs_oid\":\"sha256:" OID_A "\",\"paths\":[1]}",
		"{\"lfs_oid\":\"sha256:" OID_A "\",\"s3_url\":3}",
		"{\"lfs_oid\":\"sha256:" OID_A "\",\"content_changed\":\"yes\"}",
		"not json",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_EQ_INT(lfsfs_hint_oid_parse(bad[i], strlen(bad[i]), "x", &back),
		             -LFSFS_EPARSE);
}

static void test_files(void)
{
	struct lfsfs_hint_oid_rec r = { 0 }, back;
	struct lfsfs_hint_path_rec p = { .path = "a/b.bin" }, pb;
	char f[PATH_MAX + 128], *url = NULL;

	reset_cache();
	CHECK_EQ_INT(lfsfs_hint_oid_read(root, OID_A, &back), -ENOENT);
	CHECK_EQ_INT(lfsfs_hint_path_read(root, "a/b.bin", &pb), -ENOENT);
	snprintf(r.oid, sizeof(r.oid), "%s", OID_A);
	snprintf(r.updated_at, sizeof(r.updated_at), "%s", NOW);
	lfsfs_hint_oid_add_path(&r, "a/b.bin");
	r.s3_url = strdup("s3://bucket/a/b.bin");
	CHECK_EQ_INT(lfsfs_hint_oid_write(root, &r), 0);
	snprintf(p.oid, sizeof(p.oid), "%s", OID_A);
	snprintf(p.updated_at, sizeof(p.updated_at), "%s", NOW);
	CHECK_EQ_INT(lfsfs_hint_path_write(root, &p), 0);
	CHECK_EQ_INT(lfsfs_hint_oid_read(root, OID_A, &back), 0);
	CHECK_EQ_STR(back.s3_url, "s3://bucket/a/b.bin");
	lfsfs_hint_oid_rec_release(&back);
	CHECK_EQ_INT(lfsfs_hint_path_read(root, "a/b.bin", &pb), 0);
	CHECK_EQ_STR(pb.oid, OID_A);
	lfsfs_hint_path_rec_release(&pb);
	/* no temp files left behind */
	snprintf(f, sizeof(f), "%s/oids/%s.json.tmp.%ld", root, OID_A, (long)getpid());
	CHECK(access(f, F_OK) != 0);

	/* the hints resolver's reader sees what was written */
	CHECK_EQ_INT(lfsfs_hint_read_url(gitdir, OID_A, &url), 0);
	CHECK_EQ_STR(url, "s3://bucket/a/b.bin");
	free(url);

	/* a record under the wrong name is refused */
	snprintf(f, sizeof(f), "%s/oids/%s.json", root, OID_C);
	{
		char *text = NULL;
		char src[PATH_MAX + 128];
		snprintf(src, sizeof(src), "%s/oids/%s.json", root, OID_A);
		text = slurp(src);
		CHECK(text && lfsfs_hint_write_file(f, text, strlen(text)) == 0);
		free(text);
	}
	CHECK_EQ_INT(lfsfs_hint_oid_read(root, OID_C, &back), -LFSFS_EPARSE);

	/* set_url keeps paths */
	CHECK_EQ_INT(lfsfs_hint_set_url(gitdir, OID_A, "https://x/y", LATER), 0);
	CHECK_EQ_INT(lfsfs_hint_oid_read(root, OID_A, &back), 0);
	CHECK_EQ_STR(back.s3_url, "https://x/y");
	CHECK_EQ_INT(back.n_paths, 1);
	lfsfs_hint_oid_rec_release(&back);
	lfsfs_hint_oid_rec_release(&r);
}

/* ------------------------------------------------------------ apply */

static unsigned warnings;
static void count_warn(const char *msg, void *ctx)
{
	warnings++;
}

static void test_apply(void)
{
	struct lfsfs_hint_stats st;
	cJSON *j;
	char **paths = NULL;
	size_t n = 0;

	reset_cache();
	/* first run: a new cache, built aside and renamed into place */
	struct lfsfs_hint_change c1[] = {
		{ .op = LFSFS_HINT_UPSERT, .path = "data/foo.bam", .oid = OID_A, .prev_oid = "" },
		{ .op = LFSFS_HINT_UPSERT, .path = "data/archive/foo-copy.bam", .oid = OID_A },
		{ .op = LFSFS_HINT_UPSERT, .path = "data/bar.bam", .oid = OID_B },
		{ .op = LFSFS_HINT_DELETE, .path = "never-in-scope.txt" },
	};
	CHECK_EQ_INT(lfsfs_hint_apply(gitdir, c1, 4, NOW, &st, count_warn, NULL), 0);
	CHECK_EQ_INT(st.paths_written, 3);
	CHECK_EQ_INT(st.oids_written, 2);
	CHECK_EQ_INT(st.tombstones, 0);
	j = load_path_rec("paths", "data/foo.bam");
	CHECK_EQ_STR(jstr(j, "path"), "data/foo.bam");
	CHECK_EQ_STR(jstr(j, "lfs_oid"), "sha256:" OID_A);
	CHECK_EQ_STR(jstr(j, "updated_at"), NOW);
	cJSON_Delete(j);
	j = load_oid_rec(OID_A);
	CHECK_EQ_STR(jpaths(j), "data/archive/foo-copy.bam,data/foo.bam");
	CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "content_changed")));
	CHECK(cJSON_GetObjectItemCaseSensitive(j, "s3_url") == NULL);
	cJSON_Delete(j);
	CHECK(!exists("paths", "never-in-scope.txt"));
	CHECK(!exists("tombstones", "never-in-scope.txt"));
	{
		char stage[PATH_MAX + 64];
		snprintf(stage, sizeof(stage), "%s/drs/pre-commit/v1.new.%ld", gitdir,
		         (long)getpid());
		CHECK(access(stage, F_OK) != 0);
	}
	CHECK_EQ_INT(lfsfs_hint_list_paths(gitdir, &paths, &n), 0);
	CHECK_EQ_INT(n, 3);
	if (n == 3) {
		CHECK_EQ_STR(paths[0], "data/archive/foo-copy.bam");
		CHECK_EQ_STR(paths[2], "data/foo.bam");
	}
	lfsfs_hint_paths_free(paths, n);

	/* a known URL is kept through everything below */
	CHECK_EQ_INT(lfsfs_hint_set_url(gitdir, OID_A, "s3://bucket/foo.bam", NOW), 0);

	/* rerun: nothing changes, nothing is written */
	CHECK_EQ_INT(lfsfs_hint_apply(gitdir, c1, 4, LATER, &st, count_warn, NULL), 0);
	CHECK_EQ_INT(st.paths_written, 0);
	CHECK_EQ_INT(st.oids_written, 0);

	/* rename (R100), content change at the same path, deletion */
	struct lfsfs_hint_change c2[] = {
		{ .op = LFSFS_HINT_RENAME,
		  .old_path = "data/foo.bam",
		  .path = "data/moved/foo.bam",
		  .oid = OID_A,
		  .prev_oid = OID_A },
		{ .op = LFSFS_HINT_UPSERT,
		  .path = "data/bar.bam",
		  .oid = OID_C,
		  .prev_oid = OID_B },
		{ .op = LFSFS_HINT_DELETE, .path = "data/archive/foo-copy.bam", .prev_oid = OID_A },
	};
	CHECK_EQ_INT(lfsfs_hint_apply(gitdir, c2, 3, LATER, &st, count_warn, NULL), 0);
	CHECK_EQ_INT(st.renames, 1);
	CHECK_EQ_INT(st.content_changes, 1);
	CHECK_EQ_INT(st.tombstones, 2);
	CHECK(!exists("paths", "data/foo.bam"));
	CHECK(exists("paths", "data/moved/foo.bam"));
	j = load_path_rec("tombstones", "data/foo.bam");
	CHECK_EQ_STR(jstr(j, "reason"), "renamed");
	CHECK_EQ_STR(jstr(j, "renamed_to"), "data/moved/foo.bam");
	CHECK_EQ_STR(jstr(j, "lfs_oid"), "sha256:" OID_A);
	CHECK_EQ_STR(jstr(j, "deleted_at"), LATER);
	cJSON_Delete(j);
	j = load_path_rec("tombstones", "data/archive/foo-copy.bam");
	CHECK_EQ_STR(jstr(j, "reason"), "deleted");
	cJSON_Delete(j);
	j = load_oid_rec(OID_A);
	CHECK_EQ_STR(jpaths(j), "data/moved/foo.bam");
	CHECK_EQ_STR(jstr(j, "s3_url"), "s3://bucket/foo.bam");
	CHECK_EQ_STR(jstr(j, "updated_at"), LATER);
	cJSON_Delete(j);
	j = load_oid_rec(OID_C);
	CHECK_EQ_STR(jpaths(j), "data/bar.bam");
	CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "content_changed")));
	cJSON_Delete(j);
	j = load_oid_rec(OID_B); /* keeps its stale path */
	CHECK_EQ_STR(jpaths(j), "data/bar.bam");
	CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "content_changed")));
	cJSON_Delete(j);
	j = load_path_rec("paths", "data/bar.bam");
	CHECK_EQ_STR(jstr(j, "lfs_oid"), "sha256:" OID_C);
	cJSON_Delete(j);

	/* undo: the file comes back, its tombstone goes; a content change
	 * seen only through the old paths/ entry also counts */
	struct lfsfs_hint_change c3[] = {
		{ .op = LFSFS_HINT_UPSERT, .path = "data/archive/foo-copy.bam", .oid = OID_A },
		{ .op = LFSFS_HINT_UPSERT, .path = "data/moved/foo.bam", .oid = OID_B },
	};
	CHECK_EQ_INT(lfsfs_hint_apply(gitdir, c3, 2, LATER, &st, count_warn, NULL), 0);
	CHECK(!exists("tombstones", "data/archive/foo-copy.bam"));
	CHECK_EQ_INT(st.content_changes, 1);
	j = load_oid_rec(OID_B);
	CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "content_changed")));
	CHECK_EQ_STR(jpaths(j), "data/bar.bam,data/moved/foo.bam");
	cJSON_Delete(j);

	/* a malformed record is replaced, with a warning */
	{
		char f[PATH_MAX + 128];
		snprintf(f, sizeof(f), "%s/oids/%s.json", root, OID_C);
		CHECK_EQ_INT(lfsfs_hint_write_file(f, "{oops", 5), 0);
	}
	warnings = 0;
	struct lfsfs_hint_change c4[] = {
		{ .op = LFSFS_HINT_UPSERT, .path = "new.bam", .oid = OID_C },
	};
	CHECK_EQ_INT(lfsfs_hint_apply(gitdir, c4, 1, LATER, &st, count_warn, NULL), 0);
	CHECK_EQ_INT(warnings, 1);
	CHECK_EQ_INT(st.warnings, 1);
	j = load_oid_rec(OID_C);
	CHECK_EQ_STR(jpaths(j), "new.bam");
	cJSON_Delete(j);

	/* state.json */
	{
		char *head = NULL;
		CHECK_EQ_INT(lfsfs_hint_write_state(gitdir, LATER, "abc123", "full", &st, 1.5), 0);
		CHECK_EQ_INT(lfsfs_hint_read_state(gitdir, &head), 0);
		CHECK_EQ_STR(head, "abc123");
		free(head);
		CHECK_EQ_INT(lfsfs_hint_write_state(gitdir, LATER, NULL, "incremental", &st, 1.5),
		             0);
		CHECK_EQ_INT(lfsfs_hint_read_state(gitdir, &head), 0);
		CHECK(head == NULL);
		reset_cache();
		CHECK_EQ_INT(lfsfs_hint_read_state(gitdir, &head), -ENOENT);
	}

	/* cache problems are errors for the caller to report, not crashes */
	{
		char d[PATH_MAX + 64];
		CHECK_EQ_INT(lfsfs_hint_apply(gitdir, c1, 1, NOW, &st, NULL, NULL), 0);
		snprintf(d, sizeof(d), "%s/oids", root);
		nftw(d, rm_one, 16, FTW_DEPTH | FTW_PHYS);
		CHECK_EQ_INT(lfsfs_hint_write_file(d, "x", 1),
		             0); /* a file where a directory goes */
		CHECK(lfsfs_hint_apply(gitdir, c1 + 2, 1, NOW, &st, NULL, NULL) < 0);
		CHECK(*lfsfs_error_message() != '\0');
	}
}

/* ------------------------------------------------------------ git runner */

static void test_git_run(void)
{
	struct lfsfs_buf out = LFSFS_BUF_INIT(0), err = LFSFS_BUF_INIT(0), in = LFSFS_BUF_INIT(0);
	const char *ver[] = { "version", NULL };
	char repo[PATH_MAX + 16];
	int st = -1;

	if (lfsfs_git_run(NULL, ver, NULL, 0, &out, NULL, &st) || st) {
		fprintf(stderr, "git not available: skipping the git runner tests\n");
		lfsfs_buf_release(&out);
		return;
	}
	CHECK(out.data && !strncmp(out.data, "git version", 11));
	snprintf(repo, sizeof(repo), "%s/repo", tmpdir);
	const char *init[] = { "init", "-q", repo, NULL };
	CHECK_EQ_INT(lfsfs_git_run(NULL, init, NULL, 0, NULL, NULL, &st), 0);
	CHECK_EQ_INT(st, 0);
	/* far more input and output than a pipe holds, both at once */
	for (int i = 0; i < 20000; i++)
		lfsfs_buf_printf(&in, "%040x\n", i + 1);
	const char *check[] = { "cat-file", "--batch-check", NULL };
	lfsfs_buf_reset(&out);
	CHECK_EQ_INT(lfsfs_git_run(repo, check, in.data, in.len, &out, &err, &st), 0);
	CHECK_EQ_INT(st, 0);
	{
		size_t lines = 0;
		for (size_t i = 0; i < out.len; i++)
			lines += out.data[i] == '\n';
		CHECK_EQ_INT(lines, 20000);
		CHECK(out.data && strstr(out.data, " missing\n"));
	}
	/* a failing command: status and stderr */
	const char *bad[] = { "rev-parse", "--verify", "no-such-ref", NULL };
	lfsfs_buf_reset(&err);
	CHECK_EQ_INT(lfsfs_git_run(repo, bad, NULL, 0, NULL, &err, &st), 0);
	CHECK(st != 0);
	CHECK(err.len > 0);
	/* git exits without reading its input: no SIGPIPE for us */
	CHECK_EQ_INT(lfsfs_git_run(repo, bad, in.data, in.len, NULL, NULL, &st), 0);
	CHECK(st != 0);
	/* a capped output buffer */
	struct lfsfs_buf small = LFSFS_BUF_INIT(100);
	CHECK_EQ_INT(lfsfs_git_run(repo, check, in.data, in.len, &small, NULL, &st), -E2BIG);
	lfsfs_buf_release(&small);
	lfsfs_buf_release(&out);
	lfsfs_buf_release(&err);
	lfsfs_buf_release(&in);
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(gitdir, sizeof(gitdir), "%s/.git", tmpdir);
	mkdir(gitdir, 0700);
	snprintf(root, sizeof(root), "%s/drs/pre-commit/v1", gitdir);

	test_b64url();
	test_names();
	test_path_record();
	test_oid_record();
	test_files();
	test_apply();
	test_git_run();

	nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return TEST_RESULT();
}
