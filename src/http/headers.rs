//! Header field helpers shared by the request and response rewriters: which fields are
//! hop-by-hop, the `Connection` option list, `Content-Length` and `Transfer-Encoding` values.

/// Fields ferrule treats specially. Everything else is `Other` and passes through unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    KeepAlive,
    ProxyConnection,
    Te,
    Trailer,
    Upgrade,
    Expect,
    Cookie,
    XForwardedFor,
    XForwardedProto,
    XForwardedHost,
    /// Logged (access log) and, for `X-Request-Id`, added when absent; passed on unchanged.
    Referer,
    UserAgent,
    XRequestId,
    /// Response fields ferrule adds when a response has none (see [`super::Added`]); passed on
    /// unchanged.
    Date,
    StrictTransportSecurity,
    Other,
}

impl Field {
    /// Classifies a field name, case-insensitively.
    pub fn of(name: &[u8]) -> Field {
        let eq = |s: &[u8]| name.eq_ignore_ascii_case(s);
        match name.len() {
            2 if eq(b"te") => Field::Te,
            4 if eq(b"host") => Field::Host,
            4 if eq(b"date") => Field::Date,
            6 if eq(b"expect") => Field::Expect,
            6 if eq(b"cookie") => Field::Cookie,
            7 if eq(b"trailer") => Field::Trailer,
            7 if eq(b"upgrade") => Field::Upgrade,
            7 if eq(b"referer") => Field::Referer,
            10 if eq(b"connection") => Field::Connection,
            10 if eq(b"keep-alive") => Field::KeepAlive,
            10 if eq(b"user-agent") => Field::UserAgent,
            12 if eq(b"x-request-id") => Field::XRequestId,
            14 if eq(b"content-length") => Field::ContentLength,
            15 if eq(b"x-forwarded-for") => Field::XForwardedFor,
            16 if eq(b"x-forwarded-host") => Field::XForwardedHost,
            16 if eq(b"proxy-connection") => Field::ProxyConnection,
            17 if eq(b"transfer-encoding") => Field::TransferEncoding,
            17 if eq(b"x-forwarded-proto") => Field::XForwardedProto,
            25 if eq(b"strict-transport-security") => Field::StrictTransportSecurity,
            _ => Field::Other,
        }
    }
}

/// Splits a comma-separated field value into trimmed, non-empty elements.
pub fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim)
        .filter(|t| !t.is_empty())
}

/// The value of cookie `name` in a `Cookie` field value (`a=1; b=2`), if it is there.
pub fn cookie<'a>(value: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    value.split(|&b| b == b';').find_map(|pair| {
        let pair = trim(pair);
        let eq = pair.iter().position(|&b| b == b'=')?;
        let (key, value) = pair.split_at_checked(eq)?;
        (trim(key) == name).then(|| trim(value.get(1..).unwrap_or_default()))
    })
}

/// Trims optional whitespace (SP, HTAB) at both ends.
pub fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// What the `Connection` fields of one head say.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionOptions {
    pub close: bool,
    pub keep_alive: bool,
    pub upgrade: bool,
    /// Some option names another field, which is then hop-by-hop too.
    pub names_fields: bool,
}

impl ConnectionOptions {
    pub fn add(&mut self, value: &[u8]) {
        for token in list(value) {
            if token.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if token.eq_ignore_ascii_case(b"upgrade") {
                self.upgrade = true;
            } else {
                self.names_fields = true;
            }
        }
    }
}

/// True when a `Connection` field among `headers` lists `name` as an option.
pub fn named_by_connection(headers: &[httparse::Header<'_>], name: &str) -> bool {
    headers
        .iter()
        .filter(|h| Field::of(h.name.as_bytes()) == Field::Connection)
        .any(|h| list(h.value).any(|t| t.eq_ignore_ascii_case(name.as_bytes())))
}

/// Parses a `Content-Length` value: `1*DIGIT`, or a list of identical such values (RFC 9110 §8.6).
pub fn content_length(value: &[u8]) -> Option<u64> {
    let mut found = None;
    for part in value.split(|&b| b == b',') {
        let n = digits(trim(part))?;
        match found {
            Some(m) if m != n => return None,
            _ => found = Some(n),
        }
    }
    found
}

fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(b - b'0');
    }
    Some(n)
}

