/* Unit tests for the lfs (Git LFS batch API) resolver: endpoint derivation from
 * remote URLs and settings, expiry parsing, request bodies and response parsing,
 * and the resolver against tests/lib/lfs_server.py (chunks of 100, 404 notes,
 * credentials from a `store` helper, local remotes explained). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "lfsfs/error.h"
#include "net/net.h"
#include "resolve/lfsbatch.h"
#include "resolve/resolve.h"
#include "test.h"
#include "util/config.h"

/* ------------------------------------------------------------- endpoints */

static void check_endpoint(const char *remote, const char *want)
{
	char *got = NULL;
	int rc = lfsfs_lfs_endpoint_from_remote(remote, &got);

	if (want) {
		CHECK_EQ_INT(rc, 0);
		CHECK_EQ_STR(got, want);
		if (rc || !got || strcmp(got, want))
			fprintf(stderr, "  for remote '%s' (%s)\n", remote, lfsfs_error_message());
	} else {
		CHECK_EQ_INT(rc, -LFSFS_EUNSUPPORTED);
		CHECK(got == NULL);
		CHECK(strstr(lfsfs_error_message(), "lfs.url") != NULL);
	}
	free(got);
}

static void test_endpoint(void)
{
	/* https and http, with and without .git, with trailing slashes */
	check_endpoint("https://git-server.com/foo/bar",
	               "https://git-server.com/foo/bar.git/info/lfs");
	check_endpoint("https://git-server.com/foo/bar.git",
	               "https://git-server.com/foo/bar.git/info/lfs");
	check_endpoint("https://git-server.com/foo/bar/",
	               "https://git-server.com/foo/bar.git/info/lfs");
	check_endpoint("https://git-server.com/foo/bar.git/",
	               "https://git-server.com/foo/bar.git/info/lfs");
	check_endpoint("https://git-server.com/foo/bar.git//",
	               "https://git-server.com/foo/bar.git/info/lfs");
	check_endpoint("http://127.0.0.1:8080/team/data",
	               "http://127.0.0.1:8080/team/data.git/info/lfs");
	check_endpoint("HTTPS://Host.example/x.git", "HTTPS://Host.example/x.git/info/lfs");
	/* userinfo stays (libcurl sends it as Basic auth) */
	check_endpoint("https://user:tok@host.example/a/b",
	               "https://user:tok@host.example/a/b.git/info/lfs");
	/* ssh, scp-like: the https endpoint on the same host, no user, no port */
	check_endpoint("git@github.com:org/repo.git", "https://github.com/org/repo.git/info/lfs");
	check_endpoint("git@github.com:org/repo", "https://github.com/org/repo.git/info/lfs");
	check_endpoint("git@github.com:org/repo/", "https://github.com/org/repo.git/info/lfs");
	check_endpoint("github.com:org/repo.git", "https://github.com/org/repo.git/info/lfs");
	check_endpoint("git@host.example:/srv/git/repo.git",
	               "https://host.example/srv/git/repo.git/info/lfs");
	check_endpoint("[git@host.example:2222]:org/repo.git",
	               "https://host.example/org/repo.git/info/lfs");
	check_endpoint("ssh://git-server.com/foo/bar.git",
	               "https://git-server.com/foo/bar.git/info/lfs");
	check_endpoint("ssh://git@git-server.com:2222/foo/bar",
	               "https://git-server.com/foo/bar.git/info/lfs");
	check_endpoint("git+ssh://git@host.example/foo/bar.git",
	               "https://host.example/foo/bar.git/info/lfs");
	check_endpoint("ssh+git://host.example/foo/bar.git",
	               "https://host.example/foo/bar.git/info/lfs");
	check_endpoint("ssh://git@[::1]:22/foo/bar.git", "https://[::1]/foo/bar.git/info/lfs");
	check_endpoint("git://host.example/foo/bar.git",
	               "https://host.example/foo/bar.git/info/lfs");
	/* no batch API for local repositories or remote helpers */
	check_endpoint("/srv/git/repo.git", NULL);
	check_endpoint("file:///srv/git/repo.git", NULL);
	check_endpoint("./repo", NULL);
	check_endpoint("../remote.git", NULL);
	check_endpoint("repo.git", NULL);
	check_endpoint("C:/repos/x.git", NULL);
	check_endpoint("codecommit::us-east-1://repo", NULL);
	{
		char *got = (char *)"x";
		CHECK_EQ_INT(lfsfs_lfs_endpoint_from_remote("", &got), -EINVAL);
		CHECK(got == NULL);
	}
}

