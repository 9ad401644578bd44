#!/bin/sh
# Installs what callstream needs to build, run and test on Debian 12: the packages, then
# the browser tests' npm packages (tests/browser, from its lockfile). Idempotent, and fast
# when nothing is missing (one dpkg-query, no apt or npm calls).
#   --fuzz   also clang and its libFuzzer runtime, for bench/fuzz (never needed by make test)
set -eu
cd "$(dirname "$0")/.."

PACKAGES="
build-essential cmake pkg-config git ca-certificates openssl curl
libuv1-dev libssl-dev libsqlite3-dev libcjson-dev libspeexdsp-dev libcmocka-dev libsodium-dev
libcurl4-openssl-dev
postgresql libpq-dev redis-server libhiredis-dev
libpocketsphinx-dev pocketsphinx-en-us libexpat1-dev
libespeak-ng-dev espeak-ng-data flite1-dev
chromium
"
# Node.js may come from Debian or elsewhere (NodeSource bundles npm): only the commands
# matter.
command -v node >/dev/null 2>&1 || PACKAGES="$PACKAGES nodejs"
command -v npm >/dev/null 2>&1 || PACKAGES="$PACKAGES npm"
# libclang-rt-dev holds libclang_rt.fuzzer (and the sanitizer runtimes) for Debian's clang.
[ "${1:-}" = "--fuzz" ] && PACKAGES="$PACKAGES clang libclang-rt-dev"

missing=""
for p in $PACKAGES; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
    *" installed") ;;
    *) missing="$missing $p" ;;
    esac
done

if [ -n "$missing" ]; then
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
fi

# The browser tests' packages, when the lockfile is newer than what is installed.
lock=tests/browser/package-lock.json
installed=tests/browser/node_modules/.package-lock.json
if [ ! -f "$installed" ] || [ "$lock" -nt "$installed" ]; then
    echo "install-deps: npm ci in tests/browser"
    npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
fi
