//! Protocol errors (RFC 9113 §5.4, §6, §8.1.1), each answered with the code the RFC names: a
//! connection error is a GOAWAY with that code, then the close; a stream error an RST_STREAM
//! with it, the connection serving on (a GET after it is answered), and no malformed request
//! ever reaches a backend.

use std::time::Duration;

use serde_json::json;

use crate::both_modes;
use crate::common::h2::{
    code, data, encode, flag, frame, kind, ping, rst_stream, run_py, setting, window_update,
    HoldBackend, Mode, Setup, Wire, PREFACE,
};
use crate::common::tls::target_backend;
use crate::common::Backend;

fn setup(mode: Mode) -> (Setup, Backend) {
    let backend = target_backend();
    let s = Setup::start(mode, &[backend.addr], json!({}));
    (s, backend)
}

/// The server ends the connection with GOAWAY `want`, then closes.
#[track_caller]
pub fn assert_goaway(w: &mut Wire, want: u32, what: &str) {
    let got = w.wait_goaway();
    assert_eq!(
        got.map(|g| g.1),
        Some(want),
        "{what}: GOAWAY (last id, code) {got:?}, want code {want:#x}"
    );
    assert!(
        w.wait_closed(),
        "{what}: the connection closes after GOAWAY"
    );
}

/// Stream `id` is reset with `want`, and the connection still answers a GET.
#[track_caller]
pub fn assert_reset(w: &mut Wire, id: u32, want: u32, what: &str) {
    let got = w.wait_reset(id);
    assert_eq!(
        got,
        Some(want),
        "{what}: stream {id} got {:?}",
        w.streams.get(&id)
    );
    assert!(w.goaway.is_none(), "{what}: no GOAWAY: {:?}", w.goaway);
    let after = w.get("/after");
    assert_eq!(after.status(), 200, "{what}: a GET after it: {after:?}");
    assert_eq!(after.text(), "answer to /after");
}

/// A connection that is not HTTP/2 after all: over TLS, where ALPN said `h2`, bytes that are not
/// the preface are a connection error PROTOCOL_ERROR (§3.4); on the plain port, where a
/// connection that does not open with the preface is HTTP/1.1, the near-preface `PRI * HTTP/2.0`
/// without its `SM` gets an HTTP/1.1 error and the close. Either way, the right preface
/// followed by a frame that is not SETTINGS is PROTOCOL_ERROR (§3.4: the preface ends with the
/// client's SETTINGS).
fn bad_preface(mode: Mode) {
    let (s, _b) = setup(mode);
    match mode {
        Mode::Tls => {
            let mut w = s.raw();
            w.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
            assert_goaway(&mut w, code::PROTOCOL_ERROR, "HTTP/1.1 after ALPN h2");
        }
        Mode::H2c => {
            let mut w = s.raw();
            w.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n");
            let got = w.read_to_close();
            let text = String::from_utf8_lossy(&got);
            assert!(
                text.starts_with("HTTP/1.1 400") || text.starts_with("HTTP/1.1 505"),
                "a broken preface on the plain port is an HTTP/1.1 error: {text:?}"
            );
        }
    }
    let mut w = s.raw();
    let mut bytes = PREFACE.to_vec();
    bytes.extend(ping(*b"no-sets!"));
    w.send(&bytes);
    assert_goaway(&mut w, code::PROTOCOL_ERROR, "PING before SETTINGS");
    // and a good connection is served
    let mut w = s.wire();
    assert_eq!(w.get("/fine").status(), 200);
}

