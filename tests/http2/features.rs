//! What every HTTP/1.1 request gets, per HTTP/2 stream (the stream runs the same exchange):
//! balancing and stickiness (with the `cookie` field split in crumbs, joined as RFC 9113
//! §8.2.3 says), the `max_conns` queue, retries on a dead pooled connection (idempotent only),
//! `X-Forwarded-*` and request ids, 431 for a head over the limits, and the access log line.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::both_modes;
use crate::common::h2::{code, Mode, Setup};
use crate::common::{ok_response, Backend, GatedBackend, Reply};
use crate::common::{path_text, TempDir};

/// A backend answering `NAME TARGET`, `X-Backend: NAME`.
fn naming(name: &str) -> Backend {
    let n = name.to_owned();
    Backend::with_handler(name, move |seen, _| {
        Reply::Bytes(ok_response(&n, format!("{n} {}", seen.target).as_bytes()))
    })
}

/// Like [`naming`], but only the first request on each connection is answered: a later one on
/// the same (pooled) connection makes it close without a byte. `drops` counts those.
fn flaky(name: &str, drops: Arc<AtomicUsize>) -> Backend {
    let n = name.to_owned();
    let answered = Mutex::new(HashSet::new());
    Backend::with_handler(name, move |seen, _| {
        if !answered.lock().expect("lock").insert(seen.conn) {
            drops.fetch_add(1, Ordering::SeqCst);
            return Reply::Drop;
        }
        Reply::Bytes(ok_response(&n, format!("{n} {}", seen.target).as_bytes()))
    })
}

/// Round-robin alternates the backends stream after stream; with sticky cookies, a stream
/// whose `cookie` field is split over three fields, the sticky one in the middle, stays on its
/// backend, and the backend sees one `cookie` field, the crumbs joined with `; `.
fn balancing_and_split_cookies(mode: Mode) {
    let (a, b) = (naming("a"), naming("b"));
    let s = Setup::start(mode, &[a.addr, b.addr], json!({"workers": 1}));
    let mut w = s.wire();
    let order: Vec<String> = (0..4)
        .map(|i| {
            let r = w.get(&format!("/rr{i}"));
            assert_eq!(r.status(), 200, "{r:?}");
            r.header("x-backend").unwrap_or("").to_owned()
        })
        .collect();
    assert!(
        order == ["a", "b", "a", "b"] || order == ["b", "a", "b", "a"],
        "round-robin, stream after stream: {order:?}"
    );

    let (a, b) = (naming("a"), naming("b"));
    let s = Setup::start(
        mode,
        &[a.addr, b.addr],
        json!({"enable_sticky_sessions": true, "sticky_mode": "cookie"}),
    );
    let mut w = s.wire();
    let first = w.get("/first");
    let pinned = first.header("x-backend").unwrap_or("").to_owned();
    let set = first.header("set-cookie").unwrap_or("").to_owned();
    let crumb = set.split(';').next().unwrap_or("").to_owned();
    assert!(
        crumb.starts_with("FERRULE_BACKEND="),
        "a sticky cookie: {first:?}"
    );
    for i in 0..6 {
        let path = format!("/sticky{i}");
        let r = w.request(
            "GET",
            &path,
            &[
                ("cookie", "theme=dark"),
                ("cookie", &crumb),
                ("cookie", "lang=en"),
            ],
            None,
        );
        assert_eq!(
            r.header("x-backend"),
            Some(pinned.as_str()),
            "{path} stays: {r:?}"
        );
        assert_eq!(
            r.header("set-cookie"),
            None,
            "no new cookie for a pinned client"
        );
    }
    let seen = if pinned == "a" { &a } else { &b };
    let last = seen
        .record
        .requests()
        .into_iter()
        .find(|r| r.target == "/sticky5")
        .expect("the pinned backend saw /sticky5");
    assert_eq!(
        last.headers_named("cookie"),
        [format!("theme=dark; {crumb}; lang=en")],
        "one cookie field, crumbs joined: {}",
        last.head
    );
}

/// `max_conns` 1: three streams of one connection queue for the backend's one slot and are
/// answered one after the other; it never holds two.
fn max_conns_queue(mode: Mode) {
    let gated = GatedBackend::start("gated");
    let s = Setup::start(
        mode,
        &[gated.addr()],
        json!({"max_conns": 1, "queue_timeout": "20s"}),
    );
    let mut w = s.wire();
    let ids: Vec<u32> = (0..3)
        .map(|i| w.start("GET", &format!("/q{i}"), &[], None))
        .collect();
    let first = gated.next_arrival();
    assert!(w.ping_pong(), "the others are queued");
    assert!(
        gated.unreported_arrival().is_none(),
        "one slot: one request at the backend"
    );
    gated.release(1);
    let second = gated.next_arrival();
    gated.release(1);
    let third = gated.next_arrival();
    gated.release(1);
    let mut got: Vec<String> = ids.iter().map(|id| w.response(*id).text()).collect();
    got.sort();
    assert_eq!(got, ["answer to /q0", "answer to /q1", "answer to /q2"]);
    let mut arrived = [first, second, third];
    arrived.sort();
    assert_eq!(arrived, ["/q0", "/q1", "/q2"]);
    assert_eq!(gated.max_in_flight(), 1);
}

