#!/usr/bin/env bash
# t1300-gcs: gs:// objects through the gcs backend, against our GCS JSON-API test
# server (tests/lib/gcs_server.py; no GCS emulator is installable here).
#   - the server's token endpoint accepts JWTs signed by python3-google-auth and
#     rejects a tampered one (when google-auth is importable)
#   - service account (GOOGLE_APPLICATION_CREDENTIALS): the RS256 JWT is accepted,
#     one token serves every request; sha256 of every file equals the origin's;
#     300 random preads equal the origin's bytes; names with slashes, spaces and
#     UTF-8; ranged media GETs with Bearer, ifGenerationMatch once the
#     generation is known; no token, key or assertion in the daemon log
#   - records pinned by a JSON-API etag or an md5 ETag send ifGenerationMatch
#     from the first GET; a record whose md5 no longer matches -> EIO,
#     IMMUTABILITY_VIOLATION
#   - the object replaced after a partial read -> EIO, IMMUTABILITY_VIOLATION
#     (generation changed, 412), never new bytes
#   - a revoked token: the GET is retried once with a new token, the read succeeds
#   - authorized_user credentials from the gcloud ADC file work; a short-lived
#     token is refreshed before it expires
#   - the GCE metadata server (GCE_METADATA_HOST) works
#   - anonymous reads public/ objects; a private object without credentials ->
#     EIO and CREDENTIALS_MISSING naming what to set
#   - a key the server does not trust -> EIO promptly, SOURCE_NOT_ACCESSIBLE,
#     "rejected" in the daemon log
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=../lib/gcs.sh
. "$LFSFS_TESTLIB/gcs.sh"

KiB=1024
MiB=$((1024 * 1024))
B=lfsfs-test-bucket
gcs_start "$T/gcs" || fail "cannot start the GCS test server"
on_cleanup '[ "$_T_RESULT" = fail ] || rm -rf "$T/gcs/buckets"'
info "GCS test server at $GCS_URL"

D="$T/data"
gen_file "$D/big.bin" $((24 * MiB))
gen_file "$D/odd.bin" $((3 * MiB + 12345))
gen_file "$D/tiny.bin" 1
gen_file "$D/spaced.bin" $((200 * KiB + 7))
gen_file "$D/cafe.bin" $((64 * KiB))
gen_file "$D/pub.bin" $((1 * MiB + 3))
gen_file "$D/pinned.bin" $((512 * KiB))
gen_file "$D/md5pinned.bin" $((300 * KiB))
gen_file "$D/stale.bin" $((100 * KiB))
gen_file "$D/stale2.bin" $((100 * KiB))
gen_file "$D/replace-old.bin" $((16 * MiB))
gen_file "$D/replace-new.bin" $((16 * MiB))
gen_file "$D/user.bin" $((2 * MiB))
gen_file "$D/md.bin" $((2 * MiB))

gcs_put $B big.bin "$D/big.bin"
gcs_put $B odd.bin "$D/odd.bin"
gcs_put $B tiny.bin "$D/tiny.bin"
gcs_put $B "dir/sub dir/file name.bin" "$D/spaced.bin"
gcs_put $B "unicode/caf$(printf '\xc3\xa9')/gr$(printf '\xc3\xbc')n.bin" "$D/cafe.bin"
gcs_put $B public/pub.bin "$D/pub.bin"
gcs_put $B public/pinned.bin "$D/pinned.bin"
gcs_put $B md5pinned.bin "$D/md5pinned.bin"
gcs_put $B stale.bin "$D/stale2.bin"          # the record below describes stale.bin
gcs_put $B replace.bin "$D/replace-old.bin"
gcs_put $B user.bin "$D/user.bin"
gcs_put $B md.bin "$D/md.bin"

