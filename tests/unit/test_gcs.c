/* Unit tests for the gcs backend's pure parts: base64url, the RS256 service-account
 * JWT (verified here with the public key), gs:// parsing and object-name encoding,
 * and the credential chain's offline decisions. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "lfsfs/error.h"
#include "net/net.h"
#include "store/gcp_auth.h"
#include "store/store.h"
#include "util/config.h"
#include "test.h"

/* ------------------------------------------------------------- base64url */

static const char *b64u(const void *p, size_t n)
{
	static char out[256];

	lfsfs_b64url_encode(p, n, out, sizeof(out));
	return out;
}

static void test_b64url(void)
{
	static const unsigned char hi[] = { 0xfb, 0xff };
	static const unsigned char hi3[] = { 0xfb, 0xef, 0xbe };
	char small[8];

	/* RFC 4648 section 10 vectors, padding removed */
	CHECK_EQ_STR(b64u("", 0), "");
	CHECK_EQ_STR(b64u("f", 1), "Zg");
	CHECK_EQ_STR(b64u("fo", 2), "Zm8");
	CHECK_EQ_STR(b64u("foo", 3), "Zm9v");
	CHECK_EQ_STR(b64u("foob", 4), "Zm9vYg");
	CHECK_EQ_STR(b64u("fooba", 5), "Zm9vYmE");
	CHECK_EQ_STR(b64u("foobar", 6), "Zm9vYmFy");
	/* the URL-safe alphabet: '+' -> '-', '/' -> '_' */
	CHECK_EQ_STR(b64u(hi, 2), "-_8");
	CHECK_EQ_STR(b64u(hi3, 3), "----");
	/* RFC 7515 appendix C */
	{
		static const unsigned char c[] = { 3, 236, 255, 224, 193 };
		CHECK_EQ_STR(b64u(c, sizeof(c)), "A-z_4ME");
	}
	/* too small: nothing written, 0 returned */
	CHECK_EQ_INT(lfsfs_b64url_encode("foo", 3, small, 4), 0);
	CHECK_EQ_STR(small, "");
	CHECK_EQ_INT(lfsfs_b64url_encode("foo", 3, small, 5), 4);
	CHECK_EQ_STR(small, "Zm9v");
}

/* base64url decode for checking (test side, independent of the encoder) */
static int b64u_val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

static size_t b64u_decode(const char *s, size_t n, unsigned char *out)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int v = b64u_val((unsigned char)s[i]);
		if (v < 0)
			return (size_t)-1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	return o;
}

/* ------------------------------------------------------------------- JWT */

static char *pem_of(EVP_PKEY *k)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
	n = BIO_get_mem_data(b, &data);
	out = malloc((size_t)n + 1);
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	BIO_free(b);
	return out;
}

static int verify_rs256(EVP_PKEY *pub, const char *input, size_t ilen, const unsigned char *sig,
			size_t slen)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok;

	ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) == 1 &&
	     EVP_DigestVerify(md, sig, slen, (const unsigned char *)input, ilen) == 1;
	EVP_MD_CTX_free(md);
	return ok;
}

/* Only the public half, as a server would hold it. */
static EVP_PKEY *public_half(EVP_PKEY *k)
{
	BIO *b = BIO_new(BIO_s_mem());
	EVP_PKEY *pub;

	PEM_write_bio_PUBKEY(b, k);
	pub = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
	BIO_free(b);
	return pub;
}

static cJSON *decode_part(const char *s, size_t n)
{
	unsigned char buf[2048];
	size_t l = b64u_decode(s, n, buf);

	if (l == (size_t)-1 || l >= sizeof(buf))
		return NULL;
	buf[l] = '\0';
	return cJSON_Parse((const char *)buf);
}

