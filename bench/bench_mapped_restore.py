#!/usr/bin/python3
"""The mechanism of issue 18.1 measured on QEMU itself (no qqmgr yet): a restore that maps
the guest's RAM instead of copying it, against the migration-stream restore qqmgr's
state-file snapshots use today. Ratios in one run, under TCG, with the tiny guest:

  1. cold boot-to-ssh vs mapped restore-to-ssh;
  2. restore-to-ssh after the guest dirtied D MiB of RAM vs after it dirtied none, for
     the full migration stream (`-incoming 'exec:cat STATE'`, what `start --restore` of a
     state file does) and for the mapped restore;
  3. N concurrent mapped copies of one snapshot vs one: wall time to ssh in all of them,
     and their total PSS (shared pages split among the copies; RSS too).

The mapped snapshot: the guest runs with its RAM in a file on tmpfs
(`-object memory-backend-file,share=on,mem-path=/dev/shm/…` + `-machine memory-backend=`);
the save stops it and migrates with the `x-ignore-shared` capability (device state only,
well under 1 MiB), then copies the RAM file (sparse). A restore maps that file with
share=off (MAP_PRIVATE: pages fault in on use, writes stay private to the copy), starts
with `-incoming defer`, sets the capability, `migrate-incoming exec:cat STATE`, `cont`.

usage: bench/bench_mapped_restore.py [--mem MiB] [--dirty MiB] [--copies N]
Builds (or reuses) the tiny guest through tests/guest/tiny-guest.sh.
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import REPO

ACCEL = os.environ.get("QQ_TEST_ACCEL", "tcg")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Qmp:
    def __init__(self, path, timeout=60):
        self.s = socket.socket(socket.AF_UNIX)
        end = time.monotonic() + timeout
        while True:
            try:
                self.s.connect(str(path))
                break
            except OSError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.005)
        self.f = self.s.makefile("rw")
        json.loads(self.f.readline())
        self("qmp_capabilities")

    def __call__(self, cmd, **args):
        self.f.write(json.dumps({"execute": cmd, "arguments": args}) + "\n")
        self.f.flush()
        while True:
            r = json.loads(self.f.readline())
            if "error" in r:
                raise RuntimeError(f"{cmd}: {r['error']}")
            if "return" in r:
                return r["return"]

    def close(self):
        self.s.close()


class Bench:
    def __init__(self, guest, mem, work):
        self.g, self.mem, self.w = guest, mem, work
        self.procs = []

    def qemu(self, name, ram=None, share="on", extra=()):
        port = free_port()
        mem = []
        if ram:
            mem = ["-object", f"memory-backend-file,id=ram0,size={self.mem}M,mem-path={ram},share={share}",
                   "-machine", "memory-backend=ram0"]
        kernel = self.g / "vmlinux" if (self.g / "vmlinux").is_file() else self.g / "vmlinuz"
        argv = ["qemu-system-x86_64", "-accel", ACCEL, "-m", f"{self.mem}M", "-display", "none", "-nodefaults",
                *mem, "-kernel", str(kernel), "-initrd", str(self.g / "initramfs.gz"),
                "-append", "console=ttyS0 quiet",
                "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22", "-device", "virtio-net-pci,netdev=n0",
                "-device", "virtio-rng-pci", "-serial", f"file:{self.w}/{name}.serial",
                "-qmp", f"unix:{self.w}/{name}.qmp,server=on,wait=off", *extra]
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=open(self.w / f"{name}.err", "w"))
        self.procs.append(p)
        return p, port, self.w / f"{name}.qmp"

    def ssh(self, port, cmd="true"):
        return subprocess.run(["ssh", "-i", str(self.g / "id_ed25519"), "-p", str(port), "-o", "BatchMode=yes",
                               "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                               "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5", "root@127.0.0.1", cmd],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True)

    def wait_ssh(self, port, timeout=600):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.ssh(port).returncode == 0:
                return
            time.sleep(0.05)
        raise TimeoutError(f"no ssh on {port}")

    def kill(self, p):
        p.kill()
        p.wait()

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    # a booted guest, optionally after dirtying RAM; mapped: RAM in a tmpfs file
    def boot(self, name, dirty, mapped):
        ram = Path("/dev/shm") / f"qq-bench-{os.getpid()}-{name}" if mapped else None
        t0 = time.monotonic()
        p, port, qmp = self.qemu(name, ram=ram)
        self.wait_ssh(port)
        cold = time.monotonic() - t0
        if dirty:
            # pages of random bytes: neither zero nor alike (the stream compresses neither)
            r = self.ssh(port, f"dd if=/dev/urandom of=/tmp/dirty bs=1M count={dirty} 2>/dev/null")
            assert r.returncode == 0, r.stderr
        return p, Qmp(qmp), ram, cold

    def save_stream(self, name, dirty):
        p, q, _, cold = self.boot(name, dirty, mapped=False)
        state = self.w / f"{name}.state"
        q("stop")
        q("migrate", uri=f"exec:cat > {state}")
        while q("query-migrate").get("status") not in ("completed", "failed"):
            time.sleep(0.01)
        q.close()
        self.kill(p)
        return state, cold

    def save_mapped(self, name, dirty):
        p, q, ram, cold = self.boot(name, dirty, mapped=True)
        state = self.w / f"{name}.state"
        t0 = time.monotonic()
        q("migrate-set-capabilities", capabilities=[{"capability": "x-ignore-shared", "state": True}])
        q("stop")
        q("migrate", uri=f"exec:cat > {state}")
        while q("query-migrate").get("status") not in ("completed", "failed"):
            time.sleep(0.005)
        snap = self.w / f"{name}.ram"
        subprocess.run(["cp", "--sparse=always", str(ram), str(snap)], check=True)
        saved = time.monotonic() - t0
        q.close()
        self.kill(p)
        ram.unlink()
        return state, snap, cold, saved

    def restore_stream(self, name, state):
        t0 = time.monotonic()
        p, port, _ = self.qemu(name, extra=["-incoming", f"exec:cat {state}"])
        q = Qmp(self.w / f"{name}.qmp")
        while q("query-status")["status"] == "inmigrate":
            time.sleep(0.005)
        q("cont")
        self.wait_ssh(port)
        took = time.monotonic() - t0
        q.close()
        return p, took

    def restore_mapped(self, name, state, snap):
        t0 = time.monotonic()
        p, port, qmp = self.qemu(name, ram=snap, share="off", extra=["-incoming", "defer"])
        q = Qmp(qmp)
        q("migrate-set-capabilities", capabilities=[{"capability": "x-ignore-shared", "state": True}])
        q("migrate-incoming", uri=f"exec:cat {state}")
        while q("query-status")["status"] == "inmigrate":
            time.sleep(0.005)
        q("cont")
        q.close()
        return p, port, t0


def mem_mib(pid, field):
    """Rss or Pss of a process in MiB (Pss shares a page among the copies that map it)."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mem", type=int, default=1024, help="guest RAM, MiB")
    ap.add_argument("--dirty", type=int, default=256, help="RAM the guest dirties before the save, MiB")
    ap.add_argument("--copies", type=int, default=8)
    a = ap.parse_args()
    guest = Path(subprocess.run([str(REPO / "tests/guest/tiny-guest.sh")], check=True, capture_output=True,
                                text=True).stdout.strip().splitlines()[-1])
    work = Path(tempfile.mkdtemp(prefix="qq-bench-mapped-"))
    b = Bench(guest, a.mem, work)
    try:
        print(f"tiny guest, {a.mem} MiB, TCG; dirty: {a.dirty} MiB; {a.copies} copies")
        s_clean, cold = b.save_stream("s0", 0)
        s_dirty, _ = b.save_stream("s1", a.dirty)
        m_clean, r_clean, _, saved0 = b.save_mapped("m0", 0)
        m_dirty, r_dirty, _, saved1 = b.save_mapped("m1", a.dirty)
        print(f"  state written: stream {s_clean.stat().st_size >> 20} / {s_dirty.stat().st_size >> 20} MiB "
              f"(clean / dirty); mapped: device state {m_dirty.stat().st_size >> 10} KiB + RAM file "
              f"{(r_dirty.stat().st_blocks * 512) >> 20} MiB used; mapped save {saved0:.2f} / {saved1:.2f} s")
        times = {}
        for key, fn in (("stream clean", lambda n: b.restore_stream(n, s_clean)),
                        ("stream dirty", lambda n: b.restore_stream(n, s_dirty))):
            p, took = fn(key.replace(" ", "-"))
            times[key] = took
            b.kill(p)
        for key, (st, ram) in (("mapped clean", (m_clean, r_clean)), ("mapped dirty", (m_dirty, r_dirty))):
            p, port, t0 = b.restore_mapped(key.replace(" ", "-"), st, ram)
            b.wait_ssh(port)
            times[key] = time.monotonic() - t0
            b.kill(p)
        print(f"1. cold boot-to-ssh {cold:.2f} s; mapped restore-to-ssh {times['mapped clean']:.2f} s: "
              f"{cold / times['mapped clean']:.1f}x")
        print(f"2. dirty/clean restore-to-ssh: stream {times['stream dirty']:.2f}/{times['stream clean']:.2f} s = "
              f"{times['stream dirty'] / times['stream clean']:.2f}x; mapped {times['mapped dirty']:.2f}/"
              f"{times['mapped clean']:.2f} s = {times['mapped dirty'] / times['mapped clean']:.2f}x")
        # 3. one copy, then N at once
        p, port, t0 = b.restore_mapped("one", m_dirty, r_dirty)
        b.wait_ssh(port)
        one = time.monotonic() - t0
        one_rss, one_pss = mem_mib(p.pid, "Rss"), mem_mib(p.pid, "Pss")
        b.kill(p)
        t0 = time.monotonic()
        started = [b.restore_mapped(f"c{i}", m_dirty, r_dirty) for i in range(a.copies)]
        for _, port, _ in started:
            b.wait_ssh(port)
        many = time.monotonic() - t0
        total_rss = sum(mem_mib(p.pid, "Rss") for p, _, _ in started)
        total_pss = sum(mem_mib(p.pid, "Pss") for p, _, _ in started)
        for p, _, _ in started:
            b.kill(p)
        print(f"3. {a.copies} concurrent mapped copies to ssh: {many:.2f} s vs one {one:.2f} s = {many / one:.2f}x wall; "
              f"PSS {total_pss:.0f} MiB vs {one_pss:.0f} MiB = {total_pss / one_pss:.2f}x "
              f"(RSS, which counts shared pages in each copy: {total_rss / one_rss:.2f}x)")
    finally:
        b.cleanup()
        for f in Path("/dev/shm").glob(f"qq-bench-{os.getpid()}-*"):
            f.unlink()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
