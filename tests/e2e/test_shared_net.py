"""VMs that talk to each other without root: a [net.NAME] section gives every VM of the
config the same multicast group and port ({{.net.NAME.mcast}}), used with QEMU's
`-netdev socket,mcast=…,localaddr=127.0.0.1`. Two tiny guests ping each other and
connect over TCP on that segment; the guests are started with one `start a b --wait`.
"""

import json

import pytest

from conftest import reap_qemu_under, tiny_vm_section, wait_until

pytestmark = pytest.mark.guest

BOOT = 300
LAN = ["-netdev socket,id=lan,mcast={{.net.lan.mcast}},localaddr=127.0.0.1",
       "-device virtio-net-pci,netdev=lan,mac={{.vm.mac}}"]


def test_net_port_and_group_are_the_same_for_every_vm_and_every_start(project):
    bare = "-nodefaults -machine q35 -m 64 -display none -accel tcg"
    project.write(f"""
[net.lan]
[net.fixed]
port = 4444
group = "230.9.9.9"
[vm.a]
cmd = ["{bare}", "-netdev socket,id=l,mcast={{{{.net.lan.mcast}}}},localaddr=127.0.0.1 {{{{.net.fixed.mcast}}}}"]
[vm.b]
cmd = ["{bare}", "-netdev socket,id=l,mcast={{{{.net.lan.group}}}}:{{{{.net.lan.port}}}},localaddr=127.0.0.1 {{{{.net.fixed.mcast}}}}"]
""")
    a = project.json("show", "a", check=True)["argv"]
    b = project.json("show", "b", check=True)["argv"]
    mcast_a = a[a.index("-netdev") + 1]
    assert mcast_a == b[b.index("-netdev") + 1]
    group_port = mcast_a.split("mcast=")[1].split(",")[0]
    group, port = group_port.split(":")
    assert group.startswith("239.") and 10000 <= int(port) < 32768
    assert "230.9.9.9:4444" in a
    assert project.json("show", "a", check=True)["argv"] == a   # stable
    # another config (another state dir) gets another network
    other = project.path / "other"
    other.mkdir()
    (other / "qqmgr.toml").write_text(project.config.read_text())
    cp = project.run("-c", other / "qqmgr.toml", "show", "a", "--json")
    # (project.run passes its own -c first; the second one wins)
    o = json.loads(cp.stdout)["argv"]
    assert o[o.index("-netdev") + 1] != mcast_a


def test_two_guests_on_a_shared_network_ping_and_connect(project, tiny_guest):
    text = ""
    for name, mac in (("a", "52:54:00:77:00:01"), ("b", "52:54:00:77:00:02")):
        text += tiny_vm_section(tiny_guest, "auto", name=name, extra_args=LAN)
        text += f'[vm.{name}.vars]\nmac = "{mac}"\n\n'
    project.write("[net.lan]\n\n" + text)
    try:
        r = project.run("start", "a", "b", "--wait", "--timeout", BOOT, timeout=BOOT + 60)
        assert r.returncode == 0, r.stderr
        for name, ip in (("a", "192.168.77.1"), ("b", "192.168.77.2")):
            project.run("ssh", name, f"ip link set eth1 up && ip addr add {ip}/24 dev eth1", check=True)

        def ping(src, dst):
            return project.run("ssh", src, f"ping -c 1 -W 2 {dst}", timeout=30).returncode == 0
        wait_until(lambda: ping("a", "192.168.77.2"), 60, 0.5, what="a pings b")
        wait_until(lambda: ping("b", "192.168.77.1"), 60, 0.5, what="b pings a")

        # TCP: b listens, a connects and sends a line
        project.run("ssh", "b", "nc -l -p 7777 > /tmp/got 2>/dev/null </dev/null & echo started", check=True)
        def sent():
            return project.run("ssh", "a", "echo hello-over-lan | nc -w 3 192.168.77.2 7777",
                               timeout=30).returncode == 0
        wait_until(sent, 60, 0.5, what="a connects to b:7777")
        got = wait_until(lambda: project.run("ssh", "b", "cat /tmp/got").stdout.strip(), 30, 0.5)
        assert got == "hello-over-lan"
    finally:
        project.run("stop", "--all", "--force")
        reap_qemu_under(project.path)
