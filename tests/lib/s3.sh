# shellcheck shell=bash
# tests/lib/s3.sh - a throwaway S3 for tests: s3rver (npm, pinned in
# package.json) behind tests/lib/s3_verify_proxy.py, which verifies every
# request's SigV4 signature with botocore (s3rver itself checks none) and
# enforces If-Match (s3rver ignores it).
#
# Source this file (after common.sh), then:
#   s3_require               skip (77) unless node, s3rver and botocore are there
#   s3_start DIR             start s3rver (data in DIR/data) and one verifying
#                            proxy, each on a free 127.0.0.1 port; returns once
#                            both answer.  Registers s3_stop as a cleanup hook.
#   s3_stop                  stop every proxy and s3rver started here
#   s3_proxy_start NAME ARGS...  start one more proxy in front of the same
#                            s3rver (e.g. --region eu-central-1 or
#                            --public-bucket B); sets S3_LAST_PROXY to its URL;
#                            its log is DIR/NAME.log (DIR/proxy.log: the main one)
#   s3_mb BUCKET             create a bucket (directly on s3rver)
#   s3_put BUCKET KEY FILE   upload FILE as KEY (directly on s3rver); prints the ETag
#   s3_etag BUCKET KEY       the object's current ETag (with quotes)
#   s3_log_reset             truncate the main proxy's log
#
# After s3_start these are exported:
#   S3_DIR            DIR (absolute)
#   S3RVER_URL        http://127.0.0.1:PORT of s3rver itself (uploads, overwrites)
#   S3_ENDPOINT       http://127.0.0.1:PORT of the verifying proxy (what lfsfs uses)
#   S3_PROXY_LOG      the proxy's request log, one line per request:
#       METHOD PATH range=<Range> if_match=<If-Match> auth=<verified|anonymous|
#       rejected:<Code>> region=<scope region> token=<yes|no> status=<status>
#       host=<Host header>
#   AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
#   AWS_EC2_METADATA_DISABLED=true, AWS_CONFIG_FILE and
#   AWS_SHARED_CREDENTIALS_FILE pointing at (absent) files under DIR, so the
#   caller's ~/.aws and any metadata service never leak in.
#
# s3rver quirks (see /work/shared/TESTSERVERS.md): path-style only on
# 127.0.0.1; bytes=0-0 returns the whole object; ETag is the MD5.

S3_TESTLIB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
S3RVER_BIN="${S3RVER_BIN:-${LFSFS_SRC:-$S3_TESTLIB/../..}/node_modules/.bin/s3rver}"
_S3_PIDS=()

_s3_log() { printf 's3: %s\n' "$*" >&2; }

# s3_missing: print why the S3 test servers cannot run (nothing if they can)
s3_missing() {
    command -v node >/dev/null 2>&1 || { echo "node not installed (nodejs)"; return; }
    [ -x "$S3RVER_BIN" ] || { echo "s3rver not installed at $S3RVER_BIN (run npm ci)"; return; }
    python3 -c 'import botocore.auth' 2>/dev/null ||
        { echo "python3 botocore missing (apt-get install python3-botocore)"; return; }
}

s3_require() {
    local why
    why=$(s3_missing)
    [ -z "$why" ] || skip "$why"
}

_s3_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

