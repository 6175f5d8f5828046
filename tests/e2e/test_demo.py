"""examples/demo.sh as a new user runs it: build progress instead of silence, and every
command's output ends its line before the next command is echoed."""

import os
import subprocess

import pytest

from conftest import REPO, reap_qemu_under

pytestmark = pytest.mark.guest


def test_demo_shows_build_progress_and_ends_the_serial_tail_with_a_newline(qqmgr, tmp_path):
    build = os.path.dirname(qqmgr)   # an up-to-date build dir: the demo's ninja step is quick
    env = dict(os.environ, QQ_DEMO_BUILD_DIR=build)
    env.pop("QQMGR", None)
    try:
        r = subprocess.run([str(REPO / "examples" / "demo.sh")], capture_output=True, text=True, env=env,
                           stdin=subprocess.DEVNULL, timeout=900)
    finally:
        reap_qemu_under(REPO / "examples")
    assert r.returncode == 0, r.stdout + r.stderr
    # the build step says where and what ninja says (here: nothing to do), not silence
    assert f"demo: building qqmgr in {build}" in r.stderr
    assert "ninja: no work to do." in r.stderr or "demo: built " in r.stderr, r.stderr
    out = r.stdout
    serial = out.index(" serial demo -n 5\n")
    stop = out.index("\n$ ", serial)
    # the serial tail ends with a newline, then the blank line before the next command
    assert out[stop - 1] == "\n" and out[stop + 1:].startswith("$ ") and out[stop:stop + 3] == "\n$ ", out
    assert " stop demo\n" in out[stop:]
