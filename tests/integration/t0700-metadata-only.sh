#!/usr/bin/env bash
# t0700-metadata-only: .lfs-meta/metadata.json entries and URL resolution.
#   - entries without a file in the tree appear at their paths, nested
#     directories are created, sizes are right, bytes are right (etag-keyed,
#     no sha256)
#   - file:// URLs work (pointer + .lfs-meta/sha256 record with a file:// url)
#   - a pointer resolved through a metadata.json entry carrying its sha256
#   - entries escaping the repo ("../x", "/abs", "a/../../x") are refused,
#     logged and absent
#   - an unresolvable pointer: EIO on read and SOURCE_NOT_ACCESSIBLE in the log
. "$(dirname "$0")/../lib/common.sh"

MiB=$((1024 * 1024))
origin_start "$T/origin"
W="$ORIGIN_ROOT"
gen_file "$W/m1.vcf" $((200 * 1024))
gen_file "$W/deep.bin" $((3 * MiB + 99))
gen_file "$W/escape.bin" 1234
gen_file "$W/viameta.bin" $((1 * MiB + 1))
gen_file "$W/noetag.bin" $((2 * MiB + 5))
gen_file "$T/data/local.bin" $((2 * MiB + 3))
gen_file "$T/data/unresolved.bin" 4096
m1_etag=$(origin_etag m1.vcf)
deep_etag=$(origin_etag deep.bin)
[ -n "$m1_etag" ] && [ -n "$deep_etag" ] || fail "no ETag from nginx"

R="$T/repo"
make_repo "$R"
printf 'plain\n' > "$R/README.md"
mkdir -p "$R/results"
printf 'existing file\n' > "$R/results/existing.txt"
# metadata-only entries
repo_add_meta "$R" results/m1.vcf "$ORIGIN_HTTP_URL/m1.vcf" $((200 * 1024)) "" "$m1_etag"
repo_add_meta "$R" a/b/c/deep.bin "$ORIGIN_HTTP_URL/deep.bin" $((3 * MiB + 99)) "" "$deep_etag"
# neither sha256 nor etag: keyed by URL, the first response's ETag is pinned
repo_add_meta "$R" results/noetag.bin "$ORIGIN_HTTP_URL/noetag.bin" $((2 * MiB + 5))
# a pointer whose object lives at a file:// URL
repo_add_pointer "$R" local/file.bin "$T/data/local.bin" "file://$T/data/local.bin"
# a pointer in the tree resolved only by a metadata.json entry with its sha256
repo_add_meta "$R" data/viameta.bin "$ORIGIN_HTTP_URL/viameta.bin" $((1 * MiB + 1)) "$(sha256_of "$W/viameta.bin")"
mkdir -p "$R/data"
make_pointer "$W/viameta.bin" > "$R/data/viameta.bin"
# escaping entries: must be refused
repo_add_meta "$R" ../escape.bin "$ORIGIN_HTTP_URL/escape.bin" 1234
repo_add_meta "$R" /abs-escape.bin "$ORIGIN_HTTP_URL/escape.bin" 1234
repo_add_meta "$R" x/../../dotdot-escape.bin "$ORIGIN_HTTP_URL/escape.bin" 1234
# a pointer nobody can resolve
make_pointer "$T/data/unresolved.bin" > "$R/unresolved.bin"
repo_commit "$R"

M="$T/mnt"
lfsfs_mount "$R" "$M" || fail "mount failed"

info "metadata-only entries appear at their paths"
[ -d "$M/results" ] || fail "results/ missing"
assert_eq "existing.txt m1.vcf noetag.bin " "$(ls "$M/results" | tr '\n' ' ')" "results/ listing (tree file + metadata entry)"
for d in a a/b a/b/c local; do
    [ -d "$M/$d" ] || fail "directory $d not created for metadata entries"
done
assert_eq "deep.bin" "$(ls "$M/a/b/c")" "a/b/c listing"
assert_eq "regular file" "$(stat -c %F "$M/results/m1.vcf")" "type of results/m1.vcf"
assert_eq $((200 * 1024)) "$(stat -c %s "$M/results/m1.vcf")" "size of results/m1.vcf"
assert_eq $((3 * MiB + 99)) "$(stat -c %s "$M/a/b/c/deep.bin")" "size of a/b/c/deep.bin"
assert_eq $((2 * MiB + 3)) "$(stat -c %s "$M/local/file.bin")" "size of local/file.bin"
assert_eq "$ORIGIN_HTTP_URL/deep.bin" "$(xattr_get "$M/a/b/c/deep.bin" user.lfsfs.url)" "user.lfsfs.url of a/b/c/deep.bin"
find "$M" -path "$M/.lfs-meta" -prune -o -print > "$T/all.txt"

