/*
 * Unit tests for the Azure Blob backend's pure parts (store/azure_auth.h):
 * SharedKey string-to-sign and signature, connection strings, URL forms,
 * the credential chain and request building, and the managed-identity token
 * cache against a loopback IMDS stand-in (tests/lib/azure_standins.py).
 */
#include <curl/curl.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lfsfs/error.h"
#include "store/azure_auth.h"
#include "store/store.h"
#include "test.h"
#include "util/config.h"

/* Azurite's well-known development key: public, so fine in a test. */
#define KEY LFSFS_AZ_DEV_KEY
#define DATE "Sun, 06 Nov 1994 08:49:37 GMT"
#define DATE_T ((time_t)784111777)

/*
 * Expected values below were derived from Microsoft's "Authorize with Shared
 * Key" rules (Blob service, version 2009-09-19 and later), not from this
 * code: the string-to-sign was written out by hand from the rules (VERB,
 * then the 11 standard header slots each on its own line -- Content-Length
 * empty when 0 --, then the x-ms- headers lowercased and sorted as
 * "name:value\n" with whitespace folded, then "/" account path and the
 * query parameters as "\nname:value", names lowercased and sorted, values
 * decoded, repeated names' values sorted and comma-joined), and each
 * signature computed once with python3:
 *   base64.b64encode(hmac.new(base64.b64decode(KEY), sts.encode(),
 *                             hashlib.sha256).digest())
 */
/* 1: a ranged GET with If-Match against a path-style endpoint (Azurite):
 *    the request path starts with the account, so it appears twice. */
static const char sts1[] =
	"GET\n\n\n\n\n\n\n\n\"0x8DA1B2C3D4E5F60\"\n\n\nbytes=1048576-2097151\n"
	"x-ms-date:" DATE "\nx-ms-version:2021-08-06\n"
	"/devstoreaccount1/devstoreaccount1/data/dir/with%20space.bin";
static const char sig1[] = "m1A+YpbBgYiynhp4eOC13bEZqBHkH1zFwoY9YcP5XCU=";
/* 2: canonicalization rules: Content-Length 0, mixed-case x-ms- names with
 *    untidy whitespace, a query with mixed-case, encoded and repeated names. */
static const char sts2[] =
	"PUT\n\n\n\n\ntext/plain\n\n\n\n\n\n\n"
	"x-ms-date:" DATE "\nx-ms-meta-foo:a b c\nx-ms-version:2021-08-06\n"
	"/myaccount/mycontainer\ncomp:list\ninclude:metadata,snapshots\nprefix:a/b c\n"
	"restype:container";
static const char sig2[] = "JqI6Iz7Cb5h8H7+b4PjWaXrbZW9O9N03oPanTMG/Vak=";
/* 3: HEAD on a virtual-host endpoint, no range. */
static const char sig3[] = "/67W1+vyf9NTImOHTOrZmEXC7jBx2iRdzDRFGMtvU7c=";

static void test_string_to_sign(void)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(1 << 16);
	char sig[64];
	const struct lfsfs_az_header h1[] = {
		{ "x-ms-version", "2021-08-06" },
		{ "Range", "bytes=1048576-2097151" },
		{ "If-Match", "\"0x8DA1B2C3D4E5F60\"" },
		{ "x-ms-date", DATE },
		{ "User-Agent", "ignored" },
	};
	const struct lfsfs_az_header h2[] = {
		{ "X-MS-Version", "2021-08-06" },
		{ "Content-Length", "0" },
		{ "content-type", "text/plain" },
		{ "x-ms-date", DATE },
		{ "X-Ms-Meta-Foo", "  a \t b   c " },
	};
	const struct lfsfs_az_header h3[] = {
		{ "x-ms-date", DATE },
		{ "x-ms-version", "2021-08-06" },
	};

	CHECK_EQ_INT(lfsfs_az_string_to_sign("GET", h1, 5, "devstoreaccount1",
					     "/devstoreaccount1/data/dir/with%20space.bin", NULL,
					     &b), 0);
	CHECK_EQ_STR(b.data, sts1);
	CHECK_EQ_INT(lfsfs_az_sign(KEY, b.data, b.len, sig, sizeof(sig)), 0);
	CHECK_EQ_STR(sig, sig1);

	CHECK_EQ_INT(lfsfs_az_string_to_sign("PUT", h2, 5, "myaccount", "/mycontainer",
					     "restype=container&include=snapshots&comp=list&"
					     "Prefix=a%2Fb+c&include=metadata", &b), 0);
	CHECK_EQ_STR(b.data, sts2);
	CHECK_EQ_INT(lfsfs_az_sign(KEY, b.data, b.len, sig, sizeof(sig)), 0);
	CHECK_EQ_STR(sig, sig2);

	CHECK_EQ_INT(lfsfs_az_string_to_sign("HEAD", h3, 2, "myaccount", "/mycontainer/a/b.bin",
					     "", &b), 0);
	CHECK_EQ_INT(lfsfs_az_sign(KEY, b.data, b.len, sig, sizeof(sig)), 0);
	CHECK_EQ_STR(sig, sig3);

	/* a key that is not base64 is refused, not used as raw bytes */
	CHECK_EQ_INT(lfsfs_az_sign("not base64!", "x", 1, sig, sizeof(sig)), -LFSFS_EPARSE);
	CHECK_EQ_INT(lfsfs_az_sign("", "x", 1, sig, sizeof(sig)), -LFSFS_EPARSE);
	lfsfs_buf_release(&b);
}

