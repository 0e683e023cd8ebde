/* Enumerate a repository's tracked objects: pointer files + metadata.json, merged by path. */
#include "meta/tracked.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lfsfs/error.h"
#include "meta/lfsmeta.h"
#include "resolve/resolve.h"
#include "util/path.h"

struct walk {
	const struct lfsfs_tracked_opts *opts;
	dev_t dev;                   /* the repository's filesystem */
	struct lfsfs_tracked *items; /* pointers found, unsorted */
	size_t n, alloc;
	char rel[PATH_MAX];          /* repo-relative path being walked */
};

int lfsfs_tracked_match(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);

	if (n == 0)
		return 1;
	return !strncmp(path, prefix, n) && (path[n] == '\0' || path[n] == '/');
}

static int want_path(const struct lfsfs_tracked_opts *o, const char *rel)
{
	if (!o || !o->paths || !o->n_paths)
		return 1;
	for (size_t i = 0; i < o->n_paths; i++)
		if (lfsfs_tracked_match(rel, o->paths[i]))
			return 1;
	return 0;
}

/* Could anything under directory rel ("" = the top) match a filter? */
static int want_dir(const struct lfsfs_tracked_opts *o, const char *rel)
{
	size_t n = strlen(rel);

	if (!o || !o->paths || !o->n_paths || n == 0)
		return 1;
	for (size_t i = 0; i < o->n_paths; i++) {
		const char *f = o->paths[i];
		if (lfsfs_tracked_match(rel, f))
			return 1;
		if (!strncmp(f, rel, n) && f[n] == '/')
			return 1; /* the filter lies below this directory */
	}
	return 0;
}

static void item_release(struct lfsfs_tracked *t)
{
	free(t->path);
	free(t->etag);
	free(t->meta_url);
	free(t->url);
	free(t->pinned_etag);
	free(t->resolve_error);
	memset(t, 0, sizeof(*t));
}

static struct lfsfs_tracked *push(struct lfsfs_tracked **items, size_t *n, size_t *alloc)
{
	if (*n == *alloc) {
		size_t na = *alloc ? *alloc * 2 : 64;
		struct lfsfs_tracked *ni = realloc(*items, na * sizeof(*ni));
		if (!ni)
			return NULL;
		*items = ni;
		*alloc = na;
	}
	memset(&(*items)[*n], 0, sizeof(**items));
	return &(*items)[(*n)++];
}

/* 1 and *p filled if the regular file name in dirfd is a pointer. */
static int read_pointer_at(int dirfd, const char *name, struct lfsfs_pointer *p)
{
	char buf[LFSFS_POINTER_MAX_LEN];
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n <= 0 || (size_t)n >= sizeof(buf))
		return 0;
	return lfsfs_pointer_parse(buf, (size_t)n, p) == 0;
}

/* Walk the directory open as dfd (owned: closed here), whose relative path
 * is w->rel[0..len). */
static int walk_dir(struct walk *w, int dfd, size_t len)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;
	int rc = 0;

	if (!d) {
		close(dfd);
		return 0; /* unreadable: skipped, like an empty directory */
	}
	while (!rc && (de = readdir(d))) {
		const char *name = de->d_name;
		size_t nl = strlen(name);
		struct stat sb;

		if (!strcmp(name, ".") || !strcmp(name, "..") || !strcasecmp(name, ".git"))
			continue;
		if (len + 1 + nl + 1 > sizeof(w->rel))
			continue; /* cannot be a repo path */
		if (len)
			w->rel[len] = '/';
		memcpy(w->rel + len + (len ? 1 : 0), name, nl + 1);
		if (fstatat(dirfd(d), name, &sb, AT_SYMLINK_NOFOLLOW))
			goto next;
		if (S_ISDIR(sb.st_mode)) {
			int sub;
			if (sb.st_dev != w->dev || !want_dir(w->opts, w->rel))
				goto next;
			sub = openat(dirfd(d), name,
				     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				rc = walk_dir(w, sub, len + (len ? 1 : 0) + nl);
		} else if (S_ISREG(sb.st_mode) &&
			   lfsfs_pointer_size_plausible((uint64_t)sb.st_size) &&
			   want_path(w->opts, w->rel)) {
			struct lfsfs_pointer p;
			struct lfsfs_tracked *t;
			if (!read_pointer_at(dirfd(d), name, &p))
				goto next;
			if (!(t = push(&w->items, &w->n, &w->alloc)) || !(t->path = strdup(w->rel))) {
				rc = -ENOMEM;
				goto next;
			}
			memcpy(t->oid, p.oid, sizeof(t->oid));
			t->size = p.size;
			t->from = LFSFS_TRACKED_POINTER;
		}
next:
		w->rel[len] = '\0';
	}
	closedir(d);
	return rc;
}

