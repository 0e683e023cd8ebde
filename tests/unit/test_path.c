/* Unit tests for repository-relative path normalization and joining. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "lfsfs/error.h"
#include "test.h"
#include "util/path.h"

static void check_norm(const char *in, const char *want, int line)
{
	char *out = (char *)"unset";
	int rc = lfsfs_relpath_normalize(in, &out);

	if (rc || !out || strcmp(out, want)) {
		test_fail++;
		fprintf(stderr, "%s:%d: normalize(\"%s\") rc %d \"%s\", expected \"%s\"\n",
		        __FILE__, line, in, rc, rc ? "" : out, want);
	} else {
		test_pass++;
	}
	if (!rc)
		free(out);
}
#define NORM(in, want) check_norm((in), (want), __LINE__)

static void check_refused(const char *in, const char *why, int line)
{
	char *out = (char *)"unset";
	int rc = lfsfs_relpath_normalize(in, &out);
	const char *msg = lfsfs_error_message();
	const char *r = lfsfs_relpath_refusal(in);

	if (rc != -EINVAL || out != NULL || !strstr(msg, "refusing path '") || !strstr(msg, why) ||
	    !r || !strstr(r, why)) {
		test_fail++;
		fprintf(stderr,
		        "%s:%d: normalize(\"%s\") rc %d msg \"%s\", expected -EINVAL with \"%s\"\n",
		        __FILE__, line, in ? in : "(null)", rc, msg, why);
		if (!rc)
			free(out);
	} else {
		test_pass++;
	}
}
#define REFUSED(in, why) check_refused((in), (why), __LINE__)

static void test_normalize(void)
{
	NORM("a", "a");
	NORM("a/b/c", "a/b/c");
	NORM("a//b/./c", "a/b/c");
	NORM("./a", "a");
	NORM("a/", "a");
	NORM("a/./", "a");
	NORM("data/foo.vcf", "data/foo.vcf");
	NORM(".gitattributes", ".gitattributes");
	NORM("x/.github/y", "x/.github/y");
	NORM("...", "...");
	NORM("..a/b..", "..a/b..");
	NORM(".lfs-meta/metadata.json", ".lfs-meta/metadata.json");
	NORM("caf\xc3\xa9/\xe2\x9c\x93", "caf\xc3\xa9/\xe2\x9c\x93");
	CHECK(lfsfs_relpath_refusal("a/b") == NULL);
}

static void test_refuse(void)
{
	char *longp;

	REFUSED("../x", "'..' component");
	REFUSED("a/../../b", "'..' component");
	REFUSED("a/../b", "'..' component");
	REFUSED("a/..", "'..' component");
	REFUSED("..", "'..' component");
	REFUSED("/abs", "absolute");
	REFUSED("//abs", "absolute");
	REFUSED(".git/config", "'.git' component");
	REFUSED("sub/.git/hooks/x", "'.git' component");
	REFUSED(".GIT/config", "'.git' component");
	REFUSED("a/.git", "'.git' component");
	REFUSED("", "empty");
	REFUSED(NULL, "empty");
	REFUSED(".", "names no file");
	REFUSED("./", "names no file");
	REFUSED(".//./", "names no file");
	REFUSED("a\\..\\b", "backslash");
	REFUSED("a\nb", "control");
	REFUSED("a\x7f", "control");

	longp = malloc(PATH_MAX + 2);
	CHECK(longp != NULL);
	if (longp) {
		for (size_t i = 0; i < PATH_MAX + 1; i++)
			longp[i] = (i % 100 == 99) ? '/' : 'a';
		longp[PATH_MAX + 1] = '\0';
		REFUSED(longp, "PATH_MAX");
		memset(longp, 'a', NAME_MAX + 1);
		longp[NAME_MAX + 1] = '\0';
		REFUSED(longp, "NAME_MAX");
		longp[NAME_MAX] = '\0';
		NORM(longp, longp);
		free(longp);
	}
	/* the message quotes the subject */
	CHECK_EQ_INT(lfsfs_relpath_normalize("a/../../b", &longp), -EINVAL);
	CHECK_EQ_STR(lfsfs_error_message(),
	             "refusing path 'a/../../b': '..' component leaves the repository");
}

static void test_join(void)
{
	char *s;

	s = lfsfs_path_join("/repo", ".lfs-meta/metadata.json");
	CHECK_EQ_STR(s, "/repo/.lfs-meta/metadata.json");
	free(s);
	s = lfsfs_path_join("/repo/", "x");
	CHECK_EQ_STR(s, "/repo/x");
	free(s);
	s = lfsfs_path_join("/repo", "/x");
	CHECK_EQ_STR(s, "/repo/x");
	free(s);
	s = lfsfs_path_join("", "x");
	CHECK_EQ_STR(s, "x");
	free(s);
	s = lfsfs_path_join("dir", "");
	CHECK_EQ_STR(s, "dir");
	free(s);
	s = lfsfs_path_join("/", "x");
	CHECK_EQ_STR(s, "/x");
	free(s);
}

int main(void)
{
	test_normalize();
	test_refuse();
	test_join();
	return TEST_RESULT();
}
