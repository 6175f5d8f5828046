"""Shared pytest fixtures and helpers for qqmgr's end-to-end tests.

Run with Debian's python:  /usr/bin/python3 -m pytest tests/e2e  (add `-m "not guest"`
to skip the tests that boot a guest kernel).

Environment:
  QQMGR          path of the qqmgr binary (default: $QQ_BUILD_DIR/qqmgr)
  QQ_BUILD_DIR   build directory (default: <repo>/build)
  QQ_TEST_ACCEL  QEMU accelerator for guests (default: tcg; KVM does not work everywhere)
  QQ_TEST_CACHE  cache of built test guests (see tests/guest/tiny-guest.sh)

Fixtures:
  qqmgr          str, path of the binary (the test fails if it is missing)
  project        Project in a fresh temp dir: .write(toml), .run(*args, check=, timeout=),
                 .json(*args), .state_dir, .vm_dir(name), .path, .config
  tiny_guest     TinyGuest (session): .dir .vmlinux .vmlinuz .initramfs .key .host_pubkey
                 (also tiny_guest["key"]); built once via tests/guest/tiny-guest.sh
  tiny_vm_toml   function(port, extra_append='', name='tiny', ...) -> TOML text of a VM
                 booting the tiny guest, with its [vm.NAME.ssh] section
  golden         Golden (session): golden.start(project, vm, *start_args) starts a running,
                 ssh-ready VM of the project's config from a snapshot of the same cmd booted
                 earlier in the session (`snapshot import` of its export, `start --restore`,
                 the snapshot deleted again), or boots it the first time and saves that
                 snapshot. For tests that need a running guest, not a boot; diskless VMs only.
                 golden.place(project, vm, name="booted"): the stopped VM gets that
                 snapshot as NAME (for `run VM --restore NAME`)
  cloud_base     Path (session, cloudimg.py): the cached Debian cloud base image dir
  built          cloudimg.Built (session, cloudimg.py): a project after one real
                 `img build cloud` of a cloud-init image on that base, with VM `cloud`;
                 .run(*args), .disk, .result (the build's --json), .seconds
  other_user     OtherUser: a second local user made for the test (useradd) and removed
                 after it: .name .uid .gid, .run(argv, **subprocess kw) runs as that
                 user; skips (with the reason) when not root
Helpers (import with `from conftest import free_port, wait_until`):
  free_port()                        a free loopback TCP port
  wait_until(cond, timeout, step)    poll cond() until truthy; returns its value
  guest_ssh_args(key, port)          ssh argv prefix for root@127.0.0.1 with that key
  qmp_execute(sock, cmd, **args)     one QMP command over a unix socket -> reply dict
Marker: @pytest.mark.guest for tests that boot a guest.

Every test's tmp dir is swept after the test: a QEMU whose pid file lies under it
(<state dir>/vm.*/pid as written by qqmgr, or a file named qemu.pid) and is still
running gets SIGKILL, so a failing test never leaves QEMU behind. The whole session
temp dir is swept again at the end.
"""

import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

# session fixtures kept in modules of their own (one instance for every test file)
pytest_plugins = ("cloudimg",)

REPO = Path(__file__).resolve().parents[2]
ACCEL = os.environ.get("QQ_TEST_ACCEL", "tcg")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "guest: boots a guest kernel (slow; builds the tiny guest on first use)")


# ------------------------------------------------------------------ helpers

