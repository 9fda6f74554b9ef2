//! Regression tests for the second review's wire and memory defects, over real sockets on
//! 127.0.0.1. Each one fails on the code before its fix:
//!
//! - a `HEAD` answered by ferrule itself (here a 502) carries no body, so the next response on the
//!   connection is read in step;
//! - a request line with a space inside the target is a malformed line (400), not a version
//!   problem (505);
//! - a `Host` carrying user info, a query or a fragment is refused; an absolute-form target's
//!   authority replaces `Host`;
//! - an HTTP/1.0 request without `Host`, retried on a second backend, carries that backend's
//!   authority, not the first one's;
//! - running out of file descriptors on a backend connect is a 503 that is not counted against
//!   the backend, logged once, and recovers;
//! - buffer memory follows a load that drops in steps, instead of staying at its peak.

use crate::common;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn raw(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// Sends `request` on a fresh connection and returns the status of the answer.
fn status_of(proxy: &Proxy, request: &[u8]) -> u16 {
    let mut c = proxy.connect();
    c.send(request);
    c.response().status
}

// ----------------------------------------------------------------------------- HEAD

#[test]
fn head_answered_by_ferrule_has_no_body_and_the_connection_stays_in_step() {
    // nothing listens at the only backend: ferrule answers 502 itself, and keeps the connection
    let dead = dead_addr();
    let proxy = Proxy::start(&[dead.addr], json!({"retries": 0}));
    let mut s = raw(proxy.addr());
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

// ----------------------------------------------------------------------------- request line

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

// ----------------------------------------------------------------------------- Host

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

fn proxy_get_raw(proxy: &Proxy, request: &[u8]) -> Response {
    let mut c = proxy.connect();
    c.send(request);
    c.response()
}

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

// ----------------------------------------------------------------------------- descriptors

/// A ferrule child process started under `ulimit -n limit`, on ports it picked itself.
struct Limited {
    child: ChildGuard,
    addr: SocketAddr,
    admin: SocketAddr,
    stderr: mpsc::Receiver<String>,
    _dir: std::path::PathBuf,
}

fn port_in(line: &str, after: &str) -> u16 {
    let rest = &line[line.find(after).expect("address in the line") + after.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().expect("a port")
}

fn start_limited(limit: u32, backend: SocketAddr) -> Limited {
    let dir = fresh_temp_dir("fd-limit");
    let path = dir.join("config.json");
    let config = json!({
        "port": 0, "admin_port": 0, "bind": "127.0.0.1", "workers": 1,
        "backend_keepalive": 0, "retries": 0,
        "backends": [{"url": format!("http://{backend}")}],
    });
    std::fs::write(&path, config.to_string()).expect("write config");
    // `ulimit -n` in sh sets the hard limit too, so ferrule cannot raise it
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {limit} && exec \"$0\" \"$1\""))
        .arg(env!("CARGO_BIN_EXE_ferrule"))
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ferrule");
    let mut child = ChildGuard(child);
    let stderr = line_channel(child.0.stderr.take().expect("stderr"));
    let listening = wait_for_line(&stderr, "listening on", Duration::from_secs(10));
    let admin = wait_for_line(&stderr, "admin API on", Duration::from_secs(10));
    Limited {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port_in(&listening, "127.0.0.1:"))),
        admin: SocketAddr::from(([127, 0, 0, 1], port_in(&admin, "127.0.0.1:"))),
        stderr,
        _dir: dir,
    }
}

/// A keep-alive client that has had one answer (200, or the 503 of a backend connect that found
/// no descriptor): it holds one descriptor in the proxy. `None` when no answer came `within`: the
/// proxy could not accept it (out of descriptors), and it waits in the accept queue.
fn answered_client(addr: SocketAddr, within: Duration) -> Option<(Client, u16)> {
    let mut c = Client::connect(addr);
    c.stream().set_read_timeout(Some(within)).ok()?;
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.try_response().ok()?;
    assert!(
        r.status == 200 || r.status == 503,
        "{} {}",
        r.status,
        r.text()
    );
    c.stream().set_read_timeout(Some(IO_TIMEOUT)).ok()?;
    Some((c, r.status))
}

