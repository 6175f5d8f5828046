"""Whose directory (issue 16 §1): two configs in one directory never share a
state path, every dir qqmgr makes records what it is and which config made it,
and rm, img rm and prune touch only what is recorded as theirs.

Guestless VMs (QEMU with nothing to boot) stand for running VMs; raw images
are built with the real qemu-img. An older qqmgr's layout (state of config
NAME in .qqmgr/NAME/) is planted as it left it: dirs without records.
"""
import fcntl
import json
import os
import subprocess
from pathlib import Path

from conftest import pid_alive
from test_lifecycle import BARE


def vm(name, extra=""):
    return f'[vm.{name}]\ncmd = ["{BARE}"{extra}]\n'


IMG = '[img.disk]\nbuilder = "raw"\nimg_size = "8M"\n'


def record(d):
    return json.loads((d / "owner.json").read_text())


def test_prune_of_qqmgr_toml_leaves_a_running_vm_of_vm_toml_alone(project):
    # the report: state of -c DIR/vm.toml read as the dir of a VM named "toml"
    project.write(vm("a"))
    project.write(vm("g"), name="vm.toml")
    pid = project.json("start", "g", check=True)["pid"]
    try:
        gdir = project.vm_dir("g")
        project.use("qqmgr.toml")
        doc = project.json("prune", check=True)
        assert doc["entries"] == [], doc
        assert pid_alive(pid) and (gdir / "pid").exists()
        project.use("vm.toml")
        st = project.json("status", "g", check=True)
        assert st["pid"] == pid and st["state"] == "running", st
    finally:
        project.use("vm.toml")
        project.run("stop", "g", "--force")


def test_rm_of_vm_t_never_touches_the_image_of_config_vm_t(project):
    # the report: with a config named vm.t, `qqmgr rm t` deleted that config's image
    project.write(vm("x") + IMG, name="vm.t")
    project.run("img", "build", "disk", check=True)
    disk = Path(project.json("img", "list", check=True)[0]["path"])
    assert disk.exists()
    project.write(vm("t"), name="qqmgr.toml")
    project.run("start", "t", check=True)
    project.run("stop", "t", "--force", check=True)
    doc = project.json("rm", "t", check=True)
    assert doc["removed"] is True
    assert disk.exists()
    project.use("vm.t")
    assert project.json("img", "list", check=True)[0]["built"] is True


def test_every_dir_records_its_kind_name_and_config(project):
    project.write(vm("a") + IMG, name="lab.toml")
    project.run("img", "build", "disk", check=True)
    project.run("start", "a", check=True)
    project.run("stop", "a", "--force", check=True)
    cfg = str(project.config)
    assert record(project.state_dir) == {"kind": "config", "name": "lab.toml", "config": cfg}
    assert record(project.vm_dir("a")) == {"kind": "vm", "name": "a", "config": cfg}
    assert record(project.state_dir / "img.disk") == {"kind": "img", "name": "disk", "config": cfg}
    assert project.state_dir == project.path / ".qqmgr" / "config.lab.toml"
    for d in (project.state_dir, project.vm_dir("a"), project.state_dir / "img.disk"):
        assert stat_mode(d / "owner.json") == 0o600


def stat_mode(p):
    return os.stat(p).st_mode & 0o777


def test_rm_and_prune_leave_a_dir_another_config_records_alone(project):
    project.write(vm("a") + vm("b"))
    project.run("start", "b", check=True)
    project.run("stop", "b", "--force", check=True)
    d = project.vm_dir("b")
    other = {"kind": "vm", "name": "b", "config": "/elsewhere/other.toml"}
    (d / "owner.json").write_text(json.dumps(other))
    r = project.run("rm", "b", check=1)
    assert "left alone" in r.stderr and "/elsewhere/other.toml" in r.stderr, r.stderr
    assert d.exists()
    project.write(vm("a"))                                   # b left the config
    [e] = project.json("prune", check=True)["entries"]
    assert e["name"] == "b" and e["removed"] is False and "other.toml" in e["kept"], e
    assert d.exists()


