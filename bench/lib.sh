# shellcheck shell=bash
# bench/lib.sh - shared setup for the lfsfs benchmarks (sourced, not run).
#
# Provides: a local nginx origin (tests/lib/origin.sh) serving one object of
# BENCH_SIZE bytes, a git repository whose big.bin is a stock git-lfs pointer
# to it plus its .lfs-meta/sha256 record, and helpers to mount/unmount lfsfs
# in the foreground (so the daemon's pid, hence its peak RSS, is known).
#
# Environment (all optional):
#   LFSFS_BIN          lfsfs binary (default: <repo>/build/lfsfs)
#   BENCH_SIZE         object size: bytes or K/M/G/T suffix, binary (default 1G)
#   BENCH_DIR          scratch directory (default: a fresh mktemp -d under TMPDIR)
#   BENCH_KEEP=1       keep BENCH_DIR (logs, cache) after the run
#   BENCH_BLOCK_SIZE   passed as --block-size (default: lfsfs's own default)
#   BENCH_CACHE_SIZE   passed as --cache-size (default: 2x object size)
#   BENCH_LOG_LEVEL    passed as --log-level (default: warn)
#   BENCH_TIMEOUT      seconds allowed for one timed read (default 900)

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
LFSFS_BIN=${LFSFS_BIN:-$BENCH_ROOT/build/lfsfs}
BENCH_SIZE=${BENCH_SIZE:-1G}
BENCH_LOG_LEVEL=${BENCH_LOG_LEVEL:-warn}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-900}

bench_log() { printf '%s\n' "$*" >&2; }
bench_die() { printf '%s: error: %s\n' "${BENCH_NAME:-bench}" "$*" >&2; exit 2; }

# bench_parse_size 256M -> 268435456
bench_parse_size() {
	local s="$1" n unit
	if [[ ! "$s" =~ ^([0-9]+)([KkMmGgTt]?)(i?[Bb]?)$ ]]; then
		return 1
	fi
	n=${BASH_REMATCH[1]}
	unit=${BASH_REMATCH[2]}
	case "$unit" in
	'') ;;
	[Kk]) n=$((n << 10)) ;;
	[Mm]) n=$((n << 20)) ;;
	[Gg]) n=$((n << 30)) ;;
	[Tt]) n=$((n << 40)) ;;
	esac
	echo "$n"
}

# Nanoseconds since the epoch.
bench_now() { date +%s%N; }

# bench_mibps BYTES NANOSECONDS -> "1234.5"
bench_mibps() { awk -v b="$1" -v ns="$2" 'BEGIN { printf "%.1f", (ns > 0 ? b / 1048576 / (ns / 1e9) : 0) }'; }
bench_secs() { awk -v ns="$1" 'BEGIN { printf "%.3f", ns / 1e9 }'; }
bench_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'; }
bench_human() { awk -v b="$1" 'BEGIN { split("B KiB MiB GiB TiB", u, " "); i = 1;
	while (b >= 1024 && i < 5) { b /= 1024; i++ } printf (i == 1 ? "%d %s" : "%.2f %s"), b, u[i] }'; }

# Median of the arguments (numbers).
bench_median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END {
	if (NR == 0) print "0"; else if (NR % 2) print a[(NR + 1) / 2];
	else { m = (a[NR / 2] + a[NR / 2 + 1]) / 2; printf (m == int(m) ? "%.0f\n" : "%.1f\n"), m } }'; }

bench_machine() {
	local cpu
	cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
	printf "%s, %s cores, %s, kernel %s, load %s" "${cpu:-unknown cpu}" "$(nproc)" \
		"$(awk '/^MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo)" \
		"$(uname -r)" "$(cut -d" " -f1-3 /proc/loadavg)"
}

# --- setup -----------------------------------------------------------------

BENCH_PIDS=()
BENCH_MOUNTS=()

