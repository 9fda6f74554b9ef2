//! The foundation of the data path, the first tests written: the proxy forwards requests and bodies, keeps connections alive on both sides,
//! balances over backends, maps backend failures to 502/503, rejects malformed requests without
//! hurting other clients, serves the admin API, and the `ferrule` and `mock-backend` binaries
//! behave on the command line.
//!
//! Everything runs on 127.0.0.1; every wait is bounded; every child process is stopped by PID.

use crate::common;

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

// ----------------------------------------------------------------------------- helpers

/// Sends a keep-alive `GET path` on `c` and reads its response.
fn get_on(c: &mut Client, path: &str) -> Response {
    c.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
    c.response()
}

/// `GET path` on the admin API, as a raw response (status included).
fn admin_raw(proxy: &Proxy, path: &str) -> Response {
    let mut c = Client::connect(proxy.admin());
    c.send(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    c.response()
}

/// `count` bytes that are not a repeated pattern: every byte value appears, in no simple order.
fn noisy_bytes(count: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 11) as u8
        })
        .collect()
}

/// Asserts that `r` is a 200 echoing `sent` exactly, and that `backend` received exactly one
/// request, with `sent` as its body.
#[track_caller]
fn assert_echoed_exactly(r: &Response, backend: &Backend, sent: &[u8]) {
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), sent.len());
    assert!(r.body == sent, "echoed body differs from the one sent");
    let seen = backend.record.requests();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].body == sent,
        "the backend received a different body"
    );
}

/// A `config.json` with `contents` in a fresh temporary directory of its own (removed when the
/// directory is dropped); its path.
fn temp_file(name: &str, contents: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(name);
    let path = dir.join("config.json");
    std::fs::write(&path, contents).expect("write temp config");
    (dir, path)
}

/// What a finished command printed.
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs the `ferrule` binary with `args`, killing it if it has not exited within 10 s.
fn run_ferrule(args: &[&str]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_ferrule"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ferrule");
    let mut child = ChildGuard(child);
    let mut out = child.0.stdout.take().expect("stdout");
    let mut err = child.0.stderr.take().expect("stderr");
    let out = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = child
        .wait_for(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("ferrule {args:?} did not exit within 10 s"));
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

// ----------------------------------------------------------------------------- the test helpers

// Proves the test backends keep health probes out of their records (so exact counts hold once
// ferrule runs health checks): a probe (`User-Agent: ferrule-health`, any path) is answered 200
// even by a backend whose handler would drop it, and counts neither as a request nor as a
// connection; the next request, on a connection of its own, is connection 0.
#[test]
fn test_backends_answer_health_probes_and_do_not_record_them() {
    let backend = Backend::with_handler("dropper", |_, _| Reply::Drop);
    let mut probe = Client::connect(backend.addr);
    for path in ["/health", "/custom/check"] {
        probe.send(
            format!("GET {path} HTTP/1.1\r\nHost: b\r\nUser-Agent: ferrule-health\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(probe.response().status, 200, "probe of {path}");
    }
    assert_eq!(backend.record.health_probes(), 2);
    assert_eq!(backend.record.count(), 0);
    assert_eq!(backend.record.connections(), 0);

    let mut c = Client::connect(backend.addr);
    c.send(b"GET /health HTTP/1.1\r\nHost: b\r\nUser-Agent: curl/8\r\n\r\n");
    assert!(c.is_closed(), "not a probe: the handler dropped it");
    let seen = backend.record.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].target.as_str(), seen[0].conn), ("/health", 0));
    assert_eq!(backend.record.connections(), 1);
}

// Proves a dead address refuses connections while its guard lives.
#[test]
fn dead_addr_refuses_connections() {
    let dead = dead_addr();
    for _ in 0..3 {
        let e = std::net::TcpStream::connect(dead.addr).expect_err("connected to a dead address");
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
    }
}

// ----------------------------------------------------------------------------- forwarding