R="$T/repo"
make_repo "$R"
repo_add_pointer "$R" big.bin "$D/big.bin" "gs://$B/big.bin"
repo_add_pointer "$R" odd.bin "$D/odd.bin" "gs://$B/odd.bin"
repo_add_pointer "$R" tiny.bin "$D/tiny.bin" "gs://$B/tiny.bin"
repo_add_pointer "$R" spaced.bin "$D/spaced.bin" "gs://$B/dir/sub dir/file name.bin"
repo_add_pointer "$R" cafe.bin "$D/cafe.bin" "gs://$B/unicode/caf$(printf '\xc3\xa9')/gr$(printf '\xc3\xbc')n.bin"
repo_add_pointer "$R" public/pub.bin "$D/pub.bin" "gs://$B/public/pub.bin"
# a record pinned by the JSON API's etag (what `head` reports)
meta=$(gcs_meta $B public/pinned.bin)
pin_etag=$(json_get "$meta" etag)
pin_gen=$(json_get "$meta" generation)
[ -n "$pin_etag" ] && [ -n "$pin_gen" ] || fail "no etag/generation for public/pinned.bin"
repo_add_pointer "$R" pinned.bin "$D/pinned.bin" "gs://$B/public/pinned.bin" "$pin_etag"
# records pinned by an XML-API style ETag (quoted md5): right and stale
repo_add_pointer "$R" md5pinned.bin "$D/md5pinned.bin" "gs://$B/md5pinned.bin" \
    "\"$(md5sum "$D/md5pinned.bin" | cut -d' ' -f1)\""
repo_add_pointer "$R" stale.bin "$D/stale.bin" "gs://$B/stale.bin" \
    "\"$(md5sum "$D/stale.bin" | cut -d' ' -f1)\""
repo_add_pointer "$R" replace.bin "$D/replace-old.bin" "gs://$B/replace.bin"
repo_add_pointer "$R" user.bin "$D/user.bin" "gs://$B/user.bin"
repo_add_pointer "$R" md.bin "$D/md.bin" "gs://$B/md.bin"
repo_commit "$R"

# Credentials for the next mount (the daemon inherits the env of `lfsfs mount`).
EMPTY_GCLOUD="$T/gcloud-empty"
mkdir -p "$EMPTY_GCLOUD"
use_creds() {
    unset GOOGLE_APPLICATION_CREDENTIALS GCE_METADATA_HOST GCE_METADATA_ROOT
    export STORAGE_EMULATOR_HOST="$GCS_HOST"
    export CLOUDSDK_CONFIG="$EMPTY_GCLOUD"
    case "$1" in
        sa) export GOOGLE_APPLICATION_CREDENTIALS="$GCS_SA_JSON" ;;
        key) export GOOGLE_APPLICATION_CREDENTIALS="$2" ;;
        adc) export CLOUDSDK_CONFIG="$2" ;;
        metadata) export GCE_METADATA_HOST="$GCS_HOST" ;;
        none) ;;
    esac
}
# mount_as NAME: mount $R at $T/mnt-NAME with its own cache and log
mount_as() {
    LFSFS_CACHE="$T/cache-$1" LFSFS_LOG="$T/lfsfs-$1.log" lfsfs_mount "$R" "$T/mnt-$1" ||
        fail "mount ($1) failed"
}
dlog() { echo "$T/lfsfs-$1.log"; }
# no_secrets_in FILE: no access token, JWT assertion, private key, refresh token
# or client secret in FILE
no_secrets_in() {
    local f="$1" txt sec
    txt=$(cat "$f")
    sec=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["client_secret"])' "$GCS_USER_JSON")
    grep -E 'ya29\.|eyJ[A-Za-z0-9_-]{20,}|PRIVATE KEY|refresh_token=|1//' <<<"$txt" &&
        fail "$f leaks a token, key or assertion"
    grep -F -- "$sec" <<<"$txt" && fail "$f leaks the client secret"
    return 0
}

# An independent signer: assertions made by python3-google-auth (Debian's python)
# are accepted, and a tampered one is rejected, so the server checks RS256 the way
# Google's libraries produce it, not just the way lfsfs does.
GA_PY=""
for p in /usr/bin/python3 python3; do
    if "$p" -c 'import google.auth.crypt, google.auth.jwt' 2>/dev/null; then GA_PY=$p; break; fi
done
if [ -n "$GA_PY" ]; then
    info "the token endpoint accepts google-auth's JWTs and rejects a tampered one"
    "$GA_PY" - "$GCS_SA_JSON" <<'PY' || fail "google-auth cross-check of the token endpoint"
