"""ssh reaches a VM through `qqmgr __connect HOST PORT` (the ProxyCommand of the VM's
ssh.conf, with ProxyUseFdpass): it connects with TCP_NODELAY and hands ssh the socket.

OpenSSH sets TCP_NODELAY only on interactive sessions; without it the two small packets
it sends after the key exchange wait for the server's delayed ACK (40 ms on Linux) on
every new connection. The tests pin what ssh sees: a connected socket with TCP_NODELAY
over its fd-passing pipe, ssh's own words when nobody listens, and a real OpenSSH
client reaching a real sshd through a qqmgr that lives in an odd directory.
"""
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import Project, free_port
from test_remote import SSHD, sshd  # noqa: F401  (the real sshd on loopback, a fixture)


def connector(qqmgr, port, stdout):
    # QQMGR_HOST (run commands on another host) does not send ssh's connector there
    env = dict(os.environ, QQMGR_HOST="nowhere.invalid")
    return subprocess.run([qqmgr, "__connect", "127.0.0.1", str(port)], stdout=stdout, env=env,
                          stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, timeout=30)


def test_connector_hands_over_a_connected_socket_with_nodelay(qqmgr):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        theirs, ssh_end = socket.socketpair()
        with theirs, ssh_end:
            r = connector(qqmgr, listener.getsockname()[1], theirs.fileno())
            assert r.returncode == 0, r.stderr
            data, fds, _, _ = socket.recv_fds(ssh_end, 1, 1)
        assert data == b"\0" and len(fds) == 1
        with socket.socket(fileno=fds[0]) as got, listener.accept()[0] as peer:
            assert got.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
            assert got.getpeername() == listener.getsockname()
            got.sendall(b"SSH-2.0-probe\r\n")
            assert peer.recv(64) == b"SSH-2.0-probe\r\n"


def test_connector_says_who_refused_and_exits_1(qqmgr):
    port = free_port()
    a, b = socket.socketpair()
    with a, b:
        r = connector(qqmgr, port, a.fileno())
    assert r.returncode == 1
    assert r.stderr == f"qqmgr: connect to host 127.0.0.1 port {port}: Connection refused\n"


def test_connector_on_a_terminal_or_file_is_a_usage_error(qqmgr, tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        with open(tmp_path / "out", "wb") as f:
            r = connector(qqmgr, listener.getsockname()[1], f)
    assert r.returncode == 2
    assert "stdout is not a socket" in r.stderr and "ProxyUseFdpass" in r.stderr


def test_connector_is_not_in_help_or_completion(qqmgr):
    overview = subprocess.run([qqmgr, "--help"], capture_output=True, text=True, check=True).stdout
    assert "__connect" not in overview
    offered = subprocess.run([qqmgr, "__complete", "0", "__"], capture_output=True, text=True).stdout
    assert "__connect" not in offered


@pytest.mark.skipif(not os.path.exists(SSHD) or os.geteuid() != 0, reason="needs openssh-server and root")
def test_real_ssh_reaches_a_real_sshd_through_a_qqmgr_in_an_odd_directory(qqmgr, sshd):  # noqa: F811
    base = Path(tempfile.mkdtemp(prefix="qqc", dir="/tmp"))
    try:
        odd = base / "bin dir 'q' 100%d $HOME"
        odd.mkdir()
        shutil.copy(qqmgr, odd / "qqmgr")
        p = Project(base, str(odd / "qqmgr"))
        p.write(f"""
[vm.h]
cmd = ["-nodefaults"]
[vm.h.ssh]
port = {sshd.port}
User = "root"
IdentityFile = "{sshd.dir}/client_key"
IdentitiesOnly = "yes"
BatchMode = "yes"
StrictHostKeyChecking = "no"
UserKnownHostsFile = "/dev/null"
""")
        assert p.run("ssh-config", "h").returncode == 0
        conf = p.vm_dir("h") / "ssh.conf"
        r = subprocess.run(["ssh", "-v", "-F", str(conf), "-o", "ControlPath=none", "h", "echo", "through"], capture_output=True,
                           text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "through\n"
        # ssh ran this qqmgr as its connector, and used the socket it handed over
        proxy = [l.split(" command: exec ", 1)[1] for l in r.stderr.splitlines() if "Executing proxy" in l]
        assert proxy, r.stderr
        # (ssh's log writes a backslash as two)
        assert shlex.split(proxy[0].replace("\\\\", "\\")) == [f"{odd}/qqmgr", "__connect", "127.0.0.1", str(sshd.port)]
        # a refused port: ssh fails, naming it through the connector
        p.write(f'[vm.h]\ncmd = ["-nodefaults"]\n[vm.h.ssh]\nport = {free_port()}\nBatchMode = "yes"\n')
        assert p.run("ssh-config", "h").returncode == 0
        r = subprocess.run(["ssh", "-F", str(conf), "-o", "ControlPath=none", "h", "true"], capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 255 and "Connection refused" in r.stderr, r.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)
