"""Snapshots travel: `snapshot export` / `snapshot import` between two "hosts".

"Here" and "there" are two configs in two dirs (two state dirs) for the same VM `tiny`
(the tiny guest under TCG, diskless: its snapshots are state files), with different
ssh ports (a host-specific difference the import normalises). One module fixture boots
it once here, writes a marker in the guest, saves snapshot `golden` and exports it to a
file; each test imports that stream (or a damaged copy) somewhere. -H runs through a
real OpenSSH sshd on loopback (test_remote's fixture).
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import Project, wait_until
from test_remote import SSHD, sshd  # noqa: F401  (the loopback sshd "host" fixture)

pytestmark = pytest.mark.guest

BOOT = 300


def there_project(tmp_path, qqmgr, tiny_vm_toml, port="auto", mem=256, name="tiny", dirname="there"):
    d = tmp_path / dirname
    d.mkdir()
    p = Project(d, qqmgr)
    p.write(tiny_vm_toml(port, mem=mem, name=name))
    return p


def snapshots_dir(p, vm="tiny"):
    return p.vm_dir(vm) / "snapshots"


def names(p, vm="tiny"):
    return [s["name"] for s in p.json("snapshot", "list", vm, check=True)]


def leftovers(p, vm="tiny"):
    d = snapshots_dir(p, vm)
    return sorted(e.name for e in d.iterdir() if e.name.startswith(".import.")) if d.exists() else []


def import_bytes(p, data, *args, vm="tiny"):
    """snapshot import VM - ARGS with data on stdin (binary)."""
    return subprocess.run([p.qqmgr, "-c", str(p.config), "snapshot", "import", vm, "-", *args],
                          cwd=p.path, input=data, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def golden(tmp_path_factory, qqmgr, tiny_guest):
    """(here project, exported stream file): tiny booted here, /root/mark written,
    saved as `golden`, stopped, exported."""
    from conftest import tiny_vm_section
    d = tmp_path_factory.mktemp("here")
    here = Project(d, qqmgr)
    here.write(tiny_vm_section(tiny_guest, "auto"))
    try:
        here.run("start", "tiny", "--wait", "--timeout", BOOT, check=True, timeout=BOOT + 30)
        here.run("ssh", "tiny", "echo made-here > /root/mark", check=True)
        here.run("snapshot", "save", "tiny", "golden", check=True)
    finally:
        here.run("stop", "tiny", "--force")
    stream = d / "golden.qqsnap"
    out = here.json("snapshot", "export", "tiny", "golden", stream, check=True)
    assert out["kind"] == "state-file" and out["bytes"] == stream.stat().st_size
    return here, stream


# ------------------------------------------------------------------ round trip

def test_exported_snapshot_imports_on_another_host_and_run_restore_boots_from_it(tmp_path, qqmgr, tiny_vm_toml,
                                                                                golden):
    here, stream = golden
    there = there_project(tmp_path, qqmgr, tiny_vm_toml, port="auto")
    out = there.json("snapshot", "import", "tiny", stream, check=True)
    assert out["snapshot"] == "golden" and out["kind"] == "state-file" and out["replaced"] is False
    assert out["bytes"] == stream.stat().st_size
    assert names(there) == ["golden"]
    # the same bytes as the state file saved here
    a = (snapshots_dir(here) / "golden.state").read_bytes()
    assert (snapshots_dir(there) / "golden.state").read_bytes() == a
    assert leftovers(there) == []
    # the guest there starts from the imported state: the marker written here is in it
    cp = there.run("run", "tiny", "--restore", "golden", "--", "cat /root/mark", timeout=200)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip() == "made-here"
    # --as: a second copy under another name, and both are the VM's own (delete works)
    there.run("snapshot", "import", "tiny", stream, "--as", "copy2", check=True)
    assert sorted(names(there)) == ["copy2", "golden"]
    there.run("snapshot", "delete", "tiny", "copy2", check=True)
    assert names(there) == ["golden"]


# ------------------------------------------------------------------ refusals

def test_truncated_stream_is_refused_and_nothing_installed(tmp_path, qqmgr, tiny_vm_toml, golden):
    _, stream = golden
    there = there_project(tmp_path, qqmgr, tiny_vm_toml)
    data = stream.read_bytes()
    for cut in (0, 100, len(data) // 2, len(data) - 1):
        cp = import_bytes(there, data[:cut])
        assert cp.returncode == 1, (cut, cp.stderr)
        err = cp.stderr.decode()
        assert len(err.strip().splitlines()) == 1, err
        assert ("truncated stream" in err) if cut else ("is empty" in err), err
        if cut == len(data) // 2:
            assert "inside file 'state'" in err, err
    assert names(there) == [] and leftovers(there) == []


def test_one_flipped_byte_is_refused_naming_the_file(tmp_path, qqmgr, tiny_vm_toml, golden):
    _, stream = golden
    there = there_project(tmp_path, qqmgr, tiny_vm_toml)
    data = bytearray(stream.read_bytes())
    data[len(data) // 2] ^= 0x01     # in the middle of the state file's data
    cp = import_bytes(there, bytes(data))
    assert cp.returncode == 1
    err = cp.stderr.decode()
    assert "corrupted stream: file 'state' does not match its sha256" in err, err
    assert len(err.strip().splitlines()) == 1, err
    data = bytearray(stream.read_bytes())
    data[200] ^= 0x01                # inside the header
    cp = import_bytes(there, bytes(data))
    assert cp.returncode == 1 and "corrupted stream: its header" in cp.stderr.decode(), cp.stderr
    assert names(there) == [] and leftovers(there) == []


def test_snapshot_of_another_vm_is_refused(tmp_path, qqmgr, tiny_vm_toml, golden):
    _, stream = golden
    there = there_project(tmp_path, qqmgr, tiny_vm_toml, name="other")
    cp = there.run("snapshot", "import", "other", stream, check=1)
    assert "snapshot 'golden' of VM 'tiny', not of other" in cp.stderr, cp.stderr
    assert names(there, "other") == []


def test_different_qemu_arguments_are_refused_naming_the_argument(tmp_path, qqmgr, tiny_vm_toml, golden):
    _, stream = golden
    there = there_project(tmp_path, qqmgr, tiny_vm_toml, mem=512)
    cp = there.run("snapshot", "import", "tiny", stream, check=1)
    assert 'differ from this host\'s config' in cp.stderr, cp.stderr
    assert 'is "256" in the snapshot, "512" here (after "-m")' in cp.stderr, cp.stderr
    assert len(cp.stderr.strip().splitlines()) == 1
    assert names(there) == [] and leftovers(there) == []


def test_existing_name_is_refused_unless_another_name_or_force(tmp_path, qqmgr, tiny_vm_toml, golden):
    _, stream = golden
    there = there_project(tmp_path, qqmgr, tiny_vm_toml)
    there.run("snapshot", "import", "tiny", stream, check=True)
    before = (snapshots_dir(there) / "golden.state").stat().st_ino
    cp = there.run("snapshot", "import", "tiny", stream, check=1)
    assert "has a snapshot 'golden' already" in cp.stderr and "--as NAME" in cp.stderr, cp.stderr
    assert (snapshots_dir(there) / "golden.state").stat().st_ino == before
    out = there.json("snapshot", "import", "tiny", stream, "--force", check=True)
    assert out["replaced"] is True
    assert names(there) == ["golden"] and leftovers(there) == []


def test_stream_that_is_not_one_is_refused(tmp_path, qqmgr, tiny_vm_toml, golden):
    there = there_project(tmp_path, qqmgr, tiny_vm_toml)
    cp = import_bytes(there, b"hello, this is not a snapshot\n" * 10)
    assert cp.returncode == 1 and "not a qqmgr snapshot stream" in cp.stderr.decode(), cp.stderr


# ------------------------------------------------------------------ through -H

def pipe(left, right, timeout=300):
    """left | right (argv lists); returns (left rc, right CompletedProcess-like)."""
    a = subprocess.Popen(left, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                         env=right_env[0])
    b = subprocess.run(right, stdin=a.stdout, capture_output=True, text=True, timeout=timeout, env=right_env[0])
    a.stdout.close()
    a_err = a.stderr.read().decode()
    a.wait(timeout=60)
    return a.returncode, a_err, b


right_env = [None]


@pytest.mark.skipif(not os.path.exists(SSHD) or os.geteuid() != 0, reason="needs openssh-server and root")
def test_export_pipes_into_an_import_through_ssh_both_ways(tmp_path, qqmgr, tiny_vm_toml, golden, sshd):  # noqa: F811
    here, _ = golden
    right_env[0] = sshd.env()
    there = there_project(tmp_path, qqmgr, tiny_vm_toml, port="auto")
    # here → there: export to stdout, import on the host from its stdin
    arc, aerr, b = pipe([qqmgr, "-c", str(here.config), "snapshot", "export", "tiny", "golden", "-"],
                        [qqmgr, "-H", "qqhost", "-c", str(there.config), "snapshot", "import", "tiny", "-",
                         "--as", "via-ssh"])
    assert arc == 0, aerr
    assert b.returncode == 0, b.stderr
    assert "imported snapshot via-ssh of tiny" in b.stdout
    want = (snapshots_dir(here) / "golden.state").read_bytes()
    assert (snapshots_dir(there) / "via-ssh.state").read_bytes() == want
    # there → here: export on the host to its stdout, import here
    arc, aerr, b = pipe([qqmgr, "-H", "qqhost", "-c", str(there.config), "snapshot", "export", "tiny", "via-ssh", "-"],
                        [qqmgr, "-c", str(here.config), "snapshot", "import", "tiny", "-", "--as", "back"])
    assert arc == 0, aerr
    assert b.returncode == 0, b.stderr
    try:
        assert (snapshots_dir(here) / "back.state").read_bytes() == want
        # a refusal on the far side comes back as its one line and exit 1
        arc, aerr, b = pipe([qqmgr, "-c", str(here.config), "snapshot", "export", "tiny", "golden", "-"],
                            [qqmgr, "-H", "qqhost", "-c", str(there.config), "snapshot", "import", "tiny", "-",
                             "--as", "via-ssh"])
        assert b.returncode == 1 and "has a snapshot 'via-ssh' already" in b.stderr, b.stderr
        assert arc == 1 and "the reader closed the stream" in aerr, aerr
    finally:
        here.run("snapshot", "delete", "tiny", "back")


# ------------------------------------------------------------------ interrupted

def slow_import(p, data, sent):
    """An import reading from a pipe that got `sent` bytes of data so far (and stays open)."""
    proc = subprocess.Popen([p.qqmgr, "-c", str(p.config), "snapshot", "import", "tiny", "-"], cwd=p.path,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write(data[:sent])
    proc.stdin.flush()
    wait_until(lambda: leftovers(p), 60, what="the import's temp dir")
    return proc


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signal_during_import_installs_nothing_and_leaves_no_temp_dir(tmp_path, qqmgr, tiny_vm_toml, golden, sig):
    _, stream = golden
    there = there_project(tmp_path, qqmgr, tiny_vm_toml)
    data = stream.read_bytes()
    proc = slow_import(there, data, len(data) // 3)
    time.sleep(0.2)   # let it block on the pipe (the temp dir exists: it is reading)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    proc.stdin.close() if not proc.stdin.closed else None
    assert proc.returncode == 1, err
    assert b"interrupted: nothing was imported" in err, err
    assert names(there) == [] and leftovers(there) == []


def test_import_killed_midway_installs_nothing_and_the_next_command_sweeps(tmp_path, qqmgr, tiny_vm_toml, golden):
    _, stream = golden
    there = there_project(tmp_path, qqmgr, tiny_vm_toml)
    data = stream.read_bytes()
    proc = slow_import(there, data, len(data) // 3)
    proc.kill()
    proc.wait(timeout=30)
    left = leftovers(there)
    assert left, "a killed import leaves its temp dir (this test checks its sweep)"
    assert names(there) == []
    there.run("status", "tiny", check=True)      # the next command on the VM sweeps it
    assert leftovers(there) == []
    # and an import afterwards works
    there.run("snapshot", "import", "tiny", stream, check=True)
    assert names(there) == ["golden"]


def test_the_arguments_that_travel_are_those_of_the_save_not_of_a_later_config(tmp_path, qqmgr, tiny_vm_toml,
                                                                              tiny_guest, golden):
    from conftest import tiny_vm_section
    here, _ = golden
    saved = here.config.read_text()
    stream = tmp_path / "later.qqsnap"
    try:
        # the config here changed after the save: the snapshot still holds 256 MiB of RAM
        here.write(tiny_vm_section(tiny_guest, "auto", mem=512))
        here.run("snapshot", "export", "tiny", "golden", stream, check=True)
    finally:
        here.config.write_text(saved)
    same = there_project(tmp_path, qqmgr, tiny_vm_toml, mem=256)
    same.run("snapshot", "import", "tiny", stream, check=True)
    bigger = there_project(tmp_path, qqmgr, tiny_vm_toml, mem=512, dirname="bigger")
    cp = bigger.run("snapshot", "import", "tiny", stream, check=1)
    assert 'is "256" in the snapshot, "512" here' in cp.stderr, cp.stderr


def test_export_of_an_internal_qcow2_snapshot_is_refused_saying_why(project, tiny_vm_toml):
    project.write('[img.d]\nbuilder = "raw"\nformat = "qcow2"\nimg_size = "64M"\n\n' +
                  tiny_vm_toml("auto", extra_args=["-drive file={{.img.d}},format=qcow2,if=virtio"]))
    project.run("img", "build", "d", check=True)
    try:
        project.run("start", "tiny", "--wait", "--timeout", BOOT, check=True, timeout=BOOT + 30)
        project.run("snapshot", "save", "tiny", "s1", check=True)
    finally:
        project.run("stop", "tiny", "--force")
    out = project.path / "s1.qqsnap"
    cp = project.run("snapshot", "export", "tiny", "s1", out, check=1)
    assert "internal qcow2 snapshot" in cp.stderr and "inside the VM's disks" in cp.stderr, cp.stderr
    assert not out.exists() and not list(project.path.glob("s1.qqsnap*"))
    cp = project.run("snapshot", "export", "tiny", "nope", out, check=1)
    assert "has no snapshot 'nope'" in cp.stderr, cp.stderr


def queued(fd):
    """Bytes waiting in the pipe whose read end is fd."""
    import array
    import fcntl
    import termios
    n = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, n)
    return n[0]


def test_signal_during_export_stops_it_and_leaves_no_partial_file(tmp_path, golden):
    here, _ = golden
    # a reader that never reads: the export blocks on the full pipe
    r, w = os.pipe()
    proc = subprocess.Popen([here.qqmgr, "-c", str(here.config), "snapshot", "export", "tiny", "golden", "-"],
                            stdout=w, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    os.close(w)
    try:
        # it has written what the pipe holds and waits
        wait_until(lambda: queued(r) >= 65536, 30, what="the export to fill the pipe")
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(r)
    assert proc.returncode == 1, err
    assert b"interrupted: the export of snapshot 'golden' is incomplete" in err, err


@pytest.mark.skipif(not os.path.exists(SSHD) or os.geteuid() != 0, reason="needs openssh-server and root")
def test_a_terminal_is_never_the_stream_here_or_through_ssh(tmp_path, golden, sshd):  # noqa: F811
    import pty
    here, _ = golden
    for host in ([], ["-H", "qqhost"]):
        for cmd, slot in ((["snapshot", "export", "tiny", "golden"], "stdout"),
                          (["snapshot", "export", "tiny", "golden", "-"], "stdout"),
                          (["snapshot", "import", "tiny", "-"], "stdin")):
            master, slave = pty.openpty()
            try:
                io = {"stdout": slave} if slot == "stdout" else {"stdin": slave, "stdout": subprocess.PIPE}
                cp = subprocess.run([here.qqmgr, *host, "-c", str(here.config), *cmd], stderr=subprocess.PIPE,
                                    timeout=60, env=sshd.env(), **({"stdin": subprocess.DEVNULL} | io))
            finally:
                os.close(slave)
                os.close(master)
            assert cp.returncode == 2, (host, cmd, cp.stderr)
            assert b"terminal" in cp.stderr or b"binary" in cp.stderr, (host, cmd, cp.stderr)
