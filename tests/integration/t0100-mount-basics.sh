#!/usr/bin/env bash
# t0100-mount-basics: mount/umount lifecycle and the read-only repository view.
#   - mount refuses a non-repo, a missing mountpoint, a file as mountpoint, a busy
#     mountpoint and a second mount on the same cache dir (non-zero + message)
#   - mount exits 0 only when the mount is ready (usable immediately)
#   - listing: .git hidden, ordinary files/dirs pass through, pointer files show
#     the pointer's size and are regular, non-writable files; a file that only
#     looks like a pointer (bad oid) passes through as an ordinary file
#   - listing and stat fetch no object bytes from the origin
#   - symlinks stay symlinks
#   - EROFS for write/create/mkdir/unlink/truncate/rename/rmdir/chmod/...
#   - umount waits for the daemon to exit
. "$(dirname "$0")/../lib/common.sh"

origin_start "$T/origin"
gen_file "$ORIGIN_ROOT/a.bin" $((1024 * 1024 + 123))
gen_file "$ORIGIN_ROOT/b.bam" 4097
gen_file "$ORIGIN_ROOT/c.dat" 1

R="$T/repo"
make_repo "$R"
printf 'hello, lfsfs\n' > "$R/README.md"
mkdir -p "$R/docs/empty-dir-keeper"
printf 'nested plain text\n' > "$R/docs/notes.txt"
touch "$R/docs/empty-dir-keeper/.keep"
repo_add_pointer "$R" a.bin "$ORIGIN_ROOT/a.bin" "$ORIGIN_HTTP_URL/a.bin"
repo_add_pointer "$R" data/sub/b.bam "$ORIGIN_ROOT/b.bam" "$ORIGIN_HTTP_URL/b.bam"
repo_add_pointer "$R" data/c.dat "$ORIGIN_ROOT/c.dat" "$ORIGIN_HTTP_URL/c.dat"
# looks like a pointer but the oid is not 64 hex digits: an ordinary file
printf 'version https://git-lfs.github.com/spec/v1\noid sha256:1234abcd\nsize 99999\n' \
    > "$R/not-a-pointer.txt"
ln -s README.md "$R/link-to-readme"
ln -s data/sub "$R/link-to-dir"
ln -s does/not/exist "$R/dangling"
repo_commit "$R"

# ---------------------------------------------------------------- refusals
info "mount refuses bad arguments"
mkdir -p "$T/notrepo" "$T/mnt"
echo x > "$T/notrepo/file"
rc=0; "$LFSFS_BIN" mount --cache-dir "$T/c-err" --log-file "$T/err.log" "$T/notrepo" "$T/mnt" \
    >"$T/out" 2>&1 </dev/null || rc=$?
[ "$rc" -ne 0 ] || fail "mount of a non-repo exited 0"
[ -s "$T/out" ] || fail "mount of a non-repo gave no message"
is_fuse_mounted "$T/mnt" && fail "non-repo got mounted"
info "  non-repo: rc=$rc: $(head -1 "$T/out")"

rc=0; "$LFSFS_BIN" mount --cache-dir "$T/c-err" --log-file "$T/err.log" "$R" "$T/does-not-exist" \
    >"$T/out" 2>&1 </dev/null || rc=$?
[ "$rc" -ne 0 ] || fail "mount on a nonexistent mountpoint exited 0"
[ -s "$T/out" ] || fail "mount on a nonexistent mountpoint gave no message"
info "  missing mountpoint: rc=$rc: $(head -1 "$T/out")"

rc=0; "$LFSFS_BIN" mount --cache-dir "$T/c-err" --log-file "$T/err.log" "$R" "$T/notrepo/file" \
    >"$T/out" 2>&1 </dev/null || rc=$?
[ "$rc" -ne 0 ] || fail "mount on a regular file exited 0"
info "  file as mountpoint: rc=$rc: $(head -1 "$T/out")"

rc=0; "$LFSFS_BIN" mount --cache-dir "$T/c-err" --log-file "$T/err.log" "$T/no-such-repo" "$T/mnt" \
    >"$T/out" 2>&1 </dev/null || rc=$?
