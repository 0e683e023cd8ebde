#!/usr/bin/env bash
# t1950-transfer-agent: `lfsfs transfer-agent` as git-lfs's standalone custom transfer agent.
#   - stock `git lfs pull` in a clone (GIT_LFS_SKIP_SMUDGE=1, no LFS server) fills the
#     working tree from the nginx URLs registered in .lfs-meta/sha256/<oid>.json; every
#     file equals the original (sha256), git status is clean
#   - an object whose origin bytes do not hash to its oid fails (CHECKSUM_MISMATCH) and
#     the others still succeed
#   - an object already complete and verified in the lfsfs cache (mounted and read
#     first) is copied from it: nginx sees no request for it; also while a mount holds
#     the cache directory
#   - a protocol transcript driven through stdin: exact replies, progress events,
#     per-object errors that do not stop the agent, nothing but protocol on stdout
. "$(dirname "$0")/../lib/common.sh"

MiB=$((1024 * 1024))
# git-lfs filters in a private global config, not the caller's
export HOME="$T/home" XDG_CONFIG_HOME="$T/home/.config"
mkdir -p "$HOME"
git lfs install --skip-repo >/dev/null || fail "git lfs install failed"

origin_start "$T/origin"
W="$ORIGIN_ROOT"
gen_file "$W/tiny.bin" 1
gen_file "$W/small.bin" 1000
gen_file "$W/odd.bin" $((3 * MiB + 12345))
gen_file "$W/big.bin" $((20 * MiB + 7))
gen_file "$W/sub/nested.dat" 70000
gen_file "$W/cached.bin" $((2 * MiB + 3))
gen_file "$W/bad.bin" 5000
gen_file "$T/orig/unregistered.bin" 4096
gen_file "$T/orig/href.bin" 300000
cp "$T/orig/href.bin" "$W/href.bin"

info "a repository whose objects are registered at nginx URLs"
R="$T/repo"
make_repo "$R"
printf 'plain\n' > "$R/README.md"
for f in tiny.bin small.bin odd.bin big.bin cached.bin; do
    repo_add_pointer "$R" "$f" "$W/$f" "$ORIGIN_HTTP_URL/$f"
done
repo_add_pointer "$R" data/nested.dat "$W/sub/nested.dat" "$ORIGIN_HTTP_URL/sub/nested.dat"
# bad.bin: registered with the oid of its original bytes, then the origin serves
# other bytes of the same size
cp "$W/bad.bin" "$T/orig/bad.bin"
repo_add_pointer "$R" bad.bin "$T/orig/bad.bin" "$ORIGIN_HTTP_URL/bad.bin"
gen_file "$W/bad.bin" 5000
repo_commit "$R"
for f in tiny.bin small.bin odd.bin big.bin cached.bin bad.bin data/nested.dat; do
    git -C "$R" show "HEAD:$f" | grep -q '^oid sha256:' || fail "$f is not committed as a pointer"
done
declare -A WANT
for f in tiny.bin small.bin odd.bin big.bin cached.bin; do WANT[$f]=$(sha256_of "$W/$f"); done
WANT[data/nested.dat]=$(sha256_of "$W/sub/nested.dat")
bad_oid=$(pointer_oid "$R/bad.bin")
cached_oid=$(pointer_oid "$R/cached.bin")
small_oid=$(pointer_oid "$R/small.bin")
big_oid=$(pointer_oid "$R/big.bin")
unreg_oid=$(sha256_of "$T/orig/unregistered.bin")
href_oid=$(sha256_of "$T/orig/href.bin")

info "cached.bin goes into the lfsfs cache through a mount"
CACHE="$T/agent-cache"
M="$T/mnt"
lfsfs_mount "$R" "$M" --cache-dir "$CACHE" || fail "mount failed"
assert_eq "${WANT[cached.bin]}" "$(sha256_of "$M/cached.bin")" "sha256 of cached.bin through the mount"
assert_eq verified "$(xattr_get "$M/cached.bin" user.lfsfs.state)" "state of cached.bin"
lfsfs_umount "$M" || fail "umount failed"

