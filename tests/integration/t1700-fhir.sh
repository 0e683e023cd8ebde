#!/usr/bin/env bash
# t1700-fhir: `lfsfs fhir` writes one FHIR R4 DocumentReference per object of
# .lfs-meta/metadata.json (NDJSON, sorted by path).
#   - entries with patient/specimen, sha256, etag, md5, sha1, a size above
#     4 GiB, odd characters in paths: tests/lib/fhir_check.py checks every
#     field against the R4 rules and against the input
#   - a rerun, and an input with its keys reordered, give byte-identical output
#   - unusable entries (no remote_url, a path leaving the repository, a
#     patient of the wrong type) are reported and left out; exit 1
#   - malformed metadata.json: line:column in the message, exit 1, the
#     output file untouched and no temporary left behind
#   - --output - (stdout), a missing output directory, usage errors
. "$(dirname "$0")/../lib/common.sh"

fhir_check() { python3 "$LFSFS_TESTLIB/fhir_check.py" "$@"; }
OID=4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393

repo="$T/repo"
make_repo "$repo"
meta="$repo/.lfs-meta/metadata.json"
out="$repo/META/DocumentReference.ndjson"

# metadata.json written by python so the odd paths are escaped correctly;
# argv[2] = "reverse" writes the same entries in reverse order, indented
# differently
write_meta() {
    python3 - "$meta" "${1:-}" "$OID" <<'PY'
import json, sys
path, order, oid = sys.argv[1], sys.argv[2], sys.argv[3]
entries = [
    ("data/foo.vcf", {"remote_url": "s3://my-bucket/data/foo.vcf", "etag": "\"abc123etag\"",
                      "size": 12345678, "patient": "Patient/1234", "specimen": "Specimen/XYZ",
                      "sha256": oid, "project": "ignored-unknown-key"}),
    ("data/big.bam", {"remote_url": "https://data.example.org/big.bam", "size": 5368709120,
                      "sha256": "sha256:" + oid.upper(), "patient": "5678"}),
    ("data/edge.cram", {"remote_url": "gs://bucket/edge.cram", "size": 4294967295,
                        "md5": "0cc175b9c0f1b6a831c399e269772661"}),
    ("data/over.bin", {"remote_url": "az://acct/c/over.bin", "size": "4294967296",
                       "etag": "0x8DBF00000000000"}),
    ("data/empty.txt", {"remote_url": "file:///srv/empty.txt", "size": 0,
                        "description": "an empty file\nsecond line \"quoted\"",
                        "date": "2024-05-01T12:00:00Z"}),
    ("data/sha1.bin", {"remote_url": "s3://b/sha1.bin", "size": 3,
                       "sha1": "a9993e364706816aba3e25717850c26c9cd0d89d"}),
    ("odd/na\u00efve \"quoted\" & <tag> #1 ?x=%41.vcf.gz",
     {"remote_url": "s3://b/na%C3%AFve%20%22quoted%22%20%26%20%3Ctag%3E%20%231%20%3Fx%3D%2541.vcf.gz",
      "size": 100, "patient": "https://fhir.example.org/r4/Patient/77", "specimen": "S-1"}),
    ("odd//./\u65e5\u672c\u8a9e spaced.csv", {"remote_url": "https://h/jp.csv", "size": 5}),
    ("odd/'single' $dollar `tick`.tsv", {"remote_url": "https://h/t.tsv", "size": 6}),
    ("images/scan.DCM", {"remote_url": "https://h/scan.dcm", "size": 7, "patient": "Group/cohort-A"}),
    ("tables/t.parquet", {"remote_url": "https://h/t.parquet", "size": 8}),
    ("reports/r.dat", {"remote_url": "https://h/r.dat", "size": 9,
                       "content_type": "application/vnd.example.report+json"}),
    ("README", {"remote_url": "https://h/README", "size": 10}),
]
if order == "reverse":
    entries.reverse()
with open(path, "w", encoding="utf-8") as f:
    json.dump(dict(entries), f, ensure_ascii=(order == "reverse"),
              indent=None if order == "reverse" else 2)
    f.write("\n")
PY
}

