#!/usr/bin/env bash
# t1900-hooks: `lfsfs install`, the pre-commit hint cache and the pre-push check,
# driven by stock git and git-lfs (seed 003, docs/HOOKS.md).
#   - install into a repository that has git-lfs's hooks and a pre-commit of its own:
#     both are kept (.lfsfs-orig, byte for byte) and still run; reinstall changes
#     nothing; the transfer agent settings are written (--standalone adds one)
#   - commit -> .git/drs/pre-commit/v1/paths/<base64url-no-pad(path)>.json and
#     oids/<oid>.json with the right contents; scope = staged content is a pointer
#     (a pointer outside .gitattributes is in, a *.bin excluded from LFS is out)
#   - git mv -> path entry moved, oid paths updated, tombstone for the old path
#   - content change -> new oid record with content_changed, old oid keeps the path
#   - git rm -> tombstone, path entry gone; a deleted cache is rebuilt
#   - the hook never blocks a commit for cache problems, but fails on a broken index
#   - 1,000 staged pointers: the hook itself takes well under a second
#   - pre-push against a bare remote (git-lfs's pre-push still uploads):
#     unconfigured -> warning, push goes on; DRS test server with one oid registered
#     and one not -> refused with the unregistered oid in the table; registered ->
#     passes; a hint URL that disagrees with the server -> refused; server down ->
#     refused naming LFSFS_PRE_PUSH=skip, which then lets the push through
#   - uninstall restores the original hooks byte-identical and is idempotent
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=../lib/drs.sh
. "$LFSFS_TESTLIB/drs.sh"

# git-lfs filters in a private global config, not the caller's
export HOME="$T/home" XDG_CONFIG_HOME="$T/home/.config"
mkdir -p "$HOME"
git lfs install --skip-repo >/dev/null || fail "git lfs install --skip-repo failed"
unset LFSFS_PRE_PUSH LFSFS_PRE_COMMIT

HINTS=.git/drs/pre-commit/v1

# b64 PATH: base64url without padding of PATH's UTF-8 bytes (Go's RawURLEncoding)
b64() { python3 -c 'import base64,sys; print(base64.urlsafe_b64encode(sys.argv[1].encode()).decode().rstrip("="))' "$1"; }
# jq-like: jget FILE EXPR (python expression over j)
jget() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); v=eval(sys.argv[2]); print(json.dumps(v) if not isinstance(v,str) else v)' "$1" "$2"; }
ms_now() { date +%s%N | cut -c1-13; }
oid_of() { sha256_of "$1"; }

R="$T/repo"
info "a repository with git-lfs's hooks and a pre-commit hook of its own"
git init -q -b main "$R"
git -C "$R" config core.autocrlf false
(cd "$R" && git lfs install --local >/dev/null) || fail "git lfs install --local failed"
[ -x "$R/.git/hooks/pre-push" ] || fail "git lfs install made no pre-push hook"
cat > "$R/.git/hooks/pre-commit" <<'EOF'
#!/bin/sh
echo "own pre-commit ran" >> "$(git rev-parse --git-dir)/own-pre-commit.log"
EOF
chmod +x "$R/.git/hooks/pre-commit"
mkdir -p "$T/orig-hooks"
cp -p "$R/.git/hooks/pre-commit" "$R/.git/hooks/pre-push" "$T/orig-hooks/"

info "install chains to the existing hooks"
"$LFSFS_BIN" install --repo "$R" > "$T/install.out" 2>&1 || { cat "$T/install.out"; fail "lfsfs install failed"; }
cat "$T/install.out" >&2
for h in pre-commit pre-push; do
    grep -q 'lfsfs-hook v1' "$R/.git/hooks/$h" || fail "$h is not lfsfs's hook after install"
    [ -x "$R/.git/hooks/$h" ] || fail "$h is not executable"
    assert_file_eq "$T/orig-hooks/$h" "$R/.git/hooks/$h.lfsfs-orig" "kept $h"
done
exe=$(readlink -f "$LFSFS_BIN")
assert_eq "$exe" "$(git -C "$R" config --local lfs.customtransfer.lfsfs.path)" "transfer agent path"
assert_eq transfer-agent "$(git -C "$R" config --local lfs.customtransfer.lfsfs.args)" "transfer agent args"
assert_eq false "$(git -C "$R" config --local lfs.customtransfer.lfsfs.concurrent)" "transfer agent concurrent"
git -C "$R" config --local lfs.standalonetransferagent >/dev/null && fail "standalonetransferagent set without --standalone"
mkdir -p "$T/installed"
cp -p "$R/.git/hooks/pre-commit" "$R/.git/hooks/pre-push" "$T/installed/"
cp "$R/.git/config" "$T/installed/config"

