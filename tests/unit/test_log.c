/* Unit tests for log levels and secret redaction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"
#include "util/buf.h"
#include "util/log.h"

static char out[4096];

static const char *redact(const char *in)
{
	return lfsfs_redact(in, out, sizeof(out));
}

/* Redacted text must contain `keep` (if any) and none of `secret`. */
static void check_redact(const char *in, const char *keep, const char *secret, int line)
{
	const char *r = redact(in);

	if ((keep && !strstr(r, keep)) || strstr(r, secret)) {
		test_fail++;
		fprintf(stderr, "%s:%d: redact(\"%s\") = \"%s\"; want \"%s\" kept, \"%s\" gone\n",
		        __FILE__, line, in, r, keep ? keep : "", secret);
	} else {
		test_pass++;
	}
}
#define REDACT(in, keep, secret) check_redact((in), (keep), (secret), __LINE__)

static void test_urls(void)
{
	CHECK_EQ_STR(redact("https://user:pa55@host.example/path/obj?X-Amz-Signature=abc"),
	             "https://***@host.example/path/obj?REDACTED");
	CHECK_EQ_STR(redact("fetch https://host/k?sig=s3cr3t&se=2030 failed"),
	             "fetch https://host/k?REDACTED failed");
	CHECK_EQ_STR(redact("s3://bucket/key"), "s3://bucket/key");
	CHECK_EQ_STR(redact("plain text, no secrets"), "plain text, no secrets");
	REDACT("https://token@github.com/o/r.git", "github.com/o/r.git", "token");
	/* secrets as JSON members (token endpoints, credential documents) */
	REDACT("{\"access_token\": \"ya29.SECRET1\", \"expires_in\": 3599}", "expires_in", "SECRET1");
	REDACT("{\"AccessKeyId\":\"AKIA1\",\"SecretAccessKey\":\"wJalr/SECRET2\"}", "AKIA1", "SECRET2");
	REDACT("{\"Token\" : \"esc\\\"aped SECRET3\", \"Code\": \"Success\"}", "Success", "SECRET3");
	REDACT("{\"Authorization\": \"Bearer SECRET4\"}", "Authorization", "SECRET4");
	REDACT("{\"refresh_token\":\"SECRET5\"} tail", "tail", "SECRET5");
	CHECK_EQ_STR(redact("{\"api_key\": \"k\", \"n\": 1}"), "{\"api_key\": \"REDACTED\", \"n\": 1}");
	CHECK_EQ_STR(redact("{\"tokenizer\": \"kept\"}"), "{\"tokenizer\": \"kept\"}");
	REDACT("https://host?sv=2020&sig=AZURESIG", "https://host", "AZURESIG");
	REDACT("'https://u:p@h/x?q=1'", "h/x", "u:p");
	REDACT("\"https://h/x?X-Goog-Signature=GSIG\"", "https://h/x", "GSIG");
	REDACT("a https://u:AAA@h/1?k=BBB and http://v:CCC@h/2?k=DDD", "and", "AAA");
	REDACT("a https://u:AAA@h/1?k=BBB and http://v:CCC@h/2?k=DDD", "and", "BBB");
	REDACT("a https://u:AAA@h/1?k=BBB and http://v:CCC@h/2?k=DDD", "and", "CCC");
	REDACT("a https://u:AAA@h/1?k=BBB and http://v:CCC@h/2?k=DDD", "and", "DDD");
}

static void test_headers(void)
{
	CHECK_EQ_STR(redact("Authorization: Bearer tok123"), "Authorization: REDACTED");
	REDACT("authorization:Basic dXNlcjpwYXNz", "authorization:", "dXNlcjpwYXNz");
	REDACT("> GET / HTTP/1.1\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIAX/20240101, "
	       "Signature=deadbeef\r\nHost: h\r\n",
	       "Host: h", "deadbeef");
	REDACT("> GET / HTTP/1.1\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIAX/20240101\r\n",
	       "GET", "AKIAX");
	REDACT("header x-amz-security-token: FQoGZXIvYXdzE",
	       "x-amz-security-token:", "FQoGZXIvYXdzE");
	REDACT("Proxy-Authorization: Basic cHJveHk=", NULL, "cHJveHk=");
	REDACT("Cookie: session=abc123", NULL, "abc123");
	REDACT("x-goog-api-key: AIzaKEY", NULL, "AIzaKEY");
	REDACT("sent\nAuthorization: Bearer T1\nAuthorization: Bearer T2\n", "sent", "T1");
	REDACT("sent\nAuthorization: Bearer T1\nAuthorization: Bearer T2\n", "sent", "T2");
}

