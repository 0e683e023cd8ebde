#!/usr/bin/env bash
# t1610-ls: `lfsfs ls` lists every tracked object with its cache state.
#   - pointers (http and file:// records) and metadata-only entries (with an
#     ETag, with only a URL) with the right sizes, oids, ETags and redacted
#     URLs; an ordinary file and a metadata entry it shadows are not listed;
#     sorted by path; an aligned table with human sizes; --json agrees
#   - a cache dir that does not exist: everything remote, nothing created
#   - states follow a running mount in the same cache dir: remote ->
#     partial (one range read) -> verified (read fully), for a pointer and
#     for an etag-keyed metadata entry (whose learned sha256 is shown);
#     the default cache dir is the mount's ($XDG_CACHE_HOME/lfsfs)
#   - after umount the states stay; PATH filters; usage errors
. "$(dirname "$0")/../lib/common.sh"

MiB=$((1024 * 1024))
origin_start "$T/origin" || fail "cannot start nginx"
W="$ORIGIN_ROOT"
U="$ORIGIN_HTTP_URL"
gen_file "$W/big.bin" $((6 * MiB + 123))
gen_file "$W/sample.vcf" $((300 * 1024))
gen_file "$W/noetag.bin" $((2 * MiB + 5))
gen_file "$W/small.dat" 1000
gen_file "$T/data/local.bin" $((1 * MiB + 7))
SECRET_Q="X-Amz-Signature=LSSECRETSIG999"

R="$T/repo"
make_repo "$R"
printf 'plain\n' > "$R/README.md"
repo_add_pointer "$R" data/big.bin "$W/big.bin" "$U/big.bin"
repo_add_pointer "$R" data/small.dat "$W/small.dat" "$U/small.dat?$SECRET_Q"
repo_add_pointer "$R" "local/a file.bin" "$T/data/local.bin" "file://$T/data/local.bin"
sample_etag=$(origin_etag sample.vcf)
repo_add_meta "$R" results/sample.vcf "$U/sample.vcf" $((300 * 1024)) "" "$sample_etag"
repo_add_meta "$R" results/noetag.bin "$U/noetag.bin" $((2 * MiB + 5))
repo_add_meta "$R" README.md "$U/small.dat" 1000           # shadowed by the file
repo_commit "$R"
BIG_OID=$(pointer_oid "$R/data/big.bin")
SMALL_OID=$(pointer_oid "$R/data/small.dat")
LOCAL_OID=$(pointer_oid "$R/local/a file.bin")

export XDG_CACHE_HOME="$T/xdg"
C="$XDG_CACHE_HOME/lfsfs"

# ls_json NAME ARGS...: lfsfs ls --json ARGS > $T/NAME.json (must exit 0)
ls_json() {
    local name="$1"; shift
    "$LFSFS_BIN" ls --json "$@" >"$T/$name.json" 2>"$T/$name.err" </dev/null ||
        fail "lfsfs ls --json $* failed: $(cat "$T/$name.err")"
    if grep -F LSSECRETSIG999 "$T/$name.json" "$T/$name.err"; then fail "a secret was printed"; fi
}
# state NAME PATH: the state of PATH in $T/NAME.json
state() {
    python3 -c 'import json, sys
print(next(o["state"] for o in json.load(open(sys.argv[1])) if o["path"] == sys.argv[2]))' \
        "$T/$1.json" "$2"
}
# state_is PATH WANT ARGS...: a fresh ls says PATH is in state WANT
state_is() {
    local p="$1" want="$2"; shift 2
    ls_json poll --repo "$R" "$@"
    [ "$(state poll "$p")" = "$want" ]
}

