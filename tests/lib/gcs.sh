# shellcheck shell=bash
# tests/lib/gcs.sh - a throwaway GCS JSON-API test server (tests/lib/gcs_server.py)
# with a token endpoint and a GCE metadata server, plus throwaway credentials.
#
# Source this file (after common.sh in integration tests), then:
#   gcs_start DIR       start the server on 127.0.0.1 (free port) serving
#                       DIR/buckets; make a trusted service account and an
#                       authorized_user. Returns once it answers.
#   gcs_stop            stop it (safe to call twice or when never started).
#   gcs_make_sa NAME OUT [untrusted]
#                       write a service-account key file OUT for
#                       NAME@lfsfs-test.iam.gserviceaccount.com with a fresh
#                       RSA key (openssl) and token_uri = the test server; the
#                       server trusts the key unless "untrusted" (then a key it
#                       does not know, even for a trusted account name).
#   gcs_put BUCKET OBJECT SRC
#                       store SRC's bytes as OBJECT (atomically: a new generation)
#   gcs_count FILTER... count log records matching every KEY=VALUE filter
#                       (keys of the JSON log: method, object, alt, status,
#                       auth, grant, flavor, path; "query.K=V" for a query
#                       parameter, "query.K" for "present", "!query.K" absent)
#   gcs_meta BUCKET OBJECT [TOKEN]
#                       print the object's metadata JSON
#   gcs_revoke_tokens   the server forgets every token it issued (test knob)
#   gcs_token_lifetime S  tokens issued from now on live S seconds (test knob)
#
# After gcs_start these are exported:
#   GCS_DIR GCS_ROOT (DIR/buckets) GCS_PORT GCS_HOST (127.0.0.1:PORT)
#   GCS_URL (http://GCS_HOST) GCS_LOG (JSON lines, one per request)
#   GCS_SA_JSON GCS_SA_EMAIL   a trusted service-account key file
#   GCS_USER_JSON              an authorized_user file the server accepts
#   GCS_PID

_gcs_log() { printf '[gcs] %s\n' "$*" >&2; }

gcs_start() {
    local dir="${1:?usage: gcs_start DIR}" i py
    mkdir -p "$dir" || return 1
    dir=$(cd "$dir" && pwd -P) || return 1
    GCS_DIR="$dir"
    GCS_ROOT="$dir/buckets"
    GCS_LOG="$dir/requests.log"
    mkdir -p "$GCS_ROOT" "$dir/trust" "$dir/keys" || return 1
    : > "$GCS_LOG"
    rm -f "$dir/port"
    py="${LFSFS_TESTLIB:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)}/gcs_server.py"
    python3 "$py" --root "$GCS_ROOT" --trust-dir "$dir/trust" --users "$dir/users.json" \
        --port-file "$dir/port" --log "$GCS_LOG" ${GCS_TOKEN_LIFETIME:+--token-lifetime "$GCS_TOKEN_LIFETIME"} \
        >"$dir/server.out" 2>&1 &
    GCS_PID=$!
    export GCS_DIR GCS_ROOT GCS_LOG GCS_PID
    for i in $(seq 1 100); do
        [ -s "$dir/port" ] && break
        kill -0 "$GCS_PID" 2>/dev/null || { cat "$dir/server.out" >&2; return 1; }
        sleep 0.05
    done
    [ -s "$dir/port" ] || { _gcs_log "server did not start"; return 1; }
    GCS_PORT=$(cat "$dir/port")
    GCS_HOST="127.0.0.1:$GCS_PORT"
    GCS_URL="http://$GCS_HOST"
    export GCS_PORT GCS_HOST GCS_URL
    for i in $(seq 1 100); do
        curl -sf -o /dev/null --max-time 2 "$GCS_URL/healthz" && break
        sleep 0.05
    done
    curl -sf -o /dev/null --max-time 2 "$GCS_URL/healthz" || { _gcs_log "server not answering"; return 1; }
    if declare -F on_cleanup >/dev/null; then on_cleanup gcs_stop; fi

    GCS_SA_EMAIL="reader@lfsfs-test.iam.gserviceaccount.com"
    GCS_SA_JSON="$dir/keys/reader.json"
    gcs_make_sa reader "$GCS_SA_JSON" || return 1
    export GCS_SA_EMAIL GCS_SA_JSON

    # an authorized_user (what `gcloud auth application-default login` writes)
    GCS_USER_JSON="$dir/keys/authorized_user.json"
    python3 - "$dir/users.json" "$GCS_USER_JSON" "$GCS_URL/token" <<'PY' || return 1
import json, secrets, sys
users, out, uri = sys.argv[1:4]
cid = "764086051850-lfsfstest.apps.googleusercontent.com"
sec = "d-" + secrets.token_urlsafe(12)
rt = "1//" + secrets.token_urlsafe(40)
with open(users, "w") as f:
    json.dump({cid: {"secret": sec, "refresh_tokens": [rt]}}, f)
with open(out, "w") as f:
    json.dump({"type": "authorized_user", "client_id": cid, "client_secret": sec,
               "refresh_token": rt, "token_uri": uri}, f, indent=2)
PY
    chmod 600 "$GCS_USER_JSON"
    export GCS_USER_JSON
    return 0
}

