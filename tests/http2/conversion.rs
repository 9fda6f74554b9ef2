//! HTTP/2 ↔ HTTP/1.1 (RFC 9113 §8, RFC 8441), end to end:
//!
//! - request bodies: with `content-length` as they are, without it chunked to the backend (with
//!   the request's trailers as the chunked trailer section); DATA that disagrees with
//!   `content-length` is a stream PROTOCOL_ERROR (§8.1.1);
//! - responses: HEAD, 204 and 304 carry no DATA; 1xx interim answers (100 Continue to an
//!   `expect`, 103 Early Hints) pass as HEADERS before the final one; a chunked answer becomes
//!   DATA and its trailers a final HEADERS; hop-by-hop fields and `transfer-encoding` are gone
//!   (Python's h2, which refuses connection-specific fields in a response, agrees);
//! - WebSocket over HTTP/2 (extended CONNECT, `:protocol websocket`) to an HTTP/1.1 backend's
//!   Upgrade: `200`, then bytes both ways, through Python's h2 and, 300 KB each way within the
//!   flow-control windows, by hand.

use std::io::Write;
use std::time::Duration;

use serde_json::json;

use crate::both_modes;
use crate::common::h2::{code, run_py, Mode, Setup};
use crate::common::tls::{UpgradeBackend, UPGRADE_GREETING};
use crate::common::{ok_response, Backend, Reply};

