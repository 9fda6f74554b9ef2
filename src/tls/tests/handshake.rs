//! Real handshakes, no sockets: a rustls `ClientConnection` and `ServerConnection` pass their
//! bytes to each other in memory. They prove the configs made by `tls` negotiate, verify,
//! select by SNI, reload and resume.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use rcgen::KeyPair;
use rustls::client::{Resumption, Tls12Resumption};
use rustls::pki_types::ServerName;
use rustls::{
    ClientConfig, ClientConnection, HandshakeKind, ProtocolVersion, RootCertStore, ServerConnection,
};

use super::{write_pair, Ca, TempDir};
use crate::tls::{
    certs, client_config, handshake_failure_reason, provider, server_name, CertPair, ClientConfigs,
    ServerTls, TlsError,
};

/// Which side refused the handshake, and why.
#[derive(Debug)]
enum Failed {
    Client(rustls::Error),
    Server(rustls::Error),
}

impl Failed {
    /// The client's error, as the transport would log it.
    #[track_caller]
    fn client_reason(self) -> String {
        match self {
            Failed::Client(e) => handshake_failure_reason(&e),
            Failed::Server(e) => panic!("the server failed first: {e}"),
        }
    }
}

/// Moves bytes both ways until neither side has anything to send and both are done
/// handshaking (so TLS 1.3 tickets, sent after the handshake, reach the client too).
fn pump(client: &mut ClientConnection, server: &mut ServerConnection) -> Result<(), Failed> {
    for _ in 0..32 {
        let mut moved = false;
        let mut bytes = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut bytes).expect("client write_tls");
        }
        let mut rd = &bytes[..];
        while !rd.is_empty() {
            moved = true;
            server.read_tls(&mut rd).expect("server read_tls");
            server.process_new_packets().map_err(Failed::Server)?;
        }
        bytes.clear();
        while server.wants_write() {
            server.write_tls(&mut bytes).expect("server write_tls");
        }
        let mut rd = &bytes[..];
        while !rd.is_empty() {
            moved = true;
            client.read_tls(&mut rd).expect("client read_tls");
            client.process_new_packets().map_err(Failed::Client)?;
        }
        if !moved {
            assert!(
                !client.is_handshaking() && !server.is_handshaking(),
                "handshake stalled"
            );
            return Ok(());
        }
    }
    panic!("handshake did not finish in 32 rounds");
}

fn connect(
    config: &Arc<ClientConfig>,
    name: &str,
    server: &ServerTls,
) -> Result<(ClientConnection, ServerConnection), Failed> {
    let name = server_name(name).expect("server name");
    let mut client = ClientConnection::new(Arc::clone(config), name).expect("client");
    let mut server = ServerConnection::new(server.config()).expect("server");
    pump(&mut client, &mut server)?;
    Ok((client, server))
}

/// The leaf certificate the client was given.
fn served(client: &ClientConnection) -> Vec<u8> {
    client.peer_certificates().expect("peer certificates")[0].to_vec()
}

/// A client that speaks only TLS 1.2, trusting `ca_file`.
fn tls12_client(ca_file: &Path, resumption: Tls12Resumption) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in certs::load_certificates(ca_file).expect("CA file") {
        roots.add(cert).expect("CA");
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("TLS 1.2")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = Resumption::in_memory_sessions(16).tls12_resumption(resumption);
    Arc::new(config)
}

/// A CA (written as `ca.pem`) and a server for `localhost` and 127.0.0.1 that it signed.
struct Fixture {
    dir: TempDir,
    ca_file: std::path::PathBuf,
    server: ServerTls,
}

fn fixture(name: &str) -> Fixture {
    let dir = TempDir::new(name);
    let ca = Ca::new("handshake CA");
    let ca_file = dir.write("ca.pem", ca.cert.pem());
    let pair = ca.pair(&dir, "server", &["localhost", "127.0.0.1"]);
    let (server, warnings) = ServerTls::new(&[pair]).expect("server");
    assert!(warnings.is_empty(), "{warnings:?}");
    Fixture {
        dir,
        ca_file,
        server,
    }
}

