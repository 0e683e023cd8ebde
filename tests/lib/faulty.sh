# shellcheck shell=bash
# tests/lib/faulty.sh - drive tests/lib/faulty_origin.py (a fault-injecting
# HTTP/1.1 range origin) from an integration test. Source after common.sh.
#
#   faulty_start DIR        start the origin serving DIR/www; returns once it
#                           listens. Exports FAULTY_DIR FAULTY_ROOT FAULTY_URL
#                           FAULTY_RULES FAULTY_LOG FAULTY_PID. Stopped by the
#                           common.sh cleanup trap.
#   faulty_rules JSON       replace the fault plan (atomically; counters reset)
#   faulty_log_reset        empty the request log
#   faulty_count PATH [RANGE] [STATUS]
#                           requests logged for PATH (optionally only with this
#                           Range header value, e.g. bytes=0-1048575, and status)
#   faulty_requests PATH    the log lines for PATH
#   faulty_pread FILE OFF LEN OUT
#                           one O_DIRECT pread(2) through the mount (so exactly one
#                           FUSE read reaches the daemon: no kernel readahead and
#                           no page-cache retry); writes the bytes to OUT and
#                           prints "OK <ms>" or "<ERRNO name> <ms>"
#   origin_slice SRC OFF LEN OUT   the same bytes from the origin's copy
#   faulty_retry_timing PATH URL [DAEMON_LOG]
#                           pairs the daemon's "retrying URL in N ms (attempt K)"
#                           lines with the gaps between the origin's requests for
#                           PATH; prints one line per retry: "K N GAP_MS"
#
# Request log format (one line per request, see faulty_origin.py):
#   METHOD PATH RANGE STATUS FAULT if_match=IFMATCH t=ARRIVAL

faulty_start() {
    local dir="${1:?usage: faulty_start DIR}"
    mkdir -p "$dir/www"
    dir=$(cd "$dir" && pwd -P)
    FAULTY_DIR="$dir"
    FAULTY_ROOT="$dir/www"
    FAULTY_RULES="$dir/rules.json"
    FAULTY_LOG="$dir/requests.log"
    export FAULTY_DIR FAULTY_ROOT FAULTY_RULES FAULTY_LOG
    echo '{}' > "$FAULTY_RULES"
    : > "$FAULTY_LOG"
    rm -f "$dir/port"
    python3 "$LFSFS_TESTLIB/faulty_origin.py" --root "$FAULTY_ROOT" --port-file "$dir/port" \
        --rules "$FAULTY_RULES" --log "$FAULTY_LOG" </dev/null >"$dir/server.out" 2>&1 &
    FAULTY_PID=$!
    export FAULTY_PID
    _T_PIDS+=("$FAULTY_PID")
    for _ in $(seq 1 100); do
        [ -s "$dir/port" ] && break
        kill -0 "$FAULTY_PID" 2>/dev/null || break
        sleep 0.05
    done
    [ -s "$dir/port" ] || { cat "$dir/server.out" >&2; return 1; }
    FAULTY_URL="http://127.0.0.1:$(cat "$dir/port")"
    export FAULTY_URL
    curl -sS -o /dev/null --max-time 5 "$FAULTY_URL/" 2>/dev/null || true
    : > "$FAULTY_LOG"
}

faulty_rules() {
    printf '%s\n' "$1" > "$FAULTY_RULES.tmp.$$"
    python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$FAULTY_RULES.tmp.$$" ||
        fail "faulty_rules: not JSON: $1"
    mv -f "$FAULTY_RULES.tmp.$$" "$FAULTY_RULES"
}

faulty_log_reset() { : > "$FAULTY_LOG"; }

faulty_count() {
    awk -v p="$1" -v r="${2:-}" -v s="${3:-}" \
        '$2 == p && (r == "" || $3 == r) && (s == "" || $4 == s) { n++ } END { print n + 0 }' \
        "$FAULTY_LOG"
}

faulty_requests() { awk -v p="$1" '$2 == p' "$FAULTY_LOG"; }

faulty_retry_timing() {
    python3 - "$1" "$2" "${3:-$LFSFS_LOG}" "$FAULTY_LOG" <<'PY'
import re, sys
path, url, dlog, slog = sys.argv[1:5]
pat = re.compile(r"retrying (\S+) in (\d+) ms \(attempt (\d+)\)")
retries = []
for line in open(dlog, errors="replace"):
    m = pat.search(line)
    if m and m.group(1) == url:
        retries.append((int(m.group(3)), int(m.group(2))))
times = []
for line in open(slog):
    f = line.split()
    if len(f) >= 2 and f[1] == path:
        t = [x for x in f if x.startswith("t=")]
        if t:
            times.append(float(t[0][2:]))
for i, (k, n) in enumerate(retries):
    if i + 1 < len(times):
        print(k, n, int(round((times[i + 1] - times[i]) * 1000)))
PY
}

faulty_pread() {
    python3 - "$@" <<'PY'
import errno, mmap, os, sys, time
path, off, ln, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
t0 = time.monotonic()
ms = lambda: int((time.monotonic() - t0) * 1000)
buf = mmap.mmap(-1, max(4096, (ln + 4095) // 4096 * 4096))  # page-aligned
try:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        n = os.preadv(fd, [memoryview(buf)[:ln]], off)
    finally:
        os.close(fd)
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)), ms())
    sys.exit(0)
with open(out, "wb") as f:
    f.write(buf[:n])
print("OK", ms())
PY
}

origin_slice() {
    python3 - "$@" <<'PY'
import sys
src, off, ln, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
with open(src, "rb") as f:
    f.seek(off)
    data = f.read(ln)
with open(out, "wb") as f:
    f.write(data)
PY
}