// Proves a GET goes through unchanged (status, body, backend header) and the backend sees the
// original Host plus X-Forwarded-For / X-Forwarded-Proto for a plain-HTTP client on 127.0.0.1.
#[test]
fn get_is_forwarded_with_forwarding_headers() {
    let backend = Backend::start("a");
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let mut c = proxy.connect();
    c.send(b"GET /some/path?q=1 HTTP/1.1\r\nHost: app.example:8080\r\nAccept: */*\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "backend a");
    assert_eq!(r.header("x-backend"), Some("a"));

    let seen = backend.record.requests();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(req.method, "GET");
    assert_eq!(req.target, "/some/path?q=1");
    assert_eq!(req.header("host"), Some("app.example:8080"));
    assert_eq!(req.header("accept"), Some("*/*"));
    assert_eq!(req.headers_named("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(req.header("x-forwarded-proto"), Some("http"));
}

// Proves a 100 KB request body with every byte value crosses the proxy both ways byte-exact.
#[test]
fn large_post_body_is_echoed_exactly() {
    let backend = Backend::start("a");
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let body = noisy_bytes(100 * 1024);
    let mut c = proxy.connect();
    c.send(
        format!(
            "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    c.send(&body);
    assert_echoed_exactly(&c.response(), &backend, &body);
}

// Proves a chunked request body written in several pieces reaches the backend and comes back
// exactly.
#[test]
fn chunked_post_body_is_echoed_exactly() {
    let backend = Backend::start("a");
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let data = noisy_bytes(1 + 5000 + 16391 + 30000);
    let mut c = proxy.connect();
    c.send(b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n");
    let mut at = 0;
    for size in [1usize, 5000, 16391, 30000] {
        let mut chunk = format!("{size:x}\r\n").into_bytes();
        chunk.extend_from_slice(&data[at..at + size]);
        chunk.extend_from_slice(b"\r\n");
        c.send(&chunk);
        at += size;
    }
    c.send(b"0\r\n\r\n");
    assert_echoed_exactly(&c.response(), &backend, &data);
}

// Proves one client connection carries 100 requests: every answer is right and the proxy
// accepted exactly one connection.
#[test]
fn hundred_requests_on_one_keep_alive_connection() {
    let backend = Backend::start("a");
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let mut c = proxy.connect();
    for i in 0..100 {
        let r = get_on(&mut c, &format!("/req/{i}"));
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(r.text(), "backend a", "request {i}");
        assert!(!r.closes(), "request {i} announced Connection: close");
    }
    assert_eq!(backend.record.count(), 100);
    let stats = proxy.admin_get("/stats");
    assert_eq!(stats["accepted_connections"], 1, "stats: {stats}");
}

// ----------------------------------------------------------------------------- balancing

// Proves round-robin (the default) over three backends splits 300 requests exactly 100/100/100.
#[test]
fn round_robin_splits_evenly() {
    let backends = [
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    ];
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let proxy = Proxy::start(&addrs, json!({}));
    let mut c = proxy.connect();
    let mut answered: HashMap<String, usize> = HashMap::new();
    for i in 0..300 {
        let r = get_on(&mut c, "/");
        assert_eq!(r.status, 200, "request {i}");
        let name = r.header("x-backend").expect("X-Backend").to_string();
        assert_eq!(r.text(), format!("backend {name}"));
        *answered.entry(name).or_default() += 1;
    }
    for b in &backends {
        assert_eq!(b.record.count(), 100, "backend {} saw", b.name);
        assert_eq!(answered.get(&b.name), Some(&100), "answers from {}", b.name);
    }
}

// Proves weighted round-robin with weights 5, 3, 2 splits 100 requests exactly 50/30/20.
#[test]
fn weighted_round_robin_follows_weights() {
    let backends = [
        Backend::start("five"),
        Backend::start("three"),
        Backend::start("two"),
    ];
    let cfg = json!({
        "port": 0,
        "admin_port": 0,
        "bind": "127.0.0.1",
        "workers": 2,
        "strategy": "weighted-round-robin",
        "backends": [
            {"url": format!("http://{}", backends[0].addr), "weight": 5},
            {"url": format!("http://{}", backends[1].addr), "weight": 3},
            {"url": format!("http://{}", backends[2].addr), "weight": 2},
        ],
    });
    let proxy = Proxy::from_json(&cfg.to_string());
    let mut c = proxy.connect();
    for i in 0..100 {
        let r = get_on(&mut c, "/");
        assert_eq!(r.status, 200, "request {i}");
    }
    let counts: Vec<usize> = backends.iter().map(|b| b.record.count()).collect();
    assert_eq!(counts, [50, 30, 20]);
}

// ----------------------------------------------------------------------------- upstream reuse

// Proves 200 sequential requests on one client connection use a single backend connection.
#[test]
fn backend_connection_is_reused_across_requests() {
    let backend = Backend::start("a");
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let mut c = proxy.connect();
    for i in 0..200 {
        let r = get_on(&mut c, "/");
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(r.text(), "backend a");
    }
    assert_eq!(backend.record.count(), 200);
    assert_eq!(backend.record.connections(), 1);
    assert!(backend.record.requests().iter().all(|s| s.conn == 0));
}

// Proves idle backend connections outlive client connections: 20 clients one after another
// (5 requests each) make at most one backend connection per worker.
#[test]
fn backend_connections_are_shared_between_client_connections() {
    let backend = Backend::start("a");
    let proxy = Proxy::start(&[backend.addr], json!({}));
    for client in 0..20 {
        let mut c = proxy.connect();
        for i in 0..5 {
            let r = get_on(&mut c, "/");
            assert_eq!(r.status, 200, "client {client} request {i}");
            assert_eq!(r.text(), "backend a");
        }
    }
    assert_eq!(backend.record.count(), 100);
    let conns = backend.record.connections();
    assert!(
        (1..=2).contains(&conns),
        "backend accepted {conns} connections for 20 sequential clients (2 workers)"
    );
}

// ----------------------------------------------------------------------------- failures

// Proves a refused backend connection with no retries becomes 502.
#[test]
fn dead_backend_gives_502() {
    let dead = dead_addr();
    let proxy = Proxy::start(&[dead.addr], json!({"retries": 0}));
    let mut c = proxy.connect();
    let r = get_on(&mut c, "/");
    assert_eq!(r.status, 502);
}

// Proves a connect failure is retried on the other backend (every request succeeds) and is
// counted as a failure of the dead backend in the admin API.
#[test]
fn connect_failure_is_retried_on_another_backend() {
    let dead = dead_addr();
    let alive = Backend::start("alive");
    let proxy = Proxy::start(&[dead.addr, alive.addr], json!({}));
    let mut c = proxy.connect();
    for i in 0..10 {
        let r = get_on(&mut c, "/");
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(r.text(), "backend alive", "request {i}");
    }
    assert_eq!(alive.record.count(), 10);
    let backends = proxy.admin_get("/backends");
    let failures = backend_entry(&backends, dead.addr)["failures"]
        .as_u64()
        .expect("failures is a number");
    assert!(failures > 0, "dead backend shows no failures: {backends}");
    assert_eq!(backend_entry(&backends, alive.addr)["failures"], 0);
}

// Proves the per-backend counters stay right through retries. On one connection (one worker),
// round-robin over [dead, alive] sends some requests to the dead backend first; each is refused
// there and retried on the live one. GET /backends then shows: on the dead backend, every attempt
// is one request and one failure (so at least one, and at most one per client request); on the
// live one, each client request exactly once and no failure; no request left active on either.
#[test]
fn retry_after_connect_failure_counts_each_attempt_once() {
    const N: u64 = 4;
    let dead = dead_addr();
    let alive = Backend::start("alive");
    let proxy = Proxy::start(&[dead.addr, alive.addr], json!({"retries": 1}));
    let mut c = proxy.connect();
    for i in 0..N {
        let r = get_on(&mut c, &format!("/r{i}"));
        assert_eq!(r.status, 200, "request {i}: {r:?}");
        assert_eq!(r.text(), "backend alive", "request {i}");
    }
    let since = std::time::Instant::now();
    wait_until_released(&proxy, dead.addr, since);
    wait_until_released(&proxy, alive.addr, since);

    let backends = proxy.admin_get("/backends");
    let counter = |addr: SocketAddr, name: &str| -> u64 {
        let entry = backend_entry(&backends, addr);
        entry[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no {name} in {entry}"))
    };
    let dead_failures = counter(dead.addr, "failures");
    assert!(
        (1..=N).contains(&dead_failures),
        "{N} requests, {dead_failures} connect failures on the dead backend: {backends}"
    );
    assert_eq!(
        counter(dead.addr, "total_requests"),
        dead_failures,
        "every attempt on the dead backend is one request and one failure: {backends}"
    );
    assert_eq!(
        counter(alive.addr, "total_requests"),
        N,
        "the live backend counts each request once: {backends}"
    );
    assert_eq!(counter(alive.addr, "failures"), 0, "{backends}");
    for addr in [dead.addr, alive.addr] {
        assert_eq!(counter(addr, "active_connections"), 0, "{addr}: {backends}");
    }
    let targets: Vec<String> = alive
        .record
        .requests()
        .into_iter()
        .map(|s| s.target)
        .collect();
    let sent: Vec<String> = (0..N).map(|i| format!("/r{i}")).collect();
    assert_eq!(targets, sent, "each request reached the live backend once");
    let stats = proxy.admin_get("/stats");
    assert_eq!(
        stats["backend_requests"].as_u64(),
        Some(N + dead_failures),
        "attempts = requests + retries: {stats}"
    );
}

// Proves an empty pool answers 503 with Retry-After and keeps the connection for the next
// (bodiless) request.
#[test]
fn no_backends_gives_503_and_keeps_the_connection() {
    let proxy = Proxy::start(&[], json!({}));
    let mut c = proxy.connect();
    for i in 0..2 {
        let r = get_on(&mut c, "/");
        assert_eq!(r.status, 503, "request {i}");
        assert!(
            r.header("retry-after").is_some(),
            "request {i}: no Retry-After"
        );
        assert!(!r.closes(), "request {i} announced Connection: close");
    }
}

// Proves a malformed head and raw garbage each get 400 and a closed connection, while a client
// connected before them keeps being served in between.
#[test]
fn malformed_requests_get_400_without_disturbing_others() {
    let backend = Backend::start("a");
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let mut good = proxy.connect();
    assert_eq!(get_on(&mut good, "/").status, 200);

    let mut bad = proxy.connect();
    bad.send(b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n");
    let r = bad.response();
    assert_eq!(r.status, 400);
    assert!(
        bad.is_closed(),
        "connection stays open after a malformed head"
    );

    let r = get_on(&mut good, "/");
    assert_eq!((r.status, r.text().as_str()), (200, "backend a"));

    let mut garbage = proxy.connect();
    garbage.send(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\xff\xfe garbage\r\n\r\n");
    let r = garbage.response();
    assert_eq!(r.status, 400);
    assert!(garbage.is_closed(), "connection stays open after garbage");

    let r = get_on(&mut good, "/");
    assert_eq!((r.status, r.text().as_str()), (200, "backend a"));
    assert_eq!(
        backend.record.count(),
        3,
        "a malformed request reached the backend"
    );
}

// ----------------------------------------------------------------------------- admin API

// Proves GET /backends lists every backend with total_requests equal to what it served.
#[test]
fn admin_backends_counts_requests() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let proxy = Proxy::start(&[a.addr, b.addr], json!({}));
    let mut c = proxy.connect();
    for i in 0..7 {
        assert_eq!(get_on(&mut c, "/").status, 200, "request {i}");
    }
    assert_eq!(proxy.get("/").status, 200);
    assert_eq!(a.record.count() + b.record.count(), 8);

    let backends = proxy.admin_get("/backends");
    assert_eq!(backends["backends"].as_array().map(Vec::len), Some(2));
    for be in [&a, &b] {
        let entry = backend_entry(&backends, be.addr);
        assert_eq!(
            entry["total_requests"].as_u64(),
            Some(be.record.count() as u64),
            "backend {}: {entry}",
            be.name
        );
        assert_eq!(entry["failures"], 0);
    }
}

/// The figures of a `GET /stats` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stats {
    open: u64,
    accepted: u64,
    backend_requests: u64,
}

/// Reads `GET /stats`, checking its shape: a JSON object (served as JSON) with the numbers
/// `open_connections`, `accepted_connections`, `backend_requests` and an array `workers` of
/// `{open_connections, accepted}`, one per worker. When `settled` (no connection is opening or
/// closing), the workers' figures must also add up to the totals.
fn stats_of(proxy: &Proxy, workers: usize, settled: bool) -> Stats {
    let r = admin_raw(proxy, "/stats");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.header("content-type")
            .is_some_and(|v| v.starts_with("application/json")),
        "served as JSON: {:?}",
        r.headers
    );
    let stats: Value = serde_json::from_slice(&r.body).expect("stats is JSON");
    let number = |v: &Value, name: &str| -> u64 {
        v[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} is not a number in {stats}"))
    };
    let list = stats["workers"]
        .as_array()
        .unwrap_or_else(|| panic!("workers is not an array in {stats}"));
    assert_eq!(list.len(), workers, "one entry per worker: {stats}");
    let per_worker: Vec<(u64, u64)> = list
        .iter()
        .map(|w| (number(w, "open_connections"), number(w, "accepted")))
        .collect();
    let s = Stats {
        open: number(&stats, "open_connections"),
        accepted: number(&stats, "accepted_connections"),
        backend_requests: number(&stats, "backend_requests"),
    };
    if settled {
        let open: u64 = per_worker.iter().map(|w| w.0).sum();
        let accepted: u64 = per_worker.iter().map(|w| w.1).sum();
        assert_eq!(
            (open, accepted),
            (s.open, s.accepted),
            "workers add up: {stats}"
        );
    }
    s
}

/// Polls `GET /stats` (nothing else signals a close) until `cond` holds; panics after 5 s.
fn stats_when(proxy: &Proxy, workers: usize, what: &str, cond: impl Fn(&Stats) -> bool) -> Stats {
    let limit = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let s = stats_of(proxy, workers, false);
        if cond(&s) {
            // settled now: take the consistent snapshot
            return stats_of(proxy, workers, true);
        }
        assert!(
            std::time::Instant::now() < limit,
            "stats still not {what} after 5 s: {s:?}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

// Proves GET /stats has its documented shape and follows the traffic: N requests on N
// connections make accepted_connections and backend_requests grow by exactly N; a connection
// held open shows as exactly one open connection, and the count drops back to 0 when it closes;
// the workers' figures add up to the totals.
#[test]
fn admin_stats_follow_the_traffic() {
    const N: u64 = 5;
    const WORKERS: usize = 2;
    let backend = Backend::start("a");
    let proxy = Proxy::start(&[backend.addr], json!({"workers": WORKERS}));
    let start = stats_of(&proxy, WORKERS, true);
    assert_eq!(
        start,
        Stats {
            open: 0,
            accepted: 0,
            backend_requests: 0
        }
    );

    for i in 0..N {
        let r = proxy.get(&format!("/n{i}"));
        assert_eq!(r.status, 200, "request {i}");
    }
    let after = stats_when(&proxy, WORKERS, "all closed", |s| s.open == 0);
    assert_eq!(after.accepted, N, "{N} connections: {after:?}");
    assert_eq!(after.backend_requests, N, "{N} requests: {after:?}");
    assert_eq!(backend.record.count() as u64, N);

    let mut held = proxy.connect();
    assert_eq!(get_on(&mut held, "/held").status, 200);
    // accepted before it was answered, and still open
    let holding = stats_of(&proxy, WORKERS, true);
    assert_eq!(
        holding,
        Stats {
            open: 1,
            accepted: N + 1,
            backend_requests: N + 1
        }
    );

    drop(held);
    let closed = stats_when(&proxy, WORKERS, "closed again", |s| s.open == 0);
    assert_eq!((closed.accepted, closed.backend_requests), (N + 1, N + 1));
}

// Proves an unknown admin path is 404.
#[test]
fn admin_unknown_path_is_404() {
    let proxy = Proxy::start(&[], json!({}));
    assert_eq!(admin_raw(&proxy, "/no/such/thing").status, 404);
}

// ----------------------------------------------------------------------------- the ferrule binary

// Proves `ferrule --check` on a valid file exits 0 with one line saying it is valid.
#[test]
fn cli_check_accepts_a_valid_config() {
    let (_dir, path) = temp_file(
        "check-valid",
        r#"{"port": 18080, "admin_port": 18081, "workers": 1,
            "backends": [{"url": "http://127.0.0.1:18082", "weight": 2}]}"#,
    );
    let out = run_ferrule(&["--check", path.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout: {:?}", out.stdout);
    assert!(lines[0].contains("valid"), "stdout: {:?}", out.stdout);
    assert!(
        lines[0].contains("(1 backend, "),
        "one backend, in the singular: {:?}",
        out.stdout
    );
    assert!(out.stderr.is_empty(), "stderr: {:?}", out.stderr);
}

// Proves `ferrule --check` rejects a zero weight with one stderr line naming the field.
#[test]
fn cli_check_rejects_weight_zero() {
    let (_dir, path) = temp_file(
        "check-weight",
        r#"{"backends":[{"url":"http://127.0.0.1:1","weight":0}]}"#,
    );
    let out = run_ferrule(&["--check", path.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1), "stdout: {:?}", out.stdout);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {:?}", out.stderr);
    assert!(
        lines[0].contains("backends[0].weight"),
        "stderr: {:?}",
        out.stderr
    );
}

// Proves certificate files that hold no certificate are refused with one line naming the field
// and the file, by `--check` and by a real start (not served as plain HTTP, not a panic).
#[test]
fn unusable_certificate_files_are_refused_with_one_line() {
    let dir = TempDir::new("check-tls");
    for name in ["cert.pem", "key.pem"] {
        std::fs::write(dir.join(name), "placeholder\n").expect("write placeholder");
    }
    let dir_text = dir.path.to_str().expect("utf-8 path");
    let text = format!(
        r#"{{"backends":[{{"url":"http://127.0.0.1:1"}}],
            "ssl":{{"enabled":true,"cert_file":"{dir_text}/cert.pem","key_file":"{dir_text}/key.pem"}}}}"#
    );
    let path = dir.join("config.json");
    std::fs::write(&path, text).expect("write temp config");
    let arg = path.to_str().expect("utf-8 path");
    for args in [vec!["--check", arg], vec![arg]] {
        let out = run_ferrule(&args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?} stdout: {:?}",
            out.stdout
        );
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?} stderr: {:?}", out.stderr);
        assert!(
            lines[0].contains("ssl") && lines[0].contains("cert.pem"),
            "stderr: {:?}",
            out.stderr
        );
    }
}

// Proves a missing config file is one error line and exit 1, not a panic.
#[test]
fn cli_missing_config_file() {
    let path = std::env::temp_dir().join(format!(
        "ferrule-foundation-{}-missing/none.json",
        std::process::id()
    ));
    let out = run_ferrule(&[path.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.stderr.lines().count(), 1, "stderr: {:?}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "stderr: {:?}", out.stderr);
}

// Proves `--help` exits 0 with a usage text and `--version` prints the crate version.
#[test]
fn cli_help_and_version() {
    let help = run_ferrule(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(help.stdout.contains("usage"), "stdout: {:?}", help.stdout);

    let version = run_ferrule(&["--version"]);
    assert_eq!(version.status.code(), Some(0));
    assert_eq!(version.stdout.trim_end(), "ferrule 0.1.0");
}

// Proves running without arguments is an error (exit 1), not a proxy on default ports.
#[test]
fn cli_no_arguments_fails() {
    let out = run_ferrule(&[]);
    assert_eq!(out.status.code(), Some(1), "stderr: {:?}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "stderr: {:?}", out.stderr);
}

// Proves `ferrule config.json` serves requests on the configured port and exits 0 on SIGTERM.
#[test]
fn cli_serves_and_stops_on_sigterm() {
    let backend = Backend::start("cli");
    let mut proxy = ProxyProcess::start(
        json!({
            "workers": 2,
            "shutdown_timeout": "3s",
            "backends": [{"url": format!("http://{}", backend.addr), "weight": 1}],
        }),
        "serve",
    );
    let line = &proxy.listening;
    assert!(line.contains("with 2 workers"), "{line}");
    // the admin API answers on the port it logged, about this proxy
    let backends = admin_get_at(proxy.admin_addr(), "/backends");
    assert_eq!(backend_entry(&backends, backend.addr)["total_requests"], 0);

    let mut c = Client::connect(proxy.addr());
    c.send(b"GET /via/cli HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "backend cli");
    assert_eq!(r.header("x-backend"), Some("cli"));
    drop(c);
    let backends = admin_get_at(proxy.admin_addr(), "/backends");
    assert_eq!(backend_entry(&backends, backend.addr)["total_requests"], 1);

    proxy.terminate();
    let status = proxy
        .wait_for(Duration::from_secs(5))
        .expect("ferrule still running 5 s after SIGTERM");
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    assert_eq!(backend.record.count(), 1);
}

// ----------------------------------------------------------------------------- mock-backend

// Proves the mock backend binary serves on the port it is given and names that port.
#[test]
fn mock_backend_names_its_port() {
    // The port has to be known before the start, to give it on the command line: free_ports has
    // a small race (another process may take the port first), which this test accepts.
    let [port] = free_ports::<1>();
    let child = Command::new(env!("CARGO_BIN_EXE_mock-backend"))
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mock-backend");
    let mut child = ChildGuard(child);
    let stdout = line_channel(child.0.stdout.take().expect("stdout"));
    let line = wait_for_line(&stdout, "listening on", Duration::from_secs(10));
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");

    let mut c = Client::connect(SocketAddr::from(([127, 0, 0, 1], port)));
    c.send(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-backend"), Some(port.to_string().as_str()));
    assert_eq!(r.text(), format!("hello from backend :{port}\n"));
    drop(c);

    child.terminate();
    let status = child
        .wait_for(Duration::from_secs(5))
        .expect("mock-backend still running 5 s after SIGTERM");
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
}