info "reinstall changes nothing"
"$LFSFS_BIN" install --repo "$R" >/dev/null 2>&1 || fail "second lfsfs install failed"
for h in pre-commit pre-push; do
    assert_file_eq "$T/installed/$h" "$R/.git/hooks/$h" "$h after reinstall"
    assert_file_eq "$T/orig-hooks/$h" "$R/.git/hooks/$h.lfsfs-orig" "kept $h after reinstall"
done
assert_file_eq "$T/installed/config" "$R/.git/config" ".git/config after reinstall"
n=$(find "$R/.git/hooks" -name '*lfsfs-orig*' | wc -l)
assert_eq 2 "$n" "kept hooks after reinstall"

info "commit: the hint cache records every staged pointer, and only those"
cd "$R"
git lfs track '*.bin' >/dev/null
printf 'plain/*.bin -filter -diff -merge text\n' >> .gitattributes
mkdir -p data "dir with space" plain notes "données"
gen_file data/a.bin 3000
gen_file data/b.bin 5000
gen_file "dir with space/c.bin" 100
cp data/a.bin data/a-copy.bin
gen_file "données/é.bin" 700
printf 'just text\n' > README.md
printf 'not lfs\n' > plain/x.bin
# a pointer that no .gitattributes pattern names: still in scope
gen_file "$T/loose.dat" 12345
git lfs pointer --file="$T/loose.dat" > notes/ptr.txt 2>/dev/null
loose=$(oid_of "$T/loose.dat")
mkdir -p ".git/lfs/objects/${loose:0:2}/${loose:2:2}"
cp "$T/loose.dat" ".git/lfs/objects/${loose:0:2}/${loose:2:2}/$loose"   # so git-lfs can push it
git add -A
git commit -q -m one 2> "$T/commit1.err" || { cat "$T/commit1.err"; fail "first commit failed"; }
grep -q "own pre-commit ran" .git/own-pre-commit.log || fail "the kept pre-commit hook did not run"
[ -d "$HINTS" ] || fail "no hint cache after the first commit"
for p in data/a.bin data/b.bin "dir with space/c.bin" data/a-copy.bin "données/é.bin" notes/ptr.txt; do
    f="$HINTS/paths/$(b64 "$p").json"
    [ -f "$f" ] || fail "no path entry $f for '$p'"
    assert_eq "$p" "$(jget "$f" 'j["path"]')" "path in $f"
    want=$(git show ":$p" | pointer_oid /dev/stdin)
    assert_eq "sha256:$want" "$(jget "$f" 'j["lfs_oid"]')" "lfs_oid of '$p'"
    jget "$f" 'j["updated_at"]' | grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$' ||
        fail "updated_at of '$p' is not RFC 3339 UTC"
    [ -f "$HINTS/oids/$want.json" ] || fail "no oid record for '$p'"
done
for p in README.md plain/x.bin .gitattributes; do
    [ -e "$HINTS/paths/$(b64 "$p").json" ] && fail "'$p' is not a pointer but has a path entry"
done
# the name is exactly base64url without padding (no '=', '-'/'_' alphabet)
assert_eq "ZGF0YS9hLmJpbg.json" "$(basename "$HINTS/paths/$(b64 data/a.bin).json")" "encoded name of data/a.bin"
[ -f "$HINTS/paths/ZGF0YS9hLmJpbg.json" ] || fail "paths/ZGF0YS9hLmJpbg.json missing"
a_oid=$(oid_of data/a.bin)
b_oid=$(oid_of data/b.bin)
c_oid=$(oid_of "dir with space/c.bin")
assert_eq "sha256:$a_oid" "$(jget "$HINTS/oids/$a_oid.json" 'j["lfs_oid"]')" "lfs_oid in oids/$a_oid.json"
assert_eq '["data/a-copy.bin", "data/a.bin"]' "$(jget "$HINTS/oids/$a_oid.json" 'j["paths"]')" "paths of a.bin's oid"
assert_eq false "$(jget "$HINTS/oids/$a_oid.json" 'j["content_changed"]')" "content_changed of a.bin's oid"
assert_eq null "$(jget "$HINTS/oids/$a_oid.json" 'j.get("s3_url")')" "s3_url is never invented"
[ -f "$HINTS/state.json" ] || fail "no state.json"
assert_eq 1 "$(jget "$HINTS/state.json" 'j["version"]')" "state.json version"
# the hints resolver (used by mounts) reads what the hook wrote
cp "$HINTS/oids/$a_oid.json" "$T/a-oid.json"

