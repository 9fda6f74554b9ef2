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
    let mut conn = ConnectionOptions::default();
    let mut codings = Codings::default();
    let mut length: Option<u64> = None;
    let mut hosts = 0;
    let mut host: &[u8] = b"";
    let mut upgrade_field = false;
    let mut xff = 0;
    let mut key = None;
    let mut sticky = None;
    let mut seen = Seen {
        method: method_str.as_bytes(),
        target: target.as_bytes(),
        ..Seen::default()
    };
    let mut kinds = [Field::Other; MAX_HEADERS];
    for (f, kind) in fields.iter().zip(kinds.iter_mut()) {
        *kind = Field::of(f.name.as_bytes());
        match *kind {
            Field::Host => {
                hosts += 1;
                host = headers::trim(f.value);
            }
            Field::ContentLength => {
                let n = headers::content_length(f.value).ok_or(Reject(Status::BadRequest))?;
                if length.is_some_and(|m| m != n) {
                    return Err(Reject(Status::BadRequest));
                }
                length = Some(n);
            }
            Field::TransferEncoding => codings.add(f.value),
            Field::Connection => conn.add(f.value),
            Field::Upgrade => upgrade_field = true,
            Field::XForwardedFor => xff += 1,
            Field::Referer => seen.referer = Some(headers::trim(f.value)),
            Field::UserAgent => seen.user_agent = Some(headers::trim(f.value)),
            Field::XRequestId if seen.request_id.is_none() => {
                seen.request_id = Some(headers::trim(f.value));
            }
            _ => {}
        }
    }
    if hosts > 1 || (hosts == 0 && !http10) || !valid_host(host) {
        return Err(Reject(Status::BadRequest));
    }
    // RFC 9112 §3.2.2: the authority of an absolute-form target replaces any Host field
    let absolute = match form {
        Target::Absolute { authority, .. } => {
            host = authority;
            true
        }
        Target::Origin => false,
    };
    let path = match form {
        Target::Absolute { path, .. } => path,
        Target::Origin => target.as_bytes(),
    };
    let path = path
        .iter()
        .position(|&b| b == b'?')
        .and_then(|q| path.get(..q))
        .unwrap_or(path);
    let routed = client
        .router
        .route(host, path)
        .ok_or(Reject(Status::NotFound))?;
    // what the pool reads from the request: its hash key and its sticky cookie
    for (f, kind) in fields.iter().zip(kinds.iter()) {
        if let (Some(name), Field::Cookie, None) = (routed.sticky_cookie, *kind, sticky) {
            sticky = headers::cookie(f.value, name).and_then(crate::hash::parse_cookie_id);
        }
        match routed.key {
            KeySource::ClientIp => {}
            KeySource::Header(name)
                if key.is_none() && f.name.as_bytes().eq_ignore_ascii_case(name) =>
            {
                key = Some(crate::hash::stable_hash(0, headers::trim(f.value)));
            }
            KeySource::Cookie(name) if key.is_none() && *kind == Field::Cookie => {
                key = headers::cookie(f.value, name).map(|v| crate::hash::stable_hash(0, v));
            }
            _ => {}
        }
    }
    if let (Some(n), true) = (length, limits.max_body > 0) {
        if n > limits.max_body {
            // refused before a byte of the body is read or forwarded
            return Err(Reject(Status::PayloadTooLarge));
        }
    }
    let framing = if codings.count > 0 {
        // RFC 9112 §6.1 and §6.3: both framings, chunked not last, or any coding in an HTTP/1.0
        // request make the length unknowable; codings other than chunked are not implemented.
        if length.is_some() || http10 || !codings.chunked_last || codings.chunked_early {
            return Err(Reject(Status::BadRequest));
        }
        if !codings.only_chunked() {
            return Err(Reject(Status::NotImplemented));
        }
        Framing::Chunked
    } else {
        match length {
            Some(n) => Framing::Length(n),
            None => Framing::None,
        }
    };
    let upgrade = !http10 && conn.upgrade && upgrade_field;
    let keep_alive = !conn.close && (!http10 || conn.keep_alive);

    // Second pass: write the head for the backend. Kept lines are copied as they came, a run of
    // consecutive lines at a time; dropped or replaced ones cut the run.
    out.clear();
    let mut runs = Runs::new(head);
    let lines_start = fields
        .first()
        .map_or(runs.fields_end(), |f| runs.offset(f.name.as_bytes()));
    // the target sent on: origin-form (every backend understands it), less the prefix a route
    // strips; the path keeps its leading `/`
    let sent = match form {
        Target::Absolute { path, .. } => path,
        Target::Origin => target.as_bytes(),
    };
    let sent = sent.get(routed.strip..).unwrap_or(sent);
    if absolute || http10 || routed.strip > 0 {
        out.extend_from_slice(method_str.as_bytes());
        out.push(b' ');
        if !sent.starts_with(b"/") && sent != b"*" {
            out.push(b'/');
        }
        out.extend_from_slice(sent);
        out.extend_from_slice(b" HTTP/1.1\r\n");
    } else {
        // httparse accepts exactly `METHOD SP target SP HTTP/1.1 CRLF`: copy it as it is
        let line_start = runs.offset(method_str.as_bytes());
        // offsets of slices of the head; never outside it
        let line = head.get(line_start..lines_start);
        out.extend_from_slice(line.ok_or(Reject(Status::BadRequest))?);
    }
    let mut xff_written = false;
    for (f, kind) in fields.iter().zip(kinds.iter()) {
        let at = runs.offset(f.name.as_bytes());
        let keep = match *kind {
            // Connection cannot make Host hop-by-hop: an HTTP/1.1 request needs it
            Field::Host => !absolute,
            Field::Cookie if routed.strip_sticky_cookie => match routed.sticky_cookie {
                Some(name) => headers::cookie(f.value, name).is_none(),
                None => true,
            },
            Field::Expect
            | Field::Cookie
            | Field::Referer
            | Field::UserAgent
            | Field::XRequestId
            | Field::Date
            | Field::StrictTransportSecurity
            | Field::Other => !(conn.names_fields && headers::named_by_connection(fields, f.name)),
            Field::Upgrade => upgrade,
            // Content-Length and Transfer-Encoding are written once, normalised, below; the
            // others are hop-by-hop or ferrule's own to set
            _ => false,
        };
        if keep {
            runs.keep(at);
            continue;
        }
        runs.cut(at, out);
        match *kind {
            Field::Host => put_field(out, b"Host", host),
            Field::Cookie => {
                // the sticky cookie goes; the others in this field stay, in order
                if let Some(name) = routed.sticky_cookie {
                    put_cookies_without(out, f.value, name);
                }
            }
            Field::Te if headers::list(f.value).any(|t| t.eq_ignore_ascii_case(b"trailers")) => {
                put_field(out, b"TE", b"trailers");
            }
            Field::XForwardedFor if !xff_written => {
                put_forwarded_for(out, fields, &kinds, client.ip);
                xff_written = true;
            }
            _ => {}
        }
    }
    runs.cut(runs.fields_end(), out);
    if absolute && hosts == 0 {
        put_field(out, b"Host", host);
    }
    match framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"Content-Length: ");
            headers::put_u64(out, n);
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        Framing::None | Framing::UntilClose => {}
    }
    if upgrade {
        out.extend_from_slice(b"Connection: upgrade\r\n");
    }
    if xff == 0 {
        put_forwarded_for(out, fields, &kinds, client.ip);
    }
    out.extend_from_slice(if client.tls {
        b"X-Forwarded-Proto: https\r\n"
    } else {
        b"X-Forwarded-Proto: http\r\n"
    });
    if !host.is_empty() {
        put_field(out, b"X-Forwarded-Host", host);
    }
    if let (None, Some(id)) = (seen.request_id, client.request_id) {
        put_field(out, b"X-Request-Id", id);
        seen.request_id = Some(id);
    }
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
        sticky,
        client: forwarded_client(fields, &kinds, client),
        pool: routed.pool,
        route: routed.route,
    };
    Ok(Some((head, len, seen)))
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

