# shellcheck shell=bash
# tests/lib/drs.sh - a throwaway GA4GH DRS 1.4 + Gen3 Indexd test server
# (tests/lib/drs_server.py) that also serves the bytes its objects point at.
#
# Source this file (after common.sh in integration tests), then:
#   drs_start DIR       start the server on 127.0.0.1 (free port) with the
#                       config DIR/config.json (write it first, or use
#                       drs_config); returns once it answers.
#   drs_stop            stop it (safe to call twice or when never started).
#   drs_config DIR JSON_OBJECTS [EXTRA_JSON]
#                       write DIR/config.json: tokens ["$DRS_TOKEN"], api_keys
#                       {"$DRS_KEY_ID": "$DRS_API_KEY"}, objects = JSON_OBJECTS
#                       (a JSON list), merged with EXTRA_JSON (an object).
#   drs_object ID FILE [KEY=VALUE...]
#                       print one object's JSON for drs_config (VALUE is JSON
#                       when it parses, else a string), e.g. access=url sign=opaque
#   drs_reload          re-read the config (after drs_config)
#   drs_set KEY=N...    url_ttl, token_lifetime, bulk_max (test knobs)
#   drs_revoke          forget every issued access token
#   drs_count FILTER... count log records matching every KEY=VALUE filter
#                       (keys: method, path, kind, id, access_id, status, auth,
#                       reason, n; "!K=V" negates, "K" alone means present)
#   drs_creds OUT [API_KEY]  write a Gen3 credentials file {"api_key", "key_id"}
#
# Exported after drs_start: DRS_DIR DRS_PORT DRS_HOST DRS_URL DRS_LOG DRS_PID,
# and (from drs_config) DRS_TOKEN DRS_KEY_ID DRS_API_KEY.

_drs_log() { printf '[drs] %s\n' "$*" >&2; }

DRS_TOKEN="${DRS_TOKEN:-drs-test-token-$RANDOM$RANDOM}"
DRS_KEY_ID="${DRS_KEY_ID:-key-$RANDOM}"
DRS_API_KEY="${DRS_API_KEY:-apikey-$RANDOM$RANDOM$RANDOM}"
export DRS_TOKEN DRS_KEY_ID DRS_API_KEY

drs_object() {
    python3 - "$@" <<'PY'
import json, sys
oid, f = sys.argv[1:3]
o = {"id": oid, "file": f}
for kv in sys.argv[3:]:
    k, _, v = kv.partition("=")
    try:
        o[k] = json.loads(v)
    except ValueError:
        o[k] = v
print(json.dumps(o))
PY
}

drs_config() {
    local dir="${1:?usage: drs_config DIR OBJECTS [EXTRA]}" objs="${2:-[]}" extra="${3:-}"
    [ -n "$extra" ] || extra='{}'
    mkdir -p "$dir" || return 1
    python3 - "$dir/config.json" "$objs" "$extra" "$DRS_TOKEN" "$DRS_KEY_ID" "$DRS_API_KEY" <<'PY'
import json, sys
out, objs, extra, tok, kid, key = sys.argv[1:7]
cfg = {"tokens": [tok], "api_keys": {kid: key}, "token_lifetime": 3600, "url_ttl": 300,
       "bulk_max": 100, "objects": json.loads(objs)}
cfg.update(json.loads(extra))
with open(out + ".tmp", "w") as f:
    json.dump(cfg, f, indent=1)
import os
os.rename(out + ".tmp", out)
PY
}

drs_start() {
    local dir="${1:?usage: drs_start DIR}" _ py
    mkdir -p "$dir" || return 1
    dir=$(cd "$dir" && pwd -P) || return 1
    DRS_DIR="$dir"
    DRS_LOG="$dir/requests.log"
    [ -f "$dir/config.json" ] || drs_config "$dir" '[]' || return 1
    : > "$DRS_LOG"
    rm -f "$dir/port"
    py="${LFSFS_TESTLIB:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)}/drs_server.py"
    python3 "$py" --config "$dir/config.json" --port-file "$dir/port" --log "$DRS_LOG" \
        >"$dir/server.out" 2>&1 &
    DRS_PID=$!
    export DRS_DIR DRS_LOG DRS_PID
    for _ in $(seq 1 100); do
        [ -s "$dir/port" ] && break
        kill -0 "$DRS_PID" 2>/dev/null || { cat "$dir/server.out" >&2; return 1; }
        sleep 0.05
    done
    [ -s "$dir/port" ] || { _drs_log "server did not start"; return 1; }
    DRS_PORT=$(cat "$dir/port")
    DRS_HOST="127.0.0.1:$DRS_PORT"
    DRS_URL="http://$DRS_HOST"
    export DRS_PORT DRS_HOST DRS_URL
    for _ in $(seq 1 100); do
        curl -sf -o /dev/null --max-time 2 "$DRS_URL/healthz" && break
        sleep 0.05
    done
    curl -sf -o /dev/null --max-time 2 "$DRS_URL/healthz" || { _drs_log "server not answering"; return 1; }
    if declare -F on_cleanup >/dev/null; then on_cleanup drs_stop; fi
    return 0
}

drs_stop() {
    [ -n "${DRS_PID:-}" ] || return 0
    local _
    kill -TERM "$DRS_PID" 2>/dev/null || { DRS_PID=; return 0; }
    for _ in $(seq 1 50); do
        kill -0 "$DRS_PID" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$DRS_PID" 2>/dev/null
    wait "$DRS_PID" 2>/dev/null
    DRS_PID=
    return 0
}

drs_reload() { curl -sf -X POST -o /dev/null "$DRS_URL/_admin/reload"; }
drs_revoke() { curl -sf -X POST -o /dev/null "$DRS_URL/_admin/revoke"; }
drs_set() {
    local q
    q=$(IFS='&'; echo "$*")
    curl -sf -X POST -o /dev/null "$DRS_URL/_admin/set?$q"
}

drs_creds() {
    local out="${1:?usage: drs_creds OUT [API_KEY]}" key="${2:-$DRS_API_KEY}"
    python3 - "$out" "$key" "$DRS_KEY_ID" <<'PY'
import json, sys
out, key, kid = sys.argv[1:4]
with open(out, "w") as f:
    json.dump({"api_key": key, "key_id": kid}, f)
PY
    chmod 600 "$out"
}

drs_count() {
    python3 - "$DRS_LOG" "$@" <<'PY'
import json, sys
log, filters = sys.argv[1], sys.argv[2:]
def match(r, f):
    neg = f.startswith("!")
    f = f[1:] if neg else f
    k, eq, v = f.partition("=")
    cur = r.get(k)
    ok = (cur is not None and cur != "") if not eq else (str(cur) == v)
    return ok != neg
n = 0
with open(log) as fh:
    for line in fh:
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if all(match(r, f) for f in filters):
            n += 1
print(n)
PY
}
