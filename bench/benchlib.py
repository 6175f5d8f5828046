"""What the benchmarks share: the repository root, the bare (guestless) QEMU
arguments, running a command quietly, and timing one that must succeed."""

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BARE = "-nodefaults -machine q35 -m 64 -display none -accel tcg"


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, **kw)


def timed_cp(argv):
    """(seconds, CompletedProcess) of argv; exits the benchmark when it fails."""
    t0 = time.perf_counter()
    cp = run(argv)
    dt = time.perf_counter() - t0
    if cp.returncode != 0:
        sys.exit(f"{' '.join(map(str, argv))} failed ({cp.returncode}): {cp.stderr}")
    return dt, cp


def timed(argv):
    """Seconds argv took; exits the benchmark when it fails."""
    return timed_cp(argv)[0]
