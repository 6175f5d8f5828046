"""A running VM is what its state dir records, not what the config says now.

A VM removed from the config while it runs stays visible and stoppable; a VM whose
config entry changed while it runs keeps its recorded ssh port, and status says the
config changed since the start. Guestless VMs (nothing boots)."""

import json

from conftest import free_port
from conftest import pid_alive
from test_lifecycle import BARE


def vms(*names):
    return "\n".join(f'[vm.{n}]\ncmd = ["{BARE}"]\n' for n in names)


def test_a_vm_removed_from_the_config_while_it_runs_stays_listed_and_stoppable(project):
    project.write(vms("a", "b", "c"))
    started = project.json("start", "a", "c", check=True)
    pids = {d["name"]: d["pid"] for d in started}
    try:
        project.write(vms("a", "b"))      # c leaves the config while it runs
        listed = {d["name"]: d for d in project.json("list", check=True)}
        assert listed["c"]["configured"] is False and listed["c"]["running"] is True
        assert listed["c"]["pid"] == pids["c"]
        assert listed["a"]["configured"] is True
        text = project.run("list", check=True).stdout
        line = next(l for l in text.splitlines() if l.startswith("c "))
        assert "running" in line and "not in the config" in line, text

        st = project.json("status", "--all", check=True)
        assert [d["name"] for d in st] == ["a", "c"]
        assert st[1]["configured"] is False and st[1]["running"] is True
        r = project.run("status", "c", check=True)
        assert "not in the config any more" in r.stdout and "stop c stops it" in r.stdout

        # it is not started again under a name the config no longer has
        r = project.run("start", "c")
        assert r.returncode == 2 and 'no VM named "c"' in r.stderr

        stop = project.json("stop", "c", "--timeout", "1", check=True)   # guestless: no ACPI
        assert stop["was_running"] and stop["pid"] == pids["c"]
        assert not pid_alive(pids["c"])
        assert "c" not in {d["name"] for d in project.json("list", check=True)}
        # stopped, it is gone from view like any stopped VM the config does not name
        r = project.run("stop", "c")
        assert r.returncode == 2 and 'no VM named "c"' in r.stderr
    finally:
        project.run("stop", "--all", "--force")
        project.write(vms("a", "b", "c"))
        project.run("stop", "--all", "--force")


def test_stop_all_stops_a_running_vm_that_left_the_config(project):
    project.write(vms("a", "gone"))
    pids = {d["name"]: d["pid"] for d in project.json("start", "a", "gone", check=True)}
    project.write(vms("a"))
    try:
        stop = project.json("stop", "--all", "--force", check=True)
        assert [d["name"] for d in stop] == ["a", "gone"]
        assert not pid_alive(pids["gone"]) and not pid_alive(pids["a"])
    finally:
        project.write(vms("a", "gone"))
        project.run("stop", "--all", "--force")


def user_net_vm(name, port):
    fwd = "user,id=n0,hostfwd=tcp:127.0.0.1:{{.vm.ssh.port}}-:22"
    return (f'[vm.{name}]\ncmd = ["{BARE}", "-netdev {fwd}", "-device virtio-net-pci,netdev=n0"]\n'
            f'[vm.{name}.ssh]\nport = {port}\n')


def test_a_port_changed_in_the_config_while_the_vm_runs_is_not_where_ssh_goes(project):
    old, new = free_port(), free_port()
    project.write(user_net_vm("v", old))
    project.run("start", "v", check=True)
    try:
        st = project.json("status", "v", check=True)
        assert st["config_changed"] is False and st["config_change"] is None
        project.write(user_net_vm("v", new))
        # ssh goes where QEMU forwards: the recorded port
        conf = project.run("ssh-config", "v", check=True).stdout
        assert f"Port {old}" in conf and f"Port {new}" not in conf, conf
        assert project.json("list", check=True)[0]["ssh_port"] == old
        st = project.json("status", "v", check=True)
        assert st["ssh"]["port"] == old
        assert st["config_changed"] is True and str(new) in st["config_change"]
        text = project.run("status", "v", check=True).stdout
        assert "changed since the start" in text, text
    finally:
        project.run("stop", "v", "--force", check=True)
    # stopped, the config's port is the one: the next start uses it
    assert project.json("status", "v", check=True)["ssh"]["port"] == new
