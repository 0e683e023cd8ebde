#!/usr/bin/env bash
# t1800-drs: a plain Git LFS repository (stock git + git-lfs pointers, no
# .lfs-meta at all) whose bytes are found through a GA4GH DRS 1.4 server or a
# Gen3 Indexd (tests/lib/drs_server.py; no real server is installable here).
#   - lfsfs.drs.url + lfsfs.drs.token: sha256 of every file equals the origin's,
#     through access_id (signed URLs: SigV4-, SAS- and Expires-style), access_url,
#     and access_url with headers; every API request carries the token; neither
#     the token nor a signature reaches the log or the url xattr
#   - a DRS record whose sha256 is not the oid is never used: EIO,
#     SOURCE_NOT_ACCESSIBLE, no byte fetched
#   - a signed URL that expires mid-read (2 s) is refreshed without a failed read:
#     proactively when the URL says when it expires, after a 403 when it does not
#   - a directory listing resolves its pointers in bulk (POST /objects, POST
#     /objects/access), after which reads need no per-object lookups
#   - a Gen3 credentials file: one key exchange serves the whole mount
#   - a wrong token: EIO promptly and a log line naming the server and the fix
#   - lfsfs.resolvers = indexd alone: the same bytes through Indexd records
#   - drs://host/id URIs in .lfs-meta/metadata.json resolve on that server
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=../lib/drs.sh
. "$LFSFS_TESTLIB/drs.sh"

KiB=1024
MiB=$((1024 * 1024))

D="$T/data"
gen_file "$D/big.bin" $((16 * MiB))          # amz-signed, expires mid-read
gen_file "$D/opaque.bin" $((16 * MiB))       # signature lfsfs cannot date
gen_file "$D/odd.bin" $((3 * MiB + 12345))
gen_file "$D/tiny.bin" 1
gen_file "$D/az.bin" $((2 * MiB + 7))        # SAS-style se=
gen_file "$D/exp.bin" $((1 * MiB + 5))       # Expires=
gen_file "$D/url.bin" $((700 * KiB))         # access_url, no access_id
gen_file "$D/hdr.bin" $((300 * KiB + 1))     # access_url with headers
gen_file "$D/bad.bin" $((200 * KiB))         # record claims other bytes
gen_file "$D/sub/deep.bin" $((1 * MiB))
gen_file "$D/meta-only.bin" $((100 * KiB + 3))
ALL="big.bin opaque.bin odd.bin tiny.bin az.bin exp.bin url.bin hdr.bin sub/deep.bin"

# ------------------------------------------------------------------ the repo
# stock git + git-lfs pointers, nothing else: no .lfs-meta, no hints
R="$T/repo"
mkdir -p "$R"
git -C "$R" init -q -b main
printf '%s filter=lfs diff=lfs merge=lfs -text\n' '*.bin' > "$R/.gitattributes"
for f in $ALL bad.bin; do
    mkdir -p "$(dirname "$R/$f")"
    make_pointer "$D/$f" > "$R/$f"
    [ -n "$(pointer_oid "$R/$f")" ] || fail "no pointer for $f"
done
repo_commit "$R"
[ ! -e "$R/.lfs-meta" ] || fail "the repo must have no .lfs-meta"
oid() { pointer_oid "$R/$1"; }

# ------------------------------------------------------------------ the server
objs=$(python3 - "$D" "$(oid big.bin)" "$(oid opaque.bin)" "$(oid odd.bin)" "$(oid tiny.bin)" \
    "$(oid az.bin)" "$(oid exp.bin)" "$(oid url.bin)" "$(oid hdr.bin)" "$(oid bad.bin)" \
    "$(oid sub/deep.bin)" "$(sha256_of "$D/meta-only.bin")" <<'PY'
import json, sys
d = sys.argv[1]
o = dict(zip(["big", "opaque", "odd", "tiny", "az", "exp", "url", "hdr", "bad", "deep", "meta"],
             sys.argv[2:]))
objs = [
    {"id": o["big"], "file": f"{d}/big.bin", "sign": "amz"},
    {"id": o["opaque"], "file": f"{d}/opaque.bin", "sign": "opaque"},
    {"id": o["odd"], "file": f"{d}/odd.bin"},
    {"id": o["tiny"], "file": f"{d}/tiny.bin", "checksum_type": "sha256"},
    {"id": o["az"], "file": f"{d}/az.bin", "sign": "azure"},
    {"id": o["exp"], "file": f"{d}/exp.bin", "sign": "expires"},
    {"id": o["url"], "file": f"{d}/url.bin", "access": "url"},
    {"id": o["hdr"], "file": f"{d}/hdr.bin", "access": "headers"},
    # the object stored under bad.bin's oid claims other bytes (tiny.bin's)
    {"id": o["bad"], "file": f"{d}/bad.bin", "sha256": o["tiny"], "name": "bad.bin"},
    {"id": o["deep"], "file": f"{d}/sub/deep.bin", "name": "deep.bin"},
    {"id": "meta-only-object", "file": f"{d}/meta-only.bin", "access": "url"},
]
print(json.dumps(objs))
PY
)
drs_config "$T/drs" "$objs" '{"url_ttl": 300, "bulk_max": 100}' || fail "drs_config"
drs_start "$T/drs" || fail "cannot start the DRS test server"
info "DRS/Indexd test server at $DRS_URL"

