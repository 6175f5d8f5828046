#!/usr/bin/env bash
# demo.sh - a short tour of qqmgr with the bundled example config (examples/qqmgr.toml):
# builds (or reuses) the tiny test guest, links it as examples/guest, then starts the VM
# "demo", shows its status, runs a command in it over ssh, prints the end of its serial
# console and stops it. Each command is printed before it runs; the first failure ends
# the demo (the VM is stopped on the way out).
#
# On a fresh Debian 12 machine it first installs the Debian packages it needs
# (tools/deps.sh) and builds qqmgr into build/ (meson + ninja).
#
# Env: QQMGR  qqmgr binary (default: build it into <repo>/build and use that)
#      QQ_TEST_CACHE  where the built guest is cached (see tests/guest/tiny-guest.sh)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
if [ -z "${QQMGR:-}" ]; then
    "$REPO/tools/deps.sh" --demo
    echo "demo: building qqmgr" >&2
    [ -f "$REPO/build/build.ninja" ] || meson setup "$REPO/build" "$REPO" >/dev/null
    ninja -C "$REPO/build" >/dev/null
    QQMGR=$REPO/build/qqmgr
fi
case $QQMGR in /*) ;; */*) QQMGR=$PWD/$QQMGR ;; esac   # keep it valid after the cd
[ -x "$QQMGR" ] || command -v "$QQMGR" >/dev/null ||
    { echo "demo: no qqmgr binary at $QQMGR (build it, or set QQMGR)" >&2; exit 1; }

echo "demo: building or reusing the tiny guest" >&2
guest=$("$REPO/tests/guest/tiny-guest.sh")
ln -sfn "$guest" "$HERE/guest"

run() {
    printf '\n$ %s\n' "$*"
    "$@"
}
qq() { run "$QQMGR" -c "$HERE/qqmgr.toml" "$@"; }

started=0
cleanup() {
    if [ "$started" = 1 ]; then "$QQMGR" -c "$HERE/qqmgr.toml" stop demo >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

started=1
qq start demo --wait
qq status demo
qq ssh demo uname -a
qq serial demo -n 5
qq stop demo
started=0