#[test]
fn out_of_descriptors_on_a_backend_connect_is_503_and_not_the_backends_fault() {
    let backend = Backend::start("b");
    let proxy = start_limited(48, backend.addr);
    // fill the proxy's descriptor table with idle keep-alive clients, until one is left waiting
    // in the accept queue: from then on the proxy has no descriptor to spare
    let mut held = Vec::new();
    let mut refused = 0;
    while let Some((c, status)) = answered_client(proxy.addr, Duration::from_millis(500)) {
        refused += usize::from(status == 503);
        held.push(c);
        assert!(held.len() < 100, "the descriptor limit was never reached");
    }
    // a request on a connection already accepted needs a backend connection: none can be opened
    let c = held.last_mut().expect("some clients were served");
    c.send(b"GET /again HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        refused <= 1,
        "{refused} clients got 503 before the limit was reached"
    );
    wait_for_line(
        &proxy.stderr,
        "cannot open backend connections",
        Duration::from_secs(5),
    );
    // free descriptors: service resumes, and the backend was never blamed
    held.clear();
    let mut fresh = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while fresh.is_none() && Instant::now() < deadline {
        fresh = answered_client(proxy.addr, Duration::from_secs(2)).filter(|(_, s)| *s == 200);
    }
    assert!(fresh.is_some(), "service did not resume");
    wait_for_line(
        &proxy.stderr,
        "backend connections can be opened again",
        Duration::from_secs(5),
    );
    let mut admin = Client::connect(proxy.admin);
    admin.send(b"GET /backends HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let list: serde_json::Value = serde_json::from_slice(&admin.response().body).expect("json");
    let entry = backend_entry(&list, backend.addr);
    assert_eq!(entry["failures"], 0, "{entry}");
    // one warning for the whole episode
    let more: Vec<String> = proxy.stderr.try_iter().collect();
    assert!(
        !more
            .iter()
            .any(|l| l.contains("cannot open backend connections")),
        "{more:?}"
    );
    proxy.child.terminate();
}

// ----------------------------------------------------------------------------- memory

/// Waits (bounded) until `ok(rss)` holds for the proxy's resident memory; returns the last value.
fn rss_until(proxy: &ProxyProcess, within: Duration, ok: impl Fn(u64) -> bool) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        let rss = proxy.memory().current;
        if ok(rss) || Instant::now() >= deadline {
            return rss;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Clients that each hold a request buffer in the proxy: a 15,000-byte head that never ends.
/// (Kernel socket buffers cannot absorb it, unlike a large response, which a loopback send buffer
/// of several MB swallows whole.)
fn partial_heads(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut head = b"GET / HTTP/1.1\r\nHost: t\r\nX-Pad: ".to_vec();
    head.resize(15_000, b'a');
    (0..n)
        .map(|_| {
            let mut s = raw(addr);
            s.write_all(&head).expect("send");
            s
        })
        .collect()
}

#[test]
fn buffer_memory_follows_a_load_that_drops_in_steps() {
    let backend = Backend::start("b");
    let proxy = ProxyProcess::start(
        json!({"workers": 1, "backends": [{"url": format!("http://{}", backend.addr)}]}),
        "memory-steps",
    );
    let base = proxy.memory().current;
    let mut clients = partial_heads(proxy.addr(), 600);
    // each held head touches at least two pages of its buffer; then wait for the growth to settle
    let grown_enough = rss_until(&proxy, Duration::from_secs(15), |rss| {
        rss >= base + 600 * 8192
    });
    assert!(
        grown_enough >= base + 600 * 8192,
        "600 busy connections should hold ~600 buffers: base {base}, now {grown_enough}"
    );
    let mut peak = grown_enough;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(200));
        let now = proxy.memory().current;
        if now <= peak {
            break;
        }
        peak = now;
    }
    let grown = peak - base;
    // down to 200 busy: within seconds, most of what the 400 freed buffers held goes back to the
    // system (the allocator keeps a page here and there, so ask for half of their share; a pool
    // that keeps its peak gives back nothing)
    clients.truncate(200);
    let step = rss_until(&proxy, Duration::from_secs(15), |rss| {
        rss <= peak - grown / 3
    });
    assert!(
        step <= peak - grown / 3,
        "memory stayed near its peak: base {base}, peak {peak}, now {step}"
    );
    // down to none: back near where it started
    clients.clear();
    let idle = rss_until(&proxy, Duration::from_secs(15), |rss| {
        rss <= base + grown / 4
    });
    assert!(
        idle <= base + grown / 4,
        "memory stayed up once idle: base {base}, peak {peak}, now {idle}"
    );
}