/// DATA, WINDOW_UPDATE (of any increment), RST_STREAM on an idle stream (§5.1: "idle"), HEADERS on an even
/// (server) stream id or an id lower than one used (§5.1.1), CONTINUATION without HEADERS
/// (§6.10) and any frame inside an open field block (§6.10): connection PROTOCOL_ERROR.
fn frames_on_idle_streams(mode: Mode) {
    let (s, b) = setup(mode);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("DATA on idle stream 5", data(5, b"x", false)),
        ("WINDOW_UPDATE on idle stream 5", window_update(5, 100)),
        // an increment of 0 is a stream error on an open stream, but an idle stream gets no
        // RST_STREAM (§6.4)
        ("WINDOW_UPDATE of 0 on idle stream 7", window_update(7, 0)),
        ("RST_STREAM on idle stream 5", rst_stream(5, code::CANCEL)),
        ("HEADERS on even stream 2", {
            let block = encode(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":authority", "localhost"),
                (":path", "/even"),
            ]);
            frame(
                kind::HEADERS,
                flag::END_HEADERS | flag::END_STREAM,
                2,
                &block,
            )
        }),
        (
            "CONTINUATION without HEADERS",
            frame(kind::CONTINUATION, flag::END_HEADERS, 1, &[]),
        ),
    ];
    for (what, bytes) in cases {
        let mut w = s.wire();
        w.send(&bytes);
        assert_goaway(&mut w, code::PROTOCOL_ERROR, what);
    }
    // a lower id after a higher one: 3 after 5
    let mut w = s.wire();
    let fields = w.request_fields("GET", "/five", &[]);
    w.headers(5, &fields, true);
    assert_eq!(w.response(5).status(), 200);
    let fields = w.request_fields("GET", "/three", &[]);
    w.headers(3, &fields, true);
    assert_goaway(&mut w, code::PROTOCOL_ERROR, "HEADERS on stream 3 after 5");
    // a PING inside an open field block
    let mut w = s.wire();
    let block = encode(&w.request_fields("GET", "/split", &[]));
    let mut bytes = frame(kind::HEADERS, flag::END_STREAM, 1, &block[..4]);
    bytes.extend(ping(*b"inblock!"));
    w.send(&bytes);
    assert_goaway(&mut w, code::PROTOCOL_ERROR, "PING inside a field block");
    // a HEADERS on another stream inside an open field block
    let mut w = s.wire();
    let mut bytes = frame(kind::HEADERS, flag::END_STREAM, 1, &block[..4]);
    bytes.extend(frame(
        kind::HEADERS,
        flag::END_STREAM | flag::END_HEADERS,
        3,
        &block,
    ));
    w.send(&bytes);
    assert_goaway(&mut w, code::PROTOCOL_ERROR, "HEADERS inside a field block");
    let seen: Vec<String> = b.record.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(seen, ["/five"], "only the good request reached the backend");
}

/// Frames on streams that are closed: HEADERS on a finished stream (§5.1.1, an id not new:
/// connection PROTOCOL_ERROR); DATA on a finished stream, or after the client's END_STREAM on a
/// stream still waiting for its answer (§5.1 "half-closed (remote)"): stream STREAM_CLOSED, and
/// the waiting stream's backend request is cancelled; WINDOW_UPDATE and RST_STREAM on a finished
/// stream are ignored (§5.1 "closed": they may cross the END_STREAM).
fn frames_on_closed_streams(mode: Mode) {
    let (s, _b) = setup(mode);
    // DATA on a finished stream
    let mut w = s.wire();
    let id = w.start("GET", "/done", &[], None);
    assert_eq!(w.response(id).status(), 200);
    w.send(&data(id, b"late", true));
    assert_reset(&mut w, id, code::STREAM_CLOSED, "DATA on a finished stream");
    // WINDOW_UPDATE and RST_STREAM on it: ignored
    w.send(&window_update(id, 1000));
    w.send(&rst_stream(id, code::CANCEL));
    assert!(w.ping_pong(), "the connection lives on");
    assert!(w.goaway.is_none(), "no GOAWAY: {:?}", w.goaway);
    assert_eq!(w.get("/still").status(), 200);
    // HEADERS on the finished stream
    let fields = w.request_fields("GET", "/again", &[]);
    w.headers(id, &fields, true);
    assert_goaway(&mut w, code::PROTOCOL_ERROR, "HEADERS on a finished stream");

    // DATA after END_STREAM while the answer is awaited
    let hold = HoldBackend::start();
    let s = Setup::start(mode, &[hold.addr], json!({}));
    let mut w = s.wire();
    let id = w.start("GET", "/held", &[], None);
    assert_eq!(
        hold.arrivals
            .recv_timeout(Duration::from_secs(10))
            .ok()
            .as_deref(),
        Some("/held")
    );
    w.send(&data(id, b"more", false));
    let r = w.response(id);
    assert_eq!(
        r.reset,
        Some(code::STREAM_CLOSED),
        "DATA after END_STREAM: {r:?}"
    );
    assert_eq!(
        hold.ends
            .recv_timeout(Duration::from_secs(10))
            .ok()
            .as_deref(),
        Some("/held"),
        "the backend request of the reset stream is cancelled"
    );
    assert!(
        w.ping_pong() && w.goaway.is_none(),
        "the connection lives on"
    );
}

