#!/usr/bin/env bash
# t1810-lfs-batch: an ordinary Git LFS repository, cloned without its objects
# (GIT_LFS_SKIP_SMUDGE=1, no .lfs-meta), read through its LFS server's batch API.
#   - stock git + git-lfs push the objects to tests/lib/lfs_server.py (Basic
#     auth from a `store` credential helper, lfs.url)
#   - the mount finds the endpoint from remote.origin.url
#     (http://host/team/data -> http://host/team/data.git/info/lfs), gets
#     credentials from `git credential fill` after a 401, and every file's
#     sha256 equals the original
#   - listing a directory resolves all its pointers in one batch request
#   - hrefs that expire mid-read are refreshed without a failed read, both
#     when the server says they expire (expires_in 2 s) and when it lies
#     (advertises an hour, refuses after 2 s: 403, re-resolve, resend)
#   - an object the server lacks reads as EIO and the log says 404
#   - wrong credentials read as EIO with a clear log line (no secrets), and
#     `git credential reject` removed them from the helper
. "$(dirname "$0")/../lib/common.sh"

MiB=$((1024 * 1024))
LFS_USER=lfsreader
LFS_PASS=Rd-pa55-8731-QXZ

# ------------------------------------------------------------ the LFS server
LFS_DIR="$T/lfs"
mkdir -p "$LFS_DIR/objects"
python3 "$LFSFS_TESTLIB/lfs_server.py" --root "$LFS_DIR/objects" --user "$LFS_USER" \
    --password "$LFS_PASS" --port-file "$LFS_DIR/port" --log "$LFS_DIR/requests.log" \
    >"$LFS_DIR/server.out" 2>&1 &
_T_PIDS+=("$!")
wait_for 10 test -s "$LFS_DIR/port" || { cat "$LFS_DIR/server.out" >&2; fail "lfs server did not start"; }
LFS_PORT=$(cat "$LFS_DIR/port")
LFS_BASE="http://127.0.0.1:$LFS_PORT"
wait_for 10 curl -sf -o /dev/null "$LFS_BASE/healthz" || fail "lfs server not answering"
LFS_LOG="$LFS_DIR/requests.log"
lfs_admin() { curl -sf -X POST "$LFS_BASE/_admin/config?$1" >/dev/null || fail "lfs server control $1"; }

# lfs_requests FILTER_PY: request log records (from line $SINCE on) matching a
# python expression over `r`, one JSON object per line
SINCE=1
lfs_requests() {
    tail -n +"$SINCE" "$LFS_LOG" | python3 -c '
import json, sys
expr = sys.argv[1]
for line in sys.stdin:
    r = json.loads(line)
    if eval(expr, {}, {"r": r}):
        print(line, end="")' "$1"
}
lfs_count() { lfs_requests "$1" | wc -l; }
mark() { SINCE=$(( $(wc -l < "$LFS_LOG") + 1 )); }

CREDS="$T/creds"
printf 'http://%s:%s@127.0.0.1:%s\n' "$LFS_USER" "$LFS_PASS" "$LFS_PORT" > "$CREDS"
chmod 600 "$CREDS"

