//! The PROXY protocol, server side: the header a load balancer (HAProxy, AWS NLB, ...) puts in
//! front of a TCP stream to say who the client is, in version 1 (one text line) and version 2
//! (binary), as HAProxy's `doc/proxy-protocol.txt` specifies. Pure parsing: no I/O, no state.
//!
//! How the session is meant to call it, on a listener configured for the PROXY protocol (the
//! spec forbids guessing whether a header is there: never enable it on a port clients reach
//! directly): a new connection starts in a "PROXY header" state, before TLS and HTTP. On each read
//! into the client input buffer, call [`parse`] on everything received so far:
//! - `Ok(Parsed::Incomplete)`: read more. A header never needs more than [`MAX_HEADER_LEN`] bytes
//!   (below the 4096-byte floor of `buffer_size`), so a full buffer is never `Incomplete`. End of
//!   stream or `client_header_timeout` while incomplete: close (the spec rejects partial headers).
//! - `Ok(Parsed::Done(h))`: drop the first `h.consumed` bytes; what follows (a TLS ClientHello or
//!   an HTTP request, possibly already in the buffer) is the normal stream, to be handed to rustls
//!   or the HTTP parser as if just read. `h.source()` (when `Some`) replaces the socket's peer
//!   address for logs, `client_ip` and `X-Forwarded-For`; `None` (v1 `UNKNOWN`, v2 `LOCAL`, or a
//!   family ferrule does not relay) means the socket's own addresses stand.
//! - `Err(e)`: log `e` with the socket's peer and close, with no response (nothing HTTP yet).
//!
//! [`parse`] is stateless and cheap to call again on a growing buffer: a v1 attempt looks at no
//! more than 107 bytes, a v2 attempt at 16 bytes until the whole header is in, then at the header
//! once. Malformed input is refused as soon as the bytes seen prove it can never become valid, so a
//! wrong client (TLS, HTTP) is dropped on its first bytes rather than at the timeout.
//! [`looks_like_proxy_protocol`] is for a diagnostic only (a hint in the log when a listener
//! *without* the PROXY protocol receives one).
// Network input reaches every line here: clippy forbids indexing, slicing, unwrap and panics
// outside the tests (the policy is `network_input_mod!`, in lib.rs).

use std::fmt;
use std::iter::Peekable;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::slice::Split;

/// Longest v1 line, CRLF included (the spec's worst case, `UNKNOWN` with two full IPv6 addresses).
pub const V1_MAX_LEN: usize = 107;
/// The fixed part of a v2 header: signature, version/command, family/protocol, length.
pub const V2_FIXED_LEN: usize = 16;
/// Longest v2 address block (addresses and TLVs) accepted. The format allows 65535; 2048 holds
/// the largest address form (AF_UNIX, 216 bytes) and the TLVs senders actually attach (ALPN,
/// authority, unique ID up to 128 bytes, AWS's VPC endpoint ID, HAProxy's SSL TLV with version,
/// CN, cipher and algorithms), while capping what a connection can make ferrule hold before it
/// has said anything. A sender forwarding whole client certificates would exceed it.
pub const V2_MAX_BLOCK: usize = 2048;
/// Longest header of either version: a buffer this long always parses to `Done` or an error.
pub const MAX_HEADER_LEN: usize = V2_FIXED_LEN + V2_MAX_BLOCK;

const V1_PREFIX: &[u8] = b"PROXY ";
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
const V1_PROTOCOLS: [&[u8]; 3] = [b"TCP4", b"TCP6", b"UNKNOWN"];
/// Longest IPv6 text form (with an embedded dotted quad).
const MAX_IPV6_TEXT: usize = 45;
const TLV_CRC32C: u8 = 0x03;

/// What [`parse`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// Valid so far: read more and call again with the longer buffer.
    Incomplete,
    /// A whole, valid header.
    Done(Header),
}

/// A parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: Version,
    /// Length of the header: the client's own bytes start here.
    pub consumed: usize,
    /// The relayed connection's endpoints; `None` when the connection's own addresses stand.
    pub addresses: Option<Addresses>,
}

impl Header {
    /// The client's address, as the load balancer saw it.
    pub fn source(&self) -> Option<SocketAddr> {
        self.addresses.map(|a| a.source)
    }

    /// The address the client connected to, at the load balancer.
    pub fn destination(&self) -> Option<SocketAddr> {
        self.addresses.map(|a| a.destination)
    }
}

