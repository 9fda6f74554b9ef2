//! Who the client is, over real sockets on 127.0.0.1:
//!
//! - `X-Forwarded-For` is believed only from `trusted_proxies`: behind a trusted proxy, two
//!   clients it names are pinned apart by sticky sessions; from an untrusted peer, the same header
//!   changes nothing (both are the peer);
//! - IPv6 clients are grouped by `ipv6_client_prefix` (default /64): addresses of one /64 named
//!   by a trusted proxy share a sticky backend and a consistent-hash bucket, other /64s are other
//!   clients, and a prefix of 128 makes each address a client of its own; an IPv4-mapped address
//!   is its IPv4 address;
//! - `proxy_protocol`: a v1 or v2 header from a trusted peer gives the client's address (the
//!   backend sees it in `X-Forwarded-For`), over plain HTTP and before TLS; a connection without
//!   a valid header, with a malformed one, or from an untrusted peer is closed, and affects no one
//!   else.

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn raw(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// Sends `bytes` on a fresh connection and reads the answer to the end (the request says close).
fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = raw(addr);
    s.write_all(bytes).expect("send");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The backend named in the answer's `X-Backend` field.
fn backend_of(answer: &str) -> String {
    answer
        .lines()
        .find_map(|l| l.strip_prefix("X-Backend: "))
        .unwrap_or_else(|| panic!("no X-Backend in {answer:?}"))
        .to_owned()
}

fn get_as(addr: SocketAddr, forwarded_for: &str) -> String {
    let req = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: {forwarded_for}\r\nConnection: close\r\n\r\n"
    );
    backend_of(&exchange(addr, req.as_bytes()))
}

fn sticky_proxy(backends: &[SocketAddr], trusted: Value) -> Proxy {
    Proxy::start(
        backends,
        json!({"enable_sticky_sessions": true, "trusted_proxies": trusted}),
    )
}

#[test]
fn forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    // behind a trusted proxy (this test, on 127.0.0.1), each named client keeps its backend
    let trusted = sticky_proxy(&[a.addr, b.addr], json!(["127.0.0.1"]));
    let first = get_as(trusted.addr(), "10.0.0.1");
    let second = get_as(trusted.addr(), "10.0.0.2");
    assert_ne!(first, second, "two clients, round-robin: two backends");
    for _ in 0..10 {
        assert_eq!(get_as(trusted.addr(), "10.0.0.1"), first);
        assert_eq!(get_as(trusted.addr(), "10.0.0.2"), second);
        // the right-most untrusted address is the client: a spoofed left part changes nothing
        assert_eq!(get_as(trusted.addr(), "6.6.6.6, 10.0.0.1"), first);
    }
    // from an untrusted peer, both "clients" are 127.0.0.1: one backend for all
    let untrusted = sticky_proxy(&[a.addr, b.addr], json!(["10.9.0.0/16"]));
    let one = get_as(untrusted.addr(), "10.0.0.1");
    for _ in 0..10 {
        assert_eq!(get_as(untrusted.addr(), "10.0.0.2"), one);
        assert_eq!(get_as(untrusted.addr(), "10.0.0.1"), one);
    }
}

/// Addresses of the /64 `2001:db8:1:2::/64`, spread over its interface identifiers.
const ONE_SLASH_64: [&str; 8] = [
    "2001:db8:1:2::1",
    "2001:db8:1:2::2",
    "2001:db8:1:2::ffff",
    "2001:db8:1:2:1::",
    "2001:db8:1:2:8000::1",
    "2001:db8:1:2:dead:beef:1:2",
    "2001:db8:1:2:ffff:ffff:ffff:fffe",
    "2001:db8:1:2:aaaa:bbbb:cccc:dddd",
];

