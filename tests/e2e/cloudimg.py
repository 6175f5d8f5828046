"""The Debian cloud image the e2e tests share: the project's cloud base image
(tests/guest/cloud-base.sh) customised once per pytest session by a real `img build` of a
cloud-init image (test_img_cloud.py tests that build; test_mapped_debian.py snapshots a VM
on it). Loaded as a plugin by conftest.py (pytest_plugins), so the session fixtures
`cloud_base` and `built` have one instance for every test file of the session.
"""
import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ACCEL, REPO, reap_qemu_under

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
            "-append 'root=/dev/vda rw console=ttyS0 no_timer_check'",
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


@pytest.fixture(scope="session")
def cloud_base():
    cp = subprocess.run(["bash", str(REPO / "tests" / "guest" / "cloud-base.sh")], capture_output=True,
                        text=True, stdin=subprocess.DEVNULL, timeout=1200)
    if cp.returncode != 0:
        pytest.fail(f"building the cloud base image failed:\n{cp.stderr[-4000:]}")
    d = Path(cp.stdout.strip().splitlines()[-1])
    for f in ("base.qcow2", "vmlinuz", "initrd.img"):
        assert (d / f).is_file(), f"cloud base incomplete: {f} missing"
    return d


@pytest.fixture(scope="session")
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
