/* Unit tests for the tracked-object list: tree walk, metadata merge, filters, paths. */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lfsfs/error.h"
#include "meta/tracked.h"
#include "test.h"

#define OID_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define OID_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define OID_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define OID_D "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
#define OID_F "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
#define OID_X "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"

static char root[] = "/tmp/lfsfs-test-tracked-XXXXXX";
static char repo[PATH_MAX];

static void mkdirs(const char *path)
{
	char tmp[PATH_MAX];

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			mkdir(tmp, 0700);
			*p = '/';
		}
	}
	mkdir(tmp, 0700);
}

/* Write text to <repo>/<rel>, creating parent directories. */
static void put(const char *rel, const char *text)
{
	char path[PATH_MAX], dir[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", repo, rel);
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0';
	mkdirs(dir);
	f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(1);
	}
	fputs(text, f);
	fclose(f);
}

static void put_pointer(const char *rel, const char *oid, unsigned long long size)
{
	char text[256];

	snprintf(text, sizeof(text), "version https://git-lfs.github.com/spec/v1\n"
		 "oid sha256:%s\nsize %llu\n", oid, size);
	put(rel, text);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

static const struct lfsfs_tracked *find(const struct lfsfs_tracked_list *l, const char *path)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->items[i].path, path))
			return &l->items[i];
	return NULL;
}

static int n_refused;
static void on_refused(const char *path, const char *why, void *ctx)
{
	n_refused++;
}

static void build_repo(void)
{
	char big[2048], path[PATH_MAX];

	snprintf(repo, sizeof(repo), "%s/repo", root);
	mkdirs(repo);
	snprintf(path, sizeof(path), "%s/.git/objects", repo);
	mkdirs(path);
	/* pointers */
	put_pointer("a.bin", OID_A, 100);
	put_pointer("d/b.bin", OID_B, 200);
	put_pointer("deep/x/y.bin", OID_C, 300);
	put_pointer("deeper.bin", OID_D, 400);
	/* CRLF pointers parse too */
	put("crlf.bin", "version https://git-lfs.github.com/spec/v1\r\noid sha256:" OID_X
			"\r\nsize 5\r\n");
	/* not pointers: text, a pointer-looking file over 1024 bytes, an empty file */
	put("README.md", "hello\n");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "version https://git-lfs.github.com/spec/v1\n", 43);
	put("big.txt", big);
	put("empty", "");
	/* never walked: .git anywhere, symlinks */
	put_pointer(".git/lfs/p.bin", OID_X, 1);
	put_pointer("sub/.git/q.bin", OID_X, 1);
	snprintf(path, sizeof(path), "%s/link.bin", repo);
	if (symlink("a.bin", path))
		perror("symlink");
	/* records */
	put(".lfs-meta/sha256/" OID_A ".json",
	    "{\"sha256\": \"" OID_A "\", \"url\": \"https://h.example/a?X-Sig=s3cr3t\", "
	    "\"size\": 100, \"etag\": \"\\\"rec-a\\\"\"}");
	put(".lfs-meta/metadata.json",
	    "{\n"
	    " \"m/only.vcf\": {\"remote_url\": \"https://h.example/only.vcf\", \"size\": 42,"
	    "  \"etag\": \"\\\"e-only\\\"\"},\n"
	    " \"m/hashed.vcf\": {\"remote_url\": \"s3://bkt/hashed.vcf\", \"size\": 7,"
	    "  \"sha256\": \"" OID_F "\"},\n"
	    " \"deeper.bin\": {\"remote_url\": \"https://h.example/deeper\", \"size\": 400,"
	    "  \"etag\": \"\\\"e-deeper\\\"\"},\n"
	    " \"d/b.bin\": {\"remote_url\": \"https://h.example/other\", \"size\": 200,"
	    "  \"sha256\": \"" OID_X "\", \"etag\": \"\\\"e-other\\\"\"},\n"
	    " \"README.md\": {\"remote_url\": \"https://h.example/readme\", \"size\": 3},\n"
	    " \"d\": {\"remote_url\": \"https://h.example/dir\", \"size\": 3},\n"
	    " \"../escape\": {\"remote_url\": \"https://h.example/e\", \"size\": 3},\n"
	    " \"nourl.bin\": {\"size\": 3}\n"
	    "}\n");
}

