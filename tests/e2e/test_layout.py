"""Where a VM's and an image's files live, and who may touch them (issue 8.1).

A deep state dir forces runtime paths (QEMU sockets, the ssh ControlPath, the
build QMP socket) out of the state dir: they go to a private runtime dir, never
to one another user made first. XDG_RUNTIME_DIR is unset and TMPDIR points at a
short per-test dir, so the planted ${TMPDIR}/qqmgr-UID is ours to plant without
touching the /tmp/qqmgr-UID other tests use. Every file qqmgr leaves is private.
"""
import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import free_port

BARE = "-nodefaults -machine q35 -m 64 -display none -accel tcg"


@pytest.fixture
def tmpbase():
    d = Path(tempfile.mkdtemp(prefix="qql", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def run_env(tmpbase):
    e = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    e["TMPDIR"] = str(tmpbase)
    return e


def deep_project(project):
    deep = project.path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    return deep


def qq(qqmgr, cfg, *args, env, timeout=60):
    return subprocess.run([qqmgr, "-c", str(cfg), *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout, env=env, cwd=cfg.parent)


def plant(kind, path, elsewhere):
    """Prepare `path` as another user (or a careless one) would."""
    if kind == "world-writable":
        path.mkdir()
        path.chmod(0o777)
    elif kind == "symlink":
        elsewhere.mkdir(mode=0o700)
        path.symlink_to(elsewhere)
    elif kind == "mode-0755":
        path.mkdir()
        path.chmod(0o755)
    elif kind == "other-owner":
        path.mkdir()
        path.chmod(0o700)
        nobody = pwd.getpwnam("nobody")
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
    elif kind == "file":
        path.write_text("not a dir\n")


def tree(p):
    return sorted(str(x.relative_to(p)) for x in p.rglob("*")) if p.is_dir() else None


def qemu_cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [a.decode() for a in f.read().split(b"\0")[:-1]]


@pytest.mark.parametrize("kind", ["world-writable", "symlink", "mode-0755", "other-owner", "file"])
def test_foreign_runtime_dir_is_never_used_for_sockets_or_control_path(project, qqmgr, tmpbase, kind):
    if kind == "other-owner" and os.geteuid() != 0:
        pytest.skip("needs root to give a dir to nobody")
    planted = tmpbase / f"qqmgr-{os.geteuid()}"
    elsewhere = tmpbase / "attacker"
    plant(kind, planted, elsewhere)
    before, before_else = tree(planted), tree(elsewhere)
    deep = deep_project(project)
    cfg = deep / "qqmgr.toml"
    port = free_port()
    cfg.write_text(f'[vm.bare]\ncmd = ["{BARE}"]\n[vm.bare.ssh]\nport = {port}\n'
                   'ConnectTimeout = 1\nBatchMode = true\n')
    env = run_env(tmpbase)
    vm_dir = deep / ".qqmgr" / "vm.bare"
    cp = qq(qqmgr, cfg, "start", "bare", "--json", env=env)
    assert cp.returncode == 0, cp.stderr
    pid = json.loads(cp.stdout)["pid"]
    try:
        argv = qemu_cmdline(pid)
        sockets = [a for a in argv if "socket" in a]
        assert sockets
        assert not any(str(planted) + "/" in a or str(elsewhere) in a for a in argv), argv
        # the fallback: a fresh private dir, recorded in the VM's dir
        rec = (vm_dir / "runtime_dir").read_text().strip()
        assert rec.startswith(str(planted) + ".") and rec != str(planted)
        st = os.lstat(rec)
        assert stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()
        assert stat.S_IMODE(st.st_mode) == 0o700
        assert any(rec + "/" in a for a in sockets)
        assert (vm_dir / "qmp.socket").is_socket()
        status = json.loads(qq(qqmgr, cfg, "status", "bare", "--json", env=env).stdout)
        assert status["qmp_connected"] and status["state"] == "running"
        # ssh writes its config (and fails: nobody listens on the port)
        qq(qqmgr, cfg, "ssh", "bare", "true", env=env)
        conf = (vm_dir / "ssh.conf").read_text()
        ctl = [l.split(None, 1)[1] for l in conf.splitlines() if l.strip().startswith("ControlPath")]
        assert ctl and rec in ctl[0] and str(planted) + "/" not in ctl[0]
    finally:
        assert qq(qqmgr, cfg, "stop", "bare", "--force", env=env).returncode == 0
    assert tree(planted) == before and tree(elsewhere) == before_else
    # the fallback went with the VM
    assert not os.path.exists(rec)


def fallbacks(tmpbase):
    return sorted(p.name for p in tmpbase.iterdir() if p.name.startswith(f"qqmgr-{os.geteuid()}."))


def test_fallback_runtime_dir_is_one_per_user_and_goes_with_the_last_vm(project, qqmgr, tmpbase):
    plant("world-writable", tmpbase / f"qqmgr-{os.geteuid()}", None)
    deep = deep_project(project)
    cfg = deep / "qqmgr.toml"
    cfg.write_text(f'[vm.a]\ncmd = ["{BARE}"]\n[vm.b]\ncmd = ["{BARE}"]\n')
    env = run_env(tmpbase)
    try:
        for cycle in range(3):
            assert qq(qqmgr, cfg, "start", "a", env=env).returncode == 0
            assert qq(qqmgr, cfg, "start", "b", env=env).returncode == 0
            assert len(fallbacks(tmpbase)) == 1, (cycle, fallbacks(tmpbase))   # shared, not one each
            assert qq(qqmgr, cfg, "stop", "a", "--force", env=env).returncode == 0
            assert len(fallbacks(tmpbase)) == 1                               # b still uses it
            assert qq(qqmgr, cfg, "status", "b", "--json", env=env).returncode == 0
            assert qq(qqmgr, cfg, "stop", "b", "--force", env=env).returncode == 0
            assert fallbacks(tmpbase) == [], (cycle, fallbacks(tmpbase))
    finally:
        qq(qqmgr, cfg, "stop", "--all", "--force", env=env)


def test_own_runtime_dir_is_made_0700_and_used(project, qqmgr, tmpbase):
    deep = deep_project(project)
    cfg = deep / "qqmgr.toml"
    cfg.write_text(f'[vm.bare]\ncmd = ["{BARE}"]\n')
    env = run_env(tmpbase)
    cp = qq(qqmgr, cfg, "start", "bare", "--json", env=env)
    assert cp.returncode == 0, cp.stderr
    try:
        rd = tmpbase / f"qqmgr-{os.geteuid()}"
        st = os.lstat(rd)
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700
        argv = qemu_cmdline(json.loads(cp.stdout)["pid"])
        assert any(str(rd) + "/" in a for a in argv if "socket" in a)
        assert not (deep / ".qqmgr" / "vm.bare" / "runtime_dir").exists()
    finally:
        qq(qqmgr, cfg, "stop", "bare", "--force", env=env)
    # widened after the fact (or replaced) → not used any more
    rd.chmod(0o755)
    cp = qq(qqmgr, cfg, "start", "bare", "--json", env=env)
    assert cp.returncode == 0, cp.stderr
    try:
        argv = qemu_cmdline(json.loads(cp.stdout)["pid"])
        assert not any(str(rd) + "/" in a for a in argv)
    finally:
        qq(qqmgr, cfg, "stop", "bare", "--force", env=env)


def test_xdg_runtime_dir_is_used_only_when_ours_and_0700(project, qqmgr, tmpbase):
    deep = deep_project(project)
    cfg = deep / "qqmgr.toml"
    cfg.write_text(f'[vm.bare]\ncmd = ["{BARE}"]\n')
    xdg = tmpbase / "xdg"
    xdg.mkdir(mode=0o700)
    xdg.chmod(0o700)
    env = run_env(tmpbase)
    env["XDG_RUNTIME_DIR"] = str(xdg)
    cp = qq(qqmgr, cfg, "start", "bare", "--json", env=env)
    assert cp.returncode == 0, cp.stderr
    try:
        argv = qemu_cmdline(json.loads(cp.stdout)["pid"])
        assert any(str(xdg / "qqmgr") + "/" in a for a in argv)
    finally:
        qq(qqmgr, cfg, "stop", "bare", "--force", env=env)
    xdg.chmod(0o777)
    cp = qq(qqmgr, cfg, "start", "bare", "--json", env=env)
    assert cp.returncode == 0, cp.stderr
    try:
        argv = qemu_cmdline(json.loads(cp.stdout)["pid"])
        assert not any(str(xdg) in a for a in argv)
    finally:
        qq(qqmgr, cfg, "stop", "bare", "--force", env=env)


def modes(root):
    """{relative path: (kind, mode)} of everything under root."""
    out = {}
    for p in [root, *root.rglob("*")]:
        st = os.lstat(p)
        kind = "dir" if stat.S_ISDIR(st.st_mode) else "sock" if stat.S_ISSOCK(st.st_mode) else \
            "link" if stat.S_ISLNK(st.st_mode) else "file"
        out[str(p.relative_to(root))] = (kind, stat.S_IMODE(st.st_mode))
    return out


def assert_private(root):
    bad = {}
    for rel, (kind, mode) in modes(root).items():
        want_ok = (mode == 0o700) if kind == "dir" else (mode & 0o077) == 0 if kind == "sock" else \
            True if kind == "link" else mode == 0o600
        if not want_ok:
            bad[rel] = (kind, oct(mode))
    assert not bad, f"not private under {root}: {bad}"


def test_every_file_of_a_started_vm_is_private_even_with_umask_022(project, qqmgr):
    port = free_port()
    project.write(f'[vm.bare]\ncmd = ["{BARE}"]\n[vm.bare.ssh]\nport = {port}\nConnectTimeout = 1\n'
                  'BatchMode = true\n')
    # an older qqmgr left a wide state dir and logs
    vm_dir = project.vm_dir("bare")
    vm_dir.mkdir(parents=True, mode=0o755)
    project.state_dir.chmod(0o755)
    vm_dir.chmod(0o755)
    for n in ("serial", "qemu-stdout.log", "qemu-stderr.log"):
        (vm_dir / n).write_text("old\n")
        (vm_dir / n).chmod(0o644)
    old = os.umask(0o022)
    try:
        project.run("start", "bare", check=True)
        project.run("ssh", "bare", "true")      # writes ssh.conf (nobody listens: fails)
        assert (vm_dir / "ssh.conf").is_file()
        assert (vm_dir / "pid").is_file() and (vm_dir / "qmp.socket").is_socket()
        assert_private(project.state_dir)
    finally:
        os.umask(old)
        project.run("stop", "bare", "--force", check=True)
    assert_private(project.state_dir)


def test_raw_image_dir_is_private(project):
    project.write('[img.disk]\nbuilder = "raw"\nimg_size = "8M"\n')
    old = os.umask(0o022)
    try:
        project.run("img", "build", "disk", check=True)
    finally:
        os.umask(old)
    assert (project.state_dir / "img.disk" / "disk.raw").is_file()
    assert_private(project.state_dir)


FAKE_QEMU = """#!/bin/sh
# stands in for the build QEMU: records its arguments and powers off at once
printf '%s\\n' "$@" > "{argfile}"
exit 0
"""


def test_cloud_init_image_files_are_private_and_the_build_qmp_socket_avoids_a_foreign_dir(
        project, qqmgr, tmpbase):
    planted = tmpbase / f"qqmgr-{os.geteuid()}"
    plant("world-writable", planted, None)
    deep = deep_project(project)
    base = deep / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "16M"], check=True)
    import hashlib
    digest = hashlib.sha256(base.read_bytes()).hexdigest()
    (deep / "user-data.tpl").write_text("#cloud-config\npassword: {{.pw}}\n")
    fake = deep / "fake-qemu"
    fake.write_text(FAKE_QEMU.format(argfile=deep / "qemu-args"))
    fake.chmod(0o755)
    cfg = deep / "qqmgr.toml"
    cfg.write_text(f"""
[qemu]
bin = "{fake}"

[img.ci]
builder = "cloud-init"
img_size = "16M"
build_args = ["-drive", "file={{{{.img_self}}}},if=virtio", "-cdrom", "{{{{.cloud_init_iso}}}}"]

[img.ci.base_img]
url = "file://{base}"
sha256sum = "{digest}"

[[img.ci.templates]]
template = "user-data.tpl"
output = "user-data"

[img.ci.env]
pw = "secret"
""")
    env = run_env(tmpbase)
    env["XDG_CACHE_HOME"] = str(project.path / "cache")
    old = os.umask(0o022)
    try:
        cp = qq(qqmgr, cfg, "img", "build", "ci", env=env, timeout=120)
    finally:
        os.umask(old)
    assert cp.returncode == 0, cp.stderr
    args = (deep / "qemu-args").read_text().split("\n")
    qmp = args[args.index("-qmp") + 1]
    img_dir = deep / ".qqmgr" / "img.ci"
    rec = (img_dir / "runtime_dir").read_text().strip()
    assert qmp.startswith(f"unix:{rec}/") and str(planted) + "/" not in qmp
    assert tree(planted) == []
    assert (img_dir / "cidata.iso").is_file() and (img_dir / "cidata" / "user-data").is_file()
    assert_private(deep / ".qqmgr")
