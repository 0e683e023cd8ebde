/*
 * The FUSE side of a mount: a lowlevel ops table over a view (what is
 * shown) and a cache (where object bytes come from).  The fs borrows both;
 * the caller keeps them alive until the session ends.
 */
#ifndef LFSFS_FS_H
#define LFSFS_FS_H

struct lfsfs_view;
struct lfsfs_cache;
struct lfsfs_fs;
struct fuse_args;
struct fuse_session;

int lfsfs_fs_new(struct lfsfs_view *view, struct lfsfs_cache *cache, struct lfsfs_fs **out);
void lfsfs_fs_free(struct lfsfs_fs *fs);
/* A new session serving fs (NULL on failure; libfuse prints why). */
struct fuse_session *lfsfs_fs_session(struct lfsfs_fs *fs, struct fuse_args *args);

#endif