# ------------------------------------------------------------------ listing
info "ls --json: every tracked object, right sizes, oids, ETags, URLs"
ls_json first --repo "$R" --cache-dir "$T/none"
[ -e "$T/none" ] && fail "ls created the cache dir $T/none"
python3 - "$T/first.json" "$U" "$T" "$BIG_OID" "$SMALL_OID" "$LOCAL_OID" "$sample_etag" <<'PY' ||
import json, sys
doc = json.load(open(sys.argv[1]))
u, t, big, small, local, setag = sys.argv[2:]
MiB = 1 << 20
want = [
    {"path": "data/big.bin", "size": 6 * MiB + 123, "oid": big, "etag": None,
     "url": u + "/big.bin", "source": "pointer"},
    {"path": "data/small.dat", "size": 1000, "oid": small, "etag": None,
     "url": u + "/small.dat?REDACTED", "source": "pointer"},
    {"path": "local/a file.bin", "size": MiB + 7, "oid": local, "etag": None,
     "url": "file://" + t + "/data/local.bin", "source": "pointer"},
    {"path": "results/noetag.bin", "size": 2 * MiB + 5, "oid": None, "etag": None,
     "url": u + "/noetag.bin", "source": "metadata"},
    {"path": "results/sample.vcf", "size": 300 * 1024, "oid": None, "etag": setag,
     "url": u + "/sample.vcf", "source": "metadata"},
]
assert len(doc) == len(want), [o["path"] for o in doc]
for got, w in zip(doc, want):
    for k, v in w.items():
        assert got[k] == v, (w["path"], k, got[k], v)
    assert got["state"] == "remote" and got["cached_bytes"] == 0, got
PY
    fail "ls --json listing is wrong (above)"

info "the table: aligned columns, human sizes, short oids, ETags, redacted URLs"
"$LFSFS_BIN" ls --repo "$R" --cache-dir "$T/none" > "$T/table.txt" || fail "ls failed"
cat "$T/table.txt" >&2
assert_eq 6 "$(wc -l < "$T/table.txt")" "table lines (header + 5)"
head -n 1 "$T/table.txt" | grep -Eq '^PATH +SIZE  OID/ETAG +STATE +URL$' || fail "header: $(head -n 1 "$T/table.txt")"
grep -Eq "^data/big.bin +6\.0 MiB  ${BIG_OID:0:12} +remote +$U/big.bin\$" "$T/table.txt" || fail "big.bin row"
grep -Eq "^data/small.dat +1000 B  ${SMALL_OID:0:12} +remote +$U/small.dat\?REDACTED\$" "$T/table.txt" ||
    fail "small.dat row"
grep -Eq "^local/a file.bin +1\.0 MiB  ${LOCAL_OID:0:12} +remote +file://$T/data/local.bin\$" "$T/table.txt" ||
    fail "local/a file.bin row"
grep -qF "results/sample.vcf  " "$T/table.txt" && grep -qF "etag:$sample_etag" "$T/table.txt" ||
    fail "sample.vcf row"
grep -Eq "^results/noetag.bin +2\.0 MiB  - +remote " "$T/table.txt" || fail "noetag.bin row"
# every column starts at the same offset on every line
python3 - "$T/table.txt" <<'PY' || fail "columns not aligned (above)"
import re, sys
lines = open(sys.argv[1]).read().splitlines()
hdr = lines[0]
for col in ("OID/ETAG", "STATE", "URL"):
    at = hdr.index(col)
    for l in lines[1:]:
        assert l[at - 2:at] == "  " and l[at] != " ", (col, l)
size_end = hdr.index("SIZE") + 4
for l in lines[1:]:
    assert l[size_end - 1] != " " and l[size_end:size_end + 2] == "  ", l
PY

# ------------------------------------------------------------------ states
info "states follow a mount in the same (default) cache dir"
M="$T/mnt"
lfsfs_mount "$R" "$M" --cache-dir "$C" || fail "mount failed"
ls_json mounted --repo "$R"
assert_eq remote "$(state mounted data/big.bin)" "state of big.bin before any read"
# one 64 KiB read in the middle of big.bin
dd if="$M/data/big.bin" of=/dev/null bs=64K skip=40 count=1 status=none || fail "read of big.bin failed"
wait_for 10 state_is data/big.bin partial || fail "big.bin never became partial: $(state poll data/big.bin)"
python3 -c 'import json, sys
o = next(o for o in json.load(open(sys.argv[1])) if o["path"] == "data/big.bin")
assert 0 < o["cached_bytes"] < o["size"], o' "$T/poll.json" || fail "cached_bytes of a partial object"
"$LFSFS_BIN" ls --repo "$R" | grep -Eq "^data/big.bin +6\.0 MiB  ${BIG_OID:0:12} +partial " ||
    fail "the table does not say partial: $("$LFSFS_BIN" ls --repo "$R")"
