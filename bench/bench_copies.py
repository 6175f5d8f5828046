#!/usr/bin/python3
"""Many throwaway copies of one snapshot at once (issue 18 §2), in one run, as ratios:

  1. wall time of 8 concurrent `qqmgr run VM --restore S --rm -- true` vs one
     (goal on 2 cores: <= 3x), and the floor the CPU sets: the machine's busy seconds
     during one run (/proc/stat; a quiet machine assumed), 8 of them over every CPU;
  2. memory of 8 running copies (each restored and reached by ssh) vs one: the sum of
     their QEMUs' Rss and Pss (/proc/PID/smaps_rollup; Pss splits a page shared by
     several processes among them), goal <= 3x.

The tiny guest (diskless, 256 MiB) under TCG, its snapshot saved once, of the kind the
build saves by default (printed: a mapped snapshot maps its RAM file MAP_PRIVATE into
every copy, so pages are shared; a state-file snapshot is read into each copy's own RAM).
--kinds mapped,state-file measures both in one run (state-file: `mapped_ram = false`).

usage: bench/bench_copies.py [--qqmgr PATH] [--copies N] [--runs R] [--mem MIB]
                             [--kinds default|mapped,state-file] [--dirty MIB]
--dirty fills that much of the guest's RAM (its /tmp) before the save: the part copies
of a mapped snapshot share, against what each QEMU keeps to itself (its TCG code cache,
heap, device state).
Builds (or reuses) the tiny guest through tests/guest/tiny-guest.sh.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchlib import REPO, run, timed

ACCEL = os.environ.get("QQ_TEST_ACCEL", "tcg")


def tiny_config(g, mem, extra=""):
    kernel = g / "vmlinux" if (g / "vmlinux").is_file() else g / "vmlinuz"
    return f"""[vm.t]
{extra}cmd = [
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


def mem_mib(pid):
    """(Rss, Pss) of a process in MiB."""
    vals = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            k, _, rest = line.partition(":")
            if k in ("Rss", "Pss"):
                vals[k] = int(rest.split()[0]) / 1024
    return vals["Rss"], vals["Pss"]


def busy_seconds():
    """CPU seconds the whole machine has spent busy (/proc/stat: all but idle and iowait).
    QEMU is not a child the benchmark reaps, so its own rusage would miss it."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def wall_of(qq, n, runs):
    """(median wall seconds, median machine CPU seconds) of n concurrent
    `run t --restore s1 --rm -- true`."""
    argv = qq + ["run", "t", "--restore", "s1", "--rm", "--timeout", "600", "--", "true"]
    walls, cpus = [], []
    for _ in range(runs):
        c0, t0 = busy_seconds(), time.perf_counter()
        with ThreadPoolExecutor(n) as ex:
            cps = list(ex.map(lambda _: run(argv), range(n)))
        walls.append(time.perf_counter() - t0)
        cpus.append(busy_seconds() - c0)
        bad = [cp for cp in cps if cp.returncode != 0]
        if bad:
            sys.exit(f"run failed ({bad[0].returncode}): {bad[0].stderr}")
    return statistics.median(walls), statistics.median(cpus)


def memory_of(qq, n):
    """(sum Rss, sum Pss) in MiB of n running copies, each restored and reached by ssh."""
    argv = qq + ["start", "t", "--restore", "s1", "--rm", "--wait", "--timeout", "600", "--json"]
    with ThreadPoolExecutor(n) as ex:
        cps = list(ex.map(lambda _: run(argv), range(n)))
    try:
        bad = [cp for cp in cps if cp.returncode != 0]
        if bad:
            sys.exit(f"start failed ({bad[0].returncode}): {bad[0].stderr}")
        pids = [json.loads(cp.stdout)["pid"] for cp in cps]
        time.sleep(1)
        rss = pss = 0.0
        for p in pids:
            r, s = mem_mib(p)
            rss, pss = rss + r, pss + s
        return rss, pss
    finally:
        run(qq + ["stop", "t", "--all", "--force"])


def measure(a, g, extra):
    """Save s1 with the config's extra keys, then print the two ratios."""
    with tempfile.TemporaryDirectory(prefix="qq-bench-copies-") as d:
        cfg = Path(d) / "qqmgr.toml"
        cfg.write_text(tiny_config(g, a.mem, extra))
        qq = [a.qqmgr, "-c", str(cfg)]
        try:
            timed(qq + ["start", "t", "--wait", "--timeout", "600"])
            if a.dirty:   # RAM the guest filled before the save: what copies of it could share
                timed(qq + ["ssh", "t", f"yes qqmgr-bench | head -c {a.dirty << 20} > /tmp/fill"])
            cp = run(qq + ["snapshot", "save", "t", "s1", "--json"])
            if cp.returncode != 0:
                sys.exit(f"snapshot save failed: {cp.stderr}")
            kind = json.loads(cp.stdout).get("kind", "?")
            timed(qq + ["stop", "t", "--force"])
            print(f"tiny guest, {a.mem} MiB ({a.dirty} MiB filled before the save), {ACCEL}, {os.cpu_count()} "
                  f"CPUs, load {os.getloadavg()[0]:.1f}; snapshot s1: {kind}")
            one, cpu = wall_of(qq, 1, a.runs)
            many, _ = wall_of(qq, a.copies, a.runs)
            print(f"  run --restore s1 --rm -- true: 1 at a time {one:6.2f} s, {a.copies} at once {many:6.2f} s "
                  f"-> {many / one:.2f}x wall (goal <= 3x)")
            # the floor CPU sets: one run's busy seconds (machine-wide, so a quiet machine
            # is assumed), a.copies of them spread over every CPU
            floor = a.copies * cpu / os.cpu_count()
            print(f"  one run keeps the machine busy {cpu:.2f} s of its {one:.2f} s; {a.copies} such runs on "
                  f"{os.cpu_count()} CPUs need >= {floor:.2f} s: {floor / one:.2f}x one at the least")
            r1, p1 = memory_of(qq, 1)
            rn, pn = memory_of(qq, a.copies)
            print(f"  running copies: 1: Rss {r1:7.1f} MiB Pss {p1:7.1f} MiB; {a.copies}: Rss {rn:7.1f} MiB "
                  f"Pss {pn:7.1f} MiB -> Rss {rn / r1:.2f}x, Pss {pn / p1:.2f}x (goal <= 3x)")
        finally:
            run(qq + ["stop", "--all", "--force"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qqmgr", default=str(REPO / "build" / "qqmgr"))
    ap.add_argument("--copies", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mem", type=int, default=256)
    ap.add_argument("--kinds", default="default")
    ap.add_argument("--dirty", type=int, default=0, help="MiB of the guest's RAM to fill before the save")
    a = ap.parse_args()
    cp = run(["bash", str(REPO / "tests" / "guest" / "tiny-guest.sh")])
    if cp.returncode != 0:
        sys.exit(cp.stderr)
    g = Path(cp.stdout.strip().splitlines()[-1])
    extras = {"default": "", "mapped": "", "state-file": "mapped_ram = false\n"}
    for k in a.kinds.split(","):
        if k not in extras:
            sys.exit(f"--kinds: {k}: one of {', '.join(extras)}")
        measure(a, g, extras[k])


if __name__ == "__main__":
    main()
