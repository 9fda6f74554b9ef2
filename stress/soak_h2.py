"""HTTP/2 clients for stress/soak.py: h2 over TLS (ALPN `h2`) and h2c (prior knowledge).

Built on Python's `h2` package (`pip install h2`) over plain sockets and the `ssl` module. Each
client thread keeps one connection and sends batches of 2 to `--h2-streams` requests on it at
once (concurrent streams), of the same kinds as the HTTP/1.1 clients: `GET /`, `POST /echo` with
`content-length`, `POST /echo` without it (the proxy sends it to the backend chunked) and
`GET /bytes/1-4 MiB`. Every body is checked byte for byte. A connection serves many batches; one
batch in ten (or past 2,000 streams) opens a new one, except in each proxy's first HTTP/2 client,
which keeps its connection until the proxy ends it: it meets ferrule's cap of 10,000 streams per
connection every few minutes, a GOAWAY (NO_ERROR) with streams in flight, which must all be
answered (those above the GOAWAY's last stream id are retried).

How a stream is counted (the HTTP/1.1 rules, read for HTTP/2):
- `ok`, `wrong_body` (fatal), `status_NNN`, `lost` (fatal): an idempotent request answered 5xx,
  or reset or left without a response head for any reason but the two below, while at least one
  other backend was up;
- `client_retried`: refused in a way RFC 9113 §8.7 says was not processed (RST_STREAM
  REFUSED_STREAM, or a stream above a GOAWAY's last stream id): a client retries it;
- `cut_mid_body`: a large download reset after its head (its backend was killed while it
  streamed); `failed_unretryable`: any other request that failed (a POST whose backend died,
  or a stream cut after its head).
Every socket operation has a timeout (`IO_TIMEOUT`), every batch a deadline.
"""

import os
import random
import select
import socket
import ssl
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.connection import ConnectionInputs, ConnectionState

IO_TIMEOUT = 15  # seconds, every socket operation
BATCH_DEADLINE = 60  # seconds, one batch of concurrent streams
STREAMS_PER_CONN = 2000  # a new connection past this many streams (ferrule's cap is 10,000)
REFUSED_STREAM = 0x7


class Stream:
    def __init__(self, kind, rng):
        self.kind = kind
        self.body = b""  # what we send
        self.sent = 0
        self.length = 0  # expected size of a large download
        self.cl = True  # send content-length
        if kind == "echo":
            self.body = os.urandom(rng.choice([10, 1000, 60000]))
        elif kind == "chunked":
            self.body = os.urandom(rng.randint(1, 200_000))
            self.cl = False
        elif kind == "large":
            self.length = rng.choice([1 << 20, 4 << 20])
        self.status = None
        self.headers = {}
        self.data = bytearray()
        self.ended = False
        self.reset = None  # RST_STREAM error code
        self.refused = False  # not processed: retry is safe

    @property
    def done(self):
        return self.ended or self.reset is not None or self.refused

    def request(self, scheme, cookie):
        method = "GET" if self.kind in ("get", "large") else "POST"
        path = {"get": "/", "large": f"/bytes/{self.length}"}.get(self.kind, "/echo")
        headers = [(":method", method), (":scheme", scheme), (":authority", "soak"),
                   (":path", path)]
        if cookie:
            headers.append(("cookie", cookie))
        if method == "POST" and self.cl:
            headers.append(("content-length", str(len(self.body))))
        return headers


