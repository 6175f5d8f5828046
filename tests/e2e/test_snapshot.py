"""The test loop on real guests: snapshot save/restore/list/delete, start --restore,
start --rm, run VM -- CMD, the raw builder's format = "qcow2", and their faults.

Every test runs the tiny guest under TCG (QQ_TEST_ACCEL); a diskless one that needs a
running guest, not a boot, starts from the session's booted snapshot (the `golden` fixture). A VM "with a disk" uses a
blank qcow2 image from the raw builder (format = "qcow2"); a "diskless" VM runs from
kernel + initramfs only, and keeps its snapshots as state files. These VMs set
mapped_ram = false: they pin the older kinds (internal qcow2, state file), which every
VM that cannot map its RAM keeps making; test_mapped.py covers the mapped kind.
"""

import json
import signal
import socket
import subprocess
import textwrap
import time

import pytest

from conftest import wait_until

pytestmark = pytest.mark.guest

QCOW2_IMG = '[img.d]\nbuilder = "raw"\nformat = "qcow2"\nimg_size = "64M"\n\n'
RAW_IMG = '[img.d]\nbuilder = "raw"\nimg_size = "64M"\n\n'


def disk_vm(tiny_vm_toml, fmt="qcow2", mem=256, name="tiny"):
    return tiny_vm_toml("auto", name=name, mem=mem, mapped_ram=False,
                        extra_args=[f"-drive file={{{{.img.d}}}},format={fmt},if=virtio"])


def setup_disk(project, tiny_vm_toml, fmt="qcow2", mem=256):
    project.write((QCOW2_IMG if fmt == "qcow2" else RAW_IMG) + disk_vm(tiny_vm_toml, fmt, mem))
    project.run("img", "build", "d", check=True)


def setup_diskless(project, tiny_vm_toml, mem=256):
    project.write(tiny_vm_toml("auto", mem=mem, mapped_ram=False))


def boot(project, *extra, golden=None):
    """The VM running and ready for ssh: booted, or (golden, a diskless VM) restored from
    the session's booted snapshot of the same cmd (conftest.Golden)."""
    if golden is not None:
        golden.start(project, "tiny", *extra)
    else:
        project.run("start", "tiny", "--wait", *extra, check=True, timeout=400)


def ssh(project, cmd, **kw):
    return project.run("ssh", "tiny", cmd, **kw)


def names(project):
    return [s["name"] for s in project.json("snapshot", "list", "tiny", check=True)]


def state(project):
    return project.json("status", "tiny", check=True)["state"]


def stop(project):
    project.run("stop", "tiny", "--force", check=True)


def interrupted(project, *args, when, what, step=0.002, timeout=120):
    """Run qqmgr ARGS, send it SIGINT once when() is true; (exit status, stderr, seconds
    from the signal to its end)."""
    p = subprocess.Popen([project.qqmgr, "-c", str(project.config), *args], cwd=project.path,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(when, 60, step, what)
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=timeout)
        return p.returncode, err, time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()


# ------------------------------------------------------------------ commands

def test_save_list_restore_in_place_on_a_qcow2_disk(project, tiny_vm_toml):
    setup_disk(project, tiny_vm_toml)
    boot(project)
    ssh(project, "echo before > /tmp/mark", check=True)
    out = project.json("snapshot", "save", "tiny", "s1", check=True)
    assert out["kind"] == "qcow2" and out["snapshot"] == "s1" and out["replaced"] is False
    listed = project.json("snapshot", "list", "tiny", check=True)
    assert [s["name"] for s in listed] == ["s1"]
    s = listed[0]
    assert set(s) == {"name", "date", "vm_state_size", "vm_clock", "kind", "size"}
    assert s["kind"] == "qcow2" and s["size"] == s["vm_state_size"]
    assert s["vm_state_size"] > 1 << 20 and s["vm_clock"] > 0 and s["date"].endswith("Z")
    ssh(project, "echo after > /tmp/mark", check=True)
    project.run("snapshot", "restore", "tiny", "s1", check=True)
    # the ssh master was reset: a fresh connection reaches the restored guest
    assert ssh(project, "cat /tmp/mark", check=True).stdout.strip() == "before"
    assert state(project) == "running"
    stop(project)
    # a stopped VM lists the same snapshot (from its disk)
    assert names(project) == ["s1"]


