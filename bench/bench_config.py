#!/usr/bin/env python3
"""Benchmark: `qqmgr list --json` and `qqmgr show` on a config with 1000 VMs.

Side by side in one run with the floor every command pays (spawning a process that
reads the same file: `cat qqmgr.toml`). Reports median wall time over N runs and peak
RSS (from wait4's ru_maxrss). Targets: under 10 ms and 5 MiB (the original Go qqmgr:
64 ms and 12.7 MiB).

Usage: bench/bench_config.py [QQMGR] [--vms 1000] [--runs 50]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ap = argparse.ArgumentParser()
ap.add_argument("qqmgr", nargs="?", default=os.path.join(os.path.dirname(__file__), "..", "build", "qqmgr"))
ap.add_argument("--vms", type=int, default=1000)
ap.add_argument("--runs", type=int, default=50)
a = ap.parse_args()
a.qqmgr = os.path.abspath(a.qqmgr)

d = tempfile.mkdtemp()
with open(os.path.join(d, "qqmgr.toml"), "w") as f:
    f.write('[vars]\nbase = "-machine q35 -accel tcg -m 256 -display none"\nhome = "/home/user"\n'
            '[ssh]\nStrictHostKeyChecking = "no"\n\n')
    for i in range(a.vms):
        f.write(f'[vm.vm{i}]\ncmd = [\n  "{{{{.base}}}}",\n  "-smp 2",\n'
                f'  "-netdev user,id=n0,hostfwd=tcp::{{{{.vm.ssh.port}}}}-:{{{{.vm.ssh.vm_port}}}}",\n'
                f'  "-device virtio-net-pci,netdev=n0",\n  "-drive file={{{{.vm.disk}}}},if=virtio",\n]\n'
                f'[vm.vm{i}.vars]\ndisk = "{{{{.home}}}}/disks/vm{i}.qcow2"\n'
                f'[vm.vm{i}.ssh]\nport = {10000 + i}\nUser = "root"\n\n')
size = os.path.getsize(os.path.join(d, "qqmgr.toml"))


def measure(argv):
    """Median wall time of argv, and its peak RSS as GNU time reports it (a child of
    python would inherit python's own high-water mark across exec)."""
    times = []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        p = subprocess.run(argv, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append(time.perf_counter() - t0)
        if p.returncode != 0:
            sys.exit(f"{argv} failed: {p.stderr.decode()}")
    p = subprocess.run(["/usr/bin/time", "-f", "%M", *argv], cwd=d, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    rss_kib = int(p.stderr.strip().splitlines()[-1])
    return statistics.median(times) * 1000, rss_kib / 1024


print(f"config: {a.vms} VMs, {size / 1024:.0f} KiB; median of {a.runs} runs")
base_ms, base_rss = measure(["cat", "qqmgr.toml"])
print(f"{'reference: cat qqmgr.toml':32} {base_ms:7.2f} ms  {base_rss:6.1f} MiB")
for name, argv in [("qqmgr list --json", [a.qqmgr, "list", "--json"]),
                   ("qqmgr show vm500", [a.qqmgr, "show", "vm500"]),
                   ("qqmgr show vm500 --json", [a.qqmgr, "show", "vm500", "--json"])]:
    ms, rss = measure(argv)
    print(f"{name:32} {ms:7.2f} ms  {rss:6.1f} MiB   ({ms / base_ms:.1f}x cat)")
