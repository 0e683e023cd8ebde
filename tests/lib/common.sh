# shellcheck shell=bash
# tests/lib/common.sh - sourced by every integration test (tests/integration/t*.sh).
#
# Provides strict mode, skip/fail, a private scratch dir ($T), the lfsfs
# binary ($LFSFS_BIN), mount helpers that always use a private cache dir and
# log file, a cleanup trap (unmounts, stops nginx, kills background jobs even
# on failure), assertions, and helpers to build git repos with Git LFS pointers
# (made by stock git-lfs) and .lfs-meta records.
#
# Exit codes: 0 pass, 1 fail, 77 skip (ctest SKIP_RETURN_CODE).

set -euo pipefail
umask 022

LFSFS_TESTLIB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
LFSFS_SRC="${LFSFS_SRC:-$(cd "$LFSFS_TESTLIB/../.." && pwd -P)}"
LFSFS_BIN="${LFSFS_BIN:-/work/main/build/lfsfs}"
TEST_NAME="$(basename "${BASH_SOURCE[1]:-$0}" .sh)"
export LFSFS_SRC LFSFS_BIN

# shellcheck source=origin.sh
. "$LFSFS_TESTLIB/origin.sh"

# deterministic git, independent of the caller's config
export GIT_AUTHOR_NAME="lfsfs tests" GIT_AUTHOR_EMAIL="tests@lfsfs.invalid"
export GIT_COMMITTER_NAME="lfsfs tests" GIT_COMMITTER_EMAIL="tests@lfsfs.invalid"
export GIT_CONFIG_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0
export LC_ALL=C
# the daemon must not pick up a proxy or CA from the caller by accident
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
unset SSL_CERT_FILE SSL_CERT_DIR CURL_CA_BUNDLE

# ---------------------------------------------------------------- reporting
_T_START=$(date +%s)
info() { printf '[%s +%ss] %s\n' "$TEST_NAME" "$(( $(date +%s) - _T_START ))" "$*" >&2; }
skip() { printf '[%s] SKIP: %s\n' "$TEST_NAME" "$*" >&2; _T_RESULT=skip; exit 77; }
fail() {
    printf '[%s] FAIL: %s\n' "$TEST_NAME" "$*" >&2
    _T_RESULT=fail
    exit 1
}

# ---------------------------------------------------------------- prerequisites
[ "$(id -u)" -eq 0 ] || skip "must run as root (FUSE mounts + nginx)"
[ -c /dev/fuse ] || skip "/dev/fuse missing"
command -v fusermount3 >/dev/null 2>&1 || skip "fusermount3 not installed (fuse3)"
for _c in git git-lfs openssl curl python3 getfattr mountpoint; do
    command -v "$_c" >/dev/null 2>&1 || skip "$_c not installed"
done
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || skip "nginx not installed (nginx-light)"
[ -x "$LFSFS_BIN" ] || skip "lfsfs binary not found at LFSFS_BIN=$LFSFS_BIN (build it first)"
unset _c

# ---------------------------------------------------------------- scratch dir
# Unmount anything still mounted at or below DIR (lazy, last resort).
_unmount_below() {
    local dir="$1" m
    # mountinfo field 5 is the mount point; deepest first
    awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
        sort -r | while read -r m; do
            m=$(printf '%b' "$m")    # mountinfo escapes: \040 etc.
            fusermount3 -uz "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
        done
}

if [ -n "${LFSFS_TEST_TMP:-}" ]; then
    T="$LFSFS_TEST_TMP"
    mkdir -p "$T"
    T="$(cd "$T" && pwd -P)"
    _unmount_below "$T"
    find "$T" -mindepth 1 -maxdepth 1 -exec rm -rf {} + 2>/dev/null || true
    _T_OWN_TMP=0
else
    T="$(mktemp -d "${TMPDIR:-/tmp}/lfsfs-${TEST_NAME}.XXXXXX")"
    _T_OWN_TMP=1
fi
export T
LFSFS_LOG="$T/lfsfs.log"          # default daemon log (see lfsfs_mount)
LFSFS_CACHE="$T/cache"            # default cache dir
export LFSFS_LOG LFSFS_CACHE

# ---------------------------------------------------------------- cleanup
_T_RESULT=fail
_T_MOUNTS=()
_T_PIDS=()
_T_CLEANUP_HOOKS=()

on_cleanup() { _T_CLEANUP_HOOKS+=("$*"); }

