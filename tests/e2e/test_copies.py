"""Many throwaway copies of one VM at once (issue 18 §2): `run VM --restore S --rm` and
`start VM --rm` while the VM's own place is taken run as copies VM#N, each with its own
state dir, ssh port, QMP and disk writes, reached by name, and gone at the end — also
after kill -9 of their qqmgr and QEMU (the next command sweeps them).

The tiny guest under TCG; a diskless VM keeps its snapshot as a state file, a VM with a
qcow2 disk as an internal snapshot (each copy gets a private copy of the disk).
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import Project, free_port, pid_alive, wait_until

pytestmark = pytest.mark.guest

GOLDEN = None
QCOW2_IMG = '[img.d]\nbuilder = "raw"\nformat = "qcow2"\nimg_size = "16M"\n\n'


@pytest.fixture(autouse=True)
def _golden(golden):
    """saved_diskless() takes its snapshot from the session's booted one (conftest.Golden)."""
    global GOLDEN
    GOLDEN = golden


def saved_diskless(project, tiny_vm_toml, port="auto"):
    """A diskless tiny VM with snapshot s1 of it booted (a state file; imported from the
    session's booted snapshot, booted and saved the first time); stopped."""
    project.write(tiny_vm_toml(port))
    GOLDEN.place(project, "tiny", "s1")


def copy_dirs(project):
    d = project.vm_dir("tiny")
    return sorted(p.name for p in d.iterdir() if p.name.startswith("copy.")) if d.is_dir() else []


