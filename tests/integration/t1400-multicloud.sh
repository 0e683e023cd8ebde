#!/usr/bin/env bash
# t1400-multicloud: one repository whose records point at s3://, gs://, az://
# and https:// objects, mounted once (issue 3, "done when").
#   - servers: s3rver behind the botocore-verifying proxy (tests/lib/s3.sh),
#     Azurite (tests/lib/azure.sh, with its debug log as the request log), the
#     GCS JSON-API test server (tests/lib/gcs.sh), nginx over HTTPS
#     (tests/lib/origin.sh)
#   - per cloud: a 24 MiB object, an 8 MiB object, a small one with a space
#     in its name, and a metadata-only entry (s3: keyed by sha256, gs: by the
#     JSON-API etag, az: by URL only); one https:// object
#   - endpoints from the repository's .lfsconfig (lfsfs.s3.endpoint +
#     lfsfs.s3.pathstyle, lfsfs.gcs.endpoint), Azurite from
#     AZURE_STORAGE_CONNECTION_STRING; all three clouds' credentials in the
#     environment of the one `lfsfs mount`
#   - random preads of each cloud's large object equal the origin's; 4 readers
#     on 4 different backends started together (overlap is reported) each get
#     the origin's sha256; the sha256 of every file equals the origin's and
#     user.lfsfs.state becomes verified everywhere
#   - every server saw authenticated ranged GETs (proxy: SigV4 verified; GCS:
#     Bearer; Azurite: SharedKey) and no error codes appear in the daemon log
#   - `lfsfs doctor --repo R --json` on one URL per cloud (and the https one):
#     ok, the right backend name and size
#   - a second mount with the same cache dir reads everything again with zero
#     requests to any of the four servers (each server's request log is
#     checked up to a probe request sent after the reads)
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=../lib/s3.sh
. "$LFSFS_TESTLIB/s3.sh"
# shellcheck source=../lib/azure.sh
. "$LFSFS_TESTLIB/azure.sh"
# shellcheck source=../lib/gcs.sh
. "$LFSFS_TESTLIB/gcs.sh"

s3_require
why=$(azure_available) || skip "$why"

MiB=$((1024 * 1024))

# ------------------------------------------------------------------ environment
# Only what this test sets reaches the daemon.
unset AZURE_STORAGE_CONNECTION_STRING AZURE_STORAGE_ACCOUNT AZURE_STORAGE_KEY \
    AZURE_STORAGE_SAS_TOKEN AZURE_CLIENT_ID LFSFS_AZURE_IMDS_ENDPOINT
unset GOOGLE_APPLICATION_CREDENTIALS STORAGE_EMULATOR_HOST GCE_METADATA_HOST GCE_METADATA_ROOT

# ------------------------------------------------------------------ servers
info "starting s3rver + verifying proxy, Azurite, the GCS server, nginx"
s3_start "$T/s3" || fail "cannot start s3rver and the verifying proxy"
AZURITE_DEBUG=1 azure_start "$T/azurite" || fail "azurite did not start (log: $T/azurite/azurite.log)"
AZ_REQLOG="$AZURITE_DIR/debug.log"
gcs_start "$T/gcs" || fail "cannot start the GCS test server"
on_cleanup '[ "$_T_RESULT" = fail ] || rm -rf "$T/gcs/buckets" "$T/s3/data" "$T/azurite/data"'
origin_start "$T/origin" || fail "cannot start nginx"
[ -f "$AZ_REQLOG" ] || fail "Azurite wrote no debug log at $AZ_REQLOG"

# ------------------------------------------------------------------ objects
D="$T/data"
S3B=lfs-multi
GSB=lfsfs-multi
AZC=multi
s3_mb "$S3B"
azure_container "$AZC" || fail "cannot create container $AZC"

gen_file "$D/s3-big.bin" $((24 * MiB))
gen_file "$D/s3-mid.bin" $((8 * MiB + 3))
gen_file "$D/s3-small.bin" $((1 * MiB + 7))
gen_file "$D/s3-meta.bin" $((2 * MiB + 3))
gen_file "$D/gs-big.bin" $((24 * MiB))
gen_file "$D/gs-mid.bin" $((8 * MiB + 5))
gen_file "$D/gs-small.bin" $((300 * 1024 + 1))
gen_file "$D/gs-meta.bin" $((2 * MiB + 5))
gen_file "$D/az-big.bin" $((24 * MiB))
gen_file "$D/az-mid.bin" $((8 * MiB + 9))
gen_file "$D/az-small.bin" $((700 * 1024 + 9))
gen_file "$D/az-meta.bin" $((1 * MiB + 11))
gen_file "$D/https-big.bin" $((16 * MiB + 1))

