"""Whose snapshot (issue 16 §1): a snapshot belongs to the VM that saved it.

Two VMs use one qcow2 image ({{.img.q}}): internal snapshots of both end up in
one file. list, delete, save and rm of one VM act on its own only; a disk that
another running VM uses is refused. Guestless VMs (QEMU with nothing to boot)
save real internal snapshots into a real qcow2 image (qemu-img reads it back).
Also: `snapshot delete` never follows a symlinked snapshots/ dir.
"""
import json
import subprocess

from test_lifecycle import BARE

QCOW2 = '[img.q]\nbuilder = "raw"\nformat = "qcow2"\nimg_size = "16M"\n'


def vm(name, drive_opts=""):
    # internal qcow2 snapshots are what two VMs can share a file of: these VMs save that kind
    return (f'[vm.{name}]\ncmd = ["{BARE}", '
            f'"-drive file={{{{.img.q}}}},format=qcow2,if=virtio{drive_opts}"]\nmapped_ram = false\n')


def in_image(path):
    out = subprocess.run(["qemu-img", "info", "--output=json", "-U", str(path)], capture_output=True,
                         text=True, check=True).stdout
    return sorted(s["name"] for s in json.loads(out).get("snapshots", []))


def names(project, v):
    return [s["name"] for s in project.json("snapshot", "list", v, check=True)]


def saved(project, v, *snaps):
    project.run("start", v, check=True)
    try:
        for s in snaps:
            project.run("snapshot", "save", v, s, check=True)
    finally:
        project.run("stop", v, "--force", check=True)


def shared_disk(project):
    project.write(vm("gd") + vm("t") + QCOW2)
    project.run("img", "build", "q", check=True)
    disk = project.state_dir / "img.q" / "disk.qcow2"
    saved(project, "t", "keep", "t2")
    saved(project, "gd", "g1")
    assert in_image(disk) == ["g1", "keep", "t2"]
    return disk


def test_list_and_delete_of_one_vm_never_see_the_other_vms_snapshots(project):
    disk = shared_disk(project)
    assert names(project, "gd") == ["g1"]
    assert names(project, "t") == ["keep", "t2"]
    r = project.run("snapshot", "delete", "gd", "keep", check=1)
    assert "VM t" in r.stderr and "no snapshot 'keep'" in r.stderr, r.stderr
    assert in_image(disk) == ["g1", "keep", "t2"]
    # running: the same
    project.run("start", "gd", check=True)
    try:
        assert names(project, "gd") == ["g1"]
        r = project.run("snapshot", "delete", "gd", "t2", check=1)
        assert "VM t" in r.stderr, r.stderr
        # saving under another VM's name would replace theirs: refused
        r = project.run("snapshot", "save", "gd", "keep", "--force", check=1)
        assert "VM t" in r.stderr and "another name" in r.stderr, r.stderr
        assert in_image(disk) == ["g1", "keep", "t2"]
        project.run("snapshot", "delete", "gd", "g1", check=True)
        assert in_image(disk) == ["keep", "t2"]
        project.run("snapshot", "save", "gd", "g2", check=True)
    finally:
        project.run("stop", "gd", "--force", check=True)
    project.run("snapshot", "delete", "gd", "g2", check=True)   # stopped: by its id
    assert in_image(disk) == ["keep", "t2"]
    assert names(project, "t") == ["keep", "t2"]


def test_rm_deletes_only_the_vms_own_snapshots_and_names_the_others(project):
    disk = shared_disk(project)
    doc = project.json("rm", "gd", check=True)
    assert doc["snapshots"] == 1, doc
    kept = sorted((k["name"], k["owner"]) for k in doc["kept_snapshots"])
    assert kept == [("keep", "VM t"), ("t2", "VM t")], doc
    assert in_image(disk) == ["keep", "t2"]
    assert names(project, "t") == ["keep", "t2"]
    # and in text
    saved(project, "gd", "g3")
    out = project.run("rm", "gd", check=True).stdout
    assert "kept snapshot keep" in out and "VM t" in out, out
    assert in_image(disk) == ["keep", "t2"]


