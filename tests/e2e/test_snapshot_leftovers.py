"""What a qqmgr killed in the middle of a snapshot operation leaves, and its repair.

qqmgr is killed (SIGKILL, which nothing can catch, and SIGTERM/SIGHUP, which it
handles like Ctrl-C) at each stage of `snapshot save`, `start --restore` and
`start --rm --restore`; the test then checks what is left and that the next command
leaves the VM usable: running (or paused, as it was), reachable over ssh, saving again,
with no partial state file and no throwaway copy on disk. A diskless VM starts from the
session's booted snapshot (the `golden` fixture): the kills are of the commands after it.
"""

import os
import signal
import subprocess
import time

import pytest

from conftest import wait_until
from test_snapshot import boot, names, setup_disk, setup_diskless, ssh, state, stop

pytestmark = pytest.mark.guest

CAUGHT = [signal.SIGTERM, signal.SIGHUP]
ALL = [signal.SIGKILL] + CAUGHT


def popen(project, *args, **kw):
    return subprocess.Popen([project.qqmgr, "-c", str(project.config), *args], cwd=project.path,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def kill_when(p, cond, sig, what):
    """Send sig to p once cond() holds (polled fast); its (stdout, stderr) after it ends."""
    try:
        wait_until(cond, 120, 0.001, what)
        p.send_signal(sig)
        return p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()


def assert_interrupted(p, err, sig):
    if sig == signal.SIGKILL:
        assert p.returncode == -signal.SIGKILL
    else:
        assert p.returncode == 1 and "interrupted" in err, (p.returncode, err)


def dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


@pytest.mark.parametrize("sig", ALL, ids=lambda s: s.name)
def test_killed_diskless_save_leaves_a_vm_that_runs_and_saves_again(project, tiny_vm_toml, golden, sig):
    setup_diskless(project, tiny_vm_toml)
    boot(project, golden=golden)
    tmp = project.vm_dir("tiny") / "snapshots" / "s1.state.tmp"
    p = popen(project, "snapshot", "save", "tiny", "s1")
    out, err = kill_when(p, tmp.exists, sig, "the save to be under way")
    assert_interrupted(p, err, sig)
    # the next command finds the guest running (not paused in postmigrate)
    assert state(project) == "running"
    ssh(project, "true", check=True, timeout=60)
    assert not tmp.exists()
    assert not (project.vm_dir("tiny") / "inflight.json").exists()
    assert names(project) == []
    # and a save works again (QEMU refuses one from postmigrate)
    project.run("snapshot", "save", "tiny", "s1", check=True)
    assert names(project) == ["s1"] and state(project) == "running"
    stop(project)


def test_save_of_a_paused_vm_keeps_it_paused_and_saves_again(project, tiny_vm_toml, golden):
    setup_diskless(project, tiny_vm_toml)
    boot(project, golden=golden)
    project.run("qmp", "tiny", "stop", check=True)
    assert state(project) == "paused"
    project.run("snapshot", "save", "tiny", "s1", check=True)
    assert state(project) == "paused"
    project.run("snapshot", "save", "tiny", "s2", check=True)
    assert state(project) == "paused" and sorted(names(project)) == ["s1", "s2"]
    project.run("qmp", "tiny", "cont", check=True)
    ssh(project, "true", check=True, timeout=60)
    stop(project)


@pytest.mark.parametrize("sig", ALL, ids=lambda s: s.name)
def test_killed_start_restore_of_a_state_file_leaves_no_paused_qemu(project, tiny_vm_toml, golden, sig):
    setup_diskless(project, tiny_vm_toml)
    boot(project, golden=golden)
    ssh(project, "echo saved > /tmp/mark", check=True)
    project.run("snapshot", "save", "tiny", "s1", check=True)
    stop(project)
    pidfile = project.vm_dir("tiny") / "pid"
    p = popen(project, "start", "tiny", "--restore", "s1")
    out, err = kill_when(p, pidfile.exists, sig, "QEMU to start loading the state")
    assert_interrupted(p, err, sig)
    if sig != signal.SIGKILL:
        # a caught signal stops the half-started VM
        assert state(project) == "stopped"
        project.run("start", "tiny", "--restore", "s1", check=True, timeout=200)
    else:
        # start finds the restore's QEMU, lets it finish loading and run
        project.run("start", "tiny", check=True, timeout=200)
    assert state(project) == "running"
    assert ssh(project, "cat /tmp/mark", check=True, timeout=60).stdout.strip() == "saved"
    assert not (project.vm_dir("tiny") / "inflight.json").exists()
    stop(project)


def test_inmigrate_left_by_a_dead_qqmgr_is_repaired_by_status(project, tiny_vm_toml, golden):
    """The record of a restore whose qqmgr died (written as a killed one leaves it)
    and a QEMU that loaded its state paused: status lets it run."""
    setup_diskless(project, tiny_vm_toml)
    boot(project, golden=golden)
    project.run("snapshot", "save", "tiny", "s1", check=True)
    stop(project)
    project.run("start", "tiny", "--restore", "s1", "--paused", check=True, timeout=200)
    project.run("qmp", "tiny", "stop", check=True)
    assert state(project) == "paused"
    (project.vm_dir("tiny") / "inflight.json").write_text(
        '{"op": "restore", "pid": %d, "started": 1, "snapshot": "s1", "was_running": true}' % dead_pid())
    assert state(project) == "running"
    assert not (project.vm_dir("tiny") / "inflight.json").exists()
    stop(project)


@pytest.mark.parametrize("sig", ALL, ids=lambda s: s.name)
def test_killed_start_rm_restore_leaves_no_throwaway_copy(project, tiny_vm_toml, sig):
    setup_disk(project, tiny_vm_toml)
    boot(project)
    project.run("snapshot", "save", "tiny", "s1", check=True)
    stop(project)
    vm_dir = project.vm_dir("tiny")
    copies = lambda: list(vm_dir.glob("throwaway.*.qcow2"))
    # a copy an earlier killed qqmgr left (its pid is gone)
    stale = vm_dir / f"throwaway.{dead_pid()}.0.qcow2"
    stale.write_bytes(b"\0" * 4096)
    p = popen(project, "start", "tiny", "--rm", "--restore", "s1")
    out, err = kill_when(p, lambda: [c for c in copies() if c != stale] or not stale.exists(), sig,
                         "the copy to be made")
    assert_interrupted(p, err, sig)
    assert not stale.exists()
    if sig != signal.SIGKILL:
        assert copies() == [] and state(project) == "stopped"
    project.run("stop", "tiny", check=True)
    assert copies() == []
    assert state(project) == "stopped"
    assert names(project) == ["s1"]


def test_ctrl_c_interrupts_the_throwaway_copy(project, tiny_vm_toml):
    setup_disk(project, tiny_vm_toml)
    disk = project.state_dir / "img.d" / "disk.qcow2"
    project.write(project.config.read_text().replace('img_size = "64M"', 'img_size = "3G"'))
    project.run("img", "build", "d", check=True)
    # 2 GiB of data on the disk: a copy that takes a while
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 1G", "-c", "write -P 0x5a 1G 1G", str(disk)],
                   check=True, stdout=subprocess.DEVNULL, timeout=300)
    boot(project)
    project.run("snapshot", "save", "tiny", "s1", check=True, timeout=300)
    stop(project)
    vm_dir = project.vm_dir("tiny")
    p = popen(project, "start", "tiny", "--rm", "--restore", "s1")
    t0 = None

    def copying():
        return any(c.stat().st_size > 0 for c in vm_dir.glob("throwaway.*.qcow2"))

    try:
        wait_until(copying, 120, 0.001, "the copy to be under way")
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    took = time.monotonic() - t0
    assert p.returncode == 1 and "interrupted" in err, err
    assert took < 1.5, took
    assert list(vm_dir.glob("throwaway.*")) == []
    assert state(project) == "stopped"