# ------------------------------------------------------------ push with stock git-lfs
info "stock git-lfs pushes the objects to the server"
W="$T/work"
git init -q -b main "$W"
git -C "$W" lfs install --local >/dev/null
git -C "$W" lfs track '*.bin' '*.dat' >/dev/null
gen_file "$W/a.bin" $((3 * MiB + 123))
gen_file "$W/b.bin" 1000
gen_file "$W/data/c1.bin" $((1 * MiB))
gen_file "$W/data/c2.bin" $((2 * MiB + 7))
gen_file "$W/data/c3.bin" 70000
gen_file "$W/data/c4.bin" 1
gen_file "$W/data/c5.bin" $((1 * MiB + 5))
gen_file "$W/data/sub/d.bin" $((MiB + MiB / 2))
gen_file "$W/big/huge.dat" $((16 * MiB))
gen_file "$W/big/gone.dat" 4096
printf 'plain text\n' > "$W/README.md"
FILES="a.bin b.bin data/c1.bin data/c2.bin data/c3.bin data/c4.bin data/c5.bin data/sub/d.bin big/huge.dat big/gone.dat"
DATA_FILES="data/c1.bin data/c2.bin data/c3.bin data/c4.bin data/c5.bin"
git -C "$W" config lfs.url "$LFS_BASE/team/data.git/info/lfs"
git -C "$W" config "lfs.$LFS_BASE/team/data.git/info/lfs.locksverify" false
git -C "$W" config credential.helper "store --file=$CREDS"
git init -q --bare -b main "$T/remote.git"
git -C "$W" remote add origin "$T/remote.git"
git -C "$W" add -A
git -C "$W" commit -q -m "data"
git -C "$W" push -q origin main >"$T/push.out" 2>&1 || { cat "$T/push.out" >&2; fail "git push (with git-lfs) failed"; }
declare -A OID
for f in $FILES; do
    OID[$f]=$(sha256_of "$W/$f")
    [ -f "$LFS_DIR/objects/${OID[$f]}" ] || fail "git lfs push did not upload $f"
    cmp -s "$W/$f" "$LFS_DIR/objects/${OID[$f]}" || fail "uploaded $f differs"
done
[ "$(lfs_count 'r["kind"] == "batch" and r.get("operation") == "upload" and r["status"] == 200 and r.get("auth") == "basic"')" -ge 1 ] ||
    fail "git-lfs did not use the batch API with Basic auth"
[ "$(lfs_count 'r["kind"] == "upload" and r["status"] == 200')" -eq 10 ] || fail "expected 10 basic-transfer uploads"

# ------------------------------------------------------------ pointer-only clone
C="$T/clone"
GIT_LFS_SKIP_SMUDGE=1 git clone -q "$T/remote.git" "$C"
for f in $FILES; do
    assert_eq "${OID[$f]}" "$(pointer_oid "$C/$f")" "the clone holds a pointer for $f"
done
[ ! -e "$C/.lfs-meta" ] || fail "the clone has .lfs-meta: nothing but the batch API may resolve"
# the endpoint is derived from the remote URL, like git-lfs does
git -C "$C" remote set-url origin "$LFS_BASE/team/data"
git -C "$C" config credential.helper "store --file=$CREDS"

M="$T/mnt"
info "mount; the endpoint comes from remote.origin.url"
mark
lfsfs_mount "$C" "$M" || fail "mount failed"
assert_log "lfs: Git LFS batch endpoint $LFS_BASE/team/data.git/info/lfs \(from remote.origin.url\)" \
    "the log does not name the derived endpoint"

info "listing data/ resolves its five pointers in one request"
ls -l "$M/data" >/dev/null
wait_for 5 test "$(lfs_count 'r["kind"] == "batch" and r["status"] == 200')" -ge 1 ||
    fail "no batch request after listing data/"
data_oids=$(for f in $DATA_FILES; do printf '%s ' "${OID[$f]}"; done)
lfs_requests 'r["kind"] == "batch" and r["status"] == 200' > "$T/batch1.log"
python3 - "$T/batch1.log" $data_oids <<'PY' || fail "listing data/ did not resolve its pointers in one batch request"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
want = set(sys.argv[2:])
hit = [r for r in recs if want <= set(r.get("oids") or [])]
if len(hit) != 1:
    print("batch requests: %s" % [(r.get("n_objects"), r.get("path")) for r in recs], file=sys.stderr)
    sys.exit(1)
