#!/usr/bin/env bash
# t1600-verify: `lfsfs verify` against a real nginx origin (and s3rver).
#   - every object fine: exit 0, a summary, no progress noise off a terminal,
#     HEADs only
#   - --deep re-hashes: a pointer whose oid does not match the bytes at its URL
#     (same size, no ETag recorded) passes a plain verify and fails --deep
#     with CHECKSUM_MISMATCH (exit 3); ranged GETs of at most 8 MiB, If-Match
#   - the origin changes: same size, new content (new ETag) ->
#     IMMUTABILITY_VIOLATION; another size -> SIZE_MISMATCH; deleted ->
#     SOURCE_NOT_ACCESSIBLE; exit 3 (integrity beats source)
#   - only source problems -> exit 4 (404, unreachable host, no URL known)
#   - --json parses and agrees with the human report; PATH filters (relative
#     to the current directory inside the repository, or repo-relative)
#   - an s3:// object through the real S3 backend (s3rver behind the
#     SigV4-verifying proxy): ok, --deep ok with signed ranged GETs, a
#     same-size overwrite -> IMMUTABILITY_VIOLATION, no credentials ->
#     CREDENTIALS_MISSING (exit 4); skipped with a note without s3rver
#   - a signed URL that refuses HEAD (403) is checked with a one-byte GET
#   - query strings, userinfo and secret keys are never printed
#   - a terminal gets a progress bar (via script(1), when installed)
. "$(dirname "$0")/../lib/common.sh"

MiB=$((1024 * 1024))
origin_start "$T/origin" || fail "cannot start nginx"
W="$ORIGIN_ROOT"
D="$T/data"
gen_file "$W/ok1.bin" $((3 * MiB + 5))
gen_file "$W/ok2.bin" $((100 * 1024))
gen_file "$W/same.bin" $((2 * MiB))
gen_file "$W/grow.bin" $((1 * MiB))
gen_file "$W/gone.bin" $((500 * 1024))
gen_file "$W/liar.bin" $((9 * MiB + 17))      # > one 8 MiB --deep chunk
gen_file "$W/sample.vcf" 4096
gen_file "$D/other.bin" $((9 * MiB + 17))      # what liar.bin's pointer names
gen_file "$D/same-new.bin" $((2 * MiB))
gen_file "$D/grow-new.bin" $((1 * MiB + 1))

SECRET_Q="X-Amz-Signature=TOPSECRETSIG123&X-Amz-Credential=AKIASECRETKEYID"
U="$ORIGIN_HTTP_URL"
R="$T/repo"
make_repo "$R"
printf 'plain\n' > "$R/README.md"
repo_add_pointer "$R" data/ok1.bin "$W/ok1.bin" "$U/ok1.bin" "$(origin_etag ok1.bin)"
repo_add_pointer "$R" data/ok2.bin "$W/ok2.bin" "$U/ok2.bin?$SECRET_Q"
repo_add_pointer "$R" data/same.bin "$W/same.bin" "$U/same.bin" "$(origin_etag same.bin)"
repo_add_pointer "$R" data/grow.bin "$W/grow.bin" "$U/grow.bin" "$(origin_etag grow.bin)"
repo_add_pointer "$R" data/gone.bin "$W/gone.bin" "$U/gone.bin"
# a pointer naming other bytes of the same size, at liar.bin's URL, no ETag
mkdir -p "$R/deep"
make_pointer "$D/other.bin" > "$R/deep/liar.bin"
repo_add_oid_record "$R" "$(pointer_oid "$R/deep/liar.bin")" "$U/liar.bin" $((9 * MiB + 17))
# metadata-only entries: one with an ETag, one whose URL carries userinfo
repo_add_meta "$R" meta/sample.vcf "$U/sample.vcf" 4096 "" "$(origin_etag sample.vcf)"
repo_add_meta "$R" meta/userinfo.bin \
    "http://reader:hunter2pass@127.0.0.1:$ORIGIN_HTTP_PORT/ok2.bin" $((100 * 1024))
repo_commit "$R"

NOSECRETS=(TOPSECRETSIG123 AKIASECRETKEYID hunter2pass)
# no_secrets FILE...: none of the secrets appear
no_secrets() {
    local s
    for s in "${NOSECRETS[@]}"; do
        if grep -F "$s" "$@"; then fail "secret '$s' printed in $*"; fi
    done
    return 0
}