def test_start_restore_reaches_ssh_on_a_different_automatic_port(project, tiny_vm_toml):
    setup_disk(project, tiny_vm_toml)
    boot(project)
    old_port = project.json("status", "tiny", check=True)["ssh"]["port"]
    ssh(project, "echo saved > /tmp/mark", check=True)
    project.run("snapshot", "save", "tiny", "s1", check=True)
    stop(project)
    # hold the old port so the restored VM must get another one
    with socket.socket() as hold:
        hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # past TIME_WAIT
        hold.bind(("127.0.0.1", old_port))
        hold.listen(1)
        out = project.json("start", "tiny", "--restore", "s1", "--wait", check=True, timeout=200)
    assert out["ssh_port"] != old_port
    assert ssh(project, "cat /tmp/mark", check=True).stdout.strip() == "saved"
    stop(project)


def test_snapshot_restore_of_a_stopped_vm_points_at_start_restore(project, tiny_vm_toml):
    setup_disk(project, tiny_vm_toml)
    boot(project)
    project.run("snapshot", "save", "tiny", "s1", check=True)
    stop(project)
    cp = project.run("snapshot", "restore", "tiny", "s1", check=1)
    assert "start tiny --restore s1" in cp.stderr


def test_snapshot_list_columns_line_up_and_say_size(project, tiny_vm_toml, golden):
    setup_diskless(project, tiny_vm_toml)
    boot(project, golden=golden)
    long = "a-snapshot-name-longer-than-the-old-column"
    for n in ("s", long):
        project.run("snapshot", "save", "tiny", n, check=True)
    stop(project)
    lines = project.run("snapshot", "list", "tiny", check=True).stdout.splitlines()
    assert lines[0].split() == ["NAME", "DATE", "KIND", "SIZE", "VM", "CLOCK"]
    assert [l.split()[0] for l in lines[1:]] == ["s", long]
    # every column starts (left-aligned) or ends (right-aligned) at the same offset
    date_at = lines[0].index("DATE")
    assert all(l[date_at - 2:date_at] == "  " and l[date_at].isdigit() for l in lines[1:]), lines
    kind_at = lines[0].index("KIND")
    assert all(l[kind_at:].startswith("state-file ") for l in lines[1:]), lines
    size_end = lines[0].index("SIZE") + len("SIZE")
    assert all(l[size_end - 1] == "B" and l[size_end] == " " for l in lines[1:]), lines
    assert len({len(l) for l in lines}) == 1, lines


def test_delete_on_a_running_and_a_stopped_vm(project, tiny_vm_toml):
    setup_disk(project, tiny_vm_toml)
    boot(project)
    for n in ("a", "b", "c"):
        project.run("snapshot", "save", "tiny", n, check=True)
    assert names(project) == ["a", "b", "c"]
    project.run("snapshot", "delete", "tiny", "b", check=True)
    assert names(project) == ["a", "c"]
    stop(project)
    project.run("snapshot", "delete", "tiny", "a", check=True)
    assert names(project) == ["c"]


def test_save_with_an_existing_name_needs_force(project, tiny_vm_toml):
    setup_disk(project, tiny_vm_toml)
    boot(project)
    project.run("snapshot", "save", "tiny", "s1", check=True)
    cp = project.run("snapshot", "save", "tiny", "s1", check=1)
    assert "already has a snapshot 's1'" in cp.stderr and "--force" in cp.stderr
    assert project.json("snapshot", "save", "tiny", "s1", "--force", check=True)["replaced"] is True
    assert names(project) == ["s1"]
    stop(project)


