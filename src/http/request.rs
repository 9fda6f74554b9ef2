//! Request heads: find where a head ends, check it, and rewrite it for the backend.
//!
//! The rewrite keeps the method, target and every end-to-end field in order, speaks HTTP/1.1 to
//! the backend, drops hop-by-hop fields (RFC 9110 §7.6.1: `Connection` and what it names,
//! `Keep-Alive`, `Proxy-Connection`, `TE` except `trailers`, `Trailer`, `Upgrade` unless the
//! request asks for one), normalises `Content-Length` / `Transfer-Encoding`, and sets
//! `X-Forwarded-For` (appended), `X-Forwarded-Proto` and `X-Forwarded-Host`. Anything whose framing
//! could be read two ways is refused (request smuggling): the caller answers with the status in
//! [`Reject`] and closes the connection.

use std::mem::MaybeUninit;
use std::net::IpAddr;

use super::errors::Status;
use super::headers::{self, put_field, Codings, ConnectionOptions, Field, Runs};
use super::{Framing, Method, MAX_HEADERS};

mod write;
use write::{
    copy_fields, copy_request_line, put_forwarded, put_forwarded_for, put_framing, Keep, Line,
};

/// Size limits on a request head.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest head (request line and fields) accepted: 431 beyond.
    pub max_head: usize,
    /// Longest request target accepted: 414 beyond.
    pub max_uri: usize,
    /// Most header fields accepted (at most [`MAX_HEADERS`]): 431 beyond; also applied to
    /// response heads (502 beyond).
    pub max_headers: usize,
    /// Largest request body accepted, in bytes (0: no limit): a `Content-Length` above it is
    /// 413 before anything is forwarded; a chunked body that grows past it ends the request.
    pub max_body: u64,
}

/// Facts about the client connection that go into the forwarded head, and the router that
/// decides, from the request's host and path, which pool takes it and what that pool wants read
/// from the request.
#[derive(Clone, Copy)]
pub struct ClientInfo<'a> {
    pub ip: IpAddr,
    pub tls: bool,
    pub router: &'a dyn Router<'a>,
    /// Proxies whose `X-Forwarded-For` says who the client is.
    pub trusted: &'a crate::client_ip::TrustedProxies,
    /// The `X-Request-Id` to add when the request has none (`None`: add nothing).
    pub request_id: Option<&'a [u8]>,
}

/// The request's text as it came, for the access log: slices of the head given to
/// [`rewrite_seen`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Seen<'a> {
    pub method: &'a [u8],
    pub target: &'a [u8],
    /// The authority (`Host`, or an absolute-form target's).
    pub host: &'a [u8],
    pub referer: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
    /// The request's own `X-Request-Id`, or the one added.
    pub request_id: Option<&'a [u8]>,
}

/// How a request's pool treats it, decided once its host and path are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routed<'a> {
    /// The pool that takes the request, and the route that chose it (`None`: the default pool
    /// without a route), as the router numbers them.
    pub pool: u16,
    pub route: Option<u16>,
    /// Bytes to take off the front of the path (`strip_prefix`); what goes on starts with `/`.
    pub strip: usize,
    /// A field or cookie whose value the pool's `consistent-hash` hashes.
    pub key: KeySource<'a>,
    /// A field or cookie whose value keys the request's rate limit (`crate::limits`).
    pub limit_key: KeySource<'a>,
    /// The pool's sticky-session cookie (cookie mode), and whether to remove it from the request.
    pub sticky_cookie: Option<&'a [u8]>,
    pub strip_sticky_cookie: bool,
}

/// Decides where a request goes, from its authority and path (see `route.rs`).
pub trait Router<'a> {
    /// The routing of a request for `host` (the `Host` value or an absolute target's authority,
    /// port included) and `path` (the target's path, before any `?`); `None`: no route, 404.
    fn route(&self, host: &[u8], path: &[u8]) -> Option<Routed<'a>>;
}

/// One pool takes every request: the router of a config without routes.
pub struct OnePool<'a>(pub Routed<'a>);