def plant_old_layout(project, name):
    """What an older qqmgr left for config NAME: .qqmgr/NAME/{img.disk,vm.x}, no records."""
    old = project.path / ".qqmgr" / name
    (old / "img.disk").mkdir(parents=True)
    (old / "img.disk" / "disk.raw").write_bytes(b"precious" * 1024)
    (old / "img.disk" / "lock").write_text("")
    (old / "vm.x").mkdir()
    (old / "vm.x" / "lock").write_text("")
    (old / "vm.x" / "serial").write_text("old log\n")
    (old / "vm.x" / "snapshots").mkdir()
    disk = str(old / "img.disk" / "disk.raw")
    (old / "vm.x" / "snapshots" / "disks.json").write_text(
        json.dumps([{"device": "virtio0", "file": disk, "path": disk}]))
    return old


def test_an_older_layout_is_never_read_as_a_vm_and_moves_on_first_use(project):
    old = plant_old_layout(project, "vm.t")
    project.write(vm("t"))
    r = project.run("rm", "t", check=1)                      # .qqmgr/vm.t is config vm.t's, not VM t's
    assert "left alone" in r.stderr and "img.disk" in r.stderr, r.stderr
    assert (old / "img.disk" / "disk.raw").exists()
    project.write(vm("a"))                                   # t not in the config: prune keeps it too
    [e] = project.json("prune", check=True)["entries"]
    assert e["name"] == "t" and e["removed"] is False and "another config" in e["kept"], e
    # the first command with config vm.t moves its state to the new place
    project.write(vm("x") + IMG, name="vm.t")
    assert project.json("img", "list", check=True)[0]["built"] is True
    new = project.path / ".qqmgr" / "config.vm.t"
    assert (new / "img.disk" / "disk.raw").read_bytes() == b"precious" * 1024
    assert (new / "vm.x" / "serial").read_text() == "old log\n"
    # the snapshot records follow the disk they name
    [rec] = json.loads((new / "vm.x" / "snapshots" / "disks.json").read_text())
    assert rec["path"] == str(new / "img.disk" / "disk.raw") and rec["file"] == rec["path"], rec
    assert not old.exists()
    assert record(new)["kind"] == "config"


def test_an_older_layout_in_use_stays_where_it_is_until_idle(project):
    old = plant_old_layout(project, "vm.toml")
    # a build (its lock held) in the old dir: nothing moves
    with open(old / "img.disk" / "lock", "r+") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        project.write(vm("g") + IMG, name="vm.toml")
        pid = project.json("start", "g", check=True)["pid"]
    try:
        assert (old / "vm.g" / "pid").exists() and not (project.path / ".qqmgr" / "config.vm.toml").exists()
        # g runs in the old dir: still not moved, still found
        assert project.json("status", "g", check=True)["pid"] == pid
        assert not (project.path / ".qqmgr" / "config.vm.toml").exists()
        # and the qqmgr.toml beside it neither prunes nor removes it
        project.write(vm("a"), name="qqmgr.toml")
        [e] = project.json("prune", check=True)["entries"]
        assert e["name"] == "toml" and e["removed"] is False, e
        assert pid_alive(pid) and (old / "vm.g" / "pid").exists()
    finally:
        project.use("vm.toml")
        project.run("stop", "g", "--force")
    # idle now: the next command moves it
    project.use("vm.toml")
    rows = project.json("list", check=True)
    assert rows[0]["name"] == "g" and rows[0]["running"] is False
    assert (project.path / ".qqmgr" / "config.vm.toml" / "vm.g" / "serial").exists()
    assert not old.exists()


def test_commands_racing_on_first_use_all_find_the_moved_state(project):
    old = plant_old_layout(project, "vm.t")
    for i in range(20):
        (old / f"vm.v{i}").mkdir()
        (old / f"vm.v{i}" / "lock").write_text("")
    project.write(vm("x") + IMG, name="vm.t")
    procs = [subprocess.Popen([project.qqmgr, "-c", str(project.config), "show", "x", "--json"],
                              cwd=project.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(6)]
    new = project.path / ".qqmgr" / "config.vm.t"
    for p in procs:
        out, errout = p.communicate(timeout=60)
        assert p.returncode == 0, errout
        assert json.loads(out)["state_dir"] == str(new / "vm.x")
    assert not old.exists() and (new / "vm.v19" / "lock").exists()
