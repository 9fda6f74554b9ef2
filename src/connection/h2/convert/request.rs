//! A request's header list → an HTTP/1.1 request head (RFC 9113 §8.3, RFC 8441 §4-5), and its
//! body's framing for the backend.
//!
//! The head written: `<:method> <:path> HTTP/1.1` (`CONNECT <:authority>` for a plain CONNECT),
//! `host: <:authority>` (or the request's own `host` when there is no `:authority`), the regular
//! fields in order with every `cookie` joined into one (§8.2.3), `transfer-encoding: chunked`
//! when a body follows without `content-length`, and for an extended CONNECT the upgrade fields
//! of an HTTP/1.1 WebSocket handshake. Everything else (the rewrite for the backend,
//! `X-Forwarded-*`, limits) is the stream's, as for HTTP/1.1.

use super::{connection_specific, valid_name, valid_value, Refused};
use crate::connection::h2::frame::Sink;
use crate::connection::h2::hpack::HeaderList;
use crate::http::headers::{self, Field};
use crate::http::Method;

/// What the connection knows that the conversion needs.
#[derive(Debug, Clone, Copy)]
pub struct RequestOptions {
    /// The HEADERS frame ended the stream: no body follows.
    pub end_stream: bool,
    /// We announced `SETTINGS_ENABLE_CONNECT_PROTOCOL` (RFC 8441 §3): `:protocol` is allowed.
    pub connect_protocol: bool,
    /// Most fields the head may have (`max_header_count`): more is 431.
    pub max_headers: usize,
    /// 16 bytes for the `Sec-WebSocket-Key` of an extended CONNECT (RFC 6455 §4.1 wants them
    /// random: the request id's bytes do).
    pub nonce: [u8; 16],
}

/// The converted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// Bytes of head written.
    pub head_len: usize,
    /// The `content-length` the request declared: the DATA must add up to it ([`BodyLength`]).
    pub content_length: Option<u64>,
    /// The body goes to the backend chunked ([`chunk`](super::chunk), then
    /// [`LAST_CHUNK`](super::LAST_CHUNK) or trailers).
    pub chunked: bool,
    /// An extended CONNECT (RFC 8441), sent as an HTTP/1.1 upgrade: the backend's 101 becomes a
    /// 200 and the stream a tunnel (see [`Answering`](super::Answering)).
    pub extended_connect: bool,
}

/// The pseudo-header fields (§8.3.1), each at most once.
#[derive(Default)]
struct Pseudo<'a> {
    method: Option<&'a [u8]>,
    scheme: Option<&'a [u8]>,
    authority: Option<&'a [u8]>,
    path: Option<&'a [u8]>,
    protocol: Option<&'a [u8]>,
}

impl<'a> Pseudo<'a> {
    fn set(&mut self, name: &[u8], value: &'a [u8]) -> Result<(), Refused> {
        let slot = match name {
            b":method" => &mut self.method,
            b":scheme" => &mut self.scheme,
            b":authority" => &mut self.authority,
            b":path" => &mut self.path,
            b":protocol" => &mut self.protocol,
            _ => return Err(Refused::Malformed("unknown or response pseudo-header")),
        };
        if slot.replace(value).is_some() {
            return Err(Refused::Malformed("pseudo-header twice"));
        }
        Ok(())
    }
}

/// What the regular fields say, gathered in a first pass.
#[derive(Default)]
struct Regular<'a> {
    count: usize,
    host: Option<&'a [u8]>,
    hosts: usize,
    content_length: Option<u64>,
    websocket_version: bool,
}

fn token(b: &[u8]) -> bool {
    !b.is_empty()
        && b.iter()
            .all(|&c| c.is_ascii_graphic() && !b"\"(),/:;<=>?@[\\]{}".contains(&c))
}

fn valid_scheme(s: &[u8]) -> bool {
    matches!(s.first(), Some(c) if c.is_ascii_alphabetic())
        && s.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
}

/// An authority without userinfo (§8.3.1): it becomes the request's `Host`, so it is held to
/// what a `Host` field may carry (`http::request::valid_host`), and must not be empty.
fn valid_authority(a: &[u8]) -> bool {
    !a.is_empty() && crate::http::request::valid_host(a)
}

/// A `:path`: origin-form, or `*` for OPTIONS (§8.3.1), of visible ASCII.
fn valid_path(p: &[u8], method: Method) -> bool {
    let visible = p.iter().all(|&b| (0x21..=0x7e).contains(&b));
    visible && (p.first() == Some(&b'/') || (p == b"*" && method == Method::Options))
}

