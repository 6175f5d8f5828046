"""An ssh option value ssh rejects (issue 20) is a config error naming the key and its place
in qqmgr.toml, found by `ssh -G` on the generated ssh.conf before it replaces the old one —
not ssh's complaint about a line of a file the user never wrote."""
import pytest


def conf(project, ssh_keys, global_keys=""):
    project.write(f"""{global_keys}
[vm.t]
cmd = ["-nodefaults"]

[vm.t.ssh]
port = 2222
User = "root"
{ssh_keys}
""")


@pytest.mark.parametrize("keys, glob, where, path, says", [
    ('Compression = "maybe"', "", ":8:1: ", "vm.t.ssh.Compression", 'unsupported option "maybe"'),
    ('LocalForward = ["8080 localhost:80", "8081"]', "", ":8:38: ", "vm.t.ssh.LocalForward[1]",
     "Missing target argument"),
    ("", '[ssh]\nServerAliveInterval = "often"', ":2:1: ", "ssh.ServerAliveInterval", "invalid time value"),
])
def test_a_value_ssh_rejects_names_the_key_in_the_config(project, keys, glob, where, path, says):
    conf(project, keys, glob)
    r = project.run("ssh-config", "t")
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip()
    assert line.count("\n") == 0, line
    assert f"qqmgr.toml{where}{path}: ssh rejects this value: {says}" in line, line
    assert "ssh.conf" not in line, line


def test_a_rejected_value_leaves_the_last_good_ssh_conf_in_place(project):
    conf(project, "Compression = true")
    assert project.run("ssh-config", "t").returncode == 0
    good = (project.vm_dir("t") / "ssh.conf").read_text()
    conf(project, 'Compression = "maybe"')
    assert project.run("ssh-config", "t").returncode == 2
    assert (project.vm_dir("t") / "ssh.conf").read_text() == good
    assert not (project.vm_dir("t") / "ssh.conf.next").exists()