# mount_as NAME [args]: mount $R at $T/mnt-NAME with its own cache and log
mount_as() {
    local n="$1"; shift
    LFSFS_CACHE="$T/cache-$n" LFSFS_LOG="$T/lfsfs-$n.log" lfsfs_mount "$R" "$T/mnt-$n" "$@" ||
        fail "mount ($n) failed"
}
dlog() { echo "$T/lfsfs-$1.log"; }
no_secrets_in() {
    local f="$1"
    grep -F -- "$DRS_TOKEN" "$f" && fail "$f leaks the DRS token"
    grep -F -- "$DRS_API_KEY" "$f" && fail "$f leaks the Gen3 API key"
    grep -E 'X-Amz-Signature=|[?&]sig=|Signature=[0-9a-f]|eyJ[A-Za-z0-9_-]{20,}' "$f" &&
        fail "$f leaks a signature or a JWT"
    return 0
}
cfg() { git -C "$R" config "$@"; }

# --------------------------------------------------------- DRS, static token
info "lfsfs.drs.url + lfsfs.drs.token: every file through DRS"
cfg lfsfs.drs.url "$DRS_URL"
cfg lfsfs.drs.token "$DRS_TOKEN"
: > "$DRS_LOG"
mount_as tok
M="$T/mnt-tok"
for f in $ALL; do
    assert_eq "$(sha256_of "$D/$f")" "$(sha256_of "$M/$f")" "sha256 of $f"
done
assert_eq verified "$(xattr_get "$M/odd.bin" user.lfsfs.state)" "state of odd.bin after a full read"
for kind in object access; do
    [ "$(drs_count kind=$kind)" -ge 1 ] || fail "no $kind requests"
    assert_eq 0 "$(drs_count kind=$kind '!auth=bearer')" "$kind requests without the token"
done
assert_eq 0 "$(drs_count kind=indexd)" "Indexd requests (not in the chain)"
assert_eq 0 "$(drs_count kind=data status=403)" "refused data requests"
[ "$(drs_count kind=hdr status=206)" -ge 1 ] || fail "no ranged GET of hdr.bin with its access headers"
u=$(xattr_get "$M/big.bin" user.lfsfs.url)
info "  url xattr of big.bin: $u"
case "$u" in *"$DRS_HOST/data/big.bin"*) ;; *) fail "url xattr of big.bin is '$u'" ;; esac
case "$u" in *Signature*|*X-Amz-Date=*) fail "url xattr shows the signature: $u" ;; esac

info "a DRS record whose sha256 is not the oid is never used"
expect_errno EIO read "$M/bad.bin"
log_has 'SOURCE_NOT_ACCESSIBLE.*checksum mismatch' "$(dlog tok)" ||
    fail "no SOURCE_NOT_ACCESSIBLE + checksum mismatch for bad.bin in $(dlog tok)"
assert_eq 0 "$(drs_count path=/data/bad.bin)" "data requests for bad.bin"
assert_eq 0 "$(drs_count path=/public/bad.bin)" "public requests for bad.bin"
assert_eq 0 "$(drs_count kind=access id="$(oid bad.bin)")" "access requests for bad.bin"
no_secrets_in "$(dlog tok)"
lfsfs_umount "$M" || fail "umount (tok) failed"