info "a bare remote and a clone without smudging"
git clone -q --bare "$R" "$T/remote.git"
GIT_LFS_SKIP_SMUDGE=1 git clone -q "$T/remote.git" "$T/clone" || fail "clone failed"
C="$T/clone"
grep -q '^oid sha256:' "$C/big.bin" || fail "the clone smudged big.bin (expected a pointer)"
AGENT_LOG="$T/agent.log"
git -C "$C" config lfs.standalonetransferagent lfsfs
git -C "$C" config lfs.customtransfer.lfsfs.path "$LFSFS_BIN"
git -C "$C" config lfs.customtransfer.lfsfs.args \
    "transfer-agent --cache-dir $CACHE --log-file $AGENT_LOG --log-level debug"

info "git lfs pull"
origin_log_reset
rc=0
(cd "$C" && timeout 60 git lfs pull) >"$T/pull.out" 2>&1 || rc=$?
sed 's/^/  git lfs pull: /' "$T/pull.out" >&2
[ "$rc" -ne 0 ] || fail "git lfs pull succeeded although bad.bin's origin bytes are wrong"
grep -q "$bad_oid" "$T/pull.out" || fail "git lfs pull does not name the failed object $bad_oid"
grep -q CHECKSUM_MISMATCH "$T/pull.out" || fail "git lfs pull does not say CHECKSUM_MISMATCH"
for f in "${!WANT[@]}"; do
    assert_eq "${WANT[$f]}" "$(sha256_of "$C/$f")" "sha256 of $f after git lfs pull"
    [ -f "$C/.git/lfs/objects/$(pointer_oid "$R/$f" | cut -c1-2)/$(pointer_oid "$R/$f" | cut -c3-4)/$(pointer_oid "$R/$f")" ] ||
        fail "$f is not in .git/lfs/objects"
done
grep -q '^oid sha256:' "$C/bad.bin" || fail "bad.bin is no longer a pointer"
[ ! -e "$C/.git/lfs/objects/${bad_oid:0:2}/${bad_oid:2:2}/$bad_oid" ] || fail "bad.bin's object was stored"
st=$(git -C "$C" status --porcelain)
assert_eq "" "$st" "git status after git lfs pull"
grep -q "$bad_oid: CHECKSUM_MISMATCH" "$AGENT_LOG" || fail "the agent log lacks the checksum mismatch"

info "cached.bin came from the cache, the others from nginx"
assert_eq 0 "$(count_requests /cached.bin)" "requests for cached.bin"
grep -q "$cached_oid: copying .* from the lfsfs cache" "$AGENT_LOG" || fail "the agent log does not show the cache copy"
for p in /tiny.bin /small.bin /odd.bin /big.bin /sub/nested.dat /bad.bin; do
    [ "$(count_requests "$p")" -gt 0 ] || fail "no request for $p"
done
# several ranged GETs for big.bin (16 MiB each), every one with If-Match once the ETag is known
n_big=$(count_requests /big.bin)
[ "$n_big" -ge 2 ] || fail "big.bin fetched in $n_big request(s), expected ranged chunks"
etag=$(origin_etag big.bin)
grep -F '"GET /big.bin ' "$ORIGIN_LOG" | tail -n 1 | grep -qF "if_match=$etag " ||
    fail "the last GET for big.bin had no If-Match"
# nothing left behind in git-lfs's temp directory by the agent
left=$(find "$C/.git/lfs/tmp" -name 'lfsfs-*' | wc -l)
assert_eq 0 "$left" "temp files left by the agent"

