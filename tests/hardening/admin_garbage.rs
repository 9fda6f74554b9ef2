//! The admin port fed garbage: every answer is a 4xx (in the error shape where there is a head to
//! answer), and the admin server keeps serving. (Bad JSON bodies, unknown keys and fields, methods
//! and paths have their tests in `tests/admin/input.rs`; this is what is left: bytes that are not
//! HTTP, not UTF-8, or too many.)

use std::io::{Read, Write};

use serde_json::json;

use super::{quiet_proxy, raw};
use crate::common::{Backend, Head};

/// The status of the answer to `bytes` on a fresh admin connection (0: none, the connection
/// closed without one).
fn status_of(admin: std::net::SocketAddr, bytes: &[u8]) -> (u16, String) {
    let mut s = raw(admin);
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    (
        Head::parse(&got).status(),
        String::from_utf8_lossy(&got).into_owned(),
    )
}

// Proves garbage on the admin port gets a 4xx and the admin server goes on serving: binary
// noise, non-UTF-8 in the target, a header value and the body, a request line without a version,
// 65 header fields, a huge chunk size, a body that is not JSON, a method nobody knows.
#[test]
fn admin_garbage_gets_4xx_and_the_admin_keeps_serving() {
    let a = Backend::start("a");
    let proxy = quiet_proxy(&[a.addr], json!({}));
    let admin = proxy.admin();
    let many: String = (0..65).map(|i| format!("X-{i}: v\r\n")).collect();
    let many = format!("GET /health HTTP/1.1\r\n{many}\r\n");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("noise", (0u8..=255).cycle().take(4096).collect()),
        ("nul", b"\0\0\0\0\r\n\r\n".to_vec()),
        ("non-UTF-8 target", b"GET /backends/\xff\xfe HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec()),
        (
            "non-UTF-8 body",
            b"POST /backends HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 4\r\n\r\n\xff\xfe\xfd\xfc".to_vec(),
        ),
        (
            "non-UTF-8 JSON string",
            b"POST /backends HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"url\":\"\xff\"}".to_vec(),
        ),
        (
            "non-UTF-8 field",
            b"PATCH /backends/0 HTTP/1.1\r\nHost: localhost\r\nContent-Type: \xff\xfe\r\nContent-Length: 2\r\n\r\n{}"
                .to_vec(),
        ),
        ("HTTP/0.9", b"GET /health\r\n\r\n".to_vec()),
        ("too many fields", many.into_bytes()),
        (
            "huge chunk",
            b"POST /backends HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n"
                .to_vec(),
        ),
        (
            "truncated JSON",
            b"POST /backends HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{\"url\": \"".to_vec(),
        ),
        ("unknown method", b"BREW /backends HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec()),
        ("absolute garbage target", b"GET %%%%% HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec()),
    ];
    for (what, bytes) in &cases {
        let (status, text) = status_of(admin, bytes);
        assert!(
            (400..500).contains(&status),
            "{what}: a 4xx, got {status}: {text:?}"
        );
        // and it still serves, at once
        let (status, _) = status_of(admin, b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert_eq!(status, 200, "after {what}");
    }
    // the pool is as it was: one backend, untouched
    let backends = proxy.admin_get("/backends");
    assert_eq!(
        backends["backends"].as_array().map(Vec::len),
        Some(1),
        "{backends}"
    );
}