info "uploading"
s3_put "$S3B" "multi/big.bin" "$D/s3-big.bin" >/dev/null || fail "upload of s3 big.bin failed"
s3_put "$S3B" "multi/mid.bin" "$D/s3-mid.bin" >/dev/null || fail "upload of s3 mid.bin failed"
s3_put "$S3B" "dir with space/small.bin" "$D/s3-small.bin" >/dev/null || fail "upload of s3 small.bin failed"
s3_put "$S3B" "meta/s3meta.bin" "$D/s3-meta.bin" >/dev/null || fail "upload of s3 meta failed"
gcs_put "$GSB" "multi/big.bin" "$D/gs-big.bin" || fail "upload of gs big.bin failed"
gcs_put "$GSB" "multi/mid.bin" "$D/gs-mid.bin" || fail "upload of gs mid.bin failed"
gcs_put "$GSB" "dir/sub dir/small.bin" "$D/gs-small.bin" || fail "upload of gs small.bin failed"
gcs_put "$GSB" "public/meta/gsmeta.bin" "$D/gs-meta.bin" || fail "upload of gs meta failed"
azure_put "$AZC" "multi/big.bin" "$D/az-big.bin" >/dev/null || fail "upload of az big.bin failed"
azure_put "$AZC" "multi/mid.bin" "$D/az-mid.bin" >/dev/null || fail "upload of az mid.bin failed"
azure_put "$AZC" "dir/with space.bin" "$D/az-small.bin" >/dev/null || fail "upload of az small.bin failed"
azure_put "$AZC" "meta/azmeta.bin" "$D/az-meta.bin" >/dev/null || fail "upload of az meta failed"
mkdir -p "$ORIGIN_ROOT/pub"
cp "$D/https-big.bin" "$ORIGIN_ROOT/pub/big.bin"
# (under public/ so the test can read its metadata without a token)
gs_meta_etag=$(json_get "$(gcs_meta "$GSB" public/meta/gsmeta.bin)" etag)
[ -n "$gs_meta_etag" ] || fail "no JSON-API etag for gs://$GSB/public/meta/gsmeta.bin"

# ------------------------------------------------------------------ repository
# path in the repository -> origin file (for the checks) and URL
declare -A SRC URL
add() {   # add PATH ORIGIN_FILE URL   (a pointer + a .lfs-meta/sha256 record)
    SRC[$1]="$2"; URL[$1]="$3"
    repo_add_pointer "$R" "$1" "$2" "$3"
}
R="$T/repo"
make_repo "$R"
printf 'plain text, not LFS\n' > "$R/README.md"
add s3/big.bin "$D/s3-big.bin" "s3://$S3B/multi/big.bin"
add s3/mid.bin "$D/s3-mid.bin" "s3://$S3B/multi/mid.bin"
add "s3/small file.bin" "$D/s3-small.bin" "s3://$S3B/dir with space/small.bin"
add gs/big.bin "$D/gs-big.bin" "gs://$GSB/multi/big.bin"
add gs/mid.bin "$D/gs-mid.bin" "gs://$GSB/multi/mid.bin"
add "gs/small file.bin" "$D/gs-small.bin" "gs://$GSB/dir/sub dir/small.bin"
add az/big.bin "$D/az-big.bin" "az://$AZC/multi/big.bin"
add az/mid.bin "$D/az-mid.bin" "az://$AZC/multi/mid.bin"
add "az/small file.bin" "$D/az-small.bin" "az://$AZC/dir/with space.bin"
add web/big.bin "$D/https-big.bin" "$ORIGIN_HTTPS_URL/pub/big.bin"
# metadata-only entries, one per cloud, each keyed differently in the cache
SRC[meta/s3.bin]="$D/s3-meta.bin"; URL[meta/s3.bin]="s3://$S3B/meta/s3meta.bin"
SRC[meta/gs.bin]="$D/gs-meta.bin"; URL[meta/gs.bin]="gs://$GSB/public/meta/gsmeta.bin"
SRC[meta/az.bin]="$D/az-meta.bin"; URL[meta/az.bin]="az://$AZC/meta/azmeta.bin"
repo_add_meta "$R" meta/s3.bin "${URL[meta/s3.bin]}" "$(stat -c %s "$D/s3-meta.bin")" \
    "$(sha256_of "$D/s3-meta.bin")"