def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to 0, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(cond, timeout, step=0.1, what=None):
    """Call cond() every `step` seconds until it returns something truthy, and return
    that. Raises TimeoutError (naming `what`, or cond) after `timeout` seconds.
    cond is always called at least once, and once more at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TimeoutError(f"not true after {timeout}s: {what or getattr(cond, '__name__', cond)}")
        time.sleep(min(step, max(0.0, deadline - time.monotonic())))


def guest_ssh_args(key, port, connect_timeout=2):
    """argv prefix to ssh into a test guest as root through a host port forward."""
    return ["ssh", "-F", "/dev/null", "-i", str(key), "-p", str(port),
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-o", f"ConnectTimeout={connect_timeout}",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "root@127.0.0.1"]


def qmp_execute(sock_path, command, timeout=10, **arguments):
    """Connect to a QMP unix socket, negotiate, run one command; return the reply
    (a dict with "return" or "error"). Events before the reply are skipped."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock_path))
        f = s.makefile("rw", encoding="utf-8")

        def call(cmd, args=None):
            msg = {"execute": cmd}
            if args:
                msg["arguments"] = args
            f.write(json.dumps(msg) + "\n")
            f.flush()
            while True:
                line = f.readline()
                if not line:
                    raise ConnectionError(f"QMP closed before replying to {cmd}")
                reply = json.loads(line)
                if "return" in reply or "error" in reply:
                    return reply

        greeting = json.loads(f.readline() or "{}")
        if "QMP" not in greeting:
            raise ConnectionError(f"no QMP greeting on {sock_path}: {greeting}")
        call("qmp_capabilities")
        return call(command, arguments)


def pid_alive(pid):
    """Is the process still there for our purpose: any of its threads not yet a
    zombie? A killed QEMU's main thread turns zombie while its other threads still
    tear down its memory; its files (and the pid file's lock) are released only
    when the last thread is gone, so a test that waits for the main thread alone
    races the lock (what `status` reads)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                    return True
        except OSError:
            pass
    return False


def _is_qemu(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip().startswith("qemu")
    except OSError:
        return False


def _qemu_pidfiles(root):
    for d, dirs, files in os.walk(root):
        base = os.path.basename(d)
        for name in files:
            if (name == "pid" and base.startswith("vm.")) or name == "qemu.pid":
                yield os.path.join(d, name)


def reap_qemu_under(root):
    """SIGKILL every live QEMU whose pid file is under `root`; return their pids."""
    killed = []
    for pf in _qemu_pidfiles(root):
        try:
            pid = int(Path(pf).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if pid > 1 and pid_alive(pid) and _is_qemu(pid):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    for pid in killed:
        try:
            wait_until(lambda: not pid_alive(pid), 10, 0.05)
        except TimeoutError:
            pass
    return killed


# ------------------------------------------------------------------ fixtures

@pytest.fixture(autouse=True)
def _reap_test_qemus(tmp_path):
    yield
    killed = reap_qemu_under(tmp_path)
    if killed:
        print(f"\n[conftest] killed QEMU left running by the test: {killed}", file=sys.stderr)


@pytest.fixture(scope="session", autouse=True)
def _reap_session_qemus(tmp_path_factory):
    yield
    reap_qemu_under(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def qqmgr():
    path = os.environ.get("QQMGR")
    if not path:
        build = os.environ.get("QQ_BUILD_DIR", str(REPO / "build"))
        path = os.path.join(build, "qqmgr")
    path = os.path.abspath(path)
    if not os.access(path, os.X_OK):
        pytest.fail(f"qqmgr binary not found at {path} (build it, or set QQMGR / QQ_BUILD_DIR)")
    return path


class Project:
    """A config dir for one test: write qqmgr.toml, run qqmgr on it."""

    def __init__(self, path, qqmgr):
        self.path = Path(path).resolve()
        self.qqmgr = os.path.abspath(qqmgr)
        self.use("qqmgr.toml")

    def use(self, name):
        """Make `name` (in the project dir) the config that run() passes with -c."""
        self.config = self.path / name
        # docs/reference.md "State directory": qqmgr.toml keeps its state in
        # <dir>/.qqmgr/, other names in <dir>/.qqmgr/config.<name>/
        self.state_dir = self.path / ".qqmgr"
        if name != "qqmgr.toml":
            self.state_dir = self.state_dir / f"config.{name}"

    def write(self, toml_text, name=None):
        """Write the config (dedented) and return its path; with `name`, write and
        use that file instead of qqmgr.toml."""
        if name is not None:
            self.use(name)
        self.config.write_text(textwrap.dedent(toml_text))
        return self.config

    def vm_dir(self, name):
        return self.state_dir / f"vm.{name}"

    def run(self, *args, check=None, timeout=120, input=None, env=None):
        """Run `qqmgr -c <config> ARGS...` in the project dir; returns CompletedProcess
        (text mode, stdout/stderr captured, stdin /dev/null unless input is given).
        check=None: any exit status; True: must be 0; an int: must be that."""
        argv = [self.qqmgr, "-c", str(self.config), *map(str, args)]
        full_env = None
        if env is not None:
            full_env = dict(os.environ)
            full_env.update(env)
        cp = subprocess.run(argv, cwd=self.path, capture_output=True, text=True,
                            timeout=timeout, env=full_env, input=input,
                            stdin=None if input is not None else subprocess.DEVNULL)
        want = 0 if check is True else check
        if want is not None and want is not False and cp.returncode != want:
            raise AssertionError(
                f"{' '.join(argv)}: exit {cp.returncode}, expected {want}\n"
                f"--- stdout\n{cp.stdout}--- stderr\n{cp.stderr}")
        return cp

    def json(self, *args, **kw):
        """Run with --json appended to the command's arguments; parse stdout."""
        cp = self.run(*args, "--json", **kw)
        return json.loads(cp.stdout)


