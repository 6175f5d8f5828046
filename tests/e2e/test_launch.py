"""How qqmgr launches QEMU and what it says about a VM that does not run
(issue 16 §2, §3): one message for "not running", QEMU inherits only fds 0-2,
one deadline for the whole start, lock waits included.

Guestless: a QEMU that boots nothing (BARE).
"""

import fcntl
import os
import subprocess
import time

import pytest

from conftest import wait_until

BARE = "-nodefaults -machine q35 -m 64 -display none -accel tcg"


def bare_toml(name="bare", port=None):
    ssh = f'\n[vm.{name}.ssh]\nport = {port}\n' if port else ""
    return f'[vm.{name}]\ncmd = ["{BARE}"]\n{ssh}'


def test_every_command_that_needs_a_running_vm_says_so_in_one_way(project):
    project.write(bare_toml(port='"auto"'))
    first = project.run("console", "bare").stderr.strip()
    assert first.startswith("qqmgr: bare is not running (start it: ") and first.endswith(" start bare)"), first
    want = first[:-1]
    needs_running = [
        ("console", "bare"),
        ("qmp", "bare", "query-status"),
        ("monitor", "bare", "info status"),
        ("gdb", "bare", "--attach"),
        ("gdb", "bare", "--guest"),
        ("trace", "bare", "list"),
        ("events", "bare"),
        ("forward", "bare", "list"),
        ("snapshot", "save", "bare", "s1"),
        ("ssh", "bare", "true"),
    ]
    for args in needs_running:
        cp = project.run(*args)
        assert cp.returncode == 1, (args, cp.stderr)
        assert cp.stderr.strip() == want + ")", (args, cp.stderr)
    cp = project.run("snapshot", "restore", "bare", "s1")
    assert cp.returncode == 1 and cp.stderr.strip() == want + " --restore s1)", cp.stderr