repo_add_meta "$R" meta/gs.bin "${URL[meta/gs.bin]}" "$(stat -c %s "$D/gs-meta.bin")" "" "$gs_meta_etag"
repo_add_meta "$R" meta/az.bin "${URL[meta/az.bin]}" "$(stat -c %s "$D/az-meta.bin")"
# endpoints: S3 and GCS from the repository's .lfsconfig; Azurite from the
# connection string's BlobEndpoint
git -C "$R" config -f .lfsconfig lfsfs.s3.endpoint "$S3_ENDPOINT"
git -C "$R" config -f .lfsconfig lfsfs.s3.pathstyle true
git -C "$R" config -f .lfsconfig lfsfs.gcs.endpoint "$GCS_URL"
repo_commit "$R"
mapfile -t ALL_PATHS < <(printf '%s\n' "${!SRC[@]}" | sort)
info "repository: ${#ALL_PATHS[@]} LFS files ($(printf '%s\n' "${URL[@]}" | cut -d: -f1 | sort | uniq -c | xargs))"

# All three clouds' credentials (and the HTTPS origin's CA) for `lfsfs mount`
# and `lfsfs doctor`. s3_start exported AWS_ACCESS_KEY_ID/SECRET/REGION and
# pointed the AWS config files at nothing.
EMPTY_GCLOUD="$T/gcloud-empty"
mkdir -p "$EMPTY_GCLOUD"
export GOOGLE_APPLICATION_CREDENTIALS="$GCS_SA_JSON" CLOUDSDK_CONFIG="$EMPTY_GCLOUD"
export AZURE_STORAGE_CONNECTION_STRING="$AZURITE_CONNSTR"
# managed identity never consulted outside loopback (connection string wins anyway)
LFSFS_AZURE_IMDS_ENDPOINT="http://127.0.0.1:$(_azure_free_port)"
export LFSFS_AZURE_IMDS_ENDPOINT
export SSL_CERT_FILE="$ORIGIN_CA"

# ------------------------------------------------------------------ helpers
# requests counted per server: "S3 proxy", "GCS", "Azurite", "nginx"
s3_reqs() { grep -c '' "$S3_PROXY_LOG" || true; }
gcs_reqs() { grep -c '' "$GCS_LOG" || true; }
az_reqs() { grep -c 'BlobStorageContextMiddleware: RequestMethod=' "$AZ_REQLOG" || true; }
web_reqs() { count_requests; }

# check_all MNT: sha256 of every file equals the origin's; every state verified
check_all() {
    local m="$1" p
    for p in "${ALL_PATHS[@]}"; do
        assert_eq "$(stat -c %s "${SRC[$p]}")" "$(stat -c %s "$m/$p")" "size of $p in $m"
        assert_eq "$(sha256_of "${SRC[$p]}")" "$(sha256_of "$m/$p")" "sha256 of $p (${URL[$p]}) in $m"
    done
    for p in "${ALL_PATHS[@]}"; do
        assert_eq verified "$(xattr_get "$m/$p" user.lfsfs.state)" \
            "user.lfsfs.state of $p (${URL[$p]}) after a full read in $m"
    done
    assert_file_eq "$R/README.md" "$m/README.md" "README.md in $m"
}

# no_errors LOG: no integrity or source error code in a daemon log
no_errors() {
    if grep -E 'SOURCE_NOT_ACCESSIBLE|CREDENTIALS_MISSING|CHECKSUM_MISMATCH|SIZE_MISMATCH|IMMUTABILITY_VIOLATION|UNSTABLE_OBJECT_SOURCE' \
            "$1" | head -5 >&2; then
        fail "$1 has error codes (above)"
    fi
    return 0
}

