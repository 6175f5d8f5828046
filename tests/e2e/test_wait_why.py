"""Waits that say why (issue 20): while `start --wait` / `wait` wait for ssh they read the
serial console. A guest at its login prompt whose ssh port does not answer, a guest that
prints nothing (and never left the reset vector), a guest kernel that panicked, a key the
guest keeps refusing: the
progress line and the error say so and quote the serial tail. Ctrl-C ends the wait, says
the VM keeps running and how to stop it. `stop` of a guest that never ran does not wait for
ACPI."""
import os
import pty
import select
import signal
import subprocess
import time

import pytest

from conftest import Project, reap_qemu_under, tiny_vm_cmd, _toml_str, read_until

pytestmark = pytest.mark.guest

BOOT = 240


def vm_toml(cmd, ssh_keys="", name="t"):
    entries = ",\n".join("  " + _toml_str(c) for c in cmd)
    return f"""
[vm.{name}]
cmd = [
{entries}
]
[vm.{name}.ssh]
port = "auto"
User = "root"
LogLevel = "ERROR"
StrictHostKeyChecking = "no"
UserKnownHostsFile = "/dev/null"
{ssh_keys}
"""


def on_pty(argv, timeout, until=None, then=None):
    """Run argv on a pty; optionally write `then` once `until` was seen. Returns
    (exit status, everything it printed)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(argv[0], argv)
    out = b""
    try:
        if until is not None:
            out = read_until(fd, until, timeout)
            then(pid, fd)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], deadline - time.monotonic())
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
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return status, out.decode(errors="replace").replace("\r", "")


@pytest.fixture
def never_runs(tmp_path):
    """A firmware that loops at the x86 reset vector (`jmp $`): QEMU runs, the guest
    never gets anywhere and prints nothing, as under a KVM that does not work."""
    fw = bytearray(64 * 1024)
    fw[0xfff0:0xfff2] = b"\xeb\xfe"
    p = tmp_path / "jmp-self.bin"
    p.write_bytes(bytes(fw))
    return p


def silent_cmd(fw):
    return [f"-accel tcg -m 64 -display none -nodefaults -bios {fw}",
            "-netdev user,id=n0,hostfwd=tcp:127.0.0.1:{{.vm.ssh.port}}-:22",
            "-device virtio-net-pci,netdev=n0"]


def test_a_guest_at_its_login_prompt_without_network_is_named_with_the_serial_tail(project, qqmgr, tiny_guest):
    # the guest boots to a getty, but cmd gives it no network card
    cmd = [c for c in tiny_vm_cmd(tiny_guest, "qqtest.getty") if "-netdev" not in c and "virtio-net" not in c]
    project.write(vm_toml(cmd, f"IdentityFile = {_toml_str(tiny_guest.key)}"))
    try:
        # the timeout only has to outlast the boot to the login prompt (seconds under TCG)
        status, text = on_pty([qqmgr, "-c", str(project.config), "start", "t", "--wait", "--timeout", "40"], 100)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 1, text[-3000:]
        # the progress line said it while waiting ...
        assert "waiting for sshd... " in text and "serial shows 'tinyguest login:'" in text, text[-3000:]
        # ... and the error says it, with what to check and the serial console's last lines
        err = text[text.index("timed out"):]
        assert "the guest booted — serial shows 'tinyguest login:'" in err, err
        assert "network device and the hostfwd" in err, err
        assert "last lines of its serial console:\n" in err and "tinyguest login:" in err.split("serial console:")[-1]
    finally:
        project.run("stop", "t", "--force")


def test_a_guest_kernel_panic_ends_the_wait_at_once_with_its_reason(project, qqmgr, tiny_guest):
    # no init in the initramfs and no root= : the kernel panics a few seconds into its boot
    project.write(vm_toml(tiny_vm_cmd(tiny_guest, "rdinit=/nonexistent"),
                          f"IdentityFile = {_toml_str(tiny_guest.key)}"))
    why = 'the guest kernel panicked (serial: "Kernel panic - not syncing: VFS: Unable to mount root fs'
    try:
        t0 = time.monotonic()
        r = project.run("start", "t", "--wait", "--timeout", "600", timeout=700)
        assert r.returncode == 1, r.stderr
        assert time.monotonic() - t0 < 300, r.stderr        # not the 600 s timeout
        assert why in r.stderr and "timed out" not in r.stderr, r.stderr
        assert "the VM was left running" in r.stderr and "---[ end Kernel panic" in r.stderr, r.stderr
        assert project.json("status", "t")["running"]
        # `wait` on the panicked guest says the same at once
        t0 = time.monotonic()
        r = project.run("wait", "t", "--timeout", "600", timeout=700)
        assert r.returncode == 1 and why in r.stderr, r.stderr
        assert time.monotonic() - t0 < 60, r.stderr
    finally:
        project.run("stop", "t", "--force")


def test_a_guest_that_never_runs_fails_the_wait_early_and_stop_does_not_wait_for_acpi(project, qqmgr, never_runs):
    project.write(vm_toml(silent_cmd(never_runs)))
    try:
        # silent for 20 s, and its CPU still at the reset vector 5 s later: no need to wait 300 s
        t0 = time.monotonic()
        r = project.run("start", "t", "--wait", timeout=400)
        assert r.returncode == 1, r.stderr
        assert time.monotonic() - t0 < 90, r.stderr
        assert "timed out" not in r.stderr and "left running" in r.stderr, r.stderr
        assert "has printed nothing on its serial console in 20 s" in r.stderr, r.stderr
        assert "has not left the reset vector: the guest never ran" in r.stderr, r.stderr
        assert "its serial console is empty" in r.stderr, r.stderr
        # no guest to press the power button for: stop ends QEMU without its ACPI timeout
        t0 = time.monotonic()
        r = project.run("stop", "t", "--timeout", "60")
        assert r.returncode == 0, r.stderr
        assert time.monotonic() - t0 < 20, r.stdout
        assert not project.json("status", "t")["running"]
    finally:
        project.run("stop", "t", "--force")


@pytest.mark.parametrize("how", ["ctrl-c", "SIGTERM"])
def test_an_interrupted_start_wait_says_the_vm_keeps_running_and_how_to_stop_it(project, qqmgr, never_runs, how):
    project.write(vm_toml(silent_cmd(never_runs)))

    def interrupt(pid, fd):
        if how == "ctrl-c":
            os.write(fd, b"\x03")
        else:
            os.kill(pid, signal.SIGTERM)

    try:
        status, text = on_pty([qqmgr, "-c", str(project.config), "start", "t", "--wait", "--timeout", "120"], 30,
                              until=b"waiting for sshd... ", then=interrupt)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 1, (status, text)
        assert "interrupted while waiting for sshd; the VM keeps running" in text, text[-3000:]
        assert f"qqmgr -c {project.config} stop t" in text or "stop t`" in text, text[-3000:]
        assert project.json("status", "t")["running"]
    finally:
        project.run("stop", "t", "--force")


@pytest.fixture(scope="module")
def booted(tmp_path_factory, qqmgr, tiny_guest, golden):
    """A running guest, from the session's booted snapshot."""
    d = tmp_path_factory.mktemp("whyvm")
    p = Project(d, qqmgr)
    p.write(vm_toml(tiny_vm_cmd(tiny_guest), f'IdentityFile = {_toml_str(tiny_guest.key)}\nControlMaster = "no"'))
    golden.start(p, "t", "--timeout", BOOT, timeout=BOOT + 30)
    yield p
    p.run("stop", "t", "--force")
    reap_qemu_under(d)


def test_a_key_the_guest_keeps_refusing_fails_after_30_s_naming_the_key_file(booted, tiny_guest, tmp_path):
    wrong = tmp_path / "wrong key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    booted.write(vm_toml(tiny_vm_cmd(tiny_guest),
                         f'IdentityFile = {_toml_str(wrong)}\nIdentitiesOnly = true\nControlMaster = "no"'))
    t0 = time.monotonic()
    r = booted.run("wait", "t", "--timeout", "200", timeout=250)
    took = time.monotonic() - t0
    assert r.returncode == 1, r.stderr
    assert 30 <= took < 80, (took, r.stderr)
    assert "refused the login for 30 s" in r.stderr and str(wrong) in r.stderr, r.stderr
    assert "Permission denied" in r.stderr and "left running" in r.stderr
    assert booted.json("status", "t")["running"]
