/* Unit tests for the Git LFS custom transfer protocol: parsing requests, building replies. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "lfsfs/error.h"
#include "meta/lfsproto.h"
#include "test.h"

#define OID "22ab5f63670800cc7be06dbed816012b0dc411e774754c7579467d2536a9cf3e"

static struct lfsproto_msg m;

static int parse(const char *s)
{
	lfsproto_msg_release(&m);
	lfsfs_error_clear();
	return lfsproto_parse(s, strlen(s), &m);
}

/* parse must fail with code `want_rc` and a message containing `want`. */
static void check_bad(const char *s, int want_rc, const char *want, int line)
{
	int rc = parse(s);

	if (rc != want_rc || !strstr(lfsfs_error_message(), want)) {
		test_fail++;
		fprintf(stderr, "%s:%d: rc %d msg \"%s\", expected %d with \"%s\"\n", __FILE__,
			line, rc, lfsfs_error_message(), want_rc, want);
	} else {
		test_pass++;
	}
}
#define BAD(s, want) check_bad((s), -LFSFS_EPARSE, (want), __LINE__)

static void test_init(void)
{
	CHECK_EQ_INT(parse("{\"event\":\"init\",\"operation\":\"download\",\"remote\":\"origin\","
			   "\"concurrent\":true,\"concurrenttransfers\":3}\n"), 0);
	CHECK_EQ_INT(m.event, LFSPROTO_INIT);
	CHECK_EQ_INT(m.operation, LFSPROTO_OP_DOWNLOAD);
	CHECK_EQ_STR(m.remote, "origin");
	CHECK_EQ_INT(m.concurrent, 1);
	CHECK_EQ_INT(m.concurrenttransfers, 3);

	/* the documented example: no remote; spaces; CRLF */
	CHECK_EQ_INT(parse("{ \"event\":\"init\", \"operation\":\"upload\", \"concurrent\": false, "
			   "\"concurrenttransfers\": 8 }\r\n"), 0);
	CHECK_EQ_INT(m.operation, LFSPROTO_OP_UPLOAD);
	CHECK(m.remote == NULL);
	CHECK_EQ_INT(m.concurrent, 0);
	CHECK_EQ_INT(m.concurrenttransfers, 8);

	/* unknown keys are ignored (newer git-lfs) */
	CHECK_EQ_INT(parse("{\"event\":\"init\",\"operation\":\"download\",\"future\":[1,2]}"), 0);
	CHECK_EQ_INT(m.concurrent, -1);

	BAD("{\"event\":\"init\"}", "without a string \"operation\"");
	BAD("{\"event\":\"init\",\"operation\":\"sideways\"}", "unknown operation 'sideways'");
	BAD("{\"event\":\"init\",\"operation\":\"download\",\"concurrent\":\"yes\"}",
	    "\"concurrent\" of the 'init' request is not a boolean");
	BAD("{\"event\":\"init\",\"operation\":\"download\",\"remote\":7}",
	    "\"remote\" of the 'init' request is not a string");
}

