"""Mapped snapshots (issue 18 §1) on real guests: the running VM's RAM in a tmpfs
file, a save that writes device state + a sparse RAM copy + disk layers, restores
that map the RAM (a throwaway copy: MAP_PRIVATE, thin qcow2 overlays; the VM's own
run: layers copied back), the fallbacks that keep the older kinds, and what a killed
save leaves.
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import wait_until

pytestmark = pytest.mark.guest

QCOW2_IMG = '[img.d]\nbuilder = "raw"\nformat = "qcow2"\nimg_size = "64M"\n\n'


def disk_vm(tiny_vm_toml, **kw):
    return tiny_vm_toml("auto", extra_args=["-drive file={{.img.d}},format=qcow2,if=virtio"], **kw)


def setup_disk(project, tiny_vm_toml, **kw):
    project.write(QCOW2_IMG + disk_vm(tiny_vm_toml, **kw))
    project.run("img", "build", "d", check=True)


def boot(project, vm="tiny"):
    project.run("start", vm, "--wait", check=True, timeout=400)


def ssh(project, cmd, vm="tiny", **kw):
    return project.run("ssh", vm, cmd, **kw)


def listed(project, vm="tiny"):
    return {s["name"]: s for s in project.json("snapshot", "list", vm, check=True)}


def qemu_pid(project, vm="tiny"):
    return int((project.vm_dir(vm) / "pid").read_text())


def ram_maps(pid):
    """The RAM backend's mappings of QEMU pid: [(path, shared?)] of files under
    /dev/shm/qqmgr-UID or a snapshot's ram."""
    out = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        f = line.split()
        if len(f) >= 6 and ("/dev/shm/qqmgr-" in f[5] or f[5].endswith("/ram")):
            out.append((" ".join(f[5:]), f[1][3] == "s"))
    return out


def test_a_running_vm_keeps_its_ram_in_an_unlinked_tmpfs_file(project, tiny_vm_toml):
    project.write(tiny_vm_toml("auto"))
    boot(project)
    maps = ram_maps(qemu_pid(project))
    assert maps and all(shared and path.endswith("(deleted)") and path.startswith("/dev/shm/qqmgr-")
                        for path, shared in maps), maps
    project.run("stop", "tiny", "--force", check=True)


def test_save_and_restore_mapped_own_run_and_throwaway(project, tiny_vm_toml):
    project.write(tiny_vm_toml("auto"))
    boot(project)
    ssh(project, "echo saved > /tmp/mark", check=True)
    out = project.json("snapshot", "save", "tiny", "s1", check=True)
    assert out["kind"] == "mapped" and out["not_mapped"] is None
    d = project.vm_dir("tiny") / "snapshots" / "s1"
    meta = json.loads((d / "meta.json").read_text())
    assert meta["kind"] == "mapped" and meta["vm"] == "tiny" and meta["ram_size"] == 256 << 20
    assert meta["disks"] == [] and any("-kernel" in a for a in meta["args"])
    assert {f["name"] for f in meta["files"]} == {"state", "ram"}
    assert os.stat(d / "ram").st_size == 256 << 20
    assert (d / "state").stat().st_size < 4 << 20          # device state only, no RAM pages
    s = listed(project)["s1"]
    assert s["kind"] == "mapped" and s["size"] == sum(os.stat(p).st_blocks * 512 for p in d.iterdir()) + \
        os.stat(d).st_blocks * 512
    # the guest runs on after the save, and a later change is not in the snapshot
    ssh(project, "echo later > /tmp/mark", check=True)
    project.run("snapshot", "restore", "tiny", "s1", check=True, timeout=120)
    assert ssh(project, "cat /tmp/mark", check=True).stdout.strip() == "saved"
    # the VM's own run maps a fresh tmpfs copy, shared: it saves again
    maps = ram_maps(qemu_pid(project))
    assert maps and all(shared and "/dev/shm/qqmgr-" in p for p, shared in maps), maps
    assert project.json("snapshot", "save", "tiny", "s2", check=True)["kind"] == "mapped"
    project.run("stop", "tiny", "--force", check=True)
    # a throwaway copy maps the snapshot's ram privately
    project.run("start", "tiny", "--restore", "s1", "--rm", "--wait", check=True, timeout=120)
    maps = ram_maps(qemu_pid(project))
    assert maps and all(p == str(d / "ram") and not shared for p, shared in maps), maps
    assert ssh(project, "cat /tmp/mark; echo copy > /tmp/mark", check=True).stdout.strip() == "saved"
    project.run("stop", "tiny", "--force", check=True)
    # the copy's writes stayed its own: the snapshot still has the saved guest
    r = project.run("run", "tiny", "--restore", "s1", "--rm", "--", "cat", "/tmp/mark", check=True, timeout=120)
    assert r.stdout.strip() == "saved"
    project.run("snapshot", "delete", "tiny", "s1", check=True)
    assert not d.exists() and set(listed(project)) == {"s2"}