impl<'a> Router<'a> for OnePool<'a> {
    fn route(&self, _: &[u8], _: &[u8]) -> Option<Routed<'a>> {
        Some(self.0)
    }
}

/// Where a request's balancing key comes from (`hash_key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource<'a> {
    /// The client's address: nothing to read from the request.
    ClientIp,
    /// The value of this header field (its name, any case).
    Header(&'a [u8]),
    /// The value of this cookie.
    Cookie(&'a [u8]),
}

/// What the proxy needs to know about a request it forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Method,
    /// The client spoke HTTP/1.0.
    pub http10: bool,
    pub framing: Framing,
    /// The client wants the connection kept open after this exchange.
    pub keep_alive: bool,
    /// The client asks to switch protocols (`Connection: upgrade` + `Upgrade`).
    pub upgrade: bool,
    /// The request named no host (HTTP/1.0 allows that; the HTTP/1.1 request sent on needs one):
    /// the session adds `Host` with the chosen backend's authority.
    pub needs_host: bool,
    /// The hash of the field or cookie named by the pool's [`Routed::key`], when the request
    /// has it.
    pub key: Option<u64>,
    /// The hash of the field or cookie named by [`Routed::limit_key`], when the request has it.
    pub limit_key: Option<u64>,
    /// The backend id in the sticky cookie, when the request has a well-formed one.
    pub sticky: Option<u64>,
    /// The client, as `X-Forwarded-For` of a trusted peer names it (`None`: the peer itself).
    pub client: Option<IpAddr>,
    /// The pool that takes it, and the route that chose it.
    pub pool: u16,
    pub route: Option<u16>,
}

/// A request refused with this status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reject(pub Status);

/// Looks for the end of a head in `buf`, starting the search at `from` (bytes before it were
/// already searched). Returns the head length, or `None` when more bytes are needed; a line ending
/// in a bare LF is rejected with 400.
pub fn find_head_end(buf: &[u8], from: usize) -> Result<Option<usize>, Reject> {
    // a `from` past the end (a caller's stale scan position) searches nothing rather than panics
    let mut i = from.min(buf.len());
    while let Some(off) = buf.get(i..).and_then(|rest| super::find_byte(rest, b'\n')) {
        let at = i + off;
        if at == 0 || buf.get(at - 1) != Some(&b'\r') {
            return Err(Reject(Status::BadRequest));
        }
        if at >= 3 && buf.get(at - 3..at - 1) == Some(b"\r\n".as_slice()) {
            return Ok(Some(at + 1));
        }
        i = at + 1;
    }
    Ok(None)
}

/// Whether the (possibly incomplete or malformed) request head in `bytes` is a `HEAD` request,
/// after any empty lines: its answer carries no body, whatever ferrule answers.
pub fn is_head_request(bytes: &[u8]) -> bool {
    bytes
        .get(empty_lines(bytes)..)
        .is_some_and(|rest| rest.starts_with(b"HEAD "))
}

/// The length of the empty lines (CRLFs) that begin `bytes`.
fn empty_lines(bytes: &[u8]) -> usize {
    bytes.chunks_exact(2).take_while(|l| *l == b"\r\n").count() * 2
}

/// Whether the request line of the incomplete head `bytes` is whole: a line end after the empty
/// lines that may precede it (RFC 9112 §2.2), which are not the request line. Only bytes from
/// `from` on are searched (those before were, and held no line end past the empty lines).
pub fn request_line_complete(bytes: &[u8], from: usize) -> bool {
    bytes
        .get(from.max(empty_lines(bytes))..)
        .and_then(|new| super::find_byte(new, b'\n'))
        .is_some()
}

/// Checks an incomplete head of `len` bytes against the limits: the caller calls this when no
/// head end was found (`line_complete`: a line end was seen, so the request line is whole), and
/// answers with the status when it fails.
pub fn check_partial(len: usize, line_complete: bool, limits: &Limits) -> Result<(), Reject> {
    if !line_complete && len > limits.max_uri + 32 {
        return Err(Reject(Status::UriTooLong));
    }
    if len >= limits.max_head {
        return Err(Reject(Status::HeaderFieldsTooLarge));
    }
    Ok(())
}

