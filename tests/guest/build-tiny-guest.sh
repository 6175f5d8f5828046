#!/usr/bin/env bash
# build-tiny-guest.sh OUTDIR - build a tiny, fast-booting Linux guest for qqmgr's
# end-to-end tests, purely from Debian packages (fetched with `apt-get download`,
# unpacked with `dpkg-deb -x` into a staging dir; nothing is installed on the host).
# Tests do not call this directly: tiny-guest.sh builds it once into a cache.
#
# Result in OUTDIR:
#   vmlinuz                     Debian kernel (linux-image-amd64 -> linux-image-<abi>-amd64)
#   vmlinux                     the same kernel uncompressed, for QEMU's PVH entry
#                               (-kernel vmlinux): boots several seconds faster under TCG
#                               (skip with VMLINUX=0; ~63 MB)
#   initramfs.gz                cpio newc + gzip: busybox-static userland, dropbear sshd,
#                               OpenSSH sftp-server + scp, virtio/e1000 modules, acpid
#   initramfs-qga.gz            initramfs.gz followed by a second archive (the kernel unpacks
#                               both) adding qemu-guest-agent: it serves the virtio-serial
#                               port named org.qemu.guest_agent.0 when the VM has one
#   id_ed25519, id_ed25519.pub  client key; its .pub is root's authorized_keys in the guest
#   ssh_host_ed25519_key.pub    the guest's host public key (OpenSSH format)
#   dropbear_ed25519_host_key   the guest's host private key (dropbear format)
#   packages.txt                the Debian packages (and versions) that went in
#   guest.env                   kernel version, file names, suggested QEMU command line
# Keys already present in OUTDIR are reused, so fingerprints stay stable across rebuilds.
#
# Guest behaviour: busybox init; eth0 = 10.0.2.15/24, gw 10.0.2.2, dns 10.0.2.3
# (QEMU user-net defaults); dropbear on port 22, key login only (root);
# scp works in both modes (SFTP default of OpenSSH >= 9 via sftp-server, and `scp -O`);
# ACPI power button (QMP system_powerdown) -> busybox acpid -> poweroff -> QEMU exits;
# `poweroff` inside the guest also makes QEMU exit.
# The console (ttyS0) shows "tinyguest: up ..." once the network is configured, and
# "tinyguest: shutting down" on poweroff.
#
# Test variants, chosen per boot on the kernel command line (-append):
#   qqtest.nosshd   dropbear is not started: the port forward accepts TCP connections
#                   but no SSH banner ever comes (tests of ssh readiness timeouts)
#   qqtest.noacpi   acpid is not started: the guest ignores ACPI powerdown (QMP
#                   system_powerdown), so QEMU keeps running (tests of stop fallbacks)
#   qqtest.getty    a getty on ttyS0 shows "tinyguest login: " on the console, as a
#                   distribution's guest does (tests of waits that read the serial log)
#
# Env:   KERNEL_PKG    kernel binary package (default: what linux-image-amd64 depends on)
#        MODULES       kernel modules to load at boot (deps are resolved automatically)
#        KEEP_WORK=1   keep the staging dir (OUTDIR/.work)
#        VMLINUX=0     do not write the uncompressed vmlinux
# Host tools needed: apt-get (with package lists: run `apt-get update` once), dpkg-deb, tar,
#        gzip, xz, ssh-keygen, readelf (binutils). The static busybox from the package is
#        used on the host to write the cpio archive; the packaged dropbearkey is run through
#        the packaged dynamic loader to make the host key (x86_64 host assumed).
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
OUT=$1
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$OUT/.work
DEBS=$WORK/debs
PKGROOT=$WORK/pkgroot     # userland packages unpacked here
KROOT=$WORK/kernel        # kernel package unpacked here
ROOT=$WORK/rootfs         # initramfs tree
MODULES=${MODULES:-"virtio_pci virtio_rng virtio_net virtio_blk virtio_console e1000 button evdev 9pnet 9pnet_virtio 9p"}

