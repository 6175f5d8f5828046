#!/usr/bin/env bash
# cloud-base.sh - print the directory of a built Debian cloud-init base image (see
# build-cloud-base.sh: base.qcow2, vmlinuz, initrd.img), building it on first use
# (about 1.5 min, needs root or password-less sudo, mmdebstrap).
# Cache: ${QQ_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qqmgr-tests}/cloud-base-<hash>,
# <hash> = sha256 of build-cloud-base.sh. Safe to run concurrently. Stdout: the path only.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/cached-build.sh"
runner=(bash)
[ "$(id -u)" -eq 0 ] || runner=(sudo -n bash)
cached_build cloud-base "$HERE/build-cloud-base.sh" "${runner[@]}"
