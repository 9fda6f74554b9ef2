//! An `https://` backend's close-delimited body and how it ends: `close_notify` then the FIN is
//! the body's end, a clean end for the client with the whole body; a TCP FIN without
//! `close_notify` ends the socket, not the TLS stream (RFC 8446 §6.1: a truncation), and the
//! client learns of the cut by a reset, as for a plain backend's reset (`http11::ends`).
//!
//! The backend is a rustls server on a plain listener, since it must end its side in ways
//! `common::tls::TlsBackend` never does.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::common::tls::TestCa;
use crate::common::*;

/// The bytes of the body that reach the client before its end.
const PARTIAL: &[u8] = b"first part of a body without length;";

/// How an `https://` backend ends a close-delimited body: with `close_notify` (the TLS stream's
/// end), or with a bare TCP FIN (which ends the socket, not the TLS stream: RFC 8446 §6.1 calls
/// that a truncation).
#[derive(Clone, Copy, PartialEq, Debug)]
enum TlsEnd {
    CloseNotify,
    BareFin,
}

/// A backend over TLS that answers `GET /stream` with a close-delimited `200`
/// carrying [`PARTIAL`], waits for the signal, then ends as `end` says.
fn close_delimited_tls_backend(
    end: TlsEnd,
    config: Arc<rustls::ServerConfig>,
) -> (SocketAddr, mpsc::Sender<()>, AcceptLoop) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
    let addr = listener.local_addr().expect("addr");
    let (go_tx, go) = mpsc::channel::<()>();
    let go = Mutex::new(go);
    let backend = serve(listener, move |sock| {
        let _ = sock.set_read_timeout(Some(Duration::from_secs(20)));
        let Ok(conn) = rustls::ServerConnection::new(Arc::clone(&config)) else {
            return;
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
            return; // a health check, say: closed unanswered
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
    });
    (addr, go_tx, backend)
}

fn stream_then_tls_end(end: TlsEnd) -> (String, Vec<u8>, std::io::Result<()>) {
    let name = format!("close-{end:?}");
    let ca = TestCa::new(&name);
    let dir = TempDir::new(&name);
    let ca_file = dir.write("ca.pem", ca.pem());
    let (addr, go, _backend) =
        close_delimited_tls_backend(end, ca.issue(&["127.0.0.1"]).server_config());
    let proxy = Proxy::from_json(
        &json!({
            "port": 0, "admin_port": 0, "bind": "127.0.0.1", "workers": 1, "retries": 0,
            "backends": [{"url": format!("https://{addr}"), "ca_file": path_text(&ca_file)}],
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