/// The endpoints of a relayed TCP connection (both of the same family; IPv4-mapped IPv6
/// addresses are passed on as sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    pub source: SocketAddr,
    pub destination: SocketAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// Why a header was refused. The connection should be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The stream starts with neither `PROXY ` nor the v2 signature.
    BadSignature,
    /// No CRLF within the first 107 bytes.
    V1LineTooLong,
    /// A CR or LF that is not the line's final CRLF.
    V1LineEnding,
    /// The protocol is not `TCP4`, `TCP6` or `UNKNOWN` (case matters).
    V1BadProtocol,
    /// An empty field: two spaces in a row, or a space before the CRLF.
    V1Spacing,
    /// The line ends before the destination port.
    V1MissingField,
    /// Something follows the destination port.
    V1TrailingField,
    /// An address that is not in the announced family's canonical form (leading zeros included).
    V1BadAddress,
    /// A port that is not plain decimal digits, or has a leading zero.
    V1BadPort,
    /// A port above 65535.
    V1PortOutOfRange,
    /// The v2 version nibble is not 2.
    V2BadVersion(u8),
    /// The v2 command is neither LOCAL (0) nor PROXY (1).
    V2BadCommand(u8),
    /// The v2 family/protocol byte has an unassigned family (> 3) or protocol (> 2).
    V2BadFamily(u8),
    /// The v2 address block is longer than [`V2_MAX_BLOCK`].
    V2TooLong(usize),
    /// The v2 address block is shorter than its family's addresses.
    V2AddressTooShort { family: u8, len: usize },
    /// A TLV runs past the end of the header.
    V2BadTlv,
    /// A CRC32C TLV is not 4 bytes long or does not match the header.
    V2BadChecksum,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadSignature => f.write_str("no PROXY protocol header"),
            Error::V1LineTooLong => write!(f, "PROXY v1 line without CRLF in {V1_MAX_LEN} bytes"),
            Error::V1LineEnding => f.write_str("PROXY v1 line with a stray CR or LF"),
            Error::V1BadProtocol => f.write_str("PROXY v1 protocol is not TCP4, TCP6 or UNKNOWN"),
            Error::V1Spacing => f.write_str("PROXY v1 line with an extra space"),
            Error::V1MissingField => f.write_str("PROXY v1 line ends early"),
            Error::V1TrailingField => f.write_str("PROXY v1 line has data after the ports"),
            Error::V1BadAddress => f.write_str("PROXY v1 address does not parse"),
            Error::V1BadPort => f.write_str("PROXY v1 port does not parse"),
            Error::V1PortOutOfRange => f.write_str("PROXY v1 port above 65535"),
            Error::V2BadVersion(v) => write!(f, "PROXY v2 header with version {v}"),
            Error::V2BadCommand(c) => write!(f, "PROXY v2 header with command {c}"),
            Error::V2BadFamily(b) => write!(f, "PROXY v2 header with family/protocol {b:#04x}"),
            Error::V2TooLong(n) => write!(f, "PROXY v2 block of {n} bytes (limit {V2_MAX_BLOCK})"),
            Error::V2AddressTooShort { family, len } => {
                write!(
                    f,
                    "PROXY v2 block of {len} bytes too short for family {family:#04x}"
                )
            }
            Error::V2BadTlv => f.write_str("PROXY v2 TLV runs past the header"),
            Error::V2BadChecksum => f.write_str("PROXY v2 CRC32C does not match"),
        }
    }
}

impl std::error::Error for Error {}

/// Parses a PROXY protocol header (either version) at the start of `buf`, everything received on
/// the connection so far. See the module documentation for how to call it.
pub fn parse(buf: &[u8]) -> Result<Parsed, Error> {
    if buf.starts_with(V1_PREFIX) {
        parse_v1(buf)
    } else if buf.starts_with(V2_SIGNATURE) {
        parse_v2(buf)
    } else if V1_PREFIX.starts_with(buf) || V2_SIGNATURE.starts_with(buf) {
        Ok(Parsed::Incomplete)
    } else {
        Err(Error::BadSignature)
    }
}

/// `first` (the first bytes of a connection) starts like a PROXY protocol header. For a log
/// hint only: whether to expect a header is configuration, never guessed.
pub fn looks_like_proxy_protocol(first: &[u8]) -> bool {
    first.starts_with(V2_SIGNATURE)
        || [&b"PROXY TCP4 "[..], b"PROXY TCP6 ", b"PROXY UNKNOWN"]
            .iter()
            .any(|p| first.starts_with(p))
}