def test_diskless_vm_keeps_its_snapshot_in_a_state_file(project, tiny_vm_toml, golden):
    setup_diskless(project, tiny_vm_toml)
    boot(project, golden=golden)
    ssh(project, "echo before > /tmp/mark", check=True)
    assert project.json("snapshot", "save", "tiny", "s1", check=True)["kind"] == "state-file"
    snaps = project.vm_dir("tiny") / "snapshots"
    assert (snaps / "s1.state").is_file() and not (snaps / "s1.state.tmp").exists()
    assert oct((snaps / "s1.state").stat().st_mode & 0o777) == "0o600"
    # the VM keeps running after the save
    assert state(project) == "running"
    ssh(project, "echo after > /tmp/mark", check=True)
    project.run("snapshot", "restore", "tiny", "s1", check=True)
    assert ssh(project, "cat /tmp/mark", check=True).stdout.strip() == "before"
    stop(project)
    assert names(project) == ["s1"]
    project.run("start", "tiny", "--restore", "s1", "--wait", check=True, timeout=200)
    assert state(project) == "running"
    assert ssh(project, "cat /tmp/mark", check=True).stdout.strip() == "before"
    stop(project)
    project.run("snapshot", "delete", "tiny", "s1", check=True)
    assert names(project) == [] and not (snaps / "s1.state").exists()


def test_start_rm_throws_every_disk_write_away(project, tiny_vm_toml):
    setup_disk(project, tiny_vm_toml, fmt="raw")
    disk = project.state_dir / "img.d" / "disk.raw"
    write = "printf QQMARK | dd of=/dev/vda conv=notrunc 2>/dev/null && sync"
    boot(project, "--rm")
    ssh(project, write, check=True)
    assert ssh(project, "head -c 6 /dev/vda", check=True).stdout == "QQMARK"
    # no snapshot of a throwaway run: it would be lost
    cp = project.run("snapshot", "save", "tiny", "s1", check=1)
    assert "throwaway" in cp.stderr
    # the image it runs on is not rebuilt under it
    project.write((RAW_IMG + disk_vm(tiny_vm_toml, "raw")).replace('"64M"', '"65M"'))
    cp = project.run("img", "build", "d", check=1)
    assert "is running and uses this image" in cp.stderr
    project.write(RAW_IMG + disk_vm(tiny_vm_toml, "raw"))
    project.run("stop", "tiny", check=True)
    assert disk.read_bytes()[:6] != b"QQMARK"
    # without --rm the write lands on the image
    boot(project)
    ssh(project, write, check=True)
    project.run("stop", "tiny", check=True)
    assert disk.read_bytes()[:6] == b"QQMARK"


def test_run_returns_the_commands_status_and_prints_only_its_output(project, tiny_vm_toml):
    setup_disk(project, tiny_vm_toml)
    cp = project.run("run", "tiny", "--rm", "--", "echo out; echo err >&2; exit 7", timeout=400)
    assert cp.returncode == 7, cp.stderr
    assert cp.stdout == "out\n" and cp.stderr == "err\n"
    assert state(project) == "stopped"


def test_run_refuses_a_running_vm(project, tiny_vm_toml, golden):
    setup_diskless(project, tiny_vm_toml)
    boot(project, golden=golden)
    cp = project.run("run", "tiny", "--", "true", check=1)
    assert "already running" in cp.stderr and "ssh tiny COMMAND" in cp.stderr
    assert state(project) == "running"
    stop(project)


def test_run_restore_rm_leaves_the_snapshot_and_no_copies(project, tiny_vm_toml):
    setup_disk(project, tiny_vm_toml)
    boot(project)
    ssh(project, "echo saved > /tmp/mark", check=True)
    project.run("snapshot", "save", "tiny", "s1", check=True)
    stop(project)
    cp = project.run("run", "tiny", "--restore", "s1", "--rm", "--",
                     "cat /tmp/mark; echo changed > /tmp/mark; "
                     "printf QQMARK | dd of=/dev/vda conv=notrunc 2>/dev/null; sync", timeout=200)
    assert cp.returncode == 0 and cp.stdout == "saved\n", cp.stderr
    assert not list(project.vm_dir("tiny").glob("throwaway.*"))
    # the snapshot and the image are as they were
    disk = project.state_dir / "img.d" / "disk.qcow2"
    assert b"QQMARK" not in disk.read_bytes()
    cp = project.run("run", "tiny", "--restore", "s1", "--", "cat /tmp/mark", timeout=200)
    assert cp.returncode == 0 and cp.stdout == "saved\n", cp.stderr
    assert names(project) == ["s1"]


