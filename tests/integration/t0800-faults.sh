#!/usr/bin/env bash
# t0800-faults: network faults against a misbehaving origin
# (tests/lib/faulty_origin.py), checked against the daemon's contract
# (src/net/net.c): bytes/sha256 against the origin, the daemon log, and the exact
# number of requests the origin saw.
#   - transient: two 503s, one 429, a reset mid-body, a truncated body, a short
#     stall ended by a close, a reset before any response -> the read succeeds
#     after retries ("retrying <url> in N ms (attempt K): <reason>")
#   - 503 forever -> EIO within 30 s after exactly 5 attempts
#   - 404 -> EIO at once, 1 request, SOURCE_NOT_ACCESSIBLE
#   - wrong Content-Range total -> EIO, SIZE_MISMATCH (sticky: no more requests)
#   - Content-Range for another range -> EIO, SOURCE_NOT_ACCESSIBLE
#   - 200 + whole body to a Range request for block 1 -> EIO, "server ignored
#     the Range header"
#   - corrupted bytes for the whole object -> a full read fails with EIO,
#     CHECKSUM_MISMATCH
#   - 8 concurrent readers of one block of a cold file -> exactly one GET
# Single-block reads use O_DIRECT so exactly one FUSE read reaches the daemon
# (no kernel readahead, no page-cache retry of a failed readahead).
# Every scenario runs; the failures are listed together at the end.
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=../lib/faulty.sh
. "$LFSFS_TESTLIB/faulty.sh"

MiB=$((1024 * 1024))
BS=$MiB                                  # daemon default block size
SIZE=$((3 * MiB + 4321))                 # 4 blocks, the last one short
OFF=$((BS + 65536)) LEN=65536            # inside block 1 only
RANGE1="bytes=$BS-$((2 * BS - 1))"       # what the daemon must ask for it

faulty_start "$T/faulty" || fail "cannot start tests/lib/faulty_origin.py"
info "faulty origin at $FAULTY_URL"
W="$FAULTY_ROOT"

NAMES="r503 r429 rmid rtrunc rstall rreset forever nf total ignore range bytes sf"
R="$T/repo"
make_repo "$R"
for n in $NAMES; do
    gen_file "$W/$n.bin" "$SIZE"
    repo_add_pointer "$R" "$n.bin" "$W/$n.bin" "$FAULTY_URL/$n.bin"
done
repo_commit "$R"

M="$T/mnt"
lfsfs_mount "$R" "$M" || fail "mount failed"

FAILS=()
check() { FAILS+=("$*"); info "  CHECK FAILED: $*"; }
re_escape() { printf '%s' "$1" | sed 's/[][\.*^$()+?{}|]/\\&/g'; }
# daemon log lines about NAME (for failure messages)
dlog() { grep -F "/$1.bin" "$LFSFS_LOG" | grep -v ' debug' | tail -n 8 | sed 's/^/      daemon: /'; }
slog() { faulty_requests "/$1.bin" | sed 's/^/      origin: /'; }

