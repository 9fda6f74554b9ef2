//! The transport's contract on real sockets where it matters beyond the integration tests: what
//! a write reports when the socket fails under rustls.

use std::io::Write;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use mio::{Events, Interest, Poll, Token};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::{Got, Io, Transport};
use crate::buffer::BufPool;

/// A self-signed certificate for 127.0.0.1: the server's config, and a client config trusting it.
fn configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("cert");
    let der = CertificateDer::from(cert.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let provider = crate::tls::provider();
    let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .expect("server config");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).expect("root");
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

/// Bytes handed to rustls count as written even when the flush after them fails: a request
/// that may have reached the backend must not be taken for one that never left (and be replayed
/// when it is not idempotent). The server completes the handshake, then resets the connection;
/// a write after the reset is seen hands its bytes to rustls, whose flush fails.
#[test]
fn a_tls_write_whose_flush_fails_reports_the_bytes_taken() {
    let (server_config, client_config) = configs();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        let (sock, _) = listener.accept().expect("accept");
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let conn = rustls::ServerConnection::new(server_config).expect("server");
        let mut tls = rustls::StreamOwned::new(conn, sock);
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .expect("server handshake");
        }
        let _ = tls.flush();
        socket2::SockRef::from(&tls.sock)
            .set_linger(Some(Duration::ZERO))
            .expect("linger 0");
        // dropped: a reset
    });
    let sock = mio::net::TcpStream::connect(addr).expect("connect");
    let name = crate::tls::server_name("127.0.0.1").expect("name");
    let mut t = Transport::client(sock, &client_config, name).expect("client");
    let mut poll = Poll::new().expect("poll");
    poll.registry()
        .register(&mut t, Token(0), Interest::READABLE | Interest::WRITABLE)
        .expect("register");
    let mut events = Events::with_capacity(8);
    let mut bufs = BufPool::new(16 * 1024, 1);
    let mut buf = bufs.get();
    let mut failed = false;
    // bounded: each round waits for readiness at most a second
    for _ in 0..50 {
        poll.poll(&mut events, Some(Duration::from_secs(1)))
            .expect("poll");
        let _ = t.flush();
        match t.read_into(&mut buf) {
            Got::Failed(_) | Got::Eof => {
                failed = true;
                break;
            }
            Got::Bytes { .. } | Got::Full | Got::Blocked => {}
        }
    }
    server.join().expect("server thread");
    assert!(failed, "the reset was seen");
    assert!(
        !t.is_handshaking(),
        "the handshake finished before the reset"
    );
    let request = b"POST /once HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n";
    match t.write(request) {
        Io::Done(n) => assert_eq!(n, request.len(), "rustls took the request"),
        other => panic!("bytes rustls took were reported as {other:?}"),
    }
    assert!(
        matches!(t.flush(), Io::Failed(_)),
        "the failure shows at the next flush"
    );
    bufs.put(buf);
}