static void test_walk_merge(void)
{
	struct lfsfs_tracked_opts o = { .resolve = 1, .refused = on_refused };
	struct lfsfs_tracked_list *l = NULL;
	const struct lfsfs_tracked *t;
	const char *want[] = { "a.bin", "crlf.bin", "d/b.bin", "deep/x/y.bin", "deeper.bin",
			       "m/hashed.vcf", "m/only.vcf" };

	n_refused = 0;
	CHECK_EQ_INT(lfsfs_tracked_load(repo, &o, &l), 0);
	if (!l)
		return;
	CHECK_EQ_INT(l->n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < l->n && i < sizeof(want) / sizeof(want[0]); i++)
		CHECK_EQ_STR(l->items[i].path, want[i]);
	CHECK_EQ_INT(n_refused, 2);             /* ../escape, nourl.bin */
	CHECK_EQ_INT(l->refused, 0);           /* counted by the callback only */
	CHECK_EQ_INT(l->shadowed, 2);          /* README.md (a file), d (a directory) */
	CHECK(find(l, "link.bin") == NULL);
	CHECK(find(l, "big.txt") == NULL);

	/* a pointer with a .lfs-meta/sha256 record: resolved, ETag pinned by the record */
	t = find(l, "a.bin");
	CHECK(t != NULL);
	if (t) {
		CHECK_EQ_STR(t->oid, OID_A);
		CHECK_EQ_INT(t->size, 100);
		CHECK_EQ_INT(t->from, LFSFS_TRACKED_POINTER);
		CHECK(t->etag == NULL);
		CHECK_EQ_STR(t->url, "https://h.example/a?X-Sig=s3cr3t");
		CHECK_EQ_STR(t->pinned_etag, "\"rec-a\"");
		CHECK_EQ_INT(t->resolve_rc, 0);
	}
	t = find(l, "crlf.bin");
	CHECK(t && !strcmp(t->oid, OID_X) && t->size == 5);
	/* pointer + metadata entry of the same path without sha256: the entry
	 * lends its ETag and resolves the pointer by path */
	t = find(l, "deeper.bin");
	CHECK(t != NULL);
	if (t) {
		CHECK_EQ_INT(t->from, LFSFS_TRACKED_POINTER | LFSFS_TRACKED_META);
		CHECK_EQ_STR(t->oid, OID_D);
		CHECK_EQ_INT(t->size, 400);
		CHECK_EQ_STR(t->etag, "\"e-deeper\"");
		CHECK_EQ_STR(t->url, "https://h.example/deeper");
	}
	/* an entry describing other bytes lends nothing; the pointer is unresolved */
	t = find(l, "d/b.bin");
	CHECK(t != NULL);
	if (t) {
		CHECK_EQ_STR(t->oid, OID_B);
		CHECK(t->etag == NULL);
		CHECK(t->url == NULL);
		CHECK_EQ_INT(t->resolve_rc, -LFSFS_ESOURCE_NOT_ACCESSIBLE);
		CHECK(t->resolve_error && strstr(t->resolve_error, "SOURCE_NOT_ACCESSIBLE"));
	}
	/* metadata-only entries */
	t = find(l, "m/only.vcf");
	CHECK(t != NULL);
	if (t) {
		CHECK_EQ_INT(t->from, LFSFS_TRACKED_META);
		CHECK_EQ_STR(t->oid, "");
		CHECK_EQ_INT(t->size, 42);
		CHECK_EQ_STR(t->etag, "\"e-only\"");
		CHECK_EQ_STR(t->meta_url, "https://h.example/only.vcf");
		CHECK_EQ_STR(t->url, "https://h.example/only.vcf");
	}
	t = find(l, "m/hashed.vcf");
	CHECK(t && !strcmp(t->oid, OID_F) && t->size == 7 && t->etag == NULL &&
	      t->url && !strcmp(t->url, "s3://bkt/hashed.vcf"));
	lfsfs_tracked_free(l);

	/* without resolution nothing is resolved */
	o.resolve = 0;
	CHECK_EQ_INT(lfsfs_tracked_load(repo, &o, &l), 0);
	if (l) {
		t = find(l, "a.bin");
		CHECK(t && t->url == NULL && t->resolve_rc == 0 && t->pinned_etag == NULL);
		lfsfs_tracked_free(l);
	}
}

static size_t count_with(const char *const *paths, size_t n, const char *first)
{
	struct lfsfs_tracked_opts o = { .paths = paths, .n_paths = n };
	struct lfsfs_tracked_list *l = NULL;
	size_t k;

	if (lfsfs_tracked_load(repo, &o, &l))
		return (size_t)-1;
	k = l->n;
	if (first && (!k || strcmp(l->items[0].path, first)))
		k = (size_t)-2;
	lfsfs_tracked_free(l);
	return k;
}