#[test]
fn tls13_and_tls12_negotiate_http11_verified_against_the_ca() {
    let f = fixture("negotiate");
    let client = client_config(Some(&f.ca_file), false).expect("client config");
    for name in ["localhost", "127.0.0.1"] {
        let (c, s) = connect(&client, name, &f.server).expect(name);
        assert_eq!(c.protocol_version(), Some(ProtocolVersion::TLSv1_3));
        assert_eq!(c.alpn_protocol(), Some(&b"http/1.1"[..]));
        assert_eq!(s.alpn_protocol(), Some(&b"http/1.1"[..]));
    }
    let tls12 = tls12_client(&f.ca_file, Tls12Resumption::SessionIdOrTickets);
    let (c, s) = connect(&tls12, "localhost", &f.server).expect("TLS 1.2");
    assert_eq!(c.protocol_version(), Some(ProtocolVersion::TLSv1_2));
    assert_eq!(s.protocol_version(), Some(ProtocolVersion::TLSv1_2));
    assert_eq!(c.alpn_protocol(), Some(&b"http/1.1"[..]));
}

#[test]
fn alpn_offers_h2_first_then_http11_and_http11_alone_without_http2() {
    let f = fixture("alpn");
    let mut no_alpn = (*client_config(Some(&f.ca_file), false).expect("config")).clone();
    no_alpn.alpn_protocols.clear();
    let (c, _) = connect(&Arc::new(no_alpn.clone()), "localhost", &f.server).expect("no ALPN");
    assert_eq!(c.alpn_protocol(), None);

    let mut both = no_alpn.clone();
    both.alpn_protocols = vec![b"http/1.1".to_vec(), b"h2".to_vec()];
    let (c, _) = connect(&Arc::new(both.clone()), "localhost", &f.server).expect("both");
    assert_eq!(
        c.alpn_protocol(),
        Some(&b"h2"[..]),
        "the server's order wins"
    );

    let mut h1_only = no_alpn.clone();
    h1_only.alpn_protocols = vec![b"http/1.1".to_vec()];
    let (c, _) = connect(&Arc::new(h1_only), "localhost", &f.server).expect("http/1.1");
    assert_eq!(c.alpn_protocol(), Some(&b"http/1.1"[..]));

    // `http2: false`: HTTP/1.1 only, and a client that speaks only h2 is refused
    let pair = CertPair::new(
        f.dir.path().join("server.crt"),
        f.dir.path().join("server.key"),
    );
    let (plain, _) = ServerTls::with_alpn(&[pair], false).expect("server");
    let (c, _) = connect(&Arc::new(both), "localhost", &plain).expect("both, no h2");
    assert_eq!(c.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut h2_only = no_alpn;
    h2_only.alpn_protocols = vec![b"h2".to_vec()];
    match connect(&Arc::new(h2_only), "localhost", &plain) {
        Err(Failed::Server(rustls::Error::NoApplicationProtocol)) => {}
        other => panic!("expected no_application_protocol, got {:?}", other.err()),
    }
}

#[test]
fn a_wrong_ca_a_wrong_name_and_an_expired_certificate_fail_with_plain_reasons() {
    let f = fixture("refusals");
    let other_ca = Ca::new("some other CA");
    let other_ca_file = f.dir.write("other-ca.pem", other_ca.cert.pem());
    let wrong_ca = client_config(Some(&other_ca_file), false).expect("config");
    let e = connect(&wrong_ca, "localhost", &f.server).expect_err("untrusted");
    assert_eq!(
        e.client_reason(),
        "certificate is not trusted (unknown issuer)"
    );
    // Mozilla's roots do not know the test CA either.
    let public_roots = client_config(None, false).expect("config");
    let e = connect(&public_roots, "localhost", &f.server).expect_err("untrusted");
    assert_eq!(
        e.client_reason(),
        "certificate is not trusted (unknown issuer)"
    );

    // A certificate for `localhost` only.
    let ca = Ca::new("name CA");
    let ca_file = f.dir.write("name-ca.pem", ca.cert.pem());
    let pair = ca.pair(&f.dir, "name-only", &["localhost"]);
    let (server, _) = ServerTls::new(&[pair]).expect("server");
    let client = client_config(Some(&ca_file), false).expect("config");
    let reason = connect(&client, "127.0.0.1", &server)
        .expect_err("IP not in the certificate")
        .client_reason();
    assert!(
        reason.starts_with("certificate name does not match 127.0.0.1"),
        "{reason}"
    );
    let reason = connect(&client, "other.test", &server)
        .expect_err("name not in the certificate")
        .client_reason();
    assert!(
        reason.starts_with("certificate name does not match other.test"),
        "{reason}"
    );
    assert!(reason.contains("localhost"), "{reason}");

    let key = KeyPair::generate().expect("key");
    let expired = ca.issue_with(&["localhost"], &key, |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 6, 1);
    });
    let pair = write_pair(&f.dir, "expired", &expired, &key.serialize_pem());
    let (server, warnings) = ServerTls::new(&[pair]).expect("expired loads with a warning");
    assert_eq!(warnings.len(), 1);
    let reason = connect(&client, "localhost", &server)
        .expect_err("expired")
        .client_reason();
    assert!(
        reason.starts_with("certificate expired on 2021-06-01"),
        "{reason}"
    );

    // skip_verify takes all three: unknown issuer, wrong name, expired.
    let anything = client_config(None, true).expect("config");
    connect(&anything, "localhost", &f.server).expect("unknown issuer accepted");
    connect(&anything, "wrong.test", &f.server).expect("wrong name accepted");
    connect(&anything, "localhost", &server).expect("expired accepted");
}