info "protocol transcript through stdin"
agent() { (cd "$C" && "$LFSFS_BIN" transfer-agent --cache-dir "$CACHE" --log-level debug "$@"); }
line() { printf '{"event":"%s","oid":"%s","size":%s,"action":%s}\n' "$@"; }
{
    printf '{"event":"init","operation":"download","remote":"origin","concurrent":true,"concurrenttransfers":3}\n'
    line download "$small_oid" 1000 null
    printf 'this is not json\n'
    printf '{"event":"fly","oid":"%s"}\n' "$small_oid"
    line download "$unreg_oid" 4096 null
    line download "$bad_oid" 5000 null
    line download "$small_oid" 999 null
    printf '{"event":"download","oid":"%s"}\n' "$small_oid"
    line download "$href_oid" 300000 "{\"href\":\"$ORIGIN_HTTP_URL/href.bin\",\"header\":{\"X-Lfsfs-Test\":\"1\"}}"
    line download "$big_oid" $((20 * MiB + 7)) null
    line download "$cached_oid" $((2 * MiB + 3)) null
    line upload "$small_oid" 1000 null
    line upload "$unreg_oid" 4096 null
    line upload "$small_oid" 1000 "{\"href\":\"$ORIGIN_HTTP_URL/upload\"}"
    printf '{"event":"terminate"}\n'
    printf '{"event":"download","oid":"%s","size":1000,"action":null}\n' "$small_oid"
} > "$T/requests"
origin_log_reset
rc=0
agent < "$T/requests" > "$T/replies" 2> "$T/agent.err" || rc=$?
assert_eq 0 "$rc" "exit status of the agent after terminate"
[ -s "$T/agent.err" ] || fail "no log on stderr at --log-level debug"
python3 - "$T/replies" "$C" "$small_oid" "$unreg_oid" "$bad_oid" "$href_oid" "$big_oid" "$cached_oid" \
    "$T/orig/href.bin" "$W/small.bin" "$W/big.bin" "$W/cached.bin" <<'PY' || fail "protocol transcript differs"
import hashlib, json, os, re, sys
(replies, clone, small, unreg, bad, href, big, cached,
 href_src, small_src, big_src, cached_src) = sys.argv[1:]
MiB = 1 << 20
lines = open(replies, "rb").read().decode().split("\n")
assert lines[-1] == "", "output does not end with a newline"
lines = lines[:-1]
msgs = []
for i, l in enumerate(lines):
    try:
        msgs.append(json.loads(l))
    except ValueError:
        sys.exit(f"line {i + 1} of stdout is not JSON: {l!r}")
pos = 0
def take():
    global pos
    if pos >= len(lines):
        sys.exit(f"missing reply #{pos + 1}")
    pos += 1
    return lines[pos - 1], msgs[pos - 1]
def exact(want):
    l, _ = take()
    if l != want:
        sys.exit(f"reply #{pos}:\n  got  {l}\n  want {want}")
def progress_then_complete(oid, size, src):
    so_far, n = 0, 0
    while True:
        l, m = take()
        if m.get("event") != "progress":
            break
        n += 1
        assert m["oid"] == oid, l
        assert m["bytesSoFar"] == so_far + m["bytesSinceLast"], f"inconsistent progress {l}"
        assert m["bytesSinceLast"] > 0, l
        so_far = m["bytesSoFar"]
        if so_far < size:
            assert m["bytesSinceLast"] >= MiB, f"progress step under 1 MiB before the end: {l}"
    assert n >= 1, f"no progress event for {oid}"
    assert so_far == size, f"last progress for {oid} says {so_far}, size {size}"
    assert set(m) == {"event", "oid", "path"}, f"unexpected members: {l}"
    assert m["event"] == "complete" and m["oid"] == oid, l
    p = m["path"]
    tmp = os.path.join(clone, ".git/lfs/tmp")
    assert re.fullmatch(re.escape(tmp) + "/lfsfs-" + oid + "-[A-Za-z0-9]{6}", p), f"path {p}"
    got = hashlib.sha256(open(p, "rb").read()).hexdigest()
    assert got == oid, f"{p} hashes to {got}"
    assert open(p, "rb").read() == open(src, "rb").read()
    os.unlink(p)
    return n
