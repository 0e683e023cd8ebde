#!/usr/bin/env bash
# t0500-kill9: the cache survives kill -9 of the daemon.
#   - while readers are mid-way through a big file (and another file is fully
#     cached), kill -9 the daemon
#   - `lfsfs umount` cleans up the stale mount (and returns 0)
#   - remount with the same cache dir: every file's sha256 is correct, and the
#     fully cached file is served without origin requests
. "$(dirname "$0")/../lib/common.sh"

MiB=$((1024 * 1024))
origin_start "$T/origin"
W="$ORIGIN_ROOT"
gen_file "$W/big.bin" $((64 * MiB))
gen_file "$W/done.bin" $((6 * MiB + 1))
gen_file "$W/part.bin" $((20 * MiB))
gen_file "$W/small.bin" 4321
FILES="big.bin done.bin part.bin small.bin"

R="$T/repo"
make_repo "$R"
for f in $FILES; do repo_add_pointer "$R" "$f" "$W/$f" "$ORIGIN_HTTP_URL/$f"; done
repo_commit "$R"

M="$T/mnt"
lfsfs_mount "$R" "$M" || fail "mount failed"
pid=$(lfsfs_daemon_pid "$M")
[ -n "$pid" ] || fail "cannot find the daemon pid"

info "fully read done.bin and small.bin, partly read part.bin"
assert_eq "$(sha256_of "$W/done.bin")" "$(sha256_of "$M/done.bin")" "sha256 of done.bin"
assert_eq "$(sha256_of "$W/small.bin")" "$(sha256_of "$M/small.bin")" "sha256 of small.bin"
dd if="$M/part.bin" of=/dev/null bs=1M skip=3 count=5 status=none || fail "partial read of part.bin failed"
assert_eq verified "$(xattr_get "$M/done.bin" user.lfsfs.state)" "state of done.bin before the kill"

info "start slow readers of big.bin and kill -9 the daemon mid-way"
PROG="$T/progress"
python3 - "$M/big.bin" "$PROG" <<'PY' > "$T/reader1.out" 2>&1 &
import os, sys, time
path, prog = sys.argv[1:3]
fd = os.open(path, os.O_RDONLY)
off = 0
try:
    while True:
        b = os.pread(fd, 1 << 20, off)
        if not b:
            break
        off += len(b)
        with open(prog + ".tmp", "w") as f:
            f.write(str(off))
        os.replace(prog + ".tmp", prog)
        time.sleep(0.03)
    print("reader finished", off)
except OSError as e:
    print("reader stopped at", off, e)
PY
reader1=$!
python3 - "$M/part.bin" <<'PY' > "$T/reader2.out" 2>&1 &
import os, random, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
rng = random.Random(5)
size = os.fstat(fd).st_size
try:
    while True:
        os.pread(fd, rng.randint(1, 3 << 20), rng.randrange(size))
except OSError as e:
    print("random reader stopped:", e)
PY
reader2=$!
# wait until the sequential reader is between 16 and 48 MiB
wait_for 30 bash -c "[ -s '$PROG' ] && [ \$(cat '$PROG') -ge $((16 * MiB)) ]" ||
    fail "reader did not reach 16 MiB (progress: $(cat "$PROG" 2>/dev/null))"
at=$(cat "$PROG")
[ "$at" -lt $((64 * MiB)) ] || fail "reader finished before the kill; cannot test a mid-way crash"
kill -9 "$pid"
info "  killed daemon $pid with the reader at $at bytes"
wait_for 10 eval "! pid_alive $pid" || fail "daemon $pid survived kill -9?"
wait "$reader1" || true
wait "$reader2" || true
info "  reader1: $(cat "$T/reader1.out")"
info "  reader2: $(cat "$T/reader2.out")"
grep -q 'reader finished' "$T/reader1.out" && fail "reader finished although the daemon was killed"

info "lfsfs umount of the stale mount"
is_fuse_mounted "$M" || fail "mount vanished by itself (expected a stale mount to clean up)"
lfsfs_umount "$M" || fail "lfsfs umount of the stale mount failed"
is_fuse_mounted "$M" && fail "$M still mounted after lfsfs umount"

info "remount with the same cache dir; every file reads correctly"
origin_log_reset
lfsfs_mount "$R" "$M" || fail "remount after kill -9 failed"
for f in $FILES; do
    assert_eq "$(sha256_of "$W/$f")" "$(sha256_of "$M/$f")" "sha256 of $f after kill -9 + remount"
done
python3 "$LFSFS_TESTLIB/random_reads.py" random "$M/big.bin" "$W/big.bin" --count 60 --seed 9 >/dev/null ||
    fail "random preads of big.bin after the crash differ"
assert_eq 0 "$(count_requests /done.bin)" "origin requests for done.bin (fully cached before the kill)"
assert_eq 0 "$(count_requests /small.bin)" "origin requests for small.bin (fully cached before the kill)"
served_big=$(origin_bytes_served /big.bin)
info "  origin served $served_big bytes of big.bin after the remount (reader had $at before the kill)"
[ "$served_big" -lt $((64 * MiB)) ] || fail "nothing of big.bin survived the kill ($served_big bytes refetched)"
for f in $FILES; do
    assert_eq verified "$(xattr_get "$M/$f" user.lfsfs.state)" "state of $f"
done
lfsfs_umount "$M" || fail "umount failed"

js=$(lfsfs_cache_stat) || fail "cache stat after the crash test failed"
assert_eq 4 "$(json_get "$js" objects)" "cache stat objects"
exit 0
