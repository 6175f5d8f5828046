#!/usr/bin/python3
"""Mapped snapshots through qqmgr itself (issue 18 §1), ratios in one run, under TCG:

  1. restore-to-ssh vs cold boot-to-ssh, the tiny guest (256 MiB, diskless) and, with
     --debian, the Debian cloud-init guest (768 MiB, 2 vCPUs, qcow2 disk):
     `qqmgr start VM --wait` vs `qqmgr start VM --restore S --rm --wait` (a throwaway
     copy: RAM mapped MAP_PRIVATE, thin overlays) and `start VM --restore S --wait`
     (the VM's own run: layers copied back, RAM copied into tmpfs); each command's wall
     time until it returns (ssh answered; a restore has also set the guest clock).
  2. restore-to-ssh of a tiny guest with 2 GiB that dirtied --dirty MiB (default 1536,
     random bytes, into its initramfs root, grown to 95% of RAM) before the save vs the same guest
     saved clean.
  3. the guest clock after restoring a snapshot saved --age seconds earlier (default 60),
     the tiny guest (busybox date: whole seconds) and, with --debian, the Debian guest:
     host time minus guest time right after `start --restore --rm --wait` returned
     (the guest's time to the microsecond, from busybox's adjtimex or GNU date's %N,
     read through the ssh master: the offset lies in the printed range, as wide as
     that command's round trip).

usage: bench/bench_mapped_qqmgr.py [--qqmgr PATH] [--runs N] [--dirty MiB] [--age S]
                                   [--debian] [--no-dirty] [--no-clock]
Builds (or reuses) the tiny guest through tests/guest/tiny-guest.sh; --debian builds the
cloud base (tests/guest/cloud-base.sh) and customises it once with `img build` (minutes).
"""
import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench_snapshot import client_key, cloud_base, debian_config, tiny_config
from benchlib import REPO, run, timed


def med(xs):
    return statistics.median(xs)


def restore_ratios(q, cfg, vm, runs):
    """Medians (cold, throwaway restore, own-run restore) of start --wait."""
    qq = [q, "-c", str(cfg)]
    timed(qq + ["start", vm, "--wait", "--timeout", "900"])
    timed(qq + ["snapshot", "save", vm, "bench", "--force"])
    timed(qq + ["stop", vm, "--force"])
    cold, rm, own = [], [], []
    for _ in range(runs):
        cold.append(timed(qq + ["start", vm, "--wait", "--timeout", "900"]))
        timed(qq + ["stop", vm, "--force"])
        rm.append(timed(qq + ["start", vm, "--restore", "bench", "--rm", "--wait", "--timeout", "900"]))
        timed(qq + ["stop", vm, "--force"])
        own.append(timed(qq + ["start", vm, "--restore", "bench", "--wait", "--timeout", "900"]))
        timed(qq + ["stop", vm, "--force"])
    kind = run(qq + ["--json", "snapshot", "list", vm]).stdout
    return med(cold), med(rm), med(own), "mapped" if '"mapped"' in kind else "NOT mapped"


def dirty_ratio(q, cfg, vm, dirty, runs):
    qq = [q, "-c", str(cfg)]
    timed(qq + ["start", vm, "--wait", "--timeout", "900"])
    timed(qq + ["snapshot", "save", vm, "clean", "--force"])
    timed(qq + ["ssh", vm, f"mount -o remount,size=95% / 2>/dev/null; dd if=/dev/urandom of=/dirty bs=1M count={dirty} 2>/dev/null"])
    t0 = time.perf_counter()
    timed(qq + ["snapshot", "save", vm, "dirty", "--force"])
    saved = time.perf_counter() - t0
    timed(qq + ["stop", vm, "--force"])
    clean_t, dirty_t = [], []
    for _ in range(runs):
        for name, acc in (("clean", clean_t), ("dirty", dirty_t)):
            acc.append(timed(qq + ["start", vm, "--restore", name, "--rm", "--wait", "--timeout", "900"]))
            timed(qq + ["stop", vm, "--force"])
    return med(clean_t), med(dirty_t), saved