_s3_wait_http() {
    local url="$1" pid="$2"
    for _ in $(seq 1 150); do
        curl -s -o /dev/null --max-time 2 "$url" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# _s3_py OP ARGS...: botocore operations straight on s3rver
_s3_py() {
    python3 - "$S3RVER_URL" "$@" <<'PY'
import sys
import botocore.config
import botocore.session

url, op, *args = sys.argv[1:]
kw = dict(s3={"addressing_style": "path"}, retries={"max_attempts": 2})
try:  # newer botocore would add CRC trailers (aws-chunked) that s3rver stores verbatim
    cfg = botocore.config.Config(request_checksum_calculation="when_required",
                                 response_checksum_validation="when_required", **kw)
except TypeError:
    cfg = botocore.config.Config(**kw)
c = botocore.session.get_session().create_client(
    "s3", region_name="us-east-1", endpoint_url=url, aws_access_key_id="S3RVER",
    aws_secret_access_key="S3RVER", config=cfg)
if op == "mb":
    c.create_bucket(Bucket=args[0])
elif op == "put":
    with open(args[2], "rb") as f:
        print(c.put_object(Bucket=args[0], Key=args[1], Body=f.read())["ETag"])
elif op == "etag":
    print(c.head_object(Bucket=args[0], Key=args[1])["ETag"])
else:
    sys.exit(f"unknown op {op}")
PY
}

s3_mb() { _s3_py mb "$1" >/dev/null; }
s3_put() { _s3_py put "$1" "$2" "$3"; }
s3_etag() { _s3_py etag "$1" "$2"; }
s3_log_reset() { : > "$S3_PROXY_LOG"; }

# s3_proxy_start NAME ARGS...: one more verifying proxy logging to
# $S3_DIR/NAME.log; sets S3_LAST_PROXY to its URL (not printed: a $(...)
# subshell would lose the pid that s3_stop needs)
s3_proxy_start() {
    local name="$1" pf pid; shift
    pf="$S3_DIR/$name.port"
    rm -f "$pf"
    : > "$S3_DIR/$name.log"
    python3 "$S3_TESTLIB/s3_verify_proxy.py" --upstream "$S3RVER_URL" --key S3RVER:S3RVER \
        --port-file "$pf" --log "$S3_DIR/$name.log" "$@" \
        >>"$S3_DIR/$name.out" 2>&1 </dev/null &
    pid=$!
    _S3_PIDS+=("$pid")
    for _ in $(seq 1 100); do
        [ -s "$pf" ] && break
        kill -0 "$pid" 2>/dev/null || { _s3_log "proxy $name exited; see $S3_DIR/$name.out"; return 1; }
        sleep 0.1
    done
    [ -s "$pf" ] || { _s3_log "proxy $name did not start"; return 1; }
    S3_LAST_PROXY="http://127.0.0.1:$(cat "$pf")"
    _s3_wait_http "$S3_LAST_PROXY/" "$pid" || { _s3_log "proxy $name does not answer"; return 1; }
    : > "$S3_DIR/$name.log"
}

s3_start() {
    local dir="${1:?usage: s3_start DIR}" port pid attempt
    mkdir -p "$dir/data" "$dir/aws" || return 1
    dir=$(cd "$dir" && pwd -P) || return 1
    S3_DIR="$dir"
    export S3_DIR
    for attempt in 1 2 3 4 5; do
        port=$(_s3_free_port)
        "$S3RVER_BIN" -d "$dir/data" -a 127.0.0.1 -p "$port" --silent \
            >>"$dir/s3rver.log" 2>&1 </dev/null &
        pid=$!
        if _s3_wait_http "http://127.0.0.1:$port/" "$pid"; then
            _S3_PIDS+=("$pid")
            break
        fi
        _s3_log "s3rver start attempt $attempt failed (port $port); see $dir/s3rver.log"
        kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
        pid=
    done
    [ -n "$pid" ] || return 1
    S3RVER_URL="http://127.0.0.1:$port"
    export S3RVER_URL
    declare -F on_cleanup >/dev/null && on_cleanup s3_stop
    s3_proxy_start proxy || return 1
    S3_ENDPOINT="$S3_LAST_PROXY"
    S3_PROXY_LOG="$dir/proxy.log"
    export S3_ENDPOINT S3_PROXY_LOG
    export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
    export AWS_EC2_METADATA_DISABLED=true
    export AWS_CONFIG_FILE="$dir/aws/config" AWS_SHARED_CREDENTIALS_FILE="$dir/aws/credentials"
    unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_REGION
    unset AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_S3_FORCE_PATH_STYLE
    unset AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_ARN AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
    unset AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_CA_BUNDLE
    return 0
}

s3_stop() {
    local p
    for p in "${_S3_PIDS[@]+"${_S3_PIDS[@]}"}"; do
        kill -TERM "$p" 2>/dev/null
    done
    for p in "${_S3_PIDS[@]+"${_S3_PIDS[@]}"}"; do
        for _ in $(seq 1 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
    done
    _S3_PIDS=()
    return 0
}
