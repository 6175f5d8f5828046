"""A mapped snapshot of the Debian cloud guest (the cloud-init image test_img_cloud.py
builds, once per session: the `built` fixture of cloudimg.py): its disk is a layer of the snapshot, so a file
written before the save is there after a restore and one written after is not — in a
throwaway copy (a thin overlay over the layer) and in the VM's own run (the layer copied
back over its disk) — and with its clock, left 300 s behind at the save, set to the
host's by each restore.
"""
import json
import time

import pytest

pytestmark = pytest.mark.guest


def run(b, *args, timeout=600):
    r = b.run(*args, timeout=timeout)
    assert r.returncode == 0, f"{args}: {r.stderr}{r.stdout}"
    return r


def test_debian_guest_restores_its_disk_as_saved(built):
    run(built, "start", "cloud", "--wait")
    try:
        # the guest's clock 300 s behind at the save: as if saved five minutes ago
        run(built, "ssh", "cloud", "echo before > /root/before; sync; date -u -s @$(( $(date +%s) - 300 ))")
        out = json.loads(run(built, "snapshot", "save", "cloud", "s1", "--json").stdout)
        assert out["kind"] == "mapped" and out["not_mapped"] is None
        run(built, "ssh", "cloud", "echo after > /root/after; rm /root/before; sync")
    finally:
        run(built, "stop", "cloud", "--force")
    snap = built.disk.parents[1] / "vm.cloud" / "snapshots" / "s1"
    meta = json.loads((snap / "meta.json").read_text())
    assert [(d["layer"], d["format"]) for d in meta["disks"]] == [("disk0.qcow2", "qcow2")]
    # a throwaway copy: the file of before the save, not the one of after
    t0 = time.time()
    r = run(built, "run", "cloud", "--restore", "s1", "--rm", "--",
            "ls /root; echo copy > /root/copy; sync; echo clock $(date +%s.%N)")
    t1 = time.time()
    names = r.stdout.split()
    assert "before" in names and "after" not in names, r.stdout
    # its clock was set to the host's (GNU date: to the millisecond) before the command ran
    guest = float(r.stdout.split("clock ")[1].split()[0])
    assert t0 - 1 < guest < t1 + 1, (t0, guest, t1)
    # the VM's own run: its disk is the layer again (the copy's write is not in it)
    run(built, "start", "cloud", "--restore", "s1", "--wait")
    try:
        t0 = time.time()
        out = run(built, "ssh", "cloud", "ls /root; echo clock $(date +%s.%N)").stdout
        t1 = time.time()
        names = out.split()
        assert "before" in names and "after" not in names and "copy" not in names, names
        guest = float(out.split("clock ")[1].split()[0])
        assert t0 - 1 < guest < t1 + 1, (t0, guest, t1)
    finally:
        run(built, "stop", "cloud", "--force")
