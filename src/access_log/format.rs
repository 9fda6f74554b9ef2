//! The two line formats of the access log, `combined` and `json`, with their escaping and the
//! time stamps they print ([`Stamp`]); run on the workers, each with its own stamp.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{Entry, Event, Text};
use crate::http::date::Civil;
use crate::http::headers::put_ip;

/// `remote - - [time] "request" status body_bytes "referer" "user_agent" backend upstream_time
/// total_time "request_id"`: nginx's combined, then the backend address (`-`: none), the
/// upstream response time and the total time in seconds, and the request id; then `pool=NAME`
/// (the pool the request was routed to; absent when none was), the event when not a request,
/// and `close=REASON`.
pub fn combined(e: &Entry, at: &Stamp, out: &mut Vec<u8>) {
    put_ip(out, e.peer);
    out.extend_from_slice(b" - - [");
    out.extend_from_slice(&at.clf);
    out.extend_from_slice(b"] \"");
    match (e.event, e.get(Text::Method)) {
        (Event::TlsHandshakeFailed, _) | (Event::Request, None) => out.extend_from_slice(b"-"),
        (Event::Request, Some(method)) => {
            escape_clf(method, out);
            out.push(b' ');
            escape_clf(e.get(Text::Target).unwrap_or(b"-"), out);
            out.extend_from_slice(protocol(e).1);
        }
    }
    out.extend_from_slice(b"\" ");
    put_status(e.status, out);
    out.push(b' ');
    put_num(e.bytes_out.saturating_sub(e.head_out), out);
    out.extend_from_slice(b" \"");
    quoted_or_dash(e.get(Text::Referer), out);
    out.extend_from_slice(b"\" \"");
    quoted_or_dash(e.get(Text::UserAgent), out);
    out.extend_from_slice(b"\" ");
    match e.backend {
        Some(addr) => {
            put_addr(addr, out);
            out.push(b' ');
        }
        None => out.extend_from_slice(b"- "),
    }
    match upstream_time(e) {
        Some(d) => seconds(d, out),
        None => out.push(b'-'),
    }
    out.push(b' ');
    seconds(e.ended.saturating_duration_since(e.started), out);
    out.extend_from_slice(b" \"");
    quoted_or_dash(e.get(Text::RequestId), out);
    out.push(b'"');
    if let Some(pool) = e.get(Text::Pool) {
        out.extend_from_slice(b" pool=");
        escape_clf(pool, out);
    }
    if e.event != Event::Request {
        out.push(b' ');
        out.extend_from_slice(e.event.name().as_bytes());
    }
    if let Some(reason) = e.close {
        out.extend_from_slice(b" close=");
        out.extend_from_slice(reason.name().as_bytes());
    }
    out.push(b'\n');
}

/// One JSON object per line: the combined fields by name, plus the request id, bytes each way,
/// the pool, TLS version and SNI (when TLS) and the event.
pub fn json(e: &Entry, at: &Stamp, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"time\":\"");
    out.extend_from_slice(&at.iso);
    put_digits3(at.milli, out);
    out.extend_from_slice(b"Z\",\"event\":\"");
    out.extend_from_slice(e.event.name().as_bytes());
    out.extend_from_slice(b"\",\"client\":\"");
    put_ip(out, e.peer);
    out.push(b'"');
    let text = |out: &mut Vec<u8>, key: &str, field: Text| {
        if let Some(v) = e.get(field) {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":\"");
            escape_json(v, out);
            out.push(b'"');
        }
    };
    text(out, "method", Text::Method);
    text(out, "target", Text::Target);
    if e.event == Event::Request && e.get(Text::Method).is_some() {
        out.extend_from_slice(protocol(e).0);
    }
    text(out, "host", Text::Host);
    out.extend_from_slice(b",\"status\":");
    put_num(e.status, out);
    out.extend_from_slice(b",\"bytes_in\":");
    put_num(e.bytes_in, out);
    out.extend_from_slice(b",\"bytes_out\":");
    put_num(e.bytes_out, out);
    out.extend_from_slice(b",\"body_bytes_out\":");
    put_num(e.bytes_out.saturating_sub(e.head_out), out);
    text(out, "referer", Text::Referer);
    text(out, "user_agent", Text::UserAgent);
    text(out, "request_id", Text::RequestId);
    text(out, "pool", Text::Pool);
    if let Some(addr) = e.backend {
        out.extend_from_slice(b",\"backend\":\"");
        put_addr(addr, out);
        out.push(b'"');
    }
    if let Some(d) = upstream_time(e) {
        out.extend_from_slice(b",\"upstream_time\":");
        seconds(d, out);
    }
    out.extend_from_slice(b",\"total_time\":");
    seconds(e.ended.saturating_duration_since(e.started), out);
    if let Some(v) = e.tls {
        out.extend_from_slice(b",\"tls\":\"");
        out.extend_from_slice(v.as_bytes());
        out.push(b'"');
    }
    text(out, "sni", Text::Sni);
    if let Some(reason) = e.close {
        out.extend_from_slice(b",\"close\":\"");
        out.extend_from_slice(reason.name().as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b"}\n");
}

