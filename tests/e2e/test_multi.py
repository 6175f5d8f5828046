"""Several VMs per command: `start a b`, `stop --all`, `status --all`, `wait a b`.

Guestless VMs (nothing boots; QEMU starts in tens of milliseconds). Each VM is handled
in a process of its own, in parallel; the output keeps the order given.
"""

import json
import os
import time

import pytest

from conftest import pid_alive
from test_lifecycle import BARE


def vms(*names, bad=()):
    out = []
    for n in names:
        extra = ', "-no-such-option"' if n in bad else ""
        out.append(f'[vm.{n}]\ncmd = ["{BARE}"{extra}]\n')
    return "\n".join(out)


def test_start_several_json_is_an_array_in_the_order_given(project):
    project.write(vms("a", "b", "c"))
    try:
        docs = project.json("start", "c", "a", "b", check=True)
        assert [d["name"] for d in docs] == ["c", "a", "b"]
        assert all(d["state"] == "running" and d["already_running"] is False for d in docs)
        assert len({d["pid"] for d in docs}) == 3 and all(pid_alive(d["pid"]) for d in docs)
        st = project.json("status", "--all", check=True)
        assert [d["name"] for d in st] == ["a", "b", "c"]          # file order
        assert all(d["running"] and d["alive"] for d in st)
        # one VM: one document, not an array, as before
        assert project.json("status", "b", check=True)["name"] == "b"
    finally:
        stop = project.json("stop", "--all", "--force", check=True)
    assert [d["name"] for d in stop] == ["a", "b", "c"]
    assert all(d["was_running"] for d in stop)
    assert not any(pid_alive(d["pid"]) for d in docs)


def test_stop_all_and_status_all_take_only_the_running_vms(project):
    project.write(vms("a", "b", "c"))
    project.run("start", "b", check=True)
    try:
        assert [d["name"] for d in project.json("status", "--all", check=True)] == ["b"]
    finally:
        stop = project.json("stop", "--all", "--force", check=True)
    assert [d["name"] for d in stop] == ["b"]
    assert project.json("stop", "--all", check=True) == []
    r = project.run("status", "--all", check=True)
    assert r.stdout == "" and "no running VM" in r.stderr


def test_status_all_sets_each_vm_apart_with_a_blank_line(project):
    project.write(vms("a", "b", "c"))
    try:
        project.run("start", "--all", check=True)
        out = project.run("status", "--all", check=True).stdout
    finally:
        project.run("stop", "--all", "--force", check=True)
    blocks = out.split("\n\n")
    assert [b.splitlines()[0].split() for b in blocks] == [["name:", "a"], ["name:", "b"], ["name:", "c"]], out
    assert all("state:" in b and "pid:" in b for b in blocks)
    assert not out.startswith("\n") and not out.endswith("\n\n")


def test_start_all_starts_every_vm_and_text_output_keeps_the_order(project):
    project.write(vms("x", "y", "z"))
    try:
        r = project.run("start", "--all", check=True)
        lines = r.stdout.splitlines()
        assert [l.split()[1] for l in lines] == ["x", "y", "z"], r.stdout
        assert all(l.startswith("started ") for l in lines)
    finally:
        project.run("stop", "--all", "--force")


def test_one_failing_vm_fails_the_command_and_its_message_names_it(project):
    project.write(vms("good", "bad", "good2", bad=("bad",)))
    try:
        r = project.run("start", "good", "bad", "good2", "--json")
        assert r.returncode == 1
        docs = json.loads(r.stdout)
        assert [d["name"] for d in docs] == ["good", "bad", "good2"]
        assert docs[0]["state"] == "running" and docs[2]["state"] == "running"
        assert docs[1]["exit"] == 1 and "bad" in docs[1]["error"] and "QEMU exited" in docs[1]["error"]
        # every qqmgr line about the failure names the VM
        msgs = [l for l in r.stderr.splitlines() if l.startswith("qqmgr: ")]
        assert msgs and all(l.startswith("qqmgr: bad: ") for l in msgs), r.stderr
        assert "-no-such-option" in r.stderr                    # QEMU's own message
        # the others were started and are left running
        assert [d["name"] for d in project.json("status", "--all", check=True)] == ["good", "good2"]
    finally:
        project.run("stop", "--all", "--force")


