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

#endif