def popen(project, *args):
    return subprocess.Popen([project.qqmgr, "-c", str(project.config), *map(str, args)], cwd=project.path,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def records(procs, timeout=600):
    out = []
    for p in procs:
        so, se = p.communicate(timeout=timeout)
        out.append((p.returncode, so, se))
    return out


def test_four_concurrent_copies_each_see_only_their_own_writes(project, tiny_vm_toml):
    saved_diskless(project, tiny_vm_toml)
    jobs = [popen(project, "run", "--json", "tiny", "--restore", "s1", "--rm", "--",
                  f"echo {i} > /tmp/mine-{i}; sleep 3; cat /tmp/mine-*") for i in range(4)]
    res = records(jobs)
    instances = set()
    for i, (rc, so, se) in enumerate(res):
        assert rc == 0, se
        out, _, last = so.rstrip("\n").rpartition("\n")
        rec = json.loads(last)
        assert out.split() == [str(i)], (i, so)   # its own file, no other copy's
        assert rec["ready"] and rec["status"] == 0 and rec["snapshot"] == "s1"
        instances.add(rec["instance"])
    # four places at once: the VM's own and three copies (the first free one each)
    assert len(instances) == 4 and all(n == "tiny" or n.startswith("tiny#") for n in instances), instances
    # all gone at the end: no copy dir, no QEMU
    assert copy_dirs(project) == []
    st = project.json("status", "tiny", check=True)
    assert st["running"] is False and st["copies"] == []


def test_copies_from_an_internal_qcow2_snapshot_write_their_own_disk(project, tiny_vm_toml):
    # mapped_ram = false: an internal qcow2 snapshot (a mapped one's copies share its disk layers)
    project.write(QCOW2_IMG + tiny_vm_toml("auto", mapped_ram=False,
                                           extra_args=["-drive file={{.img.d}},format=qcow2,if=virtio"]))
    project.run("img", "build", "d", check=True)
    project.run("start", "tiny", "--wait", check=True, timeout=400)
    project.run("ssh", "tiny", "printf saved | dd of=/dev/vda bs=512 conv=sync 2>/dev/null; sync", check=True)
    project.run("snapshot", "save", "tiny", "s1", check=True, timeout=120)
    # while the VM's own (not throwaway) run writes the disk, a copy of its internal snapshot is refused
    cp = project.run("run", "tiny", "--restore", "s1", "--rm", "--", "true", timeout=120)
    assert cp.returncode == 75 and "mapped snapshot" in cp.stderr and "stop it first" in cp.stderr, cp.stderr
    assert copy_dirs(project) == []
    project.run("stop", "tiny", "--force", check=True)
    # a throwaway start takes the VM's own place; two runs beside it are copies
    project.run("start", "tiny", "--restore", "s1", "--rm", check=True, timeout=200)
    read = "dd if=/dev/vda bs=5 count=1 2>/dev/null"
    jobs = [popen(project, "run", "tiny", "--restore", "s1", "--rm", "--",
                  f"{read}; echo; printf job{i} | dd of=/dev/vda bs=512 conv=sync 2>/dev/null; sync; "
                  f"sleep 2; dd if=/dev/vda bs=4 count=1 2>/dev/null")
            for i in range(2)]
    for i, (rc, so, se) in enumerate(records(jobs)):
        assert rc == 0, se
        assert so.split() == ["saved", f"job{i}"], so
    # the VM's own throwaway place saw none of it, and the snapshot is whole
    assert project.run("ssh", "tiny", read, check=True).stdout == "saved"
    project.run("stop", "tiny", "--force", check=True)
    assert copy_dirs(project) == []
    cp = project.run("run", "tiny", "--restore", "s1", "--rm", "--", read, check=True, timeout=300)
    assert cp.stdout == "saved"


def test_copies_are_listed_reached_by_name_and_stopped(project, tiny_vm_toml):
    fixed = free_port()
    saved_diskless(project, tiny_vm_toml, fixed)
    own = project.json("start", "tiny", "--restore", "s1", "--rm", check=True, timeout=200)
    assert own["instance"] == "tiny" and own["ssh_port"] == fixed   # the VM's own place, as before
    c1 = project.json("start", "tiny", "--restore", "s1", "--rm", check=True, timeout=200)
    c2 = project.json("start", "tiny", "--rm", check=True, timeout=200)   # a fresh boot, throwaway
    assert (c1["instance"], c2["instance"]) == ("tiny#1", "tiny#2")
    # a copy always takes a free port of its own, even when the VM has a fixed one
    assert len({fixed, c1["ssh_port"], c2["ssh_port"]}) == 3
    st = project.json("status", "tiny", check=True)
    assert st["snapshot"] == "s1"
    copies = {c["name"]: c for c in st["copies"]}
    assert set(copies) == {"tiny#1", "tiny#2"}
    assert copies["tiny#1"]["pid"] == c1["pid"] and copies["tiny#1"]["ssh_port"] == c1["ssh_port"]
    assert copies["tiny#1"]["snapshot"] == "s1" and copies["tiny#2"]["snapshot"] is None
    assert isinstance(copies["tiny#1"]["uptime"], int)
    text = project.run("status", "tiny", check=True).stdout
    assert "tiny#1 running" in text and f"ssh port {c1['ssh_port']}" in text and "from s1" in text
    listed = {r["name"]: r for r in project.json("list", check=True)}
    assert listed["tiny#1"]["pid"] == c1["pid"] and listed["tiny#1"]["snapshot"] == "s1"
    assert listed["tiny#2"]["ssh_port"] == c2["ssh_port"]
    assert "tiny#2" in project.run("list", check=True).stdout
    # reached by name: ssh, status, qmp, the serial log; each copy its own guest
    wait = project.run("wait", "tiny#2", timeout=400)
    assert wait.returncode == 0, wait.stderr
    project.run("ssh", "tiny#1", "echo one > /tmp/who", check=True, timeout=120)
    assert project.run("ssh", "tiny#1", "cat /tmp/who", check=True).stdout == "one\n"
    assert project.run("ssh", "tiny#2", "cat /tmp/who 2>/dev/null || echo none").stdout == "none\n"
    assert project.json("status", "tiny#2", check=True)["pid"] == c2["pid"]
    assert "running" in project.run("qmp", "tiny#1", "query-status", check=True).stdout
    assert project.run("serial", "tiny#2", check=True).stdout != ""
    # a name that is not a copy: one line, usage (2) or failure (1)
    for bad, code, words in (("tiny#7", 1, "no such copy of tiny"), ("tiny#0", 2, "VM#N"),
                             ("tiny#", 2, "VM#N"), ("nope#1", 2, 'no VM named "nope"')):
        cp = project.run("stop", bad)
        assert cp.returncode == code and words in cp.stderr and cp.stderr.count("\n") == 1, (bad, cp.stderr)
    cp = project.run("snapshot", "save", "tiny#1", "x")
    assert cp.returncode == 2 and "throwaway copy of tiny" in cp.stderr
    for args in (("start", "tiny#1"), ("run", "tiny#1", "--", "true"), ("rm", "tiny#1"), ("gdb", "tiny#1")):
        cp = project.run(*args)
        assert cp.returncode == 2 and "throwaway copy" in cp.stderr, (args, cp.stderr)
    # stop one copy: its dir goes with it
    out = project.json("stop", "tiny#1", check=True)
    assert out["was_running"] and "copy.1" not in copy_dirs(project)
    assert [c["name"] for c in project.json("status", "tiny", check=True)["copies"]] == ["tiny#2"]
    # rm refuses while a copy runs
    cp = project.run("rm", "tiny")
    assert cp.returncode == 1 and "tiny#2" in cp.stderr and "stop tiny --all" in cp.stderr
    # the VM and all its copies
    stopped = project.json("stop", "tiny", "--all", check=True)
    assert {d["name"] for d in stopped} == {"tiny", "tiny#2"} and all(d["was_running"] for d in stopped)
    assert copy_dirs(project) == []
    assert project.json("status", "tiny", check=True)["running"] is False


def test_stop_all_stops_every_copy_and_a_plain_start_runs_beside_copies(project, tiny_vm_toml):
    saved_diskless(project, tiny_vm_toml)
    project.run("start", "tiny", "--restore", "s1", "--rm", check=True, timeout=200)
    assert project.json("start", "tiny", "--restore", "s1", "--rm", check=True, timeout=200)["instance"] == "tiny#1"
    project.run("stop", "tiny", check=True)
    # the own place is free again: a plain start takes it while the copy runs on
    own = project.json("start", "tiny", check=True, timeout=200)
    assert own["instance"] == "tiny" and not own["already_running"]
    assert [c["name"] for c in project.json("status", "tiny", check=True)["copies"]] == ["tiny#1"]
    stopped = project.json("stop", "--all", check=True)
    assert {d["name"] for d in stopped} == {"tiny", "tiny#1"}
    assert copy_dirs(project) == []


def _runtime_links_to(path):
    """Symlinks in the private runtime dirs that point into path (QEMU's short socket dir)."""
    dirs = [Path(os.environ["XDG_RUNTIME_DIR"]) / "qqmgr"] if os.environ.get("XDG_RUNTIME_DIR") else []
    dirs.append(Path(f"/tmp/qqmgr-{os.getuid()}"))
    found = []
    for d in dirs:
        if d.is_dir():
            for e in d.iterdir():
                if e.is_symlink() and os.readlink(e).startswith(str(path)):
                    found.append(e)
    return found


def _running_copy(project):
    def one():
        cs = project.json("status", "tiny", check=True)["copies"]
        return cs[0] if cs and cs[0]["pid"] else None
    return wait_until(one, 200, 0.2, "a running copy")


@pytest.mark.parametrize("killed", ["qqmgr", "qqmgr+qemu", "qemu"])
def test_kill_9_leaves_nothing_of_a_copy_after_the_next_command(project, tiny_vm_toml, killed):
    # deep enough that QEMU's sockets go through a link in the runtime dir
    deep = project.path / ("d" * 60)
    deep.mkdir()
    project = Project(deep, project.qqmgr)
    saved_diskless(project, tiny_vm_toml)
    project.run("start", "tiny", "--restore", "s1", "--rm", check=True, timeout=200)   # the own place is taken
    job = popen(project, "run", "tiny", "--restore", "s1", "--rm", "--", "sleep 600")
    try:
        c = _running_copy(project)
        cdir = Path(c["state_dir"])
        assert cdir.parent == project.vm_dir("tiny") and cdir.name == "copy.1"
        links = _runtime_links_to(cdir)
        assert links, "no runtime link: the path is too short to test its removal"
        qemu = c["pid"]
        if "qqmgr" in killed:
            job.kill()
            job.wait(timeout=30)
        if "qemu" in killed:
            os.kill(qemu, signal.SIGKILL)
        # a run's QEMU dies with its qqmgr; a run whose QEMU died ends (the command failed)
        wait_until(lambda: not pid_alive(qemu), 30, 0.1, "the copy's QEMU to end")
        if killed == "qemu":
            assert job.wait(timeout=120) != 0
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    # the next command that looks at the VM sweeps it: no dir, no socket, no runtime link, no QEMU
    assert project.json("status", "tiny", check=True)["copies"] == []
    assert not cdir.exists() and copy_dirs(project) == []
    assert all(not os.path.lexists(l) for l in links)
    assert _runtime_links_to(cdir) == []
    assert not pid_alive(qemu)
    # the VM's own place ran on
    assert project.json("status", "tiny", check=True)["running"] is True
    project.run("stop", "tiny", "--force", check=True)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_during_a_copys_start_or_run_leaves_nothing_of_it(project, tiny_vm_toml, sig):
    saved_diskless(project, tiny_vm_toml)
    project.run("start", "tiny", "--restore", "s1", "--rm", check=True, timeout=200)
    # during the start: as soon as its dir exists
    job = popen(project, "run", "tiny", "--restore", "s1", "--rm", "--", "sleep 600")
    wait_until(lambda: copy_dirs(project) != [], 60, 0.005, "the copy's dir")
    job.send_signal(sig)
    _, err = job.communicate(timeout=120)
    assert job.returncode == 1 and "interrupted" in err, err
    assert copy_dirs(project) == []
    # during the command
    job = popen(project, "run", "tiny", "--restore", "s1", "--rm", "--", "sleep 600")
    c = _running_copy(project)
    wait_until(lambda: Path(c["state_dir"], "ssh.conf").exists(), 200, 0.2, "ssh to be tried")
    time.sleep(1)
    job.send_signal(sig)
    _, err = job.communicate(timeout=120)
    assert job.returncode == 1 and "interrupted" in err, err
    assert copy_dirs(project) == [] and not pid_alive(c["pid"])
    project.run("stop", "tiny", "--force", check=True)


def test_eight_copies_claimed_at_once_all_start_each_in_a_place_of_its_own(project, tiny_vm_toml):
    # every claim sweeps dead copies first: a sweeper must never pull a copy being made away
    saved_diskless(project, tiny_vm_toml)
    stop_sweeping = time.monotonic() + 3600
    def sweep():   # status sweeps the VM's dead copies, over and over meanwhile
        while time.monotonic() < stop_sweeping:
            subprocess.run([project.qqmgr, "-c", str(project.config), "status", "tiny"], capture_output=True)
    import threading
    sweepers = [threading.Thread(target=sweep) for _ in range(4)]
    for t in sweepers:
        t.start()
    try:
        jobs = [popen(project, "start", "--json", "tiny", "--restore", "s1", "--rm") for _ in range(8)]
        res = records(jobs)
    finally:
        stop_sweeping = 0
        for t in sweepers:
            t.join()
    assert all(rc == 0 for rc, _, _ in res), [se for rc, _, se in res if rc]
    names = sorted(json.loads(so)["instance"] for _, so, _ in res)
    assert names == sorted(["tiny"] + [f"tiny#{i}" for i in range(1, 8)])
    assert [c["name"] for c in project.json("status", "tiny", check=True)["copies"]] == \
        [f"tiny#{i}" for i in range(1, 8)]
    project.run("stop", "tiny", "--all", "--force", check=True)
    assert copy_dirs(project) == []


def test_a_sweeper_leaves_a_copy_being_claimed_alone_and_removes_a_dead_claim(project, tiny_vm_toml):
    project.write(tiny_vm_toml("auto"))
    vdir = project.vm_dir("tiny")
    vdir.mkdir(parents=True)
    # a claimer between making its lock file and taking it: a sweep must not take it first
    fresh = vdir / "copy.new.AbC123"
    fresh.mkdir()
    (fresh / "lock").write_text("")
    # a claimer killed there long ago: its lock is free, nothing runs
    old = vdir / "copy.new.XyZ789"
    old.mkdir()
    (old / "lock").write_text("")
    past = time.time() - 600
    os.utime(old, (past, past))
    dead = vdir / "copy.3"   # a copy whose qqmgr and QEMU were killed
    dead.mkdir()
    (dead / "lock").write_text("")
    (dead / "serial").write_text("boot\n")
    assert project.json("status", "tiny", check=True)["copies"] == []
    assert fresh.is_dir() and not old.exists() and not dead.exists()


def test_prune_names_and_removes_dead_copies_and_rm_force_stops_running_ones(project, tiny_vm_toml):
    saved_diskless(project, tiny_vm_toml)
    vdir = project.vm_dir("tiny")
    dead = vdir / "copy.5"   # its qqmgr and QEMU killed: a lock nobody holds, no QEMU
    dead.mkdir()
    (dead / "lock").write_text("")
    (dead / "serial").write_text("x" * 8192)
    doc = project.json("prune", "--dry-run", check=True)
    assert [(e["kind"], e["name"], e["path"], e["removed"]) for e in doc["entries"]] == \
        [("copy", "tiny", str(dead), False)] and dead.is_dir()
    doc = project.json("prune", check=True)
    assert [(e["kind"], e["removed"]) for e in doc["entries"]] == [("copy", True)] and not dead.exists()
    # rm --force stops the running copies first, then removes everything of the VM
    project.run("start", "tiny", "--restore", "s1", "--rm", check=True, timeout=200)
    c = project.json("start", "tiny", "--restore", "s1", "--rm", check=True, timeout=200)
    assert c["instance"] == "tiny#1"
    out = project.json("rm", "tiny", "--force", check=True)
    assert out["removed"] and out["was_running"]
    assert not vdir.exists() and not pid_alive(c["pid"])


def test_copies_of_a_mapped_snapshot_with_a_disk_run_beside_the_vms_own_run(project, tiny_vm_toml):
    # a mapped snapshot keeps its disk as a read-only layer: copies need no disk at rest,
    # so they run while the VM's own (not throwaway) run goes on writing its disk
    project.write(QCOW2_IMG + tiny_vm_toml("auto", extra_args=["-drive file={{.img.d}},format=qcow2,if=virtio"]))
    project.run("img", "build", "d", check=True)
    project.run("start", "tiny", "--wait", check=True, timeout=400)
    write = "printf {} | dd of=/dev/vda bs=512 conv=sync 2>/dev/null; sync"
    read = "dd if=/dev/vda bs=5 count=1 2>/dev/null"
    project.run("ssh", "tiny", write.format("saved"), check=True)
    save = project.json("snapshot", "save", "tiny", "s1", check=True, timeout=120)
    if save["kind"] != "mapped":
        pytest.skip(f"no mapped snapshot here: {save.get('not_mapped')}")
    project.run("ssh", "tiny", write.format("later"), check=True)
    jobs = [popen(project, "run", "--json", "tiny", "--restore", "s1", "--rm", "--",
                  f"{read}; echo; {write.format(f'job{i}')}; sleep 2; {read}") for i in range(2)]
    for i, (rc, so, se) in enumerate(records(jobs)):
        assert rc == 0, se
        out, _, last = so.rstrip("\n").rpartition("\n")
        assert out.replace("\0", "").split() == ["saved", f"job{i}"], so
        assert json.loads(last)["instance"].startswith("tiny#")
    assert project.run("ssh", "tiny", read, check=True).stdout == "later"
    assert copy_dirs(project) == []
    project.run("stop", "tiny", "--force", check=True)