static void check_discover(const char *const *kv, size_t n, const char *branch, int want_rc,
                           const char *want, const char *want_how)
{
	char *ep = NULL, *how = NULL;
	int rc = lfsfs_lfs_discover(kv, n, branch, &ep, &how);

	CHECK_EQ_INT(rc, want_rc);
	if (want) {
		CHECK_EQ_STR(ep, want);
		CHECK_EQ_STR(how, want_how);
	} else {
		CHECK(ep == NULL && how == NULL);
	}
	if (rc && rc != want_rc)
		fprintf(stderr, "  discover: %s\n", lfsfs_error_message());
	free(ep);
	free(how);
}

#define N(a) (sizeof(a) / sizeof(a[0]) / 2)

static void test_discover(void)
{
	/* derived from remote.origin.url */
	const char *a[] = { "remote.origin.url", "https://h.example/team/data",
		            "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*" };
	check_discover(a, N(a), "main", 0, "https://h.example/team/data.git/info/lfs",
	               "remote.origin.url");
	/* remote.<r>.lfsurl beats the remote's URL; lfs.url beats both */
	const char *b[] = { "remote.origin.url", "https://h.example/team/data",
		            "remote.origin.lfsurl", "https://lfs.example/data/" };
	check_discover(b, N(b), NULL, 0, "https://lfs.example/data", "remote.origin.lfsurl");
	const char *c[] = { "lfs.url",
		            "https://lfs.example/from-lfsconfig",
		            "remote.origin.url",
		            "https://h.example/team/data",
		            "remote.origin.lfsurl",
		            "https://lfs.example/data",
		            "lfs.url",
		            "https://lfs.example/from-git-config" };
	check_discover(c, N(c), NULL, 0, "https://lfs.example/from-git-config", "lfs.url");
	/* lfsfs.lfs.url overrides everything */
	const char *d[] = { "lfs.url", "https://lfs.example/x", "lfsfs.lfs.url",
		            "http://127.0.0.1:9/y" };
	check_discover(d, N(d), NULL, 0, "http://127.0.0.1:9/y", "lfsfs.lfs.url");
	/* which remote: the branch's, else remote.lfsdefault, else the only one, else origin */
	const char *e[] = { "remote.origin.url",    "https://h.example/o",
		            "remote.Up-Stream.url", "git@h.example:u/repo.git",
		            "branch.dev.remote",    "Up-Stream",
		            "remote.lfsdefault",    "origin" };
	check_discover(e, N(e), "dev", 0, "https://h.example/u/repo.git/info/lfs",
	               "remote.Up-Stream.url");
	check_discover(e, N(e), "main", 0, "https://h.example/o.git/info/lfs", "remote.origin.url");
	const char *f[] = { "remote.upstream.url", "https://h.example/u/r.git/" };
	check_discover(f, N(f), "main", 0, "https://h.example/u/r.git/info/lfs",
	               "remote.upstream.url");
	const char *g[] = { "remote.a.url",        "https://h.example/a", "remote.origin.url",
		            "https://h.example/o", "branch.main.remote",  "." };
	check_discover(g, N(g), "main", 0, "https://h.example/o.git/info/lfs", "remote.origin.url");
	const char *h[] = { "remote.a.url",        "https://h.example/a", "remote.b.url",
		            "https://h.example/b", "lfsfs.lfs.remote",    "b" };
	check_discover(h, N(h), NULL, 0, "https://h.example/b.git/info/lfs", "remote.b.url");
	/* url.<base>.insteadOf, longest prefix wins */
	const char *i[] = { "url.https://github.com/.insteadof",
		            "gh:",
		            "url.https://mirror.example/gh/.insteadof",
		            "gh:org/",
		            "remote.origin.url",
		            "gh:org/repo" };
	check_discover(i, N(i), NULL, 0, "https://mirror.example/gh/repo.git/info/lfs",
	               "remote.origin.url");
	/* nothing configured: not an error, the resolver stays out */
	const char *j[] = { "branch.main.remote", "origin" };
	check_discover(j, N(j), "main", -ENOENT, NULL, NULL);
	check_discover(NULL, 0, NULL, -ENOENT, NULL, NULL);
	/* local remotes and non-http lfs.url: unsupported, with a reason */
	const char *k[] = { "remote.origin.url", "/srv/git/data.git" };
	check_discover(k, N(k), NULL, -LFSFS_EUNSUPPORTED, NULL, NULL);
	CHECK(strstr(lfsfs_error_message(), "remote 'origin'") != NULL);
	CHECK(strstr(lfsfs_error_message(), "local path") != NULL);
	const char *l[] = { "lfs.url", "ssh://git@h.example/x.git" };
	check_discover(l, N(l), NULL, -LFSFS_EUNSUPPORTED, NULL, NULL);
	CHECK(strstr(lfsfs_error_message(), "not an http(s) URL") != NULL);
}

