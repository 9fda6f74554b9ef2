//! TLS integration tests: termination (`ssl.*`) and `https://` backends, on real sockets at
//! 127.0.0.1, with rustls as the client and as the HTTPS test backend, and certificates made by
//! rcgen at test time (PEM files in a temporary directory, removed afterwards). What they prove:
//!
//! - TLS 1.3 and TLS 1.2, each alone: the handshake, ALPN `http/1.1`, a request through to a
//!   plain backend, which sees `X-Forwarded-Proto: https`; `/stats` counts the handshake.
//! - Keep-alive over TLS (many requests, one handshake) and pipelining (a batch written at once
//!   is answered in order).
//! - 1 GiB down and 1 GiB up through the TLS listener, byte-exact, with the `ferrule` binary's
//!   peak RSS bounded (the body is streamed, not buffered).
//! - Upgrade (`101`) over TLS: bytes both ways through the tunnel, and its close (client FIN).
//! - A slow TLS reader: the backend's writer stops (back-pressure), the body arrives exact, the
//!   proxy's memory stays bounded, the connection stays usable.
//! - SNI: `ssl.certificates` entries are picked by the client's server name (exact and
//!   wildcard); an unknown name and no SNI get the first (default) certificate.
//! - Unusable certificate files (key not matching, missing file, no PEM) make `ferrule --check`
//!   exit 1 with one line naming the field or file, and `ferrule::start` fail; an expired
//!   certificate is accepted with a warning.
//! - `POST /reload-certs`: new handshakes get the new certificate, a connection opened before
//!   keeps working; a bad file is refused (400) and the certificate in use stays; 409 without TLS.
//! - `https://` backends: verified with `backends[].ca_file` or the global `backend_ca_file`,
//!   pooled connections reused; a wrong CA or a certificate for another name gives a prompt 502
//!   and a log line naming the backend and the reason; `tls_skip_verify` accepts the wrong CA.
//! - A stalled handshake (nothing sent, or half a ClientHello) is closed at
//!   `tls_handshake_timeout`, counted in `tls_handshake_failures`.
//! - Plain HTTP to the TLS port gets a plain `400` and a close, garbage just a close, while TLS
//!   clients of the same proxy are served.
//! - `ssl.redirect_http_port`: `308` to `https://HOST:TLS_PORT/same/target`, `400` without Host.
//! - Session resumption, TLS 1.3 (tickets) and TLS 1.2.
//!
//! - A TLS close_notify ends the client's stream (a tunnel closes, an idle connection is
//!   released), and a `ferrule::start` that fails late leaves nothing serving (both were bugs,
//!   found by these tests).
//!
//! - `truncation`: an `https://` backend's close-delimited body ends with `close_notify`; a bare
//!   FIN is a cut, which reaches the client as a reset.
//!
//! Helpers live in `tests/common/tls.rs`. Every read has a timeout; child processes are stopped
//! by their PID.

use crate::common;

mod truncation;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::tls::*;
use common::*;
use rustls::{HandshakeKind, ProtocolVersion, SupportedProtocolVersion};
use serde_json::{json, Value};
use socket2::{Domain, Socket, Type};

// ----------------------------------------------------------------------------- versions

/// One connection restricted to `version`: the negotiated version and ALPN, the certificate,
/// a GET through to a plain backend that sees `X-Forwarded-Proto: https`, one handshake counted.
fn request_over(version: &'static SupportedProtocolVersion, expected: ProtocolVersion) {
    let pki = pki(&format!("version-{expected:?}"));
    let backend = Backend::start("plain");
    let proxy = tls_proxy(&[backend.addr], pki.files.ssl(), json!({}));

    let mut c = TlsClient::connect(proxy.addr(), &pki.client(&[version]), "localhost");
    assert_eq!(c.conn().protocol_version(), Some(expected));
    assert_eq!(c.conn().alpn_protocol(), Some(&b"http/1.1"[..]), "ALPN");
    assert_eq!(c.peer_cert(), pki.leaf.der, "the configured certificate");
    let r = c.get("/hello?x=1");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "backend plain"),
        "{r:?}"
    );

    let seen = backend.record.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].target, "/hello?x=1");
    assert_eq!(
        seen[0].header("x-forwarded-proto"),
        Some("https"),
        "{}",
        seen[0].head
    );
    assert_eq!(tls_counters(&proxy), (1, 0), "one handshake, no failure");
}

#[test]
fn tls13_request_reaches_a_plain_backend_as_https() {
    request_over(&rustls::version::TLS13, ProtocolVersion::TLSv1_3);
}

#[test]
fn tls12_request_reaches_a_plain_backend_as_https() {
    request_over(&rustls::version::TLS12, ProtocolVersion::TLSv1_2);
}

// ----------------------------------------------------------------------------- keep-alive

// Proves one TLS connection carries many requests (one handshake), and that a batch of
// pipelined requests, written in one go and so arriving in the same TLS records, is answered
// completely and in order, a request with a body among them.
#[test]
fn keep_alive_and_pipelining_over_tls() {
    let pki = pki("keep-alive");
    let backend = target_backend();
    let proxy = tls_proxy(&[backend.addr], pki.files.ssl(), json!({}));
    let mut c = pki.connect(proxy.addr());

    for i in 0..20 {
        let r = c.get(&format!("/seq/{i}"));
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.text(), format!("answer to /seq/{i}"));
        assert!(!r.closes(), "keep-alive: {r:?}");
    }

    let mut batch = Vec::new();
    for i in 0..10 {
        if i == 5 {
            batch.extend_from_slice(
                b"POST /echo/5 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n\r\nhello world",
            );
        } else {
            batch.extend_from_slice(
                format!("GET /pipe/{i} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(),
            );
        }
    }
    c.send(&batch);
    for i in 0..10 {
        let r = c.response();
        assert_eq!(r.status, 200, "response {i}: {r:?}");
        let want = if i == 5 {
            "hello world".to_owned()
        } else {
            format!("answer to /pipe/{i}")
        };
        assert_eq!(r.text(), want, "response {i} in order");
    }
    let targets: Vec<String> = backend
        .record
        .requests()
        .iter()
        .map(|s| s.target.clone())
        .collect();
    assert_eq!(targets.len(), 30, "{targets:?}");
    assert_eq!(targets[25], "/echo/5");
    assert_eq!(tls_counters(&proxy), (1, 0), "all of it on one handshake");
}

