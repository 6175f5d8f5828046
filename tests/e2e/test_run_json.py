"""`run … --json` as a job for an engine (GNU parallel, Slurm, CI): the command's
output passes through as it comes, one JSON record is the last line of stdout, and
the exit status tells "the VM never became ready" (75) from "the command failed"
(its own status), so an engine retries only the former.

Every test runs the tiny guest under TCG (QQ_TEST_ACCEL) or fails to: booted where the
record of a cold run is checked or the guest is not ready, else restored (`run --restore`)
from the session's booted snapshot (the `golden` fixture): the tests of what run does with
the command's output and status.
"""

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.guest

NOT_READY = 75


def record_and_output(stdout):
    out, sep, last = stdout.rstrip("\n").rpartition("\n")
    rec = json.loads(last)
    return (out + sep) if sep else "", rec


def test_run_json_prints_the_commands_output_then_one_record_line(project, tiny_vm_toml):
    project.write(tiny_vm_toml("auto"))
    cp = project.run("run", "--json", "tiny", "--", "echo out; echo err >&2; printf 'no newline'; exit 7",
                     timeout=400)
    assert cp.returncode == 7, cp.stderr
    assert cp.stderr == "err\n"
    out, rec = record_and_output(cp.stdout)
    # the command's last line is ended so that the record starts a line of its own
    assert out == "out\nno newline\n"
    assert rec["vm"] == "tiny" and rec["host"] == socket.gethostname()
    assert rec["config"] == str(project.config.resolve())
    assert rec["snapshot"] is None and rec["rm"] is False
    assert rec["command"] == ["echo out; echo err >&2; printf 'no newline'; exit 7"]
    assert rec["ready"] is True and rec["status"] == 7 and rec["exit"] == 7 and rec["error"] is None
    assert rec["instance"] == "tiny"   # its own place (a throwaway copy: "tiny#N")
    assert rec["started_at"].endswith("Z")
    t = rec["timings"]
    assert set(t) == {"start", "ready", "command", "stop", "total"}
    assert all(v >= 0 for v in t.values()) and t["ready"] > 0 and t["stop"] > 0
    assert abs(t["total"] - (t["start"] + t["ready"] + t["command"] + t["stop"])) < 0.01
    logs = rec["logs"]
    assert Path(logs["dir"]) == project.vm_dir("tiny")
    # the guest's console log of this run is where the record says
    assert "login" in Path(logs["serial"]).read_text(errors="replace").lower() or \
        Path(logs["serial"]).stat().st_size > 0
    assert {"qemu_stdout", "qemu_stderr"} <= set(logs)


def test_run_json_passes_the_output_through_as_it_comes(project, tiny_vm_toml, golden):
    project.write(tiny_vm_toml("auto"))
    golden.place(project, "tiny")
    p = subprocess.Popen([project.qqmgr, "-c", str(project.config), "run", "--json", "tiny",
                          "--restore", "booted", "--",
                          "echo first; sleep 8; echo second"],
                         cwd=project.path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        first = p.stdout.readline()
        got_first = time.monotonic()
        assert first == "first\n"
        assert p.poll() is None, "the first line came only when the run ended"
        rest, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert time.monotonic() - got_first > 4
        out, rec = record_and_output(rest)
        assert out == "second\n" and rec["status"] == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_run_json_a_vm_that_never_starts_exits_75_with_a_record(project, tiny_vm_toml):
    project.write(tiny_vm_toml("auto", extra_args=["-no-such-qemu-option"]))
    cp = project.run("run", "--json", "tiny", "--", "echo never", timeout=120)
    assert cp.returncode == NOT_READY, cp.stderr
    assert "QEMU exited" in cp.stderr
    out, rec = record_and_output(cp.stdout)
    assert out == ""
    assert rec["ready"] is False and rec["status"] is None and rec["exit"] == NOT_READY
    assert "QEMU exited" in rec["error"]


def test_run_a_guest_whose_ssh_never_answers_exits_75_not_the_commands_status(project, tiny_vm_toml):
    project.write(tiny_vm_toml("auto", extra_append="qqtest.nosshd"))
    cp = project.run("run", "tiny", "--timeout", "10", "--", "exit 1", timeout=200)
    assert cp.returncode == NOT_READY, cp.stderr
    assert cp.stdout == ""
    assert project.json("status", "tiny", check=True)["state"] == "stopped"


def test_run_a_failing_command_keeps_its_own_status(project, tiny_vm_toml, golden):
    project.write(tiny_vm_toml("auto"))
    golden.place(project, "tiny")
    cp = project.run("run", "tiny", "--restore", "booted", "--", "exit 3", timeout=400)
    assert cp.returncode == 3, cp.stderr


def test_run_json_whose_reader_goes_away_still_stops_the_vm(project, tiny_vm_toml, golden):
    project.write(tiny_vm_toml("auto"))
    golden.place(project, "tiny")
    p = subprocess.Popen([project.qqmgr, "-c", str(project.config), "run", "--json", "tiny",
                          "--restore", "booted", "--",
                          "echo first; sleep 3; seq 1 200000; echo done >&2"],
                         cwd=project.path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "first\n"
        p.stdout.close()            # the engine's reader is gone
        err = p.stderr.read()
        p.wait(timeout=120)
        # qqmgr was not killed by SIGPIPE: the command ran to its end, the VM is stopped
        assert p.returncode >= 0, p.returncode
        assert "done" in err
        assert project.json("status", "tiny", check=True)["state"] == "stopped"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
