#!/usr/bin/env bash
# t1500-track-remote: `lfsfs track-remote` registers objects by URL without copying.
#   - one URL, no sha256 known: metadata.json (path-keyed, remote_url/etag/size,
#     patient/specimen/--meta) and .lfs-meta/etag/<etag>.json with sha256 null;
#     no pointer (never a placeholder) and the output says how to get one
#   - with --sha256: a canonical pointer (byte-identical to `git lfs pointer`,
#     accepted by `git lfs pointer --check --strict`), .lfs-meta/sha256/<oid>.json,
#     a .gitattributes line only where no pattern covers the path (escaped for
#     spaces; `git check-attr` agrees); PATH defaults to the URL's basename,
#     relative to the current directory
#   - --etag + --size are trusted: no request reaches the origin
#   - reruns change nothing ("nothing changed"; git status clean after commit)
#   - errors with their code and exit status: wrong --size -> SIZE_MISMATCH (3),
#     404 -> SOURCE_NOT_ACCESSIBLE (4), a stale --etag and an origin object that
#     changed since registration -> IMMUTABILITY_VIOLATION (3), an ordinary file
#     at PATH, a path outside the repository or in .git -> refused (1); nothing
#     is written by a failed command
#   - a malformed metadata.json is refused with file:line:col before any network
#     request and left byte-identical; unknown keys survive an update
#   - round trip: commit, mount, the bytes read equal the origin's
#   - --batch: CSV with a header and extra columns, bad lines in the middle
#     (reported by line number, the others registered, exit 4), TSV, NDJSON
#   - --batch of 10,000 URLs against nginx: timed, must take < 60 s; a rerun
#     registers nothing
#   - gs:// through the GCS backend (tests/lib/gcs_server.py)
. "$(dirname "$0")/../lib/common.sh"

origin_start "$T/origin" || fail "nginx did not start"
W="$ORIGIN_ROOT"
U="$ORIGIN_HTTP_URL"
gen_file "$W/a.vcf" 10000
gen_file "$W/b.bin" $((3 * 1024 * 1024))
gen_file "$W/dir one/c d.vcf" 1500
gen_file "$W/e.vcf" 777

R="$T/repo"
make_repo "$R"
printf 'readme\n' > "$R/README.md"
repo_commit "$R" "initial"

# lf ARGS...: run lfsfs in the current directory; RC, $T/out, $T/err
lf() {
    RC=0
    "$LFSFS_BIN" "$@" >"$T/out" 2>"$T/err" </dev/null || RC=$?
    sed 's/^/    | /' "$T/out" "$T/err" >&2
}
expect_rc() { [ "$RC" = "$1" ] || fail "$2: exit $RC, expected $1"; }
err_has() { grep -q -- "$1" "$T/err" || fail "${2:-stderr} lacks '$1'"; }
out_has() { grep -q -- "$1" "$T/out" || fail "${2:-stdout} lacks '$1'"; }
# tree_sum DIR: one hash over every file's path, mode and bytes (not .git)
tree_sum() {
    (cd "$1" && find . -path ./.git -prune -o -type f -print0 | sort -z |
        xargs -0 -r sha256sum | sha256sum | cut -c1-16)
}
# meta_get PATH KEY: a field of a metadata.json entry ("" if absent)
meta_get() {
    python3 - "$R/.lfs-meta/metadata.json" "$1" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
v = d.get(sys.argv[2], {}).get(sys.argv[3], "")
print("null" if v is None else v)
PY
}
json_field() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1])).get(sys.argv[2]); print("null" if v is None else v)' "$1" "$2"; }
etag_file() { # the record file name for an ETag: quotes stripped, [A-Za-z0-9._-] kept
    python3 -c 'import sys,re; e=sys.argv[1]; e=e[2:] if e.startswith("W/") else e
e=e[1:-1] if len(e)>=2 and e[0]==e[-1]=="\"" else e
print("".join(c if re.match(r"[A-Za-z0-9._-]", c) else "".join("%%%02X" % b for b in c.encode()) for c in e))' "$1"
}

