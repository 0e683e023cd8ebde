#!/usr/bin/env bash
# t1100-s3: objects in S3 (s3rver behind tests/lib/s3_verify_proxy.py, which
# recomputes every SigV4 signature with botocore and enforces If-Match).
#   - pointers whose .lfs-meta/sha256 records name s3://bucket/key (keys with
#     spaces, nested paths, reserved and non-ASCII characters) and a
#     metadata-only entry at s3://
#   - endpoint from the repo's .lfsconfig ([lfsfs "s3"] endpoint, pathstyle)
#     in one mount, from AWS_ENDPOINT_URL_S3 in another; virtual-hosted
#     addressing (bucket.localhost) in a third
#   - sha256 of every file and random preads equal the origin's; every
#     request was signed and the proxy verified it; ranged GETs carry If-Match
#   - a session token (AWS_SESSION_TOKEN) is signed correctly
#   - region discovery: with no region, or a wrong one, the bucket's region
#     is learned from the endpoint and the reads succeed
#   - a wrong secret key: EIO within 10 s, "rejected" + SOURCE_NOT_ACCESSIBLE
#     in the log, the secret never logged
#   - no credentials anywhere: EIO, CREDENTIALS_MISSING listing the sources
#     tried; a public bucket reads fine with unsigned requests
#   - an object overwritten after a partial read: EIO, IMMUTABILITY_VIOLATION,
#     and the proxy answered 412 to If-Match
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=../lib/s3.sh
. "$LFSFS_TESTLIB/s3.sh"
s3_require

MiB=$((1024 * 1024))
s3_start "$T/s3" || fail "cannot start s3rver and the verifying proxy"
B=lfs-data
s3_mb "$B"
PUB=lfs-public
s3_mb "$PUB"

# ------------------------------------------------------------------ objects
D="$T/data"
declare -A KEY SIZE ETAG
add_obj() {   # add_obj NAME SIZE KEY
    gen_file "$D/$1" "$2"
    KEY[$1]="$3"
    SIZE[$1]="$2"
    ETAG[$1]=$(s3_put "$B" "$3" "$D/$1") || fail "upload of $1 failed"
}
add_obj big.bin $((24 * MiB)) "objects/big.bin"
add_obj odd.bin $((3 * MiB + 12345)) "odd.bin"
add_obj small.bin 1000 "small.bin"
add_obj tiny.bin 1 "tiny.bin"
add_obj space.bin $((2 * MiB + 7)) "dir with space/file one.bin"
add_obj deep.bam $((5 * MiB + 1)) "a/b/c/d/deep.bam"
add_obj special.bin 70000 "weird/x+y (1)=&'!*,;:@~\$ é.bin"
add_obj meta.bin $((1 * MiB + 3)) "meta only/m.bin"
add_obj mut.bin $((16 * MiB)) "mutable/mut.bin"
add_obj tok.bin 300000 "tok.bin"
gen_file "$D/mut-new.bin" $((16 * MiB))
gen_file "$D/pub.bin" $((1 * MiB + 77))
s3_put "$PUB" "open/pub.bin" "$D/pub.bin" >/dev/null

# ------------------------------------------------------------------ repos
# path in the repo -> object name
declare -A PATHS=(
    [big.bin]=big.bin [odd.bin]=odd.bin [small.bin]=small.bin [tiny.bin]=tiny.bin
    ["docs/space file.bin"]=space.bin [data/deep/deep.bam]=deep.bam
    [special.bin]=special.bin [mut.bin]=mut.bin [tok.bin]=tok.bin
)
R1="$T/repo1"
make_repo "$R1"
printf 'plain\n' > "$R1/README.md"
for p in "${!PATHS[@]}"; do
    o=${PATHS[$p]}
    # big.bin and special.bin records carry their ETag (If-Match from the
    # first GET); the others learn it from the first response
    case "$o" in big.bin|special.bin) e=${ETAG[$o]} ;; *) e= ;; esac
    repo_add_pointer "$R1" "$p" "$D/$o" "s3://$B/${KEY[$o]}" "$e"
done
repo_add_meta "$R1" "results/meta only.bin" "s3://$B/${KEY[meta.bin]}" "${SIZE[meta.bin]}" \
    "$(sha256_of "$D/meta.bin")"