def clock_after(q, cfg, vm, age):
    qq = [q, "-c", str(cfg)]
    timed(qq + ["start", vm, "--wait", "--timeout", "900"])
    timed(qq + ["snapshot", "save", vm, "aged", "--force"])
    timed(qq + ["stop", vm, "--force"])
    time.sleep(age)
    timed(qq + ["start", vm, "--restore", "aged", "--rm", "--wait", "--timeout", "900"])
    timed(qq + ["ssh", vm, "true"])   # the master is up: the next command's round trip is short
    before = time.time()
    out = run(qq + ["ssh", vm, "adjtimex 2>/dev/null; date +%s.%N"]).stdout
    after = time.time()
    timed(qq + ["stop", vm, "--force"])
    return guest_offset(out, before, after)


def guest_offset(out, before, after):
    """(low, high) of host - guest from the guest's time read between the host's
    before and after: microseconds from busybox's adjtimex (time.tv_sec/tv_usec)
    or GNU date's %N; whole seconds from a date without %N."""
    f = {}
    for line in out.splitlines():
        k, _, v = line.partition(":")
        f[k.strip()] = v.strip()
    if "time.tv_sec" in f and "time.tv_usec" in f:
        guest = int(f["time.tv_sec"]) + int(f["time.tv_usec"].split()[0]) / 1e6
        return before - guest, after - guest
    last = out.strip().splitlines()[-1]
    if last.endswith("N"):   # a date without %N: the true time lies in [guest, guest + 1)
        guest = int(last.split(".")[0])
        return before - (guest + 1), after - guest
    guest = float(last)
    return before - guest, after - guest


def restore_and_clock(q, cfg, vm, what, a):
    """Print 1. (restore vs cold boot) and, unless --no-clock, 3. (the clock) for vm."""
    try:
        cold, rm, own, kind = restore_ratios(q, cfg, vm, a.runs)
        print(f"1. {what} ({kind}): cold start --wait {cold:.2f} s; start --restore --rm --wait "
              f"{rm:.2f} s = {cold / rm:.1f}x; own run start --restore --wait {own:.2f} s = {cold / own:.1f}x")
        if not a.no_clock:
            lo, hi = clock_after(q, cfg, vm, a.age)
            print(f"3. {what}: guest clock {a.age} s after the save, right after start --restore --rm --wait: "
                  f"host - guest in [{lo:+.2f}, {hi:+.2f}] s")
    finally:
        run([q, "-c", str(cfg), "stop", vm, "--force"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qqmgr", default=str(REPO / "build" / "qqmgr"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dirty", type=int, default=1536, help="MiB the 2 GiB guest dirties before the save")
    ap.add_argument("--age", type=int, default=60, help="seconds between save and restore for the clock")
    ap.add_argument("--debian", action="store_true", help="also the Debian cloud-init guest (minutes)")
    ap.add_argument("--no-dirty", action="store_true")
    ap.add_argument("--no-clock", action="store_true")
    a = ap.parse_args()
    q = os.path.abspath(a.qqmgr)
    g = Path(run(["bash", str(REPO / "tests/guest/tiny-guest.sh")], check=True).stdout.strip().splitlines()[-1])
    print(f"accel TCG, {a.runs} runs each, medians; qqmgr {q}")
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        cfg = d / "tiny.toml"
        cfg.write_text(tiny_config(g, False))
        restore_and_clock(q, cfg, "t", "tiny guest 256 MiB", a)
        if not a.no_dirty:
            big = d / "big.toml"
            big.write_text(tiny_config(g, False).replace("-m 256", "-m 2048"))
            try:
                clean, dirty, saved = dirty_ratio(q, big, "t", a.dirty, a.runs)
                print(f"2. tiny guest 2 GiB: restore --rm --wait after dirtying {a.dirty} MiB {dirty:.2f} s vs "
                      f"clean {clean:.2f} s = {dirty / clean:.2f}x (the dirty save took {saved:.1f} s)")
            finally:
                run([q, "-c", str(big), "stop", "t", "--force"])
        if a.debian:
            dcfg = d / "debian.toml"
            dcfg.write_text(debian_config(d, cloud_base(), client_key(d)))
            timed([q, "-c", str(dcfg), "img", "build", "deb"])
            restore_and_clock(q, dcfg, "deb", "Debian guest 768 MiB", a)


if __name__ == "__main__":
    main()