static void test_date(void)
{
	char d[32];

	lfsfs_az_http_date(DATE_T, d);
	CHECK_EQ_STR(d, DATE);
	lfsfs_az_http_date(0, d);
	CHECK_EQ_STR(d, "Thu, 01 Jan 1970 00:00:00 GMT");
}

static void test_connstr(void)
{
	struct lfsfs_az_connstr cs;

	CHECK_EQ_INT(lfsfs_az_connstr_parse("DefaultEndpointsProtocol=https;AccountName=acct1;"
					    "AccountKey=" KEY ";EndpointSuffix=core.chinacloudapi.cn",
					    &cs), 0);
	CHECK_EQ_STR(cs.account, "acct1");
	CHECK_EQ_STR(cs.key, KEY);          /* '=' padding inside the value kept */
	CHECK_EQ_STR(cs.protocol, "https");
	CHECK_EQ_STR(cs.suffix, "core.chinacloudapi.cn");
	CHECK_EQ_STR(cs.blob_endpoint, "");
	CHECK_EQ_INT(cs.dev, 0);

	/* keys are case-insensitive, whitespace and empty parts are ignored,
	 * a trailing '/' on the endpoint and a leading '?' on the SAS dropped */
	CHECK_EQ_INT(lfsfs_az_connstr_parse(" blobendpoint = http://127.0.0.1:10000/devstoreaccount1/ ;"
					    ";SHAREDACCESSSIGNATURE=?sv=2021-08-06&sr=c&sp=r&sig=ab%3D;"
					    "QueueEndpoint=http://x/;", &cs), 0);
	CHECK_EQ_STR(cs.blob_endpoint, "http://127.0.0.1:10000/devstoreaccount1");
	CHECK_EQ_STR(cs.sas, "sv=2021-08-06&sr=c&sp=r&sig=ab%3D");
	CHECK_EQ_STR(cs.account, "");
	CHECK_EQ_STR(cs.key, "");

	CHECK_EQ_INT(lfsfs_az_connstr_parse("UseDevelopmentStorage=true", &cs), 0);
	CHECK_EQ_INT(cs.dev, 1);
	CHECK_EQ_STR(cs.account, "devstoreaccount1");
	CHECK_EQ_STR(cs.key, KEY);
	CHECK_EQ_STR(cs.blob_endpoint, "http://127.0.0.1:10000/devstoreaccount1");

	/* malformed: the message names the problem, never a value */
	CHECK_EQ_INT(lfsfs_az_connstr_parse("AccountName=a;AccountKeySECRETVALUE", &cs),
		     -LFSFS_EPARSE);
	CHECK(strstr(lfsfs_error_message(), "Key=Value") != NULL);
	CHECK(strstr(lfsfs_error_message(), "SECRETVALUE") == NULL);
	CHECK_EQ_INT(lfsfs_az_connstr_parse("DefaultEndpointsProtocol=ftp;AccountName=a", &cs),
		     -LFSFS_EPARSE);
	CHECK_EQ_INT(lfsfs_az_connstr_parse("BlobEndpoint=127.0.0.1:10000", &cs), -LFSFS_EPARSE);
	CHECK_EQ_INT(lfsfs_az_connstr_parse("QueueEndpoint=http://x", &cs), -LFSFS_EPARSE);
}