def test_ctrl_c_while_runs_command_runs_says_so_and_exits_1(project, tiny_vm_toml, golden):
    setup_diskless(project, tiny_vm_toml)
    golden.place(project, "tiny")
    p = subprocess.Popen([project.qqmgr, "-c", str(project.config), "run", "tiny", "--restore", "booted", "--",
                          "echo started; sleep 600"], cwd=project.path, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert p.stdout.readline() == "started\n"
        # the terminal's Ctrl-C: SIGINT to the whole foreground group (qqmgr and ssh)
        os.killpg(p.pid, signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 1, (p.returncode, err)
    assert "interrupted" in err and "stopped" in err
    assert state(project) == "stopped"


def test_prune_removes_the_copies_a_killed_qqmgr_left(project, tiny_vm_toml, golden):
    setup_diskless(project, tiny_vm_toml)
    boot(project, golden=golden)
    stop(project)
    vm_dir = project.vm_dir("tiny")
    stale = vm_dir / f"throwaway.{dead_pid()}.0.qcow2"
    stale.write_bytes(b"\1" * 65536)
    mine = vm_dir / f"throwaway.{os.getpid()}.0.qcow2"   # a live owner's: kept
    mine.write_bytes(b"\1" * 4096)
    out = project.json("prune", "--dry-run", check=True)
    assert [(e["kind"], e["path"], e["removed"]) for e in out["entries"]] == [("throwaway", str(stale), False)]
    assert stale.exists()
    out = project.json("prune", check=True)
    assert [(e["kind"], e["name"], e["removed"]) for e in out["entries"]] == [("throwaway", "tiny", True)]
    assert not stale.exists() and mine.exists()
    assert out["bytes"] >= 65536