# run_verify EXPECTED_RC NAME ARGS...: run verify, keep stdout/stderr in $T/NAME.out/.err
run_verify() {
    local want="$1" name="$2" rc=0; shift 2
    "$LFSFS_BIN" verify "$@" >"$T/$name.out" 2>"$T/$name.err" </dev/null || rc=$?
    if [ "$rc" != "$want" ]; then
        sed 's/^/  out: /' "$T/$name.out" >&2
        sed 's/^/  err: /' "$T/$name.err" >&2
        fail "lfsfs verify $* exited $rc, want $want"
    fi
    no_secrets "$T/$name.out" "$T/$name.err"
}

# json_status FILE PATH: the status verify --json gave PATH
json_status() {
    python3 - "$@" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
print(next(o["status"] for o in doc["objects"] if o["path"] == sys.argv[2]))
PY
}

# ------------------------------------------------------------------ all fine
info "every object fine: exit 0"
run_verify 0 ok --repo "$R"
grep -q '^checked 8 objects .*: 8 ok$' "$T/ok.out" || fail "summary: $(cat "$T/ok.out")"
[ -s "$T/ok.err" ] && fail "stderr not empty off a terminal: $(cat "$T/ok.err")"
info "  $(tail -n 1 "$T/ok.out")"
# from inside the repository, no --repo; -v lists every object with its URL
(cd "$R/data" && run_verify 0 ok-v -v)
assert_eq 8 "$(grep -c "^ok '" "$T/ok-v.out")" "objects listed by -v"
grep -qF "ok 'data/ok2.bin' ($U/ok2.bin?REDACTED)" "$T/ok-v.out" ||
    fail "ok2.bin's URL not redacted: $(grep ok2 "$T/ok-v.out")"
grep -qF "ok 'meta/userinfo.bin' (http://***@127.0.0.1:$ORIGIN_HTTP_PORT/ok2.bin)" "$T/ok-v.out" ||
    fail "userinfo not redacted: $(grep userinfo "$T/ok-v.out")"
grep -qF "ok 'data/ok1.bin' ($U/ok1.bin): size matches; ETag matches" "$T/ok-v.out" ||
    fail "ok1.bin line: $(grep ok1 "$T/ok-v.out")"
# HEADs only: no GET reached the origin
assert_eq 0 "$(grep -c '"GET ' "$ORIGIN_LOG" || true)" "GETs during a plain verify"

# ------------------------------------------------------------------ --deep
info "--deep: liar.bin's bytes do not hash to its oid (a plain verify cannot see it)"
origin_log_reset
run_verify 3 deep --repo "$R" --deep -j 3
grep -q "^CHECKSUM_MISMATCH 'deep/liar.bin' ($U/liar.bin): the bytes hash to sha256 $(sha256_of "$W/liar.bin"), recorded $(sha256_of "$D/other.bin"); fix: " \
    "$T/deep.out" || fail "no CHECKSUM_MISMATCH line for deep/liar.bin: $(cat "$T/deep.out")"
assert_eq 1 "$(grep -vc '^hashed ' "$T/deep.out")" "problem lines of --deep"
grep -q '^hashed 8 objects .*: 7 ok, 1 CHECKSUM_MISMATCH; ' "$T/deep.out" ||
    fail "--deep summary: $(tail -n 1 "$T/deep.out")"
# every byte of liar.bin was read, in ranged GETs of at most 8 MiB
served=$(origin_bytes_served /liar.bin)
assert_eq $((9 * MiB + 17)) "$served" "bytes of liar.bin served to --deep"
assert_eq 2 "$(grep -c '"GET /liar.bin .* range=bytes=' "$ORIGIN_LOG")" "ranged GETs of liar.bin"
grep '"GET /ok1.bin ' "$ORIGIN_LOG" | grep -vqF "if_match=$(origin_etag ok1.bin) " &&
    fail "a --deep GET of ok1.bin without If-Match"
run_verify 0 deep-data --repo "$R" --deep data meta
grep -q '^hashed 7 objects .*: 7 ok; ' "$T/deep-data.out" || fail "--deep data meta: $(cat "$T/deep-data.out")"