# pread_block NAME -> sets RES (OK|ERRNO) and MS; on OK compares with the origin
pread_block() {
    local name="$1" out
    out=$(faulty_pread "$M/$name.bin" "$OFF" "$LEN" "$T/$name.got")
    RES=${out% *} MS=${out#* }
    if [ "$RES" = OK ]; then
        origin_slice "$W/$name.bin" "$OFF" "$LEN" "$T/$name.want"
        cmp -s "$T/$name.want" "$T/$name.got" ||
            check "$name: O_DIRECT pread($OFF, $LEN) returned bytes that differ from the origin"
    fi
}

# check_backoff NAME: each retry reached the origin about when the daemon said
# ("retrying <url> in N ms"): the gap between the origin's requests may exceed N
# by the time to answer the failed request (here: milliseconds) plus slack
SLACK_MS=600  # the timer bug this guards made retries 630-800 ms late
check_backoff() {
    local name="$1" k n gap late=""
    while read -r k n gap; do
        info "  attempt $k: daemon logged 'in $n ms', the origin saw it $gap ms after attempt $((k - 1))"
        [ "$gap" -le $((n + SLACK_MS)) ] || late+=" attempt $k: logged $n ms, actual $gap ms;"
        [ "$gap" -ge $((n - 50)) ] || check "$name: attempt $k came after $gap ms, earlier than the logged $n ms"
    done < <(faulty_retry_timing "/$name.bin" "$FAULTY_URL/$name.bin")
    [ -z "$late" ] ||
        check "$name: retries came later than the backoff the daemon logged (> ${SLACK_MS} ms late):$late"
}

# transient NAME RULE REQUESTS REASON_REGEX
#   one fault rule on NAME, a read of block 1 must succeed after retries; the
#   origin must see REQUESTS requests (all for RANGE1) and the daemon log the
#   retry with REASON_REGEX ("" = the retry may be invisible to the daemon)
transient() {
    local name="$1" rule="$2" want="$3" reason="$4" n nr k url etag last
    info "$name: $rule"
    faulty_rules "{\"/$name.bin\": [$rule]}"
    faulty_log_reset
    pread_block "$name"
    [ "$RES" = OK ] || { check "$name ($rule): read of block 1 failed with $RES after ${MS} ms, expected success after retries"; dlog "$name" >&2; slog "$name" >&2; return 0; }
    n=$(faulty_count "/$name.bin")
    nr=$(faulty_count "/$name.bin" "$RANGE1")
    info "  read OK in ${MS} ms; origin saw $n request(s)"
    [ "$n" = "$want" ] || { check "$name ($rule): origin saw $n requests, expected $want"; slog "$name" >&2; }
    [ "$nr" = "$n" ] || { check "$name: $((n - nr)) request(s) not for $RANGE1"; slog "$name" >&2; }
    url=$(re_escape "$FAULTY_URL/$name.bin")
    if [ -n "$reason" ]; then
        for ((k = 2; k <= want; k++)); do
            log_has "retrying $url in [0-9]+ ms \(attempt $k\): $reason" ||
                { check "$name: daemon log lacks 'retrying $FAULTY_URL/$name.bin in N ms (attempt $k): /$reason/'"; dlog "$name" >&2; }
        done
    fi
    log_has "retrying $url in [0-9]+ ms \(attempt $((want + 1))\)" &&
        check "$name: daemon logged attempt $((want + 1)) but $want were enough"
    [ -n "$reason" ] && [ "$name" != rstall ] && check_backoff "$name"
    # the object is sound afterwards: whole-file sha256 (the rule is used up)
    [ "$(sha256_of "$M/$name.bin" 2>/dev/null)" = "$(sha256_of "$W/$name.bin")" ] ||
        check "$name: sha256 of the whole file through the mount differs from the origin's"
    # once the ETag is known it is sent as If-Match (the last GET came after)
    etag=$(curl -sS -I "$FAULTY_URL/$name.bin" | awk -F': ' 'tolower($1) == "etag" { print $2 }' | tr -d '\r')
    last=$(faulty_requests "/$name.bin" | grep -v '^HEAD' | tail -n 1)
    case "$last" in *" if_match=$etag "*) ;; *) check "$name: last GET lacks If-Match: $etag: $last" ;; esac
    return 0
}

