#!/usr/bin/env python3
"""Benchmark ssh and readiness against the tiny guest (TCG), side by side in one run:

1. warm `qqmgr ssh VM true` vs plain `ssh -F <its config> <alias> true` through the
   same master (goal: at most 1.15x);
2. cold (no master) vs warm `qqmgr ssh VM true`: the speed-up of connection sharing;
3. `start --wait` end vs the moment the guest's sshd first answers with its banner,
   seen by an external poller at 10 ms steps (goal: within 0.25 s).

Usage: bench/bench_ssh.py [QQMGR] [--runs 20]
"""
import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))
from conftest import tiny_vm_cmd, TinyGuest, _toml_str  # noqa: E402
from pathlib import Path  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("qqmgr", nargs="?", default=os.path.join(REPO, "build", "qqmgr"))
ap.add_argument("--runs", type=int, default=20)
a = ap.parse_args()

gdir = Path(subprocess.run(["bash", os.path.join(REPO, "tests/guest/tiny-guest.sh")], capture_output=True,
                           text=True, check=True).stdout.strip().splitlines()[-1])
g = TinyGuest(gdir, gdir / "vmlinux", gdir / "vmlinuz", gdir / "initramfs.gz", gdir / "id_ed25519",
              gdir / "ssh_host_ed25519_key.pub")
d = tempfile.mkdtemp()
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
cmd = ",\n".join("  " + _toml_str(c) for c in tiny_vm_cmd(g))
open(os.path.join(d, "qqmgr.toml"), "w").write(f"""
[vm.b]
cmd = [
{cmd}
]
[vm.b.ssh]
port = {port}
User = "root"
IdentityFile = {_toml_str(g.key)}
StrictHostKeyChecking = "no"
UserKnownHostsFile = "/dev/null"
LogLevel = "ERROR"
""")
Q = [a.qqmgr, "-c", os.path.join(d, "qqmgr.toml")]


def run(argv):
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def med(argv, n):
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        run(argv)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


# 3. start --wait vs an external banner poller
first_banner = []


def poller():
    while not first_banner:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as c:
                c.settimeout(0.5)
                if c.recv(8).startswith(b"SSH-"):
                    first_banner.append(time.perf_counter())
                    return
        except OSError:
            pass
        time.sleep(0.01)


t = threading.Thread(target=poller, daemon=True)
t0 = time.perf_counter()
t.start()
run(Q + ["start", "b", "--wait", "--timeout", "300"])
t_ready = time.perf_counter()
t.join(5)
try:
    conf = os.path.join(d, ".qqmgr", "vm.b", "ssh.conf")
    warm_plain = med(["ssh", "-F", conf, "b", "true"], a.runs)
    warm_qq = med(Q + ["ssh", "b", "true"], a.runs)
    cold = []
    for _ in range(max(3, a.runs // 5)):
        subprocess.run(["ssh", "-F", conf, "-O", "exit", "b"], capture_output=True)
        t1 = time.perf_counter()
        run(Q + ["ssh", "b", "true"])
        cold.append(time.perf_counter() - t1)
    cold_m = statistics.median(cold)
finally:
    subprocess.run(Q + ["stop", "b", "--force"], capture_output=True)

print(f"start --wait: returned {t_ready - t0:.2f}s after launch; sshd first answered at "
      f"{first_banner[0] - t0:.2f}s -> qqmgr lag {t_ready - first_banner[0]:+.3f}s (goal <= 0.25s)"
      if first_banner else "start --wait: poller saw no banner")
print(f"warm ssh true: qqmgr {warm_qq * 1000:.1f} ms vs plain ssh -F {warm_plain * 1000:.1f} ms "
      f"-> {warm_qq / warm_plain:.2f}x (goal <= 1.15x)")
print(f"cold ssh true (new master): {cold_m * 1000:.0f} ms -> warm is {cold_m / warm_qq:.1f}x faster")
