//! HTTP/1.1 heads at their edges, over raw sockets on 127.0.0.1:
//!
//! - empty lines before and between requests are skipped at once (no wait for the header
//!   timeout);
//! - `Connection: Host` cannot strip `Host`; an HTTP/1.0 request without `Host` reaches the
//!   backend as HTTP/1.1 with the backend's authority as its `Host`, also when it is retried on a
//!   second backend (that backend's authority, not the first one's);
//! - a `HEAD` answered by ferrule itself (a 502, a 400) carries no body, so the next response on
//!   the connection is read in step.
//!
//! Hostile heads (smuggling, bad fields, request lines, `Host` forms) are in `super` and
//! `hardening::requests`.

use std::io::{BufReader, Read, Write};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::*;

// ----------------------------------------------------------------------------- local helpers

/// A backend answering `200` with the request target as its body, keep-alive.
fn target_backend(name: &str) -> Backend {
    let n = name.to_string();
    Backend::with_handler(name, move |seen, _| {
        Reply::Bytes(ok_response(&n, seen.target.as_bytes()))
    })
}

fn proxy_get_raw(proxy: &Proxy, request: &[u8]) -> Response {
    let mut c = proxy.connect();
    c.send(request);
    c.response()
}

// ----------------------------------------------------------------------------- empty lines

/// A client whose reads give up after 2 s: a stalled answer shows as an error, not a long wait.
fn impatient_client(proxy: &Proxy) -> Client {
    let c = proxy.connect();
    c.stream()
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    c
}

// Proves empty lines between two pipelined requests (all in one write) are dropped at once: the
// second request is answered promptly, not after client_header_timeout (10 s here) with a 408.
#[test]
fn empty_lines_between_pipelined_requests_do_not_stall_the_next() {
    let backend = target_backend("a");
    let proxy = Proxy::start(&[backend.addr], json!({"client_header_timeout": "10s"}));
    let mut c = impatient_client(&proxy);
    let sent = Instant::now();
    c.send(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
    let r1 = c.response();
    assert_eq!((r1.status, r1.text().as_str()), (200, "/1"), "{r1:?}");
    let r2 = c
        .try_response()
        .unwrap_or_else(|e| panic!("no answer to /2 within 2 s: {e}"));
    let took = sent.elapsed();
    assert_eq!((r2.status, r2.text().as_str()), (200, "/2"), "{r2:?}");
    assert!(took < Duration::from_secs(2), "/2 answered after {took:?}");
    let targets: Vec<String> = backend
        .record
        .requests()
        .into_iter()
        .map(|s| s.target)
        .filter(|t| t != "/health")
        .collect();
    assert_eq!(targets, ["/1", "/2"]);
}

// Proves empty lines at the very start of a connection, in the same write as the request after
// them, are skipped and the request is answered promptly.
#[test]
fn empty_lines_before_the_first_request_are_skipped() {
    let backend = target_backend("a");
    let proxy = Proxy::start(&[backend.addr], json!({"client_header_timeout": "10s"}));
    let mut c = impatient_client(&proxy);
    let sent = Instant::now();
    c.send(b"\r\n\r\n\r\n\r\nGET /first HTTP/1.1\r\nHost: h\r\n\r\n");
    let r = c
        .try_response()
        .unwrap_or_else(|e| panic!("no answer within 2 s: {e}"));
    let took = sent.elapsed();
    assert_eq!((r.status, r.text().as_str()), (200, "/first"), "{r:?}");
    assert!(took < Duration::from_secs(2), "answered after {took:?}");
    // and the connection is still in step for another request
    c.send(b"GET /second HTTP/1.1\r\nHost: h\r\n\r\n");
    let r = c.response();
    assert_eq!((r.status, r.text().as_str()), (200, "/second"), "{r:?}");
}

// ----------------------------------------------------------------------------- Host and HTTP/1.0

// Proves `Connection: Host` does not make Host hop-by-hop: the backend still gets it.
#[test]
fn connection_naming_host_keeps_host() {
    let backend = Backend::start("a");
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let mut c = proxy.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: example.test\r\nConnection: Host\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 200, "{r:?}");
    let seen = backend
        .record
        .requests()
        .into_iter()
        .find(|s| s.target == "/")
        .expect("the request reached the backend");
    assert_eq!(
        seen.headers_named("host"),
        ["example.test"],
        "{}",
        seen.head
    );
}

