/*
 * The repository view: what the mount shows.
 *
 * The working tree of REPO, read-only: directories, ordinary files and
 * symlinks pass through; a regular file whose content parses as a Git LFS
 * pointer becomes an object file of the pointer's size (content identity
 * is its oid); entries of .lfs-meta/metadata.json with no file in the tree
 * appear at their path, with any missing parent directories made up.
 * `.git` at the top is hidden.
 *
 * Nodes are created on lookup and live as long as the view; inode numbers
 * are stable for a path while mounted.  A node's fields are refreshed from
 * the working tree (lstat) on lookup/getattr, so `git checkout` under a
 * mount shows up.  All access to node fields goes through the view's
 * functions, which hold its lock.
 */
#ifndef LFSFS_VIEW_H
#define LFSFS_VIEW_H

#include <stdint.h>
#include <sys/stat.h>

#include "meta/lfsmeta.h"
#include "resolve/resolve.h"

enum lfsfs_vtype {
	LFSFS_V_DIR,      /* real or made-up directory */
	LFSFS_V_FILE,     /* ordinary file: passthrough */
	LFSFS_V_LINK,     /* symlink: passthrough */
	LFSFS_V_OBJECT,   /* pointer file or metadata-only entry */
};

struct lfsfs_view;

/* What a caller may know of a node, copied out under the view lock. */
struct lfsfs_vinfo {
	uint64_t ino;
	enum lfsfs_vtype type;
	struct stat st;               /* as the mount shows it */
	char relpath[4096];           /* "" for the root */
	/* objects only */
	char oid[65];                 /* "" for etag-keyed metadata entries */
	char etag[160];
	const char *url;              /* metadata entry's URL (owned by the view) */
	int metadata_only;
};

/*
 * Open the view of repo (a git working tree).  Fails with a clear
 * message when repo is not a git repository or metadata.json is
 * malformed (the message names file and line:column).  *out is owned by
 * the caller and freed with lfsfs_view_free().
 */
int lfsfs_view_open(const char *repo, struct lfsfs_view **out);
void lfsfs_view_free(struct lfsfs_view *v);

const char *lfsfs_view_repo(const struct lfsfs_view *v);
struct lfsfs_resolve_ctx *lfsfs_view_resolver(struct lfsfs_view *v);
/* Number of metadata entries shown, and refused. */
void lfsfs_view_counts(const struct lfsfs_view *v, size_t *shown, size_t *refused);

#define LFSFS_ROOT_INO 1

/* Look up name in directory parent; -ENOENT, -ENOTDIR, 0. */
int lfsfs_view_lookup(struct lfsfs_view *v, uint64_t parent, const char *name,
		      struct lfsfs_vinfo *out);
/* Refresh and describe ino; -ENOENT if it vanished from the tree. */
int lfsfs_view_getattr(struct lfsfs_view *v, uint64_t ino, struct lfsfs_vinfo *out);

struct lfsfs_dirent {
	char *name;
	mode_t type;                  /* S_IFDIR, S_IFREG, S_IFLNK */
};
/* List directory ino (without "." and ".."): *ents malloc'd, caller frees
 * with lfsfs_view_dirents_free(). */
int lfsfs_view_readdir(struct lfsfs_view *v, uint64_t ino, struct lfsfs_dirent **ents,
		       size_t *n);
void lfsfs_view_dirents_free(struct lfsfs_dirent *ents, size_t n);

/* The pointer objects among the entries of directory ino (classifying
 * them), for resolving them in one batch: *out malloc'd, caller frees with
 * lfsfs_view_dir_objects_free(). */
struct lfsfs_dir_object {
	char oid[65];
	char *relpath;
	uint64_t size;
};
int lfsfs_view_dir_objects(struct lfsfs_view *v, uint64_t ino, const struct lfsfs_dirent *ents,
			   size_t n, struct lfsfs_dir_object **out, size_t *nout);
void lfsfs_view_dir_objects_free(struct lfsfs_dir_object *o, size_t n);

/* Symlink target (malloc'd). */
int lfsfs_view_readlink(struct lfsfs_view *v, uint64_t ino, char **out);
/* Open a passthrough file read-only; returns an fd or negative errno. */
int lfsfs_view_open_file(struct lfsfs_view *v, uint64_t ino);

#endif
