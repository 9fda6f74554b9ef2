//! How an exchange ends, over real sockets on 127.0.0.1:
//!
//! - a backend connection that the backend closed right after its answer (or with it, in one
//!   segment) is not reused;
//! - a response that comes before the whole request body announces `Connection: close`;
//! - a reset in the middle of a close-delimited body reaches the client as a reset, a FIN as a
//!   clean end (over TLS, `close_notify` is the end and a bare FIN a cut: `tls::truncation`);
//! - a client that half-closes while its request waits is treated as gone (a documented choice).
//!
//! The backends here act below what `common::Backend` allows (answer before reading the body,
//! reset on a signal), so they are written on plain listeners.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::*;

// ----------------------------------------------------------------------------- local helpers

/// The admin API's `failures` of the backend at `addr`.
fn failures(proxy: &Proxy, addr: SocketAddr) -> u64 {
    let entry = backend_entry(&proxy.admin_get("/backends"), addr);
    entry["failures"]
        .as_u64()
        .unwrap_or_else(|| panic!("no failures in {entry}"))
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

// ----------------------------------------------------------------------------- early answer

// Proves an answer that arrives before the whole request body announces `Connection: close` to
// the client and the connection then closes: the rest of the body will never be read as a body.
#[test]
fn early_answer_before_body_announces_close() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
    let addr = listener.local_addr().expect("addr");
    let (heads_tx, heads) = mpsc::channel::<String>();
    let _backend = serve(listener, move |mut s| {
        let tx = &heads_tx;
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
    // no health checks: the first head the backend reports is the upload's
    let proxy = Proxy::start(
        &[addr],
        json!({"retries": 0, "health_check_method": "none"}),
    );
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
fn close_delimited_backend(end: End) -> (SocketAddr, mpsc::Sender<()>, AcceptLoop) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
    let addr = listener.local_addr().expect("addr");
    let (go_tx, go) = mpsc::channel::<()>();
    let go = Mutex::new(go);
    let backend = serve(listener, move |mut s| {
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
            return; // a health check, say: closed unanswered
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
    });
    (addr, go_tx, backend)
}

/// Sends `GET /stream`, reads the head and [`PARTIAL`], lets the backend end the connection as
/// `end` says, and reads on. Returns the head, the body bytes and how the reading ended.
fn stream_then_end(end: End) -> (String, Vec<u8>, std::io::Result<()>) {
    let (addr, go, _backend) = close_delimited_backend(end);
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