fn first_pass<'a>(list: &'a HeaderList) -> Result<(Pseudo<'a>, Regular<'a>), Refused> {
    let mut pseudo = Pseudo::default();
    let mut reg = Regular::default();
    // bounded: the list's fields
    for (name, value) in list.iter() {
        if !valid_value(value) {
            return Err(Refused::Malformed(
                "field value with a control character or edge whitespace",
            ));
        }
        if name.first() == Some(&b':') {
            if reg.count > 0 {
                return Err(Refused::Malformed("pseudo-header after a regular field"));
            }
            pseudo.set(name, value)?;
            continue;
        }
        reg.count += 1;
        if !valid_name(name) {
            return Err(Refused::Malformed("field name not a lowercase token"));
        }
        let kind = Field::of(name);
        if connection_specific(kind) {
            return Err(Refused::Malformed("connection-specific field"));
        }
        match kind {
            Field::Te if !value.eq_ignore_ascii_case(b"trailers") => {
                return Err(Refused::Malformed("te other than trailers"));
            }
            Field::Host => {
                reg.hosts += 1;
                reg.host = Some(value);
            }
            Field::ContentLength => {
                let n = headers::content_length(value)
                    .ok_or(Refused::Malformed("bad content-length"))?;
                if reg.content_length.is_some_and(|m| m != n) {
                    return Err(Refused::Malformed("content-length twice, differing"));
                }
                reg.content_length = Some(n);
            }
            _ if name == b"sec-websocket-version" => reg.websocket_version = true,
            _ => {}
        }
    }
    Ok((pseudo, reg))
}

/// Writes the HTTP/1.1 head of the request in `list` into `out` (a `Vec<u8>` or the stream's
/// [`Buf`](crate::buffer::Buf), which must hold it whole: else 431).
pub fn request<S: Sink + ?Sized>(
    list: &HeaderList,
    opts: &RequestOptions,
    out: &mut S,
) -> Result<Request, Refused> {
    if list.too_large() {
        return Err(Refused::TooLarge);
    }
    let (p, reg) = first_pass(list)?;
    let method_bytes = p.method.ok_or(Refused::Malformed("no :method"))?;
    if !token(method_bytes) {
        return Err(Refused::Malformed("bad :method"));
    }
    let method = Method::from_bytes(method_bytes);
    let extended_connect = p.protocol.is_some();
    if extended_connect && (method != Method::Connect || !opts.connect_protocol) {
        return Err(Refused::Malformed(":protocol without an extended CONNECT"));
    }
    let plain_connect = method == Method::Connect && !extended_connect;
    if plain_connect {
        // §8.5: only :authority
        if p.scheme.is_some() || p.path.is_some() {
            return Err(Refused::Malformed("CONNECT with :scheme or :path"));
        }
    } else {
        let scheme = p.scheme.ok_or(Refused::Malformed("no :scheme"))?;
        let path = p.path.ok_or(Refused::Malformed("no :path"))?;
        if !valid_scheme(scheme) {
            return Err(Refused::Malformed("bad :scheme"));
        }
        if !valid_path(path, method) {
            return Err(Refused::Malformed("bad :path"));
        }
    }
    if let Some(a) = p.authority {
        if !valid_authority(a) {
            return Err(Refused::Malformed("bad :authority"));
        }
        // §8.3.1: a Host that names another origin than :authority
        if reg.host.is_some_and(|h| !h.eq_ignore_ascii_case(a)) || reg.hosts > 1 {
            return Err(Refused::Malformed("host differs from :authority"));
        }
    } else if method == Method::Connect {
        return Err(Refused::Malformed("CONNECT without :authority"));
    }
    if opts.end_stream && reg.content_length.is_some_and(|n| n > 0) {
        return Err(Refused::Malformed("content-length with no DATA"));
    }
    let chunked = !opts.end_stream && reg.content_length.is_none() && method != Method::Connect;
    let written = write_head(list, &p, &reg, opts, chunked, out)?;
    Ok(Request {
        method: if extended_connect {
            Method::Get
        } else {
            method
        },
        head_len: written,
        content_length: reg.content_length,
        chunked,
        extended_connect,
    })
}

/// Counts what goes into a sink, and whether it all fit.
struct Writer<'o, S: ?Sized> {
    out: &'o mut S,
    len: usize,
    ok: bool,
    fields: usize,
}

impl<S: Sink + ?Sized> Writer<'_, S> {
    fn put(&mut self, parts: &[&[u8]]) {
        // bounded: a few parts
        for p in parts {
            self.ok &= self.out.put(p);
            self.len += p.len();
        }
    }

    fn field(&mut self, name: &[u8], value: &[u8]) {
        self.fields += 1;
        self.put(&[name, b": ", value, b"\r\n"]);
    }
}

