#!/usr/bin/python3
"""Many VMs at once, side by side in one run (printed as ratios):

  1. `qqmgr start a b c d` (four guestless VMs, one command, in parallel) vs
     `qqmgr start a` (one). Target: at most 2x.
  2. Eight `qqmgr start` processes at once, each a guestless VM with an automatic
     ssh port (a user-net hostfwd): every round must give eight different ports,
     each held by its own QEMU.

usage: bench/bench_multi.py [--qqmgr PATH] [--runs N] [--rounds N]
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
from benchlib import REPO, BARE, run, timed

HOSTFWD = "-netdev user,id=n0,hostfwd=tcp:127.0.0.1:{{.vm.ssh.port}}-:22"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qqmgr", default=os.path.join(os.environ.get("QQ_BUILD_DIR", REPO / "build"), "qqmgr"))
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    q = os.path.abspath(a.qqmgr)
    with tempfile.TemporaryDirectory(prefix="bench-multi-") as d:
        conf = Path(d) / "qqmgr.toml"
        names = ["a", "b", "c", "d"]
        conf.write_text("".join(f'[vm.{n}]\ncmd = ["{BARE}"]\n\n' for n in names))
        base = [q, "-c", str(conf)]
        one, four = [], []
        try:
            for _ in range(a.runs):
                one.append(timed(base + ["start", "a"]))
                timed(base + ["stop", "--all", "--force"])
                four.append(timed(base + ["start", *names]))
                timed(base + ["stop", "--all", "--force"])
        finally:
            run(base + ["stop", "--all", "--force"])
        m1, m4 = statistics.median(one), statistics.median(four)
        print(f"start 1 guestless VM        median {m1 * 1000:7.1f} ms")
        print(f"start 4 guestless VMs       median {m4 * 1000:7.1f} ms   ratio 4/1 = {m4 / m1:.2f}x  (target <= 2x)")

        conf8 = Path(d) / "ports.toml"
        names8 = [f"p{i}" for i in range(8)]
        conf8.write_text("".join(f'[vm.{n}]\ncmd = ["{BARE}", "{HOSTFWD}"]\n[vm.{n}.ssh]\nport = "auto"\n\n'
                                 for n in names8))
        base8 = [q, "-c", str(conf8)]
        env = dict(os.environ, XDG_CACHE_HOME=str(Path(d) / "cache"))
        good, times = 0, []
        try:
            for _ in range(a.rounds):
                t0 = time.perf_counter()
                procs = [subprocess.Popen(base8 + ["start", n, "--json"], stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env)
                         for n in names8]
                outs = [p.communicate() for p in procs]
                times.append(time.perf_counter() - t0)
                ok = all(p.returncode == 0 for p in procs)
                ports = {json.loads(o)["ssh_port"] for o, _ in outs} if ok else set()
                if ok and len(ports) == 8:
                    good += 1
                else:
                    print("  round failed:", [e.strip() for _, e in outs if e.strip()][:3])
                run(base8 + ["stop", "--all", "--force"])
        finally:
            run(base8 + ["stop", "--all", "--force"])
        print(f"8 parallel starts, auto ports: {good}/{a.rounds} rounds with 8 different working ports, "
              f"median {statistics.median(times) * 1000:.0f} ms per round")
    return 0 if good == a.rounds else 1


if __name__ == "__main__":
    sys.exit(main())
