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

from conftest import free_port, wait_until

pytestmark = pytest.mark.guest

QCOW2_IMG = '[img.d]\nbuilder = "raw"\nformat = "qcow2"\nimg_size = "16M"\n\n'


def saved_diskless(project, tiny_vm_toml, port="auto"):
    """A diskless tiny VM with snapshot s1 saved (a state file); stopped."""
    project.write(tiny_vm_toml(port))
    project.run("start", "tiny", "--wait", check=True, timeout=400)
    project.run("snapshot", "save", "tiny", "s1", check=True, timeout=120)
    project.run("stop", "tiny", "--force", check=True)


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
    project.write(QCOW2_IMG + tiny_vm_toml("auto", extra_args=["-drive file={{.img.d}},format=qcow2,if=virtio"]))
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
