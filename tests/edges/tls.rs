//! TLS as a scanner sees it: the server's cipher order wins, strongest first; `ssl.hsts` adds
//! `Strict-Transport-Security` to responses over TLS (forwarded and ferrule's own) unless the
//! backend set one, and is off by default; the plain-HTTP answer on the TLS port is dated and
//! carries no HSTS.

use std::sync::Arc;

use rustls::crypto::aws_lc_rs::cipher_suite as cs;
use rustls::crypto::CryptoProvider;
use rustls::{CipherSuite, ClientConfig, SupportedCipherSuite, SupportedProtocolVersion};
use serde_json::json;

use super::{fresh_date, unix_now};
use crate::common::tls::*;
use crate::common::{ok_response, Backend, Client, Reply};

/// A client trusting `pki`'s CA that offers `suites`, in that order, over `versions`.
fn offering(
    pki: &Pki,
    suites: &[SupportedCipherSuite],
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let provider = CryptoProvider {
        cipher_suites: suites.to_vec(),
        ..rustls::crypto::aws_lc_rs::default_provider()
    };
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(pki.ca.roots())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

#[test]
fn the_servers_cipher_order_wins_strongest_first() {
    let pki = pki("cipher-order");
    let backend = Backend::start("b");
    let proxy = tls_proxy(&[backend.addr], pki.files.ssl(), json!({}));
    // the test CA's keys are ECDSA: the TLS 1.2 suites are the ECDHE_ECDSA ones
    for (versions, offered, chosen) in [
        (
            TLS13,
            vec![
                cs::TLS13_AES_128_GCM_SHA256,
                cs::TLS13_CHACHA20_POLY1305_SHA256,
                cs::TLS13_AES_256_GCM_SHA384,
            ],
            CipherSuite::TLS13_AES_256_GCM_SHA384,
        ),
        (
            TLS13,
            vec![
                cs::TLS13_AES_128_GCM_SHA256,
                cs::TLS13_CHACHA20_POLY1305_SHA256,
            ],
            CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
        ),
        (
            TLS12,
            vec![
                cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            ],
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            TLS12,
            vec![
                cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            ],
            CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
    ] {
        let config = offering(&pki, &offered, versions);
        let mut c = TlsClient::connect(proxy.addr(), &config, "localhost");
        assert_eq!(c.get("/").status, 200);
        let got = c.conn().negotiated_cipher_suite().map(|s| s.suite());
        assert_eq!(got, Some(chosen), "client offered {offered:?}");
    }
}

#[test]
fn hsts_is_added_over_tls_to_forwarded_and_own_answers_unless_the_backend_set_one() {
    let pki = pki("hsts");
    let plain = Backend::start("plain");
    let own = Backend::with_handler("own", |_, _| {
        let mut reply = ok_response("own", b"hi");
        let at = reply
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("status line")
            + 2;
        reply.splice(at..at, b"Strict-Transport-Security: max-age=5\r\n".to_vec());
        Reply::Bytes(reply)
    });
    let mut ssl = pki.files.ssl();
    ssl["hsts"] = json!({"max_age": "1h", "include_subdomains": true});
    let wanted = ["max-age=3600; includeSubDomains"];

    // a forwarded response, and a canned 503 (no backend available)
    let proxy = tls_proxy(&[plain.addr], ssl.clone(), json!({}));
    let since = unix_now();
    let r = pki.connect(proxy.addr()).get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.headers_named("strict-transport-security"), wanted);
    fresh_date(&r, since);
    let empty = tls_proxy(&[], ssl.clone(), json!({}));
    let r = pki.connect(empty.addr()).get("/");
    assert_eq!(r.status, 503);
    assert_eq!(r.headers_named("strict-transport-security"), wanted);
    fresh_date(&r, since);
    // a canned 400
    let mut c = pki.connect(proxy.addr());
    c.send(b"GET / HTTP/1.1\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 400);
    assert_eq!(r.headers_named("strict-transport-security"), wanted);

    // the backend's own goes on alone and unchanged
    let proxy = tls_proxy(&[own.addr], ssl, json!({}));
    let r = pki.connect(proxy.addr()).get("/");
    assert_eq!(r.headers_named("strict-transport-security"), ["max-age=5"]);

    // off by default
    let proxy = tls_proxy(&[plain.addr], pki.files.ssl(), json!({}));
    let r = pki.connect(proxy.addr()).get("/");
    assert!(r.headers_named("strict-transport-security").is_empty());
    fresh_date(&r, since);
}

#[test]
fn the_plain_http_answer_on_the_tls_port_is_dated_without_hsts() {
    let pki = pki("plain-dated");
    let mut ssl = pki.files.ssl();
    ssl["hsts"] = json!({});
    let proxy = tls_proxy(&[], ssl, json!({}));
    let since = unix_now();
    let mut c = Client::connect(proxy.addr());
    c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 400);
    assert!(r
        .text()
        .contains("plain HTTP request was sent to HTTPS port"));
    fresh_date(&r, since);
    assert!(r.headers_named("strict-transport-security").is_empty());
}
