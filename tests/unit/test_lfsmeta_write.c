/* Unit tests for the .lfs-meta / pointer / .gitattributes writers (meta/lfsmeta_write.c). */
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
#include "meta/lfsmeta_write.h"
#include "test.h"
#include "util/buf.h"

#define OID "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393"
#define OID_UPPER "4D7A214614AB2935C943F9E0FF69D22EADBB8F32B1258DAAA5E2CA24D17E2393"
#define OID2 "1111111111111111111111111111111111111111111111111111111111111111"

static char root[] = "/tmp/lfsfs-test-mwrite-XXXXXX";
static int n_repo;

static void mkdirs(const char *path)
{
	char tmp[1024];

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			mkdir(tmp, 0755);
			*p = '/';
		}
	}
	mkdir(tmp, 0755);
}

static void put(const char *dir, const char *rel, const char *data)
{
	char path[1024], parent[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	snprintf(parent, sizeof(parent), "%s", path);
	*strrchr(parent, '/') = '\0';
	mkdirs(parent);
	f = fopen(path, "wb");
	if (!f) {
		perror(path);
		exit(1);
	}
	fputs(data, f);
	fclose(f);
}

/* Whole file as a malloc'd string, or NULL if absent. */
static char *slurp(const char *dir, const char *rel)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(0);
	char path[1024];

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	if (lfsfs_buf_read_file(&b, path)) {
		lfsfs_buf_release(&b);
		return NULL;
	}
	return lfsfs_buf_detach(&b);
}

static int exists(const char *dir, const char *rel)
{
	char path[1024];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	return lstat(path, &sb) == 0;
}

static ino_t inode_of(const char *dir, const char *rel)
{
	char path[1024];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	return lstat(path, &sb) ? 0 : sb.st_ino;
}

