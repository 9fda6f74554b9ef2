//! The second pass of a request head's rewrite (`request.rs`): what is written for the backend.
//! The request line (copied, or written anew in origin-form less a stripped prefix), the field
//! lines (kept ones copied a run at a time, hop-by-hop ones dropped, `Host`, `Cookie`, `TE` and
//! `X-Forwarded-For` rewritten), the normalised framing fields and the forwarding fields
//! ferrule adds. Pure: bytes in, bytes out.

use std::net::IpAddr;

use super::*;

/// The request line sent on ([`copy_request_line`]).
pub(super) struct Line<'a> {
    pub(super) method: &'a [u8],
    /// The target in origin-form.
    pub(super) sent: &'a [u8],
    /// Bytes of the path a route strips.
    pub(super) strip: usize,
    /// Written anew (absolute-form, HTTP/1.0, a stripped prefix), not copied.
    pub(super) rewrite: bool,
}

/// The request line into `out`: origin-form (every backend understands it) less the prefix a
/// route strips (the path keeps its leading `/`), as HTTP/1.1.
#[inline(always)]
pub(super) fn copy_request_line(
    head: &[u8],
    fields: &[httparse::Header<'_>],
    line: &Line<'_>,
    runs: &Runs<'_>,
    out: &mut Vec<u8>,
) -> Result<(), Reject> {
    if line.rewrite {
        let sent = line.sent.get(line.strip..).unwrap_or(line.sent);
        put_request_line(out, line.method, sent);
        return Ok(());
    }
    // httparse accepts exactly `METHOD SP target SP HTTP/1.1 CRLF`: copy it as it is
    let lines_start = fields
        .first()
        .map_or(runs.fields_end(), |f| runs.offset(f.name.as_bytes()));
    let line_start = runs.offset(line.method);
    // offsets of slices of the head; never outside it
    let copied = head.get(line_start..lines_start);
    out.extend_from_slice(copied.ok_or(Reject(Status::BadRequest))?);
    Ok(())
}

/// What decides how a request's field lines are copied ([`copy_fields`]).
pub(super) struct Keep<'a> {
    pub(super) absolute: bool,
    pub(super) upgrade: bool,
    /// `Connection` names fields (they are hop-by-hop then).
    pub(super) names_fields: bool,
    pub(super) host: &'a [u8],
    pub(super) client_ip: IpAddr,
}

/// The second pass: the field lines for the backend into `out`. Kept lines are copied as they
/// came, a run of consecutive lines at a time; dropped or replaced ones cut the run.
#[inline(always)]
pub(super) fn copy_fields(
    fields: &[httparse::Header<'_>],
    kinds: &[Field],
    routed: &Routed<'_>,
    k: &Keep<'_>,
    runs: &mut Runs<'_>,
    out: &mut Vec<u8>,
) {
    let mut xff_written = false;
    for (f, kind) in fields.iter().zip(kinds.iter()) {
        let at = runs.offset(f.name.as_bytes());
        let keep = match *kind {
            // Connection cannot make Host hop-by-hop: an HTTP/1.1 request needs it
            Field::Host => !k.absolute,
            Field::Upgrade => k.upgrade,
            _ => keeps(*kind, f, fields, k.names_fields, routed),
        };
        if keep {
            runs.keep(at);
            continue;
        }
        runs.cut(at, out);
        match *kind {
            Field::Host => put_field(out, b"Host", k.host),
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
                put_forwarded_for(out, fields, kinds, k.client_ip);
                xff_written = true;
            }
            _ => {}
        }
    }
}

/// A request line written anew: `method`, the origin-form target `sent`, HTTP/1.1.
#[inline]
pub(super) fn put_request_line(out: &mut Vec<u8>, method: &[u8], sent: &[u8]) {
    out.extend_from_slice(method);
    out.push(b' ');
    if !sent.starts_with(b"/") && sent != b"*" {
        out.push(b'/');
    }
    out.extend_from_slice(sent);
    out.extend_from_slice(b" HTTP/1.1\r\n");
}

/// Whether the second pass copies the field `f` (of kind `kind`, neither `Host` nor `Upgrade`)
/// as it came: end-to-end fields unless `Connection` names them (`names_fields`: it names
/// some), the `Cookie` fields unless the sticky cookie is to go and is in it. `Content-Length`
/// and `Transfer-Encoding` are written once, normalised, after the fields; the others are
/// hop-by-hop or ferrule's own to set.
#[inline]
pub(super) fn keeps(
    kind: Field,
    f: &httparse::Header<'_>,
    fields: &[httparse::Header<'_>],
    names_fields: bool,
    routed: &Routed<'_>,
) -> bool {
    match kind {
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
        | Field::Other => !(names_fields && headers::named_by_connection(fields, f.name)),
        _ => false,
    }
}

/// The body's framing fields, normalised, and `Connection: upgrade` when the request switches
/// protocols.
#[inline]
pub(super) fn put_framing(out: &mut Vec<u8>, framing: Framing, upgrade: bool) {
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
}

/// `X-Forwarded-Proto` (`tls`: https), `X-Forwarded-Host` (when there is a host) and
/// `request_id` as `X-Request-Id` when the request had none (noted in `seen`).
#[inline(always)]
pub(super) fn put_forwarded<'a>(
    out: &mut Vec<u8>,
    tls: bool,
    request_id: Option<&'a [u8]>,
    host: &[u8],
    seen: &mut Seen<'a>,
) {
    out.extend_from_slice(if tls {
        b"X-Forwarded-Proto: https\r\n"
    } else {
        b"X-Forwarded-Proto: http\r\n"
    });
    if !host.is_empty() {
        put_field(out, b"X-Forwarded-Host", host);
    }
    if let (None, Some(id)) = (seen.request_id, request_id) {
        put_field(out, b"X-Request-Id", id);
        seen.request_id = Some(id);
    }
}

/// A `Cookie` field with every cookie of `value` but `name` (none when nothing is left).
#[inline]
pub(super) fn put_cookies_without(out: &mut Vec<u8>, value: &[u8], name: &[u8]) {
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
#[inline]
pub(super) fn put_forwarded_for(
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
    headers::put_ip(out, ip);
    out.extend_from_slice(b"\r\n");
}
