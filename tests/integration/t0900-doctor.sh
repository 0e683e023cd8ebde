#!/usr/bin/env bash
# t0900-doctor: `lfsfs doctor URL...` explains how each URL would be read.
#   - an HTTP object: backend, credentials line, HEAD ok with size and ETag
#     equal to what nginx serves; --json carries the same
#   - a missing object: non-zero exit (4, source error) and the reason
#   - an unsupported scheme: non-zero exit, the supported forms listed
#   - credentials and query strings never appear in the output
. "$(dirname "$0")/../lib/common.sh"

origin_start "$T/origin"
gen_file "$ORIGIN_ROOT/obj.bin" 123457

info "HEAD of an existing object"
out=$("$LFSFS_BIN" doctor "$ORIGIN_HTTP_URL/obj.bin") || fail "doctor exited $? for a readable URL"
printf '%s\n' "$out" | sed 's/^/  /' >&2
grep -q "backend: http" <<<"$out" || fail "no 'backend: http' line"
grep -q "size: 123457" <<<"$out" || fail "size missing or wrong"
grep -qF "etag: $(origin_etag obj.bin)" <<<"$out" || fail "etag differs from the origin's $(origin_etag obj.bin)"
json=$("$LFSFS_BIN" doctor --json "$ORIGIN_HTTP_URL/obj.bin") || fail "doctor --json failed"
assert_eq 123457 "$(json_get "$json" size)" "json size"
assert_eq True "$(json_get "$json" ok)" "json ok"

info "file:// works too"
out=$("$LFSFS_BIN" doctor "file://$ORIGIN_ROOT/obj.bin") || fail "doctor failed on a file:// URL"
grep -q "size: 123457" <<<"$out" || fail "file:// size missing"

info "a missing object: exit 4 (source error) with the reason"
rc=0; out=$("$LFSFS_BIN" doctor "$ORIGIN_HTTP_URL/missing.bin") || rc=$?
assert_eq 4 "$rc" "exit status for a 404"
grep -q "SOURCE_NOT_ACCESSIBLE" <<<"$out" || fail "404 not explained: $out"

info "an unsupported scheme: non-zero, supported forms listed"
rc=0; out=$("$LFSFS_BIN" doctor "ftp://example.invalid/x") || rc=$?
[ "$rc" -ne 0 ] || fail "doctor exited 0 for an unsupported URL"
grep -q "https://" <<<"$out" || fail "supported forms not listed: $out"

info "secrets are redacted"
url="http://someuser:Pa55w0rdXYZ@127.0.0.1:$ORIGIN_HTTP_PORT/obj.bin?X-Amz-Signature=SIGsecret123"
out=$("$LFSFS_BIN" doctor "$url" 2>&1 || true)
grep -q "Pa55w0rdXYZ\|SIGsecret123" <<<"$out" && fail "doctor printed a secret: $out"
out=$("$LFSFS_BIN" doctor --json "$url" 2>&1 || true)
grep -q "Pa55w0rdXYZ\|SIGsecret123" <<<"$out" && fail "doctor --json printed a secret: $out"

info "usage errors"
rc=0; "$LFSFS_BIN" doctor >/dev/null 2>&1 || rc=$?
assert_eq 2 "$rc" "exit status without URLs"

exit 0
