#!/usr/bin/env bash
# t0600-eviction: --cache-size keeps the cache under its limit (LRU).
#   - 8 MiB cache, read 7 files of 6 MiB (~5x the limit), each correct
#   - the data the cache holds on disk (du, LMDB excluded) stays near the limit
#     during the mount; `cache stat` (while mounted and after) cached_bytes
#     <= limit_bytes (limit_bytes is reported while the mount is active)
#   - files still read correctly afterwards (evicted ones are fetched again,
#     proving eviction happened); the most recently read file is still cached
. "$(dirname "$0")/../lib/common.sh"

MiB=$((1024 * 1024))
LIMIT=$((8 * MiB))
origin_start "$T/origin"
W="$ORIGIN_ROOT"
FILES=""
for i in 1 2 3 4 5 6 7; do
    gen_file "$W/f$i.bin" $((6 * MiB + i))
    FILES="$FILES f$i.bin"
done

R="$T/repo"
make_repo "$R"
for f in $FILES; do repo_add_pointer "$R" "$f" "$W/$f" "$ORIGIN_HTTP_URL/$f"; done
repo_commit "$R"

# allocated bytes of cache files other than LMDB's own (data blocks)
cache_data_kib() {
    find "$LFSFS_CACHE" -type f ! -name '*.mdb' ! -name '*lock*' -print0 2>/dev/null |
        du -ck --files0-from=- 2>/dev/null | awk 'END { print $1 + 0 }'
}

M="$T/mnt"
lfsfs_mount "$R" "$M" --cache-size 8M || fail "mount with --cache-size 8M failed"
max_kib=0
for f in $FILES; do
    assert_eq "$(sha256_of "$W/$f")" "$(sha256_of "$M/$f")" "sha256 of $f (first pass)"
    sleep 0.2
    k=$(cache_data_kib)
    [ "$k" -gt "$max_kib" ] && max_kib=$k
    js=$(lfsfs_cache_stat) || fail "cache stat --json while mounted failed"
    cb=$(json_get "$js" cached_bytes)
    info "  after $f: cache stat cached_bytes $cb, data on disk ${k} KiB"
    assert_eq "$LIMIT" "$(json_get "$js" limit_bytes)" "limit_bytes for --cache-size 8M"
    [ "$cb" -le "$LIMIT" ] || fail "cached_bytes $cb > limit $LIMIT after reading $f"
done
info "max cache data on disk during the first pass: ${max_kib} KiB (limit $((LIMIT / 1024)) KiB)"
# one block (1 MiB) of slack for a fetch in flight while eviction catches up
[ "$max_kib" -le $(( (LIMIT + MiB) / 1024 )) ] ||
    fail "cache data on disk reached ${max_kib} KiB with an 8 MiB limit"
[ "$max_kib" -ge $(( 5 * MiB / 1024 )) ] || fail "cache data on disk only ${max_kib} KiB: is anything cached?"

info "the last file read is still cached, the first was evicted"
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
n0=$(count_requests)
assert_eq "$(sha256_of "$W/f7.bin")" "$(sha256_of "$M/f7.bin")" "sha256 of f7.bin (re-read)"
assert_eq "$n0" "$(count_requests)" "origin requests for re-reading the most recent file"
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
assert_eq "$(sha256_of "$W/f1.bin")" "$(sha256_of "$M/f1.bin")" "sha256 of f1.bin (evicted, refetched)"
n1=$(count_requests)
[ "$n1" -gt "$n0" ] || fail "re-reading the oldest file made no origin requests: nothing was evicted"

info "second pass in another order"
for f in f3.bin f6.bin f2.bin f5.bin f4.bin; do
    assert_eq "$(sha256_of "$W/$f")" "$(sha256_of "$M/$f")" "sha256 of $f (second pass)"
done
python3 "$LFSFS_TESTLIB/random_reads.py" random "$M/f2.bin" "$W/f2.bin" --count 40 --seed 2 >/dev/null ||
    fail "random preads of f2.bin under eviction differ"
k=$(cache_data_kib)
[ "$k" -le $(( (LIMIT + MiB) / 1024 )) ] || fail "cache data on disk ${k} KiB after the second pass"
lfsfs_umount "$M" || fail "umount failed"

info "cache stat after umount"
js=$(lfsfs_cache_stat) || fail "cache stat failed"
info "  $(echo "$js" | tr -d '\n\t')"
cb=$(json_get "$js" cached_bytes)
[ "$cb" -le "$LIMIT" ] || fail "cached_bytes $cb > limit $LIMIT"
[ "$cb" -gt 0 ] || fail "cached_bytes is 0: the cache holds nothing"
k=$(cache_data_kib)
[ "$k" -le $(( (LIMIT + MiB) / 1024 )) ] || fail "cache data on disk ${k} KiB after umount"
du -sk "$LFSFS_CACHE" | sed 's/^/  du -sk cache: /' >&2

info "remount: files still read correctly"
lfsfs_mount "$R" "$M" --cache-size 8M || fail "remount failed"
for f in $FILES; do
    assert_eq "$(sha256_of "$W/$f")" "$(sha256_of "$M/$f")" "sha256 of $f after remount"
done
lfsfs_umount "$M" || fail "umount failed"
js=$(lfsfs_cache_stat) || fail "cache stat failed"
cb=$(json_get "$js" cached_bytes)
[ "$cb" -le "$LIMIT" ] || fail "cached_bytes $cb > limit $LIMIT after remount pass"
exit 0