# userland packages; the shared-library closure of the binaries below is checked
# against what these packages provide (the build fails naming any missing library)
USER_PKGS="busybox-static dropbear-bin openssh-sftp-server openssh-client
           libc6 libcrypt1 libtomcrypt1 libtommath1 libgmp10 zlib1g
           qemu-guest-agent libglib2.0-0 libnuma1 libudev1 liburing2 libffi8 libpcre2-8-0
           libmount1 libblkid1 libselinux1 libcap2"

log() { printf '[tiny-guest %3ss] %s\n' "$SECONDS" "$*" >&2; }
die() { printf '[tiny-guest] ERROR: %s\n' "$*" >&2; exit 1; }

for t in apt-get apt-cache dpkg-deb tar gzip xz ssh-keygen readelf find sort; do
    command -v "$t" >/dev/null || die "host tool '$t' not found"
done

# ---------------------------------------------------------------- package lists
resolve_kernel_pkg() {
    apt-cache depends linux-image-amd64 2>/dev/null \
        | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ && !k { k = $2 } END { print k }'
}
if [ -z "${KERNEL_PKG:-}" ]; then
    KERNEL_PKG=$(resolve_kernel_pkg)
    if [ -z "$KERNEL_PKG" ]; then
        [ "$(id -u)" = 0 ] || die "apt knows no linux-image-amd64: run 'apt-get update' as root first"
        log "apt knows no linux-image-amd64: running apt-get update"
        apt-get update -qq
        KERNEL_PKG=$(resolve_kernel_pkg)
    fi
    [ -n "$KERNEL_PKG" ] || die "cannot resolve linux-image-amd64 to a kernel package"
fi

# ---------------------------------------------------------------- download + unpack
rm -rf "$WORK"
mkdir -p "$DEBS" "$PKGROOT" "$KROOT" "$ROOT"
log "downloading: $KERNEL_PKG $(echo $USER_PKGS)"
APT_OPTS=()
[ "$(id -u)" = 0 ] && APT_OPTS=(-o APT::Sandbox::User=root)   # silences the _apt warning
# shellcheck disable=SC2086
(cd "$DEBS" && apt-get -q "${APT_OPTS[@]}" download "$KERNEL_PKG" $USER_PKGS >/dev/null)