/* ------------------------------------------------------------- time */

static void check_time(const char *s, int want_rc, time_t want)
{
	time_t t = 12345;
	int rc = lfsfs_lfs_parse_time(s, &t);

	CHECK_EQ_INT(rc, want_rc);
	if (!want_rc)
		CHECK_EQ_INT(t, want);
	if (rc != want_rc || (!want_rc && t != want))
		fprintf(stderr, "  for '%s'\n", s);
}

static void test_time(void)
{
	check_time("2016-11-10T15:29:07Z", 0, 1478791747);
	check_time("2016-11-10t15:29:07z", 0, 1478791747);
	check_time("2016-11-10 15:29:07Z", 0, 1478791747);
	check_time("2016-10-02T15:32:32.087972164+08:00", 0, 1475393552);
	check_time("2016-11-10T10:29:07-05:00", 0, 1478791747);
	check_time("1970-01-01T00:00:00Z", 0, 0);
	check_time("2038-01-19T03:14:08Z", 0, (time_t)2147483648LL);
	/* Go's zero time means "no expiry" */
	check_time("0001-01-01T00:00:00Z", 0, 0);
	check_time("", -EINVAL, 0);
	check_time("2016-11-10", -EINVAL, 0);
	check_time("2016-11-10T15:29:07", -EINVAL, 0);      /* no zone */
	check_time("2016-11-10T15:29:07+0800", -EINVAL, 0); /* RFC 3339 needs the colon */
	check_time("2016-13-10T15:29:07Z", -EINVAL, 0);
	check_time("2016-11-10T15:29:07Z junk", -EINVAL, 0);
	check_time("2016-11-10T15:29:07.Z", -EINVAL, 0);
	check_time("1478791747", -EINVAL, 0);
}

/* ------------------------------------------------------------- JSON */

#define OID_A "1111111111111111111111111111111111111111111111111111111111111111"
#define OID_B "2222222222222222222222222222222222222222222222222222222222222222"
#define OID_C "3333333333333333333333333333333333333333333333333333333333333333"
#define OID_D "4444444444444444444444444444444444444444444444444444444444444444"
#define OID_E "5555555555555555555555555555555555555555555555555555555555555555"