static void test_urls(void)
{
	struct lfsfs_az_url u;

	CHECK(lfsfs_az_url_handles("az://c/b"));
	CHECK(lfsfs_az_url_handles("AZ://c/b"));
	CHECK(lfsfs_az_url_handles("https://myacct.blob.core.windows.net/c/b"));
	CHECK(lfsfs_az_url_handles("https://MyAcct.Blob.Core.Windows.Net:443/c/b"));
	CHECK(lfsfs_az_url_handles("http://myacct.blob.core.usgovcloudapi.net/c/b"));
	CHECK(!lfsfs_az_url_handles("https://example.com/c/b"));
	CHECK(!lfsfs_az_url_handles("https://myacct.dfs.core.windows.net/c/b"));
	CHECK(!lfsfs_az_url_handles("https://evil.example/x.blob.core.windows.net/c/b"));
	CHECK(!lfsfs_az_url_handles("https://user@myacct.blob.core.windows.net/c/b"));
	CHECK(!lfsfs_az_url_handles("s3://bucket/key"));

	/* az:// form: account comes from elsewhere */
	CHECK_EQ_INT(lfsfs_az_url_parse("az://data/dir/sub/f.bin", &u), 0);
	CHECK_EQ_INT(u.https_form, 0);
	CHECK_EQ_STR(u.account, "");
	CHECK_EQ_STR(u.container, "data");
	CHECK_EQ_STR(u.blob, "dir/sub/f.bin");
	CHECK_EQ_STR(u.query, "");
	/* unsafe bytes are escaped, existing %XX escapes kept */
	CHECK_EQ_INT(lfsfs_az_url_parse("az://data/a b+c%20d%zz#frag", &u), 0);
	CHECK_EQ_STR(u.blob, "a%20b%2Bc%20d%25zz");
	CHECK_EQ_INT(lfsfs_az_url_parse("az://$root/x.bin?versionid=2024-01-01", &u), 0);
	CHECK_EQ_STR(u.container, "$root");
	CHECK_EQ_STR(u.query, "versionid=2024-01-01");
	CHECK(!lfsfs_az_query_is_sas(u.query));

	/* https form: account from the host, scheme/host lowercased */
	CHECK_EQ_INT(lfsfs_az_url_parse("HTTPS://MyAcct.blob.core.windows.net/c1/a/b.bin"
					"?sv=2021-08-06&sr=b&sp=r&sig=abc%2B", &u), 0);
	CHECK_EQ_INT(u.https_form, 1);
	CHECK_EQ_STR(u.account, "myacct");
	CHECK_EQ_STR(u.origin, "https://myacct.blob.core.windows.net");
	CHECK_EQ_STR(u.container, "c1");
	CHECK_EQ_STR(u.blob, "a/b.bin");
	CHECK_EQ_STR(u.query, "sv=2021-08-06&sr=b&sp=r&sig=abc%2B");
	CHECK(lfsfs_az_query_is_sas(u.query));
	CHECK_EQ_INT(lfsfs_az_url_parse("https://acct.blob.core.windows.net:8443/c/k", &u), 0);
	CHECK_EQ_STR(u.origin, "https://acct.blob.core.windows.net:8443");

	/* no blob, no container, bad container characters, not Azure */
	CHECK_EQ_INT(lfsfs_az_url_parse("az://data", &u), -LFSFS_EPARSE);
	CHECK_EQ_INT(lfsfs_az_url_parse("az://data/", &u), -LFSFS_EPARSE);
	CHECK_EQ_INT(lfsfs_az_url_parse("az:///blob", &u), -LFSFS_EPARSE);
	CHECK_EQ_INT(lfsfs_az_url_parse("az://Da_ta/blob", &u), -LFSFS_EPARSE);
	CHECK_EQ_INT(lfsfs_az_url_parse("https://acct.blob.core.windows.net/c", &u), -LFSFS_EPARSE);
	CHECK_EQ_INT(lfsfs_az_url_parse("https://example.com/c/b?sig=SECRET", &u), -LFSFS_EPARSE);
	CHECK(strstr(lfsfs_error_message(), "SECRET") == NULL);

	/* the backend table sends Azure URLs to azure, others elsewhere */
	CHECK(lfsfs_store_for_url("az://c/b") == &lfsfs_store_azure);
	CHECK(lfsfs_store_for_url("https://acct.blob.core.windows.net/c/b") == &lfsfs_store_azure);
	CHECK(lfsfs_store_for_url("https://example.com/c/b") != &lfsfs_store_azure);
}

