/* The repository view: working tree + pointers + metadata-only entries. */
#include "view/view.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lfsfs/error.h"
#include "lfsfs/pointer.h"
#include "util/log.h"
#include "util/path.h"

struct vnode {
	uint64_t ino;
	char *relpath;
	struct vnode *hnext;
	int classified;
	enum lfsfs_vtype type;
	struct stat st;            /* as shown */
	char oid[65];
	char etag[160];
	const char *url;           /* metadata entries: owned by v->meta */
	int metadata_only;
	/* identity of the backing file, to notice changes */
	dev_t bdev;
	ino_t bino;
	off_t bsize;
	struct timespec bmtime;
};

struct lfsfs_view {
	char *repo;
	char *gitdir;
	struct lfsfs_meta *meta;
	size_t refused;
	struct lfsfs_resolve_ctx rctx;
	char **vdirs;              /* sorted made-up directory paths */
	size_t nvdirs;
	struct stat root_st;
	struct timespec meta_mtime;

	pthread_mutex_t lock;      /* protects everything below */
	struct vnode **by_ino;     /* index ino - 1 */
	size_t n_ino, cap_ino;
	struct vnode **buckets;
	size_t nbuckets;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

static int is_hidden(const char *name)
{
	return !strcmp(name, ".git");
}

/* ---- made-up directories from metadata paths ---- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int build_vdirs(struct lfsfs_view *v)
{
	size_t cap = 0, n = 0;
	char **d = NULL;

	for (size_t i = 0; i < v->meta->n; i++) {
		const char *p = v->meta->entries[i].path;
		for (const char *s = strchr(p, '/'); s; s = strchr(s + 1, '/')) {
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 64;
				char **nd = realloc(d, nc * sizeof(*d));
				if (!nd)
					goto nomem;
				d = nd;
				cap = nc;
			}
			if (!(d[n] = strndup(p, (size_t)(s - p))))
				goto nomem;
			n++;
		}
	}
	if (n)
		qsort(d, n, sizeof(*d), cmp_str);
	/* dedupe */
	size_t w = 0;
	for (size_t i = 0; i < n; i++) {
		if (w && !strcmp(d[w - 1], d[i])) {
			free(d[i]);
			continue;
		}
		d[w++] = d[i];
	}
	v->vdirs = d;
	v->nvdirs = w;
	return 0;
nomem:
	for (size_t i = 0; i < n; i++)
		free(d[i]);
	free(d);
	return -ENOMEM;
}

static int is_vdir(const struct lfsfs_view *v, const char *relpath)
{
	if (!relpath[0])
		return 1;
	if (!v->nvdirs)
		return 0;
	return bsearch(&relpath, v->vdirs, v->nvdirs, sizeof(char *), cmp_str) != NULL;
}

/* ---- node table (caller holds v->lock) ---- */

static struct vnode *node_find(struct lfsfs_view *v, const char *relpath)
{
	for (struct vnode *n = v->buckets[hash_str(relpath) & (v->nbuckets - 1)]; n; n = n->hnext)
		if (!strcmp(n->relpath, relpath))
			return n;
	return NULL;
}

static void rehash(struct lfsfs_view *v)
{
	size_t nb = v->nbuckets * 2;
	struct vnode **b = calloc(nb, sizeof(*b));

	if (!b)
		return;
	for (size_t i = 0; i < v->n_ino; i++) {
		struct vnode *n = v->by_ino[i];
		size_t k = hash_str(n->relpath) & (nb - 1);
		n->hnext = b[k];
		b[k] = n;
	}
	free(v->buckets);
	v->buckets = b;
	v->nbuckets = nb;
}

static struct vnode *node_get(struct lfsfs_view *v, const char *relpath)
{
	struct vnode *n = node_find(v, relpath);
	size_t k;

	if (n)
		return n;
	if (v->n_ino == v->cap_ino) {
		size_t nc = v->cap_ino ? v->cap_ino * 2 : 1024;
		struct vnode **nb = realloc(v->by_ino, nc * sizeof(*nb));
		if (!nb)
			return NULL;
		v->by_ino = nb;
		v->cap_ino = nc;
	}
	n = calloc(1, sizeof(*n));
	if (!n || !(n->relpath = strdup(relpath))) {
		free(n);
		return NULL;
	}
	n->ino = v->n_ino + 1;
	v->by_ino[v->n_ino++] = n;
	if (v->n_ino > v->nbuckets * 2)
		rehash(v);
	k = hash_str(relpath) & (v->nbuckets - 1);
	n->hnext = v->buckets[k];
	v->buckets[k] = n;
	return n;
}

