"""A fake QEMU for one VM state dir, for what a real QEMU cannot show on demand: a QMP
peer that floods or stalls. It holds the write lock on DIR/pid (so qqmgr reads the VM
as running, this process as its QEMU) and serves DIR/qmp.socket: each connection gets
a greeting and an answer to qmp_capabilities, then, after the next command:

  events  an endless stream of events
  blank   endless blank lines
  line    one endless line (never a newline)
  values  one 8 MiB reply of 4 Mi tiny values (under the size cap, costly to parse), then nothing
  stall   nothing, ever (the connection stays open)

It serves DIR/events.socket too (the monitor `qqmgr events` reads, which sends no
command after qmp_capabilities): in mode line, one endless event line; else nothing.

Usage: python3 fake_qmp.py DIR MODE   (prints "ready" once listening; SIGTERM ends it)
"""

import fcntl
import json
import os
import socket
import sys
import threading
import time

CHUNKS = {
    "events": (json.dumps({"event": "RTC_CHANGE", "data": {"offset": 1},
                           "timestamp": {"seconds": 1, "microseconds": 2}}) + "\r\n").encode() * 512,
    "blank": b"\r\n" * 32768,
    "line": b"a" * 65536,
}


def serve(c, mode):
    try:
        f = c.makefile("rb")
        c.sendall(b'{"QMP": {"version": {}, "capabilities": []}}\r\n')
        req = json.loads(f.readline() or b"{}")
        c.sendall((json.dumps({"return": {}, "id": req.get("id")}) + "\r\n").encode())
        f.readline()
        if mode == "stall":
            while True:
                time.sleep(60)
        if mode == "values":
            c.sendall(b'{"return": [0' + b",0" * (4 << 20) + b"]}\r\n")
            mode = "stall"
        if mode == "stall":
            while True:
                time.sleep(60)
        if mode == "line":
            c.sendall(b'{"return": "')
        chunk = CHUNKS[mode]
        while True:
            c.sendall(chunk)
    except OSError:
        pass
    finally:
        c.close()


def serve_events(c, mode):
    try:
        f = c.makefile("rb")
        c.sendall(b'{"QMP": {"version": {}, "capabilities": []}}\r\n')
        req = json.loads(f.readline() or b"{}")
        c.sendall((json.dumps({"return": {}, "id": req.get("id")}) + "\r\n").encode())
        if mode == "line":
            c.sendall(b'{"event": "BIG", "data": {"s": "')
            while True:
                c.sendall(CHUNKS["line"])
        while True:
            time.sleep(60)
    except OSError:
        pass
    finally:
        c.close()


def listen(path, handler, mode):
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(16)

    def loop():
        while True:
            c, _ = s.accept()
            threading.Thread(target=handler, args=(c, mode), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()


def main():
    d, mode = sys.argv[1], sys.argv[2]
    os.makedirs(d, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(d, "pid"), os.O_RDWR | os.O_CREAT, 0o600)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    fcntl.lockf(fd, fcntl.LOCK_EX)
    listen(os.path.join(d, "qmp.socket"), serve, mode)
    listen(os.path.join(d, "events.socket"), serve_events, mode)
    print("ready", flush=True)
    while True:
        time.sleep(60)


if __name__ == "__main__":
    main()