// ---- version 1 ----

fn parse_v1(buf: &[u8]) -> Result<Parsed, Error> {
    let window = buf.get(..V1_MAX_LEN).unwrap_or(buf);
    let Some(lf) = memchr::memchr(b'\n', window) else {
        if window.len() >= V1_MAX_LEN {
            return Err(Error::V1LineTooLong);
        }
        let fields = window.get(V1_PREFIX.len()..).unwrap_or_default();
        // A CR at the very end may be the start of the CRLF.
        let fields = fields.strip_suffix(b"\r").unwrap_or(fields);
        if memchr::memchr(b'\r', fields).is_some() {
            return Err(Error::V1LineEnding);
        }
        v1_fields(fields, false)?;
        return Ok(Parsed::Incomplete);
    };
    let line = window.get(..lf).unwrap_or_default();
    let line = line.strip_suffix(b"\r").ok_or(Error::V1LineEnding)?;
    let fields = line.get(V1_PREFIX.len()..).ok_or(Error::V1LineEnding)?;
    if memchr::memchr(b'\r', fields).is_some() {
        return Err(Error::V1LineEnding);
    }
    let consumed = lf.checked_add(1).ok_or(Error::V1LineTooLong)?;
    let done = |addresses| {
        Parsed::Done(Header {
            version: Version::V1,
            consumed,
            addresses,
        })
    };
    Ok(match v1_fields(fields, true)? {
        V1::Partial => Parsed::Incomplete,
        V1::Unknown => done(None),
        V1::Tcp(a) => done(Some(a)),
    })
}

enum V1 {
    /// Valid so far (only when the line is not complete).
    Partial,
    Unknown,
    Tcp(Addresses),
}

#[derive(Clone, Copy)]
enum Family {
    V4,
    V6,
}

enum Token<'a> {
    /// A field followed by a space or the end of the line.
    Whole(&'a [u8]),
    /// The last field of an incomplete line: more of it may come.
    Partial(&'a [u8]),
    End,
}

type Fields<'a> = Peekable<Split<'a, u8, fn(&u8) -> bool>>;

struct Tokens<'a> {
    split: Fields<'a>,
    complete: bool,
}

impl<'a> Tokens<'a> {
    fn next(&mut self) -> Token<'a> {
        match self.split.next() {
            None => Token::End,
            Some(t) if !self.complete && self.split.peek().is_none() => Token::Partial(t),
            Some(t) => Token::Whole(t),
        }
    }
}

fn is_space(b: &u8) -> bool {
    *b == b' '
}

/// Checks the fields after `PROXY ` (`complete`: the whole line, without CRLF; otherwise what has
/// arrived of it), left to right, as far as they go.
fn v1_fields(fields: &[u8], complete: bool) -> Result<V1, Error> {
    let mut tokens = Tokens {
        split: fields.split(is_space as fn(&u8) -> bool).peekable(),
        complete,
    };
    let family = match tokens.next() {
        Token::Whole(b"TCP4") => Family::V4,
        Token::Whole(b"TCP6") => Family::V6,
        // Whatever follows UNKNOWN, up to the CRLF, is ignored.
        Token::Whole(b"UNKNOWN") => return Ok(V1::Unknown),
        Token::Whole(b"") => return Err(Error::V1Spacing),
        Token::Partial(t) if V1_PROTOCOLS.iter().any(|p| p.starts_with(t)) => {
            return Ok(V1::Partial)
        }
        Token::Whole(_) | Token::Partial(_) | Token::End => return Err(Error::V1BadProtocol),
    };
    let address = |t: &[u8]| v1_address(t, family);
    let address_prefix = |t: &[u8]| v1_address_prefix(t, family);
    // Every prefix of a valid port is a valid port (or empty).
    let port_prefix = |t: &[u8]| {
        if t.is_empty() {
            Ok(())
        } else {
            v1_port(t).map(drop)
        }
    };
    let Some(src) = v1_field(tokens.next(), address, address_prefix)? else {
        return Ok(V1::Partial);
    };
    let Some(dst) = v1_field(tokens.next(), address, address_prefix)? else {
        return Ok(V1::Partial);
    };
    let Some(sport) = v1_field(tokens.next(), v1_port, port_prefix)? else {
        return Ok(V1::Partial);
    };
    let Some(dport) = v1_field(tokens.next(), v1_port, port_prefix)? else {
        return Ok(V1::Partial);
    };
    match tokens.next() {
        Token::End => Ok(V1::Tcp(Addresses {
            source: SocketAddr::new(src, sport),
            destination: SocketAddr::new(dst, dport),
        })),
        Token::Whole(b"") | Token::Partial(b"") => Err(Error::V1Spacing),
        Token::Whole(_) | Token::Partial(_) => Err(Error::V1TrailingField),
    }
}