DISK_WRITE = "printf {mark} | dd of=/dev/vda conv=notrunc 2>/dev/null && sync"
DISK_READ = "head -c 6 /dev/vda"


def test_disk_layers_keep_the_disk_as_saved_for_copies_and_the_own_run(project, tiny_vm_toml):
    setup_disk(project, tiny_vm_toml)
    boot(project)
    ssh(project, DISK_WRITE.format(mark="BEFORE"), check=True)
    project.run("snapshot", "save", "tiny", "s1", check=True)
    ssh(project, DISK_WRITE.format(mark="AFTER!"), check=True)
    d = project.vm_dir("tiny") / "snapshots" / "s1"
    meta = json.loads((d / "meta.json").read_text())
    assert [(x["layer"], x["format"]) for x in meta["disks"]] == [("disk0.qcow2", "qcow2")]
    assert meta["disks"][0]["file"].endswith("img.d/disk.qcow2")
    assert (d / "disk0.qcow2").stat().st_mode & 0o777 == 0o400
    project.run("stop", "tiny", "--force", check=True)
    # a throwaway copy reads the layer through its own thin overlay
    cp = project.run("run", "tiny", "--restore", "s1", "--rm", "--",
                     DISK_READ + "; " + DISK_WRITE.format(mark="COPY!!"), timeout=200)
    assert cp.returncode == 0 and cp.stdout == "BEFORE", cp.stderr
    assert not list(project.vm_dir("tiny").glob("throwaway.*"))
    disk = project.state_dir / "img.d" / "disk.qcow2"
    assert b"COPY!!" not in disk.read_bytes() and b"COPY!!" not in (d / "disk0.qcow2").read_bytes()
    # the VM's own run: the layer is copied back over its disk
    project.run("start", "tiny", "--restore", "s1", "--wait", check=True, timeout=200)
    assert ssh(project, DISK_READ, check=True).stdout == "BEFORE"
    project.run("stop", "tiny", "--force", check=True)
    assert b"AFTER!" not in disk.read_bytes()


def test_an_older_internal_qcow2_snapshot_still_restores(project, tiny_vm_toml):
    # saved while the VM could not map its RAM (as an older qqmgr saved every one)
    setup_disk(project, tiny_vm_toml, mapped_ram=False)
    boot(project)
    ssh(project, "echo old > /tmp/mark", check=True)
    assert project.json("snapshot", "save", "tiny", "old", check=True)["kind"] == "qcow2"
    project.run("stop", "tiny", "--force", check=True)
    project.write(QCOW2_IMG + disk_vm(tiny_vm_toml))
    # started from it, the VM now runs with mapped RAM and its next save is mapped
    project.run("start", "tiny", "--restore", "old", "--wait", check=True, timeout=200)
    assert ssh(project, "cat /tmp/mark", check=True).stdout.strip() == "old"
    ssh(project, "echo new > /tmp/mark", check=True)
    assert project.json("snapshot", "save", "tiny", "new", check=True)["kind"] == "mapped"
    kinds = {n: s["kind"] for n, s in listed(project).items()}
    assert kinds == {"old": "qcow2", "new": "mapped"}
    # in place, both ways
    project.run("snapshot", "restore", "tiny", "old", check=True, timeout=200)
    assert ssh(project, "cat /tmp/mark", check=True).stdout.strip() == "old"
    project.run("snapshot", "restore", "tiny", "new", check=True, timeout=200)
    assert ssh(project, "cat /tmp/mark", check=True).stdout.strip() == "new"
    project.run("stop", "tiny", "--force", check=True)


