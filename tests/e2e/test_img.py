"""End-to-end tests of `qqmgr img build`: raw images, the cloud-init pipeline
(with a stand-in QEMU so no guest boots), and download failures.

Run: QQMGR=build/qqmgr /usr/bin/python3 -m pytest tests/e2e/test_img.py
(the real cloud-init build, booting a guest, is in test_img_cloud.py)
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import pid_alive, wait_until

ROOT = Path(__file__).resolve().parents[2]
QQMGR = os.environ.get("QQMGR") or str(Path(os.environ.get("QQ_BUILD_DIR", ROOT / "build")) / "qqmgr")
SERVER = ROOT / "tests" / "tools" / "http_server.py"

pytestmark = pytest.mark.skipif(not shutil.which("qemu-img"), reason="needs qemu-img")


def qq(cfg, *args, env=None, timeout=120):
    return subprocess.run([QQMGR, "-c", str(cfg), *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


class Server:
    def __init__(self, root):
        self.root = root
        self.proc = subprocess.Popen(["/usr/bin/python3", str(SERVER), str(root)],
                                     stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())

    def url(self, path):
        return f"http://127.0.0.1:{self.port}/{path}"

    def stats(self):
        with urllib.request.urlopen(self.url("_stats")) as r:
            return json.load(r)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def env(tmp_path):
    e = dict(os.environ)
    e["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    return e


@pytest.fixture
def files(tmp_path):
    d = tmp_path / "srv"
    d.mkdir()
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(d / "base.qcow2"), "32M"], check=True)
    (d / "payload.txt").write_text("hello from a source\n")
    return d


@pytest.fixture
def server(files):
    s = Server(files)
    yield s
    s.stop()


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def cache_entries(tmp_path):
    d = tmp_path / "cache" / "qqmgr" / "sha256"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def vsize(path):
    out = subprocess.run(["qemu-img", "info", "--output=json", str(path)], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out)


# ------------------------------------------------------------------ raw

def write_raw(tmp_path, size="64M"):
    cfg = tmp_path / "qqmgr.toml"
    cfg.write_text(f'[img.disk]\nbuilder = "raw"\nimg_size = "{size}"\n')
    return cfg


def test_raw_image_has_the_configured_virtual_size(tmp_path, env):
    cfg = write_raw(tmp_path)
    r = qq(cfg, "img", "build", "disk", env=env)
    assert r.returncode == 0, r.stderr
    path = tmp_path / ".qqmgr" / "img.disk" / "disk.raw"
    info = vsize(path)
    assert info["format"] == "raw"
    assert info["virtual-size"] == 64 * 1024 * 1024


def test_second_raw_build_is_a_noop_saying_up_to_date(tmp_path, env):
    cfg = write_raw(tmp_path)
    assert qq(cfg, "img", "build", "disk", env=env).returncode == 0
    path = tmp_path / ".qqmgr" / "img.disk" / "disk.raw"
    before = path.stat()
    r = qq(cfg, "img", "build", "disk", env=env)
    assert r.returncode == 0
    assert "up to date" in r.stdout
    after = path.stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


def test_force_rebuilds_a_raw_image(tmp_path, env):
    cfg = write_raw(tmp_path)
    assert qq(cfg, "img", "build", "disk", env=env).returncode == 0
    path = tmp_path / ".qqmgr" / "img.disk" / "disk.raw"
    ino = path.stat().st_ino
    r = qq(cfg, "img", "build", "disk", "--force", "--json", env=env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["up_to_date"] is False
    assert doc["stages"] == [{"stage": "create", "action": "done"}]
    assert path.stat().st_ino != ino


def test_changed_img_size_rebuilds_a_raw_image(tmp_path, env):
    cfg = write_raw(tmp_path)
    assert qq(cfg, "img", "build", "disk", env=env).returncode == 0
    write_raw(tmp_path, "128M")
    r = qq(cfg, "img", "build", "disk", "--json", env=env)
    assert json.loads(r.stdout)["up_to_date"] is False
    assert vsize(tmp_path / ".qqmgr" / "img.disk" / "disk.raw")["virtual-size"] == 128 * 1024 * 1024


def test_unknown_image_is_a_usage_error(tmp_path, env):
    cfg = write_raw(tmp_path)
    r = qq(cfg, "img", "build", "nope", env=env)
    assert r.returncode == 2
    assert "nope" in r.stderr


# ----------------------------------------------------------- cloud-init

FAKE_QEMU = """#!/bin/sh
# stands in for QEMU: records its arguments, then does what the mode file says
printf '%s\\n' "$@" > "{argfile}"
echo "fake qemu running in $(pwd)"
case "$(cat {modefile} 2>/dev/null)" in
  fail) echo "guest exploded" >&2; exit 3;;
  hang) exec sleep 600;;
