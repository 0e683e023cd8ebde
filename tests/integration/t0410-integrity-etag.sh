#!/usr/bin/env bash
# t0410-integrity-etag: the origin object changes under a partially read file.
#   - read the start of a 48 MiB file, then replace the origin file with other
#     bytes of the same size (new ETag)
#   - reading parts that were not cached fails with EIO; the log says
#     IMMUTABILITY_VIOLATION; the origin saw If-Match and answered 412
#   - no read ever returns the new bytes: every successful read equals the old
#     content
. "$(dirname "$0")/../lib/common.sh"

MiB=$((1024 * 1024))
SIZE=$((48 * MiB))
origin_start "$T/origin"
W="$ORIGIN_ROOT"
gen_file "$T/data/old.bin" $SIZE
gen_file "$T/data/new.bin" $SIZE
cp "$T/data/old.bin" "$W/big.bin"
gen_file "$W/other.bin" $((2 * MiB))

R="$T/repo"
make_repo "$R"
repo_add_pointer "$R" big.bin "$T/data/old.bin" "$ORIGIN_HTTP_URL/big.bin"
repo_add_pointer "$R" other.bin "$W/other.bin" "$ORIGIN_HTTP_URL/other.bin"
repo_commit "$R"

M="$T/mnt"
lfsfs_mount "$R" "$M" || fail "mount failed"

info "read a few scattered 64 KiB pieces (non-sequential: no big readahead)"
python3 - "$M/big.bin" "$T/data/old.bin" <<'PY' || fail "scattered reads before the change differ"
import os, sys
MiB = 1 << 20
m = os.open(sys.argv[1], os.O_RDONLY)
o = os.open(sys.argv[2], os.O_RDONLY)
for off in (0, 20 * MiB + 12345, 9 * MiB, 33 * MiB - 100):
    if os.pread(m, 65536, off) != os.pread(o, 65536, off):
        sys.exit(f"differs at {off}")
PY
# let readahead settle
prev=-1
for i in $(seq 1 50); do
    cb=$(xattr_get "$M/big.bin" user.lfsfs.cached_bytes)
    [ "$cb" = "$prev" ] && break
    prev=$cb
    sleep 0.2
done
info "  cached_bytes after the head read: $cb"
[ "$cb" -le $((SIZE - 8 * MiB)) ] || fail "test needs uncached parts: readahead cached $cb of $SIZE bytes"
old_etag=$(origin_etag big.bin)

info "replace the origin object (same size, new bytes, new ETag)"
origin_replace big.bin "$T/data/new.bin"
new_etag=$(origin_etag big.bin)
assert_ne "$old_etag" "$new_etag" "ETag after replacing the origin file"
assert_eq "$(sha256_of "$T/data/new.bin")" "$(sha256_of "$W/big.bin")" "origin now serves the new bytes"
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true

info "read every MiB (from the end): EIO or old bytes, never new bytes"
python3 - "$M/big.bin" "$T/data/old.bin" "$T/data/new.bin" <<'PY' || fail "mixed or new bytes were served"
import errno, os, sys
mnt, old, new = sys.argv[1:4]
MiB = 1 << 20
size = os.path.getsize(old)
fd = os.open(mnt, os.O_RDONLY)
of = open(old, "rb"); nf = open(new, "rb")
eio = ok = 0
bad = []
for off in reversed(range(0, size, MiB)):
    of.seek(off); want = of.read(MiB)
    nf.seek(off); newb = nf.read(MiB)
    try:
        got = os.pread(fd, MiB, off)
    except OSError as e:
        if e.errno != errno.EIO:
            bad.append(f"offset {off}: errno {errno.errorcode.get(e.errno)} (want EIO)")
        eio += 1
        continue
    if got == want[:len(got)] and got:
        ok += 1
        continue
    what = "NEW bytes" if got == newb[:len(got)] else "mixed/unknown bytes"
    bad.append(f"offset {off}: {len(got)} bytes of {what}")
print(f"chunks: {ok} old, {eio} EIO, {len(bad)} bad", file=sys.stderr)
for b in bad[:10]:
    print("  " + b, file=sys.stderr)
if eio == 0:
    print("no read failed after the origin changed", file=sys.stderr)
    sys.exit(1)
# the last MiB was never read before the change: it must fail
try:
    os.pread(fd, MiB, size - MiB)
    bad.append(f"re-read of the never-cached last MiB succeeded")
except OSError as e:
    if e.errno != errno.EIO:
        bad.append(f"last MiB: errno {errno.errorcode.get(e.errno)} (want EIO)")
for b in bad:
    print("  " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY

info "whole-file read fails, a later read still fails"
if cat "$M/big.bin" > /dev/null 2>&1; then fail "cat of big.bin succeeded after the origin changed"; fi
expect_errno EIO read "$M/big.bin"
st=$(xattr_get "$M/big.bin" user.lfsfs.state || true)
[ "$st" != verified ] || fail "big.bin reported verified"
assert_log IMMUTABILITY_VIOLATION

info "the origin saw If-Match with the old ETag and answered 412"
grep -F "if_match=$old_etag " "$ORIGIN_LOG" | grep -q '" 412 ' ||
    fail "no 412 answer to an If-Match: $old_etag request"
grep '"GET /big.bin ' "$ORIGIN_LOG" | grep '" 20[06] ' | grep -qF "etag=$new_etag" &&
    fail "the daemon accepted a response carrying the new ETag"

info "an unrelated file still reads fine"
assert_eq "$(sha256_of "$W/other.bin")" "$(sha256_of "$M/other.bin")" "sha256 of other.bin"
lfsfs_umount "$M" || fail "umount failed"
exit 0
