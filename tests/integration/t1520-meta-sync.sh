#!/usr/bin/env bash
# t1520-meta-sync: `lfsfs meta sync` writes back what mounts learned.
#   - track-remote (ETag only) -> commit -> mount -> read some files whole and
#     one only partly -> `meta sync --dry-run` while the mount runs (LMDB
#     readers) -> umount -> `meta sync`: for every fully read entry the
#     sha256 goes into metadata.json and .lfs-meta/etag/<etag>.json, and
#     .lfs-meta/sha256/<oid>.json, a canonical pointer (what `git lfs pointer
#     --file` makes, accepted by `git lfs pointer --check --strict`) and a
#     .gitattributes line are written; the partly read entry stays ETag-only
#   - an entry without an ETag (url-keyed cache object) is learned too
#   - the default cache directory is the mount's ($XDG_CACHE_HOME/lfsfs)
#   - an ordinary file in the way fails that entry only (exit 1), the rest is
#     written; reruns change nothing; git status stays clean after commit
#   - a malformed metadata.json is refused with line:col, left byte-identical
#   - the pointers written serve reads through a fresh mount (verified sha256)
#   - az:// (Azurite): track-remote -> mount read -> meta sync -> pointer
. "$(dirname "$0")/../lib/common.sh"

MiB=$((1024 * 1024))
origin_start "$T/origin" || fail "nginx did not start"
W="$ORIGIN_ROOT"
U="$ORIGIN_HTTP_URL"
gen_file "$W/x.vcf" $((5 * MiB + 3))
gen_file "$W/y.bam" $((2 * MiB))
gen_file "$W/z.vcf" $((3 * MiB))
gen_file "$W/u.vcf" 70000

R="$T/repo"
make_repo "$R"
printf 'readme\n' > "$R/README.md"
cd "$R"

lf() {
    RC=0
    "$LFSFS_BIN" "$@" >"$T/out" 2>"$T/err" </dev/null || RC=$?
    sed 's/^/    | /' "$T/out" "$T/err" >&2
}
expect_rc() { [ "$RC" = "$1" ] || fail "$2: exit $RC, expected $1"; }
err_has() { grep -q -- "$1" "$T/err" || fail "${2:-stderr} lacks '$1'"; }
out_has() { grep -q -- "$1" "$T/out" || fail "${2:-stdout} lacks '$1'"; }
meta_get() {
    python3 - "$R/.lfs-meta/metadata.json" "$1" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
v = d.get(sys.argv[2], {}).get(sys.argv[3], "")
print("null" if v is None else v)
PY
}
json_field() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1])).get(sys.argv[2]); print("null" if v is None else v)' "$1" "$2"; }
etag_file() {
    python3 -c 'import sys,re; e=sys.argv[1]; e=e[2:] if e.startswith("W/") else e
e=e[1:-1] if len(e)>=2 and e[0]==e[-1]=="\"" else e
print("".join(c if re.match(r"[A-Za-z0-9._-]", c) else "".join("%%%02X" % b for b in c.encode()) for c in e))' "$1"
}
check_pointer() {
    make_pointer "$2" | cmp -s - "$1" || fail "$1 is not the pointer git lfs makes for $2"
    git lfs pointer --check --strict --file "$1" || fail "git lfs rejects $1"
    [ -f ".lfs-meta/sha256/$(sha256_of "$2").json" ] || fail "no sha256 record for $1"
}

# the mount's default cache directory, so meta sync finds it without --cache-dir
export XDG_CACHE_HOME="$T/xdg"
LFSFS_CACHE="$XDG_CACHE_HOME/lfsfs"

info "register by ETag only, commit"
lf track-remote "$U/x.vcf" data/x.vcf --patient Patient/X
expect_rc 0 "track-remote x.vcf"
lf track-remote "$U/y.bam" data/y.bam
expect_rc 0 "track-remote y.bam"
lf track-remote "$U/z.vcf" data/z.vcf
expect_rc 0 "track-remote z.vcf"
repo_add_meta "$R" "data/u v.vcf" "$U/u.vcf" 70000   # no ETag: a url-keyed object
repo_commit "$R" "registered by etag"
for p in data/x.vcf data/y.bam data/z.vcf "data/u v.vcf"; do
    [ ! -e "$p" ] || fail "$p exists before meta sync"
