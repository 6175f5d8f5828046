#!/usr/bin/env bash
# deps.sh — install the Debian packages qqmgr needs to build, test and run its
# example (only the missing ones; `apt-get update` first when one is not found).
# Usage: tools/deps.sh [--build-only | --demo]
#   (default: everything the tests need; --demo: building (with the man page: scdoc), running VMs and
#   building the tiny example guest)
set -euo pipefail

BUILD=(meson ninja-build pkg-config gcc clang scdoc libjansson-dev libcurl4-openssl-dev libssl-dev
       libisofs-dev libcmocka-dev)
RUN=(qemu-system-x86 qemu-utils openssh-client gdb vde2)
GUEST=(binutils xz-utils ca-certificates)
TEST=(python3 python3-pytest golang-go zsh fish libclang-rt-14-dev busybox-static dropbear-bin strace
      openssh-sftp-server openssh-server binutils xz-utils cpio mmdebstrap e2fsprogs genisoimage curl
      ca-certificates time tmux parallel slurm-wlm munge jq)

want=("${BUILD[@]}")
case "${1:-}" in
    --build-only) ;;
    --demo) want+=("${RUN[@]}" "${GUEST[@]}") ;;
    *) want+=("${RUN[@]}" "${GUEST[@]}" "${TEST[@]}") ;;
esac

missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