def test_run_timeout_stops_the_command_and_the_vm(project, tiny_vm_toml, golden):
    setup_diskless(project, tiny_vm_toml)
    boot(project, golden=golden)
    project.run("snapshot", "save", "tiny", "s1", check=True)
    stop(project)
    t0 = time.monotonic()
    cp = project.run("run", "tiny", "--restore", "s1", "--timeout", "15", "--", "sleep 600", timeout=120)
    assert cp.returncode == 1 and "longer than 15 s" in cp.stderr
    assert time.monotonic() - t0 < 60
    assert state(project) == "stopped"


def test_ctrl_c_during_runs_wait_for_ssh_stops_the_vm_at_once(project, tiny_vm_toml):
    # a guest without sshd: the wait for ssh would last its whole 300 s
    project.write(tiny_vm_toml("auto", extra_append="qqtest.nosshd"))
    # QEMU runs, run waits for ssh: interrupt
    rc, err, took = interrupted(project, "run", "tiny", "--", "sleep 600", step=0.01, timeout=60,
                                when=lambda: (project.vm_dir("tiny") / "qmp.socket").exists(), what="QEMU to start")
    assert rc == 1 and "interrupted" in err, err
    assert took < 30
    assert state(project) == "stopped"
    assert not (project.vm_dir("tiny") / "qmp.socket").exists()


# ------------------------------------------------------------------ faults

def test_a_missing_snapshot_names_the_save_command_for_this_config(project, tiny_vm_toml):
    # run with -c from the project dir: the hint is a command to paste, -c included
    setup_diskless(project, tiny_vm_toml)
    cp = project.run("start", "tiny", "--restore", "nope", check=1)
    assert (f"tiny has no snapshot 'nope' (it has none; make one with `qqmgr -c {project.config} snapshot save "
            "tiny nope`)") in cp.stderr, cp.stderr
    assert state(project) == "stopped"


def test_bad_snapshot_names_are_usage_errors(project, tiny_vm_toml):
    setup_diskless(project, tiny_vm_toml)
    for bad in (".hidden", "-x", "a/b", "a b", "ü"):
        cp = project.run("snapshot", "save", "tiny", "--", bad, check=2)
        assert "snapshot name" in cp.stderr
    cp = project.run("start", "tiny", "--restore", "a/b", check=2)
    assert "snapshot name" in cp.stderr


def test_unknown_snapshot_lists_the_existing_ones(project, tiny_vm_toml):
    setup_disk(project, tiny_vm_toml)
    boot(project)
    project.run("snapshot", "save", "tiny", "s1", check=True)
    project.run("snapshot", "save", "tiny", "s2", check=True)
    for args in (("snapshot", "restore", "tiny", "nope"), ("snapshot", "delete", "tiny", "nope")):
        cp = project.run(*args, check=1)
        assert "no snapshot 'nope'" in cp.stderr and "s1, s2" in cp.stderr
    stop(project)
    cp = project.run("start", "tiny", "--restore", "nope", check=1)
    assert "no snapshot 'nope'" in cp.stderr and "s1, s2" in cp.stderr
    assert state(project) == "stopped"


def test_writable_raw_disk_refuses_a_snapshot_naming_the_drive_and_the_fix(project, tiny_vm_toml):
    setup_disk(project, tiny_vm_toml, fmt="raw")
    boot(project)
    cp = project.run("snapshot", "save", "tiny", "s1", check=1)
    assert "virtio0" in cp.stderr and "disk.raw" in cp.stderr and 'format = "qcow2"' in cp.stderr
    assert state(project) == "running"
    assert names(project) == []
    stop(project)


