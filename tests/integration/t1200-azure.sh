#!/usr/bin/env bash
# t1200-azure: reading Azure Blob objects (Azurite on loopback).
#   - az://container/blob pointers and an https://ACCOUNT.blob.core.windows.net
#     metadata-only entry; sha256 through the mount equals the origin, random
#     preads equal, a blob name with a space works
#   - credentials: connection string (its BlobEndpoint decides the endpoint),
#     AZURE_STORAGE_ACCOUNT + AZURE_STORAGE_KEY with lfsfs.azure.endpoint,
#     AZURE_STORAGE_SAS_TOKEN, a connection string with SharedAccessSignature,
#     anonymous access to a public container
#   - a wrong key: EIO at once, "SOURCE_NOT_ACCESSIBLE ... rejected" naming the
#     source; an expired SAS says so; no credentials: EIO and CREDENTIALS_MISSING
#     naming the variables; a managed-identity token is fetched from IMDS (with
#     Metadata: true) and used when nothing else is set
#   - a blob overwritten after a partial read: EIO, IMMUTABILITY_VIOLATION (412)
#   - lfsfs doctor: endpoint, addressing, credential source; HEAD size, ETag,
#     Content-MD5; the same error codes as reads
#   - keys and SAS signatures never reach the log or doctor's output
. "$(dirname "$0")/../lib/common.sh"
. "$LFSFS_TESTLIB/azure.sh"

why=$(azure_available) || skip "$why"

MiB=$((1024 * 1024))
AZ_VARS=(AZURE_STORAGE_CONNECTION_STRING AZURE_STORAGE_ACCOUNT AZURE_STORAGE_KEY
         AZURE_STORAGE_SAS_TOKEN AZURE_CLIENT_ID LFSFS_AZURE_IMDS_ENDPOINT)
unset "${AZ_VARS[@]}"

azure_start "$T/azurite" || fail "azurite did not start (log: $T/azurite/azurite.log)"
on_cleanup azure_stop

# LFSFS_AZURE_IMDS_ENDPOINT is test-only: point managed identity at a closed
# loopback port so "no credentials" never depends on 169.254.169.254.
NO_IMDS="http://127.0.0.1:$(_azure_free_port)"

W="$T/data"
gen_file "$W/big.bin" $((40 * MiB))
gen_file "$W/mid.bin" $((5 * MiB + 7))
gen_file "$W/tiny.bin" 1
gen_file "$W/space.bin" $((1 * MiB + 3))
gen_file "$W/meta.bin" $((2 * MiB + 11))
gen_file "$W/pub.bin" $((1 * MiB + 5))
gen_file "$W/imm-old.bin" $((32 * MiB))
gen_file "$W/imm-new.bin" $((32 * MiB))

info "upload to Azurite ($AZURITE_ENDPOINT)"
azure_container data || fail "cannot create container data"
azure_container pub --public blob || fail "cannot create container pub"
for f in big mid tiny meta; do
    azure_put data "$f.bin" "$W/$f.bin" >/dev/null || fail "upload of $f.bin failed"
done
azure_put data "dir/with space.bin" "$W/space.bin" >/dev/null || fail "upload of 'dir/with space.bin' failed"
azure_put data imm.bin "$W/imm-old.bin" >/dev/null || fail "upload of imm.bin failed"
azure_put pub pub.bin "$W/pub.bin" >/dev/null || fail "upload of pub.bin failed"
meta_etag=$(azure_etag data meta.bin)
[ -n "$meta_etag" ] || fail "no ETag for meta.bin"

HOSTURL="https://$AZURITE_ACCOUNT.blob.core.windows.net"
R="$T/repo"
make_repo "$R"
printf 'plain\n' > "$R/README.md"
for f in big mid tiny; do
    repo_add_pointer "$R" "$f.bin" "$W/$f.bin" "az://data/$f.bin"
