"""start --wait / wait tell what they wait for (issue 11): progress on a terminal (stage,
seconds, ssh's last error), a timeout that prints ssh's last error and says the VM was
left running, errors that cannot heal fail at once, `-d` shows each probe.

One tiny guest runs for the whole module; each test rewrites the VM's ssh keys (the
running QEMU does not care) and waits again."""
import os
import pty
import select
import subprocess
import time

import pytest

from conftest import Project, reap_qemu_under, tiny_vm_cmd, _toml_str

pytestmark = pytest.mark.guest

BOOT = 240


def write(p, guest, ssh_keys):
    cmd = ",\n".join("  " + _toml_str(c) for c in tiny_vm_cmd(guest))
    p.write(f"""
[vm.t]
cmd = [
{cmd}
]
[vm.t.ssh]
port = "auto"
User = "root"
LogLevel = "ERROR"
ControlMaster = "no"
{ssh_keys}
""")


@pytest.fixture(scope="module")
def vm(tmp_path_factory, qqmgr, tiny_guest, golden):
    """The module's running guest, from the session's booted snapshot (the waits below
    are of a running guest's ssh)."""
    d = tmp_path_factory.mktemp("waitvm")
    p = Project(d, qqmgr)
    write(p, tiny_guest, f"IdentityFile = {_toml_str(tiny_guest.key)}")
    golden.start(p, "t", "--timeout", BOOT)
    yield p
    p.run("stop", "t", "--force")
    reap_qemu_under(d)


@pytest.fixture
def wrong_key(tmp_path):
    k = tmp_path / "wrong"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(k)], check=True)
    return k


def running(p):
    return p.json("status", "t")["running"]


def test_timeout_prints_ssh_last_error_and_says_the_vm_was_left_running(vm, tiny_guest, wrong_key):
    write(vm, tiny_guest, f'IdentityFile = {_toml_str(wrong_key)}\nIdentitiesOnly = true')
    t0 = time.monotonic()
    r = vm.run("wait", "t", "--timeout", "8")
    assert r.returncode == 1
    assert time.monotonic() - t0 < 30
    assert "timed out" in r.stderr and "left running" in r.stderr
    assert "Permission denied" in r.stderr
    assert running(vm)


def test_progress_on_a_terminal_shows_stage_seconds_and_the_last_error(vm, tiny_guest, wrong_key):
    write(vm, tiny_guest, f'IdentityFile = {_toml_str(wrong_key)}\nIdentitiesOnly = true')
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(vm.qqmgr, [vm.qqmgr, "-c", str(vm.config), "wait", "t", "--timeout", "5"])
    out = b""
    try:
        while True:
            r, _, _ = select.select([fd], [], [], 60)
            if not r:
                break
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    text = out.decode(errors="replace")
    assert os.WEXITSTATUS(status) == 1
    assert "waiting for ssh login... " in text
    assert "Permission denied" in text.split("waiting for ssh login", 1)[1]


def test_a_missing_identity_file_fails_at_once(vm, tiny_guest):
    write(vm, tiny_guest, 'IdentityFile = "no/such/key"')
    t0 = time.monotonic()
    r = vm.run("wait", "t", "--timeout", "120")
    assert r.returncode == 2, r.stderr
    assert time.monotonic() - t0 < 10
    assert "no/such/key" in r.stderr and "does not exist" in r.stderr and "left running" in r.stderr
    assert running(vm)


def test_an_ssh_config_ssh_rejects_fails_at_once(vm, tiny_guest):
    write(vm, tiny_guest, f'IdentityFile = {_toml_str(tiny_guest.key)}\nStrictHostKeyChecking = "maybe"')
    t0 = time.monotonic()
    r = vm.run("wait", "t", "--timeout", "120")
    assert r.returncode == 2, r.stderr
    assert time.monotonic() - t0 < 15
    assert "ssh rejects" in r.stderr and "unsupported option" in r.stderr


def test_debug_shows_each_probe(vm, tiny_guest):
    write(vm, tiny_guest, f"IdentityFile = {_toml_str(tiny_guest.key)}")
    r = vm.run("-d", "wait", "t", "--timeout", "120")
    assert r.returncode == 0, r.stderr
    assert "probe 1 (" in r.stderr and "banner on port" in r.stderr
    assert "ssh exit 0" in r.stderr
