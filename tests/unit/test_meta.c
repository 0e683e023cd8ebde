/* Unit tests for .lfs-meta records and the .git/drs hint reader. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lfsfs/error.h"
#include "meta/lfsmeta.h"
#include "test.h"

#define OID "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393"
#define OID_UPPER "4D7A214614AB2935C943F9E0FF69D22EADBB8F32B1258DAAA5E2CA24D17E2393"
#define OID2 "1111111111111111111111111111111111111111111111111111111111111111"

static char root[] = "/tmp/lfsfs-test-meta-XXXXXX";
static int n_repo;

/* Collected refusals: "path|why" lines. */
static char refusals[8192];

static void on_refused(const char *path, const char *why, void *ctx)
{
	size_t n = strlen(refusals);

	(*(int *)ctx)++;
	snprintf(refusals + n, sizeof(refusals) - n, "%s|%s\n", path, why);
}

static int refused_path(const char *path)
{
	char needle[512];

	snprintf(needle, sizeof(needle), "%s|", path);
	for (const char *s = refusals; (s = strstr(s, needle)); s++)
		if (s == refusals || s[-1] == '\n')
			return 1;
	return 0;
}

static void mkdirs(const char *path)
{
	char tmp[1024];

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

/* Write data to <dir>/<rel>, creating parent directories. */
static void put(const char *dir, const char *rel, const char *data, size_t n)
{
	char path[1024];
	char *slash;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	slash = strrchr(path, '/');
	*slash = '\0';
	mkdirs(path);
	*slash = '/';
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK(write(fd, data, n) == (ssize_t)n);
	close(fd);
}
#define PUTS(dir, rel, s) put((dir), (rel), (s), strlen(s))

/* A fresh, empty repository directory under root. */
static const char *new_repo(char *buf, size_t n)
{
	snprintf(buf, n, "%s/repo%d", root, n_repo++);
	mkdirs(buf);
	return buf;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void test_missing(void)
{
	char repo[256];
	struct lfsfs_meta *m = NULL;
	int nref = 0;

	new_repo(repo, sizeof(repo));
	CHECK_EQ_INT(lfsfs_meta_load(repo, &m, on_refused, &nref), 0);
	CHECK(m != NULL);
	if (m) {
		CHECK_EQ_INT(m->n, 0);
		CHECK(lfsfs_meta_find(m, "a") == NULL);
		CHECK(lfsfs_meta_find_oid(m, OID) == NULL);
	}
	CHECK_EQ_INT(nref, 0);
	lfsfs_meta_free(m);

	/* an empty object is an empty set too */
	PUTS(repo, ".lfs-meta/metadata.json", "{}\n");
	CHECK_EQ_INT(lfsfs_meta_load(repo, &m, NULL, NULL), 0);
	CHECK(m && m->n == 0);
	lfsfs_meta_free(m);
}

static void test_good(void)
{
	char repo[256];
	struct lfsfs_meta *m = NULL;
	const struct lfsfs_meta_entry *e;
	int nref = 0;

	new_repo(repo, sizeof(repo));
	PUTS(repo, ".lfs-meta/metadata.json",
	     "{\n"
	     "  \"data/z.vcf\": {\"remote_url\": \"s3://bucket/z.vcf\", \"etag\": \"\\\"abc-1\\\"\",\n"
	     "                 \"size\": 1048576, \"md5\": \"x\", \"patient\": \"p1\"},\n"
	     "  \"data/a.bam\": {\"remote_url\": \"https://h/a.bam\", \"size\": \"123\",\n"
	     "                 \"sha256\": \"sha256:" OID_UPPER "\"},\n"
	     "  \"./top//b.txt\": {\"remote_url\": \"gs://b/b.txt\", \"size\": 0, \"etag\": null,\n"
	     "                 \"sha256\": null},\n"
	     "  \"huge.bin\": {\"remote_url\": \"az://c/h\", \"size\": \"18446744073709551615\",\n"
	     "                \"sha256\": \"" OID2 "\"}\n"
	     "}\n");
	CHECK_EQ_INT(lfsfs_meta_load(repo, &m, on_refused, &nref), 0);
	CHECK_EQ_INT(nref, 0);
	if (!m)
		return;
	CHECK_EQ_INT(m->n, 4);
	/* sorted by path */
	for (size_t i = 1; i < m->n; i++)
		CHECK(strcmp(m->entries[i - 1].path, m->entries[i].path) < 0);

	e = lfsfs_meta_find(m, "data/z.vcf");
	CHECK(e != NULL);
	if (e) {
		CHECK_EQ_STR(e->url, "s3://bucket/z.vcf");
		CHECK_EQ_STR(e->etag, "\"abc-1\"");
		CHECK(e->has_size);
		CHECK_EQ_INT(e->size, 1048576);
		CHECK_EQ_STR(e->sha256, "");
	}
	e = lfsfs_meta_find(m, "data/a.bam");
	CHECK(e != NULL);
	if (e) {
		CHECK_EQ_INT(e->size, 123);   /* size as a string */
		CHECK_EQ_STR(e->sha256, OID); /* prefix stripped, lowercased */
		CHECK(e->etag == NULL);
	}
	e = lfsfs_meta_find(m, "top/b.txt"); /* key normalized */
	CHECK(e != NULL);
	if (e) {
		CHECK_EQ_INT(e->size, 0);
		CHECK(e->has_size);
		CHECK(e->etag == NULL);
	}
	CHECK(lfsfs_meta_find(m, "./top//b.txt") == NULL);
	e = lfsfs_meta_find(m, "huge.bin");
	CHECK(e && e->size == UINT64_MAX);
	CHECK(lfsfs_meta_find(m, "data") == NULL);
	CHECK(lfsfs_meta_find(m, "zzz") == NULL);
	CHECK(lfsfs_meta_find(m, "") == NULL);

	e = lfsfs_meta_find_oid(m, OID);
	CHECK(e && !strcmp(e->path, "data/a.bam"));
	e = lfsfs_meta_find_oid(m, OID2);
	CHECK(e && !strcmp(e->path, "huge.bin"));
	CHECK(lfsfs_meta_find_oid(m, "") == NULL);
	CHECK(lfsfs_meta_find_oid(m, NULL) == NULL);
	lfsfs_meta_free(m);
}

static void test_refused(void)
{
	char repo[256];
	struct lfsfs_meta *m = NULL;
	int nref = 0;

	new_repo(repo, sizeof(repo));
	refusals[0] = '\0';
	PUTS(repo, ".lfs-meta/metadata.json",
	     "{\n"
	     "  \"../x\": {\"remote_url\": \"s3://b/1\", \"size\": 1},\n"
	     "  \"/abs\": {\"remote_url\": \"s3://b/2\", \"size\": 1},\n"
	     "  \"a/../../b\": {\"remote_url\": \"s3://b/3\", \"size\": 1},\n"
	     "  \".git/config\": {\"remote_url\": \"s3://b/4\", \"size\": 1},\n"
	     "  \"sub/.git/hooks/post-checkout\": {\"remote_url\": \"s3://b/5\", \"size\": 1},\n"
	     "  \"back\\\\slash\": {\"remote_url\": \"s3://b/6\", \"size\": 1},\n"
	     "  \"\": {\"remote_url\": \"s3://b/7\", \"size\": 1},\n"
	     "  \"no-url\": {\"size\": 1},\n"
	     "  \"empty-url\": {\"remote_url\": \"\", \"size\": 1},\n"
	     "  \"no-size\": {\"remote_url\": \"s3://b/8\"},\n"
	     "  \"neg-size\": {\"remote_url\": \"s3://b/9\", \"size\": -1},\n"
	     "  \"frac-size\": {\"remote_url\": \"s3://b/10\", \"size\": 1.5},\n"
	     "  \"junk-size\": {\"remote_url\": \"s3://b/11\", \"size\": \"12abc\"},\n"
	     "  \"over-size\": {\"remote_url\": \"s3://b/12\", \"size\": \"18446744073709551616\"},\n"
	     "  \"inexact-size\": {\"remote_url\": \"s3://b/13\", \"size\": 1e300},\n"
	     "  \"bad-sha\": {\"remote_url\": \"s3://b/14\", \"size\": 1, \"sha256\": \"md5:abc\"},\n"
	     "  \"bad-etag\": {\"remote_url\": \"s3://b/15\", \"size\": 1, \"etag\": 5},\n"
	     "  \"not-object\": \"s3://b/16\",\n"
	     "  \"d/e\": {\"remote_url\": \"s3://b/first\", \"size\": 1},\n"
	     "  \"d//e\": {\"remote_url\": \"s3://b/second\", \"size\": 2},\n"
	     "  \"ok\": {\"remote_url\": \"s3://b/ok\", \"size\": 1}\n"
	     "}\n");
	CHECK_EQ_INT(lfsfs_meta_load(repo, &m, on_refused, &nref), 0);
	if (!m)
		return;
	CHECK_EQ_INT(m->n, 2);
	CHECK(lfsfs_meta_find(m, "ok") != NULL);
	CHECK(lfsfs_meta_find(m, "d/e") && !strcmp(lfsfs_meta_find(m, "d/e")->url, "s3://b/first"));
	CHECK(lfsfs_meta_find(m, "x") == NULL);
	CHECK(lfsfs_meta_find(m, "b") == NULL);
	CHECK(lfsfs_meta_find(m, "abs") == NULL);
	CHECK(lfsfs_meta_find(m, ".git/config") == NULL);
	CHECK_EQ_INT(nref, 19);
	CHECK(refused_path("../x"));
	CHECK(refused_path("/abs"));
	CHECK(refused_path("a/../../b"));
	CHECK(refused_path(".git/config"));
	CHECK(refused_path("sub/.git/hooks/post-checkout"));
	CHECK(refused_path("back\\slash"));
	CHECK(refused_path(""));
	CHECK(refused_path("no-url"));
	CHECK(refused_path("empty-url"));
	CHECK(refused_path("no-size"));
	CHECK(refused_path("neg-size"));
	CHECK(refused_path("frac-size"));
	CHECK(refused_path("junk-size"));
	CHECK(refused_path("over-size"));
	CHECK(refused_path("inexact-size"));
	CHECK(refused_path("bad-sha"));
	CHECK(refused_path("bad-etag"));
	CHECK(refused_path("not-object"));
	CHECK(refused_path("d/e"));
	CHECK(strstr(refusals, "../x|'..' component leaves the repository\n") != NULL);
	CHECK(strstr(refusals, "/abs|absolute") != NULL);
	CHECK(strstr(refusals, ".git/config|'.git' component") != NULL);
	CHECK(strstr(refusals, "no-url|missing or empty \"remote_url\"\n") != NULL);
	CHECK(strstr(refusals, "no-size|missing \"size\"\n") != NULL);
	CHECK(strstr(refusals, "d/e|duplicate path") != NULL);
	lfsfs_meta_free(m);

	/* a NULL callback is allowed */
	CHECK_EQ_INT(lfsfs_meta_load(repo, &m, NULL, NULL), 0);
	CHECK(m && m->n == 2);
	lfsfs_meta_free(m);
}

/* Loading must fail with EPARSE and a message containing want. */
static void check_broken(const char *json, size_t n, const char *want, int line)
{
	char repo[256];
	struct lfsfs_meta *m = (struct lfsfs_meta *)1;
	int rc;

	new_repo(repo, sizeof(repo));
	put(repo, ".lfs-meta/metadata.json", json, n);
	lfsfs_error_clear();
	rc = lfsfs_meta_load(repo, &m, NULL, NULL);
	if (rc != -LFSFS_EPARSE || m != NULL || !strstr(lfsfs_error_message(), want)) {
		test_fail++;
		fprintf(stderr, "%s:%d: rc %d msg \"%s\", expected EPARSE with \"%s\"\n", __FILE__,
		        line, rc, lfsfs_error_message(), want);
	} else {
		test_pass++;
	}
	if (rc == 0)
		lfsfs_meta_free(m);
}
#define BROKEN(s, want) check_broken((s), strlen(s), (want), __LINE__)

static void test_broken(void)
{
	BROKEN("{\n  \"a\": {\"remote_url\": \"x\",\n  \"size\": 1,,\n}\n}\n",
	       "/.lfs-meta/metadata.json:3:");
	BROKEN("{\n  \"a\": {\"remote_url\": \"x\",\n  \"size\": 1,,\n}\n}\n", "malformed json");
	BROKEN("{\"a\": {\"remote_url\": \"x\", \"size\": 1}}\n}",
	       "metadata.json:2:1': malformed json");
	BROKEN("{\"a\": 1} trailing", "metadata.json:1:10'");
	BROKEN("", "metadata.json:1:1'");
	BROKEN("{\"a\": tru}", "metadata.json:1:7'");
	BROKEN("{\"a\": \"unterminated}\n", "malformed json");
	check_broken("{\"a\"\0: 1}", 9, "metadata.json:1:5': nul byte", __LINE__);
	BROKEN("[1, 2]", "top level must be a json object");
	BROKEN("\"str\"", "top level must be a json object");
	/* the message names the file */
	BROKEN("{", "cannot parse '");
}

static void test_sha256_record(void)
{
	char repo[256];
	struct lfsfs_record r;

	new_repo(repo, sizeof(repo));
	memset(&r, 0x5a, sizeof(r));
	CHECK_EQ_INT(lfsfs_meta_read_sha256(repo, OID, &r), -ENOENT);
	CHECK(r.urls == NULL && r.n_urls == 0);
	lfsfs_record_release(&r);

	PUTS(repo, ".lfs-meta/sha256/" OID ".json",
	     "{\"sha256\": \"" OID "\", \"urls\": [\"s3://b/k\", \"https://h/k\", \"s3://b/k\"],\n"
	     " \"size\": \"42\", \"etag\": \"\\\"e1\\\"\", \"other\": {\"x\": [1]}}\n");
	CHECK_EQ_INT(lfsfs_meta_read_sha256(repo, OID, &r), 0);
	CHECK_EQ_INT(r.n_urls, 2);
	if (r.n_urls == 2) {
		CHECK_EQ_STR(r.urls[0], "s3://b/k");
		CHECK_EQ_STR(r.urls[1], "https://h/k");
	}
	CHECK(r.has_size);
	CHECK_EQ_INT(r.size, 42);
	CHECK_EQ_STR(r.etag, "\"e1\"");
	CHECK_EQ_STR(r.sha256, OID);
	lfsfs_record_release(&r);
	CHECK(r.urls == NULL && r.etag == NULL);

	/* "url" first, then "urls"; "sha256:" prefix and uppercase accepted */
	PUTS(repo, ".lfs-meta/sha256/" OID ".json",
	     "{\"sha256\": \"sha256:" OID_UPPER
	     "\", \"url\": \"gs://b/k\", \"urls\": [\"s3://b/k\"],"
	     " \"size\": 7}");
	CHECK_EQ_INT(lfsfs_meta_read_sha256(repo, OID, &r), 0);
	CHECK_EQ_INT(r.n_urls, 2);
	if (r.n_urls == 2) {
		CHECK_EQ_STR(r.urls[0], "gs://b/k");
		CHECK_EQ_STR(r.urls[1], "s3://b/k");
	}
	CHECK_EQ_INT(r.size, 7);
	CHECK(r.etag == NULL);
	lfsfs_record_release(&r);

	/* no sha256 field: the file name is the oid; no size is allowed */
	PUTS(repo, ".lfs-meta/sha256/" OID ".json", "{\"url\": \"s3://b/k\"}");
	CHECK_EQ_INT(lfsfs_meta_read_sha256(repo, OID, &r), 0);
	CHECK_EQ_STR(r.sha256, OID);
	CHECK(!r.has_size);
	lfsfs_record_release(&r);

	/* mismatching sha256 */
	PUTS(repo, ".lfs-meta/sha256/" OID ".json",
	     "{\"sha256\": \"" OID2 "\", \"url\": \"s3://b/k\", \"size\": 1}");
	CHECK_EQ_INT(lfsfs_meta_read_sha256(repo, OID, &r), -LFSFS_EPARSE);
	CHECK(strstr(lfsfs_error_message(), OID2) != NULL);
	CHECK(strstr(lfsfs_error_message(), "is named for '" OID "'") != NULL);
	CHECK(r.urls == NULL && r.n_urls == 0);

	PUTS(repo, ".lfs-meta/sha256/" OID ".json", "{\"sha256\": \"abc\", \"url\": \"s3://b/k\"}");
	CHECK_EQ_INT(lfsfs_meta_read_sha256(repo, OID, &r), -LFSFS_EPARSE);

	/* url shapes */
	PUTS(repo, ".lfs-meta/sha256/" OID ".json", "{\"sha256\": \"" OID "\", \"size\": 1}");
	CHECK_EQ_INT(lfsfs_meta_read_sha256(repo, OID, &r), -LFSFS_EPARSE);
	CHECK(strstr(lfsfs_error_message(), "no \"url\" or \"urls\"") != NULL);
	PUTS(repo, ".lfs-meta/sha256/" OID ".json", "{\"urls\": [\"s3://b/k\", 5]}");
	CHECK_EQ_INT(lfsfs_meta_read_sha256(repo, OID, &r), -LFSFS_EPARSE);
	CHECK(r.urls == NULL && r.n_urls == 0);
	PUTS(repo, ".lfs-meta/sha256/" OID ".json", "{\"urls\": \"s3://b/k\"}");
	CHECK_EQ_INT(lfsfs_meta_read_sha256(repo, OID, &r), -LFSFS_EPARSE);
	PUTS(repo, ".lfs-meta/sha256/" OID ".json", "{\"url\": 3}");
	CHECK_EQ_INT(lfsfs_meta_read_sha256(repo, OID, &r), -LFSFS_EPARSE);
	PUTS(repo, ".lfs-meta/sha256/" OID ".json", "{\"url\": \"s3://b/k\", \"size\": -4}");
	CHECK_EQ_INT(lfsfs_meta_read_sha256(repo, OID, &r), -LFSFS_EPARSE);
	PUTS(repo, ".lfs-meta/sha256/" OID ".json", "{\"url\": \"s3://b/k\", \"etag\": []}");
	CHECK_EQ_INT(lfsfs_meta_read_sha256(repo, OID, &r), -LFSFS_EPARSE);

	/* malformed json names file and position */
	PUTS(repo, ".lfs-meta/sha256/" OID ".json", "{\n\"url\": \"s3://b/k\"\n\"size\": 1}");
	CHECK_EQ_INT(lfsfs_meta_read_sha256(repo, OID, &r), -LFSFS_EPARSE);
	CHECK(strstr(lfsfs_error_message(), OID ".json:3:1'") != NULL);

	/* over the 1 MiB record cap */
	{
		size_t n = (1 << 20) + 16;
		char *big = malloc(n);

		CHECK(big != NULL);
		if (big) {
			memset(big, ' ', n);
			big[0] = '{';
			big[n - 1] = '}';
			put(repo, ".lfs-meta/sha256/" OID ".json", big, n);
			CHECK_EQ_INT(lfsfs_meta_read_sha256(repo, OID, &r), -LFSFS_EPARSE);
			CHECK(strstr(lfsfs_error_message(), "larger than") != NULL);
			free(big);
		}
	}

	/* the oid becomes a file name: only a real oid is accepted */
	CHECK_EQ_INT(lfsfs_meta_read_sha256(repo, "../../../etc/passwd", &r), -EINVAL);
	CHECK_EQ_INT(lfsfs_meta_read_sha256(repo, OID_UPPER, &r), -EINVAL);
}

static void test_hint(void)
{
	char repo[256], gitdir[300];
	char *url = (char *)"unset";

	new_repo(repo, sizeof(repo));
	snprintf(gitdir, sizeof(gitdir), "%s/.git", repo);
	CHECK_EQ_INT(lfsfs_hint_read_url(gitdir, OID, &url), -ENOENT);
	CHECK(url == NULL);

	PUTS(gitdir, "drs/pre-commit/v1/oids/" OID ".json",
	     "{\"lfs_oid\": \"" OID "\", \"paths\": [\"data/a.bam\"],\n"
	     " \"s3_url\": \"s3://bucket/a.bam\", \"updated_at\": \"2024-01-01T00:00:00Z\",\n"
	     " \"content_changed\": false}\n");
	CHECK_EQ_INT(lfsfs_hint_read_url(gitdir, OID, &url), 0);
	CHECK_EQ_STR(url, "s3://bucket/a.bam");
	free(url);

	PUTS(gitdir, "drs/pre-commit/v1/oids/" OID ".json", "{\"lfs_oid\": \"" OID "\"}");
	CHECK_EQ_INT(lfsfs_hint_read_url(gitdir, OID, &url), -ENOENT);
	CHECK(url == NULL);
	PUTS(gitdir, "drs/pre-commit/v1/oids/" OID ".json", "{\"s3_url\": null}");
	CHECK_EQ_INT(lfsfs_hint_read_url(gitdir, OID, &url), -ENOENT);

	PUTS(gitdir, "drs/pre-commit/v1/oids/" OID ".json",
	     "{\"lfs_oid\": \"" OID2 "\", \"s3_url\": \"s3://bucket/other\"}");
	CHECK_EQ_INT(lfsfs_hint_read_url(gitdir, OID, &url), -LFSFS_EPARSE);
	CHECK(url == NULL);

	PUTS(gitdir, "drs/pre-commit/v1/oids/" OID ".json", "{\"s3_url\": \"s3://b/k\",}");
	CHECK_EQ_INT(lfsfs_hint_read_url(gitdir, OID, &url), -LFSFS_EPARSE);
	CHECK(strstr(lfsfs_error_message(), OID ".json:1:") != NULL);
	PUTS(gitdir, "drs/pre-commit/v1/oids/" OID ".json", "[]");
	CHECK_EQ_INT(lfsfs_hint_read_url(gitdir, OID, &url), -LFSFS_EPARSE);

	CHECK_EQ_INT(lfsfs_hint_read_url(gitdir, "x/../../y", &url), -EINVAL);
}

int main(void)
{
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	test_missing();
	test_good();
	test_refused();
	test_broken();
	test_sha256_record();
	test_hint();
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return TEST_RESULT();
}