done
repo_add_pointer "$R" "nested/with space.bin" "$W/space.bin" "az://data/dir/with space.bin"
repo_add_pointer "$R" imm.bin "$W/imm-old.bin" "az://data/imm.bin"
# https-style (virtual-host) URLs, sent to Azurite once lfsfs.azure.endpoint is set
repo_add_meta "$R" results/meta.bin "$HOSTURL/data/meta.bin" $((2 * MiB + 11)) "" "$meta_etag"
repo_add_meta "$R" results/pub.bin "$HOSTURL/pub/pub.bin" $((1 * MiB + 5))
repo_commit "$R"

# az_mount NAME [VAR=VALUE...]: mount $R at $T/mnt-NAME with a fresh cache and
# its own log ($LFSFS_LOG), with exactly the given Azure variables set; the
# daemon inherits them from `lfsfs mount`.
az_mount() {
    local name="$1" kv rc=0; shift
    M="$T/mnt-$name"
    LFSFS_LOG="$T/$name.log"
    unset "${AZ_VARS[@]}"
    export LFSFS_AZURE_IMDS_ENDPOINT="$NO_IMDS"
    for kv in "$@"; do export "${kv?}"; done
    lfsfs_mount "$R" "$M" --cache-dir "$T/cache-$name" || rc=$?
    unset "${AZ_VARS[@]}"
    return $rc
}

# no_secrets LOG: neither the account key nor a SAS signature in LOG
no_secrets() {
    grep -qF "$AZURITE_KEY" "$1" && fail "$1 contains the account key"
    grep -qE 'sig=[A-Za-z0-9%]' "$1" && fail "$1 contains a SAS signature: $(grep -E 'sig=' "$1" | head -1)"
    return 0
}

# az_doctor [VAR=VALUE...] -- URL: `lfsfs doctor --json` with exactly those
# Azure variables; prints its JSON, returns its exit status
az_doctor() {
    local args=() rc=0
    while [ "$1" != -- ]; do args+=("$1"); shift; done
    shift
    env -u AZURE_STORAGE_CONNECTION_STRING -u AZURE_STORAGE_ACCOUNT -u AZURE_STORAGE_KEY \
        -u AZURE_STORAGE_SAS_TOKEN LFSFS_AZURE_IMDS_ENDPOINT="$NO_IMDS" "${args[@]}" \
        "$LFSFS_BIN" doctor --repo "$R" --json "$@" 2>&1 || rc=$?
    return $rc
}

info "connection string: BlobEndpoint decides the endpoint (path-style)"
az_mount connstr AZURE_STORAGE_CONNECTION_STRING="$AZURITE_CONNSTR" || fail "mount failed"
assert_eq "az://data/big.bin" "$(xattr_get "$M/big.bin" user.lfsfs.url)" "user.lfsfs.url of big.bin"
python3 "$LFSFS_TESTLIB/random_reads.py" random "$M/big.bin" "$W/big.bin" --count 200 --seed 1200 ||
    fail "random preads of big.bin differ from the origin"
for f in big mid tiny; do
    assert_eq "$(sha256_of "$W/$f.bin")" "$(sha256_of "$M/$f.bin")" "sha256 of $f.bin"
done
assert_eq "$(sha256_of "$W/space.bin")" "$(sha256_of "$M/nested/with space.bin")" "sha256 of 'nested/with space.bin'"
assert_eq verified "$(xattr_get "$M/big.bin" user.lfsfs.state)" "state of big.bin after a full read"
assert_file_eq "$R/README.md" "$M/README.md" "README.md"
lfsfs_umount "$M" || fail "umount failed"
no_secrets "$LFSFS_LOG"