static void clear_env(void)
{
	unsetenv("AZURE_STORAGE_CONNECTION_STRING");
	unsetenv("AZURE_STORAGE_ACCOUNT");
	unsetenv("AZURE_STORAGE_KEY");
	unsetenv("AZURE_STORAGE_SAS_TOKEN");
	unsetenv("AZURE_CLIENT_ID");
	unsetenv(LFSFS_AZ_IMDS_ENV);
}

static void test_target(void)
{
	struct lfsfs_az_env env;
	struct lfsfs_az_target t;
	struct lfsfs_config *cfg = lfsfs_config_new();

	clear_env();
	/* connection string with a path-style BlobEndpoint (Azurite) */
	setenv("AZURE_STORAGE_CONNECTION_STRING", "DefaultEndpointsProtocol=http;AccountName="
	       "devstoreaccount1;AccountKey=" KEY ";BlobEndpoint=http://127.0.0.1:10000/"
	       "devstoreaccount1;", 1);
	lfsfs_az_env_load(&env, NULL);
	CHECK_EQ_INT(lfsfs_az_target(&env, "az://data/f.bin", &t), 0);
	CHECK_EQ_STR(t.account, "devstoreaccount1");
	CHECK_EQ_STR(t.base, "http://127.0.0.1:10000/devstoreaccount1");
	CHECK_EQ_INT(t.origin_len, strlen("http://127.0.0.1:10000"));
	CHECK_EQ_INT(t.path_style, 1);
	CHECK_EQ_INT(t.auth, LFSFS_AZ_SHAREDKEY);
	CHECK_EQ_STR(t.cred_src, "AZURE_STORAGE_CONNECTION_STRING (AccountKey)");
	CHECK_EQ_STR(t.key, KEY);
	/* ...but not for another account's URL: skipped, and said so */
	CHECK_EQ_INT(lfsfs_az_target(&env, "https://other.blob.core.windows.net/c/b", &t), 0);
	CHECK_EQ_STR(t.base, "https://other.blob.core.windows.net");
	CHECK_EQ_INT(t.path_style, 0);
	CHECK_EQ_INT(t.auth, LFSFS_AZ_ANON);
	CHECK(strstr(t.tried, "is for account 'devstoreaccount1', not 'other'") != NULL);
	CHECK(strstr(t.tried, KEY) == NULL);

	/* account + key; default endpoint */
	clear_env();
	setenv("AZURE_STORAGE_ACCOUNT", "acct2", 1);
	setenv("AZURE_STORAGE_KEY", KEY, 1);
	lfsfs_az_env_load(&env, NULL);
	CHECK_EQ_INT(lfsfs_az_target(&env, "az://c/k", &t), 0);
	CHECK_EQ_STR(t.account, "acct2");
	CHECK_EQ_STR(t.base, "https://acct2.blob.core.windows.net");
	CHECK_EQ_INT(t.auth, LFSFS_AZ_SHAREDKEY);
	CHECK_EQ_STR(t.cred_src, "AZURE_STORAGE_ACCOUNT + AZURE_STORAGE_KEY");
	CHECK(strstr(t.tried, "no connection string") != NULL);
	/* a SAS in the URL wins: it was made for exactly this object */
	CHECK_EQ_INT(lfsfs_az_target(&env, "az://c/k?sv=1&sig=x", &t), 0);
	CHECK_EQ_INT(t.auth, LFSFS_AZ_SAS);
	CHECK_EQ_STR(t.cred_src, "the URL's query");

	/* config overrides: an https-style URL redirected to a local endpoint */
	lfsfs_config_set(cfg, "lfsfs.azure.endpoint", "http://127.0.0.1:9/acct2/");
	lfsfs_az_env_load(&env, cfg);
	CHECK_EQ_INT(lfsfs_az_target(&env, "https://acct2.blob.core.windows.net/c/k", &t), 0);
	CHECK_EQ_STR(t.base, "http://127.0.0.1:9/acct2");
	CHECK_EQ_STR(t.account, "acct2");
	CHECK_EQ_INT(t.path_style, 1);
	CHECK_EQ_STR(t.endpoint_src, "git config lfsfs.azure.endpoint");
	CHECK_EQ_INT(t.auth, LFSFS_AZ_SHAREDKEY);
	lfsfs_config_set(cfg, "lfsfs.azure.account", "acct3");
	lfsfs_az_env_load(&env, cfg);
	CHECK_EQ_INT(lfsfs_az_target(&env, "az://c/k", &t), 0);
	CHECK_EQ_STR(t.account, "acct3");
	CHECK_EQ_INT(t.auth, LFSFS_AZ_ANON);     /* the key is acct2's */
	CHECK(strstr(t.tried, "AZURE_STORAGE_ACCOUNT is 'acct2', not 'acct3'") != NULL);
	lfsfs_config_free(cfg);

	/* SAS token variable; a bad key is skipped with a reason */
	clear_env();
	setenv("AZURE_STORAGE_ACCOUNT", "acct4", 1);
	setenv("AZURE_STORAGE_KEY", "%%%%", 1);
	setenv("AZURE_STORAGE_SAS_TOKEN", "?sv=2021-08-06&sp=r&sig=zz", 1);
	lfsfs_az_env_load(&env, NULL);
	CHECK_EQ_INT(lfsfs_az_target(&env, "az://c/k", &t), 0);
	CHECK_EQ_INT(t.auth, LFSFS_AZ_SAS);
	CHECK_EQ_STR(t.sas, "sv=2021-08-06&sp=r&sig=zz");
	CHECK_EQ_STR(t.cred_src, "AZURE_STORAGE_SAS_TOKEN");
	CHECK(strstr(t.tried, "AZURE_STORAGE_KEY is not valid base64") != NULL);

	/* SAS connection string: account from the BlobEndpoint's path */
	clear_env();
	setenv("AZURE_STORAGE_CONNECTION_STRING", "BlobEndpoint=http://127.0.0.1:10000/dev5;"
	       "SharedAccessSignature=sv=2021-08-06&sig=q", 1);
	lfsfs_az_env_load(&env, NULL);
	CHECK_EQ_INT(lfsfs_az_target(&env, "az://c/k", &t), 0);
	CHECK_EQ_STR(t.account, "dev5");
	CHECK_EQ_INT(t.auth, LFSFS_AZ_SAS);
	CHECK_EQ_STR(t.cred_src, "AZURE_STORAGE_CONNECTION_STRING (SharedAccessSignature)");

	/* nothing at all: an az:// URL has no account */
	clear_env();
	lfsfs_az_env_load(&env, NULL);
	CHECK_EQ_INT(lfsfs_az_target(&env, "az://c/k", &t), -LFSFS_ECREDENTIALS_MISSING);
	CHECK(strstr(lfsfs_error_message(), "AZURE_STORAGE_CONNECTION_STRING") != NULL);
	CHECK(strstr(lfsfs_error_message(), "AZURE_STORAGE_ACCOUNT") != NULL);
	/* an https URL can still go anonymously (public containers) */
	CHECK_EQ_INT(lfsfs_az_target(&env, "https://pub.blob.core.windows.net/c/k", &t), 0);
	CHECK_EQ_INT(t.auth, LFSFS_AZ_ANON);
	CHECK_EQ_STR(env.imds, LFSFS_AZ_IMDS_DEFAULT);

	/* a malformed connection string is reported, not fatal */
	setenv("AZURE_STORAGE_CONNECTION_STRING", "garbage", 1);
	lfsfs_az_env_load(&env, NULL);
	CHECK_EQ_INT(lfsfs_az_target(&env, "https://pub.blob.core.windows.net/c/k", &t), 0);
	CHECK(strstr(t.tried, "AZURE_STORAGE_CONNECTION_STRING: malformed") != NULL);
	clear_env();
}

