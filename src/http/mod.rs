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

/// Position of the first `needle` in `haystack`: eight bytes at a time (SWAR), since heads are
/// scanned for line ends on every read.
#[inline]
pub fn find_byte(haystack: &[u8], needle: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO * u64::from(needle);
    let mut chunks = haystack.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ pattern;
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            return Some(base + (found.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == needle)
        .map(|i| base + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_byte_agrees_with_a_plain_search() {
        let mut x: u32 = 12345;
        for len in 0..70 {
            for _ in 0..50 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        [b'a', b'\n', b'\r', 0x8a, 0x0b][(x >> 16) as usize % 5]
                    })
                    .collect();
                let plain = bytes.iter().position(|&b| b == b'\n');
                assert_eq!(find_byte(&bytes, b'\n'), plain, "{bytes:?}");
            }
        }
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