import json, sys, time, urllib.error, urllib.parse, urllib.request
from google.auth import crypt, jwt
info = json.load(open(sys.argv[1]))
signer = crypt.RSASigner.from_service_account_info(info)
now = int(time.time())
a = jwt.encode(signer, {"iss": info["client_email"], "aud": info["token_uri"], "iat": now,
                        "exp": now + 3600,
                        "scope": "https://www.googleapis.com/auth/devstorage.read_only"})
a = a.decode() if isinstance(a, bytes) else a
def post(assertion):
    d = urllib.parse.urlencode({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                "assertion": assertion}).encode()
    try:
        with urllib.request.urlopen(info["token_uri"], d) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)
st, body = post(a)
assert st == 200 and body.get("token_type") == "Bearer", (st, body)
h, c, sig = a.split(".")
bad = h + "." + c + "." + ("A" if sig[5] != "A" else "B").join([sig[:5], sig[6:]])
st, body = post(bad)
assert st == 400 and body.get("error") == "invalid_grant", (st, body)
PY
else
    info "python3-google-auth not importable: skipping the independent-signer check"
fi

# --------------------------------------------------------------- service account
info "service account from GOOGLE_APPLICATION_CREDENTIALS"
use_creds sa
mount_as sa
M="$T/mnt-sa"
: > "$GCS_LOG"

info "a 4 KiB read in the middle of big.bin fetches only a little"
dd if="$M/big.bin" of="$T/big.part" bs=4096 skip=$((12 * MiB / 4096)) count=1 status=none ||
    fail "dd of big.bin failed"
dd if="$D/big.bin" of="$T/big.want" bs=4096 skip=$((12 * MiB / 4096)) count=1 status=none
assert_file_eq "$T/big.want" "$T/big.part" "4 KiB at 12 MiB of big.bin"
assert_eq 1 "$(gcs_count path=/token grant=urn:ietf:params:oauth:grant-type:jwt-bearer status=200)" \
    "JWT-bearer grants after the first read"
first=$(gcs_count object=big.bin alt=media)
[ "$first" -ge 1 ] || fail "no media GET for big.bin"
assert_eq 0 "$(gcs_count object=big.bin alt=media query.ifGenerationMatch)" \
    "ifGenerationMatch on the first GET of an unpinned object"

info "300 random preads of big.bin, 60 of odd.bin"
python3 "$LFSFS_TESTLIB/random_reads.py" random "$M/big.bin" "$D/big.bin" --count 300 --seed 1300 ||
    fail "random preads of big.bin differ from the origin"
python3 "$LFSFS_TESTLIB/random_reads.py" random "$M/odd.bin" "$D/odd.bin" --count 60 --seed 13 ||
    fail "random preads of odd.bin differ from the origin"

info "sha256 of every file through the mount"
for f in big.bin odd.bin tiny.bin spaced.bin cafe.bin public/pub.bin pinned.bin md5pinned.bin; do
    assert_eq "$(sha256_of "$D/$(basename "$f")")" "$(sha256_of "$M/$f")" "sha256 of $f"
    assert_eq "$(pointer_oid "$R/$f")" "$(sha256_of "$M/$f")" "sha256 of $f vs its pointer oid"
    assert_eq verified "$(xattr_get "$M/$f" user.lfsfs.state)" "state of $f after a full read"
done

info "requests: Bearer, ranged, ifGenerationMatch once the generation is known"
gen_big=$(python3 - "$GCS_LOG" <<'PY'
import json, sys
gens = set()
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get("object") == "big.bin" and r.get("alt") == "media" and "ifGenerationMatch" in r["query"]:
        gens.add(r["query"]["ifGenerationMatch"])
print(" ".join(sorted(gens)))
PY
)
info "  ifGenerationMatch values for big.bin: $gen_big"
[ -n "$gen_big" ] && [ "${gen_big// /}" = "$gen_big" ] || fail "expected exactly one generation pinned for big.bin, got '$gen_big'"
n=$(gcs_count object=big.bin alt=media)
n_pinned=$(gcs_count object=big.bin alt=media "query.ifGenerationMatch=$gen_big")
info "  $n media GETs for big.bin, $n_pinned with ifGenerationMatch=$gen_big"
assert_eq $((n - first)) "$n_pinned" "media GETs of big.bin after the first carry ifGenerationMatch"
python3 - "$GCS_LOG" <<'PY' || fail "a media GET without Range, not 206, or without a valid Bearer token"
import json, sys
bad = []
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get("alt") != "media":
        continue
    if not r["range"].startswith("bytes="):
        bad.append(f"no Range: {r}")
    if r["status"] != 206:
        bad.append(f"status {r['status']}: {r}")
    if r["auth"] != "bearer":
        bad.append(f"auth {r['auth']}: {r}")