#[test]
fn a_second_handshake_with_the_same_client_config_resumes() {
    let f = fixture("resume");
    let tls13 = client_config(Some(&f.ca_file), false).expect("config");
    let tickets = tls12_client(&f.ca_file, Tls12Resumption::SessionIdOrTickets);
    // Session ids only: resumption through the server's stateful cache.
    let session_ids = tls12_client(&f.ca_file, Tls12Resumption::SessionIdOnly);
    for (what, config) in [
        ("TLS 1.3 tickets", &tls13),
        ("TLS 1.2 tickets", &tickets),
        ("TLS 1.2 session ids", &session_ids),
    ] {
        let (first, _) = connect(config, "localhost", &f.server).expect(what);
        assert_eq!(first.handshake_kind(), Some(HandshakeKind::Full), "{what}");
        let (second, _) = connect(config, "localhost", &f.server).expect(what);
        assert_eq!(
            second.handshake_kind(),
            Some(HandshakeKind::Resumed),
            "{what}"
        );
    }
    // Another config has its own (empty) client cache: a full handshake.
    let fresh = client_config(Some(&f.ca_file), false).expect("config");
    let (c, _) = connect(&fresh, "localhost", &f.server).expect("fresh");
    assert_eq!(c.handshake_kind(), Some(HandshakeKind::Full));
}

#[test]
fn sni_picks_the_first_matching_certificate_else_the_default() {
    let dir = TempDir::new("sni");
    let ca = Ca::new("sni CA");
    let pairs = [
        ca.pair(&dir, "default", &["default.test", "127.0.0.1"]),
        ca.pair(&dir, "wild", &["*.example.com"]),
        ca.pair(&dir, "exact", &["exact.example.com", "www.exact.test"]),
        ca.pair(&dir, "upper", &["Other.Test"]),
    ];
    let leaves: Vec<Vec<u8>> = pairs
        .iter()
        .map(|p| certs::load_certificates(&p.cert_file).expect("cert")[0].to_vec())
        .collect();
    let (server, warnings) = ServerTls::new(&pairs).expect("server");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(server.names()[3], ["other.test"]);
    let client = client_config(None, true).expect("config");
    for (name, want) in [
        ("default.test", 0),
        ("a.example.com", 1),
        ("exact.example.com", 1), // the wildcard comes first in the list
        ("www.exact.test", 2),
        ("other.test", 3),
        ("OTHER.Test", 3),
        ("unknown.test", 0),
        ("example.com", 0),
        ("a.b.example.com", 0),
        ("127.0.0.1", 0), // an IP address sends no SNI
    ] {
        let (c, s) = connect(&client, name, &server).expect(name);
        assert_eq!(
            served(&c),
            leaves[want],
            "{name} should get certificate {want}"
        );
        if name == "127.0.0.1" {
            assert_eq!(s.server_name(), None);
        }
    }
}

