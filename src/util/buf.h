/*
 * A growable byte buffer with a hard size cap (hostile servers send forever).
 *
 *   struct lfsfs_buf b = LFSFS_BUF_INIT(1 << 20);
 *   lfsfs_buf_append(&b, p, n);       // -E2BIG past the cap, -ENOMEM
 *   ... b.data is NUL-terminated, b.len bytes ...
 *   lfsfs_buf_release(&b);
 *
 * The buffer owns `data`; lfsfs_buf_detach() hands ownership to the caller.
 */
#ifndef LFSFS_BUF_H
#define LFSFS_BUF_H

#include <stddef.h>

struct lfsfs_buf {
	char *data;   /* NUL-terminated when non-NULL */
	size_t len;
	size_t alloc;
	size_t cap;   /* max len; 0 = unlimited */
};

#define LFSFS_BUF_INIT(max) { NULL, 0, 0, (max) }

int lfsfs_buf_append(struct lfsfs_buf *b, const void *p, size_t n);
int lfsfs_buf_appends(struct lfsfs_buf *b, const char *s);
int lfsfs_buf_printf(struct lfsfs_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void lfsfs_buf_reset(struct lfsfs_buf *b);
void lfsfs_buf_release(struct lfsfs_buf *b);
char *lfsfs_buf_detach(struct lfsfs_buf *b);

/* Read a whole file into b (respecting b->cap). Negative errno on failure. */
int lfsfs_buf_read_file(struct lfsfs_buf *b, const char *path);

#endif
