//! `backends[]`: URLs, duplicates, resolution.

use super::*;

#[test]
fn backend_urls_are_split_and_resolved() {
    let b = backend("http://127.0.0.1:8082");
    assert_eq!(
        b,
        BackendConfig {
            url: "http://127.0.0.1:8082".into(),
            scheme: Scheme::Http,
            host: "127.0.0.1".into(),
            port: 8082,
            addr: "127.0.0.1:8082".parse().unwrap(),
            weight: 1,
            max_conns: None,
        }
    );
    let b = backend("http://127.0.0.1");
    assert_eq!((b.port, b.addr), (80, "127.0.0.1:80".parse().unwrap()));
    let b = backend("https://127.0.0.1/");
    assert_eq!(
        (b.scheme, b.port, b.url.as_str()),
        (Scheme::Https, 443, "https://127.0.0.1/")
    );
    let b = backend("HTTPS://127.0.0.1:8443");
    assert_eq!((b.scheme, b.port), (Scheme::Https, 8443));
    let b = backend("http://[::1]:8082");
    assert_eq!((b.host.as_str(), b.port), ("::1", 8082));
    assert_eq!(b.addr, "[::1]:8082".parse().unwrap());
    let b = backend("https://[::1]");
    assert_eq!((b.host.as_str(), b.port), ("::1", 443));
    let b = backend("http://localhost:8082");
    assert!(b.addr.ip().is_loopback());
    assert_eq!((b.host.as_str(), b.addr.port()), ("localhost", 8082));
}

#[test]
fn backend_url_errors() {
    let cases = [
        (
            "localhost:8082",
            "\"localhost:8082\" must start with http:// or https://",
        ),
        (
            "ftp://127.0.0.1",
            "\"ftp://127.0.0.1\" has unsupported scheme \"ftp\" (use http:// or https://)",
        ),
        (
            "http://127.0.0.1/api",
            "\"http://127.0.0.1/api\": paths are not supported (found \"/api\"; only a \
             trailing \"/\" is allowed)",
        ),
        (
            "http://127.0.0.1?x=1",
            "\"http://127.0.0.1?x=1\": paths are not supported (found \"?x=1\"; only a \
             trailing \"/\" is allowed)",
        ),
        (
            "http://127.0.0.1/#top",
            "\"http://127.0.0.1/#top\": paths are not supported (found \"/#top\"; only a \
             trailing \"/\" is allowed)",
        ),
        (
            "http://user:secret@127.0.0.1",
            "user info (user@host) in backend URLs is not supported",
        ),
        ("http://", "\"http://\": no host"),
        ("http://:8082", "\"http://:8082\": no host"),
        ("http://a b", "\"http://a b\": invalid host \"a b\""),
        (
            "http://127.0.0.1:",
            "\"http://127.0.0.1:\": invalid port \"\" (expected 1 to 65535)",
        ),
        (
            "http://127.0.0.1:0",
            "\"http://127.0.0.1:0\": invalid port \"0\" (expected 1 to 65535)",
        ),
        (
            "http://127.0.0.1:65536",
            "\"http://127.0.0.1:65536\": invalid port \"65536\" (expected 1 to 65535)",
        ),
        (
            "http://127.0.0.1:+80",
            "\"http://127.0.0.1:+80\": invalid port \"+80\" (expected 1 to 65535)",
        ),
        (
            "http://::1:8082",
            "\"http://::1:8082\": IPv6 addresses must be in brackets, as in http://[::1]:8080",
        ),
        (
            "http://[::1",
            "\"http://[::1\": the IPv6 address has no closing \"]\"",
        ),
        (
            "http://[zz]:80",
            "\"http://[zz]:80\": \"zz\" is not an IPv6 address",
        ),
        (
            "http://[::1]8080",
            "\"http://[::1]8080\": unexpected \"8080\" after \"]\"",
        ),
    ];
    for (url, message) in cases {
        rejects(&backends(&[url]), &format!("backends[0].url: {message}"));
    }
    rejects(
        r#"{"backends": [{"weight": 2}]}"#,
        "backends[0].url: missing (every backend needs a url)",
    );
}

#[test]
fn duplicate_backends_name_both_indexes() {
    rejects(
        &backends(&[
            "http://127.0.0.1:8082",
            "http://127.0.0.1:8083",
            "http://127.0.0.1:8082/",
        ]),
        "backends[2].url: \"http://127.0.0.1:8082/\" is the same backend as backends[0] \
         (\"http://127.0.0.1:8082\")",
    );
    rejects(
        &backends(&["http://LOCALHOST", "http://localhost:80"]),
        "backends[1].url: \"http://localhost:80\" is the same backend as backends[0] \
         (\"http://LOCALHOST\")",
    );
    rejects(
        &backends(&["http://[::1]:81", "http://[0:0:0:0:0:0:0:1]:81"]),
        "backends[1].url: \"http://[0:0:0:0:0:0:0:1]:81\" is the same backend as backends[0] \
         (\"http://[::1]:81\")",
    );
    // A different scheme or port is a different backend.
    let config = parse(&backends(&[
        "http://127.0.0.1:8443",
        "https://127.0.0.1:8443",
        "http://127.0.0.1",
    ]));
    assert_eq!(config.pool.backends.len(), 3);
}

#[test]
fn unresolvable_backend_host() {
    rejects(
        &backends(&["http://127.0.0.1:8082", "http://nohost.invalid:8082"]),
        "backends[1].url: cannot resolve \"nohost.invalid\": the \".invalid\" domain never \
         resolves (RFC 6761)",
    );
    rejects_starting(
        &backends(&["https://NoHost.Invalid."]),
        "backends[0].url: cannot resolve \"NoHost.Invalid.\": ",
    );
}

#[test]
fn backend_names_are_resolved_only_once_everything_else_is_valid() {
    rejects(
        r#"{"backends": [{"url": "http://nohost.invalid"}], "port": "x"}"#,
        "port: expected an integer, found the string \"x\"",
    );
}