repo_add_pointer "$R1" pub.bin "$D/pub.bin" "s3://$PUB/open/pub.bin"
R2="$T/repo2"
cp -a "$R1" "$R2"
git -C "$R1" config -f .lfsconfig lfsfs.s3.endpoint "$S3_ENDPOINT"
git -C "$R1" config -f .lfsconfig lfsfs.s3.pathstyle true
repo_commit "$R1"
repo_commit "$R2"
grep -q '^\[lfsfs "s3"\]' "$R1/.lfsconfig" || fail ".lfsconfig lacks [lfsfs \"s3\"]: $(cat "$R1/.lfsconfig")"

ALL_PATHS=("${!PATHS[@]}")

# check_all MNT: sha256 of every file equals the origin's
check_all() {
    local m="$1" p
    for p in "${ALL_PATHS[@]}"; do
        [ "$p" = mut.bin ] && continue
        assert_eq "$(sha256_of "$D/${PATHS[$p]}")" "$(sha256_of "$m/$p")" "sha256 of $p in $m"
    done
    assert_eq "$(sha256_of "$D/meta.bin")" "$(sha256_of "$m/results/meta only.bin")" \
        "sha256 of the metadata-only entry in $m"
    assert_file_eq "$R1/README.md" "$m/README.md" "README.md in $m"
}

# all_verified LOG [MIN]: every request in a proxy log was signed and
# verified; at least MIN (default 1) GETs, all ranged and answered 200/206
all_verified() {
    local log="$1" min="${2:-1}" n
    n=$(grep -c '^GET ' "$log" || true)
    [ "$n" -ge "$min" ] || fail "only $n GETs in $log (want >= $min)"
    if grep -v ' auth=verified ' "$log" >&2; then fail "requests not verified in $log (above)"; fi
    if grep '^GET ' "$log" | grep ' range= ' >&2; then fail "GETs without Range in $log"; fi
    if grep -Ev ' status=(200|206) ' "$log" >&2; then fail "non-2xx answers in $log (above)"; fi
    return 0
}

# ------------------------------------------------------------------ 1: .lfsconfig endpoint
info "mount 1: endpoint and path-style from the repository's .lfsconfig"
M1="$T/mnt1"
lfsfs_mount "$R1" "$M1" || fail "mount 1 failed"
assert_eq "s3://$B/${KEY[big.bin]}" "$(xattr_get "$M1/big.bin" user.lfsfs.url)" "user.lfsfs.url of big.bin"
info "  300 random preads of big.bin, 60 of odd.bin, 30 of the spaced key"
python3 "$LFSFS_TESTLIB/random_reads.py" random "$M1/big.bin" "$D/big.bin" --count 300 --seed 4242 ||
    fail "random preads of big.bin differ from the origin"
python3 "$LFSFS_TESTLIB/random_reads.py" random "$M1/odd.bin" "$D/odd.bin" --count 60 --seed 7 ||
    fail "random preads of odd.bin differ from the origin"
python3 "$LFSFS_TESTLIB/random_reads.py" random "$M1/docs/space file.bin" "$D/space.bin" --count 30 --seed 9 ||
    fail "random preads of 'docs/space file.bin' differ from the origin"
info "  sha256 of every file"
check_all "$M1"
assert_eq verified "$(xattr_get "$M1/big.bin" user.lfsfs.state)" "state of big.bin after a full read"
all_verified "$S3_PROXY_LOG" 10
info "  $(grep -c '^GET ' "$S3_PROXY_LOG") GETs, $(grep -c '^HEAD ' "$S3_PROXY_LOG" || true) HEADs, all verified"
grep -q '^GET /lfs-data/dir%20with%20space/file%20one.bin ' "$S3_PROXY_LOG" ||
    fail "no path-style GET for the spaced key"
grep -q '^GET /lfs-data/weird/x%2By%20%281%29%3D%26%27%21%2A%2C%3B%3A%40~%24%20%C3%A9.bin ' \
    "$S3_PROXY_LOG" || fail "no correctly encoded GET for the key with reserved characters"