/// Frame sizes (§4.2, §6): a frame over our SETTINGS_MAX_FRAME_SIZE (16,384) carrying a field
/// block, PING not 8 bytes, RST_STREAM or WINDOW_UPDATE not 4, SETTINGS not a multiple of 6:
/// connection FRAME_SIZE_ERROR; PRIORITY not 5 bytes: stream FRAME_SIZE_ERROR.
fn frame_sizes(mode: Mode) {
    let (s, _b) = setup(mode);
    let big = vec![0u8; 16_385];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "HEADERS of 16,385 bytes",
            frame(kind::HEADERS, flag::END_HEADERS, 1, &big),
        ),
        ("DATA of 16,385 bytes", frame(kind::DATA, 0, 1, &big)),
        ("PING of 7 bytes", frame(kind::PING, 0, 0, b"1234567")),
        (
            "RST_STREAM of 3 bytes",
            frame(kind::RST_STREAM, 0, 1, &[0, 0, 8]),
        ),
        (
            "WINDOW_UPDATE of 5 bytes",
            frame(kind::WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0, 0]),
        ),
        (
            "SETTINGS of 7 bytes",
            frame(kind::SETTINGS, 0, 0, &[0, 4, 0, 0, 0, 1, 0]),
        ),
        (
            "SETTINGS ACK with a payload",
            frame(kind::SETTINGS, flag::ACK, 0, &[0; 6]),
        ),
    ];
    for (what, bytes) in cases {
        let mut w = s.wire();
        w.send(&bytes);
        assert_goaway(&mut w, code::FRAME_SIZE_ERROR, what);
    }
    let mut w = s.wire();
    w.send(&frame(kind::PRIORITY, 0, 3, &[0, 0, 0, 1]));
    assert_reset(&mut w, 3, code::FRAME_SIZE_ERROR, "PRIORITY of 4 bytes");
}