/// The transfer codings of a message, over all its `Transfer-Encoding` fields.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Codings {
    /// Codings seen, in order.
    pub count: u32,
    /// The last coding is `chunked`.
    pub chunked_last: bool,
    /// `chunked` appears somewhere other than last.
    pub chunked_early: bool,
}

impl Codings {
    pub fn add(&mut self, value: &[u8]) {
        for coding in list(value) {
            if self.chunked_last {
                self.chunked_early = true;
            }
            // a coding may carry parameters (`gzip;q=1`); only the name matters here
            let name = trim(coding.split(|&b| b == b';').next().unwrap_or(coding));
            self.chunked_last = name.eq_ignore_ascii_case(b"chunked");
            self.count += 1;
        }
    }

    /// Exactly one coding, `chunked`.
    pub fn only_chunked(&self) -> bool {
        self.count == 1 && self.chunked_last
    }
}

/// The whole `Strict-Transport-Security` field line (RFC 6797 §6.1), CRLF included:
/// `max-age=<max_age>`, and `; includeSubDomains` when asked.
pub fn hsts_line(max_age: u64, include_subdomains: bool) -> Vec<u8> {
    let mut out = b"Strict-Transport-Security: max-age=".to_vec();
    put_u64(&mut out, max_age);
    if include_subdomains {
        out.extend_from_slice(b"; includeSubDomains");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Writes `n` in decimal.
#[inline]
pub fn put_u64(out: &mut Vec<u8>, n: u64) {
    // status codes, address octets and most lengths are short
    if n < 10 {
        out.push(b'0' + n as u8);
    } else if n < 100 {
        out.extend_from_slice(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]);
    } else if n < 1000 {
        out.extend_from_slice(&[
            b'0' + (n / 100) as u8,
            b'0' + (n / 10 % 10) as u8,
            b'0' + (n % 10) as u8,
        ]);
    } else {
        put_u64_long(out, n);
    }
}

fn put_u64_long(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Writes an IP address as `Display` does; IPv4 (nearly every client) without the `fmt`
/// machinery: each octet's digits come from a table, gathered on the stack and copied once.
pub fn put_ip(out: &mut Vec<u8>, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            // "255.255.255.255" and room for the table's three bytes past the last octet
            let mut text = [0u8; 18];
            let mut len = 0;
            for (i, n) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    if let Some(slot) = text.get_mut(len) {
                        *slot = b'.';
                    }
                    len += 1;
                }
                let (digits, count) = OCTETS.get(usize::from(n)).copied().unwrap_or_default();
                if let Some(slot) = text.get_mut(len..len + 3) {
                    slot.copy_from_slice(&digits);
                }
                len += usize::from(count);
            }
            out.extend_from_slice(text.get(..len).unwrap_or_default());
        }
        std::net::IpAddr::V6(v6) => {
            use std::io::Write;
            // writing into a Vec cannot fail
            let _ = write!(out, "{v6}");
        }
    }
}

/// Each byte's decimal digits (left-aligned) and how many there are.
// built at compile time: an index out of range would fail the build, never a request
#[allow(clippy::indexing_slicing)]
const OCTETS: [([u8; 3], u8); 256] = {
    let mut table = [([0u8; 3], 0u8); 256];
    let mut n = 0;
    while n < 256 {
        let (h, t, o) = ((n / 100) as u8, (n / 10 % 10) as u8, (n % 10) as u8);
        table[n] = if n >= 100 {
            ([b'0' + h, b'0' + t, b'0' + o], 3)
        } else if n >= 10 {
            ([b'0' + t, b'0' + o, 0], 2)
        } else {
            ([b'0' + o, 0, 0], 1)
        };
        n += 1;
    }
    table
};

/// The lowercase hex digit of `n`'s low four bits.
#[inline]
pub fn hex_digit(n: u64) -> u8 {
    match (n & 15) as u8 {
        d @ 0..=9 => b'0' + d,
        d => b'a' + (d - 10),
    }
}