@pytest.mark.parametrize("how", ["balloon", "opt-out"])
def test_a_vm_that_cannot_map_its_ram_says_why_once_and_saves_the_older_way(project, tiny_vm_toml, how):
    if how == "balloon":
        project.write(tiny_vm_toml("auto", extra_args=["-device virtio-balloon-pci"]))
        why = "virtio-balloon-pci"
    else:
        project.write(tiny_vm_toml("auto", mapped_ram=False))
        why = "mapped_ram = false"
    show = project.run("show", "tiny", check=True)
    assert "memory-backend" not in show.stdout
    assert show.stderr.count("not mapped") == 1 and why in show.stderr, show.stderr
    assert project.json("show", "tiny", check=True)["not_mapped"].find(why) >= 0
    boot(project)
    assert not ram_maps(qemu_pid(project))
    cp = project.run("snapshot", "save", "tiny", "s1", check=True)
    notes = [l for l in cp.stderr.splitlines() if "not a mapped one" in l]
    assert len(notes) == 1 and why in notes[0] and "state-file" in notes[0], cp.stderr
    out = project.json("snapshot", "save", "tiny", "s2", check=True)
    assert out["kind"] == "state-file" and why in out["not_mapped"]
    assert {s["kind"] for s in listed(project).values()} == {"state-file"}
    project.run("stop", "tiny", "--force", check=True)


def test_snapshot_list_shows_kind_and_disk_usage(project, tiny_vm_toml):
    project.write(tiny_vm_toml("auto", mem=512))
    boot(project)
    # 64 MiB the guest wrote: the RAM copy holds them, the rest of its 512 MiB is holes
    # the guest's uptime just before the save: its virtual clock at the save is a little
    # more (the firmware ran before the kernel; the save came after this read)
    up = float(ssh(project, "dd if=/dev/urandom of=/tmp/fill bs=1M count=64 2>/dev/null; cut -d' ' -f1 /proc/uptime",
                   check=True).stdout)
    project.run("snapshot", "save", "tiny", "s1", check=True)
    project.run("stop", "tiny", "--force", check=True)
    s = listed(project)["s1"]
    assert s["kind"] == "mapped" and (64 << 20) < s["size"] < (400 << 20), s
    assert up <= s["vm_clock"] <= up + 30, (up, s)
    lines = project.run("snapshot", "list", "tiny", check=True).stdout.splitlines()
    assert lines[0].split() == ["NAME", "DATE", "KIND", "SIZE", "VM", "CLOCK"]
    cells = lines[1].split()
    assert cells[2] == "mapped" and cells[4] == "MiB" and 64 < float(cells[3]) < 400, lines
    assert cells[5:] == [f"{s['vm_clock']:.3f}", "s"], lines