def test_the_same_vm_twice_starts_one_qemu_under_its_lock(project):
    project.write(vms("a"))
    try:
        docs = project.json("start", "a", "a", "a", check=True)
        assert len({d["pid"] for d in docs}) == 1
        assert sorted(d["already_running"] for d in docs) == [False, True, True]
    finally:
        project.run("stop", "--all", "--force")


def test_names_and_all_together_or_neither_are_usage_errors(project):
    project.write(vms("a"))
    r = project.run("start", "a", "--all")
    assert r.returncode == 2 and "not both" in r.stderr
    for cmd in ("start", "stop", "status", "wait"):
        r = project.run(cmd)
        assert r.returncode == 2 and "usage: qqmgr " + cmd in r.stderr


def test_wait_on_several_vms_without_ssh_names_each(project):
    project.write(vms("a", "b"))
    r = project.run("wait", "a", "b", "--timeout", "5")
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert len(lines) == 2 and "VM a has no ssh port" in lines[0] and "VM b has no ssh port" in lines[1], r.stderr


def test_a_failure_message_that_names_its_vm_is_not_prefixed_again(project):
    project.write(vms("a", "b"))
    project.run("start", "a", "b", check=True)
    try:
        r = project.run("rm", "a", "b")
        assert r.returncode == 1
        lines = [l for l in r.stderr.splitlines() if l.startswith("qqmgr: ")]
        assert len(lines) == 2, r.stderr
        for name, line in zip(["a", "b"], lines):
            assert f"VM {name} is running" in line, line
            assert not line.startswith(f"qqmgr: {name}: "), line   # the name once, not twice
    finally:
        project.run("stop", "--all", "--force", check=True)


def test_an_unknown_name_among_several_is_a_usage_error_before_anything_starts(project):
    project.write(vms("a", "b"))
    r = project.run("start", "a", "b", "bb-typo")
    assert r.returncode == 2, r.stderr
    assert 'no VM named "bb-typo"' in r.stderr and "a, b" in r.stderr
    assert project.json("status", "a")["running"] is False
    assert project.json("status", "b")["running"] is False


def test_stop_all_waits_for_every_vm_at_once_so_it_takes_about_one_timeout(project):
    """Waiting is not CPU work: VMs that ignore ACPI (nothing in a bare VM handles the
    power button) are all asked and waited for at once, so `stop --all` takes about one
    --timeout — not one per CPUs × 2 of them, as when stops ran in bounded batches."""
    n = 2 * (os.cpu_count() or 1) + 2          # more than the CPU-bound batch
    if n > 34:
        pytest.skip("too many CPUs for a cheap test of the batch bound")
    names = [f"v{i}" for i in range(n)]
    project.write(vms(*names))
    timeout = 5
    try:
        project.run("start", "--all", check=True)
        t0 = time.monotonic()
        stop = project.json("stop", "--all", "--timeout", str(timeout), check=True)
        took = time.monotonic() - t0
    finally:
        project.run("stop", "--all", "--force")
    assert [d["name"] for d in stop] == names
    assert all(d["stopped_by"] == "quit" for d in stop), stop
    # one timeout plus QMP quit; two batches would take two timeouts at least
    assert took < 1.8 * timeout, f"stop --all of {n} VMs took {took:.1f} s"


def test_what_qemu_says_is_passed_on_as_it_is_and_the_error_comes_as_data(project):
    """A child's result is data, not stderr text picked apart: a line QEMU (here a wrapper
    in front of it) writes that happens to start with "qqmgr: " is QEMU's tail, passed on
    as it is — not made into "qqmgr: VM: …" as if qqmgr had said it — and the JSON error
    is qqmgr's own message."""
    project.write(vms("a", "b"))
    wrap = "sh -c 'echo qqmgr: said by the wrapper >&2; exit 1' wrapper"
    r = project.run("start", "a", "b", "--wrap", wrap, "--json")
    assert r.returncode == 1
    docs = json.loads(r.stdout)
    assert [d["exit"] for d in docs] == [1, 1]
    assert all(d["error"].startswith(f"{d['name']}: QEMU exited with status 1") for d in docs), docs
    lines = r.stderr.splitlines()
    assert lines.count("qqmgr: said by the wrapper") == 2, r.stderr
    assert not any("a: said" in l or "b: said" in l for l in lines), r.stderr
    assert any(l.startswith("qqmgr: a: QEMU exited") for l in lines), r.stderr