// ----------------------------------------------------------------------------- 1 GiB

// Proves a 1 GiB response crosses the TLS listener byte for byte (checked incrementally against
// the pattern) and is streamed: the proxy binary's peak RSS stays bounded.
#[test]
fn one_gigabyte_download_over_tls_is_exact_with_bounded_memory() {
    let pki = pki("download");
    let backend = PatternBackend::start();
    let proxy = tls_proxy_process(backend.addr, &pki.files, "tls-download");
    let before = proxy.memory();

    let started = Instant::now();
    let mut c = pki.connect(proxy.addr());
    c.send(
        format!("GET /big/{GIB} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    let head = Head::read(&mut c.reader).expect("response head");
    assert_eq!(head.status(), 200, "{head:?}");
    assert_eq!(
        head.header("content-length"),
        Some(GIB.to_string().as_str())
    );
    let mut check = PatternCheck::new();
    check
        .read_from(&mut c.reader, GIB)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(check.offset, GIB);
    assert!(c.is_closed(), "Connection: close: nothing after the body");
    report_rate("TLS download", GIB, started);

    assert_bounded_memory(before, proxy.memory());
}

// Proves a 1 GiB request body sent over TLS reaches the backend byte for byte (the backend checks
// it against the pattern as it arrives) and is streamed: the proxy's peak RSS stays bounded.
#[test]
fn one_gigabyte_upload_over_tls_is_exact_with_bounded_memory() {
    let pki = pki("upload");
    let backend = PatternBackend::start();
    let proxy = tls_proxy_process(backend.addr, &pki.files, "tls-upload");
    let before = proxy.memory();

    let started = Instant::now();
    let mut c = pki.connect(proxy.addr());
    c.send(
        format!("POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: {GIB}\r\n\r\n").as_bytes(),
    );
    let stream = c.reader.get_mut();
    if let Err(e) = write_pattern(stream, GIB, |_| {}).and_then(|()| stream.flush()) {
        let answer = c.try_response().map(|r| r.text());
        panic!("sending the body failed: {e}; the proxy answered {answer:?}");
    }
    let r = c.response();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), format!("bytes={GIB}"));
    report_rate("TLS upload", GIB, started);

    assert_bounded_memory(before, proxy.memory());
}

// ----------------------------------------------------------------------------- upgrade

// Proves a `101 Switching Protocols` turns a TLS connection into a tunnel: the backend's first
// bytes come through unasked, the client's bytes are echoed back (small and large messages), and
// a client close_notify ends the tunnel in order (the backend's FIN comes back as the close).
#[test]
fn websocket_upgrade_tunnels_over_tls() {
    let pki = pki("upgrade");
    let backend = UpgradeBackend::start();
    let proxy = tls_proxy(&[backend.addr], pki.files.ssl(), json!({}));
    let mut c = pki.connect(proxy.addr());

    c.send(
        b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    );
    let r = c.response();
    assert_eq!(r.status, 101, "{r:?}");
    assert_eq!(r.header("upgrade"), Some("websocket"), "{r:?}");
    let head = backend
        .heads
        .recv_timeout(IO_TIMEOUT)
        .expect("the upgrade request reached the backend");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("upgrade: websocket"), "{head}");
    assert!(lower.contains("x-forwarded-proto: https"), "{head}");

    let mut greeting = vec![0u8; UPGRADE_GREETING.len()];
    c.reader
        .read_exact(&mut greeting)
        .expect("the backend's first bytes");
    assert_eq!(greeting, UPGRADE_GREETING);

    let mut large = vec![0u8; 128 * 1024];
    pattern_fill(0, &mut large);
    for message in [b"ping".to_vec(), large, b"last".to_vec()] {
        c.send(&message);
        let mut back = vec![0u8; message.len()];
        c.reader.read_exact(&mut back).expect("the echo");
        assert!(
            back == message,
            "{} bytes echoed differently",
            message.len()
        );
    }

    // the client ends its side (TCP FIN): the backend sees EOF and closes, and that close
    // comes back through the proxy
    c.tcp()
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    assert!(c.is_closed(), "the tunnel closed after both sides ended");
}

// ----------------------------------------------------------------------------- slow client