static void test_filters(void)
{
	const char *all[] = { "" };
	const char *d[] = { "d" };
	const char *de[] = { "de" };          /* a prefix of names, not a directory */
	const char *deep[] = { "deep/x" };
	const char *m[] = { "m/only.vcf" };
	const char *two[] = { "deep", "m" };
	const char *none[] = { "nothing/here" };

	CHECK_EQ_INT(count_with(all, 1, "a.bin"), 7);
	CHECK_EQ_INT(count_with(NULL, 0, "a.bin"), 7);
	CHECK_EQ_INT(count_with(d, 1, "d/b.bin"), 1);
	CHECK_EQ_INT(count_with(de, 1, NULL), 0);
	CHECK_EQ_INT(count_with(deep, 1, "deep/x/y.bin"), 1);
	CHECK_EQ_INT(count_with(m, 1, "m/only.vcf"), 1);
	CHECK_EQ_INT(count_with(two, 2, "deep/x/y.bin"), 3);
	CHECK_EQ_INT(count_with(none, 1, NULL), 0);

	CHECK(lfsfs_tracked_match("a/b", ""));
	CHECK(lfsfs_tracked_match("a/b", "a"));
	CHECK(lfsfs_tracked_match("a/b", "a/b"));
	CHECK(!lfsfs_tracked_match("a/bc", "a/b"));
	CHECK(!lfsfs_tracked_match("ab", "a"));
}

static void check_rel(const char *cwd, const char *arg, const char *want)
{
	char *out = NULL;
	int rc = lfsfs_tracked_relpath(repo, cwd, arg, &out);

	if (want) {
		CHECK_EQ_INT(rc, 0);
		CHECK_EQ_STR(out, want);
	} else {
		CHECK_EQ_INT(rc, -EINVAL);
		CHECK(out == NULL);
	}
	free(out);
}

static void test_relpath(void)
{
	char sub[PATH_MAX], abs[PATH_MAX], *found = NULL;

	snprintf(sub, sizeof(sub), "%s/deep/x", repo);
	check_rel(repo, "a.bin", "a.bin");
	check_rel(repo, ".", "");
	check_rel(repo, "./d/", "d");
	check_rel(sub, "y.bin", "deep/x/y.bin");     /* relative to a cwd inside */
	check_rel(sub, "..", "deep");
	check_rel(sub, "../../m//only.vcf", "m/only.vcf");
	check_rel("/", "d/b.bin", "d/b.bin");        /* cwd outside: relative to the repo */
	snprintf(abs, sizeof(abs), "%s/m/only.vcf", repo);
	check_rel("/", abs, "m/only.vcf");
	check_rel(repo, "/etc/passwd", NULL);
	check_rel(repo, "../elsewhere", NULL);
	check_rel(repo, ".git/config", NULL);
	check_rel(repo, "", NULL);

	CHECK_EQ_INT(lfsfs_tracked_find_repo(sub, &found), 0);
	CHECK_EQ_STR(found, repo);
	free(found);
	found = NULL;
	CHECK_EQ_INT(lfsfs_tracked_find_repo(root, &found), -ENOENT);
	CHECK(found == NULL);
}

static void test_errors(void)
{
	struct lfsfs_tracked_list *l = (void *)1;
	char bad[PATH_MAX];

	CHECK_EQ_INT(lfsfs_tracked_load(root, NULL, &l), -ENOENT); /* no .git */
	CHECK(l == NULL);
	CHECK(strstr(lfsfs_error_message(), "not a git repository") != NULL);
	snprintf(bad, sizeof(bad), "%s/missing", root);
	CHECK(lfsfs_tracked_load(bad, NULL, &l) < 0);
	/* malformed metadata.json fails with its position */
	put(".lfs-meta/metadata.json", "{\"x\": ");
	CHECK_EQ_INT(lfsfs_tracked_load(repo, NULL, &l), -LFSFS_EPARSE);
	CHECK(strstr(lfsfs_error_message(), "metadata.json") != NULL);
}

int main(void)
{
	char real[PATH_MAX];

	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	/* the library reports real paths: compare with the real root */
	if (realpath(root, real))
		snprintf(root, sizeof(root), "%.*s", (int)(sizeof(root) - 1), real);
	build_repo();
	test_walk_merge();
	test_filters();
	test_relpath();
	test_errors();
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return TEST_RESULT();
}