cd "$R"
A_ETAG=$(origin_etag a.vcf)

# ------------------------------------------------------------------ one URL, no sha256
info "track-remote URL PATH: ETag-only registration with patient/specimen/--meta"
lf track-remote "$U/a.vcf" data/a.vcf --patient Patient/1234 --specimen Specimen/XYZ --meta assay=wgs
expect_rc 0 "track-remote a.vcf"
out_has "registered 'data/a.vcf'"
out_has "no sha256 yet"
out_has "lfsfs meta sync"
out_has "git add .lfs-meta"
assert_eq "$U/a.vcf" "$(meta_get data/a.vcf remote_url)" "remote_url"
assert_eq "$A_ETAG" "$(meta_get data/a.vcf etag)" "etag"
assert_eq 10000 "$(meta_get data/a.vcf size)" "size"
assert_eq Patient/1234 "$(meta_get data/a.vcf patient)" "patient"
assert_eq Specimen/XYZ "$(meta_get data/a.vcf specimen)" "specimen"
assert_eq wgs "$(meta_get data/a.vcf assay)" "--meta assay"
assert_eq "" "$(meta_get data/a.vcf sha256)" "no sha256"
ER=".lfs-meta/etag/$(etag_file "$A_ETAG").json"
[ -f "$ER" ] || fail "no etag record $ER"
assert_eq null "$(json_field "$ER" sha256)" "etag record sha256"
assert_eq "$U/a.vcf" "$(json_field "$ER" url)" "etag record url"
assert_eq "$A_ETAG" "$(json_field "$ER" etag)" "etag record etag"
[ ! -e data/a.vcf ] || fail "a pointer (or anything) was written for an object without sha256"
[ ! -e .lfs-meta/sha256 ] || [ -z "$(ls .lfs-meta/sha256)" ] || fail "a sha256 record without a sha256"
grep -q a.vcf .gitattributes && fail ".gitattributes names an object without a pointer"
# sorted keys, 2-space indent
python3 - .lfs-meta/metadata.json <<'PY' || fail "metadata.json is not sorted/indented as json.dump(indent=2, sort_keys=True)"
import json, sys
text = open(sys.argv[1]).read()
sys.exit(text != json.dumps(json.load(open(sys.argv[1])), indent=2, sort_keys=True, ensure_ascii=False) + "\n")
PY

info "rerun: nothing changes"
before=$(tree_sum "$R")
lf track-remote "$U/a.vcf" data/a.vcf --patient Patient/1234 --specimen Specimen/XYZ --meta assay=wgs
expect_rc 0 "rerun"
out_has "nothing changed"
assert_eq "$before" "$(tree_sum "$R")" "tree after a rerun"

# ------------------------------------------------------------------ with --sha256
info "track-remote --sha256 from a subdirectory: PATH defaults to the basename there"
B_SHA=$(sha256_of "$W/b.bin")
mkdir -p data
(cd data && "$LFSFS_BIN" track-remote "$U/b.bin" --sha256 "$B_SHA" >"$T/out" 2>"$T/err") ||
    fail "track-remote b.bin --sha256: $(cat "$T/err")"
grep -q "pointer   data/b.bin" "$T/out" || fail "no pointer reported: $(cat "$T/out")"
make_pointer "$W/b.bin" | cmp -s - data/b.bin || fail "pointer differs from git lfs pointer's"
git lfs pointer --check --strict --file data/b.bin || fail "git lfs rejects the pointer"
[ -f ".lfs-meta/sha256/$B_SHA.json" ] || fail "no sha256 record"
assert_eq "$U/b.bin" "$(json_field ".lfs-meta/sha256/$B_SHA.json" url)" "sha256 record url"
assert_eq "$(origin_etag b.bin)" "$(json_field ".lfs-meta/sha256/$B_SHA.json" etag)" "sha256 record etag"
assert_eq "$B_SHA" "$(json_field ".lfs-meta/etag/$(etag_file "$(origin_etag b.bin)").json" sha256)" \
    "etag record sha256"
