#!/bin/sh
# Installs the Debian 12 packages callstream needs to build, run and test. Idempotent,
# and fast when nothing is missing (one dpkg-query, no apt calls).
set -eu

PACKAGES="
build-essential cmake pkg-config git ca-certificates openssl curl
libuv1-dev libssl-dev libsqlite3-dev libcjson-dev libspeexdsp-dev libcmocka-dev libsodium-dev
"

missing=""
for p in $PACKAGES; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
    *" installed") ;;
    *) missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing"
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-deps: need root (or sudo) to install:$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