static const char *hdr(const struct curl_slist *h, const char *name)
{
	size_t n = strlen(name);

	for (; h; h = h->next)
		if (!strncasecmp(h->data, name, n) && h->data[n] == ':')
			return h->data + n + 2;
	return NULL;
}

static void test_build(void)
{
	struct lfsfs_az_env env;
	struct lfsfs_az_target t;
	struct curl_slist *h = NULL;
	char *url = NULL, want[128];

	clear_env();
	setenv("AZURE_STORAGE_CONNECTION_STRING", "AccountName=devstoreaccount1;AccountKey=" KEY
	       ";BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1", 1);
	lfsfs_az_env_load(&env, NULL);
	/* the request of case 1 above, end to end */
	CHECK_EQ_INT(lfsfs_az_target(&env, "az://data/dir/with space.bin", &t), 0);
	CHECK_EQ_INT(lfsfs_az_build(&t, "GET", 1048576, 1048576, "\"0x8DA1B2C3D4E5F60\"", NULL,
				    DATE_T, &url, &h), 0);
	CHECK_EQ_STR(url, "http://127.0.0.1:10000/devstoreaccount1/data/dir/with%20space.bin");
	CHECK_EQ_STR(hdr(h, "x-ms-date"), DATE);
	CHECK_EQ_STR(hdr(h, "x-ms-version"), LFSFS_AZ_VERSION);
	snprintf(want, sizeof(want), "SharedKey devstoreaccount1:%s", sig1);
	CHECK_EQ_STR(hdr(h, "Authorization"), want);
	/* Range and If-Match are the engine's to send, not ours */
	CHECK(hdr(h, "Range") == NULL && hdr(h, "If-Match") == NULL);
	free(url);
	curl_slist_free_all(h);

	/* SAS: appended to the URL (after an existing query), no Authorization */
	clear_env();
	setenv("AZURE_STORAGE_ACCOUNT", "acct", 1);
	setenv("AZURE_STORAGE_SAS_TOKEN", "sv=2021-08-06&sig=s%2B", 1);
	lfsfs_az_env_load(&env, NULL);
	CHECK_EQ_INT(lfsfs_az_target(&env, "az://c/k?versionid=7", &t), 0);
	CHECK_EQ_INT(lfsfs_az_build(&t, "GET", 0, 10, NULL, NULL, DATE_T, &url, &h), 0);
	CHECK_EQ_STR(url, "https://acct.blob.core.windows.net/c/k?versionid=7&sv=2021-08-06&sig=s%2B");
	CHECK(hdr(h, "Authorization") == NULL);
	CHECK_EQ_STR(hdr(h, "x-ms-version"), LFSFS_AZ_VERSION);
	free(url);
	curl_slist_free_all(h);

	/* bearer */
	t.auth = LFSFS_AZ_BEARER;
	t.sas = NULL;
	CHECK_EQ_INT(lfsfs_az_build(&t, "HEAD", 0, 0, NULL, "tok123", DATE_T, &url, &h), 0);
	CHECK_EQ_STR(url, "https://acct.blob.core.windows.net/c/k?versionid=7");
	CHECK_EQ_STR(hdr(h, "Authorization"), "Bearer tok123");
	free(url);
	curl_slist_free_all(h);
	clear_env();
}

