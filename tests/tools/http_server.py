#!/usr/bin/python3
"""Loopback HTTP file server for download tests.

Usage: http_server.py DIR   — serves DIR on 127.0.0.1 at a free port and prints
the port on the first line of stdout. Paths:
  /NAME            the file, honouring "Range: bytes=N-" (206) and unsatisfiable
                   ranges (416)
  /cut/NAME        announces the full length, sends half, then drops the connection
  /norange/NAME    ignores Range headers (always 200 with the whole file)
  /slow/NAME       sends the file in small pieces over about a second
  /endless/NAME    200 without a length, then the file's bytes over and over, never ending
  /drip/NAME       announces the full length, then sends 2 bytes a second
  /_stats          JSON: {"count": {path: GETs}, "ranges": [[path, Range header], ...]}
Anything else: 404.
"""
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.abspath(sys.argv[1])
LOCK = threading.Lock()
COUNT = {}
RANGES = []


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/_stats":
            with LOCK:
                body = json.dumps({"count": COUNT, "ranges": RANGES}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        with LOCK:
            COUNT[path] = COUNT.get(path, 0) + 1
            if self.headers.get("Range"):
                RANGES.append([path, self.headers["Range"]])
        mode = ""
        name = path.lstrip("/")
        for m in ("cut", "norange", "slow", "endless", "drip"):
            if name.startswith(m + "/"):
                mode, name = m, name[len(m) + 1:]
        full = os.path.join(ROOT, name)
        if "/" in name or not name or not os.path.isfile(full):
            self.send_error(404)
            return
        size = os.path.getsize(full)
        if mode == "endless":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            with open(full, "rb") as f:
                body = f.read() or b"x"
            try:
                while True:
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                return
        start = 0
        rng = self.headers.get("Range")
        if rng and mode != "norange" and rng.startswith("bytes="):
            first = rng[6:].split("-", 1)[0]
            start = int(first) if first else 0
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % size)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, size - 1, size))
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        try:
            if not mode or mode == "norange":
                self.wfile.flush()
                with open(full, "rb") as f:
                    off = start
                    while off < size:
                        off += os.sendfile(self.connection.fileno(), f.fileno(), off, size - off)
                return
            with open(full, "rb") as f:
                f.seek(start)
                body = f.read()
            if mode == "cut":
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.connection.shutdown(2)
            elif mode == "drip":
                for i in range(0, len(body), 2):
                    self.wfile.write(body[i:i + 2])
                    self.wfile.flush()
                    time.sleep(1)
            elif mode == "slow":
                step = max(1, len(body) // 20)
                for i in range(0, len(body), step):
                    self.wfile.write(body[i:i + step])
                    self.wfile.flush()
                    time.sleep(0.05)
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