@pytest.mark.parametrize("kind", ["qcow2", "diskless"])
def test_snapshot_that_does_not_load_after_cmd_change_leaves_no_qemu(project, tiny_vm_toml, golden, kind):
    if kind == "qcow2":
        setup_disk(project, tiny_vm_toml)
    else:
        setup_diskless(project, tiny_vm_toml)
    boot(project, golden=golden if kind == "diskless" else None)
    project.run("snapshot", "save", "tiny", "s1", check=True)
    stop(project)
    # the memory size changed since the save: the state cannot load
    if kind == "qcow2":
        project.write(QCOW2_IMG + disk_vm(tiny_vm_toml, mem=320))
    else:
        setup_diskless(project, tiny_vm_toml, mem=320)
    cp = project.run("start", "tiny", "--restore", "s1", "--wait", check=1, timeout=200)
    assert "snapshot 's1' did not load" in cp.stderr
    # QEMU's own words
    assert "ram" in cp.stderr.lower() or "size" in cp.stderr.lower(), cp.stderr
    assert state(project) == "stopped"
    assert not (project.vm_dir("tiny") / "pid").exists() or state(project) == "stopped"


@pytest.mark.parametrize("kind", ["qcow2", "diskless"])
def test_ctrl_c_during_save_keeps_the_vm_running_and_lists_no_partial_snapshot(project, tiny_vm_toml, golden, kind):
    if kind == "qcow2":
        setup_disk(project, tiny_vm_toml)
        disk = project.state_dir / "img.d" / "disk.qcow2"
        size0 = disk.stat().st_size
        in_progress = lambda: disk.stat().st_size > size0 + (4 << 20)
    else:
        setup_diskless(project, tiny_vm_toml)
        tmp = project.vm_dir("tiny") / "snapshots" / "s1.state.tmp"
        in_progress = lambda: tmp.exists()
    boot(project, golden=golden if kind == "diskless" else None)
    rc, err, _ = interrupted(project, "snapshot", "save", "tiny", "s1", when=in_progress,
                             what="the save to be under way")
    assert rc == 1 and "interrupted" in err, err
    assert state(project) == "running"
    assert names(project) == []
    ssh(project, "true", check=True)
    if kind == "diskless":
        assert not list((project.vm_dir("tiny") / "snapshots").glob("s1.*"))
    stop(project)


def test_ctrl_c_during_save_force_keeps_the_snapshot_it_would_replace(project, tiny_vm_toml, golden):
    # a state file is renamed over the old one only once the new one is whole
    setup_diskless(project, tiny_vm_toml)
    boot(project, golden=golden)
    ssh(project, "echo old > /tmp/mark", check=True)
    project.run("snapshot", "save", "tiny", "s1", check=True)
    ssh(project, "echo new > /tmp/mark", check=True)
    tmp = project.vm_dir("tiny") / "snapshots" / "s1.state.tmp"
    rc, err, _ = interrupted(project, "snapshot", "save", "tiny", "s1", "--force", when=tmp.exists,
                             what="the save to be under way")
    assert rc == 1 and "interrupted" in err, err
    assert names(project) == ["s1"] and not tmp.exists()
    stop(project)
    project.run("start", "tiny", "--restore", "s1", "--wait", check=True, timeout=200)
    assert ssh(project, "cat /tmp/mark", check=True).stdout == "old\n"
    stop(project)