/* ------------------------------------------------ IMDS via the stand-in */

static pid_t standin_pid;

static int standin_start(char *base, size_t cap)
{
	char script[4096], src[4096], line[64];
	const char *root = getenv("LFSFS_SRC");
	long port = 0;
	int p[2];
	FILE *f;

	if (root)
		snprintf(script, sizeof(script), "%s/tests/lib/azure_standins.py", root);
	else {
		snprintf(src, sizeof(src), "%s", __FILE__);
		snprintf(script, sizeof(script), "%s/../lib/azure_standins.py", dirname(src));
	}
	if (access(script, R_OK) || pipe(p))
		return -1;
	standin_pid = fork();
	if (standin_pid < 0)
		return -1;
	if (!standin_pid) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execlp("python3", "python3", script, "imds", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	f = fdopen(p[0], "r");
	if (!f || !fgets(line, sizeof(line), f) || (port = strtol(line, NULL, 10)) <= 0) {
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	snprintf(base, cap, "http://127.0.0.1:%ld", port);
	return 0;
}

static void standin_stop(void)
{
	if (standin_pid > 0) {
		kill(standin_pid, SIGTERM);
		waitpid(standin_pid, NULL, 0);
	}
}

static size_t sink(char *d, size_t s, size_t n, void *p)
{
	return lfsfs_buf_append(p, d, s * n) ? 0 : s * n;
}

/* The stand-in's record of the last token request. */
static cJSON *standin_stats(const char *base)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(1 << 20);
	char url[300];
	CURL *h = curl_easy_init();
	cJSON *j = NULL;

	snprintf(url, sizeof(url), "%s/_stats", base);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	if (curl_easy_perform(h) == CURLE_OK && b.data)
		j = cJSON_Parse(b.data);
	curl_easy_cleanup(h);
	lfsfs_buf_release(&b);
	return j;
}

static int stat_int(const char *base, const char *name)
{
	cJSON *j = standin_stats(base);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
	int r = cJSON_IsNumber(v) ? v->valueint : -1;

	cJSON_Delete(j);
	return r;
}

static void test_imds(void)
{
	struct lfsfs_az_token_cache c;
	char base[128], tok[8192], tok2[8192];
	cJSON *j;
	const cJSON *hd, *q;
	time_t t0;

	if (standin_start(base, sizeof(base))) {
		printf("test_imds: SKIPPED (python3 or tests/lib/azure_standins.py unavailable)\n");
		return;
	}
	lfsfs_az_token_init(&c);
	CHECK_EQ_INT(lfsfs_az_token_get(&c, base, NULL, tok, sizeof(tok)), 0);
	CHECK_EQ_STR(tok, "lfsfs-test-token-1");
	CHECK(c.expires_on > time(NULL) + 3000);
	/* the request carried Metadata: true and the documented parameters */
	j = standin_stats(base);
	hd = cJSON_GetObjectItemCaseSensitive(j, "last_headers");
	q = cJSON_GetObjectItemCaseSensitive(j, "last_query");
	CHECK_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(hd, "Metadata")), "true");
	CHECK_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(q, "api-version")),
		     "2018-02-01");
	CHECK_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(q, "resource")),
		     "https://storage.azure.com/");
	CHECK(cJSON_GetObjectItemCaseSensitive(q, "client_id") == NULL);
	cJSON_Delete(j);
	/* cached: no second request */
	CHECK_EQ_INT(lfsfs_az_token_get(&c, base, NULL, tok2, sizeof(tok2)), 0);
	CHECK_EQ_STR(tok2, "lfsfs-test-token-1");
	CHECK_EQ_INT(stat_int(base, "requests"), 1);
	/* invalidated: asks again */
	lfsfs_az_token_invalidate(&c);
	CHECK_EQ_INT(lfsfs_az_token_get(&c, base, NULL, tok2, sizeof(tok2)), 0);
	CHECK_EQ_STR(tok2, "lfsfs-test-token-2");
	lfsfs_az_token_release(&c);

	/* a token expiring within 5 minutes is used but not reused */
	lfsfs_az_token_init(&c);
	CHECK_EQ_INT(lfsfs_az_token_get(&c, base, "short", tok, sizeof(tok)), 0);
	CHECK_EQ_STR(tok, "lfsfs-test-token-3");
	CHECK_EQ_INT(lfsfs_az_token_get(&c, base, "short", tok, sizeof(tok)), 0);
	CHECK_EQ_STR(tok, "lfsfs-test-token-4");
	j = standin_stats(base);
	q = cJSON_GetObjectItemCaseSensitive(j, "last_query");
	CHECK_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(q, "client_id")), "short");
	cJSON_Delete(j);
	lfsfs_az_token_release(&c);

	/* no identity: CREDENTIALS_MISSING with IMDS's reason, remembered */
	lfsfs_az_token_init(&c);
	CHECK_EQ_INT(lfsfs_az_token_get(&c, base, "none", tok, sizeof(tok)),
		     -LFSFS_ECREDENTIALS_MISSING);
	CHECK(strstr(lfsfs_error_message(), "Identity not found") != NULL);
	CHECK_EQ_INT(stat_int(base, "requests"), 5);
	CHECK_EQ_INT(lfsfs_az_token_get(&c, base, "none", tok, sizeof(tok)),
		     -LFSFS_ECREDENTIALS_MISSING);
	CHECK_EQ_INT(stat_int(base, "requests"), 5);
	lfsfs_az_token_release(&c);

	standin_stop();
	/* nobody listening: fails fast, names the endpoint */
	lfsfs_az_token_init(&c);
	t0 = time(NULL);
	CHECK_EQ_INT(lfsfs_az_token_get(&c, base, NULL, tok, sizeof(tok)),
		     -LFSFS_ECREDENTIALS_MISSING);
	CHECK(time(NULL) - t0 <= 3);
	CHECK(strstr(lfsfs_error_message(), "IMDS not reachable") != NULL);
	lfsfs_az_token_release(&c);
}

int main(void)
{
	test_string_to_sign();
	test_date();
	test_connstr();
	test_urls();
	test_target();
	test_build();
	test_imds();
	return TEST_RESULT();
}
