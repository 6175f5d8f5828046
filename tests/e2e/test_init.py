"""`qqmgr init`: the starter config, its own ssh key when the user has none, and the
image catalogue (`init --template NAME`, `init --list`) kept in data/images.toml."""

import json
import os
import re
import stat
import subprocess
import tomllib

import pytest

from conftest import REPO

CATALOGUE = REPO / "data" / "images.toml"
KEYS = ("title", "image", "url", "sha256", "sha512", "sums", "source", "user", "qemu_args")
ZERO = "0" * 64


def qq(qqmgr, *args, cwd=None, home=None):
    env = dict(os.environ)
    if home is not None:
        env["HOME"] = str(home)
    return subprocess.run([qqmgr, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          stdin=subprocess.DEVNULL, timeout=60)


def entries():
    return tomllib.loads(CATALOGUE.read_text())


# ------------------------------------------------------------------ the catalogue

def test_every_catalogue_entry_is_well_formed_and_says_where_its_sum_came_from():
    cat = entries()
    assert {"debian-12", "debian-13", "ubuntu-24.04", "fedora-44", "alpine-3.23", "arch"} <= set(cat)
    for name, e in cat.items():
        assert re.fullmatch(r"[a-z0-9][a-z0-9.-]*", name), name
        assert sorted(e) == sorted(KEYS), name
        assert all(isinstance(e[k], str) for k in KEYS), name
        # a name usable as {{.img.NAME}} (no '-' or '.')
        assert re.fullmatch(r"[a-z][a-z0-9_]*", e["image"]), name
        # pinned: https, a dated file, never a moving "latest"/"current"/"daily" link
        assert e["url"].startswith("https://") and " " not in e["url"], name
        assert not re.search(r"/(latest|current|daily)/|-latest|-daily", e["url"]), name
        assert re.search(r"20\d{6}|\d+\.\d+", e["url"]), name
        # exactly one upstream sum: sha256 (what qqmgr checks), or the sha512 upstream
        # publishes instead; never an invented or placeholder sum
        assert bool(e["sha256"]) != bool(e["sha512"]), name
        if e["sha256"]:
            assert re.fullmatch(r"[0-9a-f]{64}", e["sha256"]) and e["sha256"] != ZERO, name
        else:
            assert re.fullmatch(r"[0-9a-f]{128}", e["sha512"]), name
            assert "no sha256" in e["source"], name
        assert e["sums"].startswith("https://"), name
        assert "lima-vm/lima" in e["source"] and re.search(r"commit [0-9a-f]{7,}", e["source"]), name
        assert e["title"] and e["user"], name
    sums = [e["sha256"] or e["sha512"] for e in cat.values()]
    assert len(set(sums)) == len(sums)


def test_init_list_shows_the_compiled_in_catalogue(qqmgr, tmp_path):
    r = qq(qqmgr, "init", "--list", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)
    assert [d.pop("name") for d in listed] == list(entries())
    assert listed == list(entries().values())
    r = qq(qqmgr, "init", "--list", cwd=tmp_path)
    assert r.returncode == 0
    rows = r.stdout.splitlines()
    assert rows[0].split() == ["NAME", "SUM", "IMAGE"]
    assert [l.split()[0] for l in rows[1:len(entries()) + 1]] == list(entries())
    assert list(tmp_path.iterdir()) == []   # --list writes nothing


@pytest.mark.parametrize("name", list(entries()))
def test_init_template_writes_a_config_for_that_image(qqmgr, tmp_path, name):
    e = entries()[name]
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519.pub").write_text("ssh-ed25519 AAAAC3Nza me@host\n")
    d = tmp_path / "p"
    d.mkdir()
    r = qq(qqmgr, "init", "--template", name, "--json", cwd=d, home=home)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["template"] == name
    cfg = tomllib.loads((d / "qqmgr.toml").read_text())
    img = cfg["img"][e["image"]]
    assert img["base_img"]["url"] == e["url"]
    # upstream's published sum, whichever it publishes; never a placeholder to fill in
    if e["sha256"]:
        assert img["base_img"]["sha256sum"] == e["sha256"] and "sha512sum" not in img["base_img"]
    else:
        assert img["base_img"]["sha512sum"] == e["sha512"] and "sha256sum" not in img["base_img"]
    assert ZERO not in (d / "qqmgr.toml").read_text()
    assert e["sums"] in (d / "qqmgr.toml").read_text()
    assert cfg["vm"]["dev"]["ssh"]["User"] == e["user"]
    for a in e["qemu_args"].split():
        assert a in img["build_args"] and a in " ".join(cfg["vm"]["dev"]["cmd"])
    imgs = {i["name"]: i["builder"] for i in json.loads(qq(qqmgr, "img", "list", "--json", cwd=d).stdout)}
    assert imgs == {e["image"]: "cloud-init", "data": "raw"}
    r = qq(qqmgr, "show", "dev", "--json", cwd=d)
    assert r.returncode == 0, r.stderr
    assert f"img.{e['image']}/disk.qcow2" in " ".join(json.loads(r.stdout)["argv"])


def test_completion_after_init_template_offers_the_catalogue(qqmgr, tmp_path):
    from test_cli import bash_complete
    assert bash_complete(qqmgr, tmp_path, "init", "--template", "") == list(entries())
    assert bash_complete(qqmgr, tmp_path, "init", "--template", "deb") == ["debian-12", "debian-13"]


def test_init_unknown_template_is_a_usage_error_naming_the_templates(qqmgr, tmp_path):
    r = qq(qqmgr, "init", "--template", "debian-14", cwd=tmp_path)
    assert r.returncode == 2
    assert 'no template "debian-14"; did you mean "debian-12"?' in r.stderr and "arch" in r.stderr
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ the starter

def test_starter_is_snapshot_ready_and_its_build_boot_has_the_vms_network(qqmgr, tmp_path):
    # every writable disk qcow2 (a raw one cannot hold snapshots: snapshot save failed),
    # and the customisation boot gets the same network card as cmd
    r = qq(qqmgr, "init", cwd=tmp_path, home=tmp_path)
    assert r.returncode == 0, r.stderr
    argv = json.loads(qq(qqmgr, "show", "dev", "--json", cwd=tmp_path).stdout)["argv"]
    drives = [argv[i + 1] for i, a in enumerate(argv) if a == "-drive"]
    assert len(drives) == 2 and all("format=qcow2" in d and "readonly" not in d for d in drives), drives
    assert qq(qqmgr, "img", "build", "data", cwd=tmp_path).returncode == 0
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json",
                                      str(tmp_path / ".qqmgr" / "img.data" / "disk.qcow2")],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["format"] == "qcow2"
    cfg = tomllib.loads((tmp_path / "qqmgr.toml").read_text())
    ba = cfg["img"]["debian"]["build_args"]
    cmd = " ".join(cfg["vm"]["dev"]["cmd"])
    assert ba[ba.index("-device") + 1] == "virtio-net-pci,netdev=n0" and "-device virtio-net-pci,netdev=n0" in cmd
    assert ba[ba.index("-netdev") + 1].startswith("user,id=n0") and "-netdev user,id=n0," in cmd


