//! Hostile requests, over raw sockets: each refused with its status and the connection closed,
//! with nothing reaching the backend; or normalised, and what the backend gets checked. Bad field
//! names and values, the asterisk form, HTTP/0.9 and broken request lines, a space inside the
//! target, versions, `Host` with user info, a query or a fragment; a repeated `Content-Length`
//! and an absolute-form target are normalised.
//! (Smuggling by framing, obs-fold, bare LF, a missing or doubled Host, oversized targets and
//! heads have their tests in `http11.rs`.)

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::json;

use super::{exchange, quiet_proxy, raw, RawBackend};
use crate::common::{Backend, Proxy, Response};

/// Each request is refused with `status`, announced `Connection: close`, and the connection
/// closed; the backend (a sink that would never answer) received not one byte.
fn refused(cases: &[(&[u8], u16)]) {
    let sink = RawBackend::sink();
    let proxy = quiet_proxy(&[sink.addr], json!({}));
    for (request, status) in cases {
        let shown = String::from_utf8_lossy(request);
        let (r, closed) = exchange(&proxy, request);
        assert_eq!(r.status, *status, "{shown:?}: {r:?}");
        assert!(r.closes() && closed, "{shown:?} closes the connection");
    }
    assert!(
        sink.bytes().is_empty(),
        "the backend received {:?}",
        String::from_utf8_lossy(&sink.bytes())
    );
}

// Proves that field lines with bytes RFC 9110 §5.5 forbids (NUL, a lone CR, other controls),
// whitespace before the colon, an empty or invalid field name are 400 and never forwarded.
#[test]
fn invalid_field_names_and_values_get_400() {
    refused(&[
        (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n", 400),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nX: a\rInjected: 1\r\n\r\n",
            400,
        ),
        (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nX-A : b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nX-A\t: b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\n: b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nX A: b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nX(A): b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nX\xc3\xa9: b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\0\r\n\r\n", 400),
        // a Content-Length with a sign, a hex or an empty value
        (
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello",
            400,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\nhello",
            400,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n",
            400,
        ),
    ]);
}

// Proves asterisk-form is only for OPTIONS (RFC 9112 §3.2.4): `GET *` is 400, `OPTIONS *` goes to
// the backend as it came.
#[test]
fn asterisk_form_only_for_options() {
    refused(&[
        (b"GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        (
            b"POST * HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
            400,
        ),
    ]);
    let a = Backend::start("a");
    let proxy = quiet_proxy(&[a.addr], json!({}));
    let (r, _) = exchange(
        &proxy,
        b"OPTIONS * HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let seen = a.record.requests();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("OPTIONS", "*")
    );
}

// Proves an HTTP/0.9 request (`GET /` and a line end, no version) and other request lines that
// can never parse are answered 400 as soon as the line is complete, not after
// `client_header_timeout` (30 s here), and never forwarded.
#[test]
fn http09_and_broken_request_lines_are_answered_at_once() {
    let sink = RawBackend::sink();
    let proxy = quiet_proxy(&[sink.addr], json!({"client_header_timeout": "30s"}));
    for line in [
        &b"GET /\r\n"[..],
        b"GET / HTTP/1.1 extra\r\n",
        b"G@T / HTTP/1.1\r\n",
        b"GET / HTTP/2.0\r\n",
    ] {
        let mut s = raw(proxy.addr());
        let started = Instant::now();
        s.write_all(line).expect("send");
        // the head is not complete (no empty line): only the request line can be judged
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        let text = String::from_utf8_lossy(&got);
        let want = if line.ends_with(b"2.0\r\n") {
            "505"
        } else {
            "400"
        };
        assert!(
            text.starts_with(&format!("HTTP/1.1 {want} ")),
            "{:?}: {text:?}",
            String::from_utf8_lossy(line)
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "answered in {:?}",
            started.elapsed()
        );
    }
    // an empty line first, in a read of its own, is not the request line: the 0.9 line after it
    // is still judged at once (it waited for the header timeout when the CRLF counted as the line)
    let mut s = raw(proxy.addr());
    let started = Instant::now();
    s.write_all(b"\r\n").expect("send");
    // no signal says the proxy read the CRLF alone; a pause makes that read its own, and the
    // test holds either way
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(b"GET /\r\n").expect("send");
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 400 "), "{text:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered in {:?}",
        started.elapsed()
    );
    assert!(sink.bytes().is_empty());
}

// Proves a Content-Length of one value repeated (`5, 5`, or two equal fields) is forwarded as one
// plain `Content-Length: 5` (RFC 9110 §8.6), the body exact.
#[test]
fn repeated_content_length_is_normalised() {
    let a = Backend::start("a");
    let proxy = quiet_proxy(&[a.addr], json!({}));
    for request in [
        &b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\nConnection: close\r\n\r\nhello"[..],
        b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\ncontent-length: 5\r\nConnection: close\r\n\r\nhello",
    ] {
        let (r, _) = exchange(&proxy, request);
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
    }
    for seen in a.record.requests() {
        assert_eq!(seen.headers_named("content-length"), ["5"]);
    }
}

/// Sends `request` on a fresh connection and returns the status of the answer.
fn status_of(proxy: &Proxy, request: &[u8]) -> u16 {
    let mut c = proxy.connect();
    c.send(request);
    c.response().status
}

fn proxy_get_raw(proxy: &Proxy, request: &[u8]) -> Response {
    let mut c = proxy.connect();
    c.send(request);
    c.response()
}

// ----------------------------------------------------------------------------- request lines and Host

// Proves a request line with a space inside the target is a malformed line (400), not a version
// problem (505), as is a version in lower case; a version that is not HTTP/1.x is 505. None
// reaches the backend.
#[test]
fn space_inside_the_target_is_400_and_an_unknown_version_505() {
    let backend = Backend::start("b");
    let proxy = Proxy::start(&[backend.addr], json!({}));
    assert_eq!(
        status_of(&proxy, b"GET /a b c HTTP/1.1\r\nHost: t\r\n\r\n"),
        400
    );
    assert_eq!(status_of(&proxy, b"GET / http/1.1\r\nHost: t\r\n\r\n"), 400);
    assert_eq!(status_of(&proxy, b"GET / HTTP/2.0\r\nHost: t\r\n\r\n"), 505);
    assert_eq!(backend.record.count(), 0);
}

// Proves a `Host` carrying user info, a query or a fragment is refused (400) and reaches no
// backend.
#[test]
fn host_with_user_info_query_or_fragment_is_refused() {
    let backend = Backend::start("b");
    let proxy = Proxy::start(&[backend.addr], json!({}));
    for host in ["evil@t", "t?x", "t#x"] {
        let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        assert_eq!(status_of(&proxy, req.as_bytes()), 400, "{host}");
    }
    assert_eq!(backend.record.count(), 0);
}

// Proves an absolute-form target's authority replaces `Host`: the backend gets the origin-form
// target, that authority as its one `Host`, and the same in `X-Forwarded-Host`.
#[test]
fn absolute_form_target_replaces_host() {
    let backend = Backend::start("b");
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let r = proxy_get_raw(
        &proxy,
        b"GET http://target.example:81/p?q HTTP/1.1\r\nHost: unrelated\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let seen = backend.record.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, "/p?q");
    assert_eq!(seen[0].headers_named("host"), vec!["target.example:81"]);
    assert_eq!(
        seen[0].header("x-forwarded-host"),
        Some("target.example:81")
    );
}