/// A `Cookie` field with every cookie of `value` but `name` (none when nothing is left).
fn put_cookies_without(out: &mut Vec<u8>, value: &[u8], name: &[u8]) {
    let mut kept = value
        .split(|&b| b == b';')
        .map(headers::trim)
        .filter(|pair| {
            !pair.is_empty()
                && pair
                    .iter()
                    .position(|&b| b == b'=')
                    .and_then(|eq| pair.get(..eq))
                    .is_none_or(|key| headers::trim(key) != name)
        })
        .peekable();
    if kept.peek().is_none() {
        return;
    }
    out.extend_from_slice(b"Cookie: ");
    for (i, pair) in kept.enumerate() {
        if i > 0 {
            out.extend_from_slice(b"; ");
        }
        out.extend_from_slice(pair);
    }
    out.extend_from_slice(b"\r\n");
}

/// `X-Forwarded-For`: the values the client sent (all fields, joined), then the client's address.
fn put_forwarded_for(
    out: &mut Vec<u8>,
    fields: &[httparse::Header<'_>],
    kinds: &[Field],
    ip: IpAddr,
) {
    out.extend_from_slice(b"X-Forwarded-For: ");
    for (f, kind) in fields.iter().zip(kinds) {
        if *kind == Field::XForwardedFor {
            let v = headers::trim(f.value);
            if !v.is_empty() {
                out.extend_from_slice(v);
                out.extend_from_slice(b", ");
            }
        }
    }
    put_ip(out, ip);
    out.extend_from_slice(b"\r\n");
}

/// Writes an IP address without going through `fmt` for the common IPv4 case.
fn put_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                headers::put_u64(out, u64::from(*octet));
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write;
            // writing into a Vec cannot fail
            let _ = write!(out, "{v6}");
        }
    }
}