info "they read correctly (HTTP, etag-keyed and without etag; file://)"
python3 "$LFSFS_TESTLIB/random_reads.py" random "$M/a/b/c/deep.bin" "$W/deep.bin" --count 40 --seed 1 >/dev/null ||
    fail "random preads of a/b/c/deep.bin differ"
assert_eq "$(sha256_of "$W/m1.vcf")" "$(sha256_of "$M/results/m1.vcf")" "sha256 of results/m1.vcf"
assert_eq "$(sha256_of "$W/deep.bin")" "$(sha256_of "$M/a/b/c/deep.bin")" "sha256 of a/b/c/deep.bin"
assert_eq "$(sha256_of "$T/data/local.bin")" "$(sha256_of "$M/local/file.bin")" "sha256 of local/file.bin (file://)"
python3 "$LFSFS_TESTLIB/random_reads.py" random "$M/local/file.bin" "$T/data/local.bin" --count 40 --seed 2 >/dev/null ||
    fail "random preads of local/file.bin (file://) differ"
assert_eq "$(sha256_of "$W/viameta.bin")" "$(sha256_of "$M/data/viameta.bin")" "sha256 of data/viameta.bin (resolved via metadata.json sha256)"
assert_eq "$(sha256_of "$W/viameta.bin")" "$(xattr_oid "$M/data/viameta.bin")" "user.lfsfs.oid of data/viameta.bin"
grep -F '"GET /m1.vcf ' "$ORIGIN_LOG" | grep -vF "if_match=$m1_etag " &&
    fail "a GET for m1.vcf without If-Match although metadata.json gives its etag"
# the sha256 learned on the first full read is exposed
assert_eq "$(sha256_of "$W/m1.vcf")" "$(xattr_oid "$M/results/m1.vcf")" "learned oid of results/m1.vcf"
assert_eq verified "$(xattr_get "$M/results/m1.vcf" user.lfsfs.state)" "state of results/m1.vcf"
# an entry with only remote_url and size reads, learns its ETag and sha256
python3 "$LFSFS_TESTLIB/random_reads.py" random "$M/results/noetag.bin" "$W/noetag.bin" --count 20 --seed 3 >/dev/null ||
    fail "random preads of results/noetag.bin differ"
assert_eq "$(sha256_of "$W/noetag.bin")" "$(sha256_of "$M/results/noetag.bin")" "sha256 of results/noetag.bin"
assert_eq "$(sha256_of "$W/noetag.bin")" "$(xattr_oid "$M/results/noetag.bin")" "learned oid of results/noetag.bin"
noetag_etag=$(xattr_get "$M/results/noetag.bin" user.lfsfs.etag)
[ -n "$noetag_etag" ] || fail "results/noetag.bin has no learned user.lfsfs.etag"
[ "$(grep -F '"GET /noetag.bin ' "$ORIGIN_LOG" | grep -cF "if_match=$noetag_etag ")" -ge 1 ] ||
    fail "no GET for noetag.bin carried the learned ETag as If-Match"

info "entries escaping the repository are refused, logged and absent"
for n in escape.bin abs-escape.bin dotdot-escape.bin; do
    grep -q "$n" "$T/all.txt" && fail "$n appears in the mount: $(grep "$n" "$T/all.txt")"
    [ -e "$T/$n" ] && fail "$n appeared next to the repository"
    grep -F "$n" "$LFSFS_LOG" > "$T/esc.log" || fail "the log does not mention the refused entry $n"
    info "  log: $(head -1 "$T/esc.log")"
done
[ -e "/abs-escape.bin" ] && fail "/abs-escape.bin created"
assert_eq "$(sort "$T/all.txt" | grep -c -E '/\.\.($|/)' || true)" 0 "entries named .. in the mount"

info "an unresolvable pointer: EIO and SOURCE_NOT_ACCESSIBLE"
assert_eq 4096 "$(stat -c %s "$M/unresolved.bin")" "size of unresolved.bin"
expect_errno EIO read "$M/unresolved.bin"
if cat "$M/unresolved.bin" > /dev/null 2>&1; then fail "cat of unresolved.bin succeeded"; fi
assert_log SOURCE_NOT_ACCESSIBLE
# the good files are unaffected
assert_file_eq "$R/README.md" "$M/README.md" "README.md"
assert_file_eq "$R/results/existing.txt" "$M/results/existing.txt" "results/existing.txt"
lfsfs_umount "$M" || fail "umount failed"
exit 0