assert_eq "$(head -n 4 .gitattributes | wc -l)" "$(wc -l < .gitattributes)" \
    ".gitattributes grew although *.bin covers data/b.bin"
assert_eq "data/b.bin: filter: lfs" "$(git check-attr filter -- data/b.bin)" "check-attr b.bin"

info "a path with spaces gets an escaped .gitattributes line (once)"
C_SHA=$(sha256_of "$W/dir one/c d.vcf")
lf track-remote "$U/dir%20one/c%20d.vcf" "docs/c d.vcf" --sha256 "$C_SHA"
expect_rc 0 "track-remote 'c d.vcf'"
git lfs pointer --check --strict --file "docs/c d.vcf" || fail "git lfs rejects docs/c d.vcf"
assert_eq "docs/c d.vcf: filter: lfs" "$(git check-attr filter -- "docs/c d.vcf")" "check-attr c d.vcf"
lf track-remote "$U/dir%20one/c%20d.vcf" "docs/c d.vcf" --sha256 "$C_SHA"
expect_rc 0 "rerun c d.vcf"
out_has "nothing changed"
assert_eq 1 "$(grep -c 'c\[\[:space:\]\]d.vcf' .gitattributes)" ".gitattributes lines for c d.vcf"

info "--etag and --size are trusted: no request reaches the origin"
origin_log_reset
lf track-remote "$U/e.vcf" trusted/e.vcf --etag "$(origin_etag e.vcf)" --size 777
n=$(count_requests)
expect_rc 0 "trusted track-remote"
assert_eq 1 "$n" "requests (only origin_etag's own HEAD)"
assert_eq 777 "$(meta_get trusted/e.vcf size)" "trusted size"
# an ETag given without quotes is stored as HTTP sends it
lf track-remote "$U/e.vcf" trusted/e2.vcf --etag "$(origin_etag e.vcf | tr -d '"')" --size 777
expect_rc 0 "unquoted --etag"
assert_eq "$(origin_etag e.vcf)" "$(meta_get trusted/e2.vcf etag)" "unquoted --etag normalized"

# ------------------------------------------------------------------ errors
info "errors: codes, exit statuses, nothing written"
before=$(tree_sum "$R")
lf track-remote "$U/b.bin" data/wrong.bin --size 12345
expect_rc 3 "wrong --size"
err_has SIZE_MISMATCH
err_has "$U/b.bin"
lf track-remote "$U/no-such.vcf"
expect_rc 4 "404"
err_has SOURCE_NOT_ACCESSIBLE
err_has "HTTP 404"
lf track-remote "$U/a.vcf" data/stale.vcf --etag '"not-the-etag"'
expect_rc 3 "stale --etag"
err_has IMMUTABILITY_VIOLATION
lf track-remote "$U/a.vcf" README.md
expect_rc 1 "ordinary file at PATH"
err_has "ordinary file"
err_has "--force"
lf track-remote "$U/a.vcf" README.md --force
expect_rc 1 "ordinary file, --force, no sha256"
lf track-remote "$U/a.vcf" ../outside.vcf
expect_rc 1 "path outside the repository"
err_has "outside the repository"
lf track-remote "$U/a.vcf" .git/x.vcf
expect_rc 1 "path in .git"
lf track-remote "$U/a.vcf" .lfs-meta/x.vcf
expect_rc 1 "path in .lfs-meta"
lf track-remote "ftp://example.org/x"
expect_rc 2 "unsupported scheme"
assert_eq "$before" "$(tree_sum "$R")" "tree after failed commands"
[ -f "$T/outside.vcf" ] && fail "wrote outside the repository"