/// The request's protocol as the `json` format writes it (a key and its value) and as the
/// request line of `combined` ends.
fn protocol(e: &Entry) -> (&'static [u8], &'static [u8]) {
    if e.http2 {
        (b",\"protocol\":\"HTTP/2.0\"", b" HTTP/2.0")
    } else if e.http10 {
        (b",\"protocol\":\"HTTP/1.0\"", b" HTTP/1.0")
    } else {
        (b",\"protocol\":\"HTTP/1.1\"", b" HTTP/1.1")
    }
}

/// `TLSv1.3`, `TLSv1.2`: a TLS version as the logs of nginx and HAProxy name it.
pub fn tls_name(v: rustls::ProtocolVersion) -> &'static str {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3",
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2",
        _ => "TLS",
    }
}

fn upstream_time(e: &Entry) -> Option<Duration> {
    let start = e.upstream_started?;
    Some(
        e.upstream_ended
            .unwrap_or(e.ended)
            .saturating_duration_since(start),
    )
}

fn quoted_or_dash(v: Option<&[u8]>, out: &mut Vec<u8>) {
    match v {
        Some(v) => escape_clf(v, out),
        None => out.push(b'-'),
    }
}

/// `1.234`: seconds with milliseconds.
fn seconds(d: Duration, out: &mut Vec<u8>) {
    let (secs, ms) = (d.as_secs(), d.subsec_millis());
    if secs < 10 {
        // nearly every line: one copy of five bytes
        out.extend_from_slice(&[
            b'0' + secs as u8,
            b'.',
            b'0' + (ms / 100) as u8,
            b'0' + (ms / 10 % 10) as u8,
            b'0' + (ms % 10) as u8,
        ]);
        return;
    }
    put_num(secs, out);
    out.push(b'.');
    put_digits3(ms as u16, out);
}

/// A number in decimal (a worker formats millions of them: no `fmt` machinery).
fn put_num(n: impl itoa::Integer, out: &mut Vec<u8>) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `n` (below 1000) as three digits, zero-padded.
fn put_digits3(n: u16, out: &mut Vec<u8>) {
    let n = n % 1000;
    out.extend_from_slice(&[
        b'0' + (n / 100) as u8,
        b'0' + (n / 10 % 10) as u8,
        b'0' + (n % 10) as u8,
    ]);
}

/// A status as nginx logs it: three digits (`000` when there was none).
fn put_status(status: u16, out: &mut Vec<u8>) {
    if status < 1000 {
        put_digits3(status, out);
    } else {
        put_num(status, out);
    }
}