static struct vnode *node_by_ino(struct lfsfs_view *v, uint64_t ino)
{
	if (ino == 0 || ino > v->n_ino)
		return NULL;
	return v->by_ino[ino - 1];
}

/* ---- classification ---- */

static char *full_path(const struct lfsfs_view *v, const char *relpath)
{
	return relpath[0] ? lfsfs_path_join(v->repo, relpath) : strdup(v->repo);
}

/* Read a small regular file and parse it as a pointer. 1 if pointer. */
static int read_pointer(const char *path, struct lfsfs_pointer *p)
{
	char buf[LFSFS_POINTER_MAX_LEN];
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	ssize_t n;

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n <= 0 || (size_t)n >= sizeof(buf))
		return 0;
	return lfsfs_pointer_parse(buf, (size_t)n, p) == 0;
}

static void show_readonly(struct stat *st)
{
	st->st_mode &= (mode_t)~(S_IWUSR | S_IWGRP | S_IWOTH);
}

/* (Re)classify n from the tree and metadata; caller holds v->lock. */
static int classify(struct lfsfs_view *v, struct vnode *n)
{
	char *path = full_path(v, n->relpath);
	struct stat sb;
	const struct lfsfs_meta_entry *e;

	if (!path)
		return -ENOMEM;
	if (lstat(path, &sb) == 0) {
		if (n->classified && sb.st_dev == n->bdev && sb.st_ino == n->bino &&
		    sb.st_size == n->bsize && sb.st_mtim.tv_sec == n->bmtime.tv_sec &&
		    sb.st_mtim.tv_nsec == n->bmtime.tv_nsec && !n->metadata_only) {
			free(path);
			return 0;
		}
		n->bdev = sb.st_dev;
		n->bino = sb.st_ino;
		n->bsize = sb.st_size;
		n->bmtime = sb.st_mtim;
		n->metadata_only = 0;
		n->oid[0] = n->etag[0] = '\0';
		n->url = NULL;
		n->st = sb;
		n->st.st_ino = n->ino;
		if (S_ISDIR(sb.st_mode)) {
			n->type = LFSFS_V_DIR;
		} else if (S_ISLNK(sb.st_mode)) {
			n->type = LFSFS_V_LINK;
		} else if (S_ISREG(sb.st_mode)) {
			struct lfsfs_pointer p;
			n->type = LFSFS_V_FILE;
			if (lfsfs_pointer_size_plausible((uint64_t)sb.st_size) &&
			    read_pointer(path, &p)) {
				n->type = LFSFS_V_OBJECT;
				memcpy(n->oid, p.oid, sizeof(n->oid));
				n->st.st_size = (off_t)p.size;
				n->st.st_blocks = (blkcnt_t)((p.size + 511) / 512);
				/* a metadata entry at the same path may pin its ETag */
				e = lfsfs_meta_find(v->meta, n->relpath);
				if (e && e->etag && (!e->sha256[0] || !strcmp(e->sha256, p.oid)))
					snprintf(n->etag, sizeof(n->etag), "%s", e->etag);
			}
			n->st.st_mode &= (mode_t)~S_IFMT;
			n->st.st_mode |= S_IFREG;
		} else {
			free(path);
			return -ENOENT; /* fifos, sockets, devices are not shown */
		}
		show_readonly(&n->st);
		n->classified = 1;
		free(path);
		return 0;
	}
	free(path);
	if (errno != ENOENT && errno != ENOTDIR)
		return -errno;
	memset(&n->st, 0, sizeof(n->st));
	n->st.st_ino = n->ino;
	n->st.st_uid = v->root_st.st_uid;
	n->st.st_gid = v->root_st.st_gid;
	n->st.st_mtim = n->st.st_ctim = n->st.st_atim = v->meta_mtime;
	n->bdev = 0;
	n->bino = 0;
	if ((e = lfsfs_meta_find(v->meta, n->relpath))) {
		n->type = LFSFS_V_OBJECT;
		n->metadata_only = 1;
		snprintf(n->oid, sizeof(n->oid), "%s", e->sha256);
		snprintf(n->etag, sizeof(n->etag), "%s", e->etag ? e->etag : "");
		n->url = e->url;
		n->st.st_mode = S_IFREG | 0444;
		n->st.st_nlink = 1;
		n->st.st_size = (off_t)e->size;
		n->st.st_blocks = (blkcnt_t)((e->size + 511) / 512);
		n->st.st_blksize = 1 << 20;
		n->classified = 1;
		return 0;
	}
	if (is_vdir(v, n->relpath)) {
		n->type = LFSFS_V_DIR;
		n->metadata_only = 1;
		n->st.st_mode = S_IFDIR | 0555;
		n->st.st_nlink = 2;
		n->classified = 1;
		return 0;
	}
	n->classified = 0;
	return -ENOENT;
}

