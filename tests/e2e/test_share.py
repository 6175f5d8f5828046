"""Host folders in the guest (issue 20 §3): [vm.NAME.share.TAG] becomes a 9p
device (-virtfs) in every launch of the VM, shown by `show`; a wrong share is
one line naming its place, exit 2.

Run: QQ_BUILD_DIR=build-asan /usr/bin/python3 -m pytest tests/e2e/test_share.py
"""
import pytest

BARE = "-nodefaults -m 64 -display none -accel tcg"


def share_toml(share, name="v", cmd=BARE):
    return f'[vm.{name}]\ncmd = ["{cmd}"]\n\n[vm.{name}.share.code]\n' + share


def test_show_prints_the_9p_device_with_the_path_relative_to_the_config_and_its_commas_doubled(project):
    (project.path / "src,1").mkdir()
    (project.path / "out").mkdir()
    project.write(share_toml('path = "src,1"\nmount = "/mnt/code"\n\n'
                             '[vm.v.share.out]\npath = "out"\nreadonly = false\n'))
    out = project.run("show", "v", check=True).stdout
    assert (f"-virtfs local,path={project.path}/src,,1,mount_tag=code,security_model=mapped-xattr,"
            "id=qq-share-code,readonly=on ") in out, out
    assert (f"-virtfs local,path={project.path}/out,mount_tag=out,security_model=mapped-xattr,"
            "id=qq-share-out ") in out, out


def test_qemu_starts_with_the_shares_and_has_their_9p_devices(project):
    (project.path / "src").mkdir()
    project.write(share_toml('path = "src"\n'))
    try:
        project.run("start", "v", check=True)
        qtree = project.run("monitor", "v", "info qtree", check=True).stdout
        assert 'mount_tag = "code"' in qtree and 'fsdev = "qq-share-code"' in qtree, qtree
    finally:
        project.run("kill", "v")


@pytest.mark.parametrize("share, where, message", [
    ('mount = "/mnt"\n', "4:1: vm.v.share.code",
     'missing required key "path" (the host directory to share)'),
    ('path = "nope"\n', "5:1: vm.v.share.code.path",
     '"{dir}/nope": no such directory (the host directory to share; a relative path is relative to '
     "the config's directory)"),
    ('path = "afile"\n', "5:1: vm.v.share.code.path",
     '"{dir}/afile": not a directory (the host directory to share; a relative path is relative to '
     "the config's directory)"),
    ('path = "src"\nmount = "mnt/code"\n', "6:1: vm.v.share.code.mount",
     "must be an absolute guest directory (starting with '/', no spaces or control characters), "
     'not "mnt/code"'),
    ('path = "src"\nreadonly = "yes"\n', "6:1: vm.v.share.code.readonly",
     'must be true or false, not the string "yes"'),
    ('path = "src"\nsize = 1\n', "6:1: vm.v.share.code.size",
     "unknown key (expected one of: path, readonly, mount)"),
], ids=["missing_path", "no_such_dir", "not_a_dir", "mount_relative", "readonly_type", "unknown_key"])
def test_a_wrong_share_is_one_line_at_its_place_exit_2(project, share, where, message):
    (project.path / "src").mkdir()
    (project.path / "afile").write_text("x")
    project.write(share_toml(share))
    for cmd in (("show", "v"), ("start", "v")):
        cp = project.run(*cmd)
        assert cp.returncode == 2, cp
        assert cp.stderr == f"qqmgr: {project.config}:{where}: {message.format(dir=project.path)}\n", cp.stderr


@pytest.mark.parametrize("tag, message", [
    ("a,b", 'the share name "a,b" is not valid: a name has letters, digits, \'.\', \'_\' and \'-\', '
            "not starting with '.' or '-'"),
    ("t" * 32, f'the share name "{"t" * 32}" is its 9p mount tag: at most 31 characters'),
])
def test_a_bad_tag_name_is_refused_at_its_place(project, tag, message):
    (project.path / "src").mkdir()
    project.write(f'[vm.v]\ncmd = ["{BARE}"]\n\n[vm.v.share."{tag}"]\npath = "src"\n')
    cp = project.run("show", "v")
    assert cp.returncode == 2, cp
    shown = f'"{tag}"' if "," in tag else tag
    assert cp.stderr == f'qqmgr: {project.config}:4:1: vm.v.share.{shown}: {message}\n', cp.stderr


def test_a_user_9p_device_with_a_shares_tag_is_refused_naming_both(project):
    (project.path / "src").mkdir()
    project.write(share_toml('path = "src"\n',
                             cmd=BARE + " -virtfs local,path=/tmp,mount_tag=code,security_model=none"))
    cp = project.run("show", "v")
    assert cp.returncode == 2, cp
    assert cp.stderr == (f"qqmgr: {project.config}:2:8: vm.v.cmd[0]: '-virtfs local,path=/tmp,mount_tag=code,"
                         "security_model=none': the tag code is [vm.v.share.code], which qqmgr adds itself: "
                         "remove one\n"), cp.stderr


def test_a_user_device_with_an_id_of_qqmgrs_share_ids_is_refused(project):
    project.write(f'[vm.v]\ncmd = ["{BARE} -fsdev local,id=qq-share-x,path=/tmp,security_model=none"]\n')
    cp = project.run("show", "v")
    assert cp.returncode == 2, cp
    assert cp.stderr == (f"qqmgr: {project.config}:2:8: vm.v.cmd[0]: '-fsdev local,id=qq-share-x,path=/tmp,"
                         "security_model=none': ids starting qq-share- are qqmgr's (its [vm.NAME.share.TAG] "
                         "devices)\n"), cp.stderr


