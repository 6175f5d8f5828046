#!/usr/bin/python3
"""Snapshots travel: a booted guest onto a second host by `snapshot export | -H import`
vs booting it there, and the stream's throughput vs plain `cat | ssh cat`.

The second host is a real OpenSSH sshd on a loopback port (its own host key, a
throwaway client key) with a config of its own (its own state dir), as the e2e tests
use; the guest is the tiny test guest under TCG (diskless: its snapshot is a state
file). Printed, medians of --runs:

  1. ready-to-run on the second host:
       cold:      qqmgr -H HOST start t --rm --wait                     (boot until ssh answers)
       transfer:  qqmgr snapshot export t S - | qqmgr -H HOST snapshot import t - --force
       restore:   qqmgr -H HOST start t --restore S --rm --wait          (until ssh answers)
     (throwaway runs, as jobs use them: `run VM --restore S --rm`)
     and the ratio cold / (transfer + restore) (goal >= 10x);
  2. the stream's size and throughput vs `cat STREAM | ssh HOST 'cat > FILE'` of the same
     bytes (goal >= 0.8x), and vs the same with `&& sync FILE` (the import fsyncs what it
     installs: durable before it is renamed into place).

With --debian, the guest is the Debian cloud-init guest (tests/guest/cloud-base.sh,
customised by `img build` on each host: 768 MiB, 2 vCPUs; minutes under TCG); its snapshot
is a mapped one where the build has mapped RAM (its disk layer travels without the built
image, which each host builds). Its figures print the snapshot's kind.

usage: bench/bench_travel.py [--qqmgr PATH] [--runs N] [--mem MIB] [--debian]
Builds (or reuses) the tiny guest through tests/guest/tiny-guest.sh. Needs root (sshd).
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import REPO, run, timed
from bench_snapshot import client_key, cloud_base, debian_config

ACCEL = os.environ.get("QQ_TEST_ACCEL", "tcg")
SSHD = "/usr/sbin/sshd"


def config(g, mem):
    kernel = g / "vmlinux" if (g / "vmlinux").is_file() else g / "vmlinuz"
    return f"""[vm.t]
cmd = [
  "-accel {ACCEL} -m {mem} -display none -nodefaults",
  "-kernel {kernel}", "-initrd {g / 'initramfs.gz'}", "-append 'console=ttyS0 quiet'",
  "-netdev user,id=n0,hostfwd=tcp:127.0.0.1:{{{{.vm.ssh.port}}}}-:22",
  "-device virtio-net-pci,netdev=n0", "-device virtio-rng-pci"
]
[vm.t.ssh]
port = "auto"
IdentityFile = "{g / 'id_ed25519'}"
User = "root"
StrictHostKeyChecking = "no"
UserKnownHostsFile = "/dev/null"
LogLevel = "ERROR"
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sshd(d):
    """A loopback sshd; returns (process, ssh config path)."""
    for k in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / k)], check=True)
    shutil.copy(d / "client_key.pub", d / "authorized_keys")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    port = free_port()
    (d / "sshd_config").write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {d}/host_key
AuthorizedKeysFile {d}/authorized_keys
StrictModes no
PidFile {d}/sshd.pid
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
LogLevel ERROR
""")
    (d / "ssh_config").write_text(f"""Host qqhost
    HostName 127.0.0.1
    Port {port}
    User root
    IdentityFile {d}/client_key
    IdentitiesOnly yes
    BatchMode yes
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
    LogLevel ERROR
