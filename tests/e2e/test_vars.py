"""Variables resolved by the template engine itself (issue 9 bug 1): every construct
that reads a variable sees its resolved value, as Go's text/template would over the
fully resolved data; cycles are only real ones, named with their chain and place.

Run: QQ_BUILD_DIR=build /usr/bin/python3 -m pytest tests/e2e/test_vars.py
"""
import json
import re
import subprocess
from pathlib import Path

import pytest

from test_tmpl_vs_go import gotmpl  # noqa: F401 (the Go reference renderer, built once)

ROOT = Path(__file__).resolve().parents[2]

# The config's vars; RESOLVED is the same data with every var resolved by hand:
# what Go's template sees, when run over it, for each construct below.
VARS = """
[vars]
b = "B"
a = "{{ .b }}a"
c = "{{ with .vm }}{{ .x }}{{ end }}"
d = "{{ .c }}-{{ .a }}"
e = "{{ .d }}+{{ index .vm \\"x\\" }}"
list = ["{{ .b }}1", "two", "{{ .a }}3"]
[vars.ns]
one = "1"
other = "{{ .ns.one }}o"
self = "{{ .ns.other }}-{{ .b }}"
[vm.v]
cmd = ["-name '{{ .OUT }}'"]
[vm.v.vars]
x = "{{ .b }}X"
y = "{{ .vm.x }}y"
"""

RESOLVED = {
    "b": "B", "a": "Ba", "c": "BX", "d": "BX-Ba", "e": "BX-Ba+BX",
    "list": ["B1", "two", "Ba3"],
    "ns": {"one": "1", "other": "1o", "self": "1o-B"},
    "vm": {"x": "BX", "y": "BXy", "ssh": {"vm_port": 22}},
    "img": {},
}

CONSTRUCTS = {
    "with": "{{ with .vm }}{{ .x }}{{ end }}",
    "chain_var": "{{ .c }}",
    "depth_4": "{{ .e }}",
    "vm_var_of_vm_var": "{{ .vm.y }}",
    "ns_reads_ns": "{{ .ns.self }}",
    "index": '{{ index .vm "y" }}/{{ index .ns "other" }}/{{ index .list 2 }}',
    "variable": "{{ $v := .d }}{{ $v }}{{ $w := .vm }}{{ $w.x }}",
    "parens": "{{ (.a) }}{{ (index .vm \"x\") }}",
    "pipeline": '{{ .a | printf "%s!" }}{{ .vm.x | len }}',
    "len": "{{ len .e }}",
    "range_map": "{{ range $k, $v := .ns }}{{ $k }}={{ $v }};{{ end }}",
    "range_list": "{{ range .list }}[{{ . }}]{{ end }}",
    "print_map": "{{ print .ns }}",
    "printf_v": '{{ printf "%v" .list }}',
    "template": '{{ define "t" }}<{{ .a }}{{ .vm.y }}>{{ end }}{{ template "t" . }}',
    "block": '{{ block "b" .vm }}{{ .y }}{{ end }}',
    "eq": '{{ if eq .a "Ba" }}yes{{ else }}no{{ end }}',
    "and_or": "{{ and .a .c }}{{ or .b .c }}",
    "dollar": "{{ with .ns }}{{ $.d }}{{ end }}",
    "slice": "{{ slice .d 0 2 }}",
}


def config(tmp_path, out):
    (tmp_path / "qqmgr.toml").write_text(VARS.replace("{{ .OUT }}", out))


