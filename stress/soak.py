#!/usr/bin/env python3
"""Soak test for ferrule (driven by stress/soak.sh; Python 3 with the `h2` package).

Starts two ferrule processes (plain HTTP and TLS) in front of the same backends: three
`mock-backend`s, which are SIGKILLed and restarted every few seconds, and one Python backend that
also speaks the upgrade protocol (a byte echo after `101`). Mixed traffic runs against both
proxies: small and large bodies, chunked uploads, keep-alive and fresh connections, upgrades,
sticky cookies, over HTTP/1.1 and over HTTP/2 (h2 with ALPN on the TLS proxy, h2c with prior
knowledge on the plain one, several concurrent streams per connection: stress/soak_h2.py).
Meanwhile a spare backend is added, drained and removed over the admin API, and
the config is reloaded (SIGHUP and POST /reload in turn).

Every minute it prints requests by client kind and outcome and each proxy's RSS and open
descriptors; at the end a table of the per-minute figures (also in minutes.csv in the temporary
directory). It exits
non-zero on a lost request that could have been retried (an idempotent GET answered 5xx or reset
before any response byte, while other backends were up), a response with the wrong body, a proxy
that died, or RSS / descriptor growth between the first and the last minute beyond the tolerance.
"""

import argparse
import collections
import http.client
import json
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    import soak_h2
except ImportError as e:  # the h2 package is missing
    soak_h2 = e

RSS_TOLERANCE = 0.25  # last minute's median may exceed the first minute's peak by this share...
RSS_SLACK_KB = 12 * 1024  # ...or by this much, whichever is larger
FD_SLACK = 64  # descriptors: last minute's median at most the first minute's peak + this


def log(msg):
    print(f"soak: {msg}", flush=True)


# ----------------------------------------------------------------------------- the Python backend