r = hit[0]
assert r["path"] == "/team/data.git/info/lfs/objects/batch", r["path"]
assert r["operation"] == "download" and r["hash_algo"] == "sha256", r
assert r["transfers"] == ["basic"] and r["ref"] == "refs/heads/main", r
PY
[ "$(lfs_count 'r["kind"] == "batch" and r["status"] == 401')" -eq 1 ] ||
    fail "expected one anonymous try (401) before git credential fill"
[ "$(lfs_count 'r["kind"] == "batch" and r["status"] == 200 and r.get("auth") != "basic"')" -eq 0 ] ||
    fail "a successful batch request without Basic auth"

info "sha256 of every file through the mount"
for f in $FILES; do
    assert_eq "${OID[$f]}" "$(sha256_of "$M/$f")" "sha256 of $f"
done
assert_file_eq "$W/README.md" "$M/README.md" "README.md"
for f in $DATA_FILES; do
    n=$(lfs_count "r['kind'] == 'batch' and '${OID[$f]}' in (r.get('oids') or [])")
    assert_eq 1 "$n" "batch requests naming $f (listing resolved it; reading must not ask again)"
done
[ "$(lfs_count 'r["kind"] == "download" and r["status"] in (200, 206) and r.get("remote_auth") == "ok"')" -ge 10 ] ||
    fail "downloads did not carry the action's header"
[ "$(lfs_count 'r["kind"] == "download" and r["status"] >= 400')" -eq 0 ] || fail "a download was refused"
url=$(xattr_get "$M/a.bin" user.lfsfs.url) || fail "no user.lfsfs.url on a.bin"
case "$url" in "$LFS_BASE/dl/${OID[a.bin]}"*) ;; *) fail "user.lfsfs.url of a.bin: $url" ;; esac
case "$url" in *sig=*) fail "user.lfsfs.url shows the signature: $url" ;; esac
assert_log "'a.bin' -> $LFS_BASE/dl/${OID[a.bin]}.*\(lfs\)" "a.bin was not resolved by the lfs resolver"
lfsfs_umount "$M" || fail "umount failed"

# ------------------------------------------------------------ expiry mid-read
huge=${OID[big/huge.dat]}
read_half_sleep_rest() {
    dd if="$M/big/huge.dat" of="$T/huge.1" bs=1M count=8 status=none || fail "reading the first half failed"
    sleep 3
    dd if="$M/big/huge.dat" of="$T/huge.2" bs=1M skip=8 status=none || fail "reading the second half failed"
    cat "$T/huge.1" "$T/huge.2" | sha256sum | cut -d' ' -f1 > "$T/huge.sha"
    assert_eq "$huge" "$(cat "$T/huge.sha")" "sha256 of big/huge.dat read in two halves"
}

info "hrefs that expire in 2 s (expires_in) are refreshed before they lapse"
lfs_admin "expiry=2&style=in"
mark
lfsfs_mount "$C" "$M" --cache-dir "$T/cache2" --readahead 2M || fail "mount failed"
read_half_sleep_rest
n=$(lfs_count "r['kind'] == 'batch' and r['status'] == 200 and '$huge' in (r.get('oids') or [])")
info "  $n batch requests for big/huge.dat"
[ "$n" -ge 2 ] || fail "the expiring href was never refreshed ($n batch requests)"
lfs_requests "r['kind'] == 'download' and r.get('oid') == '$huge' and r['status'] == 206" > "$T/dl2.log"
[ "$(grep -c . "$T/dl2.log")" -ge 2 ] || fail "expected several ranged GETs of big/huge.dat"
log_has 'SOURCE_NOT_ACCESSIBLE' && fail "a read failed while hrefs were refreshed"
lfsfs_umount "$M" || fail "umount failed"

info "expires_at (RFC 3339) is honoured the same way"
lfs_admin "expiry=2&style=at"
mark
lfsfs_mount "$C" "$M" --cache-dir "$T/cache2b" --readahead 2M || fail "mount failed"
read_half_sleep_rest
n=$(lfs_count "r['kind'] == 'batch' and r['status'] == 200 and '$huge' in (r.get('oids') or [])")
[ "$n" -ge 2 ] || fail "an href with expires_at was never refreshed ($n batch requests)"
lfsfs_umount "$M" || fail "umount failed"