esac
exit 0
"""


def write_cloud(tmp_path, server, files, base_url=None, base_sum=None, hook="ok", extra="",
                qemu=None, build_args=None, base_sums=None, name="qqmgr.toml"):
    d = tmp_path
    (d / "templates").mkdir(exist_ok=True)
    (d / "templates" / "user-data.tpl").write_text(
        "#cloud-config\nhostname: {{.hostname}}\nkey: {{.key}}\n")
    (d / "templates" / "meta-data.tpl").write_text("instance-id: {{.hostname}}\n")
    (d / "hook.sh").write_text(
        "read line\necho 'noise' \n" +
        ("echo '{\"hostname\": \"vm1\", \"key\": \"from-hook\"}'\n" if hook == "ok" else "echo oops >&2; exit 7\n"))
    fake = d / "fake-qemu"
    fake.write_text(FAKE_QEMU.format(argfile=d / "qemu-args", modefile=d / "qemu-mode"))
    fake.chmod(0o755)
    cfg = d / name
    sums = base_sums or 'sha256sum = "%s"' % (base_sum or sha256(files / "base.qcow2"))
    cfg.write_text(f"""
[qemu]
bin = "{qemu or fake}"

[img.ci]
builder = "cloud-init"
img_size = "64M"
build_args = {json.dumps(build_args or ["-drive", "file={{.img_self}},if=virtio", "-cdrom", "{{.cloud_init_iso}}"])}
{extra}

[img.ci.base_img]
url = "{base_url or server.url('base.qcow2')}"
{sums}

[[img.ci.templates]]
template = "templates/user-data.tpl"
output = "user-data"

[[img.ci.templates]]
template = "templates/meta-data.tpl"
output = "meta-data"

[img.ci.env]
hostname = "unused"

[img.ci.env_hook]
interpreter = "sh"
script = "hook.sh"

