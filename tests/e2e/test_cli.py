"""The command line: help generated from the command table, the one option parser
(seconds, enums, optional values, argument counts, --json placement), hints for
misplaced options, the version from meson.build."""

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

BARE = "-nodefaults -machine q35 -m 64 -display none -accel tcg"


def qq(qqmgr, *args, cwd=None):
    return subprocess.run([qqmgr, *args], capture_output=True, text=True, cwd=cwd,
                          stdin=subprocess.DEVNULL, timeout=60)


def commands(qqmgr):
    """(name, synopsis) of every command the overview lists."""
    out = qq(qqmgr, "--help").stdout
    body = out.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
    rows, pending = [], None
    for line in body.splitlines():
        if line.startswith("  ") and not line.startswith("   "):
            pending = line[2:]
            head = re.split(r"\s{2,}", pending)[0]
            rows.append(head)
    names = []
    for head in rows:
        words = head.split()
        name = " ".join(words[:2]) if words[0] in ("img", "snapshot", "ssh-keys") and len(words) > 1 else words[0]
        names.append((name, head[len(name):].strip()))
    return names


def test_every_commands_help_is_its_overview_row(qqmgr):
    rows = commands(qqmgr)
    assert len(rows) >= 19
    for name, synopsis in rows:
        r = qq(qqmgr, *name.split(), "-h")
        assert r.returncode == 0, name
        first = r.stdout.splitlines()[0]
        assert first == f"usage: qqmgr {name}" + (f" {synopsis}" if synopsis else ""), (name, first)
        # every option of the synopsis has its help line
        for opt in re.findall(r"\[(-[^\]\s|=\[]+)", synopsis):
            assert re.search(rf"^  .*{re.escape(opt)}", r.stdout, re.M), (name, opt)
        assert "-h, --help" in r.stdout


def test_help_command_is_the_commands_own_help(qqmgr):
    assert qq(qqmgr, "help", "stop").stdout == qq(qqmgr, "stop", "-h").stdout
    assert qq(qqmgr, "help", "img", "build").stdout == qq(qqmgr, "img", "build", "-h").stdout
    assert "img build IMAGE" in qq(qqmgr, "help", "img").stdout
    r = qq(qqmgr, "help", "nope")
    assert r.returncode == 2 and "unknown command 'nope'" in r.stderr


def test_documented_options_of_bug_4(qqmgr):
    assert "-n, --lines N" in qq(qqmgr, "serial", "-h").stdout
    assert "-f, --follow" in qq(qqmgr, "serial", "-h").stdout
    assert "-f, --force" in qq(qqmgr, "stop", "-h").stdout
    assert "--json" in qq(qqmgr, "qmp", "-h").stdout and "--json" in qq(qqmgr, "monitor", "-h").stdout


@pytest.mark.parametrize("group", ["img", "snapshot", "ssh-keys"])
def test_a_groups_subcommand_summaries_start_in_one_column(qqmgr, group):
    out = qq(qqmgr, group, "-h").stdout
    body = out.split("Subcommands:\n", 1)[1].split("\n\n", 1)[0]
    cols = set()
    lines = body.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("   "):
            continue
        m = re.match(r"^  \S.*?\s{2,}(\S.*)$", line)
        if not m:   # a synopsis too long to share its line: its summary is the next line
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            m = re.match(r"^ {3,}(\S.*)$", nxt)
            assert m, (group, line)
            line = nxt
        cols.add(len(line) - len(m.group(1)))
    assert len(cols) == 1, (group, body)


def test_img_alone_or_with_h_lists_its_subcommands(qqmgr):
    r = qq(qqmgr, "img", "-h")
    assert r.returncode == 0
    assert "img list" in r.stdout and "img build IMAGE" in r.stdout
    r = qq(qqmgr, "img")
    assert r.returncode == 2 and "img build IMAGE" in r.stderr
    r = qq(qqmgr, "img", "frob")
    assert r.returncode == 2 and "unknown subcommand 'frob'" in r.stderr


def test_a_mistyped_command_gets_did_you_mean(qqmgr):
    r = qq(qqmgr, "strat", "dev")
    assert r.returncode == 2
    assert r.stderr == "qqmgr: unknown command 'strat' (did you mean 'start'?) (see qqmgr -h)\n"
    r = qq(qqmgr, "help", "stauts")
    assert r.returncode == 2 and "(did you mean 'status'?)" in r.stderr
    r = qq(qqmgr, "img", "biuld", "x")
    assert r.returncode == 2 and "unknown subcommand 'biuld' (did you mean 'img build'?)" in r.stderr
    r = qq(qqmgr, "snapshot", "lst", "x")
    assert r.returncode == 2 and "(did you mean 'snapshot list'?)" in r.stderr
    # far from every command: no guess
    r = qq(qqmgr, "xyzzyq")
    assert r.returncode == 2 and "did you mean" not in r.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "1.5", "1e3", "", " 5", "86401", "0x10"])