_is_mounted() {
    # works for stale (ENOTCONN) FUSE mounts too, unlike mountpoint(1)
    awk -v d="$1" '$5 == d { f = 1 } END { exit !f }' /proc/self/mountinfo
}

_cleanup() {
    local rc=$? m p h
    set +e
    trap - EXIT INT TERM
    [ "$rc" -eq 0 ] && _T_RESULT=pass
    [ "$rc" -eq 77 ] && _T_RESULT=skip
    for h in "${_T_CLEANUP_HOOKS[@]+"${_T_CLEANUP_HOOKS[@]}"}"; do eval "$h"; done
    # background jobs of this test (readers etc.)
    for p in $(jobs -p); do kill -TERM "$p" 2>/dev/null; done
    for m in "${_T_MOUNTS[@]+"${_T_MOUNTS[@]}"}"; do
        if _is_mounted "$m"; then
            timeout 20 "$LFSFS_BIN" umount "$m" >/dev/null 2>&1 ||
                fusermount3 -uz "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
        fi
    done
    for p in "${_T_PIDS[@]+"${_T_PIDS[@]}"}"; do
        pid_alive "$p" && kill -TERM "$p" 2>/dev/null
    done
    origin_stop
    _unmount_below "$T"
    if [ "$_T_RESULT" = fail ]; then
        if [ -f "$LFSFS_LOG" ]; then
            echo "---- last 40 lines of $LFSFS_LOG ----" >&2
            tail -n 40 "$LFSFS_LOG" >&2
        fi
        echo "[$TEST_NAME] scratch kept at $T" >&2
    else
        # pass/skip: drop the bulky parts
        if [ "$_T_OWN_TMP" = 1 ]; then rm -rf "$T"
        else rm -rf "$T"/origin/www "$T"/cache* "$T"/data 2>/dev/null; fi
        [ "$_T_RESULT" = pass ] && echo "[$TEST_NAME] PASS ($(( $(date +%s) - _T_START ))s)" >&2
    fi
    exit "$rc"
}
trap _cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- lfsfs helpers
# is_fuse_mounted MNT: MNT is a FUSE mount point right now (stale counts too)
is_fuse_mounted() {
    local mnt
    mnt="$(cd "$1" 2>/dev/null && pwd -P || echo "$1")"
    awk -v d="$mnt" '$5 == d { for (i = 6; i <= NF; i++) if ($i == "-") { if ($(i + 1) ~ /^fuse/) f = 1; break } }
        END { exit !f }' /proc/self/mountinfo
}

# lfsfs_mount REPO MNT [extra args...]
# Adds --cache-dir $LFSFS_CACHE and --log-file $LFSFS_LOG unless given, and
# --log-level ${LFSFS_LOG_LEVEL:-debug}. Returns lfsfs's exit code; output
# is shown on stderr and kept in $T/mount.out.
lfsfs_mount() {
    local repo="$1" mnt="$2"; shift 2
    local args=("$@") have_cache=0 have_log=0 have_level=0 a rc=0
    for a in "${args[@]+"${args[@]}"}"; do
        case "$a" in
            --cache-dir|--cache-dir=*) have_cache=1 ;;
            --log-file|--log-file=*) have_log=1 ;;
            --log-level|--log-level=*) have_level=1 ;;
        esac
    done
    [ $have_cache = 1 ] || args+=(--cache-dir "$LFSFS_CACHE")
    [ $have_log = 1 ] || args+=(--log-file "$LFSFS_LOG")
    [ $have_level = 1 ] || args+=(--log-level "${LFSFS_LOG_LEVEL:-debug}")
    mkdir -p "$mnt"
    _T_MOUNTS+=("$(cd "$mnt" && pwd -P)")
    # output to a file: a daemon that keeps the inherited stdout open must
    # not make $(...) or ctest hang
    "$LFSFS_BIN" mount "${args[@]}" "$repo" "$mnt" >"$T/mount.out" 2>&1 </dev/null || rc=$?
    [ -s "$T/mount.out" ] && sed 's/^/  lfsfs mount: /' "$T/mount.out" >&2
    return $rc
}

# lfsfs_umount MNT
lfsfs_umount() {
    local mnt rc=0
    mnt="$(cd "$1" 2>/dev/null && pwd -P || echo "$1")"
    timeout 30 "$LFSFS_BIN" umount "$mnt" >"$T/umount.out" 2>&1 </dev/null || rc=$?
    [ -s "$T/umount.out" ] && sed 's/^/  lfsfs umount: /' "$T/umount.out" >&2
    return $rc
}

