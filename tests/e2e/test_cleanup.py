"""Cleanup: `rm VM`, `img rm IMAGE`, `prune` (and `prune --cache`).

Guestless VMs (QEMU with nothing to boot) stand for running VMs; raw images are
built with the real qemu-img. Nothing outside the state dir (or the cache dir)
is ever removed; a running VM's files never are.
"""

import os
import time

from conftest import pid_alive
from test_lifecycle import BARE


def vm(name, extra=""):
    return f'[vm.{name}]\ncmd = ["{BARE}"{extra}]\n'


IMG = '[img.disk]\nbuilder = "raw"\nimg_size = "16M"\n'
USES_DISK = ', "-drive file={{.img.disk}},format=raw,if=virtio"'


def test_rm_of_a_stopped_vm_removes_its_dir_and_list_still_shows_it(project):
    project.write(vm("a") + vm("b"))
    project.run("start", "a", "b", check=True)
    project.run("stop", "a", "b", "--force", check=True)
    d = project.vm_dir("a")
    assert (d / "qemu-stderr.log").exists() and (d / "argv.json").exists()
    (d / "known_hosts").write_text("[127.0.0.1]:2222 ssh-ed25519 AAAA\n")
    (d / "snapshots").mkdir()
    (d / "snapshots" / "s1.state").write_bytes(b"x" * 8192)
    doc = project.json("rm", "a", check=True)
    assert doc["name"] == "a" and doc["removed"] is True and doc["was_running"] is False
    assert doc["bytes"] >= 8192 and doc["path"] == str(d)
    assert not d.exists()
    assert project.vm_dir("b").exists()                  # only the VM named
    rows = {r["name"]: r for r in project.json("list", check=True)}
    assert set(rows) == {"a", "b"} and rows["a"]["running"] is False
    # again: nothing left to remove, still success
    r = project.run("rm", "a", check=True)
    assert "no state to remove" in r.stdout
    # it starts again from nothing
    project.run("start", "a", check=True)
    project.run("stop", "a", "--force", check=True)


def test_rm_of_a_running_vm_refuses_and_force_stops_then_removes(project):
    project.write(vm("a"))
    pid = project.json("start", "a", check=True)["pid"]
    try:
        r = project.run("rm", "a", check=1)
        assert "running" in r.stderr and "--force" in r.stderr and "stop a" in r.stderr, r.stderr
        assert pid_alive(pid) and project.vm_dir("a").exists()
        doc = project.json("rm", "a", "--force", check=True)
        assert doc["was_running"] is True and doc["removed"] is True
        assert not pid_alive(pid)
        assert not project.vm_dir("a").exists()
    finally:
        project.run("stop", "a", "--force")


def test_rm_all_removes_every_vms_state(project):
    project.write(vm("a") + vm("b"))
    project.run("start", "a", "b", check=True)
    project.run("stop", "--all", "--force", check=True)
    docs = project.json("rm", "--all", check=True)
    assert [d["name"] for d in docs] == ["a", "b"] and all(d["removed"] for d in docs)
    assert not project.vm_dir("a").exists() and not project.vm_dir("b").exists()


def test_rm_unknown_vm_is_a_usage_error(project):
    project.write(vm("a"))
    r = project.run("rm", "nope", check=2)
    assert "nope" in r.stderr


