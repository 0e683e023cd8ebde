/*
 * file:// backend: copy a byte range of a local (or NFS/Lustre) file into
 * the cache file.  The ETag is synthesized from device, inode, size and
 * mtime so a replaced file is detected like a changed remote object.
 */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lfsfs/error.h"

static int file_handles(const char *url)
{
	return !strncasecmp(url, "file://", 7);
}

/* file:///abs/path or file://localhost/abs/path, with %XX decoding. */
static int file_path(const char *url, char *out, size_t cap)
{
	const char *p = url + 7;
	size_t o = 0;

	if (!strncasecmp(p, "localhost/", 10))
		p += 9;
	if (*p != '/')
		return -EINVAL;
	for (; *p && *p != '?' && *p != '#'; p++) {
		int c = (unsigned char)*p;
		if (c == '%' && p[1] && p[2]) {
			char hex[3] = { p[1], p[2], 0 };
			char *end;
			long v = strtol(hex, &end, 16);
			if (*end || v == 0)
				return -EINVAL;
			c = (int)v;
			p += 2;
		}
		if (o + 1 >= cap)
			return -ENAMETOOLONG;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

static int file_fetch(struct lfsfs_store *st, struct lfsfs_fetch *f)
{
	char path[4096], buf[1 << 16];
	struct stat sb;
	uint64_t done = 0;
	int fd, rc = 0;

	if (file_path(f->url, path, sizeof(path))) {
		snprintf(f->error, sizeof(f->error), "not a local file URL (want file:///abs/path)");
		return -LFSFS_ESOURCE_NOT_ACCESSIBLE;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(f->error, sizeof(f->error), "%s", strerror(errno));
		return -LFSFS_ESOURCE_NOT_ACCESSIBLE;
	}
	if (fstat(fd, &sb)) {
		snprintf(f->error, sizeof(f->error), "%s", strerror(errno));
		rc = -LFSFS_ESOURCE_NOT_ACCESSIBLE;
		goto out;
	}
	snprintf(f->etag_seen, sizeof(f->etag_seen), "\"%" PRIx64 "-%" PRIx64 "-%" PRIx64 "-%lx.%lx\"",
		 (uint64_t)sb.st_dev, (uint64_t)sb.st_ino, (uint64_t)sb.st_size,
		 (unsigned long)sb.st_mtim.tv_sec, (unsigned long)sb.st_mtim.tv_nsec);
	if (f->etag[0] && strcmp(f->etag, f->etag_seen)) {
		snprintf(f->error, sizeof(f->error), "file changed since ETag %s (now %s)", f->etag,
			 f->etag_seen);
		rc = -LFSFS_EIMMUTABILITY;
		goto out;
	}
	if (f->size && (uint64_t)sb.st_size != f->size) {
		snprintf(f->error, sizeof(f->error), "file is %" PRIu64 " bytes, expected %" PRIu64,
			 (uint64_t)sb.st_size, f->size);
		rc = -LFSFS_ESIZE_MISMATCH;
		goto out;
	}
	while (done < f->len) {
		size_t want = f->len - done < sizeof(buf) ? (size_t)(f->len - done) : sizeof(buf);
		ssize_t n = pread(fd, buf, want, (off_t)(f->off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(f->error, sizeof(f->error), "short read: %s",
				 n < 0 ? strerror(errno) : "unexpected end of file");
			rc = -LFSFS_ESOURCE_NOT_ACCESSIBLE;
			goto out;
		}
		for (ssize_t w = 0; w < n;) {
			ssize_t k = pwrite(f->fd, buf + w, (size_t)(n - w), (off_t)(f->off + done + (uint64_t)w));
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0) {
				snprintf(f->error, sizeof(f->error), "cannot write to the cache: %s",
					 strerror(errno));
				rc = errno == ENOSPC ? -ENOSPC : -EIO;
				goto out;
			}
			w += k;
		}
		done += (uint64_t)n;
	}
out:
	close(fd);
	if (rc)
		return rc;
	f->done(f, 0);
	return 0;
}

static int file_head(struct lfsfs_store *st, const char *url, struct lfsfs_objmeta *out)
{
	char path[4096];
	struct stat sb;
	struct tm tm;

	if (file_path(url, path, sizeof(path)))
		return lfsfs_error_set(-LFSFS_ESOURCE_NOT_ACCESSIBLE, "SOURCE_NOT_ACCESSIBLE: '%s' "
				       "is not a local file URL (want file:///abs/path)", url);
	if (stat(path, &sb))
		return lfsfs_error_set(-LFSFS_ESOURCE_NOT_ACCESSIBLE,
				       "SOURCE_NOT_ACCESSIBLE: cannot read '%s': %s", url,
				       strerror(errno));
	out->size = (uint64_t)sb.st_size;
	out->has_size = 1;
	snprintf(out->etag, sizeof(out->etag), "\"%" PRIx64 "-%" PRIx64 "-%" PRIx64 "-%lx.%lx\"",
		 (uint64_t)sb.st_dev, (uint64_t)sb.st_ino, (uint64_t)sb.st_size,
		 (unsigned long)sb.st_mtim.tv_sec, (unsigned long)sb.st_mtim.tv_nsec);
	gmtime_r(&sb.st_mtime, &tm);
	strftime(out->last_modified, sizeof(out->last_modified), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	return 0;
}

static int file_explain(struct lfsfs_store *st, const char *url, struct lfsfs_buf *out)
{
	return lfsfs_buf_appends(out, "backend: file\ncredentials: local file permissions\n");
}

const struct lfsfs_store_ops lfsfs_store_file = {
	.name = "file",
	.forms = "file:///path",
	.handles = file_handles,
	.fetch = file_fetch,
	.head = file_head,
	.explain = file_explain,
};