# ------------------------------------------------------------------ origin drift
info "the origin changes: IMMUTABILITY_VIOLATION, SIZE_MISMATCH, SOURCE_NOT_ACCESSIBLE"
origin_replace same.bin "$D/same-new.bin"
origin_replace grow.bin "$D/grow-new.bin"
rm -f "$W/gone.bin"
run_verify 3 drift --repo "$R"
grep -q "^IMMUTABILITY_VIOLATION 'data/same.bin' ($U/same.bin): recorded ETag \".*\", the origin now serves \".*\"; fix: .*restore the original" \
    "$T/drift.out" || fail "no IMMUTABILITY_VIOLATION for same.bin: $(cat "$T/drift.out")"
grep -q "^SIZE_MISMATCH 'data/grow.bin' ($U/grow.bin): recorded $MiB bytes, the origin has $((MiB + 1)); fix: " \
    "$T/drift.out" || fail "no SIZE_MISMATCH for grow.bin: $(cat "$T/drift.out")"
grep -q "^SOURCE_NOT_ACCESSIBLE 'data/gone.bin' ($U/gone.bin): .*404.*; fix: " "$T/drift.out" ||
    fail "no SOURCE_NOT_ACCESSIBLE for gone.bin: $(cat "$T/drift.out")"
grep -q '^checked 8 objects .*: 5 ok, 1 SIZE_MISMATCH, 1 IMMUTABILITY_VIOLATION, 1 SOURCE_NOT_ACCESSIBLE$' \
    "$T/drift.out" || fail "drift summary: $(tail -n 1 "$T/drift.out")"

info "--json: one document that agrees"
run_verify 3 drift-json --repo "$R" --json
python3 - "$T/drift-json.out" "$U" <<'PY' || fail "--json document is wrong (above)"
import json, sys
doc = json.load(open(sys.argv[1]))
u = sys.argv[2]
objs = {o["path"]: o for o in doc["objects"]}
want = {
    "data/ok1.bin": "ok", "data/ok2.bin": "ok", "data/same.bin": "IMMUTABILITY_VIOLATION",
    "data/grow.bin": "SIZE_MISMATCH", "data/gone.bin": "SOURCE_NOT_ACCESSIBLE",
    "deep/liar.bin": "ok", "meta/sample.vcf": "ok", "meta/userinfo.bin": "ok",
}
assert {p: o["status"] for p, o in objs.items()} == want, objs
assert [o["path"] for o in doc["objects"]] == sorted(want), "not sorted by path"
for o in doc["objects"]:
    for k in ("path", "url", "status", "detail", "size", "etag"):
        assert k in o, (k, o)
    assert (o["status"] == "ok") == ("fix" not in o), o
g = objs["data/grow.bin"]
assert g["size"] == 1 << 20 and g["remote_size"] == (1 << 20) + 1, g
s = objs["data/same.bin"]
assert s["etag"] and s["remote_etag"] and s["etag"] != s["remote_etag"], s
assert objs["data/ok2.bin"]["url"] == u + "/ok2.bin?REDACTED", objs["data/ok2.bin"]
assert objs["data/ok2.bin"]["etag"] is None
assert objs["meta/sample.vcf"]["etag"].startswith('"'), objs["meta/sample.vcf"]
assert objs["meta/userinfo.bin"]["url"].startswith("http://***@127.0.0.1:"), objs["meta/userinfo.bin"]
sm = doc["summary"]
assert sm["objects"] == 8 and sm["ok"] == 5 and sm["problems"] == 3, sm
assert sm["by_status"] == {"ok": 5, "IMMUTABILITY_VIOLATION": 1, "SIZE_MISMATCH": 1,
                           "SOURCE_NOT_ACCESSIBLE": 1}, sm
assert sm["exit_code"] == 3 and sm["deep"] is False, sm
PY