static int cmp_item(const void *a, const void *b)
{
	return strcmp(((const struct lfsfs_tracked *)a)->path,
		      ((const struct lfsfs_tracked *)b)->path);
}

static int dup_opt(char **dst, const char *src)
{
	if (!src)
		return 0;
	return (*dst = strdup(src)) ? 0 : -ENOMEM;
}

/* Fill url/pinned_etag/resolve_* of every item. */
static int resolve_all(struct lfsfs_tracked_list *l, const struct lfsfs_meta *meta,
		       const struct lfsfs_tracked_opts *opts)
{
	struct lfsfs_resolve_ctx rctx;
	int rc;

	if ((rc = lfsfs_resolve_init(&rctx, l->repo, l->gitdir, meta)))
		return rc;
	if (opts->cfg && (rc = lfsfs_resolve_configure(&rctx, opts->cfg, opts->net))) {
		lfsfs_resolve_release(&rctx);
		return rc;
	}
	for (size_t i = 0; i < l->n && !rc; i++) {
		struct lfsfs_tracked *t = &l->items[i];
		struct lfsfs_resolve_query q = { t->oid[0] ? t->oid : NULL, t->path, t->size };
		char *url = NULL, *etag = NULL;
		int r = lfsfs_resolve(&rctx, &q, &url, &etag);

		if (r == -ENOMEM) {
			rc = r;
		} else if (r) {
			t->resolve_rc = r;
			if (!(t->resolve_error = strdup(lfsfs_error_message())))
				rc = -ENOMEM;
		} else {
			t->url = url;
			t->pinned_etag = etag;
		}
	}
	lfsfs_resolve_release(&rctx);
	return rc;
}

int lfsfs_tracked_load(const char *repo, const struct lfsfs_tracked_opts *opts,
		       struct lfsfs_tracked_list **out)
{
	struct lfsfs_tracked_list *l = calloc(1, sizeof(*l));
	struct lfsfs_meta *meta = NULL;
	struct walk w;
	char real[PATH_MAX];
	struct stat sb;
	size_t alloc = 0, pi = 0, mi = 0;
	int dfd, rc;

	memset(&w, 0, sizeof(w));
	*out = NULL;
	if (!l)
		return -ENOMEM;
	if (!realpath(repo, real)) {
		rc = lfsfs_error_set(-errno, "cannot open repository '%s': %s", repo,
				     strerror(errno));
		goto fail;
	}
	if (stat(real, &sb) || !S_ISDIR(sb.st_mode)) {
		rc = lfsfs_error_set(-ENOTDIR, "'%s' is not a directory", repo);
		goto fail;
	}
	if (!(l->repo = strdup(real))) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = lfsfs_find_gitdir(l->repo, &l->gitdir)))
		goto fail;
	if ((rc = lfsfs_meta_load(l->repo, &meta, opts ? opts->refused : NULL,
				  opts ? opts->ctx : NULL)))
		goto fail;

	/* 1. pointer files in the working tree */
	w.opts = opts;
	w.dev = sb.st_dev;
	dfd = open(l->repo, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		rc = lfsfs_error_set(-errno, "cannot read '%s': %s", l->repo, strerror(errno));
		goto fail;
	}
	if ((rc = walk_dir(&w, dfd, 0)))
		goto fail;
	if (w.n)
		qsort(w.items, w.n, sizeof(*w.items), cmp_item);

	/* 2. merge with metadata.json (both sorted by strcmp) */
	while (pi < w.n || mi < meta->n) {
		const struct lfsfs_meta_entry *e = mi < meta->n ? &meta->entries[mi] : NULL;
		struct lfsfs_tracked *p = pi < w.n ? &w.items[pi] : NULL;
		int c = !p ? 1 : !e ? -1 : strcmp(p->path, e->path);
		struct lfsfs_tracked *t;

		if (e && c > 0 && !want_path(opts, e->path)) {
			mi++;
			continue;
		}
		if (e && c > 0) {
			/* metadata only, unless a tree entry hides it */
			char *full = lfsfs_path_join(l->repo, e->path);
			struct stat es;
			int hidden;
			if (!full) {
				rc = -ENOMEM;
				goto fail;
			}
			hidden = !lstat(full, &es) || errno == ENOTDIR;
			free(full);
			mi++;
			if (hidden) {
				l->shadowed++;
				continue;
			}
		}
		if (!(t = push(&l->items, &l->n, &alloc))) {
			rc = -ENOMEM;
			goto fail;
		}
		if (c <= 0) {
			*t = *p; /* take the pointer's strings */
			memset(p, 0, sizeof(*p));
			pi++;
		}
		if (c == 0) {
			/* same path: the entry pins the ETag if it is about the same bytes */
			t->from |= LFSFS_TRACKED_META;
			if ((!e->sha256[0] || !strcmp(e->sha256, t->oid)) &&
			    ((rc = dup_opt(&t->etag, e->etag)) ||
			     (rc = dup_opt(&t->meta_url, e->url))))
				goto fail;
			mi++;
		} else if (c > 0) {
			t->from = LFSFS_TRACKED_META;
			t->size = e->size;
			memcpy(t->oid, e->sha256, sizeof(t->oid));
			if (!(t->path = strdup(e->path)) || dup_opt(&t->etag, e->etag) ||
			    dup_opt(&t->meta_url, e->url)) {
				rc = -ENOMEM;
				goto fail;
			}
		}
	}
	if (opts && opts->resolve && (rc = resolve_all(l, meta, opts)))
		goto fail;
	for (size_t i = 0; i < w.n; i++)
		item_release(&w.items[i]);
	free(w.items);
	lfsfs_meta_free(meta);
	*out = l;
	return 0;
