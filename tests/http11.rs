//! HTTP/1.1 semantics through the proxy, checked byte by byte over raw sockets: message framing
//! and request smuggling, response framing (chunked, close-delimited, bodiless), HTTP/1.0 clients,
//! hop-by-hop and `X-Forwarded-*` fields, `Expect: 100-continue`, pipelining, `Connection: close`
//! from either side, protocol upgrades (tunnels), error statuses and timeouts, clients that vanish
//! mid-request, and bodies far larger than the proxy's buffers.
//!
//! The rest of the HTTP/1.1 data path is in the submodules:
//! - `foundation`: the first layer: forwarding, bodies, keep-alive on both sides, backend
//!   connections reused and shared, failures mapped to 502/503 and retried, the admin API's
//!   counts, and the `ferrule` and `mock-backend` binaries on the command line;
//! - `heads`: heads at their edges (empty lines, `Host` and HTTP/1.0, `HEAD` answered by ferrule);
//! - `ends`: how an exchange ends (a backend closing after its answer, an answer before the body,
//!   a reset or a FIN in a close-delimited body, a client's half-close).
//!
//! Helpers shared with other capabilities are in `tests/common/`; the ones only this file needs
//! (a raw byte sink, a WebSocket-style echo server, flaky backends, a byte pattern) are below,
//! before the tests.

use crate::common;

mod ends;
mod foundation;
mod heads;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

// ----------------------------------------------------------------------------- local helpers

/// A deterministic pseudo-random byte pattern (xorshift64), so misplaced or repeated bytes show.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Compares two large byte strings without printing megabytes on failure.
fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    panic!(
        "{what}: got {} bytes, want {}; first difference at {:?}",
        got.len(),
        want.len(),
        first
    );
}

/// `GET path` with `Host: test`, keep-alive (HTTP/1.1 default).
fn send_get(c: &mut Client, path: &str) {
    c.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
}

/// `POST /echo` carrying `body` with a Content-Length.
fn send_echo(c: &mut Client, body: &[u8]) {
    c.send(
        format!(
            "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    c.send(body);
}

/// A backend answering `200` with body `NAME TARGET` (so a response tells which request it
/// answers and who answered it).
fn naming_backend(name: &str) -> Backend {
    let n = name.to_string();
    Backend::with_handler(name, move |seen, _| {
        Reply::Bytes(ok_response(&n, format!("{n} {}", seen.target).as_bytes()))
    })
}

/// Like [`naming_backend`], but only the first request on each connection is answered: a later
/// request on the same (pooled) connection makes it close without answering. `drops` counts those.
fn flaky_backend(name: &str, drops: Arc<AtomicUsize>) -> Backend {
    let n = name.to_string();
    let answered = Mutex::new(HashSet::new());
    Backend::with_handler(name, move |seen, _| {
        if !answered.lock().unwrap().insert(seen.conn) {
            drops.fetch_add(1, Ordering::SeqCst);
            return Reply::Drop;
        }
        Reply::Bytes(ok_response(&n, format!("{n} {}", seen.target).as_bytes()))
    })
}

/// The `backends` array of the admin API.
fn admin_backends(proxy: &Proxy) -> Vec<serde_json::Value> {
    proxy.admin_get("/backends")["backends"]
        .as_array()
        .cloned()
        .expect("admin /backends lists backends")
}

/// What a [`Sink`] has received so far.
#[derive(Default, Clone)]
struct SinkState {
    connections: usize,
    open: usize,
    /// Every byte received, all connections in arrival order.
    bytes: Vec<u8>,
}

/// A backend that never answers and records every byte it receives.
struct Sink {
    addr: SocketAddr,
    state: Arc<(Mutex<SinkState>, Condvar)>,
    /// Serves until the sink is dropped.
    _accepting: AcceptLoop,
}

impl Sink {
    fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind sink");
        let state: Arc<(Mutex<SinkState>, Condvar)> = Arc::default();
        let st = Arc::clone(&state);
        let accepting = serve(listener, move |stream| sink_conn(stream, &st));
        Sink {
            addr: accepting.addr,
            state,
            _accepting: accepting,
        }
    }

    /// Waits until `cond` holds, at most `timeout`; returns whether it held.
    fn wait_until(&self, timeout: Duration, cond: impl Fn(&SinkState) -> bool) -> bool {
        let (lock, cv) = &*self.state;
        let guard = lock.lock().unwrap();
        let (guard, _) = cv.wait_timeout_while(guard, timeout, |s| !cond(s)).unwrap();
        cond(&guard)
    }

    fn snapshot(&self) -> SinkState {
        self.state.0.lock().unwrap().clone()
    }
}

/// One connection of a [`Sink`]. Health probes (see `common::is_health_probe`) at its start are
/// answered `200` and not recorded; from the first other head on, every byte is recorded and the
/// connection counts.
fn sink_conn(mut stream: TcpStream, st: &(Mutex<SinkState>, Condvar)) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buf = [0u8; 16384];
    // bytes of a head not yet known to be the proxy's (rather than a health probe's)
    let mut pending = Vec::new();
    let mut counted = false;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if counted {
            st.0.lock().unwrap().bytes.extend_from_slice(&buf[..n]);
            st.1.notify_all();
            continue;
        }
        pending.extend_from_slice(&buf[..n]);
        while let Some(end) = head_end(&pending) {
            if !head_is_health_probe(&pending[..end]) {
                break;
            }
            pending.drain(..end);
            if stream.write_all(HEALTH_PROBE_ANSWER).is_err() {
                return;
            }
        }
        if head_end(&pending).is_some() {
            counted = true;
            let mut s = st.0.lock().unwrap();
            s.connections += 1;
            s.open += 1;
            s.bytes.append(&mut pending);
            drop(s);
            st.1.notify_all();
        }
    }
    let mut s = st.0.lock().unwrap();
    if counted {
        s.open -= 1;
    } else if !pending.is_empty() {
        // a partial head, then the close: the proxy's too
        s.connections += 1;
        s.bytes.append(&mut pending);
    }
    drop(s);
    st.1.notify_all();
}