/// Checks the request line of an incomplete head once it is whole (`bytes` holds it and maybe the
/// start of the fields): a line httparse refuses (an HTTP/0.9 `GET /`, a bad method or target,
/// an unknown version) is answered at once instead of when the head completes or times out.
pub fn check_request_line(bytes: &[u8]) -> Result<(), Reject> {
    let mut req = httparse::Request::new(&mut []);
    match httparse::ParserConfig::default().parse_request(&mut req, bytes) {
        // Partial: the line is fine and no field came yet; TooManyHeaders: a field began after
        // a good line (there is no room for fields here)
        Ok(_) | Err(httparse::Error::TooManyHeaders) => Ok(()),
        Err(httparse::Error::Version) => Err(Reject(version_error(bytes))),
        Err(_) => Err(Reject(Status::BadRequest)),
    }
}

/// Parses the complete head `head` (as delimited by [`find_head_end`]) and writes the head to send
/// to the backend into `out` (cleared first). Returns `Ok(None)` when `head` holds only empty
/// lines, which RFC 9112 §2.2 lets a server skip.
pub fn rewrite(
    head: &[u8],
    limits: &Limits,
    client: &ClientInfo,
    out: &mut Vec<u8>,
) -> Result<Option<(RequestHead, usize)>, Reject> {
    rewrite_seen(head, limits, client, out).map(|r| r.map(|(h, len, _)| (h, len)))
}

/// Room for the fields of one head (`MAX_HEADERS`), left uninitialised: `let mut storage =
/// HEADERS;` then [`parse`].
pub const HEADERS: [MaybeUninit<httparse::Header<'static>>; MAX_HEADERS] =
    [const { MaybeUninit::uninit() }; MAX_HEADERS];

/// Parses a request head with its fields in `storage` (the one place ferrule calls httparse on
/// a request: the proxy's head, the access log's request line, the redirect listener).
pub fn parse<'h, 'b>(
    head: &'b [u8],
    storage: &'h mut [MaybeUninit<httparse::Header<'b>>; MAX_HEADERS],
) -> (httparse::Request<'h, 'b>, httparse::Result<usize>) {
    let mut req = httparse::Request::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut req, head, storage);
    (req, parsed)
}

