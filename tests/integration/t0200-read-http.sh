#!/usr/bin/env bash
# t0200-read-http: reading pointer files over HTTP.
#   - a small range read fetches only a small part of the object (lazy)
#   - xattrs user.lfsfs.{oid,url,state,cached_bytes}; state remote -> partial ->
#     verified; the url xattr and the log redact credentials and query strings
#   - 300 random preads of mixed sizes equal the origin's bytes
#   - 8 concurrent readers of a 64 MiB file each see the origin's sha256
#   - sha256 of every file through the mount equals the origin's
#   - ranged GETs only, and If-Match once the ETag is known
. "$(dirname "$0")/../lib/common.sh"

MiB=$((1024 * 1024))
origin_start "$T/origin"
W="$ORIGIN_ROOT"
gen_file "$W/big.bin" $((64 * MiB))
gen_file "$W/mid.bin" $((16 * MiB))
gen_file "$W/odd.bin" $((3 * MiB + 12345))
gen_file "$W/exact.bin" $((2 * MiB))
gen_file "$W/tiny.bin" 1
gen_file "$W/small.bin" 1000
gen_file "$W/nested/deep/y.bam" $((5 * MiB + 1))
gen_file "$W/secret.bin" 70000

R="$T/repo"
make_repo "$R"
printf 'plain\n' > "$R/README.md"
for f in big.bin mid.bin odd.bin exact.bin tiny.bin small.bin; do
    repo_add_pointer "$R" "$f" "$W/$f" "$ORIGIN_HTTP_URL/$f"
done
repo_add_pointer "$R" data/deep/y.bam "$W/nested/deep/y.bam" "$ORIGIN_HTTP_URL/nested/deep/y.bam"
# credentials and a signed-URL style query string must never be shown or logged
repo_add_pointer "$R" secret.bin "$W/secret.bin" \
    "http://lfsuser:Pa55w0rdXYZ@127.0.0.1:$ORIGIN_HTTP_PORT/secret.bin?X-Amz-Signature=SIGabc123secret&X-Amz-Credential=AKIDEXAMPLE"
repo_commit "$R"

M="$T/mnt"
lfsfs_mount "$R" "$M" || fail "mount failed"

big_oid=$(pointer_oid "$R/big.bin")

info "xattrs before any read"
assert_eq "$big_oid" "$(xattr_oid "$M/big.bin")" "user.lfsfs.oid of big.bin"
assert_eq "$ORIGIN_HTTP_URL/big.bin" "$(xattr_get "$M/big.bin" user.lfsfs.url)" "user.lfsfs.url of big.bin"
assert_eq remote "$(xattr_get "$M/big.bin" user.lfsfs.state)" "state of big.bin before reading"
assert_eq 0 "$(xattr_get "$M/big.bin" user.lfsfs.cached_bytes)" "cached_bytes of big.bin before reading"
python3 -c 'import os, sys; sys.exit(0 if "user.lfsfs.state" in os.listxattr(sys.argv[1]) else 1)' "$M/big.bin" ||
    fail "listxattr does not list user.lfsfs.state"
out=$(xattrs_consistent "$M/big.bin") || fail "xattrs of big.bin before reading: $out"
xattr_get "$M/README.md" user.lfsfs.oid >/dev/null && fail "ordinary file README.md has user.lfsfs.oid"

info "a 4 KiB read in the middle of a 16 MiB object fetches only a little"
dd if="$M/mid.bin" of="$T/mid.part" bs=4096 skip=$((8 * MiB / 4096)) count=1 status=none ||
    fail "dd of mid.bin failed"
dd if="$W/mid.bin" of="$T/mid.want" bs=4096 skip=$((8 * MiB / 4096)) count=1 status=none
assert_file_eq "$T/mid.want" "$T/mid.part" "4 KiB at 8 MiB of mid.bin"
served=$(origin_bytes_served /mid.bin)
info "  origin served $served bytes of mid.bin for a 4 KiB read"
[ "$served" -gt 0 ] || fail "no bytes served for mid.bin?"
[ "$served" -le $((4 * MiB)) ] || fail "a 4 KiB read made the origin send $served bytes (> 4 MiB)"
st=$(xattr_get "$M/mid.bin" user.lfsfs.state)
assert_eq partial "$st" "state of mid.bin after a 4 KiB read"
cb=$(xattr_get "$M/mid.bin" user.lfsfs.cached_bytes)
[ "$cb" -ge 4096 ] && [ "$cb" -lt $((16 * MiB)) ] || fail "cached_bytes of mid.bin after a 4 KiB read: $cb"

info "300 random preads of big.bin"
python3 "$LFSFS_TESTLIB/random_reads.py" random "$M/big.bin" "$W/big.bin" --count 300 --seed 4242 ||
    fail "random preads of big.bin differ from the origin"