bench_cleanup() {
	local m p
	for m in "${BENCH_MOUNTS[@]}"; do
		if mountpoint -q "$m" 2>/dev/null; then
			"$LFSFS_BIN" umount "$m" >/dev/null 2>&1 ||
				fusermount3 -u "$m" >/dev/null 2>&1 ||
				fusermount3 -u -z "$m" >/dev/null 2>&1 || true
		fi
	done
	for p in "${BENCH_PIDS[@]}"; do
		kill -0 "$p" 2>/dev/null && kill -TERM "$p" 2>/dev/null
	done
	if declare -F origin_stop >/dev/null; then
		origin_stop
	fi
	if [ -n "${BENCH_DIR:-}" ] && [ -d "$BENCH_DIR" ]; then
		if [ "${BENCH_KEEP:-0}" = 1 ]; then
			bench_log "${BENCH_NAME:-bench}: kept $BENCH_DIR"
		elif [ "${BENCH_DIR_OWNED:-0}" = 1 ]; then
			rm -rf "$BENCH_DIR"
		else
			rm -rf "$BENCH_DIR/origin" "$BENCH_DIR/repo" "$BENCH_DIR"/cache* "$BENCH_DIR"/mnt*
		fi
	fi
}

# bench_setup: origin + object + repository. Sets BENCH_BYTES, BENCH_OID,
# BENCH_URL, BENCH_REPO, BENCH_OBJ.
bench_setup() {
	[ -x "$LFSFS_BIN" ] || bench_die "lfsfs binary not found at $LFSFS_BIN (make build, or set LFSFS_BIN)"
	[ -e /dev/fuse ] || bench_die "/dev/fuse missing"
	local t
	for t in curl python3 git git-lfs nginx openssl; do
		command -v "$t" >/dev/null 2>&1 || [ -x "/usr/sbin/$t" ] ||
			bench_die "$t not installed (scripts/install-deps.sh)"
	done
	BENCH_BYTES=$(bench_parse_size "$BENCH_SIZE") || bench_die "bad BENCH_SIZE '$BENCH_SIZE'"
	[ "$BENCH_BYTES" -gt 0 ] || bench_die "BENCH_SIZE must be > 0"

	if [ -z "${BENCH_DIR:-}" ]; then
		BENCH_DIR=$(mktemp -d "${TMPDIR:-/tmp}/lfsfs-bench.XXXXXX")
		BENCH_DIR_OWNED=1
	else
		mkdir -p "$BENCH_DIR"
		BENCH_DIR=$(cd "$BENCH_DIR" && pwd -P)
	fi
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM

	# origin copy + one cache copy + slack
	local avail need
	avail=$(df -Pk "$BENCH_DIR" | awk 'NR == 2 { printf "%.0f", $4 * 1024 }')
	need=$((BENCH_BYTES * 2 + (256 << 20)))
	[ "$avail" -ge "$need" ] ||
		bench_die "need $(bench_human "$need") free in $BENCH_DIR, have $(bench_human "$avail")"

	# shellcheck source=../tests/lib/origin.sh
	source "$BENCH_ROOT/tests/lib/origin.sh"
	origin_start "$BENCH_DIR/origin" >/dev/null || bench_die "could not start the nginx origin"

	# Incompressible, deterministic content (fast: AES-CTR keystream).
	BENCH_OBJ="$ORIGIN_ROOT/big.bin"
	# (process substitution: openssl's SIGPIPE must not trip pipefail)
	head -c "$BENCH_BYTES" \
		< <(openssl enc -aes-128-ctr -pass pass:lfsfs-bench -nosalt -pbkdf2 </dev/zero 2>/dev/null) \
		>"$BENCH_OBJ"
	[ "$(stat -c %s "$BENCH_OBJ")" = "$BENCH_BYTES" ] || bench_die "could not create the object"
	sync # no writeback of the fresh object competing with the first timed read
	BENCH_URL="$ORIGIN_HTTP_URL/big.bin"

	BENCH_REPO="$BENCH_DIR/repo"
	rm -rf "$BENCH_REPO"
	mkdir -p "$BENCH_REPO"
	git -C "$BENCH_REPO" init -q
	git lfs pointer --file="$BENCH_OBJ" 2>/dev/null >"$BENCH_REPO/big.bin" ||
		bench_die "git lfs pointer failed"
	BENCH_OID=$(awk '$1 == "oid" { sub(/^sha256:/, "", $2); print $2 }' "$BENCH_REPO/big.bin")
	[ ${#BENCH_OID} -eq 64 ] || bench_die "could not read the oid from the pointer"
	mkdir -p "$BENCH_REPO/.lfs-meta/sha256"
	printf '{"sha256": "%s", "url": "%s", "size": %s}\n' "$BENCH_OID" "$BENCH_URL" \
		"$BENCH_BYTES" >"$BENCH_REPO/.lfs-meta/sha256/$BENCH_OID.json"
	git -C "$BENCH_REPO" add -A
	git -C "$BENCH_REPO" -c user.name=bench -c user.email=bench@localhost \
		-c commit.gpgsign=false commit -q -m "bench object" ||
		bench_die "git commit failed"
}

# bench_mount CACHE_DIR MOUNTPOINT LOGFILE: mount in the foreground (-f) in
# the background; sets BENCH_DAEMON_PID once the mount is live.
bench_mount() {
	local cache="$1" mnt="$2" logf="$3" args=()
	mkdir -p "$cache" "$mnt"
	args=(--cache-dir "$cache" --log-level "$BENCH_LOG_LEVEL" --log-file "$logf")
	args+=(--cache-size "${BENCH_CACHE_SIZE:-$((BENCH_BYTES * 2 + (64 << 20)))}")
	[ -n "${BENCH_BLOCK_SIZE:-}" ] && args+=(--block-size "$BENCH_BLOCK_SIZE")
	"$LFSFS_BIN" mount "${args[@]}" -f "$BENCH_REPO" "$mnt" \
		>>"$logf.stdout" 2>&1 </dev/null &
	BENCH_DAEMON_PID=$!
	BENCH_PIDS+=("$BENCH_DAEMON_PID")
	BENCH_MOUNTS+=("$mnt")
	for _ in $(seq 1 300); do
		if mountpoint -q "$mnt" && [ -e "$mnt/big.bin" ]; then
			return 0
		fi
		if ! kill -0 "$BENCH_DAEMON_PID" 2>/dev/null; then
			tail -n 20 "$logf" "$logf.stdout" >&2 2>/dev/null || true
			bench_die "lfsfs mount exited before the mount was ready"
		fi
		sleep 0.1
	done
	tail -n 20 "$logf" "$logf.stdout" >&2 2>/dev/null || true
	bench_die "mount at $mnt not ready after 30 s"
}

# Peak RSS (VmHWM) of the running daemon, in KiB.
bench_daemon_hwm() {
	awk '/^VmHWM:/ { print $2 }' "/proc/$BENCH_DAEMON_PID/status" 2>/dev/null || echo 0
}

# CPU seconds (user + system) used so far by the running daemon.
bench_daemon_cpu() {
	local hz
	hz=$(getconf CLK_TCK 2>/dev/null || echo 100)
	# fields after the ")" that closes comm: utime is the 12th, stime the 13th
	sed 's/^.*) //' "/proc/$BENCH_DAEMON_PID/stat" 2>/dev/null |
		awk -v hz="$hz" '{ printf "%.2f", ($12 + $13) / hz }' || echo 0
}

# bench_umount MOUNTPOINT: unmount and wait for the daemon to exit.
bench_umount() {
	local mnt="$1"
	"$LFSFS_BIN" umount "$mnt" >/dev/null 2>&1 || fusermount3 -u "$mnt" >/dev/null 2>&1 ||
		bench_log "${BENCH_NAME:-bench}: warning: unmount of $mnt failed"
	for _ in $(seq 1 100); do
		kill -0 "$BENCH_DAEMON_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$BENCH_DAEMON_PID" 2>/dev/null; then
		bench_log "${BENCH_NAME:-bench}: warning: daemon $BENCH_DAEMON_PID still running 10 s after unmount; sending TERM"
		kill -TERM "$BENCH_DAEMON_PID" 2>/dev/null
	fi
	wait "$BENCH_DAEMON_PID" 2>/dev/null || true
}

# bench_count_origin: requests and bytes served since the last origin_log_reset.
bench_origin_stats() { printf '%s %s' "$(origin_count_requests)" "$(origin_bytes_served)"; }
