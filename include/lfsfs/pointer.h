/*
 * Git LFS pointer files (git-lfs docs/spec.md).
 *
 * A pointer is UTF-8 text of `key value\n` lines, under 1024 bytes:
 *   version https://git-lfs.github.com/spec/v1
 *   ext-0-name sha256:<64 hex>        (optional, priority 0-9, ascending)
 *   oid sha256:<64 lowercase hex>
 *   size <decimal>
 * `version` is first; the remaining keys are in ascending byte order.
 * The reader also accepts CRLF line ends and the legacy version URLs
 * (https://hawser.github.com/spec/v1, http://git-media.io/v/2); the
 * writer produces only the canonical form.  A file is a pointer iff its
 * content parses: size or extension never decide.
 */
#ifndef LFSFS_POINTER_H
#define LFSFS_POINTER_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define LFSFS_POINTER_MAX_LEN 1024   /* a pointer is strictly shorter */
#define LFSFS_POINTER_MAX_EXT 10
#define LFSFS_OID_HEX_LEN 64

struct lfsfs_pointer_ext {
	unsigned priority;          /* 0-9 */
	char name[64];              /* [a-z0-9]+: keys only use [a-z0-9.-] */
	char oid[LFSFS_OID_HEX_LEN + 1];
};

struct lfsfs_pointer {
	char oid[LFSFS_OID_HEX_LEN + 1]; /* lowercase hex, NUL-terminated */
	uint64_t size;
	unsigned n_ext;
	struct lfsfs_pointer_ext ext[LFSFS_POINTER_MAX_EXT];
};

/*
 * Parse `len` bytes at `data`.  Returns 0 and fills *out, or
 * -LFSFS_EPARSE with a message (lfsfs_error_message()) naming the rule
 * broken and the line.  Never reads past data+len; data need not be
 * NUL-terminated.
 */
int lfsfs_pointer_parse(const char *data, size_t len, struct lfsfs_pointer *out);

/* Cheap pre-check used before reading a file: could a file of this size
 * be a pointer at all? (0 < size < LFSFS_POINTER_MAX_LEN) */
int lfsfs_pointer_size_plausible(uint64_t size);

/* Append the canonical text of p to out. 0 or negative errno. */
int lfsfs_pointer_write(const struct lfsfs_pointer *p, struct lfsfs_buf *out);

/* 1 if s is exactly 64 lowercase hex digits. */
int lfsfs_oid_valid(const char *s);

#endif