/// A stream whose request lands on a pooled backend connection that turns out dead (the
/// backend closes it without answering) is retried on the other backend when it is a GET; a
/// POST is answered 502 and sent once.
fn retries(mode: Mode) {
    let drops = Arc::new(AtomicUsize::new(0));
    let a = flaky("a", Arc::clone(&drops));
    let b = naming("b");
    let s = Setup::start(mode, &[a.addr, b.addr], json!({"workers": 1}));
    let mut w = s.wire();
    let mut retried = false;
    for i in 0..6 {
        let path = format!("/r{i}");
        let r = w.get(&path);
        assert_eq!(r.status(), 200, "{path}: {r:?}");
        assert!(
            r.text().ends_with(&format!(" {path}")),
            "{path}: {}",
            r.text()
        );
        if drops.load(Ordering::SeqCst) > 0 {
            assert_eq!(r.header("x-backend"), Some("b"), "{path} retried on b");
            retried = true;
            break;
        }
    }
    assert!(retried, "a stream reached a's pooled connection");

    let drops = Arc::new(AtomicUsize::new(0));
    let a = flaky("a", Arc::clone(&drops));
    let b = flaky("b", Arc::clone(&drops));
    let s = Setup::start(mode, &[a.addr, b.addr], json!({"workers": 1}));
    let mut w = s.wire();
    let mut answered = HashSet::new();
    for i in 0..4 {
        let r = w.get(&format!("/warm{i}"));
        assert_eq!(r.status(), 200, "{r:?}");
        answered.insert(r.header("x-backend").unwrap_or("").to_owned());
    }
    assert_eq!(answered.len(), 2, "both backends hold a pooled connection");
    let before = drops.load(Ordering::SeqCst);
    let r = w.request("POST", "/pay", &[("content-length", "4")], Some(b"data"));
    assert_eq!(r.status(), 502, "{r:?}");
    assert_eq!(
        drops.load(Ordering::SeqCst),
        before + 1,
        "the POST was dropped once"
    );
    let posts = |be: &Backend| {
        be.record
            .requests()
            .iter()
            .filter(|s| s.method == "POST")
            .count()
    };
    assert_eq!(posts(&a) + posts(&b), 1, "never replayed");
    assert_eq!(w.get("/after").status(), 200, "the connection serves on");
}

/// `X-Forwarded-For`, `-Proto` and `-Host` and a request id reach the backend; a client's own
/// request id is kept; `:authority` becomes `Host`.
fn forwarding_headers(mode: Mode) {
    let a = Backend::start("a");
    let s = Setup::start(mode, &[a.addr], json!({}));
    let mut w = s.wire();
    assert_eq!(w.get("/fwd").status(), 200);
    let r = w.request(
        "GET",
        "/own-id",
        &[("x-request-id", "client-chosen-42")],
        None,
    );
    assert_eq!(r.status(), 200);
    let seen = a.record.requests();
    let fwd = &seen[0];
    assert_eq!(fwd.method, "GET");
    assert_eq!(fwd.target, "/fwd");
    assert_eq!(fwd.header("host"), Some("localhost"), "{}", fwd.head);
    assert_eq!(
        fwd.header("x-forwarded-for"),
        Some("127.0.0.1"),
        "{}",
        fwd.head
    );
    let proto = match mode {
        Mode::H2c => "http",
        Mode::Tls => "https",
    };
    assert_eq!(fwd.header("x-forwarded-proto"), Some(proto), "{}", fwd.head);
    assert_eq!(
        fwd.header("x-forwarded-host"),
        Some("localhost"),
        "{}",
        fwd.head
    );
    let id = fwd.header("x-request-id").unwrap_or("");
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "a request id: {}",
        fwd.head
    );
    assert!(
        fwd.head.starts_with("GET /fwd HTTP/1.1\r\n"),
        "{}",
        fwd.head
    );
    assert_eq!(seen[1].headers_named("x-request-id"), ["client-chosen-42"]);
}

/// A header list over `max_request_head`, or with more fields than `max_header_count`, gets 431
/// on its stream; the connection serves on and the backend never sees it.
fn head_too_large(mode: Mode) {
    let a = Backend::start("a");
    let s = Setup::start(
        mode,
        &[a.addr],
        json!({"max_request_head": 2048, "max_header_count": 20}),
    );
    let mut w = s.wire();
    let big = "v".repeat(4096);
    let r = w.request("GET", "/big", &[("x-big", &big)], None);
    assert_eq!(r.status(), 431, "{r:?}");
    let names: Vec<String> = (0..30).map(|i| format!("x-f{i}")).collect();
    let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    let r = w.request("GET", "/many", &many, None);
    assert_eq!(r.status(), 431, "{r:?}");
    let r = w.get("/fine");
    assert_eq!(r.status(), 200, "{r:?}");
    let seen: Vec<String> = a.record.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(seen, ["/fine"]);
}

