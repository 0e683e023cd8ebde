/*
 * The runtime registry: which daemon serves which mountpoint, so that
 * `lfsfs umount` can wait for it to finish flushing.  One file per mount
 * in /run/lfsfs (root), $XDG_RUNTIME_DIR/lfsfs, or /tmp/lfsfs-<uid>,
 * named by a hash of the absolute mountpoint, holding the pid.
 */
#ifndef LFSFS_RUNTIME_H
#define LFSFS_RUNTIME_H

#include <sys/types.h>

void lfsfs_runtime_register(const char *mnt_abs, pid_t pid);
void lfsfs_runtime_unregister(const char *mnt_abs);
/* pid of the daemon for mnt_abs, or 0 if unknown. */
pid_t lfsfs_runtime_lookup(const char *mnt_abs);

#endif