static void test_download(void)
{
	CHECK_EQ_INT(parse("{\"event\":\"download\",\"oid\":\"" OID "\",\"size\":21245,"
			   "\"action\":{\"href\":\"https://h/x?sig=1\",\"header\":"
			   "{\"Authorization\":\"Bearer t\",\"X-Two\":\"2\"}}}"), 0);
	CHECK_EQ_INT(m.event, LFSPROTO_DOWNLOAD);
	CHECK_EQ_STR(m.oid, OID);
	CHECK_EQ_INT(m.size, 21245);
	CHECK_EQ_STR(m.href, "https://h/x?sig=1");
	CHECK_EQ_INT(m.n_headers, 2);
	if (m.n_headers == 2) {
		CHECK_EQ_STR(m.headers[0], "Authorization: Bearer t");
		CHECK_EQ_STR(m.headers[1], "X-Two: 2");
	}
	CHECK(m.path == NULL);

	/* standalone mode: action null */
	CHECK_EQ_INT(parse("{\"event\":\"download\",\"oid\":\"" OID "\",\"size\":0,"
			   "\"action\":null}"), 0);
	CHECK(m.href == NULL);
	CHECK_EQ_INT(m.n_headers, 0);
	CHECK_EQ_INT(m.size, 0);
	/* absent action, large exact size */
	CHECK_EQ_INT(parse("{\"event\":\"download\",\"oid\":\"" OID "\","
			   "\"size\":9007199254740992}"), 0);
	CHECK(m.size == 9007199254740992ull);
	/* an action without headers */
	CHECK_EQ_INT(parse("{\"event\":\"download\",\"oid\":\"" OID "\",\"size\":1,"
			   "\"action\":{\"href\":\"nfs://s/p\",\"header\":null}}"), 0);
	CHECK_EQ_STR(m.href, "nfs://s/p");

	BAD("{\"event\":\"download\",\"size\":1}", "without a string \"oid\"");
	BAD("{\"event\":\"download\",\"oid\":\"" OID "\"}", "'download' request without \"size\"");
	/* the oid is still known, so the agent can answer with a per-object error */
	CHECK_EQ_STR(m.oid, OID);
	CHECK_EQ_INT(m.event, LFSPROTO_DOWNLOAD);
	BAD("{\"event\":\"download\",\"oid\":\"ABCDEF\",\"size\":1}", "not 64 lowercase hex");
	BAD("{\"event\":\"download\",\"oid\":\"../../etc/passwd\",\"size\":1}",
	    "not 64 lowercase hex");
	BAD("{\"event\":\"download\",\"oid\":\"" OID "\",\"size\":-1}", "non-negative integer");
	BAD("{\"event\":\"download\",\"oid\":\"" OID "\",\"size\":1.5}", "non-negative integer");
	BAD("{\"event\":\"download\",\"oid\":\"" OID "\",\"size\":1e300}", "non-negative integer");
	BAD("{\"event\":\"download\",\"oid\":\"" OID "\",\"size\":\"12\"}", "is not a number");
	BAD("{\"event\":\"download\",\"oid\":\"" OID "\",\"size\":1,\"action\":[]}",
	    "neither an object nor null");
	BAD("{\"event\":\"download\",\"oid\":\"" OID "\",\"size\":1,\"action\":{}}",
	    "has no \"href\"");
	BAD("{\"event\":\"download\",\"oid\":\"" OID "\",\"size\":1,\"action\":{\"href\":\"h\","
	    "\"header\":{\"X\":\"a\\r\\nEvil: 1\"}}}", "contains a line break");
	BAD("{\"event\":\"download\",\"oid\":\"" OID "\",\"size\":1,\"action\":{\"href\":\"h\","
	    "\"header\":{\"Bad Name\":\"v\"}}}", "forbidden character");
	BAD("{\"event\":\"download\",\"oid\":\"" OID "\",\"size\":1,\"action\":{\"href\":\"h\","
	    "\"header\":{\"X\":1}}}", "is not a string");
}

static void test_upload_terminate(void)
{
	CHECK_EQ_INT(parse("{\"event\":\"upload\",\"oid\":\"" OID "\",\"size\":346232,"
			   "\"path\":\"/path/to/file.png\",\"action\":null}"), 0);
	CHECK_EQ_INT(m.event, LFSPROTO_UPLOAD);
	CHECK_EQ_STR(m.path, "/path/to/file.png");
	CHECK(m.href == NULL);
	BAD("{\"event\":\"upload\",\"oid\":\"" OID "\",\"size\":1,\"path\":5}", "is not a string");

	CHECK_EQ_INT(parse("{\"event\":\"terminate\"}\n"), 0);
	CHECK_EQ_INT(m.event, LFSPROTO_TERMINATE);
	CHECK_EQ_STR(lfsproto_event_name(LFSPROTO_TERMINATE), "terminate");
}

static void test_malformed(void)
{
	BAD("", "not valid JSON");
	BAD("{\"event\":\"init\"", "not valid JSON");
	BAD("not json at all", "not valid JSON");
	BAD("[1,2,3]", "not a JSON object");
	BAD("\"init\"", "not a JSON object");
	BAD("{}", "without a string \"event\"");
	BAD("{\"event\":3}", "without a string \"event\"");
	check_bad("{\"event\":\"explode\",\"oid\":\"x\"}", -LFSFS_EUNSUPPORTED,
		  "unknown event 'explode'", __LINE__);
	/* NUL inside the line */
	{
		const char line[] = "{\"event\":\"terminate\"}\0garbage";
		lfsproto_msg_release(&m);
		CHECK_EQ_INT(lfsproto_parse(line, sizeof(line) - 1, &m), -LFSFS_EPARSE);
	}
	/* too long */
	{
		size_t n = LFSPROTO_MAX_LINE + 10;
		char *big = malloc(n + 1);
		if (big) {
			memset(big, ' ', n);
			big[0] = '{';
			big[n - 1] = '}';
			big[n] = '\0';
			BAD(big, "too long");
			free(big);
		}
	}
	/* the parser only reads len bytes: a valid prefix of a longer buffer */
	{
		const char *s = "{\"event\":\"terminate\"}{\"trailing\":1}";
		lfsproto_msg_release(&m);
		CHECK_EQ_INT(lfsproto_parse(s, 21, &m), 0);
		CHECK_EQ_INT(m.event, LFSPROTO_TERMINATE);
	}
}

