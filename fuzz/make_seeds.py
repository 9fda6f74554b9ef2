#!/usr/bin/env python3
"""Writes the hand-written seed corpora under fuzz/corpus/<target>/ (run from anywhere)."""
import json, os, struct, zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


REQUESTS = {
    "get": b"GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
    "post_cl": b"POST /submit HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
    "post_chunked": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "http10": b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "absolute": b"GET http://Target.example:81/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n",
    "hop_by_hop": b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n"
                  b"Keep-Alive: timeout=5\r\nTE: trailers, deflate\r\nUpgrade: h2c\r\n\r\n",
    "upgrade": b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    "xff_cookie": b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1, 1.2.3.4\r\n"
                  b"Cookie: a=1; FERRULE_BACKEND=0123456789abcdef; sid=x\r\nX-User: u\r\n\r\n",
    "cl_te": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    "leading_crlf": b"\r\n\r\nHEAD / HTTP/1.1\r\nHost: h\r\n\r\n",
    "options_star": b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
}
for name, head in REQUESTS.items():
    for opts in (0x00, 0x37):
        write("request_head", f"{name}_{opts:02x}", bytes([opts, 7]) + head)

RESPONSES = {
    "ok_cl": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nSet-Cookie: a=1\r\n\r\n",
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    "close": b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n",
    "hop": b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Internal\r\nX-Internal: 1\r\n"
           b"Keep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n",
    "continue": b"HTTP/1.1 100 Continue\r\n\r\n",
    "switching": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    "not_modified": b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n",
    "te_and_cl": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
}
for name, head in RESPONSES.items():
    for opts in (0x08, 0x1c, 0x29):
        write("response_head", f"{name}_{opts:02x}", bytes([opts]) + head)

CHUNKED = {
    "simple": b"5\r\nhello\r\n0\r\n\r\n",
    "ext_trailers": b"5;name=\"v\"\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\nNEXT",
    "ws_ext": b"3 ;x\r\nabc\r\n0\r\n\r\n",
    "big": b"FFFFFFFFFFFFFFFF\r\nab",
    "bad_lf": b"5\nhello\r\n0\r\n\r\n",
}
for name, body in CHUNKED.items():
    write("chunked", name, bytes([4, 3, 1, 5, 2]) + body)
write("chunked", "length", bytes([40, 0]) + b"x" * 50)
write("chunked", "until_close", bytes([1, 1, 9]) + b"anything")


def v2(cmd, fam, block):
    return b"\r\n\r\n\0\r\nQUIT\n" + bytes([0x20 | cmd, fam]) + struct.pack(">H", len(block)) + block


PROXY = {
    "v1_tcp4": b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\nGET / HTTP/1.1\r\n",
    "v1_tcp6": b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n",
    "v1_unknown": b"PROXY UNKNOWN\r\n",
    "v2_tcp4": v2(1, 0x11, bytes([192, 0, 2, 1, 198, 51, 100, 1]) + struct.pack(">HH", 56324, 443)),
    "v2_tcp6": v2(1, 0x21, bytes(15) + b"\x01" + bytes(15) + b"\x02" + struct.pack(">HH", 1, 2)),
    "v2_local": v2(0, 0x00, b""),
    "v2_unix": v2(1, 0x31, b"/tmp/a".ljust(108, b"\0") + b"/tmp/b".ljust(108, b"\0")),
    "v2_tlv": v2(1, 0x11, bytes(8) + bytes(4) + b"\x01\x00\x02h2" + b"\x02\x00\x04host"),
}
for name, data in PROXY.items():
    write("proxy_protocol", name, b"\x00" + data)

with open(os.path.join(ROOT, "config.json"), "rb") as f:
    base = f.read()
