#!/usr/bin/env bash
# t0300-cache-reuse: the origin never sees the same bytes twice while cached.
#   - a second read through the same mount makes zero origin requests
#   - after umount + remount with the same cache dir: zero requests, same bytes
#   - `cache stat --json` reports the objects and their bytes
#   - `cache clear` empties the cache; the next read goes to the origin again
. "$(dirname "$0")/../lib/common.sh"

MiB=$((1024 * 1024))
origin_start "$T/origin"
W="$ORIGIN_ROOT"
gen_file "$W/a.bin" $((5 * MiB))
gen_file "$W/b.bin" $((12 * MiB + 7))
gen_file "$W/c.bin" 100
FILES="a.bin b.bin c.bin"
TOTAL=$((5 * MiB + 12 * MiB + 7 + 100))

R="$T/repo"
make_repo "$R"
for f in $FILES; do repo_add_pointer "$R" "$f" "$W/$f" "$ORIGIN_HTTP_URL/$f"; done
repo_commit "$R"

read_all() {   # read_all WHAT: sha256 of every file through the mount
    local f
    for f in $FILES; do
        assert_eq "$(sha256_of "$W/$f")" "$(sha256_of "$M/$f")" "sha256 of $f ($1)"
    done
}

M="$T/mnt"
lfsfs_mount "$R" "$M" --cache-size 1G || fail "mount failed"
read_all "first read"
n1=$(count_requests)
info "first read: $n1 origin requests, $(origin_bytes_served) bytes"
[ "$n1" -gt 0 ] || fail "first read made no origin requests?"
served=$(origin_bytes_served)
[ "$served" -ge "$TOTAL" ] || fail "origin served $served < $TOTAL bytes for a full read"
[ "$served" -le $((TOTAL * 2)) ] || fail "origin served $served bytes for $TOTAL bytes of files (>2x)"
for f in $FILES; do
    assert_eq verified "$(xattr_get "$M/$f" user.lfsfs.state)" "state of $f after first read"
done

info "second read through the same mount: zero origin requests"
# drop the kernel page cache so the reads really reach the daemon
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
read_all "second read"
python3 "$LFSFS_TESTLIB/random_reads.py" random "$M/b.bin" "$W/b.bin" --count 50 --seed 3 >/dev/null ||
    fail "random preads of cached b.bin differ"
assert_eq "$n1" "$(count_requests)" "origin requests after a second read"

_stat_settled() {
    local j
    j=$(lfsfs_cache_stat 2>/dev/null) || return 1
    [ "$(json_get "$j" objects)" = 3 ] && [ "$(json_get "$j" cached_bytes)" -ge "$TOTAL" ]
}
check_stat() {   # check_stat WHEN
    local js cb
    # while mounted the index is committed by a background flusher (~0.5 s)
    wait_for 5 _stat_settled || true
    js=$(lfsfs_cache_stat) || fail "cache stat --json failed ($1)"
    info "  cache stat ($1): $(echo "$js" | tr -d '\n\t')"
    assert_eq 3 "$(json_get "$js" objects)" "cache stat objects ($1)"
    cb=$(json_get "$js" cached_bytes)
    [ "$cb" -ge "$TOTAL" ] || fail "cache stat cached_bytes $cb < $TOTAL ($1)"
    [ "$cb" -le $((TOTAL + 3 * MiB)) ] || fail "cache stat cached_bytes $cb > $TOTAL + 3 blocks ($1)"
    STAT_JSON=$js
}
info "cache stat --json while mounted"
check_stat "while mounted"
assert_eq $((1024 * MiB)) "$(json_get "$STAT_JSON" limit_bytes)" "cache stat limit_bytes for --cache-size 1G"

lfsfs_umount "$M" || fail "umount failed"

info "cache stat --json after umount"
check_stat "after umount"
"$LFSFS_BIN" cache stat --cache-dir "$LFSFS_CACHE" > "$T/stat.txt" || fail "cache stat (text) failed"
[ -s "$T/stat.txt" ] || fail "cache stat (text) printed nothing"

info "remount with the same cache dir: zero origin requests"
lfsfs_mount "$R" "$M" --cache-size 1G || fail "remount failed"
for f in $FILES; do
    st=$(xattr_get "$M/$f" user.lfsfs.state)
    case "$st" in cached|verified) ;; *) fail "state of $f after remount: '$st' (want cached/verified)" ;; esac
done
read_all "after remount"
python3 "$LFSFS_TESTLIB/random_reads.py" random "$M/a.bin" "$W/a.bin" --count 50 --seed 5 >/dev/null ||
    fail "random preads of a.bin after remount differ"
assert_eq "$n1" "$(count_requests)" "origin requests after umount+remount and a full re-read"
lfsfs_umount "$M" || fail "umount failed"

info "cache clear"
"$LFSFS_BIN" cache clear --cache-dir "$LFSFS_CACHE" || fail "cache clear failed"
js=$(lfsfs_cache_stat) || fail "cache stat after clear failed"
info "  $js"
assert_eq 0 "$(json_get "$js" objects)" "objects after cache clear"
assert_eq 0 "$(json_get "$js" cached_bytes)" "cached_bytes after cache clear"
lfsfs_mount "$R" "$M" --cache-size 1G || fail "mount after clear failed"
assert_eq remote "$(xattr_get "$M/a.bin" user.lfsfs.state)" "state of a.bin after cache clear"
read_all "after cache clear"
n2=$(count_requests)
[ "$n2" -gt "$n1" ] || fail "reads after cache clear made no origin requests ($n2 total)"
lfsfs_umount "$M" || fail "umount failed"
exit 0