@pytest.fixture
def project(tmp_path, qqmgr):
    d = tmp_path / "proj"
    d.mkdir()
    return Project(d, qqmgr)


@dataclass(frozen=True)
class OtherUser:
    name: str
    uid: int
    gid: int

    def run(self, argv, **kw):
        """subprocess.run(argv) as this user (no supplementary groups), text mode,
        output captured, in /."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("cwd", "/")
        kw.setdefault("stdin", subprocess.DEVNULL)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/", "LANG": "C.UTF-8"}
        return subprocess.run(argv, user=self.uid, group=self.gid, extra_groups=[], env=env, **kw)


@pytest.fixture
def other_user():
    """Another local user, for tests of what is private to the user running qqmgr."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a second user (useradd)")
    import pwd
    import secrets
    name = "qqother" + secrets.token_hex(4)
    cp = subprocess.run(["useradd", "--system", "--no-create-home", "--user-group",
                         "--shell", "/usr/sbin/nologin", name], capture_output=True, text=True)
    if cp.returncode != 0:
        pytest.skip(f"useradd failed: {cp.stderr.strip()}")
    try:
        pw = pwd.getpwnam(name)
        yield OtherUser(name, pw.pw_uid, pw.pw_gid)
    finally:
        subprocess.run(["userdel", name], capture_output=True)