# final NAME RULE ERRNO CODE MSG_REGEX REQUESTS MAX_MS
#   a fault that must fail the read of block 1 with ERRNO within MAX_MS after
#   exactly REQUESTS requests, and log "CODE: cannot fetch bytes ... MSG_REGEX"
final() {
    local name="$1" rule="$2" errno_want="$3" code="$4" msg="$5" want="$6" max_ms="$7" n url
    info "$name: $rule"
    faulty_rules "{\"/$name.bin\": [$rule]}"
    faulty_log_reset
    pread_block "$name"
    n=$(faulty_count "/$name.bin")
    info "  read -> $RES in ${MS} ms; origin saw $n request(s)"
    if [ "$RES" != "$errno_want" ]; then
        check "$name ($rule): read of block 1 -> $RES, expected $errno_want"
        dlog "$name" >&2
    fi
    [ "$MS" -lt "$max_ms" ] || check "$name: the read took ${MS} ms, expected < ${max_ms} ms"
    [ "$n" = "$want" ] || { check "$name ($rule): origin saw $n requests, expected $want"; slog "$name" >&2; }
    log_has "$code: cannot fetch bytes $BS-$((2 * BS - 1)) of .*$(re_escape "$FAULTY_URL/$name.bin"): $msg" ||
        { check "$name: daemon log lacks '$code: cannot fetch bytes $BS-$((2 * BS - 1)) of ... $FAULTY_URL/$name.bin: /$msg/'"; dlog "$name" >&2; }
    url=$(re_escape "$FAULTY_URL/$name.bin")
    if [ "$want" -le 1 ] && log_has "retrying $url "; then
        check "$name: the daemon retried a final error"; dlog "$name" >&2
    fi
    return 0
}

# ------------------------------------------------------------ transient faults
transient r503 '{"fault": "status", "code": 503, "times": 2}' 3 'HTTP 503'
transient r429 '{"fault": "status", "code": 429, "times": 1}' 2 'HTTP 429'
transient rmid '{"fault": "reset_mid", "times": 1}' 2 '.+'
transient rtrunc '{"fault": "truncate", "times": 1}' 2 '.*(partial file|short body)'
transient rstall '{"fault": "stall", "seconds": 1, "times": 1}' 2 '.*(partial file|short body)'

# A reset before any response byte: on a reused keep-alive connection libcurl
# may itself retry once on a fresh connection, so the daemon need not see it.
info "rreset: reset before the response"
faulty_rules '{"/rreset.bin": [{"fault": "reset", "times": 1}]}'
faulty_log_reset
pread_block rreset
n=$(faulty_count /rreset.bin)
info "  read -> $RES in ${MS} ms; origin saw $n request(s)"
[ "$RES" = OK ] || { check "rreset: read failed with $RES, expected success after a retry"; dlog rreset >&2; }
[ "$n" = 2 ] || { check "rreset: origin saw $n requests, expected 2"; slog rreset >&2; }

# ------------------------------------------------------------ final errors
final nf '{"fault": "status", "code": 404}' EIO SOURCE_NOT_ACCESSIBLE 'HTTP 404' 1 3000
final total '{"fault": "wrong_total"}' EIO SIZE_MISMATCH \
    "object is $((SIZE + 1)) bytes at the origin, expected $SIZE" 1 3000
# SIZE_MISMATCH is sticky: the next read fails without asking the origin
pread_block total
[ "$RES" = EIO ] || check "total: second read after SIZE_MISMATCH -> $RES, expected EIO"
n=$(faulty_count /total.bin)
[ "$n" = 1 ] || check "total: the second read after SIZE_MISMATCH reached the origin ($n requests in all)"
final range '{"fault": "wrong_range"}' EIO SOURCE_NOT_ACCESSIBLE \
    'server answered a different range than requested' 1 3000
# The contract: every fetch error reaches the reader as EIO.
final ignore '{"fault": "ignore_range"}' EIO UNSUPPORTED 'server ignored the Range header' 1 3000

final forever '{"fault": "status", "code": 503}' EIO SOURCE_NOT_ACCESSIBLE 'HTTP 503' 5 30000
url=$(re_escape "$FAULTY_URL/forever.bin")
for k in 2 3 4 5; do
    log_has "retrying $url in [0-9]+ ms \(attempt $k\): HTTP 503" ||
        check "forever: daemon log lacks 'retrying $FAULTY_URL/forever.bin in N ms (attempt $k): HTTP 503'"
done
log_has "retrying $url in [0-9]+ ms \(attempt 6\)" && check "forever: daemon made a 6th attempt"
check_backoff forever

