#!/usr/bin/python3
"""The test loop, side by side in one run (printed as ratios), under TCG:

  1. `qqmgr start VM --restore S --wait` vs a cold `qqmgr start VM --wait` of the
     same VM (the tiny guest with a blank qcow2 disk, and the same guest diskless,
     whose snapshot is a state file); time until ssh answers.
  2. `qqmgr run VM --rm -- true` end to end vs the same by hand:
     `start --wait` + `ssh VM true` + `stop`; and `run VM --rm --restore S -- true`.
  3. with --debian: the same as 1. for the Debian cloud-init guest (tests/guest/cloud-base.sh,
     customised once by `img build`; 768 MiB, 2 vCPUs); a few minutes under TCG.

usage: bench/bench_snapshot.py [--qqmgr PATH] [--runs N] [--debian] [--no-tiny]
Builds (or reuses) the tiny guest through tests/guest/tiny-guest.sh.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from benchlib import REPO, run, timed

ACCEL = os.environ.get("QQ_TEST_ACCEL", "tcg")


def med(xs):
    return statistics.median(xs)


def tiny_config(g, disk):
    kernel = g / "vmlinux" if (g / "vmlinux").is_file() else g / "vmlinuz"
    drive = ',\n  "-drive file={{.img.d}},format=qcow2,if=virtio"' if disk else ""
    img = '[img.d]\nbuilder = "raw"\nformat = "qcow2"\nimg_size = "64M"\n\n' if disk else ""
    return f"""{img}[vm.t]
cmd = [
  "-accel {ACCEL} -m 256 -display none -nodefaults",
  "-kernel {kernel}", "-initrd {g / 'initramfs.gz'}", "-append 'console=ttyS0 quiet'",
  "-netdev user,id=n0,hostfwd=tcp:127.0.0.1:{{{{.vm.ssh.port}}}}-:22",
  "-device virtio-net-pci,netdev=n0", "-device virtio-rng-pci"{drive}
]
[vm.t.ssh]
port = "auto"
IdentityFile = "{g / 'id_ed25519'}"
User = "root"
StrictHostKeyChecking = "no"
UserKnownHostsFile = "/dev/null"
LogLevel = "ERROR"
"""


def restore_vs_cold(q, cfg, vm, runs, wait="ssh"):
    qq = [q, "-c", str(cfg)]
    w = f"--wait={wait}"
    cold, warm = [], []
    timed(qq + ["start", vm, w, "--timeout", "900"])
    timed(qq + ["snapshot", "save", vm, "bench", "--force"])
    timed(qq + ["stop", vm, "--force"])
    for _ in range(runs):
        cold.append(timed(qq + ["start", vm, w, "--timeout", "900"]))
        timed(qq + ["stop", vm, "--force"])
        warm.append(timed(qq + ["start", vm, "--restore", "bench", w, "--timeout", "900"]))
        timed(qq + ["stop", vm, "--force"])
    return med(cold), med(warm)


USER_DATA = """#cloud-config
disable_root: false
ssh_authorized_keys:
  - {{.pubkey}}
power_state:
  mode: poweroff
  timeout: 30
"""


def cloud_base():
    """The Debian cloud base's dir (tests/guest/cloud-base.sh builds it once, then reuses it)."""
    cb = run(["bash", str(REPO / "tests/guest/cloud-base.sh")], timeout=3600)
    if cb.returncode != 0:
        sys.exit(f"cloud-base.sh failed: {cb.stderr[-2000:]}")
    return Path(cb.stdout.strip().splitlines()[-1])


def client_key(d):
    """A fresh ssh key d/id_ed25519 for the guest's login; returns its public line."""
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "id_ed25519")], check=True)
    return (d / "id_ed25519.pub").read_text().strip()