done

info "meta sync before any read: nothing to learn"
lf meta sync
expect_rc 0 "meta sync, no cache yet"
assert_eq "" "$(git status --porcelain)" "git status after an empty meta sync"

info "mount, read x, y and 'u v' whole, z only partly"
M="$T/mnt"
lfsfs_mount "$R" "$M" || fail "mount failed"
assert_eq "$(sha256_of "$W/x.vcf")" "$(sha256_of "$M/data/x.vcf")" "x.vcf through the mount"
assert_eq "$(sha256_of "$W/y.bam")" "$(sha256_of "$M/data/y.bam")" "y.bam through the mount"
assert_eq "$(sha256_of "$W/u.vcf")" "$(sha256_of "$M/data/u v.vcf")" "'u v.vcf' through the mount"
head -c 1000 "$M/data/z.vcf" | cmp -s - <(head -c 1000 "$W/z.vcf") || fail "z.vcf head differs"
assert_eq verified "$(xattr_get "$M/data/x.vcf" user.lfsfs.state)" "x.vcf state"

info "meta sync --dry-run while the mount runs"
learned=0
for _ in $(seq 1 50); do   # the flusher commits within ~0.5 s
    lf meta sync --dry-run
    expect_rc 0 "meta sync --dry-run (mounted)"
    learned=$(grep -c '^would write' "$T/out" || true)
    [ "$learned" = 3 ] && break
    sleep 0.2
done
assert_eq 3 "$learned" "entries learnable while mounted"
out_has "would write 'data/x.vcf': sha256 $(sha256_of "$W/x.vcf")"
[ ! -e data/x.vcf ] || fail "--dry-run wrote a pointer"
lfsfs_umount "$M" || fail "umount failed"

info "an ordinary file in the way fails that entry only"
mkdir -p data
printf 'in the way\n' > "data/u v.vcf"
lf meta sync
expect_rc 1 "meta sync with an ordinary file in the way"
err_has "'data/u v.vcf'"
err_has "ordinary file"
out_has "learned 'data/x.vcf'"
out_has "learned 'data/y.bam'"
assert_eq "in the way" "$(cat "data/u v.vcf")" "the ordinary file was kept"
rm "data/u v.vcf"

info "meta sync: pointers and records with the right sha256"
lf meta sync
expect_rc 0 "meta sync"
out_has "learned 'data/u v.vcf'"
out_has "1 still unknown"
for n in x.vcf y.bam; do
    check_pointer "data/$n" "$W/$n"
    sha=$(sha256_of "$W/$n")
    assert_eq "$sha" "$(meta_get "data/$n" sha256)" "metadata.json sha256 of $n"
    er=".lfs-meta/etag/$(etag_file "$(meta_get "data/$n" etag)").json"
    assert_eq "$sha" "$(json_field "$er" sha256)" "etag record sha256 of $n"
    assert_eq "$U/$n" "$(json_field ".lfs-meta/sha256/$sha.json" url)" "sha256 record url of $n"
    assert_eq "data/$n: filter: lfs" "$(git check-attr filter -- "data/$n")" "check-attr $n"
done
check_pointer "data/u v.vcf" "$W/u.vcf"
assert_eq Patient/X "$(meta_get data/x.vcf patient)" "patient kept"
[ ! -e data/z.vcf ] || fail "a pointer for the partly read z.vcf"
assert_eq "" "$(meta_get data/z.vcf sha256)" "z.vcf sha256"
assert_eq null "$(json_field ".lfs-meta/etag/$(etag_file "$(meta_get data/z.vcf etag)").json" sha256)" \
    "z.vcf etag record"

info "rerun: nothing changes; commit; rerun: git status clean"
lf meta sync
expect_rc 0 "meta sync rerun"
out_has "0 written"
repo_commit "$R" "meta sync"
lf meta sync
expect_rc 0 "meta sync after commit"
lf track-remote "$U/x.vcf" data/x.vcf --patient Patient/X
expect_rc 0 "track-remote rerun after meta sync"
out_has "nothing changed"
assert_eq "" "$(git status --porcelain)" "git status after reruns"