: > "$OUT/packages.txt"
for deb in "$DEBS"/*.deb; do
    printf '%s %s\n' "$(dpkg-deb -f "$deb" Package)" "$(dpkg-deb -f "$deb" Version)" >> "$OUT/packages.txt"
done

log "unpacking"
for p in $USER_PKGS; do
    dpkg-deb -x "$DEBS/${p}_"*.deb "$PKGROOT"
done
# kernel: vmlinuz, modules.builtin and only the module files needed. The package has
# no modules.dep (depmod runs at install time), so dependencies are read from each
# .ko's "depends=" modinfo field; unpacking is repeated for missing dependencies
# (each pass costs one decompression of the ~70 MB package, ~5 s). MODULE_HINTS are
# the known dependencies of the default MODULES, so one pass normally suffices.
MODULE_HINTS=${MODULE_HINTS:-"virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev failover net_failover netfs fscache"}
KDEB=$(echo "$DEBS/${KERNEL_PKG}_"*.deb)
ko_pattern() { local n=${1//-/_}; echo "./lib/modules/*/${n//_/[-_]}.ko"; }
unpack_kernel() {   # unpack_kernel PATTERN... (missing members are not an error)
    dpkg-deb --fsys-tarfile "$KDEB" \
        | tar -x -C "$KROOT" --wildcards "$@" 2>/dev/null || true
}
pats=('./boot/vmlinuz-*' './lib/modules/*/modules.builtin')
for m in $MODULES $MODULE_HINTS; do pats+=("$(ko_pattern "$m")"); done
unpack_kernel "${pats[@]}"
KVER=$(basename "$(echo "$KROOT"/lib/modules/*)")
[ -f "$KROOT/boot/vmlinuz-$KVER" ] || die "no vmlinuz in $KERNEL_PKG"
MODDIR=$KROOT/lib/modules/$KVER
BUILTIN=" $(sed 's#.*/##; s/\.ko$//; s/-/_/g' "$MODDIR/modules.builtin" | tr '\n' ' ') "
declare -A KO=()
index_modules() {
    local f n
    KO=()
    while IFS= read -r f; do
        n=${f##*/}; n=${n%.ko}; KO[${n//-/_}]=$f
    done < <(find "$MODDIR" -name '*.ko')
}
ko_depends() { tr '\0' '\n' < "$1" | sed -n 's/^depends=//p' | tr ',' ' '; }
# fetch until every wanted module and all its dependencies are unpacked
pass=1
while :; do
    index_modules
    declare -A VIS=(); missing=()
    # shellcheck disable=SC2206,SC2207  # module names are plain words
    stack=($MODULES)
    while [ ${#stack[@]} -gt 0 ]; do
        m=${stack[-1]//-/_}; unset 'stack[-1]'
        [ -n "${VIS[$m]:-}" ] && continue
        VIS[$m]=1
        if [ -n "${KO[$m]:-}" ]; then
            # shellcheck disable=SC2207
            stack+=($(ko_depends "${KO[$m]}"))
        elif [[ "$BUILTIN" != *" $m "* ]]; then
            missing+=("$m")
        fi
    done
    unset VIS
    [ ${#missing[@]} -eq 0 ] && break
    [ $pass -ge 6 ] && die "kernel modules not found in $KERNEL_PKG: ${missing[*]}"
    log "unpacking missing kernel modules: ${missing[*]}"
    pats=(); for m in "${missing[@]}"; do pats+=("$(ko_pattern "$m")"); done
    unpack_kernel "${pats[@]}"
    pass=$((pass + 1))
done

BB=$PKGROOT/bin/busybox
[ -x "$BB" ] || die "busybox-static did not provide /bin/busybox"

# ---------------------------------------------------------------- rootfs skeleton
log "assembling rootfs (kernel $KVER)"
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,usr/lib/openssh,lib/x86_64-linux-gnu,lib64} \
         "$ROOT"/{etc/init.d,etc/dropbear,etc/acpi/PWRF,root/.ssh,proc,sys,dev,run,tmp,var/log} \
         "$ROOT/lib/modules/$KVER"
ln -s ../run "$ROOT/var/run"
chmod 1777 "$ROOT/tmp"
chmod 700 "$ROOT/root" "$ROOT/root/.ssh"

cp "$BB" "$ROOT/bin/busybox"
# applet links at the paths busybox itself reports (sbin/init, usr/bin/awk, ...)
"$BB" --list-full | while read -r a; do
    case "$a" in */*) ;; *) continue ;; esac          # skip "linuxrc"
    [ -e "$ROOT/$a" ] || [ -L "$ROOT/$a" ] && continue
    up=${a//[!\/]/}; up=${up//\//../}                  # one ../ per slash
    ln -s "${up}bin/busybox" "$ROOT/$a"
done
ln -s bin/busybox "$ROOT/init"                         # kernel runs /init -> busybox init

# ---------------------------------------------------------------- dynamic binaries + libs
install -m 755 "$PKGROOT/usr/sbin/dropbear"            "$ROOT/usr/sbin/dropbear"
install -m 755 "$PKGROOT/usr/lib/openssh/sftp-server"  "$ROOT/usr/lib/openssh/sftp-server"
ln -s openssh/sftp-server "$ROOT/usr/lib/sftp-server"  # dropbear's compiled-in SFTP path
install -m 755 "$PKGROOT/usr/bin/scp"                  "$ROOT/usr/bin/scp"   # for `scp -O`

LIBDIRS="lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu lib usr/lib"
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }
find_lib() {
    local d
    for d in $LIBDIRS; do
        [ -e "$PKGROOT/$d/$1" ] && { echo "$d/$1"; return 0; }
    done
    return 1
}
declare -A SEEN=()
DEST=$ROOT   # where copy_deps puts libraries (the qemu-ga archive: only those not in ROOT)
copy_deps() {
    local lib rel
    for lib in $(needed "$1"); do
        [ -n "${SEEN[$lib]:-}" ] && continue
        SEEN[$lib]=1
        rel=$(find_lib "$lib") || die "library $lib (needed by ${1#"$PKGROOT"/}) not in the unpacked packages; add its package to USER_PKGS"
        mkdir -p "$DEST/$(dirname "$rel")"
        cp -L "$PKGROOT/$rel" "$DEST/$rel"
        copy_deps "$PKGROOT/$rel"
    done
}
for b in usr/sbin/dropbear usr/lib/openssh/sftp-server usr/bin/scp; do
    copy_deps "$PKGROOT/$b"
done
INTERP=$(readelf -l "$PKGROOT/usr/sbin/dropbear" | sed -n 's/.*interpreter: \(.*\)\]/\1/p')
[ "$INTERP" = /lib64/ld-linux-x86-64.so.2 ] || die "unexpected ELF interpreter '$INTERP'"
cp -L "$PKGROOT/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" "$ROOT/lib/x86_64-linux-gnu/"
ln -s ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$ROOT/lib64/ld-linux-x86-64.so.2"

# ---------------------------------------------------------------- kernel modules
declare -A ADDED=()
ORDER=()
add_module() {     # depth-first, dependencies first
    local m=${1//-/_} d
    [ -n "${ADDED[$m]:-}" ] && return 0
    ADDED[$m]=1
    if [ -z "${KO[$m]:-}" ]; then
        log "module $m is built into the kernel"
        return 0
    fi
    for d in $(ko_depends "${KO[$m]}"); do add_module "$d"; done
    cp "${KO[$m]}" "$ROOT/lib/modules/$KVER/$m.ko"
    ORDER+=("$m")
}
for m in $MODULES; do add_module "$m"; done
printf '%s\n' "${ORDER[@]}" > "$ROOT/etc/modules"
log "modules: ${ORDER[*]}"

# ---------------------------------------------------------------- keys
if [ ! -f "$OUT/id_ed25519" ]; then
    ssh-keygen -q -t ed25519 -N '' -C tinyguest-test -f "$OUT/id_ed25519"
fi
install -m 600 "$OUT/id_ed25519.pub" "$ROOT/root/.ssh/authorized_keys"

LD=$PKGROOT/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
DBKEY=("$LD" --library-path "$PKGROOT/lib/x86_64-linux-gnu:$PKGROOT/usr/lib/x86_64-linux-gnu"
       "$PKGROOT/usr/bin/dropbearkey")
if [ ! -f "$OUT/dropbear_ed25519_host_key" ]; then
    "${DBKEY[@]}" -t ed25519 -f "$OUT/dropbear_ed25519_host_key" >/dev/null 2>&1 \
        || die "running the packaged dropbearkey failed"
fi
"${DBKEY[@]}" -y -f "$OUT/dropbear_ed25519_host_key" 2>/dev/null \
    | grep '^ssh-ed25519 ' | awk '{print $1, $2, "tinyguest-host"}' > "$OUT/ssh_host_ed25519_key.pub"
[ -s "$OUT/ssh_host_ed25519_key.pub" ] || die "could not read back the host public key"
install -m 600 "$OUT/dropbear_ed25519_host_key" "$ROOT/etc/dropbear/dropbear_ed25519_host_key"

# ---------------------------------------------------------------- /etc
cat > "$ROOT/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat > "$ROOT/etc/shadow" <<'EOF'
root:*:19000:0:99999:7:::
nobody:*:19000:0:99999:7:::
EOF
chmod 600 "$ROOT/etc/shadow"
cat > "$ROOT/etc/group" <<'EOF'
root:x:0:
tty:x:5:
nogroup:x:65534:
EOF
printf '/bin/sh\n/bin/ash\n' > "$ROOT/etc/shells"
printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' > "$ROOT/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n10.0.2.15 tinyguest\n' > "$ROOT/etc/hosts"
echo tinyguest > "$ROOT/etc/hostname"
printf 'export PATH=/usr/sbin:/usr/bin:/sbin:/bin\n' > "$ROOT/etc/profile"

cat > "$ROOT/etc/inittab" <<'EOF'
::sysinit:/etc/init.d/rcS
::respawn:/etc/init.d/service sshd /usr/sbin/dropbear -F -s -p 22 -r /etc/dropbear/dropbear_ed25519_host_key
::respawn:/etc/init.d/service acpi /sbin/acpid -f -l /var/log/acpid.log
::respawn:/etc/init.d/ifset getty /sbin/getty -L 115200 ttyS0 vt100
::askfirst:-/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/echo "tinyguest: shutting down"
EOF

cat > "$ROOT/etc/init.d/rcS" <<'EOF'
#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=755 tmpfs /run
hostname -F /etc/hostname
KVER=$(uname -r)
while read -r m; do
    insmod "/lib/modules/$KVER/$m.ko" 2>/dev/null || echo "tinyguest: insmod $m failed"
done < /etc/modules
ip link set lo up
# first ethernet interface gets QEMU user-net's default guest address
i=0; IF=
while [ $i -lt 50 ]; do
    for d in /sys/class/net/*; do
        n=${d##*/}; [ "$n" = lo ] && continue; IF=$n; break
    done
    [ -n "$IF" ] && break
    i=$((i + 1)); usleep 100000
done
if [ -n "$IF" ]; then
    ip link set "$IF" up
    ip addr add 10.0.2.15/24 dev "$IF"
    ip route add default via 10.0.2.2
    echo "nameserver 10.0.2.3" > /etc/resolv.conf
else
    echo "tinyguest: no network interface found"
fi
syslogd
echo "tinyguest: up, $IF=10.0.2.15"
EOF
chmod 755 "$ROOT/etc/init.d/rcS"

# service NAME CMD...: run CMD unless "qqtest.noNAME" is on the kernel command line; a
# disabled service sleeps instead of exiting, since init respawns it without delay
cat > "$ROOT/etc/init.d/service" <<'EOF'
#!/bin/sh
name=$1; shift
for w in $(cat /proc/cmdline); do
    if [ "$w" = "qqtest.no$name" ]; then
        echo "tinyguest: $name disabled by qqtest.no$name"
        exec sleep 2147483647
    fi
done
exec "$@"
EOF
chmod 755 "$ROOT/etc/init.d/service"

# ifset NAME CMD...: run CMD only when "qqtest.NAME" is on the kernel command line (else
# sleep: init respawns it)
cat > "$ROOT/etc/init.d/ifset" <<'EOF'
#!/bin/sh
name=$1; shift
for w in $(cat /proc/cmdline); do
    [ "$w" = "qqtest.$name" ] && exec "$@"
done
exec sleep 2147483647
EOF
chmod 755 "$ROOT/etc/init.d/ifset"

# busybox acpid maps the power button (KEY_POWER / "PWRF") to /etc/acpi/PWRF/00000080
printf '#!/bin/sh\nexec /sbin/poweroff\n' > "$ROOT/etc/acpi/PWRF/00000080"
chmod 755 "$ROOT/etc/acpi/PWRF/00000080"

# ---------------------------------------------------------------- pack
log "packing initramfs"
(cd "$ROOT" && find . -mindepth 1 | LC_ALL=C sort \
    | "$BB" cpio -o -H newc -R 0:0 --renumber-inodes --ignore-devno 2>/dev/null) \
    | gzip -9 -n > "$OUT/initramfs.gz.tmp"
mv "$OUT/initramfs.gz.tmp" "$OUT/initramfs.gz"

# ---------------------------------------------------------------- qemu-guest-agent
# A second archive, appended: the kernel unpacks it over the first (its inittab
# replaces the base one). qemu-ga runs when the VM has a virtio-serial port named
# org.qemu.guest_agent.0 (else the service sleeps); guest-set-time runs /sbin/hwclock
# (busybox's) after setting the time.
log "packing the qemu-guest-agent archive"
QROOT=$WORK/qga-root
mkdir -p "$QROOT/usr/sbin" "$QROOT/etc/init.d"
install -m 755 "$PKGROOT/usr/sbin/qemu-ga" "$QROOT/usr/sbin/qemu-ga"
DEST=$QROOT
copy_deps "$PKGROOT/usr/sbin/qemu-ga"
cp "$ROOT/etc/inittab" "$QROOT/etc/inittab"
printf '::respawn:/etc/init.d/qga\n' >> "$QROOT/etc/inittab"
cat > "$QROOT/etc/init.d/qga" <<'EOF'
#!/bin/sh
for p in /sys/class/virtio-ports/*; do
    [ "$(cat "$p/name" 2>/dev/null)" = org.qemu.guest_agent.0 ] || continue
    echo "tinyguest: qemu-ga on /dev/${p##*/}"
    exec /usr/sbin/qemu-ga -m virtio-serial -p "/dev/${p##*/}" -f /run/qemu-ga.pid
done
exec sleep 2147483647
EOF
chmod 755 "$QROOT/etc/init.d/qga"
(cd "$QROOT" && find . -mindepth 1 | LC_ALL=C sort \
    | "$BB" cpio -o -H newc -R 0:0 --renumber-inodes --ignore-devno 2>/dev/null) \
    | gzip -9 -n > "$WORK/qga.cpio.gz"
cat "$OUT/initramfs.gz" "$WORK/qga.cpio.gz" > "$OUT/initramfs-qga.gz.tmp"
mv "$OUT/initramfs-qga.gz.tmp" "$OUT/initramfs-qga.gz"
cp "$KROOT/boot/vmlinuz-$KVER" "$OUT/vmlinuz"

# Uncompressed kernel for QEMU's PVH entry (-kernel vmlinux): skips the real-mode
# setup and the in-guest xz decompression of the bzImage (several seconds under TCG).
# Debian's bzImage payload is xz (CONFIG_KERNEL_XZ); the ELF has the PVH note (CONFIG_PVH).
rm -f "$OUT/vmlinux"
if [ "${VMLINUX:-1}" = 1 ]; then
    off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$OUT/vmlinuz" | head -n1 | cut -d: -f1 || true)
    if [ -n "$off" ] && command -v xz >/dev/null \
       && xz -dc --single-stream < <(tail -c +$((off + 1)) "$OUT/vmlinuz") > "$OUT/vmlinux.tmp" 2>/dev/null \
       && [ "$(head -c 4 "$OUT/vmlinux.tmp" | od -An -c | tr -d ' ')" = '177ELF' ] \
       && readelf -n "$OUT/vmlinux.tmp" | grep -E '\(0x00000012\)|PHYS32_ENTRY' >/dev/null; then
        mv "$OUT/vmlinux.tmp" "$OUT/vmlinux"
    else
        rm -f "$OUT/vmlinux.tmp"; log "note: could not extract a PVH-bootable vmlinux (only vmlinuz)"
    fi
fi

# file names are relative to this directory (it may be built elsewhere and moved)
cat > "$OUT/guest.env" <<EOF
KERNEL_PKG=$KERNEL_PKG
KVER=$KVER
KERNEL=vmlinuz
# faster alternative (PVH entry, no in-guest decompression), if present:
KERNEL_PVH=vmlinux
INITRD=initramfs.gz
SSH_KEY=id_ed25519
HOST_PUBKEY=ssh_host_ed25519_key.pub
GUEST_IP=10.0.2.15
# qemu-system-x86_64 -accel kvm (or tcg) -m 256 -nographic -kernel \$KERNEL_PVH (or \$KERNEL) \\
#   -initrd \$INITRD -append 'console=ttyS0 quiet' \\
#   -netdev user,id=n0,hostfwd=tcp:127.0.0.1:PORT-:22 -device virtio-net-pci,netdev=n0 \\
#   -device virtio-rng-pci -qmp unix:/path/qmp.sock,server=on,wait=off
# (e1000 NICs work too; QMP system_powerdown and in-guest 'poweroff' make QEMU exit)
# ssh -i \$SSH_KEY -p PORT root@127.0.0.1   (known_hosts line: "[127.0.0.1]:PORT \$(cat \$HOST_PUBKEY)")
EOF

[ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$WORK"
log "done in $OUT: $(cd "$OUT" && for f in vmlinuz vmlinux initramfs.gz initramfs-qga.gz; do [ -f $f ] && printf '%s %s bytes; ' $f "$(stat -c %s $f)"; done)"
