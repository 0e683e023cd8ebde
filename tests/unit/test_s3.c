/*
 * Unit tests for the s3 backend's request addressing, through its public
 * explain() op (no network): endpoint precedence, path-style vs
 * virtual-hosted, region precedence, key encoding, URL validation, and
 * that secrets never appear in the explanation.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lfsfs/error.h"
#include "store/store.h"
#include "test.h"
#include "util/config.h"

static char home[256];

static const char *const aws_vars[] = {
	"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION",
	"AWS_S3_FORCE_PATH_STYLE", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID",
	"AWS_SECRET_ACCESS_KEY", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
	"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", NULL,
};

/* A clean environment with env credentials. */
static void env_reset(void)
{
	for (int i = 0; aws_vars[i]; i++)
		unsetenv(aws_vars[i]);
	setenv("HOME", home, 1);
	setenv("AWS_CONFIG_FILE", "/nonexistent/lfsfs-test/config", 1);
	setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/lfsfs-test/credentials", 1);
	setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
	setenv("AWS_ACCESS_KEY_ID", "AKIDTESTEXAMPLE", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "SuperSecretKeyDoNotPrint123", 1);
}

/* explain(url) with the given config pairs (NULL-terminated key, value...). */
static int explain(const char *url, char *out, size_t cap, ...)
{
	struct lfsfs_config *cfg = lfsfs_config_new();
	struct lfsfs_store st;
	struct lfsfs_buf b = LFSFS_BUF_INIT(0);
	const struct lfsfs_store_ops *ops = lfsfs_store_for_url(url);
	va_list ap;
	const char *k;
	int rc;

	va_start(ap, cap);
	while ((k = va_arg(ap, const char *))) {
		const char *v = va_arg(ap, const char *);
		lfsfs_config_set(cfg, k, v);
	}
	va_end(ap);
	lfsfs_store_init(&st, NULL, cfg);
	rc = ops && ops->explain ? ops->explain(&st, url, &b) : -999;
	snprintf(out, cap, "%s", b.data ? b.data : "");
	lfsfs_buf_release(&b);
	lfsfs_store_release(&st);
	lfsfs_config_free(cfg);
	return rc;
}

/* text has line as a whole line */
static int has_line(const char *text, const char *line)
{
	char want[1200];

	snprintf(want, sizeof(want), "%s\n", line);
	for (const char *p = text; (p = strstr(p, want)); p++)
		if (p == text || p[-1] == '\n')
			return 1;
	return 0;
}
#define LINE(text, line) do { if (has_line((text), (line))) { test_pass++; } else { \
	test_fail++; fprintf(stderr, "%s:%d: missing line \"%s\" in:\n%s\n", __FILE__, \
			     __LINE__, (line), (text)); } } while (0)

#define NOSUBSTR(text, s) do { if (strstr((text), (s))) { test_fail++; \
	fprintf(stderr, "%s:%d: \"%s\" must not appear in:\n%s\n", __FILE__, __LINE__, (s), \
		(text)); } else test_pass++; } while (0)