[[img.ci.sources]]
url = "{server.url('payload.txt')}"
sha256sum = "{sha256(files / 'payload.txt')}"
filename = "payload.txt"
""")
    return cfg


def imgdir(tmp_path):
    return tmp_path / ".qqmgr" / "img.ci"


def test_cloud_init_build_runs_every_stage_and_boots_the_overlay(tmp_path, env, server, files):
    cfg = write_cloud(tmp_path, server, files)
    r = qq(cfg, "img", "build", "ci", "--json", env=env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    actions = {s["stage"]: s["action"] for s in doc["stages"]}
    assert actions == {"env": "done", "base": "downloaded", "copy": "done", "render": "done",
                       "sources": "downloaded", "iso": "done", "boot": "done"}
    disk = imgdir(tmp_path) / "disk.qcow2"
    info = vsize(disk)
    assert info["format"] == "qcow2"
    assert info["virtual-size"] == 64 * 1024 * 1024
    assert Path(info["full-backing-filename"]).name.startswith("base-")
    iso = imgdir(tmp_path) / "cidata.iso"
    args = (tmp_path / "qemu-args").read_text().split("\n")
    assert args[:4] == ["-drive", f"file={disk}.building,if=virtio", "-cdrom", str(iso)]
    if shutil.which("isoinfo"):
        ud = subprocess.run(["isoinfo", "-i", str(iso), "-R", "-x", "/user-data"],
                            capture_output=True, text=True).stdout
        assert ud == "#cloud-config\nhostname: vm1\nkey: from-hook\n"
        names = subprocess.run(["isoinfo", "-i", str(iso), "-R", "-f"], capture_output=True,
                               text=True).stdout.split()
        assert sorted(names) == ["/meta-data", "/payload.txt", "/user-data"]
    # QEMU runs from the config's directory (relative paths in build_args), not from ours
    assert f"fake qemu running in {os.path.realpath(tmp_path)}\n" in (imgdir(tmp_path) / "build.log").read_text()


@pytest.mark.parametrize("how", ["relative", "absolute", "file_url"])
def test_base_img_url_may_be_a_local_path(tmp_path, env, server, files, how):
    # a plain path is a local file (relative: to the config's dir), not libcurl's
    # "URL using bad/illegal format"; file:// keeps working
    spaced = tmp_path / "my images"
    spaced.mkdir()
    shutil.copy(files / "base.qcow2", spaced / "base 1.qcow2")
    url = {"relative": "my images/base 1.qcow2", "absolute": str(spaced / "base 1.qcow2"),
           "file_url": "file://" + urllib.parse.quote(str(spaced / "base 1.qcow2"))}[how]
    cfg = write_cloud(tmp_path, server, files, base_url=url)
    r = qq(cfg, "img", "build", "ci", "--json", env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert {s["stage"]: s["action"] for s in json.loads(r.stdout)["stages"]}["base"] == "downloaded"
    if how == "relative":
        # from another working directory too: relative to the config, not to the cwd
        r = subprocess.run([QQMGR, "-c", str(cfg), "img", "build", "ci", "--force"], capture_output=True,
                           text=True, env=env, cwd="/", timeout=300)
        assert r.returncode == 0, r.stderr


def test_base_img_path_that_does_not_exist_names_it(tmp_path, env, server, files):
    cfg = write_cloud(tmp_path, server, files, base_url="no/such.qcow2")
    r = qq(cfg, "img", "build", "ci", env=env)
    assert r.returncode == 1
    assert "bad/illegal format" not in r.stderr
    assert f"file://{tmp_path}/no/such.qcow2" in r.stderr.replace(str(os.path.realpath(tmp_path)), str(tmp_path)), r.stderr


def test_each_build_args_element_is_one_argument_never_split(tmp_path, env, server, files):
    # the original's exec.Command(bin, args...): "-append", "a b c" is two arguments
    cfg = write_cloud(tmp_path, server, files, build_args=[
        "-append", "root=/dev/vda rw console=ttyS0", "-name", "{{.hostname}} vm", "it's 'quoted'", ""])
    r = qq(cfg, "img", "build", "ci", env=env)
    assert r.returncode == 0, r.stderr
    args = (tmp_path / "qemu-args").read_text().split("\n")
    assert args[:6] == ["-append", "root=/dev/vda rw console=ttyS0", "-name", "vm1 vm", "it's 'quoted'", ""]
    assert args[6] == "-qmp"


def test_second_cloud_init_build_is_up_to_date_without_the_server(tmp_path, env, server, files):
    cfg = write_cloud(tmp_path, server, files)
    assert qq(cfg, "img", "build", "ci", env=env).returncode == 0
    server.stop()
    (tmp_path / "qemu-args").unlink()
    r = qq(cfg, "img", "build", "ci", env=env)
    assert r.returncode == 0, r.stderr
    assert "up to date" in r.stdout
    assert not (tmp_path / "qemu-args").exists()     # QEMU did not run again


def test_changed_template_reruns_iso_and_boot_but_not_download_or_copy(tmp_path, env, server, files):
    cfg = write_cloud(tmp_path, server, files)
    assert qq(cfg, "img", "build", "ci", env=env).returncode == 0
    (tmp_path / "templates" / "meta-data.tpl").write_text("instance-id: {{.hostname}}-2\n")
    r = qq(cfg, "img", "build", "ci", "--json", env=env)
    assert r.returncode == 0, r.stderr
    actions = {s["stage"]: s["action"] for s in json.loads(r.stdout)["stages"]}
    assert actions["base"] == "cached" and actions["copy"] == "skipped"
    assert actions["iso"] == "done" and actions["boot"] == "done"


def test_failing_boot_keeps_the_previous_image(tmp_path, env, server, files):
    cfg = write_cloud(tmp_path, server, files)
    assert qq(cfg, "img", "build", "ci", env=env).returncode == 0
    disk = imgdir(tmp_path) / "disk.qcow2"
    ino = disk.stat().st_ino
    (tmp_path / "qemu-mode").write_text("fail")
    r = qq(cfg, "img", "build", "ci", "--force", env=env)
    assert r.returncode == 1
    assert "exited with status 3" in r.stderr and "guest exploded" in r.stderr
    assert disk.stat().st_ino == ino
    assert not Path(str(disk) + ".building").exists()


def test_boot_that_never_powers_off_times_out_and_keeps_the_previous_image(tmp_path, env, server, files):
    cfg = write_cloud(tmp_path, server, files)
    assert qq(cfg, "img", "build", "ci", env=env).returncode == 0
    disk = imgdir(tmp_path) / "disk.qcow2"
    ino = disk.stat().st_ino
    (tmp_path / "qemu-mode").write_text("hang")
    t0 = time.monotonic()
    r = qq(cfg, "img", "build", "ci", "--force", "--timeout", "2", env=env)
    assert r.returncode == 1
    assert "did not power off within 2 s" in r.stderr
    assert time.monotonic() - t0 < 30
    assert disk.stat().st_ino == ino


def test_build_timeout_from_config_applies(tmp_path, env, server, files):
    cfg = write_cloud(tmp_path, server, files, extra="build_timeout = 1")
    (tmp_path / "qemu-mode").write_text("hang")
    r = qq(cfg, "img", "build", "ci", env=env)
    assert r.returncode == 1
    assert "within 1 s" in r.stderr
    assert not (imgdir(tmp_path) / "disk.qcow2").exists()


def test_failing_env_hook_stops_the_build_with_its_status(tmp_path, env, server, files):
    cfg = write_cloud(tmp_path, server, files, hook="fail")
    r = qq(cfg, "img", "build", "ci", env=env)
    assert r.returncode == 1
    assert "env_hook" in r.stderr and "7" in r.stderr
    assert "oops" in r.stderr                          # the hook's stderr is shown
    assert not (tmp_path / "qemu-args").exists()


def test_template_error_is_a_config_error_naming_the_template(tmp_path, env, server, files):
    cfg = write_cloud(tmp_path, server, files)
    (tmp_path / "templates" / "user-data.tpl").write_text("{{.nosuchkey}}\n")
    r = qq(cfg, "img", "build", "ci", env=env)
    assert r.returncode == 2
    assert "user-data.tpl" in r.stderr and "nosuchkey" in r.stderr


# ------------------------------------------------------------ downloads

def test_wrong_sha256_fails_naming_url_and_both_sums(tmp_path, env, server, files):
    wrong = "0" * 64
    cfg = write_cloud(tmp_path, server, files, base_sum=wrong)
    r = qq(cfg, "img", "build", "ci", env=env)
    assert r.returncode == 1
    assert server.url("base.qcow2") in r.stderr
    assert f"expected {wrong}" in r.stderr and sha256(files / "base.qcow2") in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert cache_entries(tmp_path) == []


def sha512(path):
    return hashlib.sha512(Path(path).read_bytes()).hexdigest()


def stage_actions(r):
    return {s["stage"]: s["action"] for s in json.loads(r.stdout)["stages"]}


def test_base_img_given_only_by_sha512_downloads_verifies_and_builds(tmp_path, env, server, files):
    cfg = write_cloud(tmp_path, server, files, base_sums=f'sha512sum = "{sha512(files / "base.qcow2")}"')
    r = qq(cfg, "img", "build", "ci", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert stage_actions(r)["base"] == "downloaded" and stage_actions(r)["boot"] == "done"
    # stored under its sha256, like every download: one cache for all configs
    assert sha256(files / "base.qcow2") in cache_entries(tmp_path)
    assert vsize(imgdir(tmp_path) / "disk.qcow2")["virtual-size"] == 64 * 1024 * 1024


def test_wrong_sha512_fails_naming_both_sums_and_keeps_the_previous_image(tmp_path, env, server, files):
    good = sha512(files / "base.qcow2")
    cfg = write_cloud(tmp_path, server, files, base_sums=f'sha512sum = "{good}"')
    assert qq(cfg, "img", "build", "ci", env=env).returncode == 0
    disk = imgdir(tmp_path) / "disk.qcow2"
    ino = disk.stat().st_ino
    before = cache_entries(tmp_path)
    # the server now has other bytes; the config a sum no file has
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(files / "base.qcow2"), "48M"], check=True)
    wrong = "ab" * 64
    cfg = write_cloud(tmp_path, server, files, base_sums=f'sha512sum = "{wrong}"')
    r = qq(cfg, "img", "build", "ci", env=env)
    assert r.returncode == 1, r.stderr
    assert server.url("base.qcow2") in r.stderr
    assert f"sha512 mismatch: expected {wrong}, got {sha512(files / 'base.qcow2')}" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert cache_entries(tmp_path) == before          # nothing new, no .part
    idx = tmp_path / "cache" / "qqmgr" / "sha512"
    assert sorted(p.name for p in idx.iterdir()) == [good]
    assert disk.stat().st_ino == ino


def test_second_config_with_the_same_sha512_reuses_the_cache_without_a_download(tmp_path, env, server, files):
    sums = f'sha512sum = "{sha512(files / "base.qcow2")}"'
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = write_cloud(tmp_path / "a", server, files, base_sums=sums)
    b = write_cloud(tmp_path / "b", server, files, base_sums=sums)
    assert qq(a, "img", "build", "ci", env=env).returncode == 0
    assert server.stats()["count"].get("/base.qcow2") == 1
    r = qq(b, "img", "build", "ci", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert stage_actions(r)["base"] == "cached"
    assert server.stats()["count"].get("/base.qcow2") == 1


def test_base_img_with_both_sums_checks_both(tmp_path, env, server, files):
    s256, s512 = sha256(files / "base.qcow2"), sha512(files / "base.qcow2")
    wrong = "cd" * 64
    cfg = write_cloud(tmp_path, server, files, base_sums=f'sha256sum = "{s256}"\nsha512sum = "{wrong}"')
    r = qq(cfg, "img", "build", "ci", env=env)
    assert r.returncode == 1
    assert f"sha512 mismatch: expected {wrong}, got {s512}" in r.stderr
    assert cache_entries(tmp_path) == []
    # the same right sha256 with a wrong sha512 fails also when the file is cached
    ok = write_cloud(tmp_path, server, files, base_sums=f'sha256sum = "{s256}"\nsha512sum = "{s512}"')
    assert qq(ok, "img", "build", "ci", env=env).returncode == 0
    cfg = write_cloud(tmp_path, server, files, base_sums=f'sha256sum = "{s256}"\nsha512sum = "{wrong}"')
    r = qq(cfg, "img", "build", "ci", "--force", env=env)
    assert r.returncode == 1
    assert f"sha512 mismatch: expected {wrong}, got {s512}" in r.stderr


def test_server_gone_fails_naming_url_and_leaves_nothing(tmp_path, env, server, files):
    cfg = write_cloud(tmp_path, server, files)
    server.stop()
    r = qq(cfg, "img", "build", "ci", env=env)
    assert r.returncode == 1
    assert server.url("base.qcow2") in r.stderr
    assert cache_entries(tmp_path) == []
    assert not (imgdir(tmp_path) / "disk.qcow2").exists()


def test_404_fails_naming_url(tmp_path, env, server, files):
    cfg = write_cloud(tmp_path, server, files, base_url=server.url("missing.qcow2"))
    r = qq(cfg, "img", "build", "ci", env=env)
    assert r.returncode == 1
    assert "missing.qcow2" in r.stderr and "404" in r.stderr
    assert cache_entries(tmp_path) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small tmpfs (needs root)")
def test_download_onto_a_full_disk_fails_and_removes_the_partial_file(tmp_path, env, server, files):
    big = files / "big.img"
    big.write_bytes(os.urandom(3 * 1024 * 1024))
    cache = tmp_path / "cache"     # the download cache, on a 1 MiB file system
    cache.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(cache)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        cfg = write_cloud(tmp_path, server, files, base_url=server.url("big.img"), base_sum=sha256(big))
        r = qq(cfg, "img", "build", "ci", env=env)
        assert r.returncode == 1
        assert "big.img" in r.stderr and "No space left on device" in r.stderr
        assert "the partial file is removed" in r.stderr
        assert [p for p in cache_entries(tmp_path) if p.endswith(".part")] == []
    finally:
        subprocess.run(["umount", "-l", str(cache)])


def test_download_cut_half_way_is_resumed_by_the_next_build(tmp_path, env, server, files):
    size = (files / "base.qcow2").stat().st_size
    cfg = write_cloud(tmp_path, server, files, base_url=server.url("cut/base.qcow2"))
    r = qq(cfg, "img", "build", "ci", env=env)
    assert r.returncode == 1
    assert "cut/base.qcow2" in r.stderr
    parts = [p for p in cache_entries(tmp_path) if p.endswith(".part")]
    assert len(parts) == 1
    cfg = write_cloud(tmp_path, server, files)
    r = qq(cfg, "img", "build", "ci", env=env)
    assert r.returncode == 0, r.stderr
    assert ["/base.qcow2", f"bytes={size // 2}-"] in server.stats()["ranges"]
    sums = [sha256(files / "base.qcow2"), sha256(files / "payload.txt")]
    assert cache_entries(tmp_path) == sorted(sums + [s + ".ok" for s in sums])


def test_download_cache_it_creates_is_private_and_one_the_user_made_keeps_its_mode(tmp_path, env, server, files):
    cfg = write_cloud(tmp_path, server, files)
    r = subprocess.run(["sh", "-c", 'umask 022; exec "$@"', "sh", QQMGR, "-c", str(cfg), "img", "build", "ci"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    cache = tmp_path / "cache" / "qqmgr"
    for d in (cache, cache / "sha256"):
        assert (d.stat().st_mode & 0o777) == 0o700, d
    names = os.listdir(cache / "sha256")
    assert names
    for n in names:
        assert ((cache / "sha256" / n).stat().st_mode & 0o777) == 0o600, n
    # a cache dir the user made wider stays as it is
    shutil.rmtree(cache / "sha256")
    (cache / "sha256").mkdir()
    (cache / "sha256").chmod(0o755)
    assert qq(cfg, "img", "build", "ci", "--force", env=env).returncode == 0
    assert ((cache / "sha256").stat().st_mode & 0o777) == 0o755


def test_endless_body_without_a_length_stops_at_the_settable_cap(tmp_path, env, server, files):
    cfg = write_cloud(tmp_path, server, files, base_url=server.url("endless/base.qcow2"))
    env["QQMGR_DOWNLOAD_MAX"] = "8M"
    t0 = time.monotonic()
    r = qq(cfg, "img", "build", "ci", env=env, timeout=60)
    took = time.monotonic() - t0
    print(f"\n[bounds] endless body, 8 MiB cap: failed after {took:.2f} s")
    assert r.returncode == 1
    assert "endless/base.qcow2" in r.stderr and "no length" in r.stderr
    assert "QQMGR_DOWNLOAD_MAX" in r.stderr and str(8 << 20) in r.stderr
    assert [p for p in cache_entries(tmp_path) if p.endswith(".part")] == []
    assert took < 30


def test_download_cap_that_is_not_a_size_is_a_usage_error(tmp_path, env, server, files):
    cfg = write_cloud(tmp_path, server, files)
    env["QQMGR_DOWNLOAD_MAX"] = "lots"
    r = qq(cfg, "img", "build", "ci", env=env)
    assert r.returncode == 2
    assert "QQMGR_DOWNLOAD_MAX" in r.stderr and "lots" in r.stderr


def test_dripping_server_is_cut_by_the_low_speed_limit(tmp_path, env, server, files):
    cfg = write_cloud(tmp_path, server, files, base_url=server.url("drip/base.qcow2"))
    env["QQMGR_DOWNLOAD_MIN_RATE"] = "100/3"    # the default is 1024/30
    t0 = time.monotonic()
    r = qq(cfg, "img", "build", "ci", env=env, timeout=60)
    took = time.monotonic() - t0
    print(f"\n[bounds] 2 B/s drip, low-speed limit 100 B/s for 3 s: failed after {took:.2f} s")
    assert r.returncode == 1
    assert "drip/base.qcow2" in r.stderr and "slower than 100 bytes/s for 3 s" in r.stderr
    assert 2.5 < took < 20


def test_build_timeout_bounds_the_download_too(tmp_path, env, server, files):
    cfg = write_cloud(tmp_path, server, files, base_url=server.url("drip/base.qcow2"))
    t0 = time.monotonic()
    r = qq(cfg, "img", "build", "ci", "--timeout", "3", env=env, timeout=60)
    took = time.monotonic() - t0
    print(f"\n[bounds] 2 B/s drip, img build --timeout 3: failed after {took:.2f} s")
    assert r.returncode == 1
    assert "drip/base.qcow2" in r.stderr and "the time ran out" in r.stderr
    assert 2.5 < took < 10
    assert not (imgdir(tmp_path) / "disk.qcow2").exists()


def test_build_timeout_bounds_the_env_hook(tmp_path, env, server, files):
    cfg = write_cloud(tmp_path, server, files)
    (tmp_path / "hook.sh").write_text("read line\nsleep 60\n")
    t0 = time.monotonic()
    r = qq(cfg, "img", "build", "ci", "--timeout", "2", env=env, timeout=20)
    took = time.monotonic() - t0
    assert r.returncode == 1
    assert "env_hook" in r.stderr and "--timeout 2 s ran out" in r.stderr
    assert took < 10


# ------------------------------------------------- the boot stage's QEMU

REAL_QEMU = shutil.which("qemu-system-x86_64")
needs_qemu = pytest.mark.skipif(not REAL_QEMU, reason="needs qemu-system-x86_64")


def idle_qemu_args(pidfile):
    """build_args of a real QEMU that runs no guest, so it never powers off."""
    return ["-accel", "tcg", "-machine", "q35", "-m", "64", "-nodefaults", "-display", "none",
            "-drive", "file={{.img_self}},if=virtio", "-pidfile", str(pidfile)]


def start_hanging_build(tmp_path, server, files, env):
    """Build once (stand-in QEMU), then start a rebuild whose real QEMU never
    powers off. Returns (Popen of qqmgr, QEMU pid, inode of the first image)."""
    cfg = write_cloud(tmp_path, server, files)
    assert qq(cfg, "img", "build", "ci", env=env).returncode == 0
    ino = (imgdir(tmp_path) / "disk.qcow2").stat().st_ino
    pidfile = tmp_path / "qemu.pid"
    write_cloud(tmp_path, server, files, qemu=REAL_QEMU, build_args=idle_qemu_args(pidfile),
                extra="build_timeout = 300")
    p = subprocess.Popen([QQMGR, "-c", str(cfg), "img", "build", "ci"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 30, what="QEMU pid file")
    qpid = int(pidfile.read_text())
    assert pid_alive(qpid)
    return p, qpid, ino


@needs_qemu
def test_ctrl_c_during_boot_ends_qemu_and_keeps_the_previous_image(tmp_path, env, server, files):
    p, qpid, ino = start_hanging_build(tmp_path, server, files, env)
    p.send_signal(signal.SIGINT)
    out, errout = p.communicate(timeout=30)
    assert p.returncode == 1
    assert "interrupted" in errout and "previous image kept" in errout
    wait_until(lambda: not pid_alive(qpid), 10, what="QEMU gone")
    disk = imgdir(tmp_path) / "disk.qcow2"
    assert disk.stat().st_ino == ino
    assert not Path(str(disk) + ".building").exists()


@needs_qemu
def test_kill_9_of_qqmgr_during_boot_leaves_no_qemu_and_the_previous_image(tmp_path, env, server, files):
    p, qpid, ino = start_hanging_build(tmp_path, server, files, env)
    p.kill()
    p.communicate(timeout=30)
    wait_until(lambda: not pid_alive(qpid), 10, what="QEMU killed with its parent")
    disk = imgdir(tmp_path) / "disk.qcow2"
    assert disk.stat().st_ino == ino
    vsize(disk)                                        # still a readable image
    # the next build is not blocked by a stale lock and cleans up the half-built file
    cfg = write_cloud(tmp_path, server, files)
    r = qq(cfg, "img", "build", "ci", env=env)
    assert r.returncode == 0, r.stderr
    assert not Path(str(disk) + ".building").exists()


FAKE_QMP_QEMU = """#!/usr/bin/python3
# stands in for QEMU: serves QMP on the -qmp socket and reports STATE forever
import json, socket, sys, time
path = next(a for i, a in enumerate(sys.argv) if i and sys.argv[i - 1] == "-qmp")
path = path[len("unix:"):].split(",")[0]
s = socket.socket(socket.AF_UNIX)
s.bind(path)
s.listen(1)
print("fake qemu with QMP", flush=True)
while True:
    c, _ = s.accept()
    f = c.makefile("rw")
    f.write(json.dumps({"QMP": {"version": {}, "capabilities": []}}) + "\\n"); f.flush()
    for line in f:
        cmd = json.loads(line)
        ret = {"status": "STATE", "running": False} if cmd["execute"] == "query-status" else {}
        f.write(json.dumps({"return": ret, "id": cmd.get("id")}) + "\\n"); f.flush()
