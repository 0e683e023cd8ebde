/*
 * DRS / Indexd resolvers: signed-URL expiry, drs:// URIs, DrsObject parsing
 * and checks, JWT exp; then the resolvers end to end (single, bulk, Gen3
 * credentials, wrong token, Indexd) against tests/lib/drs_server.py.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "lfsfs/error.h"
#include "net/net.h"
#include "resolve/drs_common.h"
#include "resolve/resolve.h"
#include "test.h"
#include "util/config.h"

/* 2024-01-02T03:04:05Z */
#define T0 1704164645L

static void test_expiry(void)
{
	time_t t = 0;

	CHECK_EQ_INT(lfsfs_drs_url_expiry("https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-"
	                                  "SHA256&X-Amz-Date=20240102T030405Z&X-Amz-Expires=3600&"
	                                  "X-Amz-Signature=abcd",
	                                  &t),
	             0);
	CHECK_EQ_INT(t, T0 + 3600);
	t = 0;
	CHECK_EQ_INT(lfsfs_drs_url_expiry(
	                     "https://h/k?x-amz-expires=60&x-amz-date=20240102T030405Z", &t),
	             0);
	CHECK_EQ_INT(t, T0 + 60);
	t = 0;
	CHECK_EQ_INT(
	        lfsfs_drs_url_expiry("https://storage.googleapis.com/b/o?X-Goog-Algorithm=GOOG4-"
	                             "RSA-SHA256&X-Goog-Date=20240102T030405Z&X-Goog-Expires=900"
	                             "&X-Goog-Signature=00",
	                             &t),
	        0);
	CHECK_EQ_INT(t, T0 + 900);
	/* Azure SAS: se, percent-encoded, with and without seconds, date only */
	t = 0;
	CHECK_EQ_INT(lfsfs_drs_url_expiry("https://a.blob.core.windows.net/c/b?sv=2021-08-06&sr=b&"
	                                  "sp=r&se=2024-01-02T03%3A04%3A05Z&sig=x%2By",
	                                  &t),
	             0);
	CHECK_EQ_INT(t, T0);
	CHECK_EQ_INT(lfsfs_drs_url_expiry("https://a/c/b?se=2024-01-02T03:04Z&sig=x", &t), 0);
	CHECK_EQ_INT(t, T0 - 5);
	CHECK_EQ_INT(lfsfs_drs_url_expiry("https://a/c/b?se=2024-01-02&sig=x", &t), 0);
	CHECK_EQ_INT(t, T0 - 3 * 3600 - 4 * 60 - 5);
	CHECK_EQ_INT(lfsfs_drs_url_expiry("https://a/c/b?se=2024-01-02T03:04:05.1234567Z", &t), 0);
	CHECK_EQ_INT(t, T0);
	/* Expires= (S3 V2, CloudFront, GCS V2): epoch seconds */
	CHECK_EQ_INT(lfsfs_drs_url_expiry("https://d.cloudfront.net/x?Expires=1704164645&Signature="
	                                  "a~b&Key-Pair-Id=K",
	                                  &t),
	             0);
	CHECK_EQ_INT(t, T0);
	CHECK_EQ_INT(lfsfs_drs_url_expiry("https://h/x?Expires=1704164645#frag", &t), 0);
	CHECK_EQ_INT(t, T0);
	/* the earliest wins */
	CHECK_EQ_INT(
	        lfsfs_drs_url_expiry("https://h/x?Expires=1804164645&X-Amz-Date=20240102T030405Z"
	                             "&X-Amz-Expires=10",
	                             &t),
	        0);
	CHECK_EQ_INT(t, T0 + 10);
	/* nothing to go by */
	CHECK_EQ_INT(lfsfs_drs_url_expiry("https://h/x", &t), -ENOENT);
	CHECK_EQ_INT(lfsfs_drs_url_expiry("https://h/x?a=b&c", &t), -ENOENT);
	CHECK_EQ_INT(lfsfs_drs_url_expiry("https://h/x?X-Amz-Date=20240102T030405Z", &t), -ENOENT);
	CHECK_EQ_INT(lfsfs_drs_url_expiry("https://h/x?X-Amz-Expires=60", &t), -ENOENT);
	CHECK_EQ_INT(lfsfs_drs_url_expiry("https://h/x?Expires=soon&se=tomorrow", &t), -ENOENT);
	CHECK_EQ_INT(lfsfs_drs_url_expiry("https://h/x?e=MTcwNDE2NDY0NQ&s=00", &t), -ENOENT);
	CHECK_EQ_INT(lfsfs_drs_url_expiry("https://h/x?X-Amz-Date=2024-01-02&X-Amz-Expires=1", &t),
	             -ENOENT);
	CHECK_EQ_INT(lfsfs_drs_url_expiry("https://h/x#Expires=5", &t), -ENOENT);
	CHECK_EQ_INT(lfsfs_drs_url_expiry(NULL, &t), -ENOENT);
}

static void check_uri(const char *uri, const char *base, int want_rc, const char *want_url,
                      int want_same)
{
	char *url = NULL;
	int same = -1, rc = lfsfs_drs_uri_to_url(uri, base, &url, &same);

	CHECK_EQ_INT(rc, want_rc);
	if (want_url) {
		CHECK_EQ_STR(url, want_url);
		CHECK_EQ_INT(same, want_same);
	} else {
		CHECK(url == NULL);
	}
	free(url);
}