info "a known s3_url is kept across updates"
python3 - "$HINTS/oids/$a_oid.json" <<'PY'
import json, sys
f = sys.argv[1]; j = json.load(open(f)); j["s3_url"] = "s3://kept-bucket/a.bin"; j["other_tool"] = {"x": 1}
json.dump(j, open(f, "w"))
PY

info "git mv: the path entry moves, the oid's paths follow, a tombstone stays"
mkdir -p data/moved
git mv data/a.bin data/moved/a.bin
git commit -q -m mv 2> "$T/commit2.err" || { cat "$T/commit2.err"; fail "rename commit failed"; }
[ -e "$HINTS/paths/$(b64 data/a.bin).json" ] && fail "path entry for the old name is still there"
f="$HINTS/paths/$(b64 data/moved/a.bin).json"
[ -f "$f" ] || fail "no path entry for the new name"
assert_eq "sha256:$a_oid" "$(jget "$f" 'j["lfs_oid"]')" "lfs_oid of the moved path"
assert_eq '["data/a-copy.bin", "data/moved/a.bin"]' "$(jget "$HINTS/oids/$a_oid.json" 'j["paths"]')" "paths after git mv"
assert_eq "s3://kept-bucket/a.bin" "$(jget "$HINTS/oids/$a_oid.json" 'j["s3_url"]')" "s3_url kept"
assert_eq '{"x": 1}' "$(jget "$HINTS/oids/$a_oid.json" 'j["other_tool"]')" "unknown keys kept"
t="$HINTS/tombstones/$(b64 data/a.bin).json"
[ -f "$t" ] || fail "no tombstone for data/a.bin"
assert_eq data/a.bin "$(jget "$t" 'j["path"]')" "tombstone path"
assert_eq "sha256:$a_oid" "$(jget "$t" 'j["lfs_oid"]')" "tombstone oid"
assert_eq renamed "$(jget "$t" 'j["reason"]')" "tombstone reason"
assert_eq data/moved/a.bin "$(jget "$t" 'j["renamed_to"]')" "tombstone renamed_to"

info "content change at the same path: new oid, content_changed, old oid keeps the path"
gen_file data/b.bin 5001
git commit -q -a -m modify 2> "$T/commit3.err" || { cat "$T/commit3.err"; fail "modify commit failed"; }
b2_oid=$(oid_of data/b.bin)
assert_ne "$b_oid" "$b2_oid" "new content, new oid"
assert_eq "sha256:$b2_oid" "$(jget "$HINTS/paths/$(b64 data/b.bin).json" 'j["lfs_oid"]')" "path entry follows the content"
assert_eq true "$(jget "$HINTS/oids/$b2_oid.json" 'j["content_changed"]')" "content_changed of the new oid"
assert_eq '["data/b.bin"]' "$(jget "$HINTS/oids/$b2_oid.json" 'j["paths"]')" "paths of the new oid"
assert_eq '["data/b.bin"]' "$(jget "$HINTS/oids/$b_oid.json" 'j["paths"]')" "the old oid keeps its (stale) path"

info "git rm: tombstone, path entry gone"
git rm -q "dir with space/c.bin"
git commit -q -m rm 2> "$T/commit4.err" || { cat "$T/commit4.err"; fail "rm commit failed"; }
[ -e "$HINTS/paths/$(b64 "dir with space/c.bin").json" ] && fail "path entry of a deleted file"
t="$HINTS/tombstones/$(b64 "dir with space/c.bin").json"
assert_eq deleted "$(jget "$t" 'j["reason"]')" "tombstone of a deleted file"
assert_eq '[]' "$(jget "$HINTS/oids/$c_oid.json" 'j["paths"]')" "paths of a deleted file's oid"