"""


def test_guest_in_internal_error_fails_the_build_at_once(tmp_path, env, server, files):
    cfg = write_cloud(tmp_path, server, files)
    assert qq(cfg, "img", "build", "ci", env=env).returncode == 0
    disk = imgdir(tmp_path) / "disk.qcow2"
    ino = disk.stat().st_ino
    fake = tmp_path / "fake-qmp-qemu"
    fake.write_text(FAKE_QMP_QEMU.replace("STATE", "internal-error"))
    fake.chmod(0o755)
    write_cloud(tmp_path, server, files, qemu=fake, extra="build_timeout = 120")
    t0 = time.monotonic()
    r = qq(cfg, "img", "build", "ci", env=env)
    assert r.returncode == 1
    assert "internal-error" in r.stderr
    assert time.monotonic() - t0 < 30
    assert disk.stat().st_ino == ino
    assert subprocess.run(["pgrep", "-f", str(fake)], capture_output=True).returncode == 1


@needs_qemu
@pytest.mark.guest
def test_guest_kernel_panic_fails_the_build_at_once_naming_the_reason(tmp_path, env, server, files, tiny_guest):
    # a real QEMU booting a real kernel whose initramfs has no init (and no root=): it
    # panics a few seconds in, on the console the build log holds (-serial stdio)
    kernel = tiny_guest.vmlinux if tiny_guest.vmlinux.is_file() else tiny_guest.vmlinuz
    args = ["-accel", "tcg", "-m", "256", "-display", "none", "-nodefaults", "-kernel", str(kernel),
            "-initrd", str(tiny_guest.initramfs), "-append", "console=ttyS0 quiet no_timer_check rdinit=/nonexistent",
            "-serial", "stdio", "-drive", "file={{.img_self}},if=virtio", "-cdrom", "{{.cloud_init_iso}}"]
    cfg = write_cloud(tmp_path, server, files, qemu=REAL_QEMU, build_args=args, extra="build_timeout = 600")
    t0 = time.monotonic()
    r = qq(cfg, "img", "build", "ci", env=env, timeout=700)
    assert r.returncode == 1, r.stderr
    assert time.monotonic() - t0 < 300, r.stderr                 # not the 600 s timeout
    assert ('the guest kernel panicked during the build boot ("Kernel panic - not syncing: VFS: Unable to mount '
            'root fs') in r.stderr, r.stderr
    assert "QEMU killed" in r.stderr
    assert not (imgdir(tmp_path) / "disk.qcow2").exists()        # no image from a failed build
    assert subprocess.run(["pgrep", "-f", f"qemu.*{tmp_path}"], capture_output=True).returncode == 1  # no QEMU left


def test_guest_reported_running_is_not_failed_before_the_timeout(tmp_path, env, server, files):
    # a guest reported "running" is left alone until the timeout
    fake = tmp_path / "fake-qmp-qemu"
    fake.write_text(FAKE_QMP_QEMU.replace("STATE", "running"))
    fake.chmod(0o755)
    cfg = write_cloud(tmp_path, server, files, qemu=fake, extra="build_timeout = 3")
    r = qq(cfg, "img", "build", "ci", env=env)
    assert r.returncode == 1
    assert "did not power off within 3 s" in r.stderr


@needs_qemu
def test_image_used_by_a_running_vm_is_not_rebuilt(tmp_path, env):
    cfg = tmp_path / "qqmgr.toml"
    cfg.write_text("""
