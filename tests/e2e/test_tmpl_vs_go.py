"""qqmgr's tmpl module against Go's text/template, case by case.

Every tests/tmpl/cases/NAME.tmpl is rendered over NAME.json by our
tmpl-render and by the Go reference renderer (tests/tools/gotmpl, built once
per session with Debian's golang-go, offline). Output bytes and success must
be identical, and on failure the error's first line too. Where qqmgr differs
from Go on purpose (a missing key through `index` is an error), NAME.expect
holds our outcome: `error: SUBSTRING` or the exact output.

QQ_BUILD_DIR selects the build directory (default: build under the repo root).
"""
import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CASES = ROOT / "tests" / "tmpl" / "cases"
BUILD = pathlib.Path(os.environ.get("QQ_BUILD_DIR", ROOT / "build"))
RENDER = BUILD / "tests" / "tmpl-render"


def case_names():
    return sorted(p.stem for p in CASES.glob("*.tmpl"))


@pytest.fixture(scope="session")
def gotmpl(tmp_path_factory):
    if not shutil.which("go"):
        pytest.skip("go (Debian golang-go) not installed")
    tmp = tmp_path_factory.mktemp("gotmpl")
    env = dict(os.environ, GOCACHE=str(tmp / "cache"), GOFLAGS="-mod=mod",
               GOPROXY="off", GO111MODULE="off", GOPATH=str(tmp / "gopath"))
    exe = tmp / "gotmpl"
    subprocess.run(["go", "build", "-o", str(exe), "main.go"],
                   cwd=ROOT / "tests" / "tools" / "gotmpl", env=env, check=True)
    return exe


@pytest.fixture(scope="session")
def render():
    if not RENDER.exists():
        pytest.fail(f"{RENDER} not built (ninja -C {BUILD} tests/tmpl-render)")
    return RENDER


def run(exe, name):
    return subprocess.run([str(exe), str(CASES / f"{name}.tmpl"), str(CASES / f"{name}.json")],
                          capture_output=True, timeout=120)


def test_corpus_is_large_enough():
    assert len(case_names()) >= 120


@pytest.mark.parametrize("name", case_names())
def test_render_matches_go(name, render, gotmpl):
    ours = run(render, name)
    assert ours.returncode in (0, 1), ours.stderr.decode(errors="replace")
    expect = CASES / f"{name}.expect"
    if expect.exists():
        want = expect.read_text()
        if want.startswith("error: "):
            assert ours.returncode == 1
            assert want[len("error: "):].strip() in ours.stderr.decode()
        else:
            assert ours.returncode == 0
            assert ours.stdout.decode() == want
        return
    go = run(gotmpl, name)
    assert go.returncode in (0, 1), go.stderr.decode(errors="replace")
    assert ours.returncode == go.returncode, (ours.stderr, go.stderr)
    if go.returncode == 0:
        assert ours.stdout == go.stdout
    else:
        assert ours.stderr.splitlines()[0] == go.stderr.splitlines()[0]