# lfsfs_daemon_pid MNT: pid of the lfsfs daemon serving MNT (empty if none):
# a process holding /dev/fuse open whose argv names MNT (as given or
# resolved); failing that, the only $LFSFS_BIN process holding /dev/fuse.
lfsfs_daemon_pid() {
    local mnt exe p a fusers=()
    mnt="$(cd "$1" 2>/dev/null && pwd -P || echo "$1")"
    exe="$(readlink -f "$LFSFS_BIN")"
    for p in /proc/[0-9]*; do
        find "$p/fd" -maxdepth 1 -lname /dev/fuse 2>/dev/null | grep -q . || continue
        while IFS= read -r -d '' a; do
            if [ "$a" = "$mnt" ] || [ "$a" = "$1" ] || [ "$a" = "${1%/}" ]; then
                echo "${p#/proc/}"; return 0
            fi
        done < "$p/cmdline" 2>/dev/null
        [ "$(readlink "$p/exe" 2>/dev/null)" = "$exe" ] && fusers+=("${p#/proc/}")
    done
    [ "${#fusers[@]}" -eq 1 ] && echo "${fusers[0]}"
    return 0
}

# pid_alive PID: the process exists and is not a zombie (an exited daemon
# reparented to a PID 1 that does not reap stays a zombie)
pid_alive() {
    local st
    st=$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# lfsfs_cache_stat [--cache-dir DIR]: prints the JSON of `cache stat --json`
lfsfs_cache_stat() {
    local dir="$LFSFS_CACHE"
    [ "${1:-}" = --cache-dir ] && dir="$2"
    "$LFSFS_BIN" cache stat --cache-dir "$dir" --json
}

# json_get JSON KEY: top-level key of a JSON object (numbers/strings)
json_get() {
    python3 -c 'import json,sys; v=json.loads(sys.argv[1])[sys.argv[2]]; print(json.dumps(v) if isinstance(v,(dict,list)) else v)' "$1" "$2"
}

# xattr_get FILE NAME: value of an extended attribute (empty + rc 1 if absent)
xattr_get() {
    getfattr --only-values --absolute-names -n "$2" "$1" 2>/dev/null
}

# xattr_oid FILE: user.lfsfs.oid as bare hex (accepts "sha256:<hex>" or "<hex>")
xattr_oid() {
    local v
    v=$(xattr_get "$1" user.lfsfs.oid) || return 1
    printf '%s\n' "${v#sha256:}"
}

# xattrs_consistent FILE: every name listxattr(2) reports can be read with
# getxattr(2) (cp -a, rsync -X, tar --xattrs fail otherwise). Prints problems.
xattrs_consistent() {
    python3 - "$1" <<'PY'
import os, sys
p = sys.argv[1]
bad = []
for n in os.listxattr(p):
    try:
        os.getxattr(p, n)
    except OSError as e:
        bad.append(f"{n}: listed by listxattr but getxattr fails: {e.strerror}")
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
PY
}

# log_has REGEX [FILE]: grep the daemon log
log_has() { grep -Eq -- "$1" "${2:-$LFSFS_LOG}" 2>/dev/null; }

# wait_for SECONDS CMD...: poll until CMD succeeds
wait_for() {
    local limit="$1" i; shift
    for ((i = 0; i < limit * 10; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------- assertions
assert_eq() {
    # assert_eq EXPECTED ACTUAL [MESSAGE]
    [ "$1" = "$2" ] || fail "${3:-assert_eq}: expected '$1', got '$2'"
}
assert_ne() { [ "$1" != "$2" ] || fail "${3:-assert_ne}: both are '$1'"; }
assert_le() {
    # assert_le A B [MESSAGE]  (integers)
    [ "$1" -le "$2" ] || fail "${3:-assert_le}: $1 > $2"
}
assert_file_eq() {
    # assert_file_eq EXPECTED_FILE ACTUAL_FILE [MESSAGE] - compare bytes
    cmp -s "$1" "$2" || fail "${3:-content differs}: $1 vs $2 ($(cmp "$1" "$2" 2>&1 | head -1))"
}
assert_log() {
    # assert_log REGEX [MESSAGE]
    log_has "$1" || fail "${2:-log lacks /$1/} (log: $LFSFS_LOG)"
}
# expect_errno ERRNO OP PATH [ARG]: run a single syscall via fsop.py and
# require it to fail with ERRNO (e.g. EROFS, EIO)
expect_errno() {
    local want="$1" got; shift
    got=$(python3 "$LFSFS_TESTLIB/fsop.py" "$@" 2>&1) || true
    [ "$got" = "$want" ] || fail "$* : expected $want, got $got"
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# count_requests [PATH]: requests in the nginx access log (optionally only PATH)
count_requests() { origin_count_requests "$@"; }

# ---------------------------------------------------------------- repo helpers
# make_pointer FILE: print the Git LFS pointer for FILE, made by stock git-lfs
make_pointer() {
    git lfs pointer --file="$1" 2>/dev/null
}

# pointer_oid POINTERFILE: the sha256 hex of a pointer file
pointer_oid() { sed -n 's/^oid sha256:\([0-9a-f]\{64\}\)$/\1/p' "$1"; }

# gen_file PATH SIZE: random bytes (SIZE accepts K/M suffixes, e.g. 3M)
gen_file() {
    mkdir -p "$(dirname "$1")"
    head -c "$2" /dev/urandom > "$1"
}

# make_repo REPO: empty git repo with a .gitattributes tracking *.bin/*.bam/... as LFS
make_repo() {
    local repo="$1"
    mkdir -p "$repo"
    git -C "$repo" init -q -b main
    git -C "$repo" config core.autocrlf false
    printf '%s filter=lfs diff=lfs merge=lfs -text\n' '*.bin' '*.bam' '*.cram' '*.dat' \
        > "$repo/.gitattributes"
    mkdir -p "$repo/.lfs-meta/sha256"
}

# repo_add_pointer REPO PATH SRC URL [ETAG]
# Writes the pointer for SRC (stock git-lfs) at REPO/PATH and a resolver record
# .lfs-meta/sha256/<oid>.json {"sha256","url","size"[,"etag"]}.
repo_add_pointer() {
    local repo="$1" path="$2" src="$3" url="$4" etag="${5:-}" oid size
    mkdir -p "$(dirname "$repo/$path")"
    make_pointer "$src" > "$repo/$path"
    [ -s "$repo/$path" ] || fail "git lfs pointer produced nothing for $src"
    oid=$(pointer_oid "$repo/$path")
    size=$(stat -c %s "$src")
    [ -n "$oid" ] || fail "no oid in pointer for $src"
    repo_add_oid_record "$repo" "$oid" "$url" "$size" "$etag"
}

# repo_add_oid_record REPO OID URL SIZE [ETAG]
repo_add_oid_record() {
    mkdir -p "$1/.lfs-meta/sha256"
    python3 - "$@" <<'PY'
import json, sys
repo, oid, url, size = sys.argv[1:5]
etag = sys.argv[5] if len(sys.argv) > 5 else ""
rec = {"sha256": oid, "url": url, "size": int(size)}
if etag:
    rec["etag"] = etag
with open(f"{repo}/.lfs-meta/sha256/{oid}.json", "w") as f:
    json.dump(rec, f, indent=2)
    f.write("\n")
PY
}

# repo_add_meta REPO PATH URL SIZE [SHA256] [ETAG]
# Adds/overwrites an entry of .lfs-meta/metadata.json (no file in the tree).
repo_add_meta() {
    mkdir -p "$1/.lfs-meta"
    python3 - "$@" <<'PY'
import json, os, sys
repo, path, url, size = sys.argv[1:5]
sha = sys.argv[5] if len(sys.argv) > 5 else ""
etag = sys.argv[6] if len(sys.argv) > 6 else ""
mf = f"{repo}/.lfs-meta/metadata.json"
meta = {}
if os.path.exists(mf):
    with open(mf) as f:
        meta = json.load(f)
ent = {"remote_url": url, "size": int(size)}
if sha:
    ent["sha256"] = sha
if etag:
    ent["etag"] = etag
meta[path] = ent
with open(mf, "w") as f:
    json.dump(meta, f, indent=2, sort_keys=True)
    f.write("\n")
PY
}

# repo_commit REPO [MESSAGE]
repo_commit() {
    git -C "$1" add -A
    git -C "$1" commit -q -m "${2:-test data}"
}

# origin_etag NAME: the ETag nginx serves for ORIGIN_ROOT/NAME (with quotes)
origin_etag() {
    curl -sS -I "$ORIGIN_HTTP_URL/$1" | awk -F': ' 'tolower($1) == "etag" { print $2 }' | tr -d '\r'
}
