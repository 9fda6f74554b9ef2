//! Regression tests for the fixes of "Fixes from a review of the data path" (a8fcc1a), over real
//! sockets on 127.0.0.1. Each test of a fix fails when that fix is reverted; two tests pin down
//! behaviour that did not change (the clean-FIN contrast and the client half-close):
//!
//! - empty lines before and between requests are skipped at once (no wait for the header timeout);
//! - a backend connection the backend closed right after answering is not reused;
//! - `Connection: Host` cannot strip `Host`;
//! - an HTTP/1.0 request without `Host` reaches the backend as HTTP/1.1 with the backend's
//!   authority as `Host`;
//! - a response that comes before the whole request body announces `Connection: close`;
//! - a reset during a close-delimited body reaches the client as a reset, a FIN as a clean end;
//!   over TLS, a FIN without `close_notify` is a cut (a reset for the client), `close_notify` the
//!   clean end;
//! - a client that half-closes while its request waits is treated as gone (documented choice).
//!
//! Helpers shared with other test files live in `tests/common/mod.rs`; backends that must act
//! below what `common::Backend` allows (answer before reading the body, reset on a signal) are
//! written here on plain listeners.

use crate::common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

// ----------------------------------------------------------------------------- local helpers

/// A backend answering `200` with the request target as its body, keep-alive.
fn target_backend(name: &str) -> Backend {
    let n = name.to_string();
    Backend::with_handler(name, move |seen, _| {
        Reply::Bytes(ok_response(&n, seen.target.as_bytes()))
    })
}

/// Reads from `s` into `got` until `done(got)` holds; panics on EOF, error or timeout.
fn read_until(s: &mut TcpStream, got: &mut Vec<u8>, done: impl Fn(&[u8]) -> bool) {
    let mut buf = [0u8; 4096];
    while !done(got) {
        match s.read(&mut buf) {
            Ok(0) => panic!(
                "EOF before the expected bytes; got {:?}",
                String::from_utf8_lossy(got)
            ),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "{e} before the expected bytes; got {:?}",
                String::from_utf8_lossy(got)
            ),
        }
    }
}

/// A raw client socket to `addr` with a read timeout of `timeout`.
fn raw_connect(addr: SocketAddr, timeout: Duration) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(timeout)).expect("timeout");
    s.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// The admin API's `failures` of the backend at `addr`.