# big.bin's record had its ETag: every GET of it carried If-Match
grep '^GET /lfs-data/objects/big.bin ' "$S3_PROXY_LOG" > "$T/big.log"
grep -vF "if_match=${ETAG[big.bin]} " "$T/big.log" >&2 && fail "a GET of big.bin without If-Match ${ETAG[big.bin]}"
# odd.bin learned its ETag: the last GET carries it
last=$(grep '^GET /lfs-data/odd.bin ' "$S3_PROXY_LOG" | tail -n 1)
case "$last" in *"if_match=${ETAG[odd.bin]} "*) ;; *) fail "the last GET of odd.bin had no If-Match: $last" ;; esac
if grep -E 'S3RVER[^ ]*secret|AWS_SECRET' "$LFSFS_LOG"; then fail "the log mentions a secret"; fi
lfsfs_umount "$M1" || fail "umount 1 failed"

# ------------------------------------------------------------------ 2: AWS_ENDPOINT_URL_S3
info "mount 2: endpoint from AWS_ENDPOINT_URL_S3 (no .lfsconfig), then the origin changes"
s3_log_reset
M2="$T/mnt2"
AWS_ENDPOINT_URL_S3="$S3_ENDPOINT" lfsfs_mount "$R2" "$M2" --cache-dir "$T/cache2" \
    --log-file "$T/m2.log" || fail "mount 2 failed"
check_all "$M2"
all_verified "$S3_PROXY_LOG" 10

info "  read a little of mut.bin, overwrite it at the origin, read elsewhere"
python3 - "$M2/mut.bin" "$D/mut.bin" <<'PY' || fail "scattered reads of mut.bin before the change differ"
import os, sys
m = os.open(sys.argv[1], os.O_RDONLY)
o = os.open(sys.argv[2], os.O_RDONLY)
for off in (0, 5 * (1 << 20) + 333):
    if os.pread(m, 65536, off) != os.pread(o, 65536, off):
        sys.exit(f"differs at {off}")
PY
prev=-1
for _ in $(seq 1 50); do
    cb=$(xattr_get "$M2/mut.bin" user.lfsfs.cached_bytes)
    [ "$cb" = "$prev" ] && break
    prev=$cb
    sleep 0.2
done
[ "$cb" -le $((12 * MiB)) ] || fail "test needs uncached parts of mut.bin: $cb bytes cached"
new_etag=$(s3_put "$B" "${KEY[mut.bin]}" "$D/mut-new.bin") || fail "overwrite failed"
assert_ne "${ETAG[mut.bin]}" "$new_etag" "ETag of mut.bin after the overwrite"
python3 - "$M2/mut.bin" "$D/mut.bin" "$D/mut-new.bin" <<'PY' || fail "new or mixed bytes served after the overwrite"
import errno, os, sys
MiB = 1 << 20
fd = os.open(sys.argv[1], os.O_RDONLY)
old = open(sys.argv[2], "rb").read()
new = open(sys.argv[3], "rb").read()
eio = 0
for off in (15 * MiB, 13 * MiB + 5, 11 * MiB):
    try:
        got = os.pread(fd, 65536, off)
    except OSError as e:
        if e.errno != errno.EIO:
            sys.exit(f"offset {off}: {errno.errorcode.get(e.errno)}, want EIO")
        eio += 1
        continue
    if got != old[off:off + len(got)]:
        sys.exit(f"offset {off}: {'NEW' if got == new[off:off + len(got)] else 'mixed'} bytes")
if not eio:
    sys.exit("no read failed after the overwrite")
PY
grep -q IMMUTABILITY_VIOLATION "$T/m2.log" || fail "m2.log lacks IMMUTABILITY_VIOLATION"
grep '^GET /lfs-data/mutable/mut.bin ' "$S3_PROXY_LOG" | grep -F "if_match=${ETAG[mut.bin]} " |
    grep -q ' status=412 ' || fail "the proxy never answered 412 to If-Match ${ETAG[mut.bin]}"
lfsfs_umount "$M2" || fail "umount 2 failed"