def qq(qqmgr, tmp_path, *args):
    return subprocess.run([qqmgr, *args], cwd=tmp_path, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("name", sorted(CONSTRUCTS))
def test_every_construct_sees_resolved_vars_as_go_does(qqmgr, tmp_path, gotmpl, name):
    text = CONSTRUCTS[name]
    (tmp_path / "t.tmpl").write_text(text)
    (tmp_path / "d.json").write_text(json.dumps(RESOLVED))
    go = subprocess.run([str(gotmpl), str(tmp_path / "t.tmpl"), str(tmp_path / "d.json")],
                        capture_output=True, text=True, timeout=60)
    assert go.returncode == 0, go.stderr
    assert "'" not in go.stdout and "{{" not in go.stdout
    config(tmp_path, text.replace('"', '\\"'))
    r = qq(qqmgr, tmp_path, "show", "v", "--json")
    assert r.returncode == 0, r.stderr
    argv = json.loads(r.stdout)["argv"]
    assert argv[1:3] == ["-name", go.stdout], (text, go.stdout)


def test_var_with_with_and_vm_var_reaches_qemu_resolved(qqmgr, tmp_path):
    # the issue's case: raw "{{ .b }}X" reached QEMU's argv before
    config(tmp_path, "{{ .c }}")
    r = qq(qqmgr, tmp_path, "show", "v", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["argv"][1:3] == ["-name", "BX"]


CYCLES = [
    ("self", '[vars]\na = "x{{ .a }}"\n', r"qqmgr\.toml:2:\d+: vars\.a: variable cycle: vars\.a -> vars\.a$"),
    ("three", '[vars]\na = "{{ .b }}"\nb = "{{ .c }}"\nc = "{{ .a }}"\n',
     r"qqmgr\.toml:2:\d+: vars\.a: variable cycle: vars\.a -> vars\.b -> vars\.c -> vars\.a$"),
    ("through_with_and_vm", '[vars]\na = "{{ with .vm }}{{ .y }}{{ end }}"\n',
     r"qqmgr\.toml:2:\d+: vars\.a: variable cycle: vars\.a -> vm\.v\.vars\.y -> vars\.a$"),
    ("ns_printing_itself", '[vars.ns]\nk = "{{ print .ns }}"\n',
     r"qqmgr\.toml:2:\d+: vars\.ns\.k: variable cycle: vars\.ns\.k -> vars\.ns\.k$"),
    ("range_over_vm", '[vars]\na = "{{ range .vm }}{{ . }}{{ end }}"\n',
     r"variable cycle: vars\.a -> vm\.v\.vars\.y -> vars\.a$"),
]


@pytest.mark.parametrize("name,vars_text,pattern", CYCLES, ids=[c[0] for c in CYCLES])
def test_real_cycles_are_named_with_their_chain_and_place(qqmgr, tmp_path, name, vars_text, pattern):
    use = "{{ .ns.k }}" if name == "ns_printing_itself" else "{{ .a }}"
    (tmp_path / "qqmgr.toml").write_text(vars_text + f'[vm.v]\ncmd = ["-name {use}"]\n'
                                         '[vm.v.vars]\ny = "{{ $.a }}"\n')
    r = qq(qqmgr, tmp_path, "show", "v")
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert re.search(pattern, lines[0]), lines[0]


def test_an_error_inside_a_var_names_that_var(qqmgr, tmp_path):
    (tmp_path / "qqmgr.toml").write_text('[vars]\na = "{{ .b }}"\nb = "x{{ .nope }}"\n'
                                         '[vm.v]\ncmd = ["-name {{ .a }}"]\n')
    r = qq(qqmgr, tmp_path, "show", "v")
    assert r.returncode == 2
    assert re.match(r'qqmgr: qqmgr\.toml:3:\d+: vars\.b: .*"nope"', r.stderr), r.stderr


def test_unused_var_in_a_namespace_reading_its_namespace_is_no_cycle(qqmgr, tmp_path):
    (tmp_path / "qqmgr.toml").write_text('[vars.ns]\nbase = "/srv"\ndisk = "{{ .ns.base }}/d.img"\n'
                                         '[vm.v]\ncmd = ["-drive file={{ .ns.disk }}"]\n')
    r = qq(qqmgr, tmp_path, "show", "v", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["argv"][1:3] == ["-drive", "file=/srv/d.img"]


def test_images_read_through_vars_are_the_images_the_vm_uses(qqmgr, tmp_path):
    (tmp_path / "qqmgr.toml").write_text(
        '[vars]\nd = "{{ with .img }}{{ .one }}{{ end }}"\nunused = "{{ .img.two }}"\n'
        '[vm.v]\ncmd = ["-drive file={{ .d }}"]\n'
        '[img.one]\nbuilder = "raw"\nimg_size = "1M"\n[img.two]\nbuilder = "raw"\nimg_size = "1M"\n')
    r = qq(qqmgr, tmp_path, "show", "v", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["images"] == ["one"]
    assert doc["argv"][2].endswith("/img.one/disk.raw")


# TOML has nan and inf floats, JSON has not: the Go renderer reads {"$float": "nan"}.
NONFINITE_VARS = """
[vars]
x = nan
p = inf
n = -inf
a = [nan, inf, -inf, 1.5]
t = { v = nan, w = "{{ .n }}" }
r = "{{ .x }}/{{ .p }}"
[vm.v]
cmd = ["'{{ .OUT }}'"]
[vm.v.vars]
y = -nan
"""
NONFINITE_DATA = {
    "x": {"$float": "nan"}, "p": {"$float": "inf"}, "n": {"$float": "-inf"},
    "a": [{"$float": "nan"}, {"$float": "inf"}, {"$float": "-inf"}, 1.5],
    "t": {"v": {"$float": "nan"}, "w": "-Inf"}, "r": "NaN/+Inf",
    "vm": {"y": {"$float": "nan"}, "ssh": {"vm_port": 22}}, "img": {},
}
NONFINITE_CONSTRUCTS = {
    "field": "{{ .x }} {{ .p }} {{ .n }} {{ .vm.y }}",
    "array_and_map": "{{ .a }} {{ .t }} {{ print .a }}",
    "var_reading_them": "{{ .r }} {{ .t.w }}",
    "printf": '{{ printf "%v|%f|%.2e|%g|%5.1f|%x|%08.3f|%+v|%-6v|%q" .x .x .p .n .x .p .n .x .x .n }}',
    "truth_and_compare": "{{ if .x }}T{{ end }} {{ eq .x .x }} {{ lt .x 1.0 }} {{ lt .n 1.0 }} {{ eq .p .p }}",
    "index_range": "{{ index .a 0 }}{{ range .a }}<{{ . }}>{{ end }}",
    "print_println": "{{ print .x .p }}{{ println .n }}",
}


@pytest.mark.parametrize("name", sorted(NONFINITE_CONSTRUCTS))
def test_nan_and_inf_vars_render_as_go_renders_them(qqmgr, tmp_path, gotmpl, name):
    # these crashed (heap use after free in config_vm) before
    text = NONFINITE_CONSTRUCTS[name]
    (tmp_path / "t.tmpl").write_text(text)
    (tmp_path / "d.json").write_text(json.dumps(NONFINITE_DATA))
    go = subprocess.run([str(gotmpl), str(tmp_path / "t.tmpl"), str(tmp_path / "d.json")],
                        capture_output=True, text=True, timeout=60)
    assert go.returncode == 0, go.stderr
    assert "'" not in go.stdout
    (tmp_path / "qqmgr.toml").write_text(NONFINITE_VARS.replace("{{ .OUT }}", text.replace('"', '\\"')))
    r = qq(qqmgr, tmp_path, "show", "v", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["argv"][1] == go.stdout, (text, go.stdout)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "[nan]", "{ k = [+inf] }"])
def test_an_unused_nan_or_inf_var_changes_nothing(qqmgr, tmp_path, value):
    (tmp_path / "qqmgr.toml").write_text(f'[vars]\nx = {value}\n[vm.v]\ncmd = ["-m 64"]\n'
                                         f'[vm.v.vars]\nsymbols = "/s"\nz = {value}\n')
    r = qq(qqmgr, tmp_path, "show", "v", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["argv"][1:3] == ["-m", "64"]
    r = qq(qqmgr, tmp_path, "list")
    assert r.returncode == 0, r.stderr


def doubling_vars(n, siblings=0, sibling_of=0):
    """a0 is 64 bytes, a<i> is a<i-1> twice (a<n-1>: 64 << (n-1) bytes); s<k> is
    a<sibling_of> twice, each on its own."""
    lines = ["[vars]", 'a0 = "' + "x" * 64 + '"']
    lines += [f'a{i} = "{{{{.a{i - 1}}}}}{{{{.a{i - 1}}}}}"' for i in range(1, n)]
    lines += [f's{k} = "{{{{.a{sibling_of}}}}}{{{{.a{sibling_of}}}}}"' for k in range(siblings)]
    return "\n".join(lines) + "\n"


def run_measured(argv, cwd):
    """(returncode, stderr, peak RSS in MiB, seconds) of one child, measured by
    GNU time: the rusage of a child pytest forks itself would count pytest's
    own peak (Linux carries the high-water mark of the forking process across
    exec), which grows over a long session."""
    import tempfile
    import time
    with tempfile.NamedTemporaryFile("r") as out:
        t0 = time.monotonic()
        p = subprocess.run(["/usr/bin/time", "-q", "-f", "%M", "-o", out.name, *argv], cwd=cwd,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
        took = time.monotonic() - t0
        rss_kib = int(out.read().split()[-1])
    return p.returncode, p.stderr.decode(errors="replace"), rss_kib / 1024, took


BOMBS = [
    # each var doubles the one before: a39 would be 32 TiB
    ("doubling", doubling_vars(40) + '[vm.v]\ncmd = ["-m 64", "-name {{.a39}}"]\n', r"vars\.a\d+"),
    # 40 vars of 16 MiB each, every one below any per-template cap: together 640 MiB
    ("siblings_add_up", doubling_vars(18, 40, 17) + '[vm.v]\ncmd = ["-name ' +
     "".join(f"{{{{.s{k}}}}}" for k in range(40)) + '"]\n', r"vars\.s\d+"),
    # the entry itself, through a var that fits
    ("entry", doubling_vars(17) + '[vm.v]\ncmd = ["-name ' + "{{.a16}}" * 16 + '"]\n',
     r"vm\.v\.cmd\[0\]"),
    # an ssh value
    ("ssh_value", doubling_vars(40) + '[vm.v]\ncmd = ["-m 64"]\n[vm.v.ssh]\nport = 2222\n'
     'SetEnv = "X={{.a39}}"\n', r"vars\.a\d+"),
]


@pytest.mark.parametrize("name,text,where", BOMBS, ids=[b[0] for b in BOMBS])
def test_vars_that_render_too_much_fail_fast_in_little_memory_naming_the_var(qqmgr, tmp_path, name, text, where):
    # before: one budget per template, checked after each write: the doubling
    # config took 789 MiB and 6.5 s, a longer one 10 GB and 97 s
    (tmp_path / "qqmgr.toml").write_text(text)
    rc, err, rss_mib, took = run_measured([qqmgr, "ssh-config" if name == "ssh_value" else "show", "v"], tmp_path)
    print(f"{name}: peak RSS {rss_mib:.0f} MiB, {took:.2f} s")
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert re.match(r"qqmgr: qqmgr\.toml:\d+:\d+: " + where + r": renders past 64 MiB, the budget of all the text "
                    r"one VM's vars, cmd and ssh values make together$", lines[0]), lines[0]
    assert rss_mib < 300, rss_mib
    assert took < 10, took


def test_a_large_var_within_the_budget_still_renders(qqmgr, tmp_path):
    # 4 MiB, used twice: far beyond any QEMU command line, well within the budget
    (tmp_path / "qqmgr.toml").write_text(doubling_vars(17) + '[vm.v]\ncmd = ["-name {{.a16}}{{.a16}}"]\n')
    r = qq(qqmgr, tmp_path, "show", "v", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["argv"][2] == "x" * (8 << 20)


def test_many_small_vars_fit_the_budget(qqmgr, tmp_path):
    # each template run takes memory of its own (a 64 KiB arena block): the
    # budget counts what the text takes, so 3000 small vars still render
    n = 3000
    (tmp_path / "qqmgr.toml").write_text(
        '[vars]\nb = "x"\n' + "".join(f'v{i} = "{{{{.b}}}}{i}"\n' for i in range(n)) +
        '[vm.v]\ncmd = ["-name ' + "".join(f"{{{{.v{i}}}}}" for i in range(n)) + '"]\n')
    r = qq(qqmgr, tmp_path, "show", "v", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["argv"][2] == "".join(f"x{i}" for i in range(n))