class Echo(BaseHTTPRequestHandler):
    """mock-backend's routes that the soak uses, plus upgrades (a byte echo after 101)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def answer(self, body):
        self.send_response(200)
        self.send_header("X-Backend", str(self.server.server_port))
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        port = self.server.server_port
        if self.headers.get("Upgrade", "").lower() == "soak-echo":
            self.send_response(101)
            self.send_header("Upgrade", "soak-echo")
            self.send_header("Connection", "Upgrade")
            self.end_headers()
            self.wfile.flush()
            conn = self.connection
            conn.settimeout(30)
            try:
                while True:
                    data = conn.recv(65536)
                    if not data:
                        break
                    conn.sendall(data)
            except OSError:
                pass
            self.close_connection = True
            return
        body = self.body()
        if self.path == "/health":
            return self.answer(b"ok\n")
        if self.path.startswith("/echo"):
            return self.answer(body)
        if self.path.startswith("/bytes/"):
            return self.answer(b"x" * int(self.path[7:]))
        self.answer(f"hello from backend :{port}\n".encode())

    do_POST = do_PUT = do_HEAD = do_GET


# ----------------------------------------------------------------------------- processes


class Soak:
    def __init__(self, args):
        self.args = args
        self.root = args.root
        self.tmp = tempfile.mkdtemp(prefix="ferrule-soak-")
        self.ports = iter(range(args.port, args.port + 100))
        self.mocks = {}  # port -> Popen (None while killed)
        self.alive = set()  # ports of backends that are up
        self.lock = threading.Lock()
        self.counts = collections.Counter()
        self.minute_counts = collections.Counter()
        self.failures = []
        self.stop = threading.Event()
        self.proxies = []  # dicts: name, port, admin, scheme, proc, config
        self.reload_round = 0
        self.details_left = 5000  # lines of details.log: the non-fatal outcomes, explained
        self.patterns = {}  # n -> mock-backend's /bytes/n body

    def port(self):
        return next(self.ports)

    def start_mock(self, port):
        p = subprocess.Popen(
            [f"{self.root}/target/release/mock-backend", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.mocks[port] = p
        wait_port(port)
        with self.lock:
            self.alive.add(port)

    def kill_mock(self, port):
        with self.lock:
            self.alive.discard(port)
        p = self.mocks.get(port)
        if p:
            p.kill()
            p.wait()
        self.mocks[port] = None

    def config(self, proxy, weights):
        cfg = {
            "port": proxy["port"],
            "admin_port": proxy["admin"],
            "bind": "127.0.0.1",
            "workers": 2,
            "strategy": "round-robin",
            "backends": [
                {"url": f"http://127.0.0.1:{p}", "weight": w} for p, w in weights
            ],
            "health_check_frequency": "1s",
            "health_check_rise": 1,
            "health_check_fall": 1,
            "max_fails": 1,
            "fail_timeout": "2s",
            "retries": 3,
            "connect_timeout": "1s",
            "backend_timeout": "10s",
            "enable_sticky_sessions": True,
            "sticky_mode": "cookie",
            "upgrade_socket": False,
            "max_body_size": 16 * 1024 * 1024,
        }
        if proxy["scheme"] == "https":
            cfg["ssl"] = {
                "enabled": True,
                "cert_file": self.cert,
                "key_file": self.key,
            }
        with open(proxy["config"], "w") as f:
            json.dump(cfg, f)

    def weights(self):
        ws = [(p, 1) for p in self.backend_ports]
        if self.reload_round % 2:
            ws = [(p, 1 + i % 3) for i, (p, _) in enumerate(ws)]
        return ws

    def start(self):
        self.cert = f"{self.root}/certs/cert.pem"
        self.key = f"{self.root}/certs/key.pem"
        if not (os.path.exists(self.cert) and os.path.exists(self.key)):
            self.cert, self.key = f"{self.tmp}/cert.pem", f"{self.tmp}/key.pem"
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                 "-subj", "/CN=localhost", "-keyout", self.key, "-out", self.cert],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.mock_ports = [self.port() for _ in range(3)]
        for p in self.mock_ports:
            self.start_mock(p)
        self.py_port = self.port()
        self.py = ThreadingHTTPServer(("127.0.0.1", self.py_port), Echo)
        self.py.daemon_threads = True
        threading.Thread(target=self.py.serve_forever, daemon=True).start()
        with self.lock:
            self.alive.add(self.py_port)
        self.spare_port = self.port()
        self.backend_ports = self.mock_ports + [self.py_port]
        for name, scheme in (("plain", "http"), ("tls", "https")):
            proxy = {
                "name": name,
                "scheme": scheme,
                "port": self.port(),
                "admin": self.port(),
                "config": f"{self.tmp}/{name}.json",
            }
            self.config(proxy, self.weights())
            proxy["log"] = open(f"{self.tmp}/{name}.log", "w")
            proxy["proc"] = subprocess.Popen(
                [f"{self.root}/target/release/ferrule", proxy["config"]],
                stdout=proxy["log"],
                stderr=subprocess.STDOUT,
            )
            wait_port(proxy["port"])
            wait_port(proxy["admin"])
            self.proxies.append(proxy)
        log(f"backends {self.backend_ports} (mock: {self.mock_ports}), logs in {self.tmp}")

    def shutdown(self):
        self.stop.set()
        for proxy in self.proxies:
            if proxy["proc"].poll() is None:
                proxy["proc"].terminate()
                try:
                    proxy["proc"].wait(10)
                except subprocess.TimeoutExpired:
                    proxy["proc"].kill()
        for p in self.mocks.values():
            if p:
                p.kill()
                p.wait()
        self.py.shutdown()

    # ------------------------------------------------------------------------- outcomes

    def count(self, outcome, detail=None, fatal=False, proto="h1"):
        """One request's outcome; `proto`: h1 (HTTP/1.1 on both proxies), h2tls, h2c, chaos."""
        with self.lock:
            self.counts[(proto, outcome)] += 1
            self.minute_counts[(proto, outcome)] += 1
            if fatal and len(self.failures) < 50:
                self.failures.append(f"{outcome}: {detail}")
            elif detail and self.details_left > 0:
                self.details_left -= 1
                with open(f"{self.tmp}/details.log", "a") as f:
                    f.write(f"{time.strftime('%H:%M:%S')} {proto} {outcome}: {detail}\n")

    def expected_bytes(self, n, backend):
        """The body of `GET /bytes/n` from `backend` (its X-Backend port): the Python backend
        sends "x"s, mock-backend lines of 63 letters and a newline (its PATTERN)."""
        if str(backend) == str(self.py_port):
            return b"x" * n
        if n not in self.patterns:
            line = bytes(b"a"[0] + i % 26 for i in range(63)) + b"\n"
            self.patterns[n] = (line * (n // 64 + 1))[:n]
        return self.patterns[n]

    def others_up(self):
        with self.lock:
            return len(self.alive) >= 2

    # ------------------------------------------------------------------------- clients

    def connect(self, proxy):
        if proxy["scheme"] == "https":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return http.client.HTTPSConnection("127.0.0.1", proxy["port"], timeout=15, context=ctx)
        return http.client.HTTPConnection("127.0.0.1", proxy["port"], timeout=15)

    def one(self, conn, kind, cookie):
        """One request of `kind`; returns (status, ok, detail, cookie)."""
        headers = {"Host": "soak"}
        if cookie:
            headers["Cookie"] = cookie
        if kind == "get":
            conn.request("GET", "/", headers=headers)
        elif kind == "echo":
            body = os.urandom(random.choice([10, 1000, 60000]))
            conn.request("POST", "/echo", body=body, headers=headers)
        elif kind == "chunked":
            body = os.urandom(random.randint(1, 200_000))
            parts = [body[i:i + 8192] for i in range(0, len(body), 8192)]
            conn.request("POST", "/echo", body=iter(parts), headers=headers, encode_chunked=True)
        elif kind == "large":
            n = random.choice([1 << 20, 4 << 20])
            conn.request("GET", f"/bytes/{n}", headers=headers)
        r = conn.getresponse()
        data = r.read()
        set_cookie = r.getheader("Set-Cookie")
        if set_cookie:
            cookie = set_cookie.split(";")[0]
        if r.status != 200:
            return r.status, False, f"{kind} {r.status} {data[:80]!r}", cookie
        backend = r.getheader("X-Backend")
        if kind == "get":
            ok = data == f"hello from backend :{backend}\n".encode()
        elif kind in ("echo", "chunked"):
            ok = data == body
        else:
            ok = data == self.expected_bytes(n, backend)
        return 200, ok, f"{kind} from {backend}: {len(data)} bytes", cookie

    def client(self, proxy, seed):
        rng = random.Random(seed)
        conn = None
        reused = False
        cookie = None
        while not self.stop.is_set():
            kind = rng.choices(["get", "echo", "chunked", "large", "ws"], [50, 20, 10, 5, 5])[0]
            if kind == "ws":
                self.upgrade(proxy)
                continue
            if conn is None or rng.random() < 0.2:
                if conn:
                    conn.close()
                conn, reused = self.connect(proxy), False
            if rng.random() < 0.1:
                cookie = None
            idempotent = kind in ("get", "large")
            try:
                status, ok, detail, cookie = self.one(conn, kind, cookie)
                reused = True
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                conn = None
                got_any = isinstance(e, http.client.IncompleteRead)
                if reused and not got_any:
                    # the classic keep-alive race: retried on a fresh connection, as clients do
                    self.count("client_retried")
                    continue
                if kind == "large" and got_any:
                    self.count("cut_mid_body")  # its backend was killed while it streamed
                elif idempotent and not got_any and self.others_up():
                    self.count("lost", f"{proxy['name']} {kind}: {e!r}", fatal=True)
                else:
                    self.count("failed_unretryable")
                continue
            if status == 200 and ok:
                self.count("ok")
            elif status == 200:
                self.count("wrong_body", f"{proxy['name']} {detail}", fatal=True)
            elif idempotent and status >= 500 and self.others_up():
                self.count("lost", f"{proxy['name']} {detail}", fatal=True)
            else:
                self.count(f"status_{status}")

    def upgrade(self, proxy):
        try:
            s = socket.create_connection(("127.0.0.1", proxy["port"]), timeout=15)
            if proxy["scheme"] == "https":
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                s = ctx.wrap_socket(s, server_hostname="localhost")
            # the Python backend is the only one that upgrades: ferrule may pick a mock one,
            # which answers 200 (counted apart, not a failure)
            s.sendall(b"GET /ws HTTP/1.1\r\nHost: soak\r\nConnection: Upgrade\r\nUpgrade: soak-echo\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                if not chunk:
                    raise OSError("closed before the head")
                head += chunk
            if not head.startswith(b"HTTP/1.1 101"):
                self.count("ws_not_upgraded")
                s.close()
                return
            rest = head.split(b"\r\n\r\n", 1)[1]
            for _ in range(5):
                msg = os.urandom(random.randint(1, 5000))
                s.sendall(msg)
                got = rest
                while len(got) < len(msg):
                    chunk = s.recv(65536)
                    if not chunk:
                        raise OSError("tunnel closed")
                    got += chunk
                rest = got[len(msg):]
                if got[:len(msg)] != msg:
                    self.count("wrong_body", f"{proxy['name']} tunnel echo differs", fatal=True)
                    s.close()
                    return
            s.close()
            self.count("ws_ok")
        except OSError as e:
            self.count("ws_failed", repr(e))

    # ------------------------------------------------------------------------- chaos

    def admin(self, proxy, method, path, body=None):
        req = urllib.request.Request(
            f"http://127.0.0.1:{proxy['admin']}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            # the admin API takes JSON bodies only (urllib would label them as a form)
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def chaos(self):
        rng = random.Random(7)
        step = 0
        spare = None
        spare_ids = {}
        while not self.stop.wait(self.args.kill_every):
            step += 1
            # a mock backend killed, brought back a little later (one down at a time)
            victim = rng.choice(self.mock_ports)
            self.kill_mock(victim)
            self.count("kill", proto="chaos")
            if self.stop.wait(1.5):
                break
            self.start_mock(victim)
            # a spare backend added, drained, removed
            if step % 3 == 1:
                spare = subprocess.Popen(
                    [f"{self.root}/target/release/mock-backend", str(self.spare_port)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                wait_port(self.spare_port)
                for proxy in self.proxies:
                    status, b = self.admin(proxy, "POST", "/backends",
                                           {"url": f"http://127.0.0.1:{self.spare_port}"})
                    if status == 201:
                        spare_ids[proxy["name"]] = b["id"]
                self.count("add", proto="chaos")
            elif step % 3 == 2:
                for proxy in self.proxies:
                    if proxy["name"] in spare_ids:
                        self.admin(proxy, "PATCH", f"/backends/{spare_ids[proxy['name']]}",
                                   {"state": "draining"})
                self.count("drain", proto="chaos")
            elif spare:
                for proxy in self.proxies:
                    bid = spare_ids.pop(proxy["name"], None)
                    if bid is not None:
                        self.admin(proxy, "DELETE", f"/backends/{bid}")
                # the removed backend finishes what it has, then goes
                time.sleep(1)
                spare.kill()
                spare.wait()
                spare = None
                self.count("remove", proto="chaos")
            # a reload: a changed file, by SIGHUP and POST /reload in turn
            if step % 4 == 0:
                self.reload_round += 1
                for proxy in self.proxies:
                    self.config(proxy, self.weights())
                    if self.reload_round % 2:
                        proxy["proc"].send_signal(signal.SIGHUP)
                    else:
                        self.admin(proxy, "POST", "/reload")
                self.count("reload", proto="chaos")
        if spare:
            spare.kill()
            spare.wait()

    # ------------------------------------------------------------------------- sampling

    def sample(self, proxy):
        pid = proxy["proc"].pid
        try:
            with open(f"/proc/{pid}/status") as f:
                rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
            fds = len(os.listdir(f"/proc/{pid}/fd"))
        except (OSError, StopIteration):
            return None
        return rss, fds

    def run(self):
        clients = []
        for proxy in self.proxies:
            for i in range(self.args.clients):
                t = threading.Thread(target=self.client, args=(proxy, hash((proxy["name"], i))), daemon=True)
                clients.append(t)
            proto = "h2tls" if proxy["scheme"] == "https" else "h2c"
            for i in range(self.args.h2_clients):
                c = soak_h2.H2Client(self, proxy, proto, hash((proto, i)), long_lived=i == 0)
                clients.append(threading.Thread(target=c.run, args=(self.args.h2_streams,), daemon=True))
        for t in clients:
            t.start()
        chaos = threading.Thread(target=self.chaos, daemon=True)
        chaos.start()
        minutes = []  # per minute: {proxy: [(rss, fds)]}
        self.minute_rows = []  # per minute: its figures, for the table at the end
        start = time.time()
        end = start + self.args.minutes * 60
        print(f"{'min':>3} {'proxy':<6} {'rss KiB min/median/max':>24} {'fds min-max':>12}")
        while time.time() < end:
            samples = {p["name"]: [] for p in self.proxies}
            minute_end = min(end, time.time() + 60)
            while time.time() < minute_end:
                for proxy in self.proxies:
                    if proxy["proc"].poll() is not None:
                        self.failures.append(f"{proxy['name']} exited with {proxy['proc'].returncode}")
                        self.stop.set()
                        return self.verdict(minutes)
                    s = self.sample(proxy)
                    if s:
                        samples[proxy["name"]].append(s)
                time.sleep(5)
            minutes.append(samples)
            with self.lock:
                counts = dict(self.minute_counts)
                self.minute_counts.clear()
            self.print_minute(len(minutes), samples, counts)
        self.stop.set()
        for t in clients:
            t.join(20)
        chaos.join(20)
        return self.verdict(minutes)

    def print_minute(self, n, samples, counts):
        row = {"minute": n, "counts": counts}
        for name, ss in samples.items():
            rss = sorted(s[0] for s in ss) or [0]
            fds = sorted(s[1] for s in ss) or [0]
            row[name] = (rss[0], rss[len(rss) // 2], rss[-1], fds[0], fds[len(fds) // 2], fds[-1])
            print(f"{n:>3} {name:<6} {rss[0]:>8}/{rss[len(rss) // 2]}/{rss[-1]:<9} "
                  f"{fds[0]:>5}-{fds[-1]:<6}", flush=True)
        for proto in PROTOS:
            got = sorted((o, v) for (p, o), v in counts.items() if p == proto)
            if got:
                print(f"    {proto:<6} " + " ".join(f"{o}={v}" for o, v in got), flush=True)
        self.minute_rows.append(row)
        with open(f"{self.tmp}/minutes.csv", "a") as f:
            if n == 1:
                f.write("minute,proxy,rss_min,rss_median,rss_max,fds_min,fds_median,fds_max\n")
            for name in samples:
                f.write(f"{n},{name}," + ",".join(map(str, row[name])) + "\n")

    def table(self):
        """The per-minute figures in one table: median RSS (KiB) and descriptors of each proxy,
        requests done and failed by client kind; then the RSS slope of each proxy."""
        names = [p["name"] for p in self.proxies]
        log("per minute: median RSS KiB / median fds of each proxy; by client kind, requests "
            "done / failed as expected under chaos / fatal (lost, wrong body, ...)")
        print("min " + " ".join(f"{n + ' rss':>10} {'fds':>4}" for n in names) + "  "
              + " ".join(f"{p:>13}" for p in PROTOS if p != "chaos"))
        for row in self.minute_rows:
            cells = " ".join(f"{row[n][1]:>10} {row[n][4]:>4}" for n in names if n in row)
            kinds = []
            for proto in PROTOS:
                if proto == "chaos":
                    continue
                by = collections.Counter()
                for (p, o), v in row["counts"].items():
                    if p == proto:
                        by[classify(o)] += v
                kinds.append(f"{by['done']}/{by['failed']}/{by['fatal']}".rjust(13))
            print(f"{row['minute']:>3} {cells}  " + " ".join(kinds))
        for n in names:
            ys = [row[n][1] for row in self.minute_rows if n in row]
            for label, part in (("all", ys), ("second half", ys[len(ys) // 2:])):
                if len(part) >= 3:
                    log(f"{n}: RSS slope over {label} ({len(part)} min): "
                        f"{slope(part):+.1f} KiB/min")

    def verdict(self, minutes):
        if getattr(self, "minute_rows", None):
            self.table()
        for proto in PROTOS:
            got = sorted((o, v) for (p, o), v in self.counts.items() if p == proto)
            log(f"totals {proto}: " + " ".join(f"{o}={v}" for o, v in got))
        bad = list(self.failures)
        if len(minutes) >= 2:
            for proxy in self.proxies:
                first = minutes[0][proxy["name"]]
                last = minutes[-1][proxy["name"]]
                if not first or not last:
                    continue
                rss_peak = max(s[0] for s in first)
                fds_peak = max(s[1] for s in first)
                rss_last = sorted(s[0] for s in last)[len(last) // 2]
                fds_last = sorted(s[1] for s in last)[len(last) // 2]
                rss_limit = max(rss_peak * (1 + RSS_TOLERANCE), rss_peak + RSS_SLACK_KB)
                log(f"{proxy['name']}: RSS first-minute peak {rss_peak} KiB, last-minute median "
                    f"{rss_last} KiB (limit {int(rss_limit)}); fds {fds_peak} -> {fds_last} "
                    f"(limit {fds_peak + FD_SLACK})")
                if rss_last > rss_limit:
                    bad.append(f"{proxy['name']}: RSS grew from {rss_peak} to {rss_last} KiB")
                if fds_last > fds_peak + FD_SLACK:
                    bad.append(f"{proxy['name']}: descriptors grew from {fds_peak} to {fds_last}")
        for proto in ("h1",) + (("h2tls", "h2c") if self.args.h2_clients else ()):
            if self.counts[(proto, "ok")] == 0:
                bad.append(f"no {proto} request succeeded")
        for b in bad:
            log(f"FAIL: {b}")
        if not bad:
            log("PASS")
        return 1 if bad else 0


PROTOS = ("h1", "h2tls", "h2c", "chaos")


def classify(outcome):
    """done (answered right; ws_not_upgraded: a backend that does not upgrade said so), failed
    (what backends killed mid-request cause: not the proxy's fault), or fatal."""
    if outcome == "goaway_0x0":
        return "info"  # a GOAWAY NO_ERROR received (the stream cap): not a request
    if outcome in ("ok", "ws_ok", "ws_not_upgraded"):
        return "done"
    if outcome in ("lost", "wrong_body", "connect_failed", "client_bug") or \
            outcome.startswith("goaway_"):
        return "fatal"
    return "failed"


def slope(ys):
    """Least-squares slope of ys against 0, 1, 2, ..."""
    n = len(ys)
    mx, my = (n - 1) / 2, sum(ys) / n
    den = sum((x - mx) ** 2 for x in range(n))
    return sum((x - mx) * (y - my) for x, y in enumerate(ys)) / den if den else 0.0


def wait_port(port, limit=10):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"soak: nothing listens on {port} after {limit}s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--clients", type=int, default=6, help="HTTP/1.1 client threads per proxy")
    ap.add_argument("--h2-clients", type=int, default=3,
                    help="HTTP/2 client threads per proxy (h2 on TLS, h2c on plain); 0: none")
    ap.add_argument("--h2-streams", type=int, default=8,
                    help="at most this many concurrent streams per HTTP/2 batch (at least 2)")
    ap.add_argument("--kill-every", type=float, default=4, help="seconds between backend kills")
    ap.add_argument("--port", type=int, default=19400, help="first of the ports used")
    ap.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    args = ap.parse_args()
    args.h2_streams = max(2, args.h2_streams)
    if args.h2_clients and isinstance(soak_h2, ImportError):
        raise SystemExit(f"soak: the HTTP/2 clients need Python's h2 package (pip install h2), "
                         f"or --h2-clients 0: {soak_h2}")
    soak = Soak(args)
    code = 1
    try:
        soak.start()
        code = soak.run()
    finally:
        soak.shutdown()
    sys.exit(code)


if __name__ == "__main__":
    main()