def object_error(oid, code, text):
    l, m = take()
    assert set(m) == {"event", "oid", "error"}, f"unexpected members: {l}"
    assert m["event"] == "complete" and m["oid"] == oid, l
    assert m["error"]["code"] == code, f"code {m['error']['code']}, want {code}: {l}"
    assert text in m["error"]["message"], f"{text!r} not in {l}"

exact("{}")
progress_then_complete(small, 1000, small_src)
exact('{"error":{"code":2,"message":"request is not valid JSON"}}')
exact('{"error":{"code":2,"message":"unknown event \'fly\' (expected init, download, upload or terminate)"}}')
object_error(unreg, 4, "SOURCE_NOT_ACCESSIBLE: cannot resolve '" + unreg + "'")
object_error(bad, 3, "CHECKSUM_MISMATCH")
object_error(small, 4, "record says 1000 bytes, pointer says 999")
exact('{"event":"complete","oid":"' + small + '","error":{"code":2,"message":"\'download\' request without \\"size\\""}}')
progress_then_complete(href, 300000, href_src)
n = progress_then_complete(big, 20 * MiB + 7, big_src)
assert 2 <= n <= 21, f"{n} progress events for 20 MiB"
progress_then_complete(cached, 2 * MiB + 3, cached_src)
exact('{"event":"complete","oid":"' + small + '"}')
object_error(unreg, 1, "lfsfs does not upload, and this object is not registered")
object_error(small, 1, "lfsfs does not upload: the LFS server wants the bytes")
if pos != len(lines):
    sys.exit(f"unexpected output after terminate: {lines[pos:]}")
PY
assert_eq 0 "$(count_requests /cached.bin)" "requests for cached.bin during the transcript"
[ "$(count_requests /href.bin)" -eq 1 ] || fail "the action href was not fetched exactly once"
grep -F '"GET /href.bin ' "$ORIGIN_LOG" | grep -q 'if_match= ' || fail "an href GET carried If-Match"
[ "$(count_requests /upload)" -eq 0 ] || fail "the agent contacted an upload href"
grep -Eq 'info: .*transfer agent for' "$T/agent.err" || fail "stderr lacks the agent's log"

info "with a mount holding the cache directory, the agent still copies from it"
lfsfs_mount "$R" "$M" --cache-dir "$CACHE" || fail "second mount failed"
origin_log_reset
{
    printf '{"event":"init","operation":"download","remote":"origin","concurrent":false,"concurrenttransfers":1}\n'
    line download "$cached_oid" $((2 * MiB + 3)) null
    printf '{"event":"terminate"}\n'
} | agent > "$T/replies2" 2>"$T/agent2.err" || fail "agent failed while mounted"
path=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["path"])' "$T/replies2") ||
    fail "no complete reply while mounted: $(cat "$T/replies2")"
assert_eq "$cached_oid" "$(sha256_of "$path")" "sha256 of the copy made while mounted"
rm -f "$path"
assert_eq 0 "$(count_requests /cached.bin)" "requests for cached.bin while mounted"
lfsfs_umount "$M" || fail "umount failed"

info "outside a repository, init fails with an error reply and the agent keeps answering"
mkdir -p "$T/norepo"
out=$(cd "$T/norepo" && printf '{"event":"init","operation":"download"}\n{"event":"download","oid":"%s","size":1,"action":null}\n' \
      "$small_oid" | GIT_CEILING_DIRECTORIES="$T" "$LFSFS_BIN" transfer-agent --cache-dir "$CACHE" 2>/dev/null)
first=$(printf '%s\n' "$out" | sed -n 1p)
case "$first" in
    '{"error":{"code":1,"message":"cannot start the lfsfs transfer agent: '*"is not a git working tree"*) ;;
    *) fail "init outside a repository: $first" ;;
esac
second=$(printf '%s\n' "$out" | sed -n 2p)
case "$second" in
    '{"event":"complete","oid":"'"$small_oid"'","error":{"code":2,"message":"a transfer request before a successful '"'init'"'"}}') ;;
    *) fail "download after a failed init: $second" ;;
esac

exit 0
