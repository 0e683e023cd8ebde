#!/usr/bin/env bash
# scripts/demo.sh - the "make demo" tour of lfsfs.
#
# Starts a throwaway nginx origin on 127.0.0.1, makes a small git repository of
# Git LFS pointers (written by stock git-lfs) plus .lfs-meta records, mounts it,
# reads a range and whole files, checks every sha256, shows xattrs and cache
# stats, and cleans up. Builds nothing: uses $LFSFS_BIN or ./build/lfsfs.
# Needs root (FUSE + nginx), fuse3, nginx, git, git-lfs, openssl, curl, python3.
# Exits non-zero if any verification fails.
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
LFSFS_BIN="${LFSFS_BIN:-$SRC/build/lfsfs}"
MiB=$((1024 * 1024))

if [ -t 1 ]; then B=$'\e[1m'; G=$'\e[32m'; RED=$'\e[31m'; N=$'\e[0m'; else B=; G=; RED=; N=; fi
say()  { printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }
run()  { printf '%s$ %s%s\n' "$B" "$*" "$N"; "$@"; }
ok()   { printf '%s  ok:%s %s\n' "$G" "$N" "$*"; }
die()  { printf '%sdemo failed:%s %s\n' "$RED" "$N" "$*" >&2; exit 1; }

[ -x "$LFSFS_BIN" ] || die "no lfsfs binary at $LFSFS_BIN (build it: cmake --build build)"
[ "$(id -u)" -eq 0 ] || die "run as root (FUSE mount + nginx)"
[ -c /dev/fuse ] || die "/dev/fuse is missing"
for c in nginx git git-lfs openssl curl python3 getfattr fusermount3; do
    command -v "$c" >/dev/null 2>&1 || [ -x "/usr/sbin/$c" ] || die "$c is not installed"
done

# shellcheck source=../tests/lib/origin.sh
. "$SRC/tests/lib/origin.sh"