class H2Client:
    """One client thread's life: connections, batches of streams, outcomes into `soak.count`."""

    def __init__(self, soak, proxy, proto, seed, long_lived=False):
        self.soak, self.proxy, self.proto = soak, proxy, proto
        self.long_lived = long_lived
        self.tls = proto == "h2tls"
        self.rng = random.Random(seed)
        self.sock = None
        self.conn = None
        self.opened = 0  # streams opened on this connection
        self.goaway = None  # last stream id of a GOAWAY received
        self.cookie = None

    def count(self, outcome, detail=None, fatal=False):
        self.soak.count(outcome, detail, fatal, proto=self.proto)

    # ------------------------------------------------------------------------- connection

    def close(self):
        if self.sock:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = self.conn = None

    def connect(self):
        self.close()
        sock = socket.create_connection(("127.0.0.1", self.proxy["port"]), timeout=IO_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2", "http/1.1"])
            sock = ctx.wrap_socket(sock, server_hostname="localhost")
            if sock.selected_alpn_protocol() != "h2":
                alpn = sock.selected_alpn_protocol()
                sock.close()
                raise ssl.SSLError(f"ALPN chose {alpn!r}, not h2")
        conn = h2.connection.H2Connection(config=h2.config.H2Configuration(
            client_side=True, header_encoding="latin-1"))
        # h2 closes its state machine on GOAWAY and then takes no frame, but the streams up to
        # the GOAWAY's last stream id still get their answers (RFC 9113 §6.8): this connection
        # stays open on a GOAWAY (no new stream is opened on it after one: see run)
        sm = conn.state_machine
        sm._transitions = dict(sm._transitions)
        sm._transitions[(ConnectionState.CLIENT_OPEN, ConnectionInputs.RECV_GOAWAY)] = (
            None, ConnectionState.CLIENT_OPEN)
        conn.initiate_connection()
        # a 1 MiB stream window and 16 MiB for the connection: the proxy must follow them
        conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
        conn.increment_flow_control_window(16 << 20)
        self.sock, self.conn = sock, conn
        self.opened = 0
        self.goaway = None
        self.flush()

    def flush(self):
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def readable(self, wait):
        if self.tls and self.sock.pending():
            return True
        return bool(select.select([self.sock], [], [], wait)[0])

    # ------------------------------------------------------------------------- one batch

    def send_bodies(self, streams):
        """Sends what the windows allow; True while a body still waits for credit."""
        waiting = False
        for sid, st in streams.items():
            if st.done or st.sent >= len(st.body):
                continue
            budget = 64 * 1024  # per stream and turn, so one stream does not hog the socket
            while st.sent < len(st.body) and budget > 0:
                room = min(self.conn.local_flow_control_window(sid),
                           self.conn.max_outbound_frame_size, budget,
                           len(st.body) - st.sent)
                if room <= 0:
                    waiting = True
                    break
                end = st.sent + room == len(st.body)
                self.conn.send_data(sid, st.body[st.sent:st.sent + room], end_stream=end)
                st.sent += room
                budget -= room
            if st.sent < len(st.body):
                waiting = True
        self.flush()
        return waiting

    def on_event(self, ev, streams):
        st = streams.get(getattr(ev, "stream_id", None))
        if isinstance(ev, h2.events.ResponseReceived) and st:
            st.headers = dict(ev.headers)
            st.status = int(st.headers.get(":status", "0"))
        elif isinstance(ev, h2.events.DataReceived):
            if st:
                st.data += ev.data
            self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded) and st:
            st.ended = True
        elif isinstance(ev, h2.events.StreamReset) and st:
            if ev.error_code == REFUSED_STREAM and st.status is None:
                st.refused = True
            else:
                st.reset = ev.error_code
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = ev.last_stream_id if ev.last_stream_id is not None else 0
            code = int(ev.error_code)
            # NO_ERROR: the 10,000-stream cap or an idle timeout; anything else is our fault
            # or the proxy's
            self.count(f"goaway_{code:#x}", f"{self.proxy['name']} {self.proto} GOAWAY "
                       f"{code:#x} last stream {self.goaway}: {ev.additional_data!r}",
                       fatal=code != 0)
            for sid, s in streams.items():
                if sid > self.goaway and not s.done:
                    s.refused = True

    def batch(self, streams):
        """Opens the streams, sends their bodies, reads until each one is done."""
        scheme = "https" if self.tls else "http"
        for st in streams:
            sid = self.conn.get_next_available_stream_id()
            self.conn.send_headers(sid, st.request(scheme, self.cookie),
                                   end_stream=not st.body)
            self.opened += 1
            st.sid = sid
        by_id = {st.sid: st for st in streams}
        deadline = time.monotonic() + BATCH_DEADLINE
        while not all(st.done for st in streams):  # bounded: the deadline
            if time.monotonic() > deadline:
                raise TimeoutError("batch deadline passed")
            waiting = self.send_bodies(by_id)
            if waiting and not self.readable(0):
                if any(self.conn.local_flow_control_window(sid) > 0
                       for sid, st in by_id.items() if st.sent < len(st.body) and not st.done):
                    continue  # credit left: send more before reading
                if not self.readable(IO_TIMEOUT):
                    raise TimeoutError("no frame within the timeout")
            data = self.sock.recv(262144)
            if not data:
                raise ConnectionError("the proxy closed the connection")
            for ev in self.conn.receive_data(data):
                self.on_event(ev, by_id)
            self.flush()

    # ------------------------------------------------------------------------- outcomes

    def judge(self, st, error):
        idempotent = st.kind in ("get", "large")
        if st.refused:
            self.count("client_retried", f"{self.proxy['name']} {self.proto} {st.kind} stream "
                       f"{st.sid} refused (GOAWAY last stream {self.goaway})")
            return
        if st.ended:
            # a whole response; a RST_STREAM NO_ERROR after it only stops our upload
            # (RFC 9113 §8.1: a server may answer before the request is complete)
            self.judge_answer(st, idempotent)
            return
        why = f"reset {st.reset:#x}" if st.reset is not None else repr(error)
        what = f"{self.proxy['name']} {self.proto} {st.kind} stream {st.sid}: {why}"
        if st.status is not None:  # the head came, the body did not end
            self.count("cut_mid_body" if st.kind == "large" else "failed_unretryable",
                       f"{what} after a {st.status} head, {len(st.data)} bytes")
        elif idempotent and self.soak.others_up():
            self.count("lost", what, fatal=True)
        else:
            self.count("failed_unretryable", what)

    def judge_answer(self, st, idempotent):
        set_cookie = st.headers.get("set-cookie")
        if set_cookie:
            self.cookie = set_cookie.split(";")[0]
        backend = st.headers.get("x-backend")
        data = bytes(st.data)
        detail = f"{self.proxy['name']} {self.proto} {st.kind} {st.status} from {backend}: " \
                 f"{len(data)} bytes"
        if st.status != 200:
            if idempotent and st.status >= 500 and self.soak.others_up():
                self.count("lost", detail + f" {data[:80]!r}", fatal=True)
            else:
                self.count(f"status_{st.status}", detail)
            return
        if st.kind == "get":
            ok = data == f"hello from backend :{backend}\n".encode()
        elif st.kind in ("echo", "chunked"):
            ok = data == st.body
        else:
            ok = data == self.soak.expected_bytes(st.length, backend)
        if ok:
            self.count("ok")
        else:
            self.count("wrong_body", detail, fatal=True)

    # ------------------------------------------------------------------------- the thread

    def run(self, max_streams):
        rng = self.rng
        while not self.soak.stop.is_set():  # bounded: the soak's end
            fresh = rng.random() < 0.1 or self.opened >= STREAMS_PER_CONN
            if self.conn is None or self.goaway is not None or fresh and not self.long_lived:
                try:
                    self.connect()
                except OSError as e:
                    self.close()
                    self.count("connect_failed", f"{self.proxy['name']} {self.proto}: {e!r}",
                               fatal=True)
                    self.soak.stop.wait(1)
                    continue
            if rng.random() < 0.1:
                self.cookie = None
            kinds = rng.choices(["get", "echo", "chunked", "large"], [55, 22, 15, 8],
                                k=rng.randint(2, max_streams))
            streams = [Stream(k, rng) for k in kinds]
            error = None
            try:
                self.batch(streams)
            except (OSError, TimeoutError, h2.exceptions.H2Error) as e:
                error = e
                self.close()
            except Exception as e:  # a bug here: say so, and go on with a new connection
                self.count("client_bug", f"{self.proxy['name']} {self.proto}: {e!r}", fatal=True)
                error = e
                self.close()
            for st in streams:
                if hasattr(st, "sid"):
                    self.judge(st, error)
                else:  # never sent (the connection failed while opening the batch)
                    self.count("client_retried")
