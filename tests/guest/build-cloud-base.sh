#!/usr/bin/env bash
# build-cloud-base.sh OUTDIR - build a small Debian base image with cloud-init + sshd
# inside, for direct-kernel-boot under QEMU (no bootloader, no partition table), for
# qqmgr's cloud-init image tests. Tests do not call this directly: cloud-base.sh builds
# it once into a cache.
#
# Everything comes from the host's own apt sources (/etc/apt/sources.list and
# /etc/apt/sources.list.d/*.{list,sources}); no mirror host is named here.
#
# Usage:  sudo ./build-cloud-base.sh OUTDIR
#
# Produces in OUTDIR:
#   base.qcow2    qcow2 of a bare ext4 filesystem (label "rootfs"), no partitions
#   vmlinuz       kernel  } boot with: -kernel vmlinuz -initrd initrd.img
#   initrd.img    initrd  }   -append 'root=/dev/vda rw console=ttyS0'
#   packages.txt  dpkg package list of the image
#   build-info.txt
#
# Environment knobs:
#   SUITE          Debian suite (default: bookworm)
#   KERNEL_PKG     kernel package (default: linux-image-cloud-amd64, ~105 MB
#                  installed, has virtio, ata_piix/sr_mod/isofs for the seed
#                  cdrom; linux-image-amd64 is ~400 MB installed, not tried)
#   IMAGE_SIZE     virtual size of the ext4 fs (default: 2G). The qcow2 file
#                  only holds the used blocks. Grow later with `qemu-img resize`
#                  on the overlay; cloud-init's resizefs grows the fs on boot.
#   COMPRESS=1     write a zlib-compressed qcow2 (~104 MiB instead of ~330 MiB;
#                  boot speed with it not measured)
#   APT_SOURCES    use this sources file (one-line .list or deb822 .sources)
#                  instead of the host's sources
#   KEEP_WORK=1    keep the unpacked rootfs in OUTDIR/.work for inspection
#
# Host needs: mmdebstrap, e2fsprogs (mkfs.ext4 with -d), qemu-utils (qemu-img).
# Boot notes: cloud-init's NoCloud datasource reads a seed ISO labelled "cidata" (cdrom);
# the NIC is ens3; root may log in with a key from ssh_authorized_keys (disable_root off).
# Must run as root (mmdebstrap "root" mode + files owned by root in the image).
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
OUTDIR=$1
SUITE=${SUITE:-bookworm}
KERNEL_PKG=${KERNEL_PKG:-linux-image-cloud-amd64}
IMAGE_SIZE=${IMAGE_SIZE:-2G}
COMPRESS=${COMPRESS:-0}

