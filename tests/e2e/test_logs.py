"""Logs of earlier runs are kept (issue 11): each start moves serial, qemu-stdout.log and
qemu-stderr.log to NAME.1 (… NAME.5), and `serial|stdout|stderr VM --previous[=N]` prints
the run N before the current one."""
import os
import stat

import pytest

BARE = "-nodefaults -machine q35 -m 64 -display none -accel tcg"

# stands in for qemu-system-x86_64: says which run it is on stdout and stderr, then
# becomes the real QEMU
WRAPPER = """#!/bin/sh
n=$(($(cat "{counter}" 2>/dev/null || echo 0) + 1))
echo $n > "{counter}"
echo "stdout of run $n"
echo "stderr of run $n" >&2
exec qemu-system-x86_64 "$@"
"""


def test_each_start_keeps_the_last_five_runs_logs(project):
    wrapper = project.path / "qemu-wrapper"
    wrapper.write_text(WRAPPER.format(counter=project.path / "runs"))
    wrapper.chmod(0o755)
    project.write(f'[qemu]\nbin = "{wrapper}"\n[vm.bare]\ncmd = ["{BARE}"]\n')
    for _ in range(7):
        project.run("start", "bare", check=True)
        project.run("stop", "bare", "--force", check=True)
    assert project.run("stdout", "bare", check=True).stdout == "stdout of run 7\n"
    assert project.run("stderr", "bare", "--previous", check=True).stdout == "stderr of run 6\n"
    assert project.run("stdout", "bare", "--previous=5", check=True).stdout == "stdout of run 2\n"
    assert project.run("stderr", "bare", "--previous=3", "-n", "1", check=True).stdout == "stderr of run 4\n"
    d = project.vm_dir("bare")
    for name in ("serial", "qemu-stdout.log", "qemu-stderr.log"):
        kept = sorted(p.name for p in d.glob(name + ".*"))
        assert kept == [f"{name}.{i}" for i in range(1, 6)], kept
        for p in d.glob(name + "*"):
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    r = project.run("stdout", "bare", "--previous=6")
    assert r.returncode == 2 and "last 5 runs" in r.stderr
    r = project.run("serial", "bare", "--previous", "--follow")
    assert r.returncode == 2


def test_previous_of_a_vm_run_once_says_there_is_none(project):
    project.write(f'[vm.bare]\ncmd = ["{BARE}"]\n')
    project.run("start", "bare", check=True)
    project.run("stop", "bare", "--force", check=True)
    r = project.run("serial", "bare", "--previous")
    assert r.returncode == 1 and "no log of the run 1 before" in r.stderr


@pytest.mark.guest
def test_serial_previous_shows_the_guest_console_of_the_run_before(project, tiny_vm_toml, golden):
    project.write(tiny_vm_toml("auto"))
    for marker in ("first-run-marker", "second-run-marker"):
        golden.start(project, "tiny", "--timeout", "240")   # two runs, from the booted snapshot
        project.run("ssh", "tiny", f"echo {marker} > /dev/ttyS0", check=True)
        project.run("stop", "tiny", "--force", check=True)
    now = project.run("serial", "tiny", "-n", "1000", check=True).stdout
    before = project.run("serial", "tiny", "--previous", "-n", "1000", check=True).stdout
    assert "second-run-marker" in now and "first-run-marker" not in now
    assert "first-run-marker" in before and "second-run-marker" not in before
