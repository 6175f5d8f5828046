"""How qqmgr launches QEMU and what it says about a VM that does not run
(issue 16 §2, §3): one message for "not running", QEMU inherits only fds 0-2,
one deadline for the whole start, lock waits included.

Guestless: a QEMU that boots nothing (BARE).
"""

import fcntl
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import wait_until

BARE = "-nodefaults -machine q35 -m 64 -display none -accel tcg"


def bare_toml(name="bare", port=None):
    ssh = f'\n[vm.{name}.ssh]\nport = {port}\n' if port else ""
    return f'[vm.{name}]\ncmd = ["{BARE}"]\n{ssh}'


def test_every_command_that_needs_a_running_vm_says_so_in_one_way(project):
    project.write(bare_toml(port='"auto"'))
    first = project.run("console", "bare").stderr.strip()
    assert first.startswith("qqmgr: bare is not running (start it: ") and first.endswith(" start bare)"), first
    want = first[:-1]
    needs_running = [
        ("console", "bare"),
        ("qmp", "bare", "query-status"),
        ("monitor", "bare", "info status"),
        ("gdb", "bare", "--attach"),
        ("gdb", "bare", "--guest"),
        ("trace", "bare", "list"),
        ("events", "bare"),
        ("forward", "bare", "list"),
        ("snapshot", "save", "bare", "s1"),
        ("ssh", "bare", "true"),
    ]
    for args in needs_running:
        cp = project.run(*args)
        assert cp.returncode == 1, (args, cp.stderr)
        assert cp.stderr.strip() == want + ")", (args, cp.stderr)
    cp = project.run("snapshot", "restore", "bare", "s1")
    assert cp.returncode == 1 and cp.stderr.strip() == want + " --restore s1)", cp.stderr


def test_qemu_inherits_only_stdin_stdout_stderr(project):
    """`qqmgr start bare 5>&1 | cat` ends when qqmgr does: QEMU does not keep
    the pipe open through an fd of qqmgr's it was never meant to have."""
    project.write(bare_toml())
    r, w = os.pipe()
    extra = os.dup(w)   # an fd other than 0-2 that holds the pipe
    try:
        p = subprocess.Popen([project.qqmgr, "-c", str(project.config), "start", "bare"], cwd=project.path,
                             stdin=subprocess.DEVNULL, stdout=w, stderr=subprocess.PIPE, pass_fds=(extra,))
        os.close(w)
        os.close(extra)
        w = extra = -1
        assert p.wait(timeout=120) == 0, p.stderr.read()
        os.set_blocking(r, False)
        # qqmgr has exited: the pipe reaches end of file unless QEMU holds it
        deadline = time.monotonic() + 10
        eof = False
        while time.monotonic() < deadline and not eof:
            try:
                eof = os.read(r, 4096) == b""
            except BlockingIOError:
                time.sleep(0.05)
        qemu = int((project.vm_dir("bare") / "pid").read_text().split()[0])
        held = [fd for fd in os.listdir(f"/proc/{qemu}/fd") if int(fd) > 2
                and os.readlink(f"/proc/{qemu}/fd/{fd}").startswith("pipe:")]
        assert eof, f"QEMU (pid {qemu}) holds qqmgr's pipe: its fds {held}"
    finally:
        for fd in (w, extra):
            if fd >= 0:
                os.close(fd)
        os.close(r)
        project.run("stop", "bare", "--force")