/// Copies a head's field lines to an output head byte for byte, a run at a time: consecutive
/// lines that are kept go out in one copy, and a line is left out by cutting the run before it.
/// Field lines are contiguous in a head, so a line runs from its name to the next line's name.
pub struct Runs<'h> {
    head: &'h [u8],
    run: Option<usize>,
}

impl<'h> Runs<'h> {
    pub fn new(head: &'h [u8]) -> Runs<'h> {
        Runs { head, run: None }
    }

    /// Offset in the head where `bytes` (a slice of it, e.g. a field name) starts.
    #[inline]
    pub fn offset(&self, bytes: &[u8]) -> usize {
        (bytes.as_ptr() as usize).saturating_sub(self.head.as_ptr() as usize)
    }

    /// Offset where the field lines end: before the empty line that ends the head.
    #[inline]
    pub fn fields_end(&self) -> usize {
        self.head.len().saturating_sub(2)
    }

    /// Keeps the line starting at `at` (extends the current run, or starts one).
    #[inline]
    pub fn keep(&mut self, at: usize) {
        if self.run.is_none() {
            self.run = Some(at);
        }
    }

    /// Ends the current run before `at`, copying it to `out`.
    #[inline]
    pub fn cut(&mut self, at: usize, out: &mut Vec<u8>) {
        if let Some(start) = self.run.take() {
            // offsets are of slices of the head, so the run is always in it
            match self.head.get(start..at) {
                Some(run) => out.extend_from_slice(run),
                None => debug_assert!(false, "a run {start}..{at} outside the head"),
            }
        }
    }
}

/// Writes one `name: value\r\n` line.
#[inline]
pub fn put_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify() {
        assert_eq!(Field::of(b"Content-Length"), Field::ContentLength);
        assert_eq!(Field::of(b"TRANSFER-ENCODING"), Field::TransferEncoding);
        assert_eq!(Field::of(b"te"), Field::Te);
        assert_eq!(Field::of(b"X-Forwarded-For"), Field::XForwardedFor);
        assert_eq!(Field::of(b"Content-Type"), Field::Other);
        assert_eq!(Field::of(b"Transfer-Encodin"), Field::Other);
    }

    #[test]
    fn content_length_values() {
        assert_eq!(content_length(b"42"), Some(42));
        assert_eq!(content_length(b"42, 42"), Some(42));
        assert_eq!(content_length(b"42, 43"), None);
        assert_eq!(content_length(b"+42"), None);
        assert_eq!(content_length(b"-1"), None);
        assert_eq!(content_length(b"4 2"), None);
        assert_eq!(content_length(b""), None);
        assert_eq!(content_length(b"0x10"), None);
        assert_eq!(content_length(b"99999999999999999999"), None);
        assert_eq!(
            content_length(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
    }

    #[test]
    fn codings() {
        let mut c = Codings::default();
        c.add(b"chunked");
        assert!(c.only_chunked());
        let mut c = Codings::default();
        c.add(b"gzip, chunked");
        assert!(c.chunked_last && !c.only_chunked() && !c.chunked_early);
        let mut c = Codings::default();
        c.add(b"chunked");
        c.add(b"gzip");
        assert!(!c.chunked_last && c.chunked_early);
        let mut c = Codings::default();
        c.add(b"xchunked");
        assert!(!c.chunked_last);
        let mut c = Codings::default();
        c.add(b"chunked, chunked");
        assert!(c.chunked_last && c.chunked_early);
    }

    #[test]
    fn connection_options() {
        let mut o = ConnectionOptions::default();
        o.add(b"keep-alive, Upgrade");
        o.add(b" X-Secret ");
        assert!(o.keep_alive && o.upgrade && o.names_fields && !o.close);
    }

    #[test]
    fn numbers() {
        let mut v = Vec::new();
        for n in [0, 7, 10, 99, 100, 999, 1000, 65536, u64::MAX] {
            v.clear();
            put_u64(&mut v, n);
            assert_eq!(v, n.to_string().as_bytes());
        }
    }
}
