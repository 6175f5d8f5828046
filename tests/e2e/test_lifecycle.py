"""VM lifecycle on real QEMU (TCG): start, status, list, stop, logs, console, gdb, QMP.

Guestless tests use a QEMU that boots nothing (-nodefaults … -display none): it starts
in tens of milliseconds and never reacts to ACPI, so they stop it with --force or a
short --timeout. Tests marked `guest` boot the tiny guest (busybox + acpid).
"""

import json
import re
import os
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import ACCEL, console_roundtrip, free_port, pid_alive, wait_until

BARE = "-nodefaults -machine q35 -m 64 -display none -accel tcg"


def bare_toml(name="bare", extra=""):
    return f'[vm.{name}]\ncmd = ["{BARE}"{extra}]\n'


def qemu_children_of(state_dir):
    """pids of live QEMUs whose command line names this state dir."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"qemu-system-x86_64") and any(
                str(state_dir).encode() in a for a in cmd) and pid_alive(int(d.name)):
            pids.append(int(d.name))
    return pids


# ------------------------------------------------------------------ guestless

def test_start_status_list_stop_guestless(project):
    project.write(bare_toml())
    t0 = time.monotonic()
    out = project.json("start", "bare", check=True)
    assert time.monotonic() - t0 < 10
    assert out["already_running"] is False and out["state"] == "running"
    pid = out["pid"]
    assert pid_alive(pid)

    st = project.json("status", "bare", check=True)
    for k in ("name pid pid_file running alive qmp_connected ssh serial_file qmp_socket "
              "monitor_socket qemu_stdout qemu_stderr status_details state uptime").split():
        assert k in st, k
    assert st["pid"] == pid and st["running"] and st["alive"] and st["qmp_connected"]
    assert st["state"] == "running" and st["status_details"]["status"] == "running"
    assert set(st["ssh"]) == {"port", "config"}
    assert Path(st["pid_file"]).read_text().strip() == str(pid)
    for k in ("qmp_socket", "monitor_socket"):
        assert Path(st[k]).is_socket()

    [row] = project.json("list", check=True)
    assert row["running"] is True and row["pid"] == pid

    again = project.run("start", "bare", check=True)
    assert "already running" in again.stdout

    stop = project.json("stop", "bare", "--force", check=True)
    assert stop["was_running"] and stop["stopped_by"] == "quit"
    assert not pid_alive(pid)
    st = project.json("status", "bare", check=True)
    assert st["running"] is False and st["state"] == "stopped" and st["pid"] is None
    vm = project.vm_dir("bare")
    assert not (vm / "pid").exists() and not (vm / "qmp.socket").exists()
    assert (vm / "qemu-stderr.log").exists()     # logs are kept
    assert "not running" in project.run("stop", "bare", check=True).stdout


def test_stop_of_a_guest_ignoring_powerdown_falls_back_to_quit_after_timeout(project):
    project.write(bare_toml())
    project.run("start", "bare", check=True)
    t0 = time.monotonic()
    out = project.json("stop", "bare", "--timeout", "1", check=True)
    assert out["stopped_by"] == "quit"
    assert 0.9 < time.monotonic() - t0 < 10


def test_kill_9_reads_as_stopped_and_start_works_again(project):
    project.write(bare_toml())
    pid = project.json("start", "bare", check=True)["pid"]
    os.kill(pid, signal.SIGKILL)
    # poll status: the main thread may read as a zombie while QEMU's other threads
    # still hold the pid-file lock for a moment
    st = wait_until(lambda: (lambda s: s if not s["running"] else None)(
        project.json("status", "bare", check=True)), 10, what="status reads stopped")
    assert st["running"] is False and st["state"] == "stopped"
    assert project.json("list", check=True)[0]["running"] is False
    pid2 = project.json("start", "bare", check=True)["pid"]
    assert pid2 != pid and pid_alive(pid2)
    project.run("stop", "bare", "--force", check=True)


def test_start_after_a_killed_start_trusts_only_its_own_qemu_and_keeps_the_others_files(project):
    # QEMU behind a gate: the first launch waits for go1, the second for go2, so the
    # QEMU of a start killed by -9 can take the VM while a second start runs
    gate = project.path / "gated-qemu"
    gate.write_text('#!/bin/sh\nif mkdir first.d 2>/dev/null; then n=1; else n=2; fi\n'
                    'touch launched$n\nwhile [ ! -e go$n ]; do sleep 0.02; done\n'
                    'exec qemu-system-x86_64 "$@"\n')
    gate.chmod(0o755)
    project.write(f'[qemu]\nbin = "{gate}"\n' + bare_toml() + '[vm.bare.ssh]\nport = "auto"\n')
    argv = [project.qqmgr, "-c", str(project.config), "start", "bare", "--json"]
    first = subprocess.Popen(argv, cwd=project.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    second = None
    try:
        wait_until((project.path / "launched1").exists, 30, 0.02, what="first QEMU launched")
        orphan_port = int((project.vm_dir("bare") / "ssh_port").read_text())   # chosen by the first start
        first.kill()                     # kill -9 of the first start; its QEMU lives on
        first.wait()
        second = subprocess.Popen(argv, cwd=project.path, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        wait_until((project.path / "launched2").exists, 30, 0.02, what="second QEMU launched")
        (project.path / "go1").touch()   # the orphan takes the VM: pid file, QMP
        st = wait_until(lambda: (lambda s: s if s["state"] == "running" else None)(
            project.json("status", "bare", check=True)), 30, what="the orphan QEMU answers QMP")
        orphan = st["pid"]
        # the second start must not take the orphan's answer for its own QEMU's
        time.sleep(1.0)
        assert second.poll() is None, f"start returned with another QEMU's answer: {second.communicate()}"
        (project.path / "go2").touch()   # its own QEMU finds the pid file locked and exits
        out, err = second.communicate(timeout=60)
        assert second.returncode == 1, out + err
        assert f"another QEMU (pid {orphan})" in err
        # the orphan's files are left alone
        st = project.json("status", "bare", check=True)
        assert st["pid"] == orphan and st["state"] == "running"
        assert st["ssh"]["port"] == orphan_port   # its recorded port, not the failed start's
        assert (project.vm_dir("bare") / "qmp.socket").exists()
    finally:
        for p in (first, second):
            if p and p.poll() is None:
                p.kill()
                p.wait()
        project.run("stop", "bare", "--force")


def test_stale_pid_file_with_another_process_pid_reads_as_stopped(project):
    project.write(bare_toml())
    vm = project.vm_dir("bare")
    vm.mkdir(parents=True)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (vm / "pid").write_text(f"{sleeper.pid}\n")
        st = project.json("status", "bare", check=True)
        assert st["running"] is False and st["pid"] is None
        assert "not running" in project.run("stop", "bare", check=True).stdout
        assert sleeper.poll() is None            # stop never signalled it
        (vm / "pid").write_text(f"{sleeper.pid}\n")
        out = project.json("start", "bare", check=True)
        assert out["already_running"] is False and out["pid"] != sleeper.pid
        project.run("stop", "bare", "--force", check=True)
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_six_parallel_starts_leave_one_qemu(project):
    project.write(bare_toml())
    with ThreadPoolExecutor(6) as ex:
        results = list(ex.map(lambda _: project.run("start", "bare", "--json"), range(6)))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    docs = [json.loads(r.stdout) for r in results]
    assert sum(not d["already_running"] for d in docs) == 1
    assert len({d["pid"] for d in docs}) == 1
    assert qemu_children_of(project.vm_dir("bare")) == [docs[0]["pid"]]
    project.run("stop", "bare", "--force", check=True)


def test_bad_qemu_option_fails_fast_with_qemus_message(project):
    project.write(bare_toml(extra=', "-no-such-option"'))
    t0 = time.monotonic()
    cp = project.run("start", "bare")
    assert time.monotonic() - t0 < 1.0 + 1.0   # QEMU's own failure, plus process start-up slack
    assert cp.returncode == 1
    assert "-no-such-option" in cp.stderr and "invalid option" in cp.stderr
    assert project.json("status", "bare", check=True)["running"] is False


def test_injected_option_in_cmd_is_a_usage_error(project):
    project.write(bare_toml(extra=', "-serial stdio"'))
    cp = project.run("start", "bare")
    assert cp.returncode == 2
    assert "'-serial stdio'" in cp.stderr and "vm.bare.cmd" in cp.stderr
    assert not project.vm_dir("bare").exists()


def test_start_refuses_a_vm_whose_image_is_not_built_and_names_the_build_command(project):
    project.write(bare_toml(extra=', "-drive file={{.img.scratch}},format=raw,if=virtio"') +
                  '[img.scratch]\nbuilder = "raw"\nimg_size = "8M"\n')
    cp = project.run("start", "bare")
    assert cp.returncode == 1
    assert "scratch" in cp.stderr and f"qqmgr -c {project.config} img build scratch" in cp.stderr
    assert project.json("status", "bare", check=True)["running"] is False
    project.run("img", "build", "scratch", check=True)
    project.run("start", "bare", check=True)
    project.run("stop", "bare", "--force", check=True)


def test_deep_state_dir_beyond_socket_path_limit(project, tmp_path):
    deep = project.path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    cfg = deep / "qqmgr.toml"
    cfg.write_text(bare_toml())
    run = lambda *a, **kw: subprocess.run([project.qqmgr, "-c", str(cfg), *a], capture_output=True,
                                          text=True, stdin=subprocess.DEVNULL, timeout=60, **kw)
    state = deep / ".qqmgr" / "vm.bare"
    assert len(str(state / "monitor.socket")) > 107
    cp = run("start", "bare", "--json")
    assert cp.returncode == 0, cp.stderr
    pid = json.loads(cp.stdout)["pid"]
    show = run("show", "bare")
    assert show.returncode == 0
    # every word as shown, but the RAM file's name: each start picks a fresh one (mapped RAM)
    ram = lambda w: re.sub(r"mem-path=[^,]*", "mem-path=RAMFILE", w)
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        ran = [ram(w.decode()) for w in f.read().split(b"\0")[:-1]]
    assert ran == [ram(a) for a in __import__("shlex").split(show.stdout)]
    assert (state / "qmp.socket").is_socket()    # the socket lands in the state dir
    st = json.loads(run("status", "bare", "--json").stdout)
    assert st["qmp_connected"] and st["state"] == "running"
    qs = run("qmp", "bare", "query-status")
    assert json.loads(qs.stdout)["status"] == "running"
    assert run("stop", "bare", "--force").returncode == 0
    assert not pid_alive(pid)


def test_fixed_ssh_port_in_use_names_the_port_and_our_vm(project):
    port = free_port()
    fwd = f', "-netdev user,id=n0,hostfwd=tcp::{{{{.vm.ssh.port}}}}-:22 -device virtio-net-pci,netdev=n0"'
    project.write(bare_toml("a", fwd) + f"[vm.a.ssh]\nport = {port}\n" +
                  bare_toml("b", fwd) + f"[vm.b.ssh]\nport = {port}\n")
    project.run("start", "a", check=True)
    cp = project.run("start", "b")
    assert cp.returncode == 1
    assert str(port) in cp.stderr and "VM 'a'" in cp.stderr
    project.run("stop", "a", "--force", check=True)


def test_auto_ssh_port_is_chosen_recorded_and_rendered(project):
    fwd = ', "-netdev user,id=n0,hostfwd=tcp:127.0.0.1:{{.vm.ssh.port}}-:22 -device virtio-net-pci,netdev=n0"'
    project.write(bare_toml("a", fwd) + '[vm.a.ssh]\nport = "auto"\n')
    out = project.json("start", "a", check=True)
    port = out["ssh_port"]
    assert port and port > 0
    assert project.json("status", "a", check=True)["ssh"]["port"] == port
    assert f"hostfwd=tcp:127.0.0.1:{port}-:22" in project.run("show", "a", check=True).stdout
    with open(f"/proc/{out['pid']}/cmdline", "rb") as f:
        assert f"127.0.0.1:{port}-:22".encode() in f.read()
    project.run("stop", "a", "--force", check=True)


def test_qmp_and_monitor_commands(project):
    project.write(bare_toml())
    project.run("start", "bare", check=True)
    qs = project.run("qmp", "bare", "query-status", check=True)
    assert json.loads(qs.stdout)["status"] == "running"
    project.run("qmp", "bare", "stop", check=True)
    assert project.json("status", "bare", check=True)["state"] == "paused"
    args = project.run("qmp", "bare", "qom-get", '{"path": "/machine", "property": "type"}', check=True)
    assert "q35" in json.loads(args.stdout)
    bad = project.run("qmp", "bare", "query-nothing")
    assert bad.returncode == 1 and "CommandNotFound" in bad.stderr
    mon = project.run("monitor", "bare", "info status", check=True)
    assert "paused" in mon.stdout
    project.run("stop", "bare", "--force", check=True)
    stopped = project.run("qmp", "bare", "query-status")
    assert stopped.returncode == 1 and "not running" in stopped.stderr


def test_stderr_and_stdout_logs_survive_and_are_truncated_per_start(project):
    project.write(bare_toml())
    project.run("start", "bare", check=True)
    project.run("monitor", "bare", "info version", check=True)
    project.run("stop", "bare", "--force", check=True)
    vm = project.vm_dir("bare")
    (vm / "qemu-stderr.log").write_text("old line\n")
    project.run("start", "bare", check=True)
    assert "old line" not in (vm / "qemu-stderr.log").read_text()
    project.run("stop", "bare", "--force", check=True)
    cp = project.run("stderr", "bare", "-n", "5", check=True)
    assert "old line" not in cp.stdout


def test_gdb_batch_runs_the_guestless_vm_with_its_full_arguments(project):
    if not shutil.which("gdb"):
        pytest.skip("gdb not installed")
    project.write(bare_toml(extra=', "-name \'my vm\'"'))
    gdb = subprocess.Popen([project.qqmgr, "-c", str(project.config), "gdb", "bare", "--",
                            "-batch", "-ex", "run"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        st = wait_until(lambda: (s := project.json("status", "bare")) and s["qmp_connected"] and s, 60)
        assert st["state"] == "running"
        # QEMU runs under gdb: its parent is gdb
        with open(f"/proc/{st['pid']}/stat") as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        assert ppid == gdb.pid
        with open(f"/proc/{st['pid']}/cmdline", "rb") as f:
            assert b"\0-name\0my vm\0" in f.read()     # quoted arguments survive gdb
        out = project.json("stop", "bare", "--force", check=True)
        assert out["stopped_by"] in ("quit", "SIGTERM")
        out, _ = gdb.communicate(timeout=60)
        assert "exited normally" in out or "exited with code" in out, out
    finally:
        if gdb.poll() is None:
            gdb.kill()
            gdb.wait()


def test_gdb_refuses_a_running_vm_and_offers_attach(project):
    project.write(bare_toml())
    project.run("start", "bare", check=True)
    cp = project.run("gdb", "bare", "--", "-batch")
    assert cp.returncode == 1 and "--attach" in cp.stderr
    project.run("stop", "bare", "--force", check=True)


def test_status_of_unknown_vm_is_a_usage_error(project):
    project.write(bare_toml())
    cp = project.run("status", "nope")
    assert cp.returncode == 2 and "nope" in cp.stderr


# ------------------------------------------------------------------ tiny guest


@pytest.mark.guest
def test_tiny_guest_powers_off_on_stop(project, tiny_vm_toml):
    project.write(tiny_vm_toml("auto"))
    out = project.json("start", "tiny", check=True)
    assert out["ssh_port"] > 0
    # wait until the guest's userland is up (acpid runs), then stop politely
    # the guest is up; its acpid may still be starting (stop repeats the powerdown)
    wait_until(lambda: "tinyguest: up" in project.run("serial", "tiny", "-n", "200").stdout, 120, 0.5)
    t0 = time.monotonic()
    stop = project.json("stop", "tiny", check=True)
    assert stop["stopped_by"] == "powerdown", stop
    assert time.monotonic() - t0 < 30
    assert not pid_alive(out["pid"])


@pytest.mark.guest
def test_start_wait_returns_when_ssh_works_and_stop_closes_it(project, tiny_vm_toml):
    project.write(tiny_vm_toml("auto"))
    out = project.json("start", "tiny", "--wait", "--timeout", "180", check=True)
    assert project.run("ssh", "tiny", "echo", "hi", check=True).stdout.strip() == "hi"
    stop = project.json("stop", "tiny", check=True)
    assert stop["stopped_by"] == "powerdown" and not pid_alive(out["pid"])


@pytest.mark.guest
def test_tiny_guest_ignoring_acpi_falls_back_to_quit(project, tiny_vm_toml):
    project.write(tiny_vm_toml("auto", extra_append="qqtest.noacpi"))
    project.run("start", "tiny", check=True)
    wait_until(lambda: "tinyguest: up" in project.run("serial", "tiny", "-n", "200").stdout, 120, 0.5)
    stop = project.json("stop", "tiny", "--timeout", "3", check=True)
    assert stop["stopped_by"] == "quit"


@pytest.mark.guest
def test_console_through_a_pty_reaches_the_guest_shell(project, tiny_vm_toml, golden):
    project.write(tiny_vm_toml("auto"))
    golden.start(project, "tiny")   # a running guest (its shell on the console), no boot
    console_roundtrip(project.qqmgr, project.config, "tiny", 120)
    assert "qq-42" in project.run("serial", "tiny", "-n", "100", check=True).stdout
    project.run("stop", "tiny", "--force", check=True)


def test_serial_follow_stops_when_the_vm_stops(project):
    project.write(bare_toml())
    project.run("start", "bare", check=True)
    f = subprocess.Popen([project.qqmgr, "-c", str(project.config), "serial", "bare", "-f"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        project.run("stop", "bare", "--force", check=True)
        assert f.wait(timeout=10) == 0
    finally:
        if f.poll() is None:
            f.kill()
            f.wait()