fn put_addr(addr: SocketAddr, out: &mut Vec<u8>) {
    match addr {
        SocketAddr::V4(a) => {
            put_ip(out, IpAddr::V4(*a.ip()));
            out.push(b':');
            put_num(a.port(), out);
        }
        SocketAddr::V6(a) => {
            let _ = write!(out, "{a}");
        }
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// nginx's escaping of logged variables: `"`, `\`, control and non-ASCII bytes become `\xHH`.
pub fn escape_clf(mut v: &[u8], out: &mut Vec<u8>) {
    // bounded: each round consumes a run of plain bytes and one escaped byte
    loop {
        let (good, rest) = v.split_at(plain_clf_prefix(v));
        out.extend_from_slice(good);
        let Some((&b, tail)) = rest.split_first() else {
            return;
        };
        out.extend_from_slice(&[
            b'\\',
            b'x',
            HEX[usize::from(b >> 4)],
            HEX[usize::from(b & 15)],
        ]);
        v = tail;
    }
}

/// Whether `escape_clf` copies byte `b` as it is.
fn plain_clf(b: u8) -> bool {
    b != b'"' && b != b'\\' && (0x20..0x7f).contains(&b)
}

/// How many of `v`'s first bytes are plain. Eight bytes at a time: a word has no byte to escape
/// when none is below 0x20, none has the high bit, and none is 0x7f, `"` or `\` (the classic
/// "has a zero byte" test on the word xor each). A line's fields are nearly always all plain, so
/// this is most of the work of writing a line.
fn plain_clf_prefix(v: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut done = 0;
    for chunk in v.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let special = (w.wrapping_sub(ONES * 0x20) & !w & HIGH)
            | (w & HIGH)
            | has_zero(w ^ (ONES * 0x7f))
            | has_zero(w ^ (ONES * u64::from(b'"')))
            | has_zero(w ^ (ONES * u64::from(b'\\')));
        if special != 0 {
            break;
        }
        done += 8;
    }
    let rest = v.get(done..).unwrap_or_default();
    done + rest.iter().take_while(|&&b| plain_clf(b)).count()
}

/// A JSON string's contents: `"` and `\` escaped, control characters as `\u00HH`, valid UTF-8 as
/// it is, and each byte that is not UTF-8 as U+FFFD.
pub fn escape_json(mut v: &[u8], out: &mut Vec<u8>) {
    // bounded: every round consumes at least one byte, or ends
    while !v.is_empty() {
        match std::str::from_utf8(v) {
            Ok(s) => {
                json_str(s, out);
                return;
            }
            Err(e) => {
                let (good, bad) = v.split_at(e.valid_up_to());
                if let Ok(s) = std::str::from_utf8(good) {
                    json_str(s, out);
                }
                out.extend_from_slice("\u{fffd}".as_bytes());
                let skip = e.error_len().unwrap_or(bad.len()).max(1);
                v = bad.get(skip..).unwrap_or_default();
            }
        }
    }
}

/// `s` escaped for a JSON string: runs that need no escape are copied whole.
fn json_str(s: &str, out: &mut Vec<u8>) {
    let mut rest = s;
    // bounded: each round consumes a plain run and one character
    loop {
        let run = rest
            .bytes()
            .take_while(|&b| b != b'"' && b != b'\\' && b >= 0x20 && b != 0x7f)
            .count();
        // `run` ends before an ASCII byte or at the end, so it is a char boundary
        let (good, tail) = rest.split_at(run);
        out.extend_from_slice(good.as_bytes());
        let mut chars = tail.chars();
        let Some(c) = chars.next() else {
            return;
        };
        json_char(c, out);
        rest = chars.as_str();
    }
}

fn json_char(c: char, out: &mut Vec<u8>) {
    match c {
        '"' => out.extend_from_slice(b"\\\""),
        '\\' => out.extend_from_slice(b"\\\\"),
        '\n' => out.extend_from_slice(b"\\n"),
        '\r' => out.extend_from_slice(b"\\r"),
        '\t' => out.extend_from_slice(b"\\t"),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            let b = c as u8;
            out.extend_from_slice(b"\\u00");
            out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
        c => {
            let mut utf8 = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
        }
    }
}

/// The civil time of `wall_ms` (milliseconds since the Unix epoch).
fn parts(wall_ms: u64) -> Civil {
    Civil::of(i64::try_from(wall_ms / 1000).unwrap_or(i64::MAX))
}

/// `02/Dec/2026:12:39:41 +0000` (always UTC).
fn clf_time(wall_ms: u64, out: &mut Vec<u8>) {
    let p = parts(wall_ms);
    let month = p.month_name();
    let _ = write!(
        out,
        "{:02}/{month}/{}:{:02}:{:02}:{:02} +0000",
        p.day, p.year, p.hour, p.minute, p.second
    );
}

/// `2026-12-02T12:39:41.` (the milliseconds and `Z` follow).
pub(super) fn iso_second(wall_ms: u64, out: &mut Vec<u8>) {
    let p = parts(wall_ms);
    let _ = write!(
        out,
        "{}-{:02}-{:02}T{:02}:{:02}:{:02}.",
        p.year, p.month, p.day, p.hour, p.minute, p.second
    );
}

/// A line's time in both formats' text; the text changes once a second, so it is formatted
/// once a second, not once a line.
pub struct Stamp {
    second: u64,
    milli: u16,
    /// `02/Dec/2026:12:39:41 +0000`
    clf: Vec<u8>,
    /// `2026-12-02T12:39:41.`
    iso: Vec<u8>,
}

impl Stamp {
    pub fn new() -> Stamp {
        Stamp {
            second: u64::MAX,
            milli: 0,
            clf: Vec::with_capacity(32),
            iso: Vec::with_capacity(32),
        }
    }

    /// Moves to `wall_ms` (milliseconds since the Unix epoch).
    pub fn set(&mut self, wall_ms: u64) {
        self.milli = (wall_ms % 1000) as u16;
        let second = wall_ms / 1000;
        if second != self.second {
            self.second = second;
            self.clf.clear();
            clf_time(wall_ms, &mut self.clf);
            self.iso.clear();
            iso_second(wall_ms, &mut self.iso);
        }
    }
}

impl Default for Stamp {
    fn default() -> Self {
        Stamp::new()
    }
}

// ------------------------------------------------------------------------------ request ids