def debian_config(d, base, pubkey):
    import hashlib
    h = hashlib.sha256()
    with open(base / "base.qcow2", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    m = [f"-accel {ACCEL} -m 768 -smp 2 -nodefaults -display none",
         f"-kernel {base / 'vmlinuz'}", f"-initrd {base / 'initrd.img'}",
         "-append 'root=/dev/vda rw console=ttyS0'", "-device virtio-rng-pci"]
    build_args = m + ["-drive file={{.img_self}},if=virtio,format=qcow2", "-cdrom {{.cloud_init_iso}}",
                      "-netdev user,id=n0 -device virtio-net-pci,netdev=n0"]
    build_args = [a for x in build_args for a in __import__("shlex").split(x)]
    vm_cmd = m + ["-drive file={{.img.deb}},if=virtio,format=qcow2",
                  "-netdev user,id=n0,hostfwd=tcp:127.0.0.1:{{.vm.ssh.port}}-:22",
                  "-device virtio-net-pci,netdev=n0"]
    (d / "user-data.tpl").write_text(USER_DATA)
    (d / "meta-data.tpl").write_text("instance-id: deb-1\nlocal-hostname: deb\n")
    return f"""[img.deb]
builder = "cloud-init"
img_size = "3G"
build_timeout = 900
build_args = {json.dumps(build_args)}
[img.deb.base_img]
url = "file://{base / 'base.qcow2'}"
sha256sum = "{h.hexdigest()}"
[[img.deb.templates]]
template = "user-data.tpl"
output = "user-data"
[[img.deb.templates]]
template = "meta-data.tpl"
output = "meta-data"
[img.deb.env]
pubkey = "{pubkey}"

[vm.deb]
cmd = {json.dumps(vm_cmd)}
[vm.deb.ssh]
port = "auto"
IdentityFile = "{d / 'id_ed25519'}"
User = "root"
StrictHostKeyChecking = "no"
UserKnownHostsFile = "/dev/null"
LogLevel = "ERROR"
"""


def run_vs_hand(q, cfg, runs):
    qq = [q, "-c", str(cfg)]
    by_run, by_hand, by_restore = [], [], []
    for _ in range(runs):
        by_run.append(timed(qq + ["run", "t", "--rm", "--", "true"]))
        t0 = time.perf_counter()
        timed(qq + ["start", "t", "--wait"])
        timed(qq + ["ssh", "t", "true"])
        timed(qq + ["stop", "t"])
        by_hand.append(time.perf_counter() - t0)
        by_restore.append(timed(qq + ["run", "t", "--rm", "--restore", "bench", "--", "true"]))
    return med(by_run), med(by_hand), med(by_restore)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qqmgr", default=str(REPO / "build" / "qqmgr"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--debian", action="store_true", help="also the Debian cloud-init guest (minutes)")
    ap.add_argument("--no-tiny", action="store_true", help="skip the tiny guest")
    a = ap.parse_args()
    q = os.path.abspath(a.qqmgr)
    g = Path(run(["bash", str(REPO / "tests/guest/tiny-guest.sh")], check=True).stdout.strip().splitlines()[-1])
    print(f"accel {ACCEL}, {a.runs} runs each, medians; qqmgr {q}")
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        for disk in (() if a.no_tiny else (True, False)):
            cfg = d / ("disk.toml" if disk else "diskless.toml")
            cfg.write_text(tiny_config(g, disk))
            if disk:
                timed([q, "-c", str(cfg), "img", "build", "d"])
            try:
                cold, warm = restore_vs_cold(q, cfg, "t", a.runs)
                what = "tiny guest, qcow2 disk (-loadvm)" if disk else "tiny guest, diskless (state file)"
                print(f"{what:36} cold start --wait {cold:6.2f} s   start --restore --wait {warm:6.2f} s"
                      f"   ratio {cold / warm:5.1f}x")
                if disk:
                    r, h, rr = run_vs_hand(q, cfg, a.runs)
                    print(f"{'run --rm -- true':36} run {r:6.2f} s   start --wait + ssh + stop by hand {h:6.2f} s"
                          f"   ratio {h / r:5.2f}x")
                    print(f"{'run --rm --restore S -- true':36} {rr:6.2f} s   vs by hand {h:6.2f} s"
                          f"   ratio {h / rr:5.1f}x")
            finally:
                run([q, "-c", str(cfg), "stop", "t", "--force"])
        if a.debian:
            cfg = d / "debian.toml"
            cfg.write_text(debian_config(d, cloud_base(), client_key(d)))
            try:
                timed([q, "-c", str(cfg), "img", "build", "deb"])
                cold, warm = restore_vs_cold(q, cfg, "deb", a.runs)
                print(f"{'Debian cloud-init guest (-loadvm)':36} cold start --wait {cold:6.2f} s"
                      f"   start --restore --wait {warm:6.2f} s   ratio {cold / warm:5.1f}x")
            finally:
                run([q, "-c", str(cfg), "stop", "deb", "--force"])


if __name__ == "__main__":
    main()
