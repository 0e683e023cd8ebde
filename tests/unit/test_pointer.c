/* Unit tests for the Git LFS pointer parser and writer. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lfsfs/error.h"
#include "lfsfs/pointer.h"
#include "test.h"

#define OID "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393"
#define OID2 "1111111111111111111111111111111111111111111111111111111111111111"
#define OID3 "2222222222222222222222222222222222222222222222222222222222222222"
#define V1 "version https://git-lfs.github.com/spec/v1\n"
#define GOOD V1 "oid sha256:" OID "\nsize 12345\n"

static struct lfsfs_pointer p;

static int parse(const char *s)
{
	memset(&p, 0xa5, sizeof(p));
	lfsfs_error_clear();
	return lfsfs_pointer_parse(s, strlen(s), &p);
}

/* Parse must fail with EPARSE and a message containing `want`. */
static void check_bad(const char *s, const char *want, int line)
{
	int rc = parse(s);

	if (rc != -LFSFS_EPARSE || !strstr(lfsfs_error_message(), want)) {
		test_fail++;
		fprintf(stderr, "%s:%d: rc %d msg \"%s\", expected EPARSE with \"%s\"\n", __FILE__,
		        line, rc, lfsfs_error_message(), want);
	} else {
		test_pass++;
	}
}
#define BAD(s, want) check_bad((s), (want), __LINE__)

static void test_good(void)
{
	CHECK_EQ_INT(parse(GOOD), 0);
	CHECK_EQ_STR(p.oid, OID);
	CHECK_EQ_INT(p.size, 12345);
	CHECK_EQ_INT(p.n_ext, 0);

	/* CRLF line ends */
	CHECK_EQ_INT(parse("version https://git-lfs.github.com/spec/v1\r\noid sha256:" OID
	                   "\r\nsize 7\r\n"),
	             0);
	CHECK_EQ_INT(p.size, 7);
	CHECK_EQ_STR(p.oid, OID);

	/* legacy version URLs */
	CHECK_EQ_INT(
	        parse("version https://hawser.github.com/spec/v1\noid sha256:" OID "\nsize 1\n"),
	        0);
	CHECK_EQ_INT(parse("version http://git-media.io/v/2\noid sha256:" OID "\nsize 1\n"), 0);

	/* lenient: missing final newline (git-lfs trims trailing space) */
	CHECK_EQ_INT(parse(V1 "oid sha256:" OID "\nsize 99"), 0);
	CHECK_EQ_INT(p.size, 99);

	/* size 0 and UINT64_MAX */
	CHECK_EQ_INT(parse(V1 "oid sha256:" OID "\nsize 0\n"), 0);
	CHECK_EQ_INT(p.size, 0);
	CHECK_EQ_INT(parse(V1 "oid sha256:" OID "\nsize 18446744073709551615\n"), 0);
	CHECK(p.size == UINT64_MAX);

	/* unknown but well-formed keys in order are tolerated */
	CHECK_EQ_INT(parse(V1 "foo.bar value\noid sha256:" OID "\nsize 5\nx-future ok\n"), 0);
	CHECK_EQ_INT(p.size, 5);
}