// Proves back-pressure over TLS: a client that stops reading a 64 MiB response stops the
// backend's writes far short of the body (the proxy does not read ahead into memory), then the
// client reads slowly, in small pieces, and the whole body arrives exact; the proxy's memory
// stays bounded and the connection is still usable afterwards.
#[test]
fn slow_tls_reader_gets_an_exact_body_with_back_pressure() {
    const LEN: u64 = 64 * MIB;
    let pki = pki("slow-reader");
    let backend = PatternBackend::start();
    let proxy = tls_proxy_process(backend.addr, &pki.files, "tls-slow-reader");
    let before = proxy.memory();

    // a small receive buffer on the client socket keeps the kernel from absorbing the body
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    sock.set_recv_buffer_size(64 * 1024).expect("SO_RCVBUF");
    sock.connect(&proxy.addr().into()).expect("connect");
    let tcp: TcpStream = sock.into();
    tcp.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    tcp.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let mut c = TlsClient::over(tcp, &pki.client(ANY_VERSION), "localhost").expect("handshake");

    c.send(format!("GET /big/{LEN} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
    let head = Head::read(&mut c.reader).expect("response head");
    assert_eq!(head.status(), 200, "{head:?}");
    let mut check = PatternCheck::new();
    check
        .read_from(&mut c.reader, MIB)
        .unwrap_or_else(|e| panic!("{e}"));

    // The client reads nothing: the backend's writes must stall once the socket buffers and
    // the proxy's bounded buffers are full (nothing else signals it: poll the counter).
    let limit = Instant::now() + Duration::from_secs(10);
    let mut last = backend.written();
    let mut stable_since = Instant::now();
    while stable_since.elapsed() < Duration::from_millis(500) {
        assert!(
            Instant::now() < limit,
            "the backend kept writing for 10 s while the client read nothing ({} bytes)",
            backend.written()
        );
        thread::sleep(Duration::from_millis(20));
        let now = backend.written();
        if now != last {
            last = now;
            stable_since = Instant::now();
        }
    }
    eprintln!(
        "backend stalled after {:.1} MiB with the client at 1 MiB",
        last as f64 / MIB as f64
    );
    // the kernel may hold a few MiB per socket (autotuning); ferrule adds its two buffers and
    // rustls's 64 KiB: 24 MiB is far above that and far below the 64 MiB of the body
    assert!(
        last < 24 * MIB,
        "the backend wrote {last} bytes while the client read 1 MiB"
    );
    let stalled = proxy.memory();

    // The client reads slowly: 4 MiB in 16 KiB reads with a pause after each 64 KiB.
    let mut piece = vec![0u8; 16 * 1024];
    let mut reads = 0u32;
    check
        .read_in_pieces(&mut c.reader, 4 * MIB, &mut piece, |_| {
            reads += 1;
            if reads % 4 == 0 {
                thread::sleep(Duration::from_millis(2));
            }
        })
        .unwrap_or_else(|e| panic!("{e}"));
    // then the rest
    check
        .read_from(&mut c.reader, LEN - 5 * MIB)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(check.offset, LEN);
    assert_eq!(backend.written(), LEN);

    // keep-alive: the same connection serves the next request
    let r = c.get("/small");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{r:?}");
    eprintln!(
        "proxy peak RSS while stalled: {:.1} MiB",
        stalled.peak as f64 / MIB as f64
    );
    assert_bounded_memory(before, proxy.memory());
}

// ----------------------------------------------------------------------------- SNI

// Proves the certificate is chosen by SNI among `ssl.certificates`: `a.test` gets A, a name under
// the wildcard `*.b.test` gets B (both fully verified against the CA), and an unknown name, a name
// the wildcard does not cover (`b.test`, `y.x.b.test`), an IP address and no SNI at all get the
// first certificate, the default.
#[test]
fn sni_picks_the_certificate_and_falls_back_to_the_first() {
    let dir = TempDir::new("sni");
    let ca = TestCa::new("ferrule SNI CA");
    let a = ca.issue(&["a.test"]);
    let b = ca.issue(&["*.b.test"]);
    let (fa, fb) = (a.write(&dir, "a"), b.write(&dir, "b"));
    let backend = Backend::start("sni");
    let proxy = tls_proxy(
        &[backend.addr],
        json!({"enabled": true, "certificates": [fa.json(), fb.json()]}),
        json!({}),
    );
    let describe = |der: &[u8]| format!("{:?}", san_names(der));

    for (name, want) in [("a.test", &a), ("x.b.test", &b), ("www.b.test", &b)] {
        let mut c = TlsClient::connect(proxy.addr(), &client_config(ca.roots(), ANY_VERSION), name);
        let got = c.peer_cert();
        assert!(
            got == want.der,
            "SNI {name}: got the certificate for {}, expected {}",
            describe(&got),
            describe(&want.der)
        );
        assert_eq!(c.get("/").status, 200);
    }

    let cases = [
        ("unknown.test", true),
        ("b.test", true),
        ("y.x.b.test", true),
        ("127.0.0.1", true), // an IP address is never sent as SNI
        ("a.test", false),   // SNI turned off
    ];
    for (name, sni) in cases {
        let mut c = TlsClient::connect(proxy.addr(), &any_cert_client_config(sni), name);
        let got = c.peer_cert();
        assert!(
            got == a.der,
            "{name} (SNI {sni}): got the certificate for {}, expected the default {}",
            describe(&got),
            describe(&a.der)
        );
        assert_eq!(c.get("/").status, 200);
    }
}

// ----------------------------------------------------------------------------- bad files

// Proves each kind of unusable certificate file is refused before serving: `ferrule --check`
// exits 1 with exactly one stderr line naming the field and the file, and `ferrule::start` fails
// with a message naming the file (for a missing file, one that vanished after the config was
// loaded). Nothing is served with a broken certificate.
#[test]
fn unusable_certificate_files_fail_check_and_start() {
    let dir = TempDir::new("bad-files");
    let ca = TestCa::new("ferrule test CA");
    let good = ca.issue(&["localhost"]).write(&dir, "good");
    let other = ca.issue(&["localhost"]).write(&dir, "other");
    let no_pem = dir.write("no-pem.txt", "this file holds no PEM at all\n");
    let missing = dir.join("missing.pem");

    // (what, cert_file, key_file, the file the line names, the field it names)
    let cases = [
        (
            "key of another certificate",
            &good.cert,
            &other.key,
            &other.key,
            "ssl",
        ),
        (
            "missing certificate",
            &missing,
            &good.key,
            &missing,
            "ssl.cert_file",
        ),
        (
            "missing key",
            &good.cert,
            &missing,
            &missing,
            "ssl.key_file",
        ),
        (
            "certificate without PEM",
            &no_pem,
            &good.key,
            &no_pem,
            "ssl",
        ),
        ("key without PEM", &good.cert, &no_pem, &no_pem, "ssl"),
    ];
    for (i, (what, cert, key, named, field)) in cases.into_iter().enumerate() {
        let config = ssl_config(cert, key);
        let out = run_check(&dir, &format!("case{i}"), &config);
        assert_eq!(out.code, Some(1), "{what}: {out:?}");
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{what}: one line: {out:?}");
        let named = path_text(named);
        assert!(
            lines[0].contains(&named) && lines[0].contains(field),
            "{what}: {:?} names {field} and {named}",
            lines[0]
        );

        // ferrule::start refuses it too
        let message = if named == path_text(&missing) {
            // the config loader checks that files exist: load it while the file exists, then
            // take it away, so that start() itself meets the missing file
            let e = ferrule::Config::from_json_str(&config.to_string())
                .expect_err("a missing file is refused at load");
            assert!(e.to_string().contains(field), "{what}: {e}");
            std::fs::write(&missing, "placeholder").expect("write placeholder");
            let loaded = ferrule::Config::from_json_str(&config.to_string()).expect("loads");
            std::fs::remove_file(&missing).expect("remove placeholder");
            start_error(&loaded)
        } else {
            let loaded = ferrule::Config::from_json_str(&config.to_string())
                .unwrap_or_else(|e| panic!("{what}: the config itself is valid: {e}"));
            start_error(&loaded)
        };
        assert!(
            message.contains(&named) && !message.contains('\n'),
            "{what}: start fails naming {named}: {message:?}"
        );
    }
}

// Proves an expired certificate is accepted, with a warning: `--check` exits 0 and prints a
// warning naming the file and the expiry, and the proxy starts and serves it.
#[test]
fn expired_certificate_is_accepted_with_a_warning() {
    let dir = TempDir::new("expired");
    let ca = TestCa::new("ferrule test CA");
    let expired = ca.issue_with(&["localhost"], |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let files = expired.write(&dir, "expired");
    let config = ssl_config(&files.cert, &files.key);

    let out = run_check(&dir, "check", &config);
    assert_eq!(out.code, Some(0), "{out:?}");
    let warning = out
        .stdout
        .lines()
        .find(|l| l.contains("warning"))
        .unwrap_or_else(|| panic!("no warning: {out:?}"));
    assert!(
        warning.contains("expired") && warning.contains(&path_text(&files.cert)),
        "{warning:?}"
    );

    let backend = Backend::start("expired");
    let proxy = tls_proxy(&[backend.addr], files.ssl(), json!({}));
    let mut c = TlsClient::connect(proxy.addr(), &any_cert_client_config(true), "localhost");
    assert!(
        c.peer_cert() == expired.der,
        "the expired certificate is served"
    );
    assert_eq!(c.get("/").status, 200);
}

// ----------------------------------------------------------------------------- reload

// Proves `POST /reload-certs`: after the files are replaced, new handshakes present the new
// certificate (other serial, other name), a connection opened before keeps working; a garbage
// file is refused with 400 and the error, and the certificate in use stays. Without TLS, 409.
#[test]
fn reload_certs_serves_new_handshakes_and_keeps_old_connections() {
    let dir = TempDir::new("reload");
    let ca = TestCa::new("ferrule test CA");
    let old = ca.issue_with(&["localhost", "old.test"], serial(1));
    let new = ca.issue_with(&["localhost", "new.test"], serial(2));
    let files = old.write(&dir, "server");
    let backend = target_backend();
    let proxy = tls_proxy(&[backend.addr], files.ssl(), json!({}));
    let client = || {
        TlsClient::connect(
            proxy.addr(),
            &client_config(ca.roots(), ANY_VERSION),
            "localhost",
        )
    };

    let mut early = client();
    assert!(early.peer_cert() == old.der);
    assert_eq!(early.get("/before").text(), "answer to /before");

    new.write(&dir, "server");
    let (status, body) = admin_post(proxy.admin(), "/reload-certs");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reloaded"], 1, "{body}");
    assert_eq!(body["names"], json!([["localhost", "new.test"]]), "{body}");
    assert_eq!(body["warnings"], json!([]), "{body}");

    let mut late = client();
    assert!(
        late.peer_cert() == new.der,
        "a new handshake gets the new certificate, not {:?}",
        san_names(&late.peer_cert())
    );
    assert_eq!(late.get("/late").text(), "answer to /late");
    // the connection opened before goes on, with the certificate it was opened with
    assert_eq!(early.get("/after").text(), "answer to /after");
    assert!(early.peer_cert() == old.der);

    std::fs::write(&files.cert, "garbage, not a certificate\n").expect("spoil the file");
    let (status, body) = admin_post(proxy.admin(), "/reload-certs");
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap_or_else(|| panic!("{body}"));
    assert!(error.contains(&path_text(&files.cert)), "{error}");
    let mut after_bad = client();
    assert!(
        after_bad.peer_cert() == new.der,
        "the certificate in use stays after a refused reload"
    );
    assert_eq!(after_bad.get("/x").status, 200);
    assert_eq!(late.get("/y").status, 200);

    let plain = Proxy::start(&[backend.addr], json!({}));
    let (status, body) = admin_post(plain.admin(), "/reload-certs");
    assert_eq!(status, 409, "{body}");
}

// ----------------------------------------------------------------------------- https backends

/// Requests through `proxy` to the HTTPS backend: 5 on one client connection, 1 on another; all
/// answered by the backend, which sees them, on one TCP connection (pooled, kept alive).
fn assert_served_and_pooled(proxy: &Proxy, backend: &TlsBackend) {
    let mut c = proxy.connect();
    for i in 0..5 {
        c.send(format!("GET /pooled/{i} HTTP/1.1\r\nHost: app\r\n\r\n").as_bytes());
        let r = c.response();
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.text(), format!("tls backend saw /pooled/{i}"));
        assert_eq!(r.header("x-backend"), Some("tls"));
    }
    let r = proxy.get("/other-client");
    assert_eq!(r.text(), "tls backend saw /other-client", "{r:?}");

    let seen = backend.record.requests();
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert_eq!(seen[0].header("host"), Some("app"));
    assert_eq!(seen[0].header("x-forwarded-proto"), Some("http"));
    let (conns, accepted) = (backend.record.connections(), backend.accepted());
    eprintln!("6 requests over {conns} TLS connection(s) ({accepted} accepted)");
    assert!(
        conns < seen.len(),
        "pooled connections are reused: {conns} connections for {} requests",
        seen.len()
    );
    assert_eq!(
        conns, 1,
        "one worker, one request at a time: one connection"
    );
}

// Proves an `https://` backend verified with `backends[].ca_file` is served, and its connection
// is pooled and reused across requests and client connections.
#[test]
fn https_backend_with_its_ca_file_is_served_over_pooled_connections() {
    let dir = TempDir::new("backend-ca");
    let ca = TestCa::new("backend CA");
    let ca_file = dir.write("ca.pem", ca.pem());
    let backend = TlsBackend::start(ca.issue(&["127.0.0.1"]).server_config());
    let proxy = proxy_to(
        json!({"url": backend.url(), "ca_file": path_text(&ca_file)}),
        json!({}),
    );
    assert_served_and_pooled(&proxy, &backend);
}

// Proves the global `backend_ca_file` verifies `https://` backends that name no CA of their own.
#[test]
fn https_backend_with_the_global_backend_ca_file_is_served() {
    let dir = TempDir::new("global-ca");
    let ca = TestCa::new("backend CA");
    let ca_file = dir.write("ca.pem", ca.pem());
    let backend = TlsBackend::start(ca.issue(&["127.0.0.1"]).server_config());
    let proxy = proxy_to(
        json!({"url": backend.url()}),
        json!({"backend_ca_file": path_text(&ca_file)}),
    );
    assert_served_and_pooled(&proxy, &backend);
}

/// Runs the proxy binary in front of `backend` (an HTTPS backend the proxy must refuse), asks it
/// twice, and checks: 502 both times, promptly; the backend's application saw nothing; the log
/// names the backend's URL and a reason containing `reason` (any case). Passive health is off
/// (`max_fails: 0`): with it, the failures would take the backend down and the second request
/// would get 503 (`tests/health.rs` covers that).
fn assert_refused_backend(backend: &TlsBackend, tls: Value, reason: &str, name: &str) {
    let mut entry = json!({"url": backend.url()});
    if let (Some(map), Value::Object(more)) = (entry.as_object_mut(), tls) {
        map.extend(more);
    }
    let proxy = ProxyProcess::start(
        json!({"workers": 1, "max_fails": 0, "backends": [entry]}),
        name,
    );
    for i in 0..2 {
        let started = Instant::now();
        let mut c = Client::connect(proxy.addr());
        c.stream()
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        c.send(format!("GET /refused/{i} HTTP/1.1\r\nHost: app\r\n\r\n").as_bytes());
        let r = c
            .try_response()
            .unwrap_or_else(|e| panic!("no answer within 5 s: {e}"));
        assert_eq!(r.status, 502, "{r:?}");
        eprintln!("502 after {:?}", started.elapsed());
    }
    assert_eq!(backend.record.count(), 0, "no request reached the backend");
    assert!(backend.accepted() >= 1, "the proxy did connect");
    let line = proxy.wait_for_log("TLS failed", Duration::from_secs(5));
    eprintln!("log: {line}");
    assert!(
        line.contains(&backend.url()),
        "{line:?} names {}",
        backend.url()
    );
    assert!(
        line.to_ascii_lowercase().contains(reason),
        "{line:?} gives the reason ({reason})"
    );
}

// Proves a backend whose certificate is signed by a CA the proxy does not trust gets a prompt
// 502 (no hang, no request forwarded) and a log line naming the backend and the reason.
#[test]
fn https_backend_with_an_untrusted_certificate_gives_502() {
    let dir = TempDir::new("wrong-ca");
    let trusted = TestCa::new("the CA the proxy trusts");
    let actual = TestCa::new("the CA that signed the backend");
    let ca_file = dir.write("ca.pem", trusted.pem());
    let backend = TlsBackend::start(actual.issue(&["127.0.0.1"]).server_config());
    assert_refused_backend(
        &backend,
        json!({"ca_file": path_text(&ca_file)}),
        "issuer",
        "wrong-ca",
    );
}

// Proves a backend presenting a trusted certificate for another name (`other.test` for
// `https://127.0.0.1:PORT`) gets a prompt 502 and a log line naming the backend and the reason.
#[test]
fn https_backend_with_a_certificate_for_another_name_gives_502() {
    let dir = TempDir::new("wrong-name");
    let ca = TestCa::new("backend CA");
    let ca_file = dir.write("ca.pem", ca.pem());
    let backend = TlsBackend::start(ca.issue(&["other.test"]).server_config());
    assert_refused_backend(
        &backend,
        json!({"ca_file": path_text(&ca_file)}),
        "name",
        "wrong-name",
    );
}

// Proves `tls_skip_verify: true` accepts a backend whose certificate the CA file would refuse.
#[test]
fn https_backend_with_skip_verify_accepts_an_untrusted_certificate() {
    let dir = TempDir::new("skip-verify");
    let trusted = TestCa::new("the CA the proxy trusts");
    let actual = TestCa::new("the CA that signed the backend");
    let ca_file = dir.write("ca.pem", trusted.pem());
    let backend = TlsBackend::start(actual.issue(&["other.test"]).server_config());
    let proxy = proxy_to(
        json!({"url": backend.url(), "ca_file": path_text(&ca_file), "tls_skip_verify": true}),
        json!({}),
    );
    let r = proxy.get("/skip");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "tls backend saw /skip"),
        "{r:?}"
    );
    assert_eq!(backend.record.count(), 1);
}

