#!/usr/bin/env bash
# t0210-read-https: reading over HTTPS with TLS verification always on.
#   - with the test CA in SSL_CERT_FILE: sha256 of every file and random preads
#     equal the origin's
#   - with the test CA in CURL_CA_BUNDLE: reads work too
#   - without the CA: reading fails with EIO, the log says SOURCE_NOT_ACCESSIBLE,
#     and no request ever reached the origin (handshake refused)
. "$(dirname "$0")/../lib/common.sh"

MiB=$((1024 * 1024))
origin_start "$T/origin"
W="$ORIGIN_ROOT"
gen_file "$W/big.bin" $((24 * MiB + 333))
gen_file "$W/small.bin" 5000
gen_file "$W/sub/two.bam" $((2 * MiB))

R="$T/repo"
make_repo "$R"
repo_add_pointer "$R" big.bin "$W/big.bin" "$ORIGIN_HTTPS_URL/big.bin"
repo_add_pointer "$R" small.bin "$W/small.bin" "$ORIGIN_HTTPS_URL/small.bin"
repo_add_pointer "$R" sub/two.bam "$W/sub/two.bam" "$ORIGIN_HTTPS_URL/sub/two.bam"
repo_commit "$R"

# sanity: the origin really needs the CA
curl -sS -o /dev/null "$ORIGIN_HTTPS_URL/small.bin" 2>/dev/null && fail "curl without the CA succeeded?"
curl -sS -o /dev/null --cacert "$ORIGIN_CA" "$ORIGIN_HTTPS_URL/small.bin" || fail "curl with the CA failed"
origin_log_reset

info "HTTPS with SSL_CERT_FILE=<test CA>"
M="$T/mnt"
SSL_CERT_FILE="$ORIGIN_CA" lfsfs_mount "$R" "$M" --cache-dir "$T/cache-a" --log-file "$T/a.log" ||
    fail "mount with SSL_CERT_FILE failed"
python3 "$LFSFS_TESTLIB/random_reads.py" random "$M/big.bin" "$W/big.bin" --count 150 --seed 11 ||
    fail "random preads over HTTPS differ"
for f in big.bin small.bin sub/two.bam; do
    assert_eq "$(sha256_of "$W/$f")" "$(sha256_of "$M/$f")" "sha256 of $f over HTTPS"
    assert_eq verified "$(xattr_get "$M/$f" user.lfsfs.state)" "state of $f"
done
https_reqs=$(grep -c 'scheme=https' "$ORIGIN_LOG" || true)
[ "$https_reqs" -gt 0 ] || fail "no HTTPS requests in the access log"
grep -q 'scheme=http$' "$ORIGIN_LOG" && fail "plain HTTP requests seen"
lfsfs_umount "$M" || fail "umount failed"

info "HTTPS with CURL_CA_BUNDLE=<test CA>"
CURL_CA_BUNDLE="$ORIGIN_CA" lfsfs_mount "$R" "$M" --cache-dir "$T/cache-b" --log-file "$T/b.log" ||
    fail "mount with CURL_CA_BUNDLE failed"
assert_eq "$(sha256_of "$W/small.bin")" "$(sha256_of "$M/small.bin")" "sha256 of small.bin with CURL_CA_BUNDLE"
assert_eq "$(sha256_of "$W/sub/two.bam")" "$(sha256_of "$M/sub/two.bam")" "sha256 of sub/two.bam with CURL_CA_BUNDLE"
lfsfs_umount "$M" || fail "umount failed"

info "HTTPS without the CA: EIO, SOURCE_NOT_ACCESSIBLE"
origin_log_reset
LFSFS_LOG="$T/c.log"
lfsfs_mount "$R" "$M" --cache-dir "$T/cache-c" || fail "mount without CA failed (mount itself must work)"
assert_eq $((24 * MiB + 333)) "$(stat -c %s "$M/big.bin")" "size of big.bin (no fetch needed)"
expect_errno EIO read "$M/small.bin"
if cat "$M/big.bin" > /dev/null 2>&1; then fail "cat of big.bin succeeded without the CA"; fi
if dd if="$M/sub/two.bam" of=/dev/null bs=4096 count=1 status=none 2>/dev/null; then
    fail "a 4 KiB read succeeded without the CA"
fi
assert_log SOURCE_NOT_ACCESSIBLE "log of the mount without CA lacks SOURCE_NOT_ACCESSIBLE"
assert_eq 0 "$(count_requests)" "requests that reached the origin without a trusted CA"
# the cache holds nothing for these objects
cb=$(xattr_get "$M/small.bin" user.lfsfs.cached_bytes || echo 0)
assert_eq 0 "$cb" "cached_bytes of small.bin after failed reads"
lfsfs_umount "$M" || fail "umount failed"
exit 0