info "commit; every rerun leaves git status clean"
repo_commit "$R" "registered"
lf track-remote "$U/a.vcf" data/a.vcf --patient Patient/1234 --specimen Specimen/XYZ --meta assay=wgs
expect_rc 0 "rerun a.vcf"
lf track-remote "$U/b.bin" data/b.bin --sha256 "$B_SHA"
expect_rc 0 "rerun b.bin"
out_has "nothing changed"
lf track-remote "$U/e.vcf" trusted/e.vcf --etag "$(origin_etag e.vcf)" --size 777
expect_rc 0 "rerun trusted"
assert_eq "" "$(git status --porcelain)" "git status after reruns"

# ------------------------------------------------------------------ unknown keys, malformed
info "unknown keys survive an update"
python3 - .lfs-meta/metadata.json <<'PY'
import json, sys
p = sys.argv[1]
d = json.load(open(p))
d["data/a.vcf"]["x-lab"] = {"run": [1, 2.5, "three"], "ok": True}
d["zz-note"] = "kept as is"
json.dump(d, open(p, "w"), indent=4)
PY
lf track-remote "$U/e.vcf" more/e.vcf
expect_rc 0 "track-remote with unknown keys present"
python3 - .lfs-meta/metadata.json <<'PY' || fail "unknown keys lost: $(cat .lfs-meta/metadata.json | head -30)"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["data/a.vcf"]["x-lab"] == {"run": [1, 2.5, "three"], "ok": True}
assert d["zz-note"] == "kept as is"
assert d["more/e.vcf"]["size"] == 777
PY

info "a malformed metadata.json is refused with line:col, before any request, byte-identical"
cp .lfs-meta/metadata.json "$T/meta.good"
printf '{\n  "data/a.vcf": {"remote_url": "x", "size": 1},\n  "oops": {,}\n}\n' > .lfs-meta/metadata.json
cp .lfs-meta/metadata.json "$T/meta.bad"
origin_log_reset
lf track-remote "$U/e.vcf" data/x.vcf
expect_rc 1 "malformed metadata.json"
err_has ".lfs-meta/metadata.json:3:"
err_has "malformed json"
cmp -s "$T/meta.bad" .lfs-meta/metadata.json || fail "malformed metadata.json was modified"
assert_eq 0 "$(count_requests)" "requests made despite a malformed metadata.json"
lf track-remote --batch /dev/null
expect_rc 1 "batch with malformed metadata.json"
cmp -s "$T/meta.bad" .lfs-meta/metadata.json || fail "malformed metadata.json was modified (batch)"
cp "$T/meta.good" .lfs-meta/metadata.json

info "the origin object changed since registration: IMMUTABILITY_VIOLATION, then --force"
repo_commit "$R" "more"
gen_file "$T/a2.vcf" 10000
origin_replace a.vcf "$T/a2.vcf"
lf track-remote "$U/a.vcf" data/a.vcf
expect_rc 3 "changed origin"
err_has IMMUTABILITY_VIOLATION
err_has "--force"
assert_eq "" "$(git status --porcelain)" "git status after a refused update"
lf track-remote "$U/a.vcf" data/a.vcf --force
expect_rc 0 "changed origin, --force"
assert_eq "$(origin_etag a.vcf)" "$(meta_get data/a.vcf etag)" "etag after --force"
assert_eq Patient/1234 "$(meta_get data/a.vcf patient)" "patient kept by --force"
repo_commit "$R" "a.vcf changed"