/// One field: `Some` when whole and valid, `None` when partial and valid so far.
fn v1_field<T>(
    token: Token<'_>,
    whole: impl Fn(&[u8]) -> Result<T, Error>,
    prefix: impl Fn(&[u8]) -> Result<(), Error>,
) -> Result<Option<T>, Error> {
    match token {
        Token::Whole(b"") => Err(Error::V1Spacing),
        Token::Whole(t) => whole(t).map(Some),
        Token::Partial(t) => prefix(t).map(|()| None),
        Token::End => Err(Error::V1MissingField),
    }
}

fn v1_address(t: &[u8], family: Family) -> Result<IpAddr, Error> {
    let text = std::str::from_utf8(t).map_err(|_| Error::V1BadAddress)?;
    // The standard parsers take exactly the canonical forms: no leading zeros in IPv4 (nor in
    // an IPv6's embedded dotted quad), no brackets, no zone.
    match family {
        Family::V4 => text.parse::<Ipv4Addr>().map(IpAddr::V4),
        Family::V6 => text.parse::<Ipv6Addr>().map(IpAddr::V6),
    }
    .map_err(|_| Error::V1BadAddress)
}

fn v1_address_prefix(t: &[u8], family: Family) -> Result<(), Error> {
    let ok = match family {
        // Exactly the prefixes of a dotted quad: whole octets, then the start of one (the
        // prefixes of an octet are octets, or empty).
        Family::V4 => {
            let mut groups = t.split(|&b| b == b'.');
            let last = groups.next_back().unwrap_or_default();
            let mut whole = 0usize;
            let octets_ok = groups.all(|g| {
                whole = whole.saturating_add(1);
                is_octet(g)
            });
            octets_ok && whole <= 3 && (last.is_empty() || is_octet(last))
        }
        Family::V6 => {
            t.len() <= MAX_IPV6_TEXT
                && t.iter()
                    .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        }
    };
    if ok {
        Ok(())
    } else {
        Err(Error::V1BadAddress)
    }
}

/// 0 to 255 in decimal, without a leading zero.
fn is_octet(g: &[u8]) -> bool {
    matches!(g, [_] | [b'1'..=b'9', _] | [b'1'..=b'9', _, _])
        && g.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(g).is_ok_and(|s| s.parse::<u8>().is_ok())
}

fn v1_port(t: &[u8]) -> Result<u16, Error> {
    if t.is_empty()
        || !t.iter().all(u8::is_ascii_digit)
        || (t.len() > 1 && t.first() == Some(&b'0'))
    {
        return Err(Error::V1BadPort);
    }
    // Only digits now: a failure can only be an overflow.
    std::str::from_utf8(t)
        .ok()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or(Error::V1PortOutOfRange)
}

// ---- version 2 ----

