"""The guest's clock after a restore follows the host's (issue 18.3).

A snapshot restores with the guest clock where it stood at the save. To stand for a
snapshot saved long ago without waiting, the guest's clock is set back 300 s before the
save (the guest then restores 300 s behind, as it would after a five-minute-old save).
"""

import time

import pytest

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