def test_a_users_own_9p_or_virtiofs_args_with_other_tags_are_kept(project):
    (project.path / "src").mkdir()
    own = " -virtfs local,path=/tmp,mount_tag=code2,security_model=none"
    project.write(share_toml('path = "src"\n', cmd=BARE + own))
    out = project.run("show", "v", check=True).stdout
    assert "-virtfs local,path=/tmp,mount_tag=code2,security_model=none " in out
    assert "mount_tag=code,security_model=mapped-xattr" in out


# ------------------------------------------------------------------ in the tiny guest

def guest_sh(project, cmd):
    return project.run("ssh", "tiny", cmd, timeout=60)


@pytest.mark.guest
def test_start_wait_mounts_the_shares_readonly_enforced_and_rw_seen_on_the_host(project, tiny_vm_toml):
    """A file written on the host is read in the guest; a guest write to the
    read-only share fails (QEMU refuses it: the guest mounts it read-write);
    a guest write to the rw share is on the host. A second wait leaves the
    mounts as they are."""
    (project.path / "ro").mkdir()
    (project.path / "ro" / "hello.txt").write_text("from the host\n")
    (project.path / "rw").mkdir()
    project.write(tiny_vm_toml("auto") +
                  '\n[vm.tiny.share.ro]\npath = "ro"\nmount = "/mnt/ro"\n'
                  '\n[vm.tiny.share.rw]\npath = "rw"\nreadonly = false\nmount = "/mnt/rw"\n')
    try:
        project.run("start", "tiny", "--wait", check=True, timeout=400)
        assert guest_sh(project, "cat /mnt/ro/hello.txt").stdout == "from the host\n"
        cp = guest_sh(project, "echo x > /mnt/ro/new.txt")
        assert cp.returncode != 0 and "Read-only file system" in cp.stderr, cp
        assert not (project.path / "ro" / "new.txt").exists()
        guest_sh(project, "echo from the guest > /mnt/rw/out.txt").check_returncode()
        assert (project.path / "rw" / "out.txt").read_text() == "from the guest\n"
        project.run("wait", "tiny", check=True, timeout=120)
        mounts = guest_sh(project, "grep ' 9p ' /proc/mounts").stdout.splitlines()
        assert [m.split()[:2] for m in mounts] == [["ro", "/mnt/ro"], ["rw", "/mnt/rw"]], mounts
    finally:
        project.run("kill", "tiny")


@pytest.mark.guest
def test_run_mounts_the_share_before_the_command(project, tiny_vm_toml):
    (project.path / "src").mkdir()
    (project.path / "src" / "job.sh").write_text("echo job ran\n")
    project.write(tiny_vm_toml("auto") + '\n[vm.tiny.share.src]\npath = "src"\nmount = "/src"\n')
    cp = project.run("run", "tiny", "--", "sh", "/src/job.sh", timeout=400)
    assert cp.returncode == 0, cp
    assert cp.stdout.startswith("job ran\n"), cp.stdout


@pytest.mark.guest
def test_a_mount_the_guest_refuses_fails_start_wait_with_the_guests_message(project, tiny_vm_toml):
    (project.path / "src").mkdir()
    # mkdir of the mount point fails in the guest (nothing can be made under /proc/cpuinfo)
    project.write(tiny_vm_toml("auto") + '\n[vm.tiny.share.src]\npath = "src"\nmount = "/proc/cpuinfo/x"\n')
    try:
        cp = project.run("start", "tiny", "--wait", timeout=400)
        assert cp.returncode == 1, cp
        assert cp.stderr.startswith("qqmgr: mounting share src on /proc/cpuinfo/x in tiny failed (the VM is left "
                                    "running;"), cp.stderr
    finally:
        project.run("kill", "tiny")


@pytest.mark.guest
def test_snapshot_save_of_a_vm_with_a_mounted_share_fails_with_qemus_reason_until_unmounted(project, tiny_vm_toml):
    """9p blocks migration while the guest has the share mounted (the docs say
    so): save fails with QEMU's message, not a silent half-snapshot; once the
    guest unmounts it, save works."""
    (project.path / "src").mkdir()
    project.write('[img.d]\nbuilder = "raw"\nformat = "qcow2"\nimg_size = "64M"\n\n' +
                  tiny_vm_toml("auto", extra_args=["-drive file={{.img.d}},format=qcow2,if=virtio"]) +
                  '\n[vm.tiny.share.src]\npath = "src"\nmount = "/src"\n')
    project.run("img", "build", "d", check=True)
    try:
        project.run("start", "tiny", "--wait", check=True, timeout=400)
        cp = project.run("snapshot", "save", "tiny", "s1", timeout=300)
        assert cp.returncode == 1, cp
        assert "VirtFS" in cp.stderr and "mounted" in cp.stderr, cp.stderr
        guest_sh(project, "umount /src").check_returncode()
        project.run("snapshot", "save", "tiny", "s1", check=True, timeout=300)
    finally:
        project.run("kill", "tiny")


def test_a_share_dir_that_went_away_fails_the_launch_but_not_ssh_config_or_stop(project):
    """The path is checked when QEMU would get it (show, start), not by every
    command: a running VM whose share dir was removed stays reachable and
    stoppable."""
    (project.path / "src").mkdir()
    project.write(share_toml('path = "src"\n') + '\n[vm.v.ssh]\nport = 2222\n')
    try:
        project.run("start", "v", check=True)
        (project.path / "src").rmdir()
        cp = project.run("show", "v")
        assert cp.returncode == 2 and "vm.v.share.code.path" in cp.stderr and "no such directory" in cp.stderr, cp
        assert "Host v" in project.run("ssh-config", "v", check=True).stdout
        project.run("stop", "v", "--force", check=True)
    finally:
        project.run("kill", "v")