[ "$rc" -ne 0 ] || fail "mount of a nonexistent repo exited 0"
is_fuse_mounted "$T/mnt" && fail "nonexistent repo got mounted"

# ---------------------------------------------------------------- mount
info "mount is ready when lfsfs mount returns"
M="$T/mnt"
lfsfs_mount "$R" "$M" || fail "lfsfs mount failed (rc=$?)"
is_fuse_mounted "$M" || fail "lfsfs mount exited 0 but $M is not a FUSE mount"
# no sleep: usable right away
[ -f "$M/README.md" ] || fail "README.md not visible right after mount returned"
pid=$(lfsfs_daemon_pid "$M")
[ -n "$pid" ] || fail "cannot find the lfsfs daemon process for $M"
info "  daemon pid $pid"

info "a busy mountpoint and a locked cache dir are refused"
rc=0; "$LFSFS_BIN" mount --cache-dir "$T/c-other" --log-file "$T/err.log" "$R" "$M" \
    >"$T/out" 2>&1 </dev/null || rc=$?
if [ "$rc" -eq 0 ]; then
    _T_MOUNTS+=("$M")
    fail "second mount on a busy mountpoint exited 0"
fi
info "  busy mountpoint: rc=$rc: $(head -1 "$T/out")"
mkdir -p "$T/mnt2"
rc=0; "$LFSFS_BIN" mount --cache-dir "$LFSFS_CACHE" --log-file "$T/err.log" "$R" "$T/mnt2" \
    >"$T/out" 2>&1 </dev/null || rc=$?
if [ "$rc" -eq 0 ]; then
    _T_MOUNTS+=("$T/mnt2")
    fail "second mount sharing the cache dir exited 0 (cache dir must be locked)"
fi
is_fuse_mounted "$T/mnt2" && fail "second mount on a locked cache dir is mounted"
info "  locked cache dir: rc=$rc: $(head -1 "$T/out")"
# the first mount is unharmed
[ "$(cat "$M/README.md")" = "hello, lfsfs" ] || fail "first mount broken after refused mounts"

# ---------------------------------------------------------------- listing
info "listing"
top=$(cd "$M" && ls -A | grep -vx '.lfs-meta' | tr '\n' ' ')
assert_eq ".gitattributes README.md a.bin dangling data docs link-to-dir link-to-readme not-a-pointer.txt " \
    "$top" "top-level listing (.lfs-meta ignored)"
assert_eq "c.dat sub " "$(ls -A "$M/data" | tr '\n' ' ')" "data/ listing"
assert_eq "b.bam " "$(ls -A "$M/data/sub" | tr '\n' ' ')" "data/sub listing"
assert_eq "empty-dir-keeper notes.txt " "$(ls -A "$M/docs" | tr '\n' ' ')" "docs/ listing"

info ".git is hidden"
[ -e "$M/.git" ] && fail ".git is visible in the mount"
expect_errno ENOENT read "$M/.git/HEAD"
ls -A "$M" | grep -qx '.git' && fail ".git listed"

