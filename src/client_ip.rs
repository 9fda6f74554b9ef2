//! Who the client is, behind proxies ferrule trusts: CIDR lists ([`Cidr`], [`TrustedProxies`])
//! and the right-most-untrusted rule over `X-Forwarded-For` ([`client_from_forwarded_for`]); and
//! what counts as one client for per-client state ([`client_key`]: an IPv6 address stands for
//! its `ipv6_client_prefix` network). Pure functions, no allocation on the per-request path.
//!
//! How config and the session are meant to call it:
//! - config reads `trusted_proxies` (a list of strings such as `"10.0.0.0/8"`, `"192.168.1.7"`,
//!   `"::1/128"`, `"fd00::/8"`) with [`TrustedProxies::parse`], naming the bad entry on error
//!   (`trusted_proxies[2]: ...`), and keeps the result in the shared settings. An empty list
//!   trusts no one: the client is always the connection's peer.
//! - per request, the session calls [`client_from_forwarded_for`] with the peer address (the
//!   PROXY protocol source when there was one, else the socket's peer) and the
//!   `X-Forwarded-For` values as the client sent them, before ferrule appends its own, in
//!   field order, e.g. `headers.iter().filter(is_xff).map(|h| h.value)`; the result is the
//!   address to log and act on. Whether the forwarded `X-Forwarded-For` still gets the direct
//!   peer appended (keeping the chain intact, as ferrule does today) is the session's choice.
//!
//! Decisions. A CIDR's host bits must be zero (`10.1.0.0/8` is refused, naming `10.0.0.0/8`):
//! a typo there would silently trust a different network. A bare address is a /32 or /128. An
//! IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, as a dual-stack socket reports IPv4 peers) is the
//! IPv4 address it maps, both as a candidate and, with a prefix of 96 or more, as a CIDR; other
//! IPv6 CIDRs (`::/0` included) never match IPv4 clients. `X-Forwarded-For` entries are plain
//! IPv4 or IPv6 addresses only, as nginx's `real_ip` takes them: an entry with a port, brackets,
//! a zone, leading zeros, `unknown` or an obfuscated name stops the walk. Empty list elements
//! (`a,,b`, an empty field) are skipped, as RFC 9110 §5.6.1 asks.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Longest text form of an IP address (IPv6 with an embedded dotted quad).
const MAX_IP_TEXT: usize = 45;

/// A network: an address whose host bits are zero, and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
    /// The network and mask as numbers: IPv4 in the low 32 bits.
    bits: u128,
    mask: u128,
}

/// Why a CIDR was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CidrError {
    /// The part before any `/` is not an IPv4 or IPv6 address.
    BadAddress,
    /// The part after `/` is not a decimal number (digits only, no leading zero).
    BadPrefix,
    /// The prefix is longer than the address (32 for IPv4, 128 for IPv6).
    PrefixOutOfRange { prefix: u16, max: u8 },
    /// The address has bits set beyond the prefix; `network` is what was probably meant.
    HostBitsSet { network: Cidr },
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidrError::BadAddress => f.write_str("not an IP address or CIDR"),
            CidrError::BadPrefix => f.write_str("the prefix length is not a decimal number"),
            CidrError::PrefixOutOfRange { prefix, max } => {
                write!(f, "prefix length {prefix} is above {max}")
            }
            CidrError::HostBitsSet { network } => {
                write!(
                    f,
                    "bits are set beyond the prefix (the network is {network})"
                )
            }
        }
    }
}

impl std::error::Error for CidrError {}

/// An address as a number, IPv4-mapped IPv6 as IPv4: (is IPv4, bits).
fn key(ip: IpAddr) -> (bool, u128) {
    match ip.to_canonical() {
        IpAddr::V4(a) => (true, u128::from(u32::from(a))),
        IpAddr::V6(a) => (false, u128::from(a)),
    }
}

impl Cidr {
    /// The network `addr/prefix`. An IPv4-mapped `addr` with a prefix of 96 or more is the IPv4
    /// network it maps.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Cidr, CidrError> {
        let (addr, prefix) = match addr {
            IpAddr::V6(a) => match (a.to_ipv4_mapped(), prefix.checked_sub(96)) {
                (Some(v4), Some(p)) => (IpAddr::V4(v4), p),
                _ => (addr, prefix),
            },
            IpAddr::V4(_) => (addr, prefix),
        };
        let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let out_of_range = CidrError::PrefixOutOfRange {
            prefix: u16::from(prefix),
            max,
        };
        let host_bits = max.checked_sub(prefix).ok_or(out_of_range)?;
        let ones = if addr.is_ipv4() {
            u128::from(u32::MAX)
        } else {
            u128::MAX
        };
        // The low `host_bits` bits (none for a full-length prefix).
        let host_mask = u128::MAX
            .checked_shr(u32::from(128u8.checked_sub(host_bits).ok_or(out_of_range)?))
            .unwrap_or(0);
        let mask = ones & !host_mask;
        let (_, bits) = key(addr);
        let network = Cidr {
            network: addr,
            prefix,
            bits: bits & mask,
            mask,
        };
        if bits & host_mask != 0 {
            let masked = match addr {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(
                    u32::try_from(bits & mask).unwrap_or_default(),
                )),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(bits & mask)),
            };
            return Err(CidrError::HostBitsSet {
                network: Cidr {
                    network: masked,
                    ..network
                },
            });
        }
        Ok(network)
    }

    /// The network address (host bits zero).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// `ip` is in this network (an IPv4-mapped IPv6 `ip` as the IPv4 address it maps).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (v4, bits) = key(ip);
        v4 == self.network.is_ipv4() && bits & self.mask == self.bits
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// `addr/prefix` or a bare `addr`: `10.0.0.0/8`, `192.168.1.7`, `fd00::/8`, `::1`.
    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| CidrError::BadAddress)?;
        let prefix = match prefix {
            None if addr.is_ipv4() => 32,
            None => 128,
            Some(p) => {
                let digits = p.bytes().all(|b| b.is_ascii_digit());
                let leading_zero = p.len() > 1 && p.starts_with('0');
                if !digits || leading_zero || p.is_empty() || p.len() > 3 {
                    return Err(CidrError::BadPrefix);
                }
                let n: u16 = p.parse().map_err(|_| CidrError::BadPrefix)?;
                let max = if addr.is_ipv4() { 32 } else { 128 };
                u8::try_from(n)
                    .ok()
                    .filter(|&n| n <= 128)
                    .ok_or(CidrError::PrefixOutOfRange { prefix: n, max })?
            }
        };
        Cidr::new(addr, prefix)
    }
}