for b in bad[:5]:
    print(b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
assert_eq 1 "$(gcs_count path=/token)" "token requests during the whole SA mount (token cached)"
assert_eq 0 "$(gcs_count status=412)" "412 answers"

info "records pinned by an etag send ifGenerationMatch from the first GET"
assert_eq 0 "$(gcs_count object=public/pinned.bin alt=media '!query.ifGenerationMatch')" \
    "unpinned GETs of public/pinned.bin (record has the JSON-API etag)"
[ "$(gcs_count object=public/pinned.bin alt=media "query.ifGenerationMatch=$pin_gen")" -ge 1 ] ||
    fail "no GET of public/pinned.bin with ifGenerationMatch=$pin_gen"
assert_eq 0 "$(gcs_count object=public/pinned.bin alt=json)" "metadata lookups for a JSON-API etag"
assert_eq 0 "$(gcs_count object=md5pinned.bin alt=media '!query.ifGenerationMatch')" \
    "unpinned GETs of md5pinned.bin (record has an md5 ETag)"
assert_eq 1 "$(gcs_count object=md5pinned.bin alt=json)" "metadata lookups for an md5 ETag"

info "a record whose md5 ETag no longer matches the object -> EIO"
expect_errno EIO read "$M/stale.bin"
assert_eq 0 "$(gcs_count object=stale.bin alt=media)" "media GETs of a stale record"
log_has 'IMMUTABILITY_VIOLATION.*stale\.bin|stale\.bin.*IMMUTABILITY_VIOLATION' "$(dlog sa)" ||
    fail "no IMMUTABILITY_VIOLATION for stale.bin in $(dlog sa)"

info "a revoked token: the request is retried once with a new token"
gcs_revoke_tokens || fail "cannot revoke tokens"
: > "$GCS_LOG"
assert_eq "$(sha256_of "$D/user.bin")" "$(sha256_of "$M/user.bin")" "sha256 of user.bin after revoking tokens"
assert_eq 1 "$(gcs_count path=/token status=200)" "new tokens after a revocation"
[ "$(gcs_count alt=media status=401 auth=bad-bearer)" -ge 1 ] || fail "no 401 for the revoked token"
assert_eq 0 "$(gcs_count alt=media status=401 auth=bearer)" "401s with a valid token"
log_has 'HTTP 401 with a cached token.*retrying' "$(dlog sa)" || fail "no retry after the 401 in the log"

info "object replaced after a partial read -> EIO, IMMUTABILITY_VIOLATION"
dd if="$M/replace.bin" of="$T/rep.part" bs=65536 count=1 status=none || fail "head read of replace.bin"
cmp -s "$T/rep.part" <(head -c 65536 "$D/replace-old.bin") || fail "head of replace.bin differs"
prev=-1
for i in $(seq 1 50); do
    cb=$(xattr_get "$M/replace.bin" user.lfsfs.cached_bytes)
    [ "$cb" = "$prev" ] && break
    prev=$cb
    sleep 0.2
done
[ "$cb" -le $((8 * MiB)) ] || fail "test needs uncached parts: $cb bytes of replace.bin cached"
gcs_put $B replace.bin "$D/replace-new.bin"
python3 - "$M/replace.bin" "$D/replace-old.bin" "$D/replace-new.bin" <<'PY' || fail "mixed or new bytes were served"
import errno, os, sys
MiB = 1 << 20
m = os.open(sys.argv[1], os.O_RDONLY)
old = open(sys.argv[2], "rb").read()
new = open(sys.argv[3], "rb").read()
eio = 0
for off in range(15 * MiB, 8 * MiB, -MiB):
    try:
        got = os.pread(m, 4096, off)
    except OSError as e:
        if e.errno != errno.EIO:
            sys.exit(f"offset {off}: errno {errno.errorcode.get(e.errno)} (want EIO)")
        eio += 1
        continue
    if got != old[off:off + 4096]:
        sys.exit(f"offset {off}: bytes are not the old object's")
if eio == 0:
    sys.exit("no read failed after the object was replaced")
print(f"{eio} reads failed with EIO", file=sys.stderr)
PY
log_has 'IMMUTABILITY_VIOLATION' "$(dlog sa)" || fail "no IMMUTABILITY_VIOLATION in $(dlog sa)"
log_has 'generation changed' "$(dlog sa)" || fail "the log does not say the generation changed"
[ "$(gcs_count object=replace.bin alt=media status=412)" -ge 1 ] || fail "the server answered no 412"
no_secrets_in "$(dlog sa)"
lfsfs_umount "$M" || fail "umount (sa) failed"

# --------------------------------------------------- authorized_user via gcloud ADC
info "authorized_user credentials from the gcloud ADC file"
ADC="$T/gcloud-adc"
mkdir -p "$ADC"
cp "$GCS_USER_JSON" "$ADC/application_default_credentials.json"
use_creds adc "$ADC"
# short-lived tokens: refreshed before they expire (at half their life when short)
gcs_token_lifetime 4 || fail "cannot set the token lifetime"
: > "$GCS_LOG"
mount_as adc
assert_eq "$(sha256_of "$D/user.bin")" "$(sha256_of "$T/mnt-adc/user.bin")" "sha256 of user.bin (authorized_user)"
assert_eq 1 "$(gcs_count path=/token grant=refresh_token status=200)" "refresh_token grants"
sleep 3
assert_eq "$(sha256_of "$D/odd.bin")" "$(sha256_of "$T/mnt-adc/odd.bin")" "sha256 of odd.bin after the token aged"
assert_eq 2 "$(gcs_count path=/token grant=refresh_token status=200)" "refresh_token grants after 3 s of a 4 s token"
assert_eq 0 "$(gcs_count alt=media '!auth=bearer')" "media GETs without a valid token (authorized_user)"
gcs_token_lifetime 3599
no_secrets_in "$(dlog adc)"
lfsfs_umount "$T/mnt-adc" || fail "umount (adc) failed"

info "authorized_user credentials from GOOGLE_APPLICATION_CREDENTIALS"
use_creds key "$GCS_USER_JSON"
: > "$GCS_LOG"
mount_as user
assert_eq "$(sha256_of "$D/odd.bin")" "$(sha256_of "$T/mnt-user/odd.bin")" "sha256 of odd.bin (authorized_user)"
assert_eq 1 "$(gcs_count path=/token grant=refresh_token status=200)" "refresh_token grants (GAC)"
lfsfs_umount "$T/mnt-user" || fail "umount (user) failed"

# ----------------------------------------------------------------- metadata server
info "the GCE metadata server (GCE_METADATA_HOST)"
use_creds metadata
: > "$GCS_LOG"
mount_as md
assert_eq "$(sha256_of "$D/md.bin")" "$(sha256_of "$T/mnt-md/md.bin")" "sha256 of md.bin (metadata server)"
assert_eq 1 "$(gcs_count path=/computeMetadata/v1/instance/service-accounts/default/token flavor=Google status=200)" \
    "metadata-server token requests"
assert_eq 0 "$(gcs_count alt=media '!auth=bearer')" "media GETs without a valid token (metadata server)"
no_secrets_in "$(dlog md)"
lfsfs_umount "$T/mnt-md" || fail "umount (md) failed"

# ------------------------------------------------------------------------ anonymous
info "no credentials: public/ objects read, private ones fail with CREDENTIALS_MISSING"
use_creds none
: > "$GCS_LOG"
mount_as anon
assert_eq "$(sha256_of "$D/pub.bin")" "$(sha256_of "$T/mnt-anon/public/pub.bin")" "sha256 of public/pub.bin (anonymous)"
assert_eq 0 "$(gcs_count alt=media '!auth=none')" "media GETs with an Authorization header (anonymous)"
start=$(date +%s)
expect_errno EIO read "$T/mnt-anon/tiny.bin"
el=$(( $(date +%s) - start ))
assert_le "$el" 10 "seconds until EIO for a private object without credentials"
log_has 'CREDENTIALS_MISSING' "$(dlog anon)" || fail "no CREDENTIALS_MISSING in $(dlog anon)"
log_has 'GOOGLE_APPLICATION_CREDENTIALS' "$(dlog anon)" || fail "the log does not say what to set"
log_has 'application-default login' "$(dlog anon)" || fail "the log does not mention gcloud ADC"
assert_eq 0 "$(gcs_count path=/token)" "token requests without credentials"
lfsfs_umount "$T/mnt-anon" || fail "umount (anon) failed"

# -------------------------------------------------------------------------- doctor
if "$LFSFS_BIN" doctor --help >/dev/null 2>&1; then
    info "lfsfs doctor: endpoint, credential source, metadata"
    use_creds sa
    out=$("$LFSFS_BIN" doctor "gs://$B/big.bin" 2>&1) || fail "doctor gs://$B/big.bin failed: $out"
    printf '%s\n' "$out" | sed 's/^/  doctor: /' >&2
    for want in "backend: gcs" "endpoint: $GCS_URL (STORAGE_EMULATOR_HOST)" \
                "credentials: service account '$GCS_SA_EMAIL'" "token endpoint: $GCS_URL/token" \
                "size: $((24 * MiB))" "md5: $(md5sum "$D/big.bin" | cut -d' ' -f1)"; do
        case "$out" in *"$want"*) ;; *) fail "doctor output lacks '$want'" ;; esac
    done
    out=$("$LFSFS_BIN" doctor --json "gs://$B/dir/sub dir/file name.bin" 2>&1) || fail "doctor --json failed: $out"
    assert_eq "$(md5sum "$D/spaced.bin" | cut -d' ' -f1)" "$(json_get "$out" md5)" "doctor --json md5"
    assert_eq "$(stat -c %s "$D/spaced.bin")" "$(json_get "$out" size)" "doctor --json size"
    use_creds none
    rc=0
    out=$("$LFSFS_BIN" doctor "gs://$B/tiny.bin" 2>&1) || rc=$?
    printf '%s\n' "$out" | sed 's/^/  doctor: /' >&2
    [ "$rc" -ne 0 ] || fail "doctor of a private object without credentials succeeded"
    case "$out" in *CREDENTIALS_MISSING*GOOGLE_APPLICATION_CREDENTIALS*) ;;
        *) fail "doctor without credentials does not say CREDENTIALS_MISSING and what to set" ;; esac
    no_secrets_in <(printf '%s\n' "$out")