def test_starter_without_an_ssh_key_makes_one_for_the_config_and_says_so(qqmgr, tmp_path):
    home = tmp_path / "home"   # no ~/.ssh at all
    home.mkdir()
    d = tmp_path / "p"
    d.mkdir()
    r = qq(qqmgr, "init", cwd=d, home=home)
    assert r.returncode == 0, r.stderr
    key = d / ".qqmgr" / "keys" / "id_ed25519"
    assert f"made the config's own ssh key {key}" in r.stdout
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    pub = (d / ".qqmgr" / "keys" / "id_ed25519.pub").read_text().strip()
    assert pub.startswith("ssh-ed25519 ")
    cfg = tomllib.loads((d / "qqmgr.toml").read_text())
    assert cfg["img"]["debian"]["env"]["pubkey"] == pub
    assert cfg["vm"]["dev"]["ssh"]["IdentityFile"] == ".qqmgr/keys/id_ed25519"
    # prune keeps it: the key is the config's, not a VM's or an image's
    assert qq(qqmgr, "prune", cwd=d, home=home).returncode == 0 and key.exists()
    # the private half really is the public one's
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(key)], capture_output=True, text=True, check=True)
    assert derived.stdout.split()[:2] == pub.split()[:2]
    (d / "qqmgr.toml").rename(d / "starter.toml")
    for f in ("user-data.tpl", "meta-data.tpl"):
        (d / f).unlink()
    # init again (the config was moved away): the config's key is kept, not replaced
    r = qq(qqmgr, "init", "--json", cwd=d, home=home)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["pubkey_found"] is False and doc["key"] == str(key) and doc["key_made"] is False
    assert (d / ".qqmgr" / "keys" / "id_ed25519.pub").read_text().strip() == pub
    # -c sub/other.toml: its own state dir, its own key
    (d / "sub").mkdir()
    r = qq(qqmgr, "-c", "sub/other.toml", "init", cwd=d, home=home)
    assert r.returncode == 0, r.stderr
    other = tomllib.loads((d / "sub" / "other.toml").read_text())
    assert other["vm"]["dev"]["ssh"]["IdentityFile"] == ".qqmgr/config.other.toml/keys/id_ed25519"
    assert (d / "sub" / ".qqmgr" / "config.other.toml" / "keys" / "id_ed25519").exists()
    # the state dir made for the key is the config's: later commands use it as theirs
    assert qq(qqmgr, "-c", "sub/other.toml", "img", "build", "data", cwd=d).returncode == 0
    assert (d / "sub" / ".qqmgr" / "config.other.toml" / "img.data" / "disk.qcow2").exists()