/// Requests that break the field rules of §8.2 and §8.3 are malformed (§8.1.1): stream error
/// PROTOCOL_ERROR, the connection serves on, and the backend never sees them.
fn pseudo_headers(mode: Mode) {
    let (s, b) = setup(mode);
    let mut w = s.wire();
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "no :path",
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                (":authority", "localhost"),
            ],
        ),
        (
            "no :method",
            vec![
                (":scheme", "http"),
                (":authority", "localhost"),
                (":path", "/"),
            ],
        ),
        (
            "no :scheme",
            vec![
                (":method", "GET"),
                (":authority", "localhost"),
                (":path", "/"),
            ],
        ),
        ("an empty :path", w.request_fields("GET", "", &[])),
        (
            "a :path not origin-form",
            w.request_fields("GET", "x/y", &[]),
        ),
        (
            "an uppercase field name",
            w.request_fields("GET", "/", &[("X-Upper", "1")]),
        ),
        (
            "connection",
            w.request_fields("GET", "/", &[("connection", "keep-alive")]),
        ),
        (
            "keep-alive",
            w.request_fields("GET", "/", &[("keep-alive", "timeout=5")]),
        ),
        (
            "proxy-connection",
            w.request_fields("GET", "/", &[("proxy-connection", "x")]),
        ),
        (
            "transfer-encoding",
            w.request_fields("GET", "/", &[("transfer-encoding", "chunked")]),
        ),
        (
            "upgrade",
            w.request_fields("GET", "/", &[("upgrade", "websocket")]),
        ),
        ("te: gzip", w.request_fields("GET", "/", &[("te", "gzip")])),
        (
            ":protocol on a GET",
            w.request_fields("GET", "/", &[(":protocol", "websocket")]),
        ),
        (
            "a response pseudo-header",
            w.request_fields("GET", "/", &[(":status", "200")]),
        ),
        (
            "a pseudo-header twice",
            w.request_fields("GET", "/", &[(":path", "/b")]),
        ),
        (
            "a pseudo-header after a field",
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                ("accept", "*/*"),
                (":authority", "localhost"),
                (":path", "/"),
            ],
        ),
        (
            "a value with a newline",
            w.request_fields("GET", "/", &[("x-a", "1\r\nx-b: 2")]),
        ),
        (
            "a name with a space",
            w.request_fields("GET", "/", &[("x a", "1")]),
        ),
    ];
    for (what, fields) in &cases {
        let id = w.next_id();
        w.headers(id, fields, true);
        let r = w.response(id);
        assert_eq!(r.reset, Some(code::PROTOCOL_ERROR), "{what}: {r:?}");
    }
    assert!(w.goaway.is_none(), "stream errors only: {:?}", w.goaway);
    // te: trailers is the one te allowed
    let r = w.request("GET", "/te", &[("te", "trailers")], None);
    assert_eq!(r.status(), 200, "te: trailers: {r:?}");
    let seen: Vec<String> = b.record.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(seen, ["/te"], "no malformed request reached the backend");

    // the same rules, seen by Python's h2 (its own HPACK and frame code)
    for (what, headers) in [
        (
            "no :path",
            json!([[":method", "GET"], [":scheme", "http"], [":authority", "x"]]),
        ),
        (
            "uppercase",
            json!([
                [":method", "GET"],
                [":scheme", "http"],
                [":authority", "x"],
                [":path", "/"],
                ["X-Upper", "1"]
            ]),
        ),
        (
            "connection",
            json!([
                [":method", "GET"],
                [":scheme", "http"],
                [":authority", "x"],
                [":path", "/"],
                ["connection", "close"]
            ]),
        ),
        (
            "te: gzip",
            json!([
                [":method", "GET"],
                [":scheme", "http"],
                [":authority", "x"],
                [":path", "/"],
                ["te", "gzip"]
            ]),
        ),
        (
            ":protocol",
            json!([
                [":method", "GET"],
                [":scheme", "http"],
                [":authority", "x"],
                [":path", "/"],
                [":protocol", "websocket"]
            ]),
        ),
    ] {
        let out = run_py(
            &s,
            "request",
            &["--headers", &headers.to_string(), "--then-get", "/py-after"],
            Duration::from_secs(30),
        );
        assert_eq!(
            out["reset"],
            json!(code::PROTOCOL_ERROR),
            "{what} (python): {out}"
        );
        assert_eq!(
            out["after"],
            json!(200),
            "{what} (python): the connection serves on: {out}"
        );
    }
}

/// Padding (§6.1, §6.2): a pad length as long as the payload or longer is a connection error
/// PROTOCOL_ERROR, in DATA and in HEADERS; padding within bounds is taken off and never
/// forwarded.
fn padding(mode: Mode) {
    let (s, b) = setup(mode);
    // good padding: DATA of 5 bytes + 10 of padding, HEADERS padded too
    let mut w = s.wire();
    let id = w.next_id();
    let block = encode(&w.request_fields("POST", "/echo-padded", &[("content-length", "5")]));
    let mut payload = vec![3u8];
    payload.extend_from_slice(&block);
    payload.extend_from_slice(&[0, 0, 0]);
    w.send(&frame(
        kind::HEADERS,
        flag::END_HEADERS | flag::PADDED,
        id,
        &payload,
    ));
    let mut payload = vec![10u8];
    payload.extend_from_slice(b"hello");
    payload.extend_from_slice(&[0u8; 10]);
    w.send(&frame(
        kind::DATA,
        flag::END_STREAM | flag::PADDED,
        id,
        &payload,
    ));
    let r = w.response(id);
    assert_eq!((r.status(), r.text().as_str()), (200, "hello"), "{r:?}");
    assert_eq!(b.record.requests()[0].body, b"hello");

    // a pad length of all the payload after it is a DATA of no data: fine; one more is the
    // whole payload (§6.1: "the length of the frame payload or greater"), on an open stream
    let mut w = s.wire();
    let id = w.next_id();
    let fields = w.request_fields("POST", "/echo", &[("content-length", "5")]);
    w.headers(id, &fields, false);
    w.send(&frame(kind::DATA, flag::PADDED, id, &[4, 0, 0, 0, 0]));
    assert!(
        w.ping_pong() && w.goaway.is_none(),
        "all padding, no data: fine"
    );
    w.send(&frame(kind::DATA, flag::PADDED, id, &[5, 1, 2, 3, 4]));
    assert_goaway(
        &mut w,
        code::PROTOCOL_ERROR,
        "DATA padding as long as its payload",
    );
    // longer than the payload, in HEADERS
    let mut w = s.wire();
    let block = encode(&w.request_fields("GET", "/", &[]));
    let mut payload = vec![block.len() as u8 + 1];
    payload.extend_from_slice(&block);
    w.send(&frame(
        kind::HEADERS,
        flag::END_HEADERS | flag::END_STREAM | flag::PADDED,
        1,
        &payload,
    ));
    assert_goaway(
        &mut w,
        code::PROTOCOL_ERROR,
        "HEADERS padding past its payload",
    );
}