#[test]
fn reload_swaps_certificates_and_a_bad_reload_keeps_them() {
    let dir = TempDir::new("reload");
    let ca = Ca::new("reload CA");
    let ca_file = dir.write("ca.pem", ca.cert.pem());
    let a = ca.pair(&dir, "a", &["localhost"]);
    let b = ca.pair(&dir, "b", &["localhost"]);
    let leaf = |p: &CertPair| certs::load_certificates(&p.cert_file).expect("cert")[0].to_vec();
    let (server, _) = ServerTls::new(std::slice::from_ref(&a)).expect("server");
    let config = server.config();
    let client = client_config(Some(&ca_file), false).expect("config");

    let (mut open_client, mut open_server) = connect(&client, "localhost", &server).expect("a");
    assert_eq!(served(&open_client), leaf(&a));

    assert_eq!(
        server.reload(std::slice::from_ref(&b)).expect("reload"),
        Vec::<String>::new()
    );
    assert!(
        Arc::ptr_eq(&config, &server.config()),
        "the same ServerConfig"
    );
    // A returning client resumes: the session cache and ticket keys were kept.
    let (c, _) = connect(&client, "localhost", &server).expect("resumed after reload");
    assert_eq!(c.handshake_kind(), Some(HandshakeKind::Resumed));
    let fresh = client_config(Some(&ca_file), false).expect("config");
    let (c, _) = connect(&fresh, "localhost", &server).expect("b");
    assert_eq!(c.handshake_kind(), Some(HandshakeKind::Full));
    assert_eq!(served(&c), leaf(&b));

    // The connection opened before the reload still carries data both ways.
    open_client.writer().write_all(b"ping").expect("write");
    pump(&mut open_client, &mut open_server).expect("pump");
    let mut got = [0u8; 4];
    open_server.reader().read_exact(&mut got).expect("read");
    assert_eq!(&got, b"ping");
    open_server.writer().write_all(b"pong").expect("write");
    pump(&mut open_client, &mut open_server).expect("pump");
    open_client.reader().read_exact(&mut got).expect("read");
    assert_eq!(&got, b"pong");

    let missing = CertPair::new(dir.path().join("gone.crt"), &a.key_file);
    let e = server.reload(&[missing]).expect_err("bad reload");
    assert!(matches!(e, TlsError::NotFound { .. }), "{e:?}");
    let mismatched = CertPair::new(&a.cert_file, &b.key_file);
    let e = server
        .reload(&[b.clone(), mismatched])
        .expect_err("bad second pair");
    assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e:?}");
    let fresh = client_config(Some(&ca_file), false).expect("config");
    let (c, _) = connect(&fresh, "localhost", &server).expect("still b");
    assert_eq!(served(&c), leaf(&b));
}

