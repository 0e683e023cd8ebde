# shellcheck shell=bash
# tests/lib/azure.sh - a throwaway Azurite (Azure Blob emulator) for tests.
#
# Source this file (after common.sh), then:
#   azure_available      0 if node and azurite-blob are installed (else prints why)
#   azure_start DIR      start azurite-blob on 127.0.0.1 (free port) with its
#                        data in DIR/data; returns once it answers a signed
#                        List Containers.  Registers azure_stop as a cleanup hook
#                        when common.sh's on_cleanup exists.
#   azure_stop           stop it (safe to call twice or when never started)
#   azure_container NAME [--public blob|container]   create a container
#   azure_put CONTAINER BLOB FILE                    upload (Put Blob); prints the ETag
#   azure_etag CONTAINER BLOB                        the blob's ETag (quotes kept)
#   azure_sas CONTAINER [--perm r] [--expired]       a service SAS for the container
#
# After azure_start these are exported:
#   AZURITE_DIR AZURITE_PORT
#   AZURITE_ACCOUNT   devstoreaccount1
#   AZURITE_KEY       its well-known key (public, documented by Microsoft)
#   AZURITE_ENDPOINT  http://127.0.0.1:PORT/devstoreaccount1 (path-style)
#   AZURITE_CONNSTR   a connection string with AccountName/AccountKey/BlobEndpoint
#   AZURITE_LOG       azurite's stdout/stderr (with AZURITE_DEBUG=1 also its
#                     debug log, which shows the string-to-sign it computed)
#
# Azurite facts the tests rely on (/work/shared/TESTSERVERS.md): SharedKey and
# SAS signatures are verified (bad key -> 403); path-style canonicalized
# resource repeats the account; x-ms-version up to 2025-11-05; If-Match ->
# 412; suffix ranges -> 500 (lfsfs never sends them).
#
# This file does not change the caller's shell options.

AZURITE_BIN="${AZURITE_BIN:-${LFSFS_SRC:-/work/main}/node_modules/.bin/azurite-blob}"
AZURE_STANDINS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/azure_standins.py"

_azure_log() { printf 'azure: %s\n' "$*" >&2; }

azure_available() {
    command -v node >/dev/null 2>&1 || { echo "node not installed (azurite needs Node.js)"; return 1; }
    [ -x "$AZURITE_BIN" ] || { echo "azurite-blob not found at $AZURITE_BIN (run npm ci)"; return 1; }
    return 0
}

_azure_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

_azure_client() {
    python3 "$AZURE_STANDINS" --account "$AZURITE_ACCOUNT" --key "$AZURITE_KEY" \
        --endpoint "$AZURITE_ENDPOINT" "$@"
}

azure_start() {
    local dir="${1:?usage: azure_start DIR}" attempt i dbg=()
    azure_available >/dev/null || { _azure_log "$(azure_available)"; return 1; }
    mkdir -p "$dir/data" || return 1
    dir=$(cd "$dir" && pwd -P) || return 1
    AZURITE_DIR="$dir"
    AZURITE_LOG="$dir/azurite.log"
    AZURITE_ACCOUNT=devstoreaccount1
    AZURITE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
    export AZURITE_DIR AZURITE_LOG AZURITE_ACCOUNT AZURITE_KEY
    [ "${AZURITE_DEBUG:-0}" = 1 ] && dbg=(--debug "$dir/debug.log")
    for attempt in 1 2 3 4 5; do
        AZURITE_PORT=$(_azure_free_port) || return 1
        AZURITE_ENDPOINT="http://127.0.0.1:$AZURITE_PORT/$AZURITE_ACCOUNT"
        AZURITE_CONNSTR="DefaultEndpointsProtocol=http;AccountName=$AZURITE_ACCOUNT;AccountKey=$AZURITE_KEY;BlobEndpoint=$AZURITE_ENDPOINT;"
        export AZURITE_PORT AZURITE_ENDPOINT AZURITE_CONNSTR
        "$AZURITE_BIN" --disableTelemetry --silent --location "$dir/data" \
            --blobHost 127.0.0.1 --blobPort "$AZURITE_PORT" "${dbg[@]}" \
            >>"$AZURITE_LOG" 2>&1 </dev/null &
        echo $! > "$dir/azurite.pid"
        for i in $(seq 1 150); do
            if _azure_client ready 2>/dev/null; then
                declare -F on_cleanup >/dev/null && [ -z "${_AZURE_HOOKED:-}" ] &&
                    { on_cleanup azure_stop; _AZURE_HOOKED=1; }
                return 0
            fi
            kill -0 "$(cat "$dir/azurite.pid")" 2>/dev/null || break
            sleep 0.1
        done
        _azure_log "azurite start attempt $attempt failed (port $AZURITE_PORT); see $AZURITE_LOG"
        azure_stop
    done
    tail -n 20 "$AZURITE_LOG" >&2 2>/dev/null
    return 1
}

azure_stop() {
    [ -n "${AZURITE_DIR:-}" ] && [ -s "$AZURITE_DIR/azurite.pid" ] || return 0
    local pid i
    pid=$(cat "$AZURITE_DIR/azurite.pid")
    rm -f "$AZURITE_DIR/azurite.pid"
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    return 0
}

azure_container() { _azure_client container "$@"; }
azure_put() { _azure_client put "$@"; }
azure_etag() { _azure_client etag "$@"; }
azure_sas() { _azure_client sas "$@"; }