# ------------------------------------------------------------------ PATH filters
info "PATH filters and exit codes"
run_verify 4 only-gone --repo "$R" data/gone.bin
assert_eq "SOURCE_NOT_ACCESSIBLE" "$(grep -o '^[A-Z_]*' "$T/only-gone.out" | head -n 1)" "code for gone.bin alone"
grep -q '^checked 1 object ' "$T/only-gone.out" || fail "filter data/gone.bin: $(cat "$T/only-gone.out")"
run_verify 3 only-same --repo "$R" data/same.bin
(cd "$R/data" && run_verify 0 cwd-rel ok1.bin ../meta)
grep -q '^checked 3 objects .*: 3 ok$' "$T/cwd-rel.out" || fail "filter from data/: $(cat "$T/cwd-rel.out")"
(cd "$T" && run_verify 0 repo-rel --repo "$R" --json meta/sample.vcf)
assert_eq ok "$(json_status "$T/repo-rel.out" meta/sample.vcf)" "status of meta/sample.vcf"
run_verify 1 nomatch --repo "$R" data/nothing.bin
grep -q "'data/nothing.bin' matches no tracked object" "$T/nomatch.err" || fail "nomatch: $(cat "$T/nomatch.err")"
run_verify 2 outside --repo "$R" /etc
run_verify 2 badopt --repo "$R" --no-such-option

info "only source problems: exit 4 (404, unreachable, no URL known)"
mkdir -p "$R/lost"
make_pointer "$D/grow-new.bin" > "$R/lost/nourl.bin"
closed=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
repo_add_meta "$R" lost/unreachable.bin "http://127.0.0.1:$closed/x.bin?$SECRET_Q" 10
run_verify 4 lost --repo "$R" --json lost data/gone.bin
python3 - "$T/lost.out" <<'PY' || fail "lost objects (above)"
import json, sys
doc = json.load(open(sys.argv[1]))
objs = {o["path"]: o for o in doc["objects"]}
assert set(objs) == {"lost/nourl.bin", "lost/unreachable.bin", "data/gone.bin"}, objs
for o in objs.values():
    assert o["status"] == "SOURCE_NOT_ACCESSIBLE", o
n = objs["lost/nourl.bin"]
assert n["url"] is None and "register" in n["fix"] and "cannot resolve" in n["detail"], n
assert objs["lost/unreachable.bin"]["url"].endswith("/x.bin?REDACTED"), objs
assert doc["summary"]["exit_code"] == 4, doc["summary"]
PY
# the repository with everything: integrity (3) beats source (4)
run_verify 3 all --repo "$R"
rm -rf "$R/lost"
git -C "$R" checkout -q -- .lfs-meta/metadata.json

# ------------------------------------------------------------------ progress bar
if command -v script >/dev/null 2>&1; then
    info "a terminal gets a progress bar"
    script -qfec "'$LFSFS_BIN' verify --repo '$R' --deep data/ok1.bin" /dev/null > "$T/tty.out" 2>&1 </dev/null || true
    grep -q 'verify \[' "$T/tty.out" || fail "no progress bar on a terminal: $(cat -v "$T/tty.out")"
    grep -q '^hashed 1 object ' <(tr '\r' '\n' < "$T/tty.out" | sed 's/\x1b\[K//g') ||
        fail "no summary on a terminal: $(cat -v "$T/tty.out")"
    no_secrets "$T/tty.out"
else
    info "script(1) not installed: progress bar not checked"
fi

# ------------------------------------------------------------------ GET-only signed URLs
info "a signed URL that refuses HEAD is checked with a one-byte GET"
# shellcheck source=../lib/faulty.sh
. "$LFSFS_TESTLIB/faulty.sh"
faulty_start "$T/faulty" || fail "cannot start the faulty origin"
gen_file "$FAULTY_ROOT/signed.bin" $((3 * MiB))
gen_file "$FAULTY_ROOT/resized.bin" 5000
gen_file "$D/resized-old.bin" 4000
faulty_rules '{"/signed.bin": [{"fault": "status", "code": 403, "method": "HEAD"}],
               "/resized.bin": [{"fault": "status", "code": 403, "method": "HEAD"}]}'
RF="$T/repo-signed"
make_repo "$RF"
repo_add_pointer "$RF" signed.bin "$FAULTY_ROOT/signed.bin" "$FAULTY_URL/signed.bin?$SECRET_Q"
repo_add_pointer "$RF" resized.bin "$D/resized-old.bin" "$FAULTY_URL/resized.bin?$SECRET_Q"
run_verify 3 signed --repo "$RF" -v
grep -qF "ok 'signed.bin' ($FAULTY_URL/signed.bin?REDACTED): HEAD refused, checked with a one-byte GET; size matches; no recorded ETag" \
    "$T/signed.out" || fail "signed.bin: $(cat "$T/signed.out")"