info "all entries valid: exit 0, every field checked"
write_meta
( cd "$repo" && "$LFSFS_BIN" fhir ) 2>"$T/err" || fail "fhir exited $?: $(cat "$T/err")"
[ -f "$out" ] || fail "no $out (the META directory should have been created)"
assert_eq 13 "$(wc -l <"$out")" "one line per object"
fhir_check "$out" "$meta" || fail "fhir_check rejected the output"
grep -q "wrote 13 DocumentReference resources" "$T/err" || fail "no summary: $(cat "$T/err")"
# spot checks of the decisions fhir_check also covers
python3 - "$out" <<'PY' || fail "spot checks failed"
import json, sys
rs = {r["identifier"][0]["value"]: r for r in map(json.loads, open(sys.argv[1], encoding="utf-8"))}
big = rs["data/big.bam"]["content"][0]["attachment"]
assert "size" not in big and "hash" not in big, big
assert {"url": "https://lfsfs.invalid/fhir/StructureDefinition/size", "valueDecimal": 5368709120} in big["extension"], big
assert rs["data/big.bam"]["subject"] == {"reference": "Patient/5678"}
assert rs["data/edge.cram"]["content"][0]["attachment"]["size"] == 4294967295
assert rs["odd/\u65e5\u672c\u8a9e spaced.csv"]["content"][0]["attachment"]["contentType"] == "text/csv"
assert rs["data/sha1.bin"]["content"][0]["attachment"]["hash"] == "qZk+NkcGgWq6PiVxeFDCbJzQ2J0="
assert rs["data/foo.vcf"]["context"] == {"related": [{"reference": "Specimen/XYZ"}]}
assert rs["data/foo.vcf"]["id"] == "d6ce1134-ad06-5292-a5ec-128bd16b375a"
PY
cp "$out" "$T/first.ndjson"

info "a rerun is byte-identical; so is an input with its keys reordered"
"$LFSFS_BIN" fhir --repo "$repo" 2>/dev/null || fail "rerun exited $?"
assert_file_eq "$T/first.ndjson" "$out" "rerun changed the output"
write_meta reverse
"$LFSFS_BIN" fhir --repo "$repo" 2>/dev/null || fail "fhir on the reordered input exited $?"
assert_file_eq "$T/first.ndjson" "$out" "key order of metadata.json changed the output"

info "--output - writes the same bytes to stdout; a new output directory is created"
"$LFSFS_BIN" fhir --repo "$repo" --output - >"$T/stdout.ndjson" 2>/dev/null || fail "--output - exited $?"
assert_file_eq "$T/first.ndjson" "$T/stdout.ndjson" "stdout output differs"
"$LFSFS_BIN" fhir --input "$meta" --output "$T/new/deep/dir/dr.ndjson" 2>/dev/null ||
    fail "--output into a missing directory exited $?"
assert_file_eq "$T/first.ndjson" "$T/new/deep/dir/dr.ndjson" "--input/--output result differs"