/// Flow-control overflow (§6.9.1): a WINDOW_UPDATE taking the connection's send window past
/// 2^31-1 is a connection FLOW_CONTROL_ERROR; one taking a stream's is a stream
/// FLOW_CONTROL_ERROR (the stream's backend request cancelled); SETTINGS_INITIAL_WINDOW_SIZE past
/// 2^31-1 is a connection FLOW_CONTROL_ERROR (§6.5.2); an increment of 0 is PROTOCOL_ERROR
/// (§6.9), on the connection or the stream.
fn window_overflow(mode: Mode) {
    let hold = HoldBackend::start();
    let s = Setup::start(mode, &[hold.addr], json!({}));
    let mut w = s.wire();
    w.send(&window_update(0, 0x7fff_ffff));
    assert_goaway(
        &mut w,
        code::FLOW_CONTROL_ERROR,
        "connection window past 2^31-1",
    );

    let mut w = s.wire_with(&[(setting::INITIAL_WINDOW_SIZE, 0x8000_0000)]);
    assert_goaway(
        &mut w,
        code::FLOW_CONTROL_ERROR,
        "INITIAL_WINDOW_SIZE of 2^31",
    );

    let mut w = s.wire();
    w.send(&window_update(0, 0));
    assert_goaway(
        &mut w,
        code::PROTOCOL_ERROR,
        "connection WINDOW_UPDATE of 0",
    );

    let mut w = s.wire();
    let id = w.start("GET", "/window", &[], None);
    assert_eq!(
        hold.arrivals
            .recv_timeout(Duration::from_secs(10))
            .ok()
            .as_deref(),
        Some("/window")
    );
    w.send(&window_update(id, 0x7fff_ffff));
    let r = w.response(id);
    assert_eq!(
        r.reset,
        Some(code::FLOW_CONTROL_ERROR),
        "stream window past 2^31-1: {r:?}"
    );
    assert_eq!(
        hold.ends
            .recv_timeout(Duration::from_secs(10))
            .ok()
            .as_deref(),
        Some("/window"),
        "the reset stream's backend request is cancelled"
    );
    let id = w.start("GET", "/zero", &[], None);
    assert_eq!(
        hold.arrivals
            .recv_timeout(Duration::from_secs(10))
            .ok()
            .as_deref(),
        Some("/zero")
    );
    w.send(&window_update(id, 0));
    let r = w.response(id);
    assert_eq!(
        r.reset,
        Some(code::PROTOCOL_ERROR),
        "stream WINDOW_UPDATE of 0: {r:?}"
    );
    assert!(
        w.ping_pong() && w.goaway.is_none(),
        "the connection lives on"
    );
}