static void test_ext(void)
{
	CHECK_EQ_INT(parse(V1 "ext-0-foo sha256:" OID2 "\next-1-bar2 sha256:" OID3
	                      "\noid sha256:" OID "\nsize 3\n"),
	             0);
	CHECK_EQ_INT(p.n_ext, 2);
	CHECK_EQ_INT(p.ext[0].priority, 0);
	CHECK_EQ_STR(p.ext[0].name, "foo");
	CHECK_EQ_STR(p.ext[0].oid, OID2);
	CHECK_EQ_INT(p.ext[1].priority, 1);
	CHECK_EQ_STR(p.ext[1].name, "bar2");
	CHECK_EQ_STR(p.ext[1].oid, OID3);

	/* priorities out of order */
	BAD(V1 "ext-1-foo sha256:" OID2 "\next-0-bar sha256:" OID3 "\noid sha256:" OID "\nsize 3\n",
	    "pointer line 3: key 'ext-0-bar' must come before 'ext-1-foo'");
	/* same priority twice */
	BAD(V1 "ext-0-bar sha256:" OID2 "\next-0-foo sha256:" OID3 "\noid sha256:" OID "\nsize 3\n",
	    "pointer line 3: extension priority 0 appears twice");
	/* ext after oid */
	BAD(V1 "oid sha256:" OID "\next-0-foo sha256:" OID2 "\nsize 3\n",
	    "pointer line 3: key 'ext-0-foo' must come before 'oid'");
	/* malformed ext keys and values */
	BAD(V1 "ext-a-foo sha256:" OID2 "\noid sha256:" OID "\nsize 3\n",
	    "pointer line 2: extension key 'ext-a-foo' must be 'ext-<digit>-<name>'");
	BAD(V1 "ext-10-foo sha256:" OID2 "\noid sha256:" OID "\nsize 3\n",
	    "pointer line 2: extension key 'ext-10-foo'");
	BAD(V1 "ext-0- sha256:" OID2 "\noid sha256:" OID "\nsize 3\n",
	    "must be 'ext-<digit>-<name>'");
	BAD(V1 "ext-0-a.b sha256:" OID2 "\noid sha256:" OID "\nsize 3\n", "letters and digits");
	BAD(V1 "ext-0-foo md5:d41d8cd98f00b204e9800998ecf8427e\noid sha256:" OID "\nsize 3\n",
	    "pointer line 2: 'ext-0-foo' must be 'sha256:' followed by 64 lowercase hex digits");
}

static void test_oid(void)
{
	const char *msg =
	        "pointer line 2: oid must be 'sha256:' followed by 64 lowercase hex digits";

	BAD(V1 "oid sha256:4D7A214614AB2935C943F9E0FF69D22EADBB8F32B1258DAAA5E2CA24D17E2393\n"
	       "size 1\n",
	    msg);
	BAD(V1 "oid sha256:4d7a214614ab2935c943f9e0ff69d22e\nsize 1\n", msg);
	BAD(V1 "oid sha256:" OID "00\nsize 1\n", msg);
	BAD(V1 "oid sha256:zz7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
	       "size 1\n",
	    msg);
	BAD(V1 "oid md5:d41d8cd98f00b204e9800998ecf8427e\nsize 1\n", msg);
	BAD(V1 "oid " OID "\nsize 1\n", msg);
	BAD(V1 "oid sha256:" OID " \nsize 1\n", msg);
	BAD(V1 "size 1\n", "pointer has no 'oid' line");

	CHECK(lfsfs_oid_valid(OID));
	CHECK(!lfsfs_oid_valid(NULL));
	CHECK(!lfsfs_oid_valid(""));
	CHECK(!lfsfs_oid_valid(OID "0"));
	CHECK(!lfsfs_oid_valid("4D7A214614AB2935C943F9E0FF69D22EADBB8F32B1258DAAA5E2CA24D17E2393"));
	CHECK(!lfsfs_oid_valid("4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e239"));
}

static void test_size(void)
{
	BAD(V1 "oid sha256:" OID "\n", "pointer has no 'size' line");
	BAD(V1 "oid sha256:" OID "\nsize -1\n",
	    "pointer line 3: size '-1' must be decimal digits only");
	BAD(V1 "oid sha256:" OID "\nsize +1\n", "size '+1' must be decimal digits only");
	BAD(V1 "oid sha256:" OID "\nsize 0x10\n", "must be decimal digits only");
	BAD(V1 "oid sha256:" OID "\nsize 12a\n", "must be decimal digits only");
	BAD(V1 "oid sha256:" OID "\nsize 1 \n", "must be decimal digits only");
	BAD(V1 "oid sha256:" OID "\nsize 18446744073709551616\n",
	    "pointer line 3: size '18446744073709551616' does not fit in 64 bits");
	BAD(V1 "oid sha256:" OID "\nsize 99999999999999999999999\n", "does not fit in 64 bits");
}

