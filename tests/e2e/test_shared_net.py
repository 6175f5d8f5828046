"""VMs that talk to each other without root, privately: a [net.NAME] section is a
switch (vde_switch, Debian's vde2) that qqmgr starts with the network's first VM and
stops with its last; its socket dir ({{.net.NAME.sock}}) is 0700 in the user's private
runtime dir, so another local user can neither read nor inject frames (the multicast
group used before was open to every local process). Two tiny guests ping each other
and connect over TCP on that segment; the guests are started with one `start a b --wait`.
"""

import json
import os
import signal
import stat
import textwrap
from pathlib import Path

import pytest

from conftest import reap_qemu_under, tiny_vm_section, wait_until

BOOT = 300
LAN = ["-netdev vde,id=lan,sock={{.net.lan.sock}}",
       "-device virtio-net-pci,netdev=lan,mac={{.vm.mac}}"]
BARE = "-nodefaults -machine q35 -m 64 -display none -accel tcg"


def netdev_of(argv, id_="lan"):
    return next(argv[i + 1] for i, a in enumerate(argv)
                if a == "-netdev" and f"id={id_}" in argv[i + 1])


def sock_of(argv):
    nd = netdev_of(argv)
    return nd.split("sock=")[1].split(",")[0]


def test_net_sock_is_the_same_for_every_vm_and_every_start_and_private(project):
    project.write(f"""
[net.lan]
[net.other]
[vm.a]
cmd = ["{BARE}", "-netdev vde,id=lan,sock={{{{.net.lan.sock}}}}"]
[vm.b]
cmd = ["{BARE}", "-netdev vde,sock={{{{.net.lan.sock}}}},id=lan", "-netdev vde,id=o,sock={{{{.net.other.sock}}}}"]
""")
    a = project.json("show", "a", check=True)["argv"]
    b = project.json("show", "b", check=True)["argv"]
    sock = sock_of(a)
    assert sock == sock_of(b)
    assert sock != netdev_of(b, "o").split("sock=")[1]
    assert project.json("show", "a", check=True)["argv"] == a   # stable
    # in the user's private runtime dir, not under the (maybe shared) project dir
    rd = Path(sock).parent
    assert not str(rd).startswith(str(project.path))
    # another config (another state dir) gets another network
    other = project.path / "other"
    other.mkdir()
    (other / "qqmgr.toml").write_text(project.config.read_text())
    cp = project.run("-c", other / "qqmgr.toml", "show", "a", "--json")
    assert sock_of(json.loads(cp.stdout)["argv"]) != sock


@pytest.mark.parametrize("key", ["port = 4444", 'group = "239.1.2.3"'])
def test_multicast_keys_of_a_net_are_a_config_error_saying_what_to_write(project, key):
    project.write(f"[net.lan]\n{key}\n[vm.a]\ncmd = [\"{BARE}\"]\n")
    r = project.run("show", "a")
    assert r.returncode == 2
    assert "qqmgr.toml:2:" in r.stderr
    assert "-netdev vde,id=ID,sock={{.net.lan.sock}}" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("field", ["mcast", "port", "group"])
def test_multicast_fields_in_a_template_say_what_to_write(project, field):
    project.write(f"""
[net.lan]
[vm.a]
cmd = ["{BARE}", "-netdev socket,id=lan,mcast={{{{.net.lan.{field}}}}}"]
""")
    r = project.run("show", "a")
    assert r.returncode == 2
    assert "qqmgr.toml:4:" in r.stderr
    assert f".net.lan.{field} is gone" in r.stderr
    assert "-netdev vde,id=ID,sock={{.net.lan.sock}}" in r.stderr