# ------------------------------------------------------------------ round trip
info "round trip: mount, the bytes read equal the origin's"
M="$T/mnt"
lfsfs_mount "$R" "$M" || fail "mount failed"
assert_eq "$(sha256_of "$W/a.vcf")" "$(sha256_of "$M/data/a.vcf")" "data/a.vcf (metadata-only) through the mount"
assert_eq "$(sha256_of "$W/b.bin")" "$(sha256_of "$M/data/b.bin")" "data/b.bin (pointer) through the mount"
assert_eq "$C_SHA" "$(sha256_of "$M/docs/c d.vcf")" "docs/c d.vcf through the mount"
assert_eq "$(sha256_of "$W/e.vcf")" "$(sha256_of "$M/trusted/e.vcf")" "trusted/e.vcf through the mount"
lfsfs_umount "$M" || fail "umount failed"

# ------------------------------------------------------------------ batch
info "--batch CSV with a header, extra columns and bad lines in the middle"
for i in 1 2 3 4 5; do gen_file "$W/batch/f$i.vcf" $((500 + i)); done
cat > "$T/m.csv" <<EOF
# a manifest of bucket objects
url,path,patient,lab,size
$U/batch/f1.vcf,batch/f1.vcf,Patient/1,wet,
$U/batch/missing.vcf,batch/missing.vcf,Patient/2,dry,
"$U/batch/f2.vcf","batch/f2, quoted.vcf",,dry,502
$U/batch/f3.vcf,batch/f3.vcf,Patient/3,,999

$U/batch/f4.vcf,batch/f4.vcf,Patient/4,wet,not-a-size
$U/batch/f5.vcf,,Patient/5,,
EOF
lf track-remote --batch "$T/m.csv"
expect_rc 4 "batch with a 404 line (worst: source)"
out_has "3 registered, 0 unchanged, 3 failed"
err_has "line 4: SOURCE_NOT_ACCESSIBLE"
err_has "line 6: SIZE_MISMATCH"
err_has "line 8: size wants a number"
assert_eq Patient/1 "$(meta_get batch/f1.vcf patient)" "batch f1 patient"
assert_eq wet "$(meta_get batch/f1.vcf lab)" "batch f1 extra column"
assert_eq 502 "$(meta_get "batch/f2, quoted.vcf" size)" "batch quoted path"
assert_eq 505 "$(meta_get f5.vcf size)" "batch default path (basename, at the top)"
assert_eq "" "$(meta_get batch/missing.vcf size)" "the 404 line registered nothing"
assert_eq "" "$(meta_get batch/f3.vcf size)" "the size-mismatch line registered nothing"
lf track-remote --batch "$T/m.csv"
expect_rc 4 "batch rerun"
out_has "0 registered, 3 unchanged, 3 failed"

info "--batch TSV (no header) and NDJSON"
printf '%s\t%s\n' "$U/batch/f3.vcf" tsv/f3.vcf "$U/batch/f4.vcf" tsv/f4.vcf > "$T/m.tsv"
lf track-remote --batch "$T/m.tsv"
expect_rc 0 "TSV batch"
out_has "2 registered"
F1_SHA=$(sha256_of "$W/batch/f1.vcf")
{
    printf '{"url": "%s", "path": "nd/f1.vcf", "sha256": "%s", "specimen": "Specimen/9"}\n' "$U/batch/f1.vcf" "$F1_SHA"
    printf '{"url": "%s", "path": "nd/f2.vcf", "size": 502, "etag": %s}\n' "$U/batch/f2.vcf" \
        "$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$(origin_etag batch/f2.vcf)")"
} > "$T/m.ndjson"
lf track-remote --batch "$T/m.ndjson"
expect_rc 0 "NDJSON batch"
git lfs pointer --check --strict --file nd/f1.vcf || fail "git lfs rejects nd/f1.vcf"
assert_eq Specimen/9 "$(meta_get nd/f1.vcf specimen)" "NDJSON specimen"
repo_commit "$R" "batches"