fn failures(proxy: &Proxy, addr: SocketAddr) -> u64 {
    let entry = backend_entry(&proxy.admin_get("/backends"), addr);
    entry["failures"]
        .as_u64()
        .unwrap_or_else(|| panic!("no failures in {entry}"))
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

// ----------------------------------------------------------------------------- backend closes

/// A backend that answers each request and then closes that connection:
/// `200` with body `ok` for a GET, the request body echoed for a POST, keep-alive framing and no
/// `Connection: close`. The answer is written, the write side shut down (a FIN), and only then is
/// the connection's index sent on the returned channel. With `cork`, the answer is held back
/// (TCP_CORK) until the shutdown, so answer and FIN travel in one segment and reach the proxy
/// together.
fn closing_backend(cork: bool) -> (Backend, mpsc::Receiver<usize>) {
    let (closed_tx, closed) = mpsc::channel::<usize>();
    let closed_tx = Mutex::new(closed_tx);
    let backend = Backend::with_handler("closer", move |seen, stream| {
        let body: &[u8] = if seen.method == "POST" {
            &seen.body
        } else {
            b"ok"
        };
        let mut raw =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        raw.extend_from_slice(body);
        if cork {
            socket2::SockRef::from(&*stream)
                .set_cork(true)
                .expect("TCP_CORK");
        }
        let _ = stream.write_all(&raw);
        let _ = stream.shutdown(Shutdown::Write);
        if seen.target != "/health" {
            let _ = closed_tx.lock().unwrap().send(seen.conn);
        }
        Reply::Drop
    });
    (backend, closed)
}

/// Runs `rounds` rounds of GET then POST /echo on one client connection through a proxy with
/// no retries in front of [`closing_backend`]`(cork)`, each request sent only once the backend
/// has closed the connection of the previous answer. Every request must get its `200` (a reused
/// dead connection is a 502), every POST must reach the backend, and no failure may be counted.
fn backend_closes_after_each_answer(cork: bool) {
    let (backend, closed) = closing_backend(cork);
    let proxy = Proxy::start(&[backend.addr], json!({"retries": 0}));
    let rounds = 8;
    let wait_closed = |what: &str| {
        closed
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("the backend did not close after {what}: {e}"));
    };
    let mut c = proxy.connect();
    for i in 0..rounds {
        c.send(format!("GET /get{i} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
        let r = c.response();
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "ok"),
            "GET in round {i}: {r:?}"
        );
        wait_closed("the GET");
        let body = format!("body of round {i}");
        c.send(
            format!(
                "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        let r = c.response();
        assert_eq!(
            (r.status, r.text()),
            (200, body.clone()),
            "POST in round {i}: {r:?}"
        );
        wait_closed("the POST");
    }
    let posts: Vec<String> = backend
        .record
        .requests()
        .iter()
        .filter(|s| s.method == "POST")
        .map(|s| String::from_utf8_lossy(&s.body).into_owned())
        .collect();
    let want: Vec<String> = (0..rounds).map(|i| format!("body of round {i}")).collect();
    assert_eq!(posts, want, "every POST reached the backend, once");
    assert!(
        backend.record.connections() >= 2 * rounds,
        "one backend connection per request: {} for {} requests",
        backend.record.connections(),
        2 * rounds
    );
    assert_eq!(failures(&proxy, backend.addr), 0);
}

// Proves a backend connection whose answer and FIN arrive together (one segment) is not put back
// in the pool: no further readiness event would ever tell the idle pool it is dead, so reusing it
// turned the next request into a 502 (retries 0) that never reached the backend.
#[test]
fn backend_connection_closed_with_its_answer_is_not_reused() {
    backend_closes_after_each_answer(true);
}

// Proves a backend connection that the backend closed right after its answer (a separate FIN,
// already sent before the client's next request) is not reused for that request.
#[test]
fn backend_connection_closed_after_its_answer_is_not_reused() {
    backend_closes_after_each_answer(false);
}

// ----------------------------------------------------------------------------- Host

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

// ----------------------------------------------------------------------------- early answer

// Proves an answer that arrives before the whole request body announces `Connection: close` to
// the client and the connection then closes: the rest of the body will never be read as a body.
#[test]
fn early_answer_before_body_announces_close() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
    let addr = listener.local_addr().expect("addr");
    let (heads_tx, heads) = mpsc::channel::<String>();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { break };
            let tx = heads_tx.clone();
            thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                let end = loop {
                    if let Some(end) = head_end(&got) {
                        break end;
                    }
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&got[..end]).into_owned();
                let upload = head.starts_with("POST /upload ");
                let _ = tx.send(head);
                if !upload {
                    return; // a health check, say
                }
                // answer at once, without reading the body
                let _ = s.write_all(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n");
                // then take (and drop) whatever comes, until the proxy closes
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    let proxy = Proxy::start(&[addr], json!({"retries": 0}));
    let mut c = proxy.connect();
    c.send(b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\n0123456789");
    let r = c
        .try_response()
        .unwrap_or_else(|e| panic!("no answer: {e}"));
    assert_eq!(r.status, 413, "{r:?}");
    assert!(
        r.closes(),
        "an answer before the whole body announces Connection: close: {:?}",
        r.headers
    );
    c.stream()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    assert!(c.is_closed(), "the connection closes after the 413");
    let head = heads
        .recv_timeout(Duration::from_secs(5))
        .expect("the head reached the backend");
    assert!(head.starts_with("POST /upload "), "{head}");
}

// ----------------------------------------------------------------------------- reset vs FIN

/// How the backend ends a close-delimited body.
#[derive(Clone, Copy, PartialEq, Debug)]
enum End {
    /// SO_LINGER 0, then close: an RST.
    Reset,
    /// A plain close: a FIN.
    Fin,
}

const PARTIAL: &[u8] = b"first part of a body without length;";

/// A backend that answers one request with a close-delimited `200` carrying [`PARTIAL`], waits
/// for a signal on the returned sender, then ends the connection as `end` says.
fn close_delimited_backend(end: End) -> (SocketAddr, mpsc::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
    let addr = listener.local_addr().expect("addr");
    let (go_tx, go) = mpsc::channel::<()>();
    let go = Mutex::new(go);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { break };
            let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while head_end(&got).is_none() {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            if !got.starts_with(b"GET /stream ") {
                continue; // a health check, say: closed unanswered
            }
            let mut raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n".to_vec();
            raw.extend_from_slice(PARTIAL);
            let _ = s.write_all(&raw);
            // the client has the bytes above before the connection ends
            let _ = go.lock().unwrap().recv_timeout(Duration::from_secs(10));
            if end == End::Reset {
                socket2::SockRef::from(&s)
                    .set_linger(Some(Duration::ZERO))
                    .expect("SO_LINGER 0");
            }
            drop(s);
        }
    });
    (addr, go_tx)
}

/// Sends `GET /stream`, reads the head and [`PARTIAL`], lets the backend end the connection as
/// `end` says, and reads on. Returns the head, the body bytes and how the reading ended.
fn stream_then_end(end: End) -> (String, Vec<u8>, std::io::Result<()>) {
    let (addr, go) = close_delimited_backend(end);
    let proxy = Proxy::start(&[addr], json!({"retries": 0}));
    let mut s = raw_connect(proxy.addr(), Duration::from_secs(5));
    s.write_all(b"GET /stream HTTP/1.1\r\nHost: h\r\n\r\n")
        .expect("send");
    let mut got = Vec::new();
    read_until(&mut s, &mut got, |g| {
        head_end(g).is_some_and(|end| g.len() >= end + PARTIAL.len())
    });
    let end = head_end(&got).expect("head");
    let head = String::from_utf8_lossy(&got[..end]).into_owned();
    let mut body = got[end..].to_vec();
    go.send(()).expect("signal the backend");
    let mut buf = [0u8; 4096];
    let outcome = loop {
        match s.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => body.extend_from_slice(&buf[..n]),
            Err(e) => break Err(e),
        }
    };
    (head, body, outcome)
}