static void test_jwt(void)
{
	EVP_PKEY *key = EVP_RSA_gen(2048), *pub, *other = EVP_RSA_gen(2048), *otherpub;
	char *pem = pem_of(key), *jwt = NULL, *d1, *d2;
	const char *aud = "http://127.0.0.1:9/token";
	const char *email = "reader@proj.iam.gserviceaccount.com";
	unsigned char sig[1024];
	size_t slen;
	cJSON *h, *c;
	int rc;

	pub = public_half(key);
	otherpub = public_half(other);
	rc = lfsfs_gcp_jwt_sign(email, "kid-123", pem, aud, LFSFS_GCS_SCOPE, 1700000000, &jwt);
	CHECK_EQ_INT(rc, 0);
	if (rc || !jwt)
		goto out;
	/* three parts, URL-safe alphabet, no padding */
	CHECK(strspn(jwt, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") ==
	      strlen(jwt));
	CHECK(!strchr(jwt, '='));
	d1 = strchr(jwt, '.');
	d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	CHECK(d1 && d2 && !strchr(d2 + 1, '.'));
	if (!d1 || !d2)
		goto out;

	h = decode_part(jwt, (size_t)(d1 - jwt));
	c = decode_part(d1 + 1, (size_t)(d2 - d1 - 1));
	CHECK(h && c);
	if (h && c) {
		CHECK_EQ_STR(cJSON_GetObjectItem(h, "alg")->valuestring, "RS256");
		CHECK_EQ_STR(cJSON_GetObjectItem(h, "typ")->valuestring, "JWT");
		CHECK_EQ_STR(cJSON_GetObjectItem(h, "kid")->valuestring, "kid-123");
		CHECK_EQ_STR(cJSON_GetObjectItem(c, "iss")->valuestring, email);
		CHECK_EQ_STR(cJSON_GetObjectItem(c, "scope")->valuestring,
			     "https://www.googleapis.com/auth/devstorage.read_only");
		CHECK_EQ_STR(cJSON_GetObjectItem(c, "aud")->valuestring, aud);
		CHECK(cJSON_IsNumber(cJSON_GetObjectItem(c, "iat")));
		CHECK_EQ_INT((long long)cJSON_GetObjectItem(c, "iat")->valuedouble, 1700000000LL);
		CHECK_EQ_INT((long long)cJSON_GetObjectItem(c, "exp")->valuedouble, 1700003600LL);
		CHECK_EQ_INT(cJSON_GetArraySize(c), 5);
	}
	cJSON_Delete(h);
	cJSON_Delete(c);

	/* the signature: RSASSA-PKCS1-v1_5 SHA-256 over "header.claims" */
	slen = b64u_decode(d2 + 1, strlen(d2 + 1), sig);
	CHECK_EQ_INT(slen, 256);
	CHECK(verify_rs256(pub, jwt, (size_t)(d2 - jwt), sig, slen));
	/* not by another key, not over other bytes */
	CHECK(!verify_rs256(otherpub, jwt, (size_t)(d2 - jwt), sig, slen));
	CHECK(!verify_rs256(pub, jwt, (size_t)(d2 - jwt) - 1, sig, slen));
	sig[10] ^= 1;
	CHECK(!verify_rs256(pub, jwt, (size_t)(d2 - jwt), sig, slen));
	free(jwt);
	jwt = NULL;

	/* no kid when the key file has none; escaping of odd characters */
	rc = lfsfs_gcp_jwt_sign("a\"b@x", NULL, pem, "https://oauth2.googleapis.com/token",
				LFSFS_GCS_SCOPE, 1, &jwt);
	CHECK_EQ_INT(rc, 0);
	if (!rc) {
		d1 = strchr(jwt, '.');
		d2 = strchr(d1 + 1, '.');
		h = decode_part(jwt, (size_t)(d1 - jwt));
		c = decode_part(d1 + 1, (size_t)(d2 - d1 - 1));
		CHECK(h && !cJSON_GetObjectItem(h, "kid"));
		CHECK(c && !strcmp(cJSON_GetObjectItem(c, "iss")->valuestring, "a\"b@x"));
		CHECK(c && cJSON_GetObjectItem(c, "exp")->valuedouble == 3601);
		cJSON_Delete(h);
		cJSON_Delete(c);
		free(jwt);
		jwt = NULL;
	}

	/* not an RSA private key */
	CHECK_EQ_INT(lfsfs_gcp_jwt_sign(email, NULL, "-----BEGIN PRIVATE KEY-----\nnope\n"
					"-----END PRIVATE KEY-----\n", aud, LFSFS_GCS_SCOPE, 1, &jwt),
		     -LFSFS_EPARSE);
	CHECK(jwt == NULL);
	{
		EVP_PKEY *ec = EVP_EC_gen("P-256");
		char *ecpem = pem_of(ec);
		CHECK_EQ_INT(lfsfs_gcp_jwt_sign(email, NULL, ecpem, aud, LFSFS_GCS_SCOPE, 1, &jwt),
			     -LFSFS_EPARSE);
		CHECK(strstr(lfsfs_error_message(), "RSA") != NULL);
		free(ecpem);
		EVP_PKEY_free(ec);
	}
out:
	free(jwt);
	free(pem);
	EVP_PKEY_free(key);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(other);
	EVP_PKEY_free(otherpub);
}

/* ------------------------------------------------------- URLs and names */

static const char *enc(const char *s)
{
	static char out[512];
	struct lfsfs_buf b = LFSFS_BUF_INIT(0);

	out[0] = '\0';
	if (!lfsfs_gcs_encode(s, &b))
		snprintf(out, sizeof(out), "%s", b.data ? b.data : "");
	lfsfs_buf_release(&b);
	return out;
}

static void test_encode(void)
{
	CHECK_EQ_STR(enc("plain.bin"), "plain.bin");
	CHECK_EQ_STR(enc("a/b c/d"), "a%2Fb%20c%2Fd");
	CHECK_EQ_STR(enc("dir/sub/file name.bam"), "dir%2Fsub%2Ffile%20name.bam");
	CHECK_EQ_STR(enc("caf\xc3\xa9"), "caf%C3%A9");
	CHECK_EQ_STR(enc("\xe6\x97\xa5\xe6\x9c\xac/\xf0\x9f\x99\x82"),
		     "%E6%97%A5%E6%9C%AC%2F%F0%9F%99%82");
	CHECK_EQ_STR(enc("-._~"), "-._~");
	CHECK_EQ_STR(enc("+?#%&=:@!*'()[],;$"),
		     "%2B%3F%23%25%26%3D%3A%40%21%2A%27%28%29%5B%5D%2C%3B%24");
	CHECK_EQ_STR(enc(""), "");
	{
		struct lfsfs_buf b = LFSFS_BUF_INIT(5);
		CHECK_EQ_INT(lfsfs_gcs_encode("a/b/c", &b), -E2BIG);
		lfsfs_buf_release(&b);
	}
}

static void test_parse_url(void)
{
	char bucket[256], *obj = NULL;

	CHECK_EQ_INT(lfsfs_gcs_parse_url("gs://my-bucket/dir/sub/file name.bin", bucket,
					 sizeof(bucket), &obj), 0);
	CHECK_EQ_STR(bucket, "my-bucket");
	CHECK_EQ_STR(obj, "dir/sub/file name.bin");
	free(obj);
	obj = NULL;
	/* names are literal: no %-decoding, '?' and '#' are part of the name */
	CHECK_EQ_INT(lfsfs_gcs_parse_url("GS://b.c_d/a%20b?x#y", bucket, sizeof(bucket), &obj), 0);
	CHECK_EQ_STR(bucket, "b.c_d");
	CHECK_EQ_STR(obj, "a%20b?x#y");
	free(obj);
	obj = NULL;
	CHECK_EQ_INT(lfsfs_gcs_parse_url("gs://bkt/caf\xc3\xa9/", bucket, sizeof(bucket), &obj), 0);
	CHECK_EQ_STR(obj, "caf\xc3\xa9/");
	free(obj);
	obj = NULL;

	CHECK_EQ_INT(lfsfs_gcs_parse_url("gs://bucket", bucket, sizeof(bucket), &obj), -LFSFS_EPARSE);
	CHECK_EQ_INT(lfsfs_gcs_parse_url("gs://bucket/", bucket, sizeof(bucket), &obj), -LFSFS_EPARSE);
	CHECK_EQ_INT(lfsfs_gcs_parse_url("gs:///obj", bucket, sizeof(bucket), &obj), -LFSFS_EPARSE);
	CHECK_EQ_INT(lfsfs_gcs_parse_url("gs://ab/obj", bucket, sizeof(bucket), &obj), -LFSFS_EPARSE);
	CHECK_EQ_INT(lfsfs_gcs_parse_url("gs://b@d/obj", bucket, sizeof(bucket), &obj), -LFSFS_EPARSE);
	CHECK_EQ_INT(lfsfs_gcs_parse_url("gs://bkt/a\nb", bucket, sizeof(bucket), &obj), -LFSFS_EPARSE);
	CHECK_EQ_INT(lfsfs_gcs_parse_url("s3://bkt/key", bucket, sizeof(bucket), &obj), -LFSFS_EPARSE);
	CHECK(obj == NULL);

	/* dispatch */
	CHECK(lfsfs_store_for_url("gs://bkt/obj") == &lfsfs_store_gcs);
	CHECK(lfsfs_store_for_url("GS://bkt/obj") == &lfsfs_store_gcs);
	CHECK_EQ_STR(lfsfs_store_gcs.name, "gcs");
	CHECK(strstr(lfsfs_store_schemes(), "gs://bucket/object") != NULL);
	CHECK(lfsfs_store_for_url("https://storage.googleapis.com/b/o") != &lfsfs_store_gcs);
}

/* --------------------------------------------------- the chain, offline */

static char tmpdir[] = "/tmp/lfsfs-test-gcs.XXXXXX";

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static void test_chain(void)
{
	struct lfsfs_net *net = NULL;
	struct lfsfs_gcp_auth a;
	char tok[4096], src[512], tried[768], path[600], empty[600];
	uint64_t h = 7;
	int rc;

	if (!mkdtemp(tmpdir)) {
		CHECK(!"mkdtemp");
		return;
	}
	CHECK_EQ_INT(lfsfs_net_new(&net), 0);
	lfsfs_net_set_backoff_ms(net, 1);
	snprintf(empty, sizeof(empty), "%s/gcloud", tmpdir);
	setenv("CLOUDSDK_CONFIG", empty, 1);
	unsetenv("GCE_METADATA_HOST");
	unsetenv("GCE_METADATA_ROOT");

	/* emulator, nothing configured: anonymous, and it says what was tried */
	unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
	lfsfs_gcp_auth_init(&a, net, 1);
	rc = lfsfs_gcp_auth_token(&a, tok, sizeof(tok), &h, src, sizeof(src), tried, sizeof(tried));
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_STR(tok, "");
	CHECK_EQ_INT(h, 0);
	CHECK(!strncmp(src, "anonymous", 9));
	CHECK(strstr(tried, "GOOGLE_APPLICATION_CREDENTIALS unset") != NULL);
	CHECK(strstr(tried, empty) != NULL);
	CHECK(strstr(tried, "metadata server not probed") != NULL);
	lfsfs_gcp_auth_release(&a);

	/* set but missing: an error that names the variable */
	setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json", 1);
	lfsfs_gcp_auth_init(&a, net, 1);
	rc = lfsfs_gcp_auth_token(&a, tok, sizeof(tok), &h, NULL, 0, NULL, 0);
	CHECK_EQ_INT(rc, -LFSFS_ECREDENTIALS_MISSING);
	CHECK(strstr(lfsfs_error_message(), "GOOGLE_APPLICATION_CREDENTIALS=/nonexistent/key.json"));
	/* remembered for a moment: no second attempt */
	rc = lfsfs_gcp_auth_token(&a, tok, sizeof(tok), &h, NULL, 0, NULL, 0);
	CHECK_EQ_INT(rc, -LFSFS_ECREDENTIALS_MISSING);
	lfsfs_gcp_auth_release(&a);

	/* unsupported type */
	snprintf(path, sizeof(path), "%s/ext.json", tmpdir);
	write_file(path, "{\"type\": \"external_account\", \"audience\": \"x\"}");
	setenv("GOOGLE_APPLICATION_CREDENTIALS", path, 1);
	lfsfs_gcp_auth_init(&a, net, 1);
	rc = lfsfs_gcp_auth_token(&a, tok, sizeof(tok), &h, NULL, 0, NULL, 0);
	CHECK_EQ_INT(rc, -LFSFS_ECREDENTIALS_MISSING);
	CHECK(strstr(lfsfs_error_message(), "external_account") != NULL);
	lfsfs_gcp_auth_release(&a);

	/* a service account whose token endpoint is down: the key never shows */
	{
		EVP_PKEY *key = EVP_RSA_gen(2048);
		char *pem = pem_of(key);
		cJSON *j = cJSON_CreateObject();
		char *text, *mid;

		cJSON_AddStringToObject(j, "type", "service_account");
		cJSON_AddStringToObject(j, "client_email", "sa@p.iam.gserviceaccount.com");
		cJSON_AddStringToObject(j, "private_key", pem);
		cJSON_AddStringToObject(j, "token_uri", "http://127.0.0.1:1/token");
		text = cJSON_Print(j);
		snprintf(path, sizeof(path), "%s/sa.json", tmpdir);
		write_file(path, text);
		setenv("GOOGLE_APPLICATION_CREDENTIALS", path, 1);
		lfsfs_gcp_auth_init(&a, net, 0);
		rc = lfsfs_gcp_auth_token(&a, tok, sizeof(tok), &h, NULL, 0, NULL, 0);
		CHECK_EQ_INT(rc, -LFSFS_ESOURCE_NOT_ACCESSIBLE);
		CHECK(strstr(lfsfs_error_message(), "sa@p.iam.gserviceaccount.com") != NULL);
		CHECK(strstr(lfsfs_error_message(), "http://127.0.0.1:1/token") != NULL);
		CHECK(!strstr(lfsfs_error_message(), "PRIVATE KEY"));
		mid = pem + strlen(pem) / 2;
		mid[16] = '\0';
		CHECK(!strstr(lfsfs_error_message(), mid));
		lfsfs_gcp_auth_release(&a);
		cJSON_free(text);
		cJSON_Delete(j);
		free(pem);
		EVP_PKEY_free(key);
	}
	unsetenv("GOOGLE_APPLICATION_CREDENTIALS");

	/* the gcloud ADC file is the second source */
	if (mkdir(empty, 0700) == 0) {
		snprintf(path, sizeof(path), "%s/application_default_credentials.json", empty);
		write_file(path, "{\"type\": \"authorized_user\", \"client_id\": \"cid\"}");
		lfsfs_gcp_auth_init(&a, net, 1);
		rc = lfsfs_gcp_auth_token(&a, tok, sizeof(tok), &h, NULL, 0, NULL, 0);
		CHECK_EQ_INT(rc, -LFSFS_ECREDENTIALS_MISSING);
		CHECK(strstr(lfsfs_error_message(), "gcloud ADC file") != NULL);
		CHECK(strstr(lfsfs_error_message(), "refresh_token") != NULL);
		lfsfs_gcp_auth_release(&a);
		unlink(path);
		rmdir(empty);
	}
	unlink(path);
	snprintf(path, sizeof(path), "%s/sa.json", tmpdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/ext.json", tmpdir);
	unlink(path);
	rmdir(tmpdir);
	lfsfs_net_free(net);
}

/* ------------------------------------- the backend against the test server */

struct waiter {
	pthread_mutex_t m;
	pthread_cond_t c;
	int done, rc;
};

static void fetch_done(struct lfsfs_fetch *f, int rc)
{
	struct waiter *w = f->ctx;

	pthread_mutex_lock(&w->m);
	w->done = 1;
	w->rc = rc;
	pthread_cond_signal(&w->c);
	pthread_mutex_unlock(&w->m);
}

/* Fetch [off, off+len) of url into fd; returns done()'s rc. */
static int fetch_sync(struct lfsfs_store *st, struct lfsfs_fetch *f, const char *url, int fd,
		      uint64_t off, uint64_t len, uint64_t size, const char *etag)
{
	struct waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };

	memset(f, 0, sizeof(*f));
	f->url = url;
	f->off = off;
	f->len = len;
	f->size = size;
	f->fd = fd;
	snprintf(f->etag, sizeof(f->etag), "%s", etag ? etag : "");
	f->done = fetch_done;
	f->ctx = &w;
	lfsfs_store_fetch(st, f);
	pthread_mutex_lock(&w.m);
	while (!w.done)
		pthread_cond_wait(&w.c, &w.m);
	pthread_mutex_unlock(&w.m);
	return w.rc;
}

static pid_t server_pid = -1;

/* Start tests/lib/gcs_server.py on a free port; 0 and the port, or -1. */
static int server_start(const char *dir, int *port)
{
	char script[1024], root[700], trust[700], pf[700], log[700];
	const char *src = __FILE__, *cut = strstr(src, "tests/unit/");
	FILE *f;

	if (!cut)
		return -1;
	snprintf(script, sizeof(script), "%.*stests/lib/gcs_server.py", (int)(cut - src), src);
	if (access(script, R_OK))
		return -1;
	snprintf(root, sizeof(root), "%s/buckets", dir);
	snprintf(trust, sizeof(trust), "%s/trust", dir);
	snprintf(pf, sizeof(pf), "%s/port", dir);
	snprintf(log, sizeof(log), "%s/requests.log", dir);
	mkdir(root, 0755);
	mkdir(trust, 0755);
	server_pid = fork();
	if (server_pid < 0)
		return -1;
	if (server_pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, 2);
		execlp("python3", "python3", script, "--root", root, "--trust-dir", trust,
		       "--port-file", pf, "--log", log, (char *)NULL);
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

static void put_object(const char *dir, const char *name, const unsigned char *data, size_t n)
{
	char path[1024], *slash;
	FILE *f;

	snprintf(path, sizeof(path), "%s/buckets/%s", dir, name);
	for (slash = strchr(path + strlen(dir) + 9, '/'); slash; slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		mkdir(path, 0755);
		*slash = '/';
	}
	f = fopen(path, "wb");
	if (f) {
		fwrite(data, 1, n, f);
		fclose(f);
	}
}

static void test_against_server(void)
{
	char dir[] = "/tmp/lfsfs-test-gcs-srv.XXXXXX", host[64], datafile[600], md5hex[33];
	unsigned char obj[70000], back[70000], dig[16];
	struct lfsfs_config *cfg = NULL;
	struct lfsfs_buf ex = LFSFS_BUF_INIT(0);
	struct lfsfs_net *net = NULL;
	struct lfsfs_objmeta m;
	struct lfsfs_store st;
	struct lfsfs_fetch f;
	char gen_pin[160], json_etag[160], md5_etag[64];
	int port = 0, fd = -1, rc;

	if (!mkdtemp(dir) || server_start(dir, &port)) {
		fprintf(stderr, "test_gcs: python3 or tests/lib/gcs_server.py unavailable: "
			"server tests skipped\n");
		return;
	}
	for (size_t i = 0; i < sizeof(obj); i++)
		obj[i] = (unsigned char)(i * 7 + i / 251);
	put_object(dir, "bkt/public/dir/a b.bin", obj, sizeof(obj));
	put_object(dir, "bkt/private.bin", obj, 100);
	EVP_Digest(obj, sizeof(obj), dig, NULL, EVP_md5(), NULL);
	for (int i = 0; i < 16; i++)
		snprintf(md5hex + 2 * i, 3, "%02x", dig[i]);

	snprintf(host, sizeof(host), "127.0.0.1:%d/", port);
	setenv("STORAGE_EMULATOR_HOST", host, 1);
	unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
	unsetenv("GCE_METADATA_HOST");
	snprintf(datafile, sizeof(datafile), "%s/nogcloud", dir);
	setenv("CLOUDSDK_CONFIG", datafile, 1);
	CHECK_EQ_INT(lfsfs_net_new(&net), 0);
	lfsfs_net_set_backoff_ms(net, 1);
	lfsfs_store_init(&st, net, NULL);

	/* head(): the normalized metadata */
	rc = lfsfs_store_head(&st, "gs://bkt/public/dir/a b.bin", &m);
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(m.has_size, 1);
	CHECK_EQ_INT(m.size, sizeof(obj));
	CHECK_EQ_STR(m.md5, md5hex);
	CHECK(m.version[0] >= '1' && m.version[0] <= '9');
	CHECK(m.etag[0] != '\0');
	CHECK(strlen(m.crc32c) == 8);
	CHECK(m.last_modified[0] != '\0');
	CHECK_EQ_STR(m.content_type, "application/octet-stream");
	snprintf(gen_pin, sizeof(gen_pin), "gen:%s", m.version);
	snprintf(json_etag, sizeof(json_etag), "%s", m.etag);
	snprintf(md5_etag, sizeof(md5_etag), "\"%s\"", md5hex);

	/* head() of a private object without credentials */
	rc = lfsfs_store_head(&st, "gs://bkt/private.bin", &m);
	CHECK_EQ_INT(rc, -LFSFS_ECREDENTIALS_MISSING);
	CHECK(strstr(lfsfs_error_message(), "GOOGLE_APPLICATION_CREDENTIALS") != NULL);
	rc = lfsfs_store_head(&st, "gs://bkt/public/nope.bin", &m);
	CHECK_EQ_INT(rc, -LFSFS_ESOURCE_NOT_ACCESSIBLE);
	CHECK(strstr(lfsfs_error_message(), "404") != NULL);

	/* fetch(): bytes land at their offsets; the generation is learned */
	snprintf(datafile, sizeof(datafile), "%s/data", dir);
	fd = open(datafile, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	rc = fetch_sync(&st, &f, "gs://bkt/public/dir/a b.bin", fd, 1000, 5000, sizeof(obj), NULL);
	CHECK_EQ_INT(rc, 0);
	/* spelled like the JSON API's etag, so it equals what head() reported */
	CHECK_EQ_STR(f.etag_seen, json_etag);
	CHECK(pread(fd, back, 5000, 1000) == 5000 && !memcmp(back, obj + 1000, 5000));
	/* pinned by "gen:N", by the JSON etag (echoed back), by an md5 ETag */
	rc = fetch_sync(&st, &f, "gs://bkt/public/dir/a b.bin", fd, 0, sizeof(obj), sizeof(obj),
			gen_pin);
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_STR(f.etag_seen, gen_pin);
	CHECK(pread(fd, back, sizeof(obj), 0) == (ssize_t)sizeof(obj) &&
	      !memcmp(back, obj, sizeof(obj)));
	rc = fetch_sync(&st, &f, "gs://bkt/public/dir/a b.bin", fd, 65536, sizeof(obj) - 65536,
			sizeof(obj), json_etag);
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_STR(f.etag_seen, json_etag);
	rc = fetch_sync(&st, &f, "gs://bkt/public/dir/a b.bin", fd, 0, 10, sizeof(obj), md5_etag);
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_STR(f.etag_seen, md5_etag);
	/* another generation, another md5; a real GCS etag decodes to its generation */
	rc = fetch_sync(&st, &f, "gs://bkt/public/dir/a b.bin", fd, 0, 10, sizeof(obj),
			"CKih16GjycICEAE=");
	CHECK_EQ_INT(rc, -LFSFS_EIMMUTABILITY);
	CHECK(strstr(f.error, "no longer generation 1418688703353000") != NULL);
	rc = fetch_sync(&st, &f, "gs://bkt/public/dir/a b.bin", fd, 0, 10, sizeof(obj),
			"gen:12345");
	CHECK_EQ_INT(rc, -LFSFS_EIMMUTABILITY);
	CHECK(strstr(f.error, "generation changed") != NULL);
	rc = fetch_sync(&st, &f, "gs://bkt/public/dir/a b.bin", fd, 0, 10, sizeof(obj),
			"\"0123456789abcdef0123456789abcdef\"");
	CHECK_EQ_INT(rc, -LFSFS_EIMMUTABILITY);
	/* the wrong size */
	rc = fetch_sync(&st, &f, "gs://bkt/public/dir/a b.bin", fd, 0, 10, sizeof(obj) + 1, NULL);
	CHECK_EQ_INT(rc, -LFSFS_ESIZE_MISMATCH);
	/* private, anonymous */
	rc = fetch_sync(&st, &f, "gs://bkt/private.bin", fd, 0, 10, 100, NULL);
	CHECK_EQ_INT(rc, -LFSFS_ECREDENTIALS_MISSING);
	CHECK(strstr(f.error, "application-default login") != NULL);
	/* a malformed URL fails at once */
	rc = fetch_sync(&st, &f, "gs://bkt", fd, 0, 10, 100, NULL);
	CHECK_EQ_INT(rc, -LFSFS_EPARSE);

	/* explain() */
	rc = lfsfs_store_gcs.explain(&st, "gs://bkt/public/dir/a b.bin", &ex);
	CHECK_EQ_INT(rc, 0);
	CHECK(ex.data && strstr(ex.data, "backend: gcs\n"));
	snprintf(host, sizeof(host), "endpoint: http://127.0.0.1:%d (STORAGE_EMULATOR_HOST)", port);
	CHECK(ex.data && strstr(ex.data, host));
	CHECK(ex.data && strstr(ex.data, "/storage/v1/b/bkt/o/public%2Fdir%2Fa%20b.bin\n"));
	CHECK(ex.data && strstr(ex.data, "credentials: anonymous"));
	CHECK(ex.data && strstr(ex.data, "tried: GOOGLE_APPLICATION_CREDENTIALS unset"));
	lfsfs_buf_release(&ex);
	lfsfs_store_release(&st);

	/* lfsfs.gcs.endpoint wins over STORAGE_EMULATOR_HOST */
	cfg = lfsfs_config_new();
	lfsfs_config_set(cfg, "lfsfs.gcs.endpoint", "https://gcs.example.test:8443/");
	lfsfs_store_init(&st, net, cfg);
	rc = lfsfs_store_gcs.explain(&st, "gs://bkt/o", &ex);
	CHECK(ex.data && strstr(ex.data, "endpoint: https://gcs.example.test:8443 "
				"(lfsfs.gcs.endpoint)\n"));
	lfsfs_buf_release(&ex);
	lfsfs_store_release(&st);
	lfsfs_config_free(cfg);

	if (fd >= 0)
		close(fd);
	lfsfs_net_free(net);
	server_stop();
	unsetenv("STORAGE_EMULATOR_HOST");
	{
		char cmd[700];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd)) {
			/* best effort */
		}
	}
}

int main(void)
{
	test_b64url();
	test_jwt();
	test_encode();
	test_parse_url();
	test_chain();
	test_against_server();
	return TEST_RESULT();
}