/// [`rewrite`], also returning the request's text as it came ([`Seen`]).
pub fn rewrite_seen<'a, 'c: 'a>(
    head: &'a [u8],
    limits: &Limits,
    client: &ClientInfo<'c>,
    out: &mut Vec<u8>,
) -> Result<Option<(RequestHead, usize, Seen<'a>)>, Reject> {
    if head.len() > limits.max_head {
        return Err(Reject(Status::HeaderFieldsTooLarge));
    }
    let mut storage = HEADERS;
    let (req, parsed) = parse(head, &mut storage);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Reject(Status::HeaderFieldsTooLarge)),
        Err(httparse::Error::Version) => return Err(Reject(version_error(head))),
        Err(_) => return Err(Reject(Status::BadRequest)),
    };
    let (Some(method_str), Some(target), Some(version)) = (req.method, req.path, req.version)
    else {
        return Err(Reject(Status::BadRequest));
    };
    let method = Method::from_bytes(method_str.as_bytes());
    if target.len() > limits.max_uri {
        return Err(Reject(Status::UriTooLong));
    }
    if method == Method::Connect {
        return Err(Reject(Status::NotImplemented));
    }
    let form = target_form(method, target)?;
    let http10 = version == 0;
    let fields: &[httparse::Header<'_>] = req.headers;
    if fields.len() > limits.max_headers {
        return Err(Reject(Status::HeaderFieldsTooLarge));
    }

    // First pass: what the fields say about framing and the connection.
    let mut seen = Seen {
        method: method_str.as_bytes(),
        target: target.as_bytes(),
        ..Seen::default()
    };
    let mut kinds = [Field::Other; MAX_HEADERS];
    let scan = scan_fields(fields, &mut kinds, &mut seen)?;
    let (hosts, conn) = (scan.hosts, scan.conn);
    if hosts > 1 || (hosts == 0 && !http10) || !valid_host(scan.host) {
        return Err(Reject(Status::BadRequest));
    }
    // RFC 9112 §3.2.2: the authority of an absolute-form target replaces any Host field
    let (host, absolute) = match form {
        Target::Absolute { authority, .. } => (authority, true),
        Target::Origin => (scan.host, false),
    };
    let routed = client
        .router
        .route(host, path_of(form, target))
        .ok_or(Reject(Status::NotFound))?;
    let (key, limit_key, sticky) = read_keys(fields, &kinds, &routed);
    let framing = body_framing(&scan, http10, limits.max_body)?;
    let upgrade = !http10 && conn.upgrade && scan.upgrade_field;
    let keep_alive = !conn.close && (!http10 || conn.keep_alive);

    // Second pass: write the head for the backend. Kept lines are copied as they came, a run of
    // consecutive lines at a time; dropped or replaced ones cut the run.
    out.clear();
    let mut runs = Runs::new(head);
    let line = Line {
        method: method_str.as_bytes(),
        sent: origin_form(form, target),
        strip: routed.strip,
        rewrite: absolute || http10 || routed.strip > 0,
    };
    copy_request_line(head, fields, &line, &runs, out)?;
    let keep = Keep {
        absolute,
        upgrade,
        names_fields: conn.names_fields,
        host,
        client_ip: client.ip,
    };
    copy_fields(fields, &kinds, &routed, &keep, &mut runs, out);
    runs.cut(runs.fields_end(), out);
    if absolute && hosts == 0 {
        put_field(out, b"Host", host);
    }
    put_framing(out, framing, upgrade);
    if scan.xff == 0 {
        put_forwarded_for(out, fields, &kinds, client.ip);
    }
    put_forwarded(out, client.tls, client.request_id, host, &mut seen);
    out.extend_from_slice(b"\r\n");
    seen.host = host;

    let head = RequestHead {
        method,
        http10,
        framing,
        keep_alive,
        upgrade,
        needs_host: hosts == 0 && !absolute,
        key,
        limit_key,
        sticky,
        client: forwarded_client(fields, &kinds, client),
        pool: routed.pool,
        route: routed.route,
    };
    Ok(Some((head, len, seen)))
}

/// The target as origin-form: an absolute-form target's path, or the target as it came.
#[inline(always)]
fn origin_form<'a>(form: Target<'a>, target: &'a str) -> &'a [u8] {
    match form {
        Target::Absolute { path, .. } => path,
        Target::Origin => target.as_bytes(),
    }
}

/// The path a route matches: the origin-form target before any `?`.
#[inline(always)]
fn path_of<'a>(form: Target<'a>, target: &'a str) -> &'a [u8] {
    let path = origin_form(form, target);
    path.iter()
        .position(|&b| b == b'?')
        .and_then(|q| path.get(..q))
        .unwrap_or(path)
}

/// What the first pass reads from a request's fields.
#[derive(Default)]
struct Scan<'a> {
    conn: ConnectionOptions,
    codings: Codings,
    length: Option<u64>,
    /// `Host` fields, and the last one's value (or an absolute-form target's authority).
    hosts: usize,
    host: &'a [u8],
    /// An `Upgrade` field came.
    upgrade_field: bool,
    /// `X-Forwarded-For` fields.
    xff: usize,
}

