//! The access log, end to end on real sockets:
//! - a line per request in the combined format (to a file), its fields, the backend, and client
//!   text escaped so that a hostile target or user agent cannot split or forge a line;
//! - `X-Request-Id` added to a request that has none, kept when present, and logged;
//! - the json format over TLS, with the TLS version and SNI; a failed TLS handshake and a head
//!   that never completes (408) get lines of their own;
//! - `POST /reopen-logs` and `SIGUSR1` reopen the file after it was moved (logrotate); a reload
//!   switches the format;
//! - a worker never waits on output: with the log stuck (a pipe nobody reads) requests are still
//!   served and the lines that did not fit are counted in `/stats` and `/metrics`; a log that
//!   cannot be written (`/dev/full`) is reported once and never stops the proxy;
//! - a connection that ends before its exchange did says why (`close`), in the log and the counts.

use crate::common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::tls::*;
use common::*;
use serde_json::{json, Value};

/// The lines of the log at `path` once it has at least `n` (bounded wait: the writer thread
/// writes a moment after the response).
fn lines_at_least(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= n || Instant::now() >= deadline {
            assert!(
                lines.len() >= n,
                "{} has {} lines, expected {n}: {lines:#?}",
                path.display(),
                lines.len()
            );
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `access.log` in a fresh temporary directory (removed when dropped: keep it until the proxy
/// writing the log is gone).
fn log_path(name: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(name);
    let path = dir.join("access.log");
    (dir, path)
}

fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[test]
fn combined_line_per_request_with_escaped_client_text_and_request_ids() {
    let backend = Backend::start("a");
    let (_dir, path) = log_path("combined");
    let proxy = Proxy::start(
        &[backend.addr],
        json!({"access_log": path_text(&path), "workers": 1}),
    );
    let mut c = Client::connect(proxy.addr());
    c.send(
        b"GET /first?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: tester/1.0\r\nReferer: http://ref.example/page\r\n\r\n",
    );
    assert_eq!(c.response().status, 200);
    // hostile: quotes, a backslash, raw bytes that are not UTF-8, and a user agent that tries
    // to end the line and forge another
    c.send(
        b"GET /a\"b\\c\xc3\xa9 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: x\" 200 1 \"-\" \"forged\xff\r\nX-Request-Id: given-id-7\r\n\r\n",
    );
    let r = c.response();
    assert_eq!(r.status, 200, "{r:?}");
    let lines = lines_at_least(&path, 2);
    assert_eq!(lines.len(), 2, "{lines:#?}");

    let first = &lines[0];
    assert!(first.starts_with("127.0.0.1 - - ["), "{first}");
    assert!(
        first.contains(&format!(
            "\"GET /first?x=1 HTTP/1.1\" 200 9 \"http://ref.example/page\" \"tester/1.0\" {} ",
            backend.addr
        )),
        "{first}"
    );
    // the request id ferrule added is the one the backend saw, and the one logged
    let seen = backend.record.requests();
    let added = seen[0]
        .header("x-request-id")
        .expect("an id was added")
        .to_owned();
    assert_eq!(added.len(), 32, "{added}");
    // then the pool it was routed to
    assert!(
        first.ends_with(&format!("\"{added}\" pool=default")),
        "{first}"
    );

    // one ASCII line whose quotes are the format's own, the client's escaped
    let second = &lines[1];
    assert!(second.is_ascii(), "{second}");
    assert!(!second.contains("\"forged"), "{second}");
    assert_eq!(second.matches('"').count(), 8, "{second}");
    assert!(
        second.contains("\"GET /a\\x22b\\x5Cc\\xC3\\xA9 HTTP/1.1\""),
        "{second}"
    );
    assert!(
        second.contains("\"x\\x22 200 1 \\x22-\\x22 \\x22forged\\xFF\""),
        "{second}"
    );
    // a request's own id is kept, and logged
    assert!(second.ends_with("\"given-id-7\" pool=default"), "{second}");
    assert_eq!(seen[1].header("x-request-id"), Some("given-id-7"));
}

// Proves a request's total time counts from its first byte (as nginx's $request_time), not from
// the moment its head was whole: a head sent in two parts 300 ms apart takes about 0.3 s.
#[test]
fn total_time_starts_at_the_first_byte_of_the_head() {
    let backend = Backend::start("a");
    let (_dir, path) = log_path("first-byte");
    let proxy = Proxy::start(
        &[backend.addr],
        json!({"access_log": path_text(&path), "access_log_format": "json"}),
    );
    let mut c = Client::connect(proxy.addr());
    c.send(b"GET /slow HTTP/1.1\r\nHo");
    // the client's slowness is what is measured here: there is nothing to wait for
    std::thread::sleep(Duration::from_millis(300));
    c.send(b"st: t\r\n\r\n");
    assert_eq!(c.response().status, 200);
    let lines = lines_at_least(&path, 1);
    let line: Value = serde_json::from_str(&lines[0]).expect("json");
    let total = line["total_time"].as_f64().expect("total_time");
    // counted from when the worker saw the first part, which on a loaded machine can be a few
    // ms after it was sent: well above what a count from the whole head (about 0) would give
    assert!(total >= 0.2, "{line}");
    assert!(total < 10.0, "{line}");
}

#[test]
fn request_id_off_adds_nothing() {
    let backend = Backend::start("a");
    let proxy = Proxy::start(&[backend.addr], json!({"request_id": false}));
    let mut c = Client::connect(proxy.addr());
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response().status, 200);
    assert_eq!(backend.record.requests()[0].header("x-request-id"), None);
}

#[test]
fn json_over_tls_with_version_sni_and_failed_handshakes() {
    let pki = pki("access-json");
    let backend = Backend::start("a");
    let (_dir, path) = log_path("json");
    let proxy = tls_proxy(
        &[backend.addr],
        pki.files.ssl(),
        json!({"access_log": path_text(&path), "access_log_format": "json", "workers": 1}),
    );
    let mut c = pki.connect(proxy.addr());
    c.send(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nUser-Agent: \"q\"\\ \xc3\xa9\r\n\r\nhello");
    let r = c.response();
    assert_eq!(r.status, 200, "{r:?}");
    // garbage instead of a ClientHello: a line of its own
    let mut g = tcp_connect(proxy.addr(), Duration::from_secs(5));
    g.write_all(b"\x16\x03\x01\x00\x05garbage-that-is-no-hello")
        .expect("send garbage");
    let mut sink = Vec::new();
    let _ = g.read_to_end(&mut sink);

    let lines = lines_at_least(&path, 2);
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let request = parsed
        .iter()
        .find(|v| v["event"] == "request")
        .expect("a request line");
    assert_eq!(request["method"], "POST");
    assert_eq!(request["target"], "/upload");
    assert_eq!(request["protocol"], "HTTP/1.1");
    assert_eq!(request["host"], "localhost");
    assert_eq!(request["status"], 200);
    assert_eq!(request["user_agent"], "\"q\"\\ é");
    assert_eq!(request["tls"], "TLSv1.3");
    assert_eq!(request["sni"], "localhost");
    assert_eq!(request["backend"], backend.addr.to_string());
    assert_eq!(request["client"], "127.0.0.1");
    assert!(
        request["bytes_in"].as_u64().unwrap_or(0) >= 5 + 60,
        "{request}"
    );
    assert!(
        request["bytes_out"].as_u64().unwrap_or(0)
            > request["body_bytes_out"].as_u64().unwrap_or(0),
        "{request}"
    );
    assert_eq!(request["request_id"].as_str().map(str::len), Some(32));
    assert!(
        request["total_time"].as_f64().is_some() && request["upstream_time"].as_f64().is_some()
    );
    let failed = parsed
        .iter()
        .find(|v| v["event"] == "tls_handshake_failed")
        .unwrap_or_else(|| panic!("a handshake failure line: {lines:#?}"));
    assert_eq!(failed["client"], "127.0.0.1");
    assert!(failed.get("method").is_none(), "{failed}");
}

#[test]
fn a_head_that_never_completes_is_logged_as_408() {
    let backend = Backend::start("a");
    let (_dir, path) = log_path("timeout");
    let proxy = Proxy::start(
        &[backend.addr],
        json!({"access_log": path_text(&path), "client_header_timeout": "300ms"}),
    );
    let mut c = Client::connect(proxy.addr());
    c.send(b"GET /slow HTTP/1.1\r\nHost: t\r\n");
    assert_eq!(c.response().status, 408);
    let lines = lines_at_least(&path, 1);
    assert!(lines[0].contains("\"-\" 408 "), "{lines:#?}");
    assert!(lines[0].contains(" - - 0."), "no backend: {lines:#?}");
}

#[test]
fn reopen_after_rotation_by_admin_and_sigusr1_and_reload_switches_format() {
    let backend = Backend::start("a");
    let dir = TempDir::new("access-rotate-files");
    let path = dir.join("access.log");
    let proxy = ProxyProcess::start(
        json!({"workers": 1, "access_log": path_text(&path),
               "backends": [{"url": format!("http://{}", backend.addr)}]}),
        "access-rotate",
    );
    let get = |target: &str| {
        let mut c = Client::connect(proxy.addr());
        c.send(format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes());
        assert_eq!(c.response().status, 200);
    };
    get("/one");
    lines_at_least(&path, 1);
    // logrotate: move, then ask for a reopen
    let first = dir.join("access.log.1");
    std::fs::rename(&path, &first).expect("rotate");
    let (status, body) = admin_post(proxy.admin_addr(), "/reopen-logs");
    assert_eq!((status, &body), (200, &json!({"reopened": true})));
    get("/two");
    let now = lines_at_least(&path, 1);
    assert!(now[0].contains("/two"), "{now:#?}");
    // again, with SIGUSR1
    let second = dir.join("access.log.2");
    std::fs::rename(&path, &second).expect("rotate");
    let pid = proxy.pid().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-USR1", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    proxy.wait_for_log("SIGUSR1: access log reopened", Duration::from_secs(5));
    get("/three");
    assert!(lines_at_least(&path, 1)[0].contains("/three"));
    assert_eq!(
        std::fs::read_to_string(&first)
            .unwrap_or_default()
            .lines()
            .count(),
        1
    );
    assert!(std::fs::read_to_string(&second)
        .unwrap_or_default()
        .contains("/two"));

    // reload into json
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(proxy.config_path()).expect("config"))
            .expect("json");
    cfg["access_log_format"] = json!("json");
    std::fs::write(proxy.config_path(), cfg.to_string()).expect("write config");
    let (status, report) = admin_post(proxy.admin_addr(), "/reload");
    assert_eq!(status, 200, "{report}");
    get("/four");
    let lines = lines_at_least(&path, 2);
    let v: Value = serde_json::from_str(&lines[1]).expect("a JSON line after the reload");
    assert_eq!(v["target"], "/four");
    proxy.terminate();
}

#[test]
fn a_stuck_log_never_holds_up_a_worker_and_drops_are_counted() {
    let backend = Backend::start("a");
    let dir = TempDir::new("access-fifo");
    let fifo = dir.join("access.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    // a reader that opens the pipe and never reads: the writer thread blocks once it is full
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags_nonblock()
        .open(&fifo)
        .expect("open the fifo for reading");
    let proxy = Proxy::start(
        &[backend.addr],
        json!({"access_log": path_text(&fifo), "workers": 1}),
    );
    // far more lines than the pipe and the queue hold, on one keep-alive connection
    let mut c = Client::connect(proxy.addr());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut served = 0;
    let mut dropped = 0;
    while dropped == 0 && Instant::now() < deadline && served < 40_000 {
        for _ in 0..500 {
            c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
            assert_eq!(c.response().status, 200);
            served += 1;
        }
        dropped = admin_get_at(proxy.admin(), "/stats")["access_log_dropped"]
            .as_u64()
            .unwrap_or(0);
    }
    assert!(dropped > 0, "{served} requests served, nothing dropped");
    let metrics = {
        let mut a = Client::connect(proxy.admin());
        a.send(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        a.response().text()
    };
    let line = metrics
        .lines()
        .find(|l| l.starts_with("ferrule_access_log_dropped_total "))
        .unwrap_or_else(|| panic!("no drop counter in /metrics"));
    let counted: u64 = line
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a number");
    assert!(counted >= dropped, "{line}");
    // still serving while the log is stuck
    let mut other = Client::connect(proxy.addr());
    other.send(b"GET /still HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(other.response().status, 200);
    // unblock the writer (so the proxy can stop) by draining the pipe in the background
    let drain = std::thread::spawn(move || {
        let mut reader = reader;
        let mut buf = vec![0u8; 1 << 16];
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => break,
            }
        }
    });
    drop(proxy);
    let _ = drain.join();
}

#[test]
fn an_unwritable_log_is_reported_once_and_never_fatal() {
    let backend = Backend::start("a");
    let proxy = ProxyProcess::start(
        json!({"workers": 1, "access_log": "/dev/full",
               "backends": [{"url": format!("http://{}", backend.addr)}]}),
        "access-full",
    );
    for i in 0..3 {
        let mut c = Client::connect(proxy.addr());
        c.send(format!("GET /{i} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes());
        assert_eq!(c.response().status, 200);
        if i == 0 {
            proxy.wait_for_log("cannot write access log /dev/full", Duration::from_secs(5));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut dropped = 0;
    while dropped < 3 && Instant::now() < deadline {
        dropped = admin_get_at(proxy.admin_addr(), "/stats")["access_log_dropped"]
            .as_u64()
            .unwrap_or(0);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(dropped >= 3, "{dropped}");
    let more = proxy.log_so_far();
    assert!(
        !more.iter().any(|l| l.contains("cannot write access log")),
        "reported more than once: {more:#?}"
    );
    proxy.terminate();
}

#[test]
fn an_access_log_that_cannot_be_opened_is_a_config_error() {
    let dir = TempDir::new("access-bad");
    let path = dir.join("no-such-dir").join("access.log");
    let e = ferrule::Config::from_json_str(&json!({"access_log": path_text(&path)}).to_string())
        .expect_err("refused");
    let text = e.to_string();
    assert!(
        text.starts_with("access_log: cannot open") && text.contains("No such file"),
        "{text}"
    );
    for (value, problem) in [
        (json!(""), "must not be empty"),
        (
            json!(true),
            "expected false, \"stdout\", \"stderr\" or a file path",
        ),
        (json!(3), "expected false"),
    ] {
        let e = ferrule::Config::from_json_str(&json!({"access_log": value}).to_string())
            .expect_err("refused");
        assert!(e.to_string().starts_with("access_log: "), "{e}");
        assert!(e.to_string().contains(problem), "{e}");
    }
    let e = ferrule::Config::from_json_str(r#"{"access_log_format": "apache"}"#).expect_err("no");
    assert_eq!(
        e.to_string(),
        "access_log_format: unknown access log format \"apache\" (expected combined or json)"
    );
    let e = ferrule::Config::from_json_str(r#"{"log_level": "loud"}"#).expect_err("no");
    assert!(
        e.to_string()
            .starts_with("log_level: unknown log level \"loud\""),
        "{e}"
    );
}

#[test]
fn log_level_debug_shows_debug_lines() {
    let backend = Backend::start("a");
    let proxy = ProxyProcess::start(
        json!({"workers": 1, "log_level": "debug", "health_check_frequency": "100ms",
               "backends": [{"url": format!("http://{}", backend.addr)}]}),
        "access-debug",
    );
    proxy.wait_for_log("[DEBUG]", Duration::from_secs(5));
    proxy.terminate();
}

/// `O_NONBLOCK` for opening a FIFO's read end without a writer.
trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl NonBlock for std::fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc_o_nonblock())
    }
}

fn libc_o_nonblock() -> i32 {
    0o4000 // O_NONBLOCK on Linux
}

/// A backend for the close-reason test: `GET /cut` gets a close-delimited `200` with a few body
/// bytes, then a reset; `GET /wait` is held (its arrival signalled) until the proxy closes the
/// connection.
fn cutting_backend() -> (
    std::net::SocketAddr,
    std::sync::mpsc::Receiver<()>,
    AcceptLoop,
) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, arrived) = std::sync::mpsc::channel();
    let backend = serve(listener, move |mut s| {
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while head_end(&got).is_none() {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        if got.starts_with(b"GET /cut ") {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\nthe first bytes");
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
        } else if got.starts_with(b"GET /wait ") {
            let _ = tx.send(());
            // held until the proxy gives up on it
            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        } else {
            let _ = s.write_all(HEALTH_PROBE_ANSWER);
        }
    });
    (addr, arrived, backend)
}

// Proves every early end says why: a response cut by its backend after it started, and a request
// whose client left before its answer, are logged with their close reason (and 499 for the
// unanswered one), and counted by reason in /stats and /metrics.
#[test]
fn connections_cut_short_are_logged_and_counted_with_their_reason() {
    let (addr, arrived, _backend) = cutting_backend();
    let (_dir, path) = log_path("close-reasons");
    let proxy = Proxy::start(
        &[addr],
        json!({"access_log": path_text(&path), "access_log_format": "json", "workers": 1,
               "retries": 0, "health_check_method": "none"}),
    );
    let mut cut = Client::connect(proxy.addr());
    cut.send(b"GET /cut HTTP/1.1\r\nHost: h\r\n\r\n");
    let _ = cut.read_to_end();
    let mut gone = Client::connect(proxy.addr());
    gone.send(b"GET /wait HTTP/1.1\r\nHost: h\r\n\r\n");
    arrived
        .recv_timeout(Duration::from_secs(10))
        .expect("the request reached the backend");
    drop(gone);
    let lines = lines_at_least(&path, 2);
    let entries: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let by_target = |t: &str| {
        entries
            .iter()
            .find(|e| e["target"] == t)
            .unwrap_or_else(|| panic!("no line for {t}: {lines:#?}"))
    };
    let cut_line = by_target("/cut");
    assert_eq!(cut_line["status"], 200, "{cut_line}");
    assert_eq!(cut_line["close"], "backend_failed", "{cut_line}");
    let gone_line = by_target("/wait");
    assert_eq!(gone_line["status"], 499, "{gone_line}");
    assert_eq!(gone_line["close"], "client_closed", "{gone_line}");
    let stats = proxy.admin_get("/stats");
    assert!(
        stats["closed"]["backend_failed"].as_u64() >= Some(1),
        "{stats}"
    );
    assert!(
        stats["closed"]["client_closed"].as_u64() >= Some(1),
        "{stats}"
    );
    let mut c = Client::connect(proxy.admin());
    c.send(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let metrics = c.response().text();
    assert!(
        metrics.contains("ferrule_connections_closed_total{reason=\"backend_failed\"} 1"),
        "{metrics}"
    );
}
