"""Host keys pinned per VM by default (issue 11): without the user's own host-key options,
ssh.conf points UserKnownHostsFile at the VM's state dir with StrictHostKeyChecking
accept-new. The first login learns the key, a different key is refused with ssh's
warning, and `ssh-keys reset VM` or a rebuild of the VM's image forgets it."""
import stat
import subprocess

import pytest

from conftest import free_port, tiny_vm_cmd, _toml_str

BARE = "-nodefaults -machine q35 -m 64 -display none -accel tcg"


def ssh_g(conf, alias):
    out = subprocess.run(["ssh", "-G", "-F", str(conf), alias], capture_output=True, text=True,
                         check=True).stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def test_default_config_pins_host_keys_in_the_vm_dir(project):
    project.write(f'[vm.v]\ncmd = ["{BARE}"]\n[vm.v.ssh]\nport = {free_port()}\n')
    project.run("ssh-config", "v", check=True)
    d = project.vm_dir("v")
    g = ssh_g(d / "ssh.conf", "v")
    assert g["userknownhostsfile"] == str(d / "known_hosts")
    assert g["stricthostkeychecking"] == "accept-new"
    assert stat.S_IMODE((d / "known_hosts").stat().st_mode) == 0o600


@pytest.mark.parametrize("table", ["vm.v.ssh", "ssh"])
def test_the_users_host_key_options_win(project, table):
    port = free_port()
    body = f'[vm.v]\ncmd = ["{BARE}"]\n[vm.v.ssh]\nport = {port}\n'
    opts = 'StrictHostKeyChecking = "no"\nUserKnownHostsFile = "/dev/null"\n'
    project.write(body + opts if table == "vm.v.ssh" else f"[ssh]\n{opts}" + body)
    project.run("ssh-config", "v", check=True)
    g = ssh_g(project.vm_dir("v") / "ssh.conf", "v")
    assert g["userknownhostsfile"] == "/dev/null"
    assert g["stricthostkeychecking"] == "false"
    assert "known_hosts" not in (project.vm_dir("v") / "ssh.conf").read_text()
    # one of them alone: the other stays qqmgr's
    project.write(f'[vm.v]\ncmd = ["{BARE}"]\n[vm.v.ssh]\nport = {port}\nStrictHostKeyChecking = "yes"\n')
    project.run("ssh-config", "v", check=True)
    g = ssh_g(project.vm_dir("v") / "ssh.conf", "v")
    assert g["stricthostkeychecking"] == "true"
    assert g["userknownhostsfile"] == str(project.vm_dir("v") / "known_hosts")


def test_ssh_keys_reset_forgets_the_pinned_keys(project):
    project.write(f'[vm.v]\ncmd = ["{BARE}"]\n[vm.v.ssh]\nport = {free_port()}\n')
    project.run("ssh-config", "v", check=True)
    kh = project.vm_dir("v") / "known_hosts"
    kh.write_text("qqmgr-v ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOld\n")
    assert project.json("ssh-keys", "reset", "v", check=True) == {"name": "v", "forgotten": True}
    assert not kh.exists()
    r = project.run("ssh-keys", "reset", "v", check=True)
    assert "no host keys were pinned" in r.stdout
    assert project.run("ssh-keys", "reset", "nosuch").returncode == 2


def test_rebuilding_an_image_forgets_the_keys_of_the_vms_that_use_it(project):
    project.write(f"""
[img.disk]
builder = "raw"
img_size = "8M"

[vm.uses]
cmd = ["{BARE}", "-drive file={{{{.img.disk}}}},format=raw,if=virtio"]
[vm.uses.ssh]
port = {free_port()}

[vm.other]
cmd = ["{BARE}"]
[vm.other.ssh]
port = {free_port()}
""")
    project.run("img", "build", "disk", check=True)
    for vm in ("uses", "other"):
        project.run("ssh-config", vm, check=True)
        (project.vm_dir(vm) / "known_hosts").write_text(f"qqmgr-{vm} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOld\n")
    # an up-to-date image is no rebuild: the keys stay
    project.run("img", "build", "disk", check=True)
    assert (project.vm_dir("uses") / "known_hosts").exists()
    project.run("img", "build", "disk", "--force", check=True)
    assert not (project.vm_dir("uses") / "known_hosts").exists()
    assert (project.vm_dir("other") / "known_hosts").exists()


@pytest.mark.guest
def test_first_login_learns_the_key_and_a_changed_key_is_refused_until_reset(project, tiny_guest, tmp_path, golden):
    cmd = ",\n".join("  " + _toml_str(c) for c in tiny_vm_cmd(tiny_guest))
    project.write(f"""
[vm.tiny]
cmd = [
{cmd}
]
[vm.tiny.ssh]
port = "auto"
User = "root"
IdentityFile = {_toml_str(tiny_guest.key)}
ControlMaster = "no"
""")
    kh = project.vm_dir("tiny") / "known_hosts"
    try:
        assert not kh.exists()
        golden.start(project, "tiny", "--timeout", "240")   # the first login: the wait for ssh
        learned = kh.read_text()
        real_key = tiny_guest.host_pubkey.read_text().split()[1]
        assert learned.startswith("qqmgr-tiny ") and real_key in learned
        assert project.run("ssh", "tiny", "true").returncode == 0
        # the guest "changed" its key: ssh refuses, with its warning
        other = tmp_path / "other"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
        kh.write_text("qqmgr-tiny " + " ".join((tmp_path / "other.pub").read_text().split()[:2]) + "\n")
        r = project.run("ssh", "tiny", "true")
        assert r.returncode == 255
        assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in r.stderr
        project.run("ssh-keys", "reset", "tiny", check=True)
        assert project.run("ssh", "tiny", "true").returncode == 0
        assert real_key in kh.read_text()
    finally:
        project.run("stop", "tiny", "--force")