def test_rm_never_follows_a_symlink_out_of_the_state_dir(project, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep me")
    project.write(vm("a"))
    project.run("start", "a", check=True)
    project.run("stop", "a", "--force", check=True)
    os.symlink(outside, project.vm_dir("a") / "link")
    os.symlink(outside / "precious", project.vm_dir("a") / "filelink")
    project.run("rm", "a", check=True)
    assert not project.vm_dir("a").exists()
    assert (outside / "precious").read_text() == "keep me"


def test_prune_removes_only_dirs_of_names_no_longer_in_the_config(project):
    project.write(vm("keep") + vm("gone") + IMG + '[img.old]\nbuilder = "raw"\nimg_size = "8M"\n')
    project.run("img", "build", "disk", check=True)
    project.run("img", "build", "old", check=True)
    project.run("start", "keep", "gone", check=True)
    project.run("stop", "--all", "--force", check=True)
    project.write(vm("keep") + IMG)                        # gone and old left the config
    sd = project.state_dir
    (sd / "unrelated").mkdir()
    # dry run: lists with sizes, removes nothing
    doc = project.json("prune", "--dry-run", check=True)
    assert doc["dry_run"] is True
    got = {(e["kind"], e["name"]): e for e in doc["entries"]}
    assert set(got) == {("vm", "gone"), ("img", "old")}
    assert not any(e["removed"] for e in doc["entries"])
    assert got[("img", "old")]["bytes"] > 0 and doc["bytes"] >= got[("img", "old")]["bytes"]
    assert (sd / "vm.gone").exists() and (sd / "img.old").exists()
    text = project.run("prune", "--dry-run", check=True).stdout
    assert "would remove" in text and "vm.gone" in text and "img.old" in text and "iB" in text
    # the real thing
    doc = project.json("prune", check=True)
    assert {(e["kind"], e["name"]) for e in doc["entries"] if e["removed"]} == {("vm", "gone"), ("img", "old")}
    assert not (sd / "vm.gone").exists() and not (sd / "img.old").exists()
    assert (sd / "vm.keep").exists() and (sd / "img.disk" / "disk.raw").exists() and (sd / "unrelated").exists()
    assert project.json("prune", check=True)["entries"] == []


def test_prune_keeps_a_running_vm_no_longer_in_the_config(project):
    project.write(vm("a") + vm("b"))
    pid = project.json("start", "b", check=True)["pid"]
    try:
        project.write(vm("a"))
        doc = project.json("prune", check=True)
        [e] = doc["entries"]
        assert e["name"] == "b" and e["removed"] is False and "running" in e["kept"]
        assert pid_alive(pid) and (project.vm_dir("b") / "pid").exists()
    finally:
        project.write(vm("a") + vm("b"))
        project.run("stop", "b", "--force")


def _cache_file(cache, hexchar, size, age_days):
    h = hexchar * 64
    p = cache / h
    p.write_bytes(b"\0" * size)
    (cache / f"{h}.ok").write_text("durable\n")
    t = time.time() - age_days * 86400
    os.utime(p, (t, t))
    return p


def test_prune_cache_removes_only_old_unused_files_and_never_a_locked_one(project, tmp_path):
    import fcntl
    project.write(vm("a"))
    cache = tmp_path / "xdgcache" / "qqmgr" / "sha256"
    cache.mkdir(parents=True)
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdgcache")}
    old = _cache_file(cache, "a", 4096, 40)
    fresh = _cache_file(cache, "b", 4096, 2)
    busy = _cache_file(cache, "c", 4096, 90)
    other = cache / "README"
    other.write_text("not ours")
    lock = open(cache / ("c" * 64 + ".lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)            # a download in progress
    try:
        # without --cache the cache is not looked at
        assert project.json("prune", env=env, check=True)["entries"] == []
        doc = project.json("prune", "--cache", "--dry-run", env=env, check=True)
        got = {e["name"][0]: e for e in doc["entries"]}
        assert set(got) == {"a", "c"}
        assert got["a"]["removed"] is False and got["a"]["kept"] is None and got["a"]["bytes"] >= 4096
        assert "download" in got["c"]["kept"]
        assert old.exists()
        doc = project.json("prune", "--cache", env=env, check=True)
        got = {e["name"][0]: e for e in doc["entries"]}
        assert got["a"]["removed"] is True and got["c"]["removed"] is False
        assert not old.exists() and not (cache / ("a" * 64 + ".ok")).exists()
        assert fresh.exists() and busy.exists() and other.exists()
        # --days 1 takes the 2-day-old one too
        project.run("prune", "--cache", "--days", "1", env=env, check=True)
        assert not fresh.exists() and busy.exists()
    finally:
        lock.close()


def test_img_rm_refused_while_a_running_vm_uses_it(project):
    project.write(vm("a", USES_DISK) + IMG)
    project.run("img", "build", "disk", check=True)
    idir = project.state_dir / "img.disk"
    project.run("start", "a", check=True)
    try:
        r = project.run("img", "rm", "disk", check=1)
        assert "VM a is running" in r.stderr, r.stderr
        assert (idir / "disk.raw").exists()
    finally:
        project.run("stop", "a", "--force", check=True)
    doc = project.json("img", "rm", "disk", check=True)
    assert doc["removed"] is True and doc["bytes"] >= 0
    assert not idir.exists()
    assert project.json("img", "list", check=True)[0]["built"] is False
    r = project.run("img", "rm", "disk", check=True)
    assert "not built" in r.stdout
    assert project.run("img", "rm", "nope", check=2).returncode == 2


QCOW2 = '[img.q]\nbuilder = "raw"\nformat = "qcow2"\nimg_size = "16M"\n'
USES_Q = ', "-drive file={{.img.q}},format=qcow2,if=virtio"'
# these tests are about internal qcow2 snapshots in an image: the VM saves that kind
INTERNAL = 'mapped_ram = false\n'


def _image_snapshots(path):
    import json
    import subprocess
    out = subprocess.run(["qemu-img", "info", "--output=json", "-U", str(path)], capture_output=True,
                         text=True, check=True).stdout
    return [s["name"] for s in json.loads(out).get("snapshots", [])]


def test_rm_deletes_the_vms_snapshots_from_its_disk_and_img_rm_needs_force_for_snapshots(project):
    project.write(vm("a", USES_Q) + INTERNAL + QCOW2)
    project.run("img", "build", "q", check=True)
    disk = project.state_dir / "img.q" / "disk.qcow2"
    project.run("start", "a", check=True)
    try:
        project.run("snapshot", "save", "a", "s1", check=True)
    finally:
        project.run("stop", "a", "--force", check=True)
    assert _image_snapshots(disk) == ["s1"]
    # the image holds a snapshot: img rm refuses without --force, removes nothing
    r = project.run("img", "rm", "q", check=1)
    assert "s1" in r.stderr and "--force" in r.stderr, r.stderr
    assert disk.exists()
    # rm of the VM deletes its snapshot from the disk it lives in, the disk stays
    doc = project.json("rm", "a", check=True)
    assert doc["removed"] is True and doc["snapshots"] == 1
    assert disk.exists() and _image_snapshots(disk) == []
    assert not project.vm_dir("a").exists()
    # now img rm goes through without --force
    assert project.json("img", "rm", "q", check=True)["removed"] is True
    assert not disk.parent.exists()


def test_img_rm_force_removes_an_image_holding_snapshots(project):
    project.write(vm("a", USES_Q) + INTERNAL + QCOW2)
    project.run("img", "build", "q", check=True)
    project.run("start", "a", check=True)
    try:
        project.run("snapshot", "save", "a", "s1", check=True)
    finally:
        project.run("stop", "a", "--force", check=True)
    project.run("img", "rm", "q", check=1)
    assert project.json("img", "rm", "q", "--force", check=True)["removed"] is True
    assert not (project.state_dir / "img.q").exists()


def test_a_start_waiting_on_the_lock_while_rm_removes_the_dir_starts_afresh(project):
    """rm removes the VM's dir under its lock, lock file last; a start that waited on
    that lock must not go on with the lock of a removed file in a removed dir."""
    import fcntl
    import shutil
    import subprocess
    from conftest import wait_until
    project.write(vm("a"))
    d = project.vm_dir("a")
    d.mkdir(parents=True)
    lockf = open(d / "lock", "w")
    fcntl.flock(lockf, fcntl.LOCK_EX)          # stands for rm holding the VM's lock
    p = subprocess.Popen([project.qqmgr, "-c", str(project.config), "start", "a", "--json"],
                         cwd=project.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def waits_on_lock():
            for fd in os.listdir(f"/proc/{p.pid}/fd"):
                try:
                    if os.readlink(f"/proc/{p.pid}/fd/{fd}") == str(d / "lock"):
                        return True
                except OSError:
                    pass
            return False
        wait_until(waits_on_lock, 30, what="start waits on the VM's lock")
        shutil.rmtree(d)                        # what rm does, lock file last
        lockf.close()
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        import json
        assert json.loads(out)["state"] == "running"
        assert (d / "lock").exists() and (d / "pid").exists()
    finally:
        lockf.close()
        if p.poll() is None:
            p.kill()
            p.wait()
        project.run("stop", "a", "--force")
