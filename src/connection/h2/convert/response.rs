//! A backend's HTTP/1.1 response head → an HTTP/2 field block (RFC 9113 §8.3.2, §8.6), and its
//! trailers → a final field block.
//!
//! The head is the one the stream hands its client: already rewritten by `http::response`
//! (`Connection` set by ferrule, maybe `Transfer-Encoding: chunked` for a body relayed as it
//! came). Here it loses what HTTP/2 has no place for: the status line becomes `:status`; the
//! connection-specific fields (`connection` and every field it names, `keep-alive`,
//! `proxy-connection`, `transfer-encoding`, `upgrade`, `te`) go (§8.2.2); `content-length`
//! goes from 1xx and 204 (RFC 9110 §8.6); names are lowercased by the encoder.

use std::mem::MaybeUninit;

use super::{connection_specific, valid_value};
use crate::connection::h2::hpack::Encoder;
use crate::http::headers::{self, Field};
use crate::http::{Method, MAX_HEADERS};

/// The request a response answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answering {
    pub method: Method,
    /// The request was an extended CONNECT (RFC 8441) sent as an HTTP/1.1 upgrade.
    pub extended_connect: bool,
}

/// The converted response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// The status the client sees (200 for a 101 that opens an extended CONNECT's tunnel).
    pub status: u16,
    /// 1xx other than 101: a HEADERS without END_STREAM, and a final response follows.
    pub interim: bool,
    /// No body follows (1xx, 204, 304, an answer to HEAD): the HEADERS frame ends the stream
    /// (unless `interim`).
    pub no_body: bool,
    /// The extended CONNECT's tunnel is open: the stream's bytes go both ways as DATA.
    pub tunnel: bool,
    /// The response's `content-length`, when it has one.
    pub content_length: Option<u64>,
    /// The body follows chunked (the head has a `transfer-encoding`: ferrule relays only
    /// bodies whose last coding is chunked): the DATA carry its payload, its trailers a final
    /// HEADERS.
    pub chunked: bool,
    /// Bytes of `head` the head took (the body, if any, follows).
    pub head_len: usize,
}

/// A response that cannot go to an HTTP/2 client: the stream answers 502 (or is reset when
/// the response already began).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid(pub &'static str);

/// True when a `connection` field among `fields` names `name`.
fn named(fields: &[httparse::Header<'_>], any_connection: bool, name: &str) -> bool {
    any_connection && headers::named_by_connection(fields, name)
}

/// Converts the whole response head at the front of `head` and appends its field block to
/// `block` (`enc` keeps the connection's HPACK state).
pub fn response(
    head: &[u8],
    ans: &Answering,
    enc: &mut Encoder,
    block: &mut Vec<u8>,
) -> Result<Response, Invalid> {
    let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        head,
        &mut storage,
    );
    let Ok(httparse::Status::Complete(head_len)) = parsed else {
        return Err(Invalid("not a whole response head"));
    };
    let Some(code) = resp.code.filter(|c| (100..=999).contains(c)) else {
        return Err(Invalid("bad status"));
    };
    let fields: &[httparse::Header<'_>] = resp.headers;
    let tunnel = match code {
        101 if ans.extended_connect => true,
        101 => return Err(Invalid("101 without an extended CONNECT")),
        200..=299 if ans.extended_connect => {
            return Err(Invalid("backend did not switch protocols"));
        }
        _ => false,
    };
    let status = if tunnel { 200 } else { code };
    let interim = !tunnel && (100..200).contains(&code);
    let no_body = interim || code == 204 || code == 304 || ans.method == Method::Head;
    let drop_length = interim || code == 204;
    let any_connection = fields
        .iter()
        .any(|f| Field::of(f.name.as_bytes()) == Field::Connection);

    // every check before the first byte of the block: the encoder's state moves only for a
    // block that is sent
    let mut content_length = None;
    let mut chunked = false;
    // bounded: at most MAX_HEADERS fields, here and below
    for f in fields {
        if Field::of(f.name.as_bytes()) == Field::TransferEncoding {
            chunked = true;
        }
        if !valid_value(headers::trim(f.value)) {
            return Err(Invalid("field value with a control character"));
        }
        if Field::of(f.name.as_bytes()) == Field::ContentLength && !drop_length {
            content_length = headers::content_length(f.value);
        }
    }
    enc.begin(block);
    enc.status(status, block);
    for f in fields {
        let name = f.name.as_bytes();
        let kind = Field::of(name);
        let dropped = connection_specific(kind)
            || kind == Field::Te
            || (kind == Field::ContentLength && drop_length)
            // RFC 8441 §5: not used over HTTP/2
            || (tunnel && name.eq_ignore_ascii_case(b"sec-websocket-accept"))
            || named(fields, any_connection, f.name);
        if !dropped {
            enc.field(name, headers::trim(f.value), block);
        }
    }
    Ok(Response {
        status,
        interim,
        no_body,
        tunnel,
        content_length,
        chunked: chunked && !no_body,
        head_len,
    })
}

/// Converts a chunked body's trailer section (the fields after the last chunk, up to and with
/// the empty line) and appends the field block to `block`. Returns how many fields went in (0:
/// end the stream with an empty DATA frame instead of a HEADERS).
pub fn response_trailers(
    section: &[u8],
    enc: &mut Encoder,
    block: &mut Vec<u8>,
) -> Result<usize, Invalid> {
    let mut storage = [httparse::EMPTY_HEADER; 32];
    let Ok(httparse::Status::Complete((_, fields))) =
        httparse::parse_headers(section, &mut storage)
    else {
        return Err(Invalid("bad trailer section"));
    };
    let kept = |f: &&httparse::Header<'_>| {
        let kind = Field::of(f.name.as_bytes());
        !(connection_specific(kind)
            || matches!(kind, Field::Te | Field::ContentLength | Field::Trailer))
    };
    // bounded: at most 32 fields, here and below
    if fields.iter().any(|f| !valid_value(headers::trim(f.value))) {
        return Err(Invalid("field value with a control character"));
    }
    let n = fields.iter().filter(kept).count();
    if n > 0 {
        enc.begin(block);
        for f in fields.iter().filter(kept) {
            enc.field(f.name.as_bytes(), headers::trim(f.value), block);
        }
    }
    Ok(n)
}