# ------------------------------------------------ signed URLs expiring mid-read
info "signed URLs live 2 s: half a file, 3 s pause, the rest"
drs_set url_ttl=2 || fail "cannot shorten URL lifetimes"
# lfsfs cannot date the opaque URLs: it assumes an hour and learns from the 403
cfg lfsfs.drs.urlttl 3600
: > "$DRS_LOG"
mount_as exp --readahead 1M
M="$T/mnt-exp"
# list first: the directory's objects are resolved in one bulk request, and a
# prefetched URL that later expires must not be handed out again
ls "$M" >/dev/null || fail "cannot list the mount"
for f in big.bin opaque.bin; do
    dd if="$M/$f" of="$T/$f.head" bs=1M count=8 status=none || fail "first half of $f failed"
    cmp -s "$T/$f.head" <(head -c $((8 * MiB)) "$D/$f") || fail "first half of $f differs"
done
for f in big.bin opaque.bin; do
    cb=$(xattr_get "$M/$f" user.lfsfs.cached_bytes)
    [ "$cb" -lt $((16 * MiB)) ] || fail "$f is already fully cached ($cb bytes): nothing left to test"
done
a_big=$(drs_count kind=access id="$(oid big.bin)")
a_opq=$(drs_count kind=access id="$(oid opaque.bin)")
sleep 3
for f in big.bin opaque.bin; do
    python3 "$LFSFS_TESTLIB/fsop.py" read "$M/$f" >/dev/null || fail "reading the rest of $f failed"
    assert_eq "$(sha256_of "$D/$f")" "$(sha256_of "$M/$f")" "sha256 of $f after its URL expired"
done
n_big=$(drs_count kind=access id="$(oid big.bin)")
n_opq=$(drs_count kind=access id="$(oid opaque.bin)")
info "  access requests: big.bin $a_big -> $n_big, opaque.bin $a_opq -> $n_opq"
[ "$n_big" -gt "$a_big" ] || fail "big.bin's URL was not renewed after it expired"
[ "$n_opq" -gt "$a_opq" ] || fail "opaque.bin's URL was not renewed after it expired"
# the SigV4-style URL says when it lapses: renewed before use, never refused
assert_eq 0 "$(drs_count path=/data/big.bin status=403)" "refused GETs of big.bin"
# the opaque one is found out by a 403, then resolved again and resent
[ "$(drs_count path=/data/opaque.bin status=403 reason=expired)" -ge 1 ] ||
    fail "no expired-URL 403 for opaque.bin (the test did not exercise the refusal path)"
log_has "sending bytes .* again" "$(dlog exp)" || fail "the log does not say the bytes were sent again"
no_secrets_in "$(dlog exp)"
lfsfs_umount "$M" || fail "umount (exp) failed"
drs_set url_ttl=300
cfg --unset lfsfs.drs.urlttl

# ------------------------------------------------------------ bulk on listing
if grep -q lfsfs_resolve_prefetch "$LFSFS_SRC/src/resolve/resolve.h" 2>/dev/null; then
    info "a directory listing resolves its pointers in bulk"
    : > "$DRS_LOG"
    mount_as bulk
    M="$T/mnt-bulk"
    ls "$M" > /dev/null
    assert_eq 1 "$(drs_count kind=service-info)" "service-info requests"
    [ "$(drs_count kind=bulk status=200)" -ge 1 ] || fail "no bulk POST /objects on listing"
    [ "$(drs_count kind=bulk-access status=200)" -ge 1 ] || fail "no bulk POST /objects/access"
    : > "$DRS_LOG"
    for f in odd.bin url.bin az.bin; do
        assert_eq "$(sha256_of "$D/$f")" "$(sha256_of "$M/$f")" "sha256 of $f (bulk)"
    done
    assert_eq 0 "$(drs_count kind=object)" "per-object lookups after a bulk listing"
    assert_eq 0 "$(drs_count kind=access)" "per-object access requests after a bulk listing"
    lfsfs_umount "$M" || fail "umount (bulk) failed"
else
    info "this build does not resolve on listing: skipping the bulk checks"
fi

# ------------------------------------------------------ Gen3 credentials file
info "a Gen3 credentials file (lfsfs.drs.credentials)"
cfg --unset lfsfs.drs.token
drs_creds "$T/credentials.json"
cfg lfsfs.drs.credentials "$T/credentials.json"
: > "$DRS_LOG"
mount_as gen3
for f in odd.bin tiny.bin exp.bin; do
    assert_eq "$(sha256_of "$D/$f")" "$(sha256_of "$T/mnt-gen3/$f")" "sha256 of $f (Gen3 key)"
