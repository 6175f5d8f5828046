"""The debugging kit on real QEMU: guest gdb, start --paused, trace events, QMP events,
port forwards, --wrap (issue 13).

Guestless tests use a QEMU that boots nothing (BARE); tests marked `guest` boot the
tiny guest (busybox + dropbear) and reach it over ssh.
"""

import json
import os
import shutil
import socket
import subprocess
import time

import pytest

from conftest import free_port, wait_until

BARE = "-nodefaults -machine q35 -m 64 -display none -accel tcg"


def bare_toml(name="bare", extra=""):
    return f'[vm.{name}]\ncmd = ["{BARE}"{extra}]\n'


def banner(port, timeout=3):
    """The first line a TCP server on 127.0.0.1:port sends, or None (refused, closed)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            data = b""
            while b"\n" not in data:
                chunk = s.recv(256)
                if not chunk:
                    break
                data += chunk
            return data.decode(errors="replace").strip() or None
    except OSError:
        return None


def start_tiny(project, tiny_vm_toml, *extra, toml_extra="", golden=None):
    """The tiny VM running and ready for ssh (restored from the session's booted snapshot
    with golden); start's JSON."""
    project.write(tiny_vm_toml("auto") + toml_extra)
    if golden is not None:
        return json.loads(golden.start(project, "tiny", "--timeout", "240", *extra, "--json").stdout)
    return project.json("start", "tiny", "--wait", "--timeout", "240", *extra, check=True)


# ------------------------------------------------------------------ guest gdb

@pytest.mark.guest
def test_gdb_guest_reads_a_register_and_the_guest_still_answers_ssh(project, tiny_vm_toml, tiny_guest, golden):
    sym = tiny_guest.vmlinux if tiny_guest.vmlinux.is_file() else tiny_guest.vmlinuz
    start_tiny(project, tiny_vm_toml, toml_extra=f'\n[vm.tiny.vars]\nsymbols = "{sym}"\n', golden=golden)
    cp = project.run("-d", "gdb", "tiny", "--guest", "--", "-batch", "-ex", "info registers rip",
                     "-ex", "detach", timeout=60)
    assert cp.returncode == 0, cp.stderr
    assert "rip" in cp.stdout and "0x" in cp.stdout, cp.stdout
    # the VM var `symbols` went to gdb, the target is the injected socket
    # the -d echo is shell-quoted: copy-pasteable
    assert f"gdb -q {sym} -ex 'target remote " in cp.stderr, cp.stderr
    assert "gdb.socket" in cp.stderr
    # the VM runs on after gdb detached
    assert project.json("status", "tiny")["state"] == "running"
    assert project.run("ssh", "tiny", "echo", "still-here", check=True).stdout.strip() == "still-here"
    project.run("stop", "tiny", check=True)


def test_gdb_guest_connects_to_the_users_own_gdb_tcp_port(project):
    port = free_port()
    project.write(bare_toml(extra=f', "-gdb tcp::{port}"'))
    show = project.json("show", "bare")["argv"]
    assert show.count("-gdb") == 1, show   # theirs, not ours as well
    project.run("start", "bare", check=True)
    cp = project.run("-d", "gdb", "bare", "--guest", "--", "-batch", "-ex", "info registers pc",
                     "-ex", "detach", timeout=60)
    assert cp.returncode == 0, cp.stderr
    assert f"target remote localhost:{port}" in cp.stderr
    assert "pc " in cp.stdout, cp.stdout
    assert project.json("status", "bare")["state"] == "running"
    project.run("stop", "bare", "--force", check=True)