class Golden:
    """Running guests without a boot per test. start(project, vm) renders the VM's cmd
    (`show VM --json`) with the project's own paths and ssh port normalised; the first
    time a cmd is seen it boots the VM (`start --wait`), saves the snapshot `booted`,
    exports it to the session's dir and deletes it from the VM again; every later time it
    imports that export (`snapshot import` refuses arguments that differ, naming them),
    starts the VM with `--restore booted --wait` and deletes the snapshot, so the VM's
    snapshot list is what it would be after a boot. Only diskless VMs (a state-file
    snapshot). A refused import falls back to a boot (said on stderr)."""

    def __init__(self, root):
        self.root = Path(root)
        self.exports = {}        # normalised argv -> export file
        self.boots = self.restores = 0

    def _key(self, project, vm):
        argv = project.json("show", vm, check=True)["argv"]
        state, conf = str(project.state_dir), str(project.path)
        norm = []
        for a in argv:
            a = a.replace(state, "{state}").replace(conf, "{config}")
            norm.append(re.sub(r"(hostfwd=tcp:[0-9.]*:)[0-9]+-", r"\1{port}-", a))
        assert not any(a in ("-drive", "-hda", "-blockdev", "-virtfs") for a in norm), \
            f"golden.start: {vm} has disks or shares (state-file snapshots only): {argv}"
        return (vm, tuple(norm))

    def place(self, project, vm, name="booted"):
        """Give the stopped `vm` of `project` the snapshot `name` of a running, ssh-ready
        guest, for `run VM --restore NAME` / `start VM --restore NAME`."""
        key = self._key(project, vm)
        export = self.exports.get(key)
        if export is not None:
            imp = project.run("snapshot", "import", vm, export, "--as", name)
            if imp.returncode == 0:
                self.restores += 1
                return
            print(f"\n[golden] import into {project.config} refused, booting {vm}: {imp.stderr}",
                  file=sys.stderr)
        self._boot_and_save(project, vm, key, (), 400, name)
        project.run("stop", vm, "--force", check=True)

    def _boot_and_save(self, project, vm, key, start_args, timeout, name="booted"):
        cp = project.run("start", vm, "--wait", *start_args, check=True, timeout=timeout)
        self.boots += 1
        project.run("snapshot", "save", vm, name, check=True)
        export = self.root / f"{vm}.{len(self.exports)}.qqsnap"
        project.run("snapshot", "export", vm, name, export, check=True)
        self.exports[key] = export
        return cp

    def start(self, project, vm, *start_args, timeout=400):
        """Start `vm` of `project` running and ready for ssh; returns start's
        CompletedProcess (a JSON line with --json among start_args)."""
        key = self._key(project, vm)
        export = self.exports.get(key)
        if export is not None:
            imp = project.run("snapshot", "import", vm, export, "--as", "booted")
            if imp.returncode == 0:
                cp = project.run("start", vm, "--restore", "booted", "--wait", *start_args,
                                 check=True, timeout=timeout)
                project.run("snapshot", "delete", vm, "booted", check=True)
                self.restores += 1
                return cp
            print(f"\n[golden] import into {project.config} refused, booting {vm}: {imp.stderr}",
                  file=sys.stderr)
        cp = self._boot_and_save(project, vm, key, start_args, timeout)
        project.run("snapshot", "delete", vm, "booted", check=True)
        return cp


@pytest.fixture(scope="session")
def golden(tmp_path_factory):
    g = Golden(tmp_path_factory.mktemp("golden"))
    yield g
    print(f"\n[golden] {g.boots} boots, {g.restores} restores", file=sys.stderr)


@dataclass(frozen=True)
class TinyGuest:
    dir: Path
    vmlinux: Path
    vmlinuz: Path
    initramfs: Path
    key: Path
    host_pubkey: Path
    initramfs_qga: Path = None   # initramfs + qemu-guest-agent (serves org.qemu.guest_agent.0)

    def __getitem__(self, k):
        return getattr(self, k)


@pytest.fixture(scope="session")
def tiny_guest():
    script = REPO / "tests" / "guest" / "tiny-guest.sh"
    cp = subprocess.run(["bash", str(script)], capture_output=True, text=True,
                        stdin=subprocess.DEVNULL, timeout=900)
    if cp.returncode != 0:
        pytest.fail(f"building the tiny guest failed:\n{cp.stderr[-4000:]}")
    d = Path(cp.stdout.strip().splitlines()[-1])
    g = TinyGuest(dir=d, vmlinux=d / "vmlinux", vmlinuz=d / "vmlinuz",
                  initramfs=d / "initramfs.gz", key=d / "id_ed25519",
                  host_pubkey=d / "ssh_host_ed25519_key.pub", initramfs_qga=d / "initramfs-qga.gz")
    for f in (g.vmlinuz, g.initramfs, g.key, g.host_pubkey, g.initramfs_qga):
        assert f.is_file(), f"tiny guest incomplete: {f} missing"
    return g


def _toml_str(s):
    # a JSON string without non-ASCII escapes is a valid TOML basic string
    return json.dumps(str(s), ensure_ascii=False)


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return _toml_str(v)


def _cmd_arg(s):
    # qqmgr splits cmd entries at white space; quotes keep one argument together
    s = str(s)
    return f"'{s}'" if any(c.isspace() for c in s) else s