[img.disk]
builder = "raw"
img_size = "16M"

[img.other]
builder = "raw"
img_size = "16M"

[vm.user]
cmd = ["-accel tcg -machine q35 -m 64 -nodefaults -display none",
       "-drive file={{.img.disk}},format=raw,if=virtio"]
""")
    assert qq(cfg, "img", "build", "disk", env=env).returncode == 0
    assert qq(cfg, "img", "build", "other", env=env).returncode == 0
    path = tmp_path / ".qqmgr" / "img.disk" / "disk.raw"
    ino = path.stat().st_ino
    r = qq(cfg, "start", "user", env=env)
    assert r.returncode == 0, r.stderr
    try:
        r = qq(cfg, "img", "build", "disk", "--force", env=env)
        assert r.returncode == 1
        assert "VM user is running" in r.stderr and f"qqmgr -c {cfg} stop user" in r.stderr
        assert path.stat().st_ino == ino
        # an up-to-date image is no build: fine; an image the VM does not use: fine
        assert qq(cfg, "img", "build", "disk", env=env).returncode == 0
        assert qq(cfg, "img", "build", "other", "--force", env=env).returncode == 0
    finally:
        qq(cfg, "stop", "user", "--force", env=env)
    r = qq(cfg, "img", "build", "disk", "--force", env=env)
    assert r.returncode == 0, r.stderr


def slow_wrapper(path, real, marker, subcommand=None, delay=1.5):
    """A stand-in for `real` that touches `marker` and waits `delay` s before it runs
    (only for `subcommand` when given): it widens a race window on purpose."""
    cond = f'[ "$1" = {subcommand} ] && ' if subcommand else ""
    path.write_text(f'#!/bin/sh\n{cond}{{ touch "{marker}"; sleep {delay}; }}\nexec {real} "$@"\n')
    path.chmod(0o755)
    return path


def open_files(pid):
    d = Path(f"/proc/{pid}/fd")
    out = []
    for fd in d.iterdir():
        try:
            out.append(os.readlink(fd))
        except OSError:
            pass
    return out


RACE_TOML = """
[qemu]
{qemu_key} = "{wrapper}"

