"""ssh, put, get, ssh-config, wait and start --wait against the real tiny guest (TCG)."""
import hashlib
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import Project, reap_qemu_under, wait_until

pytestmark = pytest.mark.guest

BOOT = 240  # seconds: TCG on two busy cores, sanitizer build


@pytest.fixture(scope="module")
def vm(tmp_path_factory, qqmgr, tiny_guest, golden, request):
    """One running tiny guest (auto ssh port) shared by the tests of this module, started
    from the session's booted snapshot (the start --wait test below needs no boot)."""
    from conftest import tiny_vm_cmd, _toml_str
    d = tmp_path_factory.mktemp("sshvm")
    p = Project(d, qqmgr)
    cmd = ",\n".join("  " + _toml_str(c) for c in tiny_vm_cmd(tiny_guest))
    p.write(f"""
[ssh]
StrictHostKeyChecking = "no"
UserKnownHostsFile = "/dev/null"
LogLevel = "ERROR"
ServerAliveInterval = 300

[vm.g]
cmd = [
{cmd}
]
[vm.g.ssh]
port = "auto"
User = "root"
IdentityFile = {_toml_str(tiny_guest.key)}
ServerAliveInterval = 15
""")
    golden.start(p, "g", "--timeout", BOOT)
    yield p
    p.run("stop", "g", "--force")
    reap_qemu_under(d)


def test_start_wait_with_auto_port_makes_ssh_work_at_once(vm):
    st = vm.json("status", "g")
    assert st["running"] is True
    port = st["ssh"]["port"]
    assert isinstance(port, int) and port > 1024
    r = vm.run("ssh", "g", "echo", "hello")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello\n"


def test_remote_exit_status_is_qqmgrs_exit_status(vm):
    assert vm.run("ssh", "g", "exit 7").returncode == 7
    assert vm.run("ssh", "g", "true").returncode == 0
    assert vm.run("ssh", "g", "false").returncode == 1


def test_stdin_is_piped_to_the_remote_command(vm):
    data = "line one\nline two\n" * 1000
    r = vm.run("ssh", "g", "wc -l", input=data)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "2000"


def test_arguments_with_quotes_and_spaces_pass_through_untouched(vm):
    # like plain ssh: the words are joined with spaces and run by the remote shell
    r = vm.run("ssh", "g", "printf", "'%s|'", "'a b'", '"c  d"', "--json")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "a b|c  d|--json|"


def test_put_and_get_a_2mib_file_keep_its_checksum(vm, tmp_path):
    blob = os.urandom(2 * 1024 * 1024)
    src = tmp_path / "blob.bin"
    src.write_bytes(blob)
    assert vm.run("put", "g", src, "/tmp/blob.bin").returncode == 0
    r = vm.run("ssh", "g", "sha256sum /tmp/blob.bin")
    assert r.stdout.split()[0] == hashlib.sha256(blob).hexdigest()
    back = tmp_path / "back.bin"
    r = vm.run("get", "g", "/tmp/blob.bin", back)
    assert r.returncode == 0, r.stderr
    assert back.read_bytes() == blob


def test_put_and_get_a_directory_tree_with_a_space_in_a_name(vm, tmp_path):
    tree = tmp_path / "my tree"
    (tree / "sub dir").mkdir(parents=True)
    (tree / "a.txt").write_text("alpha\n")
    (tree / "sub dir" / "b c.txt").write_text("beta\n")
    r = vm.run("put", "g", tree, "/tmp/tree1")
    assert r.returncode == 0, r.stderr
    r = vm.run("ssh", "g", "cat '/tmp/tree1/sub dir/b c.txt'")
    assert r.stdout == "beta\n", r.stderr
    out = tmp_path / "out"
    r = vm.run("get", "g", "/tmp/tree1", out)
    assert r.returncode == 0, r.stderr
    assert (out / "a.txt").read_text() == "alpha\n"
    assert (out / "sub dir" / "b c.txt").read_text() == "beta\n"


