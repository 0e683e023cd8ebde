/*
 * Minimal unit-test harness: CHECK() records a failure and continues,
 * TEST_MAIN() prints "N passed, N failed" and sets the exit status.
 */
#ifndef LFSFS_TEST_H
#define LFSFS_TEST_H

#include <stdio.h>
#include <string.h>

static int test_pass, test_fail;

#define CHECK(expr) do { \
	if (expr) { test_pass++; } else { test_fail++; \
		fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr); } \
	} while (0)

#define CHECK_EQ_INT(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); \
	if (a_ == b_) { test_pass++; } else { test_fail++; \
		fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, \
			#a, a_, #b, b_); } } while (0)

#define CHECK_EQ_STR(a, b) do { const char *a_ = (a), *b_ = (b); \
	if (a_ && b_ && !strcmp(a_, b_)) { test_pass++; } else { test_fail++; \
		fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, \
			#a, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); } } while (0)

#define TEST_RESULT() ( \
	printf("%s: %d passed, %d failed\n", __FILE__, test_pass, test_fail), \
	test_fail ? 1 : 0)

#endif