static void test_truncation(void)
{
	char small[8];

	memset(small, 'x', sizeof(small));
	lfsfs_redact("https://u:p@h/x?q=1", small, sizeof(small));
	CHECK(memchr(small, '\0', sizeof(small)) != NULL);
	CHECK(strstr(small, "u:p") == NULL);
	lfsfs_redact("hello world", small, sizeof(small));
	CHECK_EQ_STR(small, "hello w");
	small[0] = 'z';
	lfsfs_redact("abc", small, 0);
	CHECK_EQ_INT(small[0], 'z');
	lfsfs_redact("abc", small, 1);
	CHECK_EQ_STR(small, "");
}

static void test_levels(void)
{
	CHECK_EQ_INT(lfsfs_log_level_parse("error"), LFSFS_LOG_ERROR);
	CHECK_EQ_INT(lfsfs_log_level_parse("warn"), LFSFS_LOG_WARN);
	CHECK_EQ_INT(lfsfs_log_level_parse("WARNING"), LFSFS_LOG_WARN);
	CHECK_EQ_INT(lfsfs_log_level_parse("info"), LFSFS_LOG_INFO);
	CHECK_EQ_INT(lfsfs_log_level_parse("Debug"), LFSFS_LOG_DEBUG);
	CHECK_EQ_INT(lfsfs_log_level_parse("verbose"), -1);
	CHECK_EQ_INT(lfsfs_log_level_parse(""), -1);
}

/* Messages reach the log file redacted, and levels filter them. */
static void test_log_file(void)
{
	char dir[] = "/tmp/lfsfs-test-log-XXXXXX";
	struct lfsfs_buf b = LFSFS_BUF_INIT(1 << 20);
	char *path = NULL;

	CHECK(mkdtemp(dir) != NULL);
	if (asprintf(&path, "%s/log", dir) < 0) {
		CHECK(0);
		return;
	}
	CHECK_EQ_INT(lfsfs_log_open(path), 0);
	lfsfs_log_set_level(LFSFS_LOG_INFO);
	CHECK_EQ_INT(lfsfs_log_get_level(), LFSFS_LOG_INFO);
	log_error("cannot read 'https://k:SECRETKEY@h/o?X-Amz-Signature=SIGVALUE': %d", 403);
	log_info("Authorization: Bearer BEARERTOKEN");
	log_debug("debug line must not appear");
	lfsfs_log(LFSFS_LOG_DEBUG, "nor this one");
	CHECK_EQ_INT(lfsfs_log_open(NULL), 0);

	CHECK_EQ_INT(lfsfs_buf_read_file(&b, path), 0);
	CHECK(strstr(b.data, " error: cannot read 'https://***@h/o?REDACTED': 403\n") != NULL);
	CHECK(strstr(b.data, " info: Authorization: REDACTED\n") != NULL);
	CHECK(strstr(b.data, "SECRETKEY") == NULL);
	CHECK(strstr(b.data, "SIGVALUE") == NULL);
	CHECK(strstr(b.data, "BEARERTOKEN") == NULL);
	CHECK(strstr(b.data, "debug") == NULL);
	CHECK(strstr(b.data, "nor this") == NULL);

	lfsfs_log_set_level(LFSFS_LOG_WARN);
	lfsfs_buf_release(&b);
	unlink(path);
	rmdir(dir);
	free(path);
}

int main(void)
{
	test_urls();
	test_headers();
	test_truncation();
	test_levels();
	test_log_file();
	return TEST_RESULT();
}
