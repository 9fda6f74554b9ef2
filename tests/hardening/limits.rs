//! The limits: `max_body_size` (413 before forwarding for a length, counted on a chunked body),
//! `max_header_count` (431) and `max_connections_per_ip` (shared by the workers, closed at
//! accept, released at close).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use serde_json::json;

use super::{exchange, quiet_proxy, raw, RawBackend};
use crate::common::{Backend, Client, Proxy, TempDir};

// Proves a Content-Length above `max_body_size` is 413 at once, before a byte of the body is
// sent (the client is not made to upload it) and with nothing forwarded; one at the limit is
// echoed whole.
#[test]
fn content_length_over_max_body_size_is_413_before_forwarding() {
    let sink = RawBackend::sink();
    let proxy = quiet_proxy(&[sink.addr], json!({"max_body_size": 1000}));
    let (r, closed) = exchange(
        &proxy,
        b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 1001\r\n\r\n",
    );
    assert_eq!(r.status, 413, "{r:?}");
    assert!(r.closes() && closed);
    let (r, _) = exchange(
        &proxy,
        b"PUT /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 99999999\r\n\r\n",
    );
    assert_eq!(r.status, 413, "no 100 Continue for a body too large: {r:?}");
    assert!(sink.bytes().is_empty(), "nothing forwarded");

    let a = Backend::start("a");
    let proxy = quiet_proxy(&[a.addr], json!({"max_body_size": 1000}));
    let body = vec![b'x'; 1000];
    let mut request =
        b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n"
            .to_vec();
    request.extend_from_slice(&body);
    let (r, _) = exchange(&proxy, &request);
    assert_eq!((r.status, r.body.len()), (200, 1000));
}

fn chunk(out: &mut Vec<u8>, fill: u8, len: usize) {
    out.extend_from_slice(format!("{len:x}\r\n").as_bytes());
    out.extend(std::iter::repeat_n(fill, len));
    out.extend_from_slice(b"\r\n");
}

// Proves a chunked body is counted: past `max_body_size` the request gets 413 (no response byte
// had gone out) and the connection closes; the backend never got more payload than the limit.
// Under the limit, a chunked body is echoed whole.
#[test]
fn chunked_body_over_max_body_size_is_413_and_not_forwarded() {
    let sink = RawBackend::sink();
    let proxy = quiet_proxy(&[sink.addr], json!({"max_body_size": 1000}));
    let mut request =
        b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    chunk(&mut request, b'A', 600);
    chunk(&mut request, b'Z', 600);
    chunk(&mut request, b'Z', 600);
    let (r, closed) = exchange(&proxy, &request);
    assert_eq!(r.status, 413, "{r:?}");
    assert!(r.closes() && closed);
    let got = sink.bytes();
    let payload = got.iter().filter(|&&b| b == b'A' || b == b'Z').count();
    assert!(payload <= 1000, "{payload} payload bytes forwarded");

    let a = Backend::start("a");
    let proxy = quiet_proxy(&[a.addr], json!({"max_body_size": 1000}));
    let mut request =
        b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            .to_vec();
    chunk(&mut request, b'A', 500);
    chunk(&mut request, b'B', 500);
    request.extend_from_slice(b"0\r\n\r\n");
    let (r, _) = exchange(&proxy, &request);
    assert_eq!((r.status, r.body.len()), (200, 1000));
}