// Proves a backend reset in the middle of a close-delimited body reaches the client as a reset:
// a clean end (FIN) would tell the client a cut-short body was complete.
#[test]
fn reset_during_close_delimited_body_reaches_client_as_reset() {
    let (head, body, outcome) = stream_then_end(End::Reset);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(body, PARTIAL, "the bytes sent before the reset arrive");
    match outcome {
        Err(e) => assert_eq!(
            e.kind(),
            ErrorKind::ConnectionReset,
            "the client sees a reset, not {e}"
        ),
        Ok(()) => panic!("the client saw a clean end of a body the backend cut short"),
    }
}

// Proves the contrast: a backend that ends a close-delimited body with a FIN gives the client a
// clean end and the whole body.
#[test]
fn fin_after_close_delimited_body_reaches_client_as_clean_end() {
    let (head, body, outcome) = stream_then_end(End::Fin);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(
        !lower.contains("content-length") && !lower.contains("transfer-encoding"),
        "close-delimited: {head}"
    );
    if let Err(e) = outcome {
        panic!("a clean close gave the client an error: {e}");
    }
    assert_eq!(body, PARTIAL, "the whole body");
}

// ----------------------------------------------------------------------------- the same over TLS

/// How an `https://` backend ends a close-delimited body: with `close_notify` (the TLS stream's
/// end), or with a bare TCP FIN (which ends the socket, not the TLS stream: RFC 8446 §6.1 calls
/// that a truncation).
#[derive(Clone, Copy, PartialEq, Debug)]
enum TlsEnd {
    CloseNotify,
    BareFin,
}

/// [`close_delimited_backend`] over TLS: answers `GET /stream` with a close-delimited `200`
/// carrying [`PARTIAL`], waits for the signal, then ends as `end` says.
fn close_delimited_tls_backend(
    end: TlsEnd,
    config: std::sync::Arc<rustls::ServerConfig>,
) -> (SocketAddr, mpsc::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
    let addr = listener.local_addr().expect("addr");
    let (go_tx, go) = mpsc::channel::<()>();
    let go = Mutex::new(go);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(sock) = stream else { break };
            let _ = sock.set_read_timeout(Some(Duration::from_secs(20)));
            let Ok(conn) = rustls::ServerConnection::new(std::sync::Arc::clone(&config)) else {
                continue;
            };
            let mut tls = rustls::StreamOwned::new(conn, sock);
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while head_end(&got).is_none() {
                match tls.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            if !got.starts_with(b"GET /stream ") {
                continue; // a health check, say: closed unanswered
            }
            let mut raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n".to_vec();
            raw.extend_from_slice(PARTIAL);
            let _ = tls.write_all(&raw);
            let _ = tls.flush();
            let _ = go.lock().unwrap().recv_timeout(Duration::from_secs(10));
            if end == TlsEnd::CloseNotify {
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
            let _ = tls.sock.shutdown(Shutdown::Write);
            // keep the socket until ferrule closes its side, so that the end above is all it
            // gets (closing with bytes unread would send a reset of our own)
            let _ = tls.sock.set_read_timeout(Some(Duration::from_secs(5)));
            let mut rest = [0u8; 4096];
            while matches!(tls.sock.read(&mut rest), Ok(n) if n > 0) {}
        }
    });
    (addr, go_tx)
}

