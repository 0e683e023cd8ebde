#!/usr/bin/env bash
# t1510-add-url: `lfsfs add-url`, seed 002's two modes, against nginx, the
# fault-injecting origin, file:// and S3 (s3rver behind the SigV4-verifying proxy).
#   - mode A (--sha256 + --size): one HEAD, a canonical pointer that stock git-lfs
#     accepts, .lfs-meta records, .gitattributes; rerun: nothing changes;
#     a wrong --size -> SIZE_MISMATCH, exit 3, nothing written
#   - mode B without --hash (the origin keeps no sha256): ETag-only records, no
#     pointer, the output says how to finish (--hash, or mount + meta sync)
#   - mode B --hash: the object is streamed once (bytes served == its size, in
#     ranged GETs with If-Match, between two HEADs), the pointer equals
#     `git lfs pointer --file`; it upgrades the ETag-only registration; --hash
#     with a wrong --sha256 -> CHECKSUM_MISMATCH, exit 3
#   - the object replaced while it is hashed -> UNSTABLE_OBJECT_SOURCE, exit 3,
#     nothing written (fault origin: the first GET is held back while the file
#     is swapped after the first HEAD)
#   - 404 -> SOURCE_NOT_ACCESSIBLE, exit 4
#   - s3://: mode B --hash and mode A; the HEAD's MD5 is recorded; a wrong secret
#     key (403 from the verifying proxy) -> SOURCE_NOT_ACCESSIBLE, exit 4; no
#     credentials at all -> exit 4 naming CREDENTIALS_MISSING or the refusal
#   - round trip: commit, mount, the bytes read equal the origin's; git status
#     stays clean after rerunning every command
. "$(dirname "$0")/../lib/common.sh"
. "$LFSFS_TESTLIB/faulty.sh"

MiB=$((1024 * 1024))
origin_start "$T/origin" || fail "nginx did not start"
W="$ORIGIN_ROOT"
U="$ORIGIN_HTTP_URL"
gen_file "$W/a.bam" $((3 * MiB + 17))
gen_file "$W/b.vcf" 4321
gen_file "$W/big.bam" $((40 * MiB + 5))

R="$T/repo"
make_repo "$R"
printf 'readme\n' > "$R/README.md"
repo_commit "$R" "initial"
cd "$R"

lf() {
    RC=0
    "$LFSFS_BIN" "$@" >"$T/out" 2>"$T/err" </dev/null || RC=$?
    sed 's/^/    | /' "$T/out" "$T/err" >&2
}
expect_rc() { [ "$RC" = "$1" ] || fail "$2: exit $RC, expected $1"; }
err_has() { grep -q -- "$1" "$T/err" || fail "${2:-stderr} lacks '$1'"; }
out_has() { grep -q -- "$1" "$T/out" || fail "${2:-stdout} lacks '$1'"; }
tree_sum() {
    (cd "$1" && find . -path ./.git -prune -o -type f -print0 | sort -z |
        xargs -0 -r sha256sum | sha256sum | cut -c1-16)
}
meta_get() {
    python3 - "$R/.lfs-meta/metadata.json" "$1" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
v = d.get(sys.argv[2], {}).get(sys.argv[3], "")
print("null" if v is None else v)
PY
}
# check_pointer PATH SRC: PATH is the canonical pointer of SRC and git-lfs takes it
check_pointer() {
    make_pointer "$2" | cmp -s - "$1" || fail "$1 is not the pointer git lfs makes for $2"
    git lfs pointer --check --strict --file "$1" || fail "git lfs rejects $1"
    [ -f ".lfs-meta/sha256/$(sha256_of "$2").json" ] || fail "no sha256 record for $1"
}

# ------------------------------------------------------------------ mode A
info "mode A: --sha256 + --size, one HEAD"
A_SHA=$(sha256_of "$W/a.bam")
before=$(tree_sum "$R")
lf add-url "$U/a.bam" data/a.bam --sha256 "$A_SHA" --size $((3 * MiB + 18))
expect_rc 3 "mode A, wrong --size"
err_has SIZE_MISMATCH
err_has "$U/a.bam"
assert_eq "$before" "$(tree_sum "$R")" "tree after SIZE_MISMATCH"
origin_log_reset
lf add-url "$U/a.bam" data/a.bam --sha256 "$A_SHA" --size $((3 * MiB + 17)) --patient Patient/7
expect_rc 0 "mode A"
assert_eq 1 "$(count_requests /a.bam)" "requests for mode A (one HEAD)"
grep -q '"HEAD /a.bam' "$ORIGIN_LOG" || fail "mode A sent no HEAD"
out_has "sha256 given (mode A)"
check_pointer data/a.bam "$W/a.bam"
assert_eq Patient/7 "$(meta_get data/a.bam patient)" "patient"
assert_eq "$A_SHA" "$(meta_get data/a.bam sha256)" "metadata.json sha256"
assert_eq "data/a.bam: filter: lfs" "$(git check-attr filter -- data/a.bam)" "check-attr"
lf add-url "$U/a.bam" data/a.bam --sha256 "$A_SHA" --size $((3 * MiB + 17)) --patient Patient/7
expect_rc 0 "mode A rerun"
out_has "nothing changed"