write("config", "config_json", b"\x00" + base)
write("config", "minimal", b"\x00" + json.dumps({"backends": [{"url": "http://127.0.0.1:9000"}]}).encode())
full = {
    "port": 0, "admin_port": 0, "strategy": "consistent-hash", "hash_key": "header:X-User",
    "trusted_proxies": ["10.0.0.0/8"], "proxy_protocol": True, "workers": 2,
    "backends": [{"url": "http://127.0.0.1:9000", "weight": 2, "max_conns": 10},
                 {"url": "https://[::1]:9443", "tls_skip_verify": True}],
    "backend_timeout": "30s", "connect_timeout": "1s", "retries": 2, "buffer_size": 16384,
    "enable_sticky_sessions": True, "sticky_mode": "cookie", "sticky_cookie_name": "SRV",
    "health_check_method": "tcp", "health_check_frequency": "5s", "health_check_expect": "200-399",
    "admin_token": "secret",
}
write("config", "full", b"\x00" + json.dumps(full).encode())
write("config", "edits", b"\x01" + bytes([0, 5, 23, 1, 0, 43, 2, 0, 18, 0, 30, 12, 0, 1, 200]))


SEP = b"\x00\xff\x00\xff"
TURN = b"\x00\xfe\x00\xfe"  # between a backend's answers to successive requests


def session(opts, cp, bp, room, client, schedule, *backends):
    """Options, piece sizes, client room, then the client's bytes, the schedule (one event a
    byte: op in the low 3 bits) and a script per backend connection (first byte: its flags)."""
    return bytes([opts, cp, bp, room]) + SEP.join([client, bytes(schedule)] + list(backends))


OK5 = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
write("session", "get", session(0, 0, 0, 0, REQUESTS["get"], [], b"\x00" + OK5))
write("session", "pending_connect", session(8, 7, 5, 4, REQUESTS["post_cl"],
      [0xf8, 4, 2, 2, 1, 3, 2, 7], b"\x01" + OK5))
write("session", "retry_refused", session(8, 0, 0, 0, REQUESTS["get"], [], b"\x02", b"\x00" + OK5))
write("session", "retry_reset", session(8, 0, 0, 0, REQUESTS["get"], [4, 2, 5 | 0x80], b"\x01" + OK5[:10],
      b"\x00" + OK5))
write("session", "pipelined", session(4, 13, 7, 0,
      REQUESTS["get"] + REQUESTS["post_cl"] + REQUESTS["post_chunked"], [0, 0, 0, 2, 2, 2, 0, 2, 2],
      b"\x00" + OK5 + TURN + b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
      b"3\r\nabc\r\n0\r\n\r\n" + TURN + b"HTTP/1.1 204 No Content\r\n\r\n"))
