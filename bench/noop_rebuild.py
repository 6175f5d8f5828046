#!/usr/bin/python3
"""Time `qqmgr img build` of an up-to-date cloud-init image (for bench_img.sh).

Usage: noop_rebuild.py QQMGR WORKDIR   — builds a cloud-init image once with a
stand-in QEMU (`true`: the no-op path does not depend on what the guest did),
then times 30 no-op rebuilds each: without env_hook, with a sh hook, with a
python3 hook, and the hooks alone. Prints medians in ms.
"""
import hashlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

QQ, WORK = sys.argv[1], Path(sys.argv[2])
ROOT = Path(__file__).resolve().parents[1]
N = 30


def timed(argv, **kw):
    t = []
    for _ in range(N):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, **kw)
        t.append((time.perf_counter() - t0) * 1000)
    return statistics.median(t)


srv = WORK / "srv"
srv.mkdir(parents=True, exist_ok=True)
subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(srv / "base.qcow2"), "64M"], check=True)
(srv / "src.txt").write_text("a source\n")
server = subprocess.Popen(["/usr/bin/python3", str(ROOT / "tests/tools/http_server.py"), str(srv)],
                          stdout=subprocess.PIPE, text=True)
try:
    url = f"http://127.0.0.1:{server.stdout.readline().strip()}"
    env = dict(os.environ, XDG_CACHE_HOME=str(WORK / "cache"))
    sums = {n: hashlib.sha256((srv / n).read_bytes()).hexdigest() for n in ("base.qcow2", "src.txt")}
    hooks = {
        "no env_hook": "",
        "sh env_hook": '[img.ci.env_hook]\ninterpreter = "sh"\nscript = "hook.sh"\n',
        "python3 env_hook": '[img.ci.env_hook]\ninterpreter = "/usr/bin/python3"\nscript = "hook.py"\n',
    }
    for label, hook in hooks.items():
        d = WORK / label.replace(" ", "-")
        d.mkdir()
        (d / "ud.tpl").write_text("#cloud-config\nhostname: {{.hostname}}\n" + "# pad\n" * 200)
        (d / "md.tpl").write_text("instance-id: {{.hostname}}\n")
        (d / "hook.sh").write_text('read line; echo \'{"hostname": "h"}\'\n')
        (d / "hook.py").write_text('import json, sys\ne = json.loads(sys.stdin.readline())\n'
                                   'e["hostname"] = "h"\nprint(json.dumps(e))\n')
        (d / "qqmgr.toml").write_text(f"""
[qemu]
bin = "true"
[img.ci]
builder = "cloud-init"
img_size = "128M"
build_args = ["-drive file={{{{.img_self}}}},if=virtio -cdrom {{{{.cloud_init_iso}}}}"]
[img.ci.base_img]
url = "{url}/base.qcow2"
sha256sum = "{sums['base.qcow2']}"
[[img.ci.templates]]
template = "ud.tpl"
output = "user-data"
[[img.ci.templates]]
template = "md.tpl"
output = "meta-data"
[img.ci.env]
hostname = "x"
[[img.ci.sources]]
url = "{url}/src.txt"
sha256sum = "{sums['src.txt']}"
{hook}""")
        argv = [QQ, "-c", str(d / "qqmgr.toml"), "img", "build", "ci"]
        subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL)
        out = subprocess.run(argv, check=True, env=env, capture_output=True, text=True).stdout
        assert "up to date" in out, out
        print(f"no-op rebuild, {label:17s}: {timed(argv, env=env):6.1f} ms (median of {N})")
    line = '{"hostname": "x"}\n'
    print(f"  the hooks alone: sh {timed(['sh', str(WORK / 'sh-env_hook/hook.sh')], input=line, text=True):.1f} ms,"
          f" python3 {timed(['/usr/bin/python3', str(WORK / 'python3-env_hook/hook.py')], input=line, text=True):.1f} ms;"
          f" qqmgr --version {timed([QQ, '--version']):.1f} ms")
finally:
    server.terminate()