static void test_parse(void)
{
	const char *doc =
	        "{\"transfer\": \"basic\", \"hash_algo\": \"sha256\", \"objects\": ["
	        " {\"oid\": \"" OID_A "\", \"size\": 123, \"authenticated\": true,"
	        "  \"actions\": {\"download\": {\"href\": \"https://cdn.example/a?sig=1\","
	        "   \"header\": {\"Authorization\": \"RemoteAuth tok\", \"X-Extra\": \"v\"},"
	        "   \"expires_in\": 3600, \"expires_at\": \"2016-11-10T15:29:07Z\"}}},"
	        " {\"oid\": \"" OID_B "\", \"size\": 5,"
	        "  \"actions\": {\"download\": {\"href\": \"https://h/b\","
	        "   \"expires_at\": \"2016-11-10T15:29:07Z\"}}},"
	        " {\"oid\": \"" OID_C "\", \"size\": 7, \"error\": {\"code\": 404, \"message\":"
	        "  \"Object does not exist\"}},"
	        " {\"oid\": \"" OID_D "\", \"size\": 1, \"actions\": {\"download\": {\"href\":"
	        "  \"https://h/d\", \"header\": {\"Bad\\r\\nName\": \"x\"}}}},"
	        " {\"oid\": \"" OID_E "\", \"size\": 2, \"actions\": {\"download\": {\"href\":"
	        "  \"https://h/e\", \"expires_in\": 0, \"expires_at\": \"0001-01-01T00:00:00Z\"}}},"
	        " {\"oid\": \"not-an-oid\", \"size\": 1},"
	        " {\"oid\": \"" OID_A "0\", \"size\": 1}"
	        "]}";
	struct lfsfs_lfs_object *o = NULL;
	size_t n = 0;
	int rc = lfsfs_lfs_parse_response(doc, strlen(doc), 1000, &o, &n);

	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(n, 5);
	if (n == 5) {
		CHECK_EQ_STR(o[0].oid, OID_A);
		CHECK_EQ_INT(o[0].size, 123);
		CHECK(o[0].authenticated);
		CHECK_EQ_STR(o[0].href, "https://cdn.example/a?sig=1");
		CHECK_EQ_INT(o[0].n_headers, 2);
		if (o[0].n_headers == 2) {
			CHECK_EQ_STR(o[0].headers[0], "Authorization: RemoteAuth tok");
			CHECK_EQ_STR(o[0].headers[1], "X-Extra: v");
		}
		CHECK_EQ_INT(o[0].expires, 1000 + 3600); /* expires_in wins */
		CHECK_EQ_INT(o[0].error, 0);
		CHECK(!o[1].authenticated);
		CHECK_EQ_INT(o[1].expires, 1478791747);
		CHECK_EQ_INT(o[1].n_headers, 0);
		CHECK_EQ_INT(o[2].error, 404);
		CHECK_EQ_STR(o[2].message, "Object does not exist");
		CHECK(o[2].href == NULL);
		CHECK_EQ_INT(o[3].error, -1); /* header injection refused */
		CHECK(o[3].href == NULL);
		CHECK_EQ_INT(o[4].expires, 0);
		CHECK_EQ_STR(o[4].href, "https://h/e");
	}
	lfsfs_lfs_objects_free(o, n);

	/* negative expires_in: already expired, never "no expiry" */
	const char *neg = "{\"objects\": [{\"oid\": \"" OID_A "\", \"size\": 1, \"actions\":"
	                  " {\"download\": {\"href\": \"https://h/a\", \"expires_in\": -1000}}}]}";
	CHECK_EQ_INT(lfsfs_lfs_parse_response(neg, strlen(neg), 1000, &o, &n), 0);
	CHECK_EQ_INT(n, 1);
	if (n == 1)
		CHECK(o[0].expires == 1);
	lfsfs_lfs_objects_free(o, n);

	/* an object with neither actions nor error is listed, without href */
	const char *bare = "{\"objects\": [{\"oid\": \"" OID_A "\", \"size\": 1}]}";
	CHECK_EQ_INT(lfsfs_lfs_parse_response(bare, strlen(bare), 0, &o, &n), 0);
	CHECK(n == 1 && !o[0].href && !o[0].error);
	lfsfs_lfs_objects_free(o, n);

	const char *bad[] = {
		"",    "[]", "{\"objects\": {}}", "{\"message\": \"Not found\"}", "{\"objects\": [",
		"null"
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_EQ_INT(lfsfs_lfs_parse_response(bad[i], strlen(bad[i]), 0, &o, &n),
		             -LFSFS_EPARSE);
		CHECK(o == NULL && n == 0);
	}
	const char *tr = "{\"transfer\": \"tus\", \"objects\": []}";
	CHECK_EQ_INT(lfsfs_lfs_parse_response(tr, strlen(tr), 0, &o, &n), -LFSFS_EUNSUPPORTED);
	const char *ha = "{\"hash_algo\": \"sha512\", \"objects\": []}";
	CHECK_EQ_INT(lfsfs_lfs_parse_response(ha, strlen(ha), 0, &o, &n), -LFSFS_EUNSUPPORTED);
	const char *empty = "{\"objects\": []}";
	CHECK_EQ_INT(lfsfs_lfs_parse_response(empty, strlen(empty), 0, &o, &n), 0);
	CHECK(n == 0);
	lfsfs_lfs_objects_free(o, n);
}