static void test_codes(void)
{
	CHECK_EQ_INT(lfsproto_error_code(-LFSFS_ECHECKSUM_MISMATCH), 3);
	CHECK_EQ_INT(lfsproto_error_code(-LFSFS_ESIZE_MISMATCH), 3);
	CHECK_EQ_INT(lfsproto_error_code(-LFSFS_EIMMUTABILITY), 3);
	CHECK_EQ_INT(lfsproto_error_code(-LFSFS_EUNSTABLE_SOURCE), 3);
	CHECK_EQ_INT(lfsproto_error_code(-LFSFS_ESOURCE_NOT_ACCESSIBLE), 4);
	CHECK_EQ_INT(lfsproto_error_code(-LFSFS_ECREDENTIALS_MISSING), 4);
	CHECK_EQ_INT(lfsproto_error_code(-LFSFS_EPARSE), 2);
	CHECK_EQ_INT(lfsproto_error_code(-LFSFS_EUNSUPPORTED), 2);
	CHECK_EQ_INT(lfsproto_error_code(-EIO), 1);
}

/* out holds exactly `want` (one line); then reset it. */
static void check_out(struct lfsfs_buf *out, const char *want, int line)
{
	if (!out->data || strcmp(out->data, want)) {
		test_fail++;
		fprintf(stderr, "%s:%d: reply\n  %s\nexpected\n  %s\n", __FILE__, line,
			out->data ? out->data : "(null)", want);
	} else {
		test_pass++;
	}
	lfsfs_buf_reset(out);
}
#define OUT(want) check_out(&out, (want), __LINE__)

static void test_replies(void)
{
	struct lfsfs_buf out = LFSFS_BUF_INIT(1 << 20);

	CHECK_EQ_INT(lfsproto_reply_init_ok(&out), 0);
	OUT("{}\n");
	CHECK_EQ_INT(lfsproto_reply_error(&out, 2, "request is not valid JSON"), 0);
	OUT("{\"error\":{\"code\":2,\"message\":\"request is not valid JSON\"}}\n");
	CHECK_EQ_INT(lfsproto_reply_progress(&out, OID, 1048576, 1048576), 0);
	OUT("{\"event\":\"progress\",\"oid\":\"" OID "\",\"bytesSoFar\":1048576,"
	    "\"bytesSinceLast\":1048576}\n");
	/* beyond 2^53 and beyond 32 bits: plain digits, never an exponent */
	CHECK_EQ_INT(lfsproto_reply_progress(&out, OID, 123456789012345678ull, 5000000000ull), 0);
	OUT("{\"event\":\"progress\",\"oid\":\"" OID "\",\"bytesSoFar\":123456789012345678,"
	    "\"bytesSinceLast\":5000000000}\n");
	CHECK_EQ_INT(lfsproto_reply_complete(&out, OID, "/r/.git/lfs/tmp/lfsfs-x"), 0);
	OUT("{\"event\":\"complete\",\"oid\":\"" OID "\",\"path\":\"/r/.git/lfs/tmp/lfsfs-x\"}\n");
	CHECK_EQ_INT(lfsproto_reply_complete(&out, OID, NULL), 0);
	OUT("{\"event\":\"complete\",\"oid\":\"" OID "\"}\n");
	CHECK_EQ_INT(lfsproto_reply_complete_error(&out, OID, 3, "CHECKSUM_MISMATCH: bad"), 0);
	OUT("{\"event\":\"complete\",\"oid\":\"" OID "\",\"error\":{\"code\":3,"
	    "\"message\":\"CHECKSUM_MISMATCH: bad\"}}\n");
	/* a message with quotes, backslashes and newlines stays on one line */
	CHECK_EQ_INT(lfsproto_reply_complete_error(&out, OID, 4, "a \"b\"\\c\nd\re"), 0);
	OUT("{\"event\":\"complete\",\"oid\":\"" OID "\",\"error\":{\"code\":4,"
	    "\"message\":\"a \\\"b\\\"\\\\c\\nd\\re\"}}\n");
	/* replies accumulate, one line each */
	lfsproto_reply_init_ok(&out);
	lfsproto_reply_complete(&out, OID, "/p");
	CHECK(out.data && !strcmp(out.data, "{}\n{\"event\":\"complete\",\"oid\":\"" OID
				  "\",\"path\":\"/p\"}\n"));
	lfsfs_buf_reset(&out);
	/* a reply that does not fit the buffer's cap fails cleanly */
	{
		struct lfsfs_buf small = LFSFS_BUF_INIT(16);
		CHECK(lfsproto_reply_complete(&small, OID, "/p") < 0);
		lfsfs_buf_release(&small);
	}
	/* what we write, we can read back as JSON (a round trip through cJSON) */
	{
		cJSON *j;
		lfsproto_reply_progress(&out, OID, 42, 2);
		j = cJSON_Parse(out.data);
		CHECK(j != NULL);
		if (j) {
			CHECK_EQ_INT(cJSON_GetObjectItem(j, "bytesSoFar")->valuedouble, 42);
			CHECK_EQ_STR(cJSON_GetObjectItem(j, "event")->valuestring, "progress");
			cJSON_Delete(j);
		}
		lfsfs_buf_reset(&out);
	}
	lfsfs_buf_release(&out);
}

int main(void)
{
	test_init();
	test_download();
	test_upload_terminate();
	test_malformed();
	test_codes();
	test_replies();
	lfsproto_msg_release(&m);
	return TEST_RESULT();
}