// ----------------------------------------------------------------------------- handshake timeout

// Proves a handshake that stalls is cut at `tls_handshake_timeout` (500 ms here): a client that
// sends half a ClientHello and one that sends nothing are both closed, not before 90 % of it nor
// long after; both count as handshake failures; a real client is served meanwhile.
//
// The timer starts when ferrule accepts the connection. The listener sets TCP_DEFER_ACCEPT (1 s,
// `listener.rs`), so the kernel hands over a connection that sends nothing only after about
// 1 s: the silent client is closed about 1.5 s after its connect, the other about 0.5 s after.
#[test]
fn stalled_handshakes_are_closed_at_tls_handshake_timeout() {
    const TIMEOUT: Duration = Duration::from_millis(500);
    const SLACK: Duration = Duration::from_secs(5);
    const DEFER_ACCEPT: Duration = Duration::from_secs(1);
    let pki = pki("stall");
    let backend = Backend::start("stall");
    let proxy = tls_proxy(
        &[backend.addr],
        pki.files.ssl(),
        json!({"tls_handshake_timeout": "500ms"}),
    );

    let mut hello = Vec::new();
    let mut conn = rustls::ClientConnection::new(
        pki.client(ANY_VERSION),
        "localhost".try_into().expect("name"),
    )
    .expect("client connection");
    conn.write_tls(&mut hello).expect("a ClientHello");
    assert!(hello.len() > 100, "{} bytes of ClientHello", hello.len());

    let addr = proxy.addr();
    let half = hello[..hello.len() / 2].to_vec();
    // each waits for its own close, measured from just before its connect
    let (half_took, silent_took) = thread::scope(|scope| {
        let half = scope.spawn(move || {
            let started = Instant::now();
            let mut s = tcp_connect(addr, IO_TIMEOUT);
            s.write_all(&half).expect("half a ClientHello");
            let seen = read_until_closed(&mut s, TIMEOUT + SLACK);
            assert!(!seen.starts_with(b"HTTP/"), "{seen:?}");
            started.elapsed()
        });
        let silent = scope.spawn(move || {
            let started = Instant::now();
            let mut s = tcp_connect(addr, IO_TIMEOUT);
            let seen = read_until_closed(&mut s, DEFER_ACCEPT + TIMEOUT + SLACK);
            assert!(seen.is_empty(), "{seen:?}");
            started.elapsed()
        });
        // a real client is not held up by them
        let mut ok = pki.connect(addr);
        assert_eq!(ok.get("/meanwhile").status, 200);
        (
            half.join().expect("half a ClientHello"),
            silent.join().expect("silent"),
        )
    });
    eprintln!("closed after {half_took:?} (half a ClientHello), {silent_took:?} (silent)");
    for (what, took, upper) in [
        ("half a ClientHello", half_took, TIMEOUT + SLACK),
        ("silent", silent_took, DEFER_ACCEPT + TIMEOUT + SLACK),
    ] {
        assert!(
            took >= TIMEOUT.mul_f64(0.9),
            "{what}: closed after {took:?}, before the {TIMEOUT:?} timeout"
        );
        assert!(took < upper, "{what}: closed only after {took:?}");
    }
    assert_eq!(tls_counters(&proxy), (1, 2), "1 handshake, 2 failures");
    assert_eq!(pki.connect(addr).get("/after").status, 200);
}