info "a commit made without the hook (--no-verify) is caught up with at the next commit"
git mv data/a-copy.bin data/a-copy2.bin
git commit -q --no-verify -m "no hook"
gen_file data/e.bin 222
git add data/e.bin
git commit -q -m "after a commit without the hook" 2> "$T/commit-nv.err" || { cat "$T/commit-nv.err"; fail "commit failed"; }
assert_eq full "$(jget "$HINTS/state.json" 'j["last_run"]["mode"]')" "HEAD moved without the hook: a full run"
[ -e "$HINTS/paths/$(b64 data/a-copy.bin).json" ] && fail "stale path entry for data/a-copy.bin"
[ -f "$HINTS/paths/$(b64 data/a-copy2.bin).json" ] || fail "no path entry for data/a-copy2.bin"
[ -f "$HINTS/paths/$(b64 data/e.bin).json" ] || fail "no path entry for data/e.bin"
[ -f "$HINTS/tombstones/$(b64 data/a-copy.bin).json" ] || fail "no tombstone for data/a-copy.bin"
assert_eq '["data/a-copy2.bin", "data/moved/a.bin"]' "$(jget "$HINTS/oids/$a_oid.json" 'j["paths"]')" "paths after the catch-up"
gen_file data/f.bin 223
git add data/f.bin
git commit -q -m "and the next one is incremental again"
assert_eq incremental "$(jget "$HINTS/state.json" 'j["last_run"]["mode"]')" "mode after catching up"

info "a deleted cache is rebuilt from the index"
rm -rf .git/drs
"$LFSFS_BIN" hook pre-commit || fail "pre-commit on a deleted cache failed"
for p in data/moved/a.bin data/a-copy2.bin data/b.bin "données/é.bin" notes/ptr.txt; do
    [ -f "$HINTS/paths/$(b64 "$p").json" ] || fail "rebuild lacks '$p'"
done
assert_eq full "$(jget "$HINTS/state.json" 'j["last_run"]["mode"]')" "a rebuild is a full run"

info "cache problems never block a commit"
rm -rf "$HINTS/oids"
printf 'not a directory\n' > "$HINTS/oids"
gen_file data/d.bin 333
git add data/d.bin
git commit -q -m "with a broken cache" 2> "$T/commit5.err" || { cat "$T/commit5.err"; fail "a broken hint cache blocked the commit"; }
grep -q "warning" "$T/commit5.err" || fail "no warning about the broken hint cache: $(cat "$T/commit5.err")"
rm -f "$HINTS/oids"
printf '{ not json' > "$T/garbage"
"$LFSFS_BIN" hook pre-commit --full 2> "$T/full.err" || fail "pre-commit --full failed"
d_oid=$(oid_of data/d.bin)
cp "$T/garbage" "$HINTS/oids/$d_oid.json"
git mv data/d.bin data/d2.bin
git commit -q -m "over a malformed record" 2> "$T/commit6.err" || fail "a malformed record blocked the commit"
grep -q "malformed" "$T/commit6.err" || fail "no warning about the malformed record: $(cat "$T/commit6.err")"
assert_eq '["data/d2.bin"]' "$(jget "$HINTS/oids/$d_oid.json" 'j["paths"]')" "the malformed record was replaced"

info "a broken repository fails the hook, with a message"
printf 'garbage index\n' > "$T/bad-index"
rc=0; GIT_INDEX_FILE="$T/bad-index" "$LFSFS_BIN" hook pre-commit 2> "$T/broken.err" || rc=$?
assert_ne 0 "$rc" "pre-commit exit status on a corrupt index"
grep -q "cannot read the staged changes" "$T/broken.err" || fail "unclear message: $(cat "$T/broken.err")"
# (the scratch directory may sit inside another repository: git must not look above it)
mkdir -p "$T/norepo"
rc=0; (cd "$T/norepo" && GIT_CEILING_DIRECTORIES="$T" "$LFSFS_BIN" hook pre-commit) 2> "$T/norepo.err" || rc=$?
assert_ne 0 "$rc" "pre-commit exit status outside a repository"
cd "$T"

info "1,000 staged pointers: the hook in well under a second"
# Timings are the best of three runs: the machine may be busy with other work.
P="$T/many"
git init -q -b main "$P"
python3 - "$P" <<'PY'
import hashlib, os, sys
d = os.path.join(sys.argv[1], "ptr")
os.makedirs(d)
for i in range(1000):
    oid = hashlib.sha256(b"object %d" % i).hexdigest()
    with open(os.path.join(d, "f%04d.dat" % i), "w") as f:
        f.write("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n" % (oid, 1000 + i))