static void fill_info(const struct vnode *n, struct lfsfs_vinfo *out)
{
	out->ino = n->ino;
	out->type = n->type;
	out->st = n->st;
	snprintf(out->relpath, sizeof(out->relpath), "%s", n->relpath);
	snprintf(out->oid, sizeof(out->oid), "%s", n->oid);
	snprintf(out->etag, sizeof(out->etag), "%s", n->etag);
	out->url = n->url;
	out->metadata_only = n->metadata_only;
}

/* ---- public ---- */

static void refused_cb(const char *path, const char *why, void *ctx)
{
	struct lfsfs_view *v = ctx;

	v->refused++;
	log_error("refusing .lfs-meta/metadata.json entry '%s': %s", path, why);
}

int lfsfs_view_open(const char *repo, struct lfsfs_view **out)
{
	struct lfsfs_view *v = calloc(1, sizeof(*v));
	char real[PATH_MAX];
	char *mp;
	struct stat sb;
	int rc;

	if (!v)
		return -ENOMEM;
	pthread_mutex_init(&v->lock, NULL);
	if (!realpath(repo, real)) {
		rc = lfsfs_error_set(-errno, "cannot open repository '%s': %s", repo,
				     strerror(errno));
		goto fail;
	}
	if (stat(real, &v->root_st) || !S_ISDIR(v->root_st.st_mode)) {
		rc = lfsfs_error_set(-ENOTDIR, "'%s' is not a directory", repo);
		goto fail;
	}
	if (!(v->repo = strdup(real))) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = lfsfs_find_gitdir(v->repo, &v->gitdir)))
		goto fail;
	if ((rc = lfsfs_meta_load(v->repo, &v->meta, refused_cb, v)))
		goto fail;
	mp = lfsfs_path_join(v->repo, ".lfs-meta/metadata.json");
	v->meta_mtime = (mp && stat(mp, &sb) == 0) ? sb.st_mtim : v->root_st.st_mtim;
	free(mp);
	if ((rc = build_vdirs(v)))
		goto fail;
	if ((rc = lfsfs_resolve_init(&v->rctx, v->repo, v->gitdir, v->meta)))
		goto fail;
	v->nbuckets = 1024;
	if (!(v->buckets = calloc(v->nbuckets, sizeof(*v->buckets)))) {
		rc = -ENOMEM;
		goto fail;
	}
	if (!node_get(v, "")) {
		rc = -ENOMEM;
		goto fail;
	}
	*out = v;
	return 0;
fail:
	lfsfs_view_free(v);
	return rc;
}

void lfsfs_view_free(struct lfsfs_view *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n_ino; i++) {
		free(v->by_ino[i]->relpath);
		free(v->by_ino[i]);
	}
	free(v->by_ino);
	free(v->buckets);
	for (size_t i = 0; i < v->nvdirs; i++)
		free(v->vdirs[i]);
	free(v->vdirs);
	if (v->rctx.resolvers)
		lfsfs_resolve_release(&v->rctx);
	lfsfs_meta_free(v->meta);
	free(v->repo);
	free(v->gitdir);
	pthread_mutex_destroy(&v->lock);
	free(v);
}

const char *lfsfs_view_repo(const struct lfsfs_view *v)
{
	return v->repo;
}

struct lfsfs_resolve_ctx *lfsfs_view_resolver(struct lfsfs_view *v)
{
	return &v->rctx;
}