def test_gdb_guest_and_events_work_in_a_state_dir_beyond_the_socket_path_limit(project):
    deep = project.path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    project.config = deep / "qqmgr.toml"
    project.config.write_text(bare_toml())
    state = deep / ".qqmgr" / "vm.bare"
    assert len(str(state / "events.socket")) > 107
    project.run("start", "bare", check=True)
    assert (state / "gdb.socket").is_socket() and (state / "events.socket").is_socket()
    cp = project.run("gdb", "bare", "--guest", "--", "-batch", "-ex", "info registers pc", "-ex", "detach",
                     timeout=60)
    assert cp.returncode == 0 and "pc " in cp.stdout, cp.stderr
    f = subprocess.Popen([project.qqmgr, "-c", str(project.config), "events", "bare", "-f"],
                         cwd=project.path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert "following the events of bare" in f.stderr.readline()
        project.run("stop", "bare", "--force", check=True)
        out, err = f.communicate(timeout=30)
    finally:
        if f.poll() is None:
            f.kill()
            f.wait()
    assert f.returncode == 0 and "SHUTDOWN" in out, (out, err)


def test_a_second_gdb_guest_is_refused_while_one_is_on_the_gdbstub(project, tmp_path):
    project.write(bare_toml())
    project.run("start", "bare", check=True)
    flag = tmp_path / "attached"
    hold = f"sleep 600.{os.getpid()}"   # the first gdb's shell command, ended below
    first = subprocess.Popen([project.qqmgr, "-c", str(project.config), "gdb", "bare", "--guest", "--", "-batch",
                              "-ex", f"shell touch {flag}; {hold}"],
                             cwd=project.path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_until(flag.exists, 60, what="the first gdb to be attached")
        cp = project.run("gdb", "bare", "--guest", "--", "-batch", "-ex", "info registers pc", timeout=60)
        assert cp.returncode == 1, cp.stdout + cp.stderr
        assert f"bare: another gdb is on its gdbstub (pid {first.pid})" in cp.stderr, cp.stderr
        assert "pc " not in cp.stdout
    finally:
        subprocess.run(["pkill", "-x", "-f", hold])   # gdb's batch then ends: it detaches
        first.wait(timeout=60)
    # the first one's session was not disturbed: detached, the VM runs; the next gdb gets on
    wait_until(lambda: project.json("status", "bare")["state"] == "running", 30, what="the VM to run again")
    cp = project.run("gdb", "bare", "--guest", "--", "-batch", "-ex", "info registers pc", timeout=60)
    assert cp.returncode == 0 and "pc " in cp.stdout, cp.stderr
    project.run("stop", "bare", "--force", check=True)


def test_gdb_guest_with_a_gdb_device_it_cannot_reach_is_a_usage_error_naming_it(project):
    project.write(bare_toml(extra=', "-gdb pty"'))
    cp = project.run("gdb", "bare", "--guest")
    assert cp.returncode == 2, cp.stderr
    assert "-gdb pty" in cp.stderr and "vm.bare.cmd[1]" in cp.stderr and "qqmgr.toml:" in cp.stderr


def test_gdb_symbols_that_cannot_be_read_fail_before_gdb_runs(project):
    project.write(bare_toml() + '[vm.bare.vars]\nsymbols = "no-such-vmlinux"\n')
    project.run("start", "bare", check=True)
    cp = project.run("gdb", "bare", "--guest")
    assert cp.returncode == 1 and str(project.path / "no-such-vmlinux") in cp.stderr, cp.stderr
    cp = project.run("gdb", "bare", "--guest", "--symbols", "/nonexistent/vmlinux")
    assert cp.returncode == 1 and "/nonexistent/vmlinux" in cp.stderr
    assert project.run("gdb", "bare", "--symbols", "x").returncode == 2       # --symbols needs --guest
    assert project.run("gdb", "bare", "--guest", "--attach").returncode == 2
    project.run("stop", "bare", "--force", check=True)


def test_gdb_guest_of_a_stopped_vm_fails_with_the_start_hint(project):
    project.write(bare_toml())
    cp = project.run("gdb", "bare", "--guest")
    assert cp.returncode == 1
    assert "bare is not running" in cp.stderr and "start bare" in cp.stderr


def test_start_paused_keeps_the_cpus_stopped_until_cont(project):
    project.write(bare_toml())
    assert "-S" in project.json("show", "bare", "--paused")["argv"]
    assert "-S" not in project.json("show", "bare")["argv"]
    out = project.json("start", "bare", "--paused", check=True)
    assert out["state"] == "prelaunch", out
    assert project.json("status", "bare")["state"] == "prelaunch"
    project.run("qmp", "bare", "cont", check=True)
    assert project.json("status", "bare")["state"] == "running"
    project.run("stop", "bare", "--force", check=True)


def test_start_paused_with_wait_is_a_usage_error_that_starts_nothing(project):
    # ssh never answers on CPUs that never run: say so at once instead of waiting out --timeout
    project.write(bare_toml() + '\n[vm.bare.ssh]\nport = "auto"\n')
    cp = project.run("start", "bare", "--paused", "--wait")
    assert cp.returncode == 2, cp.stderr
    assert "--paused and --wait" in cp.stderr and "cont" in cp.stderr
    assert project.json("status", "bare")["running"] is False


def test_stop_of_a_paused_vm_quits_at_once_instead_of_waiting_for_a_powerdown(project):
    # CPUs that do not run cannot act on the power button: waiting --timeout for it
    # only delays the quit
    project.write(bare_toml())
    project.run("start", "bare", "--paused", check=True)
    out = project.json("stop", "bare", "--timeout", "20", check=True, timeout=60)
    assert out["stopped_by"] == "quit", out
    assert out["elapsed_ms"] < 8000, out


# ------------------------------------------------------------------ trace

@pytest.mark.guest
def test_trace_event_switched_on_shows_in_the_log_and_off_again(project, tiny_vm_toml, golden):
    start_tiny(project, tiny_vm_toml, golden=golden)
    ev = "qmp_enter_query_status"
    listed = project.json("trace", "tiny", "list", "qmp_enter_query_st*", check=True)
    assert {"name": ev, "state": "disabled"} in listed
    assert all(e["name"].startswith("qmp_enter_query_st") for e in listed)
    on = project.run("trace", "tiny", "on", ev, check=True)
    assert "enabled 1 trace event" in on.stdout
    assert project.json("trace", "tiny", "list", ev, check=True) == [{"name": ev, "state": "enabled"}]
    project.run("status", "tiny", check=True)   # runs query-status
    wait_until(lambda: ev in project.run("trace", "tiny", "log", "-n", "100", check=True).stdout, 30, 0.2)
    project.run("trace", "tiny", "off", ev, check=True)
    assert project.json("trace", "tiny", "list", ev, check=True)[0]["state"] == "disabled"
    project.run("stop", "tiny", check=True)


def test_trace_pattern_that_matches_nothing_fails_and_says_so(project):
    project.write(bare_toml())
    project.run("start", "bare", check=True)
    for args in (("list", "no_such_event_*"), ("on", "no_such_event"), ("off", "no_such_*")):
        cp = project.run("trace", "bare", *args)
        assert cp.returncode == 1, (args, cp.stderr)
        assert "no trace event matches" in cp.stderr and args[1] in cp.stderr
    project.run("stop", "bare", "--force", check=True)


def test_trace_of_a_stopped_vm_fails_with_the_hint_and_bad_actions_are_usage_errors(project):
    project.write(bare_toml())
    cp = project.run("trace", "bare", "list")
    assert cp.returncode == 1 and "start bare" in cp.stderr
    assert project.run("trace", "bare", "frob").returncode == 2
    assert project.run("trace", "bare", "on").returncode == 2


# ------------------------------------------------------------------ QMP events

@pytest.mark.guest
def test_events_follow_sees_stop_resume_and_shutdown_then_ends(project, tiny_vm_toml, golden):
    start_tiny(project, tiny_vm_toml, golden=golden)
    f = subprocess.Popen([project.qqmgr, "-c", str(project.config), "events", "tiny", "-f", "--json"],
                         cwd=project.path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert "following the events of tiny" in f.stderr.readline()
        # QMP (qmp.socket) stays free for other commands while events follows
        project.run("qmp", "tiny", "stop", check=True)
        assert project.json("status", "tiny")["state"] == "paused"
        project.run("qmp", "tiny", "cont", check=True)
        project.run("stop", "tiny", check=True)
        out, err = f.communicate(timeout=60)
    finally:
        if f.poll() is None:
            f.kill()
            f.wait()
    assert f.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    names = [e["event"] for e in events]
    assert names.index("STOP") < names.index("RESUME") < names.index("SHUTDOWN"), names
    assert all("timestamp" in e for e in events)


def test_events_without_follow_prints_the_next_event(project):
    project.write(bare_toml())
    project.run("start", "bare", check=True)
    f = subprocess.Popen([project.qqmgr, "-c", str(project.config), "events", "bare", "--timeout", "60"],
                         cwd=project.path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        # it may not be connected yet: pause and resume until it has seen one
        def poke():
            project.run("qmp", "bare", "stop", check=True)
            project.run("qmp", "bare", "cont", check=True)
            return f.poll() is not None
        wait_until(poke, 30, 0.2)
        out, err = f.communicate(timeout=10)
    finally:
        if f.poll() is None:
            f.kill()
            f.wait()
    assert f.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 1 and lines[0].split()[2] in ("STOP", "RESUME"), out
    project.run("stop", "bare", "--force", check=True)


def test_events_of_a_stopped_vm_fails_with_the_hint(project):
    project.write(bare_toml())
    cp = project.run("events", "bare", "-f")
    assert cp.returncode == 1 and "bare is not running" in cp.stderr and "start bare" in cp.stderr


# ------------------------------------------------------------------ port forwards

@pytest.mark.guest
def test_forward_answers_with_the_guest_ssh_banner_and_stops_after_remove(project, tiny_vm_toml, golden):
    out = start_tiny(project, tiny_vm_toml, golden=golden)
    fwd = project.json("forward", "tiny", "add", "tcp:auto:22", check=True)
    port = fwd["host_port"]
    assert port > 0 and port != out["ssh_port"] and fwd["netdev"] == "n0", fwd
    b = wait_until(lambda: banner(port), 30, 0.2, "the forwarded port's banner")
    assert b.startswith("SSH-2.0-"), b
    assert project.json("forward", "tiny", "list", check=True) == [
        {"proto": "tcp", "host_addr": "127.0.0.1", "host_port": port, "guest_port": 22, "netdev": "n0"}]
    text = project.run("forward", "tiny", "list", check=True).stdout
    assert f"tcp:127.0.0.1:{port} -> guest port 22" in text
    project.run("forward", "tiny", "remove", f"tcp:{port}", check=True)
    wait_until(lambda: banner(port, 1) is None, 30, 0.2, "the removed port stops answering")
    assert project.json("forward", "tiny", "list", check=True) == []
    # a host port in use: QEMU's words, exit 1
    busy = project.run("forward", "tiny", "add", f"tcp:{out['ssh_port']}:22")
    assert busy.returncode == 1
    assert "Could not set up host forwarding rule" in busy.stderr and str(out["ssh_port"]) in busy.stderr
    # forgotten when the VM stops
    fwd = project.json("forward", "tiny", "add", "tcp:0:22", check=True)
    assert (project.vm_dir("tiny") / "forwards.json").exists()
    project.run("stop", "tiny", check=True)
    assert not (project.vm_dir("tiny") / "forwards.json").exists()
    assert project.run("forward", "tiny", "list").returncode == 1


def test_forward_bad_input(project):
    project.write(bare_toml())
    for spec in ("tcp:22", "sctp:1:2", "tcp:1:2:3:4", "tcp:70000:22", "tcp:x:1:2", "tcp:80:auto"):
        cp = project.run("forward", "bare", "add", spec)
        assert cp.returncode == 2 and spec in cp.stderr, (spec, cp.stderr)
    assert project.run("forward", "bare", "remove", "tcp:1:2").returncode == 2
    assert project.run("forward", "bare", "frob", "tcp:1").returncode == 2
    cp = project.run("forward", "bare", "add", "tcp:auto:22")
    assert cp.returncode == 1 and "start bare" in cp.stderr


def test_forward_on_a_vm_without_user_networking_says_so(project):
    project.write(bare_toml())
    project.run("start", "bare", check=True)
    cp = project.run("forward", "bare", "add", "tcp:auto:22")
    assert cp.returncode == 1 and "no user-mode network" in cp.stderr, cp.stderr
    project.run("stop", "bare", "--force", check=True)


def test_forward_to_an_unknown_netdev_gives_qemus_words_only(project):
    project.write(bare_toml(extra=', "-netdev user,id=n0"'))
    project.run("start", "bare", check=True)
    try:
        cp = project.run("forward", "bare", "add", "tcp:auto:22", "--netdev", "nosuch")
        assert cp.returncode == 1 and "nosuch" in cp.stderr, cp.stderr
        assert "in use" not in cp.stderr, cp.stderr   # not a port problem
        assert project.json("forward", "bare", "list", check=True) == []
    finally:
        project.run("stop", "bare", "--force", check=True)


# ------------------------------------------------------------------ --wrap

@pytest.mark.guest
@pytest.mark.skipif(not shutil.which("strace"), reason="strace is not installed (tools/deps.sh)")
def test_wrap_runs_qemu_under_strace_and_tracks_qemus_pid(project, tiny_vm_toml, tmp_path):
    log = tmp_path / "qemu.strace"
    wrap = f"strace -f -o '{log}'"
    project.write(tiny_vm_toml("auto"))
    shown = project.json("show", "tiny", "--wrap", wrap)["argv"]
    assert shown[:4] == ["strace", "-f", "-o", str(log)] and shown[4] == "qemu-system-x86_64", shown
    line = project.run("show", "tiny", "--wrap", wrap, check=True).stdout
    assert line.startswith(f"strace -f -o {log} qemu-system-x86_64 ")
    out = project.json("start", "tiny", "--wrap", wrap, "--wait", "--timeout", "300", check=True)
    pid = out["pid"]
    with open(f"/proc/{pid}/comm") as f:
        assert f.read().startswith("qemu"), "the tracked pid is QEMU's, not strace's"
    assert project.json("status", "tiny")["pid"] == pid
    assert project.run("ssh", "tiny", "echo", "traced", check=True).stdout.strip() == "traced"
    assert "execve(" in log.read_text() and "qemu-system-x86_64" in log.read_text()
    project.run("stop", "tiny", check=True)
    wait_until(lambda: not os.path.exists(f"/proc/{pid}"), 30, 0.1)


def test_wrap_that_does_not_split_is_a_usage_error(project):
    project.write(bare_toml())
    cp = project.run("start", "bare", "--wrap", "strace 'unterminated")
    assert cp.returncode == 2 and "--wrap" in cp.stderr
    cp = project.run("show", "bare", "--wrap", "  ")
    assert cp.returncode == 2 and "--wrap" in cp.stderr