python3 "$LFSFS_TESTLIB/random_reads.py" random "$M/odd.bin" "$W/odd.bin" --count 60 --seed 7 ||
    fail "random preads of odd.bin differ from the origin"
st=$(xattr_get "$M/big.bin" user.lfsfs.state)
cb=$(xattr_get "$M/big.bin" user.lfsfs.cached_bytes)
info "  big.bin state=$st cached_bytes=$cb"
[ "$st" != remote ] || fail "big.bin still 'remote' after 300 reads"
if [ "$cb" -lt $((64 * MiB)) ]; then assert_eq partial "$st" "state of a partially cached big.bin"; fi

info "8 concurrent readers of big.bin"
python3 "$LFSFS_TESTLIB/random_reads.py" concurrent "$M/big.bin" "$W/big.bin" --threads 8 --seed 99 ||
    fail "concurrent readers of big.bin saw wrong bytes"
assert_eq verified "$(xattr_get "$M/big.bin" user.lfsfs.state)" "state of big.bin after full reads"
assert_eq $((64 * MiB)) "$(xattr_get "$M/big.bin" user.lfsfs.cached_bytes)" "cached_bytes of big.bin"

info "sha256 of every file through the mount"
for f in big.bin mid.bin odd.bin exact.bin tiny.bin small.bin secret.bin; do
    assert_eq "$(sha256_of "$W/$f")" "$(sha256_of "$M/$f")" "sha256 of $f"
    assert_eq "$(pointer_oid "$R/$f")" "$(sha256_of "$M/$f")" "sha256 of $f vs its pointer oid"
done
assert_eq "$(sha256_of "$W/nested/deep/y.bam")" "$(sha256_of "$M/data/deep/y.bam")" "sha256 of data/deep/y.bam"
assert_file_eq "$R/README.md" "$M/README.md" "README.md"

info "state is verified after a full read"
for f in big.bin mid.bin odd.bin exact.bin tiny.bin small.bin secret.bin data/deep/y.bam; do
    assert_eq verified "$(xattr_get "$M/$f" user.lfsfs.state)" "state of $f after a full read"
    assert_eq "$(stat -c %s "$M/$f")" "$(xattr_get "$M/$f" user.lfsfs.cached_bytes)" "cached_bytes of $f"
    assert_eq "$(pointer_oid "$R/$f")" "$(xattr_oid "$M/$f")" "user.lfsfs.oid of $f"
done

for f in big.bin small.bin README.md; do
    out=$(xattrs_consistent "$M/$f") || fail "xattrs of $f after reading: $out"
done

info "credentials and query strings are redacted"
url=$(xattr_get "$M/secret.bin" user.lfsfs.url) || fail "no user.lfsfs.url on secret.bin"
info "  user.lfsfs.url of secret.bin: $url"
case "$url" in
    *Pa55w0rdXYZ*|*SIGabc123secret*|*AKIDEXAMPLE*) fail "user.lfsfs.url leaks a secret: $url" ;;
esac
case "$url" in *127.0.0.1:$ORIGIN_HTTP_PORT/secret.bin*) ;; *) fail "user.lfsfs.url lost the host/path: $url" ;; esac
if grep -E 'Pa55w0rdXYZ|SIGabc123secret' "$LFSFS_LOG"; then fail "the log leaks a secret"; fi
# the daemon really used the URL as given (query string reached the origin)
grep -q 'GET /secret.bin?X-Amz-Signature=SIGabc123secret' "$ORIGIN_LOG" ||
    fail "query string of secret.bin's URL did not reach the origin"

info "ranged GETs with If-Match"
awk '$0 ~ /"GET \/big.bin /' "$ORIGIN_LOG" > "$T/big.log"
n=$(wc -l < "$T/big.log")
info "  $n GET requests for big.bin"
[ "$n" -gt 0 ] || fail "no GETs for big.bin in the access log"
grep -v ' range=bytes=' "$T/big.log" && fail "a GET for big.bin without a Range header"
grep -Ev '" 206 ' "$T/big.log" && fail "a GET for big.bin not answered 206"
etag=$(origin_etag big.bin)
n_im=$(grep -cF "if_match=$etag " "$T/big.log" || true)
[ "$n_im" -gt 0 ] || fail "no GET for big.bin carried If-Match: $etag"
grep -v 'if_match= ' "$T/big.log" | grep -vF "if_match=$etag " && fail "If-Match with a wrong ETag"
last=$(tail -n 1 "$T/big.log")
case "$last" in *"if_match=$etag "*) ;; *) fail "the last GET for big.bin had no If-Match: $last" ;; esac
grep -q '" 412 ' "$ORIGIN_LOG" && fail "the origin answered 412"

lfsfs_umount "$M" || fail "umount failed"
exit 0
