#!/usr/bin/python3
"""A new ssh connection with and without qqmgr's connector, side by side in one run.

The VM's ssh.conf connects through `qqmgr __connect %h %p` (ProxyUseFdpass), which sets
TCP_NODELAY; plain OpenSSH leaves Nagle on for non-interactive sessions, so its two small
packets after the key exchange wait for the server's delayed ACK (40 ms on Linux).

The server is a real OpenSSH sshd on a free loopback port with its own keys: what a guest
under KVM looks like to the host (under TCG a guest's own slowness hides the delay on its
first login). Each run is a fresh connection (ControlPath none) running `true`:
  plain:     ssh -F none … -p PORT root@127.0.0.1 true
  connector: the same with -o ProxyCommand="QQMGR __connect %h %p" -o ProxyUseFdpass=yes

usage: bench/bench_connect.py [--qqmgr PATH] [--runs N]      (root: sshd needs it)
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

from benchlib import REPO, timed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qqmgr", default=str(REPO / "build" / "qqmgr"))
    ap.add_argument("--runs", type=int, default=20)
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="qqbench-connect")
    for k in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{d}/{k}"], check=True)
    shutil.copy(f"{d}/client_key.pub", f"{d}/authorized_keys")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", "/dev/null", "-p", str(port),
                             "-o", "ListenAddress=127.0.0.1", "-h", f"{d}/host_key",
                             "-o", f"AuthorizedKeysFile={d}/authorized_keys", "-o", "StrictModes=no",
                             "-o", "UsePAM=no", "-o", "PasswordAuthentication=no", "-o", "LogLevel=ERROR"],
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
                    if c.recv(4) == b"SSH-":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("sshd did not answer")
            time.sleep(0.05)
        base = ["ssh", "-F", "none", "-p", str(port), "-i", f"{d}/client_key", "-o", "IdentitiesOnly=yes",
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "LogLevel=ERROR", "-o", "ControlPath=none", "-o", "KexAlgorithms=curve25519-sha256"]
        via = ["-o", f"ProxyCommand={a.qqmgr} __connect %h %p", "-o", "ProxyUseFdpass=yes"]
        plain, conn = [], []
        timed(base + ["root@127.0.0.1", "true"])    # warm the page cache
        for _ in range(a.runs):
            plain.append(timed(base + ["root@127.0.0.1", "true"]))
            conn.append(timed(base + via + ["root@127.0.0.1", "true"]))
        p, c = statistics.median(plain), statistics.median(conn)
        print(f"new ssh connection running `true`, medians of {a.runs}:")
        print(f"  plain ssh            {p * 1000:7.1f} ms")
        print(f"  through __connect    {c * 1000:7.1f} ms   ({p / c:.2f}x faster, {1000 * (p - c):.0f} ms less)")
    finally:
        sshd.terminate()
        sshd.wait(timeout=10)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