/// A backend whose answers come from its target: `/head` (a length, no body for HEAD), `/204`,
/// `/304`, `/early` (103 then 200), `/chunked` (a chunked body with trailers), `/hop` (every
/// hop-by-hop field), anything else: the request body echoed.
fn shaped() -> Backend {
    Backend::with_handler("shaped", |seen, w| match seen.target.as_str() {
        "/head" => {
            let mut v = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-Head: yes\r\n\r\n".to_vec();
            if seen.method != "HEAD" {
                v.extend_from_slice(b"0123456789");
            }
            Reply::Bytes(v)
        }
        "/204" => Reply::Bytes(b"HTTP/1.1 204 No Content\r\nX-Empty: 1\r\n\r\n".to_vec()),
        "/304" => Reply::Bytes(b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n".to_vec()),
        "/early" => {
            let _ = w.write_all(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n");
            Reply::Bytes(ok_response("shaped", b"after hints"))
        }
        "/chunked" => Reply::Bytes(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\r\n\
              5\r\nhello\r\n6\r\n world\r\n0\r\nx-checksum: abc123\r\n\r\n"
                .to_vec(),
        ),
        "/hop" => Reply::Bytes(
            b"HTTP/1.1 200 OK\r\nConnection: x-private, keep-alive\r\nX-Private: secret\r\n\
              Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\n\
              Transfer-Encoding: chunked\r\nX-Kept: yes\r\n\r\n2\r\nok\r\n0\r\n\r\n"
                .to_vec(),
        ),
        _ => Reply::Bytes(ok_response("shaped", &seen.body)),
    })
}

/// Request bodies: with a length, without one (chunked to the backend, trailers included),
/// and a length the DATA disagrees with.
fn request_bodies(mode: Mode) {
    let b = shaped();
    let s = Setup::start(mode, &[b.addr], json!({}));
    let mut w = s.wire();
    let r = w.request("POST", "/len", &[("content-length", "6")], Some(b"abcdef"));
    assert_eq!((r.status(), r.text().as_str()), (200, "abcdef"));

    let id = w.next_id();
    let fields = w.request_fields("POST", "/nolen", &[]);
    w.headers(id, &fields, false);
    w.send_data(id, b"abc", false);
    w.send_data(id, b"def", false);
    w.headers(id, &[("x-trailer", "t1")], true);
    let r = w.response(id);
    assert_eq!((r.status(), r.text().as_str()), (200, "abcdef"), "{r:?}");
    let seen = b.record.requests();
    let nolen = seen.iter().find(|s| s.target == "/nolen").expect("seen");
    assert_eq!(
        nolen.header("transfer-encoding"),
        Some("chunked"),
        "{}",
        nolen.head
    );
    assert!(nolen.header("content-length").is_none());
    let raw = String::from_utf8_lossy(&nolen.raw_body);
    assert!(
        raw.ends_with("0\r\nx-trailer: t1\r\n\r\n"),
        "trailers in the chunked body: {raw:?}"
    );

    for (what, len, body) in [("short", "10", &b"12345"[..]), ("long", "3", &b"12345"[..])] {
        let id = w.next_id();
        let fields = w.request_fields("POST", "/mismatch", &[("content-length", len)]);
        w.headers(id, &fields, false);
        w.send_data(id, body, true);
        assert_eq!(
            w.wait_reset(id),
            Some(code::PROTOCOL_ERROR),
            "content-length {what}"
        );
    }
    assert_eq!(w.get("/after").status(), 200);
    assert!(!b
        .record
        .requests()
        .iter()
        .any(|s| s.target == "/mismatch" && s.body == b"12345"));
}

/// HEAD, 204 and 304: HEADERS with END_STREAM and no DATA.
fn bodiless(mode: Mode) {
    let b = shaped();
    let s = Setup::start(mode, &[b.addr], json!({}));
    let mut w = s.wire();
    let r = w.request("HEAD", "/head", &[], None);
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.header("content-length"),
        Some("10"),
        "HEAD keeps the length: {r:?}"
    );
    assert_eq!(r.header("x-head"), Some("yes"));
    for (path, status) in [("/204", 204), ("/304", 304)] {
        let r = w.get(path);
        assert_eq!(r.status(), status, "{r:?}");
        assert!(r.ended && r.body.is_empty(), "{path}: {r:?}");
    }
    let r = w.get("/head");
    assert_eq!(r.text(), "0123456789", "a GET of the same gets the body");
    for path in ["/head", "/204", "/304"] {
        // HEAD of /head, GETs of the others: nothing but the HEADERS
        let method = if path == "/head" { "HEAD" } else { "GET" };
        let id = w.start(method, path, &[], None);
        let r = w.response(id);
        assert_eq!(r.data_frames, 0, "{method} {path}: no DATA frame: {r:?}");
        assert_eq!(r.blocks.len(), 1);
    }
}

/// 100 Continue (the client waits for it before its body) and 103 Early Hints pass as interim
/// HEADERS, then the final answer.
fn interim_answers(mode: Mode) {
    let b = shaped();
    let s = Setup::start(mode, &[b.addr], json!({}));
    let mut w = s.wire();
    let id = w.next_id();
    let fields = w.request_fields(
        "POST",
        "/continue",
        &[("content-length", "5"), ("expect", "100-continue")],
    );
    w.headers(id, &fields, false);
    assert!(
        w.wait(|w| w.streams.get(&id).is_some_and(|r| !r.blocks.is_empty())),
        "the 100 comes before the body"
    );
    assert_eq!(w.streams[&id].interim(), [100]);
    w.send_data(id, b"hello", true);
    let r = w.response(id);
    assert_eq!((r.status(), r.text().as_str()), (200, "hello"), "{r:?}");

    let r = w.get("/early");
    assert_eq!(r.interim(), [103], "{r:?}");
    let hints = &r.blocks[0];
    assert!(
        hints.contains(&("link".to_owned(), "</s.css>; rel=preload".to_owned())),
        "{hints:?}"
    );
    assert_eq!((r.status(), r.text().as_str()), (200, "after hints"));
}

/// A chunked answer: its payload as DATA, its trailers as a final HEADERS with END_STREAM; no
/// `transfer-encoding` or `trailer` in the head.
fn chunked_answer_and_trailers(mode: Mode) {
    let b = shaped();
    let s = Setup::start(mode, &[b.addr], json!({}));
    let mut w = s.wire();
    let r = w.request("GET", "/chunked", &[("te", "trailers")], None);
    assert_eq!(
        (r.status(), r.text().as_str()),
        (200, "hello world"),
        "{r:?}"
    );
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(
        r.trailers(),
        Some(&[("x-checksum".to_owned(), "abc123".to_owned())][..]),
        "{r:?}"
    );
    // Python's h2 sees the same
    let out = run_py(
        &s,
        "request",
        &[
            "--headers",
            &json!([
                [":method", "GET"],
                [":scheme", if mode == Mode::Tls { "https" } else { "http" }],
                [":authority", "localhost"],
                [":path", "/chunked"],
                ["te", "trailers"]
            ])
            .to_string(),
        ],
        Duration::from_secs(30),
    );
    assert_eq!(out["status"], 200, "{out}");
    assert_eq!(out["body"], "hello world", "{out}");
    assert_eq!(out["trailers"], json!([["x-checksum", "abc123"]]), "{out}");
}

/// A response head with every hop-by-hop field loses them all (and the fields `Connection`
/// names); the others pass. Python's h2 validates the head (it refuses connection-specific
/// fields in a response) and agrees.
fn hop_by_hop_fields(mode: Mode) {
    let b = shaped();
    let s = Setup::start(mode, &[b.addr], json!({}));
    let mut w = s.wire();
    let r = w.get("/hop");
    assert_eq!((r.status(), r.text().as_str()), (200, "ok"), "{r:?}");
    for gone in [
        "connection",
        "x-private",
        "keep-alive",
        "proxy-connection",
        "upgrade",
        "transfer-encoding",
    ] {
        assert_eq!(r.header(gone), None, "{gone} removed: {r:?}");
    }
    assert_eq!(r.header("x-kept"), Some("yes"));
    let out = run_py(
        &s,
        "request",
        &[
            "--headers",
            &json!([
                [":method", "GET"],
                [":scheme", if mode == Mode::Tls { "https" } else { "http" }],
                [":authority", "localhost"],
                [":path", "/hop"]
            ])
            .to_string(),
        ],
        Duration::from_secs(30),
    );
    assert_eq!(out["status"], 200, "{out}");
    assert_eq!(out["goaway"], json!(null), "{out}");
    let names: Vec<&str> = out["headers"]
        .as_array()
        .map(|h| h.iter().filter_map(|f| f[0].as_str()).collect())
        .unwrap_or_default();
    assert!(
        names.contains(&"x-kept") && !names.contains(&"x-private"),
        "{out}"
    );
}

/// WebSocket over HTTP/2: SETTINGS_ENABLE_CONNECT_PROTOCOL is announced; an extended CONNECT
/// reaches the backend as an HTTP/1.1 Upgrade (GET, `Upgrade: websocket`, a
/// `Sec-WebSocket-Key`), its 101 comes back as 200, then bytes go both ways, and the client's
/// END_STREAM ends the tunnel.
fn websocket(mode: Mode) {
    let up = UpgradeBackend::start();
    let s = Setup::start(mode, &[up.addr], json!({}));
    let out = run_py(&s, "websocket", &["--path", "/ws"], Duration::from_secs(30));
    assert_eq!(out["settings_connect_protocol"], 1, "{out}");
    assert_eq!(out["status"], 200, "{out}");
    assert_eq!(
        out["greeting"],
        String::from_utf8_lossy(UPGRADE_GREETING).as_ref(),
        "{out}"
    );
    assert_eq!(out["echo"], "hello over h2\n", "{out}");
    assert_eq!(out["ended"], true, "the backend's end is END_STREAM: {out}");
    let head = up
        .heads
        .recv_timeout(Duration::from_secs(10))
        .expect("the upgrade head");
    let lower = head.to_ascii_lowercase();
    assert!(head.starts_with("GET /ws HTTP/1.1\r\n"), "{head}");
    for want in [
        "upgrade: websocket",
        "connection: upgrade",
        "sec-websocket-version: 13",
    ] {
        assert!(lower.contains(want), "{want} in {head}");
    }
    assert!(lower.contains("sec-websocket-key: "), "{head}");

    // by hand: 300 KB each way through the tunnel, within the windows
    let mut w = s.wire();
    let id = w.next_id();
    let fields = [
        (":method", "CONNECT"),
        (":protocol", "websocket"),
        (":scheme", if mode == Mode::Tls { "https" } else { "http" }),
        (":path", "/ws"),
        (":authority", "localhost"),
        ("sec-websocket-version", "13"),
    ];
    w.headers(id, &fields, false);
    let greeting = UPGRADE_GREETING.len();
    assert!(w.wait(|w| w.streams.get(&id).is_some_and(|r| r.body.len() >= greeting)));
    assert_eq!(w.streams[&id].status(), 200);
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    assert!(
        w.send_data_flow(id, &payload, false),
        "the upload within the windows"
    );
    let want = greeting + payload.len();
    assert!(
        w.wait(|w| w.streams.get(&id).is_some_and(|r| r.body.len() >= want)),
        "the echo: {:?}",
        w.streams.get(&id)
    );
    assert!(
        w.streams[&id].body[greeting..] == payload[..],
        "echoed byte-exact"
    );
    w.send_data(id, &[], true);
    let r = w.response(id);
    assert!(r.ended && r.reset.is_none(), "{r:?}");
}

both_modes!(
    request_bodies,
    bodiless,
    interim_answers,
    chunked_answer_and_trailers,
    hop_by_hop_fields,
    websocket,
);
