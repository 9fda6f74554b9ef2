#!/usr/bin/env python3
"""An HTTP/2 client for ferrule's integration tests (tests/http2.rs), built on Python's `h2`
package (and its `hpack`): a second implementation of HTTP/2 and HPACK beside the tests' own
hand-written client, so a bug shared by ferrule's HPACK and the tests' cannot hide.

Usage: h2client.py SCENARIO --port N [--tls CA_FILE] [scenario options]

Scenarios (each prints one line of JSON, its last line of output, and exits 0 unless the script
itself broke):
  concurrent  --streams N --sizes A,B,C [--path P] [--conn-window W]
              N POST streams to P/<i>, each with a body of sizes[i % len] bytes (a different
              byte sequence per stream) that the backend echoes: as many streams at once as the
              server's SETTINGS_MAX_CONCURRENT_STREAMS allows, more as they finish. Every answer
              is compared byte for byte with what was sent.
  request     --headers JSON [--body TEXT] [--then-get PATH]
              one request whose header list is JSON [[name, value], ...], sent as given
              (no validation, no normalisation: uppercase names and connection fields go out);
              then, with --then-get, a GET on the same connection (is it still usable?).
  websocket   [--path P] [--send TEXT]
              an extended CONNECT (RFC 8441, :protocol websocket): its status, the first DATA
              (the backend's greeting), the echo of TEXT, and how the stream ends after our
              END_STREAM.

Every socket read is bounded by --timeout (default 30 s); the Rust side bounds the process too.
"""

import argparse
import json
import random
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings


def connect(args):
    sock = socket.create_connection(("127.0.0.1", args.port), timeout=args.timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if args.tls:
        ctx = ssl.create_default_context(cafile=args.tls)
        ctx.set_alpn_protocols(["h2"])
        sock = ctx.wrap_socket(sock, server_hostname="localhost")
        if sock.selected_alpn_protocol() != "h2":
            raise SystemExit("ALPN did not choose h2: %r" % sock.selected_alpn_protocol())
    return sock


def h2conn(validate=True):
    config = h2.config.H2Configuration(
        client_side=True,
        header_encoding=None,
        validate_outbound_headers=validate,
        normalize_outbound_headers=validate,
        validate_inbound_headers=True,
    )
    return h2.connection.H2Connection(config=config)


def base_headers(args, method, path):
    return [
        (b":method", method.encode()),
        (b":scheme", b"https" if args.tls else b"http"),
        (b":authority", ("localhost:%d" % args.port).encode()),
        (b":path", path.encode()),
    ]


def text(b):
    return b.decode("latin-1") if isinstance(b, bytes) else str(b)


class Pump:
    """Reads the socket and hands the events to `on_event` until `done()` or the deadline."""

    def __init__(self, sock, conn, timeout):
        self.sock, self.conn, self.timeout = sock, conn, timeout
        self.closed = False
        self.terminated = None

    def flush(self):
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def run(self, on_event, done, deadline):
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError("scenario deadline passed")
            self.flush()
            try:
                data = self.sock.recv(262144)
            except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
                data = b""
            if not data:
                self.closed = True
                return
            for ev in self.conn.receive_data(data):
                if isinstance(ev, h2.events.ConnectionTerminated):
                    self.terminated = ev.error_code
                on_event(ev)
            self.flush()


def concurrent(args):
    sizes = [int(s) for s in args.sizes.split(",")]
    sock = connect(args)
    conn = h2conn()
    conn.initiate_connection()
    # larger stream windows and frames than the defaults: the server must follow them
    conn.update_settings({
        h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20,
        h2.settings.SettingCodes.MAX_FRAME_SIZE: 65536,
    })
    if args.conn_window > 65535:
        conn.increment_flow_control_window(args.conn_window - 65535)
    pump = Pump(sock, conn, args.timeout)
    state = {"settings": False}
    streams = {}  # id -> dict(i, body, sent, got, status)
    next_i = [0]
    result = {"completed": 0, "ok": 0, "errors": [], "max_open": 0,
              "bytes_up": 0, "bytes_down": 0, "server_max_concurrent": None}

    def err(msg):
        if len(result["errors"]) < 10:
            result["errors"].append(msg)

    def open_more():
        if not state["settings"]:
            return
        limit = conn.remote_settings.max_concurrent_streams
        while next_i[0] < args.streams and conn.open_outbound_streams < limit:
            i = next_i[0]
            next_i[0] += 1
            size = sizes[i % len(sizes)]
            body = random.Random(i).randbytes(size)
            sid = conn.get_next_available_stream_id()
            hdrs = base_headers(args, "POST", "%s/%d" % (args.path, i))
            hdrs.append((b"content-length", str(size).encode()))
            conn.send_headers(sid, hdrs, end_stream=(size == 0))
            streams[sid] = {"i": i, "body": body, "sent": 0, "got": bytearray(),
                            "status": None}
            result["max_open"] = max(result["max_open"], conn.open_outbound_streams)

    def send_bodies():
        for sid, s in streams.items():
            body = s["body"]
            # bounded: each round sends a frame or stops
            while s["sent"] < len(body):
                try:
                    window = conn.local_flow_control_window(sid)
                except h2.exceptions.StreamClosedError:
                    break
                n = min(window, conn.max_outbound_frame_size, len(body) - s["sent"])
                if n <= 0:
                    break
                end = s["sent"] + n == len(body)
                conn.send_data(sid, body[s["sent"]:s["sent"] + n], end_stream=end)
                s["sent"] += n
                result["bytes_up"] += n

    def finish(sid):
        s = streams.pop(sid)
        result["completed"] += 1
        if s["status"] != b"200":
            err("stream %d (#%d): status %r" % (sid, s["i"], s["status"]))
        elif bytes(s["got"]) != s["body"]:
            err("stream %d (#%d): %d bytes back for %d sent, differing" %
                (sid, s["i"], len(s["got"]), len(s["body"])))
        else:
            result["ok"] += 1

    def on_event(ev):
        if isinstance(ev, h2.events.RemoteSettingsChanged):
            state["settings"] = True
            result["server_max_concurrent"] = conn.remote_settings.max_concurrent_streams
        elif isinstance(ev, h2.events.ResponseReceived):
            streams[ev.stream_id]["status"] = dict(ev.headers).get(b":status")
        elif isinstance(ev, h2.events.DataReceived):
            streams[ev.stream_id]["got"] += ev.data
            result["bytes_down"] += len(ev.data)
            conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            finish(ev.stream_id)
        elif isinstance(ev, h2.events.StreamReset):
            if ev.stream_id in streams:
                err("stream %d reset: %s" % (ev.stream_id, ev.error_code))
                streams.pop(ev.stream_id)
                result["completed"] += 1
        elif isinstance(ev, h2.events.ConnectionTerminated):
            err("GOAWAY %s (last stream %s)" % (ev.error_code, ev.last_stream_id))
        open_more()
        send_bodies()

    deadline = time.monotonic() + args.timeout
    try:
        pump.run(on_event,
                 lambda: result["completed"] >= args.streams or pump.terminated is not None,
                 deadline)
    except Exception as e:  # reported, not raised: the test prints it
        err("client: %r" % (e,))
    if pump.closed and result["completed"] < args.streams:
        err("connection closed after %d streams" % result["completed"])
    result["goaway"] = pump.terminated
    sock.close()
    return result


def request(args):
    sock = connect(args)
    conn = h2conn(validate=False)
    conn.initiate_connection()
    pump = Pump(sock, conn, args.timeout)
    result = {"status": None, "headers": [], "body": "", "reset": None, "goaway": None,
              "closed": False, "after": None}
    streams = {}

    def on_event(ev):
        sid = getattr(ev, "stream_id", None)
        s = streams.get(sid)
        if s is None:
            return
        if isinstance(ev, (h2.events.ResponseReceived, h2.events.InformationalResponseReceived)):
            s["heads"].append([[text(n), text(v)] for n, v in ev.headers])
        elif isinstance(ev, h2.events.TrailersReceived):
            s["trailers"] = [[text(n), text(v)] for n, v in ev.headers]
        elif isinstance(ev, h2.events.DataReceived):
            s["body"] += ev.data
            conn.acknowledge_received_data(ev.flow_controlled_length, sid)
        elif isinstance(ev, h2.events.StreamEnded):
            s["done"] = True
        elif isinstance(ev, h2.events.StreamReset):
            s["reset"] = int(ev.error_code)
            s["done"] = True

    def one(hdrs, body):
        sid = conn.get_next_available_stream_id()
        streams[sid] = {"heads": [], "body": b"", "done": False, "reset": None, "trailers": None}
        conn.send_headers(sid, hdrs, end_stream=body is None)
        if body is not None:
            conn.send_data(sid, body, end_stream=True)
        pump.run(on_event, lambda: streams[sid]["done"] or pump.terminated is not None,
                 time.monotonic() + args.timeout)
        return streams[sid]

    hdrs = [(n.encode(), v.encode()) for n, v in json.loads(args.headers)]
    body = args.body.encode() if args.body is not None else None
    s = one(hdrs, body)
    final = [h for h in s["heads"] if not dict(h).get(":status", "200").startswith("1")]
    if final:
        result["headers"] = final[0]
        result["status"] = int(dict(final[0])[":status"])
    result["interim"] = [int(dict(h)[":status"]) for h in s["heads"] if h not in final]
    result["trailers"] = s["trailers"]
    result["body"] = s["body"].decode("latin-1")
    result["reset"] = s["reset"]
    if args.then_get and pump.terminated is None and not pump.closed:
        after = one(base_headers(args, "GET", args.then_get), None)
        final = [h for h in after["heads"] if not dict(h).get(":status", "200").startswith("1")]
        result["after"] = int(dict(final[0])[":status"]) if final else None
    result["goaway"] = None if pump.terminated is None else int(pump.terminated)
    result["closed"] = pump.closed
    sock.close()
    return result


def websocket(args):
    sock = connect(args)
    conn = h2conn(validate=False)
    conn.initiate_connection()
    pump = Pump(sock, conn, args.timeout)
    result = {"settings_connect_protocol": None, "status": None, "greeting": "", "echo": "",
              "ended": False, "reset": None}
    state = {"settings": False, "head": False, "data": b""}

    def on_event(ev):
        if isinstance(ev, h2.events.RemoteSettingsChanged):
            state["settings"] = True
            result["settings_connect_protocol"] = conn.remote_settings.get(
                h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL)
        elif isinstance(ev, h2.events.ResponseReceived):
            result["status"] = int(dict(ev.headers)[b":status"])
            state["head"] = True
        elif isinstance(ev, h2.events.DataReceived):
            state["data"] += ev.data
            conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            result["ended"] = True
        elif isinstance(ev, h2.events.StreamReset):
            result["reset"] = int(ev.error_code)

    deadline = time.monotonic() + args.timeout
    pump.run(on_event, lambda: state["settings"], deadline)
    sid = conn.get_next_available_stream_id()
    hdrs = [
        (b":method", b"CONNECT"),
        (b":protocol", b"websocket"),
        (b":scheme", b"https" if args.tls else b"http"),
        (b":path", args.path.encode()),
        (b":authority", ("localhost:%d" % args.port).encode()),
        (b"sec-websocket-version", b"13"),
    ]
    conn.send_headers(sid, hdrs)
    greeting = args.greeting.encode()
    pump.run(on_event, lambda: state["head"] and len(state["data"]) >= len(greeting)
             or result["reset"] is not None or pump.terminated is not None, deadline)
    result["greeting"] = state["data"].decode("latin-1")
    state["data"] = b""
    if result["status"] == 200:
        msg = args.send.encode()
        conn.send_data(sid, msg)
        pump.run(on_event, lambda: len(state["data"]) >= len(msg)
                 or result["reset"] is not None or pump.closed, deadline)
        result["echo"] = state["data"].decode("latin-1")
        conn.end_stream(sid)
        pump.run(on_event, lambda: result["ended"] or result["reset"] is not None
                 or pump.closed, deadline)
    sock.close()
    return result


def main():
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=["concurrent", "request", "websocket"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tls", help="CA file; TLS with ALPN h2 (else h2c, prior knowledge)")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--streams", type=int, default=200)
    p.add_argument("--sizes", default="0,1024,1048576")
    p.add_argument("--path", default="/echo")
    p.add_argument("--conn-window", type=int, default=65535)
    p.add_argument("--headers", default="[]")
    p.add_argument("--body")
    p.add_argument("--then-get")
    p.add_argument("--send", default="hello over h2\n")
    p.add_argument("--greeting", default="hello from the backend\n")
    args = p.parse_args()
    result = {"concurrent": concurrent, "request": request, "websocket": websocket}[
        args.scenario](args)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