info "mode A with --sha256 only: the size comes from the HEAD"
B_SHA=$(sha256_of "$W/b.vcf")
lf add-url "$U/b.vcf" data/b1.vcf --sha256 "sha256:$(echo "$B_SHA" | tr a-f A-F)"
expect_rc 0 "mode A without --size"
check_pointer data/b1.vcf "$W/b.vcf"
assert_eq "data/b1.vcf: filter: lfs" "$(git check-attr filter -- data/b1.vcf)" "check-attr .vcf"

# ------------------------------------------------------------------ mode B
info "mode B without --hash: ETag-only, and the output says how to finish"
lf add-url "$U/big.bam"
expect_rc 0 "mode B, no --hash"
out_has "no sha256"
out_has -- "--hash"
out_has "meta sync"
[ ! -e big.bam ] || fail "a pointer was written without a sha256"
assert_eq "$(origin_etag big.bam)" "$(meta_get big.bam etag)" "etag of big.bam"
assert_eq "" "$(meta_get big.bam sha256)" "sha256 of big.bam"

info "mode B --hash: streamed once between two HEADs, nothing on disk"
origin_log_reset
lf add-url "$U/big.bam" --hash
expect_rc 0 "mode B --hash"
out_has "computed by --hash"
check_pointer big.bam "$W/big.bam"
assert_eq "$(sha256_of "$W/big.bam")" "$(meta_get big.bam sha256)" "metadata.json sha256 after --hash"
assert_eq 2 "$(grep -c '"HEAD /big.bam' "$ORIGIN_LOG")" "HEADs around the hash"
gets=$(grep -c '"GET /big.bam' "$ORIGIN_LOG")
assert_eq 6 "$gets" "ranged GETs of 8 MiB for 40 MiB + 5 bytes"
grep '"GET /big.bam' "$ORIGIN_LOG" | grep -q 'range= ' && fail "a GET without Range"
grep '"GET /big.bam' "$ORIGIN_LOG" | grep -q "if_match=$(origin_etag big.bam) " ||
    fail "GETs did not carry If-Match: $(grep GET "$ORIGIN_LOG" | head -2)"
assert_eq $((40 * MiB + 5)) "$(origin_bytes_served /big.bam)" "bytes served (the object, once)"
lf add-url "$U/big.bam" --hash
expect_rc 0 "mode B --hash rerun"
out_has "nothing changed"

info "--hash with a wrong --sha256: CHECKSUM_MISMATCH"
before=$(tree_sum "$R")
lf add-url "$U/b.vcf" data/b2.vcf --hash --sha256 "$(echo "$B_SHA" | tr 0-9a-f 1-9a-f0)"
expect_rc 3 "wrong --sha256 with --hash"
err_has CHECKSUM_MISMATCH
assert_eq "$before" "$(tree_sum "$R")" "tree after CHECKSUM_MISMATCH"

info "404: SOURCE_NOT_ACCESSIBLE"
lf add-url "$U/nothing-here.bam" --hash
expect_rc 4 "404"
err_has SOURCE_NOT_ACCESSIBLE
err_has "lfsfs doctor"

info "file:// works through the same code"
gen_file "$T/local/f.dat" 123457
lf add-url "file://$T/local/f.dat" local/f.dat --hash
expect_rc 0 "file:// --hash"
check_pointer local/f.dat "$T/local/f.dat"

# ------------------------------------------------------------------ unstable
info "the object is replaced while it is hashed: UNSTABLE_OBJECT_SOURCE"
faulty_start "$T/faulty" || fail "fault origin did not start"
gen_file "$FAULTY_ROOT/moving.bam" $((32 * MiB))
gen_file "$T/moving-new.bam" $((32 * MiB))
# hold the first GET back 3 s; swap the file as soon as the first HEAD is seen
faulty_rules '{"/moving.bam": [{"fault": "slow", "seconds": 3, "method": "GET", "start": 0, "times": 1}]}'
(
    for _ in $(seq 1 200); do
        grep -q '^HEAD /moving.bam' "$FAULTY_LOG" && break
        sleep 0.02
    done
    cp "$T/moving-new.bam" "$FAULTY_ROOT/.moving.tmp" && mv -f "$FAULTY_ROOT/.moving.tmp" "$FAULTY_ROOT/moving.bam"
) &
swapper=$!
before=$(tree_sum "$R")
lf add-url "$FAULTY_URL/moving.bam" data/moving.bam --hash
wait "$swapper" || true
expect_rc 3 "object replaced during --hash"
err_has UNSTABLE_OBJECT_SOURCE
err_has "$FAULTY_URL/moving.bam"
assert_eq "$before" "$(tree_sum "$R")" "tree after UNSTABLE_OBJECT_SOURCE"
[ "$(awk '$1 == "GET" && $4 == 412' "$FAULTY_LOG" | wc -l)" -ge 1 ] ||
    info "note: no GET answered 412 (the second HEAD caught the change)"
info "  once it stops changing, --hash succeeds"
faulty_rules '{}'
lf add-url "$FAULTY_URL/moving.bam" data/moving.bam --hash
expect_rc 0 "--hash on the settled object"
check_pointer data/moving.bam "$T/moving-new.bam"