fn stream_then_tls_end(end: TlsEnd) -> (String, Vec<u8>, std::io::Result<()>) {
    let name = format!("close-{end:?}");
    let ca = common::tls::TestCa::new(&name);
    let dir = common::TempDir::new(&name);
    let ca_file = dir.write("ca.pem", ca.pem());
    let (addr, go) = close_delimited_tls_backend(end, ca.issue(&["127.0.0.1"]).server_config());
    let proxy = Proxy::from_json(
        &json!({
            "port": 0, "admin_port": 0, "bind": "127.0.0.1", "workers": 1, "retries": 0,
            "backends": [{"url": format!("https://{addr}"), "ca_file": common::path_text(&ca_file)}],
        })
        .to_string(),
    );
    let mut s = raw_connect(proxy.addr(), Duration::from_secs(5));
    s.write_all(b"GET /stream HTTP/1.1\r\nHost: h\r\n\r\n")
        .expect("send");
    let mut got = Vec::new();
    read_until(&mut s, &mut got, |g| {
        head_end(g).is_some_and(|end| g.len() >= end + PARTIAL.len())
    });
    let end = head_end(&got).expect("head");
    let head = String::from_utf8_lossy(&got[..end]).into_owned();
    let mut body = got[end..].to_vec();
    go.send(()).expect("signal the backend");
    let mut buf = [0u8; 4096];
    let outcome = loop {
        match s.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => body.extend_from_slice(&buf[..n]),
            Err(e) => break Err(e),
        }
    };
    (head, body, outcome)
}

// Proves an https backend that ends a close-delimited body with a TCP FIN but no close_notify has
// cut it, and the client learns so by a reset (as for a plain backend's reset), never a clean end.
#[test]
fn tls_backend_fin_without_close_notify_during_close_delimited_body_reaches_client_as_reset() {
    let (head, body, outcome) = stream_then_tls_end(TlsEnd::BareFin);
    assert!(
        head.starts_with("HTTP/1.1 200 "),
        "{head}{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(body, PARTIAL, "the bytes sent before the cut arrive");
    match outcome {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "a reset, not {e}"),
        Ok(()) => panic!("the client saw a clean end of a body the TLS backend cut short"),
    }
}

// Proves the contrast: close_notify, then the FIN, is the body's real end: a clean end for the
// client, with the whole body.
#[test]
fn tls_backend_close_notify_after_close_delimited_body_reaches_client_as_clean_end() {
    let (head, body, outcome) = stream_then_tls_end(TlsEnd::CloseNotify);
    assert!(
        head.starts_with("HTTP/1.1 200 "),
        "{head}{}",
        String::from_utf8_lossy(&body)
    );
    if let Err(e) = outcome {
        panic!("a clean TLS close gave the client an error: {e}");
    }
    assert_eq!(body, PARTIAL, "the whole body");
}

// ----------------------------------------------------------------------------- client half-close

// Documents the chosen behaviour: a client that half-closes (shutdown(Write)) after a complete
// request is treated as gone, like nginx with proxy_ignore_client_abort off: the backend
// connection is released at once, before the (slow) backend answers, and the client gets no answer.
#[test]
fn client_half_close_while_waiting_releases_backend_connection() {
    let (backend, arrived) = slow_backend("slow");
    let proxy = Proxy::start(&[backend.addr], json!({}));

    let mut c = proxy.connect();
    c.send(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n");
    arrived
        .recv_timeout(Duration::from_secs(5))
        .expect("the request reached the backend");
    assert_eq!(active_connections(&proxy, backend.addr), 1);

    let _ = c.stream().shutdown(Shutdown::Write);
    let released = wait_until_released(&proxy, backend.addr, Instant::now());
    eprintln!("backend connection released {released:?} after the client half-closed");
    // the backend answers 5 s after it got the request: a release well before that is ours
    assert!(
        released < Duration::from_secs(3),
        "released {released:?} after the half-close"
    );
    let rest = c.read_to_end();
    assert!(
        rest.is_empty(),
        "no answer for a client treated as gone: {:?}",
        String::from_utf8_lossy(&rest)
    );

    let r = proxy.get("/after");
    assert_eq!((r.status, r.text().as_str()), (200, "answer to /after"));
}