def tiny_vm_cmd(guest, extra_append="", mem=256, accel=None, extra_args=(), qga=False):
    """The cmd entries (list of str) that boot `guest` with user-net ssh forwarding
    (qga: its initramfs with qemu-guest-agent)."""
    kernel = guest.vmlinux if guest.vmlinux.is_file() else guest.vmlinuz
    # no_timer_check: on a loaded host the emulated timer can miss the kernel's boot-time
    # IO-APIC check, which then panics ("IO-APIC + timer doesn't work!")
    append = f"console=ttyS0 quiet no_timer_check {extra_append}".strip()
    return [
        f"-accel {accel or ACCEL} -m {mem} -display none -nodefaults",
        f"-kernel {_cmd_arg(kernel)}",
        f"-initrd {_cmd_arg(guest.initramfs_qga if qga else guest.initramfs)}",
        f"-append '{append}'",
        "-netdev user,id=n0,hostfwd=tcp:127.0.0.1:{{.vm.ssh.port}}-:{{.vm.ssh.vm_port}}",
        "-device virtio-net-pci,netdev=n0",
        "-device virtio-rng-pci",
        *extra_args,
    ]


def tiny_vm_section(guest, port, extra_append="", name="tiny", mem=256, accel=None,
                    extra_args=(), ssh_extra=None, mapped_ram=None, guest_agent=None, qga=None):
    """TOML text of [vm.NAME] (cmd from tiny_vm_cmd) and [vm.NAME.ssh] (port, the
    guest's key, root, no host key checking, quiet) for `guest`. mapped_ram,
    guest_agent: the VM's keys (None: not written); qga: boot the initramfs with
    qemu-guest-agent (default: when guest_agent is true)."""
    cmd = tiny_vm_cmd(guest, extra_append, mem, accel, extra_args, qga=bool(guest_agent) if qga is None else qga)
    lines = [f"[vm.{name}]"]
    if mapped_ram is not None:
        lines.append(f"mapped_ram = {_toml_value(mapped_ram)}")
    if guest_agent is not None:
        lines.append(f"guest_agent = {_toml_value(guest_agent)}")
    lines += ["cmd = ["]
    lines += [f"    {_toml_str(c)}," for c in cmd]
    lines += ["]", "", f"[vm.{name}.ssh]",
              f"port = {_toml_value(port)}",
              f"IdentityFile = {_toml_str(guest.key)}",
              'User = "root"',
              'StrictHostKeyChecking = "no"',
              'UserKnownHostsFile = "/dev/null"',
              'LogLevel = "ERROR"']
    for k, v in (ssh_extra or {}).items():
        lines.append(f"{k} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def tiny_vm_toml(tiny_guest):
    """tiny_vm_toml(port, extra_append='', name='tiny', mem=256, accel=None, extra_args=(),
    ssh_extra=None, mapped_ram=None, guest_agent=None, qga=None) -> TOML text for
    [vm.NAME] + [vm.NAME.ssh].
    port: an int, or "auto"/0. extra_append: added to the kernel command line (e.g.
    "qqtest.noacpi"). extra_args: more cmd entries. ssh_extra: more ssh keys (dict)."""
    def make(port, extra_append="", **kw):
        return tiny_vm_section(tiny_guest, port, extra_append, **kw)
    return make


# ------------------------------------------------------------------ the serial console

def read_until(fd, needle, timeout):
    """Read fd until needle was seen (returns all read) or raise TimeoutError."""
    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{needle!r} not seen; got {buf[-500:]!r}")
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
    return buf


def console_roundtrip(qqmgr, config, vm, boot_timeout):
    """`qqmgr console VM` on a pty: the guest's shell answers a command (retried until
    boot_timeout: it may still be booting), then Ctrl-] leaves with exit status 0."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(qqmgr, [qqmgr, "-c", str(config), "console", vm])
    try:
        read_until(fd, b"Ctrl-]", 10)
        deadline = time.monotonic() + boot_timeout
        while True:
            os.write(fd, b"\recho qq-$((6*7))\r")
            try:
                read_until(fd, b"qq-42", 3)
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise
        os.write(fd, b"\x1d")
        read_until(fd, b"Disconnected", 10)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        pid = 0
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
