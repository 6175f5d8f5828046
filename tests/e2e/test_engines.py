"""qqmgr run as the unit of work of real job engines on this machine.

GNU parallel (Debian `parallel`) fans `qqmgr run --json` jobs out over two "hosts": two
real OpenSSH sshd started by the test on free loopback ports, each with its own host key,
authorized_keys and qqmgr config (sshd's SetEnv names it), so each host keeps its own
state. Each host has one VM, "vm", with a snapshot "ready" saved there; every job is
`qqmgr run --json vm --restore ready --rm -- CMD`, two at once per host: the second runs
as a throwaway copy vm#N beside the first (issue 18's copies).

Slow (tiny guests under TCG, four at a time): few jobs, generous deadlines; every sshd
and QEMU is stopped also on failure.
"""

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import Project, free_port, reap_qemu_under, tiny_vm_section, wait_until

SSHD = "/usr/sbin/sshd"
PARALLEL = shutil.which("parallel")

pytestmark = [
    pytest.mark.guest,
    pytest.mark.skipif(not os.path.exists(SSHD) or os.geteuid() != 0,
                       reason="needs openssh-server (tools/deps.sh) and root"),
]

SLOTS = 2   # jobs at once per host (parallel's --sshlogin 2/host)


def _banner(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            return s.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def start_host(d, name, client_pub, config_file):
    """A real sshd on a free loopback port whose sessions get QQ_JOB_CONFIG=config_file."""
    d.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")], check=True)
    shutil.copy(client_pub, d / "authorized_keys")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    port = free_port()
    (d / "sshd_config").write_text(f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {d}/host_key
AuthorizedKeysFile {d}/authorized_keys
StrictModes no
PidFile {d}/sshd.pid
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
MaxStartups 50
MaxSessions 50
SetEnv QQ_JOB_CONFIG={config_file} QQ_JOB_HOST={name}
LogLevel ERROR
""")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")],
                            stdout=subprocess.DEVNULL, stderr=open(d / "sshd.log", "w"))
    wait_until(lambda: _banner(port) or proc.poll() is not None, 20, what=f"sshd of {name} to answer")
    assert proc.poll() is None, (d / "sshd.log").read_text()
    return port, proc


def saved_vm(qqmgr, cfg, golden):
    """The config's VM "vm", stopped, with snapshot "ready" of it booted: the golden point
    every job starts from (the session's booted snapshot, imported)."""
    golden.place(Project(cfg.parent, qqmgr), "vm", "ready")


@pytest.fixture
def two_hosts(tmp_path, qqmgr, tiny_guest, golden):
    """host-a and host-b: (ssh config, {name: project dir}); each dir holds a config
    of one VM "vm" (the tiny guest, automatic port) with snapshot "ready" saved."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "client_key")],
                   check=True)
    procs, dirs, blocks = [], {}, []
    try:
        for name in ("host-a", "host-b"):
            proj = tmp_path / f"state-{name}"
            proj.mkdir()
            cfg = proj / "qqmgr.toml"
            cfg.write_text(tiny_vm_section(tiny_guest, "auto", name="vm"))
            saved_vm(qqmgr, cfg, golden)
            port, proc = start_host(tmp_path / f"sshd-{name}", name, tmp_path / "client_key.pub", cfg)
            procs.append(proc)
            dirs[name] = proj
            blocks.append(f"Host {name}\n    HostName 127.0.0.1\n    Port {port}\n")
        conf = tmp_path / "ssh_config"
        conf.write_text("".join(blocks) + f"""\
Host *
    User root
    IdentityFile {tmp_path}/client_key
    IdentitiesOnly yes
    BatchMode yes
    ConnectTimeout 20
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
    LogLevel ERROR
""")
        yield conf, dirs
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)
        for d in dirs.values():
            reap_qemu_under(d)


def job_script(tmp_path, qqmgr):
    """What each node runs: job.sh N, i.e. `qqmgr run --json vm --restore ready --rm --
    CMD` with the host's config (sshd's SetEnv names it). Job "fail-once" fails in the
    guest the first time it is tried (a marker on the shared tmp dir: both hosts are this
    machine)."""
    s = tmp_path / "job.sh"
    s.write_text(f"""\
#!/bin/bash
n=$1
cmd="echo job-$n on $QQ_JOB_HOST; uname -m"
if [ "$n" = fail-once ] && mkdir {tmp_path}/tried-$n 2>/dev/null; then
    cmd="$cmd; exit 3"
fi
exec {qqmgr} -c "$QQ_JOB_CONFIG" run --json vm --restore ready --rm --timeout 400 -- "$cmd"
""")
    s.chmod(0o755)
    return s


def records(stdout):
    return [json.loads(l) for l in stdout.splitlines() if l.startswith("{")]


@pytest.mark.skipif(not PARALLEL, reason="needs GNU parallel (tools/deps.sh)")
def test_gnu_parallel_runs_jobs_two_per_host_with_right_output_status_and_a_retry(tmp_path, qqmgr, two_hosts):
    conf, dirs = two_hosts
    script = job_script(tmp_path, qqmgr)
    joblog = tmp_path / "joblog"
    jobs = ["1", "2", "3", "fail-once", "5", "6"]
    t0 = time.monotonic()
    cp = subprocess.run([PARALLEL, "--ssh", f"ssh -F {conf}", "--sshlogin", "2/host-a,2/host-b",
                         "--joblog", str(joblog), "--retries", "2", "--tag",
                         f"{script} {{}}", ":::", *jobs],
                        capture_output=True, text=True, timeout=1500, stdin=subprocess.DEVNULL)
    wall = time.monotonic() - t0
    assert cp.returncode == 0, cp.stdout + cp.stderr
    # every job's output, tagged with its argument by parallel, once (the retry's)
    lines = [l.split("\t", 1) for l in cp.stdout.splitlines()]
    instances = []
    for n in jobs:
        mine = [rest for tag, rest in lines if tag == n]
        assert len(mine) == 3, (n, mine, cp.stderr)
        assert mine[0].startswith(f"job-{n} on host-") and mine[1] == "x86_64"
        rec = json.loads(mine[2])
        assert rec["status"] == 0 and rec["exit"] == 0 and rec["ready"] is True, rec
        assert rec["command"][0].startswith(f"echo job-{n} ")
        assert rec["rm"] is True and rec["vm"] == "vm" and rec["snapshot"] == "ready"
        instances.append(rec["instance"])
        # the record's config (and logs: the VM's own place; a copy's went with it) are
        # those of the host the job ran on
        host = mine[0].split(" on ")[1]
        assert rec["config"] == str(dirs[host] / "qqmgr.toml")
        if rec["instance"] == "vm":
            assert Path(rec["logs"]["serial"]).is_relative_to(dirs[host])
        else:
            assert rec["instance"].startswith("vm#") and rec["logs"] is None
    # two jobs at once on a host: one in the VM's own place, the other a copy beside it
    assert any(i.startswith("vm#") for i in instances), instances
    # nothing of the copies is left on either host
    for d in dirs.values():
        assert not list((d / ".qqmgr" / "vm.vm").glob("copy.*"))
    # the joblog: one line per job, the retried one with its final status 0, both hosts used
    rows = [l.split("\t") for l in joblog.read_text().splitlines()]
    assert rows[0][:3] == ["Seq", "Host", "Starttime"] and rows[0][6] == "Exitval"
    by_seq = {}
    for r in rows[1:]:
        by_seq[r[0]] = r
    assert sorted(by_seq, key=int) == [str(i) for i in range(1, len(jobs) + 1)]
    assert all(r[6] == "0" for r in by_seq.values()), rows
    assert {r[1] for r in rows[1:]} == {"host-a", "host-b"}
    assert (tmp_path / "tried-fail-once").is_dir()
    print(f"parallel: {len(jobs)} jobs (one retried) over 2 hosts × 2 slots: {wall:.1f} s wall")



def test_run_json_through_h_keeps_the_record_and_tells_never_ready_from_failed(tmp_path, qqmgr, two_hosts):
    conf, dirs = two_hosts
    cfg = dirs["host-a"] / "qqmgr.toml"
    bad = dirs["host-a"] / "bad.toml"
    bad.write_text('[vm.b]\ncmd = ["qemu-system-x86_64 -nodefaults -display none -no-such-option"]\n'
                   '[vm.b.ssh]\nport = "auto"\n')
    env = dict(os.environ, QQMGR_SSH_CONFIG=str(conf), QQMGR_REMOTE_BIN=qqmgr)
    env.pop("QQMGR_HOST", None)

    def run_h(config, *args):
        return subprocess.run([qqmgr, "-H", "host-a", "-c", str(config), "run", "--json", *args],
                              capture_output=True, text=True, timeout=600, env=env, stdin=subprocess.DEVNULL)
    cp = run_h(cfg, "vm", "--restore", "ready", "--rm", "--", "echo there; exit 4")
    assert cp.returncode == 4, cp.stderr
    out = cp.stdout.splitlines()
    assert out[0] == "there"
    rec = json.loads(out[-1])
    assert rec["status"] == 4 and rec["config"] == str(cfg) and rec["ready"] is True
    cp = run_h(bad, "b", "--", "true")
    assert cp.returncode == 75, cp.stderr
    assert json.loads(cp.stdout.splitlines()[-1])["ready"] is False


REPO = Path(__file__).resolve().parents[2]
SLURM_CLUSTER = REPO / "tests" / "tools" / "slurm-cluster.sh"
SBATCH_EXAMPLE = REPO / "examples" / "qqmgr-array.sbatch"


@pytest.mark.skipif(not all(shutil.which(t) for t in ("sbatch", "slurmctld", "slurmd", "munged")),
                    reason="needs slurm-wlm and munge (tools/deps.sh)")
def test_slurm_array_of_qqmgr_runs_on_a_single_node_cluster_collects_every_record(tmp_path, qqmgr, tiny_guest,
                                                                                  golden):
    work = tmp_path / "work"
    work.mkdir()
    (work / "qqmgr.toml").write_text(tiny_vm_section(tiny_guest, "auto", name="vm"))
    saved_vm(qqmgr, work / "qqmgr.toml", golden)
    (work / "jobs.txt").write_text("".join(f"echo task {i}; exit {i % 3}\n" for i in range(6)))
    env = dict(os.environ, QQMGR=qqmgr, QQMGR_CONFIG=str(work / "qqmgr.toml"),
               QQ_JOBS=str(work / "jobs.txt"), QQ_VM="vm", QQ_SNAPSHOT="ready")
    try:
        # on a timeout the script gets SIGTERM (not subprocess.run's SIGKILL): its trap
        # stops every daemon it started
        p = subprocess.Popen([str(SLURM_CLUSTER), str(tmp_path / "cluster"), "sbatch", "--wait", "--array=0-5",
                              f"--chdir={work}", str(SBATCH_EXAMPLE)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                             stdin=subprocess.DEVNULL)
        try:
            out, err = p.communicate(timeout=1500)
        except subprocess.TimeoutExpired:
            p.terminate()
            out, err = p.communicate(timeout=60)
            pytest.fail(f"the Slurm array did not end within 1500 s: {err}")
        cp = subprocess.CompletedProcess(p.args, p.returncode, out, err)
    finally:
        reap_qemu_under(work)
    assert cp.returncode != 69, cp.stderr          # the cluster came up
    assert "Submitted batch job" in cp.stdout, cp.stdout + cp.stderr
    outs = sorted(work.glob("qqmgr-*_*.out"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    assert len(outs) == 6, (list(work.iterdir()), cp.stderr)
    recs = []
    for i, out in enumerate(outs):
        text = out.read_text()
        lines = text.splitlines()
        assert lines[0] == f"task {i}", text
        rec = json.loads(lines[-1])
        assert rec["command"] == [f"echo task {i}; exit {i % 3}"] and rec["ready"] is True
        assert rec["status"] == i % 3 and rec["exit"] == i % 3, rec
        assert rec["vm"] == "vm" and rec["snapshot"] == "ready"
        assert rec["instance"] == "vm" or rec["instance"].startswith("vm#")
        recs.append(rec)
    # the guide's report: every record in one document
    report = subprocess.run(["jq", "-s", "map({vm, status, total: .timings.total})"],
                            input="".join(o.read_text().splitlines()[-1] + "\n" for o in outs),
                            capture_output=True, text=True, check=True)
    assert [r["status"] for r in json.loads(report.stdout)] == [i % 3 for i in range(6)]
    # sbatch --wait: the highest exit status of the array
    assert cp.returncode == 2, cp.stderr


@pytest.mark.skipif(not PARALLEL or not os.environ.get("QQ_BENCH_ENGINES"),
                    reason="a measurement: QQ_BENCH_ENGINES=1 (and GNU parallel)")
def test_bench_twelve_jobs_over_two_hosts_two_slots_vs_serially(tmp_path, qqmgr, two_hosts):
    """Prints the wall time of 12 jobs through parallel (2 hosts × 2 slots) and of the
    same 12 one after the other on one host, and their ratio."""
    conf, dirs = two_hosts
    script = job_script(tmp_path, qqmgr)
    jobs = [str(i) for i in range(1, 13)]
    t0 = time.monotonic()
    cp = subprocess.run([PARALLEL, "--ssh", f"ssh -F {conf}", "--sshlogin", "2/host-a,2/host-b",
                         f"{script} {{}}", ":::", *jobs],
                        capture_output=True, text=True, timeout=3000, stdin=subprocess.DEVNULL)
    fanned = time.monotonic() - t0
    assert cp.returncode == 0 and len(records(cp.stdout)) == 12, cp.stderr
    env = dict(os.environ, QQ_JOB_CONFIG=str(dirs["host-a"] / "qqmgr.toml"), QQ_JOB_HOST="host-a")
    t0 = time.monotonic()
    for n in jobs:
        subprocess.run([str(script), n], check=True, capture_output=True, env=env, timeout=600,
                       stdin=subprocess.DEVNULL)
    serial = time.monotonic() - t0
    print(f"\n12 jobs: parallel 2 hosts x 2 slots {fanned:.1f} s, serially {serial:.1f} s, "
          f"ratio {serial / fanned:.2f}, load {os.getloadavg()[0]:.1f}, cores {os.cpu_count()}")