void lfsfs_view_counts(const struct lfsfs_view *v, size_t *shown, size_t *refused)
{
	*shown = v->meta ? v->meta->n : 0;
	*refused = v->refused;
}

int lfsfs_view_lookup(struct lfsfs_view *v, uint64_t parent, const char *name,
		      struct lfsfs_vinfo *out)
{
	char rel[4096];
	struct vnode *p, *n;
	int rc;

	if (!strcmp(name, ".") || !strcmp(name, "..") || strchr(name, '/'))
		return -ENOENT;
	if (is_hidden(name))
		return -ENOENT;
	pthread_mutex_lock(&v->lock);
	p = node_by_ino(v, parent);
	if (!p) {
		rc = -ENOENT;
		goto out;
	}
	if (p->type != LFSFS_V_DIR) {
		rc = -ENOTDIR;
		goto out;
	}
	if ((size_t)snprintf(rel, sizeof(rel), "%s%s%s", p->relpath, p->relpath[0] ? "/" : "",
			     name) >= sizeof(rel)) {
		rc = -ENAMETOOLONG;
		goto out;
	}
	n = node_get(v, rel);
	if (!n) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = classify(v, n)))
		goto out;
	fill_info(n, out);
out:
	pthread_mutex_unlock(&v->lock);
	return rc;
}

int lfsfs_view_getattr(struct lfsfs_view *v, uint64_t ino, struct lfsfs_vinfo *out)
{
	struct vnode *n;
	int rc;

	pthread_mutex_lock(&v->lock);
	n = node_by_ino(v, ino);
	rc = n ? classify(v, n) : -ENOENT;
	if (!rc) {
		fill_info(n, out);
		if (ino == LFSFS_ROOT_INO) /* the root is a directory, whatever happens */
			out->type = LFSFS_V_DIR;
	}
	pthread_mutex_unlock(&v->lock);
	return rc;
}

struct dlist {
	struct lfsfs_dirent *e;
	size_t n, cap;
};

static int dl_add(struct dlist *d, const char *name, size_t len, mode_t type)
{
	if (d->n == d->cap) {
		size_t nc = d->cap ? d->cap * 2 : 32;
		struct lfsfs_dirent *ne = realloc(d->e, nc * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		d->e = ne;
		d->cap = nc;
	}
	if (!(d->e[d->n].name = strndup(name, len)))
		return -ENOMEM;
	d->e[d->n].type = type;
	d->n++;
	return 0;
}

static int dirent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct lfsfs_dirent *)a)->name,
		      ((const struct lfsfs_dirent *)b)->name);
}