# What another local user tries against the network a VM joins (its -netdev value):
# a multicast group is joined and read, then a frame sent to it; a vde switch's socket
# dir is listed and its control socket connected to. Prints a JSON report.
ATTACK = textwrap.dedent(r"""
    import json, socket, struct, sys, os
    nd = sys.argv[1]
    rep = {"read": 0, "sent": False, "connected": False, "errors": []}
    opts = dict(o.split("=", 1) for o in nd.split(",")[1:] if "=" in o)
    if "mcast" in opts:
        group, port = opts["mcast"].rsplit(":", 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("", int(port)))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                     struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton("127.0.0.1")))
        s.settimeout(20)
        try:
            rep["read"] = len(s.recv(4096))
        except OSError as e:
            rep["errors"].append(str(e))
        # a broadcast ARP request for 192.168.77.1
        frame = (b"\xff" * 6 + b"\x52\x54\x00\x66\x66\x66" + b"\x08\x06" +
                 b"\x00\x01\x08\x00\x06\x04\x00\x01" + b"\x52\x54\x00\x66\x66\x66" +
                 bytes([192, 168, 77, 99]) + b"\x00" * 6 + bytes([192, 168, 77, 1]))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        rep["sent"] = s.sendto(frame, (group, int(port))) > 0
    if "sock" in opts:
        d = opts["sock"]
        try:
            rep["listed"] = os.listdir(d)
        except OSError as e:
            rep["errors"].append(str(e))
        try:
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(os.path.join(d, "ctl"))
            rep["connected"] = True
        except OSError as e:
            rep["errors"].append(str(e))
    print(json.dumps(rep))
""")


@pytest.mark.guest
def test_two_guests_on_a_shared_network_ping_and_connect_and_nobody_else_gets_in(
        project, tiny_guest, other_user):
    text = ""
    for name, mac in (("a", "52:54:00:77:00:01"), ("b", "52:54:00:77:00:02")):
        text += tiny_vm_section(tiny_guest, "auto", name=name, extra_args=LAN)
        text += f'[vm.{name}.vars]\nmac = "{mac}"\n\n'
    project.write("[net.lan]\n\n" + text)
    sock = None
    try:
        r = project.run("start", "a", "b", "--wait", "--timeout", BOOT, timeout=BOOT + 60)
        assert r.returncode == 0, r.stderr
        argv = json.loads((project.vm_dir("a") / "argv.json").read_text())
        nd = netdev_of(argv)
        sock = sock_of(argv) if "sock=" in nd else None
        if sock:
            st = os.stat(sock)
            assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.geteuid()
        for name, ip in (("a", "192.168.77.1"), ("b", "192.168.77.2")):
            project.run("ssh", name, f"ip link set eth1 up && ip addr add {ip}/24 dev eth1", check=True)

        def ping(src, dst):
            return project.run("ssh", src, f"ping -c 1 -W 2 {dst}", timeout=30).returncode == 0
        wait_until(lambda: ping("a", "192.168.77.2"), 60, 0.5, what="a pings b")
        wait_until(lambda: ping("b", "192.168.77.1"), 60, 0.5, what="b pings a")

        # another user, while a pings b: reads nothing, reaches nothing
        project.run("ssh", "a", "ping -c 25 -i 0.5 192.168.77.2 >/dev/null 2>&1 </dev/null & echo started",
                    check=True)
        cp = other_user.run(["/usr/bin/python3", "-c", ATTACK, nd], timeout=60)
        assert cp.returncode == 0, cp.stderr
        rep = json.loads(cp.stdout)
        assert rep["read"] == 0 and not rep["sent"] and not rep["connected"], rep
        assert "listed" not in rep, rep
        # the guest saw no stranger's ARP request
        neigh = project.run("ssh", "a", "ip neigh show 192.168.77.99").stdout
        assert "52:54:00:66:66:66" not in neigh

        # TCP: b listens, a connects and sends a line
        project.run("ssh", "b", "nc -l -p 7777 > /tmp/got 2>/dev/null </dev/null & echo started", check=True)
        def sent():
            return project.run("ssh", "a", "echo hello-over-lan | nc -w 3 192.168.77.2 7777",
                               timeout=30).returncode == 0
        wait_until(sent, 60, 0.5, what="a connects to b:7777")
        got = wait_until(lambda: project.run("ssh", "b", "cat /tmp/got").stdout.strip(), 30, 0.5)
        assert got == "hello-over-lan"

        # the switch lives as long as a VM of the network runs
        project.run("stop", "a", "--force", check=True)
        assert os.path.exists(os.path.join(sock, "ctl"))
        project.run("stop", "b", "--force", check=True)
        assert not os.path.exists(sock)
        assert not os.path.exists(sock + ".pid")
    finally:
        project.run("stop", "--all", "--force")
        reap_qemu_under(project.path)
        if sock and os.path.exists(sock + ".pid"):   # a switch qqmgr left: this test's
            os.kill(int(Path(sock + ".pid").read_text()), signal.SIGKILL)