#[test]
fn ipv6_clients_of_one_slash_64_share_a_sticky_backend() {
    let [a, b, c] = ["a", "b", "c"].map(Backend::start);
    let backends = [a.addr, b.addr, c.addr];
    let proxy = Proxy::start(
        &backends,
        json!({"strategy": "round-robin", "enable_sticky_sessions": true,
               "sticky_mode": "ip", "trusted_proxies": ["127.0.0.1"]}),
    );
    let home = get_as(proxy.addr(), ONE_SLASH_64[0]);
    for round in 0..3 {
        for ip in ONE_SLASH_64 {
            assert_eq!(get_as(proxy.addr(), ip), home, "{ip} (round {round})");
        }
    }
    // other /64s (next door, and in another /48) are other clients: round-robin gives each of
    // the first two the next backends in turn, and each keeps its own
    let others = ["2001:db8:1:3::1", "2001:db8:2:2::1"];
    let pins: Vec<String> = others.iter().map(|ip| get_as(proxy.addr(), ip)).collect();
    assert!(!pins.contains(&home), "{pins:?} vs {home}");
    assert_ne!(pins[0], pins[1]);
    for (ip, pin) in others.iter().zip(&pins) {
        let sibling = ip.replace("::1", "::abcd");
        assert_eq!(&get_as(proxy.addr(), &sibling), pin, "{sibling}");
    }
    // IPv4 clients are their address; an IPv4-mapped one is the same client
    let v4 = get_as(proxy.addr(), "192.0.2.7");
    assert_eq!(get_as(proxy.addr(), "::ffff:192.0.2.7"), v4);
    assert_ne!(
        get_as(proxy.addr(), "192.0.2.8"),
        v4,
        "the next address, the next turn"
    );

    // with a prefix of 128, every address is a client: round-robin moves on for each new one
    let whole = Proxy::start(
        &backends,
        json!({"strategy": "round-robin", "enable_sticky_sessions": true,
               "sticky_mode": "ip", "trusted_proxies": ["127.0.0.1"],
               "ipv6_client_prefix": 128}),
    );
    let firsts: Vec<String> = ONE_SLASH_64[..3]
        .iter()
        .map(|ip| get_as(whole.addr(), ip))
        .collect();
    let distinct: std::collections::HashSet<&String> = firsts.iter().collect();
    assert_eq!(distinct.len(), 3, "{firsts:?}");
    for (ip, first) in ONE_SLASH_64[..3].iter().zip(&firsts) {
        assert_eq!(&get_as(whole.addr(), ip), first, "{ip} keeps its own");
    }
}

#[test]
fn ipv6_clients_of_one_slash_64_hash_to_one_backend() {
    let backends: Vec<Backend> = ["a", "b", "c", "d"].map(Backend::start).into();
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let proxy = Proxy::start(
        &addrs,
        json!({"strategy": "consistent-hash", "hash_key": "client_ip",
               "trusted_proxies": ["127.0.0.1"]}),
    );
    let owner = get_as(proxy.addr(), ONE_SLASH_64[0]);
    for ip in ONE_SLASH_64 {
        assert_eq!(get_as(proxy.addr(), ip), owner, "{ip}");
    }
    // /64s are keys of their own: 16 of them reach more than one backend, each its own always
    let mut seen = std::collections::HashSet::new();
    for n in 0..16u16 {
        let net = format!("2001:db8:7:{n:x}");
        let first = get_as(proxy.addr(), &format!("{net}::1"));
        assert_eq!(
            get_as(proxy.addr(), &format!("{net}:ffff::9")),
            first,
            "{net}::/64"
        );
        seen.insert(first);
    }
    assert!(seen.len() > 1, "16 networks on one backend: {seen:?}");
    // a /48 prefix: the /64s of one /48 are one key
    let wide = Proxy::start(
        &addrs,
        json!({"strategy": "consistent-hash", "trusted_proxies": ["127.0.0.1"],
               "ipv6_client_prefix": 48}),
    );
    let owner = get_as(wide.addr(), "2001:db8:7::1");
    for n in 0..16u16 {
        let ip = format!("2001:db8:7:{n:x}::1");
        assert_eq!(get_as(wide.addr(), &ip), owner, "{ip}");
    }
}

fn proxy_protocol(backends: &[SocketAddr], trusted: Value) -> Proxy {
    Proxy::start(
        backends,
        json!({"proxy_protocol": true, "trusted_proxies": trusted}),
    )
}

const GET: &[u8] = b"GET /pp HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

fn with_header(header: &[u8]) -> Vec<u8> {
    let mut v = header.to_vec();
    v.extend_from_slice(GET);
    v
}

/// A v2 PROXY header for TCP over IPv4 from `src` to `dst`.
fn v2_header(src: [u8; 4], src_port: u16, dst: [u8; 4], dst_port: u16) -> Vec<u8> {
    let mut v = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    v.push(0x21); // version 2, PROXY
    v.push(0x11); // AF_INET, STREAM
    v.extend_from_slice(&12u16.to_be_bytes());
    v.extend_from_slice(&src);
    v.extend_from_slice(&dst);
    v.extend_from_slice(&src_port.to_be_bytes());
    v.extend_from_slice(&dst_port.to_be_bytes());
    v
}