def test_start_timeout_bounds_the_wait_for_a_vm_lock_held_elsewhere(project):
    """One deadline per command: `start --timeout 2` while another process
    holds the VM's lock gives up after about 2 s, naming the lock, and starts
    nothing."""
    project.write(bare_toml())
    project.run("start", "bare", check=True)
    project.run("stop", "bare", "--force", check=True)
    lock = project.vm_dir("bare") / "lock"
    assert lock.exists()
    with open(lock, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        t0 = time.monotonic()
        try:
            cp = project.run("start", "bare", "--timeout", "2", timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("start --timeout 2 still waited on the held lock after 30 s")
        took = time.monotonic() - t0
    assert cp.returncode == 1, cp.stderr
    assert "bare: another qqmgr is starting or stopping it" in cp.stderr and str(lock) in cp.stderr, cp.stderr
    assert "still held after 2 s (--timeout)" in cp.stderr, cp.stderr
    assert 1.8 < took < 10, took
    assert not project.json("status", "bare")["running"]


def test_start_reports_the_time_it_waited_for_the_lock(project):
    """The "in S s" of start counts from the start of the command's start,
    lock wait included (it said 0.11 s after waiting 7.8 s)."""
    project.write(bare_toml())
    project.run("start", "bare", check=True)
    project.run("stop", "bare", "--force", check=True)
    lock = project.vm_dir("bare") / "lock"
    f = open(lock, "r+")
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
        p = subprocess.Popen([project.qqmgr, "-c", str(project.config), "start", "bare", "--json"],
                             cwd=project.path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)   # the lock stays held this long: what start must count
        f.close()
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        import json
        assert json.loads(out)["elapsed_ms"] >= 1400, out
    finally:
        if not f.closed:
            f.close()
        project.run("stop", "bare", "--force")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_while_start_waits_for_the_lock_ends_it_with_a_word(project, sig):
    """SIGINT, SIGTERM and SIGHUP alike: start stops waiting, says so, exit 1,
    and no QEMU is started behind the user's back once the lock frees."""
    project.write(bare_toml())
    project.run("start", "bare", check=True)
    project.run("stop", "bare", "--force", check=True)
    lock = project.vm_dir("bare") / "lock"
    with open(lock, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        p = subprocess.Popen([project.qqmgr, "-c", str(project.config), "start", "bare"], cwd=project.path,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            def waits_on_lock():
                return any(os.readlink(f"/proc/{p.pid}/fd/{fd}") == str(lock)
                           for fd in os.listdir(f"/proc/{p.pid}/fd"))
            wait_until(waits_on_lock, 30, what="start waits on the VM's lock")
            p.send_signal(sig)
            out, err = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert p.returncode == 1, (p.returncode, err)
    assert f"bare: start interrupted by signal {int(sig)} while waiting for the VM's lock" in err, err
    assert not project.json("status", "bare")["running"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_before_qmp_answers_kills_the_half_started_qemu(project, sig):
    project.write(bare_toml())
    # a wrapper that holds QEMU back: start is waiting for QMP when the signal comes
    slow = project.path / "slow.sh"
    slow.write_text('#!/bin/sh\nsleep 3\nexec "$@"\n')
    slow.chmod(0o755)
    p = subprocess.Popen([project.qqmgr, "-c", str(project.config), "start", "bare", "--wrap", str(slow)],
                         cwd=project.path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: (project.vm_dir("bare") / "argv.json").exists(), 30, what="start spawned QEMU")
        time.sleep(0.3)
        p.send_signal(sig)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 1, (p.returncode, err)
    assert f"bare: start interrupted by signal {int(sig)}; QEMU was killed" in err, err
    time.sleep(4)   # past the wrapper's sleep: nothing may come up
    assert not project.json("status", "bare")["running"]


SRC_APP = Path(__file__).resolve().parents[2] / "src" / "app"


def test_app_layer_does_not_print():
    """app/ returns data and messages to cmd/ (or relays through report.h):
    no stdio output of its own and no writes to descriptors 1 and 2."""
    printing = re.compile(r"\b(printf|fprintf|puts|fputs|putchar|fputc|perror|fwrite)\s*\(|"
                          r"\b(stdout|stderr)\b|\bwrite(_all)?\(\s*[12]\s*,")
    found = []
    for f in sorted(SRC_APP.glob("*.c")):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            code = re.sub(r'"(\\.|[^"\\])*"', '""', line.split("//")[0])
            code = re.sub(r"/\*.*?(\*/|$)", "", code)
            if code.lstrip().startswith(("*", "/*")):
                continue
            if printing.search(code) and "format(printf" not in code:
                found.append(f"{f.name}:{n}: {line.strip()}")
    assert not found, "\n".join(found)


def test_app_modules_include_each_other_without_cycles():
    graph = {}
    for f in SRC_APP.iterdir():
        mod = f.stem
        deps = graph.setdefault(mod, set())
        for m in re.finditer(r'^#include "([a-z_]+)\.h"', f.read_text(), re.M):
            if m.group(1) != mod:
                deps.add(m.group(1))
    state = {}

    def visit(m, path):
        if state.get(m) == "done":
            return
        assert state.get(m) != "open", "include cycle: " + " -> ".join(path + [m])
        state[m] = "open"
        for d in sorted(graph.get(m, ())):
            visit(d, path + [m])
        state[m] = "done"

    for m in sorted(graph):
        visit(m, [])