write("session", "http10_dechunk", session(0, 5, 3, 0, REQUESTS["http10"], [],
      b"\x00HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
write("session", "close_delimited", session(0, 1, 1, 0, REQUESTS["absolute"], [2, 2, 2, 5],
      b"\x00HTTP/1.0 200 OK\r\n\r\nuntil the end"))
write("session", "head", session(0, 0, 0, 0,
      b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", [],
      b"\x00HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + TURN + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
write("session", "upgrade", session(0, 0, 0, 0, REQUESTS["upgrade"] + b"client frames", [0, 2, 0, 2, 6],
      b"\x00HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nframes"))
write("session", "proxy_v1", session(1, 0, 0, 0, PROXY["v1_tcp4"] + b"Host: h\r\n\r\n", [],
      b"\x00" + OK5))
write("session", "sticky_id", session(6, 0, 0, 0, REQUESTS["xff_cookie"], [], b"\x00" + OK5))
write("session", "body_limit", session(32, 0, 0, 0,
      b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n" + b"x" * 100, [], b"\x00" + OK5))
write("session", "slow_client", session(16, 3, 0, 1, REQUESTS["get"], [0xf8, 7, 1, 1, 2, 1, 7, 7],
      b"\x04" + b"HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n" + b"y" * 300))
write("session", "head_timeout", session(0, 4, 0, 0, REQUESTS["get"], [0, 7, 7]))
write("session", "backend_timeout", session(0, 0, 0, 0, REQUESTS["get"], [0, 7, 7], b"\x00"))
write("session", "two_backends", session(64 | 8, 0, 0, 0, REQUESTS["get"] * 3, [],
      b"\x00" + OK5 + TURN + OK5, b"\x00" + OK5))
write("session", "bad_request", session(0, 0, 0, 0, REQUESTS["cl_te"], []))
write("session", "draining", session(128, 0, 0, 0, REQUESTS["get"] * 2, [], b"\x00" + OK5 + TURN + OK5))


# HTTP/2 (connection/h2/): frames, HPACK blocks, response heads
def h2frame(kind, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def h2lit(name, value):
    """An HPACK literal without indexing, new name, no Huffman."""
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


H2_FRAMES = {
    "settings": h2frame(4, 0, 0, struct.pack(">HI", 3, 100) + struct.pack(">HI", 4, 1 << 20) + struct.pack(">HI", 8, 1))
                + h2frame(4, 1, 0, b""),
    "window_update": h2frame(8, 0, 0, struct.pack(">I", 1 << 20)) + h2frame(8, 0, 1, struct.pack(">I", 0)),
    "headers_padded_priority": h2frame(1, 0x8 | 0x20 | 0x4 | 0x1, 1, b"\x02" + struct.pack(">IB", 0x80000000 | 3, 15)
                                       + bytes.fromhex("828684418cf1e3c2e5f23a6ba0ab90f4ff") + b"\x00\x00"),
    "continuation": h2frame(1, 0, 3, bytes.fromhex("8286")) + h2frame(9, 0, 3, bytes.fromhex("84"))
                    + h2frame(9, 4, 3, bytes.fromhex("418cf1e3c2e5f23a6ba0ab90f4ff")),
    "data_padded": h2frame(0, 0x8, 1, b"\x03abc\x00\x00\x00") + h2frame(0, 1, 1, b"end"),
    "ping_rst_priority": h2frame(6, 0, 0, b"12345678") + h2frame(3, 0, 5, struct.pack(">I", 8))
                         + h2frame(2, 0, 7, struct.pack(">IB", 5, 200)) + h2frame(2, 0, 9, struct.pack(">IB", 9, 1)),
    "goaway_unknown": h2frame(0xfa, 0xff, 0, b"ext") + h2frame(7, 0, 0, struct.pack(">II", 5, 11) + b"debug"),
    "push_promise": h2frame(5, 4, 1, struct.pack(">I", 2) + b"\x82"),
}
for name, frames in H2_FRAMES.items():
    write("h2_frame", name, b"\x00\x00" + frames)


def blocks(*bs):
    return b"".join(struct.pack("<H", len(b)) + b for b in bs)


H2_REQUESTS = {
    # RFC 7541 C.3 and C.4: three requests on one context
    "rfc_c3": (0x01, blocks(bytes.fromhex("828684410f7777772e6578616d706c652e636f6d"),
                            bytes.fromhex("828684be58086e6f2d6361636865"),
                            bytes.fromhex("828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565"))),
    "rfc_c4": (0x01, blocks(bytes.fromhex("828684418cf1e3c2e5f23a6ba0ab90f4ff"),
                            bytes.fromhex("828684be5886a8eb10649cbf"),
                            bytes.fromhex("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"))),
    "post_cookies": (0x00, blocks(bytes.fromhex("8387") + h2lit(b":authority", b"h") + h2lit(b":path", b"/up")
                                  + h2lit(b"cookie", b"a=1") + h2lit(b"x", b"y") + h2lit(b"cookie", b"b=2")
                                  + h2lit(b"te", b"trailers"))),
    "websocket": (0x02, blocks(h2lit(b":method", b"CONNECT") + h2lit(b":protocol", b"websocket")
                               + bytes.fromhex("87") + h2lit(b":path", b"/chat") + h2lit(b":authority", b"h")
                               + h2lit(b"sec-websocket-version", b"13"))),
    "connect": (0x00, blocks(h2lit(b":method", b"CONNECT") + h2lit(b":authority", b"h:443"))),
    "malformed": (0x00, blocks(bytes.fromhex("8286") + h2lit(b"connection", b"close") + bytes.fromhex("84"))),
    "size_updates": (0x20, blocks(bytes.fromhex("203f0182"), bytes.fromhex("3fe11f8286"))),
}
for name, (opts, data) in H2_REQUESTS.items():
    write("h2_request", name, bytes([opts]) + data)

H2_RESPONSES = {
    "hop": (0, RESPONSES["hop"]),
    "chunked": (0, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\nX-A: 1\r\n\r\n"),
    "no_content": (0, b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"),
    "head": (1, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"),
    "early_hints": (0, b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"),
    "switching": (4, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
                     b"Sec-WebSocket-Accept: x=\r\n\r\n"),
    "trailers": (8, b"X-Sum: abc\r\nContent-Length: 3\r\nGrpc-Status: 0\r\n\r\n"),
}
for name, (opts, head) in H2_RESPONSES.items():
    write("h2_response", name, bytes([opts]) + head)


# h2_session: the client's bytes are ops (fuzz/common/h2_ops.rs), each a byte (low 4 bits: which
# op) and the bytes it reads; the rest as for `session`
def h2ops(*ops):
    return b"".join(bytes(op) for op in ops)


H2_SETTINGS = [0, 0]  # SETTINGS, no parameter
H2_GET = [15]  # a whole GET
CHUNKED5 = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"
H2_SESSIONS = {
    "get": (0, 0, 0, 0, h2ops(H2_SETTINGS, H2_GET), [], b"\x00" + OK5),
    "three_gets_two_backends": (16 | 2, 0, 0, 0, h2ops(H2_SETTINGS, H2_GET, H2_GET, H2_GET), [],
                                b"\x00" + OK5 + TURN + OK5, b"\x00" + CHUNKED5),
    # SETTINGS: INITIAL_WINDOW_SIZE 2 (id index 3, value index 2); then a POST with a body
    "small_window_post": (0, 7, 3, 0, h2ops([0, 2, 3, 2], [12, 40], [13]), [0, 2, 0, 2, 1, 2],
                          b"\x00" + b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n" + b"x" * 40),
    # HEADERS with fields by every representation, split over a CONTINUATION; trailers
    "fields_continuation": (4, 0, 0, 0, h2ops(H2_SETTINGS, [1, 2, 0, 1, 5, 0x06, 0xa7, 0xd3, 0x08, 0xf0],
                                              [11, 0], [2, 0, 4]), [], b"\x00" + CHUNKED5),
    "ping_window_rst": (0, 0, 0, 0, h2ops(H2_SETTINGS, [5, 0x42], [3, 1 | 3 << 3], [1, 0, 0, 1, 0], [4, 0x20]),
                        [], b"\x01"),
    "goaway_client": (0, 0, 0, 0, h2ops(H2_SETTINGS, H2_GET, [6, 1]), [], b"\x00" + OK5),
    "drain": (128, 0, 0, 0, h2ops(H2_SETTINGS, H2_GET, H2_GET), [0, 7 | 2 << 3, 0], b"\x00" + OK5 + TURN + OK5),
    "limits": (32, 0, 0, 0, h2ops(H2_SETTINGS, H2_GET, H2_GET, H2_GET, [5, 0], [5, 2], [5, 4], [5, 6],
                                  [5, 8], [5, 10], [5, 12]), [], b"\x00" + OK5, b"\x00" + OK5),
    "websocket": (0, 0, 0, 0, h2ops(H2_SETTINGS, [1, 0, 0x08, 3, 0], [2, 0, 4]), [],
                  b"\x00" + b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nhi"),
    "timeouts": (2, 0, 0, 0, h2ops(H2_SETTINGS, H2_GET), [7, 7, 7], b"\x01", b"\x00" + OK5),
    "slow_client": (4, 5, 0, 1, h2ops(H2_SETTINGS, [12, 200]), [0, 1, 1, 2, 1, 7],
                    b"\x00" + b"HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n" + b"y" * 3000),
    "bad_preface_frame": (0, 0, 0, 0, h2ops(H2_GET), [], b"\x00" + OK5),
}
for name, (opts, cp, bp, room, ops, schedule, *backends) in H2_SESSIONS.items():
    write("h2_session", name, session(opts, cp, bp, room, ops, schedule, *backends))