impl fmt::Display for Cidr {
    /// Always with the prefix: `192.168.1.7/32`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The proxies whose `X-Forwarded-For` ferrule believes (`trusted_proxies`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Trust no one.
    pub const EMPTY: TrustedProxies = TrustedProxies(Vec::new());

    pub fn new(cidrs: Vec<Cidr>) -> TrustedProxies {
        TrustedProxies(cidrs)
    }

    /// Parses a config list; on error, the index of the first bad entry and why.
    pub fn parse<I>(entries: I) -> Result<TrustedProxies, (usize, CidrError)>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        entries
            .into_iter()
            .enumerate()
            .map(|(i, s)| s.as_ref().parse().map_err(|e| (i, e)))
            .collect()
    }

    /// `ip` is in one of the networks: a linear scan, one mask and compare per entry.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (v4, bits) = key(ip);
        self.0
            .iter()
            .any(|c| v4 == c.network.is_ipv4() && bits & c.mask == c.bits)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn cidrs(&self) -> &[Cidr] {
        &self.0
    }
}

impl FromIterator<Cidr> for TrustedProxies {
    fn from_iter<I: IntoIterator<Item = Cidr>>(iter: I) -> TrustedProxies {
        TrustedProxies(iter.into_iter().collect())
    }
}

/// The client's address: `peer` (the connection's peer, or the PROXY protocol source) when it is
/// not trusted; otherwise the right-most untrusted address of `X-Forwarded-For` (all `xff_values`,
/// joined in order, split on commas, trimmed), the left-most when all are trusted. An entry that
/// is not a plain IP address stops the walk: the client is then the entry to its right, or `peer`.
///
/// `xff_values` is walked from the right (so it must be double-ended, as a filter over the
/// parsed header fields is), and only as far as trusted addresses go: the client's own,
/// spoofable, entries on the left are never looked at. No allocation.
pub fn client_from_forwarded_for<'a, I>(
    peer: IpAddr,
    xff_values: I,
    trusted: &TrustedProxies,
) -> IpAddr
where
    I: IntoIterator<Item = &'a [u8]>,
    I::IntoIter: DoubleEndedIterator,
{
    if !trusted.contains(peer) {
        return peer;
    }
    let mut client = peer;
    let entries = xff_values
        .into_iter()
        .rev()
        .flat_map(|value| value.rsplit(|&b| b == b','));
    for entry in entries {
        let entry = trim_ows(entry);
        if entry.is_empty() {
            continue;
        }
        let Some(ip) = parse_ip(entry) else {
            return client;
        };
        client = ip;
        if !trusted.contains(ip) {
            return ip;
        }
    }
    client
}

/// The default `ipv6_client_prefix`: a /64 is what one subscriber, one host or one LAN gets.
pub const DEFAULT_IPV6_CLIENT_PREFIX: u8 = 64;

/// What one client is, for the state ferrule keeps per client (`max_connections_per_ip`, sticky
/// sessions by address, the `client_ip` hash key): an IPv4 address itself (an IPv4-mapped IPv6
/// address is the IPv4 address it maps), an IPv6 address with every bit past `ipv6_prefix` set to
/// zero, so that the 2^64 addresses of a /64 (what one subscriber or host gets, and can cycle
/// through at will) are one client, not an endless supply of new ones. A prefix of 128 or more
/// keeps the whole address. The result is only a key: logs and `X-Forwarded-For` keep the
/// address.
#[inline]
pub fn client_key(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let keep = u128::MAX
                .checked_shl(128u32.saturating_sub(u32::from(ipv6_prefix)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & keep))
        }
    }
}

/// Without the optional white space (spaces and tabs) around a list element.
fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// A plain IPv4 or IPv6 address, nothing else.
fn parse_ip(entry: &[u8]) -> Option<IpAddr> {
    if entry.len() > MAX_IP_TEXT {
        return None;
    }
    std::str::from_utf8(entry).ok()?.parse().ok()
}

#[cfg(test)]
mod tests;
