# shellcheck shell=bash
# cached-build.sh - sourced by tiny-guest.sh and cloud-base.sh: build a test guest once
# and keep it in a cache shared by every checkout and test run.
#
# cached_build NAME BUILD_SCRIPT [RUNNER...]
#   Prints the path of $CACHE/NAME-<hash>, where <hash> is the first 16 hex digits of the
#   sha256 of BUILD_SCRIPT's content (so the key only changes when the recipe does), and
#   CACHE is ${QQ_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qqmgr-tests}.
#   If that directory is missing, runs `RUNNER... BUILD_SCRIPT TMPDIR` (build output goes
#   to stderr) in a temporary directory beside it and renames it into place, so a
#   directory under the final name is always complete. Concurrent callers serialise on
#   an flock of $CACHE/NAME-<hash>.lock; the second one finds the finished build.
#   The build script's environment knobs (KERNEL_PKG, SUITE, ...) are not part of the key.
#   Exits non-zero (with the build's messages on stderr) if the build fails; the
#   temporary directory is removed.

cached_build() {
    local name=$1 script=$2; shift 2
    local cache=${QQ_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qqmgr-tests}
    local hash dest tmp rc
    hash=$(sha256sum < "$script" | cut -c1-16) || return 1
    dest=$cache/$name-$hash
    if [ -d "$dest" ]; then
        printf '%s\n' "$dest"
        return 0
    fi
    mkdir -p "$cache" || return 1
    (
        flock 9 || exit 1
        [ -d "$dest" ] && exit 0
        tmp=$(mktemp -d "$cache/.$name-$hash.XXXXXX") || exit 1
        trap 'rm -rf "$tmp"' EXIT
        chmod 755 "$tmp"
        printf '[%s] building into %s (cache miss)\n' "$name" "$dest" >&2
        start=$SECONDS
        "$@" "$script" "$tmp" >&2 || { rc=$?; printf '[%s] build failed (exit %s)\n' "$name" "$rc" >&2; exit 1; }
        mv -T "$tmp" "$dest" || exit 1
        trap - EXIT
        printf '[%s] built in %ss\n' "$name" "$((SECONDS - start))" >&2
    ) 9> "$cache/$name-$hash.lock" || return 1
    printf '%s\n' "$dest"
}
