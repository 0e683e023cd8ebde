/*
 * The FUSE lowlevel operations: thin handlers that take the request
 * context, make one call into the view or the cache, and reply once.
 */
#include "fuse/fs.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cache/cache.h"
#include "lfsfs/error.h"
#include "resolve/resolve.h"
#include "util/log.h"
#include "view/view.h"

#define ATTR_TIMEOUT 1.0
#define MAX_READ (1u << 20)

struct lfsfs_fs {
	struct lfsfs_view *view;
	struct lfsfs_cache *cache;
};

/* One open file. */
struct handle {
	enum lfsfs_vtype type;
	int fd;                       /* passthrough files */
	struct lfsfs_object *obj;     /* objects */
	struct lfsfs_reader rd;
	struct lfsfs_fs *fs;
	char relpath[4096];
	char oid[65];
	char etag[160];
	uint64_t size;
};

struct dirhandle {
	struct lfsfs_dirent *ents;
	size_t n;
};

static struct lfsfs_fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void desc_of(const struct lfsfs_vinfo *vi, struct lfsfs_object_desc *d)
{
	d->oid = vi->oid[0] ? vi->oid : NULL;
	d->etag = vi->etag[0] ? vi->etag : NULL;
	d->url = vi->url;
	d->size = (uint64_t)vi->st.st_size;
}

static void reply_errno(fuse_req_t req, int rc)
{
	fuse_reply_err(req, lfsfs_code_errno(rc));
}

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	/* Many readers at once; large reads; the kernel may read ahead. */
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	if (conn->max_readahead > MAX_READ)
		conn->max_readahead = MAX_READ;
	/* libfuse sizes max_pages from max_write: this lets the kernel send
	 * reads of up to 1 MiB (nothing is ever written) */
	conn->max_write = MAX_READ;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	struct lfsfs_vinfo vi;
	int rc = lfsfs_view_lookup(fs_of(req)->view, parent, name, &vi);

	if (rc) {
		reply_errno(req, rc);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = vi.ino;
	e.attr = vi.st;
	e.attr_timeout = ATTR_TIMEOUT;
	e.entry_timeout = ATTR_TIMEOUT;
	fuse_reply_entry(req, &e);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct lfsfs_vinfo vi;
	int rc = lfsfs_view_getattr(fs_of(req)->view, ino, &vi);

	if (rc)
		reply_errno(req, rc);
	else
		fuse_reply_attr(req, &vi.st, ATTR_TIMEOUT);
}

static void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char *target = NULL;
	int rc = lfsfs_view_readlink(fs_of(req)->view, ino, &target);

	if (rc)
		reply_errno(req, rc);
	else
		fuse_reply_readlink(req, target);
	free(target);
}

/* A directory is being listed: resolve its pointers in one batch request
 * (DRS bulk, LFS batch API) rather than one request per file later. */
static void prefetch_dir(struct lfsfs_fs *fs, fuse_ino_t ino, const struct dirhandle *dh)
{
	struct lfsfs_resolve_ctx *rctx = lfsfs_view_resolver(fs->view);
	struct lfsfs_resolve_query *q;
	struct lfsfs_dir_object *objs;
	size_t n;

	if (!lfsfs_resolve_has_batch(rctx))
		return;
	if (lfsfs_view_dir_objects(fs->view, ino, dh->ents, dh->n, &objs, &n) || !n)
		return;
	if ((q = calloc(n, sizeof(*q)))) {
		for (size_t i = 0; i < n; i++) {
			q[i].oid = objs[i].oid;
			q[i].path = objs[i].relpath;
			q[i].size = objs[i].size;
		}
		lfsfs_resolve_prefetch(rctx, q, n);
		free(q);
	}
	lfsfs_view_dir_objects_free(objs, n);
}