def test_mapped_restore_sets_the_guest_clock(project, tiny_vm_toml):
    back = 120   # stands for a snapshot saved two minutes ago (bench: a real 60 s wait)
    project.write(tiny_vm_toml("auto"))
    boot(project)
    ssh(project, f"date -u -s @$(( $(date +%s) - {back} )) >/dev/null", check=True)
    project.run("snapshot", "save", "tiny", "s1", check=True)
    project.run("stop", "tiny", "--force", check=True)
    cp = project.run("-d", "start", "tiny", "--restore", "s1", "--rm", "--wait", check=True, timeout=200)
    said = [l for l in cp.stderr.splitlines() if "guest clock set through ssh" in l]
    assert said, cp.stderr
    # measured in the same command that set it (through the master the wait brought up)
    behind = float(said[0].split("it was ")[1].split(" s behind")[0])
    assert back - 2 <= behind < back + 60, said
    # the restored guest's sshd already listened: the login that set the clock made it
    # ready, with no banner probe or `true` login of the wait
    lines = cp.stderr.splitlines()
    assert any("one ssh login to set the clock" in l and l.endswith("logged in") for l in lines), cp.stderr
    assert not any(": probe " in l for l in lines), cp.stderr
    before = time.time()
    guest = int(ssh(project, "date +%s", check=True).stdout.strip())
    assert before - 2 < guest <= time.time() + 1, (before, guest)
    project.run("stop", "tiny", "--force", check=True)


def logging_in(project):
    """Is the ssh that sets a restored guest's clock (its command says qqclock) running
    for a VM of project (its ssh.conf in the project's state dir)?"""
    for d in Path("/proc").iterdir():
        try:
            cmd = (d / "cmdline").read_bytes() if d.name.isdigit() else b""
        except OSError:
            continue
        if b"qqclock" in cmd and str(project.state_dir).encode() in cmd:
            return True
    return False


def test_a_snapshot_saved_before_sshd_listened_restores_to_a_ready_guest(project, tiny_vm_toml):
    project.write(tiny_vm_toml("auto"))
    project.run("start", "tiny", check=True)   # saved at once: the guest is still booting
    project.run("snapshot", "save", "tiny", "early", check=True)
    project.run("stop", "tiny", "--force", check=True)
    cp = project.run("-d", "start", "tiny", "--restore", "early", "--rm", "--wait", "--timeout", "300",
                     timeout=400)
    assert cp.returncode == 0, cp.stderr
    assert ssh(project, "cat /proc/uptime", check=True).stdout.strip()
    project.run("stop", "tiny", "--all", "--force", check=True)
    # the three signals alike during that first login (it waits for the booting guest's
    # sshd): exit 1, the VM left running and the way to stop it named
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        err = interrupted(project, ["start", "tiny", "--restore", "early", "--wait", "--timeout", "300"],
                          lambda: logging_in(project), "the ssh login that sets the clock", sig)
        assert "interrupted while waiting for the ssh login; the VM keeps running" in err, (sig, err)
        assert project.json("status", "tiny", check=True)["state"] == "running", sig
        project.run("stop", "tiny", "--force", check=True)


# ------------------------------------------------------------------ interrupted

def popen(project, *args):
    return subprocess.Popen([project.qqmgr, "-c", str(project.config), *args], cwd=project.path,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def interrupted(project, args, when, what, sig):
    """Run qqmgr with args, send it sig as soon as when() holds; assert how it ended:
    killed by SIGKILL, or exit 1 saying "interrupted" for another signal. Its stderr."""
    p = popen(project, *args)
    try:
        wait_until(when, 120, 0.001, what)
        p.send_signal(sig)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    if sig == signal.SIGKILL:
        assert p.returncode == -signal.SIGKILL
    else:
        assert p.returncode == 1 and "interrupted" in err, (p.returncode, err)
    return err


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=lambda s: s.name)
@pytest.mark.parametrize("stage", ["state", "ram", "disk0.qcow2"])
def test_a_killed_mapped_save_leaves_the_previous_snapshot_and_a_running_vm(project, tiny_vm_toml, stage, sig):
    setup_disk(project, tiny_vm_toml)
    boot(project)
    ssh(project, "echo one > /tmp/mark", check=True)
    project.run("snapshot", "save", "tiny", "s1", check=True)
    # more to copy: the stages last long enough to be seen
    ssh(project, "echo two > /tmp/mark; dd if=/dev/urandom of=/tmp/fill bs=1M count=80 2>/dev/null; "
                 "dd if=/dev/urandom of=/dev/vda bs=1M count=48 2>/dev/null; sync", check=True, timeout=120)
    tmp = project.vm_dir("tiny") / "snapshots" / ".s1.tmp"
    interrupted(project, ["snapshot", "save", "tiny", "s1", "--force"], lambda: (tmp / stage).exists(),
                f"the save to reach {stage}", sig)
    # the next command repairs what a killed one left: the guest runs, no partial snapshot
    assert project.json("status", "tiny", check=True)["state"] == "running"
    assert not tmp.exists() and not (project.vm_dir("tiny") / "inflight.json").exists()
    assert ssh(project, "cat /tmp/mark", check=True).stdout.strip() == "two"
    # the previous s1 is intact
    assert list(listed(project)) == ["s1"]
    project.run("snapshot", "restore", "tiny", "s1", check=True, timeout=200)
    assert ssh(project, "cat /tmp/mark", check=True).stdout.strip() == "one"
    project.run("stop", "tiny", "--force", check=True)


