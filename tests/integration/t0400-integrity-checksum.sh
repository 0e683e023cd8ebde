#!/usr/bin/env bash
# t0400-integrity-checksum: a pointer whose oid does not match the origin's bytes.
#   - reading the whole file fails (cat exits non-zero, read(2) gives EIO)
#   - the log says CHECKSUM_MISMATCH
#   - a later read (same mount, and after a remount) still fails
#   - the file is never reported as verified; a good neighbour reads fine
. "$(dirname "$0")/../lib/common.sh"

MiB=$((1024 * 1024))
origin_start "$T/origin"
W="$ORIGIN_ROOT"
gen_file "$W/good.bin" $((3 * MiB + 5))
gen_file "$W/bad.bin" $((3 * MiB + 5))        # what the origin serves
gen_file "$T/data/claimed.bin" $((3 * MiB + 5)) # what the pointer claims (same size)
gen_file "$W/bad-small.bin" 777
gen_file "$T/data/claimed-small.bin" 777

R="$T/repo"
make_repo "$R"
repo_add_pointer "$R" good.bin "$W/good.bin" "$ORIGIN_HTTP_URL/good.bin"
repo_add_pointer "$R" bad.bin "$T/data/claimed.bin" "$ORIGIN_HTTP_URL/bad.bin"
repo_add_pointer "$R" bad-small.bin "$T/data/claimed-small.bin" "$ORIGIN_HTTP_URL/bad-small.bin"
repo_commit "$R"
[ "$(pointer_oid "$R/bad.bin")" != "$(sha256_of "$W/bad.bin")" ] || fail "test setup: oids equal"

M="$T/mnt"
lfsfs_mount "$R" "$M" || fail "mount failed"

info "the good file reads fine"
assert_eq "$(sha256_of "$W/good.bin")" "$(sha256_of "$M/good.bin")" "sha256 of good.bin"
assert_eq verified "$(xattr_get "$M/good.bin" user.lfsfs.state)" "state of good.bin"

info "whole-file read of a mismatching object fails"
rc=0; cat "$M/bad.bin" > "$T/bad.out" 2>"$T/cat.err" || rc=$?
[ "$rc" -ne 0 ] || fail "cat of bad.bin exited 0 (served $(stat -c %s "$T/bad.out") bytes)"
info "  cat: rc=$rc $(cat "$T/cat.err")"
grep -q 'Input/output error' "$T/cat.err" || fail "cat error is not EIO: $(cat "$T/cat.err")"
# whatever prefix was served must not be the whole object
[ "$(stat -c %s "$T/bad.out")" -lt $((3 * MiB + 5)) ] || fail "cat delivered the whole mismatching object"
assert_log CHECKSUM_MISMATCH

info "a later read still fails"
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
expect_errno EIO read "$M/bad.bin"
if cat "$M/bad.bin" > /dev/null 2>&1; then fail "second cat of bad.bin succeeded"; fi
st=$(xattr_get "$M/bad.bin" user.lfsfs.state || true)
[ "$st" != verified ] || fail "bad.bin reported as verified"

info "small object (single block) too"
expect_errno EIO read "$M/bad-small.bin"
expect_errno EIO read "$M/bad-small.bin"
[ "$(grep -c CHECKSUM_MISMATCH "$LFSFS_LOG")" -ge 2 ] || fail "expected CHECKSUM_MISMATCH for both objects"

info "after a remount the object still fails"
lfsfs_umount "$M" || fail "umount failed"
lfsfs_mount "$R" "$M" || fail "remount failed"
expect_errno EIO read "$M/bad.bin"
if cat "$M/bad-small.bin" > /dev/null 2>&1; then fail "cat of bad-small.bin after remount succeeded"; fi
assert_eq "$(sha256_of "$W/good.bin")" "$(sha256_of "$M/good.bin")" "sha256 of good.bin after remount"
lfsfs_umount "$M" || fail "umount failed"
exit 0