static void test_body(void)
{
	struct lfsfs_resolve_query q[3] = {
		{ OID_A, "a.bin", 123 },
		{ OID_B, NULL, 18446744073709551615ULL },
		{ OID_A, "c", 123 },
	};
	struct lfsfs_buf b = LFSFS_BUF_INIT(0);

	CHECK_EQ_INT(lfsfs_lfs_request_body(q, 3, "refs/heads/we\"ird", &b), 0);
	CHECK_EQ_STR(b.data, "{\"operation\":\"download\",\"transfers\":[\"basic\"],"
	                     "\"ref\":{\"name\":\"refs/heads/we\\\"ird\"},\"objects\":["
	                     "{\"oid\":\"" OID_A "\",\"size\":123},"
	                     "{\"oid\":\"" OID_B "\",\"size\":18446744073709551615}],"
	                     "\"hash_algo\":\"sha256\"}");
	lfsfs_buf_release(&b);
	CHECK_EQ_INT(lfsfs_lfs_request_body(q, 1, NULL, &b), 0);
	CHECK_EQ_STR(b.data, "{\"operation\":\"download\",\"transfers\":[\"basic\"],\"objects\":["
	                     "{\"oid\":\"" OID_A "\",\"size\":123}],\"hash_algo\":\"sha256\"}");
	lfsfs_buf_release(&b);
	struct lfsfs_resolve_query bad = { "xyz", NULL, 1 };
	CHECK_EQ_INT(lfsfs_lfs_request_body(&bad, 1, NULL, &b), -EINVAL);
	lfsfs_buf_release(&b);
}

/* ------------------------------------------------------------- against the server */

static pid_t server_pid = -1;

