"""The real cloud-init image build, end to end: the project's Debian cloud base image
(tests/guest/cloud-base.sh) served over loopback HTTP, user-data from a template using
the env and an env_hook value, a source file copied into the guest by runcmd, the
customisation boot under TCG until the guest powers off; then the result is checked
without booting (qemu-img convert + debugfs: the disk is bare ext4) and by starting a
VM on {{.img.cloud}} and reading the files over `qqmgr ssh`.

The build (~65-90 s under TCG) happens once per module. Run:
  QQ_BUILD_DIR=build /usr/bin/python3 -m pytest tests/e2e/test_img_cloud.py
"""
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ACCEL, REPO, reap_qemu_under

pytestmark = [pytest.mark.guest,
              pytest.mark.skipif(not (shutil.which("qemu-img") and shutil.which("debugfs")
                                      and shutil.which("qemu-system-x86_64")),
                                 reason="needs qemu-img, qemu-system-x86_64 and debugfs")]

SERVER = REPO / "tests" / "tools" / "http_server.py"
PAYLOAD = "payload copied by runcmd, built at %d\n" % time.time_ns()

USER_DATA = """#cloud-config
hostname: {{.hostname}}
disable_root: false
ssh_authorized_keys:
  - {{.pubkey}}
write_files:
  - path: /root/hello.txt
    content: "{{.greeting}} from {{.from_hook}}\\n"
runcmd:
  - [sh, -c, "mount -o ro -L cidata /mnt && cp /mnt/payload.txt /root/payload.txt && umount /mnt"]
power_state:
  mode: poweroff
  timeout: 30
"""

META_DATA = "instance-id: {{.hostname}}-1\nlocal-hostname: {{.hostname}}\n"

# reads the env (one JSON line), adds a value, prints noise then the new env
HOOK = """import json, sys
env = json.loads(sys.stdin.readline())
env["from_hook"] = "the env hook of " + env["hostname"]
print("hook: extending the env")
print(json.dumps(env))
"""


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def machine(kernel, initrd):
    return [f"-accel {ACCEL} -m 768 -smp 2 -nodefaults -display none",
            f"-kernel {kernel}", f"-initrd {initrd}",
            "-append 'root=/dev/vda rw console=ttyS0'",
            "-device virtio-rng-pci"]


class Built:
    """The project dir after one successful `img build cloud`."""

    def __init__(self, d, qqmgr, env, result, seconds):
        self.dir, self.qqmgr, self.env = d, qqmgr, env
        self.result, self.seconds = result, seconds
        self.config = d / "qqmgr.toml"
        self.disk = d / ".qqmgr" / "img.cloud" / "disk.qcow2"

    def run(self, *args, timeout=600):
        return subprocess.run([self.qqmgr, "-c", str(self.config), *args], cwd=self.dir,
                              capture_output=True, text=True, env=self.env, timeout=timeout,
                              stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def cloud_base():
    cp = subprocess.run(["bash", str(REPO / "tests" / "guest" / "cloud-base.sh")], capture_output=True,
                        text=True, stdin=subprocess.DEVNULL, timeout=1200)
    if cp.returncode != 0:
        pytest.fail(f"building the cloud base image failed:\n{cp.stderr[-4000:]}")
    d = Path(cp.stdout.strip().splitlines()[-1])
    for f in ("base.qcow2", "vmlinuz", "initrd.img"):
        assert (d / f).is_file(), f"cloud base incomplete: {f} missing"
    return d


@pytest.fixture(scope="module")
def built(tmp_path_factory, cloud_base, qqmgr):
    root = tmp_path_factory.mktemp("imgcloud")
    srv = root / "srv"
    srv.mkdir()
    os.symlink(cloud_base / "base.qcow2", srv / "base.qcow2")
    (srv / "payload.txt").write_text(PAYLOAD)
    d = root / "proj"
    d.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "id_ed25519")],
                   check=True)
    pubkey = (d / "id_ed25519.pub").read_text().strip()
    (d / "user-data.tpl").write_text(USER_DATA)
    (d / "meta-data.tpl").write_text(META_DATA)
    (d / "hook.py").write_text(HOOK)
    server = subprocess.Popen(["/usr/bin/python3", str(SERVER), str(srv)], stdout=subprocess.PIPE,
                              text=True)
    try:
        port = int(server.stdout.readline())
        url = f"http://127.0.0.1:{port}"
        m = machine(cloud_base / "vmlinuz", cloud_base / "initrd.img")
        # build_args elements are single arguments (never split, unlike cmd entries)
        build_args = [a for s in m + ["-serial stdio", "-drive file={{.img_self}},if=virtio,format=qcow2",
                                      "-cdrom {{.cloud_init_iso}}",
                                      "-netdev user,id=n0 -device virtio-net-pci,netdev=n0"]
                      for a in shlex.split(s)]
        vm_cmd = m + ["-drive file={{.img.cloud}},if=virtio,format=qcow2",
                      "-netdev user,id=n0,hostfwd=tcp:127.0.0.1:{{.vm.ssh.port}}-:{{.vm.ssh.vm_port}}",
                      "-device virtio-net-pci,netdev=n0"]
        (d / "qqmgr.toml").write_text(f"""
[img.cloud]
builder = "cloud-init"
img_size = "3G"
build_timeout = 600
build_args = {json.dumps(build_args)}

[img.cloud.base_img]
url = "{url}/base.qcow2"
sha256sum = "{sha256(cloud_base / 'base.qcow2')}"

[[img.cloud.templates]]
template = "user-data.tpl"
output = "user-data"

[[img.cloud.templates]]
template = "meta-data.tpl"
output = "meta-data"

[img.cloud.env]
hostname = "qqbuilt"
greeting = "hello"
pubkey = "{pubkey}"

[img.cloud.env_hook]
interpreter = "/usr/bin/python3"
script = "hook.py"

[[img.cloud.sources]]
url = "{url}/payload.txt"
sha256sum = "{hashlib.sha256(PAYLOAD.encode()).hexdigest()}"
filename = "payload.txt"

[vm.cloud]
cmd = {json.dumps(vm_cmd)}

[vm.cloud.ssh]
port = "auto"
User = "root"
IdentityFile = "{d / 'id_ed25519'}"
StrictHostKeyChecking = "no"
UserKnownHostsFile = "/dev/null"
LogLevel = "ERROR"
""")
        env = dict(os.environ, XDG_CACHE_HOME=str(root / "cache"))
        b = Built(d, qqmgr, env, None, 0)
        t0 = time.monotonic()
        r = b.run("img", "build", "cloud", "--json", timeout=900)
        b.seconds = time.monotonic() - t0
        log = b.disk.parent / "build.log"
        if r.returncode != 0:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            pytest.fail(f"img build failed ({r.returncode}):\n{r.stderr}\n--- build.log tail\n{tail}")
        b.result = json.loads(r.stdout)
        print(f"\n[img cloud] build took {b.seconds:.1f} s", file=sys.stderr)
    finally:
        server.terminate()
        server.wait(timeout=10)
    yield b
    b.run("stop", "cloud", "--force", timeout=60)
    reap_qemu_under(root)


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
