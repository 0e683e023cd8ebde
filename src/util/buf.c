/* Capped growable buffer. */
#include "util/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int buf_grow(struct lfsfs_buf *b, size_t extra)
{
	size_t need, na;
	char *nd;

	if (b->cap && (extra > b->cap || b->len > b->cap - extra))
		return -E2BIG;
	need = b->len + extra + 1;
	if (need <= b->alloc)
		return 0;
	na = b->alloc ? b->alloc : 64;
	while (na < need)
		na *= 2;
	nd = realloc(b->data, na);
	if (!nd)
		return -ENOMEM;
	b->data = nd;
	b->alloc = na;
	return 0;
}

int lfsfs_buf_append(struct lfsfs_buf *b, const void *p, size_t n)
{
	int rc = buf_grow(b, n);

	if (rc)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int lfsfs_buf_appends(struct lfsfs_buf *b, const char *s)
{
	return lfsfs_buf_append(b, s, strlen(s));
}

int lfsfs_buf_printf(struct lfsfs_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, rc;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	rc = buf_grow(b, (size_t)n);
	if (rc)
		return rc;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void lfsfs_buf_reset(struct lfsfs_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void lfsfs_buf_release(struct lfsfs_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->alloc = 0;
}

char *lfsfs_buf_detach(struct lfsfs_buf *b)
{
	char *d = b->data;

	if (!d)
		d = calloc(1, 1);
	b->data = NULL;
	b->len = b->alloc = 0;
	return d;
}

int lfsfs_buf_read_file(struct lfsfs_buf *b, const char *path)
{
	char tmp[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n = read(fd, tmp, sizeof(tmp));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		rc = lfsfs_buf_append(b, tmp, (size_t)n);
		if (rc)
			break;
	}
	close(fd);
	if (!rc && !b->data)
		rc = lfsfs_buf_append(b, "", 0);
	return rc;
}