/* First index in sorted strs[] whose string is >= key. */
static size_t lower_bound(char *const *strs, size_t n, size_t stride, const char *key)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const char *s = *(char *const *)((const char *)strs + mid * stride);
		if (strcmp(s, key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Add direct children of prefix ("" or "a/b/") found in a sorted path list. */
static int add_overlay(struct dlist *d, char *const *paths, size_t n, size_t stride,
		       const char *prefix, mode_t type)
{
	size_t pl = strlen(prefix);
	int rc;

	for (size_t i = lower_bound(paths, n, stride, prefix); i < n; i++) {
		const char *s = *(char *const *)((const char *)paths + i * stride);
		if (strncmp(s, prefix, pl))
			break;
		if (strchr(s + pl, '/'))
			continue;
		if ((rc = dl_add(d, s + pl, strlen(s + pl), type)))
			return rc;
	}
	return 0;
}

int lfsfs_view_readdir(struct lfsfs_view *v, uint64_t ino, struct lfsfs_dirent **ents,
		       size_t *nout)
{
	struct dlist d = { 0 };
	char prefix[4096];
	struct vnode *n;
	char *path = NULL;
	DIR *dir;
	int rc;

	pthread_mutex_lock(&v->lock);
	n = node_by_ino(v, ino);
	if (!n || (rc = classify(v, n)) || n->type != LFSFS_V_DIR) {
		rc = !n ? -ENOENT : n->classified && n->type != LFSFS_V_DIR ? -ENOTDIR : -ENOENT;
		pthread_mutex_unlock(&v->lock);
		return rc;
	}
	snprintf(prefix, sizeof(prefix), "%s%s", n->relpath, n->relpath[0] ? "/" : "");
	path = full_path(v, n->relpath);
	pthread_mutex_unlock(&v->lock);
	if (!path)
		return -ENOMEM;

	if ((dir = opendir(path))) {
		struct dirent *de;
		while ((de = readdir(dir))) {
			mode_t t;
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
			    is_hidden(de->d_name))
				continue;
			switch (de->d_type) {
			case DT_DIR: t = S_IFDIR; break;
			case DT_LNK: t = S_IFLNK; break;
			case DT_REG: t = S_IFREG; break;
			case DT_UNKNOWN: t = 0; break;
			default: continue; /* not shown */
			}
			if ((rc = dl_add(&d, de->d_name, strlen(de->d_name), t)))
				break;
		}
		closedir(dir);
	}
	free(path);
	rc = 0;
	if (v->meta->n)
		rc = add_overlay(&d, (char *const *)&v->meta->entries[0].path, v->meta->n,
				 sizeof(v->meta->entries[0]), prefix, S_IFREG);
	if (!rc && v->nvdirs)
		rc = add_overlay(&d, v->vdirs, v->nvdirs, sizeof(char *), prefix, S_IFDIR);
	if (rc)
		goto fail;
	if (d.n)
		qsort(d.e, d.n, sizeof(*d.e), dirent_cmp);
	/* The tree wins over metadata at the same name: drop later duplicates. */
	size_t w = 0;
	for (size_t i = 0; i < d.n; i++) {
		if (w && !strcmp(d.e[w - 1].name, d.e[i].name)) {
			free(d.e[i].name);
			continue;
		}
		d.e[w++] = d.e[i];
	}
	d.n = w;
	*ents = d.e;
	*nout = d.n;
	return 0;
fail:
	lfsfs_view_dirents_free(d.e, d.n);
	return rc;
}

void lfsfs_view_dirents_free(struct lfsfs_dirent *ents, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ents[i].name);
	free(ents);
}

int lfsfs_view_dir_objects(struct lfsfs_view *v, uint64_t ino, const struct lfsfs_dirent *ents,
			   size_t n, struct lfsfs_dir_object **out, size_t *nout)
{
	struct lfsfs_dir_object *o = NULL;
	struct lfsfs_vinfo *vi = malloc(sizeof(*vi));
	size_t m = 0;

	*out = NULL;
	*nout = 0;
	if (!vi)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (ents[i].type && ents[i].type != S_IFREG)
			continue;
		if (lfsfs_view_lookup(v, ino, ents[i].name, vi) || vi->type != LFSFS_V_OBJECT ||
		    !vi->oid[0])
			continue;
		if (!o && !(o = calloc(n, sizeof(*o))))
			break;
		memcpy(o[m].oid, vi->oid, sizeof(o[m].oid));
		o[m].size = (uint64_t)vi->st.st_size;
		if (!(o[m].relpath = strdup(vi->relpath)))
			break;
		m++;
	}
	free(vi);
	*out = o;
	*nout = m;
	return 0;
}

void lfsfs_view_dir_objects_free(struct lfsfs_dir_object *o, size_t n)
{
	for (size_t i = 0; o && i < n; i++)
		free(o[i].relpath);
	free(o);
}

int lfsfs_view_readlink(struct lfsfs_view *v, uint64_t ino, char **out)
{
	char buf[PATH_MAX];
	struct vnode *n;
	char *path;
	ssize_t len;

	pthread_mutex_lock(&v->lock);
	n = node_by_ino(v, ino);
	path = n && n->type == LFSFS_V_LINK ? full_path(v, n->relpath) : NULL;
	pthread_mutex_unlock(&v->lock);
	if (!path)
		return -EINVAL;
	len = readlink(path, buf, sizeof(buf) - 1);
	free(path);
	if (len < 0)
		return -errno;
	buf[len] = '\0';
	*out = strdup(buf);
	return *out ? 0 : -ENOMEM;
}

int lfsfs_view_open_file(struct lfsfs_view *v, uint64_t ino)
{
	struct vnode *n;
	char *path;
	int fd;

	pthread_mutex_lock(&v->lock);
	n = node_by_ino(v, ino);
	path = n && n->type == LFSFS_V_FILE ? full_path(v, n->relpath) : NULL;
	pthread_mutex_unlock(&v->lock);
	if (!path)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	free(path);
	return fd < 0 ? -errno : fd;
}
