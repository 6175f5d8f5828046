"""`start a b c --wait` on a terminal (issue 20): one progress line per VM, redrawn in place
while they wait, and Ctrl-C tells of each VM that it keeps running and how to stop it.
Driven through tmux, read back with capture-pane: what a person at the terminal sees."""
import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import wait_until

pytestmark = pytest.mark.skipif(not shutil.which("tmux"), reason="tmux is not installed (tools/deps.sh)")

# QEMU with the CPUs held (-S): ssh never answers, and nothing burns a core
HELD = ("-nodefaults -machine q35 -m 64 -display none -accel tcg -S "
        "-netdev user,id=n,hostfwd=tcp:127.0.0.1:{{.vm.ssh.port}}-:22 -device virtio-net,netdev=n")


@pytest.fixture
def tmux(tmp_path):
    sock = f"qqtest-{os.getpid()}-{tmp_path.name}"[:80]

    def run(*args):
        return subprocess.run(["tmux", "-L", sock, *args], capture_output=True, text=True, timeout=30)

    yield run
    run("kill-server")


def screen(tmux):
    # the visible screen only: tmux keeps what a clear (ESC [J from the top) wiped in its history
    return tmux("capture-pane", "-p", "-J", "-t", "t").stdout


def test_start_wait_of_several_vms_shows_a_progress_line_per_vm_and_ctrl_c_names_each(project, tmux):
    names = ["a", "b", "c"]
    project.write("".join(f'[vm.{n}]\ncmd = ["{HELD}"]\n[vm.{n}.ssh]\nport = "auto"\n\n' for n in names))
    cmd = f"{project.qqmgr} -c {project.config} start a b c --wait --timeout 120; echo EXIT=$?; sleep 600"
    r = tmux("new-session", "-d", "-s", "t", "-x", "160", "-y", "40", "bash", "-c", cmd)
    assert r.returncode == 0, r.stderr
    try:
        # every VM has its own line, at the start of a row, counting seconds
        def all_waiting():
            rows = screen(tmux).splitlines()
            return all(any(row.startswith(f"qqmgr: {n}: waiting for sshd... ") for row in rows) for n in names)
        wait_until(all_waiting, 60, what="a progress line per VM")
        rows = [row for row in screen(tmux).splitlines() if row.strip()]
        assert len([row for row in rows if "waiting for sshd" in row]) == 3, rows
        tmux("send-keys", "-t", "t", "C-c")
        wait_until(lambda: "EXIT=" in screen(tmux), 60, what="the command to end")
        text = screen(tmux)
        assert "EXIT=1" in text, text
        for n in names:
            assert f"{n}: interrupted while waiting for sshd; the VM keeps running" in text, text
            assert f"stop {n}`" in text, text
        # the block of progress lines is gone: no row is left half redrawn
        assert not any(row.startswith("qqmgr: a: waiting") for row in text.splitlines()), text
        for n in names:
            assert project.json("status", n)["running"]
    finally:
        project.run("stop", "--all", "--force")


def test_sigterm_to_a_several_vm_start_wait_reaches_every_vm_and_each_is_reported(project):
    # not from a terminal: the signal reaches qqmgr alone, which passes it on to each VM's process
    project.write("".join(f'[vm.{n}]\ncmd = ["{HELD}"]\n[vm.{n}.ssh]\nport = "auto"\n\n' for n in "ab"))
    p = subprocess.Popen([project.qqmgr, "-c", str(project.config), "start", "a", "b", "--wait", "--timeout", "120"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: all((project.vm_dir(n) / "qmp.socket").exists() for n in "ab"), 60, what="both QEMUs")
        time.sleep(1)   # both children are in their wait by now (the socket comes first)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
        assert time.monotonic() - t0 < 30
        assert p.returncode == 1, err
        for n in "ab":
            assert f"VM {n}: interrupted while waiting for sshd; the VM keeps running" in err, err
            assert project.json("status", n)["running"]
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
        project.run("stop", "--all", "--force")


def test_sigterm_to_qqmgr_while_it_draws_progress_lines_reaches_every_vm(project, tmux):
    project.write("".join(f'[vm.{n}]\ncmd = ["{HELD}"]\n[vm.{n}.ssh]\nport = "auto"\n\n' for n in "ab"))
    cmd = f"{project.qqmgr} -c {project.config} start a b --wait --timeout 120; echo EXIT=$?; sleep 600"
    r = tmux("new-session", "-d", "-s", "t", "-x", "160", "-y", "40", "bash", "-c", cmd)
    assert r.returncode == 0, r.stderr
    try:
        wait_until(lambda: all(f"qqmgr: {n}: waiting for sshd... " in screen(tmux) for n in "ab"), 60,
                   what="a progress line per VM")
        shell = int(tmux("display-message", "-p", "-t", "t", "#{pane_pid}").stdout.strip())
        children = open(f"/proc/{shell}/task/{shell}/children").read().split()
        assert len(children) == 1, children
        os.kill(int(children[0]), signal.SIGTERM)
        wait_until(lambda: "EXIT=" in screen(tmux), 30, what="qqmgr to end")
        text = screen(tmux)
        assert "EXIT=1" in text, text
        for n in "ab":
            assert f"{n}: interrupted while waiting for sshd; the VM keeps running" in text, text
    finally:
        project.run("stop", "--all", "--force")