@pytest.mark.parametrize("cmd", [["start", "v"], ["stop", "v"], ["wait", "v"], ["img", "build", "i"]])
def test_timeout_that_is_not_whole_seconds_is_a_usage_error(qqmgr, tmp_path, cmd, value):
    r = qq(qqmgr, *cmd, "--timeout", value, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "--timeout: expected whole seconds" in r.stderr
    r = qq(qqmgr, *cmd, f"--timeout={value}", cwd=tmp_path)
    assert r.returncode == 2


def test_enum_values_are_checked_and_named(qqmgr, tmp_path):
    r = qq(qqmgr, "wait", "v", "--for", "boot", cwd=tmp_path)
    assert r.returncode == 2 and "--for: expected ssh or cloud-init, got 'boot'" in r.stderr
    r = qq(qqmgr, "start", "v", "--wait=boot", cwd=tmp_path)
    assert r.returncode == 2 and "--wait: expected ssh or cloud-init, got 'boot'" in r.stderr


def test_wait_with_a_separate_value_explains_the_equals_sign(qqmgr, tmp_path):
    r = qq(qqmgr, "start", "v", "--wait", "cloud-init", cwd=tmp_path)
    assert r.returncode == 2
    assert "--wait takes its value after '=': --wait=cloud-init" in r.stderr
    r = qq(qqmgr, "serial", "v", "--previous", "2", cwd=tmp_path)
    assert r.returncode == 2 and "--previous takes its value after '=': --previous=2" in r.stderr


def test_global_option_after_the_command_says_where_it_goes(qqmgr, tmp_path):
    r = qq(qqmgr, "list", "-c", "x.toml", cwd=tmp_path)
    assert r.returncode == 2
    assert "global options (-c, -d, -H) go before the command: qqmgr -c x.toml list" in r.stderr
    r = qq(qqmgr, "status", "vm", "-H", "box", cwd=tmp_path)
    assert r.returncode == 2 and "go before the command: qqmgr -H box status vm" in r.stderr
    r = qq(qqmgr, "show", "vm", "--config=my conf.toml", "-d", cwd=tmp_path)
    assert r.returncode == 2
    assert "qqmgr '--config=my conf.toml' -d show vm" in r.stderr


def test_unknown_option_names_it(qqmgr, tmp_path):
    r = qq(qqmgr, "stop", "v", "--frob", cwd=tmp_path)
    assert r.returncode == 2 and "unknown option '--frob'" in r.stderr and "usage: qqmgr stop" in r.stderr
    r = qq(qqmgr, "stop", "v", "--force=yes", cwd=tmp_path)
    assert r.returncode == 2 and "--force takes no value" in r.stderr
    r = qq(qqmgr, "serial", "v", "-n", cwd=tmp_path)
    assert r.returncode == 2 and "-n needs a value" in r.stderr
    r = qq(qqmgr, "serial", "v", "-n", "x", cwd=tmp_path)
    assert r.returncode == 2 and "expected a whole number" in r.stderr


def test_version_is_meson_project_version(qqmgr):
    m = re.search(r"version\s*:\s*'([^']+)'", (REPO / "meson.build").read_text())
    r = qq(qqmgr, "--version")
    assert r.returncode == 0 and r.stdout == f"qqmgr {m.group(1)}\n"
    assert "0.1.0" not in (REPO / "src" / "main.c").read_text()


def test_json_after_the_vm_name_for_qmp_and_monitor(project):
    project.write(f'[vm.bare]\ncmd = ["{BARE}"]\n')
    project.run("start", "bare", check=True)
    try:
        r = project.run("qmp", "bare", "query-status", "--json", check=True)
        assert json.loads(r.stdout)["status"] in ("running", "prelaunch")
        r = project.run("monitor", "bare", "info status", "--json", check=True)
        assert "VM status" in json.loads(r.stdout)["output"]
        # after the VM name of gdb, only --attach and `-- GDB_ARGS` are ours
        r = project.run("gdb", "bare", "--json")
        assert r.returncode == 2 and "unknown option '--json'" in r.stderr
    finally:
        project.run("stop", "bare", "--force", check=True)


def test_dash_dash_ends_options(qqmgr, tmp_path):
    (tmp_path / "qqmgr.toml").write_text(f'[vm.bare]\ncmd = ["{BARE}"]\n')
    r = qq(qqmgr, "show", "--", "-h", cwd=tmp_path)
    assert r.returncode == 2 and 'no VM named "-h"' in r.stderr


def test_ssh_passes_every_word_after_the_vm_name_on(project):
    # a VM whose ssh port leads nowhere: -d shows the ssh line before ssh runs
    project.write(f'[vm.bare]\ncmd = ["{BARE} -netdev user,id=n,hostfwd=tcp:127.0.0.1:{{{{.vm.ssh.port}}}}-:22 '
                  f'-device virtio-net,netdev=n"]\n[vm.bare.ssh]\nport = "auto"\n')
    project.run("start", "bare", check=True)
    try:
        p = subprocess.Popen([project.qqmgr, "-c", str(project.config), "-d", "ssh", "bare", "--", "echo", "--json",
                              "-h"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        line = p.stderr.readline()
        p.kill()
        p.communicate()
        assert line.startswith("+ ssh ") and line.rstrip().endswith(" bare -- echo --json -h"), line
    finally:
        project.run("stop", "bare", "--force", check=True)


def test_hints_are_copy_pasteable_with_the_config_that_was_given(qqmgr, tmp_path):
    (tmp_path / "my conf.toml").write_text(
        '[img.scratch]\nbuilder = "raw"\nimg_size = "16M"\n\n'
        f'[vm.v]\ncmd = ["{BARE}", "-drive file={{{{.img.scratch}}}},format=raw,if=virtio"]\n'
        '[vm.v.ssh]\nport = "auto"\n')
    r = qq(qqmgr, "-c", "my conf.toml", "start", "v", cwd=tmp_path)
    assert r.returncode == 1
    hint = re.search(r"run `([^`]+)`", r.stderr).group(1)
    assert hint == "qqmgr -c 'my conf.toml' img build scratch"
    r = subprocess.run(hint.replace("qqmgr", qqmgr, 1), shell=True, cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = qq(qqmgr, "-c", "my conf.toml", "ssh", "v", "true", cwd=tmp_path)
    assert r.returncode == 1 and "start it: qqmgr -c 'my conf.toml' start v)" in r.stderr
    # without -c, the hint has none
    (tmp_path / "qqmgr.toml").write_text((tmp_path / "my conf.toml").read_text())
    r = qq(qqmgr, "start", "v", cwd=tmp_path)
    assert r.returncode == 1 and "run `qqmgr img build scratch`" in r.stderr


@pytest.mark.guest
def test_start_wait_prints_the_total_time(project, tiny_vm_toml):
    project.write(tiny_vm_toml("auto"))
    try:
        r = project.run("start", "tiny", "--wait", "--timeout", "180", check=True)
        m = re.search(r"started tiny \(pid \d+, ssh port \d+\) in ([\d.]+) s; ssh ready after ([\d.]+) s in all",
                      r.stdout)
        assert m, r.stdout
        assert float(m.group(2)) >= float(m.group(1))
        out = project.json("start", "tiny", "--wait", check=True)
        assert out["already_running"] and isinstance(out["ready_ms"], int)
    finally:
        project.run("stop", "tiny", "--force")


def test_init_writes_a_starter_that_list_and_show_accept_and_never_overwrites(qqmgr, tmp_path):
    import os
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519.pub").write_text("ssh-ed25519 AAAAC3Nza me@host\n")
    env = dict(os.environ, HOME=str(home))
    d = tmp_path / "p"
    d.mkdir()
    r = subprocess.run([qqmgr, "init"], cwd=d, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    text = (d / "qqmgr.toml").read_text()
    assert 'pubkey = "ssh-ed25519 AAAAC3Nza me@host"' in text
    assert {p.name for p in d.iterdir()} == {"qqmgr.toml", "user-data.tpl", "meta-data.tpl"}
    vms = json.loads(qq(qqmgr, "list", "--json", cwd=d).stdout)
    assert [(v["name"], v["ssh_port_config"]) for v in vms] == [("dev", "auto")]
    r = qq(qqmgr, "show", "dev", cwd=d)
    assert r.returncode == 0 and "img.debian/disk.qcow2" in r.stdout and "img.data/disk.qcow2" in r.stdout
    imgs = {i["name"]: i["builder"] for i in json.loads(qq(qqmgr, "img", "list", "--json", cwd=d).stdout)}
    assert imgs == {"debian": "cloud-init", "data": "raw"}
    assert qq(qqmgr, "img", "build", "data", cwd=d).returncode == 0
    # never overwrites: the config, or any file it would write
    r = qq(qqmgr, "init", cwd=d)
    assert r.returncode == 1 and "exists already" in r.stderr
    assert (d / "qqmgr.toml").read_text() == text
    e = tmp_path / "e"
    e.mkdir()
    (e / "user-data.tpl").write_text("mine")
    r = qq(qqmgr, "-c", "other.toml", "init", cwd=e)
    assert r.returncode == 1 and "user-data.tpl exists already" in r.stderr
    assert {p.name for p in e.iterdir()} == {"user-data.tpl"} and (e / "user-data.tpl").read_text() == "mine"
    # -c names the file; the hints in it carry the -c
    r = qq(qqmgr, "-c", "sub dir/x.toml", "init", cwd=tmp_path)
    assert r.returncode == 1   # no such directory
    (tmp_path / "sub dir").mkdir()
    r = qq(qqmgr, "-c", "sub dir/x.toml", "init", cwd=tmp_path)
    assert r.returncode == 0
    assert "qqmgr -c 'sub dir/x.toml' img build debian" in (tmp_path / "sub dir" / "x.toml").read_text()
    assert qq(qqmgr, "-c", "sub dir/x.toml", "show", "dev", cwd=tmp_path).returncode == 0


def bash_complete(qqmgr, cwd, *words):
    """COMPREPLY of the generated bash completion for `qqmgr WORDS...` (the last word is
    the one being completed, "" for a new one)."""
    script = qq(qqmgr, "completion", "bash").stdout
    run = ('source /dev/stdin <<<"$QQ_SCRIPT"\n'
           'COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))\n'
           '_qqmgr\n'
           'printf "%s\\n" "${COMPREPLY[@]}"\n')
    r = subprocess.run(["bash", "-c", run, "bash", qqmgr, *words], cwd=cwd, capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin", "QQ_SCRIPT": script, "HOME": str(cwd)}, timeout=30)
    assert r.returncode == 0, r.stderr
    return [w for w in r.stdout.splitlines() if w]


def test_bash_completion_offers_commands_options_and_names_from_the_config(qqmgr, tmp_path):
    (tmp_path / "qqmgr.toml").write_text(
        '[img.scratch]\nbuilder = "raw"\nimg_size = "16M"\n'
        f'[vm.alpha]\ncmd = ["{BARE}"]\n[vm.beta]\ncmd = ["{BARE}"]\n')
    other = tmp_path / "sub"
    other.mkdir()
    (other / "o.toml").write_text(f'[vm.gamma]\ncmd = ["{BARE}"]\n[img.disk]\nbuilder = "raw"\nimg_size = "1M"\n')
    (tmp_path / "afile.txt").write_text("")
    c = lambda *w: bash_complete(qqmgr, tmp_path, *w)
    # commands, groups and subcommands, from the table (hidden ones not offered)
    assert "start" in c("") and "img" in c("") and "__complete" not in c("")
    assert c("st") == ["start", "stop", "status", "stdout", "stderr"]
    assert c("img", "") == ["list", "build", "rm"]
    assert c("he") == ["help"] and c("help", "sta") == ["start", "status"] and c("help", "img", "b") == ["build"]
    # options of the command, enum values (split at '=' as bash does, or after --for)
    assert set(c("stop", "alpha", "-")) >= {"--timeout", "--force", "-f", "--json", "--help"}
    assert c("wait", "alpha", "--for", "") == ["ssh", "cloud-init"]
    assert c("start", "alpha", "--wait", "=", "") == ["ssh", "cloud-init"]
    assert c("start", "alpha", "--wait", "=", "cl") == ["cloud-init"]
    # names from the default config, or the one -c names on the line
    assert c("show", "") == ["alpha", "beta"]
    assert c("show", "a") == ["alpha"]
    assert c("img", "build", "") == ["scratch"]
    assert c("-c", "sub/o.toml", "show", "") == ["gamma"]
    assert c("--config=sub/o.toml", "img", "build", "") == ["disk"]
    assert c("start", "alpha", "") == ["alpha", "beta"]   # several VMs
    # files where a file goes; nothing of ours after ssh's VM
    assert "afile.txt" in c("put", "alpha", "")
    assert "sub/" in c("-c", "su") or "sub" in c("-c", "su")
    assert c("completion", "") == ["bash", "zsh", "fish"]
    # after VM#: the VM's throwaway copies
    for n in (2, 10):
        (tmp_path / ".qqmgr" / "vm.alpha" / f"copy.{n}").mkdir(parents=True)
    assert c("ssh", "alpha#") == ["alpha#2", "alpha#10"] and c("ssh", "alpha#1") == ["alpha#10"]
    assert c("ssh", "") == ["alpha", "beta"]


def shell_env(qqmgr, home):
    import os
    return {"PATH": f"{Path(qqmgr).parent}:/usr/bin:/bin", "HOME": str(home)}


def test_fish_completion_offers_what_bash_does(qqmgr, tmp_path):
    import shutil
    if not shutil.which("fish"):
        pytest.skip("fish is not installed (tools/deps.sh installs it)")
    (tmp_path / "qqmgr.toml").write_text(f'[vm.alpha]\ncmd = ["{BARE}"]\n[img.disk]\nbuilder = "raw"\nimg_size = "1M"\n')
    script = ('qqmgr completion fish | source; complete -C "qqmgr st"; echo ---; complete -C "qqmgr show "; '
              'echo ---; complete -C "qqmgr start alpha --wait="; echo ---; complete -C "qqmgr img build "')
    r = subprocess.run(["fish", "-c", script], cwd=tmp_path, env=shell_env(qqmgr, tmp_path), capture_output=True,
                       text=True, timeout=60)
    parts = [[w.split("\t")[0] for w in p.split("\n") if w] for p in r.stdout.split("---\n")]
    assert [sorted(p) for p in parts] == [["start", "status", "stderr", "stdout", "stop"], ["alpha"],
                                          ["--wait=cloud-init", "--wait=ssh"], ["disk"]], r.stdout + r.stderr


def test_zsh_completion_offers_what_bash_does(qqmgr, tmp_path):
    import shutil
    if not shutil.which("zsh"):
        pytest.skip("zsh is not installed (tools/deps.sh installs it)")
    (tmp_path / "qqmgr.toml").write_text(f'[vm.alpha]\ncmd = ["{BARE}"]\n[img.disk]\nbuilder = "raw"\nimg_size = "1M"\n')
    script = ('autoload -U compinit && compinit -u -d "$HOME/.zcd"; source <(qqmgr completion zsh); '
              'compadd() { shift; print -l -- "$@"; }; _files() { print FILES; }; '
              'words=(qqmgr img build ""); CURRENT=4; _qqmgr; print -- ---; '
              'words=(qqmgr put alpha ""); CURRENT=4; _qqmgr; print -- ---; '
              'words=(qqmgr start alpha --wait=); CURRENT=4; _qqmgr')
    r = subprocess.run(["zsh", "-f", "-c", script], cwd=tmp_path, env=shell_env(qqmgr, tmp_path),
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.split("---\n") == ["disk\n", "FILES\n", "--wait=ssh\n--wait=cloud-init\n"], r.stdout + r.stderr


def test_completion_after_restore_offers_the_vms_snapshots_in_every_shell(qqmgr, tmp_path):
    import shutil
    # a guestless VM with a qcow2 disk: saved snapshots without booting anything
    (tmp_path / "qqmgr.toml").write_text(
        '[img.d]\nbuilder = "raw"\nformat = "qcow2"\nimg_size = "16M"\n'
        f'[vm.alpha]\ncmd = ["{BARE}", "-drive file={{{{.img.d}}}},format=qcow2,if=virtio"]\n'
        f'[vm.beta]\ncmd = ["{BARE}"]\n')
    assert qq(qqmgr, "img", "build", "d", cwd=tmp_path).returncode == 0
    assert qq(qqmgr, "start", "alpha", cwd=tmp_path).returncode == 0
    try:
        for name in ("ready", "other"):
            r = qq(qqmgr, "snapshot", "save", "alpha", name, cwd=tmp_path)
            assert r.returncode == 0, r.stderr
    finally:
        qq(qqmgr, "stop", "alpha", "--force", cwd=tmp_path)
    c = lambda *w: bash_complete(qqmgr, tmp_path, *w)
    assert c("start", "alpha", "--restore", "") == ["ready", "other"]
    assert c("run", "alpha", "--restore", "o") == ["other"]
    assert not {"ready", "other"} & set(c("start", "beta", "--restore", ""))   # beta has none
    assert c("snapshot", "delete", "alpha", "") == ["ready", "other"]
    if shutil.which("fish"):
        r = subprocess.run(["fish", "-c", 'qqmgr completion fish | source; complete -C "qqmgr start alpha --restore "'],
                           cwd=tmp_path, env=shell_env(qqmgr, tmp_path), capture_output=True, text=True, timeout=60)
        assert sorted(w.split("\t")[0] for w in r.stdout.split("\n") if w) == ["other", "ready"], r.stdout + r.stderr
    if shutil.which("zsh"):
        script = ('autoload -U compinit && compinit -u -d "$HOME/.zcd"; source <(qqmgr completion zsh); '
                  'compadd() { shift; print -l -- "$@"; }; _files() { print FILES; }; '
                  'words=(qqmgr run alpha --restore ""); CURRENT=5; _qqmgr')
        r = subprocess.run(["zsh", "-f", "-c", script], cwd=tmp_path, env=shell_env(qqmgr, tmp_path),
                           capture_output=True, text=True, timeout=60)
        assert r.stdout == "ready\nother\n", r.stdout + r.stderr


def test_completion_scripts_for_zsh_and_fish_call_the_hidden_command(qqmgr):
    for shell in ("zsh", "fish"):
        r = qq(qqmgr, "completion", shell)
        assert r.returncode == 0 and "__complete" in r.stdout
    r = qq(qqmgr, "completion", "tcsh")
    assert r.returncode == 2 and "expected bash, zsh or fish" in r.stderr
    assert "__complete" not in qq(qqmgr, "--help").stdout


def test_meson_install_puts_the_program_man_page_and_completions_in_place(qqmgr, tmp_path):
    build = Path(qqmgr).parent
    if not (build / "build.ninja").exists():
        pytest.skip("qqmgr is not in a meson build dir")
    r = subprocess.run(["meson", "install", "-C", str(build), "--no-rebuild", "--destdir", str(tmp_path / "d")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    files = {str(p.relative_to(tmp_path / "d")) for p in (tmp_path / "d").rglob("*") if p.is_file()}
    ends = ["/bin/qqmgr", "/share/bash-completion/completions/qqmgr", "/share/zsh/site-functions/_qqmgr",
            "/share/fish/vendor_completions.d/qqmgr.fish"]
    # the man page is installed when the build was configured with scdoc (its
    # target exists), whatever is on PATH now
    targets = json.loads((build / "meson-info" / "intro-targets.json").read_text())
    if any(t["name"] == "qqmgr.1" for t in targets):
        ends.append("/share/man/man1/qqmgr.1")
    for e in ends:
        assert any(f.endswith(e) for f in files), (e, files)
    bash = next(tmp_path / "d" / f for f in files if f.endswith("completions/qqmgr"))
    assert bash.read_text() == qq(qqmgr, "completion", "bash").stdout


def test_every_command_and_option_of_the_table_is_in_readme_reference_and_man_page(qqmgr):
    readme = (REPO / "README.md").read_text()
    ref = (REPO / "docs" / "reference.md").read_text()
    man = (REPO / "docs" / "qqmgr.1.scd").read_text()
    missing = []
    for name, synopsis in commands(qqmgr):
        if f"`{name}" not in readme:
            missing.append(f"README: {name}")
        if f"`{name}" not in ref:
            missing.append(f"reference: {name}")
        first, _, second = name.partition(" ")
        if f"*{name}*" not in man and (f"*{first}*" not in man or (second and f"*{second}*" not in man)):
            missing.append(f"man: {name}")
        for opt in set(re.findall(r"--[a-z][a-z-]*", qq(qqmgr, *name.split(), "-h").stdout)) - {"--help", "--json"}:
            if opt not in ref:
                missing.append(f"reference: {name} {opt}")
            if f"*{opt}*" not in man and opt not in man:
                missing.append(f"man: {name} {opt}")
    assert not missing, missing


def test_completion_offers_the_snapshots_of_the_vm_on_the_line(project):
    project.write(f'[vm.bare]\ncmd = ["{BARE}"]\n')
    project.run("start", "bare", check=True)
    try:
        project.run("snapshot", "save", "bare", "first", check=True)
        project.run("snapshot", "save", "bare", "second", check=True)
    finally:
        project.run("stop", "bare", "--force", check=True)
    words = bash_complete(project.qqmgr, project.path, "snapshot", "restore", "bare", "")
    assert words == ["first", "second"]
    assert bash_complete(project.qqmgr, project.path, "snapshot", "delete", "bare", "s") == ["second"]


def test_json_help_names_every_key_of_the_document_in_its_order(qqmgr, tmp_path):
    # what `CMD -h` says --json prints is what it prints, key for key in the same order
    # (checked where no guest is needed)
    (tmp_path / "qqmgr.toml").write_text(f'[vm.v]\ncmd = ["{BARE}"]\n[vm.v.ssh]\nport = 2222\n')

    def helped(*cmd):
        line = re.search(r"^  --json +(?:an array of )?\{(.*)\}$", qq(qqmgr, *cmd, "-h").stdout, re.M).group(1)
        return [k.strip() for k in line.split(",")]

    def doc(*args, cwd=tmp_path):
        r = qq(qqmgr, *args, "--json", cwd=cwd)
        assert r.returncode == 0, (args, r.stderr)
        d = json.loads(r.stdout)
        return list(d[0] if isinstance(d, list) else d)

    for args in (["show", "v"], ["ssh-config", "v"], ["list"]):
        assert helped(*args[:1]) == doc(*args), args
    try:
        assert helped("start") == doc("start", "v")
        assert helped("snapshot", "save") == doc("snapshot", "save", "v", "s")
        assert helped("snapshot", "list") == doc("snapshot", "list", "v")
    finally:
        assert helped("stop") == doc("stop", "v", "--force")
    e = tmp_path / "init"
    e.mkdir()
    assert helped("init") == doc("init", cwd=e)


def test_init_starter_drives_stay_one_argument_in_a_config_dir_with_spaces(qqmgr, tmp_path):
    # {{.img.NAME}} renders to a path under the config's dir; cmd entries are split at
    # white space, so the starter quotes the -drive values
    d = tmp_path / "my vms"
    d.mkdir()
    assert qq(qqmgr, "init", cwd=d).returncode == 0
    argv = json.loads(qq(qqmgr, "show", "dev", "--json", cwd=d).stdout)["argv"]
    drives = [argv[i + 1] for i, a in enumerate(argv) if a == "-drive"]
    assert drives == [f"file={d}/.qqmgr/img.debian/disk.qcow2,if=virtio,format=qcow2",
                      f"file={d}/.qqmgr/img.data/disk.qcow2,if=virtio,format=qcow2"], argv


def test_an_unknown_vm_is_named_with_the_nearest_and_the_existing_ones_by_every_command(qqmgr, tmp_path):
    (tmp_path / "qqmgr.toml").write_text(f'[vm.web]\ncmd = ["{BARE}"]\n[vm.db]\ncmd = ["{BARE}"]\n')
    for args in (["snapshot", "list", "wbe"], ["snapshot", "save", "wbe", "s"], ["ssh-keys", "reset", "wbe"],
                 ["status", "wbe"], ["ssh", "wbe"]):
        r = qq(qqmgr, *args, cwd=tmp_path)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr == 'qqmgr: qqmgr.toml: no VM named "wbe"; did you mean "web"? (VMs: web, db)\n', args


@pytest.mark.parametrize("args, line", [
    (["-x", "list"], "qqmgr: unknown option '-x' (see qqmgr -h)"),
    (["-dx", "list"], "qqmgr: unknown option '-x' (see qqmgr -h)"),
    (["--bogus", "list"], "qqmgr: unknown option '--bogus' (see qqmgr -h)"),
    (["-c"], "qqmgr: -c needs a value (see qqmgr -h)"),
    (["--config"], "qqmgr: --config needs a value (see qqmgr -h)"),
    (["--json=1", "list"], "qqmgr: --json takes no value (see qqmgr -h)"),
])
def test_a_bad_global_option_is_one_line_naming_it(qqmgr, args, line):
    r = qq(qqmgr, *args)
    assert (r.returncode, r.stderr, r.stdout) == (2, line + "\n", "")


def test_hints_carry_the_c_of_the_command_line(qqmgr, tmp_path):
    # every suggested command is copy-pasteable as given: with -c when one was given
    d = tmp_path / "my vms"
    d.mkdir()
    cfg = d / "lab.toml"
    cfg.write_text(f'[vm.v]\ncmd = ["{BARE}"]\n[vm.v.ssh]\nport = "auto"\n')
    cli = f"qqmgr -c '{cfg}'"

    def err(*args):
        r = qq(qqmgr, "-c", str(cfg), *args, cwd=tmp_path)
        assert r.returncode != 0, args
        return r.stderr

    for args in (["events", "v"], ["forward", "v", "list"], ["gdb", "v", "--guest"], ["trace", "v", "list"]):
        assert f"{cli} start v" in err(*args), args
    # one "not running" message for every command (app/running.h)
    assert f"start it: {cli} start v)" in err("snapshot", "save", "v", "s")
    assert f"start it: {cli} start v --restore s)" in err("snapshot", "restore", "v", "s")
    assert qq(qqmgr, "-c", str(cfg), "start", "v", cwd=tmp_path).returncode == 0
    try:
        assert f"`{cli} snapshot restore v s`" in err("start", "v", "--restore", "s")
        assert f"`{cli} ssh v COMMAND...`" in err("run", "v", "--", "true")
        assert f"`{cli} trace v list`" in err("trace", "v", "on", "no_such_event_xyz")
        assert f"`{cli} stop v` stops it" in err("wait", "v", "--timeout", "1")
    finally:
        qq(qqmgr, "-c", str(cfg), "stop", "v", "--force", cwd=tmp_path)


def test_debug_echoes_of_ssh_and_qemu_img_are_shell_quoted_and_copy_pasteable(qqmgr, tmp_path):
    # a config in a directory with a space: the paths in the echoes need quoting, and so
    # does a remote word with a space
    d = tmp_path / "my dir"
    d.mkdir()
    cfg = d / "qqmgr.toml"
    cfg.write_text('[img.disk]\nbuilder = "raw"\nimg_size = "1M"\n\n'
                   f'[vm.v]\ncmd = ["{BARE} -netdev user,id=n,hostfwd=tcp:127.0.0.1:{{{{.vm.ssh.port}}}}-:22 '
                   f'-device virtio-net,netdev=n"]\n[vm.v.ssh]\nport = "auto"\n')
    r = subprocess.run([qqmgr, "-c", str(cfg), "-d", "img", "build", "disk"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    echo = [line for line in r.stderr.splitlines() if line.startswith("+ qemu-img ")]
    assert echo, r.stderr
    argv = shlex.split(echo[0][2:])
    assert argv[:2] == ["qemu-img", "create"] and any(a.startswith(str(d)) for a in argv), echo[0]
    # a VM whose ssh port leads nowhere: -d shows the ssh line before ssh runs
    subprocess.run([qqmgr, "-c", str(cfg), "start", "v"], check=True, capture_output=True, timeout=60)
    try:
        p = subprocess.Popen([qqmgr, "-c", str(cfg), "-d", "ssh", "v", "--", "echo", "two words", "it's"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = p.stderr.readline()
        p.kill()
        p.communicate()
    finally:
        subprocess.run([qqmgr, "-c", str(cfg), "stop", "v", "--force"], capture_output=True, timeout=60)
    assert line.startswith("+ ssh "), line
    argv = shlex.split(line[2:])
    assert argv[0] == "ssh" and argv[1] == "-F" and argv[2].startswith(str(d)), line
    assert argv[-4:] == ["--", "echo", "two words", "it's"], line


def test_docs_and_code_link_nothing_outside_the_repository():
    """A clone is whole: every relative link in the Markdown docs names a file of the
    repository, and no file cites a design document or shared folder a clone lacks."""
    import os
    bad = []
    for md in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", md.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (md.parent / target.split("#")[0]).resolve()
            if not path.is_relative_to(REPO.resolve()) or not path.exists():
                bad.append(f"{md.relative_to(REPO)}: ({target})")
    for top in ("src", "docs", "tests", "bench", "examples", "tools", "README.md"):
        root = REPO / top
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for f in files:
            if f.suffix not in (".c", ".h", ".py", ".sh", ".md", ".scd", ".build", ".toml", ".tpl", ""):
                continue
            text = f.read_text(errors="replace")
            for needle in ("DESIGN.md", "../shared", "/work/"):
                if needle in text and f.name != os.path.basename(__file__):
                    bad.append(f"{f.relative_to(REPO)}: {needle}")
    assert not bad, bad


def _includes(src):
    """(file's layer, file's module, included layer, included module) for every
    #include "…" under src/ (main.c is the cli layer, like src/cmd)."""
    for f in sorted(src.rglob("*.[ch]")):
        rel = f.relative_to(src).parts
        layer = rel[0] if len(rel) > 1 else "cmd"
        for inc in re.findall(r'#include "([^"]+)"', f.read_text()):
            tgt = (f.parent / inc).resolve().relative_to(src.resolve()).parts
            yield layer, f.stem, tgt[0] if len(tgt) > 1 else "cmd", _stem(tgt[-1])


def _stem(name):
    return name.rsplit(".", 1)[0]


def test_layers_include_only_downward_and_src_app_has_no_include_cycle():
    """cli → app → infra → base: a layer includes only those below it, and the modules
    of src/app include each other without a cycle (docs/design.md, Layers)."""
    rank = {"base": 0, "infra": 1, "app": 2, "cmd": 3}
    edges, upward = {}, []
    for layer, mod, tlayer, tmod in _includes(REPO / "src"):
        if rank[tlayer] > rank[layer]:
            upward.append(f"{layer}/{mod} includes {tlayer}/{tmod}")
        if layer == tlayer == "app" and mod != tmod:
            edges.setdefault(mod, set()).add(tmod)
    assert not upward, upward
    cycles, state, path = [], {}, []

    def visit(u):
        state[u] = 1
        path.append(u)
        for v in sorted(edges.get(u, ())):
            if state.get(v) == 1:
                cycles.append(" → ".join(path[path.index(v):] + [v]))
            elif not state.get(v):
                visit(v)
        path.pop()
        state[u] = 2

    for u in sorted(edges):
        if not state.get(u):
            visit(u)
    assert not cycles, cycles


def test_the_design_documents_module_map_names_every_module():
    """docs/design.md's module map names every module of src/app, src/infra and src/base
    (a header each), so a new module cannot go unmentioned."""
    design = (REPO / "docs" / "design.md").read_text()
    missing = [str(h.relative_to(REPO)) for layer in ("app", "infra", "base")
               for h in sorted((REPO / "src" / layer).glob("*.h"))
               if not re.search(rf"`{re.escape(h.stem)}(\.h)?`", design)]
    assert not missing, missing