fn parse_v2(buf: &[u8]) -> Result<Parsed, Error> {
    // Each fixed byte is checked as soon as it arrives.
    let Some(&ver_cmd) = buf.get(12) else {
        return Ok(Parsed::Incomplete);
    };
    if ver_cmd >> 4 != 2 {
        return Err(Error::V2BadVersion(ver_cmd >> 4));
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        c => return Err(Error::V2BadCommand(c)),
    };
    let Some(&family) = buf.get(13) else {
        return Ok(Parsed::Incomplete);
    };
    if family >> 4 > 3 || family & 0x0f > 2 {
        return Err(Error::V2BadFamily(family));
    }
    let Some(&[hi, lo]) = buf.get(14..V2_FIXED_LEN) else {
        return Ok(Parsed::Incomplete);
    };
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    if len > V2_MAX_BLOCK {
        return Err(Error::V2TooLong(len));
    }
    let total = V2_FIXED_LEN.checked_add(len).ok_or(Error::V2TooLong(len))?;
    let Some(header) = buf.get(..total) else {
        return Ok(Parsed::Incomplete);
    };
    let done = |addresses| {
        Parsed::Done(Header {
            version: Version::V2,
            consumed: total,
            addresses,
        })
    };
    // LOCAL (a health check from the balancer itself): the block, family included, is ignored.
    if local {
        return Ok(done(None));
    }
    let block = header.get(V2_FIXED_LEN..).unwrap_or_default();
    // Families the block's layout is known for; with AF_UNSPEC or an UNSPEC protocol it is not,
    // and it is skipped whole, TLVs unchecked.
    let address_len = match family {
        0x11 | 0x12 => 12,
        0x21 | 0x22 => 36,
        0x31 | 0x32 => 216,
        _ => return Ok(done(None)),
    };
    let too_short = Error::V2AddressTooShort { family, len };
    let (address, _) = block.split_at_checked(address_len).ok_or(too_short)?;
    let tlv_start = V2_FIXED_LEN.checked_add(address_len).ok_or(too_short)?;
    check_tlvs(header, tlv_start)?;
    // TCP over IPv4 or IPv6 is relayed; UDP and AF_UNIX fall back to the connection's own
    // addresses, as the spec asks of receivers that do not support them.
    let addresses = match family {
        0x11 => v2_addresses::<4>(address, |a| IpAddr::V4(Ipv4Addr::from(a))),
        0x21 => v2_addresses::<16>(address, |a| IpAddr::V6(Ipv6Addr::from(a))),
        _ => return Ok(done(None)),
    };
    addresses.map(|a| done(Some(a))).ok_or(too_short)
}

/// Source address, destination address, source port, destination port, in network order.
fn v2_addresses<const N: usize>(block: &[u8], ip: impl Fn([u8; N]) -> IpAddr) -> Option<Addresses> {
    let (src, rest) = block.split_first_chunk::<N>()?;
    let (dst, rest) = rest.split_first_chunk::<N>()?;
    let (sport, rest) = rest.split_first_chunk::<2>()?;
    let (dport, _) = rest.split_first_chunk::<2>()?;
    Some(Addresses {
        source: SocketAddr::new(ip(*src), u16::from_be_bytes(*sport)),
        destination: SocketAddr::new(ip(*dst), u16::from_be_bytes(*dport)),
    })
}

/// Walks the TLVs from `start` to the end of `header` (type, 2-byte length, value): each must
/// fit. Their contents are skipped, except a CRC32C, which must match the header.
fn check_tlvs(header: &[u8], start: usize) -> Result<(), Error> {
    let mut at = start;
    let mut rest = header.get(start..).unwrap_or_default();
    while let Some((&[kind, hi, lo], after)) = rest.split_first_chunk::<3>() {
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        let (value, after) = after.split_at_checked(len).ok_or(Error::V2BadTlv)?;
        let value_at = at.checked_add(3).ok_or(Error::V2BadTlv)?;
        if kind == TLV_CRC32C {
            let sent = <[u8; 4]>::try_from(value).map_err(|_| Error::V2BadChecksum)?;
            if crc32c_zeroed(header, value_at) != Some(u32::from_be_bytes(sent)) {
                return Err(Error::V2BadChecksum);
            }
        }
        at = value_at.checked_add(len).ok_or(Error::V2BadTlv)?;
        rest = after;
    }
    if rest.is_empty() {
        Ok(())
    } else {
        Err(Error::V2BadTlv)
    }
}

/// CRC32C (Castagnoli, as in RFC 4960 appendix B) of `header` with its 4 bytes at `at` read as
/// zeros, as the spec computes it.
fn crc32c_zeroed(header: &[u8], at: usize) -> Option<u32> {
    let (before, rest) = header.split_at_checked(at)?;
    let after = rest.get(4..)?;
    let crc = [before, &[0; 4], after]
        .iter()
        .flat_map(|part| part.iter())
        .fold(!0u32, |crc, &b| crc32c_byte(crc, b));
    Some(!crc)
}

// evaluated at compile time: its indexing cannot fail at run time
#[allow(clippy::indexing_slicing)]
const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

fn crc32c_byte(crc: u32, b: u8) -> u32 {
    let index = usize::from((crc as u8) ^ b);
    (crc >> 8) ^ CRC32C_TABLE.get(index).copied().unwrap_or_default()
}

#[cfg(test)]
mod tests;