info "lfsfs doctor: endpoint, credential source and a HEAD (size, ETag, Content-MD5)"
json=$(az_doctor AZURE_STORAGE_CONNECTION_STRING="$AZURITE_CONNSTR" -- az://data/mid.bin) ||
    fail "doctor failed: $json"
printf '  %s\n' "$json" >&2
assert_eq True "$(json_get "$json" ok)" "doctor ok"
assert_eq azure "$(json_get "$json" backend)" "doctor backend"
assert_eq $((5 * MiB + 7)) "$(json_get "$json" size)" "doctor size"
assert_eq "$(azure_etag data mid.bin)" "$(json_get "$json" etag)" "doctor etag"
assert_eq "$(md5sum "$W/mid.bin" | cut -d' ' -f1)" "$(json_get "$json" md5)" "doctor md5 (Content-MD5)"
case "$(json_get "$json" endpoint)" in "$AZURITE_ENDPOINT "*) ;; *) fail "doctor endpoint: $json" ;; esac
case "$(json_get "$json" addressing)" in path-style*) ;; *) fail "doctor addressing: $json" ;; esac
case "$(json_get "$json" credentials)" in
    "SharedKey from AZURE_STORAGE_CONNECTION_STRING (AccountKey)") ;;
    *) fail "doctor credentials: $json" ;;
esac
grep -qF "$AZURITE_KEY" <<<"$json" && fail "doctor printed the key"

# from here on the repository names the endpoint (Azurite, path-style)
git -C "$R" config lfsfs.azure.endpoint "$AZURITE_ENDPOINT"

info "AZURE_STORAGE_ACCOUNT + AZURE_STORAGE_KEY, endpoint from lfsfs.azure.endpoint"
az_mount key AZURE_STORAGE_ACCOUNT="$AZURITE_ACCOUNT" AZURE_STORAGE_KEY="$AZURITE_KEY" ||
    fail "mount failed"
python3 "$LFSFS_TESTLIB/random_reads.py" random "$M/big.bin" "$W/big.bin" --count 60 --seed 7 ||
    fail "random preads of big.bin differ (account + key)"
assert_eq "$(sha256_of "$W/mid.bin")" "$(sha256_of "$M/mid.bin")" "sha256 of mid.bin (account + key)"
info "  the https://ACCOUNT.blob.core.windows.net entry goes to the configured endpoint"
assert_eq $((2 * MiB + 11)) "$(stat -c %s "$M/results/meta.bin")" "size of results/meta.bin"
python3 "$LFSFS_TESTLIB/random_reads.py" random "$M/results/meta.bin" "$W/meta.bin" --count 30 --seed 8 ||
    fail "random preads of results/meta.bin differ"
assert_eq "$(sha256_of "$W/meta.bin")" "$(sha256_of "$M/results/meta.bin")" "sha256 of results/meta.bin"
lfsfs_umount "$M" || fail "umount failed"
no_secrets "$LFSFS_LOG"

info "SAS token (AZURE_STORAGE_SAS_TOKEN), verified by Azurite"
sas=$(azure_sas data) || fail "cannot make a SAS"
az_mount sas AZURE_STORAGE_SAS_TOKEN="$sas" || fail "mount failed"
assert_eq "$(sha256_of "$W/mid.bin")" "$(sha256_of "$M/mid.bin")" "sha256 of mid.bin (SAS)"
assert_eq "$(sha256_of "$W/meta.bin")" "$(sha256_of "$M/results/meta.bin")" "sha256 of results/meta.bin (SAS)"
lfsfs_umount "$M" || fail "umount failed"
no_secrets "$LFSFS_LOG"
grep -qF "${sas##*sig=}" "$LFSFS_LOG" && fail "the SAS signature is in the log"

info "connection string with SharedAccessSignature"
git -C "$R" config --unset lfsfs.azure.endpoint
az_mount sascs AZURE_STORAGE_CONNECTION_STRING="BlobEndpoint=$AZURITE_ENDPOINT;SharedAccessSignature=$sas" ||
    fail "mount failed"
assert_eq "$(sha256_of "$W/tiny.bin")" "$(sha256_of "$M/tiny.bin")" "sha256 of tiny.bin (SAS connection string)"
python3 "$LFSFS_TESTLIB/random_reads.py" random "$M/big.bin" "$W/big.bin" --count 40 --seed 9 ||
    fail "random preads of big.bin differ (SAS connection string)"