/// The lines of the log at `path` once it has `n` (the writer thread writes a moment after
/// the answer: polled, nothing signals it), parsed as JSON.
fn log_lines(path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} lines of {n}: {text}",
            lines.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The access log line of a stream says `HTTP/2.0`, with its method, target, status, backend
/// and (over TLS) the TLS version; a stream answered 431 is logged too.
fn access_log(mode: Mode) {
    let a = Backend::start("a");
    let dir = TempDir::new(&format!("h2-log-{mode:?}"));
    let path = dir.join("access.log");
    let s = Setup::start(
        mode,
        &[a.addr],
        json!({"access_log": path_text(&path), "access_log_format": "json", "workers": 1}),
    );
    let mut w = s.wire();
    let r = w.request("GET", "/logged?x=1", &[("user-agent", "h2-test")], None);
    assert_eq!(r.status(), 200);
    let lines = log_lines(&path, 1);
    let l = &lines[0];
    assert_eq!(l["protocol"], "HTTP/2.0", "{l}");
    assert_eq!(l["method"], "GET", "{l}");
    assert_eq!(l["target"], "/logged?x=1", "{l}");
    assert_eq!(l["status"], 200, "{l}");
    assert_eq!(l["host"], "localhost", "{l}");
    assert_eq!(l["user_agent"], "h2-test", "{l}");
    assert_eq!(l["backend"], a.addr.to_string(), "{l}");
    assert_eq!(l["body_bytes_out"], "backend a".len(), "{l}");
    match mode {
        Mode::H2c => assert!(l.get("tls").is_none(), "{l}"),
        Mode::Tls => {
            assert_eq!(l["tls"], "TLSv1.3", "{l}");
            assert_eq!(l["sni"], "localhost", "{l}");
        }
    }
    // a stream answered 431 (its head over max_request_head) is logged too
    let big = "v".repeat(20_000);
    let r = w.request("GET", "/too-big", &[("x-big", &big)], None);
    assert_eq!(r.status(), 431);
    let lines = log_lines(&path, 2);
    assert_eq!(lines[1]["status"], 431, "{}", lines[1]);
    assert!(
        w.goaway.is_none()
            && w.streams
                .values()
                .all(|r| r.reset != Some(code::PROTOCOL_ERROR))
    );
}

both_modes!(
    balancing_and_split_cookies,
    max_conns_queue,
    retries,
    forwarding_headers,
    head_too_large,
    access_log,
);

/// `http2: false` (issue 23) turns HTTP/2 off: over TLS, ALPN agrees on `http/1.1` even when the
/// client offers `h2` first; on the plain port the preface is read as an HTTP/1.1 request, and
/// refused as one.
fn http2_off(mode: Mode) {
    let a = Backend::start("a");
    let s = Setup::start(mode, &[a.addr], json!({"http2": false}));
    match mode {
        Mode::Tls => {
            let ca = s.ca.as_ref().expect("the test CA");
            let mut config = rustls::ClientConfig::clone(&crate::common::h2::h2_client_config(ca));
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            let c = crate::common::tls::TlsClient::connect(
                s.addr(),
                &std::sync::Arc::new(config),
                "localhost",
            );
            assert_eq!(c.conn().alpn_protocol(), Some(&b"http/1.1"[..]));
        }
        Mode::H2c => {
            let mut w = s.raw();
            w.send(crate::common::h2::PREFACE);
            let text = String::from_utf8_lossy(&w.read_to_close()).into_owned();
            assert!(
                text.starts_with("HTTP/1.1 "),
                "an HTTP/1.1 answer: {text:?}"
            );
        }
    }
}

/// `http2_max_concurrent_streams` (issue 23) sets SETTINGS_MAX_CONCURRENT_STREAMS, and streams
/// over it are refused.
fn max_concurrent_streams_setting(mode: Mode) {
    let gated = GatedBackend::start("gated");
    let s = Setup::start(
        mode,
        &[gated.addr()],
        json!({"http2_max_concurrent_streams": 4}),
    );
    let mut w = s.wire();
    assert!(w.ping_pong());
    assert!(w.settings.contains(&(3, 4)), "{:?}", w.settings);
    for i in 0..4 {
        w.start("GET", &format!("/held{i}"), &[], None);
    }
    for _ in 0..4 {
        gated.next_arrival();
    }
    let fifth = w.start("GET", "/fifth", &[], None);
    assert_eq!(w.wait_reset(fifth), Some(code::REFUSED_STREAM));
}

// the config keys `http2` and `http2_max_concurrent_streams`, over TLS and over h2c
mod config_keys {
    use crate::common::h2::Mode;

    #[test]
    fn http2_off_h2c() {
        super::http2_off(Mode::H2c);
    }

    #[test]
    fn http2_off_tls() {
        super::http2_off(Mode::Tls);
    }

    #[test]
    fn max_concurrent_streams_setting_h2c() {
        super::max_concurrent_streams_setting(Mode::H2c);
    }

    #[test]
    fn max_concurrent_streams_setting_tls() {
        super::max_concurrent_streams_setting(Mode::Tls);
    }
}