static void test_uri(void)
{
	char *e;

	check_uri("drs://drs.example.org/abc", NULL, 0,
	          "https://drs.example.org/ga4gh/drs/v1/objects/abc", 0);
	check_uri("DRS://drs.example.org/abc", "https://other.org", 0,
	          "https://drs.example.org/ga4gh/drs/v1/objects/abc", 0);
	check_uri("drs://127.0.0.1:8080/id-1", "http://127.0.0.1:8080/", 0,
	          "http://127.0.0.1:8080/ga4gh/drs/v1/objects/id-1", 1);
	check_uri("drs://host.org/x", "https://HOST.org/prefix/", 0,
	          "https://HOST.org/prefix/ga4gh/drs/v1/objects/x", 1);
	check_uri("drs://host.org/x", "https://user:pw@host.org", 0,
	          "https://user:pw@host.org/ga4gh/drs/v1/objects/x", 1);
	/* ids are percent-encoded; what is encoded already stays */
	check_uri("drs://h/sha256:ab cd", NULL, 0,
	          "https://h/ga4gh/drs/v1/objects/sha256%3Aab%20cd", 0);
	check_uri("drs://h/sha256%3Aab", NULL, 0, "https://h/ga4gh/drs/v1/objects/sha256%3Aab", 0);
	check_uri("drs://h/dg.4503/0a1b", NULL, 0, "https://h/ga4gh/drs/v1/objects/dg.4503%2F0a1b",
	          0);
	/* compact identifiers: on lfsfs.drs.url, or not at all */
	check_uri("drs://dg.4503:0a1b-2c", "https://gen3.org", 0,
	          "https://gen3.org/ga4gh/drs/v1/objects/dg.4503%3A0a1b-2c", 1);
	check_uri("drs://dg.4503:0a1b-2c", NULL, -LFSFS_EUNSUPPORTED, NULL, 0);
	/* not drs URIs */
	check_uri("https://h/x", NULL, -EINVAL, NULL, 0);
	check_uri("drs://", NULL, -EINVAL, NULL, 0);
	check_uri("drs://host/", NULL, -EINVAL, NULL, 0);
	check_uri("drs:///id", NULL, -EINVAL, NULL, 0);
	check_uri("drs://hostonly", NULL, -EINVAL, NULL, 0);
	check_uri("drs://a@b/x", NULL, -EINVAL, NULL, 0);

	e = lfsfs_drs_encode_id("A-z_0.9~");
	CHECK_EQ_STR(e, "A-z_0.9~");
	free(e);
	e = lfsfs_drs_encode_id("a/b:c%2Fd%zz\xc3\xa9");
	CHECK_EQ_STR(e, "a%2Fb%3Ac%2Fd%25zz%C3%A9");
	free(e);
}

#define OID "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
#define OID_UP "2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824"
#define OTHER "486ea46224d1bb4fb680f34f7c9ad96a8f24ec88be73ea8e5a6c65260e9cb8a7"