int main(void)
{
	char out[8192];
	int rc;

	snprintf(home, sizeof(home), "/tmp/lfsfs-test-s3-home-%d", (int)getpid());

	/* dispatch */
	CHECK(lfsfs_store_for_url("s3://b/k") == &lfsfs_store_s3);
	CHECK(lfsfs_store_for_url("S3://b/k") == &lfsfs_store_s3);
	CHECK(lfsfs_store_for_url("https://b/k") != &lfsfs_store_s3);
	CHECK(strstr(lfsfs_store_schemes(), "s3://bucket/key") != NULL);

	/* AWS default endpoint: virtual-hosted, region from AWS_REGION */
	env_reset();
	setenv("AWS_REGION", "eu-west-1", 1);
	rc = explain("s3://my-bucket/dir/a b+c.bin", out, sizeof(out), NULL);
	CHECK_EQ_INT(rc, 0);
	LINE(out, "backend: s3");
	LINE(out, "bucket: my-bucket");
	LINE(out, "key: dir/a b+c.bin");
	LINE(out, "addressing: virtual-hosted (default)");
	LINE(out, "region: eu-west-1 (from AWS_REGION)");
	LINE(out, "request: https://my-bucket.s3.eu-west-1.amazonaws.com/dir/a%20b%2Bc.bin");
	LINE(out, "credentials: env");
	NOSUBSTR(out, "SuperSecretKeyDoNotPrint123");

	/* no region anywhere: us-east-1, checked with the endpoint later */
	env_reset();
	explain("s3://my-bucket/k", out, sizeof(out), NULL);
	LINE(out, "region: us-east-1 (default: none configured; checked with the endpoint on "
		  "first use)");
	LINE(out, "request: https://my-bucket.s3.us-east-1.amazonaws.com/k");

	/* region precedence: lfsfs.s3.region > AWS_REGION > AWS_DEFAULT_REGION */
	env_reset();
	setenv("AWS_DEFAULT_REGION", "ap-south-1", 1);
	explain("s3://my-bucket/k", out, sizeof(out), NULL);
	LINE(out, "region: ap-south-1 (from AWS_DEFAULT_REGION)");
	setenv("AWS_REGION", "us-west-2", 1);
	explain("s3://my-bucket/k", out, sizeof(out), NULL);
	LINE(out, "region: us-west-2 (from AWS_REGION)");
	explain("s3://my-bucket/k", out, sizeof(out), "lfsfs.s3.region", "eu-north-1", NULL);
	LINE(out, "region: eu-north-1 (from lfsfs.s3.region)");
	LINE(out, "request: https://my-bucket.s3.eu-north-1.amazonaws.com/k");

	/* China regions live under amazonaws.com.cn */
	env_reset();
	setenv("AWS_REGION", "cn-north-1", 1);
	explain("s3://my-bucket/k", out, sizeof(out), NULL);
	LINE(out, "request: https://my-bucket.s3.cn-north-1.amazonaws.com.cn/k");

	/* dots in the bucket on TLS: path-style (the wildcard cert would not match) */
	env_reset();
	setenv("AWS_REGION", "eu-west-1", 1);
	explain("s3://my.dotted.bucket/k", out, sizeof(out), NULL);
	LINE(out, "addressing: path-style (the bucket name has dots and TLS certificates do not "
		  "match nested names)");
	LINE(out, "request: https://s3.eu-west-1.amazonaws.com/my.dotted.bucket/k");

	/* not a DNS label (uppercase, underscore): path-style, even if asked otherwise */
	explain("s3://Legacy_Bucket/k", out, sizeof(out), "lfsfs.s3.pathstyle", "false", NULL);
	LINE(out, "addressing: path-style (the bucket name is not a valid DNS label)");
	LINE(out, "request: https://s3.eu-west-1.amazonaws.com/Legacy_Bucket/k");

	/* AWS_S3_FORCE_PATH_STYLE */
	setenv("AWS_S3_FORCE_PATH_STYLE", "true", 1);
	explain("s3://my-bucket/k", out, sizeof(out), NULL);
	LINE(out, "addressing: path-style (AWS_S3_FORCE_PATH_STYLE)");
	LINE(out, "request: https://s3.eu-west-1.amazonaws.com/my-bucket/k");
	/* ... but lfsfs.s3.pathstyle = false wins */
	explain("s3://my-bucket/k", out, sizeof(out), "lfsfs.s3.pathstyle", "false", NULL);
	LINE(out, "addressing: virtual-hosted (lfsfs.s3.pathstyle = false)");

	/* endpoint precedence: lfsfs.s3.endpoint > AWS_ENDPOINT_URL_S3 > AWS_ENDPOINT_URL */
	env_reset();
	setenv("AWS_ENDPOINT_URL", "http://10.1.2.3:9000", 1);
	explain("s3://data/x/y.bin", out, sizeof(out), NULL);
	LINE(out, "endpoint: http://10.1.2.3:9000 (from AWS_ENDPOINT_URL)");
	LINE(out, "addressing: path-style (the endpoint is an IP address or localhost)");
	LINE(out, "request: http://10.1.2.3:9000/data/x/y.bin");
	setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:4568/", 1);
	explain("s3://data/x/y.bin", out, sizeof(out), NULL);
	LINE(out, "endpoint: http://127.0.0.1:4568 (from AWS_ENDPOINT_URL_S3)");
	LINE(out, "request: http://127.0.0.1:4568/data/x/y.bin");
	explain("s3://data/x/y.bin", out, sizeof(out), "lfsfs.s3.endpoint",
		"https://minio.example.org:9443/base/", NULL);
	LINE(out, "endpoint: https://minio.example.org:9443/base (from lfsfs.s3.endpoint)");
	LINE(out, "addressing: virtual-hosted (default)");
	LINE(out, "request: https://data.minio.example.org:9443/base/x/y.bin");
	explain("s3://data/x/y.bin", out, sizeof(out), "lfsfs.s3.endpoint",
		"https://minio.example.org:9443/base/", "lfsfs.s3.pathstyle", "true", NULL);
	LINE(out, "addressing: path-style (lfsfs.s3.pathstyle = true)");
	LINE(out, "request: https://minio.example.org:9443/base/data/x/y.bin");

	/* default ports are left out (curl leaves them out of Host: too); bare
	 * host means https; localhost and IPv6 literals are path-style */
	env_reset();
	explain("s3://data/k", out, sizeof(out), "lfsfs.s3.endpoint", "HTTPS://Store.Example:443",
		NULL);
	LINE(out, "request: https://data.store.example/k");
	explain("s3://data/k", out, sizeof(out), "lfsfs.s3.endpoint", "store.example:8443", NULL);
	LINE(out, "request: https://data.store.example:8443/k");
	explain("s3://data/k", out, sizeof(out), "lfsfs.s3.endpoint", "http://localhost:4568",
		NULL);
	LINE(out, "request: http://localhost:4568/data/k");
	explain("s3://data/k", out, sizeof(out), "lfsfs.s3.endpoint", "http://[::1]:4568", NULL);
	LINE(out, "request: http://[::1]:4568/data/k");
	explain("s3://data/k", out, sizeof(out), "lfsfs.s3.endpoint", "http://localhost:4568",
		"lfsfs.s3.pathstyle", "no", NULL);
	LINE(out, "request: http://data.localhost:4568/k");

	/* key encoding: every byte but unreserved and '/' is %-encoded, once */
	explain("s3://data/we ird/x+y (1)=&'!*,;:@~$%2F\xc3\xa9.bin", out, sizeof(out),
		"lfsfs.s3.endpoint", "http://127.0.0.1:1", NULL);
	LINE(out, "request: http://127.0.0.1:1/data/we%20ird/x%2By%20%281%29%3D%26%27%21%2A%2C%3B"
		  "%3A%40~%24%252F%C3%A9.bin");
	explain("s3://data//lead//double", out, sizeof(out), "lfsfs.s3.endpoint",
		"http://127.0.0.1:1", NULL);
	LINE(out, "request: http://127.0.0.1:1/data//lead//double");

	/* bad URLs and endpoints: explained, non-zero */
	rc = explain("s3://bucket-only", out, sizeof(out), NULL);
	CHECK(rc != 0);
	CHECK(strstr(out, "expected s3://bucket/key") != NULL);
	rc = explain("s3://bucket/", out, sizeof(out), NULL);
	CHECK(rc != 0);
	rc = explain("s3://b/a/../c", out, sizeof(out), NULL);
	CHECK_EQ_INT(rc, -LFSFS_EUNSUPPORTED);
	CHECK(strstr(out, "'..' path segments") != NULL);
	rc = explain("s3://bad bucket/k", out, sizeof(out), NULL);
	CHECK(rc != 0);
	rc = explain("s3://data/k", out, sizeof(out), "lfsfs.s3.endpoint",
		     "http://user:pw@127.0.0.1:9000", NULL);
	CHECK(rc != 0);
	NOSUBSTR(out, "pw@");
	rc = explain("s3://data/k", out, sizeof(out), "lfsfs.s3.endpoint", "ftp://x", NULL);
	CHECK_EQ_INT(rc, -LFSFS_EUNSUPPORTED);
	rc = explain("s3://data/k", out, sizeof(out), "lfsfs.s3.endpoint",
		     "http://127.0.0.1:99999", NULL);
	CHECK(rc != 0);

	/* session tokens are mentioned, never shown */
	env_reset();
	setenv("AWS_SESSION_TOKEN", "TokenValueMustNotBePrinted", 1);
	explain("s3://my-bucket/k", out, sizeof(out), NULL);
	LINE(out, "credentials: env (temporary, with session token)");
	NOSUBSTR(out, "TokenValueMustNotBePrinted");
	NOSUBSTR(out, "SuperSecretKeyDoNotPrint123");

	/* no credentials anywhere: unsigned, with the list of sources tried */
	env_reset();
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	rc = explain("s3://my-bucket/k", out, sizeof(out), NULL);
	CHECK_EQ_INT(rc, 0);
	LINE(out, "credentials: none (unsigned requests: public buckets only)");
	CHECK(strstr(out, "credentials tried: ") && strstr(out, "env"));
	CHECK(strstr(out, "fix: for a private bucket set AWS_PROFILE or AWS_ACCESS_KEY_ID") != NULL);

	return TEST_RESULT();
}