// Proves an HTTP/1.0 request without Host goes to the backend as HTTP/1.1 with exactly one Host,
// the backend's authority as configured; the client gets its 200 and then the connection closes.
#[test]
fn http10_request_without_host_gets_backend_authority() {
    let backend = Backend::start("a");
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let mut c = proxy.connect();
    c.send(b"GET /old HTTP/1.0\r\n\r\n");
    let r = c.response();
    assert_eq!((r.status, r.text().as_str()), (200, "backend a"), "{r:?}");
    assert!(c.is_closed(), "HTTP/1.0 without keep-alive: closed after");
    let seen = backend
        .record
        .requests()
        .into_iter()
        .find(|s| s.target == "/old")
        .expect("the request reached the backend");
    assert!(
        seen.head.starts_with("GET /old HTTP/1.1\r\n"),
        "HTTP/1.1 request line: {}",
        seen.head
    );
    let authority = format!("127.0.0.1:{}", backend.addr.port());
    assert_eq!(
        seen.headers_named("host"),
        [authority.as_str()],
        "{}",
        seen.head
    );
}

// Proves an HTTP/1.0 request without `Host`, retried on a second backend, carries that backend's
// authority, not the first one's.
#[test]
fn http10_without_host_retried_elsewhere_carries_the_second_backends_authority() {
    let dead = dead_addr();
    let live = Backend::start("live");
    let proxy = Proxy::start(
        &[dead.addr, live.addr],
        json!({"workers": 1, "retries": 1, "strategy": "round-robin"}),
    );
    // round-robin alternates: some of these try the dead backend first and are retried
    for _ in 0..4 {
        let r = proxy_get_raw(&proxy, b"GET /x HTTP/1.0\r\n\r\n");
        assert_eq!(r.status, 200);
    }
    let entry = backend_entry(&proxy.admin_get("/backends"), dead.addr);
    assert!(
        entry["failures"].as_u64().unwrap_or(0) >= 1,
        "no request was retried: {entry}"
    );
    let want = live.addr.to_string();
    for seen in live.record.requests() {
        assert_eq!(
            seen.headers_named("host"),
            vec![want.as_str()],
            "{}",
            seen.head
        );
    }
}

// ----------------------------------------------------------------------------- HEAD

// Proves a `HEAD` answered by ferrule itself (here a 502: nothing listens at the backend) carries
// no body, so the next response on the connection is read in step.
#[test]
fn head_answered_by_ferrule_has_no_body_and_the_connection_stays_in_step() {
    // nothing listens at the only backend: ferrule answers 502 itself, and keeps the connection
    let dead = dead_addr();
    let proxy = Proxy::start(&[dead.addr], json!({"retries": 0}));
    let mut s = raw_connect(proxy.addr(), IO_TIMEOUT);
    s.write_all(b"HEAD /a HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    // read exactly the head (a reader of one byte takes nothing after it), then make sure
    // nothing follows it before the next request
    let got = read_head(&mut BufReader::with_capacity(1, &mut s)).expect("the head");
    let head = String::from_utf8_lossy(&got).into_owned();
    let mut byte = [0u8; 1];
    assert!(head.starts_with("HTTP/1.1 502 "), "{head}");
    assert!(head.contains("Content-Length: "), "{head}");
    assert!(!head.contains("Connection: close"), "{head}");
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let extra = s.read(&mut byte);
    assert!(
        extra.is_err(),
        "a body followed the HEAD answer: {:?}",
        extra.map(|_| byte[0] as char)
    );
    // the next request on the same connection gets its own, well-formed answer
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s.write_all(b"GET /b HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("read");
    let text = String::from_utf8_lossy(&rest);
    assert!(text.starts_with("HTTP/1.1 502 "), "{text}");
    assert!(text.ends_with("answered badly\n"), "{text}");
}

// Proves a `HEAD` refused for its head (a 400) gets no body either: the connection ends right
// after the head.
#[test]
fn head_refused_for_its_head_gets_no_body() {
    let backend = Backend::start("b");
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let mut c = proxy.connect();
    c.send(b"HEAD / HTTP/1.1\r\nHost: a@b\r\n\r\n");
    let r = c.response_to("HEAD");
    assert_eq!(r.status, 400);
    assert!(r.closes());
    // a body would be read here; the connection must end right after the head
    assert!(c.read_to_end().is_empty());
}
