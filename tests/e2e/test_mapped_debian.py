"""A mapped snapshot of the Debian cloud guest (a cloud-init image built once for the
module, as test_img_cloud.py builds it): its disk is a layer of the snapshot, so a file
written before the save is there after a restore and one written after is not — in a
throwaway copy (a thin overlay over the layer) and in the VM's own run (the layer copied
back over its disk).
"""
import json

import pytest

from test_img_cloud import built, cloud_base  # noqa: F401  (module fixtures: one build here)

pytestmark = pytest.mark.guest


def run(b, *args, timeout=600):
    r = b.run(*args, timeout=timeout)
    assert r.returncode == 0, f"{args}: {r.stderr}{r.stdout}"
    return r


def test_debian_guest_restores_its_disk_as_saved(built):  # noqa: F811
    run(built, "start", "cloud", "--wait")
    try:
        run(built, "ssh", "cloud", "echo before > /root/before; sync")
        out = json.loads(run(built, "snapshot", "save", "cloud", "s1", "--json").stdout)
        assert out["kind"] == "mapped" and out["not_mapped"] is None
        run(built, "ssh", "cloud", "echo after > /root/after; rm /root/before; sync")
    finally:
        run(built, "stop", "cloud", "--force")
    snap = built.disk.parents[1] / "vm.cloud" / "snapshots" / "s1"
    meta = json.loads((snap / "meta.json").read_text())
    assert [(d["layer"], d["format"]) for d in meta["disks"]] == [("disk0.qcow2", "qcow2")]
    # a throwaway copy: the file of before the save, not the one of after
    r = run(built, "run", "cloud", "--restore", "s1", "--rm", "--", "ls /root; echo copy > /root/copy; sync")
    names = r.stdout.split()
    assert "before" in names and "after" not in names, r.stdout
    # the VM's own run: its disk is the layer again (the copy's write is not in it)
    run(built, "start", "cloud", "--restore", "s1", "--wait")
    try:
        names = run(built, "ssh", "cloud", "ls /root").stdout.split()
        assert "before" in names and "after" not in names and "copy" not in names, names
    finally:
        run(built, "stop", "cloud", "--force")
