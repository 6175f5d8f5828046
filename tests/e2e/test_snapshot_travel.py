"""Snapshots travel: `snapshot export` / `snapshot import` between two "hosts".

"Here" and "there" are two configs in two dirs (two state dirs) for the same VM `tiny`
(the tiny guest under TCG, diskless), with different ssh ports (a host-specific
difference the import normalises). One module fixture boots it once here, writes a
marker in the guest, saves snapshot `golden` and exports it to a file; each test imports
that stream (or a damaged copy) somewhere. The fixture runs once per snapshot kind the
build saves for such a VM: its default (a state file; a mapped snapshot where the build
has mapped RAM) and, where the build has the `mapped_ram` key, the state file it keeps
with `mapped_ram = false`. -H runs through a real OpenSSH sshd on loopback (test_remote's
fixture).
"""

import hashlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import Project, free_port, tiny_vm_section, wait_until
from test_remote import SSHD, sshd  # noqa: F401  (the loopback sshd "host" fixture)

pytestmark = pytest.mark.guest

BOOT = 300


def no_mapped(toml):
    """The VM section with `mapped_ram = false` (its snapshots stay state files)."""
    return re.sub(r"(\[vm\.[^\]]+\]\ncmd = \[.*?\n\]\n)", r"\1mapped_ram = false\n", toml, count=1, flags=re.S)


def there_project(tmp_path, qqmgr, tiny_vm_toml, port="auto", mem=256, name="tiny", dirname="there", kind=None):
    d = tmp_path / dirname
    d.mkdir()
    p = Project(d, qqmgr)
    toml = tiny_vm_toml(port, mem=mem, name=name)
    p.write(no_mapped(toml) if kind == "state-file-forced" else toml)
    return p


def project_with(tmp_path, qqmgr, dirname, toml):
    d = tmp_path / dirname
    d.mkdir()
    p = Project(d, qqmgr)
    p.write(toml)
    return p


def snapshots_dir(p, vm="tiny"):
    return p.vm_dir(vm) / "snapshots"


def names(p, vm="tiny"):
    return [s["name"] for s in p.json("snapshot", "list", vm, check=True)]


def snap_files(p, name, vm="tiny"):
    """{file: sha256} of snapshot name's files (state file, or a mapped snapshot's dir
    without its meta.json, which an import rewrites)."""
    d = snapshots_dir(p, vm)
    if (d / name).is_dir():
        return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted((d / name).iterdir())
                if f.name != "meta.json"}
    return {"state": hashlib.sha256((d / f"{name}.state").read_bytes()).hexdigest()}


def snap_inode(p, name, vm="tiny"):
    d = snapshots_dir(p, vm)
    return (d / name).stat().st_ino if (d / name).is_dir() else (d / f"{name}.state").stat().st_ino


def leftovers(p, vm="tiny"):
    d = snapshots_dir(p, vm)
    return sorted(e.name for e in d.iterdir() if e.name.startswith(".import.")) if d.exists() else []


def import_bytes(p, data, *args, vm="tiny"):
    """snapshot import VM - ARGS with data on stdin (binary)."""
    return subprocess.run([p.qqmgr, "-c", str(p.config), "snapshot", "import", vm, "-", *args],
                          cwd=p.path, input=data, capture_output=True, timeout=120)


def mapped_ram_key(qqmgr, d):
    """Does this build have the `mapped_ram` key?"""
    (d / "probe.toml").write_text('[vm.p]\ncmd = ["-m 64"]\nmapped_ram = false\n')
    cp = subprocess.run([qqmgr, "-c", str(d / "probe.toml"), "show", "p"], capture_output=True, text=True)
    return cp.returncode == 0


class Golden:
    def __init__(self, here, stream, kind, variant):
        self.here, self.stream, self.kind, self.variant = here, stream, kind, variant

    def there(self, tmp_path, qqmgr, tiny_vm_toml, **kw):
        return there_project(tmp_path, qqmgr, tiny_vm_toml, kind=self.variant, **kw)

    def __iter__(self):
        return iter((self.here, self.stream))


