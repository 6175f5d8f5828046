"""The guest's clock after a restore follows the host's (issue 18.3).

A snapshot restores with the guest clock where it stood at the save. To stand for a
snapshot saved long ago without waiting, the guest's clock is set back 300 s before the
save (the guest then restores 300 s behind, as it would after a five-minute-old save).
"""

import signal
import subprocess
import time

import pytest

from conftest import wait_until
from test_snapshot import boot, setup_diskless, ssh, stop

pytestmark = pytest.mark.guest

BACK = 300


def guest_offset(project):
    """Host time minus guest time (s); the guest's date has whole seconds."""
    before = time.time()
    guest = int(ssh(project, "date +%s", check=True, timeout=60).stdout.strip())
    after = time.time()
    # the guest's true time lies in [guest, guest + 1)
    return before - (guest + 1), after - guest


def assert_follows_host(project):
    lo, hi = guest_offset(project)
    assert lo < 1 and hi > -1, (lo, hi)


def save_behind(project):
    ssh(project, f"date -u -s @$(( $(date +%s) - {BACK} )) >/dev/null", check=True)
    lo, hi = guest_offset(project)
    assert lo > BACK - 5
    project.run("snapshot", "save", "tiny", "s1", check=True)


def test_start_run_and_in_place_restore_set_the_guest_clock(project, tiny_vm_toml, golden):
    setup_diskless(project, tiny_vm_toml)
    boot(project, golden=golden)
    save_behind(project)
    stop(project)
    cp = project.run("-d", "start", "tiny", "--restore", "s1", check=True, timeout=200)
    said = [l for l in cp.stderr.splitlines() if "guest clock set through ssh" in l]
    assert said, cp.stderr
    behind = float(said[0].split("it was ")[1].split(" s behind")[0])
    assert BACK - 1 <= behind < BACK + 30, said
    assert "warning" not in cp.stderr
    assert_follows_host(project)
    # in place: back to the save, and the clock set again
    ssh(project, f"date -u -s @$(( $(date +%s) - {BACK} )) >/dev/null", check=True)
    cp = project.run("snapshot", "restore", "tiny", "s1", check=True, timeout=200)
    assert "warning" not in cp.stderr, cp.stderr
    assert_follows_host(project)
    stop(project)
    # run: the command sees the host's time
    before = time.time()
    cp = project.run("run", "tiny", "--restore", "s1", "--", "date +%s", timeout=200)
    assert cp.returncode == 0, cp.stderr
    assert before - 2 < int(cp.stdout.strip()) <= time.time() + 1, (before, cp.stdout)


def test_a_clock_that_cannot_be_set_is_named_with_how_far_behind(project, tiny_vm_toml):
    # no sshd in the guest: nothing can set its clock
    project.write(tiny_vm_toml("auto", extra_append="qqtest.nosshd"))
    project.run("start", "tiny", check=True)
    project.run("snapshot", "save", "tiny", "s1", check=True)
    stop(project)
    cp = project.run("start", "tiny", "--restore", "s1", check=True, timeout=200)
    assert "the guest clock is" in cp.stderr and "s behind the host" in cp.stderr, cp.stderr
    assert "ssh tiny date -u -s @$(date +%s)" in cp.stderr
    stop(project)


def agent_said(stderr):
    """How far behind the guest agent found the clock, from `-d`'s line (or None)."""
    said = [l for l in stderr.splitlines() if "guest clock set through the guest agent" in l]
    return float(said[0].split("it was ")[1].split(" s behind")[0]) if said else None


def test_the_guest_agent_sets_the_clock_of_the_vm_and_of_each_copy(project, tiny_vm_toml, golden):
    # guest_agent = true: qqmgr adds the channel, the guest runs qemu-ga on it
    project.write(tiny_vm_toml("auto", guest_agent=True))
    boot(project, golden=golden)
    assert ssh(project, "ps", check=True).stdout.count("qemu-ga -m virtio-serial") == 1
    save_behind(project)
    stop(project)
    # no --wait: no login at all, the agent alone
    cp = project.run("-d", "start", "tiny", "--restore", "s1", check=True, timeout=200)
    behind = agent_said(cp.stderr)
    assert behind is not None and BACK - 1 <= behind < BACK + 30, cp.stderr
    assert "one ssh login" not in cp.stderr and "warning" not in cp.stderr, cp.stderr
    assert_follows_host(project)
    # a throwaway copy beside it has a channel of its own
    cp = project.run("-d", "start", "tiny", "--restore", "s1", "--rm", "--wait", check=True, timeout=200)
    behind = agent_said(cp.stderr)
    assert behind is not None and BACK - 1 <= behind < BACK + 30, cp.stderr
    copy = [c["name"] for c in project.json("status", "tiny", check=True)["copies"]]
    assert len(copy) == 1
    out = project.run("ssh", copy[0], "date +%s", check=True).stdout
    assert abs(int(out) - time.time()) < 2, out
    project.run("stop", "tiny", "--all", "--force", check=True)


def test_a_guest_that_runs_no_agent_gets_its_clock_through_ssh(project, tiny_vm_toml, golden):
    # the channel is there, but nothing in the guest serves it: ssh sets the clock
    project.write(tiny_vm_toml("auto", guest_agent=True, qga=False))
    boot(project, golden=golden)
    save_behind(project)
    stop(project)
    t0 = time.monotonic()
    cp = project.run("-d", "start", "tiny", "--restore", "s1", "--wait", check=True, timeout=200)
    assert "guest clock set through ssh" in cp.stderr, cp.stderr
    assert agent_said(cp.stderr) is None and "warning" not in cp.stderr, cp.stderr
    assert time.monotonic() - t0 < 60, cp.stderr      # the agent was given 3 s, not the whole wait
    assert_follows_host(project)
    stop(project)
    # without -d it is said once: each such restore waits for the agent in vain
    cp = project.run("start", "tiny", "--restore", "s1", "--wait", check=True, timeout=200)
    assert ("tiny: the guest agent did not answer (is qemu-ga running in the guest?); the guest clock was set "
            "through ssh (each restore waits up to 3 s for the agent)") in cp.stderr, cp.stderr
    stop(project)


def agent_connections(sock):
    """How many unix sockets carry the path sock (QEMU's listener, and one per client it
    accepted), from /proc/net/unix."""
    with open("/proc/net/unix") as f:
        return sum(1 for line in f if line.rstrip().endswith(" " + str(sock)))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_while_the_agent_is_asked_ends_start_and_keeps_the_vm(project, tiny_vm_toml, golden, sig):
    # the channel, but no qemu-ga: start --restore waits up to 3 s for the agent. Started
    # as a script's `&` starts it (SIGINT ignored), the three signals are handled alike
    project.write(tiny_vm_toml("auto", guest_agent=True, qga=False))
    boot(project, golden=golden)
    project.run("snapshot", "save", "tiny", "s1", check=True)
    stop(project)
    p = subprocess.Popen([project.qqmgr, "-c", str(project.config), "start", "tiny", "--restore", "s1"],
                         cwd=project.path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        sock = project.vm_dir("tiny") / "qga.socket"
        wait_until(lambda: agent_connections(sock) >= 2, 60, 0.01, "qqmgr to ask the guest agent")
        t0 = time.monotonic()
        p.send_signal(sig)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert time.monotonic() - t0 < 2, err
    assert p.returncode == 1, err
    assert "interrupted while setting the guest clock; the VM keeps running" in err, err
    assert project.json("status", "tiny", check=True)["running"]
    stop(project)