#[test]
fn proxy_protocol_v1_and_v2_give_the_client_address() {
    let backend = Backend::start("pp");
    let proxy = proxy_protocol(&[backend.addr], json!(["127.0.0.1"]));
    let answer = exchange(
        proxy.addr(),
        &with_header(b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n"),
    );
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    let answer = exchange(
        proxy.addr(),
        &with_header(&v2_header([198, 51, 100, 9], 4000, [192, 0, 2, 1], 443)),
    );
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    let answer = exchange(
        proxy.addr(),
        &with_header(b"PROXY TCP6 2001:db8::5 2001:db8::1 1111 443\r\n"),
    );
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    // UNKNOWN: the connection's own address
    let answer = exchange(proxy.addr(), &with_header(b"PROXY UNKNOWN\r\n"));
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    let seen: Vec<String> = backend
        .record
        .requests()
        .iter()
        .map(|s| s.header("x-forwarded-for").unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        seen,
        ["203.0.113.7", "198.51.100.9", "2001:db8::5", "127.0.0.1"]
    );
}

#[test]
fn a_header_split_over_several_writes_is_still_read() {
    let backend = Backend::start("pp");
    let proxy = proxy_protocol(&[backend.addr], json!(["127.0.0.1"]));
    let mut s = raw(proxy.addr());
    let whole = with_header(b"PROXY TCP4 203.0.113.8 192.0.2.1 51234 443\r\n");
    for piece in whole.chunks(7) {
        s.write_all(piece).expect("send");
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(
        out.starts_with(b"HTTP/1.1 200 "),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(
        backend.record.requests()[0].header("x-forwarded-for"),
        Some("203.0.113.8")
    );
}

#[test]
fn missing_malformed_or_untrusted_proxy_headers_are_closed() {
    let backend = Backend::start("pp");
    let proxy = proxy_protocol(&[backend.addr], json!(["127.0.0.1"]));
    let bad: [&[u8]; 6] = [
        GET, // no header at all
        b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n",
        b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
        b"PROXY TCP9 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x2f\x11\x00\x0c",
    ];
    for header in bad {
        let mut bytes = header.to_vec();
        if header != GET {
            bytes.extend_from_slice(GET);
        }
        let answer = exchange(proxy.addr(), &bytes);
        assert!(answer.is_empty(), "{header:?} got {answer:?}");
    }
    // the proxy still serves everyone else
    let answer = exchange(
        proxy.addr(),
        &with_header(b"PROXY TCP4 203.0.113.9 192.0.2.1 1 2\r\n"),
    );
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert_eq!(backend.record.count(), 1);

    // a peer outside trusted_proxies is closed, header or not
    let picky = proxy_protocol(&[backend.addr], json!(["10.0.0.0/8"]));
    let answer = exchange(
        picky.addr(),
        &with_header(b"PROXY TCP4 203.0.113.9 192.0.2.1 1 2\r\n"),
    );
    assert!(answer.is_empty(), "{answer:?}");
    assert_eq!(backend.record.count(), 1);
}

#[test]
fn the_proxy_header_comes_before_tls() {
    use common::tls::{any_cert_client_config, TestCa, TlsClient};
    use common::TempDir;
    let dir = TempDir::new("pp-tls");
    let ca = TestCa::new("pp CA");
    let files = ca.issue(&["localhost"]).write(&dir, "server");
    let backend = Backend::start("pp");
    let mut extra = json!({"proxy_protocol": true, "trusted_proxies": ["127.0.0.1"]});
    extra["ssl"] = files.ssl();
    let proxy = Proxy::start(&[backend.addr], extra);
    let mut sock = raw(proxy.addr());
    sock.write_all(b"PROXY TCP4 203.0.113.10 192.0.2.1 1 443\r\n")
        .expect("send");
    let mut c = TlsClient::over(sock, &any_cert_client_config(true), "localhost").expect("tls");
    assert_eq!(c.get("/over-tls").status, 200);
    let seen = backend.record.requests();
    assert_eq!(seen[0].header("x-forwarded-for"), Some("203.0.113.10"));
    assert_eq!(seen[0].header("x-forwarded-proto"), Some("https"));
}