gcs_stop() {
    [ -n "${GCS_PID:-}" ] || return 0
    local i
    kill -TERM "$GCS_PID" 2>/dev/null || { GCS_PID=; return 0; }
    for i in $(seq 1 50); do
        kill -0 "$GCS_PID" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$GCS_PID" 2>/dev/null
    wait "$GCS_PID" 2>/dev/null
    GCS_PID=
    return 0
}

gcs_make_sa() {
    local name="${1:?usage: gcs_make_sa NAME OUT [untrusted]}" out="${2:?}" trust="${3:-trusted}"
    local email="$name@lfsfs-test.iam.gserviceaccount.com" key="$GCS_DIR/keys/$name.$$.$RANDOM.pem"
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$key" 2>/dev/null ||
        { _gcs_log "openssl genpkey failed"; return 1; }
    if [ "$trust" != untrusted ]; then
        openssl pkey -in "$key" -pubout -out "$GCS_DIR/trust/$email.pem" 2>/dev/null || return 1
    fi
    python3 - "$key" "$out" "$email" "$GCS_URL/token" <<'PY' || return 1
import json, secrets, sys
key, out, email, uri = sys.argv[1:5]
with open(key) as f:
    pem = f.read()
with open(out, "w") as f:
    json.dump({"type": "service_account", "project_id": "lfsfs-test",
               "private_key_id": secrets.token_hex(20), "private_key": pem,
               "client_email": email, "client_id": str(secrets.randbelow(10**20)),
               "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": uri,
               "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs"},
              f, indent=2)
PY
    chmod 600 "$out"
    rm -f "$key"
}

gcs_put() {
    local bucket="$1" obj="$2" src="$3" dst
    dst="$GCS_ROOT/$bucket/$obj"
    mkdir -p "$(dirname "$dst")" || return 1
    cp -f "$src" "$dst.put.$$" && mv -f "$dst.put.$$" "$dst"
}

gcs_count() {
    python3 - "$GCS_LOG" "$@" <<'PY'
import json, sys
log, filters = sys.argv[1], sys.argv[2:]
def match(r, f):
    neg = f.startswith("!")
    f = f[1:] if neg else f
    k, eq, v = f.partition("=")
    cur = r
    for part in k.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    ok = (cur is not None) if not eq else (str(cur) == v)
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

gcs_meta() {
    local enc
    enc=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$2")
    curl -sS ${3:+-H "Authorization: Bearer $3"} "$GCS_URL/storage/v1/b/$1/o/$enc"
}

gcs_revoke_tokens() { curl -sf -X POST -o /dev/null "$GCS_URL/_admin/revoke"; }
gcs_token_lifetime() { curl -sf -X POST -o /dev/null "$GCS_URL/_admin/lifetime?seconds=$1"; }
