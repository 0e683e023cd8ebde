#!/usr/bin/env python3
"""Run one filesystem operation and print its outcome: "OK" or the errno name.

usage: fsop.py OP PATH [ARG]
  OP: read (whole file), open_w, open_rw, open_append, open_trunc, creat,
      mkdir, rmdir, unlink, truncate, rename (ARG = new path), symlink (ARG =
      link path), link (ARG = link path), chmod, chown, utime, setxattr,
      removexattr, mknod
Exit status is 0 for OK, 1 for an errno (printed), 2 for usage errors.
Used by tests/lib/common.sh expect_errno.
"""
import errno
import os
import sys


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    op, path = argv[1], argv[2]
    arg = argv[3] if len(argv) > 3 else None
    try:
        if op == "read":
            fd = os.open(path, os.O_RDONLY)
            try:
                while os.read(fd, 1 << 20):
                    pass
            finally:
                os.close(fd)
        elif op in ("open_w", "open_rw", "open_append", "open_trunc"):
            flags = {"open_w": os.O_WRONLY, "open_rw": os.O_RDWR,
                     "open_append": os.O_WRONLY | os.O_APPEND,
                     "open_trunc": os.O_WRONLY | os.O_TRUNC}[op]
            os.close(os.open(path, flags))
        elif op == "creat":
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        elif op == "mkdir":
            os.mkdir(path)
        elif op == "rmdir":
            os.rmdir(path)
        elif op == "unlink":
            os.unlink(path)
        elif op == "truncate":
            os.truncate(path, int(arg or 0))
        elif op == "rename":
            os.rename(path, arg)
        elif op == "symlink":
            os.symlink(path, arg)
        elif op == "link":
            os.link(path, arg)
        elif op == "chmod":
            os.chmod(path, 0o777)
        elif op == "chown":
            os.chown(path, 1, 1)
        elif op == "utime":
            os.utime(path, (0, 0))
        elif op == "setxattr":
            os.setxattr(path, "user.lfsfs.test", b"x")
        elif op == "removexattr":
            os.removexattr(path, "user.lfsfs.oid")
        elif op == "mknod":
            os.mknod(path, 0o644 | 0o010000)  # fifo
        else:
            print("unknown op " + op, file=sys.stderr)
            return 2
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)))
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