/// DATA past the window we gave (§6.9.1): a stream that cannot forward its body yet (queued
/// behind `max_conns`) holds what the client sent; 65,535 bytes fit its window, one more is a
/// stream FLOW_CONTROL_ERROR; over many such streams, DATA past the connection window (1 MiB)
/// is a connection FLOW_CONTROL_ERROR.
fn data_past_window(mode: Mode) {
    let hold = HoldBackend::start();
    let s = Setup::start(
        mode,
        &[hold.addr],
        json!({"max_conns": 1, "queue_timeout": "30s"}),
    );
    let mut holder = s.wire();
    holder.start("GET", "/slot", &[], None);
    assert_eq!(
        hold.arrivals
            .recv_timeout(Duration::from_secs(10))
            .ok()
            .as_deref(),
        Some("/slot")
    );
    let window = vec![7u8; 65_535];
    let mut w = s.wire();
    let id = w.next_id();
    let fields = w.request_fields("POST", "/queued", &[("content-length", "100000")]);
    w.headers(id, &fields, false);
    w.send_data(id, &window, false);
    assert!(w.ping_pong(), "a full window is fine");
    assert!(
        w.streams.get(&id).is_none_or(|r| r.reset.is_none()),
        "{:?}",
        w.streams.get(&id)
    );
    w.send(&data(id, b"!", false));
    let r = w.response(id);
    assert_eq!(
        r.reset,
        Some(code::FLOW_CONTROL_ERROR),
        "one byte past the window: {r:?}"
    );
    assert!(
        w.ping_pong() && w.goaway.is_none(),
        "the connection lives on"
    );

    // the connection window: 16 streams of 65,535 bytes leave 16 bytes of it (on a second
    // connection: the first keeps the backend slot)
    let mut w = s.wire();
    for _ in 0..16 {
        let id = w.next_id();
        let fields = w.request_fields("POST", "/queued", &[("content-length", "100000")]);
        w.headers(id, &fields, false);
        w.send_data(id, &window, false);
    }
    assert!(w.ping_pong(), "1,048,560 bytes fit the connection window");
    let id = w.next_id();
    let fields = w.request_fields("POST", "/queued", &[("content-length", "100000")]);
    w.headers(id, &fields, false);
    w.send(&data(id, &[1u8; 17], false));
    assert_goaway(
        &mut w,
        code::FLOW_CONTROL_ERROR,
        "DATA past the connection window",
    );
    assert!(holder.ping_pong(), "the slot's holder is unharmed");
}

/// A stream error for DATA past the stream's window must not cost the connection its window:
/// the frame counted against the connection too (§6.9), and it is discarded, so its credit comes
/// back. 70 such errors (70 frames of 16 KiB, more than the 1 MiB connection window) leave the
/// connection able to send.
fn stream_flow_errors_keep_the_connection_window(mode: Mode) {
    let hold = HoldBackend::start();
    let s = Setup::start(
        mode,
        &[hold.addr],
        json!({"max_conns": 1, "queue_timeout": "30s"}),
    );
    let mut holder = s.wire();
    holder.start("GET", "/slot", &[], None);
    assert_eq!(hold.arrival(), "/slot");
    let mut w = s.wire();
    let window = vec![7u8; 65_535];
    let over = vec![8u8; 16_384];
    for i in 0..70 {
        let id = w.next_id();
        let fields = w.request_fields("POST", "/queued", &[("content-length", "200000")]);
        w.headers(id, &fields, false);
        assert!(
            w.send_data_flow(id, &window, false),
            "stream #{i}: the stream's window within the connection's ({} left)",
            w.conn_window()
        );
        // one frame past the stream's window, within the connection's
        assert!(
            w.wait(|w| w.conn_window() >= 16_384),
            "stream #{i}: room in the connection window ({} left)",
            w.conn_window()
        );
        w.send_data(id, &over, false);
        assert_eq!(
            w.wait_reset(id),
            Some(code::FLOW_CONTROL_ERROR),
            "stream #{i}"
        );
    }
    // a new stream runs, and with it the connection's credit is counted again
    w.start("GET", "/queued-get", &[], None);
    assert!(
        w.ping_pong() && w.goaway.is_none(),
        "the connection lives on"
    );
    assert!(w.ping_pong());
    let sent = 70 * (65_535 + 16_384);
    assert!(
        w.conn_window() >= 512 * 1024,
        "the connection window is open again ({} after {sent} bytes sent)",
        w.conn_window()
    );
}

both_modes!(
    stream_flow_errors_keep_the_connection_window,
    bad_preface,
    frames_on_idle_streams,
    frames_on_closed_streams,
    frame_sizes,
    pseudo_headers,
    padding,
    window_overflow,
    data_past_window,
);
