"""-H HOST: commands run by qqmgr on another host through OpenSSH.

The "other host" is a real OpenSSH sshd (Debian openssh-server) started by the test on
a free loopback port, with its own host key and authorized_keys in a temp dir; the
remote qqmgr is the build under test (QQMGR_REMOTE_BIN). The client side uses
QQMGR_SSH_CONFIG (ssh -F) with a throwaway key.
"""

import json
import os
import shutil
import socket
import subprocess
import time

import pytest

from conftest import Project, free_port, reap_qemu_under, wait_until

SSHD = "/usr/sbin/sshd"
BARE = "-nodefaults -machine q35 -m 64 -display none -accel tcg"

pytestmark = pytest.mark.skipif(not os.path.exists(SSHD) or os.geteuid() != 0,
                                reason="needs openssh-server (tools/deps.sh) and root")


def _banner(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            return s.recv(4).startswith(b"SSH-")
    except OSError:
        return False


class Sshd:
    def __init__(self, d, port, proc, ssh_config, qqmgr):
        self.dir, self.port, self.proc, self.ssh_config, self.qqmgr = d, port, proc, ssh_config, qqmgr

    def env(self, **extra):
        e = dict(os.environ, QQMGR_SSH_CONFIG=str(self.ssh_config), QQMGR_REMOTE_BIN=self.qqmgr)
        e.pop("QQMGR_HOST", None)
        e.update(extra)
        return e


@pytest.fixture(scope="module")
def sshd(tmp_path_factory, qqmgr):
    d = tmp_path_factory.mktemp("sshd")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "client_key")], check=True)
    shutil.copy(d / "client_key.pub", d / "authorized_keys")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)   # sshd's privilege separation dir
    port = free_port()
    (d / "sshd_config").write_text(f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {d}/host_key
AuthorizedKeysFile {d}/authorized_keys
StrictModes no
PidFile {d}/sshd.pid
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
LogLevel ERROR
""")
    (d / "ssh_config").write_text(f"""\
Host qqhost
    HostName 127.0.0.1
    Port {port}
Host *
    User root
    IdentityFile {d}/client_key
    IdentitiesOnly yes
    BatchMode yes
    ConnectTimeout 10
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
    LogLevel ERROR
""")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")],
                            stdout=subprocess.DEVNULL, stderr=open(d / "sshd.log", "w"))
    try:
        wait_until(lambda: _banner(port) or proc.poll() is not None, 20, what="sshd to answer")
        assert proc.poll() is None, (d / "sshd.log").read_text()
        yield Sshd(d, port, proc, d / "ssh_config", qqmgr)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run_h(project, sshd, host, *args, env=None, input=None, timeout=120):
    """qqmgr -H HOST -c CONFIG ARGS… with the test's ssh config."""
    argv = [project.qqmgr, "-H", host, "-c", str(project.config), *map(str, args)]
    return subprocess.run(argv, cwd=project.path, capture_output=True, text=True, timeout=timeout,
                          env=env or sshd.env(), input=input,
                          stdin=None if input is not None else subprocess.DEVNULL)


# ------------------------------------------------------------------ commands on the host

def test_json_output_through_the_host_is_byte_for_byte_the_remote_one(project, sshd):
    project.write(f'[vm.bare]\ncmd = ["{BARE}"]\n[vm.other]\ncmd = ["{BARE}"]\n')
    here = project.run("list", "--json", check=True)
    there = run_h(project, sshd, "qqhost", "list", "--json")
    assert there.returncode == 0, there.stderr
    assert there.stdout == here.stdout
    assert there.stderr == ""


def test_start_status_stop_on_the_host_and_exit_status_passed_through(project, sshd):
    project.write(f'[vm.bare]\ncmd = ["{BARE}"]\n')
    try:
        st = run_h(project, sshd, "qqhost", "start", "bare", "--json")
        assert st.returncode == 0, st.stderr
        pid = json.loads(st.stdout)["pid"]
        # the VM runs on the host, and the local view agrees
        assert project.json("status", "bare", check=True)["pid"] == pid
        bad = run_h(project, sshd, "qqhost", "status", "nosuch")
        assert bad.returncode == 2
        assert 'no VM named "nosuch"' in bad.stderr
        stop = run_h(project, sshd, "qqhost", "stop", "bare", "--force", "--json")
        assert stop.returncode == 0 and json.loads(stop.stdout)["was_running"] is True
    finally:
        project.run("stop", "bare", "--force")


def test_arguments_reach_the_remote_qqmgr_exactly_as_given(project, sshd):
    project.write(f'[vm.bare]\ncmd = ["{BARE}"]\n')
    try:
        project.run("start", "bare", check=True)
        # spaces, quotes, $, ;, * and a backslash must not be touched by the remote shell
        weird = "echo 'a  b' \"$HOME\"; ls * \\n"
        r = run_h(project, sshd, "qqhost", "qmp", "bare", "human-monitor-command",
                  json.dumps({"command-line": weird}))
        assert r.returncode == 0, r.stderr
        # HMP echoes an unknown command's name; what matters is that it got one argument intact
        here = project.run("qmp", "bare", "human-monitor-command", json.dumps({"command-line": weird}))
        assert r.stdout == here.stdout
        r = run_h(project, sshd, "qqhost", "monitor", "bare", "info status")
        assert r.returncode == 0 and "running" in r.stdout
    finally:
        project.run("stop", "bare", "--force")


def test_host_forms_ssh_url_user_port_and_qqmgr_host_variable(project, sshd):
    project.write(f'[vm.bare]\ncmd = ["{BARE}"]\n')
    want = project.run("list", "--json", check=True).stdout
    for host in (f"ssh://root@127.0.0.1:{sshd.port}", f"root@127.0.0.1:{sshd.port}",
                 f"ssh://127.0.0.1:{sshd.port}/"):
        r = run_h(project, sshd, host, "list", "--json")
        assert r.returncode == 0 and r.stdout == want, (host, r.stderr)
    argv = [project.qqmgr, "-c", str(project.config), "list", "--json"]
    r = subprocess.run(argv, cwd=project.path, capture_output=True, text=True, timeout=60,
                       env=sshd.env(QQMGR_HOST="qqhost"), stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and r.stdout == want, r.stderr


def test_unreachable_host_is_exit_1_with_ssh_reason(project, sshd):
    project.write(f'[vm.bare]\ncmd = ["{BARE}"]\n')
    closed = free_port()
    r = run_h(project, sshd, f"127.0.0.1:{closed}", "list")
    assert r.returncode == 1
    assert "Connection refused" in r.stderr           # ssh's own reason
    assert f"qqmgr: -H 127.0.0.1: ssh failed" in r.stderr


def test_host_without_qqmgr_is_exit_1_qqmgr_not_found(project, sshd):
    project.write(f'[vm.bare]\ncmd = ["{BARE}"]\n')
    r = run_h(project, sshd, "qqhost", "list", env=sshd.env(QQMGR_REMOTE_BIN="/nonexistent/qqmgr"))
    assert r.returncode == 1
    assert "qqmgr not found on qqhost" in r.stderr


def test_bad_host_spec_is_a_usage_error(project, sshd):
    project.write(f'[vm.bare]\ncmd = ["{BARE}"]\n')
    for bad in ("-oProxyCommand=x", "host:99999", "a b", "host:"):
        r = run_h(project, sshd, bad, "list")
        assert r.returncode == 2, bad
        assert "-H: expected [ssh://][USER@]HOST[:PORT]" in r.stderr


# ------------------------------------------------------------------ ssh, put, get through the host

BOOT = 240


@pytest.mark.guest
def test_ssh_put_get_reach_the_guest_through_the_host(tmp_path, qqmgr, sshd, tiny_guest, golden):
    from conftest import tiny_vm_section
    (tmp_path / "g").mkdir()
    p = Project(tmp_path / "g", qqmgr)
    # host keys pinned by qqmgr (the fixture's section turns checking off)
    section = tiny_vm_section(tiny_guest, "auto", name="g")
    section = "\n".join(l for l in section.splitlines()
                         if not l.startswith(("StrictHostKeyChecking", "UserKnownHostsFile")))
    p.write(section + "\n")
    golden.place(p, "g")   # the guest booted once per session: the test is of what reaches it
    try:
        r = run_h(p, sshd, "qqhost", "start", "g", "--restore", "booted", "--wait", "--timeout", BOOT,
                  timeout=BOOT + 30)
        assert r.returncode == 0, r.stderr
        r = run_h(p, sshd, "qqhost", "ssh", "g", "echo", "hello", "'x  y'")
        assert r.returncode == 0, r.stderr
        assert r.stdout == "hello x  y\n"
        assert run_h(p, sshd, "qqhost", "ssh", "g", "exit 5").returncode == 5

        src = tmp_path / "payload.bin"
        src.write_bytes(os.urandom(200_000))
        r = run_h(p, sshd, "qqhost", "put", "g", src, "/tmp/payload.bin")
        assert r.returncode == 0, r.stderr
        back = tmp_path / "back.bin"
        r = run_h(p, sshd, "qqhost", "get", "g", "/tmp/payload.bin", back)
        assert r.returncode == 0, r.stderr
        assert back.read_bytes() == src.read_bytes()

        # the guest was reached through the host: the config ssh used has the hop
        cache = tmp_path / "cache"
        r = run_h(p, sshd, "qqhost", "-d", "ssh", "g", "true", env=sshd.env(XDG_CACHE_HOME=str(cache)))
        assert r.returncode == 0, r.stderr
        assert "ProxyCommand ssh -F " in r.stderr and f"-W %h:%p qqhost" in r.stderr
        assert "ControlPath none" in r.stderr
        # the host qqmgr's own connector (ProxyCommand … __connect, ProxyUseFdpass) is the
        # host's way to its guest: left out here, without a warning
        assert "were left out" not in r.stderr
        conf = (cache / "qqmgr" / "remote" / "qqhost" / "g.ssh.conf").read_text()
        assert "__connect" not in conf and "fdpass" not in conf.lower(), conf
        # the host's pinned guest key is mirrored here and used
        local = cache / "qqmgr" / "remote" / "qqhost"
        assert (local / "g.ssh.conf").is_file()
        assert f'UserKnownHostsFile "{local}/g.known_hosts"' in r.stderr
        remote_pins = (p.vm_dir("g") / "known_hosts").read_text()
        assert remote_pins.strip() and (local / "g.known_hosts").read_text() == remote_pins
    finally:
        p.run("stop", "g", "--force")
        reap_qemu_under(tmp_path)


# ------------------------------------------------------------------ what the host's ssh config may do here

HOSTILE = {   # the host's [vm.NAME.ssh] options that would run or forward something here
    "PermitLocalCommand": "yes",
    "LocalCommand": "touch {proof}/LocalCommand",
    "KnownHostsCommand": "/bin/sh -c 'touch {proof}/KnownHostsCommand'",
    "ProxyJump": "nobody@192.0.2.1",
    "ForwardAgent": "yes",
    "ForwardX11": "yes",
    "ForwardX11Trusted": "yes",
    "LocalForward": "127.0.0.1:{fwd} 127.0.0.1:22",
    "RemoteForward": "127.0.0.1:{fwd} 127.0.0.1:22",
    "DynamicForward": "127.0.0.1:{fwd}",
    "PKCS11Provider": "{proof}/pkcs11.so",
    "SecurityKeyProvider": "{proof}/sk.so",
    "SendEnv": "QQ_SECRET",
    "Include": "{proof}/more.conf",
    "IdentityAgent": "{proof}/agent.sock",
}


def test_host_ssh_options_that_run_or_forward_here_are_left_out_with_one_warning(tmp_path, qqmgr, sshd):
    """The VM is the test's sshd itself (a fixed port), so `-H qqhost ssh VM` connects
    through the host without a guest; every hostile option would leave a proof file."""
    proof = tmp_path / "proof"
    proof.mkdir()
    (proof / "more.conf").write_text(f"PermitLocalCommand yes\nLocalCommand touch {proof}/Include\n")
    fwd = free_port()
    (tmp_path / "h").mkdir()
    p = Project(tmp_path / "h", qqmgr)
    opts = "\n".join(f'{k} = "{v.format(proof=proof, fwd=fwd)}"' for k, v in HOSTILE.items())
    p.write(f"""
[vm.h]
cmd = ["{BARE}"]
[vm.h.ssh]
port = {sshd.port}
User = "root"
IdentityFile = "{sshd.dir}/client_key"
IdentitiesOnly = "yes"
StrictHostKeyChecking = "no"
UserKnownHostsFile = "/dev/null"
LogLevel = "ERROR"
BatchMode = "yes"
{opts}
""")
    cache = tmp_path / "cache"
    r = run_h(p, sshd, "qqhost", "ssh", "h", "echo", "through", env=sshd.env(XDG_CACHE_HOME=str(cache)))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "through\n"
    assert sorted(os.listdir(proof)) == ["more.conf"]          # nothing ran here
    warnings = [l for l in r.stderr.splitlines() if "were left out" in l]
    assert len(warnings) == 1, r.stderr
    for k in HOSTILE:
        assert k in warnings[0], (k, warnings[0])
    assert "ControlPath" not in warnings[0]                     # the host's sharing: silently
    conf = (cache / "qqmgr" / "remote" / "qqhost" / "h.ssh.conf").read_text()
    for k in HOSTILE:
        assert k.lower() not in conf.lower(), (k, conf)
    # what cannot act here is copied
    assert 'User "root"' in conf and f"Port {sshd.port}" in conf and 'BatchMode "yes"' in conf
    assert f"{sshd.dir}/client_key" in conf


def test_host_ssh_paths_that_are_not_plain_files_here_are_left_out(tmp_path, qqmgr, sshd):
    (tmp_path / "h").mkdir()
    p = Project(tmp_path / "h", qqmgr)
    p.write(f"""
[vm.h]
cmd = ["{BARE}"]
[vm.h.ssh]
port = {sshd.port}
User = "root"
IdentityFile = ["{sshd.dir}/client_key", "%d/.ssh/from-the-host", "{tmp_path}/missing", "{tmp_path}"]
IdentitiesOnly = "yes"
StrictHostKeyChecking = "no"
UserKnownHostsFile = "/dev/null"
LogLevel = "ERROR"
BatchMode = "yes"
""")
    cache = tmp_path / "cache"
    r = run_h(p, sshd, "qqhost", "ssh", "h", "true", env=sshd.env(XDG_CACHE_HOME=str(cache)))
    assert r.returncode == 0, r.stderr
    conf = (cache / "qqmgr" / "remote" / "qqhost" / "h.ssh.conf").read_text()
    ids = [l.strip() for l in conf.splitlines() if l.strip().lower().startswith("identityfile")]
    assert ids == [f'IdentityFile "{sshd.dir}/client_key"'], conf
    assert len([l for l in r.stderr.splitlines() if "IdentityFile" in l]) == 1


def test_host_config_with_match_exec_or_a_second_host_block_runs_nothing_here(tmp_path, qqmgr, sshd):
    """A real qqmgr never writes Match or a second Host (its config refuses them), so the
    host's qqmgr is a stand-in printing such a document: what a changed qqmgr there could send."""
    proof = tmp_path / "proof"
    proof.mkdir()
    config = (f"Host h\n    HostName 127.0.0.1\n    Port {sshd.port}\n    User root\n"
              f"    IdentityFile {sshd.dir}/client_key\n    IdentitiesOnly yes\n    BatchMode yes\n"
              f"    StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null\n    LogLevel ERROR\n"
              f"Match exec \"touch {proof}/match\"\n    LocalCommand touch {proof}/local\n"
              f"Host *\n    PermitLocalCommand yes\n    LocalCommand touch {proof}/star\n    User nobody\n")
    doc = json.dumps({"host": "h", "port": sshd.port, "config": config})
    fake = tmp_path / "fake-qqmgr"
    fake.write_text(f"#!/bin/sh\ncat <<'EOF'\n{doc}\nEOF\n")
    fake.chmod(0o755)
    (tmp_path / "h").mkdir()
    p = Project(tmp_path / "h", qqmgr)
    p.write(f'[vm.h]\ncmd = ["{BARE}"]\n')
    r = run_h(p, sshd, "qqhost", "ssh", "h", "echo", "ok",
              env=sshd.env(QQMGR_REMOTE_BIN=str(fake), XDG_CACHE_HOME=str(tmp_path / "cache")))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ok\n"
    assert os.listdir(proof) == []
    warnings = [l for l in r.stderr.splitlines() if "were left out" in l]
    assert len(warnings) == 1 and "Match" in warnings[0] and "Host" in warnings[0], r.stderr
    conf = (tmp_path / "cache" / "qqmgr" / "remote" / "qqhost" / "h.ssh.conf").read_text()
    assert "nobody" not in conf   # nothing after a second Host or a Match is copied