def test_a_killed_mapped_restore_leaves_no_qemu_waiting_for_its_state(project, tiny_vm_toml):
    project.write(tiny_vm_toml("auto"))
    boot(project)
    ssh(project, "echo saved > /tmp/mark", check=True)
    project.run("snapshot", "save", "tiny", "s1", check=True)
    project.run("stop", "tiny", "--force", check=True)
    pidfile = project.vm_dir("tiny") / "pid"
    p = popen(project, "start", "tiny", "--restore", "s1", "--rm")
    try:
        wait_until(pidfile.exists, 120, 0.001, "QEMU to start")
        p.kill()
        p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    # the next command finds QEMU either loading (it lets it run) or waiting for a
    # state nobody asks for any more (it stops it): never stuck in inmigrate
    st = project.json("status", "tiny", check=True)["state"]
    assert st in ("running", "stopped"), st
    assert not (project.vm_dir("tiny") / "inflight.json").exists()
    if st == "stopped":
        project.run("start", "tiny", "--restore", "s1", "--rm", "--wait", check=True, timeout=200)
    assert ssh(project, "cat /tmp/mark", check=True).stdout.strip() == "saved"
    project.run("stop", "tiny", "--force", check=True)


def test_an_own_run_restore_interrupted_while_it_copies_the_disk_layers_leaves_the_disks_as_they_were(
        project, tiny_vm_toml):
    setup_disk(project, tiny_vm_toml)
    boot(project)
    # a layer big enough that its copy back over the disk is seen
    ssh(project, DISK_WRITE.format(mark="BEFORE") +
        "; dd if=/dev/urandom of=/dev/vda bs=1M count=48 seek=1 2>/dev/null; sync", check=True, timeout=120)
    project.run("snapshot", "save", "tiny", "s1", check=True)
    ssh(project, DISK_WRITE.format(mark="AFTER!"), check=True)
    project.run("stop", "tiny", "--force", check=True)
    disk = project.state_dir / "img.d" / "disk.qcow2"
    tmp = disk.with_name(disk.name + ".restore.tmp")
    inflight = project.vm_dir("tiny") / "inflight.json"
    for sig in (signal.SIGTERM, signal.SIGKILL):
        interrupted(project, ["start", "tiny", "--restore", "s1"], tmp.exists,
                    "the restore to copy the disk's layer", sig)
        # the next command finds no partial copy, no record, the VM stopped, its disk as it was
        assert project.json("status", "tiny", check=True)["state"] == "stopped"
        assert not tmp.exists() and not inflight.exists()
        assert not list(disk.parent.glob("*.restore.tmp"))
        assert b"AFTER!" in disk.read_bytes()
    # and the snapshot restores whole afterwards
    project.run("start", "tiny", "--restore", "s1", "--wait", check=True, timeout=200)
    assert ssh(project, DISK_READ, check=True).stdout == "BEFORE"
    project.run("stop", "tiny", "--force", check=True)
