/* Unit tests for the capped growable buffer. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"
#include "util/buf.h"

static void test_append(void)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(0);
	char big[10000];

	CHECK(b.data == NULL);
	CHECK_EQ_INT(lfsfs_buf_append(&b, "", 0), 0);
	CHECK(b.data != NULL);
	CHECK_EQ_STR(b.data, "");
	CHECK_EQ_INT(lfsfs_buf_appends(&b, "abc"), 0);
	CHECK_EQ_INT(lfsfs_buf_append(&b, "defgh", 2), 0);
	CHECK_EQ_INT(b.len, 5);
	CHECK_EQ_STR(b.data, "abcde");
	CHECK_EQ_INT(lfsfs_buf_printf(&b, "-%d-%s", 42, "x"), 0);
	CHECK_EQ_STR(b.data, "abcde-42-x");

	/* cap 0 is unlimited: growth across many reallocations */
	memset(big, 'q', sizeof(big));
	for (int i = 0; i < 10; i++)
		CHECK_EQ_INT(lfsfs_buf_append(&b, big, sizeof(big)), 0);
	CHECK_EQ_INT(b.len, 10 + 10 * sizeof(big));
	CHECK_EQ_INT(b.data[b.len], '\0');

	lfsfs_buf_reset(&b);
	CHECK_EQ_INT(b.len, 0);
	CHECK_EQ_STR(b.data, "");
	lfsfs_buf_release(&b);
	CHECK(b.data == NULL);
	CHECK_EQ_INT(b.len, 0);
}

static void test_cap(void)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(8);

	CHECK_EQ_INT(lfsfs_buf_appends(&b, "12345"), 0);
	CHECK_EQ_INT(lfsfs_buf_appends(&b, "678"), 0); /* exactly at the cap */
	CHECK_EQ_INT(b.len, 8);
	CHECK_EQ_INT(lfsfs_buf_appends(&b, "9"), -E2BIG); /* one past */
	CHECK_EQ_INT(b.len, 8);                           /* unchanged on failure */
	CHECK_EQ_STR(b.data, "12345678");
	CHECK_EQ_INT(lfsfs_buf_append(&b, "", 0), 0); /* nothing more is fine */
	CHECK_EQ_INT(lfsfs_buf_printf(&b, "%s", "z"), -E2BIG);
	CHECK_EQ_STR(b.data, "12345678");
	/* a huge length must not wrap around the cap check */
	CHECK_EQ_INT(lfsfs_buf_append(&b, "x", (size_t)-1), -E2BIG);
	CHECK_EQ_INT(b.len, 8);

	lfsfs_buf_reset(&b);
	CHECK_EQ_INT(lfsfs_buf_appends(&b, "123456789"), -E2BIG);
	CHECK_EQ_INT(b.len, 0);
	CHECK_EQ_INT(lfsfs_buf_printf(&b, "%08d", 7), 0);
	CHECK_EQ_STR(b.data, "00000007");
	lfsfs_buf_release(&b);
}

static void test_detach(void)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(0);
	char *s;

	s = lfsfs_buf_detach(&b); /* never NULL, even when empty */
	CHECK(s != NULL);
	CHECK_EQ_STR(s, "");
	free(s);
	CHECK_EQ_INT(lfsfs_buf_appends(&b, "owned"), 0);
	s = lfsfs_buf_detach(&b);
	CHECK_EQ_STR(s, "owned");
	CHECK(b.data == NULL);
	CHECK_EQ_INT(b.len, 0);
	free(s);
}

static int write_file(const char *path, const char *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int rc = 0;

	if (fd < 0)
		return -1;
	if (write(fd, data, n) != (ssize_t)n)
		rc = -1;
	close(fd);
	return rc;
}

static void test_read_file(void)
{
	char dir[] = "/tmp/lfsfs-test-buf-XXXXXX";
	char path[64], missing[64];
	struct lfsfs_buf b = LFSFS_BUF_INIT(100000);
	char *data = malloc(100001);

	CHECK(data != NULL);
	CHECK(mkdtemp(dir) != NULL);
	if (!data)
		return;
	snprintf(path, sizeof(path), "%s/f", dir);
	snprintf(missing, sizeof(missing), "%s/missing", dir);
	for (int i = 0; i < 100001; i++)
		data[i] = (char)('a' + i % 26);

	/* exactly at the cap: read whole, more than one read(2) chunk */
	CHECK_EQ_INT(write_file(path, data, 100000), 0);
	CHECK_EQ_INT(lfsfs_buf_read_file(&b, path), 0);
	CHECK_EQ_INT(b.len, 100000);
	CHECK(!memcmp(b.data, data, 100000));

	/* one byte over the cap */
	lfsfs_buf_reset(&b);
	CHECK_EQ_INT(write_file(path, data, 100001), 0);
	CHECK_EQ_INT(lfsfs_buf_read_file(&b, path), -E2BIG);
	lfsfs_buf_release(&b);

	/* empty file gives an empty, non-NULL string */
	CHECK_EQ_INT(write_file(path, "", 0), 0);
	CHECK_EQ_INT(lfsfs_buf_read_file(&b, path), 0);
	CHECK(b.data != NULL);
	CHECK_EQ_INT(b.len, 0);
	lfsfs_buf_release(&b);

	/* binary content with NULs is kept byte for byte */
	CHECK_EQ_INT(write_file(path, "a\0b", 3), 0);
	CHECK_EQ_INT(lfsfs_buf_read_file(&b, path), 0);
	CHECK_EQ_INT(b.len, 3);
	CHECK(!memcmp(b.data, "a\0b", 4));
	lfsfs_buf_release(&b);

	CHECK_EQ_INT(lfsfs_buf_read_file(&b, missing), -ENOENT);
	CHECK_EQ_INT(lfsfs_buf_read_file(&b, dir), -EISDIR);

	unlink(path);
	rmdir(dir);
	free(data);
}

int main(void)
{
	test_append();
	test_cap();
	test_detach();
	test_read_file();
	return TEST_RESULT();
}
