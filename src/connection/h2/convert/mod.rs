//! HTTP/2 ↔ HTTP/1.1 (RFC 9113 §8), for a stream whose backend speaks HTTP/1.1.
//!
//! - `request.rs`: a decoded request header list ([`HeaderList`](super::hpack::HeaderList))
//!   becomes an HTTP/1.1 request head, written into a byte buffer: the head a
//!   [`Stream`](crate::stream::Stream) starts from, so ferrule's own checks and rewrite
//!   (`http::request`) apply to it as to any HTTP/1.1 request. The §8.2 and §8.3 rules that make
//!   a request malformed are checked on the way (a stream error PROTOCOL_ERROR); what does not
//!   fit the buffer or `max_header_count` is a 431. Extended CONNECT (RFC 8441) becomes an
//!   HTTP/1.1 WebSocket upgrade. [`BodyLength`] checks the DATA against `content-length`, and
//!   [`chunk_head`] and friends frame a body that has no length for the backend. Request
//!   trailers become the chunked body's trailer section.
//! - `response.rs`: a backend's response head (as the stream writes it, already rewritten)
//!   becomes a field block for a HEADERS frame (`:status`, names lowercased, hop-by-hop fields
//!   gone), with what the framing needs to know: interim (1xx), bodiless (HEAD, 204, 304), the
//!   length, a tunnel (101 to an extended CONNECT, which HTTP/2 sees as 200). Response trailers
//!   (after a chunked body) become a final field block.
//!
//! Field values are checked both ways (§8.2.1): no NUL, CR, LF or other control character but
//! HTAB, so nothing can be smuggled from one framing into the other, and what is written is a
//! head the HTTP/1.1 side reads.

mod request;
mod response;

pub use request::{request, request_trailers, BodyLength, Request, RequestOptions};
pub use response::{response, response_trailers, Answering, Invalid, Response};

use super::error::{ErrorCode, H2Error};
use super::frame::Sink;
use crate::http::headers::Field;

/// Why a request cannot go to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Malformed (§8.1.1): the stream is reset with PROTOCOL_ERROR.
    Malformed(&'static str),
    /// Too many fields, or more than the head buffer holds: the stream is answered 431.
    TooLarge,
}

impl Refused {
    /// The stream error to send for a malformed request (`None`: answer 431 instead).
    pub fn stream_error(self, stream: u32) -> Option<H2Error> {
        match self {
            Refused::Malformed(why) => Some(H2Error::stream(stream, ErrorCode::ProtocolError, why)),
            Refused::TooLarge => None,
        }
    }
}

/// A field name as RFC 9113 §8.2.1 and RFC 9110 §5.1 allow it in HTTP/2: a non-empty token of
/// lowercase characters.
pub(crate) fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.iter().all(|&b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// A field value both sides accept: no NUL, CR or LF and no whitespace at either end (§8.2.1),
/// and no other control character but HTAB (RFC 9110 §5.5 makes them invalid, and the
/// HTTP/1.1 parser on the other side would refuse the head).
pub(crate) fn valid_value(value: &[u8]) -> bool {
    let edge = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    !edge(value.first())
        && !edge(value.last())
        && !value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
}

/// Fields that are connection-specific in HTTP/1.1 and have no place in HTTP/2 (§8.2.2).
pub(crate) fn connection_specific(kind: Field) -> bool {
    matches!(
        kind,
        Field::Connection
            | Field::KeepAlive
            | Field::ProxyConnection
            | Field::TransferEncoding
            | Field::Upgrade
    )
}

/// The size line of a chunk (RFC 9112 §7.1): hex digits and CRLF.
#[derive(Debug, Clone, Copy)]
pub struct ChunkHead {
    bytes: [u8; 18],
    len: u8,
}

impl ChunkHead {
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }
}

/// The size line of a chunk of `len` bytes (`len` > 0: a chunk of 0 ends the body).
pub fn chunk_head(len: usize) -> ChunkHead {
    let mut bytes = [0u8; 18];
    let mut n = len as u64;
    let digits = (64 - n.leading_zeros()).div_ceil(4).max(1) as usize;
    // bounded: at most 16 digits
    for b in bytes.iter_mut().take(digits).rev() {
        *b = crate::http::headers::hex_digit(n);
        n >>= 4;
    }
    if let Some(crlf) = bytes.get_mut(digits..digits + 2) {
        crlf.copy_from_slice(b"\r\n");
    }
    ChunkHead {
        bytes,
        len: (digits + 2) as u8,
    }
}

/// What follows a chunk's data.
pub const CHUNK_END: &[u8] = b"\r\n";
/// The last chunk and the end of a body without trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Appends `data` as one chunk; nothing for empty data (an empty DATA frame is no chunk: a chunk
/// of size 0 would end the body). False when the sink is full.
pub fn chunk<S: Sink + ?Sized>(out: &mut S, data: &[u8]) -> bool {
    if data.is_empty() {
        return true;
    }
    out.put(chunk_head(data.len()).as_bytes()) && out.put(data) && out.put(CHUNK_END)
}

#[cfg(test)]
mod tests;
