//! HTTP/1.1 message handling for the data path: request and response heads (parsed with
//! `httparse`, checked, and rewritten for the next hop), body framing, and the canned error
//! responses ferrule sends itself. Everything here is pure: bytes in, decisions and bytes out; the
//! sockets live in `session.rs`.

pub mod errors;
pub mod framing;
pub mod headers;
pub mod request;
pub mod response;

pub use framing::{Body, BodyError, Framing, Step};

/// Most header fields accepted in one head (like HAProxy's 101); more gets 431 / 502.
pub const MAX_HEADERS: usize = 100;

/// Request methods the proxy treats specially; everything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Trace,
    Connect,
    Patch,
    Other,
}

impl Method {
    pub fn from_bytes(m: &[u8]) -> Method {
        match m {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"CONNECT" => Method::Connect,
            b"PATCH" => Method::Patch,
            _ => Method::Other,
        }
    }

    /// RFC 9110 §9.2.2: a request that may be sent twice with the same effect.
    pub fn is_idempotent(self) -> bool {
        matches!(
            self,
            Method::Get
                | Method::Head
                | Method::Options
                | Method::Trace
                | Method::Put
                | Method::Delete
        )
    }
}

/// Finds a bare LF (an LF not preceded by CR) in a head. httparse accepts bare LF as a line end;
/// ferrule does not, so that it never reads a head differently from a stricter backend.
pub fn has_bare_lf(head: &[u8]) -> bool {
    let mut prev = 0u8;
    for &b in head {
        if b == b'\n' && prev != b'\r' {
            return true;
        }
        prev = b;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_lf_detection() {
        assert!(!has_bare_lf(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(has_bare_lf(b"GET / HTTP/1.1\nHost: a\r\n\r\n"));
        assert!(has_bare_lf(b"GET / HTTP/1.1\r\nHost: a\r\n\n"));
        assert!(has_bare_lf(b"\n"));
    }

    #[test]
    fn idempotent_methods() {
        assert!(Method::from_bytes(b"GET").is_idempotent());
        assert!(Method::from_bytes(b"PUT").is_idempotent());
        assert!(!Method::from_bytes(b"POST").is_idempotent());
        assert!(!Method::from_bytes(b"PATCH").is_idempotent());
        assert!(!Method::from_bytes(b"get").is_idempotent());
    }
}