info "a malformed metadata.json is refused and left byte-identical"
cp .lfs-meta/metadata.json "$T/meta.good"
printf '{"data/x.vcf": {"remote_url": "%s", "size": 5}\n' "$U/x.vcf" > .lfs-meta/metadata.json
cp .lfs-meta/metadata.json "$T/meta.bad"
lf meta sync
expect_rc 1 "malformed metadata.json"
err_has ".lfs-meta/metadata.json:2:1"
cmp -s "$T/meta.bad" .lfs-meta/metadata.json || fail "malformed metadata.json was modified"
cp "$T/meta.good" .lfs-meta/metadata.json
assert_eq "" "$(git status --porcelain)" "git status after restoring"

info "the written pointers serve a fresh mount"
M2="$T/mnt2"
lfsfs_mount "$R" "$M2" --cache-dir "$T/cache2" || fail "mount 2 failed"
assert_eq "$(sha256_of "$W/x.vcf")" "$(xattr_oid "$M2/data/x.vcf")" "oid of data/x.vcf"
assert_eq "$(sha256_of "$W/x.vcf")" "$(sha256_of "$M2/data/x.vcf")" "x.vcf through mount 2"
assert_eq "$(sha256_of "$W/u.vcf")" "$(sha256_of "$M2/data/u v.vcf")" "'u v.vcf' through mount 2"
assert_eq verified "$(xattr_get "$M2/data/x.vcf" user.lfsfs.state)" "x.vcf verified in mount 2"
lfsfs_umount "$M2" || fail "umount 2 failed"

# ------------------------------------------------------------------ az://
. "$LFSFS_TESTLIB/azure.sh"
if why=$(azure_available) && azure_start "$T/azurite"; then
    info "az:// (Azurite at $AZURITE_ENDPOINT): track-remote, mount read, meta sync"
    unset AZURE_STORAGE_ACCOUNT AZURE_STORAGE_KEY AZURE_STORAGE_SAS_TOKEN AZURE_CLIENT_ID
    export AZURE_STORAGE_CONNECTION_STRING="$AZURITE_CONNSTR"
    export LFSFS_AZURE_IMDS_ENDPOINT="http://127.0.0.1:$(_azure_free_port)"
    azure_container lab || fail "cannot create container lab"
    gen_file "$T/az/w.bam" $((3 * MiB + 1))
    azure_put lab "run 1/w.bam" "$T/az/w.bam" >/dev/null || fail "upload to azurite failed"
    lf track-remote "az://lab/run 1/w.bam" az/w.bam --specimen Specimen/AZ
    expect_rc 0 "track-remote az://"
    assert_eq "$(azure_etag lab "run 1/w.bam")" "$(meta_get az/w.bam etag)" "az:// etag"
    assert_eq $((3 * MiB + 1)) "$(meta_get az/w.bam size)" "az:// size"
    lf track-remote "az://lab/missing.bam" az/missing.bam
    expect_rc 4 "az:// 404"
    err_has SOURCE_NOT_ACCESSIBLE
    repo_commit "$R" "azure"
    M3="$T/mnt3"
    lfsfs_mount "$R" "$M3" --cache-dir "$T/cache3" || fail "mount 3 failed"
    assert_eq "$(sha256_of "$T/az/w.bam")" "$(sha256_of "$M3/az/w.bam")" "az:// through the mount"
    lfsfs_umount "$M3" || fail "umount 3 failed"
    lf meta sync --cache-dir "$T/cache3"
    expect_rc 0 "meta sync (azure)"
    out_has "learned 'az/w.bam'"
    check_pointer az/w.bam "$T/az/w.bam"
    assert_eq "az://lab/run 1/w.bam" "$(json_field ".lfs-meta/sha256/$(sha256_of "$T/az/w.bam").json" url)" \
        "az:// sha256 record url"
    repo_commit "$R" "azure pointer"
    M4="$T/mnt4"
    lfsfs_mount "$R" "$M4" --cache-dir "$T/cache4" || fail "mount 4 failed"
    assert_eq "$(sha256_of "$T/az/w.bam")" "$(sha256_of "$M4/az/w.bam")" "az:// pointer through a fresh mount"
    lfsfs_umount "$M4" || fail "umount 4 failed"
else
    info "NOTE: azurite unavailable (${why:-did not start}); az:// part skipped"
fi