static void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirhandle *dh = calloc(1, sizeof(*dh));
	int rc;

	if (!dh) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = lfsfs_view_readdir(fs_of(req)->view, ino, &dh->ents, &dh->n);
	if (rc) {
		free(dh);
		reply_errno(req, rc);
		return;
	}
	prefetch_dir(fs_of(req), ino, dh);
	fi->fh = (uint64_t)(uintptr_t)dh;
	fuse_reply_open(req, fi);
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct dirhandle *dh = (struct dirhandle *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	size_t used = 0;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* offsets: 0 ".", 1 "..", 2+i entry i */
	for (size_t i = (size_t)off; i < dh->n + 2; i++) {
		struct stat st;
		const char *name;
		size_t n;

		memset(&st, 0, sizeof(st));
		if (i == 0) {
			name = ".";
			st.st_mode = S_IFDIR;
		} else if (i == 1) {
			name = "..";
			st.st_mode = S_IFDIR;
		} else {
			name = dh->ents[i - 2].name;
			st.st_mode = dh->ents[i - 2].type;
		}
		/* d_ino is informational; the kernel looks entries up by name */
		st.st_ino = 0xffffffffu;
		n = fuse_add_direntry(req, buf + used, size - used, name, &st, (off_t)(i + 1));
		if (n > size - used)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirhandle *dh = (struct dirhandle *)(uintptr_t)fi->fh;

	lfsfs_view_dirents_free(dh->ents, dh->n);
	free(dh);
	fuse_reply_err(req, 0);
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct lfsfs_fs *fs = fs_of(req);
	struct lfsfs_vinfo vi;
	struct handle *h;
	int rc;

	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if ((rc = lfsfs_view_getattr(fs->view, ino, &vi))) {
		reply_errno(req, rc);
		return;
	}
	if (vi.type == LFSFS_V_DIR) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (!(h = calloc(1, sizeof(*h)))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->type = vi.type;
	h->fd = -1;
	h->fs = fs;
	if (vi.type == LFSFS_V_FILE) {
		h->fd = lfsfs_view_open_file(fs->view, ino);
		if (h->fd < 0) {
			rc = h->fd;
			free(h);
			reply_errno(req, rc);
			return;
		}
	} else if (vi.type == LFSFS_V_OBJECT) {
		struct lfsfs_object_desc d;
		desc_of(&vi, &d);
		snprintf(h->relpath, sizeof(h->relpath), "%s", vi.relpath);
		snprintf(h->oid, sizeof(h->oid), "%s", vi.oid);
		snprintf(h->etag, sizeof(h->etag), "%s", vi.etag);
		h->size = d.size;
		if ((rc = lfsfs_cache_get(fs->cache, &d, &h->obj))) {
			log_error("cannot open '%s': %s", vi.relpath, lfsfs_error_message());
			free(h);
			reply_errno(req, rc);
			return;
		}
		/* Verified bytes never change: the kernel may keep them across
		 * opens. Unverified ones might still be purged (checksum
		 * mismatch), so each open of those starts with a clean page
		 * cache. */
		fi->keep_cache = lfsfs_object_verified(h->obj);
	} else {
		free(h);
		fuse_reply_err(req, EINVAL);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	fuse_reply_open(req, fi);
}

static int resolve_cb(void *ctx, struct lfsfs_source *out)
{
	struct handle *h = ctx;
	struct lfsfs_resolve_query q = {
		.oid = h->oid[0] ? h->oid : NULL,
		.path = h->relpath,
		.size = h->size,
	};
	int rc = lfsfs_resolve_source(lfsfs_view_resolver(h->fs->view), &q, out);

	if (rc)
		log_error("%s (read of '%s')", lfsfs_error_message(), h->relpath);
	else
		log_debug("'%s' -> %s (%s)", h->relpath, out->url, out->resolver);
	return rc;
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(0);
	struct lfsfs_object *pinned = NULL;
	ssize_t n;

	if (size > MAX_READ)
		size = MAX_READ;
	if (h->type == LFSFS_V_FILE) {
		bv.buf[0].fd = h->fd;
	} else {
		n = lfsfs_object_pin(h->obj, &h->rd, size, (uint64_t)off, resolve_cb, h);
		if (n < 0) {
			log_debug("read of '%s' failed: %s", h->relpath, lfsfs_error_message());
			reply_errno(req, (int)n);
			return;
		}
		if (n == 0) {
			fuse_reply_buf(req, NULL, 0);
			return;
		}
		pinned = h->obj;
		size = (size_t)n;
		bv.buf[0].fd = lfsfs_object_fd(pinned);
	}
	/* straight from the file to the kernel (splice where possible) */
	bv.buf[0].size = size;
	bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	bv.buf[0].pos = off;
	fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
	/* h may be released from here on: only the pin keeps the object */
	if (pinned)
		lfsfs_object_unpin(pinned);
}

static void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;

	if (h->fd >= 0)
		close(h->fd);
	lfsfs_object_put(h->obj);
	free(h);
	fuse_reply_err(req, 0);
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	memset(&sv, 0, sizeof(sv));
	if (statvfs(lfsfs_view_repo(fs_of(req)->view), &sv) == 0) {
		sv.f_bfree = sv.f_bavail = 0; /* read-only: nothing to write into */
		sv.f_ffree = sv.f_favail = 0;
	}
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

/* ---- extended attributes ---- */

static const char xattr_names[] =
	"user.lfsfs.oid\0user.lfsfs.url\0user.lfsfs.state\0user.lfsfs.cached_bytes\0"
	"user.lfsfs.etag\0";

static int xattr_value(struct lfsfs_fs *fs, const struct lfsfs_vinfo *vi, const char *name,
		       char *out, size_t cap)
{
	struct lfsfs_object_desc d;
	struct lfsfs_object_info info;

	desc_of(vi, &d);
	lfsfs_cache_peek(fs->cache, &d, &info);
	if (!strcmp(name, "user.lfsfs.url")) {
		struct lfsfs_resolve_query q = { d.oid, vi->relpath, d.size };
		char *url = NULL, *etag = NULL;

		/* the source a read already resolved; resolve only objects never
		 * read (a network resolver would be asked on every getfattr) */
		if (info.url[0]) {
			lfsfs_redact(info.url, out, cap);
			return (int)strlen(out);
		}
		if (lfsfs_resolve(lfsfs_view_resolver(fs->view), &q, &url, &etag))
			return -ENODATA;
		/* never hand out credentials or signed query strings */
		lfsfs_redact(url, out, cap);
		free(url);
		free(etag);
		return (int)strlen(out);
	}
	if (!strcmp(name, "user.lfsfs.oid")) {
		if (!info.sha256[0])
			return -ENODATA;
		return snprintf(out, cap, "%s", info.sha256); /* plain hex, as the batch API */
	}
	if (!strcmp(name, "user.lfsfs.state"))
		return snprintf(out, cap, "%s", info.error ? "error" : lfsfs_obj_state_name(info.state));
	if (!strcmp(name, "user.lfsfs.cached_bytes"))
		return snprintf(out, cap, "%" PRIu64, info.cached_bytes);
	if (!strcmp(name, "user.lfsfs.etag")) {
		if (!info.etag[0] && !vi->etag[0])
			return -ENODATA;
		return snprintf(out, cap, "%s", info.etag[0] ? info.etag : vi->etag);
	}
	return -ENODATA;
}

static void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct lfsfs_fs *fs = fs_of(req);
	struct lfsfs_vinfo vi;
	char val[4096];
	int rc = lfsfs_view_getattr(fs->view, ino, &vi);

	if (rc) {
		reply_errno(req, rc);
		return;
	}
	if (vi.type != LFSFS_V_OBJECT) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	rc = xattr_value(fs, &vi, name, val, sizeof(val));
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)rc);
	else if ((size_t)rc > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, val, (size_t)rc);
}