def test_copy_errors_from_the_far_side_are_shown_and_fail(vm, tmp_path):
    r = vm.run("get", "g", "/nonexistent/file", tmp_path / "x")
    assert r.returncode == 1
    assert "nonexistent" in r.stderr


def test_ssh_config_works_with_plain_ssh(vm):
    text = vm.run("ssh-config", "g", check=True).stdout
    assert "HostName 127.0.0.1" in text and "ControlMaster auto" in text
    # VM keys come before global keys: ssh keeps the first value
    assert text.index("ServerAliveInterval 15") < text.index("ServerAliveInterval 300")
    conf = vm.vm_dir("g") / "ssh.conf"
    assert conf.read_text() == text
    r = subprocess.run(["ssh", "-F", str(conf), "g", "echo", "plain"], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "plain\n"


def test_connection_master_is_up_and_reused(vm):
    conf = vm.vm_dir("g") / "ssh.conf"
    r = subprocess.run(["ssh", "-F", str(conf), "-O", "check", "g"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    t0 = time.monotonic()
    for _ in range(3):
        assert vm.run("ssh", "g", "true").returncode == 0
    # through the master, a round trip needs no new key exchange (that takes seconds under TCG)
    assert (time.monotonic() - t0) / 3 < 2.0


def test_ssh_to_a_vm_that_is_not_running_fails_with_a_message(project, tiny_vm_toml):
    project.write(tiny_vm_toml("auto"))
    r = project.run("ssh", "tiny", "true")
    assert r.returncode == 1
    assert "not running" in r.stderr
    r = project.run("put", "tiny", "/etc/hostname", "/tmp/x")
    assert r.returncode == 1 and "not running" in r.stderr


def test_ssh_without_a_port_refuses_clearly(project):
    project.write('[vm.noport]\ncmd = ["-m 64"]\n')
    r = project.run("ssh", "noport", "true")
    assert r.returncode == 2
    assert "no ssh port" in r.stderr


def test_wait_names_the_stage_when_sshd_never_comes_up(project, tiny_vm_toml):
    project.write(tiny_vm_toml("auto", extra_append="qqtest.nosshd"))
    project.run("start", "tiny", check=True)
    t0 = time.monotonic()
    r = project.run("wait", "tiny", "--timeout", "8")
    took = time.monotonic() - t0
    assert r.returncode == 1
    assert "timed out" in r.stderr and "ssh" in r.stderr
    assert took < 30
    project.run("stop", "tiny", "--force")


def test_kill_9_then_start_wait_and_ssh_work_again(project, tiny_vm_toml, golden):
    project.write(tiny_vm_toml("auto"))
    golden.start(project, "tiny", "--timeout", BOOT)   # running; the start after the kill boots
    assert project.run("ssh", "tiny", "true").returncode == 0
    pid = project.json("status", "tiny")["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not project.json("status", "tiny")["running"], 30)
    r = project.run("start", "tiny", "--wait", "--timeout", BOOT)
    assert r.returncode == 0, r.stderr
    r = project.run("ssh", "tiny", "echo", "again", timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "again\n"
    stop = project.run("stop", "tiny")
    assert stop.returncode == 0


def test_ssh_config_of_a_stopped_vm_with_a_fixed_port_is_written(project):
    from conftest import free_port
    port = free_port()
    project.write(f'[vm.f]\ncmd = ["-m 64"]\n[vm.f.ssh]\nport = {port}\nIdentityFile = "keys/id"\n')
    r = project.run("ssh-config", "f")
    assert r.returncode == 0, r.stderr
    assert f"Port {port}" in r.stdout
    # a relative IdentityFile is relative to the config's directory, wherever qqmgr runs
    assert f"IdentityFile \"{project.path}/keys/id\"" in r.stdout
    project.write('[vm.f]\ncmd = ["-m 64"]\n[vm.f.ssh]\nport = "auto"\n')
    r = project.run("ssh-config", "f")
    assert r.returncode == 1 and "not running" in r.stderr