done
assert_eq 1 "$(drs_count kind=token status=200)" "API key exchanges"
assert_eq 0 "$(drs_count kind=object '!auth=bearer')" "object requests without a valid token"
no_secrets_in "$(dlog gen3)"
lfsfs_umount "$T/mnt-gen3" || fail "umount (gen3) failed"
cfg --unset lfsfs.drs.credentials

# ------------------------------------------------------------------ wrong token
info "a wrong token: EIO promptly, and a log line naming the server and the fix"
cfg lfsfs.drs.token "not-the-token-$RANDOM"
wrong=$(cfg lfsfs.drs.token)
: > "$DRS_LOG"
mount_as wrong
start=$(date +%s)
expect_errno EIO read "$T/mnt-wrong/tiny.bin"
el=$(( $(date +%s) - start ))
assert_le "$el" 10 "seconds until EIO with a wrong token"
log_has "SOURCE_NOT_ACCESSIBLE.*DRS server '$DRS_URL' rejected the token from the setting lfsfs\.drs\.token" "$(dlog wrong)" ||
    fail "no clear log line about the rejected token in $(dlog wrong)"
log_has 'fix: set lfsfs\.drs\.token, LFSFS_DRS_TOKEN or lfsfs\.drs\.credentials' "$(dlog wrong)" ||
    fail "the log does not say how to fix the token"
grep -F -- "$wrong" "$(dlog wrong)" && fail "the log shows the wrong token"
[ "$(drs_count kind=object status=401 auth=bad-bearer)" -ge 1 ] || fail "the server saw no bad token"
assert_eq 0 "$(drs_count kind=data)" "data requests with a wrong token"
lfsfs_umount "$T/mnt-wrong" || fail "umount (wrong) failed"
cfg lfsfs.drs.token "$DRS_TOKEN"

# ----------------------------------------------------------------- Indexd only
info "lfsfs.resolvers = indexd: the same bytes through Indexd records"
cfg lfsfs.resolvers indexd
cfg lfsfs.indexd.url "$DRS_URL"
: > "$DRS_LOG"
mount_as indexd
for f in $ALL; do
    assert_eq "$(sha256_of "$D/$f")" "$(sha256_of "$T/mnt-indexd/$f")" "sha256 of $f (indexd)"
done
expect_errno EIO read "$T/mnt-indexd/bad.bin"
[ "$(drs_count kind=indexd status=200)" -ge 9 ] || fail "too few Indexd lookups"
assert_eq 0 "$(drs_count kind=object)" "DRS lookups with lfsfs.resolvers = indexd"
assert_eq 0 "$(drs_count kind=data)" "signed-URL requests through Indexd (it gives storage URLs)"
assert_eq 0 "$(drs_count path=/public/bad.bin)" "requests for bad.bin through Indexd"
lfsfs_umount "$T/mnt-indexd" || fail "umount (indexd) failed"
cfg --unset lfsfs.resolvers
cfg --unset lfsfs.indexd.url

# ---------------------------------------------------- drs:// URIs in records
info "drs://host/id in .lfs-meta/metadata.json"
R2="$T/repo2"
make_repo "$R2"
repo_add_meta "$R2" "remote/meta-only.bin" "drs://$DRS_HOST/meta-only-object" \
    "$(stat -c %s "$D/meta-only.bin")" "$(sha256_of "$D/meta-only.bin")"
repo_commit "$R2"
git -C "$R2" config lfsfs.drs.url "$DRS_URL"
git -C "$R2" config lfsfs.drs.token "$DRS_TOKEN"
: > "$DRS_LOG"
LFSFS_CACHE="$T/cache-uri" LFSFS_LOG="$T/lfsfs-uri.log" lfsfs_mount "$R2" "$T/mnt-uri" ||
    fail "mount (uri) failed"
assert_eq "$(sha256_of "$D/meta-only.bin")" "$(sha256_of "$T/mnt-uri/remote/meta-only.bin")" \
    "sha256 of a metadata-only drs:// entry"
assert_eq 1 "$(drs_count kind=object id=meta-only-object auth=bearer)" "lookups of the drs:// object"
lfsfs_umount "$T/mnt-uri" || fail "umount (uri) failed"

exit 0
