"""One deadline per command (issue 16 §2): stop, rm, snapshot save/restore/delete
and forward add/remove wait a bounded time for a VM's lock that another qqmgr
holds, then fail naming the lock (exit 1); with the lock free they work.

The lock is held the way qqmgr holds it (lockfile.c: flock(2), exclusive, on
<state dir>/lock). Guestless: a QEMU that boots nothing, with a qcow2 disk and a
user-mode netdev so that snapshots and forwards have something to work on.
"""

import fcntl
import json
import subprocess
import time
from contextlib import contextmanager

import pytest

BARE = "-nodefaults -machine q35 -m 64 -display none -accel tcg"
HELD = "bare: another qqmgr is starting or stopping it (it holds {lock}); still held after {s} s ({why})"


def bare_toml(disk=None):
    extra = f" -drive file={disk},format=qcow2,if=virtio -netdev user,id=n0 -device virtio-net-pci,netdev=n0" \
        if disk else ""
    return f'[vm.bare]\ncmd = ["{BARE}{extra}"]\n'


@contextmanager
def lock_held(project):
    lock = project.vm_dir("bare") / "lock"
    assert lock.exists()
    with open(lock, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield lock


def timed(project, *args, limit):
    t0 = time.monotonic()
    try:
        cp = project.run(*args, timeout=limit)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{args} still waited on the held lock after {limit} s")
    return cp, time.monotonic() - t0


def test_stop_timeout_bounds_the_wait_for_a_vm_lock_held_elsewhere(project):
    project.write(bare_toml())
    project.run("start", "bare", check=True)
    try:
        with lock_held(project) as lock:
            cp, took = timed(project, "stop", "bare", "--timeout", "2", limit=30)
            assert cp.returncode == 1, cp.stderr
            assert cp.stderr.strip() == "qqmgr: " + HELD.format(lock=lock, s=2, why="--timeout"), cp.stderr
            assert 1.8 < took < 10, took
            assert project.json("status", "bare")["running"]
        out = project.json("stop", "bare", "--force", check=True)
        assert out["was_running"] and out["stopped_by"]
        assert not project.json("status", "bare")["running"]
    finally:
        project.run("stop", "bare", "--force")


def test_rm_timeout_bounds_the_wait_for_a_vm_lock_held_elsewhere(project):
    project.write(bare_toml())
    project.run("start", "bare", check=True)
    project.run("stop", "bare", "--force", check=True)
    d = project.vm_dir("bare")
    with lock_held(project) as lock:
        cp, took = timed(project, "rm", "bare", "--timeout", "2", limit=30)
        assert cp.returncode == 1, cp.stderr
        assert cp.stderr.strip() == "qqmgr: " + HELD.format(lock=lock, s=2, why="--timeout"), cp.stderr
        assert 1.8 < took < 10, took
        assert d.exists()
    project.run("rm", "bare", check=True)
    assert not d.exists()


def test_snapshot_and_forward_commands_give_up_on_a_held_lock_after_30_s(project):
    """Their documented bound: 30 s. All six wait at once (one 30 s wait)."""
    disk = project.path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    project.write(bare_toml(disk))
    project.run("start", "bare", check=True)
    try:
        project.run("snapshot", "save", "bare", "s0", check=True, timeout=120)
        fwd = project.json("forward", "bare", "add", "tcp:auto:22", "--netdev", "n0", check=True)
        commands = {
            ("snapshot", "save", "bare", "s1"): "the snapshot commands' bound",
            ("snapshot", "restore", "bare", "s0"): "the snapshot commands' bound",
            ("snapshot", "delete", "bare", "s0"): "the snapshot commands' bound",
            ("snapshot", "export", "bare", "s0", str(project.path / "s0.qqsnap")): "the snapshot commands' bound",
            ("forward", "bare", "add", "tcp:auto:22", "--netdev", "n0"): "forward's bound",
            ("forward", "bare", "remove", f"tcp:{fwd['host_port']}"): "forward's bound",
        }
        with lock_held(project) as lock:
            t0 = time.monotonic()
            procs = {args: subprocess.Popen([project.qqmgr, "-c", str(project.config), *args], cwd=project.path,
                                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True)
                     for args in commands}
            try:
                for args, p in procs.items():
                    try:
                        _, err = p.communicate(timeout=max(1, 90 - (time.monotonic() - t0)))
                    except subprocess.TimeoutExpired:
                        pytest.fail(f"{args} still waited on the held lock after 90 s")
                    took = time.monotonic() - t0
                    assert p.returncode == 1, (args, err)
                    assert err.strip() == "qqmgr: " + HELD.format(lock=lock, s=30, why=commands[args]), (args, err)
                    assert 29 < took < 60, (args, took)
            finally:
                for p in procs.values():
                    if p.poll() is None:
                        p.kill()
                        p.wait()
        # the lock free: every one of them works
        assert not (project.path / "s0.qqsnap").exists()
        project.run("snapshot", "export", "bare", "s0", project.path / "s0.qqsnap", check=True, timeout=120)
        project.run("snapshot", "save", "bare", "s1", check=True, timeout=120)
        project.run("snapshot", "restore", "bare", "s0", check=True, timeout=120)
        project.run("snapshot", "delete", "bare", "s0", check=True, timeout=120)
        assert [s["name"] for s in project.json("snapshot", "list", "bare", check=True)] == ["s1"]
        project.run("forward", "bare", "remove", f"tcp:{fwd['host_port']}", check=True)
        project.json("forward", "bare", "add", "tcp:auto:22", "--netdev", "n0", check=True)
        assert len(project.json("forward", "bare", "list", check=True)) == 1
    finally:
        project.run("stop", "bare", "--force")


def test_stop_waits_for_a_lock_released_within_its_timeout_and_stops(project):
    """The bound is a wait, not one try: a lock let go after a while, within
    --timeout, is taken and the VM stopped."""
    project.write(bare_toml())
    project.run("start", "bare", check=True)
    try:
        f = open(project.vm_dir("bare") / "lock", "r+")
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            p = subprocess.Popen([project.qqmgr, "-c", str(project.config), "stop", "bare", "--force", "--timeout",
                                  "30", "--json"], cwd=project.path, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(1.5)   # the lock stays held this long: stop must wait, not give up
            assert p.poll() is None, p.communicate()
            f.close()
            out, err = p.communicate(timeout=60)
        finally:
            if not f.closed:
                f.close()
        assert p.returncode == 0, err
        assert json.loads(out)["was_running"], out
        assert not project.json("status", "bare")["running"]
    finally:
        project.run("stop", "bare", "--force")


@pytest.mark.parametrize("mapped", [True, False], ids=["mapped", "internal"])
def test_a_forward_added_at_run_time_outlives_an_in_place_restore(project, mapped):
    """A mapped snapshot restores into a fresh QEMU: the user's `forward add`s are
    added to it again (an internal one restores in place: they never went)."""
    disk = project.path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    project.write(bare_toml(disk) + ("" if mapped else "mapped_ram = false\n"))
    project.run("start", "bare", check=True)
    try:
        pid = project.json("status", "bare", check=True)["pid"]
        project.run("snapshot", "save", "bare", "s0", check=True, timeout=120)
        kind = [s["kind"] for s in project.json("snapshot", "list", "bare", check=True)]
        assert kind == ["mapped" if mapped else "qcow2"]
        fwd = project.json("forward", "bare", "add", "tcp:auto:22", "--netdev", "n0", check=True)
        project.run("snapshot", "restore", "bare", "s0", check=True, timeout=120)
        assert (project.json("status", "bare", check=True)["pid"] != pid) == mapped
        listed = project.json("forward", "bare", "list", check=True)
        assert [(f["host_port"], f["guest_port"]) for f in listed] == [(fwd["host_port"], 22)]
        # QEMU has it: removing it works
        project.run("forward", "bare", "remove", f"tcp:{fwd['host_port']}", check=True)
    finally:
        project.run("stop", "bare", "--force", check=True)