static void test_object(void)
{
	struct lfsfs_drs_object o;
	struct lfsfs_buf why = LFSFS_BUF_INIT(4096);

	/* the spec's shape: sha-256, access_url with headers, and an access_id */
	CHECK_EQ_INT(
	        lfsfs_drs_object_parse_text(
	                "{\"id\": \"obj-1\", \"self_uri\": \"drs://h/obj-1\", \"size\": 5,"
	                " \"created_time\": \"2024-01-01T00:00:00Z\","
	                " \"checksums\": [{\"type\": \"md5\", \"checksum\": \"5d41402abc4b2a76b9719d911017c592\"},"
	                "                 {\"type\": \"sha-256\", \"checksum\": \"" OID_UP "\"}],"
	                " \"access_methods\": ["
	                "   {\"type\": \"https\", \"access_url\": {\"url\": \"https://h/x\","
	                "     \"headers\": [\"Authorization: Basic Z2E0Z2g6ZHJz\"]}},"
	                "   {\"type\": \"s3\", \"access_id\": \"s3-us\", \"region\": \"us-east-1\"},"
	                "   {\"type\": \"gs\"}]}",
	                &o),
	        0);
	CHECK_EQ_STR(o.id, "obj-1");
	CHECK_EQ_INT(o.size, 5);
	CHECK_EQ_INT(o.has_size, 1);
	CHECK_EQ_STR(o.sha256, OID);
	CHECK_EQ_INT(o.sha256_conflict, 0);
	CHECK_EQ_INT(o.n_access, 2); /* the gs method has neither url nor id */
	CHECK_EQ_STR(o.access[0].url, "https://h/x");
	CHECK_EQ_INT(o.access[0].n_headers, 1);
	CHECK_EQ_STR(o.access[0].headers[0], "Authorization: Basic Z2E0Z2g6ZHJz");
	CHECK(o.access[0].access_id == NULL);
	CHECK_EQ_STR(o.access[1].access_id, "s3-us");
	CHECK_EQ_STR(o.access[1].type, "s3");
	CHECK(o.access[1].url == NULL);
	CHECK_EQ_INT(lfsfs_drs_object_check(&o, OID, 5, 1, &why), 0);
	CHECK_EQ_INT(why.len, 0);
	CHECK_EQ_INT(lfsfs_drs_object_check(&o, OID, 6, 1, &why), -ENOENT);
	CHECK(strstr(why.data, "is 5 bytes") != NULL);
	lfsfs_buf_reset(&why);
	CHECK_EQ_INT(lfsfs_drs_object_check(&o, OID, 6, 0, &why), 0);
	CHECK_EQ_INT(lfsfs_drs_object_check(&o, OTHER, 5, 1, &why), -ENOENT);
	CHECK(strstr(why.data, "checksum mismatch") != NULL);
	CHECK(strstr(why.data, "obj-1") != NULL);
	lfsfs_buf_reset(&why);
	lfsfs_drs_object_release(&o);

	/* "sha256" spelling, "sha256:" prefix, size as a string, headers as an object */
	CHECK_EQ_INT(
	        lfsfs_drs_object_parse_text(
	                "{\"id\": \"b\", \"size\": \"5\", \"checksums\": [{\"type\": \"SHA256\","
	                " \"checksum\": \"sha256:" OID "\"}], \"access_methods\": [{\"type\": "
	                "\"https\", \"access_url\": {\"url\": \"https://h/y\", \"headers\": "
	                "{\"X-Key\": \"v\"}}, \"access_id\": \"a1\"}]}",
	                &o),
	        0);
	CHECK_EQ_STR(o.sha256, OID);
	CHECK_EQ_INT(o.size, 5);
	CHECK_EQ_INT(o.n_access, 1);
	CHECK_EQ_STR(o.access[0].headers[0], "X-Key: v");
	CHECK_EQ_STR(o.access[0].access_id, "a1");
	CHECK_EQ_INT(lfsfs_drs_object_check(&o, OID, 5, 1, NULL), 0);
	lfsfs_drs_object_release(&o);

	/* only md5: never used */
	CHECK_EQ_INT(lfsfs_drs_object_parse_text(
	                     "{\"id\": \"c\", \"size\": 5, \"checksums\": [{\"type\": \"md5\", "
	                     "\"checksum\": \"5d41402abc4b2a76b9719d911017c592\"}]}",
	                     &o),
	             0);
	CHECK_EQ_STR(o.sha256, "");
	CHECK_EQ_INT(o.n_access, 0);
	CHECK_EQ_INT(lfsfs_drs_object_check(&o, OID, 5, 1, &why), -ENOENT);
	CHECK(strstr(why.data, "no sha256") != NULL);
	lfsfs_buf_reset(&why);
	lfsfs_drs_object_release(&o);

	/* two different sha256 checksums, or one that is not hex: never used */
	CHECK_EQ_INT(
	        lfsfs_drs_object_parse_text(
	                "{\"id\": \"d\", \"checksums\": [{\"type\": \"sha-256\", \"checksum\": \"" OID
	                "\"}, {\"type\": \"sha256\", \"checksum\": \"" OTHER "\"}]}",
	                &o),
	        0);
	CHECK_EQ_INT(o.sha256_conflict, 1);
	CHECK_EQ_INT(o.has_size, 0);
	CHECK_EQ_INT(lfsfs_drs_object_check(&o, OID, 5, 1, &why), -ENOENT);
	CHECK(strstr(why.data, "conflicting") != NULL);
	lfsfs_buf_reset(&why);
	lfsfs_drs_object_release(&o);
	CHECK_EQ_INT(
	        lfsfs_drs_object_parse_text(
	                "{\"checksums\": [{\"type\": \"sha-256\", \"checksum\": \"xyz\"}]}", &o),
	        0);
	CHECK_EQ_INT(lfsfs_drs_object_check(&o, OID, 5, 1, NULL), -ENOENT);
	lfsfs_drs_object_release(&o);

	/* a header that would smuggle another: the access_url is dropped */
	CHECK_EQ_INT(
	        lfsfs_drs_object_parse_text(
	                "{\"id\": \"e\", \"access_methods\": [{\"type\": \"https\", \"access_url\":"
	                " {\"url\": \"https://h/z\", \"headers\": [\"X: a\\r\\nEvil: b\"]}},"
	                " {\"type\": \"https\", \"access_url\": {\"url\": \"https://h/ok\"}}]}",
	                &o),
	        0);
	CHECK_EQ_INT(o.n_access, 1);
	CHECK_EQ_STR(o.access[0].url, "https://h/ok");
	lfsfs_drs_object_release(&o);

	/* not objects */
	CHECK_EQ_INT(lfsfs_drs_object_parse_text("[1, 2]", &o), -LFSFS_EPARSE);
	CHECK_EQ_INT(lfsfs_drs_object_parse_text("{nope", &o), -LFSFS_EPARSE);
	CHECK_EQ_INT(lfsfs_drs_object_parse_text(NULL, &o), -LFSFS_EPARSE);
	CHECK_EQ_INT(lfsfs_drs_object_parse_text("{\"id\": \"f\", \"size\": -1}", &o),
	             -LFSFS_EPARSE);
	CHECK_EQ_INT(lfsfs_drs_object_parse_text("{\"id\": \"f\", \"size\": 1.5}", &o),
	             -LFSFS_EPARSE);
	CHECK_EQ_INT(lfsfs_drs_object_parse_text("{\"id\": \"f\", \"size\": \"12x\"}", &o),
	             -LFSFS_EPARSE);

	/* hex comparison */
	CHECK(lfsfs_drs_hex_eq(OID, OID_UP));
	CHECK(lfsfs_drs_hex_eq(OID, "sha256:" OID));
	CHECK(!lfsfs_drs_hex_eq(OID, OTHER));
	CHECK(!lfsfs_drs_hex_eq(OID, "2cf24d"));
	CHECK(!lfsfs_drs_hex_eq(OID, NULL));
	lfsfs_buf_release(&why);
}

static void test_jwt(void)
{
	time_t t = 0;

	/* {"alg":"HS256"} . {"sub":"k","exp":1704164645} . sig */
	CHECK_EQ_INT(lfsfs_drs_jwt_exp("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJrIiwiZXhwIjoxNzA0MTY0NjQ1fQ"
	                               ".c2ln",
	                               &t),
	             0);
	CHECK_EQ_INT(t, T0);
	/* padded payload is tolerated */
	CHECK_EQ_INT(lfsfs_drs_jwt_exp("e30.eyJzdWIiOiJrIiwiZXhwIjoxNzA0MTY0NjQ1fQ==.x", &t), 0);
	CHECK_EQ_INT(t, T0);
	/* {"sub":"k"}: no exp */
	CHECK_EQ_INT(lfsfs_drs_jwt_exp("e30.eyJzdWIiOiJrIn0.x", &t), -LFSFS_EPARSE);
	CHECK_EQ_INT(lfsfs_drs_jwt_exp("not-a-jwt", &t), -LFSFS_EPARSE);
	CHECK_EQ_INT(lfsfs_drs_jwt_exp("a.b!c.d", &t), -LFSFS_EPARSE);
	CHECK_EQ_INT(lfsfs_drs_jwt_exp(NULL, &t), -LFSFS_EPARSE);
}

