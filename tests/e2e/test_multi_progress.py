"""`start a b c --wait` on a terminal (issue 20): one progress line per VM, redrawn in place
while they wait, and Ctrl-C tells of each VM that it keeps running and how to stop it.
Driven through tmux, read back with capture-pane: what a person at the terminal sees."""
import os
import shutil
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