# ------------------------------------------------------------------ 10k
info "--batch of 10,000 URLs against nginx"
python3 - "$W/many" "$U/many" "$T/many.tsv" <<'PY'
import os, sys
d, base, out = sys.argv[1:4]
os.makedirs(d, exist_ok=True)
with open(out, "w") as m:
    m.write("url\tpath\tcohort\n")
    for i in range(10000):
        name = "o%05d.dat" % i
        with open(os.path.join(d, name), "wb") as f:
            f.write(b"%d\n" % i * 3 + b"x" * i)   # distinct sizes: nginx ETags differ
        m.write("%s/%s\tmany/%s/%s\tc%d\n" % (base, name, name[:3], name, i % 7))
PY
t0=$(date +%s.%N)
RC=0
"$LFSFS_BIN" track-remote --batch "$T/many.tsv" >"$T/out" 2>"$T/err" || RC=$?
t1=$(date +%s.%N)
secs=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
cat "$T/out" >&2
expect_rc 0 "10k batch"
out_has "10000 registered, 0 unchanged, 0 failed"
info "10,000 URLs registered in $secs s"
echo "t1500: track-remote --batch of 10000 URLs against nginx: $secs s" >&2
python3 -c "import sys; sys.exit(not $secs < 60)" || fail "10k batch took $secs s (limit 60 s)"
n=$(python3 -c 'import json,sys; print(sum(1 for k in json.load(open(sys.argv[1])) if k.startswith("many/")))' .lfs-meta/metadata.json)
assert_eq 10000 "$n" "metadata.json entries under many/"
[ "$(ls .lfs-meta/etag | wc -l)" -ge 10000 ] || fail "fewer than 10000 etag records"
assert_eq c3 "$(meta_get many/o00/o00010.dat cohort)" "extra column in the 10k batch"
t0=$(date +%s.%N)
lf track-remote --batch "$T/many.tsv"
expect_rc 0 "10k batch rerun"
out_has "0 registered, 10000 unchanged, 0 failed"
info "rerun of the 10k batch: $(python3 -c "import time; print(f'{time.time() - $t0:.2f}')") s"
repo_commit "$R" "10k"
lf track-remote --batch "$T/many.tsv"
assert_eq "" "$(git status --porcelain)" "git status after the 10k rerun"

# ------------------------------------------------------------------ gs://
# shellcheck source=../lib/gcs.sh
. "$LFSFS_TESTLIB/gcs.sh"
if gcs_start "$T/gcs"; then
    info "gs:// through the GCS backend (test server at $GCS_URL)"
    gen_file "$T/g.bin" 300000
    gcs_put gbucket "cohort 1/g.bin" "$T/g.bin"
    export STORAGE_EMULATOR_HOST="$GCS_HOST" GOOGLE_APPLICATION_CREDENTIALS="$GCS_SA_JSON"
    export CLOUDSDK_CONFIG="$T/gcloud-empty"
    mkdir -p "$CLOUDSDK_CONFIG"
    lf track-remote "gs://gbucket/cohort 1/g.bin" gcs/g.bin --patient Patient/G
    expect_rc 0 "track-remote gs://"
    assert_eq 300000 "$(meta_get gcs/g.bin size)" "gs:// size"
    [ -n "$(meta_get gcs/g.bin etag)" ] || fail "gs:// registered without an etag"
    assert_eq "$(md5sum "$T/g.bin" | cut -c1-32)" "$(meta_get gcs/g.bin md5)" "gs:// md5 from md5Hash"
    lf track-remote "gs://gbucket/nope.bin" gcs/nope.bin
    expect_rc 4 "gs:// 404"
    err_has SOURCE_NOT_ACCESSIBLE
    repo_commit "$R" "gcs"
    M="$T/mnt-gcs"
    lfsfs_mount "$R" "$M" || fail "mount (gcs) failed"
    assert_eq "$(sha256_of "$T/g.bin")" "$(sha256_of "$M/gcs/g.bin")" "gs:// object through the mount"
    lfsfs_umount "$M" || fail "umount (gcs) failed"
    gcs_stop || true
else
    info "NOTE: GCS test server unavailable; gs:// part skipped"
fi
