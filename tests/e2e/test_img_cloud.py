"""The real cloud-init image build, end to end: the project's Debian cloud base image
(tests/guest/cloud-base.sh) served over loopback HTTP, user-data from a template using
the env and an env_hook value, a source file copied into the guest by runcmd, the
customisation boot under TCG until the guest powers off; then the result is checked
without booting (qemu-img convert + debugfs: the disk is bare ext4) and by starting a
VM on {{.img.cloud}} and reading the files over `qqmgr ssh`.

The build (~65-90 s under TCG) happens once per pytest session (the `built` fixture of
cloudimg.py, which test_mapped_debian.py shares). Run:
  QQ_BUILD_DIR=build /usr/bin/python3 -m pytest tests/e2e/test_img_cloud.py
"""
import json
import shutil
import subprocess
import time

import pytest

from cloudimg import PAYLOAD

pytestmark = [pytest.mark.guest,
              pytest.mark.skipif(not (shutil.which("qemu-img") and shutil.which("debugfs")
                                      and shutil.which("qemu-system-x86_64")),
                                 reason="needs qemu-img, qemu-system-x86_64 and debugfs")]


def debugfs_cat(built, tmp_path, guest_path):
    raw = tmp_path / "disk.raw"
    if not raw.exists():
        subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", str(built.disk), str(raw)], check=True)
    cp = subprocess.run(["debugfs", "-R", f"cat {guest_path}", str(raw)], capture_output=True, text=True)
    return cp.stdout


def test_cloud_init_build_runs_every_stage_and_the_guest_powers_off(built):
    actions = {s["stage"]: s["action"] for s in built.result["stages"]}
    assert actions == {"env": "done", "base": "downloaded", "copy": "done", "render": "done",
                       "sources": "downloaded", "iso": "done", "boot": "done"}
    info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", str(built.disk)],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["format"] == "qcow2" and info["virtual-size"] == 3 << 30
    log = (built.disk.parent / "build.log").read_text(errors="replace")
    assert "reboot: Power down" in log or "Power down" in log


def test_built_disk_holds_the_rendered_and_copied_files_without_booting(built, tmp_path):
    assert debugfs_cat(built, tmp_path, "/root/hello.txt") == "hello from the env hook of qqbuilt\n"
    assert debugfs_cat(built, tmp_path, "/root/payload.txt") == PAYLOAD
    assert debugfs_cat(built, tmp_path, "/etc/hostname").strip() == "qqbuilt"


def test_rebuild_of_the_built_image_is_a_quick_noop(built):
    t0 = time.monotonic()
    r = built.run("img", "build", "cloud")
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert "up to date" in r.stdout
    assert took < 5


def test_vm_on_the_built_image_serves_the_files_over_ssh(built):
    r = built.run("start", "cloud", "--wait", timeout=600)
    assert r.returncode == 0, r.stderr + r.stdout
    try:
        r = built.run("ssh", "cloud", "cat", "/root/hello.txt", "/root/payload.txt", timeout=120)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "hello from the env hook of qqbuilt\n" + PAYLOAD
        # the overlay was grown to img_size, and cloud-init grew the file system
        r = built.run("ssh", "cloud", "df", "-B1", "--output=size", "/", timeout=120)
        assert r.returncode == 0, r.stderr
        assert int(r.stdout.split()[-1]) > 2 << 30
    finally:
        r = built.run("stop", "cloud", timeout=120)
    assert r.returncode == 0, r.stderr