/// A `Host` value: one `uri-host [ ":" port ]` (RFC 9110 §7.2), in the characters RFC 3986 allows
/// there: unreserved, percent-encoded and sub-delimiters, `:` and the brackets of an IPv6 literal.
/// A comma (a list of hosts), user info (`@`), a path, query or fragment, whitespace, control and
/// non-ASCII bytes are refused. Empty is allowed (RFC 9112 §3.2: a target without an authority).
pub(crate) fn valid_host(host: &[u8]) -> bool {
    host.iter().all(|&b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b';'
                    | b'='
                    | b':'
                    | b'['
                    | b']'
            )
    })
}

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
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const LIMITS: Limits = Limits {
        max_head: 16384,
        max_uri: 8192,
        max_headers: crate::http::DEFAULT_MAX_HEADERS,
        max_body: 0,
    };
    const ROUTER: OnePool<'static> = OnePool(Routed {
        pool: 0,
        route: None,
        strip: 0,
        key: KeySource::ClientIp,
        sticky_cookie: None,
        strip_sticky_cookie: false,
    });
    const CLIENT: ClientInfo = ClientInfo {
        ip: IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
        tls: false,
        router: &ROUTER,
        trusted: &crate::client_ip::TrustedProxies::EMPTY,
        request_id: None,
    };

    fn go(head: &str) -> Result<(RequestHead, String), Reject> {
        let bytes = head.as_bytes();
        let end = find_head_end(bytes, 0)?.expect("complete head");
        let mut out = Vec::new();
        let (req, len) = rewrite(&bytes[..end], &LIMITS, &CLIENT, &mut out)?.expect("request");
        assert_eq!(len, end);
        Ok((req, String::from_utf8(out).expect("utf8")))
    }

    #[test]
    fn simple_get_is_rewritten() {
        let (req, out) =
            go("GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n").unwrap();
        assert_eq!(req.method, Method::Get);
        assert_eq!(req.framing, Framing::None);
        assert!(req.keep_alive && !req.http10 && !req.upgrade);
        assert_eq!(
            out,
            "GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\
             X-Forwarded-For: 10.1.2.3\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: example.com\r\n\r\n"
        );
    }

    #[test]
    fn request_id_is_added_when_absent_and_kept_when_present_and_seen() {
        let client = ClientInfo {
            request_id: Some(b"0123456789abcdef0123456789abcdef"),
            ..CLIENT
        };
        let mut out = Vec::new();
        let head = b"GET /p HTTP/1.1\r\nHost: h\r\nUser-Agent:  ua/1 \r\nReferer: r\r\n\r\n";
        let (_, _, seen) = rewrite_seen(head, &LIMITS, &client, &mut out)
            .unwrap()
            .unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.ends_with(
                "X-Forwarded-Host: h\r\nX-Request-Id: 0123456789abcdef0123456789abcdef\r\n\r\n"
            ),
            "{text}"
        );
        assert_eq!(
            (seen.method, seen.target, seen.host),
            (&b"GET"[..], &b"/p"[..], &b"h"[..])
        );
        assert_eq!(seen.user_agent, Some(&b"ua/1"[..]));
        assert_eq!(seen.referer, Some(&b"r"[..]));
        assert_eq!(
            seen.request_id,
            Some(&b"0123456789abcdef0123456789abcdef"[..])
        );

        let head = b"GET / HTTP/1.1\r\nx-request-id: mine\r\nHost: h\r\n\r\n";
        let (_, _, seen) = rewrite_seen(head, &LIMITS, &client, &mut out)
            .unwrap()
            .unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(
            text.matches("equest-id").count() + text.matches("equest-Id").count(),
            1
        );
        assert!(text.contains("\r\nx-request-id: mine\r\n"), "{text}");
        assert_eq!(seen.request_id, Some(&b"mine"[..]));

        // off: nothing added
        let (_, out) = go("GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert!(!out.to_ascii_lowercase().contains("x-request-id"), "{out}");
    }

    #[test]
    fn hop_by_hop_fields_are_removed() {
        let (_, out) = go("POST / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n\
             Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers, deflate\r\nTrailer: X-T\r\n\
             Upgrade: h2c\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nContent-Length: 3\r\nKeep: me\r\n\r\n")
        .unwrap();
        assert_eq!(
            out,
            "POST / HTTP/1.1\r\nHost: h\r\nTE: trailers\r\nKeep: me\r\nContent-Length: 3\r\n\
             X-Forwarded-For: 10.1.2.3\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\n\r\n"
        );
    }

    #[test]
    fn forwarded_for_is_appended() {
        let (_, out) = go("GET / HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1\r\nHost: h\r\nx-forwarded-for: 2.2.2.2, 3.3.3.3\r\n\r\n")
            .unwrap();
        assert!(
            out.contains("\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, 10.1.2.3\r\nHost: h\r\n")
        );
        assert_eq!(out.matches("orwarded-For").count(), 1);
    }

    #[test]
    fn upgrade_is_kept_when_asked_for() {
        let (req, out) =
            go("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
                .unwrap();
        assert!(req.upgrade);
        assert!(out.contains("Upgrade: websocket\r\n"));
        assert!(out.contains("Connection: upgrade\r\n"));
    }

    #[test]
    fn http10_keep_alive_only_when_asked() {
        let (req, _) = go("GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(req.http10 && !req.keep_alive);
        let (req, out) = go("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
        assert!(req.http10 && req.keep_alive);
        assert!(out.starts_with("GET / HTTP/1.1\r\n"));
        let (req, _) = go("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").unwrap();
        assert!(!req.keep_alive);
    }

    #[test]
    fn framing_is_decided_and_normalised() {
        let (req, out) =
            go("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n")
                .unwrap();
        assert_eq!(req.framing, Framing::Length(5));
        assert_eq!(out.matches("Content-Length").count(), 1);
        let (req, out) =
            go("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n").unwrap();
        assert_eq!(req.framing, Framing::Chunked);
        assert!(out.contains("Transfer-Encoding: chunked\r\n"));
        let (req, out) = go("GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n").unwrap();
        assert!(!req.needs_host);
        assert!(out.contains("Expect: 100-continue\r\n"));
        let (req, out) = go("GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(req.needs_host && !out.contains("Host"));
        let (_, out) = go("GET / HTTP/1.1\r\nHost: h\r\nConnection: Host\r\n\r\n").unwrap();
        assert!(
            out.contains("\r\nHost: h\r\n"),
            "Connection cannot remove Host: {out}"
        );
    }

    #[test]
    fn smuggling_probes_are_refused() {
        let cases: &[(&str, u16)] = &[
            ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -5\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
            ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: h\r\nX-Fold: a\r\n b\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
            ("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", 501),
            ("GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        ];
        for (head, status) in cases {
            assert_eq!(
                go(head).map(|_| ()).map_err(|r| r.0.code()),
                Err(*status),
                "{head:?}"
            );
        }
    }

    #[test]
    fn request_line_errors_get_their_status() {
        let cases: &[(&str, u16)] = &[
            // a space inside the target: a malformed line, not a version problem
            ("GET /a b c HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400),
            ("GET / http/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET / HTTP/1\r\nHost: h\r\n\r\n", 400),
            ("GET / HTTP/11\r\nHost: h\r\n\r\n", 400),
            ("GET / HTTP/1.1.1\r\nHost: h\r\n\r\n", 400),
            ("GET /\r\nHost: h\r\n\r\n", 400),
            ("GET\r\nHost: h\r\n\r\n", 400),
            ("G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            // well-formed, but a version ferrule does not speak
            ("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
            ("GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505),
            ("GET / HTTP/0.9\r\nHost: h\r\n\r\n", 505),
            ("\r\nGET / HTTP/3.0\r\nHost: h\r\n\r\n", 505),
            // targets that are neither origin- nor absolute-form
            ("GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET a/b HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET h:80 HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET http://u@h/x HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET http://h/x#f HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        ];
        for (head, status) in cases {
            assert_eq!(
                go(head).map(|_| ()).map_err(|r| r.0.code()),
                Err(*status),
                "{head:?}"
            );
        }
        let (_, out) = go("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert!(out.starts_with("OPTIONS * HTTP/1.1\r\n"), "{out}");
    }

    #[test]
    fn host_values_are_one_authority() {
        for host in [
            "a@b",
            "a?b",
            "a#b",
            "a/b",
            "a\\b",
            "a,b",
            "a b",
            "a\x7fb",
            "caf\u{e9}",
        ] {
            let head = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
            assert_eq!(
                go(&head).map(|_| ()),
                Err(Reject(Status::BadRequest)),
                "{host:?}"
            );
        }
        for host in [
            "example.com",
            "example.com:8080",
            "[::1]:80",
            "a-b_c.d~e",
            "xn--caf-dma",
            "",
        ] {
            let head = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
            assert!(go(&head).is_ok(), "{host:?}");
        }
    }

    #[test]
    fn absolute_form_authority_replaces_host() {
        let (req, out) = go(
            "GET http://Target.example:81/p?q=1 HTTP/1.1\r\nAccept: */*\r\nHost: other\r\nX: y\r\n\r\n",
        )
        .unwrap();
        assert!(!req.needs_host);
        assert_eq!(
            out,
            "GET /p?q=1 HTTP/1.1\r\nAccept: */*\r\nHost: Target.example:81\r\nX: y\r\n\
             X-Forwarded-For: 10.1.2.3\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: Target.example:81\r\n\r\n"
        );
        // no path: "/"; a query straight after the authority keeps it
        let (_, out) = go("GET HTTPS://t HTTP/1.1\r\nHost: o\r\n\r\n").unwrap();
        assert!(out.starts_with("GET / HTTP/1.1\r\nHost: t\r\n"), "{out}");
        let (_, out) = go("GET http://t?x HTTP/1.1\r\nHost: o\r\n\r\n").unwrap();
        assert!(out.starts_with("GET /?x HTTP/1.1\r\nHost: t\r\n"), "{out}");
        // HTTP/1.0 without Host: the target's authority becomes the Host
        let (req, out) = go("GET http://t/a HTTP/1.0\r\n\r\n").unwrap();
        assert!(!req.needs_host);
        assert!(out.starts_with("GET /a HTTP/1.1\r\nHost: t\r\n"), "{out}");
        assert_eq!(out.matches("\nHost: t\r\n").count(), 1, "{out}");
        // still exactly one Host field required of HTTP/1.1
        assert!(go("GET http://t/ HTTP/1.1\r\n\r\n").is_err());
        assert!(go("GET http://t/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").is_err());
    }

    #[test]
    fn head_requests_are_recognised_before_parsing() {
        assert!(is_head_request(b"HEAD / HTTP/1.1\r\nHo"));
        assert!(is_head_request(b"\r\n\r\nHEAD /x"));
        assert!(!is_head_request(b"HEADER / HTTP/1.1"));
        assert!(!is_head_request(b"GET / HTTP/1.1"));
        assert!(!is_head_request(b"HEA"));
    }

    #[test]
    fn bare_lf_and_partial_heads() {
        assert_eq!(
            find_head_end(b"GET / HTTP/1.1\nHost: h\r\n\r\n", 0),
            Err(Reject(Status::BadRequest))
        );
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: h\r\n", 0), Ok(None));
        let head = b"GET / HTTP/1.1\r\nHost: h\r\n\r\nBODY";
        // searching again from any earlier point finds the same end
        for from in 0..27 {
            assert_eq!(find_head_end(head, from), Ok(Some(27)), "from {from}");
        }
        assert_eq!(
            find_head_end(b"GET", 10),
            Ok(None),
            "a stale position past the end"
        );
    }

    #[test]
    fn limits() {
        let small = Limits {
            max_head: 64,
            max_uri: 16,
            ..LIMITS
        };
        assert_eq!(check_partial(26, true, &small), Ok(()));
        // a request line still open past the longest target: 414
        assert_eq!(
            check_partial(80, false, &small),
            Err(Reject(Status::UriTooLong))
        );
        assert_eq!(check_partial(40, false, &small), Ok(()));
        // whole lines past the head limit: 431
        assert_eq!(
            check_partial(88, true, &small),
            Err(Reject(Status::HeaderFieldsTooLarge))
        );
        let mut out = Vec::new();
        let target = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(20));
        assert_eq!(
            rewrite(target.as_bytes(), &small, &CLIENT, &mut out),
            Err(Reject(Status::UriTooLong))
        );
        let fields = format!(
            "GET / HTTP/1.1\r\nHost: h\r\n{}\r\n",
            "X: y\r\n".repeat(120)
        );
        assert_eq!(
            rewrite(fields.as_bytes(), &LIMITS, &CLIENT, &mut out),
            Err(Reject(Status::HeaderFieldsTooLarge))
        );
    }

    #[test]
    fn request_lines_are_checked_before_the_head_is_whole() {
        for ok in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: h\r\nX-Lo",
            b"\r\nPOST /a?b HTTP/1.0\r\n",
            b"OPTIONS * HTTP/1.1\r\nHo",
        ] {
            assert_eq!(check_request_line(ok), Ok(()), "{ok:?}");
        }
        for (bad, status) in [
            (&b"GET /\r\n"[..], Status::BadRequest),
            (b"GET / HTTP/1.1 x\r\nHost: h\r\n", Status::BadRequest),
            (b"G\x01T / HTTP/1.1\r\n", Status::BadRequest),
            (b"GET / HTTP/2.0\r\n", Status::VersionNotSupported),
        ] {
            assert_eq!(check_request_line(bad), Err(Reject(status)), "{bad:?}");
        }
    }

    #[test]
    fn field_count_and_body_size_limits() {
        let tight = Limits {
            max_headers: 3,
            max_body: 10,
            ..LIMITS
        };
        let mut out = Vec::new();
        let three = b"POST / HTTP/1.1\r\nHost: h\r\nA: 1\r\nContent-Length: 10\r\n\r\n";
        assert!(rewrite(three, &tight, &CLIENT, &mut out).is_ok());
        let four = b"POST / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nContent-Length: 1\r\n\r\n";
        assert_eq!(
            rewrite(four, &tight, &CLIENT, &mut out),
            Err(Reject(Status::HeaderFieldsTooLarge))
        );
        let big = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n";
        assert_eq!(
            rewrite(big, &tight, &CLIENT, &mut out),
            Err(Reject(Status::PayloadTooLarge))
        );
        // more fields than the parser has room for: 431 too
        let many = format!(
            "GET / HTTP/1.1\r\nHost: h\r\n{}\r\n",
            "X: y\r\n".repeat(crate::http::MAX_HEADERS + 1)
        );
        let roomy = Limits {
            max_head: 1 << 20,
            max_headers: crate::http::MAX_HEADERS,
            ..LIMITS
        };
        assert_eq!(
            rewrite(many.as_bytes(), &roomy, &CLIENT, &mut out),
            Err(Reject(Status::HeaderFieldsTooLarge))
        );
    }

    #[test]
    fn empty_lines_do_not_complete_the_request_line() {
        // a lone CRLF before the request line is not the request line: a 0.9 line after it must
        // still be checked (and answered at once), a long target still gets 414
        assert!(!request_line_complete(b"\r\n", 0));
        assert!(!request_line_complete(b"\r\n\r\nGET /", 2));
        assert!(request_line_complete(b"\r\nGET /\r\n", 2));
        assert!(request_line_complete(b"GET / HTTP/1.1\r\nHo", 5));
        assert!(!request_line_complete(b"GET / HTTP/1.1\r\nHo", 17));
        assert!(!request_line_complete(b"\r", 0));
        assert_eq!(
            check_request_line(b"\r\nGET /\r\n"),
            Err(Reject(Status::BadRequest))
        );
    }

    #[test]
    fn leading_empty_lines_are_skipped() {
        let mut out = Vec::new();
        assert_eq!(rewrite(b"\r\n\r\n", &LIMITS, &CLIENT, &mut out), Ok(None));
        let head = b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
        let (_, len) = rewrite(head, &LIMITS, &CLIENT, &mut out).unwrap().unwrap();
        assert_eq!(len, head.len());
    }
}

#[cfg(test)]
mod routing_tests {
    use super::*;

    /// A router that sends `/v2/...` to pool 1 stripping `/v2`, `static.example` to pool 2 with
    /// a header key and a sticky cookie, and nothing else anywhere (404).
    struct Two;

    impl<'a> Router<'a> for Two {
        fn route(&self, host: &[u8], path: &[u8]) -> Option<Routed<'a>> {
            let base = Routed {
                pool: 0,
                route: None,
                strip: 0,
                key: KeySource::ClientIp,
                sticky_cookie: None,
                strip_sticky_cookie: false,
            };
            if path.starts_with(b"/v2") {
                return Some(Routed {
                    pool: 1,
                    route: Some(0),
                    strip: 3,
                    ..base
                });
            }
            (host == b"static.example").then_some(Routed {
                pool: 2,
                route: Some(1),
                key: KeySource::Header(b"X-User"),
                sticky_cookie: Some(b"S"),
                strip_sticky_cookie: true,
                ..base
            })
        }
    }

    fn route(head: &[u8]) -> Result<(RequestHead, String), Reject> {
        let client = ClientInfo {
            ip: IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 2, 3)),
            tls: false,
            router: &Two,
            trusted: &crate::client_ip::TrustedProxies::EMPTY,
            request_id: None,
        };
        let limits = Limits {
            max_head: 16 * 1024,
            max_uri: 8 * 1024,
            max_headers: 100,
            max_body: 0,
        };
        let mut out = Vec::new();
        let (h, _) = rewrite(head, &limits, &client, &mut out)?.expect("a whole head");
        Ok((h, String::from_utf8(out).expect("text")))
    }

    #[test]
    fn the_router_picks_the_pool_and_the_target_loses_the_prefix() {
        let (h, out) = route(b"GET /v2/users?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!((h.pool, h.route), (1, Some(0)));
        assert!(out.starts_with("GET /users?x=1 HTTP/1.1\r\n"), "{out}");
        // the whole path matched: `/` goes on, with the query
        let (_, out) = route(b"GET /v2?q HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert!(out.starts_with("GET /?q HTTP/1.1\r\n"), "{out}");
        // absolute-form: its path is routed and stripped the same way
        let (h, out) = route(b"GET http://a/v2/x HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(h.pool, 1);
        assert!(out.starts_with("GET /x HTTP/1.1\r\n"), "{out}");
    }

    #[test]
    fn the_pools_key_and_sticky_cookie_are_read_after_routing() {
        let (h, out) = route(
            b"GET /a HTTP/1.1\r\nHost: static.example\r\nX-User: u1\r\nCookie: a=1; S=00000000000000ff\r\n\r\n",
        )
        .unwrap();
        assert_eq!(h.pool, 2);
        assert_eq!(h.key, Some(crate::hash::stable_hash(0, b"u1")));
        assert!(h.sticky.is_some());
        assert!(out.contains("\r\nCookie: a=1\r\n"), "stripped: {out}");
        assert!(out.starts_with("GET /a HTTP/1.1\r\n"), "{out}");
    }

    #[test]
    fn no_route_is_404() {
        assert_eq!(
            route(b"GET /x HTTP/1.1\r\nHost: other\r\n\r\n").unwrap_err(),
            Reject(Status::NotFound)
        );
    }
}