/// The first pass over the fields: each one's kind into `kinds`, what the access log shows into
/// `seen`, and what they say about framing and the connection; two different `Content-Length`
/// values are refused.
#[inline(always)]
fn scan_fields<'a>(
    fields: &[httparse::Header<'a>],
    kinds: &mut [Field],
    seen: &mut Seen<'a>,
) -> Result<Scan<'a>, Reject> {
    let mut scan = Scan::default();
    for (f, kind) in fields.iter().zip(kinds.iter_mut()) {
        *kind = Field::of(f.name.as_bytes());
        match *kind {
            Field::Host => {
                scan.hosts += 1;
                scan.host = headers::trim(f.value);
            }
            Field::ContentLength => {
                let n = headers::content_length(f.value).ok_or(Reject(Status::BadRequest))?;
                if scan.length.is_some_and(|m| m != n) {
                    return Err(Reject(Status::BadRequest));
                }
                scan.length = Some(n);
            }
            Field::TransferEncoding => scan.codings.add(f.value),
            Field::Connection => scan.conn.add(f.value),
            Field::Upgrade => scan.upgrade_field = true,
            Field::XForwardedFor => scan.xff += 1,
            Field::Referer => seen.referer = Some(headers::trim(f.value)),
            Field::UserAgent => seen.user_agent = Some(headers::trim(f.value)),
            Field::XRequestId if seen.request_id.is_none() => {
                seen.request_id = Some(headers::trim(f.value));
            }
            _ => {}
        }
    }
    Ok(scan)
}