def test_a_disk_shared_by_running_vms_is_refused_for_snapshots(project):
    project.write(vm("gd", ",file.locking=off") + vm("t", ",file.locking=off") + QCOW2)
    project.run("img", "build", "q", check=True)
    disk = project.state_dir / "img.q" / "disk.qcow2"
    project.run("start", "t", "gd", check=True)
    try:
        for v, other in (("gd", "t"), ("t", "gd")):
            r = project.run("snapshot", "save", v, "x", check=1)
            assert f"running VM {other}" in r.stderr and f"stop {other}" in r.stderr, r.stderr
        assert in_image(disk) == []
    finally:
        project.run("stop", "t", "gd", "--force", check=True)


def test_snapshot_delete_never_follows_a_symlinked_snapshots_dir(project, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.state").write_bytes(b"precious")
    (outside / "x.json").write_text('{"date": 1}')
    project.write(f'[vm.a]\ncmd = ["{BARE}"]\n')
    project.run("start", "a", check=True)
    project.run("stop", "a", "--force", check=True)
    snaps = project.vm_dir("a") / "snapshots"
    snaps.symlink_to(outside)
    r = project.run("snapshot", "delete", "a", "x", check=1)
    assert "no snapshot 'x'" in r.stderr, r.stderr
    assert (outside / "x.state").read_bytes() == b"precious" and (outside / "x.json").exists()
    assert names(project, "a") == []
    # rm removes the symlink as a name, never what it points at
    project.run("rm", "a", check=True)
    assert (outside / "x.state").exists() and not snaps.exists()


def test_unrecorded_snapshots_are_the_vms_alone_on_its_own_disk_and_nobodys_on_a_shared_one(project):
    # what an older qqmgr left: snapshots without owned.json records
    disk = shared_disk(project)
    for v in ("gd", "t"):
        (project.vm_dir(v) / "snapshots" / "owned.json").unlink()
    assert names(project, "gd") == [] and names(project, "t") == []
    doc = project.json("rm", "gd", check=True)
    assert doc["snapshots"] == 0 and len(doc["kept_snapshots"]) == 3, doc
    assert all("older qqmgr" in k["owner"] for k in doc["kept_snapshots"]), doc
    assert in_image(disk) == ["g1", "keep", "t2"]
    # gd is gone: t alone has the disk on record now, so they are t's
    assert names(project, "t") == ["keep", "t2", "g1"]


def test_img_rm_leaves_an_image_dir_another_config_records_alone(project):
    project.write(vm("gd") + QCOW2)
    project.run("img", "build", "q", check=True)
    d = project.state_dir / "img.q"
    (d / "owner.json").write_text(json.dumps({"kind": "img", "name": "q", "config": "/elsewhere/x.toml"}))
    r = project.run("img", "rm", "q", check=1)
    assert "left alone" in r.stderr and "/elsewhere/x.toml" in r.stderr, r.stderr
    assert (d / "disk.qcow2").exists()


def test_snapshot_save_never_writes_through_a_symlinked_snapshots_dir(project, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    project.write(f'[vm.a]\ncmd = ["{BARE}"]\n')
    project.run("start", "a", check=True)
    try:
        (project.vm_dir("a") / "snapshots").symlink_to(outside)
        r = project.run("snapshot", "save", "a", "s", check=1)
        assert "symlink" in r.stderr, r.stderr
        assert list(outside.iterdir()) == []
        assert project.json("status", "a", check=True)["state"] == "running"
    finally:
        project.run("stop", "a", "--force", check=True)


def test_snapshot_delete_never_reads_disk_records_through_a_symlinked_snapshots_dir(project, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    img = outside / "precious.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "16M"], check=True)
    subprocess.run(["qemu-img", "snapshot", "-c", "x", str(img)], check=True)
    (outside / "disks.json").write_text(json.dumps([{"device": "virtio0", "file": str(img), "path": str(img)}]))
    project.write(f'[vm.a]\ncmd = ["{BARE}"]\n')
    project.run("start", "a", check=True)
    project.run("stop", "a", "--force", check=True)
    (project.vm_dir("a") / "snapshots").symlink_to(outside)
    r = project.run("snapshot", "delete", "a", "x", check=1)
    assert "no snapshot 'x'" in r.stderr, r.stderr
    assert in_image(img) == ["x"]