@pytest.fixture(scope="module", params=["default", "state-file-forced"])
def golden(request, tmp_path_factory, qqmgr, tiny_guest):
    """Golden: tiny booted here, /root/mark written, saved as `golden`, stopped,
    exported to .stream; .kind what the save made."""
    d = tmp_path_factory.mktemp("here")
    if request.param == "state-file-forced" and not mapped_ram_key(qqmgr, d):
        pytest.skip("this build has no mapped_ram key: its default is the state file")
    here = Project(d, qqmgr)
    toml = tiny_vm_section(tiny_guest, "auto")
    here.write(no_mapped(toml) if request.param == "state-file-forced" else toml)
    try:
        here.run("start", "tiny", "--wait", "--timeout", BOOT, check=True, timeout=BOOT + 30)
        here.run("ssh", "tiny", "echo made-here > /root/mark", check=True)
        kind = here.json("snapshot", "save", "tiny", "golden", check=True)["kind"]
    finally:
        here.run("stop", "tiny", "--force")
    assert kind in ("state-file", "mapped")
    stream = d / "golden.qqsnap"
    out = here.json("snapshot", "export", "tiny", "golden", stream, check=True)
    assert out["kind"] == kind and out["bytes"] == stream.stat().st_size
    return Golden(here, stream, kind, request.param)


# ------------------------------------------------------------------ round trip