# ------------------------------------------------------------ corrupted bytes
info "bytes: the origin flips every byte of every response"
faulty_rules '{"/bytes.bin": [{"fault": "wrong_bytes"}]}'
faulty_log_reset
res=$(python3 "$LFSFS_TESTLIB/fsop.py" read "$M/bytes.bin" 2>&1 || true)
info "  whole-file read -> $res; origin saw $(faulty_count /bytes.bin) request(s)"
[ "$res" = EIO ] || check "bytes: reading the whole corrupted file -> $res, expected EIO"
log_has "CHECKSUM_MISMATCH" || { check "bytes: daemon log lacks CHECKSUM_MISMATCH"; dlog bytes >&2; }
st=$(xattr_get "$M/bytes.bin" user.lfsfs.state || true)
[ "$st" = error ] || check "bytes: user.lfsfs.state after CHECKSUM_MISMATCH is '$st', expected 'error'"
pread_block bytes
[ "$RES" = EIO ] || check "bytes: a read after CHECKSUM_MISMATCH -> $RES, expected EIO"
[ "$(faulty_count /bytes.bin "" 200)" = 0 ] || check "bytes: a GET was answered 200 (not ranged)"

# ------------------------------------------------------------ single flight
info "sf: 8 concurrent readers of one block of a cold file (origin answers after 1.5 s)"
faulty_rules '{"/sf.bin": [{"fault": "slow", "seconds": 1.5, "times": 1}]}'
faulty_log_reset
SF_OFF=$((2 * BS + 262144))
origin_slice "$W/sf.bin" "$SF_OFF" 65536 "$T/sf.want"
out=$(python3 - "$M/sf.bin" "$SF_OFF" 65536 "$T/sf.want" <<'PY'
import mmap, os, sys, threading, time
path, off, ln, want = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), open(sys.argv[4], "rb").read()
N = 8
fds = [os.open(path, os.O_RDONLY | os.O_DIRECT) for _ in range(N)]
barrier = threading.Barrier(N)
res = [None] * N

def reader(i):
    buf = mmap.mmap(-1, ln)
    barrier.wait()
    t0 = time.monotonic()
    try:
        n = os.preadv(fds[i], [buf], off)
        res[i] = ("ok" if buf[:n] == want else "differs", time.monotonic() - t0)
    except OSError as e:
        res[i] = (e.strerror, time.monotonic() - t0)

ts = [threading.Thread(target=reader, args=(i,)) for i in range(N)]
for t in ts: t.start()
for t in ts: t.join()
for fd in fds: os.close(fd)
bad = [f"reader {i}: {r[0]}" for i, r in enumerate(res) if r[0] != "ok"]
print("; ".join(bad) if bad else "ok", "%.2f" % min(r[1] for r in res), "%.2f" % max(r[1] for r in res))
PY
)
read -r sf_res sf_min sf_max <<<"$out"
n=$(faulty_count /sf.bin)
info "  readers: $sf_res (each waited ${sf_min}..${sf_max} s); origin saw $n request(s)"
[ "$sf_res" = ok ] || check "sf: concurrent readers: $out"
[ "$n" = 1 ] || { check "sf: 8 concurrent readers of one cold block made $n GETs, expected exactly 1"; slog sf >&2; }
[ "$(faulty_count /sf.bin "bytes=$((2 * BS))-$((3 * BS - 1))")" = "$n" ] ||
    { check "sf: a GET was not for block 2 (bytes=$((2 * BS))-$((3 * BS - 1)))"; slog sf >&2; }
# all eight really overlapped the one slow fetch
python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= 1.0 else 1)' "$sf_min" ||
    check "sf: a reader finished in ${sf_min} s, before the 1.5 s fetch could have completed (readers did not overlap?)"

lfsfs_umount "$M" || check "umount failed"

if [ "${#FAILS[@]}" -gt 0 ]; then
    printf '  - %s\n' "${FAILS[@]}" >&2
    fail "${#FAILS[@]} check(s) failed (listed above)"
fi
exit 0
