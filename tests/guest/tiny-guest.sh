#!/usr/bin/env bash
# tiny-guest.sh - print the directory of a built tiny test guest (see build-tiny-guest.sh
# for its files and kernel command line switches), building it on first use (10-15 s).
# Cache: ${QQ_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qqmgr-tests}/tiny-guest-<hash>,
# <hash> = sha256 of build-tiny-guest.sh. Safe to run concurrently. Stdout: the path only.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/cached-build.sh"
cached_build tiny-guest "$HERE/build-tiny-guest.sh" bash