fi

# ------------------------------------------------------------------ untrusted key
info "a key the server does not trust -> EIO promptly, SOURCE_NOT_ACCESSIBLE"
gcs_make_sa reader "$T/rogue.json" untrusted || fail "cannot make the rogue key"
use_creds key "$T/rogue.json"
: > "$GCS_LOG"
mount_as rogue
start=$(date +%s)
expect_errno EIO read "$T/mnt-rogue/tiny.bin"
el=$(( $(date +%s) - start ))
assert_le "$el" 10 "seconds until EIO with a rejected key"
log_has 'SOURCE_NOT_ACCESSIBLE' "$(dlog rogue)" || fail "no SOURCE_NOT_ACCESSIBLE in $(dlog rogue)"
log_has 'rejected' "$(dlog rogue)" || fail "the log does not say the key was rejected"
log_has "$GCS_SA_EMAIL" "$(dlog rogue)" || fail "the log does not name the service account"
[ "$(gcs_count path=/token status=400)" -ge 1 ] || fail "the token endpoint rejected nothing"
assert_eq 0 "$(gcs_count path=/token status=200)" "tokens issued for the rogue key"
assert_eq 0 "$(gcs_count alt=media)" "media GETs with a rejected key"
no_secrets_in "$(dlog rogue)"
lfsfs_umount "$T/mnt-rogue" || fail "umount (rogue) failed"

exit 0