static void test_structure(void)
{
	char big[LFSFS_POINTER_MAX_LEN + 16];
	static const char binary[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
	size_t n;

	BAD("", "pointer is empty");
	CHECK_EQ_INT(lfsfs_pointer_parse(NULL, 0, &p), -LFSFS_EPARSE);

	CHECK_EQ_INT(lfsfs_pointer_parse(binary, sizeof(binary) - 1, &p), -LFSFS_EPARSE);
	CHECK(strstr(lfsfs_error_message(), "binary data") != NULL);
	CHECK(strstr(lfsfs_error_message(), "pointer line 1") != NULL);
	/* a NUL in the middle of an otherwise good pointer */
	CHECK_EQ_INT(lfsfs_pointer_parse(GOOD "\0", sizeof(GOOD), &p), -LFSFS_EPARSE);
	/* invalid utf-8 */
	BAD(V1 "oid sha256:" OID "\nsize 1\nx \xff\xfe\n",
	    "pointer line 4: byte 0xff is not utf-8 text");
	/* valid utf-8 in an unknown value is fine */
	CHECK_EQ_INT(parse(V1 "oid sha256:" OID "\nsize 1\nx caf\xc3\xa9\n"), 0);
	/* a lone CR inside a line is not text */
	BAD(V1 "oid sha256:" OID "\rsize 1\n", "pointer line 2: byte 0x0d is not text");

	/* 1024 bytes or more is never a pointer, even if it would parse */
	n = (size_t)snprintf(big, sizeof(big), "%s", GOOD);
	memset(big + n, 'a', sizeof(big) - n);
	memcpy(big + n, "zz ", 3);
	big[LFSFS_POINTER_MAX_LEN - 1] = '\n';
	CHECK_EQ_INT(lfsfs_pointer_parse(big, LFSFS_POINTER_MAX_LEN, &p), -LFSFS_EPARSE);
	CHECK(strstr(lfsfs_error_message(), "1024 bytes") != NULL);
	/* ...while 1023 bytes of well-formed pointer still parse */
	big[LFSFS_POINTER_MAX_LEN - 2] = '\n';
	CHECK_EQ_INT(lfsfs_pointer_parse(big, LFSFS_POINTER_MAX_LEN - 1, &p), 0);

	/* version rules */
	BAD("oid sha256:" OID "\nsize 1\n",
	    "pointer line 1: first key must be 'version', not 'oid'");
	BAD("version https://git-lfs.github.com/spec/v2\noid sha256:" OID "\nsize 1\n",
	    "pointer line 1: unknown version");
	BAD("version https://GIT-LFS.github.com/spec/v1\noid sha256:" OID "\nsize 1\n",
	    "unknown version");
	BAD("version https://git-lfs.github.com/spec/v1/\noid sha256:" OID "\nsize 1\n",
	    "unknown version");

	/* ordering and duplicates */
	BAD(V1 "size 1\noid sha256:" OID "\n", "pointer line 3: key 'oid' must come before 'size'");
	BAD(V1 "oid sha256:" OID "\noid sha256:" OID "\nsize 1\n",
	    "pointer line 3: duplicate key 'oid'");
	BAD(V1 "oid sha256:" OID "\nsize 1\nsize 1\n", "pointer line 4: duplicate key 'size'");
	BAD(V1 "oid sha256:" OID "\nsize 1\n"
	       "version https://git-lfs.github.com/spec/v1\n",
	    "pointer line 4: duplicate key 'version'");

	/* line shape */
	BAD(V1 "oid  sha256:" OID "\nsize 1\n",
	    "pointer line 2: more than one space after key 'oid'");
	BAD(V1 "oid\tsha256:" OID "\nsize 1\n", "pointer line 2: byte 0x09 is not text");
	BAD(V1 "oid sha256:" OID "\n\nsize 1\n", "pointer line 3: empty line");
	BAD(V1 "oid sha256:" OID "\nsize 1\n\n", "pointer line 4: empty line");
	BAD(V1 "oid sha256:" OID "\nsize\n", "pointer line 3: expected 'key value'");
	BAD(V1 "oid sha256:" OID "\nsize \n", "pointer line 3: key 'size' has no value");
	BAD(V1 " oid sha256:" OID "\nsize 1\n", "pointer line 2: line starts with a space");
	BAD(V1 "OID sha256:" OID "\nsize 1\n", "pointer line 2: key 'OID' may only use [a-z0-9.-]");
	BAD(V1 "oid_x y\noid sha256:" OID "\nsize 1\n", "key 'oid_x' may only use");
	BAD("hello world\n", "first key must be 'version'");
}

static void test_write(void)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(4096);
	struct lfsfs_pointer q, r;

	memset(&q, 0, sizeof(q));
	memcpy(q.oid, OID, sizeof(q.oid));
	q.size = 12345;
	CHECK_EQ_INT(lfsfs_pointer_write(&q, &b), 0);
	CHECK_EQ_STR(b.data, GOOD);

	/* legacy + CRLF input is written back canonical */
	CHECK_EQ_INT(parse("version https://hawser.github.com/spec/v1\r\noid sha256:" OID
	                   "\r\nsize 12345\r\n"),
	             0);
	lfsfs_buf_reset(&b);
	CHECK_EQ_INT(lfsfs_pointer_write(&p, &b), 0);
	CHECK_EQ_STR(b.data, GOOD);

	/* extensions: canonical text and round trip */
	q.n_ext = 2;
	q.ext[0].priority = 0;
	memcpy(q.ext[0].name, "foo", 4);
	memcpy(q.ext[0].oid, OID2, sizeof(q.ext[0].oid));
	q.ext[1].priority = 3;
	memcpy(q.ext[1].name, "bar", 4);
	memcpy(q.ext[1].oid, OID3, sizeof(q.ext[1].oid));
	q.size = UINT64_MAX;
	lfsfs_buf_reset(&b);
	CHECK_EQ_INT(lfsfs_pointer_write(&q, &b), 0);
	CHECK_EQ_STR(b.data, V1 "ext-0-foo sha256:" OID2 "\next-3-bar sha256:" OID3
	                        "\noid sha256:" OID "\nsize 18446744073709551615\n");
	memset(&r, 0, sizeof(r));
	CHECK_EQ_INT(lfsfs_pointer_parse(b.data, b.len, &r), 0);
	CHECK(r.size == q.size);
	CHECK_EQ_STR(r.oid, q.oid);
	CHECK_EQ_INT(r.n_ext, 2);
	CHECK_EQ_INT(r.ext[1].priority, 3);
	CHECK_EQ_STR(r.ext[1].name, "bar");
	CHECK_EQ_STR(r.ext[1].oid, OID3);

	/* invalid input is refused, never written */
	q.ext[1].priority = 0;
	lfsfs_buf_reset(&b);
	CHECK_EQ_INT(lfsfs_pointer_write(&q, &b), -EINVAL);
	q.n_ext = 0;
	memcpy(q.oid, "4D7A214614AB2935C943F9E0FF69D22EADBB8F32B1258DAAA5E2CA24D17E2393", 65);
	CHECK_EQ_INT(lfsfs_pointer_write(&q, &b), -EINVAL);
	CHECK(strstr(lfsfs_error_message(), "cannot write pointer") != NULL);
	CHECK_EQ_INT(b.len, 0);

	/* a too-small buffer cap surfaces as -E2BIG */
	{
		struct lfsfs_buf small = LFSFS_BUF_INIT(20);

		memcpy(q.oid, OID, sizeof(q.oid));
		CHECK_EQ_INT(lfsfs_pointer_write(&q, &small), -E2BIG);
		lfsfs_buf_release(&small);
	}
	lfsfs_buf_release(&b);
}

static void test_plausible(void)
{
	CHECK(!lfsfs_pointer_size_plausible(0));
	CHECK(lfsfs_pointer_size_plausible(1));
	CHECK(lfsfs_pointer_size_plausible(LFSFS_POINTER_MAX_LEN - 1));
	CHECK(!lfsfs_pointer_size_plausible(LFSFS_POINTER_MAX_LEN));
	CHECK(!lfsfs_pointer_size_plausible(UINT64_MAX));
}

int main(void)
{
	test_good();
	test_ext();
	test_oid();
	test_size();
	test_structure();
	test_write();
	test_plausible();
	return TEST_RESULT();
}