lfs_admin "expiry=2&advertise=3600&style=in"
for how in read list; do
    info "an href refused before its advertised expiry (403) is resolved again and the read resent ($how)"
    mark
    : > "$T/phase.log"
    lfsfs_mount "$C" "$M" --cache-dir "$T/cache3-$how" --readahead 2M --log-file "$T/phase.log" ||
        fail "mount failed"
    # listed: the href comes from the listing's batch request
    [ "$how" = list ] && ls "$M/big" >/dev/null
    read_half_sleep_rest
    n403=$(lfs_count "r['kind'] == 'download' and r.get('oid') == '$huge' and r.get('sig') == 'expired'")
    [ "$n403" -ge 1 ] || fail "the server never refused an expired href: the test did not test the 403 path"
    n=$(lfs_count "r['kind'] == 'batch' and r['status'] == 200 and '$huge' in (r.get('oids') or [])")
    [ "$n" -ge 2 ] || fail "a refused href was not resolved again ($n batch requests)"
    if [ "$how" = list ]; then
        first=$(lfs_requests "r['kind'] == 'batch' and r['status'] == 200 and '$huge' in (r.get('oids') or [])" | sed -n 1p)
        case "$first" in *"${OID[big/gone.dat]}"*) ;; *) fail "the first href of big/huge.dat did not come from the listing" ;; esac
    fi
    lfsfs_umount "$M" || fail "umount failed"
    cat "$T/phase.log" >> "$LFSFS_LOG"
    log_has "sending bytes .* again" "$T/phase.log" || fail "the log does not say the refused request was resent ($how)"
done
lfs_admin "expiry=3600&style=in"

# ------------------------------------------------------------ an object the server lacks
info "an object the server does not have reads as EIO; the log says 404"
rm -f "$LFS_DIR/objects/${OID[big/gone.dat]}"
lfsfs_mount "$C" "$M" --cache-dir "$T/cache4" || fail "mount failed"
expect_errno EIO read "$M/big/gone.dat"
assert_log "no such object \(404: Object does not exist\)" "the log does not explain the missing object"
assert_eq "${OID[b.bin]}" "$(sha256_of "$M/b.bin")" "b.bin still reads"
lfsfs_umount "$M" || fail "umount failed"

# ------------------------------------------------------------ wrong credentials
info "wrong credentials read as EIO with a clear log line"
WRONG=Wr0ng-pa55-5521
printf 'http://%s:%s@127.0.0.1:%s\n' "$LFS_USER" "$WRONG" "$LFS_PORT" > "$CREDS"
lfsfs_mount "$C" "$M" --cache-dir "$T/cache5" || fail "mount failed"
expect_errno EIO read "$M/a.bin"
assert_log "lfs: CREDENTIALS_MISSING: $LFS_BASE/team/data.git/info/lfs refused the credentials .git credential fill. gave for http://127.0.0.1:$LFS_PORT \(HTTP 401\)" \
    "no clear log line for refused credentials"
grep -q "$WRONG" "$CREDS" && fail "the refused credentials are still in the helper (git credential reject not run)"
info "  and without any credentials"
expect_errno EIO read "$M/b.bin"
assert_log "needs credentials \(HTTP 401\) and .git credential fill. has none for http://127.0.0.1:$LFS_PORT" \
    "no clear log line for missing credentials"
lfsfs_umount "$M" || fail "umount failed"

info "no secret reaches the log"
for s in "$LFS_PASS" "$WRONG" RemoteAuth 'sig=[0-9a-f]'; do
    if grep -Eq -- "$s" "$LFSFS_LOG"; then fail "the log shows a secret ($s)"; fi
done
exit 0
