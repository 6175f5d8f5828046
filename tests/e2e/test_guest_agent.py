"""`qqmgr ga VM COMMAND [JSON_ARGS]`: one command of the guest's qemu-guest-agent, through
the channel `guest_agent = true` adds (the tiny guest's initramfs-qga.gz runs qemu-ga on it).
The clock's use of the agent is test_guest_clock.py's."""
import base64
import json
import time

import pytest

from conftest import wait_until
from test_snapshot import boot, stop

pytestmark = pytest.mark.guest


def ga(project, *args, **kw):
    return project.run("ga", "tiny", *args, **kw)


def test_ga_runs_agent_commands_and_prints_their_return_value(project, tiny_vm_toml, golden):
    project.write(tiny_vm_toml("auto", guest_agent=True))
    boot(project, golden=golden)
    cp = ga(project, "guest-ping", check=True)
    assert json.loads(cp.stdout) == {}
    ns = json.loads(ga(project, "guest-get-time", check=True).stdout)
    assert abs(ns / 1e9 - time.time()) < 600
    # guest-exec with arguments, then its status until the process ended: its output
    pid = json.loads(ga(project, "guest-exec", json.dumps({"path": "/bin/echo", "arg": ["from", "the agent"],
                                                          "capture-output": True}), check=True).stdout)["pid"]
    st = wait_until(lambda: (lambda s: s if s["exited"] else None)(
        json.loads(ga(project, "guest-exec-status", json.dumps({"pid": pid}), check=True).stdout)), 60,
        what="the guest-exec'd echo to end")
    assert st["exitcode"] == 0 and base64.b64decode(st["out-data"]) == b"from the agent\n"
    # the agent's own error: exit 1 with its words
    cp = ga(project, "guest-no-such-command")
    assert cp.returncode == 1 and "tiny: the guest agent's guest-no-such-command failed:" in cp.stderr, cp.stderr
    assert "has not been found" in cp.stderr
    # arguments that are not an object: a usage error before anything is asked
    cp = ga(project, "guest-ping", "[1]")
    assert cp.returncode == 2 and "JSON_ARGS must be a JSON object" in cp.stderr
    stop(project)
    cp = ga(project, "guest-ping")
    assert cp.returncode == 1 and "tiny is not running" in cp.stderr, cp.stderr


def test_ga_names_what_is_missing(project, tiny_vm_toml, golden):
    # no guest_agent key: no channel, and the message says which key
    project.write(tiny_vm_toml("auto"))
    boot(project, golden=golden)
    cp = ga(project, "guest-ping")
    assert cp.returncode == 1 and "set guest_agent = true in [vm.tiny]" in cp.stderr, cp.stderr
    stop(project)
    # the channel, but no qemu-ga in the guest: bounded by --timeout
    project.write(tiny_vm_toml("auto", guest_agent=True, qga=False))
    boot(project, golden=golden)
    t0 = time.monotonic()
    cp = ga(project, "guest-ping", "--timeout", "2")
    assert cp.returncode == 1 and "the guest agent did not answer" in cp.stderr, cp.stderr
    assert time.monotonic() - t0 < 15
    stop(project)