# ------------------------------------------------------------------ mount 1
info "mount 1: one repository, four backends, one mount"
CACHE="$T/cache"
M1="$T/mnt1"
LFSFS_LOG="$T/m1.log"
lfsfs_mount "$R" "$M1" --cache-dir "$CACHE" || fail "mount 1 failed"
for p in s3/big.bin gs/big.bin az/big.bin web/big.bin meta/az.bin; do
    assert_eq "${URL[$p]}" "$(xattr_get "$M1/$p" user.lfsfs.url)" "user.lfsfs.url of $p"
done
assert_eq remote "$(xattr_get "$M1/gs/big.bin" user.lfsfs.state)" "state of gs/big.bin before any read"

info "  random preads of each cloud's 24 MiB object"
for c in s3 gs az; do
    python3 "$LFSFS_TESTLIB/random_reads.py" random "$M1/$c/big.bin" "$D/$c-big.bin" \
        --count 120 --seed 1400 || fail "random preads of $c/big.bin (${URL[$c/big.bin]}) differ from the origin"
done

info "  4 readers on 4 backends at once (s3, gs, az, https), all cold"
python3 - "$M1" "$D" <<'PY' || fail "concurrent readers across clouds failed"
import hashlib, os, random, sys, threading, time
mnt, data = sys.argv[1:3]
jobs = [("s3/mid.bin", "s3-mid.bin"), ("gs/mid.bin", "gs-mid.bin"),
        ("az/mid.bin", "az-mid.bin"), ("web/big.bin", "https-big.bin")]
barrier = threading.Barrier(len(jobs))
res = {}
CH = 256 * 1024

def reader(i, path, orig):
    try:
        fd = os.open(os.path.join(mnt, path), os.O_RDONLY)
        size = os.fstat(fd).st_size
        offs = list(range(0, size, CH))
        if i % 2:
            random.Random(i).shuffle(offs)   # odd readers jump around
        parts = {}
        barrier.wait(timeout=30)
        t0 = time.monotonic()
        for off in offs:
            b = os.pread(fd, CH, off)
            if len(b) != min(CH, size - off):
                raise RuntimeError(f"short read at {off}: {len(b)}")
            parts[off] = b
        t1 = time.monotonic()
        os.close(fd)
        h = hashlib.sha256(b"".join(parts[o] for o in sorted(parts))).hexdigest()
        with open(os.path.join(data, orig), "rb") as f:
            want = hashlib.sha256(f.read()).hexdigest()
        res[path] = (h == want, t0, t1, h, want)
    except Exception as e:  # noqa: BLE001
        res[path] = (False, 0, 0, repr(e), "")

ts = [threading.Thread(target=reader, args=(i, p, o)) for i, (p, o) in enumerate(jobs)]
for t in ts: t.start()
for t in ts: t.join()
bad = 0
for p, (ok, t0, t1, h, want) in sorted(res.items()):
    print(f"  {p}: {'ok' if ok else 'MISMATCH'} {t1 - t0:.2f}s", file=sys.stderr)
    if not ok:
        print(f"    got {h}, want {want}", file=sys.stderr)
        bad += 1
if len(res) != len(jobs):
    sys.exit(f"only {len(res)} of {len(jobs)} readers finished")
if bad:
    sys.exit(1)
# Were they really concurrent? That is the scheduler's doing, not lfsfs's: on a
# loaded machine one reader may finish before another starts, so only say so.
start = max(r[1] for r in res.values())
end = min(r[2] for r in res.values())
if start >= end:
    print(f"  note: the readers did not overlap this time (last start {start:.3f} >= "
          f"first end {end:.3f}); the bytes were still checked", file=sys.stderr)
PY

info "  sha256 of every file; user.lfsfs.state verified"
check_all "$M1"
no_errors "$LFSFS_LOG"

info "  each server saw authenticated ranged GETs"
# S3: every request signed and verified by botocore, path-style, ranged
if grep -v ' auth=verified ' "$S3_PROXY_LOG" >&2; then fail "S3 requests not verified (above)"; fi
if grep '^GET ' "$S3_PROXY_LOG" | grep ' range= ' >&2; then fail "S3 GETs without Range (above)"; fi
for k in multi/big.bin multi/mid.bin dir%20with%20space/small.bin meta/s3meta.bin; do
    grep -q "^GET /$S3B/$k .* status=20[06] " "$S3_PROXY_LOG" || fail "no path-style GET of /$S3B/$k in $S3_PROXY_LOG"