info "pointer files show the object's size and are read-only regular files"
for p in a.bin data/sub/b.bam data/c.dat; do
    want=$(stat -c %s "$ORIGIN_ROOT/$(basename "$p")")
    assert_eq "$want" "$(stat -c %s "$M/$p")" "size of $p"
    assert_eq "regular file" "$(stat -c %F "$M/$p")" "type of $p"
    mode=$(stat -c %a "$M/$p")
    [ $(( 8#$mode & 8#222 )) -eq 0 ] || fail "$p has write permission bits (mode $mode)"
    [ $(( 8#$mode & 8#444 )) -ne 0 ] || fail "$p is not readable (mode $mode)"
done
# ls -l agrees with stat (readdir attributes vs lookup attributes)
lsz=$(ls -l "$M" | awk '$NF == "a.bin" { print $5 }')
assert_eq "$((1024 * 1024 + 123))" "$lsz" "ls -l size of a.bin"
find "$M" -name b.bam -size "4097c" | grep -q . || fail "find -size does not see b.bam as 4097 bytes"

info "ordinary files pass through"
assert_file_eq "$R/README.md" "$M/README.md" "README.md"
assert_file_eq "$R/docs/notes.txt" "$M/docs/notes.txt" "docs/notes.txt"
assert_file_eq "$R/.gitattributes" "$M/.gitattributes" ".gitattributes"
assert_file_eq "$R/not-a-pointer.txt" "$M/not-a-pointer.txt" "not-a-pointer.txt (invalid oid => ordinary)"
assert_eq "$(stat -c %s "$R/not-a-pointer.txt")" "$(stat -c %s "$M/not-a-pointer.txt")" \
    "size of not-a-pointer.txt"
[ -d "$M/docs/empty-dir-keeper" ] || fail "docs/empty-dir-keeper is not a directory"

info "listing and stat fetched no object bytes"
gets=$(grep -c '"GET ' "$ORIGIN_LOG" || true)
assert_eq 0 "$gets" "GET requests to the origin caused by listing/stat"

info "symlinks stay symlinks"
[ -L "$M/link-to-readme" ] || fail "link-to-readme is not a symlink"
assert_eq README.md "$(readlink "$M/link-to-readme")" "readlink link-to-readme"
assert_eq "hello, lfsfs" "$(cat "$M/link-to-readme")" "read through link-to-readme"
[ -L "$M/link-to-dir" ] || fail "link-to-dir is not a symlink"
assert_eq data/sub "$(readlink "$M/link-to-dir")" "readlink link-to-dir"
assert_eq "b.bam" "$(ls "$M/link-to-dir/")" "listing through link-to-dir"
[ -L "$M/dangling" ] || fail "dangling is not a symlink"
assert_eq does/not/exist "$(readlink "$M/dangling")" "readlink dangling"

info "every modification fails with EROFS"
expect_errno EROFS open_w "$M/a.bin"
expect_errno EROFS open_rw "$M/a.bin"
expect_errno EROFS open_trunc "$M/a.bin"
expect_errno EROFS open_append "$M/README.md"
expect_errno EROFS open_w "$M/README.md"
expect_errno EROFS creat "$M/new-file"
expect_errno EROFS creat "$M/data/new-file"
expect_errno EROFS mkdir "$M/newdir"
expect_errno EROFS unlink "$M/a.bin"
expect_errno EROFS unlink "$M/README.md"
expect_errno EROFS unlink "$M/link-to-readme"
expect_errno EROFS rmdir "$M/docs/empty-dir-keeper"
expect_errno EROFS truncate "$M/a.bin" 0
expect_errno EROFS truncate "$M/README.md" 1
expect_errno EROFS rename "$M/a.bin" "$M/a2.bin"
expect_errno EROFS symlink README.md "$M/newlink"
expect_errno EROFS link "$M/README.md" "$M/hardlink"
expect_errno EROFS chmod "$M/a.bin"
expect_errno EROFS setxattr "$M/a.bin"
expect_errno EROFS mknod "$M/fifo"
# shell-level too
if (echo x > "$M/README.md") 2>/dev/null; then fail "shell redirect into README.md succeeded"; fi
if touch "$M/touched" 2>/dev/null; then fail "touch of a new file succeeded"; fi
[ -e "$M/new-file" ] || [ -e "$M/newdir" ] || [ -e "$M/touched" ] && fail "a created entry appeared"
assert_file_eq "$R/README.md" "$M/README.md" "README.md after write attempts"
assert_eq "$((1024 * 1024 + 123))" "$(stat -c %s "$M/a.bin")" "a.bin size after truncate attempt"
# the repository itself is untouched
assert_eq "" "$(git -C "$R" status --porcelain)" "git status of the repo after write attempts"

# ---------------------------------------------------------------- umount
info "umount waits for the daemon"
lfsfs_umount "$M" || fail "lfsfs umount failed"
is_fuse_mounted "$M" && fail "$M still mounted after lfsfs umount"
pid_alive "$pid" && fail "daemon $pid still running after lfsfs umount returned"

info "remount after umount works (cache lock released)"
lfsfs_mount "$R" "$M" || fail "remount failed"
assert_eq "hello, lfsfs" "$(cat "$M/README.md")" "README.md after remount"
lfsfs_umount "$M" || fail "second umount failed"
exit 0
