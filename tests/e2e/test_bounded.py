"""Bounded I/O against hostile or broken peers (issue 8.3, 8.4).

A QEMU that floods or stalls its QMP socket cannot be made on demand, so these tests
use a fake QMP peer (fake_qmp.py) that holds a VM's pid-file lock and serves its
qmp.socket: every command must end within its documented bound plus a second, in
bounded memory. The ssh-master test uses a real guestless QEMU and a fake master
socket that accepts and never answers.

Run with -s to see the measured wall time and peak RSS of each command.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
BARE = "-nodefaults -machine q35 -m 64 -display none -accel tcg"
MODES = ["events", "blank", "line", "stall", "values"]

# documented bounds (docs/reference.md, "Timeouts"), seconds; a command must end within
# its bound plus SLACK (plus a little more under ASan, whose exit-time leak check of a
# large quarantined heap takes a moment)
STATUS_BOUND = 3
QMP_BOUND = 30
STOP_EXTRA = 2 + 5 + 5 + 10   # after --timeout: QMP quit, its wait, SIGTERM, SIGKILL


def slack(asan):
    return 3 if asan else 1


def is_asan(binary):
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def run_measured(argv, cwd, timeout):
    """Run argv; return (exit status, wall seconds, peak RSS in KiB, stdout, stderr).
    The peak RSS is measured by /usr/bin/time, whose own small process is the parent:
    a child forked from this (large) Python would inherit Python's high-water mark."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as rss:
        t0 = time.monotonic()
        # under ASan: a small quarantine, so a flood's freed messages are not kept
        # (and scanned at exit) by the hundred megabytes
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"), "quarantine_size_mb=16"]))
        p = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", rss.name, *argv], cwd=cwd,
                             stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        wall = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        text = rss.read().strip().splitlines()
        peak = int(text[-1]) if text and text[-1].isdigit() else -1
        return p.returncode, wall, peak, out.read().decode(), err.read().decode()


def start_fake(vm_dir, mode):
    p = subprocess.Popen([sys.executable, str(HERE / "fake_qmp.py"), str(vm_dir), mode],
                         stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


@pytest.fixture
def flooding_peers(project):
    project.write("".join(f'[vm.{m}]\ncmd = ["{BARE}"]\n' for m in MODES))
    fakes = {m: start_fake(project.vm_dir(m), m) for m in MODES}
    yield fakes
    for p in fakes.values():
        p.kill()
        p.wait()


def report(rows):
    print()
    for cmd, mode, rc, wall, rss in rows:
        print(f"  {cmd:<8} {mode:<7} exit {rc}  {wall:6.2f} s  peak RSS {rss / 1024:6.1f} MiB")


def test_status_qmp_monitor_end_in_time_in_bounded_memory_against_a_flooding_or_stalled_peer(
        project, flooding_peers):
    q = project.qqmgr
    asan = is_asan(q)
    jobs = []
    for m in MODES:
        jobs.append(("status", m, [q, "-c", str(project.config), "status", m, "--json"], STATUS_BOUND))
        jobs.append(("qmp", m, [q, "-c", str(project.config), "qmp", m, "query-status"], QMP_BOUND))
        jobs.append(("monitor", m, [q, "-c", str(project.config), "monitor", m, "info status"], QMP_BOUND))
    with ThreadPoolExecutor(len(jobs)) as ex:
        res = list(ex.map(lambda j: run_measured(j[2], project.path, j[3] + 30), jobs))
    rows = []
    for (cmd, mode, _, bound), (rc, wall, rss, out, err) in zip(jobs, res):
        rows.append((cmd, mode, rc, wall, rss))
    report(rows)
    for (cmd, mode, _, bound), (rc, wall, rss, out, err) in zip(jobs, res):
        what = f"{cmd} against a peer in mode {mode}: exit {rc}, {wall:.2f} s, {rss} KiB\n{err}"
        assert wall <= bound + slack(asan), what
        if not asan:
            assert 0 < rss < 64 * 1024, what
        if cmd == "status":
            assert rc == 0, what
            assert json.loads(out)["state"] == "broken", what
        else:
            assert rc == 1, what
            assert ("malformed" if mode in ("line", "values") else "no reply") in err, what
    for p in flooding_peers.values():
        assert p.poll() is None   # nobody was stopped


def test_stop_ends_in_time_in_bounded_memory_against_a_flooding_or_stalled_peer(project, flooding_peers):
    q = project.qqmgr
    asan = is_asan(q)
    jobs = [[q, "-c", str(project.config), "stop", m, "--timeout", "1", "--json"] for m in MODES]
    with ThreadPoolExecutor(len(jobs)) as ex:
        res = list(ex.map(lambda a: run_measured(a, project.path, 1 + STOP_EXTRA + 30), jobs))
    report([("stop", m, rc, wall, rss) for m, (rc, wall, rss, _, _) in zip(MODES, res)])
    for m, (rc, wall, rss, out, err) in zip(MODES, res):
        what = f"stop against a peer in mode {m}: exit {rc}, {wall:.2f} s, {rss} KiB\n{err}"
        assert rc == 0, what
        assert wall <= 1 + STOP_EXTRA + slack(asan), what
        if not asan:
            assert 0 < rss < 64 * 1024, what
        assert json.loads(out)["stopped_by"] == "SIGTERM", what
        assert flooding_peers[m].wait(5) is not None
        assert not (project.vm_dir(m) / "qmp.socket").exists()


def test_stop_force_is_not_blocked_by_an_ssh_master_that_never_answers(project):
    project.write(f'[vm.bare]\ncmd = ["{BARE}"]\n[vm.bare.ssh]\nport = "auto"\n')
    pid = project.json("start", "bare", check=True)["pid"]
    try:
        conf = json.loads(project.run("ssh-config", "bare", "--json", check=True).stdout)
        ctl = conf["control_path"]
        # a master that accepts every connection and never says a word
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(ctl)
        srv.listen(8)
        held = []
        stop_accepting = threading.Event()

        def accept_forever():
            srv.settimeout(0.2)
            while not stop_accepting.is_set():
                try:
                    held.append(srv.accept()[0])
                except OSError:
                    pass

        t = threading.Thread(target=accept_forever, daemon=True)
        t.start()
        t0 = time.monotonic()
        out = project.json("stop", "bare", "--force", timeout=60, check=True)
        took = time.monotonic() - t0
        stop_accepting.set()
        t.join()
        srv.close()
        for c in held:
            c.close()
        assert out["stopped_by"] == "quit"
        assert took < 2 + 5 + 3, f"stop --force took {took:.1f} s"
        assert held, "stop never tried the master"
        assert not os.path.exists(ctl), "the unanswering master's socket is left"
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("follow", [True, False], ids=["follow", "next"])
def test_events_line_over_16_mib_is_an_error_while_the_vm_runs_not_an_end(project, follow):
    project.write(f'[vm.line]\ncmd = ["{BARE}"]\n')
    fake = start_fake(project.vm_dir("line"), "line")
    try:
        argv = [project.qqmgr, "-c", str(project.config), "events", "line"] + (["-f"] if follow else [])
        rc, wall, rss, out, err = run_measured(argv, project.path, 60)
        report([("events", "-f" if follow else "next", rc, wall, rss)])
        assert rc == 1, err
        assert "16 MiB" in err and "line" in err
        assert "stopped" not in err
        assert len(err.strip().splitlines()) <= 2, err
        assert fake.poll() is None   # the "VM" still runs
    finally:
        fake.kill()
        fake.wait()
