#!/usr/bin/python3
"""Lifecycle benchmarks, side by side in one run (printed as ratios):

  1. `qqmgr start` of a guestless VM vs a bare `qemu-system-x86_64 ARGS -daemonize`
     with the same arguments (from `qqmgr show`); both return once QEMU is set up.
  2. `qqmgr stop` of the tiny guest (ACPI powerdown) vs the guest's own shutdown
     time: QMP system_powerdown sent directly, until the QEMU process is gone.
  3. `qqmgr status --json` of a running VM.

usage: bench/bench_lifecycle.py [--qqmgr PATH] [--runs N] [--no-guest]
Builds (or reuses) the tiny guest through tests/guest/tiny-guest.sh for part 2.
"""
import argparse
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from benchlib import REPO, BARE, run, timed_cp



def alive(pid):
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (ProcessLookupError, OSError):
        return False


def wait_gone(pid, timeout=60):
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            raise TimeoutError(pid)
        time.sleep(0.005)


def qmp(sock, cmd):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(sock)
    f = s.makefile("rw")
    f.readline()
    for c in ("qmp_capabilities", cmd):
        f.write(json.dumps({"execute": c}) + "\n")
        f.flush()
        while True:
            m = json.loads(f.readline())
            if "return" in m or "error" in m:
                break
    s.close()


def med(xs):
    return statistics.median(xs)


def bench_start(q, d, runs):
    cfg = d / "qqmgr.toml"
    cfg.write_text(f'[vm.bare]\ncmd = ["{BARE}"]\n')
    base = [q, "-c", str(cfg)]
    argv = shlex.split(run(base + ["show", "bare"]).stdout)
    ours, bare = [], []
    pidfile = d / "bare.pid"
    for _ in range(runs):
        dt, cp = timed_cp(base + ["start", "bare"])
        ours.append(dt)
        run(base + ["stop", "bare", "--force"])
        # the same argv (injected sockets included), daemonized by QEMU itself
        a = [x for x in argv]
        a[a.index("-pidfile") + 1] = str(pidfile)
        dt, _ = timed_cp(a + ["-daemonize"])
        bare.append(dt)
        pid = int(pidfile.read_text())
        os.kill(pid, 9)
        wait_gone(pid)
    st = []
    run(base + ["start", "bare"])
    for _ in range(runs * 4):
        dt, _ = timed_cp(base + ["status", "bare", "--json"])
        st.append(dt)
    run(base + ["stop", "bare", "--force"])
    return med(ours), med(bare), med(st)


def bench_stop(q, d, runs):
    cp = run(["bash", str(REPO / "tests/guest/tiny-guest.sh")], timeout=900)
    if cp.returncode != 0:
        sys.exit(f"tiny guest build failed: {cp.stderr[-2000:]}")
    g = Path(cp.stdout.strip().splitlines()[-1])
    kernel = g / "vmlinux" if (g / "vmlinux").exists() else g / "vmlinuz"
    cfg = d / "tiny.toml"
    cfg.write_text(f'''[vm.tiny]
cmd = ["-accel tcg -m 256 -display none -nodefaults", "-kernel {kernel}", "-initrd {g / 'initramfs.gz'}",
       "-append 'console=ttyS0 quiet'", "-device virtio-rng-pci"]
''')
    base = [q, "-c", str(cfg)]
    state = d / ".qqmgr" / "config.tiny.toml" / "vm.tiny"
    ours, own = [], []

    def boot():
        out = json.loads(run(base + ["start", "tiny", "--json"]).stdout)
        deadline = time.monotonic() + 120
        while "tinyguest: up" not in (state / "serial").read_text(errors="replace"):
            if time.monotonic() > deadline:
                sys.exit("tiny guest did not come up")
            time.sleep(0.1)
        time.sleep(1.0)   # let acpid start, so both sides measure a ready guest
        return out["pid"]

    for _ in range(runs):
        boot()
        dt, cp = timed_cp(base + ["stop", "tiny", "--json"])
        by = json.loads(cp.stdout)["stopped_by"]
        if by != "powerdown":
            print(f"warning: stop ended by {by}", file=sys.stderr)
        ours.append(dt)
        pid = boot()
        t0 = time.perf_counter()
        qmp(str(state / "qmp.socket"), "system_powerdown")
        wait_gone(pid)
        own.append(time.perf_counter() - t0)
        run(base + ["stop", "tiny", "--force"])
    return med(ours), med(own)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qqmgr", default=os.environ.get("QQMGR", str(REPO / "build" / "qqmgr")))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-guest", action="store_true")
    a = ap.parse_args()
    q = os.path.abspath(a.qqmgr)
    with tempfile.TemporaryDirectory(prefix="qq-bench-") as t:
        d = Path(t)
        ours, bare, st = bench_start(q, d, a.runs)
        print(f"start (guestless, median of {a.runs}): qqmgr {ours*1000:.0f} ms  "
              f"bare qemu -daemonize {bare*1000:.0f} ms  ratio {ours/bare:.2f}x")
        print(f"status --json (median of {a.runs*4}): {st*1000:.1f} ms")
        if not a.no_guest:
            ours, own = bench_stop(q, d, max(1, a.runs // 2))
            print(f"stop (tiny guest, median of {max(1, a.runs // 2)}): qqmgr {ours*1000:.0f} ms  "
                  f"guest's own ACPI shutdown {own*1000:.0f} ms  ratio {ours/own:.2f}x")


if __name__ == "__main__":
    main()
