"""The tiny test guest itself, booted with qemu-system-x86_64 directly (not via qqmgr):
it reaches ssh with the fixture's key, powers off on ACPI powerdown, and its
qqtest.* kernel command line switches do what tests rely on."""

import socket
import subprocess
import tomllib
from pathlib import Path

import pytest

from conftest import (ACCEL, TinyGuest, free_port, guest_ssh_args, qmp_execute,
                      tiny_vm_section, wait_until)

BOOT_TIMEOUT = 180     # TCG on a loaded machine; typically 5-7 s


def wait_until_or_false(cond, timeout, step=0.1):
    try:
        return wait_until(cond, timeout, step)
    except TimeoutError:
        return False


class DirectGuest:
    """One QEMU running the tiny guest, with its files in a test's tmp dir."""

    def __init__(self, guest, tmp_path, extra_append=""):
        self.guest = guest
        self.port = free_port()
        self.qmp = tmp_path / "qmp.sock"
        self.console = tmp_path / "console.log"
        kernel = guest.vmlinux if guest.vmlinux.is_file() else guest.vmlinuz
        argv = ["qemu-system-x86_64", "-accel", ACCEL, "-m", "256", "-display", "none",
                "-nodefaults", "-kernel", str(kernel), "-initrd", str(guest.initramfs),
                "-append", f"console=ttyS0 quiet no_timer_check {extra_append}".strip(),
                "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{self.port}-:22",
                "-device", "virtio-net-pci,netdev=n0", "-device", "virtio-rng-pci",
                "-serial", f"file:{self.console}",
                "-qmp", f"unix:{self.qmp},server=on,wait=off",
                "-pidfile", str(tmp_path / "qemu.pid")]
        self.stderr = open(tmp_path / "qemu-stderr.log", "w+")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self.stderr, stderr=self.stderr)

    def ssh(self, *cmd, timeout=20):
        return subprocess.run(guest_ssh_args(self.guest.key, self.port) + list(cmd),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)

    def running(self):
        return self.proc.poll() is None

    def console_text(self):
        return self.console.read_text(errors="replace") if self.console.exists() else ""

    def diag(self):
        self.stderr.seek(0)
        return f"--- console\n{self.console_text()[-3000:]}\n--- qemu stderr\n{self.stderr.read()[-2000:]}"

    def wait_ssh(self):
        def ok():
            assert self.running(), "QEMU exited during boot\n" + self.diag()
            try:
                return self.ssh("true", timeout=15).returncode == 0
            except subprocess.TimeoutExpired:
                return False
        try:
            wait_until(ok, BOOT_TIMEOUT, 0.2, what="ssh true")
        except TimeoutError as e:
            raise AssertionError(f"{e}\n{self.diag()}") from None

    def wait_qmp(self):
        wait_until(self.qmp.exists, 30, what="QMP socket")

    def close(self):
        if self.running():
            self.proc.kill()
        self.proc.wait()
        self.stderr.close()


@pytest.fixture
def direct_guest(tiny_guest, tmp_path):
    started = []

    def start(extra_append=""):
        g = DirectGuest(tiny_guest, tmp_path, extra_append)
        started.append(g)
        return g
    yield start
    for g in started:
        g.close()


@pytest.mark.guest
def test_tiny_guest_reaches_ssh_and_powers_off_on_acpi_powerdown(direct_guest):
    g = direct_guest()
    g.wait_ssh()
    assert g.ssh("cat", "/proc/cmdline").stdout.split()[:2] == ["console=ttyS0", "quiet"]

    # a powerdown sent before acpid runs is lost: repeat it until QEMU exits
    def powered_off():
        if not g.running():
            return True
        reply = qmp_execute(g.qmp, "system_powerdown")
        assert "return" in reply, reply
        return wait_until_or_false(lambda: not g.running(), 3)
    wait_until(powered_off, 30, 0, what="QEMU exit after system_powerdown")
    assert g.proc.returncode == 0
    assert "tinyguest: shutting down" in g.console_text()


@pytest.mark.guest
def test_tiny_guest_with_noacpi_ignores_acpi_powerdown(direct_guest):
    g = direct_guest("qqtest.noacpi")
    g.wait_ssh()
    assert "acpi disabled by qqtest.noacpi" in g.console_text()
    reply = qmp_execute(g.qmp, "system_powerdown")
    assert "return" in reply, reply
    # absence of an effect: watch for the full 5 s
    assert not wait_until_or_false(lambda: not g.running(), 5), "guest powered off"
    assert g.ssh("true").returncode == 0
    g.close()
    assert not g.running()


@pytest.mark.guest
def test_tiny_guest_with_nosshd_boots_but_never_sends_ssh_banner(direct_guest):
    g = direct_guest("qqtest.nosshd")
    wait_until(lambda: "sshd disabled by qqtest.nosshd" in g.console_text(),
               BOOT_TIMEOUT, 0.2, what="console line of the nosshd switch")
    wait_until(lambda: "tinyguest: up" in g.console_text(), 30, 0.2, what="network up")
    # the port forward accepts the connection, but no "SSH-2.0-" banner ever comes
    with socket.create_connection(("127.0.0.1", g.port), timeout=5) as s:
        s.settimeout(3)
        try:
            data = s.recv(64)
        except socket.timeout:
            data = b""
    assert not data.startswith(b"SSH-")
    assert qmp_execute(g.qmp, "query-status")["return"]["status"] == "running"


def test_tiny_vm_toml_is_valid_toml_with_ssh_forward_and_key():
    d = Path("/cache/tiny guest")
    g = TinyGuest(d, d / "vmlinux", d / "vmlinuz", d / "initramfs.gz", d / "id_ed25519",
                  d / "ssh_host_ed25519_key.pub")
    doc = tomllib.loads(tiny_vm_section(g, "auto", "qqtest.noacpi", name="t1",
                                        ssh_extra={"ServerAliveInterval": 5}))
    vm = doc["vm"]["t1"]
    assert f"-initrd '{d}/initramfs.gz'" in vm["cmd"]
    assert "-append 'console=ttyS0 quiet no_timer_check qqtest.noacpi'" in vm["cmd"]
    assert any("hostfwd=tcp:127.0.0.1:{{.vm.ssh.port}}-:{{.vm.ssh.vm_port}}" in c
               for c in vm["cmd"])
    assert not any(w in " ".join(vm["cmd"]) for w in ("-serial", "-qmp", "-monitor",
                                                       "-pidfile", "-daemonize"))
    assert vm["ssh"] == {"port": "auto", "IdentityFile": str(d / "id_ed25519"),
                         "User": "root", "StrictHostKeyChecking": "no",
                         "UserKnownHostsFile": "/dev/null", "LogLevel": "ERROR",
                         "ServerAliveInterval": 5}
    assert tomllib.loads(tiny_vm_section(g, 2222))["vm"]["tiny"]["ssh"]["port"] == 2222