/// A WebSocket-style backend: reads an upgrade request head, answers `101 Switching Protocols`,
/// then echoes every byte. The heads it received come out of `heads`. Health probes are answered
/// `200` and do not come out of `heads`.
struct UpgradeEcho {
    addr: SocketAddr,
    heads: mpsc::Receiver<String>,
    /// Serves until the backend is dropped.
    _accepting: AcceptLoop,
}

impl UpgradeEcho {
    fn start() -> UpgradeEcho {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo");
        let (tx, heads) = mpsc::channel();
        let accepting = serve(listener, move |stream| upgrade_echo_conn(stream, &tx));
        UpgradeEcho {
            addr: accepting.addr,
            heads,
            _accepting: accepting,
        }
    }
}

fn upgrade_echo_conn(mut s: TcpStream, heads: &mpsc::Sender<String>) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    let end = loop {
        if let Some(end) = head_end(&got) {
            if !head_is_health_probe(&got[..end]) {
                break end;
            }
            got.drain(..end);
            if s.write_all(HEALTH_PROBE_ANSWER).is_err() {
                return;
            }
            continue;
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    };
    let early = got.split_off(end);
    let _ = heads.send(String::from_utf8_lossy(&got).into_owned());
    let hello =
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    if s.write_all(hello).is_err() || s.write_all(&early).is_err() {
        return;
    }
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// Reads what `c` gets next: a response with `status`, then the close. Returns the response.
#[track_caller]
fn assert_status_then_close(c: &mut Client, status: u16) -> Response {
    let r = c
        .try_response()
        .unwrap_or_else(|e| panic!("no {status} response: {e}"));
    assert_eq!(r.status, status, "{r:?}");
    assert!(c.is_closed(), "connection closed after the {status}");
    r
}

/// How long, at most, a timeout may take beyond its configured value to be enforced: generous,
/// for a loaded CI machine.
const TIMEOUT_SLACK: Duration = Duration::from_secs(5);

/// Asserts that `elapsed` (measured from before the last byte that restarted the proxy's timer
/// was sent) is not shorter than 90 % of `timeout` (the proxy acted too early: a timer never
/// fires before its deadline, the 10 % are margin for clocks and scheduling) nor longer than
/// `timeout` + [`TIMEOUT_SLACK`].
#[track_caller]
fn assert_took_about(elapsed: Duration, timeout: Duration, what: &str) {
    assert!(
        elapsed >= timeout.mul_f64(0.9),
        "{what} after {elapsed:?}, before the {timeout:?} timeout ran out"
    );
    assert!(
        elapsed < timeout + TIMEOUT_SLACK,
        "{what} only after {elapsed:?} ({timeout:?} timeout)"
    );
}

/// Asserts that the proxy closes `c`, not before `timeout` has passed since `since` (see
/// [`assert_took_about`]) and not long after.
#[track_caller]
fn assert_closed_after(c: &mut Client, since: Instant, timeout: Duration, what: &str) {
    assert!(c.is_closed(), "{what}: the connection is closed");
    assert_took_about(since.elapsed(), timeout, what);
}

/// Sends `request`, expects ferrule to refuse it with `status` and close the connection, and the
/// backend to receive nothing at all.
fn assert_refused(request: &[u8], status: u16) {
    let sink = Sink::start();
    // a proxy that wrongly forwards gets no answer from the sink: fail fast with 504, not 400
    let proxy = Proxy::start(&[sink.addr], json!({"backend_timeout": "2s"}));
    let mut c = proxy.connect();
    c.send(request);
    let shown = String::from_utf8_lossy(request);
    let r = c
        .try_response()
        .unwrap_or_else(|e| panic!("no {status} for {shown:?}: {e}"));
    assert_eq!(r.status, status, "status for {shown:?}: {r:?}");
    assert!(
        r.closes(),
        "the refusal announces Connection: close: {:?}",
        r.headers
    );
    assert!(c.is_closed(), "connection closed after refusing {shown:?}");
    let backends = admin_backends(&proxy);
    assert_eq!(
        backends[0]["total_requests"], 0,
        "no backend was chosen for {shown:?}: {backends:?}"
    );
    let seen = sink.snapshot();
    assert!(
        seen.bytes.is_empty(),
        "the backend received {:?} for {shown:?}",
        String::from_utf8_lossy(&seen.bytes)
    );
}

// ----------------------------------------------------------------------------- local helpers, checked

// Proves the raw backends here keep health probes out of what they report: a probe to a Sink is
// answered 200 and leaves no bytes and no connection behind; a probe to an UpgradeEcho is answered
// 200 and its head does not come out of `heads`, the next (upgrade) head does.
#[test]
fn raw_backends_answer_health_probes_and_do_not_record_them() {
    let probe = b"GET /health HTTP/1.1\r\nHost: b\r\nUser-Agent: ferrule-health\r\n\r\n";
    let sink = Sink::start();
    let mut c = Client::connect(sink.addr);
    c.send(probe);
    assert_eq!(c.response().status, 200);
    c.send(probe);
    assert_eq!(c.response().status, 200);
    drop(c);
    let mut other = Client::connect(sink.addr);
    other.send(b"POST /x HTTP/1.1\r\nHost: b\r\n\r\n");
    assert!(
        sink.wait_until(IO_TIMEOUT, |s| s.connections == 1),
        "the other connection counts"
    );
    let seen = sink.snapshot();
    assert_eq!(
        String::from_utf8_lossy(&seen.bytes),
        "POST /x HTTP/1.1\r\nHost: b\r\n\r\n",
        "only the non-probe bytes are recorded"
    );

    let echo = UpgradeEcho::start();
    let mut c = Client::connect(echo.addr);
    c.send(probe);
    assert_eq!(c.response().status, 200);
    c.send(b"GET /ws HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    assert_eq!(c.response().status, 101);
    let head = echo.heads.recv_timeout(IO_TIMEOUT).expect("a head");
    assert!(head.starts_with("GET /ws "), "{head}");
}

// ----------------------------------------------------------------------------- smuggling

#[test]
fn content_length_with_transfer_encoding_is_refused() {
    assert_refused(
        b"POST /smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n\
          0\r\n\r\nGET /evil HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
    );
}

#[test]
fn two_different_content_lengths_are_refused() {
    assert_refused(
        b"POST /smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        400,
    );
}

#[test]
fn content_length_list_is_refused() {
    assert_refused(
        b"POST /smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nhello!",
        400,
    );
}

#[test]
fn unknown_transfer_coding_xchunked_is_refused() {
    assert_refused(
        b"POST /smuggle HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn chunked_not_last_is_refused() {
    assert_refused(
        b"POST /smuggle HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn gzip_then_chunked_is_not_implemented() {
    assert_refused(
        b"POST /smuggle HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
    );
}

#[test]
fn obs_fold_is_refused() {
    assert_refused(
        b"GET /smuggle HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
        400,
    );
}

#[test]
fn bare_lf_in_head_is_refused() {
    assert_refused(b"GET /smuggle HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n", 400);
}

#[test]
fn http11_request_without_host_is_refused() {
    assert_refused(b"GET /smuggle HTTP/1.1\r\nAccept: */*\r\n\r\n", 400);
}

#[test]
fn two_host_fields_are_refused() {
    assert_refused(b"GET /smuggle HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
}

#[test]
fn malformed_chunk_size_never_completes_a_request_at_the_backend() {
    let sink = Sink::start();
    let proxy = Proxy::start(&[sink.addr], json!({"backend_timeout": "2s"}));
    let mut c = proxy.connect();
    c.send(b"POST /chunky HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    // the head and the good chunk go through first: the proxy streams request bodies
    assert!(
        sink.wait_until(Duration::from_secs(5), |s| contains(&s.bytes, b"hello\r\n")),
        "the head and the first chunk reached the backend: {:?}",
        String::from_utf8_lossy(&sink.snapshot().bytes)
    );
    c.send(b"zz\r\nhello\r\n0\r\n\r\nGET /evil HTTP/1.1\r\nHost: x\r\n\r\n");
    // the backend has not answered, so the client can still be told: 400, then the close
    assert_status_then_close(&mut c, 400);
    assert!(
        sink.wait_until(Duration::from_secs(5), |s| s.open == 0),
        "the backend connection carrying the broken body is closed"
    );
    let seen = sink.snapshot();
    assert!(
        !contains(&seen.bytes, b"\r\n0\r\n\r\n") && !contains(&seen.bytes, b"/evil"),
        "the backend must not see a complete request: {:?}",
        String::from_utf8_lossy(&seen.bytes)
    );
}

// ----------------------------------------------------------------------------- request framing

#[test]
fn chunked_request_with_extensions_and_trailers_reaches_backend() {
    let backend = Backend::start("a");
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let mut c = proxy.connect();
    c.send(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;name=value\r\nhello\r\n6;q=\"a b\";flag\r\n world\r\n0\r\nX-Checksum: abc\r\n\r\n",
    );
    let r = c.response();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello world");
    let seen = backend.record.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, b"hello world");
    // the connection is still in step after the trailer section
    send_get(&mut c, "/after");
    let r = c.response();
    assert_eq!((r.status, r.text().as_str()), (200, "backend a"));
}

#[test]
fn content_length_body_in_many_small_writes_arrives_whole() {
    let backend = Backend::start("a");
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let body = pattern(3000, 1);
    let mut c = proxy.connect();
    c.send(
        format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    for piece in body.chunks(30) {
        c.send(piece);
        thread::sleep(Duration::from_millis(1)); // pacing, so the pieces travel separately
    }
    let r = c.response();
    assert_eq!(r.status, 200);
    assert_same_bytes(&r.body, &body, "echoed body");
    let seen = backend.record.requests();
    assert_eq!(seen.len(), 1);
    assert_same_bytes(&seen[0].body, &body, "body at the backend");
}

// ----------------------------------------------------------------------------- response framing

#[test]
fn chunked_response_is_relayed_chunked() {
    let body = pattern(200_000, 2);
    let payload = body.clone();
    let backend = Backend::with_handler("a", move |seen, s| {
        if seen.target != "/chunked" {
            return Reply::Bytes(ok_response("a", b"plain"));
        }
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        for (i, piece) in payload.chunks(7000 + 13).enumerate() {
            let ext = if i % 2 == 0 { ";ext=1" } else { "" };
            let _ = s.write_all(format!("{:x}{ext}\r\n", piece.len()).as_bytes());
            let _ = s.write_all(piece);
            let _ = s.write_all(b"\r\n");
        }
        let _ = s.write_all(b"0\r\n\r\n");
        Reply::Handled
    });
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let mut c = proxy.connect();
    send_get(&mut c, "/chunked");
    let r = c.response();
    assert_eq!(r.status, 200);
    assert!(r.chunked, "the client sees a chunked body: {:?}", r.headers);
    assert_same_bytes(&r.body, &body, "chunked body");
    send_get(&mut c, "/next");
    let r = c.response();
    assert_eq!((r.status, r.text().as_str()), (200, "plain"));
}

#[test]
fn close_delimited_response_is_relayed_then_connection_closes() {
    let body = pattern(100_000, 3);
    let mut raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
    raw.extend_from_slice(&body);
    let backend = Backend::with_handler("a", move |_, _| Reply::Close(raw.clone()));
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let mut c = proxy.connect();
    send_get(&mut c, "/until-close");
    // read_response reads a body without length to the end: it returns only once the proxy closes
    let r = c.response();
    assert_eq!(r.status, 200);
    assert!(r.close_delimited, "no length, no chunking: {:?}", r.headers);
    assert!(r.closes(), "Connection: close announced: {:?}", r.headers);
    assert_same_bytes(&r.body, &body, "close-delimited body");
}

/// A backend that answers `/bodiless` with `head` (no body follows) and anything else normally.
fn bodiless_then_normal(head: &'static [u8], method: &str) {
    let backend = Backend::with_handler("a", move |seen, _| {
        if seen.target == "/bodiless" {
            Reply::Bytes(head.to_vec())
        } else {
            Reply::Bytes(ok_response("a", b"after"))
        }
    });
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let mut c = proxy.connect();
    c.send(format!("{method} /bodiless HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    let r = c.response_to(method);
    let status: u16 = String::from_utf8_lossy(&head[9..12]).parse().unwrap();
    assert_eq!(r.status, status);
    assert!(!r.closes(), "the connection stays open: {:?}", r.headers);
    send_get(&mut c, "/next");
    let r = c.response();
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "after"),
        "still in step after {status}"
    );
    assert_eq!(backend.record.count(), 2);
}

#[test]
fn head_response_has_no_body_and_connection_stays_in_step() {
    let backend = Backend::with_handler("a", |seen, _| {
        if seen.method == "HEAD" {
            Reply::Bytes(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1234\r\n\r\n"
                    .to_vec(),
            )
        } else {
            Reply::Bytes(ok_response("a", b"after head"))
        }
    });
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let mut c = proxy.connect();
    c.send(b"HEAD /doc HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.response_to("HEAD");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some("1234"),
        "HEAD keeps the GET's length"
    );
    send_get(&mut c, "/next");
    let r = c.response();
    assert_eq!((r.status, r.text().as_str()), (200, "after head"));
}

#[test]
fn no_content_204_then_next_request_works() {
    bodiless_then_normal(
        b"HTTP/1.1 204 No Content\r\nX-Info: empty\r\n\r\n",
        "DELETE",
    );
}

#[test]
fn not_modified_304_then_next_request_works() {
    bodiless_then_normal(
        b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 50\r\n\r\n",
        "GET",
    );
}

#[test]
fn http10_client_gets_chunked_body_dechunked_then_close() {
    let backend = Backend::with_handler("a", |_, _| {
        Reply::Bytes(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;x=y\r\n, world\r\n0\r\n\r\n"
                .to_vec(),
        )
    });
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let mut c = proxy.connect();
    c.send(b"GET /old HTTP/1.0\r\nHost: x\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 200);
    assert!(
        r.header("transfer-encoding").is_none(),
        "no transfer coding for HTTP/1.0: {:?}",
        r.headers
    );
    assert!(!r.chunked);
    assert!(
        r.close_delimited,
        "body delimited by the close: {:?}",
        r.headers
    );
    assert_eq!(r.text(), "hello, world");
}

#[test]
fn http10_keep_alive_is_honoured_with_content_length() {
    let backend = Backend::start("a");
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let mut c = proxy.connect();
    for i in 0..2 {
        c.send(
            format!("GET /ka{i} HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n").as_bytes(),
        );
        let r = c.response();
        assert_eq!(r.status, 200, "request {i}");
        assert!(
            r.header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("keep-alive")),
            "Connection: keep-alive announced to the HTTP/1.0 client: {:?}",
            r.headers
        );
        assert!(r.header("content-length").is_some());
        assert_eq!(r.text(), "backend a");
    }
    assert_eq!(backend.record.count(), 2);
}

#[test]
fn http10_without_keep_alive_is_closed() {
    let backend = Backend::start("a");
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let mut c = proxy.connect();
    c.send(b"GET /once HTTP/1.0\r\nHost: x\r\n\r\n");
    let r = c.response();
    assert_eq!((r.status, r.text().as_str()), (200, "backend a"));
    assert!(
        !r.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("keep-alive")),
        "no keep-alive offered: {:?}",
        r.headers
    );
    assert!(
        c.is_closed(),
        "HTTP/1.0 without keep-alive: closed after the response"
    );
}

// ----------------------------------------------------------------------------- fields

#[test]
fn hop_by_hop_request_fields_do_not_reach_backend() {
    let backend = Backend::start("a");
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let mut c = proxy.connect();
    c.send(
        b"GET /hop HTTP/1.1\r\nHost: x\r\nConnection: X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\n\
          Proxy-Connection: keep-alive\r\nTE: trailers, deflate\r\nTrailer: X-Checksum\r\nUpgrade: h2c\r\n\
          X-End-To-End: kept\r\n\r\n",
    );
    let r = c.response();
    assert_eq!(r.status, 200);
    let seen = &backend.record.requests()[0];
    let head = seen.head.to_ascii_lowercase();
    assert!(
        !head.contains("x-secret"),
        "Connection and what it names are dropped: {}",
        seen.head
    );
    for name in ["keep-alive", "proxy-connection", "trailer", "upgrade"] {
        assert!(
            !seen.has_header(name),
            "{name} reached the backend: {}",
            seen.head
        );
    }
    assert_eq!(
        seen.headers_named("te"),
        ["trailers"],
        "only TE: trailers is forwarded: {}",
        seen.head
    );
    assert_eq!(seen.header("x-end-to-end"), Some("kept"));
}

#[test]
fn hop_by_hop_response_fields_do_not_reach_client() {
    let backend = Backend::with_handler("a", |_, _| {
        Reply::Bytes(
            b"HTTP/1.1 200 OK\r\nConnection: X-Private\r\nX-Private: secret\r\nKeep-Alive: timeout=5\r\n\
              Proxy-Connection: keep-alive\r\nTrailer: X-Checksum\r\nUpgrade: h2c\r\nX-End-To-End: kept\r\n\
              Content-Length: 2\r\n\r\nok"
                .to_vec(),
        )
    });
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let mut c = proxy.connect();
    send_get(&mut c, "/hop");
    let r = c.response();
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    for name in [
        "x-private",
        "keep-alive",
        "proxy-connection",
        "trailer",
        "upgrade",
    ] {
        assert!(
            r.header(name).is_none(),
            "{name} reached the client: {:?}",
            r.headers
        );
    }
    assert!(
        !r.header("connection")
            .is_some_and(|v| v.to_ascii_lowercase().contains("x-private")),
        "the backend's Connection field reached the client: {:?}",
        r.headers
    );
    assert_eq!(r.header("x-end-to-end"), Some("kept"));
}

#[test]
fn x_forwarded_fields_are_set_and_host_kept() {
    let backend = Backend::start("a");
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let mut c = proxy.connect();
    c.send(
        b"GET /fwd HTTP/1.1\r\nHost: example.test:8080\r\nX-Forwarded-For: 1.2.3.4\r\n\
          X-Forwarded-Proto: https\r\n\r\n",
    );
    assert_eq!(c.response().status, 200);
    let seen = &backend.record.requests()[0];
    let all = |name: &str| seen.headers_named(name);
    assert_eq!(
        all("x-forwarded-for"),
        ["1.2.3.4, 127.0.0.1"],
        "{}",
        seen.head
    );
    assert_eq!(all("x-forwarded-proto"), ["http"], "{}", seen.head);
    assert_eq!(
        all("x-forwarded-host"),
        ["example.test:8080"],
        "{}",
        seen.head
    );
    assert_eq!(all("host"), ["example.test:8080"], "{}", seen.head);
}

#[test]
fn set_cookie_fields_pass_untouched_in_order() {
    let backend = Backend::with_handler("a", |_, _| {
        Reply::Bytes(
            b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Path=/\r\nX-Between: 1\r\nSet-Cookie: b=2; HttpOnly\r\n\
              Set-Cookie: c=3; Expires=Wed, 21 Oct 2015 07:28:00 GMT\r\nContent-Length: 0\r\n\r\n"
                .to_vec(),
        )
    });
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let mut c = proxy.connect();
    send_get(&mut c, "/cookies");
    let r = c.response();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers_named("set-cookie"),
        [
            "a=1; Path=/",
            "b=2; HttpOnly",
            "c=3; Expires=Wed, 21 Oct 2015 07:28:00 GMT"
        ]
    );
}

// ----------------------------------------------------------------------------- exchanges

#[test]
fn expect_100_continue_gets_interim_then_final_response() {
    let backend = Backend::start("a");
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let mut c = proxy.connect();
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n");
    let interim = c.response();
    assert_eq!(
        interim.status, 100,
        "100 Continue before the body is sent: {interim:?}"
    );
    c.send(b"hello world");
    let r = c.response();
    assert_eq!((r.status, r.text().as_str()), (200, "hello world"));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let backend = Backend::with_handler("a", |seen, _| {
        if seen.target == "/slow" {
            thread::sleep(Duration::from_millis(300));
        }
        Reply::Bytes(ok_response(
            "a",
            seen.target.trim_start_matches('/').as_bytes(),
        ))
    });
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let mut c = proxy.connect();
    c.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
    let first = c.response();
    let second = c.response();
    assert_eq!((first.status, first.text().as_str()), (200, "slow"));
    assert_eq!((second.status, second.text().as_str()), (200, "fast"));
}

#[test]
fn client_connection_close_is_honoured() {
    let backend = Backend::start("a");
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let mut c = proxy.connect();
    c.send(b"GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let r = c.response();
    assert_eq!((r.status, r.text().as_str()), (200, "backend a"));
    assert!(
        r.closes(),
        "Connection: close in the response: {:?}",
        r.headers
    );
    assert!(c.is_closed(), "the proxy closes the connection");
}

#[test]
fn backend_connection_close_keeps_client_connection() {
    let backend = Backend::with_handler("a", |seen, _| {
        let body = seen.target.as_bytes();
        let mut v = format!(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        v.extend_from_slice(body);
        Reply::Close(v)
    });
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let mut c = proxy.connect();
    for path in ["/one", "/two"] {
        send_get(&mut c, path);
        let r = c.response();
        assert_eq!((r.status, r.text().as_str()), (200, path));
        assert!(
            !r.closes(),
            "the client connection stays open: {:?}",
            r.headers
        );
    }
    assert_eq!(
        backend.record.connections(),
        2,
        "a new backend connection for the second request"
    );
}

// ----------------------------------------------------------------------------- upgrade

/// Upgrades a new client connection through `proxy` to the echo backend.
fn upgrade(proxy: &Proxy, echo: &UpgradeEcho) -> Client {
    let mut c = proxy.connect();
    c.send(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 101, "switching protocols: {r:?}");
    assert!(
        r.header("upgrade")
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket")),
        "Upgrade field relayed: {:?}",
        r.headers
    );
    let head = echo
        .heads
        .recv_timeout(IO_TIMEOUT)
        .expect("the backend got the upgrade request");
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains("\r\nupgrade: websocket\r\n"),
        "upgrade forwarded: {head}"
    );
    assert!(
        lower.contains("\r\nconnection: upgrade\r\n"),
        "upgrade forwarded: {head}"
    );
    c
}

fn round_trip(c: &mut Client, data: &[u8]) {
    c.send(data);
    let mut back = vec![0u8; data.len()];
    c.reader.read_exact(&mut back).expect("echo comes back");
    assert_same_bytes(&back, data, "echoed tunnel bytes");
}

#[test]
fn upgrade_becomes_a_tunnel_both_ways() {
    let echo = UpgradeEcho::start();
    let proxy = Proxy::start(&[echo.addr], json!({}));
    let mut c = upgrade(&proxy, &echo);
    round_trip(&mut c, b"\x81\x05hello");
    round_trip(&mut c, b"GET / HTTP/1.1\r\n\r\n"); // not HTTP any more: passed through as is
    round_trip(&mut c, &pattern(100_000, 4));
    round_trip(&mut c, b"x");
}

#[test]
fn idle_tunnel_is_closed_after_tunnel_timeout() {
    let echo = UpgradeEcho::start();
    let timeout = Duration::from_millis(300);
    let proxy = Proxy::start(&[echo.addr], json!({"tunnel_timeout": "300ms"}));
    let mut c = upgrade(&proxy, &echo);
    // the last traffic (both ways) happens after this instant
    let idle = Instant::now();
    round_trip(&mut c, b"ping");
    assert_closed_after(&mut c, idle, timeout, "the idle tunnel");
}

// ----------------------------------------------------------------------------- errors

#[test]
fn head_over_max_request_head_gets_431() {
    let backend = Backend::start("a");
    let proxy = Proxy::start(&[backend.addr], json!({"max_request_head": 2048}));
    let mut c = proxy.connect();
    let big = "v".repeat(4096);
    c.send(format!("GET /big HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes());
    let r = c.response();
    assert_eq!(r.status, 431);
    assert!(c.is_closed());
    assert_eq!(backend.record.count(), 0);
}

#[test]
fn target_over_max_uri_length_gets_414() {
    let backend = Backend::start("a");
    let proxy = Proxy::start(&[backend.addr], json!({"max_uri_length": 1024}));
    let mut c = proxy.connect();
    let long = "a".repeat(2000);
    c.send(format!("GET /{long} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    let r = c.response();
    assert_eq!(r.status, 414);
    assert!(c.is_closed());
    assert_eq!(backend.record.count(), 0);
}

#[test]
fn garbage_from_backend_gets_502() {
    let backend = Backend::with_handler("a", |_, _| Reply::Bytes(b"NOT HTTP\r\n\r\n".to_vec()));
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let mut c = proxy.connect();
    send_get(&mut c, "/garbage");
    assert_eq!(c.response().status, 502);
}

#[test]
fn post_to_backend_that_closes_without_answer_gets_502_without_replay() {
    let a = Backend::with_handler("a", |_, _| Reply::Drop);
    let b = Backend::with_handler("b", |_, _| Reply::Drop);
    let proxy = Proxy::start(&[a.addr, b.addr], json!({}));
    let mut c = proxy.connect();
    c.send(b"POST /pay HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\ndata");
    assert_eq!(c.response().status, 502);
    assert_eq!(
        a.record.count() + b.record.count(),
        1,
        "the POST was sent exactly once (a: {}, b: {})",
        a.record.count(),
        b.record.count()
    );
}

#[test]
fn get_on_dead_pooled_connection_is_retried_on_another_backend() {
    let drops = Arc::new(AtomicUsize::new(0));
    let a = flaky_backend("a", Arc::clone(&drops));
    let b = naming_backend("b");
    let proxy = Proxy::start(&[a.addr, b.addr], json!({}));
    let mut c = proxy.connect();
    // round-robin alternates a and b: within a few requests one lands on a's pooled connection
    for i in 0..6 {
        let path = format!("/r{i}");
        send_get(&mut c, &path);
        let r = c.response();
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert!(
            r.text().ends_with(&format!(" {path}")),
            "{path} answered: {}",
            r.text()
        );
        if drops.load(Ordering::SeqCst) > 0 {
            assert_eq!(
                r.header("x-backend"),
                Some("b"),
                "{path} retried on the other backend"
            );
            assert!(b.record.requests().iter().any(|s| s.target == path));
            return;
        }
    }
    panic!("no request reached a pooled connection of backend a");
}

#[test]
fn post_on_dead_pooled_connection_gets_502_and_is_not_replayed() {
    let drops = Arc::new(AtomicUsize::new(0));
    let a = flaky_backend("a", Arc::clone(&drops));
    let b = flaky_backend("b", Arc::clone(&drops));
    let proxy = Proxy::start(&[a.addr, b.addr], json!({}));
    let mut c = proxy.connect();
    // give both backends a pooled connection from this client's worker
    let mut answered = HashSet::new();
    for i in 0..4 {
        send_get(&mut c, &format!("/warm{i}"));
        let r = c.response();
        assert_eq!(r.status, 200);
        answered.insert(r.header("x-backend").unwrap_or("").to_string());
        if answered.len() == 2 {
            break;
        }
    }
    assert_eq!(
        answered.len(),
        2,
        "both backends answered a warm-up request"
    );
    let before = drops.load(Ordering::SeqCst);
    c.send(b"POST /pay HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\ndata");
    let r = c.response();
    assert_eq!(r.status, 502, "{r:?}");
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
    assert_eq!(
        posts(&a) + posts(&b),
        1,
        "a: {}, b: {}",
        posts(&a),
        posts(&b)
    );
}

#[test]
fn slow_backend_gets_504() {
    let backend = Backend::with_handler("a", |_, _| {
        thread::sleep(Duration::from_secs(5));
        Reply::Bytes(ok_response("a", b"too late"))
    });
    let timeout = Duration::from_millis(300);
    let proxy = Proxy::start(&[backend.addr], json!({"backend_timeout": "300ms"}));
    let mut c = proxy.connect();
    let sent = Instant::now();
    send_get(&mut c, "/slow");
    assert_eq!(c.response().status, 504);
    assert_took_about(sent.elapsed(), timeout, "504");
}

#[test]
fn slowloris_head_gets_408_and_close() {
    let backend = Backend::start("a");
    let timeout = Duration::from_millis(300);
    let proxy = Proxy::start(&[backend.addr], json!({"client_header_timeout": "300ms"}));
    let mut c = proxy.connect();
    // the header timeout runs from the first byte of the head, sent after this instant
    let start = Instant::now();
    c.send(b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Half: ");
    let r = c.response();
    assert_eq!(r.status, 408);
    assert_took_about(start.elapsed(), timeout, "408");
    assert!(c.is_closed());
    assert_eq!(backend.record.count(), 0);
}

#[test]
fn idle_keep_alive_connection_is_closed() {
    let backend = Backend::start("a");
    let timeout = Duration::from_millis(300);
    let proxy = Proxy::start(&[backend.addr], json!({"keepalive_timeout": "300ms"}));
    let mut c = proxy.connect();
    // the connection goes idle once the response is out, after this instant
    let idle = Instant::now();
    send_get(&mut c, "/once");
    assert_eq!(c.response().status, 200);
    assert_closed_after(&mut c, idle, timeout, "the idle connection");
}

#[test]
fn stalled_request_body_ends_connection_and_backend_stays_clean() {
    let backend = Backend::start("a");
    let timeout = Duration::from_millis(300);
    let proxy = Proxy::start(&[backend.addr], json!({"client_body_timeout": "300ms"}));
    let mut c = proxy.connect();
    // the last body byte arrives after this instant
    let start = Instant::now();
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789");
    // the backend has not answered (it waits for the rest of the body): the client gets its 408
    let r = assert_status_then_close(&mut c, 408);
    assert!(r.closes(), "the 408 announces the close: {:?}", r.headers);
    assert_took_about(start.elapsed(), timeout, "408");
    // other clients (on either worker) still get their own bodies back
    for i in 0..6 {
        let body = format!("clean request {i}");
        let mut other = proxy.connect();
        send_echo(&mut other, body.as_bytes());
        let r = other.response();
        assert_eq!((r.status, r.text()), (200, body));
    }
    // and the stalled request never completed at the backend (nor was padded into the next one)
    let bodies: Vec<String> = backend
        .record
        .requests()
        .iter()
        .map(|s| String::from_utf8_lossy(&s.body).into_owned())
        .collect();
    let want: Vec<String> = (0..6).map(|i| format!("clean request {i}")).collect();
    assert_eq!(bodies, want);
}

#[test]
fn client_leaving_mid_body_does_not_disturb_others() {
    let backend = Backend::start("a");
    let proxy = Proxy::start(&[backend.addr], json!({}));
    {
        let mut c = proxy.connect();
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n");
        c.send(&pattern(100 * 1024, 5));
    } // dropped: closed mid-body
    for i in 0..6 {
        let body = pattern(1000 + i, 100 + i as u64);
        let mut other = proxy.connect();
        send_echo(&mut other, &body);
        let r = other.response();
        assert_eq!(r.status, 200);
        assert_same_bytes(&r.body, &body, "echo after a client left");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let backends = admin_backends(&proxy);
        if backends.iter().all(|b| b["active_connections"] == 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "active connections stay up: {backends:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
    // the abandoned 1 MiB request never completed at the backend
    let sizes: Vec<usize> = backend
        .record
        .requests()
        .iter()
        .map(|s| s.body.len())
        .collect();
    assert_eq!(sizes, (1000..1006).collect::<Vec<usize>>());
}

// ----------------------------------------------------------------------------- large bodies

#[test]
fn upload_8mb_with_content_length_is_echoed_exactly() {
    let backend = Backend::start("a");
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let body = pattern(8 << 20, 6);
    let mut c = proxy.connect();
    send_echo(&mut c, &body);
    let r = c.response();
    assert_eq!(r.status, 200);
    assert_same_bytes(&r.body, &body, "8 MB echo");
}

#[test]
fn upload_8mb_chunked_is_echoed_exactly() {
    let backend = Backend::start("a");
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let body = pattern(8 << 20, 7);
    let mut c = proxy.connect();
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for piece in body.chunks(65_521) {
        c.send(format!("{:x}\r\n", piece.len()).as_bytes());
        c.send(piece);
        c.send(b"\r\n");
    }
    c.send(b"0\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 200);
    assert_same_bytes(&r.body, &body, "8 MB chunked echo");
    assert_same_bytes(
        &backend.record.requests()[0].body,
        &body,
        "8 MB at the backend",
    );
}

#[test]
fn download_16mb_streamed_in_small_writes_is_exact() {
    let body = Arc::new(pattern(16 << 20, 8));
    let payload = Arc::clone(&body);
    let backend = Backend::with_handler("a", move |_, s| {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            payload.len()
        );
        if s.write_all(head.as_bytes()).is_err() {
            return Reply::Drop;
        }
        for piece in payload.chunks(4096) {
            if s.write_all(piece).is_err() {
                return Reply::Drop;
            }
        }
        Reply::Handled
    });
    let proxy = Proxy::start(&[backend.addr], json!({}));
    let mut c = proxy.connect();
    send_get(&mut c, "/big");
    let r = c.response();
    assert_eq!(r.status, 200);
    assert_same_bytes(&r.body, &body, "16 MB download");
}
