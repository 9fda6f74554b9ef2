//! `Date` (RFC 9110 §6.6.1) on every response ferrule sends: its own answers, forwarded
//! responses without one, the admin API; a backend's own `Date` passes unchanged.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{fresh_date, unix_now};
use crate::common::{ok_response, Backend, Client, Proxy, Reply};

#[test]
fn ferrules_own_answers_carry_a_fresh_date() {
    // no backend: 503
    let proxy = Proxy::start(&[], json!({}));
    let since = unix_now();
    let r = proxy.get("/");
    assert_eq!(r.status, 503);
    fresh_date(&r, since);

    // HEAD: the same head, no body
    let mut c = proxy.connect();
    c.send(b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n");
    let r = c.response_to("HEAD");
    assert_eq!(r.status, 503);
    fresh_date(&r, since);

    // a malformed request: 400 (an HTTP/1.1 request without Host)
    let mut c = proxy.connect();
    c.send(b"GET / HTTP/1.1\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 400);
    fresh_date(&r, since);
}

#[test]
fn a_forwarded_response_gets_a_date_unless_the_backend_sent_one() {
    let plain = Backend::start("plain");
    let proxy = Proxy::start(&[plain.addr], json!({}));
    let since = unix_now();
    let r = proxy.get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "backend plain"));
    fresh_date(&r, since);

    const THEIRS: &str = "Mon, 01 Jan 2001 00:00:00 GMT";
    let dated = Backend::with_handler("dated", |_, _| {
        let mut reply = ok_response("dated", b"hi");
        let at = reply
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("status line")
            + 2;
        reply.splice(at..at, format!("Date: {THEIRS}\r\n").into_bytes());
        Reply::Bytes(reply)
    });
    let proxy = Proxy::start(&[dated.addr], json!({}));
    let r = proxy.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.headers_named("date"), [THEIRS], "{:?}", r.headers);
}

#[test]
fn the_date_follows_the_clock() {
    let backend = Backend::start("b");
    let proxy = Proxy::start(&[backend.addr], json!({"workers": 1}));
    let mut c = proxy.connect();
    let ask = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n";
    let since = unix_now();
    c.send(ask);
    let first = fresh_date(&c.response(), since);
    // the clock moves on two seconds (no event can say so sooner)
    let limit = Instant::now() + Duration::from_secs(5);
    while unix_now() < first + 2 {
        assert!(Instant::now() < limit, "the clock does not move");
        thread::sleep(Duration::from_millis(50));
    }
    // the same connection, so the same worker and its cached date
    let since = unix_now();
    c.send(ask);
    let second = fresh_date(&c.response(), since);
    assert!(second >= first + 2, "{first} then {second}");
}

#[test]
fn admin_answers_carry_a_fresh_date() {
    let proxy = Proxy::start(&[], json!({}));
    let since = unix_now();
    let mut c = Client::connect(proxy.admin());
    c.send(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 200);
    fresh_date(&r, since);
}