lfsfs_umount "$M" || fail "umount failed"
no_secrets "$LFSFS_LOG"
git -C "$R" config lfsfs.azure.endpoint "$AZURITE_ENDPOINT"

info "a wrong key: EIO at once, SOURCE_NOT_ACCESSIBLE ... rejected"
wrong_key=$(head -c 64 /dev/urandom | base64 -w0)
az_mount wrongkey AZURE_STORAGE_ACCOUNT="$AZURITE_ACCOUNT" AZURE_STORAGE_KEY="$wrong_key" ||
    fail "mount failed"
t0=$(date +%s%N)
expect_errno EIO read "$M/mid.bin"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
info "  EIO after $ms ms"
[ "$ms" -lt 10000 ] || fail "a rejected key took $ms ms to fail (retried?)"
assert_log 'SOURCE_NOT_ACCESSIBLE.*credentials from AZURE_STORAGE_ACCOUNT \+ AZURE_STORAGE_KEY were rejected'
grep -E 'rejected' "$LFSFS_LOG" | head -1 | sed 's/^/  log: /' >&2
grep -qF "$wrong_key" "$LFSFS_LOG" && fail "the log contains the (wrong) key"
lfsfs_umount "$M" || fail "umount failed"
no_secrets "$LFSFS_LOG"
rc=0; json=$(az_doctor AZURE_STORAGE_ACCOUNT="$AZURITE_ACCOUNT" AZURE_STORAGE_KEY="$wrong_key" -- \
    "$HOSTURL/data/meta.bin") || rc=$?
assert_eq 4 "$rc" "doctor exit status with a wrong key"
assert_eq SOURCE_NOT_ACCESSIBLE "$(json_get "$json" code)" "doctor code with a wrong key"
grep -q 'credentials from AZURE_STORAGE_ACCOUNT + AZURE_STORAGE_KEY were rejected' <<<"$json" ||
    fail "doctor does not say the key was rejected: $json"

info "an expired SAS is rejected and the message says it expired"
old_sas=$(azure_sas data --expired) || fail "cannot make a SAS"
az_mount expired AZURE_STORAGE_SAS_TOKEN="$old_sas" || fail "mount failed"
expect_errno EIO read "$M/tiny.bin"
assert_log 'SOURCE_NOT_ACCESSIBLE.*credentials from AZURE_STORAGE_SAS_TOKEN were rejected.*expired'
lfsfs_umount "$M" || fail "umount failed"
no_secrets "$LFSFS_LOG"