// ----------------------------------------------------------------------------- plain HTTP

// Proves plain HTTP sent to the TLS port gets a plain `400` saying so and a close, and garbage
// bytes just a close (never an HTTP answer), while TLS clients of the same proxy, one opened
// before and new ones, are served normally throughout, including concurrently.
#[test]
fn plain_http_and_garbage_on_the_tls_port_do_not_disturb_tls_clients() {
    let pki = pki("plain-http");
    let backend = target_backend();
    let proxy = tls_proxy(&[backend.addr], pki.files.ssl(), json!({}));
    let addr = proxy.addr();
    let mut before = pki.connect(addr);
    assert_eq!(before.get("/first").text(), "answer to /first");

    let noise = thread::spawn(move || {
        for i in 0..10 {
            let mut c = Client::connect(addr);
            c.send(format!("GET /plain/{i} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
            let r = c.response();
            assert_eq!(r.status, 400, "{r:?}");
            assert!(
                r.text()
                    .contains("The plain HTTP request was sent to HTTPS port"),
                "{:?}",
                r.text()
            );
            assert!(r.closes(), "{r:?}");
            assert!(c.is_closed(), "closed after the 400");

            let mut g = tcp_connect(addr, IO_TIMEOUT);
            g.write_all(b"\x00\x01\x02\x03 not TLS, not HTTP \xff\xfe\r\n\r\n")
                .expect("send garbage");
            let seen = read_until_closed(&mut g, IO_TIMEOUT);
            assert!(!seen.starts_with(b"HTTP/"), "garbage got {seen:?}");
        }
    });
    for i in 0..10 {
        assert_eq!(
            before.get(&format!("/during/{i}")).text(),
            format!("answer to /during/{i}")
        );
        let mut fresh = pki.connect(addr);
        assert_eq!(fresh.get("/fresh").status, 200);
    }
    noise.join().expect("the plain and garbage clients");
    assert_eq!(before.get("/last").text(), "answer to /last");
    let (_, failures) = tls_counters(&proxy);
    assert_eq!(
        failures, 20,
        "each plain and garbage connection is a failed handshake"
    );
    assert!(
        backend
            .record
            .requests()
            .iter()
            .all(|s| !s.target.starts_with("/plain")),
        "no plain request was forwarded"
    );
}

// ----------------------------------------------------------------------------- redirect

/// Starts a TLS proxy with `ssl.redirect_http_port` on a port that was free a moment ago
/// ([`free_ports`]). The port is known only once a listener bound to port 0 is dropped, so
/// someone else may take it before ferrule binds it: then `start` fails with `Bind` on that port,
/// and this tries another (a few times). Such a failed start leaves its workers running (see
/// `failed_start_leaves_nothing_serving` below): harmless here, they serve a port nobody uses.
fn proxy_with_redirect(pki: &Pki, backend: SocketAddr) -> (Proxy, u16) {
    for _ in 0..5 {
        let [port] = free_ports::<1>();
        let mut ssl = pki.files.ssl();
        ssl["redirect_http_port"] = json!(port);
        let config = json!({
            "port": 0,
            "admin_port": 0,
            "bind": "127.0.0.1",
            "workers": 1,
            "backends": [{"url": format!("http://{backend}")}],
            "ssl": ssl,
        });
        let config = ferrule::Config::from_json_str(&config.to_string()).expect("valid config");
        match ferrule::start(&config) {
            Ok(handle) => return (Proxy { handle }, port),
            Err(ferrule::StartError::Bind { addr, .. }) if addr.port() == port => continue,
            Err(e) => panic!("the proxy does not start: {e}"),
        }
    }
    panic!("no free port for redirect_http_port in 5 tries");
}

// Proves `ssl.redirect_http_port` answers plain HTTP with `308` to the same target on the TLS
// port of the Host it was asked for (a port in Host replaced), and `400` when there is no Host;
// nothing reaches the backend.
#[test]
fn redirect_http_port_answers_308_to_https() {
    let pki = pki("redirect");
    let backend = Backend::start("redirect");
    let (proxy, port) = proxy_with_redirect(&pki, backend.addr);
    let redirect = proxy.handle.redirect_addr().expect("a redirect listener");
    assert_eq!(redirect.port(), port);
    let tls_port = proxy.addr().port();

    for host in ["example.test", &format!("example.test:{port}")] {
        let mut c = Client::connect(redirect);
        c.send(
            format!("GET /some/path?x=1&y=2 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        let r = c.response();
        assert_eq!(r.status, 308, "Host {host}: {r:?}");
        assert_eq!(
            r.header("location"),
            Some(format!("https://example.test:{tls_port}/some/path?x=1&y=2").as_str()),
            "Host {host}"
        );
    }
    // a huge declared body is never read (tiny_http, used here before, allocated it and aborted
    // the whole proxy)
    let mut c = Client::connect(redirect);
    c.send(b"POST /big HTTP/1.1\r\nHost: example.test\r\nContent-Length: 100000000000\r\n\r\n");
    assert_eq!(c.response().status, 308);
    let mut c = Client::connect(redirect);
    c.send(b"POST /form HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc");
    let r = c.response();
    assert_eq!(r.status, 308, "{r:?}");
    assert_eq!(
        r.header("location"),
        Some(format!("https://127.0.0.1:{tls_port}/form").as_str())
    );

    for request in [
        &b"GET /x HTTP/1.0\r\n\r\n"[..],
        b"GET /x HTTP/1.1\r\nConnection: close\r\n\r\n",
    ] {
        let mut c = Client::connect(redirect);
        c.send(request);
        let r = c.response();
        assert_eq!(
            r.status,
            400,
            "{:?}: {r:?}",
            String::from_utf8_lossy(request)
        );
    }
    // the TLS port itself serves
    assert_eq!(pki.connect(proxy.addr()).get("/tls").status, 200);
    assert_eq!(
        backend.record.count(),
        1,
        "only the TLS request reached the backend"
    );
}

// Proves the redirect listener is served by the workers: hundreds of idle connections on it
// (more than the 64 slots of the admin-style server that used to serve it) keep no new client
// from its 308, and each idle one is still answered when it finally speaks.
#[test]
fn idle_connections_on_the_redirect_port_never_delay_a_new_client() {
    let pki = pki("redirect-idle");
    let backend = Backend::start("redirect-idle");
    let (proxy, _) = proxy_with_redirect(&pki, backend.addr);
    let redirect = proxy.handle.redirect_addr().expect("a redirect listener");
    let idle: Vec<std::net::TcpStream> = (0..300)
        .map(|_| std::net::TcpStream::connect(redirect).expect("connect"))
        .collect();
    let mut c = Client::connect(redirect);
    c.send(b"GET /now HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 308, "{r:?}");
    assert!(r.header("date").is_some(), "{r:?}");
    assert!(r.header("strict-transport-security").is_none(), "{r:?}");
    // the first idle connection speaks last: it was kept, not closed
    let mut first = idle.into_iter().next().expect("one");
    first.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    first
        .write_all(b"GET /late HTTP/1.1\r\nHost: example.test\r\n\r\n")
        .expect("send");
    let late = read_response(&mut std::io::BufReader::new(first), false).expect("an answer");
    assert_eq!(late.status, 308);
}

// ----------------------------------------------------------------------------- resumption

// Proves TLS session resumption: with the same client config, connections after the first
// resume (TLS 1.3 with tickets, TLS 1.2 with tickets or session ids), whichever worker accepts
// them, and are served.
#[test]
fn sessions_resume_with_tls13_and_tls12() {
    let pki = pki("resumption");
    let backend = Backend::start("resume");
    let proxy = tls_proxy(&[backend.addr], pki.files.ssl(), json!({}));

    for (versions, label) in [(TLS13, "TLS 1.3"), (TLS12, "TLS 1.2")] {
        let config = pki.client(versions);
        let mut first = TlsClient::connect(proxy.addr(), &config, "localhost");
        assert_eq!(
            first.conn().handshake_kind(),
            Some(HandshakeKind::Full),
            "{label}"
        );
        // reading a response makes sure the tickets sent after the handshake were taken in
        assert_eq!(first.get("/first").status, 200);
        for i in 0..4 {
            let mut again = TlsClient::connect(proxy.addr(), &config, "localhost");
            assert_eq!(
                again.conn().handshake_kind(),
                Some(HandshakeKind::Resumed),
                "{label}: connection {} resumes",
                i + 2
            );
            assert_eq!(again.get(&format!("/again/{i}")).status, 200, "{label}");
        }
    }
}

// ----------------------------------------------------------------------------- closing and failing
//
// These three found bugs (close_notify was not taken as the end of the client's stream, and a
// start that failed late left its workers serving); each failed before its fix.

// Proves a TLS client ending its side of a tunnel with close_notify ends the tunnel: the backend
// is told (FIN), closes, and the close comes back. Alone (RFC 8446 §6.1: no more data will come,
// as a FIN says), and followed at once by a FIN, the usual way TLS clients close (rustls,
// OpenSSL's `SSL_shutdown` then `close`, browsers).
#[test]
fn tunnel_ends_when_the_tls_client_sends_close_notify() {
    let pki = pki("tunnel-close-notify");
    let backend = UpgradeBackend::start();
    let proxy = tls_proxy(&[backend.addr], pki.files.ssl(), json!({}));
    for fin in [false, true] {
        let mut c = tls_tunnel(&pki, &proxy);
        close_politely(&mut c, fin);
        assert!(
            c.is_closed(),
            "the tunnel is still open {IO_TIMEOUT:?} after the client's close_notify{}",
            if fin { " and FIN" } else { "" }
        );
    }
}

// Proves an idle keep-alive TLS connection that the client closes the TLS way is released at
// once: with close_notify then FIN, and with close_notify alone (RFC 8446 §6.1: the sender
// will send nothing more, so an idle connection is over).
#[test]
fn idle_tls_connection_closed_with_close_notify_is_released() {
    let pki = pki("idle-close-notify");
    let backend = Backend::start("idle");
    let proxy = tls_proxy(&[backend.addr], pki.files.ssl(), json!({}));
    for fin in [false, true] {
        let mut c = pki.connect(proxy.addr());
        assert_eq!(c.get("/").status, 200);
        assert!(open_connections_become(&proxy, 1, IO_TIMEOUT));
        close_politely(&mut c, fin);
        assert!(
            open_connections_become(&proxy, 0, Duration::from_secs(3)),
            "close_notify{}: the connection is still open 3 s later",
            if fin { " and FIN" } else { " alone" }
        );
        assert!(c.is_closed(), "the proxy closed its side too");
    }
}

// Proves a `ferrule::start` that fails late (here: `ssl.redirect_http_port` is taken, after the
// client port was bound) leaves nothing running: the client port is free again and nobody is
// served there. (The client port must be known in advance, so it comes from `free_ports`: if
// someone takes it first, start fails on it instead and this tries another.)
#[test]
fn failed_start_leaves_nothing_serving() {
    let pki = pki("failed-start");
    let backend = Backend::start("failed-start");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("hold a port");
    let taken_port = taken.local_addr().expect("addr").port();
    for _ in 0..5 {
        let [port] = free_ports::<1>();
        let mut ssl = pki.files.ssl();
        ssl["redirect_http_port"] = json!(taken_port);
        let config = json!({
            "port": port,
            "admin_port": 0,
            "bind": "127.0.0.1",
            "workers": 1,
            "backends": [{"url": format!("http://{}", backend.addr)}],
            "ssl": ssl,
        });
        let config = ferrule::Config::from_json_str(&config.to_string()).expect("valid config");
        match ferrule::start(&config) {
            Ok(_) => panic!("start succeeded with redirect_http_port {taken_port} taken"),
            Err(ferrule::StartError::Bind { addr, .. }) if addr.port() == port => continue,
            Err(ferrule::StartError::Bind { addr, .. }) => assert_eq!(addr.port(), taken_port),
            Err(e) => panic!("unexpected error: {e}"),
        }
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
            s.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
            let served = TlsClient::over(s, &pki.client(ANY_VERSION), "localhost")
                .map(|mut c| c.get("/").status);
            panic!(
                "after the failed start, port {port} still accepts connections (a GET over TLS \
                 there: {served:?}; the backend saw {} requests)",
                backend.record.count()
            );
        }
        return;
    }
    panic!("no free client port in 5 tries");
}
