#!/usr/bin/env bash
# Install the Debian 12 packages lfsfs needs to build, test and benchmark.
# Idempotent: checks with dpkg-query first and only touches apt when something
# is missing. Quiet on success (one line).
set -euo pipefail

PKGS=(
	build-essential cmake pkg-config
	libfuse3-dev fuse3
	libcurl4-openssl-dev liblmdb-dev lmdb-utils libcjson-dev libssl-dev
	nginx-light git git-lfs openssl curl attr python3 ca-certificates procps
	time
	python3-botocore awscli python3-cryptography python3-google-auth
)

missing=()
for p in "${PKGS[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
	case "$status" in
	ii*) ;;
	*) missing+=("$p") ;;
	esac
done

# The npm test servers (s3rver, azurite), pinned in package-lock.json, go
# into ./node_modules. Needs node + npm (the machine's, or Debian's).
npm_deps() {
	local top
	top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
	if ! command -v npm >/dev/null 2>&1; then
		echo "install-deps: npm missing: the S3/Azure tests will be skipped" >&2
		return 0
	fi
	if [ -f "$top/node_modules/.package-lock.json" ] &&
		[ "$top/node_modules/.package-lock.json" -nt "$top/package-lock.json" ]; then
		return 0
	fi
	echo "install-deps: npm ci (test servers)"
	if ! (cd "$top" && npm ci --no-audit --no-fund --loglevel=error >/tmp/install-deps-npm.log 2>&1); then
		tail -n 20 /tmp/install-deps-npm.log >&2
		echo "install-deps: npm ci failed (log: /tmp/install-deps-npm.log)" >&2
		return 1
	fi
}

if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all ${#PKGS[@]} packages present"
	npm_deps
	exit 0
fi

cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages: ${missing[*]}" >&2
	echo "install-deps: run as root: $cmd" >&2
	exit 1
fi

echo "install-deps: installing: ${missing[*]}"

# Keep package maintainer scripts from starting services (a system nginx on
# port 80): tests and bench start their own nginx on free ports. The standard
# mechanism is a policy-rc.d that answers 101 ("action forbidden").
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	own_policy=1
fi
cleanup() { if [ "$own_policy" -eq 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

log=$(mktemp /tmp/install-deps.XXXXXX.log)
if ! { apt-get update &&
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		"${missing[@]}"; } >"$log" 2>&1; then
	tail -n 40 "$log" >&2
	echo "install-deps: apt-get failed (full log: $log)" >&2
	exit 1
fi
rm -f "$log"

# If a system nginx was started anyway (policy-rc.d pre-existed and allowed
# it), stop and disable it so nothing holds port 80.
if [ -e /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid 2>/dev/null)" 2>/dev/null; then
	if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
		systemctl disable --now nginx >/dev/null 2>&1 || true
	else
		nginx -s quit >/dev/null 2>&1 || true
		update-rc.d nginx disable >/dev/null 2>&1 || true
	fi
fi

echo "install-deps: installed ${#missing[@]} package(s)"
npm_deps
