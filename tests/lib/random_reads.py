#!/usr/bin/env python3
"""Compare reads through an lfsfs mount with the origin's bytes.

  random_reads.py random MOUNT_FILE ORIGIN_FILE [--count N] [--seed S] [--block-size B]
      N random preads of mixed sizes (1 byte .. a few MiB), including reads that
      cross block boundaries, reads ending exactly at EOF, reads running past EOF
      (must be short) and reads starting at/after EOF (must return b"").
  random_reads.py concurrent MOUNT_FILE ORIGIN_FILE [--threads T] [--seed S]
      T threads read the whole file at once, each with its own chunk size; even
      threads read sequentially, odd threads in a shuffled chunk order; every
      thread's sha256 must equal the origin's.

Exit 0 when everything matched, 1 on the first mismatch or error (details on
stderr). Python 3 stdlib only.
"""
import argparse
import hashlib
import os
import random
import sys
import threading

MiB = 1 << 20


def pread_full(fd, size, off):
    """pread until size bytes or EOF (FUSE may legitimately return short reads
    only at EOF; we still loop to be robust and report short reads separately)."""
    parts = []
    got = 0
    while got < size:
        b = os.pread(fd, size - got, off + got)
        if not b:
            break
        parts.append(b)
        got += len(b)
    return b"".join(parts)


def pick_read(rng, fsize, bs):
    kind = rng.choice(["tiny", "small", "medium", "large", "boundary",
                       "boundary", "eof_end", "past_eof", "at_eof", "start"])
    if kind == "tiny":
        ln = rng.randint(1, 16)
        off = rng.randrange(0, max(1, fsize))
    elif kind == "small":
        ln = rng.randint(1, 64 * 1024)
        off = rng.randrange(0, max(1, fsize))
    elif kind == "medium":
        ln = rng.randint(64 * 1024, MiB)
        off = rng.randrange(0, max(1, fsize))
    elif kind == "large":
        ln = rng.randint(MiB, 4 * MiB)
        off = rng.randrange(0, max(1, fsize))
    elif kind == "boundary":
        nblocks = max(1, fsize // bs)
        k = rng.randint(1, nblocks)
        before = rng.randint(1, 4096)
        ln = before + rng.randint(1, 4096) + (bs if rng.random() < 0.3 else 0)
        off = max(0, k * bs - before)
    elif kind == "eof_end":
        ln = rng.randint(1, 2 * MiB)
        off = max(0, fsize - ln)
        ln = fsize - off
    elif kind == "past_eof":
        ln = rng.randint(2, MiB)
        off = max(0, fsize - rng.randint(1, ln - 1))
    elif kind == "at_eof":
        ln = rng.randint(1, 4096)
        off = fsize + rng.choice([0, 0, 1, 4096])
    else:  # start
        ln = rng.randint(1, 2 * MiB)
        off = 0
    return kind, off, ln


def cmd_random(a):
    fsize = os.path.getsize(a.origin)
    msize = os.stat(a.mount).st_size
    if msize != fsize:
        print(f"size mismatch: mount {msize} origin {fsize}", file=sys.stderr)
        return 1
    rng = random.Random(a.seed)
    mfd = os.open(a.mount, os.O_RDONLY)
    ofd = os.open(a.origin, os.O_RDONLY)
    total = 0
    kinds = {}
    try:
        for i in range(a.count):
            kind, off, ln = pick_read(rng, fsize, a.block_size)
            want = pread_full(ofd, ln, off)
            try:
                got = pread_full(mfd, ln, off)
            except OSError as e:
                print(f"read #{i} ({kind}) off={off} len={ln}: {e}", file=sys.stderr)
                return 1
            if got != want:
                first = next((j for j in range(min(len(got), len(want)))
                              if got[j] != want[j]), min(len(got), len(want)))
                print(f"MISMATCH read #{i} ({kind}) off={off} len={ln}: got {len(got)} "
                      f"bytes, want {len(want)}; first difference at file offset "
                      f"{off + first}", file=sys.stderr)
                return 1
            # a single pread (no looping) must also not return more than asked
            # or bytes past EOF
            if off >= fsize and os.pread(mfd, ln, off) != b"":
                print(f"read at/after EOF off={off} returned data", file=sys.stderr)
                return 1
            total += len(got)
            kinds[kind] = kinds.get(kind, 0) + 1
    finally:
        os.close(mfd)
        os.close(ofd)
    print(f"random_reads: {a.count} preads OK, {total} bytes compared, kinds {kinds}")
    return 0


def cmd_concurrent(a):
    h = hashlib.sha256()
    with open(a.origin, "rb") as f:
        for chunk in iter(lambda: f.read(4 * MiB), b""):
            h.update(chunk)
    want = h.hexdigest()
    fsize = os.path.getsize(a.origin)
    chunk_sizes = [4096, 128 * 1024, MiB, 3 * MiB + 17, 65536 + 1, 2 * MiB, 512 * 1024 - 3, 8 * MiB]
    results = [None] * a.threads
    barrier = threading.Barrier(a.threads)

    def worker(idx):
        cs = chunk_sizes[idx % len(chunk_sizes)]
        try:
            fd = os.open(a.mount, os.O_RDONLY)
            try:
                barrier.wait(timeout=30)
                if idx % 2 == 0:
                    hh = hashlib.sha256()
                    off = 0
                    while True:
                        b = os.pread(fd, cs, off)
                        if not b:
                            break
                        hh.update(b)
                        off += len(b)
                    results[idx] = (hh.hexdigest(), off)
                else:
                    buf = bytearray(fsize)
                    offs = list(range(0, fsize, cs))
                    random.Random(a.seed + idx).shuffle(offs)
                    n = 0
                    for off in offs:
                        b = pread_full(fd, min(cs, fsize - off), off)
                        buf[off:off + len(b)] = b
                        n += len(b)
                    results[idx] = (hashlib.sha256(buf).hexdigest(), n)
            finally:
                os.close(fd)
        except Exception as e:  # noqa: BLE001 - report anything
            results[idx] = ("error: %r" % (e,), 0)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(a.threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    bad = 0
    for i, (digest, n) in enumerate(results):
        ok = digest == want and n == fsize
        if not ok:
            bad += 1
        print(f"thread {i} ({'seq' if i % 2 == 0 else 'shuffled'}, chunk "
              f"{chunk_sizes[i % len(chunk_sizes)]}): {digest} {n} bytes "
              f"{'OK' if ok else 'MISMATCH (want ' + want + ')'}",
              file=sys.stderr if not ok else sys.stdout)
    return 1 if bad else 0


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["random", "concurrent"])
    p.add_argument("mount")
    p.add_argument("origin")
    p.add_argument("--count", type=int, default=300)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--block-size", type=int, default=MiB)
    p.add_argument("--threads", type=int, default=8)
    a = p.parse_args()
    return cmd_random(a) if a.mode == "random" else cmd_concurrent(a)


if __name__ == "__main__":
    sys.exit(main())
