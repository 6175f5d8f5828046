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
#      QQ_DEMO_BUILD_DIR  the build dir when QQMGR is not set (default: <repo>/build)
#      QQ_TEST_CACHE  where the built guest is cached (see tests/guest/tiny-guest.sh)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
if [ -z "${QQMGR:-}" ]; then
    "$REPO/tools/deps.sh" --demo
    BUILD=${QQ_DEMO_BUILD_DIR:-$REPO/build}
    echo "demo: building qqmgr in $BUILD (about a minute the first time)" >&2
    [ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" "$REPO" >/dev/null
    if [ -t 2 ]; then
        ninja -C "$BUILD" >&2   # ninja's own progress line, rewritten in place
    else
        # one line per tenth of the build; anything else ninja says (errors) as it is
        ninja -C "$BUILD" | awk '
            match($0, /^\[[0-9]+\/[0-9]+\]/) {
                split(substr($0, 2, RLENGTH - 2), nm, "/")
                tenth = int(nm[1] * 10 / nm[2])
                if (tenth > shown) { shown = tenth; printf "demo: built %d of %d steps\n", nm[1], nm[2]; fflush() }
                next
            }
            { print; fflush() }' >&2
    fi
    QQMGR=$BUILD/qqmgr
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
# the serial log may end inside a line (the guest's prompt): the tail ends with a newline
printf '\n$ %s\n' "$QQMGR -c $HERE/qqmgr.toml serial demo -n 5"
tail=$("$QQMGR" -c "$HERE/qqmgr.toml" serial demo -n 5)
printf '%s\n' "$tail"
qq stop demo
started=0
