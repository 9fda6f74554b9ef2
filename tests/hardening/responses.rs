//! Hostile responses from a backend, over raw sockets: response splitting, invalid status lines,
//! bad `Content-Length` values, `Transfer-Encoding` on HTTP/1.0, too many fields. None is
//! relayed: the client gets ferrule's 502, and never a byte of what the backend sent. A repeated
//! `Content-Length` is normalised instead. (Garbage instead of a head is `http11.rs`'s
//! `garbage_from_backend_gets_502`.)

use serde_json::json;

use super::{exchange, quiet_proxy, RawBackend};
use crate::common::contains;

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";

/// The backend answers `answer`; the client gets 502 with ferrule's body, and none of the
/// backend's bytes (`marker` stands for them).
fn bad_gateway(answer: &[u8], marker: &[u8]) {
    let backend = RawBackend::answering(answer);
    let proxy = quiet_proxy(&[backend.addr], json!({}));
    let mut c = proxy.connect();
    c.send(GET);
    let shown = String::from_utf8_lossy(answer);
    let r = c
        .try_response()
        .unwrap_or_else(|e| panic!("no 502 for {shown:?}: {e}"));
    assert_eq!(r.status, 502, "{shown:?}: {r:?}");
    assert!(r.text().starts_with("bad gateway"), "{shown:?}: {r:?}");
    let all: Vec<u8> = r
        .headers
        .iter()
        .flat_map(|(k, v)| [k.as_bytes(), v.as_bytes()].concat())
        .chain(r.body.iter().copied())
        .collect();
    assert!(!contains(&all, marker), "{shown:?} leaked: {r:?}");
    // the connection stays usable (a 5xx keeps it) and the next answer is as bad
    c.send(GET);
    assert_eq!(c.response().status, 502, "{shown:?}, again");
}

// Proves response splitting is not relayed: a lone CR or LF inside a field (which a client could
// read as a line end, and so as a field or a response of the backend's making), NUL and other
// controls, obs-fold and whitespace before the colon are a 502.
#[test]
fn response_splitting_gets_502() {
    for answer in [
        &b"HTTP/1.1 200 OK\r\nX: a\rSet-Cookie: evil=1\r\nContent-Length: 0\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nX: a\nSet-Cookie: evil=1\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\0Set-Cookie: evil=1\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\x0bSet-Cookie: evil=1\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\r\n Set-Cookie: evil=1\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nSet-Cookie : evil=1\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nSet-Cookie\r\nevil=1: x\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\nSet-Cookie: evil=1\nContent-Length: 0\n\n",
    ] {
        bad_gateway(answer, b"evil");
    }
}

// Proves status lines that are not `HTTP/1.x SP 3DIGIT SP reason` are a 502.
#[test]
fn invalid_status_lines_get_502() {
    for answer in [
        &b"HTTP/1.1 20 evil\r\nContent-Length: 0\r\n\r\n"[..],
        b"HTTP/1.1 2000 evil\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 -200 evil\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 099 evil\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 OK evil\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/2 200 evil\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.2 200 evil\r\nContent-Length: 0\r\n\r\n",
        b"http/1.1 200 evil\r\nContent-Length: 0\r\n\r\n",
        b"ICY 200 evil\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 evil\x00\r\nContent-Length: 0\r\n\r\n",
        b" HTTP/1.1 200 evil\r\nContent-Length: 0\r\n\r\n",
    ] {
        bad_gateway(answer, b"evil");
    }
}

// Proves a Content-Length with a sign, a list of different values, two different fields, hex or
// nothing is a 502 (the client could not know where the body ends), and so is
// `Transfer-Encoding` in an HTTP/1.0 response (RFC 9112 §6.1: faulty framing).
#[test]
fn bad_lengths_and_http10_transfer_coding_get_502() {
    for answer in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: +4\r\n\r\nevil"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\nevil",
        b"HTTP/1.1 200 OK\r\nContent-Length: 4, 5\r\n\r\nevil",
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nevil",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0x4\r\n\r\nevil",
        b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\nevil",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\nevil",
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nevil\r\n0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\nevil",
    ] {
        bad_gateway(answer, b"evil");
    }
}

// Proves a Content-Length list of one value repeated, or the same value in two fields, reaches
// the client as one plain `Content-Length` (RFC 9110 §8.6 does not let it be forwarded as it
// came), with the body exact.
#[test]
fn repeated_response_content_length_is_normalised() {
    for answer in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\nX: y\r\n\r\nhello"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\nhello",
    ] {
        let backend = RawBackend::answering(answer);
        let proxy = quiet_proxy(&[backend.addr], json!({}));
        let (r, _) = exchange(&proxy, GET);
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
        assert_eq!(r.headers_named("content-length"), ["5"], "{r:?}");
    }
}

// Proves a response head with more fields than `max_header_count` is a 502.
#[test]
fn too_many_response_fields_get_502() {
    let fields: String = (0..11).map(|i| format!("X-{i}: evil\r\n")).collect();
    let answer = format!("HTTP/1.1 200 OK\r\n{fields}Content-Length: 0\r\n\r\n");
    let backend = RawBackend::answering(answer.as_bytes());
    let proxy = quiet_proxy(&[backend.addr], json!({"max_header_count": 11}));
    let (r, _) = exchange(&proxy, GET);
    assert_eq!(r.status, 502, "{r:?}");
    // ten and Content-Length: within the limit
    let fields: String = (0..10).map(|i| format!("X-{i}: fine\r\n")).collect();
    let answer = format!("HTTP/1.1 200 OK\r\n{fields}Content-Length: 0\r\n\r\n");
    let backend = RawBackend::answering(answer.as_bytes());
    let proxy = quiet_proxy(&[backend.addr], json!({"max_header_count": 11}));
    let (r, _) = exchange(&proxy, GET);
    assert_eq!(r.status, 200, "{r:?}");
}
