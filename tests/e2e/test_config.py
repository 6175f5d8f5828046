"""The config language as users meet it: discovery, state dir, list/show/img list,
and one clear line (file:line:col, exit 2) for every kind of broken config."""
import json
import os
import re
import shlex
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# the original qqmgr's example and test configs, when given (tests/run.sh)
UPSTREAM = os.environ.get("QQ_UPSTREAM_CONFIGS", "")


def qq(qqmgr, *args, cwd=None, env=None):
    return subprocess.run([qqmgr, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=30)


def write(tmp_path, text, name="qqmgr.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


BASIC = """
[vars]
home = "/home/user"
boot_img = "{{.home}}/disk.img"

[vm.a]
cmd = ["-m 64 -drive file={{.vm.disk}},if=virtio", "-netdev user,id=n,hostfwd=tcp::{{.vm.ssh.port}}-:{{.vm.ssh.vm_port}}"]
[vm.a.vars]
disk = "{{.boot_img}}"
[vm.a.ssh]
port = 2222

[vm.b]
cmd = ["-m 128", "-name 'my vm'"]

[img.scratch]
builder = "raw"
img_size = "1G"
"""


def test_show_renders_vars_referring_to_vars_and_ssh_port(qqmgr, tmp_path):
    write(tmp_path, BASIC)
    r = qq(qqmgr, "show", "a", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    argv = doc["argv"]
    assert argv[0] == "qemu-system-x86_64"
    assert argv[1:7] == ["-m", "64", "-drive", "file=/home/user/disk.img,if=virtio",
                         "-netdev", "user,id=n,hostfwd=tcp::2222-:22"]
    assert doc["state_dir"] == str(tmp_path.resolve() / ".qqmgr" / "vm.a")


def test_show_text_is_one_copy_pasteable_shell_line(qqmgr, tmp_path):
    write(tmp_path, BASIC)
    r = qq(qqmgr, "show", "b", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1
    j = json.loads(qq(qqmgr, "show", "b", "--json", cwd=tmp_path).stdout)
    assert shlex.split(lines[0]) == j["argv"]
    assert "my vm" in j["argv"]


def test_list_and_img_list_keep_file_order(qqmgr, tmp_path):
    text = "".join(f'[vm.v{i}]\ncmd = ["-m 64"]\n' for i in (5, 3, 9, 1))
    text += "".join(f'[img.i{i}]\nbuilder = "raw"\nimg_size = "{i}M"\n' for i in (7, 2))
    write(tmp_path, text)
    r = qq(qqmgr, "list", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    vms = json.loads(r.stdout)
    assert [v["name"] for v in vms] == ["v5", "v3", "v9", "v1"]
    assert all(v["configured"] is True and v["running"] is False for v in vms)
    r = qq(qqmgr, "img", "list", "--json", cwd=tmp_path)
    imgs = json.loads(r.stdout)
    assert [i["name"] for i in imgs] == ["i7", "i2"]
    assert imgs[0]["builder"] == "raw" and imgs[0]["img_size"] == "7M"
    assert imgs[0]["path"].startswith(str(tmp_path.resolve()))
    assert imgs[0]["built"] is False


def test_image_path_template_is_absolute(qqmgr, tmp_path):
    write(tmp_path, BASIC.replace('"-m 128"', '"-m 128 -drive file={{.img.scratch}}"'))
    doc = json.loads(qq(qqmgr, "show", "b", "--json", cwd=tmp_path).stdout)
    drive = [a for a in doc["argv"] if a.startswith("file=")][0]
    assert drive == "file=" + str(tmp_path.resolve() / ".qqmgr" / "img.scratch" / "disk.raw")


def test_every_name_for_one_config_reaches_the_same_state_dir(qqmgr, tmp_path):
    write(tmp_path, BASIC)
    sub = tmp_path / "sub"
    sub.mkdir()
    os.symlink(tmp_path / "qqmgr.toml", sub / "link.toml")
    a = json.loads(qq(qqmgr, "show", "b", "--json", cwd=tmp_path).stdout)["state_dir"]
    b = json.loads(qq(qqmgr, "-c", "qqmgr.toml", "show", "b", "--json", cwd=tmp_path).stdout)["state_dir"]
    c = json.loads(qq(qqmgr, "-c", str(sub / "link.toml"), "show", "b", "--json", cwd=sub).stdout)["state_dir"]
    assert a == b == c


def test_other_file_names_get_their_own_state_dir(qqmgr, tmp_path):
    write(tmp_path, BASIC, name="lab.toml")
    doc = json.loads(qq(qqmgr, "-c", "lab.toml", "show", "b", "--json", cwd=tmp_path).stdout)
    assert doc["state_dir"] == str(tmp_path.resolve() / ".qqmgr" / "config.lab.toml" / "vm.b")


def test_global_config_state_goes_to_xdg_state_home(qqmgr, tmp_path):
    cfg = tmp_path / "cfg" / "qqmgr"
    cfg.mkdir(parents=True)
    (cfg / "conf.toml").write_text(BASIC)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "cfg"), XDG_STATE_HOME=str(tmp_path / "state"))
    r = qq(qqmgr, "show", "b", "--json", cwd=work, env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["state_dir"] == str(tmp_path / "state" / "qqmgr" / "vm.b")


def test_no_config_anywhere_is_a_usage_error(qqmgr, tmp_path):
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "none"))
    r = qq(qqmgr, "list", cwd=tmp_path, env=env)
    assert r.returncode == 2
    assert "no config" in r.stderr


def test_upstream_test_config_resolves_like_the_original(qqmgr):
    cfg = os.path.join(UPSTREAM, "test-config.toml")
    if not UPSTREAM or not os.path.exists(cfg):
        pytest.skip("QQ_UPSTREAM_CONFIGS: the original's configs are not given")
    r = qq(qqmgr, "-c", cfg, "show", "test-vm", "--json")
    assert r.returncode == 0, r.stderr
    argv = json.loads(r.stdout)["argv"]
    # the user's args end where qqmgr's own begin: the RAM backend (mapped.h), else -pidfile
    # (id pc.ram on x86 pc/q35, qq-ram elsewhere; its file in qqmgr's tmpfs dir)
    ends = [i - 1 for i, a in enumerate(argv)
            if re.match(r"memory-backend-file,id=(pc\.ram|qq-ram),.*mem-path=/dev/shm/qqmgr-", a)]
    ends += [i for i, a in enumerate(argv) if a == "-pidfile"]
    user = argv[1:min(ends)] if ends else argv[1:]
    assert user == [
        "-nodefaults", "-machine", "q35,accel=kvm,kernel-irqchip=split",
        "-cpu", "host", "-smp", "2", "-m", "4096",
        "-netdev", "user,id=net0,hostfwd=tcp::2089-:22",
        "-device", "virtio-net-pci,netdev=net0",
        "-drive", "id=boot,file=/home/user/path/to/disk.img,format=qcow2,if=virtio",
    ]


def test_upstream_example_config_loads(qqmgr):
    cfg = os.path.join(UPSTREAM, "qqmgr.example.toml")
    if not UPSTREAM or not os.path.exists(cfg):
        pytest.skip("QQ_UPSTREAM_CONFIGS: the original's configs are not given")
    r = qq(qqmgr, "-c", cfg, "show", "test", "--json")
    assert r.returncode == 0, r.stderr
    argv = json.loads(r.stdout)["argv"]
    assert argv[0] == "/home/jwd/repos/qemu/build/qemu-system-x86_64"
    assert "intel-iommu,intremap=on" in argv
    assert any(a.endswith("/img.fedora/disk.qcow2,format=qcow2,if=virtio") for a in argv)
    r = qq(qqmgr, "-c", cfg, "img", "list", "--json")
    assert json.loads(r.stdout)[0]["builder"] == "cloud-init"


BAD = [
    ("toml_syntax", '[vm.a]\ncmd = ["x"\n', r"qqmgr\.toml:\d+:\d+: "),
    ("duplicate_key", '[vm.a]\ncmd = ["-m 64"]\ncmd = ["-m 64"]\n', r"qqmgr\.toml:3:\d+: .*(duplicate|defined)"),
    ("wrong_type", '[vm.a]\ncmd = "-m 64"\n', r"qqmgr\.toml:2:\d+: vm\.a\.cmd: must be an array of strings"),
    ("wrong_elem_type", '[vm.a]\ncmd = ["-m", 64]\n', r"qqmgr\.toml:2:\d+: vm\.a\.cmd\[1\]: must be a string"),
    ("unknown_key", '[vm.a]\ncmd = ["-m 64"]\ncmdd = ["x"]\n', r"qqmgr\.toml:3:1: vm\.a\.cmdd: unknown key"),
    ("unknown_section", '[vms.a]\ncmd = ["-m 64"]\n', r"qqmgr\.toml:1:\d+: vms: unknown key"),
    ("port_range", '[vm.a]\ncmd = ["-m 64"]\n[vm.a.ssh]\nport = 70000\n', r"qqmgr\.toml:4:\d+: vm\.a\.ssh\.port: must be a port"),
    ("port_word", '[vm.a]\ncmd = ["-m 64"]\n[vm.a.ssh]\nport = "any"\n', r"vm\.a\.ssh\.port: must be a port"),
    ("tmpl_syntax", '[vm.a]\ncmd = ["-m {{.x"]\n', r"qqmgr\.toml:2:\d+: vm\.a\.cmd\[0\]: template"),
    ("undefined_var", '[vars]\nhome = "/h"\n[vm.a]\ncmd = ["-m 64", "-drive file={{.hoem}}/x"]\n',
     r"qqmgr\.toml:4:\d+: vm\.a\.cmd\[1\]: .*hoem"),
    ("undefined_vm_var", '[vm.a]\ncmd = ["-m {{.vm.mem}}"]\n', r"vm\.a\.cmd\[0\]: .*mem"),
    ("cycle", '[vars]\na = "{{.b}}"\nb = "{{.c}}"\nc = "{{.a}}"\n[vm.a]\ncmd = ["{{.a}}"]\n',
     r"cycle: vars\.a -> vars\.b -> vars\.c -> vars\.a"),
    ("injected_arg", '[vm.a]\ncmd = ["-m 64 -qmp unix:/tmp/x,server=on"]\n', r"vm\.a\.cmd\[0\].*-qmp"),
    ("unsafe_output", '[img.x]\nbuilder = "cloud-init"\nimg_size = "1G"\n[img.x.base_img]\nurl = "file:///x"\n'
     'sha256sum = "' + "0" * 64 + '"\n[[img.x.templates]]\ntemplate = "t"\noutput = "../user-data"\n',
     r"qqmgr\.toml:9:\d+: img\.x\.templates\[0\]\.output: must be a plain file name"),
    ("unsafe_source", '[img.x]\nbuilder = "cloud-init"\nimg_size = "1G"\n[img.x.base_img]\nurl = "file:///x"\n'
     'sha256sum = "' + "0" * 64 + '"\n[[img.x.sources]]\nurl = "file:///y"\nsha256sum = "' + "1" * 64 +
     '"\nfilename = "a/b"\n', r"img\.x\.sources\[0\]\.filename: must be a plain file name"),
    ("bad_builder", '[img.x]\nbuilder = "qcow"\nimg_size = "1G"\n', r"qqmgr\.toml:2:\d+: img\.x\.builder: unknown builder"),
    ("bad_size", '[img.x]\nbuilder = "raw"\nimg_size = "lots"\n', r"img\.x\.img_size: must be a size"),
    ("unterminated_quote", '[vm.a]\ncmd = ["-name \'x"]\n', r"qqmgr\.toml:2:\d+: vm\.a\.cmd\[0\].*quote"),
    ("port_nan", '[vm.a]\ncmd = ["-m 64"]\n[vm.a.ssh]\nport = nan\n',
     r'qqmgr\.toml:4:\d+: vm\.a\.ssh\.port: must be a port number \(1-65535\), 0 or "auto", not nan$'),
    ("bad_env_inf", '[img.x]\nbuilder = "raw"\nimg_size = "1G"\n[img.x.env]\nl = [1, { y = -inf }]\n',
     r"qqmgr\.toml:5:\d+: img\.x\.env\.l\[1\]\.y: an image's env cannot hold -inf: it goes to env_hook as JSON"),
    ("ssh_newline", '[ssh]\nProxyCommand = "a\\nb"\n[vm.a]\ncmd = ["-m 64"]\n', r"qqmgr\.toml:2:\d+: ssh\.ProxyCommand: .*newline"),
]


@pytest.mark.parametrize("name,text,pattern", BAD, ids=[b[0] for b in BAD])
def test_broken_config_gets_one_line_naming_the_place_and_exit_2(qqmgr, tmp_path, name, text, pattern):
    write(tmp_path, text)
    r = qq(qqmgr, "show", "a", cwd=tmp_path)
    if name.startswith(("unsafe", "bad_")):
        r = qq(qqmgr, "img", "list", cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert re.search(pattern, lines[0]), lines[0]
    assert "AddressSanitizer" not in r.stderr and "runtime error" not in r.stderr


def assert_one_config_error(qqmgr, tmp_path, text, pattern, where=True):
    """`list` on TEXT exits 2 with exactly one line matching PATTERN (and, by default, FILE:LINE:COL)."""
    write(tmp_path, text)
    r = qq(qqmgr, "list", cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    if where:
        assert re.search(r"qqmgr\.toml:\d+:\d+: ", lines[0]), lines[0]
    assert re.search(pattern, lines[0]), lines[0]


SSHA = '[vm.a]\ncmd = ["-m 64"]\n[vm.a.ssh]\n'
IMGX = '[img.x]\nbuilder = "raw"\n'
CIX = '[img.x]\nbuilder = "cloud-init"\nimg_size = "1G"\n[img.x.base_img]\nurl = "file:///x"\n'
WRONG_VALUES = [
    ("port_range", SSHA + "port = 70000\n", r"vm\.a\.ssh\.port: must be a port .*, not 70000$"),
    ("port_negative", SSHA + "port = -1\n", r"vm\.a\.ssh\.port: .*, not -1$"),
    ("port_type", SSHA + "port = 1.5\n", r"vm\.a\.ssh\.port: .*, not 1\.5$"),
    ("port_bool", SSHA + "port = true\n", r"vm\.a\.ssh\.port: .*, not true$"),
    ("port_word", SSHA + 'port = "atuo"\n', r'vm\.a\.ssh\.port: .*, not "atuo"$'),
    ("vm_port_range", SSHA + "vm_port = 0\n", r"vm\.a\.ssh\.vm_port: must be a port .*, not 0$"),
    ("cmd_type", '[vm.a]\ncmd = "-m 64"\n', r'vm\.a\.cmd: must be an array of strings, not the string "-m 64"$'),
    ("cmd_elem", '[vm.a]\ncmd = ["-m", 64]\n', r"vm\.a\.cmd\[1\]: must be a string, not the integer 64$"),
    ("vars_type", '[vm.a]\ncmd = ["-m 64"]\nvars = 3\n', r"vm\.a\.vars: must be a table, not the integer 3$"),
    ("ssh_value", '[ssh]\nUser = {a = 1}\n', r"ssh\.User: .*, not a table$"),
    ("img_size_word", IMGX + 'img_size = "lots"\n', r'img\.x\.img_size: must be .*, not "lots"$'),
    ("img_size_zero", IMGX + 'img_size = 0\n', r"img\.x\.img_size: must be .*, not 0$"),
    ("img_size_bool", IMGX + 'img_size = false\n', r"img\.x\.img_size: must be .*, not false$"),
    ("build_timeout", IMGX + 'img_size = "1G"\nbuild_timeout = -5\n',
     r"img\.x\.build_timeout: must be a positive number of seconds, not -5$"),
    ("build_timeout_str", IMGX + 'img_size = "1G"\nbuild_timeout = "10m"\n',
     r'img\.x\.build_timeout: must be a positive number of seconds, not "10m"$'),
    ("sha256sum", CIX + 'sha256sum = "abc"\n', r'img\.x\.base_img\.sha256sum: must be 64 hexadecimal digits, not "abc"$'),
    ("builder_type", '[img.x]\nbuilder = 1\nimg_size = "1G"\n', r"img\.x\.builder: must be a string, not the integer 1$"),
]


@pytest.mark.parametrize("name,text,pattern", WRONG_VALUES, ids=[b[0] for b in WRONG_VALUES])
def test_type_and_range_errors_name_the_value_they_got(qqmgr, tmp_path, name, text, pattern):
    assert_one_config_error(qqmgr, tmp_path, text, pattern)


REFUSED = [
    # a NUL would cut the C string short: "-m 64\u0000-daemonize" must not become "-m 64"
    ("nul_in_cmd", '[vm.a]\ncmd = ["-m 64\\u0000-daemonize"]\n',
     r"qqmgr\.toml:2:\d+: vm\.a\.cmd\[0\]: contains a NUL character"),
    ("nul_in_var", '[vars]\nx = "a\\u0000b"\n[vm.a]\ncmd = ["{{.x}}"]\n',
     r"qqmgr\.toml:2:\d+: vars\.x: contains a NUL character"),
    ("nul_in_key", '[vm.a]\ncmd = ["-m 64"]\n[vm.a.vars]\n"x\\u0000y" = "1"\n',
     r'qqmgr\.toml:4:1: vm\.a\.vars\."x\\u0000y": this key contains a NUL character'),
    ("nul_in_vm_name", '[vm."a\\u0000b"]\ncmd = ["-m 64"]\n',
     r'qqmgr\.toml:1:\d+: vm\."a\\u0000b": this key contains a NUL character'),
    ("nul_in_ssh_value", '[ssh]\nUser = "root\\u0000"\n', r"qqmgr\.toml:2:\d+: ssh\.User: contains a NUL"),
    ("nul_in_path", '[img.x]\nbuilder = "cloud-init"\nimg_size = "1G"\n[img.x.base_img]\nurl = "file:///x\\u0000y"\n'
     'sha256sum = "' + "0" * 64 + '"\n', r"qqmgr\.toml:5:\d+: img\.x\.base_img\.url: contains a NUL"),
    ("control_in_ssh_value", '[ssh]\nUser = "a\\u001bb"\n', r"qqmgr\.toml:2:\d+: ssh\.User: .*control character"),
    ("tab_in_vm_ssh_value", '[vm.a]\ncmd = ["-m 64"]\n[vm.a.ssh]\nUser = "a\\tb"\n',
     r"qqmgr\.toml:4:\d+: vm\.a\.ssh\.User: .*control character \(a tab\)"),
    ("cr_in_ssh_array", '[ssh]\nSendEnv = ["A", "B\\rProxyCommand x"]\n', r"ssh\.SendEnv\[1\]: .*control character"),
    ("vm_name_newline", '[vm."a\\nProxyCommand x"]\ncmd = ["-m 64"]\n',
     r"qqmgr\.toml:1:\d+: vm\.\"a\\nProxyCommand x\": the VM name .* letters, digits, '\.', '_' and '-', not starting"),
    ("vm_name_space", '[vm."a b"]\ncmd = ["-m 64"]\n', r'vm\."a b": the VM name "a b" is not valid'),
    ("vm_name_dash", '[vm."-x"]\ncmd = ["-m 64"]\n', r'vm\.-x: the VM name "-x" is not valid'),
    ("vm_name_dot", '[vm.".x"]\ncmd = ["-m 64"]\n', r'vm\."\.x": the VM name "\.x" is not valid'),
    ("vm_name_percent", '[vm."a%h"]\ncmd = ["-m 64"]\n', r'the VM name "a%h" is not valid'),
    ("img_name_slash", '[img."a/b"]\nbuilder = "raw"\nimg_size = "1G"\n', r'img\."a/b": the image name "a/b" is not valid'),
    ("img_name_dash", '[img."-b"]\nbuilder = "raw"\nimg_size = "1G"\n', r'the image name "-b" is not valid: a name has'),
]


@pytest.mark.parametrize("name,text,pattern", REFUSED, ids=[b[0] for b in REFUSED])
def test_nul_control_characters_and_bad_names_are_config_errors(qqmgr, tmp_path, name, text, pattern):
    assert_one_config_error(qqmgr, tmp_path, text, pattern)


def test_names_of_letters_digits_dot_underscore_dash_are_accepted(qqmgr, tmp_path):
    write(tmp_path, '[vm."web-1.example_A"]\ncmd = ["-m 64"]\n[img."disk_2.v-3"]\nbuilder = "raw"\nimg_size = "1M"\n')
    r = qq(qqmgr, "list", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert [v["name"] for v in json.loads(r.stdout)] == ["web-1.example_A"]


SSH_KEYS = [
    ("vm_prot", '[vm.a]\ncmd = ["-m 64"]\n[vm.a.ssh]\nprot = "auto"\n',
     r'qqmgr\.toml:4:1: vm\.a\.ssh\.prot: unknown ssh_config keyword "prot" \(did you mean port\?\)'),
    ("typo", '[ssh]\nStrictHostKeyCheckin = "no"\n',
     r'qqmgr\.toml:2:1: ssh\.StrictHostKeyCheckin: unknown ssh_config keyword .*did you mean StrictHostKeyChecking\?'),
    ("vm_typo", '[vm.a]\ncmd = ["-m 64"]\n[vm.a.ssh]\nIdentityFiel = "k"\n',
     r"qqmgr\.toml:4:1: vm\.a\.ssh\.IdentityFiel: .*did you mean IdentityFile\?"),
    ("unknown", '[ssh]\nFrobnicate = "yes"\n', r'ssh\.Frobnicate: unknown ssh_config keyword "Frobnicate" \(see ssh_config\(5\)\)'),
    ("host", '[ssh]\nHost = "x"\n', r"ssh\.Host: Host cannot be set: qqmgr writes the VM's Host block"),
    ("match", '[vm.a]\ncmd = ["-m 64"]\n[vm.a.ssh]\nmatch = "all"\n', r"vm\.a\.ssh\.match: match cannot be set"),
]


@pytest.mark.parametrize("name,text,pattern", SSH_KEYS, ids=[b[0] for b in SSH_KEYS])
def test_unknown_ssh_config_keywords_are_config_errors_with_a_hint(qqmgr, tmp_path, name, text, pattern):
    assert_one_config_error(qqmgr, tmp_path, text, pattern)


def test_ssh_keywords_are_accepted_in_any_case(qqmgr, tmp_path):
    write(tmp_path, '[ssh]\nstricthostkeychecking = "accept-new"\nLOGLEVEL = "ERROR"\n[vm.a]\ncmd = ["-m 64"]\n')
    r = qq(qqmgr, "list", cwd=tmp_path)
    assert r.returncode == 0, r.stderr


SSH_TEMPLATES = """
[vars]
keys = "/srv/keys"
user = "root"
[ssh]
User = "{{.user}}"
SendEnv = ["LANG", "{{.vm.envvar}}"]
LogLevel = "ERROR"
[vm.a]
cmd = ["-m 64"]
[vm.a.vars]
envvar = "TZ"
[vm.a.ssh]
port = 2222
IdentityFile = "{{.keys}}/id_ed25519"
ProxyCommand = "nc %h %p"
ConnectTimeout = 5
"""


def test_ssh_values_are_templates_rendered_with_the_vms_data(qqmgr, tmp_path):
    write(tmp_path, SSH_TEMPLATES)
    r = qq(qqmgr, "ssh-config", "a", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    # values may be quoted as ssh_config quotes them
    lines = [" ".join(shlex.split(l)) for l in r.stdout.splitlines() if not l.startswith("#")]
    assert "IdentityFile /srv/keys/id_ed25519" in lines
    assert "User root" in lines
    assert "SendEnv LANG" in lines and "SendEnv TZ" in lines
    assert "ConnectTimeout 5" in lines
    # what has no template means what it always meant (the original wrote values as-is)
    assert any(l.startswith("ProxyCommand") and "nc %h %p" in l for l in lines)
    assert "{{" not in r.stdout


def test_ssh_value_template_errors_name_the_place(qqmgr, tmp_path):
    write(tmp_path, SSH_TEMPLATES.replace('"{{.keys}}/id_ed25519"', '"{{.kyes}}/id_ed25519"'))
    r = qq(qqmgr, "ssh-config", "a", cwd=tmp_path)
    assert r.returncode == 2
    assert re.match(r"qqmgr: qqmgr\.toml:15:\d+: vm\.a\.ssh\.IdentityFile: .*kyes", r.stderr), r.stderr


def test_ssh_value_rendering_a_newline_is_a_config_error(qqmgr, tmp_path):
    write(tmp_path, SSH_TEMPLATES.replace('keys = "/srv/keys"', 'keys = "/srv\\nProxyCommand evil"'))
    r = qq(qqmgr, "ssh-config", "a", cwd=tmp_path)
    assert r.returncode == 2
    assert re.match(r"qqmgr: qqmgr\.toml:15:\d+: vm\.a\.ssh\.IdentityFile: renders to an ssh value with a "
                    r"control character", r.stderr), r.stderr


def test_unknown_vm_or_image_lists_the_names_that_exist(qqmgr, tmp_path):
    write(tmp_path, BASIC)
    r = qq(qqmgr, "show", "nope", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == 'qqmgr: qqmgr.toml: no VM named "nope" (VMs: a, b)'
    r = qq(qqmgr, "status", "aa", cwd=tmp_path)
    assert r.returncode == 2 and 'no VM named "aa"; did you mean "a"? (VMs: a, b)' in r.stderr
    r = qq(qqmgr, "img", "build", "scratc", cwd=tmp_path)
    assert r.returncode == 2
    assert 'no image named "scratc"; did you mean "scratch"? (images: scratch)' in r.stderr
    many = "".join(f'[vm.vm{i}]\ncmd = ["-m 64"]\n' for i in range(30))
    write(tmp_path, many)
    r = qq(qqmgr, "show", "x", cwd=tmp_path)
    assert r.returncode == 2 and "(VMs: vm0, vm1," in r.stderr and "… (30 in all)" in r.stderr


def test_invalid_utf8_is_a_config_error(qqmgr, tmp_path):
    (tmp_path / "qqmgr.toml").write_bytes(b'[vm.a]\ncmd = ["-name \xff"]\n')
    r = qq(qqmgr, "list", cwd=tmp_path)
    assert r.returncode == 2
    assert re.match(r"qqmgr: qqmgr\.toml:2:\d+: ", r.stderr)


def test_unknown_vm_is_a_usage_error(qqmgr, tmp_path):
    write(tmp_path, BASIC)
    r = qq(qqmgr, "show", "nope", cwd=tmp_path)
    assert r.returncode == 2
    assert 'no VM named "nope"' in r.stderr


def test_help_is_generated_for_every_command(qqmgr, tmp_path):
    r = qq(qqmgr, "--help", cwd=tmp_path)
    assert r.returncode == 0
    for c in ["list", "show", "start", "stop", "status", "ssh", "put", "get", "img build", "gdb"]:
        assert f"\n  {c} " in r.stdout
    r = qq(qqmgr, "show", "-h", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("usage: qqmgr show VM")
    r = qq(qqmgr, "show", cwd=tmp_path)
    assert r.returncode == 2 and "usage: qqmgr show VM" in r.stderr
    r = qq(qqmgr, "frobnicate", cwd=tmp_path)
    assert r.returncode == 2 and "unknown command" in r.stderr


def test_version(qqmgr):
    r = subprocess.run([qqmgr, "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("qqmgr ")


def test_source_filename_defaults_to_the_urls_last_segment_and_must_exist(qqmgr, tmp_path):
    base = ('[img.x]\nbuilder = "cloud-init"\nimg_size = "1G"\n[img.x.base_img]\nurl = "file:///b.qcow2"\n'
            'sha256sum = "' + "0" * 64 + '"\n[[img.x.sources]]\nsha256sum = "' + "1" * 64 + '"\n')
    write(tmp_path, base + 'url = "https://example.org/pkgs/tool.tar.gz"\n')
    assert qq(qqmgr, "img", "list", cwd=tmp_path).returncode == 0
    write(tmp_path, base + 'url = "https://example.org/download?id=3"\n')
    r = qq(qqmgr, "img", "list", cwd=tmp_path)
    assert r.returncode == 2
    assert "img.x.sources[0]: the url names no file" in r.stderr