# ------------------------------------------------------------------ s3
. "$LFSFS_TESTLIB/s3.sh"
if [ -z "$(s3_missing)" ] && s3_start "$T/s3"; then
    info "s3:// (s3rver behind the verifying proxy at $S3_ENDPOINT)"
    export AWS_ENDPOINT_URL_S3="$S3_ENDPOINT"
    s3_mb lab-bucket
    gen_file "$T/s3/s.bam" $((9 * MiB + 3))
    gen_file "$T/s3/t.vcf" 2222
    S_ETAG=$(s3_put lab-bucket "cohort 1/s.bam" "$T/s3/s.bam")
    s3_put lab-bucket t.vcf "$T/s3/t.vcf" >/dev/null
    lf add-url "s3://lab-bucket/cohort 1/s.bam" s3/s.bam --hash --specimen Specimen/S3
    expect_rc 0 "s3 mode B --hash"
    check_pointer s3/s.bam "$T/s3/s.bam"
    assert_eq "$S_ETAG" "$(meta_get s3/s.bam etag)" "s3 etag"
    assert_eq "$(md5sum "$T/s3/s.bam" | cut -c1-32)" "$(meta_get s3/s.bam md5)" "s3 md5 from the ETag"
    grep -v ' auth=verified ' "$S3_PROXY_LOG" >&2 && fail "unverified S3 requests (above)"
    lf add-url "s3://lab-bucket/t.vcf" s3/t.vcf --sha256 "$(sha256_of "$T/s3/t.vcf")" --size 2222
    expect_rc 0 "s3 mode A"
    check_pointer s3/t.vcf "$T/s3/t.vcf"
    lf add-url "s3://lab-bucket/t.vcf" s3/t2.vcf --sha256 "$(sha256_of "$T/s3/t.vcf")" --size 2223
    expect_rc 3 "s3 mode A, wrong size"
    err_has SIZE_MISMATCH
    before=$(tree_sum "$R")
    RC=0
    AWS_SECRET_ACCESS_KEY=wrong-secret-key-123 "$LFSFS_BIN" add-url "s3://lab-bucket/t.vcf" s3/t3.vcf \
        --hash >"$T/out" 2>"$T/err" || RC=$?
    sed 's/^/    | /' "$T/err" >&2
    expect_rc 4 "s3 wrong secret (403)"
    err_has SOURCE_NOT_ACCESSIBLE
    grep -q wrong-secret-key-123 "$T/err" && fail "the secret key was printed"
    grep -q 'auth=rejected' "$S3_PROXY_LOG" || fail "the proxy did not reject the bad signature"
    mkdir -p "$T/emptyhome"
    RC=0
    env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY HOME="$T/emptyhome" \
        AWS_CONFIG_FILE="$T/emptyhome/none" AWS_SHARED_CREDENTIALS_FILE="$T/emptyhome/none" \
        "$LFSFS_BIN" add-url "s3://lab-bucket/t.vcf" s3/t4.vcf >"$T/out" 2>"$T/err" || RC=$?
    sed 's/^/    | /' "$T/err" >&2
    expect_rc 4 "s3 without credentials"
    grep -Eq 'CREDENTIALS_MISSING|SOURCE_NOT_ACCESSIBLE' "$T/err" || fail "no source code named"
    assert_eq "$before" "$(tree_sum "$R")" "tree after the S3 failures"
else
    info "NOTE: s3rver/botocore unavailable ($(s3_missing)); s3:// part skipped"
fi

# ------------------------------------------------------------------ round trip
info "commit, rerun everything: git status clean; mount: bytes equal the origin's"
repo_commit "$R" "add-url"
lf add-url "$U/a.bam" data/a.bam --sha256 "$A_SHA" --size $((3 * MiB + 17)) --patient Patient/7
expect_rc 0 "rerun a.bam"
lf add-url "$U/big.bam" --hash
expect_rc 0 "rerun big.bam"
lf add-url "$U/b.vcf" data/b1.vcf --sha256 "$B_SHA"
expect_rc 0 "rerun b1.vcf"
assert_eq "" "$(git status --porcelain)" "git status after reruns"
M="$T/mnt"
lfsfs_mount "$R" "$M" || fail "mount failed"
assert_eq "$A_SHA" "$(sha256_of "$M/data/a.bam")" "data/a.bam through the mount"
assert_eq "$(sha256_of "$W/big.bam")" "$(sha256_of "$M/big.bam")" "big.bam through the mount"
assert_eq "$B_SHA" "$(sha256_of "$M/data/b1.vcf")" "data/b1.vcf through the mount"
assert_eq "$(sha256_of "$T/local/f.dat")" "$(sha256_of "$M/local/f.dat")" "local/f.dat through the mount"
if [ -n "${AWS_ENDPOINT_URL_S3:-}" ]; then
    assert_eq "$(sha256_of "$T/s3/s.bam")" "$(sha256_of "$M/s3/s.bam")" "s3/s.bam through the mount"
fi
lfsfs_umount "$M" || fail "umount failed"