def test_exported_snapshot_imports_on_another_host_and_run_restore_boots_from_it(tmp_path, qqmgr, tiny_vm_toml,
                                                                                golden):
    here, stream = golden
    # saved here on an automatic port, imported where the port is fixed: the ssh host
    # port is host-specific, normalised on both sides
    there = golden.there(tmp_path, qqmgr, tiny_vm_toml, port=free_port())
    out = there.json("snapshot", "import", "tiny", stream, check=True)
    assert out["snapshot"] == "golden" and out["kind"] == golden.kind and out["replaced"] is False
    assert out["bytes"] == stream.stat().st_size
    assert names(there) == ["golden"]
    # the same bytes as the snapshot saved here
    assert snap_files(there, "golden") == snap_files(here, "golden")
    if golden.kind == "mapped":
        # the RAM file's holes stay holes (the guest never touched most of its RAM)
        ram = (snapshots_dir(there) / "golden" / "ram").stat()
        assert ram.st_blocks * 512 < ram.st_size // 2, (ram.st_blocks * 512, ram.st_size)
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
    there = golden.there(tmp_path, qqmgr, tiny_vm_toml)
    data = stream.read_bytes()
    for cut in (0, 100, len(data) // 2, len(data) - 1):
        cp = import_bytes(there, data[:cut])
        assert cp.returncode == 1, (cut, cp.stderr)
        err = cp.stderr.decode()
        assert len(err.strip().splitlines()) == 1, err
        assert ("truncated stream" in err) if cut else ("is empty" in err), err
        if cut == len(data) // 2:
            assert re.search(r"inside file '(state|ram)'", err), err
    assert names(there) == [] and leftovers(there) == []


def test_one_flipped_byte_is_refused_naming_the_file(tmp_path, qqmgr, tiny_vm_toml, golden):
    _, stream = golden
    there = golden.there(tmp_path, qqmgr, tiny_vm_toml)
    data = bytearray(stream.read_bytes())
    data[len(data) // 2] ^= 0x01     # in the middle of the biggest file's data (state, or a mapped one's ram)
    cp = import_bytes(there, bytes(data))
    assert cp.returncode == 1
    err = cp.stderr.decode()
    assert re.search(r"corrupted stream: file '(state|ram)' does not match its sha256", err), err
    assert len(err.strip().splitlines()) == 1, err
    data = bytearray(stream.read_bytes())
    data[200] ^= 0x01                # inside the header
    cp = import_bytes(there, bytes(data))
    assert cp.returncode == 1 and "corrupted stream: its header" in cp.stderr.decode(), cp.stderr
    assert names(there) == [] and leftovers(there) == []


def test_snapshot_of_another_vm_is_refused(tmp_path, qqmgr, tiny_vm_toml, golden):
    _, stream = golden
    there = golden.there(tmp_path, qqmgr, tiny_vm_toml, name="other")
    cp = there.run("snapshot", "import", "other", stream, check=1)
    assert "snapshot 'golden' of VM 'tiny', not of other" in cp.stderr, cp.stderr
    assert names(there, "other") == []


def test_different_qemu_arguments_are_refused_naming_the_argument(tmp_path, qqmgr, tiny_vm_toml, golden):
    _, stream = golden
    there = golden.there(tmp_path, qqmgr, tiny_vm_toml, mem=512)
    cp = there.run("snapshot", "import", "tiny", stream, check=1)
    assert 'differ from this host\'s config' in cp.stderr, cp.stderr
    assert 'is "256" in the snapshot, "512" here (after "-m")' in cp.stderr, cp.stderr
    assert len(cp.stderr.strip().splitlines()) == 1
    assert names(there) == [] and leftovers(there) == []


def test_existing_name_is_refused_unless_another_name_or_force(tmp_path, qqmgr, tiny_vm_toml, golden):
    _, stream = golden
    there = golden.there(tmp_path, qqmgr, tiny_vm_toml)
    there.run("snapshot", "import", "tiny", stream, check=True)
    before = snap_inode(there, "golden")
    cp = there.run("snapshot", "import", "tiny", stream, check=1)
    assert "has a snapshot 'golden' already" in cp.stderr and "--as NAME" in cp.stderr, cp.stderr
    assert snap_inode(there, "golden") == before
    out = there.json("snapshot", "import", "tiny", stream, "--force", check=True)
    assert out["replaced"] is True
    assert names(there) == ["golden"] and leftovers(there) == []


def test_stream_that_is_not_one_is_refused(tmp_path, qqmgr, tiny_vm_toml, golden):
    there = golden.there(tmp_path, qqmgr, tiny_vm_toml)
    cp = import_bytes(there, b"hello, this is not a snapshot\n" * 10)
    assert cp.returncode == 1 and "not a qqmgr snapshot stream" in cp.stderr.decode(), cp.stderr


# ------------------------------------------------------------------ through -H

def pipe(left, right, env, timeout=300):
    """left | right (argv lists): (left's status, left's stderr, right's CompletedProcess)."""
    a = subprocess.Popen(left, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    b = subprocess.run(right, stdin=a.stdout, capture_output=True, text=True, timeout=timeout, env=env)
    a.stdout.close()
    a_err = a.stderr.read().decode()
    a.wait(timeout=60)
    return a.returncode, a_err, b


@pytest.mark.skipif(not os.path.exists(SSHD) or os.geteuid() != 0, reason="needs openssh-server and root")
def test_export_pipes_into_an_import_through_ssh_both_ways(tmp_path, qqmgr, tiny_vm_toml, golden, sshd):  # noqa: F811
    here, _ = golden
    env = sshd.env()
    there = golden.there(tmp_path, qqmgr, tiny_vm_toml, port="auto")
    # here → there: export to stdout, import on the host from its stdin
    arc, aerr, b = pipe([qqmgr, "-c", str(here.config), "snapshot", "export", "tiny", "golden", "-"],
                        [qqmgr, "-H", "qqhost", "-c", str(there.config), "snapshot", "import", "tiny", "-",
                         "--as", "via-ssh"], env)
    assert arc == 0, aerr
    assert b.returncode == 0, b.stderr
    assert "imported snapshot via-ssh of tiny" in b.stdout
    want = snap_files(here, "golden")
    assert snap_files(there, "via-ssh") == want
    # there → here: export on the host to its stdout, import here
    arc, aerr, b = pipe([qqmgr, "-H", "qqhost", "-c", str(there.config), "snapshot", "export", "tiny", "via-ssh", "-"],
                        [qqmgr, "-c", str(here.config), "snapshot", "import", "tiny", "-", "--as", "back"], env)
    assert arc == 0, aerr
    assert b.returncode == 0, b.stderr
    try:
        assert snap_files(here, "back") == want
        # a refusal on the far side comes back as its one line and exit 1
        arc, aerr, b = pipe([qqmgr, "-c", str(here.config), "snapshot", "export", "tiny", "golden", "-"],
                            [qqmgr, "-H", "qqhost", "-c", str(there.config), "snapshot", "import", "tiny", "-",
                             "--as", "via-ssh"], env)
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
    there = golden.there(tmp_path, qqmgr, tiny_vm_toml)
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
    there = golden.there(tmp_path, qqmgr, tiny_vm_toml)
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
    here, _ = golden
    saved = here.config.read_text()
    stream = tmp_path / "later.qqsnap"
    try:
        # the config here changed after the save: the snapshot still holds 256 MiB of RAM
        here.config.write_text(saved.replace("-m 256", "-m 512"))
        here.run("snapshot", "export", "tiny", "golden", stream, check=True)
    finally:
        here.config.write_text(saved)
    same = golden.there(tmp_path, qqmgr, tiny_vm_toml, mem=256)
    same.run("snapshot", "import", "tiny", stream, check=True)
    bigger = golden.there(tmp_path, qqmgr, tiny_vm_toml, mem=512, dirname="bigger")
    cp = bigger.run("snapshot", "import", "tiny", stream, check=1)
    assert 'is "256" in the snapshot, "512" here' in cp.stderr, cp.stderr


def test_export_of_an_internal_qcow2_snapshot_is_refused_saying_why(project, tiny_vm_toml, qqmgr, tmp_path):
    toml = tiny_vm_toml("auto", extra_args=["-drive file={{.img.d}},format=qcow2,if=virtio"])
    project.write('[img.d]\nbuilder = "raw"\nformat = "qcow2"\nimg_size = "64M"\n\n' +
                  (no_mapped(toml) if mapped_ram_key(qqmgr, tmp_path) else toml))
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


# ------------------------------------------------------------------ disk layers on a built image

def ci_image_toml(base, guest):
    """[img.ci]: a cloud-init image whose build boot is the tiny kernel powering off at once
    (busybox as rdinit): disk.qcow2 is an overlay on the base copy base-HASH.img."""
    kernel = guest.vmlinux if guest.vmlinux.is_file() else guest.vmlinuz
    args = ["-accel", "tcg", "-m", "256", "-display", "none", "-nodefaults", "-no-reboot", "-kernel", str(kernel),
            "-initrd", str(guest.initramfs), "-append", "rdinit=/bin/busybox -- poweroff -f",
            "-drive", "file={{.img_self}},if=virtio", "-cdrom", "{{.cloud_init_iso}}"]
    return f"""[img.ci]
builder = "cloud-init"
img_size = "64M"
build_args = {json.dumps(args)}
[img.ci.base_img]
url = "file://{base}"
sha256sum = "{hashlib.sha256(base.read_bytes()).hexdigest()}"
[[img.ci.templates]]
template = "{base.parent / 'user-data.tpl'}"
output = "user-data"
[[img.ci.templates]]
template = "{base.parent / 'meta-data.tpl'}"
output = "meta-data"

"""


def stream_header(path):
    with open(path, "rb") as f:
        head = f.read(8 + 9)
        assert head[:8] == b"qqsnap\n\x01" and head[8:9] == b"H"
        return json.loads(f.read(int.from_bytes(head[9:17], "big")))


def test_a_disk_layer_travels_without_its_built_base_which_the_other_side_must_build(tmp_path, qqmgr, tiny_guest):
    shared = tmp_path / "shared"
    shared.mkdir()
    base = shared / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "64M"], check=True)
    (shared / "user-data.tpl").write_text("#cloud-config\n")
    (shared / "meta-data.tpl").write_text("instance-id: ci\n")
    vm = tiny_vm_section(tiny_guest, "auto", extra_args=["-drive file={{.img.ci}},format=qcow2,if=virtio"])
    toml = ci_image_toml(base, tiny_guest) + vm
    here = project_with(tmp_path, qqmgr, "here2", toml)
    here.run("img", "build", "ci", check=True, timeout=300)
    try:
        here.run("start", "tiny", "--wait", "--timeout", BOOT, check=True, timeout=BOOT + 30)
        here.run("ssh", "tiny", "echo made-here > /root/mark; printf DISK-DATA > /dev/vda; sync", check=True)
        kind = here.json("snapshot", "save", "tiny", "golden", check=True)["kind"]
    finally:
        here.run("stop", "tiny", "--force")
    if kind != "mapped":
        pytest.skip(f"this build saves a VM with a disk as {kind}, which a stream does not carry")
    stream = tmp_path / "layered.qqsnap"
    here.run("snapshot", "export", "tiny", "golden", stream, check=True)
    h = stream_header(stream)
    assert [(b["layer"], b["image"], b["format"]) for b in h["bases"]] == [("disk0.qcow2", "ci", "qcow2")]
    assert h["bases"][0]["file"].startswith("base-") and h["bases"][0]["file"].endswith(".img")
    assert h["bases"][0]["file"] not in [f["name"] for f in h["files"]]
    # the other side has not built the image: refused, nothing installed
    there = project_with(tmp_path, qqmgr, "there2", toml)
    cp = there.run("snapshot", "import", "tiny", stream, check=1)
    assert "build image ci first" in cp.stderr and "img build ci" in cp.stderr, cp.stderr
    assert names(there) == [] and leftovers(there) == []
    # built there: the layer is rebased onto there's base, the record names there's disk
    there.run("img", "build", "ci", check=True, timeout=300)
    there.run("snapshot", "import", "tiny", stream, check=True)
    layer = snapshots_dir(there) / "golden" / "disk0.qcow2"
    info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", str(layer)], check=True,
                                     capture_output=True, text=True).stdout)
    assert info["backing-filename"] == str(there.state_dir / "img.ci" / h["bases"][0]["file"])
    meta = json.loads((snapshots_dir(there) / "golden" / "meta.json").read_text())
    assert meta["disks"][0]["file"] == str(there.state_dir / "img.ci" / "disk.qcow2")
    # and the guest there starts from it: RAM and disk as they were saved here
    cp = there.run("run", "tiny", "--restore", "golden", "--rm", "--",
                   "cat /root/mark; echo 3 > /proc/sys/vm/drop_caches; head -c 9 /dev/vda", timeout=200)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.split() == ["made-here", "DISK-DATA"], cp.stdout