/* A fresh repository directory (with a .git dir) under root. */
static const char *new_repo(void)
{
	static char dir[512];

	snprintf(dir, sizeof(dir), "%s/r%d", root, ++n_repo);
	mkdirs(dir);
	put(dir, ".git/HEAD", "ref: refs/heads/main\n");
	return dir;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

static int count_tmp_files(const char *dir)
{
	char cmd[1024];
	FILE *p;
	int n = 0;

	snprintf(cmd, sizeof(cmd), "find '%s' -name '.lfsfs-tmp-*' | wc -l", dir);
	p = popen(cmd, "r");
	if (p) {
		if (fscanf(p, "%d", &n) != 1)
			n = -1;
		pclose(p);
	}
	return n;
}

/* ---- tests --------------------------------------------------------------- */

static void test_etag_filename(void)
{
	char out[300];

	CHECK_EQ_INT(lfsfs_etag_filename("\"abc123etag\"", out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "abc123etag");
	CHECK_EQ_INT(lfsfs_etag_filename("abc123etag", out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "abc123etag");
	CHECK_EQ_INT(lfsfs_etag_filename("W/\"x y\"", out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "x%20y");
	/* nginx: "<mtime hex>-<size hex>" needs no escaping */
	CHECK_EQ_INT(lfsfs_etag_filename("\"6b02cafe-2dc6c0\"", out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "6b02cafe-2dc6c0");
	/* S3 multipart, Azure, GCS base64 */
	CHECK_EQ_INT(
	        lfsfs_etag_filename("\"9b2cf535f27731c974343645a3985328-12\"", out, sizeof(out)),
	        0);
	CHECK_EQ_STR(out, "9b2cf535f27731c974343645a3985328-12");
	CHECK_EQ_INT(lfsfs_etag_filename("\"0x8DB1234ABCD\"", out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "0x8DB1234ABCD");
	CHECK_EQ_INT(lfsfs_etag_filename("CJ+K4/a=", out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "CJ%2BK4%2Fa%3D");
	/* '%' itself, a quote inside, non-ASCII, a path separator, dots */
	CHECK_EQ_INT(lfsfs_etag_filename("\"a%b\"", out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "a%25b");
	CHECK_EQ_INT(lfsfs_etag_filename("\"a\"b\"", out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "a%22b");
	CHECK_EQ_INT(lfsfs_etag_filename("\"caf\xc3\xa9\"", out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "caf%C3%A9");
	CHECK_EQ_INT(lfsfs_etag_filename("../../etc/passwd", out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "..%2F..%2Fetc%2Fpasswd");
	CHECK(!strchr(out, '/'));
	/* nothing left, or too long for a file name */
	CHECK_EQ_INT(lfsfs_etag_filename("\"\"", out, sizeof(out)), -EINVAL);
	CHECK_EQ_INT(lfsfs_etag_filename("W/\"\"", out, sizeof(out)), -EINVAL);
	{
		char big[200];
		memset(big, '/', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		CHECK_EQ_INT(lfsfs_etag_filename(big, out, sizeof(out)), -ENAMETOOLONG);
	}
}

static void test_etag_helpers(void)
{
	char out[160], sha[65];

	CHECK_EQ_INT(lfsfs_etag_normalize("abc", out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "\"abc\"");
	CHECK_EQ_INT(lfsfs_etag_normalize("\"abc\"", out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "\"abc\"");
	CHECK_EQ_INT(lfsfs_etag_normalize("W/\"abc\"", out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "W/\"abc\"");
	CHECK(lfsfs_etag_normalize("", out, sizeof(out)) < 0);
	CHECK(lfsfs_etag_normalize("a\nb", out, sizeof(out)) < 0);
	CHECK(lfsfs_etag_same("\"abc\"", "abc"));
	CHECK(lfsfs_etag_same("W/\"abc\"", "\"abc\""));
	CHECK(!lfsfs_etag_same("\"abc\"", "\"abd\""));
	CHECK_EQ_INT(lfsfs_sha256_parse(OID_UPPER, sha), 0);
	CHECK_EQ_STR(sha, OID);
	CHECK_EQ_INT(lfsfs_sha256_parse("sha256:" OID, sha), 0);
	CHECK_EQ_STR(sha, OID);
	CHECK(lfsfs_sha256_parse(OID "0", sha) < 0);
	CHECK(lfsfs_sha256_parse("xyz", sha) < 0);
}

static void test_write_atomic(void)
{
	const char *r = new_repo();
	char path[1024];
	struct stat sb;
	ino_t ino;
	char *s;

	snprintf(path, sizeof(path), "%s/f.txt", r);
	CHECK_EQ_INT(lfsfs_write_atomic(path, "one\n", 4, 0), 1);
	s = slurp(r, "f.txt");
	CHECK_EQ_STR(s, "one\n");
	free(s);
	/* identical bytes: nothing is touched (same inode) */
	ino = inode_of(r, "f.txt");
	CHECK_EQ_INT(lfsfs_write_atomic(path, "one\n", 4, 0), 0);
	CHECK_EQ_INT(inode_of(r, "f.txt"), ino);
	/* new bytes: a new inode renamed over, mode kept */
	chmod(path, 0600);
	CHECK_EQ_INT(lfsfs_write_atomic(path, "two\n", 4, LFSFS_WRITE_NOSYNC), 1);
	CHECK(inode_of(r, "f.txt") != ino);
	CHECK_EQ_INT(stat(path, &sb), 0);
	CHECK_EQ_INT(sb.st_mode & 0777, 0600);
	s = slurp(r, "f.txt");
	CHECK_EQ_STR(s, "two\n");
	free(s);
	CHECK_EQ_INT(count_tmp_files(r), 0);
	/* a directory that does not exist: an error, nothing left behind */
	snprintf(path, sizeof(path), "%s/no/such/dir/f.txt", r);
	CHECK(lfsfs_write_atomic(path, "x", 1, 0) < 0);
}

static const char META_IN[] =
        "{\n"
        "\t\"zz/other.bam\": {\"remote_url\": \"https://h/other.bam\", \"size\": 5,\n"
        "\t\t\"custom\": {\"nested\": [1, 2.5, \"x\", null, true], \"b\": false}},\n"
        "\t\"./data//a.vcf\": {\"remote_url\": \"https://h/a.vcf\", \"size\": 1000,\n"
        "\t\t\"etag\": \"\\\"e1\\\"\", \"patient\": \"Patient/1\", \"x-lab\": \"caf\xc3\xa9\"},\n"
        "\t\"unknown-top\": 42\n"
        "}\n";

static const char META_OUT[] = "{\n"
                               "  \"./data//a.vcf\": {\n"
                               "    \"etag\": \"\\\"e1\\\"\",\n"
                               "    \"patient\": \"Patient/1\",\n"
                               "    \"remote_url\": \"https://h/a.vcf\",\n"
                               "    \"sha256\": \"" OID "\",\n"
                               "    \"size\": 1000,\n"
                               "    \"specimen\": \"Specimen/S\",\n"
                               "    \"x-lab\": \"caf\xc3\xa9\"\n"
                               "  },\n"
                               "  \"unknown-top\": 42,\n"
                               "  \"zz/other.bam\": {\n"
                               "    \"custom\": {\n"
                               "      \"b\": false,\n"
                               "      \"nested\": [\n"
                               "        1,\n"
                               "        2.5,\n"
                               "        \"x\",\n"
                               "        null,\n"
                               "        true\n"
                               "      ]\n"
                               "    },\n"
                               "    \"remote_url\": \"https://h/other.bam\",\n"
                               "    \"size\": 5\n"
                               "  }\n"
                               "}\n";

static void test_update_keeps_unknown_keys(void)
{
	const char *r = new_repo();
	const char *fields[] = { "specimen", "Specimen/S" };
	struct lfsfs_writer *w = NULL;
	struct lfsfs_regobj o = { 0 };
	struct lfsfs_regresult res;
	struct lfsfs_meta *m = NULL;
	unsigned ch = 0;
	ino_t ino;
	char *s;

	put(r, ".lfs-meta/metadata.json", META_IN);
	CHECK_EQ_INT(lfsfs_writer_open(r, 0, &w), 0);
	o.path = "data/a.vcf";
	o.url = "https://h/a.vcf";
	o.etag = "\"e1\"";
	o.size = 1000;
	o.sha256 = OID;
	o.fields = fields;
	o.n_fields = 1;
	CHECK_EQ_INT(lfsfs_writer_register(w, &o, &res), 0);
	CHECK_EQ_STR(res.path, "data/a.vcf");
	CHECK(res.changed & LFSFS_WROTE_META);
	CHECK(res.changed & LFSFS_WROTE_POINTER);
	CHECK(res.changed & LFSFS_WROTE_ETAG);
	CHECK(res.changed & LFSFS_WROTE_SHA256);
	CHECK(res.changed & LFSFS_WROTE_ATTR);
	CHECK_EQ_STR(res.etag_record, ".lfs-meta/etag/e1.json");
	CHECK_EQ_INT(lfsfs_writer_commit(w, &ch), 0);
	CHECK_EQ_INT(ch, LFSFS_WROTE_META | LFSFS_WROTE_ATTR);
	lfsfs_writer_free(w);

	/* the existing (non-normalized) key was updated in place; unknown keys
	 * everywhere kept; sorted keys, 2-space indent */
	s = slurp(r, ".lfs-meta/metadata.json");
	CHECK_EQ_STR(s, META_OUT);
	free(s);
	s = slurp(r, "data/a.vcf");
	CHECK_EQ_STR(s,
	             "version https://git-lfs.github.com/spec/v1\noid sha256:" OID "\nsize 1000\n");
	free(s);
	s = slurp(r, ".lfs-meta/etag/e1.json");
	CHECK_EQ_STR(s, "{\n  \"etag\": \"\\\"e1\\\"\",\n  \"sha256\": \"" OID
	                "\",\n  \"size\": 1000,\n  \"url\": \"https://h/a.vcf\"\n}\n");
	free(s);
	s = slurp(r, ".lfs-meta/sha256/" OID ".json");
	CHECK_EQ_STR(s, "{\n  \"etag\": \"\\\"e1\\\"\",\n  \"sha256\": \"" OID
	                "\",\n  \"size\": 1000,\n  \"url\": \"https://h/a.vcf\"\n}\n");
	free(s);
	s = slurp(r, ".gitattributes");
	CHECK_EQ_STR(s, "data/a.vcf filter=lfs diff=lfs merge=lfs -text\n");
	free(s);
	CHECK_EQ_INT(count_tmp_files(r), 0);

	/* the reader agrees */
	CHECK_EQ_INT(lfsfs_meta_load(r, &m, NULL, NULL), 0);
	if (m) {
		const struct lfsfs_meta_entry *e = lfsfs_meta_find(m, "data/a.vcf");
		CHECK(e != NULL);
		if (e)
			CHECK_EQ_STR(e->sha256, OID);
		lfsfs_meta_free(m);
	}

	/* a rerun changes nothing and rewrites nothing */
	ino = inode_of(r, ".lfs-meta/metadata.json");
	CHECK_EQ_INT(lfsfs_writer_open(r, 0, &w), 0);
	o.sha256 = NULL; /* known from the entry */
	CHECK_EQ_INT(lfsfs_writer_register(w, &o, &res), 0);
	CHECK_EQ_INT(res.changed, 0);
	CHECK_EQ_STR(res.sha256, OID);
	CHECK_EQ_INT(lfsfs_writer_commit(w, &ch), 0);
	CHECK_EQ_INT(ch, 0);
	lfsfs_writer_free(w);
	CHECK_EQ_INT(inode_of(r, ".lfs-meta/metadata.json"), ino);
	s = slurp(r, ".gitattributes");
	CHECK_EQ_STR(s, "data/a.vcf filter=lfs diff=lfs merge=lfs -text\n");
	free(s);
}

static void test_refuse_malformed(void)
{
	const char *r = new_repo();
	/* cJSON stops on line 3, column 14 (the "}" after the stray comma) */
	static const char bad[] = "{\n  \"a.vcf\": {\"remote_url\": \"u\", \"size\": 1},\n"
	                          "  \"b.vcf\": {,}\n}\n";
	struct lfsfs_writer *w = NULL;
	struct lfsfs_regobj o = { 0 };
	struct lfsfs_regresult res;
	char *s;
	int rc;

	put(r, ".lfs-meta/metadata.json", bad);
	rc = lfsfs_writer_open(r, 0, &w);
	CHECK_EQ_INT(rc, -LFSFS_EPARSE);
	CHECK(w == NULL);
	CHECK(strstr(lfsfs_error_message(), ".lfs-meta/metadata.json:3:14") != NULL);
	s = slurp(r, ".lfs-meta/metadata.json");
	CHECK_EQ_STR(s, bad);
	free(s);

	/* top level not an object */
	put(r, ".lfs-meta/metadata.json", "[1, 2]\n");
	CHECK_EQ_INT(lfsfs_writer_open(r, 0, &w), -LFSFS_EPARSE);
	s = slurp(r, ".lfs-meta/metadata.json");
	CHECK_EQ_STR(s, "[1, 2]\n");
	free(s);

	/* a malformed etag record: the registration fails before writing anything */
	r = new_repo();
	put(r, ".lfs-meta/etag/e9.json", "{\"etag\": \"\\\"e9\\\"\", \"url\": }\n");
	CHECK_EQ_INT(lfsfs_writer_open(r, 0, &w), 0);
	o.path = "x.bin";
	o.url = "https://h/x.bin";
	o.etag = "\"e9\"";
	o.size = 10;
	o.sha256 = OID;
	rc = lfsfs_writer_register(w, &o, &res);
	CHECK_EQ_INT(rc, -LFSFS_EPARSE);
	CHECK(strstr(lfsfs_error_message(), ".lfs-meta/etag/e9.json:1:27") != NULL);
	CHECK_EQ_INT(lfsfs_writer_commit(w, NULL), 0);
	lfsfs_writer_free(w);
	s = slurp(r, ".lfs-meta/etag/e9.json");
	CHECK_EQ_STR(s, "{\"etag\": \"\\\"e9\\\"\", \"url\": }\n");
	free(s);
	CHECK(!exists(r, "x.bin"));
	CHECK(!exists(r, ".lfs-meta/metadata.json"));
	CHECK(!exists(r, ".lfs-meta/sha256"));
}

static void test_etag_only(void)
{
	const char *r = new_repo();
	struct lfsfs_writer *w = NULL;
	struct lfsfs_regobj o = { 0 };
	struct lfsfs_regresult res;
	char *s;

	CHECK_EQ_INT(lfsfs_writer_open(r, 0, &w), 0);
	o.path = "data/big.bam";
	o.url = "s3://bucket/big.bam";
	o.etag = "\"9b2cf535f27731c974343645a3985328\"";
	o.md5 = "9B2CF535F27731C974343645A3985328";
	o.size = 9007199254740993ull; /* above 2^53: written as a string */
	CHECK_EQ_INT(lfsfs_writer_register(w, &o, &res), 0);
	CHECK_EQ_STR(res.sha256, "");
	CHECK(!(res.changed & LFSFS_WROTE_POINTER));
	CHECK_EQ_INT(lfsfs_writer_commit(w, NULL), 0);
	lfsfs_writer_free(w);
	/* no pointer, no sha256 record, no attribute: never a placeholder */
	CHECK(!exists(r, "data/big.bam"));
	CHECK(!exists(r, ".lfs-meta/sha256"));
	CHECK(!exists(r, ".gitattributes"));
	s = slurp(r, ".lfs-meta/etag/9b2cf535f27731c974343645a3985328.json");
	CHECK_EQ_STR(s, "{\n  \"etag\": \"\\\"9b2cf535f27731c974343645a3985328\\\"\",\n"
	                "  \"sha256\": null,\n  \"size\": \"9007199254740993\",\n"
	                "  \"url\": \"s3://bucket/big.bam\"\n}\n");
	free(s);
	s = slurp(r, ".lfs-meta/metadata.json");
	CHECK_EQ_STR(s, "{\n  \"data/big.bam\": {\n"
	                "    \"etag\": \"\\\"9b2cf535f27731c974343645a3985328\\\"\",\n"
	                "    \"md5\": \"9b2cf535f27731c974343645a3985328\",\n"
	                "    \"remote_url\": \"s3://bucket/big.bam\",\n"
	                "    \"size\": \"9007199254740993\"\n  }\n}\n");
	free(s);

	/* later the sha256 becomes known (meta sync): the same registration
	 * with it fills every record and writes the pointer */
	CHECK_EQ_INT(lfsfs_writer_open(r, 0, &w), 0);
	o.sha256 = OID;
	CHECK_EQ_INT(lfsfs_writer_register(w, &o, &res), 0);
	CHECK(res.changed & LFSFS_WROTE_POINTER);
	CHECK_EQ_INT(lfsfs_writer_commit(w, NULL), 0);
	lfsfs_writer_free(w);
	s = slurp(r, ".lfs-meta/etag/9b2cf535f27731c974343645a3985328.json");
	CHECK(s && strstr(s, "\"sha256\": \"" OID "\""));
	free(s);
	CHECK(exists(r, ".lfs-meta/sha256/" OID ".json"));
	CHECK(exists(r, "data/big.bam"));
}

static void test_conflicts(void)
{
	const char *r = new_repo();
	struct lfsfs_writer *w = NULL;
	struct lfsfs_regobj o = { 0 };
	struct lfsfs_regresult res;
	char path[1024], *s;

	put(r, "plain.bin", "ordinary bytes\n");
	put(r, "real/keep.txt", "x");
	snprintf(path, sizeof(path), "%s/real", r);
	{
		char link[1024];
		snprintf(link, sizeof(link), "%s/viaLink", r);
		CHECK_EQ_INT(symlink(path, link), 0);
	}
	CHECK_EQ_INT(lfsfs_writer_open(r, 0, &w), 0);
	o.url = "https://h/o.bin";
	o.etag = "\"e1\"";
	o.size = 10;
	o.sha256 = OID;

	/* outside the repository, into .lfs-meta, through a symlink */
	o.path = "../escape.bin";
	CHECK_EQ_INT(lfsfs_writer_register(w, &o, &res), -EINVAL);
	o.path = ".lfs-meta/x.bin";
	CHECK_EQ_INT(lfsfs_writer_register(w, &o, &res), -EINVAL);
	o.path = ".git/x.bin";
	CHECK_EQ_INT(lfsfs_writer_register(w, &o, &res), -EINVAL);
	o.path = "viaLink/x.bin";
	CHECK_EQ_INT(lfsfs_writer_register(w, &o, &res), -EINVAL);
	CHECK(strstr(lfsfs_error_message(), "symbolic link") != NULL);
	CHECK(!exists(r, "real/x.bin"));

	/* an ordinary file: refused, unless forced (then a pointer replaces it) */
	o.path = "plain.bin";
	CHECK_EQ_INT(lfsfs_writer_register(w, &o, &res), -EEXIST);
	s = slurp(r, "plain.bin");
	CHECK_EQ_STR(s, "ordinary bytes\n");
	free(s);
	o.flags = LFSFS_W_FORCE;
	CHECK_EQ_INT(lfsfs_writer_register(w, &o, &res), 0);
	o.flags = 0;
	s = slurp(r, "plain.bin");
	CHECK(s && !strncmp(s, "version https://git-lfs.github.com/spec/v1\n", 43));
	free(s);

	/* the same path, same URL, another ETag: the object changed */
	o.etag = "\"e2\"";
	o.sha256 = NULL;
	CHECK_EQ_INT(lfsfs_writer_register(w, &o, &res), -LFSFS_EIMMUTABILITY);
	CHECK(strstr(lfsfs_error_message(), "IMMUTABILITY_VIOLATION") != NULL);
	/* another sha256 for the same object */
	o.etag = "\"e1\"";
	o.sha256 = OID2;
	CHECK_EQ_INT(lfsfs_writer_register(w, &o, &res), -LFSFS_ECHECKSUM_MISMATCH);
	/* another URL at the path */
	o.url = "https://h/elsewhere.bin";
	o.sha256 = OID;
	CHECK_EQ_INT(lfsfs_writer_register(w, &o, &res), -EEXIST);
	/* the sha256 record says another size */
	o.path = "other.bin";
	o.url = "https://h/o2.bin";
	o.etag = "\"e3\"";
	o.size = 11;
	CHECK_EQ_INT(lfsfs_writer_register(w, &o, &res), -LFSFS_ESIZE_MISMATCH);
	CHECK(!exists(r, "other.bin"));
	/* a reserved field name */
	{
		const char *fields[] = { "sha256", "x" };
		o.size = 10;
		o.sha256 = NULL;
		o.fields = fields;
		o.n_fields = 1;
		CHECK_EQ_INT(lfsfs_writer_register(w, &o, &res), -EINVAL);
		o.fields = NULL;
		o.n_fields = 0;
	}
	CHECK_EQ_INT(lfsfs_writer_commit(w, NULL), 0);
	lfsfs_writer_free(w);
}

static void test_record_dir_symlink(void)
{
	const char *r = new_repo();
	struct lfsfs_writer *w = NULL;
	char target[1024], link[1024];

	/* a .lfs-meta that leads elsewhere is never written through */
	snprintf(target, sizeof(target), "%s-elsewhere", r);
	mkdirs(target);
	snprintf(link, sizeof(link), "%s/.lfs-meta", r);
	CHECK_EQ_INT(symlink(target, link), 0);
	CHECK_EQ_INT(lfsfs_writer_open(r, 0, &w), -EINVAL);
	CHECK(w == NULL);
	CHECK(strstr(lfsfs_error_message(), "'.lfs-meta'") != NULL);
}

static void test_gitattributes(void)
{
	const char *r = new_repo();
	struct lfsfs_writer *w = NULL;
	struct lfsfs_regobj o = { 0 };
	struct lfsfs_regresult res;
	char *s;

	put(r, ".gitattributes",
	    "*.bin filter=lfs diff=lfs merge=lfs -text\n"
	    "*.txt text"); /* no final newline */
	CHECK_EQ_INT(lfsfs_writer_open(r, 0, &w), 0);
	o.url = "https://h/o.bin";
	o.size = 10;
	o.sha256 = OID;
	o.path = "data/x.bin"; /* covered by *.bin */
	CHECK_EQ_INT(lfsfs_writer_register(w, &o, &res), 0);
	CHECK(!(res.changed & LFSFS_WROTE_ATTR));
	o.path = "data/with space [1].vcf";
	o.url = "https://h/o.vcf";
	CHECK_EQ_INT(lfsfs_writer_register(w, &o, &res), 0);
	CHECK(res.changed & LFSFS_WROTE_ATTR);
	o.path = "#hash.vcf";
	o.url = "https://h/hash.vcf";
	CHECK_EQ_INT(lfsfs_writer_register(w, &o, &res), 0);
	CHECK_EQ_INT(lfsfs_writer_commit(w, NULL), 0);
	lfsfs_writer_free(w);
	s = slurp(r, ".gitattributes");
	CHECK_EQ_STR(s, "*.bin filter=lfs diff=lfs merge=lfs -text\n*.txt text\n"
	                "data/with[[:space:]]space[[:space:]]\\[1\\].vcf filter=lfs diff=lfs "
	                "merge=lfs -text\n"
	                "\\#hash.vcf filter=lfs diff=lfs merge=lfs -text\n");
	free(s);
	/* again: the escaped lines are recognized, nothing is added */
	CHECK_EQ_INT(lfsfs_writer_open(r, 0, &w), 0);
	o.path = "data/with space [1].vcf";
	o.url = "https://h/o.vcf";
	CHECK_EQ_INT(lfsfs_writer_register(w, &o, &res), 0);
	CHECK_EQ_INT(res.changed, 0);
	CHECK_EQ_INT(lfsfs_writer_commit(w, NULL), 0);
	lfsfs_writer_free(w);
}

static void test_facts_merge(void)
{
	struct lfsfs_objfacts g = { 0 }, h = { 0 }, out;

	h.etag = "\"abc\"";
	h.size = 100;
	h.has_size = 1;
	h.md5 = "";
	CHECK_EQ_INT(lfsfs_objfacts_merge("u", &g, &h, &out), 0);
	CHECK_EQ_STR(out.etag, "\"abc\"");
	CHECK_EQ_INT(out.size, 100);
	CHECK(out.sha256 == NULL);
	g.size = 99;
	g.has_size = 1;
	CHECK_EQ_INT(lfsfs_objfacts_merge("u", &g, &h, &out), -LFSFS_ESIZE_MISMATCH);
	CHECK(strstr(lfsfs_error_message(), "SIZE_MISMATCH") != NULL);
	g.size = 100;
	g.etag = "\"abd\"";
	CHECK_EQ_INT(lfsfs_objfacts_merge("u", &g, &h, &out), -LFSFS_EIMMUTABILITY);
	g.etag = "abc";
	g.sha256 = OID;
	h.sha256 = OID2;
	CHECK_EQ_INT(lfsfs_objfacts_merge("u", &g, &h, &out), -LFSFS_ECHECKSUM_MISMATCH);
	h.sha256 = NULL;
	CHECK_EQ_INT(lfsfs_objfacts_merge("u", &g, &h, &out), 0);
	CHECK_EQ_STR(out.sha256, OID);
	/* trusting the given facts (no HEAD) */
	CHECK_EQ_INT(lfsfs_objfacts_merge("u", &g, NULL, &out), 0);
	memset(&g, 0, sizeof(g));
	CHECK(lfsfs_objfacts_merge("u", &g, NULL, &out) < 0);
}

static void test_where(void)
{
	char *s = NULL;

	CHECK_EQ_INT(lfsfs_url_basename("https://h:80/a/b%20c.bin?X-Amz-Signature=1#f", &s), 0);
	CHECK_EQ_STR(s, "b c.bin");
	free(s);
	CHECK_EQ_INT(lfsfs_url_basename("s3://bucket/dir/key.vcf", &s), 0);
	CHECK_EQ_STR(s, "key.vcf");
	free(s);
	CHECK(lfsfs_url_basename("https://h/dir/", &s) < 0);
	CHECK(lfsfs_url_basename("s3://bucket", &s) < 0);
	CHECK(lfsfs_url_basename("https://h/a%2Fb", &s) < 0);

	CHECK_EQ_INT(lfsfs_repo_relpath("/r", "sub", "x.bin", &s), 0);
	CHECK_EQ_STR(s, "sub/x.bin");
	free(s);
	CHECK_EQ_INT(lfsfs_repo_relpath("/r", "sub", "../y//./x.bin", &s), 0);
	CHECK_EQ_STR(s, "y/x.bin");
	free(s);
	CHECK_EQ_INT(lfsfs_repo_relpath("/r", "", "/r/abs.bin", &s), 0);
	CHECK_EQ_STR(s, "abs.bin");
	free(s);
	CHECK_EQ_INT(lfsfs_repo_relpath("/r", "sub", "../../x.bin", &s), -EINVAL);
	CHECK_EQ_INT(lfsfs_repo_relpath("/r", "", "/rx/a.bin", &s), -EINVAL);
	CHECK_EQ_INT(lfsfs_repo_relpath("/r", "", "/r", &s), -EINVAL);
}

int main(void)
{
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	test_etag_filename();
	test_etag_helpers();
	test_write_atomic();
	test_update_keeps_unknown_keys();
	test_refuse_malformed();
	test_etag_only();
	test_conflicts();
	test_record_dir_symlink();
	test_gitattributes();
	test_facts_merge();
	test_where();
	nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return TEST_RESULT();
}