static void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct lfsfs_fs *fs = fs_of(req);
	struct lfsfs_vinfo vi;
	char list[sizeof(xattr_names)], val[4096];
	size_t len = 0;
	int rc = lfsfs_view_getattr(fs->view, ino, &vi);

	if (rc) {
		reply_errno(req, rc);
		return;
	}
	/* list only the names that have a value right now */
	for (const char *n = xattr_names; vi.type == LFSFS_V_OBJECT && *n; n += strlen(n) + 1) {
		if (xattr_value(fs, &vi, n, val, sizeof(val)) < 0)
			continue;
		memcpy(list + len, n, strlen(n) + 1);
		len += strlen(n) + 1;
	}
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, list, len);
}

/* ---- everything that would change the tree ---- */

static void erofs(fuse_req_t req)
{
	fuse_reply_err(req, EROFS);
}

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	erofs(req);
}

static void fs_mknod(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m, dev_t r)
{
	erofs(req);
}

static void fs_mkdir(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m)
{
	erofs(req);
}

static void fs_unlink(fuse_req_t req, fuse_ino_t p, const char *n)
{
	erofs(req);
}

static void fs_symlink(fuse_req_t req, const char *l, fuse_ino_t p, const char *n)
{
	erofs(req);
}

static void fs_rename(fuse_req_t req, fuse_ino_t p, const char *n, fuse_ino_t np,
		      const char *nn, unsigned int flags)
{
	erofs(req);
}

static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t np, const char *nn)
{
	erofs(req);
}

static void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	erofs(req);
}

static void fs_create(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m,
		      struct fuse_file_info *fi)
{
	erofs(req);
}

static void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	erofs(req);
}

static void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	erofs(req);
}

static const struct fuse_lowlevel_ops lfsfs_ops = {
	.init = fs_init,
	.lookup = fs_lookup,
	.getattr = fs_getattr,
	.readlink = fs_readlink,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.releasedir = fs_releasedir,
	.open = fs_open,
	.read = fs_read,
	.release = fs_release,
	.statfs = fs_statfs,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.setattr = fs_setattr,
	.mknod = fs_mknod,
	.mkdir = fs_mkdir,
	.unlink = fs_unlink,
	.rmdir = fs_unlink,
	.symlink = fs_symlink,
	.rename = fs_rename,
	.link = fs_link,
	.write = fs_write,
	.create = fs_create,
	.setxattr = fs_setxattr,
	.removexattr = fs_removexattr,
};

int lfsfs_fs_new(struct lfsfs_view *view, struct lfsfs_cache *cache, struct lfsfs_fs **out)
{
	struct lfsfs_fs *fs = calloc(1, sizeof(*fs));

	if (!fs)
		return -ENOMEM;
	fs->view = view;
	fs->cache = cache;
	*out = fs;
	return 0;
}

void lfsfs_fs_free(struct lfsfs_fs *fs)
{
	free(fs);
}

struct fuse_session *lfsfs_fs_session(struct lfsfs_fs *fs, struct fuse_args *args)
{
	return fuse_session_new(args, &lfsfs_ops, sizeof(lfsfs_ops), fs);
}