def test_export_to_a_file_killed_midway_leaves_no_file(tmp_path, golden):
    import shutil
    strace = shutil.which("strace")
    if not strace:
        pytest.skip("needs strace (to hold the export midway)")
    here, _ = golden
    out = tmp_path / "killed.qqsnap"
    # every write of the export waits 50 ms: it is midway for seconds
    proc = subprocess.Popen([strace, "-f", "-o", "/dev/null", "-e", "inject=write:delay_enter=50000",
                             here.qqmgr, "-c", str(here.config), "snapshot", "export", "tiny", "golden", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        def exporter():
            kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            return int(kids[0]) if kids else None

        def writing():
            pid = exporter()
            if not pid:
                return False
            fds = Path(f"/proc/{pid}/fd")
            try:
                return any(str(tmp_path) in os.readlink(fds / f) for f in os.listdir(fds))
            except OSError:
                return False
        wait_until(writing, 60, what="the export to open its output")
        wait_until(lambda: Path(f"/proc/{exporter()}/io").read_text().count("\n") and
                   int(re.search(r"wchar: (\d+)", Path(f"/proc/{exporter()}/io").read_text()).group(1)) > 1 << 20,
                   60, what="the export to write its first MiB")
        os.kill(exporter(), signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("killed")] == []


def test_any_flipped_byte_is_one_clear_refusal_and_installs_nothing(tmp_path, qqmgr, tiny_vm_toml, golden):
    """Bytes flipped anywhere (magic, record types and lengths, header, data, digests,
    the trailer) and bytes appended: exit 1, one line, nothing installed, never a crash."""
    import random
    _, stream = golden
    there = golden.there(tmp_path, qqmgr, tiny_vm_toml)
    data = stream.read_bytes()
    hlen = int.from_bytes(data[9:17], "big")
    first_file = 17 + hlen + 9 + 64          # the first F record
    rng = random.Random(19)
    spots = [0, 7, 8, 9, 16, 17 + hlen // 2, 17 + hlen, 17 + hlen + 9 + 3, first_file, first_file + 5,
             first_file + 9 + 2, len(data) - 70, len(data) - 64, len(data) - 1]
    spots += rng.sample(range(len(data)), 6)
    for at in spots:
        bad = bytearray(data)
        bad[at] ^= 0x20
        cp = import_bytes(there, bytes(bad))
        err = cp.stderr.decode()
        assert cp.returncode == 1, (at, err)
        assert len(err.strip().splitlines()) == 1 and "Sanitizer" not in err, (at, err)
    cp = import_bytes(there, data + b"x")
    assert cp.returncode == 1 and "bytes after its last record" in cp.stderr.decode(), cp.stderr
    assert names(there) == [] and leftovers(there) == []