/// What the pool reads from the request: the hashes of its balancing key and of its rate
/// limit's key, and the backend id of its sticky cookie (most pools read none of them: no
/// second pass then).
#[inline]
fn read_keys(
    fields: &[httparse::Header<'_>],
    kinds: &[Field],
    routed: &Routed<'_>,
) -> (Option<u64>, Option<u64>, Option<u64>) {
    let (mut key, mut limit_key, mut sticky) = (None, None, None);
    let reads = routed.sticky_cookie.is_some()
        || routed.key != KeySource::ClientIp
        || routed.limit_key != KeySource::ClientIp;
    if !reads {
        return (key, limit_key, sticky);
    }
    for (f, kind) in fields.iter().zip(kinds.iter()) {
        if let (Some(name), Field::Cookie, None) = (routed.sticky_cookie, *kind, sticky) {
            sticky = headers::cookie(f.value, name).and_then(crate::hash::parse_cookie_id);
        }
        read_key(routed.key, f, *kind, &mut key);
        read_key(routed.limit_key, f, *kind, &mut limit_key);
    }
    (key, limit_key, sticky)
}

/// The request body's framing (RFC 9112 §6), refused when it could be read two ways, and a
/// `Content-Length` above `max_body` (0: no limit) refused before a byte of the body is read or
/// forwarded.
#[inline]
fn body_framing(scan: &Scan<'_>, http10: bool, max_body: u64) -> Result<Framing, Reject> {
    if let (Some(n), true) = (scan.length, max_body > 0) {
        if n > max_body {
            return Err(Reject(Status::PayloadTooLarge));
        }
    }
    let codings = &scan.codings;
    if codings.count == 0 {
        return Ok(match scan.length {
            Some(n) => Framing::Length(n),
            None => Framing::None,
        });
    }
    // RFC 9112 §6.1 and §6.3: both framings, chunked not last, or any coding in an HTTP/1.0
    // request make the length unknowable; codings other than chunked are not implemented.
    if scan.length.is_some() || http10 || !codings.chunked_last || codings.chunked_early {
        return Err(Reject(Status::BadRequest));
    }
    if !codings.only_chunked() {
        return Err(Reject(Status::NotImplemented));
    }
    Ok(Framing::Chunked)
}

/// The hash of the value `source` names, if `f` (of kind `kind`) holds it and `slot` has none
/// yet (the first field or cookie of that name counts).
#[inline]
fn read_key(source: KeySource<'_>, f: &httparse::Header<'_>, kind: Field, slot: &mut Option<u64>) {
    if slot.is_some() {
        return;
    }
    match source {
        KeySource::ClientIp => {}
        KeySource::Header(name) if f.name.as_bytes().eq_ignore_ascii_case(name) => {
            *slot = Some(crate::hash::stable_hash(0, headers::trim(f.value)));
        }
        KeySource::Cookie(name) if kind == Field::Cookie => {
            *slot = headers::cookie(f.value, name).map(|v| crate::hash::stable_hash(0, v));
        }
        _ => {}
    }
}

/// The client behind a trusted peer: the right-most untrusted address of `X-Forwarded-For`
/// (`client_ip`). Nothing to do, and `None`, when the peer is not trusted.
fn forwarded_client(
    fields: &[httparse::Header<'_>],
    kinds: &[Field],
    client: &ClientInfo<'_>,
) -> Option<IpAddr> {
    if client.trusted.is_empty() || !client.trusted.contains(client.ip) {
        return None;
    }
    let values = fields
        .iter()
        .zip(kinds)
        .filter(|(_, kind)| **kind == Field::XForwardedFor)
        .map(|(f, _)| f.value);
    let found = crate::client_ip::client_from_forwarded_for(client.ip, values, client.trusted);
    (found != client.ip).then_some(found)
}

/// A `Host` value: one `uri-host [ ":" port ]` (RFC 9110 §7.2), in the characters RFC 3986 allows
/// there: unreserved, percent-encoded and sub-delimiters, `:` and the brackets of an IPv6 literal.
/// A comma (a list of hosts), user info (`@`), a path, query or fragment, whitespace, control and
/// non-ASCII bytes are refused. Empty is allowed (RFC 9112 §3.2: a target without an authority).
pub(crate) fn valid_host(host: &[u8]) -> bool {
    // a u8 is always in the table: the compiler drops the check `get` makes
    host.iter()
        .all(|&b| HOST_BYTE.get(usize::from(b)).copied().unwrap_or(false))
}

/// Which bytes [`valid_host`] allows: one look-up a byte.
// built at compile time: an index out of range would fail the build, never a request
#[allow(clippy::indexing_slicing)]
static HOST_BYTE: [bool; 256] = {
    let allowed = b"-._~%!$&'()*+;=:[]";
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < allowed.len() {
        table[allowed[i] as usize] = true;
        i += 1;
    }
    table
};

/// The form of a request target (RFC 9112 §3.2). Authority-form is CONNECT's, refused earlier.
#[derive(Debug, Clone, Copy)]
enum Target<'a> {
    /// `/path?query`, or `*` for `OPTIONS`: sent on as it came.
    Origin,
    /// `http://authority/path?query`: sent on as `/path?query` with `Host: authority`.
    Absolute { authority: &'a [u8], path: &'a [u8] },
}

fn target_form(method: Method, target: &str) -> Result<Target<'_>, Reject> {
    let t = target.as_bytes();
    if t.first() == Some(&b'/') {
        return Ok(Target::Origin);
    }
    if t == b"*" {
        // asterisk-form is only for a server-wide OPTIONS (RFC 9112 §3.2.4)
        return if method == Method::Options {
            Ok(Target::Origin)
        } else {
            Err(Reject(Status::BadRequest))
        };
    }
    let rest = ["http://", "https://"].iter().find_map(|scheme| {
        let n = scheme.len();
        let (given, rest) = t.split_at_checked(n)?;
        given
            .eq_ignore_ascii_case(scheme.as_bytes())
            .then_some(rest)
    });
    let Some(rest) = rest else {
        return Err(Reject(Status::BadRequest));
    };
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() || !valid_host(authority) || path.contains(&b'#') {
        return Err(Reject(Status::BadRequest));
    }
    Ok(Target::Absolute { authority, path })
}

/// The status for a request line httparse refused for its version: 505 only when the line is
/// well-formed (`method SP target SP HTTP/d.d`) and names a version other than 1.0 and 1.1; any
/// other defect (a space inside the target, a lowercase or truncated version) is a malformed
/// request line: 400.
fn version_error(head: &[u8]) -> Status {
    let mut rest = head;
    while let [b'\r', b'\n', tail @ ..] = rest {
        rest = tail;
    }
    let line_end = super::find_byte(rest, b'\r').unwrap_or(rest.len());
    let line = rest.get(..line_end).unwrap_or(rest);
    let mut parts = line.split(|&b| b == b' ');
    let well_formed = matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(m), Some(t), Some(v), None)
            if !m.is_empty() && !t.is_empty()
                && matches!(v, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
                    if major.is_ascii_digit() && minor.is_ascii_digit())
    );
    if well_formed {
        Status::VersionNotSupported
    } else {
        Status::BadRequest
    }
}

#[cfg(test)]
mod tests;