/* ------------------------------------------------------------ against the test server */

static pid_t server_pid = -1;
static char tmpdir[256];

static int server_start(const char *dir, int *port)
{
	char script[1024], cfg[700], pf[700], log[700];
	const char *src = __FILE__, *cut = strstr(src, "tests/unit/");
	FILE *f;

	if (!cut)
		return -1;
	snprintf(script, sizeof(script), "%.*stests/lib/drs_server.py", (int)(cut - src), src);
	if (access(script, R_OK))
		return -1;
	snprintf(cfg, sizeof(cfg), "%s/config.json", dir);
	snprintf(pf, sizeof(pf), "%s/port", dir);
	snprintf(log, sizeof(log), "%s/requests.log", dir);
	server_pid = fork();
	if (server_pid < 0)
		return -1;
	if (server_pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, 2);
		execlp("python3", "python3", script, "--config", cfg, "--port-file", pf, "--log",
		       log, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		int st;
		if ((f = fopen(pf, "r"))) {
			int ok = fscanf(f, "%d", port) == 1;
			fclose(f);
			if (ok)
				return 0;
		}
		if (waitpid(server_pid, &st, WNOHANG) == server_pid) {
			server_pid = -1;
			return -1;
		}
		usleep(25000);
	}
	return -1;
}

static void server_stop(void)
{
	if (server_pid > 0) {
		kill(server_pid, SIGTERM);
		waitpid(server_pid, NULL, 0);
		server_pid = -1;
	}
}

/* Write n pseudo-random bytes to dir/name; the sha256 hex into oid. */
static void make_file(const char *dir, const char *name, size_t n, unsigned seed, char *oid)
{
	char path[512];
	unsigned char *b = malloc(n), md[SHA256_DIGEST_LENGTH];
	FILE *f;

	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		b[i] = (unsigned char)(seed >> 16);
	}
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (f) {
		fwrite(b, 1, n, f);
		fclose(f);
	}
	SHA256(b, n, md);
	for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
		snprintf(oid + 2 * i, 3, "%02x", md[i]);
	free(b);
}

/* Lines of the server log that contain s. */
static int log_count(const char *s)
{
	char path[512], line[4096];
	FILE *f;
	int n = 0;

	snprintf(path, sizeof(path), "%s/requests.log", tmpdir);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, s))
			n++;
	fclose(f);
	return n;
}

static void log_clear(void)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/requests.log", tmpdir);
	if ((f = fopen(path, "w")))
		fclose(f);
}

/* A chain of `order` on the test server, with extra settings k=v pairs. */
static int chain(struct lfsfs_resolve_ctx *ctx, struct lfsfs_config **cfg, struct lfsfs_net *net,
                 int port, const char *order, const char *const *kv)
{
	char repo[400], gitdir[420], url[64];
	int rc;

	snprintf(repo, sizeof(repo), "%s/repo", tmpdir);
	snprintf(gitdir, sizeof(gitdir), "%s/.git", repo);
	mkdir(repo, 0755);
	mkdir(gitdir, 0755);
	*cfg = lfsfs_config_new();
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	lfsfs_config_set(*cfg, "lfsfs.resolvers", order);
	lfsfs_config_set(*cfg, "lfsfs.drs.url", url);
	lfsfs_config_set(*cfg, "lfsfs.indexd.url", url);
	for (; kv && kv[0]; kv += 2)
		lfsfs_config_set(*cfg, kv[0], kv[1]);
	if ((rc = lfsfs_resolve_init(ctx, repo, gitdir, NULL)))
		return rc;
	return lfsfs_resolve_configure(ctx, *cfg, net);
}

static void unchain(struct lfsfs_resolve_ctx *ctx, struct lfsfs_config *cfg)
{
	lfsfs_resolve_release(ctx);
	lfsfs_config_free(cfg);
}