def test_starter_says_man_page_needs_meson_install(qqmgr, tmp_path):
    assert qq(qqmgr, "init", cwd=tmp_path, home=tmp_path).returncode == 0
    head = (tmp_path / "qqmgr.toml").read_text().split("\n\n")[0]
    assert "docs/reference.md" in head and "meson install" in head


# ------------------------------------------------------------------ the starter, booted

@pytest.mark.guest
def test_starter_with_its_own_key_builds_boots_and_snapshots(qqmgr, tmp_path, cloud_base):
    """The starter as written, with only what this offline host needs changed: the
    project's Debian cloud base as base_img (a plain local path) and its kernel, since
    that image has no boot loader. Its own key reaches the guest; snapshot save works."""
    import hashlib
    from conftest import ACCEL, reap_qemu_under
    home = tmp_path / "home"   # no ~/.ssh: the config's own key
    home.mkdir()
    d = tmp_path / "p"
    d.mkdir()
    assert qq(qqmgr, "init", cwd=d, home=home).returncode == 0
    base = d / "images" / "base.qcow2"
    base.parent.mkdir()
    os.symlink(cloud_base / "base.qcow2", base)
    kernel = (f"-kernel {cloud_base / 'vmlinuz'} -initrd {cloud_base / 'initrd.img'} "
              "-append 'root=/dev/vda rw console=ttyS0'")
    text = (d / "qqmgr.toml").read_text()
    sha = hashlib.sha512(base.read_bytes()).hexdigest()   # debian-12 carries Debian's sha512
    text = (text.replace(re.search(r'^url = ".*"$', text, re.M).group(0), 'url = "images/base.qcow2"')
                .replace(re.search(r'^sha512sum = ".*"$', text, re.M).group(0), f'sha512sum = "{sha}"')
                .replace('"-accel kvm -accel tcg -m 1024 -smp 2 -display none"',
                         f'"-accel {ACCEL} -m 768 -smp 2 -display none {kernel}"')
                .replace('build_args = ["-accel", "kvm", "-accel", "tcg", "-m", "1024",',
                         f'build_args = ["-accel", "{ACCEL}", "-m", "768", '
                         + ", ".join(json.dumps(a) for a in [
                             "-kernel", str(cloud_base / "vmlinuz"), "-initrd", str(cloud_base / "initrd.img"),
                             "-append", "root=/dev/vda rw console=ttyS0"]) + ","))
    (d / "qqmgr.toml").write_text(text)

    def run(*args, timeout=900):
        r = subprocess.run([qqmgr, *args], capture_output=True, text=True, cwd=d, timeout=timeout,
                           env=dict(os.environ, HOME=str(home)), stdin=subprocess.DEVNULL)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r

    try:
        run("img", "build", "debian")
        run("img", "build", "data")
        run("start", "dev", "--wait", "--timeout", "600")
        assert run("ssh", "dev", "id -un").stdout.strip() == "debian"
        run("snapshot", "save", "dev", "ready")
        assert [s["name"] for s in json.loads(run("snapshot", "list", "dev", "--json").stdout)] == ["ready"]
    finally:
        subprocess.run([qqmgr, "stop", "dev", "--force"], cwd=d, capture_output=True, timeout=120)
        reap_qemu_under(d)


def test_init_writes_all_or_nothing_a_dangling_symlink_counts_as_a_file(tmp_path, qqmgr):
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519.pub").write_text("ssh-ed25519 AAAAC3Nza me@host\n")
    d = tmp_path / "p"
    d.mkdir()
    (d / "meta-data.tpl").symlink_to(tmp_path / "nowhere")
    r = qq(qqmgr, "init", cwd=d, home=home)
    assert r.returncode == 1
    assert "meta-data.tpl exists already" in r.stderr and "nothing written" in r.stderr
    assert sorted(p.name for p in d.iterdir()) == ["meta-data.tpl"]
    assert not (tmp_path / "nowhere").exists()