done
# GCS: media GETs with a valid Bearer token for every object, 206
for o in multi/big.bin multi/mid.bin "dir/sub dir/small.bin" public/meta/gsmeta.bin; do
    [ "$(gcs_count "object=$o" alt=media auth=bearer status=206)" -ge 1 ] ||
        fail "no ranged Bearer media GET of gs://$GSB/$o in $GCS_LOG"
done
assert_eq 0 "$(gcs_count alt=media '!auth=bearer')" "GCS media GETs without a valid Bearer token"
assert_eq 1 "$(gcs_count path=/token status=200)" "GCS token grants during mount 1"
# Azurite: GETs of every blob, SharedKey, answered 206
for b in multi/big.bin multi/mid.bin dir/with%20space.bin meta/azmeta.bin; do
    grep -q "RequestMethod=GET RequestURL=http://127.0.0.1/$AZURITE_ACCOUNT/$AZC/$b " "$AZ_REQLOG" ||
        fail "no GET of az://$AZC/$b in $AZ_REQLOG"
done
unsigned=$(grep "RequestMethod=GET RequestURL=http://127.0.0.1/$AZURITE_ACCOUNT/$AZC/" "$AZ_REQLOG" |
    grep -vF "\"authorization\":\"SharedKey $AZURITE_ACCOUNT:" | cut -c1-300 | head -3 || true)
[ -z "$unsigned" ] || fail "Azurite GETs without SharedKey: $unsigned"
grep -q 'StatusCode=403' "$AZ_REQLOG" && fail "Azurite answered 403: $(grep -m1 'ErrorMessage=' "$AZ_REQLOG")"
# nginx: ranged GETs over HTTPS
[ "$(count_requests /pub/big.bin)" -ge 1 ] || fail "no request for /pub/big.bin reached nginx"
grep -v ' scheme=https' "$ORIGIN_LOG" >&2 && fail "nginx requests not over HTTPS (above)"
grep '"GET /pub/big.bin ' "$ORIGIN_LOG" | grep ' range= ' >&2 && fail "nginx GETs without Range (above)"
info "  requests: S3 $(s3_reqs), GCS $(gcs_reqs) (incl. health probes), Azurite $(grep -c 'RequestURL=.*/'"$AZC"'/' "$AZ_REQLOG"), nginx $(web_reqs)"
grep -qF -e "$AZURITE_KEY" -e "PRIVATE KEY" -e "ya29." -e "AccountKey=" "$LFSFS_LOG" &&
    fail "$LFSFS_LOG contains a secret"
lfsfs_umount "$M1" || fail "umount 1 failed"

# ------------------------------------------------------------------ doctor
info "lfsfs doctor --repo R --json on one URL per cloud (and the https one)"
rc=0
out=$("$LFSFS_BIN" doctor --repo "$R" --json "${URL[s3/big.bin]}" "${URL[gs/big.bin]}" \
    "${URL[az/big.bin]}" "${URL[web/big.bin]}" 2>"$T/doctor.err") || rc=$?
printf '%s\n' "$out" | sed 's/^/  doctor: /' >&2
[ -s "$T/doctor.err" ] && sed 's/^/  doctor stderr: /' "$T/doctor.err" >&2
assert_eq 0 "$rc" "doctor exit status"
mapfile -t DJ < <(printf '%s\n' "$out" | grep '^{')
assert_eq 4 "${#DJ[@]}" "JSON lines from doctor"
i=0
for want in "s3 s3/big.bin" "gcs gs/big.bin" "azure az/big.bin" "https web/big.bin"; do
    be=${want%% *}; p=${want#* }
    j=${DJ[$i]}
    assert_eq True "$(json_get "$j" ok)" "doctor ok for ${URL[$p]}"
    assert_eq "$be" "$(json_get "$j" backend)" "doctor backend for ${URL[$p]}"
    assert_eq "$(stat -c %s "${SRC[$p]}")" "$(json_get "$j" size)" "doctor size for ${URL[$p]}"
    i=$((i + 1))
done
case "$(json_get "${DJ[0]}" endpoint)" in "$S3_ENDPOINT"*) ;; *) fail "doctor S3 endpoint is not the .lfsconfig one: ${DJ[0]}" ;; esac
case "$(json_get "${DJ[1]}" endpoint)" in "$GCS_URL"*) ;; *) fail "doctor GCS endpoint is not the .lfsconfig one: ${DJ[1]}" ;; esac
grep -qF "$AZURITE_KEY" <<<"$out" && fail "doctor printed the Azure key"