[img.disk]
builder = "raw"
img_size = "16M"

[vm.user]
cmd = ["-accel tcg -machine q35 -m 64 -nodefaults -display none",
       "-drive file={{{{.img.disk}}}},format=raw,if=virtio"]
"""


@needs_qemu
def test_start_during_a_build_waits_and_qemu_never_opens_the_replaced_image(tmp_path, env):
    marker = tmp_path / "qemu-img-create-started"
    wrapper = slow_wrapper(tmp_path / "slow-qemu-img", "qemu-img", marker, "create")
    cfg = tmp_path / "qqmgr.toml"
    cfg.write_text(RACE_TOML.format(qemu_key="img", wrapper=wrapper))
    assert qq(cfg, "img", "build", "disk", env=env).returncode == 0
    marker.unlink()
    path = tmp_path / ".qqmgr" / "img.disk" / "disk.raw"
    build = subprocess.Popen([QQMGR, "-c", str(cfg), "img", "build", "disk", "--force"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the build has checked that no VM uses the image and is making the new one
        wait_until(marker.exists, 30, 0.02, what="qemu-img create started")
        r = qq(cfg, "start", "user", "--json", env=env)
        assert r.returncode == 0, r.stderr
        pid = json.loads(r.stdout)["pid"]
        out, err = build.communicate(timeout=60)
        assert build.returncode == 0, err
        files = [f for f in open_files(pid) if "disk.raw" in f]
        assert files == [str(path.resolve())], f"QEMU has {files} open, not the built image"
    finally:
        build.kill()
        build.wait()
        qq(cfg, "stop", "user", "--force", env=env)


@needs_qemu
def test_build_during_a_start_waits_for_qemu_then_refuses_the_image_in_use(tmp_path, env):
    marker = tmp_path / "qemu-started"
    wrapper = slow_wrapper(tmp_path / "slow-qemu", "qemu-system-x86_64", marker)
    cfg = tmp_path / "qqmgr.toml"
    cfg.write_text(RACE_TOML.format(qemu_key="bin", wrapper=wrapper))
    assert qq(cfg, "img", "build", "disk", env=env).returncode == 0
    path = tmp_path / ".qqmgr" / "img.disk" / "disk.raw"
    ino = path.stat().st_ino
    start = subprocess.Popen([QQMGR, "-c", str(cfg), "start", "user"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(marker.exists, 30, 0.02, what="QEMU launched")
        r = qq(cfg, "img", "build", "disk", "--force", env=env)
        out, err = start.communicate(timeout=60)
        assert start.returncode == 0, err
        assert r.returncode == 1, r.stderr
        assert "VM user is running" in r.stderr
        assert path.stat().st_ino == ino
    finally:
        start.kill()
        start.wait()
        qq(cfg, "stop", "user", "--force", env=env)