fail:
	for (size_t i = 0; i < w.n; i++)
		item_release(&w.items[i]);
	free(w.items);
	lfsfs_meta_free(meta);
	lfsfs_tracked_free(l);
	return rc;
}

void lfsfs_tracked_free(struct lfsfs_tracked_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		item_release(&l->items[i]);
	free(l->items);
	free(l->repo);
	free(l->gitdir);
	free(l);
}

/* ---- command-line paths ---- */

int lfsfs_tracked_find_repo(const char *dir, char **out)
{
	char real[PATH_MAX], probe[PATH_MAX + 8];
	struct stat sb;
	char *slash;

	*out = NULL;
	if (!realpath(dir, real))
		return lfsfs_error_set(-errno, "cannot open '%s': %s", dir, strerror(errno));
	for (;;) {
		snprintf(probe, sizeof(probe), "%s/.git", strcmp(real, "/") ? real : "");
		if (!lstat(probe, &sb))
			break;
		slash = strrchr(real, '/');
		if (!slash || !strcmp(real, "/"))
			return lfsfs_error_set(-ENOENT, "'%s' is not inside a git working tree; "
					       "pass --repo DIR", dir);
		if (slash == real)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	return (*out = strdup(real)) ? 0 : -ENOMEM;
}

/* The part of abs below root ("" for root itself), or NULL if outside. */
static const char *below(const char *abs, const char *root)
{
	size_t n = strlen(root);

	if (n == 1 && root[0] == '/')
		return abs + 1;
	if (strncmp(abs, root, n) || (abs[n] != '\0' && abs[n] != '/'))
		return NULL;
	return abs[n] ? abs + n + 1 : abs + n;
}

int lfsfs_tracked_relpath(const char *repo_abs, const char *cwd, const char *arg, char **out)
{
	char *joined, *norm = NULL, real[PATH_MAX];
	const char *rel;
	int rc = 0;

	*out = NULL;
	if (!arg || !*arg)
		return lfsfs_error_set(-EINVAL, "empty path");
	if (arg[0] == '/')
		joined = strdup(arg);
	else if (cwd && below(cwd, repo_abs))
		joined = lfsfs_path_join(cwd, arg);
	else
		joined = lfsfs_path_join(repo_abs, arg);
	if (!joined || !(norm = lfsfs_path_absolute(joined))) {
		rc = -ENOMEM;
		goto out;
	}
	rel = below(norm, repo_abs);
	if (!rel && realpath(joined, real)) {
		/* through a symlink into the repository */
		free(norm);
		if (!(norm = strdup(real))) {
			rc = -ENOMEM;
			goto out;
		}
		rel = below(norm, repo_abs);
	}
	if (!rel) {
		rc = lfsfs_error_set(-EINVAL, "'%s' is outside the repository '%s'", arg,
				     repo_abs);
		goto out;
	}
	if (*rel && lfsfs_relpath_refusal(rel)) {
		rc = lfsfs_error_set(-EINVAL, "'%s' cannot hold tracked objects: %s", arg,
				     lfsfs_relpath_refusal(rel));
		goto out;
	}
	if (!(*out = strdup(rel)))
		rc = -ENOMEM;
out:
	free(joined);
	free(norm);
	return rc;
}