assert_eq remote "$(state poll results/sample.vcf)" "sample.vcf untouched"
info "  read fully: verified"
assert_eq "$(sha256_of "$W/big.bin")" "$(sha256_of "$M/data/big.bin")" "sha256 of big.bin"
assert_eq "$(sha256_of "$W/sample.vcf")" "$(sha256_of "$M/results/sample.vcf")" "sha256 of sample.vcf"
wait_for 10 state_is data/big.bin verified || fail "big.bin never became verified: $(state poll data/big.bin)"
wait_for 10 state_is results/sample.vcf verified ||
    fail "sample.vcf never became verified: $(state poll results/sample.vcf)"
python3 - "$T/poll.json" "$(sha256_of "$W/sample.vcf")" <<'PY' || fail "verified entries (above)"
import json, sys
objs = {o["path"]: o for o in json.load(open(sys.argv[1]))}
b = objs["data/big.bin"]
assert b["cached_bytes"] == b["size"], b
s = objs["results/sample.vcf"]
assert s["oid"] is None and s["sha256"] == sys.argv[2] and s["cached_bytes"] == s["size"], s
assert objs["results/noetag.bin"]["state"] == "remote", objs["results/noetag.bin"]
PY
assert_eq verified "$(xattr_get "$M/data/big.bin" user.lfsfs.state)" "the mount agrees"
lfsfs_umount "$M" || fail "umount failed"

info "after umount the states stay; another cache dir knows nothing"
ls_json after --repo "$R" --cache-dir "$C"
assert_eq verified "$(state after data/big.bin)" "big.bin after umount"
assert_eq verified "$(state after results/sample.vcf)" "sample.vcf after umount"
ls_json other --repo "$R" --cache-dir "$T/other-cache"
assert_eq remote "$(state other data/big.bin)" "big.bin in another cache dir"

# ------------------------------------------------------------------ filters, errors
info "PATH filters (from inside the repository too) and usage errors"
ls_json filt --repo "$R" results
assert_eq "results/noetag.bin results/sample.vcf" \
    "$(python3 -c 'import json, sys; print(" ".join(o["path"] for o in json.load(open(sys.argv[1]))))' "$T/filt.json")" \
    "paths under results"
(cd "$R/local" && "$LFSFS_BIN" ls --json "a file.bin" ../data/small.dat) > "$T/cwd.json" ||
    fail "ls from inside the repository failed"
assert_eq "data/small.dat local/a file.bin" \
    "$(python3 -c 'import json, sys; print(" ".join(o["path"] for o in json.load(open(sys.argv[1]))))' "$T/cwd.json")" \
    "paths relative to the current directory"
rc=0; "$LFSFS_BIN" ls --repo "$R" nothing/here >/dev/null 2>"$T/err.txt" || rc=$?
assert_eq 1 "$rc" "exit status for a path matching nothing"
grep -q "'nothing/here' matches no tracked object" "$T/err.txt" || fail "message: $(cat "$T/err.txt")"
rc=0; "$LFSFS_BIN" ls --bogus >/dev/null 2>&1 || rc=$?
assert_eq 2 "$rc" "exit status for a bad option"
rc=0; "$LFSFS_BIN" ls --repo "$T" >/dev/null 2>"$T/err.txt" || rc=$?
assert_eq 1 "$rc" "exit status outside a repository"
grep -q "not a git repository" "$T/err.txt" || fail "message: $(cat "$T/err.txt")"
exit 0