grep -q "^SIZE_MISMATCH 'resized.bin' ($FAULTY_URL/resized.bin?REDACTED): HEAD refused; a one-byte GET says: .*5000.*; fix: " \
    "$T/signed.out" || fail "resized.bin: $(cat "$T/signed.out")"
assert_eq 1 "$(faulty_count /signed.bin bytes=0-0 206)" "one-byte GETs of signed.bin"
run_verify 0 signed-deep --repo "$RF" --deep signed.bin
grep -q '^hashed 1 object .*: 1 ok; ' "$T/signed-deep.out" || fail "signed.bin --deep: $(cat "$T/signed-deep.out")"

# ------------------------------------------------------------------ S3
why=""
# shellcheck source=../lib/s3.sh
. "$LFSFS_TESTLIB/s3.sh"
why=$(s3_missing)
if [ -n "$why" ]; then
    info "NOTE: s3:// part skipped: $why"
    exit 0
fi
info "an s3:// object through the S3 backend (s3rver behind the verifying proxy)"
s3_start "$T/s3" || fail "cannot start s3rver"
s3_mb vbucket
gen_file "$D/s3.bin" $((10 * MiB + 3))
gen_file "$D/s3-new.bin" $((10 * MiB + 3))
s3etag=$(s3_put vbucket "dir/obj one.bin" "$D/s3.bin")
RS="$T/repo-s3"
make_repo "$RS"
repo_add_pointer "$RS" s3/obj.bin "$D/s3.bin" "s3://vbucket/dir/obj one.bin" "$s3etag"
repo_add_pointer "$RS" http/ok1.bin "$W/ok1.bin" "$U/ok1.bin"
git -C "$RS" config -f .lfsconfig lfsfs.s3.endpoint "$S3_ENDPOINT"
git -C "$RS" config -f .lfsconfig lfsfs.s3.pathstyle true
repo_commit "$RS"
s3_log_reset
run_verify 0 s3-ok --repo "$RS" --deep -v
grep -qF "ok 's3/obj.bin' (s3://vbucket/dir/obj one.bin): size matches; ETag matches; sha256 matches" \
    "$T/s3-ok.out" || fail "s3 object not ok: $(cat "$T/s3-ok.out")"
grep -q '^HEAD /vbucket/dir/obj%20one.bin .*auth=verified .*status=200 ' "$S3_PROXY_LOG" ||
    fail "no verified HEAD in $S3_PROXY_LOG"
assert_eq 2 "$(grep '^GET /vbucket/dir/obj%20one.bin ' "$S3_PROXY_LOG" | grep -c "if_match=$s3etag auth=verified .*status=206 ")" \
    "signed ranged GETs with If-Match for --deep"
grep -v ' auth=verified ' "$S3_PROXY_LOG" >&2 && fail "unverified requests (above)"
if grep -F "$AWS_SECRET_ACCESS_KEY" "$T/s3-ok.out" "$T/s3-ok.err"; then
    fail "the secret key was printed"
fi
info "  no credentials: CREDENTIALS_MISSING, exit 4"
mkdir -p "$T/emptyhome"
(
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE
    export HOME="$T/emptyhome" AWS_EC2_METADATA_DISABLED=true
    run_verify 4 s3-nocreds --repo "$RS" s3
)
grep -q "^CREDENTIALS_MISSING 's3/obj.bin' (s3://vbucket/dir/obj one.bin): .*AWS_ACCESS_KEY_ID.*; fix: " \
    "$T/s3-nocreds.out" || fail "no CREDENTIALS_MISSING: $(cat "$T/s3-nocreds.out")"
info "  overwritten with same-size bytes: IMMUTABILITY_VIOLATION"
s3_put vbucket "dir/obj one.bin" "$D/s3-new.bin" >/dev/null
run_verify 3 s3-drift --repo "$RS" --json
assert_eq IMMUTABILITY_VIOLATION "$(json_status "$T/s3-drift.out" s3/obj.bin)" "status of the overwritten s3 object"
assert_eq ok "$(json_status "$T/s3-drift.out" http/ok1.bin)" "status of the http object next to it"
exit 0