static void test_against_server(void)
{
	char a[65], b[65], c[65], d[65], e[65], f[65], g[65], unknown[65], cfgpath[400], cmd[800];
	struct lfsfs_resolve_ctx ctx;
	struct lfsfs_config *cfg = NULL;
	struct lfsfs_net *net = NULL;
	struct lfsfs_record rec;
	struct lfsfs_buf why = LFSFS_BUF_INIT(8192);
	struct lfsfs_resolve_query q;
	FILE *fp;
	int port = 0, rc;
	time_t now;

	snprintf(tmpdir, sizeof(tmpdir), "%s/lfsfs-test-drs.XXXXXX",
	         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmpdir)) {
		fprintf(stderr, "skipping the server tests: mkdtemp\n");
		return;
	}
	make_file(tmpdir, "a.bin", 3000, 1, a); /* access_id, amz signed */
	make_file(tmpdir, "b.bin", 2000, 2, b); /* access_url */
	make_file(tmpdir, "c.bin", 1000, 3, c); /* access_url + headers */
	make_file(tmpdir, "d.bin", 1500, 4, d); /* the record claims another sha256 */
	make_file(tmpdir, "e.bin", 1200, 5, e); /* opaque signature: urlttl applies */
	make_file(tmpdir, "f.bin", 1100, 6, f); /* id sha256:<oid>, sha256 type */
	make_file(tmpdir, "g.bin", 900, 8, g);  /* 202 Accepted once */
	make_file(tmpdir, "u.bin", 10, 7, unknown);
	snprintf(cfgpath, sizeof(cfgpath), "%s/config.json", tmpdir);
	if (!(fp = fopen(cfgpath, "w")))
		return;
	fprintf(fp,
	        "{\"tokens\": [\"good-token\"], \"api_keys\": {\"kid\": \"the-api-key\"},"
	        " \"url_ttl\": 600, \"bulk_max\": 50, \"objects\": ["
	        "{\"id\": \"%s\", \"file\": \"%s/a.bin\"},"
	        "{\"id\": \"%s\", \"file\": \"%s/b.bin\", \"access\": \"url\"},"
	        "{\"id\": \"%s\", \"file\": \"%s/c.bin\", \"access\": \"headers\"},"
	        "{\"id\": \"%s\", \"file\": \"%s/d.bin\", \"sha256\": \"%s\"},"
	        "{\"id\": \"%s\", \"file\": \"%s/e.bin\", \"sign\": \"opaque\"},"
	        "{\"id\": \"sha256:%s\", \"file\": \"%s/f.bin\", \"checksum_type\": \"sha256\"},"
	        "{\"id\": \"%s\", \"file\": \"%s/g.bin\", \"access\": \"url\", \"accepted\": 1}]}\n",
	        a, tmpdir, b, tmpdir, c, tmpdir, d, tmpdir, OTHER, e, tmpdir, f, tmpdir, g, tmpdir);
	fclose(fp);
	if (server_start(tmpdir, &port)) {
		fprintf(stderr, "skipping the server tests: cannot start drs_server.py\n");
		goto out;
	}
	CHECK_EQ_INT(lfsfs_net_new(&net), 0);
	if (!net)
		goto out;
	lfsfs_net_set_backoff_ms(net, 5);

	/* ---- not configured: left out of the chain */
	{
		struct lfsfs_config *c0 = lfsfs_config_new();
		char repo[400];
		snprintf(repo, sizeof(repo), "%s/repo", tmpdir);
		mkdir(repo, 0755);
		CHECK_EQ_INT(lfsfs_resolve_init(&ctx, repo, repo, NULL), 0);
		CHECK_EQ_INT(lfsfs_resolve_configure(&ctx, c0, net), 0);
		for (size_t i = 0; i < ctx.n; i++)
			CHECK(strcmp(ctx.resolvers[i].ops->name, "drs") &&
			      strcmp(ctx.resolvers[i].ops->name, "indexd"));
		unchain(&ctx, c0);
	}

	/* ---- single lookups with a static token */
	{
		const char *kv[] = { "lfsfs.drs.token", "good-token", "lfsfs.drs.urlttl", "123",
			             NULL };
		CHECK_EQ_INT(chain(&ctx, &cfg, net, port, "drs", kv), 0);
	}
	CHECK_EQ_INT(ctx.n, 1);
	log_clear();
	now = time(NULL);
	memset(&rec, 0, sizeof(rec));
	q = (struct lfsfs_resolve_query){ .oid = a, .path = "a.bin", .size = 3000 };
	rc = ctx.resolvers[0].ops->resolve(&ctx.resolvers[0], &q, &rec, &why);
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(rec.n_urls, 1);
	CHECK(rec.n_urls && strstr(rec.urls[0], "/data/a.bin?") &&
	      strstr(rec.urls[0], "X-Amz-Date="));
	CHECK_EQ_INT(rec.n_headers, 0);
	CHECK_EQ_INT(rec.size, 3000);
	CHECK_EQ_STR(rec.sha256, a);
	/* the URL's own expiry (X-Amz-Expires=600), not lfsfs.drs.urlttl */
	CHECK(rec.expires >= now + 590 && rec.expires <= now + 602);
	lfsfs_record_release(&rec);
	CHECK_EQ_INT(log_count("\"kind\": \"object\""), 1);
	CHECK_EQ_INT(log_count("\"kind\": \"access\""), 1);
	CHECK_EQ_INT(log_count("\"auth\": \"bearer\""), 2);

	q = (struct lfsfs_resolve_query){ .oid = b, .size = 2000 };
	CHECK_EQ_INT(ctx.resolvers[0].ops->resolve(&ctx.resolvers[0], &q, &rec, &why), 0);
	CHECK(rec.n_urls && strstr(rec.urls[0], "/public/b.bin"));
	CHECK(rec.expires >= now + 120 && rec.expires <= now + 126); /* urlttl */
	lfsfs_record_release(&rec);

	q = (struct lfsfs_resolve_query){ .oid = c, .size = 1000 };
	CHECK_EQ_INT(ctx.resolvers[0].ops->resolve(&ctx.resolvers[0], &q, &rec, &why), 0);
	CHECK(rec.n_urls && strstr(rec.urls[0], "/hdr/c.bin"));
	CHECK_EQ_INT(rec.n_headers, 1);
	CHECK(rec.n_headers && !strncmp(rec.headers[0], "X-Lfsfs-Test-Key: ", 18));
	lfsfs_record_release(&rec);

	q = (struct lfsfs_resolve_query){ .oid = e, .size = 1200 };
	CHECK_EQ_INT(ctx.resolvers[0].ops->resolve(&ctx.resolvers[0], &q, &rec, &why), 0);
	CHECK(rec.n_urls && strstr(rec.urls[0], "/data/e.bin?e="));
	CHECK(rec.expires >= now + 120 && rec.expires <= now + 126);
	lfsfs_record_release(&rec);

	/* 202 Accepted: asked again after Retry-After */
	log_clear();
	q = (struct lfsfs_resolve_query){ .oid = g, .size = 900 };
	CHECK_EQ_INT(ctx.resolvers[0].ops->resolve(&ctx.resolvers[0], &q, &rec, &why), 0);
	CHECK(rec.n_urls && strstr(rec.urls[0], "/public/g.bin"));
	lfsfs_record_release(&rec);
	CHECK_EQ_INT(log_count("\"status\": 202"), 1);
	CHECK_EQ_INT(log_count("\"kind\": \"object\""), 2);

	/* the record says other bytes: never used */
	lfsfs_buf_reset(&why);
	q = (struct lfsfs_resolve_query){ .oid = d, .size = 1500 };
	CHECK_EQ_INT(ctx.resolvers[0].ops->resolve(&ctx.resolvers[0], &q, &rec, &why), -ENOENT);
	CHECK_EQ_INT(rec.n_urls, 0);
	CHECK(why.data && strstr(why.data, "checksum mismatch"));
	/* wrong size */
	lfsfs_buf_reset(&why);
	q = (struct lfsfs_resolve_query){ .oid = a, .size = 2999 };
	CHECK_EQ_INT(ctx.resolvers[0].ops->resolve(&ctx.resolvers[0], &q, &rec, &why), -ENOENT);
	CHECK(why.data && strstr(why.data, "3000 bytes"));
	/* unknown */
	lfsfs_buf_reset(&why);
	q = (struct lfsfs_resolve_query){ .oid = unknown, .size = 10 };
	CHECK_EQ_INT(ctx.resolvers[0].ops->resolve(&ctx.resolvers[0], &q, &rec, &why), -ENOENT);
	CHECK(why.data && strstr(why.data, "has no object"));
	/* sha256:{oid} ids are not found under the default format */
	lfsfs_buf_reset(&why);
	q = (struct lfsfs_resolve_query){ .oid = f, .size = 1100 };
	CHECK_EQ_INT(ctx.resolvers[0].ops->resolve(&ctx.resolvers[0], &q, &rec, &why), -ENOENT);

	/* through the chain: the message names everything tried */
	{
		struct lfsfs_source src;
		q = (struct lfsfs_resolve_query){ .oid = d, .size = 1500 };
		rc = lfsfs_resolve_source(&ctx, &q, &src);
		CHECK_EQ_INT(rc, -LFSFS_ESOURCE_NOT_ACCESSIBLE);
		CHECK(strstr(lfsfs_error_message(), "SOURCE_NOT_ACCESSIBLE") != NULL);
		CHECK(strstr(lfsfs_error_message(), "checksum mismatch") != NULL);
		q = (struct lfsfs_resolve_query){ .oid = a, .size = 3000 };
		CHECK_EQ_INT(lfsfs_resolve_source(&ctx, &q, &src), 0);
		CHECK_EQ_STR(src.resolver, "drs");
		CHECK(src.expires > now);
		lfsfs_source_release(&src);
	}

	/* ---- bulk: one POST /objects + one POST /objects/access, no single lookups */
	{
		struct lfsfs_resolve_query bq[4] = {
			{ .oid = a, .size = 3000 },
			{ .oid = b, .size = 2000 },
			{ .oid = unknown, .size = 10 },
			{ .oid = d, .size = 1500 },
		};
		struct lfsfs_record br[4];

		memset(br, 0, sizeof(br));
		log_clear();
		CHECK(ctx.resolvers[0].ops->resolve_batch != NULL);
		rc = ctx.resolvers[0].ops->resolve_batch(&ctx.resolvers[0], bq, 4, br);
		CHECK_EQ_INT(rc, 0);
		CHECK(br[0].n_urls && strstr(br[0].urls[0], "/data/a.bin?"));
		CHECK(br[0].expires > now + 500);
		CHECK(br[1].n_urls && strstr(br[1].urls[0], "/public/b.bin"));
		CHECK_EQ_INT(br[2].n_urls, 0);
		CHECK_EQ_INT(br[3].n_urls, 0); /* checksum mismatch */
		CHECK_EQ_INT(log_count("\"kind\": \"service-info\""), 1);
		CHECK_EQ_INT(log_count("\"kind\": \"bulk\""), 1);
		CHECK_EQ_INT(log_count("\"kind\": \"bulk-access\""), 1);
		CHECK_EQ_INT(log_count("\"kind\": \"object\""), 0);
		CHECK_EQ_INT(log_count("\"kind\": \"access\""), 0);
		for (int i = 0; i < 4; i++)
			lfsfs_record_release(&br[i]);
		/* service-info is asked once per mount */
		log_clear();
		rc = ctx.resolvers[0].ops->resolve_batch(&ctx.resolvers[0], bq, 2, br);
		CHECK_EQ_INT(rc, 0);
		CHECK_EQ_INT(log_count("\"kind\": \"service-info\""), 0);
		CHECK_EQ_INT(log_count("\"kind\": \"bulk\""), 1);
		for (int i = 0; i < 2; i++)
			lfsfs_record_release(&br[i]);
	}
	unchain(&ctx, cfg);

	/* ---- sha256:{oid} ids */
	{
		const char *kv[] = { "lfsfs.drs.token", "good-token", "lfsfs.drs.idformat",
			             "sha256:{oid}", NULL };
		CHECK_EQ_INT(chain(&ctx, &cfg, net, port, "drs", kv), 0);
		q = (struct lfsfs_resolve_query){ .oid = f, .size = 1100 };
		CHECK_EQ_INT(ctx.resolvers[0].ops->resolve(&ctx.resolvers[0], &q, &rec, &why), 0);
		CHECK(rec.n_urls && strstr(rec.urls[0], "/data/f.bin?"));
		lfsfs_record_release(&rec);
		unchain(&ctx, cfg);
	}
	/* ---- lookup by checksum */
	{
		const char *kv[] = { "lfsfs.drs.token", "good-token", "lfsfs.drs.idformat",
			             "checksum", NULL };
		CHECK_EQ_INT(chain(&ctx, &cfg, net, port, "drs", kv), 0);
		log_clear();
		q = (struct lfsfs_resolve_query){ .oid = f, .size = 1100 };
		CHECK_EQ_INT(ctx.resolvers[0].ops->resolve(&ctx.resolvers[0], &q, &rec, &why), 0);
		CHECK(rec.n_urls && strstr(rec.urls[0], "/data/f.bin?"));
		lfsfs_record_release(&rec);
		CHECK_EQ_INT(log_count("\"kind\": \"checksum\""), 1);
		lfsfs_buf_reset(&why);
		q = (struct lfsfs_resolve_query){ .oid = d, .size = 1500 };
		CHECK_EQ_INT(ctx.resolvers[0].ops->resolve(&ctx.resolvers[0], &q, &rec, &why),
		             -ENOENT);
		unchain(&ctx, cfg);
	}
	/* ---- a bad idformat is an error at configure time */
	{
		const char *kv[] = { "lfsfs.drs.idformat", "by-name", NULL };
		CHECK_EQ_INT(chain(&ctx, &cfg, net, port, "drs", kv), -EINVAL);
		CHECK(strstr(lfsfs_error_message(), "lfsfs.drs.idformat") != NULL);
		unchain(&ctx, cfg);
	}

	/* ---- wrong token: a real error naming the server and the fix, never the token */
	{
		const char *kv[] = { "lfsfs.drs.token", "wrong-secret-token", NULL };
		CHECK_EQ_INT(chain(&ctx, &cfg, net, port, "drs", kv), 0);
		q = (struct lfsfs_resolve_query){ .oid = a, .size = 3000 };
		rc = ctx.resolvers[0].ops->resolve(&ctx.resolvers[0], &q, &rec, &why);
		CHECK_EQ_INT(rc, -LFSFS_ESOURCE_NOT_ACCESSIBLE);
		CHECK(strstr(lfsfs_error_message(), "rejected the token from the setting "
		                                    "lfsfs.drs.token") != NULL);
		CHECK(strstr(lfsfs_error_message(), "LFSFS_DRS_TOKEN") != NULL);
		CHECK(strstr(lfsfs_error_message(), "wrong-secret-token") == NULL);
		unchain(&ctx, cfg);
	}
	/* ---- no token at all */
	{
		const char *kv[] = { NULL };
		unsetenv("LFSFS_DRS_TOKEN");
		CHECK_EQ_INT(chain(&ctx, &cfg, net, port, "drs", kv), 0);
		q = (struct lfsfs_resolve_query){ .oid = a, .size = 3000 };
		rc = ctx.resolvers[0].ops->resolve(&ctx.resolvers[0], &q, &rec, &why);
		CHECK_EQ_INT(rc, -LFSFS_ESOURCE_NOT_ACCESSIBLE);
		CHECK(strstr(lfsfs_error_message(), "no token was sent") != NULL);
		unchain(&ctx, cfg);
	}
	/* ---- the environment variable */
	{
		const char *kv[] = { NULL };
		setenv("LFSFS_DRS_TOKEN", "good-token", 1);
		CHECK_EQ_INT(chain(&ctx, &cfg, net, port, "drs", kv), 0);
		q = (struct lfsfs_resolve_query){ .oid = b, .size = 2000 };
		CHECK_EQ_INT(ctx.resolvers[0].ops->resolve(&ctx.resolvers[0], &q, &rec, &why), 0);
		lfsfs_record_release(&rec);
		unsetenv("LFSFS_DRS_TOKEN");
		unchain(&ctx, cfg);
	}

	/* ---- Gen3 credentials file: one exchange, the token reused, renewed after a 401 */
	{
		char creds[400];
		const char *kv[] = { "lfsfs.drs.credentials", creds, NULL };

		snprintf(creds, sizeof(creds), "%s/credentials.json", tmpdir);
		if ((fp = fopen(creds, "w"))) {
			fputs("{\"api_key\": \"the-api-key\", \"key_id\": \"kid\"}\n", fp);
			fclose(fp);
		}
		CHECK_EQ_INT(chain(&ctx, &cfg, net, port, "drs", kv), 0);
		log_clear();
		q = (struct lfsfs_resolve_query){ .oid = a, .size = 3000 };
		CHECK_EQ_INT(ctx.resolvers[0].ops->resolve(&ctx.resolvers[0], &q, &rec, &why), 0);
		lfsfs_record_release(&rec);
		q = (struct lfsfs_resolve_query){ .oid = b, .size = 2000 };
		CHECK_EQ_INT(ctx.resolvers[0].ops->resolve(&ctx.resolvers[0], &q, &rec, &why), 0);
		lfsfs_record_release(&rec);
		CHECK_EQ_INT(log_count("\"kind\": \"token\""), 1);
		CHECK_EQ_INT(log_count("\"auth\": \"bad-bearer\""), 0);
		/* the server forgets its tokens: one 401, a new exchange, the lookup works */
		snprintf(cmd, sizeof(cmd),
		         "curl -sf -X POST -o /dev/null http://127.0.0.1:%d/_admin/revoke", port);
		CHECK_EQ_INT(system(cmd), 0);
		log_clear();
		CHECK_EQ_INT(ctx.resolvers[0].ops->resolve(&ctx.resolvers[0], &q, &rec, &why), 0);
		lfsfs_record_release(&rec);
		CHECK_EQ_INT(log_count("\"kind\": \"token\""), 1);
		CHECK_EQ_INT(log_count("\"auth\": \"bad-bearer\""), 1);
		unchain(&ctx, cfg);

		/* a key the server does not know */
		if ((fp = fopen(creds, "w"))) {
			fputs("{\"api_key\": \"stolen\", \"key_id\": \"kid\"}\n", fp);
			fclose(fp);
		}
		CHECK_EQ_INT(chain(&ctx, &cfg, net, port, "drs", kv), 0);
		rc = ctx.resolvers[0].ops->resolve(&ctx.resolvers[0], &q, &rec, &why);
		CHECK_EQ_INT(rc, -LFSFS_ESOURCE_NOT_ACCESSIBLE);
		CHECK(strstr(lfsfs_error_message(), "rejected the API key") != NULL);
		CHECK(strstr(lfsfs_error_message(), "stolen") == NULL);
		unchain(&ctx, cfg);
	}

	/* ---- indexd */
	{
		const char *kv[] = { NULL };
		CHECK_EQ_INT(chain(&ctx, &cfg, net, port, "indexd", kv), 0);
		CHECK_EQ_INT(ctx.n, 1);
		CHECK_EQ_STR(ctx.resolvers[0].ops->name, "indexd");
		log_clear();
		q = (struct lfsfs_resolve_query){ .oid = a, .size = 3000 };
		CHECK_EQ_INT(ctx.resolvers[0].ops->resolve(&ctx.resolvers[0], &q, &rec, &why), 0);
		CHECK(rec.n_urls && strstr(rec.urls[0], "/public/a.bin"));
		CHECK_EQ_INT(rec.expires, 0);
		CHECK_EQ_INT(rec.size, 3000);
		lfsfs_record_release(&rec);
		CHECK_EQ_INT(log_count("\"kind\": \"indexd\""), 1);
		lfsfs_buf_reset(&why);
		q = (struct lfsfs_resolve_query){ .oid = a, .size = 3001 };
		CHECK_EQ_INT(ctx.resolvers[0].ops->resolve(&ctx.resolvers[0], &q, &rec, &why),
		             -ENOENT);
		CHECK(why.data && strstr(why.data, "3000 bytes"));
		lfsfs_buf_reset(&why);
		/* d's record claims OTHER: a hash query for d finds nothing */
		q = (struct lfsfs_resolve_query){ .oid = d, .size = 1500 };
		CHECK_EQ_INT(ctx.resolvers[0].ops->resolve(&ctx.resolvers[0], &q, &rec, &why),
		             -ENOENT);
		CHECK(why.data && strstr(why.data, "has no record"));
		unchain(&ctx, cfg);
	}
	/* ---- drs:// URIs in a .lfs-meta record, no lfsfs.drs.url needed */
	{
		char dir[450], path[600];
		struct lfsfs_config *c1 = lfsfs_config_new();
		char repo[400];

		snprintf(repo, sizeof(repo), "%s/repo2", tmpdir);
		snprintf(dir, sizeof(dir), "%s/.lfs-meta", repo);
		mkdir(repo, 0755);
		mkdir(dir, 0755);
		snprintf(dir, sizeof(dir), "%s/.lfs-meta/sha256", repo);
		mkdir(dir, 0755);
		snprintf(path, sizeof(path), "%s/%s.json", dir, b);
		if ((fp = fopen(path, "w"))) {
			fprintf(fp,
			        "{\"sha256\": \"%s\", \"url\": \"drs://127.0.0.1:%d/%s\", "
			        "\"size\": 2000}\n",
			        b, port, b);
			fclose(fp);
		}
		lfsfs_config_set(c1, "lfsfs.resolvers", "meta,drs");
		CHECK_EQ_INT(lfsfs_resolve_init(&ctx, repo, repo, NULL), 0);
		CHECK_EQ_INT(lfsfs_resolve_configure(&ctx, c1, net), 0);
		CHECK_EQ_INT(ctx.n, 2);
		{
			struct lfsfs_source src;
			q = (struct lfsfs_resolve_query){ .oid = b, .size = 2000 };
			/* the other host (no lfsfs.drs.url) means https:// and no token: the test
			 * server speaks plain http, so this fails, saying where it went */
			rc = lfsfs_resolve_source(&ctx, &q, &src);
			CHECK(rc != 0);
			CHECK(strstr(lfsfs_error_message(), "drs://127.0.0.1") != NULL);
		}
		unchain(&ctx, c1);
		/* with lfsfs.drs.url naming that host: its scheme and token apply */
		c1 = lfsfs_config_new();
		snprintf(path, sizeof(path), "http://127.0.0.1:%d", port);
		lfsfs_config_set(c1, "lfsfs.resolvers", "meta,drs");
		lfsfs_config_set(c1, "lfsfs.drs.url", path);
		lfsfs_config_set(c1, "lfsfs.drs.token", "good-token");
		CHECK_EQ_INT(lfsfs_resolve_init(&ctx, repo, repo, NULL), 0);
		CHECK_EQ_INT(lfsfs_resolve_configure(&ctx, c1, net), 0);
		{
			struct lfsfs_source src;
			q = (struct lfsfs_resolve_query){ .oid = b, .size = 2000 };
			CHECK_EQ_INT(lfsfs_resolve_source(&ctx, &q, &src), 0);
			CHECK(src.url && strstr(src.url, "/public/b.bin"));
			CHECK_EQ_STR(src.resolver, "drs");
			lfsfs_source_release(&src);
		}
		unchain(&ctx, c1);
	}
out:
	lfsfs_buf_release(&why);
	if (net)
		lfsfs_net_free(net);
	server_stop();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd)) {
		/* best effort */
	}
}

int main(void)
{
	test_expiry();
	test_uri();
	test_object();
	test_jwt();
	test_against_server();
	return TEST_RESULT();
}