# ------------------------------------------------------------------ 3: session token
info "mount 3: temporary credentials (AWS_SESSION_TOKEN) are signed correctly"
s3_log_reset
TOKEN="FwoGZXIvYXdzEXAMPLEsessionTOKEN0123456789abcdef+/=="
M3="$T/mnt3"
AWS_SESSION_TOKEN="$TOKEN" lfsfs_mount "$R1" "$M3" --cache-dir "$T/cache3" \
    --log-file "$T/m3.log" || fail "mount 3 failed"
assert_eq "$(sha256_of "$D/tok.bin")" "$(sha256_of "$M3/tok.bin")" "sha256 of tok.bin with a session token"
assert_eq "$(sha256_of "$D/odd.bin")" "$(sha256_of "$M3/odd.bin")" "sha256 of odd.bin with a session token"
all_verified "$S3_PROXY_LOG" 2
if grep -v ' token=yes ' "$S3_PROXY_LOG" >&2; then fail "requests without x-amz-security-token (above)"; fi
if grep -F "$TOKEN" "$T/m3.log"; then fail "the session token was logged"; fi
lfsfs_umount "$M3" || fail "umount 3 failed"

# ------------------------------------------------------------------ 4: virtual-hosted
info "mount 4: virtual-hosted addressing (bucket.localhost) with pathstyle = false"
s3_proxy_start vhost --vhost-base localhost || fail "vhost proxy failed"
VH_PORT=${S3_LAST_PROXY##*:}
R4="$T/repo4"
cp -a "$R2" "$R4"
git -C "$R4" config -f .lfsconfig lfsfs.s3.endpoint "http://localhost:$VH_PORT"
git -C "$R4" config -f .lfsconfig lfsfs.s3.pathstyle false
M4="$T/mnt4"
lfsfs_mount "$R4" "$M4" --cache-dir "$T/cache4" --log-file "$T/m4.log" || fail "mount 4 failed"
assert_eq "$(sha256_of "$D/space.bin")" "$(sha256_of "$M4/docs/space file.bin")" "sha256 via virtual-hosted addressing"
assert_eq "$(sha256_of "$D/small.bin")" "$(sha256_of "$M4/small.bin")" "sha256 of small.bin via virtual-hosted addressing"
all_verified "$S3_DIR/vhost.log" 2
grep -q "^GET /dir%20with%20space/file%20one.bin .* host=lfs-data.localhost:$VH_PORT\$" "$S3_DIR/vhost.log" ||
    fail "no virtual-hosted GET (Host: lfs-data.localhost:$VH_PORT) in $S3_DIR/vhost.log"
lfsfs_umount "$M4" || fail "umount 4 failed"

# ------------------------------------------------------------------ 5: region discovery
info "mount 5/6: the bucket's region is learned (none configured; a wrong one configured)"
s3_proxy_start eu --region eu-central-1 || fail "eu proxy failed"
EU="$S3_LAST_PROXY"
saved_region=$AWS_REGION
unset AWS_REGION
M5="$T/mnt5"
AWS_ENDPOINT_URL_S3="$EU" lfsfs_mount "$R2" "$M5" --cache-dir "$T/cache5" \
    --log-file "$T/m5.log" || fail "mount 5 failed"
assert_eq "$(sha256_of "$D/odd.bin")" "$(sha256_of "$M5/odd.bin")" "sha256 of odd.bin (region learned)"
assert_eq "$(sha256_of "$D/tiny.bin")" "$(sha256_of "$M5/tiny.bin")" "sha256 of tiny.bin (region learned)"
lfsfs_umount "$M5" || fail "umount 5 failed"
M6="$T/mnt6"
AWS_REGION=us-west-2 AWS_ENDPOINT_URL_S3="$EU" lfsfs_mount "$R2" "$M6" --cache-dir "$T/cache6" \
    --log-file "$T/m6.log" || fail "mount 6 failed"
assert_eq "$(sha256_of "$D/small.bin")" "$(sha256_of "$M6/small.bin")" "sha256 of small.bin (wrong region configured)"
lfsfs_umount "$M6" || fail "umount 6 failed"
export AWS_REGION="$saved_region"
grep -q ' auth=rejected:AuthorizationHeaderMalformed region=us-east-1 ' "$S3_DIR/eu.log" ||
    fail "no probe signed for the default region us-east-1 in $S3_DIR/eu.log"
grep -q ' auth=rejected:AuthorizationHeaderMalformed region=us-west-2 ' "$S3_DIR/eu.log" ||
    fail "no probe signed for the configured us-west-2 in $S3_DIR/eu.log"
if grep '^GET ' "$S3_DIR/eu.log" | grep ' range=bytes' | grep -v ' auth=verified region=eu-central-1 ' >&2; then
    fail "ranged GETs not signed for eu-central-1 (above)"
fi
[ "$(grep -c '^GET .* auth=verified region=eu-central-1 token=no status=20[06] ' "$S3_DIR/eu.log")" -ge 3 ] ||
    fail "too few verified GETs in eu-central-1"

# ------------------------------------------------------------------ 7: wrong secret
info "mount 7: a wrong secret key fails fast with a precise message"
BADSECRET="WrongSecretKey9f8e7d6c5b4a"
M7="$T/mnt7"
AWS_SECRET_ACCESS_KEY="$BADSECRET" AWS_ENDPOINT_URL_S3="$S3_ENDPOINT" \
    lfsfs_mount "$R2" "$M7" --cache-dir "$T/cache7" --log-file "$T/m7.log" || fail "mount 7 failed"
t0=$(date +%s%N)
expect_errno EIO read "$M7/small.bin"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
info "  EIO after $ms ms"
assert_le "$ms" 10000 "milliseconds until EIO with a wrong secret"
grep -Eq 'SOURCE_NOT_ACCESSIBLE|CREDENTIALS_MISSING' "$T/m7.log" || fail "m7.log lacks the code"
grep -q 'rejected' "$T/m7.log" || fail "m7.log does not say the credentials were rejected"
grep -q 'SignatureDoesNotMatch' "$T/m7.log" || fail "m7.log does not name SignatureDoesNotMatch"
if grep -F "$BADSECRET" "$T/m7.log"; then fail "the secret key was logged"; fi
lfsfs_umount "$M7" || fail "umount 7 failed"

# ------------------------------------------------------------------ 8: no credentials
info "mount 8: no credentials anywhere -> CREDENTIALS_MISSING; a public bucket still reads"
s3_proxy_start pub --public-bucket "$PUB" || fail "public proxy failed"
PUBEP="$S3_LAST_PROXY"
mkdir -p "$T/emptyhome"
saved=("$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" "$AWS_CONFIG_FILE" "$AWS_SHARED_CREDENTIALS_FILE" "$HOME")
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE
M8="$T/mnt8"
HOME="$T/emptyhome" AWS_EC2_METADATA_DISABLED=true AWS_ENDPOINT_URL_S3="$PUBEP" \
    lfsfs_mount "$R2" "$M8" --cache-dir "$T/cache8" --log-file "$T/m8.log" || fail "mount 8 failed"
export AWS_ACCESS_KEY_ID="${saved[0]}" AWS_SECRET_ACCESS_KEY="${saved[1]}"
export AWS_CONFIG_FILE="${saved[2]}" AWS_SHARED_CREDENTIALS_FILE="${saved[3]}" HOME="${saved[4]}"
t0=$(date +%s%N)
expect_errno EIO read "$M8/small.bin"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
info "  EIO after $ms ms"
assert_le "$ms" 10000 "milliseconds until EIO without credentials"
grep -q 'CREDENTIALS_MISSING' "$T/m8.log" || fail "m8.log lacks CREDENTIALS_MISSING"
grep -q 'tried: .*env' "$T/m8.log" || fail "m8.log does not list the sources tried"
grep -q 'AWS_ACCESS_KEY_ID' "$T/m8.log" || fail "m8.log does not say what to set"
info "  unsigned requests read the public bucket"
assert_eq "$(sha256_of "$D/pub.bin")" "$(sha256_of "$M8/pub.bin")" "sha256 of pub.bin without credentials"
grep '^GET /lfs-public/' "$S3_DIR/pub.log" | grep -v ' auth=anonymous ' >&2 &&
    fail "requests to the public bucket were not anonymous"
grep -q '^GET /lfs-public/open/pub.bin .* auth=anonymous .* status=206 ' "$S3_DIR/pub.log" ||
    fail "no anonymous ranged GET of pub.bin"
lfsfs_umount "$M8" || fail "umount 8 failed"
exit 0