def test_save_force_of_another_kind_replaces_the_old_snapshot_after_the_save(project, tiny_vm_toml, golden):
    setup_diskless(project, tiny_vm_toml)
    boot(project, golden=golden)
    ssh(project, "echo old > /tmp/mark", check=True)
    project.run("snapshot", "save", "tiny", "s1", check=True)          # a state file
    stop(project)
    # the same VM, its RAM now mapped: the state file loads into it; a save makes a mapped one
    project.write(tiny_vm_toml("auto", mapped_ram=True))
    project.run("start", "tiny", "--restore", "s1", "--wait", check=True, timeout=200)
    ssh(project, "echo new > /tmp/mark", check=True)
    out = project.json("snapshot", "save", "tiny", "s1", "--force", check=True)
    assert out["kind"] == "mapped" and out["replaced"] is True
    listed = project.json("snapshot", "list", "tiny", check=True)
    assert [(x["name"], x["kind"]) for x in listed] == [("s1", "mapped")], listed
    assert not list((project.vm_dir("tiny") / "snapshots").glob("s1.*"))   # the state file went
    stop(project)
    project.run("start", "tiny", "--restore", "s1", "--wait", check=True, timeout=200)
    assert ssh(project, "cat /tmp/mark", check=True).stdout == "new\n"
    stop(project)


def test_disk_full_during_save_fails_clearly_and_keeps_earlier_snapshots(project, tiny_vm_toml, tmp_path):
    """The state dir on a 120 MiB tmpfs (a private mount namespace): one snapshot of a
    256 MiB guest fits, the second does not."""
    setup_disk(project, tiny_vm_toml)
    q = f"{project.qqmgr} -c {project.config}"
    script = textwrap.dedent(f"""\
        set -u
        cd {project.path}
        rm -rf .qqmgr && mkdir .qqmgr && mount -t tmpfs -o size=120m tmpfs .qqmgr || exit 77
        trap '{q} stop tiny --force >/dev/null 2>&1' EXIT
        {q} img build d >/dev/null || exit 3
        {q} start tiny --wait >/dev/null || exit 4
        {q} ssh tiny 'echo kept > /tmp/mark' || exit 5
        {q} snapshot save tiny s1 >/dev/null || exit 6
        {q} snapshot save tiny s2; echo "save2=$?"
        {q} snapshot list tiny --json
        {q} ssh tiny 'echo changed > /tmp/mark'
        {q} snapshot restore tiny s1 && {q} ssh tiny 'cat /tmp/mark'
        """)
    cp = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    if cp.returncode == 77 or "unshare failed" in cp.stderr:
        pytest.skip(f"no private mount namespace here: {cp.stderr.strip()}")
    assert "save2=1" in cp.stdout, cp.stdout + cp.stderr
    assert "no space left" in cp.stderr.lower(), cp.stderr
    listed = json.loads(cp.stdout[cp.stdout.index("["):cp.stdout.index("]") + 1])
    assert [s["name"] for s in listed] == ["s1"]
    assert cp.stdout.strip().endswith("kept"), cp.stdout + cp.stderr


def test_img_build_names_the_snapshots_a_rebuild_would_lose(project, tiny_vm_toml):
    setup_disk(project, tiny_vm_toml)
    boot(project)
    project.run("snapshot", "save", "tiny", "s1", check=True)
    project.run("snapshot", "save", "tiny", "s2", check=True)
    stop(project)
    project.write(QCOW2_IMG.replace('"64M"', '"80M"') + disk_vm(tiny_vm_toml))
    cp = project.run("img", "build", "d", check=1)
    assert "s1, s2" in cp.stderr and "--force" in cp.stderr
    assert names(project) == ["s1", "s2"]
    project.run("img", "build", "d", "--force", check=True)
    assert names(project) == []


def test_raw_builder_format_key(project):
    project.write('[img.q]\nbuilder = "raw"\nformat = "qcow2"\nimg_size = "1M"\n'
                  '[img.r]\nbuilder = "raw"\nimg_size = "1M"\n')
    out = project.json("img", "build", "q", check=True)
    assert out["path"].endswith("/img.q/disk.qcow2")
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", out["path"]],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["format"] == "qcow2" and info["virtual-size"] == 1 << 20
    assert project.json("img", "build", "r", check=True)["path"].endswith("/img.r/disk.raw")
    project.write('[img.q]\nbuilder = "raw"\nformat = "vmdk"\nimg_size = "1M"\n')
    cp = project.run("img", "list", check=2)
    assert "img.q.format" in cp.stderr and '"qcow2"' in cp.stderr