static int server_start(const char *dir, int *port)
{
	char script[1024], root[700], pf[700], log[700];
	const char *src = __FILE__, *cut = strstr(src, "tests/unit/");
	FILE *f;

	if (!cut)
		return -1;
	snprintf(script, sizeof(script), "%.*stests/lib/lfs_server.py", (int)(cut - src), src);
	if (access(script, R_OK))
		return -1;
	snprintf(root, sizeof(root), "%s/objects", dir);
	snprintf(pf, sizeof(pf), "%s/port", dir);
	snprintf(log, sizeof(log), "%s/requests.log", dir);
	mkdir(root, 0755);
	server_pid = fork();
	if (server_pid < 0)
		return -1;
	if (server_pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, 2);
		execlp("python3", "python3", script, "--root", root, "--user", "reader",
		       "--password", "unit-Pa55", "--port-file", pf, "--log", log, (char *)NULL);
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

static void sha256_hex(const void *p, size_t n, char out[65])
{
	unsigned char md[32];
	unsigned int len = 0;

	EVP_Digest(p, n, md, &len, EVP_sha256(), NULL);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

/* Count request-log lines containing every needle. */
static int log_count(const char *log, const char *n1, const char *n2)
{
	char line[65536];
	int c = 0;
	FILE *f = fopen(log, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, n1) && (!n2 || strstr(line, n2)))
			c++;
	fclose(f);
	return c;
}

/* A resolver chain of just "lfs" for repo. */
static int chain(struct lfsfs_resolve_ctx *ctx, const char *repo, struct lfsfs_config **cfg,
                 struct lfsfs_net *net)
{
	char gitdir[1024];
	int rc;

	snprintf(gitdir, sizeof(gitdir), "%s/.git", repo);
	if ((rc = lfsfs_resolve_init(ctx, repo, gitdir, NULL)))
		return rc;
	*cfg = lfsfs_config_new();
	lfsfs_config_set(*cfg, "lfsfs.resolvers", "lfs");
	return lfsfs_resolve_configure(ctx, *cfg, net);
}

#define NOBJ 250

static void test_against_server(void)
{
	char dir[] = "/tmp/lfsfs-test-lfsbatch.XXXXXX", repo[600], log[600], path[800];
	static char oids[NOBJ][65];
	struct lfsfs_resolve_query q[NOBJ + 1];
	struct lfsfs_record out[NOBJ + 1];
	struct lfsfs_resolve_ctx ctx;
	struct lfsfs_config *cfg = NULL;
	struct lfsfs_net *net = NULL;
	struct lfsfs_source src;
	const char *unknown = OID_E;
	int port = 0, rc, before;

	if (!mkdtemp(dir) || server_start(dir, &port)) {
		fprintf(stderr, "test_lfsbatch: python3 or tests/lib/lfs_server.py unavailable: "
		                "server tests skipped\n");
		return;
	}
	setenv("HOME", dir, 1);
	setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
	snprintf(log, sizeof(log), "%s/requests.log", dir);
	snprintf(repo, sizeof(repo), "%s/repo", dir);
	/* lfs.url from a committed .lfsconfig; credentials from a store helper */
	if (sh("git init -q -b main '%s' && printf '[lfs]\\n\\turl = http://127.0.0.1:%d/org/r.git/info/lfs/\\n'"
	       " > '%s/.lfsconfig' && git -C '%s' config credential.helper 'store --file=%s/creds'"
	       " && printf 'http://reader:unit-Pa55@127.0.0.1:%d\\n' > '%s/creds'",
	       repo, port, repo, repo, dir, port, dir)) {
		fprintf(stderr, "test_lfsbatch: git unavailable: server tests skipped\n");
		goto out;
	}
	for (int i = 0; i < NOBJ; i++) {
		char body[64];
		FILE *f;
		int len = snprintf(body, sizeof(body), "object %d\n", i);

		sha256_hex(body, (size_t)len, oids[i]);
		snprintf(path, sizeof(path), "%s/objects/%s", dir, oids[i]);
		if ((f = fopen(path, "w"))) {
			fwrite(body, 1, (size_t)len, f);
			fclose(f);
		}
		q[i].oid = oids[i];
		q[i].path = NULL;
		q[i].size = (uint64_t)len;
	}
	q[NOBJ].oid = unknown;
	q[NOBJ].path = "nowhere.bin";
	q[NOBJ].size = 3;
	CHECK_EQ_INT(lfsfs_net_new(&net), 0);
	rc = chain(&ctx, repo, &cfg, net);
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(ctx.n, 1);
	if (rc || ctx.n != 1)
		goto out_ctx;

	/* one object: a 401, credentials from the helper, then the action */
	rc = lfsfs_resolve_source(&ctx, &q[7], &src);
	CHECK_EQ_INT(rc, 0);
	if (!rc) {
		char want[200];
		snprintf(want, sizeof(want), "http://127.0.0.1:%d/dl/%s?exp=", port, oids[7]);
		CHECK(!strncmp(src.url, want, strlen(want)));
		CHECK_EQ_INT(src.n_headers, 1);
		CHECK(src.n_headers == 1 &&
		      !strncmp(src.headers[0], "Authorization: RemoteAuth ", 26));
		CHECK(src.expires > time(NULL) + 3000 && src.expires <= time(NULL) + 3600);
		CHECK_EQ_STR(src.resolver, "lfs");
		lfsfs_source_release(&src);
	} else {
		fprintf(stderr, "  %s\n", lfsfs_error_message());
	}
	CHECK_EQ_INT(log_count(log, "\"status\": 401", "/org/r.git/info/lfs/objects/batch"), 1);
	CHECK_EQ_INT(log_count(log, "\"auth\": \"basic\"", "\"status\": 200"), 1);

	/* asked again right away (say after a 403): the server is asked again */
	before = log_count(log, "\"kind\": \"batch\"", NULL);
	CHECK_EQ_INT(lfsfs_resolve_source(&ctx, &q[7], &src), 0);
	lfsfs_source_release(&src);
	CHECK_EQ_INT(log_count(log, "\"kind\": \"batch\"", NULL), before + 1);

	/* 251 objects, one of them cached already: 250 asked in chunks of at most 100
	 * (three requests); the unknown one stays empty */
	memset(out, 0, sizeof(out));
	before = log_count(log, "\"kind\": \"batch\"", NULL);
	rc = ctx.resolvers[0].ops->resolve_batch(&ctx.resolvers[0], q, NOBJ + 1, out);
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(log_count(log, "\"kind\": \"batch\"", NULL), before + 3);
	CHECK_EQ_INT(log_count(log, "\"n_objects\": 100", NULL), 2);
	CHECK_EQ_INT(log_count(log, "\"n_objects\": 50", NULL), 1);
	int good = 0;
	for (int i = 0; i < NOBJ; i++)
		good += out[i].n_urls == 1 && strstr(out[i].urls[0], oids[i]) &&
		        out[i].n_headers == 1 && out[i].has_size && out[i].size == q[i].size &&
		        !strcmp(out[i].sha256, oids[i]);
	CHECK_EQ_INT(good, NOBJ);
	CHECK_EQ_INT(out[NOBJ].n_urls, 0);
	for (int i = 0; i <= NOBJ; i++)
		lfsfs_record_release(&out[i]);

	/* what the batch just handed out is not handed out again this soon (the
	 * caller would be retrying after a 401/403): one object, one request */
	before = log_count(log, "\"kind\": \"batch\"", NULL);
	CHECK_EQ_INT(lfsfs_resolve_source(&ctx, &q[42], &src), 0);
	lfsfs_source_release(&src);
	CHECK_EQ_INT(log_count(log, "\"kind\": \"batch\"", NULL), before + 1);
	before = log_count(log, "\"kind\": \"batch\"", NULL);

	/* unknown to the server: not accessible, and the message says 404 */
	rc = lfsfs_resolve_source(&ctx, &q[NOBJ], &src);
	CHECK_EQ_INT(rc, -LFSFS_ESOURCE_NOT_ACCESSIBLE);
	CHECK(strstr(lfsfs_error_message(), "no such object (404: Object does not exist)") != NULL);
	CHECK_EQ_INT(log_count(log, "\"kind\": \"batch\"", NULL), before); /* remembered */

	/* a pointer whose size the server disagrees with: its 422 is reported */
	struct lfsfs_resolve_query wrong = { oids[3], NULL, 99999 };
	rc = lfsfs_resolve_source(&ctx, &wrong, &src);
	CHECK_EQ_INT(rc, -LFSFS_ESOURCE_NOT_ACCESSIBLE);
	CHECK(strstr(lfsfs_error_message(), "(422: Object size mismatch)") != NULL);
	lfsfs_resolve_release(&ctx);
	lfsfs_config_free(cfg);
	cfg = NULL;

	/* a local remote: the resolver stays in the chain to say why */
	snprintf(path, sizeof(path), "%s/local", dir);
	sh("git init -q '%s' && git -C '%s' remote add origin /srv/git/data.git", path, path);
	rc = chain(&ctx, path, &cfg, net);
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(ctx.n, 1);
	rc = lfsfs_resolve_source(&ctx, &q[0], &src);
	CHECK_EQ_INT(rc, -LFSFS_ESOURCE_NOT_ACCESSIBLE);
	CHECK(strstr(lfsfs_error_message(), "'/srv/git/data.git' is a local path") != NULL);
	lfsfs_resolve_release(&ctx);
	lfsfs_config_free(cfg);
	cfg = NULL;

	/* no remote at all: left out quietly */
	snprintf(path, sizeof(path), "%s/bare", dir);
	sh("git init -q '%s'", path);
	rc = chain(&ctx, path, &cfg, net);
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(ctx.n, 0);
out_ctx:
	lfsfs_resolve_release(&ctx);
	lfsfs_config_free(cfg);
	lfsfs_net_free(net);
out:
	server_stop();
	sh("rm -rf '%s'", dir);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_endpoint();
	test_discover();
	test_time();
	test_parse();
	test_body();
	test_against_server();
	return TEST_RESULT();
}