info "no credentials: CREDENTIALS_MISSING naming the variables; public blobs still read"
az_mount nocreds || fail "mount failed"
expect_errno EIO read "$M/mid.bin"
assert_log 'CREDENTIALS_MISSING.*AZURE_STORAGE_CONNECTION_STRING.*AZURE_STORAGE_ACCOUNT.*AZURE_STORAGE_KEY.*AZURE_STORAGE_SAS_TOKEN'
grep -E 'CREDENTIALS_MISSING' "$LFSFS_LOG" | head -1 | sed 's/^/  log: /' >&2
assert_eq "$(sha256_of "$W/pub.bin")" "$(sha256_of "$M/results/pub.bin")" "sha256 of results/pub.bin (anonymous, public container)"
lfsfs_umount "$M" || fail "umount failed"
rc=0; json=$(az_doctor -- az://data/mid.bin) || rc=$?
assert_eq 4 "$rc" "doctor exit status without credentials"
assert_eq CREDENTIALS_MISSING "$(json_get "$json" code)" "doctor code without credentials"
grep -q 'AZURE_STORAGE_CONNECTION_STRING' <<<"$json" || fail "doctor does not name the variables: $json"

info "managed identity: a token from IMDS (Metadata: true) is sent when nothing else is set"
python3 "$AZURE_STANDINS" imds > "$T/imds.port" 2>"$T/imds.err" &
imds_pid=$!
on_cleanup "kill $imds_pid 2>/dev/null"
wait_for 10 test -s "$T/imds.port" || fail "IMDS stand-in did not start"
IMDS="http://127.0.0.1:$(head -1 "$T/imds.port")"
az_mount imds LFSFS_AZURE_IMDS_ENDPOINT="$IMDS" || fail "mount failed"
# Azurite takes bearer tokens only over https with --oauth: the plain-http
# emulator refuses the token, which proves it was fetched and sent
expect_errno EIO read "$M/mid.bin"
assert_log 'credentials from managed identity \(IMDS\) were rejected'
stats=$(curl -sS "$IMDS/_stats") || fail "IMDS stand-in unreachable"
[ "$(json_get "$stats" tokens)" -ge 1 ] || fail "no token was requested from IMDS: $stats"
python3 -c 'import json,sys; s=json.loads(sys.argv[1]); sys.exit(0 if s["last_headers"].get("Metadata")=="true" else 1)' "$stats" ||
    fail "the IMDS request lacked Metadata: true: $stats"
grep -q 'lfsfs-test-token' "$LFSFS_LOG" && fail "the bearer token is in the log"
lfsfs_umount "$M" || fail "umount failed"

info "a blob overwritten after a partial read: EIO and IMMUTABILITY_VIOLATION"
az_mount imm AZURE_STORAGE_CONNECTION_STRING="$AZURITE_CONNSTR" || fail "mount failed"
python3 - "$M/imm.bin" "$W/imm-old.bin" <<'PY' || fail "scattered reads before the overwrite differ"
import os, sys
MiB = 1 << 20
m = os.open(sys.argv[1], os.O_RDONLY)
o = os.open(sys.argv[2], os.O_RDONLY)
for off in (0, 20 * MiB + 12345, 9 * MiB, 25 * MiB - 100):
    if os.pread(m, 65536, off) != os.pread(o, 65536, off):
        sys.exit(f"differs at {off}")
PY
prev=-1
for i in $(seq 1 50); do
    cb=$(xattr_get "$M/imm.bin" user.lfsfs.cached_bytes)
    [ "$cb" = "$prev" ] && break
    prev=$cb
    sleep 0.2
done
[ "$cb" -le $((24 * MiB)) ] || fail "test needs uncached parts: $cb of 32 MiB cached"
old_etag=$(azure_etag data imm.bin)
azure_put data imm.bin "$W/imm-new.bin" >/dev/null || fail "overwrite of imm.bin failed"
assert_ne "$old_etag" "$(azure_etag data imm.bin)" "ETag after the overwrite"
python3 - "$M/imm.bin" "$W/imm-old.bin" "$W/imm-new.bin" <<'PY' || fail "new or mixed bytes were served"
import errno, os, sys
MiB = 1 << 20
mnt, old, new = sys.argv[1:4]
fd = os.open(mnt, os.O_RDONLY)
size = os.path.getsize(old)
of, nf = open(old, "rb"), open(new, "rb")
eio = 0
for off in reversed(range(0, size, MiB)):
    of.seek(off); want = of.read(MiB)
    try:
        got = os.pread(fd, MiB, off)
    except OSError as e:
        if e.errno != errno.EIO:
            sys.exit(f"offset {off}: {errno.errorcode.get(e.errno)}, want EIO")
        eio += 1
        continue
    if got != want[:len(got)] or not got:
        nf.seek(off)
        sys.exit(f"offset {off}: {'NEW' if got == nf.read(len(got)) else 'mixed'} bytes served")
print(f"{eio} EIO chunks", file=sys.stderr)
sys.exit(0 if eio else 1)
PY
if cat "$M/imm.bin" > /dev/null 2>&1; then fail "cat of imm.bin succeeded after the overwrite"; fi
assert_log IMMUTABILITY_VIOLATION
assert_log '412'
# other blobs are unaffected
assert_eq "$(sha256_of "$W/tiny.bin")" "$(sha256_of "$M/tiny.bin")" "sha256 of tiny.bin"
lfsfs_umount "$M" || fail "umount failed"
no_secrets "$LFSFS_LOG"
exit 0