info "unusable entries are reported and left out, exit 1"
python3 - "$meta" <<'PY'
import json, sys
m = json.load(open(sys.argv[1], encoding="utf-8"))
m["bad/no-url.vcf"] = {"size": 1, "patient": "Patient/1"}
m["../escape.bin"] = {"remote_url": "s3://b/x", "size": 1}
m["bad/patient.bin"] = {"remote_url": "s3://b/p", "size": 1, "patient": "Observation/1"}
m["odd/./\u65e5\u672c\u8a9e spaced.csv"] = {"remote_url": "https://h/dup.csv", "size": 1}
json.dump(m, open(sys.argv[1], "w", encoding="utf-8"), indent=2)
PY
rc=0; "$LFSFS_BIN" fhir --repo "$repo" 2>"$T/err" || rc=$?
sed 's/^/  /' "$T/err" >&2
assert_eq 1 "$rc" "exit status with skipped entries"
grep -q "skipping 'bad/no-url.vcf': missing or empty \"remote_url\"" "$T/err" || fail "no-url entry not reported"
grep -q "skipping '../escape.bin': '..' component" "$T/err" || fail "escaping path not reported"
grep -q "skipping 'bad/patient.bin': \"patient\"" "$T/err" || fail "bad patient not reported"
grep -q "duplicate path" "$T/err" || fail "duplicate path not reported"
grep -q "4 entries of '.*metadata.json' skipped" "$T/err" || fail "no summary of skipped entries"
assert_file_eq "$T/first.ndjson" "$out" "skipped entries changed the other resources"
fhir_check "$out" "$meta" --skipped bad/no-url.vcf --skipped ../escape.bin \
    --skipped bad/patient.bin --skipped "odd/./日本語 spaced.csv" || fail "fhir_check with skipped entries"

info "malformed metadata.json: line:column, exit 1, output untouched"
before=$(stat -c '%i %Y %s' "$out")
sleep 1.1   # a rewrite would show in the mtime
printf '{\n  "data/a.vcf": {"remote_url": "s3://b/a.vcf", "size": 1},\n  "data/b.vcf": {"remote_url": "s3://b/b.vcf", "size": }\n}\n' >"$meta"
rc=0; "$LFSFS_BIN" fhir --repo "$repo" 2>"$T/err" || rc=$?
sed 's/^/  /' "$T/err" >&2
assert_eq 1 "$rc" "exit status for malformed json"
grep -Eq "metadata\.json:3:[0-9]+': malformed json" "$T/err" || fail "no line:column in: $(cat "$T/err")"
assert_eq "$before" "$(stat -c '%i %Y %s' "$out")" "output inode/mtime/size after a failed run"
assert_file_eq "$T/first.ndjson" "$out" "output changed after a failed run"
assert_eq "DocumentReference.ndjson" "$(ls -A "$repo/META")" "files in META after a failed run"
printf '["not", "an object"]\n' >"$meta"
rc=0; "$LFSFS_BIN" fhir --repo "$repo" 2>"$T/err" || rc=$?
assert_eq 1 "$rc" "exit status for a non-object top level"
grep -q "top level must be a json object" "$T/err" || fail "non-object top level not explained"
assert_file_eq "$T/first.ndjson" "$out" "output changed after a failed run"

info "missing input, input as output, empty input, usage errors"
rc=0; "$LFSFS_BIN" fhir --repo "$T/nowhere" 2>"$T/err" || rc=$?
assert_eq 1 "$rc" "exit status for a missing metadata.json"
grep -q "cannot read '$T/nowhere/.lfs-meta/metadata.json'" "$T/err" || fail "missing input not named: $(cat "$T/err")"
echo '{}' >"$meta"
rc=0; "$LFSFS_BIN" fhir --input "$meta" --output "$meta" 2>"$T/err" || rc=$?
assert_eq 1 "$rc" "exit status for --output = --input"
assert_eq '{}' "$(cat "$meta")" "input overwritten"
"$LFSFS_BIN" fhir --repo "$repo" 2>/dev/null || fail "fhir on {} exited $?"
if [ ! -f "$out" ] || [ -s "$out" ]; then fail "an empty metadata.json should give an empty output file"; fi
rc=0; "$LFSFS_BIN" fhir --bogus >/dev/null 2>&1 || rc=$?
assert_eq 2 "$rc" "exit status for an unknown option"
rc=0; "$LFSFS_BIN" fhir extra-arg >/dev/null 2>&1 || rc=$?
assert_eq 2 "$rc" "exit status for an extra argument"
"$LFSFS_BIN" help fhir | grep -q "usage: lfsfs fhir" || fail "no help for fhir"

exit 0