log() { printf '[cloud-base %3ss] %s\n' "$SECONDS" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root"

# --- host tools --------------------------------------------------------------
for t in mmdebstrap:mmdebstrap mkfs.ext4:e2fsprogs e2fsck:e2fsprogs qemu-img:qemu-utils; do
    command -v "${t%%:*}" >/dev/null || die "host tool '${t%%:*}' not found (Debian package ${t#*:})"
done

mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
WORK="$OUTDIR/.work"
rm -rf "$WORK"
mkdir -p "$WORK"
cleanup() {
    if [ "${KEEP_WORK:-0}" != 1 ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --- apt sources: reuse the host's, keeping only entries for $SUITE ----------
# (so that unrelated third-party repos on the host cannot break the bootstrap)
collect_sources() {
    local oneline="$WORK/host.list" deb822="$WORK/host.sources"
    : > "$oneline"; : > "$deb822"
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk -v suite="$SUITE" '
            { line=$0; sub(/#.*/, "", line) }
            line ~ /^[ \t]*deb[ \t]/ {
                rest=line; sub(/^[ \t]*deb[ \t]+/, "", rest)
                if (rest ~ /^\[/) { sub(/^\[[^]]*\][ \t]*/, "", rest) }
                split(rest, a, /[ \t]+/)
                s=a[2]
                if (s == suite || index(s, suite "-") == 1 || index(s, suite "/") == 1) print line
            }' "$f" >> "$oneline"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        # print whole deb822 stanzas whose Types has "deb" and whose Suites
        # mention $SUITE (or $SUITE-updates etc.); drop deb-src; skip Enabled: no
        awk -v suite="$SUITE" '
            function flush() {
                if (n > 0 && isdeb && oksuite && enabled) {
                    for (i = 1; i <= n; i++) print st[i]
                    print ""
                }
                n=0; isdeb=0; oksuite=0; enabled=1
            }
            BEGIN { n=0; isdeb=0; oksuite=0; enabled=1 }
            /^[ \t]*$/ { flush(); next }
            /^#/ { next }
            {
                l=$0
                if (tolower(l) ~ /^types:/) {
                    if (l ~ /[: \t]deb([ \t]|$)/) isdeb=1
                    l="Types: deb"
                } else if (tolower(l) ~ /^suites:/) {
                    m=split(substr(l, 8), a, /[ \t]+/)
                    for (i = 1; i <= m; i++)
                        if (a[i] == suite || index(a[i], suite "-") == 1 || index(a[i], suite "/") == 1) oksuite=1
                } else if (tolower(l) ~ /^enabled:[ \t]*(no|false)/) {
                    enabled=0
                }
                st[++n]=l
            }
            END { flush() }' "$f" >> "$deb822"
    done
    SOURCES_ARGS=()
    [ -s "$oneline" ] && SOURCES_ARGS+=("$oneline")
    [ -s "$deb822" ] && SOURCES_ARGS+=("$deb822")
    return 0
}

if [ -n "${APT_SOURCES:-}" ]; then
    [ -f "$APT_SOURCES" ] || die "APT_SOURCES=$APT_SOURCES not found"
    SOURCES_ARGS=("$APT_SOURCES")
else
    collect_sources
fi
[ ${#SOURCES_ARGS[@]} -gt 0 ] ||
    die "no apt source for suite '$SUITE' in the host's apt sources; set APT_SOURCES=FILE"
log "apt sources used:"
for f in "${SOURCES_ARGS[@]}"; do sed 's/^/    /' "$f" >&2; done

# --- package set ------------------------------------------------------------
PACKAGES=(
    systemd-sysv udev dbus          # init, device manager (module autoload, NIC names)
    "$KERNEL_PKG" initramfs-tools   # kernel+initrd (extracted for -kernel/-initrd)
    cloud-init                      # NoCloud datasource
    openssh-server
    ifupdown isc-dhcp-client iproute2 netbase   # cloud-init renders ENI -> DHCP
    e2fsprogs                       # resize2fs for cloud-init resizefs
    sudo                            # cloud-init default user sudo rules
)
INCLUDE=$(IFS=,; echo "${PACKAGES[*]}")

# --- customisation run inside mmdebstrap (chroot dir is $1) ------------------
cat > "$WORK/customize.sh" <<'EOF'
#!/bin/sh
set -eu
R="$1"

# cloud-init datasources: NoCloud (seed ISO labelled "cidata").
# ConfigDrive is listed only so that the list has two real entries: with
# "[ NoCloud, None ]" ds-identify takes its "single entry" shortcut and enables
# cloud-init on every boot; a boot without the seed ISO then becomes a new
# DataSourceNone instance (new ssh host keys, per-instance modules re-run).
# With two entries ds-identify really searches, and a boot without a seed
# simply runs with cloud-init disabled.
# disable_root: false lets ssh_authorized_keys work for root directly (Debian's
# cloud.cfg otherwise wraps root's keys in a "login as user debian" command).
# ssh_genkeytypes: skip rsa/dsa host keys, slow to make under TCG.
# grub_dpkg: there is no grub here (direct kernel boot); it only costs time.
cat > "$R/etc/cloud/cloud.cfg.d/99_base-image.cfg" <<'CFG'
datasource_list: [ NoCloud, ConfigDrive, None ]
disable_root: false
ssh_genkeytypes: [ ed25519, ecdsa ]
grub_dpkg:
  enabled: false
CFG

# ifupdown: cloud-init writes /etc/network/interfaces.d/50-cloud-init (DHCP)
cat > "$R/etc/network/interfaces" <<'NET'
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback
NET
mkdir -p "$R/etc/network/interfaces.d"

# host-specific files copied in by mmdebstrap
echo debian > "$R/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$R/etc/hosts"
rm -f "$R/etc/resolv.conf"; : > "$R/etc/resolv.conf"

# C.UTF-8 is built into glibc: with LANG set, cloud-init's locale module
# does not run locale-gen (slow, especially under TCG)
echo 'LANG=C.UTF-8' > "$R/etc/default/locale"

# no fstab entry needed: root comes from root=/dev/vda rw on the kernel cmdline
echo '# root is mounted from the kernel command line (root=/dev/vda rw)' > "$R/etc/fstab"

# per-instance ssh host keys: drop the ones made at install time; cloud-init
# makes new ones on first boot. The drop-in covers a boot without cloud-init
# (no seed ever given): make an ed25519 key if there is no host key at all.
# The list is reset so the keygen runs before Debian's own "sshd -t" check.
rm -f "$R"/etc/ssh/ssh_host_*
mkdir -p "$R/etc/systemd/system/ssh.service.d"
cat > "$R/etc/systemd/system/ssh.service.d/10-hostkeys.conf" <<'UNIT'
[Service]
ExecStartPre=
ExecStartPre=/bin/sh -c 'ls /etc/ssh/ssh_host_*_key >/dev/null 2>&1 || ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key'
ExecStartPre=/usr/sbin/sshd -t
UNIT
chroot "$R" systemctl enable ssh.service

# no background apt activity in test VMs
chroot "$R" systemctl mask apt-daily.timer apt-daily-upgrade.timer >/dev/null 2>&1 || true
EOF
chmod +x "$WORK/customize.sh"

# --- bootstrap -----------------------------------------------------------------
ROOTFS="$WORK/rootfs"
log "mmdebstrap $SUITE -> $ROOTFS"
log "packages: $INCLUDE"
t0=$(date +%s)
mmdebstrap \
    --mode=root \
    --variant=minbase \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --include="$INCLUDE" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook="$WORK/customize.sh" \
    "$SUITE" "$ROOTFS" "${SOURCES_ARGS[@]}"
t1=$(date +%s)

# --- kernel + initrd out of the image (direct kernel boot) ------------------
kver=$(ls "$ROOTFS/lib/modules" | sort -V | tail -n1)
[ -n "$kver" ] || die "no kernel modules found in rootfs"
cp "$ROOTFS/boot/vmlinuz-$kver" "$OUTDIR/vmlinuz"
cp "$ROOTFS/boot/initrd.img-$kver" "$OUTDIR/initrd.img"
chmod 0644 "$OUTDIR/vmlinuz" "$OUTDIR/initrd.img"
# not needed inside the image (no bootloader); saves ~40 MB
rm -f "$ROOTFS/boot/vmlinuz-$kver" "$ROOTFS/boot/initrd.img-$kver" \
      "$ROOTFS/boot/System.map-$kver" "$ROOTFS/vmlinuz" "$ROOTFS/vmlinuz.old" \
      "$ROOTFS/initrd.img" "$ROOTFS/initrd.img.old"

chroot "$ROOTFS" dpkg-query -W -f '${Package}\t${Version}\n' > "$OUTDIR/packages.txt"

# --- ext4 filesystem image -> qcow2 ---------------------------------------------
log "mkfs.ext4 -d ($IMAGE_SIZE)"
rm -f "$WORK/base.raw"
truncate -s "$IMAGE_SIZE" "$WORK/base.raw"
mkfs.ext4 -q -F -L rootfs -d "$ROOTFS" "$WORK/base.raw"
e2fsck -fn "$WORK/base.raw" >/dev/null 2>&1 || die "e2fsck found problems in the new filesystem"
qopts=()
[ "$COMPRESS" = 1 ] && qopts+=(-c)
rm -f "$OUTDIR/base.qcow2"
qemu-img convert -f raw -O qcow2 "${qopts[@]}" "$WORK/base.raw" "$OUTDIR/base.qcow2"
t2=$(date +%s)

{
    echo "suite: $SUITE"
    echo "kernel: $kver"
    echo "packages: $(wc -l < "$OUTDIR/packages.txt")"
    echo "rootfs_used: $(du -sh "$ROOTFS" | cut -f1)"
    echo "raw_virtual_size: $IMAGE_SIZE"
    echo "raw_allocated: $(du -h "$WORK/base.raw" | cut -f1)"
    echo "qcow2_file: $(du -h "$OUTDIR/base.qcow2" | cut -f1)"
    echo "bootstrap_s: $((t1 - t0))"
    echo "image_s: $((t2 - t1))"
    echo "boot: -kernel vmlinuz -initrd initrd.img -append 'root=/dev/vda rw console=ttyS0'"
} > "$OUTDIR/build-info.txt"
cat "$OUTDIR/build-info.txt" >&2
log "done: $OUTDIR/base.qcow2"
