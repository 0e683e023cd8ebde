/*
 * Every tracked object of a repository, for the commands that look at a
 * repository without mounting it (`lfsfs ls`, `lfsfs verify`).
 *
 * Two sources, merged by path the way the mount shows them (src/view):
 *   - pointer files in the working tree: regular files under 1024 bytes
 *     whose content parses as a Git LFS pointer (.git is skipped at any
 *     depth, symlinks are not followed, other filesystems are not entered,
 *     so a mount inside the repository is never walked);
 *   - entries of .lfs-meta/metadata.json.  An entry at the path of a
 *     pointer lends it its ETag when it describes the same bytes (no
 *     sha256, or the pointer's); an entry at the path of an ordinary file
 *     or directory is hidden, as in the mount ("shadowed").
 * Each object can be resolved to a URL through the resolver chain
 * (lfsfs_resolve_init / lfsfs_resolve), which reads only local files.
 *
 * Layering: this file sits in meta/ but uses resolve/ (one level up) to
 * fill in URLs; nothing below resolve/ may include it.
 */
#ifndef LFSFS_TRACKED_H
#define LFSFS_TRACKED_H

#include <stddef.h>
#include <stdint.h>

#include "lfsfs/pointer.h"

enum {
	LFSFS_TRACKED_POINTER = 0x1, /* a pointer file in the working tree */
	LFSFS_TRACKED_META = 0x2,    /* an entry of .lfs-meta/metadata.json */
};

struct lfsfs_tracked {
	char *path;          /* normalized repo-relative path (never NULL) */
	uint64_t size;       /* the pointer's size, else the entry's */
	char oid[LFSFS_OID_HEX_LEN + 1]; /* pointer oid, else the entry's
					  * sha256; "" when unknown */
	unsigned from;       /* LFSFS_TRACKED_* bits */
	char *etag;          /* ETag recorded in metadata.json for this path
			      * (what the mount keys and pins), or NULL */
	char *meta_url;      /* the metadata entry's remote_url, or NULL */
	/* filled only when resolving (opts.resolve): */
	char *url;           /* resolved URL (may carry secrets: redact before
			      * printing), NULL when unresolved */
	char *pinned_etag;   /* ETag the resolved record pins, or NULL */
	int resolve_rc;      /* 0, or why url is NULL (a negative LFSFS_E* code) */
	char *resolve_error; /* message for resolve_rc (not redacted), or NULL */
};

struct lfsfs_tracked_list {
	char *repo;                   /* absolute real path of the working tree */
	char *gitdir;                 /* absolute .git directory */
	struct lfsfs_tracked *items;  /* n items, sorted by path (strcmp) */
	size_t n;
	size_t refused;               /* metadata entries refused (unsafe path,
				       * no usable remote_url or size) */
	size_t shadowed;              /* metadata entries hidden by a tree file */
};

struct lfsfs_config;
struct lfsfs_net;

struct lfsfs_tracked_opts {
	/* Repo-relative prefixes ("" = everything; "data" matches "data" and
	 * "data/..."); NULL or 0 entries = everything.  See
	 * lfsfs_tracked_relpath() for turning command-line paths into these. */
	const char *const *paths;
	size_t n_paths;
	int resolve;                  /* fill url, pinned_etag, resolve_* */
	/* With cfg, the resolver chain comes from lfsfs.resolvers (network
	 * resolvers use net); without, it is the local meta,hints chain. */
	const struct lfsfs_config *cfg;
	struct lfsfs_net *net;
	/* Told about each refused metadata entry; may be NULL. */
	void (*refused)(const char *path, const char *why, void *ctx);
	void *ctx;
};

/*
 * List the tracked objects of the working tree at repo.  Fails (with a
 * message) when repo is not a git working tree or metadata.json is
 * malformed; unreadable subdirectories are skipped.  *out is owned by the
 * caller and freed with lfsfs_tracked_free().  Resolution failures are not
 * errors: they are recorded per object.
 */
int lfsfs_tracked_load(const char *repo, const struct lfsfs_tracked_opts *opts,
		       struct lfsfs_tracked_list **out);
void lfsfs_tracked_free(struct lfsfs_tracked_list *l);

/*
 * The top of the git working tree that contains dir: dir itself or its
 * nearest ancestor holding a ".git" (directory or gitdir file).  *out is
 * a malloc'd real path.  -ENOENT with a message when there is none.
 */
int lfsfs_tracked_find_repo(const char *dir, char **out);

/* 1 if repo-relative path is prefix or lies under it ("" matches all). */
int lfsfs_tracked_match(const char *path, const char *prefix);

/*
 * Turn a path given on the command line into a repo-relative prefix
 * (malloc'd in *out; "" for the repository itself).  An absolute path must
 * lie inside repo_abs; a relative one is taken relative to cwd when cwd
 * is inside the repository (as git does) and relative to the repository
 * otherwise.  "." and ".." are resolved lexically.  -EINVAL with a message
 * for a path outside the repository or inside .git.
 */
int lfsfs_tracked_relpath(const char *repo_abs, const char *cwd, const char *arg, char **out);

#endif