fn write_head<S: Sink + ?Sized>(
    list: &HeaderList,
    p: &Pseudo<'_>,
    reg: &Regular<'_>,
    opts: &RequestOptions,
    chunked: bool,
    out: &mut S,
) -> Result<usize, Refused> {
    let mut w = Writer {
        out,
        len: 0,
        ok: true,
        fields: 0,
    };
    let extended = p.protocol.is_some();
    let method: &[u8] = if extended {
        b"GET"
    } else {
        p.method.unwrap_or_default()
    };
    let target = p.path.or(p.authority).unwrap_or_default();
    w.put(&[method, b" ", target, b" HTTP/1.1\r\n"]);
    if let Some(a) = p.authority {
        w.field(b"host", a);
    }
    let mut cookie_done = false;
    // bounded: the list's fields, and the cookies once
    for (name, value) in list.iter().skip_while(|(n, _)| n.first() == Some(&b':')) {
        match Field::of(name) {
            Field::Host if p.authority.is_some() => {}
            // RFC 8441 §5: not used over HTTP/2; ours replaces it
            Field::Other if extended && name == b"sec-websocket-key" => {}
            Field::Cookie if cookie_done => {}
            Field::Cookie => {
                cookie_done = true;
                w.fields += 1;
                w.put(&[b"cookie: "]);
                let mut first = true;
                for (_, v) in list.iter().filter(|(n, _)| *n == b"cookie") {
                    if !first {
                        w.put(&[b"; "]);
                    }
                    first = false;
                    w.put(&[v]);
                }
                w.put(&[b"\r\n"]);
            }
            _ => w.field(name, value),
        }
    }
    if let Some(protocol) = p.protocol {
        w.field(b"connection", b"upgrade");
        w.field(b"upgrade", protocol);
        if protocol.eq_ignore_ascii_case(b"websocket") {
            w.field(b"sec-websocket-key", &base64_16(&opts.nonce));
            if !reg.websocket_version {
                w.field(b"sec-websocket-version", b"13");
            }
        }
    }
    if chunked {
        w.field(b"transfer-encoding", b"chunked");
    }
    w.put(&[b"\r\n"]);
    if !w.ok || w.fields > opts.max_headers {
        return Err(Refused::TooLarge);
    }
    Ok(w.len)
}

/// Standard base64 of 16 bytes: 22 characters and `==`.
pub(super) fn base64_16(b: &[u8; 16]) -> [u8; 24] {
    use base64::Engine as _;
    let mut out = [b'='; 24];
    // 16 bytes always encode to exactly 24 characters: the slice is large enough
    let _ = base64::engine::general_purpose::STANDARD.encode_slice(b, &mut out);
    out
}

/// Writes a request's trailers (a HEADERS frame with END_STREAM after DATA) as the end of its
/// chunked body: the last chunk, the trailer fields, the empty line. Pseudo-headers and
/// connection-specific fields make them malformed (§8.1); so do the fields RFC 9110 §6.5.1 keeps
/// out of trailers (framing, routing, `host`), which are refused rather than passed.
pub fn request_trailers<S: Sink + ?Sized>(list: &HeaderList, out: &mut S) -> Result<(), Refused> {
    if list.too_large() {
        return Err(Refused::TooLarge);
    }
    let mut ok = out.put(b"0\r\n");
    // bounded: the list's fields
    for (name, value) in list.iter() {
        if !valid_name(name) || !valid_value(value) {
            return Err(Refused::Malformed("bad trailer field"));
        }
        let kind = Field::of(name);
        if connection_specific(kind)
            || matches!(
                kind,
                Field::Te | Field::Host | Field::ContentLength | Field::Trailer
            )
        {
            return Err(Refused::Malformed("trailer field not allowed"));
        }
        ok &= out.put(name) && out.put(b": ") && out.put(value) && out.put(b"\r\n");
    }
    ok &= out.put(b"\r\n");
    if !ok {
        return Err(Refused::TooLarge);
    }
    Ok(())
}

/// The DATA of a request against its `content-length` (§8.1.1: a difference is malformed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLength {
    declared: Option<u64>,
    seen: u64,
}

impl BodyLength {
    pub fn new(declared: Option<u64>) -> BodyLength {
        BodyLength { declared, seen: 0 }
    }

    /// A DATA frame with `n` bytes of payload (padding excluded); `end_stream` when it ends the
    /// stream (also for trailers: `n` = 0).
    pub fn data(&mut self, n: usize, end_stream: bool) -> Result<(), Refused> {
        self.seen = self.seen.saturating_add(n as u64);
        match self.declared {
            Some(d) if self.seen > d => Err(Refused::Malformed("DATA past content-length")),
            Some(d) if end_stream && self.seen != d => {
                Err(Refused::Malformed("DATA short of content-length"))
            }
            _ => Ok(()),
        }
    }

    /// Body bytes seen so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }
}