# ------------------------------------------------------------------ mount 2
info "mount 2: same cache dir, every file again: zero requests to any server"
n_s3=$(s3_reqs); n_gcs=$(gcs_reqs); n_az=$(az_reqs); n_web=$(web_reqs)
M2="$T/mnt2"
LFSFS_LOG="$T/m2.log"
lfsfs_mount "$R" "$M2" --cache-dir "$CACHE" || fail "mount 2 failed"
for p in s3/big.bin gs/big.bin az/big.bin meta/gs.bin; do
    assert_eq verified "$(xattr_get "$M2/$p" user.lfsfs.state)" "state of $p right after mount 2"
done
check_all "$M2"
for c in s3 gs az; do
    python3 "$LFSFS_TESTLIB/random_reads.py" random "$M2/$c/big.bin" "$D/$c-big.bin" \
        --count 40 --seed 1401 || fail "random preads of $c/big.bin differ from the origin (mount 2)"
done
no_errors "$LFSFS_LOG"

# A probe to each server marks "after the reads" in its request log (Azurite
# writes its log asynchronously); nothing but the probe may follow the mark.
PROBE="t1400-probe-$$"
curl -s -o /dev/null "$S3_ENDPOINT/$PROBE" || true
curl -s -o /dev/null "$GCS_URL/$PROBE" || true
curl -s -o /dev/null "$AZURITE_ENDPOINT/$PROBE" || true
curl -s -o /dev/null --cacert "$ORIGIN_CA" "$ORIGIN_HTTPS_URL/$PROBE" || true
since() { tail -n +"$(($2 + 1))" "$1"; }   # since LOG N: the lines after the first N
wait_for 10 grep -q "$PROBE" "$S3_PROXY_LOG" || fail "the S3 proxy did not log the probe"
wait_for 10 grep -q "$PROBE" "$GCS_LOG" || fail "the GCS server did not log the probe"
wait_for 10 grep -q "RequestMethod=GET RequestURL=.*$PROBE" "$AZ_REQLOG" || fail "Azurite did not log the probe"
wait_for 10 grep -q "$PROBE" "$ORIGIN_LOG" || fail "nginx did not log the probe"
new_s3=$(grep -c '' < <(since "$S3_PROXY_LOG" "$n_s3" | grep -v "$PROBE") || true)
new_gcs=$(grep -c '' < <(since "$GCS_LOG" "$n_gcs" | grep -v "$PROBE") || true)
new_az=$(grep 'BlobStorageContextMiddleware: RequestMethod=' "$AZ_REQLOG" | since /dev/stdin "$n_az" |
    grep -vc "$PROBE" || true)
new_web=$(grep -c '' < <(since "$ORIGIN_LOG" "$n_web" | grep -v "$PROBE") || true)
info "  new requests: S3 $new_s3, GCS $new_gcs, Azurite $new_az, nginx $new_web"
if [ "$new_s3$new_gcs$new_az$new_web" != 0000 ]; then
    since "$S3_PROXY_LOG" "$n_s3" | grep -v "$PROBE" | head -5 | sed 's/^/  S3: /' >&2
    since "$GCS_LOG" "$n_gcs" | grep -v "$PROBE" | head -5 | sed 's/^/  GCS: /' >&2
    grep 'BlobStorageContextMiddleware: RequestMethod=' "$AZ_REQLOG" | since /dev/stdin "$n_az" |
        grep -v "$PROBE" | head -5 | cut -c1-200 | sed 's/^/  Azurite: /' >&2
    since "$ORIGIN_LOG" "$n_web" | grep -v "$PROBE" | head -5 | sed 's/^/  nginx: /' >&2
    fail "mount 2 with a warm cache made requests: S3 $new_s3, GCS $new_gcs, Azurite $new_az, nginx $new_web (want 0 each)"
fi
lfsfs_umount "$M2" || fail "umount 2 failed"
exit 0
