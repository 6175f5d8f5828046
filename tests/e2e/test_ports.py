"""Automatic ssh ports that cannot collide: parallel starts reserve their ports
across qqmgr processes, and a port another program takes between qqmgr's choice
and QEMU's bind is retried with a new one.

Guestless VMs (nothing boots): QEMU with a user-net hostfwd on the automatic port.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import wait_until

BARE = "-nodefaults -machine q35 -m 64 -display none -accel tcg"
HOSTFWD = "-netdev user,id=n0,hostfwd=tcp:127.0.0.1:{{.vm.ssh.port}}-:22"


def auto_port_vms(names, qemu_bin=None):
    head = f'[qemu]\nbin = "{qemu_bin}"\n\n' if qemu_bin else ""
    return head + "".join(
        f'[vm.{n}]\ncmd = ["{BARE}", "{HOSTFWD}"]\n[vm.{n}.ssh]\nport = "auto"\n\n' for n in names)


def listening_inodes(port):
    """inodes of the sockets listening on 127.0.0.1:port (from /proc/net/tcp)."""
    found = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            local, state, inode = cols[1], cols[3], cols[9]
            ip, p = local.split(":")
            if int(p, 16) == port and state == "0A" and ip == "0100007F":
                found.add(inode)
    return found


def socket_inodes_of(pid):
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            t = os.readlink(fd)
        except OSError:
            continue
        if t.startswith("socket:["):
            out.add(t[8:-1])
    return out


def test_eight_parallel_starts_get_eight_different_ports_each_held_by_its_qemu(project, tmp_path):
    names = [f"p{i}" for i in range(8)]
    project.write(auto_port_vms(names))
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    procs = [subprocess.Popen([project.qqmgr, "-c", str(project.config), "start", n, "--json"],
                              cwd=project.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True, env=env) for n in names]
    docs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        docs.append(json.loads(out))
    try:
        ports = [d["ssh_port"] for d in docs]
        assert len(set(ports)) == 8, ports
        for d in docs:
            # the port works: QEMU itself listens on it
            assert listening_inodes(d["ssh_port"]) & socket_inodes_of(d["pid"]), d
            with socket.create_connection(("127.0.0.1", d["ssh_port"]), timeout=5):
                pass
        # reservations end with their start: the registry holds no live entry
        reg = tmp_path / "cache" / "qqmgr" / "ports"
        assert reg.exists() and reg.read_text() == ""
    finally:
        for n in names:
            project.run("stop", n, "--force")


# A QEMU wrapper that, on its first run only, takes the hostfwd port for itself
# (a child process keeps listening on it) before running the real QEMU: another
# program grabbing the port between qqmgr's choice and QEMU's bind.
THIEF = r'''#!/usr/bin/python3
import os, re, socket, sys, time
mark = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stolen")
if not os.path.exists(mark):
    port = int(re.search(r"hostfwd=tcp:127\.0\.0\.1:(\d+)-", " ".join(sys.argv)).group(1))
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    if os.fork() == 0:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        time.sleep(120)
        os._exit(0)
    s.close()
    with open(mark, "w") as f:
        f.write(f"{port}\n")
os.execvp("qemu-system-x86_64", ["qemu-system-x86_64"] + sys.argv[1:])
'''


def _holder_pids(port):
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                if listening_inodes(port) & socket_inodes_of(int(d.name)):
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


def test_a_port_taken_after_it_was_chosen_is_retried_with_a_new_one(project, tmp_path):
    thief = project.path / "qemu-thief"
    thief.write_text(THIEF)
    thief.chmod(0o755)
    project.write(auto_port_vms(["v"], qemu_bin=thief))
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    cp = project.run("start", "v", "--json", env=env)
    mark = project.path / "stolen"
    assert mark.exists(), "the wrapper did not run"
    stolen = int(mark.read_text())
    holders = _holder_pids(stolen)
    try:
        assert cp.returncode == 0, cp.stderr
        doc = json.loads(cp.stdout)
        assert doc["ssh_port"] != stolen
        assert listening_inodes(doc["ssh_port"]) & socket_inodes_of(doc["pid"])
        assert project.json("status", "v", check=True)["ssh"]["port"] == doc["ssh_port"]
    finally:
        for pid in holders:
            os.kill(pid, signal.SIGKILL)
        project.run("stop", "v", "--force")


def test_a_fixed_port_taken_by_another_program_is_not_retried(project, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        project.write(f'[vm.v]\ncmd = ["{BARE}", "{HOSTFWD}"]\n[vm.v.ssh]\nport = {port}\n')
        cp = project.run("start", "v")
        assert cp.returncode == 1
        assert "in use" in cp.stderr


def test_list_and_status_show_uptime_and_every_forwarded_port(project, qqmgr):
    from conftest import free_port
    web, dns = free_port(), free_port()
    project.write(textwrap.dedent(f"""
        [vm.a]
        cmd = ["-nodefaults -machine q35 -m 64 -display none -accel tcg",
               "-netdev user,id=n0,hostfwd=tcp:127.0.0.1:{{{{.vm.ssh.port}}}}-:22,hostfwd=tcp::{web}-:80,hostfwd=udp:127.0.0.1:{dns}-10.0.2.15:53",
               "-device virtio-net-pci,netdev=n0"]
        [vm.a.ssh]
        port = "auto"
        [vm.b]
        cmd = ["-nodefaults -machine q35 -m 64 -display none -accel tcg"]
        """))
    project.run("start", "a", check=True)
    try:
        added = project.json("forward", "a", "add", "tcp:auto:8080", check=True)["host_port"]
        ssh = project.json("status", "a", check=True)["ssh"]["port"]
        want = [("tcp", "127.0.0.1", ssh, 22, "cmd"), ("tcp", "0.0.0.0", web, 80, "cmd"),
                ("udp", "127.0.0.1", dns, 53, "cmd"), ("tcp", "127.0.0.1", added, 8080, "forward")]
        st = project.json("status", "a", check=True)
        assert [(f["proto"], f["host_addr"], f["host_port"], f["guest_port"], f["from"])
                for f in st["forwards"]] == want
        ls = {v["name"]: v for v in project.json("list", check=True)}
        assert ls["a"]["forwards"] == st["forwards"] and isinstance(ls["a"]["uptime"], int)
        assert ls["b"]["forwards"] == [] and ls["b"]["uptime"] is None
        text = project.run("status", "a", check=True).stdout
        assert re.search(r"^uptime: +\d+s \(\d+ s\)$", text, re.M), text
        assert (f"ports:     127.0.0.1:{ssh}->22, 0.0.0.0:{web}->80, udp 127.0.0.1:{dns}->53, "
                f"127.0.0.1:{added}->8080\n") in text
        rows = project.run("list", check=True).stdout.splitlines()
        assert rows[0].split() == ["NAME", "SSH", "STATE", "PID", "UPTIME", "PORTS"]
        a = rows[1].split()
        assert a[0] == "a" and re.fullmatch(r"\d+s", a[4])
        assert rows[1].endswith(f" {ssh}->22,0.0.0.0:{web}->80,udp {dns}->53,{added}->8080")
        assert rows[2].split() == ["b", "-", "stopped", "-", "-", "-"]
    finally:
        project.run("stop", "a", "--force", check=True)


def test_port_registry_symlink_is_not_followed_and_a_wide_one_is_made_private(project, tmp_path):
    project.write(auto_port_vms(["a"]))
    cache = tmp_path / "cache"
    (cache / "qqmgr").mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.write_text("not qqmgr's\n")
    reg = cache / "qqmgr" / "ports"
    reg.symlink_to(victim)
    env = {"XDG_CACHE_HOME": str(cache), "QQMGR_PORT_REGISTRY": ""}
    try:
        project.run("start", "a", check=True, env=env)
        project.run("stop", "a", "--force", check=True, env=env)
        assert reg.is_symlink() and victim.read_text() == "not qqmgr's\n"
        # a registry an older qqmgr (or the umask) left readable by others: 0600 again
        reg.unlink()
        reg.write_text("")
        reg.chmod(0o644)
        project.run("start", "a", check=True, env=env)
        assert (reg.stat().st_mode & 0o777) == 0o600
    finally:
        project.run("stop", "a", "--force", env=env)
