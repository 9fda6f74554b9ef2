#!/usr/bin/env python3
"""How fast a dead backend stops getting requests: active checks against passive detection.

Starts two mock backends and ferrule (release binaries from target/release), all on 127.0.0.1,
kills one backend, and measures the time until ferrule's admin API lists it as not healthy, and
how many client requests failed meanwhile, for each mode:

  active   health_check_method "tcp" every 1s, fall 1, passive detection off (max_fails 0)
  passive  no active checks, max_fails 3 within fail_timeout 10s, with a client sending
           ~200 requests/s (passive detection needs traffic to notice anything)

Every run is repeated --runs times (default 5) and the median printed. Only processes this script
started are stopped, by PID. Usage: stress/failover.py [--runs N]
"""

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FERRULE = os.path.join(ROOT, "target/release/ferrule")
MOCK = os.path.join(ROOT, "target/release/mock-backend")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, limit=10.0):
    end = time.time() + limit
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"port {port} never opened")


def admin_backends(admin_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/backends", timeout=2) as r:
        return json.load(r)["backends"]


def client(port, stop, counts):
    """About 200 requests/s on fresh connections; counts ok and failed."""
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            counts["ok" if data.startswith(b"HTTP/1.1 200") else "failed"] += 1
        except OSError:
            counts["failed"] += 1
        time.sleep(0.005)


def run(mode):
    b1, b2, port, admin = free_port(), free_port(), free_port(), free_port()
    backends = [subprocess.Popen([MOCK, str(p)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in (b1, b2)]
    cfg = {
        "port": port, "admin_port": admin, "bind": "127.0.0.1", "workers": 2,
        "backends": [{"url": f"http://127.0.0.1:{b1}"}, {"url": f"http://127.0.0.1:{b2}"}],
        "retries": 0,
    }
    if mode == "active":
        cfg.update({"health_check_method": "tcp", "health_check_frequency": "1s",
                    "health_check_fall": 1, "health_check_rise": 1, "max_fails": 0})
    else:
        cfg.update({"health_check_method": "none", "max_fails": 3, "fail_timeout": "10s"})
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "config.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        proxy = subprocess.Popen([FERRULE, path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stop = threading.Event()
        counts = {"ok": 0, "failed": 0}
        t = None
        try:
            for p in (b1, b2, port, admin):
                wait_port(p)
            t = threading.Thread(target=client, args=(port, stop, counts))
            t.start()
            time.sleep(0.5)
            before = dict(counts)
            killed = time.time()
            backends[0].kill()
            backends[0].wait()
            deadline = killed + 15
            down_after = None
            while time.time() < deadline:
                b = next(x for x in admin_backends(admin) if x["url"].endswith(f":{b1}"))
                if not b["healthy"]:
                    down_after = time.time() - killed
                    break
                time.sleep(0.005)
            stop.set()
            t.join()
            failed = counts["failed"] - before["failed"]
            return down_after, failed
        finally:
            stop.set()
            if t is not None:
                t.join()
            proxy.terminate()
            proxy.wait(timeout=40)
            for b in backends:
                if b.poll() is None:
                    b.kill()
                    b.wait()


def main():
    runs = 5
    if len(sys.argv) == 3 and sys.argv[1] == "--runs":
        runs = int(sys.argv[2])
    for exe in (FERRULE, MOCK):
        if not os.access(exe, os.X_OK):
            raise SystemExit(f"{exe} missing: cargo build --release --bins")
    for mode in ("active", "passive"):
        results = [run(mode) for _ in range(runs)]
        times = [r[0] for r in results if r[0] is not None]
        fails = [r[1] for r in results]
        median = f"{statistics.median(times) * 1000:.0f} ms" if times else "never"
        print(f"{mode:8} marked down after: median {median} "
              f"(runs: {', '.join(f'{x * 1000:.0f}' for x in times)} ms); "
              f"failed client requests meanwhile: {fails}")


if __name__ == "__main__":
    main()