PY
# time_hook SETUP: "WALL CPU" milliseconds of the best of three `lfsfs hook
# pre-commit` runs in $P (CPU = user + system of the hook and the git it runs),
# SETUP before each
time_hook() {
    local best="999999 999999" i out
    for i in 1 2 3; do
        eval "$1"
        out=$(cd "$P" && python3 -c '
import os, resource, subprocess, sys, time
t = time.monotonic()
rc = subprocess.call(sys.argv[1:])
w = (time.monotonic() - t) * 1000
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print("%d %d" % (w, (r.ru_utime + r.ru_stime) * 1000) if rc == 0 else "fail")
' "$LFSFS_BIN" hook pre-commit) || fail "pre-commit in $P failed"
        [ "$out" != fail ] || fail "pre-commit in $P failed"
        [ "${out% *}" -lt "${best% *}" ] && best="$out"
    done
    echo "$best"
}
# check_ms WHAT "WALL CPU": under a second; on a machine so busy that the hook
# waits for a CPU (load above the CPU count), its own CPU time must be
check_ms() {
    local wall="${2% *}" cpu="${2#* }" load
    info "  $1: $wall ms ($cpu ms CPU)"
    [ "$wall" -lt 1000 ] && return 0
    load=$(cut -d' ' -f1 /proc/loadavg)
    if python3 -c 'import os,sys; sys.exit(0 if float(sys.argv[1]) > os.cpu_count() else 1)' "$load" &&
        [ "$cpu" -lt 1000 ]; then
        info "  WARNING: $1 took $wall ms wall clock on a machine with load $load ($cpu ms CPU)"
        return 0
    fi
    fail "$1 took $wall ms ($cpu ms CPU, load $load)"
}
# an existing (empty) cache, then 1,000 pointers staged at once
ms=$(time_hook 'rm -rf "$P/.git/drs"; git -C "$P" reset -q; (cd "$P" && "$LFSFS_BIN" hook pre-commit); git -C "$P" add ptr')
check_ms "1,000 staged pointers, existing cache" "$ms"
assert_eq 1000 "$(find "$P/$HINTS/paths" -name '*.json' | wc -l)" "path entries for 1,000 pointers"
assert_eq 1000 "$(find "$P/$HINTS/oids" -name '*.json' | wc -l)" "oid records for 1,000 pointers"
# a new cache (first run, or after deleting it): built from the whole index
ms=$(time_hook 'rm -rf "$P/.git/drs"')
check_ms "1,000 staged pointers, new cache" "$ms"
assert_eq 1000 "$(find "$P/$HINTS/paths" -name '*.json' | wc -l)" "path entries after a rebuild"
git -C "$P" commit -q -m many --no-verify
git -C "$P" mv ptr moved
t0=$(ms_now)
(cd "$P" && "$LFSFS_BIN" hook pre-commit) || fail "pre-commit with 1,000 renames failed"
t1=$(ms_now)
info "  1,000 staged renames: $((t1 - t0)) ms"
assert_eq 1000 "$(find "$P/$HINTS/tombstones" -name '*.json' | wc -l)" "tombstones for 1,000 renames"
assert_eq 1000 "$(find "$P/$HINTS/paths" -name '*.json' | wc -l)" "path entries after 1,000 renames"

info "pre-push, no server configured: a warning, the push goes on, git-lfs uploads"
cd "$R"
git init -q --bare "$T/remote.git"
git remote add origin "$T/remote.git"
git push -q origin main 2> "$T/push1.err" || { cat "$T/push1.err"; fail "push without a server configured was refused"; }
grep -q "no DRS or Indexd server is configured" "$T/push1.err" || fail "no warning: $(cat "$T/push1.err")"
assert_eq "$(git rev-parse main)" "$(git -C "$T/remote.git" rev-parse main)" "remote main after push"
b2=$(oid_of data/b.bin)
[ -f "$T/remote.git/lfs/objects/${b2:0:2}/${b2:2:2}/$b2" ] ||
    fail "git-lfs's own pre-push did not upload data/b.bin (the chained hook got no input?)"

info "pre-push against a DRS server: one oid registered, one not"
gen_file "$T/reg.bin" 4000
gen_file "$T/unreg.bin" 6000
reg_oid=$(oid_of "$T/reg.bin")
unreg_oid=$(oid_of "$T/unreg.bin")
drs_config "$T/drs" "[$(drs_object "$reg_oid" "$T/reg.bin" access=url name=reg.bin)]"
drs_start "$T/drs" || fail "DRS test server did not start"
git config lfsfs.drs.url "$DRS_URL"
git config lfsfs.drs.token "$DRS_TOKEN"
before_two=$(git rev-parse HEAD)
cp "$T/reg.bin" data/reg.bin
cp "$T/unreg.bin" data/unreg.bin
git add data/reg.bin data/unreg.bin
git commit -q -m "two new objects"
rc=0; git push origin main 2> "$T/push2.err" || rc=$?
cat "$T/push2.err" >&2
assert_ne 0 "$rc" "push with an unregistered object"
grep -q "not registered" "$T/push2.err" || fail "no 'not registered' table"
grep -q "sha256:$unreg_oid *6000 *data/unreg.bin" "$T/push2.err" || fail "the table lacks the unregistered oid, size and path"
grep -q "sha256:$reg_oid" "$T/push2.err" && fail "the registered oid is listed as unregistered"
grep -q "LFSFS_PRE_PUSH=skip" "$T/push2.err" || fail "the override is not named"
assert_ne "$(git rev-parse main)" "$(git -C "$T/remote.git" rev-parse main)" "remote main after a refused push"

info "register it: the push passes"
drs_config "$T/drs" "[$(drs_object "$reg_oid" "$T/reg.bin" access=url name=reg.bin), $(drs_object "$unreg_oid" "$T/unreg.bin" access=url name=unreg.bin)]"
drs_reload
git push -q origin main 2> "$T/push3.err" || { cat "$T/push3.err"; fail "push refused after registering"; }
assert_eq "$(git rev-parse main)" "$(git -C "$T/remote.git" rev-parse main)" "remote main after registering"
[ -f "$T/remote.git/lfs/objects/${unreg_oid:0:2}/${unreg_oid:2:2}/$unreg_oid" ] ||
    fail "git-lfs did not upload data/unreg.bin after the check passed"

info "the same check through the Indexd API only (hook run by hand)"
git config --unset lfsfs.drs.url
git config lfsfs.indexd.url "$DRS_URL"
line="refs/heads/main $(git rev-parse main) refs/heads/main $before_two"
printf '%s\n' "$line" | "$LFSFS_BIN" hook pre-push origin "$T/remote.git" 2> "$T/indexd.err" ||
    { cat "$T/indexd.err"; fail "the Indexd check refused registered objects"; }
grep -q "2 Git LFS object(s) checked: all registered" "$T/indexd.err" || fail "Indexd check: $(cat "$T/indexd.err")"
[ "$(drs_count kind=indexd)" -ge 2 ] || fail "the Indexd API was not asked"
line="refs/heads/main $(git rev-parse main) refs/heads/main $(git rev-list --max-parents=0 HEAD)"
rc=0; printf '%s\n' "$line" | "$LFSFS_BIN" hook pre-push origin "$T/remote.git" 2> "$T/indexd2.err" || rc=$?
assert_eq 1 "$rc" "Indexd check with unregistered objects"
grep -q "sha256:$b2_oid *5001 *data/b.bin" "$T/indexd2.err" || fail "Indexd check: data/b.bin not listed"
grep -q "sha256:$reg_oid" "$T/indexd2.err" && fail "Indexd check: a registered oid listed"
git config --unset lfsfs.indexd.url
git config lfsfs.drs.url "$DRS_URL"

info "a hint URL that disagrees with the server refuses the push"
gen_file "$T/hinted.bin" 2500
h_oid=$(oid_of "$T/hinted.bin")
drs_config "$T/drs" "[$(drs_object "$h_oid" "$T/hinted.bin" access=url name=hinted.bin)]"
drs_reload
cp "$T/hinted.bin" data/hinted.bin
git add data/hinted.bin
git commit -q -m hinted
python3 - "$HINTS/oids/$h_oid.json" "s3://elsewhere/hinted.bin" <<'PY'
import json, sys
f = sys.argv[1]; j = json.load(open(f)); j["s3_url"] = sys.argv[2]; json.dump(j, open(f, "w"))
PY
rc=0; git push origin main 2> "$T/push4.err" || rc=$?
cat "$T/push4.err" >&2
assert_ne 0 "$rc" "push with a disagreeing hint"
grep -q "disagree" "$T/push4.err" || fail "no disagreement table"
grep -q "s3://elsewhere/hinted.bin" "$T/push4.err" || fail "the hint URL is not shown"
grep -q "$DRS_URL/public/hinted.bin" "$T/push4.err" || fail "the server URL is not shown"
python3 - "$HINTS/oids/$h_oid.json" "$DRS_URL/public/hinted.bin" <<'PY'
import json, sys
f = sys.argv[1]; j = json.load(open(f)); j["s3_url"] = sys.argv[2]; json.dump(j, open(f, "w"))
PY
git push -q origin main 2> "$T/push5.err" || { cat "$T/push5.err"; fail "push refused with an agreeing hint"; }

info "server unreachable: refused, the override named and working"
gen_file data/late.bin 1234
git add data/late.bin
git commit -q -m late
drs_stop || true
rc=0; git push origin main 2> "$T/push6.err" || rc=$?
cat "$T/push6.err" >&2
assert_ne 0 "$rc" "push with the server down"
grep -q "cannot be reached" "$T/push6.err" || fail "unclear message with the server down"
grep -q "LFSFS_PRE_PUSH=skip" "$T/push6.err" || fail "the override is not named"
LFSFS_PRE_PUSH=skip git push -q origin main 2> "$T/push7.err" || { cat "$T/push7.err"; fail "LFSFS_PRE_PUSH=skip did not let the push through"; }
assert_eq "$(git rev-parse main)" "$(git -C "$T/remote.git" rev-parse main)" "remote main after the override"
late=$(oid_of data/late.bin)
[ -f "$T/remote.git/lfs/objects/${late:0:2}/${late:2:2}/$late" ] || fail "git-lfs did not upload with the override"
# deleting a remote branch pushes no objects: nothing to check
git push -q origin main:gone 2>/dev/null || LFSFS_PRE_PUSH=skip git push -q origin main:gone
git push -q origin :gone 2> "$T/push8.err" || { cat "$T/push8.err"; fail "a branch deletion was refused"; }

info "uninstall restores the original hooks byte for byte, and is idempotent"
"$LFSFS_BIN" install --repo "$R" --standalone >/dev/null || fail "install --standalone failed"
assert_eq lfsfs "$(git config --local lfs.standalonetransferagent)" "standalonetransferagent"
"$LFSFS_BIN" uninstall --repo "$R" > "$T/uninstall.out" 2>&1 || { cat "$T/uninstall.out"; fail "uninstall failed"; }
cat "$T/uninstall.out" >&2
for h in pre-commit pre-push; do
    assert_file_eq "$T/orig-hooks/$h" "$R/.git/hooks/$h" "$h after uninstall"
    [ "$(stat -c %a "$T/orig-hooks/$h")" = "$(stat -c %a "$R/.git/hooks/$h")" ] || fail "mode of $h after uninstall"
    [ -e "$R/.git/hooks/$h.lfsfs-orig" ] && fail "$h.lfsfs-orig left behind"
done
git config --local --get-regexp '^lfs\.customtransfer\.lfsfs\.' && fail "transfer agent settings left behind"
git config --local lfs.standalonetransferagent && fail "standalonetransferagent left behind"
grep -q 'customtransfer' .git/config && fail "an empty customtransfer section left in .git/config"
"$LFSFS_BIN" uninstall --repo "$R" > "$T/uninstall2.out" 2>&1 || fail "second uninstall failed"
grep -q "nothing" "$T/uninstall2.out" || fail "second uninstall did something: $(cat "$T/uninstall2.out")"
for h in pre-commit pre-push; do
    assert_file_eq "$T/orig-hooks/$h" "$R/.git/hooks/$h" "$h after a second uninstall"
done

info "install into a repository without hooks, uninstall leaves none"
E="$T/empty"
git init -q -b main "$E"
"$LFSFS_BIN" install --repo "$E" >/dev/null || fail "install into a fresh repository failed"
[ -x "$E/.git/hooks/pre-push" ] || fail "no pre-push hook installed"
"$LFSFS_BIN" uninstall --repo "$E" >/dev/null || fail "uninstall from a fresh repository failed"
[ -e "$E/.git/hooks/pre-push" ] || [ -e "$E/.git/hooks/pre-commit" ] && fail "hooks left after uninstall"
exit 0
