/*
 * Repository-relative path handling.
 *
 * Paths from metadata files are untrusted: lfsfs_relpath_normalize()
 * turns "a//b/./c" into "a/b/c" and refuses anything that could leave the
 * repository or confuse the view: absolute paths, "..", NUL bytes,
 * backslashes, control characters, empty paths, paths over PATH_MAX or
 * components over NAME_MAX, and any component named ".git" (compared
 * case-insensitively, for case-insensitive filesystems).  A C string
 * cannot carry a NUL: callers holding counted strings check for it.
 */
#ifndef LFSFS_PATH_H
#define LFSFS_PATH_H

#include <stddef.h>

/* On success *out is a malloc'd normalized path owned by the caller and
 * 0 is returned; otherwise -EINVAL with a message naming the path and why. */
int lfsfs_relpath_normalize(const char *in, char **out);

/* Why lfsfs_relpath_normalize() would refuse `in`: a static lowercase
 * phrase such as "'..' component leaves the repository", or NULL if the
 * path is acceptable.  Sets no message. */
const char *lfsfs_relpath_refusal(const char *in);

/* Join dir and rel into a malloc'd string ("dir/rel"); NULL on ENOMEM. */
char *lfsfs_path_join(const char *dir, const char *rel);

/* Absolute, lexically normalized form of path ("//", "/./" and "/x/../"
 * collapsed; a relative path is taken from the working directory), as a
 * malloc'd string the caller owns.  Does not touch the path itself, so it
 * works on stale mountpoints and on paths that do not exist yet.  NULL on
 * ENOMEM or when the working directory is unknown. */
char *lfsfs_path_absolute(const char *path);

/* The git directory of the working tree at repo: repo/.git when that is a
 * directory, or the target of a "gitdir: PATH" file (a worktree or a
 * submodule), relative targets taken from repo.  0 and *out a malloc'd
 * path the caller owns; otherwise *out is NULL and -ENOENT (no .git),
 * -EINVAL (neither a directory nor a gitdir file), both with a message,
 * or -ENOMEM. */
int lfsfs_find_gitdir(const char *repo, char **out);

#endif