D="$(mktemp -d "${TMPDIR:-/tmp}/lfsfs-demo.XXXXXX")"
M="$D/mnt"
CACHE="$D/cache"
LOG="$D/lfsfs.log"
mounted=0
cleanup() {
    local rc=$?
    set +e
    if [ "$mounted" = 1 ]; then
        "$LFSFS_BIN" umount "$M" >/dev/null 2>&1 || fusermount3 -uz "$M" 2>/dev/null
    fi
    origin_stop
    if [ "$rc" -ne 0 ] && [ -f "$LOG" ]; then
        echo "---- last lines of the lfsfs log ----" >&2
        tail -n 20 "$LOG" >&2
    fi
    rm -rf "$D"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export GIT_AUTHOR_NAME="lfsfs demo" GIT_AUTHOR_EMAIL="demo@lfsfs.invalid"
export GIT_COMMITTER_NAME="lfsfs demo" GIT_COMMITTER_EMAIL="demo@lfsfs.invalid"

say "Start a local nginx origin (HTTP + HTTPS, throwaway CA) holding the objects"
origin_start "$D/origin" || die "could not start nginx"
W="$ORIGIN_ROOT"
mkdir -p "$W/objects"
head -c $((32 * MiB)) /dev/urandom > "$W/objects/sample.bam"
python3 - "$W/objects/variants.vcf" <<'PY'
import random, sys
rng = random.Random(42)
with open(sys.argv[1], "w") as f:
    f.write("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
    for i in range(2000):
        f.write(f"chr1\t{1000 + i * 37}\trs{100000 + i}\t{rng.choice('ACGT')}\t{rng.choice('ACGT')}\t{rng.randint(10, 99)}\tPASS\tDP={rng.randint(5, 80)}\n")
PY
head -c $((3 * MiB)) /dev/urandom > "$W/objects/reads.cram"
echo "  origin: $ORIGIN_HTTP_URL  and  $ORIGIN_HTTPS_URL  (serving $W)"
ls -l "$W/objects" | sed 's/^/  /'

say "Make a git repository whose files are Git LFS pointers (written by stock git-lfs)"
R="$D/repo"
git init -q -b main "$R"
printf '*.bam filter=lfs diff=lfs merge=lfs -text\n*.vcf filter=lfs diff=lfs merge=lfs -text\n' > "$R/.gitattributes"
printf '# Demo study\nSample data for the lfsfs demo.\n' > "$R/README.md"
mkdir -p "$R/data" "$R/.lfs-meta/sha256"
add_object() {  # add_object REPO_PATH ORIGIN_NAME URL
    local path="$1" obj="$W/objects/$2" url="$3" oid
    git lfs pointer --file="$obj" 2>/dev/null > "$R/$path"
    oid=$(sed -n 's/^oid sha256://p' "$R/$path")
    printf '{"sha256": "%s", "url": "%s", "size": %s}\n' "$oid" "$url" "$(stat -c %s "$obj")" \
        > "$R/.lfs-meta/sha256/$oid.json"
}
add_object data/sample.bam sample.bam "$ORIGIN_HTTP_URL/objects/sample.bam"
add_object data/variants.vcf variants.vcf "$ORIGIN_HTTPS_URL/objects/variants.vcf"
# a metadata-only entry: no file in the tree, just a record (URL, size, ETag)
etag=$(curl -sSI "$ORIGIN_HTTP_URL/objects/reads.cram" | awk -F': ' 'tolower($1) == "etag" { print $2 }' | tr -d '\r')
python3 - "$R/.lfs-meta/metadata.json" "$ORIGIN_HTTP_URL/objects/reads.cram" \
    "$(stat -c %s "$W/objects/reads.cram")" "$etag" <<'PY'
import json, sys
out, url, size, etag = sys.argv[1:5]
with open(out, "w") as f:
    json.dump({"data/extra/reads.cram": {"remote_url": url, "size": int(size), "etag": etag}}, f, indent=2)
    f.write("\n")
PY
git -C "$R" add -A && git -C "$R" commit -q -m "demo data"
echo "  the pointer for data/sample.bam, as committed:"
sed 's/^/    /' "$R/data/sample.bam"
echo "  the repository is $(du -sh --exclude=.git "$R" | cut -f1) on disk"

say "Mount it (the HTTPS object is trusted through SSL_CERT_FILE = the test CA)"
mkdir -p "$M"
origin_log_reset
# CURL_CA_BUNDLE would win over SSL_CERT_FILE: drop any inherited one
run env -u CURL_CA_BUNDLE -u SSL_CERT_DIR SSL_CERT_FILE="$ORIGIN_CA" "$LFSFS_BIN" mount --cache-dir "$CACHE" --log-file "$LOG" "$R" "$M" </dev/null
mounted=1

say "List it: pointers show their objects' real sizes; the metadata-only entry appears too"
run ls -lR "$M/data"
[ "$(stat -c %s "$M/data/sample.bam")" -eq $((32 * MiB)) ] || die "sample.bam has the wrong size"
ok "sample.bam is 32 MiB in the mount, $(stat -c %s "$R/data/sample.bam") bytes in git"

say "Read 64 KiB from the middle of sample.bam: only that range is fetched"
run dd if="$M/data/sample.bam" of="$D/range.out" bs=64K skip=200 count=1 status=none
dd if="$W/objects/sample.bam" of="$D/range.want" bs=64K skip=200 count=1 status=none
cmp -s "$D/range.out" "$D/range.want" || die "the range read returned wrong bytes"
served=$(origin_bytes_served /objects/sample.bam)
ok "bytes match; the origin served $served of $((32 * MiB)) bytes ($(origin_count_requests /objects/sample.bam) request(s))"
grep 'sample.bam' "$ORIGIN_LOG" | sed 's/^/    nginx: /'

say "Read whole files and check them against the sha256 oids in their pointers"
for f in data/sample.bam data/variants.vcf; do
    want=$(sed -n 's/^oid sha256://p' "$R/$f")
    got=$(sha256sum "$M/$f" | cut -d' ' -f1)
    [ "$got" = "$want" ] || die "$f: sha256 $got, pointer says $want"
    ok "$f sha256 $got"
done
got=$(sha256sum "$M/data/extra/reads.cram" | cut -d' ' -f1)
want=$(sha256sum "$W/objects/reads.cram" | cut -d' ' -f1)
[ "$got" = "$want" ] || die "data/extra/reads.cram: sha256 $got, origin has $want"
ok "data/extra/reads.cram (metadata-only) sha256 $got"
run head -n 3 "$M/data/variants.vcf"

say "Read sample.bam again: served from the cache, the origin sees no new request"
before=$(origin_count_requests)
sha256sum "$M/data/sample.bam" >/dev/null
after=$(origin_count_requests)
[ "$after" -eq "$before" ] || die "the second read made $((after - before)) origin request(s)"
ok "origin requests before and after the second read: $before / $after"

say "Extended attributes tell where each file comes from and how much is cached"
run getfattr -d -m 'user.lfsfs' --absolute-names "$M/data/sample.bam" "$M/data/variants.vcf"
[ "$(getfattr --only-values -n user.lfsfs.state "$M/data/sample.bam" 2>/dev/null)" = verified ] ||
    die "sample.bam is not in state 'verified'"
ok "sample.bam is verified"

say "The mount is read-only"
if (echo oops > "$M/README.md") 2>"$D/err"; then die "a write succeeded"; fi
ok "write refused: $(sed 's/^.*: //' "$D/err")"

say "Unmount, then look at the cache"
run "$LFSFS_BIN" umount "$M"
mounted=0
run "$LFSFS_BIN" cache stat --cache-dir "$CACHE"
run "$LFSFS_BIN" cache stat --cache-dir "$CACHE" --json
echo
printf '%sdemo finished: every check passed.%s\n' "$G" "$N"