""")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(4).startswith(b"SSH-"):
                    return proc, d / "ssh_config"
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    sys.exit("sshd did not answer")


def shell_pipe(cmd, env):
    """Seconds `bash -o pipefail -c cmd` took; exits when it fails."""
    t0 = time.perf_counter()
    cp = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, env=env,
                        stdin=subprocess.DEVNULL)
    dt = time.perf_counter() - t0
    if cp.returncode != 0:
        sys.exit(f"{cmd} failed ({cp.returncode}): {cp.stderr}")
    return dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qqmgr", default=str(REPO / "build" / "qqmgr"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mem", type=int, default=256)
    ap.add_argument("--debian", action="store_true", help="the Debian cloud-init guest instead (minutes)")
    a = ap.parse_args()
    q = os.path.abspath(a.qqmgr)
    if os.geteuid() != 0 or not os.path.exists(SSHD):
        sys.exit("needs root and openssh-server (the second host is a loopback sshd)")
    cp = run(["bash", str(REPO / "tests/guest/tiny-guest.sh")], timeout=900)
    if cp.returncode != 0:
        sys.exit(f"tiny guest build failed: {cp.stderr[-2000:]}")
    g = Path(cp.stdout.strip().splitlines()[-1])
    vm, what = "t", f"tiny guest, {a.mem} MiB"
    with tempfile.TemporaryDirectory(prefix="qq-bench-travel-") as tmp:
        tmp = Path(tmp)
        here, there, sd = tmp / "here", tmp / "there", tmp / "sshd"
        for d in (here, there, sd):
            d.mkdir()
            (d / "qqmgr.toml").write_text(config(g, a.mem))
        if a.debian:
            base, pub = cloud_base(), client_key(tmp)
            for d in (here, there):
                text = debian_config(d, base, pub).replace(str(d / "id_ed25519"), str(tmp / "id_ed25519"))
                (d / "qqmgr.toml").write_text(text)
            vm, what = "deb", "Debian cloud guest, 768 MiB, 2 vCPUs"
        sshd, ssh_config = start_sshd(sd)
        env = dict(os.environ, QQMGR_SSH_CONFIG=str(ssh_config), QQMGR_REMOTE_BIN=q)
        hq = [q, "-c", str(here / "qqmgr.toml")]
        tq = [q, "-H", "qqhost", "-c", str(there / "qqmgr.toml")]
        os.environ.update(QQMGR_SSH_CONFIG=str(ssh_config), QQMGR_REMOTE_BIN=q)
        try:
            if a.debian:
                build = timed(hq + ["img", "build", "deb"])
                timed(tq + ["img", "build", "deb"])
                print(f"img build deb: {build:.1f} s (on each host)", flush=True)
            timed(hq + ["start", vm, "--wait", "--timeout", "900"])
            kind = json.loads(run(hq + ["snapshot", "save", vm, "golden", "--force", "--json"]).stdout)["kind"]
            timed(hq + ["stop", vm, "--force"])
            stream = tmp / "golden.qqsnap"
            timed(hq + ["snapshot", "export", vm, "golden", str(stream)])
            size = stream.stat().st_size
            snaps = here / ".qqmgr" / f"vm.{vm}" / "snapshots"
            data = sum(f.stat().st_size for f in (snaps / "golden").iterdir()) if kind == "mapped" else \
                (snaps / "golden.state").stat().st_size
            cold, xfer, restore, cat, catsync = [], [], [], [], []
            qs = " ".join(map(str, hq))
            ts = " ".join(map(str, tq))
            for _ in range(a.runs):
                cold.append(timed(tq + ["start", vm, "--rm", "--wait", "--timeout", "900"]))
                timed(tq + ["stop", vm, "--force"])
                xfer.append(shell_pipe(f"{qs} snapshot export {vm} golden - | {ts} snapshot import {vm} - --force",
                                       env))
                restore.append(timed(tq + ["start", vm, "--restore", "golden", "--rm", "--wait", "--timeout", "900"]))
                timed(tq + ["stop", vm, "--force"])
                cat.append(shell_pipe(f"cat {stream} | ssh -F {ssh_config} qqhost 'cat > {tmp}/copy'", env))
                catsync.append(shell_pipe(f"cat {stream} | ssh -F {ssh_config} qqhost "
                                          f"'cat > {tmp}/copy && sync {tmp}/copy'", env))
        finally:
            run(hq + ["stop", vm, "--force"])
            run(tq + ["stop", vm, "--force"])
            sshd.terminate()
            sshd.wait(timeout=10)
    med = statistics.median
    c, x, r, k, ks = med(cold), med(xfer), med(restore), med(cat), med(catsync)
    mib = 1 << 20
    print(f"{what}, {ACCEL}; second host: loopback sshd; medians of {a.runs}")
    print(f"snapshot ({kind}): files {data / mib:.1f} MiB (apparent), stream {size / mib:.1f} MiB")
    print(f"cold boot (--rm) there until ssh:     {c:6.2f} s")
    print(f"export | -H import:                   {x:6.2f} s  ({size / mib / x:.0f} MiB/s)")
    print(f"start --restore --rm there until ssh: {r:6.2f} s")
    print(f"ready-to-run there: {x + r:.2f} s vs boot {c:.2f} s: {c / (x + r):.1f}x faster (goal >= 10x); "
          f"the snapshot there (transfer alone) {c / x:.1f}x")
    print(f"cat STREAM | ssh cat > FILE:          {k:6.2f} s  ({size / mib / k:.0f} MiB/s); "
          f"export|import throughput {k / x:.2f}x of it (goal >= 0.8x)")
    print(f"... && sync FILE (durable, as import): {ks:6.2f} s  ({size / mib / ks:.0f} MiB/s); "
          f"export|import {ks / x:.2f}x of it")


if __name__ == "__main__":
    main()