#[test]
fn client_configs_are_shared_per_ca_file_and_skip_verify() {
    let f = fixture("configs");
    let other = f.dir.write("other.pem", Ca::new("other").cert.pem());
    let configs = ClientConfigs::new();
    let a = configs.get(Some(&f.ca_file), false).expect("a");
    assert!(Arc::ptr_eq(
        &a,
        &configs.get(Some(&f.ca_file), false).expect("a")
    ));
    let b = configs.get(Some(&other), false).expect("b");
    assert!(!Arc::ptr_eq(&a, &b));
    let public = configs.get(None, false).expect("public roots");
    assert!(!Arc::ptr_eq(&a, &public));
    let skip = configs.get(None, true).expect("skip");
    assert!(Arc::ptr_eq(
        &skip,
        &configs.get(Some(&f.ca_file), true).expect("skip")
    ));
    assert_eq!(a.alpn_protocols, [b"http/1.1".to_vec()]);

    // One shared config resumes across "connections" made from separate get() calls.
    connect(&a, "localhost", &f.server).expect("first");
    let again = configs.get(Some(&f.ca_file), false).expect("a");
    let (c, _) = connect(&again, "localhost", &f.server).expect("second");
    assert_eq!(c.handshake_kind(), Some(HandshakeKind::Resumed));

    let missing = f.dir.path().join("missing-ca.pem");
    assert!(matches!(
        configs.get(Some(&missing), false),
        Err(TlsError::NotFound { .. })
    ));
    let key_only = f.dir.write(
        "key-only.pem",
        KeyPair::generate().expect("key").serialize_pem(),
    );
    assert!(matches!(
        client_config(Some(&key_only), false),
        Err(TlsError::NoCertificate {
            holds_key: true,
            ..
        })
    ));
    let garbage = f
        .dir
        .write("garbage-ca.pem", super::pem("CERTIFICATE", b"junk"));
    let e = client_config(Some(&garbage), false).expect_err("garbage CA");
    assert!(
        matches!(e, TlsError::BadCertificate { index: 1, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("garbage-ca.pem"), "{e}");
}

#[test]
fn a_renewed_cache_reads_the_ca_files_again() {
    let f = fixture("renewed");
    let other = f.dir.write("other.pem", Ca::new("other").cert.pem());
    let configs = ClientConfigs::new();
    let a = configs.get(Some(&f.ca_file), false).expect("a");
    let b = configs.get(Some(&other), false).expect("b");
    let public = configs.get(None, false).expect("public roots");

    // nothing changed: the very same configs (the pool keeps backends by config)
    let same = configs.renewed();
    assert!(Arc::ptr_eq(
        &a,
        &same.get(Some(&f.ca_file), false).expect("a")
    ));
    assert!(Arc::ptr_eq(
        &public,
        &same.get(None, false).expect("public")
    ));

    // the CA rotated: a new config, trusting the new CA alone
    let rotated = Ca::new("rotated");
    std::fs::write(&f.ca_file, rotated.cert.pem()).expect("rotate the CA file");
    let renewed = configs.renewed();
    let a2 = renewed.get(Some(&f.ca_file), false).expect("a2");
    assert!(!Arc::ptr_eq(&a, &a2));
    assert!(Arc::ptr_eq(
        &b,
        &renewed.get(Some(&other), false).expect("b")
    ));
    let e = connect(&a2, "localhost", &f.server).expect_err("the old CA's leaf");
    assert!(e.client_reason().contains("unknown issuer"));
    // until adopted, the cache in force keeps the old one
    assert!(Arc::ptr_eq(
        &a,
        &configs.get(Some(&f.ca_file), false).expect("a")
    ));
    configs.adopt(renewed);
    assert!(Arc::ptr_eq(
        &a2,
        &configs.get(Some(&f.ca_file), false).expect("a2")
    ));

    // a CA file that no longer loads is an error, not the old config
    std::fs::write(&f.ca_file, "garbage").expect("spoil the CA file");
    let e = configs
        .renewed()
        .get(Some(&f.ca_file), false)
        .expect_err("garbage");
    assert!(e.to_string().contains("ca.pem"), "{e}");
    assert!(Arc::ptr_eq(
        &a2,
        &configs.get(Some(&f.ca_file), false).expect("a2")
    ));
}

#[test]
fn the_server_order_has_rustls_default_suites_strongest_first() {
    let ours: Vec<_> = crate::tls::CIPHER_SUITES
        .iter()
        .map(|s| s.suite())
        .collect();
    let mut defaults: Vec<_> = rustls::crypto::aws_lc_rs::DEFAULT_CIPHER_SUITES
        .iter()
        .map(|s| s.suite())
        .collect();
    let mut sorted = ours.clone();
    sorted.sort_by_key(|s| u16::from(*s));
    defaults.sort_by_key(|s| u16::from(*s));
    assert_eq!(sorted, defaults, "the same suites, none added or lost");
    assert_eq!(provider().cipher_suites.len(), ours.len());
    let f = fixture("order");
    let client = client_config(Some(&f.ca_file), false).expect("client");
    let (_, server) = connect(&client, "localhost", &f.server).expect("handshake");
    assert_eq!(
        server.negotiated_cipher_suite().map(|s| s.suite()),
        Some(rustls::CipherSuite::TLS13_AES_256_GCM_SHA384)
    );
}

#[test]
fn server_names_for_ips_and_dns_names() {
    use std::net::IpAddr;
    let ip = |s: &str| ServerName::IpAddress(s.parse::<IpAddr>().expect("ip").into());
    assert_eq!(server_name("127.0.0.1").expect("v4"), ip("127.0.0.1"));
    assert_eq!(server_name("::1").expect("v6"), ip("::1"));
    assert_eq!(server_name("[::1]").expect("v6 brackets"), ip("::1"));
    assert_eq!(
        server_name("backend.internal").expect("dns"),
        ServerName::try_from("backend.internal").expect("dns")
    );
    for bad in ["", "bad name", "under_score!", "[not-an-ip]"] {
        let e = server_name(bad).expect_err(bad);
        assert!(matches!(e, TlsError::BadServerName { .. }), "{bad}: {e:?}");
    }
}

#[test]
fn failure_reasons_are_short() {
    use rustls::CertificateError as C;
    use rustls::Error as E;
    let reason = |e: E| handshake_failure_reason(&e);
    assert_eq!(
        reason(E::InvalidCertificate(C::UnknownIssuer)),
        "certificate is not trusted (unknown issuer)"
    );
    assert_eq!(
        reason(E::InvalidCertificate(C::Expired)),
        "certificate expired"
    );
    assert_eq!(
        reason(E::InvalidCertificate(C::NotValidForName)),
        "certificate name does not match"
    );
    assert_eq!(
        reason(E::InvalidCertificate(C::NotValidForNameContext {
            expected: server_name("127.0.0.1").expect("ip"),
            presented: vec!["DnsName(\"localhost\")".into()],
        })),
        "certificate name does not match 127.0.0.1 (it is for DnsName(\"localhost\"))"
    );
    assert_eq!(
        reason(E::InvalidCertificate(C::ExpiredContext {
            time: rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                1_700_000_000
            )),
            not_after: rustls::pki_types::UnixTime::since_unix_epoch(
                std::time::Duration::from_secs(1_600_000_000)
            ),
        })),
        "certificate expired on 2020-09-13 12:26:40 UTC"
    );
    assert_eq!(
        reason(E::NoApplicationProtocol),
        "the peer does not speak http/1.1 (ALPN)"
    );
    assert!(
        reason(E::AlertReceived(rustls::AlertDescription::HandshakeFailure))
            .contains("HandshakeFailure")
    );
}