// Proves that once the response has started, a chunked body growing past the limit can only
// close the connection: the client sees the backend's response head, then the end, never a 413.
#[test]
fn chunked_body_over_the_limit_after_the_response_started_closes() {
    // answers as soon as the head is in, and keeps its response open
    let early =
        RawBackend::answering(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
    let proxy = quiet_proxy(&[early.addr], json!({"max_body_size": 1000}));
    let mut s = raw(proxy.addr());
    let mut request =
        b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    chunk(&mut request, b'A', 600);
    s.write_all(&request).expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !crate::common::contains(&got, b"abc\r\n") {
        let n = s.read(&mut buf).expect("the response starts");
        assert!(n > 0, "closed before the response: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    let mut more = Vec::new();
    chunk(&mut more, b'Z', 600);
    // the proxy may close while this is on its way: a reset is an answer too
    let _ = s.write_all(&more);
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    got.extend_from_slice(&rest);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text:?}");
    assert!(!text.contains("413"), "no second response: {text:?}");
}

// Proves `max_header_count`: a request with that many fields is served, one more is 431.
#[test]
fn max_header_count_is_431() {
    let a = Backend::start("a");
    let proxy = quiet_proxy(&[a.addr], json!({"max_header_count": 10}));
    let fields = |n: usize| -> String { (1..n).map(|i| format!("X-{i}: v\r\n")).collect() };
    let ok = format!(
        "GET / HTTP/1.1\r\nHost: h\r\n{}Connection: close\r\n\r\n",
        fields(9)
    );
    let (r, _) = exchange(&proxy, ok.as_bytes());
    assert_eq!(r.status, 200, "10 fields");
    let over = format!(
        "GET / HTTP/1.1\r\nHost: h\r\n{}Connection: close\r\n\r\n",
        fields(10)
    );
    let (r, closed) = exchange(&proxy, over.as_bytes());
    assert_eq!(r.status, 431, "11 fields");
    assert!(closed);
    assert_eq!(a.record.count(), 1);
}

fn per_ip_refused(proxy: &Proxy) -> u64 {
    proxy.admin_get("/stats")["per_ip_refused"]
        .as_u64()
        .expect("per_ip_refused")
}

/// A keep-alive connection from `from` that has been served once (so ferrule holds it).
fn served_from(addr: SocketAddr, from: IpAddr) -> Client {
    let mut c = Client::connect_from(addr, from);
    c.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(c.response().status, 200);
    c
}

// Proves `max_connections_per_ip` counts one address's connections over both workers: with 2
// held, a third from the same address is closed at accept (and counted) while another address is
// served; once one of the two closes, the address may connect again.
#[test]
fn max_connections_per_ip_is_shared_by_the_workers() {
    let a = Backend::start("a");
    let proxy = quiet_proxy(
        &[a.addr],
        json!({"workers": 2, "max_connections_per_ip": 2}),
    );
    let addr = proxy.addr();
    let one = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    let first = served_from(addr, one);
    let _second = served_from(addr, one);
    // whichever worker takes it, the third is refused
    for _ in 0..4 {
        let mut c = Client::connect_from(addr, one);
        c.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(c.try_response().is_err(), "a third connection is closed");
    }
    assert_eq!(per_ip_refused(&proxy), 4);
    let _third = served_from(addr, other);
    drop(first);
    // the close is seen by the worker soon after: poll, bounded
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = Client::connect_from(addr, one);
        c.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        if c.try_response().is_ok_and(|r| r.status == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "the address was never released");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `probe` until it returns true, for at most 5 s.
fn eventually(what: &str, mut probe: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !probe() {
        assert!(Instant::now() < deadline, "{what}: not within 5 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// Proves the three limits apply on reload: after `max_body_size`, `max_header_count` and
// `max_connections_per_ip` appear in the file, new requests and connections get them; the
// connections opened before (uncounted) do not count, and closing them releases nothing.
#[test]
fn the_limits_apply_on_reload() {
    let a = Backend::start("a");
    let dir = TempDir::new("limits-reload");
    let path = dir.join("config.json");
    let base = json!({
        "port": 0, "admin_port": 0, "bind": "127.0.0.1", "workers": 2,
        "health_check_frequency": "0s",
        "backends": [{"url": format!("http://{}", a.addr)}],
    });
    std::fs::write(&path, base.to_string()).expect("write config");
    let config = ferrule::Config::load(&path).expect("config loads");
    let proxy = Proxy {
        handle: ferrule::start_file(&config, Some(path.clone())).expect("proxy starts"),
    };
    let addr = proxy.addr();
    let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 4));
    let before: Vec<Client> = (0..3).map(|_| served_from(addr, ip)).collect();
    let big_post = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2000\r\n\r\n";
    let fields: String = (0..20).map(|i| format!("X-{i}: v\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\nHost: h\r\n{fields}Connection: close\r\n\r\n");

    let mut cfg = base.clone();
    cfg["max_body_size"] = json!(1000);
    cfg["max_header_count"] = json!(10);
    cfg["max_connections_per_ip"] = json!(1);
    std::fs::write(&path, cfg.to_string()).expect("write config");
    proxy.handle.reload().expect("reload");
    // each from an address of its own: with max_connections_per_ip at 1, a connection of the
    // loop still closing on one worker would make the next one's count go over on the other
    let mut from = 10u8;
    let mut answer = |request: &[u8]| {
        from += 1;
        let mut c = Client::connect_from(addr, IpAddr::V4(Ipv4Addr::new(127, 0, 0, from)));
        c.send(request);
        c.try_response().map(|r| r.status).unwrap_or(0)
    };
    eventually("413 after the reload", || answer(big_post) == 413);
    assert_eq!(answer(many.as_bytes()), 431);
    // the three from before are not counted: one more is admitted, the next is not
    let counted = served_from(addr, ip);
    let mut c = Client::connect_from(addr, ip);
    c.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(
        c.try_response().is_err(),
        "a second counted connection is refused"
    );
    drop(before);
    // closing uncounted connections frees nothing: still refused
    std::thread::sleep(Duration::from_millis(200));
    let mut c = Client::connect_from(addr, ip);
    c.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(
        c.try_response().is_err(),
        "still one counted connection open"
    );
    drop(counted);
    eventually("the counted connection released", || {
        let mut c = Client::connect_from(addr, ip);
        c.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        c.try_response().is_ok_and(|r| r.status == 200)
    });
}
